/* What a simulated model says: prompt reading, token counting and answers
 * with per-token logprobs. Everything here is a pure function of its inputs,
 * which is what makes the simulator deterministic. */
#ifndef SIM_ANSWER_H
#define SIM_ANSWER_H

#include <stdint.h>
#include <jansson.h>

#include "sim_script.h"

typedef struct sim_prompt {
    char *last_user; /* text of the last user message ("" when there is none) */
    size_t words;    /* whitespace-separated words over the system prompt and all messages */
} sim_prompt;

/* Reads an OpenAI/Anthropic/Ollama messages array; system (may be NULL) is a
 * string or an array of text blocks. Content is a string or an array of
 * {"type":"text","text":...} parts. err says what is wrong with the shape. */
ec_err sim_prompt_read(json_t *messages, json_t *system, sim_prompt *out, ec_error *err);
void sim_prompt_clear(sim_prompt *p);
/* ceil(words * 4 / 3), at least 1: roughly what a BPE tokenizer gives for English. */
unsigned sim_prompt_tokens(const sim_prompt *p);

typedef struct sim_answer {
    char *text;  /* the answer after any max_tokens cut */
    size_t n;    /* tokens */
    size_t *off; /* token i is text[off[i] .. off[i] + len[i]) */
    size_t *len;
    double *lp;     /* natural-log probability of token i, <= 0 */
    bool truncated; /* max_tokens cut it: finish reason "length" */
} sim_answer;

/* max_tokens < 0 means no limit. sample is 0 for a greedy (temperature 0)
 * request; for a sampled one, a number that picks among the rule's samples
 * (the server counts sampled requests), the only input that is not the
 * request's own. */
ec_err sim_answer_make(const sim_script *s, const sim_model *m, const sim_prompt *p,
                       long max_tokens, uint64_t sample, sim_answer *out);
void sim_answer_clear(sim_answer *a);

/* Copies token i into a fresh NUL-terminated string (caller frees). */
char *sim_answer_token(const sim_answer *a, size_t i);

/* Up to k plausible alternatives for token i with logprobs whose probabilities
 * sum, with token i's own, to less than 1. Fills tok/lp; returns how many. */
size_t sim_answer_alternatives(const sim_answer *a, size_t i, size_t k, const char **tok,
                               double *lp);

uint64_t sim_fnv1a(const void *data, size_t len, uint64_t seed);
#define SIM_FNV_OFFSET 0xcbf29ce484222325ull

#endif
