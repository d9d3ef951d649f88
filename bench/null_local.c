/* The null local service: an InferRequest's bytes go straight back to its
 * Response Topic with its Correlation Data. No decoding, no HTTP, no model. */
#include <stdio.h>

#include "bench_null.h"

static void handle(bench_null *b, ec_mqtt_msg *msg)
{
    ec_error err = {0};
    if (!msg->response_topic)
        return;
    ec_mqtt_pubprops pp = {.corr = msg->corr, .corr_len = msg->corr_len};
    if (ec_mqtt_publish(b->mqtt, msg->response_topic, msg->payload, msg->len, 1, false, &pp, 10000,
                        &err))
        fprintf(stderr, "null-local: reply: %s\n", err.msg);
}

int main(int argc, char **argv)
{
    bench_null b;
    bench_null_args(&b, "bench-null-local", argc, argv);
    char filter[340];
    snprintf(filter, sizeof(filter), "$share/edgecascade-local/%s/infer/local", b.root);
    const char *filters[] = {filter, NULL};
    if (bench_null_connect(&b, "local", filters) != 0)
        return 1;
    bench_null_run(&b, handle);
    return 0;
}
