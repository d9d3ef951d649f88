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

typedef struct ec_tierd_opts {
    bool serve_local; /* true: local tiers on <root>/infer/local; false: cloud on .../cloud */
    int workers;
    int max_retries;     /* extra attempts on RETRY outcomes, within the deadline */
    unsigned backoff_ms; /* base of the capped full-jitter backoff */
    unsigned backoff_max_ms;
} ec_tierd_opts;

/* Runs until SIGTERM/SIGINT; returns the process exit code. */
int ec_tierd_run(ec_service *s, const ec_tierd_opts *o);

#endif
