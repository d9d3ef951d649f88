/* The arrival journal (see journal.h). Every statement is prepared once.
 * ec_journal_add runs on Paho's receive thread for every query, so it does
 * one short transaction and nothing else: deletes, pruning and checkpoints
 * happen in ec_journal_done, on the decision writer's thread. */
#include "edgecascade/journal.h"

#include <pthread.h>
#include <sqlite3.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "store_internal.h"

#define CKPT_PAGES    1000 /* SQLite's own auto-checkpoint size */
#define BUSY_WAIT_MS  5000
#define JOURNAL_MAGIC 0x45434a31 /* application_id: "ECJ1" */

enum { ST_ADD, ST_ALL, ST_DEL, ST_COUNT, ST_MAX, ST_BEGIN, ST_COMMIT, ST_ROLLBACK, ST__N };

static const char *const sql[ST__N] = {
    [ST_ADD] = "INSERT INTO journal (id, received_ms, topic, payload, response_topic, corr,"
               " expiry_s, of_query) VALUES (?7, ?1, ?2, ?3, ?4, ?5, ?6, ?8)",
    [ST_ALL] = "SELECT id, received_ms, topic, payload, response_topic, corr, expiry_s, of_query"
               " FROM journal ORDER BY id",
    /* A decided query takes the replies journaled for it along. */
    [ST_DEL] = "DELETE FROM journal WHERE id = ?1 OR of_query = ?1",
    [ST_COUNT] = "SELECT count(*) FROM journal",
    [ST_MAX] = "SELECT coalesce(max(id), 0) FROM journal",
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
};

/* Ids are ours (next_id): never reused, so a decision's journal_id names
 * one arrival, without AUTOINCREMENT's extra page written per query. */
static const char schema[] = "CREATE TABLE IF NOT EXISTS journal ("
                             "  id INTEGER PRIMARY KEY,"
                             "  received_ms INTEGER NOT NULL,"
                             "  topic TEXT,"
                             "  payload BLOB NOT NULL,"
                             "  response_topic TEXT,"
                             "  corr BLOB,"
                             "  expiry_s INTEGER,"
                             "  of_query INTEGER);"
                             "CREATE INDEX IF NOT EXISTS journal_of ON journal(of_query)"
                             "  WHERE of_query IS NOT NULL;";

/* A journal from before replies were journaled (no of_query column). */
static const char add_of_query[] = "ALTER TABLE journal ADD COLUMN of_query INTEGER";

/* Duplicates. The broker redelivers (DUP) only what it sent before a
 * connection ended without our PUBACK: the last messages before a drop, when
 * nothing new arrives until the reconnect, or before a crash, when they are
 * still in the journal at start (a PUBACK leaves right after the journal's
 * commit, long before any decision clears the row). So the digests of the
 * last RECENT_N arrivals, seeded from the rows found at start, cover every
 * redelivery, in memory, with no write per query. */
#define RECENT_N     4096u
#define RECENT_SLOTS (2u * RECENT_N) /* open addressing, at most half full */

struct ec_journal {
    char *path;
    pthread_mutex_t lock; /* around every use of db */
    sqlite3 *db;
    sqlite3_stmt *st[ST__N];
    /* Checkpoints run on their own connection (PASSIVE: never waits for, nor
     * blocks, the journal's writes); the WAL hook only notes the size. */
    sqlite3 *ckpt;
    atomic_int wal_pages;
    int64_t next_id;
    /* under lock: the ring of recent digests (0 = empty) and its hash set */
    uint64_t ring[RECENT_N];
    size_t ring_head;
    uint64_t slots[RECENT_SLOTS];
};

bool ec_journal_path(const char *store_path, char *out, size_t n)
{
    if (!store_path || !*store_path || strcmp(store_path, ":memory:") == 0)
        return snprintf(out, n, ":memory:") < (int)n;
    size_t len = strlen(store_path);
    if (len > 3 && strcmp(store_path + len - 3, ".db") == 0)
        len -= 3;
    return snprintf(out, n, "%.*s.arrivals.db", (int)len, store_path) < (int)n;
}

