/* The load generator's MQTT v5 client (lg_wire.h says why it is not Paho).
 * Packet layouts follow the MQTT 5.0 OASIS standard, section 3; properties
 * section 2.2.2.2. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "lg_wire.h"

enum {
    P_CONNECT = 0x10,
    P_CONNACK = 0x20,
    P_PUBLISH = 0x30,
    P_PUBACK = 0x40,
    P_SUBSCRIBE = 0x82,
    P_SUBACK = 0x90,
    P_PINGREQ = 0xC0,
    P_PINGRESP = 0xD0,
    P_DISCONNECT = 0xE0,
};

#define KEEPALIVE_S  60
#define MAX_PACKET   (16u << 20)
#define ACK_BUF      4096 /* 1,024 PUBACKs, then they go out at once */
#define RECV_WAIT_MS 100
#define READ_CHUNK   (64u << 10)
#define ID_WORDS     (65536 / 64)

struct lgw {
    int fd;
    pthread_mutex_t wlock; /* one writer on the socket at a time */

    pthread_mutex_t lock; /* packet ids in flight */
    pthread_cond_t acked;
    unsigned inflight;
    unsigned recv_max; /* the broker's Receive Maximum */
    uint16_t next_id;
    uint64_t used[ID_WORDS];

    /* the publishing thread's */
    unsigned char *wbuf;
    size_t wcap;

    /* the reading thread's */
    unsigned char *rbuf;
    size_t rcap, rstart, rend;
    uint64_t read_us;
    unsigned char acks[ACK_BUF];
    size_t nacks;
    uint64_t last_ping_us;
    unsigned keepalive_s;
    int suback_rc;    /* -1 until a SUBACK came */
    atomic_bool dead; /* set by the reading thread, seen by the publishing one */
    char err[256];
};

static void fail(lgw *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
    atomic_store(&c->dead, true);
}

static size_t put_varint(unsigned char *p, size_t v)
{
    size_t n = 0;
    do {
        unsigned char b = v % 128;
        v /= 128;
        p[n++] = b | (v ? 0x80 : 0);
    } while (v);
    return n;
}

static size_t put_u16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
    return 2;
}

static size_t put_u32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (24 - 8 * i));
    return 4;
}

static size_t put_bin(unsigned char *p, const void *s, size_t n)
{
    put_u16(p, (unsigned)n);
    memcpy(p + 2, s, n);
    return 2 + n;
}

/* Bytes of a variable byte integer at p (at most 4), or 0 when more are
 * needed (*need set) or it is malformed (*need clear). */
static size_t get_varint(const unsigned char *p, size_t avail, size_t *v, bool *need)
{
    size_t val = 0, mul = 1;
    for (size_t i = 0; i < 4; i++) {
        if (i >= avail) {
            *need = true;
            return 0;
        }
        val += (size_t)(p[i] & 0x7F) * mul;
        if (!(p[i] & 0x80)) {
            *v = val;
            return i + 1;
        }
        mul *= 128;
    }
    *need = false;
    return 0;
}

