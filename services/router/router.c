/* The router's wiring (router.h): builds the stages and the resources they
 * share, runs the threads that move queries (workers, the sweeper), and
 * applies a reload. No decision is made here. */
#include "router.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "controls.h"
#include "edgecascade/ledger.h"
#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "observe.h"
#include "offline.h"
#include "orphans.h"
#include "pipeline.h"
#include "router_metrics.h"
#include "shadow.h"

#define MAX_WORKERS 64

struct ec_router {
    ec_router_env env;
    ec_store *store; /* not owned */
    ec_ledger *ledger;
    ec_metrics *metrics;
    ec_controls *controls;
    ec_shadow *shadow;
    ec_offline *offline;
    ec_orphans *orphans;      /* paid replies without a waiting query */
    ec_pipeline pl;           /* the stages */
    char breaker_prefix[300]; /* <root>/status/breaker/ */
    char breaker_filter[300];

    pthread_t workers[MAX_WORKERS];
    int n_workers;
    pthread_t sweeper;
    bool sweeper_started;
    ec_stats_pub *stats;
    ec_http_srv *http;

    /* reload */
    ec_router_reload_hook reload_hooks[EC_ROUTER_MAX_RELOAD_HOOKS];
    size_t n_reload_hooks;
    ec_gate **retired_gates; /* replaced by reloads, freed with the router */
    size_t n_retired_gates;
};

#define CFG(r) atomic_load(&(r)->env.cfg)

/* ---- the threads that move queries ---- */

#define ORPHAN_KEEP_MS 30000 /* then a kept paid reply goes to its query's decision */

static void run_query(ec_router *r, ec_mqtt_msg *msg, bool nowait, bool recovered)
{
    ec_pending *p = ec_pending_new();
    if (!p) {
        ec_log_error("out of memory: query on %s not answered", msg->topic);
        return;
    }
    p->msg = msg;
    p->nowait = nowait;
    p->replayed = recovered;
    ec_pipeline_run(&r->pl, p);
}

static void *worker_main(void *arg)
{
    ec_thread_name("ec-worker");
    ec_router *r = arg;
    while (true) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(r->env.svc->mqtt, &msg, 200);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        if (ec_cascade_is_reply(r->pl.cascade, msg->topic) && msg->tag < 0) {
            /* The broker's second delivery of a reply already taken
             * (ec_ingress_note_reply): a paid answer is counted once. */
            ec_log_info("a reply on %s delivered again by the broker; already taken", msg->topic);
        } else if (ec_cascade_is_reply(r->pl.cascade, msg->topic)) {
            ec_pending *handed = NULL;
            ec_pending *p = ec_cascade_reply(r->pl.cascade, msg, &handed);
            if (handed)
                ec_pipeline_run(&r->pl, handed);
            if (p)
                ec_pipeline_run(&r->pl, p);
        } else if (strncmp(msg->topic, r->breaker_prefix, strlen(r->breaker_prefix)) == 0) {
            ec_offline_on_breaker(r->offline, msg);
        } else {
            run_query(r, msg, false, false);
        }
        ec_mqtt_msg_free(msg);
    }
    return NULL;
}

static void *sweeper_main(void *arg)
{
    ec_thread_name("ec-sweeper");
    ec_router *r = arg;
    for (unsigned tick = 1; !ec_service_stopping(); tick++) {
        ec_sleep_ms(50);
        if (tick % 20 == 0)
            ec_controls_budget_publish(r->controls, false); /* a new day or month lifts a cap */
        if (tick % 100 == 0)
            ec_mem_give_back();
        if (tick % 20 == 0) {
            ec_pending *o = ec_cascade_stale_orphans(r->pl.cascade, ec_mono_ms(), ORPHAN_KEEP_MS);
            while (o) {
                ec_pending *next = o->next;
                o->next = NULL;
                ec_pipeline_run(&r->pl, o);
                o = next;
            }
        }
        ec_pending *p = ec_cascade_sweep(r->pl.cascade, ec_mono_ms());
        while (p) {
            ec_pending *next = p->next;
            p->next = NULL;
            ec_pipeline_run(&r->pl, p);
            p = next;
        }
    }
    return NULL;
}

/* Paho's thread, before the acknowledgement: the journal (queries, and the
 * paid replies of cloud hops). */
