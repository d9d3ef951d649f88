/* The quality gate: signals, query complexity, calibration and thresholds.
 *
 * With token logprobs the raw signal is the geometric-mean token probability
 * (capped by the first token's for answers of up to three tokens: there the
 * answer is that token), halved for a truncated answer. That is the signal
 * the calibration files are fitted on (EC_CALIB_FEATURE); text signals do not
 * move it, because they would change what the fitted map means. Without
 * logprobs a text heuristic stands in: hedging and refusal phrases, answer
 * length against what the query asks for, and keyword coverage. */
#include "gate.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edgecascade/calib.h"
#include "edgecascade/log.h"

/* ---- text signals ---- */

/* Phrases with which small models say they do not know. Lower-case. */
static const char *const hedges[] = {
    "i don't know",     "i do not know", "i'm not sure", "i am not sure", "i cannot",
    "i can't",          "as an ai",      "i'm unable",   "i am unable",   "not enough information",
    "cannot determine", "unclear",       NULL,
};

/* Outright refusals: worse than a hedge, the draft holds no answer at all. */
static const char *const refusals[] = {
    "i cannot help",     "i can't help",     "i cannot assist",  "i can't assist",
    "i won't",           "i will not",       "i'm sorry, but i", "i am sorry, but i",
    "as an ai language", "i cannot provide", "i can't provide",  NULL,
};

/* Base score of a logprob-less draft with no sign of trouble: passes the
 * aggressive preset (0.60), not the balanced one (0.70), so such a tier
 * escalates by default rather than guessing. */
#define TEXT_BASE    0.65
#define TEXT_HEDGED  0.20
#define TEXT_REFUSED 0.10
#define SHORT_FACTOR 0.75 /* answer shorter than the query needs */
#define OFFTOPIC     0.85 /* a long answer that mentions almost none of the query's words */

static bool contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, n) == 0)
            return true;
    }
    return false;
}

static bool contains_any(const char *hay, const char *const *list)
{
    for (size_t i = 0; list[i]; i++)
        if (contains_ci(hay, list[i]))
            return true;
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

bool ec_gate_hedged(const char *answer)
{
    return answer && contains_any(answer, hedges);
}

bool ec_gate_refused(const char *answer)
{
    return answer && contains_any(answer, refusals);
}

static bool truncated(const ec_infer_reply *r)
{
    return r->finish_reason && strcmp(r->finish_reason, "length") == 0;
}

static double clamp01(double c)
{
    if (c < 0 || isnan(c))
        return 0;
    return c > 1 ? 1 : c;
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
    } else if (ec_gate_refused(r->answer)) {
        c = TEXT_REFUSED;
    } else if (ec_gate_hedged(r->answer)) {
        c = TEXT_HEDGED;
    } else {
        c = TEXT_BASE;
    }
    if (truncated(r))
        c *= 0.5;
    return clamp01(c);
}

/* ---- words ---- */

static uint32_t fnv32(const char *s, size_t n)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)tolower((unsigned char)s[i]);
        h *= 16777619u;
    }
    return h;
}

/* Words too common to say what a query is about. */
static const char *const stopwords[] = {
    "what",     "which",   "with",     "that",    "this",     "from",      "have",      "does",
    "your",     "about",   "would",    "should",  "could",    "there",     "their",     "when",
    "where",    "answer",  "below",    "give",    "into",     "than",      "then",      "them",
    "they",     "were",    "will",     "been",    "more",     "most",      "some",      "such",
    "only",     "also",    "each",     "other",   "question", "following", "correctly", "directly",
    "without",  "writing", "sentence", "choices", "output",   "anything",  "else",      "complete",
    "multiple", "choice",  NULL,
};

static bool is_stopword(const char *w, size_t n)
{
    for (size_t i = 0; stopwords[i]; i++)
        if (strlen(stopwords[i]) == n && strncasecmp(stopwords[i], w, n) == 0)
            return true;
    return false;
}

