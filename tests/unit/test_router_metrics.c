/* The router's live metrics (services/router/router_metrics.c): counting by
 * tier kind (cache included), revisions, seeding from a real decision log,
 * histogram percentiles, the Prometheus text, the decision ring (UTF-8 safe)
 * and counting from several threads at once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/store.h"
#include "router_metrics.h"

static ec_metrics *new_metrics(void)
{
    ec_metrics *m = NULL;
    ec_error err = {0};
    assert_int_equal(ec_metrics_create(&m, &err), EC_OK);
    return m;
}

static ec_metrics_obs obs(const char *id, const char *tier, double latency_ms, double cost,
                          double cost_top)
{
    ec_metrics_obs o = {.id = id,
                        .tier = tier,
                        .tier_name = tier,
                        .model = "m",
                        .reason = "accepted",
                        .confidence = 0.9,
                        .threshold = 0.7,
                        .latency_ms = latency_ms,
                        .cost_usd = cost,
                        .cost_top_usd = cost_top,
                        .revision = 1,
                        .ts_ms = 1000};
    return o;
}

static void test_counts_by_kind(void **state)
{
    (void)state;
    ec_metrics *m = new_metrics();
    ec_metrics_obs o = obs("a", "local", 2, 0, 0.001);
    ec_metrics_observe(m, &o);
    o = obs("b", "cloud", 40, 0.002, 0.002);
    o.escalated = true;
    ec_metrics_observe(m, &o);
    o = obs("c", "cache", 0.2, 0, 0.001);
    ec_metrics_observe(m, &o);
    o = obs("d", NULL, 5, 0, 0);
    o.error_code = "timeout";
    ec_metrics_observe(m, &o);
    o = obs("e", NULL, 1, 0, 0);
    o.error_code = "something_new";
    ec_metrics_observe(m, &o);
    o = obs("f", "local", 3, 0, 0.001);
    o.degraded = true;
    ec_metrics_observe(m, &o);
    /* revision 2 of "f": the cloud's answer from the offline queue */
    o = obs("f", "cloud", 90000, 0.003, 0.003);
    o.revision = 2;
    ec_metrics_observe(m, &o);
    ec_metrics_add_cost(m, 0.0005); /* a shadow call */

    ec_metrics_snap s;
    ec_metrics_snapshot(m, &s);
    assert_int_equal(s.queries, 6);
    assert_int_equal(s.by_kind[ec_metrics_kind_index("local")], 2);
    assert_int_equal(s.by_kind[ec_metrics_kind_index("cloud")], 1);
    assert_int_equal(s.by_kind[ec_metrics_kind_index("cache")], 1);
    assert_int_equal(s.by_kind[ec_metrics_kind_index("none")], 2);
    assert_int_equal(s.errors_total, 2);
    assert_int_equal(s.errors[3], 1);                     /* timeout */
    assert_int_equal(s.errors[EC_METRICS_ERRORS - 1], 1); /* other */
    assert_int_equal(s.escalated, 1);
    assert_int_equal(s.degraded, 1);
    assert_int_equal(s.revisions, 1);
    assert_true(fabs(s.cost_usd - 0.0055) < 1e-12);
    assert_true(fabs(s.cost_top_usd - 0.005) < 1e-12);
    /* the revision's 90 s wait stays out of the histogram */
    assert_int_equal(s.latency[ec_metrics_kind_index("cloud")].count, 1);
    assert_true(fabs(ec_metrics_savings_pct(&s) - (-10.0)) < 1e-9);

    json_t *doc = json_object();
    ec_metrics_stats_json(&s, doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "queries")), 6);
    assert_int_equal(json_integer_value(json_object_get(doc, "cache")), 1);
    assert_true(fabs(json_real_value(json_object_get(doc, "pct_local")) - 33.33) < 1e-9);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(doc, "errors_by_code"), "timeout")), 1);
    json_t *lat = json_object_get(json_object_get(doc, "latency_ms"), "cache");
    assert_int_equal(json_integer_value(json_object_get(lat, "count")), 1);
    json_decref(doc);
    ec_metrics_destroy(m);
}

