/* Stage 3, cascade (cascade.h): dispatch a tier, judge its reply. */
#include "cascade.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "route.h"

#define HOP_GRACE_MS 2000 /* on top of a tier's own timeout: MQTT hops and queueing */

struct ec_cascade {
    ec_router_env *env;
    ec_controls *controls;
    ec_shadow *shadow;
    ec_offline *offline; /* may be NULL */
    ec_orphans *orphans; /* paid replies without a waiting query */
    ec_pending_table *pending;
    ec_window *window; /* local requests out at once, and the queries waiting for one */
    atomic_uint_fast64_t next_key;
    char reply_topic[300];
    char infer_local[300];
    char infer_cloud[300];
    /* typical latency of each tier (EWMA of successful hops, ms), to tell a
     * deadline that cannot be met before a call is made */
    pthread_mutex_t stats_lock;
    double ewma_ms[EC_MAX_TIERS];
};

#define CFG(c) atomic_load(&(c)->env->cfg)

static ec_stage_rc judge(ec_cascade *c, ec_pending *p, ec_infer_reply *rep);

size_t ec_cascade_local_window(const ec_cascade *c)
{
    const ec_config *cfg = CFG(c);
    if (cfg->local_inflight > 0)
        return (size_t)cfg->local_inflight;
    return 4 * (size_t)(cfg->local_workers > 0 ? cfg->local_workers : 1);
}

static bool key_of(const ec_mqtt_msg *msg, uint64_t *key)
{
    if (msg->corr_len != 8)
        return false;
    *key = 0;
    for (int i = 0; i < 8; i++)
        *key = (*key << 8) | ((unsigned char *)msg->corr)[i];
    return true;
}

/* ---- dispatch ---- */

/* A hop that ends before it starts: judged at once as this error. */
static ec_stage_rc refuse_hop(ec_cascade *c, ec_pending *p, int ti, double t_in, const char *code,
                              const char *msg)
{
    p->tier = ti;
    p->hop_start_ms = t_in;
    ec_infer_reply rep = {0};
    ec_wire_error_set(&rep.error, code, msg);
    ec_stage_rc rc = judge(c, p, &rep);
    ec_infer_reply_clear(&rep);
    return rc;
}

/* Sends p to tier ti: WAIT (p is in the pending table or the window, owned
 * there), or NEXT when the hop failed at once and p was judged. */
