/* Fault injection with real processes and a real broker: the breaker opens
 * and recovers through half-open, the uplink goes down and comes back, a
 * hanging cloud call is cut at the query's deadline, the relay and the router
 * are killed with SIGKILL mid-traffic, the broker restarts. Each test counts
 * queries sent, results received and decision rows written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <signal.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"
#include "harness.h"

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"easy\", \"model\": \"*\", \"answer\": \"42\", \"logprob\": -0.01},\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.2-1b\", \"answer\": \"Not sure.\", \"logprob\": "
    "-1.5},\n"
    "  {\"match\": \"hard\", \"model\": \"gpt-4o-mini\", \"answer\": \"Replace bearing 6204.\", "
    "\"logprob\": -0.02}\n"
    " ]}\n";

#define MAXQ 32

/* What came back for each query sent, by correlation data "q<i>". */
typedef struct tally {
    int n;
    int rev1[MAXQ], rev2[MAXQ];
    int degraded[MAXQ];
    char tier1[MAXQ][8], tier2[MAXQ][8];
    char id[MAXQ][64];
} tally;

static void start(ech *h, const char *router_extra, bool persist)
{
    ech_init(h, "resilience");
    h->broker_persist = persist;
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *fp = fopen(path, "w");
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(h);
    ech_start_sim(h, path);
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: vllm, model: llama3.2-1b,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 3000}\n"
             "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
             " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
             " timeout_ms: 1500, input_per_1m: 0.15, output_per_1m: 0.6}\n",
             h->sim_port, h->sim_port);
    char all[2048];
    snprintf(all, sizeof(all),
             "router:\n  replay_interval_ms: 300\n%s"
             "relay:\n  retries: 0\n  breaker:\n    consecutive: 3\n    min_calls: 3\n"
             "    open_ms: 1000\n",
             router_extra ? router_extra : "");
    ech_write_config_tiers(h, tiers, all);
    ech_start_services(h);
    ech_connect_client(h);
}

static void send_query(ech *h, tally *t, const char *prompt, const char *extra_json)
{
    int i = t->n++;
    assert_true(i < MAXQ);
    char corr[16], body[512], topic[256];
    snprintf(corr, sizeof(corr), "q%d", i);
    snprintf(t->id[i], sizeof(t->id[i]), "%s-%d", "r", i);
    snprintf(body, sizeof(body), "{\"id\":\"%s\",\"prompt\":\"%s %d\"%s}", t->id[i], prompt, i,
             extra_json ? extra_json : "");
    snprintf(topic, sizeof(topic), "%s/query", h->root);
    ec_mqtt_pubprops pp = {
        .response_topic = h->reply_topic, .corr = corr, .corr_len = strlen(corr)};
    ec_error err = {0};
    assert_int_equal(
        ec_mqtt_publish(h->client, topic, body, strlen(body), 1, false, &pp, 5000, &err), EC_OK);
}

static void take(tally *t, ec_mqtt_msg *m)
{
    int i = m->corr_len > 1 && ((char *)m->corr)[0] == 'q' ? atoi((char *)m->corr + 1) : -1;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    if (i >= 0 && i < t->n && j) {
        long rev = (long)json_integer_value(json_object_get(j, "revision"));
        const char *tier = json_string_value(json_object_get(j, "tier"));
        if (rev >= 2) {
            t->rev2[i]++;
            snprintf(t->tier2[i], sizeof(t->tier2[i]), "%s", tier ? tier : "-");
        } else {
            t->rev1[i]++;
            t->degraded[i] = json_is_true(json_object_get(j, "degraded"));
            snprintf(t->tier1[i], sizeof(t->tier1[i]), "%s", tier ? tier : "-");
        }
    }
    json_decref(j);
}

/* Reads results until every query has a revision 1 and `want_rev2` of them a
 * revision 2, or the time runs out. */
static void collect(ech *h, tally *t, int want_rev2, int timeout_ms)
{
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (ec_mono_us() < deadline) {
        int r1 = 0, r2 = 0;
        for (int i = 0; i < t->n; i++) {
            r1 += t->rev1[i] > 0;
            r2 += t->rev2[i] > 0;
        }
        if (r1 == t->n && r2 >= want_rev2)
            return;
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h->client, &m, 100) == EC_OK) {
            take(t, m);
            ec_mqtt_msg_free(m);
        }
    }
}

static long rows_for(ech *h, const char *id)
{
    char sql[200];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id='%s'", id);
    return ech_sql_long(h, sql);
}

/* Every query has exactly one decision row (the writer batches: poll). */
static void assert_one_row_each(ech *h, tally *t)
{
    for (int k = 0; k < 100; k++) {
        if (ech_sql_long(h, "SELECT count(*) FROM decisions") >= t->n)
            break;
        ec_sleep_ms(50);
    }
    for (int i = 0; i < t->n; i++) {
        long n = rows_for(h, t->id[i]);
        if (n != 1)
            fail_msg("query %s has %ld decision rows", t->id[i], n);
    }
    assert_int_equal(ech_sql_long(h, "SELECT count(*) FROM decisions"), t->n);
}

