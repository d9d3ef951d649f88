/* edgecascade doctor: the troubleshooting section, made executable.
 *
 * Checks, in the order a first-day installation breaks: the configuration,
 * the broker (connect, login, a subscribe/publish probe under the topic
 * root), each service's retained status, the model server of each local tier
 * (reachable, the configured model listed, a one-token completion and its
 * latency), the cloud keys (present; accepted only with --online, which makes
 * one cheap call per cloud tier), the cloud breakers, disk space for the store
 * (the decision log and the offline queue share its file) and the store
 * itself. Each finding is one line, OK / WARN / FAIL, and every non-OK line
 * says how to fix it. Exit 1 when any check FAILs, else 0.
 *
 * A later check that depends on an earlier one (services on the broker) still
 * runs and says why it cannot tell, so one run shows everything wrong. */
#define _GNU_SOURCE /* asprintf */
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/http.h"
#include "edgecascade/journal.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/provider.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"
#include "cmd_doctor.h"

void cli_help_doctor(void)
{
    printf("usage: edgecascade doctor [--online]\n"
           "\n"
           "Checks, in order: the configuration; the MQTT broker (connect, login, a\n"
           "subscribe/publish probe under the topic root); the retained status of\n"
           "edgecascade-router, -local and -relay; each local tier's model server\n"
           "(reachable, the configured model listed, a one-token completion and its\n"
           "latency); the cloud tiers' API keys; the cloud breakers; free disk space for\n"
           "the store; the store itself (schema, offline queue). Prints OK, WARN or FAIL\n"
           "per check with how to fix it. Exit status 1 when any check fails.\n"
           "\n"
           "options:\n"
           "  --online   also try each cloud key with one cheap call (lists the models)\n");
}

void doctor_report(doctor *d, dstate s, const char *check, const char *fix, const char *fmt, ...)
{
    static const char *const label[] = {"OK", "WARN", "FAIL"};
    va_list ap;
    printf("%-5s %-20s ", label[s], check);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    if (s != D_OK && fix)
        printf("      %-20s fix: %s\n", "", fix);
    fflush(stdout);
    if (s == D_OK)
        d->n_ok++;
    else if (s == D_WARN)
        d->n_warn++;
    else
        d->n_fail++;
}

const char *doctor_ago(uint64_t ts_ms, char *buf, size_t n)
{
    uint64_t now = ec_now_ms();
    if (!ts_ms || ts_ms > now + 1000) {
        snprintf(buf, n, "at an unknown time");
        return buf;
    }
    uint64_t s = now > ts_ms ? (now - ts_ms) / 1000 : 0;
    if (s < 120)
        snprintf(buf, n, "%llus ago", (unsigned long long)s);
    else if (s < 7200)
        snprintf(buf, n, "%llum ago", (unsigned long long)(s / 60));
    else
        snprintf(buf, n, "%lluh ago", (unsigned long long)(s / 3600));
    return buf;
}

/* ---- config ---- */

static bool check_config(doctor *d, ec_config *cfg, const cli_ctx *ctx)
{
    ec_error err = {0};
    const char *where = ctx->config_path ? ctx->config_path : "(built-in defaults)";
    if (ec_config_load(cfg, ctx->config_path, &err) != EC_OK ||
        ec_config_validate(cfg, &err) != EC_OK) {
        doctor_report(d, D_FAIL, "config",
                      "correct the named line (edgecascade config --check FILE)", "%s",
                      err.msg[0] ? err.msg : ec_strerror(err.code));
        return false;
    }
    if (ctx->broker) {
        char *b = NULL;
        if (asprintf(&b, "%s%s", strstr(ctx->broker, "://") ? "" : "tcp://", ctx->broker) < 0) {
            doctor_report(d, D_FAIL, "config", NULL, "out of memory");
            return false;
        }
        free(cfg->broker);
        cfg->broker = b;
    }
    char tiers[512] = "";
    size_t used = 0;
    for (size_t i = 0; i < cfg->n_tiers && used < sizeof(tiers); i++)
        used += (size_t)snprintf(tiers + used, sizeof(tiers) - used, "%s%s (%s %s)", i ? ", " : "",
                                 cfg->tiers[i].name, cfg->tiers[i].provider,
                                 cfg->tiers[i].model ? cfg->tiers[i].model : "?");
    doctor_report(d, D_OK, "config", NULL, "%s: topic root %s, tiers %s", where, cfg->topic_root,
                  tiers);
    return true;
}

