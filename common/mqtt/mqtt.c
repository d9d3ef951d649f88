/* MQTT v5 client over Paho MQTTAsync (design notes in mqtt.h).
 *
 * Intake: on_message copies the message and try-pushes it onto the bounded
 * inbound queue; when full, the owner's overflow hook or a forced push takes
 * it (see mqtt.h). Outbound: mqtt_publish.c. */
#include "mqtt_internal.h"

#include <MQTTAsync.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/queue.h"
#include "edgecascade/util.h"

void ec_mqtt_userprops_free(ec_mqtt_userprop *p, size_t n)
{
    for (size_t i = 0; p && i < n; i++) {
        free(p[i].name);
        free(p[i].value);
    }
    free(p);
}

void ec_mqtt_msg_free(ec_mqtt_msg *m)
{
    if (!m)
        return;
    ec_mqtt_userprops_free(m->user_props, m->n_user_props);
    free(m->topic);
    free(m->payload);
    free(m->response_topic);
    free(m->corr);
    free(m->content_type);
    free(m);
}

/* ---- Paho callbacks: copy, signal, return ---- */

static void *copy_prop(MQTTProperties *props, enum MQTTPropertyCodes code, size_t *len, bool cstr)
{
    MQTTProperty *p = MQTTProperties_getProperty(props, code);
    if (!p)
        return NULL;
    size_t n = (size_t)p->value.data.len;
    char *out = malloc(n + 1);
    if (!out)
        return NULL;
    memcpy(out, p->value.data.data, n);
    out[n] = '\0';
    if (len)
        *len = n;
    (void)cstr;
    return out;
}

/* The request's User Properties, kept to be echoed on its Result (an MQTT
 * v5 request/response client expects them back). Out of memory: none kept. */
static void copy_user_props(MQTTProperties *props, ec_mqtt_msg *msg)
{
    int n = MQTTProperties_propertyCount(props, MQTTPROPERTY_CODE_USER_PROPERTY);
    if (n <= 0)
        return;
    ec_mqtt_userprop *up = calloc((size_t)n, sizeof(*up));
    if (!up)
        return;
    for (int i = 0; i < n; i++) {
        MQTTProperty *p = MQTTProperties_getPropertyAt(props, MQTTPROPERTY_CODE_USER_PROPERTY, i);
        if (!p || !(up[i].name = strndup(p->value.data.data, (size_t)p->value.data.len)) ||
            !(up[i].value = strndup(p->value.value.data, (size_t)p->value.value.len))) {
            ec_mqtt_userprops_free(up, (size_t)n);
            return;
        }
    }
    msg->user_props = up;
    msg->n_user_props = (size_t)n;
}

static int on_message(void *ctx, char *topic, int topic_len, MQTTAsync_message *pm)
{
    ec_mqtt *m = ctx;
    ec_mqtt_msg *msg = calloc(1, sizeof(*msg));
    size_t tlen = topic_len > 0 ? (size_t)topic_len : strlen(topic);
    if (!msg)
        return 0; /* Paho keeps it and offers it again */
    msg->topic = strndup(topic, tlen);
    msg->len = pm->payloadlen > 0 ? (size_t)pm->payloadlen : 0;
    msg->payload = malloc(msg->len + 1);
    if (!msg->topic || !msg->payload) {
        ec_mqtt_msg_free(msg);
        return 0;
    }
    if (msg->len)
        memcpy(msg->payload, pm->payload, msg->len);
    ((char *)msg->payload)[msg->len] = '\0';
    msg->qos = pm->qos;
    msg->dup = pm->dup != 0;
    msg->retained = pm->retained != 0;
    msg->response_topic = copy_prop(&pm->properties, MQTTPROPERTY_CODE_RESPONSE_TOPIC, NULL, true);
    msg->corr =
        copy_prop(&pm->properties, MQTTPROPERTY_CODE_CORRELATION_DATA, &msg->corr_len, false);
    msg->content_type = copy_prop(&pm->properties, MQTTPROPERTY_CODE_CONTENT_TYPE, NULL, true);
    MQTTProperty *exp =
        MQTTProperties_getProperty(&pm->properties, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL);
    if (exp)
        msg->expiry_s = (uint32_t)exp->value.integer4;
    MQTTProperty *pfi =
        MQTTProperties_getProperty(&pm->properties, MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR);
    msg->format = pfi ? (int)pfi->value.byte : -1;
    copy_user_props(&pm->properties, msg);
    msg->received_us = ec_mono_us();

    MQTTAsync_freeMessage(&pm);
    MQTTAsync_free(topic);
    if (m->on_arrival)
        m->on_arrival(m->overflow_ctx, msg);
    ec_err rc = ec_queue_try_push(m->inbound, msg);
    if (rc == EC_ERR_BUSY) {
        atomic_fetch_add(&m->overflows, 1);
        if (!(m->on_overflow && m->on_overflow(m->overflow_ctx, msg))) {
            msg->overflowed = true;
            rc = ec_queue_push_force(m->inbound, msg);
        } else {
            rc = EC_OK;
        }
    }
    if (rc != EC_OK) {
        /* Only after ec_mqtt_stop() or out of memory. */
        ec_log_error("mqtt: message on %s could not be queued: %s", msg->topic, ec_strerror(rc));
        ec_mqtt_msg_free(msg);
    }
    return 1;
}

