/* Cost of the router's metrics hook (ec_metrics_observe, called once per
 * finished query from finish()): ns per call on one thread and with several
 * threads contending for its mutex. Not in ctest; run build/bin/ec_bench_metrics. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "edgecascade/util.h"
#include "router_metrics.h"

#define N 2000000

static void *run(void *arg)
{
    ec_metrics *m = arg;
    ec_metrics_obs o = {.id = "01M8KBXJVBMQ9W9JQH472AC006",
                        .tier = "local",
                        .tier_name = "local",
                        .model = "llama3.2-1b",
                        .reason = "accepted: confidence 0.97 >= threshold 0.70",
                        .confidence = 0.97,
                        .threshold = 0.7,
                        .cost_top_usd = 0.00002,
                        .revision = 1};
    for (int i = 0; i < N; i++) {
        o.latency_ms = (double)(i % 40) * 0.25;
        o.tier = i % 4 ? "local" : "cloud";
        ec_metrics_observe(m, &o);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    int max_threads = argc > 1 ? atoi(argv[1]) : 2;
    for (int t = 1; t <= max_threads; t++) {
        ec_metrics *m = NULL;
        ec_error err = {0};
        if (ec_metrics_create(&m, &err))
            return 1;
        pthread_t th[64];
        double t0 = ec_mono_ms();
        for (int i = 0; i < t; i++)
            pthread_create(&th[i], NULL, run, m);
        for (int i = 0; i < t; i++)
            pthread_join(th[i], NULL);
        double ms = ec_mono_ms() - t0;
        printf("threads %d: %.1f ns per observe (wall / calls per thread), %.0f k calls/s in all\n",
               t, ms * 1e6 / N, (double)t * N / ms);
        ec_metrics_destroy(m);
    }
    return 0;
}
