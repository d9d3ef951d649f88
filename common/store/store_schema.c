/* The decision log's file: opening connections, the schema and its
 * migrations, the write connection's settings and prepared statements.
 *
 * Everything that knows the shape of the tables is here: the migrations that
 * build them and the SQL text of the statements the writer prepares once
 * (store_rows.c binds them, store.c runs the writer thread). A file from a
 * newer build is refused before anything in it is changed. Also the small SQL
 * helpers journal.c and ledger.c share (store_internal.h). */
#include "store_internal.h"

#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "edgecascade/log.h"

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
    /* 8: who asked as the broker authenticated it (the <user> of
     * <root>/query/<user>), beside the source the payload claims; an
     * escalation queued for the cloud keeps it for its revision 2. */
    "ALTER TABLE decisions ADD COLUMN asker TEXT;"
    "ALTER TABLE outbox ADD COLUMN asker TEXT;"
    "PRAGMA user_version = 8;",
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
/* A shadow call left the device too, possibly masked. */
static const char sql_add_cost[] = "UPDATE decisions SET cost_usd = cost_usd + ?2, left_device = 1,"
                                   " redacted = max(redacted, ?3) WHERE id = ?1";

static const char sql_ins_decision[] =
    "INSERT INTO decisions (ts_ms, query_id, source, policy, encoding, tier_kind, tier_index,"
    " tier_name, model, confidence, threshold, escalated, reason, cost_usd, cost_top_usd,"
    " latency_ms, router_ms, tokens_in, tokens_out, left_device, error_code, error_message,"
    " degraded, revision, complexity, redacted, escalation_withheld, journal_id, asker)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18,"
    " ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26, ?27, ?28, ?29)";

static const char sql_ins_attempt[] =
    "INSERT INTO attempts (decision_id, seq, tier_index, tier_name, model, confidence,"
    " threshold, accepted, reason, latency_ms, cost_usd, tokens_in, tokens_out, error_code,"
    " error_message, answer, finish_reason, raw_confidence, lp_n, lp_mean, lp_min, lp_p10,"
    " lp_p25, lp_geo, lp_first, sent) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12,"
    " ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20, ?21, ?22, ?23, ?24, ?25, ?26)";

ec_err ec_store_db_fail(sqlite3 *db, ec_error *err, const char *what)
{
    return ec_error_set(err, EC_ERR_DB, "store: %s: %s (sqlite error %d)", what,
                        db ? sqlite3_errmsg(db) : "out of memory",
                        db ? sqlite3_extended_errcode(db) : SQLITE_NOMEM);
}

bool ec_store_is_memory_path(const char *path)
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

/* SQLite counts every allocation it makes under a process-wide mutex
 * (SQLITE_CONFIG_MEMSTATUS, on by default) for sqlite3_memory_used(), which
 * nothing here reads: off, before the library initialises. A no-op (and
 * harmless) when another part of the process opened a database first. */
static void sqlite_once(void)
{
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

ec_err ec_store_open_conn(sqlite3 **out, const char *path, bool readonly, ec_error *err)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, sqlite_once);
    /* A writable file connection has one user at a time by design (the write
     * connection: whoever holds wlock; the checkpoint connection: the writer
     * thread), so SQLite's own per-connection mutex is only cost: every bind,
     * step and reset took and released it, about 5,600 instructions per
     * decision written (callgrind). Read-only connections keep it (cheap at
     * their rate), and so does an in-memory store, whose one connection
     * readers (rlock) and the writer (wlock) share. */
    bool one_user = !readonly && !ec_store_is_memory_path(path);
    int flags = (one_user ? SQLITE_OPEN_NOMUTEX : SQLITE_OPEN_FULLMUTEX) |
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
        return ec_store_db_fail(db, err, "reading schema version");
    ec_err rc = EC_OK;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int(st, 0);
    else
        rc = ec_store_db_fail(db, err, "reading schema version");
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
    if (v == EC_STORE_SCHEMA_VERSION)
        return EC_OK;
    /* All pending steps in one transaction: a crash or a failing step leaves
     * the file at its old version, never half-way, and a new file costs one
     * sync instead of one per step (8 of them were a fifth of the router's
     * start-up). */
    if ((rc = exec(db, "BEGIN IMMEDIATE", err)))
        return rc;
    for (int k = v + 1; k <= EC_STORE_SCHEMA_VERSION; k++) {
        if ((rc = exec(db, migrations[k], err))) {
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            ec_error_prefix(err, "migrating '%s' to schema %d: ", path, k);
            return rc;
        }
    }
    if ((rc = exec(db, "COMMIT", err))) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        return rc;
    }
    if (v == 0)
        ec_log_info("store: %s created at schema version %d", path, EC_STORE_SCHEMA_VERSION);
    else
        ec_log_info("store: %s migrated from schema version %d to %d", path, v,
                    EC_STORE_SCHEMA_VERSION);
    return EC_OK;
}

ec_err ec_store_check_schema(sqlite3 *db, const char *path, ec_error *err)
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

ec_err ec_store_configure_writer(ec_store *s, ec_error *err)
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
        return ec_store_db_fail(s->db, err, "setting WAL mode");
    const char *mode = NULL;
    if (sqlite3_step(st) == SQLITE_ROW)
        mode = (const char *)sqlite3_column_text(st, 0);
    bool ok = mode && (strcmp(mode, "wal") == 0 || ec_store_is_memory_path(s->path));
    rc = ok ? EC_OK
            : ec_error_set(err, EC_ERR_DB, "store: '%s' cannot use WAL mode (journal_mode=%s)",
                           s->path, mode ? mode : sqlite3_errmsg(s->db));
    sqlite3_finalize(st);
    if (rc)
        return rc;
    /* The writer only appends: a page cache of 256 KiB (SQLite's default is
     * 2 MiB) keeps the B-tree's inner pages for inserts and leaves the
     * device's memory to the model (measured: router RSS 10.7 -> 8.7 MB after 5,000 queries at
     * 1,000 q/s). A larger one does not pay: on a log of 200,000 decisions
     * the leaf pages of decisions_query (random query ids) are 10 MB, so
     * 2 or 8 MiB still miss on nearly every insert (callgrind: the same
     * instructions per decision at 2 MiB, more at 8).
     *
     * Foreign keys are not enforced (attempts.decision_id REFERENCES
     * decisions(id) stays as documentation): the check can never fail,
     * since every attempt row takes its decision_id from the insert or the
     * lookup just before it in the same transaction and nothing deletes
     * decisions, and it cost a lookup in decisions per attempt row (1,500
     * to 2,500 instructions per decision). */
    if ((rc = exec(s->db, "PRAGMA synchronous=NORMAL", err)) ||
        (rc = exec(s->db, "PRAGMA foreign_keys=OFF", err)) ||
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
            return ec_store_db_fail(s->db, err, "preparing statements");
    }
    return EC_OK;
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
