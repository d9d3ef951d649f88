/* What the tests of the operator's commands against the real stack share
 * (test_cli_ops.c, test_cli_doctor_secure.c): the current test's stack, the
 * built `edgecascade` binary run as a child process (waited for, or followed
 * while it runs), and reading the lines of `doctor`'s report. Header-only,
 * since each test file is its own executable; the including file defines
 * _GNU_SOURCE first. */
#ifndef TEST_CLI_OPS_FIXTURES_H
#define TEST_CLI_OPS_FIXTURES_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/util.h"
#include "harness.h"

#define CLI EC_BIN_DIR "/edgecascade"

/* The current test's stack, global so that a failed assertion (which
 * longjmps out of the test) still gets its processes stopped by teardown. */
static ech g_h;
static bool g_live;

static inline int teardown(void **state)
{
    (void)state;
    if (g_live) {
        g_live = false;
        ech_teardown(&g_h);
    }
    return 0;
}

static inline void stack_done(void)
{
    g_live = false;
    ech_teardown(&g_h);
}

static inline void start_stack(ech *h)
{
    ech_init(h, "cliops");
    g_live = true;
    ech_start_broker(h);
    ech_start_sim(h, NULL);
    ech_write_config(h, NULL);
    ech_start_services(h);
    ech_connect_client(h);
}

static inline char *read_all(const char *path)
{
    size_t len = 0;
    char *s = ec_read_file(path, 1 << 20, &len);
    return s ? s : strdup("");
}

static inline void no_sanitizer_report(const char *what, const char *err)
{
    if (strstr(err, "Sanitizer") || strstr(err, "runtime error:"))
        fail_msg("sanitizer report from %s:\n%s", what, err);
}

/* A CLI child with stdout and stderr in files of the test dir. */
typedef struct child {
    pid_t pid;
    char out[600], err[600];
} child;

static inline void spawn_cli(ech *h, child *c, const char *name, char *const args[])
{
    char *argv[16];
    size_t n = 0;
    argv[n++] = CLI;
    argv[n++] = "--config";
    argv[n++] = h->config;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    snprintf(c->out, sizeof(c->out), "%s/%s.out", h->dir, name);
    snprintf(c->err, sizeof(c->err), "%s/%s.err", h->dir, name);
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int o = open(c->out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(c->err, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int in = open("/dev/null", O_RDONLY);
        if (o < 0 || e < 0 || in < 0)
            _exit(126);
        dup2(in, 0);
        dup2(o, 1);
        dup2(e, 2);
        execv(CLI, argv);
        _exit(127);
    }
}

/* Waits up to timeout_ms for the child's exit; SIGKILLs it and fails after. */
static inline int wait_cli(child *c, int timeout_ms)
{
    int st = 0;
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        if (waitpid(c->pid, &st, WNOHANG) == c->pid) {
            c->pid = 0;
            assert_true(WIFEXITED(st));
            return WEXITSTATUS(st);
        }
        ec_sleep_ms(20);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, &st, 0);
    c->pid = 0;
    char *out = read_all(c->out), *err = read_all(c->err);
    fail_msg("edgecascade did not exit within %d ms\nstdout:\n%s\nstderr:\n%s", timeout_ms, out,
             err);
    return -1;
}

static inline void wait_for_text(const char *path, const char *text, int timeout_ms)
{
    for (int waited = 0; waited < timeout_ms; waited += 20) {
        char *s = read_all(path);
        bool found = strstr(s, text) != NULL;
        free(s);
        if (found)
            return;
        ec_sleep_ms(20);
    }
    char *s = read_all(path);
    fail_msg("'%s' did not appear in %s within %d ms; it holds:\n%s", text, path, timeout_ms, s);
}

/* Runs the CLI to completion; returns its exit status and stdout (caller frees). */
static inline int run_cli(ech *h, const char *config, char **out, char *const args[])
{
    child c;
    char *argv[16];
    size_t n = 0;
    for (size_t i = 0; args[i] && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    const char *saved = NULL;
    char keep[512];
    if (config) {
        snprintf(keep, sizeof(keep), "%s", h->config);
        saved = keep;
        snprintf(h->config, sizeof(h->config), "%s", config);
    }
    spawn_cli(h, &c, "cli", argv);
    if (saved)
        snprintf(h->config, sizeof(h->config), "%s", saved);
    int rc = wait_cli(&c, 25000);
    char *err = read_all(c.err);
    no_sanitizer_report("edgecascade", err);
    free(err);
    *out = read_all(c.out);
    return rc;
}

/* ---- doctor's report ---- */

/* The line of a check ("OK    service local ..."), or fails. */
static inline const char *check_line(const char *out, const char *check, char *buf, size_t cap)
{
    for (const char *p = out; p && *p;) {
        const char *eol = strchr(p, '\n');
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        if (len > 6 && strncmp(p + 6, check, strlen(check)) == 0 && p[6 + strlen(check)] == ' ') {
            snprintf(buf, cap, "%.*s", (int)len, p);
            return buf;
        }
        p = eol ? eol + 1 : NULL;
    }
    fail_msg("no '%s' check in:\n%s", check, out);
    return NULL;
}

static inline void assert_state(const char *out, const char *check, const char *state)
{
    char line[1024];
    check_line(out, check, line, sizeof(line));
    if (strncmp(line, state, strlen(state)) != 0 || line[strlen(state)] != ' ')
        fail_msg("expected %s for '%s', got: %s\n(whole output:\n%s)", state, check, line, out);
}

#endif
