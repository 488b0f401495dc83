/*
 * jobs.c: the worker pool (jobs.h). A worker takes the next job, runs it
 * on its own connection to the job's host, and posts the result for the
 * loop to reap.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "jobs.h"
#include "log.h"
#include "provision.h"
#include "remove.h"
#include "util.h"
#include "warm.h"

LOG_TAG("jobs");

/* as host_link.c: a peer silent for 3 x 5 s is dead */
#define KEEPALIVE_INTERVAL_S 5
#define KEEPALIVE_COUNT 3

struct job {
	enum job_kind kind;
	char id[STORE_ID_LEN + 1];
	struct provision_spec *spec;  /* JOB_PROVISION */
	struct remove_spec rm;        /* JOB_REMOVE: strings owned below */
	struct warm_spec warm;        /* JOB_WARM: the same strings */
	char *rm_strings[6];
	struct job *next;
};

/* A worker's connection to one host: only that worker uses or closes it. */
struct wconn {
	char *uri;
	virConnectPtr conn;
};

struct worker {
	struct job_queue *q;
	pthread_t thread;
	char running[STORE_ID_LEN + 1]; /* guarded by q->m; "" when idle */
	struct wconn *conns;
	size_t n_conns;
};

struct job_queue {
	struct jobs_env env;
	char *owner, *crash_at;
	pthread_mutex_t m;
	pthread_cond_t cond;          /* a job was queued, or stop */
	pthread_cond_t exited;        /* a worker ended */
	struct job *head, *tail;
	unsigned queued, n_exited;
	struct worker *workers;
	unsigned n_workers;
	bool stop;
	struct job_result *results;
	size_t n_results, alloc_results;
};

static void
job_free(struct job *j)
{
	if (!j)
		return;
	provision_spec_free(j->spec);
	for (size_t i = 0; i < ARRAY_SIZE(j->rm_strings); i++)
		free(j->rm_strings[i]);
	free(j);
}

/* The worker's connection to uri, opened (again) when needed; NULL when
 * the host cannot be reached now. Blocks while the host does not answer:
 * only this worker waits. */
static virConnectPtr
worker_conn(struct worker *w, const char *uri)
{
	struct wconn *c = NULL;

	for (size_t i = 0; i < w->n_conns && !c; i++)
		if (strcmp(w->conns[i].uri, uri) == 0)
			c = &w->conns[i];
	if (!c) {
		w->conns = xreallocarray(w->conns, w->n_conns + 1, sizeof(*w->conns));
		c = &w->conns[w->n_conns++];
		c->uri = xstrdup(uri);
		c->conn = NULL;
	}
	if (c->conn && virConnectIsAlive(c->conn) != 1) {
		log_debug("%s: the worker's connection is dead; reopening", uri);
		virConnectClose(c->conn);
		c->conn = NULL;
	}
	if (!c->conn) {
		c->conn = virConnectOpen(uri);
		if (!c->conn) {
			err_set("cannot connect to %s: %s", uri,
				virGetLastErrorMessage());
			return NULL;
		}
		if (virConnectSetKeepAlive(c->conn, KEEPALIVE_INTERVAL_S,
					   KEEPALIVE_COUNT) < 0)
			virResetLastError(); /* local drivers have none */
	}
	return c->conn;
}

/* After a failed job: a connection that died is closed now. */
static void
worker_conn_check(struct worker *w, const char *uri)
{
	for (size_t i = 0; i < w->n_conns; i++) {
		struct wconn *c = &w->conns[i];

		if (strcmp(c->uri, uri) == 0 && c->conn &&
		    virConnectIsAlive(c->conn) != 1) {
			virConnectClose(c->conn);
			c->conn = NULL;
		}
	}
}

static void
post_result(struct job_queue *q, const struct job *j, const char *group, bool ok,
	    bool retry)
{
	struct job_result *r;

	pthread_mutex_lock(&q->m);
	if (q->n_results == q->alloc_results) {
		q->alloc_results = q->alloc_results ? q->alloc_results * 2 : 16;
		q->results = xreallocarray(q->results, q->alloc_results,
					   sizeof(*q->results));
	}
	r = &q->results[q->n_results++];
	r->kind = j->kind;
	memcpy(r->id, j->id, sizeof(r->id));
	r->group = xstrdup(group);
	r->ok = ok;
	r->retry = retry;
	r->op = j->kind == JOB_WARM ? (int)j->warm.op : 0;
	pthread_mutex_unlock(&q->m);
}

