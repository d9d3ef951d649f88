/* Issue 14, when the servers say no, on their own published error bodies
 * (tests/data/providers, see its README) served verbatim by the simulator in
 * corpus mode, with real Mosquitto and the three services:
 *
 * - OpenAI's 429 with Retry-After 121 (openai-python's fixture): the relay
 *   does not wait 121 s inside a query's deadline; it gives up at once with
 *   an error naming the Retry-After, and the caller gets the local draft,
 *   degraded, with the escalation queued. The same published 429 with the
 *   header set to 1 is retried once after it and answered.
 * - llama.cpp's 503 "Loading model" on the local tier: an `auto` query
 *   escalates to the cloud, a `local_only` one gets the error.
 * - Anthropic's 529 overloaded_error on every call: the relay's breaker opens
 *   (retained status/breaker/cloud "open"), the caller gets degraded local
 *   drafts, then fails fast; with no draft the query is `queued`. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "harness.h"

#define CORPUS EC_SOURCE_DIR "/tests/data/providers"

static const char *script =
    "{\"models\": {\n"
    "  \"llama3.2-1b\": {\"kind\": \"local\", \"default_logprob\": -0.9},\n"
    "  \"gpt-4o-mini\": {\"kind\": \"cloud\", \"default_logprob\": -0.05},\n"
    "  \"claude-3-5-haiku-latest\": {\"kind\": \"cloud\", \"default_logprob\": -0.05}},\n"
    " \"rules\": [\n"
    "  {\"match\": \"hard\", \"model\": \"llama3.2-1b\", \"answer\": \"Not sure.\", "
    "\"logprob\": -1.5},\n"
    "  {\"match\": \"hard\", \"model\": \"*\", \"answer\": \"Replace bearing 6204.\", "
    "\"logprob\": -0.02}\n"
    " ]}\n";

/* <dir>/corpus: the published directories (symlinks), plus adapted/ with
 * OpenAI's published 429 whose retry-after is set to 1 s. */
static void write_corpus(ech *h, char *corpus, size_t cap)
{
    static const char *const apis[] = {"openai", "anthropic", "llamacpp", "ollama"};
    char path[1024], to[1024];
    snprintf(corpus, cap, "%s/corpus", h->dir);
    snprintf(path, sizeof(path), "%s/adapted", corpus);
    assert_int_equal(mkdir(corpus, 0700), 0);
    assert_int_equal(mkdir(path, 0700), 0);
    for (size_t i = 0; i < sizeof(apis) / sizeof(apis[0]); i++) {
        snprintf(path, sizeof(path), "%s/%s", corpus, apis[i]);
        snprintf(to, sizeof(to), "%s/%s", CORPUS, apis[i]);
        assert_int_equal(symlink(to, path), 0);
    }
    json_t *c = json_load_file(CORPUS "/openai/error_429_retry_after.json", 0, NULL);
    assert_non_null(c);
    json_t *hd = json_object_get(c, "headers");
    assert_string_equal(json_string_value(json_object_get(hd, "retry-after")), "121");
    json_object_set_new(hd, "retry-after", json_string("1"));
    json_object_set_new(c, "note",
                        json_string("ADAPTED by tests/integration/test_contract_cloud.c: "
                                    "openai/error_429_retry_after.json with retry-after 121 "
                                    "changed to 1; status, body and other headers as published"));
    snprintf(path, sizeof(path), "%s/adapted/openai_429_retry_after_1.json", corpus);
    assert_int_equal(json_dump_file(c, path, JSON_INDENT(2) | JSON_PRESERVE_ORDER), 0);
    json_decref(c);
}

typedef struct tier_spec {
    const char *provider, *model, *path; /* path: after http://127.0.0.1:<sim port> */
} tier_spec;

