#include "router_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

/* ---- results ---- */

static const char *tier_kind(const ec_tier_cfg *t)
{
    return t->local ? "local" : "cloud";
}

static void copy_error(ec_wire_error *dst, const ec_wire_error *src)
{
    if (src->code)
        ec_wire_error_set(dst, src->code, src->message ? src->message : "");
}

void ec_router_copy_attempt(ec_attempt *dst, const ec_attempt *src)
{
    *dst = *src;
    dst->tier = ec_strdup0(src->tier);
    dst->model = ec_strdup0(src->model);
    dst->reason = ec_strdup0(src->reason);
    memset(&dst->error, 0, sizeof(dst->error));
    copy_error(&dst->error, &src->error);
}

static ec_err publish(ec_router *r, const ec_pending *p, const char *topic, const ec_buf *b,
                      const ec_mqtt_pubprops *pp, ec_error *err)
{
    if (p->nowait)
        return ec_mqtt_publish_nowait(r->svc->mqtt, topic, b->data, b->len, 1, pp, err);
    return ec_mqtt_publish(r->svc->mqtt, topic, b->data, b->len, 1, false, pp, 10000, err);
}

void ec_router_publish_result(ec_router *r, ec_pending *p, const ec_result *res)
{
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, EC_MAX_PAYLOAD + 64 * 1024);
    ec_err rc = p->enc == EC_ENC_JSON ? ec_result_encode_json(res, &b, &err)
                                      : ec_result_encode(res, &b, &err);
    if (rc) {
        ec_log_error("result %s could not be encoded: %s", res->id, err.msg);
        ec_buf_free(&b);
        return;
    }
    const char *ctype = p->enc == EC_ENC_JSON ? "application/json" : "application/msgpack";
    ec_mqtt_pubprops pp = {.corr = p->corr, .corr_len = p->corr_len, .content_type = ctype};
    char topic[400];
    snprintf(topic, sizeof(topic), "%s/result/%s", r->cfg->topic_root, res->id);
    ec_mqtt_pubprops dp = {.content_type = ctype};
    if (p->response_topic && publish(r, p, p->response_topic, &b, &pp, &err) != EC_OK)
        ec_log_error("result %s to %s: %s", res->id, p->response_topic, err.msg);
    if (publish(r, p, topic, &b, &dp, &err) != EC_OK)
        ec_log_error("result %s to %s: %s", res->id, topic, err.msg);
    ec_buf_free(&b);
}

void ec_router_record(ec_router *r, ec_pending *p, ec_result *res)
{
    ec_decision d = {
        .ts_ms = p->ts_ms,
        .result = *res,
        .policy = p->query.policy,
        .encoding = p->enc,
        .left_device = p->left_device,
        .n_details = p->n_attempts,
        .journal_id = p->journal_id,
        .append_only = p->shadow,
    };
    /* The drafts move into the decision; p no longer owns them. */
    memcpy(d.details, p->details, sizeof(d.details));
    memset(p->details, 0, sizeof(p->details));
    const ec_tier_cfg *top = &r->cfg->tiers[r->cfg->n_tiers - 1];
    if (!res->error.code)
        d.cost_top_usd = ec_tier_cost(top, res->tokens_in, res->tokens_out);
    memset(res, 0, sizeof(*res)); /* moved into d */
    ec_error err = {0};
    /* The writer's queue is full only when the disk cannot keep up; waiting
     * here slows intake rather than losing a decision (but never on Paho's thread). */
    for (int i = 0; i < (p->nowait ? 1 : 500); i++) {
        if (ec_store_record(r->store, &d, &err) == EC_OK)
            return;
        if (!p->nowait)
            ec_sleep_ms(10);
    }
    ec_log_error("decision %s not recorded: %s", d.result.id, err.msg);
    ec_decision_clear(&d);
}

/* The metrics hook (router_metrics.h): one call per Result, before the
 * result moves into the decision. cost_top_usd as ec_router_record computes it. */
static void observe(ec_router *r, const ec_pending *p, const ec_result *res)
{
    const ec_tier_cfg *top = &r->cfg->tiers[r->cfg->n_tiers - 1];
    ec_metrics_obs o = {
        .id = res->id,
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
        .ts_ms = ec_now_ms(),
    };
    ec_metrics_observe(r->metrics, &o);
}

/* Publishes the final Result for p, records the decision and frees p.
 * answer_attempt is the attempt whose draft is served (-1: none); degraded
 * says a better tier failed and a lower tier's draft stands in. */