static void test_quantiles(void **state)
{
    (void)state;
    ec_metrics_hist h = {0};
    assert_true(ec_metrics_quantile_ms(&h, 0.5) == 0);
    /* 100 observations in (3, 5]: interpolated inside the bucket */
    h.buckets[4] = 100;
    h.count = 100;
    assert_true(fabs(ec_metrics_quantile_ms(&h, 0.50) - 4.0) < 1e-9);
    assert_true(fabs(ec_metrics_quantile_ms(&h, 0.95) - 4.9) < 1e-9);
    /* 90 in (1, 2], 10 in (250, 500] */
    memset(&h, 0, sizeof(h));
    h.buckets[2] = 90;
    h.buckets[14] = 10;
    h.count = 100;
    assert_true(fabs(ec_metrics_quantile_ms(&h, 0.50) - (1 + 50.0 / 90)) < 1e-9);
    assert_true(fabs(ec_metrics_quantile_ms(&h, 0.95) - 375) < 1e-9);
    /* past the last bound: reported as the last bound */
    memset(&h, 0, sizeof(h));
    h.buckets[EC_METRICS_BOUNDS] = 1;
    h.count = 1;
    assert_true(ec_metrics_quantile_ms(&h, 0.5) == ec_metrics_bounds_ms[EC_METRICS_BOUNDS - 1]);

    /* through observe: bucket edges are inclusive upper bounds (le) */
    ec_metrics *m = new_metrics();
    for (int i = 0; i < 20; i++) {
        ec_metrics_obs o = obs("x", "local", i < 19 ? 1.0 : 100000, 0, 0);
        ec_metrics_observe(m, &o);
    }
    ec_metrics_snap s;
    ec_metrics_snapshot(m, &s);
    const ec_metrics_hist *l = &s.latency[0];
    assert_int_equal(l->buckets[1], 19); /* 1.0 ms is in le=1 */
    assert_int_equal(l->buckets[EC_METRICS_BOUNDS], 1);
    assert_true(fabs(ec_metrics_quantile_ms(l, 0.5) - (0.5 + 0.5 * (10.0 / 19))) < 1e-9);
    ec_metrics_destroy(m);
}

/* Finds the value of the sample line that starts with prefix (exactly the
 * name and labels), -1 when absent. */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    }
    return -1;
}

