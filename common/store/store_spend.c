/* Cloud spend read back from the decision log, so the router's budget caps
 * survive a restart without a second record of spend (services/router/budget.h). */
#include <string.h>

#include "store_internal.h"

ec_err ec_store_cloud_spend(ec_store *s, uint64_t month_start_ms, uint64_t day_start_ms,
                            const char *const *local_tiers, size_t n_local, double *day_usd,
                            double *month_usd, ec_error *err)
{
    if (!s || !day_usd || !month_usd)
        return ec_error_set(err, EC_ERR_INVAL, "store: spend needs a store and outputs");
    *day_usd = *month_usd = 0;
    ec_err rc = EC_OK;
    sqlite3_stmt *st = NULL;
    pthread_mutex_lock(&s->rlock);
    /* Only attempts that cost something: a month of cloud calls at most, and
     * the tier test is done here rather than with a variable-length IN (). */
    if (sqlite3_prepare_v2(s->rdb,
                           "SELECT d.ts_ms, a.tier_name, a.cost_usd FROM decisions d"
                           " JOIN attempts a ON a.decision_id = d.id"
                           " WHERE d.ts_ms >= ?1 AND a.cost_usd > 0",
                           -1, &st, NULL) != SQLITE_OK) {
        rc = ec_error_set(err, EC_ERR_DB, "store: preparing spend: %s", sqlite3_errmsg(s->rdb));
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)month_start_ms);
    int step;
    while ((step = sqlite3_step(st)) == SQLITE_ROW) {
        const char *tier = (const char *)sqlite3_column_text(st, 1);
        bool local = false;
        for (size_t i = 0; tier && i < n_local && !local; i++)
            local = local_tiers[i] && strcmp(local_tiers[i], tier) == 0;
        if (local)
            continue;
        double usd = sqlite3_column_double(st, 2);
        *month_usd += usd;
        if ((uint64_t)sqlite3_column_int64(st, 0) >= day_start_ms)
            *day_usd += usd;
    }
    if (step != SQLITE_DONE)
        rc = ec_error_set(err, EC_ERR_DB, "store: reading spend: %s", sqlite3_errmsg(s->rdb));
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}
