/* Wire format v1, msgpack side: malformed input. Truncation at every byte,
 * trailing bytes, hostile headers, deep nesting, duplicate and unknown keys,
 * the version, a wrong type for every field, missing required and optional
 * fields, random bytes and mutated vectors with a fixed seed: each must be
 * refused with the right error and a zeroed output, never crash. Apart from
 * test_proto.c (the vectors themselves) because it is the bulk of the cases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>
#include <msgpack.h>

#include "test_proto_wire.h"

/* ---------------------------------------------------------------- malformed input */

static void test_truncated_every_byte(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b;
        read_vector(vectors[i].name, &b);
        for (size_t n = 0; n < b.len; n++)
            expect_fail(vectors[i].kind, b.data, n, EC_ERR_PROTO, NULL);
        ec_buf_free(&b);
    }
}

static void test_trailing_bytes(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b;
        read_vector(vectors[i].name, &b);
        assert_int_equal(ec_buf_append(&b, "\xc0", 1), EC_OK);
        expect_fail(vectors[i].kind, b.data, b.len, EC_ERR_PROTO, "1 trailing bytes");
        /* Two messages back to back are not one message either. */
        ec_buf c, again;
        read_vector(vectors[i].name, &c);
        read_vector(vectors[i].name, &again);
        assert_int_equal(ec_buf_append(&c, again.data, again.len), EC_OK);
        ec_buf_free(&again);
        expect_fail(vectors[i].kind, c.data, c.len, EC_ERR_PROTO, "trailing bytes");
        ec_buf_free(&b);
        ec_buf_free(&c);
    }
}

static void test_empty_and_not_a_map(void **state)
{
    (void)state;
    for (int k = 0; k < K__COUNT; k++) {
        expect_fail(k, "", 0, EC_ERR_PROTO, "empty payload");
        expect_fail(k, NULL, 0, EC_ERR_PROTO, "empty payload");
        expect_fail(k, "\x01", 1, EC_ERR_PROTO, "top level must be a map");
        expect_fail(k, "\xc0", 1, EC_ERR_PROTO, "top level must be a map");
        expect_fail(k, "\x92\x01\x02", 3, EC_ERR_PROTO, "top level must be a map");
        expect_fail(k,
                    "\xa3"
                    "abc",
                    4, EC_ERR_PROTO, "top level must be a map");
        expect_fail(k, "\xc1", 1, EC_ERR_PROTO, "invalid msgpack");
        expect_fail(k, "{\"v\":1}", 7, EC_ERR_PROTO, NULL); /* JSON is not msgpack */
        /* A map with a non-string key. */
        expect_fail(k, "\x81\x01\x01", 3, EC_ERR_PROTO, "map keys must be strings");
    }
}

static void test_payload_limit(void **state)
{
    (void)state;
    size_t n = EC_MAX_PAYLOAD + 1;
    char *big = calloc(1, n);
    big[0] = (char)0x81;
    for (int k = 0; k < K__COUNT; k++)
        expect_fail(k, big, n, EC_ERR_TOOBIG, "exceeds limit 262144");
    free(big);
}

/* Headers that claim more than the buffer holds must fail fast, before any
 * allocation sized by the claim (ASan would abort on a 100 GB request). */
static void test_hostile_headers(void **state)
{
    (void)state;
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\xdf\xff\xff\xff\xff", 5},                    /* map32 of 2^32-1 */
        {"\xdd\xff\xff\xff\xff", 5},                    /* array32 */
        {"\x82\xa1v\x01\xa1x\xdd\xff\xff\xff\xff", 11}, /* inside an unknown key */
        {"\x81\xa6prompt\xdb\xff\xff\xff\xff", 13},     /* str32 */
        {"\x81\xa6prompt\xc6\x7f\xff\xff\xff", 13},     /* bin32 */
        {"\x81\xa1x\xc9\xff\xff\xff\xff\x01", 9},       /* ext32 */
        {"\x81\xa1x\xde\xff\xff", 6},                   /* map16 */
        {"\x81\xa1x\xdc\x00\x05\x01\x02", 8},           /* array16 short by 3 */
        {"\x81\xa1x\xcb\x00\x00", 6},                   /* float64 short */
        {"\x81\xa1x\xd8\x01", 5},                       /* fixext16 short */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        for (int k = 0; k < K__COUNT; k++)
            expect_fail(k, cases[i].bytes, cases[i].len, EC_ERR_PROTO, "truncated");
}

