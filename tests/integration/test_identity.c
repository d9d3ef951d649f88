/* Who asked, and where the answer may go (issue: identity from the broker,
 * Response Topics only of the asker's own, no PLC starving the others), on
 * the secured broker of deploy/mosquitto/ (harness_secure.h: real TLS, users
 * and ACL from make-users.sh), with router.require_identity and the
 * secured Response Topic list plc/{asker}/#, {root}/replies/{asker}/#.
 *
 * - PLC plc1 naming a Response Topic under plc2's, the relay's input, the
 *   router's status or the breaker command: nothing arrives there; plc1's
 *   Result says bad_response_topic on <root>/result/<id> only; the decision
 *   log has plc1 as the asker.
 * - plc1 publishing on <root>/query/plc2: the broker drops it (no decision);
 *   a "source":"plc2" claimed by plc1 is recorded as claimed, beside plc1.
 * - A query on the bare <root>/query (the CLI user still may, through the
 *   harness's own client): identity_required.
 * - Fairness: plc1 floods 2,000 queries while plc2 asks 50, one after the
 *   other: plc2 gets 50 answers and no busy; plc1 gets busy past its cap
 *   (router.asker_max_pending 40). Counts, not times. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/buf.h"
#include "edgecascade/util.h"
#include "harness_secure.h"

#define ASKER_CAP 40

static ech_secure S;

static int setup(void **state)
{
    setenv("EC_TEST_OPENAI_KEY", "sk-test-identity", 1);
    ech_secure_start(&S, "identity",
                     "  asker_max_pending: 40\n"
                     "  asker_weights:\n"
                     "    - asker: plc2\n"
                     "      weight: 2\n");
    return 0;
}

static int teardown(void **state)
{
    ech_teardown(&S.h);
    return 0;
}

static void topic_of(char *out, size_t n, const char *suffix)
{
    snprintf(out, n, "%s/%s", S.h.root, suffix);
}

/* The decision of query id, once written: "asker|source|error_code". */
static char *decision_of(const char *id)
{
    char sql[400];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id = '%s'", id);
    assert_int_equal(ech_sql_wait(&S.h, sql, 1), 1);
    snprintf(sql, sizeof(sql),
             "SELECT ifnull(asker,'-') || '|' || ifnull(source,'-') || '|' || "
             "ifnull(error_code,'-') FROM decisions WHERE query_id = '%s'",
             id);
    return ech_sql(&S.h, sql);
}

static void test_response_topics_outside_the_askers_own_are_refused(void **state)
{
    char results[300], infer_cloud[300], status_router[300], breaker[300];
    topic_of(results, sizeof(results), "result/#");
    topic_of(infer_cloud, sizeof(infer_cloud), "infer/cloud");
    topic_of(status_router, sizeof(status_router), "status/router");
    topic_of(breaker, sizeof(breaker), "cmd/breaker/cloud");
    const char *b_subs[] = {"plc/plc2/#", NULL};
    ec_mqtt *plc2 = ech_secure_client(&S, "plc2", NULL, NULL, b_subs);
    /* What the relay reads (its input and the breaker commands), and the
     * router's status, watched with the relay's own rights. */
    const char *relay_subs[] = {infer_cloud, breaker, status_router, NULL};
    ec_mqtt *relay_eye = ech_secure_client(&S, "edgecascade-relay", NULL, NULL, relay_subs);
    const char *scada_subs[] = {results, NULL};
    ec_mqtt *scada = ech_secure_client(&S, "scada", NULL, NULL, scada_subs);
    ec_mqtt *plc1 = ech_secure_client(&S, "plc1", NULL, NULL, NULL);
    assert_non_null(plc2);
    assert_non_null(relay_eye);
    assert_non_null(scada);
    assert_non_null(plc1);
    ech_secure_drain(relay_eye, 300); /* the retained status/router */
    long cloud_before = ech_sim_requests(&S.h, "gpt-4o-mini");

    char query[300];
    topic_of(query, sizeof(query), "query/plc1");
    const char *bad[] = {"plc/plc2/answers", infer_cloud, status_router, breaker};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char corr[40], id[40], rtopic[300];
        /* one the gate escalates: were the topic used, the relay would be
         * asked to work or the Result would be taken for a command */
        ech_secure_publish(plc1, query, bad[i], "Motor M3 shows high vibration, what to do?", NULL,
                           corr, id);
        snprintf(rtopic, sizeof(rtopic), "%s/result/%s", S.h.root, id);
        ec_result r = {0};
        if (ech_secure_wait(scada, NULL, rtopic, &r, 15000) != 0)
            fail_msg("no Result on %s for Response Topic %s", rtopic, bad[i]);
        assert_non_null(r.error.code);
        assert_string_equal(r.error.code, "bad_response_topic");
        assert_non_null(strstr(r.error.message, bad[i]));
        assert_null(r.answer);
        assert_string_equal(r.asker, "plc1");
        ec_result_clear(&r);
        char *d = decision_of(id);
        assert_string_equal(d, "plc1|-|bad_response_topic");
        free(d);
    }
    /* A query with an allowed topic, after them: once its answer is on
     * plc2's topic, anything the refused ones sent would have arrived. */
    ec_mqtt *plc2_asks = ech_secure_client(&S, "plc2", NULL, NULL, NULL);
    char corr[40], id[40], q2[300];
    topic_of(q2, sizeof(q2), "query/plc2");
    ech_secure_publish(plc2_asks, q2, "plc/plc2/answers", "Is part #4471 at 25.04 mm in spec?",
                       NULL, corr, id);
    ec_result r = {0};
    assert_int_equal(ech_secure_wait(plc2, corr, NULL, &r, 15000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.asker, "plc2");
    ec_result_clear(&r);
    assert_int_equal(ech_secure_drain(plc2, 300), 0);
    assert_int_equal(ech_secure_drain(relay_eye, 300), 0);
    assert_int_equal(ech_sim_requests(&S.h, "gpt-4o-mini"), cloud_before);
    assert_true(ech_sql_long(&S.h, "SELECT count(*) FROM decisions WHERE error_code = "
                                   "'bad_response_topic' AND asker = 'plc1'") == 4);
    ec_mqtt_destroy(plc2_asks);
    ec_mqtt_destroy(plc1);
    ec_mqtt_destroy(scada);
    ec_mqtt_destroy(relay_eye);
    ec_mqtt_destroy(plc2);
}