static void start(ech *h, const char *name, tier_spec local, tier_spec cloud, const char *extra)
{
    char corpus[512], path[600], tiers[1024];
    ech_init(h, name);
    write_corpus(h, corpus, sizeof(corpus));
    snprintf(path, sizeof(path), "%s/script.json", h->dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(script, f);
    fclose(f);
    ech_start_broker(h);
    ech_start_sim_corpus(h, path, corpus);
    snprintf(tiers, sizeof(tiers),
             "tiers:\n"
             "  - {name: local, provider: %s, model: %s, base_url: 'http://127.0.0.1:%d%s',"
             " timeout_ms: 5000}\n"
             "  - {name: cloud, provider: %s, model: %s, base_url: 'http://127.0.0.1:%d%s',"
             " api_key_env: EC_TEST_OPENAI_KEY, timeout_ms: 10000}\n",
             local.provider, local.model, h->sim_port, local.path, cloud.provider, cloud.model,
             h->sim_port, cloud.path);
    /* The offline queue does not replay during the test: counts stay exact. */
    char all[512];
    snprintf(all, sizeof(all), "router:\n  replay_interval_ms: 600000\n%s", extra ? extra : "");
    ech_write_config_tiers(h, tiers, all);
    ech_start_services(h);
    ech_connect_client(h);
}

/* A JSON query; the JSON Result (caller decrefs). */
static json_t *ask(ech *h, const char *id, const char *prompt, const char *policy)
{
    char q[512];
    snprintf(q, sizeof(q), "{\"id\":\"%s\",\"prompt\":\"%s\",\"policy\":\"%s\"}", id, prompt,
             policy ? policy : "auto");
    ec_mqtt_msg *m = ech_request(h, q, strlen(q), id, 40000);
    if (!m) {
        ech_dump_logs(h);
        fail_msg("no result for %s", id);
    }
    json_t *r = json_loadb(m->payload, m->len, 0, NULL);
    ec_mqtt_msg_free(m);
    assert_non_null(r);
    return r;
}

static const char *str(json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

/* Fails unless s contains needle, showing s. */
static void has(const char *what, const char *s, const char *needle)
{
    if (!s || !strstr(s, needle))
        fail_msg("%s: no \"%s\" in: %s", what, needle, s ? s : "(null)");
}

/* The error object of attempt i of a Result. */
static json_t *attempt_error(json_t *r, size_t i)
{
    return json_object_get(json_array_get(json_object_get(r, "attempts"), i), "error");
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

#define CHAT "/v1/chat/completions"

static void relay_retry_after(void **state)
{
    (void)state;
    ech h;
    /* Local on Ollama's /api/chat (the script answers it), so that only the
     * cloud uses /v1/chat/completions. relay.retries is left at its default
     * (2). */
    start(&h, "ccloud-429", (tier_spec){"ollama", "llama3.2-1b", ""},
          (tier_spec){"openai", "gpt-4o-mini", "/v1"}, NULL);

    /* Retry-After 121 s, the cloud tier's timeout 10 s: the relay does not
     * wait and does not retry; the error names the Retry-After. The caller
     * gets the local draft, degraded, and the escalation is queued. */
    ech_sim_serve(&h, "openai/error_429_retry_after.json", CHAT, 1);
    json_t *r = ask(&h, "q-121", "a hard question", NULL);
    assert_true(json_is_null(json_object_get(r, "error")));
    assert_string_equal(str(r, "tier"), "local");
    assert_true(json_is_true(json_object_get(r, "degraded")));
    has("reason", str(r, "reason"), "escalation queued");
    has("reason", str(r, "reason"), "retry after 121 s");
    json_t *e = attempt_error(r, 1);
    assert_string_equal(str(e, "code"), "upstream");
    has("cloud attempt", str(e, "message"),
        "429 from openai (gpt-4o-mini): rate limited, "
        "retry after 121 s");
    json_decref(r);
    assert_int_equal(ech_sim_received_on(&h, CHAT), 1);
    assert_int_equal(count_in_file(h.relay.log, "attempt 1: 429"), 1);
    assert_int_equal(count_in_file(h.relay.log, "attempt 2:"), 0);
    assert_int_equal(ech_sql_wait(&h, "SELECT COUNT(*) FROM outbox", 1), 1);
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM attempts WHERE tier_name = 'cloud' AND"
                                  " error_code = 'upstream' AND error_message LIKE"
                                  " '%retry after 121 s%'",
                                  1),
                     1);

    /* The same published 429, its retry-after header adapted to 1 s: the
     * relay waits it out, asks again and the query is answered. */
    ech_sim_serve(&h, "adapted/openai_429_retry_after_1.json", CHAT, 1);
    r = ask(&h, "q-1", "a hard question again", NULL);
    assert_true(json_is_null(json_object_get(r, "error")));
    assert_string_equal(str(r, "tier"), "cloud");
    assert_true(json_is_false(json_object_get(r, "degraded")));
    assert_string_equal(str(r, "answer"), "Replace bearing 6204.");
    assert_true(json_is_null(attempt_error(r, 1)));
    json_decref(r);
    assert_int_equal(ech_sim_received_on(&h, CHAT), 3); /* 1 before, 2 for this one */
    assert_int_equal(count_in_file(h.relay.log, "rate limited, retry after 1 s"), 1);
    assert_int_equal(ech_sql_wait(&h,
                                  "SELECT COUNT(*) FROM decisions WHERE query_id = 'q-1' AND"
                                  " tier_kind = 'cloud' AND degraded = 0",
                                  1),
                     1);
    assert_int_equal(ech_sql_long(&h, "SELECT COUNT(*) FROM outbox"), 1);
    ech_teardown(&h);
}

/* Waits for the retained status/breaker/<tier> to say state; returns it. */
static json_t *wait_breaker(ech *h, const char *tier, const char *state)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64], topic[256];
    snprintf(cid, sizeof(cid), "ccloud-brk-%d", (int)getpid());
    snprintf(topic, sizeof(topic), "%s/status/breaker/%s", h->root, tier);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(c, topic, 1, &err), EC_OK);
    assert_int_equal(ec_mqtt_connect(c, 5000, &err), EC_OK);
    json_t *hit = NULL;
    uint64_t deadline = ec_mono_us() + 5 * 1000000ull;
    while (!hit && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        ec_mqtt_msg_free(m);
        if (j && strcmp(str(j, "state") ?: "", state) == 0)
            hit = j;
        else
            json_decref(j);
    }
    ec_mqtt_destroy(c);
    if (!hit) {
        ech_dump_logs(h);
        fail_msg("status/breaker/%s never said %s", tier, state);
    }
    return hit;
}

