/*
 * jobs.h: the worker threads that create and remove VMs, so that a slow
 * host (an image upload, a guest that takes its time to shut down, a host
 * that stopped answering) never stalls the loop or the other hosts.
 *
 * The loop submits jobs and, each tick, reaps their results (jobs_reap):
 * nothing here calls back into the loop's modules. A job carries
 * everything it needs (struct provision_spec, built once from the
 * configuration; a removal's names), so a reload may replace the
 * configuration while jobs run. Every step is journaled in the state
 * store (provision.c, remove.c), so that a job cut short by a crash, a
 * stop or a lost lease is finished or rolled back by the next start.
 *
 * Connections: each worker opens its own connection per host, with
 * keepalive, and is the only thread that calls on or closes it. So no
 * other thread can close it under a running call (the crash when a
 * stopped libvirtd resumed under a waiting job), and keepalive bounds each
 * call the job makes on a half-dead host (about 20 s: the calling thread
 * is the one doing the connection's I/O, see host.h). A provisioning also
 * has a deadline, checked between its steps once the base image is in the
 * pool (a first upload may rightly take long). A connection found dead is
 * closed and opened again for the next job.
 *
 * Stopping (jobs_stop) waits a bounded time for the jobs in flight and
 * abandons the rest to the journal, as a crash would: a half-dead host
 * never holds up a SIGTERM.
 *
 * Threads: everything here from the loop's thread, except what the
 * workers do inside.
 */
#ifndef VA_JOBS_H
#define VA_JOBS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct provision_spec;
struct job_queue;

/* What the workers share; copied by jobs_start. */
struct jobs_env {
	struct store *store;          /* the workers' store handle */
	const char *owner;            /* installation id, written as owner= */
	const char *crash_at;         /* VA_TEST_CRASH_AT, or NULL */
	int64_t deadline_ms;          /* a provisioning's bound after its
					 base image; 0: JOBS_DEADLINE_MS */
};

#define JOBS_DEADLINE_MS (10 * 60 * 1000)

enum job_kind {
	JOB_PROVISION,
	JOB_REMOVE,
	JOB_WARM,       /* park or resume a warm pool instance (warm.h) */
	JOB_KIND_LAST
};

struct warm_spec;

/* What the loop learns when a job ends. */
struct job_result {
	enum job_kind kind;
	char id[STORE_ID_LEN + 1];
	char *group;
	bool ok;
	bool retry;     /* JOB_WARM: not done, the host was not reachable */
	int op;         /* JOB_WARM: enum warm_op */
};

/* A removal: the instance (already draining or deleting in the store). */
struct remove_spec {
	const char *id, *group;
	const char *host_name, *uri, *pool;
	const char *domain;           /* NULL: unknown (nothing defined) */
	int64_t drain_ms;             /* graceful shutdown wait */
	bool host_down;               /* not connected when submitted: the
					 worker does not try to connect */
};

/*
 * A job records a step of its journal entry: a fenced store (another
 * daemon took the lease) stops the job, and so does a passed deadline
 * (monotonic ms; 0: none). Other store errors are only logged: the
 * journal's recovery copes with a missing step. 0, or -1 with err_set().
 */
int jobs_journal_step(const struct jobs_env *env, int64_t jid,
		      enum store_journal_step step, int64_t deadline_ms);

struct job_queue *jobs_start(const struct jobs_env *env, unsigned threads);
/*
 * Stop: queued jobs are dropped (they stay journaled), running ones get
 * up to wait_ms to finish. True when every worker ended and the queue is
 * freed; false when some were abandoned (still running: the caller must
 * not free what env points to, and should exit).
 */
bool jobs_stop(struct job_queue *q, int64_t wait_ms);

/* Queue a provisioning (the instance is stored as 'requested'); takes spec. */
void jobs_provision(struct job_queue *q, struct provision_spec *spec);
/* Queue a removal; copies r. */
void jobs_remove(struct job_queue *q, const struct remove_spec *r);
/* Queue a park or a resume (the instance is warming or resuming); copies w. */
void jobs_warm(struct job_queue *q, const struct warm_spec *w);

/* The results of the jobs that ended since the last call (caller frees
 * with jobs_results_free). Returns how many. */
size_t jobs_reap(struct job_queue *q, struct job_result **out);
void jobs_results_free(struct job_result *v, size_t n);

/* Jobs queued or running. */
unsigned jobs_pending(struct job_queue *q);
/* Is a job for this instance queued or running? */
bool jobs_busy_with(struct job_queue *q, const char *id);
/* The ids of every instance a job is queued or running for, sorted
 * (bsearch with strcmp), into *out (caller frees). Returns how many. */
size_t jobs_busy(struct job_queue *q, char (**out)[STORE_ID_LEN + 1]);

#endif
