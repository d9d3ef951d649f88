/* The router driven by MQTT.js 5, the MQTT client inside Node-RED, over MQTT
 * v5. Each scenario starts the stack with the harness (a Mosquitto with its
 * stock settings, as a plant runs it; the simulator; router, local and relay
 * as separate processes), runs tests/mqttjs/client.js under node and compares
 * every finding it prints ({"check", "value", "detail"} lines) with the value
 * this file expects. Each scenario is one cmocka test; a failing one lists
 * every check that failed, with what was seen. The fixture mqttjs.npm_ci
 * installs the pinned mqtt package into the build tree (npm ci).
 *
 * Only counts and values are asserted, never times: the client waits for the
 * answers up to generous bounds and stops early once all have arrived. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/buf.h"
#include "harness.h"

typedef struct expect {
    const char *check; /* "<scenario>.<name>", as client.js prints it */
    const char *want;  /* JSON */
} expect;

/* Runs `node client.js <url> <root> <scenario>` and returns its stdout (heap
 * string); *status is its wait status. stderr goes to ours. */
static char *run_client(ech *h, const char *scenario, int *status)
{
    char js[600], url[64];
    snprintf(js, sizeof(js), "%s/client.js", EC_MQTTJS_DIR);
    snprintf(url, sizeof(url), "mqtt://127.0.0.1:%d", h->mqtt_port);
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        dup2(fd[1], 1);
        close(fd[1]);
        if (chdir(EC_MQTTJS_DIR) != 0)
            _exit(126);
        execlp("node", "node", js, url, h->root, scenario, (char *)NULL);
        perror("node");
        _exit(127);
    }
    close(fd[1]);
    ec_buf out;
    ec_buf_init(&out, 0);
    char chunk[4096];
    for (;;) {
        ssize_t n = read(fd[0], chunk, sizeof(chunk));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        assert_int_equal(ec_buf_append(&out, chunk, (size_t)n), EC_OK);
    }
    close(fd[0]);
    waitpid(pid, status, 0);
    char *s = strdup(ec_buf_cstr(&out));
    ec_buf_free(&out);
    return s;
}

static void run_scenario(const char *scenario, const expect *want, size_t n_want)
{
    char mods[600];
    snprintf(mods, sizeof(mods), "%s/node_modules/mqtt/package.json", EC_MQTTJS_DIR);
    if (access(mods, R_OK) != 0)
        fail_msg("%s is missing: the ctest fixture mqttjs.npm_ci installs it (npm ci)", mods);

    ech h;
    ech_init(&h, "mqttjs");
    h.broker_stock = true;
    ech_start_broker(&h);
    ech_start_sim(&h, NULL);
    /* The tiers as `make demo` writes them: the default timeouts (local 30 s,
     * cloud 60 s), which decide what admission may take on. */
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: vllm, model: llama3.2-1b,"
             " base_url: 'http://127.0.0.1:%d/v1'}\n"
             "  - {name: cloud, provider: openai, model: gpt-4o-mini,"
             " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
             " input_per_1m: 0.15, output_per_1m: 0.60}\n",
             h.sim_port, h.sim_port);
    ech_write_config_tiers(&h, tiers, NULL);
    ech_start_services(&h);

    int status = 0;
    char *out = run_client(&h, scenario, &status);

    /* the findings, by check name */
    json_t *seen = json_object();
    bool done = false;
    for (char *save = NULL, *line = strtok_r(out, "\n", &save); line;
         line = strtok_r(NULL, "\n", &save)) {
        json_error_t jerr;
        json_t *j = json_loads(line, JSON_ALLOW_NUL, &jerr);
        if (!j) {
            fprintf(stderr, "client.js: not JSON: %s\n", line);
            continue;
        }
        const char *check = json_string_value(json_object_get(j, "check"));
        if (check)
            json_object_set(seen, check, j);
        if (json_object_get(j, "done"))
            done = true;
        json_decref(j);
    }
    free(out);

    ec_buf failed;
    ec_buf_init(&failed, 0);
    size_t n_failed = 0;
    for (size_t i = 0; i < n_want; i++) {
        json_error_t jerr;
        json_t *w = json_loads(want[i].want, JSON_DECODE_ANY, &jerr);
        assert_non_null(w);
        json_t *f = json_object_get(seen, want[i].check);
        json_t *v = json_object_get(f, "value");
        char *ws = json_dumps(w, JSON_ENCODE_ANY);
        char *vs = v ? json_dumps(v, JSON_ENCODE_ANY) : strdup("(not reported)");
        const char *detail = json_string_value(json_object_get(f, "detail"));
        bool ok = v && json_equal(v, w);
        printf("%s %-40s want %s, got %s%s%s\n", ok ? "PASS" : "FAIL", want[i].check, ws, vs,
               detail ? ": " : "", detail ? detail : "");
        if (!ok) {
            ec_buf_printf(&failed, "  %s: want %s, got %s\n", want[i].check, ws, vs);
            n_failed++;
        }
        free(ws);
        free(vs);
        json_decref(w);
    }
    /* findings nobody asserts (information) */
    const char *key;
    json_t *val;
    json_object_foreach(seen, key, val)
    {
        bool known = false;
        for (size_t i = 0; i < n_want && !known; i++)
            known = strcmp(want[i].check, key) == 0;
        if (!known) {
            char *vs = json_dumps(json_object_get(val, "value"), JSON_ENCODE_ANY);
            printf("INFO %-40s %s\n", key, vs ? vs : "?");
            free(vs);
        }
    }
    json_decref(seen);
    fflush(stdout);

    bool ran = WIFEXITED(status) && WEXITSTATUS(status) == 0 && done;
    if (!ran || n_failed)
        ech_dump_logs(&h);
    ech_teardown(&h);
    if (!ran) {
        ec_buf_free(&failed);
        fail_msg("client.js %s did not run to its end (status %d); see its stderr above", scenario,
                 status);
    }
    if (n_failed) {
        fprintf(stderr, "%zu of %zu checks of scenario %s failed:\n%s", n_failed, n_want, scenario,
                ec_buf_cstr(&failed));
        ec_buf_free(&failed);
        fail_msg("scenario %s: %zu of %zu checks failed", scenario, n_failed, n_want);
    }
    ec_buf_free(&failed);
}

