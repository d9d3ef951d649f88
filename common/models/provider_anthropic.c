/* Anthropic Messages API: POST <base_url>/messages (base_url
 * https://api.anthropic.com/v1; "/v1" is added when missing) with x-api-key
 * and anthropic-version headers, GET <base_url>/models for discovery.
 *
 * Differences from OpenAI that matter here: system prompts are a top-level
 * "system" field, not messages; max_tokens is mandatory; the answer is a list
 * of content blocks; 529 means overloaded (retry); there are no logprobs.
 * temperature is 0.0..1.0 (the Messages API answers 400 above): a query's
 * 1..2 is clamped to 1.0 (provider_params.c has the rule). */
#include "provider_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edgecascade/util.h"

static bool ends_with_v1(const char *base)
{
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/')
        n--;
    return n >= 3 && memcmp(base + n - 3, "/v1", 3) == 0;
}

static ec_err anthropic_start(const ec_tier_cfg *t, const char *method, const char *what,
                              const char *api_key, ec_http_request *out, ec_error *err)
{
    char path[32];
    snprintf(path, sizeof(path), "%s%s", ends_with_v1(t->base_url) ? "" : "v1/", what);
    ec_err rc = ec_prov_request_start(out, method, t->base_url, path, err);
    if (rc)
        return rc;
    if (ec_http_request_add_header(out, "content-type: application/json") ||
        ec_http_request_add_header(out, "anthropic-version: " EC_ANTHROPIC_VERSION))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    if (api_key && ec_http_request_add_header(out, "x-api-key: %s", api_key))
        return ec_error_set(err, EC_ERR_INVAL, "tier %s: cannot set the x-api-key header",
                            ec_prov_tier_name(t));
    return EC_OK;
}

/* All system messages, joined by blank lines; NULL in *out when none. */
static ec_err system_text(const ec_infer_request *r, char **out, ec_error *err)
{
    *out = NULL;
    ec_buf b;
    ec_buf_init(&b, 0);
    bool any = false;
    for (size_t i = 0; i < r->n_messages; i++) {
        const ec_chat_msg *m = &r->messages[i];
        if (!m->role || strcmp(m->role, "system") != 0)
            continue;
        const char *c = m->content ? m->content : "";
        if ((any && ec_buf_append(&b, "\n\n", 2)) || ec_buf_append(&b, c, strlen(c))) {
            ec_buf_free(&b);
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        }
        any = true;
    }
    if (any)
        *out = ec_buf_take(&b, NULL);
    ec_buf_free(&b);
    return EC_OK;
}

static ec_err anthropic_build_chat(const ec_tier_cfg *t, const ec_infer_request *r,
                                   const char *api_key, ec_http_request *out, ec_error *err)
{
    cJSON *body = NULL, *msgs = NULL;
    char *sys = NULL;
    ec_sent_params sp;
    ec_http_request_init(out, "POST");
    ec_err rc = ec_prov_check(t, r, err);
    if (!rc)
        rc = ec_provider_map_params(&ec_provider_anthropic, t, r, &sp, err);
    if (rc)
        goto out;
    rc = anthropic_start(t, "POST", "messages", api_key, out, err);
    if (rc)
        goto out;
    out->timeout_ms = ec_prov_timeout(t, r);
    rc = ec_prov_messages_json(r, true, &msgs, err);
    if (rc)
        goto out;
    if (!msgs->child) {
        rc = ec_error_set(err, EC_ERR_INVAL,
                          "tier %s: anthropic needs a user message, "
                          "not only system messages",
                          ec_prov_tier_name(t));
        goto out;
    }
    rc = system_text(r, &sys, err);
    if (rc)
        goto out;
    body = cJSON_CreateObject();
    if (!body) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    int bad = ec_prov_json_set(body, "model", ec_prov_json_string(t->model));
    bad |= ec_prov_json_set(body, "max_tokens", cJSON_CreateNumber(sp.max_tokens));
    if (sys)
        bad |= ec_prov_json_set(body, "system", ec_prov_json_string(sys));
    bad |= ec_prov_json_set(body, "messages", msgs);
    msgs = NULL;
    if (sp.has_temperature)
        bad |= ec_prov_json_set(body, "temperature", ec_prov_json_real(sp.temperature));
    if (bad) {
        rc = ec_error_set(err, EC_ERR_INVAL,
                          "tier %s: cannot build the request body "
                          "(system text not valid UTF-8?)",
                          ec_prov_tier_name(t));
        goto out;
    }
    rc = ec_prov_set_body(out, body, err);
    body = NULL;
out:
    free(sys);
    cJSON_Delete(msgs);
    cJSON_Delete(body);
    if (rc)
        ec_http_request_free(out);
    return rc;
}

