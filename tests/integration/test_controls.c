/* The router's controls through the real services: redaction before a prompt
 * leaves the device (what the simulator's cloud model actually received),
 * budget caps (degraded answers at the cap, the cap surviving a router
 * restart, the warning on <root>/status/budget), the answer cache (tier
 * "cache", no model call, TTL) and the consent policy. Each test starts its
 * own broker, simulator and services. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

#define LOCAL "llama3.2-1b"
#define CLOUD "gpt-4o-mini"

/* "alarm" is doubtful on the device and answered by the cloud; "tolerance"
 * is answered confidently on the device. */
static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"tolerance\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"PASS: within tolerance.\", \"logprob\": -0.02},\n"
    "  {\"match\": \"alarm\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"Maybe restart it.\", \"logprob\": -1.2},\n"
    "  {\"match\": \"alarm\", \"model\": \"gpt-4o-mini\",\n"
    "   \"answer\": \"Check the hydraulic accumulator pre-charge first.\", \"logprob\": -0.03}\n"
    " ]}\n";

static void start(ech *h, const char *name, const char *extra_yaml)
{
    ech_init(h, name);
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(h);
    ech_start_sim(h, path);
    ech_write_config(h, extra_yaml);
    ech_start_services(h);
    ech_connect_client(h);
}

/* Selected columns of the query's decision row, once it is written. */
static char *row(ech *h, const char *id, const char *cols)
{
    char sql[600];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id='%s'", id);
    assert_int_equal(ech_sql_wait(h, sql, 1), 1);
    snprintf(sql, sizeof(sql), "SELECT %s FROM decisions WHERE query_id='%s'", cols, id);
    char *s = ech_sql(h, sql);
    assert_non_null(s);
    return s;
}

static void expect_row(ech *h, const char *id, const char *cols, const char *want)
{
    char *s = row(h, id, cols);
    if (strcmp(s, want) != 0)
        fail_msg("decision %s: %s = \"%s\", want \"%s\"", id, cols, s, want);
    free(s);
}

/* Sends a JSON query and decodes the JSON result. */
static void ask_json(ech *h, const char *json, ec_result *out)
{
    char corr[40];
    ec_id_new(corr);
    ec_mqtt_msg *m = ech_request(h, json, strlen(json), corr, 15000);
    assert_non_null(m);
    ec_error err = {0};
    if (ec_result_decode_json(m->payload, m->len, out, &err))
        fail_msg("result: %s", err.msg);
    ec_mqtt_msg_free(m);
}

static void ask(ech *h, const char *prompt, ec_result *out)
{
    memset(out, 0, sizeof(*out));
    assert_int_equal(ech_ask(h, prompt, NULL, out, 15000), 0);
}

static bool contains(const char *hay, const char *needle)
{
    return hay && strstr(hay, needle);
}

/* ---- privacy ---- */

static const char *pii_prompt =
    "Press P-12 alarm: hydraulic pressure low. Contact anna.schmidt@example-plant.com or "
    "+49 30 1234567, PLC at 10.0.0.5, pump SN-004711, firmware 3.2.1 since 06:30.";

