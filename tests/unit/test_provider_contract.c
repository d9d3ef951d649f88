/* Contract tests on the model APIs' own published bodies
 * (tests/data/providers/<api>/<case>.json, see its README.md): the built
 * simulator serves each body verbatim over real HTTP (--replay-dir, POST
 * /sim/serve), each provider talks to it through libcurl (ec_http), and the
 * test checks what edgecascade sent (GET /sim/received), what it read and
 * what it decided (OK / RETRY / ERROR, the error class, Retry-After).
 *
 * A case whose file is missing is reported on stderr as a gap and skipped:
 * the corpus says what is not published. EC_PROVIDER_CORPUS overrides the
 * directory (for a corpus being collected elsewhere). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/http.h"
#include "edgecascade/provider.h"

extern char **environ;

#define SIM_BIN EC_BIN_DIR "/edgecascade-sim"

static struct {
    char dir[64];
    char corpus[512];
    pid_t pid;
    int port;
    ec_http *http;
} g;

static bool have(const char *file)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", g.corpus, file);
    if (access(p, R_OK) == 0)
        return true;
    fprintf(stderr, "contract gap: %s is not in the corpus\n", file);
    return false;
}

static int setup(void **state)
{
    (void)state;
    const char *env = getenv("EC_PROVIDER_CORPUS");
    snprintf(g.corpus, sizeof(g.corpus), "%s",
             env && *env ? env : EC_SOURCE_DIR "/tests/data/providers");
    snprintf(g.dir, sizeof(g.dir), "/tmp/test_contract.XXXXXX");
    if (!mkdtemp(g.dir) || ec_http_global_init(true) || ec_http_create(&g.http))
        return -1;
    char port_file[128], log[128];
    snprintf(port_file, sizeof(port_file), "%s/port", g.dir);
    snprintf(log, sizeof(log), "%s/sim.log", g.dir);
    const char *args[] = {SIM_BIN,   "--port",       "0",      "--port-file",
                          port_file, "--replay-dir", g.corpus, NULL};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 2, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int rc = posix_spawn(&g.pid, SIM_BIN, &fa, NULL, (char *const *)args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return -1;
    for (int i = 0; i < 1000; i++) { /* 10 s: sanitizer builds start slowly */
        FILE *p = fopen(port_file, "r");
        if (p) {
            int ok = fscanf(p, "%d", &g.port) == 1;
            fclose(p);
            if (ok && g.port > 0)
                return 0;
        }
        if (waitpid(g.pid, NULL, WNOHANG) == g.pid)
            return -1;
        usleep(10000);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    if (g.pid > 0) {
        kill(g.pid, SIGTERM);
        waitpid(g.pid, NULL, 0);
    }
    ec_http_destroy(g.http);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g.dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* A control call to the simulator; returns the parsed answer. */
static json_t *sim(const char *method, const char *path, const char *body)
{
    ec_http_request req;
    ec_http_response resp;
    ec_error err = {0};
    char url[128];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", g.port, path);
    ec_http_request_init(&req, method);
    req.url = strdup(url);
    req.timeout_ms = 10000;
    if (body) {
        assert_int_equal(ec_buf_append(&req.body, body, strlen(body)), EC_OK);
        assert_int_equal(ec_http_request_add_header(&req, "Content-Type: application/json"), EC_OK);
    }
    ec_http_response_init(&resp);
    if (ec_http_perform(g.http, &req, &resp, &err) != EC_OK)
        fail_msg("%s %s: %s", method, path, err.msg);
    if (resp.status != 200)
        fail_msg("%s %s: %ld %.*s", method, path, resp.status, (int)resp.body.len, resp.body.data);
    json_t *j = json_loadb(resp.body.data, resp.body.len, 0, NULL);
    assert_non_null(j);
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
    return j;
}

static void serve(const char *file, const char *path)
{
    char body[512];
    snprintf(body, sizeof(body), "{\"file\":\"%s\",\"path\":\"%s\",\"times\":1}", file, path);
    json_decref(sim("DELETE", "/sim/received", NULL));
    json_decref(sim("POST", "/sim/serve", body));
}

