/* lg_wire: the load generator's own MQTT v5 client, on a plain TCP socket.
 *
 * Why not Paho, as everything else here: the generator shares the machine's
 * two cores with the pipeline it measures, and a plant's PLCs do not. Through
 * Paho (ec_mqtt) it took 150-170 us of CPU per query, a seventh of the whole
 * machine's per answered query and nearly a third per refused one, so it
 * was partly measuring itself. This client does only what the phase engine
 * needs: one connection, one QoS 1 subscription, QoS 1 publishes with a
 * Response Topic and Correlation Data written straight from the caller's
 * thread, PUBACKs to the broker batched per read. It honours the broker's
 * Receive Maximum (a stock Mosquitto allows 20 unacknowledged publishes).
 *
 * Threads: one thread publishes, one other reads (lgw_next); lgw_open and
 * lgw_subscribe come before either. Nothing else is thread-safe. */
#ifndef BENCH_LG_WIRE_H
#define BENCH_LG_WIRE_H

#include <stddef.h>
#include <stdint.h>

typedef struct lgw lgw;

/* An application message; its pointers stay valid until the next lgw_next. */
typedef struct lgw_msg {
    const char *topic; /* not NUL-terminated */
    size_t topic_len;
    const unsigned char *payload;
    size_t len;
    const unsigned char *corr; /* Correlation Data, or NULL */
    size_t corr_len;
    uint64_t received_us; /* ec_mono_us() when the read that completed it returned */
} lgw_msg;

/* Connects to tcp://host:port (or mqtt://) with a clean start and the given
 * session expiry; 0, or -1 with a message in err. */
int lgw_open(lgw **out, const char *uri, const char *client_id, uint32_t session_expiry_s,
             char *err, size_t errlen);
/* Subscribes to filter at QoS 1 and waits for the SUBACK. */
int lgw_subscribe(lgw *c, const char *filter, int timeout_ms, char *err, size_t errlen);
/* Publishes at QoS 1; waits (up to timeout_ms) while the broker's Receive
 * Maximum of publishes is unacknowledged. 0, or -1 with a message. */
int lgw_publish(lgw *c, const char *topic, const void *payload, size_t len,
                const char *response_topic, const void *corr, size_t corr_len, int timeout_ms,
                char *err, size_t errlen);
/* The next application message: 1 with *m filled, 0 when none came in
 * timeout_ms (looked at every 100 ms), -1 when the
 * connection is gone (lgw_error says why). */
int lgw_next(lgw *c, lgw_msg *m, int timeout_ms);
const char *lgw_error(const lgw *c);
/* Publishes the broker has not acknowledged yet. */
unsigned lgw_inflight(lgw *c);
/* Sends DISCONNECT, closes and frees. */
void lgw_close(lgw *c);

#endif
