/* The machine's own floor for tail latency (ec_loadgen probe): a 64-byte
 * TCP ping-pong over loopback between two processes of nobody's code but
 * this file, paced like the latency phase (one round trip per interval).
 *
 * Why: every query crosses a dozen thread wake-ups (Paho's receive and send
 * threads, the service's workers, the broker, the simulator). On a virtual
 * machine a wake-up that lands on an idle virtual CPU goes through the
 * hypervisor, and its tail is the machine's, not the pipeline's. The probe
 * measures one such hop with both ends on the same CPU and on different
 * CPUs, so a p99 can be read against what the machine allows. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "loadgen.h"

enum { PROBE_MSG = 64 };

static void pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof(set), &set); /* best effort: unpinned still measures */
}

static int full_io(int fd, char *buf, size_t len, bool rd)
{
    size_t done = 0;
    while (done < len) {
        ssize_t n = rd ? read(fd, buf + done, len - done) : write(fd, buf + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        done += (size_t)n;
    }
    return 0;
}

/* One pairing: the echoing child on cpu_a, the timing parent on cpu_b.
 * NULL when a socket or fork fails (the probe is context, not a verdict). */
static json_t *probe_pair(int cpu_a, int cpu_b, double rate, size_t n)
{
    int one = 1, lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) || listen(lfd, 1) ||
        getsockname(lfd, (struct sockaddr *)&a, &alen)) {
        if (lfd >= 0)
            close(lfd);
        return NULL;
    }
    pid_t child = fork();
    if (child < 0) {
        close(lfd);
        return NULL;
    }
    if (child == 0) {
        pin(cpu_a);
        int s = accept(lfd, NULL, NULL);
        char buf[PROBE_MSG];
        if (s >= 0) {
            setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            while (full_io(s, buf, sizeof(buf), true) == 0 &&
                   full_io(s, buf, sizeof(buf), false) == 0) {
            }
        }
        _exit(0);
    }
    close(lfd);
    pin(cpu_b);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    double *rtt = malloc(n * sizeof(*rtt));
    json_t *out = NULL;
    if (s < 0 || !rtt || connect(s, (struct sockaddr *)&a, sizeof(a)) != 0)
        goto done;
    setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    char buf[PROBE_MSG] = {0};
    uint64_t t0 = ec_mono_us() + 10000, interval = (uint64_t)(1e6 / rate);
    size_t got = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t target = t0 + i * interval;
        struct timespec ts = {.tv_sec = (time_t)(target / 1000000u),
                              .tv_nsec = (long)(target % 1000000u) * 1000L};
        while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
        }
        /* From the write: the generator's own timer lateness is not a hop. */
        uint64_t t = ec_mono_us();
        if (full_io(s, buf, sizeof(buf), false) || full_io(s, buf, sizeof(buf), true))
            break;
        rtt[got++] = (double)(ec_mono_us() - t) / 1000.0;
    }
    if (got == n)
        out = lg_latency_json(rtt, got);
done:
    if (s >= 0)
        close(s); /* the child reads EOF and exits */
    free(rtt);
    waitpid(child, NULL, 0);
    return out;
}

json_t *lg_probe(double rate, double duration_s)
{
    size_t n = (size_t)(rate * duration_s);
    if (n < 100)
        n = 100;
    cpu_set_t was;
    bool have = sched_getaffinity(0, sizeof(was), &was) == 0;
    json_t *o = json_object();
    json_object_set_new(o, "rate", json_real(rate));
    json_t *same = probe_pair(0, 0, rate, n);
    json_object_set_new(o, "same_cpu", same ? same : json_null());
    if (sysconf(_SC_NPROCESSORS_ONLN) > 1) {
        json_t *cross = probe_pair(0, 1, rate, n);
        json_object_set_new(o, "cross_cpu", cross ? cross : json_null());
    }
    if (have)
        sched_setaffinity(0, sizeof(was), &was);
    return o;
}
