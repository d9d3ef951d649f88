/* edgecascade stats: what the cascade saved, from the router's decision log.
 *
 * The database is opened read-only, so the command is safe next to a running
 * router (WAL lets a reader in while the writer commits). A missing file is
 * reported before SQLite sees it: opening read-only would fail with a bare
 * "unable to open database file", which tells an operator nothing. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"

typedef struct stats_opts {
    const char *db;
    const char *since_text;
    uint64_t since_ms; /* a duration back from now; 0 = everything */
    bool json;
    bool csv;
    bool by_set;
    ec_stats_by by;
} stats_opts;

static const char *const by_names[] = {[EC_STATS_BY_MODEL] = "model",
                                       [EC_STATS_BY_SOURCE] = "source",
                                       [EC_STATS_BY_DAY] = "day",
                                       [EC_STATS_BY_ASKER] = "asker"};

void cli_help_stats(void)
{
    printf("usage: edgecascade stats [--db PATH] [--since DURATION] [--by model|source|asker|day]\n"
           "                        [--format table|json|csv] [--json]\n"
           "\n"
           "Reads the router's decision log and prints how many queries each kind of\n"
           "tier answered (local, cloud, or cache: the router's answer cache), what they\n"
           "cost against sending everything to the top tier, and the latency\n"
           "percentiles; with --by, one row per model, source, asker or UTC day.\n"
           "\n"
           "options:\n"
           "  --db PATH          decision log (default: store.path of the config)\n"
           "  --since DURATION   only decisions newer than this: 90s, 30m, 1h, 7d, 2w\n"
           "  --by KEY           group by model (that answered), source (claimed by the\n"
           "                     query), asker (the broker-verified user of\n"
           "                     <root>/query/<user>) or day (UTC): queries, %% local, %% cloud, "
           "%% cache, cost,\n"
           "                     savings, p50/p95 latency per group\n"
           "  --format FORMAT    table (default), json (one object) or csv (header + rows;\n"
           "                     cache and pct_cache are the last two columns)\n"
           "  --json             same as --format json\n");
}

