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
 * recorded answer it is. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/buf.h"
#include "edgecascade/calib.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"
#include "gate.h"
#include "launch.h"

#define ECE_BINS     10
#define WINDOW       32 /* queries in flight at once on the real path */
#define QUERY_WAIT_S 120

typedef struct eval_opts {
    const char *corpus, *local, *cloud, *calibration;
    double target, latency_scale, margin;
    ec_calib_method method;
    long limit, folds;
    bool json, offline, bench, keep;
} eval_opts;

/* What happened to one row. */
typedef struct eval_row {
    bool done;
    bool served_local;
    bool correct;
    bool mismatch;     /* the served answer is neither recorded answer */
    double local_conf; /* calibrated confidence of the local draft, -1 if none */
} eval_row;

typedef struct eval_run {
    const eval_opts *o;
    ec_corpus corpus;
    size_t n;
    ec_calib_sample *s;
    eval_row *rows;
    char dir[128];
    char calib_path[8][300]; /* per fold */
    /* real path */
    cli_proc broker, sim, router, local, relay;
    int mqtt_port, sim_port;
    char uri[64], root[96];
} eval_run;

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

static size_t n_folds(const eval_run *r)
{
    return r->o->calibration ? 1 : (size_t)r->o->folds;
}

static bool in_fold(const eval_run *r, size_t i, size_t f)
{
    return n_folds(r) == 1 || i % n_folds(r) == f;
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
    for (size_t f = 0; f < n_folds(r) && !rc; f++) {
        size_t k = 0;
        for (size_t i = 0; i < r->n; i++)
            if (!in_fold(r, i, f))
                train[k++] = r->s[i];
        ec_calib c;
        if (k == 0) {
            rc = ec_error_set(err, EC_ERR_INVAL, "too few rows for %zu folds", n_folds(r));
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
static char *config_yaml(const eval_run *r, size_t fold)
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
    char *y = config_yaml(r, fold);
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

static void judge_served(eval_row *out, const ec_corpus_row *row, const char *local,
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
    for (size_t f = 0; f < n_folds(r); f++) {
        ec_config cfg;
        ec_gate *g = NULL;
        ec_err rc = gate_for_fold(r, f, &cfg, &g, err);
        if (rc)
            return rc;
        for (size_t i = 0; i < r->n; i++) {
            if (!in_fold(r, i, f))
                continue;
            const ec_corpus_row *row = &r->corpus.rows[i];
            ec_gate_query gq;
            ec_gate_classify_text(g, user_text(row), &gq);
            eval_row *e = &r->rows[i];
            e->local_conf = -1;
            if (gq.preroute_cloud) {
                judge_served(e, row, r->o->local, r->o->cloud, false,
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
            judge_served(e, row, r->o->local, r->o->cloud, local, a->answer);
        }
        ec_gate_destroy(g);
        ec_config_free(&cfg);
    }
    return EC_OK;
}

/* ---- the real path ---- */

static ec_err start_infra(eval_run *r, const char *bin, ec_error *err)
{
    char conf[300], portfile[300], map[600], scale[32];
    r->mqtt_port = cli_free_port();
    if (r->mqtt_port <= 0)
        return ec_error_set(err, EC_ERR_IO, "no free port for Mosquitto");
    snprintf(r->uri, sizeof(r->uri), "tcp://127.0.0.1:%d", r->mqtt_port);
    char id[27];
    ec_id_new(id);
    snprintf(r->root, sizeof(r->root), "ec-eval/%s", id);
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", r->dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: %s", conf, strerror(errno));
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "persistence false\nmax_queued_messages 100000\nlog_dest stderr\n",
            r->mqtt_port);
    fclose(f);
    char *bargv[] = {"/usr/sbin/mosquitto", "-c", conf, NULL};
    ec_err rc = cli_spawn(&r->broker, r->dir, "mosquitto", bargv, err);
    if (rc || (rc = cli_wait_port(&r->broker, r->mqtt_port, 5000, err)))
        return rc;

    char sim[600];
    snprintf(sim, sizeof(sim), "%s/edgecascade-sim", bin);
    snprintf(portfile, sizeof(portfile), "%s/sim.port", r->dir);
    snprintf(map, sizeof(map), "%s=%s,%s=%s", r->o->local, r->o->local, r->o->cloud, r->o->cloud);
    snprintf(scale, sizeof(scale), "%g", r->o->latency_scale);
    char *sargv[] = {sim,
                     "--port",
                     "0",
                     "--port-file",
                     portfile,
                     "--replay",
                     (char *)r->o->corpus,
                     "--replay-map",
                     map,
                     "--replay-latency-scale",
                     scale,
                     "--log-level",
                     "warn",
                     NULL};
    if ((rc = cli_spawn(&r->sim, r->dir, "sim", sargv, err)))
        return rc;
    return cli_wait_port_file(&r->sim, portfile, 30000, &r->sim_port, err);
}

static ec_err start_services(eval_run *r, const char *bin, size_t fold, ec_error *err)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/edgecascade-%zu.yaml", r->dir, fold);
    char *y = config_yaml(r, fold);
    FILE *f = y ? fopen(path, "w") : NULL;
    if (!f) {
        free(y);
        return ec_error_set(err, EC_ERR_IO, "%s: cannot write", path);
    }
    fputs(y, f);
    fclose(f);
    free(y);
    const char *names[] = {"router", "local", "relay"};
    cli_proc *procs[] = {&r->router, &r->local, &r->relay};
    for (int i = 0; i < 3; i++) {
        char exe[600], name[32];
        snprintf(exe, sizeof(exe), "%s/edgecascade-%s", bin, names[i]);
        snprintf(name, sizeof(name), "%s-%zu", names[i], fold);
        char *argv[] = {exe, "--config", path, NULL};
        ec_err rc = cli_spawn(procs[i], r->dir, name, argv, err);
        if (rc || (rc = cli_wait_online(procs[i], r->uri, r->root, names[i], 15000, err)))
            return rc;
    }
    return EC_OK;
}

static void stop_services(eval_run *r)
{
    cli_stop(&r->router);
    cli_stop(&r->local);
    cli_stop(&r->relay);
}

static ec_err send_query(eval_run *r, ec_mqtt *m, const char *reply, size_t i, ec_error *err)
{
    const ec_corpus_row *row = &r->corpus.rows[i];
    ec_chat_msg msgs[2] = {{.role = "system", .content = row->system},
                           {.role = "user", .content = row->prompt}};
    char id[64];
    snprintf(id, sizeof(id), "eval-%zu", i);
    ec_query q = {.id = id};
    if (row->system) {
        q.messages = msgs;
        q.n_messages = 2;
    } else {
        q.messages = &msgs[1];
        q.n_messages = 1;
    }
    ec_buf b;
    ec_buf_init(&b, 0);
    ec_err rc = ec_query_encode(&q, &b, err);
    char topic[200], corr[32];
    snprintf(topic, sizeof(topic), "%s/query", r->root);
    snprintf(corr, sizeof(corr), "%zu", i);
    ec_mqtt_pubprops pp = {.response_topic = reply, .corr = corr, .corr_len = strlen(corr)};
    if (!rc)
        rc = ec_mqtt_publish(m, topic, b.data, b.len, 1, false, &pp, 10000, err);
    ec_buf_free(&b);
    return rc;
}

static ec_err take_result(eval_run *r, ec_mqtt_msg *msg, size_t *got, ec_error *err)
{
    char corr[32] = {0};
    if (!msg->corr || msg->corr_len >= sizeof(corr))
        return EC_OK;
    memcpy(corr, msg->corr, msg->corr_len);
    size_t i = strtoul(corr, NULL, 10);
    if (i >= r->n || r->rows[i].done)
        return EC_OK; /* a later revision or a stranger */
    ec_result res = {0};
    ec_err rc = ec_result_decode(msg->payload, msg->len, &res, err);
    if (rc)
        return rc;
    const ec_corpus_row *row = &r->corpus.rows[i];
    eval_row *e = &r->rows[i];
    e->local_conf = -1;
    if (res.error.code) {
        rc = ec_error_set(err, EC_ERR_UNAVAILABLE, "row %s: %s: %s", row->id, res.error.code,
                          res.error.message ? res.error.message : "");
    } else {
        for (size_t k = 0; k < res.n_attempts; k++)
            if (res.attempts[k].tier_index == 0)
                e->local_conf = res.attempts[k].confidence;
        judge_served(e, row, r->o->local, r->o->cloud, res.tier && strcmp(res.tier, "local") == 0,
                     res.answer);
        (*got)++;
    }
    ec_result_clear(&res);
    return rc;
}

static ec_err run_fold_real(eval_run *r, size_t fold, ec_error *err)
{
    ec_mqtt *m = NULL;
    char cid[64], reply[200];
    snprintf(cid, sizeof(cid), "ec-eval-%d-%zu", (int)getpid(), fold);
    snprintf(reply, sizeof(reply), "%s/eval-reply/%s", r->root, cid);
    ec_mqtt_opts mo = {.uri = r->uri, .client_id = cid, .clean_start = true, .queue_cap = 65536};
    ec_err rc = ec_mqtt_create(&m, &mo, err);
    if (rc || (rc = ec_mqtt_subscribe(m, reply, 1, err)) || (rc = ec_mqtt_connect(m, 5000, err)))
        goto out;
    size_t want = 0, sent = 0, got = 0, next = 0;
    for (size_t i = 0; i < r->n; i++)
        want += in_fold(r, i, fold);
    uint64_t last = ec_mono_us();
    while (got < want) {
        while (sent - got < WINDOW && next < r->n) {
            if (in_fold(r, next, fold)) {
                if ((rc = send_query(r, m, reply, next, err)))
                    goto out;
                sent++;
            }
            next++;
        }
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 200) != EC_OK) {
            if (ec_mono_us() - last > QUERY_WAIT_S * 1000000ull) {
                rc = ec_error_set(err, EC_ERR_TIMEOUT, "no result for %d s (%zu of %zu back)",
                                  QUERY_WAIT_S, got, want);
                goto out;
            }
            continue;
        }
        last = ec_mono_us();
        rc = take_result(r, msg, &got, err);
        ec_mqtt_msg_free(msg);
        if (rc)
            goto out;
    }
out:
    ec_mqtt_destroy(m);
    return rc;
}

