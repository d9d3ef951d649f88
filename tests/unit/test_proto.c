/* Wire format v1, msgpack side: golden vectors, round trips, the encoders'
 * own checks and the small API (policy names, payload encodings, wire errors,
 * logprob statistics, clearing). Malformed input is test_proto_malformed.c,
 * size and number limits test_proto_limits.c; the helpers they share are in
 * test_proto_wire.h.
 *
 * Golden vectors live in proto/vectors/<name>.hex. They are compared, never
 * rewritten, unless the test runs with EC_WRITE_VECTORS=1 (after a deliberate
 * wire change): `EC_WRITE_VECTORS=1 build/tests/test_proto`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <msgpack.h>

#include "test_proto_wire.h"

/* ---------------------------------------------------------------- golden vectors */

static void test_vectors_encode(void **state)
{
    (void)state;
    bool write = getenv("EC_WRITE_VECTORS") && strcmp(getenv("EC_WRITE_VECTORS"), "1") == 0;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf got, want;
        encode_vector(&vectors[i], &got);
        if (write)
            write_vector(vectors[i].name, &got);
        read_vector(vectors[i].name, &want);
        if (got.len != want.len)
            fail_msg("%s: encoded %zu bytes, vector has %zu", vectors[i].name, got.len, want.len);
        assert_memory_equal(got.data, want.data, got.len);
        /* Encoders append: a second message lands after the first, unchanged. */
        ec_error e = {0};
        assert_int_equal(enc_any(vectors[i].kind, &vectors[i].msg, &got, &e), EC_OK);
        assert_int_equal(got.len, 2 * want.len);
        assert_memory_equal(got.data + want.len, want.data, want.len);
        ec_buf_free(&got);
        ec_buf_free(&want);
    }
}

static void test_vectors_decode(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b;
        read_vector(vectors[i].name, &b);
        anymsg m;
        expect_ok(vectors[i].kind, b.data, b.len, &m);
        if (!eq_any(vectors[i].kind, &m, &vectors[i].msg))
            fail_msg("%s: decoded fields differ", vectors[i].name);
        clear_any(vectors[i].kind, &m);
        assert_true(is_zero(&m, kind_size(vectors[i].kind)));
        clear_any(vectors[i].kind, &m); /* clearing twice is harmless */
        ec_buf_free(&b);
    }
}

/* A few fields spelled out, so a bug shared by encoder and comparer shows. */
static void test_vectors_spot_check(void **state)
{
    (void)state;
    ec_buf b;
    anymsg m;

    read_vector("query_minimal", &b);
    /* {"v":1,"id":nil,"prompt":"...",...}: 10 keys, v first. */
    assert_int_equal((unsigned char)b.data[0], 0x8a);
    assert_memory_equal(b.data + 1, "\xa1v\x01\xa2id\xc0\xa6prompt", 14);
    expect_ok(K_QUERY, b.data, b.len, &m);
    assert_null(m.q.id);
    assert_string_equal(m.q.prompt, "What is the maximum spindle speed of CNC-4 in rpm?");
    assert_int_equal(m.q.n_messages, 0);
    assert_null(m.q.messages);
    assert_int_equal(m.q.max_tokens, 0);
    assert_false(m.q.has_temperature);
    assert_int_equal(m.q.policy, EC_POLICY_AUTO);
    assert_null(m.q.source);
    clear_any(K_QUERY, &m);
    ec_buf_free(&b);

    read_vector("result_escalated", &b);
    expect_ok(K_RESULT, b.data, b.len, &m);
    assert_int_equal(m.r.n_attempts, 2);
    assert_false(m.r.attempts[0].accepted);
    assert_true(m.r.attempts[1].accepted);
    assert_string_equal(m.r.attempts[1].model, "gpt-4o-mini");
    assert_true(m.r.attempts[1].confidence == -1.0);
    assert_true(m.r.escalated);
    assert_true(m.r.redacted);
    assert_false(m.r.escalation_withheld);
    assert_null(m.r.error.code);
    clear_any(K_RESULT, &m);
    ec_buf_free(&b);

    read_vector("infer_reply_error", &b);
    expect_ok(K_IREP, b.data, b.len, &m);
    assert_null(m.rp.answer);
    assert_false(m.rp.lp.present);
    assert_string_equal(m.rp.error.code, "timeout");
    clear_any(K_IREP, &m);
    ec_buf_free(&b);
}

