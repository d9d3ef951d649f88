/* The soak's audit of the decision log: decision rows per query id, the fate
 * of each queued escalation (queue_events), what is left in the outbox and
 * the arrival journal (its own file), breaker transitions. Read-only, while the services write
 * (WAL: readers do not block the writer). */
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/journal.h"
#include "soak.h"

static const char *const event_names[5] = {"queued", "replayed", "expired", "dropped", "rejected"};

/* "soak-<i>" with i < n: i; else -1. */
static long id_index(const unsigned char *qid, size_t n)
{
    unsigned long i;
    int used = 0;
    if (!qid || sscanf((const char *)qid, "soak-%lu%n", &i, &used) != 1 || qid[used] != '\0' ||
        i >= n)
        return -1;
    return (long)i;
}

static long count(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    long v = -1;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = (long)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

/* The router's arrival journal: files of its own (journal.h), read as
 * `edgecascade doctor` reads them. */
static long journal_rows(const char *store_path)
{
    uint64_t rows = 0, oldest = 0;
    ec_error err = {0};
    return ec_journal_peek(store_path, &rows, &oldest, &err) == EC_OK ? (long)rows : -1;
}

static int read_rows(sqlite3 *db, size_t n, soak_audit *a)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(
        db, "SELECT query_id, count(*), max(revision) FROM decisions GROUP BY query_id", -1, &st,
        NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        long i = id_index(sqlite3_column_text(st, 0), n);
        long rows = (long)sqlite3_column_int64(st, 1);
        if (i < 0) {
            a->foreign_rows += rows;
            continue;
        }
        a->rows[i] = (uint16_t)(rows > 65535 ? 65535 : rows);
        a->rev2row[i] = sqlite3_column_int(st, 2) >= 2;
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

static int read_events(sqlite3 *db, size_t n, soak_audit *a)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "SELECT query_id, event FROM queue_events", -1, &st, NULL);
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *ev = (const char *)sqlite3_column_text(st, 1);
        long i = id_index(sqlite3_column_text(st, 0), n);
        rc = SQLITE_OK;
        for (int k = 0; ev && k < 5; k++) {
            if (strcmp(ev, event_names[k]) != 0)
                continue;
            a->queue_events[k]++;
            if (i >= 0)
                a->qflags[i] |= (uint8_t)(1u << k);
        }
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? 0 : -1;
}

void soak_audit_clear(soak_audit *a)
{
    if (!a)
        return;
    free(a->rows);
    free(a->qflags);
    free(a->rev2row);
    memset(a, 0, sizeof(*a));
}

int soak_audit_read(const char *path, size_t n, soak_audit *a)
{
    memset(a, 0, sizeof(*a));
    sqlite3 *db = NULL;
    int ret = -1;
    a->rows = calloc(n ? n : 1, sizeof(*a->rows));
    a->qflags = calloc(n ? n : 1, 1);
    a->rev2row = calloc(n ? n : 1, 1);
    if (!a->rows || !a->qflags || !a->rev2row)
        goto out;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        fprintf(stderr, "soak: %s: %s\n", path, db ? sqlite3_errmsg(db) : "cannot open");
        goto out;
    }
    sqlite3_busy_timeout(db, 5000);
    /* One read transaction: every figure from the same snapshot. */
    if (sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK || read_rows(db, n, a) ||
        read_events(db, n, a)) {
        fprintf(stderr, "soak: reading %s: %s\n", path, sqlite3_errmsg(db));
        goto out;
    }
    a->outbox_left = count(db, "SELECT count(*) FROM outbox");
    a->journal_left = journal_rows(path);
    a->breaker_events = count(db, "SELECT count(*) FROM breaker_events");
    a->breaker_opened = count(db, "SELECT count(*) FROM breaker_events WHERE state='open'");
    ret = 0;
out:
    sqlite3_close(db); /* ends the read transaction */
    if (ret)
        soak_audit_clear(a);
    return ret;
}
