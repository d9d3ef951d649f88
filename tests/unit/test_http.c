/* ec_http against a real HTTP server (libmicrohttpd on 127.0.0.1, port 0):
 * bodies and headers as the server sees them, statuses, Retry-After in both
 * forms, timeouts, refused connections, the body cap and connection reuse;
 * and a process started without TLS (ec_http_global_init(false)), run as a
 * child of this program because the choice is made once per process. */
#define _GNU_SOURCE /* asprintf */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/http.h"

/* ---- the server ---- */

typedef struct seen {
    char method[16];
    char url[128];
    char body[4096];
    size_t body_len;
    size_t body_total;
    char x_test[128];
    char authorization[128];
    char content_type[128];
    int has_expect;
} seen;

static struct MHD_Daemon *g_daemon;
static uint16_t g_port;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static seen g_seen;
static int g_connections;
static char *g_big; /* EC_HTTP_MAX_BODY + 1 bytes of 'x' */

typedef struct upload {
    char data[4096]; /* the first bytes, for comparison */
    size_t len;
    size_t total; /* all bytes received */
} upload;

static void copy_header(struct MHD_Connection *c, const char *name, char *dst, size_t n)
{
    const char *v = MHD_lookup_connection_value(c, MHD_HEADER_KIND, name);
    snprintf(dst, n, "%s", v ? v : "");
}

static void http_date(time_t t, char *dst, size_t n)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(dst, n, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static ssize_t chunked_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    size_t total = *(size_t *)cls;
    if (pos >= total)
        return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = total - (size_t)pos;
    if (n > max)
        n = max;
    memset(buf, 'y', n);
    return (ssize_t)n;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *text,
                             const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(strlen(text), (void *)text, MHD_RESPMEM_MUST_COPY);
    if (retry_after)
        MHD_add_response_header(r, "Retry-After", retry_after);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url,
                               const char *method, const char *version, const char *data,
                               size_t *data_size, void **con_cls)
{
    upload *u = *con_cls;
    if (!u) {
        u = calloc(1, sizeof(*u));
        *con_cls = u;
        return u ? MHD_YES : MHD_NO;
    }
    if (*data_size) {
        size_t n = *data_size;
        u->total += n;
        if (n > sizeof(u->data) - 1 - u->len)
            n = sizeof(u->data) - 1 - u->len;
        memcpy(u->data + u->len, data, n);
        u->len += n;
        *data_size = 0;
        return MHD_YES;
    }

    pthread_mutex_lock(&g_lock);
    memset(&g_seen, 0, sizeof(g_seen));
    snprintf(g_seen.method, sizeof(g_seen.method), "%s", method);
    snprintf(g_seen.url, sizeof(g_seen.url), "%s", url);
    memcpy(g_seen.body, u->data, u->len);
    g_seen.body_len = u->len;
    g_seen.body_total = u->total;
    copy_header(c, "X-Test", g_seen.x_test, sizeof(g_seen.x_test));
    copy_header(c, "Authorization", g_seen.authorization, sizeof(g_seen.authorization));
    copy_header(c, "Content-Type", g_seen.content_type, sizeof(g_seen.content_type));
    g_seen.has_expect = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Expect") != NULL;
    pthread_mutex_unlock(&g_lock);

    if (strcmp(url, "/echo") == 0) {
        u->data[u->len] = '\0';
        return reply(c, 200, u->data, NULL);
    }
    if (strcmp(url, "/len") == 0) {
        char t[32];
        snprintf(t, sizeof(t), "%zu", u->total);
        return reply(c, 200, t, NULL);
    }
    if (strncmp(url, "/status/", 8) == 0)
        return reply(c, (unsigned)atoi(url + 8), "{\"error\":\"status\"}", NULL);
    if (strcmp(url, "/retry-seconds") == 0)
        return reply(c, 429, "slow down", "7");
    if (strcmp(url, "/retry-date") == 0) {
        char d[64];
        http_date(time(NULL) + 30, d, sizeof(d));
        return reply(c, 503, "later", d);
    }
    if (strcmp(url, "/retry-past") == 0) {
        char d[64];
        http_date(time(NULL) - 3600, d, sizeof(d));
        return reply(c, 503, "later", d);
    }
    if (strncmp(url, "/sleep/", 7) == 0) {
        usleep((useconds_t)atoi(url + 7) * 1000u);
        return reply(c, 200, "slept", NULL);
    }
    if (strcmp(url, "/big") == 0 || strcmp(url, "/exact") == 0) {
        size_t n = strcmp(url, "/big") == 0 ? EC_HTTP_MAX_BODY + 1 : EC_HTTP_MAX_BODY;
        struct MHD_Response *r = MHD_create_response_from_buffer(n, g_big, MHD_RESPMEM_PERSISTENT);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (strcmp(url, "/big-chunked") == 0) {
        static size_t total = EC_HTTP_MAX_BODY + 1;
        struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024,
                                                                   chunked_reader, &total, NULL);
        enum MHD_Result ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ret;
    }
    return reply(c, 200, "hello", NULL);
}

