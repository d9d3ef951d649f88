/* edgecascade-sim internals: the server state shared by every connection
 * thread, the per-request context and the reply helpers the API files use.
 *
 * Threading: libmicrohttpd runs one thread per connection, so a handler may
 * sleep (latency, hang) without holding anything up. The script is read-only
 * after start-up; faults and counters sit behind srv->lock. */
#ifndef SIM_H
#define SIM_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <jansson.h>

#include "edgecascade/buf.h"
#include "sim_script.h"

#define SIM_MAX_BODY      (8u * 1024u * 1024u)
#define SIM_LAST_BODY_MAX (256u * 1024u)

typedef struct sim_server {
    sim_script *script;   /* owned; read-only while serving */
    pthread_mutex_t lock; /* guards the arrays below */
    sim_fault *faults;    /* current fault per model (script's, or set by POST /sim/faults) */
    unsigned *fault_hits; /* requests the current fault applied to, for "times" */
    uint64_t *requests;   /* chat requests per model, on any API */
    uint64_t *faulted;    /* of which a fault answered */
    char **last_body;     /* the last chat request's body per model (tests check what
                           * left the device), at most SIM_LAST_BODY_MAX bytes */
    bool *unlisted;       /* POST /sim/models: taken off the server, as if unloaded */
    atomic_bool stopping; /* set before the daemon stops: sleeping handlers give up */
    atomic_uint_fast64_t sampled; /* requests at temperature > 0 so far (rule samples) */
    struct sim_replay *replay;    /* replay mode (sim_replay.h): not owned; NULL = script */
    struct sim_corpus *corpus;    /* corpus mode (sim_corpus.h): not owned; NULL = off */
} sim_server;

/* Takes ownership of script (also on failure). */
ec_err sim_server_init(sim_server *srv, sim_script *script, ec_error *err);
void sim_server_clear(sim_server *srv);

typedef struct sim_req {
    sim_server *srv;
    struct MHD_Connection *conn;
    char method[16];
    char path[256];
    ec_buf body;
    bool too_big;
    double t0_ms;
    char model[128]; /* for the log line */
    int status;      /* for the log line; 0 = no response sent */
    const char *note;
} sim_req;

/* Builds an API-specific error body for status. */
typedef json_t *(*sim_error_fn)(int status, const char *message);

/* Sends data (taken, heap) with X-Simulated and, when retry_after > 0, Retry-After. */
enum MHD_Result sim_reply(sim_req *r, int status, const char *ctype, char *data, size_t len,
                          int retry_after);
/* Sends body (reference stolen). malformed cuts the serialised JSON in half. */
enum MHD_Result sim_reply_json(sim_req *r, int status, json_t *body, bool malformed,
                               int retry_after);
enum MHD_Result sim_reply_error(sim_req *r, sim_error_fn fn, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Drops the connection with a TCP reset and no response. */
enum MHD_Result sim_reset(sim_req *r);

const char *sim_header(sim_req *r, const char *name);
/* true when the Authorization header is "Bearer <key>". */
bool sim_bearer_ok(sim_req *r, const char *key);
/* Parses the request body as a JSON object; NULL (and a message in why) when it is not. */
json_t *sim_body_json(sim_req *r, char *why, size_t why_len);
/* 0 for a greedy request (temperature absent, null or 0); else the next
 * sample number (1, 2, ...), for sim_answer_make. */
uint64_t sim_sample_number(sim_server *srv, json_t *temperature);
/* Sleeps ms in short steps; false when the server began stopping meanwhile. */
bool sim_sleep(sim_server *srv, unsigned ms);
/* RFC 3339 UTC time with nanoseconds, as Ollama writes it. out holds 40 bytes. */
void sim_rfc3339_now(char out[40]);

/* Counts a chat request for model m and runs its fault. Returns true when the
 * handler should answer normally (with *malformed telling it to corrupt the
 * body); false when the fault already answered, with *res to return. */
bool sim_model_enter(sim_req *r, size_t m, sim_error_fn fn, bool *malformed, enum MHD_Result *res);

/* Index of the script's model called name if the server serves it now
 * (not taken off with POST /sim/models), else -1. */
long sim_served_model(sim_server *srv, const char *name);
/* Whether model i is listed now (under the lock). */
bool sim_model_listed(sim_server *srv, size_t i);

/* Endpoints. */
enum MHD_Result sim_openai_chat(sim_req *r);
enum MHD_Result sim_openai_models(sim_req *r);
json_t *sim_openai_error(int status, const char *message);
enum MHD_Result sim_anthropic_messages(sim_req *r);
enum MHD_Result sim_ollama_chat(sim_req *r);
enum MHD_Result sim_ollama_tags(sim_req *r);
json_t *sim_ollama_error(int status, const char *message);
enum MHD_Result sim_faults_post(sim_req *r);
enum MHD_Result sim_faults_get(sim_req *r);
enum MHD_Result sim_models_post(sim_req *r);
enum MHD_Result sim_stats_get(sim_req *r);
enum MHD_Result sim_stats_delete(sim_req *r);

/* Starts the HTTP daemon on bind:port (port 0 picks one); *bound gets the port. */
struct MHD_Daemon *sim_http_start(sim_server *srv, const char *bind, uint16_t port, uint16_t *bound,
                                  ec_error *err);

#endif
