/* The edgecascade CLI as a user runs it, the commands beside stats: the built
 * binary as a child process. config: a bad file names the field, the example
 * checks out; usage errors exit 2. models: against a stand-in model server
 * thread, and an unreachable one. query: against a real Mosquitto on a free
 * loopback port with a stand-in router thread that checks what the CLI sent
 * and answers on the Response Topic, after a decoy reply with the wrong
 * Correlation Data; an error Result, no router, no broker. Shared fixtures
 * are in test_cli_fixtures.h. */
#define _GNU_SOURCE
#include "test_cli_fixtures.h"

/* ---- config ---- */

static void config_check_names_the_field(void **state)
{
    char path[320], *out, *err;
    snprintf(path, sizeof(path), "%s/bad.yaml", g_dir);
    write_file(path, "gate:\n  min_confidence: 1.5\n");
    assert_int_equal(run_cli(&out, &err, "config --check '%s'", path), 2);
    assert_non_null(strstr(err, "min_confidence"));
    assert_null(strstr(out, "ok"));
    free(out);
    free(err);

    write_file(path, "mqtt:\n  brokr: tcp://127.0.0.1:1883\n");
    assert_int_equal(run_cli(NULL, &err, "config --check '%s'", path), 2);
    assert_non_null(strstr(err, "brokr"));
    free(err);
}

/* The documented example is itself a valid configuration. */
static void config_example_checks_ok(void **state)
{
    char path[320], *out, cmd[700];
    snprintf(path, sizeof(path), "%s/example.yaml", g_dir);
    snprintf(cmd, sizeof(cmd), "config --example > '%s'", path);
    assert_int_equal(run_cli(NULL, NULL, "%s", cmd), 0);
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size > 100);
    assert_int_equal(run_cli(&out, NULL, "config --check '%s'", path), 0);
    assert_string_equal(out, "ok\n");
    free(out);
}

static void usage_errors_exit_2(void **state)
{
    char *err;
    assert_int_equal(run_cli(NULL, &err, "frobnicate"), 2);
    assert_non_null(strstr(err, "unknown command 'frobnicate'"));
    free(err);
    assert_int_equal(run_cli(NULL, &err, "query"), 2);
    assert_non_null(strstr(err, "no question given"));
    free(err);
    assert_int_equal(run_cli(NULL, &err, "query hello --max-tokens 12x"), 2);
    assert_non_null(strstr(err, "--max-tokens"));
    free(err);
    assert_int_equal(run_cli(NULL, NULL, ""), 2);
}

/* ---- models ---- */

/* A one-shot model server: answers one HTTP request with a fixed model list
 * and records the request line. */
typedef struct model_server {
    int fd;
    int port;
    char request_line[256];
} model_server;

static void *model_server_main(void *arg)
{
    model_server *ms = arg;
    static const char body[] =
        "{\"object\":\"list\",\"data\":[{\"id\":\"llama3.2-1b\","
        "\"object\":\"model\"},{\"id\":\"qwen2.5-0.5b\",\"object\":\"model\"}]}";
    struct pollfd pfd = {.fd = ms->fd, .events = POLLIN};
    if (poll(&pfd, 1, 10000) != 1)
        return NULL;
    int c = accept(ms->fd, NULL, NULL);
    if (c < 0)
        return NULL;
    char req[4096];
    size_t n = 0;
    while (n + 1 < sizeof(req)) {
        ssize_t r = recv(c, req + n, sizeof(req) - 1 - n, 0);
        if (r <= 0)
            break;
        n += (size_t)r;
        req[n] = '\0';
        if (strstr(req, "\r\n\r\n"))
            break;
    }
    req[n] = '\0';
    char *eol = strstr(req, "\r\n");
    if (eol)
        snprintf(ms->request_line, sizeof(ms->request_line), "%.*s", (int)(eol - req), req);
    char resp[1024];
    int len = snprintf(resp, sizeof(resp),
                       "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                       "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                       sizeof(body) - 1, body);
    ssize_t w = send(c, resp, (size_t)len, MSG_NOSIGNAL);
    (void)w;
    close(c);
    return NULL;
}

static void model_server_start(model_server *ms, pthread_t *th)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    memset(ms, 0, sizeof(*ms));
    ms->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(ms->fd >= 0);
    assert_int_equal(bind(ms->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(ms->fd, 4), 0);
    assert_int_equal(getsockname(ms->fd, (struct sockaddr *)&a, &len), 0);
    ms->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(th, NULL, model_server_main, ms), 0);
}