static void test_deep_nesting(void **state)
{
    (void)state;
    /* {"v":1,"prompt":"p","x":[[[...1...]]]} with depth d arrays. */
    for (int depth = 1; depth <= 40; depth++) {
        static const char head[] = "\x83\xa1v\x01\xa6prompt\xa1p\xa1x";
        unsigned char buf[128];
        size_t n = sizeof(head) - 1;
        memcpy(buf, head, n);
        for (int i = 0; i < depth; i++)
            buf[n++] = 0x91;
        buf[n++] = 0x01;
        if (depth <= 15) { /* the root map and 15 arrays: 16 levels, the most allowed */
            anymsg m;
            expect_ok(K_QUERY, buf, n, &m);
            assert_string_equal(m.q.prompt, "p");
            clear_any(K_QUERY, &m);
        } else {
            expect_fail(K_QUERY, buf, n, EC_ERR_PROTO, "nested deeper than 16 levels");
        }
    }
}

static void test_unknown_keys_ignored(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b;
        msgpack_sbuffer sb;
        encode_vector(&vectors[i], &b);
        edit(&b, "x_future", put_garbage, &sb);
        anymsg m;
        expect_ok(vectors[i].kind, sb.data, sb.size, &m);
        assert_true(eq_any(vectors[i].kind, &m, &vectors[i].msg));
        clear_any(vectors[i].kind, &m);
        msgpack_sbuffer_destroy(&sb);
        ec_buf_free(&b);
    }
    /* Nested maps ignore unknown keys too. */
    check_edit("result_escalated", "attempts.1.x_future", put_garbage, EC_OK, NULL);
    check_edit("query_full", "messages.0.name", put_str_x, EC_OK, NULL);
    check_edit("infer_reply_ok", "lp.p90", put_float15, EC_OK, NULL);
}

static void test_duplicate_key(void **state)
{
    (void)state;
    /* {"v":1,"prompt":"a","prompt":"b"}: the first copy must not leak. */
    const char dup[] = "\x83\xa1v\x01\xa6prompt\xa1\x61\xa6prompt\xa1\x62";
    expect_fail(K_QUERY, dup, sizeof(dup) - 1, EC_ERR_PROTO, "query.prompt: duplicate key");
    const char dupv[] = "\x83\xa1v\x01\xa1v\x01\xa6prompt\xa1\x61";
    expect_fail(K_QUERY, dupv, sizeof(dupv) - 1, EC_ERR_PROTO, "query.v: duplicate key");
}

/* Re-packs the top-level map of src with its keys in reverse order. */
static void reverse_keys(const ec_buf *src, msgpack_sbuffer *out)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, src->data, src->len, &off), MSGPACK_UNPACK_SUCCESS);
    assert_int_equal(u.data.type, MSGPACK_OBJECT_MAP);
    msgpack_sbuffer_init(out);
    msgpack_packer pk;
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);
    const msgpack_object_map *m = &u.data.via.map;
    msgpack_pack_map(&pk, m->size);
    for (uint32_t i = m->size; i-- > 0;) {
        msgpack_pack_object(&pk, m->ptr[i].key);
        msgpack_pack_object(&pk, m->ptr[i].val);
    }
    msgpack_unpacked_destroy(&u);
}

/* The decoder looks for each key first after the field the previous key
 * matched (our encoders write table order): any other order, and keys that
 * only share a prefix with a field or carry a NUL, must decode as before. */
static void test_key_order_and_lookalikes(void **state)
{
    (void)state;
    for (int i = 0; i < N_VECTORS; i++) {
        ec_buf b;
        msgpack_sbuffer sb;
        encode_vector(&vectors[i], &b);
        reverse_keys(&b, &sb);
        anymsg m;
        expect_ok(vectors[i].kind, sb.data, sb.size, &m);
        assert_true(eq_any(vectors[i].kind, &m, &vectors[i].msg));
        clear_any(vectors[i].kind, &m);
        msgpack_sbuffer_destroy(&sb);
        ec_buf_free(&b);
    }
    /* {"prompt\0":"b","promp":"c","v":1,"prompts":"d","prompt":"a"} */
    const char look[] = "\x85\xa7prompt\0\xa1\x62\xa5promp\xa1\x63\xa1v\x01"
                        "\xa7prompts\xa1\x64\xa6prompt\xa1\x61";
    anymsg m;
    expect_ok(K_QUERY, look, sizeof(look) - 1, &m);
    assert_string_equal(m.q.prompt, "a");
    clear_any(K_QUERY, &m);
    /* A duplicate is found wherever the search starts. */
    const char dup[] = "\x84\xa6prompt\xa1\x61\xa1v\x01\xa2id\xa1x\xa6prompt\xa1\x62";
    expect_fail(K_QUERY, dup, sizeof(dup) - 1, EC_ERR_PROTO, "query.prompt: duplicate key");
}

