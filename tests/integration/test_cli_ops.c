/* The operator's commands against the real stack (private Mosquitto, the
 * simulator, router, local and relay as separate processes), run as a user
 * runs them: the built `edgecascade` binary as a child process.
 *
 * tail: follows <root>/result/# live, one JSON line per result, and stops
 * after --count; --source filters. doctor: every check OK with everything
 * running (exit 0); a stopped edgecascade-local shows as offline (exit 1); a
 * local tier pointing at nothing fails its model-server check with a
 * "cannot reach" hint; journaled queries waiting; no broker. Doctor where
 * credentials matter (a secured broker, a cloud refusing the key) is
 * test_cli_doctor_secure.c; the shared fixtures are in
 * test_cli_ops_fixtures.h. */
#define _GNU_SOURCE
#include "test_cli_ops_fixtures.h"

#include "../../common/store/store_internal.h"

/* ---- tail ---- */

static json_t *json_line(const char *line, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!j)
        fail_msg("not a JSON line (%s): %.*s", je.text, (int)len, line);
    return j;
}

static void tail_json_two_results(void **state)
{
    (void)state;
    ech *h = &g_h;
    child c;
    start_stack(h);
    char *args[] = {"tail", "--count", "2", "--json", NULL};
    spawn_cli(h, &c, "tail", args);
    wait_for_text(c.err, "following ", 10000);

    /* One confident local answer, one escalated to the cloud. */
    ec_result r1, r2;
    assert_int_equal(
        ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &r1, 10000), 0);
    assert_int_equal(
        ech_ask(h, "Motor at 85 C with 12 mm/s vibration: failure mode?", NULL, &r2, 10000), 0);
    assert_int_equal(wait_cli(&c, 10000), 0);

    char *out = read_all(c.out);
    char *err = read_all(c.err);
    no_sanitizer_report("tail", err);
    char *nl1 = strchr(out, '\n');
    assert_non_null(nl1);
    char *nl2 = strchr(nl1 + 1, '\n');
    assert_non_null(nl2);
    assert_string_equal(nl2 + 1, ""); /* exactly two lines */
    json_t *j1 = json_line(out, (size_t)(nl1 - out));
    json_t *j2 = json_line(nl1 + 1, (size_t)(nl2 - nl1 - 1));

    assert_string_equal(json_string_value(json_object_get(j1, "id")), r1.id);
    assert_string_equal(json_string_value(json_object_get(j1, "tier")), "local");
    assert_string_equal(json_string_value(json_object_get(j1, "model")), "llama3.2-1b");
    assert_true(json_is_false(json_object_get(j1, "escalated")));
    assert_string_equal(json_string_value(json_object_get(j1, "answer")), r1.answer);
    assert_true(json_number_value(json_object_get(j1, "confidence")) >=
                json_number_value(json_object_get(j1, "threshold")));

    assert_string_equal(json_string_value(json_object_get(j2, "id")), r2.id);
    assert_string_equal(json_string_value(json_object_get(j2, "tier")), "cloud");
    assert_string_equal(json_string_value(json_object_get(j2, "model")), "gpt-4o-mini");
    assert_true(json_is_true(json_object_get(j2, "escalated")));
    assert_true(json_number_value(json_object_get(j2, "cost_usd")) > 0);
    /* The JSON form rounds to 12 significant digits. */
    assert_true(fabs(json_number_value(json_object_get(j2, "cost_usd")) - r2.cost_usd) <
                1e-9 * r2.cost_usd + 1e-15);
    assert_int_equal(json_integer_value(json_object_get(j2, "revision")), 1);
    assert_true(json_is_null(json_object_get(j2, "error")));

    json_decref(j1);
    json_decref(j2);
    ec_result_clear(&r1);
    ec_result_clear(&r2);
    free(out);
    free(err);
    stack_done();
}

