/* What the three services share at start-up and shutdown: the command line
 * (--config, --broker, --help, --version), loading and checking the config,
 * logging, signals (handlers only set a flag), the MQTT client with its
 * retained status and Last Will, topic names, systemd readiness (notify.h)
 * and the common half of a reload (SIGHUP).
 *
 * Reload. The signal only sets a flag; the service's main loop sees it
 * (ec_service_reload_requested), reads the file again with
 * ec_service_reload_prepare (loaded, validated, and refused when a key that
 * needs a restart changed), builds what depends on it, and then either
 * commits (the new config becomes the one in force: one atomic store) or
 * rejects (the reason is logged and published in the status; the old config
 * stays). A replaced config is kept until shutdown, never freed while the
 * service runs: a worker that loaded the old pointer just before the swap
 * finishes its query with it. Reloads are rare, so this costs little. */
#ifndef EC_SERVICE_H
#define EC_SERVICE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/config.h"
#include "edgecascade/mqtt.h"

/* One model "auto" tier of edgecascade-local, as its status reports it. */
typedef struct ec_service_model {
    char tier[128];
    char model[128]; /* "" when none found yet */
    char state[16];  /* serving | missing | unknown */
    char error[512];
} ec_service_model;

#define EC_SERVICE_MAX_MODELS 8

/* Whether a local tier's server returns token logprobs, as answers show. */
typedef struct ec_service_lp {
    char tier[128];
    char model[128];
    char state[16]; /* ok | unavailable */
} ec_service_lp;

struct ec_service_retired;

typedef struct ec_service {
    const char *name; /* "router", "local", "relay" */
    ec_config cfg;
    ec_mqtt *mqtt;
    char client_id[96];
    char status_topic[256];
    ec_mqtt_overflow_fn on_overflow; /* optional, set before ec_service_connect */
    ec_mqtt_arrival_fn on_arrival;   /* optional, same ctx */
    void *overflow_ctx;

    /* reload */
    char *config_path;         /* --config, NULL for the built-in defaults */
    char *broker_arg;          /* --broker, applied to every reload as well */
    _Atomic(ec_config *) live; /* the config in force: &cfg, or the last reload's */
    struct ec_service_retired *retired;
    pthread_mutex_t status_lock; /* the fields below */
    uint64_t config_ts_ms;
    char config_error[1024];
    ec_service_model models[EC_SERVICE_MAX_MODELS];
    size_t n_models;
    ec_service_lp lp[EC_SERVICE_MAX_MODELS];
    size_t n_lp;
} ec_service;

/* Parses argv, loads the config and sets up logging. Returns 0 to go on,
 * otherwise the exit code (0 after --help/--version, 2 on usage or config
 * errors, with the message already printed). */
int ec_service_init(ec_service *s, const char *name, const char *summary, int argc, char **argv);

/* Creates the MQTT client, subscribes to the given filters (NULL-terminated)
 * and connects, retrying until the broker answers or a signal arrives. */
ec_err ec_service_connect(ec_service *s, const char *const *filters, ec_error *err);

/* Broker credentials for one program (ec_service_init calls it with the
 * service's name; the CLI may call it with its own): every "{service}" in
 * mqtt.username and mqtt.password_file becomes name, so one shared config
 * gives each service its own broker user; then, when mqtt.password is empty,
 * the first line of mqtt.password_file becomes it (never logged). */
ec_err ec_service_credentials(ec_config *cfg, const char *name, ec_error *err);

/* True once SIGTERM or SIGINT arrived. */
bool ec_service_stopping(void);

/* The configuration in force (an atomic load; valid until shutdown). */
ec_config *ec_service_config(ec_service *s);

/* True once per SIGHUP (the flag is cleared). */
bool ec_service_reload_requested(void);
/* Reads the config file again (the one given with --config, with --broker
 * applied) and checks it: on success *out is a new config (the caller passes
 * it to commit or reject); on failure err says why, naming the key ("... needs
 * a restart" for keys that cannot change while running). */
ec_err ec_service_reload_prepare(ec_service *s, ec_config **out, ec_error *err);
/* Makes next the config in force (log level included), keeps the old one
 * until shutdown, clears the status's config_error and republishes it. */
void ec_service_reload_commit(ec_service *s, ec_config *next, double took_ms);
/* Frees next (may be NULL), logs why and publishes it as the status's
 * config_error; the config in force stays. */
void ec_service_reload_reject(ec_service *s, ec_config *next, const char *why);

/* edgecascade-local: the models its "auto" tiers use; republishes the status. */
void ec_service_set_models(ec_service *s, const ec_service_model *models, size_t n);

/* edgecascade-local: whether tier's server returns token logprobs ("ok" or
 * "unavailable"); the status shows it as the tier's models[].logprobs (an
 * entry is added for a tier that is not "auto"). Republishes the status when
 * it changes. */
void ec_service_set_logprobs(ec_service *s, const char *tier, const char *model, const char *state);

/* Tells systemd (Type=notify) the service is ready, with a status line. */
void ec_service_ready(ec_service *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Tells systemd the service is stopping (once; also done by shutdown). */
void ec_service_notify_stopping(void);

/* Publishes offline, disconnects, frees everything. */
void ec_service_shutdown(ec_service *s);

/* Writes "<root>/<suffix>" into out; returns out, or NULL when it does not fit. */
char *ec_topic(const ec_config *cfg, char *out, size_t outlen, const char *suffix);

#endif
