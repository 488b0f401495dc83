/*
 * leader.h: the daemon's leader lease (leader.c). The loop's thread only.
 */
#ifndef VA_LEADER_H
#define VA_LEADER_H

#include <stdbool.h>

#include "daemon_int.h"

/*
 * Take the lease, or (daemon.ha) find it held by another daemon: 0 with
 * *standby set; then try again later. Starts the renewal thread. -1 with
 * err_set() when the store cannot be asked, or without HA when another
 * daemon holds it.
 */
int leader_take(struct daemon *d, bool *standby);
/*
 * May the loop act (on hosts, on the store) now? 1 yes: the lease is
 * valid; 0 not now: its thread has not renewed it in time and is still
 * trying; -1 it is lost (the thread said why): the loop stops.
 */
int leader_check(struct daemon *d);

#endif
