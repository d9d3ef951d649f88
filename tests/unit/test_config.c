/* Configuration loader: defaults, a file giving every key, values derived
 * from other keys, and the committed example file staying equal to the
 * generated one. Error messages are test_config_errors.c, the helper
 * functions and the reload rules test_config_helpers.c; their shared fixtures
 * are in test_config_fixtures.h.
 *
 * EC_UPDATE_EXAMPLE=1 ./test_config rewrites deploy/edgecascade.example.yaml
 * from the table (then the equality test passes by construction). */
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
#include "test_config_fixtures.h"

#define EXAMPLE_PATH EC_SOURCE_DIR "/deploy/edgecascade.example.yaml"

/* ---- defaults ---- */

static void test_defaults(void **state)
{
    ec_config c;
    ec_error e = {0};
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_string_equal(c.site, "site1");
    assert_string_equal(c.topic_root, "edgecascade/site1");
    assert_string_equal(c.broker, "tcp://127.0.0.1:1883");
    assert_string_equal(c.username, "");
    assert_string_equal(c.password, "");
    assert_int_equal(c.keepalive_s, 30);
    assert_int_equal(c.max_inflight, 256);
    assert_int_equal(c.queue_size, 4096);
    assert_string_equal(c.db_path, "edgecascade.db");
    assert_int_equal(c.store_batch_ms, 50);
    assert_string_equal(c.gate_preset, "balanced");
    assert_float_equal(c.min_confidence, 0.70, 1e-12);
    assert_int_equal(c.router_workers, 2);
    assert_int_equal(c.max_pending, 4096);
    assert_int_equal(c.local_inflight, 0);
    assert_int_equal(c.max_wait_ms, 0);
    assert_int_equal(c.query_timeout_ms, 60000);
    assert_int_equal(c.local_workers, 4);
    assert_int_equal(c.relay_workers, 4);
    assert_string_equal(c.log_level, "info");

    assert_int_equal(c.n_tiers, 2);
    ec_tier_cfg *l = &c.tiers[0], *cl = &c.tiers[1];
    assert_string_equal(l->name, "local");
    assert_string_equal(l->provider, "vllm");
    assert_string_equal(l->model, "llama3.2-1b");
    assert_string_equal(l->base_url, "http://127.0.0.1:8000/v1");
    assert_string_equal(l->api_key_env, "");
    assert_string_equal(l->api_key_file, "");
    assert_true(l->cost_per_1k == 0 && l->input_per_1m == 0 && l->output_per_1m == 0);
    assert_int_equal(l->timeout_ms, 30000);
    assert_true(l->min_confidence < 0);
    assert_true(l->logprobs);
    assert_true(l->local);

    assert_string_equal(cl->name, "cloud");
    assert_string_equal(cl->provider, "openai");
    assert_string_equal(cl->model, "gpt-4o-mini");
    assert_string_equal(cl->base_url, "https://api.openai.com/v1");
    assert_string_equal(cl->api_key_env, "OPENAI_API_KEY");
    assert_float_equal(cl->input_per_1m, 0.15, 1e-15);
    assert_float_equal(cl->output_per_1m, 0.60, 1e-15);
    assert_int_equal(cl->timeout_ms, 60000);
    assert_false(cl->local);

    assert_int_equal(ec_config_validate(&c, &e), EC_OK);
    ec_config_free(&c);
    ec_config_free(&c); /* a freed config is zeroed: freeing again is harmless */
    ec_config_free(NULL);
    assert_null(c.site);
    assert_int_equal(c.n_tiers, 0);
}

static void test_load_null_path_and_empty_text(void **state)
{
    ec_config c, d;
    ec_error e = {0};
    assert_int_equal(ec_config_defaults(&d, &e), EC_OK);

    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load(&c, NULL, &e), EC_OK);
    assert_config_equal(&c, &d);
    ec_config_free(&c);

    memset(&c, 0, sizeof(c)); /* a zeroed struct gets the defaults too */
    assert_int_equal(ec_config_load(&c, NULL, &e), EC_OK);
    assert_config_equal(&c, &d);
    ec_config_free(&c);

    const char *empties[] = {"", "# only a comment\n", "---\n", "~\n", "\n\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        assert_int_equal(load(&c, empties[i], &e), EC_OK);
        assert_config_equal(&c, &d);
        ec_config_free(&c);
    }
    memset(&c, 0, sizeof(c));
    assert_int_equal(load_on(&c, "site: plant9\n", &e), EC_OK);
    assert_string_equal(c.site, "plant9");
    assert_int_equal(c.n_tiers, 2);
    ec_config_free(&c);
    ec_config_free(&d);
}

