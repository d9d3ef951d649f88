/* `edgecascade doctor` where credentials matter, against the real stack (a
 * private Mosquitto, the simulator and the services as separate processes):
 * on the secured broker of deploy/mosquitto/ (TLS, per-service logins and
 * ACLs), and with --online against a cloud that refuses the API key. Apart
 * from test_cli_ops.c because each test builds its own broker or stand-in
 * cloud; the shared fixtures are in test_cli_ops_fixtures.h. */
#define _GNU_SOURCE
#include "harness_secure.h"
#include "test_cli_ops_fixtures.h"

/* ---- doctor on the secured broker of deploy/mosquitto/ ---- */

/* The plant's shared config: every program its own broker user through
 * {service}; the CLI logs in as edgecascade-cli. */
static void write_secure_services_conf(ech *h, const char *path, const char *password_file)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f,
            "site: test\n"
            "topic_root: %s\n"
            "mqtt:\n"
            "  broker: %s\n"
            "  ca_file: %s/certs/ca.crt\n"
            "  username: edgecascade-{service}\n"
            "  password_file: %s\n"
            "store:\n"
            "  path: %s\n"
            "  batch_ms: 10\n"
            "tiers:\n"
            "  - {name: local, provider: vllm, model: llama3.2-1b,"
            " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n"
            "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
            " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY}\n",
            h->root, h->uri, h->dir, password_file, h->db, h->sim_port, h->sim_port);
    fclose(f);
}

static void doctor_secured_broker(void **state)
{
    (void)state;
    ech *h = &g_h;
    char cmd[4096], conf[600], pwfile[600], *out;
    ech_init(h, "cliops");
    g_live = true;
    snprintf(cmd, sizeof(cmd),
             "'%s/deploy/mosquitto/make-certs.sh' '%.255s/certs' >/dev/null && "
             "'%s/deploy/mosquitto/make-users.sh' '%.255s' --root '%.127s' --plc plc1 >/dev/null",
             EC_SOURCE_DIR, h->dir, EC_SOURCE_DIR, h->dir, h->root);
    assert_int_equal(system(cmd), 0);
    snprintf(conf, sizeof(conf), "%.255s/mosquitto-secure.conf", h->dir);
    ech_secure_broker_conf(h, conf);
    snprintf(h->uri, sizeof(h->uri), "mqtts://127.0.0.1:%d", h->mqtt_port);
    ech_start_broker_conf(h, conf);
    ech_start_sim(h, NULL);
    snprintf(pwfile, sizeof(pwfile), "%.255s/secrets/edgecascade-{service}.password", h->dir);
    write_secure_services_conf(h, h->config, pwfile);
    char ca[600];
    snprintf(ca, sizeof(ca), "%.255s/certs/ca.crt", h->dir);
    h->mqtt_user = "edgecascade-cli";
    char cli_pw_path[600];
    snprintf(cli_pw_path, sizeof(cli_pw_path), "%.255s/secrets/edgecascade-cli.password", h->dir);
    size_t len = 0;
    char *cli_pw = ec_read_file(cli_pw_path, 4096, &len);
    assert_non_null(cli_pw);
    cli_pw[strcspn(cli_pw, "\r\n")] = '\0';
    h->mqtt_password = cli_pw;
    h->mqtt_ca_file = ca;
    ech_start_services(h);

    /* As edgecascade-cli over TLS: the services are seen through the ACL
     * (which grants the operator <root>/status/#, not all of <root>/#). */
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    if (rc != 0)
        fail_msg("doctor exited %d:\n%s", rc, out);
    char line[1024];
    check_line(out, "broker", line, sizeof(line));
    if (strncmp(line, "OK ", 3) != 0 && strncmp(line, "WARN ", 5) != 0)
        fail_msg("broker check: %s", line);
    assert_non_null(strstr(line, "mqtts://127.0.0.1:"));
    assert_state(out, "service router", "OK");
    assert_state(out, "service local", "OK");
    assert_state(out, "service relay", "OK");
    assert_state(out, "breaker cloud", "OK");
    assert_null(strstr(out, cli_pw));
    free(out);

    /* A wrong password: the login itself is refused, and doctor says so. */
    char badpw[600], bad[600];
    snprintf(badpw, sizeof(badpw), "%.255s/wrong.password", h->dir);
    snprintf(bad, sizeof(bad), "%.255s/bad.yaml", h->dir);
    FILE *f = fopen(badpw, "w");
    assert_non_null(f);
    fputs("not-the-password\n", f);
    fclose(f);
    write_secure_services_conf(h, bad, badpw);
    rc = run_cli(h, bad, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "broker", "FAIL");
    check_line(out, "broker", line, sizeof(line));
    assert_non_null(strstr(line, "refused the login"));
    assert_non_null(strstr(out, "fix: check mqtt.username and mqtt.password"));
    assert_null(strstr(out, "not-the-password"));
    free(out);
    h->mqtt_password = NULL;
    free(cli_pw);
    stack_done();
}

