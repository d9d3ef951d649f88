/* Wire format v1, msgpack side: limits. What strings may contain and how
 * long they may be, how many messages and attempts a message may carry, and
 * which number forms (ints, floats of both widths, out of range, NaN) each
 * field accepts. Apart from test_proto_malformed.c because these are the
 * edges of valid input rather than broken input. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <msgpack.h>

#include "test_proto_wire.h"

static void test_string_content(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t n;
        const char *want;
    } bad[] = {
        {"ab\0cd", 5, "contains a NUL byte"},
        {"\0", 1, "contains a NUL byte"},
        {"\xff", 1, "not valid UTF-8"},
        {"abc\xc3", 4, "not valid UTF-8"},          /* cut multi-byte sequence */
        {"\xc0\xaf", 2, "not valid UTF-8"},         /* overlong '/' */
        {"\xed\xa0\x80", 3, "not valid UTF-8"},     /* surrogate */
        {"\xf4\x90\x80\x80", 4, "not valid UTF-8"}, /* past U+10FFFF */
        {"\x80", 1, "not valid UTF-8"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        g_str = bad[i].s;
        g_len = bad[i].n;
        check_edit("query_full", "prompt", put_str_g, EC_ERR_PROTO, bad[i].want);
        check_edit("query_full", "messages.1.content", put_str_g, EC_ERR_PROTO, bad[i].want);
        check_edit("result_escalated", "attempts.0.reason", put_str_g, EC_ERR_PROTO, bad[i].want);
        check_edit("status", "instance", put_str_g, EC_ERR_PROTO, bad[i].want);
    }
    g_str = "Druck \xc3\xbc"
            "ber 4,2 bar \xe2\x80\x94 \xf0\x9f\x94\xa7"; /* ü, em dash, emoji */
    g_len = strlen(g_str);
    check_edit("query_full", "prompt", put_str_g, EC_OK, NULL);

    static const char *const ids[] = {"a/b", "a+b", "a#", "a b", "a\tb", "\x7f"};
    for (size_t i = 0; i < 6; i++) {
        g_str = ids[i];
        g_len = strlen(ids[i]);
        check_edit("result_local", "id", put_str_g, EC_ERR_PROTO, "result.id: must not contain");
        check_edit("query_full", "id", put_str_g, EC_ERR_PROTO, "query.id: must not contain");
    }
    g_str = "plc-7.line_3:req-42";
    g_len = strlen(g_str);
    check_edit("query_full", "id", put_str_g, EC_OK, NULL);

    static const char *const roles[] = {"tool", "System", "", "user "};
    for (size_t i = 0; i < 4; i++) {
        g_str = roles[i];
        g_len = strlen(roles[i]);
        check_edit("query_full", "messages.0.role", put_str_g, EC_ERR_PROTO,
                   "query.messages[0].role: must");
        check_edit("infer_request", "messages.1.role", put_str_g, EC_ERR_PROTO,
                   "infer_request.messages[1].role: must");
    }
}

/* "path:limit" for every bounded string. */
static const struct {
    const char *vec;
    const char *fields;
} limits[] = {
    {"query_full", "id:128 prompt:65536 source:128 messages.0.role:128 messages.1.content:65536"},
    {"infer_request", "id:128 tier:128 messages.0.role:128 messages.1.content:65536"},
    {"infer_reply_ok", "id:128 tier:128 model:128 answer:131072 finish_reason:128"},
    {"infer_reply_error", "error.code:128 error.message:1024"},
    {"result_escalated", "id:128 answer:131072 tier:128 tier_name:128 model:128 reason:512 "
                         "source:128 attempts.0.tier:128 attempts.0.model:128 "
                         "attempts.1.reason:512"},
    {"result_error", "error.code:128 error.message:1024"},
    {"status", "service:128 state:128 version:128 instance:128 config_error:1024 "
               "models.0.tier:128 models.0.model:128"},
};

static void test_string_limits(void **state)
{
    (void)state;
    for (size_t s = 0; s < sizeof(limits) / sizeof(limits[0]); s++) {
        const vector *v = find_vector(limits[s].vec);
        char *list = strdup(limits[s].fields), *save = NULL;
        for (char *tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            char *colon = strrchr(tok, ':');
            size_t limit = strtoul(colon + 1, NULL, 10);
            *colon = '\0';
            char want[160], path[96];
            wire_path(kind_name[v->kind], tok, path, sizeof(path));
            snprintf(want, sizeof(want), "%s: %zu bytes exceeds limit %zu", path, limit + 1, limit);
            g_len = limit + 1;
            check_edit(limits[s].vec, tok, put_str_len, EC_ERR_TOOBIG, want);
            g_len = limit;
            if (!strstr(tok, "role")) /* a 128-byte role is long enough but not a role */
                check_edit(limits[s].vec, tok, put_str_len, EC_OK, NULL);
        }
        free(list);
    }
    /* The message from the spec, exactly. */
    g_len = 70000;
    const vector *v = find_vector("query_minimal");
    ec_buf b;
    msgpack_sbuffer sb;
    ec_error e = {0};
    anymsg m;
    encode_vector(v, &b);
    edit(&b, "prompt", put_str_len, &sb);
    assert_int_equal(ec_query_decode(sb.data, sb.size, &m.q, &e), EC_ERR_TOOBIG);
    assert_int_equal(e.code, EC_ERR_TOOBIG);
    assert_string_equal(e.msg, "query.prompt: 70000 bytes exceeds limit 65536");
    msgpack_sbuffer_destroy(&sb);
    ec_buf_free(&b);
}

