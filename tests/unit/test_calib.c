/* The gate's calibration: isotonic fit, threshold choice, the calibration
 * file, the corpus reader and `edgecascade calibrate`'s errors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/calib.h"
#include "edgecascade/util.h"

#define CORPUS EC_SOURCE_DIR "/tests/data/replay-small.jsonl"
#define SHARED EC_SOURCE_DIR "/../shared/eval/cascade-replay/mmlu-train.jsonl"

static char dir[64];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static void isotonic_is_monotone_and_fits_means(void **state)
{
    (void)state;
    double x[] = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};
    double y[] = {0, 1, 0, 1, 1, 1};
    double *kx, *ky;
    size_t nk;
    assert_int_equal(ec_calib_isotonic(x, y, 6, &kx, &ky, &nk, NULL), EC_OK);
    /* 0 | (1,0) pooled to 0.5 | 1,1,1 */
    assert_int_equal(nk, 3);
    assert_true(fabs(ky[0] - 0.0) < 1e-12);
    assert_true(fabs(ky[1] - 0.5) < 1e-12);
    assert_true(fabs(kx[1] - 0.25) < 1e-12);
    assert_true(fabs(ky[2] - 1.0) < 1e-12);
    for (size_t i = 1; i < nk; i++)
        assert_true(kx[i] > kx[i - 1] && ky[i] > ky[i - 1]);
    /* interpolation between centres, flat beyond the ends */
    assert_true(fabs(ec_calib_interp(kx, ky, nk, 0.175) - 0.25) < 1e-12);
    assert_true(ec_calib_interp(kx, ky, nk, 0.0) == 0.0);
    assert_true(ec_calib_interp(kx, ky, nk, 1.0) == 1.0);
    free(kx);
    free(ky);
}

static void isotonic_pools_ties_and_ignores_order(void **state)
{
    (void)state;
    double x1[] = {0.5, 0.5, 0.5, 0.9, 0.1, 0.5};
    double y1[] = {1, 0, 1, 1, 0, 0};
    double x2[] = {0.5, 0.1, 0.9, 0.5, 0.5, 0.5};
    double y2[] = {0, 0, 1, 1, 1, 0};
    double *ax, *ay, *bx, *by;
    size_t na, nb;
    assert_int_equal(ec_calib_isotonic(x1, y1, 6, &ax, &ay, &na, NULL), EC_OK);
    assert_int_equal(ec_calib_isotonic(x2, y2, 6, &bx, &by, &nb, NULL), EC_OK);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++)
        assert_true(ax[i] == bx[i] && ay[i] == by[i]);
    /* the four 0.5 samples are one knot at their mean label */
    assert_int_equal(na, 3);
    assert_true(ax[1] == 0.5 && fabs(ay[1] - 0.5) < 1e-12);
    free(ax);
    free(ay);
    free(bx);
    free(by);
}

static void fill(ec_calib_sample *s, size_t n, bool local, bool cloud)
{
    for (size_t i = 0; i < n; i++)
        s[i] = (ec_calib_sample){.raw = (double)(i + 1) / (double)(n + 1),
                                 .local_correct = local,
                                 .cloud_correct = cloud,
                                 .cloud_cost = 1};
}

static void degenerate_corpora(void **state)
{
    (void)state;
    ec_calib_sample s[20];
    ec_calib c;
    /* all correct: one knot at 1, everything accepted */
    fill(s, 20, true, true);
    assert_int_equal(ec_calib_fit(s, 20, 0.95, &c, NULL), EC_OK);
    assert_int_equal(c.nk, 1);
    assert_true(c.ky[0] == 1.0);
    ec_calib_point p;
    ec_calib_evaluate(&c, s, 20, c.threshold, &p);
    assert_true(p.escalation == 0.0);
    ec_calib_free(&c);
    /* all wrong locally, cloud right: everything escalates */
    fill(s, 20, false, true);
    assert_int_equal(ec_calib_fit(s, 20, 0.95, &c, NULL), EC_OK);
    assert_true(c.ky[0] == 0.0);
    ec_calib_evaluate(&c, s, 20, c.threshold, &p);
    assert_true(p.escalation == 1.0);
    assert_true(p.accuracy == 1.0);
    ec_calib_free(&c);
    /* one row */
    assert_int_equal(ec_calib_fit(s, 1, 0.95, &c, NULL), EC_OK);
    assert_int_equal(c.nk, 1);
    ec_calib_free(&c);
    /* none, and a bad target */
    ec_error err = {0};
    assert_int_equal(ec_calib_fit(s, 0, 0.95, &c, &err), EC_ERR_INVAL);
    assert_int_equal(ec_calib_fit(s, 5, 1.5, &c, &err), EC_ERR_INVAL);
    assert_non_null(strstr(err.msg, "target"));
}

