/* Stage 4, egress (egress.h). */
#include "egress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

struct ec_egress {
    ec_router_env *env;
    ec_controls *controls;
    ec_metrics *metrics;
};

#define CFG(e) atomic_load(&(e)->env->cfg)

ec_egress *ec_egress_create(ec_router_env *env, ec_controls *controls, ec_metrics *metrics)
{
    ec_egress *e = calloc(1, sizeof(*e));
    if (!e)
        return NULL;
    e->env = env;
    e->controls = controls;
    e->metrics = metrics;
    return e;
}

void ec_egress_destroy(ec_egress *e)
{
    free(e);
}

/* Builds p->res from p->out and the attempts. */
static void build(ec_egress *e, ec_pending *p)
{
    const ec_config *cfg = CFG(e);
    const ec_outcome *o = &p->out;
    double t_in = ec_mono_ms();
    ec_result *res = &p->res;
    res->id = strdup(p->query.id);
    res->source = ec_strdup0(p->query.source);
    res->asker = ec_strdup0(p->asker);
    res->reason = strdup(o->reason ? o->reason : "");
    res->confidence = -1;
    res->revision = p->revision ? p->revision : 1;
    res->degraded = o->degraded;
    res->complexity = ec_strdup0(ec_complexity_name(p->gq.complexity));
    res->redacted = p->redacted;
    res->escalation_withheld = p->withheld;
    res->replayed = p->replayed;
    if (p->cached) {
        char why[EC_MAX_REASON];
        ec_controls_cache_result(p, res, why, sizeof(why));
        free(res->reason);
        res->reason = strdup(why);
    } else if (o->answer_attempt >= 0) {
        const ec_attempt *a = &p->attempts[o->answer_attempt];
        const char *answer = p->details[o->answer_attempt].answer;
        res->answer = strdup(answer ? answer : "");
        res->tier = strdup(cfg->tiers[a->tier_index].local ? "local" : "cloud");
        res->tier_index = a->tier_index;
        res->tier_name = ec_strdup0(a->tier);
        res->model = ec_strdup0(a->model);
        res->confidence = a->confidence;
        res->threshold = a->threshold;
        res->tokens_in = a->tokens_in;
        res->tokens_out = a->tokens_out;
    }
    if (o->err_code)
        ec_wire_error_set(&res->error, o->err_code, o->err_msg ? o->err_msg : "");
    res->escalated = p->n_attempts > 1;
    res->attempts = p->n_attempts ? calloc(p->n_attempts, sizeof(ec_attempt)) : NULL;
    for (size_t i = 0; i < p->n_attempts && res->attempts; i++) {
        ec_pending_copy_attempt(&res->attempts[i], &p->attempts[i]);
        res->cost_usd += p->attempts[i].cost_usd;
    }
    res->n_attempts = res->attempts ? p->n_attempts : 0;
    res->cost_usd += p->prior_cost_usd;
    double now = ec_mono_ms();
    /* A replayed escalation counts from the query's first arrival. */
    res->latency_ms = p->outbox_id ? (double)(ec_now_ms() - p->arrived_ms) : now - p->t0_ms;
    res->router_ms = p->busy_ms + (now - t_in);
    p->has_result = true;
}

/* The metrics hook (router_metrics.h): one call per Result. cost_top_usd as
 * the record stage computes it. */
static void observe(ec_egress *e, const ec_pending *p, const ec_result *res, bool copy_skipped)
{
    const ec_config *cfg = CFG(e);
    const ec_tier_cfg *top = &cfg->tiers[cfg->n_tiers - 1];
    ec_metrics_obs o = {
        .id = res->id,
        .asker = res->asker,
        .tier = res->tier,
        .tier_name = res->tier_name,
        .model = res->model,
        .error_code = res->error.code,
        .reason = res->reason,
        .confidence = res->confidence,
        .threshold = res->threshold,
        .latency_ms = res->latency_ms,
        /* a revision's earlier calls were counted with its first answer */
        .cost_usd = res->cost_usd - (res->revision >= 2 ? p->prior_cost_usd : 0),
        .cost_top_usd = res->error.code ? 0 : ec_tier_cost(top, res->tokens_in, res->tokens_out),
        .escalated = res->escalated,
        .degraded = res->degraded,
        .revision = res->revision,
        .copy_skipped = copy_skipped,
        .ts_ms = ec_now_ms(),
    };
    ec_metrics_observe(e->metrics, &o);
}

