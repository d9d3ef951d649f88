/* Ollama native API: POST /api/chat and GET /api/tags.
 *
 * stream:false gets one JSON object. stream:true (Ollama's default, also when
 * the key is absent) gets NDJSON: one chunk per token, then the final
 * done:true object, all in one response body (no pacing between chunks).
 * "logprobs": true / "top_logprobs": N add Ollama's logprobs array
 * ({token, logprob, top_logprobs}), per chunk when streaming. When a model
 * sets require_key, Authorization: Bearer <key> is demanded, as a proxy in
 * front of Ollama would. */
#include "sim.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"
#include "sim_answer.h"

json_t *sim_ollama_error(int status, const char *message)
{
    return json_pack("{s:s, s:b}", "error", message, "simulated", 1);
}

static json_t *lp_entry(const sim_answer *a, size_t i, long top)
{
    char *tok = sim_answer_token(a, i);
    json_t *tops = json_array();
    if (top > 0) {
        const char *alt[20];
        double alt_lp[20];
        json_array_append_new(tops, json_pack("{s:s, s:f}", "token", tok, "logprob", a->lp[i]));
        size_t n = sim_answer_alternatives(a, i, (size_t)top - 1, alt, alt_lp);
        for (size_t k = 0; k < n; k++)
            json_array_append_new(tops,
                                  json_pack("{s:s, s:f}", "token", alt[k], "logprob", alt_lp[k]));
    }
    json_t *e = json_pack("{s:s, s:f, s:o}", "token", tok ? tok : "", "logprob", a->lp[i],
                          "top_logprobs", tops);
    free(tok);
    return e;
}

/* The done:true object; message content is the full answer unless streaming. */
static json_t *final_object(sim_req *r, const char *model, const sim_prompt *p, const sim_answer *a,
                            bool stream, bool want_lp, long top)
{
    char now[40];
    sim_rfc3339_now(now);
    json_int_t total_ns = (json_int_t)((ec_mono_ms() - r->t0_ms) * 1e6);
    json_t *o =
        json_pack("{s:s, s:s, s:{s:s, s:s}, s:b, s:s, s:I, s:I, s:i, s:I, s:i, s:I, "
                  "s:b}",
                  "model", model, "created_at", now, "message", "role", "assistant", "content",
                  stream ? "" : a->text, "done", 1, "done_reason", a->truncated ? "length" : "stop",
                  "total_duration", total_ns, "load_duration", (json_int_t)0, "prompt_eval_count",
                  (int)sim_prompt_tokens(p), "prompt_eval_duration", total_ns / 4, "eval_count",
                  (int)a->n, "eval_duration", total_ns / 2, "simulated", 1);
    if (o && want_lp && !stream) {
        json_t *lps = json_array();
        for (size_t i = 0; i < a->n; i++)
            json_array_append_new(lps, lp_entry(a, i, top));
        json_object_set_new(o, "logprobs", lps);
    }
    return o;
}

static enum MHD_Result reply_stream(sim_req *r, const char *model, const sim_prompt *p,
                                    const sim_answer *a, bool want_lp, long top, bool malformed)
{
    ec_buf out;
    ec_buf_init(&out, 0);
    char now[40];
    sim_rfc3339_now(now);
    bool ok = true;
    for (size_t i = 0; ok && i <= a->n; i++) {
        json_t *o;
        if (i < a->n) {
            char *tok = sim_answer_token(a, i);
            o = json_pack("{s:s, s:s, s:{s:s, s:s}, s:b}", "model", model, "created_at", now,
                          "message", "role", "assistant", "content", tok ? tok : "", "done", 0);
            free(tok);
            if (o && want_lp)
                json_object_set_new(o, "logprobs", json_pack("[o]", lp_entry(a, i, top)));
        } else {
            o = final_object(r, model, p, a, true, want_lp, top);
        }
        char *line = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
        json_decref(o);
        ok = line && !ec_buf_append(&out, line, strlen(line)) && !ec_buf_append(&out, "\n", 1);
        free(line);
    }
    if (!ok) {
        ec_buf_free(&out);
        return sim_reply_error(r, sim_ollama_error, 500, "out of memory");
    }
    size_t len;
    char *data = ec_buf_take(&out, &len);
    if (malformed) {
        len /= 2;
        data[len] = '\0';
        r->note = "malformed";
    }
    return sim_reply(r, 200, "application/x-ndjson", data, len, 0);
}

enum MHD_Result sim_ollama_chat(sim_req *r)
{
    sim_server *srv = r->srv;
    enum MHD_Result res;
    sim_prompt prompt = {0};
    sim_answer ans = {0};
    ec_error err = {0};
    char why[256];
    json_t *req = sim_body_json(r, why, sizeof(why));
    if (!req)
        return sim_reply_error(r, sim_ollama_error, 400, "%s", why);

