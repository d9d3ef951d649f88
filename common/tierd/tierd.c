#include "edgecascade/tierd.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/http.h"
#include "edgecascade/log.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/provider.h"
#include "edgecascade/util.h"
#include "tierd_discovery.h"

#define EC_TIERD_MAX_FILTERS 4

/* What a request is served with: the config and what follows from it. A
 * reload builds a new one and swaps the pointer; the old one is kept until
 * exit (workers may hold it; reloads are rare). */
typedef struct tierd_snap {
    const ec_config *cfg;
    char *keys[EC_MAX_TIERS]; /* API keys, read when the snapshot is built; never logged */
    int max_retries;          /* extra attempts on RETRY outcomes, within the deadline */
    unsigned backoff_ms;      /* base of the capped full-jitter backoff */
    unsigned backoff_max_ms;
    struct tierd_snap *older; /* the snapshots it replaced */
} tierd_snap;

typedef struct tierd {
    ec_service *svc;
    const ec_tierd_opts *opts;
    _Atomic(tierd_snap *) snap;
    ec_discovery *disc; /* local: model "auto" tiers */
    char infer_topic[300];
    /* Per tier: whether its server returns the token logprobs it is asked
     * for (LP_*), so a server without them is reported once, not per call. */
    _Atomic int lp_state[EC_MAX_TIERS];
} tierd;

enum { LP_UNKNOWN = 0, LP_OK, LP_UNAVAILABLE };

/* Full jitter (AWS architecture blog): sleep uniform(0, min(cap, base*2^n)). */
static unsigned backoff_delay(const tierd_snap *o, int attempt, unsigned *seed)
{
    unsigned cap = o->backoff_max_ms ? o->backoff_max_ms : 2000;
    unsigned d = o->backoff_ms ? o->backoff_ms : 100;
    for (int i = 0; i < attempt && d < cap; i++)
        d *= 2;
    if (d > cap)
        d = cap;
    return (unsigned)rand_r(seed) % (d + 1);
}

static const char *wire_code(ec_err rc)
{
    switch (rc) {
    case EC_ERR_TIMEOUT:
        return "timeout";
    case EC_ERR_CONFIG:
        return "config";
    case EC_ERR_PROTO:
    case EC_ERR_INVAL:
        return "bad_request";
    case EC_ERR_TOOBIG:
        return "too_large";
    default:
        return "upstream";
    }
}

/* After an answer to a request that asked for logprobs: says once (log and
 * status) when the server returned none, and again when it does again. An
 * empty answer has no tokens to judge and proves nothing. */
static void note_logprobs(tierd *t, int ti, const ec_provider *p, const ec_tier_cfg *tier,
                          const ec_infer_reply *rep)
{
    if (!tier->local || !rep->answer || !rep->answer[0] || ti < 0 || ti >= EC_MAX_TIERS)
        return;
    int now = rep->lp.present ? LP_OK : LP_UNAVAILABLE;
    int was = atomic_exchange(&t->lp_state[ti], now);
    if (was == now)
        return;
    if (now == LP_UNAVAILABLE)
        ec_log_warn("tier %s: %s at %s returned no token logprobs although asked: the gate "
                    "judges this tier's drafts by the text heuristic alone (at most 0.65, "
                    "below the default threshold 0.70), so with a cloud tier every draft "
                    "escalates. %s",
                    tier->name, tier->provider, tier->base_url,
                    p->params && p->params->logprobs_hint ? p->params->logprobs_hint : "");
    else if (was == LP_UNAVAILABLE)
        ec_log_info("tier %s: %s returns token logprobs again", tier->name, tier->provider);
    ec_service_set_logprobs(t->svc, tier->name, tier->model, now == LP_OK ? "ok" : "unavailable");
}

