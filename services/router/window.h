/* The local window: how many requests the router has out to the device's
 * local model at once (router.local_inflight). A local tier shares the
 * device's cores with everything else, so requests past what its workers
 * can take only wait in its queue, and under overload that queue turned
 * into seconds of latency and into CPU spent by the router on queries that
 * were going to wait anyway. Past the window a query waits here instead,
 * and is sent the moment a local hop ends; a burst is absorbed rather than
 * refused.
 *
 * Waiting queries are kept per asker (p->asker, fair.h), each asker's in
 * arrival order, and the askers take the freed slots in turn, p->weight
 * slots per turn (router.asker_weights): a PLC that floods waits behind its
 * own queries, not in front of everybody else's.
 *
 * A query holds one slot per local hop: from its dispatch until its reply,
 * its timeout or a failed publish takes it out of the pending table. */
#ifndef EC_WINDOW_H
#define EC_WINDOW_H

#include <stdbool.h>
#include <stddef.h>

#include "pending.h"

typedef struct ec_window ec_window;

ec_window *ec_window_create(void);
/* Frees the window and every query still waiting in it (their journal rows
 * stay, so the next start runs them). */
void ec_window_destroy(ec_window *w);

/* A slot for p's next local hop: true and the slot is p's (p->windowed), or
 * false and p now waits in the window, owned by it. While any query waits,
 * a new arrival waits too (its asker's turn comes round). */
bool ec_window_enter(ec_window *w, ec_pending *p, size_t limit);

/* p's local hop ended: its slot goes to the next waiting query (the asker
 * whose turn it is, its oldest), returned with the slot (the caller
 * dispatches it), or NULL. */
ec_pending *ec_window_leave(ec_window *w, ec_pending *p, size_t limit);

/* A slot freed by a lower limit or a leave that found nobody: the next
 * waiting query with a slot, or NULL (a reload can raise the limit). */
ec_pending *ec_window_admit(ec_window *w, size_t limit);

/* Waiting queries whose wait passed max_wait_ms(p), chained through next. */
ec_pending *ec_window_take_stale(ec_window *w, double now_ms,
                                 double (*max_wait_ms)(void *ctx, const ec_pending *p), void *ctx);

/* How late a query of asker (weight: its turns per round) joining now
 * would be sent: the queries served before it (its asker's waiting ones, and
 * of every other asker as many as the rounds until its turn allow) times the
 * measured time a query holds a slot, divided by the slots (one frees that
 * often); or, when longer, the time since a slot last changed hands while
 * queries wait (a model that stopped answering finishes no hop to measure).
 * 0 when none waits. */
double ec_window_behind_ms(ec_window *w, const char *asker, int weight, double now_ms);

/* The measured time a query holds a slot (its local hop), 0 until one ended. */
double ec_window_hold_ms(ec_window *w);

size_t ec_window_waiting(ec_window *w);
size_t ec_window_inflight(ec_window *w);

#endif
