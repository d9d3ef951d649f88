/* Corpus mode: published bodies served verbatim; see sim_corpus.h.
 *
 * The queue and the record sit behind their own mutex: connection threads
 * answer and record concurrently. A case file is read when it is queued, so
 * a bad file is a 400 to the test at once rather than a broken answer later. */
#include "sim_corpus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

#define CORPUS_MAX_QUEUE    64
#define CORPUS_MAX_RECEIVED 256

typedef struct corpus_case {
    char path[256];
    int status;
    json_t *headers; /* object of string values */
    char *body;
    size_t len;
    int times; /* requests left; 0 = every request */
} corpus_case;

struct sim_corpus {
    char *dir;
    pthread_mutex_t lock;
    corpus_case queue[CORPUS_MAX_QUEUE];
    size_t n_queue;
    json_t *received; /* array of {method, path, headers, body} */
};

ec_err sim_corpus_create(const char *dir, sim_corpus **out, ec_error *err)
{
    sim_corpus *c = calloc(1, sizeof(*c));
    if (!c || !(c->dir = strdup(dir)) || !(c->received = json_array())) {
        sim_corpus_free(c);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    pthread_mutex_init(&c->lock, NULL);
    *out = c;
    return EC_OK;
}

static void case_clear(corpus_case *k)
{
    json_decref(k->headers);
    free(k->body);
    memset(k, 0, sizeof(*k));
}

void sim_corpus_free(sim_corpus *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_queue; i++)
        case_clear(&c->queue[i]);
    json_decref(c->received);
    free(c->dir);
    pthread_mutex_destroy(&c->lock);
    free(c);
}

static json_t *sim_error(int status, const char *message)
{
    (void)status;
    return json_pack("{s:s, s:b}", "error", message, "simulated", 1);
}

/* Reads DIR/file into k; why says what is wrong. */
static bool case_load(const sim_corpus *c, const char *file, const char *path, corpus_case *k,
                      char *why, size_t cap)
{
    memset(k, 0, sizeof(*k));
    if (strstr(file, "..") || file[0] == '/') {
        snprintf(why, cap, "file: a path inside the corpus directory, got %s", file);
        return false;
    }
    char full[4096];
    snprintf(full, sizeof(full), "%s/%s", c->dir, file);
    json_error_t je;
    json_t *root = json_load_file(full, 0, &je);
    if (!json_is_object(root)) {
        snprintf(why, cap, "%.300s: %s", full, root ? "not a JSON object" : je.text);
        json_decref(root);
        return false;
    }
    const char *endpoint = json_string_value(json_object_get(root, "endpoint"));
    json_t *status = json_object_get(root, "status");
    json_t *body = json_object_get(root, "body");
    const char *text = json_string_value(json_object_get(root, "body_text"));
    snprintf(k->path, sizeof(k->path), "%s", path ? path : endpoint ? endpoint : "");
    /* Examples a doc ties to no status are what a 200 carries. */
    k->status = json_is_integer(status) ? (int)json_integer_value(status) : 200;
    if (body)
        k->body = json_dumps(body, JSON_PRESERVE_ORDER | JSON_COMPACT | JSON_ENCODE_ANY);
    else if (text)
        k->body = strdup(text);
    k->len = k->body ? strlen(k->body) : 0;
    json_t *h = json_object_get(root, "headers");
    k->headers = json_is_object(h) ? json_incref(h) : json_object();
    bool ok = k->path[0] == '/' && k->status >= 100 && k->status <= 599 && k->body;
    if (!ok)
        snprintf(why, cap, "%.300s: needs an endpoint (or \"path\"), a status and a body", full);
    json_decref(root);
    if (!ok)
        case_clear(k);
    return ok;
}

enum MHD_Result sim_corpus_serve(sim_req *r)
{
    sim_corpus *c = r->srv->corpus;
    char why[512];
    if (!c)
        return sim_reply_error(r, sim_error, 404, "not in corpus mode (start with --replay-dir)");
    json_t *req = sim_body_json(r, why, sizeof(why));
    if (!req)
        return sim_reply_error(r, sim_error, 400, "%s", why);
    const char *file = json_string_value(json_object_get(req, "file"));
    const char *path = json_string_value(json_object_get(req, "path"));
    json_t *times = json_object_get(req, "times");
    enum MHD_Result res;
    corpus_case k;
    if (!file || (times && !json_is_integer(times))) {
        res =
            sim_reply_error(r, sim_error, 400, "expected {\"file\": F, \"times\": N, \"path\": P}");
    } else if (!case_load(c, file, path, &k, why, sizeof(why))) {
        res = sim_reply_error(r, sim_error, 400, "%s", why);
    } else {
        k.times = times ? (int)json_integer_value(times) : 1;
        pthread_mutex_lock(&c->lock);
        bool room = c->n_queue < CORPUS_MAX_QUEUE;
        if (room)
            c->queue[c->n_queue++] = k;
        pthread_mutex_unlock(&c->lock);
        if (!room) {
            case_clear(&k);
            res = sim_reply_error(r, sim_error, 400, "queue full (%d cases)", CORPUS_MAX_QUEUE);
        } else {
            res = sim_reply_json(r, 200,
                                 json_pack("{s:s, s:s, s:i, s:b}", "file", file, "path", k.path,
                                           "status", k.status, "simulated", 1),
                                 false, 0);
        }
    }
    json_decref(req);
    return res;
}