static ec_stage_rc dispatch(ec_cascade *c, ec_pending *p, int ti)
{
    const ec_config *cfg = CFG(c);
    const ec_tier_cfg *t = &cfg->tiers[ti];
    double t_in = ec_mono_ms();
    ec_infer_reply kept = {0};
    if (!t->local && !p->shadow && ec_orphans_take(c->orphans, p->query.id, (uint32_t)ti, &kept)) {
        /* Paid for before the router restarted (the query was journaled and
         * runs again): judged as this hop's reply, not bought twice. */
        ec_log_info("query %s: tier '%s' answered before the restart; that answer is used, no "
                    "new call",
                    p->query.id, t->name);
        p->tier = ti;
        p->hop_start_ms = t_in;
        p->left_device = true;
        p->spend_counted = true;
        ec_stage_rc rc = judge(c, p, &kept);
        ec_infer_reply_clear(&kept);
        return rc;
    }
    if (!t->local) {
        /* At a spend cap a cloud tier is as good as an open breaker; a prompt
         * that could not be masked never leaves. */
        char why[300];
        if (!ec_controls_budget_allows(c->controls, why, sizeof(why)))
            return refuse_hop(c, p, ti, t_in, "budget", why);
        if (!ec_controls_mask(c->controls, p))
            return refuse_hop(c, p, ti, t_in, "internal",
                              "the prompt could not be redacted; not sent");
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
    if (t->local && cfg->samples > 1 && !p->shadow)
        req.samples = (uint32_t)cfg->samples;

    /* The query's deadline bounds this hop and every retry behind it; a tier
     * that cannot answer in the time left is not asked at all. */
    double left = p->deadline_ms - t_in;
    pthread_mutex_lock(&c->stats_lock);
    double typical = c->ewma_ms[ti];
    pthread_mutex_unlock(&c->stats_lock);
    if (left < 1 || (!t->local && typical > 0 && left < typical)) {
        /* A query let out of the window with its deadline just past: the
         * slot it was handed goes back. */
        ec_window_leave(c->window, p, 0);
        char m[200];
        snprintf(m, sizeof(m),
                 "deadline: %.0f ms left, tier '%s' typically needs %.0f ms; not sent", left,
                 t->name, typical);
        return refuse_hop(c, p, ti, t_in, "deadline", m);
    }
    if ((double)req.timeout_ms > left)
        req.timeout_ms = (uint32_t)left;
    if (t->local && !p->windowed) {
        p->tier = ti;
        p->busy_ms += ec_mono_ms() - t_in;
        if (!ec_window_enter(c->window, p, ec_cascade_local_window(c)))
            return EC_STAGE_WAIT; /* waits for a slot; the sweep or a reply hands it one */
        t_in = ec_mono_ms();
    }

    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, EC_MAX_PAYLOAD + 64 * 1024);
    ec_err rc = ec_infer_request_encode(&req, &b, &err);

    p->tier = ti;
    p->key = atomic_fetch_add(&c->next_key, 1);
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
        ec_pending_put(c->pending, p);
        ec_mqtt_pubprops pp = {.response_topic = c->reply_topic, .corr = corr, .corr_len = 8};
        rc = ec_mqtt_publish(c->env->svc->mqtt, t->local ? c->infer_local : c->infer_cloud, b.data,
                             b.len, 1, false, &pp, 5000, &err);
        if (rc == EC_OK) {
            ec_buf_free(&b);
            return EC_STAGE_WAIT;
        }
        p = ec_pending_take(c->pending, key);
        if (!p) { /* already answered or swept: nothing more to do here */
            ec_buf_free(&b);
            return EC_STAGE_WAIT;
        }
    }
    ec_buf_free(&b);
    /* The slot is freed, not handed on: the sweeper's pass admits the next
     * query, where a hand-off here would recurse through every waiting one
     * while the broker refuses publishes. */
    ec_window_leave(c->window, p, 0);
    ec_infer_reply rep = {0};
    ec_wire_error_set(&rep.error, rc == EC_ERR_BUSY ? "busy" : "internal", err.msg);
    ec_stage_rc src = judge(c, p, &rep);
    ec_infer_reply_clear(&rep);
    return src;
}

/* ---- the gate ---- */

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

/* Nothing left to try after tier ti failed: queue the escalation, serve the
 * best draft, or fail. */
static ec_stage_rc give_up(ec_cascade *c, ec_pending *p, int ti, const ec_infer_reply *rep,
                           char *reason, size_t reason_size)
{
    const ec_config *cfg = CFG(c);
    const ec_tier_cfg *t = &cfg->tiers[ti];
    /* A cloud outage (not a configuration error, not a deadline) leaves the
     * escalation in the offline queue: the caller gets the best draft now
     * and the cloud answer later. */
    const char *code = rep->error.code;
    bool outage = !t->local && strcmp(code, "config") != 0 && strcmp(code, "deadline") != 0 &&
                  strcmp(code, "bad_request") != 0 && strcmp(code, "too_large") != 0;
    char why[EC_MAX_REASON];
    ec_error qerr = {0};
    bool may_queue = p->query.policy == EC_POLICY_AUTO ||
                     (p->query.policy == EC_POLICY_CONSENT && p->query.consent);
    if (outage && may_queue && c->offline && ec_offline_enabled(c->offline)) {
        if (ec_offline_enqueue(c->offline, p, ec_route_primary(cfg, ti), &qerr)) {
            if (p->best >= 0) {
                snprintf(why, sizeof(why),
                         "%s, escalation queued (revision 2 follows); serving the local "
                         "draft: %.300s",
                         strcmp(code, "budget") == 0 ? "cloud budget reached" : "cloud unavailable",
                         reason);
                ec_pending_conclude(p, p->best, true, why, NULL, NULL);
            } else {
                ec_pending_conclude(p, -1, true, reason, "queued",
                                    "the cloud is unavailable; the query is queued and its "
                                    "answer will follow as revision 2");
            }
            return EC_STAGE_NEXT;
        }
        snprintf(why, sizeof(why), "%.200s; not queued: %.200s", reason, qerr.msg);
        snprintf(reason, reason_size, "%s", why);
    }
    if (p->best >= 0) {
        const ec_attempt *b = &p->attempts[p->best];
        snprintf(why, sizeof(why), "serving the best draft (tier %u '%s', confidence %.2f): %.300s",
                 b->tier_index, b->tier, b->confidence, reason);
        ec_pending_conclude(p, p->best, true, why, NULL, NULL);
        return EC_STAGE_NEXT;
    }
    ec_pending_conclude(p, -1, false, reason, rep->error.code,
                        rep->error.message ? rep->error.message : "");
    return EC_STAGE_NEXT;
}

