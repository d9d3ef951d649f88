/* The offline queue of escalations (offline.h). */
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "offline.h"

#define REPLAY_WINDOW 4 /* queued escalations replayed at once */

struct ec_offline {
    ec_router_env *env;
    ec_ledger *ledger; /* NULL: no queue */
    ec_controls *controls;
    ec_metrics *metrics;
    ec_submit_fn submit;
    void *submit_ctx;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int inflight;
    int failed; /* in the current round */
    bool wake;
};

#define CFG(o) atomic_load(&(o)->env->cfg)

static void queue_event(ec_offline *r, const char *query_id, const char *event, const char *detail)
{
    ec_error err = {0};
    if (ec_ledger_queue_event(r->ledger, query_id, event, detail, &err))
        ec_log_error("queue event %s for %s not recorded: %s", event, query_id, err.msg);
}

bool ec_offline_enqueue(ec_offline *r, ec_pending *p, int ti, ec_error *err)
{
    const ec_config *cfg = CFG(r);
    ec_buf q;
    ec_buf_init(&q, EC_MAX_PAYLOAD);
    if (ec_query_encode(&p->query, &q, err) != EC_OK) {
        ec_buf_free(&q);
        return false;
    }
    uint64_t now = ec_now_ms();
    uint64_t ttl_s = cfg->queue_ttl_s;
    if (p->expiry_s && p->expiry_s < ttl_s)
        ttl_s = p->expiry_s;
    ec_outbox_item it = {
        .query_id = p->query.id,
        .enqueued_ms = now,
        .expires_ms = now + ttl_s * 1000u,
        .arrived_ms = p->arrived_ms,
        .tier_index = (uint32_t)ti,
        .query = q.data,
        .query_len = q.len,
        .encoding = (int)p->enc,
        .response_topic = p->response_topic,
        .asker = p->asker,
        .corr = p->corr,
        .corr_len = p->corr_len,
    };
    for (size_t i = 0; i < p->n_attempts; i++)
        it.prior_cost_usd += p->attempts[i].cost_usd;
    char *dropped = NULL;
    bool drop_oldest = cfg->queue_full && strcmp(cfg->queue_full, "drop_oldest") == 0;
    ec_err rc = ec_outbox_push(r->ledger, &it, cfg->queue_max, drop_oldest, &dropped, err);
    ec_buf_free(&q);
    if (dropped) {
        ec_log_warn("offline queue full: dropped the oldest escalation (%s) for %s", dropped,
                    p->query.id);
        queue_event(r, dropped, "dropped", "queue full (router.queue_full: drop_oldest)");
        free(dropped);
    }
    if (rc) {
        ec_log_error("escalation of %s not queued: %s", p->query.id, err->msg);
        queue_event(r, p->query.id, "rejected", err->msg);
        return false;
    }
    char detail[200];
    snprintf(detail, sizeof(detail), "tier '%s', expires in %llu s", cfg->tiers[ti].name,
             (unsigned long long)ttl_s);
    queue_event(r, p->query.id, "queued", detail);
    ec_log_info("escalation of %s queued (%zu waiting)", p->query.id, ec_outbox_count(r->ledger));
    return true;
}

/* A replayed flight reached the end of the pipeline (its on_done). */
static void replay_done(void *ctx, ec_pending *p, bool ok)
{
    ec_offline *r = ctx;
    ec_error err = {0};
    if (ok) {
        if (ec_outbox_delete(r->ledger, p->outbox_id, &err))
            ec_log_error("replayed escalation %s stays in the queue: %s", p->query.id, err.msg);
        queue_event(r, p->query.id, "replayed", NULL);
    } else if (ec_outbox_tried(r->ledger, p->outbox_id, &err)) {
        ec_log_error("queued escalation %s: %s", p->query.id, err.msg);
    }
    pthread_mutex_lock(&r->lock);
    r->inflight--;
    if (!ok)
        r->failed++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    ec_pending_free(p);
}

void ec_offline_wake(ec_offline *r)
{
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->wake = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
}

/* Rebuilds the in-flight state of a queued escalation. NULL when it cannot be
 * read back (then it is dropped and recorded). */
