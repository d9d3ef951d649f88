/* Wire format v1, msgpack side: golden vectors, round trips, and a large set
 * of malformed inputs (truncation at every byte, wrong type for every field,
 * oversized strings, hostile headers, random bytes with a fixed seed).
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

#include "test_proto_fixtures.h"

#define VEC_DIR EC_SOURCE_DIR "/proto/vectors/"

enum { K_QUERY, K_IREQ, K_IREP, K_RESULT, K_STATUS, K__COUNT };
static const char *const kind_name[K__COUNT] = {"query", "infer_request", "infer_reply", "result",
                                                "status"};

typedef union anymsg {
    ec_query q;
    ec_infer_request rq;
    ec_infer_reply rp;
    ec_result r;
    ec_status s;
} anymsg;

static ec_err enc_any(int k, const anymsg *m, ec_buf *b, ec_error *e)
{
    switch (k) {
    case K_QUERY:
        return ec_query_encode(&m->q, b, e);
    case K_IREQ:
        return ec_infer_request_encode(&m->rq, b, e);
    case K_IREP:
        return ec_infer_reply_encode(&m->rp, b, e);
    case K_RESULT:
        return ec_result_encode(&m->r, b, e);
    default:
        return ec_status_encode(&m->s, b, e);
    }
}

static ec_err dec_any(int k, const void *d, size_t n, anymsg *m, ec_error *e)
{
    switch (k) {
    case K_QUERY:
        return ec_query_decode(d, n, &m->q, e);
    case K_IREQ:
        return ec_infer_request_decode(d, n, &m->rq, e);
    case K_IREP:
        return ec_infer_reply_decode(d, n, &m->rp, e);
    case K_RESULT:
        return ec_result_decode(d, n, &m->r, e);
    default:
        return ec_status_decode(d, n, &m->s, e);
    }
}

static void clear_any(int k, anymsg *m)
{
    switch (k) {
    case K_QUERY:
        ec_query_clear(&m->q);
        break;
    case K_IREQ:
        ec_infer_request_clear(&m->rq);
        break;
    case K_IREP:
        ec_infer_reply_clear(&m->rp);
        break;
    case K_RESULT:
        ec_result_clear(&m->r);
        break;
    default:
        ec_status_clear(&m->s);
        break;
    }
}

static bool eq_any(int k, const anymsg *a, const anymsg *b)
{
    switch (k) {
    case K_QUERY:
        return fx_query_eq(&a->q, &b->q, 0);
    case K_IREQ:
        return fx_infer_request_eq(&a->rq, &b->rq);
    case K_IREP:
        return fx_infer_reply_eq(&a->rp, &b->rp);
    case K_RESULT:
        return fx_result_eq(&a->r, &b->r, 0);
    default:
        return fx_status_eq(&a->s, &b->s);
    }
}

static size_t kind_size(int k)
{
    static const size_t sz[K__COUNT] = {sizeof(ec_query), sizeof(ec_infer_request),
                                        sizeof(ec_infer_reply), sizeof(ec_result),
                                        sizeof(ec_status)};
    return sz[k];
}

static bool is_zero(const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return false;
    return true;
}

typedef struct vector {
    const char *name;
    int kind;
    anymsg msg;
} vector;

#define N_VECTORS 9
static vector vectors[N_VECTORS];

static void init_vectors(void)
{
    int i = 0;
    vectors[i++] = (vector){"query_minimal", K_QUERY, {.q = fx_query_minimal()}};
    vectors[i++] = (vector){"query_full", K_QUERY, {.q = fx_query_full()}};
    vectors[i++] = (vector){"infer_request", K_IREQ, {.rq = fx_infer_request()}};
    vectors[i++] = (vector){"infer_reply_ok", K_IREP, {.rp = fx_infer_reply_ok()}};
    vectors[i++] = (vector){"infer_reply_error", K_IREP, {.rp = fx_infer_reply_error()}};
    vectors[i++] = (vector){"result_local", K_RESULT, {.r = fx_result_local()}};
    vectors[i++] = (vector){"result_escalated", K_RESULT, {.r = fx_result_escalated()}};
    vectors[i++] = (vector){"result_error", K_RESULT, {.r = fx_result_error()}};
    vectors[i++] = (vector){"status", K_STATUS, {.s = fx_status()}};
}

static const vector *find_vector(const char *name)
{
    for (int i = 0; i < N_VECTORS; i++)
        if (strcmp(vectors[i].name, name) == 0)
            return &vectors[i];
    fail_msg("no vector %s", name);
    return NULL;
}

/* ---------------------------------------------------------------- vector files */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Hex digits, whitespace anywhere, '#' comments to the end of a line. */
static void read_vector(const char *name, ec_buf *out)
{
    char path[512];
    snprintf(path, sizeof(path), VEC_DIR "%s.hex", name);
    size_t len = 0;
    char *text = ec_read_file(path, 4u << 20, &len);
    if (!text)
        fail_msg("cannot read %s (regenerate with EC_WRITE_VECTORS=1)", path);
    ec_buf_init(out, 0);
    int hi = -1;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (c == '#') {
            while (i < len && text[i] != '\n')
                i++;
            continue;
        }
        if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
            continue;
        int v = hexval(c);
        if (v < 0)
            fail_msg("%s: bad character '%c'", path, c);
        if (hi < 0) {
            hi = v;
        } else {
            unsigned char byte = (unsigned char)(hi << 4 | v);
            assert_int_equal(ec_buf_append(out, &byte, 1), EC_OK);
            hi = -1;
        }
    }
    assert_int_equal(hi, -1);
    free(text);
}

