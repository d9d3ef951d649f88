/* Anthropic Messages API (POST /v1/messages). Like the real service it wants
 * x-api-key (401 without) and anthropic-version (400 without); when the
 * model sets require_key the key must also match. The real API gives no
 * logprobs, so neither does this. max_tokens is optional here (the real API
 * requires it) so clients that omit it still get an answer to look at. */
#include "sim.h"

#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"
#include "sim_answer.h"

static json_t *anthropic_error(int status, const char *message)
{
    const char *type = "api_error";
    switch (status) {
    case 400:
    case 405:
        type = "invalid_request_error";
        break;
    case 401:
        type = "authentication_error";
        break;
    case 403:
        type = "permission_error";
        break;
    case 404:
        type = "not_found_error";
        break;
    case 413:
        type = "request_too_large";
        break;
    case 429:
        type = "rate_limit_error";
        break;
    case 503:
    case 529:
        type = "overloaded_error";
        break;
    }
    return json_pack("{s:s, s:{s:s, s:s}, s:b}", "type", "error", "error", "type", type, "message",
                     message, "simulated", 1);
}

enum MHD_Result sim_anthropic_messages(sim_req *r)
{
    sim_server *srv = r->srv;
    enum MHD_Result res;
    sim_prompt prompt = {0};
    sim_answer ans = {0};
    ec_error err = {0};
    json_t *req = NULL;
    char why[256];

    const char *key = sim_header(r, "x-api-key");
    if (!key || !*key)
        return sim_reply_error(r, anthropic_error, 401, "x-api-key header is required");
    if (!sim_header(r, "anthropic-version"))
        return sim_reply_error(r, anthropic_error, 400, "anthropic-version header is required");
    if (!(req = sim_body_json(r, why, sizeof(why))))
        return sim_reply_error(r, anthropic_error, 400, "%s", why);

    const char *model = json_string_value(json_object_get(req, "model"));
    if (!model) {
        res = sim_reply_error(r, anthropic_error, 400, "model: Field required");
        goto out;
    }
    snprintf(r->model, sizeof(r->model), "%s", model);
    long m = sim_served_model(srv, model);
    if (m < 0) {
        res = sim_reply_error(r, anthropic_error, 404, "model: %s", model);
        goto out;
    }
    bool malformed;
    if (!sim_model_enter(r, (size_t)m, anthropic_error, &malformed, &res))
        goto out;
    const sim_model *mod = &srv->script->models[m];
    if (mod->require_key && strcmp(key, mod->require_key) != 0) {
        res = sim_reply_error(r, anthropic_error, 401, "invalid x-api-key");
        goto out;
    }

    long max_tokens = -1;
    json_t *mt = json_object_get(req, "max_tokens");
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1) {
            res = sim_reply_error(r, anthropic_error, 400, "max_tokens: expected an integer >= 1");
            goto out;
        }
        max_tokens = (long)json_integer_value(mt);
    }
    if (json_is_true(json_object_get(req, "stream"))) {
        res = sim_reply_error(r, anthropic_error, 400, "stream: not supported by edgecascade-sim");
        goto out;
    }
    if (sim_prompt_read(json_object_get(req, "messages"), json_object_get(req, "system"), &prompt,
                        &err)) {
        res = sim_reply_error(r, anthropic_error, 400, "%s", err.msg);
        goto out;
    }
    if (sim_answer_make(srv->script, mod, &prompt, max_tokens,
                        sim_sample_number(srv, json_object_get(req, "temperature")), &ans)) {
        res = sim_reply_error(r, anthropic_error, 500, "out of memory");
        goto out;
    }

    char id[27];
    ec_id_new(id);
    json_t *body = json_pack("{s:s+, s:s, s:s, s:s, s:[{s:s, s:s}], s:s, s:n, s:{s:i, s:i}, s:b}",
                             "id", "msg_sim", id, "type", "message", "role", "assistant", "model",
                             model, "content", "type", "text", "text", ans.text, "stop_reason",
                             ans.truncated ? "max_tokens" : "end_turn", "stop_sequence", "usage",
                             "input_tokens", (int)sim_prompt_tokens(&prompt), "output_tokens",
                             (int)ans.n, "simulated", 1);
    res = sim_reply_json(r, 200, body, malformed, 0);
out:
    sim_answer_clear(&ans);
    sim_prompt_clear(&prompt);
    json_decref(req);
    return res;
}
