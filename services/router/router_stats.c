/* The stats document: what <root>/stats carries (retained, every
 * stats.interval_s) and /api/stats serves.
 *
 * The document is assembled from sections, one function each, in the table
 * below: a part of the router with numbers of its own (a budget, a cache)
 * adds a function and a line, and both the topic and the HTTP endpoint carry
 * them. Sections add keys to one flat JSON object; each owns its keys.
 *
 * Fleet dashboards subscribe to edgecascade/+/stats: every site's router
 * publishes its own document, retained, so a dashboard that connects late
 * still gets each site's latest numbers at once. */
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "budget.h"
#include "observe.h"
#include "router_metrics.h"

typedef void (*stats_section)(ec_router *r, json_t *doc);

/* Who and when: site, version, time and uptime. */
static void section_meta(ec_router *r, json_t *doc)
{
    ec_metrics_snap s;
    ec_metrics_snapshot(ec_router_metrics(r), &s);
    uint64_t now = ec_now_ms();
    time_t secs = (time_t)(now / 1000);
    struct tm tm;
    char ts[64];
    gmtime_r(&secs, &tm);
    snprintf(ts, sizeof(ts), "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (unsigned)(now % 1000));
    json_object_set_new(doc, "v", json_integer(1));
    json_object_set_new(doc, "site", json_string(ec_router_config(r)->site));
    json_object_set_new(doc, "version", json_string(EC_VERSION));
    json_object_set_new(doc, "ts", json_string(ts));
    json_object_set_new(doc, "ts_ms", json_integer((json_int_t)now));
    json_object_set_new(
        doc, "uptime_s",
        json_integer(now > s.started_ms ? (json_int_t)((now - s.started_ms) / 1000) : 0));
}

/* Queries, shares, cost, savings, latency per tier, breakers. */
static void section_metrics(ec_router *r, json_t *doc)
{
    ec_metrics_snap s;
    ec_metrics_snapshot(ec_router_metrics(r), &s);
    ec_metrics_stats_json(&s, doc);
}

/* What is waiting: the offline queue and the queries in flight. */
static void section_queue(ec_router *r, json_t *doc)
{
    long depth = ec_router_queue_depth(r);
    json_object_set_new(doc, "queue_depth", depth >= 0 ? json_integer(depth) : json_null());
    json_object_set_new(doc, "inflight", json_integer((json_int_t)ec_router_inflight(r)));
    json_object_set_new(doc, "waiting_local", json_integer((json_int_t)ec_router_waiting_local(r)));
}

/* Cloud spend against budget.*: "budget": {state, day_usd, month_usd, caps,
 * used_pct of each cap (null without a cap)}. */
static void section_budget(ec_router *r, json_t *doc)
{
    ec_budget_snapshot b;
    ec_router_budget_snapshot(r, &b);
    json_t *j = json_object();
    if (!j)
        return;
    json_object_set_new(j, "state", json_string(ec_budget_state_name(b.state)));
    json_object_set_new(j, "day", json_string(b.day));
    json_object_set_new(j, "month", json_string(b.month));
    json_object_set_new(j, "day_usd", json_real(b.day_usd));
    json_object_set_new(j, "month_usd", json_real(b.month_usd));
    json_object_set_new(j, "daily_cap_usd", json_real(b.daily_cap_usd));
    json_object_set_new(j, "monthly_cap_usd", json_real(b.monthly_cap_usd));
    json_object_set_new(j, "daily_used_pct",
                        b.daily_cap_usd > 0 ? json_real(100.0 * b.day_usd / b.daily_cap_usd)
                                            : json_null());
    json_object_set_new(j, "monthly_used_pct",
                        b.monthly_cap_usd > 0 ? json_real(100.0 * b.month_usd / b.monthly_cap_usd)
                                              : json_null());
    json_object_set_new(doc, "budget", j);
}

static const stats_section sections[] = {
    section_meta,
    section_metrics,
    section_queue,
    section_budget,
};

json_t *ec_router_stats_doc(ec_router *r)
{
    json_t *doc = json_object();
    if (!doc)
        return NULL;
    for (size_t i = 0; i < sizeof(sections) / sizeof(sections[0]); i++)
        sections[i](r, doc);
    return doc;
}

struct ec_stats_pub {
    ec_router *r;
    char topic[300]; /* <root>/stats */
    pthread_t thread;
    atomic_bool stop;
};

static void publish_stats(ec_stats_pub *sp)
{
    json_t *doc = ec_router_stats_doc(sp->r);
    char *body = doc ? json_dumps(doc, JSON_COMPACT | JSON_REAL_PRECISION(12)) : NULL;
    json_decref(doc);
    if (!body) {
        ec_log_error("stats document could not be built (out of memory)");
        return;
    }
    ec_error err = {0};
    ec_mqtt_pubprops pp = {.content_type = "application/json"};
    if (ec_mqtt_publish(ec_router_service(sp->r)->mqtt, sp->topic, body, strlen(body), 1, true, &pp,
                        5000, &err))
        ec_log_warn("stats not published on %s: %s", sp->topic, err.msg);
    free(body);
}

static void *stats_main(void *arg)
{
    ec_thread_name("ec-stats");
    ec_stats_pub *sp = arg;
    while (!atomic_load(&sp->stop) && !ec_service_stopping()) {
        /* Read each round: a reload may change the interval (0: pause). */
        uint64_t every_ms = (uint64_t)ec_router_config(sp->r)->stats_interval_s * 1000u;
        if (every_ms)
            publish_stats(sp);
        else
            every_ms = 1000;
        uint64_t until = ec_now_ms() + every_ms;
        while (ec_now_ms() < until && !atomic_load(&sp->stop) && !ec_service_stopping())
            ec_sleep_ms(100);
    }
    return NULL;
}

ec_err ec_stats_pub_start(ec_stats_pub **out, ec_router *r, ec_error *err)
{
    ec_stats_pub *sp = calloc(1, sizeof(*sp));
    if (!sp)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    sp->r = r;
    atomic_init(&sp->stop, false);
    if (!ec_topic(ec_router_config(r), sp->topic, sizeof(sp->topic), "stats")) {
        free(sp);
        return ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    }
    if (pthread_create(&sp->thread, NULL, stats_main, sp) != 0) {
        free(sp);
        return ec_error_set(err, EC_ERR_NOMEM, "router: cannot start the stats thread");
    }
    *out = sp;
    return EC_OK;
}

void ec_stats_pub_stop(ec_stats_pub *sp)
{
    if (!sp)
        return;
    atomic_store(&sp->stop, true);
    pthread_join(sp->thread, NULL);
    free(sp);
}
