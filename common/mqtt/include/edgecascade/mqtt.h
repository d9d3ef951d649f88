/* MQTT v5 client for the services and the CLI, over Paho MQTTAsync.
 *
 * Threads: Paho's callbacks only copy the message into a bounded inbound queue
 * and return; the owner pops with ec_mqtt_next() on its own worker threads.
 * When the queue is full the owner's on_overflow hook decides, on Paho's
 * thread and without blocking, what to do with the message (the router answers
 * "busy"); without a hook, or when the hook declines, the message is queued past
 * the nominal capacity, marked overflowed (for traffic bounded elsewhere, such
 * as replies to our own requests, or for the owner's workers to refuse). Paho's own "return 0 and
 * redeliver later" is not used: in Paho C 1.3.12 the message then waits for the next incoming
 * packet. Publishing blocks the caller (up to a timeout) once max_inflight QoS>0 publishes, or the
 * broker's Receive Maximum if lower, are unacknowledged, so a burst pushes back on its producer
 * instead of piling up inside Paho (which collapses throughput on this stack). Subscriptions are
 * remembered and renewed after every reconnect. Every client socket gets TCP_NODELAY (see
 * mqtt_wrap.c). */
#ifndef EC_MQTT_H
#define EC_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "edgecascade/err.h"

typedef struct ec_mqtt ec_mqtt;

/* One MQTT v5 User Property (a name may repeat; order is kept). */
typedef struct ec_mqtt_userprop {
    char *name;
    char *value;
} ec_mqtt_userprop;

typedef struct ec_mqtt_msg {
    char *topic;
    void *payload;
    size_t len;
    int qos;
    bool retained;
    bool dup;             /* a redelivery: the broker may have given it to us before */
    bool overflowed;      /* it found the queue full and on_overflow declined it */
    char *response_topic; /* MQTT v5 Response Topic, or NULL */
    void *corr;           /* MQTT v5 Correlation Data, or NULL */
    size_t corr_len;
    char *content_type;           /* MQTT v5 Content Type, or NULL */
    int format;                   /* Payload Format Indicator: 0 bytes, 1 UTF-8, -1 absent */
    ec_mqtt_userprop *user_props; /* MQTT v5 User Properties, in order, or NULL */
    size_t n_user_props;
    uint32_t expiry_s;    /* Message Expiry Interval, 0 if none */
    uint64_t received_us; /* ec_mono_us() when the callback saw it */
    int64_t tag;          /* the owner's (set by on_arrival; the router's journal id) */
    uint64_t tag_ms;      /* the owner's (the router's journal arrival time, epoch ms) */
    int64_t tag_of;       /* the owner's (the router's journal: the query a reply belongs to) */
} ec_mqtt_msg;

void ec_mqtt_msg_free(ec_mqtt_msg *m);

/* Called on Paho's thread for every message before it is queued and before
 * Paho acknowledges it to the broker: the place to make it durable. */
typedef void (*ec_mqtt_arrival_fn)(void *ctx, ec_mqtt_msg *msg);

/* Called on Paho's thread when the inbound queue is full. Must not block.
 * Return true after taking ownership of msg (free it with ec_mqtt_msg_free). */
typedef bool (*ec_mqtt_overflow_fn)(void *ctx, ec_mqtt_msg *msg);

typedef struct ec_mqtt_opts {
    const char *uri;           /* tcp://host:port, ssl://..., mqtt://... */
    const char *client_id;     /* required, unique per process */
    const char *username;      /* optional */
    const char *password;      /* optional, never logged */
    int keepalive_s;           /* default 30 */
    size_t queue_cap;          /* inbound queue capacity, default 4096 */
    int max_inflight;          /* outstanding QoS>0 publishes, default 256 */
    bool clean_start;          /* default false: the broker keeps our session */
    uint32_t session_expiry_s; /* 0: the session ends with the connection */
    /* Retained status message: "online" published on connect, "offline" as Last Will
     * and on clean shutdown. NULL disables. Payload is JSON built by the caller. */
    const char *status_topic;
    const char *status_online;
    const char *status_offline;
    ec_mqtt_overflow_fn on_overflow; /* optional */
    void *overflow_ctx;
    ec_mqtt_arrival_fn on_arrival; /* optional, same ctx as overflow */
    /* TLS, used when uri is ssl:// or mqtts://; NULL or "" for none. The broker's
     * certificate is always verified (ca_file, else the system's CAs). */
    const char *ca_file;
    const char *cert_file; /* client certificate (PEM) */
    const char *key_file;  /* its private key (PEM) */
} ec_mqtt_opts;

typedef struct ec_mqtt_pubprops {
    const char *response_topic;
    const void *corr;
    size_t corr_len;
    const char *content_type;
    bool utf8; /* Payload Format Indicator 1: the payload is UTF-8 text (JSON) */
    const ec_mqtt_userprop *user_props;
    size_t n_user_props;
    uint32_t expiry_s;
} ec_mqtt_pubprops;

/* Frees n user properties and the array. */
void ec_mqtt_userprops_free(ec_mqtt_userprop *p, size_t n);

