/* The arrival journal on real files: duplicate detection, records kept
 * across a reopen until done, ids never reused, segments that stay small,
 * what a crash leaves (a child process that dies between any two writes, a
 * record cut short), the SQLite journal of the build before moved over, one
 * router per journal, and the decision log's side of the bargain (commit
 * hook, decided). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"

#include "../../common/store/store_internal.h"

typedef struct fx {
    char dir[64];
    char store[128];
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ec-journal-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->store, sizeof(f->store), "%s/d.db", f->dir);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static ec_journal *open_journal(const fx *f)
{
    ec_journal *j = NULL;
    ec_error err = {0};
    if (ec_journal_open(&j, f->store, &err) != EC_OK)
        fail_msg("journal: %s", err.msg);
    return j;
}

static ec_mqtt_msg msg(const char *payload, bool dup)
{
    ec_mqtt_msg m = {.topic = "r/query",
                     .payload = (void *)payload,
                     .len = strlen(payload),
                     .response_topic = "plc/7",
                     .corr = "c1",
                     .corr_len = 2,
                     .dup = dup};
    return m;
}

typedef struct seen {
    int n;
    int64_t ids[8];
    uint64_t ms[8];
} seen;

static void collect(void *ctx, ec_mqtt_msg *m)
{
    seen *s = ctx;
    assert_true(s->n < 8);
    s->ids[s->n] = m->tag;
    s->ms[s->n++] = m->tag_ms;
    assert_string_equal(m->topic, "r/query");
    assert_string_equal(m->response_topic, "plc/7");
    assert_int_equal(m->corr_len, 2);
    assert_memory_equal(m->corr, "c1", 2);
    ec_mqtt_msg_free(m);
}

static void skips_redeliveries_only(void **state)
{
    fx *f = *state;
    ec_journal *j = open_journal(f);
    ec_error err = {0};
    uint64_t before = ec_now_ms();
    ec_mqtt_msg m1 = msg("{\"prompt\":\"x\"}", false);
    assert_int_equal(ec_journal_add(j, &m1, &err), EC_OK);
    int64_t a = m1.tag;
    assert_true(a > 0);
    assert_true(m1.tag_ms >= before && m1.tag_ms <= ec_now_ms());
    /* The same query asked again on purpose (no DUP): a new query. */
    assert_int_equal(ec_journal_add(j, &m1, &err), EC_OK);
    assert_true(m1.tag > a);
    int64_t b = m1.tag;
    /* The broker redelivering it (DUP): not journaled again. */
    ec_mqtt_msg m2 = msg("{\"prompt\":\"x\"}", true);
    assert_int_equal(ec_journal_add(j, &m2, &err), EC_OK);
    assert_int_equal(m2.tag, -1);
    /* A DUP of something never seen is new. */
    ec_mqtt_msg m3 = msg("{\"prompt\":\"y\"}", true);
    assert_int_equal(ec_journal_add(j, &m3, &err), EC_OK);
    assert_true(m3.tag > b);
    seen s = {0};
    size_t count = 0;
    assert_int_equal(ec_journal_each(j, collect, &s, &count, &err), EC_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(count, 3);
    assert_int_equal(s.ids[0], a);
    assert_true(s.ms[0] >= before && s.ms[0] <= m1.tag_ms);
    ec_journal_close(j);
}

static void drop(void *ctx, ec_mqtt_msg *m)
{
    (void)ctx;
    ec_mqtt_msg_free(m);
}

/* A reply no query waits for is not journaled, but the broker may deliver
 * it twice all the same (a connection lost before our PUBACK): the second is
 * recognised, like one journaled before a restart. */
