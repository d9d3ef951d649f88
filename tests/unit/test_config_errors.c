/* Configuration loader: every error message, with its file, line and key
 * path; wrong types and ranges, secrets never echoed, a failed load leaving
 * the configuration as it was, tiers replacing the defaults, and validation
 * of a configuration built in code. Apart from test_config.c because the
 * error cases are most of the configuration's tests. */
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

/* ---- error messages ---- */

static void test_error_value_with_line_and_path(void **state)
{
    ec_config c;
    ec_error e;
    /* min_confidence on line 12 of a file called edge.yaml */
    const char *path = write_tmp("edge.yaml", "site: s\n"
                                              "mqtt:\n"
                                              "  broker: tcp://b:1883\n"
                                              "\n"
                                              "# comment\n"
                                              "store:\n"
                                              "  path: x.db\n"
                                              "router:\n"
                                              "  workers: 2\n"
                                              "gate:\n"
                                              "  preset: balanced\n"
                                              "  min_confidence: high\n");
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load(&c, path, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "edge.yaml:12: gate.min_confidence: must be a number between 0 and 1, "
                           "got \"high\"");
    assert_string_equal(c.site, "site1");
    ec_config_free(&c);

    expect_fail("gate:\n  min_confidence: high\n",
                "<string>:2: gate.min_confidence: must be a number between 0 and 1, got \"high\"",
                NULL);
    expect_fail("gate:\n  min_confidence: 1.5\n",
                "<string>:2: gate.min_confidence:", "got \"1.5\"");
}

static void test_error_unknown_keys(void **state)
{
    expect_fail("site: a\nlog: {level: info}\nmqtt:\n  brokr: tcp://x:1\n",
                "<string>:4: mqtt.brokr: unknown key (did you mean \"broker\"?)", NULL);
    expect_fail("sitee: a\n", "<string>:1: sitee: unknown key (did you mean \"site\"?)", NULL);
    /* A key put in the wrong section points at where it belongs. */
    expect_fail("broker: tcp://x:1\n", "<string>:1: broker: unknown key", "\"mqtt.broker\"");
    expect_fail("tiers:\n  - provider: vllm\n    model: m\n    modle: x\n",
                "<string>:4: tiers[0].modle: unknown key (did you mean \"model\"?)", NULL);
    expect_fail("completely_different: 1\n", "<string>:1: completely_different: unknown key", NULL);
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, "zzz: 1\n", &e), EC_ERR_CONFIG);
    assert_null(strstr(e.msg, "did you mean"));
    ec_config_free(&c);
}

static void test_error_providers_and_choices(void **state)
{
    expect_fail("tiers:\n"
                "  - provider: vllm\n"
                "    model: a\n"
                "  - name: b\n"
                "    provider: openia\n"
                "    model: b\n",
                "<string>:5: tiers[1].provider: unknown provider \"openia\" (expected vllm, "
                "openai-compatible, ollama, openai, anthropic",
                "did you mean \"openai\"");
    expect_fail("gate: {preset: fast}\n", "<string>:1: gate.preset: unknown preset \"fast\"",
                "aggressive, balanced, conservative");
    expect_fail("log:\n  level: verbose\n", "<string>:2: log.level: unknown level \"verbose\"",
                "error, warn, info, debug");
}

static void test_error_required_and_empty(void **state)
{
    expect_fail("tiers:\n  - name: x\n    provider: vllm\n", "<string>:2: tiers[0].model: required",
                NULL);
    expect_fail("tiers:\n  - model: x\n", "<string>:2: tiers[0].provider: required", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: a}\n  - {provider: vllm, model: ~}\n",
                "<string>:3: tiers[1].model: required", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: \"\"}\n",
                "<string>:2: tiers[0].model: must not be empty", NULL);
    expect_fail("site: \"\"\n", "<string>:1: site: must not be empty", NULL);
    expect_fail("tiers: []\n", "<string>:1: tiers: must have at least 1 item", NULL);
}

static void test_error_duplicates(void **state)
{
    expect_fail("site: a\nmqtt:\n  broker: tcp://a:1\n  broker: tcp://b:1\n",
                "<string>:4: mqtt.broker: duplicate key (first given on line 3)", NULL);
    expect_fail("mqtt: {}\nsite: a\nmqtt: {}\n", "<string>:3: mqtt: duplicate key", NULL);
    expect_fail("tiers:\n"
                "  - name: fast\n"
                "    provider: vllm\n"
                "    model: a\n"
                "  - provider: openai\n"
                "    model: b\n"
                "    name: fast\n",
                "<string>:7: tiers[1].name: duplicate tier name \"fast\" (also tiers[0])", NULL);
    /* Names defaulted from the same model collide too. */
    expect_fail("tiers:\n  - {provider: vllm, model: m}\n  - {provider: ollama, model: m}\n",
                "<string>:3: tiers[1].name: duplicate tier name \"m\"", NULL);
}

