/* Answers: a scripted rule's text, or a sentence assembled from phrase tables
 * by an FNV-1a hash of the last user message. Tokens are split the way BPE
 * tokenizers tend to split English: each token carries its leading
 * whitespace, so concatenating the tokens gives back the answer exactly. */
#include "sim_answer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/buf.h"

static const char *const openers[] = {
    "Based on the information given,",
    "From the description,",
    "In short,",
    "As a first estimate,",
    "Going by the figures provided,",
    "Without further data,",
    "On balance,",
    "Taking the question at face value,",
};
static const char *const subjects[] = {
    "the value",       "the reading",         "the reported condition", "the process",
    "the measurement", "the described setup", "the equipment",          "the situation",
};
static const char *const predicates[] = {
    "appears to be within normal limits",   "looks consistent with typical operation",
    "may need a closer inspection",         "should be checked against the specification",
    "does not indicate an immediate fault", "warrants a follow-up measurement",
    "is plausible but not conclusive",      "matches common field experience",
};
static const char *const closers[] = {
    ".",
    "; confirm with the datasheet.",
    "; log it and re-check at the next shift.",
    "; consult the maintenance manual for limits.",
    "; compare with the last calibration record.",
    "; escalate if the trend continues.",
    "; no action is needed beyond routine monitoring.",
    "; verify the sensor before acting on it.",
};
#define PICK(table, h, shift) (table)[((h) >> (shift)) % (sizeof(table) / sizeof((table)[0]))]

static const char *const alternatives[] = {" the", " a", " and", " is", ",", " of", " to", "."};

