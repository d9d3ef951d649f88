/* The secured broker of deploy/mosquitto/: the shipped edgecascade.conf (paths
 * and port moved to a temp dir), certificates from make-certs.sh, users and
 * ACL from make-users.sh. The three services connect over TLS (mqtts://) as
 * their own users, with passwords read from files. Checks: a PLC's query is
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
#include "harness.h"

#define PLANTED_KEY "sk-planted-7f3c9e2a41d84b6fa0c5e19d"

typedef struct fixture {
    ech h;
    char ca[600];
    char pw[8][128]; /* every user's password, for the secrets check */
    size_t n_pw;
} fixture;

static fixture F;

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
}

/* Reads <dir>/secrets/<user>.password. */
static const char *password_of(const char *user)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/secrets/%s.password", F.h.dir, user);
    size_t len = 0;
    char *pw = ec_read_file(path, 4096, &len);
    assert_non_null(pw);
    assert_true(F.n_pw < 8);
    snprintf(F.pw[F.n_pw], sizeof(F.pw[0]), "%s", pw);
    free(pw);
    return F.pw[F.n_pw++];
}

/* deploy/mosquitto/edgecascade.conf with its paths moved into the temp dir. */
static void write_broker_conf(const char *out)
{
    size_t len = 0;
    char *text = ec_read_file(EC_SOURCE_DIR "/deploy/mosquitto/edgecascade.conf", 1 << 20, &len);
    assert_non_null(text);
    char listener[64], state[300];
    snprintf(listener, sizeof(listener), "listener %d 127.0.0.1", F.h.mqtt_port);
    snprintf(state, sizeof(state), "%s/", F.h.dir);
    const struct {
        const char *from, *to;
    } subst[] = {
        {"/etc/mosquitto/edgecascade", F.h.dir},
        {"listener 8883", listener},
        {"/var/lib/mosquitto/", state},
        {"log_dest syslog", "log_dest stderr"},
    };
    ec_buf b;
    ec_buf_init(&b, 0);
    for (const char *p = text; *p;) {
        size_t i, n = sizeof(subst) / sizeof(subst[0]);
        for (i = 0; i < n; i++)
            if (strncmp(p, subst[i].from, strlen(subst[i].from)) == 0)
                break;
        if (i < n) {
            ec_buf_append(&b, subst[i].to, strlen(subst[i].to));
            p += strlen(subst[i].from);
        } else {
            ec_buf_append(&b, p++, 1);
        }
    }
    /* As root Mosquitto drops to user "mosquitto", who cannot read our temp dir. */
    if (geteuid() == 0)
        ec_buf_append(&b, "user root\n", 10);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    ec_buf_free(&b);
    free(text);
}

static void write_services_conf(void)
{
    FILE *f = fopen(F.h.config, "w");
    assert_non_null(f);
    fprintf(f,
            "site: test\n"
            "topic_root: %s\n"
            "mqtt:\n"
            "  broker: %s\n"
            "  ca_file: %s\n"
            "  username: edgecascade-{service}\n"
            "  password_file: %s/secrets/edgecascade-{service}.password\n"
            "store:\n"
            "  path: %s\n"
            "  batch_ms: 10\n"
            "log:\n"
            "  level: debug\n"
            "tiers:\n"
            "  - name: local\n"
            "    provider: vllm\n"
            "    model: llama3.2-1b\n"
            "    base_url: http://127.0.0.1:%d/v1\n"
            "    timeout_ms: 5000\n"
            "  - name: cloud\n"
            "    provider: openai\n"
            "    model: gpt-4o-mini\n"
            "    base_url: http://127.0.0.1:%d/v1\n"
            "    api_key_env: EC_TEST_OPENAI_KEY\n"
            "    input_per_1m: 0.15\n"
            "    output_per_1m: 0.60\n"
            "    timeout_ms: 5000\n",
            F.h.root, F.h.uri, F.ca, F.h.dir, F.h.db, F.h.sim_port, F.h.sim_port);
    fclose(f);
}

