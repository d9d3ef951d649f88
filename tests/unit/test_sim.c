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

static size_t on_body(char *p, size_t sz, size_t n, void *ud)
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

static size_t on_header(char *p, size_t sz, size_t n, void *ud)
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

static double now_ms(void)
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
static void http(const char *method, const char *path, const char *body, const char *const *headers,
                 long timeout_ms, http_res *out)
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

static void http_free(http_res *r)
{
    free(r->body);
    r->body = NULL;
}

/* Parses r's body as JSON (asserting it parses). */
static json_t *body_json(const http_res *r)
{
    json_error_t e;
    json_t *j = json_loadb(r->body ? r->body : "", r->len, 0, &e);
    if (!j)
        fprintf(stderr, "not JSON (%s): %.*s\n", e.text, (int)r->len, r->body ? r->body : "");
    assert_non_null(j);
    return j;
}

static void chat(const char *model, const char *messages, const char *extra, http_res *out)
{
    char body[2048];
    snprintf(body, sizeof(body), "{\"model\":\"%s\",\"messages\":%s%s%s}", model, messages,
             extra ? "," : "", extra ? extra : "");
    http("POST", "/v1/chat/completions", body, NULL, 5000, out);
}

static const char *const anthropic_headers[] = {"x-api-key: anything",
                                                "anthropic-version: 2023-06-01", NULL};

static long model_requests(const char *model)
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
static int run_sim(const char *const *args, const char *out_path)
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

static char *slurp(const char *path)
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

static int setup(void **state)
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

static int teardown(void **state)
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

static void test_openai_shape_and_usage(void **state)
{
    http_res r;
    chat("loc", TOL_MESSAGES, "\"max_tokens\":100,\"temperature\":0.2", &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(strncmp(json_string_value(json_object_get(j, "id")), "chatcmpl-", 9) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "chat.completion");
    assert_true(json_integer_value(json_object_get(j, "created")) > 1600000000);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    assert_true(json_is_true(json_object_get(j, "simulated")));
    json_t *choices = json_object_get(j, "choices");
    assert_int_equal(json_array_size(choices), 1);
    json_t *c0 = json_array_get(choices, 0);
    assert_int_equal(json_integer_value(json_object_get(c0, "index")), 0);
    json_t *msg = json_object_get(c0, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), TOL_ANSWER);
    assert_true(json_is_null(json_object_get(c0, "logprobs")));
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "stop");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "prompt_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 6);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 17);
    char ct[64];
    assert_non_null(hdr(&r, "Content-Type", ct, sizeof(ct)));
    assert_string_equal(ct, "application/json");
    json_decref(j);
    http_free(&r);
}

/* The raw bytes of "choices":[...] up to ,"usage". */
static char *choices_bytes(const http_res *r)
{
    const char *a = strstr(r->body, "\"choices\":");
    const char *b = a ? strstr(a, ",\"usage\":") : NULL;
    assert_non_null(b);
    return strndup(a, (size_t)(b - a));
}

static void test_openai_deterministic_default_answer(void **state)
{
    const char *msgs = "[{\"role\":\"user\",\"content\":\"What torque for M8 bolts?\"}]";
    http_res r1, r2, r3;
    chat("loc", msgs, "\"logprobs\":true", &r1);
    chat("loc", msgs, "\"logprobs\":true", &r2);
    chat("loc", "[{\"role\":\"user\",\"content\":\"Something else entirely\"}]",
         "\"logprobs\":true", &r3);
    assert_int_equal(r1.status, 200);
    assert_int_equal(r2.status, 200);
    assert_int_equal(r3.status, 200);
    char *c1 = choices_bytes(&r1), *c2 = choices_bytes(&r2), *c3 = choices_bytes(&r3);
    assert_string_equal(c1, c2);
    assert_string_not_equal(c1, c3);

    json_t *j = body_json(&r1);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    assert_true(strncmp(content, "[simulated loc] ", 16) == 0);
    assert_true(strlen(content) > 30);
    json_t *toks = json_object_get(json_object_get(c0, "logprobs"), "content");
    assert_true(json_array_size(toks) > 3);
    size_t i;
    json_t *t;
    json_array_foreach(toks, i, t)
    {
        double lp = json_real_value(json_object_get(t, "logprob"));
        /* default_logprob -0.3 with at most 0.05 of jitter, never positive */
        assert_true(lp <= 0.0 && lp >= -0.35 - 1e-9 && lp <= -0.25 + 1e-9);
    }
    free(c1);
    free(c2);
    free(c3);
    json_decref(j);
    http_free(&r1);
    http_free(&r2);
    http_free(&r3);
}

