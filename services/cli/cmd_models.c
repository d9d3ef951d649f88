/* edgecascade models: asks each local tier's server which models it offers
 * (GET /v1/models, or /api/tags for Ollama) through the same provider table
 * the services use, so what this prints is what edgecascade-local will see.
 * The usual first-day problems are a server that is not up and a model name
 * in the config that the server does not serve; both get a plain sentence. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "edgecascade/http.h"
#include "edgecascade/provider.h"
#include "edgecascade/util.h"

/* A discovery call is cheap; a server that takes longer is as good as down. */
#define MODELS_TIMEOUT_MS 10000u

typedef struct tier_result {
    const ec_tier_cfg *t;
    char **names;
    size_t n;
    char reason[EC_ERROR_MSG_LEN + 128];
    bool ok;
} tier_result;

void cli_help_models(void)
{
    printf("usage: edgecascade models [--tier NAME] [--json]\n"
           "\n"
           "Lists the models offered by the server of every local tier in the config\n"
           "(or of the named tier, local or cloud). Exits 1 when a server cannot be asked.\n"
           "\n"
           "options:\n"
           "  --tier NAME   only this tier\n"
           "  --json        print {\"tiers\": [...]} as one JSON object\n");
}

static const char *server_name(const char *provider)
{
    if (!provider)
        return "the model server";
    if (strcmp(provider, "vllm") == 0)
        return "vLLM";
    if (strcmp(provider, "ollama") == 0)
        return "Ollama";
    return "the model server";
}

/* One line of a response body for an error message: servers send pages. */
static void body_excerpt(const ec_http_response *resp, char *out, size_t cap)
{
    size_t n = 0;
    const char *b = resp->body.data ? resp->body.data : "";
    for (size_t i = 0; i < resp->body.len && n + 1 < cap && n < 160; i++)
        out[n++] = (b[i] == '\n' || b[i] == '\r' || b[i] == '\t') ? ' ' : b[i];
    out[n] = '\0';
}

static void ask_tier(ec_http *http, tier_result *tr)
{
    const ec_tier_cfg *t = tr->t;
    const ec_provider *p = ec_provider_find(t->provider);
    const char *base = t->base_url ? t->base_url : "?";
    ec_http_request req;
    ec_http_response resp;
    ec_error err = {0};
    char *key = NULL;

    ec_http_request_init(&req, "GET");
    ec_http_response_init(&resp);
    if (!p || !p->build_models || !p->parse_models) {
        snprintf(tr->reason, sizeof(tr->reason), "provider '%s' has no model discovery",
                 t->provider ? t->provider : "?");
        goto out;
    }
    key = ec_tier_api_key(t, &err);
    if (!key && err.code != EC_OK) {
        snprintf(tr->reason, sizeof(tr->reason), "%s", err.msg);
        goto out;
    }
    ec_error_clear(&err);
    if (p->build_models(t, key, &req, &err) != EC_OK) {
        snprintf(tr->reason, sizeof(tr->reason), "cannot build the request: %s", err.msg);
        goto out;
    }
    if (req.timeout_ms == 0 || req.timeout_ms > MODELS_TIMEOUT_MS)
        req.timeout_ms = MODELS_TIMEOUT_MS;

    ec_err rc = ec_http_perform(http, &req, &resp, &err);
    if (rc == EC_ERR_UNAVAILABLE) {
        if (t->local || ec_provider_is_local(t->provider))
            snprintf(tr->reason, sizeof(tr->reason), "cannot reach %s: is %s running?", base,
                     server_name(t->provider));
        else
            snprintf(tr->reason, sizeof(tr->reason),
                     "cannot reach %s: check the network and any proxy (%s)", base, err.msg);
        goto out;
    }
    if (rc == EC_ERR_TIMEOUT) {
        snprintf(tr->reason, sizeof(tr->reason), "no answer from %s within %u ms", base,
                 req.timeout_ms);
        goto out;
    }
    if (rc != EC_OK) {
        snprintf(tr->reason, sizeof(tr->reason), "%s", err.msg);
        goto out;
    }
    if (resp.status < 200 || resp.status > 299) {
        char excerpt[192];
        body_excerpt(&resp, excerpt, sizeof(excerpt));
        const char *hint = (resp.status == 401 || resp.status == 403)
                               ? " (check the tier's api_key_env / api_key_file)"
                               : "";
        snprintf(tr->reason, sizeof(tr->reason), "HTTP %ld from %s%s%s%s", resp.status, req.url,
                 hint, excerpt[0] ? ": " : "", excerpt);
        goto out;
    }
    if (p->parse_models(&resp, &tr->names, &tr->n, &err) != EC_OK) {
        snprintf(tr->reason, sizeof(tr->reason), "unexpected answer from %s: %s", req.url, err.msg);
        goto out;
    }
    tr->ok = true;
out:
    if (key) {
        /* The key lived in our heap; leave nothing of it behind. */
        memset(key, 0, strlen(key));
        free(key);
    }
    ec_http_request_free(&req);
    ec_http_response_free(&resp);
}

static bool offers(const tier_result *tr, const char *model)
{
    for (size_t i = 0; model && i < tr->n; i++)
        if (tr->names[i] && strcmp(tr->names[i], model) == 0)
            return true;
    return false;
}

/* What model "auto" picks from this list: prefer_model when listed, else the
 * first (as tierd_discovery.c does); NULL when nothing is listed. */
static const char *auto_pick(const tier_result *tr)
{
    const char *pref = tr->t->prefer_model;
    if (pref && *pref && offers(tr, pref))
        return pref;
    return tr->n ? tr->names[0] : NULL;
}

