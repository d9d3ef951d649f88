/* Known messages shared by the test_proto*.c files: the structs
 * behind the golden vectors in proto/vectors/, and field-by-field comparison.
 * Doubles compare exactly unless tol > 0 (JSON prints 15 digits). */
#ifndef TEST_PROTO_FIXTURES_H
#define TEST_PROTO_FIXTURES_H

#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "edgecascade/proto.h"
#include "edgecascade/util.h"

#define S(x) ((char *)(x))

static ec_chat_msg fx_query_msgs[] = {
    {S("system"), S("You are the maintenance assistant of plant 2. Answer briefly.")},
    {S("user"), S("Alarm 4711 on press P-12: hydraulic pressure low.")},
    {S("assistant"), S("Check the accumulator pre-charge and the pump inlet filter.")},
};

static ec_chat_msg fx_infer_msgs[] = {
    {S("system"), S("You are the maintenance assistant of plant 2. Answer briefly.")},
    {S("user"), S("What is the maximum spindle speed of CNC-4 in rpm?")},
};

static ec_attempt fx_attempts_local[] = {
    {.tier_index = 0,
     .tier = S("local"),
     .model = S("qwen2.5-7b-instruct"),
     .confidence = 0.91,
     .threshold = 0.75,
     .accepted = true,
     .reason = S("confidence 0.91 >= threshold 0.75"),
     .latency_ms = 182.5,
     .cost_usd = 0.0,
     .tokens_in = 42,
     .tokens_out = 12},
};

static ec_attempt fx_attempts_escalated[] = {
    {.tier_index = 0,
     .tier = S("local"),
     .model = S("qwen2.5-7b-instruct"),
     .confidence = 0.42,
     .threshold = 0.75,
     .accepted = false,
     .reason = S("confidence 0.42 < threshold 0.75"),
     .latency_ms = 171.25,
     .cost_usd = 0.0,
     .tokens_in = 42,
     .tokens_out = 30},
    {.tier_index = 1,
     .tier = S("cloud"),
     .model = S("gpt-4o-mini"),
     .confidence = -1.0,
     .threshold = 0.0,
     .accepted = true,
     .reason = S("last tier"),
     .latency_ms = 812.0,
     .cost_usd = 0.00042,
     .tokens_in = 40,
     .tokens_out = 55},
};

static inline ec_query fx_query_minimal(void)
{
    ec_query q = {0};
    q.prompt = S("What is the maximum spindle speed of CNC-4 in rpm?");
    return q;
}

static inline ec_query fx_query_full(void)
{
    ec_query q = {0};
    q.id = S("q-000123");
    q.prompt = S("What should I check first?");
    q.messages = fx_query_msgs;
    q.n_messages = 3;
    q.max_tokens = 256;
    q.temperature = 0.25;
    q.has_temperature = true;
    q.policy = EC_POLICY_LOCAL_ONLY;
    q.source = S("plc-7");
    q.consent = true; /* read only under policy consent; here it exercises the key */
    return q;
}

static inline ec_infer_request fx_infer_request(void)
{
    ec_infer_request r = {0};
    r.id = S("01HZX3Q9M2K8V4T6B1N0C7R5PD");
    r.tier_index = 0;
    r.tier = S("local");
    r.messages = fx_infer_msgs;
    r.n_messages = 2;
    r.max_tokens = 256;
    r.temperature = 0.0;
    r.has_temperature = true;
    r.logprobs = true;
    r.timeout_ms = 20000;
    return r;
}

static inline ec_infer_reply fx_infer_reply_ok(void)
{
    ec_infer_reply r = {0};
    r.id = S("01HZX3Q9M2K8V4T6B1N0C7R5PD");
    r.tier_index = 0;
    r.tier = S("local");
    r.model = S("qwen2.5-7b-instruct");
    r.answer = S("CNC-4 runs at most 12000 rpm.");
    r.finish_reason = S("stop");
    r.lp.present = true;
    r.lp.n_tokens = 12;
    r.lp.mean = -0.125;
    r.lp.min = -1.5;
    r.lp.geo_prob = 0.8824969025845955; /* exp(-0.125) */
    r.lp.first_prob = 0.96875;
    r.tokens_in = 42;
    r.tokens_out = 12;
    r.cost_usd = 0.0;
    r.latency_ms = 182.5;
    r.sent = S("{\"provider\":\"vllm\",\"temperature\":0.2,\"max_tokens\":256,"
               "\"logprobs\":true}");
    return r;
}

