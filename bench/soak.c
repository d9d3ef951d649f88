/* ec_soak: the soak benchmark's client (bench/soak drives it and injects the
 * faults).
 *
 *   ec_soak --broker URI --root R --db PATH [--queries N] [--rate Q] [--mix F]
 *           [--seed S] [--started-file F] [--sent-file F] [--healed-file F]
 *           [--drain-s S] [--faults FILE] [--meta FILE] [--json-out FILE]
 *           [--dump FILE] [--json]
 *
 * Publishes N queries ("soak-<i>") at Q per second, open loop, a share F of
 * them (chosen by a PRNG seeded with S) needing the cloud. Its MQTT session
 * is persistent (Clean Start off, Session Expiry 600 s), so results published
 * while the broker restarts are delivered when it is back; Paho buffers what
 * it publishes meanwhile. After the last send it touches the sent file, waits
 * for the healed file (the driver has cleared every fault and every service
 * runs again), then waits (up to --drain-s) until the run has settled: every
 * query has a result and a decision row, the outbox and the journal are
 * empty, every queued escalation has its revision 2. Prints the figures and
 * exits 1 when a query was lost, an id has not exactly one decision row or a
 * queued escalation never got its revision 2. */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"
#include "soak.h"

/* bench/soak-script.json answers "easy" with high token probabilities
 * (accepted locally) and "hard" with low ones locally, well from the cloud. */
#define PROMPT_EASY "An easy one: convert 150 psi to bar (%zu)."
#define PROMPT_HARD "A hard question: why does spindle %zu vibrate at 12 mm/s?"

typedef struct opts {
    const char *uri, *root, *db;
    size_t queries;
    double rate, mix;
    uint64_t seed;
    const char *started_file, *sent_file, *healed_file;
    double drain_s;
    const char *faults, *meta, *json_out, *dump;
    bool json;
} opts;

typedef struct soak {
    opts o;
    ec_mqtt *m;
    char query_topic[300];
    char reply_topic[300];
    uint32_t tag; /* high half of the correlation data: this run */
    pthread_t receiver;
    bool receiver_started;
    atomic_bool stop;
    pthread_mutex_t lock; /* guards slots, strays, undecodable */
    soak_slot *slots;
    uint64_t strays;
    uint64_t undecodable;
} soak;

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ec_soak --broker URI --root R --db PATH [options] (see bench/soak.c)\n");
    exit(2);
}

static void parse(opts *o, int argc, char **argv)
{
    static const struct option lo[] = {
        {"broker", required_argument, NULL, 'b'},
        {"root", required_argument, NULL, 'r'},
        {"db", required_argument, NULL, 'd'},
        {"queries", required_argument, NULL, 'n'},
        {"rate", required_argument, NULL, 'q'},
        {"mix", required_argument, NULL, 'm'},
        {"seed", required_argument, NULL, 's'},
        {"started-file", required_argument, NULL, 'A'},
        {"sent-file", required_argument, NULL, 'B'},
        {"healed-file", required_argument, NULL, 'C'},
        {"drain-s", required_argument, NULL, 'D'},
        {"faults", required_argument, NULL, 'f'},
        {"meta", required_argument, NULL, 'M'},
        {"json-out", required_argument, NULL, 'o'},
        {"dump", required_argument, NULL, 'u'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'b':
            o->uri = optarg;
            break;
        case 'r':
            o->root = optarg;
            break;
        case 'd':
            o->db = optarg;
            break;
        case 'n':
            o->queries = (size_t)strtoull(optarg, NULL, 10);
            break;
        case 'q':
            o->rate = atof(optarg);
            break;
        case 'm':
            o->mix = atof(optarg);
            break;
        case 's':
            o->seed = strtoull(optarg, NULL, 10);
            break;
        case 'A':
            o->started_file = optarg;
            break;
        case 'B':
            o->sent_file = optarg;
            break;
        case 'C':
            o->healed_file = optarg;
            break;
        case 'D':
            o->drain_s = atof(optarg);
            break;
        case 'f':
            o->faults = optarg;
            break;
        case 'M':
            o->meta = optarg;
            break;
        case 'o':
            o->json_out = optarg;
            break;
        case 'u':
            o->dump = optarg;
            break;
        case 'j':
            o->json = true;
            break;
        default:
            usage();
        }
    }
    if (!o->uri || !o->root || !o->db || o->queries == 0 || o->queries > 100000000 ||
        o->rate <= 0 || o->mix < 0 || o->mix > 1)
        usage();
}

