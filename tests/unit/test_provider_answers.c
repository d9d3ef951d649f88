/* What each provider reads from an answer (text, tokens, logprobs), how it
 * classifies a status or a malformed body, and the model lists. */
#include "test_provider_fixtures.h"

/* ---- answers ---- */

static void test_parse_openai_logprobs(void **state)
{
    ec_tier_cfg t = tier("vllm", "qwen2.5-1.5b", "http://127.0.0.1:8000/v1");
    ec_http_response resp = canned(
        200, "{\"id\":\"cmpl-1\",\"object\":\"chat.completion\",\"model\":\"Qwen/Qwen2.5-1.5B\","
             "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"3.2 "
             "bar\"},\"logprobs\":{\"content\":[{\"token\":\"3\",\"logprob\":-0.1,\"bytes\":[51],"
             "\"top_logprobs\":[]},{\"token\":\".\",\"logprob\":-0.2},{\"token\":\"2\","
             "\"logprob\":-0.05},{\"token\":\" bar\",\"logprob\":-0.6}]},\"finish_reason\":"
             "\"stop\"}],\"usage\":{\"prompt_tokens\":21,\"total_tokens\":25,"
             "\"completion_tokens\":4}}");
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error err = {0};
    assert_int_equal(find("vllm")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "3.2 bar");
    assert_string_equal(out.model, "Qwen/Qwen2.5-1.5B");
    assert_string_equal(out.finish_reason, "stop");
    assert_int_equal(out.tokens_in, 21);
    assert_int_equal(out.tokens_out, 4);
    assert_true(out.lp.present);
    assert_int_equal(out.lp.n_tokens, 4);
    assert_near(out.lp.mean, -0.2375, 1e-9);
    assert_near(out.lp.min, -0.6, 1e-9);
    assert_near(out.lp.geo_prob, exp(-0.2375), 1e-9);
    assert_near(out.lp.first_prob, exp(-0.1), 1e-9);
    assert_near(out.cost_usd, 0.0, 0.0);
    assert_near(out.latency_ms, 0.0, 0.0);

    /* Parsing again into a filled reply replaces (not leaks) its strings. */
    assert_int_equal(find("vllm")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "3.2 bar");
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_parse_openai_plain(void **state)
{
    ec_tier_cfg t = tier("openai", "gpt-4o-mini", "https://api.openai.com/v1");
    /* No "model" in the answer: the tier's model is reported. */
    ec_http_response resp =
        canned(200, "{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":"
                    "\"Close valve V2.\"},\"logprobs\":null,\"finish_reason\":\"length\"}],"
                    "\"usage\":{\"prompt_tokens\":40,\"completion_tokens\":5}}");
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error err = {0};
    assert_int_equal(find("openai")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "Close valve V2.");
    assert_string_equal(out.model, "gpt-4o-mini");
    assert_string_equal(out.finish_reason, "length");
    assert_int_equal(out.tokens_in, 40);
    assert_int_equal(out.tokens_out, 5);
    assert_false(out.lp.present);
    assert_int_equal(out.lp.n_tokens, 0);
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_parse_ollama(void **state)
{
    ec_tier_cfg t = tier("ollama", "llama3.2:1b", "http://127.0.0.1:11434");
    ec_http_response resp = canned(
        200, "{\"model\":\"llama3.2:1b\",\"created_at\":\"2024-10-01T10:00:00Z\",\"message\":"
             "{\"role\":\"assistant\",\"content\":\"Valve V2 is open.\"},\"done_reason\":"
             "\"stop\",\"done\":true,\"total_duration\":123456,\"prompt_eval_count\":26,"
             "\"eval_count\":7}");
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    out.lp.present = true; /* must be cleared: Ollama has no logprobs */
    ec_error err = {0};
    assert_int_equal(find("ollama")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "Valve V2 is open.");
    assert_string_equal(out.model, "llama3.2:1b");
    assert_string_equal(out.finish_reason, "stop");
    assert_int_equal(out.tokens_in, 26);
    assert_int_equal(out.tokens_out, 7);
    assert_false(out.lp.present);
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_parse_anthropic(void **state)
{
    ec_tier_cfg t = tier("anthropic", "claude-3-5-haiku-latest", "https://api.anthropic.com/v1");
    ec_http_response resp = canned(
        200, "{\"id\":\"msg_1\",\"type\":\"message\",\"role\":\"assistant\",\"model\":"
             "\"claude-3-5-haiku-20241022\",\"content\":[{\"type\":\"text\",\"text\":\"Line A. "
             "\"},{\"type\":\"tool_use\",\"id\":\"t1\",\"name\":\"x\",\"input\":{}},{\"type\":"
             "\"text\",\"text\":\"Line B.\"}],\"stop_reason\":\"max_tokens\",\"stop_sequence\":"
             "null,\"usage\":{\"input_tokens\":30,\"output_tokens\":12}}");
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error err = {0};
    assert_int_equal(find("anthropic")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "Line A. Line B.");
    assert_string_equal(out.model, "claude-3-5-haiku-20241022");
    assert_string_equal(out.finish_reason, "length");
    assert_int_equal(out.tokens_in, 30);
    assert_int_equal(out.tokens_out, 12);
    assert_false(out.lp.present);
    reply_free(&out);
    ec_http_response_free(&resp);

    resp = canned(200, "{\"content\":[{\"type\":\"text\",\"text\":\"ok\"}],\"stop_reason\":"
                       "\"end_turn\",\"usage\":{\"input_tokens\":3,\"output_tokens\":1}}");
    assert_int_equal(find("anthropic")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.finish_reason, "stop");
    assert_string_equal(out.model, "claude-3-5-haiku-latest");
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_parse_long_answer(void **state)
{
    /* An answer longer than the wire allows is cut on a UTF-8 boundary. */
    ec_tier_cfg t = tier("vllm", "m", "http://127.0.0.1:8000/v1");
    ec_buf b;
    ec_buf_init(&b, 0);
    assert_int_equal(ec_buf_printf(&b, "{\"choices\":[{\"message\":{\"content\":\"a"), EC_OK);
    for (size_t i = 0; i < EC_MAX_ANSWER / 2 + 10; i++)
        assert_int_equal(ec_buf_append(&b, "\xc3\xa9", 2), EC_OK);
    assert_int_equal(ec_buf_printf(&b, "\"},\"finish_reason\":\"stop\"}]}"), EC_OK);
    ec_http_response resp = canned(200, ec_buf_cstr(&b));
    ec_buf_free(&b);
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error err = {0};
    assert_int_equal(find("vllm")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    size_t n = strlen(out.answer);
    assert_true(n <= EC_MAX_ANSWER && n >= EC_MAX_ANSWER - 2);
    assert_int_equal((n - 1) % 2, 0); /* "a" then whole two-byte characters */
    assert_string_equal(out.finish_reason, "length");
    reply_free(&out);
    ec_http_response_free(&resp);
}

/* ---- classification ---- */

static void expect_outcome(const char *prov, long status, const char *body, ec_outcome want,
                           ec_error *err)
{
    ec_tier_cfg t = tier(prov, "m1", "http://127.0.0.1:1/v1");
    ec_http_response resp = canned(status, body);
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error_clear(err);
    ec_outcome oc = find(prov)->parse_chat(&t, &resp, &out, err);
    if (oc != want)
        fail_msg("%s status %ld: outcome %d, want %d (%s)", prov, status, oc, want, err->msg);
    if (want != EC_OUTCOME_OK) {
        assert_true(err->msg[0] != '\0');
        assert_null(out.answer); /* a failed parse leaves the reply alone */
    }
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_status_classes(void **state)
{
    static const long retry[] = {429, 500, 502, 503, 504, 529, 501, 302, 0};
    static const long error[] = {400, 401, 403, 404, 405, 413, 422};
    ec_error err;
    const ec_provider *const *all = ec_provider_all();
    for (size_t i = 0; all[i]; i++) {
        for (size_t j = 0; j < sizeof(retry) / sizeof(retry[0]); j++)
            expect_outcome(all[i]->name, retry[j], "{}", EC_OUTCOME_RETRY, &err);
        for (size_t j = 0; j < sizeof(error) / sizeof(error[0]); j++)
            expect_outcome(all[i]->name, error[j], "{}", EC_OUTCOME_ERROR, &err);
    }
}

static void test_malformed(void **state)
{
    ec_error err;
    static const char *openai_bad[] = {
        "{\"choices\":[{\"message\":",                      /* cut short */
        "",                                                 /* empty */
        "[1,2]",                                            /* not an object */
        "{\"choices\":[]}",                                 /* empty choices */
        "{\"object\":\"chat.completion\"}",                 /* no choices */
        "{\"choices\":[{\"message\":{\"content\":null}}]}", /* null content */
        "{\"choices\":[{\"message\":{\"content\":42}}]}",   /* wrong type */
        "<html><body>502 Bad Gateway</body></html>",        /* a proxy page */
    };
    for (size_t i = 0; i < sizeof(openai_bad) / sizeof(openai_bad[0]); i++) {
        expect_outcome("vllm", 200, openai_bad[i], EC_OUTCOME_RETRY, &err);
        assert_non_null(strstr(err.msg, "malformed response from m1"));
    }
    expect_outcome("ollama", 200, "{\"model\":\"x\",\"done\":true}", EC_OUTCOME_RETRY, &err);
    assert_non_null(strstr(err.msg, "malformed response from m1"));
    expect_outcome("anthropic", 200, "{\"content\":\"text\"}", EC_OUTCOME_RETRY, &err);
    assert_non_null(strstr(err.msg, "malformed response from m1"));
    expect_outcome("anthropic", 200, "{\"content\":[{\"type\":\"text\"}]}", EC_OUTCOME_RETRY, &err);
    /* Well-formed minimal answers are fine. */
    expect_outcome("vllm", 200, "{\"choices\":[{\"message\":{\"content\":\"\"}}]}", EC_OUTCOME_OK,
                   &err);
    expect_outcome("ollama", 200, "{\"message\":{\"content\":\"x\"}}", EC_OUTCOME_OK, &err);
    expect_outcome("anthropic", 200, "{\"content\":[]}", EC_OUTCOME_OK, &err);
}

static void test_error_messages(void **state)
{
    ec_tier_cfg t = tier("openai", "gpt-4o-mini", "https://api.openai.com/v1");
    t.api_key_env = (char *)"OPENAI_API_KEY";
    const char *key = "sk-proj-SECRET-abcdef";
    const ec_provider *p = find("openai");

    /* The request carried the key; the error about it must not. */
    ec_http_request req;
    ec_infer_request r = request();
    ec_error err = {0};
    assert_int_equal(p->build_chat(&t, &r, key, &req, &err), EC_OK);
    ec_http_request_free(&req);

    ec_http_response resp =
        canned(401, "{\"error\":{\"message\":\"Incorrect API key provided.\",\"type\":"
                    "\"invalid_request_error\",\"param\":null,\"code\":\"invalid_api_key\"}}");
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    assert_int_equal(p->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_ERROR);
    assert_string_equal(err.msg, "401 from openai (gpt-4o-mini): check the API key in "
                                 "OPENAI_API_KEY: Incorrect API key provided.");
    assert_null(strstr(err.msg, key));
    assert_null(strstr(err.msg, "SECRET"));
    ec_http_response_free(&resp);

    /* The API's own text is cut at 200 characters. */
    char body[1024];
    char longmsg[501];
    memset(longmsg, 'x', 500);
    longmsg[500] = '\0';
    snprintf(body, sizeof(body), "{\"error\":{\"message\":\"%s\"}}", longmsg);
    resp = canned(400, body);
    assert_int_equal(p->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_ERROR);
    assert_non_null(strstr(err.msg, "400 from openai (gpt-4o-mini)"));
    assert_non_null(strstr(err.msg, longmsg + 300)); /* 200 x's */
    assert_null(strstr(err.msg, longmsg + 299));     /* not 201 */
    ec_http_response_free(&resp);

    /* Ollama's flat error string, and a hint that names the model and URL. */
    ec_tier_cfg to = tier("ollama", "llama9", "http://127.0.0.1:11434");
    resp = canned(404, "{\"error\":\"model \\\"llama9\\\" not found, try pulling it first\"}");
    assert_int_equal(find("ollama")->parse_chat(&to, &resp, &out, &err), EC_OUTCOME_ERROR);
    assert_non_null(strstr(err.msg, "404 from ollama (llama9)"));
    assert_non_null(strstr(err.msg, "http://127.0.0.1:11434"));
    assert_non_null(strstr(err.msg, "model \"llama9\" not found, try pulling it first"));
    ec_http_response_free(&resp);

    /* Anthropic overloaded: retry, with the API's words. */
    ec_tier_cfg ta = tier("anthropic", "claude-3-5-haiku-latest", "https://api.anthropic.com/v1");
    resp = canned(529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\","
                       "\"message\":\"Overloaded\"}}");
    assert_int_equal(find("anthropic")->parse_chat(&ta, &resp, &out, &err), EC_OUTCOME_RETRY);
    assert_string_equal(err.msg, "529 from anthropic (claude-3-5-haiku-latest): overloaded: "
                                 "Overloaded");
    ec_http_response_free(&resp);

    /* 429 mentions Retry-After; vLLM's flat {"message"} is read too. */
    resp = canned(429, "{\"object\":\"error\",\"message\":\"too many requests\"}");
    resp.retry_after_s = 12;
    assert_int_equal(p->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_RETRY);
    assert_string_equal(err.msg, "429 from openai (gpt-4o-mini): rate limited, retry after "
                                 "12 s: too many requests");
    ec_http_response_free(&resp);

    /* No key configured at all says so. */
    t.api_key_env = NULL;
    resp = canned(401, "");
    assert_int_equal(p->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_ERROR);
    assert_non_null(strstr(err.msg, "no API key configured"));
    ec_http_response_free(&resp);
    assert_null(out.answer);
}

/* ---- discovery ---- */

static void expect_models(const char *prov, const char *body, const char *const *want)
{
    ec_http_response resp = canned(200, body);
    char **names = NULL;
    size_t n = 99;
    ec_error err = {0};
    assert_int_equal(find(prov)->parse_models(&resp, &names, &n, &err), EC_OK);
    size_t k = 0;
    while (want[k])
        k++;
    assert_int_equal(n, k);
    for (size_t i = 0; i < k; i++)
        assert_string_equal(names[i], want[i]);
    ec_models_free(names, n);
    ec_http_response_free(&resp);
}

static void test_parse_models(void **state)
{
    const char *oa[] = {"Qwen/Qwen2.5-1.5B", "other", NULL};
    expect_models("vllm",
                  "{\"object\":\"list\",\"data\":[{\"id\":\"Qwen/Qwen2.5-1.5B\",\"object\":"
                  "\"model\",\"owned_by\":\"vllm\"},{\"id\":\"other\"}]}",
                  oa);
    const char *ol[] = {"llama3.2:1b", "qwen2.5:0.5b", NULL};
    expect_models("ollama",
                  "{\"models\":[{\"name\":\"llama3.2:1b\",\"model\":\"llama3.2:1b\",\"size\":1},"
                  "{\"name\":\"qwen2.5:0.5b\"}]}",
                  ol);
    const char *an[] = {"claude-3-5-haiku-20241022", NULL};
    expect_models("anthropic",
                  "{\"data\":[{\"type\":\"model\",\"id\":\"claude-3-5-haiku-20241022\","
                  "\"display_name\":\"Claude 3.5 Haiku\"}],\"has_more\":false}",
                  an);
    const char *none[] = {NULL};
    expect_models("openai", "{\"object\":\"list\",\"data\":[]}", none);

    char **names = (char **)1;
    size_t n = 7;
    ec_error err = {0};
    ec_http_response resp = canned(401, "{\"error\":{\"message\":\"bad key\"}}");
    assert_int_equal(find("openai")->parse_models(&resp, &names, &n, &err), EC_ERR_HTTP);
    assert_null(names);
    assert_int_equal(n, 0);
    assert_non_null(strstr(err.msg, "401"));
    assert_non_null(strstr(err.msg, "bad key"));
    ec_http_response_free(&resp);
    resp = canned(200, "{\"data\":");
    assert_int_equal(find("openai")->parse_models(&resp, &names, &n, &err), EC_ERR_PROTO);
    assert_null(names);
    ec_http_response_free(&resp);
    resp = canned(200, "{\"data\":[]}");
    assert_int_equal(find("ollama")->parse_models(&resp, &names, &n, &err), EC_ERR_PROTO);
    ec_http_response_free(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_openai_logprobs),
        cmocka_unit_test(test_parse_openai_plain),
        cmocka_unit_test(test_parse_ollama),
        cmocka_unit_test(test_parse_anthropic),
        cmocka_unit_test(test_parse_long_answer),
        cmocka_unit_test(test_status_classes),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_parse_models),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
