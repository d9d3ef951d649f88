/* The provider table and the requests each provider builds; what they read
 * back is in test_provider_answers.c. */
#include "test_provider_fixtures.h"

/* ---- the table ---- */

static void test_table(void **state)
{
    const ec_provider *const *all = ec_provider_all();
    size_t n = 0;
    for (; all[n]; n++) {
        const ec_provider *p = all[n];
        assert_non_null(p->name);
        assert_true(p->name[0] != '\0');
        assert_non_null(p->build_chat);
        assert_non_null(p->parse_chat);
        assert_non_null(p->build_models);
        assert_non_null(p->parse_models);
        for (size_t j = 0; j < n; j++)
            assert_string_not_equal(all[j]->name, p->name);
        assert_ptr_equal(ec_provider_find(p->name), p);
    }
    assert_int_equal(n, 5);
    assert_true(find("vllm")->local);
    assert_true(find("openai-compatible")->local);
    assert_true(find("ollama")->local);
    assert_false(find("openai")->local);
    assert_false(find("anthropic")->local);
    assert_null(ec_provider_find("gemini"));
    assert_null(ec_provider_find("OpenAI"));
    assert_null(ec_provider_find(NULL));
    ec_models_free(NULL, 0);
}

/* ---- requests ---- */

static void test_openai_request(void **state)
{
    ec_tier_cfg t = tier("vllm", "qwen2.5-1.5b", "http://127.0.0.1:8000/v1");
    ec_infer_request r = request();
    const char *full = "{\"model\":\"qwen2.5-1.5b\",\"messages\":[{\"role\":\"system\",\"content\":"
                       "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                       "pressure?\"}],\"max_tokens\":64,\"temperature\":0.2,\"logprobs\":true}";
    const char *h_nokey[] = {"Content-Type: application/json", NULL};
    const char *h_key[] = {"Content-Type: application/json", "Authorization: Bearer sk-test-1",
                           NULL};
    /* Each server gets the fields its own documentation names (see
     * provider_openai.c): OpenAI max_completion_tokens, llama.cpp and other
     * compatible servers top_logprobs 1 (not their default 20). */
    const char *compat = "{\"model\":\"qwen2.5-1.5b\",\"messages\":[{\"role\":\"system\","
                         "\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                         "pressure?\"}],\"max_tokens\":64,\"temperature\":0.2,\"logprobs\":true,"
                         "\"top_logprobs\":1}";
    const char *cloud = "{\"model\":\"qwen2.5-1.5b\",\"messages\":[{\"role\":\"system\","
                        "\"content\":\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                        "pressure?\"}],\"max_completion_tokens\":64,\"temperature\":0.2,"
                        "\"logprobs\":true}";
    static const char *names[] = {"vllm", "openai-compatible", "openai"};
    const char *bodies[] = {full, compat, cloud};
    for (size_t i = 0; i < 3; i++) {
        t.provider = (char *)names[i];
        expect_request(find(names[i]), &t, &r, NULL, "http://127.0.0.1:8000/v1/chat/completions",
                       h_nokey, bodies[i]);
        expect_request(find(names[i]), &t, &r, "sk-test-1",
                       "http://127.0.0.1:8000/v1/chat/completions", h_key, bodies[i]);
    }

    /* Unset fields are left out; logprobs needs both the request and the tier. */
    const char *bare = "{\"model\":\"qwen2.5-1.5b\",\"messages\":[{\"role\":\"system\",\"content\":"
                       "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                       "pressure?\"}]}";
    r.max_tokens = 0;
    r.has_temperature = false;
    r.logprobs = false;
    expect_request(find("vllm"), &t, &r, NULL, "http://127.0.0.1:8000/v1/chat/completions", h_nokey,
                   bare);
    r.logprobs = true;
    t.logprobs = false;
    expect_request(find("vllm"), &t, &r, NULL, "http://127.0.0.1:8000/v1/chat/completions", h_nokey,
                   bare);

    /* Escaping, UTF-8 kept as is, and a trailing slash on base_url. */
    ec_chat_msg m = {(char *)"user", (char *)"Temp \"T1\" in \xc2\xb0"
                                             "C?\nok"};
    r.messages = &m;
    r.n_messages = 1;
    t.base_url = (char *)"https://api.openai.com/v1/";
    t.model = (char *)"gpt-4o-mini";
    expect_request(find("openai"), &t, &r, NULL, "https://api.openai.com/v1/chat/completions",
                   h_nokey,
                   "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"user\",\"content\":"
                   "\"Temp \\\"T1\\\" in \xc2\xb0"
                   "C?\\nok\"}]}");
}

