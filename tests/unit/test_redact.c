/* Redaction (services/router/redact.c): what each built-in masks, what ordinary
 * plant text keeps, operator patterns, reconfiguration and the loader's
 * error for a bad pattern. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/config.h"
#include "redact.h"
#include "edgecascade/util.h"

static ec_redactor *make(const char *yaml)
{
    ec_config cfg;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&cfg, &err), EC_OK);
    if (yaml)
        assert_int_equal(ec_config_load_string(&cfg, yaml, strlen(yaml), &err), EC_OK);
    ec_redactor *r = NULL;
    assert_int_equal(ec_redactor_create(&r, &cfg, &err), EC_OK);
    ec_config_free(&cfg);
    return r;
}

/* Redacts in and compares with want (NULL: unchanged). */
static void expect(ec_redactor *r, const char *in, const char *want)
{
    char *out = NULL;
    int n = ec_redact(r, in, &out);
    if (!want) {
        if (n != 0)
            fail_msg("\"%s\" should stay, got \"%s\"", in, out ? out : "(null)");
        assert_null(out);
        return;
    }
    if (!out || strcmp(out, want) != 0)
        fail_msg("\"%s\": want \"%s\", got \"%s\"", in, want, out ? out : "(unchanged)");
    assert_true(n > 0);
    free(out);
}

static void builtins_mask_personal_data(void **state)
{
    (void)state;
    ec_redactor *r = make(NULL);
    assert_true(ec_redactor_active(r));
    expect(r, "Mail anna.schmidt+plant@example-corp.de now.", "Mail [EMAIL] now.");
    expect(r, "a@b.io,c.d@e.co.uk", "[EMAIL],[EMAIL]");
    expect(r, "PLC at 10.0.0.5:1883 down", "PLC at [IP]:1883 down");
    expect(r, "gw 192.168.178.1.", "gw [IP].");
    expect(r, "ping fe80::1ff:fe23:4567:890a now", "ping [IP] now");
    expect(r, "host 2001:db8:85a3:0:0:8a2e:370:7334", "host [IP]");
    expect(r, "loopback ::1, mapped ::ffff:10.1.2.3", "loopback [IP], mapped [IP]");
    expect(r, "call +49 30 1234567 or +1-555-123-4567", "call [PHONE] or [PHONE]");
    expect(r, "(555) 123-4567 and 555.123.4567", "[PHONE] and [PHONE]");
    expect(r, "Tel: +44 20 7946 0958.", "Tel: [PHONE].");
    ec_redactor_destroy(r);
}

static void ordinary_text_is_left_alone(void **state)
{
    (void)state;
    ec_redactor *r = make(NULL);
    static const char *const keep[] = {
        "Firmware 3.2.1 on controller v1.2.3.4-rc",
        "Shift starts 06:30, alarm at 12:30:45, log 2024-05-01 23:59:59",
        "Part #4471 measured 25.04 mm, spec 25.00 +/- 0.05 mm. Pass or fail?",
        "Convert 150 psi to bar. 10.34 bar at 85 C, 12 mm/s vibration.",
        "MAC 00:1A:2B:3C:4D:5E on port 3",
        "std::vector and Foo::Bar in the PLC code",
        "Order 1234567 of 2024, batch 20240501-0007, ratio 1:2:3",
        "IP65 rated, 999.999.999.999 is not an address, 256.1.1.1 neither",
        "user@localhost has no domain",
        "serial number 12345678901 and ISO 10816-3 zone D",
        "temperature +5 C, +12.5 %",
    };
    for (size_t i = 0; i < sizeof(keep) / sizeof(keep[0]); i++)
        expect(r, keep[i], NULL);
    ec_redactor_destroy(r);
}

