/* Resilience around the cascade: the arrival journal, the offline queue of
 * escalations (store-and-forward) and the relay's breaker transitions.
 *
 * Offline queue: when the cloud tier fails for outage reasons (breaker open,
 * timeouts, 5xx) and the query's policy is auto, its escalation goes into the
 * ledger's outbox before the caller gets the local draft (degraded). The
 * replay thread retries the queue every router.replay_interval_ms, and at
 * once when the relay reports a breaker closed: up to REPLAY_WINDOW items at
 * a time, oldest first, through the normal dispatch path. A success publishes
 * revision 2 of the same Result (same id, Response Topic and Correlation
 * Data) and updates the query's decision row; a failure leaves the item queued
 * and ends the round. Expired items (router.queue_ttl_s, or the query's MQTT
 * Message Expiry when shorter) are removed, recorded and announced with a
 * revision 2 carrying error "expired". While a budget cap is reached
 * (budget.*) the queue is not replayed; items still expire. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "router_internal.h"

static void queue_event(ec_router *r, const char *query_id, const char *event, const char *detail)
{
    ec_error err = {0};
    if (ec_ledger_queue_event(r->ledger, query_id, event, detail, &err))
        ec_log_error("queue event %s for %s not recorded: %s", event, query_id, err.msg);
}

bool ec_router_enqueue(ec_router *r, ec_pending *p, int ti, ec_error *err)
{
    ec_buf q;
    ec_buf_init(&q, EC_MAX_PAYLOAD);
    if (ec_query_encode(&p->query, &q, err) != EC_OK) {
        ec_buf_free(&q);
        return false;
    }
    uint64_t now = ec_now_ms();
    uint64_t ttl_s = r->cfg->queue_ttl_s;
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
        .corr = p->corr,
        .corr_len = p->corr_len,
    };
    for (size_t i = 0; i < p->n_attempts; i++)
        it.prior_cost_usd += p->attempts[i].cost_usd;
    char *dropped = NULL;
    bool drop_oldest = r->cfg->queue_full && strcmp(r->cfg->queue_full, "drop_oldest") == 0;
    ec_err rc = ec_outbox_push(r->ledger, &it, r->cfg->queue_max, drop_oldest, &dropped, err);
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
    snprintf(detail, sizeof(detail), "tier '%s', expires in %llu s", r->cfg->tiers[ti].name,
             (unsigned long long)ttl_s);
    queue_event(r, p->query.id, "queued", detail);
    ec_log_info("escalation of %s queued (%zu waiting)", p->query.id, ec_outbox_count(r->ledger));
    return true;
}

void ec_router_replay_done(ec_router *r, ec_pending *p, bool ok)
{
    ec_error err = {0};
    if (ok) {
        if (ec_outbox_delete(r->ledger, p->outbox_id, &err))
            ec_log_error("replayed escalation %s stays in the queue: %s", p->query.id, err.msg);
        queue_event(r, p->query.id, "replayed", NULL);
    } else if (ec_outbox_tried(r->ledger, p->outbox_id, &err)) {
        ec_log_error("queued escalation %s: %s", p->query.id, err.msg);
    }
    pthread_mutex_lock(&r->replay_lock);
    r->replay_inflight--;
    if (!ok)
        r->replay_failed++;
    pthread_cond_broadcast(&r->replay_cond);
    pthread_mutex_unlock(&r->replay_lock);
    ec_pending_free(p);
}

void ec_router_replay_wake(ec_router *r)
{
    pthread_mutex_lock(&r->replay_lock);
    r->replay_wake = true;
    pthread_cond_broadcast(&r->replay_cond);
    pthread_mutex_unlock(&r->replay_lock);
}

/* Rebuilds the in-flight state of a queued escalation. NULL when it cannot be
 * read back (then it is dropped and recorded). */