static ec_err run_real(eval_run *r, ec_error *err)
{
    char bin[512];
    setenv("EC_EVAL_KEY", "sk-eval-simulated", 1);
    ec_err rc = cli_exe_dir(bin, sizeof(bin), err);
    if (rc || (rc = start_infra(r, bin, err)))
        return rc;
    for (size_t f = 0; f < n_folds(r) && !rc; f++) {
        rc = start_services(r, bin, f, err);
        if (!rc)
            rc = run_fold_real(r, f, err);
        if (rc) {
            cli_dump_log(&r->router);
            cli_dump_log(&r->local);
            cli_dump_log(&r->relay);
            cli_dump_log(&r->sim);
        }
        stop_services(r);
    }
    return rc;
}

/* ---- figures ---- */

typedef struct eval_figures {
    size_t n, mismatches;
    double accuracy, local_accuracy, cloud_accuracy, escalation_rate;
    double cost_usd, cost_all_cloud_usd, cost_all_local_usd, savings;
    double hindsight_escalation_rate, hindsight_target_escalation_rate, ece;
    double ece_equal_mass, ece_floor, ce_l2_debiased;
    bool target_reached;
} eval_figures;

/* ECE_BINS bins of (nearly) equal count over confidences sorted ascending;
 * equal confidences stay in one bin. Fills each bin's size, sum of
 * confidences and sum of labels; returns how many bins there are. */