static void test_error_node_kinds(void **state)
{
    expect_fail("mqtt:\n  - broker\n", "<string>:2: mqtt: must be a mapping of keys, got a list",
                NULL);
    expect_fail("mqtt: tcp://x:1\n",
                "<string>:1: mqtt: must be a mapping of keys, got \"tcp://x:1\"", NULL);
    expect_fail("tiers:\n  provider: vllm\n", "<string>:2: tiers: must be a list, got a mapping",
                NULL);
    expect_fail("tiers:\n  - vllm\n",
                "<string>:2: tiers[0]: must be a mapping of keys, got \"vllm\"", NULL);
    expect_fail("site: [a, b]\n", "<string>:1: site: must be a string, got a list", NULL);
    expect_fail(
        "mqtt:\n  keepalive_s: {a: 1}\n",
        "<string>:2: mqtt.keepalive_s: must be an integer between 5 and 3600, got a mapping", NULL);
    expect_fail("- a\n- b\n", "<string>:1: the top level must be a mapping of keys, got a list",
                NULL);
    expect_fail("just a string\n", "<string>:1: the top level must be a mapping", NULL);
    expect_fail("? [a]\n: b\n", "<string>:1: keys must be plain names, got a list", NULL);
}

static void test_error_yaml_syntax(void **state)
{
    expect_fail("site: a\nmqtt:\n  broker: x\n   foo: bar\n",
                "<string>:4: invalid YAML: mapping values are not allowed", NULL);
    expect_fail("site: a\ngate: {preset: balanced\n",
                "<string>:3: invalid YAML:", "while parsing a flow mapping");
    expect_fail("site: \"unterminated\n", "invalid YAML: ", "found unexpected end of stream");
    expect_fail("site: *nope\n", "<string>:1: invalid YAML: found undefined alias", NULL);
    expect_fail("site: a\n---\nsite: b\n", "<string>:2: only one YAML document is allowed", NULL);
    expect_fail("site: a\nlog: {level: \xff}\n", "<string>:2: invalid YAML:", NULL);
}

static void test_error_tier_count(void **state)
{
    char yaml[1024] = "tiers:\n";
    for (int i = 0; i < EC_MAX_TIERS; i++) {
        size_t n = strlen(yaml);
        snprintf(yaml + n, sizeof(yaml) - n, "  - {provider: vllm, model: m%d}\n", i);
    }
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, yaml, &e), EC_OK);
    assert_int_equal(c.n_tiers, EC_MAX_TIERS);
    assert_string_equal(c.tiers[EC_MAX_TIERS - 1].name, "m7");
    ec_config_free(&c);

    size_t n = strlen(yaml);
    snprintf(yaml + n, sizeof(yaml) - n, "  - {provider: vllm, model: m8}\n");
    expect_fail(yaml, "<string>:10: tiers: at most 8 items allowed, got 9", NULL);
}