static void test_request_timeout(void **state)
{
    ec_tier_cfg t = tier("vllm", "m", "http://127.0.0.1:8000/v1");
    ec_infer_request r = request();
    ec_http_request req;
    ec_error err = {0};
    const ec_provider *p = find("vllm");
    struct {
        uint32_t tier, req, want;
    } cases[] = {
        {8000, 0, 8000}, {8000, 3000, 3000}, {8000, 20000, 8000}, {0, 2500, 2500}, {0, 0, 60000}};
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        t.timeout_ms = cases[i].tier;
        r.timeout_ms = cases[i].req;
        assert_int_equal(p->build_chat(&t, &r, NULL, &req, &err), EC_OK);
        assert_int_equal(req.timeout_ms, cases[i].want);
        ec_http_request_free(&req);
    }
}

static void test_ollama_request(void **state)
{
    ec_tier_cfg t = tier("ollama", "llama3.2:1b", "http://127.0.0.1:11434");
    ec_infer_request r = request();
    const ec_provider *p = find("ollama");
    const char *full = "{\"model\":\"llama3.2:1b\",\"messages\":[{\"role\":\"system\",\"content\":"
                       "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                       "pressure?\"}],\"stream\":false,\"logprobs\":true,\"options\":{"
                       "\"num_predict\":64,\"temperature\":0.2}}";
    const char *h[] = {"Content-Type: application/json", NULL};
    const char *hk[] = {"Content-Type: application/json", "Authorization: Bearer k", NULL};
    expect_request(p, &t, &r, NULL, "http://127.0.0.1:11434/api/chat", h, full);
    expect_request(p, &t, &r, "k", "http://127.0.0.1:11434/api/chat", hk, full);
    /* An OpenAI-style base URL still reaches the native API. */
    t.base_url = (char *)"http://127.0.0.1:11434/v1/";
    expect_request(p, &t, &r, NULL, "http://127.0.0.1:11434/api/chat", h, full);

    r.max_tokens = 0;
    r.logprobs = false;
    expect_request(p, &t, &r, NULL, "http://127.0.0.1:11434/api/chat", h,
                   "{\"model\":\"llama3.2:1b\",\"messages\":[{\"role\":\"system\",\"content\":"
                   "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                   "pressure?\"}],\"stream\":false,\"options\":{\"temperature\":0.2}}");
    r.has_temperature = false;
    expect_request(p, &t, &r, NULL, "http://127.0.0.1:11434/api/chat", h,
                   "{\"model\":\"llama3.2:1b\",\"messages\":[{\"role\":\"system\",\"content\":"
                   "\"You are terse.\"},{\"role\":\"user\",\"content\":\"Pump 3 "
                   "pressure?\"}],\"stream\":false}");
}

static void test_anthropic_request(void **state)
{
    ec_tier_cfg t = tier("anthropic", "claude-3-5-haiku-latest", "https://api.anthropic.com/v1");
    ec_infer_request r = request();
    const ec_provider *p = find("anthropic");
    const char *full = "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":64,\"system\":"
                       "\"You are terse.\",\"messages\":[{\"role\":\"user\",\"content\":\"Pump 3 "
                       "pressure?\"}],\"temperature\":0.2}";
    const char *h[] = {"content-type: application/json", "anthropic-version: 2023-06-01", NULL};
    const char *hk[] = {"content-type: application/json", "anthropic-version: 2023-06-01",
                        "x-api-key: sk-ant-1", NULL};
    expect_request(p, &t, &r, "sk-ant-1", "https://api.anthropic.com/v1/messages", hk, full);
    expect_request(p, &t, &r, NULL, "https://api.anthropic.com/v1/messages", h, full);
    /* "/v1" is added when the base URL is the bare host. */
    t.base_url = (char *)"https://api.anthropic.com";
    expect_request(p, &t, &r, NULL, "https://api.anthropic.com/v1/messages", h, full);

    /* max_tokens is mandatory for Anthropic: 512 when the query has none;
     * several system messages become one system text; no system, no field. */
    ec_chat_msg m[] = {
        {(char *)"system", (char *)"Rule one."}, {(char *)"user", (char *)"Q1"},
        {(char *)"assistant", (char *)"A1"},     {(char *)"system", (char *)"Rule two."},
        {(char *)"user", (char *)"Q2"},
    };
    r.messages = m;
    r.n_messages = 5;
    r.max_tokens = 0;
    r.has_temperature = false;
    expect_request(p, &t, &r, NULL, "https://api.anthropic.com/v1/messages", h,
                   "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":512,\"system\":"
                   "\"Rule one.\\n\\nRule two.\",\"messages\":[{\"role\":\"user\",\"content\":"
                   "\"Q1\"},{\"role\":\"assistant\",\"content\":\"A1\"},{\"role\":\"user\","
                   "\"content\":\"Q2\"}]}");
    r.messages = m + 1;
    r.n_messages = 1;
    expect_request(p, &t, &r, NULL, "https://api.anthropic.com/v1/messages", h,
                   "{\"model\":\"claude-3-5-haiku-latest\",\"max_tokens\":512,\"messages\":[{"
                   "\"role\":\"user\",\"content\":\"Q1\"}]}");

    /* Only a system message: nothing to answer. */
    r.messages = m;
    r.n_messages = 1;
    ec_http_request req;
    ec_error err = {0};
    assert_int_equal(p->build_chat(&t, &r, NULL, &req, &err), EC_ERR_INVAL);
    ec_http_request_free(&req);
}