static void test_full_file(void **state)
{
    ec_config c;
    ec_error e;
    const char *path = write_tmp("full.yaml", full_yaml);
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load(&c, path, &e), EC_OK);
    assert_string_equal(c.site, "plant7");
    assert_string_equal(c.topic_root, "factory/plant7/llm");
    assert_string_equal(c.broker, "ssl://broker.local:8883");
    assert_string_equal(c.username, "edge");
    assert_string_equal(c.password, "s3cr#t: x");
    assert_int_equal(c.keepalive_s, 45);
    assert_int_equal(c.max_inflight, 100);
    assert_int_equal(c.queue_size, 16);
    assert_string_equal(c.db_path, "/var/lib/edgecascade/decisions.db");
    assert_int_equal(c.store_batch_ms, 10000);
    assert_string_equal(c.gate_preset, "conservative");
    assert_float_equal(c.min_confidence, 0.5, 1e-15); /* explicit beats the preset */
    assert_int_equal(c.router_workers, 64);
    assert_int_equal(c.max_pending, 100000);
    assert_int_equal(c.query_timeout_ms, 3600000);
    assert_int_equal(c.local_workers, 1);
    assert_int_equal(c.relay_workers, 3);
    assert_string_equal(c.log_level, "debug");

    assert_int_equal(c.n_tiers, 3);
    ec_tier_cfg *t = &c.tiers[0];
    assert_string_equal(t->name, "tiny");
    assert_string_equal(t->provider, "ollama");
    assert_string_equal(t->model, "llama3.2:1b");
    assert_string_equal(t->base_url, "http://10.0.0.5:11434");
    assert_string_equal(t->api_key_env, "");
    assert_string_equal(t->api_key_file, "");
    assert_float_equal(t->cost_per_1k, 0.002, 1e-15);
    assert_int_equal(t->timeout_ms, 100);
    assert_float_equal(t->min_confidence, 0.9, 1e-15);
    assert_false(t->logprobs);
    assert_true(t->local);

    t = &c.tiers[1]; /* name from the model, URL/key/timeout from the provider */
    assert_string_equal(t->name, "claude-3-5-haiku");
    assert_string_equal(t->provider, "anthropic");
    assert_string_equal(t->base_url, "https://api.anthropic.com/v1");
    assert_string_equal(t->api_key_env, "ANTHROPIC_API_KEY");
    assert_string_equal(t->api_key_file, "");
    assert_float_equal(t->input_per_1m, 0.8, 1e-15);
    assert_float_equal(t->output_per_1m, 4.0, 1e-15);
    assert_int_equal(t->timeout_ms, 600000);
    assert_true(t->min_confidence < 0);
    assert_false(t->logprobs);
    assert_false(t->local);

    t = &c.tiers[2];
    assert_string_equal(t->name, "mid");
    assert_string_equal(t->base_url, "http://127.0.0.1:8000/v1");
    assert_string_equal(t->api_key_env, "");
    assert_string_equal(t->api_key_file, "/k");
    assert_int_equal(t->timeout_ms, 30000);
    assert_true(t->logprobs);
    assert_true(t->local);

    assert_int_equal(ec_config_tier_index(&c, "tiny"), 0);
    assert_int_equal(ec_config_tier_index(&c, "claude-3-5-haiku"), 1);
    assert_int_equal(ec_config_tier_index(&c, "mid"), 2);
    assert_int_equal(ec_config_tier_index(&c, "local"), -1); /* defaults replaced */
    assert_int_equal(ec_config_validate(&c, &e), EC_OK);
    ec_config_free(&c);
}

static void test_derived_topic_root_and_threshold(void **state)
{
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, "site: press-line-4\n", &e), EC_OK);
    assert_string_equal(c.topic_root, "edgecascade/press-line-4");
    ec_config_free(&c);

    assert_int_equal(load(&c, "site: a\ntopic_root: x/y\n", &e), EC_OK);
    assert_string_equal(c.topic_root, "x/y");
    ec_config_free(&c);

    static const struct {
        const char *yaml;
        double want;
    } cases[] = {
        {"gate: {preset: aggressive}\n", 0.60},
        {"gate: {preset: balanced}\n", 0.70},
        {"gate: {preset: conservative}\n", 0.85},
        {"gate: {preset: aggressive, min_confidence: 0.95}\n", 0.95},
        {"gate: {min_confidence: 0}\n", 0.0},
        {"gate: {min_confidence: 1}\n", 1.0},
        {"gate: {preset: conservative, min_confidence: 0.7}\n", 0.7},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(load(&c, cases[i].yaml, &e), EC_OK);
        assert_float_equal(c.min_confidence, cases[i].want, 1e-15);
        ec_config_free(&c);
    }

    /* A second file on top: the preset moves a derived threshold... */
    assert_int_equal(load(&c, "gate: {preset: aggressive}\n", &e), EC_OK);
    assert_int_equal(load_on(&c, "gate: {preset: conservative}\n", &e), EC_OK);
    assert_float_equal(c.min_confidence, 0.85, 1e-15);
    ec_config_free(&c);
    /* ...but not an explicit one, nor an explicit topic root. */
    assert_int_equal(load(&c, "gate: {min_confidence: 0.5}\ntopic_root: t/r\n", &e), EC_OK);
    assert_int_equal(load_on(&c, "gate: {preset: aggressive}\nsite: b\n", &e), EC_OK);
    assert_float_equal(c.min_confidence, 0.5, 1e-15);
    assert_string_equal(c.topic_root, "t/r");
    ec_config_free(&c);
}

