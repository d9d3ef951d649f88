/* The generic msgpack codec: walks an ec_msgdef table to encode a C struct or
 * to validate a parsed msgpack_object tree and fill the struct from it.
 *
 * Both directions apply the same checks (types, limits, required fields,
 * cross-field rules), so an encoder never emits bytes a decoder would refuse.
 * Encoders write every key of the table in table order, unset optional values
 * as nil: the bytes depend only on the struct, which keeps golden vectors
 * stable. Decoders accept a missing key wherever they accept nil, ignore keys
 * they do not know and refuse a known key given twice. */
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"
#include "edgecascade/proto.h"
#include "proto_scan.h"

#define MAX_FIELDS 32
#define PATH_LEN   96

static ec_err fail(const ec_ctx *cx, ec_err code, const char *path, const char *key,
                   const char *fmt, ...) __attribute__((format(printf, 5, 6)));

static ec_err fail(const ec_ctx *cx, ec_err code, const char *path, const char *key,
                   const char *fmt, ...)
{
    char what[EC_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return ec_error_set(cx->err, code, "%s%s%s: %s", path, key ? "." : "", key ? key : "", what);
}

/* Checks one string value against its field, for both directions. */
static ec_err check_str(const ec_field *f, const char *s, size_t n, const char *path,
                        const ec_ctx *cx)
{
    if (n > f->limit)
        return fail(cx, EC_ERR_TOOBIG, path, f->name, "%zu bytes exceeds limit %zu", n, f->limit);
    if (n && memchr(s, '\0', n))
        return fail(cx, cx->bad, path, f->name, "contains a NUL byte");
    if (!ec_utf8_valid(s, n))
        return fail(cx, cx->bad, path, f->name, "is not valid UTF-8");
    if (n == 0 && (f->flags & EC_FF_NONEMPTY))
        return fail(cx, cx->bad, path, f->name, "must not be empty");
    for (size_t i = 0; (f->flags & EC_FF_TOPIC) && i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c <= ' ' || c == 0x7f || c == '/' || c == '+' || c == '#')
            return fail(cx, cx->bad, path, f->name,
                        "must not contain '/', '+', '#', spaces or control characters");
    }
    return EC_OK;
}

static ec_err range_fail(const ec_field *f, const char *path, const ec_ctx *cx)
{
    switch (f->kind) {
    case EC_FK_MAXTOK:
        return fail(cx, cx->bad, path, f->name, "must be an integer 0..%d", EC_MAX_TOKENS_LIMIT);
    case EC_FK_U32:
        return fail(cx, cx->bad, path, f->name, "must be an integer 0..%u", UINT32_MAX);
    case EC_FK_U64:
        return fail(cx, cx->bad, path, f->name, "must be an integer 0..%lld", (long long)INT64_MAX);
    case EC_FK_OPTDBL:
        if (f->lo < f->hi)
            return fail(cx, cx->bad, path, f->name, "must be a number %g..%g", f->lo, f->hi);
        /* fall through */
    default:
        return fail(cx, cx->bad, path, f->name, "must be a finite number");
    }
}

static bool dbl_ok(const ec_field *f, double v)
{
    if (!isfinite(v))
        return false;
    return !(f->lo < f->hi) || (v >= f->lo && v <= f->hi);
}

/* Appends s to buf (size PATH_LEN) at *at, cutting where snprintf would. */
static void path_put(char *buf, size_t *at, const char *s, size_t n)
{
    size_t room = PATH_LEN - 1 - *at;
    if (n > room)
        n = room;
    memcpy(buf + *at, s, n);
    *at += n;
}

/* "path.key" or "path.key[idx]", cut to PATH_LEN - 1 bytes: the same string
 * snprintf made. Built on every array element and embedded map, error or
 * not, so it is done by hand: snprintf cost more than the element's codec. */
