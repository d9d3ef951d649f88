/* OpenAI chat completions (POST /v1/chat/completions) and model listing
 * (GET /v1/models), in the exact response shape of the real API plus a
 * top-level "simulated": true. stream:true and n > 1 are refused with 400
 * rather than answered in a shape the caller did not ask for. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/util.h"
#include "sim_answer.h"
#include "sim_replay.h"

/* Stable "created" for listed models, so listings are byte-identical. */
#define SIM_MODEL_CREATED 1700000000

static json_t *openai_error_code(int status, const char *message, const char *code)
{
    const char *type = "invalid_request_error";
    if (status == 429) {
        type = "requests";
        code = code ? code : "rate_limit_exceeded";
    } else if (status >= 500) {
        type = "server_error";
        code = code ? code : (status == 503 ? "service_unavailable" : NULL);
    } else if (status == 401) {
        code = code ? code : "invalid_api_key";
    }
    return json_pack("{s:{s:s, s:s, s:n, s:s?}, s:b}", "error", "message", message, "type", type,
                     "param", "code", code, "simulated", 1);
}

json_t *sim_openai_error(int status, const char *message)
{
    return openai_error_code(status, message, NULL);
}

/* Reads an optional integer field; null counts as absent (*out untouched). */
static bool opt_int(json_t *req, const char *key, long lo, long hi, long *out)
{
    json_t *v = json_object_get(req, key);
    if (!v || json_is_null(v))
        return true;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return false;
    *out = (long)json_integer_value(v);
    return true;
}

static json_t *logprobs_json(const sim_answer *a, long top)
{
    json_t *content = json_array();
    for (size_t i = 0; i < a->n; i++) {
        char *tok = sim_answer_token(a, i);
        json_t *tops = json_array();
        const char *alt[20];
        double alt_lp[20];
        if (top > 0) {
            json_array_append_new(
                tops, json_pack("{s:s, s:f, s:n}", "token", tok, "logprob", a->lp[i], "bytes"));
            size_t n = sim_answer_alternatives(a, i, (size_t)top - 1, alt, alt_lp);
            for (size_t k = 0; k < n; k++)
                json_array_append_new(tops, json_pack("{s:s, s:f, s:n}", "token", alt[k], "logprob",
                                                      alt_lp[k], "bytes"));
        }
        json_array_append_new(content,
                              json_pack("{s:s, s:f, s:n, s:o}", "token", tok ? tok : "", "logprob",
                                        a->lp[i], "bytes", "top_logprobs", tops));
        free(tok);
    }
    return json_pack("{s:o, s:n}", "content", content, "refusal");
}

enum MHD_Result sim_openai_chat(sim_req *r)
{
    sim_server *srv = r->srv;
    enum MHD_Result res;
    sim_prompt prompt = {0};
    sim_answer ans = {0};
    ec_error err = {0};
    char why[256];
    json_t *req = sim_body_json(r, why, sizeof(why));
    if (!req)
        return sim_reply_error(r, sim_openai_error, 400, "%s", why);

    const char *model = json_string_value(json_object_get(req, "model"));
    if (!model) {
        res = sim_reply_error(r, sim_openai_error, 400, "model: required string");
        goto out;
    }
    snprintf(r->model, sizeof(r->model), "%s", model);
    long m = sim_served_model(srv, model);
    if (m < 0) {
        res = sim_reply_json(
            r, 404,
            openai_error_code(404, "The model does not exist (simulated)", "model_not_found"),
            false, 0);
        goto out;
    }
    bool malformed;
    if (!sim_model_enter(r, (size_t)m, sim_openai_error, &malformed, &res))
        goto out;
    const sim_model *mod = &srv->script->models[m];
    if (mod->require_key && !sim_bearer_ok(r, mod->require_key)) {
        res = sim_reply_error(r, sim_openai_error, 401, "Incorrect API key provided (simulated)");
        goto out;
    }

