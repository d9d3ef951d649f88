/* The fleet bridge of deploy/mosquitto/bridge.conf, with two real brokers:
 * an edge broker (the services' own) bridged to a central broker, both on
 * free loopback ports. The shipped file is used as it is, except the address,
 * the topic prefixes, the TLS and login lines (plain TCP here) and a shorter
 * reconnect backoff.
 *
 * A query answered on the edge shows its result on the central broker under
 * fleet/test/result/<id>, and the services' retained status under
 * fleet/test/status/. Then the central broker stops, more queries are
 * answered on the edge (the bridge holds their results), the central broker
 * starts again, and every held result arrives there.
 * The router's stats document (<root>/stats, retained) reaches the central
 * broker as fleet/test/stats, live and again after the outage, counting the
 * queries answered meanwhile. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "edgecascade/util.h"
#include "harness.h"

#define N_HELD 5

static ech g_h;
static ech_proc g_central;
static bool g_live;

static int teardown(void **state)
{
    (void)state;
    if (g_live) {
        g_live = false;
        ech_stop(&g_central);
        ech_teardown(&g_h);
    }
    return 0;
}

static char *replace_all(const char *s, const char *from, const char *to)
{
    ec_buf b;
    ec_buf_init(&b, 0);
    const char *p = s, *hit;
    while ((hit = strstr(p, from))) {
        ec_buf_append(&b, p, (size_t)(hit - p));
        ec_buf_append(&b, to, strlen(to));
        p = hit + strlen(from);
    }
    ec_buf_append(&b, p, strlen(p));
    return ec_buf_take(&b, NULL);
}

/* The edge broker: a plain listener, persistence on, and the shipped bridge. */
static void write_edge_conf(ech *h, int central_port, char *path, size_t cap)
{
    size_t len = 0;
    char *text = ec_read_file(EC_SOURCE_DIR "/deploy/mosquitto/bridge.conf", 1 << 20, &len);
    assert_non_null(text);
    char root[200], addr[64];
    snprintf(root, sizeof(root), "%s/", h->root);
    snprintf(addr, sizeof(addr), "127.0.0.1:%d", central_port);
    char *a = replace_all(text, "edgecascade/plant1/", root);
    char *b = replace_all(a, "fleet/plant1/", "fleet/test/");
    char *c = replace_all(b, "central.example.com:8883", addr);
    free(text);
    free(a);
    free(b);
    int w = snprintf(path, cap, "%s/edge.conf", h->dir);
    assert_true(w > 0 && (size_t)w < cap);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "listener %d 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "max_queued_messages 10000\n"
            "persistence true\n"
            "persistence_location %s/\n"
            "log_dest stderr\n"
            "log_type all\n%s",
            h->mqtt_port, h->dir, geteuid() == 0 ? "user root\n" : "");
    /* Line by line: TLS and login lines are for the real uplink only. */
    bool saw_connection = false;
    for (char *line = strtok(c, "\n"); line; line = strtok(NULL, "\n")) {
        if (strncmp(line, "bridge_cafile", 13) == 0 || strncmp(line, "bridge_insecure", 15) == 0 ||
            strncmp(line, "remote_username", 15) == 0 || strncmp(line, "remote_password", 15) == 0)
            continue;
        if (strncmp(line, "restart_timeout", 15) == 0)
            line = "restart_timeout 1 2"; /* the test should not wait a minute */
        saw_connection |= strncmp(line, "connection ", 11) == 0;
        fprintf(f, "%s\n", line);
    }
    fclose(f);
    free(c);
    assert_true(saw_connection);
}

static void write_central_conf(ech *h, int port, char *path, size_t cap)
{
    int w = snprintf(path, cap, "%s/central.conf", h->dir);
    assert_true(w > 0 && (size_t)w < cap);
    char dir[600];
    w = snprintf(dir, sizeof(dir), "%s/central", h->dir);
    assert_true(w > 0 && (size_t)w < (int)sizeof(dir));
    char cmd[700];
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", dir);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    /* Persistence, so the fleet dashboard's session (and what the bridge
     * delivers for it) survives the central broker's restart. */
    fprintf(f,
            "listener %d 127.0.0.1\n"
            "allow_anonymous true\n"
            "set_tcp_nodelay true\n"
            "persistence true\n"
            "persistence_location %s/\n"
            "log_dest stderr\n%s",
            port, dir, geteuid() == 0 ? "user root\n" : "");
    fclose(f);
}

/* A fleet dashboard on the central broker, with a session the broker keeps. */
static ec_mqtt *fleet_client(int port)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char uri[64], cid[64];
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", port);
    snprintf(cid, sizeof(cid), "fleet-dashboard-%d", (int)getpid());
    ec_mqtt_opts o = {.uri = uri, .client_id = cid, .clean_start = false, .session_expiry_s = 3600};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, "fleet/+/result/#", 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, "fleet/+/status/#", 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, "fleet/+/stats", 1, &err), EC_OK);
    if (ec_mqtt_connect(c, 5000, &err) != EC_OK)
        fail_msg("fleet client: %s", err.msg);
    return c;
}

