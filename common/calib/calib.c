/* Calibration: isotonic fit, the cascade curve, threshold choice and the
 * calibration file. See edgecascade/calib.h for the model. */
#include "edgecascade/calib.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

const char *const ec_calib_preset_names[EC_CALIB_PRESETS] = {"aggressive", "balanced",
                                                             "conservative"};

#define CURVE_STEP 0.05

int ec_calib_preset_index(const char *name)
{
    for (int i = 0; name && i < EC_CALIB_PRESETS; i++)
        if (strcmp(name, ec_calib_preset_names[i]) == 0)
            return i;
    return -1;
}

/* ---- isotonic regression ---- */

typedef struct block {
    double sx, sy, w;
} block;

typedef struct pair {
    double x, y;
} pair;

static int cmp_pair(const void *a, const void *b)
{
    const pair *p = a, *q = b;
    if (p->x != q->x)
        return p->x < q->x ? -1 : 1;
    /* y too, so the sort (and the sums below) do not depend on input order */
    return p->y < q->y ? -1 : p->y > q->y;
}

ec_err ec_calib_isotonic(const double *x, const double *y, size_t n, double **kx, double **ky,
                         size_t *nk, ec_error *err)
{
    ec_err rc = EC_OK;
    *kx = *ky = NULL;
    *nk = 0;
    if (n == 0)
        return ec_error_set(err, EC_ERR_INVAL, "calibration: no samples");
    pair *p = malloc(n * sizeof(*p));
    block *st = malloc(n * sizeof(*st));
    if (!p || !st) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            rc = ec_error_set(err, EC_ERR_INVAL, "calibration: sample %zu is not a number", i);
            goto out;
        }
        p[i] = (pair){x[i], y[i]};
    }
    qsort(p, n, sizeof(*p), cmp_pair);
    /* Pool adjacent violators; equal x values start as one block (ties), and
     * equal means are pooled too, so the knots rise strictly. */
    size_t top = 0;
    for (size_t i = 0; i < n;) {
        block b = {0, 0, 0};
        size_t j = i;
        for (; j < n && p[j].x == p[i].x; j++) {
            b.sx += p[j].x;
            b.sy += p[j].y;
            b.w += 1;
        }
        i = j;
        st[top++] = b;
        while (top >= 2 && st[top - 2].sy / st[top - 2].w >= st[top - 1].sy / st[top - 1].w) {
            st[top - 2].sx += st[top - 1].sx;
            st[top - 2].sy += st[top - 1].sy;
            st[top - 2].w += st[top - 1].w;
            top--;
        }
    }
    *kx = malloc(top * sizeof(double));
    *ky = malloc(top * sizeof(double));
    if (!*kx || !*ky) {
        free(*kx);
        free(*ky);
        *kx = *ky = NULL;
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (size_t b = 0; b < top; b++) {
        (*kx)[b] = st[b].sx / st[b].w;
        (*ky)[b] = st[b].sy / st[b].w;
    }
    *nk = top;
out:
    free(p);
    free(st);
    return rc;
}

