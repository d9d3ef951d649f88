/* The decision log: one SQLite file, one writer.
 *
 * Shape (after Mosquitto's persist-sqlite and Fluent Bit's flb_sqldb): the
 * router must never wait on the disk, so ec_store_record only moves the
 * decision into a bounded queue and returns. One writer thread owns the write
 * connection and its prepared statements; it collects up to EC_STORE_BATCH_MAX
 * decisions, or whatever arrives within batch_ms of the first one, and writes
 * them in one BEGIN IMMEDIATE..COMMIT. Readers use their own read-only
 * connection (store_stats.c), so with WAL they see committed snapshots and
 * never block the writer.
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A commit is in the WAL
 * before COMMIT returns, so a crash of the process loses nothing committed.
 * The WAL is synced only when it is checkpointed, so a power cut can lose the
 * commits since then that the kernel had not yet written out (seconds; Linux
 * writes dirty pages back within 30 s by default), but never corrupts the
 * file. Decisions are telemetry, not money.
 *
 * Failures are never silent: a failed batch is rolled back and retried, then
 * written one decision per transaction so that a bad row or a full disk loses
 * only what it must; each decision given up on is logged with its query id and
 * counted (ec_store_failed_count). The writer keeps running.
 *
 * This file is the writer thread and the store's lifetime; the schema, its
 * migrations and the connections' set-up are store_schema.c's, and turning a
 * decision into rows inside one transaction is store_rows.c's. */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

#define EC_STORE_BATCH_MAX 256
#define EC_STORE_TRIES     3  /* whole-batch attempts before going one by one */
#define EC_STORE_RETRY_MS  20 /* first pause between attempts, doubled each time */

static const char sql_decided[] =
    "SELECT 1 FROM decisions WHERE ts_ms = ?1 AND journal_id = ?2 LIMIT 1";

void ec_decision_clear(ec_decision *d)
{
    if (!d)
        return;
    ec_result_clear(&d->result);
    for (size_t i = 0; i < d->n_details && i < EC_MAX_ATTEMPTS; i++) {
        free(d->details[i].answer);
        free(d->details[i].finish_reason);
        free(d->details[i].sent);
    }
    memset(d, 0, sizeof(*d));
}

static void decision_free(void *p)
{
    ec_decision *d = p;
    ec_decision_clear(d);
    free(d);
}

ec_err ec_store_open(ec_store **out, const char *path, bool readonly, ec_error *err)
{
    if (!out || !path)
        return ec_error_set(err, EC_ERR_INVAL, "store: no path given");
    *out = NULL;
    ec_store *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    }
    s->readonly = readonly;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_mutex_init(&s->hook_lock, NULL);
    ec_cond_init_mono(&s->progress);
    ec_cond_init_mono(&s->closing_cond);

    ec_err rc;
    if (readonly) {
        if ((rc = ec_store_open_conn(&s->rdb, path, true, err)) ||
            (rc = ec_store_check_schema(s->rdb, path, err)))
            goto out;
    } else {
        if ((rc = ec_store_open_conn(&s->db, path, false, err)) ||
            (rc = ec_store_configure_writer(s, err)))
            goto out;
        /* A private in-memory database exists only on its one connection. */
        if (ec_store_is_memory_path(path))
            s->rdb = s->db;
        else if ((rc = ec_store_open_conn(&s->rdb, path, true, err)))
            goto out;
    }
    *out = s;
    return EC_OK;
out:
    ec_store_close(s);
    return rc;
}

