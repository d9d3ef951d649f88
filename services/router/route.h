/* The order of the tiers for one query: pure functions of the config and the
 * query's policy, shared by admission (the first tier) and the cascade (the
 * next one, a stand-in after a failure). No state, no stage. */
#ifndef EC_ROUTER_ROUTE_H
#define EC_ROUTER_ROUTE_H

#include <stdbool.h>

#include "edgecascade/config.h"
#include "pending.h"

/* Whether the query must stay on the device: policy local_only, or policy
 * consent without consent: true. */
bool ec_route_stays_local(const ec_pending *p);
/* Next tier after `after` in the cascade that the query's policy allows, or
 * -1. Failover tiers are not part of the cascade: they stand in for their
 * primary only when it fails (ec_route_failover). */
int ec_route_next(const ec_config *cfg, const ec_pending *p, int after);
/* The cascade position a tier holds: itself, or the primary it stands in for. */
int ec_route_primary(const ec_config *cfg, int ti);
/* After tier ti failed: the next stand-in for its primary, or -1. */
int ec_route_failover(const ec_config *cfg, const ec_pending *p, int ti);
/* Whether a cloud tier of the cascade comes after ti: what a consent query
 * without consent is kept from. */
bool ec_route_cloud_after(const ec_config *cfg, int ti);

#endif
