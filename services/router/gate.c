#include "gate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Phrases with which small models say they do not know. Lower-case. */
static const char *const hedges[] = {
    "i don't know",     "i do not know", "i'm not sure", "i am not sure", "i cannot",
    "i can't",          "as an ai",      "i'm unable",   "i am unable",   "not enough information",
    "cannot determine", "unclear",       NULL,
};

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, n) == 0)
            return true;
    }
    return false;
}

static bool blank(const char *s)
{
    if (!s)
        return true;
    for (; *s; s++) {
        if (!isspace((unsigned char)*s))
            return false;
    }
    return true;
}

double ec_gate_confidence(const ec_infer_reply *r)
{
    if (blank(r->answer))
        return 0.0;
    double c;
    if (r->lp.present && r->lp.n_tokens > 0) {
        c = r->lp.geo_prob;
        if (r->lp.n_tokens <= 3 && r->lp.first_prob < c)
            c = r->lp.first_prob;
    } else {
        /* No logprobs: an answer that is not hedged earns a middling score that
         * passes the aggressive preset but not the balanced one, so a
         * logprob-less local tier escalates by default rather than guessing. */
        c = 0.65;
        for (size_t i = 0; hedges[i]; i++) {
            if (contains_ci(r->answer, hedges[i])) {
                c = 0.2;
                break;
            }
        }
    }
    if (r->finish_reason && strcmp(r->finish_reason, "length") == 0)
        c *= 0.5;
    if (c < 0 || isnan(c))
        c = 0;
    if (c > 1)
        c = 1;
    return c;
}

double ec_gate_threshold(const ec_config *cfg, size_t ti)
{
    double t = cfg->tiers[ti].min_confidence;
    return t >= 0 ? t : cfg->min_confidence;
}

struct ec_gate {
    const ec_config *cfg;
};

static const char *const complexity_names[] = {NULL,       "trivial", "simple",
                                               "moderate", "hard",    "expert"};

const char *ec_complexity_name(ec_complexity c)
{
    if ((int)c < 0 || c > EC_COMPLEXITY_EXPERT)
        return NULL;
    return complexity_names[c];
}

ec_err ec_gate_create(ec_gate **out, const ec_config *cfg, ec_error *err)
{
    ec_gate *g = calloc(1, sizeof(*g));
    if (!g)
        return ec_error_set(err, EC_ERR_NOMEM, "gate: out of memory");
    g->cfg = cfg;
    *out = g;
    return EC_OK;
}

void ec_gate_destroy(ec_gate *g)
{
    free(g);
}

void ec_gate_classify(const ec_gate *g, const ec_query *q, ec_gate_query *out)
{
    (void)g;
    (void)q;
    out->complexity = EC_COMPLEXITY_UNKNOWN;
    out->preroute_cloud = false;
}

void ec_gate_judge(const ec_gate *g, size_t tier_index, const ec_gate_query *gq,
                   const ec_infer_reply *rep, ec_gate_verdict *out)
{
    (void)gq;
    out->raw = ec_gate_confidence(rep);
    out->confidence = out->raw;
    out->threshold = ec_gate_threshold(g->cfg, tier_index);
}
