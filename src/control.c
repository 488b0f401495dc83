/*
 * control.c: the snapshot the loop publishes and the commands and
 * heartbeats the HTTP threads post (control.h).
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control.h"
#include "util.h"

struct control {
	pthread_mutex_t m;       /* everything below */
	pthread_cond_t answered; /* a command was completed */
	struct control_snapshot *snap;
	struct control_cmd *head, *tail;
	bool closed;
	void (*wake)(void *);
	void *wake_arg;
	struct control_hb *hb;
	size_t n_hb, alloc_hb;
};

struct control_snapshot *
control_snapshot_new(size_t n_groups)
{
	struct control_snapshot *s = xcalloc(1, sizeof(*s));

	s->refs = 1;
	s->groups = xcalloc(n_groups ? n_groups : 1, sizeof(*s->groups));
	s->n_groups = n_groups;
	return s;
}

const struct control_group *
control_snapshot_group(const struct control_snapshot *s, const char *name)
{
	for (size_t i = 0; s && i < s->n_groups; i++)
		if (s->groups[i].name && strcmp(s->groups[i].name, name) == 0)
			return &s->groups[i];
	return NULL;
}

static int
ready_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct control_instance *)elem)->id);
}

const struct control_instance *
control_snapshot_ready(const struct control_snapshot *s, const char *id)
{
	if (!s || !s->n_ready)
		return NULL;
	return bsearch(id, s->ready, s->n_ready, sizeof(*s->ready), ready_cmp);
}

static int
addr_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct targets_entry *)elem)->id);
}

const char *
control_snapshot_address(const struct control_snapshot *s, const char *id)
{
	const struct targets_entry *e;

	if (!s || !s->n_addrs)
		return NULL;
	e = bsearch(id, s->addrs, s->n_addrs, sizeof(*s->addrs), addr_cmp);
	return e ? e->addr : NULL;
}

static void
snapshot_free(struct control_snapshot *s)
{
	for (size_t i = 0; i < s->n_groups; i++) {
		free(s->groups[i].name);
		free(s->groups[i].last_decision);
		free(s->groups[i].app_source);
		free(s->groups[i].predictive);
		free(s->groups[i].refresh);
		history_put(s->groups[i].history);
		xrc_put(s->groups[i].targets);
	}
	xrc_put(s->addrs);
	free(s->groups);
	for (size_t i = 0; i < s->n_hosts; i++) {
		free(s->hosts[i].name);
		free(s->hosts[i].why);
	}
	free(s->hosts);
	free(s->prom);
	xrc_put(s->ready);
	free(s);
}

struct control *
control_new(void (*wake)(void *), void *wake_arg)
{
	struct control *c = xcalloc(1, sizeof(*c));
	pthread_condattr_t ca;

	pthread_mutex_init(&c->m, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->answered, &ca);
	pthread_condattr_destroy(&ca);
	c->wake = wake;
	c->wake_arg = wake_arg;
	return c;
}

void
control_free(struct control *c)
{
	if (!c)
		return;
	control_close(c);
	if (c->snap)
		control_snapshot_put(c->snap);
	free(c->hb);
	pthread_cond_destroy(&c->answered);
	pthread_mutex_destroy(&c->m);
	free(c);
}

void
control_publish(struct control *c, struct control_snapshot *s)
{
	struct control_snapshot *old;

	pthread_mutex_lock(&c->m);
	old = c->snap;
	c->snap = s;
	pthread_mutex_unlock(&c->m);
	if (old)
		control_snapshot_put(old);
}

struct control_snapshot *
control_snapshot_get(struct control *c)
{
	struct control_snapshot *s;

	pthread_mutex_lock(&c->m);
	s = c->snap;
	if (s)
		__atomic_add_fetch(&s->refs, 1, __ATOMIC_ACQ_REL);
	pthread_mutex_unlock(&c->m);
	return s;
}

void
control_snapshot_put(struct control_snapshot *s)
{
	if (s && __atomic_sub_fetch(&s->refs, 1, __ATOMIC_ACQ_REL) == 0)
		snapshot_free(s);
}

/* Remove cmd from the queue if it is still there (not taken). */
static bool
withdraw_locked(struct control *c, struct control_cmd *cmd)
{
	struct control_cmd **pp, *prev = NULL;

	for (pp = &c->head; *pp; prev = *pp, pp = &(*pp)->next) {
		if (*pp != cmd)
			continue;
		*pp = cmd->next;
		if (c->tail == cmd)
			c->tail = prev;
		return true;
	}
	return false;
}