/* A broker that gives no reason (Mosquitto 2.0.11, Debian 12's, closes the
 * older of two connections with one client id without the v5 DISCONNECT
 * 0x8E) still shows the pattern: connections that live a second or two, again
 * and again. Counted under m->lock; said once a minute at most. */
#define EC_MQTT_SHORT_LIFE_US  (10u * 1000000u)
#define EC_MQTT_FLAP_WINDOW_US (60u * 1000000u)
#define EC_MQTT_FLAPS_TO_TELL  3

static void note_short_life(ec_mqtt *m, uint64_t now)
{
    if (m->connected_us == 0 || now - m->connected_us > EC_MQTT_SHORT_LIFE_US)
        return;
    m->drops.short_lived++;
    if (now - m->flap_window_us > EC_MQTT_FLAP_WINDOW_US) {
        m->flap_window_us = now;
        m->flaps = 0;
    }
    if (++m->flaps < EC_MQTT_FLAPS_TO_TELL ||
        (m->flap_told_us && now - m->flap_told_us < EC_MQTT_FLAP_WINDOW_US))
        return;
    m->flap_told_us = now;
    ec_log_error("mqtt: the connection to %s closed %d times in %u s, each within %u s of "
                 "connecting. Most often another client uses the same client id '%s' "
                 "(Mosquitto logs \"Client %s already connected, closing old connection\"): "
                 "give each process and device its own mqtt.client_id or site",
                 m->uri, m->flaps, (unsigned)((now - m->flap_window_us) / 1000000u + 1),
                 EC_MQTT_SHORT_LIFE_US / 1000000u, m->client_id, m->client_id);
}

static void on_connection_lost(void *ctx, char *cause)
{
    ec_mqtt *m = ctx;
    uint64_t now = ec_mono_us();
    pthread_mutex_lock(&m->lock);
    m->connected = false;
    if (!m->stopping)
        note_short_life(m, now);
    /* After a DISCONNECT, on_disconnected has said why (Paho's cause is NULL). */
    bool told = m->close_logged;
    m->close_logged = false;
    pthread_mutex_unlock(&m->lock);
    if (!m->stopping && !told)
        ec_log_warn("mqtt: connection to %s lost (%s); reconnecting", m->uri,
                    cause ? cause : "no reason given");
}

/* A broker that closes a v5 connection may say why in a DISCONNECT (MQTT
 * 5.0, 3.14.2.1; EMQX, HiveMQ and newer Mosquitto do); the connection-lost
 * callback that follows only gets NULL. The reason string is the broker's
 * text: printable bytes only reach the log. */
static void on_disconnected(void *ctx, MQTTProperties *props, enum MQTTReasonCodes rc)
{
    ec_mqtt *m = ctx;
    char text[128] = "";
    MQTTProperty *p =
        props ? MQTTProperties_getProperty(props, MQTTPROPERTY_CODE_REASON_STRING) : NULL;
    if (p && p->value.data.len > 0) {
        size_t n = (size_t)p->value.data.len < sizeof(text) - 4 ? (size_t)p->value.data.len
                                                                : sizeof(text) - 4;
        size_t o = 0;
        text[o++] = ':';
        text[o++] = ' ';
        for (size_t i = 0; i < n; i++) {
            unsigned char c = (unsigned char)p->value.data.data[i];
            text[o++] = c >= 0x20 && c < 0x7f ? (char)c : '?';
        }
        text[o] = '\0';
    }
    pthread_mutex_lock(&m->lock);
    m->drops.broker_closes++;
    m->drops.last_reason = (int)rc;
    m->close_logged = true;
    pthread_mutex_unlock(&m->lock);
    if (rc == MQTTREASONCODE_SESSION_TAKEN_OVER)
        ec_log_error("mqtt: %s closed this connection because another client connected with "
                     "the same client id '%s' (session taken over%s). Two processes or devices "
                     "share one id: give each its own mqtt.client_id or site. Reconnecting",
                     m->uri, m->client_id, text);
    else
        ec_log_error("mqtt: %s closed this connection: %s (reason code 0x%02X%s); reconnecting",
                     m->uri, MQTTReasonCode_toString(rc), (unsigned)rc, text);
}