double ec_calib_interp(const double *kx, const double *ky, size_t nk, double x)
{
    if (nk == 0)
        return x;
    if (isnan(x) || x <= kx[0])
        return ky[0];
    if (x >= kx[nk - 1])
        return ky[nk - 1];
    size_t lo = 0, hi = nk - 1; /* kx[lo] < x < kx[hi] */
    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;
        if (kx[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    double f = (x - kx[lo]) / (kx[hi] - kx[lo]);
    return ky[lo] + f * (ky[hi] - ky[lo]);
}

double ec_calib_apply(const ec_calib *c, double raw)
{
    return ec_calib_interp(c->kx, c->ky, c->nk, raw);
}

/* ---- Platt scaling ---- */

static const char *const method_names[] = {"platt", "isotonic"};

const char *ec_calib_method_name(ec_calib_method m)
{
    return m == EC_CALIB_ISOTONIC ? method_names[1] : method_names[0];
}

int ec_calib_method_index(const char *name)
{
    for (int i = 0; name && i < 2; i++)
        if (strcmp(name, method_names[i]) == 0)
            return i;
    return -1;
}

static double clipped_logit(double x)
{
    if (!(x >= EC_CALIB_PLATT_EPS)) /* NaN too */
        x = EC_CALIB_PLATT_EPS;
    if (x > 1 - EC_CALIB_PLATT_EPS)
        x = 1 - EC_CALIB_PLATT_EPS;
    return log(x / (1 - x));
}

static double sigmoid(double z)
{
    return z >= 0 ? 1 / (1 + exp(-z)) : exp(z) / (1 + exp(z));
}

double ec_calib_platt_value(double a, double b, double raw)
{
    return sigmoid(a + b * clipped_logit(raw));
}

/* Negative log-likelihood of soft targets t at (a, b), with a light ridge on
 * b so that separable data (every wrong draft below every right one) keeps a
 * finite slope. */
#define PLATT_RIDGE 1e-3

static double platt_loss(const pair *p, size_t n, double a, double b)
{
    double f = 0.5 * PLATT_RIDGE * b * b;
    for (size_t i = 0; i < n; i++) {
        double z = a + b * p[i].x;
        /* log(1 + exp(-z)) and log(1 + exp(z)), stable on both sides */
        double lp = z >= 0 ? log1p(exp(-z)) : -z + log1p(exp(z));
        double ln = z >= 0 ? z + log1p(exp(-z)) : log1p(exp(z));
        f += p[i].y * lp + (1 - p[i].y) * ln;
    }
    return f;
}

ec_err ec_calib_platt(const double *x, const double *y, size_t n, double *a, double *b,
                      ec_error *err)
{
    *a = *b = 0;
    if (n == 0)
        return ec_error_set(err, EC_ERR_INVAL, "calibration: no samples");
    pair *p = malloc(n * sizeof(*p));
    if (!p)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    double pos = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(x[i]) || !isfinite(y[i])) {
            free(p);
            return ec_error_set(err, EC_ERR_INVAL, "calibration: sample %zu is not a number", i);
        }
        p[i] = (pair){clipped_logit(x[i]), y[i] >= 0.5 ? 1.0 : 0.0};
        pos += p[i].y;
    }
    /* sorted, so the sums (and the file) do not depend on the input order */
    qsort(p, n, sizeof(*p), cmp_pair);
    double neg = (double)n - pos, hi = (pos + 1) / (pos + 2), lo = 1 / (neg + 2);
    for (size_t i = 0; i < n; i++)
        p[i].y = p[i].y > 0.5 ? hi : lo;
    /* Newton's method with step halving (Lin, Lin and Weng's Platt): the loss
     * is convex, so this converges from the base rate. */
    double ca = log((pos + 1) / (neg + 1)), cb = 0, f = platt_loss(p, n, ca, cb);
    for (int it = 0; it < 100; it++) {
        double ga = 0, gb = PLATT_RIDGE * cb, haa = 1e-12, hab = 0, hbb = PLATT_RIDGE;
        for (size_t i = 0; i < n; i++) {
            double q = sigmoid(ca + cb * p[i].x), d = q - p[i].y, w = q * (1 - q);
            ga += d;
            gb += d * p[i].x;
            haa += w;
            hab += w * p[i].x;
            hbb += w * p[i].x * p[i].x;
        }
        double det = haa * hbb - hab * hab;
        if (!(det > 0) || (fabs(ga) < 1e-10 && fabs(gb) < 1e-10))
            break;
        double da = (hbb * ga - hab * gb) / det, db = (haa * gb - hab * ga) / det;
        double step = 1, nf = f;
        /* Backtracking line search: halving from 1 ends after at most 34 steps. */
        // NOLINTNEXTLINE(cert-flp30-c,clang-analyzer-security.FloatLoopCounter)
        for (; step > 1e-10; step /= 2) {
            nf = platt_loss(p, n, ca - step * da, cb - step * db);
            if (nf <= f - 1e-4 * step * (ga * da + gb * db)) /* Armijo */
                break;
        }
        if (step <= 1e-10)
            break;
        ca -= step * da;
        cb -= step * db;
        f = nf;
    }
    if (!(cb > 0)) { /* no usable rise: the smoothed base rate everywhere */
        double t = 0;
        for (size_t i = 0; i < n; i++)
            t += p[i].y;
        t /= (double)n;
        ca = log(t / (1 - t));
        cb = 0;
    }
    free(p);
    *a = ca;
    *b = cb;
    return EC_OK;
}

/* Platt's curve as knots, evenly spaced in logit(raw) over the clipped range:
 * linear interpolation then stays within about 1e-3 of the curve, and the
 * router's lookup stays a short binary search. A flat curve is one knot. */
