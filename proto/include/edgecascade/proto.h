/* edgecascade wire format, version 1 (spec: proto/README.md).
 *
 * Every message is a msgpack map with string keys and a "v" (protocol version)
 * key. Decoders validate types and size limits, reject malformed or oversized
 * input with an ec_error that names the field, never read past the buffer and
 * ignore unknown keys (forward compatibility). Queries and Results also have a
 * JSON form with the same keys.
 *
 * Ownership: a decoded struct owns all its strings and arrays; release it with
 * the matching *_clear(), which leaves it zeroed (and accepts a zeroed struct).
 * Encoders never take ownership. */
#ifndef EC_PROTO_H
#define EC_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/buf.h"
#include "edgecascade/err.h"

#define EC_PROTO_VERSION 1

/* Size limits (bytes unless noted); documented in proto/README.md. */
#define EC_MAX_PAYLOAD      (256u * 1024u) /* one MQTT payload */
#define EC_MAX_ID           128u           /* id, source, model, tier, role, codes */
#define EC_MAX_PROMPT       (64u * 1024u)  /* prompt, or one message's content */
#define EC_MAX_TOTAL_TEXT   (192u * 1024u) /* sum of all message contents */
#define EC_MAX_MESSAGES     64u
#define EC_MAX_ANSWER       (128u * 1024u)
#define EC_MAX_REASON       512u
#define EC_MAX_ERROR_MSG    1024u
#define EC_MAX_TOKENS_LIMIT 32768 /* max_tokens upper bound */
#define EC_MAX_ATTEMPTS     8u    /* tiers recorded in a Result */

typedef enum ec_policy {
    EC_POLICY_AUTO = 0,       /* cascade as the gate decides */
    EC_POLICY_LOCAL_ONLY = 1, /* never leaves the device */
    EC_POLICY_CONSENT = 2,    /* leaves the device only with the query's consent: true */
} ec_policy;

const char *ec_policy_name(ec_policy p);
int ec_policy_parse(const char *s, ec_policy *out); /* 0 on success */

typedef enum ec_encoding { EC_ENC_MSGPACK = 0, EC_ENC_JSON = 1 } ec_encoding;

/* Which encoding a payload is: JSON when its first non-blank byte is '{'. */
ec_encoding ec_payload_encoding(const void *data, size_t len);

typedef struct ec_chat_msg {
    char *role; /* "system", "user", "assistant" */
    char *content;
} ec_chat_msg;

/* Error carried inside a message. code == NULL means no error. Codes are short
 * stable words: "bad_request", "too_large", "busy", "timeout", "upstream",
 * "config", "internal". */
typedef struct ec_wire_error {
    char *code;
    char *message;
} ec_wire_error;

/* ---- Query: a client's question (topic <root>/query) ---- */
typedef struct ec_query {
    char *id;     /* optional on input: decoders leave NULL; router generates */
    char *prompt; /* either prompt or messages (at least one non-empty) */
    ec_chat_msg *messages;
    size_t n_messages;
    int32_t max_tokens; /* 0 = not given */
    double temperature;
    bool has_temperature;
    ec_policy policy;
    char *source;         /* optional: who asked ("plc-7", "scada") */
    uint32_t deadline_ms; /* optional: answer within this many ms of arrival, 0 = config */
    bool consent;         /* policy consent: the caller agrees to a cloud tier */
} ec_query;

/* ---- InferRequest: router -> a tier (topics <root>/infer/local, <root>/infer/cloud) ---- */
typedef struct ec_infer_request {
    char *id;            /* query id */
    uint32_t tier_index; /* position in the configured tier list */
    char *tier;          /* tier name from the config */
    ec_chat_msg *messages;
    size_t n_messages;
    int32_t max_tokens;
    double temperature;
    bool has_temperature;
    bool logprobs;       /* ask the model for token logprobs */
    uint32_t timeout_ms; /* how long the tier may take, 0 = tier default */
    uint32_t samples;    /* self-consistency: answers to draw (0 or 1: one) */
} ec_infer_request;

/* Token logprob statistics of one answer. */
typedef struct ec_lp_stats {
    bool present;      /* false when the provider gave no logprobs */
    uint32_t n_tokens; /* tokens with a logprob */
    double mean;       /* mean natural-log probability */
    double min;        /* lowest token logprob */
    double geo_prob;   /* exp(mean): geometric-mean token probability */
    double first_prob; /* probability of the first answer token */
    double p10;        /* 10th percentile of the token logprobs (nearest rank) */
    double p25; /* 25th percentile: low quantiles defer better than the mean on long answers */
} ec_lp_stats;

