#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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

static void refusal_is_lower_than_hedge(void **state)
{
    (void)state;
    assert_true(ec_gate_hedged("I'm not sure which valve it is."));
    assert_false(ec_gate_hedged("Valve V-12 is open."));
    assert_true(ec_gate_refused("I'm sorry, but I cannot help with that."));
    ec_infer_reply h = reply_with("I am not sure.", NULL, 0);
    ec_infer_reply r = reply_with("I cannot help with that request.", NULL, 0);
    assert_true(ec_gate_confidence(&r) < ec_gate_confidence(&h));
    /* with logprobs the text does not move the signal the calibration was fitted on */
    double lps[] = {-0.1, -0.1, -0.1, -0.1};
    ec_infer_reply l = reply_with("I am not sure about it", lps, 4);
    assert_true(fabs(ec_gate_confidence(&l) - exp(-0.1)) < 1e-12);
}

static void low_quantiles_are_kept(void **state)
{
    (void)state;
    double lps[] = {-0.01, -0.01, -0.01, -0.01, -0.01, -0.01, -0.01, -0.01, -0.01, -3.0};
    ec_infer_reply r = reply_with("ten tokens with one doubtful word in the middle", lps, 10);
    assert_true(r.lp.min == -3.0);
    assert_true(r.lp.p10 == -3.0);
    assert_true(r.lp.p25 == -0.01);
}

static void complexity_levels(void **state)
{
    (void)state;
    assert_int_equal(ec_gate_complexity("Convert 150 psi to bar.", NULL), EC_COMPLEXITY_TRIVIAL);
    assert_int_equal(ec_gate_complexity("What is the rated speed of conveyor belt B in the "
                                        "north hall?",
                                        NULL),
                     EC_COMPLEXITY_SIMPLE);
    assert_int_equal(ec_gate_complexity("The spindle got louder after the belt change last "
                                        "week. What is the likely cause?",
                                        NULL),
                     EC_COMPLEXITY_MODERATE);
    assert_int_equal(ec_gate_complexity("Compare the torque and current readings of pumps 1, 2 "
                                        "and 3, then explain why pump 2 draws more current and "
                                        "estimate the efficiency loss step by step.",
                                        NULL),
                     EC_COMPLEXITY_HARD);
    assert_int_equal(ec_gate_complexity("Derive the transfer function of the hydraulic press "
                                        "with its PID setpoint loop, prove stability for gains "
                                        "between 0.5 and 2, then design a compensator and "
                                        "compare the harmonic response step by step.",
                                        NULL),
                     EC_COMPLEXITY_EXPERT);
    ec_query_features f;
    ec_gate_complexity("Question?\nA: one\nB: two\nC: three\n", &f);
    assert_true(f.choice);
    assert_int_equal(ec_complexity_parse("hard"), EC_COMPLEXITY_HARD);
    assert_int_equal(ec_complexity_parse("easy"), EC_COMPLEXITY_UNKNOWN);
}

/* The byte-pair filter in front of the phrase scans only saves work: on
 * texts built from the phrases' own pieces, in any case, with bytes the
 * pair fold confuses (digits fold onto letters), every feature equals the
 * plain scan's. */
