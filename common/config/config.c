/* The edgecascade configuration: loading, derived values, validation, API
 * keys and costs.
 *
 * Everything about a key (type, default, range, description) lives in the
 * table in config_table.c; config_map.c turns it into parsing, defaults, error
 * messages and the documented example file, so those four cannot disagree.
 * Values that depend on other keys (topic_root on site, min_confidence on the
 * preset, a tier's URL, key variable and timeout on its provider) have no
 * table default and are filled in here after the file is applied. */
#include "edgecascade/config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "config_map.h"
#include "config_table.h"
#include "edgecascade/util.h"

#define CONFIG_MAX_BYTES   (1024 * 1024)
#define KEY_FILE_MAX_BYTES (64 * 1024)
#define LOCAL_TIMEOUT_MS   30000u
#define CLOUD_TIMEOUT_MS   60000u

typedef struct provider_info {
    const char *name;
    bool local; /* served on the device by edgecascade-local */
    const char *base_url;
    const char *key_env;
} provider_info;

static const provider_info provider_infos[] = {
    {"vllm", true, "http://127.0.0.1:8000/v1", ""},
    {"openai-compatible", true, "http://127.0.0.1:8000/v1", ""},
    {"ollama", true, "http://127.0.0.1:11434", ""},
    {"openai", false, "https://api.openai.com/v1", "OPENAI_API_KEY"},
    {"anthropic", false, "https://api.anthropic.com/v1", "ANTHROPIC_API_KEY"},
};
#define N_PROVIDERS (sizeof(provider_infos) / sizeof(provider_infos[0]))

static const provider_info *provider_find(const char *name)
{
    for (size_t i = 0; name && i < N_PROVIDERS; i++)
        if (strcmp(provider_infos[i].name, name) == 0)
            return &provider_infos[i];
    return NULL;
}

/* ---- derived values ---- */

static ec_err dup_into(char **slot, const char *s, ec_error *err)
{
    if (!(*slot = strdup(s)))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    return EC_OK;
}

/* Fills what a tier's provider implies and checks its name is unique. */
ec_err ec_config_tier_finish(void *items, size_t idx, const ec_cm_where *w, ec_error *err)
{
    ec_tier_cfg *tiers = items, *t = &tiers[idx];
    const provider_info *p = provider_find(t->provider);
    ec_err rc;
    if (!p)
        return ec_cm_fail(w, "provider", err, "required");
    t->local = p->local;
    if (!t->name && (rc = dup_into(&t->name, t->model, err)))
        return rc;
    if (!t->base_url && (rc = dup_into(&t->base_url, p->base_url, err)))
        return rc;
    if (!t->api_key_env && (rc = dup_into(&t->api_key_env, p->key_env, err)))
        return rc;
    if (!t->timeout_ms)
        t->timeout_ms = t->local ? LOCAL_TIMEOUT_MS : CLOUD_TIMEOUT_MS;
    for (size_t j = 0; j < idx; j++)
        if (strcmp(tiers[j].name, t->name) == 0)
            return ec_cm_fail(w, "name", err, "duplicate tier name \"%s\" (also tiers[%zu])",
                              t->name, j);
    return EC_OK;
}

/* "edgecascade/<site>", heap-allocated; NULL when out of memory. */
static char *default_topic_root(const char *site)
{
    size_t n = strlen("edgecascade/") + strlen(site) + 1;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "edgecascade/%s", site);
    return s;
}

static ec_err resolve(ec_config *cfg, ec_error *err)
{
    if (!cfg->topic_root && !(cfg->topic_root = default_topic_root(cfg->site)))
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    if (cfg->min_confidence < 0 &&
        ec_gate_preset_threshold(cfg->gate_preset, &cfg->min_confidence) != 0)
        return ec_error_set(err, EC_ERR_CONFIG, "gate.preset: unknown preset \"%s\"",
                            cfg->gate_preset ? cfg->gate_preset : "");
    return EC_OK;
}

/* Forgets values that merely follow other keys, so a file that changes the site
 * or the preset moves them too; values set explicitly before stay. */