static void operator_patterns_and_switches(void **state)
{
    (void)state;
    ec_redactor *r = make("privacy:\n"
                          "  phone: false\n"
                          "  patterns:\n"
                          "    - regex: \"SN-[0-9]{6}\"\n"
                          "    - regex: \"ASSET/[A-Z]{2}[0-9]+\"\n"
                          "      label: ASSET\n");
    expect(r, "Pump SN-004711 (ASSET/PX12) near +49 30 1234567, ops@plant.example",
           "Pump [SERIAL] ([ASSET]) near +49 30 1234567, [EMAIL]");
    expect(r, "SN-12345 is too short", NULL);
    ec_redactor_destroy(r);

    r = make("privacy:\n  redact: false\n");
    assert_false(ec_redactor_active(r));
    expect(r, "ops@plant.example at 10.0.0.5", NULL);
    ec_redactor_destroy(r);
}

static void configure_swaps_and_keeps_old_on_error(void **state)
{
    (void)state;
    ec_redactor *r = make(NULL);
    ec_config cfg;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&cfg, &err), EC_OK);
    cfg.redact_email = false;
    assert_int_equal(ec_redactor_configure(r, &cfg, &err), EC_OK);
    expect(r, "ops@plant.example", NULL);
    expect(r, "10.0.0.5", "[IP]");
    ec_config_free(&cfg);
    ec_redactor_destroy(r);
}

static void bad_regex_is_a_config_error_naming_the_key(void **state)
{
    (void)state;
    ec_config cfg;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&cfg, &err), EC_OK);
    const char *yaml = "privacy:\n"
                       "  patterns:\n"
                       "    - regex: \"SN-[0-9\"\n";
    assert_int_equal(ec_config_load_string(&cfg, yaml, strlen(yaml), &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "<string>:3: privacy.patterns[0].regex:"));
    assert_non_null(strstr(err.msg, "regular expression"));
    const char *empty = "privacy:\n  patterns:\n    - regex: \"x*\"\n";
    assert_int_equal(ec_config_load_string(&cfg, empty, strlen(empty), &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "empty string"));
    const char *label = "privacy:\n  patterns:\n    - {regex: \"SN[0-9]+\", label: \"s n\"}\n";
    assert_int_equal(ec_config_load_string(&cfg, label, strlen(label), &err), EC_ERR_CONFIG);
    assert_non_null(strstr(err.msg, "privacy.patterns[0].label"));
    ec_config_free(&cfg);
}

/* Not a speed test (those live in bench/): prints the cost for the report. */
static void cost_of_a_1k_prompt(void **state)
{
    (void)state;
    ec_redactor *r = make("privacy:\n  patterns:\n    - regex: \"SN-[0-9]{6}\"\n");
    char prompt[1100] = "";
    while (strlen(prompt) < 1000)
        strcat(prompt, "Pump P-12 at 10.0.0.5 vibrates 12 mm/s since 06:30; firmware 3.2.1. ");
    double t0 = ec_mono_ms();
    int n = 0;
    for (int i = 0; i < 2000; i++) {
        char *out = NULL;
        n = ec_redact(r, prompt, &out);
        free(out);
    }
    double with_ip = (ec_mono_ms() - t0) / 2000 * 1000;
    assert_true(n > 0);
    char plain[1100] = "";
    while (strlen(plain) < 1000)
        strcat(plain, "Pump P-12 vibrates 12 mm/s since 06:30 and firmware 3.2.1 is old. ");
    t0 = ec_mono_ms();
    for (int i = 0; i < 2000; i++) {
        char *out = NULL;
        n = ec_redact(r, plain, &out);
        free(out);
    }
    double without = (ec_mono_ms() - t0) / 2000 * 1000;
    printf("redaction of a %zu-byte prompt: %.1f us with 14 addresses, %.1f us with none\n",
           strlen(prompt), with_ip, without);
    ec_redactor_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(builtins_mask_personal_data),
        cmocka_unit_test(ordinary_text_is_left_alone),
        cmocka_unit_test(operator_patterns_and_switches),
        cmocka_unit_test(configure_swaps_and_keeps_old_on_error),
        cmocka_unit_test(bad_regex_is_a_config_error_naming_the_key),
        cmocka_unit_test(cost_of_a_1k_prompt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