static ec_stage_rc judge_error(ec_cascade *c, ec_pending *p, ec_infer_reply *rep, int next,
                               bool room, double t_in)
{
    const ec_config *cfg = CFG(c);
    int ti = p->tier;
    const ec_tier_cfg *t = &cfg->tiers[ti];
    ec_attempt *a = &p->attempts[p->n_attempts - 1];
    char reason[EC_MAX_REASON];
    ec_wire_error_set(&a->error, rep->error.code, rep->error.message ? rep->error.message : "");
    snprintf(reason, sizeof(reason), "tier %d '%s' failed: %s: %.200s", ti, t->name,
             rep->error.code, rep->error.message ? rep->error.message : "");
    a->reason = strdup(reason);
    p->busy_ms += ec_mono_ms() - t_in;
    if (p->outbox_id) {
        /* A replayed escalation that failed again stays queued. */
        p->ok = false;
        p->stage = EC_STAGE_DONE;
        return EC_STAGE_NEXT;
    }
    if (p->shadow) {
        ec_shadow_conclude(c->shadow, p);
        return EC_STAGE_NEXT;
    }
    int stand_in = ec_route_failover(cfg, p, ti);
    if (stand_in >= 0 && room)
        return dispatch(c, p, stand_in);
    if (next >= 0 && room)
        return dispatch(c, p, next);
    return give_up(c, p, ti, rep, reason, sizeof(reason));
}