static void model_server_finish(model_server *ms, pthread_t th)
{
    pthread_join(th, NULL);
    close(ms->fd);
}

/* Two local tiers, one served and one not, and a cloud tier models must skip. */
static void write_models_config(char *path, size_t cap, int port)
{
    char text[1024];
    snprintf(path, cap, "%s/models.yaml", g_dir);
    snprintf(text, sizeof(text),
             "tiers:\n"
             "  - name: local\n"
             "    provider: vllm\n"
             "    model: llama3.2-1b\n"
             "    base_url: http://127.0.0.1:%d/v1\n"
             "  - name: spare\n"
             "    provider: openai-compatible\n"
             "    model: phi-3-mini\n"
             "    base_url: http://127.0.0.1:1/v1\n"
             "  - name: cloud\n"
             "    provider: openai\n"
             "    model: gpt-4o-mini\n",
             port);
    write_file(path, text);
}

static void models_lists_and_reports_unreachable(void **state)
{
    model_server ms;
    pthread_t th;
    char cfg[320], *out, *err;
    model_server_start(&ms, &th);
    write_models_config(cfg, sizeof(cfg), ms.port);
    int rc = run_cli(&out, &err, "models --config '%s'", cfg);
    model_server_finish(&ms, th);
    assert_int_equal(rc, 1); /* one tier could not be asked */
    assert_string_equal(ms.request_line, "GET /v1/models HTTP/1.1");
    char want[256];
    snprintf(want, sizeof(want),
             "tier local (vllm at http://127.0.0.1:%d/v1): llama3.2-1b, qwen2.5-0.5b\n", ms.port);
    assert_string_equal(out, want);
    assert_non_null(strstr(err,
                           "tier spare (openai-compatible at http://127.0.0.1:1/v1): "
                           "cannot reach http://127.0.0.1:1/v1: is the model server running?"));
    assert_null(strstr(err, "cloud"));
    free(out);
    free(err);
}

static void models_one_tier_json(void **state)
{
    model_server ms;
    pthread_t th;
    char cfg[320], *out;
    model_server_start(&ms, &th);
    write_models_config(cfg, sizeof(cfg), ms.port);
    int rc = run_cli(&out, NULL, "--config '%s' models --tier local --json", cfg);
    model_server_finish(&ms, th);
    assert_int_equal(rc, 0);
    json_t *j = parse_json(out);
    json_t *tiers = json_object_get(j, "tiers");
    assert_int_equal(json_array_size(tiers), 1);
    json_t *t = json_array_get(tiers, 0);
    assert_string_equal(json_string_value(json_object_get(t, "tier")), "local");
    assert_true(json_is_true(json_object_get(t, "ok")));
    assert_true(json_is_true(json_object_get(t, "model_available")));
    json_t *names = json_object_get(t, "models");
    assert_int_equal(json_array_size(names), 2);
    assert_string_equal(json_string_value(json_array_get(names, 0)), "llama3.2-1b");
    assert_string_equal(json_string_value(json_array_get(names, 1)), "qwen2.5-0.5b");
    json_decref(j);
    free(out);
}

/* ---- query ---- */

static void query_without_broker_fails_clearly(void **state)
{
    char *out, *err;
    uint64_t t0 = ec_mono_us();
    int rc = run_cli(&out, &err,
                     "query 'is it in tolerance?' --broker tcp://127.0.0.1:1 "
                     "--timeout-ms 1500");
    uint64_t took_ms = (ec_mono_us() - t0) / 1000;
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "tcp://127.0.0.1:1"));
    assert_non_null(strstr(err, "broker"));
    assert_string_equal(out, "");
    assert_true(took_ms < 5000);
    free(out);
    free(err);
}

/* A stand-in for edgecascade-router: takes one query, records it, answers
 * first with the wrong correlation data (the CLI must ignore that) and then
 * with the right one. */
typedef struct fake_router {
    ec_mqtt *m;
    bool error_result;
    ec_query q;
    char *response_topic;
    size_t corr_len;
    bool got;
    char why[EC_ERROR_MSG_LEN + 64]; /* what went wrong on the router thread */
} fake_router;

