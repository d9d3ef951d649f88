/* Replay mode: answer each recorded prompt of a corpus with a model's
 * recorded answer (../shared/eval/README.md describes the corpus), so the
 * whole cascade can run on real model behaviour.
 *
 * Served model names map to corpus models (--replay-map served=corpus,...).
 * A prompt matches when the last user message equals the row's prompt after
 * trimming whitespace at both ends; the first row wins for duplicates. Every
 * token of the answer gets the row's confidence_logprob, so the gate's raw
 * signal (geometric mean, or first token of a short answer) is exactly
 * exp(confidence_logprob); a null logprob becomes -1000 (signal 0). Usage
 * tokens come from the row, and the handler sleeps latency_ms x scale. */
#ifndef SIM_REPLAY_H
#define SIM_REPLAY_H

#include <stdbool.h>

#include "edgecascade/calib.h"
#include "sim_answer.h"
#include "sim_script.h"

typedef struct sim_replay sim_replay;

/* map: "served=corpus[,served=corpus...]". */
ec_err sim_replay_load(const char *corpus, const char *map, double latency_scale, sim_replay **out,
                       ec_error *err);
void sim_replay_free(sim_replay *r);
/* A script whose models are the served names (for the model list and stats). */
ec_err sim_replay_script(const sim_replay *r, sim_script **out, ec_error *err);

typedef struct sim_replay_hit {
    unsigned tokens_in, tokens_out;
    unsigned latency_ms; /* already scaled */
} sim_replay_hit;

/* Fills ans with the recorded answer of served model to the prompt. Returns
 * EC_ERR_NOTFOUND (message in err) when the prompt or model is not recorded. */
ec_err sim_replay_answer(const sim_replay *r, const char *served, const sim_prompt *p,
                         sim_answer *ans, sim_replay_hit *hit, ec_error *err);

#endif
