/* Table-driven YAML-to-struct mapping, the core; see config_map.h.
 *
 * Setting one value from its text (type, range, choices and checks, with an
 * error that quotes the bad value), the defaults, deep copy and free. Reading
 * a YAML document against a table is config_map_yaml.c, writing the
 * documented example is config_map_write.c; the helpers the three share are
 * declared in config_map_internal.h. */
#include "config_map_internal.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CM_SHOW_MAX 40 /* bytes of a bad value quoted back in an error */

const ec_cm_entry *ec_cm_find(const ec_cm_entry *table, const char *key)
{
    for (const ec_cm_entry *e = table; e->key; e++)
        if (strcmp(e->key, key) == 0)
            return e;
    return NULL;
}

/* ---- text helpers ---- */

/* Copies a value for quoting in an error: at most CM_SHOW_MAX bytes (cut on a
 * UTF-8 boundary), control characters and quotes as '?', so a message stays
 * one readable line whatever the file holds. */
void ec_cm_show(char *out, size_t outlen, const char *s, size_t len)
{
    size_t n = len < CM_SHOW_MAX ? len : CM_SHOW_MAX;
    if (n < len)
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < outlen; i++) {
        unsigned char ch = (unsigned char)s[i];
        out[o++] = (ch < 0x20 || ch == 0x7f || ch == '"' || ch == '\\') ? '?' : (char)ch;
    }
    if (n < len && o + 4 < outlen) {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

void ec_cm_join(char *out, size_t n, const char *path, const char *key)
{
    if (path[0])
        snprintf(out, n, "%s.%s", path, key);
    else
        snprintf(out, n, "%s", key);
}

/* Levenshtein distance, for "did you mean"; SIZE_MAX for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63)
        return SIZE_MAX;
    size_t prev[64], cur[64];
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t best = prev[j - 1] + (a[i - 1] != b[j - 1]);
            if (prev[j] + 1 < best)
                best = prev[j] + 1;
            if (cur[j - 1] + 1 < best)
                best = cur[j - 1] + 1;
            cur[j] = best;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(size_t));
    }
    return prev[lb];
}

/* The candidate closest to word, if close enough to be a likely typo. */
const char *ec_cm_closest(const char *word, const char *const *cands, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3; /* at most two edits */
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, cands[i]);
        if (d < best_d && d < strlen(cands[i]) && d < strlen(word)) {
            best = cands[i];
            best_d = d;
        }
    }
    return best;
}

/* Hint for an unknown key: a near miss in the same map, else the one other
 * section (or the top level) that has exactly this key. */
bool ec_cm_parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return true;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return true;
        }
    }
    return false;
}

/* Shortest text that reads back as exactly v. */
void ec_cm_fmt_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

void ec_cm_fmt_bound(const ec_cm_entry *e, double v, char *buf, size_t n)
{
    if (e->type == EC_CM_DOUBLE)
        ec_cm_fmt_double(v, buf, n);
    else
        snprintf(buf, n, "%.0f", v);
}

/* What a valid value looks like: "an integer between 5 and 3600". */
void ec_cm_expect_text(const ec_cm_entry *e, char *buf, size_t n)
{
    const char *what = e->type == EC_CM_DOUBLE ? "a number" : "an integer";
    char lo[32], hi[32];
    switch (e->type) {
    case EC_CM_STR:
    case EC_CM_SECRET:
        snprintf(buf, n, "a string");
        return;
    case EC_CM_BOOL:
        snprintf(buf, n, "true or false");
        return;
    case EC_CM_SECTION:
        snprintf(buf, n, "a mapping of keys");
        return;
    case EC_CM_LIST:
        snprintf(buf, n, "a list");
        return;
    default:
        break;
    }
    if (!has_range(e)) {
        snprintf(buf, n, "%s", what);
        return;
    }
    ec_cm_fmt_bound(e, e->min, lo, sizeof(lo));
    if (isinf(e->max)) {
        snprintf(buf, n, "%s >= %s", what, lo);
        return;
    }
    ec_cm_fmt_bound(e, e->max, hi, sizeof(hi));
    snprintf(buf, n, "%s between %s and %s", what, lo, hi);
}

