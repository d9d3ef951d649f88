/* The decision log's writer thread against real SQLite files: batching from
 * several producer threads, a full queue answering busy while the caller
 * keeps its decision, close committing what is pending, and the writer
 * checkpointing the WAL. Apart from test_store.c because these tests run
 * threads and wait on them. */
#include "test_store_fixtures.h"

/* ---- the writer thread ---- */

typedef struct producer {
    ec_store *s;
    int base;
    int n;
    int not_cleared; /* decisions not zeroed after a successful record */
    int errors;
} producer;

static void *produce(void *arg)
{
    producer *p = arg;
    for (int i = 0; i < p->n; i++) {
        char id[32];
        snprintf(id, sizeof(id), "q-%d", p->base + i);
        ec_decision d;
        make_decision(&d, id, (i % 3) ? "local" : "cloud", i, 0.001, 0.002, ec_now_ms());
        add_attempt(&d, "qwen", 0.8, true);
        ec_err rc;
        while ((rc = ec_store_record(p->s, &d, NULL)) == EC_ERR_BUSY)
            ec_sleep_ms(1);
        if (rc != EC_OK) {
            p->errors++;
            ec_decision_clear(&d);
            continue;
        }
        if (d.result.id || d.result.attempts)
            p->not_cleared++;
    }
    return NULL;
}

static void test_writer_batches_from_two_threads(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_error err = {0};
    assert_int_equal(ec_store_start_writer(s, 20, 4096, &err), EC_OK);
    /* One writer only; and write_now would race it. */
    assert_int_equal(ec_store_start_writer(s, 20, 4096, &err), EC_ERR_INVAL);
    ec_decision d;
    make_decision(&d, "q-now", "local", 1, 0, 0, 1);
    assert_int_equal(ec_store_write_now(s, &d, &err), EC_ERR_INVAL);
    ec_decision_clear(&d);

    producer p[2] = {{s, 0, 500, 0, 0}, {s, 100000, 500, 0, 0}};
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&t[i], NULL, produce, &p[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(p[i].errors, 0);
        assert_int_equal(p[i].not_cleared, 0);
    }
    if (ec_store_flush(s, 10000, &err) != EC_OK)
        fail_msg("flush: %s", err.msg);

    /* Committed: visible through another connection, one row per decision. */
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM decisions"), 1000);
    assert_int_equal(file_count(f->path, "SELECT COUNT(DISTINCT query_id) FROM decisions"), 1000);
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM attempts"), 1000);
    int n = 0;
    assert_int_equal(ec_store_count_query(s, "q-100499", &n, NULL), EC_OK);
    assert_int_equal(n, 1);
    ec_stats st;
    assert_int_equal(ec_store_stats(s, 0, &st, NULL), EC_OK);
    assert_int_equal(st.queries, 1000);

    /* Batched: at most 256 a transaction, and far fewer transactions than rows. */
    uint64_t commits = ec_store_test_commits(s);
    assert_true(commits >= 4);
    assert_true(commits <= 250);
    assert_int_equal(ec_store_failed_count(s), 0);
    ec_store_close(s);
}

