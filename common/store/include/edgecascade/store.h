/* The device's decision log in SQLite.
 *
 * One writer thread owns every write: the router hands it decisions through a
 * bounded queue (ec_store_record) and returns; the writer batches them in one
 * transaction per store.batch_ms (WAL, synchronous=NORMAL, statements prepared
 * once) and checkpoints on close. Readers (the CLI) open the file read-only. */
#ifndef EC_STORE_H
#define EC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/err.h"
#include "edgecascade/proto.h"

typedef struct ec_store ec_store;

/* What only the router saw of one attempt, kept so the gate can be
 * recalibrated from the device's own log (edgecascade calibrate --from-store):
 * the draft itself and the signals behind its confidence. */
typedef struct ec_attempt_detail {
    char *answer; /* the tier's draft; NULL on error */
    char *finish_reason;
    ec_lp_stats lp;
    double raw_confidence; /* the gate's signal before calibration; -1 if none */
    char *sent;            /* what the provider sent (InferReply "sent"), or NULL */
} ec_attempt_detail;

/* One decision: the Result as published, plus what only the device knows. */
typedef struct ec_decision {
    uint64_t ts_ms;   /* when the query arrived (epoch ms) */
    ec_result result; /* owned by the decision */
    ec_policy policy;
    ec_encoding encoding;
    double cost_top_usd; /* what the same tokens would have cost on the top tier */
    bool left_device;    /* whether any tier outside the device was called */
    /* The query's row in the arrival journal (journal.h), 0 when not
     * journaled. Stored with the decision (with ts_ms, the journal's arrival
     * time, it names one arrival) and reported to the commit hook. */
    int64_t journal_id;
    /* A shadow call's record: its attempts are appended to the decision of the
     * same query id and their cost added; nothing else changes. */
    bool append_only;
    /* details[i] belongs to result.attempts[i]; n_details may be 0 (not kept). */
    ec_attempt_detail details[EC_MAX_ATTEMPTS];
    size_t n_details;
} ec_decision;

void ec_decision_clear(ec_decision *d);

/* A decision whose result.revision is 2 or more updates the row of the same
 * query id (tier, model, cost, latency, error, revision) and appends its
 * attempts, so each query keeps exactly one decision row; without such a row
 * it is inserted. */

/* Opens (creating the schema when writable). */
ec_err ec_store_open(ec_store **out, const char *path, bool readonly, ec_error *err);
/* Flushes pending decisions, stops the writer, checkpoints and closes. NULL ok. */
void ec_store_close(ec_store *s);

/* Starts the writer thread. */
ec_err ec_store_start_writer(ec_store *s, int batch_ms, size_t queue_cap, ec_error *err);
/* After each commit the writer calls fn (on its thread) with the journal ids
 * of the decisions just committed (n = 0 when none had one). fn NULL unhooks;
 * it returns only when no call is running. */
typedef void (*ec_store_commit_fn)(void *ctx, const int64_t *journal_ids, size_t n);
void ec_store_on_commit(ec_store *s, ec_store_commit_fn fn, void *ctx);
/* Whether a decision for the journal row (id, arrival time) is in the log. */
ec_err ec_store_decided(ec_store *s, uint64_t ts_ms, int64_t journal_id, bool *found,
                        ec_error *err);
/* Hands d to the writer (d's contents are moved; d is left cleared).
 * EC_ERR_BUSY when the writer's queue is full: the caller still owns d then
 * (likewise on any other error: EC_ERR_INVAL for a decision without a query id
 * or with a tier other than "local"/"cloud"/"cache", EC_ERR_UNAVAILABLE without a writer). */
ec_err ec_store_record(ec_store *s, ec_decision *d, ec_error *err);
/* Waits until everything recorded so far is committed (timeout_ms -1: no
 * limit). EC_ERR_TIMEOUT when time runs out first; EC_ERR_DB when some of those
 * decisions could not be written (see ec_store_failed_count). */
ec_err ec_store_flush(ec_store *s, int timeout_ms, ec_error *err);
/* Writes d synchronously on the caller's thread (tests, tools). Must not run
 * while the writer thread is started on the same store: both use the one write
 * connection and its prepared statements. */
ec_err ec_store_write_now(ec_store *s, const ec_decision *d, ec_error *err);
/* Decisions the writer gave up on after retries (each one is logged at error
 * level with its query id). */
uint64_t ec_store_failed_count(ec_store *s);

