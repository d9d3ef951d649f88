/* Wire format v1, JSON side: hand-written queries as a PLC or a script would
 * send them, the same field errors as msgpack, exact encoder output, round
 * trips, decode_any dispatch and malformed/random JSON. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "test_proto_fixtures.h"

static ec_query expect_query_ok(const char *json)
{
    ec_query q;
    ec_error e = {0};
    ec_err rc = ec_query_decode_json(json, strlen(json), &q, &e);
    if (rc != EC_OK)
        fail_msg("unexpected error %d \"%s\" for %s", rc, e.msg, json);
    return q;
}

static bool is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

/* Exact message when want starts with '=', else a substring. */
static void expect_query_fail_n(const char *json, size_t len, ec_err code, const char *want)
{
    ec_query q;
    memset(&q, 0x5a, sizeof(q));
    ec_error e = {0};
    ec_err rc = ec_query_decode_json(json, len, &q, &e);
    bool match = !want || (want[0] == '=' ? strcmp(e.msg, want + 1) == 0 : !!strstr(e.msg, want));
    if (rc != code || !match)
        fail_msg("got %d \"%s\", want %d \"%s\" for %.80s", rc, e.msg, code, want ? want : "",
                 json);
    assert_true(is_zero(&q, sizeof(q)));
}

static void expect_query_fail(const char *json, ec_err code, const char *want)
{
    expect_query_fail_n(json, strlen(json), code, want);
}

static char *encode_query_json(const ec_query *q)
{
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    ec_err rc = ec_query_encode_json(q, &b, &e);
    if (rc)
        fail_msg("encode: %s", e.msg);
    return ec_buf_take(&b, NULL);
}

static char *encode_result_json(const ec_result *r)
{
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    ec_err rc = ec_result_encode_json(r, &b, &e);
    if (rc)
        fail_msg("encode: %s", e.msg);
    return ec_buf_take(&b, NULL);
}

/* ---------------------------------------------------------------- decode */

static void test_handwritten_query(void **state)
{
    (void)state;
    /* The smallest thing a client can send: no "v", no id. */
    ec_query q = expect_query_ok("{\"prompt\": \"What is the max spindle speed of CNC-4?\"}");
    assert_null(q.id);
    assert_string_equal(q.prompt, "What is the max spindle speed of CNC-4?");
    assert_int_equal(q.n_messages, 0);
    assert_int_equal(q.max_tokens, 0);
    assert_false(q.has_temperature);
    assert_int_equal(q.policy, EC_POLICY_AUTO);
    assert_null(q.source);
    ec_query_clear(&q);

    q = expect_query_ok(" \n{\n"
                        "  \"v\": 1,\n"
                        "  \"id\": \"plc7-000042\",\n"
                        "  \"messages\": [\n"
                        "    {\"role\": \"system\", \"content\": \"Be brief.\"},\n"
                        "    {\"role\": \"user\", \"content\": \"Druck \\u00fcber 4,2 bar?\"}\n"
                        "  ],\n"
                        "  \"max_tokens\": 128,\n"
                        "  \"temperature\": 0,\n"
                        "  \"policy\": \"local_only\",\n"
                        "  \"source\": \"plc-7\",\n"
                        "  \"priority\": \"high\"\n"
                        "}\n");
    assert_string_equal(q.id, "plc7-000042");
    assert_null(q.prompt);
    assert_int_equal(q.n_messages, 2);
    assert_string_equal(q.messages[0].role, "system");
    assert_string_equal(q.messages[1].content, "Druck \xc3\xbc"
                                               "ber 4,2 bar?");
    assert_int_equal(q.max_tokens, 128);
    assert_true(q.has_temperature);
    assert_true(q.temperature == 0.0); /* an integer where a number is expected */
    assert_int_equal(q.policy, EC_POLICY_LOCAL_ONLY);
    assert_string_equal(q.source, "plc-7");
    ec_query_clear(&q);
    assert_true(is_zero(&q, sizeof(q)));

    /* nulls mean "not given". */
    q = expect_query_ok(
        "{\"v\":1,\"id\":null,\"prompt\":\"p\",\"messages\":null,"
        "\"max_tokens\":null,\"temperature\":null,\"policy\":null,\"source\":null}");
    assert_null(q.id);
    assert_false(q.has_temperature);
    ec_query_clear(&q);

    /* PLCs count requests: an integer id is taken as its decimal text. */
    q = expect_query_ok("{\"id\": 42, \"prompt\": \"p\"}");
    assert_string_equal(q.id, "42");
    ec_query_clear(&q);
    q = expect_query_ok("{\"id\": -7, \"prompt\": \"p\"}");
    assert_string_equal(q.id, "-7");
    ec_query_clear(&q);
}

