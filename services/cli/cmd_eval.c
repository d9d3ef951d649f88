/* edgecascade eval: measure the gate on recorded answers.
 *
 * The default path is the real one: a private Mosquitto, the simulator
 * replaying the corpus (edgecascade-sim --replay), and router, local and
 * relay with a generated config whose tiers are the corpus models; every
 * prompt goes through MQTT as a query. --offline runs the same gate code
 * in-process instead. Without --calibration the gate is cross-fitted: the
 * rows are split into folds (row i in fold i mod k), and each fold is
 * answered with a calibration fitted on the other folds, so no row is judged
 * by a map that saw its label.
 *
 * A served answer is judged by the recorded `correct` of the model whose
 * recorded answer it is.
 *
 * This file holds the options, the calibrations, the offline path, the gate's
 * speed (--bench-gate) and the command; the path through the services is
 * cmd_eval_real.c, the figures cmd_eval_figures.c (shared types: cmd_eval.h). */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cmd_eval.h"
#include "edgecascade/calib.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"
#include "gate.h"
#include "launch.h"

void cli_help_eval(void)
{
    printf("usage: edgecascade eval --corpus FILE.jsonl --local MODEL --cloud MODEL\n"
           "                        [--calibration FILE | --folds K] [--target 0.95]\n"
           "                        [--method platt|isotonic] [--margin Z]\n"
           "                        [--offline] [--json] [--limit N] [--latency-scale X]\n"
           "       edgecascade eval --bench-gate --corpus FILE.jsonl --local MODEL --cloud MODEL\n"
           "\n"
           "Runs a corpus of recorded answers through the cascade and prints accuracy,\n"
           "escalation rate, cost and savings against always-cloud and always-local,\n"
           "beside the best single threshold chosen in hindsight on the same rows, and the\n"
           "expected calibration error (10 bins) of the local drafts' confidence.\n"
           "\n"
           "  --calibration FILE  use this calibration file for every row; without it the\n"
           "                      gate is cross-fitted (--folds K, default 2): each fold is\n"
           "                      judged by a calibration fitted on the other folds\n"
           "  --target X          share of cloud accuracy the fitted threshold aims at (0.95)\n"
           "  --method M          cross-fitted map: platt (default) or isotonic\n"
           "  --margin Z          cross-fitted threshold's safety margin in standard\n"
           "                      deviations of the accepted drafts' right count (1)\n"
           "  --offline           judge in-process with the router's gate code, without the\n"
           "                      services (default: private Mosquitto, simulator replaying the\n"
           "                      corpus, router, local and relay over MQTT)\n"
           "  --limit N           only the first N rows\n"
           "  --latency-scale X   replay the recorded latencies x X (default 0: none)\n"
           "  --bench-gate        time the gate's decision (classify + judge) per row\n"
           "  --keep              keep the working directory (logs, configs, decision logs)\n"
           "  --json              one JSON object\n");
}

