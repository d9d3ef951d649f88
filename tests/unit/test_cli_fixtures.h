/* What the CLI tests share (test_cli_stats.c, test_cli_commands.c): the
 * built binary run as a child process with its output captured, a temporary
 * directory, and a Mosquitto of our own on a free loopback port.
 * Header-only, since each test file is its own executable; the including file
 * defines _GNU_SOURCE first. */
#ifndef TEST_CLI_FIXTURES_H
#define TEST_CLI_FIXTURES_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/proto.h"
#include "edgecascade/store.h"
#include "edgecascade/util.h"

#define CLI     EC_BIN_DIR "/edgecascade"
#define ROOT    "edgecascade/site1" /* the default topic root */
#define HOUR_MS (3600ull * 1000ull)
#define ANSWER  "PASS: 25.04 mm is within tolerance"

static char g_dir[256];
static int g_port;
static pid_t g_broker = -1;
static char g_uri[64];

/* ---- running the binary ---- */

static inline char *slurp(FILE *f)
{
    ec_buf b;
    char chunk[4096];
    size_t n;
    ec_buf_init(&b, 0);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(ec_buf_append(&b, chunk, n), EC_OK);
    char *s = ec_buf_take(&b, NULL);
    return s ? s : strdup("");
}

/* Runs "edgecascade ARGS" (ARGS shell-quoted by the caller); returns the exit
 * status and the captured stdout and stderr (caller frees). */
static inline int run_cli(char **out, char **err, const char *fmt, ...)
{
    char args[2048], cmd[4096], errpath[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof(args), fmt, ap);
    va_end(ap);
    snprintf(errpath, sizeof(errpath), "%s/stderr.txt", g_dir);
    snprintf(cmd, sizeof(cmd), "'%s' %s 2>'%s' </dev/null", CLI, args, errpath);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char *o = slurp(p);
    int st = pclose(p);
    assert_true(WIFEXITED(st));
    FILE *ef = fopen(errpath, "r");
    assert_non_null(ef);
    char *e = slurp(ef);
    fclose(ef);
    /* Under EC_SANITIZE a leak also exits 1: never let it pass for the
     * failure a test expects. */
    if (strstr(e, "Sanitizer") || strstr(e, "runtime error:"))
        fail_msg("sanitizer report from '%s':\n%s", args, e);
    if (out)
        *out = o;
    else
        free(o);
    if (err)
        *err = e;
    else
        free(e);
    return WEXITSTATUS(st);
}

static inline void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* ---- a broker of our own ---- */

static inline int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static inline bool port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

static inline void start_broker(void)
{
    char conf[320], log[320], text[256];
    g_port = free_port();
    snprintf(g_uri, sizeof(g_uri), "tcp://127.0.0.1:%d", g_port);
    snprintf(conf, sizeof(conf), "%s/mosquitto.conf", g_dir);
    snprintf(log, sizeof(log), "%s/mosquitto.log", g_dir);
    snprintf(text, sizeof(text), "listener %d 127.0.0.1\nallow_anonymous true\n", g_port);
    write_file(conf, text);
    g_broker = fork();
    assert_true(g_broker >= 0);
    if (g_broker == 0) {
        FILE *l = freopen(log, "w", stderr);
        (void)l;
        dup2(2, 1);
        execl("/usr/sbin/mosquitto", "mosquitto", "-c", conf, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 100 && !port_open(g_port); i++)
        ec_sleep_ms(50);
    assert_true(port_open(g_port));
}

static inline void stop_broker(void)
{
    if (g_broker > 0) {
        kill(g_broker, SIGTERM);
        waitpid(g_broker, NULL, 0);
        g_broker = -1;
    }
}

static inline json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j)
        fail_msg("not JSON (%s): %s", je.text, text);
    return j;
}

#define assert_near(a, b) assert_true(fabs((a) - (b)) < 1e-9)

/* The temporary directory every file of a test run goes into. */
static inline int cli_dir_setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/ec-cli-XXXXXX");
    return mkdtemp(g_dir) ? 0 : -1;
}

static inline int cli_dir_teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

#endif
