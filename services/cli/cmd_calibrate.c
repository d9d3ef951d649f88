/* edgecascade calibrate: fit the gate's calibration on recorded answers (a
 * corpus file) or on the device's own decision log, print the cascade's curve
 * and write the calibration file the router loads (gate.calibration).
 *
 * From the log, labels come from escalated queries: the local draft beside
 * the cloud answer. Where both are short (a letter, a number, yes/no,
 * pass/fail, a short name) agreement is the label and the cloud answer is
 * taken as right; longer answers carry no label and are skipped. */
#include <ctype.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/calib.h"

typedef struct cal_opts {
    const char *corpus, *local, *cloud, *output, *db;
    double target, margin;
    ec_calib_method method;
    bool from_store, json;
} cal_opts;

void cli_help_calibrate(void)
{
    printf("usage: edgecascade calibrate --corpus FILE.jsonl --local MODEL --cloud MODEL\n"
           "                             [--target 0.95] [--method platt|isotonic] [--margin Z]\n"
           "                             [--output FILE] [--json]\n"
           "       edgecascade calibrate --from-store [--db PATH] [--target 0.95] [--output FILE]\n"
           "\n"
           "Fits a monotone map (Platt scaling on logit(raw), or isotonic regression) from\n"
           "the gate's raw signal to the probability that the local draft is correct,\n"
           "prints the cascade's curve (escalation, accuracy and cost against always-cloud,\n"
           "per threshold) and picks the threshold reaching TARGET x the cloud tier's\n"
           "accuracy with the fewest escalations, with a safety margin. --output writes the\n"
           "calibration file for gate.calibration.\n"
           "\n"
           "  --corpus FILE   recorded answers, JSON lines (see ../shared/eval/README.md)\n"
           "  --local MODEL   corpus model standing for the local tier\n"
           "  --cloud MODEL   corpus model standing for the cloud tier\n"
           "  --target X      share of the cloud tier's accuracy to keep, (0, 1] (0.95)\n"
           "  --method M      platt (default: two parameters, steady on a few hundred rows)\n"
           "                  or isotonic (pool adjacent violators; needs more rows)\n"
           "  --margin Z      the expected accuracy less Z standard deviations of the\n"
           "                  accepted drafts' right count must reach the target (1; 0: none)\n"
           "  --from-store    fit on the decision log: escalated queries and shadow calls\n"
           "                  (gate.shadow_rate) whose local draft and cloud answer are\n"
           "                  both short are labelled by their agreement\n"
           "  --db PATH       decision log (default: store.path of the config)\n"
           "  --output FILE   write the calibration file\n"
           "  --json          print the fitted file's JSON instead of the table\n");
}

