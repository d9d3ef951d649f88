/* The decision log: one SQLite file, one writer.
 *
 * Shape (after Mosquitto's persist-sqlite and Fluent Bit's flb_sqldb): the
 * router must never wait on the disk, so ec_store_record only moves the
 * decision into a bounded queue and returns. One writer thread owns the write
 * connection and its prepared statements; it collects up to EC_STORE_BATCH_MAX
 * decisions, or whatever arrives within batch_ms of the first one, and writes
 * them in one BEGIN IMMEDIATE..COMMIT. Readers use their own read-only
 * connection (store_stats.c), so with WAL they see committed snapshots and
 * never block the writer.
 *
 * Durability: journal_mode=WAL with synchronous=NORMAL. A commit is in the WAL
 * before COMMIT returns, so a crash of the process loses nothing committed; a
 * power cut may lose the last commits not yet synced (about batch_ms worth)
 * but never corrupts the file. Decisions are telemetry, not money.
 *
 * Failures are never silent: a failed batch is rolled back and retried, then
 * written one decision per transaction so that a bad row or a full disk loses
 * only what it must; each decision given up on is logged with its query id and
 * counted (ec_store_failed_count). The writer keeps running. */
#include "store_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"

#define EC_STORE_BATCH_MAX    256
#define EC_STORE_TRIES        3  /* whole-batch attempts before going one by one */
#define EC_STORE_RETRY_MS     20 /* first pause between attempts, doubled each time */
#define EC_STORE_BUSY_WAIT_MS 5000

/* migrations[v] takes a file from schema v-1 to v, and stamps user_version
 * itself so the stamp commits with the change. Never edit a shipped entry:
 * append a new one. */
