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
#define ECH_MAX_WRAP 16
static size_t wrapper_words(char *copy, char *words[ECH_MAX_WRAP])
{
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w && n < ECH_MAX_WRAP;
         w = strtok_r(NULL, " \t", &save))
        words[n++] = w;
    return n;
}

static bool wrapped(void)
{
    const char *w = getenv("EC_SERVICE_WRAPPER");
    return w && *w;
}

/* The child's environment: ours, with sanitizer options that send every
 * report to <dir>/<name>.san.<pid> (scanned by ech_teardown) and stop at the
 * first error. Built before fork: the test process has threads, so the
 * child only calls exec. A caller's own options stay in front (ours win). */
static char **child_env(ech *h, const char *name, char *own[3])
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    assert_non_null(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0 &&
            strncmp(environ[i], "UBSAN_OPTIONS=", 14) != 0)
            env[k++] = environ[i];
    const char *ua = getenv("ASAN_OPTIONS"), *uu = getenv("UBSAN_OPTIONS");
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.san", h->dir, name);
    assert_true(asprintf(&own[0], "ASAN_OPTIONS=%s%slog_path=%s:halt_on_error=1:detect_leaks=1",
                         ua ? ua : "", ua && *ua ? ":" : "", path) > 0);
    assert_true(asprintf(&own[1],
                         "UBSAN_OPTIONS=%s%slog_path=%s:halt_on_error=1:print_stacktrace=1",
                         uu ? uu : "", uu && *uu ? ":" : "", path) > 0);
    own[2] = NULL;
    env[k++] = own[0];
    env[k++] = own[1];
    env[k] = NULL;
    return env;
}

/* Every process a test started, killed when the test binary exits: a failed
 * assertion skips the test's teardown, and the broker and services it
 * started would otherwise outlive the binary and load the machine for every
 * test (and benchmark) after it. waitpid tells a child still running from a
 * pid already reaped (ECHILD), so nothing else is ever killed. */
static pid_t g_children[1024];
static size_t g_n_children;

static void kill_children(void)
{
    for (size_t i = 0; i < g_n_children; i++)
        if (waitpid(g_children[i], NULL, WNOHANG) == 0)
            kill(g_children[i], SIGKILL);
}

static void remember_child(pid_t pid)
{
    if (g_n_children == 0)
        atexit(kill_children);
    if (g_n_children < sizeof(g_children) / sizeof(g_children[0]))
        g_children[g_n_children++] = pid;
}

static void spawn(ech *h, ech_proc *p, const char *name, char *const argv[])
{
    /* only our programs are instrumented ("mosquitto", "mosquitto-central") */
    bool ours = strncmp(name, "mosquitto", 9) != 0;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", h->dir, name);

    char *own[3] = {NULL, NULL, NULL};
    char **env = child_env(h, name, own);
    char *wcopy = strdup(ours && wrapped() ? getenv("EC_SERVICE_WRAPPER") : "");
    char *words[ECH_MAX_WRAP];
    size_t nw = wrapper_words(wcopy, words);
    size_t na = 0;
    while (argv[na])
        na++;
    char **args = calloc(nw + na + 1, sizeof(*args));
    assert_non_null(args);
    for (size_t i = 0; i < nw; i++)
        args[i] = words[i];
    for (size_t i = 0; i < na; i++)
        args[nw + i] = argv[i];
    /* execve does not search PATH: a bare wrapper name is looked up here. */
    char exe[512];
    if (nw && !strchr(args[0], '/'))
        snprintf(exe, sizeof(exe), "/usr/bin/%s", args[0]);
    else
        snprintf(exe, sizeof(exe), "%s", args[0]);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* If the test binary crashes. Mosquitto started as root drops to
         * user mosquitto, which clears this; kill_children covers it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execve(exe, args, env);
        dprintf(2, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    remember_child(pid);
    free(args);
    free(wcopy);
    free(env);
    free(own[0]);
    free(own[1]);
}

bool ech_alive(ech_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->reaped = true;
        p->status = st;
        return false;
    }
    return true;
}

/* How long a process may take to exit after SIGTERM: the router gives
 * in-flight queries 5 s; valgrind's leak check at exit takes a while. */
static int stop_wait_ms(void)
{
    return wrapped() ? 120000 : 15000;
}

static int stop_proc(ech_proc *p)
{
    int status = -1;
    if (p->pid <= 0)
        return -1;
    if (p->reaped) {
        p->pid = 0;
        return p->status;
    }
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < stop_wait_ms(); waited += 20) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            goto done;
        ec_sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->stop_kill = true;