static void sub_path(char *buf, const char *path, const char *key, long idx)
{
    size_t at = 0;
    path_put(buf, &at, path, strlen(path));
    path_put(buf, &at, ".", 1);
    path_put(buf, &at, key, strlen(key));
    if (idx >= 0) {
        char num[24];
        size_t k = sizeof(num);
        unsigned long v = (unsigned long)idx;
        num[--k] = ']';
        do
            num[--k] = (char)('0' + v % 10);
        while ((v /= 10) != 0);
        num[--k] = '[';
        path_put(buf, &at, num + k, sizeof(num) - k);
    }
    buf[at] = '\0';
}

/* ------------------------------------------------------------------ encode */

typedef struct ec_writer {
    ec_buf *out;
    ec_err rc;
} ec_writer;

/* msgpack-c calls this once per header and once per body, a few hundred
 * times per message: appending in place when the bytes fit is what
 * ec_buf_append does after its checks, without the two calls. */
static int writer_cb(void *data, const char *p, size_t n)
{
    ec_writer *w = data;
    ec_buf *b = w->out;
    if (w->rc)
        return -1;
    size_t max = b->max ? b->max : EC_BUF_DEFAULT_MAX;
    if (n < b->cap - b->len && b->len + n <= max) {
        memcpy(b->data + b->len, p, n);
        b->len += n;
        b->data[b->len] = '\0';
        return 0;
    }
    w->rc = ec_buf_append(b, p, n);
    return w->rc ? -1 : 0;
}

static void pack_cstr(msgpack_packer *pk, const char *s, size_t n)
{
    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}

/* A key: the same bytes as pack_cstr (a key is shorter than 32 bytes, so a
 * fixstr: one header byte 0xa0 | length), in one write instead of two. */
static void pack_key(msgpack_packer *pk, const char *name)
{
    size_t n = strlen(name);
    char k[1 + 32];
    if (n >= 32) {
        pack_cstr(pk, name, n);
        return;
    }
    k[0] = (char)(0xa0 | n);
    memcpy(k + 1, name, n + 1); /* the NUL too, though not written out */
    pk->callback(pk->data, k, n + 1);
}

static ec_err enc_map(msgpack_packer *pk, const ec_msgdef *def, const void *msg, const char *path,
                      const ec_ctx *cx);

