/* The decision log against real SQLite files in temporary directories: schema,
 * WAL, every column written and read back through a raw connection, stats
 * arithmetic, read-only opens and a disk that fills up. The writer thread is
 * test_store_writer.c; the shared fixtures are in test_store_fixtures.h. */
#include "test_store_fixtures.h"

/* ---- schema ---- */

static void test_open_creates_schema_in_wal(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    sqlite3 *db = raw_open(f->path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA journal_mode", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "wal");
    sqlite3_finalize(st);
    assert_int_equal(raw_int(db, "PRAGMA user_version"), EC_STORE_SCHEMA_VERSION);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND"
                                 " name IN ('decisions', 'attempts')"),
                     2);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND"
                                 " name IN ('decisions_ts', 'decisions_query')"),
                     2);
    /* The index really covers ts_ms, the column stats filter on. */
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM pragma_index_info('decisions_ts')"
                                 " WHERE name = 'ts_ms'"),
                     1);
    sqlite3_close(db);
    ec_store_close(s);

    /* Reopening an existing file keeps it (no second migration). */
    s = open_store(f->path);
    ec_store_close(s);
    assert_int_equal(file_count(f->path, "PRAGMA user_version"), EC_STORE_SCHEMA_VERSION);

    ec_store_close(NULL);
    ec_decision_clear(NULL);
}

/* ---- write_now: every column ---- */

static void test_write_now_round_trips_every_column(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_decision d;
    make_decision(&d, "q-1", "cloud", 812.5, 0.0042, 0.0042, 1700000000123ull);
    d.policy = EC_POLICY_AUTO;
    d.encoding = EC_ENC_JSON;
    d.result.source = strdup("plc-7");
    d.result.tier_index = 1;
    d.result.tier_name = strdup("gpt");
    d.result.model = strdup("gpt-4o-mini");
    d.result.confidence = 0.5;
    d.result.threshold = 0.75;
    d.result.reason = strdup("below threshold");
    d.result.router_ms = 1.25;
    d.result.tokens_in = 321;
    d.result.tokens_out = 45;
    add_attempt(&d, "qwen", 0.5, false);
    add_attempt(&d, "gpt", -1, true);
    d.result.attempts[1].error.code = strdup("upstream");
    d.result.attempts[1].error.message = strdup("HTTP 502");
    write_now(s, &d);

    sqlite3 *db = raw_open(f->path);
    sqlite3_stmt *st = NULL;
    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT id, ts_ms, query_id, source, policy, encoding, tier_kind,"
                           " tier_index, tier_name, model, confidence, threshold, escalated,"
                           " reason, cost_usd, cost_top_usd, latency_ms, router_ms, tokens_in,"
                           " tokens_out, left_device, error_code, error_message FROM decisions",
                           -1, &st, NULL),
        SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long id = sqlite3_column_int64(st, 0);
    assert_int_equal(sqlite3_column_int64(st, 1), 1700000000123ll);
    assert_string_equal((const char *)sqlite3_column_text(st, 2), "q-1");
    assert_string_equal((const char *)sqlite3_column_text(st, 3), "plc-7");
    assert_string_equal((const char *)sqlite3_column_text(st, 4), ec_policy_name(EC_POLICY_AUTO));
    assert_string_equal((const char *)sqlite3_column_text(st, 5), "json");
    assert_string_equal((const char *)sqlite3_column_text(st, 6), "cloud");
    assert_int_equal(sqlite3_column_int(st, 7), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 8), "gpt");
    assert_string_equal((const char *)sqlite3_column_text(st, 9), "gpt-4o-mini");
    assert_float_equal(sqlite3_column_double(st, 10), 0.5, 1e-12);
    assert_float_equal(sqlite3_column_double(st, 11), 0.75, 1e-12);
    assert_int_equal(sqlite3_column_int(st, 12), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 13), "below threshold");
    assert_float_equal(sqlite3_column_double(st, 14), 0.0042, 1e-12);
    assert_float_equal(sqlite3_column_double(st, 15), 0.0042, 1e-12);
    assert_float_equal(sqlite3_column_double(st, 16), 812.5, 1e-12);
    assert_float_equal(sqlite3_column_double(st, 17), 1.25, 1e-12);
    assert_int_equal(sqlite3_column_int(st, 18), 321);
    assert_int_equal(sqlite3_column_int(st, 19), 45);
    assert_int_equal(sqlite3_column_int(st, 20), 1);
    assert_int_equal(sqlite3_column_type(st, 21), SQLITE_NULL);
    assert_int_equal(sqlite3_column_type(st, 22), SQLITE_NULL);
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);

    assert_int_equal(
        sqlite3_prepare_v2(db,
                           "SELECT decision_id, seq, tier_index, tier_name, model, confidence,"
                           " threshold, accepted, reason, latency_ms, cost_usd, tokens_in,"
                           " tokens_out, error_code, error_message FROM attempts ORDER BY seq",
                           -1, &st, NULL),
        SQLITE_OK);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        assert_int_equal(sqlite3_column_int64(st, 0), id);
        assert_int_equal(sqlite3_column_int(st, 1), i);
        assert_int_equal(sqlite3_column_int(st, 2), i);
        assert_string_equal((const char *)sqlite3_column_text(st, 3), i ? "gpt" : "qwen");
        assert_string_equal((const char *)sqlite3_column_text(st, 4), "m");
        if (i == 0)
            assert_float_equal(sqlite3_column_double(st, 5), 0.5, 1e-12);
        else /* not judged: NULL, not -1 */
            assert_int_equal(sqlite3_column_type(st, 5), SQLITE_NULL);
        assert_float_equal(sqlite3_column_double(st, 6), 0.7, 1e-12);
        assert_int_equal(sqlite3_column_int(st, 7), i);
        assert_string_equal((const char *)sqlite3_column_text(st, 8),
                            i ? "confident" : "below threshold");
        assert_float_equal(sqlite3_column_double(st, 9), 10.0 * (i + 1), 1e-12);
        assert_float_equal(sqlite3_column_double(st, 10), 0.001 * (i + 1), 1e-12);
        assert_int_equal(sqlite3_column_int(st, 11), 100);
        assert_int_equal(sqlite3_column_int(st, 12), 20);
        if (i == 0) {
            assert_int_equal(sqlite3_column_type(st, 13), SQLITE_NULL);
            assert_int_equal(sqlite3_column_type(st, 14), SQLITE_NULL);
        } else {
            assert_string_equal((const char *)sqlite3_column_text(st, 13), "upstream");
            assert_string_equal((const char *)sqlite3_column_text(st, 14), "HTTP 502");
        }
    }
    assert_int_equal(sqlite3_step(st), SQLITE_DONE);
    sqlite3_finalize(st);
    sqlite3_close(db);

    int n = -1;
    assert_int_equal(ec_store_count_query(s, "q-1", &n, NULL), EC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ec_store_count_query(s, "q-2", &n, NULL), EC_OK);
    assert_int_equal(n, 0);
    ec_store_close(s);
}

