/*
 * collect_parse.c: what the collector reads from libvirt's answers: the
 * facts of a domain's XML (vCPUs, memory, our metadata) and one domain's
 * typed parameters of the bulk stats call (see collect.h).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "collect.h"
#include "log.h"
#include "util.h"

/* ---- domain XML --------------------------------------------------------- */

void
collect_facts_release(struct collect_facts *f)
{
	if (!f)
		return;
	memset(f, 0, sizeof(*f));
}

static bool
name_is(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE &&
	       strcmp((const char *)n->name, name) == 0;
}

static bool
parse_u64(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end)
		return false;
	*out = v;
	return true;
}

/* Text content of an element as an unsigned number. */
static bool
node_u64(xmlNode *n, uint64_t *out)
{
	xmlChar *t = xmlNodeGetContent(n);
	bool ok;

	if (!t)
		return false;
	ok = parse_u64((const char *)t, out);
	xmlFree(t);
	return ok;
}

static bool
node_attr_u64(xmlNode *n, const char *attr, uint64_t *out)
{
	xmlChar *t = xmlGetProp(n, (const xmlChar *)attr);
	bool ok;

	if (!t)
		return false;
	ok = parse_u64((const char *)t, out);
	xmlFree(t);
	return ok;
}

/* <memory unit='KiB'>N</memory> in KiB. */
static bool
node_mem_kib(xmlNode *n, uint64_t *out)
{
	static const struct {
		const char *unit;
		uint64_t mul, div;
	} units[] = {
		{"b", 1, 1024},      {"bytes", 1, 1024},
		{"k", 1, 1},         {"KiB", 1, 1},
		{"M", 1024, 1},      {"MiB", 1024, 1},
		{"G", 1048576, 1},   {"GiB", 1048576, 1},
	};
	xmlChar *unit = xmlGetProp(n, (const xmlChar *)"unit");
	uint64_t v, mul = 1, div = 1;
	bool ok = false;

	if (!node_u64(n, &v))
		goto cleanup;
	if (unit) {
		size_t i;

		for (i = 0; i < ARRAY_SIZE(units); i++)
			if (strcmp((const char *)unit, units[i].unit) == 0)
				break;
		if (i == ARRAY_SIZE(units))
			goto cleanup;
		mul = units[i].mul;
		div = units[i].div;
	}
	if (v > UINT64_MAX / mul)
		goto cleanup;
	*out = v * mul / div;
	ok = true;
cleanup:
	xmlFree(unit);
	return ok;
}

int
collect_parse_domain_xml(const char *xml, size_t len, struct collect_facts *out,
			 const char **why)
{
	xmlDoc *doc = NULL;
	xmlNode *root;
	uint64_t v;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (why)
		*why = NULL;
	if (len > INT32_MAX) {
		err_set("domain XML: too large");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)len, "domain.xml", NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING | XML_PARSE_NOBLANKS);
	if (!doc) {
		err_set("domain XML: not well-formed");
		goto cleanup;
	}
	root = xmlDocGetRootElement(doc);
	if (!root || !name_is(root, "domain")) {
		err_set("domain XML: root element is not <domain>");
		goto cleanup;
	}
	/* our <va:instance>: domxml.c's parser, the one every module uses */
	switch (domxml_meta_from_domain(root, &out->meta)) {
	case 1:
		out->ours = true;
		break;
	case -1:
		if (why)
			*why = err_msg();
		break;
	default:
		break;
	}
	for (xmlNode *n = root->children; n; n = n->next) {
		if (name_is(n, "vcpu")) {
			if (node_attr_u64(n, "current", &v) ||
			    node_u64(n, &v))
				out->vcpus = v > UINT32_MAX ? UINT32_MAX
							    : (unsigned)v;
		} else if (name_is(n, "currentMemory")) {
			node_mem_kib(n, &out->mem_kib);
		} else if (name_is(n, "memory")) {
			if (!out->mem_kib)
				node_mem_kib(n, &out->mem_kib);
		} else if (name_is(n, "devices")) {
			for (xmlNode *d = n->children; d; d = d->next) {
				xmlChar *dev;

				if (!name_is(d, "disk"))
					continue;
				dev = xmlGetProp(d, (const xmlChar *)"device");
				if (!dev || strcmp((const char *)dev, "disk") == 0)
					out->disks++;
				xmlFree(dev);
			}
		}
	}
	rc = 0;
cleanup:
	xmlFreeDoc(doc);
	return rc;
}

/* ---- typed parameters ------------------------------------------------- */

static bool
param_u64(const virTypedParameter *p, uint64_t *out)
{
	switch (p->type) {
	case VIR_TYPED_PARAM_INT:
		if (p->value.i < 0)
			return false;
		*out = (uint64_t)p->value.i;
		return true;
	case VIR_TYPED_PARAM_UINT:
		*out = p->value.ui;
		return true;
	case VIR_TYPED_PARAM_LLONG:
		if (p->value.l < 0)
			return false;
		*out = (uint64_t)p->value.l;
		return true;
	case VIR_TYPED_PARAM_ULLONG:
		*out = p->value.ul;
		return true;
	default:
		return false;
	}
}

