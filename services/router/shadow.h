/* Shadow calls (gate.shadow_rate): a small share of the queries the local
 * tier answered on its own are asked to the first cloud tier as well. The
 * caller never sees the cloud's answer; it is recorded as an extra attempt
 * (reason "shadow") on the same decision row, with its draft, so
 * `edgecascade calibrate --from-store` can compare the two answers and the
 * operator can see how often the local tier is wrong. Each shadow call costs
 * a cloud call, counted in the decision's cost.
 *
 * The cascade forks the shadow flight (ec_shadow_fork) when it accepts a
 * local draft; the pipeline starts it at CASCADE once the original moves on.
 * When the cloud answers (or fails) the cascade concludes it with
 * ec_shadow_conclude, which builds the record and sends it to RECORD,
 * skipping EGRESS: nothing is published. */
#ifndef EC_ROUTER_SHADOW_H
#define EC_ROUTER_SHADOW_H

#include "pending.h"
#include "router_metrics.h"

typedef struct ec_shadow ec_shadow;

ec_shadow *ec_shadow_create(ec_metrics *metrics);
void ec_shadow_destroy(ec_shadow *s);

/* A copy of p's query as a new flight to the first cloud tier, when this
 * query is picked (rate) and such a tier exists; else NULL. */
ec_pending *ec_shadow_fork(ec_shadow *s, const ec_config *cfg, const ec_pending *p);
/* The shadow call came back (or failed): p's record is built, p moves to RECORD. */
void ec_shadow_conclude(ec_shadow *s, ec_pending *p);

#endif