static void test_error_decision_has_tier_kind_none(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_decision d;
    make_decision(&d, "q-err", NULL, 30000, 0, 0, 5);
    d.policy = EC_POLICY_LOCAL_ONLY;
    write_now(s, &d);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM decisions WHERE tier_kind = 'none' AND"
                                 " tier_index IS NULL AND confidence IS NULL AND"
                                 " error_code = 'timeout' AND encoding = 'msgpack'"),
                     1);
    sqlite3_close(db);

    /* What the store refuses, and says why. */
    ec_error err = {0};
    make_decision(&d, "q-bad", "edge", 1, 0, 0, 5);
    assert_int_equal(ec_store_write_now(s, &d, &err), EC_ERR_INVAL);
    assert_non_null(strstr(err.msg, "edge"));
    ec_decision_clear(&d);
    make_decision(&d, "", "local", 1, 0, 0, 5);
    assert_int_equal(ec_store_write_now(s, &d, &err), EC_ERR_INVAL);
    assert_non_null(strstr(err.msg, "query id"));
    ec_decision_clear(&d);
    ec_store_close(s);
}

/* ---- stats ---- */

static void write_set(ec_store *s, const char *kind, const double *lat, size_t n, double cost,
                      double cost_top, uint64_t ts, int *seq)
{
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "s-%d", (*seq)++);
        ec_decision d;
        make_decision(&d, id, kind, lat[i], cost, cost_top, ts);
        write_now(s, &d);
    }
}

/* What each attempt's provider sent (attempts.sent, schema 7): kept for a
 * failed attempt too, NULL when the tier said nothing. */