/* ---- setting one value ---- */

static void free_string(const ec_cm_entry *e, char **p)
{
    if (*p && e->type == EC_CM_SECRET)
        explicit_bzero(*p, strlen(*p));
    free(*p);
    *p = NULL;
}

static ec_err set_string(const ec_cm_entry *e, void *base, const char *text, size_t len, char *why,
                         size_t wn)
{
    bool secret = e->type == EC_CM_SECRET;
    char shown[64];
    ec_cm_show(shown, sizeof(shown), text, len);
    if (memchr(text, '\0', len)) {
        snprintf(why, wn, "must not contain NUL bytes");
        return EC_ERR_CONFIG;
    }
    if ((e->flags & EC_CM_NONEMPTY) && len == 0) {
        snprintf(why, wn, "must not be empty");
        return EC_ERR_CONFIG;
    }
    if (e->max_len && len > e->max_len) {
        snprintf(why, wn, "must be at most %zu bytes long, got %zu", e->max_len, len);
        return EC_ERR_CONFIG;
    }
    if (e->choices) {
        size_t nc = 0;
        bool ok = false;
        char list[160] = "";
        for (; e->choices[nc]; nc++) {
            ok = ok || strcmp(e->choices[nc], text) == 0;
            size_t used = strlen(list);
            snprintf(list + used, sizeof(list) - used, "%s%s", nc ? ", " : "", e->choices[nc]);
        }
        if (!ok) {
            const char *near = ec_cm_closest(text, e->choices, nc);
            char hint[80] = "";
            if (near)
                snprintf(hint, sizeof(hint), "; did you mean \"%s\"?", near);
            snprintf(why, wn, "unknown %s \"%s\" (expected %s%s)", e->key, shown, list, hint);
            return EC_ERR_CONFIG;
        }
    }
    if (e->check) {
        const char *bad = e->check(text);
        if (bad) {
            if (secret)
                snprintf(why, wn, "%s", bad);
            else
                snprintf(why, wn, "%s, got \"%s\"", bad, shown);
            return EC_ERR_CONFIG;
        }
    }
    char *dup = strndup(text, len);
    if (!dup) {
        snprintf(why, wn, "out of memory");
        return EC_ERR_NOMEM;
    }
    char **slot = field_at(base, e);
    free_string(e, slot);
    *slot = dup;
    return EC_OK;
}

/* Parses text (len bytes; a "\0" escape can put NUL inside) into e's field.
 * On a bad value writes why (no path) and returns EC_ERR_CONFIG. */
ec_err ec_cm_parse_value(const ec_cm_entry *e, void *base, const char *text, size_t len, char *why,
                         size_t wn)
{
    if (is_string(e))
        return set_string(e, base, text, len, why, wn);

    char shown[64], expect[96];
    ec_cm_show(shown, sizeof(shown), text, len);
    ec_cm_expect_text(e, expect, sizeof(expect));
    bool whole = len > 0 && strlen(text) == len && !isspace((unsigned char)text[0]);
    char *end = NULL;
    errno = 0;
    switch (e->type) {
    case EC_CM_BOOL: {
        bool v;
        if (!whole || !ec_cm_parse_bool(text, &v))
            goto bad;
        *(bool *)field_at(base, e) = v;
        return EC_OK;
    }
    case EC_CM_INT:
    case EC_CM_U32: {
        long long v = whole ? strtoll(text, &end, 10) : 0;
        long long lo = e->type == EC_CM_INT ? INT_MIN : 0;
        long long hi = e->type == EC_CM_INT ? INT_MAX : (long long)UINT32_MAX;
        if (!whole || *end || errno || v < lo || v > hi)
            goto bad;
        if (has_range(e) && (v < e->min || v > e->max))
            goto bad;
        if (e->type == EC_CM_INT)
            *(int *)field_at(base, e) = (int)v;
        else
            *(uint32_t *)field_at(base, e) = (uint32_t)v;
        return EC_OK;
    }
    case EC_CM_DOUBLE: {
        double v = whole ? strtod(text, &end) : 0;
        if (!whole || *end || !isfinite(v))
            goto bad;
        if (has_range(e) && (v < e->min || v > e->max))
            goto bad;
        *(double *)field_at(base, e) = v;
        return EC_OK;
    }
    default:
        snprintf(why, wn, "must be %s", expect);
        return EC_ERR_CONFIG;
    }
bad:
    snprintf(why, wn, "must be %s, got \"%s\"", expect, shown);
    return EC_ERR_CONFIG;
}

