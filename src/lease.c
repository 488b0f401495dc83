/*
 * lease.c: the leader lease renewed by a thread of its own (see lease.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "lease.h"
#include "log.h"
#include "util.h"

LOG_TAG("lease");

/* a failed renewal is retried this often (or every ttl / 3 if shorter) */
#define LEASE_RETRY_MS 1000

struct lease {
	struct store *s;               /* the thread's own handle */
	char *name;
	char *holder;
	int64_t epoch;
	int64_t ttl_ms;
	bool give_up;
	int64_t stall_limit_ms;
	pthread_t thread;

	pthread_mutex_t mu;
	pthread_cond_t cond;           /* lease_stop() wakes the thread */
	bool stop;                     /* mu */
	bool lost;                     /* mu */
	int64_t valid_until_ms;        /* mu; 0 once lost */
	uint64_t renewals;             /* mu */
	int64_t loop_alive_ms;         /* mu: the loop's last report */
	bool letting_go;               /* mu: not renewed: the loop stalled */
};

/* Sleep on the condition until monotonic time until_ms or a stop. */
static void
wait_until(struct lease *l, int64_t until_ms)
{
	struct timespec ts;

	ts.tv_sec = until_ms / 1000;
	ts.tv_nsec = (until_ms % 1000) * 1000000;
	while (!l->stop && util_now_ms() < until_ms) {
		int rc = pthread_cond_timedwait(&l->cond, &l->mu, &ts);

		if (rc == ETIMEDOUT)
			break;
	}
}

static void
mark_lost(struct lease *l)
{
	l->lost = true;
	l->valid_until_ms = 0;
}

static void *
lease_main(void *arg)
{
	struct lease *l = arg;
	struct log_complain failing = LOG_COMPLAIN_INIT;
	int64_t retry = l->ttl_ms / 3 < LEASE_RETRY_MS ? l->ttl_ms / 3
						      : LEASE_RETRY_MS;
	int64_t next;

	pthread_mutex_lock(&l->mu);
	/* the acquisition counts as the first renewal */
	next = l->valid_until_ms - l->ttl_ms + l->ttl_ms / 3;
	for (;;) {
		int64_t sent, now;
		int rc;

		wait_until(l, next);
		if (l->stop)
			break;
		if (l->stall_limit_ms > 0 &&
		    util_now_ms() - l->loop_alive_ms > l->stall_limit_ms) {
			if (!l->letting_go)
				log_error("the main loop has not run for %" PRId64 " s (a call that does not return?): no longer renewing the lease, so that a standby takes over",
					  (util_now_ms() - l->loop_alive_ms) / 1000);
			l->letting_go = true;
			if (util_now_ms() >= l->valid_until_ms) {
				mark_lost(l);
				break;
			}
			next = l->valid_until_ms;
			continue;
		}
		pthread_mutex_unlock(&l->mu);
		sent = util_now_ms();
		rc = store_lease_renew(l->s, l->name, l->holder, l->epoch,
				       l->ttl_ms);
		now = util_now_ms();
		pthread_mutex_lock(&l->mu);
		if (rc == STORE_OK) {
			/* the database's expiry is its clock at execution,
			 * which is no earlier than our send time, plus ttl */
			if (sent + l->ttl_ms > l->valid_until_ms)
				l->valid_until_ms = sent + l->ttl_ms;
			l->renewals++;
			if (failing.active)
				log_complain_clear(&failing, log_tag,
						   "lease renewed again (valid for %" PRId64 " ms)",
						   l->valid_until_ms - now);
			next = sent + l->ttl_ms / 3;
			continue;
		}
		if (rc == STORE_E_FENCED) {
			log_error("another daemon took over the lease (epoch moved past %" PRId64 "): stopping",
				  l->epoch);
			mark_lost(l);
			break;
		}
		log_complain(&failing, LOG_LEVEL_WARN, log_tag,
			     "lease renewal failed (retrying every %" PRId64 " ms): %s",
			     retry, err_msg());
		if (l->give_up && now >= l->valid_until_ms) {
			log_error("the lease could not be renewed for %" PRId64 " ms: another daemon may lead now; stopping",
				  now - (l->valid_until_ms - l->ttl_ms));
			mark_lost(l);
			break;
		}
		next = now + retry;
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

struct lease *
lease_start(struct store *s, const struct lease_opts *o)
{
	struct lease *l = xcalloc(1, sizeof(*l));
	pthread_condattr_t ca;
	int rc;

	l->s = s;
	l->name = xstrdup(o->name);
	l->holder = xstrdup(o->holder);
	l->epoch = o->epoch;
	l->ttl_ms = o->ttl_ms;
	l->give_up = o->give_up_at_expiry;
	l->valid_until_ms = o->valid_until_ms;
	l->stall_limit_ms = o->stall_limit_ms;
	l->loop_alive_ms = util_now_ms();
	pthread_mutex_init(&l->mu, NULL);
	/* wait_until() counts on CLOCK_MONOTONIC, util_now_ms()'s clock */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l->cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&l->thread, NULL, lease_main, l);
	if (rc != 0) {
		err_set("cannot start the lease renewal thread: %s",
			strerror(rc));
		pthread_cond_destroy(&l->cond);
		pthread_mutex_destroy(&l->mu);
		store_close(l->s);
		free(l->name);
		free(l->holder);
		free(l);
		return NULL;
	}
	return l;
}

enum lease_status
lease_status(struct lease *l, int64_t now_ms, int64_t *valid_until_ms)
{
	enum lease_status st;

	pthread_mutex_lock(&l->mu);
	if (l->lost)
		st = LEASE_LOST;
	else if (now_ms < l->valid_until_ms)
		st = LEASE_HELD;
	else
		st = LEASE_EXPIRED;
	if (valid_until_ms)
		*valid_until_ms = l->valid_until_ms;
	pthread_mutex_unlock(&l->mu);
	return st;
}

void
lease_loop_alive(struct lease *l, int64_t now_ms)
{
	pthread_mutex_lock(&l->mu);
	if (now_ms > l->loop_alive_ms)
		l->loop_alive_ms = now_ms;
	pthread_mutex_unlock(&l->mu);
}

uint64_t
lease_renewals(struct lease *l)
{
	uint64_t n;

	pthread_mutex_lock(&l->mu);
	n = l->renewals;
	pthread_mutex_unlock(&l->mu);
	return n;
}

void
lease_stop(struct lease *l, bool release)
{
	if (!l)
		return;
	pthread_mutex_lock(&l->mu);
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->mu);
	pthread_join(l->thread, NULL);
	if (release && !l->lost) {
		int rc = store_lease_release(l->s, l->name, l->holder, l->epoch);

		if (rc == STORE_OK)
			log_info("lease released (epoch %" PRId64 ")", l->epoch);
		else
			log_warn("cannot release the lease: %s", err_msg());
	}
	store_close(l->s);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l->name);
	free(l->holder);
	free(l);
}
