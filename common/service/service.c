#include "edgecascade/service.h"

#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/buf.h"
#include "edgecascade/log.h"
#include "edgecascade/notify.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"

static volatile sig_atomic_t g_stop;
static volatile sig_atomic_t g_reload;
static atomic_bool g_stopping_sent;

struct ec_service_retired {
    ec_config *cfg;
    struct ec_service_retired *next;
};

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        g_reload = 1;
    else
        g_stop = 1;
}

bool ec_service_stopping(void)
{
    return g_stop != 0;
}

bool ec_service_reload_requested(void)
{
    if (!g_reload)
        return false;
    g_reload = 0;
    return true;
}

ec_config *ec_service_config(ec_service *s)
{
    return atomic_load(&s->live);
}

static void usage(FILE *out, const char *prog, const char *summary)
{
    fprintf(out,
            "usage: %s [--config FILE] [--broker URI] [--instance NAME] [--help] [--version]\n"
            "\n%s\n\n"
            "  --config FILE   YAML configuration (every key has a default; see\n"
            "                  deploy/edgecascade.example.yaml or `edgecascade config --example`)\n"
            "  --broker URI    MQTT broker, overrides mqtt.broker (tcp://host:1883)\n"
            "  --instance NAME when running several copies on one host: each needs its own\n"
            "                  name, which becomes part of its stable MQTT client id\n"
            "  --help          this text\n"
            "  --version       print the version\n",
            prog, summary);
}

/* Replaces every "{service}" in *slot with name. */
static ec_err expand_service(char **slot, const char *name, ec_error *err)
{
    static const char tag[] = "{service}";
    if (!*slot || !strstr(*slot, tag))
        return EC_OK;
    ec_buf b;
    ec_buf_init(&b, 0);
    const char *p = *slot, *hit;
    ec_err rc = EC_OK;
    while (rc == EC_OK && (hit = strstr(p, tag))) {
        if ((rc = ec_buf_append(&b, p, (size_t)(hit - p))) == EC_OK)
            rc = ec_buf_append(&b, name, strlen(name));
        p = hit + sizeof(tag) - 1;
    }
    if (rc == EC_OK)
        rc = ec_buf_append(&b, p, strlen(p));
    if (rc) {
        ec_buf_free(&b);
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    }
    free(*slot);
    *slot = ec_buf_take(&b, NULL);
    return EC_OK;
}

ec_err ec_service_credentials(ec_config *cfg, const char *name, ec_error *err)
{
    ec_err rc;
    if ((rc = expand_service(&cfg->username, name, err)) ||
        (rc = expand_service(&cfg->password_file, name, err)))
        return rc;
    if ((cfg->password && *cfg->password) || !cfg->password_file || !*cfg->password_file)
        return EC_OK;
    size_t len = 0;
    char *buf = ec_read_file(cfg->password_file, 64 * 1024, &len);
    if (!buf)
        return ec_error_set(err, EC_ERR_CONFIG, "mqtt.password_file: cannot read %s: %s",
                            cfg->password_file, strerror(errno));
    size_t start = strspn(buf, " \t");
    size_t end = start + strcspn(buf + start, "\n");
    while (end > start && strchr(" \t\r", buf[end - 1]))
        end--;
    char *pw = NULL;
    if (end <= start)
        rc = ec_error_set(err, EC_ERR_CONFIG, "mqtt.password_file: %s holds no password",
                          cfg->password_file);
    else if (!(pw = strndup(buf + start, end - start)))
        rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    explicit_bzero(buf, len);
    free(buf);
    if (pw) {
        free(cfg->password);
        cfg->password = pw;
    }
    return rc;
}

