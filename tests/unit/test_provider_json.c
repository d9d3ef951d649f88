/* The providers' JSON on cJSON (common/models/provider_json.c): text after
 * the value and an answer that is not UTF-8 are malformed responses; counts
 * are whole numbers; request bodies are compact and in insertion order. */
#include "test_provider_fixtures.h"

/* parse_chat on body[0..len): OK with out filled, or RETRY with an "invalid
 * JSON" message. */
static ec_outcome parse_n(const char *prov, const char *body, size_t len, ec_infer_reply *out,
                          ec_error *err)
{
    ec_tier_cfg t = tier(prov, "m1", "http://127.0.0.1:1/v1");
    ec_http_response resp;
    ec_http_response_init(&resp);
    resp.status = 200;
    assert_int_equal(ec_buf_append(&resp.body, body, len), EC_OK);
    memset(out, 0, sizeof(*out));
    ec_error_clear(err);
    ec_outcome oc = find(prov)->parse_chat(&t, &resp, out, err);
    ec_http_response_free(&resp);
    return oc;
}

static void expect_invalid(const char *prov, const char *body, size_t len)
{
    ec_infer_reply out;
    ec_error err;
    if (parse_n(prov, body, len, &out, &err) != EC_OUTCOME_RETRY)
        fail_msg("%s accepted %.*s", prov, (int)len, body);
    if (!strstr(err.msg, "malformed response from m1: invalid JSON: "))
        fail_msg("%.*s: %s", (int)len, body, err.msg);
    assert_null(out.answer);
}

#define INVALID(prov, lit) expect_invalid(prov, lit, sizeof(lit) - 1)

static void expect_malformed(const char *prov, const char *body, const char *why)
{
    ec_infer_reply out;
    ec_error err;
    if (parse_n(prov, body, strlen(body), &out, &err) != EC_OUTCOME_RETRY)
        fail_msg("%s accepted %s", prov, body);
    if (!strstr(err.msg, why))
        fail_msg("%s: %s", body, err.msg);
    assert_null(out.answer);
}

static void test_refused(void **state)
{
    /* Ollama answering a stream by mistake: not the first chunk's word. */
    INVALID("ollama", "{\"message\":{\"content\":\"Pu\"},\"done\":false}\n"
                      "{\"message\":{\"content\":\"mp\"},\"done\":true}\n");
    INVALID("ollama", "{\"message\":{\"content\":\"x\"}}<html>");
    INVALID("vllm", " ");
    INVALID("vllm", "{\"choices\":[1,]}");
    INVALID("vllm", "{\"choices\":[");
    /* A body that is JSON but not an object. */
    expect_malformed("vllm", "\"choices\"", "body is not a JSON object");
    expect_malformed("vllm", "[1]", "body is not a JSON object");
    /* An answer that is not UTF-8 (invalid, overlong, a surrogate) cannot
     * go into a Result. */
    expect_malformed("ollama", "{\"message\":{\"content\":\"caf\xe9\"}}",
                     "the answer is not valid UTF-8");
    expect_malformed("ollama", "{\"message\":{\"content\":\"\xc0\xaf\"}}",
                     "the answer is not valid UTF-8");
    expect_malformed("vllm", "{\"choices\":[{\"message\":{\"content\":\"\xed\xa0\x80\"}}]}",
                     "the answer is not valid UTF-8");
    /* A lone surrogate escape is no JSON string at all. */
    INVALID("vllm", "{\"choices\":[{\"message\":{\"content\":\"\\ud800\"}}]}");
    expect_malformed("anthropic", "{\"content\":[{\"type\":\"text\",\"text\":\"a\xff\"}]}",
                     "the answer is not valid UTF-8");
}

