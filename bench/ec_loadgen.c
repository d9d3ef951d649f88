/* ec_loadgen: the benchmark's load generator and reporter (driven by bench/run).
 *
 *   ec_loadgen phase  --broker URI --root R [--null] --rate Q --duration S [--mix F]
 *                     [--label NAME (progress lines)]
 *                     [--drain-ms N] [--pid NAME=PID]... [--sim-log FILE]
 *   ec_loadgen burst  --broker URI --root R [--null] --count N [--drain-ms N] [--pid NAME=PID]...
 *                     (N queries at once, no lead-in: answer_span_s, max_gap_ms, busy)
 *   ec_loadgen sweep  --broker URI --root R [--null] [--mix F] [--start-rate Q]
 *                     [--max-rate Q] [--duration S] [--bisections N (default 5)]
 *   ec_loadgen status --broker URI --root R     (prints "service pid state epoch_us" lines)
 *   ec_loadgen watch  --broker URI --root R     (a dashboard on <root>/result/#: prints
 *                     "subscribed", then at SIGTERM the number of Results it got)
 *   ec_loadgen report --dir DIR [--json]
 *   ec_loadgen free-port                        (a loopback port the kernel just gave out)
 *   ec_loadgen probe [--rate Q] [--duration S]  (the machine's own loopback hop, lg_probe.c)
 *
 * Each of phase and sweep prints one JSON object on stdout; progress goes to
 * stderr. */
#include <arpa/inet.h>
#include <getopt.h>
#include <math.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/util.h"
#include "loadgen.h"

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: ec_loadgen phase|burst|sweep|status|watch|report|free-port|probe [options] (see "
        "bench/README.md)\n");
    exit(2);
}

static void parse(lg_opts *o, bool *json_out, const char **dir, int argc, char **argv)
{
    static const struct option opts[] = {
        {"broker", required_argument, NULL, 'b'},
        {"root", required_argument, NULL, 'r'},
        {"null", no_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'q'},
        {"duration", required_argument, NULL, 'd'},
        {"mix", required_argument, NULL, 'm'},
        {"drain-ms", required_argument, NULL, 'D'},
        {"pid", required_argument, NULL, 'p'},
        {"sim-log", required_argument, NULL, 's'},
        {"start-rate", required_argument, NULL, 'S'},
        {"max-rate", required_argument, NULL, 'M'},
        {"dir", required_argument, NULL, 'o'},
        {"json", no_argument, NULL, 'j'},
        {"count", required_argument, NULL, 'c'},
        {"label", required_argument, NULL, 'L'},
        {"bisections", required_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->uri = optarg;
            break;
        case 'r':
            o->root = optarg;
            break;
        case 'n':
            o->null_mode = true;
            break;
        case 'q':
            o->rate = atof(optarg);
            break;
        case 'c': /* burst: all at once */
            o->rate = atof(optarg);
            o->duration_s = 1;
            break;
        case 'd':
            o->duration_s = atof(optarg);
            break;
        case 'm':
            o->mix = atof(optarg);
            break;
        case 'D':
            o->drain_ms = atoi(optarg);
            break;
        case 'S':
            o->start_rate = atof(optarg);
            break;
        case 'B':
            o->bisections = atoi(optarg);
            if (o->bisections < 0 || o->bisections > 10) {
                fprintf(stderr, "ec_loadgen: --bisections 0..10\n");
                exit(2);
            }
            break;
        case 'M':
            o->max_rate = atof(optarg);
            break;
        case 's':
            o->sim_log = optarg;
            break;
        case 'L':
            o->label = optarg;
            break;
        case 'o':
            *dir = optarg;
            break;
        case 'j':
            *json_out = true;
            break;
        case 'p': {
            const char *eq = strchr(optarg, '=');
            if (!eq || o->n_pids == LG_MAX_PIDS || (size_t)(eq - optarg) >= sizeof(o->pids[0].name))
                usage();
            lg_pid *p = &o->pids[o->n_pids++];
            memcpy(p->name, optarg, (size_t)(eq - optarg));
            p->name[eq - optarg] = '\0';
            p->pid = (pid_t)atoi(eq + 1);
            break;
        }
        default:
            usage();
        }
    }
}

static void print_json(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
    if (s)
        puts(s);
    free(s);
}

static void progress(const char *what, json_t *p, bool pass)
{
    json_t *lat = json_object_get(p, "latency_ok");
    fprintf(stderr,
            "  %-8s %7.0f q/s: %s  ok %lld/%lld busy %lld unanswered %lld  p50 %.2f p99 %.2f ms\n",
            what, json_real_value(json_object_get(p, "offered_qps")), pass ? "pass" : "FAIL",
            json_integer_value(json_object_get(p, "ok")),
            json_integer_value(json_object_get(p, "sent")),
            json_integer_value(json_object_get(p, "busy")),
            json_integer_value(json_object_get(p, "unanswered")),
            json_real_value(json_object_get(lat, "p50_ms")),
            json_real_value(json_object_get(lat, "p99_ms")));
}

