/* edgecascade eval: what its three files share (cmd_eval.c: the options, the
 * calibrations, the offline path, the gate's speed and the command itself;
 * cmd_eval_real.c: the path through the services; cmd_eval_figures.c: the
 * figures and their report). Private to services/cli. */
#ifndef CLI_CMD_EVAL_H
#define CLI_CMD_EVAL_H

#include <stdbool.h>
#include <stddef.h>

#include "edgecascade/calib.h"
#include "edgecascade/err.h"
#include "launch.h"

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

typedef struct eval_figures {
    size_t n, mismatches;
    double accuracy, local_accuracy, cloud_accuracy, escalation_rate;
    double cost_usd, cost_all_cloud_usd, cost_all_local_usd, savings;
    double hindsight_escalation_rate, hindsight_target_escalation_rate, ece;
    double ece_equal_mass, ece_floor, ce_l2_debiased;
    bool target_reached;
} eval_figures;

/* Folds of the cross-fitting: 1 with a given calibration. */
static inline size_t eval_n_folds(const eval_run *r)
{
    return r->o->calibration ? 1 : (size_t)r->o->folds;
}

/* Whether row i is answered in fold f (row i is in fold i mod k). */
static inline bool eval_in_fold(const eval_run *r, size_t i, size_t f)
{
    return eval_n_folds(r) == 1 || i % eval_n_folds(r) == f;
}

/* ---- cmd_eval.c ---- */

/* The config of the gate (and, on the real path, of the services) for one
 * fold, as YAML; NULL when out of memory. */
char *eval_config_yaml(const eval_run *r, size_t fold);
/* Records in out what serving answer for row means: correct when it is the
 * recorded answer of the model that served it, a mismatch when it is
 * neither recorded answer. */
void eval_judge_served(eval_row *out, const ec_corpus_row *row, const char *local,
                       const char *cloud, bool served_local, const char *answer);

/* ---- cmd_eval_real.c ---- */

/* Every fold through a private broker, the simulator and the services. */
ec_err eval_run_real(eval_run *r, ec_error *err);

/* ---- cmd_eval_figures.c ---- */

void eval_compute_figures(const eval_run *r, eval_figures *fg);
/* As JSON (--json) or as text, to stdout. */
void eval_print_figures(const eval_run *r, const eval_figures *fg);

#endif
