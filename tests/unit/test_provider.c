/* Providers in process: the exact request each one builds (URL, headers,
 * body bytes) and how each reads canned answers and classifies statuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/provider.h"

/* ---- fixtures ---- */

/* cmocka's assert_float_equal works in float; these values need double. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%s = %.12g, want %.12g", #a, a_, b_);                                        \
    } while (0)

static ec_tier_cfg tier(const char *provider, const char *model, const char *base)
{
    ec_tier_cfg t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)model;
    t.provider = (char *)provider;
    t.model = (char *)model;
    t.base_url = (char *)base;
    t.timeout_ms = 8000;
    t.logprobs = true;
    t.min_confidence = -1;
    return t;
}

static ec_chat_msg g_msgs[] = {
    {(char *)"system", (char *)"You are terse."},
    {(char *)"user", (char *)"Pump 3 pressure?"},
};

static ec_infer_request request(void)
{
    ec_infer_request r;
    memset(&r, 0, sizeof(r));
    r.id = (char *)"01J0TEST";
    r.tier = (char *)"t";
    r.messages = g_msgs;
    r.n_messages = 2;
    r.max_tokens = 64;
    r.temperature = 0.2;
    r.has_temperature = true;
    r.logprobs = true;
    return r;
}

static const ec_provider *find(const char *name)
{
    const ec_provider *p = ec_provider_find(name);
    assert_non_null(p);
    return p;
}

static ec_http_response canned(long status, const char *body)
{
    ec_http_response r;
    ec_http_response_init(&r);
    r.status = status;
    assert_int_equal(ec_buf_append(&r.body, body, strlen(body)), EC_OK);
    return r;
}

static void reply_free(ec_infer_reply *o)
{
    free(o->answer);
    free(o->model);
    free(o->finish_reason);
    memset(o, 0, sizeof(*o));
}

/* Builds with p and checks method, URL, exact header list and exact body. */
static void expect_request(const ec_provider *p, const ec_tier_cfg *t, const ec_infer_request *r,
                           const char *key, const char *url, const char *const *headers,
                           const char *body)
{
    ec_http_request req;
    ec_error err = {0};
    ec_err rc = p->build_chat(t, r, key, &req, &err);
    if (rc)
        fail_msg("build_chat: %s", err.msg);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, url);
    size_t n = 0;
    while (headers[n])
        n++;
    assert_int_equal(req.n_headers, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(req.headers[i], headers[i]);
    assert_string_equal(ec_buf_cstr(&req.body), body);
    assert_int_equal(req.body.len, strlen(body));
    ec_http_request_free(&req);
}

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
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_openai_request),
        cmocka_unit_test(test_request_timeout),
        cmocka_unit_test(test_ollama_request),
        cmocka_unit_test(test_anthropic_request),
        cmocka_unit_test(test_build_errors),
        cmocka_unit_test(test_models_request),
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
