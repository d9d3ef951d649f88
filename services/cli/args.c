/* Argument helpers shared by the commands: strict parsing, so that a typo such
 * as "--max-tokens 12x" is a usage error rather than a silent 12. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

bool cli_next(cli_args *a, const char **arg, bool *is_opt)
{
    if (a->i >= a->argc)
        return false;
    const char *s = a->argv[a->i++];
    if (!a->no_more_opts && strcmp(s, "--") == 0) {
        a->no_more_opts = true;
        return cli_next(a, arg, is_opt);
    }
    *arg = s;
    /* A lone "-" is a value (stdin), and so is a negative number. */
    *is_opt = !a->no_more_opts && s[0] == '-' && s[1] != '\0' && !(s[1] >= '0' && s[1] <= '9');
    return true;
}

int cli_opt_value(cli_args *a, const char *arg, const char *name, const char **val)
{
    size_t n = strlen(name);
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *val = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (a->i >= a->argc) {
        cli_usage_error(a->cmd, "%s needs a value", name);
        return -1;
    }
    *val = a->argv[a->i++];
    return 1;
}

int cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "edgecascade%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(see 'edgecascade %s%s--help')\n", cmd ? cmd : "", cmd ? " " : "");
    return CLI_EXIT_USAGE;
}

bool cli_parse_long(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_double(const char *s, double min, double max, double *out)
{
    if (!s || !*s)
        return false;
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end != '\0' || !isfinite(v) || v < min || v > max)
        return false;
    *out = v;
    return true;
}

bool cli_parse_duration_ms(const char *s, uint64_t *out)
{
    if (!s || !*s || !(s[0] >= '0' && s[0] <= '9'))
        return false;
    char *end = NULL;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s)
        return false;
    uint64_t unit;
    if (strcmp(end, "s") == 0)
        unit = 1000ull;
    else if (strcmp(end, "m") == 0)
        unit = 60ull * 1000ull;
    else if (strcmp(end, "h") == 0)
        unit = 3600ull * 1000ull;
    else if (strcmp(end, "d") == 0)
        unit = 24ull * 3600ull * 1000ull;
    else if (strcmp(end, "w") == 0)
        unit = 7ull * 24ull * 3600ull * 1000ull;
    else
        return false;
    /* Beyond a century the caller means "everything"; refuse overflow instead. */
    if (v == 0 || v > (100ull * 366ull * 24ull * 3600ull * 1000ull) / unit)
        return false;
    *out = (uint64_t)v * unit;
    return true;
}
