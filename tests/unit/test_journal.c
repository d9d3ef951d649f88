/* The arrival journal on real SQLite files: duplicate detection, rows kept
 * across a reopen until done, ids never reused, its file beside the decision
 * log, and the decision log's side of the bargain (commit hook, decided). */
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
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"

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

static void drop(void *ctx, ec_mqtt_msg *m)
{
    (void)ctx;
    ec_mqtt_msg_free(m);
}

/* Redeliveries come after a connection drop (the last arrivals before it) or
 * a crash (rows still in the journal at start): both are recognised, and the
 * memory for it stays bounded (the last 4,096 arrivals). */
static void recognises_redeliveries_after_a_drop_or_a_restart(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    ec_journal *j = open_journal(f);
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
    /* 5,000 arrivals and deletes later the WAL is still small: the journal
     * checkpoints it (on the deleting thread, never on Paho's). */
    char wal[256];
    assert_true(ec_journal_path(f->store, wal, sizeof(wal) - 4));
    strcat(wal, "-wal");
    struct stat sb;
    assert_int_equal(stat(wal, &sb), 0);
    assert_true(sb.st_size < 3 * 1024 * 1024);
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
    assert_string_equal(p, "/var/lib/edgecascade/decisions.arrivals.db");
    assert_true(ec_journal_path("/data/log.sqlite", p, sizeof(p)));
    assert_string_equal(p, "/data/log.sqlite.arrivals.db");
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
    assert_true(ec_journal_path(f->store, path, sizeof(path)));
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE plant(x)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ec_journal *j = NULL;
    ec_error err = {0};
    assert_int_equal(ec_journal_open(&j, f->store, &err), EC_ERR_DB);
    assert_null(j);
    assert_non_null(strstr(err.msg, "not an edgecascade arrival journal"));
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
        cmocka_unit_test_setup_teardown(rows_stay_until_done_and_ids_are_not_reused, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(recognises_redeliveries_after_a_drop_or_a_restart, setup,
                                        teardown),
        cmocka_unit_test(lives_beside_the_decision_log),
        cmocka_unit_test_setup_teardown(refuses_a_file_that_is_not_a_journal, setup, teardown),
        cmocka_unit_test_setup_teardown(the_store_reports_what_it_committed, setup, teardown),
    };
    return cmocka_run_group_tests_name("journal", tests, NULL, NULL);
}
