/* systemd readiness notification (sd_notify) without libsystemd: one
 * datagram to the unix socket named by $NOTIFY_SOCKET, a path or, with a
 * leading '@', an abstract name. Without the variable (not started by systemd
 * with Type=notify) every call does nothing. */
#ifndef EC_NOTIFY_H
#define EC_NOTIFY_H

/* Sends state ("READY=1\nSTATUS=serving", "STOPPING=1", ...). Returns 1 when
 * sent, 0 when there is no $NOTIFY_SOCKET, -1 on error (errno set). Never
 * blocks and never fails the caller: readiness is advisory. */
int ec_notify(const char *state);

/* printf-style; the text is cut at 1 KiB. */
int ec_notifyf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
