/* The secured broker of deploy/mosquitto/ (harness_secure.h): the shipped
 * edgecascade.conf, certificates from make-certs.sh, users and ACL from
 * make-users.sh, the services over TLS as their own users. Checks: a PLC's
 * query on <root>/query/<user> is
 * answered; a PLC cannot inject work for the relay (<root>/infer/cloud) nor
 * read another PLC's answers or the site's result stream; wrong passwords and
 * plain TCP are refused; and no secret (the planted cloud API key, any broker
 * password) ends up in a service log or in the decision database. */
#define _GNU_SOURCE /* memmem */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/buf.h"
#include "edgecascade/util.h"
#include "harness_secure.h"

#define PLANTED_KEY "sk-planted-7f3c9e2a41d84b6fa0c5e19d"

static ech_secure S;

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
}

static int setup(void **state)
{
    setenv("EC_TEST_OPENAI_KEY", PLANTED_KEY, 1);
    ech_secure_start(&S, "secure_broker", NULL);
    return 0;
}

static int teardown(void **state)
{
    ech_teardown(&S.h);
    return 0;
}

static ec_mqtt *client_as(const char *user, const char *password, const char *uri,
                          const char *const *subs)
{
    return ech_secure_client(&S, user, password, uri, subs);
}

/* Sends prompt as PLC user on <root>/query/<user> with Response Topic reply;
 * returns the decoded result (0) or -1 on timeout. */
static int plc_ask(ec_mqtt *c, const char *user, const char *reply, const char *prompt,
                   ec_result *out)
{
    char corr[40], id[40], topic[256];
    snprintf(topic, sizeof(topic), "%s/query/%s", S.h.root, user);
    ech_secure_publish(c, topic, reply, prompt, "plc", corr, id);
    return ech_secure_wait(c, corr, NULL, out, 15000);
}

static void test_plc_query_answered(void **state)
{
    const char *subs[] = {"plc/plc1/replies", NULL};
    ec_mqtt *plc1 = client_as("plc1", NULL, NULL, subs);
    assert_non_null(plc1);
    ec_result r = {0};
    assert_int_equal(
        plc_ask(plc1, "plc1", "plc/plc1/replies", "Is part #4471 at 25.04 mm in spec?", &r), 0);
    assert_null(r.error.code);
    assert_non_null(strstr(r.answer, "PASS"));
    assert_string_equal(r.asker, "plc1");
    ec_result_clear(&r);
    /* And one the gate escalates: the relay, with the planted key, answers. */
    assert_int_equal(
        plc_ask(plc1, "plc1", "plc/plc1/replies", "Motor M3 shows high vibration, what to do?", &r),
        0);
    assert_null(r.error.code);
    assert_true(r.escalated);
    assert_string_equal(r.tier, "cloud");
    ec_result_clear(&r);
    ec_mqtt_destroy(plc1);
}

static void test_wrong_credentials_refused(void **state)
{
    assert_null(client_as("plc1", "not-the-password", NULL, NULL));
    assert_null(client_as("nobody", "x", NULL, NULL));
    assert_null(client_as(NULL, NULL, NULL, NULL)); /* anonymous */
    char plain[64];
    snprintf(plain, sizeof(plain), "tcp://127.0.0.1:%d", S.h.mqtt_port);
    assert_null(client_as("plc1", NULL, plain, NULL)); /* TLS only */
}

/* A valid InferRequest for the cloud tier, as the router would send it. */
static void infer_request(ec_buf *b)
{
    ec_chat_msg msg = {.role = "user", .content = "injected: what is 2+2?"};
    ec_infer_request r = {.id = "injected-0001",
                          .tier_index = 1,
                          .tier = "cloud",
                          .messages = &msg,
                          .n_messages = 1,
                          .max_tokens = 16};
    ec_error err = {0};
    ec_buf_init(b, 0);
    assert_int_equal(ec_infer_request_encode(&r, b, &err), EC_OK);
}

static void publish_infer(ec_mqtt *c)
{
    ec_buf b;
    ec_error err = {0};
    infer_request(&b);
    char topic[256], reply[256];
    snprintf(topic, sizeof(topic), "%s/infer/cloud", S.h.root);
    snprintf(reply, sizeof(reply), "%s/reply/router/injected", S.h.root);
    ec_mqtt_pubprops pp = {.response_topic = reply, .corr = "inj", .corr_len = 3};
    /* Mosquitto answers a denied QoS 1 publish with "not authorized" or drops it:
     * either way the relay must not see it; the outcome here is not the check. */
    (void)ec_mqtt_publish(c, topic, b.data, b.len, 1, false, &pp, 3000, &err);
    ec_mqtt_flush(c, 2000);
    ec_buf_free(&b);
}

