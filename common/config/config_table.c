/* The configuration's key table: every key's type, default, range, check and
 * description, the value checks the table names, and the default cascade.
 *
 * It is data, kept apart from config.c (loading, derived values, validation)
 * so that adding a key is one entry here and never touches the loading code;
 * config_map.c turns these entries into parsing, defaults, error messages and
 * the documented example file. Keys whose value depends on other keys
 * (topic_root on site, min_confidence on the preset, a tier's URL, key
 * variable and timeout on its provider) have no default here: config.c fills
 * them in after the file is applied. */
#include "config_table.h"

#include <arpa/inet.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <string.h>

#include "edgecascade/config.h"

#define TIER_NAME_MAX 127 /* names and models travel in messages capped at 128 bytes */

static const char *const provider_names[] = {"vllm",   "openai-compatible", "ollama",
                                             "openai", "anthropic",         NULL};
static const char *const preset_names[] = {"aggressive", "balanced", "conservative", NULL};
static const double preset_thresholds[] = {0.60, 0.70, 0.85};
static const char *const level_names[] = {"error", "warn", "info", "debug", NULL};
static const char *const queue_full_names[] = {"reject_new", "drop_oldest", NULL};

/* ---- value checks ---- */

static bool has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    return false;
}

static const char *check_printable(const char *v)
{
    return has_control(v) ? "must not contain control characters" : NULL;
}

/* The site becomes one level of every topic. */
static const char *check_site(const char *v)
{
    if (has_control(v) || strpbrk(v, "/+# "))
        return "must not contain '/', '+', '#', spaces or control characters";
    return NULL;
}

static const char *check_topic_root(const char *v)
{
    size_t n = strlen(v);
    if (has_control(v) || strpbrk(v, "+#"))
        return "must not contain '+', '#' or control characters";
    if (n && (v[0] == '/' || v[n - 1] == '/'))
        return "must not start or end with '/'";
    return NULL;
}

static const char *check_broker(const char *v)
{
    static const char *const schemes[] = {"tcp://",   "ssl://", "mqtt://",
                                          "mqtts://", "ws://",  "wss://"};
    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (strncmp(v, schemes[i], strlen(schemes[i])) == 0 && !has_control(v))
            return NULL;
    return "must be a URI like tcp://host:1883 (tcp, ssl, mqtt, mqtts, ws or wss)";
}

static const char *check_url(const char *v)
{
    if ((strncmp(v, "http://", 7) == 0 || strncmp(v, "https://", 8) == 0) && !has_control(v) &&
        !strchr(v, ' '))
        return NULL;
    return "must be an http:// or https:// URL";
}

/* The HTTP server binds one IPv4 address (127.0.0.1 by default, 0.0.0.0 for all). */
static const char *check_ipv4(const char *v)
{
    struct in_addr a;
    return inet_pton(AF_INET, v, &a) == 1 ? NULL : "must be an IPv4 address like 127.0.0.1";
}

/* A redaction pattern must compile, so a typo stops the service at start (or
 * a reload is refused) instead of silently masking nothing. */
static const char *check_regex(const char *v)
{
    static _Thread_local char why[200];
    regex_t r;
    /* The same flags as the router's redactor (services/router/redact.c). */
    int rc = regcomp(&r, v, REG_EXTENDED);
    if (rc == 0) {
        /* A pattern that matches the empty string would mask nothing and
         * loop on every position: refuse it. */
        bool matches_empty = regexec(&r, "", 0, NULL, 0) == 0;
        regfree(&r);
        if (matches_empty) {
            snprintf(why, sizeof(why), "must not match the empty string");
            return why;
        }
        return NULL;
    }
    char msg[120];
    regerror(rc, &r, msg, sizeof(msg));
    snprintf(why, sizeof(why), "not a valid POSIX extended regular expression (%s)", msg);
    return why;
}