uint64_t sim_fnv1a(const void *data, size_t len, uint64_t seed)
{
    const unsigned char *p = data;
    uint64_t h = seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* splitmix64 finaliser: spreads FNV's weak low bits over the whole word. */
static uint64_t mix(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 31;
    return x;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static size_t count_words(const char *s)
{
    size_t n = 0;
    bool in = false;
    for (; *s; s++) {
        if (is_space(*s)) {
            in = false;
        } else if (!in) {
            in = true;
            n++;
        }
    }
    return n;
}

/* Text of a content value: a string, or the concatenated text parts of an
 * array. Returns a heap string, or NULL with err set. */
static char *content_text(json_t *content, const char *where, ec_error *err)
{
    if (json_is_string(content))
        return strdup(json_string_value(content));
    if (!json_is_array(content)) {
        ec_error_set(err, EC_ERR_INVAL, "%s: content must be a string or an array of parts", where);
        return NULL;
    }
    ec_buf b;
    ec_buf_init(&b, 0);
    size_t i;
    json_t *part;
    json_array_foreach(content, i, part)
    {
        json_t *text = json_object_get(part, "text");
        if (!json_is_string(text))
            continue; /* images and other parts carry no words */
        if ((b.len && ec_buf_append(&b, "\n", 1)) ||
            ec_buf_append(&b, json_string_value(text), json_string_length(text))) {
            ec_buf_free(&b);
            ec_error_set(err, EC_ERR_TOOBIG, "%s: content too large", where);
            return NULL;
        }
    }
    return ec_buf_take(&b, NULL);
}

ec_err sim_prompt_read(json_t *messages, json_t *system, sim_prompt *out, ec_error *err)
{
    memset(out, 0, sizeof(*out));
    ec_err rc = EC_OK;
    char *text = NULL;
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return ec_error_set(err, EC_ERR_INVAL, "messages: expected a non-empty array");
    if (system && !json_is_null(system)) {
        if (!(text = content_text(system, "system", err)))
            return err ? err->code : EC_ERR_INVAL;
        out->words += count_words(text);
        free(text);
        text = NULL;
    }
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        char where[48];
        snprintf(where, sizeof(where), "messages[%zu]", i);
        json_t *role = json_object_get(msg, "role");
        if (!json_is_object(msg) || !json_is_string(role)) {
            rc =
                ec_error_set(err, EC_ERR_INVAL, "%s: expected an object with a string role", where);
            goto out;
        }
        json_t *content = json_object_get(msg, "content");
        if (!content || json_is_null(content))
            continue; /* assistant tool-call turns have no content */
        if (!(text = content_text(content, where, err))) {
            rc = err ? err->code : EC_ERR_INVAL;
            goto out;
        }
        out->words += count_words(text);
        if (strcmp(json_string_value(role), "user") == 0) {
            free(out->last_user);
            out->last_user = text;
        } else {
            free(text);
        }
        text = NULL;
    }
    if (!out->last_user && !(out->last_user = strdup("")))
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
out:
    if (rc)
        sim_prompt_clear(out);
    return rc;
}

void sim_prompt_clear(sim_prompt *p)
{
    if (!p)
        return;
    free(p->last_user);
    p->last_user = NULL;
    p->words = 0;
}

unsigned sim_prompt_tokens(const sim_prompt *p)
{
    size_t t = (p->words * 4 + 2) / 3;
    return t ? (unsigned)t : 1u;
}

/* Splits a->text into tokens: a run of whitespace then a run of non-space. */
static ec_err split(sim_answer *a)
{
    size_t n = 0, cap = 0;
    const char *s = a->text;
    for (size_t i = 0; s[i];) {
        size_t start = i;
        while (s[i] && is_space(s[i]))
            i++;
        while (s[i] && !is_space(s[i]))
            i++;
        if (n == cap) {
            cap = cap ? cap * 2 : 32;
            size_t *off = realloc(a->off, cap * sizeof(size_t));
            if (off)
                a->off = off;
            size_t *len = realloc(a->len, cap * sizeof(size_t));
            if (len)
                a->len = len;
            if (!off || !len)
                return EC_ERR_NOMEM;
        }
        a->off[n] = start;
        a->len[n] = i - start;
        n++;
    }
    a->n = n;
    return EC_OK;
}

static char *default_text(const sim_model *m, uint64_t h)
{
    char *out = NULL;
    char *sentence = NULL;
    if (asprintf(&sentence, "%s %s %s%s", PICK(openers, h, 0), PICK(subjects, h, 8),
                 PICK(predicates, h, 16), PICK(closers, h, 24)) < 0)
        return NULL;
    if (asprintf(&out, "[simulated %s] %s", m->name, sentence) < 0)
        out = NULL;
    free(sentence);
    return out;
}

ec_err sim_answer_make(const sim_script *s, const sim_model *m, const sim_prompt *p,
                       long max_tokens, uint64_t sample, sim_answer *out)
{
    memset(out, 0, sizeof(*out));
    ec_err rc = EC_ERR_NOMEM;
    const sim_rule *rule = sim_script_rule(s, m->name, p->last_user);
    uint64_t h = mix(sim_fnv1a(p->last_user, strlen(p->last_user), SIM_FNV_OFFSET));
    const char *said = rule ? rule->answer : NULL;
    if (rule && sample && rule->n_samples)
        said = rule->samples[(sample - 1) % rule->n_samples];
    out->text = said ? strdup(said) : default_text(m, h);
    if (!out->text || split(out))
        goto out;
    if (max_tokens >= 0 && out->n > (size_t)max_tokens) {
        out->n = (size_t)max_tokens;
        out->truncated = true;
        out->text[out->n ? out->off[out->n - 1] + out->len[out->n - 1] : 0] = '\0';
    }
    if (!(out->lp = calloc(out->n ? out->n : 1, sizeof(double))))
        goto out;
    /* Jitter depends on the model too, so two models never agree to the digit. */
    uint64_t hm = mix(sim_fnv1a(m->name, strlen(m->name), h));
    for (size_t i = 0; i < out->n; i++) {
        double lp;
        if (rule && rule->has_logprob) {
            lp = rule->logprob;
        } else if (rule && rule->n_logprobs) {
            lp = rule->logprobs[i < rule->n_logprobs ? i : rule->n_logprobs - 1];
        } else if (rule) {
            lp = m->default_logprob;
        } else {
            double j = (double)(mix(hm + i) % 1001u) / 1000.0 - 0.5; /* [-0.5, 0.5] */
            lp = m->default_logprob + 0.1 * j;
        }
        out->lp[i] = lp > 0.0 ? 0.0 : lp;
    }
    rc = EC_OK;
out:
    if (rc)
        sim_answer_clear(out);
    return rc;
}

void sim_answer_clear(sim_answer *a)
{
    if (!a)
        return;
    free(a->text);
    free(a->off);
    free(a->len);
    free(a->lp);
    memset(a, 0, sizeof(*a));
}

char *sim_answer_token(const sim_answer *a, size_t i)
{
    return strndup(a->text + a->off[i], a->len[i]);
}

size_t sim_answer_alternatives(const sim_answer *a, size_t i, size_t k, const char **tok,
                               double *lp)
{
    const size_t nalt = sizeof(alternatives) / sizeof(alternatives[0]);
    double rest = 1.0 - exp(a->lp[i]); /* probability mass left for the others */
    size_t n = 0;
    for (size_t j = 0; j < nalt && n < k; j++) {
        const char *t = alternatives[(i + j) % nalt];
        if (strlen(t) == a->len[i] && memcmp(t, a->text + a->off[i], a->len[i]) == 0)
            continue;
        rest /= 2.0; /* halves sum to less than the mass left */
        tok[n] = t;
        lp[n] = rest > 1e-300 ? log(rest) : -690.0;
        n++;
    }
    return n;
}
