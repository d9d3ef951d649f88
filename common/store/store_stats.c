/* Reading the decision log: the numbers `edgecascade stats` prints.
 *
 * Runs on the store's read connection, inside one read transaction, so every
 * number comes from the same snapshot even while the writer commits. The
 * per-tier table always holds the four kinds "local", "cloud", "cache" (the
 * router's answer cache) and "none" (errors) in that order (n = 0 when a kind
 * has no rows): a fixed layout is simpler to print and to compare than a list
 * whose positions move. The same order as the router's live metrics, so
 * local + cloud + cache + errors is every query. Percentiles are
 * nearest-rank over the sorted latencies: the value at index ceil(p*n)-1,
 * computed in integers so it is exact for every n. */
#include "store_internal.h"

#include <stdlib.h>
#include <string.h>

static const char *const kinds[EC_STATS_TIERS] = {"local", "cloud", "cache", "none"};

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
            " TOTAL(cost_top_usd), TOTAL(tier_kind = 'cache') FROM decisions WHERE ts_ms >= ?1",
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
    out->cache = (uint64_t)sqlite3_column_double(tot, 7);
    if (out->queries) {
        out->pct_local = 100.0 * (double)out->local / (double)out->queries;
        out->pct_cloud = 100.0 * (double)out->cloud / (double)out->queries;
        out->pct_cache = 100.0 * (double)out->cache / (double)out->queries;
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

ec_err ec_store_totals_each(ec_store *s, ec_store_total_fn fn, void *ctx, ec_error *err)
{
    if (!s || !fn)
        return ec_error_set(err, EC_ERR_INVAL, "store: totals need a store and a callback");
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(s->rdb,
                           "SELECT tier_kind, error_code, COUNT(*), TOTAL(escalated != 0),"
                           " TOTAL(degraded != 0), TOTAL(cost_usd), TOTAL(cost_top_usd)"
                           " FROM decisions GROUP BY tier_kind, error_code",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "preparing totals");
        goto out;
    }
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW)
        fn(ctx, (const char *)sqlite3_column_text(st, 0), (const char *)sqlite3_column_text(st, 1),
           (uint64_t)sqlite3_column_int64(st, 2), (uint64_t)sqlite3_column_double(st, 3),
           (uint64_t)sqlite3_column_double(st, 4), sqlite3_column_double(st, 5),
           sqlite3_column_double(st, 6));
    if (step != SQLITE_DONE)
        rc = db_fail(s->rdb, err, "reading totals");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

/* ---- grouped ---- */

/* One pass over the window sorted by group then latency: each group's rows
 * arrive together with their latencies in order, so the totals and the
 * nearest-rank percentiles need no second query per group. NULL latencies sort
 * first in SQLite and are skipped. */
static const char *const group_sql[] = {
    [EC_STATS_BY_MODEL] = "SELECT model AS k, tier_kind, escalated, cost_usd, cost_top_usd,"
                          " latency_ms FROM decisions WHERE ts_ms >= ?1 ORDER BY k, latency_ms",
    [EC_STATS_BY_SOURCE] = "SELECT source AS k, tier_kind, escalated, cost_usd, cost_top_usd,"
                           " latency_ms FROM decisions WHERE ts_ms >= ?1 ORDER BY k, latency_ms",
    [EC_STATS_BY_DAY] = "SELECT strftime('%Y-%m-%d', ts_ms / 1000, 'unixepoch') AS k, tier_kind,"
                        " escalated, cost_usd, cost_top_usd, latency_ms FROM decisions"
                        " WHERE ts_ms >= ?1 ORDER BY k, latency_ms",
    [EC_STATS_BY_ASKER] = "SELECT asker AS k, tier_kind, escalated, cost_usd, cost_top_usd,"
                          " latency_ms FROM decisions WHERE ts_ms >= ?1 ORDER BY k, latency_ms",
};

typedef struct group_acc {
    ec_group_stats *g;
    size_t n, cap;
    double *lat;
    size_t n_lat, cap_lat;
} group_acc;

static void group_finish(group_acc *a)
{
    if (!a->n)
        return;
    ec_group_stats *g = &a->g[a->n - 1];
    if (g->queries) {
        g->pct_local = 100.0 * (double)g->local / (double)g->queries;
        g->pct_cloud = 100.0 * (double)g->cloud / (double)g->queries;
        g->pct_cache = 100.0 * (double)g->cache / (double)g->queries;
    }
    if (g->cost_top_usd > 0)
        g->savings_pct = 100.0 * (1.0 - g->cost_usd / g->cost_top_usd);
    g->n_latency = a->n_lat;
    if (a->n_lat) {
        g->p50_ms = a->lat[rank_index(50, a->n_lat)];
        g->p95_ms = a->lat[rank_index(95, a->n_lat)];
    }
    a->n_lat = 0;
}

