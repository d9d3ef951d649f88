#include "edgecascade/queue.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "edgecascade/util.h"

struct ec_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    void **items;
    size_t cap;   /* slots allocated */
    size_t limit; /* nominal capacity: try_push/push refuse at this length */
    size_t head;
    size_t len;
    bool closed;
};

ec_err ec_queue_create(ec_queue **out, size_t capacity)
{
    if (capacity == 0)
        return EC_ERR_INVAL;
    ec_queue *q = calloc(1, sizeof(*q));
    if (!q)
        return EC_ERR_NOMEM;
    q->items = calloc(capacity, sizeof(void *));
    if (!q->items) {
        free(q);
        return EC_ERR_NOMEM;
    }
    q->cap = capacity;
    q->limit = capacity;
    pthread_mutex_init(&q->lock, NULL);
    ec_cond_init_mono(&q->not_empty);
    ec_cond_init_mono(&q->not_full);
    *out = q;
    return EC_OK;
}

void ec_queue_destroy(ec_queue *q, void (*free_item)(void *))
{
    if (!q)
        return;
    for (size_t i = 0; i < q->len; i++) {
        void *it = q->items[(q->head + i) % q->cap];
        if (free_item)
            free_item(it);
    }
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
    pthread_mutex_destroy(&q->lock);
    free(q->items);
    free(q);
}

/* Waits on cond until pred() is false; returns EC_ERR_TIMEOUT on deadline. */
static ec_err wait_on(ec_queue *q, pthread_cond_t *cond, int timeout_ms,
                      const struct timespec *deadline)
{
    if (timeout_ms == 0)
        return EC_ERR_TIMEOUT;
    if (timeout_ms < 0) {
        pthread_cond_wait(cond, &q->lock);
        return EC_OK;
    }
    if (pthread_cond_timedwait(cond, &q->lock, deadline) == ETIMEDOUT)
        return EC_ERR_TIMEOUT;
    return EC_OK;
}

static void push_locked(ec_queue *q, void *item)
{
    q->items[(q->head + q->len) % q->cap] = item;
    q->len++;
    pthread_cond_signal(&q->not_empty);
}

ec_err ec_queue_try_push(ec_queue *q, void *item)
{
    return ec_queue_push(q, item, 0);
}

ec_err ec_queue_push(ec_queue *q, void *item, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        ec_deadline_in(&deadline, (unsigned)timeout_ms);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&q->lock);
    while (!q->closed && q->len >= q->limit) {
        if (wait_on(q, &q->not_full, timeout_ms, &deadline) == EC_ERR_TIMEOUT) {
            rc = EC_ERR_BUSY;
            break;
        }
    }
    if (rc == EC_OK) {
        if (q->closed)
            rc = EC_ERR_UNAVAILABLE;
        else
            push_locked(q, item);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

ec_err ec_queue_push_force(ec_queue *q, void *item)
{
    ec_err rc = EC_OK;
    pthread_mutex_lock(&q->lock);
    if (q->closed) {
        rc = EC_ERR_UNAVAILABLE;
    } else {
        if (q->len == q->cap) {
            size_t cap = q->cap * 2;
            void **items = malloc(cap * sizeof(void *));
            if (!items) {
                rc = EC_ERR_NOMEM;
                goto out;
            }
            for (size_t i = 0; i < q->len; i++)
                items[i] = q->items[(q->head + i) % q->cap];
            free(q->items);
            q->items = items;
            q->head = 0;
            q->cap = cap;
        }
        push_locked(q, item);
    }
out:
    pthread_mutex_unlock(&q->lock);
    return rc;
}

ec_err ec_queue_pop(ec_queue *q, void **item, int timeout_ms)
{
    struct timespec deadline;
    if (timeout_ms > 0)
        ec_deadline_in(&deadline, (unsigned)timeout_ms);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&q->lock);
    while (q->len == 0) {
        if (q->closed) {
            rc = EC_ERR_UNAVAILABLE;
            break;
        }
        if (wait_on(q, &q->not_empty, timeout_ms, &deadline) == EC_ERR_TIMEOUT) {
            rc = q->len ? EC_OK : EC_ERR_TIMEOUT;
            break;
        }
    }
    if (rc == EC_OK && q->len) {
        *item = q->items[q->head];
        q->head = (q->head + 1) % q->cap;
        q->len--;
        if (q->len < q->limit)
            pthread_cond_signal(&q->not_full);
    }
    pthread_mutex_unlock(&q->lock);
    return rc;
}

void ec_queue_close(ec_queue *q)
{
    pthread_mutex_lock(&q->lock);
    q->closed = true;
    pthread_cond_broadcast(&q->not_empty);
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
}

size_t ec_queue_len(ec_queue *q)
{
    pthread_mutex_lock(&q->lock);
    size_t n = q->len;
    pthread_mutex_unlock(&q->lock);
    return n;
}

size_t ec_queue_capacity(ec_queue *q)
{
    return q->limit;
}