done:
    p->reaped = true;
    p->status = status;
    p->pid = 0;
    return status;
}

void ech_kill9(ech_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return;
    kill(p->pid, SIGKILL);
    int st = 0;
    waitpid(p->pid, &st, 0);
    p->reaped = true;
    p->status = st;
}

int ech_stop(ech_proc *p)
{
    return stop_proc(p);
}

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
    spawn(h, &h->broker, "mosquitto", argv);
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
    spawn(h, &h->broker, "mosquitto", argv);
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
    spawn(h, p, name, argv); /* name must start with "mosquitto" */
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
    stop_proc(&h->broker);
}

void ech_start_sim(ech *h, const char *script)
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
                    NULL};
    spawn(h, &h->sim, "sim", argv);
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

void ech_write_config(ech *h, const char *extra)
{
    char tiers[2048];
    snprintf(tiers, sizeof(tiers),
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
    spawn(h, p, name, argv);
    wait_online(h, p, name);
}

void ech_start_services(ech *h)
{
    ech_start_one(h, &h->router, "router");
    ech_start_one(h, &h->local, "local");
    ech_start_one(h, &h->relay, "relay");
}

void ech_dump_logs(ech *h)
{
    ech_proc *ps[] = {&h->broker, &h->sim, &h->router, &h->local, &h->relay};
    for (size_t i = 0; i < 5; i++) {
        if (!ps[i]->log[0])
            continue;
        size_t len = 0;
        char *text = ec_read_file(ps[i]->log, 1 << 20, &len);
        if (!text)
            continue;
        const char *tail = len > 6000 ? text + len - 6000 : text;
        fprintf(stderr, "----- %s (%s) -----\n%s\n", ps[i]->name, ps[i]->log, tail);
        free(text);
    }
}

/* Appends what is wrong with how p ended to report (nothing when it is fine). */
static void check_exit(const ech_proc *p, ec_buf *report)
{
    if (!p->name[0] || !p->reaped)
        return;
    int st = p->status;
    if (p->stop_kill)
        ec_buf_printf(report, "%s did not exit within %d ms of SIGTERM (killed)\n", p->name,
                      stop_wait_ms());
    else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        ec_buf_printf(report, "%s exited with status %d\n", p->name, WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) /* SIGKILL: sent by the test */
        ec_buf_printf(report, "%s died of signal %d (%s)\n", p->name, WTERMSIG(st),
                      strsignal(WTERMSIG(st)));
}

/* Appends every sanitizer report left in the test dir (<name>.san.<pid>). */
static void collect_sanitizer_logs(ech *h, ec_buf *report)
{
    DIR *d = opendir(h->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".san."))
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", h->dir, e->d_name);
        size_t len = 0;
        char *text = ec_read_file(path, 1 << 20, &len);
        if (text && len)
            ec_buf_printf(report, "----- sanitizer report %s -----\n%.*s\n", path,
                          (int)(len > 12000 ? 12000 : len), text);
        free(text);
    }
    closedir(d);
}

void ech_teardown(ech *h)
{
    if (h->client) {
        ec_mqtt_destroy(h->client);
        h->client = NULL;
    }
    ech_proc *ps[] = {&h->router, &h->local, &h->relay, &h->sim, &h->broker};
    for (size_t i = 0; i < 5; i++)
        stop_proc(ps[i]);
    ec_buf report;
    ec_buf_init(&report, 0);
    for (size_t i = 0; i < 4; i++) /* not the broker: not ours */
        check_exit(ps[i], &report);
    collect_sanitizer_logs(h, &report);
    if (report.len) {
        ech_dump_logs(h);
        fprintf(stderr, "%s", ec_buf_cstr(&report));
        fprintf(stderr, "test files kept in %s\n", h->dir);
        ec_buf_free(&report);
        fail_msg("a service ended badly or reported memory errors (see above)");
    }
    ec_buf_free(&report);
    if (getenv("EC_KEEP_TEST_DIR")) {
        fprintf(stderr, "test files kept in %s\n", h->dir);
        return;
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", h->dir);
}

long ech_rss_kb(const ech_proc *p)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

void ech_connect_client(ech *h)
{
    ec_error err = {0};
    char cid[64];
    snprintf(cid, sizeof(cid), "ech-client-%d", (int)getpid());
    snprintf(h->reply_topic, sizeof(h->reply_topic), "%s/test/replies", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    assert_int_equal(ec_mqtt_create(&h->client, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(h->client, h->reply_topic, 1, &err), EC_OK);
    if (ec_mqtt_connect(h->client, 5000, &err) != EC_OK)
        fail_msg("test client: %s", err.msg);
}

ec_mqtt_msg *ech_request(ech *h, const void *payload, size_t len, const char *corr, int timeout_ms)
{
    ec_error err = {0};
    char topic[256];
    snprintf(topic, sizeof(topic), "%s/query", h->root);
    ec_mqtt_pubprops pp = {
        .response_topic = h->reply_topic, .corr = corr, .corr_len = strlen(corr)};
    assert_int_equal(ec_mqtt_publish(h->client, topic, payload, len, 1, false, &pp, 5000, &err),
                     EC_OK);
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h->client, &m, 50) != EC_OK)
            continue;
        if (m->corr && m->corr_len == strlen(corr) && memcmp(m->corr, corr, m->corr_len) == 0)
            return m;
        ec_mqtt_msg_free(m);
    }
    return NULL;
}

