/* Shadow calls (gate.shadow_rate): a small share of the queries the local
 * tier answered on its own are asked to the first cloud tier as well. The
 * caller never sees the cloud's answer; it is recorded as an extra attempt
 * (reason "shadow") on the same decision row, with its draft, so
 * `edgecascade calibrate --from-store` can compare the two answers and the
 * operator can see how often the local tier is wrong. Each shadow call costs
 * a cloud call, counted in the decision's cost. */
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "router_internal.h"

bool ec_router_shadow_pick(ec_router *r)
{
    pthread_mutex_lock(&r->shadow_lock);
    uint64_t x = r->shadow_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    r->shadow_state = x;
    pthread_mutex_unlock(&r->shadow_lock);
    return (double)(x >> 11) / (double)(1ull << 53) < r->cfg->shadow_rate;
}

ec_query *ec_router_shadow_copy(const ec_pending *p)
{
    ec_buf b;
    ec_buf_init(&b, EC_MAX_PAYLOAD);
    ec_query *q = calloc(1, sizeof(*q));
    if (!q || ec_query_encode(&p->query, &b, NULL) != EC_OK ||
        ec_query_decode(b.data, b.len, q, NULL) != EC_OK) {
        free(q);
        q = NULL;
    }
    ec_buf_free(&b);
    return q;
}

void ec_router_shadow_send(ec_router *r, ec_query *q)
{
    int ci = -1;
    for (size_t i = 0; i < r->cfg->n_tiers && ci < 0; i++) {
        const ec_tier_cfg *t = &r->cfg->tiers[i];
        if (!t->local && !(t->failover_of && *t->failover_of))
            ci = (int)i;
    }
    ec_pending *p = calloc(1, sizeof(*p));
    if (ci < 0 || !p) {
        ec_query_clear(q);
        free(q);
        free(p);
        return;
    }
    p->query = *q;
    free(q);
    p->shadow = true;
    p->best = -1;
    p->revision = 1;
    p->ts_ms = ec_now_ms();
    p->arrived_ms = p->ts_ms;
    p->t0_ms = ec_mono_ms();
    p->deadline_ms = p->t0_ms + r->cfg->tiers[ci].timeout_ms;
    p->left_device = true;
    ec_router_dispatch(r, p, ci);
}

void ec_router_shadow_done(ec_router *r, ec_pending *p)
{
    size_t last = p->n_attempts - 1;
    ec_attempt *a = &p->attempts[last];
    free(a->reason);
    a->reason = strdup(a->error.code ? "shadow call failed" : "shadow: recorded, not served");
    a->accepted = false;
    ec_result res = {0};
    res.id = strdup(p->query.id);
    res.revision = 1;
    res.cost_usd = a->cost_usd;
    res.redacted = p->redacted; /* the store marks the decision row */
    res.attempts = calloc(1, sizeof(ec_attempt));
    if (res.attempts) {
        ec_router_copy_attempt(&res.attempts[0], a);
        res.n_attempts = 1;
    }
    /* record() moves every detail of p; keep only the shadow's. */
    if (last > 0) {
        for (size_t i = 0; i < last; i++) {
            free(p->details[i].answer);
            free(p->details[i].finish_reason);
            free(p->details[i].sent);
        }
        p->details[0] = p->details[last];
        memset(&p->details[last], 0, sizeof(p->details[last]));
    }
    for (size_t i = 0; i < p->n_attempts; i++)
        ec_attempt_clear(&p->attempts[i]);
    p->n_attempts = 1;
    memset(&p->attempts[0], 0, sizeof(p->attempts[0]));
    ec_metrics_add_cost(r->metrics, res.cost_usd); /* spent, though nothing was served */
    ec_log_debug("shadow call for %s recorded", res.id);
    ec_router_record(r, p, &res);
    ec_result_clear(&res);
    p->n_attempts = 0;
    ec_pending_free(p);
}