static void test_same_errors_as_msgpack(void **state)
{
    (void)state;
    expect_query_fail("{\"prompt\":\"p\",\"max_tokens\":100.0}", EC_ERR_PROTO,
                      "=query.max_tokens: must be an integer 0..32768");
    expect_query_fail("{\"prompt\":\"p\",\"max_tokens\":1e2}", EC_ERR_PROTO,
                      "=query.max_tokens: must be an integer 0..32768");
    expect_query_fail("{\"prompt\":\"p\",\"max_tokens\":-1}", EC_ERR_PROTO,
                      "=query.max_tokens: must be an integer 0..32768");
    expect_query_fail("{\"prompt\":\"p\",\"max_tokens\":32769}", EC_ERR_PROTO,
                      "=query.max_tokens: must be an integer 0..32768");
    expect_query_fail("{\"prompt\":\"p\",\"max_tokens\":\"100\"}", EC_ERR_PROTO,
                      "=query.max_tokens: must be an integer 0..32768");
    expect_query_fail("{\"prompt\":\"p\",\"temperature\":2.5}", EC_ERR_PROTO,
                      "=query.temperature: must be a number 0..2");
    expect_query_fail("{\"prompt\":\"p\",\"temperature\":true}", EC_ERR_PROTO,
                      "=query.temperature: must be a number 0..2");
    expect_query_fail("{\"prompt\":42}", EC_ERR_PROTO, "=query.prompt: must be a string");
    expect_query_fail("{\"prompt\":\"p\",\"policy\":\"cloud\"}", EC_ERR_PROTO,
                      "=query.policy: must be \"auto\", \"local_only\" or \"consent\"");
    expect_query_fail("{\"prompt\":\"p\",\"source\":[\"a\"]}", EC_ERR_PROTO,
                      "=query.source: must be a string");
    expect_query_fail("{\"prompt\":\"p\",\"id\":\"a/b\"}", EC_ERR_PROTO, "query.id: must not");
    expect_query_fail("{\"prompt\":\"p\",\"id\":1.5}", EC_ERR_PROTO, "=query.id: must be a string");
    expect_query_fail("{\"prompt\":\"a\\u0000b\"}", EC_ERR_PROTO,
                      "=query.prompt: contains a NUL byte");
    expect_query_fail("{\"prompt\":\"p\",\"messages\":{}}", EC_ERR_PROTO,
                      "=query.messages: must be an array");
    expect_query_fail("{\"messages\":[\"hi\"]}", EC_ERR_PROTO, "=query.messages[0]: must be a map");
    expect_query_fail("{\"messages\":[{\"role\":\"user\"}]}", EC_ERR_PROTO,
                      "=query.messages[0].content: required");
    expect_query_fail("{\"messages\":[{\"role\":\"bot\",\"content\":\"x\"}]}", EC_ERR_PROTO,
                      "=query.messages[0].role: must be \"system\", \"user\" or \"assistant\"");
    expect_query_fail("{}", EC_ERR_PROTO,
                      "=query: needs a non-empty prompt or at least one message");
    expect_query_fail("{\"prompt\":\"\",\"messages\":[]}", EC_ERR_PROTO,
                      "=query: needs a non-empty prompt or at least one message");
    expect_query_fail("{\"v\":2,\"prompt\":\"p\"}", EC_ERR_PROTO,
                      "=query.v: unsupported version 2 (expected 1)");
    expect_query_fail("{\"v\":\"1\",\"prompt\":\"p\"}", EC_ERR_PROTO,
                      "=query.v: must be the integer 1");
}

static char *repeat(char c, size_t n)
{
    char *s = malloc(n + 1);
    memset(s, c, n);
    s[n] = '\0';
    return s;
}