/* The last request the simulator received (its entry; caller decrefs). */
static json_t *last_received(void)
{
    json_t *all = sim("GET", "/sim/received", NULL);
    json_t *reqs = json_object_get(all, "requests");
    assert_true(json_array_size(reqs) > 0);
    json_t *e = json_incref(json_array_get(reqs, json_array_size(reqs) - 1));
    json_decref(all);
    return e;
}

static ec_tier_cfg tier(const char *provider)
{
    static char base[64];
    snprintf(base, sizeof(base), "http://127.0.0.1:%d/v1", g.port);
    ec_tier_cfg t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)"t";
    t.provider = (char *)provider;
    t.model = (char *)"m";
    t.base_url = base;
    t.api_key_env = (char *)"EC_TEST_KEY";
    t.timeout_ms = 10000;
    t.logprobs = true;
    return t;
}

typedef struct chat_call {
    ec_outcome outcome;
    ec_infer_reply rep;
    ec_error err;
    uint32_t retry_after_s;
    json_t *sent; /* {method, path, headers, body} */
} chat_call;

static ec_chat_msg g_msgs[] = {{(char *)"user", (char *)"Pump 3 pressure?"}};

/* Serves file on path and runs one chat call of provider against it, with a
 * temperature (1.5) inside the Query's 0..2 but above Anthropic's 0..1. */
static void chat(const char *provider, const char *file, const char *path, chat_call *c)
{
    memset(c, 0, sizeof(*c));
    serve(file, path);
    ec_tier_cfg t = tier(provider);
    ec_infer_request r;
    memset(&r, 0, sizeof(r));
    r.id = (char *)"q";
    r.tier = (char *)"t";
    r.messages = g_msgs;
    r.n_messages = 1;
    r.max_tokens = 64;
    r.temperature = 1.5;
    r.has_temperature = true;
    r.logprobs = true;
    const ec_provider *p = ec_provider_find(provider);
    ec_http_request req;
    ec_http_response resp;
    ec_http_response_init(&resp);
    assert_int_equal(p->build_chat(&t, &r, "sk-test", &req, &c->err), EC_OK);
    if (ec_http_perform(g.http, &req, &resp, &c->err) != EC_OK)
        fail_msg("%s: %s", file, c->err.msg);
    c->outcome = p->parse_chat(&t, &resp, &c->rep, &c->err);
    c->retry_after_s = resp.retry_after_s;
    c->sent = last_received();
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
}

static void chat_free(chat_call *c)
{
    ec_infer_reply_clear(&c->rep);
    json_decref(c->sent);
}

/* What every chat request must carry for its API (issue 14). */
static void check_sent(const char *provider, json_t *sent)
{
    json_t *b = json_object_get(sent, "body");
    json_t *h = json_object_get(sent, "headers");
    assert_string_equal(json_string_value(json_object_get(b, "model")), "m");
    assert_true(json_is_array(json_object_get(b, "messages")));
    double temp = json_number_value(json_object_get(b, "temperature"));
    if (strcmp(provider, "ollama") == 0) {
        assert_true(json_is_true(json_object_get(b, "logprobs")));
        assert_true(json_is_false(json_object_get(b, "stream")));
        json_t *o = json_object_get(b, "options");
        assert_int_equal(json_integer_value(json_object_get(o, "num_predict")), 64);
        temp = json_number_value(json_object_get(o, "temperature"));
    } else if (strcmp(provider, "anthropic") == 0) {
        assert_true(temp <= 1.0);
        assert_int_equal(json_integer_value(json_object_get(b, "max_tokens")), 64);
        assert_null(json_object_get(b, "logprobs"));
        assert_string_equal(json_string_value(json_object_get(h, "anthropic-version")),
                            "2023-06-01");
        assert_string_equal(json_string_value(json_object_get(h, "x-api-key")), "sk-test");
        return;
    } else {
        assert_true(json_is_true(json_object_get(b, "logprobs")));
        assert_string_equal(json_string_value(json_object_get(h, "Authorization")),
                            "Bearer sk-test");
        bool cloud = strcmp(provider, "openai") == 0;
        assert_int_equal(
            json_integer_value(json_object_get(b, cloud ? "max_completion_tokens" : "max_tokens")),
            64);
        assert_null(json_object_get(b, cloud ? "max_tokens" : "max_completion_tokens"));
        /* llama.cpp: 1, not its default of 20 alternatives per token. */
        json_t *top = json_object_get(b, "top_logprobs");
        if (strcmp(provider, "openai-compatible") == 0)
            assert_int_equal(json_integer_value(top), 1);
        else
            assert_null(top);
    }
    assert_true(fabs(temp - 1.5) < 1e-9);
}

