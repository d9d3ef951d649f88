/* Shadow calls (shadow.h). */
#include "shadow.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

struct ec_shadow {
    ec_metrics *metrics;
    pthread_mutex_t lock;
    uint64_t state; /* xorshift for gate.shadow_rate */
};

ec_shadow *ec_shadow_create(ec_metrics *metrics)
{
    ec_shadow *s = calloc(1, sizeof(*s));
    if (!s)
        return NULL;
    s->metrics = metrics;
    s->state = ec_now_ms() | 1;
    pthread_mutex_init(&s->lock, NULL);
    return s;
}

void ec_shadow_destroy(ec_shadow *s)
{
    if (!s)
        return;
    pthread_mutex_destroy(&s->lock);
    free(s);
}

static bool pick(ec_shadow *s, double rate)
{
    pthread_mutex_lock(&s->lock);
    uint64_t x = s->state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    s->state = x;
    pthread_mutex_unlock(&s->lock);
    return (double)(x >> 11) / (double)(1ull << 53) < rate;
}

ec_pending *ec_shadow_fork(ec_shadow *s, const ec_config *cfg, const ec_pending *p)
{
    if (cfg->shadow_rate <= 0 || !pick(s, cfg->shadow_rate))
        return NULL;
    int ci = -1;
    for (size_t i = 0; i < cfg->n_tiers && ci < 0; i++) {
        const ec_tier_cfg *t = &cfg->tiers[i];
        if (!t->local && !(t->failover_of && *t->failover_of))
            ci = (int)i;
    }
    if (ci < 0)
        return NULL;
    /* A deep copy through the codec: the shadow outlives p. */
    ec_buf b;
    ec_buf_init(&b, EC_MAX_PAYLOAD);
    ec_pending *sp = ec_pending_new();
    if (!sp || ec_query_encode(&p->query, &b, NULL) != EC_OK ||
        ec_query_decode(b.data, b.len, &sp->query, NULL) != EC_OK) {
        ec_buf_free(&b);
        ec_pending_free(sp);
        return NULL;
    }
    ec_buf_free(&b);
    sp->shadow = true;
    sp->ts_ms = ec_now_ms();
    sp->arrived_ms = sp->ts_ms;
    sp->t0_ms = ec_mono_ms();
    sp->deadline_ms = sp->t0_ms + cfg->tiers[ci].timeout_ms;
    sp->left_device = true;
    sp->tier = ci;
    sp->stage = EC_STAGE_CASCADE;
    return sp;
}

void ec_shadow_conclude(ec_shadow *s, ec_pending *p)
{
    size_t last = p->n_attempts - 1;
    ec_attempt *a = &p->attempts[last];
    free(a->reason);
    a->reason = strdup(a->error.code ? "shadow call failed" : "shadow: recorded, not served");
    a->accepted = false;
    ec_result *res = &p->res;
    ec_result_clear(res);
    res->id = strdup(p->query.id);
    res->revision = 1;
    res->cost_usd = a->cost_usd;
    res->redacted = p->redacted; /* the store marks the decision row */
    res->attempts = calloc(1, sizeof(ec_attempt));
    if (res->attempts) {
        ec_pending_copy_attempt(&res->attempts[0], a);
        res->n_attempts = 1;
    }
    /* record moves every detail of p; keep only the shadow's. */
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
    ec_metrics_add_cost(s->metrics, res->cost_usd); /* spent, though nothing was served */
    ec_log_debug("shadow call for %s recorded", res->id);
    p->has_result = true;
    p->stage = EC_STAGE_RECORD;
}
