/* sd_notify's protocol, which systemd documents as stable: a single
 * AF_UNIX SOCK_DGRAM message of newline-separated VAR=value assignments to
 * the socket in $NOTIFY_SOCKET. An abstract socket is written "@name" and
 * addressed with a leading NUL byte and no terminator. The sender's
 * credentials travel with the datagram, so systemd knows the main PID sent it
 * (NotifyAccess=main, the default). */
#include "edgecascade/notify.h"

#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ec_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path || !state)
        return 0;
    size_t plen = strlen(path);
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    if ((path[0] != '/' && path[0] != '@') || plen >= sizeof(sa.sun_path)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, plen);
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    if (path[0] == '@')
        sa.sun_path[0] = '\0'; /* abstract: the length, not a NUL, ends the name */
    else
        salen++; /* a path is counted with its terminator */
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return -1;
    ssize_t n = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
    int saved = errno;
    close(fd);
    errno = saved;
    return n < 0 ? -1 : 1;
}

int ec_notifyf(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    return ec_notify(buf);
}