static int parse_args(int argc, char **argv, stats_opts *o)
{
    cli_args a = {.cmd = "stats", .argc = argc, .argv = argv};
    const char *arg;
    bool is_opt;
    while (cli_next(&a, &arg, &is_opt)) {
        const char *v = NULL;
        int m;
        if (!is_opt)
            return cli_usage_error("stats", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--json") == 0) {
            o->json = true;
        } else if ((m = cli_opt_value(&a, arg, "--db", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!*v)
                return cli_usage_error("stats", "--db: empty path");
            o->db = v;
        } else if ((m = cli_opt_value(&a, arg, "--format", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            o->json = strcmp(v, "json") == 0;
            o->csv = strcmp(v, "csv") == 0;
            if (!o->json && !o->csv && strcmp(v, "table") != 0)
                return cli_usage_error("stats", "--format: expected table, json or csv, got '%s'",
                                       v);
        } else if ((m = cli_opt_value(&a, arg, "--by", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            size_t k = 0;
            while (k < sizeof(by_names) / sizeof(by_names[0]) && strcmp(v, by_names[k]) != 0)
                k++;
            if (k == sizeof(by_names) / sizeof(by_names[0]))
                return cli_usage_error("stats",
                                       "--by: expected model, source, asker or day, got '%s'", v);
            o->by = (ec_stats_by)k;
            o->by_set = true;
        } else if ((m = cli_opt_value(&a, arg, "--since", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_duration_ms(v, &o->since_ms))
                return cli_usage_error("stats",
                                       "--since: '%s' is not a duration such as 30m, 1h or 7d", v);
            o->since_text = v;
        } else {
            return cli_usage_error("stats", "unknown option %s", arg);
        }
    }
    return CLI_EXIT_OK;
}

static const ec_tier_stats *find_kind(const ec_stats *st, const char *kind)
{
    for (size_t i = 0; i < st->n_tiers && i < EC_STATS_TIERS; i++)
        if (strcmp(st->tiers[i].kind, kind) == 0)
            return &st->tiers[i];
    return NULL;
}

static int print_json(const ec_stats *st)
{
    int rc = CLI_EXIT_FAIL;
    json_t *o = json_object();
    json_t *tiers = json_array();
    char *text = NULL;
    if (!o || !tiers)
        goto out;
    for (size_t i = 0; i < st->n_tiers && i < EC_STATS_TIERS; i++) {
        const ec_tier_stats *t = &st->tiers[i];
        json_t *to = json_pack("{s:s, s:I, s:f, s:f, s:f}", "kind", t->kind, "n", (json_int_t)t->n,
                               "p50_ms", t->p50_ms, "p95_ms", t->p95_ms, "cost_usd", t->cost_usd);
        if (!to || json_array_append_new(tiers, to) != 0)
            goto out;
    }
    json_t *fields =
        json_pack("{s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f}", "queries",
                  (json_int_t)st->queries, "local", (json_int_t)st->local, "cloud",
                  (json_int_t)st->cloud, "cache", (json_int_t)st->cache, "errors",
                  (json_int_t)st->errors, "escalated", (json_int_t)st->escalated, "pct_local",
                  st->pct_local, "pct_cloud", st->pct_cloud, "pct_cache", st->pct_cache, "cost_usd",
                  st->cost_usd, "cost_top_usd", st->cost_top_usd, "savings_pct", st->savings_pct);
    if (!fields || json_object_update(o, fields) != 0) {
        json_decref(fields);
        goto out;
    }
    json_decref(fields);
    if (json_object_set(o, "tiers", tiers) != 0)
        goto out;
    /* Twelve significant digits: exact for any real cost, and no 0.1230000000001. */
    if (!(text = json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(12))))
        goto out;
    puts(text);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "edgecascade stats: out of memory\n");
    free(text);
    json_decref(tiers);
    json_decref(o);
    return rc;
}

static void print_ms(double ms, uint64_t n)
{
    char cell[32];
    if (n == 0)
        snprintf(cell, sizeof(cell), "-");
    else
        snprintf(cell, sizeof(cell), "%.1f ms", ms);
    printf("%-11s", cell);
}

static void print_human(const cli_ctx *ctx, const stats_opts *o, const ec_stats *st)
{
    const char *top = "?";
    if (ctx->cfg.n_tiers > 0) {
        const ec_tier_cfg *t = &ctx->cfg.tiers[ctx->cfg.n_tiers - 1];
        top = t->model ? t->model : t->name ? t->name : "?";
    }
    if (o->since_text)
        printf("%-18slast %s\n", "window", o->since_text);
    printf("%-18s%llu\n", "queries", (unsigned long long)st->queries);
    printf("%-18s%llu (%.1f %%)\n", "local", (unsigned long long)st->local, st->pct_local);
    printf("%-18s%llu (%.1f %%)\n", "cloud", (unsigned long long)st->cloud, st->pct_cloud);
    printf("%-18s%llu (%.1f %%)\n", "cache", (unsigned long long)st->cache, st->pct_cache);
    printf("%-18s%llu\n", "errors", (unsigned long long)st->errors);
    printf("%-18s%llu\n", "escalated", (unsigned long long)st->escalated);
    printf("%-18s$%.4f\n", "total cost", st->cost_usd);
    printf("%-18s$%.4f   (every query on the top tier: %s)\n", "all-cloud cost", st->cost_top_usd,
           top);
    printf("%-18s%.1f %%\n", "savings", st->savings_pct);
    printf("%-18s%-11s%-11s%s\n", "latency", "p50", "p95", "n");
    static const char *const kinds[] = {"local", "cloud", "cache", "none"};
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        const ec_tier_stats *t = find_kind(st, kinds[i]);
        bool errors = strcmp(kinds[i], "none") == 0;
        /* Errors have no answering tier; show their row only when there are some. */
        if (errors && (!t || t->n == 0))
            continue;
        printf("  %-16s", errors ? "errors" : kinds[i]);
        print_ms(t ? t->p50_ms : 0, t ? t->n : 0);
        print_ms(t ? t->p95_ms : 0, t ? t->n : 0);
        printf("%llu\n", (unsigned long long)(t ? t->n : 0));
    }
}

static void print_csv(const ec_stats *st)
{
    /* New columns go last: a spreadsheet or `cut -d,` reading the older
     * columns by position keeps working. */
    printf("queries,local,cloud,errors,escalated,pct_local,pct_cloud,cost_usd,cost_top_usd,"
           "savings_pct,cache,pct_cache\n");
    printf("%llu,%llu,%llu,%llu,%llu,%.4f,%.4f,%.6f,%.6f,%.4f,%llu,%.4f\n",
           (unsigned long long)st->queries, (unsigned long long)st->local,
           (unsigned long long)st->cloud, (unsigned long long)st->errors,
           (unsigned long long)st->escalated, st->pct_local, st->pct_cloud, st->cost_usd,
           st->cost_top_usd, st->savings_pct, (unsigned long long)st->cache, st->pct_cache);
}

/* A CSV field: quoted when it holds a separator, a quote or a line break
 * (RFC 4180); sources are free text from the PLCs. */
static void csv_field(const char *s)
{
    if (!s)
        return;
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, stdout);
        return;
    }
    putchar('"');
    for (; *s; s++) {
        if (*s == '"')
            putchar('"');
        putchar(*s);
    }
    putchar('"');
}

static void print_groups_csv(const stats_opts *o, const ec_group_stats *g, size_t n)
{
    /* New columns last, as in print_csv. */
    printf("%s,queries,local,cloud,errors,escalated,pct_local,pct_cloud,cost_usd,cost_top_usd,"
           "savings_pct,p50_ms,p95_ms,cache,pct_cache\n",
           by_names[o->by]);
    for (size_t i = 0; i < n; i++) {
        csv_field(g[i].key);
        printf(",%llu,%llu,%llu,%llu,%llu,%.4f,%.4f,%.6f,%.6f,%.4f,%.3f,%.3f,%llu,%.4f\n",
               (unsigned long long)g[i].queries, (unsigned long long)g[i].local,
               (unsigned long long)g[i].cloud, (unsigned long long)g[i].errors,
               (unsigned long long)g[i].escalated, g[i].pct_local, g[i].pct_cloud, g[i].cost_usd,
               g[i].cost_top_usd, g[i].savings_pct, g[i].p50_ms, g[i].p95_ms,
               (unsigned long long)g[i].cache, g[i].pct_cache);
    }
}

static int print_groups_json(const stats_opts *o, const ec_group_stats *g, size_t n)
{
    int rc = CLI_EXIT_FAIL;
    json_t *arr = json_array();
    json_t *root = json_pack("{s:s, s:o}", "by", by_names[o->by], "groups", arr);
    char *text = NULL;
    if (!root)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_pack(
            "{s:s?, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:o, s:o}", "key",
            g[i].key, "queries", (json_int_t)g[i].queries, "local", (json_int_t)g[i].local, "cloud",
            (json_int_t)g[i].cloud, "cache", (json_int_t)g[i].cache, "errors",
            (json_int_t)g[i].errors, "escalated", (json_int_t)g[i].escalated, "pct_local",
            g[i].pct_local, "pct_cloud", g[i].pct_cloud, "pct_cache", g[i].pct_cache, "cost_usd",
            g[i].cost_usd, "cost_top_usd", g[i].cost_top_usd, "savings_pct", g[i].savings_pct,
            "p50_ms", g[i].n_latency ? json_real(g[i].p50_ms) : json_null(), "p95_ms",
            g[i].n_latency ? json_real(g[i].p95_ms) : json_null());
        if (!r || json_array_append_new(arr, r) != 0)
            goto out;
    }
    if (!(text = json_dumps(root, JSON_COMPACT | JSON_REAL_PRECISION(12))))
        goto out;
    puts(text);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "edgecascade stats: out of memory\n");
    free(text);
    json_decref(root);
    return rc;
}

