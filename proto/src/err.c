#include "edgecascade/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static const char *const names[EC_ERR__COUNT] = {
    [EC_OK] = "ok",
    [EC_ERR_NOMEM] = "nomem",
    [EC_ERR_INVAL] = "bad_request",
    [EC_ERR_PROTO] = "bad_request",
    [EC_ERR_TOOBIG] = "too_large",
    [EC_ERR_CONFIG] = "config",
    [EC_ERR_IO] = "io",
    [EC_ERR_TIMEOUT] = "timeout",
    [EC_ERR_HTTP] = "upstream",
    [EC_ERR_MQTT] = "mqtt",
    [EC_ERR_DB] = "store",
    [EC_ERR_BUSY] = "busy",
    [EC_ERR_UNAVAILABLE] = "unavailable",
    [EC_ERR_NOTFOUND] = "not_found",
};

const char *ec_strerror(ec_err code)
{
    if ((int)code < 0 || code >= EC_ERR__COUNT)
        return "internal";
    return names[code];
}

ec_err ec_error_set(ec_error *e, ec_err code, const char *fmt, ...)
{
    if (!e)
        return code;
    e->code = code;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return code;
}

void ec_error_prefix(ec_error *e, const char *fmt, ...)
{
    if (!e)
        return;
    char prefix[EC_ERROR_MSG_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    char old[EC_ERROR_MSG_LEN];
    memcpy(old, e->msg, sizeof(old));
    size_t n = strlen(prefix);
    if (n >= sizeof(e->msg))
        n = sizeof(e->msg) - 1;
    memcpy(e->msg, prefix, n);
    size_t rest = strnlen(old, sizeof(old));
    if (rest > sizeof(e->msg) - 1 - n)
        rest = sizeof(e->msg) - 1 - n;
    memcpy(e->msg + n, old, rest);
    e->msg[n + rest] = '\0';
}

void ec_error_clear(ec_error *e)
{
    if (!e)
        return;
    e->code = EC_OK;
    e->msg[0] = '\0';
}