static void finish(ec_router *r, ec_pending *p, int answer_attempt, bool degraded,
                   const char *reason, const char *err_code, const char *err_msg)
{
    double t_in = ec_mono_ms();
    ec_result res = {0};
    res.id = strdup(p->query.id);
    res.source = ec_strdup0(p->query.source);
    res.reason = strdup(reason);
    res.confidence = -1;
    res.revision = p->revision ? p->revision : 1;
    res.degraded = degraded;
    res.complexity = ec_strdup0(ec_complexity_name(p->gq.complexity));
    res.redacted = p->redacted;
    res.escalation_withheld = p->withheld;
    if (p->cached) {
        char why[EC_MAX_REASON];
        ec_router_cache_result(p, &res, why, sizeof(why));
        free(res.reason);
        res.reason = strdup(why);
    } else if (answer_attempt >= 0) {
        const ec_attempt *a = &p->attempts[answer_attempt];
        const char *answer = p->details[answer_attempt].answer;
        res.answer = strdup(answer ? answer : "");
        res.tier = strdup(tier_kind(&r->cfg->tiers[a->tier_index]));
        res.tier_index = a->tier_index;
        res.tier_name = ec_strdup0(a->tier);
        res.model = ec_strdup0(a->model);
        res.confidence = a->confidence;
        res.threshold = a->threshold;
        res.tokens_in = a->tokens_in;
        res.tokens_out = a->tokens_out;
    }
    if (err_code)
        ec_wire_error_set(&res.error, err_code, err_msg ? err_msg : "");
    res.escalated = p->n_attempts > 1;
    res.attempts = p->n_attempts ? calloc(p->n_attempts, sizeof(ec_attempt)) : NULL;
    for (size_t i = 0; i < p->n_attempts && res.attempts; i++) {
        ec_router_copy_attempt(&res.attempts[i], &p->attempts[i]);
        res.cost_usd += p->attempts[i].cost_usd;
    }
    res.n_attempts = res.attempts ? p->n_attempts : 0;
    res.cost_usd += p->prior_cost_usd;
    double now = ec_mono_ms();
    /* A replayed escalation counts from the query's first arrival. */
    res.latency_ms = p->outbox_id ? (double)(ec_now_ms() - p->arrived_ms) : now - p->t0_ms;
    res.router_ms = p->busy_ms + (now - t_in);
    ec_router_cache_store(r, p, &res, answer_attempt);
    ec_router_publish_result(r, p, &res);
    observe(r, p, &res);
    ec_log_debug("query %s: %s tier %u, confidence %.3f, %.2f ms: %s", res.id,
                 res.tier ? res.tier : "none", res.tier_index, res.confidence, res.latency_ms,
                 res.reason);
    ec_router_record(r, p, &res);
    ec_result_clear(&res);
    if (p->outbox_id)
        ec_router_replay_done(r, p, true); /* frees p */
    else
        ec_pending_free(p);
}

static void finish_error(ec_router *r, ec_pending *p, const char *code, const char *msg)
{
    char reason[300];
    snprintf(reason, sizeof(reason), "not answered: %s", code);
    finish(r, p, -1, false, reason, code, msg);
}

/* ---- dispatch ---- */

/* Whether the query must stay on the device: policy local_only, or policy
 * consent without consent: true. */
static bool stays_local(const ec_pending *p)
{
    return p->query.policy == EC_POLICY_LOCAL_ONLY ||
           (p->query.policy == EC_POLICY_CONSENT && !p->query.consent);
}

/* Whether a cloud tier of the cascade comes after ti: what a consent query
 * without consent is kept from. */
static bool cloud_after(const ec_router *r, int ti)
{
    for (size_t i = (size_t)ti + 1; i < r->cfg->n_tiers; i++)
        if (!r->cfg->tiers[i].local &&
            !(r->cfg->tiers[i].failover_of && *r->cfg->tiers[i].failover_of))
            return true;
    return false;
}

/* Next tier after `after` in the cascade that the query's policy allows, or
 * -1. Failover tiers are not part of the cascade: they stand in for their
 * primary only when it fails (failover_next). */
static int next_tier(const ec_router *r, const ec_pending *p, int after)
{
    for (size_t i = (size_t)(after + 1); i < r->cfg->n_tiers; i++) {
        if (stays_local(p) && !r->cfg->tiers[i].local)
            continue;
        if (r->cfg->tiers[i].failover_of && *r->cfg->tiers[i].failover_of)
            continue;
        return (int)i;
    }
    return -1;
}

/* The cascade position a tier holds: itself, or the primary it stands in for. */
static int primary_of(const ec_router *r, int ti)
{
    const char *f = r->cfg->tiers[ti].failover_of;
    if (f && *f) {
        int j = ec_config_tier_index(r->cfg, f);
        if (j >= 0)
            return j;
    }
    return ti;
}

/* After tier ti failed: the next stand-in for its primary, or -1. */
static int failover_next(const ec_router *r, const ec_pending *p, int ti)
{
    const char *primary = r->cfg->tiers[primary_of(r, ti)].name;
    for (size_t i = (size_t)ti + 1; i < r->cfg->n_tiers; i++) {
        const ec_tier_cfg *t = &r->cfg->tiers[i];
        if (stays_local(p) && !t->local)
            continue;
        if (t->failover_of && strcmp(t->failover_of, primary) == 0)
            return (int)i;
    }
    return -1;
}

static void add_attempt(ec_pending *p, const ec_tier_cfg *t, int ti, double latency_ms)
{
    ec_attempt *a = &p->attempts[p->n_attempts++];
    memset(a, 0, sizeof(*a));
    a->tier_index = (uint32_t)ti;
    a->tier = strdup(t->name);
    a->model = strdup(t->model);
    a->confidence = -1;
    a->latency_ms = latency_ms;
}

