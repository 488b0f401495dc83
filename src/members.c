/*
 * members.c: each group's load-balancer members, from the store's ready
 * instances and the addresses the hosts' inventories found (members.h).
 */
#include "members.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "daemon_int.h"
#include "log.h"
#include "targets.h"
#include "util.h"

LOG_TAG("members");

/* The addresses one host's last pass found. */
struct maddrs {
	char *host;
	struct targets_entry *v; /* sorted by id */
	size_t n;
};

/* One group's members as last listed, and its file. */
struct mgroup {
	char *name;
	struct targets_entry *v; /* sorted by id */
	size_t n, pending;
	bool known;
	char *rendered;          /* what was last posted to the writer */
	char *file;              /* ... to this file */
	struct targets_writer *w;
	bool seen;               /* in the configuration at the last tick */
};

struct members {
	struct maddrs *hosts;
	size_t n_hosts;
	/* every host's addresses, sorted by id: made again only after a
	 * host's change, not at every turn's publish */
	struct targets_entry *addrs;
	size_t n_addrs;
	bool addrs_stale;
	struct mgroup *groups;
	size_t n_groups;
	int64_t next_ms;
	/* what the last tick read: the listing's generation (0: unknown),
	 * the configuration's; hosts_changed when an inventory's addresses
	 * changed since. All the same: the members are too. */
	int64_t last_gen, last_config_gen;
	bool hosts_changed;
};

static int
entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct targets_entry *)a)->id,
		      ((const struct targets_entry *)b)->id);
}

static struct members *
members_get(struct daemon *d)
{
	if (!d->members)
		d->members = xcalloc(1, sizeof(*d->members));
	return d->members;
}

static void
mgroup_release(struct mgroup *g)
{
	targets_writer_free(g->w);
	free(g->name);
	xrc_put(g->v);
	free(g->rendered);
	free(g->file);
}

void
members_free(struct members *m)
{
	if (!m)
		return;
	for (size_t i = 0; i < m->n_hosts; i++) {
		free(m->hosts[i].host);
		free(m->hosts[i].v);
	}
	free(m->hosts);
	xrc_put(m->addrs);
	for (size_t i = 0; i < m->n_groups; i++)
		mgroup_release(&m->groups[i]);
	free(m->groups);
	free(m);
}

void
members_host_addresses(struct daemon *d, const char *host,
		       const struct inventory_result *res)
{
	struct members *m = members_get(d);
	struct maddrs *h = NULL;
	struct targets_entry *v;
	size_t n = 0;

	for (size_t i = 0; i < m->n_hosts; i++)
		if (strcmp(m->hosts[i].host, host) == 0)
			h = &m->hosts[i];
	if (!h) {
		m->hosts = xreallocarray(m->hosts, m->n_hosts + 1, sizeof(*m->hosts));
		h = &m->hosts[m->n_hosts++];
		memset(h, 0, sizeof(*h));
		h->host = xstrdup(host);
	}
	v = xcalloc(res->n_domains + 1, sizeof(*v));
	for (size_t i = 0; i < res->n_domains; i++) {
		const struct inventory_domain *dom = &res->domains[i];

		if (!dom->meta || !dom->address[0] ||
		    !targets_id_valid(dom->meta->id) ||
		    !targets_addr_valid(dom->address))
			continue;
		/* both checked: a UUID, an address that fits */
		memcpy(v[n].id, dom->meta->id, STORE_ID_LEN + 1);
		memcpy(v[n].addr, dom->address, sizeof(v[0].addr));
		n++;
	}
	if (n)
		qsort(v, n, sizeof(*v), entry_cmp);
	/* a pass every 30 s that found what the last one did changes
	 * nothing (entries are zeroed, then copied whole: memcmp is exact) */
	if (n == h->n && (n == 0 || memcmp(v, h->v, n * sizeof(*v)) == 0)) {
		free(v);
		return;
	}
	free(h->v);
	h->v = v;
	h->n = n;
	m->addrs_stale = true;
	m->hosts_changed = true;
}

/* The discovered address of instance id, or NULL. */
static const char *
discovered(const struct members *m, const char *id)
{
	struct targets_entry key;

	if (strlen(id) > STORE_ID_LEN)
		return NULL;
	memcpy(key.id, id, strlen(id) + 1);
	for (size_t i = 0; i < m->n_hosts; i++) {
		const struct targets_entry *e;

		if (!m->hosts[i].n)
			continue;
		e = bsearch(&key, m->hosts[i].v, m->hosts[i].n,
			    sizeof(key), entry_cmp);
		if (e)
			return e->addr;
	}
	return NULL;
}

static struct mgroup *
mgroup_get(struct members *m, const char *name)
{
	struct mgroup *g;

	for (size_t i = 0; i < m->n_groups; i++)
		if (strcmp(m->groups[i].name, name) == 0)
			return &m->groups[i];
	m->groups = xreallocarray(m->groups, m->n_groups + 1, sizeof(*m->groups));
	g = &m->groups[m->n_groups++];
	memset(g, 0, sizeof(*g));
	g->name = xstrdup(name);
	return g;
}

/* Render g's members per its configuration; post when the file's content
 * (or the file) changed. */