#define PLATT_KNOTS 129

static ec_err platt_knots(ec_calib *c, ec_error *err)
{
    size_t nk = c->platt_b > 0 ? PLATT_KNOTS : 1;
    c->kx = malloc(nk * sizeof(double));
    c->ky = malloc(nk * sizeof(double));
    if (!c->kx || !c->ky)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    double lo = clipped_logit(0), hi = clipped_logit(1);
    for (size_t i = 0; i < nk; i++) {
        double u = nk == 1 ? 0 : lo + (hi - lo) * (double)i / (double)(nk - 1);
        c->kx[i] = nk == 1 ? 0.5 : sigmoid(u);
        c->ky[i] = ec_calib_platt_value(c->platt_a, c->platt_b, c->kx[i]);
        if (i && c->ky[i] < c->ky[i - 1]) /* rounding must not break monotony */
            c->ky[i] = c->ky[i - 1];
    }
    c->kx[0] = nk == 1 ? 0.5 : 0; /* the curve is flat below the clip anyway */
    if (nk > 1)
        c->kx[nk - 1] = 1;
    c->nk = nk;
    return EC_OK;
}

/* ---- the cascade on samples ---- */

static double cloud_accuracy(const ec_calib_sample *s, size_t n)
{
    double k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i].cloud_correct;
    return n ? k / (double)n : 0;
}

void ec_calib_evaluate(const ec_calib *c, const ec_calib_sample *s, size_t n, double t,
                       ec_calib_point *out)
{
    double esc = 0, ok = 0, cost = 0, cloud_cost = 0;
    for (size_t i = 0; i < n; i++) {
        bool accept = ec_calib_apply(c, s[i].raw) >= t;
        cost += s[i].local_cost;
        cloud_cost += s[i].cloud_cost;
        if (accept) {
            ok += s[i].local_correct;
        } else {
            esc += 1;
            ok += s[i].cloud_correct;
            cost += s[i].cloud_cost;
        }
    }
    double ca = cloud_accuracy(s, n);
    out->threshold = t;
    out->escalation = n ? esc / (double)n : 0;
    out->accuracy = n ? ok / (double)n : 0;
    out->acc_vs_cloud = ca > 0 ? out->accuracy / ca : 1.0;
    out->cost_usd = cost;
    out->cost_vs_cloud = cloud_cost > 0 ? cost / cloud_cost : 0;
}

typedef struct scored {
    double q;
    const ec_calib_sample *s;
} scored;

static int cmp_scored_desc(const void *a, const void *b)
{
    const scored *p = a, *q = b;
    if (p->q != q->q)
        return p->q > q->q ? -1 : 1;
    return 0;
}

/* Accepting the k best-scored samples (k at a tie boundary), the largest k
 * whose accuracy reaches need; -1 when none, not even k = 0. local(i) is the
 * local draft's correctness as counted: a label, or a calibrated estimate. */
static long best_k(const scored *v, size_t n, double need, bool expected, double z)
{
    double rest = 0; /* cloud correct among the escalated */
    for (size_t i = 0; i < n; i++)
        rest += v[i].s->cloud_correct;
    double acc_local = 0, var = 0;
    long best = rest >= need * (double)n - 1e-9 ? 0 : -1;
    for (size_t k = 1; k <= n; k++) {
        const scored *e = &v[k - 1];
        acc_local += expected ? e->q : (double)e->s->local_correct;
        if (expected)
            var += e->q * (1 - e->q);
        rest -= e->s->cloud_correct;
        if (k < n && v[k].q == e->q)
            continue; /* a threshold cannot split ties */
        if (acc_local - z * sqrt(var) + rest >= need * (double)n - 1e-9)
            best = (long)k;
    }
    return best;
}

static scored *score_all(const ec_calib *c, const ec_calib_sample *s, size_t n)
{
    scored *v = malloc((n ? n : 1) * sizeof(*v));
    if (!v)
        return NULL;
    for (size_t i = 0; i < n; i++)
        v[i] = (scored){c ? ec_calib_apply(c, s[i].raw) : s[i].raw, &s[i]};
    qsort(v, n, sizeof(*v), cmp_scored_desc);
    return v;
}

double ec_calib_pick(const ec_calib *c, const ec_calib_sample *s, size_t n, double target)
{
    return ec_calib_pick_margin(c, s, n, target, 0);
}

