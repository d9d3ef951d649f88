/* The edgecascade CLI as a user runs it, stats: the built binary as a child
 * process, reading decisions written into a real SQLite file with the store's
 * own writer, through `stats --json` and checked number by number
 * (nearest-rank percentiles, savings against the top tier, the --since
 * window), grouped with --by, as a table and CSV, with answer-cache hits, and
 * the failure paths (no database, a bad --since or --by). The other commands
 * are test_cli_commands.c; the shared fixtures are in test_cli_fixtures.h. */
#define _GNU_SOURCE
#include "test_cli_fixtures.h"

static char g_db[320];
static char g_by_db[320];    /* fixed dates, several models and sources (stats --by) */
static char g_cache_db[320]; /* local, cloud, cache and error rows (the answer cache) */

/* ---- the decision log ---- */

static void put_src(ec_store *s, uint64_t ts, const char *id, const char *source, const char *kind,
                    const char *model, double latency_ms, double cost, double cost_top,
                    bool escalated, const char *error_code)
{
    ec_decision d;
    ec_error err = {0};
    memset(&d, 0, sizeof(d));
    d.ts_ms = ts;
    d.result.id = (char *)id;
    d.result.tier = (char *)kind;
    d.result.tier_index = kind && strcmp(kind, "cloud") == 0 ? 1 : 0;
    d.result.tier_name = (char *)kind;
    d.result.model = (char *)model;
    d.result.answer = kind ? "ok" : NULL;
    d.result.confidence = kind ? 0.9 : -1;
    d.result.threshold = 0.7;
    d.result.escalated = escalated;
    d.result.cost_usd = cost;
    d.result.latency_ms = latency_ms;
    d.result.source = (char *)source;
    /* the broker-verified asker: another name than the claimed source */
    char asker[64];
    snprintf(asker, sizeof(asker), "user-%s", source ? source : "");
    d.result.asker = source ? asker : NULL;
    d.result.error.code = (char *)error_code;
    d.result.error.message = error_code ? "no tier answered in time" : NULL;
    d.cost_top_usd = cost_top;
    d.left_device = kind && strcmp(kind, "cloud") == 0;
    assert_int_equal(ec_store_write_now(s, &d, &err), EC_OK);
}

static void put(ec_store *s, uint64_t ts, const char *id, const char *kind, const char *model,
                double latency_ms, double cost, double cost_top, bool escalated,
                const char *error_code)
{
    put_src(s, ts, id, "test", kind, model, latency_ms, cost, cost_top, escalated, error_code);
}

/* Now: 4 local (10..40 ms, free; 0.001 each on the top tier), 2 escalated
 * cloud (300 and 500 ms, 0.002 each), 1 error (30 s, no cost). Two hours ago:
 * 1 local at 1000 ms, outside a --since 1h window. */
static void write_decisions(void)
{
    ec_store *s = NULL;
    ec_error err = {0};
    uint64_t now = ec_now_ms();
    assert_int_equal(ec_store_open(&s, g_db, false, &err), EC_OK);
    put(s, now - 2 * HOUR_MS, "old-1", "local", "llama3.2-1b", 1000, 0, 0.001, false, NULL);
    put(s, now - 5000, "l-1", "local", "llama3.2-1b", 30, 0, 0.001, false, NULL);
    put(s, now - 4000, "l-2", "local", "llama3.2-1b", 10, 0, 0.001, false, NULL);
    put(s, now - 3000, "l-3", "local", "llama3.2-1b", 40, 0, 0.001, false, NULL);
    put(s, now - 2000, "l-4", "local", "llama3.2-1b", 20, 0, 0.001, false, NULL);
    put(s, now - 1500, "c-1", "cloud", "gpt-4o-mini", 500, 0.002, 0.002, true, NULL);
    put(s, now - 1000, "c-2", "cloud", "gpt-4o-mini", 300, 0.002, 0.002, true, NULL);
    put(s, now - 500, "e-1", NULL, NULL, 30000, 0, 0, false, "timeout");
    ec_store_close(s);
}

/* Two UTC days, 2026-03-01 and 2026-03-02 (10:00 each):
 *   day 1: a1 plc-1 local llama 10 ms; a2 plc-1 local llama 30 ms;
 *          a3 plc-2 cloud gpt 400 ms $0.003 (escalated)
 *   day 2: a4 plc-2 local llama 20 ms (top $0.002); a5 plc-2 cloud gpt 600 ms $0.002;
 *          a6 no source, error (timeout) 5000 ms
 * Local rows cost nothing; on the top tier a1, a2 would have cost $0.001. */