static void on_sub_success(void *ctx, MQTTAsync_successData5 *resp)
{
    ec_mqtt *m = ctx;
    bool ok = true;
    /* Granted QoS >= 0x80 is a refusal (e.g. ACL denied). */
    if (resp && resp->alt.sub.reasonCodeCount <= 1 && resp->reasonCode >= 0x80)
        ok = false;
    pthread_mutex_lock(&m->lock);
    if (ok)
        m->subs_acked++;
    else
        ec_log_error("mqtt: subscription refused by broker (reason %d)", resp->reasonCode);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static void on_sub_failure(void *ctx, MQTTAsync_failureData5 *resp)
{
    ec_log_error("mqtt: subscribe failed: %s", resp && resp->message
                                                   ? resp->message
                                                   : MQTTAsync_strerror(resp ? resp->code : -1));
}

static int subscribe_one(ec_mqtt *m, const sub *s)
{
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_sub_success;
    ro.onFailure5 = on_sub_failure;
    ro.context = m;
    return MQTTAsync_subscribe(m->client, s->filter, s->qos, &ro);
}

static void publish_status(ec_mqtt *m, const char *payload);

/* Runs on every successful (re)connection: renew subscriptions (the broker may
 * have expired our session) and announce ourselves. */
static void on_connected(void *ctx, char *cause)
{
    ec_mqtt *m = ctx;
    (void)cause;
    pthread_mutex_lock(&m->lock);
    m->connected = true;
    m->connected_us = ec_mono_us();
    m->generation++;
    m->subs_acked = 0;
    int n = m->n_subs;
    sub subs[EC_MQTT_MAX_SUBS];
    memcpy(subs, m->subs, sizeof(subs));
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    for (int i = 0; i < n; i++) {
        int rc = subscribe_one(m, &subs[i]);
        if (rc != MQTTASYNC_SUCCESS)
            ec_log_error("mqtt: subscribe %s: %s", subs[i].filter, MQTTAsync_strerror(rc));
    }
    /* The online status may be replaced at any time (ec_mqtt_set_status). */
    pthread_mutex_lock(&m->lock);
    char *online = m->status_topic ? ec_strdup0(m->status_online) : NULL;
    pthread_mutex_unlock(&m->lock);
    if (online)
        publish_status(m, online);
    free(online);
    if (m->generation > 1)
        ec_log_info("mqtt: reconnected to %s", m->uri);
}

static void on_connect_failure(void *ctx, MQTTAsync_failureData5 *resp)
{
    ec_mqtt *m = ctx;
    pthread_mutex_lock(&m->lock);
    m->connect_failed = true;
    /* For a CONNACK refusal (bad credentials, not authorised) the MQTT v5
     * reason code is the useful part. */
    m->connect_rc = resp ? ((int)resp->reasonCode > 0 ? (int)resp->reasonCode : resp->code) : -1;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static void publish_status(ec_mqtt *m, const char *payload)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)strlen(payload);
    msg.qos = 1;
    msg.retained = 1;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    int rc = MQTTAsync_sendMessage(m->client, m->status_topic, &msg, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        ec_log_warn("mqtt: status publish: %s", MQTTAsync_strerror(rc));
}

/* ---- public API ---- */

ec_err ec_mqtt_set_status(ec_mqtt *m, const char *online, ec_error *err)
{
    if (!m->status_topic)
        return ec_error_set(err, EC_ERR_INVAL, "mqtt: no status topic");
    char *copy = strdup(online);
    if (!copy)
        return ec_error_set(err, EC_ERR_NOMEM, "out of memory");
    pthread_mutex_lock(&m->lock);
    free(m->status_online);
    m->status_online = copy;
    bool up = m->connected && !m->stopping;
    pthread_mutex_unlock(&m->lock);
    /* Sent from our copy under no lock: Paho copies the payload. When not
     * connected, on_connected publishes the new text. */
    if (up) {
        pthread_mutex_lock(&m->lock);
        char *now = ec_strdup0(m->status_online);
        pthread_mutex_unlock(&m->lock);
        if (now)
            publish_status(m, now);
        free(now);
    }
    return EC_OK;
}

/* OpenSSL 3 initialises itself on first use. Left to Paho, it is initialised
 * at the first client even for a plain tcp:// broker, which touches about
 * 3 MB of libcrypto (measured: local service RSS 11.1 -> 8 MB) for nothing. */
static pthread_once_t g_paho_once = PTHREAD_ONCE_INIT;

static void paho_init_once(void)
{
    MQTTAsync_init_options io = MQTTAsync_init_options_initializer;
    io.do_openssl_init = 0;
    MQTTAsync_global_init(&io);
}

bool ec_mqtt_uri_is_tls(const char *uri)
{
    /* Paho's own list (MQTTAsync_createWithOptions); wss:// is TLS too, and
     * without SSL options Paho refuses to connect to it. */
    static const char *const tls[] = {"ssl://", "mqtts://", "wss://"};
    for (size_t i = 0; uri && i < sizeof(tls) / sizeof(tls[0]); i++)
        if (strncmp(uri, tls[i], strlen(tls[i])) == 0)
            return true;
    return false;
}

ec_err ec_mqtt_create(ec_mqtt **out, const ec_mqtt_opts *o, ec_error *err)
{
    pthread_once(&g_paho_once, paho_init_once);
    ec_err rc = EC_OK;
    ec_mqtt *m = calloc(1, sizeof(*m));
    if (!m)
        return ec_error_set(err, EC_ERR_NOMEM, "mqtt: out of memory");
    pthread_mutex_init(&m->lock, NULL);
    ec_cond_init_mono(&m->cond);

    if (!o->uri || !o->client_id) {
        rc = ec_error_set(err, EC_ERR_INVAL, "mqtt: broker URI and client id are required");
        goto out;
    }
    m->uri = strdup(o->uri);
    m->client_id = strdup(o->client_id);
    m->username = ec_strdup0(o->username && *o->username ? o->username : NULL);
    m->password = ec_strdup0(o->password && *o->password ? o->password : NULL);
    m->tls = ec_mqtt_uri_is_tls(o->uri);
    ec_mqtt_wrap_note_uri(o->uri);
    m->ca_file = ec_strdup0(o->ca_file && *o->ca_file ? o->ca_file : NULL);
    m->cert_file = ec_strdup0(o->cert_file && *o->cert_file ? o->cert_file : NULL);
    m->key_file = ec_strdup0(o->key_file && *o->key_file ? o->key_file : NULL);
    m->status_topic = ec_strdup0(o->status_topic);
    m->status_online = ec_strdup0(o->status_online);
    m->status_offline = ec_strdup0(o->status_offline);
    m->keepalive_s = o->keepalive_s > 0 ? o->keepalive_s : 30;
    m->clean_start = o->clean_start;
    m->session_expiry_s = o->session_expiry_s;
    m->max_inflight = o->max_inflight > 0 ? o->max_inflight : 256;
    m->broker_rx_max = 65535;
    m->on_overflow = o->on_overflow;
    m->on_arrival = o->on_arrival;
    m->overflow_ctx = o->overflow_ctx;
    if ((rc = ec_queue_create(&m->inbound, o->queue_cap ? o->queue_cap : 4096)) != EC_OK) {
        ec_error_set(err, rc, "mqtt: cannot create inbound queue");
        goto out;
    }

    MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
    co.sendWhileDisconnected = 1;
    co.maxBufferedMessages = 10000;
    co.deleteOldestMessages = 0; /* refuse new rather than silently drop old */
    int prc = MQTTAsync_createWithOptions(&m->client, m->uri, m->client_id,
                                          MQTTCLIENT_PERSISTENCE_NONE, NULL, &co);
    if (prc != MQTTASYNC_SUCCESS) {
        rc = ec_error_set(err, EC_ERR_MQTT, "mqtt: cannot create client for %s: %s", m->uri,
                          MQTTAsync_strerror(prc));
        m->client = NULL;
        goto out;
    }
    /* This reference also makes the linker pull mqtt_wrap.o (which defines
     * __wrap_connect) out of libec_common.a before it reaches Paho's archive. */
    ec_log_debug("mqtt: client %s created (%u sockets with TCP_NODELAY so far)", m->client_id,
                 ec_mqtt_nodelay_count());
    MQTTAsync_setCallbacks(m->client, m, on_connection_lost, on_message, NULL);
    MQTTAsync_setConnected(m->client, m, on_connected);
    MQTTAsync_setDisconnected(m->client, m, on_disconnected);
    *out = m;
    return EC_OK;
out:
    ec_mqtt_destroy(m);
    return rc;
}

ec_err ec_mqtt_subscribe(ec_mqtt *m, const char *filter, int qos, ec_error *err)
{
    pthread_mutex_lock(&m->lock);
    if (m->n_subs == EC_MQTT_MAX_SUBS) {
        pthread_mutex_unlock(&m->lock);
        return ec_error_set(err, EC_ERR_INVAL, "mqtt: too many subscriptions");
    }
    sub *s = &m->subs[m->n_subs];
    s->filter = strdup(filter);
    s->qos = qos;
    if (!s->filter) {
        pthread_mutex_unlock(&m->lock);
        return ec_error_set(err, EC_ERR_NOMEM, "mqtt: out of memory");
    }
    m->n_subs++;
    bool connected = m->connected;
    sub copy = *s;
    pthread_mutex_unlock(&m->lock);
    if (connected) {
        int rc = subscribe_one(m, &copy);
        if (rc != MQTTASYNC_SUCCESS)
            return ec_error_set(err, EC_ERR_MQTT, "mqtt: subscribe %s: %s", filter,
                                MQTTAsync_strerror(rc));
    }
    return EC_OK;
}

/* OpenSSL's reason for a failed handshake (bad CA, expired or mismatched
 * certificate): without it Paho reports only a bare failure. */
static int on_ssl_error(const char *str, size_t len, void *ctx)
{
    ec_mqtt *m = ctx;
    ec_log_warn("mqtt: TLS with %s: %.*s", m->uri, (int)len, str);
    return 0;
}

ec_err ec_mqtt_connect(ec_mqtt *m, int timeout_ms, ec_error *err)
{
    MQTTAsync_connectOptions co = MQTTAsync_connectOptions_initializer5;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTAsync_willOptions will = MQTTAsync_willOptions_initializer;
    MQTTProperty p;
    co.keepAliveInterval = m->keepalive_s;
    co.cleanstart = m->clean_start ? 1 : 0;
    co.automaticReconnect = 1;
    co.minRetryInterval = 1;
    /* Paho counts in whole seconds and doubles: keep the cap low, so a broker
     * that restarts in a second is back in use within about two. */
    co.maxRetryInterval = 2;
    co.connectTimeout = timeout_ms > 1000 ? timeout_ms / 1000 : 1;
    co.onSuccess5 = ec_mqtt_on_connect_success;
    co.onFailure5 = on_connect_failure;
    co.context = m;
    co.username = m->username;
    co.password = m->password;
    /* Verify the broker's certificate and host name: a plant network is not a
     * trusted one. */
    MQTTAsync_SSLOptions ssl = MQTTAsync_SSLOptions_initializer;
    if (m->tls) {
        ssl.trustStore = m->ca_file;
        ssl.keyStore = m->cert_file;
        ssl.privateKey = m->key_file;
        ssl.enableServerCertAuth = 1;
        ssl.verify = 1;
        ssl.sslVersion = MQTT_SSL_VERSION_DEFAULT;
        ssl.ssl_error_context = m;
        ssl.ssl_error_cb = on_ssl_error;
        co.ssl = &ssl;
    }
    memset(&p, 0, sizeof(p));
    p.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL;
    p.value.integer4 = m->session_expiry_s;
    MQTTProperties_add(&props, &p);
    co.connectProperties = &props;
    if (m->status_topic && m->status_offline) {
        will.topicName = m->status_topic;
        will.payload.data = m->status_offline;
        will.payload.len = (int)strlen(m->status_offline);
        will.message = NULL;
        will.retained = 1;
        will.qos = 1;
        co.will = &will;
    }

    pthread_mutex_lock(&m->lock);
    m->connect_failed = false;
    pthread_mutex_unlock(&m->lock);
    int prc = MQTTAsync_connect(m->client, &co);
    MQTTProperties_free(&props);
    if (prc != MQTTASYNC_SUCCESS)
        return ec_error_set(err, EC_ERR_MQTT, "mqtt: connect to %s: %s", m->uri,
                            MQTTAsync_strerror(prc));

    struct timespec deadline;
    ec_deadline_in(&deadline, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&m->lock);
    while (!(m->connected && m->subs_acked >= m->n_subs)) {
        if (m->connect_failed) {
            /* Paho reports a refused or unreachable TCP connection as a bare
             * "Failure" (-1); say what that means. */
            const char *why = m->connect_rc == MQTTASYNC_FAILURE
                                  ? "TCP connection refused or broker unreachable"
                                  : MQTTAsync_strerror(m->connect_rc);
            if (m->connect_rc > 0)
                why = MQTTReasonCode_toString((enum MQTTReasonCodes)m->connect_rc);
            rc = ec_error_set(err, EC_ERR_UNAVAILABLE, "mqtt: cannot connect to %s: %s (code %d)",
                              m->uri, why, m->connect_rc);
            break;
        }
        if (pthread_cond_timedwait(&m->cond, &m->lock, &deadline) == ETIMEDOUT) {
            rc = ec_error_set(err, EC_ERR_TIMEOUT,
                              "mqtt: no connection to %s within %d ms (is the broker running?)",
                              m->uri, timeout_ms);
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}

bool ec_mqtt_connected(ec_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    bool c = m->connected;
    pthread_mutex_unlock(&m->lock);
    return c;
}

ec_err ec_mqtt_next(ec_mqtt *m, ec_mqtt_msg **out, int timeout_ms)
{
    void *item = NULL;
    ec_err rc = ec_queue_pop(m->inbound, &item, timeout_ms);
    if (rc == EC_OK)
        *out = item;
    return rc;
}

size_t ec_mqtt_queue_len(ec_mqtt *m)
{
    return ec_queue_len(m->inbound);
}

void ec_mqtt_drops_get(ec_mqtt *m, ec_mqtt_drops *out)
{
    pthread_mutex_lock(&m->lock);
    *out = m->drops;
    pthread_mutex_unlock(&m->lock);
}

uint64_t ec_mqtt_overflows(ec_mqtt *m)
{
    return atomic_load(&m->overflows);
}

void ec_mqtt_stop(ec_mqtt *m)
{
    if (!m || !m->client || m->stopping)
        return;
    if (m->status_topic && m->status_offline && ec_mqtt_connected(m)) {
        /* In a publish slot, so that the flush below waits for its PUBACK:
         * Paho holds a DISCONNECT while any QoS 1 publish is unacknowledged
         * and looks again only once a second, so an untracked status made
         * every stop take a second. No slot within a second (the broker is
         * not acknowledging): sent untracked, as before. */
        ec_error perr = {0};
        if (ec_mqtt_publish(m, m->status_topic, m->status_offline, strlen(m->status_offline), 1,
                            true, NULL, 1000, &perr) != EC_OK)
            publish_status(m, m->status_offline);
    }
    ec_mqtt_flush(m, 2000);
    pthread_mutex_lock(&m->lock);
    m->stopping = true;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    MQTTAsync_disconnectOptions d = MQTTAsync_disconnectOptions_initializer5;
    d.timeout = 1000;
    MQTTAsync_disconnect(m->client, &d);
    /* Disconnect is asynchronous; give it a moment so the broker sees a clean
     * DISCONNECT (no Last Will) before the process exits. */
    for (int i = 0; i < 100 && MQTTAsync_isConnected(m->client); i++)
        ec_sleep_ms(10);
    ec_queue_close(m->inbound);
}

void ec_mqtt_destroy(ec_mqtt *m)
{
    if (!m)
        return;
    if (m->client) {
        if (!m->stopping)
            ec_mqtt_stop(m);
        MQTTAsync_destroy(&m->client);
    }
    ec_queue_destroy(m->inbound, (void (*)(void *))ec_mqtt_msg_free);
    for (int i = 0; i < m->n_subs; i++)
        free(m->subs[i].filter);
    free(m->uri);
    free(m->client_id);
    free(m->username);
    free(m->password);
    free(m->ca_file);
    free(m->cert_file);
    free(m->key_file);
    free(m->status_topic);
    free(atomic_load(&m->listen_prefix));
    free(m->status_online);
    free(m->status_offline);
    pthread_cond_destroy(&m->cond);
    pthread_mutex_destroy(&m->lock);
    free(m);
}