static ec_stage_rc judge(ec_cascade *c, ec_pending *p, ec_infer_reply *rep)
{
    const ec_config *cfg = CFG(c);
    double t_in = ec_mono_ms();
    int ti = p->tier;
    const ec_tier_cfg *t = &cfg->tiers[ti];
    char reason[EC_MAX_REASON];
    add_attempt(p, t, ti, ec_mono_ms() - p->hop_start_ms);
    ec_attempt *a = &p->attempts[p->n_attempts - 1];
    ec_attempt_detail *dt = &p->details[p->n_attempts - 1];
    dt->raw_confidence = -1;
    dt->sent = rep->sent; /* taken over from the reply, on errors too */
    rep->sent = NULL;
    ec_gate_verdict v = {.raw = -1, .confidence = -1};
    if (!rep->error.code)
        ec_gate_judge(atomic_load(&c->env->gate), (size_t)ti, &p->gq, rep, &v);
    else
        v.threshold = ec_gate_threshold(cfg, (size_t)ti);
    a->threshold = v.threshold;
    a->cost_usd = rep->cost_usd;
    if (!t->local && rep->cost_usd > 0 && !p->spend_counted)
        ec_controls_budget_spent(c->controls, rep->cost_usd);
    p->spend_counted = false;
    a->tokens_in = rep->tokens_in;
    a->tokens_out = rep->tokens_out;
    if (rep->model && *rep->model) {
        free(a->model);
        a->model = strdup(rep->model);
    }
    int next = ec_route_next(cfg, p, ec_route_primary(cfg, ti));
    bool room = p->n_attempts < EC_MAX_ATTEMPTS;
    if (rep->error.code)
        return judge_error(c, p, rep, next, room, t_in);

    pthread_mutex_lock(&c->stats_lock);
    c->ewma_ms[ti] =
        c->ewma_ms[ti] > 0 ? 0.8 * c->ewma_ms[ti] + 0.2 * a->latency_ms : a->latency_ms;
    pthread_mutex_unlock(&c->stats_lock);
    a->confidence = v.confidence;
    dt->raw_confidence = v.raw;
    dt->lp = rep->lp;
    dt->answer = rep->answer; /* taken over from the reply */
    dt->finish_reason = rep->finish_reason;
    rep->answer = NULL;
    rep->finish_reason = NULL;
    if (p->shadow) {
        ec_shadow_conclude(c->shadow, p);
        return EC_STAGE_NEXT;
    }
    if (p->best < 0 || a->confidence > p->attempts[p->best].confidence)
        p->best = (int)(p->n_attempts - 1);
    /* Self-consistency (gate.samples): a draft whose samples disagree is not
     * trusted, whatever its confidence. */
    bool disagree = rep->samples > 1 && rep->agreement < 1.0;
    /* "%.2f" by hand: glibc's float formatting was the worker's largest
     * single cost after the codecs (bench/instr). */
    char conf[32], thr[32];
    ec_fmt_2f(conf, sizeof(conf), a->confidence);
    ec_fmt_2f(thr, sizeof(thr), a->threshold);
    char agreement[80] = "";
    if (rep->samples > 1)
        snprintf(agreement, sizeof(agreement), "; %.0f of %u samples agree",
                 rep->agreement * rep->samples, rep->samples);
    if (a->confidence >= a->threshold && !(disagree && next >= 0 && room)) {
        snprintf(reason, sizeof(reason), "accepted: confidence %s >= threshold %s%s", conf, thr,
                 agreement);
        a->accepted = true;
    } else if (disagree && next >= 0 && room) {
        snprintf(reason, sizeof(reason), "escalated: the samples disagree%s; next tier %d '%s'",
                 agreement, next, cfg->tiers[next].name);
    } else if (next >= 0 && room) {
        snprintf(reason, sizeof(reason),
                 "escalated: confidence %s < threshold %s, next tier %d '%s'", conf, thr, next,
                 cfg->tiers[next].name);
    } else if (p->outbox_id) {
        snprintf(reason, sizeof(reason),
                 "replayed from the offline queue: confidence %s (threshold %s)", conf, thr);
        a->accepted = true;
    } else if (p->query.policy == EC_POLICY_LOCAL_ONLY && (size_t)ti + 1 < cfg->n_tiers) {
        snprintf(reason, sizeof(reason),
                 "accepted below threshold (%s < %s): policy local_only keeps the query on "
                 "the device",
                 conf, thr);
        a->accepted = true;
    } else if (p->query.policy == EC_POLICY_CONSENT && !p->query.consent &&
               ec_route_cloud_after(cfg, ti)) {
        snprintf(reason, sizeof(reason),
                 "escalation withheld: confidence %s < threshold %s, and policy consent asks "
                 "a cloud tier only with \"consent\": true; serving the local draft (resubmit "
                 "with consent to escalate)",
                 conf, thr);
        a->accepted = true;
        p->withheld = true;
    } else {
        snprintf(reason, sizeof(reason), "accepted below threshold (%s < %s): no further tier",
                 conf, thr);
        a->accepted = true;
    }
    a->reason = strdup(reason);
    p->busy_ms += ec_mono_ms() - t_in;
    if (!a->accepted)
        return dispatch(c, p, next);
    /* Now and then a locally accepted query is also asked to the cloud, to
     * measure how often the local tier is wrong: forked before p moves on. */
    if (t->local && !p->outbox_id && p->query.policy == EC_POLICY_AUTO)
        p->spawn = ec_shadow_fork(c->shadow, cfg, p);
    ec_pending_conclude(p, (int)(p->n_attempts - 1), false, reason, NULL, NULL);
    return EC_STAGE_NEXT;
}

ec_stage_rc ec_cascade_run(ec_cascade *c, ec_pending *p)
{
    if (!p->has_reply)
        return dispatch(c, p, p->tier);
    /* The reply moves out of p first: judging may send p on (and away). */
    ec_infer_reply rep = p->reply;
    memset(&p->reply, 0, sizeof(p->reply));
    p->has_reply = false;
    ec_stage_rc rc = judge(c, p, &rep);
    ec_infer_reply_clear(&rep);
    return rc;
}