/* ---- broker ---- */

static bool auth_refused(const char *msg)
{
    /* MQTT v5 CONNACK 134 "Bad user name or password", 135 "Not authorized";
     * v3.1.1 return codes 4 and 5. */
    return strstr(msg, "(code 134)") || strstr(msg, "(code 135)") || strstr(msg, "(code 4)") ||
           strstr(msg, "(code 5)") || strstr(msg, "authori") || strstr(msg, "user name");
}

static void keep_status(doctor *d, const char *prefix, const ec_mqtt_msg *msg)
{
    size_t pl = strlen(prefix);
    if (strncmp(msg->topic, prefix, pl) != 0)
        return;
    const char *tail = msg->topic + pl;
    json_t *doc = json_loadb(msg->payload, msg->len, 0, NULL);
    if (!doc)
        return;
    size_t i = 0;
    while (i < d->n_st && strcmp(d->st[i].tail, tail) != 0)
        i++;
    if (i == d->n_st) {
        if (d->n_st == DOCTOR_MAX_RETAINED) {
            json_decref(doc);
            return;
        }
        snprintf(d->st[i].tail, sizeof(d->st[i].tail), "%s", tail);
        d->st[i].doc = NULL;
        d->n_st++;
    }
    json_decref(d->st[i].doc);
    d->st[i].doc = doc;
}

/* Gathers the retained messages that arrive within ms. */
static void collect_retained(doctor *d, ec_mqtt *m, const char *prefix, int ms)
{
    uint64_t deadline = ec_mono_us() + (uint64_t)ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 50) != EC_OK)
            continue;
        if (msg->retained)
            keep_status(d, prefix, msg);
        ec_mqtt_msg_free(msg);
    }
}

static void check_broker(doctor *d)
{
    ec_config *cfg = d->cfg;
    ec_mqtt *m = NULL;
    ec_error err = {0};
    bool connected = false;
    char all[320], status[320], prefix[320];
    snprintf(all, sizeof(all), "%s/#", cfg->topic_root);
    snprintf(status, sizeof(status), "%s/status/#", cfg->topic_root);
    snprintf(prefix, sizeof(prefix), "%s/status/", cfg->topic_root);

    /* The probe is the subscription itself: ec_mqtt_connect returns only once
     * the broker has granted it, and a refusal (ACL) leaves us connected but
     * unsubscribed. The retained statuses arrive with the grant. */
    if (cli_mqtt_open(cfg, "doctor", all, 5000, &m, &connected, &err) == EC_OK) {
        collect_retained(d, m, prefix, 700);
        ec_mqtt_destroy(m);
        d->broker_ok = true;
        doctor_report(d, D_OK, "broker", NULL, "%s: connected%s%s, subscribed to %s", cfg->broker,
                      cfg->username && *cfg->username ? " as " : "",
                      cfg->username && *cfg->username ? cfg->username : "", all);
        return;
    }
    if (!connected) {
        if (auth_refused(err.msg))
            doctor_report(d, D_FAIL, "broker",
                          "check mqtt.username and mqtt.password / mqtt.password_file against the "
                          "broker's password file (deploy/mosquitto/make-users.sh)",
                          "%s refused the login: %s", cfg->broker, err.msg);
        else
            doctor_report(
                d, D_FAIL, "broker",
                "start the broker (systemctl start mosquitto) or correct mqtt.broker; check "
                "the port, the firewall and, for ssl://, mqtt.ca_file",
                "%s", err.msg);
        return;
    }
    /* Logged in, but <root>/# refused: an operator account may read only the
     * status topics, which is all the next checks need. */
    ec_error_clear(&err);
    if (cli_mqtt_open(cfg, "doctor", status, 5000, &m, &connected, &err) == EC_OK) {
        collect_retained(d, m, prefix, 700);
        ec_mqtt_destroy(m);
        d->broker_ok = true;
        doctor_report(
            d, D_WARN, "broker",
            "fine for an operator account; to see everything, let this user read <root>/# in "
            "the broker's ACL",
            "%s: connected, but the ACL refused a subscription to %s; %s allowed", cfg->broker, all,
            status);
        return;
    }
    doctor_report(
        d, D_FAIL, "broker",
        "let this user read <root>/status/# in the broker's ACL, and check that topic_root "
        "matches the services' config",
        "%s: connected, but the ACL refused subscriptions to %s and %s", cfg->broker, all, status);
}

