/* edgecascade query: one question through the router, request/response over
 * MQTT v5.
 *
 * With a broker user name (mqtt.username) the query goes to
 * <root>/query/<user>, so the router knows who asks (the broker's ACL lets a
 * user write only its own), and the answer to <root>/replies/<user>/<client
 * id>, the one place under the root a user may read its answers; without one,
 * to <root>/query and <root>/replies/cli/<client id>.
 * The reply topic is unique to this process and is
 * subscribed before the connect returns (ec_mqtt_connect waits for the
 * SUBACK), so the router's answer cannot arrive before we listen. The query
 * carries that topic as its Response Topic and 16 random bytes as Correlation
 * Data; only a message with exactly those bytes is our answer. The session is
 * clean and expires a second after we leave, so the broker keeps nothing of a
 * one-shot client. The query's Message Expiry is the CLI's own timeout: a
 * router that comes up later must not answer a question nobody waits for. */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "cli.h"
#include "edgecascade/buf.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"

#define CORR_LEN           16
#define DEFAULT_TIMEOUT_MS 30000L
#define MAX_TIMEOUT_MS     (3600L * 1000L)

typedef struct query_opts {
    bool json;
    ec_query q; /* prompt, policy, limits, source, id (strings borrowed from argv) */
    long timeout_ms;
    bool prompt_from_stdin;
} query_opts;

void cli_help_query(void)
{
    printf("usage: edgecascade query \"TEXT\" [options]\n"
           "\n"
           "Sends TEXT to edgecascade-router over MQTT and prints the answer with the\n"
           "tier that gave it, its confidence, cost and latency. TEXT '-' reads stdin.\n"
           "\n"
           "options:\n"
           "  --json              print the result object as one line of JSON (exit 0 even\n"
           "                      for an error result; non-zero only when none arrived)\n"
           "  --policy P          auto (default), local_only (never leaves the device) or\n"
           "                      consent (asks a cloud tier only with --consent)\n"
           "  --consent           the person asking consents to the query leaving the device\n"
           "                      (for policy consent; resubmit with it after\n"
           "                      \"escalation withheld\")\n"
           "  --max-tokens N      answer length limit (1..%d)\n"
           "  --temperature T     sampling temperature (0..2)\n"
           "  --source NAME       who asks, recorded in the decision log (default: cli)\n"
           "  --id ID             query id (default: the router makes one)\n"
           "  --timeout-ms N      how long to wait for the result (default %ld)\n",
           EC_MAX_TOKENS_LIMIT, DEFAULT_TIMEOUT_MS);
}

static bool fill_random(void *buf, size_t len)
{
    unsigned char *p = buf;
    while (len > 0) {
        ssize_t n = getrandom(p, len, 0);
        if (n <= 0)
            return false;
        p += n;
        len -= (size_t)n;
    }
    return true;
}

/* Reads the question from stdin (for long prompts and shell pipelines). */
static char *read_stdin_prompt(void)
{
    ec_buf b;
    char chunk[4096];
    size_t n;
    ec_buf_init(&b, EC_MAX_PROMPT);
    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0) {
        if (ec_buf_append(&b, chunk, n) != EC_OK) {
            ec_buf_free(&b);
            return NULL;
        }
    }
    while (b.len > 0 && (b.data[b.len - 1] == '\n' || b.data[b.len - 1] == '\r'))
        b.data[--b.len] = '\0';
    if (b.len == 0) {
        ec_buf_free(&b);
        return strdup("");
    }
    return ec_buf_take(&b, NULL);
}

static int parse_policy(const char *s, ec_policy *out)
{
    char norm[32];
    size_t n = strlen(s);
    if (n >= sizeof(norm))
        return -1;
    /* local-only reads as naturally as local_only on a command line. */
    for (size_t i = 0; i <= n; i++)
        norm[i] = s[i] == '-' ? '_' : s[i];
    return ec_policy_parse(norm, out);
}

/* Fills o from the arguments; the prompt is heap memory joined from the
 * positional words (so an unquoted question still works). */