static void a_reply_delivered_twice_is_recognised(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
    ec_mqtt_msg late = msg("paid reply A", false);
    assert_false(ec_journal_seen(j, &late));
    late.dup = true;
    assert_true(ec_journal_seen(j, &late));
    ec_mqtt_msg other = msg("paid reply B", true);
    assert_false(ec_journal_seen(j, &other));
    /* Journaled for its query, then the router stops before deciding it. */
    ec_mqtt_msg q = msg("query", false), kept = msg("paid reply C", false);
    assert_int_equal(ec_journal_add(j, &q, &err), EC_OK);
    assert_int_equal(ec_journal_add_reply(j, &kept, q.tag, &err), EC_OK);
    ec_journal_close(j);
    j = open_journal(f);
    assert_int_equal(ec_journal_each(j, drop, NULL, NULL, &err), EC_OK);
    kept.dup = true;
    assert_true(ec_journal_seen(j, &kept));
    ec_journal_close(j);
}

static void rows_stay_until_done_and_ids_are_not_reused(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
    ec_mqtt_msg m1 = msg("one", false), m2 = msg("two", false);
    assert_int_equal(ec_journal_add(j, &m1, &err), EC_OK);
    assert_int_equal(ec_journal_add(j, &m2, &err), EC_OK);
    uint64_t m2_ms = m2.tag_ms;
    assert_int_equal(ec_journal_done(j, &m1.tag, 1, &err), EC_OK);
    uint64_t n = 0;
    assert_int_equal(ec_journal_count(j, &n, &err), EC_OK);
    assert_int_equal(n, 1);
    /* What `edgecascade doctor` sees, read-only, while the router holds it. */
    uint64_t rows = 0, oldest = 0;
    assert_int_equal(ec_journal_peek(f->store, &rows, &oldest, &err), EC_OK);
    assert_int_equal(rows, 1);
    assert_int_equal(oldest, m2_ms);
    ec_journal_close(j);

    /* A restart finds the undecided row, with its id and arrival time. */
    j = open_journal(f);
    seen s = {0};
    assert_int_equal(ec_journal_each(j, collect, &s, NULL, &err), EC_OK);
    assert_int_equal(s.n, 1);
    assert_int_equal(s.ids[0], m2.tag);
    assert_int_equal(s.ms[0], m2_ms);
    /* Emptied, the journal still never hands out an id twice: a decision's
     * journal_id names one arrival. */
    assert_int_equal(ec_journal_done(j, &m2.tag, 1, &err), EC_OK);
    ec_mqtt_msg m3 = msg("three", false);
    assert_int_equal(ec_journal_add(j, &m3, &err), EC_OK);
    assert_true(m3.tag > m2.tag);
    ec_journal_close(j);
}

/* Redeliveries come after a connection drop (the last arrivals before it) or
 * a crash (rows still in the journal at start): both are recognised, and the
 * memory for it stays bounded (the last 4,096 arrivals). */
static void recognises_redeliveries_after_a_drop_or_a_restart(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
    ec_journal_test_rotate_at(j, 64 * 1024);
    char p[64];
    int64_t first = 0;
    for (int i = 0; i < 5000; i++) {
        snprintf(p, sizeof(p), "query %d", i);
        ec_mqtt_msg m = msg(p, false);
        assert_int_equal(ec_journal_add(j, &m, &err), EC_OK);
        assert_true(m.tag > 0);
        if (i == 0)
            first = m.tag;
        else
            assert_int_equal(ec_journal_done(j, &m.tag, 1, &err), EC_OK);
    }
    for (int i = 5000 - 4096; i < 5000; i += 97) {
        snprintf(p, sizeof(p), "query %d", i);
        ec_mqtt_msg again = msg(p, true);
        assert_int_equal(ec_journal_add(j, &again, &err), EC_OK);
        assert_int_equal(again.tag, -1);
    }
    /* 5,000 arrivals and deletes later the segments are still small: the
     * journal starts a new one (on the deleting thread, never on Paho's). */
    assert_true(ec_journal_test_rotations(j) >= 1);
    for (int seg = 0; seg < 2; seg++) {
        char path[256];
        assert_true(ec_journal_path(f->store, path, sizeof(path) - 4));
        strcat(path, seg ? "-1" : "-0");
        struct stat sb;
        assert_int_equal(stat(path, &sb), 0);
        assert_true(sb.st_size < 1024 * 1024);
    }
    /* Older than the last 4,096 and decided: new again. */
    ec_mqtt_msg old = msg("query 1", true);
    assert_int_equal(ec_journal_add(j, &old, &err), EC_OK);
    assert_true(old.tag > 0);
    assert_int_equal(ec_journal_done(j, &old.tag, 1, &err), EC_OK);
    ec_journal_close(j);

    /* "query 0" was never decided: after a restart its redelivery is known. */
    j = open_journal(f);
    assert_int_equal(ec_journal_each(j, drop, NULL, NULL, &err), EC_OK);
    ec_mqtt_msg again = msg("query 0", true);
    assert_int_equal(ec_journal_add(j, &again, &err), EC_OK);
    assert_int_equal(again.tag, -1);
    uint64_t n = 0;
    assert_int_equal(ec_journal_count(j, &n, &err), EC_OK);
    assert_int_equal(n, 1);
    assert_int_equal(ec_journal_done(j, &first, 1, &err), EC_OK);
    ec_journal_close(j);
}

