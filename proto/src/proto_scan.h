/* Private to ec_proto: byte-level checks on raw input, run before any
 * parser sees it (proto_scan.c). Depends on nothing but the error type. */
#ifndef EC_PROTO_SCAN_H
#define EC_PROTO_SCAN_H

#include <stdbool.h>
#include <stddef.h>

#include "edgecascade/err.h"

/* Deeper nesting (only possible inside unknown keys) is rejected outright:
 * it bounds the work and stays below msgpack-c's own stack of 32. */
#define EC_MP_MAX_DEPTH 16

/* Structure-only walk of raw msgpack: returns EC_OK and the byte length of the
 * first object, or EC_ERR_PROTO. Run before msgpack-c so a tiny header that
 * claims 2^32 elements cannot make it allocate gigabytes. */
ec_err ec_mp_scan(const unsigned char *p, size_t len, size_t *end, const char **why);

#endif
