/* The load generator's own MQTT v5 client (bench/lg_wire.c) against a real
 * Mosquitto, checked with a client nobody here wrote (Paho, through ec_mqtt):
 * Response Topic and Correlation Data both ways, the broker's Receive
 * Maximum on a stock Mosquitto (20), PUBACKs to the broker's window, and a
 * clear error for a broker that is not there or goes away. */
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

#include "edgecascade/util.h"
#include "harness.h"
#include "lg_wire.h"

#define N_MSGS 3000

typedef struct reader {
    lgw *c;
    const char *topic;
    atomic_int got;
    atomic_int wrong; /* a message whose payload, topic or correlation data did not match */
    atomic_bool stop;
    int last_rc;
} reader;

static void *read_main(void *arg)
{
    reader *r = arg;
    while (!atomic_load(&r->stop) && atomic_load(&r->got) < N_MSGS) {
        lgw_msg m;
        int rc = lgw_next(r->c, &m, 100);
        r->last_rc = rc;
        if (rc < 0)
            break;
        if (rc == 0)
            continue;
        char want[32];
        int n = atomic_load(&r->got);
        snprintf(want, sizeof(want), "msg %d", n);
        unsigned idx =
            m.corr_len == 4
                ? (unsigned)(m.corr[0] << 24 | m.corr[1] << 16 | m.corr[2] << 8 | m.corr[3])
                : ~0u;
        if (idx != (unsigned)n || m.len != strlen(want) || memcmp(m.payload, want, m.len) ||
            m.topic_len != strlen(r->topic) || memcmp(m.topic, r->topic, m.topic_len))
            atomic_fetch_add(&r->wrong, 1);
        atomic_fetch_add(&r->got, 1);
    }
    return NULL;
}

static lgw *open_client(ech *h, const char *id)
{
    lgw *c = NULL;
    char err[300] = "";
    if (lgw_open(&c, h->uri, id, 10, err, sizeof(err)))
        fail_msg("lgw_open: %s", err);
    return c;
}

/* On a Mosquitto at its defaults (Receive Maximum 20, max_queued_messages
 * 1000): 3,000 publishes to its own subscription arrive in order, every one
 * with its correlation data, and never more than 20 are unacknowledged. */
static void stock_broker_window_and_round_trip(void **state)
{
    (void)state;
    ech h;
    ech_init(&h, "lg_wire");
    h.broker_stock = true;
    ech_start_broker(&h);
    char topic[200], err[300] = "";
    snprintf(topic, sizeof(topic), "%s/lgw/self", h.root);
    lgw *c = open_client(&h, "lgw-self");
    assert_int_equal(lgw_subscribe(c, topic, 5000, err, sizeof(err)), 0);

    reader r = {.c = c, .topic = topic};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_main, &r), 0);
    unsigned most = 0;
    for (int i = 0; i < N_MSGS; i++) {
        char text[32];
        unsigned char corr[4] = {(unsigned char)(i >> 24), (unsigned char)(i >> 16),
                                 (unsigned char)(i >> 8), (unsigned char)i};
        snprintf(text, sizeof(text), "msg %d", i);
        if (lgw_publish(c, topic, text, strlen(text), "reply/here", corr, 4, 10000, err,
                        sizeof(err)))
            fail_msg("publish %d: %s", i, err);
        unsigned in = lgw_inflight(c);
        if (in > most)
            most = in;
    }
    for (int i = 0; i < 500 && atomic_load(&r.got) < N_MSGS; i++)
        ec_sleep_ms(20);
    atomic_store(&r.stop, true);
    pthread_join(t, NULL);
    assert_int_equal(atomic_load(&r.got), N_MSGS);
    assert_int_equal(atomic_load(&r.wrong), 0);
    assert_true(most <= 20);
    assert_true(most >= 1);
    for (int i = 0; i < 100 && lgw_inflight(c); i++) /* the last PUBACKs */
        ec_sleep_ms(20);
    lgw_close(c);
    ech_teardown(&h);
}

/* Paho (ec_mqtt) reads what lg_wire writes, and lg_wire reads what Paho
 * writes, properties lg_wire skips included (Content Type, Payload Format,
 * User Properties, Message Expiry), and a message larger than its read
 * buffer. */
