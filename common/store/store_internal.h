/* Private to the store: the struct shared by store.c (the writer thread),
 * store_schema.c (connections, schema), store_rows.c (a decision as rows) and
 * store_stats.c (reads), plus hooks the unit tests use. Not a public API. */
#ifndef EC_STORE_INTERNAL_H
#define EC_STORE_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>

#include "edgecascade/journal.h"
#include "edgecascade/queue.h"
#include "edgecascade/store.h"

#define EC_STORE_SCHEMA_VERSION 8

struct ec_store {
    char *path;
    bool readonly;

    /* The write connection: used only by the writer thread once it is
     * started, or by ec_store_write_now on the caller's thread otherwise.
     * NULL for a read-only store. */
    sqlite3 *db;
    sqlite3_stmt *st_begin;
    sqlite3_stmt *st_commit;
    sqlite3_stmt *st_rollback;
    sqlite3_stmt *st_ins_decision;
    sqlite3_stmt *st_ins_attempt;
    sqlite3_stmt *st_upd_decision; /* revision 2 of an existing decision */
    sqlite3_stmt *st_find_decision;
    sqlite3_stmt *st_add_cost;
    /* Held around every use of db once another thread may use it: the
     * writer's transactions and the ledger (ledger.c), which shares this
     * connection so that the two never meet as separate connections in
     * SQLite's busy-wait (which sleeps milliseconds). SQLite itself does not
     * serialise this connection (opened NOMUTEX, store_schema.c): this lock
     * is what does. */
    pthread_mutex_t wlock;

    /* The read connection (stats, counts): a separate connection so readers
     * see committed snapshots (WAL) and never step inside the writer's open
     * transaction. Equal to db for ":memory:" stores. */
    sqlite3 *rdb;
    pthread_mutex_t rlock; /* one reader at a time on rdb */

    /* WAL checkpoints: SQLite's automatic one runs in whichever connection
     * commits past 1,000 WAL pages, which could be the ledger on a worker
     * thread, stalling it for the checkpoint's writes and fdatasync. Instead the commit hook only
     * notes the WAL's size and the writer thread checkpoints (PASSIVE: never waits for, nor blocks,
     * the write lock) on a connection of its own. */
    atomic_int wal_pages;
    sqlite3 *ckpt;

    /* Writer thread. */
    pthread_mutex_t hook_lock; /* held while on_commit runs, so unhooking waits for it */
    ec_store_commit_fn on_commit;
    void *on_commit_ctx;
    ec_queue *queue;
    pthread_t writer;
    bool writer_started;
    int batch_ms;

    /* Progress counters, under lock; done covers committed + failed. */
    pthread_mutex_t lock;
    pthread_cond_t progress;
    pthread_cond_t closing_cond; /* wakes the writer's batch sleep at close */
    bool closing;
    uint64_t recorded;
    uint64_t done;
    uint64_t committed;
    uint64_t failed;
    uint64_t commits; /* transactions committed by the writer */
};

/* ---- store_schema.c ---- */

/* "store: <what>: <sqlite's message> (sqlite error N)" in err; EC_ERR_DB. */
ec_err ec_store_db_fail(sqlite3 *db, ec_error *err, const char *what);
/* "" or ":memory:": a private in-memory database (no WAL, one connection). */
bool ec_store_is_memory_path(const char *path);
/* Opens one connection (read-only, or read-write and created if missing) with
 * extended result codes and a busy timeout; says which part of path is
 * missing when it cannot. */
ec_err ec_store_open_conn(sqlite3 **out, const char *path, bool readonly, ec_error *err);
/* A read-only store's check: path is a decision log no newer than this build. */
ec_err ec_store_check_schema(sqlite3 *db, const char *path, ec_error *err);
/* The write connection's set-up: migrations, WAL, pragmas, and the writer's
 * prepared statements in s. */
ec_err ec_store_configure_writer(ec_store *s, ec_error *err);

/* ---- store_rows.c ---- */

/* Writes n decisions in one transaction on the write connection (taking
 * wlock); rolled back whole on any failure. */
ec_err ec_store_write_txn(ec_store *s, ec_decision *const *b, size_t n, ec_error *err);

/* ---- store.c ---- */

/* The write connection and its lock, for the ledger. NULL for a read-only store. */
sqlite3 *ec_store_write_conn(ec_store *s, pthread_mutex_t **lock);

/* sqlite3_exec with the error as "<who>: <sql>: <why>". */
ec_err ec_sql_exec(sqlite3 *db, const char *who, const char *sql, ec_error *err);
/* A column's bytes (NUL-terminated, *len without it) or text, copied; NULL
 * for NULL, empty or out of memory. For journal.c and ledger.c. */
void *ec_sql_col_blob(sqlite3_stmt *st, int i, size_t *len);
char *ec_sql_col_text(sqlite3_stmt *st, int i);

/* journal_legacy.c, for the readers of the journals of earlier builds (the
 * SQLite file <store>.arrivals.db, and the journal table in the decision log
 * that ledger.c reads): every row of st, whose columns are (id, received_ms,
 * topic, payload, response_topic, corr, expiry_s[, of_query]), as messages
 * with tag, tag_ms (and tag_of) set. On error *out holds what was read so
 * far; hand it to ec_journal_rows_give. */
ec_err ec_journal_rows_read(sqlite3_stmt *st, ec_mqtt_msg ***out, size_t *n, ec_error *err);
/* Gives each message to fn (ok) or frees it (not ok); frees the array. Called
 * outside any lock: fn may publish. */
void ec_journal_rows_give(ec_mqtt_msg **all, size_t n, bool ok, ec_journal_fn fn, void *ctx);
/* The SQLite journal file of an earlier build at path (every row, oldest
 * first; none when there is no such file), what it holds (for doctor), and
 * its removal with its -wal and -shm once its rows are journaled anew. */
ec_err ec_journal_legacy_read(const char *path, ec_mqtt_msg ***out, size_t *n, ec_error *err);
ec_err ec_journal_legacy_peek(const char *path, uint64_t *rows, uint64_t *oldest_ms, ec_error *err);
void ec_journal_legacy_remove(const char *path);

/* ---- test hooks ---- */

/* Runs sql (no parameters) on the write connection. Only while the writer is
 * idle (after ec_store_flush) or not started. */
ec_err ec_store_test_exec(ec_store *s, const char *sql, ec_error *err);
/* Transactions the writer has committed so far. */
uint64_t ec_store_test_commits(ec_store *s);
/* The arrival journal starts a new segment once its active one passes this
 * many bytes (and twice what is still undecided); 4 MiB unless set. */
void ec_journal_test_rotate_at(ec_journal *j, uint64_t bytes);
/* Segments the journal has started since it was opened. */
uint64_t ec_journal_test_rotations(ec_journal *j);
/* Journals m as if it had arrived at received_ms (epoch ms). */
ec_err ec_journal_test_add_at(ec_journal *j, ec_mqtt_msg *m, uint64_t received_ms, ec_error *err);

#endif