static ec_pending *revive(ec_offline *r, ec_outbox_item *it)
{
    const ec_config *cfg = CFG(r);
    ec_error err = {0};
    ec_pending *p = ec_pending_new();
    if (!p)
        return NULL;
    if (ec_query_decode(it->query, it->query_len, &p->query, &err) != EC_OK ||
        it->tier_index >= cfg->n_tiers) {
        ec_log_error("queued escalation %s cannot be replayed (%s); dropped", it->query_id,
                     err.msg[0] ? err.msg : "its tier is no longer configured");
        queue_event(r, it->query_id, "dropped", "unreadable or tier gone");
        ec_outbox_delete(r->ledger, it->id, NULL);
        ec_pending_free(p);
        return NULL;
    }
    p->ts_ms = it->arrived_ms;
    p->arrived_ms = it->arrived_ms;
    p->t0_ms = ec_mono_ms();
    p->deadline_ms = p->t0_ms + cfg->tiers[it->tier_index].timeout_ms;
    p->enc = (ec_encoding)it->encoding;
    p->response_topic = it->response_topic;
    p->corr = it->corr;
    p->corr_len = it->corr_len;
    p->asker = it->asker;
    it->response_topic = NULL;
    it->corr = NULL;
    it->asker = NULL;
    p->revision = 2;
    p->outbox_id = it->id;
    p->prior_cost_usd = it->prior_cost_usd;
    p->left_device = true;
    ec_gate_classify(atomic_load(&r->env->gate), &p->query, &p->gq);
    p->tier = (int)it->tier_index;
    p->stage = EC_STAGE_CASCADE;
    p->on_done = replay_done;
    p->on_done_ctx = r;
    return p;
}

/* Sends one queued escalation on its way; false when it was not sent. */
static bool replay_item(ec_offline *r, ec_outbox_item *it)
{
    ec_pending *p = revive(r, it);
    if (!p)
        return false;
    pthread_mutex_lock(&r->lock);
    r->inflight++;
    pthread_mutex_unlock(&r->lock);
    if (it->answered) {
        /* Answered before a crash: publish what the cloud said, no new call. */
        ec_error err = {0};
        if (ec_infer_reply_decode(it->reply, it->reply_len, &p->reply, &err) != EC_OK)
            ec_pending_set_error(p, "internal", err.msg);
        p->has_reply = true;
        p->hop_start_ms = ec_mono_ms();
    }
    r->submit(r->submit_ctx, p);
    return true;
}

static void expire_item(ec_offline *r, ec_outbox_item *it)
{
    char detail[200];
    uint64_t waited = (ec_now_ms() - it->enqueued_ms) / 1000u;
    snprintf(detail, sizeof(detail), "expired after %llu s in the queue (%d tries)",
             (unsigned long long)waited, it->tries);
    ec_log_warn("queued escalation %s %s; the local draft stands", it->query_id, detail);
    queue_event(r, it->query_id, "expired", detail);
    /* Announced as revision 2 through egress; the decision row stays as it is. */
    ec_pending *p = ec_pending_new();
    if (p) {
        p->enc = (ec_encoding)it->encoding;
        p->response_topic = it->response_topic;
        p->corr = it->corr;
        p->corr_len = it->corr_len;
        p->asker = it->asker;
        it->response_topic = NULL;
        it->corr = NULL;
        it->asker = NULL;
        p->query.id = strdup(it->query_id);
        char reason[260];
        snprintf(reason, sizeof(reason), "the queued escalation %s; revision 1 stands", detail);
        ec_result *res = &p->res;
        res->id = strdup(it->query_id);
        res->revision = 2;
        res->degraded = true;
        res->confidence = -1;
        res->reason = strdup(reason);
        ec_wire_error_set(&res->error, "expired", detail);
        p->has_result = true;
        p->notice = true;
        p->stage = EC_STAGE_EGRESS;
        r->submit(r->submit_ctx, p);
    }
    ec_outbox_delete(r->ledger, it->id, NULL);
}

