/* The simulator's model APIs (OpenAI-compatible, Anthropic, Ollama) as a
 * client sees them over real HTTP; faults and the command line are in
 * test_sim_faults.c. */
#include "test_sim_fixtures.h"

static void test_openai_shape_and_usage(void **state)
{
    http_res r;
    chat("loc", TOL_MESSAGES, "\"max_tokens\":100,\"temperature\":0.2", &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_true(json_integer_value(json_object_get(j, "created")) > 1600000000);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    assert_true(json_is_true(json_object_get(j, "simulated")));
    json_t *choices = json_object_get(j, "choices");
    assert_int_equal(json_array_size(choices), 1);
    json_t *c0 = json_array_get(choices, 0);
    assert_int_equal(json_integer_value(json_object_get(c0, "index")), 0);
    json_t *msg = json_object_get(c0, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), TOL_ANSWER);
    assert_true(json_is_null(json_object_get(c0, "logprobs")));
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 6);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 17);
    char ct[64];
    assert_non_null(hdr(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_decref(j);
    http_free(&r);
}

/* The raw bytes of "choices":[...] up to ,"usage". */
static char *choices_bytes(const http_res *r)
{
    const char *a = strstr(r->body, "\"choices\":");
    const char *b = a ? strstr(a, ",\"usage\":") : NULL;
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

static void test_openai_deterministic_default_answer(void **state)
{
    const char *msgs = "[{\"role\":\"user\",\"content\":\"What torque for M8 bolts?\"}]";
    http_res r1, r2, r3;
    chat("loc", msgs, "\"logprobs\":true", &r1);
    chat("loc", msgs, "\"logprobs\":true", &r2);
    chat("loc", "[{\"role\":\"user\",\"content\":\"Something else entirely\"}]",
         "\"logprobs\":true", &r3);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    assert_int_equal(r3.status, 200);
    char *c1 = choices_bytes(&r1), *c2 = choices_bytes(&r2), *c3 = choices_bytes(&r3);
    assert_string_equal(c1, c2);
    assert_string_not_equal(c1, c3);

    json_t *j = body_json(&r1);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    assert_true(strncmp(content, "[simulated loc] ", 16) == 0);
    assert_true(strlen(content) > 30);
    json_t *toks = json_object_get(json_object_get(c0, "logprobs"), "content");
    assert_true(json_array_size(toks) > 3);
    size_t i;
    json_t *t;
    json_array_foreach(toks, i, t)
    {
        double lp = json_real_value(json_object_get(t, "logprob"));
        /* default_logprob -0.3 with at most 0.05 of jitter, never positive */
        assert_true(lp <= 0.0 && lp >= -0.35 - 1e-9 && lp <= -0.25 + 1e-9);
    }
    free(c1);
    free(c2);
    free(c3);
    json_decref(j);
    http_free(&r1);
    http_free(&r2);
    http_free(&r3);
}

static void test_openai_logprobs(void **state)
{
    http_res r;
    chat("loc", "[{\"role\":\"user\",\"content\":\"Strong vibration on pump 3\"}]",
         "\"logprobs\":true,\"top_logprobs\":3", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    assert_string_equal(content, "Check the bearings now please");
    json_t *toks = json_object_get(json_object_get(c0, "logprobs"), "content");
    assert_int_equal(json_array_size(toks), 5);
    const double want[] = {-2.1, -0.3, -1.0, -1.0, -1.0}; /* the last value repeats */
    char joined[256] = "";
    for (size_t i = 0; i < 5; i++) {
        json_t *t = json_array_get(toks, i);
        strcat(joined, json_string_value(json_object_get(t, "token")));
        assert_true(fabs(json_real_value(json_object_get(t, "logprob")) - want[i]) < 1e-9);
        assert_true(json_is_null(json_object_get(t, "bytes")));
        json_t *tops = json_object_get(t, "top_logprobs");
        assert_int_equal(json_array_size(tops), 3);
        /* the chosen token leads its alternatives, whose probabilities sum below 1 */
        assert_string_equal(json_string_value(json_object_get(json_array_get(tops, 0), "token")),
                            json_string_value(json_object_get(t, "token")));
        double p = 0;
        for (size_t k = 0; k < 3; k++)
            p += exp(json_real_value(json_object_get(json_array_get(tops, k), "logprob")));
        assert_true(p < 1.0);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(toks, 1), "token")),
                        " the");
    assert_string_equal(joined, content);
    json_decref(j);
    http_free(&r);

    /* Rule logprob: every token the same. */
    chat("loc", TOL_MESSAGES, "\"logprobs\":true", &r);
    j = body_json(&r);
    toks = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"), "content");
    assert_int_equal(json_array_size(toks), 6);
    joined[0] = '\0';
    for (size_t i = 0; i < 6; i++) {
        json_t *t = json_array_get(toks, i);
        strcat(joined, json_string_value(json_object_get(t, "token")));
        assert_true(fabs(json_real_value(json_object_get(t, "logprob")) + 0.02) < 1e-9);
        assert_int_equal(json_array_size(json_object_get(t, "top_logprobs")), 0);
    }
    assert_string_equal(joined, TOL_ANSWER);
    json_decref(j);
    http_free(&r);

    /* logprobs:false is the same as not asking. */
    chat("loc", TOL_MESSAGES, "\"logprobs\":false", &r);
    j = body_json(&r);
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs")));
    json_decref(j);
    http_free(&r);
}

static char *answer_of(const http_res *r)
{
    json_t *j = body_json(r);
    const char *t = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    assert_non_null(t);
    char *copy = strdup(t);
    json_decref(j);
    return copy;
}

/* A greedy request gets the rule's answer every time; sampled ones
 * (temperature > 0) get the rule's samples in turn. */
static void test_openai_samples(void **state)
{
    static const char msgs[] = "[{\"role\":\"user\",\"content\":\"Read the gauge.\"}]";
    const char *want[] = {"7", "7", NULL, NULL};
    const char *extra[] = {NULL, "\"temperature\":0", "\"temperature\":0.7", "\"temperature\":0.7"};
    char *got[4];
    for (int i = 0; i < 4; i++) {
        http_res r;
        chat("loc", msgs, extra[i], &r);
        assert_int_equal(r.status, 200);
        got[i] = answer_of(&r);
        http_free(&r);
        if (want[i])
            assert_string_equal(got[i], want[i]);
    }
    /* the two samples differ: one of each */
    assert_true((strcmp(got[2], "7") == 0 && strcmp(got[3], "8") == 0) ||
                (strcmp(got[2], "8") == 0 && strcmp(got[3], "7") == 0));
    for (int i = 0; i < 4; i++)
        free(got[i]);
}

static void test_openai_max_tokens(void **state)
{
    http_res r;
    chat("loc", TOL_MESSAGES, "\"max_tokens\":2,\"logprobs\":true", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c0, "message"), "content")), "PASS: the");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    assert_int_equal(json_array_size(json_object_get(json_object_get(c0, "logprobs"), "content")),
                     2);
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 2);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 13);
    json_decref(j);
    http_free(&r);

    chat("loc", TOL_MESSAGES, "\"max_tokens\":0", &r);
    assert_int_equal(r.status, 400);
    http_free(&r);
}

