/*
 * scalein.c: see scalein.h.
 */
#include "scalein.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libvirt/virterror.h>

#include "log.h"
#include "util.h"
#include "volume.h"

LOG_TAG("scalein");

static const char *const order_names[SCALEIN_ORDER_LAST] = {
	[SCALEIN_NEWEST] = "newest",
	[SCALEIN_OLDEST] = "oldest",
	[SCALEIN_BUSIEST_HOST_FIRST] = "busiest-host-first",
};

int
scalein_order_parse(const char *s, enum scalein_order *out)
{
	for (int i = 0; i < SCALEIN_ORDER_LAST; i++) {
		if (s && strcmp(s, order_names[i]) == 0) {
			*out = (enum scalein_order)i;
			return 0;
		}
	}
	err_set("unknown scale-in order '%s' (newest, oldest or "
		"busiest-host-first)", s ? s : "");
	return -1;
}

const char *
scalein_order_name(enum scalein_order order)
{
	return order < SCALEIN_ORDER_LAST ? order_names[order] : "?";
}

/* a is newer than b (ties: greater id is newer). */
static bool
newer(const struct scalein_instance *a, const struct scalein_instance *b)
{
	if (a->created_ms != b->created_ms)
		return a->created_ms > b->created_ms;
	return strcmp(a->id, b->id) > 0;
}

static bool
eligible(const struct scalein_instance *i, int64_t now_ms, int64_t max_age)
{
	if (!i->busy)
		return true;
	return max_age > 0 && now_ms - i->busy_since_ms > max_age;
}

static size_t
host_count(const struct scalein_instance *inst, size_t n, const bool *gone,
	   const char *host)
{
	size_t c = 0;

	for (size_t i = 0; i < n; i++)
		if (!gone[i] && strcmp(inst[i].host, host) == 0)
			c++;
	return c;
}

size_t
scalein_choose(const struct scalein_instance *inst, size_t n,
	       enum scalein_order order, size_t count, int64_t now_ms,
	       int64_t busy_max_age_ms, size_t *out)
{
	bool *gone = xcalloc(n ? n : 1, sizeof(*gone));
	size_t chosen = 0;

	while (chosen < count) {
		long best = -1;
		size_t best_load = 0;

		for (size_t i = 0; i < n; i++) {
			const struct scalein_instance *c = &inst[i];
			size_t load;

			if (gone[i] || !eligible(c, now_ms, busy_max_age_ms))
				continue;
			if (best < 0) {
				best = (long)i;
				if (order == SCALEIN_BUSIEST_HOST_FIRST)
					best_load = host_count(inst, n, gone,
							       c->host);
				continue;
			}
			switch (order) {
			case SCALEIN_OLDEST:
				if (newer(&inst[best], c))
					best = (long)i;
				break;
			case SCALEIN_BUSIEST_HOST_FIRST:
				load = host_count(inst, n, gone, c->host);
				if (load > best_load ||
				    (load == best_load && newer(c, &inst[best]))) {
					best = (long)i;
					best_load = load;
				}
				break;
			default:
				if (newer(c, &inst[best]))
					best = (long)i;
				break;
			}
		}
		if (best < 0)
			break;
		gone[best] = true;
		out[chosen++] = (size_t)best;
	}
	free(gone);
	return chosen;
}

/* --- removal -------------------------------------------------------------- */

static int
lv_code(void)
{
	virErrorPtr e = virGetLastError();

	return e ? e->code : VIR_ERR_OK;
}

static const char *
lv_err(void)
{
	const char *m = virGetLastErrorMessage();

	return m ? m : "unknown libvirt error";
}

static void
sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

	nanosleep(&ts, NULL);
}

int
scalein_remove(virConnectPtr conn, const struct scalein_remove_spec *s,
	       bool *graceful)
{
	virDomainPtr dom;
	int rc = -1, active;

	if (graceful)
		*graceful = false;
	dom = virDomainLookupByName(conn, s->domain);
	if (!dom) {
		if (lv_code() != VIR_ERR_NO_DOMAIN) {
			err_set("domain %s: %s", s->domain, lv_err());
			return -1;
		}
		virResetLastError();
		goto volumes; /* gone already */
	}
	active = virDomainIsActive(dom);
	if (active < 0 && lv_code() != VIR_ERR_NO_DOMAIN) {
		err_set("domain %s: %s", s->domain, lv_err());
		goto cleanup;
	}
	if (active == 1 && s->shutdown_timeout_ms > 0) {
		int64_t deadline = util_now_ms() + s->shutdown_timeout_ms;

		if (virDomainShutdown(dom) < 0) {
			log_info("domain %s: graceful shutdown refused (%s): "
				 "destroying it", s->domain, lv_err());
		} else {
			while ((active = virDomainIsActive(dom)) == 1 &&
			       util_now_ms() < deadline)
				sleep_ms(100);
			if (active == 0 && graceful)
				*graceful = true;
			if (active == 1)
				log_info("domain %s: not shut down after %" PRId64
					 " ms: destroying it", s->domain,
					 s->shutdown_timeout_ms);
		}
	}
	if (active != 0 && virDomainDestroy(dom) < 0) {
		int code = lv_code();

		/* not running (any more) or gone: fine */
		if (code != VIR_ERR_OPERATION_INVALID && code != VIR_ERR_NO_DOMAIN) {
			err_set("domain %s: destroy: %s", s->domain, lv_err());
			goto cleanup;
		}
		virResetLastError();
	}
	if (virDomainUndefineFlags(dom, VIR_DOMAIN_UNDEFINE_MANAGED_SAVE |
				   VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA |
				   VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA |
				   VIR_DOMAIN_UNDEFINE_NVRAM) < 0) {
		int code = lv_code();

		if (code == VIR_ERR_NO_DOMAIN) {
			virResetLastError();
		} else if (virDomainUndefine(dom) < 0 &&
			   lv_code() != VIR_ERR_NO_DOMAIN) {
			/* some drivers refuse the flags: plain undefine above */
			err_set("domain %s: undefine: %s", s->domain, lv_err());
			goto cleanup;
		}
	}
	log_debug("domain %s: removed", s->domain);
volumes:
	for (size_t i = 0; i < s->n_volumes; i++) {
		if (volume_delete(conn, s->pool, s->volumes[i]) < 0) {
			err_prefix("domain %s", s->domain);
			goto cleanup;
		}
	}
	rc = 0;
cleanup:
	if (dom)
		virDomainFree(dom);
	return rc;
}