static ec_err enc_field(msgpack_packer *pk, const ec_field *f, const void *msg, const char *path,
                        const ec_ctx *cx)
{
    const char *base = msg;
    const void *at = base + f->off;
    char sp[PATH_LEN];

    if ((f->flags & EC_FF_NIL_IF_NULL) && !*(void *const *)(base + f->aux)) {
        msgpack_pack_nil(pk);
        return EC_OK;
    }
    switch (f->kind) {
    case EC_FK_VERSION:
        msgpack_pack_int(pk, EC_PROTO_VERSION);
        return EC_OK;
    case EC_FK_STR: {
        const char *s = *(char *const *)at;
        if (!s) {
            if (f->flags & EC_FF_REQUIRED)
                return fail(cx, cx->bad, path, f->name, "required");
            msgpack_pack_nil(pk);
            return EC_OK;
        }
        size_t n = strlen(s);
        ec_err rc = check_str(f, s, n, path, cx);
        if (rc)
            return rc;
        pack_cstr(pk, s, n);
        return EC_OK;
    }
    case EC_FK_U32:
        msgpack_pack_uint32(pk, *(const uint32_t *)at);
        return EC_OK;
    case EC_FK_U64: {
        uint64_t v = *(const uint64_t *)at;
        if (v > (uint64_t)INT64_MAX)
            return range_fail(f, path, cx);
        msgpack_pack_uint64(pk, v);
        return EC_OK;
    }
    case EC_FK_MAXTOK: {
        int32_t v = *(const int32_t *)at;
        if (v < 0 || v > EC_MAX_TOKENS_LIMIT)
            return range_fail(f, path, cx);
        if (v == 0)
            msgpack_pack_nil(pk);
        else
            msgpack_pack_int32(pk, v);
        return EC_OK;
    }
    case EC_FK_DBL:
    case EC_FK_OPTDBL: {
        double v = *(const double *)at;
        if (f->kind == EC_FK_OPTDBL && !*(const bool *)(base + f->aux)) {
            msgpack_pack_nil(pk);
            return EC_OK;
        }
        if (!dbl_ok(f, v))
            return range_fail(f, path, cx);
        msgpack_pack_double(pk, v);
        return EC_OK;
    }
    case EC_FK_BOOL:
        if (*(const bool *)at)
            msgpack_pack_true(pk);
        else
            msgpack_pack_false(pk);
        return EC_OK;
    case EC_FK_POLICY: {
        ec_policy p = *(const ec_policy *)at;
        if (p != EC_POLICY_AUTO && p != EC_POLICY_LOCAL_ONLY && p != EC_POLICY_CONSENT)
            return fail(cx, cx->bad, path, f->name,
                        "must be \"auto\", \"local_only\" or \"consent\"");
        const char *s = ec_policy_name(p);
        pack_cstr(pk, s, strlen(s));
        return EC_OK;
    }
    case EC_FK_ARRAY: {
        const char *arr = *(const char *const *)at;
        size_t n = *(const size_t *)(base + f->aux);
        if (n == 0) {
            if (f->flags & EC_FF_REQUIRED)
                return fail(cx, cx->bad, path, f->name, "must not be empty");
            msgpack_pack_nil(pk);
            return EC_OK;
        }
        if (n > f->limit)
            return fail(cx, EC_ERR_TOOBIG, path, f->name, "%zu entries exceeds limit %zu", n,
                        f->limit);
        if (!arr)
            return fail(cx, cx->bad, path, f->name, "NULL with %zu entries", n);
        msgpack_pack_array(pk, n);
        for (size_t i = 0; i < n; i++) {
            sub_path(sp, path, f->name, (long)i);
            ec_err rc = enc_map(pk, f->sub, arr + i * f->sub->size, sp, cx);
            if (rc)
                return rc;
        }
        return EC_OK;
    }
    case EC_FK_ERROR:
        if (!((const ec_wire_error *)at)->code) {
            msgpack_pack_nil(pk);
            return EC_OK;
        }
        sub_path(sp, path, f->name, -1);
        return enc_map(pk, f->sub, at, sp, cx);
    case EC_FK_LP:
        if (!((const ec_lp_stats *)at)->present) {
            msgpack_pack_nil(pk);
            return EC_OK;
        }
        sub_path(sp, path, f->name, -1);
        return enc_map(pk, f->sub, at, sp, cx);
    }
    return fail(cx, EC_ERR_INVAL, path, f->name, "unknown field kind");
}

static ec_err enc_map(msgpack_packer *pk, const ec_msgdef *def, const void *msg, const char *path,
                      const ec_ctx *cx)
{
    msgpack_pack_map(pk, def->n_fields);
    for (size_t i = 0; i < def->n_fields; i++) {
        const ec_field *f = &def->fields[i];
        pack_key(pk, f->name);
        ec_err rc = enc_field(pk, f, msg, path, cx);
        if (rc)
            return rc;
    }
    return def->check ? def->check(msg, path, cx) : EC_OK;
}