static void test_openai_logprobs(void **state)
{
    http_res r;
    chat("loc", "[{\"role\":\"user\",\"content\":\"Strong vibration on pump 3\"}]",
         "\"logprobs\":true,\"top_logprobs\":3", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    const char *content =
        json_string_value(json_object_get(json_object_get(c0, "message"), "content"));
    assert_string_equal(content, "Check the bearings now please");
    json_t *toks = json_object_get(json_object_get(c0, "logprobs"), "content");
    assert_int_equal(json_array_size(toks), 5);
    const double want[] = {-2.1, -0.3, -1.0, -1.0, -1.0}; /* the last value repeats */
    char joined[256] = "";
    for (size_t i = 0; i < 5; i++) {
        json_t *t = json_array_get(toks, i);
        strcat(joined, json_string_value(json_object_get(t, "token")));
        assert_true(fabs(json_real_value(json_object_get(t, "logprob")) - want[i]) < 1e-9);
        assert_true(json_is_null(json_object_get(t, "bytes")));
        json_t *tops = json_object_get(t, "top_logprobs");
        assert_int_equal(json_array_size(tops), 3);
        /* the chosen token leads its alternatives, whose probabilities sum below 1 */
        assert_string_equal(json_string_value(json_object_get(json_array_get(tops, 0), "token")),
                            json_string_value(json_object_get(t, "token")));
        double p = 0;
        for (size_t k = 0; k < 3; k++)
            p += exp(json_real_value(json_object_get(json_array_get(tops, k), "logprob")));
        assert_true(p < 1.0);
    }
    assert_string_equal(json_string_value(json_object_get(json_array_get(toks, 1), "token")),
                        " the");
    assert_string_equal(joined, content);
    json_decref(j);
    http_free(&r);

    /* Rule logprob: every token the same. */
    chat("loc", TOL_MESSAGES, "\"logprobs\":true", &r);
    j = body_json(&r);
    toks = json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs"), "content");
    assert_int_equal(json_array_size(toks), 6);
    joined[0] = '\0';
    for (size_t i = 0; i < 6; i++) {
        json_t *t = json_array_get(toks, i);
        strcat(joined, json_string_value(json_object_get(t, "token")));
        assert_true(fabs(json_real_value(json_object_get(t, "logprob")) + 0.02) < 1e-9);
        assert_int_equal(json_array_size(json_object_get(t, "top_logprobs")), 0);
    }
    assert_string_equal(joined, TOL_ANSWER);
    json_decref(j);
    http_free(&r);

    /* logprobs:false is the same as not asking. */
    chat("loc", TOL_MESSAGES, "\"logprobs\":false", &r);
    j = body_json(&r);
    assert_true(json_is_null(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "logprobs")));
    json_decref(j);
    http_free(&r);
}

static char *answer_of(const http_res *r)
{
    json_t *j = body_json(r);
    const char *t = json_string_value(json_object_get(
        json_object_get(json_array_get(json_object_get(j, "choices"), 0), "message"), "content"));
    assert_non_null(t);
    char *copy = strdup(t);
    json_decref(j);
    return copy;
}

/* A greedy request gets the rule's answer every time; sampled ones
 * (temperature > 0) get the rule's samples in turn. */
