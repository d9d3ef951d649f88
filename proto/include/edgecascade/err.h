/* One error convention for the whole project: functions return an ec_err code
 * (EC_OK is 0) and, when the caller passes an ec_error, a human sentence that
 * says what was wrong and where. Destroy/clear functions accept NULL. */
#ifndef EC_ERR_H
#define EC_ERR_H

#include <stddef.h>

typedef enum ec_err {
    EC_OK = 0,
    EC_ERR_NOMEM,       /* allocation failed */
    EC_ERR_INVAL,       /* bad argument or bad input value */
    EC_ERR_PROTO,       /* malformed wire message */
    EC_ERR_TOOBIG,      /* input over a documented size limit */
    EC_ERR_CONFIG,      /* bad configuration */
    EC_ERR_IO,          /* file or socket error */
    EC_ERR_TIMEOUT,     /* deadline passed */
    EC_ERR_HTTP,        /* HTTP transport or status error */
    EC_ERR_MQTT,        /* broker or client error */
    EC_ERR_DB,          /* SQLite error */
    EC_ERR_BUSY,        /* over capacity: caller should retry later */
    EC_ERR_UNAVAILABLE, /* upstream not reachable */
    EC_ERR_NOTFOUND,    /* no such item */
    EC_ERR__COUNT
} ec_err;

#define EC_ERROR_MSG_LEN 256

typedef struct ec_error {
    ec_err code;
    char msg[EC_ERROR_MSG_LEN];
} ec_error;

/* Short stable name of a code, e.g. "proto", used as the wire error code. */
const char *ec_strerror(ec_err code);

/* Records code and a printf-style message into e (which may be NULL) and
 * returns code, so callers can write `return ec_error_set(err, EC_ERR_INVAL, ...)`. */
ec_err ec_error_set(ec_error *e, ec_err code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message with context ("tiers[1]: ..."). */
void ec_error_prefix(ec_error *e, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

void ec_error_clear(ec_error *e);

#endif
