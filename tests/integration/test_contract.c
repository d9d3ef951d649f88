/* Issue 14 end to end: real Mosquitto, the simulator (with the published
 * bodies of tests/data/providers in corpus mode) and the three services.
 *
 * - A local Ollama tier with model auto that fails: the attempt records the
 *   model discovery found, not "auto".
 * - The cloud tier is Anthropic: a query at temperature 1.5 reaches it as 1,
 *   and the decision log says so (attempts.sent).
 * - An Ollama that returns no logprobs (the published pre-0.12.11 body):
 *   edgecascade-local says so once, however many answers come. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static void ask_json(ech *h, const char *id)
{
    char q[256];
    snprintf(q, sizeof(q), "{\"id\":\"%s\",\"prompt\":\"Pump 3 pressure?\",\"temperature\":1.5}",
             id);
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), id, 30000);
    if (!m) {
        ech_dump_logs(h);
        fail_msg("no result for %s", id);
    }
    ec_mqtt_msg_free(m);
}

static int count_in_file(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[8192];
    int n = 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

static void test_contract_end_to_end(void **state)
{
    (void)state;
    ech h;
    ech_init(&h, "contract");
    ech_start_broker(&h);
    ech_start_sim_corpus(&h, NULL, EC_SOURCE_DIR "/tests/data/providers");
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - name: local\n"
             "    provider: ollama\n"
             "    model: auto\n"
             "    prefer_model: llama3.2-1b\n"
             "    base_url: http://127.0.0.1:%d\n"
             "    timeout_ms: 5000\n"
             "  - name: cloud\n"
             "    provider: anthropic\n"
             "    model: claude-3-5-haiku-latest\n"
             "    base_url: http://127.0.0.1:%d/v1\n"
             "    api_key_env: EC_TEST_OPENAI_KEY\n"
             "    timeout_ms: 5000\n",
             h.sim_port, h.sim_port);
    ech_write_config_tiers(&h, tiers, NULL);
    ech_start_services(&h);
    ech_connect_client(&h);

    /* The local model fails: the attempt names the model discovery found. */
    ech_sim_fault(&h, "{\"model\":\"llama3.2-1b\",\"status\":500}");
    ask_json(&h, "c-1");
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM attempts WHERE tier_name = 'local'"
                                  " AND model = 'llama3.2-1b' AND error_code IS NOT NULL",
                                  1),
                     1);
    assert_int_equal(ech_sql_long(&h, "SELECT COUNT(*) FROM attempts WHERE model = 'auto'"), 0);
    /* What went to the local model: logprobs asked, on errors recorded too. */
    assert_int_equal(ech_sql_long(&h, "SELECT COUNT(*) FROM attempts WHERE tier_name = 'local'"
                                      " AND json_extract(sent, '$.logprobs') = 1"),
                     1);
    /* Anthropic got temperature 1 for the query's 1.5, and the log says so. */
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM attempts WHERE tier_name = 'cloud'"
                                  " AND json_extract(sent, '$.temperature') = 1"
                                  " AND json_extract(sent, '$.temperature_asked') = 1.5",
                                  1),
                     1);
    char *last = ech_sim_last_request(&h, "claude-3-5-haiku-latest");
    assert_non_null(last);
    json_t *b = json_loads(last, 0, NULL);
    assert_non_null(b);
    assert_true(json_number_value(json_object_get(b, "temperature")) <= 1.0);
    json_decref(b);
    free(last);
    ech_sim_fault(&h, "{\"model\":\"llama3.2-1b\"}");

    /* An Ollama before 0.12.11 answers without logprobs: said once. */
    ech_sim_post(&h, "/sim/serve",
                 "{\"file\":\"ollama/chat_plain.json\",\"path\":\"/api/chat\",\"times\":0}");
    ask_json(&h, "c-2");
    ask_json(&h, "c-3");
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM attempts WHERE tier_name = 'local' AND"
                                  " error_code IS NULL AND lp_n IS NULL",
                                  2),
                     2);
    assert_int_equal(count_in_file(h.local.log, "returned no token logprobs although asked"), 1);

    /* doctor's one-token call finds the missing probabilities and says what
     * to change for Ollama. */
    char cmd[1200], out[16384];
    snprintf(cmd, sizeof(cmd), "%s/edgecascade --config '%s' doctor 2>&1", EC_BIN_DIR, h.config);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, sizeof(out) - 1, p);
    out[n] = '\0';
    pclose(p);
    const char *line = strstr(out, "logprobs local");
    if (!line || strncmp(line - 6, "FAIL", 4) != 0 || !strstr(line, "0.12.11"))
        fail_msg("doctor did not flag the missing logprobs:\n%s", out);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_contract_end_to_end),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