static int mass_bins(const double *conf, const double *ok, size_t n, double *bin_n,
                     double *bin_conf, double *bin_ok)
{
    int nb = 0;
    size_t i = 0;
    for (int b = 0; b < ECE_BINS && i < n; b++) {
        size_t end = (size_t)((double)n * (b + 1) / ECE_BINS);
        if (end <= i)
            continue;
        while (end < n && conf[end] == conf[end - 1])
            end++;
        double c = 0, k = 0;
        for (size_t j = i; j < end; j++) {
            /* j < end <= n: the caller filled conf[0..n). */
            c += conf[j]; // NOLINT(clang-analyzer-core.uninitialized.Assign)
            k += ok[j];
        }
        bin_n[nb] = (double)(end - i);
        bin_conf[nb] = c;
        bin_ok[nb] = k;
        nb++;
        i = end;
    }
    return nb;
}

static double ece_equal_mass(const double *conf, const double *ok, size_t n)
{
    double bn[ECE_BINS], bc[ECE_BINS], bk[ECE_BINS], e = 0;
    int nb = mass_bins(conf, ok, n, bn, bc, bk);
    for (int b = 0; b < nb; b++)
        e += fabs(bk[b] - bc[b]) / (double)n;
    return e;
}

/* The debiased L2 calibration error of Kumar, Liang and Ma ("Verified
 * Uncertainty Calibration", NeurIPS 2019) over the same equal-mass bins:
 * sqrt(sum_b w_b ((conf_b - acc_b)^2 - acc_b (1 - acc_b) / (n_b - 1))). The
 * plug-in ECE above is biased upwards by each bin's sampling noise (the
 * floor); this estimator subtracts that noise's expected share. The L2 error
 * bounds the L1 error (the ECE) from above, so a debiased L2 figure under
 * 0.05 says the gate's real ECE is under 0.05 too, within estimation error. */