static void print_human(const tier_result *tr)
{
    const ec_tier_cfg *t = tr->t;
    if (!tr->ok) {
        fprintf(stderr, "tier %s (%s at %s): %s\n", t->name, t->provider,
                t->base_url ? t->base_url : "?", tr->reason);
        return;
    }
    printf("tier %s (%s at %s): ", t->name, t->provider, t->base_url ? t->base_url : "?");
    /* Ollama's /v1/models ("data": null) lists nothing just like /api/tags:
     * a provider other than ollama still gets what to do. */
    if (tr->n == 0)
        printf("no models installed%s", ec_streq(t->provider, "ollama")
                                            ? " (install one: ollama pull NAME)"
                                            : " (load one on the server; for Ollama: ollama "
                                              "pull NAME)");
    for (size_t i = 0; i < tr->n; i++)
        printf("%s%s", i ? ", " : "", tr->names[i]);
    putchar('\n');
    const char *pick = auto_pick(tr);
    if (ec_tier_model_auto(t) && pick)
        printf("  model auto: edgecascade-local will use '%s'\n", pick);
    else if (!ec_tier_model_auto(t) && t->model && !offers(tr, t->model))
        printf("  note: the configured model '%s' is not among them\n", t->model);
}

static json_t *tier_json(const tier_result *tr)
{
    const ec_tier_cfg *t = tr->t;
    json_t *o = json_pack("{s:s, s:s, s:s?, s:s?, s:b}", "tier", t->name, "provider", t->provider,
                          "base_url", t->base_url, "model", t->model, "ok", tr->ok);
    if (!o)
        return NULL;
    if (tr->ok) {
        json_t *names = json_array();
        if (!names || json_object_set_new(o, "models", names) != 0)
            goto fail;
        for (size_t i = 0; i < tr->n; i++)
            if (json_array_append_new(names, json_string(tr->names[i])) != 0)
                goto fail;
        bool is_auto = ec_tier_model_auto(t);
        const char *pick = auto_pick(tr);
        if (json_object_set_new(o, "model_available",
                                json_boolean(is_auto ? pick != NULL : offers(tr, t->model))) != 0)
            goto fail;
        if (is_auto && pick && json_object_set_new(o, "auto_model", json_string(pick)) != 0)
            goto fail;
    } else if (json_object_set_new(o, "error", json_string(tr->reason)) != 0) {
        goto fail;
    }
    return o;
fail:
    json_decref(o);
    return NULL;
}

static int print_json(const tier_result *res, size_t n)
{
    json_t *arr = json_array();
    json_t *root = json_pack("{s:o}", "tiers", arr);
    char *text = NULL;
    int rc = CLI_EXIT_FAIL;
    if (!root)
        goto out;
    for (size_t i = 0; i < n; i++) {
        json_t *o = tier_json(&res[i]);
        if (!o || json_array_append_new(arr, o) != 0)
            goto out;
    }
    if (!(text = json_dumps(root, JSON_COMPACT)))
        goto out;
    puts(text);
    rc = CLI_EXIT_OK;
out:
    if (rc != CLI_EXIT_OK)
        fprintf(stderr, "edgecascade models: out of memory\n");
    free(text);
    json_decref(root);
    return rc;
}

int cli_cmd_models(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a = {.cmd = "models", .argc = argc, .argv = argv};
    const char *arg, *tier = NULL;
    bool is_opt, json = false;
    while (cli_next(&a, &arg, &is_opt)) {
        const char *v = NULL;
        int m;
        if (!is_opt)
            return cli_usage_error("models", "unexpected argument '%s'", arg);
        if (strcmp(arg, "--json") == 0) {
            json = true;
        } else if ((m = cli_opt_value(&a, arg, "--tier", &v)) != 0) {
            if (m < 0)
                return CLI_EXIT_USAGE;
            tier = v;
        } else {
            return cli_usage_error("models", "unknown option %s", arg);
        }
    }

    const ec_config *cfg = &ctx->cfg;
    tier_result res[EC_MAX_TIERS];
    size_t n = 0;
    memset(res, 0, sizeof(res));
    if (tier) {
        int idx = ec_config_tier_index(cfg, tier);
        if (idx < 0) {
            char names[512] = "";
            size_t used = 0;
            for (size_t i = 0; i < cfg->n_tiers && used < sizeof(names); i++)
                used += (size_t)snprintf(names + used, sizeof(names) - used, "%s%s", i ? ", " : "",
                                         cfg->tiers[i].name);
            return cli_usage_error("models", "no tier named '%s' (tiers: %s)", tier, names);
        }
        res[n++].t = &cfg->tiers[idx];
    } else {
        for (size_t i = 0; i < cfg->n_tiers && i < EC_MAX_TIERS; i++)
            if (cfg->tiers[i].local || ec_provider_is_local(cfg->tiers[i].provider))
                res[n++].t = &cfg->tiers[i];
        if (n == 0) {
            fprintf(stderr, "edgecascade models: no local tiers in the configuration "
                            "(use --tier NAME to ask a cloud tier)\n");
            return CLI_EXIT_FAIL;
        }
    }

    ec_http *http = NULL;
    if (ec_http_create(&http) != EC_OK) {
        fprintf(stderr, "edgecascade models: cannot start the HTTP client (libcurl)\n");
        return CLI_EXIT_FAIL;
    }
    bool all_ok = true;
    for (size_t i = 0; i < n; i++) {
        ask_tier(http, &res[i]);
        all_ok = all_ok && res[i].ok;
        if (!json)
            print_human(&res[i]);
    }
    ec_http_destroy(http);

    int rc = all_ok ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (json && print_json(res, n) != CLI_EXIT_OK)
        rc = CLI_EXIT_FAIL;
    for (size_t i = 0; i < n; i++)
        ec_models_free(res[i].names, res[i].n);
    return rc;
}