static void print_groups_table(const stats_opts *o, const ec_group_stats *g, size_t n)
{
    /* The key column widens to the longest key (model names vary a lot). */
    int w = 10;
    for (size_t i = 0; i < n; i++)
        if (g[i].key && (int)strlen(g[i].key) > w)
            w = (int)strlen(g[i].key) > 48 ? 48 : (int)strlen(g[i].key);
    if (o->since_text)
        printf("window: last %s\n", o->since_text);
    printf("%-*s %8s %8s %8s %8s %11s %10s %10s %10s\n", w, by_names[o->by], "queries", "local %",
           "cloud %", "cache %", "cost $", "savings %", "p50 ms", "p95 ms");
    for (size_t i = 0; i < n; i++) {
        char p50[24] = "-", p95[24] = "-";
        if (g[i].n_latency) {
            snprintf(p50, sizeof(p50), "%.1f", g[i].p50_ms);
            snprintf(p95, sizeof(p95), "%.1f", g[i].p95_ms);
        }
        printf("%-*.*s %8llu %8.1f %8.1f %8.1f %11.6f %10.1f %10s %10s\n", w, w,
               g[i].key ? g[i].key : "(none)", (unsigned long long)g[i].queries, g[i].pct_local,
               g[i].pct_cloud, g[i].pct_cache, g[i].cost_usd, g[i].savings_pct, p50, p95);
    }
    if (n == 0)
        printf("(no decisions%s%s)\n", o->since_text ? " in the last " : "",
               o->since_text ? o->since_text : "");
}

