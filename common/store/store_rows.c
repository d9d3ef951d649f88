/* The decision log's rows: one decision as a decisions row and its attempts
 * rows, and the transaction around a batch of them.
 *
 * A first revision is inserted; a later revision (an escalation answered
 * from the offline queue) updates the row of its query in place and adds its
 * attempts; a shadow call only adds attempts and cost. Apart from store.c so
 * that the writer thread's batching and retries read on their own; these
 * functions run on whichever thread holds the write connection. */
#include "store_internal.h"

#include <string.h>

/* Steps a statement that returns no rows; the message is taken before reset. */
static ec_err step_done(ec_store *s, sqlite3_stmt *st, const char *what, ec_error *err)
{
    int src = sqlite3_step(st);
    ec_err rc = src == SQLITE_DONE ? EC_OK : ec_store_db_fail(s->db, err, what);
    sqlite3_reset(st);
    return rc;
}

static int bind_text(sqlite3_stmt *st, int i, const char *v)
{
    return v ? sqlite3_bind_text(st, i, v, -1, SQLITE_STATIC) : sqlite3_bind_null(st, i);
}

/* proto marks "not judged" as a negative confidence; SQL wants NULL there so
 * AVG() and friends are right. */
static int bind_confidence(sqlite3_stmt *st, int i, double v)
{
    return v < 0 ? sqlite3_bind_null(st, i) : sqlite3_bind_double(st, i, v);
}

static const char *encoding_name(ec_encoding e)
{
    return e == EC_ENC_JSON ? "json" : "msgpack";
}

/* The two inserts bind every parameter for every row (NULL where there is
 * nothing), so no value of an earlier row can stay bound and they need no
 * sqlite3_clear_bindings (about 1,100 instructions per decision). The text
 * stays bound SQLITE_STATIC after the step, pointing at the decision the
 * writer then frees; nothing reads a statement's bindings outside a step. */
static ec_err insert_attempt(ec_store *s, sqlite3_int64 decision_id, size_t seq,
                             const ec_attempt *a, const ec_attempt_detail *dt, ec_error *err)
{
    sqlite3_stmt *st = s->st_ins_attempt;
    sqlite3_bind_int64(st, 1, decision_id);
    sqlite3_bind_int64(st, 2, (sqlite3_int64)seq);
    sqlite3_bind_int64(st, 3, a->tier_index);
    bind_text(st, 4, a->tier);
    bind_text(st, 5, a->model);
    bind_confidence(st, 6, a->confidence);
    sqlite3_bind_double(st, 7, a->threshold);
    sqlite3_bind_int(st, 8, a->accepted);
    bind_text(st, 9, a->reason);
    sqlite3_bind_double(st, 10, a->latency_ms);
    sqlite3_bind_double(st, 11, a->cost_usd);
    sqlite3_bind_int64(st, 12, a->tokens_in);
    sqlite3_bind_int64(st, 13, a->tokens_out);
    bind_text(st, 14, a->error.code);
    bind_text(st, 15, a->error.message);
    bind_text(st, 16, dt ? dt->answer : NULL);
    bind_text(st, 17, dt ? dt->finish_reason : NULL);
    bind_confidence(st, 18, dt ? dt->raw_confidence : -1);
    if (dt && dt->lp.present) {
        sqlite3_bind_int64(st, 19, dt->lp.n_tokens);
        sqlite3_bind_double(st, 20, dt->lp.mean);
        sqlite3_bind_double(st, 21, dt->lp.min);
        sqlite3_bind_double(st, 22, dt->lp.p10);
        sqlite3_bind_double(st, 23, dt->lp.p25);
        sqlite3_bind_double(st, 24, dt->lp.geo_prob);
        sqlite3_bind_double(st, 25, dt->lp.first_prob);
    } else {
        for (int i = 19; i <= 25; i++)
            sqlite3_bind_null(st, i);
    }
    bind_text(st, 26, dt ? dt->sent : NULL);
    return step_done(s, st, "inserting attempt", err);
}

/* The newest decision row of a query id and its attempt count; id 0 if none. */
static ec_err find_decision(ec_store *s, const char *query_id, sqlite3_int64 *id, size_t *n_att,
                            ec_error *err)
{
    sqlite3_stmt *st = s->st_find_decision;
    *id = 0;
    *n_att = 0;
    bind_text(st, 1, query_id);
    int src = sqlite3_step(st);
    ec_err rc = EC_OK;
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *n_att = (size_t)sqlite3_column_int64(st, 1);
    } else if (src != SQLITE_DONE) {
        rc = ec_store_db_fail(s->db, err, "finding decision");
    }
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
    return rc;
}

/* A later revision of a decision already written: update it in place. */
static ec_err update_decision(ec_store *s, sqlite3_int64 id, size_t n_att, const ec_decision *d,
                              ec_error *err)
{
    const ec_result *r = &d->result;
    sqlite3_stmt *st = s->st_upd_decision;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, r->tier ? r->tier : "none");
    if (r->tier)
        sqlite3_bind_int64(st, 3, r->tier_index);
    bind_text(st, 4, r->tier_name);
    bind_text(st, 5, r->model);
    bind_confidence(st, 6, r->confidence);
    sqlite3_bind_double(st, 7, r->threshold);
    sqlite3_bind_int(st, 8, r->escalated);
    bind_text(st, 9, r->reason);
    sqlite3_bind_double(st, 10, r->cost_usd);
    sqlite3_bind_double(st, 11, d->cost_top_usd);
    sqlite3_bind_double(st, 12, r->latency_ms);
    sqlite3_bind_int64(st, 13, r->tokens_in);
    sqlite3_bind_int64(st, 14, r->tokens_out);
    bind_text(st, 15, r->error.code);
    bind_text(st, 16, r->error.message);
    sqlite3_bind_int(st, 17, r->degraded);
    sqlite3_bind_int64(st, 18, r->revision);
    sqlite3_bind_int(st, 19, r->redacted);
    ec_err rc = step_done(s, st, "updating decision", err);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; !rc && i < r->n_attempts; i++) {
        const ec_attempt_detail *dt = i < d->n_details ? &d->details[i] : NULL;
        rc = insert_attempt(s, id, n_att + i, &r->attempts[i], dt, err);
    }
    return rc;
}