static ec_pending *revive(ec_router *r, ec_outbox_item *it)
{
    ec_error err = {0};
    ec_pending *p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    if (ec_query_decode(it->query, it->query_len, &p->query, &err) != EC_OK ||
        it->tier_index >= r->cfg->n_tiers) {
        ec_log_error("queued escalation %s cannot be replayed (%s); dropped", it->query_id,
                     err.msg[0] ? err.msg : "its tier is no longer configured");
        queue_event(r, it->query_id, "dropped", "unreadable or tier gone");
        ec_outbox_delete(r->ledger, it->id, NULL);
        ec_pending_free(p);
        return NULL;
    }
    p->best = -1;
    p->ts_ms = it->arrived_ms;
    p->arrived_ms = it->arrived_ms;
    p->t0_ms = ec_mono_ms();
    p->deadline_ms = p->t0_ms + r->cfg->tiers[it->tier_index].timeout_ms;
    p->enc = (ec_encoding)it->encoding;
    p->response_topic = it->response_topic;
    p->corr = it->corr;
    p->corr_len = it->corr_len;
    it->response_topic = NULL;
    it->corr = NULL;
    p->revision = 2;
    p->outbox_id = it->id;
    p->prior_cost_usd = it->prior_cost_usd;
    p->left_device = true;
    ec_gate_classify(r->gate, &p->query, &p->gq);
    return p;
}

/* Sends one queued escalation on its way; false when it was not sent. */
static bool replay_item(ec_router *r, ec_outbox_item *it)
{
    ec_pending *p = revive(r, it);
    if (!p)
        return false;
    pthread_mutex_lock(&r->replay_lock);
    r->replay_inflight++;
    pthread_mutex_unlock(&r->replay_lock);
    if (it->answered) {
        /* Answered before a crash: publish what the cloud said, no new call. */
        ec_infer_reply rep = {0};
        ec_error err = {0};
        if (ec_infer_reply_decode(it->reply, it->reply_len, &rep, &err) != EC_OK)
            ec_wire_error_set(&rep.error, "internal", err.msg);
        p->tier = (int)it->tier_index;
        p->hop_start_ms = ec_mono_ms();
        ec_router_judge(r, p, &rep);
        ec_infer_reply_clear(&rep);
    } else {
        ec_router_dispatch(r, p, (int)it->tier_index);
    }
    return true;
}

static void expire_item(ec_router *r, ec_outbox_item *it)
{
    char detail[200];
    uint64_t waited = (ec_now_ms() - it->enqueued_ms) / 1000u;
    snprintf(detail, sizeof(detail), "expired after %llu s in the queue (%d tries)",
             (unsigned long long)waited, it->tries);
    ec_log_warn("queued escalation %s %s; the local draft stands", it->query_id, detail);
    queue_event(r, it->query_id, "expired", detail);
    ec_pending p = {.enc = (ec_encoding)it->encoding,
                    .response_topic = it->response_topic,
                    .corr = it->corr,
                    .corr_len = it->corr_len};
    ec_result res = {.id = it->query_id, .revision = 2, .degraded = true, .confidence = -1};
    char reason[260];
    snprintf(reason, sizeof(reason), "the queued escalation %s; revision 1 stands", detail);
    res.reason = reason;
    res.error.code = "expired";
    res.error.message = detail;
    ec_router_publish_result(r, &p, &res);
    ec_outbox_delete(r->ledger, it->id, NULL);
}

void *ec_router_replayer_main(void *arg)
{
    ec_router *r = arg;
    while (!ec_service_stopping()) {
        pthread_mutex_lock(&r->replay_lock);
        if (!r->replay_wake) {
            struct timespec ts;
            ec_deadline_in(&ts, r->cfg->replay_interval_ms);
            pthread_cond_timedwait(&r->replay_cond, &r->replay_lock, &ts);
        }
        r->replay_wake = false;
        pthread_mutex_unlock(&r->replay_lock);
        if (ec_service_stopping())
            break;

        ec_outbox_item it;
        ec_error err = {0};
        while (ec_outbox_next_expired(r->ledger, ec_now_ms(), &it, &err) == EC_OK) {
            expire_item(r, &it);
            ec_outbox_item_clear(&it);
        }

        pthread_mutex_lock(&r->replay_lock);
        bool busy = r->replay_inflight > 0;
        r->replay_failed = 0;
        pthread_mutex_unlock(&r->replay_lock);
        if (busy)
            continue;
        int64_t after = 0;
        int sent = 0;
        /* At a budget cap nothing new is sent (the queue waits for the next
         * day or month); answers kept from before a crash cost nothing more. */
        bool can_spend = ec_router_budget_allows(r, NULL, 0);
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
        pthread_mutex_lock(&r->replay_lock);
        while (r->replay_inflight > 0 && !ec_service_stopping()) {
            struct timespec ts;
            ec_deadline_in(&ts, 200);
            pthread_cond_timedwait(&r->replay_cond, &r->replay_lock, &ts);
        }
        if (r->replay_failed == 0)
            r->replay_wake = true;
        pthread_mutex_unlock(&r->replay_lock);
    }
    return NULL;
}