static void test_openai_samples(void **state)
{
    static const char msgs[] = "[{\"role\":\"user\",\"content\":\"Read the gauge.\"}]";
    const char *want[] = {"7", "7", NULL, NULL};
    const char *extra[] = {NULL, "\"temperature\":0", "\"temperature\":0.7", "\"temperature\":0.7"};
    char *got[4];
    for (int i = 0; i < 4; i++) {
        http_res r;
        chat("loc", msgs, extra[i], &r);
        assert_int_equal(r.status, 200);
        got[i] = answer_of(&r);
        http_free(&r);
        if (want[i])
            assert_string_equal(got[i], want[i]);
    }
    /* the two samples differ: one of each */
    assert_true((strcmp(got[2], "7") == 0 && strcmp(got[3], "8") == 0) ||
                (strcmp(got[2], "8") == 0 && strcmp(got[3], "7") == 0));
    for (int i = 0; i < 4; i++)
        free(got[i]);
}

static void test_openai_max_tokens(void **state)
{
    http_res r;
    chat("loc", TOL_MESSAGES, "\"max_tokens\":2,\"logprobs\":true", &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    json_t *c0 = json_array_get(json_object_get(j, "choices"), 0);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(c0, "message"), "content")), "PASS: the");
    assert_string_equal(json_string_value(json_object_get(c0, "finish_reason")), "length");
    assert_int_equal(json_array_size(json_object_get(json_object_get(c0, "logprobs"), "content")),
                     2);
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "completion_tokens")), 2);
    assert_int_equal(json_integer_value(json_object_get(u, "total_tokens")), 13);
    json_decref(j);
    http_free(&r);

    chat("loc", TOL_MESSAGES, "\"max_tokens\":0", &r);
    assert_int_equal(r.status, 400);
    http_free(&r);
}

static void test_openai_models(void **state)
{
    http_res r;
    http("GET", "/v1/models", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "object")), "list");
    json_t *data = json_object_get(j, "data");
    assert_int_equal(json_array_size(data), 10);
    json_t *m0 = json_array_get(data, 0);
    assert_string_equal(json_string_value(json_object_get(m0, "id")), "loc");
    assert_string_equal(json_string_value(json_object_get(m0, "object")), "model");
    assert_true(json_is_integer(json_object_get(m0, "created")));
    assert_string_equal(json_string_value(json_object_get(m0, "owned_by")), "edgecascade-sim");
    assert_string_equal(json_string_value(json_object_get(json_array_get(data, 1), "id")), "cloud");
    json_decref(j);
    http_free(&r);
}

static void test_openai_auth(void **state)
{
    const char *body = "{\"model\":\"cloud\",\"messages\":" TOL_MESSAGES "}";
    const char *const wrong[] = {"Authorization: Bearer sk-wrong", NULL};
    const char *const right[] = {"Authorization: Bearer sk-test", NULL};
    http_res r;
    http("POST", "/v1/chat/completions", body, NULL, 5000, &r);
    assert_int_equal(r.status, 401);
    json_t *j = body_json(&r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), "invalid_request_error");
    assert_string_equal(json_string_value(json_object_get(e, "code")), "invalid_api_key");
    json_decref(j);
    http_free(&r);
    http("POST", "/v1/chat/completions", body, wrong, 5000, &r);
    assert_int_equal(r.status, 401);
    http_free(&r);
    http("POST", "/v1/chat/completions", body, right, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
}

