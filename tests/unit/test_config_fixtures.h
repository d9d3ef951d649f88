/* What the configuration tests share (test_config.c, test_config_errors.c,
 * test_config_helpers.c): a temporary directory for files, loading text on top
 * of the defaults, asserting an error's fragments, comparing two whole
 * configurations, and a file that gives every key. Header-only, since each
 * test file is its own executable. */
#ifndef TEST_CONFIG_FIXTURES_H
#define TEST_CONFIG_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgecascade/config.h"

static char tmpdir[64];

static inline int group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ec_test_config_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static inline int group_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to <tmpdir>/name and returns the path (static buffer). */
static inline const char *write_tmp(const char *name, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(text, 1, strlen(text), f), strlen(text));
    assert_int_equal(fclose(f), 0);
    return path;
}

/* The services' sequence: defaults, then the text on top. */
static inline ec_err load(ec_config *c, const char *yaml, ec_error *e)
{
    ec_error_clear(e);
    assert_int_equal(ec_config_defaults(c, e), EC_OK);
    return ec_config_load_string(c, yaml, strlen(yaml), e);
}

/* Another text on top of c as it is. */
static inline ec_err load_on(ec_config *c, const char *yaml, ec_error *e)
{
    return ec_config_load_string(c, yaml, strlen(yaml), e);
}

static inline void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* Loading yaml fails with EC_ERR_CONFIG, a message holding each fragment, and
 * the configuration left as the defaults. */
static inline void expect_fail(const char *yaml, const char *frag1, const char *frag2)
{
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, yaml, &e), EC_ERR_CONFIG);
    assert_int_equal(e.code, EC_ERR_CONFIG);
    assert_contains(e.msg, frag1);
    if (frag2)
        assert_contains(e.msg, frag2);
    assert_string_equal(c.site, "site1"); /* untouched by the failed load */
    assert_int_equal(c.n_tiers, 2);
    ec_config_free(&c);
}

static inline void assert_str_eq_or_both_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static inline void assert_config_equal(const ec_config *a, const ec_config *b)
{
    assert_str_eq_or_both_null(a->site, b->site);
    assert_str_eq_or_both_null(a->topic_root, b->topic_root);
    assert_str_eq_or_both_null(a->broker, b->broker);
    assert_str_eq_or_both_null(a->username, b->username);
    assert_str_eq_or_both_null(a->password, b->password);
    assert_int_equal(a->keepalive_s, b->keepalive_s);
    assert_int_equal(a->max_inflight, b->max_inflight);
    assert_int_equal(a->queue_size, b->queue_size);
    assert_str_eq_or_both_null(a->db_path, b->db_path);
    assert_int_equal(a->store_batch_ms, b->store_batch_ms);
    assert_str_eq_or_both_null(a->gate_preset, b->gate_preset);
    assert_true(a->min_confidence == b->min_confidence);
    assert_int_equal(a->router_workers, b->router_workers);
    assert_int_equal(a->max_pending, b->max_pending);
    assert_int_equal(a->query_timeout_ms, b->query_timeout_ms);
    assert_int_equal(a->local_workers, b->local_workers);
    assert_int_equal(a->relay_workers, b->relay_workers);
    assert_str_eq_or_both_null(a->log_level, b->log_level);
    assert_int_equal(a->n_tiers, b->n_tiers);
    for (size_t i = 0; i < a->n_tiers; i++) {
        const ec_tier_cfg *x = &a->tiers[i], *y = &b->tiers[i];
        assert_str_eq_or_both_null(x->name, y->name);
        assert_str_eq_or_both_null(x->provider, y->provider);
        assert_str_eq_or_both_null(x->model, y->model);
        assert_str_eq_or_both_null(x->base_url, y->base_url);
        assert_str_eq_or_both_null(x->api_key_env, y->api_key_env);
        assert_str_eq_or_both_null(x->api_key_file, y->api_key_file);
        assert_true(x->cost_per_1k == y->cost_per_1k);
        assert_true(x->input_per_1m == y->input_per_1m);
        assert_true(x->output_per_1m == y->output_per_1m);
        assert_int_equal(x->timeout_ms, y->timeout_ms);
        assert_true(x->min_confidence == y->min_confidence);
        assert_int_equal(x->logprobs, y->logprobs);
        assert_int_equal(x->local, y->local);
    }
}

static const char full_yaml[] =
    "site: plant7\n"
    "topic_root: factory/plant7/llm\n"
    "mqtt:\n"
    "  broker: ssl://broker.local:8883\n"
    "  username: edge\n"
    "  password: \"s3cr#t: x\"\n"
    "  keepalive_s: 45\n"
    "  max_inflight: 100\n"
    "  queue_size: 16\n"
    "store:\n"
    "  path: /var/lib/edgecascade/decisions.db\n"
    "  batch_ms: 10000\n"
    "gate:\n"
    "  preset: conservative\n"
    "  min_confidence: 0.5\n"
    "router:\n"
    "  workers: 64\n"
    "  max_pending: 100000\n"
    "  query_timeout_ms: 3600000\n"
    "local:\n"
    "  workers: 1\n"
    "relay:\n"
    "  workers: 3\n"
    "log:\n"
    "  level: debug\n"
    "tiers:\n"
    "  - name: tiny\n"
    "    provider: ollama\n"
    "    model: llama3.2:1b\n"
    "    base_url: http://10.0.0.5:11434\n"
    "    api_key_env: \"\"\n"
    "    api_key_file: \"\"\n"
    "    cost_per_1k: 0.002\n"
    "    input_per_1m: 0\n"
    "    output_per_1m: 0\n"
    "    timeout_ms: 100\n"
    "    min_confidence: 0.9\n"
    "    logprobs: false\n"
    "  - provider: anthropic\n"
    "    model: claude-3-5-haiku\n"
    "    input_per_1m: 0.8\n"
    "    output_per_1m: 4\n"
    "    timeout_ms: 600000\n"
    "    logprobs: no\n"
    "  - {name: mid, provider: openai-compatible, model: qwen2.5-7b, api_key_file: /k}\n";

#endif
