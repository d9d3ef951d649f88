/* Integration harness, talking to the stack: the test's own MQTT client
 * (requests with a Response Topic and Correlation Data, ech_ask), the
 * simulator's HTTP control API (request counts, the last request, faults),
 * and SQL on the router's decision log and arrival journal. Apart from
 * harness.c and harness_proc.c because these run while the stack is up,
 * inside the tests themselves. */
#define _GNU_SOURCE /* asprintf */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/util.h"

void ech_connect_client(ech *h)
{
    ec_error err = {0};
    char cid[64];
    snprintf(cid, sizeof(cid), "ech-client-%d", (int)getpid());
    snprintf(h->reply_topic, sizeof(h->reply_topic), "%s/replies/test", h->root);
    ec_mqtt_opts o = {.uri = h->uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    assert_int_equal(ec_mqtt_create(&h->client, &o, &err), EC_OK);
    assert_int_equal(ec_mqtt_subscribe(h->client, h->reply_topic, 1, &err), EC_OK);
    if (ec_mqtt_connect(h->client, 5000, &err) != EC_OK)
        fail_msg("test client: %s", err.msg);
}

ec_mqtt_msg *ech_request(ech *h, const void *payload, size_t len, const char *corr, int timeout_ms)
{
    ec_error err = {0};
    char topic[256];
    snprintf(topic, sizeof(topic), "%s/query", h->root);
    ec_mqtt_pubprops pp = {
        .response_topic = h->reply_topic, .corr = corr, .corr_len = strlen(corr)};
    assert_int_equal(ec_mqtt_publish(h->client, topic, payload, len, 1, false, &pp, 5000, &err),
                     EC_OK);
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(h->client, &m, 50) != EC_OK)
            continue;
        if (m->corr && m->corr_len == strlen(corr) && memcmp(m->corr, corr, m->corr_len) == 0)
            return m;
        ec_mqtt_msg_free(m);
    }
    return NULL;
}

int ech_ask(ech *h, const char *prompt, const char *policy, ec_result *out, int timeout_ms)
{
    ec_query q = {0};
    ec_buf b;
    ec_error err = {0};
    q.prompt = (char *)prompt;
    if (policy)
        assert_int_equal(ec_policy_parse(policy, &q.policy), 0);
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&q, &b, &err), EC_OK);
    char corr[40];
    ec_id_new(corr);
    ec_mqtt_msg *m = ech_request(h, b.data, b.len, corr, timeout_ms);
    ec_buf_free(&b);
    if (!m)
        return -1;
    ec_err rc = ec_result_decode(m->payload, m->len, out, &err);
    if (rc)
        fprintf(stderr, "result decode: %s\n", err.msg);
    ec_mqtt_msg_free(m);
    return rc == EC_OK ? 0 : -1;
}

static size_t collect(char *ptr, size_t size, size_t n, void *ud)
{
    return ec_buf_append(ud, ptr, size * n) == EC_OK ? size * n : 0;
}

static size_t on_http_body(char *p, size_t size, size_t n, void *ud)
{
    ech_http_resp *r = ud;
    char *grown = realloc(r->body, r->len + size * n + 1);
    if (!grown)
        return 0;
    r->body = grown;
    memcpy(r->body + r->len, p, size * n);
    r->len += size * n;
    r->body[r->len] = '\0';
    return size * n;
}

ech_http_resp ech_http(int port, const char *method, const char *path)
{
    ech_http_resp r = {0};
    char url[256];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (strcmp(method, "POST") == 0)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x=1");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_http_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    CURLcode rc = curl_easy_perform(c);
    for (int i = 0; i < 60 && rc == CURLE_COULDNT_CONNECT; i++) {
        ec_sleep_ms(50);
        rc = curl_easy_perform(c);
    }
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, url, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    const char *ct = NULL;
    curl_easy_getinfo(c, CURLINFO_CONTENT_TYPE, &ct);
    snprintf(r.ctype, sizeof(r.ctype), "%s", ct ? ct : "");
    curl_easy_cleanup(c);
    if (!r.body)
        r.body = calloc(1, 1);
    return r;
}