#define DAY1_MS 1772359200000ull /* 2026-03-01T10:00:00Z */
#define DAY_MS  (24ull * HOUR_MS)
static void write_by_decisions(void)
{
    ec_store *s = NULL;
    ec_error err = {0};
    assert_int_equal(ec_store_open(&s, g_by_db, false, &err), EC_OK);
    put_src(s, DAY1_MS, "a1", "plc-1", "local", "llama3.2-1b", 10, 0, 0.001, false, NULL);
    put_src(s, DAY1_MS + 1, "a2", "plc-1", "local", "llama3.2-1b", 30, 0, 0.001, false, NULL);
    put_src(s, DAY1_MS + 2, "a3", "plc-2", "cloud", "gpt-4o-mini", 400, 0.003, 0.003, true, NULL);
    put_src(s, DAY1_MS + DAY_MS, "a4", "plc-2", "local", "llama3.2-1b", 20, 0, 0.002, false, NULL);
    put_src(s, DAY1_MS + DAY_MS + 1, "a5", "plc-2", "cloud", "gpt-4o-mini", 600, 0.002, 0.002, true,
            NULL);
    put_src(s, DAY1_MS + DAY_MS + 2, "a6", NULL, NULL, NULL, 5000, 0, 0, false, "timeout");
    ec_store_close(s);
}

/* Cache hits (tier_kind "cache") keep the model and tier of the answer they
 * repeat, cost nothing, and take a few ms. Same two UTC days:
 *   day 1: k1 plc-1 local llama 10 ms (top $0.001); k2 plc-1 cache llama 1 ms
 *          (top $0.001); k3 plc-2 cloud gpt 400 ms $0.004 (escalated);
 *          k4 plc-2 cache gpt 2 ms (top $0.004)
 *   day 2: k5, k6 plc-1 local llama 20, 30 ms (top $0.001 each); k7 plc-1
 *          cache llama 3 ms (top $0.001); k8 no source, error (timeout) 5000 ms
 * Shares: 3 local 37.5 %, 1 cloud 12.5 %, 3 cache 37.5 %, 1 error 12.5 %. */
static void write_cache_decisions(void)
{
    ec_store *s = NULL;
    ec_error err = {0};
    const char *llama = "llama3.2-1b", *gpt = "gpt-4o-mini";
    uint64_t d2 = DAY1_MS + DAY_MS;
    assert_int_equal(ec_store_open(&s, g_cache_db, false, &err), EC_OK);
    put_src(s, DAY1_MS, "k1", "plc-1", "local", llama, 10, 0, 0.001, false, NULL);
    put_src(s, DAY1_MS + 1, "k2", "plc-1", "cache", llama, 1, 0, 0.001, false, NULL);
    put_src(s, DAY1_MS + 2, "k3", "plc-2", "cloud", gpt, 400, 0.004, 0.004, true, NULL);
    put_src(s, DAY1_MS + 3, "k4", "plc-2", "cache", gpt, 2, 0, 0.004, false, NULL);
    put_src(s, d2, "k5", "plc-1", "local", llama, 20, 0, 0.001, false, NULL);
    put_src(s, d2 + 1, "k6", "plc-1", "local", llama, 30, 0, 0.001, false, NULL);
    put_src(s, d2 + 2, "k7", "plc-1", "cache", llama, 3, 0, 0.001, false, NULL);
    put_src(s, d2 + 3, "k8", NULL, NULL, NULL, 5000, 0, 0, false, "timeout");
    ec_store_close(s);
}

/* ---- stats ---- */

static double num(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        fail_msg("key %s missing or not a number", key);
    return json_number_value(v);
}

static json_t *tier(json_t *root, const char *kind)
{
    json_t *tiers = json_object_get(root, "tiers");
    size_t i;
    json_t *t;
    assert_true(json_is_array(tiers));
    json_array_foreach(tiers, i, t)
    {
        if (json_is_string(json_object_get(t, "kind")) &&
            strcmp(json_string_value(json_object_get(t, "kind")), kind) == 0)
            return t;
    }
    fail_msg("no tier of kind %s", kind);
    return NULL;
}