static void
render(struct mgroup *g, const struct config_targets *tc)
{
	struct strbuf sb = STRBUF_INIT;
	char *text;
	size_t bad;

	if (!tc->file) {
		targets_writer_free(g->w);
		g->w = NULL;
		free(g->rendered);
		free(g->file);
		g->rendered = g->file = NULL;
		return;
	}
	bad = targets_render(tc->format, g->name, tc->port, g->v, g->n, &sb);
	if (bad)
		log_warn("group %s: %zu members left out of %s: not an IP address or an instance id",
			 g->name, bad, tc->file);
	text = strbuf_detach(&sb);
	if (g->rendered && g->file && strcmp(g->rendered, text) == 0 &&
	    strcmp(g->file, tc->file) == 0) {
		free(text);
		return;
	}
	if (!g->w) {
		g->w = targets_writer_new(g->name);
		if (!g->w) {
			log_warn("%s", err_msg());
			free(text);
			return;
		}
	}
	log_info("group %s: %zu members (%zu ready without an address yet): rewriting %s",
		 g->name, g->n, g->pending, tc->file);
	targets_writer_post(g->w, tc->file, text, tc->reload_url);
	free(g->rendered);
	free(g->file);
	g->rendered = text;
	g->file = xstrdup(tc->file);
}

void
members_tick(struct daemon *d, int64_t now)
{
	struct members *m = members_get(d);
	struct store_instance_filter f = {
		.state_mask = STORE_STATE_BIT(STORE_INSTANCE_READY),
	};
	struct store_instance_list l = {0};
	size_t j;

	int64_t gen;

	if (now < m->next_ms)
		return;
	m->next_ms = now + MEMBERS_PERIOD_MS;
	/* nothing they are made of changed: the same members (at 5,000
	 * instances the listing and the walk below were a few milliseconds
	 * every 2 s); 0: no generation to tell, list */
	if (store_instance_generation(d->store, &gen) == STORE_OK && gen > 0 &&
	    gen == m->last_gen && !m->hosts_changed &&
	    d->config_gen == m->last_config_gen && m->n_groups == d->n_groups)
		return;
	if (store_instance_list(d->store, &f, &l) != STORE_OK) {
		log_warn("load-balancer members not updated: %s", err_msg());
		return;
	}
	m->last_gen = l.gen;
	m->last_config_gen = d->config_gen;
	m->hosts_changed = false;
	for (size_t i = 0; i < m->n_groups; i++)
		m->groups[i].seen = false;
	for (unsigned gi = 0; gi < d->n_groups; gi++) {
		const struct config_group *gc = d->groups[gi].cfg;
		struct mgroup *g = mgroup_get(m, gc->name);

		size_t room = 0;

		g->seen = true;
		g->n = g->pending = 0;
		xrc_put(g->v);
		/* room for this group's instances, not for all of them: a
		 * calloc of every instance per group every 2 s was a good part
		 * of the loop's time at 5,000 instances in five groups */
		for (size_t i = 0; i < l.n; i++)
			room += strcmp(l.v[i].group, gc->name) == 0;
		/* counted: the snapshots of every turn share it */
		g->v = xrc_calloc(room + 1, sizeof(*g->v));
		for (size_t i = 0; i < l.n; i++) {
			const struct store_instance *si = &l.v[i];
			const char *a;

			if (strcmp(si->group, gc->name) != 0)
				continue;
			a = si->address && targets_addr_valid(si->address)
				    ? si->address
				    : discovered(m, si->id);
			if (!a || !targets_id_valid(si->id)) {
				g->pending++;
				continue;
			}
			memcpy(g->v[g->n].id, si->id, STORE_ID_LEN + 1);
			memcpy(g->v[g->n].addr, a, strlen(a) + 1);
			g->n++;
		}
		if (g->n)
			qsort(g->v, g->n, sizeof(*g->v), entry_cmp);
		g->known = true;
		render(g, &gc->targets);
	}
	/* groups gone with a reload: their writers stop */
	for (size_t i = j = 0; i < m->n_groups; i++) {
		if (!m->groups[i].seen) {
			mgroup_release(&m->groups[i]);
			continue;
		}
		m->groups[j++] = m->groups[i];
	}
	m->n_groups = j;
	store_instance_list_release(&l);
}

void
members_publish(struct daemon *d, struct control_snapshot *s)
{
	struct members *m = d->members;
	size_t n = 0;

	if (!m)
		return;
	for (size_t i = 0; i < s->n_groups; i++) {
		struct control_group *cg = &s->groups[i];
		const struct dgroup *dg = daemon_group(d, cg->name);

		for (size_t k = 0; k < m->n_groups; k++) {
			const struct mgroup *g = &m->groups[k];

			if (strcmp(g->name, cg->name) != 0 || !g->known)
				continue;
			cg->targets = xrc_ref(g->v);
			cg->n_targets = g->n;
			cg->targets_pending = g->pending;
			cg->targets_known = true;
		}
		cg->targets_port = dg ? dg->cfg->targets.port : 0;
	}
	if (m->addrs_stale) {
		for (size_t i = 0; i < m->n_hosts; i++)
			n += m->hosts[i].n;
		xrc_put(m->addrs);
		m->addrs = xrc_calloc(n + 1, sizeof(*m->addrs));
		m->n_addrs = 0;
		for (size_t i = 0; i < m->n_hosts; i++) {
			if (m->hosts[i].n)
				memcpy(m->addrs + m->n_addrs, m->hosts[i].v,
				       m->hosts[i].n * sizeof(*m->addrs));
			m->n_addrs += m->hosts[i].n;
		}
		if (m->n_addrs)
			qsort(m->addrs, m->n_addrs, sizeof(*m->addrs),
			      entry_cmp);
		m->addrs_stale = false;
	}
	/* shared with the snapshot, not copied (control.h) */
	s->addrs = xrc_ref(m->addrs);
	s->n_addrs = m->n_addrs;
}
