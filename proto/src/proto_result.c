/* Result (router -> client) and the per-tier Attempt records inside it. */
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"

/* ---------------------------------------------------------------- attempt */

void ec_attempt_clear(ec_attempt *a)
{
    if (!a)
        return;
    free(a->tier);
    free(a->model);
    free(a->reason);
    ec_wire_error_clear(&a->error);
    memset(a, 0, sizeof(*a));
}

static void attempt_clear_v(void *m)
{
    ec_attempt_clear(m);
}

static const ec_field attempt_fields[] = {
    {.name = "tier_index", .kind = EC_FK_U32, .off = offsetof(ec_attempt, tier_index)},
    {.name = "tier", .kind = EC_FK_STR, .off = offsetof(ec_attempt, tier), .limit = EC_MAX_ID},
    {.name = "model", .kind = EC_FK_STR, .off = offsetof(ec_attempt, model), .limit = EC_MAX_ID},
    {.name = "confidence", .kind = EC_FK_DBL, .off = offsetof(ec_attempt, confidence)},
    {.name = "threshold", .kind = EC_FK_DBL, .off = offsetof(ec_attempt, threshold)},
    {.name = "accepted", .kind = EC_FK_BOOL, .off = offsetof(ec_attempt, accepted)},
    {.name = "reason",
     .kind = EC_FK_STR,
     .off = offsetof(ec_attempt, reason),
     .limit = EC_MAX_REASON},
    {.name = "latency_ms", .kind = EC_FK_DBL, .off = offsetof(ec_attempt, latency_ms)},
    {.name = "cost_usd", .kind = EC_FK_DBL, .off = offsetof(ec_attempt, cost_usd)},
    {.name = "tokens_in", .kind = EC_FK_U32, .off = offsetof(ec_attempt, tokens_in)},
    {.name = "tokens_out", .kind = EC_FK_U32, .off = offsetof(ec_attempt, tokens_out)},
    {.name = "error",
     .kind = EC_FK_ERROR,
     .off = offsetof(ec_attempt, error),
     .sub = &ec_def_wire_error},
};

const ec_msgdef ec_def_attempt = {
    .name = "attempt",
    EC_FIELDS(attempt_fields),
    .size = sizeof(ec_attempt),
    .clear = attempt_clear_v,
};

/* ---------------------------------------------------------------- result */

void ec_result_clear(ec_result *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->answer);
    free(r->tier);
    free(r->tier_name);
    free(r->model);
    free(r->reason);
    for (size_t i = 0; r->attempts && i < r->n_attempts; i++)
        ec_attempt_clear(&r->attempts[i]);
    free(r->attempts);
    free(r->source);
    free(r->asker);
    free(r->complexity);
    ec_wire_error_clear(&r->error);
    memset(r, 0, sizeof(*r));
}

static void result_clear_v(void *m)
{
    ec_result_clear(m);
}

static const ec_field result_fields[] = {
    {.name = "v", .kind = EC_FK_VERSION},
    {.name = "id",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY | EC_FF_TOPIC,
     .off = offsetof(ec_result, id),
     .limit = EC_MAX_ID},
    {.name = "answer",
     .kind = EC_FK_STR,
     .off = offsetof(ec_result, answer),
     .limit = EC_MAX_ANSWER},
    {.name = "tier", .kind = EC_FK_STR, .off = offsetof(ec_result, tier), .limit = EC_MAX_ID},
    {.name = "tier_index",
     .kind = EC_FK_U32,
     .flags = EC_FF_NIL_IF_NULL,
     .off = offsetof(ec_result, tier_index),
     .aux = offsetof(ec_result, tier)},
    {.name = "tier_name",
     .kind = EC_FK_STR,
     .off = offsetof(ec_result, tier_name),
     .limit = EC_MAX_ID},
    {.name = "model", .kind = EC_FK_STR, .off = offsetof(ec_result, model), .limit = EC_MAX_ID},
    {.name = "confidence",
     .kind = EC_FK_DBL,
     .flags = EC_FF_NIL_IF_NULL,
     .off = offsetof(ec_result, confidence),
     .aux = offsetof(ec_result, tier)},
    {.name = "threshold",
     .kind = EC_FK_DBL,
     .flags = EC_FF_NIL_IF_NULL,
     .off = offsetof(ec_result, threshold),
     .aux = offsetof(ec_result, tier)},
    {.name = "escalated", .kind = EC_FK_BOOL, .off = offsetof(ec_result, escalated)},
    {.name = "reason",
     .kind = EC_FK_STR,
     .off = offsetof(ec_result, reason),
     .limit = EC_MAX_REASON},
    {.name = "cost_usd", .kind = EC_FK_DBL, .off = offsetof(ec_result, cost_usd)},
    {.name = "latency_ms", .kind = EC_FK_DBL, .off = offsetof(ec_result, latency_ms)},
    {.name = "router_ms", .kind = EC_FK_DBL, .off = offsetof(ec_result, router_ms)},
    {.name = "attempts",
     .kind = EC_FK_ARRAY,
     .off = offsetof(ec_result, attempts),
     .aux = offsetof(ec_result, n_attempts),
     .limit = EC_MAX_ATTEMPTS,
     .sub = &ec_def_attempt},
    {.name = "tokens_in", .kind = EC_FK_U32, .off = offsetof(ec_result, tokens_in)},
    {.name = "tokens_out", .kind = EC_FK_U32, .off = offsetof(ec_result, tokens_out)},
    {.name = "source", .kind = EC_FK_STR, .off = offsetof(ec_result, source), .limit = EC_MAX_ID},
    {.name = "asker", .kind = EC_FK_STR, .off = offsetof(ec_result, asker), .limit = EC_MAX_ID},
    {.name = "degraded", .kind = EC_FK_BOOL, .off = offsetof(ec_result, degraded)},
    {.name = "revision", .kind = EC_FK_U32, .off = offsetof(ec_result, revision)},
    {.name = "complexity",
     .kind = EC_FK_STR,
     .off = offsetof(ec_result, complexity),
     .limit = EC_MAX_ID},
    {.name = "redacted", .kind = EC_FK_BOOL, .off = offsetof(ec_result, redacted)},
    {.name = "escalation_withheld",
     .kind = EC_FK_BOOL,
     .off = offsetof(ec_result, escalation_withheld)},
    {.name = "replayed", .kind = EC_FK_BOOL, .off = offsetof(ec_result, replayed)},
    {.name = "error",
     .kind = EC_FK_ERROR,
     .off = offsetof(ec_result, error),
     .sub = &ec_def_wire_error},
};

const ec_msgdef ec_def_result = {
    .name = "result",
    EC_FIELDS(result_fields),
    .size = sizeof(ec_result),
    .clear = result_clear_v,
};

ec_err ec_result_encode(const ec_result *r, ec_buf *out, ec_error *err)
{
    return ec_mp_encode(&ec_def_result, r, out, err);
}

ec_err ec_result_decode(const void *data, size_t len, ec_result *out, ec_error *err)
{
    return ec_mp_decode(&ec_def_result, data, len, out, err);
}
