/* The phase engine: one publisher paced by absolute-deadline sleeps
 * (open loop: the schedule never waits for answers), one receiver matching
 * answers to queries by Correlation Data ([phase:32][index:32], big-endian). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "edgecascade/proto.h"
#include "edgecascade/util.h"
#include "lg_wire.h"
#include "loadgen.h"

/* The bench simulator script (bench/sim-script.json) answers the first
 * prompt with high token probabilities (accepted locally) and the second
 * with low ones (escalated to the cloud tier). */
#define PROMPT_LOCAL    "Convert 150 psi to bar."
#define PROMPT_ESCALATE "Bench escalation: why does spindle 3 vibrate at 12 mm/s?"

enum { S_PENDING = 0, S_OK, S_BUSY, S_ERROR, S_SENDFAIL };

typedef struct slot {
    uint64_t sched_us;
    uint64_t recv_us;
    uint64_t sent_us; /* when the generator called publish: sched_us plus its own lateness */
    float router_ms;
    uint8_t state;
    bool escalated;
} slot;

struct lg {
    lg_opts o;
    lgw *c; /* not Paho: lg_wire.h says why */
    char client_id[64];
    char query_topic[300];
    char reply_topic[300];
    pthread_t receiver;
    bool receiver_started;
    atomic_bool stop;

    pthread_mutex_t lock; /* guards the phase fields below */
    uint32_t phase;
    slot *slots;
    size_t n;
    size_t answered;
    uint64_t strays; /* answers to earlier phases or unknown correlation */
};

static void classify(lg *g, const lgw_msg *msg, uint8_t *state, bool *esc, float *router_ms)
{
    *state = S_OK;
    *esc = false;
    *router_ms = 0;
    if (g->o.null_mode)
        return;
    ec_result res = {0};
    ec_error err = {0};
    if (ec_result_decode((const char *)msg->payload, msg->len, &res, &err) != EC_OK) {
        *state = S_ERROR;
        return;
    }
    if (res.error.code)
        *state = strcmp(res.error.code, "busy") == 0 ? S_BUSY : S_ERROR;
    *esc = res.escalated;
    *router_ms = (float)res.router_ms;
    ec_result_clear(&res);
}

static void *receiver_main(void *arg)
{
    lg *g = arg;
    while (!atomic_load(&g->stop)) {
        lgw_msg msg;
        int rc = lgw_next(g->c, &msg, 100);
        if (rc < 0) {
            fprintf(stderr, "ec_loadgen: %s\n", lgw_error(g->c));
            break;
        }
        if (rc == 0)
            continue;
        uint64_t key = 0;
        if (msg.corr && msg.corr_len == 8) {
            for (int i = 0; i < 8; i++)
                key = (key << 8) | msg.corr[i];
        }
        uint8_t state;
        bool esc;
        float rms;
        classify(g, &msg, &state, &esc, &rms);
        pthread_mutex_lock(&g->lock);
        uint32_t ph = (uint32_t)(key >> 32), idx = (uint32_t)key;
        if (msg.corr_len == 8 && ph == g->phase && idx < g->n && g->slots[idx].state == S_PENDING) {
            slot *s = &g->slots[idx];
            s->recv_us = msg.received_us;
            s->state = state;
            s->escalated = esc;
            s->router_ms = rms;
            g->answered++;
        } else {
            g->strays++;
        }
        pthread_mutex_unlock(&g->lock);
    }
    return NULL;
}

int lg_open(lg **out, const lg_opts *o)
{
    lg *g = calloc(1, sizeof(*g));
    if (!g)
        return -1;
    g->o = *o;
    pthread_mutex_init(&g->lock, NULL);
    snprintf(g->client_id, sizeof(g->client_id), "bench-loadgen-%d", (int)getpid());
    snprintf(g->query_topic, sizeof(g->query_topic), "%s/query", o->root);
    snprintf(g->reply_topic, sizeof(g->reply_topic), "%s/replies/bench/%d", o->root, (int)getpid());
    char err[300];
    if (lgw_open(&g->c, o->uri, g->client_id, 1, err, sizeof(err)) ||
        lgw_subscribe(g->c, g->reply_topic, 5000, err, sizeof(err))) {
        fprintf(stderr, "ec_loadgen: %s\n", err);
        lg_close(g);
        return -1;
    }
    if (pthread_create(&g->receiver, NULL, receiver_main, g) != 0) {
        lg_close(g);
        return -1;
    }
    g->receiver_started = true;
    *out = g;
    return 0;
}