/* Placeholders are [WORD]: upper-case letters, digits and '_'. */
static const char *check_label(const char *v)
{
    for (const char *p = v; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return "must be upper-case letters, digits or '_' (it becomes [LABEL])";
    return NULL;
}

/* router.response_topics: an MQTT filter ('+' a whole level, '#' the whole
 * last level) in which {asker} and {root} are the only placeholders. */
static const char *check_reply_filter(const char *v)
{
    if (has_control(v))
        return "must not contain control characters";
    const char *level = v;
    for (const char *p = v;; p++) {
        if (*p == '/' || !*p) {
            size_t n = (size_t)(p - level);
            if ((memchr(level, '+', n) && n != 1) || (memchr(level, '#', n) && (n != 1 || *p)))
                return "must be an MQTT filter: '+' stands alone in a level, '#' is the whole "
                       "last level";
            if (!*p)
                break;
            level = p + 1;
        }
    }
    for (const char *b = strchr(v, '{'); b; b = strchr(b + 1, '{'))
        if (strncmp(b, "{asker}", 7) != 0 && strncmp(b, "{root}", 6) != 0)
            return "the only placeholders are {asker} and {root}";
    return NULL;
}

/* An asker is one topic level: the <user> of <root>/query/<user>. */
static const char *check_asker(const char *v)
{
    if (has_control(v) || strpbrk(v, "/+#"))
        return "must be a user name as in <root>/query/<user> (no '/', '+', '#')";
    return NULL;
}

/* ---- the tables ---- */

#define TIER(f) offsetof(ec_tier_cfg, f)
#define CFG(f)  offsetof(ec_config, f)

/* One entry per key, kept compact. */
// clang-format off
const ec_cm_entry ec_config_tier_table[] = {
    {.type = EC_CM_STR, .key = "name", .offset = TIER(name), .def_doc = "the model",
     .desc = "unique tier name", .flags = EC_CM_NONEMPTY, .max_len = TIER_NAME_MAX,
     .check = check_printable},
    {.type = EC_CM_STR, .key = "provider", .offset = TIER(provider), .desc = "model API",
     .choices = provider_names, .flags = EC_CM_REQUIRED},
    {.type = EC_CM_STR, .key = "model", .offset = TIER(model),
     .desc = "model name sent to the provider; \"auto\" (local tiers): the one the server "
             "lists (edgecascade-local asks it at start and every local.discovery_interval_s)",
     .flags = EC_CM_REQUIRED | EC_CM_NONEMPTY,
     .max_len = TIER_NAME_MAX, .check = check_printable},
    {.type = EC_CM_STR, .key = "base_url", .offset = TIER(base_url), .desc = "API base URL",
     .def_doc = "vllm, openai-compatible http://127.0.0.1:8000/v1; ollama "
                "http://127.0.0.1:11434; openai https://api.openai.com/v1; anthropic "
                "https://api.anthropic.com/v1",
     .flags = EC_CM_NONEMPTY, .check = check_url},
    {.type = EC_CM_STR, .key = "api_key_env", .offset = TIER(api_key_env),
     .desc = "environment variable holding the API key",
     .def_doc = "openai OPENAI_API_KEY, anthropic ANTHROPIC_API_KEY, others none",
     .check = check_printable},
    {.type = EC_CM_STR, .key = "api_key_file", .offset = TIER(api_key_file), .def = "",
     .desc = "file whose first line is the API key, used when the variable is unset",
     .check = check_printable},
    {.type = EC_CM_DOUBLE, .key = "cost_per_1k", .offset = TIER(cost_per_1k), .def = "0",
     .desc = "blended USD per 1K tokens", .min = 0, .max = INFINITY},
    {.type = EC_CM_DOUBLE, .key = "input_per_1m", .offset = TIER(input_per_1m), .def = "0",
     .desc = "USD per 1M input tokens (with output_per_1m, wins over cost_per_1k)", .min = 0,
     .max = INFINITY},
    {.type = EC_CM_DOUBLE, .key = "output_per_1m", .offset = TIER(output_per_1m), .def = "0",
     .desc = "USD per 1M output tokens", .min = 0, .max = INFINITY},
    {.type = EC_CM_U32, .key = "timeout_ms", .offset = TIER(timeout_ms),
     .desc = "HTTP timeout of one call", .def_doc = "local 30000, cloud 60000", .min = 100,
     .max = 600000},
    {.type = EC_CM_DOUBLE, .key = "min_confidence", .offset = TIER(min_confidence), .def = "-1",
     .desc = "per-tier gate threshold; -1 uses the gate's", .min = -1, .max = 1},
    {.type = EC_CM_BOOL, .key = "logprobs", .offset = TIER(logprobs), .def = "true",
     .desc = "ask for token logprobs"},
    {.type = EC_CM_STR, .key = "failover_of", .offset = TIER(failover_of), .def = "",
     .desc = "name of an earlier tier this one replaces when that one fails (e.g. Anthropic "
             "for OpenAI); used only then", .check = check_printable},
    {.type = EC_CM_STR, .key = "prefer_model", .offset = TIER(prefer_model), .def = "",
     .desc = "with model: auto, the model to use when the server lists it (\"\": the first "
             "listed)", .max_len = TIER_NAME_MAX, .check = check_printable},
    {0},
};

static const ec_cm_entry mqtt_table[] = {
    {.type = EC_CM_STR, .key = "broker", .offset = CFG(broker), .def = "tcp://127.0.0.1:1883",
     .desc = "broker URI", .flags = EC_CM_NONEMPTY, .check = check_broker},
    {.type = EC_CM_STR, .key = "username", .offset = CFG(username), .def = "",
     .desc = "user name, empty for none", .check = check_printable},
    {.type = EC_CM_SECRET, .key = "password", .offset = CFG(password), .def = "",
     .desc = "password"},
    {.type = EC_CM_STR, .key = "password_file", .offset = CFG(password_file), .def = "",
     .desc = "file whose first line is the password, used when password is empty",
     .check = check_printable},
    {.type = EC_CM_STR, .key = "ca_file", .offset = CFG(ca_file), .def = "",
     .desc = "TLS (ssl:// or mqtts:// broker): CA certificate(s) to trust; empty: the system's",
     .check = check_printable},
    {.type = EC_CM_STR, .key = "cert_file", .offset = CFG(cert_file), .def = "",
     .desc = "TLS client certificate (PEM), empty for none", .check = check_printable},
    {.type = EC_CM_STR, .key = "key_file", .offset = CFG(key_file), .def = "",
     .desc = "private key of cert_file (PEM)", .check = check_printable},
    {.type = EC_CM_INT, .key = "keepalive_s", .offset = CFG(keepalive_s), .def = "30",
     .desc = "keepalive interval in seconds", .min = 5, .max = 3600},
    {.type = EC_CM_INT, .key = "max_inflight", .offset = CFG(max_inflight), .def = "256",
     .desc = "outstanding QoS 1 publishes per client", .min = 1, .max = 65535},
    {.type = EC_CM_INT, .key = "queue_size", .offset = CFG(queue_size), .def = "4096",
     .desc = "inbound message queue per service", .min = 16, .max = 1000000},
    {.type = EC_CM_STR, .key = "client_id", .offset = CFG(client_id), .def = "",
     .desc = "client id prefix; empty: edgecascade-<service>-<site>-<host>. Must stay the same "
             "across restarts so the broker keeps the session", .check = check_printable},
    {.type = EC_CM_BOOL, .key = "shared_subscriptions", .offset = CFG(shared_subscriptions),
     .def = "false",
     .desc = "several copies of a service split its work ($share/...). Off by default: "
             "Mosquitto 2.0 does not keep shared-subscription messages for a service across a "
             "broker restart"},
    {.type = EC_CM_U32, .key = "session_expiry_s", .offset = CFG(session_expiry_s),
     .def = "3600", .desc = "how long the broker keeps a stopped service's messages",
     .min = 0, .max = 604800},
    {0},
};

static const ec_cm_entry store_table[] = {
    {.type = EC_CM_STR, .key = "path", .offset = CFG(db_path), .def = "edgecascade.db",
     .desc = "SQLite decision log", .flags = EC_CM_NONEMPTY, .check = check_printable},
    {.type = EC_CM_INT, .key = "batch_ms", .offset = CFG(store_batch_ms), .def = "50",
     .desc = "commit batching interval in ms", .min = 1, .max = 10000},
    {0},
};

static const ec_cm_entry offset_table[] = {
    {.type = EC_CM_DOUBLE, .key = "trivial", .offset = CFG(gate_offset[1]), .def = "0",
     .desc = "e.g. a lookup or a yes/no", .min = -1, .max = 1},
    {.type = EC_CM_DOUBLE, .key = "simple", .offset = CFG(gate_offset[2]), .def = "0",
     .desc = "one short question", .min = -1, .max = 1},
    {.type = EC_CM_DOUBLE, .key = "moderate", .offset = CFG(gate_offset[3]), .def = "0",
     .desc = "a longer question or some domain terms", .min = -1, .max = 1},
    {.type = EC_CM_DOUBLE, .key = "hard", .offset = CFG(gate_offset[4]), .def = "0",
     .desc = "several steps or many domain terms", .min = -1, .max = 1},
    {.type = EC_CM_DOUBLE, .key = "expert", .offset = CFG(gate_offset[5]), .def = "0",
     .desc = "multi-step expert reasoning (derive, prove, design)", .min = -1, .max = 1},
    {0},
};

static const ec_cm_entry gate_table[] = {
    {.type = EC_CM_STR, .key = "preset", .offset = CFG(gate_preset), .def = "balanced",
     .desc = "threshold preset, 0.60 / 0.70 / 0.85", .choices = preset_names},
    {.type = EC_CM_DOUBLE, .key = "min_confidence", .offset = CFG(min_confidence),
     .desc = "confidence threshold, overrides the preset when given",
     .def_doc = "the preset's", .min = 0, .max = 1},
    {.type = EC_CM_STR, .key = "calibration", .offset = CFG(gate_calibration), .def = "",
     .desc = "calibration file written by `edgecascade calibrate`: confidences become the "
             "probability that a local draft is correct, and the preset picks the file's "
             "threshold (balanced: its target); an explicit min_confidence still wins",
     .check = check_printable},
    {.type = EC_CM_BOOL, .key = "preroute", .offset = CFG(gate_preroute), .def = "false",
     .desc = "send hard and expert queries straight to the first cloud tier"},
    {.type = EC_CM_SECTION, .key = "complexity_offset", .sub = offset_table,
     .desc = "added to the threshold by query complexity (estimated from the query text)"},
    {.type = EC_CM_DOUBLE, .key = "shadow_rate", .offset = CFG(shadow_rate), .def = "0",
     .desc = "share of locally accepted queries also sent to the cloud, to measure the local "
             "error rate (the cloud answer is recorded, not served; it costs money)",
     .min = 0, .max = 1},
    {.type = EC_CM_INT, .key = "samples", .offset = CFG(samples), .def = "1",
     .desc = "self-consistency: local answers drawn per query; accepted only if they agree "
             "(1 = off)", .min = 1, .max = 9},
    {.type = EC_CM_DOUBLE, .key = "sample_temperature", .offset = CFG(sample_temperature),
     .def = "0.7", .desc = "temperature of the extra samples", .min = 0, .max = 2},
    {0},
};

#define RT(f) offsetof(ec_reply_topic_cfg, f)
#define AW(f) offsetof(ec_asker_weight_cfg, f)

static const ec_cm_entry reply_topic_table[] = {
    {.type = EC_CM_STR, .key = "filter", .offset = RT(filter),
     .desc = "MQTT filter, {asker} and {root} substituted, e.g. plc/{asker}/#",
     .flags = EC_CM_REQUIRED | EC_CM_NONEMPTY, .max_len = 256, .check = check_reply_filter},
    {0},
};

static const ec_cm_entry asker_weight_table[] = {
    {.type = EC_CM_STR, .key = "asker", .offset = AW(asker),
     .desc = "the user name the broker authenticated (<root>/query/<user>)",
     .flags = EC_CM_REQUIRED | EC_CM_NONEMPTY, .max_len = 128, .check = check_asker},
    {.type = EC_CM_INT, .key = "weight", .offset = AW(weight), .def = "1",
     .desc = "local-model turns per round, against 1 for an asker not listed", .min = 1,
     .max = 100},
    {0},
};

static const ec_cm_entry router_table[] = {
    {.type = EC_CM_INT, .key = "workers", .offset = CFG(router_workers), .def = "2",
     .desc = "worker threads", .min = 1, .max = 64},
    {.type = EC_CM_INT, .key = "max_pending", .offset = CFG(max_pending), .def = "4096",
     .desc = "queries taken and not yet answered (in flight or waiting for the local model) "
             "before answering busy",
     .min = 1, .max = 100000},
    {.type = EC_CM_INT, .key = "local_inflight", .offset = CFG(local_inflight), .def = "0",
     .desc = "requests out to the local model at once; more wait in the router, in arrival "
             "order (0: 4 x local.workers)",
     .min = 0, .max = 100000},
    {.type = EC_CM_U32, .key = "max_wait_ms", .offset = CFG(max_wait_ms), .def = "0",
     .desc = "also answer new queries for the local model busy while it is this far behind, "
             "for a plant that wants refusals fast (0: off; a query that would miss the "
             "tier's timeout_ms or its deadline is refused either way)",
     .max = 3600000},
    {.type = EC_CM_U32, .key = "query_timeout_ms", .offset = CFG(query_timeout_ms),
     .def = "60000", .desc = "deadline of a whole query, all tiers", .min = 100,
     .max = 3600000},
    {.type = EC_CM_BOOL, .key = "offline_queue", .offset = CFG(offline_queue), .def = "true",
     .desc = "cloud unavailable: answer with the local draft (degraded) and queue the "
             "escalation; the cloud answer follows as revision 2"},
    {.type = EC_CM_U32, .key = "queue_ttl_s", .offset = CFG(queue_ttl_s), .def = "86400",
     .desc = "how long a queued escalation may wait (MQTT Message Expiry wins when shorter)",
     .min = 1, .max = 2592000},
    {.type = EC_CM_INT, .key = "queue_max", .offset = CFG(queue_max), .def = "10000",
     .desc = "queued escalations kept at most", .min = 1, .max = 10000000},
    {.type = EC_CM_STR, .key = "queue_full", .offset = CFG(queue_full), .def = "reject_new",
     .desc = "when the queue is full", .choices = queue_full_names},
    {.type = EC_CM_U32, .key = "replay_interval_ms", .offset = CFG(replay_interval_ms),
     .def = "5000", .desc = "how often the queue is retried while the cloud is down",
     .min = 50, .max = 3600000},
    {.type = EC_CM_BOOL, .key = "copy_results", .offset = CFG(copy_results), .def = "true",
     .desc = "publish a Result that goes to the query's Response Topic also to "
             "<root>/result/<id>, where dashboards, the fleet bridge and edgecascade tail follow "
             "every result; false saves that second publish (about a tenth of the pipeline's "
             "CPU per query). A query without a Response Topic gets its Result there either way"},
    {.type = EC_CM_U32, .key = "copy_unheard_ms", .offset = CFG(copy_unheard_ms), .def = "10",
     .desc = "while the broker answers that nobody subscribes to <root>/result/# (MQTT v5 "
             "reason 0x10; a bridge or a persistent session, even disconnected, is a "
             "subscriber), publish a copy at most once per this many ms, so a new subscriber "
             "gets copies within about that long; 0 publishes every copy",
     .min = 0, .max = 60000},
    {.type = EC_CM_BOOL, .key = "journal", .offset = CFG(journal), .def = "true",
     .desc = "write each query to the store on arrival so a crash loses none"},
    {.type = EC_CM_BOOL, .key = "require_identity", .offset = CFG(require_identity),
     .def = "false",
     .desc = "answer only queries on <root>/query/<user> (the broker's ACL lets a user write "
             "only its own); one on the bare <root>/query gets the error identity_required"},
    {.type = EC_CM_LIST, .key = "response_topics", .offset = CFG(reply_topics),
     .sub = reply_topic_table, .count_offset = CFG(n_reply_topics),
     .stride = sizeof(ec_reply_topic_cfg), .min_items = 0, .max_items = EC_MAX_REPLY_TOPICS,
     .desc = "where a Result may go: list of {filter}; none given: any topic outside <root>/, "
             "and <root>/replies/#. A query whose Response Topic matches none gets the error "
             "bad_response_topic on <root>/result/<id> only. $-topics and the services' own "
             "topics (<root>/query, result, infer, reply, status, cmd, stats) never match"},
    {.type = EC_CM_INT, .key = "asker_max_pending", .offset = CFG(asker_max_pending),
     .def = "0",
     .desc = "queries one asker may have taken and not yet answered; more are answered busy "
             "while the others are served (0: router.max_pending; askers take the local model "
             "in turn either way)",
     .min = 0, .max = 100000},
    {.type = EC_CM_LIST, .key = "asker_weights", .offset = CFG(asker_weights),
     .sub = asker_weight_table, .count_offset = CFG(n_asker_weights),
     .stride = sizeof(ec_asker_weight_cfg), .min_items = 0, .max_items = EC_MAX_ASKER_WEIGHTS,
     .desc = "turns at the local model per round: list of {asker, weight}, e.g. a safety PLC "
             "first"},
    {0},
};

static const ec_cm_entry stats_table[] = {
    {.type = EC_CM_U32, .key = "interval_s", .offset = CFG(stats_interval_s), .def = "5",
     .desc = "the router publishes a retained JSON stats document on <root>/stats this often "
             "(seconds); 0 = off", .min = 0, .max = 86400},
    {0},
};

static const ec_cm_entry http_table[] = {
    {.type = EC_CM_INT, .key = "port", .offset = CFG(http_port), .def = "0",
     .desc = "the router's HTTP port: /metrics (Prometheus), /api/stats, /api/decisions and a "
             "live dashboard at /; 0 = off", .min = 0, .max = 65535},
    {.type = EC_CM_STR, .key = "bind", .offset = CFG(http_bind), .def = "127.0.0.1",
     .desc = "address the HTTP server listens on (0.0.0.0: every interface; the endpoints "
             "have no authentication)", .check = check_ipv4},
    {0},
};

static const ec_cm_entry local_table[] = {
    {.type = EC_CM_INT, .key = "workers", .offset = CFG(local_workers), .def = "4",
     .desc = "concurrent local model calls", .min = 1, .max = 64},
    {.type = EC_CM_U32, .key = "discovery_interval_s", .offset = CFG(discovery_interval_s),
     .def = "60", .desc = "with a tier's model: auto, seconds between checks of the model "
     "server's list (a vanished model is reported)", .min = 1, .max = 86400},
    {0},
};

static const ec_cm_entry breaker_table[] = {
    {.type = EC_CM_INT, .key = "consecutive", .offset = CFG(breaker.consecutive), .def = "5",
     .desc = "consecutive failed calls that open the breaker", .min = 1, .max = 1000},
    {.type = EC_CM_INT, .key = "window", .offset = CFG(breaker.window), .def = "20",
     .desc = "calls in the sliding window for the rates", .min = 1, .max = 1000},
    {.type = EC_CM_INT, .key = "min_calls", .offset = CFG(breaker.min_calls), .def = "10",
     .desc = "calls in the window before a rate can open it", .min = 1, .max = 1000},
    {.type = EC_CM_DOUBLE, .key = "failure_rate", .offset = CFG(breaker.failure_rate),
     .def = "0.5", .desc = "share of failed calls in the window that opens it", .min = 0.01,
     .max = 1},
    {.type = EC_CM_U32, .key = "slow_call_ms", .offset = CFG(breaker.slow_call_ms),
     .def = "20000", .desc = "a call slower than this counts as slow", .min = 1,
     .max = 600000},
    {.type = EC_CM_DOUBLE, .key = "slow_rate", .offset = CFG(breaker.slow_rate), .def = "0.8",
     .desc = "share of slow calls in the window that opens it", .min = 0.01, .max = 1},
    {.type = EC_CM_U32, .key = "open_ms", .offset = CFG(breaker.open_ms), .def = "30000",
     .desc = "how long it stays open before letting probes through", .min = 10,
     .max = 3600000},
    {.type = EC_CM_INT, .key = "half_open_probes", .offset = CFG(breaker.half_open_probes),
     .def = "1", .desc = "probe calls let through when half-open; all must succeed to close",
     .min = 1, .max = 100},
    {0},
};

static const ec_cm_entry relay_table[] = {
    {.type = EC_CM_INT, .key = "workers", .offset = CFG(relay_workers), .def = "4",
     .desc = "concurrent cloud model calls", .min = 1, .max = 64},
    {.type = EC_CM_INT, .key = "retries", .offset = CFG(relay_retries), .def = "2",
     .desc = "extra attempts on timeouts, 429 and 5xx, within the query's deadline", .min = 0,
     .max = 10},
    {.type = EC_CM_U32, .key = "backoff_ms", .offset = CFG(backoff_ms), .def = "200",
     .desc = "backoff base (capped exponential, full jitter; Retry-After wins)", .min = 1,
     .max = 60000},
    {.type = EC_CM_U32, .key = "backoff_max_ms", .offset = CFG(backoff_max_ms), .def = "4000",
     .desc = "backoff cap", .min = 1, .max = 600000},
    {.type = EC_CM_SECTION, .key = "breaker", .sub = breaker_table,
     .desc = "circuit breaker per cloud tier"},
    {0},
};

#define PAT(f) offsetof(ec_redact_pattern_cfg, f)

static const ec_cm_entry redact_pattern_table[] = {
    {.type = EC_CM_STR, .key = "regex", .offset = PAT(regex),
     .desc = "POSIX extended regular expression, e.g. SN-[0-9]{6}",
     .flags = EC_CM_REQUIRED | EC_CM_NONEMPTY, .max_len = 512, .check = check_regex},
    {.type = EC_CM_STR, .key = "label", .offset = PAT(label), .def = "SERIAL",
     .desc = "placeholder word: a match becomes [LABEL]", .flags = EC_CM_NONEMPTY,
     .max_len = 32, .check = check_label},
    {0},
};

static const ec_cm_entry privacy_table[] = {
    {.type = EC_CM_BOOL, .key = "redact", .offset = CFG(redact), .def = "true",
     .desc = "mask personal data in every prompt that leaves the device (cloud tiers, shadow "
             "calls, queue replays); local tiers get the original"},
    {.type = EC_CM_BOOL, .key = "email", .offset = CFG(redact_email), .def = "true",
     .desc = "e-mail addresses become [EMAIL]"},
    {.type = EC_CM_BOOL, .key = "phone", .offset = CFG(redact_phone), .def = "true",
     .desc = "phone numbers (+country code, or 555-123-4567 style) become [PHONE]"},
    {.type = EC_CM_BOOL, .key = "ip", .offset = CFG(redact_ip), .def = "true",
     .desc = "IPv4 and IPv6 addresses become [IP]"},
    {.type = EC_CM_LIST, .key = "patterns", .offset = CFG(redact_patterns),
     .sub = redact_pattern_table, .count_offset = CFG(n_redact_patterns),
     .stride = sizeof(ec_redact_pattern_cfg), .min_items = 0,
     .max_items = EC_MAX_REDACT_PATTERNS,
     .desc = "extra patterns (serial numbers, asset tags): list of {regex, label}"},
    {0},
};

static const ec_cm_entry budget_table[] = {
    {.type = EC_CM_DOUBLE, .key = "daily_usd", .offset = CFG(budget_daily_usd), .def = "0",
     .desc = "cap on cloud spend per UTC day; 0 = no cap", .min = 0, .max = INFINITY},
    {.type = EC_CM_DOUBLE, .key = "monthly_usd", .offset = CFG(budget_monthly_usd), .def = "0",
     .desc = "cap on cloud spend per UTC month; 0 = no cap", .min = 0, .max = INFINITY},
    {.type = EC_CM_DOUBLE, .key = "warn_at", .offset = CFG(budget_warn_at), .def = "0.8",
     .desc = "share of a cap that raises a warning on <root>/status/budget", .min = 0.01,
     .max = 1},
    {0},
};

static const ec_cm_entry cache_table[] = {
    {.type = EC_CM_BOOL, .key = "enabled", .offset = CFG(cache_enabled), .def = "true",
     .desc = "answer a repeated query (same messages and parameters) from memory"},
    {.type = EC_CM_U32, .key = "ttl_s", .offset = CFG(cache_ttl_s), .def = "3600",
     .desc = "how long a cached answer is served", .min = 1, .max = 2592000},
    {.type = EC_CM_INT, .key = "max_entries", .offset = CFG(cache_max_entries), .def = "1024",
     .desc = "answers kept at most (least recently used go first)", .min = 1, .max = 1000000},
    {.type = EC_CM_U32, .key = "max_bytes", .offset = CFG(cache_max_bytes), .def = "8388608",
     .desc = "memory the cached prompts and answers may take", .min = 1024,
     .max = 1073741824},
    {.type = EC_CM_BOOL, .key = "unset_temperature", .offset = CFG(cache_unset_temperature),
     .def = "true",
     .desc = "also cache queries without a temperature (temperature 0 is always cached, "
             "above 0 never)"},
    {0},
};

static const ec_cm_entry log_table[] = {
    {.type = EC_CM_STR, .key = "level", .offset = CFG(log_level), .def = "info",
     .desc = "verbosity", .choices = level_names},
    {0},
};

const ec_cm_entry ec_config_table[] = {
    {.type = EC_CM_STR, .key = "site", .offset = CFG(site), .def = "site1",
     .desc = "plant/site name, used in the topic root", .flags = EC_CM_NONEMPTY,
     .check = check_site},
    {.type = EC_CM_STR, .key = "topic_root", .offset = CFG(topic_root),
     .desc = "MQTT topic root", .def_doc = "edgecascade/<site>", .flags = EC_CM_NONEMPTY,
     .check = check_topic_root},
    {.type = EC_CM_SECTION, .key = "mqtt", .sub = mqtt_table, .desc = "MQTT broker"},
    {.type = EC_CM_SECTION, .key = "store", .sub = store_table, .desc = "decision log"},
    {.type = EC_CM_SECTION, .key = "gate", .sub = gate_table,
     .desc = "quality gate: when a draft answer is good enough"},
    {.type = EC_CM_SECTION, .key = "router", .sub = router_table, .desc = "edgecascade-router"},
    {.type = EC_CM_SECTION, .key = "stats", .sub = stats_table,
     .desc = "the router's stats topic"},
    {.type = EC_CM_SECTION, .key = "http", .sub = http_table,
     .desc = "the router's HTTP server (metrics, stats, dashboard)"},
    {.type = EC_CM_SECTION, .key = "local", .sub = local_table, .desc = "edgecascade-local"},
    {.type = EC_CM_SECTION, .key = "relay", .sub = relay_table, .desc = "edgecascade-relay"},
    {.type = EC_CM_SECTION, .key = "privacy", .sub = privacy_table,
     .desc = "redaction before a prompt leaves the device"},
    {.type = EC_CM_SECTION, .key = "budget", .sub = budget_table,
     .desc = "caps on cloud spend (edgecascade-router)"},
    {.type = EC_CM_SECTION, .key = "cache", .sub = cache_table,
     .desc = "answer cache (edgecascade-router)"},
    {.type = EC_CM_SECTION, .key = "log", .sub = log_table, .desc = "logging"},
    {.type = EC_CM_LIST, .key = "tiers", .offset = CFG(tiers), .sub = ec_config_tier_table,
     .count_offset = CFG(n_tiers), .stride = sizeof(ec_tier_cfg), .min_items = 1,
     .max_items = EC_MAX_TIERS, .finish = ec_config_tier_finish,
     .desc = "model tiers in cascade order, first = cheapest; a list here replaces the default"},
    {0},
};
// clang-format on

/* The default cascade, as the keys a person would write in the file. */
static const ec_config_kv default_local[] = {{"name", "local"},
                                             {"provider", "vllm"},
                                             {"model", "llama3.2-1b"},
                                             {"base_url", "http://127.0.0.1:8000/v1"},
                                             {NULL, NULL}};
static const ec_config_kv default_cloud[] = {{"name", "cloud"},         {"provider", "openai"},
                                             {"model", "gpt-4o-mini"},  {"input_per_1m", "0.15"},
                                             {"output_per_1m", "0.60"}, {NULL, NULL}};
const ec_config_kv *const ec_config_default_tiers[] = {default_local, default_cloud};
const size_t ec_config_n_default_tiers =
    sizeof(ec_config_default_tiers) / sizeof(ec_config_default_tiers[0]);

int ec_gate_preset_threshold(const char *preset, double *out)
{
    for (size_t i = 0; preset && preset_names[i]; i++) {
        if (strcmp(preset, preset_names[i]) == 0) {
            if (out)
                *out = preset_thresholds[i];
            return 0;
        }
    }
    return -1;
}

const ec_cm_entry *ec_config_root_table(void)
{
    return ec_config_table;
}