static void local_loading_and_breaker(void **state)
{
    (void)state;
    ech h;
    /* llama.cpp's server (openai-compatible) and Anthropic. */
    start(&h, "ccloud-529", (tier_spec){"openai-compatible", "llama3.2-1b", "/v1"},
          (tier_spec){"anthropic", "claude-3-5-haiku-latest", "/v1"},
          "relay:\n  retries: 1\n  breaker:\n    consecutive: 3\n");

    /* llama-server while it loads: 503 "Loading model". The README publishes
     * the body for /health; its server-state middleware sends the same for
     * every endpoint until the model is loaded, so it is served on the chat
     * path here. The local service does not retry: one call per query. */
    ech_sim_serve(&h, "llamacpp/error_503_loading.json", CHAT, 2);
    json_t *r = ask(&h, "l-auto", "a hard question A", NULL);
    assert_true(json_is_null(json_object_get(r, "error")));
    assert_string_equal(str(r, "tier"), "cloud");
    assert_true(json_is_false(json_object_get(r, "degraded")));
    assert_string_equal(str(r, "answer"), "Replace bearing 6204.");
    json_t *e = attempt_error(r, 0);
    assert_string_equal(str(e, "code"), "upstream");
    has("local attempt", str(e, "message"), "503 from openai-compatible (llama3.2-1b)");
    has("local attempt", str(e, "message"), "Loading model");
    json_decref(r);
    r = ask(&h, "l-only", "a hard question B", "local_only");
    e = json_object_get(r, "error");
    assert_string_equal(str(e, "code"), "upstream");
    has("local_only error", str(e, "message"), "Loading model");
    assert_true(json_is_null(json_object_get(r, "tier")));
    json_decref(r);
    assert_int_equal(ech_sim_received_on(&h, CHAT), 2);
    assert_int_equal(ech_sim_received_on(&h, "/v1/messages"), 1);

    /* Anthropic overloaded on every call (529, the SDK's fixture). One call
     * is a request and its retry; three failed calls in a row open the
     * breaker (relay.breaker.consecutive; the rate rule waits for min_calls,
     * 10 by default). */
    ech_sim_serve(&h, "anthropic/error_529_overloaded.json", NULL, 0);
    for (int i = 0; i < 4; i++) {
        char id[16], prompt[64];
        snprintf(id, sizeof(id), "b-%d", i);
        snprintf(prompt, sizeof(prompt), "a hard question %d", i); /* not from the cache */
        r = ask(&h, id, prompt, NULL);
        assert_true(json_is_null(json_object_get(r, "error")));
        assert_string_equal(str(r, "tier"), "local");
        assert_true(json_is_true(json_object_get(r, "degraded")));
        assert_string_equal(str(r, "answer"), "Not sure.");
        has(id, str(r, "reason"), "escalation queued (revision 2 follows)");
        if (i < 3)
            has(id, str(r, "reason"), "529 from anthropic (claude-3-5-haiku-latest): overloaded");
        else
            has(id, str(r, "reason"), "circuit breaker for tier 'cloud' is open");
        json_decref(r);
    }
    /* 1 answered before, then 3 calls of 2 requests; the fourth failed fast.
     * The local model drafted all four. */
    assert_int_equal(ech_sim_received_on(&h, "/v1/messages"), 1 + 6);
    assert_int_equal(ech_sim_received_on(&h, CHAT), 2 + 4);
    json_t *b = wait_breaker(&h, "cloud", "open");
    assert_string_equal(str(b, "model"), "claude-3-5-haiku-latest");
    assert_string_equal(str(b, "provider"), "anthropic");
    json_decref(b);
    assert_int_equal(
        ech_sql_wait(&h, "SELECT COUNT(*) FROM breaker_events WHERE state = 'open'", 1), 1);
    assert_int_equal(ech_sql_wait(&h, "SELECT COUNT(*) FROM outbox", 4), 4);

    /* Local loading and the breaker open: no draft to serve, so the query
     * is queued, and nothing is sent to Anthropic. */
    ech_sim_serve(&h, "llamacpp/error_503_loading.json", CHAT, 1);
    r = ask(&h, "q-none", "a hard question C", NULL);
    e = json_object_get(r, "error");
    assert_string_equal(str(e, "code"), "queued");
    has("queued", str(e, "message"), "revision 2");
    assert_true(json_is_null(json_object_get(r, "tier")));
    json_decref(r);
    /* The local model: 2 loading, 4 drafts, 1 loading; Anthropic: as before. */
    assert_int_equal(ech_sim_received_on(&h, CHAT), 2 + 4 + 1);
    assert_int_equal(ech_sim_received_on(&h, "/v1/messages"), 1 + 6);
    assert_int_equal(ech_sql_wait(&h, "SELECT COUNT(*) FROM outbox", 5), 5);
    ech_teardown(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(relay_retry_after),
        cmocka_unit_test(local_loading_and_breaker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
