/* Integration harness: a real Mosquitto on a free loopback port, the model
 * simulator and the edgecascade services as separate processes, all under a
 * fresh temporary directory. Logs of every process stay in that directory and
 * are printed when a test fails. */
#ifndef EC_HARNESS_H
#define EC_HARNESS_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"

typedef struct ech_proc {
    pid_t pid;
    char name[32];
    char log[512];
    bool reaped;    /* exited and waited for (by ech_alive or the stop) */
    int status;     /* its wait status once reaped */
    bool stop_kill; /* the harness had to SIGKILL it: it ignored SIGTERM */
} ech_proc;

typedef struct ech {
    char dir[256];
    int mqtt_port;
    int sim_port;
    char uri[64];
    char root[128];
    char config[512];
    char db[512];
    char script[512];
    ech_proc broker, sim, router, local, relay;
    bool broker_persist; /* Mosquitto keeps sessions and messages across restarts */
    /* ech_start_broker writes only the listener, anonymous access and the log
     * destination: Mosquitto's defaults otherwise (max_queued_messages 1000,
     * max_inflight_messages 20, no TCP_NODELAY), as a stock install runs. */
    bool broker_stock;
    ec_mqtt *client; /* the test's own MQTT client */
    char reply_topic[256];
    /* Credentials and CA for the harness's own status watcher (ech_start_one),
     * for a broker with authentication and TLS; NULL (the default): none. */
    const char *mqtt_user;
    const char *mqtt_password;
    const char *mqtt_ca_file;
} ech;

/* Creates the temp dir and picks ports. */
void ech_init(ech *h, const char *test_name);
int ech_free_port(void);

/* Broker: writes mosquitto.conf (set_tcp_nodelay true, max_queued_messages
 * 10000; neither with h->broker_stock) and starts it; waits until it accepts
 * connections. */
void ech_start_broker(ech *h);
/* Starts Mosquitto with a configuration file the caller wrote, which must
 * listen on h->mqtt_port (127.0.0.1); waits until the port accepts
 * connections. The TLS and password tests use it. */
void ech_start_broker_conf(ech *h, const char *conf);
void ech_stop_broker(ech *h);
/* Starts another Mosquitto (e.g. a central broker for a bridge) with the
 * given config, listening on port; log in <dir>/<name>.log. Stop it with
 * ech_stop before ech_teardown. */
void ech_start_mosquitto(ech *h, ech_proc *p, const char *name, const char *conf, int port);

/* Simulator with the given script file (NULL: deploy/sim-script.json). */
void ech_start_sim(ech *h, const char *script);
/* Same, in corpus mode (--replay-dir corpus_dir, POST /sim/serve) when
 * corpus_dir is not NULL. */
void ech_start_sim_corpus(ech *h, const char *script, const char *corpus_dir);

/* Writes h->config: topic root, broker, store path, sim tiers (local
 * llama3.2-1b on the sim, cloud gpt-4o-mini on the sim via openai provider with
 * an api key env) plus extra YAML appended verbatim (may be NULL). */
void ech_write_config(ech *h, const char *extra_yaml);
/* The tiers section ech_write_config uses (YAML text into tiers). */
void ech_default_tiers(const ech *h, char *tiers, size_t n);
/* Same but with the tiers section given by the caller. */
void ech_write_config_tiers(ech *h, const char *tiers_yaml, const char *extra_yaml);

/* Starts router, local and relay with --config h->config and waits until
 * each has published its retained online status. */
void ech_start_services(ech *h);
void ech_start_one(ech *h, ech_proc *p, const char *name);
/* Stops everything still running (SIGTERM, then SIGKILL), checks how the
 * edgecascade processes ended, and removes the temp dir. Fails the test,
 * keeping the dir and printing the reports, when a service (or the
 * simulator) exited non-zero, died of a signal other than a SIGKILL sent by
 * the test itself, ignored SIGTERM, or wrote a sanitizer report.
 *
 * Every process the harness starts (but Mosquitto) gets ASAN_OPTIONS and
 * UBSAN_OPTIONS with log_path=<dir>/<name>.san (halt on the first error, leak
 * check at exit); outside a sanitizer build they are ignored. With
 * EC_SERVICE_WRAPPER set (e.g. "valgrind --leak-check=full --error-exitcode=99"),
 * its words are put in front of each such command line; see `make valgrind`. */
void ech_teardown(ech *h);
/* Stops one process (SIGTERM, then SIGKILL after a while) and returns its
 * wait status; ech_teardown still checks how it ended. */
int ech_stop(ech_proc *p);
/* Resident set size of a running process in kB (VmRSS), -1 if unknown. */
long ech_rss_kb(const ech_proc *p);
/* kill -9, as a crash would; reaped at once. */
void ech_kill9(ech_proc *p);
/* True if the process is still running. */
bool ech_alive(ech_proc *p);
void ech_dump_logs(ech *h);

/* Connects the test client (h->client) and subscribes to h->reply_topic. */
void ech_connect_client(ech *h);
/* Publishes payload on <root>/query with Response Topic h->reply_topic and the
 * given correlation data, and waits for the matching reply. Returns the
 * message (caller frees) or NULL on timeout. */
ec_mqtt_msg *ech_request(ech *h, const void *payload, size_t len, const char *corr, int timeout_ms);
/* Sends a text query (msgpack) and decodes the result. 0 on success. */
int ech_ask(ech *h, const char *prompt, const char *policy, ec_result *out, int timeout_ms);

/* A request to http://127.0.0.1:<port><path> (the router's HTTP server,
 * http.port), retried while nothing listens yet: the server starts after the
 * online status. POST sends a small form body. body is NUL-terminated, never
 * NULL (caller frees); a transport error fails the test. */
typedef struct ech_http_resp {
    long status;
    char ctype[128];
    char *body;
    size_t len;
} ech_http_resp;
ech_http_resp ech_http(int port, const char *method, const char *path);

/* Returns the simulator's request count for a model (GET /sim/stats). */
long ech_sim_requests(ech *h, const char *model);
/* The body of the last chat request the simulator got for a model (heap
 * string), or NULL when none. */
char *ech_sim_last_request(ech *h, const char *model);
/* Sets a fault on the simulator (POST /sim/faults with the given JSON body). */
void ech_sim_fault(ech *h, const char *json);
/* POSTs a JSON body to one of the simulator's control endpoints (/sim/...). */
void ech_sim_post(ech *h, const char *path, const char *json);
/* Corpus mode: queues a published body (a file under the --replay-dir
 * directory) for the next `times` requests to path (NULL: the file's
 * endpoint; times 0: every request); fails the test when the simulator
 * refuses the case. */
void ech_sim_serve(ech *h, const char *file, const char *path, int times);
/* Corpus mode: the model API requests the simulator received (GET
 * /sim/received), as the JSON text of the "requests" array (heap string). */
char *ech_sim_received(ech *h);
/* Corpus mode: how many of those went to path. */
long ech_sim_received_on(ech *h, const char *path);

/* Runs a query against the SQLite store and returns the first column of the
 * first row as a heap string (NULL when no row). */
char *ech_sql(ech *h, const char *sql);
long ech_sql_long(ech *h, const char *sql);
/* Polls a count until it reaches want or 5 s pass (the decision writer
 * batches); returns the last count. */
long ech_sql_wait(ech *h, const char *sql, long want);
/* Rows in the router's arrival journal (journal.h), waiting up to settle_ms
 * for it to empty (the decision writer clears rows just after its commit). */
long ech_journal_rows(ech *h, int settle_ms);

#endif