static void redacted_before_it_leaves_the_device(void **state)
{
    (void)state;
    ech h;
    start(&h, "controls-privacy",
          "privacy:\n"
          "  patterns:\n"
          "    - regex: \"SN-[0-9]{6}\"\n"
          "router:\n"
          "  replay_interval_ms: 200\n"
          "relay:\n"
          "  retries: 0\n"
          "cache:\n"
          "  enabled: false\n");
    ec_result r;
    ask(&h, pii_prompt, &r);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_true(r.redacted);
    /* The local tier saw the original, the cloud only the placeholders. */
    char *local = ech_sim_last_request(&h, LOCAL);
    char *cloud = ech_sim_last_request(&h, CLOUD);
    assert_true(contains(local, "anna.schmidt@example-plant.com"));
    assert_true(contains(local, "SN-004711"));
    assert_true(contains(cloud, "Contact [EMAIL] or [PHONE], PLC at [IP], pump [SERIAL], "
                                "firmware 3.2.1 since 06:30."));
    assert_false(contains(cloud, "anna.schmidt"));
    assert_false(contains(cloud, "1234567"));
    assert_false(contains(cloud, "10.0.0.5"));
    assert_false(contains(cloud, "004711"));
    free(local);
    free(cloud);
    expect_row(&h, r.id, "left_device || '|' || redacted", "1|1");
    ec_result_clear(&r);

    /* Answered on the device: nothing left it, nothing was masked. */
    ask(&h, "Within tolerance? Report to ops@plant.example", &r);
    assert_string_equal(r.tier, "local");
    assert_false(r.redacted);
    expect_row(&h, r.id, "left_device || '|' || redacted", "0|0");
    ec_result_clear(&r);

    /* A replay of the offline queue is masked too. */
    ech_sim_fault(&h, "{\"model\": \"gpt-4o-mini\", \"status\": 500}");
    const char *q = "{\"id\":\"replayed-1\",\"prompt\":\"alarm again, mail ops@plant.example\"}";
    ask_json(&h, q, &r);
    assert_true(r.degraded);
    assert_int_equal(r.revision, 1);
    ec_result_clear(&r);
    ech_sim_fault(&h, "{\"model\": \"gpt-4o-mini\"}");
    ec_mqtt_msg *m = NULL;
    uint64_t deadline = ec_mono_us() + 15000000u;
    while (ec_mono_us() < deadline) {
        if (ec_mqtt_next(h.client, &m, 100) != EC_OK)
            continue;
        memset(&r, 0, sizeof(r));
        if (ec_result_decode_json(m->payload, m->len, &r, NULL) == EC_OK && r.revision == 2)
            break;
        ec_result_clear(&r);
        ec_mqtt_msg_free(m);
        m = NULL;
    }
    assert_non_null(m);
    ec_mqtt_msg_free(m);
    assert_string_equal(r.tier, "cloud");
    assert_true(r.redacted);
    ec_result_clear(&r);
    cloud = ech_sim_last_request(&h, CLOUD);
    assert_true(contains(cloud, "alarm again, mail [EMAIL]"));
    assert_false(contains(cloud, "ops@plant.example"));
    free(cloud);
    char sql[200];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM decisions WHERE query_id='replayed-1' AND revision=2");
    assert_int_equal(ech_sql_wait(&h, sql, 1), 1);
    expect_row(&h, "replayed-1", "left_device || '|' || redacted", "1|1");
    ech_teardown(&h);
}

/* A shadow copy (gate.shadow_rate) of a locally answered query is masked
 * too, and its decision row says it left the device. */
static void shadow_copies_are_redacted(void **state)
{
    (void)state;
    ech h;
    start(&h, "controls-shadow", "gate:\n  shadow_rate: 1\ncache:\n  enabled: false\n");
    ec_result r;
    ask(&h, "Within tolerance? Ask anna.schmidt@example-plant.com at 10.0.0.5", &r);
    assert_string_equal(r.tier, "local");
    assert_false(r.redacted); /* the answer itself never left */
    char sql[300];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM decisions d JOIN attempts a ON a.decision_id = d.id"
             " WHERE d.query_id='%s'",
             r.id);
    assert_int_equal(ech_sql_wait(&h, sql, 2), 2); /* the shadow call is appended */
    expect_row(&h, r.id, "left_device || '|' || redacted", "1|1");
    char *cloud = ech_sim_last_request(&h, CLOUD);
    assert_true(contains(cloud, "Within tolerance? Ask [EMAIL] at [IP]"));
    assert_false(contains(cloud, "anna.schmidt"));
    free(cloud);
    ec_result_clear(&r);
    ech_teardown(&h);
}

/* ---- budget ---- */

/* Waits for <root>/status/budget to show state want; returns the document. */
static json_t *budget_status(ech *h, const char *want)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64], topic[256];
    snprintf(cid, sizeof(cid), "ech-budget-%d", (int)getpid());
    snprintf(topic, sizeof(topic), "%s/status/budget", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    json_t *doc = NULL;
    uint64_t deadline = ec_mono_us() + 10000000u;
    while (!doc && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 100) != EC_OK)
            continue;
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        ec_mqtt_msg_free(m);
        if (j && strcmp(json_string_value(json_object_get(j, "state")) ?: "", want) == 0)
            doc = j;
        else
            json_decref(j);
    }
    ec_mqtt_destroy(c);
    if (!doc)
        fail_msg("no budget status \"%s\" on %s", want, topic);
    return doc;
}

static void budget_config(ech *h, double daily)
{
    char extra[300];
    snprintf(extra, sizeof(extra),
             "budget:\n  daily_usd: %.10f\nrouter:\n  replay_interval_ms: 200\n", daily);
    ech_write_config(h, extra);
}

static void restart_router(ech *h)
{
    ech_stop(&h->router);
    ech_start_one(h, &h->router, "router");
}

