/* The outbound side of the MQTT client (mqtt_internal.h): a counting slot per
 * unacknowledged QoS>0 publish, never more than the broker's Receive
 * Maximum, and publishers that wait for a slot, so a burst pushes back on
 * its producer instead of piling up inside Paho. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "edgecascade/log.h"
#include "edgecascade/util.h"
#include "mqtt_internal.h"

/* Under the lock: how many QoS>0 publishes may be out at once. Never more
 * than the broker's Receive Maximum: Paho holds any surplus in its own
 * command queue and its send thread drains that queue only once a second
 * (Paho C since 1.3.6, eclipse-paho/paho.mqtt.c issues 1252 and 1256), so a
 * burst on a stock Mosquitto (max_inflight_messages 20) stalled for
 * seconds. The surplus waits here instead, in ec_mqtt_publish, and goes out
 * the moment an acknowledgement frees a slot. */
static int limit_locked(const ec_mqtt *m)
{
    return m->max_inflight < m->broker_rx_max ? m->max_inflight : m->broker_rx_max;
}

/* The first CONNACK's properties (Paho calls this only once: reconnects go
 * to on_connected, which gets none, so the value read here stays in force;
 * a broker reconfigured with a lower limit needs a restart of the service). */
void ec_mqtt_on_connect_success(void *ctx, MQTTAsync_successData5 *resp)
{
    ec_mqtt *m = ctx;
    int rx = 65535; /* MQTT v5 3.2.2.3.3: absent means 65,535 */
    if (resp && MQTTProperties_hasProperty(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM))
        rx = MQTTProperties_getNumericValue(&resp->properties, MQTTPROPERTY_CODE_RECEIVE_MAXIMUM);
    if (rx < 1)
        rx = 65535;
    pthread_mutex_lock(&m->lock);
    m->broker_rx_max = rx;
    int limit = limit_locked(m);
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
    if (rx < m->max_inflight)
        ec_log_info("mqtt: %s accepts %d unacknowledged publishes (Receive Maximum); at most %d "
                    "out at once, the rest wait in order",
                    m->uri, rx, limit);
}

int ec_mqtt_inflight_limit(ec_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    int limit = limit_locked(m);
    pthread_mutex_unlock(&m->lock);
    return limit;
}

static void release_slot(ec_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    if (m->inflight > 0)
        m->inflight--;
    pthread_cond_broadcast(&m->cond);
    pthread_mutex_unlock(&m->lock);
}

static void note_listeners(ec_mqtt *m, const MQTTAsync_successData5 *resp)
{
    int rc = ec_mqtt_wrap_take_ack_rc();
    const char *prefix = atomic_load_explicit(&m->listen_prefix, memory_order_acquire);
    if (!prefix || rc < 0 || !resp || !resp->alt.pub.destinationName ||
        strncmp(resp->alt.pub.destinationName, prefix, strlen(prefix)) != 0)
        return;
    if (rc == MQTTREASONCODE_NO_MATCHING_SUBSCRIBERS) {
        uint64_t now = ec_mono_us();
        atomic_store_explicit(&m->unheard_us, now ? now : 1, memory_order_relaxed);
    } else if (rc == MQTTREASONCODE_SUCCESS) {
        atomic_store_explicit(&m->unheard_us, 0, memory_order_relaxed);
    }
}

static void on_pub_success(void *ctx, MQTTAsync_successData5 *resp)
{
    note_listeners(ctx, resp);
    release_slot(ctx);
}

ec_err ec_mqtt_watch_listeners(ec_mqtt *m, const char *prefix, ec_error *err)
{
    char *copy = strdup(prefix);
    if (!copy)
        return ec_error_set(err, EC_ERR_NOMEM, "mqtt: out of memory");
    /* Set once: the receive thread may be reading the prefix, so it is never
     * freed before ec_mqtt_destroy. */
    char *none = NULL;
    if (!atomic_compare_exchange_strong(&m->listen_prefix, &none, copy)) {
        free(copy);
        return ec_error_set(err, EC_ERR_INVAL, "mqtt: already watching listeners under %s", none);
    }
    return EC_OK;
}

bool ec_mqtt_unheard(ec_mqtt *m, unsigned window_ms)
{
    uint64_t at = atomic_load_explicit(&m->unheard_us, memory_order_relaxed);
    return at && ec_mono_us() - at < (uint64_t)window_ms * 1000u;
}

static void on_pub_failure(void *ctx, MQTTAsync_failureData5 *resp)
{
    /* A broker that refuses a QoS 1 publish (MQTT v5: its ACL) answers with
     * a reason code and Paho's code says success: the reason is the news. */
    if (resp && resp->reasonCode >= 0x80)
        ec_log_error("mqtt: publish refused by the broker: %s (reason code %d)",
                     MQTTReasonCode_toString(resp->reasonCode), (int)resp->reasonCode);
    else
        ec_log_error("mqtt: publish failed: %s", resp && resp->message
                                                     ? resp->message
                                                     : MQTTAsync_strerror(resp ? resp->code : -1));
    release_slot(ctx);
}

static ec_err send_message(ec_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                           bool retain, const ec_mqtt_pubprops *pp, bool slot, ec_error *err);