/* A shadow call: its attempts join the decision, its cost adds to it. */
static ec_err append_attempts(ec_store *s, sqlite3_int64 id, size_t n_att, const ec_decision *d,
                              ec_error *err)
{
    const ec_result *r = &d->result;
    sqlite3_stmt *st = s->st_add_cost;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_double(st, 2, r->cost_usd);
    sqlite3_bind_int(st, 3, r->redacted);
    ec_err rc = step_done(s, st, "adding shadow cost", err);
    sqlite3_clear_bindings(st);
    for (size_t i = 0; !rc && i < r->n_attempts; i++) {
        const ec_attempt_detail *dt = i < d->n_details ? &d->details[i] : NULL;
        rc = insert_attempt(s, id, n_att + i, &r->attempts[i], dt, err);
    }
    return rc;
}

static ec_err insert_decision(ec_store *s, const ec_decision *d, ec_error *err)
{
    const ec_result *r = &d->result;
    ec_err rc;
    /* Callers pass decisions that check_decision() accepted (never NULL). */
    if (r->revision >= 2 || d->append_only) { // NOLINT(clang-analyzer-core.NullDereference)
        sqlite3_int64 id;
        size_t n_att;
        if ((rc = find_decision(s, r->id, &id, &n_att, err)))
            return rc;
        if (id && d->append_only)
            return append_attempts(s, id, n_att, d, err);
        if (id)
            return update_decision(s, id, n_att, d, err);
        if (d->append_only)
            return ec_error_set(err, EC_ERR_NOTFOUND, "store: no decision %s to append to", r->id);
    }
    sqlite3_stmt *st = s->st_ins_decision;
    sqlite3_bind_int64(st, 1, (sqlite3_int64)d->ts_ms);
    bind_text(st, 2, r->id);
    bind_text(st, 3, r->source);
    bind_text(st, 4, ec_policy_name(d->policy));
    bind_text(st, 5, encoding_name(d->encoding));
    bind_text(st, 6, r->tier ? r->tier : "none");
    if (r->tier)
        sqlite3_bind_int64(st, 7, r->tier_index);
    else
        sqlite3_bind_null(st, 7);
    bind_text(st, 8, r->tier_name);
    bind_text(st, 9, r->model);
    bind_confidence(st, 10, r->confidence);
    sqlite3_bind_double(st, 11, r->threshold);
    sqlite3_bind_int(st, 12, r->escalated);
    bind_text(st, 13, r->reason);
    sqlite3_bind_double(st, 14, r->cost_usd);
    sqlite3_bind_double(st, 15, d->cost_top_usd);
    sqlite3_bind_double(st, 16, r->latency_ms);
    sqlite3_bind_double(st, 17, r->router_ms);
    sqlite3_bind_int64(st, 18, r->tokens_in);
    sqlite3_bind_int64(st, 19, r->tokens_out);
    sqlite3_bind_int(st, 20, d->left_device);
    bind_text(st, 21, r->error.code);
    bind_text(st, 22, r->error.message);
    sqlite3_bind_int(st, 23, r->degraded);
    sqlite3_bind_int64(st, 24, r->revision ? r->revision : 1);
    bind_text(st, 25, r->complexity);
    sqlite3_bind_int(st, 26, r->redacted);
    sqlite3_bind_int(st, 27, r->escalation_withheld);
    bind_text(st, 29, r->asker);
    if (d->journal_id > 0)
        sqlite3_bind_int64(st, 28, d->journal_id);
    else
        sqlite3_bind_null(st, 28);
    rc = step_done(s, st, "inserting decision", err);
    if (rc)
        return rc;
    sqlite3_int64 id = sqlite3_last_insert_rowid(s->db);
    for (size_t i = 0; i < r->n_attempts; i++) {
        const ec_attempt_detail *dt = i < d->n_details ? &d->details[i] : NULL;
        if ((rc = insert_attempt(s, id, i, &r->attempts[i], dt, err)))
            return rc;
    }
    return EC_OK;
}

static ec_err write_txn_locked(ec_store *s, ec_decision *const *b, size_t n, ec_error *err);

/* One transaction over n decisions; rolled back whole on any failure. */
ec_err ec_store_write_txn(ec_store *s, ec_decision *const *b, size_t n, ec_error *err)
{
    pthread_mutex_lock(&s->wlock);
    ec_err rc = write_txn_locked(s, b, n, err);
    pthread_mutex_unlock(&s->wlock);
    return rc;
}

static ec_err write_txn_locked(ec_store *s, ec_decision *const *b, size_t n, ec_error *err)
{
    ec_err rc = step_done(s, s->st_begin, "BEGIN", err);
    if (rc)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = insert_decision(s, b[i], err)))
            goto out;
    }
    rc = step_done(s, s->st_commit, "COMMIT", err);
out:
    /* Some errors (SQLITE_FULL among them) may already have ended the
     * transaction; ROLLBACK outside one would only add a second error. */
    if (rc && !sqlite3_get_autocommit(s->db)) {
        ec_error ignored;
        step_done(s, s->st_rollback, "ROLLBACK", &ignored);
    }
    return rc;
}