static void breaker_opens_queues_and_recovers(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, NULL, false);
    ech_sim_fault(h_, "{\"model\": \"gpt-4o-mini\", \"status\": 500}");
    for (int i = 0; i < 4; i++) {
        send_query(h_, &t, "a hard question", NULL);
        collect(h_, &t, 0, 10000);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t.rev1[i], 1);
        assert_true(t.degraded[i]);
        assert_string_equal(t.tier1[i], "local");
    }
    /* Three failures opened the breaker; the fourth query failed fast. */
    assert_int_equal(ech_sim_requests(h_, "gpt-4o-mini"), 3);
    assert_true(ech_sql_long(h_, "SELECT count(*) FROM breaker_events WHERE state='open'") >= 1);
    assert_int_equal(ech_sql_long(h_, "SELECT count(*) FROM outbox"), 4);
    /* `edgecascade status` shows it: services online, the breaker open, 4 queued */
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "%s/edgecascade --config %s status --json", EC_BIN_DIR, h_->config);
    FILE *p = popen(cmd, "r");
    char out[8192] = {0};
    size_t got = fread(out, 1, sizeof(out) - 1, p);
    out[got] = '\0';
    assert_int_equal(WEXITSTATUS(pclose(p)), 0);
    json_t *st = json_loads(out, 0, NULL);
    assert_non_null(st);
    json_t *svc = json_object_get(st, "services");
    assert_string_equal(json_string_value(json_object_get(json_object_get(svc, "router"), "state")),
                        "online");
    json_t *brk = json_object_get(json_object_get(st, "breakers"), "cloud");
    const char *bstate = json_string_value(json_object_get(brk, "state"));
    assert_non_null(bstate);
    assert_true(strcmp(bstate, "open") == 0 || strcmp(bstate, "half_open") == 0);
    assert_int_equal(json_integer_value(json_object_get(st, "queue_depth")), 4);
    json_decref(st);

    ech_sim_fault(h_, "{\"model\": \"gpt-4o-mini\"}"); /* the cloud is back */
    collect(h_, &t, 4, 20000);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(t.rev2[i], 1);
        assert_string_equal(t.tier2[i], "cloud");
    }
    assert_one_row_each(h_, &t);
    assert_int_equal(ech_sql_wait(h_,
                                  "SELECT count(*) FROM decisions WHERE revision=2 AND "
                                  "tier_kind='cloud' AND degraded=0",
                                  4),
                     4);
    assert_int_equal(ech_sql_long(h_, "SELECT count(*) FROM outbox"), 0);
    assert_int_equal(ech_sql_long(h_, "SELECT count(*) FROM queue_events WHERE event='queued'"), 4);
    assert_int_equal(ech_sql_long(h_, "SELECT count(*) FROM queue_events WHERE event='replayed'"),
                     4);
    /* closed -> open -> half_open -> closed, each transition recorded */
    assert_true(ech_sql_long(h_, "SELECT count(*) FROM breaker_events WHERE state='half_open'") >=
                1);
    char *last = ech_sql(h_, "SELECT state FROM breaker_events ORDER BY seq DESC LIMIT 1");
    assert_non_null(last);
    assert_string_equal(last, "closed");
    free(last);
}

static void uplink_down_local_keeps_flowing(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, NULL, false);
    ech_sim_fault(h_, "{\"model\": \"gpt-4o-mini\", \"reset\": true}");
    uint64_t t0 = ec_mono_us();
    for (int i = 0; i < 10; i++)
        send_query(h_, &t, i % 2 ? "a hard question" : "an easy one", NULL);
    collect(h_, &t, 0, 15000);
    int local = 0, degraded = 0;
    for (int i = 0; i < 10; i++) {
        assert_int_equal(t.rev1[i], 1);
        assert_string_equal(t.tier1[i], "local");
        local += !t.degraded[i];
        degraded += t.degraded[i];
    }
    assert_int_equal(local, 5);
    assert_int_equal(degraded, 5);
    assert_true(ec_mono_us() - t0 < 10 * 1000000ull); /* nobody waited on the cloud */
    ech_sim_fault(h_, "{\"model\": \"gpt-4o-mini\"}");
    collect(h_, &t, 5, 20000);
    int rev2 = 0;
    for (int i = 0; i < 10; i++)
        rev2 += t.rev2[i];
    assert_int_equal(rev2, 5);
    for (int i = 1; i < 10; i += 2)
        assert_string_equal(t.tier2[i], "cloud");
    assert_one_row_each(h_, &t);
}

static void assert_one_row_each(ech *h, tally *t);

/* Each test's stack; torn down by teardown() even when an assertion fails. */
static int setup(void **state)
{
    *state = calloc(1, sizeof(ech));
    return *state ? 0 : -1;
}

