/* Fair admission: how many queries each asker holds (admitted by the
 * admission stage and not yet at DONE), so that one asker (a PLC stuck in a
 * loop) cannot fill the router and starve the others.
 *
 * An asker is the broker-verified user of <root>/query/<user> (access.h);
 * the queries without identity (the bare <root>/query) count as one asker.
 * Two limits: an asker's own cap (router.asker_max_pending), and its share
 * of router.max_pending once the router holds that many (max_pending divided
 * by the askers holding any), so a newcomer is still admitted when one asker
 * filled the router; the router then holds at most twice max_pending.
 * The order in which admitted askers reach the local model is the window's
 * (window.h: per asker in turn, by weight).
 *
 * Threads: any; one lock. Entries exist only while an asker holds a query. */
#ifndef EC_ROUTER_FAIR_H
#define EC_ROUTER_FAIR_H

#include <stdbool.h>
#include <stddef.h>

typedef struct ec_fair ec_fair;

ec_fair *ec_fair_create(void);
void ec_fair_destroy(ec_fair *f);

/* One place for asker (NULL: no identity). held is the router's count of
 * queries in flight and waiting; max_total is router.max_pending. False
 * (nothing taken) with the reason in why when the asker is over a limit. */
bool ec_fair_take(ec_fair *f, const char *asker, size_t cap, size_t held, size_t max_total,
                  char *why, size_t why_len);
/* Gives back a place ec_fair_take gave. */
void ec_fair_give_back(ec_fair *f, const char *asker);

/* The places asker holds now. */
size_t ec_fair_held(ec_fair *f, const char *asker);

#endif