static int send_all(lgw *c, const unsigned char *p, size_t n)
{
    pthread_mutex_lock(&c->wlock);
    while (n) {
        ssize_t w = send(c->fd, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            pthread_mutex_unlock(&c->wlock);
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    pthread_mutex_unlock(&c->wlock);
    return 0;
}

static int flush_acks(lgw *c)
{
    if (!c->nacks)
        return 0;
    int rc = send_all(c, c->acks, c->nacks);
    c->nacks = 0;
    if (rc)
        fail(c, "sending PUBACKs: %s", strerror(errno));
    return rc;
}

/* Properties this client reads; the rest are skipped by type. */
typedef struct props {
    const unsigned char *corr;
    size_t corr_len;
    long recv_max;
    long server_keepalive;
} props;

/* Each property's type (section 2.2.2.2), by identifier. */
enum { T_NONE, T_BYTE, T_U16, T_U32, T_VARINT, T_BIN, T_PAIR };
static const unsigned char prop_type[0x2B] = {
    [0x01] = T_BYTE,   [0x02] = T_U32,  [0x03] = T_BIN,  [0x08] = T_BIN,  [0x09] = T_BIN,
    [0x0B] = T_VARINT, [0x11] = T_U32,  [0x12] = T_BIN,  [0x13] = T_U16,  [0x15] = T_BIN,
    [0x16] = T_BIN,    [0x17] = T_BYTE, [0x18] = T_U32,  [0x19] = T_BYTE, [0x1A] = T_BIN,
    [0x1C] = T_BIN,    [0x1F] = T_BIN,  [0x21] = T_U16,  [0x22] = T_U16,  [0x23] = T_U16,
    [0x24] = T_BYTE,   [0x25] = T_BYTE, [0x26] = T_PAIR, [0x27] = T_U32,  [0x28] = T_BYTE,
    [0x29] = T_BYTE,   [0x2A] = T_BYTE,
};

static size_t bin_len(const unsigned char *p, size_t avail)
{
    return avail < 2 ? SIZE_MAX : 2 + (size_t)(p[0] << 8 | p[1]);
}

static int parse_props(const unsigned char *p, size_t n, props *out)
{
    size_t i = 0;
    while (i < n) {
        unsigned char id = p[i++];
        size_t len = SIZE_MAX, v;
        bool need;
        switch (id < sizeof(prop_type) ? prop_type[id] : T_NONE) {
        case T_BYTE:
            len = 1;
            break;
        case T_U16:
            len = 2;
            break;
        case T_U32:
            len = 4;
            break;
        case T_VARINT:
            len = get_varint(p + i, n - i, &v, &need);
            break;
        case T_BIN:
            len = bin_len(p + i, n - i);
            break;
        case T_PAIR:
            len = bin_len(p + i, n - i);
            if (len != SIZE_MAX && i + len <= n) {
                size_t second = bin_len(p + i + len, n - i - len);
                len = second == SIZE_MAX ? SIZE_MAX : len + second;
            }
            break;
        default:
            return -1;
        }
        if (len == 0 || len == SIZE_MAX || i + len > n)
            return -1;
        if (id == 0x21)
            out->recv_max = p[i] << 8 | p[i + 1];
        else if (id == 0x13)
            out->server_keepalive = p[i] << 8 | p[i + 1];
        else if (id == 0x09) {
            out->corr = p + i + 2;
            out->corr_len = len - 2;
        }
        i += len;
    }
    return 0;
}

static int grow(lgw *c, size_t cap)
{
    unsigned char *nb = realloc(c->rbuf, cap);
    if (!nb) {
        fail(c, "out of memory for a %zu-byte read buffer", cap);
        return -1;
    }
    c->rbuf = nb;
    c->rcap = cap;
    return 0;
}

/* Reads what the socket has, waiting at most RECV_WAIT_MS (a blocking recv
 * with SO_RCVTIMEO: one system call a wake-up where poll and recv were two):
 * 1 read, 0 nothing came, -1 closed. PUBACKs owed go out first, so the
 * broker's window to us never waits on our own wait. */
static int fill(lgw *c)
{
    if (flush_acks(c))
        return -1;
    if (c->rstart == c->rend)
        c->rstart = c->rend = 0;
    if (c->rcap - c->rend < READ_CHUNK / 4 && c->rstart) {
        memmove(c->rbuf, c->rbuf + c->rstart, c->rend - c->rstart);
        c->rend -= c->rstart;
        c->rstart = 0;
    }
    if (c->rcap - c->rend < READ_CHUNK / 4 && grow(c, c->rcap * 2))
        return -1;
    ssize_t r = recv(c->fd, c->rbuf + c->rend, c->rcap - c->rend, 0);
    if (r < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return 0; /* SO_RCVTIMEO: nothing for a while */
    if (r <= 0) {
        fail(c, "%s", r == 0 ? "the broker closed the connection" : strerror(errno));
        return -1;
    }
    c->rend += (size_t)r;
    c->read_us = ec_mono_us();
    return 1;
}

/* The next whole packet in the read buffer: 1 (and it is consumed), 0 when
 * more bytes are needed, -1 malformed. */
static int take_packet(lgw *c, unsigned char *type, const unsigned char **body, size_t *len)
{
    size_t avail = c->rend - c->rstart;
    if (avail < 2)
        return 0;
    const unsigned char *p = c->rbuf + c->rstart;
    size_t rl = 0;
    bool need = false;
    size_t vb = get_varint(p + 1, avail - 1, &rl, &need);
    if (!vb) {
        if (need)
            return 0;
        fail(c, "malformed remaining length from the broker");
        return -1;
    }
    if (rl > MAX_PACKET) {
        fail(c, "a %zu-byte packet from the broker (at most %u)", rl, MAX_PACKET);
        return -1;
    }
    if (avail < 1 + vb + rl) {
        /* room for the whole packet; fill moves it to the front once the end is near */
        if (c->rcap < 1 + vb + rl + READ_CHUNK && grow(c, 1 + vb + rl + READ_CHUNK))
            return -1;
        return 0;
    }
    *type = p[0];
    *body = p + 1 + vb;
    *len = rl;
    c->rstart += 1 + vb + rl;
    return 1;
}

static void release_id(lgw *c, unsigned id)
{
    pthread_mutex_lock(&c->lock);
    if (c->used[id / 64] & (1ull << (id % 64))) {
        c->used[id / 64] &= ~(1ull << (id % 64));
        c->inflight--;
        pthread_cond_signal(&c->acked);
    }
    pthread_mutex_unlock(&c->lock);
}

/* Handles one packet; 1 when it was an application message (m filled). */
static int handle(lgw *c, unsigned char type, const unsigned char *b, size_t n, lgw_msg *m)
{
    switch (type & 0xF0) {
    case P_PUBLISH: {
        int qos = (type >> 1) & 3;
        if (qos == 3 || n < 2)
            goto malformed;
        size_t tl = (size_t)(b[0] << 8 | b[1]), i = 2 + tl;
        unsigned id = 0;
        if (i + (qos ? 2 : 0) > n)
            goto malformed;
        if (qos) {
            id = (unsigned)(b[i] << 8 | b[i + 1]);
            i += 2;
        }
        size_t pl = 0;
        bool need = false;
        size_t vb = get_varint(b + i, n - i, &pl, &need);
        props pr = {0};
        if (!vb || i + vb + pl > n || parse_props(b + i + vb, pl, &pr))
            goto malformed;
        i += vb + pl;
        if (qos == 2) {
            fail(c, "a QoS 2 publish from the broker (this client subscribes at QoS 1)");
            return -1;
        }
        if (qos == 1) {
            if (c->nacks + 4 > sizeof(c->acks) && flush_acks(c))
                return -1;
            unsigned char *a = c->acks + c->nacks;
            a[0] = P_PUBACK;
            a[1] = 2;
            put_u16(a + 2, id);
            c->nacks += 4;
        }
        *m = (lgw_msg){.topic = (const char *)b + 2,
                       .topic_len = tl,
                       .payload = b + i,
                       .len = n - i,
                       .corr = pr.corr,
                       .corr_len = pr.corr_len,
                       .received_us = c->read_us};
        return 1;
    }
    case P_PUBACK:
        if (n < 2)
            goto malformed;
        /* A reason code of 0x80 or above is a refusal; the phase engine
         * counts the query unanswered either way, so it is not told. */
        release_id(c, (unsigned)(b[0] << 8 | b[1]));
        return 0;
    case P_SUBACK: {
        size_t pl = 0;
        bool need = false;
        size_t vb = n >= 2 ? get_varint(b + 2, n - 2, &pl, &need) : 0;
        if (!vb || 2 + vb + pl >= n)
            goto malformed;
        c->suback_rc = b[2 + vb + pl];
        return 0;
    }
    case P_PINGRESP:
        return 0;
    case P_DISCONNECT:
        fail(c, "the broker sent DISCONNECT (reason 0x%02x)", n ? b[0] : 0);
        return -1;
    default:
        fail(c, "unexpected packet type 0x%02x from the broker", type);
        return -1;
    }
malformed:
    fail(c, "a malformed packet (type 0x%02x, %zu bytes) from the broker", type, n);
    return -1;
}

int lgw_next(lgw *c, lgw_msg *m, int timeout_ms)
{
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        if (c->dead)
            return -1;
        unsigned char type;
        const unsigned char *body;
        size_t len;
        int rc = take_packet(c, &type, &body, &len);
        if (rc < 0)
            return -1;
        if (rc > 0) {
            rc = handle(c, type, body, len, m);
            if (rc)
                return rc;
            continue;
        }
        uint64_t now = ec_mono_us();
        if (now - c->last_ping_us > (uint64_t)c->keepalive_s * 500000u) {
            static const unsigned char ping[2] = {P_PINGREQ, 0};
            if (send_all(c, ping, 2)) {
                fail(c, "sending PINGREQ: %s", strerror(errno));
                return -1;
            }
            c->last_ping_us = now;
        }
        if (now >= deadline)
            return 0;
        rc = fill(c);
        if (rc < 0)
            return -1;
    }
}

/* Reads until cond holds for the packet handled (before any reader thread
 * runs: CONNACK, SUBACK). */
static int await_packet(lgw *c, unsigned char want, int timeout_ms, const unsigned char **body,
                        size_t *len)
{
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    for (;;) {
        unsigned char type;
        int rc = take_packet(c, &type, body, len);
        if (rc < 0)
            return -1;
        if (rc > 0 && (type & 0xF0) == want)
            return 0;
        if (rc > 0) {
            lgw_msg m;
            if (handle(c, type, *body, *len, &m) < 0)
                return -1;
            continue;
        }
        uint64_t now = ec_mono_us();
        if (now >= deadline) {
            fail(c, "no answer (packet type 0x%02x) from the broker in %d ms", want, timeout_ms);
            return -1;
        }
        if (fill(c) < 0)
            return -1;
    }
}

static int dial(const char *uri, char *err, size_t errlen)
{
    const char *hp = strstr(uri, "://");
    if (hp && strncmp(uri, "tcp://", 6) != 0 && strncmp(uri, "mqtt://", 7) != 0) {
        snprintf(err, errlen, "%s: only tcp:// and mqtt:// brokers", uri);
        return -1;
    }
    hp = hp ? hp + 3 : uri;
    char host[256];
    const char *colon = strrchr(hp, ':');
    const char *port = colon ? colon + 1 : "1883";
    size_t hl = colon ? (size_t)(colon - hp) : strlen(hp);
    if (hl == 0 || hl >= sizeof(host)) {
        snprintf(err, errlen, "%s: no host", uri);
        return -1;
    }
    memcpy(host, hp, hl);
    host[hl] = 0;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    int gr = getaddrinfo(host, port, &hints, &res);
    if (gr) {
        snprintf(err, errlen, "%s: %s", uri, gai_strerror(gr));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0)
            continue;
        if (connect(fd, a->ai_addr, a->ai_addrlen) == 0)
            break;
        close(fd);
        fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) {
        snprintf(err, errlen, "%s: %s", uri, strerror(errno));
        return -1;
    }
    int one = 1;
    struct timeval wait = {.tv_sec = 0, .tv_usec = RECV_WAIT_MS * 1000};
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof(wait));
    return fd;
}

