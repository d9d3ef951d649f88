/* edgecascade eval, the real path: a private Mosquitto, the simulator
 * replaying the corpus (edgecascade-sim --replay), and router, local and
 * relay started once per fold with that fold's calibration; every prompt goes
 * through MQTT as a query, WINDOW at a time, and each Result is judged by the
 * recorded answer it served. Apart from cmd_eval.c because it is the one part
 * that runs processes and talks MQTT; the offline path judges the same rows
 * in-process. */
#define _GNU_SOURCE /* asprintf */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cmd_eval.h"
#include "edgecascade/buf.h"
#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/util.h"
#include "launch.h"

#define WINDOW       32 /* queries in flight at once on the real path */
#define QUERY_WAIT_S 120

static ec_err start_infra(eval_run *r, const char *bin, ec_error *err)
{
    char conf[300], portfile[300], map[600], scale[32];
    r->mqtt_port = cli_free_port();
    if (r->mqtt_port <= 0)
        return ec_error_set(err, EC_ERR_IO, "no free port for Mosquitto");
    snprintf(r->uri, sizeof(r->uri), "tcp://127.0.0.1:%d", r->mqtt_port);
    char id[27];
    ec_id_new(id);
    snprintf(r->root, sizeof(r->root), "ec-eval/%s", id);
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", r->dir);
    FILE *f = fopen(conf, "w");
    if (!f)
        return ec_error_set(err, EC_ERR_IO, "%s: %s", conf, strerror(errno));
    fprintf(f,
            "listener %d 127.0.0.1\nallow_anonymous true\nset_tcp_nodelay true\n"
            "persistence false\nmax_queued_messages 100000\nlog_dest stderr\n",
            r->mqtt_port);
    fclose(f);
    char *bargv[] = {"/usr/sbin/mosquitto", "-c", conf, NULL};
    ec_err rc = cli_spawn(&r->broker, r->dir, "mosquitto", bargv, err);
    if (rc || (rc = cli_wait_port(&r->broker, r->mqtt_port, 5000, err)))
        return rc;

    char sim[600];
    snprintf(sim, sizeof(sim), "%s/edgecascade-sim", bin);
    snprintf(portfile, sizeof(portfile), "%s/sim.port", r->dir);
    snprintf(map, sizeof(map), "%s=%s,%s=%s", r->o->local, r->o->local, r->o->cloud, r->o->cloud);
    snprintf(scale, sizeof(scale), "%g", r->o->latency_scale);
    char *sargv[] = {sim,
                     "--port",
                     "0",
                     "--port-file",
                     portfile,
                     "--replay",
                     (char *)r->o->corpus,
                     "--replay-map",
                     map,
                     "--replay-latency-scale",
                     scale,
                     "--log-level",
                     "warn",
                     NULL};
    if ((rc = cli_spawn(&r->sim, r->dir, "sim", sargv, err)))
        return rc;
    return cli_wait_port_file(&r->sim, portfile, 30000, &r->sim_port, err);
}

static ec_err start_services(eval_run *r, const char *bin, size_t fold, ec_error *err)
{
    char path[300];
    snprintf(path, sizeof(path), "%s/edgecascade-%zu.yaml", r->dir, fold);
    char *y = eval_config_yaml(r, fold);
    FILE *f = y ? fopen(path, "w") : NULL;
    if (!f) {
        free(y);
        return ec_error_set(err, EC_ERR_IO, "%s: cannot write", path);
    }
    fputs(y, f);
    fclose(f);
    free(y);
    const char *names[] = {"router", "local", "relay"};
    cli_proc *procs[] = {&r->router, &r->local, &r->relay};
    for (int i = 0; i < 3; i++) {
        char exe[600], name[32];
        snprintf(exe, sizeof(exe), "%s/edgecascade-%s", bin, names[i]);
        snprintf(name, sizeof(name), "%s-%zu", names[i], fold);
        char *argv[] = {exe, "--config", path, NULL};
        ec_err rc = cli_spawn(procs[i], r->dir, name, argv, err);
        if (rc || (rc = cli_wait_online(procs[i], r->uri, r->root, names[i], 15000, err)))
            return rc;
    }
    return EC_OK;
}

static void stop_services(eval_run *r)
{
    cli_stop(&r->router);
    cli_stop(&r->local);
    cli_stop(&r->relay);
}

