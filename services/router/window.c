#include "window.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

/* One asker's waiting queries, oldest first, chained through next; the
 * lanes with any form a ring the slots go round. */
typedef struct lane {
    struct lane *prev, *next; /* the ring */
    char *asker;              /* NULL: the queries without identity */
    ec_pending *head, *tail;
    size_t n;
    int weight; /* slots per turn (the newest query's p->weight) */
    int credit; /* slots left in the current turn */
} lane;

struct ec_window {
    pthread_mutex_t lock;
    size_t inflight;
    lane *cur; /* whose turn it is; NULL when none waits */
    size_t waiting;
    /* How long a query holds a slot (its local hop: the model's service
     * time, queueing inside the local service included): a moving average
     * over every hop that ended, 0 until one did. With `limit` slots the
     * window frees one every hold_ms / limit, which is the pace the queue
     * ahead of a newcomer drains at. (An average of the gaps between hop
     * ends, used before, was thrown by hops ending in clumps and by a single
     * stall: it judged a burst that cleared in 0.7 s to be 4 s behind.) */
    double hold_ms;
    /* when a slot last changed hands, or queries began to wait */
    double moved_ms;
    size_t limit; /* the last limit a caller passed */
};

ec_window *ec_window_create(void)
{
    ec_window *w = calloc(1, sizeof(*w));
    if (w)
        pthread_mutex_init(&w->lock, NULL);
    return w;
}

