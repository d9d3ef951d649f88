/* End to end: real Mosquitto, the simulator, router + local + relay as
 * separate processes. Each test starts its own stack. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"tolerance\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"PASS: 25.04 mm is within 25.00 +/- 0.05 mm.\", \"logprob\": -0.02},\n"
    "  {\"match\": \"vibration\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"Maybe the motor is hot.\", \"logprob\": -1.2},\n"
    "  {\"match\": \"vibration\", \"model\": \"gpt-4o-mini\",\n"
    "   \"answer\": \"Likely bearing wear; inspect bearings and lubrication.\", \"logprob\": "
    "-0.03}\n"
    " ]}\n";

typedef struct fixture {
    ech h;
} fixture;

/* A stack of its own per test: broker, simulator, router + local + relay
 * with the config's extra YAML (NULL: defaults), and the test client. */
static int start_stack(void **state, const char *extra_yaml)
{
    fixture *f = calloc(1, sizeof(*f));
    ech *h = &f->h;
    ech_init(h, "cascade");
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *fp = fopen(path, "w");
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(h);
    ech_start_sim(h, path);
    ech_write_config(h, extra_yaml);
    ech_start_services(h);
    ech_connect_client(h);
    *state = f;
    return 0;
}

static int setup(void **state)
{
    return start_stack(state, NULL);
}

static int teardown(void **state)
{
    fixture *f = *state;
    ech_teardown(&f->h);
    free(f);
    return 0;
}

/* Polls the store until the row count reaches want (the writer batches). */
static void confident_draft_stays_local(void **state)
{
    ech *h = &((fixture *)*state)->h;
    ec_result r = {0};
    assert_int_equal(ech_ask(h, "Part 4471 measured 25.04 mm. Within tolerance?", NULL, &r, 10000),
                     0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "local");
    assert_int_equal(r.tier_index, 0);
    assert_string_equal(r.answer, "PASS: 25.04 mm is within 25.00 +/- 0.05 mm.");
    assert_false(r.escalated);
    assert_true(r.confidence > 0.95 && r.confidence <= 1.0);
    assert_true(r.threshold > 0.69 && r.threshold < 0.71);
    assert_int_equal(r.n_attempts, 1);
    assert_true(r.latency_ms > 0);
    assert_true(r.cost_usd == 0.0);
    assert_int_equal(ech_sim_requests(h, "gpt-4o-mini"), 0);

    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id='%s'", r.id);
    assert_int_equal(ech_sql_wait(h, sql, 1), 1);
    snprintf(sql, sizeof(sql),
             "SELECT tier_kind || '|' || tier_index || '|' || model || '|' || escalated || '|' || "
             "left_device FROM decisions WHERE query_id='%s'",
             r.id);
    char *row = ech_sql(h, sql);
    assert_non_null(row);
    assert_string_equal(row, "local|0|llama3.2-1b|0|0");
    free(row);
    ec_result_clear(&r);
}

static void low_confidence_escalates_to_cloud(void **state)
{
    ech *h = &((fixture *)*state)->h;
    ec_result r = {0};
    assert_int_equal(
        ech_ask(h, "Motor at 85 C with 12 mm/s vibration: failure mode?", NULL, &r, 10000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "cloud");
    assert_int_equal(r.tier_index, 1);
    assert_true(r.escalated);
    assert_string_equal(r.answer, "Likely bearing wear; inspect bearings and lubrication.");
    assert_int_equal(r.n_attempts, 2);
    assert_false(r.attempts[0].accepted);
    assert_true(r.attempts[0].confidence < 0.70);
    assert_true(r.attempts[1].accepted);
    assert_true(r.cost_usd > 0);
    /* Cost is the cloud tier's price on the simulator's token counts. */
    double expect = (r.attempts[1].tokens_in * 0.15 + r.attempts[1].tokens_out * 0.60) / 1e6;
    assert_true(r.attempts[1].cost_usd > expect * 0.999 && r.attempts[1].cost_usd < expect * 1.001);
    assert_int_equal(ech_sim_requests(h, "gpt-4o-mini"), 1);

    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id='%s'", r.id);
    assert_int_equal(ech_sql_wait(h, sql, 1), 1);
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM attempts a JOIN decisions d ON a.decision_id=d.id "
             "WHERE d.query_id='%s'",
             r.id);
    assert_int_equal(ech_sql_long(h, sql), 2);
    /* The local draft is kept beside the cloud answer, with its signals. */
    snprintf(sql, sizeof(sql),
             "SELECT a.answer || '|' || (a.lp_n > 0) || '|' || round(a.raw_confidence, 3) FROM "
             "attempts a JOIN decisions d ON a.decision_id=d.id WHERE d.query_id='%s' AND a.seq=0",
             r.id);
    char *draft = ech_sql(h, sql);
    assert_non_null(draft);
    char want[200];
    snprintf(want, sizeof(want), "Maybe the motor is hot.|1|%g",
             round(r.attempts[0].confidence * 1000) / 1000);
    assert_string_equal(draft, want);
    free(draft);
    assert_int_equal(r.revision, 1);
    assert_false(r.degraded);
    snprintf(sql, sizeof(sql),
             "SELECT tier_kind || '|' || escalated || '|' || left_device || '|' || "
             "(cost_usd > 0) || '|' || (latency_ms > 0) FROM decisions WHERE query_id='%s'",
             r.id);
    char *row = ech_sql(h, sql);
    assert_non_null(row);
    assert_string_equal(row, "cloud|1|1|1|1");
    free(row);
    ec_result_clear(&r);
}

