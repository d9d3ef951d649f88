/* The shipped configurations: every .yaml in deploy/examples/ and
 * deploy/edgecascade.example.yaml must load and validate with the real loader,
 * each device example must carry the vLLM flags it documents, and a few values
 * per device class are pinned so an edit that changes the sizing is noticed.
 * Also the mqtt TLS / password-file keys those examples rely on. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <glob.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/config.h"
#include "edgecascade/service.h"
#include "edgecascade/util.h"

#define EXAMPLES_DIR EC_SOURCE_DIR "/deploy/examples"

static void load_ok(const char *path, ec_config *cfg)
{
    ec_error err = {0};
    if (ec_config_defaults(cfg, &err) != EC_OK || ec_config_load(cfg, path, &err) != EC_OK ||
        ec_config_validate(cfg, &err) != EC_OK)
        fail_msg("%s: %s", path, err.msg);
}

static void test_every_example_loads(void **state)
{
    glob_t g;
    assert_int_equal(glob(EXAMPLES_DIR "/*.yaml", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 5);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        ec_config cfg;
        load_ok(g.gl_pathv[i], &cfg);
        /* Every device class runs its first tier on the device and can escalate. */
        assert_true(cfg.n_tiers >= 2);
        assert_true(cfg.tiers[0].local);
        assert_false(cfg.tiers[cfg.n_tiers - 1].local);
        /* Installed configs talk TLS to the broker with a password from a file. */
        assert_int_equal(strncmp(cfg.broker, "mqtts://", 8), 0);
        assert_string_not_equal(cfg.ca_file, "");
        assert_string_not_equal(cfg.password_file, "");
        assert_string_equal(cfg.password, "");
        assert_string_equal(cfg.username, "edgecascade-{service}");
        ec_config_free(&cfg);

        /* The serve flags the header comment promises. */
        size_t len = 0;
        char *text = ec_read_file(g.gl_pathv[i], 1 << 20, &len);
        assert_non_null(text);
        const char *flags[] = {"--dtype", "--max-model-len", "--gpu-memory-utilization",
                               "Quality preset"};
        for (size_t f = 0; f < sizeof(flags) / sizeof(flags[0]); f++)
            if (!strstr(text, flags[f]))
                fail_msg("%s: no %s in the comments", g.gl_pathv[i], flags[f]);
        free(text);
    }
    globfree(&g);
}

static void test_generated_example_loads(void **state)
{
    ec_config cfg, def;
    ec_error err = {0};
    load_ok(EC_SOURCE_DIR "/deploy/edgecascade.example.yaml", &cfg);
    assert_int_equal(ec_config_defaults(&def, &err), EC_OK);
    assert_string_equal(cfg.broker, def.broker);
    assert_string_equal(cfg.password_file, "");
    assert_string_equal(cfg.ca_file, "");
    ec_config_free(&cfg);
    ec_config_free(&def);
}

static void test_device_values(void **state)
{
    ec_config c;

    load_ok(EXAMPLES_DIR "/jetson-nano-4gb.yaml", &c);
    assert_string_equal(c.tiers[0].model, "llama3.2-1b");
    assert_string_equal(c.gate_preset, "conservative");
    assert_true(c.min_confidence == 0.85);
    assert_string_equal(c.db_path, "/var/lib/edgecascade/edgecascade.db");
    ec_config_free(&c);

    load_ok(EXAMPLES_DIR "/orin-nano-8gb.yaml", &c);
    assert_string_equal(c.tiers[0].model, "llama3.2-3b");
    assert_string_equal(c.tiers[0].provider, "vllm");
    assert_true(c.min_confidence == 0.70);
    ec_config_free(&c);

    load_ok(EXAMPLES_DIR "/orin-nx-16gb.yaml", &c);
    assert_string_equal(c.tiers[0].model, "llama3.1-8b");
    assert_true(c.min_confidence == 0.60);
    assert_true(c.gate_preroute);
    ec_config_free(&c);

    load_ok(EXAMPLES_DIR "/agx-orin.yaml", &c);
    assert_string_equal(c.tiers[0].model, "llama3.1-8b");
    assert_int_equal(c.n_tiers, 4);
    int fo = ec_config_tier_index(&c, "cloud-large-failover");
    assert_true(fo == 3);
    assert_string_equal(c.tiers[fo].provider, "anthropic");
    assert_string_equal(c.tiers[fo].failover_of, "cloud-large");
    assert_true(c.gate_offset[5] > 0.09 && c.gate_offset[5] < 0.11);
    ec_config_free(&c);

    load_ok(EXAMPLES_DIR "/rpi5-ollama.yaml", &c);
    assert_string_equal(c.tiers[0].provider, "ollama");
    assert_string_equal(c.tiers[0].base_url, "http://127.0.0.1:11434");
    assert_int_equal(c.local_workers, 1);
    assert_true(c.tiers[0].timeout_ms >= 60000);
    ec_config_free(&c);
}

