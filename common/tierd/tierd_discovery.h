/* Local model auto-discovery (private to ec_tierd): for each local tier with
 * `model: auto`, edgecascade-local asks the model server which models it
 * serves (GET /v1/models, or /api/tags for Ollama) at start and every
 * local.discovery_interval_s, and calls the tier with the one it found: the
 * tier's prefer_model when the server lists it, else the first listed.
 *
 * Once a model is in use it is not swapped silently: the gate's calibration
 * and the decision log belong to one model. When it vanishes from the list the
 * tier is reported "missing" (log error, the status's models entry) and its
 * queries fail at once with an `unavailable` error that names the model, the
 * server and what it lists now; when it comes back, the tier serves again. A
 * reload (SIGHUP) starts the tier's discovery afresh, which is how an operator
 * adopts a new model. A server that cannot be reached does not make a model
 * missing (the calls would fail anyway, with their own error). */
#ifndef EC_TIERD_DISCOVERY_H
#define EC_TIERD_DISCOVERY_H

#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/service.h"

typedef struct ec_discovery ec_discovery;

ec_err ec_discovery_create(ec_discovery **out, ec_service *svc, ec_error *err);
/* Starts the thread, which checks at once; waits up to wait_ms for that
 * first check to finish (so the service is ready with a model). */
ec_err ec_discovery_start(ec_discovery *d, int wait_ms, ec_error *err);
/* After a reload: every auto tier is discovered afresh, now. */
void ec_discovery_reset(ec_discovery *d);
/* Stops the thread and frees d (NULL is fine). */
void ec_discovery_destroy(ec_discovery *d);

/* The model to call local tier ti with. True with model filled; false with
 * why filled when the tier has no usable model (not found yet, or missing). */
bool ec_discovery_model(ec_discovery *d, size_t ti, char *model, size_t cap, char *why,
                        size_t whycap);

/* Rounds of checks done since start (for logs and tests). */
unsigned long ec_discovery_rounds(ec_discovery *d);

#endif
