/* Shared by test_provider.c and test_provider_answers.c: a tier, a
 * request, canned HTTP answers. */
#ifndef EC_TEST_PROVIDER_FIXTURES_H
#define EC_TEST_PROVIDER_FIXTURES_H
/* Providers in process: the exact request each one builds (URL, headers,
 * body bytes) and how each reads canned answers and classifies statuses. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "edgecascade/provider.h"

/* ---- fixtures ---- */

/* cmocka's assert_float_equal works in float; these values need double. */
#define assert_near(a, b, eps)                                                                     \
    do {                                                                                           \
        double a_ = (a), b_ = (b);                                                                 \
        if (!(fabs(a_ - b_) <= (eps)))                                                             \
            fail_msg("%s = %.12g, want %.12g", #a, a_, b_);                                        \
    } while (0)

static inline ec_tier_cfg tier(const char *provider, const char *model, const char *base)
{
    ec_tier_cfg t;
    memset(&t, 0, sizeof(t));
    t.name = (char *)model;
    t.provider = (char *)provider;
    t.model = (char *)model;
    t.base_url = (char *)base;
    t.timeout_ms = 8000;
    t.logprobs = true;
    t.min_confidence = -1;
    return t;
}

static ec_chat_msg g_msgs[] = {
    {(char *)"system", (char *)"You are terse."},
    {(char *)"user", (char *)"Pump 3 pressure?"},
};

static inline ec_infer_request request(void)
{
    ec_infer_request r;
    memset(&r, 0, sizeof(r));
    r.id = (char *)"01J0TEST";
    r.tier = (char *)"t";
    r.messages = g_msgs;
    r.n_messages = 2;
    r.max_tokens = 64;
    r.temperature = 0.2;
    r.has_temperature = true;
    r.logprobs = true;
    return r;
}

static const ec_provider *find(const char *name)
{
    const ec_provider *p = ec_provider_find(name);
    assert_non_null(p);
    return p;
}

static inline ec_http_response canned(long status, const char *body)
{
    ec_http_response r;
    ec_http_response_init(&r);
    r.status = status;
    assert_int_equal(ec_buf_append(&r.body, body, strlen(body)), EC_OK);
    return r;
}

static inline void reply_free(ec_infer_reply *o)
{
    free(o->answer);
    free(o->model);
    free(o->finish_reason);
    memset(o, 0, sizeof(*o));
}

/* Builds with p and checks method, URL, exact header list and exact body. */
static inline void expect_request(const ec_provider *p, const ec_tier_cfg *t,
                                  const ec_infer_request *r, const char *key, const char *url,
                                  const char *const *headers, const char *body)
{
    ec_http_request req;
    ec_error err = {0};
    ec_err rc = p->build_chat(t, r, key, &req, &err);
    if (rc)
        fail_msg("build_chat: %s", err.msg);
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.url, url);
    size_t n = 0;
    while (headers[n])
        n++;
    assert_int_equal(req.n_headers, n);
    for (size_t i = 0; i < n; i++)
        assert_string_equal(req.headers[i], headers[i]);
    assert_string_equal(ec_buf_cstr(&req.body), body);
    assert_int_equal(req.body.len, strlen(body));
    ec_http_request_free(&req);
}

#endif