/* ---- doctor --online: a cloud that refuses the key ---- */

/* A one-shot HTTP server answering 401 as OpenAI does for a bad key, and
 * keeping the request head (to check the key was sent, and how). */
typedef struct refuser {
    int fd, port;
    char head[2048];
} refuser;

static void *refuser_main(void *arg)
{
    refuser *rf = arg;
    static const char body[] = "{\"error\":{\"message\":\"Incorrect API key provided\","
                               "\"type\":\"invalid_request_error\",\"code\":\"invalid_api_key\"}}";
    struct pollfd pfd = {.fd = rf->fd, .events = POLLIN};
    if (poll(&pfd, 1, 15000) != 1)
        return NULL;
    int c = accept(rf->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t n = 0;
    while (n + 1 < sizeof(rf->head)) {
        ssize_t r = recv(c, rf->head + n, sizeof(rf->head) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        rf->head[n] = '\0';
        if (strstr(rf->head, "\r\n\r\n"))
            break;
    }
    char resp[512];
    int len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       sizeof(body) - 1, body);
    ssize_t w = send(c, resp, (size_t)len, MSG_NOSIGNAL);
    (void)w;
    close(c);
    return NULL;
}

static void doctor_online_key_rejected(void **state)
{
    (void)state;
    ech *h = &g_h;
    refuser rf;
    pthread_t th;
    memset(&rf, 0, sizeof(rf));
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    rf.fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(rf.fd >= 0);
    assert_int_equal(bind(rf.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rf.fd, 4), 0);
    assert_int_equal(getsockname(rf.fd, (struct sockaddr *)&a, &alen), 0);
    rf.port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&th, NULL, refuser_main, &rf), 0);

    ech_init(h, "cliops");
    g_live = true;
    ech_start_broker(h);
    ech_start_sim(h, NULL);
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: vllm, model: llama3.2-1b,"
             " base_url: 'http://127.0.0.1:%d/v1'}\n"
             "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
             " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY}\n",
             h->sim_port, rf.port);
    ech_write_config_tiers(h, tiers, NULL);
    char *out;
    char *args[] = {"doctor", "--online", NULL};
    int rc = run_cli(h, NULL, &out, args);
    pthread_join(th, NULL);
    close(rf.fd);
    assert_int_equal(rc, 1);
    assert_state(out, "cloud key cloud", "FAIL");
    char line[1024];
    check_line(out, "cloud key cloud", line, sizeof(line));
    assert_non_null(strstr(line, "key from $EC_TEST_OPENAI_KEY rejected: HTTP 401"));
    assert_non_null(strstr(out, "fix: replace the key"));
    /* The one cheap call: GET /v1/models with the key as a bearer token; the
     * key itself is never printed. */
    assert_int_equal(strncmp(rf.head, "GET /v1/models HTTP/1.1\r\n", 25), 0);
    assert_non_null(strstr(rf.head, "Authorization: Bearer sk-test-not-a-real-key\r\n"));
    assert_null(strstr(out, "sk-test-not-a-real-key"));
    free(out);
    stack_done();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(doctor_secured_broker, teardown),
        cmocka_unit_test_teardown(doctor_online_key_rejected, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