static ec_err publish_one(ec_egress *e, const ec_pending *p, const char *topic, const ec_buf *b,
                          const ec_mqtt_pubprops *pp, ec_error *err)
{
    if (p->nowait)
        return ec_mqtt_publish_nowait(e->env->svc->mqtt, topic, b->data, b->len, 1, pp, err);
    return ec_mqtt_publish(e->env->svc->mqtt, topic, b->data, b->len, 1, false, pp, 10000, err);
}

/* The copy on <root>/result/<id>: for a query without a Response Topic it
 * is the answer itself, always sent. Otherwise it is for whoever follows
 * every result (dashboards, the fleet bridge, `edgecascade tail`), so it is
 * skipped while the broker says nobody does (copy_unheard_ms, ec_mqtt.h):
 * one copy per window still goes out and finds out when someone does. */
static bool copy_wanted(ec_egress *e, const ec_config *cfg, const ec_pending *p)
{
    if (!p->response_topic)
        return true;
    if (!cfg->copy_results)
        return false;
    return !cfg->copy_unheard_ms || !ec_mqtt_unheard(e->env->svc->mqtt, cfg->copy_unheard_ms);
}

/* Returns whether a wanted copy was skipped for want of a subscriber. */
static bool publish(ec_egress *e, const ec_pending *p, const ec_result *res)
{
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, EC_MAX_PAYLOAD + 64 * 1024);
    ec_err rc = p->enc == EC_ENC_JSON ? ec_result_encode_json(res, &b, &err)
                                      : ec_result_encode(res, &b, &err);
    if (rc) {
        ec_log_error("result %s could not be encoded: %s", res->id, err.msg);
        ec_buf_free(&b);
        return false;
    }
    bool json = p->enc == EC_ENC_JSON;
    const char *ctype = json ? "application/json" : "application/msgpack";
    /* MQTT v5 request/response courtesy: the client's Correlation Data and
     * User Properties come back, and a JSON body says it is UTF-8 text. */
    ec_mqtt_pubprops pp = {.corr = p->corr,
                           .corr_len = p->corr_len,
                           .content_type = ctype,
                           .utf8 = json,
                           .user_props = p->user_props,
                           .n_user_props = p->n_user_props};
    ec_mqtt_pubprops dp = {.content_type = ctype,
                           .utf8 = json,
                           .user_props = p->user_props,
                           .n_user_props = p->n_user_props};
    if (p->response_topic && publish_one(e, p, p->response_topic, &b, &pp, &err) != EC_OK)
        ec_log_error("result %s to %s: %s", res->id, p->response_topic, err.msg);
    const ec_config *cfg = CFG(e);
    bool copy = copy_wanted(e, cfg, p);
    if (copy) {
        char topic[400];
        snprintf(topic, sizeof(topic), "%s/result/%s", cfg->topic_root, res->id);
        if (publish_one(e, p, topic, &b, &dp, &err) != EC_OK)
            ec_log_error("result %s to %s: %s", res->id, topic, err.msg);
    }
    ec_buf_free(&b);
    return !copy && cfg->copy_results;
}

ec_stage_rc ec_egress_run(ec_egress *e, ec_pending *p)
{
    if (p->notice) {
        publish(e, p, &p->res);
        p->stage = EC_STAGE_DONE;
        return EC_STAGE_NEXT;
    }
    build(e, p);
    ec_controls_cache_store(e->controls, p, &p->res, p->out.answer_attempt);
    bool skipped = publish(e, p, &p->res);
    observe(e, p, &p->res, skipped);
    ec_log_debug("query %s: %s tier %u, confidence %.3f, %.2f ms: %s", p->res.id,
                 p->res.tier ? p->res.tier : "none", p->res.tier_index, p->res.confidence,
                 p->res.latency_ms, p->res.reason);
    p->stage = EC_STAGE_RECORD;
    return EC_STAGE_NEXT;
}