static void budget_cap_holds_across_a_restart(void **state)
{
    (void)state;
    ech h;
    start(&h, "controls-budget", "budget:\n  daily_usd: 1000\n");
    json_decref(budget_status(&h, "ok"));
    ec_result r;
    ask(&h, "Press P-1 alarm: what first?", &r);
    assert_string_equal(r.tier, "cloud");
    double c1 = r.cost_usd;
    assert_true(c1 > 0);
    expect_row(&h, r.id, "tier_kind", "cloud");
    ec_result_clear(&r);

    /* A cap that the spend so far fills to 85 %: read back from the log at
     * start, it is a warning at once. */
    double cap = c1 / 0.85;
    budget_config(&h, cap);
    restart_router(&h);
    json_t *st = budget_status(&h, "warning");
    double day = json_number_value(json_object_get(st, "day_usd"));
    assert_true(day > c1 * 0.999 && day < c1 * 1.001);
    assert_true(json_number_value(json_object_get(st, "daily_cap_usd")) > 0);
    json_decref(st);

    /* One more cloud call is allowed and crosses the cap. */
    ask(&h, "Press P-2 alarm: what first?", &r);
    assert_string_equal(r.tier, "cloud");
    ec_result_clear(&r);
    json_decref(budget_status(&h, "exhausted"));
    long calls = ech_sim_requests(&h, CLOUD);
    assert_int_equal(calls, 2);

    /* At the cap: the local draft, degraded, the escalation queued, the cap
     * named; the queue is not replayed into more spend. */
    ask(&h, "Press P-3 alarm: what first?", &r);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "local");
    assert_true(r.degraded);
    assert_true(contains(r.reason, "cloud budget reached"));
    assert_true(contains(r.reason, "daily cloud budget of"));
    char *reason = row(&h, r.id, "reason");
    assert_true(contains(reason, "daily cloud budget of"));
    free(reason);
    ec_result_clear(&r);
    ec_sleep_ms(1000); /* five replay rounds */
    assert_int_equal(ech_sim_requests(&h, CLOUD), calls);
    assert_int_equal(ech_sql_long(&h, "SELECT count(*) FROM outbox"), 1);

    /* A restart does not reset the cap. */
    restart_router(&h);
    json_decref(budget_status(&h, "exhausted"));
    ask(&h, "Press P-4 alarm: what first?", &r);
    assert_string_equal(r.tier, "local");
    assert_true(r.degraded);
    assert_true(contains(r.reason, "daily cloud budget of"));
    ec_result_clear(&r);
    ec_sleep_ms(600);
    assert_int_equal(ech_sim_requests(&h, CLOUD), calls);

    /* Without the offline queue: just the degraded draft. */
    ech_stop(&h.router);
    ech_write_config(&h, "budget:\n  daily_usd: 0.0000001\nrouter:\n  offline_queue: false\n");
    ech_start_one(&h, &h.router, "router");
    ask(&h, "Press P-5 alarm: what first?", &r);
    assert_string_equal(r.tier, "local");
    assert_true(r.degraded);
    assert_true(contains(r.reason, "serving the best draft"));
    assert_true(contains(r.reason, "budget: daily cloud budget of"));
    ec_result_clear(&r);
    assert_int_equal(ech_sim_requests(&h, CLOUD), calls);
    FILE *f = fopen(h.router.log, "r");
    assert_non_null(f);
    char line[1024];
    bool warned = false;
    while (fgets(line, sizeof(line), f))
        warned = warned || strstr(line, "past 80 % of a cap");
    fclose(f);
    assert_true(warned);

    /* SIGHUP with a higher cap: applied live, the budget is ok again and
     * the cloud answers. */
    ech_write_config(&h, "budget:\n  daily_usd: 1000\nrouter:\n  offline_queue: false\n");
    assert_int_equal(kill(h.router.pid, SIGHUP), 0);
    json_decref(budget_status(&h, "ok"));
    ask(&h, "Press P-6 alarm: what first?", &r);
    assert_string_equal(r.tier, "cloud");
    assert_false(r.degraded);
    ec_result_clear(&r);
    assert_true(ech_sim_requests(&h, CLOUD) > calls);
    ech_teardown(&h);
}

/* ---- cache ---- */