/* Sends p to tier ti. On failure the hop is judged as an error at once. */
void ec_router_dispatch(ec_router *r, ec_pending *p, int ti)
{
    const ec_tier_cfg *t = &r->cfg->tiers[ti];
    double t_in = ec_mono_ms();
    if (!t->local) {
        /* At a spend cap a cloud tier is as good as an open breaker; a prompt
         * that could not be masked never leaves. */
        char why[300];
        const char *code = NULL;
        if (!ec_router_budget_allows(r, why, sizeof(why)))
            code = "budget";
        else if (!ec_router_mask(r, p) &&
                 snprintf(why, sizeof(why), "the prompt could not be redacted; not sent") > 0)
            code = "internal";
        if (code) {
            p->tier = ti;
            p->hop_start_ms = t_in;
            ec_infer_reply rep = {0};
            ec_wire_error_set(&rep.error, code, why);
            ec_router_judge(r, p, &rep);
            ec_infer_reply_clear(&rep);
            return;
        }
    }
    ec_infer_request req = {0};
    ec_chat_msg one = {.role = "user", .content = p->query.prompt};
    req.id = p->query.id;
    req.tier_index = (uint32_t)ti;
    req.tier = t->name;
    if (!t->local && p->masked) {
        req.messages = p->masked;
        req.n_messages = p->n_masked;
    } else if (p->query.n_messages) {
        req.messages = p->query.messages;
        req.n_messages = p->query.n_messages;
    } else {
        req.messages = &one;
        req.n_messages = 1;
    }
    req.max_tokens = p->query.max_tokens;
    req.temperature = p->query.temperature;
    req.has_temperature = p->query.has_temperature;
    req.logprobs = t->logprobs;
    req.timeout_ms = t->timeout_ms;
    if (t->local && r->cfg->samples > 1 && !p->shadow)
        req.samples = (uint32_t)r->cfg->samples;

    /* The query's deadline bounds this hop and every retry behind it; a tier
     * that cannot answer in the time left is not asked at all. */
    double left = p->deadline_ms - t_in;
    pthread_mutex_lock(&r->stats_lock);
    double typical = r->ewma_ms[ti];
    pthread_mutex_unlock(&r->stats_lock);
    if (left < 1 || (!t->local && typical > 0 && left < typical)) {
        /* A query let out of the window with its deadline just past: the
         * slot it was handed goes back. */
        ec_window_leave(r->window, p, 0);
        p->tier = ti;
        p->hop_start_ms = t_in;
        ec_infer_reply rep = {0};
        char m[200];
        snprintf(m, sizeof(m),
                 "deadline: %.0f ms left, tier '%s' typically needs %.0f ms; not sent", left,
                 t->name, typical);
        ec_wire_error_set(&rep.error, "deadline", m);
        ec_router_judge(r, p, &rep);
        ec_infer_reply_clear(&rep);
        return;
    }
    if ((double)req.timeout_ms > left)
        req.timeout_ms = (uint32_t)left;
    if (t->local && !p->windowed) {
        p->tier = ti;
        p->busy_ms += ec_mono_ms() - t_in;
        if (!ec_window_enter(r->window, p, ec_router_local_window(r)))
            return; /* waits for a slot; ec_router_window_pass or a reply sends it */
        t_in = ec_mono_ms();
    }

    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, EC_MAX_PAYLOAD + 64 * 1024);
    ec_err rc = ec_infer_request_encode(&req, &b, &err);

    p->tier = ti;
    p->key = atomic_fetch_add(&r->next_key, 1);
    p->hop_start_ms = ec_mono_ms();
    p->hop_deadline_ms = p->hop_start_ms + req.timeout_ms + HOP_GRACE_MS;
    if (!t->local)
        p->left_device = true;
    uint64_t key = p->key;
    unsigned char corr[8];
    for (int i = 0; i < 8; i++)
        corr[i] = (unsigned char)(key >> (56 - 8 * i));
    p->busy_ms += ec_mono_ms() - t_in;

    if (rc == EC_OK) {
        /* From ec_pending_put on, p belongs to whichever thread takes it. */
        ec_pending_put(r->pending, p);
        ec_mqtt_pubprops pp = {.response_topic = r->reply_topic, .corr = corr, .corr_len = 8};
        rc = ec_mqtt_publish(r->svc->mqtt, t->local ? r->infer_local : r->infer_cloud, b.data,
                             b.len, 1, false, &pp, 5000, &err);
        if (rc == EC_OK) {
            ec_buf_free(&b);
            return;
        }
        p = ec_pending_take(r->pending, key);
        if (!p) { /* already answered or swept: nothing more to do here */
            ec_buf_free(&b);
            return;
        }
    }
    ec_buf_free(&b);
    /* The slot is freed, not handed on: the sweeper's pass admits the next
     * query, where a hand-off here would recurse through every waiting one
     * while the broker refuses publishes. */
    ec_window_leave(r->window, p, 0);
    ec_infer_reply rep = {0};
    ec_wire_error_set(&rep.error, rc == EC_ERR_BUSY ? "busy" : "internal", err.msg);
    ec_router_judge(r, p, &rep);
    ec_infer_reply_clear(&rep);
}