static int parse_args(int argc, char **argv, cal_opts *o)
{
    cli_args a = {.cmd = "calibrate", .argc = argc, .argv = argv};
    const char *arg, *v;
    bool is_opt;
    o->target = 0.95;
    o->margin = EC_CALIB_MARGIN_Z;
    while (cli_next(&a, &arg, &is_opt)) {
        int m = 0;
        if (!is_opt)
            return cli_usage_error("calibrate", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--from-store") == 0) {
            o->from_store = true;
        } else if (strcmp(arg, "--json") == 0) {
            o->json = true;
        } else if ((m = cli_opt_value(&a, arg, "--corpus", &o->corpus)) ||
                   (m = cli_opt_value(&a, arg, "--local", &o->local)) ||
                   (m = cli_opt_value(&a, arg, "--cloud", &o->cloud)) ||
                   (m = cli_opt_value(&a, arg, "--output", &o->output)) ||
                   (m = cli_opt_value(&a, arg, "--db", &o->db))) {
            if (m < 0)
                return CLI_EXIT_USAGE;
        } else if ((m = cli_opt_value(&a, arg, "--target", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_double(v, 1e-6, 1, &o->target))
                return cli_usage_error("calibrate",
                                       "--target: expected a number in (0, 1], got "
                                       "'%s'",
                                       v);
        } else if ((m = cli_opt_value(&a, arg, "--method", &v)) != 0) {
            int k = m < 0 ? -1 : ec_calib_method_index(v);
            if (k < 0)
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("calibrate",
                                               "--method: expected platt or isotonic, "
                                               "got '%s'",
                                               v);
            o->method = (ec_calib_method)k;
        } else if ((m = cli_opt_value(&a, arg, "--margin", &v)) != 0) {
            if (m < 0 || !cli_parse_double(v, 0, 10, &o->margin))
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("calibrate",
                                               "--margin: expected a number in "
                                               "[0, 10], got '%s'",
                                               v);
        } else {
            return cli_usage_error("calibrate", "unknown option %s", arg);
        }
    }
    if (o->from_store) {
        if (o->corpus)
            return cli_usage_error("calibrate", "--from-store and --corpus exclude each other");
        return -1;
    }
    if (!o->corpus)
        return cli_usage_error("calibrate", "--corpus FILE (or --from-store) is required");
    if (!o->local || !*o->local || !o->cloud || !*o->cloud)
        return cli_usage_error("calibrate", "--local MODEL and --cloud MODEL are required");
    return -1;
}

ec_err cli_corpus_samples(const ec_corpus *c, const char *local, const char *cloud,
                          ec_calib_sample **out, ec_error *err)
{
    ec_err rc;
    if ((rc = ec_corpus_check_model(c, local, err)) || (rc = ec_corpus_check_model(c, cloud, err)))
        return rc;
    ec_calib_sample *s = calloc(c->n_rows, sizeof(*s));
    if (!s)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < c->n_rows; i++) {
        const ec_corpus_answer *l = ec_corpus_find(&c->rows[i], local);
        const ec_corpus_answer *h = ec_corpus_find(&c->rows[i], cloud);
        s[i] = (ec_calib_sample){.raw = ec_corpus_raw(l),
                                 .local_correct = l->correct,
                                 .cloud_correct = h->correct,
                                 .local_cost = l->cost_usd,
                                 .cloud_cost = h->cost_usd};
    }
    *out = s;
    return EC_OK;
}

void cli_print_curve(const ec_calib *c)
{
    printf("%-10s %11s %9s %10s %12s %9s\n", "threshold", "escalation", "accuracy", "vs cloud",
           "cost_usd", "vs cloud");
    for (size_t i = 0; i < c->n_curve; i++) {
        const ec_calib_point *p = &c->curve[i];
        printf("%-10.2f %10.1f%% %8.1f%% %9.1f%% %12.6f %8.1f%%\n", p->threshold,
               100 * p->escalation, 100 * p->accuracy, 100 * p->acc_vs_cloud, p->cost_usd,
               100 * p->cost_vs_cloud);
    }
}

/* ---- labels from the decision log ---- */

/* Normalises a short answer into out: lower case, letters, digits and single
 * spaces, without articles and trailing punctuation. False when the answer
 * is too long to compare (more than five words). */
static bool normalise(const char *s, char *out, size_t cap)
{
    size_t n = 0, words = 0;
    bool space = true;
    for (; *s && n + 1 < cap; s++) {
        unsigned char ch = (unsigned char)*s;
        if (isalnum(ch) || ch == '.' || ch == '-') {
            if (space && n) {
                out[n++] = ' ';
            }
            if (space)
                words++;
            out[n++] = (char)tolower(ch);
            space = false;
        } else {
            space = true;
        }
    }
    while (n && (out[n - 1] == '.' || out[n - 1] == '-'))
        n--;
    out[n] = '\0';
    static const char *const articles[] = {"the ", "a ", "an ", "answer: ", NULL};
    for (size_t i = 0; articles[i]; i++) {
        size_t k = strlen(articles[i]);
        if (strncmp(out, articles[i], k) == 0) {
            memmove(out, out + k, strlen(out + k) + 1);
            break;
        }
    }
    return n > 0 && words <= 5 && *s == '\0';
}

/* 1: agree, 0: disagree, -1: not a short answer on both sides. */
int cli_short_agreement(const char *a, const char *b)
{
    char x[128], y[128];
    if (!a || !b || !normalise(a, x, sizeof(x)) || !normalise(b, y, sizeof(y)))
        return -1;
    char *ex, *ey;
    double nx = strtod(x, &ex), ny = strtod(y, &ey);
    if (ex != x && ey != y && (*ex == '\0' || *ex == ' ') && (*ey == '\0' || *ey == ' '))
        return fabs(nx - ny) <= 1e-6 * fmax(1.0, fmax(fabs(nx), fabs(ny)));
    /* "B" against "B: 42" and "yes" against "yes, it is": the first word decides
     * when either side is one word. */
    if (!strchr(x, ' ') || !strchr(y, ' ')) {
        size_t kx = strcspn(x, " "), ky = strcspn(y, " ");
        return kx == ky && strncmp(x, y, kx) == 0;
    }
    return strcmp(x, y) == 0;
}

