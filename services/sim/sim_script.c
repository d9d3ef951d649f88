/* Script file format (JSON). Every key is optional unless marked; unknown keys
 * are rejected with their path so a typo never silently does nothing.
 *
 *   {
 *     "models": {                      // name -> settings; order kept in listings
 *       "llama3.2-1b": {
 *         "kind": "local",             // "local" | "cloud" (default "local")
 *         "default_logprob": -0.25,    // <= 0; logprob of unscripted answers (default -0.1)
 *         "latency_ms": 0,             // inference delay on every normal answer
 *         "require_key": null          // string: demand this API key (Bearer / x-api-key)
 *       }
 *     },
 *     "rules": [                       // first match wins
 *       {"match": "tolerance",         // required; case-insensitive substring of the
 *                                      // last user message ("" matches anything)
 *        "model": "*",                 // "*" (default) or one model name
 *        "answer": "PASS ...",         // required, non-empty
 *        "logprob": -0.02,             // every token gets this logprob, or
 *        "logprobs": [-2.1, -0.3],     // per token, the last one repeats
 *        "samples": ["PASS", "FAIL"]}  // answers at temperature > 0, in turn
 *     ],                               // neither logprob: the model's default_logprob
 *     "faults": {                      // model name -> fault (see sim_fault.c)
 *       "gpt-4o-mini": {"status": 503, "retry_after": 2, "latency_ms": 0,
 *                       "hang": false, "reset": false, "malformed": false, "times": 0}
 *     }
 *   }
 *
 * Without a rule the answer is "[simulated <model>] " plus a sentence picked by
 * an FNV-1a hash of the prompt (sim_answer.c), so the same request always gets
 * the same answer. */
#include "sim_script.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "edgecascade/util.h"

/* The models every test and demo can count on without writing a script. */
static const char default_script[] =
    "{\"models\": {"
    "\"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.25},"
    "\"llama3.1-8b\": {\"kind\": \"local\", \"default_logprob\": -0.15},"
    "\"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05},"
    "\"claude-3-5-haiku-latest\": {\"kind\": \"cloud\", \"default_logprob\": -0.05}"
    "}}";

static ec_err check_keys(json_t *obj, const char *const *allowed, const char *where, ec_error *err)
{
    const char *key;
    json_t *v;
    json_object_foreach(obj, key, v)
    {
        bool ok = false;
        for (size_t i = 0; allowed[i] && !ok; i++)
            ok = strcmp(key, allowed[i]) == 0;
        if (!ok)
            return ec_error_set(err, EC_ERR_CONFIG, "%s: unknown key \"%s\"", where, key);
    }
    return EC_OK;
}

/* Reads an optional integer in [lo, hi]; JSON null counts as absent. */
static ec_err get_int(json_t *obj, const char *key, long lo, long hi, int *out, const char *where,
                      ec_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return EC_OK;
    if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
        return ec_error_set(err, EC_ERR_CONFIG, "%s.%s: expected an integer in [%ld, %ld]", where,
                            key, lo, hi);
    *out = (int)json_integer_value(v);
    return EC_OK;
}

static ec_err get_bool(json_t *obj, const char *key, bool *out, const char *where, ec_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return EC_OK;
    if (!json_is_boolean(v))
        return ec_error_set(err, EC_ERR_CONFIG, "%s.%s: expected true or false", where, key);
    *out = json_is_true(v);
    return EC_OK;
}

static ec_err get_logprob(json_t *v, double *out, const char *where, ec_error *err)
{
    if (!json_is_number(v) || !isfinite(json_number_value(v)) || json_number_value(v) > 0.0)
        return ec_error_set(err, EC_ERR_CONFIG, "%s: expected a number <= 0", where);
    *out = json_number_value(v);
    return EC_OK;
}

