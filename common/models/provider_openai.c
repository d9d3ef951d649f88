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

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_fast.h"

ec_err ec_prov_openai_build_dom(const ec_provider *p, const ec_tier_cfg *t,
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

/* ---- the request body, written directly ----
 *
 * The same bytes cJSON_PrintUnformatted makes of ec_prov_openai_build_dom's
 * tree, and the same refusals, without building and freeing the tree (about
 * 9,000 instructions a request); test_provider_fast holds the two to each
 * other. */

/* A JSON string as cJSON prints it: the two-character escapes it uses, other
 * control characters as \u00xx, every other byte as it is. */
static ec_err put_str(ec_buf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    ec_err rc = ec_buf_append(b, "\"", 1);
    const char *run = s;
    for (const char *c = s; !rc && *c; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch > 31 && ch != '"' && ch != '\\')
            continue;
        char esc[6] = {'\\', 0};
        size_t n = 2;
        switch (ch) {
        case '"':
        case '\\':
            esc[1] = (char)ch;
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        default:
            esc[1] = 'u';
            esc[2] = '0';
            esc[3] = '0';
            esc[4] = hex[ch >> 4];
            esc[5] = hex[ch & 15];
            n = 6;
        }
        rc = ec_buf_append(b, run, (size_t)(c - run));
        if (!rc)
            rc = ec_buf_append(b, esc, n);
        run = c + 1;
    }
    if (!rc)
        rc = ec_buf_append(b, run, strlen(run));
    return rc ? rc : ec_buf_append(b, "\"", 1);
}

/* A number as cJSON prints it: an integral value that fits an int with %d,
 * else the shortest of %1.15g and %1.17g that reads back the same. */
static ec_err put_num(ec_buf *b, double d)
{
    char num[32];
    int as_int = d >= INT_MAX ? INT_MAX : d <= (double)INT_MIN ? INT_MIN : (int)d;
    if (isnan(d) || isinf(d)) {
        snprintf(num, sizeof(num), "null");
    } else if (d == (double)as_int) {
        snprintf(num, sizeof(num), "%d", as_int);
    } else {
        snprintf(num, sizeof(num), "%1.15g", d);
        double back = strtod(num, NULL);
        double most = fabs(back) > fabs(d) ? fabs(back) : fabs(d);
        if (!(fabs(back - d) <= most * DBL_EPSILON))
            snprintf(num, sizeof(num), "%1.17g", d);
    }
    return ec_buf_append(b, num, strlen(num));
}

static ec_err put_key(ec_buf *b, const char *sep, const char *key)
{
    ec_err rc = ec_buf_append(b, sep, strlen(sep));
    if (!rc)
        rc = put_str(b, key);
    return rc ? rc : ec_buf_append(b, ":", 1);
}

static bool utf8_text(const char *s)
{
    return ec_utf8_valid(s, strlen(s));
}

static ec_err openai_build_chat(const ec_provider *p, const ec_tier_cfg *t,
                                const ec_infer_request *r, const char *api_key,
                                ec_http_request *out, ec_error *err)
{
    ec_sent_params sp;
    ec_http_request_init(out, "POST"); /* so that failing leaves out freeable */
    ec_err rc = ec_prov_check(t, r, err);
    if (!rc)
        rc = ec_provider_map_params(p, t, r, &sp, err);
    if (!rc)
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
    /* Every refusal of the tree build, in its order, before a byte is written. */
    for (size_t i = 0; i < r->n_messages; i++) {
        const ec_chat_msg *m = &r->messages[i];
        if (!utf8_text(m->role ? m->role : "user") || !utf8_text(m->content ? m->content : "")) {
            rc = ec_error_set(err, EC_ERR_INVAL, "messages[%zu]: not valid UTF-8 text", i);
            goto out;
        }
    }
    if (!t->model || !utf8_text(t->model) || (sp.has_temperature && !isfinite(sp.temperature))) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory building the request body");
        goto out;
    }
    ec_buf *b = &out->body;
    ec_buf_reset(b);
    rc = put_key(b, "{", "model");
    if (!rc)
        rc = put_str(b, t->model);
    if (!rc)
        rc = put_key(b, ",", "messages");
    if (!rc)
        rc = ec_buf_append(b, "[", 1);
    for (size_t i = 0; !rc && i < r->n_messages; i++) {
        const ec_chat_msg *m = &r->messages[i];
        rc = put_key(b, i ? ",{" : "{", "role");
        if (!rc)
            rc = put_str(b, m->role ? m->role : "user");
        if (!rc)
            rc = put_key(b, ",", "content");
        if (!rc)
            rc = put_str(b, m->content ? m->content : "");
        if (!rc)
            rc = ec_buf_append(b, "}", 1);
    }
    if (!rc)
        rc = ec_buf_append(b, "]", 1);
    if (!rc && sp.max_tokens > 0 && !(rc = put_key(b, ",", p->params->max_tokens_field)))
        rc = put_num(b, sp.max_tokens);
    if (!rc && sp.has_temperature && !(rc = put_key(b, ",", "temperature")))
        rc = put_num(b, sp.temperature);
    if (!rc && sp.logprobs && !(rc = put_key(b, ",", "logprobs")))
        rc = ec_buf_append(b, "true", 4);
    if (!rc && sp.top_logprobs >= 0 && !(rc = put_key(b, ",", "top_logprobs")))
        rc = put_num(b, sp.top_logprobs);
    if (!rc)
        rc = ec_buf_append(b, "}", 1);
    if (rc)
        rc = ec_error_set(err, rc, "request body: %s", ec_strerror(rc));