double ec_calib_pick_margin(const ec_calib *c, const ec_calib_sample *s, size_t n, double target,
                            double z)
{
    scored *v = score_all(c, s, n);
    if (!v || n == 0) {
        free(v);
        return 1.0;
    }
    /* The local side counts the calibrated probability rather than the label:
     * the choice then follows the fitted curve instead of the last few lucky
     * or unlucky labels near the cut, which is what carries to new data. */
    long k = best_k(v, n, target * cloud_accuracy(s, n), true, z > 0 ? z : 0);
    double t;
    if (k <= 0) /* escalate everything */
        t = v[0].q + 1e-6;
    else if ((size_t)k == n) /* accept everything */
        t = v[n - 1].q > 1e-6 ? v[n - 1].q - 1e-6 : 0;
    else /* midway: robust to the last bit of floating point on the way */
        t = (v[k - 1].q + v[k].q) / 2;
    free(v);
    return t;
}

double ec_calib_hindsight(const ec_calib_sample *s, size_t n, double target)
{
    scored *v = score_all(NULL, s, n);
    if (!v || n == 0) {
        free(v);
        return 1.0;
    }
    long k = best_k(v, n, target * cloud_accuracy(s, n), false, 0);
    free(v);
    return k < 0 ? 1.0 : (double)(n - (size_t)k) / (double)n;
}

/* ---- fit ---- */

void ec_calib_free(ec_calib *c)
{
    if (!c)
        return;
    free(c->feature);
    free(c->local_model);
    free(c->cloud_model);
    free(c->source);
    free(c->kx);
    free(c->ky);
    free(c->curve);
    free(c->method);
    memset(c, 0, sizeof(*c));
}

static void preset_targets(double target, double out[EC_CALIB_PRESETS])
{
    out[0] = target > 0.05 ? target - 0.05 : 0;
    out[1] = target;
    out[2] = target + (1 - target) / 2;
}

static ec_err make_curve(ec_calib *c, const ec_calib_sample *s, size_t n, ec_error *err)
{
    size_t steps = (size_t)lround(1.0 / CURVE_STEP) + 1;
    c->curve = calloc(steps, sizeof(*c->curve));
    if (!c->curve)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < steps; i++)
        ec_calib_evaluate(c, s, n, (double)i * CURVE_STEP, &c->curve[i]);
    c->n_curve = steps;
    return EC_OK;
}

ec_err ec_calib_fit(const ec_calib_sample *s, size_t n, double target, ec_calib *out, ec_error *err)
{
    ec_calib_fit_opts o = {
        .method = EC_CALIB_PLATT, .target = target, .margin_z = EC_CALIB_MARGIN_Z};
    return ec_calib_fit_with(s, n, &o, out, err);
}

ec_err ec_calib_fit_with(const ec_calib_sample *s, size_t n, const ec_calib_fit_opts *o,
                         ec_calib *out, ec_error *err)
{
    ec_err rc;
    double target = o->target, z = o->margin_z;
    memset(out, 0, sizeof(*out));
    if (n == 0)
        return ec_error_set(err, EC_ERR_INVAL, "calibration: no samples");
    if (!(target > 0 && target <= 1))
        return ec_error_set(err, EC_ERR_INVAL, "calibration: target must be in (0, 1]");
    if (!(z >= 0 && z <= 10))
        return ec_error_set(err, EC_ERR_INVAL, "calibration: margin must be in [0, 10]");
    double *x = malloc(n * sizeof(double)), *y = malloc(n * sizeof(double));
    if (!x || !y) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    double lok = 0;
    for (size_t i = 0; i < n; i++) {
        x[i] = s[i].raw;
        y[i] = s[i].local_correct ? 1.0 : 0.0;
        lok += y[i];
    }
    out->method = strdup(ec_calib_method_name(o->method));
    out->feature = strdup(EC_CALIB_FEATURE);
    if (!out->method || !out->feature) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (o->method == EC_CALIB_ISOTONIC)
        rc = ec_calib_isotonic(x, y, n, &out->kx, &out->ky, &out->nk, err);
    else if (!(rc = ec_calib_platt(x, y, n, &out->platt_a, &out->platt_b, err)))
        rc = platt_knots(out, err);
    if (rc)
        goto out;
    out->version = EC_CALIB_VERSION;
    out->margin_z = z;
    out->n_samples = n;
    out->local_accuracy = lok / (double)n;
    out->cloud_accuracy = cloud_accuracy(s, n);
    out->target = target;
    out->threshold = ec_calib_pick_margin(out, s, n, target, z);
    preset_targets(target, out->preset_target);
    for (int p = 0; p < EC_CALIB_PRESETS; p++)
        out->preset_threshold[p] =
            p == 1 ? out->threshold : ec_calib_pick_margin(out, s, n, out->preset_target[p], z);
    rc = make_curve(out, s, n, err);
out:
    free(x);
    free(y);
    if (rc)
        ec_calib_free(out);
    return rc;
}

