/* Table-driven YAML-to-struct mapping: the documented example (ec_cm_write).
 *
 * Writes a struct as YAML with every key, its value and a comment made of the
 * table's description, range, choices and documented default; this is how
 * deploy/edgecascade.example.yaml and `--help` stay in step with the table.
 * It only reads the table and the struct, so it is apart from the parsing in
 * config_map.c and config_map_yaml.c. */
#include "config_map_internal.h"

#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CM_COMMENT_COL 40 /* column of the comments in the example file */

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
    if (plain && (ec_cm_parse_bool(s, &b) || strcasecmp(s, "null") == 0))
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
        ec_cm_fmt_double(*(const double *)f, buf, n);
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
        return ec_cm_parse_bool(e->def, &b) && *(const bool *)f == b;
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
        ec_cm_fmt_bound(e, e->min, lo, sizeof(lo));
        if (isinf(e->max)) {
            ADD(" (>= %s)", lo);
        } else {
            ec_cm_fmt_bound(e, e->max, hi, sizeof(hi));
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
