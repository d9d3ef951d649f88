/* Integration harness, the stack: free ports, a test's directory, the
 * broker (plain or with a config of the test's own), the simulator, the
 * services' config file, and starting the services until each reports
 * online. Starting and stopping processes is harness_proc.c, the test's MQTT
 * client, the simulator's control API and the decision log are
 * harness_client.c (all declared in harness.h). */
#define _GNU_SOURCE /* asprintf */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/util.h"

#include "harness_internal.h"

/* Paho's receive thread waits in poll() for up to a second on the sockets it
 * had when the wait began, so a client connecting while another client of the
 * same process is up (every status watcher a test opens next to its own
 * client) waited that second, often twice: 1.7 s for each watcher. Test
 * binaries are linked with -Wl,--wrap=poll (tests/CMakeLists.txt), which
 * reaches the statically linked Paho's own calls; that thread's waits are cut
 * to 20 ms here. Only the test process's own clients: the services keep
 * Paho's one-second wait, as they have a single client each. */
int __real_poll(struct pollfd *fds, nfds_t n, int timeout);
int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout);

int __wrap_poll(struct pollfd *fds, nfds_t n, int timeout)
{
    char name[16];
    if ((timeout < 0 || timeout > 20) &&
        pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
        strcmp(name, "MQTTAsync_rcv") == 0)
        timeout = 20;
    return __real_poll(fds, n, timeout);
}

int ech_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    int port = ntohs(a.sin_port);
    close(fd);
    return port;
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    close(fd);
    return ok;
}

void ech_init(ech *h, const char *test_name)
{
    memset(h, 0, sizeof(*h));
    snprintf(h->dir, sizeof(h->dir), "/tmp/ec-%s-XXXXXX", test_name);
    if (!mkdtemp(h->dir))
        fail_msg("mkdtemp: %s", strerror(errno));
    h->mqtt_port = ech_free_port();
    char id[27];
    ec_id_new(id);
    snprintf(h->root, sizeof(h->root), "ectest/%s", id);
    snprintf(h->uri, sizeof(h->uri), "tcp://127.0.0.1:%d", h->mqtt_port);
    snprintf(h->config, sizeof(h->config), "%s/edgecascade.yaml", h->dir);
    snprintf(h->db, sizeof(h->db), "%s/decisions.db", h->dir);
    setenv("EC_TEST_OPENAI_KEY", "sk-test-not-a-real-key", 1);
    signal(SIGPIPE, SIG_IGN);
}

/* Wrapper words from EC_SERVICE_WRAPPER (split on blanks, no quoting). */
void ech_start_broker(ech *h)
{
    char conf[600];
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", h->dir);
    FILE *f = fopen(conf, "w");
    assert_non_null(f);
    fprintf(f, "listener %d 127.0.0.1\nallow_anonymous true\nlog_dest stderr\n", h->mqtt_port);
    if (!h->broker_stock)
        fputs("set_tcp_nodelay true\nmax_queued_messages 10000\n", f);
    if (h->broker_persist) {
        fprintf(f, "persistence true\npersistence_location %s/\nautosave_interval 1\n", h->dir);
        /* As root Mosquitto drops to user "mosquitto", who cannot write into
         * our private test directory. */
        if (geteuid() == 0)
            fputs("user root\n", f);
    } else
        fputs("persistence false\n", f);
    fclose(f);
    char *argv[] = {"/usr/sbin/mosquitto", "-c", conf, NULL};
    ech_spawn(h, &h->broker, "mosquitto", argv);
    for (int i = 0; i < 200; i++) {
        if (port_open(h->mqtt_port))
            return;
        if (!ech_alive(&h->broker))
            break;
        ec_sleep_ms(25);
    }
    ech_dump_logs(h);
    fail_msg("mosquitto did not start on port %d", h->mqtt_port);
}

void ech_start_broker_conf(ech *h, const char *conf)
{
    char *argv[] = {"/usr/sbin/mosquitto", "-c", (char *)conf, NULL};
    ech_spawn(h, &h->broker, "mosquitto", argv);
    for (int i = 0; i < 200; i++) {
        if (port_open(h->mqtt_port))
            return;
        if (!ech_alive(&h->broker))
            break;
        ec_sleep_ms(25);
    }
    ech_dump_logs(h);
    fail_msg("mosquitto (%s) did not start on port %d", conf, h->mqtt_port);
}

