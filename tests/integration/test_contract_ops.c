/* Issue 14, the operator's side, on the model servers' own published bodies
 * (tests/data/providers, see its README) served verbatim by the simulator in
 * corpus mode, through the real CLI and services over real HTTP:
 *
 * - `edgecascade models` against an Ollama with nothing pulled (/api/tags
 *   {"models": []}, /v1/models {"data": null}) says no models are installed
 *   and what to do, exit 0; against llama.cpp's published /v1/models with
 *   model: auto it names the model edgecascade-local will use.
 * - edgecascade-local's retained status for model: auto tiers whose server
 *   lists no models says "none", and their queries fail at once with
 *   `unavailable` and go to the cloud.
 * - `edgecascade doctor` with a llama.cpp and a vLLM server that answer
 *   without logprobs fails each tier's `logprobs` check and names what to
 *   change for that server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

#define CORPUS EC_SOURCE_DIR "/tests/data/providers"
/* llama-server names its model by the -m path (llamacpp/models.json). */
#define LLAMACPP_MODEL "../models/Meta-Llama-3.1-8B-Instruct-Q4_K_M.gguf"

/* Runs the CLI with h's config; stdout and stderr in out; the exit status. */
static int run_cli(ech *h, const char *args, char *out, size_t cap)
{
    char cmd[1400];
    snprintf(cmd, sizeof(cmd), "%s/edgecascade --config '%s' %s 2>&1", EC_BIN_DIR, h->config, args);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = '\0';
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* The line of out that contains needle, copied into line; false if none. */
static bool line_with(const char *out, const char *needle, char *line, size_t cap)
{
    const char *hit = strstr(out, needle);
    if (!hit)
        return false;
    const char *start = hit;
    while (start > out && start[-1] != '\n')
        start--;
    const char *end = strchr(hit, '\n');
    size_t len = end ? (size_t)(end - start) : strlen(start);
    snprintf(line, cap, "%.*s", (int)len, start);
    return true;
}

static void local_tiers(ech *h, const char *cloud_extra)
{
    char tiers[2048];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: ollama, provider: ollama, model: auto,"
             " base_url: 'http://127.0.0.1:%d', timeout_ms: 5000}\n"
             "  - {name: ollama-v1, provider: openai-compatible, model: auto,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n"
             "%s"
             "  - {name: cloud, provider: anthropic, model: claude-3-5-haiku-latest,"
             " base_url: 'http://127.0.0.1:%d/v1', api_key_env: EC_TEST_OPENAI_KEY,"
             " timeout_ms: 5000}\n",
             h->sim_port, h->sim_port, cloud_extra ? cloud_extra : "", h->sim_port);
    ech_write_config_tiers(h, tiers, NULL);
}

static void models_on_published_lists(void **state)
{
    (void)state;
    ech h;
    char out[8192], line[1024], llama[256];
    ech_init(&h, "cops-models");
    ech_start_sim_corpus(&h, NULL, CORPUS);
    snprintf(llama, sizeof(llama),
             "  - {name: llamacpp, provider: openai-compatible, model: auto,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n",
             h.sim_port);
    local_tiers(&h, llama);

    /* Ollama's native list with nothing pulled: {"models": []}. */
    ech_sim_serve(&h, "ollama/models_empty.json", NULL, 1);
    int rc = run_cli(&h, "models --tier ollama", out, sizeof(out));
    if (rc != 0 || !line_with(out, "tier ollama (ollama at", line, sizeof(line)))
        fail_msg("models --tier ollama: exit %d\n%s", rc, out);
    if (!strstr(line, "no models installed") || !strstr(line, "ollama pull NAME"))
        fail_msg("no 'no models installed' with what to do:\n%s", out);
    assert_null(strstr(out, "edgecascade-local will use"));
    assert_null(strstr(out, "not among them"));

    /* Ollama's /v1/models with nothing pulled: {"data": null}. Nothing in
     * the provider says it is Ollama: the hint must still say what to do. */
    ech_sim_serve(&h, "ollama/v1_models_empty.json", NULL, 1);
    rc = run_cli(&h, "models --tier ollama-v1", out, sizeof(out));
    if (rc != 0 || !line_with(out, "tier ollama-v1 (openai-compatible at", line, sizeof(line)))
        fail_msg("models --tier ollama-v1: exit %d\n%s", rc, out);
    if (!strstr(line, "no models installed") || !strstr(line, "ollama pull NAME"))
        fail_msg("no 'no models installed' with what to do for /v1/models:\n%s", out);
    assert_null(strstr(out, "edgecascade-local will use"));

    /* llama.cpp's published list with model: auto: the model local will use. */
    ech_sim_serve(&h, "llamacpp/models.json", NULL, 1);
    rc = run_cli(&h, "models --tier llamacpp", out, sizeof(out));
    if (rc != 0 || !strstr(out, "  model auto: edgecascade-local will use '" LLAMACPP_MODEL "'"))
        fail_msg("models --tier llamacpp: exit %d\n%s", rc, out);
    assert_null(strstr(out, "not among them"));
    assert_null(strstr(out, "'auto'"));

    /* All three in one --json run (asked in config order: /api/tags, then
     * the two /v1/models, queued in that order). */
    ech_sim_serve(&h, "ollama/models_empty.json", NULL, 1);
    ech_sim_serve(&h, "ollama/v1_models_empty.json", NULL, 1);
    ech_sim_serve(&h, "llamacpp/models.json", NULL, 1);
    rc = run_cli(&h, "models --json", out, sizeof(out));
    json_t *j = json_loads(out, 0, NULL);
    if (rc != 0 || !j)
        fail_msg("models --json: exit %d\n%s", rc, out);
    json_t *ts = json_object_get(j, "tiers");
    assert_int_equal(json_array_size(ts), 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *t = json_array_get(ts, i);
        assert_true(json_is_true(json_object_get(t, "ok")));
        assert_int_equal(json_array_size(json_object_get(t, "models")), 0);
        assert_true(json_is_false(json_object_get(t, "model_available")));
        assert_null(json_object_get(t, "auto_model"));
    }
    json_t *lc = json_array_get(ts, 2);
    assert_string_equal(json_string_value(json_object_get(lc, "tier")), "llamacpp");
    assert_true(json_is_true(json_object_get(lc, "model_available")));
    assert_string_equal(json_string_value(json_object_get(lc, "auto_model")), LLAMACPP_MODEL);
    json_decref(j);

    /* Each run asked each server once, on the discovery paths. */
    assert_int_equal(ech_sim_received_on(&h, "/api/tags"), 2);
    assert_int_equal(ech_sim_received_on(&h, "/v1/models"), 4);
    ech_teardown(&h);
}

