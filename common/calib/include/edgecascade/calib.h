/* Calibration of the quality gate: a monotone map from the gate's raw signal
 * to the probability that a local draft is correct, fitted on recorded
 * answers, and the threshold on that probability that keeps the cascade at a
 * target share of the cloud tier's accuracy with the fewest escalations.
 *
 * The default fit is Platt scaling on logit(raw): p = 1 / (1 + exp(-(a + b
 * logit(raw)))), b >= 0, fitted by maximum likelihood on Platt's smoothed
 * labels ((N+ + 1) / (N+ + 2) for a right draft, 1 / (N- + 2) for a wrong
 * one), so that all-right or all-wrong corpora still give finite, honest
 * probabilities. Two parameters carry to new data far better than isotonic
 * regression does on ~150 rows. The alternative (method "isotonic") is
 * pool-adjacent-violators on the raw signal with ties pooled first,
 * interpolated linearly between the centres of the pooled blocks. Either way
 * the file holds knots of a non-decreasing piecewise-linear map (Platt's
 * curve tabulated densely), so the router applies both alike and files of
 * either kind load in any version that reads version 1.
 *
 * The threshold is chosen with a safety margin: the cascade's expected
 * accuracy on the fitting rows, less margin_z standard deviations of the
 * number of right drafts among those accepted (binomial, sum of p (1 - p)),
 * must reach the target; on held-out rows a threshold chosen without it falls
 * short about half of the time. Everything is deterministic: the same
 * samples, in any order, give the same file.
 *
 * Also here: the corpus of recorded answers (JSON lines, one prompt per line,
 * answers of several models), shared by `edgecascade calibrate`, `eval` and
 * the simulator's replay mode. */
#ifndef EC_CALIB_H
#define EC_CALIB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/err.h"

#define EC_CALIB_VERSION 1
/* The raw signal the calibration was fitted on; a file naming another one is
 * refused, so a changed gate cannot silently use a stale mapping. */
#define EC_CALIB_FEATURE "gate-raw-v1"

/* ---- the corpus ---- */

typedef struct ec_corpus_answer {
    char *model;
    char *answer;
    bool correct;
    bool has_logprob;  /* false: confidence_logprob was null */
    double logprob;    /* natural-log confidence of the answer */
    double cost_usd;   /* 0 when not recorded */
    double latency_ms; /* 0 when not recorded */
    uint32_t tokens_in, tokens_out;
} ec_corpus_answer;

typedef struct ec_corpus_row {
    char *id;
    char *dataset; /* may be NULL */
    char *system;  /* may be NULL */
    char *prompt;
    ec_corpus_answer *answers;
    size_t n_answers;
} ec_corpus_row;

typedef struct ec_corpus {
    ec_corpus_row *rows;
    size_t n_rows;
} ec_corpus;

/* Reads a JSONL corpus. Errors name the file, line and field ("f.jsonl:3:
 * models.llama3.2-3b.correct: missing"); an empty file is an error. */
ec_err ec_corpus_load(const char *path, ec_corpus *out, ec_error *err);
void ec_corpus_free(ec_corpus *c);
/* The answer of model in row, or NULL. */
const ec_corpus_answer *ec_corpus_find(const ec_corpus_row *row, const char *model);
/* EC_ERR_NOTFOUND (message lists the models present) unless every row has an
 * answer of model. */
ec_err ec_corpus_check_model(const ec_corpus *c, const char *model, ec_error *err);
/* The raw gate signal a replayed answer produces: exp(logprob), 0 when the
 * logprob is null (lowest confidence: such drafts always escalate). */
double ec_corpus_raw(const ec_corpus_answer *a);

/* ---- fitting ---- */

/* One labelled draft. */
typedef struct ec_calib_sample {
    double raw;         /* the gate's raw signal, [0,1] */
    bool local_correct; /* the local draft was right */
    bool cloud_correct; /* the cloud answer was right */
    double local_cost;  /* USD of the local call (0 on a device) */
    double cloud_cost;  /* USD of the cloud call */
} ec_calib_sample;

/* Isotonic fit of y (0/1 or probabilities, weight 1 each) on x. Returns the
 * knots (x ascending, y non-decreasing), heap arrays owned by the caller. */
ec_err ec_calib_isotonic(const double *x, const double *y, size_t n, double **kx, double **ky,
                         size_t *nk, ec_error *err);
/* Piecewise-linear interpolation through the knots, flat beyond the ends. */
double ec_calib_interp(const double *kx, const double *ky, size_t nk, double x);

