/* Integration harness, child processes: each started with its log file in
 * the test's directory (under a sanitizer or valgrind wrapper when the
 * environment asks for one), remembered so that none outlives the test
 * binary, stopped with SIGTERM and then SIGKILL, and at teardown checked for
 * a clean exit and sanitizer reports. Apart from harness.c (what the stack is
 * made of) because this is the process plumbing under all of it. */
#define _GNU_SOURCE /* asprintf */
#include "harness.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/journal.h"
#include "edgecascade/util.h"

#include "harness_internal.h"

#define ECH_MAX_WRAP 16
static size_t wrapper_words(char *copy, char *words[ECH_MAX_WRAP])
{
    size_t n = 0;
    for (char *save = NULL, *w = strtok_r(copy, " \t", &save); w && n < ECH_MAX_WRAP;
         w = strtok_r(NULL, " \t", &save))
        words[n++] = w;
    return n;
}

static bool wrapped(void)
{
    const char *w = getenv("EC_SERVICE_WRAPPER");
    return w && *w;
}

/* The child's environment: ours, with sanitizer options that send every
 * report to <dir>/<name>.san.<pid> (scanned by ech_teardown) and stop at the
 * first error. Built before fork: the test process has threads, so the
 * child only calls exec. A caller's own options stay in front (ours win). */
static char **child_env(ech *h, const char *name, char *own[3])
{
    extern char **environ;
    size_t n = 0;
    while (environ[n])
        n++;
    char **env = calloc(n + 3, sizeof(*env));
    assert_non_null(env);
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0 &&
            strncmp(environ[i], "UBSAN_OPTIONS=", 14) != 0)
            env[k++] = environ[i];
    const char *ua = getenv("ASAN_OPTIONS"), *uu = getenv("UBSAN_OPTIONS");
    char path[400];
    snprintf(path, sizeof(path), "%s/%s.san", h->dir, name);
    assert_true(asprintf(&own[0], "ASAN_OPTIONS=%s%slog_path=%s:halt_on_error=1:detect_leaks=1",
                         ua ? ua : "", ua && *ua ? ":" : "", path) > 0);
    assert_true(asprintf(&own[1],
                         "UBSAN_OPTIONS=%s%slog_path=%s:halt_on_error=1:print_stacktrace=1",
                         uu ? uu : "", uu && *uu ? ":" : "", path) > 0);
    own[2] = NULL;
    env[k++] = own[0];
    env[k++] = own[1];
    env[k] = NULL;
    return env;
}

/* Every process a test started, killed when the test binary exits: a failed
 * assertion skips the test's teardown, and the broker and services it
 * started would otherwise outlive the binary and load the machine for every
 * test (and benchmark) after it. waitpid tells a child still running from a
 * pid already reaped (ECHILD), so nothing else is ever killed. */
static pid_t g_children[1024];
static size_t g_n_children;

static void kill_children(void)
{
    for (size_t i = 0; i < g_n_children; i++)
        if (waitpid(g_children[i], NULL, WNOHANG) == 0)
            kill(g_children[i], SIGKILL);
}

static void remember_child(pid_t pid)
{
    if (g_n_children == 0)
        atexit(kill_children);
    if (g_n_children < sizeof(g_children) / sizeof(g_children[0]))
        g_children[g_n_children++] = pid;
}

