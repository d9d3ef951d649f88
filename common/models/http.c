/* Blocking HTTP over one libcurl easy handle per ec_http.
 *
 * The handle lives as long as the ec_http so that curl's connection cache
 * keeps the TCP (and TLS) connection to a model server open between calls:
 * a fresh handshake per inference would cost more than a small model's
 * answer. The options that are the same for every request are set once at
 * creation; every call sets each option a request carries (URL, headers,
 * method and body, timeouts, error buffer, write targets), so nothing from
 * one request leaks into the next, and clears those that point into its
 * stack frame. curl_easy_reset() per call did the same at about 5,000
 * instructions, 6 % of a request (callgrind, bench/README.md).
 *
 * Error messages name the method, the URL and curl's reason, never the
 * request headers: those carry API keys. */
#include "edgecascade/http.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define CONNECT_TIMEOUT_MAX_MS 5000u
#ifndef EC_VERSION
#define EC_VERSION "0"
#endif

struct ec_http {
    CURL *curl;
};

/* State of one transfer, seen by the write and header callbacks. */
typedef struct xfer {
    ec_buf *body;
    bool too_big;
    uint32_t retry_after_s;
} xfer;

/* Debian's libcurl4 (the OpenSSL build) loads GnuTLS too, through librtmp
 * and libldap, and GnuTLS initialises itself in a library constructor before
 * main(), loading p11-kit's trust modules: about 0.8 MB of a tier service's
 * RSS (bench/README.md, "RSS of local and relay") for a library nothing here
 * uses (curl's TLS is OpenSSL, Paho's too). A program that defines this
 * function returning 1 skips that implicit initialisation (gnutls.h,
 * GNUTLS_SKIP_GLOBAL_INIT); every GnuTLS user still calls
 * gnutls_global_init() itself before its first TLS session (librtmp,
 * libldap, libmicrohttpd do). The linker exports the definition because
 * libgnutls refers to it; CMakeLists.txt asks for that explicitly. */
int _gnutls_global_init_skip(void);
int _gnutls_global_init_skip(void)
{
    return 1;
}

/* How the process's HTTP was initialised; written once under g_init_lock,
 * read by every request. */
enum { INIT_NONE, INIT_TLS, INIT_PLAIN, INIT_FAILED };
static pthread_mutex_t g_init_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int g_init = INIT_NONE;

/* curl_global_init() initialises OpenSSL for TLS whatever its flags say
 * (CURL_GLOBAL_SSL means nothing since curl 7.57), and so does libssh2's
 * init inside it: together they load OpenSSL's error strings, its legacy
 * cipher and digest tables and its configuration file, about 1.3 MB of a
 * service's RSS (bench/README.md) in a process that may never open a TLS
 * connection. OpenSSL runs each of those steps once, so asking first for
 * none of them turns the later requests into no-ops. OpenSSL 3 fetches what a
 * TLS session needs from its providers on demand, so TLS would still work
 * afterwards, but without the system's openssl.cnf and with bare error codes:
 * such a process therefore refuses https:// (ec_http_perform), and a Paho
 * TLS connection would be as bare, which is why the caller counts the
 * broker's URI too. */
static void openssl_without_tls(void)
{
    OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CRYPTO_STRINGS | OPENSSL_INIT_NO_ADD_ALL_CIPHERS |
                            OPENSSL_INIT_NO_ADD_ALL_DIGESTS | OPENSSL_INIT_NO_LOAD_CONFIG,
                        NULL);
}

static int init_once(bool with_tls)
{
    pthread_mutex_lock(&g_init_lock);
    int s = atomic_load(&g_init);
    if (s == INIT_NONE) {
        if (!with_tls)
            openssl_without_tls();
        s = curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ? INIT_FAILED
            : with_tls                                        ? INIT_TLS
                                                              : INIT_PLAIN;
        atomic_store(&g_init, s);
    }
    pthread_mutex_unlock(&g_init_lock);
    return s;
}

ec_err ec_http_global_init(bool with_tls)
{
    int s = init_once(with_tls);
    if (s == INIT_FAILED)
        return EC_ERR_HTTP;
    return with_tls && s == INIT_PLAIN ? EC_ERR_CONFIG : EC_OK;
}

bool ec_http_tls_available(void)
{
    return atomic_load(&g_init) != INIT_PLAIN;
}

bool ec_http_url_is_tls(const char *url)
{
    return url && strncasecmp(url, "https://", 8) == 0;
}