static void write_batch(ec_store *s, ec_decision **b, size_t n)
{
    ec_error e = {0};
    uint64_t committed = 0, failed = 0, commits = 0;
    bool ok = false;
    for (int t = 0; t < EC_STORE_TRIES && !ok; t++) {
        if (t)
            ec_sleep_ms(EC_STORE_RETRY_MS << (t - 1));
        ok = ec_store_write_txn(s, b, n, &e) == EC_OK;
        if (!ok)
            ec_log_error("store: writing %zu decisions failed (try %d of %d): %s", n, t + 1,
                         EC_STORE_TRIES, e.msg);
    }
    int64_t ids[EC_STORE_BATCH_MAX];
    size_t n_ids = 0;
    if (ok) {
        committed = n;
        commits = 1;
        for (size_t i = 0; i < n; i++)
            if (b[i]->journal_id > 0)
                ids[n_ids++] = b[i]->journal_id;
    } else {
        /* One transaction each, so one bad row does not take the rest along. */
        for (size_t i = 0; i < n; i++) {
            if (ec_store_write_txn(s, &b[i], 1, &e) == EC_OK) {
                committed++;
                commits++;
                if (b[i]->journal_id > 0)
                    ids[n_ids++] = b[i]->journal_id;
                continue;
            }
            failed++;
            ec_log_error("store: decision %s (ts_ms %" PRIu64 ") could not be written: %s",
                         b[i]->result.id, b[i]->ts_ms, e.msg);
        }
    }
    /* Before the progress below: a flush returns only once the journal knows. */
    pthread_mutex_lock(&s->hook_lock);
    if (s->on_commit)
        s->on_commit(s->on_commit_ctx, ids, n_ids);
    pthread_mutex_unlock(&s->hook_lock);
    pthread_mutex_lock(&s->lock);
    s->committed += committed;
    s->failed += failed;
    s->commits += commits;
    s->done += n;
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->lock);
}

void ec_store_on_commit(ec_store *s, ec_store_commit_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->hook_lock);
    s->on_commit = fn;
    s->on_commit_ctx = ctx;
    pthread_mutex_unlock(&s->hook_lock);
}

ec_err ec_store_decided(ec_store *s, uint64_t ts_ms, int64_t journal_id, bool *found, ec_error *err)
{
    *found = false;
    if (!s || !s->rdb)
        return ec_error_set(err, EC_ERR_INVAL, "store: not open");
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(s->rdb, sql_decided, -1, &st, NULL) != SQLITE_OK) {
        rc = ec_store_db_fail(s->rdb, err, "looking up a journaled query");
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ts_ms);
    sqlite3_bind_int64(st, 2, journal_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *found = true;
    else if (src != SQLITE_DONE)
        rc = ec_store_db_fail(s->rdb, err, "looking up a journaled query");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

#define EC_STORE_CKPT_PAGES 1000 /* SQLite's own auto-checkpoint size */

static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    atomic_store(&((ec_store *)ctx)->wal_pages, pages);
    return SQLITE_OK;
}

static void checkpoint_if_due(ec_store *s)
{
    if (!s->ckpt || atomic_load(&s->wal_pages) < EC_STORE_CKPT_PAGES)
        return;
    int logged = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        ec_log_warn("store: checkpoint of %s: %s", s->path, sqlite3_errmsg(s->ckpt));
    /* Until the next commit reports the WAL's size anew. */
    atomic_store(&s->wal_pages, 0);
}

