/* OpenAI chat completions (POST <base_url>/chat/completions), spoken by vLLM,
 * llama.cpp's server, other OpenAI-compatible servers and OpenAI itself.
 * The three table entries share all code and differ in name and locality.
 *
 * Token logprobs come back as choices[0].logprobs.content[].logprob and feed
 * the quality gate; a server that ignores "logprobs" simply yields none. */
#include "provider_internal.h"

#include <stdlib.h>
#include <string.h>

static ec_err openai_build_chat(const ec_tier_cfg *t, const ec_infer_request *r,
                                const char *api_key, ec_http_request *out, ec_error *err)
{
    json_t *body = NULL, *msgs = NULL;
    ec_http_request_init(out, "POST"); /* so that failing leaves out freeable */
    ec_err rc = ec_prov_check(t, r, err);
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
    body = json_object();
    if (!body) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    /* '|' so that "messages" always takes msgs, even when "model" failed. */
    int bad = json_object_set_new(body, "model", json_string(t->model));
    bad |= json_object_set_new(body, "messages", msgs);
    msgs = NULL;
    if (bad) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    if ((r->max_tokens > 0 &&
         json_object_set_new(body, "max_tokens", json_integer(r->max_tokens))) ||
        (r->has_temperature &&
         json_object_set_new(body, "temperature", json_real(r->temperature))) ||
        (r->logprobs && t->logprobs && json_object_set_new(body, "logprobs", json_true()))) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    rc = ec_prov_set_body(out, body, err);
    body = NULL;
out:
    json_decref(msgs);
    json_decref(body);
    if (rc)
        ec_http_request_free(out);
    return rc;
}

/* Mean/min/... of choices[0].logprobs.content[].logprob; absent -> present=false. */
static ec_err read_logprobs(json_t *choice, ec_lp_stats *lp, ec_error *err)
{
    memset(lp, 0, sizeof(*lp));
    json_t *content = json_object_get(json_object_get(choice, "logprobs"), "content");
    size_t n = json_array_size(content);
    if (n == 0)
        return EC_OK;
    double *v = malloc(n * sizeof(*v));
    if (!v)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory reading logprobs");
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        json_t *x = json_object_get(json_array_get(content, i), "logprob");
        if (json_is_number(x))
            v[k++] = json_number_value(x);
    }
    if (k > 0)
        ec_lp_stats_compute(v, k, lp);
    free(v);
    return EC_OK;
}

static ec_outcome openai_parse_chat(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err)
{
    if (resp->status != 200)
        return ec_prov_status_outcome(t, resp, err);
    json_t *root = ec_prov_parse_body(t, resp, err);
    if (!root)
        return EC_OUTCOME_RETRY;

    ec_outcome oc = EC_OUTCOME_OK;
    json_t *choices = json_object_get(root, "choices");
    if (!json_is_array(choices) || json_array_size(choices) == 0) {
        oc = ec_prov_malformed(t, err, "no choices");
        goto out;
    }
    json_t *choice = json_array_get(choices, 0);
    json_t *content = json_object_get(json_object_get(choice, "message"), "content");
    if (!json_is_string(content)) {
        oc = ec_prov_malformed(t, err, "choices[0].message.content is not a string");
        goto out;
    }
    ec_lp_stats lp;
    if (read_logprobs(choice, &lp, err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    json_t *usage = json_object_get(root, "usage");
    if (ec_prov_fill_reply(t, out, json_string_value(content), json_string_length(content),
                           json_string_value(json_object_get(root, "model")),
                           json_string_value(json_object_get(choice, "finish_reason")),
                           ec_prov_json_count(json_object_get(usage, "prompt_tokens")),
                           ec_prov_json_count(json_object_get(usage, "completion_tokens")), err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    out->lp = lp;
out:
    json_decref(root);
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

const ec_provider ec_provider_vllm = {
    .name = "vllm",
    .local = true,
    .build_chat = openai_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};

const ec_provider ec_provider_openai_compatible = {
    .name = "openai-compatible",
    .local = true,
    .build_chat = openai_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};

const ec_provider ec_provider_openai = {
    .name = "openai",
    .local = false,
    .build_chat = openai_build_chat,
    .parse_chat = openai_parse_chat,
    .build_models = openai_build_models,
    .parse_models = openai_parse_models,
};