#define RUN(scenario, table) run_scenario(scenario, table, sizeof(table) / sizeof(table[0]))

/* 20 JSON queries with Response Topic, random Correlation Data and User
 * Properties: each answer echoes the Correlation Data byte for byte and the
 * User Properties, says Content Type application/json and Payload Format
 * Indicator 1 (UTF-8), and its body is the JSON Result of that id. */
static void basic(void **state)
{
    (void)state;
    static const expect want[] = {
        {"basic.answered", "20"},
        {"basic.correlation_echoed", "20"},
        {"basic.content_type_json", "20"},
        {"basic.payload_format_indicator", "20"},
        {"basic.user_properties_echoed", "20"},
        {"basic.json_same_id", "20"},
        {"basic.answer_ok", "20"},
    };
    RUN("basic", want);
}

/* A plain-text prompt (no content type) is a prompt, answered in JSON; an
 * empty payload and a top-level JSON array get an error Result in JSON; a
 * truncated JSON object's error Result keeps the id it could read. */
static void plaintext(void **state)
{
    (void)state;
    static const expect want[] = {
        {"plaintext.text.answered", "true"},
        {"plaintext.text.content_type", "\"application/json\""},
        {"plaintext.text.json_object", "true"},
        {"plaintext.text.answer", "true"},
        {"plaintext.empty.answered", "true"},
        {"plaintext.empty.content_type", "\"application/json\""},
        {"plaintext.empty.json_object", "true"},
        {"plaintext.empty.error", "true"},
        {"plaintext.array.answered", "true"},
        {"plaintext.array.content_type", "\"application/json\""},
        {"plaintext.array.json_object", "true"},
        {"plaintext.array.error", "true"},
        {"plaintext.truncated.answered", "true"},
        {"plaintext.truncated.content_type", "\"application/json\""},
        {"plaintext.truncated.json_object", "true"},
        {"plaintext.truncated.error", "true"},
        {"plaintext.truncated.id", "\"keep-me-7\""},
        {"plaintext.truncated.result_topic", "true"},
    };
    RUN("plaintext", want);
}

/* An error Result for a well-formed JSON query that fails validation (a
 * negative max_tokens, an unknown policy) keeps the query's id, and the fields
 * that do not apply are null. */
static void errors(void **state)
{
    (void)state;
    static const expect want[] = {
        {"errors.max_tokens.answered", "true"},
        {"errors.max_tokens.content_type", "\"application/json\""},
        {"errors.max_tokens.json_object", "true"},
        {"errors.max_tokens.error", "true"},
        {"errors.max_tokens.id", "\"e1\""},
        {"errors.max_tokens.tier", "null"},
        {"errors.max_tokens.tier_index", "null"},
        {"errors.max_tokens.threshold", "null"},
        {"errors.max_tokens.confidence", "null"},
        {"errors.max_tokens.attempts", "null"},
        {"errors.policy.answered", "true"},
        {"errors.policy.content_type", "\"application/json\""},
        {"errors.policy.json_object", "true"},
        {"errors.policy.error", "true"},
        {"errors.policy.id", "\"e2\""},
        {"errors.policy.tier", "null"},
        {"errors.policy.tier_index", "null"},
        {"errors.policy.threshold", "null"},
        {"errors.policy.confidence", "null"},
        {"errors.policy.attempts", "null"},
    };
    RUN("errors", want);
}

/* 1,000 distinct QoS 1 queries as fast as one MQTT.js client sends them,
 * against a stock Mosquitto: every one answered once, none busy (the
 * simulator answers at once), none lost. */
static void burst(void **state)
{
    (void)state;
    static const expect want[] = {
        {"burst.sent", "1000"}, {"burst.puback_errors", "0"}, {"burst.answered", "1000"},
        {"burst.ok", "1000"},   {"burst.busy", "0"},          {"burst.errors", "0"},
        {"burst.lost", "0"},    {"burst.duplicates", "0"},    {"burst.unknown", "0"},
    };
    RUN("burst", want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(basic),
        cmocka_unit_test(plaintext),
        cmocka_unit_test(errors),
        cmocka_unit_test(burst),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
