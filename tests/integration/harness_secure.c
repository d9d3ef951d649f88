/* The secured broker for integration tests (harness_secure.h). */
#include "harness_secure.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/buf.h"
#include "edgecascade/util.h"

static void run(const char *cmd)
{
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("%s: exit %d", cmd, rc);
}

void ech_secure_broker_conf(ech *h, const char *out)
{
    size_t len = 0;
    char *text = ec_read_file(EC_SOURCE_DIR "/deploy/mosquitto/edgecascade.conf", 1 << 20, &len);
    assert_non_null(text);
    char listener[64], state[300];
    snprintf(listener, sizeof(listener), "listener %d 127.0.0.1", h->mqtt_port);
    snprintf(state, sizeof(state), "%s/", h->dir);
    const struct {
        const char *from, *to;
    } subst[] = {
        {"/etc/mosquitto/edgecascade", h->dir},
        {"listener 8883", listener},
        {"/var/lib/mosquitto/", state},
        {"log_dest syslog", "log_dest stderr"},
    };
    ec_buf b;
    ec_buf_init(&b, 0);
    for (const char *p = text; *p;) {
        size_t i, n = sizeof(subst) / sizeof(subst[0]);
        for (i = 0; i < n; i++)
            if (strncmp(p, subst[i].from, strlen(subst[i].from)) == 0)
                break;
        if (i < n) {
            ec_buf_append(&b, subst[i].to, strlen(subst[i].to));
            p += strlen(subst[i].from);
        } else {
            ec_buf_append(&b, p++, 1);
        }
    }
    /* As root Mosquitto drops to user "mosquitto", who cannot read our temp dir. */
    if (geteuid() == 0)
        ec_buf_append(&b, "user root\n", 10);
    FILE *f = fopen(out, "w");
    assert_non_null(f);
    fwrite(b.data, 1, b.len, f);
    fclose(f);
    ec_buf_free(&b);
    free(text);
}

static void write_services_conf(ech_secure *s, const char *router_yaml)
{
    ech *h = &s->h;
    char tiers[2048];
    ech_default_tiers(h, tiers, sizeof(tiers));
    FILE *f = fopen(h->config, "w");
    assert_non_null(f);
    fprintf(f,
            "site: test\n"
            "topic_root: %s\n"
            "mqtt:\n"
            "  broker: %s\n"
            "  ca_file: %s\n"
            "  username: edgecascade-{service}\n"
            "  password_file: %s/secrets/edgecascade-{service}.password\n"
            "store:\n"
            "  path: %s\n"
            "  batch_ms: 10\n"
            "log:\n"
            "  level: debug\n"
            "router:\n"
            "  require_identity: true\n"
            "  response_topics:\n"
            "    - filter: plc/{asker}/#\n"
            "    - filter: \"{root}/replies/{asker}/#\"\n"
            "%s"
            "%s",
            h->root, h->uri, s->ca, h->dir, h->db, router_yaml ? router_yaml : "", tiers);
    fclose(f);
}

const char *ech_secure_password(ech_secure *s, const char *user)
{
    static _Thread_local char pw[8][128];
    static _Thread_local int next;
    char path[600];
    snprintf(path, sizeof(path), "%s/secrets/%s.password", s->h.dir, user);
    size_t len = 0;
    char *text = ec_read_file(path, 4096, &len);
    if (!text)
        fail_msg("no password file for %s", user);
    char *out = pw[next++ % 8];
    snprintf(out, sizeof(pw[0]), "%s", text);
    free(text);
    return out;
}