int ec_service_init(ec_service *s, const char *name, const char *summary, int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},   {"broker", required_argument, NULL, 'b'},
        {"instance", required_argument, NULL, 'i'}, {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *broker = NULL, *instance = NULL;
    char prog[64];
    snprintf(prog, sizeof(prog), "edgecascade-%s", name);
    memset(s, 0, sizeof(*s));
    s->name = name;
    ec_mem_init();
    int c;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "c:b:i:hV", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'b':
            broker = optarg;
            break;
        case 'i':
            instance = optarg;
            break;
        case 'h':
            usage(stdout, prog, summary);
            return -1;
        case 'V':
            printf("%s %s (protocol v%d)\n", prog, EC_VERSION, EC_PROTO_VERSION);
            return -1;
        default:
            fprintf(stderr, "%s: unknown option '%s'\n", prog, argv[optind - 1]);
            usage(stderr, prog, summary);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", prog, argv[optind]);
        return 2;
    }

    ec_error err = {0};
    if (ec_config_defaults(&s->cfg, &err) || ec_config_load(&s->cfg, config_path, &err) ||
        ec_config_validate(&s->cfg, &err)) {
        fprintf(stderr, "%s: bad configuration: %s\n", prog, err.msg);
        ec_config_free(&s->cfg);
        return 2;
    }
    if (ec_service_credentials(&s->cfg, name, &err) != EC_OK) {
        fprintf(stderr, "%s: bad configuration: %s\n", prog, err.msg);
        ec_config_free(&s->cfg);
        return 2;
    }
    if (broker) {
        free(s->cfg.broker);
        s->cfg.broker = strdup(broker);
    }
    s->config_path = config_path ? strdup(config_path) : NULL;
    s->broker_arg = broker ? strdup(broker) : NULL;
    atomic_init(&s->live, &s->cfg);
    pthread_mutex_init(&s->status_lock, NULL);
    s->config_ts_ms = ec_now_ms();
    ec_log_level level = EC_LOG_INFO;
    ec_log_level_parse(s->cfg.log_level, &level);
    ec_log_init(prog, level);

    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* The id stays the same across restarts, so the broker keeps this
     * service's session (subscriptions and queued QoS 1 messages) while it is
     * down: a restarted service picks up where it left off. */
    char host[64] = "host";
    gethostname(host, sizeof(host) - 1);
    if (s->cfg.client_id && *s->cfg.client_id)
        snprintf(s->client_id, sizeof(s->client_id), "%s-%s%s%s", s->cfg.client_id, name,
                 instance ? "-" : "", instance ? instance : "");
    else
        snprintf(s->client_id, sizeof(s->client_id), "edgecascade-%s-%s-%s%s%s", name, s->cfg.site,
                 host, instance ? "-" : "", instance ? instance : "");
    char suffix[64];
    snprintf(suffix, sizeof(suffix), "status/%s", name);
    ec_topic(&s->cfg, s->status_topic, sizeof(s->status_topic), suffix);
    return 0;
}

static char *status_json(ec_service *s, const char *state)
{
    ec_model_status models[EC_SERVICE_MAX_MODELS];
    memset(models, 0, sizeof(models));
    ec_status st = {
        .service = (char *)s->name,
        .state = (char *)state,
        .version = EC_VERSION,
        .instance = s->client_id,
        .pid = (uint32_t)getpid(),
        .ts_ms = ec_now_ms(),
    };
    ec_buf b;
    ec_buf_init(&b, 16 * 1024);
    pthread_mutex_lock(&s->status_lock);
    st.config_ts_ms = s->config_ts_ms;
    st.config_error = s->config_error[0] ? s->config_error : NULL;
    size_t n = 0;
    for (size_t i = 0; i < s->n_models; i++) {
        const ec_service_model *m = &s->models[i];
        models[n++] = (ec_model_status){.tier = (char *)m->tier,
                                        .model = m->model[0] ? (char *)m->model : NULL,
                                        .state = (char *)m->state,
                                        .error = m->error[0] ? (char *)m->error : NULL};
    }
    /* Logprobs join the tier's entry, or make one for a tier with a fixed model. */
    for (size_t k = 0; k < s->n_lp; k++) {
        const ec_service_lp *l = &s->lp[k];
        size_t i = 0;
        while (i < n && strcmp(models[i].tier, l->tier) != 0)
            i++;
        if (i == n && n < EC_SERVICE_MAX_MODELS)
            models[n++] = (ec_model_status){.tier = (char *)l->tier,
                                            .model = l->model[0] ? (char *)l->model : NULL,
                                            .state = (char *)"serving"};
        if (i < n)
            models[i].logprobs = (char *)l->state;
    }
    st.models = n ? models : NULL;
    st.n_models = n;
    ec_err rc = ec_status_encode_json(&st, &b, NULL);
    pthread_mutex_unlock(&s->status_lock);
    if (rc != EC_OK) {
        ec_buf_free(&b);
        return NULL;
    }
    return ec_buf_take(&b, NULL);
}

