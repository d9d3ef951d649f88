/* edgecascade status: what the services and the cloud breakers say about
 * themselves, read from their retained messages under <root>/status/, plus
 * the offline queue's depth from the decision log when it is readable here.
 *
 * A service that stopped cleanly or lost its connection shows "offline" (its
 * Last Will); one never started on this broker does not show at all, which is
 * reported as "unknown". */
#include <jansson.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/util.h"

#define STATUS_MAX 32

typedef struct entry {
    char topic_tail[160]; /* after <root>/status/ */
    json_t *doc;
} entry;

void cli_help_status(void)
{
    printf("usage: edgecascade status [--json] [--wait-ms N]\n"
           "\n"
           "Shows whether edgecascade-router, -local and -relay are online, the state of\n"
           "each cloud tier's circuit breaker (closed, open, half_open, forced_open,\n"
           "disabled) and how many escalations wait in the offline queue.\n"
           "\n"
           "options:\n"
           "  --json        print one JSON object\n"
           "  --wait-ms N   how long to collect retained messages (default 800)\n");
}

static const char *age(uint64_t ts_ms, char *buf, size_t n)
{
    uint64_t now = ec_now_ms();
    if (!ts_ms || ts_ms > now) {
        snprintf(buf, n, "-");
        return buf;
    }
    uint64_t s = (now - ts_ms) / 1000;
    if (s < 120)
        snprintf(buf, n, "%llus ago", (unsigned long long)s);
    else if (s < 7200)
        snprintf(buf, n, "%llum ago", (unsigned long long)(s / 60));
    else
        snprintf(buf, n, "%lluh ago", (unsigned long long)(s / 3600));
    return buf;
}

