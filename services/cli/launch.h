/* A small process launcher for `edgecascade eval`: a private Mosquitto, the
 * simulator and the three services as child processes under one temporary
 * directory, each with its log file there. Modelled on the integration
 * harness (tests/integration/harness.c), without cmocka. */
#ifndef CLI_LAUNCH_H
#define CLI_LAUNCH_H

#include <stdbool.h>
#include <sys/types.h>

#include "edgecascade/err.h"

typedef struct cli_proc {
    pid_t pid;
    char name[32];
    char log[600];
} cli_proc;

/* Directory of the running executable (where the services are built). */
ec_err cli_exe_dir(char *out, size_t cap, ec_error *err);
int cli_free_port(void);
/* Starts argv[0] (a path) with stdout/stderr to <dir>/<name>.log. */
ec_err cli_spawn(cli_proc *p, const char *dir, const char *name, char *const argv[], ec_error *err);
/* Waits until a TCP port on 127.0.0.1 accepts connections. */
ec_err cli_wait_port(cli_proc *p, int port, int timeout_ms, ec_error *err);
/* Waits until a file holds a positive integer (a --port-file); returns it. */
ec_err cli_wait_port_file(cli_proc *p, const char *path, int timeout_ms, int *port, ec_error *err);
/* Waits for the retained online status of service on <root>/status/<service>
 * carrying p's pid. */
ec_err cli_wait_online(cli_proc *p, const char *uri, const char *root, const char *service,
                       int timeout_ms, ec_error *err);
bool cli_alive(cli_proc *p);
/* SIGTERM, then SIGKILL after 15 s; returns the wait status (-1: none). */
int cli_stop(cli_proc *p);
/* Prints the last lines of p's log to stderr. */
void cli_dump_log(const cli_proc *p);

#endif
