/* Private to edgecascade doctor: the findings' state and the checks that
 * live outside cmd_doctor.c (cmd_doctor_models.c: model servers and cloud
 * keys). */
#ifndef EC_CMD_DOCTOR_H
#define EC_CMD_DOCTOR_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "edgecascade/config.h"
#include "edgecascade/http.h"
#include "edgecascade/provider.h"

#define DOCTOR_HTTP_TIMEOUT_MS 10000u
#define DOCTOR_SLOW_TOKEN_MS   2000.0
#define DOCTOR_MIN_FREE_BYTES  (1024.0 * 1024.0 * 1024.0)
#define DOCTOR_MIN_FREE_PCT    10.0
#define DOCTOR_MAX_RETAINED    64

typedef enum { D_OK, D_WARN, D_FAIL } dstate;

typedef struct retained {
    char tail[160]; /* topic after <root>/status/ */
    json_t *doc;
} retained;

typedef struct doctor {
    ec_config *cfg;
    int n_ok, n_warn, n_fail;
    bool online;
    bool broker_ok;
    retained st[DOCTOR_MAX_RETAINED];
    size_t n_st;
} doctor;

/* One finding: OK / WARN / FAIL, the check's name, and how to fix it. */
void doctor_report(doctor *d, dstate s, const char *check, const char *fix, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
const char *doctor_ago(uint64_t ts_ms, char *buf, size_t n);

/* cmd_doctor_models.c */
/* The server answers and lists the model (picked: what model: auto will use). */
bool doctor_check_models(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p,
                         char *picked, size_t n);
/* A one-token completion, its latency, and whether it carries token probabilities. */
void doctor_check_completion(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p);
void doctor_check_cloud_key(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p);

#endif