static void test_openai_models(void **state)
{
    http_res r;
    http("GET", "/v1/models", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 10);
    json_t *m0 = json_array_get(data, 0);
    assert_string_equal(json_string_value(json_object_get(m0, "id")), "loc");
    assert_string_equal(json_string_value(json_object_get(m0, "object")), "model");
    assert_true(json_is_integer(json_object_get(m0, "created")));
    assert_string_equal(json_string_value(json_object_get(m0, "owned_by")), "edgecascade-sim");
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")), "cloud");
    json_decref(j);
    http_free(&r);
}

static void test_openai_auth(void **state)
{
    const char *body = "{\"model\":\"cloud\",\"messages\":" TOL_MESSAGES "}";
    const char *const wrong[] = {"Authorization: Bearer sk-wrong", NULL};
    const char *const right[] = {"Authorization: Bearer sk-test", NULL};
    http_res r;
    http("POST", "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 401);
    json_t *j = body_json(&r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_api_key");
    json_decref(j);
    http_free(&r);
    http("POST", "/v1/chat/completions", body, wrong, 5000, &r);
    assert_int_equal(r.status, 401);
    http_free(&r);
    http("POST", "/v1/chat/completions", body, right, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
}

static void test_anthropic(void **state)
{
    const char *body = "{\"model\":\"loc\",\"max_tokens\":100,\"system\":\"You are terse.\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"Is the part within "
                       "tolerance?\"}]}";
    http_res r;
    http("POST", "/v1/messages", body, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(strncmp(json_string_value(json_object_get(j, "id")), "msg_", 4) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    json_t *c = json_array_get(json_object_get(j, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(c, "text")), TOL_ANSWER);
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "input_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(u, "output_tokens")), 6);
    json_decref(j);
    http_free(&r);

    const char *small = "{\"model\":\"loc\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                        "\"content\":[{\"type\":\"text\",\"text\":\"tolerance?\"}]}]}";
    http("POST", "/v1/messages", small, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "max_tokens");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "content"), 0), "text")),
                        "PASS:");
    json_decref(j);
    http_free(&r);

    const char *const no_key[] = {"anthropic-version: 2023-06-01", NULL};
    http("POST", "/v1/messages", body, no_key, 5000, &r);
    assert_int_equal(r.status, 401);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "authentication_error");
    assert_true(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
    http_free(&r);

    const char *const no_version[] = {"x-api-key: k", NULL};
    http("POST", "/v1/messages", body, no_version, 5000, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "invalid_request_error");
    json_decref(j);
    http_free(&r);

    /* require_key applies to x-api-key too. */
    const char *cloud = "{\"model\":\"cloud\",\"max_tokens\":10,\"messages\":" TOL_MESSAGES "}";
    const char *const good[] = {"x-api-key: sk-test", "anthropic-version: 2023-06-01", NULL};
    http("POST", "/v1/messages", cloud, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 401);
    http_free(&r);
    http("POST", "/v1/messages", cloud, good, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
}

static void test_ollama(void **state)
{
    http_res r;
    http("POST", "/api/chat",
         "{\"model\":\"loc\",\"stream\":false,\"options\":{\"num_predict\":3,\"temperature\":0},"
         "\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    assert_true(json_is_string(json_object_get(j, "created_at")));
    json_t *msg = json_object_get(j, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "PASS: the part");
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_eval_count")), 11);
    assert_int_equal(json_integer_value(json_object_get(j, "eval_count")), 3);
    assert_true(json_integer_value(json_object_get(j, "total_duration")) > 0);
    json_decref(j);
    http_free(&r);

    http("POST", "/api/chat", "{\"model\":\"loc\",\"stream\":false,\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "stop");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "message"), "content")), TOL_ANSWER);
    json_decref(j);
    http_free(&r);

    /* Without "stream": NDJSON, one chunk per token and a final done:true. */
    http("POST", "/api/chat", "{\"model\":\"loc\",\"messages\":" TOL_MESSAGES "}", NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    char joined[256] = "";
    int lines = 0;
    bool done = false;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_false(done);
        done = json_is_true(json_object_get(o, "done"));
        strcat(joined,
               json_string_value(json_object_get(json_object_get(o, "message"), "content")));
        if (done)
            assert_int_equal(json_integer_value(json_object_get(o, "eval_count")), 6);
        json_decref(o);
        lines++;
    }
    assert_true(done);
    assert_int_equal(lines, 7);
    assert_string_equal(joined, TOL_ANSWER);
    http_free(&r);

    http("GET", "/api/tags", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    json_t *models = json_object_get(j, "models");
    assert_int_equal(json_array_size(models), 10);
    json_t *m0 = json_array_get(models, 0);
    assert_string_equal(json_string_value(json_object_get(m0, "name")), "loc");
    assert_string_equal(json_string_value(json_object_get(m0, "model")), "loc");
    assert_true(json_is_string(json_object_get(m0, "modified_at")));
    assert_true(json_integer_value(json_object_get(m0, "size")) > 0);
    assert_int_equal(strlen(json_string_value(json_object_get(m0, "digest"))), 64);
    assert_true(json_is_object(json_object_get(m0, "details")));
    json_decref(j);
    http_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_shape_and_usage),
        cmocka_unit_test(test_openai_deterministic_default_answer),
        cmocka_unit_test(test_openai_logprobs),
        cmocka_unit_test(test_openai_samples),
        cmocka_unit_test(test_openai_max_tokens),
        cmocka_unit_test(test_openai_models),
        cmocka_unit_test(test_openai_auth),
        cmocka_unit_test(test_anthropic),
        cmocka_unit_test(test_ollama),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