static const char *const migrations[EC_STORE_SCHEMA_VERSION + 1] = {
    NULL,
    "CREATE TABLE decisions ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  query_id TEXT NOT NULL,"
    "  source TEXT,"
    "  policy TEXT,"
    "  encoding TEXT,"
    "  tier_kind TEXT NOT NULL," /* 'local' | 'cloud' | 'none' (no tier answered) */
    "  tier_index INTEGER,"
    "  tier_name TEXT,"
    "  model TEXT,"
    "  confidence REAL," /* NULL when not judged */
    "  threshold REAL,"
    "  escalated INTEGER,"
    "  reason TEXT,"
    "  cost_usd REAL,"
    "  cost_top_usd REAL,"
    "  latency_ms REAL,"
    "  router_ms REAL,"
    "  tokens_in INTEGER,"
    "  tokens_out INTEGER,"
    "  left_device INTEGER,"
    "  error_code TEXT,"
    "  error_message TEXT);"
    "CREATE INDEX decisions_ts ON decisions(ts_ms);"
    "CREATE INDEX decisions_query ON decisions(query_id);"
    "CREATE TABLE attempts ("
    "  id INTEGER PRIMARY KEY,"
    "  decision_id INTEGER NOT NULL REFERENCES decisions(id),"
    "  seq INTEGER,"
    "  tier_index INTEGER,"
    "  tier_name TEXT,"
    "  model TEXT,"
    "  confidence REAL,"
    "  threshold REAL,"
    "  accepted INTEGER,"
    "  reason TEXT,"
    "  latency_ms REAL,"
    "  cost_usd REAL,"
    "  tokens_in INTEGER,"
    "  tokens_out INTEGER,"
    "  error_code TEXT,"
    "  error_message TEXT);"
    /* Foreign-key checks and per-decision lookups need this. */
    "CREATE INDEX attempts_decision ON attempts(decision_id);"
    "PRAGMA user_version = 1;",
    /* 2: degraded answers and revisions (offline queue), the query's
     * complexity, and per attempt the draft and the signals behind its
     * confidence (recalibration from the device's own log). */
    "ALTER TABLE decisions ADD COLUMN degraded INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE decisions ADD COLUMN revision INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE decisions ADD COLUMN complexity TEXT;"
    "ALTER TABLE attempts ADD COLUMN answer TEXT;"
    "ALTER TABLE attempts ADD COLUMN finish_reason TEXT;"
    "ALTER TABLE attempts ADD COLUMN raw_confidence REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_n INTEGER;"
    "ALTER TABLE attempts ADD COLUMN lp_mean REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_min REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_p10 REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_p25 REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_geo REAL;"
    "ALTER TABLE attempts ADD COLUMN lp_first REAL;"
    "PRAGMA user_version = 2;",
    /* 3: resilience. journal: each query as it arrived, until its decision
     * is written (replayed after a crash). outbox: escalations waiting for the
     * cloud. breaker_events: every circuit-breaker transition. queue_events:
     * what happened to each queued escalation (queued, replayed, expired,
     * dropped, rejected). */
    "CREATE TABLE journal ("
    "  id INTEGER PRIMARY KEY,"
    "  received_ms INTEGER NOT NULL,"
    "  topic TEXT,"
    "  payload BLOB NOT NULL,"
    "  response_topic TEXT,"
    "  corr BLOB,"
    "  expiry_s INTEGER);"
    "CREATE TABLE outbox ("
    "  id INTEGER PRIMARY KEY,"
    "  query_id TEXT NOT NULL,"
    "  enqueued_ms INTEGER NOT NULL,"
    "  expires_ms INTEGER NOT NULL,"
    "  arrived_ms INTEGER NOT NULL,"
    "  tier_index INTEGER NOT NULL,"
    "  prior_cost_usd REAL NOT NULL DEFAULT 0,"
    "  query BLOB NOT NULL,"
    "  encoding INTEGER NOT NULL,"
    "  response_topic TEXT,"
    "  corr BLOB,"
    "  state TEXT NOT NULL DEFAULT 'queued'," /* queued | answered */
    "  reply BLOB,"
    "  tries INTEGER NOT NULL DEFAULT 0);"
    "CREATE INDEX outbox_query ON outbox(query_id);"
    "CREATE TABLE breaker_events ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  instance TEXT,"
    "  tier TEXT NOT NULL,"
    "  model TEXT,"
    "  state TEXT NOT NULL,"
    "  seq INTEGER,"
    "  reason TEXT,"
    "  UNIQUE(instance, tier, seq));"
    "CREATE TABLE queue_events ("
    "  id INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL,"
    "  query_id TEXT NOT NULL,"
    "  event TEXT NOT NULL,"
    "  detail TEXT);"
    "PRAGMA user_version = 3;",
    /* 4: digests of recently received queries, so a query the broker
     * redelivers (DUP) after we already took it is not run twice. */
    "CREATE TABLE seen ("
    "  digest INTEGER PRIMARY KEY,"
    "  ts_ms INTEGER NOT NULL);"
    "PRAGMA user_version = 4;",
    /* 5: the router's controls: whether anything was masked before the query
     * left the device (privacy.*), and whether a consent query was kept on
     * the device for want of consent. Cache hits are tier_kind 'cache'. */
    "ALTER TABLE decisions ADD COLUMN redacted INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE decisions ADD COLUMN escalation_withheld INTEGER NOT NULL DEFAULT 0;"
    "PRAGMA user_version = 5;",
    /* 6: the arrival journal moved to a file of its own (journal.h); a
     * decision keeps its journal id, so a crash between the decision's commit
     * and the journal's delete is recognised. The old journal table is only
     * read once, for rows an older build left (router_queue.c). */
    "ALTER TABLE decisions ADD COLUMN journal_id INTEGER;"
    "PRAGMA user_version = 6;",
    /* 7: what each attempt's provider sent the model (a JSON object: the
     * parameters after mapping to the API's ranges, e.g. a temperature
     * clamped for Anthropic), so the log says what the model was asked. */
    "ALTER TABLE attempts ADD COLUMN sent TEXT;"
    "PRAGMA user_version = 7;",
};

static const char sql_upd_decision[] =
    "UPDATE decisions SET tier_kind = ?2, tier_index = ?3, tier_name = ?4, model = ?5,"
    " confidence = ?6, threshold = ?7, escalated = ?8, reason = ?9, cost_usd = ?10,"
    " cost_top_usd = ?11, latency_ms = ?12, tokens_in = ?13, tokens_out = ?14,"
    " left_device = 1, error_code = ?15, error_message = ?16, degraded = ?17, revision = ?18,"
    " redacted = max(redacted, ?19) WHERE id = ?1";
static const char sql_find_decision[] =
    "SELECT d.id, (SELECT count(*) FROM attempts a WHERE a.decision_id = d.id) FROM decisions d"
    " WHERE d.query_id = ?1 ORDER BY d.id DESC LIMIT 1";
static const char sql_decided[] =
    "SELECT 1 FROM decisions WHERE ts_ms = ?1 AND journal_id = ?2 LIMIT 1";