static void complexity_filter_matches_plain_scan(void **state)
{
    (void)state;
    static const char *const pieces[] = {"what",
                                         "why ",
                                         "how",
                                         " then ",
                                         "step by step",
                                         "derive",
                                         "design a",
                                         "design",
                                         "torque",
                                         "volt",
                                         "age",
                                         "root cause",
                                         "failure mode",
                                         "plc",
                                         "PLC",
                                         "Explain",
                                         "yes or no",
                                         "pass or",
                                         "fail",
                                         "list ",
                                         "summar",
                                         "proof",
                                         "formal",
                                         "eigen",
                                         "?",
                                         "A: x\n",
                                         "B) y\n",
                                         " ",
                                         "  ",
                                         "\n",
                                         "1",
                                         "0.5",
                                         "p",
                                         "q",
                                         "\xc3\xa9",
                                         "\x7f",
                                         "-",
                                         ",",
                                         "compare",
                                         "analy",
                                         "quantum",
                                         "how do"};
    size_t n_pieces = sizeof(pieces) / sizeof(pieces[0]);
    unsigned seed = 17;
    char text[600];
    for (int round = 0; round < 5000; round++) {
        size_t at = 0;
        int parts = 1 + (int)((unsigned)rand_r(&seed) % 24);
        for (int k = 0; k < parts; k++) {
            const char *piece = pieces[(unsigned)rand_r(&seed) % n_pieces];
            for (const char *c = piece; *c && at + 1 < sizeof(text); c++) {
                char ch = *c;
                if ((unsigned)rand_r(&seed) % 5 == 0 && ch >= 'a' && ch <= 'z')
                    ch = (char)(ch - 32);
                text[at++] = ch;
            }
        }
        text[at] = '\0';
        ec_query_features fast, plain;
        ec_complexity cf = ec_gate_complexity(text, &fast);
        ec_complexity cp = ec_gate_complexity_unfiltered(text, &plain);
        assert_int_equal(cf, cp);
        assert_int_equal(fast.words, plain.words);
        assert_int_equal(fast.questions, plain.questions);
        assert_int_equal(fast.domain, plain.domain);
        assert_int_equal(fast.multistep, plain.multistep);
        assert_int_equal(fast.numbers, plain.numbers);
        assert_int_equal(fast.choice, plain.choice);
        assert_int_equal(fast.need_words, plain.need_words);
    }
}

static void length_and_keyword_coverage_without_logprobs(void **state)
{
    (void)state;
    ec_gate_query gq;
    ec_gate_classify_text(NULL, "Explain why the hydraulic pressure drops when the pump warms up.",
                          &gq);
    assert_true(gq.need_words > 1);
    assert_true(gq.n_kw >= 3);
    ec_infer_reply shortr = reply_with("Leakage.", NULL, 0);
    ec_infer_reply full = reply_with(
        "Warm oil is thinner, so internal leakage in the pump rises and the hydraulic pressure "
        "drops.",
        NULL, 0);
    ec_infer_reply off = reply_with(
        "Our canteen serves lunch from noon, with soup, bread and a daily special on Fridays.",
        NULL, 0);
    double s = ec_gate_signal(&gq, &shortr), f = ec_gate_signal(&gq, &full),
           o = ec_gate_signal(&gq, &off);
    assert_true(f > s);
    assert_true(f > o);
    assert_true(ec_gate_keyword_coverage(&gq, full.answer) > 0.5);
    assert_true(ec_gate_keyword_coverage(&gq, off.answer) < 0.2);
    /* a letter is enough for a multiple-choice question */
    ec_gate_classify_text(NULL, "Which?\nA: x\nB: y\n", &gq);
    assert_int_equal(gq.need_words, 1);
}

static char tmpdir[64];

static void write_calibration(const char *path, double threshold)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"version\": 1, \"feature\": \"gate-raw-v1\", \"local_model\": \"small\","
            " \"cloud_model\": \"big\", \"target\": 0.95, \"threshold\": %g,"
            " \"presets\": {\"aggressive\": {\"target\": 0.9, \"threshold\": 0.3},"
            " \"balanced\": {\"target\": 0.95, \"threshold\": %g},"
            " \"conservative\": {\"target\": 0.975, \"threshold\": 0.8}},"
            " \"knots\": [[0.2, 0.1], [0.6, 0.5], [0.9, 0.9]]}",
            threshold, threshold);
    fclose(f);
}

static ec_gate *gate_from(const char *yaml, ec_config *cfg)
{
    ec_error err = {0};
    memset(cfg, 0, sizeof(*cfg));
    if (ec_config_load_string(cfg, yaml, strlen(yaml), &err) != EC_OK)
        fail_msg("config: %s", err.msg);
    ec_gate *g = NULL;
    if (ec_gate_create(&g, cfg, &err) != EC_OK)
        fail_msg("gate: %s", err.msg);
    return g;
}

