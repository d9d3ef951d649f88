/* Paid answers the router no longer has a query waiting for: a cloud reply
 * that arrives after its hop timed out, or, after a restart, the replies the
 * broker kept in the router's session for the hops the previous run sent.
 * The relay made those calls and they cost money, so none is dropped:
 *
 * - when the query is being run again (it was journaled and not decided
 *   before the crash) and reaches the same cloud tier, the cascade judges the
 *   kept reply instead of paying for a new call (ec_orphans_take);
 * - otherwise the record stage adds it to the query's decision as an extra
 *   attempt ("paid before a restart, answer not used"), with its cost
 *   (ec_orphans_take_all); a reply whose query was decided long ago is added
 *   to that decision row after ORPHAN_KEEP_MS (ec_orphans_take_stale).
 *
 * Shared by the cascade (put, take) and the record stage (take_all); every
 * function may run on any router thread. */
#ifndef EC_ROUTER_ORPHANS_H
#define EC_ROUTER_ORPHANS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/proto.h"

typedef struct ec_orphan {
    struct ec_orphan *next;
    double kept_ms; /* monotonic */
    ec_infer_reply rep;
} ec_orphan;

typedef struct ec_orphans ec_orphans;

ec_orphans *ec_orphans_create(void);
/* Frees what is still kept (logged with its cost: not recorded). */
void ec_orphans_destroy(ec_orphans *o);

/* Keeps rep (moved: *rep is zeroed). Ignored without rep->id. */
void ec_orphans_put(ec_orphans *o, ec_infer_reply *rep);
/* The kept reply of query id from tier ti, removed into *out; false if none. */
bool ec_orphans_take(ec_orphans *o, const char *id, uint32_t ti, ec_infer_reply *out);
/* Every kept reply of query id, removed, chained through next (caller frees
 * each with ec_orphan_free). */
ec_orphan *ec_orphans_take_all(ec_orphans *o, const char *id);
/* Replies kept longer than keep_ms, removed, chained through next. */
ec_orphan *ec_orphans_take_stale(ec_orphans *o, double now_ms, double keep_ms);
size_t ec_orphans_count(ec_orphans *o);

void ec_orphan_free(ec_orphan *x);
/* The attempt that records a kept reply that was not used (its cost, tokens,
 * tier, model); strings are duplicated. */
void ec_orphan_attempt(const ec_orphan *x, ec_attempt *a);

#endif
