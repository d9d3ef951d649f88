#include "bench_null.h"

#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void bench_null_args(bench_null *b, const char *prog, int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},  {"root", required_argument, NULL, 'r'},
        {"workers", required_argument, NULL, 'w'}, {"http", required_argument, NULL, 'h'},
        {"body", required_argument, NULL, 'B'},    {NULL, 0, NULL, 0},
    };
    memset(b, 0, sizeof(*b));
    b->workers = 2;
    int c;
    while ((c = getopt_long(argc, argv, "b:r:w:h:B:", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            b->uri = optarg;
            break;
        case 'r':
            b->root = optarg;
            break;
        case 'w':
            b->workers = atoi(optarg);
            break;
        case 'h':
            b->http_url = optarg;
            break;
        case 'B':
            b->body = optarg;
            break;
        default:
            goto usage;
        }
    }
    if (!b->uri || !b->root || b->workers < 1 || b->workers > 64 || (!b->http_url != !b->body))
        goto usage;
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    return;
usage:
    fprintf(stderr,
            "usage: %s --broker URI --root TOPIC_ROOT [--workers N] [--http URL --body JSON]\n",
            prog);
    exit(2);
}

int bench_null_connect(bench_null *b, const char *service, const char *const *filters)
{
    ec_error err = {0};
    char status_topic[300], online[200], offline[200];
    snprintf(b->client_id, sizeof(b->client_id), "bench-null-%s-%d", service, (int)getpid());
    snprintf(status_topic, sizeof(status_topic), "%s/status/%s", b->root, service);
    snprintf(online, sizeof(online), "{\"service\":\"%s\",\"state\":\"online\",\"pid\":%d}",
             service, (int)getpid());
    snprintf(offline, sizeof(offline), "{\"service\":\"%s\",\"state\":\"offline\",\"pid\":%d}",
             service, (int)getpid());
    /* The services' defaults (mqtt.queue_size 4096, mqtt.max_inflight 256). */
    ec_mqtt_opts o = {
        .uri = b->uri,
        .client_id = b->client_id,
        .queue_cap = 4096,
        .max_inflight = 256,
        .session_expiry_s = 300,
        .status_topic = status_topic,
        .status_online = online,
        .status_offline = offline,
    };
    if (ec_mqtt_create(&b->mqtt, &o, &err) != EC_OK)
        goto fail;
    for (size_t i = 0; filters[i]; i++) {
        if (ec_mqtt_subscribe(b->mqtt, filters[i], 1, &err) != EC_OK)
            goto fail;
    }
    if (ec_mqtt_connect(b->mqtt, 5000, &err) != EC_OK)
        goto fail;
    return 0;
fail:
    fprintf(stderr, "null-%s: %s\n", service, err.msg);
    return -1;
}

typedef struct worker_arg {
    bench_null *b;
    void (*handle)(bench_null *b, ec_mqtt_msg *msg);
} worker_arg;

static void *worker(void *arg)
{
    worker_arg *w = arg;
    while (true) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(w->b->mqtt, &msg, 200);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        w->handle(w->b, msg);
        ec_mqtt_msg_free(msg);
    }
    return NULL;
}

void bench_null_run(bench_null *b, void (*handle)(bench_null *b, ec_mqtt_msg *msg))
{
    pthread_t th[64];
    worker_arg w = {.b = b, .handle = handle};
    int n = 0;
    for (; n < b->workers; n++) {
        if (pthread_create(&th[n], NULL, worker, &w) != 0)
            break;
    }
    while (!g_stop)
        ec_sleep_ms(100);
    ec_mqtt_stop(b->mqtt); /* closes the queue: workers drain and exit */
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    ec_mqtt_destroy(b->mqtt);
}