ec_err ec_mp_encode(const ec_msgdef *def, const void *msg, ec_buf *out, ec_error *err)
{
    ec_ctx cx = {EC_ERR_INVAL, err};
    if (!msg || !out)
        return ec_error_set(err, EC_ERR_INVAL, "%s: NULL argument", def->name);
    size_t start = out->len;
    ec_writer w = {out, EC_OK};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &w, writer_cb);
    ec_err rc = enc_map(&pk, def, msg, def->name, &cx);
    if (!rc && w.rc)
        rc = ec_error_set(err, w.rc, "%s: %s", def->name,
                          w.rc == EC_ERR_NOMEM ? "out of memory" : "output buffer is full");
    if (!rc && out->len - start > EC_MAX_PAYLOAD)
        rc = ec_error_set(err, EC_ERR_TOOBIG, "%s: encoded %zu bytes exceeds payload limit %u",
                          def->name, out->len - start, EC_MAX_PAYLOAD);
    if (rc) {
        /* Leave out as it was: no half-written message. */
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

/* ------------------------------------------------------------------ decode */

/* Whether the n bytes at k (any bytes, NULs too) are exactly name. */
static bool key_is(const char *name, const char *k, size_t n)
{
    for (size_t j = 0; j < n; j++)
        if (name[j] == '\0' || name[j] != k[j])
            return false;
    return name[n] == '\0';
}

static bool is_absent(const msgpack_object *v)
{
    return !v || v->type == MSGPACK_OBJECT_NIL;
}

static bool as_double(const msgpack_object *v, double *out)
{
    switch (v->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)v->via.u64;
        return true;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)v->via.i64;
        return true;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = v->via.f64;
        return true;
    default:
        return false;
    }
}

static ec_err dec_map(const msgpack_object *o, const ec_msgdef *def, void *msg, const char *path,
                      const ec_ctx *cx);

static ec_err dec_field(const ec_field *f, const msgpack_object *v, const ec_msgdef *def, void *msg,
                        const char *path, const ec_ctx *cx)
{
    char *base = msg;
    void *at = base + f->off;
    char sp[PATH_LEN];

    if (is_absent(v)) {
        if (f->kind == EC_FK_VERSION && def->v_optional)
            return EC_OK;
        if ((f->flags & EC_FF_REQUIRED) || f->kind == EC_FK_VERSION)
            return fail(cx, cx->bad, path, f->name, "required");
        return EC_OK; /* the struct is zeroed: absent means 0 / NULL / false / auto */
    }

    switch (f->kind) {
    case EC_FK_VERSION:
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER && v->via.u64 == EC_PROTO_VERSION)
            return EC_OK;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            return fail(cx, cx->bad, path, f->name, "unsupported version %llu (expected %d)",
                        (unsigned long long)v->via.u64, EC_PROTO_VERSION);
        return fail(cx, cx->bad, path, f->name, "must be the integer %d", EC_PROTO_VERSION);
    case EC_FK_STR: {
        if (v->type != MSGPACK_OBJECT_STR)
            return fail(cx, cx->bad, path, f->name, "must be a string");
        size_t n = v->via.str.size;
        ec_err rc = check_str(f, v->via.str.ptr, n, path, cx);
        if (rc)
            return rc;
        char *s = malloc(n + 1);
        if (!s)
            return fail(cx, EC_ERR_NOMEM, path, f->name, "out of memory");
        if (n)
            memcpy(s, v->via.str.ptr, n);
        s[n] = '\0';
        *(char **)at = s;
        return EC_OK;
    }
    case EC_FK_U32:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > UINT32_MAX)
            return range_fail(f, path, cx);
        *(uint32_t *)at = (uint32_t)v->via.u64;
        return EC_OK;
    case EC_FK_U64:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > (uint64_t)INT64_MAX)
            return range_fail(f, path, cx);
        *(uint64_t *)at = v->via.u64;
        return EC_OK;
    case EC_FK_MAXTOK:
        if (v->type != MSGPACK_OBJECT_POSITIVE_INTEGER || v->via.u64 > EC_MAX_TOKENS_LIMIT)
            return range_fail(f, path, cx);
        *(int32_t *)at = (int32_t)v->via.u64;
        return EC_OK;
    case EC_FK_DBL:
    case EC_FK_OPTDBL: {
        double d;
        if (!as_double(v, &d) || !dbl_ok(f, d))
            return range_fail(f, path, cx);
        *(double *)at = d;
        if (f->kind == EC_FK_OPTDBL)
            *(bool *)(base + f->aux) = true;
        return EC_OK;
    }
    case EC_FK_BOOL:
        if (v->type != MSGPACK_OBJECT_BOOLEAN)
            return fail(cx, cx->bad, path, f->name, "must be true or false");
        *(bool *)at = v->via.boolean;
        return EC_OK;
    case EC_FK_POLICY: {
        ec_policy p;
        char name[16];
        if (v->type != MSGPACK_OBJECT_STR || v->via.str.size >= sizeof(name))
            return fail(cx, cx->bad, path, f->name,
                        "must be \"auto\", \"local_only\" or \"consent\"");
        memcpy(name, v->via.str.ptr, v->via.str.size);
        name[v->via.str.size] = '\0';
        if (strlen(name) != v->via.str.size || ec_policy_parse(name, &p) != 0)
            return fail(cx, cx->bad, path, f->name,
                        "must be \"auto\", \"local_only\" or \"consent\"");
        *(ec_policy *)at = p;
        return EC_OK;
    }
    case EC_FK_ARRAY: {
        if (v->type != MSGPACK_OBJECT_ARRAY)
            return fail(cx, cx->bad, path, f->name, "must be an array");
        size_t n = v->via.array.size;
        if (n > f->limit)
            return fail(cx, EC_ERR_TOOBIG, path, f->name, "%zu entries exceeds limit %zu", n,
                        f->limit);
        if (n == 0) {
            if (f->flags & EC_FF_REQUIRED)
                return fail(cx, cx->bad, path, f->name, "must not be empty");
            return EC_OK;
        }
        char *arr = calloc(n, f->sub->size);
        if (!arr)
            return fail(cx, EC_ERR_NOMEM, path, f->name, "out of memory");
        /* Owned by the struct from here on, so its clear() frees partial work. */
        *(char **)at = arr;
        *(size_t *)(base + f->aux) = n;
        for (size_t i = 0; i < n; i++) {
            sub_path(sp, path, f->name, (long)i);
            ec_err rc = dec_map(&v->via.array.ptr[i], f->sub, arr + i * f->sub->size, sp, cx);
            if (rc)
                return rc;
        }
        return EC_OK;
    }
    case EC_FK_ERROR:
    case EC_FK_LP: {
        sub_path(sp, path, f->name, -1);
        ec_err rc = dec_map(v, f->sub, at, sp, cx);
        if (!rc && f->kind == EC_FK_LP)
            ((ec_lp_stats *)at)->present = true;
        return rc;
    }
    }
    return fail(cx, EC_ERR_INVAL, path, f->name, "unknown field kind");
}

