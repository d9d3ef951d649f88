/* The run loop (pipeline.h). */
#include "pipeline.h"

#include <assert.h>

static ec_stage_rc run_stage(ec_pipeline *pl, ec_pending *p)
{
    switch (p->stage) {
    case EC_STAGE_INGRESS:
        return ec_ingress_run(pl->ingress, p);
    case EC_STAGE_ADMISSION:
        return ec_admission_run(pl->admission, p);
    case EC_STAGE_CASCADE:
        return ec_cascade_run(pl->cascade, p);
    case EC_STAGE_EGRESS:
        return ec_egress_run(pl->egress, p);
    case EC_STAGE_RECORD:
        return ec_record_run(pl->record, p);
    case EC_STAGE_DONE:
        break;
    }
    return EC_STAGE_NEXT;
}

void ec_pipeline_run(ec_pipeline *pl, ec_pending *p)
{
    while (p) {
        ec_pending *spawn = NULL;
        while (p->stage != EC_STAGE_DONE) {
            ec_stage before = p->stage;
            if (run_stage(pl, p) == EC_STAGE_WAIT) {
                p = NULL; /* handed off: another thread may hold it already */
                break;
            }
            assert(p->stage > before || p->stage == EC_STAGE_DONE);
            (void)before;
            spawn = spawn ? spawn : p->spawn;
            p->spawn = NULL;
        }
        if (p) {
            ec_admission_done(pl->admission, p);
            if (p->on_done)
                p->on_done(p->on_done_ctx, p, p->ok);
            else
                ec_pending_free(p);
        }
        p = spawn;
    }
}

void ec_pipeline_submit(void *ctx, ec_pending *p)
{
    ec_pipeline_run(ctx, p);
}
