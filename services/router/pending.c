#include "pending.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "edgecascade/util.h"

struct ec_pending_table {
    pthread_mutex_t lock;
    ec_pending **buckets;
    size_t mask;
    size_t count;
    /* No hop ends before this (a lower bound, exact after each sweep): the
     * sweeper, every 50 ms, walks the buckets only when one may have. */
    double earliest_ms;
};

ec_pending_table *ec_pending_table_create(size_t buckets)
{
    size_t n = 64;
    while (n < buckets)
        n *= 2;
    ec_pending_table *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->buckets = calloc(n, sizeof(*t->buckets));
    if (!t->buckets) {
        free(t);
        return NULL;
    }
    t->mask = n - 1;
    pthread_mutex_init(&t->lock, NULL);
    return t;
}

static void free_msgs(ec_chat_msg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].role);
        free(m[i].content);
    }
    free(m);
}

/* Freed flights kept for the next query. At 2.3 kB an ec_pending is a large
 * request to glibc: each calloc consolidated its fast bins and searched its
 * sorted bins, about 3,300 instructions a query (bench/instr). One pool for
 * the process, not one per thread: a query is mostly taken by one worker and
 * its model's reply by the other, so spares per thread filled up on the
 * worker that frees and stayed empty on the one that allocates (350 of 367
 * flights came from calloc). */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0 /* each flight freed, so that ASan sees a use after free */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_MAX 0
#endif
#endif
#ifndef SPARE_MAX
#define SPARE_MAX 32
#endif

static pthread_mutex_t spare_lock = PTHREAD_MUTEX_INITIALIZER;
static ec_pending *spare_head;
static size_t spare_n;

static ec_pending *spare_take(void)
{
    pthread_mutex_lock(&spare_lock);
    ec_pending *p = spare_head;
    if (p) {
        spare_head = p->next;
        spare_n--;
    }
    pthread_mutex_unlock(&spare_lock);
    return p;
}

/* false when the pool is full: the caller frees p. */
static bool spare_keep(ec_pending *p)
{
#if SPARE_MAX == 0
    (void)p;
    return false;
#else
    pthread_mutex_lock(&spare_lock);
    bool kept = spare_n < SPARE_MAX;
    if (kept) {
        p->next = spare_head;
        spare_head = p;
        spare_n++;
    }
    pthread_mutex_unlock(&spare_lock);
    return kept;
#endif
}

/* The pool's flights go with the process (a leak checker sees none). */
__attribute__((destructor)) static void spares_release(void)
{
    while (spare_head) {
        ec_pending *next = spare_head->next;
        free(spare_head);
        spare_head = next;
    }
    spare_n = 0;
}

ec_pending *ec_pending_new(void)
{
    ec_pending *p = spare_take();
    if (p) {
        memset(p, 0, sizeof(*p));
    } else if (!(p = calloc(1, sizeof(*p)))) {
        return NULL;
    }
    p->stage = EC_STAGE_INGRESS;
    p->best = -1;
    p->revision = 1;
    return p;
}

static void outcome_clear(ec_outcome *o)
{
    free(o->reason);
    free(o->err_code);
    free(o->err_msg);
    memset(o, 0, sizeof(*o));
}

void ec_pending_conclude(ec_pending *p, int answer_attempt, bool degraded, const char *reason,
                         const char *err_code, const char *err_msg)
{
    outcome_clear(&p->out);
    p->out.answer_attempt = answer_attempt;
    p->out.degraded = degraded;
    p->out.reason = ec_strdup0(reason);
    p->out.err_code = ec_strdup0(err_code);
    p->out.err_msg = err_code ? strdup(err_msg ? err_msg : "") : NULL;
    p->stage = EC_STAGE_EGRESS;
}

void ec_pending_fail(ec_pending *p, const char *code, const char *msg)
{
    char reason[300];
    snprintf(reason, sizeof(reason), "not answered: %s", code);
    ec_pending_conclude(p, -1, false, reason, code, msg);
}

void ec_pending_copy_attempt(ec_attempt *dst, const ec_attempt *src)
{
    *dst = *src;
    dst->tier = ec_strdup0(src->tier);
    dst->model = ec_strdup0(src->model);
    dst->reason = ec_strdup0(src->reason);
    memset(&dst->error, 0, sizeof(dst->error));
    if (src->error.code)
        ec_wire_error_set(&dst->error, src->error.code,
                          src->error.message ? src->error.message : "");
}

