/* The ledger (see ledger.h): synchronous side records next to the decision
 * log. Every statement is prepared once; every write is its own short
 * transaction (autocommit), because each must be on disk before the caller
 * goes on. */
#include "edgecascade/ledger.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "store_internal.h"

enum {
    ST_JOURNAL_ALL,
    ST_JOURNAL_CLEAR,
    ST_OUTBOX_ADD,
    ST_OUTBOX_COUNT,
    ST_OUTBOX_OLDEST,
    ST_OUTBOX_NEXT,
    ST_OUTBOX_EXPIRED,
    ST_OUTBOX_ANSWERED,
    ST_OUTBOX_TRIED,
    ST_OUTBOX_DELETE,
    ST_BREAKER_EVENT,
    ST_QUEUE_EVENT,
    ST_BEGIN,
    ST_COMMIT,
    ST_ROLLBACK,
    ST__COUNT
};

static const char *const sql[ST__COUNT] = {
    [ST_JOURNAL_ALL] = "SELECT id, received_ms, topic, payload, response_topic, corr, expiry_s"
                       " FROM journal ORDER BY id",
    [ST_JOURNAL_CLEAR] = "DELETE FROM journal",
    [ST_OUTBOX_ADD] = "INSERT INTO outbox (query_id, enqueued_ms, expires_ms, arrived_ms,"
                      " tier_index, prior_cost_usd, query, encoding, response_topic, corr, asker)"
                      " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    [ST_OUTBOX_COUNT] = "SELECT count(*) FROM outbox",
    [ST_OUTBOX_OLDEST] = "SELECT id, query_id FROM outbox ORDER BY id LIMIT 1",
    [ST_OUTBOX_NEXT] = "SELECT id, query_id, enqueued_ms, expires_ms, arrived_ms, tier_index,"
                       " prior_cost_usd, query, encoding, response_topic, corr, state, reply,"
                       " tries, asker FROM outbox WHERE id > ?1 ORDER BY id LIMIT 1",
    [ST_OUTBOX_EXPIRED] = "SELECT id, query_id, enqueued_ms, expires_ms, arrived_ms, tier_index,"
                          " prior_cost_usd, query, encoding, response_topic, corr, state, reply,"
                          " tries, asker FROM outbox WHERE expires_ms <= ?1 AND state = 'queued'"
                          " ORDER BY id LIMIT 1",
    [ST_OUTBOX_ANSWERED] = "UPDATE outbox SET state = 'answered', reply = ?2 WHERE id = ?1",
    [ST_OUTBOX_TRIED] = "UPDATE outbox SET tries = tries + 1 WHERE id = ?1",
    [ST_OUTBOX_DELETE] = "DELETE FROM outbox WHERE id = ?1",
    [ST_BREAKER_EVENT] = "INSERT OR IGNORE INTO breaker_events (ts_ms, instance, tier, model,"
                         " state, seq, reason) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    [ST_QUEUE_EVENT] = "INSERT INTO queue_events (ts_ms, query_id, event, detail)"
                       " VALUES (?1, ?2, ?3, ?4)",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

struct ec_ledger {
    pthread_mutex_t *lock_p; /* the store's write lock */
    sqlite3 *db;             /* the store's write connection (not ours to close) */
    sqlite3_stmt *st[ST__COUNT];
};

static ec_err fail(ec_ledger *l, ec_error *err, const char *what)
{
    return ec_error_set(err, EC_ERR_DB, "ledger: %s: %s (sqlite error %d)", what,
                        sqlite3_errmsg(l->db), sqlite3_extended_errcode(l->db));
}

ec_err ec_ledger_open(ec_ledger **out, ec_store *store, ec_error *err)
{
    ec_ledger *l = calloc(1, sizeof(*l));
    if (!l)
        return ec_error_set(err, EC_ERR_NOMEM, "ledger: out of memory");
    ec_err rc = EC_OK;
    l->db = store ? ec_store_write_conn(store, &l->lock_p) : NULL;
    if (!l->db) {
        free(l);
        return ec_error_set(err, EC_ERR_INVAL, "ledger: needs a writable store");
    }
    /* The writer thread may be using the connection already (wlock). */
    pthread_mutex_lock(l->lock_p);
    for (int i = 0; i < ST__COUNT && rc == EC_OK; i++) {
        if (sqlite3_prepare_v3(l->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &l->st[i], NULL) !=
            SQLITE_OK)
            rc = fail(l, err, "preparing statements (is the store at schema 3?)");
    }
    pthread_mutex_unlock(l->lock_p);
    if (rc)
        goto out;
    *out = l;
    return EC_OK;
out:
    ec_ledger_close(l);
    return rc;
}

void ec_ledger_close(ec_ledger *l)
{
    if (!l)
        return;
    pthread_mutex_lock(l->lock_p);
    for (int i = 0; i < ST__COUNT; i++)
        sqlite3_finalize(l->st[i]);
    pthread_mutex_unlock(l->lock_p);
    free(l);
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

static void bind_blob(sqlite3_stmt *st, int i, const void *v, size_t n)
{
    if (v)
        sqlite3_bind_blob(st, i, v, (int)n, SQLITE_TRANSIENT);
    else
        sqlite3_bind_null(st, i);
}

/* Steps a write statement; resets it either way. Caller holds the lock. */
static ec_err run(ec_ledger *l, sqlite3_stmt *st, const char *what, ec_error *err)
{
    int src = sqlite3_step(st);
    ec_err rc = src == SQLITE_DONE ? EC_OK : fail(l, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* ---- the journal an older build kept in this file ---- */

ec_err ec_ledger_take_old_journal(ec_ledger *l, ec_journal_fn fn, void *ctx, size_t *count,
                                  ec_error *err)
{
    ec_mqtt_msg **all = NULL;
    size_t n = 0;
    pthread_mutex_lock(l->lock_p);
    ec_err rc = ec_journal_rows_read(l->st[ST_JOURNAL_ALL], &all, &n, err);
    /* fn adopts every row (or fails loudly): they are not kept twice. */
    if (rc == EC_OK && n)
        rc = run(l, l->st[ST_JOURNAL_CLEAR], "clearing the old journal", err);
    pthread_mutex_unlock(l->lock_p);
    ec_journal_rows_give(all, n, rc == EC_OK, fn, ctx);
    if (count)
        *count = n;
    return rc;
}

/* ---- outbox ---- */

void ec_outbox_item_clear(ec_outbox_item *it)
{
    if (!it)
        return;
    free(it->query_id);
    free(it->query);
    free(it->response_topic);
    free(it->asker);
    free(it->corr);
    free(it->reply);
    memset(it, 0, sizeof(*it));
}

static size_t count_locked(ec_ledger *l)
{
    sqlite3_stmt *st = l->st[ST_OUTBOX_COUNT];
    size_t n = 0;
    if (sqlite3_step(st) == SQLITE_ROW)
        n = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_reset(st);
    return n;
}

size_t ec_outbox_count(ec_ledger *l)
{
    pthread_mutex_lock(l->lock_p);
    size_t n = count_locked(l);
    pthread_mutex_unlock(l->lock_p);
    return n;
}

ec_err ec_outbox_push(ec_ledger *l, ec_outbox_item *it, int max, bool drop_oldest, char **dropped,
                      ec_error *err)
{
    ec_err rc = EC_OK;
    if (dropped)
        *dropped = NULL;
    pthread_mutex_lock(l->lock_p);
    if (count_locked(l) >= (size_t)max) {
        if (!drop_oldest) {
            rc = ec_error_set(err, EC_ERR_BUSY, "offline queue full (%d escalations)", max);
            goto out;
        }
        sqlite3_stmt *st = l->st[ST_OUTBOX_OLDEST];
        int64_t old = 0;
        if (sqlite3_step(st) == SQLITE_ROW) {
            old = sqlite3_column_int64(st, 0);
            if (dropped)
                *dropped = ec_sql_col_text(st, 1);
        }
        sqlite3_reset(st);
        sqlite3_bind_int64(l->st[ST_OUTBOX_DELETE], 1, old);
        if ((rc = run(l, l->st[ST_OUTBOX_DELETE], "dropping the oldest", err)))
            goto out;
    }
    sqlite3_stmt *st = l->st[ST_OUTBOX_ADD];
    bind_text(st, 1, it->query_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)it->enqueued_ms);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)it->expires_ms);
    sqlite3_bind_int64(st, 4, (sqlite3_int64)it->arrived_ms);
    sqlite3_bind_int64(st, 5, it->tier_index);
    sqlite3_bind_double(st, 6, it->prior_cost_usd);
    sqlite3_bind_blob(st, 7, it->query, (int)it->query_len, SQLITE_STATIC);
    sqlite3_bind_int(st, 8, it->encoding);
    bind_text(st, 9, it->response_topic);
    bind_blob(st, 10, it->corr, it->corr_len);
    bind_text(st, 11, it->asker);
    if ((rc = run(l, st, "queueing", err)) == EC_OK)
        it->id = sqlite3_last_insert_rowid(l->db);
out:
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

static ec_err read_item(ec_ledger *l, sqlite3_stmt *st, ec_outbox_item *out, ec_error *err)
{
    memset(out, 0, sizeof(*out));
    int src = sqlite3_step(st);
    ec_err rc = EC_OK;
    if (src == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->query_id = ec_sql_col_text(st, 1);
        out->enqueued_ms = (uint64_t)sqlite3_column_int64(st, 2);
        out->expires_ms = (uint64_t)sqlite3_column_int64(st, 3);
        out->arrived_ms = (uint64_t)sqlite3_column_int64(st, 4);
        out->tier_index = (uint32_t)sqlite3_column_int64(st, 5);
        out->prior_cost_usd = sqlite3_column_double(st, 6);
        out->query = ec_sql_col_blob(st, 7, &out->query_len);
        out->encoding = sqlite3_column_int(st, 8);
        out->response_topic = ec_sql_col_text(st, 9);
        out->corr = ec_sql_col_blob(st, 10, &out->corr_len);
        const unsigned char *state = sqlite3_column_text(st, 11);
        out->answered = state && strcmp((const char *)state, "answered") == 0;
        out->reply = ec_sql_col_blob(st, 12, &out->reply_len);
        out->tries = sqlite3_column_int(st, 13);
        out->asker = ec_sql_col_text(st, 14);
    } else if (src == SQLITE_DONE) {
        rc = EC_ERR_NOTFOUND;
    } else {
        rc = fail(l, err, "reading the queue");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

ec_err ec_outbox_next(ec_ledger *l, int64_t after_id, ec_outbox_item *out, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_bind_int64(l->st[ST_OUTBOX_NEXT], 1, after_id);
    ec_err rc = read_item(l, l->st[ST_OUTBOX_NEXT], out, err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

ec_err ec_outbox_next_expired(ec_ledger *l, uint64_t now_ms, ec_outbox_item *out, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_bind_int64(l->st[ST_OUTBOX_EXPIRED], 1, (sqlite3_int64)now_ms);
    ec_err rc = read_item(l, l->st[ST_OUTBOX_EXPIRED], out, err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

static ec_err by_id(ec_ledger *l, int which, int64_t id, const char *what, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_bind_int64(l->st[which], 1, id);
    ec_err rc = run(l, l->st[which], what, err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

ec_err ec_outbox_answered(ec_ledger *l, int64_t id, const void *reply, size_t len, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_stmt *st = l->st[ST_OUTBOX_ANSWERED];
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_blob(st, 2, reply, (int)len, SQLITE_STATIC);
    ec_err rc = run(l, st, "recording the cloud's answer", err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

ec_err ec_outbox_tried(ec_ledger *l, int64_t id, ec_error *err)
{
    return by_id(l, ST_OUTBOX_TRIED, id, "counting a try", err);
}

ec_err ec_outbox_delete(ec_ledger *l, int64_t id, ec_error *err)
{
    return by_id(l, ST_OUTBOX_DELETE, id, "removing from the queue", err);
}

/* ---- events ---- */

ec_err ec_ledger_breaker_event(ec_ledger *l, uint64_t ts_ms, const char *instance, const char *tier,
                               const char *model, const char *state, int64_t seq,
                               const char *reason, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_stmt *st = l->st[ST_BREAKER_EVENT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ts_ms);
    bind_text(st, 2, instance);
    bind_text(st, 3, tier);
    bind_text(st, 4, model);
    bind_text(st, 5, state);
    sqlite3_bind_int64(st, 6, seq);
    bind_text(st, 7, reason);
    ec_err rc = run(l, st, "recording a breaker transition", err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}

ec_err ec_ledger_queue_event(ec_ledger *l, const char *query_id, const char *event,
                             const char *detail, ec_error *err)
{
    pthread_mutex_lock(l->lock_p);
    sqlite3_stmt *st = l->st[ST_QUEUE_EVENT];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ec_now_ms());
    bind_text(st, 2, query_id);
    bind_text(st, 3, event);
    bind_text(st, 4, detail);
    ec_err rc = run(l, st, "recording a queue event", err);
    pthread_mutex_unlock(l->lock_p);
    return rc;
}
