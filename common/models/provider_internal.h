/* Helpers shared by the provider implementations (provider_*.c). Not a
 * public interface: everything here is about turning JSON into ec_infer_reply
 * fields and HTTP statuses into outcomes the same way for every API. */
#ifndef EC_PROVIDER_INTERNAL_H
#define EC_PROVIDER_INTERNAL_H

#include <cjson/cJSON.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/provider.h"

/* When neither the tier nor the request gives a timeout, a call still must
 * not hang forever on a stalled server. */
#define EC_PROVIDER_DEFAULT_TIMEOUT_MS 60000u
#define EC_PROVIDER_MODELS_TIMEOUT_MS  10000u
/* How much of an API's own error text goes into our message. */
#define EC_PROVIDER_API_MSG_MAX 200u
/* Anthropic requires max_tokens; this is used when the query gives none. */
#define EC_ANTHROPIC_DEFAULT_MAX_TOKENS 512
#define EC_ANTHROPIC_VERSION            "2023-06-01"

extern const ec_provider ec_provider_vllm;
extern const ec_provider ec_provider_openai_compatible;
extern const ec_provider ec_provider_openai;
extern const ec_provider ec_provider_ollama;
extern const ec_provider ec_provider_anthropic;

/* The tier's name for messages: name, else model, else "?". */
const char *ec_prov_tier_name(const ec_tier_cfg *t);

/* The tier's timeout, lowered to the request's when that is smaller and set. */
uint32_t ec_prov_timeout(const ec_tier_cfg *t, const ec_infer_request *r);

/* Checks that the tier has a base URL and, for a chat request r (not NULL),
 * a model and messages. */
ec_err ec_prov_check(const ec_tier_cfg *t, const ec_infer_request *r, ec_error *err);

/* Starts out as method with url = base_url + path. */
ec_err ec_prov_request_start(ec_http_request *out, const char *method, const char *base,
                             const char *path, ec_error *err);

/* *out = [{"role":..,"content":..}, ...] of the request's messages; system
 * messages left out when skip_system. Text must be valid UTF-8 (JSON). */
ec_err ec_prov_messages_json(const ec_infer_request *r, bool skip_system, cJSON **out,
                             ec_error *err);

/* Serialises root (compact, keys in insertion order, so bodies compare byte
 * for byte) into out->body and frees it. */
ec_err ec_prov_set_body(ec_http_request *out, cJSON *root, ec_error *err);

/* Classifies a non-200 response: RETRY or ERROR, with err naming the status,
 * provider, model, a hint for the integrator and the API's own message. */
ec_outcome ec_prov_status_outcome(const ec_tier_cfg *t, const ec_http_response *resp,
                                  ec_error *err);

/* Parses a 200 body into a JSON object, or RETRY with "malformed response". */
cJSON *ec_prov_parse_body(const ec_tier_cfg *t, const ec_http_response *resp, ec_error *err);

/* Sets err to "malformed response from <tier>: <what>" and returns RETRY. */
ec_outcome ec_prov_malformed(const ec_tier_cfg *t, ec_error *err, const char *what);

/* Fills reply fields (all copied) on success; the answer is cut at
 * EC_MAX_ANSWER on a UTF-8 boundary so the reply fits on the wire. Frees
 * whatever out held in those fields before. */
ec_err ec_prov_fill_reply(const ec_tier_cfg *t, ec_infer_reply *out, const char *answer,
                          size_t answer_len, const char *model, const char *finish_reason,
                          uint32_t tokens_in, uint32_t tokens_out, ec_error *err);

/* Mean/min/... of arr[].logprob (OpenAI's choices[0].logprobs.content,
 * Ollama's top-level logprobs); not an array or empty -> present=false. */
ec_err ec_prov_logprobs(const cJSON *arr, ec_lp_stats *lp, ec_error *err);

/* parse_chat of the OpenAI-shaped providers, for a 200, in its two ways
 * (provider_openai.c): the cJSON tree, which decides every case, and the
 * tokenizer (json_fast.h), which handles well-formed answers only and says
 * false, leaving out untouched, for everything else. Apart so that a test
 * can pin that they agree. */
/* The OpenAI chat request built as a cJSON tree and printed: the reference
 * test_provider_fast holds the provider's direct writer to. */
ec_err ec_prov_openai_build_dom(const ec_provider *p, const ec_tier_cfg *t,
                                const ec_infer_request *r, const char *api_key,
                                ec_http_request *out, ec_error *err);
ec_outcome ec_prov_openai_parse_dom(const ec_tier_cfg *t, const ec_http_response *resp,
                                    ec_infer_reply *out, ec_error *err);
bool ec_prov_openai_parse_fast(const ec_tier_cfg *t, const ec_http_response *resp,
                               ec_infer_reply *out);
/* Discovery: non-200 -> EC_ERR_HTTP, then names = root[array_key][].name_key. */
ec_err ec_prov_parse_models(const ec_http_response *resp, const char *array_key,
                            const char *name_key, char ***names, size_t *n, ec_error *err);

/* ---- JSON (provider_json.c): cJSON, plus the two checks an answer needs ---- */

/* Parses text[0..n) (no NUL needed); refuses text after the value. NULL
 * with why set ("<reason> at byte <n>") when refused. */
cJSON *ec_prov_json_parse(const char *text, size_t n, char *why, size_t whylen);

/* obj[key] (the first, if the key is repeated); NULL when obj is not an
 * object or has no such key. */
cJSON *ec_prov_json_get(const cJSON *obj, const char *key);

/* The string's value; NULL when v is not a string or not valid UTF-8. */
const char *ec_prov_json_str(const cJSON *v);

/* A non-negative whole number as a token count (0 otherwise), at most
 * UINT32_MAX. */
uint32_t ec_prov_json_count(const cJSON *v);
/* The same for a number already read: 0 unless a non-negative whole one. */
uint32_t ec_prov_count(double d);

/* A string item; NULL when s is NULL, not valid UTF-8 or memory ran out. */
cJSON *ec_prov_json_string(const char *s);

/* A number item; NULL when d is not finite or memory ran out. */
cJSON *ec_prov_json_real(double d);

/* obj[key] = item, taking item even when it fails (a single owner); 0 or -1
 * (item or obj NULL, no memory). */
int ec_prov_json_set(cJSON *obj, const char *key, cJSON *item);

#endif