/* Reads an optional string; JSON null counts as absent. */
static ec_err get_str(json_t *obj, const char *key, char **out, const char *where, ec_error *err)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v))
        return EC_OK;
    if (!json_is_string(v))
        return ec_error_set(err, EC_ERR_CONFIG, "%s.%s: expected a string", where, key);
    free(*out);
    *out = strdup(json_string_value(v));
    return *out ? EC_OK : ec_error_set(err, EC_ERR_NOMEM, "out of memory");
}

bool sim_fault_active(const sim_fault *f)
{
    return f->status || f->latency_ms || f->hang || f->reset || f->malformed;
}

ec_err sim_fault_parse(json_t *obj, bool with_model, sim_fault *out, ec_error *err)
{
    static const char *const keys[] = {"status",    "retry_after", "latency_ms", "hang", "reset",
                                       "malformed", "times",       "model",      NULL};
    static const char *const keys_nomodel[] = {"status", "retry_after", "latency_ms", "hang",
                                               "reset",  "malformed",   "times",      NULL};
    const char *where = "fault";
    memset(out, 0, sizeof(*out));
    if (!json_is_object(obj))
        return ec_error_set(err, EC_ERR_CONFIG, "fault: expected an object");
    ec_err rc = check_keys(obj, with_model ? keys : keys_nomodel, where, err);
    if (!rc)
        rc = get_int(obj, "status", 0, 599, &out->status, where, err);
    if (!rc && out->status && out->status < 400)
        rc = ec_error_set(err, EC_ERR_CONFIG, "fault.status: expected 0 or 400..599");
    if (!rc)
        rc = get_int(obj, "retry_after", 0, 86400, &out->retry_after, where, err);
    if (!rc)
        rc = get_int(obj, "latency_ms", 0, 600000, &out->latency_ms, where, err);
    if (!rc)
        rc = get_bool(obj, "hang", &out->hang, where, err);
    if (!rc)
        rc = get_bool(obj, "reset", &out->reset, where, err);
    if (!rc)
        rc = get_bool(obj, "malformed", &out->malformed, where, err);
    if (!rc)
        rc = get_int(obj, "times", 0, 1000000000, &out->times, where, err);
    return rc;
}

json_t *sim_fault_to_json(const sim_fault *f)
{
    return json_pack("{s:i, s:i, s:i, s:b, s:b, s:b, s:i}", "status", f->status, "retry_after",
                     f->retry_after, "latency_ms", f->latency_ms, "hang", f->hang, "reset",
                     f->reset, "malformed", f->malformed, "times", f->times);
}

static ec_err parse_model(const char *name, json_t *obj, sim_model *m, ec_error *err)
{
    static const char *const keys[] = {"kind", "default_logprob", "latency_ms", "require_key",
                                       NULL};
    char where[160];
    snprintf(where, sizeof(where), "models.%s", name);
    m->default_logprob = -0.1;
    if (!(m->name = strdup(name)) || !(m->kind = strdup("local")))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    if (!*name || strlen(name) > 120)
        return ec_error_set(err, EC_ERR_CONFIG, "%s: model names are 1..120 characters", where);
    if (!json_is_object(obj))
        return ec_error_set(err, EC_ERR_CONFIG, "%s: expected an object", where);
    ec_err rc = check_keys(obj, keys, where, err);
    if (!rc)
        rc = get_str(obj, "kind", &m->kind, where, err);
    if (!rc && strcmp(m->kind, "local") && strcmp(m->kind, "cloud"))
        rc = ec_error_set(err, EC_ERR_CONFIG, "%s.kind: expected \"local\" or \"cloud\"", where);
    json_t *lp = json_object_get(obj, "default_logprob");
    if (!rc && lp)
        rc = get_logprob(lp, &m->default_logprob, where, err);
    if (!rc)
        rc = get_int(obj, "latency_ms", 0, 600000, &m->latency_ms, where, err);
    if (!rc)
        rc = get_str(obj, "require_key", &m->require_key, where, err);
    return rc;
}

/* "samples": what the model says when sampled (temperature > 0), so a
 * self-consistency check (gate.samples) can see answers that disagree. */
