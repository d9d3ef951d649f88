/* The gate on recorded answers, through the real services: the simulator
 * replays the project's small synthetic corpus (tests/data/replay-small.jsonl),
 * the router loads a calibration fitted on it, and every decision must be the
 * one the calibration file predicts: local iff the calibrated confidence of
 * exp(confidence_logprob) reaches the file's threshold. Then `edgecascade
 * eval` runs the same corpus through its own private services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/calib.h"
#include "edgecascade/util.h"
#include "harness.h"

#define CORPUS EC_SOURCE_DIR "/tests/data/replay-small.jsonl"

/* The harness starts the simulator with a script; replay mode needs other
 * arguments, so it is started here and handed to the harness to stop. */
static void start_replay_sim(ech *h)
{
    char portfile[600];
    snprintf(portfile, sizeof(portfile), "%s/sim.port", h->dir);
    ech_proc *p = &h->sim;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "sim");
    snprintf(p->log, sizeof(p->log), "%s/sim.log", h->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execl(EC_BIN_DIR "/edgecascade-sim", "edgecascade-sim", "--port", "0", "--port-file",
              portfile, "--replay", CORPUS, "--replay-map",
              "sim-small=sim-small,sim-large=sim-large", (char *)NULL);
        _exit(127);
    }
    p->pid = pid;
    for (int i = 0; i < 400; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int port = 0;
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0) {
                h->sim_port = port;
                return;
            }
        }
        if (!ech_alive(p))
            break;
        ec_sleep_ms(25);
    }
    ech_dump_logs(h);
    fail_msg("edgecascade-sim --replay did not start");
}

static void decisions_match_the_calibration_file(void **state)
{
    (void)state;
    ech h;
    ech_init(&h, "replay");
    ec_corpus corpus;
    ec_error err = {0};
    assert_int_equal(ec_corpus_load(CORPUS, &corpus, &err), EC_OK);
    ec_calib_sample *s = calloc(corpus.n_rows, sizeof(*s));
    for (size_t i = 0; i < corpus.n_rows; i++) {
        const ec_corpus_answer *l = ec_corpus_find(&corpus.rows[i], "sim-small");
        const ec_corpus_answer *c = ec_corpus_find(&corpus.rows[i], "sim-large");
        s[i] =
            (ec_calib_sample){ec_corpus_raw(l), l->correct, c->correct, l->cost_usd, c->cost_usd};
    }
    ec_calib cal;
    assert_int_equal(ec_calib_fit(s, corpus.n_rows, 0.95, &cal, &err), EC_OK);
    cal.local_model = strdup("sim-small");
    cal.cloud_model = strdup("sim-large");
    char cal_path[600], extra[800], tiers[1200];
    snprintf(cal_path, sizeof(cal_path), "%s/calibration.json", h.dir);
    assert_int_equal(ec_calib_save(&cal, cal_path, &err), EC_OK);

    ech_start_broker(&h);
    start_replay_sim(&h);
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: vllm, model: sim-small, base_url: "
             "'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n"
             "  - {name: cloud, provider: openai, model: sim-large, base_url: "
             "'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY, timeout_ms: 5000}\n",
             h.sim_port, h.sim_port);
    snprintf(extra, sizeof(extra), "gate:\n  calibration: %s\n", cal_path);
    ech_write_config_tiers(&h, tiers, extra);
    ech_start_services(&h);
    ech_connect_client(&h);

    size_t local = 0, cloud = 0;
    for (size_t i = 0; i < corpus.n_rows; i++) {
        const ec_corpus_row *row = &corpus.rows[i];
        const ec_corpus_answer *l = ec_corpus_find(row, "sim-small");
        const ec_corpus_answer *c = ec_corpus_find(row, "sim-large");
        double want_conf = ec_calib_apply(&cal, ec_corpus_raw(l));
        bool want_local = want_conf >= cal.threshold;
        ec_result res = {0};
        if (ech_ask(&h, row->prompt, NULL, &res, 15000) != 0) {
            ech_dump_logs(&h);
            fail_msg("row %s: no result", row->id);
        }
        if (res.error.code)
            fail_msg("row %s: error %s: %s", row->id, res.error.code, res.error.message);
        assert_true(res.n_attempts >= 1);
        /* the router's calibrated confidence is the file's, to rounding on the wire */
        if (fabs(res.attempts[0].confidence - want_conf) > 1e-6)
            fail_msg("row %s: confidence %.9f, the file says %.9f", row->id,
                     res.attempts[0].confidence, want_conf);
        assert_true(fabs(res.attempts[0].threshold - cal.threshold) < 1e-12);
        bool got_local = strcmp(res.tier, "local") == 0;
        if (got_local != want_local)
            fail_msg("row %s: served by %s, the file predicts %s (confidence %.6f, threshold "
                     "%.6f)",
                     row->id, res.tier, want_local ? "local" : "cloud", want_conf, cal.threshold);
        assert_string_equal(res.answer, got_local ? l->answer : c->answer);
        local += got_local;
        cloud += !got_local;
        ec_result_clear(&res);
    }
    /* the corpus exercises both sides of the threshold */
    assert_true(local > 10 && cloud > 10);
    /* the decision log agrees (the writer commits in batches: wait for it) */
    long logged = -1;
    for (int i = 0; i < 200 && logged != (long)cloud; i++) {
        ec_sleep_ms(25);
        logged = ech_sql_long(&h, "SELECT COUNT(*) FROM decisions WHERE tier_kind = 'cloud'");
    }
    assert_int_equal(logged, (long)cloud);
    /* the null-logprob row had the lowest confidence and escalated */
    assert_int_equal(ech_sql_long(&h, "SELECT COUNT(*) FROM attempts a JOIN decisions d ON "
                                      "d.id = a.decision_id WHERE d.query_id IS NOT NULL AND "
                                      "a.seq = 0 AND a.raw_confidence = 0 AND d.tier_kind = "
                                      "'cloud'"),
                     1);

    ec_calib_free(&cal);
    free(s);
    ec_corpus_free(&corpus);
    ech_teardown(&h);
}