/* Human lines, only the asked source, and SIGTERM ends a tail without --count. */
static void tail_source_filter_and_sigterm(void **state)
{
    (void)state;
    ech *h = &g_h;
    child c;
    start_stack(h);
    char *args[] = {"tail", "--source", "plc-7", NULL};
    spawn_cli(h, &c, "tail", args);
    wait_for_text(c.err, "following ", 10000);

    ec_result other;
    assert_int_equal(
        ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &other, 10000), 0);
    const char *q = "{\"id\":\"tail-plc7\",\"prompt\":\"Part #4471 measured 25.04 mm. OK?\","
                    "\"source\":\"plc-7\"}";
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), "corr-plc7", 10000);
    assert_non_null(m);
    ec_mqtt_msg_free(m);
    wait_for_text(c.out, "tail-plc7", 5000);
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_int_equal(wait_cli(&c, 5000), 0);

    char *out = read_all(c.out);
    char *err = read_all(c.err);
    no_sanitizer_report("tail", err);
    assert_null(strstr(out, other.id));
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    /* "2026-11-29T08:10:00.123Z  tail-plc7  source=plc-7  asker=-  tier=local ..." */
    assert_int_equal(strlen(out) > 26, 1);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    assert_non_null(
        strstr(out, "  tail-plc7  source=plc-7  asker=-  tier=local  model=llama3.2-1b  conf="));
    assert_non_null(strstr(out, "  escalated=no  degraded=no  rev=1  cost=$0.000000  latency="));
    assert_non_null(strstr(out, "accepted"));
    ec_result_clear(&other);
    free(out);
    free(err);
    stack_done();
}

/* ---- doctor ---- */
static const char *const all_checks[] = {"config",
                                         "broker",
                                         "service router",
                                         "service local",
                                         "service relay",
                                         "model server local",
                                         "completion local",
                                         "logprobs local",
                                         "cloud key cloud",
                                         "breaker cloud",
                                         "disk",
                                         "store",
                                         NULL};

static void doctor_all_ok(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    /* The router creates the store at start; one decision makes it lived-in. */
    ec_result r;
    assert_int_equal(ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &r, 10000),
                     0);
    ec_result_clear(&r);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    if (rc != 0)
        fail_msg("doctor exited %d:\n%s", rc, out);
    size_t n = 0;
    for (size_t i = 0; all_checks[i]; i++, n++)
        assert_state(out, all_checks[i], "OK");
    /* Every line printed is one of those, in that order. */
    const char *prev = out;
    for (size_t i = 0; all_checks[i]; i++) {
        char line[1024];
        const char *at = strstr(out, check_line(out, all_checks[i], line, sizeof(line)));
        assert_true(at >= prev);
        prev = at;
    }
    char want[64];
    snprintf(want, sizeof(want), "\n%zu ok, 0 warnings, 0 failures\n", n);
    if (!strstr(out, want))
        fail_msg("no '%s' in:\n%s", want, out);
    assert_non_null(strstr(out, ": connected, subscribed to "));
    assert_non_null(strstr(out, "'llama3.2-1b' listed"));
    assert_non_null(strstr(out, "one token in "));
    assert_non_null(strstr(out, "key present ($EC_TEST_OPENAI_KEY)"));
    /* The key itself is never printed. */
    assert_null(strstr(out, "sk-test-not-a-real-key"));
    free(out);

    /* --online: the cheap call goes to the simulator's /v1/models with the key. */
    char *online[] = {"doctor", "--online", NULL};
    rc = run_cli(h, NULL, &out, online);
    if (rc != 0)
        fail_msg("doctor --online exited %d:\n%s", rc, out);
    assert_state(out, "cloud key cloud", "OK");
    assert_non_null(strstr(out, "accepted by http://127.0.0.1:"));
    free(out);
    stack_done();
}

static void doctor_local_stopped(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    ech_stop(&h->local);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "service router", "OK");
    assert_state(out, "service relay", "OK");
    assert_state(out, "service local", "FAIL");
    char line[1024];
    check_line(out, "service local", line, sizeof(line));
    assert_non_null(strstr(line, "offline since "));
    assert_non_null(strstr(out, "fix: start edgecascade-local"));
    /* The model server itself is still up. */
    assert_state(out, "model server local", "OK");
    assert_non_null(strstr(out, "1 failure\n"));
    free(out);
    stack_done();
}

/* A router that stopped mid-query leaves it in its arrival journal: doctor
 * says how many and since when (the router re-runs them when it starts). */