static bool same_key(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static ec_err group_start(group_acc *a, const char *key, ec_error *err)
{
    if (a->n == a->cap) {
        size_t cap = a->cap ? a->cap * 2 : 8;
        ec_group_stats *g = realloc(a->g, cap * sizeof(*g));
        if (!g)
            return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
        a->g = g;
        a->cap = cap;
    }
    ec_group_stats *g = &a->g[a->n];
    memset(g, 0, sizeof(*g));
    if (key && !(g->key = strdup(key)))
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    a->n++;
    return EC_OK;
}

static ec_err group_latency(group_acc *a, double ms, ec_error *err)
{
    if (a->n_lat == a->cap_lat) {
        size_t cap = a->cap_lat ? a->cap_lat * 2 : 64;
        double *l = realloc(a->lat, cap * sizeof(*l));
        if (!l)
            return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
        a->lat = l;
        a->cap_lat = cap;
    }
    a->lat[a->n_lat++] = ms;
    return EC_OK;
}

static ec_err stats_by_locked(ec_store *s, uint64_t since_ms, ec_stats_by by, group_acc *a,
                              ec_error *err)
{
    sqlite3 *db = s->rdb;
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(db, group_sql[by], -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "preparing grouped stats");
    sqlite3_bind_int64(st, 1, (sqlite3_int64)since_ms);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *key = (const char *)sqlite3_column_text(st, 0);
        if (!a->n || !same_key(a->g[a->n - 1].key, key)) {
            group_finish(a);
            if ((rc = group_start(a, key, err)))
                goto out;
        }
        /* group_start() succeeded at least once: a->g holds a->n >= 1 groups. */
        ec_group_stats *g = &a->g[a->n - 1];
        const char *kind = (const char *)sqlite3_column_text(st, 1);
        // NOLINTNEXTLINE(clang-analyzer-core.NullDereference)
        g->queries++;
        if (kind && strcmp(kind, "local") == 0)
            g->local++;
        else if (kind && strcmp(kind, "cloud") == 0)
            g->cloud++;
        else if (kind && strcmp(kind, "cache") == 0)
            g->cache++;
        else
            g->errors++;
        if (sqlite3_column_int(st, 2))
            g->escalated++;
        g->cost_usd += sqlite3_column_double(st, 3);
        g->cost_top_usd += sqlite3_column_double(st, 4);
        if (sqlite3_column_type(st, 5) != SQLITE_NULL &&
            (rc = group_latency(a, sqlite3_column_double(st, 5), err)))
            goto out;
    }
    if (step != SQLITE_DONE) {
        rc = db_fail(db, err, "reading grouped stats");
        goto out;
    }
    group_finish(a);
out:
    sqlite3_finalize(st);
    return rc;
}

ec_err ec_store_stats_by(ec_store *s, uint64_t since_ms, ec_stats_by by, ec_group_stats **out,
                         size_t *n, ec_error *err)
{
    if (!s || !out || !n || (int)by < 0 || by > EC_STATS_BY_ASKER)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: grouped stats need a store, a grouping and an output");
    *out = NULL;
    *n = 0;
    group_acc a = {0};
    bool own_txn = s->rdb != s->db;
    pthread_mutex_lock(&s->rlock);
    ec_err rc = EC_OK;
    if (own_txn && sqlite3_exec(s->rdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "starting a read");
        goto out;
    }
    rc = stats_by_locked(s, since_ms, by, &a, err);
    if (own_txn)
        sqlite3_exec(s->rdb, "COMMIT", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->rlock);
    free(a.lat);
    if (rc) {
        ec_group_stats_free(a.g, a.n);
        return rc;
    }
    *out = a.g;
    *n = a.n;
    return EC_OK;
}

void ec_group_stats_free(ec_group_stats *g, size_t n)
{
    if (!g)
        return;
    for (size_t i = 0; i < n; i++)
        free(g[i].key);
    free(g);
}

/* ---- the file itself ---- */

static ec_err count_rows(sqlite3 *db, const char *sql, uint64_t *out, ec_error *err)
{
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW)
        rc = db_fail(db, err, "reading the store's tables");
    else
        *out = (uint64_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return rc;
}

ec_err ec_store_info_read(ec_store *s, ec_store_info *out, ec_error *err)
{
    if (!s || !out)
        return ec_error_set(err, EC_ERR_INVAL, "store: info needs a store and an output");
    memset(out, 0, sizeof(*out));
    out->schema_version_build = EC_STORE_SCHEMA_VERSION;
    bool own_txn = s->rdb != s->db;
    pthread_mutex_lock(&s->rlock);
    ec_err rc = EC_OK;
    uint64_t v = 0;
    if (own_txn && sqlite3_exec(s->rdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "starting a read");
        goto out;
    }
    if ((rc = count_rows(s->rdb, "PRAGMA user_version", &v, err)) ||
        (rc = count_rows(s->rdb, "SELECT COUNT(*) FROM decisions", &out->decisions, err)) ||
        (rc = count_rows(s->rdb, "SELECT COUNT(*) FROM outbox", &out->outbox, err)) ||
        (rc = count_rows(s->rdb, "SELECT COALESCE(MAX(ts_ms), 0) FROM decisions", &out->last_ts_ms,
                         err)))
        goto done;
    out->schema_version = (int)v;
done:
    if (own_txn)
        sqlite3_exec(s->rdb, "COMMIT", NULL, NULL, NULL);
out:
    pthread_mutex_unlock(&s->rlock);
    return rc;
}
