/* Fault injection and the /sim control endpoints.
 *
 * A model's fault comes from the script and may be replaced at run time with
 * POST /sim/faults {"model": "x", ...fault keys...}; {"model": "x"} alone
 * clears it. Order of effects on a request: latency_ms first, then the first
 * of hang, reset, status, malformed that is set. "times": N limits the fault
 * to the next N requests after it was set (0: every request).
 *
 * hang sleeps in the connection's own thread, waking every 20 ms to see
 * whether the client has gone (then the thread ends) or the server is
 * stopping, so neither other connections nor shutdown wait for it. */
#include "sim.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "edgecascade/util.h"

ec_err sim_server_init(sim_server *srv, sim_script *script, ec_error *err)
{
    memset(srv, 0, sizeof(*srv));
    srv->script = script;
    pthread_mutex_init(&srv->lock, NULL);
    atomic_init(&srv->stopping, false);
    atomic_init(&srv->sampled, 0);
    size_t n = script->n_models;
    srv->faults = calloc(n, sizeof(*srv->faults));
    srv->fault_hits = calloc(n, sizeof(*srv->fault_hits));
    srv->requests = calloc(n, sizeof(*srv->requests));
    srv->faulted = calloc(n, sizeof(*srv->faulted));
    srv->last_body = calloc(n, sizeof(*srv->last_body));
    srv->unlisted = calloc(n ? n : 1, sizeof(*srv->unlisted));
    if (!srv->faults || !srv->fault_hits || !srv->requests || !srv->faulted || !srv->last_body ||
        !srv->unlisted) {
        sim_server_clear(srv);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    memcpy(srv->faults, script->faults, n * sizeof(*srv->faults));
    return EC_OK;
}

void sim_server_clear(sim_server *srv)
{
    if (!srv)
        return;
    for (size_t i = 0; srv->last_body && srv->script && i < srv->script->n_models; i++)
        free(srv->last_body[i]);
    free(srv->last_body);
    sim_script_free(srv->script);
    free(srv->faults);
    free(srv->fault_hits);
    free(srv->requests);
    free(srv->faulted);
    free(srv->unlisted);
    pthread_mutex_destroy(&srv->lock);
    memset(srv, 0, sizeof(*srv));
}

/* true when the peer has closed its side (or the socket failed). */
static bool client_gone(sim_req *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci)
        return true;
    char c;
    ssize_t n = recv(ci->connect_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0)
        return true;
    return n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR;
}

static enum MHD_Result hang(sim_req *r)
{
    r->note = "hang";
    while (!atomic_load(&r->srv->stopping) && !client_gone(r))
        ec_sleep_ms(20);
    r->status = 0;
    return MHD_NO; /* close without answering */
}

bool sim_model_enter(sim_req *r, size_t m, sim_error_fn fn, bool *malformed, enum MHD_Result *res)
{
    sim_server *srv = r->srv;
    sim_fault f;
    bool apply;
    *malformed = false;
    size_t blen = r->body.len < SIM_LAST_BODY_MAX ? r->body.len : SIM_LAST_BODY_MAX;
    char *body = blen ? strndup(r->body.data, blen) : NULL;
    pthread_mutex_lock(&srv->lock);
    srv->requests[m]++;
    free(srv->last_body[m]);
    srv->last_body[m] = body;
    f = srv->faults[m];
    apply = sim_fault_active(&f) && (f.times == 0 || srv->fault_hits[m] < (unsigned)f.times);
    if (apply) {
        srv->fault_hits[m]++;
        srv->faulted[m]++;
    }
    pthread_mutex_unlock(&srv->lock);

    if (apply && f.latency_ms && !sim_sleep(srv, (unsigned)f.latency_ms)) {
        *res = MHD_NO;
        return false;
    }
    if (apply && f.hang) {
        *res = hang(r);
        return false;
    }
    if (apply && f.reset) {
        *res = sim_reset(r);
        return false;
    }
    if (apply && f.status) {
        bool retry = f.status == 429 || f.status == 503;
        char msg[128];
        snprintf(msg, sizeof(msg), "simulated fault: status %d for model %s", f.status,
                 srv->script->models[m].name);
        r->note = "fault";
        *res = sim_reply_json(r, f.status, fn(f.status, msg), false, retry ? f.retry_after : 0);
        return false;
    }
    *malformed = apply && f.malformed;
    /* The model's own inference time applies only to real answers. */
    unsigned latency = (unsigned)srv->script->models[m].latency_ms;
    if (latency && !sim_sleep(srv, latency)) {
        *res = MHD_NO;
        return false;
    }
    return true;
}

static json_t *sim_error(int status, const char *message)
{
    return json_pack("{s:s, s:b}", "error", message, "simulated", 1);
}