static void doctor_journaled_queries_waiting(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    ech_stop(&h->router);
    ec_journal *jr = NULL;
    ec_error err = {0};
    assert_int_equal(ec_journal_open(&jr, h->db, &err), EC_OK);
    ec_mqtt_msg m = {.topic = "x/query", .payload = "{\"id\":\"doctor-j1\",\"prompt\":\"hello\"}"};
    m.len = strlen(m.payload);
    assert_int_equal(ec_journal_test_add_at(jr, &m, ec_now_ms() - 300000, &err), EC_OK);
    ec_journal_close(jr);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1); /* the router is down: a failure */
    assert_state(out, "journal", "WARN");
    char line[1024];
    check_line(out, "journal", line, sizeof(line));
    assert_non_null(strstr(line, "1 query received and not yet decided, the oldest 5m ago"));
    assert_non_null(strstr(out, "re-runs them when it starts"));
    free(out);
    stack_done();
}

static void doctor_wrong_base_url(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    /* Same plant, but this copy of the config points the local tier at a port
     * nothing listens on. */
    char bad[600];
    snprintf(bad, sizeof(bad), "%.255s/bad.yaml", h->dir);
    size_t len = 0;
    char *text = ec_read_file(h->config, 1 << 20, &len);
    assert_non_null(text);
    char from[64];
    snprintf(from, sizeof(from), "base_url: http://127.0.0.1:%d/v1", h->sim_port);
    char *at = strstr(text, from); /* the first one is the local tier's */
    assert_non_null(at);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "%.*sbase_url: http://127.0.0.1:1/v1%s", (int)(at - text), text, at + strlen(from));
    fclose(f);
    free(text);

    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, bad, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "service local", "OK");
    assert_state(out, "model server local", "FAIL");
    char line[1024];
    check_line(out, "model server local", line, sizeof(line));
    assert_non_null(strstr(line, "cannot reach http://127.0.0.1:1/v1"));
    assert_non_null(strstr(line, "is vLLM running?"));
    assert_non_null(strstr(out, "correct this tier's base_url"));
    /* No completion is tried against a server that is not there. */
    assert_null(strstr(out, "completion local"));
    assert_state(out, "cloud key cloud", "OK");
    free(out);
    stack_done();
}

/* No broker at all: the broker check says so with a fix, and the checks
 * that need it say they cannot tell. */
static void doctor_no_broker(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    ech_init(h, "cliops");
    g_live = true;
    ech_start_sim(h, NULL);
    ech_write_config(h, NULL);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "config", "OK");
    assert_state(out, "broker", "FAIL");
    assert_non_null(strstr(out, "cannot connect to tcp://127.0.0.1:"));
    assert_non_null(strstr(out, "fix: start the broker"));
    /* Not failures of their own: the broker's is the cause. */
    assert_state(out, "service router", "WARN");
    assert_non_null(strstr(out, "unknown: the broker could not be asked"));
    assert_state(out, "breaker cloud", "WARN");
    assert_state(out, "model server local", "OK");
    assert_state(out, "store", "FAIL");
    free(out);

    /* A bad file is a finding too (exit 1, not the usage exit 2), and the
     * checks stop there: everything else depends on it. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%.255s/bad.yaml", h->dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("gate:\n  min_confidence: 1.5\n", f);
    fclose(f);
    rc = run_cli(h, bad, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "config", "FAIL");
    assert_non_null(strstr(out, "min_confidence"));
    assert_non_null(strstr(out, "fix: correct the named line"));
    assert_non_null(strstr(out, "\n0 ok, 0 warnings, 1 failure\n"));
    free(out);
    stack_done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(tail_json_two_results, teardown),
        cmocka_unit_test_teardown(tail_source_filter_and_sigterm, teardown),
        cmocka_unit_test_teardown(doctor_all_ok, teardown),
        cmocka_unit_test_teardown(doctor_local_stopped, teardown),
        cmocka_unit_test_teardown(doctor_journaled_queries_waiting, teardown),
        cmocka_unit_test_teardown(doctor_wrong_base_url, teardown),
        cmocka_unit_test_teardown(doctor_no_broker, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
