/* Table-driven YAML-to-struct mapping; see config_map.h.
 *
 * We load the whole document with libyaml's document API (config files are
 * small and capped by the caller) and walk it against the table, so every
 * error can name the file, the 1-based line of the offending node and the full
 * key path ("tiers[1].provider"). The walk is driven by the table, never by
 * the document, so aliases that form cycles cannot make it recurse. */
#include "config_map.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#define CM_PATH_MAX    160
#define CM_WHY_MAX     200
#define CM_SHOW_MAX    40 /* bytes of a bad value quoted back in an error */
#define CM_COMMENT_COL 40 /* column of the comments in the example file */

typedef struct cm_ctx {
    yaml_document_t *doc;
    const ec_cm_entry *root; /* for hints that point into another section */
    const char *file;
    ec_error *err;
} cm_ctx;

static void *field_at(void *base, const ec_cm_entry *e)
{
    return (char *)base + e->offset;
}

static const void *cfield_at(const void *base, const ec_cm_entry *e)
{
    return (const char *)base + e->offset;
}

static size_t *count_at(void *base, const ec_cm_entry *e)
{
    return (size_t *)((char *)base + e->count_offset);
}

static size_t table_len(const ec_cm_entry *t)
{
    size_t n = 0;
    while (t[n].key)
        n++;
    return n;
}

static bool is_string(const ec_cm_entry *e)
{
    return e->type == EC_CM_STR || e->type == EC_CM_SECRET;
}

static bool is_number(const ec_cm_entry *e)
{
    return e->type == EC_CM_INT || e->type == EC_CM_U32 || e->type == EC_CM_DOUBLE;
}

static bool has_range(const ec_cm_entry *e)
{
    return is_number(e) && e->min < e->max;
}

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
static void show(char *out, size_t outlen, const char *s, size_t len)
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

static void join(char *out, size_t n, const char *path, const char *key)
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
static const char *closest(const char *word, const char *const *cands, size_t n)
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
static void unknown_key_hint(const cm_ctx *c, const ec_cm_entry *table, const char *key, char *out,
                             size_t n)
{
    out[0] = '\0';
    const char *keys[EC_CM_MAX_KEYS];
    size_t nk = 0;
    for (const ec_cm_entry *e = table; e->key && nk < EC_CM_MAX_KEYS; e++)
        keys[nk++] = e->key;
    const char *near = closest(key, keys, nk);
    if (near) {
        snprintf(out, n, " (did you mean \"%s\"?)", near);
        return;
    }
    char found[CM_PATH_MAX] = "";
    int hits = 0;
    if (table != c->root && ec_cm_find(c->root, key)) {
        snprintf(found, sizeof(found), "%s", key);
        hits++;
    }
    for (const ec_cm_entry *s = c->root; s->key; s++) {
        if (s->type != EC_CM_SECTION || s->sub == table || !ec_cm_find(s->sub, key))
            continue;
        snprintf(found, sizeof(found), "%s.%s", s->key, key);
        hits++;
    }
    if (hits == 1)
        snprintf(out, n, " (did you mean \"%s\"?)", found);
}

static bool parse_bool(const char *s, bool *out)
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
static void fmt_double(double v, char *buf, size_t n)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, v);
        if (strtod(buf, NULL) == v)
            return;
    }
}

static void fmt_bound(const ec_cm_entry *e, double v, char *buf, size_t n)
{
    if (e->type == EC_CM_DOUBLE)
        fmt_double(v, buf, n);
    else
        snprintf(buf, n, "%.0f", v);
}

