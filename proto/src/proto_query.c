/* Query: a client's question, the only message that also arrives as JSON and
 * from outside the system (PLCs, SCADA, scripts), hence the only one whose
 * "v" may be left out. */
#include <stdlib.h>
#include <string.h>

#include "proto_codec.h"

void ec_query_clear(ec_query *q)
{
    if (!q)
        return;
    free(q->id);
    free(q->prompt);
    ec_chat_msgs_free(q->messages, q->n_messages);
    free(q->source);
    memset(q, 0, sizeof(*q));
}

static void query_clear_v(void *m)
{
    ec_query_clear(m);
}

static ec_err query_check(const void *msg, const char *path, const ec_ctx *cx)
{
    const ec_query *q = msg;
    if ((!q->prompt || !q->prompt[0]) && q->n_messages == 0)
        return ec_error_set(cx->err, cx->bad,
                            "%s: needs a non-empty prompt or at least one message", path);
    return ec_check_messages_total(q->messages, q->n_messages, q->prompt, path, cx);
}

static const ec_field query_fields[] = {
    {.name = "v", .kind = EC_FK_VERSION},
    {.name = "id",
     .kind = EC_FK_STR,
     .flags = EC_FF_NONEMPTY | EC_FF_TOPIC,
     .off = offsetof(ec_query, id),
     .limit = EC_MAX_ID},
    {.name = "prompt",
     .kind = EC_FK_STR,
     .off = offsetof(ec_query, prompt),
     .limit = EC_MAX_PROMPT},
    {.name = "messages",
     .kind = EC_FK_ARRAY,
     .off = offsetof(ec_query, messages),
     .aux = offsetof(ec_query, n_messages),
     .limit = EC_MAX_MESSAGES,
     .sub = &ec_def_chat_msg},
    {.name = "max_tokens", .kind = EC_FK_MAXTOK, .off = offsetof(ec_query, max_tokens)},
    {.name = "temperature",
     .kind = EC_FK_OPTDBL,
     .off = offsetof(ec_query, temperature),
     .aux = offsetof(ec_query, has_temperature),
     .lo = 0.0,
     .hi = 2.0},
    {.name = "policy", .kind = EC_FK_POLICY, .off = offsetof(ec_query, policy)},
    {.name = "source", .kind = EC_FK_STR, .off = offsetof(ec_query, source), .limit = EC_MAX_ID},
    {.name = "deadline_ms", .kind = EC_FK_U32, .off = offsetof(ec_query, deadline_ms)},
    {.name = "consent", .kind = EC_FK_BOOL, .off = offsetof(ec_query, consent)},
};

const ec_msgdef ec_def_query = {
    .name = "query",
    EC_FIELDS(query_fields),
    .size = sizeof(ec_query),
    .v_optional = true,
    .check = query_check,
    .clear = query_clear_v,
};

ec_err ec_query_encode(const ec_query *q, ec_buf *out, ec_error *err)
{
    return ec_mp_encode(&ec_def_query, q, out, err);
}

ec_err ec_query_decode(const void *data, size_t len, ec_query *out, ec_error *err)
{
    return ec_mp_decode(&ec_def_query, data, len, out, err);
}