/* A shadow call left the device too, possibly masked. */
static const char sql_add_cost[] = "UPDATE decisions SET cost_usd = cost_usd + ?2, left_device = 1,"
                                   " redacted = max(redacted, ?3) WHERE id = ?1";

static const char sql_ins_decision[] =
    "INSERT INTO decisions (ts_ms, query_id, source, policy, encoding, tier_kind, tier_index,"
    " tier_name, model, confidence, threshold, escalated, reason, cost_usd, cost_top_usd,"
    " latency_ms, router_ms, tokens_in, tokens_out, left_device, error_code, error_message,"
    " degraded, revision, complexity, redacted, escalation_withheld, journal_id)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28)";

static const char sql_ins_attempt[] =
    "INSERT INTO attempts (decision_id, seq, tier_index, tier_name, model, confidence,"
    " threshold, accepted, reason, latency_ms, cost_usd, tokens_in, tokens_out, error_code,"
    " error_message, answer, finish_reason, raw_confidence, lp_n, lp_mean, lp_min, lp_p10,"
    " lp_p25, lp_geo, lp_first, sent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
    " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

void ec_decision_clear(ec_decision *d)
{
    if (!d)
        return;
    ec_result_clear(&d->result);
    for (size_t i = 0; i < d->n_details && i < EC_MAX_ATTEMPTS; i++) {
        free(d->details[i].answer);
        free(d->details[i].finish_reason);
        free(d->details[i].sent);
    }
    memset(d, 0, sizeof(*d));
}

static void decision_free(void *p)
{
    ec_decision *d = p;
    ec_decision_clear(d);
    free(d);
}

static ec_err db_fail(sqlite3 *db, ec_error *err, const char *what)
{
    return ec_error_set(err, EC_ERR_DB, "store: %s: %s (sqlite error %d)", what,
                        db ? sqlite3_errmsg(db) : "out of memory",
                        db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM);
}

static bool is_memory_path(const char *path)
{
    return path[0] == '\0' || strcmp(path, ":memory:") == 0;
}

/* SQLite says only "unable to open database file"; say which part is missing. */
static ec_err open_fail(sqlite3 *db, const char *path, bool readonly, ec_error *err)
{
    char *copy = strdup(path);
    const char *dir = copy ? dirname(copy) : ".";
    struct stat st;
    ec_err rc;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        rc = ec_error_set(err, EC_ERR_IO, "store: cannot open '%s': directory '%s' does not exist",
                          path, dir);
    else if (readonly && stat(path, &st) != 0)
        rc = ec_error_set(err, EC_ERR_IO, "store: cannot open '%s' read-only: %s", path,
                          strerror(errno));
    else
        rc = ec_error_set(err, EC_ERR_IO, "store: cannot open '%s'%s: %s", path,
                          readonly ? " read-only" : "", db ? sqlite3_errmsg(db) : "out of memory");
    free(copy);
    return rc;
}

static ec_err open_conn(sqlite3 **out, const char *path, bool readonly, ec_error *err)
{
    /* FULLMUTEX is cheap here and keeps the close path and the test hooks safe;
     * the design still gives each connection one user at a time. */
    int flags = SQLITE_OPEN_FULLMUTEX |
                (readonly ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE);
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, flags, NULL) != SQLITE_OK) {
        ec_err rc = open_fail(db, path, readonly, err);
        sqlite3_close(db);
        return rc;
    }
    sqlite3_extended_result_codes(db, 1);
    sqlite3_busy_timeout(db, EC_STORE_BUSY_WAIT_MS);
    *out = db;
    return EC_OK;
}

ec_err ec_sql_exec(sqlite3 *db, const char *who, const char *sql, ec_error *err)
{
    char *msg = NULL;
    if (sqlite3_exec(db, sql, NULL, NULL, &msg) != SQLITE_OK) {
        ec_err rc =
            ec_error_set(err, EC_ERR_DB, "%s: %.60s: %s", who, sql, msg ? msg : sqlite3_errmsg(db));
        sqlite3_free(msg);
        return rc;
    }
    return EC_OK;
}

static ec_err exec(sqlite3 *db, const char *sql, ec_error *err)
{
    return ec_sql_exec(db, "store", sql, err);
}

static ec_err user_version(sqlite3 *db, int *out, ec_error *err)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
        return db_fail(db, err, "reading schema version");
    ec_err rc = EC_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = db_fail(db, err, "reading schema version");
    sqlite3_finalize(st);
    return rc;
}