int
control_submit(struct control *c, struct control_cmd *cmd, int64_t timeout_ms)
{
	struct timespec until;
	int rc = 0;

	cmd->taken = cmd->done = false;
	cmd->next = NULL;
	cmd->status = 0;
	cmd->note[0] = cmd->error[0] = '\0';
	util_mono_deadline(timeout_ms, &until);
	pthread_mutex_lock(&c->m);
	if (c->closed) {
		pthread_mutex_unlock(&c->m);
		snprintf(cmd->error, sizeof(cmd->error),
			 "the daemon is stopping: not applied");
		cmd->status = 503;
		return -1;
	}
	if (c->tail)
		c->tail->next = cmd;
	else
		c->head = cmd;
	c->tail = cmd;
	pthread_mutex_unlock(&c->m);
	if (c->wake)
		c->wake(c->wake_arg);

	pthread_mutex_lock(&c->m);
	while (!cmd->done) {
		int w = cmd->taken ? pthread_cond_wait(&c->answered, &c->m)
				   : pthread_cond_timedwait(&c->answered, &c->m,
							    &until);

		if (w == ETIMEDOUT && !cmd->taken && !cmd->done &&
		    withdraw_locked(c, cmd)) {
			snprintf(cmd->error, sizeof(cmd->error),
				 "the daemon's loop did not take the command within %lld ms: not applied",
				 (long long)timeout_ms);
			cmd->status = 503;
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&c->m);
	return rc;
}

struct control_cmd *
control_next(struct control *c)
{
	struct control_cmd *cmd;

	pthread_mutex_lock(&c->m);
	cmd = c->head;
	if (cmd) {
		c->head = cmd->next;
		if (!c->head)
			c->tail = NULL;
		cmd->next = NULL;
		cmd->taken = true;
	}
	pthread_mutex_unlock(&c->m);
	return cmd;
}

void
control_complete(struct control *c, struct control_cmd *cmd)
{
	pthread_mutex_lock(&c->m);
	cmd->done = true;
	pthread_cond_broadcast(&c->answered);
	pthread_mutex_unlock(&c->m);
}

void
control_close(struct control *c)
{
	struct control_cmd *cmd, *next;

	pthread_mutex_lock(&c->m);
	c->closed = true;
	for (cmd = c->head; cmd; cmd = next) {
		next = cmd->next;
		cmd->next = NULL;
		snprintf(cmd->error, sizeof(cmd->error),
			 "the daemon is stopping: not applied");
		cmd->status = 503;
		cmd->done = true;
	}
	c->head = c->tail = NULL;
	pthread_cond_broadcast(&c->answered);
	pthread_mutex_unlock(&c->m);
}

void
control_heartbeat(struct control *c, const char *id, int64_t time_ms, bool busy)
{
	pthread_mutex_lock(&c->m);
	if (c->n_hb == c->alloc_hb) {
		c->alloc_hb = c->alloc_hb ? c->alloc_hb * 2 : 64;
		c->hb = xreallocarray(c->hb, c->alloc_hb, sizeof(*c->hb));
	}
	memset(&c->hb[c->n_hb], 0, sizeof(c->hb[0]));
	snprintf(c->hb[c->n_hb].id, sizeof(c->hb[0].id), "%s", id);
	c->hb[c->n_hb].time_ms = time_ms;
	c->hb[c->n_hb].busy = busy;
	c->n_hb++;
	pthread_mutex_unlock(&c->m);
}

void
control_heartbeat_app(struct control *c, const struct control_hb *hb)
{
	pthread_mutex_lock(&c->m);
	if (c->n_hb == c->alloc_hb) {
		c->alloc_hb = c->alloc_hb ? c->alloc_hb * 2 : 64;
		c->hb = xreallocarray(c->hb, c->alloc_hb, sizeof(*c->hb));
	}
	c->hb[c->n_hb++] = *hb;
	pthread_mutex_unlock(&c->m);
}

static int
hb_cmp(const void *a, const void *b)
{
	const struct control_hb *x = a, *y = b;
	int r = strcmp(x->id, y->id);

	if (r)
		return r;
	return x->time_ms < y->time_ms ? -1 : x->time_ms > y->time_ms;
}

size_t
control_heartbeats_take(struct control *c, struct control_hb **out)
{
	struct control_hb *v;
	size_t n, m = 0;

	pthread_mutex_lock(&c->m);
	v = c->hb;
	n = c->n_hb;
	c->hb = NULL;
	c->n_hb = c->alloc_hb = 0;
	pthread_mutex_unlock(&c->m);
	/* keep the newest heartbeat per instance */
	if (n)
		qsort(v, n, sizeof(*v), hb_cmp);
	for (size_t i = 0; i < n; i++) {
		if (i + 1 < n && strcmp(v[i].id, v[i + 1].id) == 0)
			continue;
		v[m++] = v[i];
	}
	*out = v;
	return m;
}