/* One rate, judged; a failure is retried once after a pause, because a single
 * scheduling hiccup on a shared 2-core machine is not the pipeline's limit. */
static bool try_rate(lg *g, const lg_opts *o, double rate, json_t *steps, const char *what)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        json_t *p = lg_phase(g, rate, o->duration_s, o->mix, 3000, false);
        if (!p)
            return false;
        bool pass = lg_phase_ok(p);
        progress(what, p, pass);
        json_object_set_new(p, "pass", json_boolean(pass));
        json_array_append_new(steps, p);
        if (pass)
            return true;
        ec_sleep_ms(1000); /* let a backlog drain before the next step */
    }
    return false;
}

/* Highest rate that passes: grow by 1.5x, past a failing rate as long as
 * the next one up passes, until two rates in a row fail (or come down by
 * 1.5x when the start rate and the one above both fail); then bisect
 * (geometrically) between the highest pass and the first failure above it,
 * five times by default: a step of 1.3 % at the end (three bisections left
 * steps of 5 %, as wide as the margin the ratio target is judged on).
 *
 * Why not stop at the first failure: on this VM a pipeline's tail is worse
 * at 400-600 q/s than at 1,500 (its threads sleep between queries and each
 * wake-up can wait a millisecond or more; busy threads do not), so a sweep
 * that stopped at the first failure measured the host's idle wake-ups:
 * run 29 (2026-12-07 20:07) had all three all-local sweeps stop at 330-549
 * q/s with p99 of 5-10 ms, while a sweep with a dashboard, minutes later,
 * passed 400, 600, 900 and 1,350 q/s (p99 2-4 ms) and reached 1,949. */
static json_t *sweep(lg *g, const lg_opts *o)
{
    const char *what = o->label ? o->label : o->null_mode ? "null" : o->mix > 0 ? "mixed" : "local";
    json_t *steps = json_array();
    json_t *warm = lg_phase(g, 200, 0.5, o->mix, 3000, false); /* connections, caches */
    json_decref(warm);
    double lo = 0, hi, fail_at = 0;
    for (double r = o->start_rate; r <= o->max_rate; r *= 1.5) {
        if (try_rate(g, o, r, steps, what)) {
            lo = r;
            fail_at = 0;
        } else if (fail_at > 0) {
            break; /* two in a row */
        } else {
            fail_at = r;
        }
    }
    hi = fail_at;
    if (lo == 0 && hi > 0) { /* nothing passed: come down until a rate holds */
        for (double r = hi / 1.5; r >= 50 && lo == 0; r /= 1.5) {
            if (try_rate(g, o, r, steps, what))
                lo = r;
            else
                hi = r;
        }
    }
    if (lo > 0 && hi > 0) {
        for (int i = 0; i < o->bisections; i++) {
            double mid = sqrt(lo * hi);
            if (try_rate(g, o, mid, steps, what))
                lo = mid;
            else
                hi = mid;
        }
    }
    json_t *out = json_object();
    json_object_set_new(out, "qps", json_integer((json_int_t)floor(lo)));
    json_object_set_new(out, "first_fail_qps", json_integer((json_int_t)floor(hi)));
    json_object_set_new(out, "mix", json_real(o->mix));
    json_object_set_new(out, "step_s", json_real(o->duration_s));
    json_object_set_new(out, "steps", steps);
    return out;
}

/* A clean session of ec_loadgen `what` on <root>/<topic>, connected, or
 * NULL (said on stderr); prints "subscribed" for bench/run to wait on. */
static ec_mqtt *subscriber(const lg_opts *o, const char *what, const char *topic)
{
    ec_mqtt *m = NULL;
    ec_error err = {0};
    char cid[64], filter[300];
    snprintf(cid, sizeof(cid), "bench-%s-%d", what, (int)getpid());
    snprintf(filter, sizeof(filter), "%s/%s", o->root, topic);
    ec_mqtt_opts mo = {.uri = o->uri,
                       .client_id = cid,
                       .clean_start = true,
                       .session_expiry_s = 1,
                       .queue_cap = 1u << 20};
    if (ec_mqtt_create(&m, &mo, &err) || ec_mqtt_subscribe(m, filter, 1, &err) ||
        ec_mqtt_connect(m, 5000, &err)) {
        fprintf(stderr, "ec_loadgen %s: %s\n", what, err.msg);
        ec_mqtt_destroy(m);
        return NULL;
    }
    printf("subscribed\n");
    fflush(stdout);
    return m;
}

