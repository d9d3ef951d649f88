/* What the three parts of the table walker share (config_map.c: setting
 * values, defaults, copy and free; config_map_yaml.c: reading a document;
 * config_map_write.c: the documented example). Private to common/config;
 * the table's own interface is config_map.h. */
#ifndef EC_CONFIG_MAP_INTERNAL_H
#define EC_CONFIG_MAP_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "config_map.h"

#define CM_PATH_MAX 160
#define CM_WHY_MAX  200

static inline void *field_at(void *base, const ec_cm_entry *e)
{
    return (char *)base + e->offset;
}

static inline const void *cfield_at(const void *base, const ec_cm_entry *e)
{
    return (const char *)base + e->offset;
}

static inline size_t *count_at(void *base, const ec_cm_entry *e)
{
    return (size_t *)((char *)base + e->count_offset);
}

static inline size_t table_len(const ec_cm_entry *t)
{
    size_t n = 0;
    while (t[n].key)
        n++;
    return n;
}

static inline bool is_string(const ec_cm_entry *e)
{
    return e->type == EC_CM_STR || e->type == EC_CM_SECRET;
}

static inline bool is_number(const ec_cm_entry *e)
{
    return e->type == EC_CM_INT || e->type == EC_CM_U32 || e->type == EC_CM_DOUBLE;
}

static inline bool has_range(const ec_cm_entry *e)
{
    return is_number(e) && e->min < e->max;
}

/* ---- config_map.c ---- */

/* Copies len bytes of s for quoting in an error: at most 40 bytes (cut on a
 * UTF-8 boundary), control characters and quotes as '?'. */
void ec_cm_show(char *out, size_t outlen, const char *s, size_t len);
/* "path.key", or "key" at the top level. */
void ec_cm_join(char *out, size_t n, const char *path, const char *key);
/* The candidate closest to word, if close enough to be a likely typo; else NULL. */
const char *ec_cm_closest(const char *word, const char *const *cands, size_t n);
/* true/yes/on, false/no/off (any case); false when s is neither. */
bool ec_cm_parse_bool(const char *s, bool *out);
/* Shortest text that reads back as exactly v. */
void ec_cm_fmt_double(double v, char *buf, size_t n);
/* A range bound of e: as a double for DOUBLE entries, else as an integer. */
void ec_cm_fmt_bound(const ec_cm_entry *e, double v, char *buf, size_t n);
/* What a valid value of e looks like: "an integer between 5 and 3600". */
void ec_cm_expect_text(const ec_cm_entry *e, char *buf, size_t n);
/* Parses text (len bytes; a "\0" escape can put NUL inside) into e's field.
 * On a bad value writes why (no path) and returns EC_ERR_CONFIG. */
ec_err ec_cm_parse_value(const ec_cm_entry *e, void *base, const char *text, size_t len, char *why,
                         size_t wn);
/* Frees the items of the LIST entry e and sets its count to 0. */
void ec_cm_free_items(const ec_cm_entry *e, void *base);

#endif