static void on_arrival(void *ctx, ec_mqtt_msg *msg)
{
    ec_router *r = ctx;
    if (ec_ingress_is_query(r->pl.ingress, msg->topic)) {
        ec_ingress_on_arrival(r->pl.ingress, msg);
    } else if (ec_cascade_is_reply(r->pl.cascade, msg->topic)) {
        int64_t of = 0;
        ec_reply_kind kind = ec_cascade_reply_kind(r->pl.cascade, msg, &of);
        if (kind == EC_REPLY_PAID && of > 0)
            ec_ingress_journal_reply(r->pl.ingress, msg, of);
        else if (kind != EC_REPLY_LOCAL)
            ec_ingress_note_reply(r->pl.ingress, msg);
    }
}

/* Paho's thread, inbound queue full: a query is answered "busy" at once
 * rather than queued without bound. */
static bool on_overflow(void *ctx, ec_mqtt_msg *msg)
{
    ec_router *r = ctx;
    switch (ec_ingress_overflow(r->pl.ingress, msg)) {
    case EC_OVERFLOW_QUEUE:
        return false;
    case EC_OVERFLOW_DROP:
        return true;
    case EC_OVERFLOW_REFUSE:
        break;
    }
    run_query(r, msg, true, false);
    ec_mqtt_msg_free(msg);
    return true;
}

/* ---- reload (SIGHUP) ----
 *
 * Everything the stages read per query comes through two pointers, env.cfg
 * and env.gate, both atomic: a reload builds the new config (the service's
 * prepare step refuses keys that need a restart) and a new gate from it (the
 * calibration file is read again, so a bad file refuses the reload), asks the
 * modules' hooks, and then swaps the gate and the config, each in one store.
 * A worker in the middle of a query may read the old config for one field and
 * the new one for the next; that is harmless because nothing a reload may
 * change is an index or a size (tier names, order and count are restart
 * keys). The old gate and config stay allocated until the router is
 * destroyed, so no reader can ever see freed memory. */

ec_err ec_router_add_reload_hook(ec_router *r, const ec_router_reload_hook *h, ec_error *err)
{
    if (r->n_reload_hooks >= EC_ROUTER_MAX_RELOAD_HOOKS)
        return ec_error_set(err, EC_ERR_INVAL, "router: more than %d reload hooks",
                            EC_ROUTER_MAX_RELOAD_HOOKS);
    r->reload_hooks[r->n_reload_hooks++] = *h;
    return EC_OK;
}

static ec_err retire_gate(ec_router *r, ec_gate *old, ec_error *err)
{
    ec_gate **g = realloc(r->retired_gates, (r->n_retired_gates + 1) * sizeof(*g));
    if (!g)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    r->retired_gates = g;
    g[r->n_retired_gates++] = old;
    return EC_OK;
}

ec_err ec_router_reload(ec_router *r, ec_error *err)
{
    double t0 = ec_mono_ms();
    ec_config *next = NULL;
    ec_gate *gate = NULL;
    ec_err rc = ec_service_reload_prepare(r->env.svc, &next, err);
    if (rc)
        goto refuse;
    if ((rc = ec_gate_create(&gate, next, err)))
        goto refuse;
    for (size_t i = 0; i < r->n_reload_hooks; i++) {
        const ec_router_reload_hook *h = &r->reload_hooks[i];
        if (h->check && (rc = h->check(h->ctx, next, err))) {
            ec_error_prefix(err, "%s: ", h->name ? h->name : "module");
            goto refuse;
        }
    }
    /* Reserved before the swap so the swap itself cannot fail. */
    if ((rc = retire_gate(r, NULL, err)))
        goto refuse;
    for (size_t i = 0; i < r->n_reload_hooks; i++) {
        const ec_router_reload_hook *h = &r->reload_hooks[i];
        if (h->apply)
            h->apply(h->ctx, next);
    }
    r->retired_gates[r->n_retired_gates - 1] = atomic_exchange(&r->env.gate, gate);
    atomic_store(&r->env.cfg, next);
    ec_service_reload_commit(r->env.svc, next, ec_mono_ms() - t0);
    ec_log_info("in force: threshold %.2f (%s)%s%s, shadow rate %.2f, samples %d",
                next->min_confidence, next->gate_preset,
                next->gate_calibration && *next->gate_calibration ? ", calibration " : "",
                next->gate_calibration ? next->gate_calibration : "", next->shadow_rate,
                next->samples);
    ec_offline_wake(r->offline); /* the queue's interval or TTL may have changed */
    return EC_OK;
refuse:
    ec_gate_destroy(gate);
    ec_service_reload_reject(r->env.svc, next, err->msg);
    return rc;
}

