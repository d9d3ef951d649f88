/* Parameters mapped per provider, never passed through.
 *
 * A Query may ask for any temperature in 0..2 and up to EC_MAX_TOKENS_LIMIT
 * tokens; each API documents what it accepts (provider_*.c declares it in
 * its ec_provider_params). One rule, the same for every API, so a plant
 * integrator can predict what a model receives:
 *
 *   temperature above the API's maximum -> sent as that maximum (clamped):
 *     a query at 1.5 reaches Anthropic (0..1) as 1.0, the most random it
 *     offers; values inside the range are sent unchanged everywhere, so 0.2
 *     means 0.2 on every tier (scaling, e.g. halving, would change them too).
 *   max tokens the API requires but the query leaves out -> the API's
 *     default (Anthropic: EC_ANTHROPIC_DEFAULT_MAX_TOKENS).
 *   logprobs -> asked only when the request, the tier (logprobs: true) and
 *     the API all want them, with top_logprobs as the API needs (llama.cpp
 *     computes 20 alternatives per token unless told 1).
 *   anything no rule covers (negative or non-finite temperature, negative
 *     max tokens: the wire decoder refuses them, code paths might not) ->
 *     refused with EC_ERR_INVAL before any call.
 *
 * What was sent goes into the InferReply ("sent") and from there into the
 * decision log (attempts.sent), so a clamp is never silent. */
#include "provider_internal.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

ec_err ec_provider_map_params(const ec_provider *p, const ec_tier_cfg *t, const ec_infer_request *r,
                              ec_sent_params *out, ec_error *err)
{
    memset(out, 0, sizeof(*out));
    out->top_logprobs = -1;
    const ec_provider_params *pp = p ? p->params : NULL;
    if (!pp)
        return ec_error_set(err, EC_ERR_CONFIG, "provider %s declares no parameters",
                            p ? p->name : "?");
    if (r->has_temperature) {
        if (!isfinite(r->temperature) || r->temperature < 0)
            return ec_error_set(err, EC_ERR_INVAL,
                                "tier %s: temperature %g is outside 0..%g (%s); not sent",
                                ec_prov_tier_name(t), r->temperature, pp->temperature_max, p->name);
        out->has_temperature = true;
        out->temperature_asked = r->temperature;
        out->temperature = r->temperature;
        if (r->temperature > pp->temperature_max) {
            out->temperature = pp->temperature_max;
            out->temperature_clamped = true;
        }
    }
    if (r->max_tokens < 0)
        return ec_error_set(err, EC_ERR_INVAL, "tier %s: max_tokens %d is negative; not sent",
                            ec_prov_tier_name(t), (int)r->max_tokens);
    out->max_tokens = r->max_tokens;
    if (out->max_tokens == 0 && pp->max_tokens_default > 0) {
        out->max_tokens = pp->max_tokens_default;
        out->max_tokens_default = true;
    }
    out->logprobs = r->logprobs && t->logprobs && pp->logprobs;
    if (out->logprobs)
        out->top_logprobs = pp->top_logprobs;
    return EC_OK;
}

void ec_sent_params_json(const ec_provider *p, const ec_sent_params *s, char *out, size_t cap)
{
    if (cap == 0)
        return;
    const char *field = p && p->params ? p->params->max_tokens_field : "max_tokens";
    size_t n = (size_t)snprintf(out, cap, "{\"provider\":\"%s\"", p ? p->name : "?");
#define EC_ADD(...)                                                                                \
    do {                                                                                           \
        if (n < cap)                                                                               \
            n += (size_t)snprintf(out + n, cap - n, __VA_ARGS__);                                  \
    } while (0)
    if (s->has_temperature) {
        EC_ADD(",\"temperature\":%.15g", s->temperature);
        if (s->temperature_clamped)
            EC_ADD(",\"temperature_asked\":%.15g,\"temperature_rule\":\"clamped to the API's "
                   "maximum %.15g\"",
                   s->temperature_asked, s->temperature);
    }
    if (s->max_tokens > 0) {
        EC_ADD(",\"%s\":%d", field, (int)s->max_tokens);
        if (s->max_tokens_default)
            EC_ADD(",\"max_tokens_rule\":\"default: the API requires it\"");
    }
    EC_ADD(",\"logprobs\":%s", s->logprobs ? "true" : "false");
    if (s->top_logprobs >= 0)
        EC_ADD(",\"top_logprobs\":%d", s->top_logprobs);
    EC_ADD("}");
#undef EC_ADD
    if (n >= cap) /* cut: better no record than broken JSON */
        snprintf(out, cap, "{}");
}
