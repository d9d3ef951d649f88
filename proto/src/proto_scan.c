/* A structure-only walk over raw msgpack bytes, run before msgpack-c sees them.
 *
 * msgpack-c allocates a container's element array as soon as it reads the
 * header, so a 5-byte "array32 of 4294967295" would make it ask for ~100 GB.
 * This walk proves first that every element a header claims is actually in
 * the buffer (each needs at least one byte), that strings fit, that nesting is
 * bounded and that exactly one object is present. After it succeeds msgpack-c
 * can allocate at most a small multiple of the input size. Every read checks
 * the remaining length first. */
#include <stdint.h>

#include "edgecascade/proto.h"
#include "proto_scan.h"

enum { W_NONE, W_STR, W_EXT, W_ARR, W_MAP, W_BAD };

/* Bytes 0xc0..0xdf: a fixed payload size, or the width of a length field and
 * what that length counts. */
static const struct mp_head {
    unsigned char skip, hdr, what;
} heads[32] = {
    /* clang-format off */
    {0, 0, W_NONE}, {0, 0, W_BAD}, {0, 0, W_NONE}, {0, 0, W_NONE}, /* nil, unused, false, true */
    {0, 1, W_STR}, {0, 2, W_STR}, {0, 4, W_STR},                    /* bin 8/16/32 */
    {0, 1, W_EXT}, {0, 2, W_EXT}, {0, 4, W_EXT},                    /* ext 8/16/32 */
    {4, 0, W_NONE}, {8, 0, W_NONE},                                 /* float 32/64 */
    {1, 0, W_NONE}, {2, 0, W_NONE}, {4, 0, W_NONE}, {8, 0, W_NONE}, /* uint 8..64 */
    {1, 0, W_NONE}, {2, 0, W_NONE}, {4, 0, W_NONE}, {8, 0, W_NONE}, /* int 8..64 */
    {2, 0, W_NONE}, {3, 0, W_NONE}, {5, 0, W_NONE}, {9, 0, W_NONE},
    {17, 0, W_NONE},                                                /* fixext 1..16, +type */
    {0, 1, W_STR}, {0, 2, W_STR}, {0, 4, W_STR},                    /* str 8/16/32 */
    {0, 2, W_ARR}, {0, 4, W_ARR},                                   /* array 16/32 */
    {0, 2, W_MAP}, {0, 4, W_MAP},                                   /* map 16/32 */
    /* clang-format on */
};

static uint64_t be(const unsigned char *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

ec_err ec_mp_scan(const unsigned char *p, size_t len, size_t *end, const char **why)
{
    uint64_t left[EC_MP_MAX_DEPTH + 1];
    int top = 0;
    uint64_t pending = 1; /* items still to read, over all open containers */
    size_t pos = 0;

    left[0] = 1;
    while (top >= 0) {
        if (left[top] == 0) {
            top--;
            continue;
        }
        if (pos >= len)
            goto truncated;
        left[top]--;
        pending--;
        unsigned b = p[pos++];
        uint64_t skip = 0;  /* payload bytes after the header */
        uint64_t items = 0; /* elements of a container */
        if (b <= 0x7f || b >= 0xe0) {
            /* positive or negative fixint: the byte is the whole object */
        } else if (b <= 0x8f) {
            items = 2u * (b & 0x0fu);
        } else if (b <= 0x9f) {
            items = b & 0x0fu;
        } else if (b <= 0xbf) {
            skip = b & 0x1fu;
        } else {
            const struct mp_head *h = &heads[b - 0xc0];
            if (h->what == W_BAD) {
                *why = "invalid msgpack (reserved byte 0xc1)";
                return EC_ERR_PROTO;
            }
            skip = h->skip;
            if (h->hdr) {
                if (len - pos < h->hdr)
                    goto truncated;
                uint64_t n = be(p + pos, h->hdr);
                pos += h->hdr;
                if (h->what == W_STR)
                    skip = n;
                else if (h->what == W_EXT)
                    skip = n + 1; /* the ext type byte */
                else if (h->what == W_ARR)
                    items = n;
                else
                    items = 2 * n;
            }
        }
        if (skip > len - pos)
            goto truncated;
        pos += (size_t)skip;
        if (items) {
            pending += items;
            if (pending > len - pos)
                goto truncated;
            if (top == EC_MP_MAX_DEPTH) {
                *why = "invalid msgpack (nested deeper than 16 levels)";
                return EC_ERR_PROTO;
            }
            left[++top] = items;
        }
    }
    *end = pos;
    return EC_OK;

truncated:
    *why = "truncated msgpack";
    return EC_ERR_PROTO;
}

/* Rejects overlong forms, surrogates and code points past U+10FFFF. */
bool ec_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        size_t k;
        uint32_t cp, min;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            k = 1, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            k = 2, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            k = 3, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (s[i + j] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}