/* ---- the gate ---- */

void ec_router_judge(ec_router *r, ec_pending *p, ec_infer_reply *rep)
{
    double t_in = ec_mono_ms();
    int ti = p->tier;
    const ec_tier_cfg *t = &r->cfg->tiers[ti];
    char reason[EC_MAX_REASON];
    add_attempt(p, t, ti, ec_mono_ms() - p->hop_start_ms);
    ec_attempt *a = &p->attempts[p->n_attempts - 1];
    ec_attempt_detail *dt = &p->details[p->n_attempts - 1];
    dt->raw_confidence = -1;
    dt->sent = rep->sent; /* taken over from the reply, on errors too */
    rep->sent = NULL;
    ec_gate_verdict v = {.raw = -1, .confidence = -1};
    if (!rep->error.code)
        ec_gate_judge(r->gate, (size_t)ti, &p->gq, rep, &v);
    else
        v.threshold = ec_gate_threshold(r->cfg, (size_t)ti);
    a->threshold = v.threshold;
    a->cost_usd = rep->cost_usd;
    if (!t->local && rep->cost_usd > 0)
        ec_router_budget_spent(r, rep->cost_usd);
    a->tokens_in = rep->tokens_in;
    a->tokens_out = rep->tokens_out;
    if (rep->model && *rep->model) {
        free(a->model);
        a->model = strdup(rep->model);
    }
    int next = next_tier(r, p, primary_of(r, ti));
    bool room = p->n_attempts < EC_MAX_ATTEMPTS;

    if (rep->error.code) {
        copy_error(&a->error, &rep->error);
        snprintf(reason, sizeof(reason), "tier %d '%s' failed: %s: %.200s", ti, t->name,
                 rep->error.code, rep->error.message ? rep->error.message : "");
        a->reason = strdup(reason);
        p->busy_ms += ec_mono_ms() - t_in;
        if (p->outbox_id) {
            /* A replayed escalation that failed again stays queued. */
            ec_router_replay_done(r, p, false);
            return;
        }
        if (p->shadow) {
            ec_router_shadow_done(r, p);
            return;
        }
        int stand_in = failover_next(r, p, ti);
        if (stand_in >= 0 && room) {
            ec_router_dispatch(r, p, stand_in);
            return;
        }
        if (next >= 0 && room) {
            ec_router_dispatch(r, p, next);
            return;
        }
        /* Nothing left to try now. A cloud outage (not a configuration
         * error, not a deadline) leaves the escalation in the offline queue:
         * the caller gets the best draft now and the cloud answer later. */
        const char *code = rep->error.code;
        bool outage = !t->local && strcmp(code, "config") != 0 && strcmp(code, "deadline") != 0 &&
                      strcmp(code, "bad_request") != 0 && strcmp(code, "too_large") != 0;
        char why[EC_MAX_REASON];
        ec_error qerr = {0};
        bool may_queue = p->query.policy == EC_POLICY_AUTO ||
                         (p->query.policy == EC_POLICY_CONSENT && p->query.consent);
        if (outage && r->cfg->offline_queue && may_queue && r->ledger) {
            if (ec_router_enqueue(r, p, primary_of(r, ti), &qerr)) {
                if (p->best >= 0) {
                    snprintf(why, sizeof(why),
                             "%s, escalation queued (revision 2 follows); serving the local "
                             "draft: %.300s",
                             strcmp(code, "budget") == 0 ? "cloud budget reached"
                                                         : "cloud unavailable",
                             reason);
                    finish(r, p, p->best, true, why, NULL, NULL);
                } else {
                    finish(r, p, -1, true, reason, "queued",
                           "the cloud is unavailable; the query is queued and its answer will "
                           "follow as revision 2");
                }
                return;
            }
            snprintf(why, sizeof(why), "%.200s; not queued: %.200s", reason, qerr.msg);
            snprintf(reason, sizeof(reason), "%s", why);
        }
        if (p->best >= 0) {
            const ec_attempt *b = &p->attempts[p->best];
            snprintf(why, sizeof(why),
                     "serving the best draft (tier %u '%s', confidence %.2f): %.300s",
                     b->tier_index, b->tier, b->confidence, reason);
            finish(r, p, p->best, true, why, NULL, NULL);
            return;
        }
        finish(r, p, -1, false, reason, rep->error.code,
               rep->error.message ? rep->error.message : "");
        return;
    }

    pthread_mutex_lock(&r->stats_lock);
    r->ewma_ms[ti] =
        r->ewma_ms[ti] > 0 ? 0.8 * r->ewma_ms[ti] + 0.2 * a->latency_ms : a->latency_ms;
    pthread_mutex_unlock(&r->stats_lock);
    a->confidence = v.confidence;
    dt->raw_confidence = v.raw;
    dt->lp = rep->lp;
    dt->answer = rep->answer; /* taken over from the reply */
    dt->finish_reason = rep->finish_reason;
    rep->answer = NULL;
    rep->finish_reason = NULL;
    if (p->shadow) {
        ec_router_shadow_done(r, p);
        return;
    }
    if (p->best < 0 || a->confidence > p->attempts[p->best].confidence)
        p->best = (int)(p->n_attempts - 1);
    /* Self-consistency (gate.samples): a draft whose samples disagree is not
     * trusted, whatever its confidence. */
    bool disagree = rep->samples > 1 && rep->agreement < 1.0;
    char agreement[80] = "";
    if (rep->samples > 1)
        snprintf(agreement, sizeof(agreement), "; %.0f of %u samples agree",
                 rep->agreement * rep->samples, rep->samples);
    if (a->confidence >= a->threshold && !(disagree && next >= 0 && room)) {
        snprintf(reason, sizeof(reason), "accepted: confidence %.2f >= threshold %.2f%s",
                 a->confidence, a->threshold, agreement);
        a->accepted = true;
    } else if (disagree && next >= 0 && room) {
        snprintf(reason, sizeof(reason), "escalated: the samples disagree%s; next tier %d '%s'",
                 agreement, next, r->cfg->tiers[next].name);
    } else if (next >= 0 && room) {
        snprintf(reason, sizeof(reason),
                 "escalated: confidence %.2f < threshold %.2f, next tier %d '%s'", a->confidence,
                 a->threshold, next, r->cfg->tiers[next].name);
    } else if (p->outbox_id) {
        snprintf(reason, sizeof(reason),
                 "replayed from the offline queue: confidence %.2f (threshold %.2f)", a->confidence,
                 a->threshold);
        a->accepted = true;
    } else if (p->query.policy == EC_POLICY_LOCAL_ONLY && (size_t)ti + 1 < r->cfg->n_tiers) {
        snprintf(reason, sizeof(reason),
                 "accepted below threshold (%.2f < %.2f): policy local_only keeps the query on "
                 "the device",
                 a->confidence, a->threshold);
        a->accepted = true;
    } else if (p->query.policy == EC_POLICY_CONSENT && !p->query.consent && cloud_after(r, ti)) {
        snprintf(reason, sizeof(reason),
                 "escalation withheld: confidence %.2f < threshold %.2f, and policy consent asks "
                 "a cloud tier only with \"consent\": true; serving the local draft (resubmit "
                 "with consent to escalate)",
                 a->confidence, a->threshold);
        a->accepted = true;
        p->withheld = true;
    } else {
        snprintf(reason, sizeof(reason), "accepted below threshold (%.2f < %.2f): no further tier",
                 a->confidence, a->threshold);
        a->accepted = true;
    }
    a->reason = strdup(reason);
    p->busy_ms += ec_mono_ms() - t_in;
    if (a->accepted) {
        /* Shadow (gate.shadow_rate): now and then a locally accepted query is
         * also asked to the cloud, to measure how often the local tier is
         * wrong; the copy is made before finish() frees p. */
        ec_query *shadow = NULL;
        if (t->local && !p->outbox_id && p->query.policy == EC_POLICY_AUTO &&
            r->cfg->shadow_rate > 0 && ec_router_shadow_pick(r))
            shadow = ec_router_shadow_copy(p);
        finish(r, p, (int)(p->n_attempts - 1), false, reason, NULL, NULL);
        if (shadow)
            ec_router_shadow_send(r, shadow);
        return;
    }
    ec_router_dispatch(r, p, next);
}