static long queue_depth(const char *db_path)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    long n = -1;
    if (access(db_path, R_OK) != 0)
        return -1;
    if (sqlite3_open_v2(db_path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(db, "SELECT count(*) FROM outbox", -1, &st, NULL) == SQLITE_OK &&
        sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return n;
}

int cli_cmd_status(cli_ctx *ctx, int argc, char **argv)
{
    bool json_out = false;
    long wait_ms = 800;
    cli_args a = {.cmd = "status", .argc = argc, .argv = argv};
    const char *arg;
    bool is_opt;
    while (cli_next(&a, &arg, &is_opt)) {
        const char *v = NULL;
        int m;
        if (!is_opt)
            return cli_usage_error("status", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--json") == 0) {
            json_out = true;
        } else if ((m = cli_opt_value(&a, arg, "--wait-ms", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_long(v, 50, 60000, &wait_ms))
                return cli_usage_error("status", "--wait-ms: expected 50..60000, got '%s'", v);
        } else {
            return cli_usage_error("status", "unknown option '%s'", arg);
        }
    }

    char cid[64], filter[310], prefix[300];
    snprintf(cid, sizeof(cid), "edgecascade-cli-status-%d", (int)getpid());
    snprintf(prefix, sizeof(prefix), "%s/status/", ctx->cfg.topic_root);
    snprintf(filter, sizeof(filter), "%s#", prefix);
    ec_mqtt *m = NULL;
    ec_error err = {0};
    ec_mqtt_opts o = {.uri = ctx->cfg.broker,
                      .client_id = cid,
                      .username = ctx->cfg.username,
                      .password = ctx->cfg.password,
                      .clean_start = true,
                      .session_expiry_s = 0};
    if (ec_mqtt_create(&m, &o, &err) || ec_mqtt_subscribe(m, filter, 1, &err) ||
        ec_mqtt_connect(m, 5000, &err)) {
        fprintf(stderr, "edgecascade status: %s\n", err.msg);
        ec_mqtt_destroy(m);
        return CLI_EXIT_FAIL;
    }
    entry entries[STATUS_MAX];
    size_t n = 0;
    uint64_t deadline = ec_mono_us() + (uint64_t)wait_ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 50) != EC_OK)
            continue;
        json_t *doc = json_loadb(msg->payload, msg->len, 0, NULL);
        const char *tail = msg->topic + strlen(prefix);
        if (doc && strncmp(msg->topic, prefix, strlen(prefix)) == 0) {
            size_t i = 0;
            while (i < n && strcmp(entries[i].topic_tail, tail) != 0)
                i++;
            if (i == n && n < STATUS_MAX) {
                snprintf(entries[n].topic_tail, sizeof(entries[n].topic_tail), "%s", tail);
                entries[n++].doc = NULL;
            }
            if (i < n) {
                json_decref(entries[i].doc);
                entries[i].doc = doc;
                doc = NULL;
            }
        }
        json_decref(doc);
        ec_mqtt_msg_free(msg);
    }
    ec_mqtt_destroy(m);
    long depth = queue_depth(ctx->cfg.db_path);

    static const char *const services[] = {"router", "local", "relay"};
    int rc = CLI_EXIT_OK;
    if (json_out) {
        json_t *out = json_object(), *svc = json_object(), *brk = json_object();
        for (size_t s = 0; s < 3; s++)
            json_object_set_new(svc, services[s], json_string("unknown"));
        for (size_t i = 0; i < n; i++) {
            const char *t = entries[i].topic_tail;
            if (strncmp(t, "breaker/", 8) == 0)
                json_object_set(brk, t + 8, entries[i].doc);
            else if (strcmp(t, "budget") == 0) /* the router's cloud spend, not a service */
                json_object_set(out, "budget", entries[i].doc);
            else
                json_object_set(svc, t, entries[i].doc);
        }
        json_object_set_new(out, "services", svc);
        json_object_set_new(out, "breakers", brk);
        json_object_set_new(out, "queue_depth", depth >= 0 ? json_integer(depth) : json_null());
        char *s = json_dumps(out, JSON_COMPACT);
        if (s)
            puts(s);
        free(s);
        json_decref(out);
    } else {
        char buf[32];
        printf("broker   %s   topic root %s\n", ctx->cfg.broker, ctx->cfg.topic_root);
        printf("services\n");
        for (size_t s = 0; s < 3; s++) {
            json_t *doc = NULL;
            for (size_t i = 0; i < n; i++)
                if (strcmp(entries[i].topic_tail, services[s]) == 0)
                    doc = entries[i].doc;
            const char *state = doc ? json_string_value(json_object_get(doc, "state")) : NULL;
            printf("  %-8s %-8s %s\n", services[s], state ? state : "unknown",
                   doc ? age((uint64_t)json_integer_value(json_object_get(doc, "ts_ms")), buf,
                             sizeof(buf))
                       : "(no status on the broker)");
            if (!state || strcmp(state, "online") != 0)
                rc = CLI_EXIT_FAIL;
        }
        printf("breakers\n");
        bool any = false;
        for (size_t i = 0; i < n; i++) {
            if (strncmp(entries[i].topic_tail, "breaker/", 8) != 0)
                continue;
            json_t *d = entries[i].doc;
            any = true;
            printf(
                "  %-12s %-11s since %-9s %s\n", entries[i].topic_tail + 8,
                json_string_value(json_object_get(d, "state")) ?: "?",
                age((uint64_t)json_integer_value(json_object_get(d, "since_ms")), buf, sizeof(buf)),
                json_string_value(json_object_get(d, "reason")) ?: "");
        }
        if (!any)
            printf("  (none reported: is edgecascade-relay running?)\n");
        if (depth >= 0)
            printf("offline queue  %ld escalation%s waiting\n", depth, depth == 1 ? "" : "s");
        for (size_t i = 0; i < n; i++) {
            json_t *d = entries[i].doc;
            if (strcmp(entries[i].topic_tail, "budget") != 0)
                continue;
            printf("cloud budget   %s: %.4f USD today (cap %g), %.4f USD this month (cap %g)\n",
                   json_string_value(json_object_get(d, "state")) ?: "?",
                   json_number_value(json_object_get(d, "day_usd")),
                   json_number_value(json_object_get(d, "daily_cap_usd")),
                   json_number_value(json_object_get(d, "month_usd")),
                   json_number_value(json_object_get(d, "monthly_cap_usd")));
        }
    }
    for (size_t i = 0; i < n; i++)
        json_decref(entries[i].doc);
    return rc;
}
