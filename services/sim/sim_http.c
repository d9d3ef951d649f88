/* HTTP glue: libmicrohttpd daemon, body collection, routing and replies.
 * Every response carries X-Simulated: true so nothing downstream can mistake
 * the simulator for a real model server. One log line per request is written
 * when libmicrohttpd reports the request finished, so resets and hangs are
 * logged too. */
#include "sim.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "sim_corpus.h"

typedef struct sim_route {
    const char *method;
    const char *path;
    enum MHD_Result (*fn)(sim_req *r);
} sim_route;

static const sim_route routes[] = {
    {"POST", "/v1/chat/completions", sim_openai_chat},
    {"GET", "/v1/models", sim_openai_models},
    {"POST", "/v1/messages", sim_anthropic_messages},
    {"POST", "/api/chat", sim_ollama_chat},
    {"GET", "/api/tags", sim_ollama_tags},
    {"POST", "/sim/faults", sim_faults_post},
    {"GET", "/sim/faults", sim_faults_get},
    {"POST", "/sim/models", sim_models_post},
    {"GET", "/sim/stats", sim_stats_get},
    {"DELETE", "/sim/stats", sim_stats_delete},
    {"POST", "/sim/serve", sim_corpus_serve},
    {"GET", "/sim/received", sim_corpus_received},
    {"DELETE", "/sim/received", sim_corpus_forget},
};

enum MHD_Result sim_reply(sim_req *r, int status, const char *ctype, char *data, size_t len,
                          int retry_after)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type", ctype);
    MHD_add_response_header(resp, "X-Simulated", "true");
    if (retry_after > 0) {
        char v[24];
        snprintf(v, sizeof(v), "%d", retry_after);
        MHD_add_response_header(resp, "Retry-After", v);
    }
    r->status = status;
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result sim_reply_json(sim_req *r, int status, json_t *body, bool malformed,
                               int retry_after)
{
    char *text = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(10)) : NULL;
    json_decref(body);
    if (!text)
        return MHD_NO;
    size_t len = strlen(text);
    if (malformed) {
        /* Half a document: a client must fail to parse it, not read a prefix. */
        len /= 2;
        text[len] = '\0';
        r->note = "malformed";
    }
    return sim_reply(r, status, "application/json", text, len, retry_after);
}

enum MHD_Result sim_reply_error(sim_req *r, sim_error_fn fn, int status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    return sim_reply_json(r, status, fn(status, msg), false, 0);
}

enum MHD_Result sim_reset(sim_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) {
        /* Linger 0 turns libmicrohttpd's close into an RST, as a crashed peer would. */
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        setsockopt(ci->connect_fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    }
    r->status = 0;
    r->note = "reset";
    return MHD_NO;
}

const char *sim_header(sim_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

bool sim_bearer_ok(sim_req *r, const char *key)
{
    const char *h = sim_header(r, "Authorization");
    return h && strncmp(h, "Bearer ", 7) == 0 && strcmp(h + 7, key) == 0;
}

json_t *sim_body_json(sim_req *r, char *why, size_t why_len)
{
    json_error_t jerr;
    json_t *root = json_loadb(ec_buf_cstr(&r->body), r->body.len, 0, &jerr);
    if (!root) {
        snprintf(why, why_len, "invalid JSON body: %s (line %d column %d)", jerr.text, jerr.line,
                 jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        snprintf(why, why_len, "invalid JSON body: expected an object");
        return NULL;
    }
    return root;
}

uint64_t sim_sample_number(sim_server *srv, json_t *temperature)
{
    if (!json_is_number(temperature) || json_number_value(temperature) <= 0)
        return 0;
    return atomic_fetch_add(&srv->sampled, 1) + 1;
}

bool sim_sleep(sim_server *srv, unsigned ms)
{
    uint64_t end = ec_mono_us() + (uint64_t)ms * 1000u;
    for (;;) {
        if (atomic_load(&srv->stopping))
            return false;
        uint64_t now = ec_mono_us();
        if (now >= end)
            return true;
        uint64_t left_ms = (end - now + 999u) / 1000u;
        ec_sleep_ms(left_ms < 20 ? (unsigned)left_ms : 20u);
    }
}

void sim_rfc3339_now(char out[40])
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    char date[24];
    strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 40, "%s.%09ldZ", date, ts.tv_nsec);
}