static bool same_asker(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

/* Under the lock: the lane of asker, or NULL. */
static lane *find_lane(ec_window *w, const char *asker)
{
    lane *l = w->cur;
    if (!l)
        return NULL;
    do {
        if (same_asker(l->asker, asker))
            return l;
        l = l->next;
    } while (l != w->cur);
    return NULL;
}

/* Under the lock: takes l (empty) out of the ring. */
static void drop_lane(ec_window *w, lane *l)
{
    if (!l->next || l->next == l) { /* the last lane (next is never NULL in the ring) */
        w->cur = NULL;
    } else {
        l->prev->next = l->next;
        l->next->prev = l->prev;
        if (w->cur == l) {
            w->cur = l->next;
            w->cur->credit = w->cur->weight;
        }
    }
    free(l->asker);
    free(l);
}

void ec_window_destroy(ec_window *w)
{
    if (!w)
        return;
    while (w->cur) {
        lane *l = w->cur;
        for (ec_pending *p = l->head, *next; p; p = next) {
            next = p->next;
            ec_pending_free(p);
        }
        l->head = NULL;
        drop_lane(w, l);
    }
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Under the lock: the next waiting query, given a slot. */
static ec_pending *pop_with_slot(ec_window *w, size_t limit)
{
    if (!w->cur || w->inflight >= limit)
        return NULL;
    lane *l = w->cur;
    ec_pending *p = l->head;
    l->head = p->next;
    if (!l->head)
        l->tail = NULL;
    l->n--;
    w->waiting--;
    p->next = NULL;
    p->windowed = true;
    p->slot_ms = ec_mono_ms();
    w->moved_ms = p->slot_ms;
    w->inflight++;
    if (!l->n) {
        drop_lane(w, l);
    } else if (--l->credit <= 0) {
        w->cur = l->next;
        w->cur->credit = w->cur->weight;
    }
    return p;
}

/* Under the lock: a new lane for asker, last in the ring (just before
 * cur), or NULL when out of memory. */
static lane *add_lane(ec_window *w, const char *asker, int weight, double now)
{
    lane *l = calloc(1, sizeof(*l));
    if (!l)
        return NULL;
    if (asker && !(l->asker = strdup(asker))) {
        free(l);
        return NULL;
    }
    l->weight = weight;
    if (!w->cur) {
        l->prev = l->next = l;
        l->credit = weight;
        w->cur = l;
        w->moved_ms = now; /* waiting starts now */
    } else {
        l->next = w->cur;
        l->prev = w->cur->prev;
        l->prev->next = l;
        w->cur->prev = l;
    }
    return l;
}

bool ec_window_enter(ec_window *w, ec_pending *p, size_t limit)
{
    pthread_mutex_lock(&w->lock);
    w->limit = limit;
    double now = ec_mono_ms();
    int weight = p->weight > 0 ? p->weight : 1;
    lane *l = NULL;
    /* A slot now only when nobody waits; out of memory for a lane, the
     * query is sent past the window rather than lost. */
    if ((!w->cur && w->inflight < limit) ||
        !((l = find_lane(w, p->asker)) || (l = add_lane(w, p->asker, weight, now)))) {
        w->inflight++;
        p->windowed = true;
        p->slot_ms = now;
        w->moved_ms = now;
        pthread_mutex_unlock(&w->lock);
        return true;
    }
    l->weight = weight;
    p->next = NULL;
    p->held_ms = now;
    if (l->tail)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->n++;
    w->waiting++;
    pthread_mutex_unlock(&w->lock);
    return false;
}

ec_pending *ec_window_leave(ec_window *w, ec_pending *p, size_t limit)
{
    if (!p->windowed)
        return NULL;
    p->windowed = false;
    double now = ec_mono_ms();
    double held = now - p->slot_ms;
    pthread_mutex_lock(&w->lock);
    if (limit)
        w->limit = limit;
    if (held >= 0)
        w->hold_ms = w->hold_ms > 0 ? 0.8 * w->hold_ms + 0.2 * held : held;
    if (w->inflight > 0)
        w->inflight--;
    w->moved_ms = now;
    ec_pending *next = pop_with_slot(w, limit);
    pthread_mutex_unlock(&w->lock);
    return next;
}

ec_pending *ec_window_admit(ec_window *w, size_t limit)
{
    pthread_mutex_lock(&w->lock);
    w->limit = limit;
    ec_pending *p = pop_with_slot(w, limit);
    pthread_mutex_unlock(&w->lock);
    return p;
}

ec_pending *ec_window_take_stale(ec_window *w, double now_ms,
                                 double (*max_wait_ms)(void *ctx, const ec_pending *p), void *ctx)
{
    ec_pending *out = NULL, **tail = &out;
    pthread_mutex_lock(&w->lock);
    size_t lanes = 0;
    for (lane *l = w->cur; l && (lanes == 0 || l != w->cur); l = l->next)
        lanes++;
    lane *l = w->cur;
    for (size_t i = 0; i < lanes; i++) {
        lane *next_lane = l->next;
        ec_pending **pp = &l->head, *prev = NULL;
        while (*pp) {
            ec_pending *p = *pp;
            if (now_ms - p->held_ms > max_wait_ms(ctx, p)) {
                *pp = p->next;
                l->n--;
                w->waiting--;
                p->next = NULL;
                *tail = p;
                tail = &p->next;
            } else {
                prev = p;
                pp = &p->next;
            }
        }
        l->tail = prev;
        if (!l->n)
            drop_lane(w, l);
        l = next_lane;
    }
    pthread_mutex_unlock(&w->lock);
    return out;
}

double ec_window_behind_ms(ec_window *w, const char *asker, int weight, double now_ms)
{
    pthread_mutex_lock(&w->lock);
    double stalled = w->cur ? now_ms - w->moved_ms : 0;
    lane *mine = find_lane(w, asker);
    size_t wt = weight > 0 ? (size_t)weight : 1;
    size_t own = mine ? mine->n : 0;
    size_t rounds = (own + wt) / wt; /* ceil((own + 1) / wt) */
    size_t ahead = own;
    lane *l = w->cur;
    do {
        if (l && l != mine) {
            size_t turns = rounds * (size_t)l->weight;
            ahead += l->n < turns ? l->n : turns;
        }
        l = l ? l->next : NULL;
    } while (l && l != w->cur);
    size_t slots = w->limit ? w->limit : 1;
    double queued = (double)ahead * w->hold_ms / (double)slots;
    pthread_mutex_unlock(&w->lock);
    return stalled > queued ? stalled : queued;
}

double ec_window_hold_ms(ec_window *w)
{
    pthread_mutex_lock(&w->lock);
    double h = w->hold_ms;
    pthread_mutex_unlock(&w->lock);
    return h;
}

size_t ec_window_waiting(ec_window *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->waiting;
    pthread_mutex_unlock(&w->lock);
    return n;
}

size_t ec_window_inflight(ec_window *w)
{
    pthread_mutex_lock(&w->lock);
    size_t n = w->inflight;
    pthread_mutex_unlock(&w->lock);
    return n;
}