static void completed(void *cls, struct MHD_Connection *c, void **con_cls,
                      enum MHD_RequestTerminationCode toe)
{
    free(*con_cls);
    *con_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                          enum MHD_ConnectionNotificationCode toe)
{
    if (toe != MHD_CONNECTION_NOTIFY_STARTED)
        return;
    pthread_mutex_lock(&g_lock);
    g_connections++;
    pthread_mutex_unlock(&g_lock);
}

static int connections(void)
{
    pthread_mutex_lock(&g_lock);
    int n = g_connections;
    pthread_mutex_unlock(&g_lock);
    return n;
}

static int server_start(void **state)
{
    assert_int_equal(ec_http_global_init(true), EC_OK);
    g_big = malloc(EC_HTTP_MAX_BODY + 1);
    assert_non_null(g_big);
    memset(g_big, 'x', EC_HTTP_MAX_BODY + 1);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    g_daemon = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0,
        NULL, NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
        MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        NULL, MHD_OPTION_END);
    assert_non_null(g_daemon);
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(g_daemon, MHD_DAEMON_INFO_BIND_PORT);
    assert_non_null(di);
    g_port = di->port;
    assert_true(g_port > 0);
    return 0;
}

static int server_stop(void **state)
{
    MHD_stop_daemon(g_daemon);
    free(g_big);
    return 0;
}

static char *url_for(const char *path)
{
    char *u = NULL;
    assert_true(asprintf(&u, "http://127.0.0.1:%u%s", g_port, path) > 0);
    return u;
}

/* One request on h; returns the ec_http_perform result. */
static ec_err do_req(ec_http *h, const char *method, const char *path, const char *body,
                     uint32_t timeout_ms, ec_http_response *resp, ec_error *err)
{
    ec_http_request req;
    ec_http_request_init(&req, method);
    req.url = url_for(path);
    req.timeout_ms = timeout_ms;
    if (body)
        assert_int_equal(ec_buf_append(&req.body, body, strlen(body)), EC_OK);
    ec_err rc = ec_http_perform(h, &req, resp, err);
    ec_http_request_free(&req);
    return rc;
}

/* ---- tests ---- */

