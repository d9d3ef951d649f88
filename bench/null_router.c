/* The null router: the router's two MQTT hops with no logic at all.
 *
 * A query on <root>/query is forwarded byte for byte to <root>/infer/local,
 * with the null router's reply topic as Response Topic; a reply is forwarded
 * byte for byte to the client's Response Topic with the client's Correlation
 * Data. No decoding, no gate, no pending table, no decision log: the client's
 * Response Topic and Correlation Data travel inside the hop's Correlation Data
 * ([1 byte corr length][corr][response topic]) so nothing is kept between hops. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_null.h"

static char g_reply_topic[300];
static char g_infer_topic[300];

static void handle(bench_null *b, ec_mqtt_msg *msg)
{
    ec_error err = {0};
    if (strcmp(msg->topic, g_reply_topic) == 0) {
        const unsigned char *c = msg->corr;
        if (!c || msg->corr_len < 1 || (size_t)c[0] + 1 > msg->corr_len)
            return;
        size_t clen = c[0];
        char topic[300];
        size_t tlen = msg->corr_len - 1 - clen;
        if (tlen == 0 || tlen >= sizeof(topic))
            return;
        memcpy(topic, c + 1 + clen, tlen);
        topic[tlen] = '\0';
        ec_mqtt_pubprops pp = {.corr = c + 1, .corr_len = clen};
        if (ec_mqtt_publish(b->mqtt, topic, msg->payload, msg->len, 1, false, &pp, 10000, &err))
            fprintf(stderr, "null-router: result: %s\n", err.msg);
        return;
    }
    if (!msg->response_topic || msg->corr_len > 255)
        return;
    unsigned char corr[600];
    size_t tlen = strlen(msg->response_topic);
    if (1 + msg->corr_len + tlen > sizeof(corr))
        return;
    corr[0] = (unsigned char)msg->corr_len;
    if (msg->corr_len)
        memcpy(corr + 1, msg->corr, msg->corr_len);
    memcpy(corr + 1 + msg->corr_len, msg->response_topic, tlen);
    ec_mqtt_pubprops pp = {
        .response_topic = g_reply_topic, .corr = corr, .corr_len = 1 + msg->corr_len + tlen};
    if (ec_mqtt_publish(b->mqtt, g_infer_topic, msg->payload, msg->len, 1, false, &pp, 5000, &err))
        fprintf(stderr, "null-router: forward: %s\n", err.msg);
}

int main(int argc, char **argv)
{
    bench_null b;
    bench_null_args(&b, "bench-null-router", argc, argv);
    char query_filter[340];
    snprintf(query_filter, sizeof(query_filter), "$share/edgecascade-router/%s/query", b.root);
    snprintf(g_infer_topic, sizeof(g_infer_topic), "%s/infer/local", b.root);
    snprintf(g_reply_topic, sizeof(g_reply_topic), "%s/reply/router/bench-null-%d", b.root,
             (int)getpid());
    const char *filters[] = {query_filter, g_reply_topic, NULL};
    if (bench_null_connect(&b, "router", filters) != 0)
        return 1;
    bench_null_run(&b, handle);
    return 0;
}