static void
run(struct worker *w, struct job *j)
{
	struct job_queue *q = w->q;
	const char *uri = j->kind == JOB_PROVISION ? j->spec->uri
			  : j->kind == JOB_WARM    ? j->warm.uri
						   : j->rm.uri;
	const char *group = j->kind == JOB_PROVISION ? j->spec->group
			    : j->kind == JOB_WARM    ? j->warm.group
						     : j->rm.group;
	virConnectPtr conn = NULL;
	bool ok, retry = false;

	if (j->kind == JOB_REMOVE && j->rm.host_down)
		log_debug("job for %s: host %s is not connected", j->id,
			  j->rm.host_name);
	else if (!(conn = worker_conn(w, uri)))
		log_debug("job for %s: %s", j->id, err_msg());
	if (j->kind == JOB_PROVISION) {
		ok = provision_run(&q->env, conn, j->spec);
	} else if (j->kind == JOB_WARM) {
		bool clock_next = false;
		enum warm_outcome o = warm_run(&q->env, conn, &j->warm,
					       &clock_next);

		ok = o == WARM_DONE;
		retry = o == WARM_RETRY;
		if (clock_next) {
			/* behind whatever else is queued: a guest without
			 * an agent must not delay the next draw */
			struct warm_spec c = j->warm;

			c.op = WARM_CLOCK;
			jobs_warm(q, &c);
		}
	} else {
		ok = remove_run(&q->env, conn, &j->rm);
	}
	if (!ok && conn)
		worker_conn_check(w, uri);
	post_result(q, j, group, ok, retry);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct job_queue *q = w->q;

	pthread_mutex_lock(&q->m);
	for (;;) {
		struct job *j;

		while (!q->head && !q->stop)
			pthread_cond_wait(&q->cond, &q->m);
		if (q->stop)
			break;
		j = q->head;
		q->head = j->next;
		if (!q->head)
			q->tail = NULL;
		q->queued--;
		memcpy(w->running, j->id, sizeof(w->running));
		pthread_mutex_unlock(&q->m);

		run(w, j);
		job_free(j);

		pthread_mutex_lock(&q->m);
		w->running[0] = '\0';
	}
	q->n_exited++;
	pthread_cond_broadcast(&q->exited);
	pthread_mutex_unlock(&q->m);
	/* only now, and only this thread, closes its connections */
	for (size_t i = 0; i < w->n_conns; i++) {
		if (w->conns[i].conn)
			virConnectClose(w->conns[i].conn);
		free(w->conns[i].uri);
	}
	free(w->conns);
	w->conns = NULL;
	w->n_conns = 0;
	return NULL;
}

int
jobs_journal_step(const struct jobs_env *env, int64_t jid,
		  enum store_journal_step step, int64_t deadline_ms)
{
	int rc;

	if (deadline_ms && util_now_ms() > deadline_ms) {
		err_set("the job's deadline passed before step '%s'",
			store_journal_step_name(step));
		return -1;
	}
	rc = store_journal_step(env->store, jid, step, NULL);
	if (rc == STORE_E_FENCED) {
		err_set("fenced: another daemon holds the lease now");
		return -1;
	}
	if (rc != STORE_OK)
		log_warn("journal step %s: %s", store_journal_step_name(step),
			 err_msg());
	return 0;
}

struct job_queue *
jobs_start(const struct jobs_env *env, unsigned threads)
{
	struct job_queue *q = xcalloc(1, sizeof(*q));
	pthread_condattr_t ca;

	q->env = *env;
	q->owner = env->owner ? xstrdup(env->owner) : NULL;
	q->crash_at = env->crash_at ? xstrdup(env->crash_at) : NULL;
	q->env.owner = q->owner;
	q->env.crash_at = q->crash_at;
	if (q->env.deadline_ms <= 0)
		q->env.deadline_ms = JOBS_DEADLINE_MS;
	pthread_mutex_init(&q->m, NULL);
	pthread_cond_init(&q->cond, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->exited, &ca);
	pthread_condattr_destroy(&ca);
	q->workers = xcalloc(threads ? threads : 1, sizeof(*q->workers));
	for (unsigned i = 0; i < threads; i++) {
		q->workers[i].q = q;
		if (pthread_create(&q->workers[i].thread, NULL, worker_main,
				   &q->workers[i]) != 0)
			fatal("cannot start a worker thread");
		q->n_workers++;
	}
	return q;
}

bool
jobs_stop(struct job_queue *q, int64_t wait_ms)
{
	struct timespec until;
	struct job *j, *next;
	bool all;

	if (!q)
		return true;
	util_mono_deadline(wait_ms, &until);
	pthread_mutex_lock(&q->m);
	q->stop = true;
	/* dropped, not lost: each is in the store (requested, draining,
	 * deleting) and the next start finishes or rolls it back */
	for (j = q->head; j; j = next) {
		next = j->next;
		job_free(j);
	}
	q->head = q->tail = NULL;
	q->queued = 0;
	pthread_cond_broadcast(&q->cond);
	while (q->n_exited < q->n_workers &&
	       pthread_cond_timedwait(&q->exited, &q->m, &until) != ETIMEDOUT)
		;
	all = q->n_exited == q->n_workers;
	if (!all) {
		for (unsigned i = 0; i < q->n_workers; i++)
			if (q->workers[i].running[0])
				log_warn("stopping without waiting for the job on instance %s: the journal has it, the next start finishes or rolls it back",
					 q->workers[i].running);
	}
	pthread_mutex_unlock(&q->m);
	if (!all) {
		/* they go with the process; the queue stays theirs */
		for (unsigned i = 0; i < q->n_workers; i++)
			pthread_detach(q->workers[i].thread);
		return false;
	}
	for (unsigned i = 0; i < q->n_workers; i++)
		pthread_join(q->workers[i].thread, NULL);
	jobs_results_free(q->results, q->n_results);
	free(q->workers);
	free(q->owner);
	free(q->crash_at);
	pthread_cond_destroy(&q->cond);
	pthread_cond_destroy(&q->exited);
	pthread_mutex_destroy(&q->m);
	free(q);
	return true;
}