static enum MHD_Result send_case(sim_req *r, const char *body, size_t len, int status,
                                 json_t *headers)
{
    char *data = malloc(len ? len : 1);
    if (!data)
        return MHD_NO;
    memcpy(data, body, len);
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
    if (!resp) {
        free(data);
        return MHD_NO;
    }
    const char *k;
    json_t *v;
    json_object_foreach(headers, k, v)
    {
        /* libmicrohttpd frames the body itself. */
        if (json_is_string(v) && strcasecmp(k, "content-length") != 0 &&
            strcasecmp(k, "transfer-encoding") != 0)
            MHD_add_response_header(resp, k, json_string_value(v));
    }
    if (!json_object_get(headers, "content-type"))
        MHD_add_response_header(resp, "Content-Type", "application/json");
    MHD_add_response_header(resp, "X-Simulated", "true");
    r->status = status;
    r->note = "corpus";
    enum MHD_Result rc = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static void record(sim_corpus *c, sim_req *r)
{
    static const char *const keep[] = {"Content-Type", "Authorization", "x-api-key",
                                       "anthropic-version"};
    json_t *h = json_object();
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++) {
        const char *v = sim_header(r, keep[i]);
        if (v)
            json_object_set_new(h, keep[i], json_string(v));
    }
    json_t *body = json_loadb(ec_buf_cstr(&r->body), r->body.len, 0, NULL);
    if (!body)
        body = json_stringn(ec_buf_cstr(&r->body), r->body.len);
    json_t *e = json_pack("{s:s, s:s, s:o, s:o*}", "method", r->method, "path", r->path, "headers",
                          h, "body", body);
    pthread_mutex_lock(&c->lock);
    if (e && json_array_size(c->received) < CORPUS_MAX_RECEIVED)
        json_array_append(c->received, e);
    pthread_mutex_unlock(&c->lock);
    json_decref(e);
}

bool sim_corpus_answer(sim_req *r, enum MHD_Result *res)
{
    sim_corpus *c = r->srv->corpus;
    if (!c || strncmp(r->path, "/sim/", 5) == 0)
        return false;
    record(c, r);
    char *body = NULL;
    size_t len = 0;
    int status = 0;
    json_t *headers = NULL;
    pthread_mutex_lock(&c->lock);
    for (size_t i = 0; i < c->n_queue; i++) {
        corpus_case *k = &c->queue[i];
        if (strcmp(k->path, r->path) != 0)
            continue;
        body = malloc(k->len ? k->len : 1);
        if (body)
            memcpy(body, k->body, k->len);
        len = k->len;
        status = k->status;
        headers = json_incref(k->headers);
        if (k->times > 0 && --k->times == 0) {
            case_clear(k);
            memmove(k, k + 1, (c->n_queue - i - 1) * sizeof(*k));
            c->n_queue--;
        }
        break;
    }
    pthread_mutex_unlock(&c->lock);
    if (!status) {
        free(body);
        json_decref(headers);
        return false;
    }
    *res = body ? send_case(r, body, len, status, headers) : MHD_NO;
    free(body);
    json_decref(headers);
    return true;
}

enum MHD_Result sim_corpus_received(sim_req *r)
{
    sim_corpus *c = r->srv->corpus;
    if (!c)
        return sim_reply_error(r, sim_error, 404, "not in corpus mode (start with --replay-dir)");
    pthread_mutex_lock(&c->lock);
    json_t *copy = json_deep_copy(c->received);
    pthread_mutex_unlock(&c->lock);
    return sim_reply_json(r, 200, json_pack("{s:o, s:b}", "requests", copy, "simulated", 1), false,
                          0);
}

enum MHD_Result sim_corpus_forget(sim_req *r)
{
    sim_corpus *c = r->srv->corpus;
    if (!c)
        return sim_reply_error(r, sim_error, 404, "not in corpus mode (start with --replay-dir)");
    pthread_mutex_lock(&c->lock);
    json_array_clear(c->received);
    for (size_t i = 0; i < c->n_queue; i++)
        case_clear(&c->queue[i]);
    c->n_queue = 0;
    pthread_mutex_unlock(&c->lock);
    return sim_corpus_received(r);
}