/* ---- intake ---- */

static const char intake_full[] = "router intake queue is full (mqtt.queue_size); retry later";

/* Reads a query into a new pending entry. Returns NULL when the query has
 * already been answered (with an error) or memory ran out. */
static ec_pending *intake(ec_router *r, ec_mqtt_msg *msg, bool nowait)
{
    double t_in = ec_mono_ms();
    ec_error err = {0};
    ec_pending *p = calloc(1, sizeof(*p));
    if (!p) {
        ec_log_error("out of memory: query on %s not answered", msg->topic);
        return NULL;
    }
    p->best = -1;
    p->nowait = nowait;
    /* A journaled query's decision carries the journal's arrival time: with
     * the journal id it names the row (ec_store_decided). */
    p->ts_ms = msg->tag > 0 && msg->tag_ms ? msg->tag_ms : ec_now_ms();
    p->arrived_ms = p->ts_ms;
    p->revision = 1;
    p->journal_id = msg->tag;
    p->expiry_s = msg->expiry_s;
    p->t0_ms = (double)msg->received_us / 1000.0;
    p->deadline_ms = p->t0_ms + r->cfg->query_timeout_ms;
    p->response_topic = msg->response_topic;
    p->corr = msg->corr;
    p->corr_len = msg->corr_len;
    msg->response_topic = NULL;
    msg->corr = NULL;
    p->enc = ec_payload_encoding(msg->payload, msg->len);

    ec_err rc;
    if (msg->len > EC_MAX_PAYLOAD)
        rc = ec_error_set(&err, EC_ERR_TOOBIG, "query: %zu bytes exceeds limit %u", msg->len,
                          EC_MAX_PAYLOAD);
    else
        rc = ec_query_decode_any(msg->payload, msg->len, &p->query, &p->enc, &err);
    if (!p->query.id) {
        /* Absent, or the payload was too broken to read one: the error result
         * still needs an id for <root>/result/<id> and the decision log. */
        char id[27];
        ec_id_new(id);
        p->query.id = strdup(id);
    }
    p->busy_ms = ec_mono_ms() - t_in;
    if (rc != EC_OK) {
        ec_log_warn("malformed query on %s answered with an error (id %s): %s", msg->topic,
                    p->query.id, err.msg);
        finish_error(r, p, rc == EC_ERR_TOOBIG ? "too_large" : "bad_request", err.msg);
        return NULL;
    }
    /* The decoder already refused ids that cannot go into a topic name
     * (query.id: EC_FF_TOPIC), so p->query.id is safe for <root>/result/<id>. */
    return p;
}