static json_t *status_doc(const doctor *d, const char *tail)
{
    for (size_t i = 0; i < d->n_st; i++)
        if (strcmp(d->st[i].tail, tail) == 0)
            return d->st[i].doc;
    return NULL;
}

/* ---- services ---- */

/* What an online service says is wrong in its status: a refused reload, a
 * local model that vanished from its server. */
static void check_reported(doctor *d, const char *service, json_t *doc)
{
    char check[48], fix[200], buf[32];
    const char *cerr = json_string_value(json_object_get(doc, "config_error"));
    if (cerr) {
        uint64_t cts = (uint64_t)json_integer_value(json_object_get(doc, "config_ts_ms"));
        snprintf(check, sizeof(check), "reload %s", service);
        snprintf(fix, sizeof(fix),
                 "correct the file and reload again (systemctl reload edgecascade-%s), or "
                 "restart it for keys that need a restart",
                 service);
        doctor_report(d, D_WARN, check, fix,
                      "last reload refused: %s (still running the config loaded %s)", cerr,
                      doctor_ago(cts, buf, sizeof(buf)));
    }
    json_t *models = json_object_get(doc, "models");
    for (size_t i = 0; i < json_array_size(models); i++) {
        json_t *m = json_array_get(models, i);
        const char *tier = json_string_value(json_object_get(m, "tier"));
        const char *model = json_string_value(json_object_get(m, "model"));
        const char *st = json_string_value(json_object_get(m, "state"));
        const char *e = json_string_value(json_object_get(m, "error"));
        /* A fixed-model tier is listed only for its logprobs, which the
         * "logprobs" check below tries for itself. */
        int ti = tier ? ec_config_tier_index(d->cfg, tier) : -1;
        if (ti >= 0 && !ec_tier_model_auto(&d->cfg->tiers[ti]))
            continue;
        snprintf(check, sizeof(check), "model auto %s", tier ? tier : "?");
        if (st && strcmp(st, "serving") == 0)
            doctor_report(d, D_OK, check, NULL, "edgecascade-local serves '%s'",
                          model ? model : "?");
        else
            doctor_report(d, D_FAIL, check,
                          "serve the model again, or reload edgecascade-local (systemctl reload "
                          "edgecascade-local) to use one the server lists",
                          "%s: %s", st ? st : "unknown", e ? e : "no model found");
    }
}

static void check_services(doctor *d)
{
    static const char *const names[] = {"router", "local", "relay"};
    bool any_local = false, any_cloud = false;
    for (size_t i = 0; i < d->cfg->n_tiers; i++) {
        if (d->cfg->tiers[i].local)
            any_local = true;
        else
            any_cloud = true;
    }
    for (size_t s = 0; s < 3; s++) {
        char check[32], fix[256], buf[32];
        snprintf(check, sizeof(check), "service %s", names[s]);
        /* A service with nothing to do (no local or no cloud tier) is optional. */
        bool needed = s == 0 || (s == 1 && any_local) || (s == 2 && any_cloud);
        dstate bad = needed ? D_FAIL : D_WARN;
        if (!d->broker_ok) {
            /* Not a failure of its own: the broker's is the cause. */
            doctor_report(d, D_WARN, check, "fix the broker first",
                          "unknown: the broker could not be asked");
            continue;
        }
        json_t *doc = status_doc(d, names[s]);
        const char *state = doc ? json_string_value(json_object_get(doc, "state")) : NULL;
        uint64_t ts = doc ? (uint64_t)json_integer_value(json_object_get(doc, "ts_ms")) : 0;
        snprintf(fix, sizeof(fix),
                 "start edgecascade-%s with this config (systemctl start edgecascade-%s) and "
                 "read its log (journalctl -u edgecascade-%s)",
                 names[s], names[s], names[s]);
        if (!doc) {
            doctor_report(
                d, bad, check, fix,
                "unknown: no status on %s/status/%s (never started against this broker and "
                "topic root?)",
                d->cfg->topic_root, names[s]);
        } else if (state && strcmp(state, "online") == 0) {
            doctor_report(d, D_OK, check, NULL, "online (pid %lld, since %s)",
                          (long long)json_integer_value(json_object_get(doc, "pid")),
                          doctor_ago(ts, buf, sizeof(buf)));
            check_reported(d, names[s], doc);
        } else {
            doctor_report(d, bad, check, fix, "%s since %s", state ? state : "no state",
                          doctor_ago(ts, buf, sizeof(buf)));
        }
    }
}