static void cache_answers_repeats_until_the_ttl(void **state)
{
    (void)state;
    ech h;
    start(&h, "controls-cache", "cache:\n  ttl_s: 2\n");
    ec_result r;
    ask(&h, "Part 4471 within tolerance?", &r);
    assert_string_equal(r.tier, "local");
    ec_result_clear(&r);
    long local = ech_sim_requests(&h, LOCAL);

    /* The same question, spaced differently: from the cache. */
    ask(&h, "  Part 4471   within\ntolerance? ", &r);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cache");
    assert_string_equal(r.answer, "PASS: within tolerance.");
    assert_string_equal(r.tier_name, "local");
    assert_true(r.cost_usd == 0.0);
    assert_int_equal(r.n_attempts, 0);
    assert_true(contains(r.reason, "cache hit"));
    assert_int_equal(ech_sim_requests(&h, LOCAL), local);
    expect_row(&h, r.id, "tier_kind || '|' || cost_usd || '|' || left_device", "cache|0.0|0");
    ec_result_clear(&r);

    /* A cloud answer is cached too, and costs nothing the second time. */
    ask(&h, "Press P-9 alarm: what first?", &r);
    assert_string_equal(r.tier, "cloud");
    ec_result_clear(&r);
    long cloud = ech_sim_requests(&h, CLOUD);
    ask(&h, "Press P-9 alarm: what first?", &r);
    assert_string_equal(r.tier, "cache");
    assert_string_equal(r.tier_name, "cloud");
    assert_true(r.cost_usd == 0.0);
    assert_int_equal(ech_sim_requests(&h, CLOUD), cloud);
    ec_result_clear(&r);

    /* A sampled query is never cached. */
    const char *hot = "{\"prompt\":\"Part 4471 within tolerance?\",\"temperature\":0.7}";
    ask_json(&h, hot, &r);
    assert_string_equal(r.tier, "local");
    ec_result_clear(&r);
    ask_json(&h, hot, &r);
    assert_string_equal(r.tier, "local");
    ec_result_clear(&r);

    /* After the TTL the model is asked again. */
    local = ech_sim_requests(&h, LOCAL);
    ec_sleep_ms(2200);
    ask(&h, "Part 4471 within tolerance?", &r);
    assert_string_equal(r.tier, "local");
    assert_int_equal(ech_sim_requests(&h, LOCAL), local + 1);
    ec_result_clear(&r);
    ech_teardown(&h);
}

/* ---- consent ---- */

static void consent_withheld_until_given(void **state)
{
    (void)state;
    ech h;
    start(&h, "controls-consent", NULL);
    ec_result r;
    ask_json(&h,
             "{\"id\":\"c-1\",\"prompt\":\"Patient monitor alarm: next?\",\"policy\":\"consent\"}",
             &r);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "local");
    assert_string_equal(r.answer, "Maybe restart it.");
    assert_true(r.escalation_withheld);
    assert_false(r.escalated);
    assert_true(contains(r.reason, "escalation withheld"));
    assert_true(contains(r.reason, "consent"));
    assert_int_equal(ech_sim_requests(&h, CLOUD), 0);
    expect_row(&h, "c-1", "policy || '|' || escalation_withheld || '|' || left_device",
               "consent|1|0");
    ec_result_clear(&r);

    /* Resubmitted with consent: escalated like any query. */
    ask_json(&h,
             "{\"id\":\"c-2\",\"prompt\":\"Patient monitor alarm: next?\",\"policy\":\"consent\","
             "\"consent\":true}",
             &r);
    assert_string_equal(r.tier, "cloud");
    assert_false(r.escalation_withheld);
    assert_true(r.escalated);
    assert_int_equal(ech_sim_requests(&h, CLOUD), 1);
    expect_row(&h, "c-2", "policy || '|' || escalation_withheld || '|' || left_device",
               "consent|0|1");
    ec_result_clear(&r);

    /* A confident draft needs no consent and withholds nothing. */
    ask_json(&h, "{\"id\":\"c-3\",\"prompt\":\"Within tolerance?\",\"policy\":\"consent\"}", &r);
    assert_string_equal(r.tier, "local");
    assert_false(r.escalation_withheld);
    ec_result_clear(&r);

    /* The same from the command line: withheld, and what to do about it;
     * then --consent. */
    char cmd[1400], out[8192];
    const char *flags[] = {"", " --consent"};
    const char *want[] = {"escalation withheld: policy consent; resubmit with --consent",
                          "tier:       cloud"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof(cmd),
                 "%s/edgecascade --config %s query --policy consent%s "
                 "'Patient monitor alarm, bed 4: next?' 2>&1",
                 EC_BIN_DIR, h.config, flags[i]);
        FILE *f = popen(cmd, "r");
        assert_non_null(f);
        size_t len = fread(out, 1, sizeof(out) - 1, f);
        out[len] = '\0';
        assert_int_equal(pclose(f), 0);
        if (!contains(out, want[i]))
            fail_msg("edgecascade query%s printed:\n%s", flags[i], out);
    }
    assert_int_equal(ech_sim_requests(&h, CLOUD), 2);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(redacted_before_it_leaves_the_device),
        cmocka_unit_test(shadow_copies_are_redacted),
        cmocka_unit_test(budget_cap_holds_across_a_restart),
        cmocka_unit_test(cache_answers_repeats_until_the_ttl),
        cmocka_unit_test(consent_withheld_until_given),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