static void test_attempt_sent_recorded(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_decision d;
    make_decision(&d, "q-sent", "cloud", 5, 0, 0, 7);
    add_attempt(&d, "qwen", 0.4, false);
    add_attempt(&d, "claude", -1, false);
    d.n_details = 2;
    d.details[1].raw_confidence = -1;
    d.details[1].sent = strdup("{\"provider\":\"anthropic\",\"temperature\":1,"
                               "\"temperature_asked\":1.5}");
    write_now(s, &d);
    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM attempts WHERE seq = 0 AND sent IS NULL"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM attempts WHERE seq = 1 AND"
                                 " json_extract(sent, '$.temperature') = 1 AND"
                                 " json_extract(sent, '$.temperature_asked') = 1.5"),
                     1);
    sqlite3_close(db);
    ec_store_close(s);
}

/* The inserts bind every parameter of every row (no clear_bindings): a row
 * that lacks what the one before it had gets NULL there, never the earlier
 * row's value. Both decisions go in one transaction, on the same statements. */
static void test_no_value_carries_over_to_the_next_row(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_decision *b[2];
    ec_decision full, bare;
    make_decision(&full, "q-full", "local", 5, 0, 0, 7);
    full.journal_id = 42;
    full.result.tier_index = 1;
    full.result.asker = strdup("alice");
    full.result.complexity = strdup("simple");
    add_attempt(&full, "qwen", 0.8, true);
    full.n_details = 1;
    full.details[0].answer = strdup("Paris.");
    full.details[0].finish_reason = strdup("stop");
    full.details[0].raw_confidence = 0.75;
    full.details[0].lp = (ec_lp_stats){.present = true,
                                       .n_tokens = 3,
                                       .mean = -0.1,
                                       .min = -0.5,
                                       .geo_prob = 0.9,
                                       .first_prob = 0.95,
                                       .p10 = -0.4,
                                       .p25 = -0.2};
    full.details[0].sent = strdup("{\"temperature\":0.2}");
    make_decision(&bare, "q-bare", NULL, 5, 0, 0, 8);
    add_attempt(&bare, "qwen", -1, false);
    b[0] = &full;
    b[1] = &bare;
    ec_error err = {0};
    assert_int_equal(ec_store_write_txn(s, b, 2, &err), EC_OK);
    ec_decision_clear(&full);
    ec_decision_clear(&bare);

    sqlite3 *db = raw_open(f->path);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM decisions WHERE query_id = 'q-full' AND"
                                 " tier_index = 1 AND journal_id = 42 AND asker = 'alice' AND"
                                 " complexity = 'simple'"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM decisions WHERE query_id = 'q-bare' AND"
                                 " tier_kind = 'none' AND tier_index IS NULL AND"
                                 " journal_id IS NULL AND asker IS NULL AND complexity IS NULL"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM attempts a JOIN decisions d ON"
                                 " d.id = a.decision_id WHERE d.query_id = 'q-full' AND"
                                 " a.answer = 'Paris.' AND a.finish_reason = 'stop' AND"
                                 " a.raw_confidence = 0.75 AND a.lp_n = 3 AND a.lp_first = 0.95"
                                 " AND a.sent IS NOT NULL"),
                     1);
    assert_int_equal(raw_int(db, "SELECT COUNT(*) FROM attempts a JOIN decisions d ON"
                                 " d.id = a.decision_id WHERE d.query_id = 'q-bare' AND"
                                 " a.confidence IS NULL AND a.answer IS NULL AND"
                                 " a.finish_reason IS NULL AND a.raw_confidence IS NULL AND"
                                 " a.lp_n IS NULL AND a.lp_mean IS NULL AND a.lp_min IS NULL AND"
                                 " a.lp_p10 IS NULL AND a.lp_p25 IS NULL AND a.lp_geo IS NULL AND"
                                 " a.lp_first IS NULL AND a.sent IS NULL"),
                     1);
    sqlite3_close(db);
    ec_store_close(s);
}

