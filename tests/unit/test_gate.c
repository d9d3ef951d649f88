#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "edgecascade/config.h"
#include "gate.h"

static ec_infer_reply reply_with(const char *answer, const double *lps, size_t n)
{
    ec_infer_reply r = {0};
    r.answer = (char *)answer;
    if (n)
        ec_lp_stats_compute(lps, n, &r.lp);
    return r;
}

static void geometric_mean_probability(void **state)
{
    double lps[] = {-0.1, -0.2, -0.3, -0.4};
    ec_infer_reply r = reply_with("the pump runs dry", lps, 4);
    assert_true(fabs(ec_gate_confidence(&r) - exp(-0.25)) < 1e-9);
}

static void short_answer_limited_by_first_token(void **state)
{
    double lps[] = {-1.0, -0.01};
    ec_infer_reply r = reply_with("B.", lps, 2);
    /* geo mean exp(-0.505)=0.60 but the letter itself only had exp(-1)=0.37 */
    assert_true(fabs(ec_gate_confidence(&r) - exp(-1.0)) < 1e-9);
}

static void truncated_answer_is_penalised(void **state)
{
    double lps[] = {-0.05, -0.05, -0.05, -0.05};
    ec_infer_reply r = reply_with("a long answer that got cut", lps, 4);
    double full = ec_gate_confidence(&r);
    r.finish_reason = "length";
    assert_true(fabs(ec_gate_confidence(&r) - full * 0.5) < 1e-9);
}

static void empty_answer_has_no_confidence(void **state)
{
    double lps[] = {-0.01};
    ec_infer_reply r = reply_with("   ", lps, 1);
    assert_true(ec_gate_confidence(&r) == 0.0);
}

static void without_logprobs_hedging_lowers_confidence(void **state)
{
    ec_infer_reply plain = reply_with("Replace bearing 6204.", NULL, 0);
    ec_infer_reply hedged = reply_with("I'm not sure, it could be the bearing.", NULL, 0);
    double a = ec_gate_confidence(&plain), b = ec_gate_confidence(&hedged);
    assert_true(a > b);
    assert_true(a < 0.70);  /* escalates under the default balanced preset */
    assert_true(a >= 0.60); /* passes the aggressive preset */
}

static void thresholds_per_tier_and_preset(void **state)
{
    ec_config cfg;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&cfg, &err), EC_OK);
    assert_true(fabs(ec_gate_threshold(&cfg, 0) - 0.70) < 1e-9);
    cfg.tiers[0].min_confidence = 0.9;
    assert_true(fabs(ec_gate_threshold(&cfg, 0) - 0.9) < 1e-9);
    double t;
    assert_int_equal(ec_gate_preset_threshold("aggressive", &t), 0);
    assert_true(fabs(t - 0.60) < 1e-9);
    assert_int_equal(ec_gate_preset_threshold("conservative", &t), 0);
    assert_true(fabs(t - 0.85) < 1e-9);
    assert_int_not_equal(ec_gate_preset_threshold("reckless", &t), 0);
    ec_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(geometric_mean_probability),
        cmocka_unit_test(short_answer_limited_by_first_token),
        cmocka_unit_test(truncated_answer_is_penalised),
        cmocka_unit_test(empty_answer_has_no_confidence),
        cmocka_unit_test(without_logprobs_hedging_lowers_confidence),
        cmocka_unit_test(thresholds_per_tier_and_preset),
    };
    return cmocka_run_group_tests_name("gate", tests, NULL, NULL);
}