static bool all_none(json_t *doc)
{
    json_t *ms = json_object_get(doc, "models");
    if (json_array_size(ms) != 2)
        return false;
    size_t i;
    json_t *m;
    json_array_foreach(ms, i, m)
    {
        if (strcmp(json_string_value(json_object_get(m, "state")) ?: "", "none") != 0)
            return false;
    }
    return true;
}

/* The retained <root>/status/local document once both auto tiers say none. */
static json_t *wait_local_none(ech *h)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64], topic[256];
    snprintf(cid, sizeof(cid), "cops-status-%d", (int)getpid());
    snprintf(topic, sizeof(topic), "%s/status/local", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    json_t *hit = NULL;
    char *last = NULL;
    uint64_t deadline = ec_mono_us() + 15 * 1000000ull;
    while (!hit && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        free(last);
        last = strndup((const char *)m->payload, m->len);
        ec_mqtt_msg_free(m);
        if (j && all_none(j))
            hit = j;
        else
            json_decref(j);
    }
    ec_mqtt_destroy(c);
    if (!hit) {
        ech_dump_logs(h);
        fail_msg("status/local never said none for both tiers; last: %s", last ? last : "-");
    }
    free(last);
    return hit;
}

static void local_status_none(void **state)
{
    (void)state;
    ech h;
    ech_init(&h, "cops-none");
    ech_start_broker(&h);
    ech_start_sim_corpus(&h, NULL, CORPUS);
    /* Every discovery round, from the first (before local reports ready). */
    ech_sim_serve(&h, "ollama/models_empty.json", NULL, 0);
    ech_sim_serve(&h, "ollama/v1_models_empty.json", NULL, 0);
    local_tiers(&h, NULL);
    ech_start_services(&h);
    ech_connect_client(&h);

    json_t *st = wait_local_none(&h);
    json_t *ms = json_object_get(st, "models");
    const char *names[] = {"ollama", "ollama-v1"};
    for (size_t i = 0; i < 2; i++) {
        json_t *m = json_array_get(ms, i);
        assert_string_equal(json_string_value(json_object_get(m, "tier")), names[i]);
        const char *e = json_string_value(json_object_get(m, "error"));
        if (!e || !strstr(e, "no models installed on http://127.0.0.1:") ||
            !strstr(e, "ollama pull NAME"))
            fail_msg("tier %s: error %s", names[i], e ? e : "(none)");
        const char *model = json_string_value(json_object_get(m, "model"));
        assert_true(!model || !*model); /* nothing chosen, and never "auto" */
    }
    json_decref(st);

    /* A query: both local tiers fail at once (no chat call), the cloud answers. */
    const char *q = "{\"id\":\"n-1\",\"prompt\":\"Pump 3 pressure?\"}";
    ec_mqtt_msg *m = ech_request(&h, q, strlen(q), "n-1", 30000);
    if (!m) {
        ech_dump_logs(&h);
        fail_msg("no result for n-1");
    }
    json_t *r = json_loadb(m->payload, m->len, 0, NULL);
    ec_mqtt_msg_free(m);
    assert_non_null(r);
    assert_true(json_is_null(json_object_get(r, "error")));
    assert_string_equal(json_string_value(json_object_get(r, "tier")), "cloud");
    json_t *att = json_object_get(r, "attempts");
    assert_int_equal(json_array_size(att), 3);
    for (size_t i = 0; i < 2; i++) {
        json_t *err = json_object_get(json_array_get(att, i), "error");
        assert_string_equal(json_string_value(json_object_get(err, "code")), "unavailable");
        assert_non_null(strstr(json_string_value(json_object_get(err, "message")) ?: "",
                               "no models installed"));
    }
    json_decref(r);
    assert_int_equal(ech_sim_received_on(&h, "/api/chat"), 0);
    assert_int_equal(ech_sim_received_on(&h, "/v1/chat/completions"), 0);
    assert_int_equal(ech_sim_received_on(&h, "/v1/messages"), 1);
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM attempts WHERE error_code = 'unavailable'"
                                  " AND error_message LIKE '%no models installed%'",
                                  2),
                     2);
    ech_teardown(&h);
}

