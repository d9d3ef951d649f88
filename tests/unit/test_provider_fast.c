/* parse_chat's fast path for OpenAI-shaped answers (json_fast.h, no cJSON
 * tree) against the cJSON path it stands in for: whenever the fast path
 * takes a body, the cJSON path must say OK and fill the very same reply;
 * well-formed answers must take the fast path; everything else must be left
 * to the cJSON path with the reply untouched. */
#include "test_provider_fixtures.h"

#include "json_fast.h"
#include "provider_internal.h"

/* The simulator's answer to the bench's prompt, as edgecascade-local gets it. */
static const char sim_body[] =
    "{\"id\":\"chatcmpl-sim01\",\"object\":\"chat.completion\",\"created\":1796608491,"
    "\"model\":\"llama3.2-1b\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\","
    "\"content\":\"150 psi \xe2\x89\x88 10.34 bar.\",\"refusal\":null},\"logprobs\":{\"content\":"
    "[{\"token\":\"150\",\"logprob\":-0.03,\"bytes\":null,\"top_logprobs\":[]},{\"token\":\" "
    "psi\",\"logprob\":-0.03,\"bytes\":null,\"top_logprobs\":[]},{\"token\":\" \xe2\x89\x88\","
    "\"logprob\":-0.03,\"bytes\":null,\"top_logprobs\":[]},{\"token\":\" 10.34\",\"logprob\":"
    "-0.03,\"bytes\":null,\"top_logprobs\":[]},{\"token\":\" bar.\",\"logprob\":-0.03,\"bytes\":"
    "null,\"top_logprobs\":[]}],\"refusal\":null},\"finish_reason\":\"stop\"}],\"usage\":"
    "{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12},\"system_fingerprint\":"
    "\"edgecascade-sim\",\"simulated\":true}";

static bool same_str(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static bool same_lp(const ec_lp_stats *a, const ec_lp_stats *b)
{
    return a->present == b->present && a->n_tokens == b->n_tokens && a->mean == b->mean &&
           a->min == b->min && a->geo_prob == b->geo_prob && a->first_prob == b->first_prob &&
           a->p10 == b->p10 && a->p25 == b->p25;
}

/* Both paths on body[0..len); returns whether the fast path took it. */
static bool check_n(const char *body, size_t len)
{
    ec_tier_cfg t = tier("vllm", "m1", "http://127.0.0.1:1/v1");
    ec_http_response resp;
    ec_http_response_init(&resp);
    resp.status = 200;
    assert_int_equal(ec_buf_append(&resp.body, body, len), EC_OK);
    ec_infer_reply dom, fast;
    memset(&dom, 0, sizeof(dom));
    memset(&fast, 0, sizeof(fast));
    ec_error err = {0};
    ec_outcome oc = ec_prov_openai_parse_dom(&t, &resp, &dom, &err);
    bool took = ec_prov_openai_parse_fast(&t, &resp, &fast);
    if (took) {
        if (oc != EC_OUTCOME_OK)
            fail_msg("fast path took a body the cJSON path refused (%s): %.*s", err.msg, (int)len,
                     body);
        if (!same_str(dom.answer, fast.answer) || !same_str(dom.model, fast.model) ||
            !same_str(dom.finish_reason, fast.finish_reason) || dom.tokens_in != fast.tokens_in ||
            dom.tokens_out != fast.tokens_out || !same_lp(&dom.lp, &fast.lp))
            fail_msg("the two paths read different replies from %.*s", (int)len, body);
    } else {
        ec_infer_reply zero;
        memset(&zero, 0, sizeof(zero));
        assert_memory_equal(&fast, &zero, sizeof(zero)); /* untouched */
    }
    reply_free(&dom);
    reply_free(&fast);
    ec_http_response_free(&resp);
    return took;
}

static bool check(const char *body)
{
    return check_n(body, strlen(body));
}

static void test_well_formed_take_the_fast_path(void **state)
{
    (void)state;
    static const char *ok[] = {
        sim_body,
        /* escapes a real answer has, in the answer, model and finish_reason */
        "{\"model\":\"a\\/b\",\"choices\":[{\"message\":{\"content\":\"line\\none\\t\\\"q\\\" "
        "\\\\ \\/ \\b\\f\\r\"},\"finish_reason\":\"st\\/op\"}]}",
        "{\"choices\":[{\"message\":{\"content\":\"\"}}]}",
        " \n\t{\"choices\" : [ { \"message\" : { \"content\" : \"x\" } } ] }\r\n ",
        /* the first of a repeated key wins, as in cJSON */
        "{\"choices\":[{\"message\":{\"content\":\"first\",\"content\":\"second\"}}],"
        "\"choices\":[],\"model\":\"m-a\",\"model\":\"m-b\"}",
        /* what is not a string or a number is not read */
        "{\"model\":42,\"choices\":[{\"message\":{\"content\":\"x\"},\"finish_reason\":null,"
        "\"logprobs\":{\"content\":[1,\"a\",{\"logprob\":\"-1\"},{\"logprob\":-2.5e-1},"
        "{\"logprob\":-0E+0},{\"logprob\":true}]}}],\"usage\":{\"prompt_tokens\":-1,"
        "\"completion_tokens\":2.5}}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"usage\":{\"prompt_tokens\":1e3,"
        "\"completion_tokens\":99999999999}}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":{\"content\":[]}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":null}]}",
        /* a model name that is not UTF-8 is not used; the tier's stands in */
        "{\"model\":\"\xff\",\"choices\":[{\"message\":{\"content\":\"x\"}}]}",
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (!check(ok[i]))
            fail_msg("not on the fast path: %s", ok[i]);

    /* And parse_chat itself, through the provider table. */
    ec_tier_cfg t = tier("vllm", "m1", "http://127.0.0.1:1/v1");
    ec_http_response resp;
    ec_http_response_init(&resp);
    resp.status = 200;
    assert_int_equal(ec_buf_append(&resp.body, sim_body, sizeof(sim_body) - 1), EC_OK);
    ec_infer_reply out;
    memset(&out, 0, sizeof(out));
    ec_error err = {0};
    assert_int_equal(find("vllm")->parse_chat(&t, &resp, &out, &err), EC_OUTCOME_OK);
    assert_string_equal(out.answer, "150 psi \xe2\x89\x88 10.34 bar.");
    assert_string_equal(out.model, "llama3.2-1b");
    assert_int_equal(out.tokens_out, 5);
    assert_int_equal(out.lp.n_tokens, 5);
    reply_free(&out);
    ec_http_response_free(&resp);
}