static void stats_json_all(void **state)
{
    char *out, *err;
    assert_int_equal(run_cli(&out, &err, "stats --db '%s' --json", g_db), 0);
    json_t *j = parse_json(out);
    assert_near(num(j, "queries"), 8);
    assert_near(num(j, "local"), 5);
    assert_near(num(j, "cloud"), 2);
    assert_near(num(j, "errors"), 1);
    assert_near(num(j, "escalated"), 2);
    assert_near(num(j, "pct_local"), 62.5);
    assert_near(num(j, "pct_cloud"), 25.0);
    assert_near(num(j, "cost_usd"), 0.004);
    assert_near(num(j, "cost_top_usd"), 0.009);
    assert_near(num(j, "savings_pct"), 100.0 * (1.0 - 4.0 / 9.0));
    /* Nearest rank over 10, 20, 30, 40, 1000: p50 index 2, p95 index 4. */
    json_t *l = tier(j, "local");
    assert_near(num(l, "n"), 5);
    assert_near(num(l, "p50_ms"), 30);
    assert_near(num(l, "p95_ms"), 1000);
    assert_near(num(l, "cost_usd"), 0);
    json_t *c = tier(j, "cloud");
    assert_near(num(c, "n"), 2);
    assert_near(num(c, "p50_ms"), 300);
    assert_near(num(c, "p95_ms"), 500);
    assert_near(num(c, "cost_usd"), 0.004);
    assert_near(num(tier(j, "none"), "n"), 1);
    assert_near(num(j, "cache"), 0);
    assert_near(num(j, "pct_cache"), 0);
    assert_near(num(tier(j, "cache"), "n"), 0);
    json_decref(j);
    assert_string_equal(err, "");
    free(out);
    free(err);
}

static void stats_since_window(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --since 1h --json", g_db), 0);
    json_t *j = parse_json(out);
    assert_near(num(j, "queries"), 7);
    assert_near(num(j, "local"), 4);
    assert_near(num(j, "pct_local"), 400.0 / 7.0);
    assert_near(num(j, "cost_top_usd"), 0.008);
    assert_near(num(j, "savings_pct"), 50.0);
    json_t *l = tier(j, "local");
    assert_near(num(l, "n"), 4);
    assert_near(num(l, "p50_ms"), 20); /* 10, 20, 30, 40: index 1 */
    assert_near(num(l, "p95_ms"), 40); /* index 3 */
    json_decref(j);
    free(out);
}

static void stats_human_table(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s'", g_db), 0);
    assert_non_null(strstr(out, "queries           8\n"));
    assert_non_null(strstr(out, "local             5 (62.5 %)\n"));
    assert_non_null(strstr(out, "cloud             2 (25.0 %)\n"));
    assert_non_null(strstr(out, "cache             0 (0.0 %)\n"));
    assert_non_null(strstr(out, "errors            1\n"));
    assert_non_null(strstr(out, "total cost        $0.0040\n"));
    assert_non_null(strstr(out, "all-cloud cost    $0.0090   (every query on the top tier: "
                                "gpt-4o-mini)\n"));
    assert_non_null(strstr(out, "savings           55.6 %\n"));
    assert_non_null(strstr(out, "  local           30.0 ms    1000.0 ms  5\n"));
    assert_non_null(strstr(out, "  cloud           300.0 ms   500.0 ms   2\n"));
    assert_non_null(strstr(out, "  cache           -          -          0\n"));
    free(out);
}

static void stats_missing_db(void **state)
{
    char *out, *err;
    assert_int_equal(run_cli(&out, &err, "stats --db /nonexistent/x.db"), 1);
    assert_non_null(strstr(err, "no decision log at /nonexistent/x.db yet (has the router run?)"));
    assert_string_equal(out, "");
    free(out);
    free(err);
}

static void stats_bad_since_is_usage_error(void **state)
{
    char *err;
    assert_int_equal(run_cli(NULL, &err, "stats --db '%s' --since yesterday", g_db), 2);
    assert_non_null(strstr(err, "--since"));
    assert_non_null(strstr(err, "yesterday"));
    free(err);
}

/* ---- stats --by ---- */

static json_t *group(json_t *root, size_t i, const char *key)
{
    json_t *g = json_array_get(json_object_get(root, "groups"), i);
    assert_non_null(g);
    json_t *k = json_object_get(g, "key");
    if (key)
        assert_string_equal(json_string_value(k), key);
    else
        assert_true(json_is_null(k));
    return g;
}