/* The keys the examples use, and the one cross-field rule on them. */
static void test_tls_keys(void **state)
{
    ec_config c;
    ec_error err = {0};
    const char *ok = "mqtt:\n  broker: ssl://broker:8883\n  ca_file: /x/ca.crt\n"
                     "  cert_file: /x/c.crt\n  key_file: /x/c.key\n  password_file: /x/pw\n";
    assert_int_equal(ec_config_defaults(&c, &err), EC_OK);
    assert_int_equal(ec_config_load_string(&c, ok, strlen(ok), &err), EC_OK);
    assert_string_equal(c.ca_file, "/x/ca.crt");
    assert_string_equal(c.cert_file, "/x/c.crt");
    assert_string_equal(c.key_file, "/x/c.key");
    assert_string_equal(c.password_file, "/x/pw");
    ec_config_free(&c);

    const char *half = "mqtt:\n  cert_file: /x/c.crt\n";
    assert_int_equal(ec_config_defaults(&c, &err), EC_OK);
    assert_int_equal(ec_config_load_string(&c, half, strlen(half), &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "key_file"));
    ec_config_free(&c);
}

/* "{service}" in the user name and password file, and the password read from
 * the file (first line, trimmed). */
static void test_service_credentials(void **state)
{
    char dir[] = "/tmp/ec_test_creds_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pw[128], yaml[512];
    snprintf(pw, sizeof(pw), "%s/edgecascade-relay.password", dir);
    FILE *f = fopen(pw, "w");
    assert_non_null(f);
    fputs("  s3cret-relay-pw \r\nsecond line\n", f);
    fclose(f);
    snprintf(yaml, sizeof(yaml),
             "mqtt:\n  username: edgecascade-{service}\n"
             "  password_file: %s/edgecascade-{service}.password\n",
             dir);

    ec_config c;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&c, &err), EC_OK);
    assert_int_equal(ec_config_load_string(&c, yaml, strlen(yaml), &err), EC_OK);
    assert_int_equal(ec_service_credentials(&c, "relay", &err), EC_OK);
    assert_string_equal(c.username, "edgecascade-relay");
    assert_string_equal(c.password_file, pw);
    assert_string_equal(c.password, "s3cret-relay-pw");
    ec_config_free(&c);

    /* Another service's file is missing: the error names the file. */
    assert_int_equal(ec_config_defaults(&c, &err), EC_OK);
    assert_int_equal(ec_config_load_string(&c, yaml, strlen(yaml), &err), EC_OK);
    assert_int_equal(ec_service_credentials(&c, "router", &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "edgecascade-router.password"));
    ec_config_free(&c);

    /* An inline password wins over the file. */
    const char *inl = "mqtt:\n  password: inline\n  password_file: /nonexistent\n";
    assert_int_equal(ec_config_defaults(&c, &err), EC_OK);
    assert_int_equal(ec_config_load_string(&c, inl, strlen(inl), &err), EC_OK);
    assert_int_equal(ec_service_credentials(&c, "router", &err), EC_OK);
    assert_string_equal(c.password, "inline");
    ec_config_free(&c);

    unlink(pw);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_example_loads), cmocka_unit_test(test_generated_example_loads),
        cmocka_unit_test(test_device_values),       cmocka_unit_test(test_tls_keys),
        cmocka_unit_test(test_service_credentials),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
