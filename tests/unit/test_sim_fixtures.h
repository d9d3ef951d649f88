/* Shared by test_sim.c and test_sim_faults.c: the simulator under test as
 * a child process, and a small libcurl client for it. */
#ifndef EC_TEST_SIM_FIXTURES_H
#define EC_TEST_SIM_FIXTURES_H
/* edgecascade-sim over real HTTP: the built binary runs as a child process on
 * a free loopback port with a script written here, and libcurl talks to it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define SIM_BIN EC_BIN_DIR "/edgecascade-sim"

static const char script_json[] =
    "{\"models\": {"
    "  \"loc\": {\"kind\": \"local\", \"default_logprob\": -0.3},"
    "  \"cloud\": {\"kind\": \"cloud\", \"default_logprob\": -0.05, \"require_key\": \"sk-test\"},"
    "  \"f500\": {}, \"f503\": {}, \"f429\": {}, \"slow\": {}, \"hang\": {}, \"reset\": {},"
    "  \"bad\": {}, \"flaky\": {}},"
    " \"rules\": ["
    "  {\"match\": \"TOLERANCE\", \"model\": \"*\","
    "   \"answer\": \"PASS: the part is within tolerance.\", \"logprob\": -0.02},"
    "  {\"match\": \"vibration\", \"model\": \"loc\", \"answer\": \"Check the bearings now "
    "please\","
    "   \"logprobs\": [-2.1, -0.3, -1.0]},"
    "  {\"match\": \"gauge\", \"model\": \"loc\", \"answer\": \"7\", \"samples\": [\"7\", \"8\"]}],"
    " \"faults\": {"
    "  \"f500\": {\"status\": 500},"
    "  \"f503\": {\"status\": 503, \"retry_after\": 2},"
    "  \"f429\": {\"status\": 429, \"retry_after\": 1},"
    "  \"slow\": {\"latency_ms\": 300},"
    "  \"hang\": {\"hang\": true},"
    "  \"reset\": {\"reset\": true},"
    "  \"bad\": {\"malformed\": true},"
    "  \"flaky\": {\"status\": 503, \"times\": 2}}}";

#define TOL_ANSWER "PASS: the part is within tolerance."
/* "You are terse." (3 words) + "Is the part within tolerance?" (5): ceil(8*4/3) = 11. */
#define TOL_MESSAGES                                                                               \
    "[{\"role\":\"system\",\"content\":\"You are terse.\"},"                                       \
    "{\"role\":\"user\",\"content\":\"Is the part within tolerance?\"}]"

static struct {
    char dir[64];
    char log[128];
    pid_t pid;
    int port;
} g;

typedef struct http_res {
    CURLcode cc;
    long status;
    char *body;
    size_t len;
    char hdrs[8192];
    size_t hlen;
    double ms;
} http_res;

static inline size_t on_body(char *p, size_t sz, size_t n, void *ud)
{
    http_res *r = ud;
    char *b = realloc(r->body, r->len + sz * n + 1);
    assert_non_null(b);
    memcpy(b + r->len, p, sz * n);
    r->len += sz * n;
    b[r->len] = '\0';
    r->body = b;
    return sz * n;
}

static inline size_t on_header(char *p, size_t sz, size_t n, void *ud)
{
    http_res *r = ud;
    size_t k = sz * n;
    if (r->hlen + k < sizeof(r->hdrs)) {
        memcpy(r->hdrs + r->hlen, p, k);
        r->hlen += k;
        r->hdrs[r->hlen] = '\0';
    }
    return k;
}

static inline double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* Value of response header name (case-insensitive), copied into buf; NULL if absent. */
static const char *hdr(const http_res *r, const char *name, char *buf, size_t n)
{
    size_t nl = strlen(name);
    for (const char *line = r->hdrs; line && *line;) {
        if (strncasecmp(line, name, nl) == 0 && line[nl] == ':') {
            const char *v = line + nl + 1;
            while (*v == ' ')
                v++;
            size_t k = strcspn(v, "\r\n");
            snprintf(buf, n, "%.*s", (int)k, v);
            return buf;
        }
        line = strchr(line, '\n');
        if (line)
            line++;
    }
    return NULL;
}