static long cloud_calls_after(long before, int ms)
{
    long n = before;
    uint64_t deadline = ec_mono_us() + (uint64_t)ms * 1000u;
    while (ec_mono_us() < deadline && n == before) {
        ec_sleep_ms(50);
        n = ech_sim_requests(&S.h, "gpt-4o-mini");
    }
    return n;
}

static void test_plc_cannot_inject_cloud_work(void **state)
{
    long before = ech_sim_requests(&S.h, "gpt-4o-mini");
    ec_mqtt *plc1 = client_as("plc1", NULL, NULL, NULL);
    assert_non_null(plc1);
    publish_infer(plc1);
    assert_int_equal(cloud_calls_after(before, 1500), before);
    ec_mqtt_destroy(plc1);

    /* Control: the same message from a user the ACL allows reaches the relay,
     * so the count above stayed put because of the ACL, not the payload. */
    ec_mqtt *router = client_as("edgecascade-router", NULL, NULL, NULL);
    assert_non_null(router);
    publish_infer(router);
    assert_int_equal(cloud_calls_after(before, 5000), before + 1);
    ec_mqtt_destroy(router);
}

static void test_plc_cannot_read_others(void **state)
{
    char results[300];
    snprintf(results, sizeof(results), "%s/result/#", S.h.root);
    const char *spy_subs[] = {"plc/plc1/#", results, NULL};
    ec_mqtt *spy = client_as("plc2", NULL, NULL, spy_subs);
    assert_non_null(spy);
    const char *scada_subs[] = {results, NULL};
    ec_mqtt *scada = client_as("scada", NULL, NULL, scada_subs);
    assert_non_null(scada);
    const char *subs[] = {"plc/plc1/replies", NULL};
    ec_mqtt *plc1 = client_as("plc1", NULL, NULL, subs);
    assert_non_null(plc1);

    ec_result r = {0};
    assert_int_equal(
        plc_ask(plc1, "plc1", "plc/plc1/replies", "Is part #4471 at 25.04 mm in spec?", &r), 0);
    ec_result_clear(&r);
    /* The integrator sees the result on <root>/result/<id>; plc2 sees nothing. */
    assert_true(ech_secure_drain(scada, 1000) >= 1);
    assert_int_equal(ech_secure_drain(spy, 500), 0);
    ec_mqtt_destroy(plc1);
    ec_mqtt_destroy(scada);
    ec_mqtt_destroy(spy);
}

/* Runs last: stops the services so their logs are complete. */
static void test_no_secret_in_logs_or_store(void **state)
{
    ech *h = &S.h;
    static const char *const users[] = ECH_SECURE_USERS;
    char pws[sizeof(users) / sizeof(users[0])][128];
    for (size_t i = 0; i < sizeof(users) / sizeof(users[0]); i++)
        snprintf(pws[i], sizeof(pws[i]), "%s", ech_secure_password(&S, users[i]));
    assert_int_equal(ech_stop(&h->router), 0);
    assert_int_equal(ech_stop(&h->local), 0);
    assert_int_equal(ech_stop(&h->relay), 0);
    assert_true(ech_sql_long(h, "SELECT count(*) FROM decisions") >= 3);

    char dump[600], cmd[1400];
    snprintf(dump, sizeof(dump), "%s/db.dump", h->dir);
    snprintf(cmd, sizeof(cmd), "sqlite3 '%s' .dump > '%s'", h->db, dump);
    run(cmd);
    const char *files[] = {h->router.log, h->local.log, h->relay.log, h->broker.log, dump};
    for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
        size_t len = 0;
        char *text = ec_read_file(files[i], 64u << 20, &len);
        assert_non_null(text);
        assert_true(len > 0);
        if (memmem(text, len, PLANTED_KEY, strlen(PLANTED_KEY)))
            fail_msg("the API key is in %s", files[i]);
        for (size_t p = 0; p < sizeof(users) / sizeof(users[0]); p++)
            if (memmem(text, len, pws[p], strlen(pws[p])))
                fail_msg("a broker password is in %s", files[i]);
        free(text);
    }
    /* The check can fail: the key did reach the (simulated) provider. */
    assert_true(ech_sim_requests(h, "gpt-4o-mini") >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plc_query_answered),
        cmocka_unit_test(test_wrong_credentials_refused),
        cmocka_unit_test(test_plc_cannot_inject_cloud_work),
        cmocka_unit_test(test_plc_cannot_read_others),
        cmocka_unit_test(test_no_secret_in_logs_or_store),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
