/* Replay mode (see sim_replay.h). Lookup is a binary search over the rows'
 * trimmed prompts, sorted once at start-up. */
#include "sim_replay.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REPLAY_NULL_LOGPROB (-1000.0)

typedef struct replay_map {
    char *served;
    char *corpus;
} replay_map;

typedef struct replay_key {
    const char *prompt; /* trimmed, points into keys_text */
    size_t len;
    size_t row;
} replay_key;

struct sim_replay {
    ec_corpus corpus;
    replay_map *map;
    size_t n_map;
    replay_key *keys;
    double scale;
};

static bool is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static void trim(const char *s, const char **start, size_t *len)
{
    size_t n = strlen(s);
    while (n && is_ws(*s)) {
        s++;
        n--;
    }
    while (n && is_ws(s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

static int cmp_text(const char *a, size_t la, const char *b, size_t lb)
{
    int c = memcmp(a, b, la < lb ? la : lb);
    if (c)
        return c;
    return la < lb ? -1 : la > lb;
}

static int cmp_key(const void *x, const void *y)
{
    const replay_key *a = x, *b = y;
    int c = cmp_text(a->prompt, a->len, b->prompt, b->len);
    if (c)
        return c;
    return a->row < b->row ? -1 : a->row > b->row;
}

void sim_replay_free(sim_replay *r)
{
    if (!r)
        return;
    ec_corpus_free(&r->corpus);
    for (size_t i = 0; i < r->n_map; i++) {
        free(r->map[i].served);
        free(r->map[i].corpus);
    }
    free(r->map);
    free(r->keys);
    free(r);
}

static ec_err parse_map(sim_replay *r, const char *map, ec_error *err)
{
    char *copy = strdup(map);
    if (!copy)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    ec_err rc = EC_OK;
    size_t n = 1;
    for (const char *p = map; *p; p++)
        n += *p == ',';
    r->map = calloc(n, sizeof(*r->map));
    if (!r->map) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (char *save = NULL, *item = strtok_r(copy, ",", &save); item;
         item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '=');
        if (!eq || eq == item || !eq[1]) {
            rc = ec_error_set(err, EC_ERR_INVAL, "--replay-map: '%s': expected served=corpusmodel",
                              item);
            goto out;
        }
        *eq = '\0';
        r->map[r->n_map].served = strdup(item);
        r->map[r->n_map].corpus = strdup(eq + 1);
        r->n_map++;
        if ((rc = ec_corpus_check_model(&r->corpus, eq + 1, err)))
            goto out;
    }
    if (r->n_map == 0)
        rc = ec_error_set(err, EC_ERR_INVAL, "--replay-map: empty");
out:
    free(copy);
    return rc;
}

ec_err sim_replay_load(const char *corpus, const char *map, double latency_scale, sim_replay **out,
                       ec_error *err)
{
    sim_replay *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    r->scale = latency_scale;
    ec_err rc = ec_corpus_load(corpus, &r->corpus, err);
    if (rc || (rc = parse_map(r, map ? map : "", err)))
        goto fail;
    r->keys = calloc(r->corpus.n_rows, sizeof(*r->keys));
    if (!r->keys) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < r->corpus.n_rows; i++) {
        trim(r->corpus.rows[i].prompt, &r->keys[i].prompt, &r->keys[i].len);
        r->keys[i].row = i;
    }
    qsort(r->keys, r->corpus.n_rows, sizeof(*r->keys), cmp_key);
    *out = r;
    return EC_OK;
fail:
    sim_replay_free(r);
    return rc;
}

ec_err sim_replay_script(const sim_replay *r, sim_script **out, ec_error *err)
{
    json_t *models = json_object();
    for (size_t i = 0; i < r->n_map; i++)
        json_object_set_new(models, r->map[i].served,
                            json_pack("{s:s, s:f}", "kind", "local", "default_logprob", -0.1));
    json_t *root = json_pack("{s:o}", "models", models);
    char *text = json_dumps(root, 0);
    json_decref(root);
    if (!text)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    ec_err rc = sim_script_parse(text, out, err);
    free(text);
    return rc;
}

static const ec_corpus_row *lookup(const sim_replay *r, const char *prompt)
{
    replay_key k = {0};
    trim(prompt, &k.prompt, &k.len);
    size_t lo = 0, hi = r->corpus.n_rows;
    while (lo < hi) { /* first key >= prompt */
        size_t mid = lo + (hi - lo) / 2;
        if (cmp_text(r->keys[mid].prompt, r->keys[mid].len, k.prompt, k.len) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < r->corpus.n_rows &&
        cmp_text(r->keys[lo].prompt, r->keys[lo].len, k.prompt, k.len) == 0)
        return &r->corpus.rows[r->keys[lo].row];
    return NULL;
}

/* Tokens the way the rest of the simulator splits them: leading whitespace
 * stays with the word that follows. */
static size_t split(const char *s, size_t *off, size_t *len)
{
    size_t n = 0, i = 0, total = strlen(s);
    while (i < total) {
        size_t start = i;
        while (i < total && is_ws(s[i]))
            i++;
        while (i < total && !is_ws(s[i]))
            i++;
        if (off) {
            off[n] = start;
            len[n] = i - start;
        }
        n++;
    }
    return n;
}

ec_err sim_replay_answer(const sim_replay *r, const char *served, const sim_prompt *p,
                         sim_answer *ans, sim_replay_hit *hit, ec_error *err)
{
    const char *model = NULL;
    for (size_t i = 0; i < r->n_map; i++)
        if (strcmp(r->map[i].served, served) == 0)
            model = r->map[i].corpus;
    if (!model)
        return ec_error_set(err, EC_ERR_NOTFOUND, "model '%s' is not in --replay-map", served);
    const ec_corpus_row *row = lookup(r, p->last_user ? p->last_user : "");
    if (!row)
        return ec_error_set(err, EC_ERR_NOTFOUND,
                            "no recorded answer for this prompt (replay mode)");
    const ec_corpus_answer *a = ec_corpus_find(row, model);
    if (!a)
        return ec_error_set(err, EC_ERR_NOTFOUND, "row %s has no answer of %s", row->id, model);
    memset(ans, 0, sizeof(*ans));
    ans->text = strdup(a->answer);
    size_t n = split(a->answer, NULL, NULL);
    size_t cap = n ? n : 1;
    ans->off = calloc(cap, sizeof(size_t));
    ans->len = calloc(cap, sizeof(size_t));
    ans->lp = calloc(cap, sizeof(double));
    if (!ans->text || !ans->off || !ans->len || !ans->lp) {
        sim_answer_clear(ans);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    ans->n = split(a->answer, ans->off, ans->len);
    for (size_t i = 0; i < ans->n; i++)
        ans->lp[i] = a->has_logprob ? a->logprob : REPLAY_NULL_LOGPROB;
    hit->tokens_in = a->tokens_in;
    hit->tokens_out = a->tokens_out ? a->tokens_out : (unsigned)ans->n;
    double ms = a->latency_ms * r->scale;
    hit->latency_ms = ms > 600000 ? 600000u : (unsigned)lround(ms);
    return EC_OK;
}
