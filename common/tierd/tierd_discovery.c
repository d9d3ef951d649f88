/* Local model auto-discovery; see tierd_discovery.h for the behaviour.
 *
 * One thread per edgecascade-local, asleep between rounds on a condition
 * variable (woken early by a reload or shutdown). Workers read a tier's state
 * under the mutex with ec_discovery_model, which copies: a check never holds
 * the lock across HTTP. The config is read afresh each round
 * (ec_service_config), so a reload's new interval, URL or preference applies. */
#include "tierd_discovery.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/http.h"
#include "edgecascade/log.h"
#include "edgecascade/provider.h"
#include "edgecascade/util.h"

#define RETRY_UNRESOLVED_S 5 /* while a tier has no model yet, check at least this often */

typedef enum { M_UNKNOWN = 0, M_SERVING, M_MISSING, M_NONE } mstate;

typedef struct tier_state {
    mstate state;
    char model[128];
    char error[512];
    char listed[256]; /* what the server listed last, for messages */
} tier_state;

struct ec_discovery {
    ec_service *svc;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    bool reset;
    unsigned long rounds;
    tier_state tiers[EC_MAX_TIERS];
};

static const char *state_name(mstate s)
{
    return s == M_SERVING   ? "serving"
           : s == M_MISSING ? "missing"
           : s == M_NONE    ? "none"
                            : "unknown";
}

/* Asks the server for its models; returns the list or NULL with why. */
static char **list_models(ec_http *http, const ec_tier_cfg *t, size_t *n, char *why, size_t cap)
{
    const ec_provider *p = ec_provider_find(t->provider);
    ec_http_request req;
    ec_http_response resp;
    ec_error err = {0};
    char **names = NULL;
    char *key = NULL;
    *n = 0;
    ec_http_request_init(&req, "GET");
    ec_http_response_init(&resp);
    if (!p || !p->build_models || !p->parse_models) {
        snprintf(why, cap, "provider %s cannot list its models; give the model's name",
                 t->provider);
        goto out;
    }
    key = ec_tier_api_key(t, &err);
    ec_http_request_free(&req);
    if (p->build_models(t, key, &req, &err) != EC_OK ||
        ec_http_perform(http, &req, &resp, &err) != EC_OK ||
        p->parse_models(&resp, &names, n, &err) != EC_OK) {
        snprintf(why, cap, "cannot list the models at %s: %s", t->base_url, err.msg);
        names = NULL;
        *n = 0;
    }
out:
    if (key) {
        memset(key, 0, strlen(key));
        free(key);
    }
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
    return names;
}

static void join_list(char **names, size_t n, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(out + used, cap - used, "%s%s", i ? ", " : "", names[i]);
    if (n == 0)
        snprintf(out, cap, "nothing");
}

