#include "edgecascade/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static char g_component[64] = "edgecascade";
static ec_log_level g_level = EC_LOG_INFO;
static const char *const level_names[] = {"error", "warn", "info", "debug"};

void ec_log_init(const char *component, ec_log_level level)
{
    /* Copied: callers often build the name in a buffer that goes away. */
    snprintf(g_component, sizeof(g_component), "%s", component);
    g_level = level;
}

void ec_log_set_level(ec_log_level level)
{
    g_level = level;
}

int ec_log_level_parse(const char *s, ec_log_level *out)
{
    for (int i = 0; i <= EC_LOG_DEBUG; i++) {
        if (s && strcasecmp(s, level_names[i]) == 0) {
            *out = (ec_log_level)i;
            return 0;
        }
    }
    return -1;
}

void ec_log(ec_log_level level, const char *fmt, ...)
{
    if (level > g_level)
        return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char line[2048];
    int n = snprintf(line, sizeof(line),
                     "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %s %s: ", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     ts.tv_nsec / 1000000, g_component, level_names[level]);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    /* One fputs per line so concurrent threads do not interleave within a line. */
    size_t len = strlen(line);
    if (len + 1 < sizeof(line)) {
        line[len] = '\n';
        line[len + 1] = '\0';
    }
    fputs(line, stderr);
}