/* Anthropic's stop reasons in the OpenAI words the rest of edgecascade uses. */
static const char *map_stop_reason(const char *s)
{
    if (!s)
        return NULL;
    if (strcmp(s, "end_turn") == 0 || strcmp(s, "stop_sequence") == 0)
        return "stop";
    if (strcmp(s, "max_tokens") == 0)
        return "length";
    return s;
}

static ec_outcome anthropic_parse_chat(const ec_tier_cfg *t, const ec_http_response *resp,
                                       ec_infer_reply *out, ec_error *err)
{
    if (resp->status != 200)
        return ec_prov_status_outcome(t, resp, err);
    cJSON *root = ec_prov_parse_body(t, resp, err);
    if (!root)
        return EC_OUTCOME_RETRY;

    ec_outcome oc = EC_OUTCOME_OK;
    ec_buf text;
    ec_buf_init(&text, 0);
    cJSON *content = ec_prov_json_get(root, "content");
    if (!cJSON_IsArray(content)) {
        oc = ec_prov_malformed(t, err, "content is not an array");
        goto out;
    }
    for (cJSON *block = content->child; block; block = block->next) {
        if (!ec_streq(ec_prov_json_str(ec_prov_json_get(block, "type")), "text"))
            continue; /* tool_use, thinking...: not part of the answer */
        cJSON *tx = ec_prov_json_get(block, "text");
        if (!cJSON_IsString(tx)) {
            oc = ec_prov_malformed(t, err, "a text block has no text");
            goto out;
        }
        if (ec_buf_append(&text, tx->valuestring, strlen(tx->valuestring))) {
            oc = ec_prov_malformed(t, err, "answer too large");
            goto out;
        }
    }
    cJSON *usage = ec_prov_json_get(root, "usage");
    if (ec_prov_fill_reply(t, out, ec_buf_cstr(&text), text.len,
                           ec_prov_json_str(ec_prov_json_get(root, "model")),
                           map_stop_reason(ec_prov_json_str(ec_prov_json_get(root, "stop_reason"))),
                           ec_prov_json_count(ec_prov_json_get(usage, "input_tokens")),
                           ec_prov_json_count(ec_prov_json_get(usage, "output_tokens")), err)) {
        oc = EC_OUTCOME_RETRY;
        goto out;
    }
    memset(&out->lp, 0, sizeof(out->lp));
out:
    ec_buf_free(&text);
    cJSON_Delete(root);
    return oc;
}

static ec_err anthropic_build_models(const ec_tier_cfg *t, const char *api_key,
                                     ec_http_request *out, ec_error *err)
{
    ec_http_request_init(out, "GET");
    ec_err rc = ec_prov_check(t, NULL, err);
    if (!rc)
        rc = anthropic_start(t, "GET", "models", api_key, out, err);
    if (rc) {
        ec_http_request_free(out);
        return rc;
    }
    out->timeout_ms = EC_PROVIDER_MODELS_TIMEOUT_MS;
    return EC_OK;
}

static ec_err anthropic_parse_models(const ec_http_response *resp, char ***names, size_t *n,
                                     ec_error *err)
{
    return ec_prov_parse_models(resp, "data", "id", names, n, err);
}

/* Messages API: temperature 0.0..1.0, max_tokens required. */
static const ec_provider_params anthropic_params = {
    .temperature_max = 1.0,
    .max_tokens_field = "max_tokens",
    .max_tokens_default = EC_ANTHROPIC_DEFAULT_MAX_TOKENS,
    .logprobs = false,
    .top_logprobs = -1,
    .logprobs_hint = "the Messages API has no logprobs; a cloud tier is the last word and "
                     "is not gated by them",
};

const ec_provider ec_provider_anthropic = {
    .name = "anthropic",
    .local = false,
    .params = &anthropic_params,
    .build_chat = anthropic_build_chat,
    .parse_chat = anthropic_parse_chat,
    .build_models = anthropic_build_models,
    .parse_models = anthropic_parse_models,
};