/* Calls fn for each run of letters/digits in s. */
static void each_word(const char *s, void (*fn)(const char *w, size_t n, void *ctx), void *ctx)
{
    while (s && *s) {
        while (*s && !isalnum((unsigned char)*s))
            s++;
        const char *w = s;
        while (*s && (isalnum((unsigned char)*s) || *s == '-'))
            s++;
        if (s > w)
            fn(w, (size_t)(s - w), ctx);
    }
}

static void add_keyword(const char *w, size_t n, void *ctx)
{
    ec_gate_query *gq = ctx;
    if (n < 4 || gq->n_kw >= EC_GATE_MAX_KEYWORDS || is_stopword(w, n))
        return;
    uint32_t h = fnv32(w, n);
    for (size_t i = 0; i < gq->n_kw; i++)
        if (gq->kw[i] == h)
            return;
    gq->kw[gq->n_kw++] = h;
}

typedef struct cover_ctx {
    const ec_gate_query *gq;
    uint32_t seen; /* bit i: keyword i found */
    size_t words;
} cover_ctx;

static void mark_keyword(const char *w, size_t n, void *ctx)
{
    cover_ctx *c = ctx;
    c->words++;
    uint32_t h = fnv32(w, n);
    for (size_t i = 0; i < c->gq->n_kw; i++)
        if (c->gq->kw[i] == h)
            c->seen |= 1u << i;
}

double ec_gate_keyword_coverage(const ec_gate_query *gq, const char *answer)
{
    if (!gq || gq->n_kw == 0)
        return 1.0;
    cover_ctx c = {gq, 0, 0};
    each_word(answer, mark_keyword, &c);
    return (double)__builtin_popcount(c.seen) / (double)gq->n_kw;
}

static void count_word(const char *w, size_t n, void *ctx)
{
    (void)w;
    (void)n;
    (*(size_t *)ctx)++;
}

static size_t word_count(const char *s)
{
    size_t n = 0;
    each_word(s, count_word, &n);
    return n;
}

double ec_gate_signal(const ec_gate_query *gq, const ec_infer_reply *r)
{
    double c = ec_gate_confidence(r);
    if (!gq || c == 0 || (r->lp.present && r->lp.n_tokens > 0))
        return c;
    size_t words = word_count(r->answer);
    if (gq->need_words > 1 && words < gq->need_words)
        c *= SHORT_FACTOR;
    if (gq->need_words > 1 && gq->n_kw >= 3 && words >= 8 &&
        ec_gate_keyword_coverage(gq, r->answer) < 0.2)
        c *= OFFTOPIC;
    return clamp01(c);
}

/* ---- query complexity ---- */

static const char *const complexity_names[] = {NULL,       "trivial", "simple",
                                               "moderate", "hard",    "expert"};

const char *ec_complexity_name(ec_complexity c)
{
    if ((int)c < 0 || c > EC_COMPLEXITY_EXPERT)
        return NULL;
    return complexity_names[c];
}

ec_complexity ec_complexity_parse(const char *text)
{
    for (int i = 1; text && i <= EC_COMPLEXITY_EXPERT; i++)
        if (strcasecmp(text, complexity_names[i]) == 0)
            return (ec_complexity)i;
    return EC_COMPLEXITY_UNKNOWN;
}

static const char *const question_words[] = {" what ", " why ",   " how ", " which ",
                                             " when ", " where ", " who ", NULL};

/* Technical vocabulary: engineering, science, medicine, law, finance. Stems. */
static const char *const domain_terms[] = {
    "torque",    "voltage",    "current",   "pressure",    "tolerance",    "frequency",
    "vibration", "bearing",    "calibrat",  "algorithm",   "derivative",   "integral",
    "equation",  "theorem",    "diagnos",   "regression",  "thermodynam",  "kinemat",
    "harmonic",  "impedance",  "resonan",   "coefficient", "stoichiometr", "physiolog",
    "mechanism", "probabilit", "statistic", "optimi",      "root cause",   "failure mode",
    "enzyme",    "syndrome",   "receptor",  "clinical",    "statute",      "jurisdiction",
    "amortiz",   "derivativ",  "eigen",     "polynomial",  "molecul",      "quantum",
    "plc",       "scada",      "hydraulic", "pneumatic",   "spindle",      "setpoint",
    NULL,
};