static void test_roundtrip(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b1, b2;
        anymsg m;
        ec_error e = {0};
        encode_vector(&vectors[i], &b1);
        expect_ok(vectors[i].kind, b1.data, b1.len, &m);
        assert_true(eq_any(vectors[i].kind, &m, &vectors[i].msg));
        ec_buf_init(&b2, 0);
        assert_int_equal(enc_any(vectors[i].kind, &m, &b2, &e), EC_OK);
        assert_int_equal(b1.len, b2.len);
        assert_memory_equal(b1.data, b2.data, b1.len);
        clear_any(vectors[i].kind, &m);
        ec_buf_free(&b1);
        ec_buf_free(&b2);
    }
}

/* ---------------------------------------------------------------- encoders */

static void expect_encode_fail(int kind, const anymsg *m, ec_err code, const char *want)
{
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_buf_append(&b, "keep", 4), EC_OK);
    ec_err rc = enc_any(kind, m, &b, &e);
    if (rc != code || !strstr(e.msg, want))
        fail_msg("%s encode: got %d \"%s\", want %d \"%s\"", kind_name[kind], rc, e.msg, code,
                 want);
    /* Nothing half-written is left behind. */
    assert_int_equal(b.len, 4);
    assert_string_equal(b.data, "keep");
    ec_buf_free(&b);
}

