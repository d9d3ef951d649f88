/* JSON forms of Query, Result and Status.
 *
 * There is no second validator for JSON: a parsed jansson tree is turned into
 * a msgpack_object tree (strings point into the jansson tree, containers live
 * in a msgpack zone) and handed to the msgpack decoder, so field names, limits
 * and error messages are identical in both encodings. JSON integers become
 * msgpack integers and JSON reals become floats, so "max_tokens": 100.0 is
 * refused exactly like a msgpack float would be. Encoding goes the other way:
 * the msgpack encoder validates and writes, and the bytes are converted. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"

/* Real numbers get 15 significant digits: enough for every value we carry
 * and free of the "0.10000000000000001" noise that 17 digits print. */
#define JSON_DUMP_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION(15))

/* ---------------------------------------------------------------- decode */

typedef struct j2o {
    msgpack_zone *zone;
    bool int_id; /* Query: a top-level integer "id" is taken as its decimal text */
    const char *name;
    ec_error *err;
} j2o;

static ec_err to_obj(j2o *c, json_t *j, msgpack_object *o, int depth)
{
    switch (json_typeof(j)) {
    case JSON_OBJECT:
    case JSON_ARRAY: {
        if (depth >= EC_MP_MAX_DEPTH)
            return ec_error_set(c->err, EC_ERR_PROTO, "%s: nested deeper than %d levels", c->name,
                                EC_MP_MAX_DEPTH);
        bool obj = json_is_object(j);
        size_t n = obj ? json_object_size(j) : json_array_size(j);
        size_t each = obj ? sizeof(msgpack_object_kv) : sizeof(msgpack_object);
        void *mem = n ? msgpack_zone_malloc(c->zone, n * each) : NULL;
        if (n && !mem)
            return ec_error_set(c->err, EC_ERR_NOMEM, "%s: out of memory", c->name);
        if (!obj) {
            o->type = MSGPACK_OBJECT_ARRAY;
            o->via.array.size = (uint32_t)n;
            o->via.array.ptr = mem;
            for (size_t i = 0; i < n; i++) {
                ec_err rc = to_obj(c, json_array_get(j, i), &o->via.array.ptr[i], depth + 1);
                if (rc)
                    return rc;
            }
            return EC_OK;
        }
        o->type = MSGPACK_OBJECT_MAP;
        o->via.map.size = (uint32_t)n;
        o->via.map.ptr = mem;
        size_t i = 0;
        for (void *it = json_object_iter(j); it && i < n; it = json_object_iter_next(j, it), i++) {
            msgpack_object_kv *kv = &o->via.map.ptr[i];
            json_t *val = json_object_iter_value(it);
            kv->key.type = MSGPACK_OBJECT_STR;
            kv->key.via.str.ptr = json_object_iter_key(it);
            kv->key.via.str.size = (uint32_t)json_object_iter_key_len(it);
            if (c->int_id && depth == 0 && json_is_integer(val) &&
                strcmp(json_object_iter_key(it), "id") == 0) {
                char *s = msgpack_zone_malloc(c->zone, 24);
                if (!s)
                    return ec_error_set(c->err, EC_ERR_NOMEM, "%s: out of memory", c->name);
                int len = snprintf(s, 24, "%lld", (long long)json_integer_value(val));
                kv->val.type = MSGPACK_OBJECT_STR;
                kv->val.via.str.ptr = s;
                kv->val.via.str.size = (uint32_t)len;
                continue;
            }
            ec_err rc = to_obj(c, val, &kv->val, depth + 1);
            if (rc)
                return rc;
        }
        o->via.map.size = (uint32_t)i;
        return EC_OK;
    }
    case JSON_STRING:
        o->type = MSGPACK_OBJECT_STR;
        o->via.str.ptr = json_string_value(j);
        o->via.str.size = (uint32_t)json_string_length(j);
        return EC_OK;
    case JSON_INTEGER: {
        json_int_t v = json_integer_value(j);
        if (v >= 0) {
            o->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            o->via.u64 = (uint64_t)v;
        } else {
            o->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            o->via.i64 = (int64_t)v;
        }
        return EC_OK;
    }
    case JSON_REAL:
        o->type = MSGPACK_OBJECT_FLOAT64;
        o->via.f64 = json_real_value(j);
        return EC_OK;
    case JSON_TRUE:
    case JSON_FALSE:
        o->type = MSGPACK_OBJECT_BOOLEAN;
        o->via.boolean = json_is_true(j);
        return EC_OK;
    case JSON_NULL:
        o->type = MSGPACK_OBJECT_NIL;
        return EC_OK;
    }
    return ec_error_set(c->err, EC_ERR_PROTO, "%s: unsupported JSON value", c->name);
}

