/* Readings from /proc and from the simulator's log. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "loadgen.h"

double lg_proc_cpu_ms(pid_t pid)
{
    char path[64], buf[2048];
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    /* The command name may hold spaces and parentheses: fields start after the last ')'. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p += 2; /* field 3, state */
    unsigned long long utime = 0, stime = 0;
    /* fields 3..13 skipped, 14 utime, 15 stime */
    if (sscanf(p, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    return (double)(utime + stime) * 1000.0 / (double)sysconf(_SC_CLK_TCK);
}

bool lg_proc_steal(unsigned long long *steal, unsigned long long *total)
{
    unsigned long long v[8] = {0};
    FILE *f = fopen("/proc/stat", "r");
    if (!f)
        return false;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return false;
    *total = 0;
    for (int i = 0; i < 8; i++)
        *total += v[i];
    *steal = v[7];
    return true;
}

long lg_proc_status_kb(pid_t pid, const char *field)
{
    char path[64], line[256];
    size_t flen = strlen(field);
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (strncmp(line, field, flen) == 0 && line[flen] == ':') {
            kb = strtol(line + flen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return kb;
}

long lg_file_size(const char *path)
{
    struct stat st;
    return path && stat(path, &st) == 0 ? (long)st.st_size : 0;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Lines look like "... POST /v1/chat/completions model=m status=200 0.1ms". */
json_t *lg_sim_times(const char *path, long offset)
{
    FILE *f = path ? fopen(path, "r") : NULL;
    if (!f)
        return json_null();
    fseek(f, offset, SEEK_SET);
    size_t n = 0, cap = 1024;
    double *v = malloc(cap * sizeof(*v));
    char line[1024];
    while (v && fgets(line, sizeof(line), f)) {
        if (!strstr(line, "POST /v1/chat/completions") || !strstr(line, " status=200 "))
            continue;
        char *ms = strstr(line, " status=200 ") + strlen(" status=200 ");
        if (n == cap) {
            double *nv = realloc(v, 2 * cap * sizeof(*v));
            if (!nv)
                break;
            v = nv;
            cap *= 2;
        }
        v[n++] = strtod(ms, NULL);
    }
    fclose(f);
    json_t *o = json_object();
    double sum = 0;
    for (size_t i = 0; i < n; i++)
        sum += v[i];
    if (n)
        qsort(v, n, sizeof(*v), cmp_double);
    json_object_set_new(o, "requests", json_integer((json_int_t)n));
    json_object_set_new(o, "mean_ms", json_real(n ? sum / (double)n : 0));
    json_object_set_new(o, "p50_ms", json_real(n ? v[n / 2] : 0));
    json_object_set_new(o, "p99_ms", json_real(n ? v[(size_t)((double)(n - 1) * 0.99)] : 0));
    free(v);
    return o;
}