static void test_prometheus(void **state)
{
    (void)state;
    ec_metrics *m = new_metrics();
    double lat[] = {0.4, 2.5, 2.5, 12, 700};
    for (size_t i = 0; i < 5; i++) {
        ec_metrics_obs o = obs("q", i == 4 ? "cloud" : "local", lat[i], i == 4 ? 0.01 : 0, 0.01);
        ec_metrics_observe(m, &o);
    }
    ec_metrics_obs c = obs("c", "cache", 0.1, 0, 0.01);
    ec_metrics_observe(m, &c);
    ec_metrics_breaker_state(m, "cloud", "open", 5000, "5 consecutive failures");
    ec_metrics_breaker_state(m, "cloud", "half_open", 6000, "probing");
    ec_metrics_snap s;
    ec_metrics_snapshot(m, &s);
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, 1 << 20);
    /* The gauges only the router knows are left out until it fills them. */
    assert_int_equal(ec_metrics_prometheus(&s, 3, &b, &err), EC_OK);
    assert_null(strstr(ec_buf_cstr(&b), "edgecascade_inflight"));
    assert_null(strstr(ec_buf_cstr(&b), "edgecascade_waiting_local"));
    ec_buf_reset(&b);
    s.inflight = 5;
    s.waiting_local = 2;
    assert_int_equal(ec_metrics_prometheus(&s, 3, &b, &err), EC_OK);
    const char *t = ec_buf_cstr(&b);
    assert_true(sample(t, "edgecascade_inflight") == 5);
    assert_true(sample(t, "edgecascade_waiting_local") == 2);

    assert_true(sample(t, "edgecascade_queries_total{tier=\"local\"}") == 4);
    assert_true(sample(t, "edgecascade_queries_total{tier=\"cloud\"}") == 1);
    assert_true(sample(t, "edgecascade_queries_total{tier=\"cache\"}") == 1);
    assert_true(sample(t, "edgecascade_queries_total{tier=\"none\"}") == 0);
    assert_true(fabs(sample(t, "edgecascade_cost_usd_total") - 0.01) < 1e-12);
    assert_true(fabs(sample(t, "edgecascade_cost_all_top_usd_total") - 0.06) < 1e-12);
    assert_true(sample(t, "edgecascade_queue_depth") == 3);
    assert_true(sample(t, "edgecascade_breaker_state{tier=\"cloud\",state=\"half_open\"}") == 1);
    assert_true(sample(t, "edgecascade_breaker_state{tier=\"cloud\",state=\"open\"}") == 0);
    /* cumulative buckets in seconds, +Inf = count, sum in seconds */
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"local\",le=\"0.0005\"}") == 1);
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"local\",le=\"0.003\"}") == 3);
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"local\",le=\"0.015\"}") == 4);
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"local\",le=\"+Inf\"}") == 4);
    assert_true(sample(t, "edgecascade_latency_seconds_count{tier=\"local\"}") == 4);
    assert_true(fabs(sample(t, "edgecascade_latency_seconds_sum{tier=\"local\"}") - 0.0174) < 1e-9);
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"cloud\",le=\"0.5\"}") == 0);
    assert_true(sample(t, "edgecascade_latency_seconds_bucket{tier=\"cloud\",le=\"1\"}") == 1);

    /* Every family has HELP and TYPE before its samples; every other line is
     * name{labels} value, with no blank lines. */
    const char *families[] = {
        "edgecascade_queries_total",   "edgecascade_errors_total", "edgecascade_cost_usd_total",
        "edgecascade_latency_seconds", "edgecascade_queue_depth",  "edgecascade_breaker_state",
        "edgecascade_build_info",      "edgecascade_inflight",     "edgecascade_waiting_local"};
    for (size_t i = 0; i < sizeof(families) / sizeof(families[0]); i++) {
        char help[128], type[128];
        snprintf(help, sizeof(help), "# HELP %s ", families[i]);
        snprintf(type, sizeof(type), "# TYPE %s ", families[i]);
        const char *h = strstr(t, help), *ty = strstr(t, type);
        assert_non_null(h);
        assert_non_null(ty);
        assert_true(h < ty);
    }
    assert_non_null(strstr(t, "# TYPE edgecascade_latency_seconds histogram\n"));
    assert_non_null(strstr(t, "# TYPE edgecascade_queries_total counter\n"));
    char *copy = strdup(t);
    int lines = 0;
    for (char *save = NULL, *line = strtok_r(copy, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save), lines++) {
        if (line[0] == '#')
            continue;
        assert_true(strncmp(line, "edgecascade_", 12) == 0);
        const char *sp = strrchr(line, ' ');
        assert_non_null(sp);
        char *end = NULL;
        strtod(sp + 1, &end);
        assert_true(end && *end == '\0');
    }
    assert_true(lines > 100);
    assert_int_equal(t[b.len - 1], '\n');
    free(copy);
    ec_buf_free(&b);
    ec_metrics_destroy(m);
}

static void test_ring(void **state)
{
    (void)state;
    ec_metrics *m = new_metrics();
    for (int i = 0; i < 150; i++) {
        char id[16];
        snprintf(id, sizeof(id), "q%d", i);
        ec_metrics_obs o = obs(id, "local", 1, 0, 0);
        ec_metrics_observe(m, &o);
    }
    /* invalid UTF-8 and an over-long reason with a multi-byte character at the cut */
    char reason[600];
    memset(reason, 'a', sizeof(reason));
    memcpy(reason + 254, "\xc3\xa9", 2);
    reason[sizeof(reason) - 1] = '\0';
    ec_metrics_obs o = obs("bad\xff\xfe", "cloud", 1, 0, 0);
    o.reason = reason;
    o.model = "mod\xc3"; /* cut in the middle of a character */
    ec_metrics_observe(m, &o);

    json_t *all = ec_metrics_decisions_json(m, 1000);
    assert_int_equal(json_array_size(all), EC_METRICS_RING);
    json_t *first = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(first, "id")), "bad??");
    assert_string_equal(json_string_value(json_object_get(first, "model")), "mod?");
    const char *r = json_string_value(json_object_get(first, "reason"));
    assert_non_null(r);
    assert_int_equal(strlen(r), 254); /* é did not fit whole: cut before it */
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 1), "id")), "q149");
    assert_string_equal(
        json_string_value(json_object_get(json_array_get(all, EC_METRICS_RING - 1), "id")), "q51");
    char *text = json_dumps(all, 0);
    assert_non_null(text);
    free(text);
    json_decref(all);
    json_t *two = ec_metrics_decisions_json(m, 2);
    assert_int_equal(json_array_size(two), 2);
    json_decref(two);
    ec_metrics_destroy(m);
}