static uint64_t splitmix(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void touch(const char *path)
{
    FILE *f = path ? fopen(path, "w") : NULL;
    if (f)
        fclose(f);
}

static bool exists(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0;
}

static void take(soak *g, const ec_mqtt_msg *msg)
{
    uint64_t key = 0;
    for (size_t i = 0; msg->corr && msg->corr_len == 8 && i < 8; i++)
        key = (key << 8) | ((const unsigned char *)msg->corr)[i];
    uint32_t tag = (uint32_t)(key >> 32), idx = (uint32_t)key;
    ec_result res = {0};
    ec_error err = {0};
    bool ok = ec_result_decode(msg->payload, msg->len, &res, &err) == EC_OK;
    pthread_mutex_lock(&g->lock);
    if (msg->corr_len != 8 || tag != g->tag || idx >= g->o.queries) {
        g->strays++;
    } else if (!ok) {
        g->undecodable++;
    } else {
        soak_slot *s = &g->slots[idx];
        bool cloud = res.tier && strcmp(res.tier, "cloud") == 0;
        if (res.revision >= 2) {
            s->rev2 += s->rev2 < UINT16_MAX;
            s->rev2_cloud |= cloud && !res.error.code;
            s->rev2_error |= res.error.code != NULL;
        } else {
            if (s->rev1 == 0) {
                s->rev1_us = msg->received_us;
                s->degraded = res.degraded;
                s->rev1_cloud = cloud;
                s->rev1_error = res.error.code != NULL;
                s->rev1_busy = res.error.code && strcmp(res.error.code, "busy") == 0;
            }
            s->rev1 += s->rev1 < UINT16_MAX;
        }
    }
    pthread_mutex_unlock(&g->lock);
    ec_result_clear(&res);
}

static void *receiver_main(void *arg)
{
    soak *g = arg;
    while (!atomic_load(&g->stop)) {
        ec_mqtt_msg *msg = NULL;
        ec_err rc = ec_mqtt_next(g->m, &msg, 100);
        if (rc == EC_ERR_UNAVAILABLE)
            break;
        if (rc != EC_OK)
            continue;
        take(g, msg);
        ec_mqtt_msg_free(msg);
    }
    return NULL;
}

static int client_open(soak *g)
{
    ec_error err = {0};
    char cid[64];
    snprintf(cid, sizeof(cid), "bench-soak-%d", (int)getpid());
    snprintf(g->query_topic, sizeof(g->query_topic), "%s/query", g->o.root);
    snprintf(g->reply_topic, sizeof(g->reply_topic), "%s/replies/soak/%d", g->o.root,
             (int)getpid());
    ec_mqtt_opts mo = {.uri = g->o.uri,
                       .client_id = cid,
                       .clean_start = false,
                       .session_expiry_s = 600,
                       .queue_cap = 65536,
                       .max_inflight = 60000};
    if (ec_mqtt_create(&g->m, &mo, &err) || ec_mqtt_subscribe(g->m, g->reply_topic, 1, &err) ||
        ec_mqtt_connect(g->m, 5000, &err)) {
        fprintf(stderr, "ec_soak: %s\n", err.msg);
        return -1;
    }
    if (pthread_create(&g->receiver, NULL, receiver_main, g) != 0)
        return -1;
    g->receiver_started = true;
    return 0;
}

static void sleep_until_us(uint64_t t_us)
{
    struct timespec ts = {.tv_sec = (time_t)(t_us / 1000000u),
                          .tv_nsec = (long)(t_us % 1000000u) * 1000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR && !g_stop) {
    }
}

static bool publish_one(soak *g, size_t i, ec_buf *b)
{
    char id[32], prompt[160];
    soak_slot *s = &g->slots[i];
    snprintf(id, sizeof(id), "soak-%zu", i);
    snprintf(prompt, sizeof(prompt), s->hard ? PROMPT_HARD : PROMPT_EASY, i);
    ec_query q = {.id = id, .prompt = prompt, .source = "soak", .policy = EC_POLICY_AUTO};
    unsigned char corr[8];
    uint64_t key = ((uint64_t)g->tag << 32) | (uint32_t)i;
    for (int k = 0; k < 8; k++)
        corr[k] = (unsigned char)(key >> (56 - 8 * k));
    ec_mqtt_pubprops pp = {.response_topic = g->reply_topic, .corr = corr, .corr_len = 8};
    ec_buf_reset(b);
    if (ec_query_encode(&q, b, NULL) != EC_OK)
        return false;
    /* Paho buffers while the broker is away; a refusal (buffer full, in-flight
     * window full) is retried a few times before the query counts as unsent. */
    for (int attempt = 0; attempt < 20 && !g_stop; attempt++) {
        ec_error err = {0};
        if (ec_mqtt_publish(g->m, g->query_topic, b->data, b->len, 1, false, &pp, 5000, &err) ==
            EC_OK)
            return true;
        fprintf(stderr, "soak: publish of %s refused (%s); retrying\n", id, err.msg);
        ec_sleep_ms(250);
    }
    return false;
}

static size_t count_answered(soak *g, size_t upto)
{
    size_t k = 0;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < upto; i++)
        k += g->slots[i].rev1 + g->slots[i].rev2 > 0;
    pthread_mutex_unlock(&g->lock);
    return k;
}