/* Republishes the retained online status (after a reload or a model change). */
static void status_update(ec_service *s)
{
    if (!s->mqtt)
        return;
    char *online = status_json(s, "online");
    ec_error err = {0};
    if (!online || ec_mqtt_set_status(s->mqtt, online, &err) != EC_OK)
        ec_log_warn("status not updated: %s", online ? err.msg : "cannot encode it");
    free(online);
}

ec_err ec_service_reload_prepare(ec_service *s, ec_config **out, ec_error *err)
{
    *out = NULL;
    ec_notifyf("RELOADING=1\nMONOTONIC_USEC=%llu", (unsigned long long)ec_mono_us());
    ec_config *next = calloc(1, sizeof(*next));
    if (!next)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    ec_err rc;
    if ((rc = ec_config_defaults(next, err)) || (rc = ec_config_load(next, s->config_path, err)) ||
        (rc = ec_config_validate(next, err)) || (rc = ec_service_credentials(next, s->name, err)))
        goto fail;
    if (s->broker_arg) {
        free(next->broker);
        if (!(next->broker = strdup(s->broker_arg))) {
            rc = ec_error_set(err, EC_ERR_NOMEM, "out of memory");
            goto fail;
        }
    }
    char key[128];
    if (ec_config_restart_key(ec_service_config(s), next, key, sizeof(key))) {
        rc = ec_error_set(err, EC_ERR_CONFIG,
                          "%s changed: needs a restart (systemctl restart edgecascade-%s); "
                          "nothing of this file was applied",
                          key, s->name);
        goto fail;
    }
    *out = next;
    return EC_OK;
fail:
    ec_config_free(next);
    free(next);
    return rc;
}

void ec_service_reload_commit(ec_service *s, ec_config *next, double took_ms)
{
    struct ec_service_retired *r = malloc(sizeof(*r));
    ec_config *old = atomic_exchange(&s->live, next);
    /* Kept, not freed: a worker may still be reading it (see service.h). */
    if (old != &s->cfg) {
        if (r) {
            r->cfg = old;
            r->next = s->retired;
            s->retired = r;
            r = NULL;
        } else {
            ec_log_warn("out of memory: a replaced configuration is leaked, not freed early");
        }
    }
    free(r);
    ec_log_level level = EC_LOG_INFO;
    if (ec_log_level_parse(next->log_level, &level) == 0)
        ec_log_set_level(level);
    pthread_mutex_lock(&s->status_lock);
    s->config_ts_ms = ec_now_ms();
    s->config_error[0] = '\0';
    pthread_mutex_unlock(&s->status_lock);
    ec_log_info("configuration reloaded from %s in %.1f ms",
                s->config_path ? s->config_path : "(defaults)", took_ms);
    status_update(s);
    ec_notifyf("READY=1\nSTATUS=configuration reloaded");
}

void ec_service_reload_reject(ec_service *s, ec_config *next, const char *why)
{
    if (next) {
        ec_config_free(next);
        free(next);
    }
    ec_log_error("reload refused, the running configuration stays in force: %s", why);
    pthread_mutex_lock(&s->status_lock);
    snprintf(s->config_error, sizeof(s->config_error), "%s", why);
    pthread_mutex_unlock(&s->status_lock);
    status_update(s);
    ec_notifyf("READY=1\nSTATUS=reload refused: %.900s", why);
}

void ec_service_set_models(ec_service *s, const ec_service_model *models, size_t n)
{
    if (n > EC_SERVICE_MAX_MODELS)
        n = EC_SERVICE_MAX_MODELS;
    pthread_mutex_lock(&s->status_lock);
    memcpy(s->models, models, n * sizeof(*models));
    s->n_models = n;
    pthread_mutex_unlock(&s->status_lock);
    status_update(s);
}

