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

/* Freed flights kept for the next query, per thread. At 2.3 kB an
 * ec_pending is a large request to glibc: each calloc consolidated its fast
 * bins and searched its sorted bins, about 4,000 instructions a query. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0 /* each flight freed, so that ASan sees a use after free */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SPARE_MAX 0
#endif
#endif
#ifndef SPARE_MAX
#define SPARE_MAX 16
#endif

typedef struct spares {
    ec_pending *head;
    size_t n;
} spares;

static pthread_key_t spare_key;
static pthread_once_t spare_once = PTHREAD_ONCE_INIT;
static bool spare_key_ok;

static void spares_destroy(void *arg)
{
    spares *s = arg;
    while (s->head) {
        ec_pending *next = s->head->next;
        free(s->head);
        s->head = next;
    }
    free(s);
}

static void spare_key_make(void)
{
    spare_key_ok = pthread_key_create(&spare_key, spares_destroy) == 0;
}

/* This thread's spares, created on first use when create; NULL without. */
static spares *thread_spares(bool create)
{
    pthread_once(&spare_once, spare_key_make);
    if (!spare_key_ok)
        return NULL;
    spares *s = pthread_getspecific(spare_key);
    if (s || !create)
        return s;
    s = calloc(1, sizeof(*s));
    if (s && pthread_setspecific(spare_key, s) != 0) {
        free(s);
        s = NULL;
    }
    return s;
}

ec_pending *ec_pending_new(void)
{
    spares *s = thread_spares(false);
    ec_pending *p = s ? s->head : NULL;
    if (p) {
        s->head = p->next;
        s->n--;
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
    spares *s = thread_spares(true);
    if (s && s->n + 1 <= SPARE_MAX) {
        p->next = s->head;
        s->head = p;
        s->n++;
        return;
    }
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