static void test_null_values_keep_defaults(void **state)
{
    ec_config c;
    ec_error e;
    assert_int_equal(
        load(&c, "site:\nmqtt:\n  keepalive_s: ~\n  broker: null\ngate:\ntiers:\n", &e), EC_OK);
    assert_string_equal(c.site, "site1");
    assert_string_equal(c.broker, "tcp://127.0.0.1:1883");
    assert_int_equal(c.keepalive_s, 30);
    assert_int_equal(c.n_tiers, 2);
    ec_config_free(&c);
    /* Quoted empties are values, not nulls. */
    assert_int_equal(load(&c, "mqtt: {username: \"\"}\nsite: \"null\"\n", &e), EC_OK);
    assert_string_equal(c.username, "");
    assert_string_equal(c.site, "null");
    ec_config_free(&c);
}

/* ---- the example file ---- */

static char *example_text(size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    assert_non_null(f);
    ec_config_write_example(f);
    assert_int_equal(fclose(f), 0);
    return buf;
}

static void test_example_file_matches(void **state)
{
    size_t len = 0;
    char *gen = example_text(&len);
    assert_true(len > 1000);
    if (getenv("EC_UPDATE_EXAMPLE")) {
        FILE *f = fopen(EXAMPLE_PATH, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(gen, 1, len, f), len);
        assert_int_equal(fclose(f), 0);
    }
    FILE *f = fopen(EXAMPLE_PATH, "rb");
    if (!f)
        fail_msg("cannot read %s: %s", EXAMPLE_PATH, strerror(errno));
    char *disk = malloc(len + 2);
    assert_non_null(disk);
    size_t n = fread(disk, 1, len + 1, f);
    fclose(f);
    if (n != len || memcmp(disk, gen, len) != 0)
        fail_msg("%s differs from ec_config_write_example(); regenerate it with "
                 "EC_UPDATE_EXAMPLE=1 test_config",
                 EXAMPLE_PATH);
    /* Every key of the table is documented in it. */
    const char *keys[] = {
        "site:",          "topic_root:",     "broker:",       "username:",    "password:",
        "keepalive_s:",   "max_inflight:",   "queue_size:",   "path:",        "batch_ms:",
        "preset:",        "min_confidence:", "workers:",      "max_pending:", "query_timeout_ms:",
        "level:",         "tiers:",          "name:",         "provider:",    "model:",
        "base_url:",      "api_key_env:",    "api_key_file:", "cost_per_1k:", "input_per_1m:",
        "output_per_1m:", "timeout_ms:",     "logprobs:"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        assert_contains(gen, keys[i]);
    free(disk);
    free(gen);
}

static void test_example_loads_to_defaults(void **state)
{
    ec_config c, d;
    ec_error e;
    assert_int_equal(ec_config_defaults(&d, &e), EC_OK);
    memset(&c, 0, sizeof(c));
    if (ec_config_load(&c, EXAMPLE_PATH, &e) != EC_OK)
        fail_msg("%s", e.msg);
    assert_config_equal(&c, &d);
    ec_config_free(&c);

    /* The generated text too (independent of the committed copy). */
    size_t len = 0;
    char *gen = example_text(&len);
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load_string(&c, gen, len, &e), EC_OK);
    assert_config_equal(&c, &d);
    ec_config_free(&c);

    /* Editing the site in the example moves the (commented) topic root with it. */
    char *site = strstr(gen, "site: site1");
    assert_non_null(site);
    memcpy(site, "site: site2", 11);
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load_string(&c, gen, len, &e), EC_OK);
    assert_string_equal(c.topic_root, "edgecascade/site2");
    ec_config_free(&c);
    free(gen);
    ec_config_free(&d);
}

/* config_reload.c's list of restart keys, checked against the table. */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_null_path_and_empty_text),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_derived_topic_root_and_threshold),
        cmocka_unit_test(test_null_values_keep_defaults),
        cmocka_unit_test(test_example_file_matches),
        cmocka_unit_test(test_example_loads_to_defaults),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