static void stats_by_model_json(void **state)
{
    char *out, *err;
    assert_int_equal(run_cli(&out, &err, "stats --db '%s' --by model --format json", g_by_db), 0);
    json_t *j = parse_json(out);
    assert_string_equal(json_string_value(json_object_get(j, "by")), "model");
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 3);
    /* No model (the error) sorts first. */
    json_t *g = group(j, 0, NULL);
    assert_near(num(g, "queries"), 1);
    assert_near(num(g, "errors"), 1);
    assert_near(num(g, "pct_local"), 0);
    assert_near(num(g, "pct_cloud"), 0);
    assert_near(num(g, "savings_pct"), 0);
    assert_near(num(g, "p50_ms"), 5000);
    assert_near(num(g, "p95_ms"), 5000);
    g = group(j, 1, "gpt-4o-mini");
    assert_near(num(g, "queries"), 2);
    assert_near(num(g, "cloud"), 2);
    assert_near(num(g, "escalated"), 2);
    assert_near(num(g, "pct_cloud"), 100);
    assert_near(num(g, "cost_usd"), 0.005);
    assert_near(num(g, "cost_top_usd"), 0.005);
    assert_near(num(g, "savings_pct"), 0);
    assert_near(num(g, "p50_ms"), 400); /* 400, 600: index 0 */
    assert_near(num(g, "p95_ms"), 600); /* index 1 */
    g = group(j, 2, "llama3.2-1b");
    assert_near(num(g, "queries"), 3);
    assert_near(num(g, "local"), 3);
    assert_near(num(g, "pct_local"), 100);
    assert_near(num(g, "cost_usd"), 0);
    assert_near(num(g, "cost_top_usd"), 0.004);
    assert_near(num(g, "savings_pct"), 100);
    assert_near(num(g, "p50_ms"), 20); /* 10, 20, 30: index 1 */
    assert_near(num(g, "p95_ms"), 30); /* index 2 */
    json_decref(j);
    assert_string_equal(err, "");
    free(out);
    free(err);

    /* --json is --format json. */
    char *again;
    assert_int_equal(run_cli(&again, NULL, "stats --db '%s' --by model --json", g_by_db), 0);
    assert_non_null(strstr(again, "\"by\":\"model\""));
    free(again);
}

static void stats_by_source_table(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by source", g_by_db), 0);
    assert_string_equal(out, "source      queries  local %  cloud %  cache %      cost $  savings %"
                             "     p50 ms     p95 ms\n"
                             "(none)            1      0.0      0.0      0.0    0.000000        0.0"
                             "     5000.0     5000.0\n"
                             "plc-1             2    100.0      0.0      0.0    0.000000      100.0"
                             "       10.0       30.0\n"
                             "plc-2             3     33.3     66.7      0.0    0.005000       28.6"
                             "      400.0      600.0\n");
    free(out);
}

/* Grouped by the asker column (the broker-verified user), not the source. */
static void stats_by_asker_table(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by asker", g_by_db), 0);
    assert_string_equal(out, "asker       queries  local %  cloud %  cache %      cost $  savings %"
                             "     p50 ms     p95 ms\n"
                             "(none)            1      0.0      0.0      0.0    0.000000        0.0"
                             "     5000.0     5000.0\n"
                             "user-plc-1        2    100.0      0.0      0.0    0.000000      100.0"
                             "       10.0       30.0\n"
                             "user-plc-2        3     33.3     66.7      0.0    0.005000       28.6"
                             "      400.0      600.0\n");
    free(out);
}

static void stats_by_day_csv(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by day --format csv", g_by_db), 0);
    /* Day 1: 10, 30, 400 ms; $0.003 of $0.005. Day 2: 20, 600, 5000 ms;
     * $0.002 of $0.004; one error. */
    assert_string_equal(out, "day,queries,local,cloud,errors,escalated,pct_local,pct_cloud,"
                             "cost_usd,cost_top_usd,savings_pct,p50_ms,p95_ms,cache,pct_cache\n"
                             "2026-03-01,3,2,1,0,1,66.6667,33.3333,0.003000,0.005000,40.0000,"
                             "30.000,400.000,0,0.0000\n"
                             "2026-03-02,3,1,1,1,1,33.3333,33.3333,0.002000,0.004000,50.0000,"
                             "600.000,5000.000,0,0.0000\n");
    free(out);
}

static void stats_by_with_since(void **state)
{
    char *out;
    /* The now-relative log: the 1000 ms local row is two hours old. */
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --since 1h --by model --json", g_db), 0);
    json_t *j = parse_json(out);
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 3);
    json_t *g = group(j, 2, "llama3.2-1b");
    assert_near(num(g, "queries"), 4);
    assert_near(num(g, "p50_ms"), 20);
    assert_near(num(g, "p95_ms"), 40);
    assert_near(num(g, "savings_pct"), 100);
    json_decref(j);
    free(out);

    /* Nothing in the window: a header and a note, still exit 0. */
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --since 1h --by day", g_by_db), 0);
    assert_non_null(strstr(out, "(no decisions in the last 1h)\n"));
    free(out);
}

