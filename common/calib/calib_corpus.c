/* The corpus of recorded answers: JSON lines, one prompt per line, with the
 * answers of several models (see ../shared/eval/README.md for the shape). */
#define _GNU_SOURCE /* getline */
#include "edgecascade/calib.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/buf.h"

#define CORPUS_MAX_ROWS 1000000

static void answer_clear(ec_corpus_answer *a)
{
    free(a->model);
    free(a->answer);
}

static void row_clear(ec_corpus_row *r)
{
    free(r->id);
    free(r->dataset);
    free(r->system);
    free(r->prompt);
    for (size_t i = 0; i < r->n_answers; i++)
        answer_clear(&r->answers[i]);
    free(r->answers);
    memset(r, 0, sizeof(*r));
}

void ec_corpus_free(ec_corpus *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_rows; i++)
        row_clear(&c->rows[i]);
    free(c->rows);
    memset(c, 0, sizeof(*c));
}

/* A number field that may be absent or null (then 0). */
static bool opt_number(json_t *o, const char *key, double *out)
{
    json_t *v = json_object_get(o, key);
    *out = 0;
    if (!v || json_is_null(v))
        return true;
    if (!json_is_number(v))
        return false;
    *out = json_number_value(v);
    return isfinite(*out) && *out >= 0;
}

static ec_err parse_answer(const char *where, const char *name, json_t *m, ec_corpus_answer *a,
                           ec_error *err)
{
    if (!json_is_object(m))
        return ec_error_set(err, EC_ERR_INVAL, "%s: models.%s: must be an object", where, name);
    json_t *ans = json_object_get(m, "answer"), *ok = json_object_get(m, "correct");
    json_t *lp = json_object_get(m, "confidence_logprob");
    if (!ans || !(json_is_string(ans) || json_is_null(ans)))
        return ec_error_set(err, EC_ERR_INVAL, "%s: models.%s.answer: %s", where, name,
                            ans ? "must be a string" : "missing");
    if (!json_is_boolean(ok))
        return ec_error_set(err, EC_ERR_INVAL, "%s: models.%s.correct: %s", where, name,
                            ok ? "must be true or false" : "missing");
    if (!lp)
        return ec_error_set(err, EC_ERR_INVAL,
                            "%s: models.%s.confidence_logprob: missing (use null when none)", where,
                            name);
    if (!json_is_null(lp) && !(json_is_number(lp) && json_number_value(lp) <= 0))
        return ec_error_set(err, EC_ERR_INVAL,
                            "%s: models.%s.confidence_logprob: must be a number <= 0 or null",
                            where, name);
    double tin, tout;
    if (!opt_number(m, "cost_usd", &a->cost_usd) || !opt_number(m, "latency_ms", &a->latency_ms) ||
        !opt_number(m, "tokens_in", &tin) || !opt_number(m, "tokens_out", &tout) ||
        tin > UINT32_MAX || tout > UINT32_MAX)
        return ec_error_set(err, EC_ERR_INVAL,
                            "%s: models.%s: cost_usd, latency_ms, tokens_in and tokens_out must "
                            "be numbers >= 0 (or null)",
                            where, name);
    a->tokens_in = (uint32_t)tin;
    a->tokens_out = (uint32_t)tout;
    a->correct = json_is_true(ok);
    a->has_logprob = !json_is_null(lp);
    a->logprob = a->has_logprob ? json_number_value(lp) : 0;
    a->model = strdup(name);
    a->answer = strdup(json_is_string(ans) ? json_string_value(ans) : "");
    if (!a->model || !a->answer)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    return EC_OK;
}

static char *opt_string(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? strdup(s) : NULL;
}

