/* The router: the cascade's decision maker (docs/ARCHITECTURE.md).
 *
 * A query arrives on <root>/query and walks forward through the stages of a
 * pipeline (stage.h, pipeline.c): ingress (decode, journal), admission
 * (limits, cache, first tier), cascade (tiers, the gate, failover, offline
 * queue), egress (the Result to the client's Response Topic and
 * <root>/result/<id>) and record (the decision to the SQLite log).
 *
 * Threads: Paho's callback only journals and queues; `router.workers`
 * threads take queries and replies off that queue and run them through the
 * pipeline; one sweeper thread turns hops that outlived their deadline into
 * timeout errors and admits queries waiting for a local slot; the offline
 * queue has its replay thread; the store has its own writer thread. A
 * query's state lives in the cascade's pending table between hops, so no
 * thread ever waits on a model.
 *
 * This file wires the stages together; the getters below are what the
 * observers (observe.h) read. */
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

/* For the observers (observe.h). */
struct ec_metrics;
struct ec_budget_snapshot;
struct ec_metrics *ec_router_metrics(ec_router *r);
const ec_config *ec_router_config(ec_router *r);
ec_service *ec_router_service(ec_router *r);
/* Queries waiting for a slot to the local model. */
size_t ec_router_waiting_local(ec_router *r);
/* Offline-queue depth, -1 without a store. */
long ec_router_queue_depth(ec_router *r);
/* Cloud spend against the caps. */
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