static void test_error_files(void **state)
{
    ec_config c;
    ec_error e;
    char path[256];
    snprintf(path, sizeof(path), "%s/missing/edge.yaml", tmpdir);
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_load(&c, path, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "cannot read ");
    assert_contains(e.msg, "/missing/edge.yaml: No such file or directory");
    assert_int_equal(c.n_tiers, 2);

    assert_int_equal(ec_config_load(&c, tmpdir, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "Is a directory");

    /* Just over 1 MiB of valid YAML comments is refused; just under loads. */
    size_t big = 1024 * 1024;
    char *text = malloc(big + 2);
    assert_non_null(text);
    memset(text, '#', big + 1);
    text[big - 1] = '\n';
    text[big] = '\0';
    const char *p = write_tmp("max.yaml", text);
    assert_int_equal(ec_config_load(&c, p, &e), EC_OK);
    text[big] = '\n';
    text[big + 1] = '\0';
    p = write_tmp("big.yaml", text);
    assert_int_equal(ec_config_load(&c, p, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "big.yaml: larger than 1 MiB");
    assert_int_equal(ec_config_load_string(&c, text, big + 1, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "<string>: larger than 1 MiB");
    free(text);
    assert_string_equal(c.site, "site1");
    ec_config_free(&c);
}

static void test_wrong_types_and_ranges(void **state)
{
    expect_fail("mqtt: {keepalive_s: abc}\n",
                "<string>:1: mqtt.keepalive_s: must be an integer between 5 and 3600, got \"abc\"",
                NULL);
    expect_fail("mqtt: {keepalive_s: 30.5}\n", "mqtt.keepalive_s: must be an integer", NULL);
    expect_fail("mqtt: {keepalive_s: 4}\n", "got \"4\"", NULL);
    expect_fail("mqtt: {keepalive_s: 3601}\n", "got \"3601\"", NULL);
    expect_fail("mqtt: {keepalive_s: 99999999999999999999}\n", "mqtt.keepalive_s: must be", NULL);
    expect_fail("mqtt: {max_inflight: 0}\n",
                "mqtt.max_inflight: must be an integer between 1 and "
                "65535",
                NULL);
    expect_fail("mqtt: {queue_size: 15}\n", "between 16 and 1000000", NULL);
    expect_fail("store: {batch_ms: 10001}\n",
                "store.batch_ms: must be an integer between 1 and 10000", NULL);
    expect_fail("router: {workers: 65}\n", "router.workers: must be an integer between 1 and 64",
                NULL);
    expect_fail("router: {max_pending: -1}\n", "router.max_pending:", NULL);
    expect_fail("router: {query_timeout_ms: 99}\n",
                "router.query_timeout_ms: must be an integer between 100 and 3600000", NULL);
    expect_fail("local: {workers: 0}\n", "local.workers:", NULL);
    expect_fail("relay: {workers: x}\n", "relay.workers:", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, timeout_ms: 600001}\n",
                "<string>:2: tiers[0].timeout_ms: must be an integer between 100 and 600000", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, logprobs: maybe}\n",
                "tiers[0].logprobs: must be true or false, got \"maybe\"", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, cost_per_1k: -0.1}\n",
                "tiers[0].cost_per_1k: must be a number >= 0, got \"-0.1\"", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, input_per_1m: .inf}\n",
                "tiers[0].input_per_1m: must be a number >= 0", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, min_confidence: 1.01}\n",
                "tiers[0].min_confidence: must be a number between -1 and 1", NULL);
    expect_fail("gate: {min_confidence: nan}\n", "gate.min_confidence:", NULL);
    expect_fail("site: a/b\n", "<string>:1: site: must not contain '/'", NULL);
    expect_fail("topic_root: a/+/b\n", "topic_root: must not contain '+'", NULL);
    expect_fail("mqtt: {broker: localhost}\n", "mqtt.broker: must be a URI", NULL);
    expect_fail("tiers:\n  - {provider: vllm, model: m, base_url: 127.0.0.1:8000}\n",
                "tiers[0].base_url: must be an http:// or https:// URL", NULL);
    expect_fail("site: \"a\\0b\"\n", "site: must not contain NUL bytes", NULL);

    /* Boundaries and the accepted spellings load. */
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c,
                          "mqtt: {keepalive_s: 5, max_inflight: 65535, queue_size: 1000000}\n"
                          "router: {workers: 1, query_timeout_ms: 100}\n"
                          "tiers:\n"
                          "  - {provider: vllm, model: m, logprobs: Off, min_confidence: -1,"
                          " timeout_ms: \"250\", cost_per_1k: 1e-3}\n",
                          &e),
                     EC_OK);
    assert_int_equal(c.keepalive_s, 5);
    assert_int_equal(c.max_inflight, 65535);
    assert_int_equal(c.queue_size, 1000000);
    assert_int_equal(c.router_workers, 1);
    assert_int_equal(c.query_timeout_ms, 100);
    assert_false(c.tiers[0].logprobs);
    assert_int_equal(c.tiers[0].timeout_ms, 250);
    assert_float_equal(c.tiers[0].cost_per_1k, 0.001, 1e-18);
    ec_config_free(&c);
}

static void test_secret_never_echoed(void **state)
{
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, "mqtt:\n  password: [hunter2]\n", &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "<string>:2: mqtt.password: must be a string");
    assert_null(strstr(e.msg, "hunter2"));
    ec_config_free(&c);

    FILE *f = tmpfile();
    assert_non_null(f);
    assert_int_equal(load(&c, "mqtt: {password: hunter2}\n", &e), EC_OK);
    assert_string_equal(c.password, "hunter2");
    ec_config_free(&c);
    ec_config_write_example(f);
    char buf[16384];
    rewind(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    assert_contains(buf, "password: \"\"");
}

