/* The null local service. Plain: an InferRequest's bytes go straight back to
 * its Response Topic with its Correlation Data; no decoding, no HTTP, no model.
 *
 * Fair (--http URL --body JSON): the same, but each message first costs one
 * HTTP POST of the given body to URL through libcurl, on a keep-alive
 * connection (one easy handle per worker thread, options set once), and the
 * response body is what goes back, unparsed. That is the hop every
 * edgecascade-local answer makes to the model server, with none of the
 * service's logic around it (no request decoding, no JSON building or
 * parsing, no curl_easy_reset per call). */
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_null.h"
#include "edgecascade/buf.h"

typedef struct fair_conn {
    CURL *curl;
    struct curl_slist *hdrs;
    ec_buf body;
} fair_conn;

static pthread_key_t g_conn_key;

static void conn_free(void *p)
{
    fair_conn *fc = p;
    if (!fc)
        return;
    curl_easy_cleanup(fc->curl);
    curl_slist_free_all(fc->hdrs);
    ec_buf_free(&fc->body);
    free(fc);
}

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    size_t n = size * nmemb;
    return ec_buf_append(userdata, ptr, n) == EC_OK ? n : 0;
}

/* This worker's handle, created and configured on its first message. */
static fair_conn *conn_get(const bench_null *b)
{
    fair_conn *fc = pthread_getspecific(g_conn_key);
    if (fc)
        return fc;
    fc = calloc(1, sizeof(*fc));
    if (!fc)
        return NULL;
    ec_buf_init(&fc->body, 0);
    fc->curl = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    fc->hdrs = h ? curl_slist_append(h, "Expect:") : NULL;
    if (!fc->curl || !fc->hdrs) {
        curl_slist_free_all(fc->hdrs ? fc->hdrs : h);
        fc->hdrs = NULL;
        conn_free(fc);
        return NULL;
    }
    CURL *c = fc->curl;
    curl_easy_setopt(c, CURLOPT_URL, b->http_url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, fc->hdrs);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, b->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)strlen(b->body));
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &fc->body);
    pthread_setspecific(g_conn_key, fc);
    return fc;
}

static void handle(bench_null *b, ec_mqtt_msg *msg)
{
    ec_error err = {0};
    if (!msg->response_topic)
        return;
    const void *reply = msg->payload;
    size_t reply_len = msg->len;
    if (b->http_url) {
        fair_conn *fc = conn_get(b);
        if (!fc) {
            fprintf(stderr, "null-local: no curl handle\n");
            return;
        }
        ec_buf_reset(&fc->body);
        long status = 0;
        CURLcode cc = curl_easy_perform(fc->curl);
        if (cc == CURLE_OK)
            curl_easy_getinfo(fc->curl, CURLINFO_RESPONSE_CODE, &status);
        if (cc != CURLE_OK || status != 200) {
            /* No answer: the load generator counts the query unanswered. */
            fprintf(stderr, "null-local: POST %s: %s, status %ld\n", b->http_url,
                    curl_easy_strerror(cc), status);
            return;
        }
        reply = fc->body.data;
        reply_len = fc->body.len;
    }
    ec_mqtt_pubprops pp = {.corr = msg->corr, .corr_len = msg->corr_len};
    if (ec_mqtt_publish(b->mqtt, msg->response_topic, reply, reply_len, 1, false, &pp, 10000, &err))
        fprintf(stderr, "null-local: reply: %s\n", err.msg);
}

int main(int argc, char **argv)
{
    bench_null b;
    bench_null_args(&b, "bench-null-local", argc, argv);
    if (b.http_url && (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK ||
                       pthread_key_create(&g_conn_key, conn_free) != 0)) {
        fprintf(stderr, "null-local: cannot initialise libcurl\n");
        return 1;
    }
    char filter[340];
    snprintf(filter, sizeof(filter), "$share/edgecascade-local/%s/infer/local", b.root);
    const char *filters[] = {filter, NULL};
    if (bench_null_connect(&b, "local", filters) != 0)
        return 1;
    bench_null_run(&b, handle);
    if (b.http_url)
        curl_global_cleanup();
    return 0;
}
