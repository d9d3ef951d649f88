/* Stage 2, admission: whether, and where, a decoded query starts.
 *
 * Takes: p from INGRESS (query decoded, deadline from router.query_timeout_ms).
 * Hands on: p with p->tier set to the first tier to ask, to CASCADE; or an
 * outcome to EGRESS: a cache hit (answered without a model), "busy" (the
 * inbound queue overflowed, the asker over router.asker_max_pending or over
 * its share of router.max_pending (fair.h), the local model too
 * far behind to answer within the tier's timeout or the query's deadline, or
 * more than router.max_wait_ms behind when that is set), or "config" (no tier the query's
 * policy allows).
 * Reads, never changes: the pending table's count and the local window's
 * backlog (both the cascade's), the cache (controls.h).
 * Owns: the places each asker holds (fair.h), taken here and given back at
 * DONE (ec_admission_done).
 * Threads: workers, or Paho's thread for a refusal (p->nowait). */
#ifndef EC_ROUTER_ADMISSION_H
#define EC_ROUTER_ADMISSION_H

#include "controls.h"
#include "pending.h"
#include "stage.h"
#include "window.h"

typedef struct ec_admission ec_admission;

ec_admission *ec_admission_create(ec_router_env *env, ec_pending_table *pending, ec_window *window,
                                  ec_controls *controls);
void ec_admission_destroy(ec_admission *a);

/* The stage handler. */
ec_stage_rc ec_admission_run(ec_admission *a, ec_pending *p);

/* p reached DONE: the place admission gave its asker is free again (the
 * pipeline calls this for every query it releases). */
void ec_admission_done(ec_admission *a, ec_pending *p);

#endif