static double ce_l2_debiased(const double *conf, const double *ok, size_t n)
{
    double bn[ECE_BINS], bc[ECE_BINS], bk[ECE_BINS], e2 = 0;
    int nb = mass_bins(conf, ok, n, bn, bc, bk);
    for (int b = 0; b < nb; b++) {
        double m = bn[b], acc = bk[b] / m, d = bc[b] / m - acc;
        e2 += m / (double)n * (d * d - (m > 1 ? acc * (1 - acc) / (m - 1) : 0));
    }
    return sqrt(e2 > 0 ? e2 : 0);
}

static double ece_bins(const double *conf, const double *ok, size_t n)
{
    double bin_n[ECE_BINS] = {0}, bin_conf[ECE_BINS] = {0}, bin_ok[ECE_BINS] = {0}, e = 0;
    for (size_t i = 0; i < n; i++) {
        int b = (int)(conf[i] * ECE_BINS);
        b = b < 0 ? 0 : b >= ECE_BINS ? ECE_BINS - 1 : b;
        bin_n[b]++;
        bin_conf[b] += conf[i];
        bin_ok[b] += ok[i];
    }
    for (int b = 0; b < ECE_BINS && n; b++)
        if (bin_n[b] > 0)
            e += bin_n[b] / (double)n * fabs(bin_ok[b] / bin_n[b] - bin_conf[b] / bin_n[b]);
    return e;
}

/* The 10-bin ECE a perfectly calibrated gate would show on these rows: the
 * same confidences, labels drawn from them (fixed seed, mean of 200 draws).
 * On a few hundred rows it is far from 0, and is the floor to read the
 * measured ECE against. */
static double ece_floor(const double *conf, size_t n)
{
    double *draw = malloc((n ? n : 1) * sizeof(double)), sum = 0;
    uint64_t x = 0x9e3779b97f4a7c15ull;
    enum { DRAWS = 200 };
    if (!draw)
        return NAN;
    for (int d = 0; d < DRAWS; d++) {
        for (size_t i = 0; i < n; i++) {
            x ^= x << 13; /* xorshift64 */
            x ^= x >> 7;
            x ^= x << 17;
            draw[i] = (double)(x >> 11) / 9007199254740992.0 < conf[i];
        }
        sum += ece_bins(conf, draw, n);
    }
    free(draw);
    return sum / DRAWS;
}

typedef struct conf_ok {
    double conf, ok;
} conf_ok;

static int cmp_conf(const void *a, const void *b)
{
    const conf_ok *p = a, *q = b;
    if (p->conf != q->conf)
        return p->conf < q->conf ? -1 : 1;
    return p->ok < q->ok ? -1 : p->ok > q->ok;
}

static void calibration_errors(const eval_run *r, eval_figures *fg)
{
    conf_ok *v = malloc((r->n ? r->n : 1) * sizeof(*v));
    double *conf = malloc((r->n ? r->n : 1) * sizeof(double));
    double *ok = malloc((r->n ? r->n : 1) * sizeof(double));
    size_t k = 0;
    for (size_t i = 0; v && conf && ok && i < r->n; i++)
        if (r->rows[i].local_conf >= 0)
            v[k++] = (conf_ok){r->rows[i].local_conf, r->s[i].local_correct};
    if (v && conf && ok) {
        qsort(v, k, sizeof(*v), cmp_conf);
        for (size_t i = 0; i < k; i++) {
            conf[i] = v[i].conf;
            ok[i] = v[i].ok;
        }
        fg->ece = ece_bins(conf, ok, k);
        fg->ece_equal_mass = ece_equal_mass(conf, ok, k);
        fg->ece_floor = ece_floor(conf, k);
        fg->ce_l2_debiased = ce_l2_debiased(conf, ok, k);
    }
    free(v);
    free(conf);
    free(ok);
}

static void figures(const eval_run *r, eval_figures *fg)
{
    memset(fg, 0, sizeof(*fg));
    double ok = 0, lok = 0, cok = 0, esc = 0;
    for (size_t i = 0; i < r->n; i++) {
        const eval_row *e = &r->rows[i];
        const ec_calib_sample *s = &r->s[i];
        fg->n++;
        ok += e->correct;
        lok += s->local_correct;
        cok += s->cloud_correct;
        esc += !e->served_local;
        fg->mismatches += e->mismatch;
        fg->cost_usd += s->local_cost + (e->served_local ? 0 : s->cloud_cost);
        fg->cost_all_cloud_usd += s->cloud_cost;
        fg->cost_all_local_usd += s->local_cost;
    }
    double n = fg->n ? (double)fg->n : 1;
    fg->accuracy = ok / n;
    fg->local_accuracy = lok / n;
    fg->cloud_accuracy = cok / n;
    fg->escalation_rate = esc / n;
    fg->savings = fg->cost_all_cloud_usd > 0 ? 1 - fg->cost_usd / fg->cost_all_cloud_usd : 0;
    double share = fg->cloud_accuracy > 0 ? fg->accuracy / fg->cloud_accuracy : 1;
    fg->hindsight_escalation_rate = ec_calib_hindsight(r->s, r->n, share);
    fg->hindsight_target_escalation_rate = ec_calib_hindsight(r->s, r->n, r->o->target);
    fg->target_reached = fg->accuracy >= r->o->target * fg->cloud_accuracy - 1e-12;
    calibration_errors(r, fg);
}

