/* What the msgpack tests of the wire format share (test_proto.c,
 * test_proto_malformed.c, test_proto_limits.c): any message kind behind one
 * union, the golden vectors (proto/vectors/<name>.hex) as structs and as
 * files, decoding with an expected outcome, and editing an encoded map at a
 * path (replace, add or drop a value) to build malformed inputs from valid
 * ones. Header-only, since each test file is its own executable. */
#ifndef TEST_PROTO_WIRE_H
#define TEST_PROTO_WIRE_H

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

static inline ec_err enc_any(int k, const anymsg *m, ec_buf *b, ec_error *e)
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

static inline ec_err dec_any(int k, const void *d, size_t n, anymsg *m, ec_error *e)
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

static inline void clear_any(int k, anymsg *m)
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

static inline bool eq_any(int k, const anymsg *a, const anymsg *b)
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

static inline size_t kind_size(int k)
{
    static const size_t sz[K__COUNT] = {sizeof(ec_query), sizeof(ec_infer_request),
                                        sizeof(ec_infer_reply), sizeof(ec_result),
                                        sizeof(ec_status)};
    return sz[k];
}

static inline bool is_zero(const void *p, size_t n)
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

static inline void init_vectors(void)
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

static inline const vector *find_vector(const char *name)
{
    for (int i = 0; i < N_VECTORS; i++)
        if (strcmp(vectors[i].name, name) == 0)
            return &vectors[i];
    fail_msg("no vector %s", name);
    return NULL;
}

/* ---------------------------------------------------------------- vector files */

static inline int hexval(int c)
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
static inline void read_vector(const char *name, ec_buf *out)
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

static inline void write_vector(const char *name, const ec_buf *b)
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
static inline void expect_fail(int kind, const void *data, size_t len, ec_err code,
                               const char *want)
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

static inline void expect_ok(int kind, const void *data, size_t len, anymsg *m)
{
    ec_error e = {0};
    ec_err rc = dec_any(kind, data, len, m, &e);
    if (rc != EC_OK)
        fail_msg("%s: unexpected error %d \"%s\"", kind_name[kind], rc, e.msg);
}

/* ---- editing encoded maps: replace / add / drop the value at a path ---- */

typedef void (*put_fn)(msgpack_packer *pk);

static inline void edit_obj(msgpack_packer *pk, const msgpack_object *o, const char *path,
                            put_fn put)
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
static inline void edit(const ec_buf *src, const char *path, put_fn put, msgpack_sbuffer *sb)
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

static inline void encode_vector(const vector *v, ec_buf *b)
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

static inline void put_nil(msgpack_packer *pk)
{
    msgpack_pack_nil(pk);
}
static inline void put_true(msgpack_packer *pk)
{
    msgpack_pack_true(pk);
}
static inline void put_int7(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 7);
}
static inline void put_neg1(msgpack_packer *pk)
{
    msgpack_pack_int(pk, -1);
}
static inline void put_float15(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.5);
}
static inline void put_float1(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 1.0);
}
static inline void put_big(msgpack_packer *pk)
{
    msgpack_pack_uint64(pk, 4294967296ull);
}
static inline void put_nan(msgpack_packer *pk)
{
    msgpack_pack_double(pk, NAN);
}
static inline void put_inf(msgpack_packer *pk)
{
    msgpack_pack_double(pk, INFINITY);
}
static inline void put_str_x(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "x", 1);
}
static inline void put_str_1(msgpack_packer *pk)
{
    msgpack_pack_str_with_body(pk, "1", 1);
}
static inline void put_array0(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 0);
}
static inline void put_array_int(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 1);
    msgpack_pack_int(pk, 1);
}
static inline void put_map0(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 0);
}
static inline void put_map_badmean(msgpack_packer *pk)
{
    msgpack_pack_map(pk, 1);
    msgpack_pack_str_with_body(pk, "mean", 4);
    msgpack_pack_str_with_body(pk, "x", 1);
}
static inline void put_bin(msgpack_packer *pk)
{
    msgpack_pack_bin_with_body(pk, "ab", 2);
}
static inline void put_ext(msgpack_packer *pk)
{
    msgpack_pack_ext_with_body(pk, "ab", 2, 5);
}
static inline void put_int2(msgpack_packer *pk)
{
    msgpack_pack_int(pk, 2);
}
static inline void put_maxtok_over(msgpack_packer *pk)
{
    msgpack_pack_int(pk, EC_MAX_TOKENS_LIMIT + 1);
}
static inline void put_temp_over(msgpack_packer *pk)
{
    msgpack_pack_double(pk, 2.5);
}
static inline void put_str_len(msgpack_packer *pk) /* g_len bytes of 'a' */
{
    char *s = malloc(g_len + 1);
    memset(s, 'a', g_len);
    msgpack_pack_str_with_body(pk, s, g_len);
    free(s);
}
static inline void put_str_g(msgpack_packer *pk) /* g_str, g_len bytes (may hold NUL) */
{
    msgpack_pack_str_with_body(pk, g_str, g_len);
}
static inline void put_dbl_g(msgpack_packer *pk)
{
    msgpack_pack_double(pk, g_dbl);
}
static inline void put_float32_g(msgpack_packer *pk)
{
    msgpack_pack_float(pk, (float)g_dbl);
}
static inline void put_int_g(msgpack_packer *pk)
{
    msgpack_pack_int64(pk, g_int);
}
static inline void put_garbage(msgpack_packer *pk) /* what a future version might add */
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
static inline void check_edit(const char *vec, const char *path, put_fn put, ec_err code,
                              const char *want)
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

/* "attempts.1.reason" is reported as "result.attempts[1].reason". */
static inline void wire_path(const char *kind, const char *path, char *out, size_t cap)
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

/* The group setup of every msgpack test file: the vectors as structs. */
static inline int proto_setup(void **state)
{
    (void)state;
    init_vectors();
    return 0;
}

#endif