/* Calls the model, retrying transient failures within the deadline. */
static void call_tier(tierd *t, const tierd_snap *sn, ec_http *http, int ti,
                      const ec_infer_request *req, ec_infer_reply *rep, unsigned *seed)
{
    const ec_tier_cfg *tier = &sn->cfg->tiers[ti];
    const ec_provider *p = ec_provider_find(tier->provider);
    ec_error err = {0};
    ec_tier_cfg found;
    char model[128], why[512];
    if (ec_tier_model_auto(tier)) {
        /* The model discovery found (tierd_discovery.h), or a clear error. */
        if (!ec_discovery_model(t->disc, (size_t)ti, model, sizeof(model), why, sizeof(why))) {
            ec_infer_reply_clear(rep);
            ec_wire_error_set(&rep->error, "unavailable", why);
            return;
        }
        found = *tier;
        found.model = model;
        tier = &found;
    }
    /* What goes out after mapping to the API's ranges, for the decision log;
     * a refusal is reported by build_chat below. */
    ec_sent_params sp;
    char sent[EC_MAX_REASON] = "";
    if (ec_provider_map_params(p, tier, req, &sp, &err) == EC_OK)
        ec_sent_params_json(p, &sp, sent, sizeof(sent));
    else
        sp.logprobs = false;
    ec_error_clear(&err);
    uint32_t budget = tier->timeout_ms;
    if (req->timeout_ms && req->timeout_ms < budget)
        budget = req->timeout_ms;
    double start = ec_mono_ms();
    double deadline = start + budget;
    ec_err last_rc = EC_ERR_UNAVAILABLE;
    const ec_tierd_hooks *hk = &t->opts->hooks;
    if (hk->admit && hk->admit(hk->ctx, ti, ec_now_ms() + budget, &err) != EC_OK) {
        /* Fail fast: no network wait while the endpoint is known to be down. */
        ec_infer_reply_clear(rep);
        ec_wire_error_set(&rep->error, "unavailable", err.msg);
        rep->latency_ms = ec_mono_ms() - start;
        return;
    }

    for (int attempt = 0;; attempt++) {
        ec_http_request hr;
        ec_http_response resp;
        ec_http_request_init(&hr, "POST");
        ec_http_response_init(&resp);
        ec_outcome outcome = EC_OUTCOME_RETRY;
        ec_error_clear(&err);
        double left = deadline - ec_mono_ms();
        if (left < 1)
            left = 1;
        ec_err rc = p->build_chat(tier, req, sn->keys[ti], &hr, &err);
        if (rc) {
            outcome = EC_OUTCOME_ERROR;
            last_rc = rc;
        } else {
            if (hr.timeout_ms == 0 || hr.timeout_ms > (uint32_t)left)
                hr.timeout_ms = (uint32_t)left;
            rc = ec_http_perform(http, &hr, &resp, &err);
            if (rc == EC_OK) {
                ec_infer_reply_clear(rep);
                outcome = p->parse_chat(tier, &resp, rep, &err);
                last_rc = outcome == EC_OUTCOME_OK ? EC_OK : EC_ERR_HTTP;
                if (outcome == EC_OUTCOME_ERROR)
                    last_rc = EC_ERR_CONFIG;
            } else {
                last_rc = rc;
                outcome = rc == EC_ERR_TOOBIG ? EC_OUTCOME_ERROR : EC_OUTCOME_RETRY;
            }
        }
        uint32_t retry_after_ms = resp.retry_after_s * 1000u;
        ec_http_request_free(&hr);
        ec_http_response_free(&resp);
        if (outcome == EC_OUTCOME_OK)
            break;
        ec_log_warn("tier %s (%s) attempt %d: %s", tier->name, tier->model, attempt + 1, err.msg);
        if (outcome == EC_OUTCOME_ERROR || attempt >= sn->max_retries)
            break;
        unsigned delay = backoff_delay(sn, attempt, seed);
        if (retry_after_ms > delay)
            delay = retry_after_ms;
        if (ec_mono_ms() + delay >= deadline)
            break; /* the deadline cannot be met: fail now rather than late */
        ec_sleep_ms(delay);
    }
    if (last_rc != EC_OK) {
        ec_infer_reply_clear(rep);
        ec_wire_error_set(&rep->error, wire_code(last_rc), err.msg[0] ? err.msg : "tier failed");
        /* The model called (the one discovery found for "auto"), not the
         * config's word, goes into the attempt. */
        rep->model = ec_strdup0(tier->model);
    } else if (sp.logprobs) {
        note_logprobs(t, ti, p, tier, rep);
    }
    free(rep->sent);
    rep->sent = sent[0] ? strdup(sent) : NULL;
    rep->latency_ms = ec_mono_ms() - start;
    if (hk->report) {
        ec_tierd_outcome oc = last_rc == EC_OK           ? EC_TIERD_OK
                              : last_rc == EC_ERR_CONFIG ? EC_TIERD_CONFIG
                                                         : EC_TIERD_FAILED;
        hk->report(hk->ctx, ti, oc, rep->latency_ms);
    }
    rep->cost_usd = ec_tier_cost(tier, rep->tokens_in, rep->tokens_out);
}