static void print_figures(const eval_run *r, const eval_figures *fg)
{
    const eval_opts *o = r->o;
    if (o->json) {
        json_t *j = json_pack(
            "{s:s, s:s, s:s, s:s, s:s, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, s:f, "
            "s:f, s:f, s:b, s:I}",
            "corpus", o->corpus, "local", o->local, "cloud", o->cloud, "path",
            o->offline ? "offline" : "services", "calibration",
            o->calibration ? o->calibration : "cross-fitted", "n", (json_int_t)fg->n, "target",
            o->target, "accuracy", fg->accuracy, "local_accuracy", fg->local_accuracy,
            "cloud_accuracy", fg->cloud_accuracy, "escalation_rate", fg->escalation_rate,
            "cost_usd", fg->cost_usd, "cost_all_cloud_usd", fg->cost_all_cloud_usd,
            "cost_all_local_usd", fg->cost_all_local_usd, "savings", fg->savings,
            "hindsight_escalation_rate", fg->hindsight_escalation_rate,
            "hindsight_target_escalation_rate", fg->hindsight_target_escalation_rate, "ece",
            fg->ece, "target_reached", fg->target_reached, "mismatches",
            (json_int_t)fg->mismatches);
        json_object_set_new(j, "folds", json_integer((json_int_t)n_folds(r)));
        json_object_set_new(j, "ece_equal_mass", json_real(fg->ece_equal_mass));
        json_object_set_new(j, "ece_floor", json_real(fg->ece_floor));
        json_object_set_new(j, "ce_l2_debiased", json_real(fg->ce_l2_debiased));
        if (!o->calibration) {
            json_object_set_new(j, "method", json_string(ec_calib_method_name(o->method)));
            json_object_set_new(j, "margin", json_real(o->margin));
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(6));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
        return;
    }
    printf("eval of %s -> %s on %s (%zu rows, %s, %s)\n", o->local, o->cloud, o->corpus, fg->n,
           o->offline ? "offline" : "through the services",
           o->calibration ? o->calibration : "cross-fitted calibration");
    if (!o->calibration)
        printf("map                 %s, threshold margin %.2f sd\n",
               ec_calib_method_name(o->method), o->margin);
    printf("accuracy            %6.1f %%  (%.1f %% of cloud; target %.1f %%: %s)\n",
           100 * fg->accuracy,
           100 * (fg->cloud_accuracy > 0 ? fg->accuracy / fg->cloud_accuracy : 1), 100 * o->target,
           fg->target_reached ? "reached" : "missed");
    printf("always local        %6.1f %%\n", 100 * fg->local_accuracy);
    printf("always cloud        %6.1f %%\n", 100 * fg->cloud_accuracy);
    printf("escalation          %6.1f %%  (hindsight-best for this accuracy %.1f %%, for the "
           "target %.1f %%)\n",
           100 * fg->escalation_rate, 100 * fg->hindsight_escalation_rate,
           100 * fg->hindsight_target_escalation_rate);
    printf("cost                %.6f USD  (always cloud %.6f, always local %.6f; savings %.1f "
           "%%)\n",
           fg->cost_usd, fg->cost_all_cloud_usd, fg->cost_all_local_usd, 100 * fg->savings);
    printf("ece                 %.4f  (10 equal-width bins, calibrated confidence of the local "
           "drafts; equal-mass bins %.4f; a perfectly calibrated gate would show %.4f here)\n",
           fg->ece, fg->ece_equal_mass, fg->ece_floor);
    printf("ce_l2_debiased      %.4f  (debiased L2 calibration error, equal-mass bins, Kumar et "
           "al. 2019; bounds the ECE from above)\n",
           fg->ce_l2_debiased);
    if (fg->mismatches)
        printf("mismatches          %zu served answers matched no recorded answer\n",
               fg->mismatches);
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
    if (o.offline ? run_offline(&r, &err) : run_real(&r, &err))
        goto fail;
    eval_figures fg;
    figures(&r, &fg);
    print_figures(&r, &fg);
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
