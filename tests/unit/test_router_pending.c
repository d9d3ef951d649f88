/* The router's table of queries waiting for a tier's reply: the sweeper's
 * take_expired hands over exactly the hops past their deadline, also when
 * it skips its walk of the buckets (nothing can have expired yet). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <stdlib.h>

#include "pending.h"

static ec_pending *waiting(ec_pending_table *t, uint64_t key, double deadline_ms)
{
    ec_pending *p = ec_pending_new();
    assert_non_null(p);
    p->key = key;
    p->hop_deadline_ms = deadline_ms;
    ec_pending_put(t, p);
    return p;
}

/* The keys of what was taken, freed. */
static uint64_t take(ec_pending_table *t, double now_ms, int *n)
{
    uint64_t keys = 0;
    *n = 0;
    ec_pending *p = ec_pending_take_expired(t, now_ms);
    while (p) {
        ec_pending *next = p->next;
        keys |= p->key;
        (*n)++;
        ec_pending_free(p);
        p = next;
    }
    return keys;
}

static void expired_hops_are_taken_and_only_those(void **state)
{
    (void)state;
    ec_pending_table *t = ec_pending_table_create(64);
    assert_non_null(t);
    int n = 0;
    assert_int_equal(take(t, 1e9, &n), 0); /* empty */
    waiting(t, 1, 100);
    waiting(t, 2, 200);
    waiting(t, 4, 300);
    assert_int_equal(take(t, 50, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(take(t, 150, &n), 1);
    assert_int_equal(take(t, 150, &n), 0);
    assert_int_equal(ec_pending_count(t), 2);
    /* One that ends before everything left, put after a sweep. */
    waiting(t, 8, 120);
    assert_int_equal(take(t, 130, &n), 8);
    /* Taken by its reply before its deadline: not handed over twice. */
    ec_pending *p = ec_pending_take(t, 2);
    assert_non_null(p);
    ec_pending_free(p);
    assert_int_equal(take(t, 250, &n), 0);
    assert_int_equal(take(t, 1000, &n), 4);
    assert_int_equal(n, 1);
    assert_int_equal(ec_pending_count(t), 0);
    ec_pending_table_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(expired_hops_are_taken_and_only_those),
    };
    return cmocka_run_group_tests_name("router_pending", tests, NULL, NULL);
}