int ech_ask(ech *h, const char *prompt, const char *policy, ec_result *out, int timeout_ms)
{
    ec_query q = {0};
    ec_buf b;
    ec_error err = {0};
    q.prompt = (char *)prompt;
    if (policy)
        assert_int_equal(ec_policy_parse(policy, &q.policy), 0);
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&q, &b, &err), EC_OK);
    char corr[40];
    ec_id_new(corr);
    ec_mqtt_msg *m = ech_request(h, b.data, b.len, corr, timeout_ms);
    ec_buf_free(&b);
    if (!m)
        return -1;
    ec_err rc = ec_result_decode(m->payload, m->len, out, &err);
    if (rc)
        fprintf(stderr, "result decode: %s\n", err.msg);
    ec_mqtt_msg_free(m);
    return rc == EC_OK ? 0 : -1;
}

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
    return ec_buf_append(ud, ptr, size * n) == EC_OK ? size * n : 0;
}

static json_t *sim_call(ech *h, const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    char url[256];
    ec_buf b;
    ec_buf_init(&b, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h->sim_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    struct curl_slist *hd = NULL;
    if (body) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        fail_msg("sim %s: %s", path, curl_easy_strerror(rc));
    json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    ec_buf_free(&b);
    return j;
}

long ech_sim_requests(ech *h, const char *model)
{
    json_t *j = sim_call(h, "/sim/stats", NULL);
    assert_non_null(j);
    json_t *m = json_object_get(json_object_get(j, "models"), model);
    long n = m ? (long)json_integer_value(json_object_get(m, "requests")) : 0;
    json_decref(j);
    return n;
}

char *ech_sim_last_request(ech *h, const char *model)
{
    json_t *j = sim_call(h, "/sim/stats", NULL);
    assert_non_null(j);
    json_t *m = json_object_get(json_object_get(j, "models"), model);
    const char *s = json_string_value(json_object_get(m, "last_request"));
    char *out = s ? strdup(s) : NULL;
    json_decref(j);
    return out;
}

void ech_sim_fault(ech *h, const char *body)
{
    json_decref(sim_call(h, "/sim/faults", body));
}

void ech_sim_post(ech *h, const char *path, const char *body)
{
    json_decref(sim_call(h, path, body));
}

char *ech_sql(ech *h, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_open_v2(h->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("open %s: %s", h->db, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sql %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

long ech_journal_rows(ech *h, int settle_ms)
{
    char path[600];
    if (!ec_journal_path(h->db, path, sizeof(path)))
        fail_msg("journal path for %s", h->db);
    long n = -1;
    for (int waited = 0;; waited += 20) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
            fail_msg("open %s: %s", path, sqlite3_errmsg(db));
        sqlite3_busy_timeout(db, 5000);
        if (sqlite3_prepare_v2(db, "SELECT count(*) FROM journal", -1, &st, NULL) != SQLITE_OK)
            fail_msg("journal %s: %s", path, sqlite3_errmsg(db));
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        sqlite3_close(db);
        if (n == 0 || waited >= settle_ms)
            return n;
        ec_sleep_ms(20);
    }
}

long ech_sql_long(ech *h, const char *sql)
{
    char *s = ech_sql(h, sql);
    long v = s ? strtol(s, NULL, 10) : 0;
    free(s);
    return v;
}

long ech_sql_wait(ech *h, const char *sql, long want)
{
    long n = 0;
    for (int k = 0; k < 100; k++) {
        if ((n = ech_sql_long(h, sql)) >= want)
            break;
        ec_sleep_ms(50);
    }
    return n;
}