/* Labels from the decision log: the first (local) draft against a cloud
 * answer to the same query, when both are short. Two sources: escalated
 * queries (the cloud answer was served) and shadow calls (gate.shadow_rate:
 * the local draft was served, the cloud asked on the side). Escalations alone
 * only label drafts below the threshold; shadow calls label the accepted
 * ones, which is where a wrong draft costs. Both are selected by the raw
 * signal alone (the threshold, or a coin), so P(correct | raw) fitted on
 * their union is not biased by the selection. */
static ec_err store_samples(const char *db, ec_calib_sample **out, size_t *n, size_t *seen,
                            size_t *from_shadow, ec_error *err)
{
    struct stat st;
    if (stat(db, &st) != 0)
        return ec_error_set(err, EC_ERR_IO, "%s: no such decision log", db);
    sqlite3 *h = NULL;
    sqlite3_stmt *q = NULL;
    ec_err rc = EC_OK;
    size_t cap = 0;
    *out = NULL;
    *n = *seen = *from_shadow = 0;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        rc = ec_error_set(err, EC_ERR_DB, "%s: %s", db, sqlite3_errmsg(h));
        goto out;
    }
    static const char sql[] =
        "SELECT l.raw_confidence, l.answer, c.answer, l.cost_usd, c.cost_usd,"
        "       c.reason LIKE 'shadow:%'"
        "  FROM decisions d JOIN attempts l ON l.decision_id = d.id AND l.seq = 0"
        "  JOIN attempts c ON c.decision_id = d.id"
        "   AND c.seq = (SELECT MAX(seq) FROM attempts WHERE decision_id = d.id)"
        " WHERE c.seq > 0 AND ((d.escalated = 1 AND d.tier_kind = 'cloud')"
        "                      OR c.reason LIKE 'shadow:%')"
        "   AND l.answer IS NOT NULL AND c.answer IS NOT NULL AND c.error_code IS NULL"
        "   AND l.raw_confidence IS NOT NULL AND l.raw_confidence >= 0"
        " ORDER BY d.id";
    if (sqlite3_prepare_v2(h, sql, -1, &q, NULL) != SQLITE_OK) {
        rc = ec_error_set(err, EC_ERR_DB, "%s: %s (a decision log older than schema 2?)", db,
                          sqlite3_errmsg(h));
        goto out;
    }
    int step;
    while ((step = sqlite3_step(q)) == SQLITE_ROW) {
        (*seen)++;
        int agree = cli_short_agreement((const char *)sqlite3_column_text(q, 1),
                                        (const char *)sqlite3_column_text(q, 2));
        if (agree < 0)
            continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 256;
            ec_calib_sample *s = realloc(*out, cap * sizeof(*s));
            if (!s) {
                rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
                goto out;
            }
            *out = s;
        }
        *from_shadow += sqlite3_column_int(q, 5) != 0;
        (*out)[(*n)++] = (ec_calib_sample){.raw = sqlite3_column_double(q, 0),
                                           .local_correct = agree == 1,
                                           .cloud_correct = true,
                                           .local_cost = sqlite3_column_double(q, 3),
                                           .cloud_cost = sqlite3_column_double(q, 4)};
    }
    if (step != SQLITE_DONE)
        rc = ec_error_set(err, EC_ERR_DB, "%s: %s", db, sqlite3_errmsg(h));
out:
    sqlite3_finalize(q);
    sqlite3_close(h);
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return rc;
}