static void test_build_errors(void **state)
{
    ec_infer_request r = request();
    ec_http_request req;
    ec_error err = {0};
    const ec_provider *const *all = ec_provider_all();
    for (size_t i = 0; all[i]; i++) {
        const ec_provider *p = all[i];
        ec_tier_cfg t = tier(p->name, "m1", "http://127.0.0.1:1/v1");

        t.model = NULL;
        assert_int_equal(p->build_chat(&t, &r, NULL, &req, &err), EC_ERR_CONFIG);
        ec_http_request_free(&req); /* a failed build leaves req freeable */
        /* Discovery needs only the URL: it is how one finds a model name. */
        assert_int_equal(p->build_models(&t, NULL, &req, &err), EC_OK);
        assert_non_null(req.url);
        ec_http_request_free(&req);
        t.model = (char *)"m1";

        t.base_url = NULL;
        assert_int_equal(p->build_chat(&t, &r, NULL, &req, &err), EC_ERR_CONFIG);
        assert_non_null(strstr(err.msg, "base_url"));
        ec_http_request_free(&req);
        assert_int_equal(p->build_models(&t, NULL, &req, &err), EC_ERR_CONFIG);
        ec_http_request_free(&req);
        t.base_url = (char *)"http://127.0.0.1:1/v1";

        ec_infer_request empty = r;
        empty.n_messages = 0;
        assert_int_equal(p->build_chat(&t, &empty, NULL, &req, &err), EC_ERR_INVAL);
        ec_http_request_free(&req);

        /* JSON cannot carry invalid UTF-8. */
        ec_chat_msg bad = {(char *)"user", (char *)"caf\xe9"};
        ec_infer_request rb = r;
        rb.messages = &bad;
        rb.n_messages = 1;
        assert_int_equal(p->build_chat(&t, &rb, NULL, &req, &err), EC_ERR_INVAL);
        ec_http_request_free(&req);

        /* A key with a line break would smuggle in headers. */
        assert_int_equal(p->build_chat(&t, &r, "sk\r\nX-Evil: 1", &req, &err), EC_ERR_INVAL);
        ec_http_request_free(&req);
    }
}

static void test_models_request(void **state)
{
    ec_http_request req;
    ec_error err = {0};

    ec_tier_cfg t = tier("openai", "gpt-4o-mini", "https://api.openai.com/v1");
    assert_int_equal(find("openai")->build_models(&t, "sk-1", &req, &err), EC_OK);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://api.openai.com/v1/models");
    assert_int_equal(req.n_headers, 1);
    assert_string_equal(req.headers[0], "Authorization: Bearer sk-1");
    assert_int_equal(req.body.len, 0);
    assert_true(req.timeout_ms > 0);
    ec_http_request_free(&req);
    t.provider = (char *)"vllm";
    assert_int_equal(find("vllm")->build_models(&t, NULL, &req, &err), EC_OK);
    assert_int_equal(req.n_headers, 0);
    ec_http_request_free(&req);

    t = tier("ollama", "llama3.2:1b", "http://127.0.0.1:11434");
    assert_int_equal(find("ollama")->build_models(&t, NULL, &req, &err), EC_OK);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "http://127.0.0.1:11434/api/tags");
    assert_int_equal(req.n_headers, 0);
    ec_http_request_free(&req);

    t = tier("anthropic", "claude-3-5-haiku-latest", "https://api.anthropic.com/v1");
    assert_int_equal(find("anthropic")->build_models(&t, "sk-ant-1", &req, &err), EC_OK);
    assert_string_equal(req.method, "GET");
    assert_string_equal(req.url, "https://api.anthropic.com/v1/models");
    assert_int_equal(req.n_headers, 3);
    assert_string_equal(req.headers[1], "anthropic-version: 2023-06-01");
    assert_string_equal(req.headers[2], "x-api-key: sk-ant-1");
    ec_http_request_free(&req);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_openai_request),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_ollama_request),
        cmocka_unit_test(test_anthropic_request),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_models_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