int lgw_open(lgw **out, const char *uri, const char *client_id, uint32_t session_expiry_s,
             char *err, size_t errlen)
{
    *out = NULL;
    size_t idl = strlen(client_id);
    if (idl > 256) {
        snprintf(err, errlen, "client id longer than 256 bytes");
        return -1;
    }
    lgw *c = calloc(1, sizeof(*c));
    if (!c || !(c->rbuf = malloc(READ_CHUNK))) {
        free(c);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    c->rcap = READ_CHUNK;
    c->fd = -1;
    c->suback_rc = -1;
    c->recv_max = 65535;
    c->keepalive_s = KEEPALIVE_S;
    c->next_id = 1;
    pthread_mutex_init(&c->wlock, NULL);
    pthread_mutex_init(&c->lock, NULL);
    ec_cond_init_mono(&c->acked);
    if ((c->fd = dial(uri, err, errlen)) < 0)
        goto fail;

    /* CONNECT: protocol name and level 5, clean start, keep alive; Session
     * Expiry Interval and our Receive Maximum (the broker may send us 65,535
     * unacknowledged publishes); the client id. */
    unsigned char pkt[512], var[300];
    size_t v = 0;
    v += put_bin(var + v, "MQTT", 4);
    var[v++] = 5;
    var[v++] = 0x02;
    v += put_u16(var + v, KEEPALIVE_S);
    var[v++] = 8;
    var[v++] = 0x11;
    v += put_u32(var + v, session_expiry_s);
    var[v++] = 0x21;
    v += put_u16(var + v, 65535);
    v += put_bin(var + v, client_id, idl);
    size_t n = 0;
    pkt[n++] = P_CONNECT;
    n += put_varint(pkt + n, v);
    memcpy(pkt + n, var, v);
    n += v;
    if (send_all(c, pkt, n)) {
        snprintf(err, errlen, "%s: sending CONNECT: %s", uri, strerror(errno));
        goto fail;
    }
    c->last_ping_us = ec_mono_us();
    const unsigned char *b;
    size_t bl;
    if (await_packet(c, P_CONNACK, 5000, &b, &bl))
        goto fail_msg;
    size_t pl = 0;
    bool need = false;
    size_t vb = bl >= 2 ? get_varint(b + 2, bl - 2, &pl, &need) : 0;
    props pr = {.recv_max = -1, .server_keepalive = -1};
    if (!vb || 2 + vb + pl > bl || parse_props(b + 2 + vb, pl, &pr)) {
        fail(c, "a malformed CONNACK from the broker");
        goto fail_msg;
    }
    if (b[1] != 0) {
        fail(c, "the broker refused the connection (CONNACK reason 0x%02x)", b[1]);
        goto fail_msg;
    }
    if (pr.recv_max > 0)
        c->recv_max = (unsigned)pr.recv_max;
    if (pr.server_keepalive > 0)
        c->keepalive_s = (unsigned)pr.server_keepalive;
    *out = c;
    return 0;
fail_msg:
    snprintf(err, errlen, "%s: %s", uri, c->err);
fail:
    lgw_close(c);
    return -1;
}

int lgw_subscribe(lgw *c, const char *filter, int timeout_ms, char *err, size_t errlen)
{
    size_t fl = strlen(filter);
    if (fl > 65535) {
        snprintf(err, errlen, "topic filter too long");
        return -1;
    }
    unsigned char *pkt = malloc(fl + 16);
    if (!pkt) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    size_t n = 0;
    pkt[n++] = P_SUBSCRIBE;
    n += put_varint(pkt + n, 2 + 1 + 2 + fl + 1);
    n += put_u16(pkt + n, 1); /* packet id; no publish is in flight yet */
    pkt[n++] = 0;             /* no properties */
    n += put_bin(pkt + n, filter, fl);
    pkt[n++] = 0x01; /* QoS 1 */
    int rc = send_all(c, pkt, n);
    free(pkt);
    c->suback_rc = -1;
    const unsigned char *b;
    size_t bl;
    if (rc || await_packet(c, P_SUBACK, timeout_ms, &b, &bl)) {
        snprintf(err, errlen, "subscribing to %s: %s", filter, rc ? strerror(errno) : c->err);
        return -1;
    }
    lgw_msg m;
    if (handle(c, P_SUBACK, b, bl, &m) < 0 || c->suback_rc != 1) {
        snprintf(err, errlen, "subscribing to %s: %s", filter,
                 c->dead ? c->err : "the broker did not grant QoS 1");
        return -1;
    }
    return 0;
}

/* A free packet id, waiting while the broker's window is full. */
static int take_id(lgw *c, int timeout_ms, unsigned *id)
{
    struct timespec until;
    ec_deadline_in(&until, (unsigned)timeout_ms);
    pthread_mutex_lock(&c->lock);
    while (c->inflight >= c->recv_max && !c->dead) {
        if (pthread_cond_timedwait(&c->acked, &c->lock, &until) == ETIMEDOUT) {
            pthread_mutex_unlock(&c->lock);
            return -1;
        }
    }
    unsigned i = c->next_id;
    while (c->used[i / 64] & (1ull << (i % 64)))
        i = i == 65535 ? 1 : i + 1;
    c->used[i / 64] |= 1ull << (i % 64);
    c->inflight++;
    c->next_id = (uint16_t)(i == 65535 ? 1 : i + 1);
    pthread_mutex_unlock(&c->lock);
    *id = i;
    return 0;
}

int lgw_publish(lgw *c, const char *topic, const void *payload, size_t len,
                const char *response_topic, const void *corr, size_t corr_len, int timeout_ms,
                char *err, size_t errlen)
{
    size_t tl = strlen(topic), rl = response_topic ? strlen(response_topic) : 0;
    if (tl > 65535 || rl > 65535 || corr_len > 65535) {
        snprintf(err, errlen, "topic, response topic or correlation data over 65,535 bytes");
        return -1;
    }
    size_t plen = (rl ? 3 + rl : 0) + (corr ? 3 + corr_len : 0);
    size_t vlen = 2 + tl + 2 + 4 + plen; /* the properties' length takes at most 4 */
    size_t need = 1 + 4 + vlen + len;
    if (need > c->wcap) {
        unsigned char *nb = realloc(c->wbuf, need);
        if (!nb) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->wbuf = nb;
        c->wcap = need;
    }
    if (atomic_load(&c->dead)) {
        snprintf(err, errlen, "not connected: %s", c->err);
        return -1;
    }
    unsigned id;
    if (take_id(c, timeout_ms, &id)) {
        snprintf(err, errlen, "%u publishes unacknowledged for %d ms (the broker allows %u)",
                 lgw_inflight(c), timeout_ms, c->recv_max);
        return -1;
    }
    unsigned char props_len[4];
    size_t pvb = put_varint(props_len, plen);
    size_t remaining = 2 + tl + 2 + pvb + plen + len;
    unsigned char *p = c->wbuf;
    size_t n = 0;
    p[n++] = P_PUBLISH | 0x02; /* QoS 1 */
    n += put_varint(p + n, remaining);
    n += put_bin(p + n, topic, tl);
    n += put_u16(p + n, id);
    memcpy(p + n, props_len, pvb);
    n += pvb;
    if (rl) {
        p[n++] = 0x08;
        n += put_bin(p + n, response_topic, rl);
    }
    if (corr) {
        p[n++] = 0x09;
        n += put_bin(p + n, corr, corr_len);
    }
    memcpy(p + n, payload, len);
    n += len;
    if (send_all(c, p, n)) {
        snprintf(err, errlen, "sending a publish: %s", strerror(errno));
        release_id(c, id);
        return -1;
    }
    return 0;
}

const char *lgw_error(const lgw *c)
{
    return c->err[0] ? c->err : "no error";
}

unsigned lgw_inflight(lgw *c)
{
    pthread_mutex_lock(&c->lock);
    unsigned n = c->inflight;
    pthread_mutex_unlock(&c->lock);
    return n;
}

void lgw_close(lgw *c)
{
    if (!c)
        return;
    if (c->fd >= 0) {
        static const unsigned char bye[2] = {P_DISCONNECT, 0};
        if (!c->dead)
            send_all(c, bye, 2);
        close(c->fd);
    }
    pthread_cond_destroy(&c->acked);
    pthread_mutex_destroy(&c->lock);
    pthread_mutex_destroy(&c->wlock);
    free(c->rbuf);
    free(c->wbuf);
    free(c);
}