static void test_limits(void **state)
{
    (void)state;
    ec_buf b;
    ec_buf_init(&b, 0);
    char *big = repeat('a', 70000);
    ec_buf_printf(&b, "{\"prompt\":\"%s\"}", big);
    expect_query_fail(b.data, EC_ERR_TOOBIG, "=query.prompt: 70000 bytes exceeds limit 65536");
    ec_buf_reset(&b);

    /* 65 messages. */
    ec_buf_printf(&b, "{\"messages\":[");
    for (int i = 0; i < 65; i++)
        ec_buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"m%d\"}", i ? "," : "", i);
    ec_buf_printf(&b, "]}");
    expect_query_fail(b.data, EC_ERR_TOOBIG, "=query.messages: 65 entries exceeds limit 64");
    ec_buf_reset(&b);

    /* The whole payload. */
    free(big);
    big = repeat(' ', EC_MAX_PAYLOAD);
    ec_buf_printf(&b, "{\"prompt\":\"p\"}%s", big);
    expect_query_fail(b.data, EC_ERR_TOOBIG, "=query: payload 262158 bytes exceeds limit 262144");
    ec_buf_free(&b);
    free(big);

    /* Over the total text even though each message fits. */
    char *part = repeat('x', EC_MAX_PROMPT);
    ec_buf_init(&b, 0);
    ec_buf_printf(&b, "{\"prompt\":\"y\",\"messages\":[");
    for (int i = 0; i < 3; i++)
        ec_buf_printf(&b, "%s{\"role\":\"user\",\"content\":\"%s\"}", i ? "," : "", part);
    ec_buf_printf(&b, "]}");
    expect_query_fail(b.data, EC_ERR_TOOBIG,
                      "=query: total text 196609 bytes exceeds limit 196608");
    ec_buf_free(&b);
    free(part);
}

static void test_malformed(void **state)
{
    (void)state;
    static const char *const not_json[] = {
        "{",
        "{\"prompt\":\"p\"",
        "{\"prompt\":\"p\",}",
        "{\"prompt\":\"p\"} {}",
        "{\"prompt\":\"p\"}x",
        "{\"prompt\":'p'}",
        "{\"prompt\":\"p\",\"prompt\":\"q\"}", /* duplicate key */
        "{\"prompt\":\"\\ud800\"}",            /* lone surrogate */
        "{\"prompt\":\"\xff\"}",               /* not UTF-8 */
        "{\"prompt\":\"p\",\"max_tokens\":99999999999999999999999}",
        "{\"prompt\":\"p\",\"temperature\":NaN}",
        "{prompt:\"p\"}",
    };
    for (size_t i = 0; i < sizeof(not_json) / sizeof(not_json[0]); i++)
        expect_query_fail(not_json[i], EC_ERR_PROTO, "query: invalid JSON");

    expect_query_fail("[{\"prompt\":\"p\"}]", EC_ERR_PROTO, "=query: top level must be an object");
    expect_query_fail_n("", 0, EC_ERR_PROTO, "=query: empty payload");
    expect_query_fail_n(NULL, 0, EC_ERR_PROTO, "=query: empty payload");
    /* The length is honoured: the closing brace is outside it. */
    expect_query_fail_n("{\"prompt\":\"p\"}", 13, EC_ERR_PROTO, "invalid JSON");

    /* Nesting inside an unknown key is bounded. */
    ec_buf b;
    ec_buf_init(&b, 0);
    ec_buf_printf(&b, "{\"prompt\":\"p\",\"x\":");
    for (int i = 0; i < 40; i++)
        ec_buf_printf(&b, "[");
    for (int i = 0; i < 40; i++)
        ec_buf_printf(&b, "]");
    ec_buf_printf(&b, "}");
    expect_query_fail(b.data, EC_ERR_PROTO, "nested deeper than 16 levels");
    ec_buf_free(&b);
    ec_query q = expect_query_ok("{\"prompt\":\"p\",\"x\":[[[{\"a\":[1,2.5,null,true]}]]]}");
    ec_query_clear(&q);
}