static void test_identity_is_the_brokers_not_the_payloads(void **state)
{
    char results[300], as_b[300], as_a[300];
    topic_of(results, sizeof(results), "result/#");
    topic_of(as_b, sizeof(as_b), "query/plc2");
    topic_of(as_a, sizeof(as_a), "query/plc1");
    const char *a_subs[] = {"plc/plc1/#", NULL};
    ec_mqtt *plc1 = ech_secure_client(&S, "plc1", NULL, NULL, a_subs);
    const char *scada_subs[] = {results, NULL};
    ec_mqtt *scada = ech_secure_client(&S, "scada", NULL, NULL, scada_subs);
    assert_non_null(plc1);
    assert_non_null(scada);

    /* On plc2's topic: the broker drops it. */
    char corr_x[40], id_x[40];
    ech_secure_publish(plc1, as_b, "plc/plc1/answers", "Is part #4471 at 25.04 mm in spec?", NULL,
                       corr_x, id_x);
    /* On its own, claiming to be plc2: answered, plc1 the asker. */
    char corr[40], id[40];
    ech_secure_publish(plc1, as_a, "plc/plc1/answers", "Is part #4471 at 25.04 mm in spec?", "plc2",
                       corr, id);
    ec_result r = {0};
    assert_int_equal(ech_secure_wait(plc1, corr, NULL, &r, 15000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.asker, "plc1");
    assert_string_equal(r.source, "plc2");
    ec_result_clear(&r);
    char *d = decision_of(id);
    assert_string_equal(d, "plc1|plc2|-");
    free(d);
    /* The broker keeps one client's messages in order, and the router
     * records in order of arrival: the dropped one would be in by now. */
    char sql[300];
    snprintf(sql, sizeof(sql), "SELECT count(*) FROM decisions WHERE query_id = '%s'", id_x);
    ech_secure_drain(plc1, 300);
    assert_int_equal(ech_sql_long(&S.h, sql), 0);
    ec_mqtt_destroy(scada);
    ec_mqtt_destroy(plc1);
}

/* ---- fairness ---- */

enum { FLOOD = 2000, PACED = 50 };

typedef struct flood {
    ec_mqtt *c;
    char topic[300];
    size_t published;
    _Atomic size_t progress;
} flood;

static void *flood_main(void *arg)
{
    flood *f = arg;
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, 0);
    for (size_t i = 0; i < FLOOD; i++) {
        char corr[32];
        snprintf(corr, sizeof(corr), "flood-%zu", i);
        /* each its own text: the router's answer cache must not serve them */
        char prompt[80];
        snprintf(prompt, sizeof(prompt), "Is part #4471 at 25.04 mm in spec? (reading %zu)", i);
        ec_query q = {.prompt = prompt};
        ec_buf_reset(&b);
        if (ec_query_encode(&q, &b, &err) != EC_OK)
            break;
        ec_mqtt_pubprops pp = {
            .response_topic = "plc/plc1/flood", .corr = corr, .corr_len = strlen(corr)};
        if (ec_mqtt_publish(f->c, f->topic, b.data, b.len, 1, false, &pp, 10000, &err) != EC_OK)
            break;
        f->published++;
        atomic_store(&f->progress, f->published);
    }
    ec_buf_free(&b);
    return NULL;
}