/* batch_ms, or less when the store is closing. */
static void batch_sleep(ec_store *s)
{
    struct timespec until;
    ec_deadline_in(&until, (unsigned)s->batch_ms);
    pthread_mutex_lock(&s->lock);
    while (!s->closing && pthread_cond_timedwait(&s->closing_cond, &s->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&s->lock);
}

static void *writer_main(void *arg)
{
    ec_thread_name("ec-store");
    ec_store *s = arg;
    ec_decision *batch[EC_STORE_BATCH_MAX];
    for (;;) {
        void *item;
        /* EC_ERR_UNAVAILABLE: closed and drained. */
        if (ec_queue_pop(s->queue, &item, -1) != EC_OK)
            break;
        size_t n = 0;
        batch[n++] = item;
        /* Sleep out the batch interval rather than wait on the queue: a
         * waiting writer is woken by every decision pushed (a context switch
         * per query on a 2-core device), a sleeping one once per batch. */
        if (s->batch_ms > 0 && ec_queue_len(s->queue) < EC_STORE_BATCH_MAX - 1)
            batch_sleep(s);
        while (n < EC_STORE_BATCH_MAX && ec_queue_pop(s->queue, &item, 0) == EC_OK)
            batch[n++] = item;
        write_batch(s, batch, n);
        checkpoint_if_due(s);
        for (size_t i = 0; i < n; i++)
            decision_free(batch[i]);
    }
    return NULL;
}

ec_err ec_store_start_writer(ec_store *s, int batch_ms, size_t queue_cap, ec_error *err)
{
    if (!s || s->readonly)
        return ec_error_set(err, EC_ERR_INVAL, "store: writer needs a writable store");
    if (s->writer_started)
        return ec_error_set(err, EC_ERR_INVAL, "store: writer already started");
    if (batch_ms < 0 || queue_cap == 0)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: batch_ms must be >= 0 and queue capacity > 0");
    if (ec_queue_create(&s->queue, queue_cap) != EC_OK)
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    s->batch_ms = batch_ms;
    /* A file store checkpoints on the writer thread (see store_internal.h);
     * without that connection SQLite's automatic checkpoint stays on. */
    if (s->db != s->rdb && ec_store_open_conn(&s->ckpt, s->path, false, NULL) == EC_OK) {
        /* A connection learns the file is in WAL mode on its first read;
         * until then a checkpoint on it does nothing. */
        if (ec_sql_exec(s->ckpt, "store", "SELECT count(*) FROM sqlite_master", NULL) == EC_OK) {
            pthread_mutex_lock(&s->wlock); /* a ledger may be using db */
            sqlite3_wal_hook(s->db, on_wal_commit, s);
            pthread_mutex_unlock(&s->wlock);
        } else {
            sqlite3_close(s->ckpt);
            s->ckpt = NULL;
        }
    }
    int e = pthread_create(&s->writer, NULL, writer_main, s);
    if (e) {
        ec_queue_destroy(s->queue, NULL);
        s->queue = NULL;
        return ec_error_set(err, EC_ERR_NOMEM, "store: cannot start writer: %s", strerror(e));
    }
    s->writer_started = true;
    return EC_OK;
}

static ec_err check_decision(const ec_decision *d, ec_error *err)
{
    if (!d)
        return ec_error_set(err, EC_ERR_INVAL, "store: no decision");
    if (!d->result.id || !d->result.id[0])
        return ec_error_set(err, EC_ERR_INVAL, "store: decision has no query id");
    const char *t = d->result.tier;
    if (t && strcmp(t, "local") != 0 && strcmp(t, "cloud") != 0 && strcmp(t, "cache") != 0)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: decision %s: tier must be \"local\", \"cloud\" or \"cache\", "
                            "not \"%.16s\"",
                            d->result.id, t);
    return EC_OK;
}

ec_err ec_store_record(ec_store *s, ec_decision *d, ec_error *err)
{
    if (!s || !s->writer_started)
        return ec_error_set(err, EC_ERR_UNAVAILABLE, "store: writer not started");
    ec_err rc = check_decision(d, err);
    if (rc)
        return rc;
    ec_decision *copy = malloc(sizeof(*copy));
    if (!copy)
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    memcpy(copy, d, sizeof(*copy));
    /* Counted under the lock so a flush that starts after we return waits
     * for this decision. */
    pthread_mutex_lock(&s->lock);
    rc = ec_queue_try_push(s->queue, copy);
    if (rc == EC_OK)
        s->recorded++;
    pthread_mutex_unlock(&s->lock);
    if (rc != EC_OK) {
        free(copy); /* a shallow copy: d still owns the contents */
        if (rc == EC_ERR_BUSY)
            return ec_error_set(err, EC_ERR_BUSY, "store: writer queue full (%zu decisions)",
                                ec_queue_capacity(s->queue));
        return ec_error_set(err, rc, "store: writer is closing");
    }
    memset(d, 0, sizeof(*d));
    return EC_OK;
}