static void test_encode_validates(void **state)
{
    (void)state;
    anymsg m;
    char *big = malloc(EC_MAX_ANSWER + 2);
    memset(big, 'a', EC_MAX_ANSWER + 1);
    big[EC_MAX_ANSWER + 1] = '\0';

    m.q = fx_query_minimal();
    m.q.prompt = NULL;
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query: needs a non-empty prompt");
    m.q = fx_query_minimal();
    big[EC_MAX_PROMPT + 1] = '\0';
    m.q.prompt = big;
    expect_encode_fail(K_QUERY, &m, EC_ERR_TOOBIG, "query.prompt: 65537 bytes exceeds limit");
    big[EC_MAX_PROMPT + 1] = 'a';
    m.q = fx_query_full();
    m.q.temperature = 2.5;
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.temperature: must be a number 0..2");
    m.q.temperature = 2.5;
    m.q.has_temperature = false; /* not given: the value is not looked at */
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&m.q, &b, &e), EC_OK);
    ec_buf_free(&b);
    m.q = fx_query_full();
    m.q.max_tokens = -5;
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.max_tokens: must be an integer 0..32768");
    m.q = fx_query_full();
    m.q.policy = (ec_policy)7;
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.policy");
    m.q = fx_query_full();
    m.q.id = S("a/b");
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.id: must not contain");
    m.q = fx_query_full();
    m.q.source = S("\xff");
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.source: is not valid UTF-8");
    m.q = fx_query_full();
    m.q.messages = NULL;
    expect_encode_fail(K_QUERY, &m, EC_ERR_INVAL, "query.messages");

    m.rq = fx_infer_request();
    m.rq.tier = NULL;
    expect_encode_fail(K_IREQ, &m, EC_ERR_INVAL, "infer_request.tier: required");
    m.rq = fx_infer_request();
    m.rq.n_messages = 0;
    expect_encode_fail(K_IREQ, &m, EC_ERR_INVAL, "infer_request.messages: must not be empty");
    ec_chat_msg bad_role[] = {{S("robot"), S("hi")}};
    m.rq.messages = bad_role;
    m.rq.n_messages = 1;
    expect_encode_fail(K_IREQ, &m, EC_ERR_INVAL, "infer_request.messages[0].role: must be");
    /* The path of an element is built by hand (not snprintf): two digits. */
    ec_chat_msg many[12];
    for (size_t i = 0; i < 12; i++)
        many[i] = (ec_chat_msg){S("user"), S("hi")};
    many[11].role = S("robot");
    m.rq.messages = many;
    m.rq.n_messages = 12;
    expect_encode_fail(K_IREQ, &m, EC_ERR_INVAL, "infer_request.messages[11].role: must be");

    m.rp = fx_infer_reply_ok();
    m.rp.answer = NULL;
    expect_encode_fail(K_IREP, &m, EC_ERR_INVAL, "infer_reply: needs an answer or an error");
    m.rp = fx_infer_reply_ok();
    m.rp.lp.mean = -INFINITY;
    expect_encode_fail(K_IREP, &m, EC_ERR_INVAL, "infer_reply.lp.mean: must be a finite number");
    m.rp.lp.present = false; /* not present: not written, not checked */
    ec_buf_init(&b, 0);
    assert_int_equal(ec_infer_reply_encode(&m.rp, &b, &e), EC_OK);
    ec_buf_free(&b);

    m.r = fx_result_local();
    m.r.id = NULL;
    expect_encode_fail(K_RESULT, &m, EC_ERR_INVAL, "result.id: required");
    m.r = fx_result_local();
    m.r.answer = big;
    expect_encode_fail(K_RESULT, &m, EC_ERR_TOOBIG, "result.answer: 131073 bytes exceeds limit");
    m.r = fx_result_local();
    m.r.latency_ms = NAN;
    expect_encode_fail(K_RESULT, &m, EC_ERR_INVAL, "result.latency_ms: must be a finite number");
    m.r = fx_result_local();
    m.r.attempts = NULL;
    expect_encode_fail(K_RESULT, &m, EC_ERR_INVAL, "result.attempts");
    m.r = fx_result_error();
    m.r.error.code = S("");
    expect_encode_fail(K_RESULT, &m, EC_ERR_INVAL, "result.error.code: must not be empty");

    m.s = fx_status();
    m.s.state = NULL;
    expect_encode_fail(K_STATUS, &m, EC_ERR_INVAL, "status.state: required");
    m.s = fx_status();
    m.s.ts_ms = UINT64_MAX;
    expect_encode_fail(K_STATUS, &m, EC_ERR_INVAL, "status.ts_ms");

    /* NULL arguments. */
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(NULL, &b, &e), EC_ERR_INVAL);
    m.s = fx_status();
    assert_int_equal(ec_status_encode(&m.s, NULL, &e), EC_ERR_INVAL);
    assert_int_equal(ec_status_decode("\x80", 1, NULL, &e), EC_ERR_INVAL);
    /* A capped output buffer is honoured and left unchanged. */
    ec_buf small;
    ec_buf_init(&small, 16);
    m.r = fx_result_local();
    assert_int_equal(ec_result_encode(&m.r, &small, &e), EC_ERR_TOOBIG);
    assert_int_equal(small.len, 0);
    ec_buf_free(&small);
    /* The error argument is optional. */
    m.q = fx_query_minimal();
    m.q.prompt = NULL;
    assert_int_equal(ec_query_encode(&m.q, &b, NULL), EC_ERR_INVAL);
    assert_int_equal(ec_query_decode("", 0, &m.q, NULL), EC_ERR_PROTO);
    ec_buf_free(&b);
    free(big);
}

/* ---------------------------------------------------------------- small API */