static void calibrated_judge_and_precedence(void **state)
{
    (void)state;
    char path[128], yaml[1024];
    snprintf(path, sizeof(path), "%s/cal.json", tmpdir);
    write_calibration(path, 0.55);
    const char *tiers = "tiers:\n"
                        "  - {name: local, provider: vllm, model: small}\n"
                        "  - {name: cloud, provider: openai, model: big}\n";
    ec_config cfg;
    snprintf(yaml, sizeof(yaml), "gate: {calibration: %s}\n%s", path, tiers);
    ec_gate *g = gate_from(yaml, &cfg);
    double lps[] = {log(0.4)};
    ec_infer_reply r = reply_with("B", lps, 1);
    ec_gate_query gq = {0};
    ec_gate_verdict v;
    ec_gate_judge(g, 0, &gq, &r, &v);
    assert_true(v.calibrated);
    assert_true(fabs(v.raw - 0.4) < 1e-12);
    assert_true(fabs(v.confidence - 0.3) < 1e-12); /* halfway between 0.1 and 0.5 */
    assert_true(v.threshold == 0.55);              /* balanced: the file's threshold */
    ec_gate_judge(g, 1, &gq, &r, &v);              /* the cloud tier is not calibrated */
    assert_false(v.calibrated);
    assert_true(fabs(v.confidence - 0.4) < 1e-12);
    ec_gate_destroy(g);
    ec_config_free(&cfg);

    /* a preset picks the file's point */
    snprintf(yaml, sizeof(yaml), "gate: {calibration: %s, preset: conservative}\n%s", path, tiers);
    g = gate_from(yaml, &cfg);
    ec_gate_judge(g, 0, &gq, &r, &v);
    assert_true(v.threshold == 0.8);
    ec_gate_destroy(g);
    ec_config_free(&cfg);

    /* an explicit min_confidence wins, and complexity offsets add to it */
    snprintf(yaml, sizeof(yaml),
             "gate: {calibration: %s, min_confidence: 0.42, complexity_offset: {hard: 0.1}}\n%s",
             path, tiers);
    g = gate_from(yaml, &cfg);
    ec_gate_judge(g, 0, &gq, &r, &v);
    assert_true(v.threshold == 0.42);
    gq.complexity = EC_COMPLEXITY_HARD;
    ec_gate_judge(g, 0, &gq, &r, &v);
    assert_true(fabs(v.threshold - 0.52) < 1e-12);
    ec_gate_destroy(g);
    ec_config_free(&cfg);

    /* a bad file stops the gate with the file's name */
    snprintf(yaml, sizeof(yaml), "gate: {calibration: %s/none.json}\n%s", tmpdir, tiers);
    ec_error err = {0};
    memset(&cfg, 0, sizeof(cfg));
    assert_int_equal(ec_config_load_string(&cfg, yaml, strlen(yaml), &err), EC_OK);
    assert_int_equal(ec_gate_create(&g, &cfg, &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "gate.calibration"));
    assert_non_null(strstr(err.msg, "none.json"));
    ec_config_free(&cfg);
}

static void preroute_hard_queries(void **state)
{
    (void)state;
    ec_config cfg;
    const char *hard = "Derive the transfer function of the hydraulic press with its PID "
                       "setpoint loop, prove stability, then design a compensator step by step.";
    ec_query q = {.prompt = (char *)hard};
    ec_gate_query gq;
    ec_gate *g = gate_from("gate: {preroute: true}\n", &cfg);
    ec_gate_classify(g, &q, &gq);
    assert_true(gq.complexity >= EC_COMPLEXITY_HARD);
    assert_true(gq.preroute_cloud);
    q.prompt = "Convert 150 psi to bar.";
    ec_gate_classify(g, &q, &gq);
    assert_false(gq.preroute_cloud);
    ec_gate_destroy(g);
    ec_config_free(&cfg);
    g = gate_from("site: x\n", &cfg); /* off by default */
    q.prompt = (char *)hard;
    ec_gate_classify(g, &q, &gq);
    assert_false(gq.preroute_cloud);
    ec_gate_destroy(g);
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
        cmocka_unit_test(refusal_is_lower_than_hedge),
        cmocka_unit_test(low_quantiles_are_kept),
        cmocka_unit_test(complexity_levels),
        cmocka_unit_test(complexity_filter_matches_plain_scan),
        cmocka_unit_test(length_and_keyword_coverage_without_logprobs),
        cmocka_unit_test(calibrated_judge_and_precedence),
        cmocka_unit_test(preroute_hard_queries),
    };
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ec-test-gate-XXXXXX");
    if (!mkdtemp(tmpdir))
        return 1;
    int rc = cmocka_run_group_tests_name("gate", tests, NULL, NULL);
    char path[128];
    snprintf(path, sizeof(path), "%s/cal.json", tmpdir);
    unlink(path);
    rmdir(tmpdir);
    return rc;
}
