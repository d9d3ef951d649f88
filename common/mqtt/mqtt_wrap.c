/* Link-time wraps around Paho C 1.3.12, which has no hook for any of this.
 *
 * 1. TCP_NODELAY on Paho's client sockets.
 *
 * Paho C 1.3.12 has no socket-option hook, and without TCP_NODELAY every QoS 1
 * hop waits on a delayed ACK (a four-hop pipeline measured 170-220 ms per query
 * instead of 0.3 ms). Paho is linked statically with -Wl,--wrap=connect, so the
 * library's own connect() calls, and only those, arrive here first. Paho calls
 * connect() for every (re)connection, so the option holds after a reconnect.
 *
 * 2. Paho's receive thread, while it has no socket yet (before the first
 * connection and between reconnects), sleeps 100 ms at a time with
 * usleep(); a CONNACK that arrives meanwhile waits for the end of the nap,
 * which made a service's start-up 11 ms or 111 ms by chance. Linked with
 * -Wl,--wrap=usleep, that thread's naps (and only that thread's: the
 * shutdown loops that count 100 ms naps keep theirs) are cut to 5 ms. It
 * wakes 200 times a second while disconnected, which costs nothing
 * measurable, and never while connected (it then waits in poll()).
 *
 * 3. TCP_QUICKACK after each read on those sockets. A broker left at
 * Mosquitto's defaults (set_tcp_nodelay false) holds a small packet while an
 * earlier one is unacknowledged (Nagle), and our kernel delays its ACK by up
 * to 40 ms: a request/reply hop at a time took 25-40 ms during a burst, and
 * 1,000 queries through the 16-slot local window took 2.3 s instead of
 * 0.33 s. Linux clears QUICKACK on its own, so it is set again after each
 * packet's read (-Wl,--wrap=recv: Paho reads with recv()).
 *
 * 4. A TCP connect that is done at once. Paho's socket is non-blocking, so
 * connect() answers EINPROGRESS even on loopback; Paho then sends CONNECT
 * only when its receive thread's next poll cycle (10 ms) has seen the socket
 * writable: 10-15 ms of every start-up and reconnect spent waiting. The
 * wrapper waits up to CONNECT_WAIT_MS for the handshake and reports it done
 * (or failed, with the socket's error), which Paho handles as a connect that
 * completed inside the call: it sends CONNECT (or starts TLS) right away. A
 * broker farther away than that falls back to Paho's own path. The wait
 * holds Paho's client mutex, but only while connecting, when nothing can be
 * sent anyway. Only for plain MQTT over TCP: Paho's TLS and WebSocket steps
 * after a connect done inside the call do not complete (a TLS broker refused
 * every connection), so once a process has made a client for any other
 * scheme the wait is off for all its connections.
 *
 * 5. A PUBACK's reason code. MQTT v5 lets a broker accept a QoS 1 publish
 * with 0x10, "No matching subscribers" (Mosquitto does); Paho 1.3.12 reads
 * the code but hands it on only when it is a failure (0x80 and up), so
 * onSuccess5 cannot tell 0x10 from 0x00. Paho's receive thread passes each
 * PUBACK to MQTTProtocol_handlePubacks and then, in the same thread, calls
 * that publish's onSuccess5; linked with -Wl,--wrap, the wrapper leaves the
 * code in a thread-local for the callback (ec_mqtt_wrap_take_ack_rc). The
 * packet's layout is Paho's Ack (MQTTPacket.h, unchanged since 1.3.0); a
 * packet that does not look like an MQTT v5 PUBACK leaves the code unknown
 * (-1), and nothing is then skipped for want of a subscriber. */
#define _GNU_SOURCE /* pthread_getname_np */
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <pthread.h>
#include <string.h>
#include <unistd.h>
#include <netinet/tcp.h>
#include <stdatomic.h>
#include <sys/socket.h>

#include "edgecascade/mqtt.h"
#include "mqtt_internal.h"

int __real_connect(int fd, const struct sockaddr *addr, socklen_t len);
int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len);

#define CONNECT_WAIT_MS 10

static atomic_uint g_count;
static atomic_uint g_at_once;
static atomic_bool g_not_plain; /* a client for ssl://, ws://, ... exists */
static atomic_int g_last_fd = -1;

