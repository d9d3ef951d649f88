/* The provider table and what every provider shares: status classification,
 * error messages an integrator can act on, reply filling and discovery.
 *
 * Classification (the relay's retry loop acts on it, providers never retry):
 *   200 with a well-formed body          -> OK
 *   200 with a malformed body            -> RETRY (overloaded servers do this)
 *   429, 500, 502, 503, 504, 529         -> RETRY
 *   any other 4xx                        -> ERROR (retrying cannot help)
 *   anything else                        -> RETRY */
#include "provider_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "edgecascade/util.h"

/* Adding a provider: one file with its const struct, one line here. */
static const ec_provider *const table[] = {
    &ec_provider_vllm,              /* provider_openai.c, local */
    &ec_provider_openai_compatible, /* provider_openai.c, local (llama.cpp, ...) */
    &ec_provider_ollama,            /* provider_ollama.c, local */
    &ec_provider_openai,            /* provider_openai.c, cloud */
    &ec_provider_anthropic,         /* provider_anthropic.c, cloud */
    NULL,
};

const ec_provider *ec_provider_find(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; table[i]; i++)
        if (strcmp(table[i]->name, name) == 0)
            return table[i];
    return NULL;
}

const ec_provider *const *ec_provider_all(void)
{
    return table;
}

void ec_models_free(char **names, size_t n)
{
    if (!names)
        return;
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

static const char *or_q(const char *s)
{
    return s ? s : "?";
}

const char *ec_prov_tier_name(const ec_tier_cfg *t)
{
    return t->name ? t->name : t->model ? t->model : "?";
}

uint32_t ec_prov_timeout(const ec_tier_cfg *t, const ec_infer_request *r)
{
    uint32_t ms = t->timeout_ms;
    if (r && r->timeout_ms && (ms == 0 || r->timeout_ms < ms))
        ms = r->timeout_ms;
    return ms ? ms : EC_PROVIDER_DEFAULT_TIMEOUT_MS;
}

ec_err ec_prov_check(const ec_tier_cfg *t, const ec_infer_request *r, ec_error *err)
{
    /* Discovery (r == NULL) needs no model: finding one is its purpose. */
    if (r && (!t->model || !*t->model))
        return ec_error_set(err, EC_ERR_CONFIG, "tier %s: no model configured",
                            ec_prov_tier_name(t));
    if (!t->base_url || !*t->base_url)
        return ec_error_set(err, EC_ERR_CONFIG, "tier %s: no base_url configured",
                            ec_prov_tier_name(t));
    if (r && r->n_messages == 0)
        return ec_error_set(err, EC_ERR_INVAL, "tier %s: request has no messages",
                            ec_prov_tier_name(t));
    return EC_OK;
}

ec_err ec_prov_request_start(ec_http_request *out, const char *method, const char *base,
                             const char *path, ec_error *err)
{
    ec_http_request_init(out, method);
    out->url = ec_url_join(base, path);
    if (!out->url)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    return EC_OK;
}

ec_err ec_prov_messages_json(const ec_infer_request *r, bool skip_system, cJSON **out,
                             ec_error *err)
{
    *out = NULL;
    cJSON *arr = cJSON_CreateArray();
    if (!arr)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < r->n_messages; i++) {
        const ec_chat_msg *m = &r->messages[i];
        const char *role = m->role ? m->role : "user";
        if (skip_system && strcmp(role, "system") == 0)
            continue;
        /* Fails on invalid UTF-8 (or no memory, far less likely). */
        cJSON *o = cJSON_CreateObject();
        int bad = ec_prov_json_set(o, "role", ec_prov_json_string(role));
        bad |= ec_prov_json_set(o, "content", ec_prov_json_string(m->content ? m->content : ""));
        if (bad || !cJSON_AddItemToArray(arr, o)) {
            cJSON_Delete(o);
            cJSON_Delete(arr);
            return ec_error_set(err, EC_ERR_INVAL, "messages[%zu]: not valid UTF-8 text", i);
        }
    }
    *out = arr;
    return EC_OK;
}

ec_err ec_prov_set_body(ec_http_request *out, cJSON *root, ec_error *err)
{
    if (!root)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
    ec_buf_reset(&out->body);
    ec_err rc = ec_buf_append(&out->body, s, strlen(s));
    cJSON_free(s);
    if (rc)
        return ec_error_set(err, rc, "request body: %s", ec_strerror(rc));
    return EC_OK;
}

/* Copies at most max bytes of s into dst (size dstlen), stopping before a
 * UTF-8 continuation byte and turning control characters into spaces, so an
 * API's text (or an HTML error page) reads as one clean line in a log. */
static void clean_excerpt(char *dst, size_t dstlen, const char *s, size_t len, size_t max)
{
    if (len > max) {
        len = max;
        while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
            len--;
    }
    if (len >= dstlen)
        len = dstlen - 1;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        dst[i] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    dst[len] = '\0';
}

