/* edgecascade-sim: a scriptable stand-in for OpenAI, Anthropic and Ollama
 * model servers, for tests and the demo (no real model runs on these
 * machines). Everything it serves says so: X-Simulated: true on every
 * response and "simulated": true in every JSON body.
 *
 * Start-up blocks SIGTERM/SIGINT before any thread exists, so every
 * libmicrohttpd thread inherits the mask and the main thread alone takes the
 * signal in sigwait(); no handler runs in signal context. */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "edgecascade/log.h"
#include "sim.h"
#include "sim_corpus.h"
#include "sim_replay.h"

#define EXIT_USAGE 2

static void usage(FILE *f)
{
    fputs("usage: edgecascade-sim --port N [--bind ADDR] [--script FILE] [--port-file FILE]\n"
          "\n"
          "Simulated model server (OpenAI, Anthropic and Ollama APIs) for tests and demos.\n"
          "\n"
          "  --port N          TCP port; 0 picks a free one\n"
          "  --bind ADDR       IPv4 address to listen on (default 127.0.0.1)\n"
          "  --script FILE     JSON script: models, rules, faults (see services/sim/README.md);\n"
          "                    without it: llama3.2-1b, llama3.1-8b, gpt-4o-mini,\n"
          "                    claude-3-5-haiku-latest with default answers\n"
          "  --port-file FILE  once listening, write the port and a newline to FILE\n"
          "  --log-level L     error, warn, info (default; one line per request), debug\n"
          "  --replay FILE     replay mode: answer the recorded prompts of a corpus (JSONL)\n"
          "                    with recorded answers (OpenAI API only; see README.md)\n"
          "  --replay-map M    served=corpusmodel[,served=corpusmodel...] (with --replay)\n"
          "  --replay-latency-scale X  sleep the recorded latency x X (default 0)\n"
          "  --replay-dir DIR  corpus mode: POST /sim/serve {\"file\": \"<api>/<case>.json\"}\n"
          "                    answers the next request to the case's endpoint with the\n"
          "                    published body in DIR verbatim; GET /sim/received lists what\n"
          "                    was sent (see sim_corpus.h)\n"
          "  --help, --version\n"
          "\n"
          "Endpoints: POST /v1/chat/completions, GET /v1/models, POST /v1/messages,\n"
          "POST /api/chat, GET /api/tags, POST|GET /sim/faults, POST /sim/models,\n"
          "GET|DELETE /sim/stats.\n",
          f);
}

/* Written to a temporary name and renamed, so a reader never sees half a port. */
static int write_port_file(const char *path, unsigned port)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
        return -1;
    FILE *f = fopen(tmp, "w");
    if (!f)
        return -1;
    int bad = fprintf(f, "%u\n", port) < 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        unlink(tmp);
        return -1;
    }
    return 0;
}

