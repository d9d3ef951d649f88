/* The quality gate: how confident is a draft, and is that enough?
 *
 * ec_gate_confidence() is the raw signal: with token logprobs, the
 * geometric-mean token probability, capped by the first token's probability
 * for very short answers; without logprobs a conservative text heuristic. A
 * truncated answer (finish_reason "length") is penalised.
 *
 * An ec_gate turns that into a decision for the router: it classifies each
 * query (complexity, and whether to send it straight to the cloud), and judges
 * each reply: a calibrated confidence (when a calibration file is configured:
 * the probability that the draft is correct) against the threshold for that
 * tier and complexity. The router only compares the two numbers. */
#ifndef EC_GATE_H
#define EC_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/config.h"
#include "edgecascade/proto.h"

typedef enum ec_complexity {
    EC_COMPLEXITY_UNKNOWN = 0,
    EC_COMPLEXITY_TRIVIAL,
    EC_COMPLEXITY_SIMPLE,
    EC_COMPLEXITY_MODERATE,
    EC_COMPLEXITY_HARD,
    EC_COMPLEXITY_EXPERT,
} ec_complexity;

const char *ec_complexity_name(ec_complexity c); /* NULL for UNKNOWN */

typedef struct ec_gate ec_gate;

#define EC_GATE_MAX_KEYWORDS 16

/* What the gate says about a query before any tier is asked. Plain data (no
 * allocation): the router keeps it by value. */
typedef struct ec_gate_query {
    ec_complexity complexity;
    bool preroute_cloud; /* skip the local tiers (gate.preroute, hard/expert queries) */
    /* For the text signals of logprob-less tiers: hashes of the query's
     * content words, and how many words a sufficient answer needs. */
    uint32_t kw[EC_GATE_MAX_KEYWORDS];
    uint8_t n_kw;
    uint16_t need_words;
} ec_gate_query;

/* What the gate says about one reply. */
typedef struct ec_gate_verdict {
    double raw;        /* the uncalibrated signal, in [0,1] */
    double confidence; /* calibrated when a calibration is loaded, else raw */
    double threshold;  /* for this tier and complexity */
    bool calibrated;   /* confidence came through the calibration file */
} ec_gate_verdict;

/* The query features behind the complexity estimate (for tests and eval). */
typedef struct ec_query_features {
    size_t words;
    size_t questions; /* '?' and question words */
    size_t domain;    /* technical or expert terms */
    size_t multistep; /* "then", "step by step", "compare", "derive", ... */
    size_t numbers;
    bool choice;         /* multiple choice (A: / B: lines) */
    uint16_t need_words; /* words a sufficient answer needs (1, or 8 for an explanation) */
} ec_query_features;

/* Complexity of a query text (and the features it came from, when f). */
ec_complexity ec_gate_complexity(const char *text, ec_query_features *f);
/* The same with every phrase scanned, none ruled out by the byte-pair filter
 * first: the reference test_gate holds ec_gate_complexity to. */
ec_complexity ec_gate_complexity_unfiltered(const char *text, ec_query_features *f);
/* Parses a complexity name; UNKNOWN when text is not one. */
ec_complexity ec_complexity_parse(const char *text);

/* Text-only signals of a draft, each in [0,1] (1 = no sign of trouble). */
bool ec_gate_hedged(const char *answer);  /* "I don't know", "I cannot", "as an AI" ... */
bool ec_gate_refused(const char *answer); /* an outright refusal */
/* Share of the query's content words that the answer mentions (1 with none). */
double ec_gate_keyword_coverage(const ec_gate_query *gq, const char *answer);
/* The raw signal with the query in view: ec_gate_confidence, and for tiers
 * without logprobs also answer length against need and keyword coverage. */
double ec_gate_signal(const ec_gate_query *gq, const ec_infer_reply *r);
/* Fills gq from a query text (complexity, keywords, need; no preroute). */
void ec_gate_classify_text(const ec_gate *g, const char *text, ec_gate_query *gq);
/* Whether tier ti's confidences go through the calibration file. */
bool ec_gate_calibrated(const ec_gate *g, size_t ti);

/* Builds the gate from the config (loading the calibration file it names). */
ec_err ec_gate_create(ec_gate **out, const ec_config *cfg, ec_error *err);
void ec_gate_destroy(ec_gate *g);

void ec_gate_classify(const ec_gate *g, const ec_query *q, ec_gate_query *out);
void ec_gate_judge(const ec_gate *g, size_t tier_index, const ec_gate_query *gq,
                   const ec_infer_reply *rep, ec_gate_verdict *out);

/* Raw confidence in [0,1] of a successful reply. */
double ec_gate_confidence(const ec_infer_reply *r);

/* The threshold that applies to tier ti: its own min_confidence when set, else
 * the gate's. */
double ec_gate_threshold(const ec_config *cfg, size_t ti);

#endif