/* Lower-case, trimmed, inner blanks collapsed and trailing punctuation
 * dropped: "PASS." and "pass" are the same answer. */
static void normalize(const char *in, char *out, size_t n)
{
    size_t k = 0;
    bool space = false;
    for (const char *c = in ? in : ""; *c && k + 1 < n; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r') {
            space = k > 0;
            continue;
        }
        if (space && k + 2 < n)
            out[k++] = ' ';
        space = false;
        out[k++] = (char)(ch >= 'A' && ch <= 'Z' ? ch + 32 : ch);
    }
    while (k > 0 && (out[k - 1] == '.' || out[k - 1] == '!' || out[k - 1] == ','))
        k--;
    out[k] = '\0';
}

/* Self-consistency: draws samples-1 more answers at the sample temperature
 * and records how many agree with the first. Costs and tokens add up. */
static void draw_samples(tierd *t, const tierd_snap *sn, ec_http *http, int ti,
                         const ec_infer_request *req, ec_infer_reply *rep, unsigned *seed)
{
    uint32_t k = req->samples;
    if (k < 2 || rep->error.code || !rep->answer)
        return;
    ec_infer_request extra = *req;
    extra.samples = 0;
    extra.logprobs = false;
    extra.has_temperature = true;
    extra.temperature = sn->cfg->sample_temperature;
    static __thread char first[2048], other[2048];
    normalize(rep->answer, first, sizeof(first));
    uint32_t drawn = 1, agree = 1;
    for (uint32_t i = 1; i < k; i++) {
        ec_infer_reply more = {0};
        call_tier(t, sn, http, ti, &extra, &more, seed);
        if (!more.error.code && more.answer) {
            drawn++;
            normalize(more.answer, other, sizeof(other));
            agree += strcmp(first, other) == 0;
            rep->tokens_in += more.tokens_in;
            rep->tokens_out += more.tokens_out;
            rep->cost_usd += more.cost_usd;
            rep->latency_ms += more.latency_ms;
        }
        ec_infer_reply_clear(&more);
    }
    rep->samples = drawn;
    rep->agreement = (double)agree / drawn;
}

static void reply(tierd *t, const ec_mqtt_msg *msg, ec_infer_reply *rep)
{
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, EC_MAX_PAYLOAD);
    if (ec_infer_reply_encode(rep, &b, &err) != EC_OK) {
        /* The answer itself was unencodable (e.g. over the size limit): say so. */
        ec_infer_reply_clear(rep);
        ec_wire_error_set(&rep->error, "too_large", err.msg);
        ec_buf_reset(&b);
        ec_infer_reply_encode(rep, &b, NULL);
    }
    ec_mqtt_pubprops pp = {.corr = msg->corr, .corr_len = msg->corr_len};
    if (ec_mqtt_publish(t->svc->mqtt, msg->response_topic, b.data, b.len, 1, false, &pp, 10000,
                        &err) != EC_OK)
        ec_log_error("reply for %s lost: %s", rep->id ? rep->id : "?", err.msg);
    ec_buf_free(&b);
}

static void handle(tierd *t, ec_http *http, ec_mqtt_msg *msg, unsigned *seed)
{
    ec_infer_request req = {0};
    ec_infer_reply rep = {0};
    ec_error err = {0};
    if (!msg->response_topic) {
        ec_log_error("infer request on %s without a Response Topic: nowhere to answer, ignored",
                     msg->topic);
        return;
    }
    if (ec_infer_request_decode(msg->payload, msg->len, &req, &err) != EC_OK) {
        ec_log_warn("malformed infer request on %s: %s", msg->topic, err.msg);
        ec_wire_error_set(&rep.error, "bad_request", err.msg);
        rep.id = strdup("unreadable-request"); /* the id could not be read */
        goto send;
    }
    /* One snapshot for the whole request, however long it takes. */
    const tierd_snap *sn = atomic_load(&t->snap);
    int ti = ec_config_tier_index(sn->cfg, req.tier);
    rep.id = strdup(req.id);
    rep.tier_index = req.tier_index;
    rep.tier = strdup(req.tier);
    if (ti < 0 || sn->cfg->tiers[ti].local != t->opts->serve_local) {
        char m[256];
        snprintf(m, sizeof(m),
                 "tier '%s' is not served by edgecascade-%s (check that every "
                 "service reads the same config)",
                 req.tier, t->svc->name);
        ec_wire_error_set(&rep.error, "config", m);
        goto send;
    }
    call_tier(t, sn, http, ti, &req, &rep, seed);
    draw_samples(t, sn, http, ti, &req, &rep, seed);
    if (!rep.id)
        rep.id = strdup(req.id);
    if (!rep.tier)
        rep.tier = strdup(req.tier);
    rep.tier_index = req.tier_index;
send:
    reply(t, msg, &rep);
    ec_infer_request_clear(&req);
    ec_infer_reply_clear(&rep);
}

