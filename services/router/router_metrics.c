/* Live metrics of the router; see router_metrics.h.
 *
 * Everything sits behind one mutex: the hook is a handful of additions and
 * copies into a preallocated ring slot, so a mutex held for well under a
 * microsecond costs less than the bookkeeping a lock-free ring of strings
 * would need. Formatting (JSON, Prometheus text) works on a snapshot taken
 * under the lock and never holds it. */
#include "router_metrics.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/util.h"

const char *const ec_metrics_kind_names[EC_METRICS_KINDS] = {"local", "cloud", "cache", "none"};

/* Fine enough at the bottom for local answers (a few ms) and wide enough at
 * the top for a slow cloud call or a deadline (60 s). */
const double ec_metrics_bounds_ms[EC_METRICS_BOUNDS] = {
    0.5, 1,   2,   3,   5,    7.5,  10,   15,    25,    50,    75,
    100, 150, 250, 500, 1000, 2500, 5000, 10000, 20000, 30000, 60000};

/* The wire's error codes (proto/README.md); anything else counts as "other". */
const char *const ec_metrics_error_names[EC_METRICS_ERRORS] = {
    "bad_request",       "too_large", "busy",    "timeout", "upstream", "unavailable",
    "deadline",          "queued",    "expired", "config",  "internal", "bad_response_topic",
    "identity_required", "other"};

typedef struct ring_slot {
    uint64_t ts_ms;
    char id[129];
    char asker[129];
    char tier[8];
    char tier_name[64];
    char model[96];
    char error[24];
    char reason[256];
    double confidence, threshold, latency_ms, cost_usd;
    bool escalated, degraded;
    uint32_t revision;
} ring_slot;

struct ec_metrics {
    pthread_mutex_t lock;
    ec_metrics_snap c; /* the counters, under lock */
    ring_slot ring[EC_METRICS_RING];
    size_t ring_next; /* slot the next decision goes to */
    size_t ring_n;    /* slots filled */
};