/* ---- events that resume a flight ---- */

ec_pending *ec_cascade_reply(ec_cascade *c, const ec_mqtt_msg *msg, ec_pending **handed)
{
    *handed = NULL;
    uint64_t key = 0;
    if (!key_of(msg, &key)) {
        ec_log_warn("reply without a valid correlation key on %s ignored", msg->topic);
        return NULL;
    }
    ec_pending *p = ec_pending_take(c->pending, key);
    if (!p) {
        /* No query waits for it: its hop timed out, or it was sent before
         * the router restarted. A paid answer is kept (orphans.h); it is
         * counted against the budget now. */
        ec_infer_reply rep = {0};
        ec_error err = {0};
        if (ec_infer_reply_decode(msg->payload, msg->len, &rep, &err) == EC_OK &&
            rep.cost_usd > 0 && rep.id) {
            ec_log_info("a paid reply for %s (%.6f USD) arrived with no query waiting for it "
                        "(after a restart, or late); kept for its decision",
                        rep.id, rep.cost_usd);
            ec_controls_budget_spent(c->controls, rep.cost_usd);
            ec_orphans_put(c->orphans, &rep);
        } else {
            ec_log_debug("late or duplicate reply (key %llu) ignored", (unsigned long long)key);
        }
        ec_infer_reply_clear(&rep);
        return NULL;
    }
    *handed = ec_window_leave(c->window, p, ec_cascade_local_window(c));
    ec_error err = {0};
    if (ec_infer_reply_decode(msg->payload, msg->len, &p->reply, &err) != EC_OK) {
        ec_pending_set_error(p, "internal", err.msg);
    } else if (p->outbox_id && !p->reply.error.code && c->offline) {
        ec_offline_answered(c->offline, p, msg->payload, msg->len);
    }
    p->has_reply = true;
    return p;
}

/* When a query waiting for a local slot is given up: after its tier's own
 * timeout, and never past the query's deadline. */
static double stale_after_ms(void *ctx, const ec_pending *p)
{
    ec_cascade *c = ctx;
    double wait = CFG(c)->tiers[p->tier].timeout_ms;
    double left = p->deadline_ms - p->held_ms;
    return left < wait ? left : wait;
}

ec_pending *ec_cascade_sweep(ec_cascade *c, double now_ms)
{
    const ec_config *cfg = CFG(c);
    ec_pending *head = NULL, **tail = &head;
    ec_pending *p = ec_pending_take_expired(c->pending, now_ms);
    while (p) {
        ec_pending *next = p->next;
        p->next = NULL;
        ec_window_leave(c->window, p, 0); /* the admission below hands the slot on */
        const ec_tier_cfg *t = &cfg->tiers[p->tier];
        char m[300];
        snprintf(m, sizeof(m),
                 "no reply from tier '%s' within %.0f ms (is edgecascade-%s "
                 "running?)",
                 t->name, p->hop_deadline_ms - p->hop_start_ms, t->local ? "local" : "relay");
        ec_pending_set_error(p, "timeout", m);
        *tail = p;
        tail = &p->next;
        p = next;
    }
    p = ec_window_take_stale(c->window, ec_mono_ms(), stale_after_ms, c);
    while (p) {
        ec_pending *next = p->next;
        p->next = NULL;
        char m[300];
        snprintf(m, sizeof(m),
                 "waited %.0f ms for one of %zu slots to the local model "
                 "(router.local_inflight); not sent",
                 ec_mono_ms() - p->held_ms, ec_cascade_local_window(c));
        p->hop_start_ms = p->held_ms;
        ec_pending_set_error(p, "busy", m);
        *tail = p;
        tail = &p->next;
        p = next;
    }
    /* Slots freed without a hand-off, or a raised limit. */
    while ((p = ec_window_admit(c->window, ec_cascade_local_window(c)))) {
        *tail = p;
        tail = &p->next;
    }
    return head;
}