/* The JSON body of the i-th request to path that the simulator received. */
static json_t *received_body(ech *h, const char *path, size_t want)
{
    char *s = ech_sim_received(h);
    json_t *all = json_loads(s, 0, NULL);
    free(s);
    size_t i, k = 0;
    json_t *r, *out = NULL;
    json_array_foreach(all, i, r)
    {
        if (strcmp(json_string_value(json_object_get(r, "path")) ?: "", path) == 0 && k++ == want) {
            out = json_incref(json_object_get(r, "body"));
            break;
        }
    }
    json_decref(all);
    assert_non_null(out);
    return out;
}

static void doctor_no_logprobs(void **state)
{
    (void)state;
    ech h;
    char out[16384], line[1024], fix[1024], vllm[256];
    ech_init(&h, "cops-doctor");
    ech_start_broker(&h);
    ech_start_sim_corpus(&h, NULL, CORPUS);
    /* llama.cpp (model auto, first) and vLLM (the script's llama3.2-1b). */
    snprintf(vllm, sizeof(vllm),
             "  - {name: vllm, provider: vllm, model: llama3.2-1b,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n",
             h.sim_port);
    char tiers[1024];
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: llamacpp, provider: openai-compatible, model: auto,"
             " base_url: 'http://127.0.0.1:%d/v1', timeout_ms: 5000}\n"
             "%s",
             h.sim_port, vllm);
    ech_write_config_tiers(&h, tiers, NULL);
    /* The first /v1/models is llama.cpp's published list; vLLM's comes from
     * the script. Every chat answer is OpenAI's published completion, which
     * has "logprobs": null (what a server without them, or a proxy that
     * drops the field, returns). */
    ech_sim_serve(&h, "llamacpp/models.json", NULL, 1);
    ech_sim_serve(&h, "openai/chat_plain.json", NULL, 0);
    int rc = run_cli(&h, "doctor", out, sizeof(out));
    assert_int_equal(rc, 1);

    if (!line_with(out, "model server llamacpp", line, sizeof(line)) ||
        strncmp(line, "OK", 2) != 0 || !strstr(line, "model auto would use '" LLAMACPP_MODEL "'"))
        fail_msg("doctor did not pick llama.cpp's model:\n%s", out);
    struct {
        const char *check, *fix;
    } want[] = {
        {"logprobs llamacpp", "llama-server returns them in the OpenAI shape"},
        {"logprobs vllm", "check that no proxy in front of vLLM drops the \"logprobs\" field"},
    };
    for (size_t i = 0; i < 2; i++) {
        if (!line_with(out, want[i].check, line, sizeof(line)) || strncmp(line, "FAIL", 4) != 0 ||
            !strstr(line, "returned no token probabilities"))
            fail_msg("%s did not FAIL:\n%s", want[i].check, out);
        /* The line after it is the fix. */
        const char *next = strchr(strstr(out, want[i].check), '\n');
        if (!next || !line_with(next + 1, "", fix, sizeof(fix)) || strncmp(fix, "      ", 6) != 0 ||
            !strstr(fix, "fix: ") || !strstr(fix, want[i].fix))
            fail_msg("%s: no fix naming what to change:\n%s", want[i].check, out);
    }
    /* The one-token completions passed: only the probabilities are missing. */
    assert_true(line_with(out, "completion llamacpp", line, sizeof(line)));
    assert_int_equal(strncmp(line, "OK", 2), 0);
    assert_true(line_with(out, "completion vllm", line, sizeof(line)));
    assert_int_equal(strncmp(line, "OK", 2), 0);

    /* What each asked for: llama.cpp the picked model with top_logprobs 1,
     * vLLM logprobs alone (README, provider table). */
    assert_int_equal(ech_sim_received_on(&h, "/v1/chat/completions"), 2);
    json_t *b = received_body(&h, "/v1/chat/completions", 0);
    assert_string_equal(json_string_value(json_object_get(b, "model")), LLAMACPP_MODEL);
    assert_true(json_is_true(json_object_get(b, "logprobs")));
    assert_int_equal(json_integer_value(json_object_get(b, "top_logprobs")), 1);
    json_decref(b);
    b = received_body(&h, "/v1/chat/completions", 1);
    assert_string_equal(json_string_value(json_object_get(b, "model")), "llama3.2-1b");
    assert_true(json_is_true(json_object_get(b, "logprobs")));
    assert_null(json_object_get(b, "top_logprobs"));
    json_decref(b);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(models_on_published_lists),
        cmocka_unit_test(local_status_none),
        cmocka_unit_test(doctor_no_logprobs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