/* The totals come from a real decision log. */
static void test_seed_from_store(void **state)
{
    (void)state;
    char dir[] = "/tmp/ec-metrics-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof(path), "%s/d.db", dir);
    ec_store *st = NULL;
    ec_error err = {0};
    assert_int_equal(ec_store_open(&st, path, false, &err), EC_OK);
    /* A cache hit (tier_kind "cache") starts its own counter, not "none". */
    const char *tiers[] = {"local", "local", "cloud", "cache", NULL};
    for (int i = 0; i < 5; i++) {
        ec_decision d = {.ts_ms = 1000 + (uint64_t)i, .cost_top_usd = tiers[i] ? 0.01 : 0};
        char id[8];
        snprintf(id, sizeof(id), "s%d", i);
        d.result.id = strdup(id);
        d.result.tier = tiers[i] ? strdup(tiers[i]) : NULL;
        d.result.cost_usd = tiers[i] && strcmp(tiers[i], "cloud") == 0 ? 0.01 : 0;
        d.result.escalated = i == 2;
        d.result.latency_ms = 3;
        d.result.revision = 1;
        if (!tiers[i])
            ec_wire_error_set(&d.result.error, "busy", "router busy");
        assert_int_equal(ec_store_write_now(st, &d, &err), EC_OK);
        ec_decision_clear(&d);
    }
    ec_metrics *m = new_metrics();
    assert_int_equal(ec_store_totals_each(st, ec_metrics_seed, m, &err), EC_OK);
    ec_metrics_obs o = obs("new", "local", 1, 0, 0.01);
    ec_metrics_observe(m, &o);
    ec_metrics_snap s;
    ec_metrics_snapshot(m, &s);
    assert_int_equal(s.queries, 6);
    assert_int_equal(s.by_kind[0], 3);
    assert_int_equal(s.by_kind[1], 1);
    assert_int_equal(s.by_kind[2], 1); /* cache */
    assert_int_equal(s.by_kind[3], 1);
    assert_int_equal(s.errors_total, 1);
    assert_int_equal(s.errors[2], 1); /* busy */
    assert_int_equal(s.escalated, 1);
    assert_true(fabs(s.cost_usd - 0.01) < 1e-12);
    assert_true(fabs(s.cost_top_usd - 0.05) < 1e-12);
    assert_true(fabs(ec_metrics_savings_pct(&s) - 80) < 1e-9);
    ec_metrics_destroy(m);
    ec_store_close(st);
    unlink(path);
    char side[160];
    snprintf(side, sizeof(side), "%s-wal", path);
    unlink(side);
    snprintf(side, sizeof(side), "%s-shm", path);
    unlink(side);
    rmdir(dir);
}

#define THREADS 4
#define PER     20000

static void *hammer(void *arg)
{
    ec_metrics *m = arg;
    for (int i = 0; i < PER; i++) {
        ec_metrics_obs o =
            obs("t", i % 2 ? "local" : "cloud", (double)(i % 50), 0.000001, 0.000002);
        ec_metrics_observe(m, &o);
    }
    return NULL;
}

static void test_threads(void **state)
{
    (void)state;
    ec_metrics *m = new_metrics();
    pthread_t t[THREADS];
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, hammer, m), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    ec_metrics_snap s;
    ec_metrics_snapshot(m, &s);
    assert_int_equal(s.queries, THREADS * PER);
    assert_int_equal(s.latency[0].count + s.latency[1].count, THREADS * PER);
    assert_true(fabs(s.cost_usd - THREADS * PER * 0.000001) < 1e-9);
    ec_metrics_destroy(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_by_kind),  cmocka_unit_test(test_quantiles),
        cmocka_unit_test(test_prometheus),      cmocka_unit_test(test_ring),
        cmocka_unit_test(test_seed_from_store), cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
