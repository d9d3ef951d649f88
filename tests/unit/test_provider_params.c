/* Parameters mapped per provider (provider_params.c) and what each provider
 * asks for and reads that its own documentation requires (issue 14): Ollama
 * native logprobs, OpenAI max_completion_tokens, llama.cpp top_logprobs 1,
 * Anthropic temperature <= 1, an empty Ollama's "data": null. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/provider.h"

static ec_chat_msg g_msgs[] = {
    {(char *)"user", (char *)"Pump 3 pressure?"},
};

static ec_tier_cfg tier(const char *provider)
{
    ec_tier_cfg t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)"t";
    t.provider = (char *)provider;
    t.model = (char *)"m";
    t.base_url = (char *)"http://127.0.0.1:9/v1";
    t.timeout_ms = 8000;
    t.logprobs = true;
    return t;
}

static ec_infer_request request(double temperature, int32_t max_tokens)
{
    ec_infer_request r;
    memset(&r, 0, sizeof(r));
    r.id = (char *)"q1";
    r.tier = (char *)"t";
    r.messages = g_msgs;
    r.n_messages = 1;
    r.max_tokens = max_tokens;
    r.temperature = temperature;
    r.has_temperature = temperature >= -1;
    r.logprobs = true;
    return r;
}

/* The body provider p builds for r, parsed. */
static json_t *body_of(const char *prov, const ec_infer_request *r)
{
    ec_tier_cfg t = tier(prov);
    ec_http_request req;
    ec_error err = {0};
    const ec_provider *p = ec_provider_find(prov);
    assert_non_null(p);
    if (p->build_chat(&t, r, "k", &req, &err) != EC_OK)
        fail_msg("%s build_chat: %s", prov, err.msg);
    json_t *root = json_loadb(req.body.data, req.body.len, 0, NULL);
    assert_non_null(root);
    ec_http_request_free(&req);
    return root;
}

static void test_every_provider_declares_params(void **state)
{
    (void)state;
    for (const ec_provider *const *p = ec_provider_all(); *p; p++) {
        assert_non_null((*p)->params);
        assert_true((*p)->params->temperature_max > 0);
        assert_non_null((*p)->params->max_tokens_field);
    }
}

/* Issue 14.2: the Messages API accepts 0.0..1.0; 1.5 used to go out as 1.5. */
static void test_anthropic_temperature_clamped(void **state)
{
    (void)state;
    ec_infer_request r = request(1.5, 0);
    json_t *b = body_of("anthropic", &r);
    json_t *temp = json_object_get(b, "temperature");
    assert_true(json_is_number(temp));
    assert_true(json_number_value(temp) <= 1.0);
    assert_true(fabs(json_number_value(temp) - 1.0) < 1e-12);
    /* max_tokens is required: the default goes out when the query has none. */
    assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 512);
    assert_null(json_object_get(b, "logprobs"));
    json_decref(b);

    /* Inside the range nothing changes, on any API. */
    r = request(0.2, 64);
    static const char *const all[] = {"vllm", "openai-compatible", "openai", "anthropic"};
    for (size_t i = 0; i < 4; i++) {
        b = body_of(all[i], &r);
        assert_true(fabs(json_number_value(json_object_get(b, "temperature")) - 0.2) < 1e-12);
        json_decref(b);
    }
    /* 2.0 is inside OpenAI's 0..2: sent as is. */
    r = request(2.0, 0);
    b = body_of("openai", &r);
    assert_true(fabs(json_number_value(json_object_get(b, "temperature")) - 2.0) < 1e-12);
    json_decref(b);
}