typedef struct chat_case {
    const char *file, *provider, *path;
    ec_outcome outcome;
    ec_err code;        /* err.code when not OK */
    const char *answer; /* when OK */
    int lp;             /* when OK: logprob tokens (0: none) */
    uint32_t retry_after;
} chat_case;

static const chat_case chat_cases[] = {
    /* Ollama native: logprobs since 0.12.11; the older doc body has none. */
    {"ollama/chat_logprobs.json", "ollama", "/api/chat", EC_OUTCOME_OK, 0, "Hello", 1, 0},
    {"ollama/chat_plain.json", "ollama", "/api/chat", EC_OUTCOME_OK, 0, "Hello! How are you today?",
     0, 0},
    {"ollama/chat_plain_openapi.json", "ollama", "/api/chat", EC_OUTCOME_OK, 0, NULL, 0, 0},
    {"ollama/error_400.json", "ollama", "/api/chat", EC_OUTCOME_ERROR, EC_ERR_INVAL, NULL, 0, 0},
    {"ollama/error_404_model.json", "ollama", "/api/chat", EC_OUTCOME_ERROR, EC_ERR_CONFIG, NULL, 0,
     0},
    {"ollama/error_429.json", "ollama", "/api/chat", EC_OUTCOME_RETRY, EC_ERR_BUSY, NULL, 0, 0},
    {"ollama/error_500.json", "ollama", "/api/chat", EC_OUTCOME_RETRY, EC_ERR_UNAVAILABLE, NULL, 0,
     0},
    {"ollama/error_503.json", "ollama", "/api/chat", EC_OUTCOME_RETRY, EC_ERR_UNAVAILABLE, NULL, 0,
     0},
    /* llama.cpp: the README publishes only part of a chat body (not JSON). */
    {"llamacpp/chat_plain.json", "openai-compatible", "/v1/chat/completions", EC_OUTCOME_RETRY,
     EC_ERR_PROTO, NULL, 0, 0},
    {"llamacpp/error_400.json", "openai-compatible", "/v1/chat/completions", EC_OUTCOME_ERROR,
     EC_ERR_INVAL, NULL, 0, 0},
    {"llamacpp/error_401.json", "openai-compatible", "/v1/chat/completions", EC_OUTCOME_ERROR,
     EC_ERR_CONFIG, NULL, 0, 0},
    {"llamacpp/error_503_loading.json", "openai-compatible", "/v1/chat/completions",
     EC_OUTCOME_RETRY, EC_ERR_UNAVAILABLE, NULL, 0, 0},
    {"openai/chat_logprobs.json", "openai", "/v1/chat/completions", EC_OUTCOME_OK, 0, NULL, -1, 0},
    {"openai/chat_plain.json", "openai", "/v1/chat/completions", EC_OUTCOME_OK, 0, NULL, 0, 0},
    {"openai/error_429_retry_after.json", "openai", "/v1/chat/completions", EC_OUTCOME_RETRY,
     EC_ERR_BUSY, NULL, 0, 121},
    /* vLLM speaks the OpenAI shape: its published request, OpenAI's bodies. */
    {"openai/chat_logprobs.json", "vllm", "/v1/chat/completions", EC_OUTCOME_OK, 0, NULL, -1, 0},
    {"anthropic/chat_plain.json", "anthropic", "/v1/messages", EC_OUTCOME_OK, 0, NULL, 0, 0},
    {"anthropic/error_400.json", "anthropic", "/v1/messages", EC_OUTCOME_ERROR, EC_ERR_INVAL, NULL,
     0, 0},
    {"anthropic/error_503.json", "anthropic", "/v1/messages", EC_OUTCOME_RETRY, EC_ERR_UNAVAILABLE,
     NULL, 0, 0},
    {"anthropic/error_529_overloaded.json", "anthropic", "/v1/messages", EC_OUTCOME_RETRY,
     EC_ERR_BUSY, NULL, 0, 0},
};