/* ---- InferReply: a tier -> router (on the request's Response Topic) ---- */
typedef struct ec_infer_reply {
    char *id;
    uint32_t tier_index;
    char *tier;
    char *model;         /* the model name the server reported */
    char *answer;        /* NULL when error.code is set */
    char *finish_reason; /* "stop", "length", ... or NULL */
    ec_lp_stats lp;
    uint32_t tokens_in;
    uint32_t tokens_out;
    double cost_usd;
    double latency_ms; /* time spent in the tier's HTTP call(s) */
    uint32_t samples;  /* answers drawn (self-consistency), 0 when not asked */
    double agreement;  /* share of the samples that agree with `answer` */
    /* What the provider sent the model (JSON object text, EC_MAX_REASON):
     * the parameters after mapping to the API's ranges, for the decision log.
     * Set on errors too: a refused request is when it matters most. */
    char *sent;
    ec_wire_error error;
} ec_infer_reply;

/* One tier tried for a query, as recorded in the Result and the store. */
typedef struct ec_attempt {
    uint32_t tier_index;
    char *tier;
    char *model;
    double confidence; /* -1 when not judged (error) */
    double threshold;
    bool accepted;
    char *reason;
    double latency_ms;
    double cost_usd;
    uint32_t tokens_in;
    uint32_t tokens_out;
    ec_wire_error error;
} ec_attempt;

/* ---- Result: router -> client (Response Topic and <root>/result/<id>) ---- */
typedef struct ec_result {
    char *id;
    char *answer;        /* NULL when error.code is set and no draft exists */
    char *tier;          /* "local", "cloud" or "cache" (kind of the answering tier) */
    uint32_t tier_index; /* which configured tier answered */
    char *tier_name;
    char *model;
    double confidence;
    double threshold;
    bool escalated;
    char *reason;
    double cost_usd;
    double latency_ms;    /* total, query received to result published */
    double router_ms;     /* time inside the router itself */
    ec_attempt *attempts; /* each tier tried, in order (per-hop latencies) */
    size_t n_attempts;
    uint32_t tokens_in;
    uint32_t tokens_out;
    char *source; /* as the payload claims it (the query's "source") */
    /* Who asked, as the broker authenticated it: the <user> of the topic
     * <root>/query/<user> the query came on (Mosquitto's ACL lets a user
     * write only its own); NULL for a query on the bare <root>/query. */
    char *asker;
    bool degraded;     /* a lower tier's draft served because a better tier was unavailable */
    uint32_t revision; /* 1; 2 when a queued escalation later brings a better answer */
    char *complexity;  /* the query's estimated complexity, or NULL */
    bool redacted;     /* something was masked before the query left the device */
    /* policy consent without consent: true kept a doubtful draft on the device */
    bool escalation_withheld;
    /* Sent again after the router restarted: the query was journaled and
     * run again, and a Result for it may have gone out before the crash. */
    bool replayed;
    ec_wire_error error;
} ec_result;

/* ---- Status: retained, <root>/status/<service> ---- */
/* A local tier with model "auto": the model edgecascade-local found. */
typedef struct ec_model_status {
    char *tier;
    char *model; /* the model in use, or NULL when none was found yet */
    char *state; /* "serving", "missing" (gone from the server's list), "none" (the
                  * server has no model installed), "unknown" */
    char *error; /* what is wrong, or NULL */
    /* "ok" once an answer came with token logprobs, "unavailable" when the
     * server returned none though asked (an Ollama before 0.12.11); NULL
     * before the first answer. */
    char *logprobs;
} ec_model_status;

#define EC_MAX_STATUS_MODELS 8u

typedef struct ec_status {
    char *service; /* "router", "local", "relay" */
    char *state;   /* "online", "offline" */
    char *version;
    char *instance; /* client id */
    uint32_t pid;
    uint64_t ts_ms;
    uint64_t config_ts_ms;   /* when the configuration in force was loaded (start or reload) */
    char *config_error;      /* why the last reload was refused (the old config stays), or NULL */
    ec_model_status *models; /* edgecascade-local's model "auto" tiers */
    size_t n_models;
} ec_status;

