/* Cloud spend caps; see budget.h. All times are epoch ms in UTC, passed in
 * by the caller so the unit tests can drive the period rollover. */
#include "budget.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DAY_MS 86400000ull

struct ec_budget {
    pthread_mutex_t lock;
    double daily_cap;
    double monthly_cap;
    double warn_at;
    uint64_t day_start; /* of the period the totals belong to */
    uint64_t month_start;
    double day_usd;
    double month_usd;
    int reported; /* last state ec_budget_changed returned, -1 = none yet */
};

uint64_t ec_budget_day_start(uint64_t now_ms)
{
    return now_ms - now_ms % DAY_MS;
}

uint64_t ec_budget_month_start(uint64_t now_ms)
{
    time_t t = (time_t)(now_ms / 1000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    tm.tm_mday = 1;
    tm.tm_hour = tm.tm_min = tm.tm_sec = 0;
    return (uint64_t)timegm(&tm) * 1000u;
}

/* Moves the totals to the period containing now: a new day starts from 0,
 * a new month too. */
static void roll(ec_budget *b, uint64_t now_ms)
{
    uint64_t d = ec_budget_day_start(now_ms);
    if (d != b->day_start) {
        b->day_start = d;
        b->day_usd = 0;
    }
    uint64_t m = ec_budget_month_start(now_ms);
    if (m != b->month_start) {
        b->month_start = m;
        b->month_usd = 0;
    }
}

static void apply(ec_budget *b, const ec_config *cfg)
{
    b->daily_cap = cfg->budget_daily_usd;
    b->monthly_cap = cfg->budget_monthly_usd;
    b->warn_at = cfg->budget_warn_at > 0 ? cfg->budget_warn_at : 0.8;
}

ec_budget *ec_budget_create(const ec_config *cfg)
{
    ec_budget *b = calloc(1, sizeof(*b));
    if (!b)
        return NULL;
    pthread_mutex_init(&b->lock, NULL);
    apply(b, cfg);
    b->reported = -1;
    return b;
}

void ec_budget_configure(ec_budget *b, const ec_config *cfg)
{
    pthread_mutex_lock(&b->lock);
    apply(b, cfg);
    pthread_mutex_unlock(&b->lock);
}

void ec_budget_destroy(ec_budget *b)
{
    if (!b)
        return;
    pthread_mutex_destroy(&b->lock);
    free(b);
}

void ec_budget_seed(ec_budget *b, uint64_t now_ms, double day_usd, double month_usd)
{
    pthread_mutex_lock(&b->lock);
    roll(b, now_ms);
    b->day_usd = day_usd;
    b->month_usd = month_usd;
    pthread_mutex_unlock(&b->lock);
}

void ec_budget_add(ec_budget *b, uint64_t now_ms, double usd)
{
    if (!(usd > 0))
        return;
    pthread_mutex_lock(&b->lock);
    roll(b, now_ms);
    b->day_usd += usd;
    b->month_usd += usd;
    pthread_mutex_unlock(&b->lock);
}

static ec_budget_state state_locked(const ec_budget *b)
{
    bool day = b->daily_cap > 0, month = b->monthly_cap > 0;
    if ((day && b->day_usd >= b->daily_cap) || (month && b->month_usd >= b->monthly_cap))
        return EC_BUDGET_EXHAUSTED;
    double w = b->warn_at;
    if ((day && b->day_usd >= w * b->daily_cap) || (month && b->month_usd >= w * b->monthly_cap))
        return EC_BUDGET_WARNING;
    return EC_BUDGET_OK;
}

static void fill(const ec_budget *b, ec_budget_snapshot *out)
{
    memset(out, 0, sizeof(*out));
    time_t t = (time_t)(b->day_start / 1000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out->day, sizeof(out->day), "%Y-%m-%d", &tm);
    strftime(out->month, sizeof(out->month), "%Y-%m", &tm);
    out->day_usd = b->day_usd;
    out->month_usd = b->month_usd;
    out->daily_cap_usd = b->daily_cap;
    out->monthly_cap_usd = b->monthly_cap;
    out->warn_at = b->warn_at;
    out->state = state_locked(b);
}

bool ec_budget_allows(ec_budget *b, uint64_t now_ms, char *why, size_t n)
{
    pthread_mutex_lock(&b->lock);
    roll(b, now_ms);
    ec_budget_snapshot s;
    fill(b, &s);
    pthread_mutex_unlock(&b->lock);
    if (s.state != EC_BUDGET_EXHAUSTED)
        return true;
    if (s.daily_cap_usd > 0 && s.day_usd >= s.daily_cap_usd)
        snprintf(why, n, "daily cloud budget of %.2f USD reached (%.4f USD spent on %s)",
                 s.daily_cap_usd, s.day_usd, s.day);
    else
        snprintf(why, n, "monthly cloud budget of %.2f USD reached (%.4f USD spent in %s)",
                 s.monthly_cap_usd, s.month_usd, s.month);
    return false;
}

void ec_budget_snapshot_get(ec_budget *b, uint64_t now_ms, ec_budget_snapshot *out)
{
    pthread_mutex_lock(&b->lock);
    roll(b, now_ms);
    fill(b, out);
    pthread_mutex_unlock(&b->lock);
}

bool ec_budget_changed(ec_budget *b, uint64_t now_ms, ec_budget_snapshot *out)
{
    pthread_mutex_lock(&b->lock);
    roll(b, now_ms);
    fill(b, out);
    bool changed = b->reported != (int)out->state;
    b->reported = (int)out->state;
    pthread_mutex_unlock(&b->lock);
    return changed;
}

const char *ec_budget_state_name(ec_budget_state s)
{
    switch (s) {
    case EC_BUDGET_OK:
        return "ok";
    case EC_BUDGET_WARNING:
        return "warning";
    case EC_BUDGET_EXHAUSTED:
        return "exhausted";
    }
    return "unknown";
}

int ec_budget_json(const ec_budget_snapshot *s, uint64_t ts_ms, char *buf, size_t n)
{
    return snprintf(buf, n,
                    "{\"state\":\"%s\",\"day\":\"%s\",\"month\":\"%s\",\"day_usd\":%.12g,"
                    "\"month_usd\":%.12g,\"daily_cap_usd\":%.12g,\"monthly_cap_usd\":%.12g,"
                    "\"warn_at\":%g,\"ts_ms\":%llu}",
                    ec_budget_state_name(s->state), s->day, s->month, s->day_usd, s->month_usd,
                    s->daily_cap_usd, s->monthly_cap_usd, s->warn_at, (unsigned long long)ts_ms);
}