/* The API's own error text: OpenAI/Anthropic {"error":{"message"}}, Ollama
 * {"error":"..."}, vLLM {"message"}, FastAPI {"detail"}; else the raw body. */
static void api_message(const ec_http_response *resp, char *dst, size_t dstlen)
{
    dst[0] = '\0';
    const char *body = resp->body.data;
    size_t len = resp->body.len;
    if (!body || len == 0)
        return;
    char why[80];
    cJSON *root = ec_prov_json_parse(body, len, why, sizeof(why));
    const char *msg = NULL;
    if (cJSON_IsObject(root)) {
        cJSON *e = ec_prov_json_get(root, "error");
        if (cJSON_IsObject(e))
            msg = ec_prov_json_str(ec_prov_json_get(e, "message"));
        else if (cJSON_IsString(e))
            msg = e->valuestring;
        if (!msg)
            msg = ec_prov_json_str(ec_prov_json_get(root, "message"));
        if (!msg)
            msg = ec_prov_json_str(ec_prov_json_get(root, "detail"));
    }
    if (msg)
        clean_excerpt(dst, dstlen, msg, strlen(msg), EC_PROVIDER_API_MSG_MAX);
    else if (!root)
        clean_excerpt(dst, dstlen, body, len, EC_PROVIDER_API_MSG_MAX);
    cJSON_Delete(root);
}

static void key_hint(const ec_tier_cfg *t, char *dst, size_t dstlen)
{
    if (t->api_key_env && *t->api_key_env)
        snprintf(dst, dstlen, "check the API key in %s", t->api_key_env);
    else if (t->api_key_file && *t->api_key_file)
        snprintf(dst, dstlen, "check the API key in file %s", t->api_key_file);
    else
        snprintf(dst, dstlen, "no API key configured for tier %s (set api_key_env)",
                 ec_prov_tier_name(t));
}

ec_outcome ec_prov_status_outcome(const ec_tier_cfg *t, const ec_http_response *resp, ec_error *err)
{
    long st = resp->status;
    ec_outcome oc = EC_OUTCOME_RETRY;
    ec_err code = EC_ERR_HTTP;
    char hint[256];

    switch (st) {
    case 429:
        if (resp->retry_after_s)
            snprintf(hint, sizeof(hint), "rate limited, retry after %u s", resp->retry_after_s);
        else
            snprintf(hint, sizeof(hint), "rate limited");
        code = EC_ERR_BUSY;
        break;
    case 529:
        snprintf(hint, sizeof(hint), "overloaded");
        code = EC_ERR_BUSY;
        break;
    case 500:
    case 502:
    case 503:
    case 504:
        snprintf(hint, sizeof(hint), "server unavailable");
        code = EC_ERR_UNAVAILABLE;
        break;
    case 401:
        key_hint(t, hint, sizeof(hint));
        oc = EC_OUTCOME_ERROR;
        code = EC_ERR_CONFIG;
        break;
    case 403: {
        char k[160];
        key_hint(t, k, sizeof(k));
        snprintf(hint, sizeof(hint), "access denied (%s and its permissions)", k);
        oc = EC_OUTCOME_ERROR;
        code = EC_ERR_CONFIG;
        break;
    }
    case 404:
        snprintf(hint, sizeof(hint), "not found: check the model name and base_url %s",
                 or_q(t->base_url));
        oc = EC_OUTCOME_ERROR;
        code = EC_ERR_CONFIG;
        break;
    case 413:
        snprintf(hint, sizeof(hint), "request too large for the API");
        oc = EC_OUTCOME_ERROR;
        code = EC_ERR_TOOBIG;
        break;
    default:
        if (st >= 400 && st < 500) {
            snprintf(hint, sizeof(hint), "request rejected");
            oc = EC_OUTCOME_ERROR;
            code = EC_ERR_INVAL;
        } else {
            snprintf(hint, sizeof(hint), "unexpected status");
        }
        break;
    }

    char api[EC_PROVIDER_API_MSG_MAX + 1];
    api_message(resp, api, sizeof(api));
    if (api[0])
        ec_error_set(err, code, "%ld from %s (%s): %s: %s", st, or_q(t->provider), or_q(t->model),
                     hint, api);
    else
        ec_error_set(err, code, "%ld from %s (%s): %s", st, or_q(t->provider), or_q(t->model),
                     hint);
    return oc;
}

ec_outcome ec_prov_malformed(const ec_tier_cfg *t, ec_error *err, const char *what)
{
    ec_error_set(err, EC_ERR_PROTO, "malformed response from %s: %s", ec_prov_tier_name(t), what);
    return EC_OUTCOME_RETRY;
}