/* SIGHUP: new patterns, cache limits and caps. The patterns were compiled
 * once already when the new file was validated (privacy.patterns), so the
 * redactor's own refusal here would be out of memory: the old set stays. */
static void controls_apply(void *ctx, const ec_config *next)
{
    ec_error err = {0};
    if (ec_controls_configure(ctx, next, &err))
        ec_log_error("reload: privacy patterns kept as they were: %s", err.msg);
}

/* ---- life cycle ---- */

static ec_err build_stages(ec_router *r, ec_error *err)
{
    ec_err rc;
    if (!(r->orphans = ec_orphans_create()))
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    if ((rc = ec_cascade_create(&r->pl.cascade, &r->env, r->controls, r->shadow, r->orphans, err)))
        return rc;
    if ((rc = ec_offline_create(&r->offline, &r->env, r->ledger, r->controls, r->metrics,
                                ec_pipeline_submit, &r->pl, err)))
        return rc;
    ec_cascade_set_offline(r->pl.cascade, r->offline);
    if ((rc = ec_ingress_create(&r->pl.ingress, &r->env, r->store, r->ledger, r->orphans, err)))
        return rc;
    r->pl.admission = ec_admission_create(&r->env, ec_cascade_pending(r->pl.cascade),
                                          ec_cascade_window(r->pl.cascade), r->controls);
    r->pl.egress = ec_egress_create(&r->env, r->controls, r->metrics);
    r->pl.record = ec_record_create(&r->env, r->store, r->orphans);
    if (!r->pl.admission || !r->pl.egress || !r->pl.record)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    return EC_OK;
}

ec_err ec_router_create(ec_router **out, ec_service *svc, ec_store *store, ec_error *err)
{
    ec_router *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    r->env.svc = svc;
    atomic_init(&r->env.cfg, &svc->cfg);
    r->store = store;
    svc->on_overflow = on_overflow;
    svc->on_arrival = on_arrival;
    svc->overflow_ctx = r;
    ec_gate *gate = NULL;
    ec_err rc = ec_gate_create(&gate, CFG(r), err);
    atomic_init(&r->env.gate, gate);
    if (rc)
        goto fail;
    if ((rc = ec_controls_create(&r->controls, &r->env, store, err)))
        goto fail;
    ec_router_reload_hook hook = {.name = "controls", .apply = controls_apply, .ctx = r->controls};
    if ((rc = ec_router_add_reload_hook(r, &hook, err)))
        goto fail;
    if (store && (rc = ec_ledger_open(&r->ledger, store, err)))
        goto fail;
    if ((rc = ec_metrics_create(&r->metrics, err)))
        goto fail;
    if (!(r->shadow = ec_shadow_create(r->metrics))) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
        goto fail;
    }
    if ((rc = build_stages(r, err)))
        goto fail;
    /* Cumulative numbers start from the log, so a restart does not zero them;
     * read before any query of this run is recorded, so none counts twice. */
    if (store && ec_store_totals_each(store, ec_metrics_seed, r->metrics, err) != EC_OK)
        ec_log_warn("metrics start from zero: %s", err->msg);
    if (!ec_topic(CFG(r), r->breaker_prefix, sizeof(r->breaker_prefix), "status/breaker/") ||
        !ec_topic(CFG(r), r->breaker_filter, sizeof(r->breaker_filter), "status/breaker/+")) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
        goto fail;
    }
    *out = r;
    return EC_OK;
fail:
    ec_router_destroy(r);
    return rc;
}