/* Whether s[0..n) is valid UTF-8: no overlong forms, no surrogates, nothing
 * past U+10FFFF (what a msgpack str and JSON text must be). */
bool ec_utf8_valid(const char *s, size_t n);

/* msgpack encoders append to out. */
ec_err ec_query_encode(const ec_query *q, ec_buf *out, ec_error *err);
ec_err ec_infer_request_encode(const ec_infer_request *r, ec_buf *out, ec_error *err);
ec_err ec_infer_reply_encode(const ec_infer_reply *r, ec_buf *out, ec_error *err);
ec_err ec_result_encode(const ec_result *r, ec_buf *out, ec_error *err);
ec_err ec_status_encode(const ec_status *s, ec_buf *out, ec_error *err);

/* msgpack decoders; on error *out is left cleared. */
ec_err ec_query_decode(const void *data, size_t len, ec_query *out, ec_error *err);
ec_err ec_infer_request_decode(const void *data, size_t len, ec_infer_request *out, ec_error *err);
ec_err ec_infer_reply_decode(const void *data, size_t len, ec_infer_reply *out, ec_error *err);
ec_err ec_result_decode(const void *data, size_t len, ec_result *out, ec_error *err);
ec_err ec_status_decode(const void *data, size_t len, ec_status *out, ec_error *err);

/* JSON forms (jansson) of Query, Result and Status, same keys as msgpack. */
ec_err ec_query_decode_json(const void *data, size_t len, ec_query *out, ec_error *err);
ec_err ec_query_encode_json(const ec_query *q, ec_buf *out, ec_error *err);
ec_err ec_result_encode_json(const ec_result *r, ec_buf *out, ec_error *err);
ec_err ec_result_decode_json(const void *data, size_t len, ec_result *out, ec_error *err);
ec_err ec_status_encode_json(const ec_status *s, ec_buf *out, ec_error *err);

/* What an incoming query payload is, and so what its answer is encoded in
 * (proto/README.md, "Encodings"):
 * - the MQTT v5 Content Type decides when present: application/json (or any
 *   .../json, ...+json) is JSON, application/msgpack (x-msgpack, vnd.msgpack)
 *   is msgpack, text/plain is a plain-text prompt;
 * - else a first non-blank byte '{' or '[' is JSON (a top-level array is a
 *   JSON error, answered in JSON);
 * - else a msgpack map header (0x80-0x8f, 0xde, 0xdf) is msgpack;
 * - else valid UTF-8 text (Payload Format Indicator 1 says so too) is a
 *   plain-text prompt, answered in JSON;
 * - else msgpack (its decoder says what is wrong). An empty payload is text
 *   (a JSON error). format is the Payload Format Indicator, -1 when absent. */
typedef enum ec_payload_kind {
    EC_PAYLOAD_MSGPACK = 0,
    EC_PAYLOAD_JSON,
    EC_PAYLOAD_TEXT,
} ec_payload_kind;
ec_payload_kind ec_payload_kind_of(const void *data, size_t len, const char *content_type,
                                   int format);

/* Decodes a query by ec_payload_kind_of: a plain-text prompt becomes a query
 * with that prompt (blanks trimmed) and no id. *enc is the encoding of the
 * answer (JSON for text). When a JSON payload does not parse but a string
 * "id" can still be read from it, out->id keeps it (an id that could go into
 * a topic name), so the error Result reaches the client under its own id. */
ec_err ec_query_decode_payload(const void *data, size_t len, const char *content_type, int format,
                               ec_query *out, ec_encoding *enc, ec_error *err);

/* Decodes a query in whichever encoding the payload is in. */
ec_err ec_query_decode_any(const void *data, size_t len, ec_query *out, ec_encoding *enc,
                           ec_error *err);

void ec_query_clear(ec_query *q);
void ec_infer_request_clear(ec_infer_request *r);
void ec_infer_reply_clear(ec_infer_reply *r);
void ec_result_clear(ec_result *r);
void ec_status_clear(ec_status *s);
void ec_attempt_clear(ec_attempt *a);
void ec_wire_error_clear(ec_wire_error *e);
ec_err ec_wire_error_set(ec_wire_error *e, const char *code, const char *message);

/* Logprob statistics over n token logprobs (natural log). */
void ec_lp_stats_compute(const double *logprobs, size_t n, ec_lp_stats *out);

#endif