cJSON *ec_prov_parse_body(const ec_tier_cfg *t, const ec_http_response *resp, ec_error *err)
{
    char why[160];
    cJSON *root = ec_prov_json_parse(resp->body.data, resp->body.len, why, sizeof(why));
    if (!root) {
        char what[200];
        snprintf(what, sizeof(what), "invalid JSON: %s", why);
        ec_prov_malformed(t, err, what);
        return NULL;
    }
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        ec_prov_malformed(t, err, "body is not a JSON object");
        return NULL;
    }
    return root;
}

ec_err ec_prov_logprobs(const cJSON *arr, ec_lp_stats *lp, ec_error *err)
{
    memset(lp, 0, sizeof(*lp));
    if (!cJSON_IsArray(arr))
        return EC_OK;
    /* cJSON arrays are lists: walked, not indexed (GetArrayItem is O(i)). */
    size_t n = (size_t)cJSON_GetArraySize(arr);
    if (n == 0)
        return EC_OK;
    double *v = malloc(n * sizeof(*v));
    if (!v)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory reading logprobs");
    size_t k = 0;
    for (const cJSON *x = arr->child; x; x = x->next) {
        const cJSON *lpv = ec_prov_json_get(x, "logprob");
        if (cJSON_IsNumber(lpv))
            v[k++] = lpv->valuedouble;
    }
    if (k > 0)
        ec_lp_stats_compute(v, k, lp);
    free(v);
    return EC_OK;
}

static void set_str(char **dst, char *s)
{
    free(*dst);
    *dst = s;
}

ec_err ec_prov_fill_reply(const ec_tier_cfg *t, ec_infer_reply *out, const char *answer,
                          size_t answer_len, const char *model, const char *finish_reason,
                          uint32_t tokens_in, uint32_t tokens_out, ec_error *err)
{
    bool cut = false;
    if (answer_len > EC_MAX_ANSWER) {
        answer_len = EC_MAX_ANSWER;
        while (answer_len > 0 && ((unsigned char)answer[answer_len] & 0xC0) == 0x80)
            answer_len--;
        cut = true;
    }
    /* cJSON does not check UTF-8, and the answer goes into a Result whose
     * msgpack str must be valid: a broken byte is a malformed response. */
    if (!ec_utf8_valid(answer, answer_len)) {
        ec_prov_malformed(t, err, "the answer is not valid UTF-8");
        return EC_ERR_PROTO;
    }
    if (!model || !*model || strlen(model) > EC_MAX_ID)
        model = t->model;
    if (cut)
        finish_reason = "length";
    else if (finish_reason && strlen(finish_reason) > EC_MAX_ID)
        finish_reason = NULL;

    char *a = ec_strndup0(answer, answer_len);
    char *m = ec_strdup0(model);
    char *f = ec_strdup0(finish_reason);
    if (!a || (model && !m) || (finish_reason && !f)) {
        free(a);
        free(m);
        free(f);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory reading the reply");
    }
    set_str(&out->answer, a);
    set_str(&out->model, m);
    set_str(&out->finish_reason, f);
    out->tokens_in = tokens_in;
    out->tokens_out = tokens_out;
    return EC_OK;
}

ec_err ec_prov_parse_models(const ec_http_response *resp, const char *array_key,
                            const char *name_key, char ***names, size_t *n, ec_error *err)
{
    *names = NULL;
    *n = 0;
    if (resp->status != 200) {
        char api[EC_PROVIDER_API_MSG_MAX + 1];
        api_message(resp, api, sizeof(api));
        return ec_error_set(err, EC_ERR_HTTP, "model list: HTTP %ld%s%s", resp->status,
                            api[0] ? ": " : "", api);
    }
    char why[160];
    cJSON *root = ec_prov_json_parse(resp->body.data, resp->body.len, why, sizeof(why));
    cJSON *arr = ec_prov_json_get(root, array_key);
    ec_err rc = EC_OK;
    char **list = NULL;
    size_t k = 0;
    /* An Ollama with no model pulled answers /v1/models with "data": null
     * (and older ones /api/tags with "models": null): an empty list, not a
     * parse error. */
    bool none = cJSON_IsObject(root) && cJSON_IsNull(arr);
    if (!cJSON_IsArray(arr) && !none) {
        rc = ec_error_set(err, EC_ERR_PROTO, "model list: no \"%s\" array in the response",
                          array_key);
        goto out;
    }
    size_t cnt = none ? 0 : (size_t)cJSON_GetArraySize(arr);
    list = calloc(cnt ? cnt : 1, sizeof(*list));
    if (!list) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (const cJSON *x = none ? NULL : arr->child; x; x = x->next) {
        const char *s = ec_prov_json_str(ec_prov_json_get(x, name_key));
        if (!s)
            continue; /* an entry we do not understand is not a reason to fail */
        list[k] = strdup(s);
        if (!list[k]) {
            rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            goto out;
        }
        k++;
    }
    *names = list;
    *n = k;
    list = NULL;
out:
    if (list)
        ec_models_free(list, k);
    cJSON_Delete(root);
    return rc;
}