static void test_read(void **state)
{
    ec_infer_reply out;
    ec_error err;
    /* Whitespace after the value is fine; a model name that is not UTF-8 is
     * no name (the tier's model is reported). */
    const char *ws = "{\"message\":{\"content\":\"x\"},\"model\":\"b\xff\",\"eval_count\":7}"
                     " \r\n\t";
    assert_int_equal(parse_n("ollama", ws, strlen(ws), &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "x");
    assert_string_equal(out.model, "m1");
    assert_int_equal(out.tokens_out, 7);
    reply_free(&out);

    /* Escapes, a surrogate pair, and a body that is not NUL-terminated. */
    const char *esc = "{\"message\":{\"content\":\"\\u00b0C \\ud83d\\ude00 \\\"q\\\"\"}}"
                      "{\"message\":{\"content\":\"never read\"}}";
    size_t len = strchr(esc, '}') - esc + 2;
    assert_int_equal(parse_n("ollama", esc, len, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "\xc2\xb0"
                                    "C \xf0\x9f\x98\x80 \"q\"");
    reply_free(&out);

    /* Counts: whole numbers (12.0 and 1e2 too), negative or fractional is
     * none, above 32 bits is the most a count holds. */
    static const struct {
        const char *in, *out;
        uint32_t want_in, want_out;
    } counts[] = {
        {"12", "34", 12, 34},
        {"12.0", "1e2", 12, 100},
        {"1.5", "-0.5", 0, 0},
        {"-3", "-0", 0, 0},
        {"4294967296", "4294967295", UINT32_MAX, UINT32_MAX},
        {"9223372036854775807", "-9223372036854775808", UINT32_MAX, 0},
        {"null", "\"5\"", 0, 0},
    };
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        char b[256];
        int n = snprintf(b, sizeof(b),
                         "{\"message\":{\"content\":\"x\"},\"logprobs\":[{\"logprob\":-0.5},"
                         "{\"logprob\":-1e-2},{\"logprob\":0}],\"prompt_eval_count\":%s,"
                         "\"eval_count\":%s}",
                         counts[i].in, counts[i].out);
        assert_int_equal(parse_n("ollama", b, (size_t)n, &out, &err), EC_OUTCOME_OK);
        assert_int_equal(out.tokens_in, counts[i].want_in);
        assert_int_equal(out.tokens_out, counts[i].want_out);
        assert_int_equal(out.lp.n_tokens, 3);
        assert_near(out.lp.min, -0.5, 1e-12);
        reply_free(&out);
    }
    /* The same in OpenAI's and Anthropic's usage objects. */
    const char *oa = "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{"
                     "\"prompt_tokens\":5.0,\"completion_tokens\":6}}";
    assert_int_equal(parse_n("vllm", oa, strlen(oa), &out, &err), EC_OUTCOME_OK);
    assert_int_equal(out.tokens_in, 5);
    assert_int_equal(out.tokens_out, 6);
    reply_free(&out);
    const char *an = "{\"content\":[{\"type\":\"text\",\"text\":\"a\"},{\"type\":\"tool_use\"},"
                     "{\"type\":\"text\",\"text\":\"b\"}],\"usage\":{\"input_tokens\":8,"
                     "\"output_tokens\":2e0}}";
    assert_int_equal(parse_n("anthropic", an, strlen(an), &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "ab");
    assert_int_equal(out.tokens_in, 8);
    assert_int_equal(out.tokens_out, 2);
    reply_free(&out);
}

static void test_model_list_rules(void **state)
{
    char **names = NULL;
    size_t n = 0;
    ec_error err;
    ec_http_response resp = canned(200, "{\"data\":[{\"id\":\"b\"},{\"id\":7},{\"id\":\"c\"},"
                                        "{\"id\":\"\xff\"}]}");
    assert_int_equal(find("openai")->parse_models(&resp, &names, &n, &err), EC_OK);
    assert_int_equal(n, 2);
    assert_string_equal(names[0], "b");
    assert_string_equal(names[1], "c");
    ec_models_free(names, n);
    ec_http_response_free(&resp);
    resp = canned(200, "{\"data\":[{\"id\":\"a\"}]} trailing");
    assert_int_equal(find("openai")->parse_models(&resp, &names, &n, &err), EC_ERR_PROTO);
    assert_null(names);
    ec_http_response_free(&resp);
}

/* Reals go out with the fewest digits that read back the same. */
static void test_request_reals(void **state)
{
    static const struct {
        double t;
        const char *want;
    } cases[] = {
        {1.0, "1"}, {0.2, "0.2"}, {0.1 + 0.2, "0.3"}, {1e-5, "1e-05"}, {0.0, "0"}, {1.25, "1.25"},
    };
    ec_tier_cfg t = tier("vllm", "m", "http://127.0.0.1:8000/v1");
    ec_infer_request r = request();
    r.max_tokens = 0;
    r.logprobs = false;
    r.messages = g_msgs + 1;
    r.n_messages = 1;
    const char *h[] = {"Content-Type: application/json", NULL};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char want[256];
        snprintf(want, sizeof(want),
                 "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"Pump 3 "
                 "pressure?\"}],\"temperature\":%s}",
                 cases[i].want);
        r.temperature = cases[i].t;
        expect_request(find("vllm"), &t, &r, NULL, "http://127.0.0.1:8000/v1/chat/completions", h,
                       want);
    }
    /* A model name that is not UTF-8 cannot go into JSON. */
    ec_http_request req;
    ec_error err = {0};
    t.model = (char *)"m\xff";
    assert_int_not_equal(find("vllm")->build_chat(&t, &r, NULL, &req, &err), EC_OK);
    ec_http_request_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_read),
        cmocka_unit_test(test_model_list_rules),
        cmocka_unit_test(test_request_reals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