static json_t *sim_call(ech *h, const char *path, const char *body)
{
    CURL *c = curl_easy_init();
    char url[256];
    ec_buf b;
    ec_buf_init(&b, 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", h->sim_port, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    struct curl_slist *hd = NULL;
    if (body) {
        hd = curl_slist_append(hd, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_HTTPHEADER, hd);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    }
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(hd);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK)
        fail_msg("sim %s: %s", path, curl_easy_strerror(rc));
    json_t *j = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
    ec_buf_free(&b);
    return j;
}

long ech_sim_requests(ech *h, const char *model)
{
    json_t *j = sim_call(h, "/sim/stats", NULL);
    assert_non_null(j);
    json_t *m = json_object_get(json_object_get(j, "models"), model);
    long n = m ? (long)json_integer_value(json_object_get(m, "requests")) : 0;
    json_decref(j);
    return n;
}

char *ech_sim_last_request(ech *h, const char *model)
{
    json_t *j = sim_call(h, "/sim/stats", NULL);
    assert_non_null(j);
    json_t *m = json_object_get(json_object_get(j, "models"), model);
    const char *s = json_string_value(json_object_get(m, "last_request"));
    char *out = s ? strdup(s) : NULL;
    json_decref(j);
    return out;
}

void ech_sim_fault(ech *h, const char *body)
{
    json_decref(sim_call(h, "/sim/faults", body));
}

void ech_sim_post(ech *h, const char *path, const char *body)
{
    json_decref(sim_call(h, path, body));
}

void ech_sim_serve(ech *h, const char *file, const char *path, int times)
{
    json_t *req = json_pack("{s:s, s:i}", "file", file, "times", times);
    if (path)
        json_object_set_new(req, "path", json_string(path));
    char *body = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    json_t *j = sim_call(h, "/sim/serve", body);
    free(body);
    if (!j || !json_is_integer(json_object_get(j, "status"))) {
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        fail_msg("sim refused to serve %s: %s", file, s ? s : "(no answer)");
    }
    json_decref(j);
}

char *ech_sim_received(ech *h)
{
    json_t *j = sim_call(h, "/sim/received", NULL);
    json_t *reqs = json_object_get(j, "requests");
    if (!json_is_array(reqs))
        fail_msg("sim /sim/received: not in corpus mode?");
    char *s = json_dumps(reqs, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(j);
    return s;
}

long ech_sim_received_on(ech *h, const char *path)
{
    json_t *j = sim_call(h, "/sim/received", NULL);
    json_t *reqs = json_object_get(j, "requests");
    if (!json_is_array(reqs))
        fail_msg("sim /sim/received: not in corpus mode?");
    long n = 0;
    size_t i;
    json_t *r;
    json_array_foreach(reqs, i, r)
    {
        n += strcmp(json_string_value(json_object_get(r, "path")) ?: "", path) == 0;
    }
    json_decref(j);
    return n;
}

char *ech_sql(ech *h, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    char *out = NULL;
    if (sqlite3_open_v2(h->db, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK)
        fail_msg("open %s: %s", h->db, sqlite3_errmsg(db));
    sqlite3_busy_timeout(db, 5000);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("sql %s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW && sqlite3_column_type(st, 0) != SQLITE_NULL)
        out = strdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

long ech_journal_rows(ech *h, int settle_ms)
{
    for (int waited = 0;; waited += 20) {
        uint64_t rows = 0, oldest = 0;
        ec_error err = {0};
        if (ec_journal_peek(h->db, &rows, &oldest, &err) != EC_OK)
            fail_msg("journal beside %s: %s", h->db, err.msg);
        if (rows == 0 || waited >= settle_ms)
            return (long)rows;
        ec_sleep_ms(20);
    }
}

long ech_sql_long(ech *h, const char *sql)
{
    char *s = ech_sql(h, sql);
    long v = s ? strtol(s, NULL, 10) : 0;
    free(s);
    return v;
}

long ech_sql_wait(ech *h, const char *sql, long want)
{
    long n = 0;
    for (int k = 0; k < 100; k++) {
        if ((n = ech_sql_long(h, sql)) >= want)
            break;
        ec_sleep_ms(50);
    }
    return n;
}