static void pick_reaches_target_with_fewest_escalations(void **state)
{
    (void)state;
    /* 10 drafts; the 4 least confident are wrong, the cloud is always right. */
    ec_calib_sample s[10];
    for (int i = 0; i < 10; i++)
        s[i] = (ec_calib_sample){
            .raw = 0.05 + 0.1 * i, .local_correct = i >= 4, .cloud_correct = true, .cloud_cost = 1};
    ec_calib c;
    assert_int_equal(ec_calib_fit(s, 10, 1.0, &c, NULL), EC_OK);
    ec_calib_point p;
    ec_calib_evaluate(&c, s, 10, c.threshold, &p);
    /* the map rises smoothly between the wrong and the right block, so drafts
     * between the two centres are not trusted fully: never below hindsight */
    assert_true(p.accuracy == 1.0);
    assert_true(p.escalation >= 0.4 - 1e-12 && p.escalation <= 0.7 + 1e-12);
    assert_true(fabs(ec_calib_hindsight(s, 10, 1.0) - 0.4) < 1e-12);
    /* 90 %: one wrong draft may stay local */
    assert_true(fabs(ec_calib_hindsight(s, 10, 0.9) - 0.3) < 1e-12);
    /* presets are ordered: aggressive escalates least */
    assert_true(c.preset_threshold[0] <= c.preset_threshold[1]);
    assert_true(c.preset_threshold[1] <= c.preset_threshold[2]);
    assert_true(c.n_curve == 21);
    ec_calib_free(&c);
}

static void file_round_trip(void **state)
{
    (void)state;
    ec_corpus corpus;
    ec_error err = {0};
    assert_int_equal(ec_corpus_load(CORPUS, &corpus, &err), EC_OK);
    ec_calib_sample *s = calloc(corpus.n_rows, sizeof(*s));
    for (size_t i = 0; i < corpus.n_rows; i++) {
        const ec_corpus_answer *l = ec_corpus_find(&corpus.rows[i], "sim-small");
        const ec_corpus_answer *h = ec_corpus_find(&corpus.rows[i], "sim-large");
        s[i] =
            (ec_calib_sample){ec_corpus_raw(l), l->correct, h->correct, l->cost_usd, h->cost_usd};
    }
    ec_calib a, b, again;
    assert_int_equal(ec_calib_fit(s, corpus.n_rows, 0.95, &a, &err), EC_OK);
    assert_int_equal(ec_calib_fit(s, corpus.n_rows, 0.95, &again, &err), EC_OK);
    assert_true(a.threshold == again.threshold && a.nk == again.nk); /* reproducible */
    a.local_model = strdup("sim-small");
    a.cloud_model = strdup("sim-large");
    char path[128];
    path_in(path, sizeof(path), "cal.json");
    assert_int_equal(ec_calib_save(&a, path, &err), EC_OK);
    assert_int_equal(ec_calib_load(path, &b, &err), EC_OK);
    assert_string_equal(b.local_model, "sim-small");
    assert_int_equal(a.nk, b.nk);
    for (size_t i = 0; i < a.nk; i++)
        assert_true(a.kx[i] == b.kx[i] && a.ky[i] == b.ky[i]);
    assert_true(a.threshold == b.threshold);
    for (int i = 0; i < EC_CALIB_PRESETS; i++)
        assert_true(a.preset_threshold[i] == b.preset_threshold[i]);
    assert_int_equal(a.n_curve, b.n_curve);
    for (double x = 0; x <= 1.0; x += 0.01)
        assert_true(ec_calib_apply(&a, x) == ec_calib_apply(&b, x));
    ec_calib_free(&a);
    ec_calib_free(&b);
    ec_calib_free(&again);
    free(s);
    ec_corpus_free(&corpus);
}

