/* The providers' JSON on cJSON, with the rules jansson applied before.
 *
 * cJSON parses about three times faster than jansson (whose lexer reads the
 * body byte by byte through a stream), but it is laxer: it takes invalid
 * UTF-8, raw control characters, "\u0000", numbers such as 01, 1. or 1e999,
 * a BOM, any byte below 0x21 as whitespace and text after the value; it
 * keeps every duplicate key (and its getter returns the first) and stores
 * every number as a double. A model server's body that jansson refused must
 * still be a malformed response, not a half-read answer (an NDJSON stream
 * answered by mistake would otherwise read as its first chunk), so
 * json_lex_check() does one pass over the bytes for what cJSON does not
 * check, and the getters here give jansson's answers (the last duplicate
 * wins; a number written as a real is no count). */
#include "provider_internal.h"

#include <errno.h>
#include <locale.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A number written with '.', 'e' or 'E' (jansson's real). A bit above the
 * ones cJSON uses in item->type, which cJSON_IsNumber and cJSON_Delete
 * ignore. */
#define EC_JSON_REAL_BIT (1 << 15)

/* Length of the UTF-8 sequence at s (1..4), 0 when invalid: jansson's rules
 * (no overlong forms, no surrogates, nothing above U+10FFFF). */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
    unsigned c = s[0];
    size_t len;
    uint32_t cp;
    if (c < 0x80)
        return 1;
    if (c < 0xC2)
        return 0;
    if (c < 0xE0) {
        len = 2;
        cp = c & 0x1F;
    } else if (c < 0xF0) {
        len = 3;
        cp = c & 0x0F;
    } else if (c < 0xF5) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000))
        return 0;
    return len;
}

bool ec_prov_utf8_valid(const char *s, size_t n)
{
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = u[i] < 0x80 ? 1 : utf8_seq(u + i, n - i);
        if (!k)
            return false;
        i += k;
    }
    return true;
}

static bool is_digit(unsigned char c)
{
    return c >= '0' && c <= '9';
}

