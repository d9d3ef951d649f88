/* Caps on cloud spend: budget.daily_usd per UTC day, budget.monthly_usd per
 * UTC month (0 = no cap).
 *
 * The running totals live here, in memory; they are seeded at start from the
 * decision log (ec_store_cloud_spend: the cost of every cloud attempt of
 * the current month, and of today), so a restart does not reset them and
 * there is no second record of spend that could disagree with `edgecascade
 * stats`. The log is written in batches (store.batch_ms), so a crash can
 * forget at most the spend of that last batch. Spend is counted when a cloud
 * reply arrives, in the period it arrives in; at start it is read back by the
 * query's arrival time (the two differ only for a call in flight at midnight).
 *
 * A cloud call may start only while both totals are below their caps
 * (ec_budget_allows); a call already in flight when a cap is crossed still
 * finishes and counts, so spend can pass a cap by the calls in flight at that
 * moment, never by a call started after it.
 *
 * State: ok, warning (a total reached budget.warn_at of its cap) or
 * exhausted; the router publishes each change retained on
 * <root>/status/budget. ec_budget_configure applies new caps at runtime. */
#ifndef EC_ROUTER_BUDGET_H
#define EC_ROUTER_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/config.h"

typedef struct ec_budget ec_budget;

typedef enum ec_budget_state {
    EC_BUDGET_OK = 0,
    EC_BUDGET_WARNING = 1,
    EC_BUDGET_EXHAUSTED = 2,
} ec_budget_state;

/* Used and cap per period, for the status topic and the stats document. */
typedef struct ec_budget_snapshot {
    char day[11];           /* "2026-11-29" (UTC) */
    char month[8];          /* "2026-11" */
    double day_usd;         /* cloud spend today */
    double month_usd;       /* this month */
    double daily_cap_usd;   /* 0 = no cap */
    double monthly_cap_usd; /* 0 = no cap */
    double warn_at;         /* share of a cap that means warning */
    ec_budget_state state;
} ec_budget_snapshot;

ec_budget *ec_budget_create(const ec_config *cfg);
/* Applies budget.* from cfg (the totals stay). */
void ec_budget_configure(ec_budget *b, const ec_config *cfg);
void ec_budget_destroy(ec_budget *b);

/* Sets the totals of the period containing now_ms (from the decision log). */
void ec_budget_seed(ec_budget *b, uint64_t now_ms, double day_usd, double month_usd);
/* Counts usd of cloud spend at now_ms. */
void ec_budget_add(ec_budget *b, uint64_t now_ms, double usd);
/* Whether a cloud call may start at now_ms; when not, why names the cap
 * ("daily cloud budget of 1.00 USD reached (1.02 USD spent on 2026-11-29)"). */
bool ec_budget_allows(ec_budget *b, uint64_t now_ms, char *why, size_t n);
void ec_budget_snapshot_get(ec_budget *b, uint64_t now_ms, ec_budget_snapshot *out);
/* True (and *out filled) when the state differs from the one last reported
 * by this function, or on its first call: the moment to publish. */
bool ec_budget_changed(ec_budget *b, uint64_t now_ms, ec_budget_snapshot *out);

const char *ec_budget_state_name(ec_budget_state s);
/* The status document: {"state","day","month","day_usd","month_usd",
 * "daily_cap_usd","monthly_cap_usd","warn_at","ts_ms"}. Returns its length
 * (snprintf-like). */
int ec_budget_json(const ec_budget_snapshot *s, uint64_t ts_ms, char *buf, size_t n);

/* Start of the UTC day and of the UTC month containing now_ms. */
uint64_t ec_budget_day_start(uint64_t now_ms);
uint64_t ec_budget_month_start(uint64_t now_ms);

#endif