/* Builds {"v":1,"messages":[n x {"role":"user","content":<len bytes>}]}. */
static void pack_messages_query(msgpack_sbuffer *sb, size_t n, size_t len, size_t prompt_len)
{
    msgpack_packer pk;
    msgpack_sbuffer_init(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, prompt_len ? 3 : 2);
    msgpack_pack_str_with_body(&pk, "v", 1);
    msgpack_pack_int(&pk, 1);
    if (prompt_len) {
        msgpack_pack_str_with_body(&pk, "prompt", 6);
        g_len = prompt_len;
        put_str_len(&pk);
    }
    msgpack_pack_str_with_body(&pk, "messages", 8);
    msgpack_pack_array(&pk, n);
    g_len = len;
    for (size_t i = 0; i < n; i++) {
        msgpack_pack_map(&pk, 2);
        msgpack_pack_str_with_body(&pk, "role", 4);
        msgpack_pack_str_with_body(&pk, "user", 4);
        msgpack_pack_str_with_body(&pk, "content", 7);
        put_str_len(&pk);
    }
}

static void test_message_limits(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    anymsg m;

    pack_messages_query(&sb, EC_MAX_MESSAGES, 10, 0);
    expect_ok(K_QUERY, sb.data, sb.size, &m);
    assert_int_equal(m.q.n_messages, EC_MAX_MESSAGES);
    clear_any(K_QUERY, &m);
    msgpack_sbuffer_destroy(&sb);

    pack_messages_query(&sb, EC_MAX_MESSAGES + 1, 10, 0);
    expect_fail(K_QUERY, sb.data, sb.size, EC_ERR_TOOBIG,
                "query.messages: 65 entries exceeds limit 64");
    msgpack_sbuffer_destroy(&sb);

    /* Three full messages are exactly the total; one more prompt byte is not. */
    pack_messages_query(&sb, 3, EC_MAX_PROMPT, 0);
    expect_ok(K_QUERY, sb.data, sb.size, &m);
    clear_any(K_QUERY, &m);
    msgpack_sbuffer_destroy(&sb);
    pack_messages_query(&sb, 3, EC_MAX_PROMPT, 1);
    expect_fail(K_QUERY, sb.data, sb.size, EC_ERR_TOOBIG,
                "query: total text 196609 bytes exceeds limit 196608");
    msgpack_sbuffer_destroy(&sb);
    pack_messages_query(&sb, 3, EC_MAX_PROMPT + 1, 0);
    expect_fail(K_QUERY, sb.data, sb.size, EC_ERR_TOOBIG,
                "query.messages[0].content: 65537 bytes exceeds limit 65536");
    msgpack_sbuffer_destroy(&sb);
}