/* The answer text the published body carries, for the OK cases without one
 * in the table: OpenAI choices[0].message.content, Ollama message.content,
 * Anthropic the text blocks. */
static char *published_answer(const char *file)
{
    char p[1024];
    snprintf(p, sizeof(p), "%s/%s", g.corpus, file);
    json_t *root = json_load_file(p, 0, NULL);
    json_t *b = json_object_get(root, "body");
    const char *s = json_string_value(json_object_get(json_object_get(b, "message"), "content"));
    if (!s)
        s = json_string_value(json_object_get(
            json_object_get(json_array_get(json_object_get(b, "choices"), 0), "message"),
            "content"));
    if (!s)
        s = json_string_value(
            json_object_get(json_array_get(json_object_get(b, "content"), 0), "text"));
    char *out = s ? strdup(s) : NULL;
    json_decref(root);
    return out;
}

static void test_chat_cases(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(chat_cases) / sizeof(chat_cases[0]); i++) {
        const chat_case *k = &chat_cases[i];
        if (!have(k->file))
            continue;
        chat_call c;
        chat(k->provider, k->file, k->path, &c);
        check_sent(k->provider, c.sent);
        if (c.outcome != k->outcome)
            fail_msg("%s via %s: outcome %d, want %d (%s)", k->file, k->provider, c.outcome,
                     k->outcome, c.err.msg);
        if (k->outcome == EC_OUTCOME_OK) {
            char *want = k->answer ? strdup(k->answer) : published_answer(k->file);
            assert_non_null(want);
            assert_string_equal(c.rep.answer, want);
            free(want);
            if (k->lp == 0)
                assert_false(c.rep.lp.present);
            else
                assert_true(c.rep.lp.present && c.rep.lp.n_tokens > 0);
            if (k->lp > 0)
                assert_int_equal(c.rep.lp.n_tokens, k->lp);
        } else if (c.err.code != k->code) {
            fail_msg("%s via %s: error %s, want %s (%s)", k->file, k->provider,
                     ec_strerror(c.err.code), ec_strerror(k->code), c.err.msg);
        }
        assert_int_equal(c.retry_after_s, k->retry_after);
        chat_free(&c);
    }
}

/* Ollama 0.12.11+ (ollama-python's fixture): the token logprob read is the
 * published one, so the gate's signal is exp(-0.1), not the text heuristic. */
static void test_ollama_logprobs_value(void **state)
{
    (void)state;
    if (!have("ollama/chat_logprobs.json"))
        return;
    chat_call c;
    chat("ollama", "ollama/chat_logprobs.json", "/api/chat", &c);
    assert_int_equal(c.outcome, EC_OUTCOME_OK);
    assert_true(fabs(c.rep.lp.mean + 0.1) < 1e-9);
    assert_true(fabs(c.rep.lp.geo_prob - exp(-0.1)) < 1e-9);
    chat_free(&c);
}