static ec_err parse_samples(json_t *v, sim_rule *r, const char *where, ec_error *err)
{
    if (!v)
        return EC_OK;
    if (!json_is_array(v) || json_array_size(v) == 0)
        return ec_error_set(err, EC_ERR_CONFIG, "%s.samples: expected a non-empty array", where);
    if (!(r->samples = calloc(json_array_size(v), sizeof(char *))))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < json_array_size(v); k++) {
        const char *t = json_string_value(json_array_get(v, k));
        if (!t || !*t)
            return ec_error_set(err, EC_ERR_CONFIG, "%s.samples[%zu]: expected a non-empty string",
                                where, k);
        if (!(r->samples[r->n_samples++] = strdup(t)))
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    return EC_OK;
}

static ec_err parse_rule(size_t i, json_t *obj, sim_rule *r, ec_error *err)
{
    static const char *const keys[] = {"match",    "model",   "answer", "logprob",
                                       "logprobs", "samples", NULL};
    char where[64];
    snprintf(where, sizeof(where), "rules[%zu]", i);
    if (!json_is_object(obj))
        return ec_error_set(err, EC_ERR_CONFIG, "%s: expected an object", where);
    ec_err rc = check_keys(obj, keys, where, err);
    if (!rc)
        rc = get_str(obj, "match", &r->match, where, err);
    if (!rc)
        rc = get_str(obj, "model", &r->model, where, err);
    if (!rc)
        rc = get_str(obj, "answer", &r->answer, where, err);
    if (rc)
        return rc;
    if (!r->match)
        return ec_error_set(err, EC_ERR_CONFIG, "%s.match: required", where);
    if (!r->answer || !*r->answer)
        return ec_error_set(err, EC_ERR_CONFIG, "%s.answer: required and non-empty", where);
    if (!r->model && !(r->model = strdup("*")))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    if ((rc = parse_samples(json_object_get(obj, "samples"), r, where, err)))
        return rc;
    json_t *lp = json_object_get(obj, "logprob");
    json_t *lps = json_object_get(obj, "logprobs");
    if (lp && lps)
        return ec_error_set(err, EC_ERR_CONFIG, "%s: give logprob or logprobs, not both", where);
    if (lp) {
        r->has_logprob = true;
        return get_logprob(lp, &r->logprob, where, err);
    }
    if (!lps)
        return EC_OK;
    if (!json_is_array(lps) || json_array_size(lps) == 0)
        return ec_error_set(err, EC_ERR_CONFIG, "%s.logprobs: expected a non-empty array", where);
    r->n_logprobs = json_array_size(lps);
    if (!(r->logprobs = calloc(r->n_logprobs, sizeof(double))))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    for (size_t k = 0; k < r->n_logprobs; k++) {
        rc = get_logprob(json_array_get(lps, k), &r->logprobs[k], where, err);
        if (rc)
            return rc;
    }
    return EC_OK;
}