static void test_the_rest_is_left_to_cjson(void **state)
{
    (void)state;
    static const char *rest[] = {
        "",
        "[1,2]",
        "{\"choices\":[]}",
        "{\"choices\":[{\"message\":{\"content\":null}}]}",
        "{\"choices\":[{\"message\":{\"content\":42}}]}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}]} trailing",
        "{\"choices\":[{\"message\":{\"content\":\"caf\\u00e9\"}}]}",     /* \u escape */
        "{\"choices\":[{\"message\":{\"content\":\"bad \\ud800\"}}]}",    /* lone surrogate */
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"k\\ney\":1}", /* escaped key */
        "{\"choices\":[{\"message\":{\"content\":\"raw\ttab\"}}]}",       /* control char */
        "{\"choices\":[{\"message\":{\"content\":\"\xff\"}}]}",           /* answer not UTF-8 */
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":01}",     /* leading zero */
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":1.}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":+1}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":tru}",
        "{\"choices\":[{\"message\":{\"content\":\"x\"}},]}",
        "\xef\xbb\xbf{\"choices\":[{\"message\":{\"content\":\"x\"}}]}", /* BOM */
        "<html><body>502 Bad Gateway</body></html>",
    };
    for (size_t i = 0; i < sizeof(rest) / sizeof(rest[0]); i++)
        if (check(rest[i]))
            fail_msg("fast path took %s", rest[i]);
    /* A number longer than cJSON's buffer. */
    char num[160];
    snprintf(num, sizeof(num), "{\"choices\":[{\"message\":{\"content\":\"x\"}}],\"n\":1%070d}", 0);
    assert_false(check(num));
}