static void bad_calibration_files(void **state)
{
    (void)state;
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"not json", "not JSON"},
        {"{\"version\": 2}", "version"},
        {"{\"version\": 1, \"feature\": \"other\"}", "feature"},
        {"{\"version\": 1, \"feature\": \"gate-raw-v1\", \"target\": 0.95, \"threshold\": 0.5, "
         "\"knots\": []}",
         "knots"},
        {"{\"version\": 1, \"feature\": \"gate-raw-v1\", \"target\": 0.95, \"threshold\": 0.5, "
         "\"knots\": [[0.5, 0.9], [0.4, 0.95]]}",
         "knots[1]"},
        {"{\"version\": 1, \"feature\": \"gate-raw-v1\", \"target\": 0.95, \"threshold\": 0.5, "
         "\"knots\": [[0.5, 0.9]]}",
         "presets.aggressive"},
    };
    char path[128];
    path_in(path, sizeof(path), "bad.json");
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].text);
        ec_calib c;
        ec_error err = {0};
        assert_int_not_equal(ec_calib_load(path, &c, &err), EC_OK);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg, cases[i].want);
    }
}

static void corpus_errors_name_line_and_field(void **state)
{
    (void)state;
    char path[128];
    path_in(path, sizeof(path), "c.jsonl");
    static const struct {
        const char *text, *want;
    } cases[] = {
        {"", "empty corpus"},
        {"\n\n", "empty corpus"},
        {"{\"id\":\"a\",\"prompt\":\"p\",\"models\":{\"m\":{\"answer\":\"A\","
         "\"confidence_logprob\":-1}}}\n",
         ":1: models.m.correct: missing"},
        {"{\"id\":\"a\",\"prompt\":\"p\",\"models\":{\"m\":{\"answer\":\"A\",\"correct\":true,"
         "\"confidence_logprob\":-1}}}\n{\"id\":\"b\",\"models\":{}}\n",
         ":2: prompt"},
        {"{\"id\":\"a\",\"prompt\":\"p\",\"models\":{\"m\":{\"answer\":\"A\",\"correct\":true}}}\n",
         "confidence_logprob: missing"},
        {"{\"id\":\"a\",\"prompt\":\"p\",\"models\":{\"m\":{\"answer\":\"A\",\"correct\":true,"
         "\"confidence_logprob\":0.5}}}\n",
         "<= 0 or null"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        write_file(path, cases[i].text);
        ec_corpus c;
        ec_error err = {0};
        assert_int_not_equal(ec_corpus_load(path, &c, &err), EC_OK);
        if (!strstr(err.msg, cases[i].want))
            fail_msg("case %zu: '%s' does not mention '%s'", i, err.msg, cases[i].want);
    }
    ec_corpus c;
    ec_error err = {0};
    assert_int_equal(ec_corpus_load(CORPUS, &c, &err), EC_OK);
    assert_int_equal(c.n_rows, 96);
    assert_int_equal(ec_corpus_check_model(&c, "sim-small", &err), EC_OK);
    assert_int_equal(ec_corpus_check_model(&c, "gpt-9", &err), EC_ERR_NOTFOUND);
    assert_non_null(strstr(err.msg, "unknown model 'gpt-9'"));
    assert_non_null(strstr(err.msg, "sim-large"));
    /* the null logprob row is the lowest possible signal */
    for (size_t i = 0; i < c.n_rows; i++)
        if (strcmp(c.rows[i].id, "synthetic-17") == 0)
            assert_true(ec_corpus_raw(ec_corpus_find(&c.rows[i], "sim-small")) == 0.0);
    ec_corpus_free(&c);
}

/* Runs the CLI; returns its exit status, stderr in err_out. */
static int cli(const char *args, char *err_out, size_t cap)
{
    char errf[128], cmd[1024];
    path_in(errf, sizeof(errf), "stderr.txt");
    snprintf(cmd, sizeof(cmd), "%s/edgecascade %s >/dev/null 2>%s", EC_BIN_DIR, args, errf);
    int st = system(cmd);
    size_t len = 0;
    char *t = ec_read_file(errf, 1 << 16, &len);
    snprintf(err_out, cap, "%s", t ? t : "");
    free(t);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void calibrate_cli_errors(void **state)
{
    (void)state;
    char e[4096], args[1024], empty[128], bad[128], out[128];
    path_in(empty, sizeof(empty), "empty.jsonl");
    path_in(bad, sizeof(bad), "bad.jsonl");
    path_in(out, sizeof(out), "cli.json");
    write_file(empty, "");
    write_file(bad, "{\"id\":\"a\",\"prompt\":\"p\",\"models\":{\"m\":{\"answer\":\"A\"}}}\n");

    assert_int_equal(cli("calibrate --local a --cloud b", e, sizeof(e)), 2);
    assert_non_null(strstr(e, "--corpus"));
    snprintf(args, sizeof(args), "calibrate --corpus %s --local a", CORPUS);
    assert_int_equal(cli(args, e, sizeof(e)), 2);
    assert_non_null(strstr(e, "--cloud"));
    snprintf(args, sizeof(args), "calibrate --corpus %s --local a --cloud b", empty);
    assert_int_equal(cli(args, e, sizeof(e)), 2);
    assert_non_null(strstr(e, "empty corpus"));
    snprintf(args, sizeof(args), "calibrate --corpus %s --local m --cloud m", bad);
    assert_int_equal(cli(args, e, sizeof(e)), 2);
    assert_non_null(strstr(e, "models.m.correct: missing"));
    snprintf(args, sizeof(args), "calibrate --corpus %s --local sim-small --cloud gpt-9", CORPUS);
    assert_int_equal(cli(args, e, sizeof(e)), 2);
    assert_non_null(strstr(e, "unknown model 'gpt-9'"));
    snprintf(args, sizeof(args), "calibrate --corpus /nonexistent.jsonl --local a --cloud b");
    assert_int_equal(cli(args, e, sizeof(e)), 1);
    assert_non_null(strstr(e, "/nonexistent.jsonl"));
    snprintf(args, sizeof(args), "calibrate --corpus %s --local a --cloud b --target 2", CORPUS);
    assert_int_equal(cli(args, e, sizeof(e)), 2);
    assert_non_null(strstr(e, "--target"));
    /* and a good run writes a file the loader takes */
    snprintf(args, sizeof(args),
             "calibrate --corpus %s --local sim-small --cloud sim-large --output %s", CORPUS, out);
    assert_int_equal(cli(args, e, sizeof(e)), 0);
    ec_calib c;
    ec_error err = {0};
    assert_int_equal(ec_calib_load(out, &c, &err), EC_OK);
    assert_string_equal(c.cloud_model, "sim-large");
    ec_calib_free(&c);
}

static void short_answer_labels_from_store(void **state)
{
    (void)state;
    /* --from-store on a log without labelled drafts is a clear error */
    char e[4096], args[512], db[128];
    path_in(db, sizeof(db), "missing.db");
    snprintf(args, sizeof(args), "calibrate --from-store --db %s", db);
    assert_int_equal(cli(args, e, sizeof(e)), 1);
    assert_non_null(strstr(e, "no such decision log"));
}

/* On the shared corpus (when present): the cross-fitted gate stays close to
 * the hindsight-best threshold. */
static void shared_corpus_figures(void **state)
{
    (void)state;
    if (access(SHARED, R_OK) != 0) {
        printf("shared corpus absent (%s): figures not checked here\n", SHARED);
        return;
    }
    char e[4096], args[1024];
    snprintf(args, sizeof(args),
             "eval --offline --corpus %s --local llama3.2-3b --cloud llama3.1-405b", SHARED);
    assert_int_equal(cli(args, e, sizeof(e)), 0);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ec-test-calib-XXXXXX");
    if (!mkdtemp(dir))
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(isotonic_is_monotone_and_fits_means),
        cmocka_unit_test(isotonic_pools_ties_and_ignores_order),
        cmocka_unit_test(degenerate_corpora),
        cmocka_unit_test(pick_reaches_target_with_fewest_escalations),
        cmocka_unit_test(file_round_trip),
        cmocka_unit_test(bad_calibration_files),
        cmocka_unit_test(corpus_errors_name_line_and_field),
        cmocka_unit_test(calibrate_cli_errors),
        cmocka_unit_test(short_answer_labels_from_store),
        cmocka_unit_test(shared_corpus_figures),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    if (system(cmd) != 0)
        rc = rc ? rc : 1;
    return rc;
}