static ec_err dec_map(const msgpack_object *o, const ec_msgdef *def, void *msg, const char *path,
                      const ec_ctx *cx)
{
    const msgpack_object *vals[MAX_FIELDS] = {0};

    if (o->type != MSGPACK_OBJECT_MAP)
        return fail(cx, cx->bad, path, NULL, "must be a map");
    if (def->n_fields > MAX_FIELDS)
        return fail(cx, EC_ERR_INVAL, path, NULL, "schema has too many fields");
    /* Our encoders write the keys in table order, so the search for each
     * key starts after the field the previous one matched: one comparison
     * per key instead of half the table's. Any order still decodes. */
    size_t hint = 0;
    for (uint32_t k = 0; k < o->via.map.size; k++) {
        const msgpack_object *key = &o->via.map.ptr[k].key;
        if (key->type != MSGPACK_OBJECT_STR)
            return fail(cx, cx->bad, path, NULL, "map keys must be strings");
        for (size_t j = 0; j < def->n_fields; j++) {
            size_t i = hint + j < def->n_fields ? hint + j : hint + j - def->n_fields;
            const char *name = def->fields[i].name;
            if (!key_is(name, key->via.str.ptr, key->via.str.size))
                continue;
            if (vals[i])
                return fail(cx, cx->bad, path, name, "duplicate key");
            vals[i] = &o->via.map.ptr[k].val;
            hint = i + 1;
            break;
        }
        /* A key no field matched is from a newer peer: ignored on purpose. */
    }
    for (size_t i = 0; i < def->n_fields; i++) {
        ec_err rc = dec_field(&def->fields[i], vals[i], def, msg, path, cx);
        if (rc)
            return rc;
    }
    /* A number that does not apply reads as 0 whatever was sent, so that
     * decoding what we encode gives back what we decoded. */
    for (size_t i = 0; i < def->n_fields; i++) {
        const ec_field *f = &def->fields[i];
        if ((f->flags & EC_FF_NIL_IF_NULL) && !*(void **)((char *)msg + f->aux))
            memset((char *)msg + f->off, 0,
                   f->kind == EC_FK_U32 ? sizeof(uint32_t) : sizeof(double));
    }
    return def->check ? def->check(msg, path, cx) : EC_OK;
}