static int teardown(void **state)
{
    ech *h = *state;
    if (h->dir[0])
        ech_teardown(h);
    free(h);
    return 0;
}

static void hanging_cloud_call_is_cut_at_the_deadline(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, "  offline_queue: false\n", false);
    ech_sim_fault(h_, "{\"model\": \"gpt-4o-mini\", \"hang\": true}");
    uint64_t t0 = ec_mono_us();
    send_query(h_, &t, "a hard question", ",\"deadline_ms\":1000");
    collect(h_, &t, 0, 10000);
    double took_ms = (double)(ec_mono_us() - t0) / 1000.0;
    assert_int_equal(t.rev1[0], 1);
    assert_true(t.degraded[0]);
    assert_string_equal(t.tier1[0], "local");
    assert_true(took_ms >= 900 && took_ms < 3000);
    assert_one_row_each(h_, &t);
    char *code = ech_sql(h_, "SELECT a.error_code FROM attempts a JOIN decisions d ON "
                             "a.decision_id=d.id WHERE a.seq=1");
    assert_non_null(code);
    assert_string_equal(code, "timeout");
    free(code);
}

static void relay_killed_mid_traffic_loses_nothing(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, NULL, false);
    for (int i = 0; i < 12; i++) {
        if (i == 4)
            ech_kill9(&h_->relay);
        if (i == 8)
            ech_start_one(h_, &h_->relay, "relay");
        send_query(h_, &t, "a hard question", NULL);
        ec_sleep_ms(100);
    }
    /* Every query ends with the cloud's answer: at once, or as revision 2. */
    collect(h_, &t, 0, 20000);
    uint64_t deadline = ec_mono_us() + 30 * 1000000ull;
    int final_cloud = 0;
    while (ec_mono_us() < deadline) {
        final_cloud = 0;
        for (int i = 0; i < t.n; i++)
            final_cloud += strcmp(t.tier1[i], "cloud") == 0 || t.rev2[i] > 0;
        if (final_cloud == t.n)
            break;
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h_->client, &m, 100) == EC_OK) {
            take(&t, m);
            ec_mqtt_msg_free(m);
        }
    }
    for (int i = 0; i < t.n; i++)
        assert_int_equal(t.rev1[i], 1);
    assert_int_equal(final_cloud, t.n);
    assert_one_row_each(h_, &t);
    assert_int_equal(ech_sql_long(h_, "SELECT count(*) FROM decisions WHERE tier_kind='cloud'"),
                     t.n);
}

static void router_killed_mid_traffic_loses_nothing(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, NULL, false);
    for (int i = 0; i < 12; i++) {
        if (i == 4)
            ech_kill9(&h_->router);
        if (i == 8)
            ech_start_one(h_, &h_->router, "router");
        send_query(h_, &t, "an easy one", NULL);
        ec_sleep_ms(100);
    }
    collect(h_, &t, 0, 20000);
    for (int i = 0; i < t.n; i++) {
        if (t.rev1[i] < 1)
            fail_msg("query %s got no result", t.id[i]);
    }
    assert_one_row_each(h_, &t);
    assert_int_equal(ech_journal_rows(h_, 3000), 0);
}

static void broker_restart_loses_nothing(void **state)
{
    ech *h_ = *state;
    tally t = {0};
    start(h_, NULL, true);
    /* The test's client keeps its session too, so results published while the
     * broker restarts reach it. */
    ec_mqtt_destroy(h_->client);
    h_->client = NULL;
    ec_error err = {0};
    ec_mqtt_opts o = {.uri = h_->uri,
                      .client_id = "resilience-client",
                      .clean_start = false,
                      .session_expiry_s = 600};
    assert_int_equal(ec_mqtt_create(&h_->client, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(h_->client, h_->reply_topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(h_->client, 5000, &err), EC_OK);
    for (int i = 0; i < 12; i++) {
        if (i == 6) {
            ech_stop_broker(h_);
            ech_start_broker(h_);
        }
        send_query(h_, &t, i % 3 ? "an easy one" : "a hard question", NULL);
        ec_sleep_ms(50);
    }
    collect(h_, &t, 0, 30000);
    for (int i = 0; i < t.n; i++) {
        if (t.rev1[i] < 1)
            fail_msg("query %s got no result", t.id[i]);
    }
    assert_one_row_each(h_, &t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(breaker_opens_queues_and_recovers, setup, teardown),
        cmocka_unit_test_setup_teardown(uplink_down_local_keeps_flowing, setup, teardown),
        cmocka_unit_test_setup_teardown(hanging_cloud_call_is_cut_at_the_deadline, setup, teardown),
        cmocka_unit_test_setup_teardown(relay_killed_mid_traffic_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(router_killed_mid_traffic_loses_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(broker_restart_loses_nothing, setup, teardown),
    };
    return cmocka_run_group_tests_name("integration.resilience", tests, NULL, NULL);
}