static void *worker(void *arg)
{
    ec_thread_name("ec-infer");
    tierd *t = arg;
    ec_http *http = NULL;
    unsigned seed = (unsigned)ec_mono_us() ^ (unsigned)(uintptr_t)&http;
    if (ec_http_create(&http) != EC_OK) {
        ec_log_error("cannot create HTTP client");
        return NULL;
    }
    while (!ec_service_stopping()) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(t->svc->mqtt, &msg, 200);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        if (t->opts->hooks.on_message && !ec_streq(msg->topic, t->infer_topic))
            t->opts->hooks.on_message(t->opts->hooks.ctx, msg);
        else
            handle(t, http, msg, &seed);
        ec_mqtt_msg_free(msg);
    }
    ec_http_destroy(http);
    return NULL;
}

static void snap_free(tierd_snap *sn)
{
    while (sn) {
        tierd_snap *older = sn->older;
        for (size_t i = 0; i < EC_MAX_TIERS; i++) {
            if (sn->keys[i]) {
                memset(sn->keys[i], 0, strlen(sn->keys[i]));
                free(sn->keys[i]);
            }
        }
        free(sn);
        sn = older;
    }
}

/* Builds what requests are served with from cfg: API keys read now. Logs
 * each served tier when verbose (at start). */
static ec_err snap_build(const ec_service *s, const ec_tierd_opts *o, const ec_config *cfg,
                         bool verbose, tierd_snap **out, ec_error *err)
{
    tierd_snap *sn = calloc(1, sizeof(*sn));
    if (!sn)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    sn->cfg = cfg;
    /* The relay's retry policy comes from the config (relay.*) and so
     * follows a reload; the local service never retries (o->max_retries 0). */
    sn->max_retries = o->serve_local ? o->max_retries : cfg->relay_retries;
    sn->backoff_ms = o->serve_local ? o->backoff_ms : cfg->backoff_ms;
    sn->backoff_max_ms = o->serve_local ? o->backoff_max_ms : cfg->backoff_max_ms;
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        const ec_tier_cfg *tier = &cfg->tiers[i];
        if (tier->local != o->serve_local)
            continue;
        if (!ec_provider_find(tier->provider)) {
            snap_free(sn);
            return ec_error_set(err, EC_ERR_CONFIG, "tier %s: unknown provider %s", tier->name,
                                tier->provider);
        }
        if (ec_http_url_is_tls(tier->base_url) && !ec_http_tls_available()) {
            snap_free(sn);
            return ec_error_set(err, EC_ERR_CONFIG,
                                "tier %s: base_url is https:// but this service started without "
                                "TLS (no https:// tier and no TLS broker): needs a restart "
                                "(systemctl restart edgecascade-%s)",
                                tier->name, s->name);
        }
        sn->keys[i] = ec_tier_api_key(tier, err);
        if (err->code) {
            snap_free(sn);
            ec_error_prefix(err, "tier %s: ", tier->name);
            return EC_ERR_CONFIG;
        }
        if (!verbose)
            continue;
        if (!o->serve_local && !sn->keys[i])
            ec_log_warn("tier %s: no API key (set %s); calls will be refused by %s", tier->name,
                        tier->api_key_env && *tier->api_key_env ? tier->api_key_env
                                                                : "api_key_env or api_key_file",
                        tier->provider);
        ec_log_info("serving tier %zu '%s': %s %s at %s", i, tier->name, tier->provider,
                    tier->model, tier->base_url);
    }
    *out = sn;
    return EC_OK;
}

/* TLS is decided once per process (ec_http_global_init): whether the broker
 * or any tier this service serves is reached over TLS. */