static void test_post_echo_and_headers(void **state)
{
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_request req;
    ec_http_request_init(&req, "POST");
    req.url = url_for("/echo");
    req.timeout_ms = 5000;
    assert_int_equal(ec_http_request_add_header(&req, "Content-Type: application/json"), EC_OK);
    assert_int_equal(ec_http_request_add_header(&req, "X-Test: %s-%d", "abc", 42), EC_OK);
    assert_int_equal(ec_http_request_add_header(&req, "Authorization: Bearer k1"), EC_OK);
    char body[3000];
    memset(body, 'b', sizeof(body) - 1);
    body[sizeof(body) - 1] = '\0';
    memcpy(body, "{\"q\":1}", 7);
    assert_int_equal(ec_buf_append(&req.body, body, strlen(body)), EC_OK);

    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    assert_int_equal(ec_http_perform(h, &req, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body.len, strlen(body));
    assert_string_equal(ec_buf_cstr(&resp.body), body);
    assert_true(resp.total_ms > 0);
    assert_int_equal(resp.retry_after_s, 0);

    assert_string_equal(g_seen.method, "POST");
    assert_string_equal(g_seen.url, "/echo");
    assert_int_equal(g_seen.body_len, strlen(body));
    assert_memory_equal(g_seen.body, body, strlen(body));
    assert_string_equal(g_seen.x_test, "abc-42");
    assert_string_equal(g_seen.authorization, "Bearer k1");
    assert_string_equal(g_seen.content_type, "application/json");
    assert_int_equal(g_seen.has_expect, 0);

    /* The same handle, now a plain GET: nothing of the POST may carry over. */
    ec_http_request_free(&req);
    assert_int_equal(do_req(h, "GET", "/hello", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 200);
    assert_string_equal(ec_buf_cstr(&resp.body), "hello");
    assert_string_equal(g_seen.method, "GET");
    assert_int_equal(g_seen.body_len, 0);
    assert_string_equal(g_seen.x_test, "");
    assert_string_equal(g_seen.authorization, "");

    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_large_post_no_expect(void **state)
{
    /* Large enough that curl would otherwise send "Expect: 100-continue"
     * and wait for a 100 that many servers never send. */
    size_t n = 1536u * 1024u;
    char *body = malloc(n + 1);
    assert_non_null(body);
    memset(body, 'p', n);
    body[n] = '\0';
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    assert_int_equal(do_req(h, "POST", "/len", body, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(g_seen.body_total, n);
    assert_int_equal(g_seen.has_expect, 0);
    ec_http_response_free(&resp);
    ec_http_destroy(h);
    free(body);
}

static void test_status_codes(void **state)
{
    static const long codes[] = {201, 204, 400, 401, 404, 429, 500, 503, 529};
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
        char path[32];
        snprintf(path, sizeof(path), "/status/%ld", codes[i]);
        /* Any status is a response: EC_OK, with the status for the caller. */
        assert_int_equal(do_req(h, "GET", path, NULL, 5000, &resp, &err), EC_OK);
        assert_int_equal(resp.status, codes[i]);
        if (codes[i] != 204)
            assert_string_equal(ec_buf_cstr(&resp.body), "{\"error\":\"status\"}");
        else
            assert_int_equal(resp.body.len, 0);
    }
    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_retry_after(void **state)
{
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};

    assert_int_equal(do_req(h, "GET", "/retry-seconds", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 429);
    assert_int_equal(resp.retry_after_s, 7);

    /* A response without the header must not inherit the previous value. */
    assert_int_equal(do_req(h, "GET", "/hello", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.retry_after_s, 0);

    assert_int_equal(do_req(h, "GET", "/retry-date", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 503);
    /* 30 s ahead at the server, second granularity on both sides. */
    assert_in_range(resp.retry_after_s, 27, 31);

    assert_int_equal(do_req(h, "GET", "/retry-past", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 503);
    assert_int_equal(resp.retry_after_s, 0);

    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_timeout(void **state)
{
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};

    /* A short sleep within the timeout succeeds and is timed. */
    assert_int_equal(do_req(h, "GET", "/sleep/100", NULL, 3000, &resp, &err), EC_OK);
    assert_string_equal(ec_buf_cstr(&resp.body), "slept");
    assert_true(resp.total_ms >= 90.0);

    ec_error_clear(&err);
    ec_err rc = do_req(h, "GET", "/sleep/800", NULL, 200, &resp, &err);
    assert_int_equal(rc, EC_ERR_TIMEOUT);
    assert_int_equal(err.code, EC_ERR_TIMEOUT);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(err.msg, "/sleep/800"));
    assert_true(resp.total_ms >= 150.0 && resp.total_ms < 800.0);

    /* The handle stays usable after a timeout. */
    assert_int_equal(do_req(h, "GET", "/hello", NULL, 3000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 200);

    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_connection_refused(void **state)
{
    /* A port bound but not listening refuses connections, with no race
     * against another process taking a port we merely closed. */
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = 0};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    socklen_t sl = sizeof(sa);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);

    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_request req;
    ec_http_request_init(&req, "POST");
    assert_true(asprintf(&req.url, "http://127.0.0.1:%u/v1/chat/completions", ntohs(sa.sin_port)) >
                0);
    req.timeout_ms = 2000;
    assert_int_equal(ec_http_request_add_header(&req, "Authorization: Bearer sk-secret-123"),
                     EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    assert_int_equal(ec_http_perform(h, &req, &resp, &err), EC_ERR_UNAVAILABLE);
    assert_int_equal(resp.status, 0);
    assert_non_null(strstr(err.msg, req.url));
    assert_null(strstr(err.msg, "sk-secret-123"));

    ec_http_request_free(&req);
    ec_http_response_free(&resp);
    ec_http_destroy(h);
    close(fd);
}

static void test_body_cap(void **state)
{
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};

    /* Exactly at the cap is fine. */
    assert_int_equal(do_req(h, "GET", "/exact", NULL, 10000, &resp, &err), EC_OK);
    assert_int_equal(resp.status, 200);
    assert_int_equal(resp.body.len, EC_HTTP_MAX_BODY);

    /* One byte over, announced by Content-Length. */
    assert_int_equal(do_req(h, "GET", "/big", NULL, 10000, &resp, &err), EC_ERR_TOOBIG);
    assert_int_equal(err.code, EC_ERR_TOOBIG);
    assert_true(resp.body.len <= EC_HTTP_MAX_BODY);

    /* One byte over, chunked: caught while reading. */
    ec_error_clear(&err);
    assert_int_equal(do_req(h, "GET", "/big-chunked", NULL, 10000, &resp, &err), EC_ERR_TOOBIG);
    assert_int_equal(err.code, EC_ERR_TOOBIG);
    assert_true(resp.body.len <= EC_HTTP_MAX_BODY);

    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_connection_reuse(void **state)
{
    ec_http *h, *h2;
    assert_int_equal(ec_http_create(&h), EC_OK);
    assert_int_equal(ec_http_create(&h2), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};

    int before = connections();
    assert_int_equal(do_req(h, "POST", "/echo", "one", 5000, &resp, &err), EC_OK);
    assert_string_equal(ec_buf_cstr(&resp.body), "one");
    assert_int_equal(do_req(h, "POST", "/echo", "two", 5000, &resp, &err), EC_OK);
    assert_string_equal(ec_buf_cstr(&resp.body), "two");
    assert_int_equal(do_req(h, "GET", "/hello", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(connections() - before, 1);

    /* A second handle has its own connection, so the count does move. */
    assert_int_equal(do_req(h2, "GET", "/hello", NULL, 5000, &resp, &err), EC_OK);
    assert_int_equal(connections() - before, 2);

    ec_http_response_free(&resp);
    ec_http_destroy(h);
    ec_http_destroy(h2);
}

/* One handle keeps its options between requests (http.c sets the fixed ones
 * once): each request still goes out with its own method, body, headers and
 * URL, and nothing of the one before. */
static void test_one_handle_many_methods(void **state)
{
    (void)state;
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    static const struct {
        const char *method, *path, *body;
    } seq[] = {
        {"POST", "/echo", "first body"}, {"GET", "/hello", NULL},       {"DELETE", "/len", NULL},
        {"POST", "/len", "xy"},          {"PUT", "/hello", NULL},       {"GET", "/len", NULL},
        {"POST", "/echo", ""},           {"POST", "/echo", "last one"},
    };
    for (size_t i = 0; i < sizeof(seq) / sizeof(seq[0]); i++) {
        ec_http_request req;
        ec_http_request_init(&req, seq[i].method);
        req.url = url_for(seq[i].path);
        req.timeout_ms = 5000;
        if (i == 0)
            assert_int_equal(ec_http_request_add_header(&req, "X-Test: only-first"), EC_OK);
        if (seq[i].body)
            assert_int_equal(ec_buf_append(&req.body, seq[i].body, strlen(seq[i].body)), EC_OK);
        assert_int_equal(ec_http_perform(h, &req, &resp, &err), EC_OK);
        ec_http_request_free(&req);
        assert_int_equal(resp.status, 200);
        pthread_mutex_lock(&g_lock);
        seen s = g_seen;
        pthread_mutex_unlock(&g_lock);
        assert_string_equal(s.method, seq[i].method);
        assert_string_equal(s.url, seq[i].path);
        size_t want = seq[i].body ? strlen(seq[i].body) : 0;
        assert_int_equal(s.body_total, want);
        assert_memory_equal(s.body, seq[i].body ? seq[i].body : "", want);
        assert_string_equal(s.x_test, i == 0 ? "only-first" : "");
    }
    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_request_helpers(void **state)
{
    ec_http_request req;
    ec_http_request_init(&req, "GET");
    for (int i = 0; i < EC_HTTP_MAX_HEADERS; i++)
        assert_int_equal(ec_http_request_add_header(&req, "X-H%d: %d", i, i), EC_OK);
    assert_int_equal(ec_http_request_add_header(&req, "X-More: 1"), EC_ERR_TOOBIG);
    assert_int_equal(req.n_headers, EC_HTTP_MAX_HEADERS);
    assert_string_equal(req.headers[3], "X-H3: 3");
    ec_http_request_free(&req);
    assert_int_equal(req.n_headers, 0);
    ec_http_request_free(&req); /* twice is harmless */
    ec_http_request_free(NULL);

    /* A value with a line break would inject headers. */
    ec_http_request_init(&req, "GET");
    assert_int_equal(ec_http_request_add_header(&req, "X-Key: %s", "a\r\nEvil: 1"), EC_ERR_INVAL);
    assert_int_equal(req.n_headers, 0);
    ec_http_request_free(&req);

    ec_http_response_free(NULL);
    ec_http_destroy(NULL);

    /* No URL is an argument error, not a crash. */
    ec_http *h;
    assert_int_equal(ec_http_create(&h), EC_OK);
    ec_http_request_init(&req, "GET");
    ec_http_response resp;
    ec_http_response_init(&resp);
    ec_error err = {0};
    assert_int_equal(ec_http_perform(h, &req, &resp, &err), EC_ERR_INVAL);
    ec_http_response_free(&resp);
    ec_http_destroy(h);
}

static void test_url_join(void **state)
{
    static const char *cases[][3] = {
        {"http://h:1/v1", "chat/completions", "http://h:1/v1/chat/completions"},
        {"http://h:1/v1/", "chat/completions", "http://h:1/v1/chat/completions"},
        {"http://h:1/v1//", "/models", "http://h:1/v1/models"},
        {"http://h:1", "/api/tags", "http://h:1/api/tags"},
        {"http://h:1", "", "http://h:1/"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *s = ec_url_join(cases[i][0], cases[i][1]);
        assert_non_null(s);
        assert_string_equal(s, cases[i][2]);
        free(s);
    }
    assert_null(ec_url_join(NULL, "x"));
}

/* ---- a process started without TLS ---- */

/* OpenSSL's text for an error code, or NULL when its error strings were
 * never loaded: the visible trace of curl's full OpenSSL initialisation. */
static const char *openssl_reason_text(void)
{
    return ERR_reason_error_string(ERR_PACK(ERR_LIB_EVP, 0, EVP_R_BAD_DECRYPT));
}

#define CHILD_CHECK(cond)                                                                          \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "plain child: %s failed (line %d)\n", #cond, __LINE__);                \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)

/* argv: --plain-child http://127.0.0.1:PORT/path */
static int plain_child(const char *url)
{
    CHILD_CHECK(ec_http_global_init(false) == EC_OK);
    CHILD_CHECK(!ec_http_tls_available());
    /* OpenSSL's tables stayed unloaded although curl and libssh2 asked. */
    CHILD_CHECK(openssl_reason_text() == NULL);
    /* TLS cannot be asked for afterwards. */
    CHILD_CHECK(ec_http_global_init(true) == EC_ERR_CONFIG);
    ec_http *h = NULL;
    CHILD_CHECK(ec_http_create(&h) == EC_OK);
    ec_http_request req;
    ec_http_response resp;
    ec_error err = {0};
    ec_http_request_init(&req, "POST");
    ec_http_response_init(&resp);
    req.url = strdup(url);
    req.timeout_ms = 5000;
    CHILD_CHECK(ec_buf_append(&req.body, "{\"plain\":1}", 11) == EC_OK);
    CHILD_CHECK(ec_http_perform(h, &req, &resp, &err) == EC_OK);
    CHILD_CHECK(resp.status == 200);
    CHILD_CHECK(resp.body.len == 11 && memcmp(resp.body.data, "{\"plain\":1}", 11) == 0);
    free(req.url);
    /* https:// is refused before any connection, saying what to do. */
    req.url = strdup("HTTPS://127.0.0.1:1/v1/chat/completions");
    CHILD_CHECK(ec_http_perform(h, &req, &resp, &err) == EC_ERR_CONFIG);
    CHILD_CHECK(strstr(err.msg, "HTTPS://127.0.0.1:1/v1/chat/completions") != NULL);
    CHILD_CHECK(strstr(err.msg, "restart it to use https") != NULL);
    CHILD_CHECK(resp.status == 0);
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
    ec_http_destroy(h);
    return 0;
}

static void test_started_without_tls(void **state)
{
    (void)state;
    /* This process initialised with TLS: the strings are there, so the
     * child's NULL is the lean start's doing, not a missing string. */
    assert_true(ec_http_tls_available());
    assert_non_null(openssl_reason_text());
    assert_true(ec_http_url_is_tls("https://api.openai.com/v1"));
    assert_true(ec_http_url_is_tls("HTTPS://x"));
    assert_false(ec_http_url_is_tls("http://127.0.0.1:8000/v1"));
    assert_false(ec_http_url_is_tls(NULL));

    char *url = url_for("/echo");
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_http", "--plain-child", url, (char *)NULL);
        _exit(127);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    free(url);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "--plain-child") == 0)
        return plain_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_echo_and_headers),
        cmocka_unit_test(test_large_post_no_expect),
        cmocka_unit_test(test_status_codes),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_connection_reuse),
        cmocka_unit_test(test_one_handle_many_methods),
        cmocka_unit_test(test_request_helpers),
        cmocka_unit_test(test_url_join),
        cmocka_unit_test(test_started_without_tls),
    };
    return cmocka_run_group_tests(tests, server_start, server_stop);
}
