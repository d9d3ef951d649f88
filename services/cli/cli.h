/* edgecascade, the command-line tool: private interfaces between its files.
 *
 * main.c pulls the global options (--config, --broker, --help, --version) out
 * of argv wherever they stand, loads the configuration and hands the rest of
 * the arguments to one command. Each command parses its own options with the
 * small helpers below and returns one of the CLI_EXIT_* codes; every failure
 * message goes to stderr, every result to stdout, so scripts can pipe it. */
#ifndef EC_CLI_H
#define EC_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "edgecascade/config.h"

enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_FAIL = 1,  /* runtime failure: broker, router, database, model server */
    CLI_EXIT_USAGE = 2, /* bad arguments or a bad configuration file */
};

typedef struct cli_ctx {
    ec_config cfg;           /* loaded (or defaults), with --broker applied */
    const char *config_path; /* --config, or NULL */
    const char *broker;      /* --broker as given, or NULL (for commands that load cfg) */
} cli_ctx;

/* The arguments after the command name, walked by cli_next(). */
typedef struct cli_args {
    const char *cmd; /* for messages: "query", "stats", ... */
    int argc;
    char **argv;
    int i;
    bool no_more_opts; /* after "--" */
} cli_args;

/* One step of the walk. Returns false at the end. Otherwise *arg is the
 * current argument, and *is_opt tells whether it is an option ("--x"). */
bool cli_next(cli_args *a, const char **arg, bool *is_opt);
/* If the current option is name ("--name" or "--name=value"), stores its value
 * (taking the next argument when needed) and returns 1; 0 when it is another
 * option; -1 (after printing the usage error) when the value is missing. */
int cli_opt_value(cli_args *a, const char *arg, const char *name, const char **val);

/* Prints "edgecascade <cmd>: <message>" and a hint to stderr; returns CLI_EXIT_USAGE. */
int cli_usage_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Strict number parsers: the whole string must be a number within [min, max]. */
bool cli_parse_long(const char *s, long min, long max, long *out);
bool cli_parse_double(const char *s, double min, double max, double *out);
/* "90s", "30m", "1h", "7d", "2w" -> milliseconds. */
bool cli_parse_duration_ms(const char *s, uint64_t *out);

/* Commands. argc/argv hold only the command's own arguments. */
int cli_cmd_query(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_stats(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_models(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_config(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_calibrate(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_eval(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_status(cli_ctx *ctx, int argc, char **argv);
int cli_cmd_tail(cli_ctx *ctx, int argc, char **argv);
/* doctor loads the configuration itself (a bad file is one of its findings). */
int cli_cmd_doctor(cli_ctx *ctx, int argc, char **argv);

/* A clean-session MQTT client for a command (cli_mqtt.c): client id
 * edgecascade-cli-<name>-<pid>, the config's credentials as broker user
 * "cli" (ec_service_credentials: fills cfg->username/password) and TLS files,
 * subscribed to filter (NULL: none) and connected within timeout_ms. On
 * failure *connected (may be NULL) tells whether the login itself worked,
 * i.e. the broker refused the subscription. */
struct ec_mqtt;
ec_err cli_mqtt_open(ec_config *cfg, const char *name, const char *filter, int timeout_ms,
                     struct ec_mqtt **out, bool *connected, ec_error *err);

/* Per-command help text (stdout for --help). */
void cli_help_query(void);
void cli_help_stats(void);
void cli_help_models(void);
void cli_help_config(void);
void cli_help_calibrate(void);
void cli_help_eval(void);
void cli_help_status(void);
void cli_help_tail(void);
void cli_help_doctor(void);

/* Shared by calibrate and eval (cmd_calibrate.c). */
struct ec_corpus;
struct ec_calib_sample;
struct ec_calib;
/* One sample per corpus row: raw signal of the local answer, both labels and
 * costs. EC_ERR_NOTFOUND when a model is missing from the corpus. */
ec_err cli_corpus_samples(const struct ec_corpus *c, const char *local, const char *cloud,
                          struct ec_calib_sample **out, ec_error *err);
void cli_print_curve(const struct ec_calib *c);
/* Agreement of two short answers: 1 agree, 0 differ, -1 not both short. */
int cli_short_agreement(const char *a, const char *b);

#endif