static ec_err send_query(eval_run *r, ec_mqtt *m, const char *reply, size_t i, ec_error *err)
{
    const ec_corpus_row *row = &r->corpus.rows[i];
    ec_chat_msg msgs[2] = {{.role = "system", .content = row->system},
                           {.role = "user", .content = row->prompt}};
    char id[64];
    snprintf(id, sizeof(id), "eval-%zu", i);
    ec_query q = {.id = id};
    if (row->system) {
        q.messages = msgs;
        q.n_messages = 2;
    } else {
        q.messages = &msgs[1];
        q.n_messages = 1;
    }
    ec_buf b;
    ec_buf_init(&b, 0);
    ec_err rc = ec_query_encode(&q, &b, err);
    char topic[200], corr[32];
    snprintf(topic, sizeof(topic), "%s/query", r->root);
    snprintf(corr, sizeof(corr), "%zu", i);
    ec_mqtt_pubprops pp = {.response_topic = reply, .corr = corr, .corr_len = strlen(corr)};
    if (!rc)
        rc = ec_mqtt_publish(m, topic, b.data, b.len, 1, false, &pp, 10000, err);
    ec_buf_free(&b);
    return rc;
}

static ec_err take_result(eval_run *r, ec_mqtt_msg *msg, size_t *got, ec_error *err)
{
    char corr[32] = {0};
    if (!msg->corr || msg->corr_len >= sizeof(corr))
        return EC_OK;
    memcpy(corr, msg->corr, msg->corr_len);
    size_t i = strtoul(corr, NULL, 10);
    if (i >= r->n || r->rows[i].done)
        return EC_OK; /* a later revision or a stranger */
    ec_result res = {0};
    ec_err rc = ec_result_decode(msg->payload, msg->len, &res, err);
    if (rc)
        return rc;
    const ec_corpus_row *row = &r->corpus.rows[i];
    eval_row *e = &r->rows[i];
    e->local_conf = -1;
    if (res.error.code) {
        rc = ec_error_set(err, EC_ERR_UNAVAILABLE, "row %s: %s: %s", row->id, res.error.code,
                          res.error.message ? res.error.message : "");
    } else {
        for (size_t k = 0; k < res.n_attempts; k++)
            if (res.attempts[k].tier_index == 0)
                e->local_conf = res.attempts[k].confidence;
        eval_judge_served(e, row, r->o->local, r->o->cloud,
                          res.tier && strcmp(res.tier, "local") == 0, res.answer);
        (*got)++;
    }
    ec_result_clear(&res);
    return rc;
}

static ec_err run_fold_real(eval_run *r, size_t fold, ec_error *err)
{
    ec_mqtt *m = NULL;
    char cid[64], reply[200];
    snprintf(cid, sizeof(cid), "ec-eval-%d-%zu", (int)getpid(), fold);
    snprintf(reply, sizeof(reply), "%s/replies/eval/%s", r->root, cid);
    ec_mqtt_opts mo = {.uri = r->uri, .client_id = cid, .clean_start = true, .queue_cap = 65536};
    ec_err rc = ec_mqtt_create(&m, &mo, err);
    if (rc || (rc = ec_mqtt_subscribe(m, reply, 1, err)) || (rc = ec_mqtt_connect(m, 5000, err)))
        goto out;
    size_t want = 0, sent = 0, got = 0, next = 0;
    for (size_t i = 0; i < r->n; i++)
        want += eval_in_fold(r, i, fold);
    uint64_t last = ec_mono_us();
    while (got < want) {
        while (sent - got < WINDOW && next < r->n) {
            if (eval_in_fold(r, next, fold)) {
                if ((rc = send_query(r, m, reply, next, err)))
                    goto out;
                sent++;
            }
            next++;
        }
        ec_mqtt_msg *msg = NULL;
        if (ec_mqtt_next(m, &msg, 200) != EC_OK) {
            if (ec_mono_us() - last > QUERY_WAIT_S * 1000000ull) {
                rc = ec_error_set(err, EC_ERR_TIMEOUT, "no result for %d s (%zu of %zu back)",
                                  QUERY_WAIT_S, got, want);
                goto out;
            }
            continue;
        }
        last = ec_mono_us();
        rc = take_result(r, msg, &got, err);
        ec_mqtt_msg_free(msg);
        if (rc)
            goto out;
    }
out:
    ec_mqtt_destroy(m);
    return rc;
}

ec_err eval_run_real(eval_run *r, ec_error *err)
{
    char bin[512];
    setenv("EC_EVAL_KEY", "sk-eval-simulated", 1);
    ec_err rc = cli_exe_dir(bin, sizeof(bin), err);
    if (rc || (rc = start_infra(r, bin, err)))
        return rc;
    for (size_t f = 0; f < eval_n_folds(r) && !rc; f++) {
        rc = start_services(r, bin, f, err);
        if (!rc)
            rc = run_fold_real(r, f, err);
        if (rc) {
            cli_dump_log(&r->router);
            cli_dump_log(&r->local);
            cli_dump_log(&r->relay);
            cli_dump_log(&r->sim);
        }
        stop_services(r);
    }
    return rc;
}