/* The sockets connect() above saw (Paho's), by descriptor: QUICKACK only on those. */
#define MARK_FDS 4096
static atomic_bool g_paho_fd[MARK_FDS];

int __wrap_connect(int fd, const struct sockaddr *addr, socklen_t len)
{
    if (addr && (addr->sa_family == AF_INET || addr->sa_family == AF_INET6)) {
        int one = 1;
        if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == 0) {
            atomic_fetch_add(&g_count, 1);
            atomic_store(&g_last_fd, fd);
        }
        if (fd >= 0 && fd < MARK_FDS)
            atomic_store_explicit(&g_paho_fd[fd], true, memory_order_relaxed);
    }
    int r = __real_connect(fd, addr, len);
    if (r == 0 || errno != EINPROGRESS || !addr || atomic_load(&g_not_plain) ||
        (addr->sa_family != AF_INET && addr->sa_family != AF_INET6))
        return r;
    struct pollfd p = {.fd = fd, .events = POLLOUT};
    int soerr = 0;
    socklen_t sl = sizeof(soerr);
    if (poll(&p, 1, CONNECT_WAIT_MS) != 1 ||
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0) {
        errno = EINPROGRESS; /* still under way (or poll was interrupted): Paho's path */
        return -1;
    }
    if (soerr != 0) {
        errno = soerr;
        return -1;
    }
    atomic_fetch_add(&g_at_once, 1);
    return 0;
}

void ec_mqtt_wrap_note_uri(const char *uri)
{
    if (strncmp(uri, "tcp://", 6) != 0 && strncmp(uri, "mqtt://", 7) != 0)
        atomic_store(&g_not_plain, true);
}

int __real_usleep(useconds_t usec);
int __wrap_usleep(useconds_t usec);

int __wrap_usleep(useconds_t usec)
{
    char name[16];
    if (usec > 5000 && pthread_getname_np(pthread_self(), name, sizeof(name)) == 0 &&
        strcmp(name, "MQTTAsync_rcv") == 0)
        usec = 5000;
    return __real_usleep(usec);
}

ssize_t __real_recv(int fd, void *buf, size_t n, int flags);
ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags);

ssize_t __wrap_recv(int fd, void *buf, size_t n, int flags)
{
    ssize_t r = __real_recv(fd, buf, n, flags);
    /* Paho reads a packet's fixed header a byte at a time, then the rest in
     * one read: once per packet is enough, after that last read. */
    if (r > 1 && fd >= 0 && fd < MARK_FDS &&
        atomic_load_explicit(&g_paho_fd[fd], memory_order_relaxed)) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
    }
    return r;
}

/* Paho's Header and Ack (MQTTPacket.h), little-endian bit order. */
typedef union paho_header {
    char byte;
    struct {
        bool retain : 1;
        unsigned int qos : 2;
        bool dup : 1;
        unsigned int type : 4;
    } bits;
} paho_header;

typedef struct paho_ack {
    paho_header header;
    int msgId;
    unsigned char rc;
    int MQTTVersion;
} paho_ack;

#define PAHO_PUBACK 4

static _Thread_local int t_ack_rc = -1;

int __real_MQTTProtocol_handlePubacks(void *pack, int sock, void **pub_to_remove);
int __wrap_MQTTProtocol_handlePubacks(void *pack, int sock, void **pub_to_remove);

int __wrap_MQTTProtocol_handlePubacks(void *pack, int sock, void **pub_to_remove)
{
    const paho_ack *a = pack;
    t_ack_rc = a && a->header.bits.type == PAHO_PUBACK && a->MQTTVersion == 5 && a->msgId > 0 &&
                       a->msgId <= 65535
                   ? a->rc
                   : -1;
    return __real_MQTTProtocol_handlePubacks(pack, sock, pub_to_remove);
}

int ec_mqtt_wrap_take_ack_rc(void)
{
    int rc = t_ack_rc;
    t_ack_rc = -1;
    return rc;
}

unsigned ec_mqtt_nodelay_count(void)
{
    return atomic_load(&g_count);
}

int ec_mqtt_nodelay_last_fd(void)
{
    return atomic_load(&g_last_fd);
}

unsigned ec_mqtt_connect_at_once_count(void)
{
    return atomic_load(&g_at_once);
}