static bool needs_tls(const ec_config *cfg, bool serve_local)
{
    if (ec_mqtt_uri_is_tls(cfg->broker))
        return true;
    for (size_t i = 0; i < cfg->n_tiers; i++)
        if (cfg->tiers[i].local == serve_local && ec_http_url_is_tls(cfg->tiers[i].base_url))
            return true;
    return false;
}

static void reload(tierd *t)
{
    double t0 = ec_mono_ms();
    ec_config *next = NULL;
    tierd_snap *sn = NULL;
    ec_error err = {0};
    if (ec_service_reload_prepare(t->svc, &next, &err) != EC_OK ||
        snap_build(t->svc, t->opts, next, false, &sn, &err) != EC_OK || !sn) {
        ec_service_reload_reject(t->svc, next, err.msg);
        return;
    }
    if (t->opts->hooks.on_reload)
        t->opts->hooks.on_reload(t->opts->hooks.ctx, next);
    sn->older = atomic_exchange(&t->snap, sn);
    ec_service_reload_commit(t->svc, next, ec_mono_ms() - t0);
    if (t->disc)
        ec_discovery_reset(t->disc); /* URLs or preferences may have changed */
}

int ec_tierd_run(ec_service *s, const ec_tierd_opts *o)
{
    tierd t = {.svc = s, .opts = o};
    ec_error err = {0};
    int served = 0, code = 1;
    pthread_t th[64];
    int n = o->workers > 0 ? (o->workers > 64 ? 64 : o->workers) : 1;
    int started = 0;
    tierd_snap *first = NULL;

    /* Before snap_build, which checks the tiers' URLs against it. */
    if (ec_http_global_init(needs_tls(&s->cfg, o->serve_local)) != EC_OK) {
        ec_log_error("libcurl initialisation failed");
        goto out;
    }
    if (snap_build(s, o, &s->cfg, true, &first, &err) != EC_OK) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    atomic_init(&t.snap, first);
    for (size_t i = 0; i < s->cfg.n_tiers; i++)
        served += s->cfg.tiers[i].local == o->serve_local;
    if (!served)
        ec_log_warn("no %s tier in the configuration; requests will be answered with errors",
                    o->serve_local ? "local" : "cloud");
    char filter[340];
    ec_topic(&s->cfg, t.infer_topic, sizeof(t.infer_topic),
             o->serve_local ? "infer/local" : "infer/cloud");
    /* Shared only when asked (mqtt.shared_subscriptions): Mosquitto 2.0 keeps
     * no shared-subscription messages across a broker restart, so requests
     * sent while a service reconnects would be lost. */
    if (s->cfg.shared_subscriptions)
        snprintf(filter, sizeof(filter), "$share/edgecascade-%s/%s", s->name, t.infer_topic);
    else
        snprintf(filter, sizeof(filter), "%s", t.infer_topic);
    const char *filters[EC_TIERD_MAX_FILTERS + 2] = {filter};
    for (size_t i = 0;
         o->hooks.extra_filters && o->hooks.extra_filters[i] && i < EC_TIERD_MAX_FILTERS; i++)
        filters[i + 1] = o->hooks.extra_filters[i];
    if (ec_service_connect(s, filters, &err) != EC_OK) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    if (o->hooks.on_ready)
        o->hooks.on_ready(o->hooks.ctx);
    if (o->serve_local) {
        /* Model "auto" tiers get their model before the service says ready;
         * a server that is slow to answer delays that by its timeout at most. */
        if (ec_discovery_create(&t.disc, s, &err) != EC_OK ||
            ec_discovery_start(t.disc, 12000, &err) != EC_OK) {
            ec_log_error("%s", err.msg);
            goto out;
        }
    }
    for (; started < n; started++) {
        if (pthread_create(&th[started], NULL, worker, &t) != 0) {
            ec_log_error("cannot start worker thread");
            break;
        }
    }
    ec_log_info("ready: %d workers on %s", started, filter);
    ec_service_ready(s, "%d workers on %s", started, filter);
    for (unsigned tick = 1; !ec_service_stopping(); tick++) {
        if (ec_service_reload_requested())
            reload(&t);
        if (tick % 100 == 0)
            ec_mem_give_back();
        ec_sleep_ms(50);
    }
    code = 0;
    ec_service_notify_stopping();
    ec_log_info("stopping");
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
out:
    ec_discovery_destroy(t.disc);
    snap_free(atomic_load(&t.snap));
    return code;
}