static void unset_derived(ec_config *cfg)
{
    char *root = cfg->site && cfg->topic_root ? default_topic_root(cfg->site) : NULL;
    if (root) {
        if (strcmp(root, cfg->topic_root) == 0) {
            free(cfg->topic_root);
            cfg->topic_root = NULL;
        }
        free(root);
    }
    double th;
    if (ec_gate_preset_threshold(cfg->gate_preset, &th) == 0 && cfg->min_confidence == th)
        cfg->min_confidence = -1;
}

/* ---- public ---- */

ec_err ec_config_defaults(ec_config *cfg, ec_error *err)
{
    if (!cfg)
        return ec_error_set(err, EC_ERR_INVAL, "no configuration");
    memset(cfg, 0, sizeof(*cfg));
    ec_err rc = ec_cm_defaults(ec_config_table, cfg, err);
    if (rc)
        goto out;
    for (size_t i = 0; i < ec_config_n_default_tiers; i++) {
        ec_tier_cfg *t = &cfg->tiers[i];
        cfg->n_tiers = i + 1;
        if ((rc = ec_cm_defaults(ec_config_tier_table, t, err)))
            goto out;
        for (const ec_config_kv *p = ec_config_default_tiers[i]; p->key; p++)
            if ((rc = ec_cm_set(ec_cm_find(ec_config_tier_table, p->key), t, p->value, err)))
                goto out;
        char path[32];
        snprintf(path, sizeof(path), "tiers[%zu]", i);
        ec_cm_where w = {"<defaults>", path, 0, ec_config_tier_table, NULL};
        if ((rc = ec_config_tier_finish(cfg->tiers, i, &w, err)))
            goto out;
    }
    cfg->min_confidence = -1;
    rc = resolve(cfg, err);
out:
    if (rc)
        ec_config_free(cfg);
    return rc;
}

/* Applies text on top of cfg all or nothing: the work happens on a copy that
 * replaces cfg only once the result is valid. */
static ec_err load_text(ec_config *cfg, const char *file, const char *text, size_t len,
                        ec_error *err)
{
    ec_config work;
    ec_err rc;
    memset(&work, 0, sizeof(work));
    if (len > CONFIG_MAX_BYTES) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "%s: larger than 1 MiB (%zu bytes)", file, len);
        goto out;
    }
    if (!cfg->site && cfg->n_tiers == 0) { /* zeroed or freed: start from the defaults */
        rc = ec_config_defaults(&work, err);
    } else {
        work = *cfg;
        rc = ec_cm_copy(ec_config_table, &work, cfg, err);
    }
    if (rc)
        goto out;
    unset_derived(&work);
    if ((rc = ec_cm_apply(ec_config_table, &work, file, text, len, err)))
        goto out;
    if ((rc = resolve(&work, err)))
        goto out;
    if ((rc = ec_config_validate(&work, err))) {
        ec_error_prefix(err, "%s: ", file);
        goto out;
    }
    ec_config_free(cfg);
    *cfg = work;
    return EC_OK;
out:
    ec_config_free(&work);
    return rc;
}

static ec_err read_config(const char *path, char **out, size_t *len, ec_error *err)
{
    ec_err rc = EC_OK;
    char *buf = NULL;
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f)
        return ec_error_set(err, EC_ERR_CONFIG, "cannot read %s: %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "cannot read %s: %s", path, strerror(EISDIR));
        goto out;
    }
    if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > CONFIG_MAX_BYTES) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "%s: larger than 1 MiB (%lld bytes)", path,
                          (long long)st.st_size);
        goto out;
    }
    /* Read one byte past the cap so a growing or non-regular file is caught too. */
    if (!(buf = malloc(CONFIG_MAX_BYTES + 2))) {
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
        goto out;
    }
    size_t n = fread(buf, 1, CONFIG_MAX_BYTES + 1, f);
    if (ferror(f)) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "cannot read %s: %s", path, strerror(errno));
        goto out;
    }
    if (n > CONFIG_MAX_BYTES) {
        rc = ec_error_set(err, EC_ERR_CONFIG, "%s: larger than 1 MiB", path);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
out:
    free(buf);
    fclose(f);
    return rc;
}

ec_err ec_config_load(ec_config *cfg, const char *path, ec_error *err)
{
    if (!cfg)
        return ec_error_set(err, EC_ERR_INVAL, "no configuration");
    if (!path) {
        if (!cfg->site && cfg->n_tiers == 0)
            return ec_config_defaults(cfg, err);
        return EC_OK;
    }
    char *text = NULL;
    size_t len = 0;
    ec_err rc = read_config(path, &text, &len, err);
    if (rc)
        return rc;
    rc = load_text(cfg, path, text, len, err);
    free(text);
    return rc;
}