/* One request on a fresh connection. headers is NULL-terminated (or NULL). */
static inline void http(const char *method, const char *path, const char *body,
                        const char *const *headers, long timeout_ms, http_res *out)
{
    memset(out, 0, sizeof(*out));
    CURL *c = curl_easy_init();
    assert_non_null(c);
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g.port, path);
    struct curl_slist *hl = curl_slist_append(NULL, "Content-Type: application/json");
    for (size_t i = 0; headers && headers[i]; i++)
        hl = curl_slist_append(hl, headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    double t0 = now_ms();
    out->cc = curl_easy_perform(c);
    out->ms = now_ms() - t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hl);
    curl_easy_cleanup(c);
    if (out->status > 0) {
        /* Everything the simulator serves is labelled as simulated. */
        char v[32];
        assert_non_null(hdr(out, "X-Simulated", v, sizeof(v)));
        assert_string_equal(v, "true");
    }
}

static inline void http_free(http_res *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parses r's body as JSON (asserting it parses). */
static inline json_t *body_json(const http_res *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &e);
    if (!j)
        fprintf(stderr, "not JSON (%s): %.*s\n", e.text, (int)r->len, r->body ? r->body : "");
    assert_non_null(j);
    return j;
}

static inline void chat(const char *model, const char *messages, const char *extra, http_res *out)
{
    char body[2048];
    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"messages\":%s%s%s}", model, messages,
             extra ? "," : "", extra ? extra : "");
    http("POST", "/v1/chat/completions", body, NULL, 5000, out);
}

static const char *const anthropic_headers[] = {"x-api-key: anything",
                                                "anthropic-version: 2023-06-01", NULL};

static inline long model_requests(const char *model)
{
    http_res r;
    http("GET", "/sim/stats", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *n = json_object_get(json_object_get(json_object_get(j, "models"), model), "requests");
    assert_true(json_is_integer(n));
    long v = (long)json_integer_value(n);
    json_decref(j);
    http_free(&r);
    return v;
}

/* Runs the binary with args to completion; returns its exit status, output in path. */
static inline int run_sim(const char *const *args, const char *out_path)
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, SIM_BIN, &fa, NULL, (char *const *)args, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFEXITED(st));
    return WEXITSTATUS(st);
}

static inline char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = calloc(1, 1 << 20);
    size_t n = fread(buf, 1, (1 << 20) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static inline int setup(void **state)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    snprintf(g.dir, sizeof(g.dir), "/tmp/test_sim.XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    char script[128], port_file[128];
    snprintf(script, sizeof(script), "%s/script.json", g.dir);
    snprintf(port_file, sizeof(port_file), "%s/port", g.dir);
    snprintf(g.log, sizeof(g.log), "%s/sim.log", g.dir);
    FILE *f = fopen(script, "w");
    if (!f || fputs(script_json, f) < 0 || fclose(f) != 0)
        return -1;

    const char *args[] = {SIM_BIN, "--port",      "0",       "--script",
                          script,  "--port-file", port_file, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, g.log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = posix_spawn(&g.pid, SIM_BIN, &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    for (int i = 0; i < 1000; i++) { /* 10 s: ASan builds start slowly */
        FILE *p = fopen(port_file, "r");
        if (p) {
            int ok = fscanf(p, "%d", &g.port) == 1;
            fclose(p);
            if (ok && g.port > 0)
                return 0;
        }
        if (waitpid(g.pid, NULL, WNOHANG) == g.pid) {
            g.pid = 0;
            return -1;
        }
        usleep(10000);
    }
    return -1;
}

static inline int teardown(void **state)
{
    if (g.pid > 0) {
        kill(g.pid, SIGKILL);
        waitpid(g.pid, NULL, 0);
    }
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
    if (system(cmd) != 0)
        return -1;
    curl_global_cleanup();
    return 0;
}

#endif