ec_err ec_mqtt_publish_nowait(ec_mqtt *m, const char *topic, const void *payload, size_t len,
                              int qos, const ec_mqtt_pubprops *pp, ec_error *err)
{
    if (qos > 0) {
        /* Twice our cap: a caller that saw ec_mqtt_can_publish_now() true
         * gets its few answers out even if workers took the last slots; but
         * never past the broker's Receive Maximum (limit_locked says why). */
        pthread_mutex_lock(&m->lock);
        int inflight = m->inflight;
        int cap = 2 * m->max_inflight < m->broker_rx_max ? 2 * m->max_inflight : m->broker_rx_max;
        bool room = inflight < cap;
        if (room)
            m->inflight++;
        pthread_mutex_unlock(&m->lock);
        if (!room)
            return ec_error_set(err, EC_ERR_BUSY,
                                "mqtt: %d publishes unacknowledged; broker not keeping up",
                                inflight);
    }
    return send_message(m, topic, payload, len, qos, false, pp, qos > 0, err);
}

bool ec_mqtt_can_publish_now(ec_mqtt *m)
{
    pthread_mutex_lock(&m->lock);
    bool room = m->inflight < limit_locked(m);
    pthread_mutex_unlock(&m->lock);
    return room;
}

ec_err ec_mqtt_publish(ec_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const ec_mqtt_pubprops *pp, int timeout_ms, ec_error *err)
{
    if (qos > 0) {
        struct timespec deadline;
        ec_deadline_in(&deadline, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
        pthread_mutex_lock(&m->lock);
        while (m->inflight >= limit_locked(m) && !m->stopping) {
            if (timeout_ms <= 0 ||
                pthread_cond_timedwait(&m->cond, &m->lock, &deadline) == ETIMEDOUT) {
                pthread_mutex_unlock(&m->lock);
                return ec_error_set(err, EC_ERR_BUSY,
                                    "mqtt: %d publishes unacknowledged; broker not keeping up",
                                    limit_locked(m));
            }
        }
        m->inflight++;
        pthread_mutex_unlock(&m->lock);
    }
    return send_message(m, topic, payload, len, qos, retain, pp, qos > 0, err);
}

static ec_err send_message(ec_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                           bool retain, const ec_mqtt_pubprops *pp, bool slot, ec_error *err)
{
    MQTTAsync_message msg = MQTTAsync_message_initializer;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty p;
    msg.payload = (void *)payload;
    msg.payloadlen = (int)len;
    msg.qos = qos;
    msg.retained = retain ? 1 : 0;
    if (pp) {
        if (pp->response_topic) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_RESPONSE_TOPIC;
            p.value.data.data = (char *)pp->response_topic;
            p.value.data.len = (int)strlen(pp->response_topic);
            MQTTProperties_add(&props, &p);
        }
        if (pp->corr && pp->corr_len) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_CORRELATION_DATA;
            p.value.data.data = (char *)pp->corr;
            p.value.data.len = (int)pp->corr_len;
            MQTTProperties_add(&props, &p);
        }
        if (pp->content_type) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_CONTENT_TYPE;
            p.value.data.data = (char *)pp->content_type;
            p.value.data.len = (int)strlen(pp->content_type);
            MQTTProperties_add(&props, &p);
        }
        if (pp->utf8) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR;
            p.value.byte = 1;
            MQTTProperties_add(&props, &p);
        }
        for (size_t i = 0; i < pp->n_user_props; i++) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_USER_PROPERTY;
            p.value.data.data = pp->user_props[i].name;
            p.value.data.len = (int)strlen(pp->user_props[i].name);
            p.value.value.data = pp->user_props[i].value;
            p.value.value.len = (int)strlen(pp->user_props[i].value);
            MQTTProperties_add(&props, &p);
        }
        if (pp->expiry_s) {
            memset(&p, 0, sizeof(p));
            p.identifier = MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL;
            p.value.integer4 = pp->expiry_s;
            MQTTProperties_add(&props, &p);
        }
    }
    msg.properties = props;
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    if (slot) {
        ro.onSuccess5 = on_pub_success;
        ro.onFailure5 = on_pub_failure;
        ro.context = m;
    }
    int prc = MQTTAsync_sendMessage(m->client, topic, &msg, &ro);
    MQTTProperties_free(&props);
    if (prc != MQTTASYNC_SUCCESS) {
        if (slot)
            release_slot(m);
        return ec_error_set(err, EC_ERR_MQTT, "mqtt: publish to %s: %s", topic,
                            MQTTAsync_strerror(prc));
    }
    return EC_OK;
}

ec_err ec_mqtt_flush(ec_mqtt *m, int timeout_ms)
{
    struct timespec deadline;
    ec_deadline_in(&deadline, timeout_ms > 0 ? (unsigned)timeout_ms : 0);
    ec_err rc = EC_OK;
    pthread_mutex_lock(&m->lock);
    while (m->inflight > 0) {
        if (pthread_cond_timedwait(&m->cond, &m->lock, &deadline) == ETIMEDOUT) {
            rc = EC_ERR_TIMEOUT;
            break;
        }
    }
    pthread_mutex_unlock(&m->lock);
    return rc;
}