static ec_err fail(sqlite3 *db, ec_error *err, const char *what)
{
    return ec_error_set(err, EC_ERR_DB, "journal: %s: %s (sqlite error %d)", what,
                        sqlite3_errmsg(db), sqlite3_extended_errcode(db));
}

static ec_err exec(sqlite3 *db, const char *text, ec_error *err)
{
    return ec_sql_exec(db, "journal", text, err);
}

static ec_err open_conn(sqlite3 **out, const char *path, ec_error *err)
{
    /* NOMUTEX: each connection has one user at a time (our lock, or the
     * writer thread alone for ckpt). */
    int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        ec_err rc = ec_error_set(err, EC_ERR_DB, "journal: cannot open '%s': %s", path,
                                 db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, BUSY_WAIT_MS);
    *out = db;
    return EC_OK;
}

static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    atomic_store(&((ec_journal *)ctx)->wal_pages, pages);
    return SQLITE_OK;
}

/* A file that is some other program's database is refused, not written into. */
static ec_err check_owner(ec_journal *j, ec_error *err)
{
    sqlite3_stmt *st = NULL;
    int app = 0, tables = 0;
    if (sqlite3_prepare_v2(j->db, "PRAGMA application_id", -1, &st, NULL) != SQLITE_OK)
        return fail(j->db, err, "reading the file's owner");
    if (sqlite3_step(st) == SQLITE_ROW)
        app = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (sqlite3_prepare_v2(j->db, "SELECT count(*) FROM sqlite_master", -1, &st, NULL) != SQLITE_OK)
        return fail(j->db, err, "reading the file's tables");
    if (sqlite3_step(st) == SQLITE_ROW)
        tables = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (app == JOURNAL_MAGIC || (app == 0 && tables == 0))
        return EC_OK;
    return ec_error_set(err, EC_ERR_DB,
                        "journal: '%s' is not an edgecascade arrival journal (move it away)",
                        j->path);
}

/* true when the table is new (CREATE makes the column) or has it already. */
static bool has_of_query(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool table = false, column = false;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(journal)", -1, &st, NULL) != SQLITE_OK)
        return true;
    while (sqlite3_step(st) == SQLITE_ROW) {
        table = true;
        const char *name = (const char *)sqlite3_column_text(st, 1);
        if (name && strcmp(name, "of_query") == 0)
            column = true;
    }
    sqlite3_finalize(st);
    return !table || column;
}

ec_err ec_journal_open(ec_journal **out, const char *store_path, ec_error *err)
{
    char path[4096];
    if (!ec_journal_path(store_path, path, sizeof(path)))
        return ec_error_set(err, EC_ERR_INVAL, "journal: store path too long");
    ec_journal *j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path))) {
        free(j);
        return ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory");
    }
    pthread_mutex_init(&j->lock, NULL);
    bool memory = strcmp(path, ":memory:") == 0;
    ec_err rc;
    char pragma[64];
    snprintf(pragma, sizeof(pragma), "PRAGMA application_id=%d", JOURNAL_MAGIC);
    /* Small pages: a query is one page appended to the WAL per arrival
     * (takes effect only on a new file). */
    if ((rc = open_conn(&j->db, path, err)) || (rc = check_owner(j, err)) ||
        (rc = exec(j->db, "PRAGMA page_size=1024", err)) ||
        (rc =
             exec(j->db, memory ? "PRAGMA journal_mode=MEMORY" : "PRAGMA journal_mode=WAL", err)) ||
        (rc = exec(j->db, "PRAGMA synchronous=NORMAL", err)) ||
        /* Checkpoints are ours (ec_journal_done), never Paho's thread's. */
        (rc = exec(j->db, "PRAGMA wal_autocheckpoint=0", err)) ||
        (rc = exec(j->db, "PRAGMA cache_size=-128", err)))
        goto out;
    if (!has_of_query(j->db) && (rc = exec(j->db, add_of_query, err)))
        goto out;
    if ((rc = exec(j->db, schema, err)) || (rc = exec(j->db, pragma, err)))
        goto out;
    for (int i = 0; i < ST__N; i++) {
        if (sqlite3_prepare_v3(j->db, sql[i], -1, SQLITE_PREPARE_PERSISTENT, &j->st[i], NULL) !=
            SQLITE_OK) {
            rc = fail(j->db, err, "preparing statements");
            goto out;
        }
    }
    if (sqlite3_step(j->st[ST_MAX]) == SQLITE_ROW)
        j->next_id = sqlite3_column_int64(j->st[ST_MAX], 0);
    sqlite3_reset(j->st[ST_MAX]);
    if (!memory) {
        /* A connection learns the file is in WAL mode on its first read;
         * until then a checkpoint on it does nothing. */
        if ((rc = open_conn(&j->ckpt, path, err)) ||
            (rc = exec(j->ckpt, "SELECT count(*) FROM sqlite_master", err)))
            goto out;
        sqlite3_wal_hook(j->db, on_wal_commit, j);
    }
    *out = j;
    return EC_OK;
