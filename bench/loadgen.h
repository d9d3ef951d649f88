/* ec_loadgen internals: an open-loop load generator with an MQTT client of
 * its own (lg_wire.h; status and watch use ec_mqtt), the phase engine, /proc
 * readings and the report. */
#ifndef BENCH_LOADGEN_H
#define BENCH_LOADGEN_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "edgecascade/mqtt.h"

#define LG_MAX_PIDS      8
#define LG_TARGET_P99_MS 5.0
#define LG_LEAD_IN_S     0.25 /* per phase, not counted in the latencies */

typedef struct lg_pid {
    char name[32];
    pid_t pid;
} lg_pid;

typedef struct lg_opts {
    const char *uri;
    const char *root;
    bool null_mode;    /* answers are echoed queries, not Results */
    double rate;       /* queries per second */
    double duration_s; /* of one phase */
    double mix;        /* share of queries whose draft the local tier is unsure of */
    int drain_ms;      /* after the last send, how long to wait for answers */
    bool burst;        /* phase: no lead-in, no pacing (rate * duration queries at once) */
    double start_rate; /* sweep */
    double max_rate;   /* sweep */
    int bisections;    /* sweep: between the last pass and the first failure */
    const char *sim_log;
    const char *label; /* names the pipeline in progress lines */
    lg_pid pids[LG_MAX_PIDS];
    int n_pids;
} lg_opts;

typedef struct lg lg;

int lg_open(lg **out, const lg_opts *o);
void lg_close(lg *g);
/* Runs one open-loop phase at rate for duration_s and returns its figures:
 * sent, ok, busy, errors, unanswered, latencies (ms, from each query's
 * scheduled send time, so a stalled sender cannot hide a backlog; beside
 * them latency_ok_from_send, from the moment the generator published, and
 * generator_late, its own lateness), CPU of the given pids, and the
 * simulator's own time when a sim log is given. */
json_t *lg_phase(lg *g, double rate, double duration_s, double mix, int drain_ms, bool measure);
/* True when every query was answered with a result and p99 < 5 ms. */
bool lg_phase_ok(json_t *phase);

/* n, mean and percentiles (ms) of v, which it sorts. */
json_t *lg_latency_json(double *v, size_t n);
/* The machine's own loopback hop: a TCP ping-pong between two processes,
 * both on CPU 0 and across CPUs 0 and 1, at rate round trips per second
 * (lg_probe.c says why). */
json_t *lg_probe(double rate, double duration_s);

/* /proc readings: utime+stime in ms; VmHWM / VmRSS in kB (-1 on error). */
double lg_proc_cpu_ms(pid_t pid);
long lg_proc_status_kb(pid_t pid, const char *field);
/* The machine's CPU time so far (/proc/stat, all CPUs, ticks) and the part
 * of it the hypervisor gave to others (steal); false when unreadable. A
 * phase's steal share tells a slow VM from a slow pipeline. */
bool lg_proc_steal(unsigned long long *steal, unsigned long long *total);

/* Simulator log: per-request milliseconds of chat completions from offset on. */
json_t *lg_sim_times(const char *path, long offset);
long lg_file_size(const char *path);

/* Merges a run directory's phase files into the final object. */
json_t *lg_report(const char *dir);
void lg_report_table(json_t *report, FILE *out);

#endif