static void paho_reads_it_and_it_reads_paho(void **state)
{
    (void)state;
    ech h;
    ec_error e = {0};
    ech_init(&h, "lg_wire");
    ech_start_broker(&h);
    char to_paho[200], to_lgw[200], err[300] = "";
    snprintf(to_paho, sizeof(to_paho), "%s/lgw/to-paho", h.root);
    snprintf(to_lgw, sizeof(to_lgw), "%s/lgw/to-lgw", h.root);

    ec_mqtt *p = NULL;
    ec_mqtt_opts o = {.uri = h.uri,
                      .client_id = "lgw-paho",
                      .queue_cap = 64,
                      .max_inflight = 16,
                      .clean_start = true,
                      .session_expiry_s = 60};
    assert_int_equal(ec_mqtt_create(&p, &o, &e), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(p, to_paho, 1, &e), EC_OK);
    assert_int_equal(ec_mqtt_connect(p, 5000, &e), EC_OK);
    lgw *c = open_client(&h, "lgw-peer");
    assert_int_equal(lgw_subscribe(c, to_lgw, 5000, err, sizeof(err)), 0);

    const unsigned char corr[8] = {0, 1, 2, 3, 250, 251, 252, 253};
    assert_int_equal(
        lgw_publish(c, to_paho, "{\"q\":1}", 7, "answers/here", corr, 8, 5000, err, sizeof(err)),
        0);
    ec_mqtt_msg *m = NULL;
    for (int i = 0; i < 100 && !m; i++)
        ec_mqtt_next(p, &m, 50);
    assert_non_null(m);
    assert_int_equal(m->len, 7);
    assert_memory_equal(m->payload, "{\"q\":1}", 7);
    assert_int_equal(m->qos, 1);
    assert_string_equal(m->response_topic, "answers/here");
    assert_int_equal(m->corr_len, 8);
    assert_memory_equal(m->corr, corr, 8);
    ec_mqtt_msg_free(m);

    ec_mqtt_userprop up[2] = {{.name = "site", .value = "line-3"}, {.name = "k", .value = ""}};
    ec_mqtt_pubprops pp = {.response_topic = "x/y",
                           .corr = "abc",
                           .corr_len = 3,
                           .content_type = "application/json",
                           .utf8 = true,
                           .user_props = up,
                           .n_user_props = 2,
                           .expiry_s = 300};
    assert_int_equal(ec_mqtt_publish(p, to_lgw, "[1,2]", 5, 1, false, &pp, 5000, &e), EC_OK);
    lgw_msg lm;
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++)
        rc = lgw_next(c, &lm, 100);
    if (rc != 1)
        fail_msg("lgw_next: %d (%s)", rc, lgw_error(c));
    assert_int_equal(lm.len, 5);
    assert_memory_equal(lm.payload, "[1,2]", 5);
    assert_int_equal(lm.topic_len, strlen(to_lgw));
    assert_memory_equal(lm.topic, to_lgw, lm.topic_len);
    assert_int_equal(lm.corr_len, 3);
    assert_memory_equal(lm.corr, "abc", 3);
    assert_true(lm.received_us > 0);

    /* A packet several times the read buffer (64 KiB), behind a small one. */
    size_t big = 300 * 1024;
    char *payload = malloc(big);
    assert_non_null(payload);
    for (size_t i = 0; i < big; i++)
        payload[i] = (char)('a' + i % 26);
    assert_int_equal(ec_mqtt_publish(p, to_lgw, "small", 5, 1, false, NULL, 5000, &e), EC_OK);
    assert_int_equal(ec_mqtt_publish(p, to_lgw, payload, big, 1, false, NULL, 5000, &e), EC_OK);
    size_t sizes[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        rc = 0;
        for (int i = 0; i < 50 && rc == 0; i++)
            rc = lgw_next(c, &lm, 100);
        if (rc != 1)
            fail_msg("lgw_next: %d (%s)", rc, lgw_error(c));
        sizes[k] = lm.len;
        if (k == 1)
            assert_memory_equal(lm.payload, payload, big);
    }
    assert_int_equal(sizes[0], 5);
    assert_int_equal(sizes[1], big);
    free(payload);

    lgw_close(c);
    ec_mqtt_destroy(p);
    ech_teardown(&h);
}

/* No broker, a scheme it does not speak, a broker that goes away: each a
 * message that says so, never a hang. */
static void errors_say_what_happened(void **state)
{
    (void)state;
    ech h;
    char err[300] = "", uri[100];
    lgw *c = NULL;
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", ech_free_port());
    assert_int_equal(lgw_open(&c, uri, "lgw-none", 1, err, sizeof(err)), -1);
    assert_null(c);
    assert_non_null(strstr(err, uri));
    assert_non_null(strstr(err, "refused"));
    assert_int_equal(lgw_open(&c, "ssl://127.0.0.1:8883", "lgw-tls", 1, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "only tcp://"));

    ech_init(&h, "lg_wire");
    ech_start_broker(&h);
    c = open_client(&h, "lgw-gone");
    ech_stop_broker(&h);
    lgw_msg m;
    int rc = 0;
    for (int i = 0; i < 50 && rc == 0; i++)
        rc = lgw_next(c, &m, 100);
    assert_int_equal(rc, -1);
    assert_non_null(strstr(lgw_error(c), "closed"));
    assert_int_equal(lgw_publish(c, "t", "x", 1, NULL, NULL, 0, 200, err, sizeof(err)), -1);
    lgw_close(c);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stock_broker_window_and_round_trip),
        cmocka_unit_test(paho_reads_it_and_it_reads_paho),
        cmocka_unit_test(errors_say_what_happened),
    };
    return cmocka_run_group_tests_name("integration.lg_wire", tests, NULL, NULL);
}