int cli_cmd_calibrate(cli_ctx *ctx, int argc, char **argv)
{
    cal_opts o = {0};
    int prc = parse_args(argc, argv, &o);
    if (prc >= 0)
        return prc;
    ec_error err = {0};
    ec_corpus corpus = {0};
    ec_calib_sample *s = NULL;
    ec_calib cal = {0};
    size_t n = 0, seen = 0, from_shadow = 0;
    int rc = CLI_EXIT_FAIL;
    char source[600];
    if (o.from_store) {
        const char *db = o.db ? o.db : ctx->cfg.db_path;
        if (store_samples(db, &s, &n, &seen, &from_shadow, &err))
            goto fail;
        if (n == 0) {
            ec_error_set(&err, EC_ERR_INVAL,
                         "%s: no labelled drafts (%zu escalated or shadowed queries with both "
                         "answers; labels need short answers on both sides)",
                         db, seen);
            goto fail;
        }
        snprintf(source, sizeof(source), "store:%s", db);
    } else {
        if (ec_corpus_load(o.corpus, &corpus, &err) ||
            cli_corpus_samples(&corpus, o.local, o.cloud, &s, &err))
            goto fail;
        n = corpus.n_rows;
        snprintf(source, sizeof(source), "%s", o.corpus);
    }
    ec_calib_fit_opts fo = {.method = o.method, .target = o.target, .margin_z = o.margin};
    if (ec_calib_fit_with(s, n, &fo, &cal, &err))
        goto fail;
    cal.local_model = strdup(o.local ? o.local : (ctx->cfg.n_tiers ? ctx->cfg.tiers[0].model : ""));
    cal.cloud_model = strdup(
        o.cloud ? o.cloud : (ctx->cfg.n_tiers ? ctx->cfg.tiers[ctx->cfg.n_tiers - 1].model : ""));
    cal.source = strdup(source);
    if (o.output && ec_calib_save(&cal, o.output, &err))
        goto fail;
    if (o.json) {
        char tmp[] = "/tmp/ec-calib-XXXXXX";
        int fd = mkstemp(tmp);
        if (fd < 0 || ec_calib_save(&cal, tmp, &err)) {
            if (fd >= 0) {
                close(fd);
                unlink(tmp);
            }
            goto fail;
        }
        close(fd);
        FILE *f = fopen(tmp, "r");
        int ch;
        while (f && (ch = fgetc(f)) != EOF)
            putchar(ch);
        if (f)
            fclose(f);
        putchar('\n');
        unlink(tmp);
    } else {
        printf("calibration of %s (local) against %s (cloud) on %s\n", cal.local_model,
               cal.cloud_model, source);
        if (o.from_store)
            printf("labels: %zu of %zu escalated or shadowed queries (%zu from shadow calls; "
                   "short answers, cloud taken as right)\n",
                   n, seen, from_shadow);
        printf("samples %zu, local accuracy %.1f %%, cloud accuracy %.1f %%, knots %zu\n", n,
               100 * cal.local_accuracy, 100 * cal.cloud_accuracy, cal.nk);
        if (o.method == EC_CALIB_PLATT)
            printf("map: platt, p = 1 / (1 + exp(-(%.4f + %.4f logit(raw))))", cal.platt_a,
                   cal.platt_b);
        else
            printf("map: isotonic");
        printf("; threshold margin %.2f sd\n\n", cal.margin_z);
        cli_print_curve(&cal);
        ec_calib_point p;
        ec_calib_evaluate(&cal, s, n, cal.threshold, &p);
        printf("\nchosen: threshold %.4f for %.1f %% of cloud accuracy: escalation %.1f %%, "
               "accuracy %.1f %% (%.1f %% of cloud), cost %.1f %% of always-cloud\n",
               cal.threshold, 100 * o.target, 100 * p.escalation, 100 * p.accuracy,
               100 * p.acc_vs_cloud, 100 * p.cost_vs_cloud);
        printf("hindsight-best escalation on the same data: %.1f %%\n",
               100 * ec_calib_hindsight(s, n, o.target));
        for (int i = 0; i < EC_CALIB_PRESETS; i++)
            printf("preset %-12s target %.3f threshold %.4f\n", ec_calib_preset_names[i],
                   cal.preset_target[i], cal.preset_threshold[i]);
        if (o.output)
            printf("wrote %s (set gate.calibration to use it)\n", o.output);
    }
    rc = CLI_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, "edgecascade calibrate: %s\n", err.msg);
    rc = err.code == EC_ERR_INVAL || err.code == EC_ERR_NOTFOUND ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
out:
    ec_calib_free(&cal);
    free(s);
    ec_corpus_free(&corpus);
    return rc;
}
