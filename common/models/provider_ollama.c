/* Ollama's native API: POST <base_url>/api/chat with "stream":false, and
 * GET <base_url>/api/tags for discovery. The native API is used rather than
 * Ollama's OpenAI shim because it reports token counts reliably.
 *
 * Logprobs: Ollama 0.12.11 and later return a top-level "logprobs" array
 * ({token, logprob, bytes, top_logprobs}) when the request has
 * "logprobs": true (docs/api.md, docs/openapi.yaml); top_logprobs is left
 * out (default 0: the chosen token only, all the gate needs). An older
 * Ollama ignores the field and returns none; the answer then carries no
 * logprobs and edgecascade-local says so once (tierd.c).
 *
 * base_url is the server root (http://127.0.0.1:11434). A trailing "/v1",
 * easy to copy from an OpenAI-style example, is dropped rather than turned
 * into a 404 on /v1/api/chat. */
#include "provider_internal.h"

#include <stdlib.h>
#include <string.h>

/* The server root: base_url without trailing slashes or a final "/v1". */
static char *ollama_root(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    if (n >= 3 && memcmp(base + n - 3, "/v1", 3) == 0)
        n -= 3;
    char *s = malloc(n + 1);
    if (!s)
        return NULL;
    memcpy(s, base, n);
    s[n] = '\0';
    return s;
}

static ec_err ollama_start(const ec_tier_cfg *t, const char *method, const char *path,
                           const char *api_key, ec_http_request *out, ec_error *err)
{
    char *root = ollama_root(t->base_url);
    if (!root)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    ec_err rc = ec_prov_request_start(out, method, root, path, err);
    free(root);
    if (rc)
        return rc;
    if (strcmp(method, "POST") == 0 &&
        ec_http_request_add_header(out, "Content-Type: application/json"))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    /* Ollama itself takes no key; one is sent when set, for a proxy in front. */
    if (api_key && ec_http_request_add_header(out, "Authorization: Bearer %s", api_key))
        return ec_error_set(err, EC_ERR_INVAL, "tier %s: cannot set the Authorization header",
                            ec_prov_tier_name(t));
    return EC_OK;
}

static ec_err ollama_build_chat(const ec_tier_cfg *t, const ec_infer_request *r,
                                const char *api_key, ec_http_request *out, ec_error *err)
{
    cJSON *body = NULL, *msgs = NULL, *opts = NULL;
    ec_sent_params sp;
    ec_http_request_init(out, "POST"); /* so that failing leaves out freeable */
    ec_err rc = ec_prov_check(t, r, err);
    if (!rc)
        rc = ec_provider_map_params(&ec_provider_ollama, t, r, &sp, err);
    if (rc)
        goto out;
    rc = ollama_start(t, "POST", "api/chat", api_key, out, err);
    if (rc)
        goto out;
    out->timeout_ms = ec_prov_timeout(t, r);
    rc = ec_prov_messages_json(r, false, &msgs, err);
    if (rc)
        goto out;
    body = cJSON_CreateObject();
    opts = cJSON_CreateObject();
    if (!body || !opts) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    int bad = ec_prov_json_set(body, "model", ec_prov_json_string(t->model));
    bad |= ec_prov_json_set(body, "messages", msgs);
    msgs = NULL;
    bad |= ec_prov_json_set(body, "stream", cJSON_CreateFalse());
    if (sp.logprobs)
        bad |= ec_prov_json_set(body, "logprobs", cJSON_CreateTrue());
    if (sp.top_logprobs >= 0)
        bad |= ec_prov_json_set(body, "top_logprobs", cJSON_CreateNumber(sp.top_logprobs));
    if (sp.max_tokens > 0)
        bad |= ec_prov_json_set(opts, "num_predict", cJSON_CreateNumber(sp.max_tokens));
    if (sp.has_temperature)
        bad |= ec_prov_json_set(opts, "temperature", ec_prov_json_real(sp.temperature));
    if (opts->child) {
        bad |= ec_prov_json_set(body, "options", opts);
        opts = NULL;
    }
    if (bad) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    rc = ec_prov_set_body(out, body, err);
    body = NULL;
out:
    cJSON_Delete(opts);
    cJSON_Delete(msgs);
    cJSON_Delete(body);
    if (rc)
        ec_http_request_free(out);
    return rc;
}

static ec_outcome ollama_parse_chat(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err)
{
    if (resp->status != 200)
        return ec_prov_status_outcome(t, resp, err);
    cJSON *root = ec_prov_parse_body(t, resp, err);
    if (!root)
        return EC_OUTCOME_RETRY;

    ec_outcome oc = EC_OUTCOME_OK;
    cJSON *content = ec_prov_json_get(ec_prov_json_get(root, "message"), "content");
    if (!cJSON_IsString(content)) {
        oc = ec_prov_malformed(t, err, "message.content is not a string");
        goto out;
    }
    ec_lp_stats lp;
    if (ec_prov_logprobs(ec_prov_json_get(root, "logprobs"), &lp, err) ||
        ec_prov_fill_reply(t, out, content->valuestring, strlen(content->valuestring),
                           ec_prov_json_str(ec_prov_json_get(root, "model")),
                           ec_prov_json_str(ec_prov_json_get(root, "done_reason")),
                           ec_prov_json_count(ec_prov_json_get(root, "prompt_eval_count")),
                           ec_prov_json_count(ec_prov_json_get(root, "eval_count")), err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    out->lp = lp;
out:
    cJSON_Delete(root);
    return oc;
}

static ec_err ollama_build_models(const ec_tier_cfg *t, const char *api_key, ec_http_request *out,
                                  ec_error *err)
{
    ec_http_request_init(out, "GET");
    ec_err rc = ec_prov_check(t, NULL, err);
    if (!rc)
        rc = ollama_start(t, "GET", "api/tags", api_key, out, err);
    if (rc) {
        ec_http_request_free(out);
        return rc;
    }
    out->timeout_ms = EC_PROVIDER_MODELS_TIMEOUT_MS;
    return EC_OK;
}

static ec_err ollama_parse_models(const ec_http_response *resp, char ***names, size_t *n,
                                  ec_error *err)
{
    return ec_prov_parse_models(resp, "models", "name", names, n, err);
}

/* options.temperature has no documented upper bound (the Query's 2 fits);
 * num_predict is optional. */
static const ec_provider_params ollama_params = {
    .temperature_max = 2.0,
    .max_tokens_field = "options.num_predict",
    .logprobs = true,
    .top_logprobs = -1,
    .logprobs_hint = "Ollama returns token logprobs from version 0.12.11 on: upgrade Ollama "
                     "(ollama --version)",
};

const ec_provider ec_provider_ollama = {
    .name = "ollama",
    .local = true,
    .params = &ollama_params,
    .build_chat = ollama_build_chat,
    .parse_chat = ollama_parse_chat,
    .build_models = ollama_build_models,
    .parse_models = ollama_parse_models,
};
