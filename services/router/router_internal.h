/* Private to the router: the struct and what router.c (the cascade) and
 * router_queue.c (journal, offline queue, breaker events) share. */
#ifndef EC_ROUTER_INTERNAL_H
#define EC_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "budget.h"
#include "cache.h"
#include "edgecascade/ledger.h"
#include "edgecascade/redact.h"
#include "gate.h"
#include "pending.h"
#include "router.h"
#include "router_metrics.h"
#include "window.h"

struct MHD_Daemon; /* libmicrohttpd, router_http.c */

#define HOP_GRACE_MS  2000 /* on top of a tier's own timeout: MQTT hops and queueing */
#define MAX_WORKERS   64
#define REPLAY_WINDOW 4 /* queued escalations replayed at once */

struct ec_router {
    ec_service *svc;
    /* Both swapped whole by a reload (router_reload.c): every r->cfg->x and
     * r->gate is an atomic load of a config or gate that stays valid until
     * the router is destroyed. */
    _Atomic(ec_config *) cfg;
    ec_store *store;
    ec_ledger *ledger;
    ec_journal *journal; /* NULL without a store */
    _Atomic(ec_gate *) gate;
    ec_pending_table *pending;
    ec_window *window; /* local requests out at once, and the queries waiting for one */
    atomic_uint_fast64_t next_key;
    char reply_topic[300];
    char query_topic[300];
    char infer_local[300];
    char infer_cloud[300];
    char breaker_prefix[300]; /* <root>/status/breaker/ */
    char breaker_filter[300];
    pthread_t workers[MAX_WORKERS];
    int n_workers;
    pthread_t sweeper;
    bool sweeper_started;
    pthread_t replayer;
    bool replayer_started;

    /* typical latency of each tier (EWMA of successful hops, ms), to tell a
     * deadline that cannot be met before a call is made */
    pthread_mutex_t stats_lock;
    double ewma_ms[EC_MAX_TIERS];

    /* replay of the offline queue */
    pthread_mutex_t replay_lock;
    pthread_cond_t replay_cond;
    int replay_inflight;
    int replay_failed; /* in the current round */
    bool replay_wake;

    pthread_mutex_t shadow_lock;
    uint64_t shadow_state; /* xorshift for gate.shadow_rate */

    /* observability: live metrics (router_metrics.c), the retained stats
     * topic (router_stats.c) and the HTTP server (router_http.c) */
    ec_metrics *metrics;
    char stats_topic[300];
    pthread_t stats_thread;
    bool stats_started;
    atomic_bool obs_stop;
    struct MHD_Daemon *http;
    unsigned http_port; /* the port bound, 0 when off */

    /* controls (router_controls.c): privacy, budget, cache */
    ec_redactor *redactor;
    ec_cache *cache;
    ec_budget *budget;
    char budget_topic[300]; /* <root>/status/budget */

    /* queries found in the journal at start, re-run once connected */
    ec_mqtt_msg **recovered;
    size_t n_recovered;

    /* router_reload.c */
    ec_router_reload_hook reload_hooks[EC_ROUTER_MAX_RELOAD_HOOKS];
    size_t n_reload_hooks;
    ec_gate **retired_gates; /* replaced by reloads, freed with the router */
    size_t n_retired_gates;
};

/* router.c */
void ec_router_publish_result(ec_router *r, ec_pending *p, const ec_result *res);
/* Moves res (and p's drafts) into a decision for the store. */
void ec_router_record(ec_router *r, ec_pending *p, ec_result *res);
void ec_router_copy_attempt(ec_attempt *dst, const ec_attempt *src);
void ec_router_dispatch(ec_router *r, ec_pending *p, int ti);
void ec_router_judge(ec_router *r, ec_pending *p, ec_infer_reply *rep);
void ec_router_on_query(ec_router *r, ec_mqtt_msg *msg);
size_t ec_router_local_window(ec_router *r);
/* Judges queries that waited too long for a local slot and sends those a
 * slot is free for (a raised limit, a slot freed without a hand-off). */
void ec_router_window_pass(ec_router *r);

/* router_shadow.c: gate.shadow_rate */
bool ec_router_shadow_pick(ec_router *r);
ec_query *ec_router_shadow_copy(const ec_pending *p);
/* Sends the copy (owned) to the first cloud tier. */
void ec_router_shadow_send(ec_router *r, ec_query *q);
/* The shadow call came back (or failed): recorded, p freed. */
void ec_router_shadow_done(ec_router *r, ec_pending *p);

/* router_reload.c: frees what reloads left behind (retired gates). */
void ec_router_reload_clear(ec_router *r);

/* router_queue.c */
/* Queues p's escalation to cloud tier ti; false when it could not be queued
 * (why in err). */
bool ec_router_enqueue(ec_router *r, ec_pending *p, int ti, ec_error *err);
/* A replayed escalation finished (ok) or failed again. */
void ec_router_replay_done(ec_router *r, ec_pending *p, bool ok);
void ec_router_on_breaker(ec_router *r, const ec_mqtt_msg *msg);
void ec_router_journal_arrival(ec_router *r, ec_mqtt_msg *msg);
/* Opens the journal, reads the queries journaled and not decided before a
 * crash (before connecting), and re-runs them (once connected). */
ec_err ec_router_journal_load(ec_router *r, ec_error *err);
void ec_router_journal_replay(ec_router *r);
void *ec_router_replayer_main(void *arg);
void ec_router_replay_wake(ec_router *r);

/* router_stats.c: the stats document. Built section by section (see the
 * table there) so another part of the router can add its own numbers. */
json_t *ec_router_stats_doc(ec_router *r);
/* Offline-queue depth, -1 without a store. */
long ec_router_queue_depth(ec_router *r);
/* Publishes the document retained on <root>/stats every stats.interval_s. */
ec_err ec_router_stats_start(ec_router *r, ec_error *err);
void ec_router_stats_stop(ec_router *r);

/* router_http.c: /metrics, /api/stats, /api/decisions and the dashboard on
 * http.bind:http.port (nothing when the port is 0). */
ec_err ec_router_http_start(ec_router *r, ec_error *err);
void ec_router_http_stop(ec_router *r);

/* router_controls.c: privacy.*, budget.*, cache.* */
ec_err ec_router_controls_create(ec_router *r, ec_error *err);
void ec_router_controls_destroy(ec_router *r);
/* Works out p->masked once (what a cloud tier may see); false when the
 * prompt cannot be masked (out of memory): it must not leave then. */
bool ec_router_mask(ec_router *r, ec_pending *p);
/* Looks p up in the cache: true (p->cached set) on a hit; on a miss keeps
 * p's key so finish() can store the answer. */
bool ec_router_cache_lookup(ec_router *r, ec_pending *p);
/* Stores res under p's key when it may be cached (accepted, not degraded,
 * not withheld, no error). */
void ec_router_cache_store(ec_router *r, const ec_pending *p, const ec_result *res,
                           int answer_attempt);
/* Fills the Result of a cache hit (tier "cache", cost 0). */
void ec_router_cache_result(const ec_pending *p, ec_result *res, char *reason, size_t n);
/* Counts cloud spend; publishes the budget state when it changes. */
void ec_router_budget_spent(ec_router *r, double usd);
/* Whether a cloud call may start now; why names the cap when not. */
bool ec_router_budget_allows(ec_router *r, char *why, size_t n);
/* Publishes <root>/status/budget (retained) when the state changed, or always with force. */
void ec_router_budget_publish(ec_router *r, bool force);

#endif
