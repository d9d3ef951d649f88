/* The relay's circuit breaker, driven with a test clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "breaker.h"

static ec_breaker_cfg cfg(void)
{
    ec_breaker_cfg c = {.consecutive = 3,
                        .window = 10,
                        .min_calls = 6,
                        .failure_rate = 0.5,
                        .slow_call_ms = 1000,
                        .slow_rate = 0.8,
                        .open_ms = 5000,
                        .half_open_probes = 2};
    return c;
}

static void call(ec_breaker *b, ec_call_result r, double ms, uint64_t now)
{
    assert_true(ec_breaker_admit(b, now, now + 2000));
    ec_breaker_report(b, r, ms, now);
}

static void consecutive_failures_open_it(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    call(&b, EC_CALL_FAILED, 10, 1);
    call(&b, EC_CALL_FAILED, 10, 2);
    assert_int_equal(b.state, EC_BREAKER_CLOSED);
    call(&b, EC_CALL_FAILED, 10, 3);
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_non_null(strstr(b.reason, "3 consecutive"));
    assert_false(ec_breaker_admit(&b, 100, 2100)); /* fails fast */
    assert_int_equal(ec_breaker_retry_at(&b), 3 + 5000);
}

static void a_success_resets_the_streak(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    call(&b, EC_CALL_FAILED, 10, 1);
    call(&b, EC_CALL_FAILED, 10, 2);
    call(&b, EC_CALL_OK, 10, 3);
    call(&b, EC_CALL_FAILED, 10, 4);
    call(&b, EC_CALL_FAILED, 10, 5);
    assert_int_equal(b.state, EC_BREAKER_CLOSED);
}

static void failure_rate_over_the_window(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    /* F F O F F O: never 3 in a row, but 4 of 6 failed once min_calls is reached */
    ec_call_result seq[] = {EC_CALL_FAILED, EC_CALL_FAILED, EC_CALL_OK,
                            EC_CALL_FAILED, EC_CALL_FAILED, EC_CALL_OK};
    for (int i = 0; i < 5; i++) {
        call(&b, seq[i], 10, (uint64_t)i);
        assert_int_equal(b.state, EC_BREAKER_CLOSED);
    }
    call(&b, seq[5], 10, 5);
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_non_null(strstr(b.reason, "failure rate"));
}

static void slow_calls_open_it(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    for (int i = 0; i < 6; i++)
        call(&b, EC_CALL_OK, 1500, (uint64_t)i);
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_non_null(strstr(b.reason, "slow"));
}

static void config_errors_do_not_trip_it(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    for (int i = 0; i < 20; i++)
        call(&b, EC_CALL_NEUTRAL, 10, (uint64_t)i);
    assert_int_equal(b.state, EC_BREAKER_CLOSED);
}

static void half_open_closes_after_all_probes_succeed(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    for (int i = 0; i < 3; i++)
        call(&b, EC_CALL_FAILED, 10, 0);
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_false(ec_breaker_admit(&b, 4999, 7000));
    /* open time over: two probes go through, a third waits */
    assert_true(ec_breaker_admit(&b, 5000, 7000));
    assert_int_equal(b.state, EC_BREAKER_HALF_OPEN);
    assert_true(ec_breaker_admit(&b, 5001, 7001));
    assert_false(ec_breaker_admit(&b, 5002, 7002));
    ec_breaker_report(&b, EC_CALL_OK, 10, 5010);
    assert_int_equal(b.state, EC_BREAKER_HALF_OPEN);
    ec_breaker_report(&b, EC_CALL_OK, 10, 5020);
    assert_int_equal(b.state, EC_BREAKER_CLOSED);
    assert_true(ec_breaker_admit(&b, 5030, 7030));
}

static void failed_probe_reopens(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    for (int i = 0; i < 3; i++)
        call(&b, EC_CALL_FAILED, 10, 0);
    assert_true(ec_breaker_admit(&b, 5000, 7000));
    ec_breaker_report(&b, EC_CALL_FAILED, 10, 5100);
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_int_equal(b.since_ms, 5100);
    assert_false(ec_breaker_admit(&b, 6000, 8000));
}

static void hung_probe_cannot_pin_it_half_open(void **state)
{
    ec_breaker_cfg c = cfg();
    c.half_open_probes = 1;
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    for (int i = 0; i < 3; i++)
        call(&b, EC_CALL_FAILED, 10, 0);
    assert_true(ec_breaker_admit(&b, 5000, 6000)); /* the probe hangs, never reports */
    assert_false(ec_breaker_admit(&b, 5500, 7500));
    assert_int_equal(b.state, EC_BREAKER_HALF_OPEN);
    /* past the probe's deadline the breaker re-opens, and probes again later */
    assert_false(ec_breaker_admit(&b, 6001, 8001));
    assert_int_equal(b.state, EC_BREAKER_OPEN);
    assert_true(ec_breaker_admit(&b, 11001, 12001));
    assert_int_equal(b.state, EC_BREAKER_HALF_OPEN);
}

static void commands(void **state)
{
    ec_breaker_cfg c = cfg();
    ec_breaker b;
    ec_breaker_init(&b, &c, 0);
    assert_int_equal(ec_breaker_command(&b, "force_open", 1), 0);
    assert_false(ec_breaker_admit(&b, 1000000, 1002000)); /* stays open: no probing */
    assert_int_equal(ec_breaker_command(&b, "disable", 2), 0);
    for (int i = 0; i < 10; i++)
        call(&b, EC_CALL_FAILED, 10, 3);
    assert_int_equal(b.state, EC_BREAKER_DISABLED);
    assert_int_equal(ec_breaker_command(&b, "auto", 4), 0);
    assert_int_equal(b.state, EC_BREAKER_CLOSED);
    assert_int_not_equal(ec_breaker_command(&b, "explode", 5), 0);
    assert_int_equal(b.transitions, 3);
    assert_string_equal(ec_breaker_state_name(EC_BREAKER_HALF_OPEN), "half_open");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(consecutive_failures_open_it),
        cmocka_unit_test(a_success_resets_the_streak),
        cmocka_unit_test(failure_rate_over_the_window),
        cmocka_unit_test(slow_calls_open_it),
        cmocka_unit_test(config_errors_do_not_trip_it),
        cmocka_unit_test(half_open_closes_after_all_probes_succeed),
        cmocka_unit_test(failed_probe_reopens),
        cmocka_unit_test(hung_probe_cannot_pin_it_half_open),
        cmocka_unit_test(commands),
    };
    return cmocka_run_group_tests_name("breaker", tests, NULL, NULL);
}