/* Cues of several steps of reasoning. */
static const char *const multistep_cues[] = {
    "step by step", " then ",  "after that", "first,",    "compare",  "explain why",
    "trade-off",    "analy",   "evaluate",   "justify",   " and why", "estimate",
    "calculate",    "compute", "what if",    "consequen", NULL,
};

/* Cues of expert work: worth two steps each. */
static const char *const expert_cues[] = {"derive", "prove",  "design a", "design an",
                                          "proof",  "formal", NULL};

/* Which byte pairs a lower-cased text holds, folded to 12 bits: a phrase
 * with a pair the text lacks cannot be in it, so most of the ~80 phrases
 * below are ruled out without a strstr (the scans were the most costly part
 * of classifying a query). A fold only lets more phrases through to strstr,
 * so the counts are those of the plain scan (test_gate pins it). */
typedef struct pair_set {
    uint64_t bits[64];
} pair_set;

static unsigned pair_of(unsigned char a, unsigned char b)
{
    return ((a & 63u) << 6) | (b & 63u);
}

static void pairs_of(const char *text, pair_set *ps)
{
    memset(ps, 0, sizeof(*ps));
    for (const unsigned char *p = (const unsigned char *)text; p[0] && p[1]; p++) {
        unsigned k = pair_of(p[0], p[1]);
        ps->bits[k >> 6] |= 1ull << (k & 63);
    }
}

static bool may_hold(const pair_set *ps, const char *phrase)
{
    for (const unsigned char *p = (const unsigned char *)phrase; p[0] && p[1]; p++) {
        unsigned k = pair_of(p[0], p[1]);
        if (!(ps->bits[k >> 6] & (1ull << (k & 63))))
            return false;
    }
    return true;
}

/* text must be lower case (the lists are): strstr is far faster than a
 * case-folding scan, and this runs on every query. ps NULL: every phrase is
 * scanned. */
static size_t count_any(const char *text, const pair_set *ps, const char *const *list)
{
    size_t n = 0;
    for (size_t i = 0; list[i]; i++)
        if ((!ps || may_hold(ps, list[i])) && strstr(text, list[i]))
            n++;
    return n;
}

static bool holds(const char *text, const pair_set *ps, const char *phrase)
{
    return (!ps || may_hold(ps, phrase)) && strstr(text, phrase);
}

#define SCAN_MAX 4096 /* the head of a long query says enough about it */

/* " <text> " in lower case, cut at SCAN_MAX bytes. */
static void lower_padded(const char *text, char *out, size_t cap)
{
    size_t n = 0;
    out[n++] = ' ';
    for (const char *p = text; *p && n + 2 < cap; p++)
        out[n++] = (char)tolower((unsigned char)*p);
    out[n++] = ' ';
    out[n] = '\0';
}

static size_t count_numbers(const char *s)
{
    size_t n = 0;
    for (const char *p = s; *p; p++)
        if (isdigit((unsigned char)*p) && (p == s || !isalnum((unsigned char)p[-1])))
            n++;
    return n;
}

/* Lines that start like "A:", "B)" or "C." : a multiple-choice question. */
static bool has_choices(const char *s)
{
    int seen = 0;
    for (const char *p = s; *p; p++) {
        if ((p == s || p[-1] == '\n') && *p >= 'A' && *p <= 'E' &&
            (p[1] == ':' || p[1] == ')' || p[1] == '.') && p[2] == ' ')
            seen++;
    }
    return seen >= 2;
}

