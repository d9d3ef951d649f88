/* The edgecascade CLI as a user runs it: the built binary as a child process.
 *
 * stats: decisions written into a real SQLite file with the store's own
 * writer, read back through `stats --json` and checked number by number
 * (nearest-rank percentiles, savings against the top tier, the --since
 * window). query: against a real Mosquitto on a free loopback port with a
 * stand-in router thread that checks what the CLI sent and answers on the
 * Response Topic, after a decoy reply with the wrong Correlation Data. Plus
 * the failure paths a user meets first: no database, no broker, a bad
 * config file, a bad argument. */
#define _GNU_SOURCE
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"

#define CLI     EC_BIN_DIR "/edgecascade"
#define ROOT    "edgecascade/site1" /* the default topic root */
#define HOUR_MS (3600ull * 1000ull)
#define ANSWER  "PASS: 25.04 mm is within tolerance"

static char g_dir[256];
static char g_db[320];
static char g_by_db[320];    /* fixed dates, several models and sources (stats --by) */
static char g_cache_db[320]; /* local, cloud, cache and error rows (the answer cache) */
static int g_port;
static pid_t g_broker = -1;
static char g_uri[64];

/* ---- running the binary ---- */

static char *slurp(FILE *f)
{
    ec_buf b;
    char chunk[4096];
    size_t n;
    ec_buf_init(&b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(ec_buf_append(&b, chunk, n), EC_OK);
    char *s = ec_buf_take(&b, NULL);
    return s ? s : strdup("");
}

/* Runs "edgecascade ARGS" (ARGS shell-quoted by the caller); returns the exit
 * status and the captured stdout and stderr (caller frees). */
static int run_cli(char **out, char **err, const char *fmt, ...)
{
    char args[2048], cmd[4096], errpath[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s' </dev/null", CLI, args, errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *o = slurp(p);
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    FILE *ef = fopen(errpath, "r");
    assert_non_null(ef);
    char *e = slurp(ef);
    fclose(ef);
    /* Under EC_SANITIZE a leak also exits 1: never let it pass for the
     * failure a test expects. */
    if (strstr(e, "Sanitizer") || strstr(e, "runtime error:"))
        fail_msg("sanitizer report from '%s':\n%s", args, e);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WEXITSTATUS(st);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

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

/* ---- a broker of our own ---- */

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static void start_broker(void)
{
    char conf[320], log[320], text[256];
    g_port = free_port();
    snprintf(g_uri, sizeof(g_uri), "tcp://127.0.0.1:%d", g_port);
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", g_dir);
    snprintf(log, sizeof(log), "%s/mosquitto.log", g_dir);
    snprintf(text, sizeof(text), "listener %d 127.0.0.1\nallow_anonymous true\n", g_port);
    write_file(conf, text);
    g_broker = fork();
    assert_true(g_broker >= 0);
    if (g_broker == 0) {
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        dup2(2, 1);
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(g_port); i++)
        ec_sleep_ms(50);
    assert_true(port_open(g_port));
}

static void stop_broker(void)
{
    if (g_broker > 0) {
        kill(g_broker, SIGTERM);
        waitpid(g_broker, NULL, 0);
        g_broker = -1;
    }
}

static int group_setup(void **state)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/ec-cli-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    snprintf(g_db, sizeof(g_db), "%s/decisions.db", g_dir);
    write_decisions();
    snprintf(g_by_db, sizeof(g_by_db), "%s/by.db", g_dir);
    write_by_decisions();
    snprintf(g_cache_db, sizeof(g_cache_db), "%s/cache.db", g_dir);
    write_cache_decisions();
    start_broker();
    return 0;
}

static int group_teardown(void **state)
{
    char cmd[300];
    stop_broker();
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- stats ---- */

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, text);
    return j;
}

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

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

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
    assert_non_null(strstr(err, "--by: expected model, source or day, got 'tier'"));
    free(err);
    assert_int_equal(run_cli(NULL, &err, "stats --db '%s' --format xml", g_by_db), 2);
    assert_non_null(strstr(err, "--format: expected table, json or csv, got 'xml'"));
    free(err);
}

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
    assert_int_equal(strncmp(f.response_topic, ROOT "/cli/edgecascade-cli-",
                             strlen(ROOT "/cli/edgecascade-cli-")),
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
        cmocka_unit_test(stats_by_day_csv),
        cmocka_unit_test(stats_by_with_since),
        cmocka_unit_test(stats_totals_csv),
        cmocka_unit_test(stats_by_bad_values),
        cmocka_unit_test(stats_cache_json),
        cmocka_unit_test(stats_cache_table),
        cmocka_unit_test(stats_cache_csv),
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
