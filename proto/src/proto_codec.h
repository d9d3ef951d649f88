/* Private to ec_proto (proto_codec.h): the schema tables and the one generic codec that every
 * message goes through.
 *
 * Each message is described once, as a table of fields (key, kind, offset into
 * the C struct, limit). The msgpack encoder, the msgpack decoder and both JSON
 * directions all walk the same table, so a key name, a limit or an error
 * message cannot drift between them: JSON is decoded by turning the jansson
 * tree into a msgpack_object tree and running the msgpack decoder on it, and
 * JSON is encoded by encoding msgpack and converting the result. */
#ifndef EC_PROTO_CODEC_H
#define EC_PROTO_CODEC_H

#include <msgpack.h>
#include <stdbool.h>
#include <stddef.h>

#include "edgecascade/proto.h"
#include "proto_scan.h"

typedef enum ec_fkind {
    EC_FK_VERSION, /* "v": integer EC_PROTO_VERSION */
    EC_FK_STR,     /* char *; limit = max bytes */
    EC_FK_U32,     /* uint32_t */
    EC_FK_U64,     /* uint64_t */
    EC_FK_MAXTOK,  /* int32_t 0..EC_MAX_TOKENS_LIMIT; 0 travels as nil */
    EC_FK_DBL,     /* double, finite */
    EC_FK_OPTDBL,  /* double with a bool "has" flag at aux; range lo..hi */
    EC_FK_BOOL,    /* bool */
    EC_FK_POLICY,  /* ec_policy as its name */
    EC_FK_ARRAY,   /* pointer at off, size_t count at aux, elements per sub */
    EC_FK_ERROR,   /* embedded ec_wire_error; nil when code == NULL */
    EC_FK_LP,      /* embedded ec_lp_stats; nil when !present */
} ec_fkind;

#define EC_FF_REQUIRED 1u /* must be present and non-nil; arrays also non-empty */
#define EC_FF_NONEMPTY 2u /* a string, when present, must not be "" */
/* Ids end up in topic names (<root>/result/<id>): no '/', '+', '#', no
 * control characters or spaces. */
#define EC_FF_TOPIC 4u
/* A number that does not apply when the string pointer at aux is NULL (a
 * Result without an answering tier: its tier_index, confidence and
 * threshold): encoded as nil then, so a client cannot mistake an error for
 * tier 0's answer, and decoded as 0. Only for EC_FK_U32 and EC_FK_DBL. */
#define EC_FF_NIL_IF_NULL 8u

struct ec_msgdef;

typedef struct ec_field {
    const char *name;
    ec_fkind kind;
    unsigned flags;
    size_t off;
    size_t aux;
    size_t limit;
    double lo, hi;
    const struct ec_msgdef *sub; /* element / embedded map schema */
} ec_field;

/* What a validation failure is called: decoders report malformed wire input,
 * encoders report a bad argument. Limits are EC_ERR_TOOBIG either way. */
typedef struct ec_ctx {
    ec_err bad;
    ec_error *err;
} ec_ctx;

typedef struct ec_msgdef {
    const char *name; /* error path prefix: "query", "attempts[1]" is built */
    const ec_field *fields;
    size_t n_fields;
    size_t size;     /* sizeof the C struct (array elements) */
    bool v_optional; /* a missing "v" means 1 (hand-written JSON queries) */
    /* Checks across fields, after every field is valid. */
    ec_err (*check)(const void *msg, const char *path, const ec_ctx *cx);
    void (*clear)(void *msg);
} ec_msgdef;

#define EC_FIELDS(a) (a), (sizeof(a) / sizeof((a)[0]))

extern const ec_msgdef ec_def_query;
extern const ec_msgdef ec_def_infer_request;
extern const ec_msgdef ec_def_infer_reply;
extern const ec_msgdef ec_def_result;
extern const ec_msgdef ec_def_status;
extern const ec_msgdef ec_def_chat_msg;
extern const ec_msgdef ec_def_attempt;
extern const ec_msgdef ec_def_wire_error;
extern const ec_msgdef ec_def_lp;

/* Generic codec (proto_codec.c). */
ec_err ec_mp_encode(const ec_msgdef *def, const void *msg, ec_buf *out, ec_error *err);
ec_err ec_mp_decode(const ec_msgdef *def, const void *data, size_t len, void *out, ec_error *err);
/* Validates and fills out from an already parsed tree (the JSON path). */
ec_err ec_obj_decode(const ec_msgdef *def, const msgpack_object *root, void *out, ec_error *err);

/* Cross-field helpers shared by Query and InferRequest. */
ec_err ec_check_messages_total(const ec_chat_msg *m, size_t n, const char *extra, const char *path,
                               const ec_ctx *cx);

/* Frees n chat messages and the array. */
void ec_chat_msgs_free(ec_chat_msg *m, size_t n);

#endif