void ech_start_mosquitto(ech *h, ech_proc *p, const char *name, const char *conf, int port)
{
    char *argv[] = {"/usr/sbin/mosquitto", "-c", (char *)conf, NULL};
    ech_spawn(h, p, name, argv); /* name must start with "mosquitto" */
    for (int i = 0; i < 200; i++) {
        if (port_open(port))
            return;
        if (!ech_alive(p))
            break;
        ec_sleep_ms(25);
    }
    ech_dump_logs(h);
    fail_msg("mosquitto %s (%s) did not start on port %d", name, conf, port);
}

void ech_stop_broker(ech *h)
{
    ech_stop(&h->broker);
}

void ech_start_sim(ech *h, const char *script)
{
    ech_start_sim_corpus(h, script, NULL);
}

void ech_start_sim_corpus(ech *h, const char *script, const char *corpus_dir)
{
    char portfile[600];
    snprintf(portfile, sizeof(portfile), "%s/sim.port", h->dir);
    if (script)
        snprintf(h->script, sizeof(h->script), "%s", script);
    else
        snprintf(h->script, sizeof(h->script), "%s/deploy/sim-script.json", EC_SOURCE_DIR);
    char *argv[] = {EC_BIN_DIR "/edgecascade-sim",
                    "--port",
                    "0",
                    "--port-file",
                    portfile,
                    "--script",
                    h->script,
                    corpus_dir ? "--replay-dir" : NULL,
                    (char *)corpus_dir,
                    NULL};
    ech_spawn(h, &h->sim, "sim", argv);
    for (int i = 0; i < 200; i++) {
        FILE *f = fopen(portfile, "r");
        if (f) {
            int port = 0;
            int n = fscanf(f, "%d", &port);
            fclose(f);
            if (n == 1 && port > 0) {
                h->sim_port = port;
                return;
            }
        }
        if (!ech_alive(&h->sim))
            break;
        ec_sleep_ms(25);
    }
    ech_dump_logs(h);
    fail_msg("edgecascade-sim did not start");
}

void ech_write_config_tiers(ech *h, const char *tiers, const char *extra)
{
    FILE *f = fopen(h->config, "w");
    assert_non_null(f);
    fprintf(f,
            "site: test\n"
            "topic_root: %s\n"
            "mqtt:\n"
            "  broker: %s\n"
            "store:\n"
            "  path: %s\n"
            "  batch_ms: 10\n"
            "log:\n"
            "  level: debug\n"
            "%s\n%s\n",
            h->root, h->uri, h->db, tiers, extra ? extra : "");
    fclose(f);
}

void ech_default_tiers(const ech *h, char *tiers, size_t n)
{
    snprintf(tiers, n,
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
             h->sim_port, h->sim_port);
}

void ech_write_config(ech *h, const char *extra)
{
    char tiers[2048];
    ech_default_tiers(h, tiers, sizeof(tiers));
    ech_write_config_tiers(h, tiers, extra);
}

/* Waits for the retained online status that carries this process's pid. */
static void wait_online(ech *h, ech_proc *p, const char *service)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64], topic[256];
    snprintf(cid, sizeof(cid), "ech-status-%d-%s", (int)getpid(), service);
    snprintf(topic, sizeof(topic), "%s/status/%s", h->root, service);
    ec_mqtt_opts o = {.uri = h->uri,
                      .client_id = cid,
                      .clean_start = true,
                      .session_expiry_s = 1,
                      .username = h->mqtt_user,
                      .password = h->mqtt_password,
                      .ca_file = h->mqtt_ca_file};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    if (ec_mqtt_connect(c, 5000, &err) != EC_OK)
        fail_msg("status client: %s", err.msg);
    uint64_t deadline = ec_mono_us() + 10 * 1000000ull;
    bool online = false;
    while (!online && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 100) != EC_OK) {
            if (!ech_alive(p))
                break;
            continue;
        }
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        if (j && json_integer_value(json_object_get(j, "pid")) == p->pid &&
            strcmp(json_string_value(json_object_get(j, "state")) ?: "", "online") == 0)
            online = true;
        json_decref(j);
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(c);
    if (!online) {
        ech_dump_logs(h);
        fail_msg("edgecascade-%s did not come online", service);
    }
}

void ech_start_one(ech *h, ech_proc *p, const char *name)
{
    char bin[512];
    snprintf(bin, sizeof(bin), "%s/edgecascade-%s", EC_BIN_DIR, name);
    char *argv[] = {bin, "--config", h->config, NULL};
    ech_spawn(h, p, name, argv);
    wait_online(h, p, name);
}

void ech_start_services(ech *h)
{
    ech_start_one(h, &h->router, "router");
    ech_start_one(h, &h->local, "local");
    ech_start_one(h, &h->relay, "relay");
}