static void test_anthropic(void **state)
{
    const char *body = "{\"model\":\"loc\",\"max_tokens\":100,\"system\":\"You are terse.\","
                       "\"messages\":[{\"role\":\"user\",\"content\":\"Is the part within "
                       "tolerance?\"}]}";
    http_res r;
    http("POST", "/v1/messages", body, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_true(strncmp(json_string_value(json_object_get(j, "id")), "msg_", 4) == 0);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "message");
    assert_string_equal(json_string_value(json_object_get(j, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    json_t *c = json_array_get(json_object_get(j, "content"), 0);
    assert_string_equal(json_string_value(json_object_get(c, "type")), "text");
    assert_string_equal(json_string_value(json_object_get(c, "text")), TOL_ANSWER);
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "end_turn");
    json_t *u = json_object_get(j, "usage");
    assert_int_equal(json_integer_value(json_object_get(u, "input_tokens")), 11);
    assert_int_equal(json_integer_value(json_object_get(u, "output_tokens")), 6);
    json_decref(j);
    http_free(&r);

    const char *small = "{\"model\":\"loc\",\"max_tokens\":1,\"messages\":[{\"role\":\"user\","
                        "\"content\":[{\"type\":\"text\",\"text\":\"tolerance?\"}]}]}";
    http("POST", "/v1/messages", small, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "stop_reason")), "max_tokens");
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(j, "content"), 0), "text")),
                        "PASS:");
    json_decref(j);
    http_free(&r);

    const char *const no_key[] = {"anthropic-version: 2023-06-01", NULL};
    http("POST", "/v1/messages", body, no_key, 5000, &r);
    assert_int_equal(r.status, 401);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "authentication_error");
    assert_true(json_is_string(json_object_get(json_object_get(j, "error"), "message")));
    json_decref(j);
    http_free(&r);

    const char *const no_version[] = {"x-api-key: k", NULL};
    http("POST", "/v1/messages", body, no_version, 5000, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "invalid_request_error");
    json_decref(j);
    http_free(&r);

    /* require_key applies to x-api-key too. */
    const char *cloud = "{\"model\":\"cloud\",\"max_tokens\":10,\"messages\":" TOL_MESSAGES "}";
    const char *const good[] = {"x-api-key: sk-test", "anthropic-version: 2023-06-01", NULL};
    http("POST", "/v1/messages", cloud, anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 401);
    http_free(&r);
    http("POST", "/v1/messages", cloud, good, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
}