static ec_err migrate(sqlite3 *db, const char *path, ec_error *err)
{
    int v = 0;
    ec_err rc = user_version(db, &v, err);
    if (rc)
        return rc;
    if (v > EC_STORE_SCHEMA_VERSION)
        return ec_error_set(err, EC_ERR_DB,
                            "store: '%s' has schema version %d, newer than this build's %d", path,
                            v, EC_STORE_SCHEMA_VERSION);
    for (int k = v + 1; k <= EC_STORE_SCHEMA_VERSION; k++) {
        if ((rc = exec(db, "BEGIN IMMEDIATE", err)))
            return rc;
        if ((rc = exec(db, migrations[k], err))) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            ec_error_prefix(err, "migrating '%s' to schema %d: ", path, k);
            return rc;
        }
        if ((rc = exec(db, "COMMIT", err))) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            return rc;
        }
        ec_log_info("store: %s at schema version %d", path, k);
    }
    return EC_OK;
}

static ec_err check_schema(sqlite3 *db, const char *path, ec_error *err)
{
    int v = 0;
    ec_err rc = user_version(db, &v, err);
    if (rc) {
        ec_error_prefix(err, "'%s': ", path);
        return rc;
    }
    if (v == 0)
        return ec_error_set(err, EC_ERR_DB, "store: '%s' is not an edgecascade decision log", path);
    if (v > EC_STORE_SCHEMA_VERSION)
        return ec_error_set(err, EC_ERR_DB,
                            "store: '%s' has schema version %d, newer than this build's %d", path,
                            v, EC_STORE_SCHEMA_VERSION);
    return EC_OK;
}

static ec_err configure_writer(ec_store *s, ec_error *err)
{
    /* Schema first: a file from a newer build is refused before anything in
     * it (even its journal mode) is changed. */
    ec_err rc = migrate(s->db, s->path, err);
    if (rc)
        return rc;
    /* Test hook for disk-full (tests/integration/test_limits.c): cap the file
     * at EC_STORE_MAX_PAGES pages (SQLite keeps it at least its current size,
     * so the schema always fits); past that every write fails SQLITE_FULL. */
    const char *max_pages = getenv("EC_STORE_MAX_PAGES");
    if (max_pages && *max_pages) {
        char sql[64];
        sqlite3_snprintf((int)sizeof(sql), sql, "PRAGMA max_page_count=%lld",
                         (sqlite3_int64)strtoll(max_pages, NULL, 10));
        if ((rc = exec(s->db, sql, err)))
            return rc;
        ec_log_warn("store: %s limited to %s pages (EC_STORE_MAX_PAGES)", s->path, max_pages);
    }
    /* journal_mode answers with the mode now in force; an in-memory store
     * cannot use WAL and needs no durability anyway. */
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode=WAL", -1, &st, NULL) != SQLITE_OK)
        return db_fail(s->db, err, "setting WAL mode");
    const char *mode = NULL;
    if (sqlite3_step(st) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(st, 0);
    bool ok = mode && (strcmp(mode, "wal") == 0 || is_memory_path(s->path));
    rc = ok ? EC_OK
            : ec_error_set(err, EC_ERR_DB, "store: '%s' cannot use WAL mode (journal_mode=%s)",
                           s->path, mode ? mode : sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    if (rc)
        return rc;
    /* The writer only appends: a page cache of 256 KiB (SQLite's default is
     * 2 MiB) keeps the B-tree's inner pages for inserts and leaves the
     * device's memory to the model (measured: router RSS 10.7 -> 8.7 MB after 5,000 queries at
     * 1,000 q/s). */
    if ((rc = exec(s->db, "PRAGMA synchronous=NORMAL", err)) ||
        (rc = exec(s->db, "PRAGMA foreign_keys=ON", err)) ||
        (rc = exec(s->db, "PRAGMA cache_size=-256", err)))
        return rc;
    struct {
        sqlite3_stmt **st;
        const char *sql;
    } stmts[] = {
        {&s->st_begin, "BEGIN IMMEDIATE"},
        {&s->st_commit, "COMMIT"},
        {&s->st_rollback, "ROLLBACK"},
        {&s->st_ins_decision, sql_ins_decision},
        {&s->st_ins_attempt, sql_ins_attempt},
        {&s->st_upd_decision, sql_upd_decision},
        {&s->st_find_decision, sql_find_decision},
        {&s->st_add_cost, sql_add_cost},
    };
    for (size_t i = 0; i < sizeof(stmts) / sizeof(stmts[0]); i++) {
        if (sqlite3_prepare_v3(s->db, stmts[i].sql, -1, SQLITE_PREPARE_PERSISTENT, stmts[i].st,
                               NULL) != SQLITE_OK)
            return db_fail(s->db, err, "preparing statements");
    }
    return EC_OK;
}

ec_err ec_store_open(ec_store **out, const char *path, bool readonly, ec_error *err)
{
    if (!out || !path)
        return ec_error_set(err, EC_ERR_INVAL, "store: no path given");
    *out = NULL;
    ec_store *s = calloc(1, sizeof(*s));
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    }
    s->readonly = readonly;
    pthread_mutex_init(&s->lock, NULL);
    pthread_mutex_init(&s->wlock, NULL);
    pthread_mutex_init(&s->rlock, NULL);
    pthread_mutex_init(&s->hook_lock, NULL);
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->progress, &attr);
    pthread_cond_init(&s->closing_cond, &attr);
    pthread_condattr_destroy(&attr);

    ec_err rc;
    if (readonly) {
        if ((rc = open_conn(&s->rdb, path, true, err)) || (rc = check_schema(s->rdb, path, err)))
            goto out;
    } else {
        if ((rc = open_conn(&s->db, path, false, err)) || (rc = configure_writer(s, err)))
            goto out;
        /* A private in-memory database exists only on its one connection. */
        if (is_memory_path(path))
            s->rdb = s->db;
        else if ((rc = open_conn(&s->rdb, path, true, err)))
            goto out;
    }
    *out = s;
    return EC_OK;
out:
    ec_store_close(s);
    return rc;
}

