/* Stage 5, record: the decision goes to the store writer.
 *
 * Takes: p with its Result (p->res) and its drafts (p->details).
 * Does: moves both into an ec_decision (with the top tier's cost, for the
 * savings figures) and hands it to the decision log's writer queue
 * (edgecascade/store.h; the writer thread batches the commits and its commit
 * hook clears the arrival journal's rows). A shadow call is appended to its
 * query's decision row instead of making one.
 * Hands on: p to DONE (p->ok set).
 * Threads: any that runs the pipeline. When the writer's queue is full it
 * waits (up to 5 s) rather than lose a decision, except on Paho's thread. */
#ifndef EC_ROUTER_RECORD_H
#define EC_ROUTER_RECORD_H

#include "edgecascade/store.h"
#include "orphans.h"
#include "pending.h"
#include "stage.h"

typedef struct ec_record ec_record;

/* store may be NULL: nothing is recorded. A decision also takes the paid
 * replies kept for its query (orphans.h) as extra attempts, with their cost. */
ec_record *ec_record_create(ec_router_env *env, ec_store *store, ec_orphans *orphans);
void ec_record_destroy(ec_record *rec);

/* The stage handler. */
ec_stage_rc ec_record_run(ec_record *rec, ec_pending *p);

#endif
