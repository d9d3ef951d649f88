/* Observation: the stats document (<root>/stats, retained, and /api/stats),
 * /metrics, /api/decisions and the dashboard. They read the router through
 * the getters in router.h (the metrics, the counts of the cascade's table
 * and window, the offline queue's depth, the budget); no stage calls them,
 * and they call no stage. Each runs on its own thread (the stats publisher,
 * libmicrohttpd's), so a slow HTTP client never holds up a query. */
#ifndef EC_ROUTER_OBSERVE_H
#define EC_ROUTER_OBSERVE_H

#include <jansson.h>

#include "router.h"

/* router_stats.c: the stats document, built section by section (see the
 * table there) so another part of the router can add its own numbers. */
json_t *ec_router_stats_doc(ec_router *r);

typedef struct ec_stats_pub ec_stats_pub;
/* Publishes the document retained on <root>/stats every stats.interval_s. */
ec_err ec_stats_pub_start(ec_stats_pub **out, ec_router *r, ec_error *err);
void ec_stats_pub_stop(ec_stats_pub *s);

/* router_http.c: on http.bind:http.port; *out stays NULL when the port is 0. */
typedef struct ec_http_srv ec_http_srv;
ec_err ec_http_srv_start(ec_http_srv **out, ec_router *r, ec_error *err);
void ec_http_srv_stop(ec_http_srv *h);

#endif