/* Platt scaling of y (0/1, weight 1 each) on logit(x) (x clipped to
 * [EC_CALIB_PLATT_EPS, 1 - EC_CALIB_PLATT_EPS]) with smoothed labels; b is
 * never negative (a signal that falls with correctness carries nothing the
 * gate can use: b = 0, the smoothed base rate). */
#define EC_CALIB_PLATT_EPS 1e-4
ec_err ec_calib_platt(const double *x, const double *y, size_t n, double *a, double *b,
                      ec_error *err);
/* The Platt curve's value at raw. */
double ec_calib_platt_value(double a, double b, double raw);

typedef struct ec_calib_point {
    double threshold;    /* on the calibrated confidence */
    double escalation;   /* share of queries sent on to the cloud */
    double accuracy;     /* of the cascade */
    double acc_vs_cloud; /* accuracy / always-cloud accuracy */
    double cost_usd;     /* total over the samples */
    double cost_vs_cloud;
} ec_calib_point;

#define EC_CALIB_PRESETS 3 /* aggressive, balanced, conservative */

typedef struct ec_calib {
    int version;
    char *feature;
    char *local_model;
    char *cloud_model;
    char *source; /* corpus path or "store:<db>" */
    double *kx, *ky;
    size_t nk;
    double target;    /* share of cloud accuracy asked for */
    double threshold; /* chosen: accept iff calibrated confidence >= threshold */
    double preset_target[EC_CALIB_PRESETS];
    double preset_threshold[EC_CALIB_PRESETS];
    size_t n_samples;
    double local_accuracy, cloud_accuracy;
    ec_calib_point *curve;
    size_t n_curve;
    /* added with Platt scaling; informative, the knots are what applies */
    char *method;            /* "platt" or "isotonic" (files without it: isotonic) */
    double platt_a, platt_b; /* method "platt" */
    double margin_z;         /* the threshold's safety margin, in standard deviations */
} ec_calib;

typedef enum ec_calib_method { EC_CALIB_PLATT = 0, EC_CALIB_ISOTONIC = 1 } ec_calib_method;
#define EC_CALIB_MARGIN_Z 1.0 /* default margin: about an 84 % one-sided bound */

typedef struct ec_calib_fit_opts {
    ec_calib_method method;
    double target;   /* (0, 1] */
    double margin_z; /* >= 0; 0: the expected accuracy alone */
} ec_calib_fit_opts;

/* "platt" / "isotonic" and back (-1 when unknown). */
const char *ec_calib_method_name(ec_calib_method m);
int ec_calib_method_index(const char *name);

extern const char *const ec_calib_preset_names[EC_CALIB_PRESETS];

/* Fits out from samples (n >= 1) for target in (0, 1]: Platt scaling and
 * the default margin (EC_CALIB_MARGIN_Z). */
ec_err ec_calib_fit(const ec_calib_sample *s, size_t n, double target, ec_calib *out,
                    ec_error *err);
/* The same with the method and margin chosen. */
ec_err ec_calib_fit_with(const ec_calib_sample *s, size_t n, const ec_calib_fit_opts *o,
                         ec_calib *out, ec_error *err);
/* Calibrated confidence of a raw signal. */
double ec_calib_apply(const ec_calib *c, double raw);
/* The cascade at threshold t on samples scored by c (the curve's rows). */
void ec_calib_evaluate(const ec_calib *c, const ec_calib_sample *s, size_t n, double t,
                       ec_calib_point *out);
/* The lowest threshold whose cascade (on calibrated scores of s) reaches
 * target x cloud accuracy with the fewest escalations; > every score when
 * nothing but escalating everything reaches it. */
double ec_calib_pick(const ec_calib *c, const ec_calib_sample *s, size_t n, double target);
/* The same, with the expected accuracy less z standard deviations of the
 * number of right drafts accepted (z = 0: ec_calib_pick). */
double ec_calib_pick_margin(const ec_calib *c, const ec_calib_sample *s, size_t n, double target,
                            double z);
/* Hindsight: the lowest escalation any single threshold on raw reaches with
 * accuracy >= target x cloud accuracy on s. */
double ec_calib_hindsight(const ec_calib_sample *s, size_t n, double target);
/* Index of a preset name, -1 when unknown. */
int ec_calib_preset_index(const char *name);

ec_err ec_calib_save(const ec_calib *c, const char *path, ec_error *err);
ec_err ec_calib_load(const char *path, ec_calib *out, ec_error *err);
void ec_calib_free(ec_calib *c);

#endif