static bool parse_port(const char *s, uint16_t *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *s == '\0' || *end != '\0' || v < 0 || v > 65535)
        return false;
    *out = (uint16_t)v;
    return true;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"port", required_argument, NULL, 'p'},
        {"bind", required_argument, NULL, 'b'},
        {"script", required_argument, NULL, 's'},
        {"port-file", required_argument, NULL, 'f'},
        {"log-level", required_argument, NULL, 'l'},
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"replay", required_argument, NULL, 'r'},
        {"replay-map", required_argument, NULL, 'm'},
        {"replay-latency-scale", required_argument, NULL, 'x'},
        {"replay-dir", required_argument, NULL, 'd'},
        {NULL, 0, NULL, 0},
    };
    const char *bind = "127.0.0.1", *script_path = NULL, *port_file = NULL;
    const char *replay_path = NULL, *replay_map = NULL, *corpus_dir = NULL;
    sim_corpus *corpus = NULL;
    double replay_scale = 0;
    sim_replay *replay = NULL;
    uint16_t port = 0;
    bool have_port = false;
    ec_log_level level = EC_LOG_INFO;
    ec_log_init("sim", level);

    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'p':
            if (!parse_port(optarg, &port)) {
                fprintf(stderr, "edgecascade-sim: --port %s: expected 0..65535\n", optarg);
                return EXIT_USAGE;
            }
            have_port = true;
            break;
        case 'b':
            bind = optarg;
            break;
        case 's':
            script_path = optarg;
            break;
        case 'f':
            port_file = optarg;
            break;
        case 'l':
            if (ec_log_level_parse(optarg, &level) != 0) {
                fprintf(stderr, "edgecascade-sim: --log-level %s: unknown level\n", optarg);
                return EXIT_USAGE;
            }
            ec_log_set_level(level);
            break;
        case 'r':
            replay_path = optarg;
            break;
        case 'm':
            replay_map = optarg;
            break;
        case 'd':
            corpus_dir = optarg;
            break;
        case 'x': {
            char *end;
            replay_scale = strtod(optarg, &end);
            if (*end || !(replay_scale >= 0 && replay_scale <= 100)) {
                fprintf(stderr, "edgecascade-sim: --replay-latency-scale %s: expected 0..100\n",
                        optarg);
                return EXIT_USAGE;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("edgecascade-sim %s\n", EC_VERSION);
            return 0;
        default:
            usage(stderr);
            return EXIT_USAGE;
        }
    }
    if (optind < argc || !have_port) {
        fputs(have_port ? "edgecascade-sim: unexpected argument\n"
                        : "edgecascade-sim: --port is required\n",
              stderr);
        usage(stderr);
        return EXIT_USAGE;
    }

    ec_error err = {0};
    sim_script *script = NULL;
    ec_err rc;
    if (replay_path) {
        if (script_path || !replay_map) {
            fputs("edgecascade-sim: --replay needs --replay-map and excludes --script\n", stderr);
            return EXIT_USAGE;
        }
        if (sim_replay_load(replay_path, replay_map, replay_scale, &replay, &err) ||
            sim_replay_script(replay, &script, &err)) {
            ec_log_error("replay: %s", err.msg);
            sim_replay_free(replay);
            return EXIT_USAGE;
        }
    } else {
        rc = script_path ? sim_script_load(script_path, &script, &err)
                         : sim_script_defaults(&script, &err);
        if (rc) {
            ec_log_error("script: %s", err.msg);
            return EXIT_USAGE;
        }
    }
    static sim_server srv; /* outlives every connection thread */
    if (corpus_dir && sim_corpus_create(corpus_dir, &corpus, &err)) {
        ec_log_error("%s", err.msg);
        sim_script_free(script);
        sim_replay_free(replay);
        return 1;
    }
    if (sim_server_init(&srv, script, &err)) {
        ec_log_error("%s", err.msg);
        sim_replay_free(replay);
        sim_corpus_free(corpus);
        return 1;
    }
    srv.replay = replay;
    srv.corpus = corpus;

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    int status = 1;
    uint16_t bound = 0;
    struct MHD_Daemon *d = sim_http_start(&srv, bind, port, &bound, &err);
    if (!d) {
        ec_log_error("%s", err.msg);
        goto out;
    }
    ec_log_info("listening on http://%s:%u (%zu models, %zu rules%s%s)", bind, (unsigned)bound,
                script->n_models, script->n_rules,
                replay_path   ? ", replay "
                : script_path ? ", script "
                              : ", built-in",
                replay_path   ? replay_path
                : script_path ? script_path
                              : "");
    if (port_file && write_port_file(port_file, bound) != 0) {
        ec_log_error("--port-file %s: %s", port_file, strerror(errno));
        goto stop;
    }

    int sig = 0;
    while (sigwait(&set, &sig) != 0)
        ;
    ec_log_info("signal %d: stopping", sig);
    status = 0;
stop:
    atomic_store(&srv.stopping, true);
    MHD_stop_daemon(d);
out:
    sim_server_clear(&srv);
    sim_replay_free(replay);
    sim_corpus_free(corpus);
    return status;
}