ec_err ec_mqtt_create(ec_mqtt **out, const ec_mqtt_opts *opts, ec_error *err);
/* ssl://, mqtts:// or wss://: a URI Paho connects to over TLS. */
bool ec_mqtt_uri_is_tls(const char *uri);
/* Adds a subscription (renewed on every reconnect). Call before or after connect. */
ec_err ec_mqtt_subscribe(ec_mqtt *m, const char *filter, int qos, ec_error *err);
/* Connects (automatic reconnect on), waits up to timeout_ms for CONNACK and for
 * all subscriptions to be acknowledged, then publishes the online status. */
ec_err ec_mqtt_connect(ec_mqtt *m, int timeout_ms, ec_error *err);
bool ec_mqtt_connected(ec_mqtt *m);

/* Replaces the retained online status (kept for every reconnect) and, when
 * connected, publishes it now. */
ec_err ec_mqtt_set_status(ec_mqtt *m, const char *online, ec_error *err);

/* Publishes; blocks up to timeout_ms while max_inflight publishes are
 * outstanding (EC_ERR_BUSY after that). props may be NULL. */
ec_err ec_mqtt_publish(ec_mqtt *m, const char *topic, const void *payload, size_t len, int qos,
                       bool retain, const ec_mqtt_pubprops *props, int timeout_ms, ec_error *err);

/* How many QoS>0 publishes may be unacknowledged at once: max_inflight, or
 * the broker's Receive Maximum from its CONNACK when that is lower (a stock
 * Mosquitto says 20). */
int ec_mqtt_inflight_limit(ec_mqtt *m);

/* Whether fewer than that many publishes are unacknowledged. */
bool ec_mqtt_can_publish_now(ec_mqtt *m);

/* Pops the next inbound message; EC_ERR_TIMEOUT, or EC_ERR_UNAVAILABLE after
 * ec_mqtt_stop(). The caller owns *out and frees it with ec_mqtt_msg_free. */
ec_err ec_mqtt_next(ec_mqtt *m, ec_mqtt_msg **out, int timeout_ms);

/* Publishes without waiting, for small answers sent from inside an overflow
 * hook (Paho's thread must never block). It takes an in-flight slot like any
 * publish, may go up to twice max_inflight, and fails with EC_ERR_BUSY
 * beyond: unbounded, such answers pile up inside Paho, which then slows down
 * for every message (it searches its unacknowledged publishes linearly).
 * Check ec_mqtt_can_publish_now() first. */
ec_err ec_mqtt_publish_nowait(ec_mqtt *m, const char *topic, const void *payload, size_t len,
                              int qos, const ec_mqtt_pubprops *props, ec_error *err);

size_t ec_mqtt_queue_len(ec_mqtt *m);
/* Inbound messages that found the queue full (handed to on_overflow, or queued
 * past the capacity). None is ever dropped. */
uint64_t ec_mqtt_overflows(ec_mqtt *m);
/* Why connections ended. Each is logged; a broker's DISCONNECT with its
 * reason (0x8E: another client took this client id), and, when the broker
 * gives none, connections closed again and again soon after they were made,
 * which is what two clients sharing an id look like on Mosquitto 2.0.11. */
typedef struct ec_mqtt_drops {
    uint64_t broker_closes; /* DISCONNECTs the broker sent (MQTT v5) */
    int last_reason;        /* the last one's reason code */
    uint64_t short_lived;   /* connections lost within 10 s of being made */
} ec_mqtt_drops;
void ec_mqtt_drops_get(ec_mqtt *m, ec_mqtt_drops *out);

/* Waits until every outstanding publish is acknowledged (or timeout). */
ec_err ec_mqtt_flush(ec_mqtt *m, int timeout_ms);
/* Whether anyone listens under a prefix. An MQTT v5 broker may accept a
 * QoS 1 publish with reason 0x10, "No matching subscribers" (Mosquitto
 * does; a bridge and a disconnected persistent session are subscribers).
 * After ec_mqtt_watch_listeners, the client remembers for QoS 1 publishes
 * whose topic starts with prefix when the broker last said so; an answer
 * that someone listens forgets it. ec_mqtt_unheard is true while that
 * "nobody" is less than window_ms old, so a caller may skip optional
 * publishes there and still try one per window. One prefix per client,
 * set once (EC_ERR_INVAL the second time). */
ec_err ec_mqtt_watch_listeners(ec_mqtt *m, const char *prefix, ec_error *err);
bool ec_mqtt_unheard(ec_mqtt *m, unsigned window_ms);

/* Publishes the offline status, disconnects and wakes ec_mqtt_next waiters. */
void ec_mqtt_stop(ec_mqtt *m);
void ec_mqtt_destroy(ec_mqtt *m);

/* Sockets given TCP_NODELAY by the connect() wrapper so far, and the last fd:
 * lets a test prove the option holds after a reconnect. */
unsigned ec_mqtt_nodelay_count(void);
int ec_mqtt_nodelay_last_fd(void);
/* Connections the connect() wrapper saw complete within its short wait (so
 * Paho sent CONNECT at once instead of on its next poll cycle). */
unsigned ec_mqtt_connect_at_once_count(void);
/* True once an allocation of Paho's came through mqtt_lean.c instead of
 * Paho's heap tracking (false when built with EC_PAHO_TRACKING=ON). */
bool ec_mqtt_paho_lean(void);
/* Blocks Paho freed a second time, ignored (mqtt_lean.c); 0 in a build
 * with -DEC_PAHO_TRACKING=ON, where Paho's own tracking ignores them. */
unsigned long ec_mqtt_paho_double_frees(void);

#endif
