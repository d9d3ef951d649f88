/* Who asked and where the answer may go (services/router/access.c): the
 * query topics, the Response Topic rules with and without
 * router.response_topics, and MQTT filter matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "access.h"
#include "edgecascade/config.h"

static void load(ec_config *cfg, const char *yaml)
{
    ec_error err = {0};
    memset(cfg, 0, sizeof(*cfg));
    if (ec_config_load_string(cfg, yaml, strlen(yaml), &err) != EC_OK)
        fail_msg("config: %s", err.msg);
}

static void query_topics_name_the_asker(void **state)
{
    (void)state;
    const char *who = NULL;
    size_t n = 0;
    const char *qt = "ec/site1/query";
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/query", &who, &n), EC_QT_ANONYMOUS);
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/query/plc-7", &who, &n), EC_QT_ASKER);
    assert_int_equal(n, 5);
    assert_memory_equal(who, "plc-7", 5);
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/query/", &who, &n), EC_QT_NONE);
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/query/a/b", &who, &n), EC_QT_NONE);
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/queryx", &who, &n), EC_QT_NONE);
    assert_int_equal(ec_access_query_topic(qt, "ec/site1/result/x", &who, &n), EC_QT_NONE);
}

static void filters_match_as_mqtt_says(void **state)
{
    (void)state;
    assert_true(ec_access_filter_matches("plc/A/#", "plc/A/answers"));
    assert_true(ec_access_filter_matches("plc/A/#", "plc/A"));
    assert_false(ec_access_filter_matches("plc/A/#", "plc/B/answers"));
    assert_false(ec_access_filter_matches("plc/A/#", "plc/AB/x"));
    assert_true(ec_access_filter_matches("plc/+/answers", "plc/A/answers"));
    assert_false(ec_access_filter_matches("plc/+/answers", "plc/A/answers/x"));
    assert_false(ec_access_filter_matches("plc/+", "plc"));
    assert_true(ec_access_filter_matches("#", "anything/at/all"));
    assert_false(ec_access_filter_matches("#", "$SYS/broker"));
    assert_false(ec_access_filter_matches("+/x", "$SYS/x"));
    assert_true(ec_access_filter_matches("a/b", "a/b"));
    assert_false(ec_access_filter_matches("a/b", "a/b/c"));
    assert_false(ec_access_filter_matches("a/b/c", "a/b"));
}

static void allowed(const ec_config *cfg, const char *asker, const char *topic)
{
    char why[512] = "";
    if (!ec_access_reply_allowed(cfg, asker, topic, why, sizeof(why)))
        fail_msg("%s refused for %s: %s", topic, asker ? asker : "(none)", why);
}

static void refused(const ec_config *cfg, const char *asker, const char *topic, const char *says)
{
    char why[512] = "";
    if (ec_access_reply_allowed(cfg, asker, topic, why, sizeof(why)))
        fail_msg("%s allowed for %s", topic, asker ? asker : "(none)");
    if (!strstr(why, says))
        fail_msg("%s: '%s' does not say '%s'", topic, why, says);
}

/* No router.response_topics: anything outside <root>/ and $-topics, and
 * <root>/replies/...; never the services' own topics. */
static void the_open_default(void **state)
{
    (void)state;
    ec_config cfg;
    load(&cfg, "topic_root: ec/s1\n");
    allowed(&cfg, NULL, "plc/A/answers");
    allowed(&cfg, "A", "plc/B/answers"); /* the open demo: no identity rules */
    allowed(&cfg, NULL, "ec/s1/replies/scada/1");
    allowed(&cfg, NULL, "ec/s10/query"); /* another root's, not ours */
    refused(&cfg, NULL, "ec/s1/infer/cloud", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/status/router", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/cmd/breaker/cloud", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/query", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/result/other-id", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/reply/router/x", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/stats", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1", "edgecascade's own topics");
    refused(&cfg, NULL, "ec/s1/dashboard", "router.response_topics not set");
    refused(&cfg, NULL, "$SYS/broker/x", "$-topic");
    refused(&cfg, NULL, "plc/#", "wildcard");
    refused(&cfg, NULL, "plc/+/a", "wildcard");
    refused(&cfg, NULL, "", "not a topic name");
    ec_config_free(&cfg);
}

/* The secured examples' list: each asker only under its own names. */
static void the_secured_list(void **state)
{
    (void)state;
    ec_config cfg;
    load(&cfg, "topic_root: ec/s1\n"
               "router:\n"
               "  response_topics:\n"
               "    - filter: plc/{asker}/#\n"
               "    - filter: \"{root}/replies/{asker}/#\"\n"
               "    - filter: \"{root}/status/#\"\n");
    allowed(&cfg, "A", "plc/A/answers");
    allowed(&cfg, "A", "plc/A");
    allowed(&cfg, "scada", "ec/s1/replies/scada/x");
    refused(&cfg, "A", "plc/B/answers", "plc/A/#");
    refused(&cfg, "A", "ec/s1/replies/B/x", "ec/s1/replies/A/#");
    refused(&cfg, NULL, "plc/A/answers", "query without identity");
    /* listed, but a service topic all the same */
    refused(&cfg, "A", "ec/s1/status/router", "edgecascade's own topics");
    refused(&cfg, "A", "elsewhere/x", "router.response_topics");
    ec_config_free(&cfg);
}

static void bad_lists_are_config_errors(void **state)
{
    (void)state;
    static const char *const bad[] = {
        "router:\n  response_topics:\n    - filter: plc/#/x\n",
        "router:\n  response_topics:\n    - filter: plc/a+/x\n",
        "router:\n  response_topics:\n    - filter: plc/{user}/#\n",
        "router:\n  response_topics:\n    - nofilter: x\n",
        "router:\n  asker_weights:\n    - asker: a/b\n      weight: 2\n",
        "router:\n  asker_weights:\n    - asker: safety\n      weight: 0\n",
        "router:\n  asker_max_pending: -1\n",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ec_config cfg;
        ec_error err = {0};
        memset(&cfg, 0, sizeof(cfg));
        if (ec_config_load_string(&cfg, bad[i], strlen(bad[i]), &err) == EC_OK)
            fail_msg("accepted: %s", bad[i]);
        assert_non_null(strstr(err.msg, "router."));
        ec_config_free(&cfg);
    }
    ec_config cfg;
    load(&cfg, "router:\n  require_identity: true\n  asker_max_pending: 100\n"
               "  asker_weights:\n    - asker: safety-plc\n      weight: 4\n");
    assert_true(cfg.require_identity);
    assert_int_equal(cfg.asker_max_pending, 100);
    assert_int_equal(cfg.n_asker_weights, 1);
    assert_string_equal(cfg.asker_weights[0].asker, "safety-plc");
    assert_int_equal(cfg.asker_weights[0].weight, 4);
    ec_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(query_topics_name_the_asker),
        cmocka_unit_test(filters_match_as_mqtt_says),
        cmocka_unit_test(the_open_default),
        cmocka_unit_test(the_secured_list),
        cmocka_unit_test(bad_lists_are_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