static int parse_args(int argc, char **argv, eval_opts *o)
{
    cli_args a = {.cmd = "eval", .argc = argc, .argv = argv};
    const char *arg, *v;
    bool is_opt;
    o->target = 0.95;
    o->folds = 2;
    o->margin = EC_CALIB_MARGIN_Z;
    while (cli_next(&a, &arg, &is_opt)) {
        int m = 0;
        if (!is_opt)
            return cli_usage_error("eval", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--json") == 0) {
            o->json = true;
        } else if (strcmp(arg, "--offline") == 0) {
            o->offline = true;
        } else if (strcmp(arg, "--bench-gate") == 0) {
            o->bench = true;
        } else if (strcmp(arg, "--keep") == 0) {
            o->keep = true;
        } else if ((m = cli_opt_value(&a, arg, "--corpus", &o->corpus)) ||
                   (m = cli_opt_value(&a, arg, "--local", &o->local)) ||
                   (m = cli_opt_value(&a, arg, "--cloud", &o->cloud)) ||
                   (m = cli_opt_value(&a, arg, "--calibration", &o->calibration))) {
            if (m < 0)
                return CLI_EXIT_USAGE;
        } else if ((m = cli_opt_value(&a, arg, "--target", &v)) != 0) {
            if (m < 0 || !cli_parse_double(v, 1e-6, 1, &o->target))
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("eval", "--target: expected a number in (0, 1]");
        } else if ((m = cli_opt_value(&a, arg, "--method", &v)) != 0) {
            int k = m < 0 ? -1 : ec_calib_method_index(v);
            if (k < 0)
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("eval", "--method: expected platt or isotonic");
            o->method = (ec_calib_method)k;
        } else if ((m = cli_opt_value(&a, arg, "--margin", &v)) != 0) {
            if (m < 0 || !cli_parse_double(v, 0, 10, &o->margin))
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("eval", "--margin: expected a number in [0, 10]");
        } else if ((m = cli_opt_value(&a, arg, "--latency-scale", &v)) != 0) {
            if (m < 0 || !cli_parse_double(v, 0, 100, &o->latency_scale))
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("eval", "--latency-scale: expected 0..100");
        } else if ((m = cli_opt_value(&a, arg, "--limit", &v)) != 0) {
            if (m < 0 || !cli_parse_long(v, 1, 100000000, &o->limit))
                return m < 0 ? CLI_EXIT_USAGE
                             : cli_usage_error("eval", "--limit: expected a number >= 1");
        } else if ((m = cli_opt_value(&a, arg, "--folds", &v)) != 0) {
            if (m < 0 || !cli_parse_long(v, 2, 8, &o->folds))
                return m < 0 ? CLI_EXIT_USAGE : cli_usage_error("eval", "--folds: expected 2..8");
        } else {
            return cli_usage_error("eval", "unknown option %s", arg);
        }
    }
    if (!o->corpus || !o->local || !o->cloud || !*o->local || !*o->cloud)
        return cli_usage_error("eval", "--corpus FILE, --local MODEL and --cloud MODEL are "
                                       "required");
    return -1;
}

/* Fits one calibration per fold on the rows outside it. */
static ec_err make_calibrations(eval_run *r, ec_error *err)
{
    if (r->o->calibration) {
        snprintf(r->calib_path[0], sizeof(r->calib_path[0]), "%s", r->o->calibration);
        ec_calib c;
        ec_err rc = ec_calib_load(r->o->calibration, &c, err);
        ec_calib_free(&c);
        return rc;
    }
    ec_calib_sample *train = calloc(r->n, sizeof(*train));
    if (!train)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    ec_err rc = EC_OK;
    for (size_t f = 0; f < eval_n_folds(r) && !rc; f++) {
        size_t k = 0;
        for (size_t i = 0; i < r->n; i++)
            if (!eval_in_fold(r, i, f))
                train[k++] = r->s[i];
        ec_calib c;
        if (k == 0) {
            rc = ec_error_set(err, EC_ERR_INVAL, "too few rows for %zu folds", eval_n_folds(r));
            break;
        }
        ec_calib_fit_opts fo = {
            .method = r->o->method, .target = r->o->target, .margin_z = r->o->margin};
        if ((rc = ec_calib_fit_with(train, k, &fo, &c, err)))
            break;
        c.local_model = strdup(r->o->local);
        c.cloud_model = strdup(r->o->cloud);
        c.source = strdup(r->o->corpus);
        snprintf(r->calib_path[f], sizeof(r->calib_path[f]), "%s/calibration-%zu.json", r->dir, f);
        rc = ec_calib_save(&c, r->calib_path[f], err);
        ec_calib_free(&c);
    }
    free(train);
    return rc;
}

/* The config of the gate (and, on the real path, of the services). */
char *eval_config_yaml(const eval_run *r, size_t fold)
{
    char *y = NULL;
    int n = asprintf(&y,
                     "site: eval\n"
                     "topic_root: %s\n"
                     "mqtt:\n  broker: %s\n  queue_size: 65536\n"
                     "store:\n  path: %s/decisions-%zu.db\n"
                     "gate:\n  calibration: %s\n"
                     "router:\n  max_pending: 4096\n"
                     "log:\n  level: warn\n"
                     "tiers:\n"
                     "  - name: local\n    provider: vllm\n    model: %s\n"
                     "    base_url: http://127.0.0.1:%d/v1\n    timeout_ms: 60000\n"
                     "  - name: cloud\n    provider: openai\n    model: %s\n"
                     "    base_url: http://127.0.0.1:%d/v1\n    api_key_env: EC_EVAL_KEY\n"
                     "    timeout_ms: 60000\n",
                     r->root[0] ? r->root : "edgecascade/eval",
                     r->uri[0] ? r->uri : "tcp://127.0.0.1:1", r->dir, fold, r->calib_path[fold],
                     r->o->local, r->sim_port ? r->sim_port : 1, r->o->cloud,
                     r->sim_port ? r->sim_port : 1);
    return n < 0 ? NULL : y;
}

