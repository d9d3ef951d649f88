/* Small helpers shared by every process: clocks, ids, strings. */
#ifndef EC_UTIL_H
#define EC_UTIL_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

uint64_t ec_now_ms(void);  /* CLOCK_REALTIME, ms since the epoch (for records) */
uint64_t ec_mono_us(void); /* CLOCK_MONOTONIC, µs (for latencies and deadlines) */
double ec_mono_ms(void);   /* CLOCK_MONOTONIC, ms with fractions */

/* 26-char time-ordered unique id (ULID-like, Crockford base32). out must hold 27 bytes. */
void ec_id_new(char out[27]);

char *ec_strdup0(const char *s); /* strdup that maps NULL to NULL */
char *ec_strndup0(const char *s, size_t n);
bool ec_streq(const char *a, const char *b); /* NULL-safe */
/* v as snprintf(out, cap, "%.2f", v) writes it (the same digits, rounding
 * and sign), for a reason string on the per-query path: glibc's %.2f costs
 * about 1,400 instructions, this about 100. cap >= 32. Returns out. */
char *ec_fmt_2f(char *out, size_t cap, double v);

/* Reads a whole file (at most max bytes) into a NUL-terminated heap string. */
char *ec_read_file(const char *path, size_t max, size_t *len_out);

/* The CLOCK_MONOTONIC time ms milliseconds from now, for
 * pthread_cond_timedwait on a condition made with that clock. */
void ec_deadline_in(struct timespec *ts, unsigned ms);
/* Initialises a condition variable that waits on CLOCK_MONOTONIC, the clock
 * of ec_deadline_in (a wall-clock step must not stretch or cut a wait). */
void ec_cond_init_mono(pthread_cond_t *cond);
/* Sleeps, resuming after EINTR, for ms milliseconds. */
void ec_sleep_ms(unsigned ms);
/* Names the calling thread (top -H, perf, /proc/<pid>/task/<tid>/comm). */
void ec_thread_name(const char *name);
/* Hands freed heap back to the system. glibc keeps what a burst freed in each
 * thread's arena; a service beside the model calls this now and then (every
 * few seconds, off the per-query path) so its resident size falls back. */
void ec_mem_give_back(void);
/* Pins glibc's mmap and trim thresholds at their defaults (128 KiB): a
 * service calls it once at start, before its threads (see util.c). */
void ec_mem_init(void);

#endif