static ec_err parse_row(const char *where, json_t *j, ec_corpus_row *r, ec_error *err)
{
    if (!json_is_object(j))
        return ec_error_set(err, EC_ERR_INVAL, "%s: expected a JSON object", where);
    const char *id = json_string_value(json_object_get(j, "id"));
    const char *prompt = json_string_value(json_object_get(j, "prompt"));
    json_t *models = json_object_get(j, "models");
    if (!id)
        return ec_error_set(err, EC_ERR_INVAL, "%s: id: missing or not a string", where);
    if (!prompt)
        return ec_error_set(err, EC_ERR_INVAL, "%s: prompt: missing or not a string", where);
    if (!json_is_object(models) || json_object_size(models) == 0)
        return ec_error_set(err, EC_ERR_INVAL, "%s: models: missing or empty", where);
    r->id = strdup(id);
    r->prompt = strdup(prompt);
    r->system = opt_string(j, "system");
    r->dataset = opt_string(j, "dataset");
    r->answers = calloc(json_object_size(models), sizeof(*r->answers));
    if (!r->id || !r->prompt || !r->answers)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    const char *name;
    json_t *m;
    json_object_foreach(models, name, m)
    {
        ec_err rc = parse_answer(where, name, m, &r->answers[r->n_answers], err);
        if (rc) {
            answer_clear(&r->answers[r->n_answers]);
            return rc;
        }
        r->n_answers++;
    }
    return EC_OK;
}

ec_err ec_corpus_load(const char *path, ec_corpus *out, ec_error *err)
{
    ec_err rc = EC_OK;
    memset(out, 0, sizeof(*out));
    FILE *f = fopen(path, "r");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0, lineno = 0, alloc = 0;
    ssize_t len;
    while ((len = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r' || line[len - 1] == ' '))
            line[--len] = '\0';
        if (len == 0)
            continue;
        char where[600];
        snprintf(where, sizeof(where), "%s:%zu", path, lineno);
        json_error_t je;
        json_t *j = json_loadb(line, (size_t)len, 0, &je);
        if (!j) {
            rc = ec_error_set(err, EC_ERR_INVAL, "%s: not JSON: %s", where, je.text);
            goto out;
        }
        if (out->n_rows == alloc) {
            if (alloc >= CORPUS_MAX_ROWS) {
                json_decref(j);
                rc = ec_error_set(err, EC_ERR_TOOBIG, "%s: more than %d rows", path,
                                  CORPUS_MAX_ROWS);
                goto out;
            }
            size_t n = alloc ? alloc * 2 : 256;
            ec_corpus_row *rows = realloc(out->rows, n * sizeof(*rows));
            if (!rows) {
                json_decref(j);
                rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
                goto out;
            }
            out->rows = rows;
            alloc = n;
        }
        ec_corpus_row *r = &out->rows[out->n_rows];
        memset(r, 0, sizeof(*r));
        rc = parse_row(where, j, r, err);
        json_decref(j);
        if (rc) {
            row_clear(r);
            goto out;
        }
        out->n_rows++;
    }
    if (ferror(f)) {
        rc = ec_error_set(err, EC_ERR_IO, "%s: read error", path);
        goto out;
    }
    if (out->n_rows == 0)
        rc = ec_error_set(err, EC_ERR_INVAL, "%s: empty corpus (no rows)", path);
out:
    free(line);
    fclose(f);
    if (rc)
        ec_corpus_free(out);
    return rc;
}

const ec_corpus_answer *ec_corpus_find(const ec_corpus_row *row, const char *model)
{
    for (size_t i = 0; i < row->n_answers; i++)
        if (strcmp(row->answers[i].model, model) == 0)
            return &row->answers[i];
    return NULL;
}

ec_err ec_corpus_check_model(const ec_corpus *c, const char *model, ec_error *err)
{
    for (size_t i = 0; i < c->n_rows; i++) {
        if (ec_corpus_find(&c->rows[i], model))
            continue;
        ec_buf b;
        ec_buf_init(&b, 0);
        for (size_t k = 0; k < c->rows[i].n_answers; k++)
            ec_buf_printf(&b, "%s%s", k ? ", " : "", c->rows[i].answers[k].model);
        ec_error_set(err, EC_ERR_NOTFOUND, "unknown model '%s': row %s has answers of %.*s", model,
                     c->rows[i].id, (int)b.len, ec_buf_cstr(&b));
        ec_buf_free(&b);
        return EC_ERR_NOTFOUND;
    }
    return EC_OK;
}

double ec_corpus_raw(const ec_corpus_answer *a)
{
    return a->has_logprob ? exp(a->logprob) : 0.0;
}
