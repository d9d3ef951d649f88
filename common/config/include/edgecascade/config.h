/* edgecascade configuration: one YAML file shared by every service.
 *
 * The loader is table-driven (after Fluent Bit's config_map): each key has a
 * type, a default, an offset into the struct and a description. The same table
 * fills the struct, rejects unknown keys naming the key and its line, marks
 * secrets (never printed) and generates the documented example file. Every
 * field has a default, so an empty or absent file is a working configuration. */
#ifndef EC_CONFIG_H
#define EC_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "edgecascade/err.h"

#define EC_MAX_TIERS           8
#define EC_MAX_REDACT_PATTERNS 16
#define EC_MAX_REPLY_TOPICS    16
#define EC_MAX_ASKER_WEIGHTS   64

/* router.response_topics: one allowed Response Topic filter. */
typedef struct ec_reply_topic_cfg {
    char *filter; /* MQTT filter; {asker} and {root} are substituted per query */
} ec_reply_topic_cfg;

/* router.asker_weights: one asker's share of the local model. */
typedef struct ec_asker_weight_cfg {
    char *asker;
    int weight;
} ec_asker_weight_cfg;

/* privacy.patterns: one extra redaction pattern (POSIX extended regex). */
typedef struct ec_redact_pattern_cfg {
    char *regex; /* checked by the loader: a bad one is a config error naming the key */
    char *label; /* placeholder word, "SERIAL" -> [SERIAL] */
} ec_redact_pattern_cfg;

typedef struct ec_tier_cfg {
    char *name;     /* unique; defaults to model */
    char *provider; /* vllm | openai-compatible | ollama | openai | anthropic */
    char *model;
    char *base_url;        /* e.g. http://127.0.0.1:8000/v1, https://api.openai.com/v1 */
    char *api_key_env;     /* environment variable holding the key */
    char *api_key_file;    /* or a file holding it (first line) */
    double cost_per_1k;    /* blended USD per 1K tokens (the seed's form) */
    double input_per_1m;   /* or separate USD per 1M input tokens... */
    double output_per_1m;  /* ...and per 1M output tokens; these win when set */
    uint32_t timeout_ms;   /* HTTP timeout for one call */
    double min_confidence; /* per-tier gate override; < 0 means use the gate's */
    bool logprobs;         /* request token logprobs (default true) */
    char *failover_of;     /* "" or the name of the tier this one stands in for when it fails */
    char *prefer_model;    /* model "auto": the served model to pick when listed ("" = first) */
    bool local;            /* derived from provider: served by edgecascade-local */
} ec_tier_cfg;

/* The relay's circuit breaker, one per cloud tier (services/relay/breaker.h). */
typedef struct ec_breaker_cfg {
    int consecutive;       /* consecutive failures that open it */
    int window;            /* calls in the sliding window */
    int min_calls;         /* calls needed before the rates count */
    double failure_rate;   /* share of failures in the window that opens it */
    uint32_t slow_call_ms; /* a call slower than this is slow */
    double slow_rate;      /* share of slow calls in the window that opens it */
    uint32_t open_ms;      /* how long it stays open before probing */
    int half_open_probes;  /* probe calls let through when half-open */
} ec_breaker_cfg;