static int run_status(const lg_opts *o)
{
    ec_mqtt *m = subscriber(o, "status", "status/+");
    if (!m)
        return 1;
    while (!g_stop) {
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 100) != EC_OK)
            continue;
        /* Wall-clock time of arrival (Paho's callback), comparable with the
         * spawn time bash takes from $EPOCHREALTIME. */
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        uint64_t now_real = (uint64_t)rt.tv_sec * 1000000u + (uint64_t)rt.tv_nsec / 1000u;
        uint64_t at = now_real - (ec_mono_us() - msg->received_us);
        json_t *j = json_loadb(msg->payload, msg->len, 0, NULL);
        const char *slash = strrchr(msg->topic, '/');
        printf("%s %lld %s %llu\n", slash ? slash + 1 : msg->topic,
               json_integer_value(json_object_get(j, "pid")),
               json_string_value(json_object_get(j, "state")) ?: "?", (unsigned long long)at);
        fflush(stdout);
        json_decref(j);
        ec_mqtt_msg_free(msg);
    }
    ec_mqtt_destroy(m);
    return 0;
}

/* A dashboard: a clean session on <root>/result/#, as `edgecascade tail`
 * and a fleet view subscribe, that counts what it gets. */
static int run_watch(const lg_opts *o)
{
    ec_mqtt *m = subscriber(o, "watch", "result/#");
    if (!m)
        return 1;
    unsigned long long n = 0;
    while (!g_stop) {
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 100) != EC_OK)
            continue;
        n++;
        ec_mqtt_msg_free(msg);
    }
    printf("%llu\n", n);
    ec_mqtt_destroy(m);
    return 0;
}

/* As the integration harness does: bind port 0 on loopback and print what
 * the kernel chose (the caller retries on a new port if it is taken again
 * before its server binds it). */
static int run_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof(a)) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0) {
        perror("ec_loadgen free-port");
        return 1;
    }
    printf("%d\n", ntohs(a.sin_port));
    close(fd);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        usage();
    const char *cmd = argv[1];
    if (strcmp(cmd, "free-port") == 0)
        return run_free_port();
    lg_opts o = {
        .duration_s = 2.0, .drain_ms = 3000, .start_rate = 400, .max_rate = 40000, .bisections = 5};
    bool json_out = false;
    const char *dir = NULL;
    parse(&o, &json_out, &dir, argc - 1, argv + 1);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    if (strcmp(cmd, "report") == 0) {
        if (!dir)
            usage();
        json_t *r = lg_report(dir);
        if (!r)
            return 1;
        if (json_out)
            print_json(r);
        else
            lg_report_table(r, stdout);
        json_decref(r);
        return 0;
    }
    if (strcmp(cmd, "probe") == 0) {
        json_t *p = lg_probe(o.rate > 0 ? o.rate : 1000, o.duration_s);
        print_json(p);
        json_decref(p);
        return 0;
    }
    if (!o.uri || !o.root)
        usage();
    if (strcmp(cmd, "status") == 0)
        return run_status(&o);
    if (strcmp(cmd, "watch") == 0)
        return run_watch(&o);

    o.burst = strcmp(cmd, "burst") == 0;
    lg *g = NULL;
    if (lg_open(&g, &o) != 0)
        return 1;
    json_t *out = NULL;
    if (strcmp(cmd, "phase") == 0) {
        if (o.rate <= 0)
            usage();
        json_t *warm = lg_phase(g, 100, 0.3, o.mix, 3000, false); /* warm-up */
        out = lg_phase(g, o.rate, o.duration_s, o.mix, o.drain_ms, true);
        /* Queries of the warm-up (its lead-in too), for whoever counts every
         * Result of the invocation (bench/run's dashboard). */
        json_t *ws = json_object_get(warm, "sent"), *wl = json_object_get(warm, "lead_in");
        if (out)
            json_object_set_new(out, "warm_up_sent",
                                json_integer(json_integer_value(ws) + json_integer_value(wl)));
        json_decref(warm);
        if (out)
            progress(o.label       ? o.label
                     : o.null_mode ? "null"
                     : o.mix > 0   ? "mixed"
                                   : "local",
                     out, lg_phase_ok(out));
    } else if (strcmp(cmd, "burst") == 0) {
        if (o.rate <= 0)
            usage();
        json_decref(lg_phase(g, 100, 0.3, o.mix, 3000, false)); /* warm-up, not reported */
        out = lg_phase(g, o.rate, 1, o.mix, o.drain_ms, true);
    } else if (strcmp(cmd, "sweep") == 0) {
        out = sweep(g, &o);
    } else {
        usage();
    }
    lg_close(g);
    if (!out)
        return 1;
    print_json(out);
    json_decref(out);
    return 0;
}