void ec_router_on_query(ec_router *r, ec_mqtt_msg *msg)
{
    if (msg->tag < 0)
        return; /* a duplicate delivery (ec_router_journal_arrival) */
    ec_pending *p = intake(r, msg, false);
    if (!p)
        return;
    /* Queued past a full intake queue (on_overflow had no slot to answer it
     * with): refused now unless the backlog has drained since. */
    if (msg->overflowed && ec_mqtt_queue_len(r->svc->mqtt) >= (size_t)r->cfg->queue_size / 2) {
        finish_error(r, p, "busy", intake_full);
        return;
    }
    size_t inflight = ec_pending_count(r->pending) + ec_window_waiting(r->window);
    if (inflight >= (size_t)r->cfg->max_pending) {
        char m[200];
        snprintf(m, sizeof(m),
                 "router holds %zu queries not yet answered (router.max_pending); retry later",
                 inflight);
        finish_error(r, p, "busy", m);
        return;
    }
    if (p->query.deadline_ms)
        p->deadline_ms = p->t0_ms + p->query.deadline_ms;
    ec_gate_classify(r->gate, &p->query, &p->gq);
    if (ec_router_cache_lookup(r, p)) {
        finish(r, p, -1, false, "cache hit", NULL, NULL);
        return;
    }
    int first = next_tier(r, p, -1);
    if (p->gq.preroute_cloud && !stays_local(p)) {
        /* Hard queries go straight to the first cloud tier (gate.preroute). */
        int c = first;
        while (c >= 0 && r->cfg->tiers[c].local)
            c = next_tier(r, p, c);
        if (c >= 0)
            first = c;
    }
    if (first < 0) {
        finish_error(r, p, "config",
                     "no tier allowed for this query (policy local_only needs a local tier)");
        return;
    }
    /* The local model is more than max_wait_ms behind, counting the time
     * this query already spent in the inbound queue: it would be answered
     * that late, so it is refused now. A burst is taken whole as long as the
     * model can work through it within max_wait_ms. */
    double now = ec_mono_ms();
    double behind = (now - p->t0_ms) + ec_window_behind_ms(r->window, now);
    if (r->cfg->tiers[first].local && r->cfg->max_wait_ms && behind > r->cfg->max_wait_ms) {
        char m[200];
        snprintf(m, sizeof(m),
                 "the local model is %.0f ms behind (router.max_wait_ms %u); retry later", behind,
                 r->cfg->max_wait_ms);
        finish_error(r, p, "busy", m);
        return;
    }
    ec_router_dispatch(r, p, first);
}

static void on_reply(ec_router *r, ec_mqtt_msg *msg)
{
    ec_infer_reply rep = {0};
    ec_error err = {0};
    if (msg->corr_len != 8) {
        ec_log_warn("reply without a valid correlation key on %s ignored", msg->topic);
        return;
    }
    uint64_t key = 0;
    for (int i = 0; i < 8; i++)
        key = (key << 8) | ((unsigned char *)msg->corr)[i];
    ec_err rc = ec_infer_reply_decode(msg->payload, msg->len, &rep, &err);
    ec_pending *p = ec_pending_take(r->pending, key);
    if (!p) {
        ec_log_debug("late or duplicate reply (key %llu) ignored", (unsigned long long)key);
        ec_infer_reply_clear(&rep);
        return;
    }
    ec_pending *next = ec_window_leave(r->window, p, ec_router_local_window(r));
    if (next)
        ec_router_dispatch(r, next, next->tier);
    if (rc != EC_OK) {
        ec_infer_reply_clear(&rep);
        ec_wire_error_set(&rep.error, "internal", err.msg);
    } else if (p->outbox_id && !rep.error.code && r->ledger) {
        /* Keep the cloud's answer before anything is published: a crash from
         * here on republishes it instead of calling (and paying) again. */
        ec_error e = {0};
        if (ec_outbox_answered(r->ledger, p->outbox_id, msg->payload, msg->len, &e))
            ec_log_error("queued escalation %s: %s", p->query.id, e.msg);
    }
    ec_router_judge(r, p, &rep);
    ec_infer_reply_clear(&rep);
}