typedef struct ec_config {
    char *site;       /* default "site1" */
    char *topic_root; /* default "edgecascade/<site>" */

    /* mqtt */
    char *broker; /* default tcp://127.0.0.1:1883 */
    char *username;
    char *password;      /* sensitive */
    char *password_file; /* or a file whose first line is the password; read by the service */
    char *ca_file;   /* TLS (ssl:// or mqtts://): CA bundle that signed the broker's certificate */
    char *cert_file; /* TLS client certificate, "" for none */
    char *key_file;  /* and its private key */
    int keepalive_s;
    int max_inflight;
    int queue_size;
    char *client_id; /* "" = edgecascade-<service>-<site>-<host>; stable across restarts */
    uint32_t session_expiry_s; /* how long the broker keeps a service's session and messages */
    bool shared_subscriptions; /* several copies of a service split its work ($share/...) */

    /* store */
    char *db_path; /* default edgecascade.db */
    int store_batch_ms;

    /* gate */
    char *gate_preset;         /* aggressive | balanced | conservative */
    double min_confidence;     /* resolved: explicit value, else the preset's */
    char *gate_calibration;    /* calibration file from `edgecascade calibrate`; "" = none */
    bool gate_preroute;        /* send hard and expert queries straight to the first cloud tier */
    double gate_offset[6];     /* threshold offset per query complexity (ec_complexity 1..5) */
    double shadow_rate;        /* share of locally accepted queries also asked to the cloud */
    int samples;               /* self-consistency: answers the local tier draws (1 = off) */
    double sample_temperature; /* temperature of the extra samples */

    /* router */
    int router_workers;
    int max_pending;      /* in-flight queries before answering busy */
    int local_inflight;   /* requests out to local tiers at once; 0: 4 x local_workers */
    uint32_t max_wait_ms; /* refuse new queries while the local window is this far behind */
    uint32_t query_timeout_ms;
    bool offline_queue;          /* queue escalations while the cloud is unavailable */
    bool copy_results;           /* Results with a Response Topic also on <root>/result/<id> */
    uint32_t copy_unheard_ms;    /* copies at most this often while nobody subscribes */
    uint32_t queue_ttl_s;        /* how long a queued escalation may wait */
    int queue_max;               /* queued escalations kept at most */
    char *queue_full;            /* reject_new | drop_oldest */
    uint32_t replay_interval_ms; /* how often to retry the queue while the cloud is down */
    bool journal;                /* journal each query on arrival, replayed after a crash */
    /* who asked (services/router/access.h, fair.h) */
    bool require_identity; /* refuse queries on the bare <root>/query */
    ec_reply_topic_cfg reply_topics[EC_MAX_REPLY_TOPICS]; /* none: the open default */
    size_t n_reply_topics;
    int asker_max_pending; /* one asker's queries not yet answered; 0: max_pending */
    ec_asker_weight_cfg asker_weights[EC_MAX_ASKER_WEIGHTS];
    size_t n_asker_weights;

    /* observability (router) */
    uint32_t stats_interval_s; /* retained <root>/stats every so many seconds; 0 = off */
    int http_port;             /* metrics, stats and dashboard over HTTP; 0 = off */
    char *http_bind;           /* IPv4 address the HTTP server listens on */

    /* local / relay */
    int local_workers;
    uint32_t discovery_interval_s; /* model "auto": how often the model list is checked */
    int relay_workers;
    int relay_retries;       /* extra attempts on transient errors, within the deadline */
    uint32_t backoff_ms;     /* full-jitter backoff base */
    uint32_t backoff_max_ms; /* and cap */
    ec_breaker_cfg breaker;

    /* privacy: masking before a prompt leaves the device (edgecascade/redact.h) */
    bool redact;       /* the pass at all */
    bool redact_email; /* built-ins */
    bool redact_phone;
    bool redact_ip;
    ec_redact_pattern_cfg redact_patterns[EC_MAX_REDACT_PATTERNS];
    size_t n_redact_patterns;

    /* budget: caps on cloud spend, USD; 0 = no cap */
    double budget_daily_usd;
    double budget_monthly_usd;
    double budget_warn_at; /* share of a cap (0..1) that raises the warning */

    /* cache: exact-match answers (services/router/cache.h) */
    bool cache_enabled;
    uint32_t cache_ttl_s;
    int cache_max_entries;
    uint32_t cache_max_bytes;
    bool cache_unset_temperature; /* also cache queries that give no temperature */

    char *log_level; /* error | warn | info | debug */

    ec_tier_cfg tiers[EC_MAX_TIERS];
    size_t n_tiers;
} ec_config;

/* Fills cfg with every default (two tiers: a local vLLM-style model at
 * http://127.0.0.1:8000/v1 and a cloud OpenAI model). */
ec_err ec_config_defaults(ec_config *cfg, ec_error *err);

/* Loads path on top of the defaults; path NULL means defaults only. Errors
 * name the field and its line: "config.yaml:12: gate.min_confidence: must be
 * between 0 and 1". */
ec_err ec_config_load(ec_config *cfg, const char *path, ec_error *err);
ec_err ec_config_load_string(ec_config *cfg, const char *yaml, size_t len, ec_error *err);

/* Cross-field checks (unique tier names, at least one tier, known providers). */
ec_err ec_config_validate(ec_config *cfg, ec_error *err);

void ec_config_free(ec_config *cfg);

/* Writes the documented example YAML (every key, default and description). */
void ec_config_write_example(FILE *out);

/* Threshold of a named preset: aggressive 0.60, balanced 0.70, conservative 0.85. */
int ec_gate_preset_threshold(const char *preset, double *out); /* 0 on success */

/* Index of the tier called name, or -1. */
int ec_config_tier_index(const ec_config *cfg, const char *name);

/* API key for a tier (env, then file); NULL when none. Caller frees. */
char *ec_tier_api_key(const ec_tier_cfg *t, ec_error *err);

/* USD cost of a call: separate input/output prices per 1M when either is set,
 * else the blended per-1K price on all tokens. */
double ec_tier_cost(const ec_tier_cfg *t, uint32_t tokens_in, uint32_t tokens_out);

/* The model name that asks edgecascade-local to use whatever the server serves. */
#define EC_MODEL_AUTO "auto"
bool ec_tier_model_auto(const ec_tier_cfg *t);

/* For a reload: the first key whose change needs a restart (a dotted path such
 * as "mqtt.broker" or "tiers[1].name"), written into key, or false when next
 * differs from old only in keys that apply to a running service. */
bool ec_config_restart_key(const ec_config *old, const ec_config *next, char *key, size_t keylen);

/* Whether a provider name is served on the device (vllm, openai-compatible, ollama). */
bool ec_provider_is_local(const char *provider);

#endif
