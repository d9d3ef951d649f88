/* Tier failures, timeouts, other providers and more than two tiers, end to
 * end: real Mosquitto, the simulator and the services as separate processes. */
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
    "  \"llama3.1-8b\": {\"kind\": \"local\", \"default_logprob\": -0.1},\n"
    "  \"llama3.2:1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"},\n"
    "  \"claude-3-5-haiku-latest\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"easy\", \"model\": \"*\", \"answer\": \"42\", \"logprob\": -0.01},\n"
    "  {\"match\": \"wobbly\", \"model\": \"*\", \"answer\": \"42\", \"logprob\": -0.01,\n"
    "   \"samples\": [\"17\", \"42\"]},\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.2-1b\", \"answer\": \"Not sure.\", \"logprob\": "
    "-1.5},\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.2:1b\", \"answer\": \"I'm not sure.\", "
    "\"logprob\": -1.5},\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.1-8b\", \"answer\": \"Check the bearing.\", "
    "\"logprob\": -0.05},\n"
    "  {\"match\": \"hard\", \"model\": \"gpt-4o-mini\", \"answer\": \"Replace bearing 6204.\", "
    "\"logprob\": -0.02},\n"
    "  {\"match\": \"hard\", \"model\": \"claude-3-5-haiku-latest\", \"answer\": \"Claude: replace "
    "the bearing.\"}\n"
    " ]}\n";

static void start(ech *h, const char *tiers_fmt, const char *extra)
{
    ech_init(h, "tiers");
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *fp = fopen(path, "w");
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(h);
    ech_start_sim(h, path);
    if (tiers_fmt) {
        char tiers[4096];
        snprintf(tiers, sizeof(tiers), tiers_fmt, h->sim_port, h->sim_port, h->sim_port);
        ech_write_config_tiers(h, tiers, extra);
    } else {
        ech_write_config(h, extra);
    }
    ech_start_services(h);
    ech_connect_client(h);
}

