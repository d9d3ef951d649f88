/* The router's pipeline contract: what every stage shares.
 *
 * A query is one ec_pending (pending.h) that walks forward through fixed
 * stages, the way nginx walks a request through its phases:
 *
 *   INGRESS -> ADMISSION -> CASCADE -> EGRESS -> RECORD -> DONE
 *
 * Each stage is a handler, `ec_stage_rc handler(stage_state, p)`, called only
 * by ec_pipeline_run (pipeline.c). A handler either moves p forward (sets
 * p->stage to a later stage, never an earlier one, and returns EC_STAGE_NEXT)
 * or hands p off (EC_STAGE_WAIT): p is then owned by a queue or table and a
 * later event (a tier's reply, a timeout, a free slot, a replay) resumes it
 * at the same stage by calling ec_pipeline_run again. After WAIT the handler's
 * caller must not touch p: another thread may already hold it. No stage calls
 * another stage; they share only the read-only environment below and the
 * resources each is handed at creation (docs/ARCHITECTURE.md has the table). */
#ifndef EC_ROUTER_STAGE_H
#define EC_ROUTER_STAGE_H

#include <stdatomic.h>

#include "edgecascade/config.h"
#include "edgecascade/service.h"
#include "gate.h"

typedef enum ec_stage {
    EC_STAGE_INGRESS = 0, /* decode and validate the payload (ingress.c) */
    EC_STAGE_ADMISSION,   /* limits, cache, first tier, busy (admission.c) */
    EC_STAGE_CASCADE,     /* tiers, the gate, failover, offline queue (cascade.c) */
    EC_STAGE_EGRESS,      /* the Result: built, cached, published, counted (egress.c) */
    EC_STAGE_RECORD,      /* the decision to the store writer (record.c) */
    EC_STAGE_DONE,        /* released: the flight's owner callback, or freed */
} ec_stage;

/* The refusal when the inbound queue (mqtt.queue_size) is full. */
#define EC_INTAKE_FULL_MSG "router intake queue is full (mqtt.queue_size); retry later"

typedef enum ec_stage_rc {
    EC_STAGE_NEXT, /* p->stage moved forward; the pipeline goes on */
    EC_STAGE_WAIT, /* p was handed off; it comes back through ec_pipeline_run */
} ec_stage_rc;

/* What every stage reads and nothing but a reload writes: the service (MQTT
 * client, client id), and the config and gate in force. Both pointers are
 * swapped whole by a reload (router.c); what they point to stays valid until
 * the router is destroyed. */
typedef struct ec_router_env {
    ec_service *svc;
    _Atomic(ec_config *) cfg;
    _Atomic(ec_gate *) gate;
} ec_router_env;

#endif
