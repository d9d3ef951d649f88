/* The tier daemon shared by edgecascade-local and edgecascade-relay: worker
 * threads take InferRequests off the MQTT inbound queue, call the tier's model
 * API through its provider (one libcurl handle per worker, so connections are
 * reused) and publish an InferReply on the request's Response Topic with its
 * Correlation Data. The two services differ only in which tiers they serve and
 * in their retry policy. */
#ifndef EC_TIERD_H
#define EC_TIERD_H

#include <stdbool.h>
#include "edgecascade/service.h"

/* How a finished call went, for a circuit breaker. */
typedef enum ec_tierd_outcome {
    EC_TIERD_OK = 0,
    EC_TIERD_FAILED, /* timeout, connection error, 429, 5xx, malformed answer */
    EC_TIERD_CONFIG, /* 4xx: a configuration error, not an outage */
} ec_tierd_outcome;

/* Optional hooks (the relay's circuit breakers). All run on worker threads. */
typedef struct ec_tierd_hooks {
    void *ctx;
    /* Before a call to tier ti with the given deadline (ec_now_ms() clock):
     * EC_OK to go ahead, else fill err and the request fails fast. */
    ec_err (*admit)(void *ctx, int ti, uint64_t deadline_ms, ec_error *err);
    /* After an admitted call, retries included. */
    void (*report)(void *ctx, int ti, ec_tierd_outcome outcome, double ms);
    /* A message on one of extra_filters; the hook owns nothing. */
    void (*on_message)(void *ctx, const ec_mqtt_msg *msg);
    const char *const *extra_filters; /* NULL-terminated, may be NULL */
    /* Once connected, before the workers start. */
    void (*on_ready)(void *ctx);
    /* A reload (SIGHUP) is about to make next the config in force: take what
     * applies (the relay's breaker settings). On the main thread. */
    void (*on_reload)(void *ctx, const ec_config *next);
} ec_tierd_hooks;

typedef struct ec_tierd_opts {
    bool serve_local; /* true: local tiers on <root>/infer/local; false: cloud on .../cloud */
    int workers;
    int max_retries;     /* extra attempts on RETRY outcomes, within the deadline */
    unsigned backoff_ms; /* base of the capped full-jitter backoff */
    unsigned backoff_max_ms;
    ec_tierd_hooks hooks;
} ec_tierd_opts;

/* Runs until SIGTERM/SIGINT; returns the process exit code. SIGHUP reloads
 * the config: tier URLs, models, timeouts, costs and API keys (read again),
 * retries and backoff (relay), the breakers (relay, through on_reload), the
 * log level; keys that need a restart make it refuse the file (service.h).
 * Requests in flight finish with the config they started with. */
int ec_tierd_run(ec_service *s, const ec_tierd_opts *o);

#endif