static void test_refused_before_any_call(void **state)
{
    (void)state;
    ec_infer_request r = request(-0.5, 0);
    ec_http_request req;
    ec_error err = {0};
    for (const ec_provider *const *p = ec_provider_all(); *p; p++) {
        ec_tier_cfg t = tier((*p)->name);
        ec_error_clear(&err);
        assert_int_equal((*p)->build_chat(&t, &r, NULL, &req, &err), EC_ERR_INVAL);
        assert_non_null(strstr(err.msg, "temperature"));
        ec_http_request_free(&req);
    }
    r = request(0.1, -3);
    ec_tier_cfg t = tier("openai");
    assert_int_equal(ec_provider_find("openai")->build_chat(&t, &r, NULL, &req, &err),
                     EC_ERR_INVAL);
    assert_non_null(strstr(err.msg, "max_tokens"));
    ec_http_request_free(&req);
}

/* Issue 14.3: OpenAI's current field; the compatible servers keep max_tokens. */
static void test_max_tokens_field(void **state)
{
    (void)state;
    ec_infer_request r = request(-9, 64);
    json_t *b = body_of("openai", &r);
    assert_int_equal(json_integer_value(json_object_get(b, "max_completion_tokens")), 64);
    assert_null(json_object_get(b, "max_tokens"));
    assert_null(json_object_get(b, "temperature"));
    json_decref(b);
    static const char *const compat[] = {"vllm", "openai-compatible"};
    for (size_t i = 0; i < 2; i++) {
        b = body_of(compat[i], &r);
        assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 64);
        assert_null(json_object_get(b, "max_completion_tokens"));
        json_decref(b);
    }
    b = body_of("ollama", &r);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(b, "options"), "num_predict")), 64);
    json_decref(b);
}

/* Issue 14.5: llama.cpp maps logprobs without top_logprobs to 20 alternatives
 * and top_logprobs 0 to none at all; 1 is the least that keeps the chosen
 * token's logprob. */
static void test_top_logprobs(void **state)
{
    (void)state;
    ec_infer_request r = request(-9, 0);
    json_t *b = body_of("openai-compatible", &r);
    assert_true(json_is_true(json_object_get(b, "logprobs")));
    assert_int_equal(json_integer_value(json_object_get(b, "top_logprobs")), 1);
    json_decref(b);
    b = body_of("vllm", &r);
    assert_null(json_object_get(b, "top_logprobs"));
    json_decref(b);
    /* Without logprobs, no top_logprobs (llama.cpp would answer 400). */
    r.logprobs = false;
    b = body_of("openai-compatible", &r);
    assert_null(json_object_get(b, "logprobs"));
    assert_null(json_object_get(b, "top_logprobs"));
    json_decref(b);
}

/* Issue 14.1: Ollama's native API needs "logprobs": true and answers with a
 * top-level logprobs array. */
static void test_ollama_logprobs(void **state)
{
    (void)state;
    ec_infer_request r = request(-9, 0);
    json_t *b = body_of("ollama", &r);
    assert_true(json_is_true(json_object_get(b, "logprobs")));
    json_decref(b);

    const char *body =
        "{\"model\":\"llama3.2:1b\",\"created_at\":\"2025-11-14T00:00:00Z\",\"message\":{"
        "\"role\":\"assistant\",\"content\":\"PASS\"},\"done\":true,\"done_reason\":\"stop\","
        "\"prompt_eval_count\":9,\"eval_count\":2,\"logprobs\":[{\"token\":\"PA\",\"logprob\":"
        "-0.01,\"bytes\":[80,65],\"top_logprobs\":[]},{\"token\":\"SS\",\"logprob\":-0.03,"
        "\"bytes\":[83,83],\"top_logprobs\":[]}]}";
    ec_http_response resp;
    ec_http_response_init(&resp);
    resp.status = 200;
    assert_int_equal(ec_buf_append(&resp.body, body, strlen(body)), EC_OK);
    ec_tier_cfg t = tier("ollama");
    ec_infer_reply rep = {0};
    ec_error err = {0};
    assert_int_equal(ec_provider_find("ollama")->parse_chat(&t, &resp, &rep, &err), EC_OUTCOME_OK);
    assert_true(rep.lp.present);
    assert_int_equal(rep.lp.n_tokens, 2);
    assert_true(fabs(rep.lp.mean + 0.02) < 1e-9);
    assert_string_equal(rep.answer, "PASS");
    ec_infer_reply_clear(&rep);
    ec_http_response_free(&resp);

    /* An Ollama before 0.12.11: no array, no logprobs (tierd says so once). */
    const char *old = "{\"model\":\"m\",\"message\":{\"role\":\"assistant\",\"content\":\"ok\"},"
                      "\"done\":true}";
    ec_http_response_init(&resp);
    resp.status = 200;
    assert_int_equal(ec_buf_append(&resp.body, old, strlen(old)), EC_OK);
    assert_int_equal(ec_provider_find("ollama")->parse_chat(&t, &resp, &rep, &err), EC_OUTCOME_OK);
    assert_false(rep.lp.present);
    ec_infer_reply_clear(&rep);
    ec_http_response_free(&resp);
}

