/* The ledger: the small records that must be on disk *before* something is
 * acknowledged, in the same SQLite file as the decision log (schema in
 * store.c), on the store's write connection and written synchronously.
 *
 *  - outbox: escalations waiting for the cloud (store-and-forward). An item is
 *    written before the caller is told "degraded, queued"; the cloud's answer
 *    is written into it before it is published, so a crash mid-replay neither
 *    loses the query nor calls (bills) the cloud twice.
 *  - breaker_events and queue_events: transitions and queue fates, recorded.
 *
 * Durability: WAL with synchronous=NORMAL, like the decision log: a process
 * crash loses nothing written; a power cut may lose the last moments of
 * writes, never the file. Thread-safe (one lock around the connection). */
#ifndef EC_LEDGER_H
#define EC_LEDGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/err.h"
#include "edgecascade/journal.h"
#include "edgecascade/mqtt.h"

typedef struct ec_ledger ec_ledger;

/* Uses the store's write connection (under the store's lock, so a ledger
 * write waits at most for one batch of decisions, never in SQLite's
 * millisecond busy-sleep). Close the ledger before the store. */
struct ec_store;
ec_err ec_ledger_open(ec_ledger **out, struct ec_store *store, ec_error *err);
void ec_ledger_close(ec_ledger *l);

/* ---- the journal of an older build ----
 * Builds before schema 6 kept the arrival journal in this file. Each row an
 * older router left undecided is handed to fn once (fn takes ownership, tag is
 * the old id), then the table is emptied: the caller journals them anew. */
ec_err ec_ledger_take_old_journal(ec_ledger *l, ec_journal_fn fn, void *ctx, size_t *count,
                                  ec_error *err);

/* ---- outbox ---- */
typedef struct ec_outbox_item {
    int64_t id;
    char *query_id;
    uint64_t enqueued_ms;
    uint64_t expires_ms;
    uint64_t arrived_ms; /* when the query first arrived (epoch ms) */
    uint32_t tier_index; /* the cloud tier to ask */
    double prior_cost_usd;
    void *query; /* the Query, msgpack */
    size_t query_len;
    int encoding; /* ec_encoding of the caller */
    char *response_topic;
    char *asker; /* who asked (the broker-verified user), or NULL */
    void *corr;
    size_t corr_len;
    bool answered; /* the cloud answered; reply holds its InferReply (msgpack) */
    void *reply;
    size_t reply_len;
    int tries;
} ec_outbox_item;

void ec_outbox_item_clear(ec_outbox_item *it);

/* Queues it (id is set). When max items are already queued: drop_oldest
 * removes the oldest (its query id is returned in *dropped, caller frees) and
 * records that; otherwise EC_ERR_BUSY and nothing changes. */
ec_err ec_outbox_push(ec_ledger *l, ec_outbox_item *it, int max, bool drop_oldest, char **dropped,
                      ec_error *err);
/* The oldest item with id > after_id; EC_ERR_NOTFOUND when none. */
ec_err ec_outbox_next(ec_ledger *l, int64_t after_id, ec_outbox_item *out, ec_error *err);
/* The oldest item whose expiry passed; EC_ERR_NOTFOUND when none. */
ec_err ec_outbox_next_expired(ec_ledger *l, uint64_t now_ms, ec_outbox_item *out, ec_error *err);
ec_err ec_outbox_answered(ec_ledger *l, int64_t id, const void *reply, size_t len, ec_error *err);
ec_err ec_outbox_tried(ec_ledger *l, int64_t id, ec_error *err);
ec_err ec_outbox_delete(ec_ledger *l, int64_t id, ec_error *err);
size_t ec_outbox_count(ec_ledger *l);

/* ---- events ---- */
/* Duplicates (same instance, tier and seq) are ignored. */
ec_err ec_ledger_breaker_event(ec_ledger *l, uint64_t ts_ms, const char *instance, const char *tier,
                               const char *model, const char *state, int64_t seq,
                               const char *reason, ec_error *err);
ec_err ec_ledger_queue_event(ec_ledger *l, const char *query_id, const char *event,
                             const char *detail, ec_error *err);

#endif
