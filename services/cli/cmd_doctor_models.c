/* edgecascade doctor, the model side: each local tier's server (reachable,
 * the model listed, a one-token completion with token probabilities) and
 * each cloud tier's key. */
#define _GNU_SOURCE /* asprintf */
#include <jansson.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "cli.h"
#include "edgecascade/http.h"
#include "edgecascade/journal.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/provider.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"
#include "cmd_doctor.h"

/* ---- model servers ---- */

static const char *server_name(const char *provider)
{
    if (provider && strcmp(provider, "vllm") == 0)
        return "vLLM";
    if (provider && strcmp(provider, "ollama") == 0)
        return "Ollama";
    return "the model server";
}

/* One request through the provider table; returns EC_OK when an HTTP answer
 * came back (any status) and fills why otherwise. */
static ec_err perform(ec_http *http, ec_http_request *req, ec_http_response *resp,
                      const ec_tier_cfg *t, char *why, size_t cap)
{
    ec_error err = {0};
    if (req->timeout_ms == 0 || req->timeout_ms > DOCTOR_HTTP_TIMEOUT_MS)
        req->timeout_ms = DOCTOR_HTTP_TIMEOUT_MS;
    ec_err rc = ec_http_perform(http, req, resp, &err);
    const char *base = t->base_url ? t->base_url : "?";
    if (rc == EC_ERR_UNAVAILABLE)
        snprintf(why, cap, "cannot reach %s: %s", base, err.msg);
    else if (rc == EC_ERR_TIMEOUT)
        snprintf(why, cap, "no answer from %s within %u ms", base, req->timeout_ms);
    else if (rc != EC_OK)
        snprintf(why, cap, "%s: %s", base, err.msg);
    return rc;
}

static void excerpt(const ec_http_response *resp, char *out, size_t cap)
{
    size_t n = 0;
    const char *b = resp->body.data ? resp->body.data : "";
    for (size_t i = 0; i < resp->body.len && n + 1 < cap && n < 120; i++)
        out[n++] = (b[i] == '\n' || b[i] == '\r' || b[i] == '\t') ? ' ' : b[i];
    out[n] = '\0';
}

/* With model: auto, the model edgecascade-local would pick from names:
 * prefer_model when listed, else the first; NULL when none. */
static const char *auto_pick(const ec_tier_cfg *t, char **names, size_t n)
{
    for (size_t i = 0; t->prefer_model && *t->prefer_model && i < n; i++)
        if (strcmp(names[i], t->prefer_model) == 0)
            return names[i];
    return n ? names[0] : NULL;
}