static void stats_totals_csv(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --format csv", g_by_db), 0);
    assert_string_equal(out, "queries,local,cloud,errors,escalated,pct_local,pct_cloud,cost_usd,"
                             "cost_top_usd,savings_pct,cache,pct_cache\n"
                             "6,3,2,1,2,50.0000,33.3333,0.005000,0.009000,44.4444,0,0.0000\n");
    free(out);
}

/* ---- stats with answer-cache hits ---- */

/* Shares of one JSON object (totals or a group): each kind's count and
 * percentage, and together every query once. */
static void assert_shares(json_t *o, double queries, double local, double cloud, double cache,
                          double errors)
{
    assert_near(num(o, "queries"), queries);
    assert_near(num(o, "local"), local);
    assert_near(num(o, "cloud"), cloud);
    assert_near(num(o, "cache"), cache);
    assert_near(num(o, "errors"), errors);
    assert_near(num(o, "pct_local"), 100.0 * local / queries);
    assert_near(num(o, "pct_cloud"), 100.0 * cloud / queries);
    assert_near(num(o, "pct_cache"), 100.0 * cache / queries);
    assert_near(local + cloud + cache + errors, queries);
    assert_near(num(o, "pct_local") + num(o, "pct_cloud") + num(o, "pct_cache") +
                    100.0 * num(o, "errors") / num(o, "queries"),
                100.0);
}

static void stats_cache_json(void **state)
{
    char *out, *err;
    assert_int_equal(run_cli(&out, &err, "stats --db '%s' --json", g_cache_db), 0);
    json_t *j = parse_json(out);
    assert_shares(j, 8, 3, 1, 3, 1);
    assert_near(num(j, "pct_local"), 37.5);
    assert_near(num(j, "pct_cache"), 37.5);
    assert_near(num(j, "escalated"), 1);
    assert_near(num(j, "cost_usd"), 0.004);
    assert_near(num(j, "cost_top_usd"), 0.013);
    assert_near(num(j, "savings_pct"), 100.0 * (1.0 - 4.0 / 13.0));
    /* The per-kind table in its fixed order, cache beside local and cloud. */
    json_t *tiers = json_object_get(j, "tiers");
    assert_int_equal(json_array_size(tiers), 4);
    const char *order[] = {"local", "cloud", "cache", "none"};
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(tiers, i), "kind")),
                            order[i]);
    json_t *c = tier(j, "cache");
    assert_near(num(c, "n"), 3);
    assert_near(num(c, "p50_ms"), 2); /* 1, 2, 3: index 1 */
    assert_near(num(c, "p95_ms"), 3); /* index 2 */
    assert_near(num(c, "cost_usd"), 0);
    assert_near(num(tier(j, "local"), "n"), 3);
    assert_near(num(tier(j, "local"), "p50_ms"), 20);
    assert_near(num(tier(j, "cloud"), "n"), 1);
    assert_near(num(tier(j, "none"), "n"), 1);
    json_decref(j);
    assert_string_equal(err, "");
    free(out);
    free(err);

    /* Grouped: a cache hit counts under the model whose answer it repeats. */
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by model --json", g_cache_db), 0);
    j = parse_json(out);
    assert_int_equal(json_array_size(json_object_get(j, "groups")), 3);
    assert_shares(group(j, 0, NULL), 1, 0, 0, 0, 1);
    json_t *g = group(j, 1, "gpt-4o-mini");
    assert_shares(g, 2, 0, 1, 1, 0);
    assert_near(num(g, "pct_cache"), 50);
    assert_near(num(g, "savings_pct"), 50); /* $0.004 of $0.008 */
    assert_near(num(g, "p50_ms"), 2);
    assert_near(num(g, "p95_ms"), 400);
    g = group(j, 2, "llama3.2-1b");
    assert_shares(g, 5, 3, 0, 2, 0);
    assert_near(num(g, "pct_cache"), 40);
    assert_near(num(g, "p50_ms"), 10); /* 1, 3, 10, 20, 30: index 2 */
    assert_near(num(g, "p95_ms"), 30); /* index 4 */
    json_decref(j);
    free(out);
}

