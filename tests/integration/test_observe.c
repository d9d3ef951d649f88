/* Observability end to end: real Mosquitto, the simulator, router + local +
 * relay. Queries go through the cascade; the retained <root>/stats document
 * (read by a client that subscribes afterwards, through the fleet wildcard
 * +/stats), /api/stats, /metrics and /api/decisions (over libcurl) must show
 * the right counts and the same cost as the decision log. A router restart
 * keeps the totals. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05,\n"
    "                   \"require_key\": \"sk-test-not-a-real-key\"}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"tolerance\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"PASS: 25.04 mm is within 25.00 +/- 0.05 mm.\", \"logprob\": -0.02},\n"
    "  {\"match\": \"vibration\", \"model\": \"llama3.2-1b\",\n"
    "   \"answer\": \"Maybe the motor is hot.\", \"logprob\": -1.2},\n"
    "  {\"match\": \"vibration\", \"model\": \"gpt-4o-mini\",\n"
    "   \"answer\": \"Likely bearing wear; inspect bearings and lubrication.\", \"logprob\": "
    "-0.03}\n"
    " ]}\n";

typedef struct fixture {
    ech h;
    int http_port;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof(*f));
    ech *h = &f->h;
    ech_init(h, "observe");
    char path[600];
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *fp = fopen(path, "w");
    fputs(script, fp);
    fclose(fp);
    ech_start_broker(h);
    ech_start_sim(h, path);
    f->http_port = ech_free_port();
    char extra[200];
    snprintf(extra, sizeof(extra), "stats:\n  interval_s: 1\nhttp:\n  port: %d\n", f->http_port);
    ech_write_config(h, extra);
    ech_start_services(h);
    ech_connect_client(h);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    ech_teardown(&f->h);
    free(f);
    return 0;
}

typedef ech_http_resp http_resp;

static http_resp http(fixture *f, const char *method, const char *path)
{
    return ech_http(f->http_port, method, path);
}

static json_t *get_json(fixture *f, const char *path)
{
    http_resp r = http(f, "GET", path);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.ctype, "application/json");
    json_t *j = json_loadb(r.body, r.len, 0, NULL);
    if (!j)
        fail_msg("%s: not JSON: %.200s", path, r.body);
    free(r.body);
    return j;
}

static long jint(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_integer(v))
        fail_msg("stats: %s missing or not an integer", key);
    return (long)json_integer_value(v);
}

static double jnum(json_t *j, const char *key)
{
    json_t *v = json_object_get(j, key);
    if (!json_is_number(v))
        fail_msg("stats: %s missing or not a number", key);
    return json_number_value(v);
}

/* /api/stats once it counts want queries (the hook runs as results go out). */
static json_t *stats_with(fixture *f, long want)
{
    json_t *j = NULL;
    for (int i = 0; i < 100; i++) {
        json_decref(j);
        j = get_json(f, "/api/stats");
        if (jint(j, "queries") >= want)
            break;
        ec_sleep_ms(50);
    }
    return j;
}

/* The value of one sample line of the Prometheus text, -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

/* Subscribes afresh (as a fleet dashboard would, across sites) and returns
 * the retained stats document of this test's site. */
static json_t *retained_stats(ech *h, bool *retained)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64], filter[160], want[200];
    snprintf(cid, sizeof(cid), "ech-fleet-%d", (int)getpid());
    /* h->root is "ectest/<id>": the fleet filter is "ectest/+/stats" */
    snprintf(filter, sizeof(filter), "ectest/+/stats");
    snprintf(want, sizeof(want), "%s/stats", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, filter, 1, &err), EC_OK);
    if (ec_mqtt_connect(c, 5000, &err) != EC_OK)
        fail_msg("fleet client: %s", err.msg);
    json_t *doc = NULL;
    uint64_t deadline = ec_mono_us() + 5 * 1000000ull;
    while (!doc && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 100) != EC_OK)
            continue;
        if (strcmp(m->topic, want) == 0) {
            doc = json_loadb(m->payload, m->len, 0, NULL);
            *retained = m->retained;
            assert_string_equal(m->content_type ? m->content_type : "", "application/json");
        }
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(c);
    if (!doc)
        fail_msg("no stats document on %s", want);
    return doc;
}

static void ask(ech *h, const char *prompt, const char *want_tier, double *cost)
{
    ec_result r = {0};
    assert_int_equal(ech_ask(h, prompt, NULL, &r, 10000), 0);
    assert_null(r.error.code);
    assert_string_equal(r.tier, want_tier);
    *cost += r.cost_usd;
    ec_result_clear(&r);
}