static void test_stats_exact_values(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    int seq = 0;
    /* Out of order on purpose: percentiles must sort. */
    const double local[] = {40, 10, 30, 20};
    const double cloud[] = {200, 100};
    const double cache[] = {3, 1, 2}; /* answered from the router's cache: free */
    const double none[] = {5};
    write_set(s, "local", local, 4, 0.0, 0.01, 1000, &seq);
    write_set(s, "cloud", cloud, 2, 0.02, 0.02, 1000, &seq);
    write_set(s, "cache", cache, 3, 0.0, 0.01, 1000, &seq);
    write_set(s, NULL, none, 1, 0.0, 0.0, 1000, &seq);

    ec_stats st;
    ec_error err = {0};
    assert_int_equal(ec_store_stats(s, 0, &st, &err), EC_OK);
    assert_int_equal(st.queries, 10);
    assert_int_equal(st.local, 4);
    assert_int_equal(st.cloud, 2);
    assert_int_equal(st.cache, 3);
    assert_int_equal(st.errors, 1);
    assert_int_equal(st.local + st.cloud + st.cache + st.errors, st.queries);
    assert_int_equal(st.escalated, 2);
    assert_float_equal(st.pct_local, 40.0, 1e-9);
    assert_float_equal(st.pct_cloud, 20.0, 1e-9);
    assert_float_equal(st.pct_cache, 30.0, 1e-9);
    /* Every query is counted once: the shares and the errors' share are 100 %. */
    assert_float_equal(st.pct_local + st.pct_cloud + st.pct_cache +
                           100.0 * (double)st.errors / (double)st.queries,
                       100.0, 1e-9);
    assert_float_equal(st.cost_usd, 0.04, 1e-12);
    assert_float_equal(st.cost_top_usd, 0.11, 1e-12);
    assert_float_equal(st.savings_pct, 100.0 * (1.0 - 0.04 / 0.11), 1e-9);
    assert_int_equal(st.n_tiers, 4);
    assert_string_equal(st.tiers[0].kind, "local");
    assert_string_equal(st.tiers[1].kind, "cloud");
    assert_string_equal(st.tiers[2].kind, "cache");
    assert_string_equal(st.tiers[3].kind, "none");
    /* n=4: p50 at index ceil(2)-1 = 1, p95 at ceil(3.8)-1 = 3. */
    assert_int_equal(st.tiers[0].n, 4);
    assert_float_equal(st.tiers[0].p50_ms, 20, 1e-12);
    assert_float_equal(st.tiers[0].p95_ms, 40, 1e-12);
    assert_float_equal(st.tiers[0].cost_usd, 0.0, 1e-12);
    /* n=2: index 0 and 1. */
    assert_int_equal(st.tiers[1].n, 2);
    assert_float_equal(st.tiers[1].p50_ms, 100, 1e-12);
    assert_float_equal(st.tiers[1].p95_ms, 200, 1e-12);
    assert_float_equal(st.tiers[1].cost_usd, 0.04, 1e-12);
    /* n=3: p50 at ceil(1.5)-1 = 1, p95 at ceil(2.85)-1 = 2. */
    assert_int_equal(st.tiers[2].n, 3);
    assert_float_equal(st.tiers[2].p50_ms, 2, 1e-12);
    assert_float_equal(st.tiers[2].p95_ms, 3, 1e-12);
    assert_float_equal(st.tiers[2].cost_usd, 0.0, 1e-12);
    /* n=1: both are the one value. */
    assert_int_equal(st.tiers[3].n, 1);
    assert_float_equal(st.tiers[3].p50_ms, 5, 1e-12);
    assert_float_equal(st.tiers[3].p95_ms, 5, 1e-12);

    /* n=20 (1..20 ms) later on: p50 = 10 (index 9); p95 = 19 (index 18:
     * 0.95*20 is a whole number, so ceil adds nothing). */
    double twenty[20];
    for (int i = 0; i < 20; i++)
        twenty[i] = 20 - i;
    write_set(s, "local", twenty, 20, 0.0, 0.0, 5000, &seq);
    assert_int_equal(ec_store_stats(s, 5000, &st, &err), EC_OK);
    assert_int_equal(st.queries, 20);
    assert_int_equal(st.tiers[0].n, 20);
    assert_float_equal(st.tiers[0].p50_ms, 10, 1e-12);
    assert_float_equal(st.tiers[0].p95_ms, 19, 1e-12);
    assert_float_equal(st.pct_local, 100.0, 1e-12);
    assert_float_equal(st.savings_pct, 0.0, 1e-12); /* cost_top 0: no division */
    assert_int_equal(st.tiers[1].n, 0);
    assert_float_equal(st.tiers[1].p50_ms, 0, 1e-12);
    assert_int_equal(st.cache, 0);
    assert_float_equal(st.pct_cache, 0, 1e-12);
    assert_int_equal(st.tiers[2].n, 0);
    assert_float_equal(st.tiers[2].p95_ms, 0, 1e-12);
    ec_store_close(s);
}