static void test_truncated_every_byte(void **state)
{
    (void)state;
    ec_query full = fx_query_full();
    char *json = encode_query_json(&full);
    size_t n = strlen(json);
    for (size_t i = 0; i < n; i++)
        expect_query_fail_n(json, i, EC_ERR_PROTO, NULL);
    free(json);
}

/* ---------------------------------------------------------------- encode */

static void test_encode_exact(void **state)
{
    (void)state;
    ec_query q = fx_query_minimal();
    char *json = encode_query_json(&q);
    assert_string_equal(
        json, "{\"v\":1,\"id\":null,\"prompt\":\"What is the maximum spindle speed "
              "of CNC-4 in rpm?\",\"messages\":null,\"max_tokens\":null,"
              "\"temperature\":null,\"policy\":\"auto\",\"source\":null,\"deadline_ms\":0,"
              "\"consent\":false}");
    free(json);

    q = fx_query_full();
    json = encode_query_json(&q);
    assert_string_equal(
        json, "{\"v\":1,\"id\":\"q-000123\",\"prompt\":\"What should I check first?\","
              "\"messages\":[{\"role\":\"system\",\"content\":\"You are the maintenance assistant "
              "of plant 2. Answer briefly.\"},{\"role\":\"user\",\"content\":\"Alarm 4711 on press "
              "P-12: hydraulic pressure low.\"},{\"role\":\"assistant\",\"content\":\"Check the "
              "accumulator pre-charge and the pump inlet filter.\"}],\"max_tokens\":256,"
              "\"temperature\":0.25,\"policy\":\"local_only\",\"source\":\"plc-7\","
              "\"deadline_ms\":0,\"consent\":true}");
    free(json);

    ec_result r = fx_result_error();
    json = encode_result_json(&r);
    assert_string_equal(
        json,
        "{\"v\":1,\"id\":\"01HZX3QB0000000000000000CD\",\"answer\":null,\"tier\":null,"
        "\"tier_index\":null,\"tier_name\":null,\"model\":null,\"confidence\":null,"
        "\"threshold\":null,\"escalated\":false,\"reason\":null,\"cost_usd\":0.0,"
        "\"latency_ms\":0.0,\"router_ms\":0.0,\"attempts\":null,\"tokens_in\":0,"
        "\"tokens_out\":0,\"source\":null,\"asker\":null,\"degraded\":false,\"revision\":0,"
        "\"complexity\":null,\"redacted\":false,\"escalation_withheld\":false,\"replayed\":false,"
        "\"error\":{\"code\":\"bad_request\","
        "\"message\":\"query.max_tokens: must be an integer 0..32768\"}}");
    free(json);

    ec_status s = fx_status();
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_status_encode_json(&s, &b, &e), EC_OK);
    assert_string_equal(b.data, "{\"v\":1,\"service\":\"router\",\"state\":\"online\","
                                "\"version\":\"0.1.0\",\"instance\":\"edgecascade-router-7f3a\","
                                "\"pid\":4242,\"ts_ms\":1718000000000,"
                                "\"config_ts_ms\":1717999990000,\"config_error\":\"gate."
                                "min_confidence: must be between 0 and 1\",\"models\":[{"
                                "\"tier\":\"local\",\"model\":\"llama3.2-3b\",\"state\":"
                                "\"serving\",\"error\":null,\"logprobs\":\"ok\"}]}");
    /* Encoders append. */
    size_t one = b.len;
    assert_int_equal(ec_status_encode_json(&s, &b, &e), EC_OK);
    assert_int_equal(b.len, 2 * one);
    assert_memory_equal(b.data, b.data + one, one);
    ec_buf_free(&b);

    /* Non-ASCII stays UTF-8, control characters are escaped. */
    q = fx_query_minimal();
    q.prompt = S("Temperatur \xc3\xbc"
                 "ber 80 \xc2\xb0"
                 "C?\n\t\"ok\"");
    json = encode_query_json(&q);
    assert_non_null(strstr(json, "\"prompt\":\"Temperatur \xc3\xbc"
                                 "ber 80 \xc2\xb0"
                                 "C?\\n\\t\\\"ok\\\"\""));
    ec_query back = expect_query_ok(json);
    assert_string_equal(back.prompt, q.prompt);
    ec_query_clear(&back);
    free(json);
}