/* Steps a statement that returns no rows; the message is taken before reset. */
static ec_err step_done(ec_store *s, sqlite3_stmt *st, const char *what, ec_error *err)
{
    int src = sqlite3_step(st);
    ec_err rc = src == SQLITE_DONE ? EC_OK : db_fail(s->db, err, what);
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
    if (dt) {
        bind_text(st, 16, dt->answer);
        bind_text(st, 17, dt->finish_reason);
        bind_confidence(st, 18, dt->raw_confidence);
        if (dt->lp.present) {
            sqlite3_bind_int64(st, 19, dt->lp.n_tokens);
            sqlite3_bind_double(st, 20, dt->lp.mean);
            sqlite3_bind_double(st, 21, dt->lp.min);
            sqlite3_bind_double(st, 22, dt->lp.p10);
            sqlite3_bind_double(st, 23, dt->lp.p25);
            sqlite3_bind_double(st, 24, dt->lp.geo_prob);
            sqlite3_bind_double(st, 25, dt->lp.first_prob);
        }
        bind_text(st, 26, dt->sent);
    }
    ec_err rc = step_done(s, st, "inserting attempt", err);
    sqlite3_clear_bindings(st);
    return rc;
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
        rc = db_fail(s->db, err, "finding decision");
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
    if (d->journal_id > 0)
        sqlite3_bind_int64(st, 28, d->journal_id);
    else
        sqlite3_bind_null(st, 28);
    rc = step_done(s, st, "inserting decision", err);
    sqlite3_clear_bindings(st);
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
static ec_err write_txn(ec_store *s, ec_decision *const *b, size_t n, ec_error *err)
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

static void write_batch(ec_store *s, ec_decision **b, size_t n)
{
    ec_error e = {0};
    uint64_t committed = 0, failed = 0, commits = 0;
    bool ok = false;
    for (int t = 0; t < EC_STORE_TRIES && !ok; t++) {
        if (t)
            ec_sleep_ms(EC_STORE_RETRY_MS << (t - 1));
        ok = write_txn(s, b, n, &e) == EC_OK;
        if (!ok)
            ec_log_error("store: writing %zu decisions failed (try %d of %d): %s", n, t + 1,
                         EC_STORE_TRIES, e.msg);
    }
    int64_t ids[EC_STORE_BATCH_MAX];
    size_t n_ids = 0;
    if (ok) {
        committed = n;
        commits = 1;
        for (size_t i = 0; i < n; i++)
            if (b[i]->journal_id > 0)
                ids[n_ids++] = b[i]->journal_id;
    } else {
        /* One transaction each, so one bad row does not take the rest along. */
        for (size_t i = 0; i < n; i++) {
            if (write_txn(s, &b[i], 1, &e) == EC_OK) {
                committed++;
                commits++;
                if (b[i]->journal_id > 0)
                    ids[n_ids++] = b[i]->journal_id;
                continue;
            }
            failed++;
            ec_log_error("store: decision %s (ts_ms %" PRIu64 ") could not be written: %s",
                         b[i]->result.id, b[i]->ts_ms, e.msg);
        }
    }
    /* Before the progress below: a flush returns only once the journal knows. */
    pthread_mutex_lock(&s->hook_lock);
    if (s->on_commit)
        s->on_commit(s->on_commit_ctx, ids, n_ids);
    pthread_mutex_unlock(&s->hook_lock);
    pthread_mutex_lock(&s->lock);
    s->committed += committed;
    s->failed += failed;
    s->commits += commits;
    s->done += n;
    pthread_cond_broadcast(&s->progress);
    pthread_mutex_unlock(&s->lock);
}

void ec_store_on_commit(ec_store *s, ec_store_commit_fn fn, void *ctx)
{
    pthread_mutex_lock(&s->hook_lock);
    s->on_commit = fn;
    s->on_commit_ctx = ctx;
    pthread_mutex_unlock(&s->hook_lock);
}

ec_err ec_store_decided(ec_store *s, uint64_t ts_ms, int64_t journal_id, bool *found, ec_error *err)
{
    *found = false;
    if (!s || !s->rdb)
        return ec_error_set(err, EC_ERR_INVAL, "store: not open");
    pthread_mutex_lock(&s->rlock);
    sqlite3_stmt *st = NULL;
    ec_err rc = EC_OK;
    if (sqlite3_prepare_v2(s->rdb, sql_decided, -1, &st, NULL) != SQLITE_OK) {
        rc = db_fail(s->rdb, err, "looking up a journaled query");
        goto out;
    }
    sqlite3_bind_int64(st, 1, (sqlite3_int64)ts_ms);
    sqlite3_bind_int64(st, 2, journal_id);
    int src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *found = true;
    else if (src != SQLITE_DONE)
        rc = db_fail(s->rdb, err, "looking up a journaled query");
out:
    sqlite3_finalize(st);
    pthread_mutex_unlock(&s->rlock);
    return rc;
}

#define EC_STORE_CKPT_PAGES 1000 /* SQLite's own auto-checkpoint size */

static int on_wal_commit(void *ctx, sqlite3 *db, const char *name, int pages)
{
    (void)db;
    (void)name;
    atomic_store(&((ec_store *)ctx)->wal_pages, pages);
    return SQLITE_OK;
}

static void checkpoint_if_due(ec_store *s)
{
    if (!s->ckpt || atomic_load(&s->wal_pages) < EC_STORE_CKPT_PAGES)
        return;
    int logged = 0, done = 0;
    int rc = sqlite3_wal_checkpoint_v2(s->ckpt, NULL, SQLITE_CHECKPOINT_PASSIVE, &logged, &done);
    if (rc != SQLITE_OK && rc != SQLITE_BUSY)
        ec_log_warn("store: checkpoint of %s: %s", s->path, sqlite3_errmsg(s->ckpt));
    /* Until the next commit reports the WAL's size anew. */
    atomic_store(&s->wal_pages, 0);
}

/* batch_ms, or less when the store is closing. */
static void batch_sleep(ec_store *s)
{
    struct timespec until;
    ec_deadline_in(&until, (unsigned)s->batch_ms);
    pthread_mutex_lock(&s->lock);
    while (!s->closing && pthread_cond_timedwait(&s->closing_cond, &s->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&s->lock);
}

static void *writer_main(void *arg)
{
    ec_store *s = arg;
    ec_decision *batch[EC_STORE_BATCH_MAX];
    for (;;) {
        void *item;
        /* EC_ERR_UNAVAILABLE: closed and drained. */
        if (ec_queue_pop(s->queue, &item, -1) != EC_OK)
            break;
        size_t n = 0;
        batch[n++] = item;
        /* Sleep out the batch interval rather than wait on the queue: a
         * waiting writer is woken by every decision pushed (a context switch
         * per query on a 2-core device), a sleeping one once per batch. */
        if (s->batch_ms > 0 && ec_queue_len(s->queue) < EC_STORE_BATCH_MAX - 1)
            batch_sleep(s);
        while (n < EC_STORE_BATCH_MAX && ec_queue_pop(s->queue, &item, 0) == EC_OK)
            batch[n++] = item;
        write_batch(s, batch, n);
        checkpoint_if_due(s);
        for (size_t i = 0; i < n; i++)
            decision_free(batch[i]);
    }
    return NULL;
}

ec_err ec_store_start_writer(ec_store *s, int batch_ms, size_t queue_cap, ec_error *err)
{
    if (!s || s->readonly)
        return ec_error_set(err, EC_ERR_INVAL, "store: writer needs a writable store");
    if (s->writer_started)
        return ec_error_set(err, EC_ERR_INVAL, "store: writer already started");
    if (batch_ms < 0 || queue_cap == 0)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: batch_ms must be >= 0 and queue capacity > 0");
    if (ec_queue_create(&s->queue, queue_cap) != EC_OK)
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    s->batch_ms = batch_ms;
    /* A file store checkpoints on the writer thread (see store_internal.h);
     * without that connection SQLite's automatic checkpoint stays on. */
    if (s->db != s->rdb && open_conn(&s->ckpt, s->path, false, NULL) == EC_OK) {
        /* A connection learns the file is in WAL mode on its first read;
         * until then a checkpoint on it does nothing. */
        if (exec(s->ckpt, "SELECT count(*) FROM sqlite_master", NULL) == EC_OK) {
            sqlite3_wal_hook(s->db, on_wal_commit, s);
        } else {
            sqlite3_close(s->ckpt);
            s->ckpt = NULL;
        }
    }
    int e = pthread_create(&s->writer, NULL, writer_main, s);
    if (e) {
        ec_queue_destroy(s->queue, NULL);
        s->queue = NULL;
        return ec_error_set(err, EC_ERR_NOMEM, "store: cannot start writer: %s", strerror(e));
    }
    s->writer_started = true;
    return EC_OK;
}

static ec_err check_decision(const ec_decision *d, ec_error *err)
{
    if (!d)
        return ec_error_set(err, EC_ERR_INVAL, "store: no decision");
    if (!d->result.id || !d->result.id[0])
        return ec_error_set(err, EC_ERR_INVAL, "store: decision has no query id");
    const char *t = d->result.tier;
    if (t && strcmp(t, "local") != 0 && strcmp(t, "cloud") != 0 && strcmp(t, "cache") != 0)
        return ec_error_set(err, EC_ERR_INVAL,
                            "store: decision %s: tier must be \"local\", \"cloud\" or \"cache\", "
                            "not \"%.16s\"",
                            d->result.id, t);
    return EC_OK;
}

ec_err ec_store_record(ec_store *s, ec_decision *d, ec_error *err)
{
    if (!s || !s->writer_started)
        return ec_error_set(err, EC_ERR_UNAVAILABLE, "store: writer not started");
    ec_err rc = check_decision(d, err);
    if (rc)
        return rc;
    ec_decision *copy = malloc(sizeof(*copy));
    if (!copy)
        return ec_error_set(err, EC_ERR_NOMEM, "store: out of memory");
    memcpy(copy, d, sizeof(*copy));
    /* Counted under the lock so a flush that starts after we return waits
     * for this decision. */
    pthread_mutex_lock(&s->lock);
    rc = ec_queue_try_push(s->queue, copy);
    if (rc == EC_OK)
        s->recorded++;
    pthread_mutex_unlock(&s->lock);
    if (rc != EC_OK) {
        free(copy); /* a shallow copy: d still owns the contents */
        if (rc == EC_ERR_BUSY)
            return ec_error_set(err, EC_ERR_BUSY, "store: writer queue full (%zu decisions)",
                                ec_queue_capacity(s->queue));
        return ec_error_set(err, rc, "store: writer is closing");
    }
    memset(d, 0, sizeof(*d));
    return EC_OK;
}

ec_err ec_store_flush(ec_store *s, int timeout_ms, ec_error *err)
{
    if (!s)
        return ec_error_set(err, EC_ERR_INVAL, "store: no store");
    struct timespec deadline;
    ec_deadline_in(&deadline, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&s->lock);
    uint64_t target = s->recorded;
    uint64_t failed0 = s->failed;
    while (s->done < target) {
        if (timeout_ms < 0) {
            pthread_cond_wait(&s->progress, &s->lock);
        } else if (timeout_ms == 0 ||
                   pthread_cond_timedwait(&s->progress, &s->lock, &deadline) == ETIMEDOUT) {
            if (s->done < target) {
                rc = ec_error_set(err, EC_ERR_TIMEOUT,
                                  "store: %" PRIu64 " decisions still pending after %d ms",
                                  target - s->done, timeout_ms);
                break;
            }
        }
    }
    if (rc == EC_OK && s->failed > failed0)
        rc = ec_error_set(err, EC_ERR_DB, "store: %" PRIu64 " decisions could not be written",
                          s->failed - failed0);
    pthread_mutex_unlock(&s->lock);
    return rc;
}

ec_err ec_store_write_now(ec_store *s, const ec_decision *d, ec_error *err)
{
    if (!s || s->readonly)
        return ec_error_set(err, EC_ERR_INVAL, "store: write_now needs a writable store");
    if (s->writer_started)
        return ec_error_set(err, EC_ERR_INVAL, "store: write_now while the writer is running");
    ec_err rc = check_decision(d, err);
    if (rc)
        return rc;
    ec_decision *one = (ec_decision *)d; /* write_txn only reads it */
    return write_txn(s, &one, 1, err);
}

uint64_t ec_store_failed_count(ec_store *s)
{
    if (!s)
        return 0;
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->failed;
    pthread_mutex_unlock(&s->lock);
    return n;
}

void ec_store_close(ec_store *s)
{
    if (!s)
        return;
    if (s->writer_started) {
        pthread_mutex_lock(&s->lock);
        s->closing = true;
        pthread_cond_broadcast(&s->closing_cond);
        pthread_mutex_unlock(&s->lock);
        ec_queue_close(s->queue); /* the writer drains what is queued, then exits */
        pthread_join(s->writer, NULL);
    }
    ec_queue_destroy(s->queue, decision_free);
    sqlite3_close(s->ckpt);
    if (s->rdb && s->rdb != s->db)
        sqlite3_close(s->rdb);
    sqlite3_finalize(s->st_begin);
    sqlite3_finalize(s->st_commit);
    sqlite3_finalize(s->st_rollback);
    sqlite3_finalize(s->st_ins_decision);
    sqlite3_finalize(s->st_ins_attempt);
    sqlite3_finalize(s->st_upd_decision);
    sqlite3_finalize(s->st_find_decision);
    sqlite3_finalize(s->st_add_cost);
    if (s->db) {
        /* Fold the WAL into the main file so a reader (or a copy of the file)
         * needs nothing else. */
        if (sqlite3_wal_checkpoint_v2(s->db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) !=
                SQLITE_OK &&
            !is_memory_path(s->path))
            ec_log_warn("store: checkpoint of %s on close: %s", s->path, sqlite3_errmsg(s->db));
        if (sqlite3_close(s->db) != SQLITE_OK)
            ec_log_error("store: closing %s: %s", s->path, sqlite3_errmsg(s->db));
    }
    if (s->failed)
        ec_log_error("store: %" PRIu64 " decisions were not written to %s", s->failed, s->path);
    pthread_cond_destroy(&s->progress);
    pthread_cond_destroy(&s->closing_cond);
    pthread_mutex_destroy(&s->rlock);
    pthread_mutex_destroy(&s->wlock);
    pthread_mutex_destroy(&s->hook_lock);
    pthread_mutex_destroy(&s->lock);
    free(s->path);
    free(s);
}

sqlite3 *ec_store_write_conn(ec_store *s, pthread_mutex_t **lock)
{
    *lock = &s->wlock;
    return s->db;
}

/* ---- helpers for journal.c and ledger.c (store_internal.h) ---- */

void *ec_sql_col_blob(sqlite3_stmt *st, int i, size_t *len)
{
    const void *p = sqlite3_column_blob(st, i);
    int n = sqlite3_column_bytes(st, i);
    *len = 0;
    if (!p || n <= 0)
        return NULL;
    void *out = malloc((size_t)n + 1);
    if (out) {
        memcpy(out, p, (size_t)n);
        ((char *)out)[n] = '\0';
        *len = (size_t)n;
    }
    return out;
}

char *ec_sql_col_text(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? strdup((const char *)t) : NULL;
}

/* ---- test hooks (store_internal.h) ---- */

ec_err ec_store_test_exec(ec_store *s, const char *sql, ec_error *err)
{
    if (!s || !s->db)
        return ec_error_set(err, EC_ERR_INVAL, "store: no write connection");
    return exec(s->db, sql, err);
}

uint64_t ec_store_test_commits(ec_store *s)
{
    pthread_mutex_lock(&s->lock);
    uint64_t n = s->commits;
    pthread_mutex_unlock(&s->lock);
    return n;
}