static void cloud_failure_serves_the_local_draft(void **state)
{
    ech h;
    start(&h, NULL, "router:\n  offline_queue: false\n");
    ech_sim_fault(&h, "{\"model\": \"gpt-4o-mini\", \"status\": 500}");
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "a hard question", NULL, &r, 20000), 0);
    assert_null(r.error.code); /* an answer, not an error */
    assert_string_equal(r.answer, "Not sure.");
    assert_string_equal(r.tier, "local");
    assert_int_equal(r.n_attempts, 2);
    assert_non_null(r.attempts[1].error.code);
    assert_non_null(strstr(r.reason, "best draft"));
    assert_true(r.degraded);
    /* The relay retried the 500s (1 call + 2 retries) before giving up. */
    assert_int_equal(ech_sim_requests(&h, "gpt-4o-mini"), 3);
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void transient_cloud_error_is_retried(void **state)
{
    ech h;
    start(&h, NULL, NULL);
    ech_sim_fault(&h, "{\"model\": \"gpt-4o-mini\", \"status\": 503, \"retry_after\": 1, "
                      "\"times\": 1}");
    ec_result r = {0};
    uint64_t t0 = ec_mono_us();
    assert_int_equal(ech_ask(&h, "a hard question", NULL, &r, 20000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_string_equal(r.answer, "Replace bearing 6204.");
    assert_int_equal(ech_sim_requests(&h, "gpt-4o-mini"), 2);
    assert_true(ec_mono_us() - t0 >= 900000); /* Retry-After: 1 was honoured */
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void local_service_down_times_out_to_cloud(void **state)
{
    ech h;
    /* local tier timeout 500 ms: the router gives the hop 500 ms + 2 s grace */
    start(&h,
          "tiers:\n"
          "  - {name: local, provider: vllm, model: llama3.2-1b,"
          " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 500}\n"
          "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
          " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY}\n",
          NULL);
    kill(h.local.pid, SIGKILL);
    ec_sleep_ms(200);
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "an easy one", NULL, &r, 20000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_int_equal(r.n_attempts, 2);
    assert_string_equal(r.attempts[0].error.code, "timeout");
    assert_non_null(strstr(r.attempts[0].error.message, "edgecascade-local"));
    assert_true(r.latency_ms >= 2400);
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void hanging_local_model_escalates(void **state)
{
    ech h;
    start(&h,
          "tiers:\n"
          "  - {name: local, provider: vllm, model: llama3.2-1b,"
          " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 400}\n"
          "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
          " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY}\n",
          NULL);
    ech_sim_fault(&h, "{\"model\": \"llama3.2-1b\", \"hang\": true}");
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "an easy one", NULL, &r, 20000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_string_equal(r.attempts[0].error.code, "timeout");
    assert_true(r.latency_ms < 2000); /* the local service's own timeout, not the router's */
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void three_tiers_stop_at_the_8b(void **state)
{
    ech h;
    start(&h,
          "tiers:\n"
          "  - {name: small, provider: vllm, model: llama3.2-1b,"
          " base_url: 'http://127.0.0.1:%d/v1'}\n"
          "  - {name: medium, provider: openai-compatible, model: llama3.1-8b,"
          " base_url: 'http://127.0.0.1:%d/v1'}\n"
          "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
          " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
          " input_per_1m: 0.15, output_per_1m: 0.6}\n",
          NULL);
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "a hard question", NULL, &r, 20000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "local");
    assert_int_equal(r.tier_index, 1);
    assert_string_equal(r.tier_name, "medium");
    assert_string_equal(r.answer, "Check the bearing.");
    assert_true(r.escalated);
    assert_int_equal(ech_sim_requests(&h, "gpt-4o-mini"), 0);
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void ollama_then_anthropic(void **state)
{
    ech h;
    start(&h,
          "tiers:\n"
          "  - {name: local, provider: ollama, model: 'llama3.2:1b',"
          " base_url: 'http://127.0.0.1:%d'}\n"
          "  - {name: cloud, provider: anthropic, model: claude-3-5-haiku-latest,"
          " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
          " input_per_1m: 0.8, output_per_1m: 4.0}\n",
          NULL);
    /* No logprobs from Ollama's native API: a hedged draft escalates. */
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "a hard question", NULL, &r, 20000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_string_equal(r.answer, "Claude: replace the bearing.");
    assert_true(r.attempts[0].confidence < 0.5);
    assert_true(r.cost_usd > 0);
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void flood_gets_every_query_answered(void **state)
{
    ech h;
    /* Few slots and a slow local model: most of the flood must be refused
     * with "busy", but every query gets a result. */
    start(&h, NULL, "router:\n  max_pending: 4\n");
    ech_sim_fault(&h, "{\"model\": \"llama3.2-1b\", \"latency_ms\": 200}");
    char topic[256];
    snprintf(topic, sizeof(topic), "%s/query", h.root);
    const int n = 60;
    ec_error err = {0};
    for (int i = 0; i < n; i++) {
        char corr[16], body[64];
        snprintf(corr, sizeof(corr), "f%03d", i);
        snprintf(body, sizeof(body), "{\"prompt\":\"an easy one %d\"}", i);
        ec_mqtt_pubprops pp = {.response_topic = h.reply_topic, .corr = corr, .corr_len = 4};
        assert_int_equal(
            ec_mqtt_publish(h.client, topic, body, strlen(body), 1, false, &pp, 5000, &err), EC_OK);
    }
    int seen[60] = {0}, ok = 0, busy = 0;
    uint64_t deadline = ec_mono_us() + 30 * 1000000ull;
    while (ok + busy < n && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h.client, &m, 100) != EC_OK)
            continue;
        int i = m->corr_len == 4 ? atoi((char *)m->corr + 1) : -1;
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        assert_non_null(j);
        if (i >= 0 && i < n && !seen[i]) {
            seen[i] = 1;
            json_t *e = json_object_get(j, "error");
            if (json_is_object(e)) {
                assert_string_equal(json_string_value(json_object_get(e, "code")), "busy");
                busy++;
            } else {
                assert_string_equal(json_string_value(json_object_get(j, "answer")), "42");
                ok++;
            }
        }
        json_decref(j);
        ec_mqtt_msg_free(m);
    }
    assert_int_equal(ok + busy, n);
    assert_true(ok >= 4);
    assert_true(busy > 0);
    ech_teardown(&h);
}

static void services_reject_bad_config_and_survive_bad_requests(void **state)
{
    ech h;
    start(&h, NULL, NULL);
    /* A bad config: non-zero exit, message naming the field and the line. */
    char bad[600], cmd[1400];
    snprintf(bad, sizeof(bad), "%s/bad.yaml", h.dir);
    FILE *f = fopen(bad, "w");
    fputs("site: x\ngate:\n  min_confidence: high\n", f);
    fclose(f);
    const char *svcs[] = {"router", "local", "relay"};
    for (int i = 0; i < 3; i++) {
        snprintf(cmd, sizeof(cmd), "%s/edgecascade-%s --config %s 2>&1", EC_BIN_DIR, svcs[i], bad);
        FILE *p = popen(cmd, "r");
        char out[1024] = {0};
        size_t n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        int st = pclose(p);
        assert_int_equal(WEXITSTATUS(st), 2);
        assert_non_null(strstr(out, "bad.yaml:3"));
        assert_non_null(strstr(out, "gate.min_confidence"));
        snprintf(cmd, sizeof(cmd), "%s/edgecascade-%s --version", EC_BIN_DIR, svcs[i]);
        p = popen(cmd, "r");
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        assert_int_equal(WEXITSTATUS(pclose(p)), 0);
        assert_non_null(strstr(out, EC_VERSION));
    }
    /* Garbage straight onto the internal topics: answered with an error or
     * ignored with a log line, and the services keep running. */
    char topic[256];
    ec_error err = {0};
    const char *junk = "\xc1\xc1garbage";
    const char *kinds[] = {"infer/local", "infer/cloud"};
    for (int i = 0; i < 2; i++) {
        snprintf(topic, sizeof(topic), "%s/%s", h.root, kinds[i]);
        ec_mqtt_pubprops pp = {.response_topic = h.reply_topic, .corr = "junk", .corr_len = 4};
        assert_int_equal(
            ec_mqtt_publish(h.client, topic, junk, strlen(junk), 1, false, &pp, 5000, &err), EC_OK);
        ec_mqtt_msg *m = NULL;
        assert_int_equal(ec_mqtt_next(h.client, &m, 5000), EC_OK);
        ec_infer_reply rep = {0};
        assert_int_equal(ec_infer_reply_decode(m->payload, m->len, &rep, &err), EC_OK);
        assert_string_equal(rep.error.code, "bad_request");
        ec_infer_reply_clear(&rep);
        ec_mqtt_msg_free(m);
        /* and without a response topic */
        assert_int_equal(
            ec_mqtt_publish(h.client, topic, junk, strlen(junk), 1, false, NULL, 5000, &err),
            EC_OK);
    }
    ec_sleep_ms(300);
    assert_true(ech_alive(&h.router) && ech_alive(&h.local) && ech_alive(&h.relay));
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "an easy one", NULL, &r, 10000), 0);
    assert_string_equal(r.answer, "42");
    ec_result_clear(&r);
    ech_teardown(&h);
}

static void shadow_calls_are_recorded_not_served(void **state)
{
    ech h;
    start(&h, NULL, "gate:\n  shadow_rate: 1.0\n");
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "an easy one", NULL, &r, 10000), 0);
    assert_string_equal(r.tier, "local");
    assert_string_equal(r.answer, "42");
    char *id = strdup(r.id);
    ec_result_clear(&r);
    /* The cloud was asked too, in the background... */
    long n = 0;
    for (int i = 0; i < 100 && (n = ech_sim_requests(&h, "gpt-4o-mini")) < 1; i++)
        ec_sleep_ms(50);
    assert_int_equal(n, 1);
    /* ...its answer joins the same decision row as an unaccepted attempt... */
    char sql[300];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM attempts a JOIN decisions d ON a.decision_id=d.id WHERE "
             "d.query_id='%s' AND a.reason LIKE 'shadow%%' AND a.answer='42' AND a.accepted=0",
             id);
    long rows = 0;
    for (int i = 0; i < 100 && (rows = ech_sql_long(&h, sql)) < 1; i++)
        ec_sleep_ms(50);
    assert_int_equal(rows, 1);
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id='%s'", id);
    assert_int_equal(ech_sql_long(&h, sql), 1);
    snprintf(sql, sizeof(sql), "SELECT cost_usd > 0 FROM decisions WHERE query_id='%s'", id);
    assert_int_equal(ech_sql_long(&h, sql), 1);
    /* ...and nothing more reaches the caller. */
    ec_mqtt_msg *m = NULL;
    assert_int_equal(ec_mqtt_next(h.client, &m, 500), EC_ERR_TIMEOUT);
    free(id);
    ech_teardown(&h);
}