static void test_queue_full_is_busy_and_caller_keeps_the_decision(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    ec_error err = {0};

    /* Not started yet: nothing to hand over to. */
    ec_decision d;
    make_decision(&d, "q-0", "local", 1, 0, 0, 1);
    assert_int_equal(ec_store_record(s, &d, &err), EC_ERR_UNAVAILABLE);
    assert_string_equal(d.result.id, "q-0");
    ec_decision_clear(&d);

    assert_int_equal(ec_store_start_writer(s, 0, 1, &err), EC_OK);
    /* Another connection holds the write lock, so the writer stalls in BEGIN
     * with the first decision while the one-slot queue fills. */
    sqlite3 *blocker = raw_open(f->path);
    assert_int_equal(sqlite3_exec(blocker, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    /* The writer takes what comes within its (zero) batch window and stalls;
     * the one slot fills after that, so BUSY comes within a few records. */
    int ok = 0;
    ec_err rc = EC_OK;
    char id[32];
    while (ok < 10) {
        snprintf(id, sizeof(id), "q-%d", ok + 1);
        make_decision(&d, id, "cloud", 1, 0, 0, 1);
        add_attempt(&d, "gpt", 0.9, true);
        if ((rc = ec_store_record(s, &d, &err)) != EC_OK)
            break;
        assert_null(d.result.id);
        ok++;
        ec_sleep_ms(20); /* let the writer reach its stalled BEGIN */
    }
    assert_int_equal(rc, EC_ERR_BUSY);
    assert_true(ok >= 1 && ok <= 3);
    assert_non_null(strstr(err.msg, "full"));
    /* Still the caller's, untouched. */
    assert_string_equal(d.result.id, id);
    assert_string_equal(d.result.tier, "cloud");
    assert_int_equal(d.result.n_attempts, 1);
    assert_string_equal(d.result.attempts[0].tier, "gpt");

    /* Nothing can commit while the lock is held. */
    assert_int_equal(ec_store_flush(s, 50, &err), EC_ERR_TIMEOUT);
    assert_non_null(strstr(err.msg, "pending"));

    assert_int_equal(sqlite3_exec(blocker, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(blocker);
    assert_int_equal(ec_store_flush(s, 10000, &err), EC_OK);
    assert_int_equal(ec_store_record(s, &d, &err), EC_OK);
    assert_int_equal(ec_store_flush(s, 10000, &err), EC_OK);

    int n = 0;
    for (int i = 1; i <= ok + 1; i++) {
        snprintf(id, sizeof(id), "q-%d", i);
        assert_int_equal(ec_store_count_query(s, id, &n, NULL), EC_OK);
        assert_int_equal(n, 1);
    }
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM attempts"), ok + 1);
    assert_int_equal(ec_store_failed_count(s), 0);
    ec_store_close(s);
}

static void test_close_commits_pending_decisions(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    /* A long batch window: only close can make these commit soon. */
    assert_int_equal(ec_store_start_writer(s, 60000, 64, NULL), EC_OK);
    for (int i = 0; i < 10; i++) {
        char id[32];
        snprintf(id, sizeof(id), "q-%d", i);
        ec_decision d;
        make_decision(&d, id, "local", i, 0, 0, 1);
        assert_int_equal(ec_store_record(s, &d, NULL), EC_OK);
    }
    uint64_t t0 = ec_mono_us();
    ec_store_close(s);
    assert_true(ec_mono_us() - t0 < 5000000u);
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM decisions"), 10);

    /* Checkpointed on close: the WAL holds nothing the main file lacks. */
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    struct stat stt;
    assert_true(stat(wal, &stt) != 0 || stt.st_size == 0);
}

/* The writer thread checkpoints the WAL (SQLite's automatic checkpoint is
 * off so that it never runs on a journaling caller's thread): writing far
 * more than 1,000 pages leaves a WAL that was reset along the way, not one
 * holding every page ever written. */
static void test_wal_is_checkpointed_by_the_writer(void **state)
{
    fx *f = *state;
    ec_store *s = open_store(f->path);
    assert_int_equal(ec_store_start_writer(s, 5, 1024, NULL), EC_OK);
    char *big = malloc(2049);
    assert_non_null(big);
    memset(big, 'x', 2048);
    big[2048] = '\0';
    enum { N = 6000 }; /* ~12 MB of reasons: ~3,000 pages */
    for (int i = 0; i < N; i++) {
        char id[32];
        snprintf(id, sizeof(id), "q-%d", i);
        ec_decision d;
        make_decision(&d, id, "local", i, 0, 0, 1);
        d.result.reason = strdup(big);
        while (ec_store_record(s, &d, NULL) != EC_OK)
            ec_sleep_ms(1);
    }
    free(big);
    ec_error err = {0};
    assert_int_equal(ec_store_flush(s, 30000, &err), EC_OK);
    char wal[160];
    snprintf(wal, sizeof(wal), "%s-wal", f->path);
    struct stat st;
    assert_int_equal(stat(wal, &st), 0);
    /* Unchecked it would hold all ~12 MB; checkpointed, about 1,000 pages
     * (4 MB) plus one batch. */
    if (st.st_size > 8 * 1024 * 1024)
        fail_msg("WAL is %lld bytes after %d decisions", (long long)st.st_size, N);
    ec_store_close(s);
    assert_int_equal(file_count(f->path, "SELECT COUNT(*) FROM decisions"), N);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_writer_batches_from_two_threads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_is_busy_and_caller_keeps_the_decision,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_commits_pending_decisions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wal_is_checkpointed_by_the_writer, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
