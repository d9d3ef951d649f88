/* Paid answers without a waiting query (orphans.h). A short list: after a
 * restart it holds at most the hops the previous run had out. */
#include "orphans.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

struct ec_orphans {
    pthread_mutex_t lock;
    ec_orphan *head;
    size_t n;
};

ec_orphans *ec_orphans_create(void)
{
    ec_orphans *o = calloc(1, sizeof(*o));
    if (o)
        pthread_mutex_init(&o->lock, NULL);
    return o;
}

void ec_orphan_free(ec_orphan *x)
{
    if (!x)
        return;
    ec_infer_reply_clear(&x->rep);
    free(x);
}

void ec_orphans_destroy(ec_orphans *o)
{
    if (!o)
        return;
    for (ec_orphan *x = o->head, *next; x; x = next) {
        next = x->next;
        ec_log_warn("a paid reply for %s (%.6f USD) was never matched to its query; not recorded",
                    x->rep.id, x->rep.cost_usd);
        ec_orphan_free(x);
    }
    pthread_mutex_destroy(&o->lock);
    free(o);
}

void ec_orphans_put(ec_orphans *o, ec_infer_reply *rep)
{
    if (!rep->id)
        return;
    ec_orphan *x = calloc(1, sizeof(*x));
    if (!x) {
        ec_log_error("out of memory: a paid reply for %s (%.6f USD) not kept", rep->id,
                     rep->cost_usd);
        return;
    }
    x->rep = *rep;
    memset(rep, 0, sizeof(*rep));
    x->kept_ms = ec_mono_ms();
    pthread_mutex_lock(&o->lock);
    x->next = o->head;
    o->head = x;
    o->n++;
    pthread_mutex_unlock(&o->lock);
}

/* Under the lock: unlinks the entries match() selects, oldest first. */
static ec_orphan *unlink_if(ec_orphans *o, bool (*match)(const ec_orphan *, const void *),
                            const void *arg, bool first_only)
{
    ec_orphan *out = NULL;
    ec_orphan **pp = &o->head;
    while (*pp) {
        ec_orphan *x = *pp;
        if (match(x, arg)) {
            *pp = x->next;
            o->n--;
            x->next = out;
            out = x;
            if (first_only)
                break;
        } else {
            pp = &x->next;
        }
    }
    return out;
}

typedef struct key {
    const char *id;
    uint32_t ti;
    bool any_tier;
    double before_ms;
} key;

static bool by_key(const ec_orphan *x, const void *arg)
{
    const key *k = arg;
    if (k->id)
        return strcmp(x->rep.id, k->id) == 0 && (k->any_tier || x->rep.tier_index == k->ti);
    return x->kept_ms < k->before_ms;
}

bool ec_orphans_take(ec_orphans *o, const char *id, uint32_t ti, ec_infer_reply *out)
{
    key k = {.id = id, .ti = ti};
    pthread_mutex_lock(&o->lock);
    ec_orphan *x = o->n ? unlink_if(o, by_key, &k, true) : NULL;
    pthread_mutex_unlock(&o->lock);
    if (!x)
        return false;
    *out = x->rep;
    free(x);
    return true;
}

ec_orphan *ec_orphans_take_all(ec_orphans *o, const char *id)
{
    key k = {.id = id, .any_tier = true};
    pthread_mutex_lock(&o->lock);
    ec_orphan *x = o->n ? unlink_if(o, by_key, &k, false) : NULL;
    pthread_mutex_unlock(&o->lock);
    return x;
}

ec_orphan *ec_orphans_take_stale(ec_orphans *o, double now_ms, double keep_ms)
{
    key k = {.before_ms = now_ms - keep_ms};
    pthread_mutex_lock(&o->lock);
    ec_orphan *x = o->n ? unlink_if(o, by_key, &k, false) : NULL;
    pthread_mutex_unlock(&o->lock);
    return x;
}

size_t ec_orphans_count(ec_orphans *o)
{
    pthread_mutex_lock(&o->lock);
    size_t n = o->n;
    pthread_mutex_unlock(&o->lock);
    return n;
}

void ec_orphan_attempt(const ec_orphan *x, ec_attempt *a)
{
    memset(a, 0, sizeof(*a));
    a->tier_index = x->rep.tier_index;
    a->tier = ec_strdup0(x->rep.tier);
    a->model = ec_strdup0(x->rep.model);
    a->confidence = -1;
    a->latency_ms = x->rep.latency_ms;
    a->cost_usd = x->rep.cost_usd;
    a->tokens_in = x->rep.tokens_in;
    a->tokens_out = x->rep.tokens_out;
    a->reason = strdup("paid before the router restarted (or after its hop timed out); the answer "
                       "was not used");
    if (x->rep.error.code)
        ec_wire_error_set(&a->error, x->rep.error.code,
                          x->rep.error.message ? x->rep.error.message : "");
}