static enum MHD_Result not_found(sim_req *r)
{
    sim_error_fn fn = strncmp(r->path, "/api/", 5) == 0 ? sim_ollama_error : sim_openai_error;
    return sim_reply_error(r, fn, 404, "no such endpoint: %s %s", r->method, r->path);
}

static enum MHD_Result route(sim_req *r)
{
    if (r->too_big)
        return sim_reply_error(r, sim_openai_error, 413, "request body over %u bytes",
                               SIM_MAX_BODY);
    enum MHD_Result res;
    if (sim_corpus_answer(r, &res))
        return res;
    bool path_known = false;
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        if (strcmp(routes[i].path, r->path) != 0)
            continue;
        path_known = true;
        if (strcmp(routes[i].method, r->method) == 0)
            return routes[i].fn(r);
    }
    if (path_known)
        return sim_reply_error(r, sim_openai_error, 405, "method %s not allowed on %s", r->method,
                               r->path);
    return not_found(r);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    sim_req *r = *con_cls;
    if (!r) {
        /* First call: headers only. Keep a context to collect the body into. */
        if (!(r = calloc(1, sizeof(*r))))
            return MHD_NO;
        r->srv = cls;
        r->conn = conn;
        snprintf(r->method, sizeof(r->method), "%s", method);
        snprintf(r->path, sizeof(r->path), "%s", url);
        snprintf(r->model, sizeof(r->model), "-");
        r->t0_ms = ec_mono_ms();
        ec_buf_init(&r->body, SIM_MAX_BODY);
        *con_cls = r;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!r->too_big && ec_buf_append(&r->body, upload_data, *upload_data_size))
            r->too_big = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    return route(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    sim_req *r = *con_cls;
    if (!r)
        return;
    const char *note = r->note;
    if (!note && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
        note = toe == MHD_REQUEST_TERMINATED_CLIENT_ABORT ? "client-abort" : "aborted";
    ec_log_info("%s %s model=%s status=%d %.1fms%s%s", r->method, r->path, r->model, r->status,
                ec_mono_ms() - r->t0_ms, note ? " " : "", note ? note : "");
    ec_buf_free(&r->body);
    free(r);
    *con_cls = NULL;
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof(line), fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    ec_log_debug("libmicrohttpd: %s", line);
}

struct MHD_Daemon *sim_http_start(sim_server *srv, const char *bind, uint16_t port, uint16_t *bound,
                                  ec_error *err)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons(port);
    if (inet_pton(AF_INET, bind, &sa.sin_addr) != 1) {
        ec_error_set(err, EC_ERR_INVAL, "--bind %s: not an IPv4 address", bind);
        return NULL;
    }
    /* One thread per connection: a hanging or slow answer ties up only its own
     * connection, and keep-alive connections just keep their thread. */
    struct MHD_Daemon *d =
        MHD_start_daemon(MHD_USE_AUTO | MHD_USE_INTERNAL_POLLING_THREAD |
                             MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG,
                         0, NULL, NULL, on_request, srv, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&sa, MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
                         MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120, MHD_OPTION_CONNECTION_LIMIT,
                         (unsigned)512, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, MHD_OPTION_END);
    if (!d) {
        ec_error_set(err, EC_ERR_IO, "cannot listen on %s:%u", bind, (unsigned)port);
        return NULL;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound = di ? di->port : port;
    if (!*bound) {
        MHD_stop_daemon(d);
        ec_error_set(err, EC_ERR_IO, "cannot learn the port chosen for %s:0", bind);
        return NULL;
    }
    return d;
}