static ec_err parse_root(json_t *root, sim_script *s, ec_error *err)
{
    static const char *const keys[] = {"models", "rules", "faults", NULL};
    if (!json_is_object(root))
        return ec_error_set(err, EC_ERR_CONFIG, "script: expected a JSON object");
    ec_err rc = check_keys(root, keys, "script", err);
    if (rc)
        return rc;

    json_t *models = json_object_get(root, "models");
    if (!json_is_object(models) || json_object_size(models) == 0)
        return ec_error_set(err, EC_ERR_CONFIG, "models: expected a non-empty object");
    s->n_models = json_object_size(models);
    s->models = calloc(s->n_models, sizeof(*s->models));
    s->faults = calloc(s->n_models, sizeof(*s->faults));
    if (!s->models || !s->faults)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    size_t i = 0;
    const char *name;
    json_t *v;
    json_object_foreach(models, name, v)
    {
        if ((rc = parse_model(name, v, &s->models[i++], err)))
            return rc;
    }

    json_t *rules = json_object_get(root, "rules");
    if (rules && !json_is_array(rules))
        return ec_error_set(err, EC_ERR_CONFIG, "rules: expected an array");
    if (rules && json_array_size(rules)) {
        s->n_rules = json_array_size(rules);
        if (!(s->rules = calloc(s->n_rules, sizeof(*s->rules))))
            return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        json_array_foreach(rules, i, v)
        {
            if ((rc = parse_rule(i, v, &s->rules[i], err)))
                return rc;
            /* parse_rule sets model (to "*" when absent) whenever it succeeds. */
            if (strcmp(s->rules[i].model, "*") && // NOLINT(clang-analyzer-core.NonNullParamChecker)
                sim_script_model_index(s, s->rules[i].model) < 0)
                return ec_error_set(err, EC_ERR_CONFIG, "rules[%zu].model: no model \"%s\"", i,
                                    s->rules[i].model);
        }
    }

    json_t *faults = json_object_get(root, "faults");
    if (faults && !json_is_object(faults))
        return ec_error_set(err, EC_ERR_CONFIG, "faults: expected an object");
    json_object_foreach(faults, name, v)
    {
        long m = sim_script_model_index(s, name);
        if (m < 0)
            return ec_error_set(err, EC_ERR_CONFIG, "faults: no model \"%s\"", name);
        if ((rc = sim_fault_parse(v, false, &s->faults[m], err))) {
            ec_error_prefix(err, "faults.%s: ", name);
            return rc;
        }
    }
    return EC_OK;
}

ec_err sim_script_parse(const char *text, sim_script **out, ec_error *err)
{
    *out = NULL;
    json_error_t jerr;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return ec_error_set(err, EC_ERR_CONFIG, "line %d column %d: %s", jerr.line, jerr.column,
                            jerr.text);
    sim_script *s = calloc(1, sizeof(*s));
    ec_err rc = s ? parse_root(root, s, err) : ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    json_decref(root);
    if (rc) {
        sim_script_free(s);
        return rc;
    }
    *out = s;
    return EC_OK;
}

ec_err sim_script_load(const char *path, sim_script **out, ec_error *err)
{
    *out = NULL;
    char *text = ec_read_file(path, SIM_MAX_SCRIPT_BYTES, NULL);
    if (!text)
        return ec_error_set(err, EC_ERR_IO, "%s: %s", path, strerror(errno));
    ec_err rc = sim_script_parse(text, out, err);
    free(text);
    if (rc)
        ec_error_prefix(err, "%s: ", path);
    return rc;
}

ec_err sim_script_defaults(sim_script **out, ec_error *err)
{
    return sim_script_parse(default_script, out, err);
}

void sim_script_free(sim_script *s)
{
    if (!s)
        return;
    for (size_t i = 0; s->models && i < s->n_models; i++) {
        free(s->models[i].name);
        free(s->models[i].kind);
        free(s->models[i].require_key);
    }
    for (size_t i = 0; s->rules && i < s->n_rules; i++) {
        free(s->rules[i].match);
        free(s->rules[i].model);
        free(s->rules[i].answer);
        free(s->rules[i].logprobs);
        for (size_t k = 0; k < s->rules[i].n_samples; k++)
            free(s->rules[i].samples[k]);
        free(s->rules[i].samples);
    }
    free(s->models);
    free(s->rules);
    free(s->faults);
    free(s);
}

long sim_script_model_index(const sim_script *s, const char *name)
{
    for (size_t i = 0; name && i < s->n_models; i++) {
        if (s->models[i].name && strcmp(s->models[i].name, name) == 0)
            return (long)i;
    }
    return -1;
}

const sim_rule *sim_script_rule(const sim_script *s, const char *model, const char *user_text)
{
    for (size_t i = 0; i < s->n_rules; i++) {
        const sim_rule *r = &s->rules[i];
        if (strcmp(r->model, "*") && strcmp(r->model, model))
            continue;
        if (strcasestr(user_text, r->match))
            return r;
    }
    return NULL;
}