ec_err ec_config_load_string(ec_config *cfg, const char *yaml, size_t len, ec_error *err)
{
    if (!cfg || (!yaml && len))
        return ec_error_set(err, EC_ERR_INVAL, "no configuration");
    return load_text(cfg, "<string>", yaml ? yaml : "", len, err);
}

static bool nonempty(const char *s)
{
    return s && s[0];
}

ec_err ec_config_validate(ec_config *cfg, ec_error *err)
{
    if (!cfg)
        return ec_error_set(err, EC_ERR_INVAL, "no configuration");
    double th;
    if (!nonempty(cfg->site))
        return ec_error_set(err, EC_ERR_CONFIG, "site: must not be empty");
    if (!nonempty(cfg->topic_root))
        return ec_error_set(err, EC_ERR_CONFIG, "topic_root: must not be empty");
    if (!nonempty(cfg->broker))
        return ec_error_set(err, EC_ERR_CONFIG, "mqtt.broker: must not be empty");
    if (!nonempty(cfg->db_path))
        return ec_error_set(err, EC_ERR_CONFIG, "store.path: must not be empty");
    if (nonempty(cfg->cert_file) != nonempty(cfg->key_file))
        return ec_error_set(err, EC_ERR_CONFIG,
                            "mqtt.cert_file and mqtt.key_file: give both or neither");
    if (ec_gate_preset_threshold(cfg->gate_preset, &th) != 0)
        return ec_error_set(err, EC_ERR_CONFIG,
                            "gate.preset: unknown preset (expected aggressive, balanced, "
                            "conservative)");
    if (!(cfg->min_confidence >= 0 && cfg->min_confidence <= 1))
        return ec_error_set(err, EC_ERR_CONFIG,
                            "gate.min_confidence: must be between 0 and 1, got %g",
                            cfg->min_confidence);
    if (cfg->n_tiers == 0)
        return ec_error_set(err, EC_ERR_CONFIG, "tiers: at least one tier is required");
    if (cfg->n_tiers > EC_MAX_TIERS)
        return ec_error_set(err, EC_ERR_CONFIG, "tiers: at most %d tiers allowed, got %zu",
                            EC_MAX_TIERS, cfg->n_tiers);
    for (size_t i = 0; i < cfg->n_tiers; i++) {
        ec_tier_cfg *t = &cfg->tiers[i];
        if (!nonempty(t->name))
            return ec_error_set(err, EC_ERR_CONFIG, "tiers[%zu].name: must not be empty", i);
        if (!nonempty(t->model))
            return ec_error_set(err, EC_ERR_CONFIG, "tiers[%zu].model: required", i);
        if (!provider_find(t->provider))
            return ec_error_set(err, EC_ERR_CONFIG,
                                "tiers[%zu].provider: unknown provider \"%s\" (expected vllm, "
                                "openai-compatible, ollama, openai, anthropic)",
                                i, t->provider ? t->provider : "");
        if (!nonempty(t->base_url))
            return ec_error_set(err, EC_ERR_CONFIG, "tiers[%zu].base_url: must not be empty", i);
        if (ec_tier_model_auto(t) && !ec_provider_is_local(t->provider))
            return ec_error_set(err, EC_ERR_CONFIG,
                                "tiers[%zu].model: \"auto\" is only for local tiers (vllm, "
                                "openai-compatible, ollama); name the %s model",
                                i, t->provider);
        if (!(t->min_confidence <= 1))
            return ec_error_set(err, EC_ERR_CONFIG,
                                "tiers[%zu].min_confidence: must be at most 1, got %g", i,
                                t->min_confidence);
        for (size_t j = 0; j < i; j++)
            if (strcmp(cfg->tiers[j].name, t->name) == 0)
                return ec_error_set(err, EC_ERR_CONFIG,
                                    "tiers[%zu].name: duplicate tier name \"%s\" (also "
                                    "tiers[%zu])",
                                    i, t->name, j);
        t->local = ec_provider_is_local(t->provider); /* derived: keep it in step */
        if (nonempty(t->failover_of)) {
            /* A stand-in must come after the tier it replaces, or the cascade
             * would reach it first. */
            size_t j = 0;
            while (j < i && strcmp(cfg->tiers[j].name, t->failover_of) != 0)
                j++;
            if (j == i)
                return ec_error_set(err, EC_ERR_CONFIG,
                                    "tiers[%zu].failover_of: \"%s\" is not the name of an "
                                    "earlier tier",
                                    i, t->failover_of);
            if (nonempty(cfg->tiers[j].failover_of))
                return ec_error_set(err, EC_ERR_CONFIG,
                                    "tiers[%zu].failover_of: \"%s\" is itself a failover tier; "
                                    "name the primary",
                                    i, t->failover_of);
        }
    }
    if (cfg->breaker.min_calls > cfg->breaker.window)
        return ec_error_set(err, EC_ERR_CONFIG,
                            "relay.breaker.min_calls: %d is more than relay.breaker.window (%d)",
                            cfg->breaker.min_calls, cfg->breaker.window);
    return EC_OK;
}