    const char *model = json_string_value(json_object_get(req, "model"));
    if (!model) {
        res = sim_reply_error(r, sim_ollama_error, 400, "model is required");
        goto out;
    }
    snprintf(r->model, sizeof(r->model), "%s", model);
    long m = sim_served_model(srv, model);
    if (m < 0) {
        res = sim_reply_error(r, sim_ollama_error, 404,
                              "model \"%s\" not found, try pulling it first", model);
        goto out;
    }
    bool malformed;
    if (!sim_model_enter(r, (size_t)m, sim_ollama_error, &malformed, &res))
        goto out;
    const sim_model *mod = &srv->script->models[m];
    if (mod->require_key && !sim_bearer_ok(r, mod->require_key)) {
        res = sim_reply_error(r, sim_ollama_error, 401, "unauthorized");
        goto out;
    }

    long max_tokens = -1, top = 0;
    json_t *opts = json_object_get(req, "options");
    json_t *np = json_object_get(opts, "num_predict");
    json_t *stream = json_object_get(req, "stream");
    json_t *lpv = json_object_get(req, "logprobs");
    json_t *topv = json_object_get(req, "top_logprobs");
    if (opts && !json_is_null(opts) && !json_is_object(opts)) {
        res = sim_reply_error(r, sim_ollama_error, 400, "options: expected an object");
        goto out;
    }
    if (np && !json_is_null(np)) {
        if (!json_is_integer(np)) {
            res = sim_reply_error(r, sim_ollama_error, 400,
                                  "options.num_predict: expected an integer");
            goto out;
        }
        /* Ollama: -1 (and other values < 1) mean no limit. */
        if (json_integer_value(np) >= 1)
            max_tokens = (long)json_integer_value(np);
    }
    if ((stream && !json_is_null(stream) && !json_is_boolean(stream)) ||
        (lpv && !json_is_null(lpv) && !json_is_boolean(lpv))) {
        res = sim_reply_error(r, sim_ollama_error, 400, "stream and logprobs are booleans");
        goto out;
    }
    if (topv && !json_is_null(topv)) {
        if (!json_is_integer(topv) || json_integer_value(topv) < 0 ||
            json_integer_value(topv) > 20) {
            res = sim_reply_error(r, sim_ollama_error, 400, "top_logprobs: expected 0..20");
            goto out;
        }
        top = (long)json_integer_value(topv);
    }
    bool streaming = !json_is_false(stream);
    bool want_lp = json_is_true(lpv) || top > 0;
    if (sim_prompt_read(json_object_get(req, "messages"), NULL, &prompt, &err)) {
        res = sim_reply_error(r, sim_ollama_error, 400, "%s", err.msg);
        goto out;
    }
    if (sim_answer_make(
            srv->script, mod, &prompt, max_tokens,
            sim_sample_number(srv, json_object_get(json_object_get(req, "options"), "temperature")),
            &ans)) {
        res = sim_reply_error(r, sim_ollama_error, 500, "out of memory");
        goto out;
    }
    if (streaming)
        res = reply_stream(r, model, &prompt, &ans, want_lp, top, malformed);
    else
        res = sim_reply_json(r, 200, final_object(r, model, &prompt, &ans, false, want_lp, top),
                             malformed, 0);
out:
    sim_answer_clear(&ans);
    sim_prompt_clear(&prompt);
    json_decref(req);
    return res;
}

/* "llama3.2-1b" -> family "llama", parameter size "1B"; "unknown" when the name says nothing. */
static void describe(const char *name, char *family, size_t flen, char *psize, size_t plen)
{
    size_t n = 0;
    while (name[n] && isalpha((unsigned char)name[n]) && n + 1 < flen)
        n++;
    snprintf(family, flen, "%.*s", (int)n, name);
    snprintf(psize, plen, "unknown");
    const char *p = strrchr(name, '-');
    const char *q = strrchr(name, ':');
    if (q > p)
        p = q;
    if (p && isdigit((unsigned char)p[1])) {
        size_t k = 1;
        while (isdigit((unsigned char)p[k]) || p[k] == '.')
            k++;
        if ((p[k] == 'b' || p[k] == 'B') && p[k + 1] == '\0')
            snprintf(psize, plen, "%.*sB", (int)(k - 1), p + 1);
    }
}

enum MHD_Result sim_ollama_tags(sim_req *r)
{
    json_t *models = json_array();
    for (size_t i = 0; i < r->srv->script->n_models; i++) {
        if (!sim_model_listed(r->srv, i))
            continue;
        const char *name = r->srv->script->models[i].name;
        char family[32], psize[16], digest[65];
        describe(name, family, sizeof(family), psize, sizeof(psize));
        uint64_t h = SIM_FNV_OFFSET;
        for (int k = 0; k < 4; k++) {
            h = sim_fnv1a(name, strlen(name), h + (uint64_t)k);
            snprintf(digest + 16 * k, 17, "%016llx", (unsigned long long)h);
        }
        json_int_t size = (json_int_t)(500000000u + h % 4000000000u);
        json_array_append_new(
            models,
            json_pack("{s:s, s:s, s:s, s:I, s:s, s:{s:s, s:s, s:s, s:[s], s:s, s:s}}", "name", name,
                      "model", name, "modified_at", "2024-09-25T00:00:00Z", "size", size, "digest",
                      digest, "details", "parent_model", "", "format", "gguf", "family", family,
                      "families", family, "parameter_size", psize, "quantization_level", "Q4_K_M"));
    }
    return sim_reply_json(r, 200, json_pack("{s:o, s:b}", "models", models, "simulated", 1), false,
                          0);
}
