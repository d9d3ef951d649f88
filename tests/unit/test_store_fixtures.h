/* What the decision log's tests share (test_store.c, test_store_writer.c): a
 * temporary directory per test, a raw SQLite connection to look at what was
 * written, decisions to write, and stderr captured to check what the store
 * logged. Header-only, since each test file is its own executable. */
#ifndef TEST_STORE_FIXTURES_H
#define TEST_STORE_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgecascade/queue.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"
#include "../../common/store/store_internal.h"

typedef struct fx {
    char dir[64];
    char path[128];
} fx;

static inline int setup(void **state)
{
    fx *f = calloc(1, sizeof(*f));
    if (!f)
        return -1;
    snprintf(f->dir, sizeof(f->dir), "/tmp/ec_store_XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->path, sizeof(f->path), "%s/decisions.db", f->dir);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fx *f = *state;
    DIR *d = opendir(f->dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (e->d_name[0] == '.')
                continue;
            char p[512];
            snprintf(p, sizeof(p), "%s/%s", f->dir, e->d_name);
            unlink(p);
        }
        closedir(d);
    }
    rmdir(f->dir);
    free(f);
    return 0;
}

static inline sqlite3 *raw_open(const char *path)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static inline long long raw_int(sqlite3 *db, const char *sql)
{
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    long long v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return v;
}

static inline long long file_count(const char *path, const char *sql)
{
    sqlite3 *db = raw_open(path);
    long long n = raw_int(db, sql);
    sqlite3_close(db);
    return n;
}

/* A decision whose strings are all on the heap, as the router builds them. */
static inline void make_decision(ec_decision *d, const char *id, const char *tier,
                                 double latency_ms, double cost, double cost_top, uint64_t ts_ms)
{
    memset(d, 0, sizeof(*d));
    d->ts_ms = ts_ms;
    d->cost_top_usd = cost_top;
    d->result.id = strdup(id);
    d->result.tier = tier ? strdup(tier) : NULL;
    d->result.latency_ms = latency_ms;
    d->result.cost_usd = cost;
    d->result.confidence = tier ? 0.9 : -1;
    d->result.escalated = tier && strcmp(tier, "cloud") == 0;
    d->left_device = d->result.escalated;
    if (!tier) {
        d->result.error.code = strdup("timeout");
        d->result.error.message = strdup("no tier answered");
    }
}

static inline void add_attempt(ec_decision *d, const char *tier_name, double confidence,
                               bool accepted)
{
    ec_result *r = &d->result;
    ec_attempt *a = realloc(r->attempts, (r->n_attempts + 1) * sizeof(*a));
    assert_non_null(a);
    r->attempts = a;
    a = &r->attempts[r->n_attempts++];
    memset(a, 0, sizeof(*a));
    a->tier_index = (uint32_t)r->n_attempts - 1;
    a->tier = strdup(tier_name);
    a->model = strdup("m");
    a->confidence = confidence;
    a->threshold = 0.7;
    a->accepted = accepted;
    a->reason = strdup(accepted ? "confident" : "below threshold");
    a->latency_ms = 10.0 * (double)r->n_attempts;
    a->cost_usd = 0.001 * (double)r->n_attempts;
    a->tokens_in = 100;
    a->tokens_out = 20;
}

static inline ec_store *open_store(const char *path)
{
    ec_store *s = NULL;
    ec_error err = {0};
    if (ec_store_open(&s, path, false, &err) != EC_OK)
        fail_msg("open %s: %s", path, err.msg);
    return s;
}

static inline void write_now(ec_store *s, ec_decision *d)
{
    ec_error err = {0};
    if (ec_store_write_now(s, d, &err) != EC_OK)
        fail_msg("write_now: %s", err.msg);
    ec_decision_clear(d);
}

/* Captures what ec_log writes to stderr while a block runs. */
typedef struct capture {
    int saved;
    char file[160];
} capture;

static inline void capture_start(capture *c, const char *dir)
{
    snprintf(c->file, sizeof(c->file), "%s/stderr.txt", dir);
    fflush(stderr);
    c->saved = dup(2);
    int fd = open(c->file, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0 && c->saved >= 0);
    dup2(fd, 2);
    close(fd);
}

static inline char *capture_end(capture *c)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    char *text = ec_read_file(c->file, 1 << 20, NULL);
    assert_non_null(text);
    return text;
}

#endif