/* One tier's check: the new state in ns (starting from the old). */
static void check_tier(ec_http *http, const ec_tier_cfg *t, tier_state *ns)
{
    char why[sizeof(ns->error)];
    size_t n = 0;
    char **names = list_models(http, t, &n, why, sizeof(why));
    if (!names) {
        /* Unreachable: a model in use stays in use (its calls fail on their own). */
        if (ns->state != M_SERVING) {
            ns->state = M_UNKNOWN;
            snprintf(ns->error, sizeof(ns->error), "%s", why);
        }
        return;
    }
    join_list(names, n, ns->listed, sizeof(ns->listed));
    const char *pref = t->prefer_model && *t->prefer_model ? t->prefer_model : NULL;
    bool have = false, prefer = false;
    for (size_t i = 0; i < n; i++) {
        have |= ns->model[0] && strcmp(names[i], ns->model) == 0;
        prefer |= pref && strcmp(names[i], pref) == 0;
    }
    if (ns->model[0] && have) {
        ns->state = M_SERVING;
        ns->error[0] = '\0';
    } else if (ns->model[0]) {
        ns->state = M_MISSING;
        snprintf(ns->error, sizeof(ns->error),
                 "model '%.100s' is no longer served by %.100s (it lists: %.150s); reload "
                 "edgecascade-local (SIGHUP) to use a served one",
                 ns->model, t->base_url, ns->listed);
    } else if (n == 0) {
        /* The server answered: it is reachable but has nothing to serve (an
         * Ollama before its first `ollama pull` lists "data": null). */
        ns->state = M_NONE;
        snprintf(ns->error, sizeof(ns->error), "no models installed on %.200s%s", t->base_url,
                 ec_streq(t->provider, "ollama")
                     ? " (install one: ollama pull NAME)"
                     : " (load one on the server; for Ollama: ollama pull NAME)");
    } else {
        const char *pick = prefer && pref ? pref : names[0];
        snprintf(ns->model, sizeof(ns->model), "%s", pick);
        ns->state = M_SERVING;
        ns->error[0] = '\0';
        if (pref && !prefer)
            ec_log_warn("tier %s: prefer_model '%s' is not served by %s (it lists: %s); using "
                        "'%s'",
                        t->name, pref, t->base_url, ns->listed, pick);
    }
    ec_models_free(names, n);
}

/* Logs a change of state and says whether the status needs republishing. */
static bool announce(const ec_tier_cfg *t, const tier_state *old, const tier_state *ns)
{
    if (old->state == ns->state && strcmp(old->model, ns->model) == 0 &&
        strcmp(old->error, ns->error) == 0)
        return false;
    if (ns->state == M_SERVING && old->state == M_MISSING)
        ec_log_info("tier %s: model '%s' is served again by %s", t->name, ns->model, t->base_url);
    else if (ns->state == M_SERVING)
        ec_log_info("tier %s: model auto: using '%s' from %s (it lists: %s)", t->name, ns->model,
                    t->base_url, ns->listed);
    else if (ns->state == M_MISSING)
        ec_log_error("tier %s: %s", t->name, ns->error);
    else
        ec_log_warn("tier %s: model auto: no model yet: %s", t->name, ns->error);
    return true;
}

static void publish(ec_discovery *d, const ec_config *cfg)
{
    ec_service_model models[EC_SERVICE_MAX_MODELS];
    size_t n = 0;
    memset(models, 0, sizeof(models));
    pthread_mutex_lock(&d->lock);
    for (size_t i = 0; i < cfg->n_tiers && n < EC_SERVICE_MAX_MODELS; i++) {
        const ec_tier_cfg *t = &cfg->tiers[i];
        if (!t->local || !ec_tier_model_auto(t))
            continue;
        ec_service_model *m = &models[n++];
        snprintf(m->tier, sizeof(m->tier), "%s", t->name);
        snprintf(m->model, sizeof(m->model), "%s", d->tiers[i].model);
        snprintf(m->state, sizeof(m->state), "%s", state_name(d->tiers[i].state));
        snprintf(m->error, sizeof(m->error), "%s", d->tiers[i].error);
    }
    pthread_mutex_unlock(&d->lock);
    ec_service_set_models(d->svc, models, n);
}

/* One round over every auto tier; returns the seconds until the next. */
static unsigned round_once(ec_discovery *d, ec_http *http)
{
    const ec_config *cfg = ec_service_config(d->svc);
    bool changed = false, unresolved = false, any = false;
    pthread_mutex_lock(&d->lock);
    bool reset = d->reset;
    d->reset = false;
    if (reset)
        memset(d->tiers, 0, sizeof(d->tiers));
    pthread_mutex_unlock(&d->lock);
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const ec_tier_cfg *t = &cfg->tiers[i];
        if (!t->local || !ec_tier_model_auto(t))
            continue;
        any = true;
        tier_state old, ns;
        pthread_mutex_lock(&d->lock);
        old = d->tiers[i];
        pthread_mutex_unlock(&d->lock);
        ns = old;
        check_tier(http, t, &ns);
        changed |= announce(t, &old, &ns);
        unresolved |= ns.state != M_SERVING;
        pthread_mutex_lock(&d->lock);
        d->tiers[i] = ns;
        pthread_mutex_unlock(&d->lock);
    }
    if (changed || (reset && any))
        publish(d, cfg);
    pthread_mutex_lock(&d->lock);
    d->rounds++;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
    unsigned s = cfg->discovery_interval_s ? cfg->discovery_interval_s : 60;
    if (unresolved && s > RETRY_UNRESOLVED_S)
        s = RETRY_UNRESOLVED_S;
    return s;
}

