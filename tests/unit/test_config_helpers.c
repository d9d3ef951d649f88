/* Configuration: the helper functions beside loading (preset thresholds,
 * providers, a tier's API key from its variable or file, costs, model: auto)
 * and which keys a reload may change. Apart from test_config.c because these
 * test functions a service calls on a loaded configuration, not the loader. */
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

/* ---- helpers ---- */

static void test_presets_and_providers(void **state)
{
    double t = -1;
    assert_int_equal(ec_gate_preset_threshold("aggressive", &t), 0);
    assert_float_equal(t, 0.60, 1e-15);
    assert_int_equal(ec_gate_preset_threshold("balanced", &t), 0);
    assert_float_equal(t, 0.70, 1e-15);
    assert_int_equal(ec_gate_preset_threshold("conservative", &t), 0);
    assert_float_equal(t, 0.85, 1e-15);
    t = 42;
    assert_int_not_equal(ec_gate_preset_threshold("Balanced", &t), 0);
    assert_int_not_equal(ec_gate_preset_threshold(NULL, &t), 0);
    assert_float_equal(t, 42, 0);

    assert_true(ec_provider_is_local("vllm"));
    assert_true(ec_provider_is_local("openai-compatible"));
    assert_true(ec_provider_is_local("ollama"));
    assert_false(ec_provider_is_local("openai"));
    assert_false(ec_provider_is_local("anthropic"));
    assert_false(ec_provider_is_local("nope"));
    assert_false(ec_provider_is_local(NULL));

    ec_config c;
    ec_error e;
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_int_equal(ec_config_tier_index(&c, "local"), 0);
    assert_int_equal(ec_config_tier_index(&c, "cloud"), 1);
    assert_int_equal(ec_config_tier_index(&c, "Cloud"), -1);
    assert_int_equal(ec_config_tier_index(&c, NULL), -1);
    assert_int_equal(ec_config_tier_index(NULL, "local"), -1);
    ec_config_free(&c);
}

static void test_api_key(void **state)
{
    ec_tier_cfg t = {0};
    ec_error e;
    char envname[] = "EC_TEST_CONFIG_API_KEY";
    unsetenv(envname);
    t.name = "cloud";

    /* Neither configured: NULL without an error. */
    e.code = EC_ERR_IO;
    assert_null(ec_tier_api_key(&t, &e));
    assert_int_equal(e.code, EC_OK);
    t.api_key_env = "";
    t.api_key_file = "";
    assert_null(ec_tier_api_key(&t, &e));
    assert_int_equal(e.code, EC_OK);

    /* From the environment. */
    t.api_key_env = envname;
    assert_null(ec_tier_api_key(&t, &e)); /* variable named but unset */
    assert_int_equal(e.code, EC_OK);
    setenv(envname, "sk-from-env", 1);
    char *k = ec_tier_api_key(&t, &e);
    assert_non_null(k);
    assert_string_equal(k, "sk-from-env");
    free(k);

    /* From a file: the first line, trimmed; the variable wins when set. */
    t.api_key_file = (char *)write_tmp("key.txt", "  sk-from-file \t\r\nsecond line ignored\n");
    char file_path[256];
    snprintf(file_path, sizeof(file_path), "%s", t.api_key_file);
    t.api_key_file = file_path;
    k = ec_tier_api_key(&t, &e);
    assert_string_equal(k, "sk-from-env");
    free(k);
    setenv(envname, "", 1); /* empty counts as unset */
    k = ec_tier_api_key(&t, &e);
    assert_non_null(k);
    assert_string_equal(k, "sk-from-file");
    assert_int_equal(e.code, EC_OK);
    free(k);
    unsetenv(envname);
    write_tmp("key.txt", "sk-no-newline");
    k = ec_tier_api_key(&t, &e);
    assert_string_equal(k, "sk-no-newline");
    free(k);

    /* A key file that holds nothing or cannot be read is an error naming the
     * file, never the key. */
    write_tmp("key.txt", " \n sk-on-line-two\n");
    assert_null(ec_tier_api_key(&t, &e));
    assert_int_equal(e.code, EC_ERR_CONFIG);
    assert_contains(e.msg, "holds no key");
    assert_null(strstr(e.msg, "sk-on-line-two"));

    char missing[256];
    snprintf(missing, sizeof(missing), "%s/no-such-key", tmpdir);
    t.api_key_file = missing;
    assert_null(ec_tier_api_key(&t, &e));
    assert_int_equal(e.code, EC_ERR_CONFIG);
    assert_contains(e.msg, "cannot read api_key_file");
    assert_contains(e.msg, "no-such-key: No such file or directory");
    assert_contains(e.msg, "cloud");

    assert_null(ec_tier_api_key(NULL, &e));
    assert_null(ec_tier_api_key(&t, NULL)); /* err may be NULL */
}

