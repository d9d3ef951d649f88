/* The simulator's script: which models exist, what they answer and how they
 * misbehave. Loaded once at start-up and read-only afterwards; only the fault
 * table is copied into the server, where POST /sim/faults may replace it. */
#ifndef SIM_SCRIPT_H
#define SIM_SCRIPT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "edgecascade/err.h"

#define SIM_MAX_SCRIPT_BYTES (4u * 1024u * 1024u)

typedef struct sim_fault {
    int status;      /* HTTP status to answer with; 0: none */
    int retry_after; /* seconds for a Retry-After header on 429/503; 0: no header */
    int latency_ms;  /* extra delay before the (faulty or normal) answer */
    bool hang;       /* never answer */
    bool reset;      /* close the connection without a response */
    bool malformed;  /* 200 with a truncated JSON body */
    int times;       /* applies to the first N requests, then stops; 0: always */
} sim_fault;

typedef struct sim_model {
    char *name;
    char *kind;             /* "local" or "cloud" (informational) */
    double default_logprob; /* per-token logprob of answers no rule covers */
    int latency_ms;         /* inference time added to every normal answer */
    char *require_key;      /* NULL: no key needed */
} sim_model;

typedef struct sim_rule {
    char *match;  /* case-insensitive substring of the last user message */
    char *model;  /* "*" or a model name */
    char *answer; /* non-empty */
    double logprob;
    bool has_logprob;
    double *logprobs; /* per token; the last one repeats */
    size_t n_logprobs;
    char **samples; /* answers given in turn at temperature > 0; NULL: always answer */
    size_t n_samples;
} sim_rule;

typedef struct sim_script {
    sim_model *models;
    size_t n_models;
    sim_rule *rules;
    size_t n_rules;
    sim_fault *faults; /* n_models entries, index-aligned with models */
} sim_script;

/* Parses script JSON text; err names the offending key. */
ec_err sim_script_parse(const char *text, sim_script **out, ec_error *err);
ec_err sim_script_load(const char *path, sim_script **out, ec_error *err);
/* The built-in script used without --script. */
ec_err sim_script_defaults(sim_script **out, ec_error *err);
void sim_script_free(sim_script *s);

/* Index of the model called name, or -1. */
long sim_script_model_index(const sim_script *s, const char *name);
/* First rule matching model and user text, or NULL. */
const sim_rule *sim_script_rule(const sim_script *s, const char *model, const char *user_text);

/* Reads one fault object ({"status":..., ...}); with_model accepts (and
 * ignores) a "model" key, as in POST /sim/faults bodies. */
ec_err sim_fault_parse(json_t *obj, bool with_model, sim_fault *out, ec_error *err);
bool sim_fault_active(const sim_fault *f);
json_t *sim_fault_to_json(const sim_fault *f);

#endif
