/* The arrival journal's records (see journal_file.h): encoding, and reading
 * back what a crash may have cut short. */
#include "journal_file.h"

#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

#define VERSION 1u
#define NONE    0xffffffffu

static const uint8_t magic[4] = {'E', 'C', 'J', '2'};

uint64_t ec_jf_fnv(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t check_of(const uint8_t *p, size_t n)
{
    return ec_jf_fnv(EC_JF_FNV_SEED, p, n);
}

static uint8_t *put(uint8_t *p, const void *v, size_t n)
{
    memcpy(p, v, n);
    return p + n;
}

static uint8_t *put_u32(uint8_t *p, uint32_t v)
{
    return put(p, &v, 4);
}

static uint8_t *put_u64(uint8_t *p, uint64_t v)
{
    return put(p, &v, 8);
}

static uint8_t *put_field(uint8_t *p, const void *v, size_t n, bool present)
{
    p = put_u32(p, present ? (uint32_t)n : NONE);
    return present && n ? put(p, v, n) : p;
}

static uint32_t get_u32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

void ec_jf_header(uint8_t *out, uint64_t gen)
{
    out = put(out, magic, 4);
    out = put_u32(out, VERSION);
    put_u64(out, gen);
}

ec_jf_kind ec_jf_read_header(const uint8_t *buf, size_t len, uint64_t *gen)
{
    /* A crash right after a segment was made leaves it empty or zeroed. */
    bool blank = true;
    for (size_t i = 0; i < len && i < EC_JF_HEADER && blank; i++)
        blank = buf[i] == 0;
    if (blank)
        return EC_JF_EMPTY;
    if (memcmp(buf, magic, len < 4 ? len : 4) != 0 || (len >= 8 && get_u32(buf + 4) != VERSION))
        return EC_JF_FOREIGN;
    if (len < EC_JF_HEADER)
        return EC_JF_EMPTY;
    *gen = get_u64(buf + 8);
    return EC_JF_OURS;
}

/* The fixed part of an ADD body: kind, id, received_ms, of_query, expiry_s,
 * format. */
#define ADD_FIXED 30u

static size_t field_size(const void *v, size_t n)
{
    return 4 + (v ? n : 0);
}

static size_t str_size(const char *v)
{
    return field_size(v, v ? strlen(v) : 0);
}

size_t ec_jf_add_size(const ec_mqtt_msg *m)
{
    size_t n = EC_JF_FRAME + ADD_FIXED + str_size(m->topic) + field_size("", m->len) +
               str_size(m->response_topic) + field_size(m->corr_len ? m->corr : NULL, m->corr_len) +
               str_size(m->content_type) + 4;
    for (size_t i = 0; i < m->n_user_props; i++)
        n += str_size(m->user_props[i].name) + str_size(m->user_props[i].value);
    return n;
}

/* The frame in front of a body of n bytes that starts at body. */
static void frame(uint8_t *out, const uint8_t *body, size_t n)
{
    put_u64(put_u32(out, (uint32_t)n), check_of(body, n));
}

static uint8_t *put_str(uint8_t *p, const char *v)
{
    return put_field(p, v, v ? strlen(v) : 0, v != NULL);
}

void ec_jf_add_encode(uint8_t *out, const ec_mqtt_msg *m, int64_t id, uint64_t received_ms,
                      int64_t of_query)
{
    uint8_t *body = out + EC_JF_FRAME, *p = body;
    *p++ = EC_JF_ADD;
    p = put_u64(p, (uint64_t)id);
    p = put_u64(p, received_ms);
    p = put_u64(p, (uint64_t)of_query);
    p = put_u32(p, m->expiry_s);
    *p++ = (uint8_t)(int8_t)m->format;
    p = put_str(p, m->topic);
    p = put_field(p, m->payload, m->len, true);
    p = put_str(p, m->response_topic);
    p = put_field(p, m->corr, m->corr_len, m->corr && m->corr_len);
    p = put_str(p, m->content_type);
    p = put_u32(p, (uint32_t)m->n_user_props);
    for (size_t i = 0; i < m->n_user_props; i++) {
        p = put_str(p, m->user_props[i].name);
        p = put_str(p, m->user_props[i].value);
    }
    frame(out, body, (size_t)(p - body));
}

size_t ec_jf_done_encode(uint8_t *out, const int64_t *ids, size_t n)
{
    uint8_t *body = out + EC_JF_FRAME, *p = body;
    *p++ = EC_JF_DONE;
    p = put_u32(p, (uint32_t)n);
    for (size_t i = 0; i < n; i++)
        p = put_u64(p, (uint64_t)ids[i]);
    frame(out, body, (size_t)(p - body));
    return (size_t)(p - out);
}

int64_t ec_jf_done_id(const ec_jf_rec *r, uint32_t i)
{
    return (int64_t)get_u64(r->ids + 8u * i);
}

/* The variable fields of an ADD body: each must fit in what is left. */
typedef struct cursor {
    const uint8_t *p, *end;
} cursor;

static bool take_field(cursor *c, const uint8_t **v, uint32_t *n)
{
    if (c->end - c->p < 4)
        return false;
    *n = get_u32(c->p);
    c->p += 4;
    *v = NULL;
    if (*n == NONE)
        return true;
    if ((size_t)(c->end - c->p) < *n)
        return false;
    *v = c->p;
    c->p += *n;
    return true;
}

#define N_FIELDS 5 /* topic, payload, response_topic, corr, content_type */

/* Topics, the content type and user properties are C strings: a NUL inside
 * one was never written by us. The payload and Correlation Data are bytes;
 * the payload is always there, Correlation Data never empty (none instead),
 * so that every record has one spelling. */
static bool is_str(int i)
{
    return i != 1 && i != 3;
}

/* Walks the variable part of an ADD body: the fields, then the user
 * properties (name, value), each handed to fn when it is not NULL. */
static bool each_field(cursor *c, void (*fn)(void *, int, const uint8_t *, uint32_t), void *ctx)
{
    const uint8_t *v;
    uint32_t n;
    for (int i = 0; i < N_FIELDS; i++) {
        if (!take_field(c, &v, &n) || (is_str(i) && v && memchr(v, 0, n)) || (i == 1 && !v) ||
            (i == 3 && v && !n))
            return false;
        if (fn)
            fn(ctx, i, v, n);
    }
    if (c->end - c->p < 4)
        return false;
    uint32_t props = get_u32(c->p);
    c->p += 4;
    if (props > (size_t)(c->end - c->p) / 8)
        return false;
    for (uint32_t i = 0; i < 2 * props; i++) {
        if (!take_field(c, &v, &n) || (v && memchr(v, 0, n)))
            return false;
        if (fn)
            fn(ctx, N_FIELDS + (int)i, v, n);
    }
    return true;
}

/* Checks a body and fills r; false for anything this version did not write. */
static bool parse_body(const uint8_t *b, uint32_t n, ec_jf_rec *r)
{
    if (n < 1)
        return false;
    r->kind = b[0];
    if (r->kind == EC_JF_DONE) {
        if (n < 5)
            return false;
        r->n = get_u32(b + 1);
        r->ids = b + 5;
        return (uint64_t)n == 5 + 8ull * r->n;
    }
    if (r->kind != EC_JF_ADD || n < ADD_FIXED)
        return false;
    r->id = (int64_t)get_u64(b + 1);
    r->received_ms = get_u64(b + 9);
    r->of_query = (int64_t)get_u64(b + 17);
    cursor c = {b + ADD_FIXED, b + n};
    return each_field(&c, NULL, NULL) && c.p == c.end && r->id > 0;
}

/* The fuzzer (fuzz/fuzz_journal.c) could hardly ever forge a check: its
 * build takes any, so that the body's parser is what it explores. */
static bool check_ok(uint64_t check, const uint8_t *body, size_t n)
{
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    (void)check;
    (void)body;
    (void)n;
    return true;
#else
    return check == check_of(body, n);
#endif
}

uint64_t ec_jf_scan(const uint8_t *buf, size_t len, ec_jf_rec_fn fn, void *ctx)
{
    uint64_t off = EC_JF_HEADER;
    while (len >= off + EC_JF_FRAME) {
        uint32_t n = get_u32(buf + off);
        if (n > EC_JF_MAX_BODY || len - off - EC_JF_FRAME < n)
            break;
        const uint8_t *body = buf + off + EC_JF_FRAME;
        ec_jf_rec r = {.off = off, .len = EC_JF_FRAME + n};
        if (!check_ok(get_u64(buf + off + 4), body, n) || !parse_body(body, n, &r))
            break;
        fn(ctx, &r);
        off += r.len;
    }
    return off;
}

/* n bytes and a NUL after them: payloads and topics are read as strings. */
static char *copy(const uint8_t *v, uint32_t n)
{
    char *out = malloc((size_t)n + 1);
    if (out) {
        memcpy(out, v, n);
        out[n] = '\0';
    }
    return out;
}

typedef struct rebuild {
    ec_mqtt_msg *m;
    bool ok;
} rebuild;

static void take(void *ctx, int i, const uint8_t *v, uint32_t n)
{
    rebuild *rb = ctx;
    ec_mqtt_msg *m = rb->m;
    if (i == 1) { /* NUL-terminated, as every inbound payload is */
        m->payload = copy(v, n);
        m->len = n;
        rb->ok &= m->payload != NULL;
        return;
    }
    if (!v)
        return;
    char *s = copy(v, n);
    rb->ok &= s != NULL;
    if (i == 0)
        m->topic = s;
    else if (i == 2)
        m->response_topic = s;
    else if (i == 3) {
        m->corr = s;
        m->corr_len = n;
    } else if (i == 4)
        m->content_type = s;
    else if (i >= N_FIELDS && m->user_props) {
        ec_mqtt_userprop *u = &m->user_props[(i - N_FIELDS) / 2];
        *((i - N_FIELDS) % 2 ? &u->value : &u->name) = s;
        return;
    } else
        free(s);
}

ec_mqtt_msg *ec_jf_add_decode(const uint8_t *rec, size_t len)
{
    if (len < EC_JF_FRAME)
        return NULL;
    const uint8_t *b = rec + EC_JF_FRAME;
    ec_jf_rec r = {0};
    if (!parse_body(b, (uint32_t)(len - EC_JF_FRAME), &r) || r.kind != EC_JF_ADD)
        return NULL;
    ec_mqtt_msg *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->tag = r.id;
    m->tag_ms = r.received_ms;
    m->tag_of = r.of_query;
    m->expiry_s = get_u32(b + 25);
    m->format = b[29] == 0xff ? -1 : (int)b[29]; /* -1 (absent) was written as 0xff */
    m->qos = 1;
    m->received_us = ec_mono_us();
    rebuild rb = {m, true};
    cursor c = {b + ADD_FIXED, rec + len};
    /* The number of user properties sits after the fields: found by a first walk. */
    const uint8_t *v;
    uint32_t n;
    for (int i = 0; i < N_FIELDS; i++)
        take_field(&c, &v, &n);
    uint32_t props = get_u32(c.p);
    if (props && !(m->user_props = calloc(props, sizeof(*m->user_props))))
        rb.ok = false;
    m->n_user_props = m->user_props ? props : 0;
    c.p = b + ADD_FIXED;
    each_field(&c, take, &rb);
    if (!rb.ok) {
        ec_mqtt_msg_free(m);
        return NULL;
    }
    return m;
}
