/* Circuit breaker for one cloud endpoint.
 *
 *   closed --(too many failures or slow calls)--> open --(open_ms)--> half-open
 *   half-open --(every probe succeeds)--> closed;  --(a probe fails)--> open
 *   forced_open / disabled: set by command, left only by command ("auto").
 *
 * A "call" is one request to the relay including its retries. Failures are
 * timeouts, connection errors, 429 and 5xx; 4xx configuration errors (bad key,
 * unknown model) neither trip nor heal it: a wrong key is not an outage.
 * Half-open admits half_open_probes calls; a probe that never reports (a hung
 * call) is given up after its deadline, which re-opens the breaker, so nothing
 * can pin it half-open. Time is passed in (now_ms) so tests control the clock.
 * Not thread-safe: the caller holds a lock. */
#ifndef EC_BREAKER_H
#define EC_BREAKER_H

#include <stdbool.h>
#include <stdint.h>
#include "edgecascade/config.h"

typedef enum ec_breaker_state {
    EC_BREAKER_CLOSED = 0,
    EC_BREAKER_OPEN,
    EC_BREAKER_HALF_OPEN,
    EC_BREAKER_FORCED_OPEN,
    EC_BREAKER_DISABLED, /* never trips: every call goes through */
} ec_breaker_state;

typedef enum ec_call_result {
    EC_CALL_OK = 0,
    EC_CALL_FAILED,  /* counts against the endpoint */
    EC_CALL_NEUTRAL, /* a configuration error: reported, but not an outage */
} ec_call_result;

#define EC_BREAKER_MAX_WINDOW 1000

typedef struct ec_breaker {
    ec_breaker_cfg cfg;
    ec_breaker_state state;
    uint64_t since_ms; /* when the current state began */
    int consecutive;   /* consecutive failures */
    /* sliding window of the last `window` calls: bit 0 failed, bit 1 slow */
    uint8_t ring[EC_BREAKER_MAX_WINDOW];
    int ring_len;
    int ring_pos;
    int probes_out; /* half-open probes admitted and not yet reported */
    int probes_ok;
    uint64_t probe_deadline_ms;
    uint64_t transitions; /* count, also a sequence number for the log */
    char reason[160];     /* why the last transition happened */
} ec_breaker;

void ec_breaker_init(ec_breaker *b, const ec_breaker_cfg *cfg, uint64_t now_ms);
/* New settings (a reload): the state and the consecutive count stay; the
 * sliding window starts afresh when its size changed. */
void ec_breaker_reconfigure(ec_breaker *b, const ec_breaker_cfg *cfg);

/* May a call go out now? Moves open -> half-open when open_ms has passed, and
 * half-open -> open when a probe outlived probe_deadline_ms. A true answer in
 * half-open state reserves a probe slot: report the call afterwards. */
bool ec_breaker_admit(ec_breaker *b, uint64_t now_ms, uint64_t call_deadline_ms);

/* Records the outcome of an admitted call that took ms milliseconds. */
void ec_breaker_report(ec_breaker *b, ec_call_result res, double ms, uint64_t now_ms);

/* Commands: "force_open", "disable", "auto" (back to closed). 0 on success. */
int ec_breaker_command(ec_breaker *b, const char *cmd, uint64_t now_ms);

const char *ec_breaker_state_name(ec_breaker_state s);

/* When an open breaker will let a probe through (0 when not open). */
uint64_t ec_breaker_retry_at(const ec_breaker *b);

#endif