static void test_roundtrip(void **state)
{
    (void)state;
    ec_query qs[] = {fx_query_minimal(), fx_query_full()};
    for (size_t i = 0; i < 2; i++) {
        char *json = encode_query_json(&qs[i]);
        ec_query q = expect_query_ok(json);
        assert_true(fx_query_eq(&q, &qs[i], 0));
        ec_query_clear(&q);
        free(json);
    }
    ec_result rs[] = {fx_result_local(), fx_result_escalated(), fx_result_error()};
    for (size_t i = 0; i < 3; i++) {
        char *json = encode_result_json(&rs[i]);
        ec_result r;
        ec_error e = {0};
        assert_int_equal(ec_result_decode_json(json, strlen(json), &r, &e), EC_OK);
        /* 15 significant digits on the way through JSON. */
        assert_true(fx_result_eq(&r, &rs[i], 1e-14));
        char *again = encode_result_json(&r);
        assert_string_equal(again, json);
        ec_result_clear(&r);
        free(again);
        free(json);
    }
    /* JSON prints 15 digits: a value needing more comes back within 1e-15. */
    ec_result r0 = fx_result_local();
    r0.latency_ms = 0.1 + 0.2;
    char *json = encode_result_json(&r0);
    assert_non_null(strstr(json, "\"latency_ms\":0.3,"));
    ec_result r;
    ec_error e = {0};
    assert_int_equal(ec_result_decode_json(json, strlen(json), &r, &e), EC_OK);
    assert_true(fabs(r.latency_ms - r0.latency_ms) < 1e-15);
    ec_result_clear(&r);
    free(json);
}