static void test_stats_since_filter(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    int seq = 0;
    const double a[] = {1}, b[] = {2}, c[] = {3};
    write_set(s, "local", a, 1, 0.1, 0.2, 1000, &seq);
    write_set(s, "cloud", b, 1, 0.3, 0.3, 2000, &seq);
    write_set(s, "cloud", c, 1, 0.5, 0.5, 3000, &seq);
    ec_stats st;
    assert_int_equal(ec_store_stats(s, 0, &st, NULL), EC_OK);
    assert_int_equal(st.queries, 3);
    assert_int_equal(ec_store_stats(s, 2000, &st, NULL), EC_OK); /* inclusive */
    assert_int_equal(st.queries, 2);
    assert_int_equal(st.local, 0);
    assert_int_equal(st.cloud, 2);
    assert_float_equal(st.cost_usd, 0.8, 1e-12);
    assert_float_equal(st.tiers[1].p50_ms, 2, 1e-12);
    assert_float_equal(st.tiers[1].p95_ms, 3, 1e-12);
    assert_int_equal(ec_store_stats(s, 3001, &st, NULL), EC_OK);
    assert_int_equal(st.queries, 0);
    assert_float_equal(st.pct_local, 0, 1e-12);
    assert_float_equal(st.savings_pct, 0, 1e-12);
    assert_int_equal(st.n_tiers, 4);
    assert_int_equal(st.tiers[0].n + st.tiers[1].n + st.tiers[2].n + st.tiers[3].n, 0);
    ec_store_close(s);
}

/* ---- opening ---- */

static void test_readonly_open_and_open_failures(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_store *ro = NULL;

    /* Read-only needs an existing file. */
    assert_int_not_equal(ec_store_open(&ro, f->path, true, &err), EC_OK);
    assert_null(ro);
    assert_non_null(strstr(err.msg, f->path));

    ec_store *s = open_store(f->path);
    int seq = 0;
    const double lat[] = {7};
    write_set(s, "local", lat, 1, 0, 0.01, 10, &seq);
    ec_store_close(s);

    if (ec_store_open(&ro, f->path, true, &err) != EC_OK)
        fail_msg("read-only open: %s", err.msg);
    ec_stats st;
    assert_int_equal(ec_store_stats(ro, 0, &st, &err), EC_OK);
    assert_int_equal(st.queries, 1);
    assert_float_equal(st.savings_pct, 100.0, 1e-12);
    int n = 0;
    assert_int_equal(ec_store_count_query(ro, "s-0", &n, &err), EC_OK);
    assert_int_equal(n, 1);
    /* No writes through a reader. */
    assert_int_equal(ec_store_start_writer(ro, 10, 8, &err), EC_ERR_INVAL);
    ec_decision d;
    make_decision(&d, "q-ro", "local", 1, 0, 0, 1);
    assert_int_equal(ec_store_write_now(ro, &d, &err), EC_ERR_INVAL);
    ec_decision_clear(&d);
    ec_store_close(ro);
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM decisions"), 1);

    /* A directory that is not there: said so. */
    char missing[192];
    snprintf(missing, sizeof(missing), "%s/no/such/dir/decisions.db", f->dir);
    assert_int_not_equal(ec_store_open(&s, missing, false, &err), EC_OK);
    assert_null(s);
    assert_non_null(strstr(err.msg, "does not exist"));
    assert_non_null(strstr(err.msg, "no/such/dir"));

    /* An SQLite file that is not ours is not read as if it were. */
    char other[160];
    snprintf(other, sizeof(other), "%s/other.db", f->dir);
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(other, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ec_store_open(&ro, other, true, &err), EC_ERR_DB);
    assert_non_null(strstr(err.msg, "not an edgecascade"));

    /* Nor one from a newer build. */
    db = raw_open(f->path);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ec_store_open(&s, f->path, false, &err), EC_ERR_DB);
    assert_non_null(strstr(err.msg, "newer"));
    assert_int_equal(ec_store_open(&ro, f->path, true, &err), EC_ERR_DB);
}

