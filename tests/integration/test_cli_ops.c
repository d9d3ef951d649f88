/* The operator's commands against the real stack (private Mosquitto, the
 * simulator, router, local and relay as separate processes), run as a user
 * runs them: the built `edgecascade` binary as a child process.
 *
 * tail: follows <root>/result/# live, one JSON line per result, and stops
 * after --count; --source filters. doctor: every check OK with everything
 * running (exit 0); a stopped edgecascade-local shows as offline (exit 1); a
 * local tier pointing at nothing fails its model-server check with a
 * "cannot reach" hint. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/util.h"
#include "harness.h"

#define CLI EC_BIN_DIR "/edgecascade"

/* The current test's stack, global so that a failed assertion (which
 * longjmps out of the test) still gets its processes stopped by teardown. */
static ech g_h;
static bool g_live;

static int teardown(void **state)
{
    (void)state;
    if (g_live) {
        g_live = false;
        ech_teardown(&g_h);
    }
    return 0;
}

static void stack_done(void)
{
    g_live = false;
    ech_teardown(&g_h);
}

static void start_stack(ech *h)
{
    ech_init(h, "cliops");
    g_live = true;
    ech_start_broker(h);
    ech_start_sim(h, NULL);
    ech_write_config(h, NULL);
    ech_start_services(h);
    ech_connect_client(h);
}

static char *read_all(const char *path)
{
    size_t len = 0;
    char *s = ec_read_file(path, 1 << 20, &len);
    return s ? s : strdup("");
}

static void no_sanitizer_report(const char *what, const char *err)
{
    if (strstr(err, "Sanitizer") || strstr(err, "runtime error:"))
        fail_msg("sanitizer report from %s:\n%s", what, err);
}

/* A CLI child with stdout and stderr in files of the test dir. */
typedef struct child {
    pid_t pid;
    char out[600], err[600];
} child;

static void spawn_cli(ech *h, child *c, const char *name, char *const args[])
{
    char *argv[16];
    size_t n = 0;
    argv[n++] = CLI;
    argv[n++] = "--config";
    argv[n++] = h->config;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(c->out, sizeof(c->out), "%s/%s.out", h->dir, name);
    snprintf(c->err, sizeof(c->err), "%s/%s.err", h->dir, name);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(CLI, argv);
        _exit(127);
    }
}

/* Waits up to timeout_ms for the child's exit; SIGKILLs it and fails after. */
static int wait_cli(child *c, int timeout_ms)
{
    int st = 0;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            assert_true(WIFEXITED(st));
            return WEXITSTATUS(st);
        }
        ec_sleep_ms(20);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
    char *out = read_all(c->out), *err = read_all(c->err);
    fail_msg("edgecascade did not exit within %d ms\nstdout:\n%s\nstderr:\n%s", timeout_ms, out,
             err);
    return -1;
}

static void wait_for_text(const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        char *s = read_all(path);
        bool found = strstr(s, text) != NULL;
        free(s);
        if (found)
            return;
        ec_sleep_ms(20);
    }
    char *s = read_all(path);
    fail_msg("'%s' did not appear in %s within %d ms; it holds:\n%s", text, path, timeout_ms, s);
}

/* Runs the CLI to completion; returns its exit status and stdout (caller frees). */
static int run_cli(ech *h, const char *config, char **out, char *const args[])
{
    child c;
    char *argv[16];
    size_t n = 0;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *saved = NULL;
    char keep[512];
    if (config) {
        snprintf(keep, sizeof(keep), "%s", h->config);
        saved = keep;
        snprintf(h->config, sizeof(h->config), "%s", config);
    }
    spawn_cli(h, &c, "cli", argv);
    if (saved)
        snprintf(h->config, sizeof(h->config), "%s", saved);
    int rc = wait_cli(&c, 25000);
    char *err = read_all(c.err);
    no_sanitizer_report("edgecascade", err);
    free(err);
    *out = read_all(c.out);
    return rc;
}

/* ---- tail ---- */

static json_t *json_line(const char *line, size_t len)
{
    json_error_t je;
    json_t *j = json_loadb(line, len, 0, &je);
    if (!j)
        fail_msg("not a JSON line (%s): %.*s", je.text, (int)len, line);
    return j;
}

