/* Child processes for `edgecascade eval` (see launch.h). */
#include "launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "edgecascade/mqtt.h"
#include "edgecascade/util.h"

ec_err cli_exe_dir(char *out, size_t cap, ec_error *err)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return ec_error_set(err, EC_ERR_IO, "cannot find my own executable: %s", strerror(errno));
    out[n] = '\0';
    char *slash = strrchr(out, '/');
    if (slash)
        *slash = '\0';
    return EC_OK;
}

int cli_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0)
        close(fd);
    return port;
}

ec_err cli_spawn(cli_proc *p, const char *dir, const char *name, char *const argv[], ec_error *err)
{
    memset(p, 0, sizeof(*p));
    snprintf(p->name, sizeof(p->name), "%s", name);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", dir, name);
    pid_t pid = fork();
    if (pid < 0)
        return ec_error_set(err, EC_ERR_IO, "fork: %s", strerror(errno));
    if (pid == 0) {
        int fd = open(p->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        dprintf(2, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    p->pid = pid;
    return EC_OK;
}

bool cli_alive(cli_proc *p)
{
    if (p->pid <= 0)
        return false;
    int st;
    if (waitpid(p->pid, &st, WNOHANG) == p->pid) {
        p->pid = 0;
        return false;
    }
    return true;
}

static bool port_open(int port)
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

ec_err cli_wait_port(cli_proc *p, int port, int timeout_ms, ec_error *err)
{
    for (int t = 0; t < timeout_ms; t += 25) {
        if (port_open(port))
            return EC_OK;
        if (!cli_alive(p))
            break;
        ec_sleep_ms(25);
    }
    return ec_error_set(err, EC_ERR_UNAVAILABLE, "%s did not listen on port %d (log: %s)", p->name,
                        port, p->log);
}

ec_err cli_wait_port_file(cli_proc *p, const char *path, int timeout_ms, int *port, ec_error *err)
{
    for (int t = 0; t < timeout_ms; t += 25) {
        FILE *f = fopen(path, "r");
        if (f) {
            /* The simulator writes the file; n == 1 and port > 0 are checked. */
            int n = fscanf(f, "%d", port); // NOLINT(cert-err34-c)
            fclose(f);
            if (n == 1 && *port > 0)
                return EC_OK;
        }
        if (!cli_alive(p))
            break;
        ec_sleep_ms(25);
    }
    return ec_error_set(err, EC_ERR_UNAVAILABLE, "%s did not start (log: %s)", p->name, p->log);
}

ec_err cli_wait_online(cli_proc *p, const char *uri, const char *root, const char *service,
                       int timeout_ms, ec_error *err)
{
    ec_mqtt *c = NULL;
    char cid[96], topic[300];
    snprintf(cid, sizeof(cid), "ec-eval-status-%d-%s", (int)getpid(), service);
    snprintf(topic, sizeof(topic), "%s/status/%s", root, service);
    ec_mqtt_opts o = {.uri = uri, .client_id = cid, .clean_start = true, .session_expiry_s = 1};
    ec_err rc = ec_mqtt_create(&c, &o, err);
    if (rc || (rc = ec_mqtt_subscribe(c, topic, 1, err)) || (rc = ec_mqtt_connect(c, 5000, err))) {
        ec_mqtt_destroy(c);
        return rc;
    }
    uint64_t deadline = ec_mono_us() + (uint64_t)timeout_ms * 1000u;
    bool online = false;
    while (!online && ec_mono_us() < deadline) {
        ec_mqtt_msg *m = NULL;
        if (ec_mqtt_next(c, &m, 100) != EC_OK) {
            if (!cli_alive(p))
                break;
            continue;
        }
        json_t *j = json_loadb(m->payload, m->len, 0, NULL);
        const char *state = json_string_value(json_object_get(j, "state"));
        if (j && json_integer_value(json_object_get(j, "pid")) == p->pid && state &&
            strcmp(state, "online") == 0)
            online = true;
        json_decref(j);
        ec_mqtt_msg_free(m);
    }
    ec_mqtt_destroy(c);
    if (!online)
        return ec_error_set(err, EC_ERR_UNAVAILABLE, "edgecascade-%s did not come online (log: %s)",
                            service, p->log);
    return EC_OK;
}

int cli_stop(cli_proc *p)
{
    int status = -1;
    if (p->pid <= 0)
        return -1;
    kill(p->pid, SIGTERM);
    for (int waited = 0; waited < 15000; waited += 20) {
        if (waitpid(p->pid, &status, WNOHANG) == p->pid)
            goto done;
        ec_sleep_ms(20);
    }
    kill(p->pid, SIGKILL);
    waitpid(p->pid, &status, 0);
done:
    p->pid = 0;
    return status;
}

void cli_dump_log(const cli_proc *p)
{
    size_t len = 0;
    char *text = p->log[0] ? ec_read_file(p->log, 1 << 20, &len) : NULL;
    if (!text)
        return;
    const char *tail = len > 3000 ? text + len - 3000 : text;
    fprintf(stderr, "----- %s (%s) -----\n%s\n", p->name, p->log, tail);
    free(text);
}
