/* Reading the decision log: the numbers `edgecascade stats` prints.
 *
 * Runs on the store's read connection, inside one read transaction, so every
 * number comes from the same snapshot even while the writer commits. The
 * per-tier table always holds the three kinds "local", "cloud", "none" in
 * that order (n = 0 when a kind has no rows): a fixed layout is simpler to
 * print and to compare than a list whose positions move. Percentiles are
 * nearest-rank over the sorted latencies: the value at index ceil(p*n)-1,
 * computed in integers so it is exact for every n. */
#include "store_internal.h"

#include <string.h>

static const char *const kinds[EC_STATS_TIERS] = {"local", "cloud", "none"};

static ec_err db_fail(sqlite3 *db, ec_error *err, const char *what)
{
    return ec_error_set(err, EC_ERR_DB, "store: %s: %s (sqlite error %d)", what, sqlite3_errmsg(db),
                        sqlite3_extended_errcode(db));
}

/* Nearest-rank index for pct percent of n sorted values (n > 0). */
static uint64_t rank_index(unsigned pct, uint64_t n)
{
    return (pct * n + 99) / 100 - 1;
}

static ec_err nth_latency(sqlite3 *db, sqlite3_stmt *st, uint64_t since_ms, const char *kind,
                          uint64_t idx, double *out, ec_error *err)
{
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ms);
    sqlite3_bind_text(st, 2, kind, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, (sqlite3_int64)idx);
    int rc = sqlite3_step(st);
    ec_err e = EC_OK;
    if (rc == SQLITE_ROW)
        *out = sqlite3_column_double(st, 0);
    else
        e = db_fail(db, err, "reading latencies");
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return e;
}

static ec_err stats_locked(ec_store *s, uint64_t since_ms, ec_stats *out, ec_error *err)
{
    sqlite3 *db = s->rdb;
    sqlite3_stmt *tot = NULL, *kind = NULL, *nth = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(
            db,
            "SELECT COUNT(*), TOTAL(tier_kind = 'local'), TOTAL(tier_kind = 'cloud'),"
            " TOTAL(tier_kind = 'none'), TOTAL(escalated != 0), TOTAL(cost_usd),"
            " TOTAL(cost_top_usd) FROM decisions WHERE ts_ms >= ?1",
            -1, &tot, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT COUNT(*), COUNT(latency_ms), TOTAL(cost_usd) FROM decisions"
                           " WHERE ts_ms >= ?1 AND tier_kind = ?2",
                           -1, &kind, NULL) != SQLITE_OK ||
        sqlite3_prepare_v2(db,
                           "SELECT latency_ms FROM decisions WHERE ts_ms >= ?1 AND tier_kind = ?2"
                           " AND latency_ms IS NOT NULL ORDER BY latency_ms LIMIT 1 OFFSET ?3",
                           -1, &nth, NULL) != SQLITE_OK) {
        rc = db_fail(db, err, "preparing stats queries");
        goto out;
    }

    sqlite3_bind_int64(tot, 1, (sqlite3_int64)since_ms);
    if (sqlite3_step(tot) != SQLITE_ROW) {
        rc = db_fail(db, err, "reading totals");
        goto out;
    }
    out->queries = (uint64_t)sqlite3_column_int64(tot, 0);
    out->local = (uint64_t)sqlite3_column_double(tot, 1);
    out->cloud = (uint64_t)sqlite3_column_double(tot, 2);
    out->errors = (uint64_t)sqlite3_column_double(tot, 3);
    out->escalated = (uint64_t)sqlite3_column_double(tot, 4);
    out->cost_usd = sqlite3_column_double(tot, 5);
    out->cost_top_usd = sqlite3_column_double(tot, 6);
    if (out->queries) {
        out->pct_local = 100.0 * (double)out->local / (double)out->queries;
        out->pct_cloud = 100.0 * (double)out->cloud / (double)out->queries;
    }
    if (out->cost_top_usd > 0)
        out->savings_pct = 100.0 * (1.0 - out->cost_usd / out->cost_top_usd);

    for (size_t i = 0; i < EC_STATS_TIERS; i++) {
        ec_tier_stats *t = &out->tiers[i];
        strncpy(t->kind, kinds[i], sizeof(t->kind) - 1);
        sqlite3_bind_int64(kind, 1, (sqlite3_int64)since_ms);
        sqlite3_bind_text(kind, 2, kinds[i], -1, SQLITE_STATIC);
        if (sqlite3_step(kind) != SQLITE_ROW) {
            rc = db_fail(db, err, "reading tier totals");
            goto out;
        }
        t->n = (uint64_t)sqlite3_column_int64(kind, 0);
        uint64_t nlat = (uint64_t)sqlite3_column_int64(kind, 1);
        t->cost_usd = sqlite3_column_double(kind, 2);
        sqlite3_reset(kind);
        sqlite3_clear_bindings(kind);
        if (nlat) {
            if ((rc = nth_latency(db, nth, since_ms, kinds[i], rank_index(50, nlat), &t->p50_ms,
                                  err)) ||
                (rc = nth_latency(db, nth, since_ms, kinds[i], rank_index(95, nlat), &t->p95_ms,
                                  err)))
                goto out;
        }
    }
    out->n_tiers = EC_STATS_TIERS;
out:
    sqlite3_finalize(tot);
    sqlite3_finalize(kind);
    sqlite3_finalize(nth);
    return rc;
}

ec_err ec_store_stats(ec_store *s, uint64_t since_ms, ec_stats *out, ec_error *err)
{
    if (!s || !out)
        return ec_error_set(err, EC_ERR_INVAL, "store: stats needs a store and an output");
    memset(out, 0, sizeof(*out));
    /* A shared in-memory connection may be inside the writer's transaction:
     * no snapshot of our own there (tests only). */
    bool own_txn = s->rdb != s->db;
    pthread_mutex_lock(&s->rlock);
    ec_err rc = EC_OK;
    if (own_txn && sqlite3_exec(s->rdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "starting a read");
        goto out;
    }
    rc = stats_locked(s, since_ms, out, err);
    if (own_txn)
        sqlite3_exec(s->rdb, "COMMIT", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->rlock);
    if (rc)
        memset(out, 0, sizeof(*out));
    return rc;
}

ec_err ec_store_count_query(ec_store *s, const char *query_id, int *count, ec_error *err)
{
    if (!s || !query_id || !count)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: count needs a store, a query id and an output");
    *count = 0;
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(s->rdb, "SELECT COUNT(*) FROM decisions WHERE query_id = ?1", -1, &st,
                           NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "preparing count");
        goto out;
    }
    sqlite3_bind_text(st, 1, query_id, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW)
        *count = sqlite3_column_int(st, 0);
    else
        rc = db_fail(s->rdb, err, "counting decisions");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}