/* What a valid value looks like: "an integer between 5 and 3600". */
static void expect_text(const ec_cm_entry *e, char *buf, size_t n)
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
    fmt_bound(e, e->min, lo, sizeof(lo));
    if (isinf(e->max)) {
        snprintf(buf, n, "%s >= %s", what, lo);
        return;
    }
    fmt_bound(e, e->max, hi, sizeof(hi));
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
    show(shown, sizeof(shown), text, len);
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
            const char *near = closest(text, e->choices, nc);
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
static ec_err parse_value(const ec_cm_entry *e, void *base, const char *text, size_t len, char *why,
                          size_t wn)
{
    if (is_string(e))
        return set_string(e, base, text, len, why, wn);

    char shown[64], expect[96];
    show(shown, sizeof(shown), text, len);
    expect_text(e, expect, sizeof(expect));
    bool whole = len > 0 && strlen(text) == len && !isspace((unsigned char)text[0]);
    char *end = NULL;
    errno = 0;
    switch (e->type) {
    case EC_CM_BOOL: {
        bool v;
        if (!whole || !parse_bool(text, &v))
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
    ec_err rc = parse_value(e, base, text, strlen(text), why, sizeof(why));
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

/* ---- walking a document ---- */

static ec_err fail(cm_ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static ec_err fail(cm_ctx *c, const yaml_node_t *n, const char *path, const char *fmt, ...)
{
    char msg[EC_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t line = n ? n->start_mark.line + 1 : 0;
    return ec_error_set(c->err, EC_ERR_CONFIG, "%s:%zu: %s%s%s", c->file, line, path,
                        path[0] ? ": " : "", msg);
}

ec_err ec_cm_fail(const ec_cm_where *w, const char *key, ec_error *err, const char *fmt, ...)
{
    char msg[EC_ERROR_MSG_LEN], path[CM_PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    size_t line = w->line;
    if (key) {
        join(path, sizeof(path), w->path, key);
        const ec_cm_entry *e = w->table ? ec_cm_find(w->table, key) : NULL;
        if (e && w->lines && w->lines[e - w->table])
            line = w->lines[e - w->table];
    } else {
        snprintf(path, sizeof(path), "%s", w->path);
    }
    if (line)
        return ec_error_set(err, EC_ERR_CONFIG, "%s:%zu: %s: %s", w->file, line, path, msg);
    return ec_error_set(err, EC_ERR_CONFIG, "%s: %s: %s", w->file, path, msg);
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *v = (const char *)n->data.scalar.value;
    return !v[0] || strcmp(v, "~") == 0 || strcmp(v, "null") == 0 || strcmp(v, "Null") == 0 ||
           strcmp(v, "NULL") == 0;
}

/* "a list", "a mapping", "nothing" or the quoted scalar, for "got ..." (never
 * used on a secret's scalar value: scalars are what strings accept). */
static void got_text(const yaml_node_t *n, char *buf, size_t len)
{
    if (n->type == YAML_MAPPING_NODE) {
        snprintf(buf, len, "a mapping");
    } else if (n->type == YAML_SEQUENCE_NODE) {
        snprintf(buf, len, "a list");
    } else if (is_null(n)) {
        snprintf(buf, len, "nothing");
    } else {
        char shown[64];
        show(shown, sizeof(shown), (const char *)n->data.scalar.value, n->data.scalar.length);
        snprintf(buf, len, "\"%s\"", shown);
    }
}

static ec_err apply_map(cm_ctx *c, const ec_cm_entry *table, void *base, yaml_node_t *map,
                        const char *path, size_t *given_out);

static void free_items(const ec_cm_entry *e, void *base)
{
    size_t *count = count_at(base, e);
    char *items = field_at(base, e);
    for (size_t i = 0; i < *count; i++)
        ec_cm_free(e->sub, items + i * e->stride);
    *count = 0;
}

static ec_err apply_list(cm_ctx *c, const ec_cm_entry *e, void *base, yaml_node_t *seq,
                         const char *path)
{
    char got[80];
    got_text(seq, got, sizeof(got));
    if (seq->type != YAML_SEQUENCE_NODE)
        return fail(c, seq, path, "must be a list, got %s", got);
    yaml_node_item_t *first = seq->data.sequence.items.start;
    size_t n = (size_t)(seq->data.sequence.items.top - first);
    if (n < e->min_items)
        return fail(c, seq, path, "must have at least %zu item%s", e->min_items,
                    e->min_items == 1 ? "" : "s");
    if (n > e->max_items)
        return fail(c, yaml_document_get_node(c->doc, first[e->max_items]), path,
                    "at most %zu items allowed, got %zu", e->max_items, n);

    /* The file's list replaces whatever was there (the defaults) as a whole. */
    free_items(e, base);
    size_t *count = count_at(base, e);
    char *items = field_at(base, e);
    for (size_t i = 0; i < n; i++) {
        yaml_node_t *it = yaml_document_get_node(c->doc, first[i]);
        char ipath[CM_PATH_MAX + 24];
        snprintf(ipath, sizeof(ipath), "%s[%zu]", path, i);
        got_text(it, got, sizeof(got));
        if (it->type != YAML_MAPPING_NODE)
            return fail(c, it, ipath, "must be a mapping of keys, got %s", got);
        void *item = items + i * e->stride;
        memset(item, 0, e->stride);
        *count = i + 1; /* from here on ec_cm_free releases what the item holds */
        ec_err rc = ec_cm_defaults(e->sub, item, c->err);
        if (rc)
            return rc;
        size_t lines[EC_CM_MAX_KEYS] = {0};
        rc = apply_map(c, e->sub, item, it, ipath, lines);
        if (rc)
            return rc;
        if (e->finish) {
            ec_cm_where w = {c->file, ipath, it->start_mark.line + 1, e->sub, lines};
            rc = e->finish(items, i, &w, c->err);
            if (rc)
                return rc;
        }
    }
    return EC_OK;
}

static ec_err apply_value(cm_ctx *c, const ec_cm_entry *e, void *base, yaml_node_t *v,
                          const char *path)
{
    char got[80], expect[96], why[CM_WHY_MAX];
    got_text(v, got, sizeof(got));
    switch (e->type) {
    case EC_CM_SECTION:
        if (v->type != YAML_MAPPING_NODE)
            return fail(c, v, path, "must be a mapping of keys, got %s", got);
        return apply_map(c, e->sub, base, v, path, NULL);
    case EC_CM_LIST:
        return apply_list(c, e, base, v, path);
    default:
        break;
    }
    if (v->type != YAML_SCALAR_NODE) {
        expect_text(e, expect, sizeof(expect));
        return fail(c, v, path, "must be %s, got %s", expect, got);
    }
    ec_err rc = parse_value(e, base, (const char *)v->data.scalar.value, v->data.scalar.length, why,
                            sizeof(why));
    if (rc == EC_ERR_NOMEM)
        return ec_error_set(c->err, rc, "%s: out of memory", c->file);
    if (rc)
        return fail(c, v, path, "%s", why);
    return EC_OK;
}

/* Applies one YAML map to table. given_out (EC_CM_MAX_KEYS, zeroed) receives
 * the line each key was given on with a non-null value. */
static ec_err apply_map(cm_ctx *c, const ec_cm_entry *table, void *base, yaml_node_t *map,
                        const char *path, size_t *given_out)
{
    size_t n = table_len(table);
    if (n > EC_CM_MAX_KEYS)
        return ec_error_set(c->err, EC_ERR_INVAL, "config table has more than %d keys",
                            EC_CM_MAX_KEYS);
    size_t seen[EC_CM_MAX_KEYS] = {0}, given[EC_CM_MAX_KEYS] = {0};
    char child[CM_PATH_MAX];
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top;
         p++) {
        yaml_node_t *k = yaml_document_get_node(c->doc, p->key);
        yaml_node_t *v = yaml_document_get_node(c->doc, p->value);
        if (k->type != YAML_SCALAR_NODE) {
            char got[80];
            got_text(k, got, sizeof(got));
            return fail(c, k, path, "keys must be plain names, got %s", got);
        }
        const char *key = (const char *)k->data.scalar.value;
        size_t klen = k->data.scalar.length;
        char shown[64];
        show(shown, sizeof(shown), key, klen);
        join(child, sizeof(child), path, shown);
        const ec_cm_entry *e = strlen(key) == klen ? ec_cm_find(table, key) : NULL;
        if (!e) {
            char hint[CM_PATH_MAX + 24];
            unknown_key_hint(c, table, shown, hint, sizeof(hint));
            return fail(c, k, child, "unknown key%s", hint);
        }
        size_t i = (size_t)(e - table);
        size_t line = k->start_mark.line + 1;
        if (seen[i])
            return fail(c, k, child, "duplicate key (first given on line %zu)", seen[i]);
        seen[i] = line;
        if (is_null(v))
            continue; /* `key:` with no value keeps the default */
        ec_err rc = apply_value(c, e, base, v, child);
        if (rc)
            return rc;
        given[i] = line;
    }
    for (size_t i = 0; i < n; i++) {
        if ((table[i].flags & EC_CM_REQUIRED) && !given[i]) {
            join(child, sizeof(child), path, table[i].key);
            return fail(c, map, child, "required");
        }
    }
    if (given_out)
        memcpy(given_out, given, n * sizeof(size_t));
    return EC_OK;
}

static ec_err syntax_error(const yaml_parser_t *p, const char *file, const char *text, size_t len,
                           ec_error *err)
{
    if (p->error == YAML_MEMORY_ERROR)
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory while parsing", file);
    size_t line = p->problem_mark.line + 1;
    if (p->error == YAML_READER_ERROR) { /* reader errors carry a byte offset, not a mark */
        line = 1;
        for (size_t i = 0; text && i < p->problem_offset && i < len; i++)
            line += text[i] == '\n';
    }
    const char *problem = p->problem ? p->problem : "syntax error";
    if (p->context)
        return ec_error_set(err, EC_ERR_CONFIG, "%s:%zu: invalid YAML: %s (%s on line %zu)", file,
                            line, problem, p->context, p->context_mark.line + 1);
    return ec_error_set(err, EC_ERR_CONFIG, "%s:%zu: invalid YAML: %s", file, line, problem);
}

ec_err ec_cm_apply(const ec_cm_entry *table, void *base, const char *file, const char *text,
                   size_t len, ec_error *err)
{
    yaml_parser_t parser;
    yaml_document_t doc, next;
    bool have_doc = false;
    ec_err rc = EC_OK;
    if (!yaml_parser_initialize(&parser))
        return ec_error_set(err, EC_ERR_NOMEM, "%s: out of memory", file);
    yaml_parser_set_input_string(&parser, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&parser, &doc)) {
        rc = syntax_error(&parser, file, text, len, err);
        goto out;
    }
    have_doc = true;

    cm_ctx c = {&doc, table, file, err};
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    if (!root)
        goto out; /* empty file: every default stands */
    if (!is_null(root)) {
        char got[80];
        got_text(root, got, sizeof(got));
        if (root->type != YAML_MAPPING_NODE) {
            rc = fail(&c, root, "", "the top level must be a mapping of keys, got %s", got);
            goto out;
        }
        rc = apply_map(&c, table, base, root, "", NULL);
        if (rc)
            goto out;
    }
    /* A second document would be silently ignored by a single load: refuse it. */
    if (!yaml_parser_load(&parser, &next)) {
        rc = syntax_error(&parser, file, text, len, err);
        goto out;
    }
    yaml_node_t *extra = yaml_document_get_root_node(&next);
    if (extra)
        rc = ec_error_set(err, EC_ERR_CONFIG, "%s:%zu: only one YAML document is allowed", file,
                          next.start_mark.line + 1);
    yaml_document_delete(&next);
out:
    if (have_doc)
        yaml_document_delete(&doc);
    yaml_parser_delete(&parser);
    return rc;
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
            free_items(e, base);
    }
}

/* ---- the documented example ---- */

/* A string as YAML: plain when that reads back unchanged and unambiguous,
 * else double-quoted. */
static void yaml_quote(const char *s, char *buf, size_t n)
{
    bool plain = s[0] != '\0';
    for (const char *p = s; *p && plain; p++)
        plain = isalnum((unsigned char)*p) || strchr("._/:@+-", *p);
    if (plain)
        plain = isalnum((unsigned char)s[0]) || strchr("./_", s[0]);
    bool b;
    char *end;
    if (plain && (parse_bool(s, &b) || strcasecmp(s, "null") == 0))
        plain = false;
    if (plain && (strtod(s, &end), *end == '\0'))
        plain = false; /* a string that looks like a number */
    if (plain) {
        snprintf(buf, n, "%s", s);
        return;
    }
    size_t o = 0;
    buf[o++] = '"';
    for (const char *p = s; *p && o + 6 < n; p++) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"' || ch == '\\')
            o += (size_t)snprintf(buf + o, n - o, "\\%c", ch);
        else if (ch < 0x20 || ch == 0x7f)
            o += (size_t)snprintf(buf + o, n - o, "\\x%02x", ch);
        else
            buf[o++] = (char)ch;
    }
    buf[o++] = '"';
    buf[o] = '\0';
}

static void fmt_value(const ec_cm_entry *e, const void *base, char *buf, size_t n)
{
    const void *f = cfield_at(base, e);
    switch (e->type) {
    case EC_CM_STR: {
        const char *s = *(char *const *)f;
        yaml_quote(s ? s : "", buf, n);
        break;
    }
    case EC_CM_SECRET:
        snprintf(buf, n, "\"\"");
        break;
    case EC_CM_INT:
        snprintf(buf, n, "%d", *(const int *)f);
        break;
    case EC_CM_U32:
        snprintf(buf, n, "%" PRIu32, *(const uint32_t *)f);
        break;
    case EC_CM_DOUBLE:
        fmt_double(*(const double *)f, buf, n);
        break;
    case EC_CM_BOOL:
        snprintf(buf, n, "%s", *(const bool *)f ? "true" : "false");
        break;
    default:
        buf[0] = '\0';
    }
}

static bool is_default(const ec_cm_entry *e, const void *base)
{
    const void *f = cfield_at(base, e);
    bool b = false;
    if (!e->def)
        return false;
    switch (e->type) {
    case EC_CM_STR: {
        const char *s = *(char *const *)f;
        return strcmp(s ? s : "", e->def) == 0;
    }
    case EC_CM_SECRET:
        return true;
    case EC_CM_INT:
        /* e->def is a default from the table, checked by the table tests. */
        return *(const int *)f == atoi(e->def); // NOLINT(cert-err34-c)
    case EC_CM_U32:
        return *(const uint32_t *)f == (uint32_t)strtoul(e->def, NULL, 10);
    case EC_CM_DOUBLE:
        return *(const double *)f == strtod(e->def, NULL);
    case EC_CM_BOOL:
        return parse_bool(e->def, &b) && *(const bool *)f == b;
    default:
        return false;
    }
}

static void build_comment(const ec_cm_entry *e, char *buf, size_t n)
{
    size_t o = 0;
#define ADD(...) (o += (size_t)snprintf(buf + o, o < n ? n - o : 0, __VA_ARGS__), o = o < n ? o : n)
    buf[0] = '\0';
    ADD("%s", e->desc ? e->desc : "");
    if (e->choices) {
        ADD(" (");
        for (size_t i = 0; e->choices[i]; i++)
            ADD("%s%s", i ? " | " : "", e->choices[i]);
        ADD(")");
    }
    if (has_range(e)) {
        char lo[32], hi[32];
        fmt_bound(e, e->min, lo, sizeof(lo));
        if (isinf(e->max)) {
            ADD(" (>= %s)", lo);
        } else {
            fmt_bound(e, e->max, hi, sizeof(hi));
            ADD(" (%s..%s)", lo, hi);
        }
    }
    if (!e->def && e->def_doc)
        ADD(" [default: %s]", e->def_doc);
    if (e->flags & EC_CM_REQUIRED)
        ADD(" [required]");
    if (e->type == EC_CM_SECRET)
        ADD(" [secret: never printed]");
#undef ADD
}

static void write_line(FILE *out, const char *text, const char *comment)
{
    int w = fprintf(out, "%s", text);
    if (comment && comment[0]) {
        int pad = CM_COMMENT_COL - w;
        fprintf(out, "%*s# %s", pad < 2 ? 2 : pad, "", comment);
    }
    fputc('\n', out);
}

/* One list item: the first item documents every key; later ones show only
 * what differs from the per-key defaults, as a person would write them. */
static void write_item(FILE *out, const ec_cm_entry *sub, const void *item, int indent, bool full)
{
    char line[512], val[256], comment[512];
    bool first = true;
    for (const ec_cm_entry *e = sub; e->key; e++) {
        if (!is_string(e) && !is_number(e) && e->type != EC_CM_BOOL)
            continue;
        if (!full && is_default(e, item))
            continue;
        fmt_value(e, item, val, sizeof(val));
        snprintf(line, sizeof(line), "%*s%s%s: %s", indent, "", first ? "- " : "  ", e->key, val);
        build_comment(e, comment, sizeof(comment));
        write_line(out, line, full ? comment : NULL);
        first = false;
    }
}

static void write_table(FILE *out, const ec_cm_entry *table, const void *base, int indent)
{
    char line[512], val[256], comment[512];
    for (const ec_cm_entry *e = table; e->key; e++) {
        build_comment(e, comment, sizeof(comment));
        if (e->type == EC_CM_SECTION || e->type == EC_CM_LIST) {
            if (indent == 0)
                fputc('\n', out);
            snprintf(line, sizeof(line), "%*s%s:", indent, "", e->key);
            write_line(out, line, comment);
            if (e->type == EC_CM_SECTION) {
                write_table(out, e->sub, base, indent + 2);
            } else {
                const char *items = cfield_at(base, e);
                size_t count = *(const size_t *)((const char *)base + e->count_offset);
                for (size_t i = 0; i < count; i++)
                    write_item(out, e->sub, items + i * e->stride, indent + 2, i == 0);
            }
            continue;
        }
        fmt_value(e, base, val, sizeof(val));
        /* No fixed default (derived or optional): show the effective value
         * commented out, so that uncommenting it is a deliberate override. */
        snprintf(line, sizeof(line), "%*s%s%s: %s", indent, "", e->def ? "" : "# ", e->key, val);
        write_line(out, line, comment);
    }
}

void ec_cm_write(FILE *out, const ec_cm_entry *table, const void *base)
{
    write_table(out, table, base, 0);
}