bool ec_tier_model_auto(const ec_tier_cfg *t)
{
    return t->model && strcmp(t->model, EC_MODEL_AUTO) == 0;
}

void ec_config_free(ec_config *cfg)
{
    if (!cfg)
        return;
    ec_cm_free(ec_config_table, cfg);
    memset(cfg, 0, sizeof(*cfg));
}

void ec_config_write_example(FILE *out)
{
    ec_config d;
    if (ec_config_defaults(&d, NULL) != EC_OK)
        return;
    fputs("# edgecascade configuration, shared by edgecascade-router, -local and -relay.\n"
          "#\n"
          "# Every key is optional and every value shown is the default, so an empty file\n"
          "# works. Keys shown commented out follow other keys unless given. Unknown keys\n"
          "# are errors. Generated by ec_config_write_example() from the key table in\n"
          "# common/config/config_table.c; tests/unit/test_config.c keeps this file in step.\n"
          "\n",
          out);
    ec_cm_write(out, ec_config_table, &d);
    ec_config_free(&d);
}

int ec_config_tier_index(const ec_config *cfg, const char *name)
{
    for (size_t i = 0; cfg && name && i < cfg->n_tiers; i++)
        if (ec_streq(cfg->tiers[i].name, name))
            return (int)i;
    return -1;
}

char *ec_tier_api_key(const ec_tier_cfg *t, ec_error *err)
{
    ec_error_clear(err);
    if (!t)
        return NULL;
    const char *tname = t->name ? t->name : "?";
    if (nonempty(t->api_key_env)) {
        const char *v = getenv(t->api_key_env);
        if (nonempty(v)) {
            char *key = strdup(v);
            if (!key)
                ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            return key;
        }
    }
    if (!nonempty(t->api_key_file))
        return NULL;

    size_t len = 0;
    char *buf = ec_read_file(t->api_key_file, KEY_FILE_MAX_BYTES, &len);
    if (!buf) {
        ec_error_set(err, EC_ERR_CONFIG, "tier %s: cannot read api_key_file %s: %s", tname,
                     t->api_key_file, strerror(errno));
        return NULL;
    }
    /* The key is the first line, without surrounding blanks or a CR. */
    size_t end = strcspn(buf, "\n");
    size_t start = strspn(buf, " \t");
    while (end > start && strchr(" \t\r", buf[end - 1]))
        end--;
    char *key = NULL;
    if (end <= start)
        ec_error_set(err, EC_ERR_CONFIG, "tier %s: api_key_file %s holds no key", tname,
                     t->api_key_file);
    else if (!(key = strndup(buf + start, end - start)))
        ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    explicit_bzero(buf, len);
    free(buf);
    return key;
}

double ec_tier_cost(const ec_tier_cfg *t, uint32_t tokens_in, uint32_t tokens_out)
{
    if (!t)
        return 0;
    if (t->input_per_1m != 0 || t->output_per_1m != 0)
        return ((double)tokens_in * t->input_per_1m + (double)tokens_out * t->output_per_1m) / 1e6;
    return t->cost_per_1k * ((double)tokens_in + (double)tokens_out) / 1000.0;
}

bool ec_provider_is_local(const char *provider)
{
    const provider_info *p = provider_find(provider);
    return p && p->local;
}
