/* Private to the router: the struct and what router.c (the cascade) and
 * router_queue.c (journal, offline queue, breaker events) share. */
#ifndef EC_ROUTER_INTERNAL_H
#define EC_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>

#include "edgecascade/ledger.h"
#include "gate.h"
#include "pending.h"
#include "router.h"

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
    _Atomic(ec_gate *) gate;
    ec_pending_table *pending;
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
/* Reads the queries journaled before a crash (before connecting), and
 * re-runs them (once connected). */
ec_err ec_router_journal_load(ec_router *r, ec_error *err);
void ec_router_journal_replay(ec_router *r);
void *ec_router_replayer_main(void *arg);
void ec_router_replay_wake(ec_router *r);

#endif
