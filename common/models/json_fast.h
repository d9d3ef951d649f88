/* A strict, allocation-free JSON tokenizer for the fast path of parse_chat
 * (provider_openai.c): one pass over the body into a flat array of tokens
 * that point into the text, so reading the handful of fields an answer needs
 * costs no tree of heap nodes (cJSON allocates every value and every key).
 *
 * It accepts only a subset of what cJSON accepts: RFC 8259 JSON without
 * \u escapes, without backslashes in keys, numbers of at most 63 bytes
 * (cJSON's own buffer) and nesting of at most 64 levels. On anything else,
 * or when tokens run out, it says no and the caller takes the cJSON path,
 * which then also produces the error message a malformed body deserves.
 * Within that subset a token's value is what cJSON would have decoded. */
#ifndef EC_JSON_FAST_H
#define EC_JSON_FAST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum ec_jtype {
    EC_JT_OBJ,
    EC_JT_ARR,
    EC_JT_STR,
    EC_JT_NUM,
    EC_JT_TRUE,
    EC_JT_FALSE,
    EC_JT_NULL,
} ec_jtype;

/* Tokens lie in document order. An object's children are its keys (a key's
 * value is the token right after it), an array's its elements; next links
 * siblings. A string's span is between its quotes, still escaped. */
typedef struct ec_jtok {
    uint8_t type;
    bool esc; /* a string with backslash escapes */
    uint32_t start, len;
    int32_t child, next; /* -1: none */
} ec_jtok;

typedef struct ec_jdoc {
    const char *text;
    ec_jtok *tok;
    size_t cap, used;
} ec_jdoc;

/* Tokenizes text[0..n) into tok[0..cap): true when the whole text is one
 * value of the subset above (whitespace around it allowed); the root is
 * tok[0]. */
bool ec_jdoc_parse(ec_jdoc *d, const char *text, size_t n, ec_jtok *tok, size_t cap);
/* The value of obj's first member named key (cJSON's "first one wins"), or
 * -1 when obj is -1, not an object or has no such key. */
int ec_jdoc_get(const ec_jdoc *d, int obj, const char *key);
/* Whether token i is of type t (false for -1). */
bool ec_jdoc_is(const ec_jdoc *d, int i, ec_jtype t);
/* A string token's decoded bytes, NUL-terminated, in malloc'd memory (the
 * caller frees), *len set; NULL when out of memory. */
char *ec_jdoc_strdup(const ec_jdoc *d, int i, size_t *len);
/* A number token's value, as strtod reads it (what cJSON stores). */
double ec_jdoc_num(const ec_jdoc *d, int i);

#endif