/* ---- reading ---- */
#define EC_STATS_TIERS 4 /* "local", "cloud", "cache", "none" (errors), in that order */

typedef struct ec_tier_stats {
    char kind[8]; /* "local", "cloud", "cache", "none" */
    uint64_t n;
    double p50_ms;
    double p95_ms;
    double cost_usd;
} ec_tier_stats;

typedef struct ec_stats {
    uint64_t queries;
    uint64_t local;
    uint64_t cloud;
    uint64_t cache; /* answered from the router's answer cache */
    uint64_t errors;
    uint64_t escalated;
    double pct_local; /* pct_local + pct_cloud + pct_cache + errors share = 100 */
    double pct_cloud;
    double pct_cache;
    double cost_usd;
    double cost_top_usd;
    double savings_pct;
    ec_tier_stats tiers[EC_STATS_TIERS];
    size_t n_tiers;
} ec_stats;

/* Aggregates decisions with ts_ms >= since_ms (0 = all). */
ec_err ec_store_stats(ec_store *s, uint64_t since_ms, ec_stats *out, ec_error *err);
/* Totals of the whole log, one call per (tier kind, error code) group: what
 * the router's live metrics start from, so a restart does not zero them. One
 * scan, no sorting (cheap enough at start-up on a large log). error_code is
 * NULL for answered queries. */
typedef void (*ec_store_total_fn)(void *ctx, const char *tier_kind, const char *error_code,
                                  uint64_t n, uint64_t escalated, uint64_t degraded,
                                  double cost_usd, double cost_top_usd);
ec_err ec_store_totals_each(ec_store *s, ec_store_total_fn fn, void *ctx, ec_error *err);
/* Count of decision rows for a query id (tests, dedup). */
ec_err ec_store_count_query(ec_store *s, const char *query_id, int *count, ec_error *err);

/* Cloud spend since month_start_ms, and the part of it since day_start_ms
 * (budget caps): the cost of every attempt on a tier not named in
 * local_tiers (shadow calls and revision-2 replays included), by the arrival
 * time of its query. */
ec_err ec_store_cloud_spend(ec_store *s, uint64_t month_start_ms, uint64_t day_start_ms,
                            const char *const *local_tiers, size_t n_local, double *day_usd,
                            double *month_usd, ec_error *err);

/* ---- reading, grouped (edgecascade stats --by) ---- */
typedef enum ec_stats_by {
    EC_STATS_BY_MODEL = 0, /* the model that answered (NULL key: no answer) */
    EC_STATS_BY_SOURCE,    /* the query's source (NULL key: none given) */
    EC_STATS_BY_DAY,       /* UTC day of arrival, "YYYY-MM-DD" */
    EC_STATS_BY_ASKER,     /* who asked, as the broker authenticated it (NULL key: no identity) */
} ec_stats_by;

typedef struct ec_group_stats {
    char *key; /* owned; NULL for "no model" / "no source" */
    uint64_t queries;
    uint64_t local;
    uint64_t cloud;
    uint64_t cache;
    uint64_t errors; /* every row not local, cloud or cache */
    uint64_t escalated;
    double pct_local;
    double pct_cloud;
    double pct_cache;
    double cost_usd;
    double cost_top_usd;
    double savings_pct; /* 0 when cost_top_usd is 0 */
    uint64_t n_latency; /* rows with a latency (p50/p95 are 0 without any) */
    double p50_ms;      /* nearest rank over every row of the group */
    double p95_ms;
} ec_group_stats;

/* Aggregates decisions with ts_ms >= since_ms (0 = all) per group, ordered by
 * key (NULL first; days chronologically). *out is a heap array of *n groups
 * (NULL when none); free with ec_group_stats_free. */
ec_err ec_store_stats_by(ec_store *s, uint64_t since_ms, ec_stats_by by, ec_group_stats **out,
                         size_t *n, ec_error *err);
void ec_group_stats_free(ec_group_stats *g, size_t n);

/* What `edgecascade doctor` reports about the file. */
typedef struct ec_store_info {
    int schema_version;       /* PRAGMA user_version of the file */
    int schema_version_build; /* the version this build writes */
    uint64_t decisions;
    uint64_t outbox;     /* escalations waiting for the cloud */
    uint64_t last_ts_ms; /* newest decision's arrival time, 0 when none */
} ec_store_info;

ec_err ec_store_info_read(ec_store *s, ec_store_info *out, ec_error *err);

#endif