static void test_ollama(void **state)
{
    http_res r;
    http("POST", "/api/chat",
         "{\"model\":\"loc\",\"stream\":false,\"options\":{\"num_predict\":3,\"temperature\":0},"
         "\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "model")), "loc");
    assert_true(json_is_string(json_object_get(j, "created_at")));
    json_t *msg = json_object_get(j, "message");
    assert_string_equal(json_string_value(json_object_get(msg, "role")), "assistant");
    assert_string_equal(json_string_value(json_object_get(msg, "content")), "PASS: the part");
    assert_true(json_is_true(json_object_get(j, "done")));
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "length");
    assert_int_equal(json_integer_value(json_object_get(j, "prompt_eval_count")), 11);
    assert_int_equal(json_integer_value(json_object_get(j, "eval_count")), 3);
    assert_true(json_integer_value(json_object_get(j, "total_duration")) > 0);
    json_decref(j);
    http_free(&r);

    http("POST", "/api/chat", "{\"model\":\"loc\",\"stream\":false,\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "done_reason")), "stop");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(j, "message"), "content")), TOL_ANSWER);
    json_decref(j);
    http_free(&r);

    /* Without "stream": NDJSON, one chunk per token and a final done:true. */
    http("POST", "/api/chat", "{\"model\":\"loc\",\"messages\":" TOL_MESSAGES "}", NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    char joined[256] = "";
    int lines = 0;
    bool done = false;
    for (char *line = strtok(r.body, "\n"); line; line = strtok(NULL, "\n")) {
        json_t *o = json_loads(line, 0, NULL);
        assert_non_null(o);
        assert_false(done);
        done = json_is_true(json_object_get(o, "done"));
        strcat(joined,
               json_string_value(json_object_get(json_object_get(o, "message"), "content")));
        if (done)
            assert_int_equal(json_integer_value(json_object_get(o, "eval_count")), 6);
        json_decref(o);
        lines++;
    }
    assert_true(done);
    assert_int_equal(lines, 7);
    assert_string_equal(joined, TOL_ANSWER);
    http_free(&r);

    http("GET", "/api/tags", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    j = body_json(&r);
    json_t *models = json_object_get(j, "models");
    assert_int_equal(json_array_size(models), 10);
    json_t *m0 = json_array_get(models, 0);
    assert_string_equal(json_string_value(json_object_get(m0, "name")), "loc");
    assert_string_equal(json_string_value(json_object_get(m0, "model")), "loc");
    assert_true(json_is_string(json_object_get(m0, "modified_at")));
    assert_true(json_integer_value(json_object_get(m0, "size")) > 0);
    assert_int_equal(strlen(json_string_value(json_object_get(m0, "digest"))), 64);
    assert_true(json_is_object(json_object_get(m0, "details")));
    json_decref(j);
    http_free(&r);
}

static void expect_openai_error(const http_res *r, long status, const char *type)
{
    assert_int_equal(r->status, status);
    json_t *j = body_json(r);
    json_t *e = json_object_get(j, "error");
    assert_true(json_is_string(json_object_get(e, "message")));
    assert_string_equal(json_string_value(json_object_get(e, "type")), type);
    json_decref(j);
}

static void test_fault_status(void **state)
{
    http_res r;
    char v[32];
    chat("f500", TOL_MESSAGES, NULL, &r);
    expect_openai_error(&r, 500, "server_error");
    assert_null(hdr(&r, "Retry-After", v, sizeof(v)));
    http_free(&r);

    chat("f503", TOL_MESSAGES, NULL, &r);
    expect_openai_error(&r, 503, "server_error");
    assert_non_null(hdr(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "2");
    http_free(&r);

    chat("f429", TOL_MESSAGES, NULL, &r);
    expect_openai_error(&r, 429, "requests");
    assert_non_null(hdr(&r, "Retry-After", v, sizeof(v)));
    assert_string_equal(v, "1");
    http_free(&r);

    /* Same fault through the Anthropic API: its own error shape. */
    http("POST", "/v1/messages", "{\"model\":\"f429\",\"messages\":" TOL_MESSAGES "}",
         anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 429);
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "rate_limit_error");
    json_decref(j);
    http_free(&r);

    /* And through Ollama's. */
    http("POST", "/api/chat", "{\"model\":\"f503\",\"stream\":false,\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    assert_int_equal(r.status, 503);
    j = body_json(&r);
    assert_true(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    http_free(&r);
}

static void test_fault_latency(void **state)
{
    http_res r;
    chat("slow", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.ms >= 300.0);
    http_free(&r);
}

typedef struct hang_arg {
    long timeout_ms;
    http_res res;
} hang_arg;

static void *hang_thread(void *p)
{
    hang_arg *a = p;
    chat("hang", TOL_MESSAGES, NULL, &a->res);
    return NULL;
}

static void *hang_thread_timeout(void *p)
{
    hang_arg *a = p;
    http("POST", "/v1/chat/completions", "{\"model\":\"hang\",\"messages\":" TOL_MESSAGES "}", NULL,
         a->timeout_ms, &a->res);
    return NULL;
}

static void test_fault_hang(void **state)
{
    http_res r;
    http("POST", "/v1/chat/completions", "{\"model\":\"hang\",\"messages\":" TOL_MESSAGES "}", NULL,
         300, &r);
    assert_int_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_true(r.ms >= 290.0);
    http_free(&r);

    /* While one request hangs, another model still answers at once. */
    hang_arg a = {.timeout_ms = 1500};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hang_thread_timeout, &a), 0);
    usleep(100000);
    chat("loc", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    assert_true(r.ms < 1000.0);
    http_free(&r);
    pthread_join(t, NULL);
    assert_int_equal(a.res.cc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(a.res.status, 0);
    http_free(&a.res);
}

static void test_fault_reset(void **state)
{
    http_res r;
    chat("reset", TOL_MESSAGES, NULL, &r);
    assert_int_not_equal(r.cc, CURLE_OK);
    assert_int_not_equal(r.cc, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    http_free(&r);
}

static void test_fault_malformed(void **state)
{
    http_res r;
    chat("bad", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.cc, CURLE_OK);
    assert_int_equal(r.status, 200);
    assert_true(r.len > 0);
    assert_null(json_loadb(r.body, r.len, 0, NULL));
    http_free(&r);
}

static void test_fault_times(void **state)
{
    const long want[] = {503, 503, 200, 200};
    for (size_t i = 0; i < 4; i++) {
        http_res r;
        chat("flaky", TOL_MESSAGES, NULL, &r);
        assert_int_equal(r.status, want[i]);
        http_free(&r);
    }
}

static void post_fault(const char *body, long want)
{
    http_res r;
    http("POST", "/sim/faults", body, NULL, 5000, &r);
    assert_int_equal(r.status, want);
    http_free(&r);
}

static void test_runtime_faults_and_stats(void **state)
{
    long loc0 = model_requests("loc"), cloud0 = model_requests("cloud");
    http_res r;
    chat("loc", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
    http("POST", "/v1/messages", "{\"model\":\"loc\",\"messages\":" TOL_MESSAGES "}",
         anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
    http("POST", "/api/chat", "{\"model\":\"loc\",\"stream\":false,\"messages\":" TOL_MESSAGES "}",
         NULL, 5000, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);
    assert_int_equal(model_requests("loc"), loc0 + 3);
    assert_int_equal(model_requests("cloud"), cloud0); /* never reached */

    /* One 500, then healthy again. */
    post_fault("{\"model\":\"loc\",\"status\":500,\"times\":1}", 200);
    chat("loc", TOL_MESSAGES, NULL, &r);
    expect_openai_error(&r, 500, "server_error");
    http_free(&r);
    chat("loc", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);

    post_fault("{\"model\":\"loc\",\"status\":429,\"retry_after\":3}", 200);
    for (int i = 0; i < 2; i++) {
        char v[16];
        chat("loc", TOL_MESSAGES, NULL, &r);
        assert_int_equal(r.status, 429);
        assert_string_equal(hdr(&r, "Retry-After", v, sizeof(v)), "3");
        http_free(&r);
    }
    post_fault("{\"model\":\"loc\"}", 200); /* clears */
    chat("loc", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);

    /* A script fault can be cleared too. */
    post_fault("{\"model\":\"f500\"}", 200);
    chat("f500", TOL_MESSAGES, NULL, &r);
    assert_int_equal(r.status, 200);
    http_free(&r);

    post_fault("{\"model\":\"nosuch\",\"status\":500}", 404);
    post_fault("{\"model\":\"loc\",\"stauts\":500}", 400);
    post_fault("{\"model\":\"loc\",\"status\":200}", 400);
    post_fault("not json", 400);
    assert_int_equal(model_requests("loc"), loc0 + 3 + 2 + 2 + 1);
}

static void test_errors(void **state)
{
    http_res r;
    chat("nosuch", TOL_MESSAGES, NULL, &r);
    expect_openai_error(&r, 404, "invalid_request_error");
    json_t *j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "code")),
                        "model_not_found");
    json_decref(j);
    http_free(&r);

    http("POST", "/v1/messages", "{\"model\":\"nosuch\",\"messages\":" TOL_MESSAGES "}",
         anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 404);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "error"), "type")),
                        "not_found_error");
    json_decref(j);
    http_free(&r);

    http("POST", "/api/chat", "{\"model\":\"nosuch\",\"messages\":" TOL_MESSAGES "}", NULL, 5000,
         &r);
    assert_int_equal(r.status, 404);
    j = body_json(&r);
    assert_true(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    http_free(&r);

    http("POST", "/v1/chat/completions", "{\"model\": \"loc\", \"messages\": [", NULL, 5000, &r);
    expect_openai_error(&r, 400, "invalid_request_error");
    http_free(&r);
    http("POST", "/v1/messages", "{oops", anthropic_headers, 5000, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_string_equal(json_string_value(json_object_get(j, "type")), "error");
    json_decref(j);
    http_free(&r);
    http("POST", "/api/chat", "[1,2", NULL, 5000, &r);
    assert_int_equal(r.status, 400);
    j = body_json(&r);
    assert_true(json_is_string(json_object_get(j, "error")));
    json_decref(j);
    http_free(&r);
    /* Valid JSON, wrong shape. */
    http("POST", "/v1/chat/completions", "{\"model\":\"loc\",\"messages\":\"hi\"}", NULL, 5000, &r);
    expect_openai_error(&r, 400, "invalid_request_error");
    http_free(&r);

    http("GET", "/v2/nothing", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 404);
    http_free(&r);
    http("GET", "/v1/chat/completions", NULL, NULL, 5000, &r);
    assert_int_equal(r.status, 405);
    http_free(&r);
}

static void test_cli(void **state)
{
    char out[160], bad[160];
    snprintf(out, sizeof(out), "%s/cli.out", g.dir);
    snprintf(bad, sizeof(bad), "%s/bad.json", g.dir);

    const char *version[] = {SIM_BIN, "--version", NULL};
    assert_int_equal(run_sim(version, out), 0);
    char *text = slurp(out);
    assert_non_null(strstr(text, "edgecascade-sim " EC_VERSION));
    free(text);

    const char *help[] = {SIM_BIN, "--help", NULL};
    assert_int_equal(run_sim(help, out), 0);
    text = slurp(out);
    assert_non_null(strstr(text, "--port-file"));
    free(text);

    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("{\"models\": {\"m\": {\"kind\": \"local\", \"latncy_ms\": 5}}}", f);
    fclose(f);
    const char *badrun[] = {SIM_BIN, "--port", "0", "--script", bad, NULL};
    assert_int_equal(run_sim(badrun, out), 2);
    text = slurp(out);
    assert_non_null(strstr(text, "latncy_ms"));
    free(text);

    f = fopen(bad, "w");
    assert_non_null(f);
    fputs("{\"models\": {\"m\": {}}, \"rules\": [{\"match\": \"x\", \"answer\": \"y\", "
          "\"samples\": []}]}",
          f);
    fclose(f);
    assert_int_equal(run_sim(badrun, out), 2);
    text = slurp(out);
    assert_non_null(strstr(text, "rules[0].samples: expected a non-empty array"));
    free(text);

    const char *noport[] = {SIM_BIN, NULL};
    assert_int_equal(run_sim(noport, out), 2);
}

/* Last: SIGTERM while a request hangs still stops the server promptly, with status 0. */
static void test_sigterm_exits_zero(void **state)
{
    hang_arg a = {0};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, hang_thread, &a), 0);
    usleep(150000);
    assert_int_equal(kill(g.pid, SIGTERM), 0);
    int st = 0;
    pid_t w = 0;
    for (int i = 0; i < 500 && w == 0; i++) { /* 5 s */
        w = waitpid(g.pid, &st, WNOHANG);
        if (w == 0)
            usleep(10000);
    }
    assert_int_equal(w, g.pid);
    g.pid = 0;
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    pthread_join(t, NULL);
    assert_int_not_equal(a.res.cc, CURLE_OK); /* the hung request got no answer */
    http_free(&a.res);

    /* One log line per request, with method, path, model, status and time. */
    char *log = slurp(g.log);
    assert_non_null(log);
    assert_non_null(strstr(log, "POST /v1/chat/completions model=loc status=200 "));
    assert_non_null(strstr(log, "POST /v1/chat/completions model=f503 status=503 "));
    assert_non_null(strstr(log, "ms"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openai_shape_and_usage),
        cmocka_unit_test(test_openai_deterministic_default_answer),
        cmocka_unit_test(test_openai_logprobs),
        cmocka_unit_test(test_openai_samples),
        cmocka_unit_test(test_openai_max_tokens),
        cmocka_unit_test(test_openai_models),
        cmocka_unit_test(test_openai_auth),
        cmocka_unit_test(test_anthropic),
        cmocka_unit_test(test_ollama),
        cmocka_unit_test(test_fault_status),
        cmocka_unit_test(test_fault_latency),
        cmocka_unit_test(test_fault_hang),
        cmocka_unit_test(test_fault_reset),
        cmocka_unit_test(test_fault_malformed),
        cmocka_unit_test(test_fault_times),
        cmocka_unit_test(test_runtime_faults_and_stats),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_sigterm_exits_zero),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
