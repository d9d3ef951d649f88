/* The ledger on a real SQLite file: the old journal table, outbox order,
 * limits and expiry, events. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/ledger.h"
#include "edgecascade/store.h"

typedef struct fx {
    char dir[64];
    char path[128];
    ec_store *store;
    ec_ledger *l;
} fx;

static int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    snprintf(f->dir, sizeof(f->dir), "/tmp/ec-ledger-XXXXXX");
    if (!mkdtemp(f->dir))
        return -1;
    snprintf(f->path, sizeof(f->path), "%s/d.db", f->dir);
    ec_error err = {0};
    if (ec_store_open(&f->store, f->path, false, &err) || ec_ledger_open(&f->l, f->store, &err))
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fx *f = *state;
    ec_ledger_close(f->l);
    ec_store_close(f->store);
    char cmd[160];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", f->dir);
    if (system(cmd) != 0)
        return -1;
    free(f);
    return 0;
}

static void collect(void *ctx, ec_mqtt_msg *m)
{
    int *n = ctx;
    (*n)++;
    assert_true(m->tag > 0);
    assert_string_equal(m->topic, "r/query");
    assert_string_equal(m->response_topic, "plc/7");
    assert_int_equal(m->corr_len, 2);
    assert_memory_equal(m->payload, "{\"prompt\":\"x\"}", m->len);
    ec_mqtt_msg_free(m);
}

/* Rows an older build left in the decision log's journal table are handed
 * over once (the router journals them anew), then gone from it. */
static void old_journal_rows_are_taken_once(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    assert_int_equal(sqlite3_exec(db,
                                  "INSERT INTO journal (received_ms, topic, payload, "
                                  "response_topic, corr, expiry_s) VALUES "
                                  "(1, 'r/query', '{\"prompt\":\"x\"}', 'plc/7', 'c1', 0),"
                                  "(2, 'r/query', '{\"prompt\":\"x\"}', 'plc/7', 'c2', 0)",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    int n = 0;
    size_t count = 0;
    assert_int_equal(ec_ledger_take_old_journal(f->l, collect, &n, &count, &err), EC_OK);
    assert_int_equal(n, 2);
    assert_int_equal(count, 2);
    n = 0;
    assert_int_equal(ec_ledger_take_old_journal(f->l, collect, &n, &count, &err), EC_OK);
    assert_int_equal(n, 0);
}

static void outbox_in_order_with_limits(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    char *dropped = NULL;
    for (int i = 0; i < 3; i++) {
        char id[8];
        snprintf(id, sizeof(id), "q%d", i);
        ec_outbox_item it = {.query_id = id,
                             .enqueued_ms = 1,
                             .expires_ms = 1000 + (uint64_t)i,
                             .query = "Q",
                             .query_len = 1};
        assert_int_equal(ec_outbox_push(f->l, &it, 3, false, &dropped, &err), EC_OK);
        assert_true(it.id > 0);
    }
    ec_outbox_item it = {.query_id = "q3", .expires_ms = 5000, .query = "Q", .query_len = 1};
    assert_int_equal(ec_outbox_push(f->l, &it, 3, false, &dropped, &err), EC_ERR_BUSY);
    assert_null(dropped);
    assert_int_equal(ec_outbox_push(f->l, &it, 3, true, &dropped, &err), EC_OK);
    assert_string_equal(dropped, "q0"); /* drop_oldest */
    free(dropped);
    assert_int_equal(ec_outbox_count(f->l), 3);
    ec_outbox_item got;
    assert_int_equal(ec_outbox_next(f->l, 0, &got, &err), EC_OK);
    assert_string_equal(got.query_id, "q1");
    int64_t first = got.id;
    assert_int_equal(ec_outbox_answered(f->l, first, "R", 1, &err), EC_OK);
    ec_outbox_item_clear(&got);
    assert_int_equal(ec_outbox_next(f->l, 0, &got, &err), EC_OK);
    assert_true(got.answered);
    assert_int_equal(got.reply_len, 1);
    ec_outbox_item_clear(&got);
    /* expiry: q2 (1002) passed at 1500, q3 (5000) not; answered q1 is not expired */
    assert_int_equal(ec_outbox_next_expired(f->l, 1500, &got, &err), EC_OK);
    assert_string_equal(got.query_id, "q2");
    assert_int_equal(ec_outbox_delete(f->l, got.id, &err), EC_OK);
    ec_outbox_item_clear(&got);
    assert_int_equal(ec_outbox_next_expired(f->l, 1500, &got, &err), EC_ERR_NOTFOUND);
    assert_int_equal(ec_outbox_count(f->l), 2);
}

static void breaker_events_ignore_duplicates(void **state)
{
    fx *f = *state;
    ec_error err = {0};
    assert_int_equal(
        ec_ledger_breaker_event(f->l, 1, "relay-a", "cloud", "m", "open", 1, "why", &err), EC_OK);
    assert_int_equal(
        ec_ledger_breaker_event(f->l, 1, "relay-a", "cloud", "m", "open", 1, "why", &err), EC_OK);
    assert_int_equal(
        ec_ledger_breaker_event(f->l, 2, "relay-a", "cloud", "m", "closed", 2, "ok", &err), EC_OK);
    assert_int_equal(ec_ledger_queue_event(f->l, "q1", "queued", NULL, &err), EC_OK);
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db,
                                        "SELECT (SELECT count(*) FROM breaker_events), "
                                        "(SELECT count(*) FROM queue_events)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2); /* the repeated transition once */
    assert_int_equal(sqlite3_column_int(st, 1), 1);
    sqlite3_finalize(st);
    sqlite3_close(db);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(old_journal_rows_are_taken_once, setup, teardown),
        cmocka_unit_test_setup_teardown(outbox_in_order_with_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(breaker_events_ignore_duplicates, setup, teardown),
    };
    return cmocka_run_group_tests_name("ledger", tests, NULL, NULL);
}
