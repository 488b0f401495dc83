/*
 * host_events.c: libvirt's event loop (keepalive, close callbacks and
 * domain events need one): libvirt's default implementation, registered
 * once per process and run on a thread of its own. See host.h.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "host.h"
#include "host_int.h"
#include "log.h"
#include "util.h"

LOG_TAG("host");

static pthread_mutex_t ev_lock = PTHREAD_MUTEX_INITIALIZER;
static bool ev_registered;
static atomic_bool ev_running;
static atomic_bool ev_stop;
static pthread_t ev_thread;

static void
quiet_libvirt_errors(void *opaque, virErrorPtr err)
{
	/* Errors are reported by whoever made the call, through log.h. */
	(void)opaque;
	(void)err;
}

static void *
ev_main(void *arg)
{
	(void)arg;
	while (!atomic_load(&ev_stop)) {
		if (virEventRunDefaultImpl() < 0) {
			log_error("libvirt event loop: %s",
				  virGetLastErrorMessage());
			struct timespec ts = {0, 100 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
	}
	return NULL;
}

static void
ev_wake(int timer, void *opaque)
{
	(void)timer;
	(void)opaque;
}

int
host_events_start(void)
{
	int rc = -1;

	pthread_mutex_lock(&ev_lock);
	if (!ev_registered) {
		virSetErrorFunc(NULL, quiet_libvirt_errors);
		if (virInitialize() < 0 || virEventRegisterDefaultImpl() < 0) {
			err_set("cannot register the libvirt event loop: %s",
				virGetLastErrorMessage());
			goto cleanup;
		}
		ev_registered = true;
	}
	if (!ev_running) {
		atomic_store(&ev_stop, false);
		if (pthread_create(&ev_thread, NULL, ev_main, NULL) != 0) {
			err_set("cannot start the libvirt event loop thread");
			goto cleanup;
		}
		ev_running = true;
	}
	rc = 0;
cleanup:
	pthread_mutex_unlock(&ev_lock);
	return rc;
}

void
host_events_stop(void)
{
	int timer;

	pthread_mutex_lock(&ev_lock);
	if (!ev_running) {
		pthread_mutex_unlock(&ev_lock);
		return;
	}
	atomic_store(&ev_stop, true);
	/* A zero timeout makes virEventRunDefaultImpl() return at once. */
	timer = virEventAddTimeout(0, ev_wake, NULL, NULL);
	pthread_join(ev_thread, NULL);
	if (timer >= 0)
		virEventRemoveTimeout(timer);
	ev_running = false;
	pthread_mutex_unlock(&ev_lock);
}

bool
host_events_running(void)
{
	return atomic_load(&ev_running);
}