static void
sample_set(struct rates_sample *s, enum rates_field f, uint64_t *dst,
	   uint64_t v)
{
	*dst = v;
	s->present |= 1u << f;
}

static void
sample_add(struct rates_sample *s, enum rates_field f, uint64_t *dst,
	   uint64_t v)
{
	*dst = (rates_sample_has(s, f) ? *dst : 0) + v;
	s->present |= 1u << f;
}

/* "block.3.rd.bytes" with prefix "block." -> suffix "rd.bytes"; false for
 * "block.count" and the like. */
static const char *
indexed_suffix(const char *field, const char *prefix)
{
	size_t n = strlen(prefix);
	const char *p;

	if (strncmp(field, prefix, n) != 0)
		return NULL;
	p = field + n;
	if (*p < '0' || *p > '9')
		return NULL;
	while (*p >= '0' && *p <= '9')
		p++;
	return *p == '.' ? p + 1 : NULL;
}

void
collect_parse_stats(const virTypedParameter *params, int nparams,
		    struct rates_sample *s)
{
	static const struct {
		const char *field;
		enum rates_field f;
		size_t off;
	} scalars[] = {
		{"cpu.time", RATES_F_CPU_TIME, offsetof(struct rates_sample, cpu_time)},
		{"balloon.current", RATES_F_BAL_CURRENT, offsetof(struct rates_sample, bal_current)},
		{"balloon.maximum", RATES_F_BAL_MAXIMUM, offsetof(struct rates_sample, bal_maximum)},
		{"balloon.available", RATES_F_BAL_AVAILABLE, offsetof(struct rates_sample, bal_available)},
		{"balloon.usable", RATES_F_BAL_USABLE, offsetof(struct rates_sample, bal_usable)},
		{"balloon.unused", RATES_F_BAL_UNUSED, offsetof(struct rates_sample, bal_unused)},
		{"balloon.last-update", RATES_F_BAL_LAST_UPDATE, offsetof(struct rates_sample, bal_last_update)},
	};
	static const struct {
		const char *suffix;
		enum rates_field f;
		size_t off;
	} blocks[] = {
		{"rd.bytes", RATES_F_RD_BYTES, offsetof(struct rates_sample, rd_bytes)},
		{"wr.bytes", RATES_F_WR_BYTES, offsetof(struct rates_sample, wr_bytes)},
		{"rd.reqs", RATES_F_RD_REQS, offsetof(struct rates_sample, rd_reqs)},
		{"wr.reqs", RATES_F_WR_REQS, offsetof(struct rates_sample, wr_reqs)},
	}, nets[] = {
		{"rx.bytes", RATES_F_RX_BYTES, offsetof(struct rates_sample, rx_bytes)},
		{"tx.bytes", RATES_F_TX_BYTES, offsetof(struct rates_sample, tx_bytes)},
	};

	memset(s, 0, sizeof(*s));
	s->state = -1;
	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];
		const char *field = p->field, *suf;
		uint64_t v;

		if (!param_u64(p, &v))
			continue;
		switch (field[0]) {
		case 's':
			if (strcmp(field, "state.state") == 0 && v <= INT32_MAX) {
				s->state = (int)v;
				s->present |= 1u << RATES_F_STATE;
			}
			break;
		case 'c':
		case 'b':
			if (strcmp(field, "block.count") == 0) {
				s->block_count = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
				s->present |= 1u << RATES_F_BLOCK_COUNT;
				break;
			}
			if ((suf = indexed_suffix(field, "block."))) {
				for (size_t k = 0; k < ARRAY_SIZE(blocks); k++)
					if (strcmp(suf, blocks[k].suffix) == 0)
						sample_add(s, blocks[k].f,
							   (uint64_t *)((char *)s + blocks[k].off),
							   v);
				break;
			}
			for (size_t k = 0; k < ARRAY_SIZE(scalars); k++)
				if (strcmp(field, scalars[k].field) == 0)
					sample_set(s, scalars[k].f,
						   (uint64_t *)((char *)s + scalars[k].off),
						   v);
			break;
		case 'n':
			if (strcmp(field, "net.count") == 0) {
				s->net_count = v > UINT32_MAX ? UINT32_MAX : (unsigned)v;
				s->present |= 1u << RATES_F_NET_COUNT;
				break;
			}
			if ((suf = indexed_suffix(field, "net.")))
				for (size_t k = 0; k < ARRAY_SIZE(nets); k++)
					if (strcmp(suf, nets[k].suffix) == 0)
						sample_add(s, nets[k].f,
							   (uint64_t *)((char *)s + nets[k].off),
							   v);
			break;
		default:
			break;
		}
	}
}