static void stats_topic_and_http_agree_with_the_log(void **state)
{
    fixture *f = *state;
    ech *h = &f->h;
    double cost = 0;
    ask(h, "Is 25.04 mm within tolerance?", "local", &cost);
    ask(h, "Is 25.05 mm within tolerance?", "local", &cost);
    ask(h, "Is 25.04 mm within tolerance?", "cache", &cost); /* the same prompt again */
    ask(h, "Motor vibration is 12 mm/s, what now?", "cloud", &cost);
    ask(h, "Motor vibration is 14 mm/s, what now?", "cloud", &cost);
    /* a malformed query: answered with bad_request, counted as an error */
    ec_mqtt_msg *bad = ech_request(h, "{not json", 9, "bad-1", 10000);
    assert_non_null(bad);
    ec_mqtt_msg_free(bad);
    assert_true(cost > 0);

    json_t *s = stats_with(f, 6);
    assert_int_equal(jint(s, "queries"), 6);
    assert_int_equal(jint(s, "local"), 2);
    assert_int_equal(jint(s, "cloud"), 2);
    assert_int_equal(jint(s, "cache"), 1);
    assert_int_equal(jint(s, "errors"), 1);
    assert_int_equal(jint(s, "escalated"), 2);
    assert_int_equal(jint(json_object_get(s, "errors_by_code"), "bad_request"), 1);
    assert_true(fabs(jnum(s, "pct_local") - 33.33) < 0.01);
    assert_true(fabs(jnum(s, "pct_cache") - 16.67) < 0.01);
    assert_true(fabs(jnum(s, "pct_cloud") - 33.33) < 0.01);
    assert_true(fabs(jnum(s, "cost_usd") - cost) < 1e-7);
    double top = jnum(s, "cost_all_top_usd");
    assert_true(top > cost);
    assert_true(fabs(jnum(s, "savings_pct") - 100.0 * (1 - cost / top)) < 0.01);
    json_t *lat = json_object_get(s, "latency_ms");
    assert_int_equal(jint(json_object_get(lat, "local"), "count"), 2);
    assert_int_equal(jint(json_object_get(lat, "cloud"), "count"), 2);
    assert_true(jnum(json_object_get(lat, "local"), "p50") > 0);
    assert_true(jnum(json_object_get(lat, "cloud"), "p95") >=
                jnum(json_object_get(lat, "cloud"), "p50"));
    assert_string_equal(json_string_value(json_object_get(s, "site")), "test");
    /* the budget section: today's cloud spend is this test's cost, no caps */
    json_t *b = json_object_get(s, "budget");
    assert_string_equal(json_string_value(json_object_get(b, "state")), "ok");
    assert_true(fabs(jnum(b, "day_usd") - cost) < 1e-7);
    assert_true(json_is_null(json_object_get(b, "daily_used_pct")));
    assert_non_null(json_string_value(json_object_get(s, "version")));
    assert_int_equal(jint(s, "queue_depth"), 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_object_get(json_object_get(s, "breakers"), "cloud"), "state")),
                        "closed");

    /* the same money as the decision log */
    for (int i = 0; i < 100 && ech_sql_long(h, "SELECT COUNT(*) FROM decisions") < 6; i++)
        ec_sleep_ms(50);
    char *db_cost = ech_sql(h, "SELECT TOTAL(cost_usd) FROM decisions");
    char *db_top = ech_sql(h, "SELECT TOTAL(cost_top_usd) FROM decisions");
    assert_true(fabs(strtod(db_cost, NULL) - jnum(s, "cost_usd")) < 1e-7);
    assert_true(fabs(strtod(db_top, NULL) - top) < 1e-7);
    free(db_cost);
    free(db_top);

    /* the retained topic, read by a client that subscribes afterwards; the
     * router republishes every second, so wait for one more round */
    ec_sleep_ms(1500);
    bool retained = false;
    json_t *t = retained_stats(h, &retained);
    assert_true(retained);
    assert_int_equal(jint(t, "queries"), 6);
    assert_int_equal(jint(t, "local"), 2);
    assert_int_equal(jint(t, "cloud"), 2);
    assert_int_equal(jint(t, "cache"), 1);
    assert_true(fabs(jnum(t, "cost_usd") - cost) < 1e-7);
    assert_true(fabs(jnum(t, "cost_all_top_usd") - top) < 1e-7);
    assert_non_null(json_object_get(t, "breakers"));
    assert_non_null(json_object_get(t, "ts"));
    assert_true(jint(t, "uptime_s") >= 1);
    json_decref(t);

    /* Prometheus */
    http_resp m = http(f, "GET", "/metrics");
    assert_int_equal(m.status, 200);
    assert_non_null(strstr(m.ctype, "text/plain; version=0.0.4"));
    assert_true(sample(m.body, "edgecascade_queries_total{tier=\"local\"}") == 2);
    assert_true(sample(m.body, "edgecascade_queries_total{tier=\"cache\"}") == 1);
    assert_true(sample(m.body, "edgecascade_queries_total{tier=\"cloud\"}") == 2);
    assert_true(sample(m.body, "edgecascade_queries_total{tier=\"none\"}") == 1);
    assert_true(sample(m.body, "edgecascade_errors_total{code=\"bad_request\"}") == 1);
    assert_true(sample(m.body, "edgecascade_escalations_total") == 2);
    assert_true(sample(m.body, "edgecascade_latency_seconds_count{tier=\"local\"}") == 2);
    assert_true(sample(m.body, "edgecascade_latency_seconds_bucket{tier=\"local\",le=\"+Inf\"}") ==
                2);
    assert_true(sample(m.body, "edgecascade_latency_seconds_bucket{tier=\"cloud\",le=\"60\"}") ==
                2);
    assert_true(fabs(sample(m.body, "edgecascade_cost_usd_total") - cost) < 1e-7);
    assert_true(sample(m.body, "edgecascade_queue_depth") == 0);
    assert_true(sample(m.body, "edgecascade_breaker_state{tier=\"cloud\",state=\"closed\"}") == 1);
    assert_non_null(strstr(m.body, "# TYPE edgecascade_latency_seconds histogram\n"));
    free(m.body);

    /* the decision feed, newest first */
    json_t *d = get_json(f, "/api/decisions");
    json_t *arr = json_object_get(d, "decisions");
    assert_int_equal(json_array_size(arr), 6);
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "error")),
                        "bad_request");
    assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "tier")),
                        "cloud");
    assert_non_null(strstr(
        json_string_value(json_object_get(json_array_get(arr, 1), "reason")) ?: "", "accepted"));
    json_decref(d);
    d = get_json(f, "/api/decisions?limit=2");
    assert_int_equal(json_array_size(json_object_get(d, "decisions")), 2);
    json_decref(d);

    /* the page and its script */
    http_resp p = http(f, "GET", "/");
    assert_int_equal(p.status, 200);
    assert_non_null(strstr(p.ctype, "text/html"));
    assert_non_null(strstr(p.body, "<script src=\"/dashboard.js\">"));
    free(p.body);
    p = http(f, "GET", "/dashboard.js");
    assert_int_equal(p.status, 200);
    assert_non_null(strstr(p.body, "/api/stats"));
    free(p.body);

    /* what is not there, and what is not allowed */
    http_resp e = http(f, "GET", "/nope");
    assert_int_equal(e.status, 404);
    free(e.body);
    e = http(f, "POST", "/metrics");
    assert_int_equal(e.status, 405);
    free(e.body);
    e = http(f, "DELETE", "/api/stats");
    assert_int_equal(e.status, 405);
    free(e.body);
    e = http(f, "GET", "/api/decisions?limit=0");
    assert_int_equal(e.status, 400);
    free(e.body);
    json_decref(s);

    /* a restart keeps the totals (seeded from the log) and goes on counting */
    ech_stop(&h->router);
    ech_start_one(h, &h->router, "router");
    json_t *after = get_json(f, "/api/stats");
    assert_int_equal(jint(after, "queries"), 6);
    assert_int_equal(jint(after, "local"), 2);
    assert_int_equal(jint(after, "cache"), 1);
    assert_int_equal(jint(after, "errors"), 1);
    assert_true(fabs(jnum(after, "cost_usd") - cost) < 1e-7);
    assert_true(fabs(jnum(after, "cost_all_top_usd") - top) < 1e-7);
    json_decref(after);
    /* the cache lives in memory: after the restart the prompt is asked again */
    ask(h, "Is 25.04 mm within tolerance?", "local", &cost);
    after = stats_with(f, 7);
    assert_int_equal(jint(after, "queries"), 7);
    assert_int_equal(jint(after, "local"), 3);
    json_decref(after);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(stats_topic_and_http_agree_with_the_log, setup, teardown),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