ec_err ec_router_start(ec_router *r, ec_error *err)
{ /* Egress skips copies of Results nobody subscribes to (copy_unheard_ms). */
    char results[320];
    if (!ec_topic(CFG(r), results, sizeof(results), "result/"))
        return ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    ec_err rc = ec_mqtt_watch_listeners(r->env.svc->mqtt, results, err);
    if (rc)
        return rc;
    int n = CFG(r)->router_workers;
    if (n < 1)
        n = 1;
    if (n > MAX_WORKERS)
        n = MAX_WORKERS;
    for (; r->n_workers < n; r->n_workers++) {
        if (pthread_create(&r->workers[r->n_workers], NULL, worker_main, r) != 0)
            return ec_error_set(err, EC_ERR_NOMEM, "router: cannot start worker threads");
    }
    if (pthread_create(&r->sweeper, NULL, sweeper_main, r) != 0)
        return ec_error_set(err, EC_ERR_NOMEM, "router: cannot start the sweeper thread");
    r->sweeper_started = true;
    ec_controls_budget_publish(r->controls, true);
    if (r->ledger) {
        /* Queries journaled before the last stop run first, now connected. */
        size_t n_rec = 0;
        ec_mqtt_msg **rec = ec_ingress_recovered(r->pl.ingress, &n_rec);
        if (n_rec) {
            /* The broker hands over what it kept for us first (our session:
             * replies to hops the last run sent): a moment for the workers
             * to take those in, so a query whose cloud answer is among them
             * uses it rather than paying for a second call. */
            double until = ec_mono_ms() + 1000;
            ec_sleep_ms(100);
            while (ec_mqtt_queue_len(r->env.svc->mqtt) > 0 && ec_mono_ms() < until)
                ec_sleep_ms(20);
            ec_log_warn("re-running %zu queries journaled before the last stop", n_rec);
        }
        for (size_t i = 0; i < n_rec; i++) {
            run_query(r, rec[i], false, true);
            ec_mqtt_msg_free(rec[i]);
        }
        free(rec);
    }
    rc = ec_offline_start(r->offline, err);
    if (!rc)
        rc = ec_stats_pub_start(&r->stats, r, err);
    if (rc)
        return rc;
    /* The dashboard is not worth stopping the cascade for (a port in use). */
    ec_error herr = {0};
    if (ec_http_srv_start(&r->http, r, &herr))
        ec_log_error("%s; the router runs without its HTTP server", herr.msg);
    return EC_OK;
}

void ec_router_destroy(ec_router *r)
{
    if (!r)
        return;
    ec_http_srv_stop(r->http);
    ec_stats_pub_stop(r->stats);
    for (int i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i], NULL);
    if (r->sweeper_started)
        pthread_join(r->sweeper, NULL);
    ec_offline_destroy(r->offline); /* joins the replay thread */
    ec_cascade_destroy(r->pl.cascade);
    ec_admission_destroy(r->pl.admission);
    ec_egress_destroy(r->pl.egress);
    ec_record_destroy(r->pl.record);
    ec_orphans_destroy(r->orphans);
    ec_gate_destroy(atomic_load(&r->env.gate));
    ec_controls_destroy(r->controls);
    for (size_t i = 0; i < r->n_retired_gates; i++)
        ec_gate_destroy(r->retired_gates[i]);
    free(r->retired_gates);
    ec_ingress_destroy(r->pl.ingress); /* after the writer's last commit reached the journal */
    ec_ledger_close(r->ledger);
    ec_shadow_destroy(r->shadow);
    ec_metrics_destroy(r->metrics);
    free(r);
}

/* ---- getters ---- */

const char *ec_router_reply_topic(const ec_router *r)
{
    return ec_cascade_reply_topic(r->pl.cascade);
}

const char *ec_router_breaker_filter(const ec_router *r)
{
    return r->breaker_filter;
}

size_t ec_router_inflight(ec_router *r)
{
    return ec_pending_count(ec_cascade_pending(r->pl.cascade)) + ec_router_waiting_local(r);
}

size_t ec_router_waiting_local(ec_router *r)
{
    return ec_window_waiting(ec_cascade_window(r->pl.cascade));
}

long ec_router_queue_depth(ec_router *r)
{
    return ec_offline_depth(r->offline);
}

void ec_router_budget_snapshot(ec_router *r, ec_budget_snapshot *out)
{
    ec_controls_budget_snapshot(r->controls, out);
}

ec_metrics *ec_router_metrics(ec_router *r)
{
    return r->metrics;
}

const ec_config *ec_router_config(ec_router *r)
{
    return CFG(r);
}

ec_service *ec_router_service(ec_router *r)
{
    return r->env.svc;
}