ec_err ec_metrics_create(ec_metrics **out, ec_error *err)
{
    ec_metrics *m = calloc(1, sizeof(*m));
    if (!m)
        return ec_error_set(err, EC_ERR_NOMEM, "metrics: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    m->c.started_ms = ec_now_ms();
    *out = m;
    return EC_OK;
}

void ec_metrics_destroy(ec_metrics *m)
{
    if (!m)
        return;
    pthread_mutex_destroy(&m->lock);
    free(m);
}

int ec_metrics_kind_index(const char *kind)
{
    for (int i = 0; kind && i < EC_METRICS_KINDS; i++)
        if (strcmp(kind, ec_metrics_kind_names[i]) == 0)
            return i;
    return -1;
}

static int error_index(const char *code)
{
    for (int i = 0; i < EC_METRICS_ERRORS - 1; i++)
        if (strcmp(code, ec_metrics_error_names[i]) == 0)
            return i;
    return EC_METRICS_ERRORS - 1;
}

/* Copies src into dst (size n), cut at a character boundary and with every
 * byte that is not part of valid UTF-8 replaced by '?': the ring is served as
 * JSON, and jansson refuses invalid UTF-8 (a model's error text may hold any
 * bytes). */
static void copy_text(char *dst, size_t n, const char *src)
{
    size_t o = 0;
    const unsigned char *s = (const unsigned char *)(src ? src : "");
    while (*s && o + 1 < n) {
        size_t len = *s < 0x80             ? 1
                     : (*s & 0xE0) == 0xC0 ? 2
                     : (*s & 0xF0) == 0xE0 ? 3
                     : (*s & 0xF8) == 0xF0 ? 4
                                           : 0;
        bool ok = len > 0 && !(len == 2 && *s < 0xC2) && !(len == 4 && *s > 0xF4);
        for (size_t k = 1; ok && k < len; k++)
            ok = (s[k] & 0xC0) == 0x80;
        if (!ok) {
            dst[o++] = '?';
            s++;
            continue;
        }
        if (o + len >= n)
            break; /* no room for the whole character */
        memcpy(dst + o, s, len);
        o += len;
        s += len;
    }
    dst[o] = '\0';
}

static size_t bucket_of(double ms)
{
    size_t i = 0;
    while (i < EC_METRICS_BOUNDS && ms > ec_metrics_bounds_ms[i])
        i++;
    return i;
}

void ec_metrics_seed(void *ctx, const char *tier_kind, const char *error_code, uint64_t n,
                     uint64_t escalated, uint64_t degraded, double cost_usd, double cost_top_usd)
{
    ec_metrics *m = ctx;
    int k = ec_metrics_kind_index(tier_kind);
    pthread_mutex_lock(&m->lock);
    m->c.queries += n;
    if (k >= 0)
        m->c.by_kind[k] += n;
    if (error_code && *error_code) {
        m->c.errors[error_index(error_code)] += n;
        m->c.errors_total += n;
    }
    m->c.escalated += escalated;
    m->c.degraded += degraded;
    m->c.cost_usd += cost_usd;
    m->c.cost_top_usd += cost_top_usd;
    pthread_mutex_unlock(&m->lock);
}

void ec_metrics_observe(ec_metrics *m, const ec_metrics_obs *o)
{
    if (!m)
        return;
    int k = o->tier ? ec_metrics_kind_index(o->tier) : EC_METRICS_KINDS - 1;
    if (k < 0)
        k = EC_METRICS_KINDS - 1; /* an unknown kind is no answer we can place */
    size_t b = bucket_of(o->latency_ms);
    pthread_mutex_lock(&m->lock);
    ec_metrics_snap *c = &m->c;
    c->cost_usd += o->cost_usd;
    c->copies_skipped += o->copy_skipped;
    if (o->revision >= 2) {
        c->revisions++;
    } else {
        c->queries++;
        c->by_kind[k]++;
        c->cost_top_usd += o->cost_top_usd;
        c->escalated += o->escalated;
        c->degraded += o->degraded;
        if (o->error_code) {
            c->errors[error_index(o->error_code)]++;
            c->errors_total++;
        }
        /* A revision's latency counts from the first arrival (minutes or
         * hours in the queue): it would only smear the histogram. */
        c->latency[k].buckets[b]++;
        c->latency[k].count++;
        c->latency[k].sum_ms += o->latency_ms;
    }
    ring_slot *s = &m->ring[m->ring_next];
    m->ring_next = (m->ring_next + 1) % EC_METRICS_RING;
    if (m->ring_n < EC_METRICS_RING)
        m->ring_n++;
    s->ts_ms = o->ts_ms;
    copy_text(s->id, sizeof(s->id), o->id);
    copy_text(s->asker, sizeof(s->asker), o->asker);
    copy_text(s->tier, sizeof(s->tier), o->tier);
    copy_text(s->tier_name, sizeof(s->tier_name), o->tier_name);
    copy_text(s->model, sizeof(s->model), o->model);
    copy_text(s->error, sizeof(s->error), o->error_code);
    copy_text(s->reason, sizeof(s->reason), o->reason);
    s->confidence = o->confidence;
    s->threshold = o->threshold;
    s->latency_ms = o->latency_ms;
    s->cost_usd = o->cost_usd;
    s->escalated = o->escalated;
    s->degraded = o->degraded;
    s->revision = o->revision ? o->revision : 1;
    pthread_mutex_unlock(&m->lock);
}

void ec_metrics_add_cost(ec_metrics *m, double usd)
{
    if (!m)
        return;
    pthread_mutex_lock(&m->lock);
    m->c.cost_usd += usd;
    pthread_mutex_unlock(&m->lock);
}

void ec_metrics_breaker_state(ec_metrics *m, const char *tier, const char *state, uint64_t since_ms,
                              const char *reason)
{
    if (!m || !tier || !state)
        return;
    pthread_mutex_lock(&m->lock);
    ec_metrics_snap *c = &m->c;
    size_t i = 0;
    while (i < c->n_breakers && strcmp(c->breakers[i].tier, tier) != 0)
        i++;
    if (i == c->n_breakers) {
        if (i == EC_METRICS_BREAKERS) { /* more tiers than the config allows: ignore */
            pthread_mutex_unlock(&m->lock);
            return;
        }
        c->n_breakers++;
        copy_text(c->breakers[i].tier, sizeof(c->breakers[i].tier), tier);
    }
    copy_text(c->breakers[i].state, sizeof(c->breakers[i].state), state);
    copy_text(c->breakers[i].reason, sizeof(c->breakers[i].reason), reason);
    c->breakers[i].since_ms = since_ms;
    pthread_mutex_unlock(&m->lock);
}

void ec_metrics_snapshot(ec_metrics *m, ec_metrics_snap *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->c;
    pthread_mutex_unlock(&m->lock);
    out->inflight = -1;
    out->waiting_local = -1;
}

double ec_metrics_quantile_ms(const ec_metrics_hist *h, double q)
{
    if (!h->count)
        return 0;
    double rank = q * (double)h->count;
    uint64_t below = 0;
    for (size_t i = 0; i <= EC_METRICS_BOUNDS; i++) {
        uint64_t n = h->buckets[i];
        if (n && (double)(below + n) >= rank) {
            if (i == EC_METRICS_BOUNDS)
                return ec_metrics_bounds_ms[EC_METRICS_BOUNDS - 1];
            double lo = i ? ec_metrics_bounds_ms[i - 1] : 0;
            double hi = ec_metrics_bounds_ms[i];
            double f = (rank - (double)below) / (double)n;
            return lo + (hi - lo) * (f < 0 ? 0 : f);
        }
        below += n;
    }
    return ec_metrics_bounds_ms[EC_METRICS_BOUNDS - 1];
}

double ec_metrics_savings_pct(const ec_metrics_snap *s)
{
    return s->cost_top_usd > 0 ? 100.0 * (1.0 - s->cost_usd / s->cost_top_usd) : 0;
}

/* ---- Prometheus ---- */

static void family(ec_buf *b, const char *name, const char *type, const char *help)
{
    ec_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Label values are config names and fixed strings; escape the three characters
 * the format reserves anyway. */
static void label_value(ec_buf *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            ec_buf_printf(b, "\\%c", *v);
        else if (*v == '\n')
            ec_buf_append(b, "\\n", 2);
        else
            ec_buf_append(b, v, 1);
    }
}

static const char *const breaker_states[] = {"closed", "open", "half_open", "forced_open",
                                             "disabled"};

ec_err ec_metrics_prometheus(const ec_metrics_snap *s, long queue_depth, ec_buf *b, ec_error *err)
{
    family(b, "edgecascade_queries_total", "counter",
           "Queries answered, by the tier kind that served them (none: an error result).");
    for (int k = 0; k < EC_METRICS_KINDS; k++)
        ec_buf_printf(b, "edgecascade_queries_total{tier=\"%s\"} %llu\n", ec_metrics_kind_names[k],
                      (unsigned long long)s->by_kind[k]);
    family(b, "edgecascade_errors_total", "counter", "Error results, by error code.");
    for (int e = 0; e < EC_METRICS_ERRORS; e++)
        ec_buf_printf(b, "edgecascade_errors_total{code=\"%s\"} %llu\n", ec_metrics_error_names[e],
                      (unsigned long long)s->errors[e]);
    family(b, "edgecascade_escalations_total", "counter", "Queries that tried more than one tier.");
    ec_buf_printf(b, "edgecascade_escalations_total %llu\n", (unsigned long long)s->escalated);
    family(b, "edgecascade_degraded_total", "counter",
           "Answers served by a lower tier because a better one failed.");
    ec_buf_printf(b, "edgecascade_degraded_total %llu\n", (unsigned long long)s->degraded);
    family(b, "edgecascade_revisions_total", "counter",
           "Later revisions of a result (the offline queue's cloud answer or its expiry).");
    ec_buf_printf(b, "edgecascade_revisions_total %llu\n", (unsigned long long)s->revisions);
    family(b, "edgecascade_result_copies_skipped_total", "counter",
           "Results not copied to <root>/result/<id> because the broker said nobody subscribes "
           "there (router.copy_unheard_ms).");
    ec_buf_printf(b, "edgecascade_result_copies_skipped_total %llu\n",
                  (unsigned long long)s->copies_skipped);
    family(b, "edgecascade_cost_usd_total", "counter", "Money spent on model calls, USD.");
    ec_buf_printf(b, "edgecascade_cost_usd_total %.9g\n", s->cost_usd);
    family(b, "edgecascade_cost_all_top_usd_total", "counter",
           "What the same tokens would have cost on the top tier, USD.");
    ec_buf_printf(b, "edgecascade_cost_all_top_usd_total %.9g\n", s->cost_top_usd);
    family(b, "edgecascade_savings_percent", "gauge",
           "Savings against sending every query to the top tier, percent.");
    ec_buf_printf(b, "edgecascade_savings_percent %.6g\n", ec_metrics_savings_pct(s));

    family(b, "edgecascade_latency_seconds", "histogram",
           "Query latency from arrival to result, by the tier kind that served it.");
    for (int k = 0; k < EC_METRICS_KINDS; k++) {
        const ec_metrics_hist *h = &s->latency[k];
        const char *t = ec_metrics_kind_names[k];
        uint64_t cum = 0;
        for (size_t i = 0; i < EC_METRICS_BOUNDS; i++) {
            cum += h->buckets[i];
            ec_buf_printf(b, "edgecascade_latency_seconds_bucket{tier=\"%s\",le=\"%g\"} %llu\n", t,
                          ec_metrics_bounds_ms[i] / 1000.0, (unsigned long long)cum);
        }
        cum += h->buckets[EC_METRICS_BOUNDS];
        ec_buf_printf(b, "edgecascade_latency_seconds_bucket{tier=\"%s\",le=\"+Inf\"} %llu\n", t,
                      (unsigned long long)cum);
        ec_buf_printf(b, "edgecascade_latency_seconds_sum{tier=\"%s\"} %.9g\n", t,
                      h->sum_ms / 1000.0);
        ec_buf_printf(b, "edgecascade_latency_seconds_count{tier=\"%s\"} %llu\n", t,
                      (unsigned long long)h->count);
    }
    if (s->inflight >= 0) {
        family(b, "edgecascade_inflight", "gauge", "Queries taken and not yet answered.");
        ec_buf_printf(b, "edgecascade_inflight %ld\n", s->inflight);
    }
    if (s->waiting_local >= 0) {
        family(b, "edgecascade_waiting_local", "gauge",
               "Queries waiting for a slot to the local model (router.local_inflight).");
        ec_buf_printf(b, "edgecascade_waiting_local %ld\n", s->waiting_local);
    }
    if (queue_depth >= 0) {
        family(b, "edgecascade_queue_depth", "gauge",
               "Escalations waiting in the offline queue for the cloud.");
        ec_buf_printf(b, "edgecascade_queue_depth %ld\n", queue_depth);
    }
    if (s->n_breakers) {
        family(b, "edgecascade_breaker_state", "gauge",
               "Circuit breaker of each cloud tier: 1 for its current state.");
        for (size_t i = 0; i < s->n_breakers; i++) {
            for (size_t j = 0; j < sizeof(breaker_states) / sizeof(breaker_states[0]); j++) {
                ec_buf_printf(b, "edgecascade_breaker_state{tier=\"");
                label_value(b, s->breakers[i].tier);
                ec_buf_printf(b, "\",state=\"%s\"} %d\n", breaker_states[j],
                              strcmp(s->breakers[i].state, breaker_states[j]) == 0);
            }
        }
    }
    family(b, "edgecascade_uptime_seconds", "gauge", "Seconds since the router started.");
    uint64_t now = ec_now_ms();
    ec_buf_printf(b, "edgecascade_uptime_seconds %.3f\n",
                  now > s->started_ms ? (double)(now - s->started_ms) / 1000.0 : 0.0);
    family(b, "edgecascade_build_info", "gauge", "The router's version.");
    ec_err rc = ec_buf_printf(b, "edgecascade_build_info{version=\"%s\"} 1\n", EC_VERSION);
    if (rc)
        return ec_error_set(err, rc, "metrics: the exposition does not fit its buffer");
    return EC_OK;
}

/* ---- JSON ---- */

static double pct(uint64_t part, uint64_t whole)
{
    return whole ? 100.0 * (double)part / (double)whole : 0;
}

/* Rounded so the document stays short and readable; nothing here needs more
 * than a microsecond or a millionth of a cent. */
static json_t *num(double v, double unit)
{
    return json_real(round(v / unit) * unit);
}

void ec_metrics_stats_json(const ec_metrics_snap *s, json_t *doc)
{
    json_object_set_new(doc, "queries", json_integer((json_int_t)s->queries));
    for (int k = 0; k < EC_METRICS_KINDS - 1; k++) {
        char key[16];
        json_object_set_new(doc, ec_metrics_kind_names[k], json_integer((json_int_t)s->by_kind[k]));
        snprintf(key, sizeof(key), "pct_%s", ec_metrics_kind_names[k]);
        json_object_set_new(doc, key, num(pct(s->by_kind[k], s->queries), 0.01));
    }
    json_object_set_new(doc, "errors", json_integer((json_int_t)s->errors_total));
    json_object_set_new(doc, "escalated", json_integer((json_int_t)s->escalated));
    json_object_set_new(doc, "degraded", json_integer((json_int_t)s->degraded));
    json_object_set_new(doc, "revisions", json_integer((json_int_t)s->revisions));
    json_object_set_new(doc, "cost_usd", num(s->cost_usd, 1e-8));
    json_object_set_new(doc, "cost_all_top_usd", num(s->cost_top_usd, 1e-8));
    json_object_set_new(doc, "savings_pct", num(ec_metrics_savings_pct(s), 0.01));

    json_t *codes = json_object();
    for (int e = 0; e < EC_METRICS_ERRORS; e++)
        if (s->errors[e])
            json_object_set_new(codes, ec_metrics_error_names[e],
                                json_integer((json_int_t)s->errors[e]));
    json_object_set_new(doc, "errors_by_code", codes);

    json_t *lat = json_object();
    json_t *hist = json_object();
    json_t *le = json_array();
    for (size_t i = 0; i < EC_METRICS_BOUNDS; i++)
        json_array_append_new(le, json_real(ec_metrics_bounds_ms[i]));
    json_object_set_new(hist, "le_ms", le);
    for (int k = 0; k < EC_METRICS_KINDS; k++) {
        const ec_metrics_hist *h = &s->latency[k];
        json_object_set_new(lat, ec_metrics_kind_names[k],
                            json_pack("{s:I, s:o, s:o}", "count", (json_int_t)h->count, "p50",
                                      num(ec_metrics_quantile_ms(h, 0.50), 0.001), "p95",
                                      num(ec_metrics_quantile_ms(h, 0.95), 0.001)));
        json_t *counts = json_array();
        for (size_t i = 0; i <= EC_METRICS_BOUNDS; i++)
            json_array_append_new(counts, json_integer((json_int_t)h->buckets[i]));
        json_object_set_new(hist, ec_metrics_kind_names[k], counts);
    }
    json_object_set_new(doc, "latency_ms", lat);
    json_object_set_new(doc, "latency_histogram", hist);

    json_t *br = json_object();
    for (size_t i = 0; i < s->n_breakers; i++)
        json_object_set_new(br, s->breakers[i].tier,
                            json_pack("{s:s, s:I, s:s}", "state", s->breakers[i].state, "since_ms",
                                      (json_int_t)s->breakers[i].since_ms, "reason",
                                      s->breakers[i].reason));
    json_object_set_new(doc, "breakers", br);
}

json_t *ec_metrics_decisions_json(ec_metrics *m, size_t max)
{
    json_t *arr = json_array();
    if (!arr)
        return NULL;
    /* Copy the slots out first: building JSON allocates, not under the lock. */
    ring_slot *copy = malloc(sizeof(m->ring));
    if (!copy) {
        json_decref(arr);
        return NULL;
    }
    pthread_mutex_lock(&m->lock);
    size_t n = m->ring_n < max ? m->ring_n : max;
    for (size_t i = 0; i < n; i++)
        copy[i] = m->ring[(m->ring_next + EC_METRICS_RING - 1 - i) % EC_METRICS_RING];
    pthread_mutex_unlock(&m->lock);
    for (size_t i = 0; i < n; i++) {
        const ring_slot *s = &copy[i];
        json_t *d = json_pack(
            "{s:I, s:s, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:o, s:o, s:b, s:b, s:i, s:s?, s:s}",
            "ts_ms", (json_int_t)s->ts_ms, "id", s->id, "asker", *s->asker ? s->asker : NULL,
            "tier", *s->tier ? s->tier : NULL, "tier_name", *s->tier_name ? s->tier_name : NULL,
            "model", *s->model ? s->model : NULL, "confidence",
            s->confidence >= 0 ? num(s->confidence, 0.0001) : json_null(), "threshold",
            num(s->threshold, 0.0001), "latency_ms", num(s->latency_ms, 0.001), "cost_usd",
            num(s->cost_usd, 1e-8), "escalated", s->escalated, "degraded", s->degraded, "revision",
            (int)s->revision, "error", *s->error ? s->error : NULL, "reason", s->reason);
        if (d)
            json_array_append_new(arr, d);
    }
    free(copy);
    return arr;
}
