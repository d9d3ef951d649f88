#include "breaker.h"

#include <stdio.h>
#include <string.h>

static const char *const names[] = {"closed", "open", "half_open", "forced_open", "disabled"};

const char *ec_breaker_state_name(ec_breaker_state s)
{
    return (unsigned)s < sizeof(names) / sizeof(names[0]) ? names[s] : "unknown";
}

static void reset_counts(ec_breaker *b)
{
    b->consecutive = 0;
    b->ring_len = 0;
    b->ring_pos = 0;
    b->probes_out = 0;
    b->probes_ok = 0;
}

static void go(ec_breaker *b, ec_breaker_state s, uint64_t now_ms, const char *why)
{
    if (b->state == s)
        return;
    b->state = s;
    b->since_ms = now_ms;
    b->transitions++;
    snprintf(b->reason, sizeof(b->reason), "%s", why);
    if (s == EC_BREAKER_CLOSED || s == EC_BREAKER_OPEN || s == EC_BREAKER_HALF_OPEN)
        reset_counts(b);
}

/* The settings as the breaker uses them: a window the ring can hold and at
 * least one probe. */
static ec_breaker_cfg usable(const ec_breaker_cfg *cfg)
{
    ec_breaker_cfg c = *cfg;
    if (c.window > EC_BREAKER_MAX_WINDOW)
        c.window = EC_BREAKER_MAX_WINDOW;
    if (c.window < 1)
        c.window = 1;
    if (c.half_open_probes < 1)
        c.half_open_probes = 1;
    return c;
}

void ec_breaker_init(ec_breaker *b, const ec_breaker_cfg *cfg, uint64_t now_ms)
{
    memset(b, 0, sizeof(*b));
    b->cfg = usable(cfg);
    b->state = EC_BREAKER_CLOSED;
    b->since_ms = now_ms;
    snprintf(b->reason, sizeof(b->reason), "started");
}

void ec_breaker_reconfigure(ec_breaker *b, const ec_breaker_cfg *cfg)
{
    ec_breaker_cfg old = b->cfg;
    b->cfg = usable(cfg);
    /* The ring is laid out for the old window: start the window afresh
     * rather than read it with the wrong length. State and consecutive
     * failures carry over. */
    if (old.window != b->cfg.window) {
        b->ring_len = 0;
        b->ring_pos = 0;
    }
}

uint64_t ec_breaker_retry_at(const ec_breaker *b)
{
    return b->state == EC_BREAKER_OPEN ? b->since_ms + b->cfg.open_ms : 0;
}

bool ec_breaker_admit(ec_breaker *b, uint64_t now_ms, uint64_t call_deadline_ms)
{
    switch (b->state) {
    case EC_BREAKER_DISABLED:
    case EC_BREAKER_CLOSED:
        return true;
    case EC_BREAKER_FORCED_OPEN:
        return false;
    case EC_BREAKER_OPEN:
        if (now_ms < b->since_ms + b->cfg.open_ms)
            return false;
        go(b, EC_BREAKER_HALF_OPEN, now_ms, "open time over: probing");
        break;
    case EC_BREAKER_HALF_OPEN:
        if (b->probes_out > 0 && now_ms > b->probe_deadline_ms) {
            go(b, EC_BREAKER_OPEN, now_ms, "a probe did not answer before its deadline");
            return false;
        }
        break;
    }
    if (b->probes_out + b->probes_ok >= b->cfg.half_open_probes)
        return false;
    b->probes_out++;
    if (call_deadline_ms > b->probe_deadline_ms || b->probes_out == 1)
        b->probe_deadline_ms = call_deadline_ms;
    return true;
}

static void window_add(ec_breaker *b, bool failed, bool slow)
{
    int w = b->cfg.window;
    b->ring[b->ring_pos] = (uint8_t)((failed ? 1 : 0) | (slow ? 2 : 0));
    b->ring_pos = (b->ring_pos + 1) % w;
    if (b->ring_len < w)
        b->ring_len++;
}

static void window_rates(const ec_breaker *b, double *fail, double *slow)
{
    int nf = 0, ns = 0;
    for (int i = 0; i < b->ring_len; i++) {
        nf += b->ring[i] & 1;
        ns += (b->ring[i] >> 1) & 1;
    }
    *fail = b->ring_len ? (double)nf / b->ring_len : 0;
    *slow = b->ring_len ? (double)ns / b->ring_len : 0;
}

void ec_breaker_report(ec_breaker *b, ec_call_result res, double ms, uint64_t now_ms)
{
    bool slow = ms > (double)b->cfg.slow_call_ms;
    char why[160];
    if (b->state == EC_BREAKER_HALF_OPEN) {
        if (b->probes_out > 0)
            b->probes_out--;
        if (res == EC_CALL_FAILED) {
            go(b, EC_BREAKER_OPEN, now_ms, "a probe failed");
        } else if (res == EC_CALL_OK && slow) {
            go(b, EC_BREAKER_OPEN, now_ms, "a probe was slow");
        } else if (res == EC_CALL_OK && ++b->probes_ok >= b->cfg.half_open_probes) {
            go(b, EC_BREAKER_CLOSED, now_ms, "probes succeeded");
        }
        return;
    }
    if (b->state != EC_BREAKER_CLOSED || res == EC_CALL_NEUTRAL)
        return;
    b->consecutive = res == EC_CALL_FAILED ? b->consecutive + 1 : 0;
    window_add(b, res == EC_CALL_FAILED, slow);
    if (b->consecutive >= b->cfg.consecutive) {
        snprintf(why, sizeof(why), "%d consecutive failures", b->consecutive);
        go(b, EC_BREAKER_OPEN, now_ms, why);
        return;
    }
    if (b->ring_len < b->cfg.min_calls)
        return;
    double fr, sr;
    window_rates(b, &fr, &sr);
    if (fr >= b->cfg.failure_rate) {
        snprintf(why, sizeof(why), "failure rate %.0f%% over the last %d calls", fr * 100,
                 b->ring_len);
        go(b, EC_BREAKER_OPEN, now_ms, why);
    } else if (sr >= b->cfg.slow_rate) {
        snprintf(why, sizeof(why), "slow-call rate %.0f%% (> %u ms) over the last %d calls",
                 sr * 100, b->cfg.slow_call_ms, b->ring_len);
        go(b, EC_BREAKER_OPEN, now_ms, why);
    }
}

int ec_breaker_command(ec_breaker *b, const char *cmd, uint64_t now_ms)
{
    if (strcmp(cmd, "force_open") == 0)
        go(b, EC_BREAKER_FORCED_OPEN, now_ms, "forced open by command");
    else if (strcmp(cmd, "disable") == 0)
        go(b, EC_BREAKER_DISABLED, now_ms, "disabled by command");
    else if (strcmp(cmd, "auto") == 0 || strcmp(cmd, "reset") == 0)
        go(b, EC_BREAKER_CLOSED, now_ms, "reset by command");
    else
        return -1;
    return 0;
}
