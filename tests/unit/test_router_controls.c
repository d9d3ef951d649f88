/* The router's answer cache (LRU, TTL, byte cap, keys) and budget (caps,
 * warning, UTC day and month rollover), driven with a controlled clock. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "budget.h"
#include "cache.h"
#include "edgecascade/util.h"

#define T0   1764374400000ull /* 2025-11-29 00:00:00 UTC */
#define HOUR 3600000ull
#define DAY  (24 * HOUR)

static ec_config config(const char *yaml)
{
    ec_config cfg;
    ec_error err = {0};
    assert_int_equal(ec_config_defaults(&cfg, &err), EC_OK);
    if (yaml && ec_config_load_string(&cfg, yaml, strlen(yaml), &err))
        fail_msg("%s", err.msg);
    return cfg;
}

static ec_cache *make_cache(const char *yaml)
{
    ec_config cfg = config(yaml);
    ec_cache *c = NULL;
    ec_error err = {0};
    assert_int_equal(ec_cache_create(&c, &cfg, &err), EC_OK);
    ec_config_free(&cfg);
    return c;
}

static void put(ec_cache *c, const char *key, const char *answer, uint64_t now)
{
    ec_cache_hit v = {.answer = (char *)answer, .tier_name = "local", .model = "m"};
    ec_cache_put(c, key, strlen(key), &v, now);
}

/* The cached answer for key, or NULL (static buffer). */
static const char *get(ec_cache *c, const char *key, uint64_t now)
{
    static char out[256];
    ec_cache_hit h = {0};
    if (!ec_cache_get(c, key, strlen(key), now, &h))
        return NULL;
    snprintf(out, sizeof(out), "%s", h.answer);
    ec_cache_hit_clear(&h);
    return out;
}

static void cache_lru_evicts_least_recently_used(void **state)
{
    (void)state;
    ec_cache *c = make_cache("cache: {max_entries: 3}");
    put(c, "a", "A", T0);
    put(c, "b", "B", T0);
    put(c, "c", "C", T0);
    assert_string_equal(get(c, "a", T0 + 1), "A"); /* a is now the most recent */
    put(c, "d", "D", T0 + 2);                      /* evicts b */
    assert_null(get(c, "b", T0 + 3));
    assert_string_equal(get(c, "a", T0 + 3), "A");
    assert_string_equal(get(c, "c", T0 + 3), "C");
    assert_string_equal(get(c, "d", T0 + 3), "D");
    put(c, "c", "C2", T0 + 4); /* replacing keeps one entry */
    assert_string_equal(get(c, "c", T0 + 5), "C2");
    ec_cache_stats st;
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 3);
    assert_int_equal(st.evictions, 1);
    assert_int_equal(st.misses, 1);
    ec_cache_destroy(c);
}

static void cache_ttl_expires(void **state)
{
    (void)state;
    ec_cache *c = make_cache("cache: {ttl_s: 10}");
    put(c, "k", "v", T0);
    assert_string_equal(get(c, "k", T0 + 9999), "v");
    assert_null(get(c, "k", T0 + 10000));
    ec_cache_stats st;
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 0); /* removed, not just hidden */
    ec_cache_destroy(c);
}

static void cache_byte_cap(void **state)
{
    (void)state;
    ec_cache *c = make_cache("cache: {max_bytes: 4096}");
    char big[1500];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    put(c, "1", big, T0);
    put(c, "2", big, T0);
    ec_cache_stats st;
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 2);
    put(c, "3", big, T0); /* three do not fit in 4096 bytes: the oldest goes */
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 2);
    assert_true(st.bytes <= 4096);
    assert_null(get(c, "1", T0));
    assert_non_null(get(c, "3", T0));
    char huge[5000];
    memset(huge, 'y', sizeof(huge) - 1);
    huge[sizeof(huge) - 1] = '\0';
    put(c, "4", huge, T0); /* larger than the whole cache: not stored, nothing evicted */
    assert_null(get(c, "4", T0));
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 2);
    ec_cache_destroy(c);
}

static bool key_of(ec_cache *c, const ec_query *q, ec_buf *b)
{
    return ec_cache_key(c, q, b);
}

