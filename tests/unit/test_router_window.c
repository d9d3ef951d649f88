/* The router's local window (services/router/window.c): slots, the order
 * of the queries waiting for one, hand-offs, stale waits and a changed
 * limit. The window holds ec_pending entries only by pointer, so plain
 * calloc'd ones stand in for queries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"
#include "window.h"

static ec_pending *query(int tier)
{
    ec_pending *p = calloc(1, sizeof(*p));
    assert_non_null(p);
    p->tier = tier;
    return p;
}

static void slots_then_waiting_in_arrival_order(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    assert_non_null(w);
    ec_pending *a = query(0), *b = query(0), *c = query(0), *d = query(0);
    assert_true(ec_window_enter(w, a, 2));
    assert_true(a->windowed);
    assert_true(ec_window_enter(w, b, 2));
    assert_false(ec_window_enter(w, c, 2));
    assert_false(c->windowed);
    assert_false(ec_window_enter(w, d, 2));
    assert_int_equal(ec_window_inflight(w), 2);
    assert_int_equal(ec_window_waiting(w), 2);

    /* a's hop ends: its slot goes to c, the oldest waiting, not to a newcomer. */
    assert_ptr_equal(ec_window_leave(w, a, 2), c);
    assert_false(a->windowed);
    assert_true(c->windowed);
    assert_int_equal(ec_window_inflight(w), 2);
    assert_int_equal(ec_window_waiting(w), 1);
    /* A second leave of the same query changes nothing. */
    assert_null(ec_window_leave(w, a, 2));
    assert_int_equal(ec_window_inflight(w), 2);

    /* Freed without a hand-off (limit 0): the slot is free, but a newcomer
     * still queues behind d; the pass admits d first. */
    assert_null(ec_window_leave(w, b, 0));
    assert_int_equal(ec_window_inflight(w), 1);
    ec_pending *e = query(0);
    assert_false(ec_window_enter(w, e, 2));
    assert_ptr_equal(ec_window_admit(w, 2), d);
    assert_null(ec_window_admit(w, 2));
    assert_ptr_equal(ec_window_leave(w, c, 2), e);
    assert_null(ec_window_leave(w, d, 2));
    assert_null(ec_window_leave(w, e, 2));
    assert_int_equal(ec_window_inflight(w), 0);
    assert_int_equal(ec_window_waiting(w), 0);
    ec_window_destroy(w);
    free(a);
    free(b);
    free(c);
    free(d);
    free(e);
}

static void a_lower_limit_holds_hand_offs_a_higher_one_admits(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    ec_pending *q[6];
    for (int i = 0; i < 6; i++)
        q[i] = query(0);
    for (int i = 0; i < 4; i++)
        assert_true(ec_window_enter(w, q[i], 4));
    assert_false(ec_window_enter(w, q[4], 4));
    assert_false(ec_window_enter(w, q[5], 4));
    /* Reloaded down to 2: two leaves free slots without handing them on. */
    assert_null(ec_window_leave(w, q[0], 2));
    assert_null(ec_window_leave(w, q[1], 2));
    assert_ptr_equal(ec_window_leave(w, q[2], 2), q[4]);
    /* Raised to 3: the pass admits the next at once. */
    assert_ptr_equal(ec_window_admit(w, 3), q[5]);
    assert_int_equal(ec_window_inflight(w), 3);
    assert_int_equal(ec_window_waiting(w), 0);
    ec_window_destroy(w);
    for (int i = 0; i < 6; i++)
        free(q[i]);
}

static double wait_by_tier(void *ctx, const ec_pending *p)
{
    (void)ctx;
    return p->tier == 0 ? 1000.0 : 100000.0;
}

static void stale_waits_are_taken_out_and_the_rest_keep_their_order(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    ec_pending *busy = query(0);
    assert_true(ec_window_enter(w, busy, 1));
    /* Waiting: a (tier 0), b (tier 1, longer allowed wait), c (tier 0). */
    ec_pending *a = query(0), *b = query(1), *c = query(0);
    assert_false(ec_window_enter(w, a, 1));
    assert_false(ec_window_enter(w, b, 1));
    assert_false(ec_window_enter(w, c, 1));
    double now = ec_mono_ms();
    assert_null(ec_window_take_stale(w, now, wait_by_tier, NULL));
    /* 2 s on: a and c have waited past their 1 s; b has not. */
    ec_pending *stale = ec_window_take_stale(w, now + 2000, wait_by_tier, NULL);
    assert_ptr_equal(stale, a);
    assert_ptr_equal(a->next, c);
    assert_null(c->next);
    assert_int_equal(ec_window_waiting(w), 1);
    /* The list's tail is b again: a newcomer lines up after it. */
    ec_pending *d = query(0);
    assert_false(ec_window_enter(w, d, 1));
    assert_ptr_equal(ec_window_leave(w, busy, 1), b);
    assert_ptr_equal(ec_window_leave(w, b, 1), d);
    free(a);
    free(c);
    free(busy);
    free(b);
    free(d);
    ec_window_destroy(w);
}

/* How far behind: the waiting queries times the measured slot time, over the
 * slots. The first hop held its slot through an idle 200 ms; the average
 * lets that go as hops of ~5 ms follow. */
static void behind_is_the_queue_at_the_models_pace(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    enum { N = 40 };
    ec_pending *q[N];
    for (int i = 0; i < N; i++)
        q[i] = query(0);
    assert_true(ec_window_enter(w, q[0], 1));
    assert_true(ec_window_behind_ms(w, ec_mono_ms()) == 0);
    /* Idle for a while, then a burst: the first gap is not measured. */
    ec_sleep_ms(200);
    for (int i = 1; i < N; i++)
        assert_false(ec_window_enter(w, q[i], 1));
    /* The model ends a hop every ~5 ms while 39..30 wait. */
    ec_pending *cur = q[0];
    for (int i = 0; i < 10; i++) {
        ec_sleep_ms(5);
        cur = ec_window_leave(w, cur, 1);
        assert_non_null(cur);
    }
    assert_int_equal(ec_window_waiting(w), N - 11);
    double behind = ec_window_behind_ms(w, ec_mono_ms());
    /* 29 waiting at >= 5 ms each; the 200 ms idle gap would make it ~6 s. */
    assert_true(behind >= 29 * 5 * 0.9);
    assert_true(behind < 29 * 150.0);
    ec_window_destroy(w);
    for (int i = 0; i <= 10; i++)
        free(q[i]);
}

static void destroy_frees_what_still_waits(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    ec_pending *in = query(0);
    assert_true(ec_window_enter(w, in, 1));
    /* Owned by the window from here: ASan and valgrind see them freed. */
    for (int i = 0; i < 3; i++) {
        ec_pending *p = query(0);
        p->response_topic = strdup("plc/7/answers");
        assert_false(ec_window_enter(w, p, 1));
    }
    assert_int_equal(ec_window_waiting(w), 3);
    ec_window_destroy(w);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(slots_then_waiting_in_arrival_order),
        cmocka_unit_test(a_lower_limit_holds_hand_offs_a_higher_one_admits),
        cmocka_unit_test(stale_waits_are_taken_out_and_the_rest_keep_their_order),
        cmocka_unit_test(behind_is_the_queue_at_the_models_pace),
        cmocka_unit_test(destroy_frees_what_still_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
