/* edgecascade config: the documented example file, and a check an integrator
 * can run before deploying a file to the device (exit 2 names the problem). */
#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_help_config(void)
{
    printf("usage: edgecascade config --example\n"
           "       edgecascade config --check [FILE]\n"
           "\n"
           "--example        print the example YAML with every key, default and description\n"
           "--check FILE     load and validate FILE (default: the --config file); prints\n"
           "                 'ok', or the error naming the line and key and exits 2\n");
}

static int check(const char *path)
{
    ec_config cfg;
    ec_error err = {0};
    memset(&cfg, 0, sizeof(cfg));
    ec_err rc = ec_config_load(&cfg, path, &err);
    if (rc == EC_OK)
        rc = ec_config_validate(&cfg, &err);
    ec_config_free(&cfg);
    if (rc != EC_OK) {
        fprintf(stderr, "edgecascade config: %s\n", err.msg[0] ? err.msg : ec_strerror(rc));
        return CLI_EXIT_USAGE;
    }
    printf("ok\n");
    return CLI_EXIT_OK;
}

int cli_cmd_config(cli_ctx *ctx, int argc, char **argv)
{
    cli_args a = {.cmd = "config", .argc = argc, .argv = argv};
    const char *arg, *file = NULL;
    bool is_opt, example = false, check_it = false;
    while (cli_next(&a, &arg, &is_opt)) {
        if (!is_opt) {
            if (!check_it || file)
                return cli_usage_error("config", "unexpected argument '%s'", arg);
            file = arg;
        } else if (strcmp(arg, "--example") == 0) {
            example = true;
        } else if (strcmp(arg, "--check") == 0) {
            check_it = true;
        } else if (strncmp(arg, "--check=", 8) == 0) {
            check_it = true;
            file = arg + 8;
        } else {
            return cli_usage_error("config", "unknown option %s", arg);
        }
    }
    if (example == check_it)
        return cli_usage_error("config", "give exactly one of --example or --check FILE");
    if (example) {
        ec_config_write_example(stdout);
        return fflush(stdout) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    if (!file)
        file = ctx->config_path;
    if (!file || !*file)
        return cli_usage_error("config", "--check needs a FILE (or --config FILE)");
    return check(file);
}