enum MHD_Result sim_faults_post(sim_req *r)
{
    char why[256];
    json_t *body = sim_body_json(r, why, sizeof(why));
    if (!body)
        return sim_reply_error(r, sim_error, 400, "%s", why);
    enum MHD_Result res;
    ec_error err = {0};
    sim_fault f;
    const char *name = json_string_value(json_object_get(body, "model"));
    long m = sim_script_model_index(r->srv->script, name);
    if (!name) {
        res = sim_reply_error(r, sim_error, 400, "model: required string");
    } else if (m < 0) {
        res = sim_reply_error(r, sim_error, 404, "no model \"%s\" in the script", name);
    } else if (sim_fault_parse(body, true, &f, &err)) {
        res = sim_reply_error(r, sim_error, 400, "%s", err.msg);
    } else {
        pthread_mutex_lock(&r->srv->lock);
        r->srv->faults[m] = f;
        r->srv->fault_hits[m] = 0;
        pthread_mutex_unlock(&r->srv->lock);
        snprintf(r->model, sizeof(r->model), "%s", name);
        res = sim_reply_json(r, 200,
                             json_pack("{s:s, s:o, s:b}", "model", name, "fault",
                                       sim_fault_to_json(&f), "simulated", 1),
                             false, 0);
    }
    json_decref(body);
    return res;
}

long sim_served_model(sim_server *srv, const char *name)
{
    long m = sim_script_model_index(srv->script, name);
    if (m >= 0 && !sim_model_listed(srv, (size_t)m))
        return -1;
    return m;
}

bool sim_model_listed(sim_server *srv, size_t i)
{
    pthread_mutex_lock(&srv->lock);
    bool listed = !srv->unlisted[i];
    pthread_mutex_unlock(&srv->lock);
    return listed;
}

/* POST /sim/models {"model": "x", "listed": false}: the server stops serving
 * x (gone from /v1/models and /api/tags, chat answers 404 as for an unknown
 * model), as when an operator unloads or swaps the model; "listed": true
 * brings it back. For the model auto-discovery tests. */
enum MHD_Result sim_models_post(sim_req *r)
{
    char why[256];
    json_t *body = sim_body_json(r, why, sizeof(why));
    if (!body)
        return sim_reply_error(r, sim_error, 400, "%s", why);
    enum MHD_Result res;
    const char *name = json_string_value(json_object_get(body, "model"));
    json_t *listed = json_object_get(body, "listed");
    long m = name ? sim_script_model_index(r->srv->script, name) : -1;
    if (!name || !json_is_boolean(listed)) {
        res = sim_reply_error(r, sim_error, 400, "expected {\"model\": NAME, \"listed\": BOOL}");
    } else if (m < 0) {
        res = sim_reply_error(r, sim_error, 404, "no model \"%s\" in the script", name);
    } else {
        pthread_mutex_lock(&r->srv->lock);
        r->srv->unlisted[m] = !json_is_true(listed);
        pthread_mutex_unlock(&r->srv->lock);
        snprintf(r->model, sizeof(r->model), "%s", name);
        res = sim_reply_json(r, 200,
                             json_pack("{s:s, s:b, s:b}", "model", name, "listed",
                                       json_is_true(listed), "simulated", 1),
                             false, 0);
    }
    json_decref(body);
    return res;
}

enum MHD_Result sim_faults_get(sim_req *r)
{
    json_t *faults = json_object();
    pthread_mutex_lock(&r->srv->lock);
    for (size_t i = 0; i < r->srv->script->n_models; i++) {
        if (sim_fault_active(&r->srv->faults[i]))
            json_object_set_new(faults, r->srv->script->models[i].name,
                                sim_fault_to_json(&r->srv->faults[i]));
    }
    pthread_mutex_unlock(&r->srv->lock);
    return sim_reply_json(r, 200, json_pack("{s:o, s:b}", "faults", faults, "simulated", 1), false,
                          0);
}

enum MHD_Result sim_stats_get(sim_req *r)
{
    json_t *models = json_object();
    pthread_mutex_lock(&r->srv->lock);
    for (size_t i = 0; i < r->srv->script->n_models; i++) {
        const char *last = r->srv->last_body[i];
        json_object_set_new(models, r->srv->script->models[i].name,
                            json_pack("{s:I, s:I, s:o}", "requests",
                                      (json_int_t)r->srv->requests[i], "faulted",
                                      (json_int_t)r->srv->faulted[i], "last_request",
                                      last ? json_string(last) : json_null()));
    }
    pthread_mutex_unlock(&r->srv->lock);
    return sim_reply_json(r, 200, json_pack("{s:o, s:b}", "models", models, "simulated", 1), false,
                          0);
}

enum MHD_Result sim_stats_delete(sim_req *r)
{
    size_t n = r->srv->script->n_models;
    pthread_mutex_lock(&r->srv->lock);
    memset(r->srv->requests, 0, n * sizeof(*r->srv->requests));
    memset(r->srv->faulted, 0, n * sizeof(*r->srv->faulted));
    for (size_t i = 0; i < n; i++) {
        free(r->srv->last_body[i]);
        r->srv->last_body[i] = NULL;
    }
    pthread_mutex_unlock(&r->srv->lock);
    return sim_stats_get(r);
}