/* Shadow calls label the drafts the gate accepted; escalations label the ones
 * it did not. calibrate --from-store reads both from the decision log. */
static void calibrate_from_store_counts_shadow_labels(void **state)
{
    ech h;
    start(&h, NULL, "gate:\n  shadow_rate: 1.0\n");
    ec_result r = {0};
    char prompt[64];
    for (int i = 0; i < 4; i++) { /* distinct prompts: no answer comes from the cache */
        snprintf(prompt, sizeof(prompt), "an easy one, #%d", i);
        assert_int_equal(ech_ask(&h, prompt, NULL, &r, 10000), 0);
        assert_string_equal(r.tier, "local");
        ec_result_clear(&r);
    }
    for (int i = 0; i < 2; i++) {
        snprintf(prompt, sizeof(prompt), "a hard question, #%d", i);
        assert_int_equal(ech_ask(&h, prompt, NULL, &r, 10000), 0);
        assert_string_equal(r.tier, "cloud");
        ec_result_clear(&r);
    }
    /* A Result goes out before its decision is committed (the writer
     * batches): both escalations must be in the log before calibrate reads it. */
    assert_int_equal(ech_sql_wait(&h, "SELECT count(*) FROM decisions WHERE escalated = 1", 2), 2);
    long rows = 0;
    for (int i = 0; i < 100 && rows < 4; i++) {
        rows = ech_sql_long(&h, "SELECT count(*) FROM attempts WHERE reason LIKE 'shadow:%'");
        if (rows < 4)
            ec_sleep_ms(50);
    }
    assert_int_equal(rows, 4);
    char cmd[1200], out[8192];
    snprintf(cmd, sizeof(cmd), "%s/edgecascade calibrate --from-store --db %s 2>&1", EC_BIN_DIR,
             h.db);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    size_t len = fread(out, 1, sizeof(out) - 1, f);
    out[len] = '\0';
    int st = pclose(f);
    if (!strstr(out, "labels: 6 of 6 escalated or shadowed queries (4 from shadow calls"))
        fail_msg("calibrate --from-store printed:\n%s", out);
    /* 4 right drafts (shadow: both said 42) of 6: local accuracy 66.7 % */
    assert_non_null(strstr(out, "local accuracy 66.7 %"));
    assert_int_equal(WEXITSTATUS(st), 0);
    ech_teardown(&h);
}

