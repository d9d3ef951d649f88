/* The router's controls: privacy (redaction), the cloud budget and the answer
 * cache, behind one handle that the stages share.
 *
 * - privacy: a cloud hop sends p->masked (worked out once per query, so a
 *   failover or a replay sends the same text); local hops send the original.
 * - budget: cloud spend is counted as replies arrive; a cloud hop is refused
 *   at the cap with error "budget", which the cascade treats like an open
 *   breaker. State changes are published retained on <root>/status/budget.
 * - cache: admission looks a query up before the first hop; egress stores an
 *   accepted answer.
 *
 * Used by: admission (cache lookup), cascade (mask, budget), the offline queue
 * (budget), egress (cache store), the stats document (budget snapshot) and a
 * reload (configure). Every function may run on any router thread. */
#ifndef EC_ROUTER_CONTROLS_H
#define EC_ROUTER_CONTROLS_H

#include <stdbool.h>
#include <stddef.h>

#include "budget.h"
#include "edgecascade/store.h"
#include "pending.h"
#include "stage.h"

typedef struct ec_controls ec_controls;

/* store may be NULL (then the budget counts from 0). */
ec_err ec_controls_create(ec_controls **out, ec_router_env *env, ec_store *store, ec_error *err);
void ec_controls_destroy(ec_controls *c);

/* Applies a new configuration's privacy.*, budget.* and cache.* (a reload);
 * on error (a pattern that does not compile) nothing changes. The cache is
 * emptied, since the tiers behind it may have changed. */
ec_err ec_controls_configure(ec_controls *c, const ec_config *cfg, ec_error *err);

/* Works out p->masked once (what a cloud tier may see); false when the
 * prompt cannot be masked (out of memory): it must not leave then. */
bool ec_controls_mask(ec_controls *c, ec_pending *p);

/* Looks p up in the cache: true (p->cached set) on a hit; on a miss keeps
 * p's key so egress can store the answer. */
bool ec_controls_cache_lookup(ec_controls *c, ec_pending *p);
/* Stores res under p's key when it may be cached (accepted, not degraded,
 * not withheld, no error). */
void ec_controls_cache_store(ec_controls *c, const ec_pending *p, const ec_result *res,
                             int answer_attempt);
/* Fills the Result of a cache hit (tier "cache", cost 0). */
void ec_controls_cache_result(const ec_pending *p, ec_result *res, char *reason, size_t n);

/* Counts cloud spend; publishes the budget state when it changes. */
void ec_controls_budget_spent(ec_controls *c, double usd);
/* Whether a cloud call may start now; why (may be NULL) names the cap when not. */
bool ec_controls_budget_allows(ec_controls *c, char *why, size_t n);
/* Publishes <root>/status/budget (retained) when the state changed, or always with force. */
void ec_controls_budget_publish(ec_controls *c, bool force);
void ec_controls_budget_snapshot(ec_controls *c, ec_budget_snapshot *out);

#endif
