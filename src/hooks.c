/*
 * hooks.c: the lifecycle hooks' sender (see hooks.h): a queue of calls,
 * worker threads that POST them with libcurl, the HMAC-SHA256 signature.
 */
#include "hooks.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>

#include "log.h"
#include "url.h"
#include "util.h"


/* One attempt takes at most this long (less when the deadline is nearer). */
#define HOOK_ATTEMPT_MS 10000

enum call_state { CALL_QUEUED, CALL_RUNNING, CALL_DONE };

struct call {
	char id[STORE_ID_LEN + 1];
	char group[256];
	enum store_hook hook;
	char *url, *key, *body;
	int64_t deadline_ms, backoff_ms, backoff_max_ms;
	int64_t next_ms;             /* wall: the next attempt, when queued */
	unsigned attempts;
	enum call_state state;
	bool forgotten;              /* dropped while running: free after */
};

struct hooks {
	pthread_mutex_t m;
	pthread_cond_t c;
	bool stop;
	struct call **v;             /* the calls of this run */
	size_t n, alloc;
	struct hook_report *rep;     /* not taken yet */
	size_t n_rep, alloc_rep;
	pthread_t *threads;
	unsigned n_threads;
};

static const char *const outcome_names[HOOK_OUTCOME_LAST] = {
	[HOOK_SENT] = "sent",
	[HOOK_FAILED] = "failed",
	[HOOK_GAVE_UP] = "gave_up",
};

const char *
hook_outcome_name(enum hook_outcome o)
{
	return (unsigned)o < HOOK_OUTCOME_LAST ? outcome_names[o] : "?";
}

