/* edgecascade: ask the cascade a question, read the decision log's savings,
 * list the models a local server offers, and write or check configuration.
 *
 * Global options may stand before or after the command. They are pulled out
 * of argv first, so each command sees only its own arguments; "--" ends option
 * parsing (for a question that starts with a dash). Exit codes: 0 ok, 1 a
 * runtime failure, 2 a usage or configuration error. */
#define _GNU_SOURCE /* asprintf */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "edgecascade/log.h"

#ifndef EC_VERSION
#define EC_VERSION "0.0.0"
#endif

typedef struct command {
    const char *name;
    int (*run)(cli_ctx *ctx, int argc, char **argv);
    void (*help)(void);
    bool needs_config; /* config --check loads its own file */
    const char *summary;
} command;

static const command commands[] = {
    {"query", cli_cmd_query, cli_help_query, true, "ask a question through the router"},
    {"stats", cli_cmd_stats, cli_help_stats, true,
     "cost savings and latency from the decision log"},
    {"models", cli_cmd_models, cli_help_models, true, "models offered by the local tiers' servers"},
    {"status", cli_cmd_status, cli_help_status, true,
     "services online, cloud breakers, offline queue depth"},
    {"tail", cli_cmd_tail, cli_help_tail, true, "follow the router's decisions live"},
    {"doctor", cli_cmd_doctor, cli_help_doctor, false,
     "check config, broker, services, model servers, keys, disk and store"},
    {"config", cli_cmd_config, cli_help_config, false, "print an example config or check one"},
    {"calibrate", cli_cmd_calibrate, cli_help_calibrate, true,
     "fit the gate's calibration on recorded answers or the decision log"},
    {"eval", cli_cmd_eval, cli_help_eval, false,
     "measure the gate on a corpus of recorded answers"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: edgecascade [--config FILE] [--broker URI] <command> [options]\n"
                 "\n"
                 "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n"
                 "global options (before or after the command):\n"
                 "  --config FILE   YAML configuration (default: built-in defaults)\n"
                 "  --broker URI    MQTT broker, overrides the config (e.g. tcp://127.0.0.1:1883)\n"
                 "  --help, -h      this help, or a command's help after its name\n"
                 "  --version, -V   print the version\n"
                 "\n"
                 "exit status: 0 ok, 1 runtime failure, 2 usage or configuration error\n"
                 "run 'edgecascade <command> --help' for a command's options\n");
}

static const command *find_command(const char *name)
{
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]; advances *i past the
 * value. Returns 1 on a match, 0 otherwise, -1 when the value is missing. */
static int global_value(int argc, char **argv, int *i, const char *name, const char **val)
{
    const char *s = argv[*i];
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0)
        return 0;
    if (s[n] == '=') {
        *val = s + n + 1;
        return 1;
    }
    if (s[n] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *val = argv[++*i];
    return 1;
}

/* Paho wants a scheme; "host:port" is what people type. */
static char *broker_uri(const char *s)
{
    if (strstr(s, "://"))
        return strdup(s);
    char *out = NULL;
    if (asprintf(&out, "tcp://%s", s) < 0)
        return NULL;
    return out;
}

int main(int argc, char **argv)
{
    int rc = CLI_EXIT_USAGE;
    cli_ctx ctx = {0};
    bool cfg_loaded = false;
    const char *broker = NULL;
    bool help = false;
    bool version = false;
    const command *cmd = NULL;
    const char *cmd_name = NULL;
    char **rest = calloc((size_t)argc + 1, sizeof(*rest));
    int n_rest = 0;
    bool no_more_opts = false;

    ec_log_init("edgecascade", EC_LOG_WARN);
    if (!rest) {
        fputs("edgecascade: out of memory\n", stderr);
        return CLI_EXIT_FAIL;
    }

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = NULL;
        int m;
        if (no_more_opts || a[0] != '-' || a[1] == '\0') {
            if (!cmd_name)
                cmd_name = a;
            else
                rest[n_rest++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            no_more_opts = true;
            if (cmd_name)
                rest[n_rest++] = argv[i]; /* the command's own "--" */
            continue;
        }
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            help = true;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            version = true;
        } else if ((m = global_value(argc, argv, &i, "--config", &val)) != 0) {
            if (m < 0) {
                rc = cli_usage_error(NULL, "--config needs a file name");
                goto out;
            }
            ctx.config_path = val;
        } else if ((m = global_value(argc, argv, &i, "--broker", &val)) != 0) {
            if (m < 0 || !*val) {
                rc = cli_usage_error(NULL, "--broker needs a URI (e.g. tcp://127.0.0.1:1883)");
                goto out;
            }
            broker = val;
            ctx.broker = val;
        } else if (!cmd_name) {
            rc = cli_usage_error(NULL, "unknown option %s (command options go after the command)",
                                 a);
            goto out;
        } else {
            rest[n_rest++] = argv[i];
        }
    }

    if (version) {
        printf("edgecascade %s\n", EC_VERSION);
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (cmd_name && !(cmd = find_command(cmd_name))) {
        if (help) {
            usage(stdout);
            rc = CLI_EXIT_OK;
            goto out;
        }
        rc = cli_usage_error(NULL, "unknown command '%s'", cmd_name);
        goto out;
    }
    if (help) {
        if (cmd)
            cmd->help();
        else
            usage(stdout);
        rc = CLI_EXIT_OK;
        goto out;
    }
    if (!cmd) {
        usage(stderr);
        rc = CLI_EXIT_USAGE;
        goto out;
    }

    if (cmd->needs_config) {
        ec_error err = {0};
        if (ec_config_load(&ctx.cfg, ctx.config_path, &err) != EC_OK ||
            ec_config_validate(&ctx.cfg, &err) != EC_OK) {
            /* The loader's message already names the file, line and key. */
            fprintf(stderr, "edgecascade: bad configuration: %s\n",
                    err.msg[0] ? err.msg : ec_strerror(err.code));
            rc = CLI_EXIT_USAGE;
            cfg_loaded = true; /* a partial load still owns memory */
            goto out;
        }
        cfg_loaded = true;
        if (broker) {
            char *b = broker_uri(broker);
            if (!b) {
                fputs("edgecascade: out of memory\n", stderr);
                rc = CLI_EXIT_FAIL;
                goto out;
            }
            free(ctx.cfg.broker);
            ctx.cfg.broker = b;
        }
    }
    rc = cmd->run(&ctx, n_rest, rest);

out:
    if (cfg_loaded)
        ec_config_free(&ctx.cfg);
    free(rest);
    return rc;
}
