/* Pieces shared by every message: policies, the embedded sub-maps (chat
 * message, wire error, logprob stats) and their schemas. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"
#include "edgecascade/proto.h"
#include "proto_scan.h"

const char *ec_policy_name(ec_policy p)
{
    switch (p) {
    case EC_POLICY_AUTO:
        return "auto";
    case EC_POLICY_LOCAL_ONLY:
        return "local_only";
    case EC_POLICY_CONSENT:
        return "consent";
    }
    return "unknown";
}

int ec_policy_parse(const char *s, ec_policy *out)
{
    if (!s || !out)
        return -1;
    if (strcmp(s, "auto") == 0)
        *out = EC_POLICY_AUTO;
    else if (strcmp(s, "local_only") == 0)
        *out = EC_POLICY_LOCAL_ONLY;
    else if (strcmp(s, "consent") == 0)
        *out = EC_POLICY_CONSENT;
    else
        return -1;
    return 0;
}

ec_encoding ec_payload_encoding(const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; p && i < len; i++) {
        if (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n')
            continue;
        /* 0x7b is a positive fixint in msgpack, never a message's first byte. */
        return p[i] == '{' ? EC_ENC_JSON : EC_ENC_MSGPACK;
    }
    return EC_ENC_MSGPACK;
}

/* ---------------------------------------------------------------- wire error */

void ec_wire_error_clear(ec_wire_error *e)
{
    if (!e)
        return;
    free(e->code);
    free(e->message);
    e->code = NULL;
    e->message = NULL;
}

/* Error texts often come from upstream bodies: cut them to the wire limit on
 * a character boundary and replace bytes that are not UTF-8, so that setting
 * an error can never make the message that carries it unencodable. */
static char *sanitize_text(const char *s, size_t limit)
{
    size_t n = strlen(s);
    char *out = malloc((n < limit ? n : limit) + 1);
    if (!out)
        return NULL;
    /* Most texts are ours and short (every "busy" refusal carries one): one
     * validation pass and a copy, instead of a validation call per character
     * (6,400 instructions a refusal, measured with bench/instr). */
    if (n <= limit && ec_utf8_valid(s, n)) {
        memcpy(out, s, n + 1);
        return out;
    }
    size_t i = 0, o = 0;
    while (i < n) {
        size_t k = 1;
        unsigned c = (unsigned char)s[i];
        if (c >= 0xf0)
            k = 4;
        else if (c >= 0xe0)
            k = 3;
        else if (c >= 0xc0)
            k = 2;
        if (k > n - i || !ec_utf8_valid(s + i, k)) {
            if (o + 1 > limit)
                break;
            out[o++] = c < 0x80 ? (char)c : '?';
            i++;
            continue;
        }
        if (o + k > limit)
            break;
        memcpy(out + o, s + i, k);
        o += k;
        i += k;
    }
    out[o] = '\0';
    return out;
}

ec_err ec_wire_error_set(ec_wire_error *e, const char *code, const char *message)
{
    if (!e)
        return EC_ERR_INVAL;
    ec_wire_error_clear(e);
    if (!code)
        return EC_OK; /* no code means no error */
    e->code = sanitize_text(code, EC_MAX_ID);
    if (message)
        e->message = sanitize_text(message, EC_MAX_ERROR_MSG);
    if (!e->code || (message && !e->message)) {
        ec_wire_error_clear(e);
        return EC_ERR_NOMEM;
    }
    return EC_OK;
}

static void wire_error_clear_v(void *m)
{
    ec_wire_error_clear(m);
}

static const ec_field wire_error_fields[] = {
    {.name = "code",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_wire_error, code),
     .limit = EC_MAX_ID},
    {.name = "message",
     .kind = EC_FK_STR,
     .off = offsetof(ec_wire_error, message),
     .limit = EC_MAX_ERROR_MSG},
};

const ec_msgdef ec_def_wire_error = {
    .name = "error",
    EC_FIELDS(wire_error_fields),
    .size = sizeof(ec_wire_error),
    .clear = wire_error_clear_v,
};

/* ---------------------------------------------------------------- lp stats */

/* Below this a token's probability is 0 in a double anyway; clamping keeps
 * -inf and NaN (which some servers send for impossible tokens) out of the
 * stats, because the wire carries only finite numbers. */