static void test_version(void **state)
{
    (void)state;
    check_edit("query_full", "v", put_int2, EC_ERR_PROTO,
               "query.v: unsupported version 2 (expected 1)");
    check_edit("query_full", "v", put_str_1, EC_ERR_PROTO, "query.v: must be the integer 1");
    check_edit("query_full", "v", put_float1, EC_ERR_PROTO, "query.v");
    /* Only a Query may leave "v" out (hand-written JSON queries). */
    check_edit("query_full", "v", NULL, EC_OK, NULL);
    check_edit("query_full", "v", put_nil, EC_OK, NULL);
    check_edit("infer_request", "v", NULL, EC_ERR_PROTO, "infer_request.v: required");
    check_edit("infer_reply_ok", "v", NULL, EC_ERR_PROTO, "infer_reply.v: required");
    check_edit("result_local", "v", NULL, EC_ERR_PROTO, "result.v: required");
    check_edit("status", "v", NULL, EC_ERR_PROTO, "status.v: required");
    check_edit("status", "v", put_int2, EC_ERR_PROTO, "status.v: unsupported version 2");
}

/* Field type classes and the wrong values each must refuse. */
typedef struct badset {
    char cls;
    put_fn puts[10];
} badset;

static const badset badsets[] = {
    {'V', {put_int2, put_str_1, put_float1, put_true, put_neg1, put_array0}},
    {'S', {put_true, put_int7, put_neg1, put_float15, put_array0, put_map0, put_bin, put_ext}},
    {'U',
     {put_true, put_neg1, put_float15, put_float1, put_str_x, put_array0, put_map0, put_big,
      put_bin}},
    {'W', {put_true, put_neg1, put_float15, put_str_x, put_array0, put_map0}},
    {'M', {put_true, put_neg1, put_float15, put_float1, put_str_x, put_big, put_maxtok_over}},
    {'D', {put_true, put_str_x, put_array0, put_map0, put_bin, put_nan, put_inf}},
    {'T', {put_true, put_str_x, put_neg1, put_temp_over, put_nan, put_map0}},
    {'B', {put_int7, put_str_x, put_float15, put_array0}},
    {'P', {put_int7, put_true, put_str_x, put_array0}},
    {'A', {put_int7, put_str_x, put_map0, put_array_int, put_true}},
    {'E', {put_int7, put_str_x, put_array0, put_map0}},
    {'L', {put_int7, put_str_x, put_array0, put_map_badmean}},
};

/* "path:class" for every field of every message, nested ones included. */
static const struct {
    const char *vec;
    const char *fields;
} schema[] = {
    {"query_full", "v:V id:S prompt:S messages:A max_tokens:M temperature:T policy:P source:S "
                   "messages.0.role:S messages.2.content:S"},
    {"infer_request", "v:V id:S tier_index:U tier:S messages:A max_tokens:M temperature:T "
                      "logprobs:B timeout_ms:U messages.1.role:S messages.1.content:S"},
    {"infer_reply_ok", "v:V id:S tier_index:U tier:S model:S answer:S finish_reason:S lp:L "
                       "tokens_in:U tokens_out:U cost_usd:D latency_ms:D error:E lp.n_tokens:U "
                       "lp.mean:D lp.min:D lp.geo_prob:D lp.first_prob:D"},
    {"infer_reply_error", "error.code:S error.message:S"},
    {"result_escalated",
     "v:V id:S answer:S tier:S tier_index:U tier_name:S model:S confidence:D threshold:D "
     "escalated:B reason:S cost_usd:D latency_ms:D router_ms:D attempts:A tokens_in:U "
     "tokens_out:U source:S error:E attempts.1.tier_index:U attempts.1.tier:S attempts.1.model:S "
     "attempts.1.confidence:D attempts.1.threshold:D attempts.1.accepted:B attempts.1.reason:S "
     "attempts.1.latency_ms:D attempts.1.cost_usd:D attempts.1.tokens_in:U "
     "attempts.1.tokens_out:U attempts.1.error:E"},
    {"result_error", "error.code:S error.message:S"},
    {"status", "v:V service:S state:S version:S instance:S pid:U ts_ms:W config_ts_ms:W "
               "config_error:S models:A models.0.tier:S models.0.model:S models.0.state:S"},
};