void ec_service_set_logprobs(ec_service *s, const char *tier, const char *model, const char *state)
{
    bool changed = false;
    pthread_mutex_lock(&s->status_lock);
    size_t k = 0;
    while (k < s->n_lp && strcmp(s->lp[k].tier, tier) != 0)
        k++;
    if (k == s->n_lp && k < EC_SERVICE_MAX_MODELS) {
        memset(&s->lp[k], 0, sizeof(s->lp[k]));
        snprintf(s->lp[k].tier, sizeof(s->lp[k].tier), "%s", tier);
        s->n_lp++;
    }
    if (k < s->n_lp &&
        (strcmp(s->lp[k].state, state) != 0 || strcmp(s->lp[k].model, model ? model : "") != 0)) {
        snprintf(s->lp[k].state, sizeof(s->lp[k].state), "%s", state);
        snprintf(s->lp[k].model, sizeof(s->lp[k].model), "%s", model ? model : "");
        changed = true;
    }
    pthread_mutex_unlock(&s->status_lock);
    if (changed)
        status_update(s);
}

void ec_service_ready(ec_service *s, const char *fmt, ...)
{
    char text[900];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    (void)s;
    if (ec_notifyf("READY=1\nSTATUS=%s", text) < 0)
        ec_log_warn("systemd notification to %s failed: %s", getenv("NOTIFY_SOCKET"),
                    strerror(errno));
}

void ec_service_notify_stopping(void)
{
    if (!atomic_exchange(&g_stopping_sent, true))
        ec_notify("STOPPING=1\nSTATUS=stopping");
}

ec_err ec_service_connect(ec_service *s, const char *const *filters, ec_error *err)
{
    char *online = status_json(s, "online");
    char *offline = status_json(s, "offline");
    ec_mqtt_opts o = {
        .uri = s->cfg.broker,
        .client_id = s->client_id,
        .username = s->cfg.username,
        .password = s->cfg.password,
        .keepalive_s = s->cfg.keepalive_s,
        .queue_cap = (size_t)s->cfg.queue_size,
        .max_inflight = s->cfg.max_inflight,
        .clean_start = false,
        .session_expiry_s = s->cfg.session_expiry_s,
        .status_topic = s->status_topic,
        .status_online = online,
        .status_offline = offline,
        .on_overflow = s->on_overflow,
        .on_arrival = s->on_arrival,
        .overflow_ctx = s->overflow_ctx,
        .ca_file = s->cfg.ca_file,
        .cert_file = s->cfg.cert_file,
        .key_file = s->cfg.key_file,
    };
    ec_err rc = ec_mqtt_create(&s->mqtt, &o, err);
    free(online);
    free(offline);
    if (rc)
        return rc;
    for (size_t i = 0; filters && filters[i]; i++) {
        if ((rc = ec_mqtt_subscribe(s->mqtt, filters[i], 1, err)))
            return rc;
    }
    /* A service started before its broker waits for it rather than exiting:
     * on a plant PC, start-up order is not guaranteed. */
    unsigned delay = 250;
    while (!g_stop) {
        rc = ec_mqtt_connect(s->mqtt, 5000, err);
        if (rc == EC_OK) {
            ec_log_info("connected to %s as %s", s->cfg.broker, s->client_id);
            return EC_OK;
        }
        ec_log_warn("%s; retrying in %u ms", err ? err->msg : "mqtt connect failed", delay);
        for (unsigned t = 0; t < delay && !g_stop; t += 50)
            ec_sleep_ms(50);
        if (delay < 4000)
            delay *= 2;
    }
    return ec_error_set(err, EC_ERR_UNAVAILABLE, "stopped before the broker answered");
}

void ec_service_shutdown(ec_service *s)
{
    ec_service_notify_stopping();
    if (s->mqtt) {
        ec_mqtt_stop(s->mqtt);
        ec_mqtt_destroy(s->mqtt);
        s->mqtt = NULL;
    }
    ec_config *live = atomic_load(&s->live);
    if (live && live != &s->cfg) {
        ec_config_free(live);
        free(live);
    }
    while (s->retired) {
        struct ec_service_retired *r = s->retired;
        s->retired = r->next;
        ec_config_free(r->cfg);
        free(r->cfg);
        free(r);
    }
    free(s->config_path);
    free(s->broker_arg);
    s->config_path = s->broker_arg = NULL;
    pthread_mutex_destroy(&s->status_lock);
    ec_config_free(&s->cfg);
}

char *ec_topic(const ec_config *cfg, char *out, size_t outlen, const char *suffix)
{
    int n = snprintf(out, outlen, "%s/%s", cfg->topic_root, suffix);
    if (n < 0 || (size_t)n >= outlen)
        return NULL;
    return out;
}
