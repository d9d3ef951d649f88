/* Table-driven YAML-to-struct mapping: reading a YAML document against a
 * table (ec_cm_apply) and the errors that point into it (ec_cm_fail).
 *
 * We load the whole document with libyaml's document API (config files are
 * small and capped by the caller) and walk it against the table, so every
 * error can name the file, the 1-based line of the offending node and the full
 * key path ("tiers[1].provider"). The walk is driven by the table, never by
 * the document, so aliases that form cycles cannot make it recurse. It is
 * apart from config_map.c because it is the only part that knows libyaml's
 * node tree; setting a value from its text is config_map.c's. */
#include "config_map_internal.h"

#include <stdarg.h>
#include <string.h>
#include <yaml.h>

typedef struct cm_ctx {
    yaml_document_t *doc;
    const ec_cm_entry *root; /* for hints that point into another section */
    const char *file;
    ec_error *err;
} cm_ctx;

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
    const char *near = ec_cm_closest(key, keys, nk);
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
        ec_cm_join(path, sizeof(path), w->path, key);
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
        ec_cm_show(shown, sizeof(shown), (const char *)n->data.scalar.value, n->data.scalar.length);
        snprintf(buf, len, "\"%s\"", shown);
    }
}

static ec_err apply_map(cm_ctx *c, const ec_cm_entry *table, void *base, yaml_node_t *map,
                        const char *path, size_t *given_out);

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
    ec_cm_free_items(e, base);
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
        ec_cm_expect_text(e, expect, sizeof(expect));
        return fail(c, v, path, "must be %s, got %s", expect, got);
    }
    ec_err rc = ec_cm_parse_value(e, base, (const char *)v->data.scalar.value,
                                  v->data.scalar.length, why, sizeof(why));
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
        ec_cm_show(shown, sizeof(shown), key, klen);
        ec_cm_join(child, sizeof(child), path, shown);
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
            ec_cm_join(child, sizeof(child), path, table[i].key);
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