static void write_vector(const char *name, const ec_buf *b)
{
    char path[512];
    snprintf(path, sizeof(path), VEC_DIR "%s.hex", name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "# %s: edgecascade wire format v1, msgpack, %zu bytes.\n", name, b->len);
    fprintf(
        f, "# Generated by EC_WRITE_VECTORS=1 test_proto from tests/unit/test_proto_fixtures.h.\n");
    for (size_t i = 0; i < b->len; i++)
        fprintf(f, "%02x%s", (unsigned char)b->data[i],
                (i % 32 == 31 || i + 1 == b->len) ? "\n" : "");
    assert_int_equal(fclose(f), 0);
}

/* ---------------------------------------------------------------- helpers */

/* Decodes data as kind and asserts the code, that the message contains want
 * (when given) and that the output struct was left zeroed. */
static void expect_fail(int kind, const void *data, size_t len, ec_err code, const char *want)
{
    anymsg m;
    memset(&m, 0x5a, sizeof(m)); /* garbage in: decoders must not trust it */
    ec_error e = {0};
    ec_err rc = dec_any(kind, data, len, &m, &e);
    if (rc != code || (want && !strstr(e.msg, want)))
        fail_msg("%s: got %d \"%s\", want %d containing \"%s\"", kind_name[kind], rc, e.msg, code,
                 want ? want : "");
    assert_true(is_zero(&m, kind_size(kind)));
}

static void expect_ok(int kind, const void *data, size_t len, anymsg *m)
{
    ec_error e = {0};
    ec_err rc = dec_any(kind, data, len, m, &e);
    if (rc != EC_OK)
        fail_msg("%s: unexpected error %d \"%s\"", kind_name[kind], rc, e.msg);
}

/* ---- editing encoded maps: replace / add / drop the value at a path ---- */

typedef void (*put_fn)(msgpack_packer *pk);

static void edit_obj(msgpack_packer *pk, const msgpack_object *o, const char *path, put_fn put)
{
    const char *dot = strchr(path, '.');
    size_t seg = dot ? (size_t)(dot - path) : strlen(path);
    const char *rest = dot ? dot + 1 : NULL;

    if (o->type == MSGPACK_OBJECT_ARRAY) {
        uint32_t idx = (uint32_t)atoi(path);
        msgpack_pack_array(pk, o->via.array.size);
        for (uint32_t i = 0; i < o->via.array.size; i++) {
            if (i != idx)
                msgpack_pack_object(pk, o->via.array.ptr[i]);
            else if (rest)
                edit_obj(pk, &o->via.array.ptr[i], rest, put);
            else
                put(pk);
        }
        return;
    }
    assert_int_equal(o->type, MSGPACK_OBJECT_MAP);
    long found = -1;
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object *k = &o->via.map.ptr[i].key;
        if (k->type == MSGPACK_OBJECT_STR && k->via.str.size == seg &&
            memcmp(k->via.str.ptr, path, seg) == 0)
            found = i;
    }
    uint32_t n = o->via.map.size;
    if (found < 0) {
        assert_null(rest);
        if (put)
            n++;
    } else if (!rest && !put) {
        n--;
    }
    msgpack_pack_map(pk, n);
    for (uint32_t i = 0; i < o->via.map.size; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if ((long)i != found) {
            msgpack_pack_object(pk, kv->key);
            msgpack_pack_object(pk, kv->val);
        } else if (rest) {
            msgpack_pack_object(pk, kv->key);
            edit_obj(pk, &kv->val, rest, put);
        } else if (put) {
            msgpack_pack_object(pk, kv->key);
            put(pk);
        }
    }
    if (found < 0 && put) {
        msgpack_pack_str(pk, seg);
        msgpack_pack_str_body(pk, path, seg);
        put(pk);
    }
}

/* Rewrites the msgpack in src with the value at path replaced by put() (or
 * the key dropped when put is NULL) into sb. */
static void edit(const ec_buf *src, const char *path, put_fn put, msgpack_sbuffer *sb)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, src->data, src->len, &off), MSGPACK_UNPACK_SUCCESS);
    msgpack_sbuffer_init(sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    edit_obj(&pk, &u.data, path, put);
    msgpack_unpacked_destroy(&u);
}

static void encode_vector(const vector *v, ec_buf *b)
{
    ec_error e = {0};
    ec_buf_init(b, 0);
    ec_err rc = enc_any(v->kind, &v->msg, b, &e);
    if (rc)
        fail_msg("%s: encode failed: %s", v->name, e.msg);
}