ec_err ec_obj_decode(const ec_msgdef *def, const msgpack_object *root, void *out, ec_error *err)
{
    ec_ctx cx = {EC_ERR_PROTO, err};
    memset(out, 0, def->size);
    if (root->type != MSGPACK_OBJECT_MAP)
        return ec_error_set(err, EC_ERR_PROTO, "%s: top level must be a map", def->name);
    ec_err rc = dec_map(root, def, out, def->name, &cx);
    if (rc)
        def->clear(out);
    return rc;
}

/* The parsed tree lives in a zone. A new zone per message cost a malloc of
 * its 8 kB chunk, a request large enough that glibc first consolidates its
 * fast bins, and a free; each thread keeps one and empties it instead. */
static pthread_key_t zone_key;
static pthread_once_t zone_once = PTHREAD_ONCE_INIT;
static bool zone_key_ok;

static void zone_destroy(void *z)
{
    msgpack_zone_free(z);
}

static void zone_key_make(void)
{
    zone_key_ok = pthread_key_create(&zone_key, zone_destroy) == 0;
}

/* This thread's zone, or NULL (no key, no memory): then a zone of its own. */
static msgpack_zone *thread_zone(void)
{
    pthread_once(&zone_once, zone_key_make);
    if (!zone_key_ok)
        return NULL;
    msgpack_zone *z = pthread_getspecific(zone_key);
    if (z)
        return z;
    z = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (z && pthread_setspecific(zone_key, z) != 0) {
        msgpack_zone_free(z);
        z = NULL;
    }
    return z;
}

ec_err ec_mp_decode(const ec_msgdef *def, const void *data, size_t len, void *out, ec_error *err)
{
    size_t end = 0, off = 0;
    const char *why = NULL;

    if (!out)
        return ec_error_set(err, EC_ERR_INVAL, "%s: NULL output", def->name);
    memset(out, 0, def->size);
    if (len == 0 || !data)
        return ec_error_set(err, EC_ERR_PROTO, "%s: empty payload", def->name);
    if (len > EC_MAX_PAYLOAD)
        return ec_error_set(err, EC_ERR_TOOBIG, "%s: payload %zu bytes exceeds limit %u", def->name,
                            len, EC_MAX_PAYLOAD);
    if (ec_mp_scan(data, len, &end, &why) != EC_OK)
        return ec_error_set(err, EC_ERR_PROTO, "%s: %s", def->name, why);
    if (end != len)
        return ec_error_set(err, EC_ERR_PROTO, "%s: %zu trailing bytes after the message",
                            def->name, len - end);

    msgpack_zone *own = NULL, *z = thread_zone();
    if (!z && !(z = own = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE)))
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
    ec_err rc;
    msgpack_object root;
    msgpack_unpack_return r = msgpack_unpack(data, len, &off, z, &root);
    if (r == MSGPACK_UNPACK_SUCCESS && off == len)
        rc = ec_obj_decode(def, &root, out, err);
    else if (r == MSGPACK_UNPACK_NOMEM_ERROR)
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
    else
        rc = ec_error_set(err, EC_ERR_PROTO, "%s: invalid msgpack", def->name);
    if (own)
        msgpack_zone_free(own);
    else
        msgpack_zone_clear(z);
    return rc;
}
