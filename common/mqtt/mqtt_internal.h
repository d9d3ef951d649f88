/* Private to common/mqtt: the client's state, shared by mqtt.c (connection,
 * subscriptions, intake) and mqtt_publish.c (the outbound side: in-flight
 * slots bounded by the broker's Receive Maximum, publishing). */
#ifndef EC_MQTT_INTERNAL_H
#define EC_MQTT_INTERNAL_H

#include <MQTTAsync.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/queue.h"

#define EC_MQTT_MAX_SUBS 16

typedef struct sub {
    char *filter;
    int qos;
} sub;

struct ec_mqtt {
    MQTTAsync client;
    ec_queue *inbound;
    char *client_id;
    char *uri;
    char *username;
    char *password;
    char *ca_file; /* TLS, set only for ssl:// and mqtts:// */
    char *cert_file;
    char *key_file;
    bool tls;
    char *status_topic;
    char *status_online;
    char *status_offline;
    int keepalive_s;
    bool clean_start;
    uint32_t session_expiry_s;

    pthread_mutex_t lock;
    pthread_cond_t cond; /* signalled on connect, suback and publish completion */
    bool connected;
    bool connect_failed;
    int connect_rc;
    int generation; /* bumps on every successful connection */
    int subs_acked; /* subscriptions acknowledged in this generation */
    sub subs[EC_MQTT_MAX_SUBS];
    int n_subs;
    int inflight;
    int max_inflight;  /* ours (mqtt.max_inflight) */
    int broker_rx_max; /* the broker's Receive Maximum (CONNACK), 65535 when it sets none */
    bool stopping;

    ec_mqtt_overflow_fn on_overflow;
    ec_mqtt_arrival_fn on_arrival;
    void *overflow_ctx;
    atomic_uint_fast64_t overflows;

    /* Why connections ended (on_disconnected, on_connection_lost). */
    ec_mqtt_drops drops;
    uint64_t connected_us;   /* when the current or last connection was made */
    uint64_t flap_window_us; /* start of the minute whose short lives are counted */
    int flaps;
    uint64_t flap_told_us; /* when the pattern was last logged */
    bool close_logged;     /* on_disconnected said why; on_connection_lost need not */

    /* ec_mqtt_watch_listeners: publishes under this prefix tell, by their
     * PUBACK, whether anyone subscribes; unheard_us is when the broker last
     * said nobody does (monotonic µs, 0: it said someone does, or never). */
    _Atomic(char *) listen_prefix;
    atomic_uint_fast64_t unheard_us;
};

/* mqtt_publish.c */
/* The CONNACK's Receive Maximum (connect options' onSuccess5). */
void ec_mqtt_on_connect_success(void *ctx, MQTTAsync_successData5 *resp);

/* mqtt_wrap.c: a client for a scheme other than plain TCP turns off the
 * connect() wrapper's wait for the handshake, for the whole process. */
void ec_mqtt_wrap_note_uri(const char *uri);
/* mqtt_wrap.c: the reason code of the PUBACK Paho's receive thread is
 * handling (an onSuccess5 of a publish asks), -1 when unknown; reading it
 * clears it. */
int ec_mqtt_wrap_take_ack_rc(void);

#endif