static void test_a_flooding_plc_does_not_starve_another(void **state)
{
    /* A model that takes 50 ms: plc1's flood outruns it, so a backlog forms. */
    ech_sim_fault(&S.h, "{\"model\": \"llama3.2-1b\", \"latency_ms\": 50}");
    const char *a_subs[] = {"plc/plc1/flood", NULL};
    const char *b_subs[] = {"plc/plc2/paced", NULL};
    flood f = {.c = ech_secure_client(&S, "plc1", NULL, NULL, a_subs)};
    ec_mqtt *plc2 = ech_secure_client(&S, "plc2", NULL, NULL, b_subs);
    assert_non_null(f.c);
    assert_non_null(plc2);
    topic_of(f.topic, sizeof(f.topic), "query/plc1");
    atomic_init(&f.progress, 0);
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, flood_main, &f), 0);
    while (atomic_load(&f.progress) < 200)
        ec_sleep_ms(5);

    /* plc2, one query after the other, while plc1 floods. */
    char q2[300];
    topic_of(q2, sizeof(q2), "query/plc2");
    int b_answered = 0, b_busy = 0, b_other = 0;
    for (int i = 0; i < PACED; i++) {
        char corr[40], id[40], prompt[80];
        snprintf(prompt, sizeof(prompt), "Is part #4471 at 25.04 mm in spec? (gauge %d)", i);
        ech_secure_publish(plc2, q2, "plc/plc2/paced", prompt, NULL, corr, id);
        ec_result r = {0};
        if (ech_secure_wait(plc2, corr, NULL, &r, 30000) != 0)
            fail_msg("plc2's query %d got no Result", i);
        if (!r.error.code)
            b_answered++;
        else if (strcmp(r.error.code, "busy") == 0)
            b_busy++;
        else
            b_other++;
        ec_result_clear(&r);
    }
    size_t during = atomic_load(&f.progress);
    pthread_join(th, NULL);
    assert_int_equal(f.published, FLOOD);

    /* Every one of plc1's queries is answered, some with busy. */
    int a_answered = 0, a_busy = 0, a_other = 0, a_seen = 0;
    uint64_t deadline = ec_mono_us() + 120 * 1000000ull;
    while (a_seen < FLOOD && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(f.c, &m, 100) != EC_OK)
            continue;
        ec_result r = {0};
        ec_error err = {0};
        if (ec_result_decode(m->payload, m->len, &r, &err) == EC_OK) {
            a_seen++;
            if (!r.error.code)
                a_answered++;
            else if (strcmp(r.error.code, "busy") == 0)
                a_busy++;
            else
                a_other++;
        }
        ec_result_clear(&r);
        ec_mqtt_msg_free(m);
    }
    print_message("plc2: %d answered, %d busy, %d other (plc1 had published %zu of %d by then);"
                  " plc1: %d answered, %d busy, %d other\n",
                  b_answered, b_busy, b_other, during, FLOOD, a_answered, a_busy, a_other);
    assert_int_equal(b_answered, PACED);
    assert_int_equal(b_busy, 0);
    assert_int_equal(a_seen, FLOOD);
    assert_int_equal(a_other, 0);
    assert_true(a_busy > 0);
    assert_true(a_answered >= ASKER_CAP);
    ech_sim_fault(&S.h, "{\"model\": \"llama3.2-1b\"}");
    ec_mqtt_destroy(plc2);
    ec_mqtt_destroy(f.c);
}

/* ---- the open stack: no list, identity required ---- */

static ech O;
static int O_http;

/* GET /metrics of the router: the text. */
static char *metrics(void)
{
    return ech_http(O_http, "GET", "/metrics").body;
}

static int open_setup(void **state)
{
    ech_init(&O, "identity_open");
    ech_start_broker(&O);
    ech_start_sim(&O, NULL);
    O_http = ech_free_port();
    char extra[200];
    snprintf(extra, sizeof(extra), "router:\n  require_identity: true\nhttp:\n  port: %d\n",
             O_http);
    ech_write_config(&O, extra);
    ech_start_services(&O);
    ech_connect_client(&O);
    return 0;
}

static int open_teardown(void **state)
{
    ech_teardown(&O);
    return 0;
}

/* Publishes on topic with Response Topic reply (subscribed on O.client) and
 * returns the Result that comes there. */
static void open_ask(const char *topic, const char *reply, ec_result *r)
{
    char corr[40], id[40];
    ech_secure_publish(O.client, topic, reply, "Is part #4471 at 25.04 mm in spec?", NULL, corr,
                       id);
    assert_int_equal(ech_secure_wait(O.client, corr, NULL, r, 15000), 0);
}