out:
    ec_error_prefix(err, "'%s': ", path);
    ec_journal_close(j);
    return rc;
}

void ec_journal_close(ec_journal *j)
{
    if (!j)
        return;
    for (int i = 0; i < ST__N; i++)
        sqlite3_finalize(j->st[i]);
    sqlite3_close(j->ckpt);
    if (j->db) {
        /* Fold the WAL in, so the file alone holds what is left. */
        sqlite3_wal_checkpoint_v2(j->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL);
        sqlite3_close(j->db);
    }
    pthread_mutex_destroy(&j->lock);
    free(j->path);
    free(j);
}

/* FNV-1a over the parts that make a delivery the same message. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ull;
    }
    return h;
}

static uint64_t digest(const ec_mqtt_msg *m)
{
    uint64_t h = 14695981039346656037ull;
    h = fnv(h, m->payload, m->len);
    h = fnv(h, "|", 1);
    if (m->corr)
        h = fnv(h, m->corr, m->corr_len);
    h = fnv(h, "|", 1);
    if (m->response_topic)
        h = fnv(h, m->response_topic, strlen(m->response_topic));
    return h ? h : 1; /* 0 marks an empty slot */
}

static size_t slot_of(const ec_journal *j, uint64_t d)
{
    size_t i = (size_t)(d % RECENT_SLOTS);
    while (j->slots[i] && j->slots[i] != d)
        i = (i + 1) % RECENT_SLOTS;
    return i;
}

/* Removes d from the set (backward-shift deletion keeps probe chains whole). */
static void forget(ec_journal *j, uint64_t d)
{
    size_t i = slot_of(j, d);
    if (!j->slots[i])
        return;
    j->slots[i] = 0;
    for (size_t k = (i + 1) % RECENT_SLOTS; j->slots[k]; k = (k + 1) % RECENT_SLOTS) {
        size_t home = (size_t)(j->slots[k] % RECENT_SLOTS);
        /* Move k back to i unless its home lies cyclically in (i, k]. */
        bool stays = i <= k ? (home > i && home <= k) : (home > i || home <= k);
        if (!stays) {
            j->slots[i] = j->slots[k];
            j->slots[k] = 0;
            i = k;
        }
    }
}

/* Whether d was among the recent arrivals; remembers it either way. */
static bool seen_before(ec_journal *j, uint64_t d)
{
    size_t i = slot_of(j, d);
    if (j->slots[i])
        return true;
    uint64_t old = j->ring[j->ring_head];
    if (old)
        forget(j, old);
    j->slots[slot_of(j, d)] = d;
    j->ring[j->ring_head] = d;
    j->ring_head = (j->ring_head + 1) % RECENT_N;
    return false;
}

