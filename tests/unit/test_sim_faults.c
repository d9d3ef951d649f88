/* The simulator's fault injection (status, latency, hang, reset, malformed
 * bodies, counted faults), its error answers, its command line and its
 * shutdown, over real HTTP. */
#include "test_sim_fixtures.h"

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