static void test_cost(void **state)
{
    ec_tier_cfg t = {0};
    assert_true(ec_tier_cost(&t, 1000, 1000) == 0.0);

    t.cost_per_1k = 0.002; /* blended: all tokens at 0.002 per 1K */
    assert_float_equal(ec_tier_cost(&t, 1000, 500), 0.003, 1e-15);
    assert_float_equal(ec_tier_cost(&t, 0, 250), 0.0005, 1e-15);
    assert_true(ec_tier_cost(&t, 0, 0) == 0.0);

    t.input_per_1m = 0.15; /* split prices win over the blended one */
    t.output_per_1m = 0.60;
    assert_float_equal(ec_tier_cost(&t, 1000, 500), 0.00015 + 0.0003, 1e-15);
    assert_float_equal(ec_tier_cost(&t, 1000000, 1000000), 0.75, 1e-12);
    assert_float_equal(ec_tier_cost(&t, 2000, 0), 0.0003, 1e-15);

    t.input_per_1m = 0; /* either one non-zero selects the split form */
    assert_float_equal(ec_tier_cost(&t, 1000, 500), 0.0003, 1e-15);
    t.output_per_1m = 0;
    t.input_per_1m = 3.0;
    assert_float_equal(ec_tier_cost(&t, 1000, 500), 0.003, 1e-15);

    /* No overflow at the largest token counts. */
    t.input_per_1m = 1;
    t.output_per_1m = 1;
    assert_float_equal(ec_tier_cost(&t, UINT32_MAX, UINT32_MAX), 2.0 * UINT32_MAX / 1e6, 1e-6);
    assert_true(ec_tier_cost(NULL, 10, 10) == 0.0);

    ec_config c;
    ec_error e;
    assert_int_equal(ec_config_defaults(&c, &e), EC_OK);
    assert_true(ec_tier_cost(&c.tiers[0], 5000, 5000) == 0.0);
    assert_float_equal(ec_tier_cost(&c.tiers[1], 1000, 500), 0.00045, 1e-15);
    ec_config_free(&c);
}

const char *ec_config_restart_key_unknown(void);

static void restart_case(const char *yaml, const char *want)
{
    ec_config a, b;
    ec_error e = {0};
    char key[128] = "";
    assert_int_equal(load(&a, "", &e), EC_OK);
    assert_int_equal(load(&b, yaml, &e), EC_OK);
    bool differs = ec_config_restart_key(&a, &b, key, sizeof(key));
    if (want) {
        if (!differs)
            fail_msg("%s: expected restart key %s", yaml, want);
        assert_contains(key, want);
    } else if (differs) {
        fail_msg("%s: should apply live, got restart key %s", yaml, key);
    }
    ec_config_free(&a);
    ec_config_free(&b);
}

static void test_restart_keys(void **state)
{
    (void)state;
    assert_null(ec_config_restart_key_unknown());
    restart_case("", NULL);
    restart_case("gate: {preset: conservative}", NULL);
    restart_case("gate: {min_confidence: 0.9, shadow_rate: 0.5, samples: 3}", NULL);
    restart_case("router: {queue_ttl_s: 60, queue_max: 5, replay_interval_ms: 100}", NULL);
    restart_case("relay: {retries: 0, breaker: {consecutive: 2}}", NULL);
    restart_case("log: {level: debug}", NULL);
    restart_case("mqtt: {broker: tcp://10.0.0.9:1883}", "mqtt.broker");
    restart_case("mqtt: {username: plc}", "mqtt.username");
    restart_case("mqtt: {client_id: x}", "mqtt.client_id");
    restart_case("site: plant9", "site");
    restart_case("topic_root: a/b", "topic_root");
    restart_case("store: {path: other.db}", "store.path");
    restart_case("router: {workers: 7}", "router.workers");
    restart_case("local: {workers: 7}", "local.workers");
    restart_case("relay: {workers: 7}", "relay.workers");
    /* Costs, timeouts, URLs and models of the same tiers apply live. */
    restart_case("tiers:\n"
                 "  - {name: local, provider: ollama, model: auto, timeout_ms: 900}\n"
                 "  - {name: cloud, provider: anthropic, model: m, input_per_1m: 3}\n",
                 NULL);
    restart_case("tiers:\n"
                 "  - {name: edge, provider: vllm, model: x}\n"
                 "  - {name: cloud, provider: openai, model: gpt-4o-mini}\n",
                 "tiers[0].name");
    restart_case("tiers:\n"
                 "  - {name: local, provider: openai, model: x}\n"
                 "  - {name: cloud, provider: openai, model: gpt-4o-mini}\n",
                 "tiers[0].provider");
    restart_case("tiers:\n  - {name: local, provider: vllm, model: x}\n", "tiers (2 tiers, now 1)");
}

static void test_model_auto(void **state)
{
    (void)state;
    ec_config c;
    ec_error e = {0};
    assert_int_equal(load(&c,
                          "local: {discovery_interval_s: 5}\n"
                          "tiers:\n  - {name: local, provider: ollama, model: auto, "
                          "prefer_model: llama3.2:3b}\n",
                          &e),
                     EC_OK);
    assert_true(ec_tier_model_auto(&c.tiers[0]));
    assert_string_equal(c.tiers[0].prefer_model, "llama3.2:3b");
    assert_int_equal(c.discovery_interval_s, 5);
    ec_config_free(&c);
    assert_int_equal(load(&c, "tiers:\n  - {name: cloud, provider: openai, model: auto}\n", &e),
                     EC_ERR_CONFIG);
    assert_contains(e.msg, "\"auto\" is only for local tiers");
    ec_config_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presets_and_providers),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_model_auto),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