/* Steps a write statement; resets it either way. Caller holds the lock. */
static ec_err run(ec_journal *j, sqlite3_stmt *st, const char *what, ec_error *err)
{
    int src = sqlite3_step(st);
    ec_err rc = src == SQLITE_DONE ? EC_OK : fail(j->db, err, what);
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v)
        sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null(st, i);
}

static ec_err add(ec_journal *j, ec_mqtt_msg *m, int64_t of_query, ec_error *err)
{
    uint64_t now = ec_now_ms();
    uint64_t d = digest(m);
    pthread_mutex_lock(&j->lock);
    ec_err rc = EC_OK;
    if (seen_before(j, d) && m->dup) {
        m->tag = -1; /* the broker's redelivery of a query we already took */
        goto out;
    }
    /* Microseconds since the epoch, or one more than the last: unique across
     * restarts even when the file was emptied. */
    int64_t id = (int64_t)(now * 1000u);
    if (id <= j->next_id)
        id = j->next_id + 1;
    sqlite3_stmt *st = j->st[ST_ADD];
    sqlite3_bind_int64(st, 1, (sqlite3_int64)now);
    bind_text(st, 2, m->topic);
    sqlite3_bind_blob(st, 3, m->payload ? m->payload : "", (int)m->len, SQLITE_STATIC);
    bind_text(st, 4, m->response_topic);
    if (m->corr)
        sqlite3_bind_blob(st, 5, m->corr, (int)m->corr_len, SQLITE_STATIC);
    sqlite3_bind_int64(st, 6, m->expiry_s);
    sqlite3_bind_int64(st, 7, id);
    if (of_query > 0)
        sqlite3_bind_int64(st, 8, of_query);
    else
        sqlite3_bind_null(st, 8);
    /* One statement, its own transaction: one WAL append. */
    if ((rc = run(j, st, "writing a query", err)) == EC_OK) {
        j->next_id = id;
        m->tag = id;
        m->tag_ms = now;
    }
out:
    pthread_mutex_unlock(&j->lock);
    return rc;
}

ec_err ec_journal_add(ec_journal *j, ec_mqtt_msg *m, ec_error *err)
{
    return add(j, m, 0, err);
}

ec_err ec_journal_add_reply(ec_journal *j, ec_mqtt_msg *m, int64_t of_query, ec_error *err)
{
    return add(j, m, of_query, err);
}

ec_err ec_journal_rows_read(sqlite3_stmt *st, ec_mqtt_msg ***out, size_t *n, ec_error *err)
{
    ec_err rc = EC_OK;
    ec_mqtt_msg **all = NULL;
    int src;
    *n = 0;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        ec_mqtt_msg *m = calloc(1, sizeof(*m));
        ec_mqtt_msg **grown = realloc(all, (*n + 1) * sizeof(*all));
        if (!m || !grown) {
            free(m);
            if (grown)
                all = grown;
            rc = ec_error_set(err, EC_ERR_NOMEM, "journal: out of memory reading it");
            break;
        }
        all = grown;
        m->tag = sqlite3_column_int64(st, 0);
        m->tag_ms = (uint64_t)sqlite3_column_int64(st, 1);
        m->topic = ec_sql_col_text(st, 2);
        m->payload = ec_sql_col_blob(st, 3, &m->len);
        if (!m->payload)
            m->payload = calloc(1, 1);
        m->response_topic = ec_sql_col_text(st, 4);
        m->corr = ec_sql_col_blob(st, 5, &m->corr_len);
        m->expiry_s = (uint32_t)sqlite3_column_int64(st, 6);
        if (sqlite3_column_count(st) > 7)
            m->tag_of = sqlite3_column_int64(st, 7);
        m->qos = 1;
        m->received_us = ec_mono_us();
        all[(*n)++] = m;
    }
    if (rc == EC_OK && src != SQLITE_DONE)
        rc = fail(sqlite3_db_handle(st), err, "reading the journal");
    sqlite3_reset(st);
    *out = all;
    return rc;
}

