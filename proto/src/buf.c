#include "edgecascade/buf.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void ec_buf_init(ec_buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max ? max : EC_BUF_DEFAULT_MAX;
}

static ec_err grow(ec_buf *b, size_t need)
{
    size_t max = b->max ? b->max : EC_BUF_DEFAULT_MAX;
    if (need > max)
        return EC_ERR_TOOBIG;
    if (need + 1 <= b->cap)
        return EC_OK;
    /* 1 KiB first: a Result or an InferRequest then fits at once or after
     * one doubling (from 256 it took three reallocs, bench/instr), and the
     * block still comes from glibc's per-thread cache (up to 1,032 bytes). */
    size_t cap = b->cap ? b->cap : 1024;
    while (cap < need + 1)
        cap *= 2;
    if (cap > max + 1)
        cap = max + 1;
    char *p = realloc(b->data, cap);
    if (!p)
        return EC_ERR_NOMEM;
    b->data = p;
    b->cap = cap;
    return EC_OK;
}

ec_err ec_buf_append(ec_buf *b, const void *data, size_t len)
{
    if (len > SIZE_MAX - b->len - 1)
        return EC_ERR_TOOBIG;
    ec_err rc = grow(b, b->len + len);
    if (rc)
        return rc;
    if (len)
        memcpy(b->data + b->len, data, len);
    b->len += len;
    b->data[b->len] = '\0';
    return EC_OK;
}

ec_err ec_buf_printf(ec_buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return EC_ERR_INVAL;
    ec_err rc = grow(b, b->len + (size_t)n);
    if (rc)
        return rc;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return EC_OK;
}

const char *ec_buf_cstr(ec_buf *b)
{
    return b->data ? b->data : "";
}

void ec_buf_reset(ec_buf *b)
{
    b->len = 0;
    if (b->data)
        b->data[0] = '\0';
}

void ec_buf_free(ec_buf *b)
{
    if (!b)
        return;
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *ec_buf_take(ec_buf *b, size_t *len)
{
    char *p = b->data;
    if (len)
        *len = b->len;
    if (!p)
        p = calloc(1, 1);
    b->data = NULL;
    b->len = b->cap = 0;
    return p;
}