ec_pending *ec_cascade_stale_orphans(ec_cascade *c, double now_ms, double keep_ms)
{
    ec_pending *head = NULL;
    ec_orphan *x = ec_orphans_take_stale(c->orphans, now_ms, keep_ms);
    while (x) {
        ec_orphan *next = x->next;
        ec_pending *p = ec_pending_new();
        ec_result *res = p ? &p->res : NULL;
        if (p && (p->query.id = strdup(x->rep.id)) && (res->id = strdup(x->rep.id)) &&
            (res->attempts = calloc(1, sizeof(ec_attempt)))) {
            /* Appended to the decision its query already has (shadow-like). */
            ec_orphan_attempt(x, &res->attempts[0]);
            res->n_attempts = 1;
            res->revision = 1;
            res->cost_usd = x->rep.cost_usd;
            p->shadow = true;
            p->left_device = true;
            p->has_result = true;
            p->stage = EC_STAGE_RECORD;
            p->next = head;
            head = p;
        } else {
            ec_log_error("out of memory: a paid reply for %s (%.6f USD) not recorded", x->rep.id,
                         x->rep.cost_usd);
            ec_pending_free(p);
        }
        ec_orphan_free(x);
        x = next;
    }
    return head;
}

/* ---- life cycle ---- */

ec_err ec_cascade_create(ec_cascade **out, ec_router_env *env, ec_controls *controls,
                         ec_shadow *shadow, ec_orphans *orphans, ec_error *err)
{
    ec_cascade *c = calloc(1, sizeof(*c));
    if (!c)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    c->env = env;
    c->controls = controls;
    c->shadow = shadow;
    c->orphans = orphans;
    const ec_config *cfg = CFG(c);
    atomic_init(&c->next_key, ((uint64_t)ec_now_ms() << 16));
    pthread_mutex_init(&c->stats_lock, NULL);
    c->pending = ec_pending_table_create((size_t)cfg->max_pending * 2);
    c->window = ec_window_create();
    if (!c->pending || !c->window) {
        ec_cascade_destroy(c);
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    }
    char suffix[200];
    snprintf(suffix, sizeof(suffix), "reply/router/%s", env->svc->client_id);
    if (!ec_topic(cfg, c->reply_topic, sizeof(c->reply_topic), suffix) ||
        !ec_topic(cfg, c->infer_local, sizeof(c->infer_local), "infer/local") ||
        !ec_topic(cfg, c->infer_cloud, sizeof(c->infer_cloud), "infer/cloud")) {
        ec_cascade_destroy(c);
        return ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    }
    *out = c;
    return EC_OK;
}

void ec_cascade_set_offline(ec_cascade *c, ec_offline *offline)
{
    c->offline = offline;
}

void ec_cascade_destroy(ec_cascade *c)
{
    if (!c)
        return;
    if (ec_pending_count(c->pending))
        ec_log_warn("%zu queries still in flight at shutdown", ec_pending_count(c->pending));
    if (ec_window_waiting(c->window))
        ec_log_warn("%zu queries still waiting for the local model at shutdown (journaled: "
                    "the next start runs them)",
                    ec_window_waiting(c->window));
    ec_window_destroy(c->window);
    ec_pending_table_destroy(c->pending);
    pthread_mutex_destroy(&c->stats_lock);
    free(c);
}

ec_reply_kind ec_cascade_reply_kind(ec_cascade *c, const ec_mqtt_msg *msg, int64_t *journal_id)
{
    uint64_t key;
    int tier = -1;
    *journal_id = 0;
    if (!key_of(msg, &key) || !ec_pending_peek(c->pending, key, &tier, journal_id))
        return EC_REPLY_UNEXPECTED;
    const ec_config *cfg = CFG(c);
    if (tier >= 0 && (size_t)tier < cfg->n_tiers && !cfg->tiers[tier].local)
        return EC_REPLY_PAID;
    *journal_id = 0;
    return EC_REPLY_LOCAL;
}

bool ec_cascade_is_reply(const ec_cascade *c, const char *topic)
{
    return strcmp(topic, c->reply_topic) == 0;
}

const char *ec_cascade_reply_topic(const ec_cascade *c)
{
    return c->reply_topic;
}

ec_pending_table *ec_cascade_pending(ec_cascade *c)
{
    return c->pending;
}

ec_window *ec_cascade_window(ec_cascade *c)
{
    return c->window;
}
