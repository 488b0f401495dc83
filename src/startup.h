/*
 * startup.h: setting the daemon up and tearing it down (startup.c).
 */
#ifndef VA_STARTUP_H
#define VA_STARTUP_H

#include "daemon_int.h"

/* Everything up to the first tick; d->cfg is loaded. 0, or -1 with
 * err_set(). With daemon.ha a standby waits here for the lease (d->stop
 * set when it was told to stop meanwhile). */
int daemon_setup(struct daemon *d);
/*
 * Free everything. Jobs in flight get a second, hosts that do not
 * answer are not waited for (SIGTERM stops within seconds whatever the
 * hosts do): what is left is the journal's, as after a crash.
 */
void daemon_free(struct daemon *d);

#endif
