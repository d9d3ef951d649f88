/* The MQTT layer against a real Mosquitto: TCP_NODELAY on every connection
 * (including after a broker restart), MQTT v5 request/response properties,
 * the outbound in-flight bound and what happens when the inbound queue is full. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

static ec_mqtt *client(ech *h, const char *name, size_t queue_cap, int max_inflight)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    ec_mqtt_opts o = {.uri = h->uri,
                      .client_id = name,
                      .queue_cap = queue_cap,
                      .max_inflight = max_inflight,
                      .clean_start = true,
                      .session_expiry_s = 60};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    return c;
}

static int nodelay_of(int fd)
{
    int v = 0;
    socklen_t len = sizeof(v);
    if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &v, &len) != 0)
        return -1;
    return v;
}

static void wait_connected(ec_mqtt *c, int ms)
{
    for (int i = 0; i < ms / 20 && !ec_mqtt_connected(c); i++)
        ec_sleep_ms(20);
    assert_true(ec_mqtt_connected(c));
}

static void roundtrip(ec_mqtt *pub, ec_mqtt *sub, const char *topic, const char *text)
{
    ec_error err = {0};
    assert_int_equal(ec_mqtt_publish(pub, topic, text, strlen(text), 1, false, NULL, 2000, &err),
                     EC_OK);
    ec_mqtt_msg *m = NULL;
    for (int i = 0; i < 100 && !m; i++) {
        if (ec_mqtt_next(sub, &m, 50) == EC_OK && strcmp(m->payload, text) != 0) {
            ec_mqtt_msg_free(m);
            m = NULL;
        }
    }
    assert_non_null(m);
    assert_string_equal(m->payload, text);
    ec_mqtt_msg_free(m);
}

static void nodelay_holds_after_reconnect(void **state)
{
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/t", h.root);
    ec_mqtt *c = client(&h, "nodelay-a", 64, 16);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    unsigned before = ec_mqtt_nodelay_count();
    unsigned at_once = ec_mqtt_connect_at_once_count();
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    assert_true(ec_mqtt_nodelay_count() > before);
    /* Loopback: the wrapper saw the handshake done, so Paho sent CONNECT in
     * the same call instead of on its next poll cycle (mqtt_wrap.c). */
    assert_true(ec_mqtt_connect_at_once_count() > at_once);
    int fd1 = ec_mqtt_nodelay_last_fd();
    assert_int_equal(nodelay_of(fd1), 1);
    roundtrip(c, c, topic, "before restart");

    unsigned count1 = ec_mqtt_nodelay_count();
    ech_stop_broker(&h);
    for (int i = 0; i < 100 && ec_mqtt_connected(c); i++)
        ec_sleep_ms(20);
    assert_false(ec_mqtt_connected(c));
    ech_start_broker(&h);
    wait_connected(c, 15000);
    assert_true(ec_mqtt_nodelay_count() > count1);
    assert_int_equal(nodelay_of(ec_mqtt_nodelay_last_fd()), 1);
    /* The broker lost its state (no persistence): the subscription was renewed. */
    ec_sleep_ms(200);
    roundtrip(c, c, topic, "after restart");
    ec_mqtt_destroy(c);
    ech_teardown(&h);
}

/* Paho's heap tracking, stack traces and trace ring are wrapped away
 * (common/mqtt/mqtt_lean.c): Paho's own allocations came through the wrapper,
 * and Paho's heap tree, which holds every block it has when tracking is on,
 * is empty while a client is connected and has moved messages. */
typedef struct paho_heap_info {
    size_t current_size, max_size;
} paho_heap_info;
paho_heap_info *Heap_get_info(void); /* Paho's Heap.h, exported but not installed */

static void paho_bookkeeping_is_off(void **state)
{
    (void)state;
#if defined(EC_PAHO_TRACKING)
    print_message("built with -DEC_PAHO_TRACKING=ON: Paho keeps its bookkeeping on purpose\n");
    skip();
#else
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/lean", h.root);
    ec_mqtt *c = client(&h, "lean-a", 64, 16);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    roundtrip(c, c, topic, "through plain malloc");
    assert_true(ec_mqtt_paho_lean());
    assert_int_equal(Heap_get_info()->current_size, 0);
    assert_int_equal(Heap_get_info()->max_size, 0);
    ec_mqtt_destroy(c);
    ech_teardown(&h);
#endif
}

