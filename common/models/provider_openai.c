/* OpenAI chat completions (POST <base_url>/chat/completions), spoken by vLLM,
 * llama.cpp's server, other OpenAI-compatible servers and OpenAI itself.
 * The three table entries share the code and differ in what each server
 * documents it accepts (their ec_provider_params):
 *
 *   vllm               max_tokens; "logprobs": true alone returns the chosen
 *                      token's logprob (vLLM's top_logprobs defaults to 0).
 *   openai-compatible  max_tokens (llama.cpp, Ollama's /v1, others); with
 *                      "logprobs": true llama.cpp sets n_probs from
 *                      top_logprobs, default 20 (tools/server), and 0 turns
 *                      the probabilities off altogether, so 1 is sent: the
 *                      chosen token's logprob at the least work.
 *   openai             max_completion_tokens (max_tokens is deprecated in
 *                      OpenAI's spec and refused by its reasoning models).
 *
 * Token logprobs come back as choices[0].logprobs.content[].logprob and feed
 * the quality gate; a server that ignores "logprobs" simply yields none. */
#include "provider_internal.h"

#include <stdlib.h>
#include <string.h>

static ec_err openai_build_chat(const ec_provider *p, const ec_tier_cfg *t,
                                const ec_infer_request *r, const char *api_key,
                                ec_http_request *out, ec_error *err)
{
    cJSON *body = NULL, *msgs = NULL;
    ec_sent_params sp;
    ec_http_request_init(out, "POST"); /* so that failing leaves out freeable */
    ec_err rc = ec_prov_check(t, r, err);
    if (!rc)
        rc = ec_provider_map_params(p, t, r, &sp, err);
    if (rc)
        goto out;
    rc = ec_prov_request_start(out, "POST", t->base_url, "chat/completions", err);
    if (rc)
        goto out;
    out->timeout_ms = ec_prov_timeout(t, r);
    if (ec_http_request_add_header(out, "Content-Type: application/json") ||
        (api_key && ec_http_request_add_header(out, "Authorization: Bearer %s", api_key))) {
        rc = ec_error_set(err, EC_ERR_INVAL,
                          "tier %s: cannot set request headers (line break in the API key?)",
                          ec_prov_tier_name(t));
        goto out;
    }
    rc = ec_prov_messages_json(r, false, &msgs, err);
    if (rc)
        goto out;
    body = cJSON_CreateObject();
    if (!body) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    /* '|' so that "messages" always takes msgs, even when "model" failed. */
    int bad = ec_prov_json_set(body, "model", ec_prov_json_string(t->model));
    bad |= ec_prov_json_set(body, "messages", msgs);
    msgs = NULL;
    if (bad) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    if ((sp.max_tokens > 0 &&
         ec_prov_json_set(body, p->params->max_tokens_field, cJSON_CreateNumber(sp.max_tokens))) ||
        (sp.has_temperature &&
         ec_prov_json_set(body, "temperature", ec_prov_json_real(sp.temperature))) ||
        (sp.logprobs && ec_prov_json_set(body, "logprobs", cJSON_CreateTrue())) ||
        (sp.top_logprobs >= 0 &&
         ec_prov_json_set(body, "top_logprobs", cJSON_CreateNumber(sp.top_logprobs)))) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    rc = ec_prov_set_body(out, body, err);
    body = NULL;
out:
    cJSON_Delete(msgs);
    cJSON_Delete(body);
    if (rc)
        ec_http_request_free(out);
    return rc;
}