static inline ec_infer_reply fx_infer_reply_error(void)
{
    ec_infer_reply r = {0};
    r.id = S("01HZX3Q9M2K8V4T6B1N0C7R5PD");
    r.tier_index = 1;
    r.tier = S("cloud");
    r.latency_ms = 20000.0;
    r.error.code = S("timeout");
    r.error.message = S("cloud tier did not answer within 20000 ms");
    return r;
}

static inline ec_result fx_result_local(void)
{
    ec_result r = {0};
    r.id = S("01HZX3Q9M2K8V4T6B1N0C7R5PD");
    r.answer = S("CNC-4 runs at most 12000 rpm.");
    r.tier = S("local");
    r.tier_index = 0;
    r.tier_name = S("local");
    r.model = S("qwen2.5-7b-instruct");
    r.confidence = 0.91;
    r.threshold = 0.75;
    r.escalated = false;
    r.reason = S("confidence 0.91 >= threshold 0.75");
    r.cost_usd = 0.0;
    r.latency_ms = 190.25;
    r.router_ms = 1.5;
    r.attempts = fx_attempts_local;
    r.n_attempts = 1;
    r.tokens_in = 42;
    r.tokens_out = 12;
    r.source = S("plc-7");
    return r;
}

static inline ec_result fx_result_escalated(void)
{
    ec_result r = {0};
    r.id = S("01HZX3QA0000000000000000AB");
    r.answer = S("Check the accumulator pre-charge (should be 90 bar), then the inlet filter.");
    r.tier = S("cloud");
    r.tier_index = 1;
    r.tier_name = S("cloud");
    r.model = S("gpt-4o-mini");
    r.confidence = 0.42;
    r.threshold = 0.75;
    r.escalated = true;
    r.reason = S("confidence 0.42 < threshold 0.75");
    r.cost_usd = 0.00042;
    r.latency_ms = 990.75;
    r.router_ms = 2.25;
    r.attempts = fx_attempts_escalated;
    r.n_attempts = 2;
    r.tokens_in = 82;
    r.tokens_out = 85;
    r.source = S("scada");
    r.redacted = true;
    return r;
}

static inline ec_result fx_result_error(void)
{
    ec_result r = {0};
    r.id = S("01HZX3QB0000000000000000CD");
    r.error.code = S("bad_request");
    r.error.message = S("query.max_tokens: must be an integer 0..32768");
    return r;
}

static inline ec_status fx_status(void)
{
    ec_status s = {0};
    s.service = S("router");
    s.state = S("online");
    s.version = S("0.1.0");
    s.instance = S("edgecascade-router-7f3a");
    s.pid = 4242;
    s.ts_ms = 1718000000000ull;
    s.config_ts_ms = 1717999990000ull;
    s.config_error = S("gate.min_confidence: must be between 0 and 1");
    static ec_model_status models[1];
    models[0] =
        (ec_model_status){.tier = S("local"), .model = S("llama3.2-3b"), .state = S("serving"),
                          .logprobs = S("ok")};
    s.models = models;
    s.n_models = 1;
    return s;
}

/* ---- comparison: prints the first difference, returns false ---- */

static inline bool fx_str_eq(const char *what, const char *a, const char *b)
{
    if (ec_streq(a, b))
        return true;
    fprintf(stderr, "%s: \"%s\" != \"%s\"\n", what, a ? a : "(null)", b ? b : "(null)");
    return false;
}

static inline bool fx_dbl_eq(const char *what, double a, double b, double tol)
{
    if (a == b || (tol > 0 && fabs(a - b) <= tol * fmax(1.0, fabs(b))))
        return true;
    fprintf(stderr, "%s: %.17g != %.17g\n", what, a, b);
    return false;
}

static inline bool fx_int_eq(const char *what, long long a, long long b)
{
    if (a == b)
        return true;
    fprintf(stderr, "%s: %lld != %lld\n", what, a, b);
    return false;
}

#define FX_S(f) ok &= fx_str_eq(#f, a->f, b->f)
#define FX_I(f) ok &= fx_int_eq(#f, (long long)a->f, (long long)b->f)
#define FX_D(f) ok &= fx_dbl_eq(#f, a->f, b->f, tol)

static inline bool fx_msgs_eq(const ec_chat_msg *ma, size_t na, const ec_chat_msg *mb, size_t nb)
{
    bool ok = fx_int_eq("n_messages", (long long)na, (long long)nb);
    for (size_t i = 0; ok && i < na; i++) {
        const ec_chat_msg *a = &ma[i], *b = &mb[i];
        FX_S(role);
        FX_S(content);
    }
    return ok;
}

