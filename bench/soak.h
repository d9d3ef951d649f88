/* ec_soak internals: the soak benchmark's client (driven by bench/soak) and
 * its audit of the decision log. */
#ifndef BENCH_SOAK_H
#define BENCH_SOAK_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* What the client saw for one query (index i, id "soak-<i>"). */
typedef struct soak_slot {
    uint64_t sched_us; /* when it was due to be sent */
    uint64_t rev1_us;  /* arrival of its first revision 1, 0 if none */
    uint16_t rev1;     /* results received with revision 1 (more than one: redelivered) */
    uint16_t rev2;     /* results received with revision 2 */
    bool sent;
    bool hard;       /* the local draft is rejected: needs the cloud */
    bool degraded;   /* its first revision 1 was marked degraded */
    bool rev1_cloud; /* its first revision 1 came from the cloud tier */
    bool rev1_error; /* its first revision 1 carried an error code (busy, queued, ...) */
    bool rev1_busy;  /* ... and that code was busy: refused, not processed */
    bool rev2_cloud; /* a revision 2 came from the cloud tier */
    bool rev2_error; /* a revision 2 carried an error code (expired) */
} soak_slot;

/* queue_events per query id, as bits */
enum {
    SOAK_Q_QUEUED = 1,
    SOAK_Q_REPLAYED = 2,
    SOAK_Q_EXPIRED = 4,
    SOAK_Q_DROPPED = 8,
    SOAK_Q_REJECTED = 16,
};

/* The decision log's view of the run's query ids 0..n-1. */
typedef struct soak_audit {
    uint16_t *rows;       /* decision rows per id */
    uint8_t *qflags;      /* SOAK_Q_* per id */
    uint8_t *rev2row;     /* the id's decision row (one of) is at revision 2 */
    long foreign_rows;    /* rows whose query id is not one of ours */
    long queue_events[5]; /* events by kind (queued, replayed, expired, dropped, rejected) */
    long outbox_left;
    long journal_left;
    long breaker_events;
    long breaker_opened;
} soak_audit;

/* Reads the store at path (read-only, while the services write it). 0 on
 * success; on failure prints why and returns -1 (the audit is cleared). */
int soak_audit_read(const char *path, size_t n, soak_audit *a);
void soak_audit_clear(soak_audit *a);

/* True when nothing is left to wait for: every sent query has a result and a
 * decision row, the outbox and the journal are empty, and every queued
 * escalation has its revision 2 (or was expired, dropped or rejected). */
bool soak_settled(const soak_slot *s, size_t n, const soak_audit *a);

/* The figures (sent, answered, degraded, queued, replayed, lost, ...) as one
 * JSON object. */
json_t *soak_figures(const soak_slot *s, size_t n, const soak_audit *a);
/* True when the figures show a failure: lost > 0, a query id without exactly
 * one decision row, or a queued escalation without its revision 2. */
bool soak_failed(json_t *figures);
void soak_print_table(json_t *figures, FILE *out);

#endif