static int setup(void **state)
{
    ech *h = &F.h;
    ech_init(h, "secure_broker");
    setenv("EC_TEST_OPENAI_KEY", PLANTED_KEY, 1);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s/deploy/mosquitto/make-certs.sh %s/certs >/dev/null",
             EC_SOURCE_DIR, h->dir);
    run(cmd);
    snprintf(cmd, sizeof(cmd),
             "%s/deploy/mosquitto/make-users.sh %s --root %s --plc plc1 --plc plc2 "
             "--integrator scada >/dev/null",
             EC_SOURCE_DIR, h->dir, h->root);
    run(cmd);
    snprintf(F.ca, sizeof(F.ca), "%s/certs/ca.crt", h->dir);

    char conf[600];
    snprintf(conf, sizeof(conf), "%s/mosquitto-secure.conf", h->dir);
    write_broker_conf(conf);
    snprintf(h->uri, sizeof(h->uri), "mqtts://127.0.0.1:%d", h->mqtt_port);
    ech_start_broker_conf(h, conf);
    ech_start_sim(h, NULL);
    write_services_conf();

    h->mqtt_user = "edgecascade-cli";
    h->mqtt_password = password_of("edgecascade-cli");
    h->mqtt_ca_file = F.ca;
    password_of("edgecascade-router");
    password_of("edgecascade-local");
    password_of("edgecascade-relay");
    password_of("plc1");
    password_of("plc2");
    password_of("scada");
    ech_start_services(h);
    return 0;
}

static int teardown(void **state)
{
    ech_teardown(&F.h);
    return 0;
}

/* A client of the secured broker as the given user (password from its file);
 * NULL when the broker refuses it. */
static ec_mqtt *client_as(const char *user, const char *password, const char *uri,
                          const char *const *subs)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64];
    static int n;
    snprintf(cid, sizeof(cid), "secure-%d-%s-%d", (int)getpid(), user, n++);
    ec_mqtt_opts o = {.uri = uri ? uri : F.h.uri,
                      .client_id = cid,
                      .clean_start = true,
                      .session_expiry_s = 1,
                      .username = user,
                      .password = password,
                      .ca_file = F.ca};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    if (ec_mqtt_connect(c, 3000, &err) != EC_OK) {
        ec_mqtt_destroy(c);
        return NULL;
    }
    /* After the connection: a refused subscription must not fail the connect. */
    for (size_t i = 0; subs && subs[i]; i++)
        assert_int_equal(ec_mqtt_subscribe(c, subs[i], 1, &err), EC_OK);
    ec_sleep_ms(200); /* SUBACK */
    return c;
}

static const char *pw(const char *user)
{
    for (size_t i = 0; i < F.n_pw; i++) {
        /* password_of() recorded them in this order */
        static const char *const users[] = {"edgecascade-cli",
                                            "edgecascade-router",
                                            "edgecascade-local",
                                            "edgecascade-relay",
                                            "plc1",
                                            "plc2",
                                            "scada"};
        if (i < 7 && strcmp(users[i], user) == 0)
            return F.pw[i];
    }
    fail_msg("no password for %s", user);
    return NULL;
}

/* Sends prompt as a PLC with Response Topic reply; returns the decoded result
 * (0) or -1 on timeout. */
static int plc_ask(ec_mqtt *c, const char *reply, const char *prompt, ec_result *out)
{
    ec_query q = {.prompt = (char *)prompt, .source = "plc"};
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&q, &b, &err), EC_OK);
    char corr[40], topic[256];
    ec_id_new(corr);
    snprintf(topic, sizeof(topic), "%s/query", F.h.root);
    ec_mqtt_pubprops pp = {.response_topic = reply, .corr = corr, .corr_len = strlen(corr)};
    assert_int_equal(ec_mqtt_publish(c, topic, b.data, b.len, 1, false, &pp, 5000, &err), EC_OK);
    ec_buf_free(&b);
    uint64_t deadline = ec_mono_us() + 15 * 1000000ull;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        bool mine = m->corr && m->corr_len == strlen(corr) && !memcmp(m->corr, corr, m->corr_len);
        int rc = mine ? (ec_result_decode(m->payload, m->len, out, &err) == EC_OK ? 0 : -1) : 1;
        ec_mqtt_msg_free(m);
        if (rc <= 0)
            return rc;
    }
    return -1;
}