static void local_only_never_reaches_cloud(void **state)
{
    ech *h = &((fixture *)*state)->h;
    ec_result r = {0};
    assert_int_equal(ech_ask(h, "Motor vibration 12 mm/s: what now?", "local_only", &r, 10000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, "local");
    assert_false(r.escalated);
    assert_string_equal(r.answer, "Maybe the motor is hot.");
    assert_non_null(strstr(r.reason, "local_only"));
    assert_int_equal(ech_sim_requests(h, "gpt-4o-mini"), 0);
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT left_device FROM decisions WHERE query_id='%s'", r.id);
    ech_sql_wait(h, "SELECT count(*) FROM decisions", 1);
    assert_int_equal(ech_sql_long(h, sql), 0);
    ec_result_clear(&r);
}

static void correlation_and_json_ingress(void **state)
{
    ech *h = &((fixture *)*state)->h;
    const char *q = "{\"id\":\"plc7-0001\",\"prompt\":\"Part 4471 tolerance check\","
                    "\"source\":\"plc-7\",\"max_tokens\":64}";
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), "corr-json-1", 10000);
    assert_non_null(m);
    assert_int_equal(m->corr_len, strlen("corr-json-1"));
    assert_memory_equal(m->corr, "corr-json-1", m->corr_len);
    json_error_t je;
    json_t *j = json_loadb(m->payload, m->len, 0, &je);
    assert_non_null(j); /* JSON in, JSON out */
    assert_string_equal(json_string_value(json_object_get(j, "id")), "plc7-0001");
    assert_string_equal(json_string_value(json_object_get(j, "tier")), "local");
    assert_string_equal(json_string_value(json_object_get(j, "source")), "plc-7");
    assert_non_null(json_string_value(json_object_get(j, "answer")));
    json_decref(j);
    ec_mqtt_msg_free(m);
    ech_sql_wait(h, "SELECT count(*) FROM decisions WHERE query_id='plc7-0001'", 1);
    char *src =
        ech_sql(h, "SELECT source || '|' || encoding FROM decisions WHERE query_id='plc7-0001'");
    assert_non_null(src);
    assert_string_equal(src, "plc-7|json");
    free(src);
}