static void test_policy(void **state)
{
    (void)state;
    ec_policy p = EC_POLICY_LOCAL_ONLY;
    assert_string_equal(ec_policy_name(EC_POLICY_AUTO), "auto");
    assert_string_equal(ec_policy_name(EC_POLICY_LOCAL_ONLY), "local_only");
    assert_string_equal(ec_policy_name((ec_policy)9), "unknown");
    assert_int_equal(ec_policy_parse("auto", &p), 0);
    assert_int_equal(p, EC_POLICY_AUTO);
    assert_int_equal(ec_policy_parse("local_only", &p), 0);
    assert_int_equal(p, EC_POLICY_LOCAL_ONLY);
    assert_string_equal(ec_policy_name(EC_POLICY_CONSENT), "consent");
    assert_int_equal(ec_policy_parse("consent", &p), 0);
    assert_int_equal(p, EC_POLICY_CONSENT);
    p = EC_POLICY_LOCAL_ONLY;
    assert_int_not_equal(ec_policy_parse("cloud", &p), 0);
    assert_int_not_equal(ec_policy_parse("", &p), 0);
    assert_int_not_equal(ec_policy_parse(NULL, &p), 0);
    assert_int_equal(p, EC_POLICY_LOCAL_ONLY); /* untouched on failure */
}

static void test_payload_encoding(void **state)
{
    (void)state;
    assert_int_equal(ec_payload_encoding("{}", 2), EC_ENC_JSON);
    assert_int_equal(ec_payload_encoding(" \t\r\n{\"prompt\":1}", 16), EC_ENC_JSON);
    assert_int_equal(ec_payload_encoding("\x81\xa1v\x01", 4), EC_ENC_MSGPACK);
    assert_int_equal(ec_payload_encoding("[1]", 3), EC_ENC_MSGPACK);
    assert_int_equal(ec_payload_encoding("", 0), EC_ENC_MSGPACK);
    assert_int_equal(ec_payload_encoding("   ", 3), EC_ENC_MSGPACK);
    assert_int_equal(ec_payload_encoding(NULL, 0), EC_ENC_MSGPACK);
    assert_int_equal(ec_payload_encoding("{", 0), EC_ENC_MSGPACK); /* length is honoured */
}

static void test_wire_error(void **state)
{
    (void)state;
    ec_wire_error w = {0};
    assert_int_equal(ec_wire_error_set(&w, "busy", "router queue full"), EC_OK);
    assert_string_equal(w.code, "busy");
    assert_string_equal(w.message, "router queue full");
    assert_int_equal(ec_wire_error_set(&w, "timeout", NULL), EC_OK); /* replaces, no leak */
    assert_string_equal(w.code, "timeout");
    assert_null(w.message);
    assert_int_equal(ec_wire_error_set(&w, NULL, "ignored"), EC_OK); /* no code: no error */
    assert_null(w.code);
    assert_null(w.message);

    /* Upstream text is cut to the wire limit on a character boundary and
     * made valid UTF-8, so the message carrying it always encodes. */
    size_t n = EC_MAX_ERROR_MSG + 100;
    char *text = malloc(n + 1);
    for (size_t i = 0; i < n; i += 2)
        memcpy(text + i, "\xc3\xa9", 2); /* é */
    text[n] = '\0';
    text[0] = (char)0xff;
    assert_int_equal(ec_wire_error_set(&w, "upstream", text), EC_OK);
    /* The broken first character becomes "??", then 511 whole "é" fit. */
    assert_int_equal(strlen(w.message), EC_MAX_ERROR_MSG);
    assert_memory_equal(w.message, "??\xc3\xa9", 4);
    ec_result r = fx_result_error();
    r.error = w;
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_result_encode(&r, &b, &e), EC_OK);
    ec_buf_free(&b);

    /* The whole-text path: valid text at exactly the limit is kept whole,
     * one byte more is cut; a bad byte anywhere is replaced. */
    memset(text, 'a', EC_MAX_ERROR_MSG + 1);
    text[EC_MAX_ERROR_MSG] = '\0';
    assert_int_equal(ec_wire_error_set(&w, "upstream", text), EC_OK);
    assert_string_equal(w.message, text);
    text[EC_MAX_ERROR_MSG] = 'b';
    text[EC_MAX_ERROR_MSG + 1] = '\0';
    assert_int_equal(ec_wire_error_set(&w, "upstream", text), EC_OK);
    assert_int_equal(strlen(w.message), EC_MAX_ERROR_MSG);
    assert_int_equal(ec_wire_error_set(&w, "busy", "queue \xc3 full \xe2\x82\xac"), EC_OK);
    assert_string_equal(w.message, "queue ? full \xe2\x82\xac");
    assert_int_equal(ec_wire_error_set(&w, "b\xffsy", "ok"), EC_OK);
    assert_string_equal(w.code, "b?sy");
    free(text);

    ec_wire_error_clear(&w);
    assert_null(w.code);
    ec_wire_error_clear(&w);
    ec_wire_error_clear(NULL);
    assert_int_equal(ec_wire_error_set(NULL, "x", "y"), EC_ERR_INVAL);
}