/* Values put() writes; parameters through statics keep put_fn simple. */
static size_t g_len;
static const char *g_str;
static double g_dbl;
static int64_t g_int;

static void put_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static void put_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}
static void put_int7(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 7);
}
static void put_neg1(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}
static void put_float15(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.5);
}
static void put_float1(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.0);
}
static void put_big(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 4294967296ull);
}
static void put_nan(msgpack_packer *pk)
{
    msgpack_pack_double(pk, NAN);
}
static void put_inf(msgpack_packer *pk)
{
    msgpack_pack_double(pk, INFINITY);
}
static void put_str_x(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "x", 1);
}
static void put_str_1(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "1", 1);
}
static void put_array0(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static void put_array_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}
static void put_map0(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static void put_map_badmean(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "mean", 4);
    msgpack_pack_str_with_body(pk, "x", 1);
}
static void put_bin(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, "ab", 2);
}
static void put_ext(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, "ab", 2, 5);
}
static void put_int2(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 2);
}
static void put_maxtok_over(msgpack_packer *pk)
{
    msgpack_pack_int(pk, EC_MAX_TOKENS_LIMIT + 1);
}
static void put_temp_over(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 2.5);
}
static void put_str_len(msgpack_packer *pk) /* g_len bytes of 'a' */
{
    char *s = malloc(g_len + 1);
    memset(s, 'a', g_len);
    msgpack_pack_str_with_body(pk, s, g_len);
    free(s);
}
static void put_str_g(msgpack_packer *pk) /* g_str, g_len bytes (may hold NUL) */
{
    msgpack_pack_str_with_body(pk, g_str, g_len);
}
static void put_dbl_g(msgpack_packer *pk)
{
    msgpack_pack_double(pk, g_dbl);
}
static void put_float32_g(msgpack_packer *pk)
{
    msgpack_pack_float(pk, (float)g_dbl);
}
static void put_int_g(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, g_int);
}
static void put_garbage(msgpack_packer *pk) /* what a future version might add */
{
    msgpack_pack_map(pk, 3);
    msgpack_pack_str_with_body(pk, "a", 1);
    msgpack_pack_array(pk, 3);
    msgpack_pack_int(pk, 1);
    msgpack_pack_bin_with_body(pk, "\0\1", 2);
    msgpack_pack_ext_with_body(pk, "x", 1, 1);
    msgpack_pack_int(pk, 5); /* non-string key inside an unknown value is fine */
    msgpack_pack_double(pk, 1.5);
    msgpack_pack_str_with_body(pk, "c", 1);
    msgpack_pack_nil(pk);
}

/* Applies an edit to a named vector and expects the given outcome. */
static void check_edit(const char *vec, const char *path, put_fn put, ec_err code, const char *want)
{
    const vector *v = find_vector(vec);
    ec_buf b;
    encode_vector(v, &b);
    msgpack_sbuffer sb;
    edit(&b, path, put, &sb);
    if (code == EC_OK) {
        anymsg m;
        expect_ok(v->kind, sb.data, sb.size, &m);
        clear_any(v->kind, &m);
    } else {
        expect_fail(v->kind, sb.data, sb.size, code, want);
    }
    msgpack_sbuffer_destroy(&sb);
    ec_buf_free(&b);
}

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

/* "attempts.1.reason" is reported as "result.attempts[1].reason". */
static void wire_path(const char *kind, const char *path, char *out, size_t cap)
{
    size_t o = (size_t)snprintf(out, cap, "%s", kind);
    for (const char *p = path; *p && o + 8 < cap;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (*p >= '0' && *p <= '9')
            o += (size_t)snprintf(out + o, cap - o, "[%.*s]", (int)n, p);
        else
            o += (size_t)snprintf(out + o, cap - o, ".%.*s", (int)n, p);
        p += n + (dot ? 1 : 0);
    }
}

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

static int setup(void **state)
{
    (void)state;
    init_vectors();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vectors_encode),
        cmocka_unit_test(test_vectors_decode),
        cmocka_unit_test(test_vectors_spot_check),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_truncated_every_byte),
        cmocka_unit_test(test_trailing_bytes),
        cmocka_unit_test(test_empty_and_not_a_map),
        cmocka_unit_test(test_payload_limit),
        cmocka_unit_test(test_hostile_headers),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_unknown_keys_ignored),
        cmocka_unit_test(test_duplicate_key),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_optional_fields),
        cmocka_unit_test(test_required_fields),
        cmocka_unit_test(test_string_content),
        cmocka_unit_test(test_string_limits),
        cmocka_unit_test(test_message_limits),
        cmocka_unit_test(test_number_forms),
        cmocka_unit_test(test_attempts_limit),
        cmocka_unit_test(test_encode_validates),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutated_vectors),
        cmocka_unit_test(test_policy),
        cmocka_unit_test(test_payload_encoding),
        cmocka_unit_test(test_wire_error),
        cmocka_unit_test(test_lp_stats),
        cmocka_unit_test(test_clear_zeroed),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
