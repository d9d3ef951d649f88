/* Stage 1, ingress: a query's bytes become a flight.
 *
 * Takes: an ec_mqtt_msg from <root>/query (a worker thread pops it from the
 * inbound queue; p->msg points at it during this stage, not owned).
 * Hands on: p with p->query decoded and validated, to ADMISSION; or, when the
 * payload cannot be read (malformed, too large), an error outcome to EGRESS.
 * Also owns the arrival journal: Paho's thread journals each query before it
 * is acknowledged to the broker (ec_ingress_on_arrival), so an acknowledged
 * query survives a crash of the router, and so does a paid cloud reply
 * (ec_ingress_journal_reply); at start the journal's undecided queries are
 * read back and re-run once connected, their replies kept for them.
 * Threads: ec_ingress_run on workers (or Paho's thread for a refusal, see
 * ec_ingress_overflow); ec_ingress_on_arrival on Paho's thread. */
#ifndef EC_ROUTER_INGRESS_H
#define EC_ROUTER_INGRESS_H

#include "edgecascade/ledger.h"
#include "edgecascade/store.h"
#include "orphans.h"
#include "pending.h"
#include "stage.h"

typedef struct ec_ingress ec_ingress;

/* Opens the journal (with a store), reads the queries journaled and not
 * decided before a crash, and keeps them for ec_ingress_recovered. store and
 * ledger may be NULL (no journal then). */
ec_err ec_ingress_create(ec_ingress **out, ec_router_env *env, ec_store *store, ec_ledger *ledger,
                         ec_orphans *orphans, ec_error *err);
/* After the store's writer has flushed: lets go of the journal. */
void ec_ingress_destroy(ec_ingress *in);

/* The stage handler. */
ec_stage_rc ec_ingress_run(ec_ingress *in, ec_pending *p);

bool ec_ingress_is_query(const ec_ingress *in, const char *topic);

/* Paho's thread, before the broker gets its acknowledgement. */
void ec_ingress_on_arrival(ec_ingress *in, ec_mqtt_msg *msg);
/* Paho's thread, before the acknowledgement: a paid reply for the query
 * journaled as of_query. Journaled, so a crash before its decision is
 * committed keeps it: the query's next run uses it (orphans.h) instead of
 * paying again. */
void ec_ingress_journal_reply(ec_ingress *in, ec_mqtt_msg *msg, int64_t of_query);
/* Paho's thread, for a reply that may be paid and is not journaled (no hop
 * waits for it, or its query is not journaled): msg->tag = -1 when it is the
 * broker's redelivery (DUP) of one already taken, so a paid answer is never
 * kept, nor counted, twice. Same for a journaled reply
 * (ec_ingress_journal_reply). The worker drops such a reply. */
void ec_ingress_note_reply(ec_ingress *in, ec_mqtt_msg *msg);

typedef enum ec_overflow_action {
    EC_OVERFLOW_QUEUE,  /* queue it anyway (not a query, or the broker is slow too) */
    EC_OVERFLOW_DROP,   /* a duplicate delivery already taken: msg freed */
    EC_OVERFLOW_REFUSE, /* answer it busy now, from Paho's thread (p->nowait) */
} ec_overflow_action;
/* Paho's thread, inbound queue full. */
ec_overflow_action ec_ingress_overflow(ec_ingress *in, ec_mqtt_msg *msg);

/* The queries read back from the journal at start (owned by the caller from
 * now on; *n of them). */
ec_mqtt_msg **ec_ingress_recovered(ec_ingress *in, size_t *n);

#endif