/* Model lists, an empty Ollama's "data": null included (issue 14.4). */
static void test_models_cases(void **state)
{
    (void)state;
    static const struct {
        const char *file, *provider, *path;
        ec_err rc;
        long n; /* -1: at least one */
    } cases[] = {
        {"ollama/models.json", "ollama", "/api/tags", EC_OK, -1},
        {"ollama/models_empty.json", "ollama", "/api/tags", EC_OK, 0},
        {"ollama/v1_models.json", "openai-compatible", "/v1/models", EC_OK, -1},
        {"ollama/v1_models_empty.json", "openai-compatible", "/v1/models", EC_OK, 0},
        {"llamacpp/models.json", "openai-compatible", "/v1/models", EC_OK, -1},
        /* OpenAI's spec example has a trailing comma: a clear parse error. */
        {"openai/models.json", "openai", "/v1/models", EC_ERR_PROTO, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!have(cases[i].file))
            continue;
        serve(cases[i].file, cases[i].path);
        ec_tier_cfg t = tier(cases[i].provider);
        const ec_provider *p = ec_provider_find(cases[i].provider);
        ec_http_request req;
        ec_http_response resp;
        ec_error err = {0};
        ec_http_response_init(&resp);
        assert_int_equal(p->build_models(&t, NULL, &req, &err), EC_OK);
        assert_int_equal(ec_http_perform(g.http, &req, &resp, &err), EC_OK);
        char **names = NULL;
        size_t n = 0;
        ec_err rc = p->parse_models(&resp, &names, &n, &err);
        if (rc != cases[i].rc)
            fail_msg("%s: %s, want %s (%s)", cases[i].file, ec_strerror(rc),
                     ec_strerror(cases[i].rc), err.msg);
        if (cases[i].n >= 0)
            assert_int_equal(n, cases[i].n);
        else
            assert_true(n > 0);
        ec_models_free(names, n);
        ec_http_request_free(&req);
        ec_http_response_free(&resp);
    }
}

/* The published requests: what edgecascade sends has the fields the API's
 * own example has, and asks for logprobs the way the API's example does. */
static void test_published_requests(void **state)
{
    (void)state;
    static const struct {
        const char *file, *provider, *answer_file, *path;
    } cases[] = {
        {"ollama/chat_request.json", "ollama", "ollama/chat_plain.json", "/api/chat"},
        {"ollama/chat_logprobs_request.json", "ollama", "ollama/chat_logprobs.json", "/api/chat"},
        {"openai/chat_request.json", "openai", "openai/chat_plain.json", "/v1/chat/completions"},
        {"openai/chat_logprobs_request.json", "openai", "openai/chat_logprobs.json",
         "/v1/chat/completions"},
        {"vllm/chat_request.json", "vllm", "openai/chat_plain.json", "/v1/chat/completions"},
        {"llamacpp/chat_request.json", "openai-compatible", "openai/chat_plain.json",
         "/v1/chat/completions"},
        {"ollama/v1_chat_request.json", "openai-compatible", "openai/chat_plain.json",
         "/v1/chat/completions"},
        {"anthropic/chat_request.json", "anthropic", "anthropic/chat_plain.json", "/v1/messages"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (!have(cases[i].file) || !have(cases[i].answer_file))
            continue;
        char p[1024];
        snprintf(p, sizeof(p), "%s/%s", g.corpus, cases[i].file);
        json_t *pub = json_load_file(p, 0, NULL);
        json_t *pb = json_object_get(pub, "body");
        assert_true(json_is_object(pb));
        chat_call c;
        chat(cases[i].provider, cases[i].answer_file, cases[i].path, &c);
        json_t *ours = json_object_get(c.sent, "body");
        assert_string_equal(json_string_value(json_object_get(c.sent, "path")), cases[i].path);
        static const char *const keys[] = {"model", "messages", "max_tokens", "stream"};
        for (size_t k = 0; k < 4; k++)
            if (json_object_get(pb, keys[k]) && !json_object_get(ours, keys[k]) &&
                strcmp(keys[k], "stream") != 0 && strcmp(keys[k], "max_tokens") != 0)
                fail_msg("%s: the published request has %s, ours not", cases[i].file, keys[k]);
        if (json_is_true(json_object_get(pb, "logprobs")))
            assert_true(json_is_true(json_object_get(ours, "logprobs")));
        check_sent(cases[i].provider, c.sent);
        chat_free(&c);
        json_decref(pub);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chat_cases),
        cmocka_unit_test(test_ollama_logprobs_value),
        cmocka_unit_test(test_models_cases),
        cmocka_unit_test(test_published_requests),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