static void test_number_forms(void **state)
{
    (void)state;
    ec_buf b;
    msgpack_sbuffer sb;
    anymsg m;

    /* Integers are fine where a double is expected, in any width. */
    g_int = 1;
    encode_vector(find_vector("query_full"), &b);
    edit(&b, "temperature", put_int_g, &sb);
    expect_ok(K_QUERY, sb.data, sb.size, &m);
    assert_true(m.q.has_temperature && m.q.temperature == 1.0);
    clear_any(K_QUERY, &m);
    msgpack_sbuffer_destroy(&sb);
    g_dbl = 0.5;
    edit(&b, "temperature", put_float32_g, &sb);
    expect_ok(K_QUERY, sb.data, sb.size, &m);
    assert_true(m.q.temperature == 0.5);
    clear_any(K_QUERY, &m);
    msgpack_sbuffer_destroy(&sb);
    ec_buf_free(&b);

    g_int = -1;
    encode_vector(find_vector("result_escalated"), &b);
    edit(&b, "attempts.1.confidence", put_int_g, &sb);
    expect_ok(K_RESULT, sb.data, sb.size, &m);
    assert_true(m.r.attempts[1].confidence == -1.0);
    clear_any(K_RESULT, &m);
    msgpack_sbuffer_destroy(&sb);
    ec_buf_free(&b);

    /* Ranges and their exact messages. */
    g_int = EC_MAX_TOKENS_LIMIT;
    check_edit("query_full", "max_tokens", put_int_g, EC_OK, NULL);
    g_int = 0;
    check_edit("query_full", "max_tokens", put_int_g, EC_OK, NULL);
    g_int = EC_MAX_TOKENS_LIMIT + 1;
    check_edit("query_full", "max_tokens", put_int_g, EC_ERR_PROTO,
               "query.max_tokens: must be an integer 0..32768");
    check_edit("infer_request", "max_tokens", put_float15, EC_ERR_PROTO,
               "infer_request.max_tokens: must be an integer 0..32768");
    g_dbl = 2.0;
    check_edit("query_full", "temperature", put_dbl_g, EC_OK, NULL);
    g_dbl = 0.0;
    check_edit("query_full", "temperature", put_dbl_g, EC_OK, NULL);
    g_dbl = 2.000001;
    check_edit("query_full", "temperature", put_dbl_g, EC_ERR_PROTO,
               "query.temperature: must be a number 0..2");
    g_dbl = -0.01;
    check_edit("infer_request", "temperature", put_dbl_g, EC_ERR_PROTO,
               "infer_request.temperature: must be a number 0..2");
    g_int = (int64_t)UINT32_MAX;
    check_edit("result_local", "tokens_in", put_int_g, EC_OK, NULL);
    check_edit("status", "ts_ms", put_big, EC_OK, NULL);
    g_int = INT64_MAX;
    check_edit("status", "ts_ms", put_int_g, EC_OK, NULL);
    check_edit("result_local", "tier_index", put_big, EC_ERR_PROTO,
               "result.tier_index: must be an integer 0..4294967295");
    g_dbl = 1e300;
    check_edit("result_local", "cost_usd", put_dbl_g, EC_OK, NULL);

    /* Policies by name only. */
    g_str = "auto";
    g_len = 4;
    check_edit("query_full", "policy", put_str_g, EC_OK, NULL);
    g_str = "local_only\0";
    g_len = 11;
    check_edit("query_full", "policy", put_str_g, EC_ERR_PROTO,
               "query.policy: must be \"auto\", \"local_only\" or \"consent\"");
    g_str = "LOCAL_ONLY";
    g_len = 10;
    check_edit("query_full", "policy", put_str_g, EC_ERR_PROTO, "query.policy");
}

static void test_attempts_limit(void **state)
{
    (void)state;
    ec_attempt many[EC_MAX_ATTEMPTS + 1];
    for (size_t i = 0; i <= EC_MAX_ATTEMPTS; i++)
        many[i] = fx_attempts_escalated[i % 2];
    ec_result r = fx_result_escalated();
    ec_buf b;
    ec_error e = {0};
    anymsg m;

    r.attempts = many;
    r.n_attempts = EC_MAX_ATTEMPTS;
    ec_buf_init(&b, 0);
    assert_int_equal(ec_result_encode(&r, &b, &e), EC_OK);
    expect_ok(K_RESULT, b.data, b.len, &m);
    assert_int_equal(m.r.n_attempts, EC_MAX_ATTEMPTS);
    assert_true(fx_result_eq(&m.r, &r, 0));
    clear_any(K_RESULT, &m);

    /* One more: the encoder refuses, and so does the decoder. */
    r.n_attempts = EC_MAX_ATTEMPTS + 1;
    size_t before = b.len;
    assert_int_equal(ec_result_encode(&r, &b, &e), EC_ERR_TOOBIG);
    assert_string_equal(e.msg, "result.attempts: 9 entries exceeds limit 8");
    assert_int_equal(b.len, before);
    /* Hand-build a Result with a ninth attempt. */
    msgpack_sbuffer sb;
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, b.data, b.len, &off), MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, u.data.via.map.size);
    for (uint32_t i = 0; i < u.data.via.map.size; i++) {
        msgpack_object_kv *kv = &u.data.via.map.ptr[i];
        msgpack_pack_object(&pk, kv->key);
        if (kv->key.via.str.size == 8 && memcmp(kv->key.via.str.ptr, "attempts", 8) == 0) {
            msgpack_pack_array(&pk, EC_MAX_ATTEMPTS + 1);
            for (uint32_t j = 0; j <= EC_MAX_ATTEMPTS; j++)
                msgpack_pack_object(&pk, kv->val.via.array.ptr[j % EC_MAX_ATTEMPTS]);
        } else {
            msgpack_pack_object(&pk, kv->val);
        }
    }
    expect_fail(K_RESULT, sb.data, sb.size, EC_ERR_TOOBIG,
                "result.attempts: 9 entries exceeds limit 8");
    msgpack_sbuffer_destroy(&sb);
    msgpack_unpacked_destroy(&u);
    ec_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_string_content), cmocka_unit_test(test_string_limits),
        cmocka_unit_test(test_message_limits), cmocka_unit_test(test_number_forms),
        cmocka_unit_test(test_attempts_limit),
    };
    return cmocka_run_group_tests(tests, proto_setup, NULL);
}