void ec_http_destroy(ec_http *h)
{
    if (!h)
        return;
    curl_easy_cleanup(h->curl);
    free(h);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    size_t n = size * nmemb;
    if (ec_buf_append(x->body, ptr, n) != EC_OK) {
        x->too_big = true;
        return 0; /* anything but n aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Retry-After is either delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static uint32_t parse_retry_after(const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    if (*v >= '0' && *v <= '9') {
        char *end;
        unsigned long long s = strtoull(v, &end, 10);
        while (*end == ' ' || *end == '\t')
            end++;
        if (*end != '\0')
            return 0;
        return s > UINT32_MAX ? UINT32_MAX : (uint32_t)s;
    }
    time_t when = curl_getdate(v, NULL);
    if (when == (time_t)-1)
        return 0;
    time_t now = time(NULL);
    if (when <= now)
        return 0;
    double d = difftime(when, now);
    return d > (double)UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

static size_t on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    xfer *x = userdata;
    size_t n = size * nmemb;
    /* A new status line starts a new response (after 100 Continue or a
     * redirect): only the final response's Retry-After counts. */
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) {
        x->retry_after_s = 0;
        return n;
    }
    static const char name[] = "retry-after:";
    size_t nl = sizeof(name) - 1;
    if (n <= nl || strncasecmp(ptr, name, nl) != 0)
        return n;
    char v[128];
    size_t vl = n - nl;
    if (vl >= sizeof(v))
        return n; /* no valid value is that long */
    memcpy(v, ptr + nl, vl);
    v[vl] = '\0';
    while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
        v[--vl] = '\0';
    x->retry_after_s = parse_retry_after(v);
    return n;
}

static ec_err map_curl_error(CURLcode cc, bool too_big)
{
    if (too_big || cc == CURLE_FILESIZE_EXCEEDED)
        return EC_ERR_TOOBIG;
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        return EC_ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
        return EC_ERR_UNAVAILABLE;
    default:
        return EC_ERR_HTTP;
    }
}

/* The options every request shares. */
static CURLcode set_fixed_options(CURL *c)
{
    CURLcode cc;
    if ((cc = curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
                               ec_http_tls_available() ? "http,https" : "http")) ||
        (cc = curl_easy_setopt(c, CURLOPT_USERAGENT, "edgecascade/" EC_VERSION)) ||
        (cc = curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L)) ||
        (cc = curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L)) ||
        (cc = curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body)) ||
        (cc = curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header)))
        return cc;
    /* Rejects an announced oversized body before reading it; on_body catches
     * bodies without a Content-Length. */
    return curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)EC_HTTP_MAX_BODY);
}

ec_err ec_http_create(ec_http **out)
{
    *out = NULL;
    /* curl_easy_init would run curl_global_init itself, unsafely if threads
     * race; going through the guard makes create safe from any thread. A
     * process that said nothing about TLS gets it. */
    if (init_once(true) == INIT_FAILED)
        return EC_ERR_HTTP;
    ec_http *h = calloc(1, sizeof(*h));
    if (!h)
        return EC_ERR_NOMEM;
    h->curl = curl_easy_init();
    if (!h->curl || set_fixed_options(h->curl) != CURLE_OK) {
        if (h->curl)
            curl_easy_cleanup(h->curl);
        free(h);
        return EC_ERR_NOMEM;
    }
    *out = h;
    return EC_OK;
}

#define SETOPT(opt, val)                                                                           \
    do {                                                                                           \
        cc = curl_easy_setopt(c, opt, val);                                                        \
        if (cc != CURLE_OK)                                                                        \
            goto out;                                                                              \
    } while (0)

