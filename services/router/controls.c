/* The router's controls (controls.h): the glue between the stages and the
 * privacy (redact.c), budget (budget.c) and cache (cache.c) modules. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "cache.h"
#include "controls.h"
#include "redact.h"

struct ec_controls {
    ec_router_env *env;
    ec_store *store; /* may be NULL */
    ec_redactor *redactor;
    ec_cache *cache;
    ec_budget *budget;
    char budget_topic[300]; /* <root>/status/budget */
    /* Workers and the sweeper may see a budget change at the same moment:
     * one publish at a time, so the retained state on the broker is never an
     * older one published last. */
    pthread_mutex_t publish_lock;
};

#define CFG(c) atomic_load(&(c)->env->cfg)

/* Reads this month's cloud spend back from the decision log. */
static void seed_budget(ec_controls *r)
{
    if (!r->store)
        return;
    const ec_config *cfg = CFG(r);
    const char *local[EC_MAX_TIERS];
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_tiers; i++)
        if (cfg->tiers[i].local)
            local[n++] = cfg->tiers[i].name;
    uint64_t now = ec_now_ms();
    double day = 0, month = 0;
    ec_error err = {0};
    if (ec_store_cloud_spend(r->store, ec_budget_month_start(now), ec_budget_day_start(now), local,
                             n, &day, &month, &err)) {
        ec_log_error("budget: cloud spend so far could not be read (%s); counting from 0", err.msg);
        return;
    }
    ec_budget_seed(r->budget, now, day, month);
    if (cfg->budget_daily_usd > 0 || cfg->budget_monthly_usd > 0)
        ec_log_info("budget: %.4f USD of cloud spend today, %.4f USD this month", day, month);
}

ec_err ec_controls_create(ec_controls **out, ec_router_env *env, ec_store *store, ec_error *err)
{
    ec_controls *c = calloc(1, sizeof(*c));
    if (!c)
        return ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    c->env = env;
    c->store = store;
    pthread_mutex_init(&c->publish_lock, NULL);
    ec_err rc = ec_redactor_create(&c->redactor, CFG(c), err);
    if (!rc)
        rc = ec_cache_create(&c->cache, CFG(c), err);
    if (!rc && !(c->budget = ec_budget_create(CFG(c))))
        rc = ec_error_set(err, EC_ERR_NOMEM, "router: out of memory");
    if (!rc && !ec_topic(CFG(c), c->budget_topic, sizeof(c->budget_topic), "status/budget"))
        rc = ec_error_set(err, EC_ERR_CONFIG, "topic_root is too long");
    if (rc) {
        ec_controls_destroy(c);
        return rc;
    }
    seed_budget(c);
    *out = c;
    return EC_OK;
}

void ec_controls_destroy(ec_controls *c)
{
    if (!c)
        return;
    ec_redactor_destroy(c->redactor);
    ec_cache_destroy(c->cache);
    ec_budget_destroy(c->budget);
    pthread_mutex_destroy(&c->publish_lock);
    free(c);
}

ec_err ec_controls_configure(ec_controls *c, const ec_config *cfg, ec_error *err)
{
    ec_err rc = ec_redactor_configure(c->redactor, cfg, err);
    if (rc)
        return rc;
    ec_cache_configure(c->cache, cfg);
    ec_cache_clear(c->cache);
    ec_budget_configure(c->budget, cfg);
    ec_controls_budget_publish(c, false);
    return EC_OK;
}

/* ---- privacy ---- */

static void free_msgs(ec_chat_msg *m, size_t n)
{
    for (size_t i = 0; m && i < n; i++) {
        free(m[i].role);
        free(m[i].content);
    }
    free(m);
}

bool ec_controls_mask(ec_controls *r, ec_pending *p)
{
    if (p->mask_done)
        return true;
    if (!ec_redactor_active(r->redactor)) {
        p->mask_done = true;
        return true;
    }
    ec_chat_msg one = {.role = "user", .content = p->query.prompt};
    const ec_chat_msg *src = p->query.n_messages ? p->query.messages : &one;
    size_t n = p->query.n_messages ? p->query.n_messages : 1;
    ec_chat_msg *out = calloc(n, sizeof(*out));
    if (!out)
        return false;
    int found = 0;
    for (size_t i = 0; i < n; i++) {
        char *masked = NULL;
        int k = ec_redact(r->redactor, src[i].content, &masked);
        out[i].role = ec_strdup0(src[i].role);
        out[i].content = masked ? masked : ec_strdup0(src[i].content);
        if (k < 0 || !out[i].role || (src[i].content && !out[i].content)) {
            free_msgs(out, n);
            return false;
        }
        found += k;
    }
    if (found) {
        p->masked = out;
        p->n_masked = n;
        p->redacted = true;
        ec_log_debug("query %s: %d spans masked before it leaves the device", p->query.id, found);
    } else {
        free_msgs(out, n);
    }
    p->mask_done = true;
    return true;
}