    long max_tokens = -1, top = 0;
    json_t *lpv = json_object_get(req, "logprobs");
    json_t *temp = json_object_get(req, "temperature");
    if (!opt_int(req, "max_tokens", 1, 1000000, &max_tokens) ||
        !opt_int(req, "max_completion_tokens", 1, 1000000, &max_tokens)) {
        res = sim_reply_error(r, sim_openai_error, 400, "max_tokens: expected an integer >= 1");
        goto out;
    }
    if (lpv && !json_is_null(lpv) && !json_is_boolean(lpv)) {
        res = sim_reply_error(r, sim_openai_error, 400, "logprobs: expected a boolean");
        goto out;
    }
    bool want_lp = json_is_true(lpv);
    if (!opt_int(req, "top_logprobs", 0, 20, &top) || (top > 0 && !want_lp)) {
        res = sim_reply_error(r, sim_openai_error, 400,
                              "top_logprobs: an integer in [0, 20], with logprobs true");
        goto out;
    }
    if (temp && !json_is_null(temp) && !json_is_number(temp)) {
        res = sim_reply_error(r, sim_openai_error, 400, "temperature: expected a number");
        goto out;
    }
    if (json_is_true(json_object_get(req, "stream"))) {
        res = sim_reply_error(r, sim_openai_error, 400, "stream: not supported by edgecascade-sim");
        goto out;
    }
    long n_choices = 1;
    if (!opt_int(req, "n", 1, 1, &n_choices)) {
        res = sim_reply_error(r, sim_openai_error, 400, "n: only 1 is supported by the simulator");
        goto out;
    }
    if (sim_prompt_read(json_object_get(req, "messages"), NULL, &prompt, &err)) {
        res = sim_reply_error(r, sim_openai_error, 400, "%s", err.msg);
        goto out;
    }
    unsigned pt, ct;
    if (srv->replay) {
        sim_replay_hit hit;
        if (sim_replay_answer(srv->replay, model, &prompt, &ans, &hit, &err)) {
            res = sim_reply_json(
                r, err.code == EC_ERR_NOTFOUND ? 404 : 500,
                openai_error_code(404, err.msg,
                                  err.code == EC_ERR_NOTFOUND ? "not_recorded" : NULL),
                false, 0);
            goto out;
        }
        if (hit.latency_ms && !sim_sleep(srv, hit.latency_ms)) {
            res = sim_reset(r);
            goto out;
        }
        pt = hit.tokens_in;
        ct = hit.tokens_out;
    } else {
        if (sim_answer_make(srv->script, mod, &prompt, max_tokens, sim_sample_number(srv, temp),
                            &ans)) {
            res = sim_reply_error(r, sim_openai_error, 500, "out of memory");
            goto out;
        }
        pt = sim_prompt_tokens(&prompt);
        ct = (unsigned)ans.n;
    }

    char id[27];
    ec_id_new(id);
    json_t *choice = json_pack("{s:i, s:{s:s, s:s, s:n}, s:o, s:s}", "index", 0, "message", "role",
                               "assistant", "content", ans.text, "refusal", "logprobs",
                               want_lp ? logprobs_json(&ans, top) : json_null(), "finish_reason",
                               ans.truncated ? "length" : "stop");
    json_t *body = json_pack(
        "{s:s+, s:s, s:I, s:s, s:[o], s:{s:i, s:i, s:i}, s:s, s:b}", "id", "chatcmpl-sim", id,
        "object", "chat.completion", "created", (json_int_t)time(NULL), "model", model, "choices",
        choice, "usage", "prompt_tokens", (int)pt, "completion_tokens", (int)ct, "total_tokens",
        (int)(pt + ct), "system_fingerprint", "edgecascade-sim", "simulated", 1);
    res = sim_reply_json(r, 200, body, malformed, 0);
out:
    sim_answer_clear(&ans);
    sim_prompt_clear(&prompt);
    json_decref(req);
    return res;
}

enum MHD_Result sim_openai_models(sim_req *r)
{
    json_t *data = json_array();
    for (size_t i = 0; i < r->srv->script->n_models; i++) {
        if (!sim_model_listed(r->srv, i))
            continue;
        json_array_append_new(
            data, json_pack("{s:s, s:s, s:i, s:s}", "id", r->srv->script->models[i].name, "object",
                            "model", "created", SIM_MODEL_CREATED, "owned_by", "edgecascade-sim"));
    }
    return sim_reply_json(
        r, 200, json_pack("{s:s, s:o, s:b}", "object", "list", "data", data, "simulated", 1), false,
        0);
}
