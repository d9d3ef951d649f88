/* Stage 4, egress: the Result leaves the router.
 *
 * Takes: p with an outcome (p->out, set by whichever stage decided) or, for
 * a notice (an expired escalation), a Result already built (p->has_result).
 * Does: builds the Result (answer, tier, confidence, attempts, cost, latency),
 * stores an accepted answer in the cache, publishes it to the client's
 * Response Topic (with its Correlation Data) and to <root>/result/<id>, and
 * counts it in the metrics (the one observer call on the hot path).
 * Hands on: p with p->res to RECORD (a notice ends at DONE).
 * Threads: workers, the sweeper, the replay thread; Paho's thread for a
 * refusal (p->nowait: publishes without waiting for room). */
#ifndef EC_ROUTER_EGRESS_H
#define EC_ROUTER_EGRESS_H

#include "controls.h"
#include "pending.h"
#include "router_metrics.h"
#include "stage.h"

typedef struct ec_egress ec_egress;

ec_egress *ec_egress_create(ec_router_env *env, ec_controls *controls, ec_metrics *metrics);
void ec_egress_destroy(ec_egress *e);

/* The stage handler. */
ec_stage_rc ec_egress_run(ec_egress *e, ec_pending *p);

#endif