/* ---- breakers ---- */

static void check_breakers(doctor *d)
{
    for (size_t i = 0; i < d->cfg->n_tiers; i++) {
        const ec_tier_cfg *t = &d->cfg->tiers[i];
        char check[64], tail[160], buf[32], fix[400];
        if (t->local)
            continue;
        snprintf(check, sizeof(check), "breaker %s", t->name);
        if (!d->broker_ok) {
            doctor_report(d, D_WARN, check, "fix the broker first",
                          "unknown: the broker could not be "
                          "asked");
            continue;
        }
        snprintf(tail, sizeof(tail), "breaker/%s", t->name);
        json_t *doc = status_doc(d, tail);
        const char *state = doc ? json_string_value(json_object_get(doc, "state")) : NULL;
        const char *reason = doc ? json_string_value(json_object_get(doc, "reason")) : NULL;
        uint64_t since = doc ? (uint64_t)json_integer_value(json_object_get(doc, "since_ms")) : 0;
        if (!state) {
            doctor_report(d, D_WARN, check, "start edgecascade-relay (it publishes every breaker)",
                          "no state on %s/status/%s", d->cfg->topic_root, tail);
        } else if (strcmp(state, "closed") == 0) {
            doctor_report(d, D_OK, check, NULL, "closed");
        } else {
            snprintf(fix, sizeof(fix),
                     "check the uplink and the provider's status; escalations are queued or "
                     "served degraded meanwhile%s%s%s",
                     strcmp(state, "forced_open") == 0 || strcmp(state, "disabled") == 0
                         ? "; an operator set it: mosquitto_pub -t "
                         : "",
                     strcmp(state, "forced_open") == 0 || strcmp(state, "disabled") == 0
                         ? d->cfg->topic_root
                         : "",
                     strcmp(state, "forced_open") == 0 || strcmp(state, "disabled") == 0
                         ? "/cmd/breaker/<tier> -m auto"
                         : "");
            doctor_report(d, D_WARN, check, fix, "%s since %s%s%s", state,
                          doctor_ago(since, buf, sizeof(buf)), reason && *reason ? ": " : "",
                          reason ? reason : "");
        }
    }
}

/* ---- disk and store ---- */

static void check_disk(doctor *d)
{
    const char *path = d->cfg->db_path;
    char *copy = strdup(path ? path : "");
    char *dir = copy ? dirname(copy) : NULL;
    struct statvfs vs;
    if (!dir || statvfs(dir, &vs) != 0) {
        doctor_report(d, D_FAIL, "disk",
                      "create the directory and give the services' user write access",
                      "cannot examine %s (the directory of store.path %s)", dir ? dir : "?", path);
        free(copy);
        return;
    }
    double free_b = (double)vs.f_bavail * (double)vs.f_frsize;
    double total = (double)vs.f_blocks * (double)vs.f_frsize;
    double pct = total > 0 ? 100.0 * free_b / total : 0;
    double gib = free_b / (1024.0 * 1024.0 * 1024.0);
    if (free_b < DOCTOR_MIN_FREE_BYTES || pct < DOCTOR_MIN_FREE_PCT)
        doctor_report(d, D_WARN, "disk",
                      "free space (old logs, images), or move store.path to a larger filesystem; a "
                      "full disk stops decisions and the offline queue from being written",
                      "%s: %.2f GiB free (%.1f %%) for the store and the offline queue", dir, gib,
                      pct);
    else
        doctor_report(d, D_OK, "disk", NULL, "%s: %.1f GiB free (%.1f %%)", dir, gib, pct);
    free(copy);
}