/* Issue 14.4: an Ollama with no models answers /v1/models with "data": null. */
static void test_models_null(void **state)
{
    (void)state;
    static const struct {
        const char *prov, *body;
    } cases[] = {
        {"openai-compatible", "{\"object\":\"list\",\"data\":null}"},
        {"vllm", "{\"object\":\"list\",\"data\":null}"},
        {"ollama", "{\"models\":null}"},
        {"ollama", "{\"models\":[]}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ec_http_response resp;
        ec_http_response_init(&resp);
        resp.status = 200;
        assert_int_equal(ec_buf_append(&resp.body, cases[i].body, strlen(cases[i].body)), EC_OK);
        char **names = NULL;
        size_t n = 9;
        ec_error err = {0};
        if (ec_provider_find(cases[i].prov)->parse_models(&resp, &names, &n, &err) != EC_OK)
            fail_msg("%s %s: %s", cases[i].prov, cases[i].body, err.msg);
        assert_int_equal(n, 0);
        ec_models_free(names, n);
        ec_http_response_free(&resp);
    }
}

static void test_sent_json(void **state)
{
    (void)state;
    char buf[512];
    ec_sent_params sp;
    ec_error err = {0};
    ec_tier_cfg t = tier("anthropic");
    ec_infer_request r = request(1.5, 0);
    const ec_provider *p = ec_provider_find("anthropic");
    assert_int_equal(ec_provider_map_params(p, &t, &r, &sp, &err), EC_OK);
    ec_sent_params_json(p, &sp, buf, sizeof(buf));
    assert_string_equal(buf, "{\"provider\":\"anthropic\",\"temperature\":1,\"temperature_asked\":"
                             "1.5,\"temperature_rule\":\"clamped to the API's maximum 1\","
                             "\"max_tokens\":512,\"max_tokens_rule\":\"default: the API "
                             "requires it\",\"logprobs\":false}");
    json_t *j = json_loads(buf, 0, NULL);
    assert_non_null(j);
    json_decref(j);

    p = ec_provider_find("openai-compatible");
    r = request(0.3, 32);
    assert_int_equal(ec_provider_map_params(p, &t, &r, &sp, &err), EC_OK);
    ec_sent_params_json(p, &sp, buf, sizeof(buf));
    assert_string_equal(buf, "{\"provider\":\"openai-compatible\",\"temperature\":0.3,"
                             "\"max_tokens\":32,\"logprobs\":true,\"top_logprobs\":1}");
    /* Too small a buffer: still valid JSON. */
    ec_sent_params_json(p, &sp, buf, 20);
    assert_string_equal(buf, "{}");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_provider_declares_params),
        cmocka_unit_test(test_anthropic_temperature_clamped),
        cmocka_unit_test(test_refused_before_any_call),
        cmocka_unit_test(test_max_tokens_field),
        cmocka_unit_test(test_top_logprobs),
        cmocka_unit_test(test_ollama_logprobs),
        cmocka_unit_test(test_models_null),
        cmocka_unit_test(test_sent_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