static void
enqueue(struct job_queue *q, struct job *j)
{
	pthread_mutex_lock(&q->m);
	if (q->stop) {
		pthread_mutex_unlock(&q->m);
		job_free(j);
		return;
	}
	if (q->tail)
		q->tail->next = j;
	else
		q->head = j;
	q->tail = j;
	q->queued++;
	pthread_cond_signal(&q->cond);
	pthread_mutex_unlock(&q->m);
}

void
jobs_provision(struct job_queue *q, struct provision_spec *spec)
{
	struct job *j = xcalloc(1, sizeof(*j));

	j->kind = JOB_PROVISION;
	snprintf(j->id, sizeof(j->id), "%s", spec->id);
	j->spec = spec;
	enqueue(q, j);
}

void
jobs_remove(struct job_queue *q, const struct remove_spec *r)
{
	struct job *j = xcalloc(1, sizeof(*j));
	const char *src[6] = {r->id, r->group, r->host_name, r->uri, r->pool,
			      r->domain};

	j->kind = JOB_REMOVE;
	snprintf(j->id, sizeof(j->id), "%s", r->id);
	for (size_t i = 0; i < ARRAY_SIZE(src); i++)
		j->rm_strings[i] = src[i] ? xstrdup(src[i]) : NULL;
	if (!j->rm_strings[5])
		j->rm_strings[5] = xasprintf("unknown-%s", r->id);
	j->rm.id = j->rm_strings[0];
	j->rm.group = j->rm_strings[1];
	j->rm.host_name = j->rm_strings[2];
	j->rm.uri = j->rm_strings[3];
	j->rm.pool = j->rm_strings[4];
	j->rm.domain = j->rm_strings[5];
	j->rm.drain_ms = r->drain_ms;
	j->rm.host_down = r->host_down;
	enqueue(q, j);
}

void
jobs_warm(struct job_queue *q, const struct warm_spec *w)
{
	struct job *j = xcalloc(1, sizeof(*j));
	const char *src[6] = {w->id, w->group, w->host_name, w->uri, w->pool,
			      w->domain};

	j->kind = JOB_WARM;
	snprintf(j->id, sizeof(j->id), "%s", w->id);
	for (size_t i = 0; i < ARRAY_SIZE(src); i++)
		j->rm_strings[i] = xstrdup(src[i] ? src[i] : "");
	j->warm = *w;
	j->warm.id = j->rm_strings[0];
	j->warm.group = j->rm_strings[1];
	j->warm.host_name = j->rm_strings[2];
	j->warm.uri = j->rm_strings[3];
	j->warm.pool = j->rm_strings[4];
	j->warm.domain = j->rm_strings[5];
	enqueue(q, j);
}

size_t
jobs_reap(struct job_queue *q, struct job_result **out)
{
	size_t n;

	pthread_mutex_lock(&q->m);
	*out = q->results;
	n = q->n_results;
	q->results = NULL;
	q->n_results = q->alloc_results = 0;
	pthread_mutex_unlock(&q->m);
	return n;
}

void
jobs_results_free(struct job_result *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].group);
	free(v);
}

unsigned
jobs_pending(struct job_queue *q)
{
	unsigned n;

	pthread_mutex_lock(&q->m);
	n = q->queued;
	for (unsigned i = 0; i < q->n_workers; i++)
		if (q->workers[i].running[0])
			n++;
	pthread_mutex_unlock(&q->m);
	return n;
}

bool
jobs_busy_with(struct job_queue *q, const char *id)
{
	bool busy = false;

	pthread_mutex_lock(&q->m);
	for (unsigned i = 0; i < q->n_workers && !busy; i++)
		busy = strcmp(q->workers[i].running, id) == 0;
	for (struct job *j = q->head; j && !busy; j = j->next)
		busy = strcmp(j->id, id) == 0;
	pthread_mutex_unlock(&q->m);
	return busy;
}

static int
id_cmp(const void *a, const void *b)
{
	return strcmp(a, b);
}

size_t
jobs_busy(struct job_queue *q, char (**out)[STORE_ID_LEN + 1])
{
	char (*v)[STORE_ID_LEN + 1];
	size_t n = 0;

	pthread_mutex_lock(&q->m);
	v = xcalloc(q->queued + q->n_workers + 1, sizeof(*v));
	for (unsigned i = 0; i < q->n_workers; i++)
		if (q->workers[i].running[0])
			memcpy(v[n++], q->workers[i].running, sizeof(*v));
	for (struct job *j = q->head; j; j = j->next)
		memcpy(v[n++], j->id, sizeof(*v));
	pthread_mutex_unlock(&q->m);
	qsort(v, n, sizeof(*v), id_cmp);
	*out = v;
	return n;
}