static void *replayer_main(void *arg)
{
    ec_thread_name("ec-replay");
    ec_offline *r = arg;
    while (!ec_service_stopping()) {
        pthread_mutex_lock(&r->lock);
        if (!r->wake) {
            struct timespec ts;
            ec_deadline_in(&ts, CFG(r)->replay_interval_ms);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        r->wake = false;
        pthread_mutex_unlock(&r->lock);
        if (ec_service_stopping())
            break;

        ec_outbox_item it;
        ec_error err = {0};
        while (ec_outbox_next_expired(r->ledger, ec_now_ms(), &it, &err) == EC_OK) {
            expire_item(r, &it);
            ec_outbox_item_clear(&it);
        }

        pthread_mutex_lock(&r->lock);
        bool busy = r->inflight > 0;
        r->failed = 0;
        pthread_mutex_unlock(&r->lock);
        if (busy)
            continue;
        int64_t after = 0;
        int sent = 0;
        /* At a budget cap nothing new is sent (the queue waits for the next
         * day or month); answers kept from before a crash cost nothing more. */
        bool can_spend = ec_controls_budget_allows(r->controls, NULL, 0);
        while (sent < REPLAY_WINDOW && ec_outbox_next(r->ledger, after, &it, &err) == EC_OK) {
            if (!it.answered && !can_spend) {
                ec_outbox_item_clear(&it);
                break;
            }
            after = it.id;
            if (replay_item(r, &it))
                sent++;
            ec_outbox_item_clear(&it);
        }
        if (!sent)
            continue;
        /* Wait for the round; go on at once if it all went through. */
        pthread_mutex_lock(&r->lock);
        while (r->inflight > 0 && !ec_service_stopping()) {
            struct timespec ts;
            ec_deadline_in(&ts, 200);
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        if (r->failed == 0)
            r->wake = true;
        pthread_mutex_unlock(&r->lock);
    }
    return NULL;
}

void ec_offline_on_breaker(ec_offline *r, const ec_mqtt_msg *msg)
{
    if (!msg->len)
        return; /* a cleared retained message */
    json_error_t je;
    json_t *j = json_loadb(msg->payload, msg->len, 0, &je);
    const char *tier = json_string_value(json_object_get(j, "tier"));
    const char *state = json_string_value(json_object_get(j, "state"));
    if (!tier || !state) {
        ec_log_warn("breaker status on %s is not readable; ignored", msg->topic);
        json_decref(j);
        return;
    }
    ec_metrics_breaker_state(r->metrics, tier, state,
                             (uint64_t)json_integer_value(json_object_get(j, "since_ms")),
                             json_string_value(json_object_get(j, "reason")));
    ec_error err = {0};
    if (r->ledger && ec_ledger_breaker_event(
                         r->ledger, (uint64_t)json_integer_value(json_object_get(j, "ts_ms")),
                         json_string_value(json_object_get(j, "instance")), tier,
                         json_string_value(json_object_get(j, "model")), state,
                         (int64_t)json_integer_value(json_object_get(j, "seq")),
                         json_string_value(json_object_get(j, "reason")), &err))
        ec_log_error("breaker transition of %s not recorded: %s", tier, err.msg);
    if (strcmp(state, "closed") == 0 || strcmp(state, "disabled") == 0)
        ec_offline_wake(r); /* the cloud is back: drain the queue now */
    json_decref(j);
}

void ec_offline_answered(ec_offline *r, const ec_pending *p, const void *reply, size_t len)
{
    /* Keep the cloud's answer before anything is published: a crash from
     * here on republishes it instead of calling (and paying) again. */
    ec_error e = {0};
    if (r->ledger && ec_outbox_answered(r->ledger, p->outbox_id, reply, len, &e))
        ec_log_error("queued escalation %s: %s", p->query.id, e.msg);
}

bool ec_offline_enabled(const ec_offline *r)
{
    return r->ledger && CFG(r)->offline_queue;
}

long ec_offline_depth(ec_offline *r)
{
    return r->ledger ? (long)ec_outbox_count(r->ledger) : -1;
}

ec_err ec_offline_create(ec_offline **out, ec_router_env *env, ec_ledger *ledger,
                         ec_controls *controls, ec_metrics *metrics, ec_submit_fn submit,
                         void *submit_ctx, ec_error *err)
{
    ec_offline *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    r->env = env;
    r->ledger = ledger;
    r->controls = controls;
    r->metrics = metrics;
    r->submit = submit;
    r->submit_ctx = submit_ctx;
    pthread_mutex_init(&r->lock, NULL);
    ec_cond_init_mono(&r->cond);
    *out = r;
    return EC_OK;
}

ec_err ec_offline_start(ec_offline *r, ec_error *err)
{
    if (!r->ledger)
        return EC_OK;
    if (pthread_create(&r->thread, NULL, replayer_main, r) != 0)
        return ec_error_set(err, EC_ERR_NOMEM, "router: cannot start the replay thread");
    r->started = true;
    return EC_OK;
}

void ec_offline_destroy(ec_offline *r)
{
    if (!r)
        return;
    if (r->started) {
        ec_offline_wake(r);
        pthread_join(r->thread, NULL);
    }
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->lock);
    free(r);
}
