/* Stage 2, admission (admission.h). */
#include "admission.h"

#include <stdio.h>
#include <stdlib.h>

#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "fair.h"
#include "route.h"

struct ec_admission {
    ec_router_env *env;
    ec_pending_table *pending;
    ec_window *window;
    ec_controls *controls;
    ec_fair *fair; /* places per asker, owned */
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
    if (!(a->fair = ec_fair_create())) {
        free(a);
        return NULL;
    }
    return a;
}

void ec_admission_destroy(ec_admission *a)
{
    if (!a)
        return;
    ec_fair_destroy(a->fair);
    free(a);
}

void ec_admission_done(ec_admission *a, ec_pending *p)
{
    if (!p->admitted)
        return;
    p->admitted = false;
    ec_fair_give_back(a->fair, p->asker);
}

static int weight_of(const ec_config *cfg, const char *asker)
{
    for (size_t i = 0; asker && i < cfg->n_asker_weights; i++)
        if (strcmp(cfg->asker_weights[i].asker, asker) == 0)
            return cfg->asker_weights[i].weight;
    return 1;
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
    /* Per asker (fair.h): its own cap, and its share of max_pending. */
    size_t inflight = ec_pending_count(a->pending) + ec_window_waiting(a->window);
    char m[240];
    if (!ec_fair_take(a->fair, p->asker, (size_t)cfg->asker_max_pending, inflight,
                      (size_t)cfg->max_pending, m, sizeof(m))) {
        ec_pending_fail(p, "busy", m);
        return EC_STAGE_NEXT;
    }
    p->admitted = true;
    p->weight = weight_of(cfg, p->asker);
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
        double behind = (now - p->t0_ms) + ec_window_behind_ms(a->window, p->asker, p->weight, now);
        double done = behind + ec_window_hold_ms(a->window);
        double limit = cfg->tiers[first].timeout_ms;
        double left = p->deadline_ms - now;
        const char *what = "the tier's timeout_ms";
        if (left < limit) {
            limit = left;
            what = "the query's deadline";
        }
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