static void tail_json_two_results(void **state)
{
    (void)state;
    ech *h = &g_h;
    child c;
    start_stack(h);
    char *args[] = {"tail", "--count", "2", "--json", NULL};
    spawn_cli(h, &c, "tail", args);
    wait_for_text(c.err, "following ", 10000);

    /* One confident local answer, one escalated to the cloud. */
    ec_result r1, r2;
    assert_int_equal(
        ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &r1, 10000), 0);
    assert_int_equal(
        ech_ask(h, "Motor at 85 C with 12 mm/s vibration: failure mode?", NULL, &r2, 10000), 0);
    assert_int_equal(wait_cli(&c, 10000), 0);

    char *out = read_all(c.out);
    char *err = read_all(c.err);
    no_sanitizer_report("tail", err);
    char *nl1 = strchr(out, '\n');
    assert_non_null(nl1);
    char *nl2 = strchr(nl1 + 1, '\n');
    assert_non_null(nl2);
    assert_string_equal(nl2 + 1, ""); /* exactly two lines */
    json_t *j1 = json_line(out, (size_t)(nl1 - out));
    json_t *j2 = json_line(nl1 + 1, (size_t)(nl2 - nl1 - 1));

    assert_string_equal(json_string_value(json_object_get(j1, "id")), r1.id);
    assert_string_equal(json_string_value(json_object_get(j1, "tier")), "local");
    assert_string_equal(json_string_value(json_object_get(j1, "model")), "llama3.2-1b");
    assert_true(json_is_false(json_object_get(j1, "escalated")));
    assert_string_equal(json_string_value(json_object_get(j1, "answer")), r1.answer);
    assert_true(json_number_value(json_object_get(j1, "confidence")) >=
                json_number_value(json_object_get(j1, "threshold")));

    assert_string_equal(json_string_value(json_object_get(j2, "id")), r2.id);
    assert_string_equal(json_string_value(json_object_get(j2, "tier")), "cloud");
    assert_string_equal(json_string_value(json_object_get(j2, "model")), "gpt-4o-mini");
    assert_true(json_is_true(json_object_get(j2, "escalated")));
    assert_true(json_number_value(json_object_get(j2, "cost_usd")) > 0);
    /* The JSON form rounds to 12 significant digits. */
    assert_true(fabs(json_number_value(json_object_get(j2, "cost_usd")) - r2.cost_usd) <
                1e-9 * r2.cost_usd + 1e-15);
    assert_int_equal(json_integer_value(json_object_get(j2, "revision")), 1);
    assert_true(json_is_null(json_object_get(j2, "error")));

    json_decref(j1);
    json_decref(j2);
    ec_result_clear(&r1);
    ec_result_clear(&r2);
    free(out);
    free(err);
    stack_done();
}

/* Human lines, only the asked source, and SIGTERM ends a tail without --count. */
static void tail_source_filter_and_sigterm(void **state)
{
    (void)state;
    ech *h = &g_h;
    child c;
    start_stack(h);
    char *args[] = {"tail", "--source", "plc-7", NULL};
    spawn_cli(h, &c, "tail", args);
    wait_for_text(c.err, "following ", 10000);

    ec_result other;
    assert_int_equal(
        ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &other, 10000), 0);
    const char *q = "{\"id\":\"tail-plc7\",\"prompt\":\"Part #4471 measured 25.04 mm. OK?\","
                    "\"source\":\"plc-7\"}";
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), "corr-plc7", 10000);
    assert_non_null(m);
    ec_mqtt_msg_free(m);
    wait_for_text(c.out, "tail-plc7", 5000);
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_int_equal(wait_cli(&c, 5000), 0);

    char *out = read_all(c.out);
    char *err = read_all(c.err);
    no_sanitizer_report("tail", err);
    assert_null(strstr(out, other.id));
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    /* "2026-11-29T08:10:00.123Z  tail-plc7  source=plc-7  tier=local ..." */
    assert_int_equal(strlen(out) > 26, 1);
    assert_int_equal(out[10], 'T');
    assert_int_equal(out[23], 'Z');
    assert_non_null(strstr(out, "  tail-plc7  source=plc-7  tier=local  model=llama3.2-1b  conf="));
    assert_non_null(strstr(out, "  escalated=no  degraded=no  rev=1  cost=$0.000000  latency="));
    assert_non_null(strstr(out, "accepted"));
    ec_result_clear(&other);
    free(out);
    free(err);
    stack_done();
}

/* ---- doctor ---- */

/* The line of a check ("OK    service local ..."), or fails. */
static const char *check_line(const char *out, const char *check, char *buf, size_t cap)
{
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 6 && strncmp(p + 6, check, strlen(check)) == 0 && p[6 + strlen(check)] == ' ') {
            snprintf(buf, cap, "%.*s", (int)len, p);
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    fail_msg("no '%s' check in:\n%s", check, out);
    return NULL;
}