static void test_truncated_and_mutated(void **state)
{
    (void)state;
    size_t n = sizeof(sim_body) - 1;
    for (size_t i = 0; i < n; i++)
        assert_false(check_n(sim_body, i));
    /* Random byte edits (fixed seed): whatever the fast path takes, the
     * cJSON path must read the same way. */
    char buf[sizeof(sim_body)];
    unsigned seed = 17;
    static const char bytes[] = "{}[],:\"\\ 0-1.eE9tfnul\xe2\x89\x88\xff\x01";
    size_t took = 0;
    for (int round = 0; round < 3000; round++) {
        memcpy(buf, sim_body, n);
        for (int k = 0; k < 1 + round % 3; k++)
            buf[rand_r(&seed) % n] = bytes[rand_r(&seed) % (sizeof(bytes) - 1)];
        took += check_n(buf, n);
    }
    assert_true(took > 0);
}

static void test_long_answers_use_the_heap(void **state)
{
    (void)state;
    /* 600 logprob entries: more tokens and values than the stack buffers. */
    ec_buf b;
    ec_buf_init(&b, 0);
    assert_int_equal(ec_buf_printf(&b, "{\"choices\":[{\"message\":{\"content\":\"long\"},"
                                       "\"logprobs\":{\"content\":["),
                     EC_OK);
    for (int i = 0; i < 600; i++)
        assert_int_equal(
            ec_buf_printf(&b, "%s{\"token\":\"t\",\"logprob\":-0.%03d}", i ? "," : "", i), EC_OK);
    assert_int_equal(ec_buf_printf(&b, "]}}]}"), EC_OK);
    assert_true(check_n(b.data, b.len));
    ec_buf_free(&b);
}

/* The request body written directly against the cJSON tree it replaced:
 * the same bytes, headers and URL, or the same refusal, for random prompts
 * (escapes, control bytes, UTF-8 and broken UTF-8), limits, temperatures
 * and the three OpenAI-shaped providers. */
static void test_request_body_matches_cjson(void **state)
{
    (void)state;
    static const char *const pieces[] = {"Convert 150 psi to bar.",
                                         "\"",
                                         "\\",
                                         "/",
                                         "\n",
                                         "\r\t",
                                         "\b\f",
                                         "\x01",
                                         "\x1f",
                                         "\x7f",
                                         " ",
                                         "\xe2\x89\x88",
                                         "\xf0\x9f\x98\x80",
                                         "\xff",
                                         "\xc3",
                                         "</script>",
                                         "\u00e9",
                                         "x"};
    static const double temps[] = {0,   0.7,  1, 2,     0.1 + 0.2, 1e-7,    1.0 / 3,
                                   1.5, -0.5, 3, 1e300, NAN,       INFINITY};
    static const char *const providers[] = {"vllm", "openai-compatible", "openai"};
    static const char *const models[] = {"llama3.2-1b", "m\"odel\\1",
                                         "mod\xff"
                                         "el"};
    size_t n_pieces = sizeof(pieces) / sizeof(pieces[0]);
    unsigned seed = 29;
    for (int round = 0; round < 3000; round++) {
        char text[3][200];
        for (int k = 0; k < 3; k++) {
            size_t at = 0;
            int parts = (int)((unsigned)rand_r(&seed) % 6);
            text[k][0] = '\0';
            for (int j = 0; j < parts; j++) {
                const char *piece = pieces[(unsigned)rand_r(&seed) % n_pieces];
                size_t n = strlen(piece);
                if (at + n + 1 > sizeof(text[k]))
                    break;
                memcpy(text[k] + at, piece, n + 1);
                at += n;
            }
        }
        ec_chat_msg msgs[2] = {{text[0], text[1]}, {NULL, text[2]}};
        ec_infer_request r;
        memset(&r, 0, sizeof(r));
        r.id = (char *)"q1";
        r.tier = (char *)"m";
        r.messages = msgs;
        r.n_messages = 1 + (unsigned)rand_r(&seed) % 2;
        if ((unsigned)rand_r(&seed) % 3 == 0)
            msgs[0].role = (char *)"user";
        unsigned pick = (unsigned)rand_r(&seed);
        r.max_tokens = pick % 4 == 0 ? 0 : (int32_t)(pick % 5000);
        r.has_temperature = (unsigned)rand_r(&seed) % 2;
        r.temperature = temps[(unsigned)rand_r(&seed) % (sizeof(temps) / sizeof(temps[0]))];
        r.logprobs = (unsigned)rand_r(&seed) % 2;
        const char *prov = providers[(unsigned)rand_r(&seed) % 3];
        const char *model = models[(unsigned)rand_r(&seed) % 8 % 3];
        ec_tier_cfg t = tier(prov, model, "http://127.0.0.1:1/v1");
        t.logprobs = (unsigned)rand_r(&seed) % 2;
        const char *key = (unsigned)rand_r(&seed) % 2 ? "sk-test" : NULL;
        const ec_provider *p = ec_provider_find(prov);
        assert_non_null(p);
        ec_http_request a, b;
        ec_error ea = {0}, eb = {0};
        ec_err ra = ec_prov_openai_build_dom(p, &t, &r, key, &a, &ea);
        ec_err rb = p->build_chat(&t, &r, key, &b, &eb);
        assert_int_equal(ra, rb);
        assert_string_equal(ea.msg, eb.msg);
        if (ra == EC_OK) {
            assert_string_equal(a.url, b.url);
            assert_int_equal(a.timeout_ms, b.timeout_ms);
            assert_int_equal(a.n_headers, b.n_headers);
            for (size_t h = 0; h < a.n_headers; h++)
                assert_string_equal(a.headers[h], b.headers[h]);
            if (a.body.len != b.body.len || memcmp(a.body.data, b.body.data, a.body.len) != 0)
                fail_msg("bodies differ:\n%s\n%s", ec_buf_cstr(&a.body), ec_buf_cstr(&b.body));
            ec_http_request_free(&a);
            ec_http_request_free(&b);
        }
    }
}

