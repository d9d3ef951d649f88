/* Blocking HTTP client over one libcurl easy handle per worker thread, so
 * connections to the model server are reused. Response bodies are capped. */
#ifndef EC_HTTP_H
#define EC_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/buf.h"
#include "edgecascade/err.h"

#define EC_HTTP_MAX_HEADERS 8
#define EC_HTTP_MAX_BODY    (4u * 1024u * 1024u)

typedef struct ec_http_request {
    const char *method;                 /* "GET" or "POST" */
    char *url;                          /* owned */
    char *headers[EC_HTTP_MAX_HEADERS]; /* owned "Name: value" lines */
    size_t n_headers;
    ec_buf body; /* request body (POST) */
    uint32_t timeout_ms;
    uint32_t connect_timeout_ms; /* 0 = min(timeout, 5 s) */
} ec_http_request;

typedef struct ec_http_response {
    long status; /* 0 when no response (transport error) */
    ec_buf body;
    double total_ms;
    uint32_t retry_after_s; /* parsed Retry-After (seconds or HTTP date), 0 if none */
} ec_http_response;

typedef struct ec_http ec_http;

/* Once per process, before threads. with_tls false: nothing the process will
 * talk to uses TLS (no https:// URL, no TLS broker), so OpenSSL is started
 * without its configuration file, error strings and algorithm tables (1.3 MB
 * of RSS), and https:// URLs are refused with EC_ERR_CONFIG for the rest of
 * the process's life. EC_ERR_CONFIG also when TLS is asked for after such a
 * start. ec_http_create() without it initialises with TLS. */
ec_err ec_http_global_init(bool with_tls);
bool ec_http_tls_available(void);         /* false after ec_http_global_init(false) */
bool ec_http_url_is_tls(const char *url); /* https://, any case */
ec_err ec_http_create(ec_http **out);
void ec_http_destroy(ec_http *h);

/* EC_OK when a response arrived (any status); EC_ERR_TIMEOUT,
 * EC_ERR_UNAVAILABLE (connect/reset) or EC_ERR_HTTP otherwise. */
ec_err ec_http_perform(ec_http *h, const ec_http_request *req, ec_http_response *resp,
                       ec_error *err);

void ec_http_request_init(ec_http_request *r, const char *method);
ec_err ec_http_request_add_header(ec_http_request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void ec_http_request_free(ec_http_request *r);
void ec_http_response_init(ec_http_response *r);
void ec_http_response_free(ec_http_response *r);

/* Joins base_url and path with exactly one '/'. Caller frees. */
char *ec_url_join(const char *base, const char *path);

#endif