static void cache_keys_normalise_and_separate(void **state)
{
    (void)state;
    ec_cache *c = make_cache(NULL);
    ec_buf k1, k2;
    ec_buf_init(&k1, 0);
    ec_buf_init(&k2, 0);
    ec_query a = {.prompt = "  Convert 150 psi\n\tto   bar. "};
    ec_query b = {.prompt = "Convert 150 psi to bar."};
    assert_true(key_of(c, &a, &k1));
    assert_true(key_of(c, &b, &k2));
    assert_int_equal(k1.len, k2.len);
    assert_memory_equal(k1.data, k2.data, k1.len);

    b.max_tokens = 64; /* parameters are part of the key */
    assert_true(key_of(c, &b, &k2));
    assert_false(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
    b.max_tokens = 0;
    b.policy = EC_POLICY_LOCAL_ONLY;
    assert_true(key_of(c, &b, &k2));
    assert_false(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
    b.policy = EC_POLICY_AUTO;
    b.has_temperature = true; /* temperature 0 is cached, and differs from unset */
    b.temperature = 0;
    assert_true(key_of(c, &b, &k2));
    assert_false(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
    b.temperature = 0.7; /* sampled: never cached */
    assert_false(key_of(c, &b, &k2));

    /* A chat and a prompt with the same text are different questions only
     * when their roles differ. */
    ec_chat_msg m[2] = {{.role = "system", .content = "Be brief."},
                        {.role = "user", .content = "Convert 150 psi to bar."}};
    ec_query chat = {.messages = m, .n_messages = 2};
    assert_true(key_of(c, &chat, &k2));
    assert_false(k1.len == k2.len && memcmp(k1.data, k2.data, k1.len) == 0);
    ec_buf_free(&k1);
    ec_buf_free(&k2);
    ec_cache_destroy(c);

    c = make_cache("cache: {unset_temperature: false}");
    ec_buf_init(&k1, 0);
    assert_false(key_of(c, &a, &k1));
    a.has_temperature = true;
    assert_true(key_of(c, &a, &k1));
    ec_buf_free(&k1);
    ec_cache_destroy(c);
}

static void cache_reconfigure(void **state)
{
    (void)state;
    ec_cache *c = make_cache(NULL);
    for (int i = 0; i < 10; i++) {
        char k[8];
        snprintf(k, sizeof(k), "k%d", i);
        put(c, k, "v", T0);
    }
    ec_config cfg = config("cache: {max_entries: 4}");
    ec_cache_configure(c, &cfg);
    ec_cache_stats st;
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 4);
    assert_non_null(get(c, "k9", T0)); /* the most recent stay */
    assert_null(get(c, "k0", T0));
    ec_config_free(&cfg);
    cfg = config("cache: {enabled: false}");
    ec_cache_configure(c, &cfg);
    ec_cache_stats_get(c, &st);
    assert_int_equal(st.entries, 0);
    ec_query q = {.prompt = "x"};
    ec_buf k;
    ec_buf_init(&k, 0);
    assert_false(ec_cache_key(c, &q, &k));
    ec_buf_free(&k);
    ec_config_free(&cfg);
    ec_cache_destroy(c);
}

/* Not a speed test (those live in bench/): prints the cost for the report. */
static void cache_lookup_cost(void **state)
{
    (void)state;
    ec_cache *c = make_cache("cache: {max_entries: 10000}");
    ec_buf k;
    ec_buf_init(&k, 0);
    char prompt[1100];
    for (int i = 0; i < 10000; i++) {
        snprintf(prompt, sizeof(prompt), "Part #%d measured 25.04 mm, spec 25.00 mm. Pass?", i);
        ec_query q = {.prompt = prompt};
        assert_true(ec_cache_key(c, &q, &k));
        put(c, k.data, "PASS", T0);
    }
    memset(prompt, 'a', 1000);
    prompt[1000] = '\0';
    ec_query q = {.prompt = prompt};
    double t0 = ec_mono_ms();
    int hits = 0;
    for (int i = 0; i < 20000; i++) {
        ec_cache_hit h = {0};
        assert_true(ec_cache_key(c, &q, &k));
        hits += ec_cache_get(c, k.data, k.len, T0, &h);
        ec_cache_hit_clear(&h);
    }
    double us = (ec_mono_ms() - t0) / 20000 * 1000;
    assert_int_equal(hits, 0);
    printf("cache lookup (key of a 1 KB prompt + get, 10000 entries): %.2f us\n", us);
    ec_buf_free(&k);
    ec_cache_destroy(c);
}

/* ---- budget ---- */

static ec_budget *make_budget(const char *yaml)
{
    ec_config cfg = config(yaml);
    ec_budget *b = ec_budget_create(&cfg);
    assert_non_null(b);
    ec_config_free(&cfg);
    return b;
}

static void budget_caps_and_warning(void **state)
{
    (void)state;
    ec_budget *b = make_budget("budget: {daily_usd: 1.0, monthly_usd: 10.0}");
    ec_budget_snapshot s;
    char why[200] = "";
    assert_true(ec_budget_changed(b, T0, &s)); /* the first report */
    assert_int_equal(s.state, EC_BUDGET_OK);
    assert_false(ec_budget_changed(b, T0, &s));
    ec_budget_add(b, T0 + HOUR, 0.79);
    assert_false(ec_budget_changed(b, T0 + HOUR, &s));
    ec_budget_add(b, T0 + HOUR, 0.02); /* 81 % of the daily cap */
    assert_true(ec_budget_changed(b, T0 + HOUR, &s));
    assert_int_equal(s.state, EC_BUDGET_WARNING);
    assert_true(ec_budget_allows(b, T0 + HOUR, why, sizeof(why)));
    ec_budget_add(b, T0 + HOUR, 0.2);
    assert_false(ec_budget_allows(b, T0 + HOUR, why, sizeof(why)));
    assert_non_null(strstr(why, "daily cloud budget of 1.00 USD reached"));
    assert_non_null(strstr(why, "2025-11-29"));
    assert_true(ec_budget_changed(b, T0 + HOUR, &s));
    assert_int_equal(s.state, EC_BUDGET_EXHAUSTED);
    char json[512];
    ec_budget_json(&s, T0, json, sizeof(json));
    assert_non_null(strstr(json, "\"state\":\"exhausted\""));
    assert_non_null(strstr(json, "\"day\":\"2025-11-29\""));
    assert_non_null(strstr(json, "\"daily_cap_usd\":1,"));
    ec_budget_destroy(b);

    b = make_budget(NULL); /* no caps: never exhausted, never warns */
    ec_budget_add(b, T0, 1e6);
    assert_true(ec_budget_allows(b, T0, why, sizeof(why)));
    ec_budget_snapshot_get(b, T0, &s);
    assert_int_equal(s.state, EC_BUDGET_OK);
    assert_true(s.day_usd == 1e6);
    ec_budget_destroy(b);
}

static void budget_rolls_over_day_and_month(void **state)
{
    (void)state;
    ec_budget *b = make_budget("budget: {daily_usd: 1.0, monthly_usd: 2.5}");
    char why[200];
    ec_budget_snapshot s;
    ec_budget_add(b, T0 + 23 * HOUR, 1.0); /* 2025-11-29 23:00 */
    assert_false(ec_budget_allows(b, T0 + 23 * HOUR, why, sizeof(why)));
    /* Midnight UTC: a new day, the same month. */
    assert_true(ec_budget_allows(b, T0 + DAY, why, sizeof(why)));
    ec_budget_snapshot_get(b, T0 + DAY, &s);
    assert_string_equal(s.day, "2025-11-30");
    assert_true(s.day_usd == 0 && s.month_usd == 1.0);
    ec_budget_add(b, T0 + DAY + HOUR, 0.9);
    ec_budget_add(b, T0 + 2 * DAY - 1, 0.0); /* nothing */
    ec_budget_snapshot_get(b, T0 + DAY + HOUR, &s);
    assert_int_equal(s.state, EC_BUDGET_WARNING); /* 1.9 of 2.5 = 76 %; day 90 % */
    ec_budget_add(b, T0 + DAY + 2 * HOUR, 0.05);
    /* Dec 1st: day and month both start again (the month cap was not hit:
     * 1.95 of 2.5). Then the month cap: */
    ec_budget_snapshot_get(b, T0 + 2 * DAY, &s);
    assert_string_equal(s.month, "2025-12");
    assert_true(s.day_usd == 0 && s.month_usd == 0);
    ec_budget_seed(b, T0 + 2 * DAY, 0.5, 2.5); /* what the log said at a restart */
    assert_false(ec_budget_allows(b, T0 + 2 * DAY, why, sizeof(why)));
    assert_non_null(strstr(why, "monthly cloud budget of 2.50 USD reached"));
    assert_non_null(strstr(why, "2025-12"));
    assert_int_equal(ec_budget_month_start(T0 + 2 * DAY + 5 * HOUR), T0 + 2 * DAY);
    assert_int_equal(ec_budget_day_start(T0 + DAY + 5 * HOUR), T0 + DAY);
    /* Raising the cap at runtime lifts the stop at once. */
    ec_config cfg = config("budget: {daily_usd: 1.0, monthly_usd: 5}");
    ec_budget_configure(b, &cfg);
    ec_config_free(&cfg);
    assert_true(ec_budget_allows(b, T0 + 2 * DAY, why, sizeof(why)));
    ec_budget_destroy(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(cache_lru_evicts_least_recently_used),
        cmocka_unit_test(cache_ttl_expires),
        cmocka_unit_test(cache_byte_cap),
        cmocka_unit_test(cache_keys_normalise_and_separate),
        cmocka_unit_test(cache_reconfigure),
        cmocka_unit_test(cache_lookup_cost),
        cmocka_unit_test(budget_caps_and_warning),
        cmocka_unit_test(budget_rolls_over_day_and_month),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
