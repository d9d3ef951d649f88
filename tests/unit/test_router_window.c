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
#include "fair.h"
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
    assert_true(ec_window_behind_ms(w, NULL, 1, ec_mono_ms()) == 0);
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
    double behind = ec_window_behind_ms(w, NULL, 1, ec_mono_ms());
    /* 29 waiting at >= 5 ms each; the 200 ms idle gap would make it ~6 s. */
    assert_true(behind >= 29 * 5 * 0.9);
    assert_true(behind < 29 * 150.0);
    ec_window_destroy(w);
    for (int i = 0; i <= 10; i++)
        free(q[i]);
}

static ec_pending *asked_by(const char *asker, int weight)
{
    ec_pending *p = query(0);
    p->asker = asker ? strdup(asker) : NULL;
    p->weight = weight;
    return p;
}

static void free_asked(ec_pending *p)
{
    free(p->asker);
    free(p);
}

/* A floods, B and the queries without identity ask once or twice: the slots
 * go round the askers, each in its own arrival order, A's backlog last. */
static void askers_take_the_slots_in_turn(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    ec_pending *busy = asked_by("A", 1);
    assert_true(ec_window_enter(w, busy, 1));
    ec_pending *a[5], *b1 = asked_by("B", 1), *b2 = asked_by("B", 1), *n1 = asked_by(NULL, 1);
    for (int i = 0; i < 5; i++) {
        a[i] = asked_by("A", 1);
        assert_false(ec_window_enter(w, a[i], 1));
    }
    assert_false(ec_window_enter(w, b1, 1));
    assert_false(ec_window_enter(w, n1, 1));
    assert_false(ec_window_enter(w, b2, 1));
    assert_int_equal(ec_window_waiting(w), 8);
    /* For B's next query: its own 2, then 2 turns of A and of the anonymous. */
    ec_pending *expect[] = {a[0], b1, n1, a[1], b2, a[2], a[3], a[4]};
    ec_pending *cur = busy;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        ec_pending *next = ec_window_leave(w, cur, 1);
        assert_ptr_equal(next, expect[i]);
        cur = next;
    }
    assert_null(ec_window_leave(w, cur, 1));
    assert_int_equal(ec_window_waiting(w), 0);
    ec_window_destroy(w);
    free_asked(busy);
    free_asked(b1);
    free_asked(b2);
    free_asked(n1);
    for (int i = 0; i < 5; i++)
        free_asked(a[i]);
}

/* A safety PLC of weight 3 gets three slots a turn against one. */
static void a_weight_is_slots_per_turn(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    ec_pending *busy = asked_by("plc", 1);
    assert_true(ec_window_enter(w, busy, 1));
    ec_pending *p[4], *s[4];
    for (int i = 0; i < 4; i++) {
        p[i] = asked_by("plc", 1);
        assert_false(ec_window_enter(w, p[i], 1));
    }
    for (int i = 0; i < 4; i++) {
        s[i] = asked_by("safety", 3);
        assert_false(ec_window_enter(w, s[i], 1));
    }
    ec_pending *expect[] = {p[0], s[0], s[1], s[2], p[1], s[3], p[2], p[3]};
    ec_pending *cur = busy;
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        ec_pending *next = ec_window_leave(w, cur, 1);
        assert_ptr_equal(next, expect[i]);
        cur = next;
    }
    ec_window_destroy(w);
    free_asked(busy);
    for (int i = 0; i < 4; i++) {
        free_asked(p[i]);
        free_asked(s[i]);
    }
}

/* Behind A's backlog of 30, a newcomer asker waits for about one turn of
 * A, not for all of it; A's next waits behind its own 30. */
static void behind_counts_only_the_turns_before_the_asker(void **state)
{
    (void)state;
    ec_window *w = ec_window_create();
    enum { N = 30 };
    ec_pending *busy = asked_by("A", 1), *q[N];
    assert_true(ec_window_enter(w, busy, 1));
    for (int i = 0; i < N; i++) {
        q[i] = asked_by("A", 1);
        assert_false(ec_window_enter(w, q[i], 1));
    }
    ec_sleep_ms(20);
    /* "now" before the hand-off: the time since it does not count, however
     * slow the machine is between the two calls */
    double now = ec_mono_ms();
    ec_pending *cur = ec_window_leave(w, busy, 1); /* a hold of >= 20 ms measured */
    assert_ptr_equal(cur, q[0]);
    double hold = ec_window_hold_ms(w);
    assert_true(hold >= 19);
    double a_behind = ec_window_behind_ms(w, "A", 1, now);
    double b_behind = ec_window_behind_ms(w, "B", 1, now);
    assert_true(a_behind >= (N - 1) * hold * 0.99);
    /* one turn of A; the time since the last hand-off may be larger */
    assert_true(b_behind < 5 * hold);
    ec_window_destroy(w);
    free_asked(busy);
    free_asked(q[0]);
}

/* An asker's own cap, and its share of max_pending once the router is full:
 * a newcomer still gets in, the one that filled it does not. */
static void fair_places_per_asker(void **state)
{
    (void)state;
    ec_fair *f = ec_fair_create();
    char why[240];
    for (int i = 0; i < 3; i++)
        assert_true(ec_fair_take(f, "A", 3, (size_t)i, 100, why, sizeof(why)));
    assert_false(ec_fair_take(f, "A", 3, 3, 100, why, sizeof(why)));
    assert_non_null(strstr(why, "router.asker_max_pending"));
    assert_int_equal(ec_fair_held(f, "A"), 3);
    /* No cap of its own: A fills max_pending (10); B and the queries without
     * identity still get their share; A is refused. */
    for (int i = 3; i < 10; i++)
        assert_true(ec_fair_take(f, "A", 0, (size_t)i, 10, why, sizeof(why)));
    assert_false(ec_fair_take(f, "A", 0, 10, 10, why, sizeof(why)));
    assert_non_null(strstr(why, "router.max_pending"));
    assert_true(ec_fair_take(f, "B", 0, 10, 10, why, sizeof(why)));
    assert_true(ec_fair_take(f, NULL, 0, 11, 10, why, sizeof(why)));
    assert_int_equal(ec_fair_held(f, NULL), 1);
    /* At twice max_pending nobody gets in. */
    assert_false(ec_fair_take(f, "C", 0, 20, 10, why, sizeof(why)));
    for (int i = 0; i < 10; i++)
        ec_fair_give_back(f, "A");
    assert_int_equal(ec_fair_held(f, "A"), 0);
    assert_true(ec_fair_take(f, "A", 3, 0, 100, why, sizeof(why)));
    ec_fair_give_back(f, "A");
    ec_fair_give_back(f, "B");
    ec_fair_give_back(f, NULL);
    assert_int_equal(ec_fair_held(f, "B"), 0);
    ec_fair_destroy(f);
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
        cmocka_unit_test(askers_take_the_slots_in_turn),
        cmocka_unit_test(a_weight_is_slots_per_turn),
        cmocka_unit_test(behind_counts_only_the_turns_before_the_asker),
        cmocka_unit_test(fair_places_per_asker),
        cmocka_unit_test(destroy_frees_what_still_waits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
