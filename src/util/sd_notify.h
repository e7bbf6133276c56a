/* Telling the service manager how the service is doing: systemd's
 * notification protocol (sd_notify(3)), spoken directly rather than through
 * libsystemd. The message is newline-separated VAR=value assignments
 * ("READY=1", "STOPPING=1", "STATUS=..."), sent as one datagram to the
 * AF_UNIX socket $NOTIFY_SOCKET names: a path, or '@' and a name in the
 * abstract namespace. systemd documents this protocol as stable. */
#ifndef STS_UTIL_SD_NOTIFY_H
#define STS_UTIL_SD_NOTIFY_H

/* Sends state. Returns 1 once sent, 0 when NOTIFY_SOCKET is not set (not run
 * by a service manager that listens: nothing to do), STS_ERR_INVALID for a
 * NOTIFY_SOCKET that is no usable socket name, STS_ERR_IO (errno says why)
 * when the socket or the send failed. */
int sts_sd_notify(const char *state);

#endif