void ec_pending_set_error(ec_pending *p, const char *code, const char *msg)
{
    ec_infer_reply_clear(&p->reply);
    ec_wire_error_set(&p->reply.error, code, msg);
    p->has_reply = true;
}

void ec_pending_free(ec_pending *p)
{
    if (!p)
        return;
    outcome_clear(&p->out);
    ec_result_clear(&p->res);
    ec_infer_reply_clear(&p->reply);
    ec_pending_free(p->spawn);
    ec_query_clear(&p->query);
    free_msgs(p->masked, p->n_masked);
    free(p->cache_key);
    ec_cache_hit_clear(p->cached);
    free(p->cached);
    free(p->response_topic);
    free(p->asker);
    free(p->corr);
    ec_mqtt_userprops_free(p->user_props, p->n_user_props);
    for (size_t i = 0; i < p->n_attempts; i++) {
        ec_attempt_clear(&p->attempts[i]);
        free(p->details[i].answer);
        free(p->details[i].finish_reason);
        free(p->details[i].sent);
    }
    if (!spare_keep(p))
        free(p);
}

void ec_pending_table_destroy(ec_pending_table *t)
{
    if (!t)
        return;
    for (size_t i = 0; i <= t->mask; i++) {
        ec_pending *p = t->buckets[i];
        while (p) {
            ec_pending *next = p->next;
            ec_pending_free(p);
            p = next;
        }
    }
    pthread_mutex_destroy(&t->lock);
    free(t->buckets);
    free(t);
}

static size_t slot(const ec_pending_table *t, uint64_t key)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & t->mask;
}

void ec_pending_put(ec_pending_table *t, ec_pending *p)
{
    pthread_mutex_lock(&t->lock);
    size_t s = slot(t, p->key);
    p->next = t->buckets[s];
    t->buckets[s] = p;
    t->count++;
    if (t->count == 1 || p->hop_deadline_ms < t->earliest_ms)
        t->earliest_ms = p->hop_deadline_ms;
    pthread_mutex_unlock(&t->lock);
}

ec_pending *ec_pending_take(ec_pending_table *t, uint64_t key)
{
    pthread_mutex_lock(&t->lock);
    ec_pending **pp = &t->buckets[slot(t, key)];
    while (*pp && (*pp)->key != key)
        pp = &(*pp)->next;
    ec_pending *p = *pp;
    if (p) {
        *pp = p->next;
        p->next = NULL;
        t->count--;
    }
    pthread_mutex_unlock(&t->lock);
    return p;
}

bool ec_pending_peek(ec_pending_table *t, uint64_t key, int *tier, int64_t *journal_id)
{
    pthread_mutex_lock(&t->lock);
    ec_pending *p = t->buckets[slot(t, key)];
    while (p && p->key != key)
        p = p->next;
    if (p) {
        *tier = p->tier;
        *journal_id = p->journal_id;
    }
    pthread_mutex_unlock(&t->lock);
    return p != NULL;
}

ec_pending *ec_pending_take_expired(ec_pending_table *t, double now_ms)
{
    ec_pending *out = NULL;
    pthread_mutex_lock(&t->lock);
    if (t->count == 0 || now_ms < t->earliest_ms) {
        pthread_mutex_unlock(&t->lock);
        return NULL;
    }
    double earliest = 0;
    bool any = false;
    for (size_t i = 0; i <= t->mask; i++) {
        ec_pending **pp = &t->buckets[i];
        while (*pp) {
            ec_pending *p = *pp;
            if (p->hop_deadline_ms <= now_ms) {
                *pp = p->next;
                p->next = out;
                out = p;
                t->count--;
            } else {
                if (!any || p->hop_deadline_ms < earliest)
                    earliest = p->hop_deadline_ms;
                any = true;
                pp = &p->next;
            }
        }
    }
    t->earliest_ms = earliest;
    pthread_mutex_unlock(&t->lock);
    return out;
}

size_t ec_pending_count(ec_pending_table *t)
{
    pthread_mutex_lock(&t->lock);
    size_t n = t->count;
    pthread_mutex_unlock(&t->lock);
    return n;
}
