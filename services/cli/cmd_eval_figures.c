/* edgecascade eval, the figures: accuracy against always-local and
 * always-cloud, escalation rate and its hindsight best, cost and savings, and
 * how well the gate's confidences are calibrated (ECE with equal-width and
 * equal-mass bins, the ECE a perfectly calibrated gate would show on as many
 * rows, and the debiased L2 calibration error), printed as text or JSON.
 * Apart from cmd_eval.c because it is arithmetic on the finished rows only. */
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd_eval.h"
#include "edgecascade/calib.h"

#define ECE_BINS 10

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

void eval_compute_figures(const eval_run *r, eval_figures *fg)
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

void eval_print_figures(const eval_run *r, const eval_figures *fg)
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
        json_object_set_new(j, "folds", json_integer((json_int_t)eval_n_folds(r)));
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
