/* The router's live numbers: counters, latency histograms, breaker states
 * and a ring of recent decisions, fed once per finished query.
 *
 * Cost of the hook: one mutex, a few additions, one histogram bucket found by
 * a short linear scan, and fixed-size string copies into the ring's slot; no
 * allocation. Readers (the stats topic, the HTTP server) take a snapshot under
 * the same mutex and format it outside, so a slow HTTP client never holds up
 * a worker.
 *
 * Counts are cumulative: ec_metrics_seed adds what the decision log already
 * holds, so "cost so far" survives a restart. Latency histograms, error codes
 * and the decision ring cover the time since the router started (the log keeps
 * no histogram; rebuilding one from every row would slow start-up). A query's
 * revision 2 (the offline queue's cloud answer) is not a new query: it adds
 * its own cost and counts in revisions. */
#ifndef EC_ROUTER_METRICS_H
#define EC_ROUTER_METRICS_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/buf.h"
#include "edgecascade/config.h"
#include "edgecascade/err.h"

/* Result tier kinds: "local", "cloud", "cache", and "none" (no answer). */
#define EC_METRICS_KINDS 4
/* Histogram upper bounds in ms (the last bucket is +Inf, beyond the table). */
#define EC_METRICS_BOUNDS   22
#define EC_METRICS_ERRORS   14 /* known error codes plus "other" */
#define EC_METRICS_RING     100
#define EC_METRICS_BREAKERS EC_MAX_TIERS

extern const char *const ec_metrics_kind_names[EC_METRICS_KINDS];
extern const double ec_metrics_bounds_ms[EC_METRICS_BOUNDS];
extern const char *const ec_metrics_error_names[EC_METRICS_ERRORS];

typedef struct ec_metrics ec_metrics;

/* One finished query (or revision), as finish() saw it. Strings are copied
 * (truncated to the ring's slot sizes); NULL means absent. */
typedef struct ec_metrics_obs {
    const char *id;
    const char *asker; /* the broker-verified user, NULL: none */
    const char *tier;  /* "local", "cloud", "cache"; NULL when nothing was served */
    const char *tier_name;
    const char *model;
    const char *error_code;
    const char *reason;
    double confidence; /* < 0: none */
    double threshold;
    double latency_ms;
    double cost_usd;     /* money spent by this finish (a revision: its own calls only) */
    double cost_top_usd; /* the same tokens on the top tier (0 for errors) */
    bool escalated;
    bool degraded;
    uint32_t revision; /* 1 for a first answer */
    bool copy_skipped; /* its copy on <root>/result/<id> was skipped: nobody subscribes */
    uint64_t ts_ms;    /* epoch ms when it finished */
} ec_metrics_obs;

typedef struct ec_metrics_hist {
    uint64_t buckets[EC_METRICS_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    uint64_t count;
    double sum_ms;
} ec_metrics_hist;

typedef struct ec_metrics_breaker {
    char tier[128];
    char state[24];
    char reason[160];
    uint64_t since_ms;
} ec_metrics_breaker;

/* A consistent copy of every counter (no ring). */
typedef struct ec_metrics_snap {
    uint64_t queries; /* first answers, including errors */
    uint64_t by_kind[EC_METRICS_KINDS];
    uint64_t errors[EC_METRICS_ERRORS];
    uint64_t errors_total;
    uint64_t escalated;
    uint64_t degraded;
    uint64_t revisions;
    uint64_t copies_skipped; /* Results not copied to <root>/result/<id>: nobody subscribed */
    double cost_usd;
    double cost_top_usd;
    ec_metrics_hist latency[EC_METRICS_KINDS];
    ec_metrics_breaker breakers[EC_METRICS_BREAKERS];
    size_t n_breakers;
    uint64_t started_ms; /* epoch ms of ec_metrics_create */
    /* gauges the owner fills in after ec_metrics_snapshot (-1: left out) */
    long inflight;      /* queries taken and not yet answered */
    long waiting_local; /* of those, waiting for a slot to the local model */
} ec_metrics_snap;

ec_err ec_metrics_create(ec_metrics **out, ec_error *err);
void ec_metrics_destroy(ec_metrics *m);

/* Adds one group of the decision log's totals (an ec_store_total_fn). */
void ec_metrics_seed(void *m, const char *tier_kind, const char *error_code, uint64_t n,
                     uint64_t escalated, uint64_t degraded, double cost_usd, double cost_top_usd);

/* The hook: one call per finished query. */
void ec_metrics_observe(ec_metrics *m, const ec_metrics_obs *o);
/* Money spent outside a served answer (gate.shadow_rate calls). */
void ec_metrics_add_cost(ec_metrics *m, double usd);
/* A breaker's state as the relay announced it. */
void ec_metrics_breaker_state(ec_metrics *m, const char *tier, const char *state, uint64_t since_ms,
                              const char *reason);

void ec_metrics_snapshot(ec_metrics *m, ec_metrics_snap *out);

/* Index of a kind name, -1 when unknown. */
int ec_metrics_kind_index(const char *kind);
/* The q-quantile (0..1) of a histogram in ms, interpolated linearly inside its
 * bucket (as Prometheus' histogram_quantile does); 0 when empty. A quantile in
 * the +Inf bucket is reported as the largest finite bound. */
double ec_metrics_quantile_ms(const ec_metrics_hist *h, double q);

/* Savings against the top tier in percent (0 when nothing would have cost). */
double ec_metrics_savings_pct(const ec_metrics_snap *s);

/* Prometheus text exposition format 0.0.4 of s, plus the offline queue's
 * depth (-1: unknown, left out). */
ec_err ec_metrics_prometheus(const ec_metrics_snap *s, long queue_depth, ec_buf *out,
                             ec_error *err);

/* Adds the counters of s to the stats document (queries, shares, cost,
 * savings, latency per tier, breakers). */
void ec_metrics_stats_json(const ec_metrics_snap *s, json_t *doc);

/* The most recent decisions, newest first, at most max: a JSON array. NULL
 * when out of memory. */
json_t *ec_metrics_decisions_json(ec_metrics *m, size_t max);

#endif