static void on_arrival(void *ctx, ec_mqtt_msg *msg)
{
    ec_router *r = ctx;
    if (strcmp(msg->topic, r->query_topic) == 0)
        ec_router_journal_arrival(r, msg);
}

/* Paho's thread, inbound queue full: answer the query "busy" at once rather
 * than queue without bound. Everything else (replies to our own requests,
 * bounded by max_pending; breaker status) is queued anyway. */
static bool on_overflow(void *ctx, ec_mqtt_msg *msg)
{
    ec_router *r = ctx;
    if (strcmp(msg->topic, r->query_topic) != 0)
        return false;
    if (msg->tag < 0) { /* a duplicate delivery: already taken */
        ec_mqtt_msg_free(msg);
        return true;
    }
    /* The broker is not keeping up with what we send either: a worker
     * refuses this one (ec_router_on_query), waiting for a slot as it may. */
    if (!ec_mqtt_can_publish_now(r->svc->mqtt))
        return false;
    ec_pending *p = intake(r, msg, true);
    if (p)
        finish_error(r, p, "busy", intake_full);
    ec_mqtt_msg_free(msg);
    return true;
}

static void *worker_main(void *arg)
{
    ec_router *r = arg;
    while (true) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(r->svc->mqtt, &msg, 200);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        if (strcmp(msg->topic, r->reply_topic) == 0)
            on_reply(r, msg);
        else if (strncmp(msg->topic, r->breaker_prefix, strlen(r->breaker_prefix)) == 0)
            ec_router_on_breaker(r, msg);
        else
            ec_router_on_query(r, msg);
        ec_mqtt_msg_free(msg);
    }
    return NULL;
}

static void *sweeper_main(void *arg)
{
    ec_router *r = arg;
    for (unsigned tick = 1; !ec_service_stopping(); tick++) {
        ec_sleep_ms(50);
        if (tick % 20 == 0)
            ec_router_budget_publish(r, false); /* a new day or month lifts a cap */
        if (tick % 100 == 0)
            ec_mem_give_back();
        ec_pending *p = ec_pending_take_expired(r->pending, ec_mono_ms());
        while (p) {
            ec_pending *next = p->next;
            p->next = NULL;
            ec_window_leave(r->window, p, 0); /* the pass below admits the next */
            const ec_tier_cfg *t = &r->cfg->tiers[p->tier];
            char m[300];
            snprintf(m, sizeof(m),
                     "no reply from tier '%s' within %.0f ms (is edgecascade-%s "
                     "running?)",
                     t->name, p->hop_deadline_ms - p->hop_start_ms, t->local ? "local" : "relay");
            ec_infer_reply rep = {0};
            ec_wire_error_set(&rep.error, "timeout", m);
            ec_router_judge(r, p, &rep);
            ec_infer_reply_clear(&rep);
            p = next;
        }
        ec_router_window_pass(r);
    }
    return NULL;
}

ec_err ec_router_create(ec_router **out, ec_service *svc, ec_store *store, ec_error *err)
{
    ec_router *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    r->svc = svc;
    r->cfg = &svc->cfg;
    r->store = store;
    atomic_init(&r->next_key, ((uint64_t)ec_now_ms() << 16));
    pthread_mutex_init(&r->stats_lock, NULL);
    pthread_mutex_init(&r->shadow_lock, NULL);
    r->shadow_state = ec_now_ms() | 1;
    pthread_mutex_init(&r->replay_lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->replay_cond, &ca);
    pthread_condattr_destroy(&ca);
    svc->on_overflow = on_overflow;
    svc->on_arrival = on_arrival;
    svc->overflow_ctx = r;
    r->pending = ec_pending_table_create((size_t)r->cfg->max_pending * 2);
    r->window = ec_window_create();
    if (!r->pending || !r->window) {
        ec_router_destroy(r);
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    }
    ec_gate *gate = NULL;
    ec_err rc = ec_gate_create(&gate, r->cfg, err);
    atomic_init(&r->gate, gate);
    if (!rc)
        rc = ec_router_controls_create(r, err);
    if (rc) {
        ec_router_destroy(r);
        return rc;
    }
    if (store &&
        ((rc = ec_ledger_open(&r->ledger, store, err)) || (rc = ec_router_journal_load(r, err)))) {
        ec_router_destroy(r);
        return rc;
    }
    if ((rc = ec_metrics_create(&r->metrics, err))) {
        ec_router_destroy(r);
        return rc;
    }
    /* Cumulative numbers start from the log, so a restart does not zero them;
     * read before any query of this run is recorded, so none counts twice. */
    if (store && ec_store_totals_each(store, ec_metrics_seed, r->metrics, err) != EC_OK)
        ec_log_warn("metrics start from zero: %s", err->msg);
    char suffix[200];
    snprintf(suffix, sizeof(suffix), "reply/router/%s", svc->client_id);
    if (!ec_topic(r->cfg, r->reply_topic, sizeof(r->reply_topic), suffix) ||
        !ec_topic(r->cfg, r->query_topic, sizeof(r->query_topic), "query") ||
        !ec_topic(r->cfg, r->infer_local, sizeof(r->infer_local), "infer/local") ||
        !ec_topic(r->cfg, r->infer_cloud, sizeof(r->infer_cloud), "infer/cloud") ||
        !ec_topic(r->cfg, r->breaker_prefix, sizeof(r->breaker_prefix), "status/breaker/") ||
        !ec_topic(r->cfg, r->breaker_filter, sizeof(r->breaker_filter), "status/breaker/+") ||
        !ec_topic(r->cfg, r->stats_topic, sizeof(r->stats_topic), "stats")) {
        ec_router_destroy(r);
        return ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    }
    *out = r;
    return EC_OK;
}

