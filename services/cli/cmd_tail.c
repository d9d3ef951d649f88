/* edgecascade tail: follows the cascade's decisions live.
 *
 * Subscribes to <root>/result/# (every result the router publishes, whatever
 * the caller's Response Topic) with a clean session, so nothing is replayed
 * from an earlier run and nothing is kept for us after we leave: tail shows
 * what happens from now on; the decision log has the history. Results arrive
 * in the encoding their query used (msgpack or JSON); both are decoded, and
 * --json prints every one in the JSON form of the wire spec, one per line.
 * Each line is flushed at once, so `tail | grep` sees it live. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/buf.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

void cli_help_tail(void)
{
    printf("usage: edgecascade tail [--json] [--source S] [--count N]\n"
           "\n"
           "Follows the router's decisions live (MQTT <root>/result/#) and prints one\n"
           "line per result: time received (UTC), query id, source (claimed), asker\n"
           "(the broker-verified user of <root>/query/<user>), tier, model,\n"
           "confidence/threshold, escalated, degraded, revision, cost, latency and the\n"
           "reason (or the error). Runs until Ctrl-C (SIGINT) or SIGTERM.\n"
           "\n"
           "options:\n"
           "  --json        print each result as one JSON object per line\n"
           "  --source S    only results of queries whose source is S\n"
           "  --count N     stop after N results\n");
}

static void utc_now(char *buf, size_t n)
{
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    size_t k = strftime(buf, n, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + k, n - k, ".%03ldZ", ts.tv_nsec / 1000000L);
}

static void print_line(const ec_result *r)
{
    char when[40], conf[32];
    utc_now(when, sizeof(when));
    if (r->confidence >= 0)
        snprintf(conf, sizeof(conf), "%.2f/%.2f", r->confidence, r->threshold);
    else
        snprintf(conf, sizeof(conf), "-/%.2f", r->threshold);
    printf("%s  %s  source=%s  asker=%s  tier=%s  model=%s  conf=%s  escalated=%s  degraded=%s"
           "  rev=%u  cost=$%.6f  latency=%.1fms  ",
           when, r->id ? r->id : "-", r->source && *r->source ? r->source : "-",
           r->asker && *r->asker ? r->asker : "-", r->tier ? r->tier : "-",
           r->model ? r->model : "-", conf, r->escalated ? "yes" : "no", r->degraded ? "yes" : "no",
           r->revision ? r->revision : 1, r->cost_usd, r->latency_ms);
    if (r->error.code)
        printf("error %s: %s\n", r->error.code, r->error.message ? r->error.message : "");
    else
        printf("%s\n", r->reason ? r->reason : "");
}

/* 1 printed, 0 filtered out, -1 undecodable. */
static int show(const ec_mqtt_msg *msg, bool json, const char *source)
{
    ec_result r;
    ec_error err = {0};
    ec_err rc = ec_payload_encoding(msg->payload, msg->len) == EC_ENC_JSON
                    ? ec_result_decode_json(msg->payload, msg->len, &r, &err)
                    : ec_result_decode(msg->payload, msg->len, &r, &err);
    if (rc != EC_OK) {
        fprintf(stderr, "edgecascade tail: %s: not a result (%s)\n", msg->topic, err.msg);
        return -1;
    }
    int shown = 0;
    if (!source || (r.source && strcmp(r.source, source) == 0)) {
        shown = 1;
        if (json) {
            ec_buf b;
            ec_buf_init(&b, 0);
            if (ec_result_encode_json(&r, &b, &err) == EC_OK) {
                fwrite(b.data, 1, b.len, stdout);
                putchar('\n');
            } else {
                fprintf(stderr, "edgecascade tail: %s: %s\n", msg->topic, err.msg);
                shown = -1;
            }
            ec_buf_free(&b);
        } else {
            print_line(&r);
        }
        fflush(stdout);
    }
    ec_result_clear(&r);
    return shown;
}

int cli_cmd_tail(cli_ctx *ctx, int argc, char **argv)
{
    bool json = false;
    const char *source = NULL;
    long count = 0;
    cli_args a = {.cmd = "tail", .argc = argc, .argv = argv};
    const char *arg;
    bool is_opt;
    while (cli_next(&a, &arg, &is_opt)) {
        const char *v = NULL;
        int m;
        if (!is_opt)
            return cli_usage_error("tail", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--json") == 0) {
            json = true;
        } else if ((m = cli_opt_value(&a, arg, "--source", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            source = v;
        } else if ((m = cli_opt_value(&a, arg, "--count", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_long(v, 1, 1000000000L, &count))
                return cli_usage_error("tail", "--count: expected a positive number, got '%s'", v);
        } else {
            return cli_usage_error("tail", "unknown option '%s'", arg);
        }
    }

    /* No SA_RESTART: the wait in ec_mqtt_next is short anyway, and the flag
     * is checked between waits. */
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    char filter[320];
    snprintf(filter, sizeof(filter), "%s/result/#", ctx->cfg.topic_root);
    ec_mqtt *m = NULL;
    ec_error err = {0};
    if (cli_mqtt_open(&ctx->cfg, "tail", filter, 5000, &m, NULL, &err) != EC_OK) {
        fprintf(stderr, "edgecascade tail: %s\n", err.msg);
        return CLI_EXIT_FAIL;
    }
    /* On stderr, so stdout stays pure results; scripts (and the tests) wait
     * for this line before sending queries. */
    fprintf(stderr, "edgecascade tail: following %s on %s\n", filter, ctx->cfg.broker);

    long shown = 0;
    while (!g_stop && (count == 0 || shown < count)) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(m, &msg, 200);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        if (show(msg, json, source) == 1)
            shown++;
        ec_mqtt_msg_free(msg);
    }
    ec_mqtt_destroy(m);
    return CLI_EXIT_OK;
}
