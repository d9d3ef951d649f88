/* What the two null services share: arguments, signals and the MQTT client,
 * set up exactly as the real services set theirs up (same ec_mqtt wrapper,
 * same queue and in-flight limits, same retained status and Last Will), so
 * that the only difference from edgecascade is the missing logic. */
#ifndef BENCH_NULL_H
#define BENCH_NULL_H

#include <stdbool.h>
#include "edgecascade/mqtt.h"

typedef struct bench_null {
    const char *uri;
    const char *root;
    int workers;
    const char *http_url; /* null local: POST each query here (the fair null) */
    const char *body;     /* null local: the request body of that POST */
    ec_mqtt *mqtt;
    char client_id[96];
} bench_null;

/* Parses --broker URI --root TOPIC_ROOT [--workers N] [--http URL --body JSON];
 * exits on a usage error. */
void bench_null_args(bench_null *b, const char *prog, int argc, char **argv);
/* Creates the client (status topic <root>/status/<service>), subscribes to the
 * NULL-terminated filters and connects. Returns 0 on success. */
int bench_null_connect(bench_null *b, const char *service, const char *const *filters);
/* Runs `workers` threads calling handle(b, msg) for every inbound message
 * until SIGTERM/SIGINT, then stops the client. */
void bench_null_run(bench_null *b, void (*handle)(bench_null *b, ec_mqtt_msg *msg));

#endif
