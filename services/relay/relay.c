#include "relay.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "breaker.h"
#include "edgecascade/log.h"
#include "edgecascade/util.h"

struct ec_relay {
    ec_service *svc;
    pthread_mutex_t lock;
    ec_breaker breakers[EC_MAX_TIERS];
    uint64_t published[EC_MAX_TIERS]; /* transitions already announced */
    char cmd_filter[300];
    const char *filters[2];
};

/* Announces a breaker's state (retained). Called without the lock, with a
 * snapshot, so a slow broker never holds up the other workers' admissions. */
static void publish_state(ec_relay *r, int ti, const ec_breaker *snap)
{
    const ec_tier_cfg *t = &r->svc->cfg.tiers[ti];
    char topic[300], suffix[200];
    snprintf(suffix, sizeof(suffix), "status/breaker/%s", t->name);
    if (!ec_topic(&r->svc->cfg, topic, sizeof(topic), suffix))
        return;
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:I}", "tier", t->name, "model",
                  t->model, "provider", t->provider, "state", ec_breaker_state_name(snap->state),
                  "since_ms", (json_int_t)snap->since_ms, "seq", (json_int_t)snap->transitions,
                  "retry_at_ms", (json_int_t)ec_breaker_retry_at(snap), "reason", snap->reason,
                  "ts_ms", (json_int_t)ec_now_ms());
    if (j)
        json_object_set_new(j, "instance", json_string(r->svc->client_id));
    char *body = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!body)
        return;
    ec_error err = {0};
    if (ec_mqtt_publish(r->svc->mqtt, topic, body, strlen(body), 1, true, NULL, 5000, &err))
        ec_log_error("breaker state of %s not published: %s", t->name, err.msg);
    free(body);
}

/* Publishes the transition if the breaker moved since the last announcement. */
static void announce(ec_relay *r, int ti)
{
    ec_breaker snap;
    bool changed;
    pthread_mutex_lock(&r->lock);
    changed = r->breakers[ti].transitions != r->published[ti];
    r->published[ti] = r->breakers[ti].transitions;
    snap = r->breakers[ti];
    pthread_mutex_unlock(&r->lock);
    if (!changed)
        return;
    ec_log_warn("breaker %s: %s (%s)", r->svc->cfg.tiers[ti].name,
                ec_breaker_state_name(snap.state), snap.reason);
    publish_state(r, ti, &snap);
}

static ec_err admit(void *ctx, int ti, uint64_t deadline_ms, ec_error *err)
{
    ec_relay *r = ctx;
    uint64_t now = ec_now_ms();
    pthread_mutex_lock(&r->lock);
    ec_breaker *b = &r->breakers[ti];
    bool ok = ec_breaker_admit(b, now, deadline_ms);
    ec_breaker_state st = b->state;
    uint64_t retry_at = ec_breaker_retry_at(b);
    pthread_mutex_unlock(&r->lock);
    announce(r, ti);
    if (ok)
        return EC_OK;
    const char *tier = r->svc->cfg.tiers[ti].name;
    if (st == EC_BREAKER_OPEN)
        return ec_error_set(err, EC_ERR_UNAVAILABLE,
                            "circuit breaker for tier '%s' is open; next probe in %llu ms", tier,
                            (unsigned long long)(retry_at > now ? retry_at - now : 0));
    return ec_error_set(err, EC_ERR_UNAVAILABLE, "circuit breaker for tier '%s' is %s", tier,
                        ec_breaker_state_name(st));
}

static void report(void *ctx, int ti, ec_tierd_outcome oc, double ms)
{
    ec_relay *r = ctx;
    ec_call_result res = oc == EC_TIERD_OK       ? EC_CALL_OK
                         : oc == EC_TIERD_CONFIG ? EC_CALL_NEUTRAL
                                                 : EC_CALL_FAILED;
    if (oc == EC_TIERD_CONFIG)
        ec_log_error("tier %s: configuration error (does not trip the breaker)",
                     r->svc->cfg.tiers[ti].name);
    pthread_mutex_lock(&r->lock);
    ec_breaker_report(&r->breakers[ti], res, ms, ec_now_ms());
    pthread_mutex_unlock(&r->lock);
    announce(r, ti);
}

static void on_message(void *ctx, const ec_mqtt_msg *msg)
{
    ec_relay *r = ctx;
    const char *tier = strrchr(msg->topic, '/');
    int ti = tier ? ec_config_tier_index(&r->svc->cfg, tier + 1) : -1;
    if (ti < 0 || r->svc->cfg.tiers[ti].local) {
        ec_log_warn("breaker command on %s: no such cloud tier", msg->topic);
        return;
    }
    char cmd[32];
    snprintf(cmd, sizeof(cmd), "%.*s", (int)(msg->len < 31 ? msg->len : 31),
             (const char *)msg->payload);
    pthread_mutex_lock(&r->lock);
    int rc = ec_breaker_command(&r->breakers[ti], cmd, ec_now_ms());
    pthread_mutex_unlock(&r->lock);
    if (rc)
        ec_log_warn("breaker command '%s' for %s: unknown (use force_open, disable or auto)", cmd,
                    r->svc->cfg.tiers[ti].name);
    announce(r, ti);
}

static void on_ready(void *ctx)
{
    ec_relay *r = ctx;
    /* Announce every breaker once, so the retained state is fresh. */
    for (size_t i = 0; i < r->svc->cfg.n_tiers; i++) {
        if (r->svc->cfg.tiers[i].local)
            continue;
        ec_breaker snap;
        pthread_mutex_lock(&r->lock);
        snap = r->breakers[i];
        r->published[i] = snap.transitions;
        pthread_mutex_unlock(&r->lock);
        publish_state(r, (int)i, &snap);
    }
}

static void on_reload(void *ctx, const ec_config *next)
{
    ec_relay *r = ctx;
    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < EC_MAX_TIERS; i++)
        ec_breaker_reconfigure(&r->breakers[i], &next->breaker);
    pthread_mutex_unlock(&r->lock);
}

ec_err ec_relay_create(ec_relay **out, ec_service *svc, ec_error *err)
{
    ec_relay *r = calloc(1, sizeof(*r));
    if (!r)
        return ec_error_set(err, EC_ERR_NOMEM, "relay: out of memory");
    r->svc = svc;
    pthread_mutex_init(&r->lock, NULL);
    uint64_t now = ec_now_ms();
    for (size_t i = 0; i < EC_MAX_TIERS; i++)
        ec_breaker_init(&r->breakers[i], &svc->cfg.breaker, now);
    ec_topic(&svc->cfg, r->cmd_filter, sizeof(r->cmd_filter), "cmd/breaker/+");
    r->filters[0] = r->cmd_filter;
    r->filters[1] = NULL;
    *out = r;
    return EC_OK;
}

void ec_relay_destroy(ec_relay *r)
{
    if (!r)
        return;
    pthread_mutex_destroy(&r->lock);
    free(r);
}

void ec_relay_hooks(ec_relay *r, ec_tierd_hooks *out)
{
    out->ctx = r;
    out->admit = admit;
    out->report = report;
    out->on_message = on_message;
    out->extra_filters = r->filters;
    out->on_ready = on_ready;
    out->on_reload = on_reload;
}
