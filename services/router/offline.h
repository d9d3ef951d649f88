/* The offline queue of escalations (store-and-forward), part of the cascade.
 *
 * When a cloud tier fails for outage reasons (breaker open, timeouts, 5xx,
 * budget cap) and the query's policy allows the cloud, the cascade pushes its
 * escalation into the ledger's outbox (ec_offline_enqueue) before the caller
 * gets the local draft (degraded). The replay thread retries the queue every
 * router.replay_interval_ms, and at once when the relay reports a breaker
 * closed: up to REPLAY_WINDOW items at a time, oldest first. Each replay is a
 * new flight (revision 2, p->outbox_id) submitted at the CASCADE stage; its
 * on_done callback deletes the item when it was answered and recorded, or
 * marks it tried (it stays queued and the round ends). A cloud answer is kept
 * in the outbox before anything is published (ec_offline_answered), so a
 * crash after it republishes instead of paying again. Expired items
 * (router.queue_ttl_s, or the query's MQTT Message Expiry when shorter) are
 * removed and announced with a revision 2 carrying error "expired" (a flight
 * submitted at EGRESS that is not recorded). While a budget cap is reached
 * nothing new is sent; items still expire.
 *
 * Threads: enqueue/answered on workers; the replay thread; on_breaker on
 * workers (breaker states also go to the metrics and the ledger). */
#ifndef EC_ROUTER_OFFLINE_H
#define EC_ROUTER_OFFLINE_H

#include "controls.h"
#include "edgecascade/ledger.h"
#include "pending.h"
#include "router_metrics.h"
#include "stage.h"

typedef struct ec_offline ec_offline;

/* How the replay thread hands a flight to the pipeline (ec_pipeline_run). */
typedef void (*ec_submit_fn)(void *ctx, ec_pending *p);

/* ledger may be NULL: then nothing is queued and there is no replay thread. */
ec_err ec_offline_create(ec_offline **out, ec_router_env *env, ec_ledger *ledger,
                         ec_controls *controls, ec_metrics *metrics, ec_submit_fn submit,
                         void *submit_ctx, ec_error *err);
/* Starts the replay thread (once connected). */
ec_err ec_offline_start(ec_offline *o, ec_error *err);
/* Stops the replay thread and frees. */
void ec_offline_destroy(ec_offline *o);

/* Whether an escalation can be queued at all (a ledger and offline_queue on). */
bool ec_offline_enabled(const ec_offline *o);
/* Queues p's escalation to cloud tier ti; false when it could not be queued
 * (why in err). */
bool ec_offline_enqueue(ec_offline *o, ec_pending *p, int ti, ec_error *err);
/* A replayed escalation's cloud reply arrived: kept before it is judged. */
void ec_offline_answered(ec_offline *o, const ec_pending *p, const void *reply, size_t len);
/* A breaker status message from the relay. */
void ec_offline_on_breaker(ec_offline *o, const ec_mqtt_msg *msg);
/* Replay now (a reload may have changed the interval or TTL). */
void ec_offline_wake(ec_offline *o);
/* Items waiting, -1 without a ledger. */
long ec_offline_depth(ec_offline *o);

#endif