/* An in-memory store (tests elsewhere may use one): reads share the write
 * connection, and the writer works the same. */
static void test_memory_store(void **state)
{
    (void)state;
    ec_store *s = open_store(":memory:");
    int seq = 0;
    const double lat[] = {3, 1, 2};
    write_set(s, "local", lat, 3, 0.0, 0.03, 10, &seq);
    assert_int_equal(ec_store_start_writer(s, 0, 8, NULL), EC_OK);
    ec_decision d;
    make_decision(&d, "m-1", "cloud", 9, 0.01, 0.01, 10);
    assert_int_equal(ec_store_record(s, &d, NULL), EC_OK);
    assert_int_equal(ec_store_flush(s, 10000, NULL), EC_OK);
    ec_stats st;
    assert_int_equal(ec_store_stats(s, 0, &st, NULL), EC_OK);
    assert_int_equal(st.queries, 4);
    assert_float_equal(st.tiers[0].p50_ms, 2, 1e-12);
    assert_float_equal(st.tiers[0].p95_ms, 3, 1e-12);
    assert_float_equal(st.savings_pct, 100.0 * (1.0 - 0.01 / 0.1), 1e-9);
    int n = 0;
    assert_int_equal(ec_store_count_query(s, "m-1", &n, NULL), EC_OK);
    assert_int_equal(n, 1);
    ec_store_close(s);
}

/* ---- a full disk ---- */

static void test_full_disk_is_logged_counted_and_survived(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_error err = {0};
    /* max_page_count cannot go below the current size: "1" pins the file at
     * what it is now, so any row that needs a new page fails with SQLITE_FULL. */
    assert_int_equal(ec_store_test_exec(s, "PRAGMA max_page_count = 1", &err), EC_OK);
    assert_int_equal(ec_store_start_writer(s, 0, 16, &err), EC_OK);

    char *big = malloc(16384);
    assert_non_null(big);
    memset(big, 'x', 16383);
    big[16383] = '\0';

    capture cap;
    capture_start(&cap, f->dir);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "full-%d", i);
        ec_decision d;
        make_decision(&d, id, "local", 1, 0, 0, 1);
        d.result.reason = strdup(big); /* overflow pages: needs room */
        assert_int_equal(ec_store_record(s, &d, NULL), EC_OK);
    }
    ec_err frc = ec_store_flush(s, 10000, &err);
    char *log = capture_end(&cap);

    assert_int_equal(frc, EC_ERR_DB);
    assert_non_null(strstr(err.msg, "could not be written"));
    assert_int_equal(ec_store_failed_count(s), 3);
    for (int i = 0; i < 3; i++) {
        char id[32];
        snprintf(id, sizeof(id), "full-%d", i);
        assert_non_null(strstr(log, id));
    }
    assert_non_null(strstr(log, "error"));
    assert_non_null(strstr(log, "full"));
    free(log);

    /* Room again: the same writer carries on. */
    assert_int_equal(ec_store_test_exec(s, "PRAGMA max_page_count = 1000000", &err), EC_OK);
    ec_decision d;
    make_decision(&d, "after", "local", 1, 0, 0, 1);
    d.result.reason = big; /* ownership moves into the decision */
    big = NULL;
    assert_int_equal(ec_store_record(s, &d, NULL), EC_OK);
    if (ec_store_flush(s, 10000, &err) != EC_OK)
        fail_msg("flush after freeing space: %s", err.msg);
    int n = 0;
    assert_int_equal(ec_store_count_query(s, "after", &n, NULL), EC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ec_store_count_query(s, "full-0", &n, NULL), EC_OK);
    assert_int_equal(n, 0);
    assert_int_equal(ec_store_failed_count(s), 3);

    capture_start(&cap, f->dir);
    ec_store_close(s);
    log = capture_end(&cap);
    assert_non_null(strstr(log, "3 decisions were not written"));
    free(log);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_creates_schema_in_wal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_now_round_trips_every_column, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_decision_has_tier_kind_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_attempt_sent_recorded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_no_value_carries_over_to_the_next_row, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_stats_exact_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stats_since_filter, setup, teardown),
        cmocka_unit_test_setup_teardown(test_readonly_open_and_open_failures, setup, teardown),
        cmocka_unit_test(test_memory_store),
        cmocka_unit_test_setup_teardown(test_full_disk_is_logged_counted_and_survived, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