/* A broker without persistence restarted while QoS 1 publishes are in
 * flight: Paho 1.3.12 then frees some of them twice (mqtt_lean.c). The
 * process must live through it and the client carry messages afterwards
 * (before the guard, AddressSanitizer stopped the router here). */
static void broker_restarts_with_publishes_in_flight(void **state)
{
    (void)state;
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/flight", h.root);
    /* As the services connect: the broker's restart without persistence
     * then answers sessionPresent 0, and Paho cleans its session. */
    ec_mqtt *c = NULL;
    ec_mqtt_opts o = {.uri = h.uri,
                      .client_id = "flight-a",
                      .queue_cap = 4096,
                      .max_inflight = 512,
                      .clean_start = false,
                      .session_expiry_s = 60};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    char payload[600];
    memset(payload, 'p', sizeof(payload) - 1);
    payload[sizeof(payload) - 1] = '\0';
    unsigned long before = ec_mqtt_paho_double_frees();
    for (int restart = 0; restart < 3; restart++) {
        for (int i = 0; i < 2000; i++) /* no waiting: many unacknowledged */
            (void)ec_mqtt_publish_nowait(c, topic, payload, strlen(payload), 1, NULL, &err);
        ech_stop_broker(&h);
        for (int i = 0; i < 200; i++) /* and more while it is gone */
            (void)ec_mqtt_publish_nowait(c, topic, payload, strlen(payload), 1, NULL, &err);
        ech_start_broker(&h);
        wait_connected(c, 15000);
        ec_mqtt_msg *m = NULL;
        while (ec_mqtt_next(c, &m, 10) == EC_OK)
            ec_mqtt_msg_free(m);
    }
    ec_sleep_ms(300); /* the subscription renewed */
    roundtrip(c, c, topic, "after three restarts");
    print_message("Paho's second frees ignored: %lu\n", ec_mqtt_paho_double_frees() - before);
    ec_mqtt_destroy(c);
    ech_teardown(&h);
}

static void v5_properties_travel(void **state)
{
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/req", h.root);
    ec_mqtt *c = client(&h, "props-a", 64, 16);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    const unsigned char corr[] = {0, 1, 2, 0xff, 0};
    ec_mqtt_pubprops pp = {.response_topic = "a/b/reply",
                           .corr = corr,
                           .corr_len = sizeof(corr),
                           .content_type = "application/json",
                           .expiry_s = 120};
    assert_int_equal(ec_mqtt_publish(c, topic, "{}", 2, 1, false, &pp, 2000, &err), EC_OK);
    ec_mqtt_msg *m = NULL;
    assert_int_equal(ec_mqtt_next(c, &m, 5000), EC_OK);
    assert_string_equal(m->topic, topic);
    assert_string_equal(m->response_topic, "a/b/reply");
    assert_int_equal(m->corr_len, sizeof(corr));
    assert_memory_equal(m->corr, corr, sizeof(corr));
    assert_string_equal(m->content_type, "application/json");
    assert_true(m->expiry_s > 0 && m->expiry_s <= 120);
    assert_int_equal(m->len, 2);
    ec_mqtt_msg_free(m);
    ec_mqtt_destroy(c);
    ech_teardown(&h);
}

/* Two clients with one id on Debian's Mosquitto (2.0.11): the broker closes
 * the older connection, without a DISCONNECT, each time the other connects.
 * Each client counts connections that die young (and logs the pattern), and
 * once the other has gone it is back with its subscription. */