ec_err ec_http_perform(ec_http *h, const ec_http_request *req, ec_http_response *resp,
                       ec_error *err)
{
    const char *method = req->method ? req->method : "GET";
    const char *url = req->url ? req->url : "";
    if (!h || !req->url)
        return ec_error_set(err, EC_ERR_INVAL, "%s: no URL", method);

    resp->status = 0;
    resp->total_ms = 0;
    resp->retry_after_s = 0;
    resp->body.max = EC_HTTP_MAX_BODY;
    ec_buf_reset(&resp->body);
    bool tls = ec_http_tls_available();
    if (!tls && ec_http_url_is_tls(url))
        return ec_error_set(err, EC_ERR_CONFIG,
                            "%s %s: this process started without TLS (its configuration named "
                            "no https:// URL and no TLS broker); restart it to use https",
                            method, url);

    CURL *c = h->curl;
    struct curl_slist *hdrs = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    xfer x = {.body = &resp->body};
    CURLcode cc = CURLE_OK;
    ec_err rc = EC_OK;

    for (size_t i = 0; i < req->n_headers && i < EC_HTTP_MAX_HEADERS; i++) {
        struct curl_slist *t = curl_slist_append(hdrs, req->headers[i]);
        if (!t) {
            rc = ec_error_set(err, EC_ERR_NOMEM, "%s %s: out of memory", method, url);
            goto out;
        }
        hdrs = t;
    }
    /* Without this curl sends "Expect: 100-continue" for larger bodies and
     * waits up to a second for a 100 that many servers never send. */
    struct curl_slist *t = curl_slist_append(hdrs, "Expect:");
    if (!t) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "%s %s: out of memory", method, url);
        goto out;
    }
    hdrs = t;

    uint32_t connect_ms = req->connect_timeout_ms;
    if (connect_ms == 0) {
        connect_ms = CONNECT_TIMEOUT_MAX_MS;
        if (req->timeout_ms && req->timeout_ms < connect_ms)
            connect_ms = req->timeout_ms;
    }

    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_TIMEOUT_MS, (long)req->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, (long)connect_ms);
    SETOPT(CURLOPT_HTTPHEADER, hdrs);
    SETOPT(CURLOPT_ERRORBUFFER, errbuf);
    SETOPT(CURLOPT_WRITEDATA, &x);
    SETOPT(CURLOPT_HEADERDATA, &x);
    if (strcmp(method, "POST") == 0) {
        SETOPT(CURLOPT_CUSTOMREQUEST, NULL);
        SETOPT(CURLOPT_POST, 1L);
        SETOPT(CURLOPT_POSTFIELDS, req->body.data ? req->body.data : "");
        SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
    } else {
        /* HTTPGET also clears POST, NOBODY and UPLOAD; any other method is
         * a GET with another name and no body. */
        SETOPT(CURLOPT_HTTPGET, 1L);
        SETOPT(CURLOPT_CUSTOMREQUEST, strcmp(method, "GET") == 0 ? NULL : method);
    }

    cc = curl_easy_perform(c);

    double total_s = 0;
    if (curl_easy_getinfo(c, CURLINFO_TOTAL_TIME, &total_s) == CURLE_OK)
        resp->total_ms = total_s * 1000.0;
    if (cc == CURLE_OK) {
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        resp->status = status;
        resp->retry_after_s = x.retry_after_s;
    }

out:
    if (cc != CURLE_OK && rc == EC_OK) {
        rc = map_curl_error(cc, x.too_big);
        if (rc == EC_ERR_TOOBIG)
            ec_error_set(err, rc, "%s %s: response body over %u bytes", method, url,
                         EC_HTTP_MAX_BODY);
        else if (errbuf[0])
            ec_error_set(err, rc, "%s %s: %s (%s)", method, url, curl_easy_strerror(cc), errbuf);
        else
            ec_error_set(err, rc, "%s %s: %s", method, url, curl_easy_strerror(cc));
    }
    /* The handle must not keep pointers into this stack frame, into headers
     * freed below or into the caller's body. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(hdrs);
    return rc;
}

void ec_http_request_init(ec_http_request *r, const char *method)
{
    memset(r, 0, sizeof(*r));
    r->method = method;
    ec_buf_init(&r->body, 0);
}

ec_err ec_http_request_add_header(ec_http_request *r, const char *fmt, ...)
{
    if (r->n_headers >= EC_HTTP_MAX_HEADERS)
        return EC_ERR_TOOBIG;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return EC_ERR_INVAL;
    char *line = malloc((size_t)n + 1);
    if (!line)
        return EC_ERR_NOMEM;
    va_start(ap, fmt);
    vsnprintf(line, (size_t)n + 1, fmt, ap);
    va_end(ap);
    /* A CR or LF would let a value inject further headers. */
    if (strpbrk(line, "\r\n")) {
        free(line);
        return EC_ERR_INVAL;
    }
    r->headers[r->n_headers++] = line;
    return EC_OK;
}

void ec_http_request_free(ec_http_request *r)
{
    if (!r)
        return;
    free(r->url);
    for (size_t i = 0; i < r->n_headers && i < EC_HTTP_MAX_HEADERS; i++)
        free(r->headers[i]);
    ec_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

void ec_http_response_init(ec_http_response *r)
{
    memset(r, 0, sizeof(*r));
    ec_buf_init(&r->body, EC_HTTP_MAX_BODY);
}

void ec_http_response_free(ec_http_response *r)
{
    if (!r)
        return;
    ec_buf_free(&r->body);
    memset(r, 0, sizeof(*r));
}

char *ec_url_join(const char *base, const char *path)
{
    if (!base)
        return NULL;
    if (!path)
        path = "";
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/')
        bl--;
    while (*path == '/')
        path++;
    size_t pl = strlen(path);
    char *s = malloc(bl + 1 + pl + 1);
    if (!s)
        return NULL;
    memcpy(s, base, bl);
    s[bl] = '/';
    memcpy(s + bl + 1, path, pl);
    s[bl + 1 + pl] = '\0';
    return s;
}