void ec_router_on_breaker(ec_router *r, const ec_mqtt_msg *msg)
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
        ec_router_replay_wake(r); /* the cloud is back: drain the queue now */
    json_decref(j);
}

void ec_router_journal_arrival(ec_router *r, ec_mqtt_msg *msg)
{
    if (!r->cfg->journal || !r->journal)
        return;
    ec_error err = {0};
    if (ec_journal_add(r->journal, msg, &err))
        ec_log_error("query on %s not journaled (a crash now would lose it): %s", msg->topic,
                     err.msg);
    else if (msg->tag < 0)
        ec_log_info("query on %s redelivered by the broker after we took it; not run twice",
                    msg->topic);
}

/* The decision writer's commit hook (its thread): those rows are done. */
static void on_decided(void *ctx, const int64_t *ids, size_t n)
{
    ec_router *r = ctx;
    ec_error err = {0};
    if (ec_journal_done(r->journal, ids, n, &err))
        ec_log_error("%zu decided queries stay in the journal (checked again at start): %s", n,
                     err.msg);
}

typedef struct load_ctx {
    ec_router *r;
    int64_t *decided; /* rows whose decision is in the log: only the delete was lost */
    size_t n_decided;
    size_t n_adopted;
} load_ctx;

static void keep(void *ctx, ec_mqtt_msg *m)
{
    load_ctx *lc = ctx;
    ec_router *r = lc->r;
    bool found = false;
    ec_error err = {0};
    if (ec_store_decided(r->store, m->tag_ms, m->tag, &found, &err))
        ec_log_warn("journaled query %lld re-run: %s", (long long)m->tag, err.msg);
    if (found) {
        int64_t *grown = realloc(lc->decided, (lc->n_decided + 1) * sizeof(*grown));
        if (grown) {
            lc->decided = grown;
            lc->decided[lc->n_decided++] = m->tag;
        }
        ec_mqtt_msg_free(m);
        return;
    }
    ec_mqtt_msg **grown = realloc(r->recovered, (r->n_recovered + 1) * sizeof(*grown));
    if (!grown) {
        ec_log_error("out of memory: journaled query %lld not re-run", (long long)m->tag);
        ec_mqtt_msg_free(m);
        return;
    }
    r->recovered = grown;
    r->recovered[r->n_recovered++] = m;
}

/* A row an older build left in the decision log's file: journaled anew. */
static void adopt(void *ctx, ec_mqtt_msg *m)
{
    load_ctx *lc = ctx;
    ec_error err = {0};
    m->dup = false;
    if (ec_journal_add(lc->r->journal, m, &err))
        ec_log_error("query %lld from the old journal not kept: %s", (long long)m->tag, err.msg);
    else
        lc->n_adopted++;
    ec_mqtt_msg_free(m);
}

ec_err ec_router_journal_load(ec_router *r, ec_error *err)
{
    ec_err rc = ec_journal_open(&r->journal, r->cfg->db_path, err);
    if (rc)
        return rc;
    load_ctx lc = {.r = r};
    if ((rc = ec_ledger_take_old_journal(r->ledger, adopt, &lc, NULL, err)))
        return rc;
    if (lc.n_adopted)
        ec_log_info("%zu queries moved from the old journal in the decision log", lc.n_adopted);
    /* Read before the broker connection exists: whatever arrives after that
     * is journaled anew and must not be run twice. */
    rc = ec_journal_each(r->journal, keep, &lc, NULL, err);
    if (rc == EC_OK && lc.n_decided) {
        ec_log_info("%zu journaled queries were already decided before the last stop",
                    lc.n_decided);
        rc = ec_journal_done(r->journal, lc.decided, lc.n_decided, err);
    }
    free(lc.decided);
    if (rc == EC_OK)
        ec_store_on_commit(r->store, on_decided, r);
    return rc;
}

void ec_router_journal_replay(ec_router *r)
{
    if (r->n_recovered)
        ec_log_warn("re-running %zu queries journaled before the last stop", r->n_recovered);
    for (size_t i = 0; i < r->n_recovered; i++) {
        ec_router_on_query(r, r->recovered[i]);
        ec_mqtt_msg_free(r->recovered[i]);
    }
    free(r->recovered);
    r->recovered = NULL;
    r->n_recovered = 0;
}