/* Runs on the router thread, where a cmocka assert cannot unwind: failures
 * are recorded in f->why and asserted by the test after the join. */
static void publish_result(fake_router *f, const char *topic, const void *corr, size_t corr_len,
                           const ec_result *r)
{
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, 0);
    ec_mqtt_pubprops pp = {.corr = corr, .corr_len = corr_len};
    if (ec_result_encode(r, &b, &err) != EC_OK ||
        ec_mqtt_publish(f->m, topic, b.data, b.len, 1, false, &pp, 2000, &err) != EC_OK)
        snprintf(f->why, sizeof(f->why), "publishing the result: %s", err.msg);
    ec_buf_free(&b);
}

static void *fake_router_main(void *arg)
{
    fake_router *f = arg;
    ec_mqtt_msg *msg = NULL;
    ec_error err = {0};
    if (ec_mqtt_next(f->m, &msg, 10000) != EC_OK) {
        snprintf(f->why, sizeof(f->why), "no query arrived");
        return NULL;
    }
    f->got = true;
    f->response_topic = ec_strdup0(msg->response_topic);
    f->corr_len = msg->corr_len;
    if (ec_query_decode_any(msg->payload, msg->len, &f->q, NULL, &err) != EC_OK ||
        !msg->response_topic || !msg->corr) {
        snprintf(f->why, sizeof(f->why), "bad query: %s", err.msg);
        ec_mqtt_msg_free(msg);
        return NULL;
    }

    ec_attempt att = {.tier_index = 0,
                      .tier = "local",
                      .model = "llama3.2-1b",
                      .confidence = 0.93,
                      .threshold = 0.7,
                      .accepted = true,
                      .reason = "confident",
                      .latency_ms = 11.9,
                      .tokens_in = 31,
                      .tokens_out = 14};
    ec_result r = {.id = "q-cli-1",
                   .answer = ANSWER,
                   .tier = "local",
                   .tier_index = 0,
                   .tier_name = "local",
                   .model = "llama3.2-1b",
                   .confidence = 0.93,
                   .threshold = 0.7,
                   .reason = "confident",
                   .latency_ms = 12.4,
                   .router_ms = 0.3,
                   .attempts = &att,
                   .n_attempts = 1,
                   .tokens_in = 31,
                   .tokens_out = 14,
                   .source = f->q.source};
    if (f->error_result) {
        memset(&r, 0, sizeof(r));
        r.id = "q-cli-2";
        r.confidence = -1;
        r.error.code = "busy";
        r.error.message = "router at capacity";
    }
    ec_result decoy = r;
    decoy.answer = "DECOY";
    unsigned char wrong[16];
    memcpy(wrong, msg->corr, msg->corr_len < 16 ? msg->corr_len : 16);
    wrong[0] ^= 0xff;
    publish_result(f, msg->response_topic, wrong, sizeof(wrong), &decoy);
    publish_result(f, msg->response_topic, msg->corr, msg->corr_len, &r);
    ec_mqtt_msg_free(msg);
    return NULL;
}

