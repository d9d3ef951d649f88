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

typedef struct ec_provider {
    const char *name;
    bool local; /* served on the device */
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

#endif