bool doctor_check_models(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p,
                         char *picked, size_t pcap)
{
    char check[64], why[EC_ERROR_MSG_LEN + 160], fix[256], body[128];
    ec_http_request req;
    ec_http_response resp;
    ec_error err = {0};
    char **names = NULL;
    size_t n = 0;
    bool ok = false;
    snprintf(check, sizeof(check), "model server %s", t->name);
    ec_http_request_init(&req, "GET");
    ec_http_response_init(&resp);
    if (!p->build_models || !p->parse_models) {
        doctor_report(d, D_WARN, check, NULL, "provider %s cannot list its models; not checked",
                      t->provider);
        ok = true;
        goto out;
    }
    if (p->build_models(t, NULL, &req, &err) != EC_OK) {
        doctor_report(d, D_FAIL, check, "check tiers[].base_url", "%s", err.msg);
        goto out;
    }
    if (perform(http, &req, &resp, t, why, sizeof(why)) != EC_OK) {
        snprintf(fix, sizeof(fix),
                 "start %s (see README, \"A real local model\") or correct this tier's base_url",
                 server_name(t->provider));
        doctor_report(d, D_FAIL, check, fix, "%s (is %s running?)", why, server_name(t->provider));
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        excerpt(&resp, body, sizeof(body));
        doctor_report(d, D_FAIL, check,
                      "check that base_url points at the server's API root (e.g. .../v1 for vLLM)",
                      "HTTP %ld from %s%s%s", resp.status, req.url, body[0] ? ": " : "", body);
        goto out;
    }
    if (p->parse_models(&resp, &names, &n, &err) != EC_OK) {
        doctor_report(d, D_FAIL, check, "check that base_url points at the model server",
                      "unexpected answer from %s: %s", req.url, err.msg);
        goto out;
    }
    char list[256] = "";
    size_t used = 0;
    bool listed = false;
    for (size_t i = 0; i < n; i++) {
        if (t->model && strcmp(names[i], t->model) == 0)
            listed = true;
        if (used < sizeof(list))
            used +=
                (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", i ? ", " : "", names[i]);
    }
    if (ec_tier_model_auto(t)) {
        const char *pick = auto_pick(t, names, n);
        if (!pick) {
            doctor_report(d, D_FAIL, check,
                          "load a model on the server (model: auto uses what it lists)",
                          "%s is up, but lists no model", t->base_url);
            goto out;
        }
        snprintf(picked, pcap, "%s", pick);
        doctor_report(d, D_OK, check, NULL,
                      "%s: reachable, model auto would use '%s' (it offers: %s)", t->base_url, pick,
                      list);
        ok = true;
        goto out;
    }
    if (!listed) {
        doctor_report(d, D_FAIL, check,
                      "set this tier's model to a served name (edgecascade models), or serve it",
                      "%s is up, but model '%s' is not served (it offers: %s)", t->base_url,
                      t->model ? t->model : "?", n ? list : "nothing");
        goto out;
    }
    doctor_report(d, D_OK, check, NULL, "%s: reachable, '%s' listed (%zu model%s)", t->base_url,
                  t->model, n, n == 1 ? "" : "s");
    ok = true;
out:
    ec_models_free(names, n);
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
    return ok;
}

void doctor_check_completion(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p)
{
    char check[64], why[EC_ERROR_MSG_LEN + 160], body[128];
    ec_chat_msg msg = {.role = "user", .content = "Reply with OK."};
    ec_infer_request r = {.id = "doctor",
                          .tier = t->name,
                          .messages = &msg,
                          .n_messages = 1,
                          .max_tokens = 1,
                          .temperature = 0,
                          .has_temperature = true,
                          .logprobs = t->logprobs,
                          .timeout_ms = DOCTOR_HTTP_TIMEOUT_MS};
    ec_http_request req;
    ec_http_response resp;
    ec_infer_reply reply;
    ec_error err = {0};
    memset(&reply, 0, sizeof(reply));
    snprintf(check, sizeof(check), "completion %s", t->name);
    ec_http_request_init(&req, "POST");
    ec_http_response_init(&resp);
    if (p->build_chat(t, &r, NULL, &req, &err) != EC_OK) {
        doctor_report(d, D_FAIL, check, NULL, "cannot build the request: %s", err.msg);
        goto out;
    }
    if (perform(http, &req, &resp, t, why, sizeof(why)) != EC_OK) {
        doctor_report(d, D_FAIL, check, "check the model server's log", "%s", why);
        goto out;
    }
    if (p->parse_chat(t, &resp, &reply, &err) != EC_OUTCOME_OK) {
        excerpt(&resp, body, sizeof(body));
        doctor_report(
            d, D_FAIL, check,
            "check the model server's log; the model may still be loading or out of memory",
            "HTTP %ld: %s", resp.status, err.msg[0] ? err.msg : body);
        goto out;
    }
    if (resp.total_ms > DOCTOR_SLOW_TOKEN_MS)
        doctor_report(
            d, D_WARN, check,
            "a cold model, a busy GPU or CPU inference: check the server's load and flags",
            "one token took %.0f ms (slow: queries will wait at least this long)", resp.total_ms);
    else
        doctor_report(d, D_OK, check, NULL, "one token in %.1f ms", resp.total_ms);
    /* The gate needs the chosen tokens' probabilities; without them every
     * draft is judged by the text heuristic (at most 0.65) and escalates. */
    snprintf(check, sizeof(check), "logprobs %s", t->name);
    if (!t->logprobs)
        doctor_report(d, D_WARN, check, "set logprobs: true on this tier",
                      "not asked (logprobs: false): the gate judges drafts by the text heuristic");
    else if (reply.lp.present)
        doctor_report(d, D_OK, check, NULL, "%s returns token probabilities", t->provider);
    else
        doctor_report(
            d, D_FAIL, check,
            p->params && p->params->logprobs_hint ? p->params->logprobs_hint : NULL,
            "%s returned no token probabilities: the gate falls back to its text heuristic "
            "(at most 0.65, below the default threshold 0.70), so with a cloud tier every "
            "draft escalates",
            t->provider);
out:
    ec_infer_reply_clear(&reply);
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
}

/* ---- cloud keys ---- */

void doctor_check_cloud_key(doctor *d, ec_http *http, const ec_tier_cfg *t, const ec_provider *p)
{
    char check[64], where[160], why[EC_ERROR_MSG_LEN + 160], body[128];
    ec_error err = {0};
    snprintf(check, sizeof(check), "cloud key %s", t->name);
    if (t->api_key_file && *t->api_key_file)
        snprintf(where, sizeof(where), "file %s", t->api_key_file);
    else
        snprintf(where, sizeof(where), "$%s", t->api_key_env ? t->api_key_env : "?");
    char *key = ec_tier_api_key(t, &err);
    if (!key) {
        doctor_report(d, D_FAIL, check,
                      "export the variable named by api_key_env for the services, or point "
                      "api_key_file at a file holding the key",
                      "no API key (looked in %s)%s%s", where, err.msg[0] ? ": " : "", err.msg);
        return;
    }
    if (!d->online) {
        doctor_report(d, D_OK, check, NULL, "key present (%s); not tried (--online tries it)",
                      where);
        goto out;
    }
    ec_http_request req;
    ec_http_response resp;
    char **names = NULL;
    size_t n = 0;
    ec_http_request_init(&req, "GET");
    ec_http_response_init(&resp);
    if (!p->build_models || p->build_models(t, key, &req, &err) != EC_OK) {
        doctor_report(d, D_WARN, check, NULL,
                      "key present (%s); this provider cannot be asked cheaply", where);
    } else if (perform(http, &req, &resp, t, why, sizeof(why)) != EC_OK) {
        doctor_report(d, D_FAIL, check, "check the uplink, DNS and any proxy (https_proxy)", "%s",
                      why);
    } else if (resp.status == 401 || resp.status == 403) {
        excerpt(&resp, body, sizeof(body));
        doctor_report(
            d, D_FAIL, check, "replace the key (or check the account's access to the API)",
            "key from %s rejected: HTTP %ld%s%s", where, resp.status, body[0] ? ": " : "", body);
    } else if (resp.status < 200 || resp.status > 299) {
        excerpt(&resp, body, sizeof(body));
        doctor_report(d, D_WARN, check, "check the tier's base_url and the provider's status page",
                      "HTTP %ld from %s%s%s", resp.status, req.url, body[0] ? ": " : "", body);
    } else {
        if (p->parse_models)
            p->parse_models(&resp, &names, &n, &err);
        doctor_report(d, D_OK, check, NULL, "key from %s accepted by %s (%zu models listed)", where,
                      t->base_url, n);
    }
    ec_models_free(names, n);
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
out:
    memset(key, 0, strlen(key));
    free(key);
}
