/* The router: the cascade's decision maker.
 *
 * A query arrives on <root>/query; the router sends an InferRequest to the
 * first eligible tier (<root>/infer/local or /cloud, Response Topic = the
 * router's own reply topic, Correlation Data = an 8-byte hop key), judges the
 * reply with the quality gate, and either accepts it or escalates to the next
 * tier. The Result goes to the client's Response Topic (with its Correlation
 * Data) and to <root>/result/<id>; every decision goes to the SQLite log.
 *
 * Threads: Paho's callback only queues; `workers` threads take queries and
 * replies off that queue; one sweeper thread turns hops that outlived their
 * deadline into timeout errors; the store has its own writer thread. A query's
 * state lives in the pending table between hops, so no thread ever waits on a
 * model. */
#ifndef EC_ROUTER_H
#define EC_ROUTER_H

#include "edgecascade/service.h"
#include "edgecascade/store.h"

typedef struct ec_router ec_router;

ec_err ec_router_create(ec_router **out, ec_service *svc, ec_store *store, ec_error *err);
/* Starts the workers and the sweeper; returns when they are running. */
ec_err ec_router_start(ec_router *r, ec_error *err);
/* Stops the threads (after the MQTT queue closes) and frees the router. */
void ec_router_destroy(ec_router *r);

/* Queries waiting on a tier. */
size_t ec_router_inflight(ec_router *r);

/* The filter for the relay's breaker states, which the router records. */
const char *ec_router_breaker_filter(const ec_router *r);

/* Applies a new configuration's privacy.*, budget.* and cache.* to a running
 * router (for a reload); on error (a pattern that does not compile) nothing
 * changes. The cache is emptied, since the tiers behind it may have changed. */
ec_err ec_router_controls_configure(ec_router *r, const ec_config *cfg, ec_error *err);

/* Cloud spend against the caps, for the stats document. */
struct ec_budget_snapshot;
void ec_router_budget_snapshot(ec_router *r, struct ec_budget_snapshot *out);

/* The topic the router listens on for tier replies. */
const char *ec_router_reply_topic(const ec_router *r);

/* A module's part in a reload (budget, cache, redaction...). check runs for
 * every hook before anything applies and may refuse the new config (err says
 * why; the whole reload is then refused); apply cannot fail and runs once
 * every check passed, just before next becomes the config in force. Either
 * may be NULL. They run on the router's main thread. */
typedef struct ec_router_reload_hook {
    const char *name; /* for the log, e.g. "budget" */
    ec_err (*check)(void *ctx, const ec_config *next, ec_error *err);
    void (*apply)(void *ctx, const ec_config *next);
    void *ctx;
} ec_router_reload_hook;

#define EC_ROUTER_MAX_RELOAD_HOOKS 8

/* Registers a hook (copied), in call order. */
ec_err ec_router_add_reload_hook(ec_router *r, const ec_router_reload_hook *h, ec_error *err);

/* SIGHUP: reads the config file again. Applies it (thresholds, presets,
 * calibration, shadow rate, samples, tier costs and timeouts, queue TTL and
 * caps, log level, and whatever the hooks take) or refuses it as a whole,
 * with the reason logged and published on the router's status; queries in
 * flight finish either way. EC_OK when it applied. */
ec_err ec_router_reload(ec_router *r, ec_error *err);

#endif