static ec_err json_decode(const ec_msgdef *def, bool int_id, const void *data, size_t len,
                          void *out, ec_error *err)
{
    json_t *root = NULL;
    msgpack_zone *zone = NULL;
    json_error_t je;
    ec_err rc;

    if (!out)
        return ec_error_set(err, EC_ERR_INVAL, "%s: NULL output", def->name);
    memset(out, 0, def->size);
    if (!data || len == 0)
        return ec_error_set(err, EC_ERR_PROTO, "%s: empty payload", def->name);
    if (len > EC_MAX_PAYLOAD)
        return ec_error_set(err, EC_ERR_TOOBIG, "%s: payload %zu bytes exceeds limit %u", def->name,
                            len, EC_MAX_PAYLOAD);
    /* json_loadb never reads past len and, without JSON_DISABLE_EOF_CHECK,
     * refuses anything after the value. NUL is let through so that the
     * decoder can name the field that holds it. */
    root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
    if (!root) {
        rc = ec_error_set(err, EC_ERR_PROTO, "%s: invalid JSON at line %d column %d: %s", def->name,
                          je.line, je.column, je.text);
        goto out;
    }
    if (!json_is_object(root)) {
        rc = ec_error_set(err, EC_ERR_PROTO, "%s: top level must be an object", def->name);
        goto out;
    }
    zone = msgpack_zone_new(MSGPACK_ZONE_CHUNK_SIZE);
    if (!zone) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
        goto out;
    }
    j2o c = {zone, int_id, def->name, err};
    msgpack_object obj;
    rc = to_obj(&c, root, &obj, 0);
    if (!rc)
        rc = ec_obj_decode(def, &obj, out, err);
out:
    if (zone)
        msgpack_zone_free(zone);
    json_decref(root);
    return rc;
}

ec_err ec_query_decode_json(const void *data, size_t len, ec_query *out, ec_error *err)
{
    return json_decode(&ec_def_query, true, data, len, out, err);
}

ec_err ec_result_decode_json(const void *data, size_t len, ec_result *out, ec_error *err)
{
    return json_decode(&ec_def_result, false, data, len, out, err);
}

ec_err ec_query_decode_any(const void *data, size_t len, ec_query *out, ec_encoding *enc,
                           ec_error *err)
{
    ec_encoding e = ec_payload_encoding(data, len);
    if (enc)
        *enc = e;
    if (e == EC_ENC_JSON)
        return ec_query_decode_json(data, len, out, err);
    return ec_query_decode(data, len, out, err);
}

/* ---------------------------------------------------------------- encode */

/* The tree comes from our own encoder, so every string is valid UTF-8 and
 * every integer fits json_int_t (encoders cap u64 fields at INT64_MAX). */
static json_t *from_obj(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        return json_null();
    case MSGPACK_OBJECT_BOOLEAN:
        return json_boolean(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return json_integer((json_int_t)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return json_integer((json_int_t)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        return json_real(o->via.f64);
    case MSGPACK_OBJECT_STR:
        return json_stringn_nocheck(o->via.str.ptr, o->via.str.size);
    case MSGPACK_OBJECT_ARRAY: {
        json_t *a = json_array();
        for (uint32_t i = 0; a && i < o->via.array.size; i++) {
            if (json_array_append_new(a, from_obj(&o->via.array.ptr[i])) != 0) {
                json_decref(a);
                return NULL;
            }
        }
        return a;
    }
    case MSGPACK_OBJECT_MAP: {
        json_t *m = json_object();
        for (uint32_t i = 0; m && i < o->via.map.size; i++) {
            const msgpack_object_kv *kv = &o->via.map.ptr[i];
            if (json_object_setn_new_nocheck(m, kv->key.via.str.ptr, kv->key.via.str.size,
                                             from_obj(&kv->val)) != 0) {
                json_decref(m);
                return NULL;
            }
        }
        return m;
    }
    default:
        return NULL;
    }
}

static ec_err json_encode(const ec_msgdef *def, const void *msg, ec_buf *out, ec_error *err)
{
    ec_buf mp;
    msgpack_unpacked u;
    json_t *j = NULL;
    char *text = NULL;
    size_t off = 0;
    ec_err rc;

    if (!out)
        return ec_error_set(err, EC_ERR_INVAL, "%s: NULL argument", def->name);
    ec_buf_init(&mp, 0);
    msgpack_unpacked_init(&u);
    rc = ec_mp_encode(def, msg, &mp, err);
    if (rc)
        goto out;
    if (msgpack_unpack_next(&u, mp.data, mp.len, &off) != MSGPACK_UNPACK_SUCCESS) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
        goto out;
    }
    /* json_dumpb into our own memory: no allocator mix-up with jansson's. */
    j = from_obj(&u.data);
    size_t n = j ? json_dumpb(j, NULL, 0, JSON_DUMP_FLAGS) : 0;
    if (n == 0) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
        goto out;
    }
    if (n > EC_MAX_PAYLOAD) {
        rc = ec_error_set(err, EC_ERR_TOOBIG, "%s: encoded %zu bytes exceeds payload limit %u",
                          def->name, n, EC_MAX_PAYLOAD);
        goto out;
    }
    text = malloc(n);
    if (!text || json_dumpb(j, text, n, JSON_DUMP_FLAGS) != n) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", def->name);
        goto out;
    }
    rc = ec_buf_append(out, text, n);
    if (rc)
        rc = ec_error_set(err, rc, "%s: %s", def->name,
                          rc == EC_ERR_NOMEM ? "out of memory" : "output buffer is full");
out:
    free(text);
    json_decref(j);
    msgpack_unpacked_destroy(&u);
    ec_buf_free(&mp);
    return rc;
}

ec_err ec_query_encode_json(const ec_query *q, ec_buf *out, ec_error *err)
{
    return json_encode(&ec_def_query, q, out, err);
}

ec_err ec_result_encode_json(const ec_result *r, ec_buf *out, ec_error *err)
{
    return json_encode(&ec_def_result, r, out, err);
}

ec_err ec_status_encode_json(const ec_status *s, ec_buf *out, ec_error *err)
{
    return json_encode(&ec_def_status, s, out, err);
}
