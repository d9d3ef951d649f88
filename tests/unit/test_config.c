/* Configuration loader: defaults, every key, every error message (with its
 * line and key path), tier replacement, presets, API keys, costs, and the
 * committed example file staying equal to the generated one.
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

#define EXAMPLE_PATH EC_SOURCE_DIR "/deploy/edgecascade.example.yaml"

static char tmpdir[64];

static int group_setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/ec_test_config_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Writes text to <tmpdir>/name and returns the path (static buffer). */
static const char *write_tmp(const char *name, const char *text)
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
static ec_err load(ec_config *c, const char *yaml, ec_error *e)
{
    ec_error_clear(e);
    assert_int_equal(ec_config_defaults(c, e), EC_OK);
    return ec_config_load_string(c, yaml, strlen(yaml), e);
}

/* Another text on top of c as it is. */
static ec_err load_on(ec_config *c, const char *yaml, ec_error *e)
{
    return ec_config_load_string(c, yaml, strlen(yaml), e);
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* Loading yaml fails with EC_ERR_CONFIG, a message holding each fragment, and
 * the configuration left as the defaults. */
static void expect_fail(const char *yaml, const char *frag1, const char *frag2)
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

static void assert_str_eq_or_both_null(const char *a, const char *b)
{
    if (!a || !b)
        assert_ptr_equal(a, b);
    else
        assert_string_equal(a, b);
}

static void assert_config_equal(const ec_config *a, const ec_config *b)
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
    assert_int_equal(c.max_wait_ms, 1000);
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

/* ---- a file giving every key ---- */

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
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_load_null_path_and_empty_text),
        cmocka_unit_test(test_full_file),
        cmocka_unit_test(test_derived_topic_root_and_threshold),
        cmocka_unit_test(test_null_values_keep_defaults),
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
        cmocka_unit_test(test_presets_and_providers),
        cmocka_unit_test(test_api_key),
        cmocka_unit_test(test_cost),
        cmocka_unit_test(test_example_file_matches),
        cmocka_unit_test(test_example_loads_to_defaults),
        cmocka_unit_test(test_restart_keys),
        cmocka_unit_test(test_model_auto),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