void lg_close(lg *g)
{
    if (!g)
        return;
    atomic_store(&g->stop, true);
    if (g->receiver_started)
        pthread_join(g->receiver, NULL);
    lgw_close(g->c);
    free(g->slots);
    pthread_mutex_destroy(&g->lock);
    free(g);
}

static void sleep_until_us(uint64_t t_us)
{
    struct timespec ts = {.tv_sec = (time_t)(t_us / 1000000u),
                          .tv_nsec = (long)(t_us % 1000000u) * 1000L};
    while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
    }
}

/* Spreads the escalated share evenly: query i escalates when floor((i+1)*mix)
 * steps past floor(i*mix). */
static bool escalates(size_t i, double mix)
{
    return mix > 0 && (size_t)((double)(i + 1) * mix) > (size_t)((double)i * mix);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, size_t n, double q)
{
    if (!n)
        return 0;
    size_t i = (size_t)((double)n * q);
    return v[i >= n ? n - 1 : i];
}

json_t *lg_latency_json(double *v, size_t n)
{
    json_t *o = json_object();
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    qsort(v, n, sizeof(*v), cmp_double);
    json_object_set_new(o, "n", json_integer((json_int_t)n));
    json_object_set_new(o, "mean_ms", json_real(n ? sum / (double)n : 0));
    json_object_set_new(o, "p50_ms", json_real(pct(v, n, 0.50)));
    json_object_set_new(o, "p90_ms", json_real(pct(v, n, 0.90)));
    json_object_set_new(o, "p99_ms", json_real(pct(v, n, 0.99)));
    json_object_set_new(o, "p999_ms", json_real(pct(v, n, 0.999)));
    json_object_set_new(o, "max_ms", json_real(n ? v[n - 1] : 0));
    return o;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static ec_err encode_query(size_t phase, size_t i, bool esc, ec_buf *b)
{
    char id[64];
    snprintf(id, sizeof(id), "bench-%zu-%zu", phase, i);
    ec_query q = {.id = id,
                  .prompt = esc ? PROMPT_ESCALATE : PROMPT_LOCAL,
                  .source = "bench",
                  .policy = EC_POLICY_AUTO};
    ec_buf_reset(b);
    return ec_query_encode(&q, b, NULL);
}

json_t *lg_phase(lg *g, double rate, double duration_s, double mix, int drain_ms, bool measure)
{
    /* A lead-in at the same rate, answered but not counted in the latencies:
     * after an idle pause (between sweep steps) the generator's client (Paho,
     * before lg_wire.c) was seen holding its first messages for ~100 ms, the
     * generator's artefact, not the pipeline's; the services' own first
     * messages after a pause are not what a phase measures either. */
    size_t lead = g->o.burst && measure ? 0 : (size_t)(rate * LG_LEAD_IN_S);
    size_t n = lead + (size_t)(rate * duration_s);
    if (n < 1)
        n = 1;
    slot *slots = calloc(n, sizeof(*slots));
    if (!slots)
        return NULL;
    pthread_mutex_lock(&g->lock);
    free(g->slots);
    g->slots = slots;
    g->n = n;
    g->answered = 0;
    g->phase++;
    uint32_t phase = g->phase;
    pthread_mutex_unlock(&g->lock);

    double cpu0[LG_MAX_PIDS];
    for (int k = 0; k < g->o.n_pids; k++)
        cpu0[k] = lg_proc_cpu_ms(g->o.pids[k].pid);
    /* The generator's own CPU too: it shares the two cores with the
     * pipeline, so at twice the sustainable rate it takes a share of them. */
    double lg_cpu0 = lg_proc_cpu_ms(getpid());
    unsigned long long steal0 = 0, total0 = 0;
    bool have_steal = lg_proc_steal(&steal0, &total0);
    long sim_off = measure ? lg_file_size(g->o.sim_log) : 0;

    ec_buf b;
    ec_buf_init(&b, 0);
    size_t send_fail = 0;
    double interval_us = g->o.burst && measure ? 0 : 1e6 / rate;
    uint64_t t0 = ec_mono_us() + 10000;
    uint64_t max_lag_us = 0;
    for (size_t i = 0; i < n; i++) {
        uint64_t target = t0 + (uint64_t)((double)i * interval_us);
        uint64_t now = ec_mono_us();
        if (now < target)
            sleep_until_us(target);
        else if (now - target > max_lag_us)
            max_lag_us = now - target;
        slots[i].sched_us = target;
        slots[i].sent_us = ec_mono_us();
        unsigned char corr[8];
        uint64_t key = ((uint64_t)phase << 32) | (uint32_t)i;
        for (int k = 0; k < 8; k++)
            corr[k] = (unsigned char)(key >> (56 - 8 * k));
        char err[200] = "the query did not encode";
        if (encode_query(phase, i, escalates(i, mix), &b) != EC_OK ||
            lgw_publish(g->c, g->query_topic, b.data, b.len, g->reply_topic, corr, 8, 10000, err,
                        sizeof(err))) {
            if (!send_fail)
                fprintf(stderr, "ec_loadgen: query %zu not sent: %s\n", i, err);
            pthread_mutex_lock(&g->lock);
            slots[i].state = S_SENDFAIL;
            g->answered++;
            pthread_mutex_unlock(&g->lock);
            send_fail++;
        }
    }
    ec_buf_free(&b);
    uint64_t send_end = ec_mono_us();
    uint64_t deadline = send_end + (uint64_t)drain_ms * 1000u;
    while (ec_mono_us() < deadline) {
        pthread_mutex_lock(&g->lock);
        bool done = g->answered >= n;
        pthread_mutex_unlock(&g->lock);
        if (done)
            break;
        ec_sleep_ms(2);
    }
    uint64_t end = ec_mono_us();

    json_t *o = json_object();
    double *ok_lat = malloc(n * sizeof(double));
    double *ans_lat = malloc(n * sizeof(double));
    double *sent_lat = malloc(n * sizeof(double));
    double *late = malloc(n * sizeof(double));
    size_t n_sent_lat = 0;
    size_t n_ok = 0, n_ans = 0, busy = 0, errors = 0, unanswered = 0, esc = 0;
    uint64_t last_ok_us = t0;
    double router_ms = 0;
    pthread_mutex_lock(&g->lock);
    for (size_t i = 0; i < n; i++) {
        slot *s = &slots[i];
        double ms = s->recv_us > s->sched_us ? (double)(s->recv_us - s->sched_us) / 1000.0 : 0;
        if (i < lead) { /* answered or not is all that counts here */
            unanswered += s->state == S_PENDING;
            continue;
        }
        switch (s->state) {
        case S_OK:
            late[n_sent_lat] = (double)(s->sent_us - s->sched_us) / 1000.0;
            sent_lat[n_sent_lat++] =
                s->recv_us > s->sent_us ? (double)(s->recv_us - s->sent_us) / 1000.0 : 0;
            ok_lat[n_ok++] = ms;
            ans_lat[n_ans++] = ms;
            esc += s->escalated;
            router_ms += s->router_ms;
            if (s->recv_us > last_ok_us)
                last_ok_us = s->recv_us;
            break;
        case S_BUSY:
            busy++;
            ans_lat[n_ans++] = ms;
            break;
        case S_ERROR:
            errors++;
            ans_lat[n_ans++] = ms;
            break;
        case S_SENDFAIL:
            break;
        default:
            unanswered++;
        }
    }
    /* The stall detector: the longest silence between consecutive answers
     * (from the first send), and when the last answer arrived. */
    uint64_t *arr = malloc((n + 1) * sizeof(*arr));
    size_t n_arr = 0;
    for (size_t i = lead; arr && i < n; i++)
        if (slots[i].recv_us && slots[i].state != S_PENDING && slots[i].state != S_SENDFAIL)
            arr[n_arr++] = slots[i].recv_us;
    double max_gap_ms = 0, answer_span_s = 0;
    if (arr && n_arr) {
        qsort(arr, n_arr, sizeof(*arr), cmp_u64);
        uint64_t t_first = t0 + (uint64_t)((double)lead * interval_us);
        uint64_t prev = t_first;
        for (size_t k = 0; k < n_arr; k++) {
            double gap = arr[k] > prev ? (double)(arr[k] - prev) / 1000.0 : 0;
            if (gap > max_gap_ms)
                max_gap_ms = gap;
            prev = arr[k];
        }
        answer_span_s = arr[n_arr - 1] > t_first ? (double)(arr[n_arr - 1] - t_first) / 1e6 : 0;
    }
    free(arr);
    const char *dump = getenv("EC_LOADGEN_DUMP"); /* per-query times, for debugging */
    char dpath[512];
    snprintf(dpath, sizeof(dpath), "%s.%u", dump ? dump : "", phase);
    FILE *df = dump ? fopen(dpath, "w") : NULL;
    for (size_t i = 0; df && i < n; i++)
        fprintf(df, "%zu %.3f %.3f %d\n", i, (double)(slots[i].sched_us - t0) / 1000.0,
                slots[i].recv_us ? (double)(slots[i].recv_us - slots[i].sched_us) / 1000.0 : -1.0,
                slots[i].state);
    if (df)
        fclose(df);
    uint64_t strays = g->strays;
    /* Answers still on their way belong to no phase from here on. */
    g->phase++;
    pthread_mutex_unlock(&g->lock);

    uint64_t t_count = t0 + (uint64_t)((double)lead * interval_us);
    if (last_ok_us < t_count)
        last_ok_us = t_count;
    double span_s = (double)(send_end - t_count) / 1e6;
    double ok_span_s = (double)(last_ok_us - t_count) / 1e6;
    json_object_set_new(o, "offered_qps", json_real(rate));
    json_object_set_new(o, "duration_s", json_real(duration_s));
    json_object_set_new(o, "mix", json_real(mix));
    json_object_set_new(o, "sent", json_integer((json_int_t)(n - lead)));
    json_object_set_new(o, "lead_in", json_integer((json_int_t)lead));
    json_object_set_new(o, "send_failed", json_integer((json_int_t)send_fail));
    json_object_set_new(o, "send_span_s", json_real(span_s));
    json_object_set_new(o, "max_send_lag_ms", json_real((double)max_lag_us / 1000.0));
    json_object_set_new(o, "ok", json_integer((json_int_t)n_ok));
    json_object_set_new(o, "escalated", json_integer((json_int_t)esc));
    json_object_set_new(o, "busy", json_integer((json_int_t)busy));
    json_object_set_new(o, "errors", json_integer((json_int_t)errors));
    json_object_set_new(o, "unanswered", json_integer((json_int_t)(unanswered + send_fail)));
    json_object_set_new(o, "strays", json_integer((json_int_t)strays));
    json_object_set_new(o, "answer_span_s", json_real(answer_span_s));
    json_object_set_new(o, "max_gap_ms", json_real(max_gap_ms));
    /* Useful answers per second, over the time it took to deliver them. */
    double goodput_span = ok_span_s > duration_s ? ok_span_s : duration_s;
    json_object_set_new(o, "goodput_qps", json_real((double)n_ok / goodput_span));
    json_object_set_new(o, "router_ms_mean", json_real(n_ok ? router_ms / (double)n_ok : 0));
    json_object_set_new(o, "latency_ok", lg_latency_json(ok_lat, n_ok));
    json_object_set_new(o, "latency_answered", lg_latency_json(ans_lat, n_ans));
    json_object_set_new(o, "latency_ok_from_send", lg_latency_json(sent_lat, n_sent_lat));
    json_object_set_new(o, "generator_late", lg_latency_json(late, n_sent_lat));
    free(ok_lat);
    free(ans_lat);
    free(sent_lat);
    free(late);

    unsigned long long steal1 = 0, total1 = 0;
    if (have_steal && lg_proc_steal(&steal1, &total1) && total1 > total0)
        json_object_set_new(
            o, "steal_pct",
            json_real(100.0 * (double)(steal1 - steal0) / (double)(total1 - total0)));
    if (g->o.n_pids) {
        json_t *cpu = json_object();
        double wall_s = (double)(end - t0) / 1e6;
        for (int k = 0; k < g->o.n_pids; k++) {
            double c1 = lg_proc_cpu_ms(g->o.pids[k].pid);
            json_object_set_new(cpu, g->o.pids[k].name,
                                json_real(c1 >= 0 && cpu0[k] >= 0 ? c1 - cpu0[k] : -1));
        }
        double lg_cpu1 = lg_proc_cpu_ms(getpid());
        json_object_set_new(cpu, "loadgen",
                            json_real(lg_cpu1 >= 0 && lg_cpu0 >= 0 ? lg_cpu1 - lg_cpu0 : -1));
        json_object_set_new(o, "cpu_ms", cpu);
        json_object_set_new(o, "cpu_wall_s", json_real(wall_s));
    }
    if (measure)
        json_object_set_new(o, "sim", lg_sim_times(g->o.sim_log, sim_off));
    return o;
}

bool lg_phase_ok(json_t *p)
{
    json_t *lat = json_object_get(p, "latency_ok");
    return json_integer_value(json_object_get(p, "ok")) ==
               json_integer_value(json_object_get(p, "sent")) &&
           json_real_value(json_object_get(lat, "p99_ms")) < LG_TARGET_P99_MS;
}
