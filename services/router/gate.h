/* The quality gate: how confident is a draft, and is that enough?
 *
 * With token logprobs the confidence is the geometric-mean token probability
 * (exp of the mean logprob), capped by the first token's probability for very
 * short answers (a one-letter or pass/fail answer is only as good as that
 * token). Without logprobs (Ollama's native API, Anthropic) a conservative
 * text heuristic stands in. A truncated answer (finish_reason "length") is
 * penalised. Issue #3 replaces these raw numbers with a calibrated mapping. */
#ifndef EC_GATE_H
#define EC_GATE_H

#include <stdbool.h>
#include <stddef.h>
#include "edgecascade/config.h"
#include "edgecascade/proto.h"

/* Confidence in [0,1] of a successful reply. */
double ec_gate_confidence(const ec_infer_reply *r);

/* The threshold that applies to tier ti: its own min_confidence when set, else
 * the gate's. */
double ec_gate_threshold(const ec_config *cfg, size_t ti);

#endif