static ec_outcome openai_parse_chat(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err)
{
    if (resp->status != 200)
        return ec_prov_status_outcome(t, resp, err);
    cJSON *root = ec_prov_parse_body(t, resp, err);
    if (!root)
        return EC_OUTCOME_RETRY;

    ec_outcome oc = EC_OUTCOME_OK;
    cJSON *choices = ec_prov_json_get(root, "choices");
    if (!cJSON_IsArray(choices) || !choices->child) {
        oc = ec_prov_malformed(t, err, "no choices");
        goto out;
    }
    cJSON *choice = choices->child;
    cJSON *content = ec_prov_json_get(ec_prov_json_get(choice, "message"), "content");
    if (!cJSON_IsString(content)) {
        oc = ec_prov_malformed(t, err, "choices[0].message.content is not a string");
        goto out;
    }
    ec_lp_stats lp;
    if (ec_prov_logprobs(ec_prov_json_get(ec_prov_json_get(choice, "logprobs"), "content"), &lp,
                         err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    cJSON *usage = ec_prov_json_get(root, "usage");
    if (ec_prov_fill_reply(t, out, content->valuestring, strlen(content->valuestring),
                           ec_prov_json_str(ec_prov_json_get(root, "model")),
                           ec_prov_json_str(ec_prov_json_get(choice, "finish_reason")),
                           ec_prov_json_count(ec_prov_json_get(usage, "prompt_tokens")),
                           ec_prov_json_count(ec_prov_json_get(usage, "completion_tokens")), err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    out->lp = lp;
out:
    cJSON_Delete(root);
    return oc;
}

static ec_err openai_build_models(const ec_tier_cfg *t, const char *api_key, ec_http_request *out,
                                  ec_error *err)
{
    ec_http_request_init(out, "GET");
    ec_err rc = ec_prov_check(t, NULL, err);
    if (rc)
        goto out;
    rc = ec_prov_request_start(out, "GET", t->base_url, "models", err);
    if (rc)
        goto out;
    out->timeout_ms = EC_PROVIDER_MODELS_TIMEOUT_MS;
    if (api_key && ec_http_request_add_header(out, "Authorization: Bearer %s", api_key))
        rc = ec_error_set(err, EC_ERR_INVAL, "tier %s: cannot set the Authorization header",
                          ec_prov_tier_name(t));
out:
    if (rc)
        ec_http_request_free(out);
    return rc;
}

static ec_err openai_parse_models(const ec_http_response *resp, char ***names, size_t *n,
                                  ec_error *err)
{
    return ec_prov_parse_models(resp, "data", "id", names, n, err);
}

static ec_err vllm_build_chat(const ec_tier_cfg *t, const ec_infer_request *r, const char *api_key,
                              ec_http_request *out, ec_error *err)
{
    return openai_build_chat(&ec_provider_vllm, t, r, api_key, out, err);
}

static ec_err compat_build_chat(const ec_tier_cfg *t, const ec_infer_request *r,
                                const char *api_key, ec_http_request *out, ec_error *err)
{
    return openai_build_chat(&ec_provider_openai_compatible, t, r, api_key, out, err);
}

static ec_err cloud_build_chat(const ec_tier_cfg *t, const ec_infer_request *r, const char *api_key,
                               ec_http_request *out, ec_error *err)
{
    return openai_build_chat(&ec_provider_openai, t, r, api_key, out, err);
}

/* vLLM: temperature >= 0 with no upper bound (the Query's 2 fits). */
static const ec_provider_params vllm_params = {
    .temperature_max = 2.0,
    .max_tokens_field = "max_tokens",
    .logprobs = true,
    .top_logprobs = -1,
    .logprobs_hint = "vLLM returns them on request with no server flag (--max-logprobs, "
                     "default 20, caps only top_logprobs, which is not sent): check that no "
                     "proxy in front of vLLM drops the \"logprobs\" field",
};

static const ec_provider_params compat_params = {
    .temperature_max = 2.0,
    .max_tokens_field = "max_tokens",
    .logprobs = true,
    .top_logprobs = 1,
    .logprobs_hint = "llama.cpp's llama-server returns them in the OpenAI shape "
                     "(choices[].logprobs.content) on /v1/chat/completions; update an old "
                     "build, or use provider ollama for Ollama (its /v1 returns them from "
                     "0.12.11 on)",
};

/* OpenAI's spec: temperature 0..2, max_completion_tokens, top_logprobs 0..20
 * (absent: the chosen token's logprob only). */
static const ec_provider_params openai_params = {
    .temperature_max = 2.0,
    .max_tokens_field = "max_completion_tokens",
    .logprobs = true,
    .top_logprobs = -1,
    .logprobs_hint = "some OpenAI models (reasoning models) return no logprobs; the gate "
                     "then judges their answers by the text heuristic",
};

const ec_provider ec_provider_vllm = {
    .name = "vllm",
    .local = true,
    .params = &vllm_params,
    .build_chat = vllm_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};

const ec_provider ec_provider_openai_compatible = {
    .name = "openai-compatible",
    .local = true,
    .params = &compat_params,
    .build_chat = compat_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};

const ec_provider ec_provider_openai = {
    .name = "openai",
    .local = false,
    .params = &openai_params,
    .build_chat = cloud_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};