static void *discovery_main(void *arg)
{
    ec_thread_name("ec-discovery");
    ec_discovery *d = arg;
    ec_http *http = NULL;
    if (ec_http_create(&http) != EC_OK) {
        ec_log_error("model discovery: cannot create an HTTP client");
        return NULL;
    }
    for (;;) {
        unsigned wait_s = round_once(d, http);
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += (time_t)wait_s;
        pthread_mutex_lock(&d->lock);
        while (!d->stop && !d->reset) {
            if (pthread_cond_timedwait(&d->cond, &d->lock, &until) != 0)
                break;
        }
        bool stop = d->stop;
        pthread_mutex_unlock(&d->lock);
        if (stop)
            break;
    }
    ec_http_destroy(http);
    return NULL;
}

ec_err ec_discovery_create(ec_discovery **out, ec_service *svc, ec_error *err)
{
    ec_discovery *d = calloc(1, sizeof(*d));
    if (!d)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    d->svc = svc;
    pthread_mutex_init(&d->lock, NULL);
    ec_cond_init_mono(&d->cond);
    *out = d;
    return EC_OK;
}

ec_err ec_discovery_start(ec_discovery *d, int wait_ms, ec_error *err)
{
    if (pthread_create(&d->thread, NULL, discovery_main, d) != 0)
        return ec_error_set(err, EC_ERR_NOMEM, "cannot start the model discovery thread");
    d->started = true;
    struct timespec until;
    ec_deadline_in(&until, wait_ms > 0 ? (unsigned)wait_ms : 0);
    pthread_mutex_lock(&d->lock);
    while (d->rounds == 0 && pthread_cond_timedwait(&d->cond, &d->lock, &until) == 0)
        ;
    pthread_mutex_unlock(&d->lock);
    return EC_OK;
}

void ec_discovery_reset(ec_discovery *d)
{
    pthread_mutex_lock(&d->lock);
    d->reset = true;
    pthread_cond_broadcast(&d->cond);
    pthread_mutex_unlock(&d->lock);
}

void ec_discovery_destroy(ec_discovery *d)
{
    if (!d)
        return;
    if (d->started) {
        pthread_mutex_lock(&d->lock);
        d->stop = true;
        pthread_cond_broadcast(&d->cond);
        pthread_mutex_unlock(&d->lock);
        pthread_join(d->thread, NULL);
    }
    pthread_cond_destroy(&d->cond);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

bool ec_discovery_model(ec_discovery *d, size_t ti, char *model, size_t cap, char *why,
                        size_t whycap)
{
    if (!d || ti >= EC_MAX_TIERS) {
        snprintf(why, whycap, "model auto: discovery is not running");
        return false;
    }
    pthread_mutex_lock(&d->lock);
    const tier_state *s = &d->tiers[ti];
    bool ok = s->state == M_SERVING && s->model[0];
    if (ok)
        snprintf(model, cap, "%s", s->model);
    else
        snprintf(why, whycap, "%s",
                 s->error[0] ? s->error : "model auto: no model found on the server yet");
    pthread_mutex_unlock(&d->lock);
    return ok;
}

unsigned long ec_discovery_rounds(ec_discovery *d)
{
    pthread_mutex_lock(&d->lock);
    unsigned long n = d->rounds;
    pthread_mutex_unlock(&d->lock);
    return n;
}