int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv)
{
    int rc;
    stats_opts o = {0};
    ec_store *s = NULL;
    ec_stats st;
    ec_error err = {0};
    struct stat sb;

    memset(&st, 0, sizeof(st));
    if ((rc = parse_args(argc, argv, &o)) != CLI_EXIT_OK)
        return rc;
    rc = CLI_EXIT_FAIL;
    const char *path = o.db ? o.db : ctx->cfg.db_path;
    if (!path || !*path) {
        fprintf(stderr, "edgecascade stats: no database path (use --db or store.path)\n");
        return CLI_EXIT_USAGE;
    }
    if (stat(path, &sb) != 0) {
        fprintf(stderr, "edgecascade stats: no decision log at %s yet (has the router run?)\n",
                path);
        return CLI_EXIT_FAIL;
    }
    if (ec_store_open(&s, path, true, &err) != EC_OK) {
        fprintf(stderr, "edgecascade stats: cannot read the decision log at %s: %s\n", path,
                err.msg);
        goto out;
    }
    uint64_t since = 0;
    if (o.since_ms) {
        uint64_t now = ec_now_ms();
        since = now > o.since_ms ? now - o.since_ms : 1;
    }
    if (o.by_set) {
        ec_group_stats *g = NULL;
        size_t n = 0;
        if (ec_store_stats_by(s, since, o.by, &g, &n, &err) != EC_OK) {
            fprintf(stderr, "edgecascade stats: cannot read the decision log at %s: %s\n", path,
                    err.msg);
            goto out;
        }
        rc = CLI_EXIT_OK;
        if (o.json)
            rc = print_groups_json(&o, g, n);
        else if (o.csv)
            print_groups_csv(&o, g, n);
        else
            print_groups_table(&o, g, n);
        ec_group_stats_free(g, n);
        goto out;
    }
    if (ec_store_stats(s, since, &st, &err) != EC_OK) {
        fprintf(stderr, "edgecascade stats: cannot read the decision log at %s: %s\n", path,
                err.msg);
        goto out;
    }
    if (o.json)
        rc = print_json(&st);
    else if (o.csv) {
        print_csv(&st);
        rc = CLI_EXIT_OK;
    } else {
        print_human(ctx, &o, &st);
        rc = CLI_EXIT_OK;
    }
out:
    ec_store_close(s);
    return rc;
}