void ech_spawn(ech *h, ech_proc *p, const char *name, char *const argv[])
{
    /* only our programs are instrumented ("mosquitto", "mosquitto-central") */
    bool ours = strncmp(name, "mosquitto", 9) != 0;
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", h->dir, name);

    char *own[3] = {NULL, NULL, NULL};
    char **env = child_env(h, name, own);
    char *wcopy = strdup(ours && wrapped() ? getenv("EC_SERVICE_WRAPPER") : "");
    char *words[ECH_MAX_WRAP];
    size_t nw = wrapper_words(wcopy, words);
    size_t na = 0;
    while (argv[na])
        na++;
    char **args = calloc(nw + na + 1, sizeof(*args));
    assert_non_null(args);
    for (size_t i = 0; i < nw; i++)
        args[i] = words[i];
    for (size_t i = 0; i < na; i++)
        args[nw + i] = argv[i];
    /* execve does not search PATH: a bare wrapper name is looked up here. */
    char exe[512];
    if (nw && !strchr(args[0], '/'))
        snprintf(exe, sizeof(exe), "/usr/bin/%s", args[0]);
    else
        snprintf(exe, sizeof(exe), "%s", args[0]);

    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        fail_msg("fork: %s", strerror(errno));
    if (pid == 0) {
        /* If the test binary crashes. Mosquitto started as root drops to
         * user mosquitto, which clears this; kill_children covers it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(127);
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execve(exe, args, env);
        dprintf(2, "exec %s: %s\n", exe, strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    remember_child(pid);
    free(args);
    free(wcopy);
    free(env);
    free(own[0]);
    free(own[1]);
}

bool ech_alive(ech_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->reaped = true;
        p->status = st;
        return false;
    }
    return true;
}

/* How long a process may take to exit after SIGTERM: the router gives
 * in-flight queries 5 s; valgrind's leak check at exit takes a while. */
static int stop_wait_ms(void)
{
    return wrapped() ? 120000 : 15000;
}

static int stop_proc(ech_proc *p)
{
    int status = -1;
    if (p->pid <= 0)
        return -1;
    if (p->reaped) {
        p->pid = 0;
        return p->status;
    }
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < stop_wait_ms(); waited += 20) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            goto done;
        ec_sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
    p->stop_kill = true;
done:
    p->reaped = true;
    p->status = status;
    p->pid = 0;
    return status;
}

void ech_kill9(ech_proc *p)
{
    if (p->pid <= 0 || p->reaped)
        return;
    kill(p->pid, SIGKILL);
    int st = 0;
    waitpid(p->pid, &st, 0);
    p->reaped = true;
    p->status = st;
}

int ech_stop(ech_proc *p)
{
    return stop_proc(p);
}

void ech_dump_logs(ech *h)
{
    ech_proc *ps[] = {&h->broker, &h->sim, &h->router, &h->local, &h->relay};
    for (size_t i = 0; i < 5; i++) {
        if (!ps[i]->log[0])
            continue;
        size_t len = 0;
        char *text = ec_read_file(ps[i]->log, 1 << 20, &len);
        if (!text)
            continue;
        const char *tail = len > 6000 ? text + len - 6000 : text;
        fprintf(stderr, "----- %s (%s) -----\n%s\n", ps[i]->name, ps[i]->log, tail);
        free(text);
    }
}

/* Appends what is wrong with how p ended to report (nothing when it is fine). */
static void check_exit(const ech_proc *p, ec_buf *report)
{
    if (!p->name[0] || !p->reaped)
        return;
    int st = p->status;
    if (p->stop_kill)
        ec_buf_printf(report, "%s did not exit within %d ms of SIGTERM (killed)\n", p->name,
                      stop_wait_ms());
    else if (WIFEXITED(st) && WEXITSTATUS(st) != 0)
        ec_buf_printf(report, "%s exited with status %d\n", p->name, WEXITSTATUS(st));
    else if (WIFSIGNALED(st) && WTERMSIG(st) != SIGKILL) /* SIGKILL: sent by the test */
        ec_buf_printf(report, "%s died of signal %d (%s)\n", p->name, WTERMSIG(st),
                      strsignal(WTERMSIG(st)));
}

/* Appends every sanitizer report left in the test dir (<name>.san.<pid>). */
static void collect_sanitizer_logs(ech *h, ec_buf *report)
{
    DIR *d = opendir(h->dir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strstr(e->d_name, ".san."))
            continue;
        char path[600];
        snprintf(path, sizeof(path), "%s/%s", h->dir, e->d_name);
        size_t len = 0;
        char *text = ec_read_file(path, 1 << 20, &len);
        if (text && len)
            ec_buf_printf(report, "----- sanitizer report %s -----\n%.*s\n", path,
                          (int)(len > 12000 ? 12000 : len), text);
        free(text);
    }
    closedir(d);
}

void ech_teardown(ech *h)
{
    if (h->client) {
        ec_mqtt_destroy(h->client);
        h->client = NULL;
    }
    ech_proc *ps[] = {&h->router, &h->local, &h->relay, &h->sim, &h->broker};
    for (size_t i = 0; i < 5; i++)
        stop_proc(ps[i]);
    ec_buf report;
    ec_buf_init(&report, 0);
    for (size_t i = 0; i < 4; i++) /* not the broker: not ours */
        check_exit(ps[i], &report);
    collect_sanitizer_logs(h, &report);
    if (report.len) {
        ech_dump_logs(h);
        fprintf(stderr, "%s", ec_buf_cstr(&report));
        fprintf(stderr, "test files kept in %s\n", h->dir);
        ec_buf_free(&report);
        fail_msg("a service ended badly or reported memory errors (see above)");
    }
    ec_buf_free(&report);
    if (getenv("EC_KEEP_TEST_DIR")) {
        fprintf(stderr, "test files kept in %s\n", h->dir);
        return;
    }
    char cmd[400];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", h->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", h->dir);
}

long ech_rss_kb(const ech_proc *p)
{
    char path[64];
    snprintf(path, sizeof(path), "/proc/%d/status", (int)p->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}