/* What a sufficient answer needs: an explanation takes a sentence; a value,
 * a letter, yes/no or pass/fail takes a word. */
static const char *const explain_cues[] = {"explain", "describe",  "why ",  "how does",
                                           "how do",  "procedure", "steps", "list ",
                                           "summar",  "outline",   NULL};

static ec_complexity complexity(const char *text, bool filtered, ec_query_features *out)
{
    ec_query_features f = {0};
    if (!text)
        text = "";
    f.words = word_count(text);
    /* Padded so " what " also matches at either end of the text. */
    char low[SCAN_MAX];
    lower_padded(text, low, sizeof(low));
    pair_set pairs;
    const pair_set *ps = NULL;
    if (filtered) {
        pairs_of(low, &pairs);
        ps = &pairs;
    }
    for (const char *p = low; *p; p++)
        f.questions += *p == '?';
    f.questions += count_any(low, ps, question_words);
    f.domain = count_any(low, ps, domain_terms);
    f.multistep = count_any(low, ps, multistep_cues);
    size_t expert = count_any(low, ps, expert_cues);
    f.numbers = count_numbers(text);
    f.choice = has_choices(text);
    if (f.choice || holds(low, ps, "yes or no") || holds(low, ps, "pass or fail"))
        f.need_words = 1;
    else
        f.need_words = count_any(low, ps, explain_cues) ? 8 : 1;
    if (out)
        *out = f;

    int score = 0;
    score += f.words > 12;
    score += f.words > 40;
    score += f.words > 120;
    score += f.domain >= 1;
    score += f.domain >= 3;
    score += f.multistep >= 1;
    score += f.multistep >= 2;
    score += 2 * (expert >= 1);
    score += f.numbers >= 3;
    score += f.questions >= 3;
    if (score == 0)
        return f.words <= 8 ? EC_COMPLEXITY_TRIVIAL : EC_COMPLEXITY_SIMPLE;
    if (score == 1)
        return EC_COMPLEXITY_SIMPLE;
    if (score <= 3)
        return EC_COMPLEXITY_MODERATE;
    if (score <= 5)
        return EC_COMPLEXITY_HARD;
    return EC_COMPLEXITY_EXPERT;
}

ec_complexity ec_gate_complexity(const char *text, ec_query_features *out)
{
    return complexity(text, true, out);
}

ec_complexity ec_gate_complexity_unfiltered(const char *text, ec_query_features *out)
{
    return complexity(text, false, out);
}

/* ---- the gate object ---- */

struct ec_gate {
    const ec_config *cfg;
    bool has_calib;
    ec_calib calib;
    bool calibrated[EC_MAX_TIERS]; /* tier's confidences go through calib */
    double base[EC_MAX_TIERS];     /* threshold before the complexity offset */
};

double ec_gate_threshold(const ec_config *cfg, size_t ti)
{
    double t = cfg->tiers[ti].min_confidence;
    return t >= 0 ? t : cfg->min_confidence;
}

/* min_confidence given in the file, rather than resolved from the preset.
 * (Setting it to exactly the preset's own value reads as the preset.) */
static bool explicit_min_confidence(const ec_config *cfg)
{
    double preset;
    return ec_gate_preset_threshold(cfg->gate_preset, &preset) != 0 ||
           cfg->min_confidence != preset;
}

/* Which tiers the file applies to: the local tiers serving the file's local
 * model, or, when none does by that name, every local tier. */
static void pick_tiers(ec_gate *g)
{
    const ec_config *cfg = g->cfg;
    bool named = false;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const ec_tier_cfg *t = &cfg->tiers[i];
        g->calibrated[i] = t->local && g->calib.local_model && t->model &&
                           strcmp(t->model, g->calib.local_model) == 0;
        named |= g->calibrated[i];
    }
    if (!named) {
        for (size_t i = 0; i < cfg->n_tiers; i++)
            g->calibrated[i] = cfg->tiers[i].local;
        ec_log_warn("gate.calibration was fitted for model '%s', which no local tier serves by "
                    "that name; it applies to every local tier",
                    g->calib.local_model ? g->calib.local_model : "?");
    }
}