/* Messages that arrive on c within ms. */
static int drain(ec_mqtt *c, int ms)
{
    int n = 0;
    uint64_t deadline = ec_mono_us() + (uint64_t)ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) == EC_OK) {
            n++;
            ec_mqtt_msg_free(m);
        }
    }
    return n;
}

static void test_plc_query_answered(void **state)
{
    const char *subs[] = {"plc/plc1/replies", NULL};
    ec_mqtt *plc1 = client_as("plc1", pw("plc1"), NULL, subs);
    assert_non_null(plc1);
    ec_result r = {0};
    assert_int_equal(plc_ask(plc1, "plc/plc1/replies", "Is part #4471 at 25.04 mm in spec?", &r),
                     0);
    assert_null(r.error.code);
    assert_non_null(strstr(r.answer, "PASS"));
    ec_result_clear(&r);
    /* And one the gate escalates: the relay, with the planted key, answers. */
    assert_int_equal(
        plc_ask(plc1, "plc/plc1/replies", "Motor M3 shows high vibration, what to do?", &r), 0);
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
    snprintf(plain, sizeof(plain), "tcp://127.0.0.1:%d", F.h.mqtt_port);
    assert_null(client_as("plc1", pw("plc1"), plain, NULL)); /* TLS only */
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
    snprintf(topic, sizeof(topic), "%s/infer/cloud", F.h.root);
    snprintf(reply, sizeof(reply), "%s/reply/router/injected", F.h.root);
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
        n = ech_sim_requests(&F.h, "gpt-4o-mini");
    }
    return n;
}

static void test_plc_cannot_inject_cloud_work(void **state)
{
    long before = ech_sim_requests(&F.h, "gpt-4o-mini");
    ec_mqtt *plc1 = client_as("plc1", pw("plc1"), NULL, NULL);
    assert_non_null(plc1);
    publish_infer(plc1);
    assert_int_equal(cloud_calls_after(before, 1500), before);
    ec_mqtt_destroy(plc1);

    /* Control: the same message from a user the ACL allows reaches the relay,
     * so the count above stayed put because of the ACL, not the payload. */
    ec_mqtt *router = client_as("edgecascade-router", pw("edgecascade-router"), NULL, NULL);
    assert_non_null(router);
    publish_infer(router);
    assert_int_equal(cloud_calls_after(before, 5000), before + 1);
    ec_mqtt_destroy(router);
}

static void test_plc_cannot_read_others(void **state)
{
    char results[300];
    snprintf(results, sizeof(results), "%s/result/#", F.h.root);
    const char *spy_subs[] = {"plc/plc1/#", results, NULL};
    ec_mqtt *spy = client_as("plc2", pw("plc2"), NULL, spy_subs);
    assert_non_null(spy);
    const char *scada_subs[] = {results, NULL};
    ec_mqtt *scada = client_as("scada", pw("scada"), NULL, scada_subs);
    assert_non_null(scada);
    const char *subs[] = {"plc/plc1/replies", NULL};
    ec_mqtt *plc1 = client_as("plc1", pw("plc1"), NULL, subs);
    assert_non_null(plc1);

    ec_result r = {0};
    assert_int_equal(plc_ask(plc1, "plc/plc1/replies", "Is part #4471 at 25.04 mm in spec?", &r),
                     0);
    ec_result_clear(&r);
    /* The integrator sees the result on <root>/result/<id>; plc2 sees nothing. */
    assert_true(drain(scada, 1000) >= 1);
    assert_int_equal(drain(spy, 500), 0);
    ec_mqtt_destroy(plc1);
    ec_mqtt_destroy(scada);
    ec_mqtt_destroy(spy);
}

/* Runs last: stops the services so their logs are complete. */
static void test_no_secret_in_logs_or_store(void **state)
{
    ech *h = &F.h;
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
        for (size_t p = 0; p < F.n_pw; p++)
            if (memmem(text, len, F.pw[p], strlen(F.pw[p])))
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