/* ---- cache ---- */

bool ec_controls_cache_lookup(ec_controls *r, ec_pending *p)
{
    ec_buf key;
    ec_buf_init(&key, 2 * EC_MAX_PAYLOAD);
    bool hit = false;
    if (ec_cache_key(r->cache, &p->query, &key)) {
        ec_cache_hit *h = calloc(1, sizeof(*h));
        if (h && ec_cache_get(r->cache, key.data, key.len, ec_now_ms(), h)) {
            p->cached = h;
            hit = true;
        } else {
            free(h);
            p->cache_key = ec_buf_take(&key, &p->cache_key_len);
        }
    }
    ec_buf_free(&key);
    return hit;
}

void ec_controls_cache_store(ec_controls *r, const ec_pending *p, const ec_result *res,
                             int answer_attempt)
{
    if (!p->cache_key || answer_attempt < 0 || res->degraded || res->error.code || p->withheld ||
        p->shadow || !p->attempts[answer_attempt].accepted)
        return;
    ec_cache_hit v = {
        .answer = res->answer,
        .tier_name = res->tier_name,
        .model = res->model,
        .tier_index = res->tier_index,
        .confidence = res->confidence,
        .threshold = res->threshold,
        .tokens_in = res->tokens_in,
        .tokens_out = res->tokens_out,
    };
    ec_cache_put(r->cache, p->cache_key, p->cache_key_len, &v, ec_now_ms());
}

void ec_controls_cache_result(const ec_pending *p, ec_result *res, char *reason, size_t n)
{
    const ec_cache_hit *h = p->cached;
    res->answer = strdup(h->answer ? h->answer : "");
    res->tier = strdup("cache");
    res->tier_index = h->tier_index;
    res->tier_name = ec_strdup0(h->tier_name);
    res->model = ec_strdup0(h->model);
    res->confidence = h->confidence;
    res->threshold = h->threshold;
    res->tokens_in = h->tokens_in;
    res->tokens_out = h->tokens_out;
    uint64_t now = ec_now_ms();
    double age_s = now > h->stored_ms ? (double)(now - h->stored_ms) / 1000.0 : 0;
    snprintf(reason, n,
             "cache hit: the same messages and parameters were answered by tier '%s' (%s) "
             "%.0f s ago",
             h->tier_name ? h->tier_name : "?", h->model ? h->model : "?", age_s);
}

/* ---- budget ---- */

static void publish_locked(ec_controls *r, bool force);

void ec_controls_budget_publish(ec_controls *r, bool force)
{
    pthread_mutex_lock(&r->publish_lock);
    publish_locked(r, force);
    pthread_mutex_unlock(&r->publish_lock);
}

static void publish_locked(ec_controls *r, bool force)
{
    ec_budget_snapshot s;
    uint64_t now = ec_now_ms();
    bool changed = ec_budget_changed(r->budget, now, &s);
    if (!changed && !force)
        return;
    bool capped = s.daily_cap_usd > 0 || s.monthly_cap_usd > 0;
    if (changed && capped && s.state == EC_BUDGET_WARNING)
        ec_log_warn("budget: cloud spend at %.4f USD today (cap %.2f), %.4f USD this month (cap "
                    "%.2f): past %.0f %% of a cap",
                    s.day_usd, s.daily_cap_usd, s.month_usd, s.monthly_cap_usd, 100 * s.warn_at);
    else if (changed && s.state == EC_BUDGET_EXHAUSTED)
        ec_log_warn("budget: cloud cap reached (%.4f USD today, cap %.2f; %.4f USD this month, "
                    "cap %.2f): cloud tiers are not asked until the period ends",
                    s.day_usd, s.daily_cap_usd, s.month_usd, s.monthly_cap_usd);
    else if (changed && capped)
        ec_log_info("budget: %s", ec_budget_state_name(s.state));
    char doc[512];
    int len = ec_budget_json(&s, now, doc, sizeof(doc));
    ec_error err = {0};
    if (len > 0 && (size_t)len < sizeof(doc) &&
        ec_mqtt_publish(r->env->svc->mqtt, r->budget_topic, doc, (size_t)len, 1, true, NULL, 5000,
                        &err))
        ec_log_warn("budget status not published on %s: %s", r->budget_topic, err.msg);
}

void ec_controls_budget_spent(ec_controls *r, double usd)
{
    ec_budget_add(r->budget, ec_now_ms(), usd);
    ec_controls_budget_publish(r, false);
}

bool ec_controls_budget_allows(ec_controls *r, char *why, size_t n)
{
    char buf[200];
    if (!why) {
        why = buf;
        n = sizeof(buf);
    }
    return ec_budget_allows(r->budget, ec_now_ms(), why, n);
}

void ec_controls_budget_snapshot(ec_controls *r, ec_budget_snapshot *out)
{
    ec_budget_snapshot_get(r->budget, ec_now_ms(), out);
}