static ec_err gate_for_fold(const eval_run *r, size_t fold, ec_config *cfg, ec_gate **g,
                            ec_error *err)
{
    char *y = eval_config_yaml(r, fold);
    if (!y)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    memset(cfg, 0, sizeof(*cfg));
    ec_err rc = ec_config_load_string(cfg, y, strlen(y), err);
    free(y);
    if (rc == EC_OK && (rc = ec_gate_create(g, cfg, err)))
        ec_config_free(cfg);
    return rc;
}

/* The reply the simulator's replay gives for a corpus answer. */
static void replay_reply(const ec_corpus_answer *a, ec_infer_reply *rep, double *lps, size_t cap)
{
    memset(rep, 0, sizeof(*rep));
    rep->answer = a->answer;
    rep->finish_reason = "stop";
    size_t n = 0;
    bool in = false;
    for (const char *p = a->answer; *p; p++) {
        bool ws = *p == ' ' || *p == '\t' || *p == '\n' || *p == '\r';
        if (!ws && !in)
            n++;
        in = !ws;
    }
    if (n > cap)
        n = cap;
    for (size_t i = 0; i < n; i++)
        lps[i] = a->has_logprob ? a->logprob : -1000.0;
    ec_lp_stats_compute(lps, n, &rep->lp);
}

static const char *user_text(const ec_corpus_row *row)
{
    return row->prompt;
}

void eval_judge_served(eval_row *out, const ec_corpus_row *row, const char *local,
                       const char *cloud, bool served_local, const char *answer)
{
    const ec_corpus_answer *l = ec_corpus_find(row, local), *c = ec_corpus_find(row, cloud);
    const ec_corpus_answer *want = served_local ? l : c;
    out->done = true;
    out->served_local = served_local;
    if (answer && strcmp(answer, want->answer) == 0) {
        out->correct = want->correct;
    } else {
        out->correct = false;
        out->mismatch = true;
    }
}

static ec_err run_offline(eval_run *r, ec_error *err)
{
    double lps[4096];
    for (size_t f = 0; f < eval_n_folds(r); f++) {
        ec_config cfg;
        ec_gate *g = NULL;
        ec_err rc = gate_for_fold(r, f, &cfg, &g, err);
        if (rc)
            return rc;
        for (size_t i = 0; i < r->n; i++) {
            if (!eval_in_fold(r, i, f))
                continue;
            const ec_corpus_row *row = &r->corpus.rows[i];
            ec_gate_query gq;
            ec_gate_classify_text(g, user_text(row), &gq);
            eval_row *e = &r->rows[i];
            e->local_conf = -1;
            if (gq.preroute_cloud) {
                eval_judge_served(e, row, r->o->local, r->o->cloud, false,
                                  ec_corpus_find(row, r->o->cloud)->answer);
                continue;
            }
            ec_infer_reply rep;
            replay_reply(ec_corpus_find(row, r->o->local), &rep, lps, 4096);
            ec_gate_verdict v;
            ec_gate_judge(g, 0, &gq, &rep, &v);
            e->local_conf = v.confidence;
            bool local = v.confidence >= v.threshold;
            const ec_corpus_answer *a = ec_corpus_find(row, local ? r->o->local : r->o->cloud);
            eval_judge_served(e, row, r->o->local, r->o->cloud, local, a->answer);
        }
        ec_gate_destroy(g);
        ec_config_free(&cfg);
    }
    return EC_OK;
}