void ec_journal_rows_give(ec_mqtt_msg **all, size_t n, bool ok, ec_journal_fn fn, void *ctx)
{
    for (size_t i = 0; i < n; i++) {
        if (ok)
            fn(ctx, all[i]);
        else
            ec_mqtt_msg_free(all[i]);
    }
    free(all);
}

ec_err ec_journal_each(ec_journal *j, ec_journal_fn fn, void *ctx, size_t *count, ec_error *err)
{
    ec_mqtt_msg **all = NULL;
    size_t n = 0;
    /* Collected first, handed over after the statement is done: fn may
     * publish, and a publish must not wait under our lock. */
    pthread_mutex_lock(&j->lock);
    ec_err rc = ec_journal_rows_read(j->st[ST_ALL], &all, &n, err);
    for (size_t i = 0; rc == EC_OK && i < n; i++)
        seen_before(j, digest(all[i])); /* a redelivery of it after the restart is a duplicate */
    pthread_mutex_unlock(&j->lock);
    ec_journal_rows_give(all, n, rc == EC_OK, fn, ctx);
    if (count)
        *count = n;
    return rc;
}

static void checkpoint_if_due(ec_journal *j)
{
    if (!j->ckpt || atomic_load(&j->wal_pages) < CKPT_PAGES)
        return;
    int rc = sqlite3_wal_checkpoint_v2(j->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        ec_log_warn("journal: checkpoint of %s: %s", j->path, sqlite3_errmsg(j->ckpt));
    atomic_store(&j->wal_pages, 0); /* until the next commit reports the size anew */
}

ec_err ec_journal_done(ec_journal *j, const int64_t *ids, size_t n, ec_error *err)
{
    if (n == 0) {
        checkpoint_if_due(j);
        return EC_OK;
    }
    pthread_mutex_lock(&j->lock);
    ec_err rc = run(j, j->st[ST_BEGIN], "begin", err);
    for (size_t i = 0; !rc && i < n; i++) {
        sqlite3_bind_int64(j->st[ST_DEL], 1, ids[i]);
        rc = run(j, j->st[ST_DEL], "clearing a decided query", err);
    }
    if (!rc)
        rc = run(j, j->st[ST_COMMIT], "commit", err);
    if (rc && !sqlite3_get_autocommit(j->db))
        run(j, j->st[ST_ROLLBACK], "rollback", NULL);
    pthread_mutex_unlock(&j->lock);
    checkpoint_if_due(j);
    return rc;
}

ec_err ec_journal_count(ec_journal *j, uint64_t *out, ec_error *err)
{
    pthread_mutex_lock(&j->lock);
    sqlite3_stmt *st = j->st[ST_COUNT];
    ec_err rc = EC_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    else
        rc = fail(j->db, err, "counting");
    sqlite3_reset(st);
    pthread_mutex_unlock(&j->lock);
    return rc;
}

ec_err ec_journal_peek(const char *store_path, uint64_t *rows, uint64_t *oldest_ms, ec_error *err)
{
    *rows = 0;
    *oldest_ms = 0;
    char path[4096];
    if (!ec_journal_path(store_path, path, sizeof(path)))
        return ec_error_set(err, EC_ERR_INVAL, "journal: store path too long");
    if (strcmp(path, ":memory:") == 0 || access(path, F_OK) != 0)
        return EC_OK;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = ec_error_set(err, EC_ERR_DB, "journal: cannot open '%s': %s", path,
                          db ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    sqlite3_busy_timeout(db, BUSY_WAIT_MS);
    if (sqlite3_prepare_v2(db, "SELECT count(*), coalesce(min(received_ms), 0) FROM journal", -1,
                           &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = fail(db, err, "reading");
        goto out;
    }
    *rows = (uint64_t)sqlite3_column_int64(st, 0);
    *oldest_ms = (uint64_t)sqlite3_column_int64(st, 1);
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}