ec_err ec_store_flush(ec_store *s, int timeout_ms, ec_error *err)
{
    if (!s)
        return ec_error_set(err, EC_ERR_INVAL, "store: no store");
    struct timespec deadline;
    ec_deadline_in(&deadline, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&s->lock);
    uint64_t target = s->recorded;
    uint64_t failed0 = s->failed;
    while (s->done < target) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->progress, &s->lock);
        } else if (timeout_ms == 0 ||
                   pthread_cond_timedwait(&s->progress, &s->lock, &deadline) == ETIMEDOUT) {
            if (s->done < target) {
                rc = ec_error_set(err, EC_ERR_TIMEOUT,
                                  "store: %" PRIu64 " decisions still pending after %d ms",
                                  target - s->done, timeout_ms);
                break;
            }
        }
    }
    if (rc == EC_OK && s->failed > failed0)
        rc = ec_error_set(err, EC_ERR_DB, "store: %" PRIu64 " decisions could not be written",
                          s->failed - failed0);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

ec_err ec_store_write_now(ec_store *s, const ec_decision *d, ec_error *err)
{
    if (!s || s->readonly)
        return ec_error_set(err, EC_ERR_INVAL, "store: write_now needs a writable store");
    if (s->writer_started)
        return ec_error_set(err, EC_ERR_INVAL, "store: write_now while the writer is running");
    ec_err rc = check_decision(d, err);
    if (rc)
        return rc;
    ec_decision *one = (ec_decision *)d; /* write_txn only reads it */
    return ec_store_write_txn(s, &one, 1, err);
}

uint64_t ec_store_failed_count(ec_store *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->failed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void ec_store_close(ec_store *s)
{
    if (!s)
        return;
    if (s->writer_started) {
        pthread_mutex_lock(&s->lock);
        s->closing = true;
        pthread_cond_broadcast(&s->closing_cond);
        pthread_mutex_unlock(&s->lock);
        ec_queue_close(s->queue); /* the writer drains what is queued, then exits */
        pthread_join(s->writer, NULL);
    }
    ec_queue_destroy(s->queue, decision_free);
    sqlite3_close(s->ckpt);
    if (s->rdb && s->rdb != s->db)
        sqlite3_close(s->rdb);
    sqlite3_finalize(s->st_begin);
    sqlite3_finalize(s->st_commit);
    sqlite3_finalize(s->st_rollback);
    sqlite3_finalize(s->st_ins_decision);
    sqlite3_finalize(s->st_ins_attempt);
    sqlite3_finalize(s->st_upd_decision);
    sqlite3_finalize(s->st_find_decision);
    sqlite3_finalize(s->st_add_cost);
    if (s->db) {
        /* Fold the WAL into the main file so a reader (or a copy of the file)
         * needs nothing else. */
        if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) !=
                SQLITE_OK &&
            !ec_store_is_memory_path(s->path))
            ec_log_warn("store: checkpoint of %s on close: %s", s->path, sqlite3_errmsg(s->db));
        if (sqlite3_close(s->db) != SQLITE_OK)
            ec_log_error("store: closing %s: %s", s->path, sqlite3_errmsg(s->db));
    }
    if (s->failed)
        ec_log_error("store: %" PRIu64 " decisions were not written to %s", s->failed, s->path);
    pthread_cond_destroy(&s->progress);
    pthread_cond_destroy(&s->closing_cond);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->hook_lock);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

sqlite3 *ec_store_write_conn(ec_store *s, pthread_mutex_t **lock)
{
    *lock = &s->wlock;
    return s->db;
}

/* ---- test hooks (store_internal.h) ---- */

ec_err ec_store_test_exec(ec_store *s, const char *sql, ec_error *err)
{
    if (!s || !s->db)
        return ec_error_set(err, EC_ERR_INVAL, "store: no write connection");
    pthread_mutex_lock(&s->wlock);
    ec_err rc = ec_sql_exec(s->db, "store", sql, err);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

uint64_t ec_store_test_commits(ec_store *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->commits;
    pthread_mutex_unlock(&s->lock);
    return n;
}