static void self_consistency_draws_samples(void **state)
{
    ech h;
    start(&h, NULL, "gate:\n  samples: 3\n");
    ec_result r = {0};
    assert_int_equal(ech_ask(&h, "an easy one", NULL, &r, 10000), 0);
    assert_string_equal(r.tier, "local");
    assert_non_null(strstr(r.reason, "3 of 3 samples agree"));
    assert_int_equal(ech_sim_requests(&h, "llama3.2-1b"), 3);
    ec_result_clear(&r);
    /* A confident draft whose samples disagree is not trusted: it escalates
     * although its confidence clears the threshold. */
    assert_int_equal(ech_ask(&h, "a wobbly reading", NULL, &r, 10000), 0);
    assert_string_equal(r.tier, "cloud");
    assert_int_equal(r.n_attempts, 2);
    assert_true(r.attempts[0].confidence >= r.attempts[0].threshold);
    assert_false(r.attempts[0].accepted);
    assert_non_null(strstr(r.attempts[0].reason, "the samples disagree; 2 of 3 samples agree"));
    assert_int_equal(ech_sim_requests(&h, "llama3.2-1b"), 6);
    assert_int_equal(ech_sim_requests(&h, "gpt-4o-mini"), 1);
    ec_result_clear(&r);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cloud_failure_serves_the_local_draft),
        cmocka_unit_test(transient_cloud_error_is_retried),
        cmocka_unit_test(local_service_down_times_out_to_cloud),
        cmocka_unit_test(hanging_local_model_escalates),
        cmocka_unit_test(three_tiers_stop_at_the_8b),
        cmocka_unit_test(ollama_then_anthropic),
        cmocka_unit_test(flood_gets_every_query_answered),
        cmocka_unit_test(services_reject_bad_config_and_survive_bad_requests),
        cmocka_unit_test(shadow_calls_are_recorded_not_served),
        cmocka_unit_test(calibrate_from_store_counts_shadow_labels),
        cmocka_unit_test(self_consistency_draws_samples),
    };
    return cmocka_run_group_tests_name("integration.tiers", tests, NULL, NULL);
}