/* Waits until every topic in want[] has arrived on c (each found is set NULL). */
static int wait_topics(ec_mqtt *c, const char **want, int n, int timeout_ms)
{
    int left = n;
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (left > 0 && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        for (int i = 0; i < n; i++) {
            if (want[i] && strcmp(want[i], m->topic) == 0) {
                want[i] = NULL;
                left--;
            }
        }
        ec_mqtt_msg_free(m);
    }
    return n - left;
}

/* Waits for a stats document from this site on the central broker that
 * counts at least min_queries; returns its count (-1 on timeout). */
static long wait_stats(ec_mqtt *c, long min_queries, int timeout_ms)
{
    long best = -1;
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (best < min_queries && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        if (strcmp(m->topic, "fleet/test/stats") == 0) {
            json_t *j = json_loadb(m->payload, m->len, 0, NULL);
            json_t *q = json_object_get(j, "queries");
            if (json_is_integer(q) && json_integer_value(q) > best)
                best = (long)json_integer_value(q);
            json_decref(j);
        }
        ec_mqtt_msg_free(m);
    }
    return best;
}

static char *result_topic(const char *id)
{
    char *t = NULL;
    assert_true(asprintf(&t, "fleet/test/result/%s", id) > 0);
    return t;
}

static char *ask_id(ech *h)
{
    ec_result r = {0};
    if (ech_ask(h, "Convert 150 psi to bar.", NULL, &r, 15000) != 0) {
        ech_dump_logs(h);
        fail_msg("no result on the edge");
    }
    assert_null(r.error.code);
    char *id = strdup(r.id);
    ec_result_clear(&r);
    return id;
}

static void test_bridge_store_and_forward(void **state)
{
    (void)state;
    ech *h = &g_h;
    ech_init(h, "bridge");
    g_live = true;
    int central_port = ech_free_port();
    char central_conf[600], edge_conf[600];
    write_central_conf(h, central_port, central_conf, sizeof(central_conf));
    ech_start_mosquitto(h, &g_central, "mosquitto-central", central_conf, central_port);
    ec_mqtt *fleet = fleet_client(central_port);

    write_edge_conf(h, central_port, edge_conf, sizeof(edge_conf));
    ech_start_broker_conf(h, edge_conf);
    ech_start_sim(h, NULL);
    ech_write_config(h, "stats:\n  interval_s: 1\n");
    ech_start_services(h);
    ech_connect_client(h);

    /* Bridged live: the services' status and a result. */
    const char *status[] = {"fleet/test/status/router", "fleet/test/status/local",
                            "fleet/test/status/relay"};
    if (wait_topics(fleet, status, 3, 15000) != 3) {
        ech_dump_logs(h);
        fail_msg("the services' status did not reach the central broker");
    }
    char *id = ask_id(h);
    char *topic = result_topic(id);
    const char *one[] = {topic};
    uint64_t t0 = ec_mono_us();
    assert_int_equal(wait_topics(fleet, one, 1, 10000), 1);
    printf("bridge: result on the central broker %.1f ms after the caller on the edge had it\n",
           (double)(ec_mono_us() - t0) / 1000.0);
    free(topic);
    free(id);
    long live = wait_stats(fleet, 1, 10000);
    if (live < 1)
        fail_msg("no stats document counting the query reached the central broker (%ld)", live);

    /* The uplink goes: the central broker stops. Queries are still answered
     * on the edge; the bridge holds their results. */
    ec_mqtt_destroy(fleet);
    ech_stop(&g_central);
    char *topics[N_HELD];
    const char *want[N_HELD];
    for (int i = 0; i < N_HELD; i++) {
        char *qid = ask_id(h);
        topics[i] = result_topic(qid);
        want[i] = topics[i];
        free(qid);
    }

    /* The uplink is back: the held results arrive. */
    ech_start_mosquitto(h, &g_central, "mosquitto-central", central_conf, central_port);
    t0 = ec_mono_us();
    fleet = fleet_client(central_port);
    int got = wait_topics(fleet, want, N_HELD, 30000);
    if (got != N_HELD) {
        ech_dump_logs(h);
        fail_msg("%d of %d held results reached the central broker", got, N_HELD);
    }
    printf("bridge: %d results held during the outage arrived %.1f ms after the central broker "
           "restarted\n",
           N_HELD, (double)(ec_mono_us() - t0) / 1000.0);
    /* and the stats, counting them too */
    long after = wait_stats(fleet, 1 + N_HELD, 15000);
    if (after < 1 + N_HELD)
        fail_msg("stats on the central broker count %ld queries, want %d", after, 1 + N_HELD);
    for (int i = 0; i < N_HELD; i++)
        free(topics[i]);
    ec_mqtt_destroy(fleet);
    g_live = false;
    ech_stop(&g_central);
    ech_teardown(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_bridge_store_and_forward, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
