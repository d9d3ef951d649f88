/* The arrival journals of earlier builds, read once to move their rows into
 * the journal of today (journal.c): a SQLite file of its own beside the
 * decision log (<store>.arrivals.db), and before that a table in the
 * decision log itself (read by ledger.c with the row reader below). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "store_internal.h"

#define BUSY_WAIT_MS 5000

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
        rc = ec_error_set(err, EC_ERR_DB, "journal: reading it: %s",
                          sqlite3_errmsg(sqlite3_db_handle(st)));
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

/* Opens the old file read-only; *db NULL (and EC_OK) when there is none. */
static ec_err open_old(const char *path, sqlite3 **db, ec_error *err)
{
    *db = NULL;
    if (access(path, F_OK) != 0)
        return EC_OK;
    if (sqlite3_open_v2(path, db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        ec_err rc = ec_error_set(err, EC_ERR_DB, "journal: cannot open '%s': %s", path,
                                 *db ? sqlite3_errmsg(*db) : "out of memory");
        sqlite3_close(*db);
        *db = NULL;
        return rc;
    }
    sqlite3_busy_timeout(*db, BUSY_WAIT_MS);
    return EC_OK;
}

static ec_err prepare(sqlite3 *db, const char *path, const char *sql, sqlite3_stmt **st,
                      ec_error *err)
{
    if (sqlite3_prepare_v2(db, sql, -1, st, NULL) == SQLITE_OK)
        return EC_OK;
    return ec_error_set(err, EC_ERR_DB,
                        "journal: '%s' is not an edgecascade arrival journal (move it away): %s",
                        path, sqlite3_errmsg(db));
}

/* Journals from before paid replies were journaled have no of_query. */
static bool has_of_query(sqlite3 *db)
{
    sqlite3_stmt *st = NULL;
    bool column = false;
    if (sqlite3_prepare_v2(db, "PRAGMA table_info(journal)", -1, &st, NULL) != SQLITE_OK)
        return false;
    while (sqlite3_step(st) == SQLITE_ROW) {
        const char *name = (const char *)sqlite3_column_text(st, 1);
        column |= name && strcmp(name, "of_query") == 0;
    }
    sqlite3_finalize(st);
    return column;
}

ec_err ec_journal_legacy_read(const char *path, ec_mqtt_msg ***out, size_t *n, ec_error *err)
{
    *out = NULL;
    *n = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ec_err rc = open_old(path, &db, err);
    if (rc || !db)
        return rc;
    const char *sql = has_of_query(db)
                          ? "SELECT id, received_ms, topic, payload, response_topic, corr,"
                            " expiry_s, of_query FROM journal ORDER BY id"
                          : "SELECT id, received_ms, topic, payload, response_topic, corr,"
                            " expiry_s FROM journal ORDER BY id";
    if (!(rc = prepare(db, path, sql, &st, err)))
        rc = ec_journal_rows_read(st, out, n, err);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

ec_err ec_journal_legacy_peek(const char *path, uint64_t *rows, uint64_t *oldest_ms, ec_error *err)
{
    *rows = 0;
    *oldest_ms = 0;
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    ec_err rc = open_old(path, &db, err);
    if (rc || !db)
        return rc;
    if (!(rc = prepare(db, path, "SELECT count(*), coalesce(min(received_ms), 0) FROM journal", &st,
                       err))) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            *rows = (uint64_t)sqlite3_column_int64(st, 0);
            *oldest_ms = (uint64_t)sqlite3_column_int64(st, 1);
        } else
            rc =
                ec_error_set(err, EC_ERR_DB, "journal: reading '%s': %s", path, sqlite3_errmsg(db));
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

void ec_journal_legacy_remove(const char *path)
{
    char side[4200];
    unlink(path);
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
}