void ech_secure_start(ech_secure *s, const char *test_name, const char *router_yaml)
{
    ech *h = &s->h;
    ech_init(h, test_name);
    char cmd[2048];
    snprintf(cmd, sizeof(cmd), "%s/deploy/mosquitto/make-certs.sh %s/certs >/dev/null",
             EC_SOURCE_DIR, h->dir);
    run(cmd);
    snprintf(cmd, sizeof(cmd),
             "%s/deploy/mosquitto/make-users.sh %s --root %s --plc plc1 --plc plc2 "
             "--integrator scada >/dev/null",
             EC_SOURCE_DIR, h->dir, h->root);
    run(cmd);
    snprintf(s->ca, sizeof(s->ca), "%s/certs/ca.crt", h->dir);
    char conf[600];
    snprintf(conf, sizeof(conf), "%s/mosquitto-secure.conf", h->dir);
    ech_secure_broker_conf(h, conf);
    snprintf(h->uri, sizeof(h->uri), "mqtts://127.0.0.1:%d", h->mqtt_port);
    ech_start_broker_conf(h, conf);
    ech_start_sim(h, NULL);
    write_services_conf(s, router_yaml);
    static char cli_pw[128];
    snprintf(cli_pw, sizeof(cli_pw), "%s", ech_secure_password(s, "edgecascade-cli"));
    h->mqtt_user = "edgecascade-cli";
    h->mqtt_password = cli_pw;
    h->mqtt_ca_file = s->ca;
    ech_start_services(h);
}

ec_mqtt *ech_secure_client(ech_secure *s, const char *user, const char *password, const char *uri,
                           const char *const *subs)
{
    ec_mqtt *c = NULL;
    ec_error err = {0};
    char cid[64];
    static int n;
    snprintf(cid, sizeof(cid), "secure-%d-%s-%d", (int)getpid(), user ? user : "anon", n++);
    if (user && !password)
        password = ech_secure_password(s, user);
    ec_mqtt_opts o = {.uri = uri ? uri : s->h.uri,
                      .client_id = cid,
                      .clean_start = true,
                      .session_expiry_s = 1,
                      .username = user,
                      .password = password,
                      .ca_file = s->ca};
    assert_int_equal(ec_mqtt_create(&c, &o, &err), EC_OK);
    if (ec_mqtt_connect(c, 3000, &err) != EC_OK) {
        ec_mqtt_destroy(c);
        return NULL;
    }
    /* After the connection: a refused subscription must not fail the connect. */
    for (size_t i = 0; subs && subs[i]; i++)
        assert_int_equal(ec_mqtt_subscribe(c, subs[i], 1, &err), EC_OK);
    ec_sleep_ms(200); /* SUBACK */
    return c;
}

void ech_secure_publish(ec_mqtt *c, const char *topic, const char *reply, const char *prompt,
                        const char *source, char *corr, char *id)
{
    ec_id_new(corr);
    ec_id_new(id);
    ec_query q = {.id = id, .prompt = (char *)prompt, .source = (char *)source};
    ec_buf b;
    ec_error err = {0};
    ec_buf_init(&b, 0);
    assert_int_equal(ec_query_encode(&q, &b, &err), EC_OK);
    ec_mqtt_pubprops pp = {.response_topic = reply, .corr = corr, .corr_len = strlen(corr)};
    /* A publish the ACL denies may be acknowledged as if taken (Mosquitto
     * does not tell the client): the outcome is not the check. */
    (void)ec_mqtt_publish(c, topic, b.data, b.len, 1, false, &pp, 5000, &err);
    ec_buf_free(&b);
}

int ech_secure_wait(ec_mqtt *c, const char *corr, const char *topic, ec_result *out, int timeout_ms)
{
    ec_error err = {0};
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) != EC_OK)
            continue;
        bool mine =
            corr ? m->corr && m->corr_len == strlen(corr) && !memcmp(m->corr, corr, m->corr_len)
                 : strcmp(m->topic, topic) == 0;
        int rc = mine ? (ec_result_decode(m->payload, m->len, out, &err) == EC_OK ? 0 : -1) : 1;
        ec_mqtt_msg_free(m);
        if (rc <= 0)
            return rc;
    }
    return -1;
}

int ech_secure_drain(ec_mqtt *c, int ms)
{
    int n = 0;
    uint64_t deadline = ec_mono_us() + (uint64_t)ms * 1000u;
    while (ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 50) == EC_OK) {
            n++;
            ec_mqtt_msg_free(m);
        }
    }
    return n;
}