static void fake_router_start(fake_router *f, pthread_t *th, bool error_result)
{
    ec_error err = {0};
    char id[64];
    memset(f, 0, sizeof(*f));
    f->error_result = error_result;
    snprintf(id, sizeof(id), "fake-router-%d", (int)getpid());
    ec_mqtt_opts o = {.uri = g_uri, .client_id = id, .clean_start = true};
    assert_int_equal(ec_mqtt_create(&f->m, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(f->m, ROOT "/query", 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(f->m, 5000, &err), EC_OK);
    assert_int_equal(pthread_create(th, NULL, fake_router_main, f), 0);
}

static void fake_router_finish(fake_router *f, pthread_t th)
{
    pthread_join(th, NULL);
    ec_mqtt_destroy(f->m);
    f->m = NULL;
}

/* Frees what the router thread kept; call after the checks that read it. */
static void fake_router_clear(fake_router *f)
{
    ec_query_clear(&f->q);
    free(f->response_topic);
    f->response_topic = NULL;
}

static void query_round_trip_human(void **state)
{
    fake_router f;
    pthread_t th;
    char *out, *err;
    fake_router_start(&f, &th, false);
    int rc = run_cli(&out, &err,
                     "query 'Is 25.04 mm within 25.00 +/- 0.05?' --policy local_only "
                     "--max-tokens 64 --temperature 0.2 --source plc-7 --broker %s "
                     "--timeout-ms 10000",
                     g_uri);
    fake_router_finish(&f, th);
    if (f.why[0])
        fail_msg("router: %s", f.why);
    if (rc != 0)
        fail_msg("exit %d, stderr: %s", rc, err);
    assert_true(f.got);
    assert_string_equal(f.q.prompt, "Is 25.04 mm within 25.00 +/- 0.05?");
    assert_int_equal(f.q.policy, EC_POLICY_LOCAL_ONLY);
    assert_int_equal(f.q.max_tokens, 64);
    assert_true(f.q.has_temperature);
    assert_near(f.q.temperature, 0.2);
    assert_string_equal(f.q.source, "plc-7");
    assert_int_equal(f.corr_len, 16);
    assert_non_null(f.response_topic);
    assert_int_equal(strncmp(f.response_topic, ROOT "/replies/cli/edgecascade-cli-",
                             strlen(ROOT "/replies/cli/edgecascade-cli-")),
                     0);
    fake_router_clear(&f);

    assert_null(strstr(out, "DECOY"));
    assert_non_null(strstr(out, "answer:     " ANSWER "\n"));
    assert_non_null(strstr(out, "tier:       local (tier 0 \"local\", model llama3.2-1b)\n"));
    assert_non_null(strstr(out, "confidence: 0.93 (threshold 0.70)  accepted\n"));
    assert_non_null(strstr(out, "escalated:  no\n"));
    assert_non_null(strstr(out, "cost:       $0.000000\n"));
    assert_non_null(strstr(out, "latency:    12.4 ms (router 0.3 ms; local 11.9 ms)\n"));
    assert_non_null(strstr(out, "tokens:     31 in / 14 out\n"));
    free(out);
    free(err);
}

static void query_error_result(void **state)
{
    fake_router f;
    pthread_t th;
    char *out, *err;

    /* Human form: the error on stderr, exit 1. */
    fake_router_start(&f, &th, true);
    int rc = run_cli(&out, &err, "query 'hello' --broker %s --timeout-ms 10000", g_uri);
    fake_router_finish(&f, th);
    fake_router_clear(&f);
    if (f.why[0])
        fail_msg("router: %s", f.why);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "error: busy: router at capacity"));
    free(out);
    free(err);

    /* --json: the result object on one line, exit 0 (scripts read it). */
    fake_router_start(&f, &th, true);
    rc = run_cli(&out, &err, "query --json 'hello' --broker %s --timeout-ms 10000", g_uri);
    fake_router_finish(&f, th);
    fake_router_clear(&f);
    if (f.why[0])
        fail_msg("router: %s", f.why);
    if (rc != 0)
        fail_msg("exit %d, stderr: %s", rc, err);
    char *nl = strchr(out, '\n');
    assert_non_null(nl);
    assert_string_equal(nl + 1, "");
    json_t *j = parse_json(out);
    assert_string_equal(json_string_value(json_object_get(j, "id")), "q-cli-2");
    assert_non_null(strstr(out, "\"busy\""));
    assert_non_null(strstr(out, "router at capacity"));
    json_decref(j);
    free(out);
    free(err);
}

static void query_no_router_times_out(void **state)
{
    char *out, *err;
    int rc = run_cli(&out, &err, "query 'anyone?' --broker %s --timeout-ms 800", g_uri);
    assert_int_equal(rc, 1);
    assert_non_null(strstr(err, "no result within 800 ms: is edgecascade-router running?"));
    assert_non_null(strstr(err, g_uri));
    free(out);
    free(err);
}

static int group_setup(void **state)
{
    if (cli_dir_setup() != 0)
        return -1;
    start_broker();
    return 0;
}

static int group_teardown(void **state)
{
    stop_broker();
    return cli_dir_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(config_check_names_the_field),
        cmocka_unit_test(config_example_checks_ok),
        cmocka_unit_test(usage_errors_exit_2),
        cmocka_unit_test(models_lists_and_reports_unreachable),
        cmocka_unit_test(models_one_tier_json),
        cmocka_unit_test(query_without_broker_fails_clearly),
        cmocka_unit_test(query_round_trip_human),
        cmocka_unit_test(query_error_result),
        cmocka_unit_test(query_no_router_times_out),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