static void same_client_id_shows_as_short_lives(void **state)
{
    (void)state;
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/twin", h.root);
    ec_mqtt *a = client(&h, "twin", 64, 16);
    assert_int_equal(ec_mqtt_subscribe(a, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(a, 5000, &err), EC_OK);
    ec_mqtt_drops d;
    ec_mqtt_drops_get(a, &d);
    assert_int_equal(d.short_lived, 0);

    ec_mqtt *b = client(&h, "twin", 64, 16);
    assert_int_equal(ec_mqtt_connect(b, 5000, &err), EC_OK);
    for (int i = 0; i < 1500 && d.short_lived < 3; i++) {
        ec_sleep_ms(20);
        ec_mqtt_drops_get(a, &d);
    }
    assert_true(d.short_lived >= 3);
    ec_mqtt_destroy(b);

    /* Back: its subscription is made again on the reconnect, so a publish
     * reaches it (retried, as the SUBACK may still be on its way). */
    wait_connected(a, 10000);
    ec_mqtt *p = client(&h, "twin-publisher", 64, 16);
    assert_int_equal(ec_mqtt_connect(p, 5000, &err), EC_OK);
    ec_mqtt_msg *m = NULL;
    for (int i = 0; i < 50 && !m; i++) {
        assert_int_equal(ec_mqtt_publish(p, topic, "back", 4, 1, false, NULL, 2000, &err), EC_OK);
        if (ec_mqtt_next(a, &m, 200) != EC_OK)
            m = NULL;
    }
    assert_non_null(m);
    assert_string_equal(m->payload, "back");
    ec_mqtt_msg_free(m);
    ec_mqtt_destroy(p);
    ec_mqtt_destroy(a);
    ech_teardown(&h);
}

/* A broker that says why it closes (EMQX, HiveMQ and newer Mosquitto send
 * MQTT 5.0's DISCONNECT with a reason code; Debian's Mosquitto does not),
 * played byte for byte from the specification (3.2 CONNACK, 3.14 DISCONNECT
 * with a Reason String, 3.14.2.2.3) by one accepted socket. */
typedef struct scripted_broker {
    int listen_fd;
    int port;
    pthread_t thread;
} scripted_broker;

static void *scripted_broker_run(void *arg)
{
    scripted_broker *sb = arg;
    int fd = accept(sb->listen_fd, NULL, NULL);
    if (fd < 0)
        return NULL;
    unsigned char in[512];
    /* CONNECT: type 1, then its remaining length (one byte is enough here). */
    ssize_t got = 0;
    while (got < 2 || got < 2 + in[1]) {
        ssize_t r = recv(fd, in + got, sizeof(in) - (size_t)got, 0);
        if (r <= 0)
            break;
        got += r;
    }
    if (got >= 2 && (in[0] >> 4) == 1) {
        /* CONNACK: session present 0, Success, no properties. */
        const unsigned char connack[] = {0x20, 0x03, 0x00, 0x00, 0x00};
        /* DISCONNECT 0x8E with Reason String "taken\x01over" (a control
         * byte the log must not print). */
        const unsigned char disconnect[] = {0xE0, 0x0F, 0x8E, 0x0D, 0x1F, 0x00, 0x0A, 't', 'a',
                                            'k',  'e',  'n',  0x01, 'o',  'v',  'e',  'r'};
        send(fd, connack, sizeof(connack), MSG_NOSIGNAL);
        ec_sleep_ms(200);
        send(fd, disconnect, sizeof(disconnect), MSG_NOSIGNAL);
    }
    ec_sleep_ms(200);
    close(fd);
    return NULL;
}

static void broker_disconnect_reason_is_kept(void **state)
{
    (void)state;
    scripted_broker sb = {.listen_fd = socket(AF_INET, SOCK_STREAM, 0)};
    assert_true(sb.listen_fd >= 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t sl = sizeof(sa);
    assert_int_equal(bind(sb.listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(sb.listen_fd, 4), 0);
    assert_int_equal(getsockname(sb.listen_fd, (struct sockaddr *)&sa, &sl), 0);
    sb.port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&sb.thread, NULL, scripted_broker_run, &sb), 0);

    /* The log line goes to stderr: kept in a file to read it back. */
    char path[] = "/tmp/ec-test-mqtt-log-XXXXXX";
    int log_fd = mkstemp(path);
    assert_true(log_fd >= 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(log_fd, 2);

    char uri[64];
    snprintf(uri, sizeof(uri), "tcp://127.0.0.1:%d", sb.port);
    ec_mqtt *c = NULL;
    ec_error err = {0};
    ec_mqtt_opts o = {.uri = uri, .client_id = "scripted", .clean_start = true};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    ec_mqtt_drops d = {0};
    for (int i = 0; i < 250 && d.broker_closes == 0; i++) {
        ec_sleep_ms(20);
        ec_mqtt_drops_get(c, &d);
    }
    ec_mqtt_destroy(c);
    pthread_join(sb.thread, NULL);
    close(sb.listen_fd);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(log_fd);

    size_t len = 0;
    char *log = ec_read_file(path, 1 << 20, &len);
    unlink(path);
    assert_non_null(log);
    fprintf(stderr, "%s", log);
    assert_int_equal(d.broker_closes, 1);
    assert_int_equal(d.last_reason, 0x8E);
    assert_non_null(strstr(log, "another client connected with the same client id 'scripted' "
                                "(session taken over: taken?over)"));
    assert_null(strstr(log, "lost (no reason given)")); /* said once, with the reason */
    free(log);
}

static void inflight_bound_pushes_back(void **state)
{
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/bp", h.root);
    ec_mqtt *c = client(&h, "bp-a", 64, 4);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    ech_stop_broker(&h);
    for (int i = 0; i < 100 && ec_mqtt_connected(c); i++)
        ec_sleep_ms(20);
    /* Disconnected: publishes are buffered by Paho, and stay unacknowledged. */
    for (int i = 0; i < 4; i++)
        assert_int_equal(ec_mqtt_publish(c, topic, "x", 1, 1, false, NULL, 100, &err), EC_OK);
    uint64_t t0 = ec_mono_us();
    assert_int_equal(ec_mqtt_publish(c, topic, "x", 1, 1, false, NULL, 150, &err), EC_ERR_BUSY);
    assert_true(ec_mono_us() - t0 >= 140000);
    assert_non_null(strstr(err.msg, "unacknowledged"));
    ech_start_broker(&h);
    wait_connected(c, 15000);
    assert_int_equal(ec_mqtt_flush(c, 5000), EC_OK); /* the buffered four went out */
    assert_int_equal(ec_mqtt_publish(c, topic, "y", 1, 1, false, NULL, 1000, &err), EC_OK);
    ec_mqtt_destroy(c);
    ech_teardown(&h);
}

/* Answers from an overflow hook (Paho's thread) never wait, but they are
 * counted too and bounded at twice the cap: past it they are refused, so they
 * cannot pile up inside Paho without end. */
static void nowait_publishes_are_counted_and_bounded(void **state)
{
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/nw", h.root);
    ec_mqtt *c = client(&h, "nw-a", 64, 4);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    ech_stop_broker(&h);
    for (int i = 0; i < 100 && ec_mqtt_connected(c); i++)
        ec_sleep_ms(20);
    assert_true(ec_mqtt_can_publish_now(c));
    for (int i = 0; i < 4; i++)
        assert_int_equal(ec_mqtt_publish_nowait(c, topic, "x", 1, 1, NULL, &err), EC_OK);
    /* The cap is reached: workers would wait now, and the hook is told so. */
    assert_false(ec_mqtt_can_publish_now(c));
    assert_int_equal(ec_mqtt_publish(c, topic, "x", 1, 1, false, NULL, 50, &err), EC_ERR_BUSY);
    for (int i = 0; i < 4; i++)
        assert_int_equal(ec_mqtt_publish_nowait(c, topic, "x", 1, 1, NULL, &err), EC_OK);
    uint64_t t0 = ec_mono_us();
    assert_int_equal(ec_mqtt_publish_nowait(c, topic, "x", 1, 1, NULL, &err), EC_ERR_BUSY);
    assert_true(ec_mono_us() - t0 < 50000); /* refused, not waited */
    assert_non_null(strstr(err.msg, "unacknowledged"));
    ech_start_broker(&h);
    wait_connected(c, 15000);
    assert_int_equal(ec_mqtt_flush(c, 5000), EC_OK); /* the buffered eight went out */
    assert_true(ec_mqtt_can_publish_now(c));
    ec_mqtt_destroy(c);
    ech_teardown(&h);
}

static ec_mqtt *flood(ech *h, const char *topic, ec_mqtt *sub, int n)
{
    ec_error err = {0};
    ec_mqtt *pub = client(h, "flood-pub", 64, 64);
    assert_int_equal(ec_mqtt_connect(pub, 5000, &err), EC_OK);
    for (int i = 0; i < n; i++) {
        char text[16];
        snprintf(text, sizeof(text), "%d", i);
        assert_int_equal(
            ec_mqtt_publish(pub, topic, text, strlen(text), 1, false, NULL, 5000, &err), EC_OK);
    }
    assert_int_equal(ec_mqtt_flush(pub, 5000), EC_OK);
    return pub;
}

static void full_queue_without_hook_keeps_everything(void **state)
{
    ech h;
    ec_error err = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/flood", h.root);
    ec_mqtt *sub = client(&h, "flood-sub", 16, 16);
    assert_int_equal(ec_mqtt_subscribe(sub, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(sub, 5000, &err), EC_OK);
    const int n = 300;
    ec_mqtt *pub = flood(&h, topic, sub, n);
    for (int i = 0; i < 200 && ec_mqtt_queue_len(sub) < (size_t)n; i++)
        ec_sleep_ms(10); /* nobody pops meanwhile */
    assert_int_equal(ec_mqtt_overflows(sub), n - 16);
    assert_int_equal(ec_mqtt_queue_len(sub), n);
    for (int i = 0; i < n; i++) {
        ec_mqtt_msg *m = NULL;
        assert_int_equal(ec_mqtt_next(sub, &m, 5000), EC_OK);
        assert_int_equal(atoi(m->payload), i);    /* all of them, in order */
        assert_int_equal(m->overflowed, i >= 16); /* and marked past the bound */
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(pub);
    ec_mqtt_destroy(sub);
    ech_teardown(&h);
}

typedef struct hooked {
    _Atomic int n;
    int first;
} hooked;

static bool take_overflow(void *ctx, ec_mqtt_msg *msg)
{
    hooked *hk = ctx;
    if (hk->n++ == 0)
        hk->first = atoi(msg->payload);
    ec_mqtt_msg_free(msg);
    return true;
}

static void full_queue_goes_to_the_overflow_hook(void **state)
{
    ech h;
    ec_error err = {0};
    hooked hk = {0};
    ech_init(&h, "mqtt");
    ech_start_broker(&h);
    char topic[200];
    snprintf(topic, sizeof(topic), "%s/flood", h.root);
    ec_mqtt_opts o = {.uri = h.uri,
                      .client_id = "hook-sub",
                      .queue_cap = 16,
                      .clean_start = true,
                      .session_expiry_s = 60,
                      .on_overflow = take_overflow,
                      .overflow_ctx = &hk};
    ec_mqtt *sub = NULL;
    assert_int_equal(ec_mqtt_create(&sub, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(sub, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(sub, 5000, &err), EC_OK);
    const int n = 200;
    ec_mqtt *pub = flood(&h, topic, sub, n);
    for (int i = 0; i < 200 && hk.n < n - 16; i++)
        ec_sleep_ms(10);
    assert_int_equal(ec_mqtt_queue_len(sub), 16); /* the queue held its bound */
    assert_int_equal(hk.n, n - 16);               /* and the hook got every other one */
    assert_int_equal(hk.first, 16);
    ec_mqtt_destroy(pub);
    ec_mqtt_destroy(sub);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(nodelay_holds_after_reconnect),
        cmocka_unit_test(paho_bookkeeping_is_off),
        cmocka_unit_test(broker_restarts_with_publishes_in_flight),
        cmocka_unit_test(v5_properties_travel),
        cmocka_unit_test(same_client_id_shows_as_short_lives),
        cmocka_unit_test(broker_disconnect_reason_is_kept),
        cmocka_unit_test(inflight_bound_pushes_back),
        cmocka_unit_test(nowait_publishes_are_counted_and_bounded),
        cmocka_unit_test(full_queue_without_hook_keeps_everything),
        cmocka_unit_test(full_queue_goes_to_the_overflow_hook),
    };
    return cmocka_run_group_tests_name("integration.mqtt", tests, NULL, NULL);
}
