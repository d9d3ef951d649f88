/* Bounded multi-producer multi-consumer queue of pointers (mutex + condvars).
 * Paho callbacks push without blocking (ec_queue_try_push) and return; worker
 * threads pop. A full queue is reported to the producer, which decides what to
 * do (answer busy, pause intake): nothing is dropped silently. */
#ifndef EC_QUEUE_H
#define EC_QUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/err.h"

typedef struct ec_queue ec_queue;

ec_err ec_queue_create(ec_queue **out, size_t capacity);
/* Frees the queue; items still inside are passed to free_item (may be NULL). */
void ec_queue_destroy(ec_queue *q, void (*free_item)(void *));

/* EC_OK, or EC_ERR_BUSY when full, or EC_ERR_UNAVAILABLE after close. */
ec_err ec_queue_try_push(ec_queue *q, void *item);
/* Pushes even past the capacity. For producers whose volume is bounded by
 * construction elsewhere (replies to requests we sent), where refusing would
 * lose work and waiting would block Paho's thread. */
ec_err ec_queue_push_force(ec_queue *q, void *item);
/* Waits up to timeout_ms (-1 forever) for room. */
ec_err ec_queue_push(ec_queue *q, void *item, int timeout_ms);
/* EC_OK with *item set, EC_ERR_TIMEOUT, or EC_ERR_UNAVAILABLE when closed and empty. */
ec_err ec_queue_pop(ec_queue *q, void **item, int timeout_ms);

/* Wakes every waiter; pushes fail afterwards, pops drain what is left. */
void ec_queue_close(ec_queue *q);
size_t ec_queue_len(ec_queue *q);
size_t ec_queue_capacity(ec_queue *q);

#endif
