/* The router's HTTP server (libmicrohttpd): what a plant's monitoring and a
 * person with a browser need, read-only.
 *
 *   GET /               the dashboard (web/index.html, compiled in)
 *   GET /dashboard.js   its script
 *   GET /metrics        Prometheus text format
 *   GET /api/stats      the stats document (as on <root>/stats)
 *   GET /api/decisions  the most recent decisions, newest first (?limit=N)
 *
 * Anything else is 404; a method other than GET or HEAD is 405. One internal
 * thread serves every connection (select/poll/epoll, whatever libmicrohttpd
 * picks): each answer is a snapshot formatted in microseconds, so a thread
 * per connection would cost memory for nothing. Off unless http.port is set;
 * the endpoints have no authentication, so http.bind stays on loopback unless
 * the network in front of the device is trusted. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edgecascade/log.h"
#include "observe.h"
#include "router_metrics.h"
#include "router_mhd.h"
#include "router_web.h"

#define HTTP_MAX_CONNECTIONS 64
#define HTTP_TIMEOUT_S       15
#define METRICS_MAX_BYTES    (1024 * 1024)

/* Set once by ec_http_srv_start before the daemon (and so any handler)
 * runs; read-only afterwards. */
static const ec_mhd_api *M;

static enum MHD_Result send_bytes(struct MHD_Connection *conn, unsigned status, const char *ctype,
                                  void *data, size_t len, enum MHD_ResponseMemoryMode mode,
                                  bool no_store)
{
    struct MHD_Response *resp = M->create_response_from_buffer(len, data, mode);
    if (!resp) {
        if (mode == MHD_RESPMEM_MUST_FREE)
            free(data);
        return MHD_NO;
    }
    M->add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
    M->add_response_header(resp, "X-Content-Type-Options", "nosniff");
    if (no_store)
        M->add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    if (status == MHD_HTTP_METHOD_NOT_ALLOWED)
        M->add_response_header(resp, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
    enum MHD_Result rc = M->queue_response(conn, status, resp);
    M->destroy_response(resp);
    return rc;
}

static enum MHD_Result send_json(struct MHD_Connection *conn, unsigned status, json_t *body)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    return send_bytes(conn, status, "application/json", text, strlen(text), MHD_RESPMEM_MUST_FREE,
                      true);
}

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result send_error(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return send_json(conn, status, json_pack("{s:s}", "error", msg));
}

static enum MHD_Result serve_metrics(ec_router *r, struct MHD_Connection *conn)
{
    ec_metrics_snap s;
    ec_metrics_snapshot(ec_router_metrics(r), &s);
    s.inflight = (long)ec_router_inflight(r);
    s.waiting_local = (long)ec_router_waiting_local(r);
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, METRICS_MAX_BYTES);
    if (ec_metrics_prometheus(&s, ec_router_queue_depth(r), &b, &err)) {
        ec_buf_free(&b);
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "%s", err.msg);
    }
    size_t len = 0;
    char *text = ec_buf_take(&b, &len);
    return send_bytes(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", text, len,
                      MHD_RESPMEM_MUST_FREE, true);
}

static enum MHD_Result serve_decisions(ec_router *r, struct MHD_Connection *conn)
{
    size_t limit = EC_METRICS_RING;
    const char *q = M->lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    if (q) {
        char *end = NULL;
        long v = strtol(q, &end, 10);
        if (!*q || *end || v < 1 || v > EC_METRICS_RING)
            return send_error(conn, MHD_HTTP_BAD_REQUEST, "limit: must be a number from 1 to %d",
                              EC_METRICS_RING);
        limit = (size_t)v;
    }
    json_t *arr = ec_metrics_decisions_json(ec_router_metrics(r), limit);
    if (!arr)
        return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
    return send_json(conn, MHD_HTTP_OK, json_pack("{s:o}", "decisions", arr));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    ec_router *r = cls;
    static int started;
    /* The first call only announces the headers; a body (of a POST we will
     * refuse) is read and dropped before answering, so the connection stays
     * usable. */
    if (!*con_cls) {
        *con_cls = &started;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (strcmp(method, MHD_HTTP_METHOD_GET) != 0 && strcmp(method, MHD_HTTP_METHOD_HEAD) != 0)
        return send_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "method %.20s not allowed on %.100s",
                          method, url);
    if (strcmp(url, "/metrics") == 0)
        return serve_metrics(r, conn);
    if (strcmp(url, "/api/stats") == 0) {
        json_t *doc = ec_router_stats_doc(r);
        if (!doc)
            return send_error(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory");
        return send_json(conn, MHD_HTTP_OK, doc);
    }
    if (strcmp(url, "/api/decisions") == 0)
        return serve_decisions(r, conn);
    for (size_t i = 0; i < ec_web_n_assets; i++) {
        const ec_web_asset *a = &ec_web_assets[i];
        if (strcmp(url, a->path) == 0 ||
            (strcmp(a->path, "/") == 0 && strcmp(url, "/index.html") == 0))
            return send_bytes(conn, MHD_HTTP_OK, a->ctype, (void *)a->data, a->len,
                              MHD_RESPMEM_PERSISTENT, false);
    }
    return send_error(conn, MHD_HTTP_NOT_FOUND, "no such page: %.200s", url);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    ec_log_warn("http: %s", line);
}

struct ec_http_srv {
    struct MHD_Daemon *daemon;
};

ec_err ec_http_srv_start(ec_http_srv **out, ec_router *r, ec_error *err)
{
    const ec_config *cfg = ec_router_config(r);
    *out = NULL;
    if (!cfg->http_port)
        return EC_OK;
    if (!(M = ec_mhd_load(err)))
        return EC_ERR_CONFIG;
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t)cfg->http_port);
    if (inet_pton(AF_INET, cfg->http_bind, &sa.sin_addr) != 1)
        return ec_error_set(err, EC_ERR_CONFIG, "http.bind %s: not an IPv4 address",
                            cfg->http_bind);
    ec_http_srv *h = calloc(1, sizeof(*h));
    if (!h)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    h->daemon = M->start_daemon(
        MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
        on_request, r, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)HTTP_MAX_CONNECTIONS, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_TIMEOUT_S,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, r, MHD_OPTION_END);
    if (!h->daemon) {
        free(h);
        return ec_error_set(err, EC_ERR_IO,
                            "http: cannot listen on %s:%d (in use? http.port, http.bind)",
                            cfg->http_bind, cfg->http_port);
    }
    ec_log_info("dashboard and metrics on http://%s:%d/", cfg->http_bind, cfg->http_port);
    *out = h;
    return EC_OK;
}

void ec_http_srv_stop(ec_http_srv *h)
{
    if (!h)
        return;
    M->stop_daemon(h->daemon);
    free(h);
}