out:
    if (rc)
        ec_http_request_free(out);
    return rc;
}

ec_outcome ec_prov_openai_parse_dom(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err)
{
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

/* The fast path's buffers: enough tokens and logprobs for a short answer on
 * the stack; a longer one gets them from the heap. */
#define FAST_TOKENS   512
#define FAST_LOGPROBS 256

/* ec_prov_json_str on a token: *s the decoded string, or NULL when v is not
 * a string or not valid UTF-8; false when memory ran out. */
static bool fast_str(const ec_jdoc *d, int v, char **s)
{
    *s = NULL;
    if (!ec_jdoc_is(d, v, EC_JT_STR))
        return true;
    size_t n;
    char *c = ec_jdoc_strdup(d, v, &n);
    if (!c)
        return false;
    if (ec_utf8_valid(c, n))
        *s = c;
    else
        free(c);
    return true;
}

static uint32_t fast_count(const ec_jdoc *d, int v)
{
    return ec_jdoc_is(d, v, EC_JT_NUM) ? ec_prov_count(ec_jdoc_num(d, v)) : 0;
}

/* ec_prov_logprobs on a token: the same values in the same order. */
static bool fast_logprobs(const ec_jdoc *d, int arr, ec_lp_stats *lp)
{
    memset(lp, 0, sizeof(*lp));
    if (!ec_jdoc_is(d, arr, EC_JT_ARR))
        return true;
    size_t n = 0;
    for (int x = d->tok[arr].child; x >= 0; x = d->tok[x].next)
        n++;
    if (n == 0)
        return true;
    double stack[FAST_LOGPROBS];
    double *v = n <= FAST_LOGPROBS ? stack : malloc(n * sizeof(*v));
    if (!v)
        return false;
    size_t k = 0;
    for (int x = d->tok[arr].child; x >= 0; x = d->tok[x].next) {
        int lpv = ec_jdoc_get(d, x, "logprob");
        if (ec_jdoc_is(d, lpv, EC_JT_NUM))
            v[k++] = ec_jdoc_num(d, lpv);
    }
    if (k > 0)
        ec_lp_stats_compute(v, k, lp);
    if (v != stack)
        free(v);
    return true;
}

/* What ec_prov_openai_parse_dom does on success, read from the tokens. */
static bool fast_answer(const ec_tier_cfg *t, const ec_jdoc *d, ec_infer_reply *out)
{
    int choices = ec_jdoc_get(d, 0, "choices");
    if (!ec_jdoc_is(d, choices, EC_JT_ARR) || d->tok[choices].child < 0)
        return false;
    int choice = d->tok[choices].child;
    int content = ec_jdoc_get(d, ec_jdoc_get(d, choice, "message"), "content");
    if (!ec_jdoc_is(d, content, EC_JT_STR))
        return false;
    ec_lp_stats lp;
    if (!fast_logprobs(d, ec_jdoc_get(d, ec_jdoc_get(d, choice, "logprobs"), "content"), &lp))
        return false;
    int usage = ec_jdoc_get(d, 0, "usage");
    size_t len;
    char *answer = ec_jdoc_strdup(d, content, &len);
    char *model = NULL, *finish = NULL;
    ec_error scratch = {0}; /* a failure is reported by the cJSON path */
    bool ok = answer && fast_str(d, ec_jdoc_get(d, 0, "model"), &model) &&
              fast_str(d, ec_jdoc_get(d, choice, "finish_reason"), &finish) &&
              ec_prov_fill_reply(t, out, answer, len, model, finish,
                                 fast_count(d, ec_jdoc_get(d, usage, "prompt_tokens")),
                                 fast_count(d, ec_jdoc_get(d, usage, "completion_tokens")),
                                 &scratch) == EC_OK;
    free(answer);
    free(model);
    free(finish);
    if (ok)
        out->lp = lp;
    return ok;
}

bool ec_prov_openai_parse_fast(const ec_tier_cfg *t, const ec_http_response *resp,
                               ec_infer_reply *out)
{
    ec_jtok stack[FAST_TOKENS];
    ec_jdoc d;
    const char *body = resp->body.data;
    size_t n = resp->body.len;
    bool ok = ec_jdoc_parse(&d, body, n, stack, FAST_TOKENS);
    ec_jtok *heap = NULL;
    if (!ok && d.used == FAST_TOKENS) {
        /* Out of tokens, not refused: every token takes two bytes at least
         * (a value and a separator), so n / 2 + 2 always suffice. */
        heap = malloc((n / 2 + 2) * sizeof(*heap));
        ok = heap && ec_jdoc_parse(&d, body, n, heap, n / 2 + 2);
    }
    ok = ok && ec_jdoc_is(&d, 0, EC_JT_OBJ) && fast_answer(t, &d, out);
    free(heap);
    return ok;
}

/* Most answers take the fast path; whatever it does not take (an error
 * status, a malformed body, \u escapes, ...) the cJSON path reads, as before
 * it alone did. tests/unit/test_provider_fast.c pins that both give the same
 * reply. */
static ec_outcome openai_parse_chat(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err)
{
    if (resp->status != 200)
        return ec_prov_status_outcome(t, resp, err);
    if (ec_prov_openai_parse_fast(t, resp, out))
        return EC_OUTCOME_OK;
    return ec_prov_openai_parse_dom(t, resp, out, err);
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
