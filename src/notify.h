/*
 * notify.h: the service manager's notification protocol (sd_notify(3)),
 * without libsystemd.
 *
 * systemd documents the protocol as stable and meant to be spoken
 * directly (sd_notify(3), "Notes"; systemd.io/NOTIFY): one datagram of
 * newline-separated VAR=VALUE assignments to the AF_UNIX socket named by
 * $NOTIFY_SOCKET (a path, or an abstract name when it starts with '@').
 * Linking libsystemd for these two calls cost about 850 KiB of resident
 * memory (it brings libgcrypt, liblz4, libzstd and libcap along): a third
 * of the daemon's own footprint at 1,000 instances (bench/README.md).
 */
#ifndef VA_NOTIFY_H
#define VA_NOTIFY_H

#include <stdint.h>

/*
 * Send state (e.g. "READY=1", "RELOADING=1\nMONOTONIC_USEC=...") to the
 * service manager. Returns 1 when sent, 0 when there is no manager to
 * tell ($NOTIFY_SOCKET unset), -1 on error (err_msg()).
 */
int notify_send(const char *state);

/*
 * The watchdog period the service manager asks for: $WATCHDOG_USEC when
 * it is set, a positive number and $WATCHDOG_PID (if set) is this
 * process; else 0 (no watchdog).
 */
uint64_t notify_watchdog_usec(void);

#endif
