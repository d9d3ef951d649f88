/* Status: the retained liveness record each service keeps on
 * <root>/status/<service> (its MQTT will sets state "offline"). */
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"

void ec_status_clear(ec_status *s)
{
    if (!s)
        return;
    free(s->service);
    free(s->state);
    free(s->version);
    free(s->instance);
    free(s->config_error);
    for (size_t i = 0; s->models && i < s->n_models; i++) {
        free(s->models[i].tier);
        free(s->models[i].model);
        free(s->models[i].state);
        free(s->models[i].error);
        free(s->models[i].logprobs);
    }
    free(s->models);
    memset(s, 0, sizeof(*s));
}

static void model_status_clear_v(void *m)
{
    ec_model_status *ms = m;
    free(ms->tier);
    free(ms->model);
    free(ms->state);
    free(ms->error);
    free(ms->logprobs);
    memset(ms, 0, sizeof(*ms));
}

static const ec_field model_status_fields[] = {
    {.name = "tier",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_model_status, tier),
     .limit = EC_MAX_ID},
    {.name = "model",
     .kind = EC_FK_STR,
     .off = offsetof(ec_model_status, model),
     .limit = EC_MAX_ID},
    {.name = "state",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_model_status, state),
     .limit = EC_MAX_ID},
    {.name = "error",
     .kind = EC_FK_STR,
     .off = offsetof(ec_model_status, error),
     .limit = EC_MAX_ERROR_MSG},
    {.name = "logprobs",
     .kind = EC_FK_STR,
     .off = offsetof(ec_model_status, logprobs),
     .limit = EC_MAX_ID},
};

static const ec_msgdef def_model_status = {
    .name = "models",
    EC_FIELDS(model_status_fields),
    .size = sizeof(ec_model_status),
    .clear = model_status_clear_v,
};

static void status_clear_v(void *m)
{
    ec_status_clear(m);
}

static const ec_field status_fields[] = {
    {.name = "v", .kind = EC_FK_VERSION},
    {.name = "service",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_status, service),
     .limit = EC_MAX_ID},
    {.name = "state",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_status, state),
     .limit = EC_MAX_ID},
    {.name = "version", .kind = EC_FK_STR, .off = offsetof(ec_status, version), .limit = EC_MAX_ID},
    {.name = "instance",
     .kind = EC_FK_STR,
     .off = offsetof(ec_status, instance),
     .limit = EC_MAX_ID},
    {.name = "pid", .kind = EC_FK_U32, .off = offsetof(ec_status, pid)},
    {.name = "ts_ms", .kind = EC_FK_U64, .off = offsetof(ec_status, ts_ms)},
    {.name = "config_ts_ms", .kind = EC_FK_U64, .off = offsetof(ec_status, config_ts_ms)},
    {.name = "config_error",
     .kind = EC_FK_STR,
     .off = offsetof(ec_status, config_error),
     .limit = EC_MAX_ERROR_MSG},
    {.name = "models",
     .kind = EC_FK_ARRAY,
     .off = offsetof(ec_status, models),
     .aux = offsetof(ec_status, n_models),
     .limit = EC_MAX_STATUS_MODELS,
     .sub = &def_model_status},
};

const ec_msgdef ec_def_status = {
    .name = "status",
    EC_FIELDS(status_fields),
    .size = sizeof(ec_status),
    .clear = status_clear_v,
};

ec_err ec_status_encode(const ec_status *s, ec_buf *out, ec_error *err)
{
    return ec_mp_encode(&ec_def_status, s, out, err);
}

ec_err ec_status_decode(const void *data, size_t len, ec_status *out, ec_error *err)
{
    return ec_mp_decode(&ec_def_status, data, len, out, err);
}