/* Open loop: query i is due at t0 + i/rate whatever happened to the others. */
static json_t *drive(soak *g)
{
    ec_buf b;
    ec_buf_init(&b, 0);
    uint64_t rng = g->o.seed * 2654435761u + 1;
    for (size_t i = 0; i < g->o.queries; i++)
        g->slots[i].hard = (double)(splitmix(&rng) >> 11) * 0x1.0p-53 < g->o.mix;
    double interval_us = 1e6 / g->o.rate;
    uint64_t t0 = ec_mono_us() + 20000, max_lag = 0, next_report = t0 + 10000000u;
    touch(g->o.started_file);
    size_t sent = 0, failed = 0;
    for (size_t i = 0; i < g->o.queries && !g_stop; i++) {
        uint64_t due = t0 + (uint64_t)((double)i * interval_us), now = ec_mono_us();
        if (now < due)
            sleep_until_us(due);
        else if (now - due > max_lag)
            max_lag = now - due;
        g->slots[i].sched_us = due;
        bool ok = publish_one(g, i, &b);
        pthread_mutex_lock(&g->lock);
        g->slots[i].sent = ok;
        pthread_mutex_unlock(&g->lock);
        sent += ok;
        failed += !ok;
        if (ec_mono_us() >= next_report) {
            fprintf(stderr, "soak: %4.0f s  sent %zu  with a result %zu\n",
                    (double)(ec_mono_us() - t0) / 1e6, sent, count_answered(g, i + 1));
            next_report += 10000000u;
        }
    }
    ec_buf_free(&b);
    double send_s = (double)(ec_mono_us() - t0) / 1e6;
    touch(g->o.sent_file);
    fprintf(stderr, "soak: sending done in %.1f s (%zu sent, %zu not sent)\n", send_s, sent,
            failed);
    return json_pack("{s:f, s:f, s:I}", "send_s", send_s, "max_send_lag_ms",
                     (double)max_lag / 1000.0, "send_failed", (json_int_t)failed);
}

/* Waits for the driver to heal everything, then until the run has settled. */
static json_t *drain(soak *g, soak_audit *a)
{
    uint64_t give_up = ec_mono_us() + 300 * 1000000ull;
    while (g->o.healed_file && !exists(g->o.healed_file) && !g_stop && ec_mono_us() < give_up)
        ec_sleep_ms(100);
    uint64_t t_healed = ec_mono_us();
    uint64_t deadline = t_healed + (uint64_t)(g->o.drain_s * 1e6);
    uint64_t next_report = t_healed + 5000000u;
    bool settled = false;
    for (;;) {
        soak_audit_clear(a);
        bool read = soak_audit_read(g->o.db, g->o.queries, a) == 0;
        if (read) {
            pthread_mutex_lock(&g->lock);
            settled = soak_settled(g->slots, g->o.queries, a);
            pthread_mutex_unlock(&g->lock);
        }
        uint64_t now = ec_mono_us();
        if (settled || g_stop || now >= deadline)
            break;
        if (now >= next_report) {
            fprintf(stderr, "soak: draining %.0f s: outbox %ld, journal %ld, with a result %zu\n",
                    (double)(now - t_healed) / 1e6, a->outbox_left, a->journal_left,
                    count_answered(g, g->o.queries));
            next_report += 5000000u;
        }
        ec_sleep_ms(250);
    }
    double drain_s = (double)(ec_mono_us() - t_healed) / 1e6;
    /* A little longer, so late duplicates are counted too. */
    ec_sleep_ms(1500);
    soak_audit_clear(a);
    if (soak_audit_read(g->o.db, g->o.queries, a) != 0)
        return NULL;
    fprintf(stderr, "soak: %s after %.1f s\n", settled ? "settled" : "NOT settled (timeout)",
            drain_s);
    return json_pack("{s:b, s:f}", "drained", settled, "drain_s", drain_s);
}

