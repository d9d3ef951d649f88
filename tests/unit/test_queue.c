#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdlib.h>

#include "edgecascade/queue.h"
#include "edgecascade/util.h"

static void fifo_order_and_capacity(void **state)
{
    ec_queue *q = NULL;
    assert_int_equal(ec_queue_create(&q, 3), EC_OK);
    int v[4] = {1, 2, 3, 4};
    for (int i = 0; i < 3; i++)
        assert_int_equal(ec_queue_try_push(q, &v[i]), EC_OK);
    assert_int_equal(ec_queue_try_push(q, &v[3]), EC_ERR_BUSY); /* full: refused, not dropped */
    assert_int_equal(ec_queue_len(q), 3);
    void *out = NULL;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(ec_queue_pop(q, &out, 0), EC_OK);
        assert_ptr_equal(out, &v[i]);
    }
    assert_int_equal(ec_queue_pop(q, &out, 10), EC_ERR_TIMEOUT);
    ec_queue_destroy(q, NULL);
}

static void close_drains_then_reports_unavailable(void **state)
{
    ec_queue *q = NULL;
    int a = 1;
    void *out = NULL;
    assert_int_equal(ec_queue_create(&q, 2), EC_OK);
    assert_int_equal(ec_queue_try_push(q, &a), EC_OK);
    ec_queue_close(q);
    assert_int_equal(ec_queue_try_push(q, &a), EC_ERR_UNAVAILABLE);
    assert_int_equal(ec_queue_pop(q, &out, 0), EC_OK);
    assert_int_equal(ec_queue_pop(q, &out, -1), EC_ERR_UNAVAILABLE);
    ec_queue_destroy(q, NULL);
}

static void destroy_frees_leftovers(void **state)
{
    ec_queue *q = NULL;
    assert_int_equal(ec_queue_create(&q, 4), EC_OK);
    assert_int_equal(ec_queue_try_push(q, malloc(8)), EC_OK);
    assert_int_equal(ec_queue_try_push(q, malloc(8)), EC_OK);
    ec_queue_destroy(q, free); /* ASan would report a leak otherwise */
}

typedef struct {
    ec_queue *q;
    long sum;
    int n;
} consumer;

static void *consume(void *arg)
{
    consumer *c = arg;
    void *item;
    while (ec_queue_pop(c->q, &item, -1) == EC_OK) {
        c->sum += (long)(intptr_t)item;
        c->n++;
    }
    return NULL;
}

static void blocking_push_waits_for_room(void **state)
{
    ec_queue *q = NULL;
    assert_int_equal(ec_queue_create(&q, 8), EC_OK);
    consumer c[2] = {{q, 0, 0}, {q, 0, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        pthread_create(&th[i], NULL, consume, &c[i]);
    long want = 0;
    for (intptr_t i = 1; i <= 10000; i++) {
        assert_int_equal(ec_queue_push(q, (void *)i, -1), EC_OK);
        want += i;
    }
    ec_queue_close(q);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    assert_int_equal(c[0].n + c[1].n, 10000);
    assert_int_equal(c[0].sum + c[1].sum, want);
    ec_queue_destroy(q, NULL);
}

static void push_times_out_when_full(void **state)
{
    ec_queue *q = NULL;
    int a;
    assert_int_equal(ec_queue_create(&q, 1), EC_OK);
    assert_int_equal(ec_queue_push(q, &a, 10), EC_OK);
    uint64_t t0 = ec_mono_us();
    assert_int_equal(ec_queue_push(q, &a, 30), EC_ERR_BUSY);
    assert_true(ec_mono_us() - t0 >= 25000);
    ec_queue_destroy(q, NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fifo_order_and_capacity),
        cmocka_unit_test(close_drains_then_reports_unavailable),
        cmocka_unit_test(destroy_frees_leftovers),
        cmocka_unit_test(blocking_push_waits_for_room),
        cmocka_unit_test(push_times_out_when_full),
    };
    return cmocka_run_group_tests_name("queue", tests, NULL, NULL);
}