static void malformed_payloads_get_error_results(void **state)
{
    ech *h = &((fixture *)*state)->h;
    /* Broken JSON: answered in JSON with bad_request. */
    const char *bad_json = "{\"prompt\": \"unterminated";
    ec_mqtt_msg *m = ech_request(h, bad_json, strlen(bad_json), "bad-1", 10000);
    assert_non_null(m);
    json_t *j = json_loadb(m->payload, m->len, 0, NULL);
    assert_non_null(j);
    json_t *e = json_object_get(j, "error");
    assert_non_null(e);
    assert_string_equal(json_string_value(json_object_get(e, "code")), "bad_request");
    json_decref(j);
    ec_mqtt_msg_free(m);

    /* Garbage msgpack (a bare integer, then random bytes). */
    const unsigned char junk[] = {0xc1, 0xff, 0x00, 0x93, 0x01};
    m = ech_request(h, junk, sizeof(junk), "bad-2", 10000);
    assert_non_null(m);
    ec_result r = {0};
    ec_error err = {0};
    assert_int_equal(ec_result_decode(m->payload, m->len, &r, &err), EC_OK);
    assert_non_null(r.error.code);
    assert_string_equal(r.error.code, "bad_request");
    assert_non_null(r.id); /* generated, so the decision log has it */
    ec_result_clear(&r);
    ec_mqtt_msg_free(m);

    /* A query with neither prompt nor messages. */
    const char *empty = "{\"source\":\"plc-9\"}";
    m = ech_request(h, empty, strlen(empty), "bad-3", 10000);
    assert_non_null(m);
    j = json_loadb(m->payload, m->len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "bad_request");
    json_decref(j);
    ec_mqtt_msg_free(m);

    /* Oversized payload. */
    size_t big = 300 * 1024;
    char *huge = malloc(big + 64);
    int n = snprintf(huge, 64, "{\"prompt\":\"");
    memset(huge + n, 'a', big);
    memcpy(huge + n + big, "\"}", 3);
    m = ech_request(h, huge, strlen(huge), "bad-4", 10000);
    free(huge);
    assert_non_null(m);
    j = json_loadb(m->payload, m->len, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "too_large");
    json_decref(j);
    ec_mqtt_msg_free(m);

    /* Every malformed query is in the decision log, and the services still answer. */
    assert_int_equal(
        ech_sql_wait(h, "SELECT count(*) FROM decisions WHERE error_code IS NOT NULL", 4), 4);
    assert_true(ech_alive(&h->router) && ech_alive(&h->local) && ech_alive(&h->relay));
    ec_result ok = {0};
    assert_int_equal(ech_ask(h, "tolerance check after bad input", NULL, &ok, 10000), 0);
    assert_null(ok.error.code);
    ec_result_clear(&ok);
}

/* A client of its own on <root>/result/#: what dashboards, the fleet bridge
 * and `edgecascade tail` see. */