/* ec_jdoc_num's fast path (at most 15 significant digits, exponent within
 * +-22) must give strtod's double, bit for bit, and the rest must still go
 * to strtod: every JSON number shape, near the fast path's limits. */
static void check_num(const char *num)
{
    char text[128];
    snprintf(text, sizeof(text), "[%s]", num);
    ec_jtok tok[4];
    ec_jdoc d;
    if (!ec_jdoc_parse(&d, text, strlen(text), tok, 4))
        fail_msg("not a JSON number: %s", num);
    double got = ec_jdoc_num(&d, tok[0].child), want = strtod(num, NULL);
    if (memcmp(&got, &want, sizeof(got)) != 0)
        fail_msg("%s: strtod %.17g, ec_jdoc_num %.17g", num, want, got);
}

static void test_numbers_match_strtod(void **state)
{
    (void)state;
    const char *fixed[] = {"0",
                           "-0",
                           "0.0",
                           "-0.0",
                           "1",
                           "-0.03",
                           "-0.0312",
                           "0.1",
                           "0.2",
                           "0.3",
                           "1e22",
                           "1e23",
                           "1e-22",
                           "1e-23",
                           "9007199254740993",
                           "999999999999999",
                           "9999999999999999",
                           "0.000000000000001",
                           "123456789012345e7",
                           "123456789012345e8",
                           "1.5E+3",
                           "2.5e-3",
                           "0.10000000000000000000",
                           "17976931348623157e292",
                           "5e-324",
                           "-1.7976931348623157e308",
                           "1e400",
                           "-1e-400",
                           "0e5",
                           "100e-2"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        check_num(fixed[i]);
    srand(29);
    char num[64];
    for (int i = 0; i < 400000; i++) {
        int ndig = 1 + rand() % 18, point = rand() % (ndig + 1), k = 0;
        if (rand() % 2)
            num[k++] = '-';
        for (int j = 0; j < ndig; j++) {
            if (j == point && j > 0)
                num[k++] = '.';
            /* JSON: no leading zero before more integer digits */
            num[k++] = (char)('0' + (j == 0 && point != 1 ? 1 + rand() % 9 : rand() % 10));
        }
        if (rand() % 3 == 0)
            k += snprintf(num + k, sizeof(num) - (size_t)k, "e%d", rand() % 61 - 30);
        num[k] = '\0';
        check_num(num);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed_take_the_fast_path),
        cmocka_unit_test(test_the_rest_is_left_to_cjson),
        cmocka_unit_test(test_truncated_and_mutated),
        cmocka_unit_test(test_long_answers_use_the_heap),
        cmocka_unit_test(test_request_body_matches_cjson),
        cmocka_unit_test(test_numbers_match_strtod),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