static void assert_state(const char *out, const char *check, const char *state)
{
    char line[1024];
    check_line(out, check, line, sizeof(line));
    if (strncmp(line, state, strlen(state)) != 0 || line[strlen(state)] != ' ')
        fail_msg("expected %s for '%s', got: %s\n(whole output:\n%s)", state, check, line, out);
}

static const char *const all_checks[] = {"config",
                                         "broker",
                                         "service router",
                                         "service local",
                                         "service relay",
                                         "model server local",
                                         "completion local",
                                         "logprobs local",
                                         "cloud key cloud",
                                         "breaker cloud",
                                         "disk",
                                         "store",
                                         NULL};

static void doctor_all_ok(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    /* The router creates the store at start; one decision makes it lived-in. */
    ec_result r;
    assert_int_equal(ech_ask(h, "Part #4471 measured 25.04 mm. Within tolerance?", NULL, &r, 10000),
                     0);
    ec_result_clear(&r);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    if (rc != 0)
        fail_msg("doctor exited %d:\n%s", rc, out);
    size_t n = 0;
    for (size_t i = 0; all_checks[i]; i++, n++)
        assert_state(out, all_checks[i], "OK");
    /* Every line printed is one of those, in that order. */
    const char *prev = out;
    for (size_t i = 0; all_checks[i]; i++) {
        char line[1024];
        const char *at = strstr(out, check_line(out, all_checks[i], line, sizeof(line)));
        assert_true(at >= prev);
        prev = at;
    }
    char want[64];
    snprintf(want, sizeof(want), "\n%zu ok, 0 warnings, 0 failures\n", n);
    if (!strstr(out, want))
        fail_msg("no '%s' in:\n%s", want, out);
    assert_non_null(strstr(out, ": connected, subscribed to "));
    assert_non_null(strstr(out, "'llama3.2-1b' listed"));
    assert_non_null(strstr(out, "one token in "));
    assert_non_null(strstr(out, "key present ($EC_TEST_OPENAI_KEY)"));
    /* The key itself is never printed. */
    assert_null(strstr(out, "sk-test-not-a-real-key"));
    free(out);

    /* --online: the cheap call goes to the simulator's /v1/models with the key. */
    char *online[] = {"doctor", "--online", NULL};
    rc = run_cli(h, NULL, &out, online);
    if (rc != 0)
        fail_msg("doctor --online exited %d:\n%s", rc, out);
    assert_state(out, "cloud key cloud", "OK");
    assert_non_null(strstr(out, "accepted by http://127.0.0.1:"));
    free(out);
    stack_done();
}

static void doctor_local_stopped(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    ech_stop(&h->local);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "service router", "OK");
    assert_state(out, "service relay", "OK");
    assert_state(out, "service local", "FAIL");
    char line[1024];
    check_line(out, "service local", line, sizeof(line));
    assert_non_null(strstr(line, "offline since "));
    assert_non_null(strstr(out, "fix: start edgecascade-local"));
    /* The model server itself is still up. */
    assert_state(out, "model server local", "OK");
    assert_non_null(strstr(out, "1 failure\n"));
    free(out);
    stack_done();
}

/* A router that stopped mid-query leaves it in its arrival journal: doctor
 * says how many and since when (the router re-runs them when it starts). */
static void doctor_journaled_queries_waiting(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    ech_stop(&h->router);
    char path[600], sql[300];
    assert_true(ec_journal_path(h->db, path, sizeof(path)));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    snprintf(sql, sizeof(sql),
             "INSERT INTO journal (id, received_ms, topic, payload) VALUES (1, %llu, 'x/query', "
             "'{\"id\":\"doctor-j1\",\"prompt\":\"hello\"}')",
             (unsigned long long)(ec_now_ms() - 300000));
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1); /* the router is down: a failure */
    assert_state(out, "journal", "WARN");
    char line[1024];
    check_line(out, "journal", line, sizeof(line));
    assert_non_null(strstr(line, "1 query received and not yet decided, the oldest 5m ago"));
    assert_non_null(strstr(out, "re-runs them when it starts"));
    free(out);
    stack_done();
}

static void doctor_wrong_base_url(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    start_stack(h);
    /* Same plant, but this copy of the config points the local tier at a port
     * nothing listens on. */
    char bad[600];
    snprintf(bad, sizeof(bad), "%.255s/bad.yaml", h->dir);
    size_t len = 0;
    char *text = ec_read_file(h->config, 1 << 20, &len);
    assert_non_null(text);
    char from[64];
    snprintf(from, sizeof(from), "base_url: http://127.0.0.1:%d/v1", h->sim_port);
    char *at = strstr(text, from); /* the first one is the local tier's */
    assert_non_null(at);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fprintf(f, "%.*sbase_url: http://127.0.0.1:1/v1%s", (int)(at - text), text, at + strlen(from));
    fclose(f);
    free(text);

    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, bad, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "service local", "OK");
    assert_state(out, "model server local", "FAIL");
    char line[1024];
    check_line(out, "model server local", line, sizeof(line));
    assert_non_null(strstr(line, "cannot reach http://127.0.0.1:1/v1"));
    assert_non_null(strstr(line, "is vLLM running?"));
    assert_non_null(strstr(out, "correct this tier's base_url"));
    /* No completion is tried against a server that is not there. */
    assert_null(strstr(out, "completion local"));
    assert_state(out, "cloud key cloud", "OK");
    free(out);
    stack_done();
}