#define LP_FLOOR (-1000.0)

static double clamp_lp(double v)
{
    if (isnan(v) || v < LP_FLOOR)
        return LP_FLOOR;
    return v > 0.0 ? 0.0 : v;
}

void ec_lp_stats_compute(const double *logprobs, size_t n, ec_lp_stats *out)
{
    if (!out)
        return;
    memset(out, 0, sizeof(*out));
    if (!logprobs || n == 0)
        return;
    double sum = 0.0, min = 0.0;
    for (size_t i = 0; i < n; i++) {
        double v = clamp_lp(logprobs[i]);
        sum += v;
        if (i == 0 || v < min)
            min = v;
    }
    out->present = true;
    out->n_tokens = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    out->mean = sum / (double)n;
    out->min = min;
    out->geo_prob = exp(out->mean);
    out->first_prob = exp(clamp_lp(logprobs[0]));
    /* Nearest-rank quantiles need a sorted copy; answers are short, and a
     * small insertion sort on the stack avoids an allocation per reply. */
    double local[256];
    double *v = n <= 256 ? local : malloc(n * sizeof(double));
    if (!v) {
        out->p10 = out->p25 = out->min;
        return;
    }
    for (size_t i = 0; i < n; i++) {
        double x = clamp_lp(logprobs[i]);
        size_t j = i;
        for (; j > 0 && v[j - 1] > x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    out->p10 = v[(size_t)ceil(0.10 * (double)n) - 1];
    out->p25 = v[(size_t)ceil(0.25 * (double)n) - 1];
    if (v != local)
        free(v);
}

static void lp_clear_v(void *m)
{
    memset(m, 0, sizeof(ec_lp_stats));
}

static const ec_field lp_fields[] = {
    {.name = "n_tokens", .kind = EC_FK_U32, .off = offsetof(ec_lp_stats, n_tokens)},
    {.name = "mean", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, mean)},
    {.name = "min", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, min)},
    {.name = "geo_prob", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, geo_prob)},
    {.name = "first_prob", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, first_prob)},
    {.name = "p10", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, p10)},
    {.name = "p25", .kind = EC_FK_DBL, .off = offsetof(ec_lp_stats, p25)},
};

const ec_msgdef ec_def_lp = {
    .name = "lp",
    EC_FIELDS(lp_fields),
    .size = sizeof(ec_lp_stats),
    .clear = lp_clear_v,
};

/* ---------------------------------------------------------------- chat message */

static void chat_msg_clear(void *m)
{
    ec_chat_msg *c = m;
    free(c->role);
    free(c->content);
    c->role = NULL;
    c->content = NULL;
}

static ec_err chat_msg_check(const void *msg, const char *path, const ec_ctx *cx)
{
    const ec_chat_msg *m = msg;
    if (m->role && (strcmp(m->role, "system") == 0 || strcmp(m->role, "user") == 0 ||
                    strcmp(m->role, "assistant") == 0))
        return EC_OK;
    return ec_error_set(cx->err, cx->bad, "%s.role: must be \"system\", \"user\" or \"assistant\"",
                        path);
}

static const ec_field chat_msg_fields[] = {
    {.name = "role",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_chat_msg, role),
     .limit = EC_MAX_ID},
    {.name = "content",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED,
     .off = offsetof(ec_chat_msg, content),
     .limit = EC_MAX_PROMPT},
};

const ec_msgdef ec_def_chat_msg = {
    .name = "message",
    EC_FIELDS(chat_msg_fields),
    .size = sizeof(ec_chat_msg),
    .check = chat_msg_check,
    .clear = chat_msg_clear,
};

void ec_chat_msgs_free(ec_chat_msg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++)
        chat_msg_clear(&m[i]);
    free(m);
}

ec_err ec_check_messages_total(const ec_chat_msg *m, size_t n, const char *extra, const char *path,
                               const ec_ctx *cx)
{
    size_t total = extra ? strlen(extra) : 0;
    for (size_t i = 0; i < n; i++)
        total += m[i].content ? strlen(m[i].content) : 0;
    if (total > EC_MAX_TOTAL_TEXT)
        return ec_error_set(cx->err, EC_ERR_TOOBIG, "%s: total text %zu bytes exceeds limit %u",
                            path, total, EC_MAX_TOTAL_TEXT);
    return EC_OK;
}
