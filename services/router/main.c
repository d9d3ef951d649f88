/* edgecascade-router: receives queries, runs the cascade, publishes results
 * and records every decision. See router.h for the design. */
#include <stdio.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "router.h"

int main(int argc, char **argv)
{
    ec_service svc;
    ec_store *store = NULL;
    ec_router *router = NULL;
    ec_error err = {0};
    int code = 1;
    int rc = ec_service_init(&svc, "router",
                             "Router: takes queries on <root>/query, asks the local tier first, "
                             "escalates drafts below the confidence threshold to the next tier, "
                             "publishes results and records every decision in SQLite.",
                             argc, argv);
    if (rc)
        return rc < 0 ? 0 : rc;

    if (ec_store_open(&store, svc.cfg.db_path, false, &err) ||
        ec_store_start_writer(store, svc.cfg.store_batch_ms, 8192, &err)) {
        ec_log_error("decision log %s: %s", svc.cfg.db_path, err.msg);
        goto out;
    }
    if (ec_router_create(&router, &svc, store, &err)) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    char query_filter[340], asker_filter[344], query_topic[300];
    ec_topic(&svc.cfg, query_topic, sizeof(query_topic), "query");
    /* A plain subscription by default: the broker keeps its messages for a
     * stopped router, also across a broker restart with persistence. Shared
     * (mqtt.shared_subscriptions) lets a second router split the load. */
    snprintf(query_filter, sizeof(query_filter), "%s%s",
             svc.cfg.shared_subscriptions ? "$share/edgecascade-router/" : "", query_topic);
    /* <root>/query/<user>: the level is the user the broker authenticated
     * (the ACL lets each user write only its own), the query's asker. */
    snprintf(asker_filter, sizeof(asker_filter), "%s/+", query_filter);
    const char *filters[] = {query_filter, asker_filter, ec_router_reply_topic(router),
                             ec_router_breaker_filter(router), NULL};
    if (ec_service_connect(&svc, filters, &err)) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    if (ec_router_start(router, &err)) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    ec_log_info("ready: %zu tiers, threshold %.2f (%s), decisions in %s", svc.cfg.n_tiers,
                svc.cfg.min_confidence, svc.cfg.gate_preset, svc.cfg.db_path);
    ec_service_ready(&svc, "serving %zu tiers on %s", svc.cfg.n_tiers, query_topic);
    while (!ec_service_stopping()) {
        if (ec_service_reload_requested())
            ec_router_reload(router, &err); /* logs and publishes its outcome */
        ec_sleep_ms(50);
    }
    ec_service_notify_stopping();
    ec_log_info("stopping");
    /* Let queries already with a tier finish, so their callers get an answer. */
    for (int i = 0; i < 50 && ec_router_inflight(router) > 0; i++)
        ec_sleep_ms(100);
    code = 0;
out:
    if (svc.mqtt)
        ec_mqtt_stop(svc.mqtt); /* closes the inbound queue: workers drain and exit */
    ec_router_destroy(router);
    ec_store_close(store);
    ec_service_shutdown(&svc);
    return code;
}