int
hooks_sign(const char *key, size_t key_len, const char *timestamp,
	   const char *body, size_t body_len, char out[65])
{
	size_t tl = strlen(timestamp);
	char *msg = xmalloc(tl + 1 + body_len + 1);
	unsigned char mac[32];
	int rc;

	memcpy(msg, timestamp, tl);
	msg[tl] = '.';
	memcpy(msg + tl + 1, body, body_len);
	rc = gnutls_hmac_fast(GNUTLS_MAC_SHA256, key, key_len, msg,
			      tl + 1 + body_len, mac);
	free(msg);
	if (rc < 0) {
		err_set("HMAC-SHA256: %s", gnutls_strerror(rc));
		return -1;
	}
	for (size_t i = 0; i < sizeof(mac); i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	explicit_bzero(mac, sizeof(mac));
	return 0;
}

static void
call_free(struct call *c)
{
	if (!c)
		return;
	free(c->url);
	if (c->key) {
		explicit_bzero(c->key, strlen(c->key));
		free(c->key);
	}
	if (c->body) {
		/* it carries the call's token */
		explicit_bzero(c->body, strlen(c->body));
		free(c->body);
	}
	free(c);
}

/* Remove v[i] (lock held); frees it unless a worker runs it. */
static void
drop(struct hooks *h, size_t i)
{
	struct call *c = h->v[i];

	h->v[i] = h->v[--h->n];
	if (c->state == CALL_RUNNING)
		c->forgotten = true;
	else
		call_free(c);
}

static ssize_t
find(struct hooks *h, const char *id)
{
	for (size_t i = 0; i < h->n; i++)
		if (strcmp(h->v[i]->id, id) == 0)
			return (ssize_t)i;
	return -1;
}

void
hooks_send(struct hooks *h, const struct hook_call *in)
{
	struct call *c = xcalloc(1, sizeof(*c));
	ssize_t i;

	snprintf(c->id, sizeof(c->id), "%s", in->id);
	snprintf(c->group, sizeof(c->group), "%s", in->group);
	c->hook = in->hook;
	c->url = xstrdup(in->url);
	c->key = xstrdup(in->key);
	c->body = xstrdup(in->body);
	c->deadline_ms = in->deadline_ms;
	c->backoff_ms = in->backoff_ms > 0 ? in->backoff_ms : 1000;
	c->backoff_max_ms = in->backoff_max_ms > c->backoff_ms
				    ? in->backoff_max_ms : c->backoff_ms;
	c->next_ms = 0;
	c->state = CALL_QUEUED;
	pthread_mutex_lock(&h->m);
	if ((i = find(h, c->id)) >= 0)
		drop(h, (size_t)i);
	if (h->n == h->alloc) {
		h->alloc = h->alloc ? 2 * h->alloc : 16;
		h->v = xreallocarray(h->v, h->alloc, sizeof(*h->v));
	}
	h->v[h->n++] = c;
	pthread_cond_broadcast(&h->c);
	pthread_mutex_unlock(&h->m);
}

bool
hooks_known(struct hooks *h, const char *id)
{
	bool known;

	pthread_mutex_lock(&h->m);
	known = find(h, id) >= 0;
	pthread_mutex_unlock(&h->m);
	return known;
}

void
hooks_forget(struct hooks *h, const char *id)
{
	ssize_t i;

	pthread_mutex_lock(&h->m);
	if ((i = find(h, id)) >= 0)
		drop(h, (size_t)i);
	pthread_mutex_unlock(&h->m);
}

size_t
hooks_reports(struct hooks *h, struct hook_report **v)
{
	size_t n;

	pthread_mutex_lock(&h->m);
	*v = h->rep;
	n = h->n_rep;
	h->rep = NULL;
	h->n_rep = h->alloc_rep = 0;
	pthread_mutex_unlock(&h->m);
	return n;
}

/* Lock held. */
static void
report(struct hooks *h, const struct call *c, enum hook_outcome o,
       const char *why)
{
	struct hook_report *r;

	if (h->n_rep == h->alloc_rep) {
		h->alloc_rep = h->alloc_rep ? 2 * h->alloc_rep : 16;
		h->rep = xreallocarray(h->rep, h->alloc_rep, sizeof(*h->rep));
	}
	r = &h->rep[h->n_rep++];
	memset(r, 0, sizeof(*r));
	snprintf(r->id, sizeof(r->id), "%s", c->id);
	snprintf(r->group, sizeof(r->group), "%s", c->group);
	r->hook = c->hook;
	r->outcome = o;
	r->attempt = c->attempts;
	snprintf(r->why, sizeof(r->why), "%s", why ? why : "");
}

/* Abandon a transfer when the module stops. */
static bool
stopping(void *arg)
{
	struct hooks *h = arg;
	bool quit;

	pthread_mutex_lock(&h->m);
	quit = h->stop;
	pthread_mutex_unlock(&h->m);
	return quit;
}

/* One signed POST of a copy of the call; 0 on 2xx, -1 with why. */
static int
post(struct hooks *h, const char *url, const char *key, const char *body,
     enum store_hook hook, long timeout_ms, char *why, size_t whylen)
{
	char ts[32], sig[65], stamp[64], signature[96], name[64];
	const char *const headers[] = {"Content-Type: application/json", stamp,
				       signature, name, NULL};

	snprintf(ts, sizeof(ts), "%" PRId64, util_wall_ms() / 1000);
	if (hooks_sign(key, strlen(key), ts, body, strlen(body), sig) < 0) {
		snprintf(why, whylen, "%s", err_msg());
		return -1;
	}
	snprintf(stamp, sizeof(stamp), "X-VA-Timestamp: %s", ts);
	snprintf(signature, sizeof(signature), "X-VA-Signature: sha256=%s", sig);
	snprintf(name, sizeof(name), "X-VA-Hook: %s", store_hook_name(hook));
	return url_post(url, body, strlen(body), headers, timeout_ms, stopping,
			h, why, whylen);
}

/* The due call with the earliest next attempt (lock held), or NULL and
 * *wait_ms until the next one is due. */
static struct call *
next_due(struct hooks *h, int64_t now, int64_t *wait_ms)
{
	struct call *best = NULL;

	*wait_ms = 1000;
	for (size_t i = 0; i < h->n; i++) {
		struct call *c = h->v[i];

		if (c->state != CALL_QUEUED)
			continue;
		if (c->next_ms <= now) {
			if (!best || c->next_ms < best->next_ms)
				best = c;
		} else if (c->next_ms - now < *wait_ms) {
			*wait_ms = c->next_ms - now;
		}
	}
	return best;
}

static void *
worker_main(void *arg)
{
	struct hooks *h = arg;

	pthread_mutex_lock(&h->m);
	while (!h->stop) {
		int64_t now = util_wall_ms(), wait_ms, left;
		struct call *c = next_due(h, now, &wait_ms);
		char *url, *key, *body, why[256] = "";
		enum store_hook hook;
		int rc;

		if (!c) {
			struct timespec ts;

			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += wait_ms / 1000;
			ts.tv_nsec += (wait_ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&h->c, &h->m, &ts);
			continue;
		}
		left = c->deadline_ms - now;
		if (left <= 0) {
			c->state = CALL_DONE;
			report(h, c, HOOK_GAVE_UP, "the hook's timeout passed");
			continue;
		}
		c->state = CALL_RUNNING;
		c->attempts++;
		url = xstrdup(c->url);
		key = xstrdup(c->key);
		body = xstrdup(c->body);
		hook = c->hook;
		pthread_mutex_unlock(&h->m);
		rc = post(h, url, key, body, hook,
			  (long)(left < HOOK_ATTEMPT_MS ? left : HOOK_ATTEMPT_MS),
			  why, sizeof(why));
		explicit_bzero(key, strlen(key));
		explicit_bzero(body, strlen(body));
		free(url);
		free(key);
		free(body);
		pthread_mutex_lock(&h->m);
		if (c->forgotten) {
			call_free(c);
			continue;
		}
		if (rc == 0) {
			c->state = CALL_DONE;
			report(h, c, HOOK_SENT, NULL);
			continue;
		}
		now = util_wall_ms();
		if (h->stop || now + c->backoff_ms >= c->deadline_ms) {
			c->state = CALL_DONE;
			report(h, c, h->stop ? HOOK_FAILED : HOOK_GAVE_UP, why);
			continue;
		}
		report(h, c, HOOK_FAILED, why);
		c->next_ms = now + c->backoff_ms;
		c->backoff_ms = c->backoff_ms * 2 > c->backoff_max_ms
					? c->backoff_max_ms
					: c->backoff_ms * 2;
		c->state = CALL_QUEUED;
	}
	pthread_mutex_unlock(&h->m);
	return NULL;
}

struct hooks *
hooks_new(unsigned n)
{
	struct hooks *h = xcalloc(1, sizeof(*h));

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
		free(h);
		err_set("hooks: cannot initialise libcurl");
		return NULL;
	}
	pthread_mutex_init(&h->m, NULL);
	pthread_cond_init(&h->c, NULL);
	h->threads = xcalloc(n ? n : 1, sizeof(*h->threads));
	for (unsigned i = 0; i < n; i++) {
		int e = pthread_create(&h->threads[i], NULL, worker_main, h);

		if (e) {
			err_set("hooks: cannot start a thread: %s", strerror(e));
			hooks_free(h);
			return NULL;
		}
		h->n_threads++;
	}
	return h;
}

void
hooks_free(struct hooks *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&h->m);
	h->stop = true;
	pthread_cond_broadcast(&h->c);
	pthread_mutex_unlock(&h->m);
	for (unsigned i = 0; i < h->n_threads; i++)
		pthread_join(h->threads[i], NULL);
	for (size_t i = 0; i < h->n; i++)
		call_free(h->v[i]);
	free(h->v);
	free(h->rep);
	free(h->threads);
	pthread_cond_destroy(&h->c);
	pthread_mutex_destroy(&h->m);
	free(h);
}