ec_err ec_gate_create(ec_gate **out, const ec_config *cfg, ec_error *err)
{
    ec_gate *g = calloc(1, sizeof(*g));
    if (!g)
        return ec_error_set(err, EC_ERR_NOMEM, "gate: out of memory");
    g->cfg = cfg;
    if (cfg->gate_calibration && *cfg->gate_calibration) {
        ec_error e = {0};
        if (ec_calib_load(cfg->gate_calibration, &g->calib, &e) != EC_OK) {
            free(g);
            return ec_error_set(err, EC_ERR_CONFIG, "gate.calibration: %s", e.msg);
        }
        g->has_calib = true;
        pick_tiers(g);
    }
    int preset = ec_calib_preset_index(cfg->gate_preset);
    for (size_t i = 0; i < cfg->n_tiers && i < EC_MAX_TIERS; i++) {
        g->base[i] = ec_gate_threshold(cfg, i);
        /* Precedence: a tier's own min_confidence, then an explicit
         * gate.min_confidence (read as a probability of a correct draft),
         * then the file's point for the preset (balanced: its target). */
        if (g->calibrated[i] && cfg->tiers[i].min_confidence < 0 && !explicit_min_confidence(cfg) &&
            preset >= 0)
            g->base[i] = g->calib.preset_threshold[preset];
    }
    if (g->has_calib)
        ec_log_info("gate: calibration %s (local %s, cloud %s, target %.3f): threshold %.4f",
                    cfg->gate_calibration, g->calib.local_model ? g->calib.local_model : "?",
                    g->calib.cloud_model ? g->calib.cloud_model : "?", g->calib.target, g->base[0]);
    *out = g;
    return EC_OK;
}

void ec_gate_destroy(ec_gate *g)
{
    if (!g)
        return;
    ec_calib_free(&g->calib);
    free(g);
}

bool ec_gate_calibrated(const ec_gate *g, size_t ti)
{
    return g->has_calib && ti < EC_MAX_TIERS && g->calibrated[ti];
}

void ec_gate_classify_text(const ec_gate *g, const char *text, ec_gate_query *out)
{
    memset(out, 0, sizeof(*out));
    ec_query_features f;
    out->complexity = ec_gate_complexity(text, &f);
    out->need_words = f.need_words;
    each_word(text, add_keyword, out);
    out->preroute_cloud = g && g->cfg->gate_preroute && out->complexity >= EC_COMPLEXITY_HARD;
}

void ec_gate_classify(const ec_gate *g, const ec_query *q, ec_gate_query *out)
{
    const char *text = q->prompt;
    if ((!text || !*text) && q->n_messages) {
        for (size_t i = q->n_messages; i-- > 0;) {
            if (q->messages[i].role && strcmp(q->messages[i].role, "user") == 0) {
                text = q->messages[i].content;
                break;
            }
        }
    }
    ec_gate_classify_text(g, text, out);
}

void ec_gate_judge(const ec_gate *g, size_t tier_index, const ec_gate_query *gq,
                   const ec_infer_reply *rep, ec_gate_verdict *out)
{
    out->raw = ec_gate_signal(gq, rep);
    out->calibrated = ec_gate_calibrated(g, tier_index);
    out->confidence = out->calibrated ? ec_calib_apply(&g->calib, out->raw) : out->raw;
    double t =
        tier_index < EC_MAX_TIERS ? g->base[tier_index] : ec_gate_threshold(g->cfg, tier_index);
    if (gq && gq->complexity > EC_COMPLEXITY_UNKNOWN && gq->complexity <= EC_COMPLEXITY_EXPERT)
        t += g->cfg->gate_offset[gq->complexity];
    out->threshold = t < 0 ? 0 : t;
}