static bool is_ws(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Whether the real s[0..n) is beyond a double (jansson's "real number
 * overflow"). strtod reads the locale's decimal point, so '.' becomes it. */
static bool real_overflows(const unsigned char *s, size_t n)
{
    char *c = malloc(n + 1);
    if (!c)
        return true; /* refusing the body is the safe side */
    memcpy(c, s, n);
    c[n] = '\0';
    char *dot = strchr(c, '.');
    if (dot)
        *dot = localeconv()->decimal_point[0];
    errno = 0;
    double d = strtod(c, NULL);
    free(c);
    return errno == ERANGE && isinf(d);
}

/* Checks the number at s[*i] against JSON's grammar and jansson's limits
 * (integers in 64 bits, reals in a double); moves *i past it. */
static const char *lex_number(const unsigned char *s, size_t n, size_t *i, bool *real)
{
    size_t p = *i, start = *i;
    bool neg = s[p] == '-';
    if (neg)
        p++;
    size_t int_start = p;
    if (p < n && s[p] == '0')
        p++;
    else if (p < n && s[p] >= '1' && s[p] <= '9')
        while (p < n && is_digit(s[p]))
            p++;
    else
        return "invalid number";
    if (p < n && is_digit(s[p]))
        return "invalid number (leading zero)";
    size_t int_digits = p - int_start;
    long exp = 0;
    *real = false;
    if (p < n && s[p] == '.') {
        *real = true;
        p++;
        if (p >= n || !is_digit(s[p]))
            return "invalid number";
        while (p < n && is_digit(s[p]))
            p++;
    }
    if (p < n && (s[p] == 'e' || s[p] == 'E')) {
        *real = true;
        p++;
        bool eneg = false;
        if (p < n && (s[p] == '+' || s[p] == '-'))
            eneg = s[p++] == '-';
        if (p >= n || !is_digit(s[p]))
            return "invalid number";
        for (; p < n && is_digit(s[p]); p++)
            if (exp < 100000)
                exp = exp * 10 + (s[p] - '0');
        if (eneg)
            exp = -exp;
    }
    if (!*real) {
        if (int_digits > 19 ||
            (int_digits == 19 &&
             memcmp(s + int_start, neg ? "9223372036854775808" : "9223372036854775807", 19) > 0))
            return neg ? "too big negative integer" : "too big integer";
    } else if ((long)int_digits + exp > 308 && real_overflows(s + start, p - start)) {
        /* Below 10^(int_digits + exp) <= 10^308 a real cannot overflow. */
        return "real number overflow";
    }
    *i = p;
    return NULL;
}

/* Whether the key k[0..n) names a count ("..._tokens", "..._count"). */
static bool count_key(const unsigned char *k, size_t n)
{
    return (n >= 7 && memcmp(k + n - 7, "_tokens", 7) == 0) ||
           (n >= 6 && memcmp(k + n - 6, "_count", 6) == 0);
}

/* What jansson's decoder refused and cJSON does not check, in one pass:
 * returns NULL or the reason, with *at the byte offset. *mark is set when a
 * count key holds a real: only then is it worth marking reals in the tree. */
static const char *json_lex_check(const unsigned char *s, size_t n, size_t *at, bool *mark)
{
    const unsigned char *str = NULL, *key = NULL;
    size_t str_len = 0, key_len = 0;
    size_t i = 0;
    const char *bad = NULL;
    while (i < n) {
        unsigned char c = s[i];
        /* Letters: true, false, null (cJSON checks the words). */
        if (is_ws(c) || c == '{' || c == '}' || c == '[' || c == ']' || c == ',' ||
            (c >= 'a' && c <= 'z')) {
            i++;
        } else if (c == ':') {
            key = str;
            key_len = str_len;
            i++;
        } else if (c == '"') {
            size_t start = ++i;
            for (;;) {
                if (i >= n) {
                    bad = "premature end of input in a string";
                    goto out;
                }
                c = s[i];
                if (c == '"')
                    break;
                if (c == '\\') {
                    if (i + 5 < n && s[i + 1] == 'u' && memcmp(s + i + 2, "0000", 4) == 0) {
                        bad = "\\u0000 is not allowed";
                        goto out;
                    }
                    i += 2;
                } else if (c < 0x20) {
                    bad = "control character in a string";
                    goto out;
                } else if (c < 0x80) {
                    i++;
                } else {
                    size_t k = utf8_seq(s + i, n - i);
                    if (!k) {
                        bad = "invalid UTF-8";
                        goto out;
                    }
                    i += k;
                }
            }
            str = s + start;
            str_len = i - start;
            i++;
        } else if (c == '-' || is_digit(c)) {
            bool real;
            bad = lex_number(s, n, &i, &real);
            if (bad)
                goto out;
            if (real && key && count_key(key, key_len))
                *mark = true;
        } else {
            bad = c >= 0x80 ? "invalid UTF-8 or token" : "invalid token";
            goto out;
        }
    }
out:
    *at = i;
    return bad;
}

/* Offset of the next number in s from *pos on, outside strings; *pos is left
 * after it and *real says whether it was written as a real. */
static void next_number(const unsigned char *s, size_t n, size_t *pos, bool *real)
{
    size_t i = *pos;
    while (i < n && s[i] != '-' && !is_digit(s[i])) {
        if (s[i] == '"') {
            for (i++; i < n && s[i] != '"'; i++)
                if (s[i] == '\\')
                    i++;
        }
        i++;
    }
    *real = false;
    while (i < n && (s[i] == '-' || s[i] == '+' || s[i] == '.' || s[i] == 'e' || s[i] == 'E' ||
                     is_digit(s[i]))) {
        if (s[i] == '.' || s[i] == 'e' || s[i] == 'E')
            *real = true;
        i++;
    }
    *pos = i;
}

/* Marks the numbers written as reals. cJSON keeps members and elements in
 * text order, so the tree's numbers in pre-order are the text's numbers. */
static void mark_reals(cJSON *item, const unsigned char *s, size_t n, size_t *pos)
{
    for (; item; item = item->next) {
        if (cJSON_IsNumber(item)) {
            bool real;
            next_number(s, n, pos, &real);
            if (real)
                item->type |= EC_JSON_REAL_BIT;
        } else if (item->child) {
            mark_reals(item->child, s, n, pos);
        }
    }
}

cJSON *ec_prov_json_parse(const char *text, size_t n, char *why, size_t whylen)
{
    const unsigned char *s = (const unsigned char *)text;
    size_t at = 0;
    bool mark = false;
    const char *bad = json_lex_check(s, n, &at, &mark);
    if (bad) {
        snprintf(why, whylen, "%s at byte %zu", bad, at);
        return NULL;
    }
    const char *end = NULL;
    /* Not cJSON's require_null_terminated: it wants a NUL inside n. */
    cJSON *root = n ? cJSON_ParseWithLengthOpts(text, n, &end, 0) : NULL;
    if (!root) {
        snprintf(why, whylen, "syntax error at byte %zu", end ? (size_t)(end - text) : (size_t)0);
        return NULL;
    }
    for (at = (size_t)(end - text); at < n; at++) {
        if (!is_ws(s[at])) {
            snprintf(why, whylen, "end of file expected at byte %zu", at);
            cJSON_Delete(root);
            return NULL;
        }
    }
    if (!cJSON_IsObject(root) && !cJSON_IsArray(root)) {
        /* jansson without JSON_DECODE_ANY refused these as invalid JSON. */
        snprintf(why, whylen, "'[' or '{' expected");
        cJSON_Delete(root);
        return NULL;
    }
    if (mark) {
        size_t pos = 0;
        mark_reals(root, s, n, &pos);
    }
    return root;
}

cJSON *ec_prov_json_get(const cJSON *obj, const char *key)
{
    cJSON *found = NULL;
    if (!cJSON_IsObject(obj))
        return NULL;
    for (cJSON *c = obj->child; c; c = c->next)
        if (c->string && strcmp(c->string, key) == 0)
            found = c;
    return found;
}

const char *ec_prov_json_str(const cJSON *v)
{
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

uint32_t ec_prov_json_count(const cJSON *v)
{
    /* What json_is_integer + json_integer_value gave: the lexer kept
     * integers to 64 bits, so a double above UINT32_MAX is one too. */
    if (!cJSON_IsNumber(v) || (v->type & EC_JSON_REAL_BIT))
        return 0;
    double d = v->valuedouble;
    if (d < 0 || d != floor(d))
        return 0;
    return d > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

cJSON *ec_prov_json_string(const char *s)
{
    if (!s || !ec_prov_utf8_valid(s, strlen(s)))
        return NULL;
    return cJSON_CreateString(s);
}

cJSON *ec_prov_json_real(double d)
{
    if (!isfinite(d))
        return NULL;
    char buf[40];
    int len = snprintf(buf, sizeof(buf), "%.15g", d);
    if (len < 0 || (size_t)len >= sizeof(buf) - 2)
        return NULL;
    char *dp = strchr(buf, localeconv()->decimal_point[0]);
    if (dp)
        *dp = '.';
    if (!strchr(buf, '.') && !strchr(buf, 'e'))
        memcpy(buf + len, ".0", 3);
    /* jansson's spelling of the exponent: 1e-5, 1e20 (not 1e-05, 1e+20). */
    char *e = strchr(buf, 'e');
    if (e) {
        char *dst = e + 1, *src = e + 1;
        if (*src == '-')
            *dst++ = *src++;
        else if (*src == '+')
            src++;
        while (*src == '0' && src[1])
            src++;
        memmove(dst, src, strlen(src) + 1);
    }
    return cJSON_CreateRaw(buf);
}

int ec_prov_json_set(cJSON *obj, const char *key, cJSON *item)
{
    if (obj && item && cJSON_AddItemToObject(obj, key, item))
        return 0;
    cJSON_Delete(item);
    return -1;
}
