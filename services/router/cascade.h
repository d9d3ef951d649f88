/* Stage 3, cascade: the tiers, the quality gate, failover and the offline
 * queue.
 *
 * Takes: p from ADMISSION with p->tier the first tier to ask; or p resumed
 * here with a reply to judge (p->has_reply: a tier's answer, a timeout, a
 * refused hop) or with a slot of the local window.
 * Does: sends an InferRequest to <root>/infer/local or /cloud (Response Topic
 * = the router's reply topic, Correlation Data = an 8-byte hop key) and parks
 * p in the pending table (EC_STAGE_WAIT); or, for a local tier past the
 * window (router.local_inflight), parks p in the window. Judges each reply
 * with the gate: accept, escalate to the next tier, fail over to a stand-in,
 * queue the escalation offline (offline.h) or serve the best draft.
 * Hands on: an outcome to EGRESS; a shadow call's record to RECORD; a
 * replayed escalation that failed again to DONE (it stays queued).
 * Owns: the pending table and the window (admission and the observers read
 * their counts), the hop keys, each tier's typical latency.
 * Threads: workers (replies), the sweeper (timeouts, the window's pass), the
 * offline queue's replay thread (replays), all through ec_pipeline_run. */
#ifndef EC_ROUTER_CASCADE_H
#define EC_ROUTER_CASCADE_H

#include "controls.h"
#include "offline.h"
#include "orphans.h"
#include "pending.h"
#include "shadow.h"
#include "stage.h"
#include "window.h"

typedef struct ec_cascade ec_cascade;

ec_err ec_cascade_create(ec_cascade **out, ec_router_env *env, ec_controls *controls,
                         ec_shadow *shadow, ec_orphans *orphans, ec_error *err);
/* Frees the cascade, and the queries still in its table and window. */
void ec_cascade_destroy(ec_cascade *c);
/* Set once, before any query: the offline queue escalations go to. */
void ec_cascade_set_offline(ec_cascade *c, ec_offline *offline);

/* The stage handler. */
ec_stage_rc ec_cascade_run(ec_cascade *c, ec_pending *p);

/* A reply on the router's reply topic: the flight it belongs to, with the
 * reply attached (run it), or NULL (late, duplicate or unreadable key).
 * *handed is a waiting flight that got the freed local slot (run it too). */
ec_pending *ec_cascade_reply(ec_cascade *c, const ec_mqtt_msg *msg, ec_pending **handed);
/* Paid replies kept longer than keep_ms without their query (orphans.h):
 * flights that append them to their query's decision (RECORD), chained
 * through next. */
ec_pending *ec_cascade_stale_orphans(ec_cascade *c, double now_ms, double keep_ms);
/* The sweeper's pass: hops past their deadline (a timeout attached), queries
 * that waited too long for a local slot (busy attached) and queries a slot
 * is free for, chained through next; run each. */
ec_pending *ec_cascade_sweep(ec_cascade *c, double now_ms);

bool ec_cascade_is_reply(const ec_cascade *c, const char *topic);
/* Paho's thread, before the acknowledgement: what a tier's reply is to the
 * journal. A local hop's answer costs nothing twice; a cloud hop's is paid
 * (*journal_id: its query's journal id, 0 when the query is not journaled);
 * one no hop waits for (late, or meant for the router's last run) may be
 * paid too. */
typedef enum ec_reply_kind {
    EC_REPLY_LOCAL,
    EC_REPLY_PAID,
    EC_REPLY_UNEXPECTED,
} ec_reply_kind;
ec_reply_kind ec_cascade_reply_kind(ec_cascade *c, const ec_mqtt_msg *msg, int64_t *journal_id);
const char *ec_cascade_reply_topic(const ec_cascade *c);

/* What the observers and admission read. */
ec_pending_table *ec_cascade_pending(ec_cascade *c);
ec_window *ec_cascade_window(ec_cascade *c);
size_t ec_cascade_local_window(const ec_cascade *c);

#endif