static void stats_cache_table(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s'", g_cache_db), 0);
    assert_non_null(strstr(out, "queries           8\n"
                                "local             3 (37.5 %)\n"
                                "cloud             1 (12.5 %)\n"
                                "cache             3 (37.5 %)\n"
                                "errors            1\n"));
    assert_non_null(strstr(out, "savings           69.2 %\n"));
    assert_non_null(strstr(out, "  local           20.0 ms    30.0 ms    3\n"
                                "  cloud           400.0 ms   400.0 ms   1\n"
                                "  cache           2.0 ms     3.0 ms     3\n"
                                "  errors          5000.0 ms  5000.0 ms  1\n"));
    free(out);

    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by source", g_cache_db), 0);
    assert_string_equal(out, "source      queries  local %  cloud %  cache %      cost $  savings %"
                             "     p50 ms     p95 ms\n"
                             "(none)            1      0.0      0.0      0.0    0.000000        0.0"
                             "     5000.0     5000.0\n"
                             "plc-1             5     60.0      0.0     40.0    0.000000      100.0"
                             "       10.0       30.0\n"
                             "plc-2             2      0.0     50.0     50.0    0.004000       50.0"
                             "        2.0      400.0\n");
    free(out);
}

static void stats_cache_csv(void **state)
{
    char *out;
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --format csv", g_cache_db), 0);
    /* 37.5 + 12.5 + 37.5 % and one error in eight (12.5 %). */
    assert_string_equal(out, "queries,local,cloud,errors,escalated,pct_local,pct_cloud,cost_usd,"
                             "cost_top_usd,savings_pct,cache,pct_cache\n"
                             "8,3,1,1,1,37.5000,12.5000,0.004000,0.013000,69.2308,3,37.5000\n");
    free(out);

    /* Day 1: 1 local, 1 cloud, 2 cache (1, 2, 10, 400 ms; $0.004 of $0.010).
     * Day 2: 2 local, 1 cache, 1 error (3, 20, 30, 5000 ms; $0 of $0.003). */
    assert_int_equal(run_cli(&out, NULL, "stats --db '%s' --by day --format csv", g_cache_db), 0);
    assert_string_equal(out, "day,queries,local,cloud,errors,escalated,pct_local,pct_cloud,"
                             "cost_usd,cost_top_usd,savings_pct,p50_ms,p95_ms,cache,pct_cache\n"
                             "2026-03-01,4,1,1,0,1,25.0000,25.0000,0.004000,0.010000,60.0000,"
                             "2.000,400.000,2,50.0000\n"
                             "2026-03-02,4,2,0,1,0,50.0000,0.0000,0.000000,0.003000,100.0000,"
                             "20.000,5000.000,1,25.0000\n");
    free(out);
}

static void stats_by_bad_values(void **state)
{
    char *err;
    assert_int_equal(run_cli(NULL, &err, "stats --db '%s' --by tier", g_by_db), 2);
    assert_non_null(strstr(err, "--by: expected model, source, asker or day, got 'tier'"));
    free(err);
    assert_int_equal(run_cli(NULL, &err, "stats --db '%s' --format xml", g_by_db), 2);
    assert_non_null(strstr(err, "--format: expected table, json or csv, got 'xml'"));
    free(err);
}

static int group_setup(void **state)
{
    if (cli_dir_setup() != 0)
        return -1;
    snprintf(g_db, sizeof(g_db), "%s/decisions.db", g_dir);
    write_decisions();
    snprintf(g_by_db, sizeof(g_by_db), "%s/by.db", g_dir);
    write_by_decisions();
    snprintf(g_cache_db, sizeof(g_cache_db), "%s/cache.db", g_dir);
    write_cache_decisions();
    return 0;
}

static int group_teardown(void **state)
{
    return cli_dir_teardown();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stats_json_all),
        cmocka_unit_test(stats_since_window),
        cmocka_unit_test(stats_human_table),
        cmocka_unit_test(stats_missing_db),
        cmocka_unit_test(stats_bad_since_is_usage_error),
        cmocka_unit_test(stats_by_model_json),
        cmocka_unit_test(stats_by_source_table),
        cmocka_unit_test(stats_by_asker_table),
        cmocka_unit_test(stats_by_day_csv),
        cmocka_unit_test(stats_by_with_since),
        cmocka_unit_test(stats_totals_csv),
        cmocka_unit_test(stats_by_bad_values),
        cmocka_unit_test(stats_cache_json),
        cmocka_unit_test(stats_cache_table),
        cmocka_unit_test(stats_cache_csv),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