static ec_mqtt *result_watcher(ech *h)
{
    ec_mqtt *w = NULL;
    ec_error err = {0};
    char cid[64], filter[300];
    snprintf(cid, sizeof(cid), "ech-watch-%d", (int)getpid());
    snprintf(filter, sizeof(filter), "%s/result/#", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    assert_int_equal(ec_mqtt_create(&w, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(w, filter, 1, &err), EC_OK);
    if (ec_mqtt_connect(w, 5000, &err) != EC_OK)
        fail_msg("watcher: %s", err.msg);
    return w;
}

/* Asks once with the harness's Response Topic ("copy-1") and once without
 * any ("copy-2"), then reads the watcher until copy-2's Result: the router
 * publishes in order, so a copy of copy-1 would have come before it.
 * Returns whether copy-1 was seen on <root>/result/copy-1. */
static bool copy_of_replied_result_seen(ech *h)
{
    ec_mqtt *w = result_watcher(h);
    const char *q1 = "{\"id\":\"copy-1\",\"prompt\":\"Part 4471 tolerance check\"}";
    ec_mqtt_msg *m = ech_request(h, q1, strlen(q1), "copy-corr-1", 10000);
    assert_non_null(m); /* the asker's own answer comes either way */
    assert_non_null(strstr(m->payload, "\"copy-1\""));
    ec_mqtt_msg_free(m);

    ec_error err = {0};
    char topic[300], want[300], first[300];
    snprintf(topic, sizeof(topic), "%s/query", h->root);
    const char *q2 = "{\"id\":\"copy-2\",\"prompt\":\"Part 4471 tolerance check\"}";
    assert_int_equal(ec_mqtt_publish(h->client, topic, q2, strlen(q2), 1, false, NULL, 5000, &err),
                     EC_OK);
    snprintf(want, sizeof(want), "%s/result/copy-2", h->root);
    snprintf(first, sizeof(first), "%s/result/copy-1", h->root);
    bool seen_first = false, seen_want = false;
    uint64_t deadline = ec_mono_us() + 10000000u;
    while (!seen_want && ec_mono_us() < deadline) {
        if (ec_mqtt_next(w, &m, 50) != EC_OK)
            continue;
        seen_first |= strcmp(m->topic, first) == 0;
        seen_want |= strcmp(m->topic, want) == 0;
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(w);
    if (!seen_want)
        fail_msg("no Result on %s (a query without a Response Topic)", want);
    /* Both are decisions, copied or not. */
    assert_int_equal(ech_sql_wait(h,
                                  "SELECT count(*) FROM decisions WHERE query_id IN "
                                  "('copy-1','copy-2') AND error_code IS NULL",
                                  2),
                     2);
    return seen_first;
}

static void results_copied_to_result_topic_by_default(void **state)
{
    assert_true(copy_of_replied_result_seen(&((fixture *)*state)->h));
}

static int setup_no_copies(void **state)
{
    return start_stack(state, "router:\n  copy_results: false\n");
}

/* router.copy_results: false: one publish per Result with a Response Topic. */
static void no_copy_when_copy_results_is_off(void **state)
{
    assert_false(copy_of_replied_result_seen(&((fixture *)*state)->h));
}

/* ---- copies nobody subscribes to (router.copy_unheard_ms) ---- */

static int g_http_port; /* http.port of the copy tests' routers */

/* edgecascade_result_copies_skipped_total from the router's /metrics. */
static long copies_skipped(void)
{
    char *text = ech_http(g_http_port, "GET", "/metrics").body;
    const char *name = "\nedgecascade_result_copies_skipped_total ";
    const char *at = strstr(text, name);
    if (!at)
        fail_msg("no %s in /metrics", name + 1);
    long n = strtol(at + strlen(name), NULL, 10);
    free(text);
    return n;
}

static void ask_ok(ech *h, const char *prompt)
{
    ec_result r = {0};
    assert_int_equal(ech_ask(h, prompt, NULL, &r, 10000), 0);
    assert_null(r.error.code);
    ec_result_clear(&r);
}

/* Reads w until a message on <root>/result/<id> or timeout_ms. */
static bool copy_arrives(ech *h, ec_mqtt *w, const char *id, int timeout_ms)
{
    char want[300];
    snprintf(want, sizeof(want), "%s/result/%s", h->root, id);
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(w, &m, 50) != EC_OK)
            continue;
        bool hit = strcmp(m->topic, want) == 0;
        ec_mqtt_msg_free(m);
        if (hit)
            return true;
    }
    return false;
}

static void ask_with_id(ech *h, const char *id)
{
    char q[200], corr[64];
    snprintf(q, sizeof(q), "{\"id\":\"%s\",\"prompt\":\"Part 4471 tolerance check\"}", id);
    snprintf(corr, sizeof(corr), "corr-%s", id);
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), corr, 10000);
    assert_non_null(m);
    assert_non_null(strstr(m->payload, id));
    ec_mqtt_msg_free(m);
}

static int setup_unheard_long(void **state)
{
    char extra[160];
    g_http_port = ech_free_port();
    snprintf(extra, sizeof(extra), "router:\n  copy_unheard_ms: 60000\nhttp:\n  port: %d\n",
             g_http_port);
    return start_stack(state, extra);
}

/* Nobody on <root>/result/#: the broker answers the copy's PUBACK with 0x10
 * and, within the window (60 s here), later copies are skipped; a client that
 * subscribes inside the window gets none of them (the documented price), and
 * every query is answered and recorded all the same. */
static void copies_skipped_while_nobody_subscribes(void **state)
{
    ech *h = &((fixture *)*state)->h;
    assert_int_equal(copies_skipped(), 0);
    /* The first copies go out and are acknowledged "no matching
     * subscribers"; from then on they are skipped. */
    int asked = 0;
    while (copies_skipped() == 0 && asked < 40) {
        ask_ok(h, "tolerance check, nobody watching");
        asked++;
    }
    assert_true(copies_skipped() >= 1);

    ec_mqtt *w = result_watcher(h);
    long before = copies_skipped();
    ask_with_id(h, "unheard-1");
    /* The copy is counted as skipped before the Result is recorded. */
    assert_int_equal(
        ech_sql_wait(h, "SELECT count(*) FROM decisions WHERE query_id='unheard-1'", 1), 1);
    assert_int_equal(copies_skipped(), before + 1);
    assert_false(copy_arrives(h, w, "unheard-1", 300));
    ec_mqtt_destroy(w);
    assert_int_equal(
        ech_sql_wait(h, "SELECT count(*) FROM decisions WHERE error_code IS NULL", asked + 1),
        asked + 1);
}