/* A failed load changes nothing and leaves a freeable config. */
static void test_failed_load_is_atomic(void **state)
{
    ec_config c, d;
    ec_error e;
    assert_int_equal(ec_config_defaults(&d, &e), EC_OK);
    assert_int_equal(load(&c,
                          "site: changed\n"
                          "mqtt: {broker: tcp://new:1}\n"
                          "tiers:\n"
                          "  - {provider: vllm, model: a}\n"
                          "  - {provider: nope, model: b}\n",
                          &e),
                     EC_ERR_CONFIG);
    assert_contains(e.msg, "<string>:5: tiers[1].provider: unknown provider \"nope\"");
    assert_config_equal(&c, &d);
    ec_config_free(&c);

    memset(&c, 0, sizeof(c)); /* zeroed start, failing: still zeroed/freeable */
    assert_int_equal(load_on(&c, "site: [\n", &e), EC_ERR_CONFIG);
    assert_null(c.site);
    ec_config_free(&c);
    ec_config_free(&d);
}

static void test_tiers_replace_defaults(void **state)
{
    ec_config c;
    ec_error e;
    assert_int_equal(load(&c, "tiers:\n  - provider: openai\n    model: gpt-4o\n", &e), EC_OK);
    assert_int_equal(c.n_tiers, 1);
    assert_string_equal(c.tiers[0].name, "gpt-4o");
    assert_string_equal(c.tiers[0].base_url, "https://api.openai.com/v1");
    assert_string_equal(c.tiers[0].api_key_env, "OPENAI_API_KEY");
    assert_int_equal(c.tiers[0].timeout_ms, 60000);
    assert_false(c.tiers[0].local);
    assert_null(c.tiers[1].name); /* the old second tier is gone, not left behind */
    assert_int_equal(ec_config_tier_index(&c, "local"), -1);
    assert_int_equal(ec_config_tier_index(&c, "cloud"), -1);

    /* Loading a list again replaces the list again. */
    assert_int_equal(load_on(&c,
                             "tiers:\n  - {provider: ollama, model: q}\n"
                             "  - {provider: anthropic, model: h, api_key_env: K}\n",
                             &e),
                     EC_OK);
    assert_int_equal(c.n_tiers, 2);
    assert_string_equal(c.tiers[0].base_url, "http://127.0.0.1:11434");
    assert_true(c.tiers[0].local);
    assert_string_equal(c.tiers[1].api_key_env, "K");
    assert_string_equal(c.tiers[1].base_url, "https://api.anthropic.com/v1");
    ec_config_free(&c);
}

static void test_validate(void **state)
{
    ec_config c;
    ec_error e;
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);

    c.min_confidence = 1.5;
    assert_int_equal(ec_config_validate(&c, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "gate.min_confidence: must be between 0 and 1");
    c.min_confidence = -0.1;
    assert_int_equal(ec_config_validate(&c, &e), EC_ERR_CONFIG);
    c.min_confidence = 0.7;

    free(c.tiers[1].name);
    c.tiers[1].name = strdup("local");
    assert_int_equal(ec_config_validate(&c, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "tiers[1].name: duplicate tier name \"local\"");
    free(c.tiers[1].name);
    c.tiers[1].name = strdup("cloud");

    free(c.tiers[1].provider);
    c.tiers[1].provider = strdup("openia");
    assert_int_equal(ec_config_validate(&c, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "tiers[1].provider: unknown provider \"openia\"");
    free(c.tiers[1].provider);
    c.tiers[1].provider = strdup("ollama");
    c.tiers[1].local = false;
    assert_int_equal(ec_config_validate(&c, &e), EC_OK);
    assert_true(c.tiers[1].local); /* brought in step with the provider */

    size_t n = c.n_tiers;
    c.n_tiers = 0;
    assert_int_equal(ec_config_validate(&c, &e), EC_ERR_CONFIG);
    assert_contains(e.msg, "tiers: at least one tier");
    c.n_tiers = n;
    ec_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_value_with_line_and_path),
        cmocka_unit_test(test_error_unknown_keys),
        cmocka_unit_test(test_error_providers_and_choices),
        cmocka_unit_test(test_error_required_and_empty),
        cmocka_unit_test(test_error_duplicates),
        cmocka_unit_test(test_error_node_kinds),
        cmocka_unit_test(test_error_yaml_syntax),
        cmocka_unit_test(test_error_tier_count),
        cmocka_unit_test(test_error_files),
        cmocka_unit_test(test_wrong_types_and_ranges),
        cmocka_unit_test(test_secret_never_echoed),
        cmocka_unit_test(test_failed_load_is_atomic),
        cmocka_unit_test(test_tiers_replace_defaults),
        cmocka_unit_test(test_validate),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