static inline bool fx_werr_eq(const ec_wire_error *a, const ec_wire_error *b)
{
    bool ok = true;
    FX_S(code);
    FX_S(message);
    return ok;
}

static inline bool fx_query_eq(const ec_query *a, const ec_query *b, double tol)
{
    bool ok = true;
    FX_S(id);
    FX_S(prompt);
    ok &= fx_msgs_eq(a->messages, a->n_messages, b->messages, b->n_messages);
    FX_I(max_tokens);
    FX_I(has_temperature);
    FX_D(temperature);
    FX_I(policy);
    FX_S(source);
    FX_I(consent);
    return ok;
}

static inline bool fx_infer_request_eq(const ec_infer_request *a, const ec_infer_request *b)
{
    bool ok = true;
    double tol = 0;
    FX_S(id);
    FX_I(tier_index);
    FX_S(tier);
    ok &= fx_msgs_eq(a->messages, a->n_messages, b->messages, b->n_messages);
    FX_I(max_tokens);
    FX_I(has_temperature);
    FX_D(temperature);
    FX_I(logprobs);
    FX_I(timeout_ms);
    return ok;
}

static inline bool fx_infer_reply_eq(const ec_infer_reply *a, const ec_infer_reply *b)
{
    bool ok = true;
    double tol = 0;
    FX_S(id);
    FX_I(tier_index);
    FX_S(tier);
    FX_S(model);
    FX_S(answer);
    FX_S(finish_reason);
    FX_I(lp.present);
    FX_I(lp.n_tokens);
    FX_D(lp.mean);
    FX_D(lp.min);
    FX_D(lp.geo_prob);
    FX_D(lp.first_prob);
    FX_I(tokens_in);
    FX_I(tokens_out);
    FX_D(cost_usd);
    FX_D(latency_ms);
    FX_S(sent);
    ok &= fx_werr_eq(&a->error, &b->error);
    return ok;
}

static inline bool fx_attempt_eq(const ec_attempt *a, const ec_attempt *b, double tol)
{
    bool ok = true;
    FX_I(tier_index);
    FX_S(tier);
    FX_S(model);
    FX_D(confidence);
    FX_D(threshold);
    FX_I(accepted);
    FX_S(reason);
    FX_D(latency_ms);
    FX_D(cost_usd);
    FX_I(tokens_in);
    FX_I(tokens_out);
    ok &= fx_werr_eq(&a->error, &b->error);
    return ok;
}

static inline bool fx_result_eq(const ec_result *a, const ec_result *b, double tol)
{
    bool ok = true;
    FX_S(id);
    FX_S(answer);
    FX_S(tier);
    FX_I(tier_index);
    FX_S(tier_name);
    FX_S(model);
    FX_D(confidence);
    FX_D(threshold);
    FX_I(escalated);
    FX_S(reason);
    FX_D(cost_usd);
    FX_D(latency_ms);
    FX_D(router_ms);
    FX_I(n_attempts);
    for (size_t i = 0; ok && i < a->n_attempts; i++)
        ok &= fx_attempt_eq(&a->attempts[i], &b->attempts[i], tol);
    FX_I(tokens_in);
    FX_I(tokens_out);
    FX_S(source);
    FX_I(degraded);
    FX_I(revision);
    FX_I(redacted);
    FX_I(escalation_withheld);
    ok &= fx_werr_eq(&a->error, &b->error);
    return ok;
}

static inline bool fx_status_eq(const ec_status *a, const ec_status *b)
{
    bool ok = true;
    FX_S(service);
    FX_S(state);
    FX_S(version);
    FX_S(instance);
    FX_I(pid);
    FX_I(ts_ms);
    FX_I(config_ts_ms);
    FX_S(config_error);
    FX_I(n_models);
    for (size_t i = 0; ok && i < a->n_models; i++) {
        ok &= fx_str_eq("models.tier", a->models[i].tier, b->models[i].tier);
        ok &= fx_str_eq("models.model", a->models[i].model, b->models[i].model);
        ok &= fx_str_eq("models.state", a->models[i].state, b->models[i].state);
        ok &= fx_str_eq("models.error", a->models[i].error, b->models[i].error);
        ok &= fx_str_eq("models.logprobs", a->models[i].logprobs, b->models[i].logprobs);
    }
    return ok;
}

#endif