static void test_result_json_errors(void **state)
{
    (void)state;
    ec_result r;
    ec_error e = {0};
    const char *nov = "{\"id\":\"x\"}";
    assert_int_equal(ec_result_decode_json(nov, strlen(nov), &r, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "result.v: required");
    assert_true(is_zero(&r, sizeof(r)));
    const char *noid = "{\"v\":1,\"answer\":\"a\"}";
    assert_int_equal(ec_result_decode_json(noid, strlen(noid), &r, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "result.id: required");
    /* Result ids are strings; only Query takes an integer id. */
    const char *intid = "{\"v\":1,\"id\":5}";
    assert_int_equal(ec_result_decode_json(intid, strlen(intid), &r, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "result.id: must be a string");
    const char *badatt = "{\"v\":1,\"id\":\"x\",\"attempts\":[{\"tier_index\":-1}]}";
    assert_int_equal(ec_result_decode_json(badatt, strlen(badatt), &r, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "result.attempts[0].tier_index: must be an integer 0..4294967295");
    const char *arr = "[]";
    assert_int_equal(ec_result_decode_json(arr, 2, &r, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "result: top level must be an object");
    const char *ok = "{\"v\":1,\"id\":\"x\",\"error\":{\"code\":\"busy\"},\"extra\":{}}";
    assert_int_equal(ec_result_decode_json(ok, strlen(ok), &r, &e), EC_OK);
    assert_string_equal(r.error.code, "busy");
    assert_null(r.error.message);
    assert_null(r.answer);
    ec_result_clear(&r);
}

static void test_encode_validates(void **state)
{
    (void)state;
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_buf_append(&b, "keep", 4), EC_OK);

    ec_query q = fx_query_full();
    q.max_tokens = 40000;
    assert_int_equal(ec_query_encode_json(&q, &b, &e), EC_ERR_INVAL);
    assert_string_equal(e.msg, "query.max_tokens: must be an integer 0..32768");
    ec_result r = fx_result_local();
    r.id = NULL;
    assert_int_equal(ec_result_encode_json(&r, &b, &e), EC_ERR_INVAL);
    assert_string_equal(e.msg, "result.id: required");
    ec_status s = fx_status();
    s.service = S("");
    assert_int_equal(ec_status_encode_json(&s, &b, &e), EC_ERR_INVAL);
    assert_string_equal(e.msg, "status.service: must not be empty");
    assert_int_equal(ec_status_encode_json(NULL, &b, &e), EC_ERR_INVAL);
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");

    /* JSON escaping can make text bigger than the payload limit. */
    q = fx_query_minimal();
    char *ctl = repeat('\x01', 50000); /* each becomes \u0001 */
    q.prompt = ctl;
    assert_int_equal(ec_query_encode_json(&q, &b, &e), EC_ERR_TOOBIG);
    assert_non_null(strstr(e.msg, "exceeds payload limit"));
    assert_int_equal(b.len, 4);
    ec_buf_free(&b);
    free(ctl);
}

/* ---------------------------------------------------------------- decode_any */

static void test_decode_any(void **state)
{
    (void)state;
    ec_query full = fx_query_full();
    ec_buf mp;
    ec_error e = {0};
    ec_encoding enc = EC_ENC_JSON;
    ec_query q;

    ec_buf_init(&mp, 0);
    assert_int_equal(ec_query_encode(&full, &mp, &e), EC_OK);
    assert_int_equal(ec_query_decode_any(mp.data, mp.len, &q, &enc, &e), EC_OK);
    assert_int_equal(enc, EC_ENC_MSGPACK);
    assert_true(fx_query_eq(&q, &full, 0));
    ec_query_clear(&q);

    char *json = encode_query_json(&full);
    ec_buf spaced;
    ec_buf_init(&spaced, 0);
    ec_buf_printf(&spaced, " \r\n\t%s\n", json);
    assert_int_equal(ec_query_decode_any(spaced.data, spaced.len, &q, &enc, &e), EC_OK);
    assert_int_equal(enc, EC_ENC_JSON);
    assert_true(fx_query_eq(&q, &full, 0));
    ec_query_clear(&q);

    /* enc is optional; errors come from the chosen decoder. */
    assert_int_equal(ec_query_decode_any("{\"v\":3}", 7, &q, NULL, &e), EC_ERR_PROTO);
    assert_string_equal(e.msg, "query.v: unsupported version 3 (expected 1)");
    assert_int_equal(ec_query_decode_any("\x91\x01", 2, &q, &enc, &e), EC_ERR_PROTO);
    assert_int_equal(enc, EC_ENC_MSGPACK);
    assert_string_equal(e.msg, "query: top level must be a map");
    assert_int_equal(ec_query_decode_any("", 0, &q, &enc, &e), EC_ERR_PROTO);
    assert_true(is_zero(&q, sizeof(q)));

    ec_buf_free(&mp);
    ec_buf_free(&spaced);
    free(json);
}

/* ---------------------------------------------------------------- random */

static uint64_t rng_state = 0x15011501abcdefull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static void test_mutated_json(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\",:0123456789.-eEtrufalsn \\u\x01\xc3\xff";
    ec_query full = fx_query_full();
    char *json = encode_query_json(&full);
    size_t n = strlen(json);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        char *buf = malloc(n);
        memcpy(buf, json, n);
        int changes = 1 + (int)(rng() % 3);
        for (int c = 0; c < changes; c++)
            buf[rng() % n] = alphabet[rng() % (sizeof(alphabet) - 1)];
        size_t len = rng() % 10 == 0 ? rng() % (n + 1) : n;
        ec_query q;
        ec_error e = {0};
        ec_err rc = ec_query_decode_json(buf, len, &q, &e);
        if (rc == EC_OK) {
            /* Anything accepted must be encodable in both forms. */
            ec_buf b;
            ec_buf_init(&b, 0);
            if (ec_query_encode(&q, &b, &e) || ec_query_encode_json(&q, &b, &e))
                fail_msg("accepted but cannot re-encode: %s", e.msg);
            ec_buf_free(&b);
            ec_query_clear(&q);
            accepted++;
        } else {
            assert_true(rc == EC_ERR_PROTO || rc == EC_ERR_TOOBIG);
            assert_true(e.msg[0] != '\0');
            assert_true(is_zero(&q, sizeof(q)));
        }
        free(buf);
    }
    assert_true(accepted > 1000);
    free(json);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handwritten_query),
        cmocka_unit_test(test_same_errors_as_msgpack),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_encode_exact),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_result_json_errors),
        cmocka_unit_test(test_encode_validates),
        cmocka_unit_test(test_decode_any),
        cmocka_unit_test(test_mutated_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