static void lives_beside_the_decision_log(void **state)
{
    (void)state;
    char p[256];
    assert_true(ec_journal_path("/var/lib/edgecascade/decisions.db", p, sizeof(p)));
    assert_string_equal(p, "/var/lib/edgecascade/decisions.arrivals");
    assert_true(ec_journal_path("/data/log.sqlite", p, sizeof(p)));
    assert_string_equal(p, "/data/log.sqlite.arrivals");
    assert_true(ec_journal_path(":memory:", p, sizeof(p)));
    assert_string_equal(p, ":memory:");
    assert_false(ec_journal_path("/a/very/long/path.db", p, 10));
}

static void refuses_a_file_that_is_not_a_journal(void **state)
{
    fx *f = *state;
    uint64_t rows = 1, oldest = 1;
    ec_error perr = {0};
    /* No journal yet (no router ran here): nothing waiting, not an error. */
    assert_int_equal(ec_journal_peek(f->store, &rows, &oldest, &perr), EC_OK);
    assert_int_equal(rows, 0);
    assert_int_equal(oldest, 0);
    char path[200];
    assert_true(ec_journal_path(f->store, path, sizeof(path) - 4));
    strcat(path, "-0");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE plant(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ec_journal *j = NULL;
    ec_error err = {0};
    assert_int_equal(ec_journal_open(&j, f->store, &err), EC_ERR_DB);
    assert_null(j);
    assert_non_null(strstr(err.msg, "not an edgecascade arrival journal"));
    assert_non_null(strstr(err.msg, path));
    /* Left as it was. */
    struct stat sb;
    assert_int_equal(stat(path, &sb), 0);
    assert_true(sb.st_size >= 4096);
}

/* A second router on the same decision log would write into the same
 * segments: the second is refused, with what to do. */
static void one_router_per_journal(void **state)
{
    fx *f = *state;
    ec_journal *j = open_journal(f), *k = NULL;
    ec_error err = {0};
    assert_int_equal(ec_journal_open(&k, f->store, &err), EC_ERR_BUSY);
    assert_null(k);
    assert_non_null(strstr(err.msg, "another edgecascade-router"));
    ec_journal_close(j);
    j = open_journal(f); /* free again once the first is closed */
    ec_journal_close(j);
}

typedef struct kept {
    size_t n;
    ec_mqtt_msg *m[64];
} kept;

static void keep(void *ctx, ec_mqtt_msg *m)
{
    kept *k = ctx;
    assert_true(k->n < 64);
    k->m[k->n++] = m;
}

static void kept_free(kept *k)
{
    for (size_t i = 0; i < k->n; i++)
        ec_mqtt_msg_free(k->m[i]);
    k->n = 0;
}

/* EC_WRITE_JOURNAL_SEED=DIR: the segments, as the fuzzer's seeds
 * (fuzz/corpus/journal). */
static void write_seeds(const fx *f)
{
    const char *dir = getenv("EC_WRITE_JOURNAL_SEED");
    if (!dir)
        return;
    char cmd[512];
    snprintf(cmd, sizeof(cmd),
             "cp %s/d.arrivals-0 %s/segment-0.bin && cp %s/d.arrivals-1 %s/segment-1.bin", f->dir,
             dir, f->dir, dir);
    assert_int_equal(system(cmd), 0);
}

/* Everything the router reads from a query (how to decode it, what to echo
 * on its Result) comes back after a restart, also after the records were
 * copied into new segments several times. */
static void a_query_comes_back_whole_across_segments(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
    ec_journal_test_rotate_at(j, 4096);
    ec_mqtt_userprop props[2] = {{"line", "L2"}, {"empty", ""}};
    ec_mqtt_msg q = {.topic = "r/query",
                     .payload = "{\"prompt\":\"torque?\"}",
                     .len = 20,
                     .response_topic = "plc/9/answer",
                     .corr = "\x00\x01\x02",
                     .corr_len = 3,
                     .content_type = "application/json",
                     .format = 1,
                     .user_props = props,
                     .n_user_props = 2,
                     .expiry_s = 30};
    assert_int_equal(ec_journal_add(j, &q, &err), EC_OK);
    ec_mqtt_msg reply = {.topic = "r/reply/cloud", .payload = "\x81\xa2id", .len = 4, .format = -1};
    assert_int_equal(ec_journal_add_reply(j, &reply, q.tag, &err), EC_OK);
    char p[64];
    for (int i = 0; i < 400; i++) {
        snprintf(p, sizeof(p), "filler %d", i);
        ec_mqtt_msg m = msg(p, false);
        assert_int_equal(ec_journal_add(j, &m, &err), EC_OK);
        assert_int_equal(ec_journal_done(j, &m.tag, 1, &err), EC_OK);
    }
    assert_true(ec_journal_test_rotations(j) >= 3);
    ec_journal_close(j);
    write_seeds(f);

    j = open_journal(f);
    kept k = {0};
    size_t count = 0;
    assert_int_equal(ec_journal_each(j, keep, &k, &count, &err), EC_OK);
    assert_int_equal(count, 2);
    ec_mqtt_msg *m = k.m[0];
    assert_int_equal(m->tag, q.tag);
    assert_int_equal(m->tag_ms, q.tag_ms);
    assert_int_equal(m->tag_of, 0);
    assert_string_equal(m->topic, "r/query");
    assert_int_equal(m->len, 20);
    assert_memory_equal(m->payload, q.payload, 20);
    assert_int_equal(((char *)m->payload)[20], '\0');
    assert_string_equal(m->response_topic, "plc/9/answer");
    assert_int_equal(m->corr_len, 3);
    assert_memory_equal(m->corr, "\x00\x01\x02", 3);
    assert_string_equal(m->content_type, "application/json");
    assert_int_equal(m->format, 1);
    assert_int_equal(m->expiry_s, 30);
    assert_int_equal(m->qos, 1);
    assert_int_equal(m->n_user_props, 2);
    assert_string_equal(m->user_props[0].name, "line");
    assert_string_equal(m->user_props[0].value, "L2");
    assert_string_equal(m->user_props[1].name, "empty");
    assert_string_equal(m->user_props[1].value, "");
    m = k.m[1];
    assert_int_equal(m->tag_of, q.tag);
    assert_null(m->response_topic);
    assert_null(m->corr);
    assert_int_equal(m->format, -1);
    assert_memory_equal(m->payload, "\x81\xa2id", 4);
    kept_free(&k);
    /* The query decided: its reply goes with it, and stays gone. */
    assert_int_equal(ec_journal_done(j, &q.tag, 1, &err), EC_OK);
    uint64_t n = 9;
    assert_int_equal(ec_journal_count(j, &n, &err), EC_OK);
    assert_int_equal(n, 0);
    ec_journal_close(j);
    j = open_journal(f);
    assert_int_equal(ec_journal_each(j, keep, &k, NULL, &err), EC_OK);
    assert_int_equal(k.n, 0);
    ec_journal_close(j);
}

/* A crash in the middle of a write leaves the last record cut short: it was
 * never acknowledged (the PUBACK follows the write), so it is dropped, and
 * what came before it is kept. */
static void a_record_cut_short_is_dropped(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
    ec_mqtt_msg a = msg("first", false), b = msg("second", false), c = msg("third", false);
    assert_int_equal(ec_journal_add(j, &a, &err), EC_OK);
    assert_int_equal(ec_journal_add(j, &b, &err), EC_OK);
    assert_int_equal(ec_journal_add(j, &c, &err), EC_OK);
    ec_journal_close(j);
    char path[256];
    struct stat sb;
    int seg = 0;
    for (; seg < 2; seg++) { /* the active segment is the larger one */
        assert_true(ec_journal_path(f->store, path, sizeof(path) - 4));
        strcat(path, seg ? "-1" : "-0");
        if (stat(path, &sb) == 0 && sb.st_size > 100)
            break;
    }
    assert_true(seg < 2);
    assert_int_equal(truncate(path, sb.st_size - 3), 0);
    j = open_journal(f);
    seen s = {0};
    assert_int_equal(ec_journal_each(j, collect, &s, NULL, &err), EC_OK);
    assert_int_equal(s.n, 2);
    assert_int_equal(s.ids[0], a.tag);
    assert_int_equal(s.ids[1], b.tag);
    /* And the journal goes on after it. */
    ec_mqtt_msg d = msg("fourth", false);
    assert_int_equal(ec_journal_add(j, &d, &err), EC_OK);
    ec_journal_close(j);
    j = open_journal(f);
    s.n = 0;
    assert_int_equal(ec_journal_each(j, collect, &s, NULL, &err), EC_OK);
    assert_int_equal(s.n, 3);
    assert_int_equal(s.ids[2], d.tag);
    ec_journal_close(j);
}

/* A child process journals and decides, starting new segments every few
 * records, and dies (_exit, no close) after its k-th step, for k = 1..60.
 * Each time the journal read back holds exactly what the child had added and
 * not decided: nothing lost, nothing back that was decided. */
static void a_crash_between_any_two_steps_loses_nothing(void **state)
{
    fx *f = *state;
    for (int k = 1; k <= 60; k++) {
        char cmd[200];
        snprintf(cmd, sizeof(cmd), "rm -f %s/d.arrivals*", f->dir);
        assert_int_equal(system(cmd), 0);
        int pipefd[2];
        assert_int_equal(pipe(pipefd), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pipefd[0]);
            ec_error err = {0};
            ec_journal *j = NULL;
            if (ec_journal_open(&j, f->store, &err))
                _exit(2);
            ec_journal_test_rotate_at(j, 300);
            /* Step i adds query i; every third step also decides the query
             * before it. The pipe gets each undecided id, 0 for a decided. */
            int64_t prev = 0;
            for (int i = 1; i <= k; i++) {
                char p[32];
                snprintf(p, sizeof(p), "q%d", i);
                ec_mqtt_msg m = msg(p, false);
                if (ec_journal_add(j, &m, &err))
                    _exit(3);
                int64_t rec[2] = {m.tag, 0};
                if (i % 3 == 0) {
                    if (ec_journal_done(j, &prev, 1, &err))
                        _exit(4);
                    rec[1] = prev;
                }
                if (write(pipefd[1], rec, sizeof(rec)) != sizeof(rec))
                    _exit(5);
                prev = m.tag;
            }
            _exit(0);
        }
        close(pipefd[1]);
        int64_t want[64];
        size_t n_want = 0;
        int64_t rec[2];
        while (read(pipefd[0], rec, sizeof(rec)) == sizeof(rec)) {
            want[n_want++] = rec[0];
            for (size_t i = 0; rec[1] && i < n_want; i++)
                if (want[i] == rec[1])
                    want[i] = 0;
        }
        close(pipefd[0]);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status));
        assert_int_equal(WEXITSTATUS(status), 0);
        ec_journal *j = open_journal(f);
        kept got = {0};
        ec_error err = {0};
        int64_t ids[64];
        size_t n_ids = 0;
        uint64_t count = 0;
        assert_int_equal(ec_journal_each(j, keep, &got, NULL, &err), EC_OK);
        assert_int_equal(ec_journal_count(j, &count, &err), EC_OK);
        assert_int_equal(count, got.n);
        for (size_t i = 0; i < got.n; i++)
            ids[n_ids++] = got.m[i]->tag;
        kept_free(&got);
        ec_journal_close(j);
        size_t expect = 0;
        for (size_t i = 0; i < n_want; i++) {
            if (!want[i])
                continue;
            expect++;
            bool found = false;
            for (size_t m = 0; m < n_ids && !found; m++)
                found = ids[m] == want[i];
            if (!found)
                fail_msg("crash after step %d: query %lld lost", k, (long long)want[i]);
        }
        assert_int_equal(n_ids, expect);
    }
}

