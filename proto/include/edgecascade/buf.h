/* Growable byte buffer with a hard cap (after curl's dynbuf): every buffer that
 * takes outside input has a limit, and going past it is an error, not a realloc. */
#ifndef EC_BUF_H
#define EC_BUF_H

#include <stddef.h>
#include "edgecascade/err.h"

typedef struct ec_buf {
    char *data; /* always NUL-terminated when len > 0 or after ec_buf_cstr */
    size_t len;
    size_t cap;
    size_t max; /* 0 means EC_BUF_DEFAULT_MAX */
} ec_buf;

#define EC_BUF_DEFAULT_MAX (16u * 1024u * 1024u)

void ec_buf_init(ec_buf *b, size_t max);
ec_err ec_buf_append(ec_buf *b, const void *data, size_t len);
ec_err ec_buf_printf(ec_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
const char *ec_buf_cstr(ec_buf *b); /* "" for an empty buffer */
void ec_buf_reset(ec_buf *b);       /* len = 0, keeps memory */
void ec_buf_free(ec_buf *b);
/* Hands the memory to the caller (who frees it) and leaves b empty. */
char *ec_buf_take(ec_buf *b, size_t *len);

#endif