/* A persistent session is a subscriber even while it is away: the broker
 * keeps the copies for it, so none is skipped (window 60 s: one "nobody"
 * would skip all the rest) and it gets them all when it comes back. */
static void copies_kept_for_a_persistent_session_away(void **state)
{
    ech *h = &((fixture *)*state)->h;
    ec_error err = {0};
    char cid[64], filter[300];
    snprintf(cid, sizeof(cid), "ech-away-%d", (int)getpid());
    snprintf(filter, sizeof(filter), "%s/result/#", h->root);
    ec_mqtt_opts o = {
        .uri = h->uri, .client_id = cid, .clean_start = false, .session_expiry_s = 300};
    ec_mqtt *w = NULL;
    assert_int_equal(ec_mqtt_create(&w, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(w, filter, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(w, 5000, &err), EC_OK);
    ec_mqtt_destroy(w); /* away; the broker keeps its session 300 s */

    const char *ids[] = {"away-1", "away-2", "away-3", "away-4", "away-5"};
    for (size_t i = 0; i < 5; i++)
        ask_with_id(h, ids[i]);
    assert_int_equal(copies_skipped(), 0);

    o.clean_start = false;
    assert_int_equal(ec_mqtt_create(&w, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(w, filter, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(w, 5000, &err), EC_OK);
    bool seen[5] = {false};
    size_t n_seen = 0;
    uint64_t deadline = ec_mono_us() + 10000000u;
    while (n_seen < 5 && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(w, &m, 50) != EC_OK)
            continue;
        for (size_t i = 0; i < 5; i++) {
            char want[300];
            snprintf(want, sizeof(want), "%s/result/%s", h->root, ids[i]);
            if (!seen[i] && strcmp(m->topic, want) == 0) {
                seen[i] = true;
                n_seen++;
            }
        }
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(w);
    assert_int_equal(n_seen, 5);
}

static int setup_unheard_default(void **state)
{
    char extra[64];
    g_http_port = ech_free_port();
    snprintf(extra, sizeof(extra), "http:\n  port: %d\n", g_http_port);
    return start_stack(state, extra);
}

/* With the default window (10 ms), a client that subscribes after queries
 * nobody watched gets the copies of later ones: once its SUBACK is in and
 * the window has passed, the next copy goes out and the broker delivers it. */
static void a_new_subscriber_gets_copies_after_the_window(void **state)
{
    ech *h = &((fixture *)*state)->h;
    for (int i = 0; i < 5; i++)
        ask_ok(h, "tolerance check, nobody watching yet");
    ec_mqtt *w = result_watcher(h);
    ec_sleep_ms(500); /* fifty windows */
    long before = copies_skipped();
    ask_with_id(h, "heard-1");
    assert_true(copy_arrives(h, w, "heard-1", 10000));
    ask_with_id(h, "heard-2");
    assert_true(copy_arrives(h, w, "heard-2", 10000));
    ec_mqtt_destroy(w);
    assert_int_equal(copies_skipped(), before);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(confident_draft_stays_local, setup, teardown),
        cmocka_unit_test_setup_teardown(low_confidence_escalates_to_cloud, setup, teardown),
        cmocka_unit_test_setup_teardown(local_only_never_reaches_cloud, setup, teardown),
        cmocka_unit_test_setup_teardown(correlation_and_json_ingress, setup, teardown),
        cmocka_unit_test_setup_teardown(malformed_payloads_get_error_results, setup, teardown),
        cmocka_unit_test_setup_teardown(results_copied_to_result_topic_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(no_copy_when_copy_results_is_off, setup_no_copies,
                                        teardown),
        cmocka_unit_test_setup_teardown(copies_skipped_while_nobody_subscribes, setup_unheard_long,
                                        teardown),
        cmocka_unit_test_setup_teardown(copies_kept_for_a_persistent_session_away,
                                        setup_unheard_long, teardown),
        cmocka_unit_test_setup_teardown(a_new_subscriber_gets_copies_after_the_window,
                                        setup_unheard_default, teardown),
    };
    return cmocka_run_group_tests_name("integration.cascade", tests, NULL, NULL);
}