/* The build before kept the journal in a SQLite file (<store>.arrivals.db):
 * its rows move over with their ids and arrival times (a decision names its
 * query by both), and the old file goes. Doctor counts them before that. */
static void the_sqlite_journal_of_the_build_before_moves_over(void **state)
{
    fx *f = *state;
    char old[256];
    assert_true(ec_journal_path(f->store, old, sizeof(old) - 4));
    strcat(old, ".db");
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
    assert_int_equal(
        sqlite3_exec(db,
                     "PRAGMA journal_mode=WAL;"
                     "CREATE TABLE journal (id INTEGER PRIMARY KEY, received_ms INTEGER NOT NULL,"
                     " topic TEXT, payload BLOB NOT NULL, response_topic TEXT, corr BLOB,"
                     " expiry_s INTEGER, of_query INTEGER);"
                     "INSERT INTO journal VALUES (1700000000000001, 1700000000000, 'r/query',"
                     " 'old one', 'plc/1', x'0102', 0, NULL);"
                     "INSERT INTO journal VALUES (1700000000000002, 1700000000001, 'r/reply/c',"
                     " x'81a26964', NULL, NULL, 0, 1700000000000001);",
                     NULL, NULL, NULL),
        SQLITE_OK);
    sqlite3_close(db);
    uint64_t rows = 0, oldest = 0;
    ec_error err = {0};
    assert_int_equal(ec_journal_peek(f->store, &rows, &oldest, &err), EC_OK);
    assert_int_equal(rows, 2);
    assert_int_equal(oldest, 1700000000000ull);

    ec_journal *j = open_journal(f);
    assert_int_equal(access(old, F_OK), -1);
    kept k = {0};
    assert_int_equal(ec_journal_each(j, keep, &k, NULL, &err), EC_OK);
    assert_int_equal(k.n, 2);
    assert_int_equal(k.m[0]->tag, 1700000000000001ll);
    assert_int_equal(k.m[0]->tag_ms, 1700000000000ull);
    assert_memory_equal(k.m[0]->payload, "old one", 7);
    assert_string_equal(k.m[0]->response_topic, "plc/1");
    assert_int_equal(k.m[0]->corr_len, 2);
    assert_int_equal(k.m[1]->tag_of, 1700000000000001ll);
    kept_free(&k);
    /* New ids come after the old ones. */
    ec_mqtt_msg m = msg("new", false);
    assert_int_equal(ec_journal_add(j, &m, &err), EC_OK);
    assert_true(m.tag > 1700000000000002ll);
    int64_t q = 1700000000000001ll;
    assert_int_equal(ec_journal_done(j, &q, 1, &err), EC_OK);
    uint64_t n = 0;
    assert_int_equal(ec_journal_count(j, &n, &err), EC_OK);
    assert_int_equal(n, 1);
    ec_journal_close(j);
    assert_int_equal(ec_journal_peek(f->store, &rows, &oldest, &err), EC_OK);
    assert_int_equal(rows, 1);
    assert_int_equal(oldest, m.tag_ms);

    /* A file of that name that is not a journal is refused, not removed. */
    assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE plant(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    j = NULL;
    assert_int_equal(ec_journal_open(&j, f->store, &err), EC_ERR_DB);
    assert_non_null(strstr(err.msg, "not an edgecascade arrival journal"));
    assert_int_equal(access(old, F_OK), 0);
}

typedef struct hook_seen {
    size_t calls;
    size_t ids;
    int64_t last;
} hook_seen;

static void on_commit(void *ctx, const int64_t *ids, size_t n)
{
    hook_seen *h = ctx;
    h->calls++;
    h->ids += n;
    if (n)
        h->last = ids[n - 1];
}

static void make_decision(ec_decision *d, const char *id, uint64_t ts_ms, int64_t journal_id)
{
    memset(d, 0, sizeof(*d));
    d->ts_ms = ts_ms;
    d->journal_id = journal_id;
    d->result.id = strdup(id);
    d->result.tier = strdup("local");
    d->result.confidence = 0.9;
}

static void the_store_reports_what_it_committed(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_store *s = NULL;
    assert_int_equal(ec_store_open(&s, f->store, false, &err), EC_OK);
    assert_int_equal(ec_store_start_writer(s, 1, 64, &err), EC_OK);
    hook_seen h = {0};
    ec_store_on_commit(s, on_commit, &h);
    ec_decision d;
    make_decision(&d, "q1", 1000, 7);
    assert_int_equal(ec_store_record(s, &d, &err), EC_OK);
    make_decision(&d, "q2", 1001, 0); /* not journaled (a shadow, a replay) */
    assert_int_equal(ec_store_record(s, &d, &err), EC_OK);
    assert_int_equal(ec_store_flush(s, 5000, &err), EC_OK);
    assert_true(h.calls >= 1);
    assert_int_equal(h.ids, 1);
    assert_int_equal(h.last, 7);
    bool found = false;
    assert_int_equal(ec_store_decided(s, 1000, 7, &found, &err), EC_OK);
    assert_true(found);
    /* The same id at another time is another arrival (a journal file made anew). */
    assert_int_equal(ec_store_decided(s, 1001, 7, &found, &err), EC_OK);
    assert_false(found);
    assert_int_equal(ec_store_decided(s, 1000, 8, &found, &err), EC_OK);
    assert_false(found);
    ec_store_on_commit(s, NULL, NULL);
    make_decision(&d, "q3", 1002, 9);
    assert_int_equal(ec_store_record(s, &d, &err), EC_OK);
    assert_int_equal(ec_store_flush(s, 5000, &err), EC_OK);
    assert_int_equal(h.ids, 1); /* unhooked */
    ec_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(skips_redeliveries_only, setup, teardown),
        cmocka_unit_test_setup_teardown(a_reply_delivered_twice_is_recognised, setup, teardown),
        cmocka_unit_test_setup_teardown(rows_stay_until_done_and_ids_are_not_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(recognises_redeliveries_after_a_drop_or_a_restart, setup,
                                        teardown),
        cmocka_unit_test(lives_beside_the_decision_log),
        cmocka_unit_test_setup_teardown(refuses_a_file_that_is_not_a_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(one_router_per_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(a_query_comes_back_whole_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(a_record_cut_short_is_dropped, setup, teardown),
        cmocka_unit_test_setup_teardown(a_crash_between_any_two_steps_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_sqlite_journal_of_the_build_before_moves_over, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(the_store_reports_what_it_committed, setup, teardown),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
