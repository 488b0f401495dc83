/*
 * targets.c: rendering a group's load-balancer members, the atomic file
 * write and the writer thread with its reload POST (see targets.h).
 */
#include "targets.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>


#include "log.h"
#include "url.h"

LOG_TAG("targets");

bool
targets_addr_valid(const char *s)
{
	unsigned char b[16];
	char back[TARGETS_ADDR_LEN];
	int af = strchr(s, ':') ? AF_INET6 : AF_INET;

	if (strlen(s) >= sizeof(back) || inet_pton(af, s, b) != 1 ||
	    !inet_ntop(af, b, back, sizeof(back)))
		return false;
	return strcmp(back, s) == 0;
}

bool
targets_id_valid(const char *s)
{
	for (int i = 0; i < 36; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-'
			 : !((s[i] >= '0' && s[i] <= '9') ||
			     (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	}
	return s[36] == '\0';
}

const char *
targets_format_name(enum config_targets_format f)
{
	switch (f) {
	case CONFIG_TARGETS_HAPROXY:
		return "haproxy";
	case CONFIG_TARGETS_NGINX:
		return "nginx";
	default:
		return "plain";
	}
}

/* ADDR:PORT, [ADDR6]:PORT, or ADDR alone without a port. */
static void
add_hostport(struct strbuf *out, const char *addr, int port)
{
	bool v6 = strchr(addr, ':') != NULL;

	if (!port) {
		strbuf_adds(out, addr);
		return;
	}
	strbuf_addf(out, v6 ? "[%s]:%d" : "%s:%d", addr, port);
}

size_t
targets_render(enum config_targets_format f, const char *group, int port,
	       const struct targets_entry *v, size_t n, struct strbuf *out)
{
	size_t left_out = 0;

	/* group names are configuration names ([A-Za-z0-9._-]) */
	strbuf_addf(out, "# virt-autoscaler: the ready instances of group %s (%s), "
		    "rewritten on every change\n",
		    group, targets_format_name(f));
	/* HAProxy has no include: the file is a section of its own, loaded
	 * with a second -f (a section does not continue across files) */
	if (f == CONFIG_TARGETS_HAPROXY)
		strbuf_addf(out, "backend %s\n", group);
	for (size_t i = 0; i < n; i++) {
		if (!targets_id_valid(v[i].id) || !targets_addr_valid(v[i].addr)) {
			left_out++;
			continue;
		}
		switch (f) {
		case CONFIG_TARGETS_HAPROXY:
			strbuf_addf(out, "    server %s ", v[i].id);
			add_hostport(out, v[i].addr, port);
			strbuf_adds(out, " check\n");
			break;
		case CONFIG_TARGETS_NGINX:
			strbuf_adds(out, "server ");
			add_hostport(out, v[i].addr, port);
			strbuf_adds(out, ";\n");
			break;
		default:
			add_hostport(out, v[i].addr, port);
			strbuf_addc(out, '\n');
			break;
		}
	}
	return left_out;
}

int
targets_write_file(const char *path, const char *data, size_t len)
{
	char *dcopy = xstrdup(path);
	const char *dir = dirname(dcopy);
	char *tmp = xasprintf("%s.tmp.XXXXXX", path);
	int fd = mkstemp(tmp), dfd = -1, rc = -1;
	size_t off = 0;

	if (fd < 0) {
		err_set("%s: cannot create a temporary file beside it: %s", path,
			strerror(errno));
		goto cleanup;
	}
	while (off < len) {
		ssize_t w = write(fd, data + off, len - off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			err_set("%s: write: %s", tmp, strerror(errno));
			goto fail;
		}
		off += (size_t)w;
	}
	if (fchmod(fd, 0644) != 0 || fsync(fd) != 0) {
		err_set("%s: %s", tmp, strerror(errno));
		goto fail;
	}
	if (close(fd) != 0) {
		fd = -1;
		err_set("%s: close: %s", tmp, strerror(errno));
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) != 0) {
		err_set("%s: cannot rename %s over it: %s", path, tmp,
			strerror(errno));
		goto fail;
	}
	/* the rename itself durable */
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	rc = 0;
	goto cleanup;
fail:
	if (fd >= 0)
		close(fd);
	unlink(tmp);
cleanup:
	free(tmp);
	free(dcopy);
	return rc;
}

/* ---- the writer thread -------------------------------------------------- */

struct targets_writer {
	pthread_t thread;
	pthread_mutex_t m;
	pthread_cond_t cond;
	bool stop;
	char *group;
	/* posted, not taken yet (under m) */
	bool pending;
	char *path, *content, *url;
};

/* Abandon a transfer when the writer stops or newer content waits. */
static bool
superseded(void *arg)
{
	struct targets_writer *w = arg;
	bool quit;

	pthread_mutex_lock(&w->m);
	quit = w->stop || w->pending;
	pthread_mutex_unlock(&w->m);
	return quit;
}

/* One POST; 0 on a 2xx answer, -1 with *why filled. */
static int
post(struct targets_writer *w, const char *url, char *why, size_t whylen)
{
	return url_post(url, "", 0, NULL, (long)TARGETS_POST_TIMEOUT_MS,
			superseded, w, why, whylen);
}

static void *
writer_main(void *arg)
{
	struct targets_writer *w = arg;
	char *path = NULL, *content = NULL, *url = NULL;
	int64_t backoff = 0, retry_at = 0;
	unsigned failures = 0;

	pthread_mutex_lock(&w->m);
	for (;;) {
		while (!w->stop && !w->pending && !url) {
			pthread_cond_wait(&w->cond, &w->m);
		}
		if (w->stop)
			break;
		if (!w->pending && url) {
			/* a POST waits for its retry */
			struct timespec ts;
			int64_t wait = retry_at - util_now_ms();

			if (wait > 0) {
				util_mono_deadline(wait, &ts);
				pthread_cond_timedwait(&w->cond, &w->m, &ts);
				continue;
			}
		}
		if (w->pending) {
			free(path);
			free(content);
			free(url);
			path = w->path;
			content = w->content;
			url = w->url;
			w->path = w->content = w->url = NULL;
			w->pending = false;
			pthread_mutex_unlock(&w->m);
			if (targets_write_file(path, content, strlen(content)) != 0) {
				log_warn("group %s: targets file not written: %s",
					 w->group, err_msg());
				free(url);
				url = NULL; /* nothing changed to reload */
			} else {
				log_debug("group %s: wrote %s", w->group, path);
			}
			backoff = 0;
			failures = 0;
			pthread_mutex_lock(&w->m);
			continue;
		}
		/* url set, its time has come */
		pthread_mutex_unlock(&w->m);
		{
			char why[URL_POST_WHY_MAX];

			if (post(w, url, why, sizeof(why)) == 0) {
				if (failures)
					log_info("group %s: reload URL answered after %u failures",
						 w->group, failures);
				free(url);
				url = NULL;
			} else {
				failures++;
				backoff = backoff ? backoff * 2 : TARGETS_RETRY_FIRST_MS;
				if (backoff > TARGETS_RETRY_MAX_MS)
					backoff = TARGETS_RETRY_MAX_MS;
				retry_at = util_now_ms() + backoff;
				if (failures <= 3 || failures % 10 == 0)
					log_warn("group %s: reload URL: %s (failure %u; next try in %" PRId64 " ms)",
						 w->group, why, failures, backoff);
			}
		}
		pthread_mutex_lock(&w->m);
	}
	pthread_mutex_unlock(&w->m);
	free(path);
	free(content);
	free(url);
	return NULL;
}

struct targets_writer *
targets_writer_new(const char *group)
{
	struct targets_writer *w = xcalloc(1, sizeof(*w));
	pthread_condattr_t ca;
	int rc;

	pthread_mutex_init(&w->m, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&w->cond, &ca);
	pthread_condattr_destroy(&ca);
	w->group = xstrdup(group);
	rc = pthread_create(&w->thread, NULL, writer_main, w);
	if (rc != 0) {
		err_set("group %s: cannot start the targets writer: %s", group,
			strerror(rc));
		pthread_cond_destroy(&w->cond);
		pthread_mutex_destroy(&w->m);
		free(w->group);
		free(w);
		return NULL;
	}
	return w;
}

void
targets_writer_post(struct targets_writer *w, const char *path,
		    const char *content, const char *url)
{
	pthread_mutex_lock(&w->m);
	free(w->path);
	free(w->content);
	free(w->url);
	w->path = xstrdup(path);
	w->content = xstrdup(content);
	w->url = url ? xstrdup(url) : NULL;
	w->pending = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->m);
}

void
targets_writer_free(struct targets_writer *w)
{
	if (!w)
		return;
	pthread_mutex_lock(&w->m);
	w->stop = true;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->m);
	pthread_join(w->thread, NULL);
	free(w->path);
	free(w->content);
	free(w->url);
	free(w->group);
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->m);
	free(w);
}