static void test_lp_stats(void **state)
{
    (void)state;
    ec_lp_stats s;
    const double lps[] = {-0.1, -0.5, -0.3, 0.0};
    ec_lp_stats_compute(lps, 4, &s);
    assert_true(s.present);
    assert_int_equal(s.n_tokens, 4);
    assert_true(fabs(s.mean - (-0.225)) < 1e-12);
    assert_true(s.min == -0.5);
    assert_true(fabs(s.geo_prob - exp(-0.225)) < 1e-12);
    assert_true(fabs(s.first_prob - exp(-0.1)) < 1e-12);

    ec_lp_stats_compute(lps, 0, &s);
    assert_false(s.present);
    assert_int_equal(s.n_tokens, 0);
    assert_true(s.mean == 0.0 && s.geo_prob == 0.0);
    ec_lp_stats_compute(NULL, 3, &s);
    assert_false(s.present);

    /* -inf and NaN (servers send them for impossible tokens) stay finite. */
    const double odd[] = {-INFINITY, NAN, -2.0};
    ec_lp_stats_compute(odd, 3, &s);
    assert_true(s.present);
    assert_true(isfinite(s.mean) && isfinite(s.min));
    assert_true(s.min <= -1000.0 + 1e-9);
    assert_true(s.first_prob >= 0.0 && s.first_prob < 1e-300);
    ec_infer_reply r = fx_infer_reply_ok();
    r.lp = s;
    ec_buf b;
    ec_error e = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_infer_reply_encode(&r, &b, &e), EC_OK);
    ec_buf_free(&b);
}

static void test_clear_zeroed(void **state)
{
    (void)state;
    ec_query q = {0};
    ec_infer_request rq = {0};
    ec_infer_reply rp = {0};
    ec_result r = {0};
    ec_status s = {0};
    ec_attempt a = {0};
    ec_wire_error w = {0};
    ec_query_clear(&q);
    ec_infer_request_clear(&rq);
    ec_infer_reply_clear(&rp);
    ec_result_clear(&r);
    ec_status_clear(&s);
    ec_attempt_clear(&a);
    ec_wire_error_clear(&w);
    ec_query_clear(NULL);
    ec_infer_request_clear(NULL);
    ec_infer_reply_clear(NULL);
    ec_result_clear(NULL);
    ec_status_clear(NULL);
    ec_attempt_clear(NULL);
    assert_true(is_zero(&q, sizeof(q)) && is_zero(&r, sizeof(r)) && is_zero(&a, sizeof(a)));

    /* A heap-built attempt clears to zero. */
    a.tier = strdup("local");
    a.reason = strdup("r");
    ec_wire_error_set(&a.error, "timeout", "t");
    ec_attempt_clear(&a);
    assert_true(is_zero(&a, sizeof(a)));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_encode),     cmocka_unit_test(test_vectors_decode),
        cmocka_unit_test(test_vectors_spot_check), cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_encode_validates),   cmocka_unit_test(test_policy),
        cmocka_unit_test(test_payload_encoding),   cmocka_unit_test(test_wire_error),
        cmocka_unit_test(test_lp_stats),           cmocka_unit_test(test_clear_zeroed),
    };
    return cmocka_run_group_tests(tests, proto_setup, NULL);
}
