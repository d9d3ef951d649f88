/* The run loop that moves a query through the router's stages (stage.h).
 *
 * ec_pipeline_run calls the handler of the stage p is in, again and again,
 * until a handler hands p off (WAIT) or p reaches DONE, where it is released:
 * the place admission gave its asker is given back (ec_admission_done), then
 * p goes to its on_done callback (a replay), or is freed. A flight that a stage
 * forked (p->spawn, a shadow call) runs next, from the stage it was made at.
 * Every thread that has a query to move calls this, and only this. */
#ifndef EC_ROUTER_PIPELINE_H
#define EC_ROUTER_PIPELINE_H

#include "admission.h"
#include "cascade.h"
#include "egress.h"
#include "ingress.h"
#include "record.h"

typedef struct ec_pipeline {
    ec_ingress *ingress;
    ec_admission *admission;
    ec_cascade *cascade;
    ec_egress *egress;
    ec_record *record;
} ec_pipeline;

void ec_pipeline_run(ec_pipeline *pl, ec_pending *p);

/* ec_submit_fn for the offline queue: ctx is the ec_pipeline. */
void ec_pipeline_submit(void *ctx, ec_pending *p);

#endif