static void test_wrong_types(void **state)
{
    (void)state;
    int checked = 0;
    for (size_t s = 0; s < sizeof(schema) / sizeof(schema[0]); s++) {
        const vector *v = find_vector(schema[s].vec);
        char *list = strdup(schema[s].fields), *save = NULL;
        for (char *tok = strtok_r(list, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
            char *colon = strrchr(tok, ':');
            char cls = colon[1];
            *colon = '\0';
            char want[128];
            wire_path(kind_name[v->kind], tok, want, sizeof(want));
            const badset *bs = NULL;
            for (size_t i = 0; i < sizeof(badsets) / sizeof(badsets[0]); i++)
                if (badsets[i].cls == cls)
                    bs = &badsets[i];
            assert_non_null(bs);
            for (int i = 0; i < 10 && bs->puts[i]; i++, checked++)
                check_edit(schema[s].vec, tok, bs->puts[i], EC_ERR_PROTO, want);
        }
        free(list);
    }
    assert_true(checked > 400);
}

/* Fields that may be nil or absent decode to their zero value. */
static void test_optional_fields(void **state)
{
    (void)state;
    static const char *const opt[] = {"id",          "messages", "max_tokens",
                                      "temperature", "policy",   "source"};
    for (size_t i = 0; i < 6; i++) {
        check_edit("query_full", opt[i], NULL, EC_OK, NULL);
        check_edit("query_full", opt[i], put_nil, EC_OK, NULL);
    }
    check_edit("infer_reply_ok", "lp", put_nil, EC_OK, NULL);
    check_edit("result_escalated", "attempts", put_nil, EC_OK, NULL);
    check_edit("result_escalated", "attempts", put_array0, EC_OK, NULL);
    check_edit("result_escalated", "attempts.1.error", put_nil, EC_OK, NULL);
    check_edit("result_local", "answer", NULL, EC_OK, NULL);
    check_edit("status", "pid", NULL, EC_OK, NULL);

    /* lp given as a map means present, even when every stat is left out. */
    const vector *v = find_vector("infer_reply_error");
    ec_buf b;
    msgpack_sbuffer sb;
    anymsg m;
    encode_vector(v, &b);
    edit(&b, "lp", put_map0, &sb);
    expect_ok(K_IREP, sb.data, sb.size, &m);
    assert_true(m.rp.lp.present);
    assert_int_equal(m.rp.lp.n_tokens, 0);
    clear_any(K_IREP, &m);
    msgpack_sbuffer_destroy(&sb);
    ec_buf_free(&b);
}

static void test_required_fields(void **state)
{
    (void)state;
    check_edit("infer_request", "id", NULL, EC_ERR_PROTO, "infer_request.id: required");
    check_edit("infer_request", "id", put_nil, EC_ERR_PROTO, "infer_request.id: required");
    check_edit("infer_request", "tier", NULL, EC_ERR_PROTO, "infer_request.tier: required");
    check_edit("infer_request", "messages", NULL, EC_ERR_PROTO, "infer_request.messages: required");
    check_edit("infer_request", "messages", put_array0, EC_ERR_PROTO,
               "infer_request.messages: must not be empty");
    check_edit("infer_reply_ok", "id", NULL, EC_ERR_PROTO, "infer_reply.id: required");
    check_edit("infer_reply_ok", "answer", NULL, EC_ERR_PROTO,
               "infer_reply: needs an answer or an error");
    check_edit("infer_reply_error", "error", put_nil, EC_ERR_PROTO,
               "infer_reply: needs an answer or an error");
    check_edit("infer_reply_error", "error.code", NULL, EC_ERR_PROTO,
               "infer_reply.error.code: required");
    check_edit("result_local", "id", NULL, EC_ERR_PROTO, "result.id: required");
    check_edit("status", "service", NULL, EC_ERR_PROTO, "status.service: required");
    check_edit("query_full", "messages.1.role", NULL, EC_ERR_PROTO,
               "query.messages[1].role: required");
    check_edit("query_full", "messages.1.content", NULL, EC_ERR_PROTO,
               "query.messages[1].content: required");
    check_edit("query_full", "messages.1", put_int7, EC_ERR_PROTO,
               "query.messages[1]: must be a map");

    /* A Query needs a non-empty prompt or at least one message. */
    check_edit("query_minimal", "prompt", NULL, EC_ERR_PROTO,
               "query: needs a non-empty prompt or at least one message");
    g_len = 0;
    check_edit("query_minimal", "prompt", put_str_len, EC_ERR_PROTO,
               "query: needs a non-empty prompt or at least one message");
    check_edit("query_full", "prompt", put_str_len, EC_OK, NULL);  /* messages are enough */
    check_edit("query_full", "messages", put_array0, EC_OK, NULL); /* so is the prompt */

    /* Empty ids cannot name a topic. */
    check_edit("result_local", "id", put_str_len, EC_ERR_PROTO, "result.id: must not be empty");
    check_edit("query_full", "id", put_str_len, EC_ERR_PROTO, "query.id: must not be empty");
}

/* ---------------------------------------------------------------- random input */

static uint64_t rng_state = 0x5eed5eed12345678ull;
static uint64_t rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Whatever comes in: no crash, no leak, only the documented codes, a cleared
 * struct on failure, and anything accepted re-encodes to something the
 * decoder accepts again with the same fields. */
static void fuzz_one(int kind, const unsigned char *data, size_t len)
{
    anymsg m;
    ec_error e = {0};
    ec_err rc = dec_any(kind, data, len, &m, &e);
    if (rc != EC_OK) {
        assert_true(rc == EC_ERR_PROTO || rc == EC_ERR_TOOBIG);
        assert_true(e.msg[0] != '\0');
        assert_true(is_zero(&m, kind_size(kind)));
        return;
    }
    ec_buf b;
    ec_buf_init(&b, 0);
    rc = enc_any(kind, &m, &b, &e);
    if (rc)
        fail_msg("%s: decoded but cannot re-encode: %s", kind_name[kind], e.msg);
    anymsg m2;
    expect_ok(kind, b.data, b.len, &m2);
    assert_true(eq_any(kind, &m, &m2));
    clear_any(kind, &m);
    clear_any(kind, &m2);
    ec_buf_free(&b);
}

static void test_random_bytes(void **state)
{
    (void)state;
    unsigned char buf[96];
    for (int iter = 0; iter < 20000; iter++) {
        size_t len = rng() % sizeof(buf);
        for (size_t i = 0; i < len; i++)
            buf[i] = (unsigned char)rng();
        if (len && iter % 2)
            buf[0] = (unsigned char)(0x80 | (rng() % 16)); /* a fixmap, to get further in */
        fuzz_one((int)(rng() % K__COUNT), buf, len);
    }
}

static void test_mutated_vectors(void **state)
{
    (void)state;
    ec_buf vec[N_VECTORS];
    for (int i = 0; i < N_VECTORS; i++)
        read_vector(vectors[i].name, &vec[i]);
    int accepted = 0;
    for (int iter = 0; iter < 30000; iter++) {
        int v = (int)(rng() % N_VECTORS);
        unsigned char *buf = malloc(vec[v].len);
        memcpy(buf, vec[v].data, vec[v].len);
        int flips = 1 + (int)(rng() % 4);
        for (int f = 0; f < flips; f++) {
            size_t at = rng() % vec[v].len;
            if (rng() % 2)
                buf[at] ^= (unsigned char)(1u << (rng() % 8));
            else
                buf[at] = (unsigned char)rng();
        }
        size_t len = vec[v].len;
        if (rng() % 8 == 0)
            len = rng() % (len + 1);
        anymsg m;
        ec_error e = {0};
        if (dec_any(vectors[v].kind, buf, len, &m, &e) == EC_OK) {
            accepted++;
            clear_any(vectors[v].kind, &m);
        }
        fuzz_one(vectors[v].kind, buf, len);
        free(buf);
    }
    /* Most single-byte changes inside strings still decode: the walk went deep. */
    assert_true(accepted > 1000);
    for (int i = 0; i < N_VECTORS; i++)
        ec_buf_free(&vec[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_empty_and_not_a_map),
        cmocka_unit_test(test_payload_limit),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_key_order_and_lookalikes),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_optional_fields),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutated_vectors),
    };
    return cmocka_run_group_tests(tests, proto_setup, NULL);
}