/* ---- the file ---- */

ec_err ec_calib_save(const ec_calib *c, const char *path, ec_error *err)
{
    json_t *knots = json_array(), *curve = json_array(), *presets = json_object();
    for (size_t i = 0; i < c->nk; i++)
        json_array_append_new(knots, json_pack("[f, f]", c->kx[i], c->ky[i]));
    for (size_t i = 0; i < c->n_curve; i++) {
        const ec_calib_point *p = &c->curve[i];
        json_array_append_new(curve,
                              json_pack("{s:f, s:f, s:f, s:f, s:f, s:f}", "threshold", p->threshold,
                                        "escalation", p->escalation, "accuracy", p->accuracy,
                                        "acc_vs_cloud", p->acc_vs_cloud, "cost_usd", p->cost_usd,
                                        "cost_vs_cloud", p->cost_vs_cloud));
    }
    for (int i = 0; i < EC_CALIB_PRESETS; i++)
        json_object_set_new(presets, ec_calib_preset_names[i],
                            json_pack("{s:f, s:f}", "target", c->preset_target[i], "threshold",
                                      c->preset_threshold[i]));
    json_t *root = json_pack(
        "{s:i, s:s, s:s?, s:s?, s:s?, s:I, s:f, s:f, s:f, s:f, s:o, s:o, s:o}", "version",
        EC_CALIB_VERSION, "feature", EC_CALIB_FEATURE, "local_model", c->local_model, "cloud_model",
        c->cloud_model, "source", c->source, "samples", (json_int_t)c->n_samples, "local_accuracy",
        c->local_accuracy, "cloud_accuracy", c->cloud_accuracy, "target", c->target, "threshold",
        c->threshold, "presets", presets, "knots", knots, "curve", curve);
    if (!root)
        return ec_error_set(err, EC_ERR_NOMEM, "calibration: cannot build the JSON");
    /* beside version 1's keys, so that older readers take the file as it is */
    json_object_set_new(root, "method", json_string(c->method ? c->method : "isotonic"));
    json_object_set_new(root, "margin_z", json_real(c->margin_z));
    if (c->method && strcmp(c->method, "platt") == 0)
        json_object_set_new(root, "platt",
                            json_pack("{s:f, s:f}", "a", c->platt_a, "b", c->platt_b));
    int bad = json_dump_file(root, path, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (bad)
        return ec_error_set(err, EC_ERR_IO, "%s: cannot write the calibration file", path);
    return EC_OK;
}

static bool get_num(json_t *o, const char *key, double lo, double hi, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return isfinite(*out) && *out >= lo && *out <= hi;
}

static char *get_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static ec_err load_json(const char *path, json_t *root, ec_calib *c, ec_error *err)
{
#define BAD(...) ec_error_set(err, EC_ERR_INVAL, __VA_ARGS__)
    if (!json_is_object(root))
        return BAD("%s: not a calibration file (expected a JSON object)", path);
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver) || json_integer_value(ver) != EC_CALIB_VERSION)
        return BAD("%s: version: expected %d", path, EC_CALIB_VERSION);
    c->version = EC_CALIB_VERSION;
    const char *feat = json_string_value(json_object_get(root, "feature"));
    if (!feat || strcmp(feat, EC_CALIB_FEATURE) != 0)
        return BAD("%s: feature: expected \"%s\" (refit with this version's calibrate)", path,
                   EC_CALIB_FEATURE);
    c->feature = strdup(feat);
    c->local_model = get_str(root, "local_model");
    c->cloud_model = get_str(root, "cloud_model");
    c->source = get_str(root, "source");
    const char *method = json_string_value(json_object_get(root, "method"));
    if (method && ec_calib_method_index(method) < 0)
        return BAD("%s: method: expected \"platt\" or \"isotonic\"", path);
    c->method = strdup(method ? method : "isotonic");
    get_num(root, "margin_z", 0, 10, &c->margin_z);
    json_t *platt = json_object_get(root, "platt");
    if (platt &&
        (!get_num(platt, "a", -1e6, 1e6, &c->platt_a) || !get_num(platt, "b", 0, 1e6, &c->platt_b)))
        return BAD("%s: platt: expected {a, b >= 0}", path);
    if (!get_num(root, "target", 1e-9, 1, &c->target))
        return BAD("%s: target: expected a number in (0, 1]", path);
    if (!get_num(root, "threshold", 0, 2, &c->threshold))
        return BAD("%s: threshold: expected a number in [0, 2]", path);
    double v;
    if (get_num(root, "samples", 0, 1e12, &v))
        c->n_samples = (size_t)v;
    get_num(root, "local_accuracy", 0, 1, &c->local_accuracy);
    get_num(root, "cloud_accuracy", 0, 1, &c->cloud_accuracy);
    json_t *knots = json_object_get(root, "knots");
    size_t nk = json_array_size(knots);
    if (nk == 0)
        return BAD("%s: knots: expected a non-empty array of [raw, probability]", path);
    c->kx = malloc(nk * sizeof(double));
    c->ky = malloc(nk * sizeof(double));
    if (!c->kx || !c->ky)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < nk; i++) {
        json_t *k = json_array_get(knots, i);
        json_t *x = json_array_get(k, 0), *y = json_array_get(k, 1);
        if (json_array_size(k) != 2 || !json_is_number(x) || !json_is_number(y))
            return BAD("%s: knots[%zu]: expected [raw, probability]", path, i);
        c->kx[i] = json_number_value(x);
        c->ky[i] = json_number_value(y);
        if (!(c->kx[i] >= 0 && c->kx[i] <= 1 && c->ky[i] >= 0 && c->ky[i] <= 1))
            return BAD("%s: knots[%zu]: values must lie in [0, 1]", path, i);
        if (i && !(c->kx[i] > c->kx[i - 1] && c->ky[i] >= c->ky[i - 1]))
            return BAD("%s: knots[%zu]: raw must rise and probability must not fall", path, i);
    }
    c->nk = nk;
    json_t *presets = json_object_get(root, "presets");
    for (int i = 0; i < EC_CALIB_PRESETS; i++) {
        json_t *p = json_object_get(presets, ec_calib_preset_names[i]);
        if (!get_num(p, "threshold", 0, 2, &c->preset_threshold[i]) ||
            !get_num(p, "target", 0, 1, &c->preset_target[i]))
            return BAD("%s: presets.%s: expected {target, threshold}", path,
                       ec_calib_preset_names[i]);
    }
    json_t *curve = json_object_get(root, "curve");
    size_t nc = json_array_size(curve);
    c->curve = nc ? calloc(nc, sizeof(*c->curve)) : NULL;
    for (size_t i = 0; i < nc && c->curve; i++) {
        json_t *p = json_array_get(curve, i);
        ec_calib_point *q = &c->curve[i];
        if (!get_num(p, "threshold", 0, 2, &q->threshold) ||
            !get_num(p, "escalation", 0, 1, &q->escalation) ||
            !get_num(p, "accuracy", 0, 1, &q->accuracy) ||
            !get_num(p, "acc_vs_cloud", 0, 1e9, &q->acc_vs_cloud) ||
            !get_num(p, "cost_usd", 0, 1e12, &q->cost_usd) ||
            !get_num(p, "cost_vs_cloud", 0, 1e12, &q->cost_vs_cloud))
            return BAD("%s: curve[%zu]: expected threshold, escalation, accuracy, acc_vs_cloud, "
                       "cost_usd, cost_vs_cloud",
                       path, i);
        c->n_curve = i + 1;
    }
    return EC_OK;
#undef BAD
}

ec_err ec_calib_load(const char *path, ec_calib *out, ec_error *err)
{
    memset(out, 0, sizeof(*out));
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root)
        return ec_error_set(err, EC_ERR_INVAL, "%s:%d: not JSON: %s", path, je.line, je.text);
    ec_err rc = load_json(path, root, out, err);
    json_decref(root);
    if (rc)
        ec_calib_free(out);
    return rc;
}
