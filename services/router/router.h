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

#endif
