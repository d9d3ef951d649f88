/* How an incoming query payload is read: its kind (msgpack, JSON or a
 * plain-text prompt) from the MQTT v5 properties or its first bytes, and the
 * client's id rescued from JSON that does not parse (proto.h says the rules).
 * A Node-RED flow that publishes a string, or a JSON body with a typo, gets
 * an answer it can read, in JSON, under its own id. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "proto_codec.h"
#include "edgecascade/proto.h"
#include "proto_scan.h"

static bool ctype_is(const char *ct, const char *what)
{
    size_t n = strlen(what);
    /* "application/json; charset=utf-8": the parameters do not matter */
    return strncasecmp(ct, what, n) == 0 && (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static bool ctype_json(const char *ct)
{
    const char *semi = strchr(ct, ';');
    size_t n = semi ? (size_t)(semi - ct) : strlen(ct);
    while (n && ct[n - 1] == ' ')
        n--;
    return (n >= 5 && strncasecmp(ct + n - 5, "/json", 5) == 0) ||
           (n >= 5 && strncasecmp(ct + n - 5, "+json", 5) == 0);
}

ec_payload_kind ec_payload_kind_of(const void *data, size_t len, const char *content_type,
                                   int format)
{
    if (content_type && *content_type) {
        if (ctype_json(content_type))
            return EC_PAYLOAD_JSON;
        if (ctype_is(content_type, "application/msgpack") ||
            ctype_is(content_type, "application/x-msgpack") ||
            ctype_is(content_type, "application/vnd.msgpack"))
            return EC_PAYLOAD_MSGPACK;
        if (ctype_is(content_type, "text/plain"))
            return EC_PAYLOAD_TEXT;
        /* anything else: the bytes decide */
    }
    const unsigned char *p = data;
    size_t i = 0;
    while (p && i < len && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n'))
        i++;
    if (!p || i == len)
        return EC_PAYLOAD_TEXT; /* empty: nothing to decode, answered in JSON */
    if (p[i] == '{' || p[i] == '[')
        return EC_PAYLOAD_JSON;
    if ((p[i] >= 0x80 && p[i] <= 0x8f) || p[i] == 0xde || p[i] == 0xdf)
        return EC_PAYLOAD_MSGPACK;
    if (format == 1 || ec_utf8_valid((const char *)p, len))
        return EC_PAYLOAD_TEXT;
    return EC_PAYLOAD_MSGPACK;
}

/* A plain-text prompt: the text, blanks trimmed, as the query's prompt. */
static ec_err decode_text(const char *s, size_t len, ec_query *out, ec_error *err)
{
    while (len && isspace((unsigned char)*s))
        s++, len--;
    while (len && isspace((unsigned char)s[len - 1]))
        len--;
    if (!len)
        return ec_error_set(err, EC_ERR_PROTO,
                            "query: empty payload (send a JSON object like {\"prompt\": \"...\"}, "
                            "a msgpack map, or plain text)");
    if (len > EC_MAX_PROMPT)
        return ec_error_set(err, EC_ERR_TOOBIG, "query: prompt of %zu bytes exceeds limit %u", len,
                            EC_MAX_PROMPT);
    if (!ec_utf8_valid(s, len))
        return ec_error_set(err, EC_ERR_PROTO, "query: text is not valid UTF-8");
    memset(out, 0, sizeof(*out));
    out->prompt = strndup(s, len);
    if (!out->prompt)
        return ec_error_set(err, EC_ERR_NOMEM, "query: out of memory");
    out->policy = EC_POLICY_AUTO;
    return EC_OK;
}

/* The value of the first "id": "..." in broken JSON, when it could name a
 * topic (the same rule as a decoded id: no '/', '+', '#', blanks or control
 * characters, at most EC_MAX_ID bytes, no escapes). */
static char *rescue_id(const char *s, size_t len)
{
    for (size_t i = 0; i + 4 <= len; i++) {
        if (memcmp(s + i, "\"id\"", 4) != 0)
            continue;
        size_t j = i + 4;
        while (j < len && isspace((unsigned char)s[j]))
            j++;
        if (j >= len || s[j] != ':')
            continue;
        j++;
        while (j < len && isspace((unsigned char)s[j]))
            j++;
        if (j >= len || s[j] != '"')
            continue;
        size_t start = ++j;
        while (j < len && s[j] != '"') {
            unsigned char c = (unsigned char)s[j];
            if (c <= ' ' || c == '/' || c == '+' || c == '#' || c == '\\' || c == 0x7f)
                return NULL;
            j++;
        }
        if (j >= len || j == start || j - start > EC_MAX_ID || !ec_utf8_valid(s + start, j - start))
            return NULL;
        return strndup(s + start, j - start);
    }
    return NULL;
}

ec_err ec_query_decode_payload(const void *data, size_t len, const char *content_type, int format,
                               ec_query *out, ec_encoding *enc, ec_error *err)
{
    ec_payload_kind kind = ec_payload_kind_of(data, len, content_type, format);
    if (enc)
        *enc = kind == EC_PAYLOAD_MSGPACK ? EC_ENC_MSGPACK : EC_ENC_JSON;
    if (kind == EC_PAYLOAD_TEXT)
        return decode_text(data ? data : "", len, out, err);
    if (kind == EC_PAYLOAD_MSGPACK)
        return ec_query_decode(data, len, out, err);
    ec_err rc = ec_query_decode_json(data, len, out, err);
    if (rc != EC_OK && !out->id)
        out->id = rescue_id(data, len);
    return rc;
}