static int parse_args(int argc, char **argv, query_opts *o, ec_buf *prompt)
{
    cli_args a = {.cmd = "query", .argc = argc, .argv = argv};
    const char *arg;
    bool is_opt;
    int words = 0;
    o->timeout_ms = DEFAULT_TIMEOUT_MS;
    o->q.policy = EC_POLICY_AUTO;
    o->q.source = "cli";
    while (cli_next(&a, &arg, &is_opt)) {
        const char *v = NULL;
        int m;
        if (!is_opt) {
            if (strcmp(arg, "-") == 0 && words == 0) {
                o->prompt_from_stdin = true;
                words++;
                continue;
            }
            if (o->prompt_from_stdin)
                return cli_usage_error("query", "'-' (read stdin) cannot be combined with text");
            if ((words++ > 0 && ec_buf_append(prompt, " ", 1) != EC_OK) ||
                ec_buf_append(prompt, arg, strlen(arg)) != EC_OK)
                return cli_usage_error("query", "question over %u bytes", EC_MAX_PROMPT);
            continue;
        }
        if (strcmp(arg, "--json") == 0) {
            o->json = true;
        } else if (strcmp(arg, "--consent") == 0) {
            o->q.consent = true;
        } else if ((m = cli_opt_value(&a, arg, "--policy", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (parse_policy(v, &o->q.policy) != 0)
                return cli_usage_error("query", "--policy: '%s' is not auto, local_only or consent",
                                       v);
        } else if ((m = cli_opt_value(&a, arg, "--max-tokens", &v)) != 0) {
            long n;
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_long(v, 1, EC_MAX_TOKENS_LIMIT, &n))
                return cli_usage_error("query", "--max-tokens: '%s' is not a number in 1..%d", v,
                                       EC_MAX_TOKENS_LIMIT);
            o->q.max_tokens = (int32_t)n;
        } else if ((m = cli_opt_value(&a, arg, "--temperature", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_double(v, 0.0, 2.0, &o->q.temperature))
                return cli_usage_error("query", "--temperature: '%s' is not a number in 0..2", v);
            o->q.has_temperature = true;
        } else if ((m = cli_opt_value(&a, arg, "--source", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!*v || strlen(v) > EC_MAX_ID)
                return cli_usage_error("query", "--source: must be 1..%u bytes", EC_MAX_ID);
            o->q.source = (char *)v;
        } else if ((m = cli_opt_value(&a, arg, "--id", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!*v || strlen(v) > EC_MAX_ID)
                return cli_usage_error("query", "--id: must be 1..%u bytes", EC_MAX_ID);
            o->q.id = (char *)v;
        } else if ((m = cli_opt_value(&a, arg, "--timeout-ms", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            if (!cli_parse_long(v, 1, MAX_TIMEOUT_MS, &o->timeout_ms))
                return cli_usage_error("query", "--timeout-ms: '%s' is not a number in 1..%ld", v,
                                       MAX_TIMEOUT_MS);
        } else {
            return cli_usage_error("query", "unknown option %s", arg);
        }
    }
    if (words == 0)
        return cli_usage_error("query", "no question given");
    return CLI_EXIT_OK;
}

/* Prints text, indenting continuation lines under the first one. */
static void print_block(const char *label, const char *text)
{
    printf("%-12s", label);
    for (const char *p = text; *p; p++) {
        putchar(*p);
        if (*p == '\n' && p[1])
            printf("%12s", "");
    }
    putchar('\n');
}

static const ec_attempt *answering_attempt(const ec_result *r)
{
    for (size_t i = r->n_attempts; i > 0; i--)
        if (r->attempts[i - 1].tier_index == r->tier_index)
            return &r->attempts[i - 1];
    return NULL;
}

static void print_human(const ec_result *r)
{
    print_block("answer:", r->answer ? r->answer : "(none)");
    printf("%-12s%s (tier %u \"%s\", model %s)\n", "tier:", r->tier ? r->tier : "?", r->tier_index,
           r->tier_name ? r->tier_name : "?", r->model ? r->model : "?");

    const ec_attempt *att = answering_attempt(r);
    bool accepted = att ? att->accepted : r->confidence >= r->threshold;
    if (r->confidence < 0)
        printf("%-12sn/a (threshold %.2f)\n", "confidence:", r->threshold);
    else
        printf("%-12s%.2f (threshold %.2f)  %s\n", "confidence:", r->confidence, r->threshold,
               accepted ? "accepted" : "not accepted");

    if (r->escalated && r->n_attempts > 0) {
        printf("%-12syes (", "escalated:");
        for (size_t i = 0; i < r->n_attempts; i++)
            printf("%s%s", i ? " -> " : "", r->attempts[i].tier ? r->attempts[i].tier : "?");
        printf(")\n");
    } else {
        printf("%-12s%s\n", "escalated:", r->escalated ? "yes" : "no");
    }
    print_block("reason:", r->reason ? r->reason : "");
    if (r->escalation_withheld)
        printf("%-12sescalation withheld: policy consent; resubmit with --consent to let it "
               "reach the cloud\n",
               "note:");
    if (r->degraded)
        printf("%-12sdegraded: the next tier could not be asked or failed (outage, open "
               "breaker, budget cap); this draft stands in\n",
               "note:");
    if (r->redacted)
        printf("%-12sthe prompt was redacted before it left the device\n", "note:");
    printf("%-12s$%.6f\n", "cost:", r->cost_usd);

    printf("%-12s%.1f ms (router %.1f ms", "latency:", r->latency_ms, r->router_ms);
    for (size_t i = 0; i < r->n_attempts; i++) {
        const ec_attempt *a = &r->attempts[i];
        printf("; %s %.1f ms", a->tier ? a->tier : "?", a->latency_ms);
        if (a->error.code)
            printf(" (%s)", a->error.code);
    }
    printf(")\n");
    printf("%-12s%u in / %u out\n", "tokens:", r->tokens_in, r->tokens_out);
    if (r->id)
        printf("%-12s%s\n", "id:", r->id);
}

static ec_err decode_result(const ec_mqtt_msg *msg, ec_result *out, ec_error *err)
{
    if (ec_payload_encoding(msg->payload, msg->len) == EC_ENC_JSON)
        return ec_result_decode_json(msg->payload, msg->len, out, err);
    return ec_result_decode(msg->payload, msg->len, out, err);
}

/* Waits until deadline (ec_mono_ms) for the message carrying corr. EC_OK with
 * *out filled, EC_ERR_TIMEOUT, or a decode error in err. */
static ec_err wait_result(ec_mqtt *m, const unsigned char *corr, double deadline, ec_result *out,
                          ec_error *err)
{
    for (;;) {
        double left = deadline - ec_mono_ms();
        if (left <= 0)
            return ec_error_set(err, EC_ERR_TIMEOUT, "deadline passed");
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(m, &msg, left < 1.0 ? 1 : (int)left);
        if (rc == EC_ERR_TIMEOUT)
            continue;
        if (rc != EC_OK)
            return ec_error_set(err, rc, "MQTT client stopped");
        bool ours =
            msg->corr && msg->corr_len == CORR_LEN && memcmp(msg->corr, corr, CORR_LEN) == 0;
        if (!ours) {
            ec_mqtt_msg_free(msg);
            continue; /* a stale reply or someone else's: not our question */
        }
        rc = decode_result(msg, out, err);
        ec_mqtt_msg_free(msg);
        return rc;
    }
}

/* A user name that is one topic level, else NULL (the router subscribes
 * <root>/query/+: a name with '/' would land nowhere). */
static const char *topic_user(const char *user)
{
    return user && *user && !strpbrk(user, "/+#") ? user : NULL;
}

static char *reply_topic(const char *root, const char *user, const char *client_id)
{
    user = topic_user(user);
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    char *t = NULL;
    if (asprintf(&t, "%.*s/replies/%s/%s", (int)n, root, user ? user : "cli", client_id) < 0)
        return NULL;
    return t;
}

static char *query_topic(const char *root, const char *user)
{
    user = topic_user(user);
    size_t n = strlen(root);
    while (n > 0 && root[n - 1] == '/')
        n--;
    char *t = NULL;
    if (asprintf(&t, "%.*s/query%s%s", (int)n, root, user ? "/" : "", user ? user : "") < 0)
        return NULL;
    return t;
}

static int print_result(const query_opts *o, const ec_result *r)
{
    if (o->json) {
        ec_buf js;
        ec_error err = {0};
        ec_buf_init(&js, 0);
        if (ec_result_encode_json(r, &js, &err) != EC_OK) {
            fprintf(stderr, "edgecascade query: cannot print the result as JSON: %s\n", err.msg);
            ec_buf_free(&js);
            return CLI_EXIT_FAIL;
        }
        fwrite(js.data, 1, js.len, stdout);
        putchar('\n');
        ec_buf_free(&js);
        return CLI_EXIT_OK; /* scripts read the error from the JSON itself */
    }
    if (r->answer || !r->error.code)
        print_human(r);
    if (r->error.code) {
        fflush(stdout);
        fprintf(stderr, "error: %s: %s\n", r->error.code, r->error.message ? r->error.message : "");
        return CLI_EXIT_FAIL;
    }
    return CLI_EXIT_OK;
}

int cli_cmd_query(cli_ctx *ctx, int argc, char **argv)
{
    int rc = CLI_EXIT_FAIL;
    query_opts o = {0};
    ec_buf prompt, payload;
    ec_mqtt *m = NULL;
    ec_result res = {0};
    ec_error err = {0};
    char *stdin_prompt = NULL, *reply = NULL, *qtopic = NULL;
    unsigned char corr[CORR_LEN];
    unsigned char idbytes[8];
    char client_id[64];
    const char *broker = ctx->cfg.broker ? ctx->cfg.broker : "tcp://127.0.0.1:1883";

    ec_buf_init(&prompt, EC_MAX_PROMPT);
    ec_buf_init(&payload, EC_MAX_PAYLOAD);
    if ((rc = parse_args(argc, argv, &o, &prompt)) != CLI_EXIT_OK)
        goto out;
    rc = CLI_EXIT_FAIL;
    if (o.prompt_from_stdin) {
        if (!(stdin_prompt = read_stdin_prompt())) {
            rc = cli_usage_error("query", "question on stdin over %u bytes", EC_MAX_PROMPT);
            goto out;
        }
        o.q.prompt = stdin_prompt;
    } else {
        o.q.prompt = (char *)ec_buf_cstr(&prompt);
    }
    if (!*o.q.prompt) {
        rc = cli_usage_error("query", "the question is empty");
        goto out;
    }

    double deadline = ec_mono_ms() + (double)o.timeout_ms;
    if (!fill_random(corr, sizeof(corr)) || !fill_random(idbytes, sizeof(idbytes))) {
        fprintf(stderr, "edgecascade query: no random bytes from the kernel\n");
        goto out;
    }
    int n = snprintf(client_id, sizeof(client_id), "edgecascade-cli-");
    for (size_t i = 0; i < sizeof(idbytes); i++)
        n += snprintf(client_id + n, sizeof(client_id) - (size_t)n, "%02x", idbytes[i]);

    if (!(reply = reply_topic(ctx->cfg.topic_root, ctx->cfg.username, client_id)) ||
        !(qtopic = query_topic(ctx->cfg.topic_root, ctx->cfg.username))) {
        fprintf(stderr, "edgecascade query: out of memory\n");
        goto out;
    }
    if (ec_query_encode(&o.q, &payload, &err) != EC_OK) {
        /* The encoder validates sizes; its message names the field. */
        rc = cli_usage_error("query", "%s", err.msg);
        goto out;
    }

    ec_mqtt_opts mo = {
        .uri = broker,
        .client_id = client_id,
        .username = ctx->cfg.username,
        .password = ctx->cfg.password,
        .keepalive_s = ctx->cfg.keepalive_s,
        .queue_cap = 16,
        .max_inflight = 4,
        .clean_start = true,
        .session_expiry_s = 1, /* 0 means the library default; one second is "gone" */
    };
    if (ec_mqtt_create(&m, &mo, &err) != EC_OK) {
        fprintf(stderr, "edgecascade query: %s\n", err.msg);
        goto out;
    }
    if (ec_mqtt_subscribe(m, reply, 1, &err) != EC_OK) {
        fprintf(stderr, "edgecascade query: %s\n", err.msg);
        goto out;
    }
    if (ec_mqtt_connect(m, (int)o.timeout_ms, &err) != EC_OK) {
        /* err.msg repeats the URI; the sentence a user needs comes first. */
        fprintf(stderr,
                "edgecascade query: cannot connect to the MQTT broker at %s: is it running? (%s)\n",
                broker, err.msg);
        goto out;
    }

    ec_mqtt_pubprops props = {
        .response_topic = reply,
        .corr = corr,
        .corr_len = sizeof(corr),
        .expiry_s = (uint32_t)((o.timeout_ms + 999) / 1000),
    };
    double left = deadline - ec_mono_ms();
    if (ec_mqtt_publish(m, qtopic, payload.data, payload.len, 1, false, &props,
                        left < 1.0 ? 1 : (int)left, &err) != EC_OK) {
        fprintf(stderr, "edgecascade query: cannot publish to %s on %s: %s\n", qtopic, broker,
                err.msg);
        goto out;
    }

    ec_err wrc = wait_result(m, corr, deadline, &res, &err);
    if (wrc == EC_ERR_TIMEOUT) {
        fprintf(stderr,
                "edgecascade query: no result within %ld ms: is edgecascade-router "
                "running? (broker %s, topic %s)\n",
                o.timeout_ms, broker, qtopic);
        goto out;
    }
    if (wrc != EC_OK) {
        fprintf(stderr, "edgecascade query: malformed result from the router: %s\n", err.msg);
        goto out;
    }
    rc = print_result(&o, &res);

out:
    ec_mqtt_destroy(m);
    ec_result_clear(&res);
    free(stdin_prompt);
    free(reply);
    free(qtopic);
    ec_buf_free(&prompt);
    ec_buf_free(&payload);
    return rc;
}