/* The Result on <root>/result/<id> (rtopic) into r; every message before it
 * on `forbidden` is counted: the Response Topic's copy would come first
 * (egress publishes it before <root>/result/<id>). */
static int result_and_count(const char *rtopic, const char *forbidden, ec_result *r)
{
    int seen = 0;
    bool got = false;
    ec_error err = {0};
    uint64_t deadline = ec_mono_us() + 15 * 1000000ull;
    while (!got && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(O.client, &m, 50) != EC_OK)
            continue;
        if (strcmp(m->topic, forbidden) == 0)
            seen++;
        if (strcmp(m->topic, rtopic) == 0) {
            assert_int_equal(ec_result_decode(m->payload, m->len, r, &err), EC_OK);
            got = true;
        }
        ec_mqtt_msg_free(m);
    }
    if (!got)
        fail_msg("no Result on %s", rtopic);
    return seen;
}

static void test_open_stack_identity_and_topics(void **state)
{
    ec_error err = {0};
    char bare[300], mine[300], under_root[300], results[300];
    snprintf(bare, sizeof(bare), "%s/query", O.root);
    snprintf(mine, sizeof(mine), "%s/query/line-3", O.root);
    snprintf(under_root, sizeof(under_root), "%s/dashboard/x", O.root);
    snprintf(results, sizeof(results), "%s/result/#", O.root);
    assert_int_equal(ec_mqtt_subscribe(O.client, "plc/line-3/answers", 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(O.client, under_root, 1, &err), EC_OK);

    /* The bare topic: identity_required, said on the asker's own topic. */
    ec_result r = {0};
    open_ask(bare, "plc/line-3/answers", &r);
    assert_non_null(r.error.code);
    assert_string_equal(r.error.code, "identity_required");
    assert_non_null(strstr(r.error.message, "/query/<user name>"));
    assert_null(r.asker);
    ec_result_clear(&r);
    /* With a name: answered (any topic outside the root). */
    open_ask(mine, "plc/line-3/answers", &r);
    assert_null(r.error.code);
    assert_string_equal(r.asker, "line-3");
    ec_result_clear(&r);
    /* Under the root but not replies/: refused; the Result only on
     * <root>/result/<id>, where the harness's reply topic also is not. */
    assert_int_equal(ec_mqtt_subscribe(O.client, results, 1, &err), EC_OK);
    char corr[40], id[40], rtopic[300];
    ech_secure_publish(O.client, mine, under_root, "Is part #4471 at 25.04 mm in spec?", NULL, corr,
                       id);
    snprintf(rtopic, sizeof(rtopic), "%s/result/%s", O.root, id);
    assert_int_equal(result_and_count(rtopic, under_root, &r), 0);
    assert_string_equal(r.error.code, "bad_response_topic");
    ec_result_clear(&r);
    assert_true(ech_sql_wait(&O,
                             "SELECT count(*) FROM decisions WHERE error_code = "
                             "'bad_response_topic' AND asker = 'line-3'",
                             1) == 1);
    assert_true(ech_sql_long(&O, "SELECT count(*) FROM decisions WHERE error_code = "
                                 "'identity_required' AND asker IS NULL") == 1);
    /* A user name over 128 bytes: bad_request, and its Response Topic (which
     * no asker vouches for) is not used either. */
    char longname[300], longtopic[600];
    memset(longname, 'x', 200);
    longname[200] = '\0';
    snprintf(longtopic, sizeof(longtopic), "%s/query/%s", O.root, longname);
    ech_secure_publish(O.client, longtopic, "plc/line-3/answers", "Convert 150 psi to bar.", NULL,
                       corr, id);
    snprintf(rtopic, sizeof(rtopic), "%s/result/%s", O.root, id);
    assert_int_equal(result_and_count(rtopic, "plc/line-3/answers", &r), 0);
    assert_string_equal(r.error.code, "bad_request");
    assert_non_null(strstr(r.error.message, "over 128 bytes"));
    ec_result_clear(&r);
    char *m = metrics();
    assert_non_null(strstr(m, "edgecascade_errors_total{code=\"bad_response_topic\"} 1\n"));
    assert_non_null(strstr(m, "edgecascade_errors_total{code=\"identity_required\"} 1\n"));
    free(m);
}

int main(void)
{
    const struct CMUnitTest secured[] = {
        cmocka_unit_test(test_response_topics_outside_the_askers_own_are_refused),
        cmocka_unit_test(test_identity_is_the_brokers_not_the_payloads),
        cmocka_unit_test(test_a_flooding_plc_does_not_starve_another),
    };
    const struct CMUnitTest open[] = {
        cmocka_unit_test(test_open_stack_identity_and_topics),
    };
    int rc = cmocka_run_group_tests_name("secured", secured, setup, teardown);
    return rc + cmocka_run_group_tests_name("open", open, open_setup, open_teardown);
}
