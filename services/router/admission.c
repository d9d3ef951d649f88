/* Stage 2, admission (admission.h). */
#include "admission.h"

#include <stdio.h>
#include <stdlib.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "route.h"

struct ec_admission {
    ec_router_env *env;
    ec_pending_table *pending;
    ec_window *window;
    ec_controls *controls;
};

ec_admission *ec_admission_create(ec_router_env *env, ec_pending_table *pending, ec_window *window,
                                  ec_controls *controls)
{
    ec_admission *a = calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->env = env;
    a->pending = pending;
    a->window = window;
    a->controls = controls;
    return a;
}

void ec_admission_destroy(ec_admission *a)
{
    free(a);
}

ec_stage_rc ec_admission_run(ec_admission *a, ec_pending *p)
{
    const ec_config *cfg = atomic_load(&a->env->cfg);
    if (p->nowait) { /* refused from Paho's thread: no worker had room for it */
        ec_pending_fail(p, "busy", EC_INTAKE_FULL_MSG);
        return EC_STAGE_NEXT;
    }
    /* Queued past a full intake queue (ingress had no slot to answer it
     * with): refused now unless the backlog has drained since. */
    if (p->overflowed && ec_mqtt_queue_len(a->env->svc->mqtt) >= (size_t)cfg->queue_size / 2) {
        ec_pending_fail(p, "busy", EC_INTAKE_FULL_MSG);
        return EC_STAGE_NEXT;
    }
    size_t inflight = ec_pending_count(a->pending) + ec_window_waiting(a->window);
    if (inflight >= (size_t)cfg->max_pending) {
        char m[200];
        snprintf(m, sizeof(m),
                 "router holds %zu queries not yet answered (router.max_pending); retry later",
                 inflight);
        ec_pending_fail(p, "busy", m);
        return EC_STAGE_NEXT;
    }
    if (p->query.deadline_ms)
        p->deadline_ms = p->t0_ms + p->query.deadline_ms;
    ec_gate_classify(atomic_load(&a->env->gate), &p->query, &p->gq);
    if (ec_controls_cache_lookup(a->controls, p)) {
        ec_pending_conclude(p, -1, false, "cache hit", NULL, NULL);
        return EC_STAGE_NEXT;
    }
    int first = ec_route_next(cfg, p, -1);
    if (p->gq.preroute_cloud && !ec_route_stays_local(p)) {
        /* Hard queries go straight to the first cloud tier (gate.preroute). */
        int c = first;
        while (c >= 0 && cfg->tiers[c].local)
            c = ec_route_next(cfg, p, c);
        if (c >= 0)
            first = c;
    }
    if (first < 0) {
        ec_pending_fail(p, "config",
                        "no tier allowed for this query (policy local_only needs a local tier)");
        return EC_STAGE_NEXT;
    }
    /* How long this query would wait for the local model: the queue ahead
     * of it drained at the measured pace (window.h), plus the time it already
     * spent in the inbound queue. It is refused now only when it would miss
     * its tier's timeout or its deadline anyway (busy only for the queries
     * that would), or, when a plant asks for fast refusals, when the model is
     * more than router.max_wait_ms behind. */
    if (cfg->tiers[first].local) {
        double now = ec_mono_ms();
        double behind = (now - p->t0_ms) + ec_window_behind_ms(a->window, now);
        double done = behind + ec_window_hold_ms(a->window);
        double limit = cfg->tiers[first].timeout_ms;
        double left = p->deadline_ms - now;
        const char *what = "the tier's timeout_ms";
        if (left < limit) {
            limit = left;
            what = "the query's deadline";
        }
        char m[240];
        if (done > limit && ec_window_waiting(a->window) > 0) {
            snprintf(m, sizeof(m),
                     "the local model is %.0f ms behind: this query would be answered after %s "
                     "(%.0f ms); retry later",
                     behind, what, limit);
            ec_pending_fail(p, "busy", m);
            return EC_STAGE_NEXT;
        }
        if (cfg->max_wait_ms && behind > cfg->max_wait_ms) {
            snprintf(m, sizeof(m),
                     "the local model is %.0f ms behind (router.max_wait_ms %u); retry later",
                     behind, cfg->max_wait_ms);
            ec_pending_fail(p, "busy", m);
            return EC_STAGE_NEXT;
        }
    }
    p->tier = first;
    p->stage = EC_STAGE_CASCADE;
    return EC_STAGE_NEXT;
}