/* The driver's fault log: one JSON object per line. */
static json_t *read_faults(const char *path)
{
    json_t *arr = json_array();
    FILE *f = path ? fopen(path, "r") : NULL;
    char line[1024];
    while (f && fgets(line, sizeof(line), f)) {
        json_t *j = json_loads(line, 0, NULL);
        if (j)
            json_array_append_new(arr, j);
    }
    if (f)
        fclose(f);
    return arr;
}

static void dump_slots(soak *g, const soak_audit *a)
{
    FILE *f = fopen(g->o.dump, "w");
    if (!f)
        return;
    fputs("# id hard sent rev1 rev2 degraded rev1_cloud rev2_cloud rows qflags rev1_ms\n", f);
    for (size_t i = 0; i < g->o.queries; i++) {
        const soak_slot *s = &g->slots[i];
        double ms = s->rev1_us ? (double)(s->rev1_us - s->sched_us) / 1000.0 : -1;
        fprintf(f, "soak-%zu %d %d %u %u %d %d %d %u %u %.1f\n", i, s->hard, s->sent, s->rev1,
                s->rev2, s->degraded, s->rev1_cloud, s->rev2_cloud, a->rows[i], a->qflags[i], ms);
    }
    fclose(f);
}

static void write_json(json_t *o, FILE *f)
{
    char *s = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6) | JSON_PRESERVE_ORDER);
    if (s)
        fprintf(f, "%s\n", s);
    free(s);
}

int main(int argc, char **argv)
{
    soak g = {.o = {.queries = 10000, .rate = 200, .mix = 0.3, .seed = 1, .drain_s = 90}};
    parse(&g.o, argc, argv);
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_mutex_init(&g.lock, NULL);
    g.tag = (uint32_t)getpid() ^ (uint32_t)(g.o.seed * 0x9e3779b1u);
    g.slots = calloc(g.o.queries, sizeof(*g.slots));
    soak_audit a = {0};
    json_t *out = NULL, *sending = NULL, *draining = NULL;
    int rc = 2;
    if (!g.slots || client_open(&g) != 0)
        goto out;
    sending = drive(&g);
    draining = drain(&g, &a);
    if (!draining)
        goto out;
    pthread_mutex_lock(&g.lock);
    out = soak_figures(g.slots, g.o.queries, &a);
    json_object_set_new(out, "strays", json_integer((json_int_t)g.strays));
    json_object_set_new(out, "undecodable", json_integer((json_int_t)g.undecodable));
    pthread_mutex_unlock(&g.lock);
    json_object_update(out, sending);
    json_object_update(out, draining);
    json_object_set_new(out, "faults", read_faults(g.o.faults));
    json_t *meta = g.o.meta ? json_load_file(g.o.meta, 0, NULL) : NULL;
    json_object_set_new(out, "meta", meta ? meta : json_object());
    if (g.o.dump)
        dump_slots(&g, &a);
    if (g.o.json_out) {
        FILE *f = fopen(g.o.json_out, "w");
        if (f) {
            write_json(out, f);
            fclose(f);
        }
    }
    if (g.o.json)
        write_json(out, stdout);
    else
        soak_print_table(out, stdout);
    rc = soak_failed(out) ? 1 : 0;
out:
    atomic_store(&g.stop, true);
    if (g.m)
        ec_mqtt_stop(g.m);
    if (g.receiver_started)
        pthread_join(g.receiver, NULL);
    ec_mqtt_destroy(g.m);
    json_decref(out);
    json_decref(sending);
    json_decref(draining);
    soak_audit_clear(&a);
    free(g.slots);
    pthread_mutex_destroy(&g.lock);
    return rc;
}