static void check_store(doctor *d)
{
    const char *path = d->cfg->db_path;
    struct stat sb;
    ec_store *s = NULL;
    ec_error err = {0};
    ec_store_info info;
    char buf[32];
    if (!path || stat(path, &sb) != 0) {
        doctor_report(d, D_FAIL, "store",
                      "start edgecascade-router (it creates the file), or set store.path to the "
                      "router's",
                      "no decision log at %s", path ? path : "(none)");
        return;
    }
    if (ec_store_open(&s, path, true, &err) != EC_OK ||
        ec_store_info_read(s, &info, &err) != EC_OK) {
        doctor_report(d, D_FAIL, "store",
                      "check the file's permissions, or restore it from a backup",
                      "cannot read %s: %s", path, err.msg);
        ec_store_close(s);
        return;
    }
    ec_store_close(s);
    /* Queries the router took and has not decided: normal for a moment; old
     * ones mean it stopped mid-way (it re-runs them when it starts). */
    uint64_t waiting = 0, oldest_ms = 0;
    if (ec_journal_peek(path, &waiting, &oldest_ms, &err) != EC_OK)
        doctor_report(d, D_WARN, "journal", "check the file's permissions", "%s", err.msg);
    else if (waiting > 0 && oldest_ms + 60000 < ec_now_ms())
        doctor_report(
            d, D_WARN, "journal", "edgecascade-router re-runs them when it starts: is it running?",
            "%llu quer%s received and not yet decided, the oldest %s", (unsigned long long)waiting,
            waiting == 1 ? "y" : "ies", doctor_ago(oldest_ms, buf, sizeof(buf)));
    if (info.schema_version != info.schema_version_build)
        doctor_report(d, D_WARN, "store",
                      "start this version's edgecascade-router once (it migrates)",
                      "%s: schema %d, this build writes %d", path, info.schema_version,
                      info.schema_version_build);
    else if (info.outbox > 0)
        doctor_report(d, D_WARN, "store",
                      "they go out when the cloud answers again (see the breakers)",
                      "%s: %llu escalation%s waiting in the offline queue", path,
                      (unsigned long long)info.outbox, info.outbox == 1 ? "" : "s");
    else
        doctor_report(d, D_OK, "store", NULL,
                      "%s: schema %d, %llu decisions (last %s), offline queue empty", path,
                      info.schema_version, (unsigned long long)info.decisions,
                      info.last_ts_ms ? doctor_ago(info.last_ts_ms, buf, sizeof(buf)) : "none yet");
}

int cli_cmd_doctor(cli_ctx *ctx, int argc, char **argv)
{
    doctor d;
    memset(&d, 0, sizeof(d));
    cli_args a = {.cmd = "doctor", .argc = argc, .argv = argv};
    const char *arg;
    bool is_opt;
    while (cli_next(&a, &arg, &is_opt)) {
        if (!is_opt)
            return cli_usage_error("doctor", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--online") == 0)
            d.online = true;
        else
            return cli_usage_error("doctor", "unknown option '%s'", arg);
    }

    ec_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    d.cfg = &cfg;
    if (!check_config(&d, &cfg, ctx))
        goto done;
    check_broker(&d);
    check_services(&d);

    ec_http *http = NULL;
    if (ec_http_global_init(true) != EC_OK || ec_http_create(&http) != EC_OK) {
        doctor_report(&d, D_FAIL, "http", NULL, "cannot start the HTTP client (libcurl)");
    } else {
        for (size_t i = 0; i < cfg.n_tiers; i++) {
            const ec_tier_cfg *t = &cfg.tiers[i];
            const ec_provider *p = ec_provider_find(t->provider);
            if (!t->local || !p)
                continue;
            char picked[128] = "";
            if (doctor_check_models(&d, http, t, p, picked, sizeof(picked))) {
                ec_tier_cfg tc = *t;
                if (picked[0])
                    tc.model = picked; /* model: auto: try the one it would use */
                doctor_check_completion(&d, http, &tc, p);
            }
        }
        for (size_t i = 0; i < cfg.n_tiers; i++) {
            const ec_tier_cfg *t = &cfg.tiers[i];
            const ec_provider *p = ec_provider_find(t->provider);
            if (!t->local && p)
                doctor_check_cloud_key(&d, http, t, p);
        }
    }
    ec_http_destroy(http);
    check_breakers(&d);
    check_disk(&d);
    check_store(&d);

done:
    printf("\n%d ok, %d warning%s, %d failure%s\n", d.n_ok, d.n_warn, d.n_warn == 1 ? "" : "s",
           d.n_fail, d.n_fail == 1 ? "" : "s");
    for (size_t i = 0; i < d.n_st; i++)
        json_decref(d.st[i].doc);
    ec_config_free(&cfg);
    return d.n_fail ? CLI_EXIT_FAIL : CLI_EXIT_OK;
}
