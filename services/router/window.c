#include "window.h"

#include <pthread.h>
#include <stdlib.h>

#include "edgecascade/util.h"

struct ec_window {
    pthread_mutex_t lock;
    size_t inflight;
    ec_pending *head, *tail; /* waiting, oldest first, chained through next */
    size_t waiting;
    /* How long a query holds a slot (its local hop: the model's service
     * time, queueing inside the local service included): a moving average
     * over every hop that ended, 0 until one did. With `limit` slots the
     * window frees one every hold_ms / limit, which is the pace the queue
     * ahead of a newcomer drains at. (An average of the gaps between hop
     * ends, used before, was thrown by hops ending in clumps and by a single
     * stall: it judged a burst that cleared in 0.7 s to be 4 s behind.) */
    double hold_ms;
    size_t limit; /* the last limit a caller passed */
};

ec_window *ec_window_create(void)
{
    ec_window *w = calloc(1, sizeof(*w));
    if (w)
        pthread_mutex_init(&w->lock, NULL);
    return w;
}

void ec_window_destroy(ec_window *w)
{
    if (!w)
        return;
    ec_pending *p = w->head;
    while (p) {
        ec_pending *next = p->next;
        ec_pending_free(p);
        p = next;
    }
    pthread_mutex_destroy(&w->lock);
    free(w);
}

/* Under the lock: the oldest waiting query, given a slot. */
static ec_pending *pop_with_slot(ec_window *w, size_t limit)
{
    if (!w->head || w->inflight >= limit)
        return NULL;
    ec_pending *p = w->head;
    w->head = p->next;
    if (!w->head)
        w->tail = NULL;
    w->waiting--;
    p->next = NULL;
    p->windowed = true;
    p->slot_ms = ec_mono_ms();
    w->inflight++;
    return p;
}

bool ec_window_enter(ec_window *w, ec_pending *p, size_t limit)
{
    pthread_mutex_lock(&w->lock);
    w->limit = limit;
    bool now = !w->head && w->inflight < limit;
    if (now) {
        w->inflight++;
        p->windowed = true;
        p->slot_ms = ec_mono_ms();
    } else {
        p->next = NULL;
        p->held_ms = ec_mono_ms();
        if (w->tail)
            w->tail->next = p;
        else
            w->head = p;
        w->tail = p;
        w->waiting++;
    }
    pthread_mutex_unlock(&w->lock);
    return now;
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
    ec_pending **pp = &w->head, *prev = NULL;
    while (*pp) {
        ec_pending *p = *pp;
        if (now_ms - p->held_ms > max_wait_ms(ctx, p)) {
            *pp = p->next;
            w->waiting--;
            p->next = NULL;
            *tail = p;
            tail = &p->next;
        } else {
            prev = p;
            pp = &p->next;
        }
    }
    w->tail = prev;
    pthread_mutex_unlock(&w->lock);
    return out;
}

double ec_window_behind_ms(ec_window *w, double now_ms)
{
    pthread_mutex_lock(&w->lock);
    double oldest = w->head ? now_ms - w->head->held_ms : 0;
    size_t slots = w->limit ? w->limit : 1;
    double queued = (double)w->waiting * w->hold_ms / (double)slots;
    pthread_mutex_unlock(&w->lock);
    return oldest > queued ? oldest : queued;
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