ec_err ec_router_start(ec_router *r, ec_error *err)
{
    int n = r->cfg->router_workers;
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
    ec_router_budget_publish(r, true);
    if (r->ledger) {
        ec_router_journal_replay(r);
        if (pthread_create(&r->replayer, NULL, ec_router_replayer_main, r) != 0)
            return ec_error_set(err, EC_ERR_NOMEM, "router: cannot start the replay thread");
        r->replayer_started = true;
    }
    ec_err rc = ec_router_stats_start(r, err);
    if (rc)
        return rc;
    /* The dashboard is not worth stopping the cascade for (a port in use). */
    ec_error herr = {0};
    if (ec_router_http_start(r, &herr))
        ec_log_error("%s; the router runs without its HTTP server", herr.msg);
    return EC_OK;
}

void ec_router_destroy(ec_router *r)
{
    if (!r)
        return;
    ec_router_http_stop(r);
    ec_router_stats_stop(r);
    for (int i = 0; i < r->n_workers; i++)
        pthread_join(r->workers[i], NULL);
    if (r->sweeper_started)
        pthread_join(r->sweeper, NULL);
    if (r->replayer_started) {
        ec_router_replay_wake(r);
        pthread_join(r->replayer, NULL);
    }
    if (ec_pending_count(r->pending))
        ec_log_warn("%zu queries still in flight at shutdown", ec_pending_count(r->pending));
    if (ec_window_waiting(r->window))
        ec_log_warn("%zu queries still waiting for the local model at shutdown (journaled: "
                    "the next start runs them)",
                    ec_window_waiting(r->window));
    ec_window_destroy(r->window);
    ec_pending_table_destroy(r->pending);
    ec_gate_destroy(r->gate);
    ec_router_controls_destroy(r);
    ec_router_reload_clear(r);
    if (r->store && r->journal) {
        /* What the workers decided reaches the journal; then it is let go. */
        ec_store_flush(r->store, 5000, NULL);
        ec_store_on_commit(r->store, NULL, NULL);
    }
    ec_journal_close(r->journal);
    ec_ledger_close(r->ledger);
    ec_metrics_destroy(r->metrics);
    for (size_t i = 0; i < r->n_recovered; i++)
        ec_mqtt_msg_free(r->recovered[i]);
    free(r->recovered);
    pthread_cond_destroy(&r->replay_cond);
    pthread_mutex_destroy(&r->replay_lock);
    pthread_mutex_destroy(&r->stats_lock);
    pthread_mutex_destroy(&r->shadow_lock);
    free(r);
}

const char *ec_router_reply_topic(const ec_router *r)
{
    return r->reply_topic;
}

const char *ec_router_breaker_filter(const ec_router *r)
{
    return r->breaker_filter;
}

size_t ec_router_inflight(ec_router *r)
{
    return ec_pending_count(r->pending) + ec_window_waiting(r->window);
}

/* ---- the local window (window.h) ---- */

size_t ec_router_local_window(ec_router *r)
{
    const ec_config *c = r->cfg;
    if (c->local_inflight > 0)
        return (size_t)c->local_inflight;
    return 4 * (size_t)(c->local_workers > 0 ? c->local_workers : 1);
}

/* When a query waiting for a local slot is given up: after its tier's own
 * timeout, and never past the query's deadline. */
static double stale_after_ms(void *ctx, const ec_pending *p)
{
    ec_router *r = ctx;
    double wait = r->cfg->tiers[p->tier].timeout_ms;
    double left = p->deadline_ms - p->held_ms;
    return left < wait ? left : wait;
}

void ec_router_window_pass(ec_router *r)
{
    ec_pending *p = ec_window_take_stale(r->window, ec_mono_ms(), stale_after_ms, r);
    while (p) {
        ec_pending *next = p->next;
        p->next = NULL;
        char m[300];
        snprintf(m, sizeof(m),
                 "waited %.0f ms for one of %zu slots to the local model "
                 "(router.local_inflight); not sent",
                 ec_mono_ms() - p->held_ms, ec_router_local_window(r));
        p->hop_start_ms = p->held_ms;
        ec_infer_reply rep = {0};
        ec_wire_error_set(&rep.error, "busy", m);
        ec_router_judge(r, p, &rep);
        ec_infer_reply_clear(&rep);
        p = next;
    }
    while ((p = ec_window_admit(r->window, ec_router_local_window(r))))
        ec_router_dispatch(r, p, p->tier);
}