ec_err ec_cm_set(const ec_cm_entry *e, void *base, const char *text, ec_error *err)
{
    char why[CM_WHY_MAX];
    ec_err rc = ec_cm_parse_value(e, base, text, strlen(text), why, sizeof(why));
    if (rc)
        return ec_error_set(err, rc, "%s: %s", e->key, why);
    return EC_OK;
}

ec_err ec_cm_defaults(const ec_cm_entry *table, void *base, ec_error *err)
{
    for (const ec_cm_entry *e = table; e->key; e++) {
        ec_err rc = EC_OK;
        if (e->type == EC_CM_SECTION)
            rc = ec_cm_defaults(e->sub, base, err);
        else if (e->type != EC_CM_LIST && e->def)
            rc = ec_cm_set(e, base, e->def, err);
        if (rc)
            return rc;
    }
    return EC_OK;
}

void ec_cm_free_items(const ec_cm_entry *e, void *base)
{
    size_t *count = count_at(base, e);
    char *items = field_at(base, e);
    for (size_t i = 0; i < *count; i++)
        ec_cm_free(e->sub, items + i * e->stride);
    *count = 0;
}

/* ---- copy and free ---- */

static void null_strings(const ec_cm_entry *table, void *base)
{
    for (const ec_cm_entry *e = table; e->key; e++) {
        if (is_string(e)) {
            *(char **)field_at(base, e) = NULL;
        } else if (e->type == EC_CM_SECTION) {
            null_strings(e->sub, base);
        } else if (e->type == EC_CM_LIST) {
            char *items = field_at(base, e);
            for (size_t i = 0; i < *count_at(base, e); i++)
                null_strings(e->sub, items + i * e->stride);
        }
    }
}

static ec_err dup_strings(const ec_cm_entry *table, void *dst, const void *src, ec_error *err)
{
    for (const ec_cm_entry *e = table; e->key; e++) {
        ec_err rc = EC_OK;
        if (is_string(e)) {
            const char *s = *(char *const *)cfield_at(src, e);
            if (s && !(*(char **)field_at(dst, e) = strdup(s)))
                return ec_error_set(err, EC_ERR_NOMEM, "out of memory copying the configuration");
        } else if (e->type == EC_CM_SECTION) {
            rc = dup_strings(e->sub, dst, src, err);
        } else if (e->type == EC_CM_LIST) {
            char *di = field_at(dst, e);
            const char *si = cfield_at(src, e);
            for (size_t i = 0; i < *count_at(dst, e) && !rc; i++)
                rc = dup_strings(e->sub, di + i * e->stride, si + i * e->stride, err);
        }
        if (rc)
            return rc;
    }
    return EC_OK;
}

ec_err ec_cm_copy(const ec_cm_entry *table, void *dst, const void *src, ec_error *err)
{
    null_strings(table, dst);
    return dup_strings(table, dst, src, err);
}

void ec_cm_free(const ec_cm_entry *table, void *base)
{
    if (!base)
        return;
    for (const ec_cm_entry *e = table; e->key; e++) {
        if (is_string(e))
            free_string(e, field_at(base, e));
        else if (e->type == EC_CM_SECTION)
            ec_cm_free(e->sub, base);
        else if (e->type == EC_CM_LIST)
            ec_cm_free_items(e, base);
    }
}
