/* InferRequest (router -> tier) and InferReply (tier -> router). */
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"

/* ---------------------------------------------------------------- request */

void ec_infer_request_clear(ec_infer_request *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->tier);
    ec_chat_msgs_free(r->messages, r->n_messages);
    memset(r, 0, sizeof(*r));
}

static void infer_request_clear_v(void *m)
{
    ec_infer_request_clear(m);
}

static ec_err infer_request_check(const void *msg, const char *path, const ec_ctx *cx)
{
    const ec_infer_request *r = msg;
    return ec_check_messages_total(r->messages, r->n_messages, NULL, path, cx);
}

static const ec_field infer_request_fields[] = {
    {.name = "v", .kind = EC_FK_VERSION},
    {.name = "id",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY | EC_FF_TOPIC,
     .off = offsetof(ec_infer_request, id),
     .limit = EC_MAX_ID},
    {.name = "tier_index", .kind = EC_FK_U32, .off = offsetof(ec_infer_request, tier_index)},
    {.name = "tier",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY,
     .off = offsetof(ec_infer_request, tier),
     .limit = EC_MAX_ID},
    {.name = "messages",
     .kind = EC_FK_ARRAY,
     .flags = EC_FF_REQUIRED,
     .off = offsetof(ec_infer_request, messages),
     .aux = offsetof(ec_infer_request, n_messages),
     .limit = EC_MAX_MESSAGES,
     .sub = &ec_def_chat_msg},
    {.name = "max_tokens", .kind = EC_FK_MAXTOK, .off = offsetof(ec_infer_request, max_tokens)},
    {.name = "temperature",
     .kind = EC_FK_OPTDBL,
     .off = offsetof(ec_infer_request, temperature),
     .aux = offsetof(ec_infer_request, has_temperature),
     .lo = 0.0,
     .hi = 2.0},
    {.name = "logprobs", .kind = EC_FK_BOOL, .off = offsetof(ec_infer_request, logprobs)},
    {.name = "timeout_ms", .kind = EC_FK_U32, .off = offsetof(ec_infer_request, timeout_ms)},
    {.name = "samples", .kind = EC_FK_U32, .off = offsetof(ec_infer_request, samples)},
};

const ec_msgdef ec_def_infer_request = {
    .name = "infer_request",
    EC_FIELDS(infer_request_fields),
    .size = sizeof(ec_infer_request),
    .check = infer_request_check,
    .clear = infer_request_clear_v,
};

ec_err ec_infer_request_encode(const ec_infer_request *r, ec_buf *out, ec_error *err)
{
    return ec_mp_encode(&ec_def_infer_request, r, out, err);
}

ec_err ec_infer_request_decode(const void *data, size_t len, ec_infer_request *out, ec_error *err)
{
    return ec_mp_decode(&ec_def_infer_request, data, len, out, err);
}

/* ---------------------------------------------------------------- reply */

void ec_infer_reply_clear(ec_infer_reply *r)
{
    if (!r)
        return;
    free(r->id);
    free(r->tier);
    free(r->model);
    free(r->answer);
    free(r->finish_reason);
    free(r->sent);
    ec_wire_error_clear(&r->error);
    memset(r, 0, sizeof(*r));
}

static void infer_reply_clear_v(void *m)
{
    ec_infer_reply_clear(m);
}

static ec_err infer_reply_check(const void *msg, const char *path, const ec_ctx *cx)
{
    const ec_infer_reply *r = msg;
    if (!r->answer && !r->error.code)
        return ec_error_set(cx->err, cx->bad, "%s: needs an answer or an error", path);
    return EC_OK;
}

static const ec_field infer_reply_fields[] = {
    {.name = "v", .kind = EC_FK_VERSION},
    {.name = "id",
     .kind = EC_FK_STR,
     .flags = EC_FF_REQUIRED | EC_FF_NONEMPTY | EC_FF_TOPIC,
     .off = offsetof(ec_infer_reply, id),
     .limit = EC_MAX_ID},
    {.name = "tier_index", .kind = EC_FK_U32, .off = offsetof(ec_infer_reply, tier_index)},
    {.name = "tier", .kind = EC_FK_STR, .off = offsetof(ec_infer_reply, tier), .limit = EC_MAX_ID},
    {.name = "model",
     .kind = EC_FK_STR,
     .off = offsetof(ec_infer_reply, model),
     .limit = EC_MAX_ID},
    {.name = "answer",
     .kind = EC_FK_STR,
     .off = offsetof(ec_infer_reply, answer),
     .limit = EC_MAX_ANSWER},
    {.name = "finish_reason",
     .kind = EC_FK_STR,
     .off = offsetof(ec_infer_reply, finish_reason),
     .limit = EC_MAX_ID},
    {.name = "lp", .kind = EC_FK_LP, .off = offsetof(ec_infer_reply, lp), .sub = &ec_def_lp},
    {.name = "tokens_in", .kind = EC_FK_U32, .off = offsetof(ec_infer_reply, tokens_in)},
    {.name = "tokens_out", .kind = EC_FK_U32, .off = offsetof(ec_infer_reply, tokens_out)},
    {.name = "cost_usd", .kind = EC_FK_DBL, .off = offsetof(ec_infer_reply, cost_usd)},
    {.name = "latency_ms", .kind = EC_FK_DBL, .off = offsetof(ec_infer_reply, latency_ms)},
    {.name = "samples", .kind = EC_FK_U32, .off = offsetof(ec_infer_reply, samples)},
    {.name = "agreement", .kind = EC_FK_DBL, .off = offsetof(ec_infer_reply, agreement)},
    {.name = "sent",
     .kind = EC_FK_STR,
     .off = offsetof(ec_infer_reply, sent),
     .limit = EC_MAX_REASON},
    {.name = "error",
     .kind = EC_FK_ERROR,
     .off = offsetof(ec_infer_reply, error),
     .sub = &ec_def_wire_error},
};

const ec_msgdef ec_def_infer_reply = {
    .name = "infer_reply",
    EC_FIELDS(infer_reply_fields),
    .size = sizeof(ec_infer_reply),
    .check = infer_reply_check,
    .clear = infer_reply_clear_v,
};

ec_err ec_infer_reply_encode(const ec_infer_reply *r, ec_buf *out, ec_error *err)
{
    return ec_mp_encode(&ec_def_infer_reply, r, out, err);
}

ec_err ec_infer_reply_decode(const void *data, size_t len, ec_infer_reply *out, ec_error *err)
{
    return ec_mp_decode(&ec_def_infer_reply, data, len, out, err);
}
