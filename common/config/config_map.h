/* Table-driven YAML-to-struct mapping (private to ec_common).
 *
 * A table is an array of ec_cm_entry terminated by an entry whose key is NULL.
 * Each entry names a key, its type, the offset of its field in the target
 * struct, its default (as YAML text, so defaults, parsing and the example file
 * share one code path) and a description. SECTION entries are nested maps whose
 * fields live in the same struct; a LIST entry is a sequence of maps stored in
 * a fixed array of `stride`-byte items with a size_t count beside it.
 *
 * Strings are heap-owned by the struct: setting one frees the old value, and
 * ec_cm_free releases every string the table describes. A YAML null (`key:` with
 * no value, `~`, `null`) means "not given": the field keeps its current value. */
#ifndef EC_CONFIG_MAP_H
#define EC_CONFIG_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "edgecascade/err.h"

typedef enum ec_cm_type {
    EC_CM_STR,     /* char * */
    EC_CM_SECRET,  /* char *, never echoed in errors, shown empty in the example */
    EC_CM_INT,     /* int */
    EC_CM_U32,     /* uint32_t */
    EC_CM_DOUBLE,  /* double */
    EC_CM_BOOL,    /* bool */
    EC_CM_SECTION, /* nested map, fields in the same struct (sub) */
    EC_CM_LIST,    /* sequence of maps (sub describes one item) */
} ec_cm_type;

enum {
    EC_CM_REQUIRED = 1u << 0, /* a list item must give this key */
    EC_CM_NONEMPTY = 1u << 1, /* a string must not be "" */
};

/* The most keys one table (one YAML map) may have. */
#define EC_CM_MAX_KEYS 32

struct ec_cm_entry;

/* Where a list item was read; handed to the list's finish hook for errors. */
typedef struct ec_cm_where {
    const char *file;                /* "edge.yaml", "<string>", "<defaults>" */
    const char *path;                /* "tiers[1]" */
    size_t line;                     /* 1-based line of the item, 0 when not from a file */
    const struct ec_cm_entry *table; /* the item table */
    const size_t *lines;             /* per item-table entry: line its key was given on, or 0 */
} ec_cm_where;

/* Completes item idx of a list after its keys were applied (derived fields,
 * checks across items). Errors should be made with ec_cm_fail. */
typedef ec_err (*ec_cm_finish_fn)(void *items, size_t idx, const ec_cm_where *w, ec_error *err);

/* Extra check of a string value: NULL when fine, else why not ("must not contain '/'"). */
typedef const char *(*ec_cm_check_fn)(const char *value);

typedef struct ec_cm_entry {
    ec_cm_type type;
    const char *key;
    size_t offset;       /* of the field (STR..BOOL) or of the item array (LIST) */
    const char *def;     /* default as YAML text; NULL: none (derived, required or unset) */
    const char *def_doc; /* how a NULL default is documented, e.g. "edgecascade/<site>" */
    const char *desc;
    double min, max; /* numbers: inclusive range, used when min < max (max may be INFINITY) */
    const char *const *choices; /* strings: the allowed values, NULL-terminated */
    ec_cm_check_fn check;
    size_t max_len; /* strings: longest allowed value in bytes, 0 = no limit */
    unsigned flags;
    const struct ec_cm_entry *sub; /* SECTION, LIST */
    /* LIST only */
    size_t count_offset; /* of the size_t item count */
    size_t stride;       /* sizeof one item */
    size_t min_items, max_items;
    ec_cm_finish_fn finish;
} ec_cm_entry;

/* Sets every field of table (and its sections) that has a default; lists are
 * left alone. Existing strings are freed and replaced. */
ec_err ec_cm_defaults(const ec_cm_entry *table, void *base, ec_error *err);

/* Entry called key in table (not searching sections), or NULL. */
const ec_cm_entry *ec_cm_find(const ec_cm_entry *table, const char *key);

/* Parses text as e's value into base, with e's type, range and checks. */
ec_err ec_cm_set(const ec_cm_entry *e, void *base, const char *text, ec_error *err);

/* Parses the YAML text (a map at the top, or empty) and applies it to base.
 * file names the source in errors: "file:line: path: what". A list given in the
 * text replaces the existing items entirely. On error base stays freeable but
 * may be partly updated. */
ec_err ec_cm_apply(const ec_cm_entry *table, void *base, const char *file, const char *text,
                   size_t len, ec_error *err);

/* Deep copy: dst must be a byte copy of src; every string becomes dst's own.
 * On failure dst owns only what it copied, so ec_cm_free(dst) is safe. */
ec_err ec_cm_copy(const ec_cm_entry *table, void *dst, const void *src, ec_error *err);

/* Frees every string the table describes and sets it NULL; empties lists. */
void ec_cm_free(const ec_cm_entry *table, void *base);

/* Writes base as documented YAML: every key with its value and a comment made
 * of the description, range, choices and documented default. Keys without a
 * default outside lists are written commented out. Secrets are written "". */
void ec_cm_write(FILE *out, const ec_cm_entry *table, const void *base);

/* Records "file:line: path.key: message" in err (line from w->lines for key,
 * else the item's line; key may be NULL) and returns EC_ERR_CONFIG. */
ec_err ec_cm_fail(const ec_cm_where *w, const char *key, ec_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* config_table.c's top-level table (config_reload.c walks it by key path). */
const ec_cm_entry *ec_config_root_table(void);

#endif
