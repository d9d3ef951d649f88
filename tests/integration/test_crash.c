/* A router crash mid-burst (kill -9 after about half the answers, restarted
 * 2 s later), with every query escalated to a paid cloud tier that takes
 * 300 ms per call, so calls are in flight at the crash:
 * - every query gets a final answer, and exactly one decision row;
 * - an answer sent again after the restart says so ("replayed": true);
 * - every cloud call the simulator answered is in the decision log once,
 *   with its cost: the replies the broker kept for the dead router are used
 *   by the queries' second run, or added to their decisions (orphans.h);
 *   none is bought twice for one hop.
 * Counts, not times; the number of re-sent answers is reported. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"
#include "harness.h"

#define N 120

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.2-1b\", \"answer\": \"Not sure.\", \"logprob\": "
    "-1.5},\n"
    "  {\"match\": \"hard\", \"model\": \"gpt-4o-mini\", \"answer\": \"Replace bearing 6204.\", "
    "\"logprob\": -0.02}\n"
    " ]}\n";

typedef struct tally {
    int answers[N];
    int replayed[N];
    int total;
} tally;

static void take(tally *t, ec_mqtt_msg *m)
{
    int i = m->corr_len > 1 && ((char *)m->corr)[0] == 'c' ? atoi((char *)m->corr + 1) : -1;
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    if (i >= 0 && i < N && j) {
        t->answers[i]++;
        t->replayed[i] += json_is_true(json_object_get(j, "replayed"));
        t->total++;
    }
    json_decref(j);
}

static int answered(const tally *t)
{
    int n = 0;
    for (int i = 0; i < N; i++)
        n += t->answers[i] > 0;
    return n;
}

static void drain(ech *h, tally *t, int want, int timeout_ms)
{
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (answered(t) < want && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h->client, &m, 50) == EC_OK) {
            take(t, m);
            ec_mqtt_msg_free(m);
        }
    }
}

static void router_killed_mid_burst_pays_once_and_marks_resent(void **state)
{
    (void)state;
    ech h;
    ech_init(&h, "crash");
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h.dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(&h);
    ech_start_sim(&h, path);
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: vllm, model: llama3.2-1b,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n"
             "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
             " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
             " timeout_ms: 20000, input_per_1m: 0.15, output_per_1m: 0.6}\n",
             h.sim_port, h.sim_port);
    ech_write_config_tiers(&h, tiers,
                           "cache:\n  enabled: false\nrelay:\n  retries: 0\n  workers: 8\n");
    ech_start_services(&h);
    ech_connect_client(&h);
    ech_sim_fault(&h, "{\"model\": \"gpt-4o-mini\", \"latency_ms\": 300}");

    char topic[300];
    snprintf(topic, sizeof(topic), "%s/query", h.root);
    for (int i = 0; i < N; i++) {
        char corr[16], body[256];
        snprintf(corr, sizeof(corr), "c%d", i);
        snprintf(body, sizeof(body), "{\"id\":\"crash-%d\",\"prompt\":\"a hard question %d\"}", i,
                 i);
        ec_mqtt_pubprops pp = {
            .response_topic = h.reply_topic, .corr = corr, .corr_len = strlen(corr)};
        ec_error err = {0};
        assert_int_equal(
            ec_mqtt_publish(h.client, topic, body, strlen(body), 1, false, &pp, 5000, &err), EC_OK);
    }
    tally t = {0};
    drain(&h, &t, N / 2, 60000);
    ech_kill9(&h.router);
    int before = answered(&t);
    ec_sleep_ms(2000);
    ech_start_one(&h, &h.router, "router");
    drain(&h, &t, N, 90000);
    /* Late copies of re-sent answers. */
    uint64_t until = ec_mono_us() + 2000000u;
    while (ec_mono_us() < until) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h.client, &m, 50) == EC_OK) {
            take(&t, m);
            ec_mqtt_msg_free(m);
        }
    }

    int resent = 0, resent_marked = 0;
    for (int i = 0; i < N; i++) {
        if (t.answers[i] < 1) {
            ech_dump_logs(&h);
            fail_msg("query crash-%d got no answer", i);
        }
        if (t.answers[i] > 1) {
            resent++;
            resent_marked += t.replayed[i] > 0;
        }
    }
    long calls = ech_sim_requests(&h, "gpt-4o-mini");
    long rows = ech_sql_wait(&h, "SELECT count(*) FROM decisions", N);
    long ids = ech_sql_long(&h, "SELECT count(DISTINCT query_id) FROM decisions");
    long recorded = ech_sql_long(&h, "SELECT count(*) FROM attempts a JOIN decisions d"
                                     " ON a.decision_id = d.id WHERE a.tier_name = 'cloud'"
                                     " AND a.error_code IS NULL");
    fprintf(stderr,
            "crash after %d of %d answered: %d answers re-sent (%d marked replayed); cloud calls "
            "%ld, recorded %ld; %ld decision rows for %ld ids\n",
            before, N, resent, resent_marked, calls, recorded, rows, ids);
    assert_int_equal(rows, N);
    assert_int_equal(ids, N);
    /* Every answer sent twice is marked on its second sending. */
    assert_int_equal(resent_marked, resent);
    /* Every paid call is in the log, once. */
    assert_int_equal(recorded, calls);
    ech_teardown(&h);
}

int main(void)
{
    setenv("EC_TEST_OPENAI_KEY", "sk-test", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(router_killed_mid_burst_pays_once_and_marks_resent),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