/* ---- the gate's speed ---- */

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static ec_err bench_gate(eval_run *r, ec_error *err)
{
    ec_config cfg;
    ec_gate *g = NULL;
    ec_err rc = gate_for_fold(r, 0, &cfg, &g, err);
    if (rc)
        return rc;
    enum { REPS = 20 };
    size_t n = r->n * REPS;
    double *ns = malloc(n * sizeof(double));
    ec_infer_reply *reps = calloc(r->n, sizeof(*reps));
    double *lps = malloc(r->n * 64 * sizeof(double));
    if (!ns || !reps || !lps) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < r->n; i++)
        replay_reply(ec_corpus_find(&r->corpus.rows[i], r->o->local), &reps[i], lps + i * 64, 64);
    volatile double sink = 0;
    size_t k = 0;
    for (int rep = 0; rep < REPS; rep++) {
        for (size_t i = 0; i < r->n; i++) {
            struct timespec a, b;
            ec_gate_query gq;
            ec_gate_verdict v;
            clock_gettime(CLOCK_MONOTONIC, &a);
            ec_gate_classify_text(g, r->corpus.rows[i].prompt, &gq);
            ec_gate_judge(g, 0, &gq, &reps[i], &v);
            clock_gettime(CLOCK_MONOTONIC, &b);
            sink += v.confidence;
            ns[k++] = (double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec);
        }
    }
    (void)sink;
    qsort(ns, k, sizeof(double), cmp_double);
    double med = ns[k / 2], p99 = ns[(size_t)((double)k * 0.99)];
    if (r->o->json)
        printf("{\"decisions\":%zu,\"median_us\":%.3f,\"p99_us\":%.3f}\n", k, med / 1000,
               p99 / 1000);
    else
        printf("gate decision (classify + judge, calibrated): %zu decisions, median %.2f us, "
               "p99 %.2f us\n",
               k, med / 1000, p99 / 1000);
out:
    free(ns);
    free(reps);
    free(lps);
    ec_gate_destroy(g);
    ec_config_free(&cfg);
    return rc;
}

static void remove_dir(const char *dir)
{
    char cmd[300];
    if (strncmp(dir, "/tmp/ec-eval-", 13) != 0)
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    /* dir is our own mkdtemp() name (checked prefix, no quotes in it). */
    if (system(cmd) != 0) // NOLINT(cert-env33-c)
        fprintf(stderr, "edgecascade eval: could not remove %s\n", dir);
}

int cli_cmd_eval(cli_ctx *ctx, int argc, char **argv)
{
    (void)ctx;
    eval_opts o = {0};
    int prc = parse_args(argc, argv, &o);
    if (prc >= 0)
        return prc;
    eval_run r = {.o = &o};
    ec_error err = {0};
    int rc = CLI_EXIT_FAIL;
    bool have_dir = false;
    if (ec_corpus_load(o.corpus, &r.corpus, &err) ||
        cli_corpus_samples(&r.corpus, o.local, o.cloud, &r.s, &err)) {
        fprintf(stderr, "edgecascade eval: %s\n", err.msg);
        rc = CLI_EXIT_USAGE;
        goto out;
    }
    r.n = o.limit && (size_t)o.limit < r.corpus.n_rows ? (size_t)o.limit : r.corpus.n_rows;
    r.rows = calloc(r.n, sizeof(*r.rows));
    snprintf(r.dir, sizeof(r.dir), "/tmp/ec-eval-XXXXXX");
    if (!r.rows || !mkdtemp(r.dir)) {
        fprintf(stderr, "edgecascade eval: cannot create a working directory: %s\n",
                strerror(errno));
        goto out;
    }
    have_dir = true;
    if (make_calibrations(&r, &err))
        goto fail;
    if (o.bench) {
        if (bench_gate(&r, &err))
            goto fail;
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (o.offline ? run_offline(&r, &err) : eval_run_real(&r, &err))
        goto fail;
    eval_figures fg;
    eval_compute_figures(&r, &fg);
    eval_print_figures(&r, &fg);
    rc = CLI_EXIT_OK;
    goto out;
fail:
    fprintf(stderr, "edgecascade eval: %s\n", err.msg);
    rc = err.code == EC_ERR_INVAL ? CLI_EXIT_USAGE : CLI_EXIT_FAIL;
out:
    cli_stop(&r.sim);
    cli_stop(&r.broker);
    if (have_dir && (o.keep || rc == CLI_EXIT_FAIL))
        fprintf(stderr, "edgecascade eval: working directory kept: %s\n", r.dir);
    else if (have_dir)
        remove_dir(r.dir);
    free(r.rows);
    free(r.s);
    ec_corpus_free(&r.corpus);
    return rc;
}