static void eval_runs_the_corpus_through_the_services(void **state)
{
    (void)state;
    char cmd[1024];
    snprintf(cmd, sizeof(cmd),
             "%s/edgecascade eval --corpus %s --local sim-small --cloud sim-large --json",
             EC_BIN_DIR, CORPUS);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char out[8192];
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("eval failed (%d): %s", st, out);
    json_error_t je;
    json_t *j = json_loads(out, 0, &je);
    if (!j)
        fail_msg("eval did not print JSON: %s", out);
    static const char *const keys[] = {"accuracy",
                                       "local_accuracy",
                                       "cloud_accuracy",
                                       "escalation_rate",
                                       "cost_usd",
                                       "cost_all_cloud_usd",
                                       "hindsight_escalation_rate",
                                       "ece"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (!json_is_number(json_object_get(j, keys[i])))
            fail_msg("eval JSON lacks %s: %s", keys[i], out);
    assert_string_equal(json_string_value(json_object_get(j, "path")), "services");
    assert_int_equal(json_integer_value(json_object_get(j, "n")), 96);
    assert_int_equal(json_integer_value(json_object_get(j, "mismatches")), 0);
    double esc = json_number_value(json_object_get(j, "escalation_rate"));
    double hind = json_number_value(json_object_get(j, "hindsight_escalation_rate"));
    assert_true(esc > 0 && esc < 1);
    assert_true(esc >= hind - 1e-9); /* nothing beats hindsight at the same accuracy */
    assert_true(json_number_value(json_object_get(j, "cost_usd")) <
                json_number_value(json_object_get(j, "cost_all_cloud_usd")));

    /* the offline path gives the same decisions */
    snprintf(cmd, sizeof(cmd),
             "%s/edgecascade eval --offline --corpus %s --local sim-small --cloud sim-large --json",
             EC_BIN_DIR, CORPUS);
    p = popen(cmd, "r");
    assert_non_null(p);
    n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    assert_int_equal(pclose(p), 0);
    json_t *o = json_loads(out, 0, &je);
    assert_non_null(o);
    assert_true(json_number_value(json_object_get(o, "escalation_rate")) == esc);
    assert_true(json_number_value(json_object_get(o, "accuracy")) ==
                json_number_value(json_object_get(j, "accuracy")));
    json_decref(o);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(decisions_match_the_calibration_file),
        cmocka_unit_test(eval_runs_the_corpus_through_the_services),
    };
    return cmocka_run_group_tests_name("replay", tests, NULL, NULL);
}
