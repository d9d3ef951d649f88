/* Model providers: one const struct of function pointers per API, in one table
 * looked up by name (provider.c). A provider only builds requests and reads
 * answers; transport, retries and timing belong to the caller. Adding a
 * provider touches one file and one table line. */
#ifndef EC_PROVIDER_H
#define EC_PROVIDER_H

#include <stdbool.h>
#include "edgecascade/config.h"
#include "edgecascade/http.h"
#include "edgecascade/proto.h"

/* How the caller should treat an answer. */
typedef enum ec_outcome {
    EC_OUTCOME_OK = 0, /* reply filled */
    EC_OUTCOME_RETRY,  /* transient: 429, 5xx, malformed body from an overloaded server */
    EC_OUTCOME_ERROR,  /* permanent: 4xx, configuration error */
} ec_outcome;

/* What an API accepts for the parameters a Query carries, as its own
 * documentation says; ec_provider_map_params maps a request into it. */
typedef struct ec_provider_params {
    double temperature_max;       /* highest temperature the API accepts (lowest is 0) */
    const char *max_tokens_field; /* the body field that carries max tokens */
    int32_t max_tokens_default; /* sent when the query gives none (the API requires it); 0: omit */
    bool logprobs;              /* the API can return token logprobs */
    int top_logprobs;           /* alternatives asked per token with logprobs; -1: field not sent */
    /* What to change when the server returns no logprobs though asked
     * (logged once by edgecascade-local, printed by `edgecascade doctor`). */
    const char *logprobs_hint;
} ec_provider_params;

/* What a provider puts in the body for one request (after mapping). */
typedef struct ec_sent_params {
    bool has_temperature;
    double temperature;       /* as sent */
    double temperature_asked; /* as the query asked (differs when clamped) */
    bool temperature_clamped;
    int32_t max_tokens; /* 0: not sent */
    bool max_tokens_default;
    bool logprobs;
    int top_logprobs; /* -1: not sent */
} ec_sent_params;

typedef struct ec_provider {
    const char *name;
    bool local; /* served on the device */
    const ec_provider_params *params;
    /* Builds the chat request for r against tier t. api_key may be NULL. */
    ec_err (*build_chat)(const ec_tier_cfg *t, const ec_infer_request *r, const char *api_key,
                         ec_http_request *out, ec_error *err);
    /* Reads a chat response into out (answer, model, finish_reason, lp stats,
     * tokens). On RETRY/ERROR, err says why. */
    ec_outcome (*parse_chat)(const ec_tier_cfg *t, const ec_http_response *resp,
                             ec_infer_reply *out, ec_error *err);
    /* Model discovery (GET /v1/models or /api/tags). */
    ec_err (*build_models)(const ec_tier_cfg *t, const char *api_key, ec_http_request *out,
                           ec_error *err);
    /* Fills names (heap array of heap strings) from a discovery response. */
    ec_err (*parse_models)(const ec_http_response *resp, char ***names, size_t *n, ec_error *err);
} ec_provider;

/* NULL when unknown. Names: vllm, openai-compatible, ollama, openai, anthropic. */
const ec_provider *ec_provider_find(const char *name);
/* The whole NULL-terminated table (for --help and tests). */
const ec_provider *const *ec_provider_all(void);

void ec_models_free(char **names, size_t n);

/* Maps r's parameters into what p accepts, by one rule for every API: a
 * temperature above the API's maximum is sent as that maximum (clamped); a
 * required max tokens the query leaves out gets the API's default; logprobs
 * are asked only when the request, the tier and the API all want them. A
 * value no rule covers (negative or non-finite temperature, negative max
 * tokens) is refused with EC_ERR_INVAL before any call. */
ec_err ec_provider_map_params(const ec_provider *p, const ec_tier_cfg *t, const ec_infer_request *r,
                              ec_sent_params *out, ec_error *err);
/* What was sent, as one compact JSON object for the decision log, e.g.
 * {"temperature":1,"temperature_asked":1.5,"max_tokens":512,...}. */
void ec_sent_params_json(const ec_provider *p, const ec_sent_params *s, char *out, size_t cap);

#endif