/* No broker at all: the broker check says so with a fix, and the checks
 * that need it say they cannot tell. */
static void doctor_no_broker(void **state)
{
    (void)state;
    ech *h = &g_h;
    char *out;
    ech_init(h, "cliops");
    g_live = true;
    ech_start_sim(h, NULL);
    ech_write_config(h, NULL);
    char *args[] = {"doctor", NULL};
    int rc = run_cli(h, NULL, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "config", "OK");
    assert_state(out, "broker", "FAIL");
    assert_non_null(strstr(out, "cannot connect to tcp://127.0.0.1:"));
    assert_non_null(strstr(out, "fix: start the broker"));
    /* Not failures of their own: the broker's is the cause. */
    assert_state(out, "service router", "WARN");
    assert_non_null(strstr(out, "unknown: the broker could not be asked"));
    assert_state(out, "breaker cloud", "WARN");
    assert_state(out, "model server local", "OK");
    assert_state(out, "store", "FAIL");
    free(out);

    /* A bad file is a finding too (exit 1, not the usage exit 2), and the
     * checks stop there: everything else depends on it. */
    char bad[300];
    snprintf(bad, sizeof(bad), "%.255s/bad.yaml", h->dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("gate:\n  min_confidence: 1.5\n", f);
    fclose(f);
    rc = run_cli(h, bad, &out, args);
    assert_int_equal(rc, 1);
    assert_state(out, "config", "FAIL");
    assert_non_null(strstr(out, "min_confidence"));
    assert_non_null(strstr(out, "fix: correct the named line"));
    assert_non_null(strstr(out, "\n0 ok, 0 warnings, 1 failure\n"));
    free(out);
    stack_done();
}

/* ---- doctor on the secured broker of deploy/mosquitto/ ---- */

/* deploy/mosquitto/edgecascade.conf with its paths and port moved into the
 * test dir (as test_secure_broker does). */
static void write_secure_broker_conf(ech *h, const char *out)
{
    size_t len = 0;
    char *text = ec_read_file(EC_SOURCE_DIR "/deploy/mosquitto/edgecascade.conf", 1 << 20, &len);
    assert_non_null(text);
    char listener[64], state_dir[300];
    snprintf(listener, sizeof(listener), "listener %d 127.0.0.1", h->mqtt_port);
    snprintf(state_dir, sizeof(state_dir), "%.255s/", h->dir);
    const struct {
        const char *from, *to;
    } subst[] = {
        {"/etc/mosquitto/edgecascade", h->dir},
        {"listener 8883", listener},
        {"/var/lib/mosquitto/", state_dir},
        {"log_dest syslog", "log_dest stderr"},
    };
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    for (const char *p = text; *p;) {
        size_t i, n = sizeof(subst) / sizeof(subst[0]);
        for (i = 0; i < n; i++)
            if (strncmp(p, subst[i].from, strlen(subst[i].from)) == 0)
                break;
        if (i < n) {
            fputs(subst[i].to, f);
            p += strlen(subst[i].from);
        } else {
            fputc(*p++, f);
        }
    }
    if (geteuid() == 0)
        fputs("user root\n", f); /* else Mosquitto drops to a user who cannot read the dir */
    fclose(f);
    free(text);
}

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
    write_secure_broker_conf(h, conf);
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
        cmocka_unit_test_teardown(tail_json_two_results, teardown),
        cmocka_unit_test_teardown(tail_source_filter_and_sigterm, teardown),
        cmocka_unit_test_teardown(doctor_all_ok, teardown),
        cmocka_unit_test_teardown(doctor_local_stopped, teardown),
        cmocka_unit_test_teardown(doctor_journaled_queries_waiting, teardown),
        cmocka_unit_test_teardown(doctor_wrong_base_url, teardown),
        cmocka_unit_test_teardown(doctor_no_broker, teardown),
        cmocka_unit_test_teardown(doctor_secured_broker, teardown),
        cmocka_unit_test_teardown(doctor_online_key_rejected, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
