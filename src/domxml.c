/*
 * domxml.c: see domxml.h. libxml2 tree API only: values are set with
 * xmlNewProp/xmlNodeSetContent-style calls that escape them; no XML is
 * ever assembled as a string.
 */
#include "domxml.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <libxml/parser.h>
#include <libxml/tree.h>
#include <libxml/xmlerror.h>

#include "log.h"
#include "util.h"

#define BAD_CAST_(s) ((const xmlChar *)(s))

int
domxml_name_valid(const char *what, const char *name)
{
	size_t n;

	if (!name || !name[0]) {
		err_set("%s is empty", what);
		return -1;
	}
	n = strlen(name);
	if (n > DOMXML_NAME_MAX) {
		err_set("%s '%.40s...' is too long (%zu characters, at most %d)",
			what, name, n, DOMXML_NAME_MAX);
		return -1;
	}
	if (name[0] == '.' || name[0] == '-') {
		err_set("%s '%s' must not start with '%c'", what, name, name[0]);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)name[i];

		if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' ||
				     c == '-'))) {
			if (isprint(c))
				err_set("%s '%s' has the character '%c' (allowed: "
					"letters, digits, '.', '_', '-')",
					what, name, c);
			else
				err_set("%s has the byte 0x%02x at offset %zu "
					"(allowed: letters, digits, '.', '_', '-')",
					what, c, i);
			return -1;
		}
	}
	return 0;
}

void
domxml_uuid_generate(char out[37])
{
	unsigned char b[16];
	size_t got = 0;

	while (got < sizeof(b)) {
		ssize_t r = getrandom(b + got, sizeof(b) - got, 0);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			fatal("getrandom: %s", strerror(errno));
		}
		got += (size_t)r;
	}
	b[6] = (unsigned char)((b[6] & 0x0f) | 0x40);
	b[8] = (unsigned char)((b[8] & 0x3f) | 0x80);
	snprintf(out, 37,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		 "%02x%02x%02x%02x%02x%02x",
		 b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9],
		 b[10], b[11], b[12], b[13], b[14], b[15]);
}

/* Text values (paths, command line): anything printable, no control bytes. */
static int
text_valid(const char *what, const char *s)
{
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c < 0x20 || c == 0x7f) {
			err_set("%s has the control byte 0x%02x at offset %zu",
				what, c, i);
			return -1;
		}
	}
	return 0;
}

static int
path_valid(const char *what, const char *s)
{
	if (s[0] != '/') {
		err_set("%s '%s' is not an absolute path", what, s);
		return -1;
	}
	return text_valid(what, s);
}

static int
uuid_valid(const char *s)
{
	if (strlen(s) != 36)
		goto bad;
	for (int i = 0; i < 36; i++) {
		if (i == 8 || i == 13 || i == 18 || i == 23) {
			if (s[i] != '-')
				goto bad;
		} else if (!isxdigit((unsigned char)s[i])) {
			goto bad;
		}
	}
	return 0;
bad:
	err_set("uuid '%s' is not of the form xxxxxxxx-xxxx-xxxx-xxxx-"
		"xxxxxxxxxxxx", s);
	return -1;
}

static int
mac_valid(const char *s)
{
	if (strlen(s) != 17)
		goto bad;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2) {
			if (s[i] != ':')
				goto bad;
		} else if (!isxdigit((unsigned char)s[i])) {
			goto bad;
		}
	}
	return 0;
bad:
	err_set("mac '%s' is not of the form 52:54:00:xx:xx:xx", s);
	return -1;
}

static int
format_valid(const char *what, const char *s)
{
	if (!s[0] || strlen(s) > 16)
		goto bad;
	for (size_t i = 0; s[i]; i++)
		if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i]))
			goto bad;
	return 0;
bad:
	err_set("%s format '%s' is not a disk format name (qcow2, raw, ...)",
		what, s);
	return -1;
}

static int
disk_valid(const char *what, const struct domxml_disk *d, bool required)
{
	char *w = NULL;
	int rc = -1;

	if (!d->pool && !d->path) {
		if (required) {
			err_set("%s: neither a pool volume nor a path", what);
			return -1;
		}
		return 0;
	}
	if (d->pool) {
		w = xasprintf("%s pool", what);
		if (domxml_name_valid(w, d->pool) < 0)
			goto cleanup;
		free(w);
		w = xasprintf("%s volume", what);
		if (domxml_name_valid(w, d->volume) < 0)
			goto cleanup;
	} else {
		w = xasprintf("%s path", what);
		if (d->path[0] != '/') {
			err_set("%s '%s' is not absolute", w, d->path);
			goto cleanup;
		}
		if (text_valid(w, d->path) < 0)
			goto cleanup;
	}
	if (d->format && format_valid(what, d->format) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	free(w);
	return rc;
}

static int
spec_valid(const struct domxml_spec *s, bool from_template)
{
	if (domxml_name_valid("domain name", s->name) < 0 ||
	    domxml_name_valid("group name", s->group) < 0 ||
	    domxml_name_valid("instance id", s->instance_id) < 0)
		return -1;
	if (s->uuid && uuid_valid(s->uuid) < 0)
		return -1;
	if (s->owner && uuid_valid(s->owner) < 0) {
		err_prefix("owner");
		return -1;
	}
	if (s->type >= DOMXML_TYPE_LAST || s->net >= DOMXML_NET_LAST) {
		err_set("invalid domain or network type");
		return -1;
	}
	if (s->vcpus < 1 || s->vcpus > 4096) {
		err_set("vcpus %u out of range 1..4096", s->vcpus);
		return -1;
	}
	if (s->memory < 1024 * 1024 || s->memory > (UINT64_C(1) << 50)) {
		err_set("memory %" PRIu64 " bytes out of range 1MiB..1PiB",
			s->memory);
		return -1;
	}
	if (disk_valid("disk", &s->disk, true) < 0 ||
	    disk_valid("seed", &s->seed, false) < 0)
		return -1;
	if (s->kernel && path_valid("kernel", s->kernel) < 0)
		return -1;
	if (s->initrd && path_valid("initrd", s->initrd) < 0)
		return -1;
	if ((s->initrd || s->cmdline) && !s->kernel) {
		err_set("initrd or cmdline given without a kernel");
		return -1;
	}
	if (s->cmdline && text_valid("cmdline", s->cmdline) < 0)
		return -1;
	if (s->net == DOMXML_NET_NETWORK || s->net == DOMXML_NET_BRIDGE) {
		if (domxml_name_valid(s->net == DOMXML_NET_NETWORK ? "network"
								  : "bridge",
				      s->net_source) < 0)
			return -1;
	}
	if (s->mac && mac_valid(s->mac) < 0)
		return -1;
	if (s->console_log && path_valid("console log", s->console_log) < 0)
		return -1;
	(void)from_template;
	return 0;
}

static xmlNodePtr
child(xmlNodePtr parent, const char *name, const char *text)
{
	xmlNodePtr n = xmlNewChild(parent, NULL, BAD_CAST_(name), NULL);

	if (!n)
		fatal("libxml2: out of memory");
	if (text)
		xmlNodeAddContent(n, BAD_CAST_(text));
	return n;
}

static void
prop(xmlNodePtr n, const char *name, const char *value)
{
	if (!xmlSetProp(n, BAD_CAST_(name), BAD_CAST_(value)))
		fatal("libxml2: out of memory");
}

static void
propf(xmlNodePtr n, const char *name, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
propf(xmlNodePtr n, const char *name, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	prop(n, name, strbuf_str(&sb));
	strbuf_release(&sb);
}

static void
add_disk(xmlNodePtr devices, const struct domxml_disk *d, const char *dev,
	 bool seed)
{
	xmlNodePtr disk = child(devices, "disk", NULL);
	xmlNodePtr n;

	prop(disk, "type", d->pool ? "volume" : "file");
	prop(disk, "device", "disk");
	n = child(disk, "driver", NULL);
	prop(n, "name", "qemu");
	prop(n, "type", d->format ? d->format : seed ? "raw" : "qcow2");
	n = child(disk, "source", NULL);
	if (d->pool) {
		prop(n, "pool", d->pool);
		prop(n, "volume", d->volume);
	} else {
		prop(n, "file", d->path);
	}
	n = child(disk, "target", NULL);
	prop(n, "dev", dev);
	prop(n, "bus", "virtio");
	if (seed) {
		child(disk, "readonly", NULL);
		child(disk, "serial", "cidata");
	}
}

static void
add_interface(xmlNodePtr devices, const struct domxml_spec *s)
{
	xmlNodePtr i, n;

	if (s->net == DOMXML_NET_NONE)
		return;
	i = child(devices, "interface", NULL);
	switch (s->net) {
	case DOMXML_NET_NETWORK:
		prop(i, "type", "network");
		break;
	case DOMXML_NET_BRIDGE:
		prop(i, "type", "bridge");
		break;
	default:
		prop(i, "type", "user");
		break;
	}
	if (s->mac) {
		n = child(i, "mac", NULL);
		prop(n, "address", s->mac);
	}
	if (s->net == DOMXML_NET_NETWORK || s->net == DOMXML_NET_BRIDGE) {
		n = child(i, "source", NULL);
		prop(n, s->net == DOMXML_NET_NETWORK ? "network" : "bridge",
		     s->net_source);
	}
	n = child(i, "model", NULL);
	prop(n, "type", "virtio");
}

static void
set_memory(xmlNodePtr n, uint64_t bytes)
{
	char buf[32];

	xmlNodeSetContent(n, NULL);
	snprintf(buf, sizeof(buf), "%" PRIu64, (bytes + 1023) / 1024);
	xmlNodeAddContent(n, BAD_CAST_(buf));
	prop(n, "unit", "KiB");
}

static void
add_metadata(xmlNodePtr metadata, const struct domxml_spec *s)
{
	xmlNodePtr inst = xmlNewChild(metadata, NULL, BAD_CAST_("instance"), NULL);
	xmlNsPtr ns;

	if (!inst)
		fatal("libxml2: out of memory");
	ns = xmlNewNs(inst, BAD_CAST_(DOMXML_NS_URI), BAD_CAST_(DOMXML_NS_PREFIX));
	if (!ns)
		fatal("libxml2: out of memory");
	xmlSetNs(inst, ns);
	prop(inst, "group", s->group);
	prop(inst, "id", s->instance_id);
	propf(inst, "generation", "%" PRIu64, s->generation);
	if (s->owner)
		prop(inst, "owner", s->owner);
}

static int
dump(xmlDocPtr doc, char **out)
{
	xmlChar *mem = NULL;
	int size = 0;

	xmlDocDumpFormatMemoryEnc(doc, &mem, &size, "UTF-8", 1);
	if (!mem)
		fatal("libxml2: out of memory");
	*out = xstrndup((const char *)mem, (size_t)size);
	xmlFree(mem);
	return 0;
}

int
domxml_build(const struct domxml_spec *s, char **xml_out)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr dom, os, n, devices, feat;
	char buf[32];
	int rc = -1;

	if (spec_valid(s, false) < 0)
		goto cleanup;
	doc = xmlNewDoc(BAD_CAST_("1.0"));
	dom = xmlNewNode(NULL, BAD_CAST_("domain"));
	if (!doc || !dom)
		fatal("libxml2: out of memory");
	xmlDocSetRootElement(doc, dom);
	prop(dom, "type", s->type == DOMXML_TYPE_KVM ? "kvm" : "qemu");
	child(dom, "name", s->name);
	if (s->uuid)
		child(dom, "uuid", s->uuid);
	add_metadata(child(dom, "metadata", NULL), s);
	set_memory(child(dom, "memory", NULL), s->memory);
	set_memory(child(dom, "currentMemory", NULL), s->memory);
	snprintf(buf, sizeof(buf), "%u", s->vcpus);
	child(dom, "vcpu", buf);

	os = child(dom, "os", NULL);
	child(os, "type", "hvm");
	if (s->kernel) {
		child(os, "kernel", s->kernel);
		if (s->initrd)
			child(os, "initrd", s->initrd);
		if (s->cmdline)
			child(os, "cmdline", s->cmdline);
	} else {
		prop(child(os, "boot", NULL), "dev", "hd");
	}
	feat = child(dom, "features", NULL);
	child(feat, "acpi", NULL);
	child(feat, "apic", NULL);
	if (s->type == DOMXML_TYPE_KVM)
		prop(child(dom, "cpu", NULL), "mode", "host-passthrough");
	child(dom, "on_poweroff", "destroy");
	child(dom, "on_reboot", "restart");
	child(dom, "on_crash", "destroy");

	devices = child(dom, "devices", NULL);
	add_disk(devices, &s->disk, "vda", false);
	if (s->seed.pool || s->seed.path)
		add_disk(devices, &s->seed, "vdb", true);
	add_interface(devices, s);
	n = child(devices, "serial", NULL);
	prop(n, "type", "pty");
	if (s->console_log) {
		xmlNodePtr log = child(n, "log", NULL);

		prop(log, "file", s->console_log);
		prop(log, "append", "off");
	}
	prop(child(n, "target", NULL), "port", "0");
	n = child(devices, "console", NULL);
	prop(n, "type", "pty");
	n = child(n, "target", NULL);
	prop(n, "type", "serial");
	prop(n, "port", "0");
	if (s->guest_agent) {
		n = child(devices, "channel", NULL);
		prop(n, "type", "unix");
		n = child(n, "target", NULL);
		prop(n, "type", "virtio");
		prop(n, "name", "org.qemu.guest_agent.0");
	}
	n = child(devices, "memballoon", NULL);
	prop(n, "model", "virtio");
	if (s->balloon_period > 0)
		propf(child(n, "stats", NULL), "period", "%u", s->balloon_period);
	rc = dump(doc, xml_out);
cleanup:
	xmlFreeDoc(doc);
	return rc;
}

/* First child element of parent called name (no namespace), or NULL. */
static xmlNodePtr
find_child(xmlNodePtr parent, const char *name)
{
	for (xmlNodePtr c = parent->children; c; c = c->next)
		if (c->type == XML_ELEMENT_NODE && !c->ns &&
		    xmlStrEqual(c->name, BAD_CAST_(name)))
			return c;
	return NULL;
}

/* Replace the text of <name> (created after `after`, or appended). */
static xmlNodePtr
ensure_child(xmlNodePtr parent, const char *name)
{
	xmlNodePtr n = find_child(parent, name);

	if (!n)
		n = child(parent, name, NULL);
	return n;
}

static void
set_text(xmlNodePtr n, const char *text)
{
	xmlNodeSetContent(n, NULL);
	xmlNodeAddContent(n, BAD_CAST_(text));
}

static void
remove_children(xmlNodePtr parent, const char *name)
{
	xmlNodePtr c = parent->children, next;

	for (; c; c = next) {
		next = c->next;
		if (c->type == XML_ELEMENT_NODE && !c->ns &&
		    xmlStrEqual(c->name, BAD_CAST_(name))) {
			xmlUnlinkNode(c);
			xmlFreeNode(c);
		}
	}
}

/* The first vdX target name not used by a disk of devices after `skip`. */
static void
free_target(xmlNodePtr devices, const char *skip, char out[8])
{
	for (char c = 'a'; c <= 'z'; c++) {
		bool used = false;

		snprintf(out, 8, "vd%c", c);
		if (skip && strcmp(out, skip) == 0)
			continue;
		for (xmlNodePtr d = devices->children; d && !used; d = d->next) {
			xmlNodePtr t;
			xmlChar *dev;

			if (d->type != XML_ELEMENT_NODE ||
			    !xmlStrEqual(d->name, BAD_CAST_("disk")))
				continue;
			t = find_child(d, "target");
			if (!t)
				continue;
			dev = xmlGetProp(t, BAD_CAST_("dev"));
			if (dev && strcmp((const char *)dev, out) == 0)
				used = true;
			xmlFree(dev);
		}
		if (!used)
			return;
	}
	snprintf(out, 8, "vdzz"); /* 26 disks in a template: libvirt says no */
}

int
domxml_from_template(const char *tmpl, size_t len, const char *origin,
		     const struct domxml_spec *s, char **xml_out)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr dom, n, os, devices, metadata;
	char buf[32], dev1[8], dev2[8];
	int rc = -1;

	if (spec_valid(s, true) < 0)
		goto cleanup;
	if (len > 1024 * 1024 || len > INT32_MAX) {
		err_set("%s: domain XML template larger than 1 MiB", origin);
		goto cleanup;
	}
	xmlResetLastError();
	doc = xmlReadMemory(tmpl, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOBLANKS |
				    XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc) {
		const xmlError *e = xmlGetLastError();
		char *msg = xstrdup(e && e->message ? e->message
						   : "not well-formed XML\n");

		msg[strcspn(msg, "\n")] = '\0';
		err_set("%s:%d: domain XML template: %s", origin,
			e ? e->line : 0, msg);
		free(msg);
		goto cleanup;
	}
	if (xmlGetIntSubset(doc)) {
		err_set("%s: domain XML template must not have a DOCTYPE", origin);
		goto cleanup;
	}
	dom = xmlDocGetRootElement(doc);
	if (!dom || dom->ns || !xmlStrEqual(dom->name, BAD_CAST_("domain"))) {
		err_set("%s: domain XML template: the root element must be "
			"<domain>", origin);
		goto cleanup;
	}
	prop(dom, "type", s->type == DOMXML_TYPE_KVM ? "kvm" : "qemu");
	set_text(ensure_child(dom, "name"), s->name);
	if (s->uuid)
		set_text(ensure_child(dom, "uuid"), s->uuid);
	else
		remove_children(dom, "uuid");
	set_memory(ensure_child(dom, "memory"), s->memory);
	n = find_child(dom, "currentMemory");
	if (n)
		set_memory(n, s->memory);
	snprintf(buf, sizeof(buf), "%u", s->vcpus);
	set_text(ensure_child(dom, "vcpu"), buf);

	if (s->kernel) {
		os = ensure_child(dom, "os");
		if (!find_child(os, "type"))
			child(os, "type", "hvm");
		remove_children(os, "kernel");
		remove_children(os, "initrd");
		remove_children(os, "cmdline");
		remove_children(os, "boot");
		child(os, "kernel", s->kernel);
		if (s->initrd)
			child(os, "initrd", s->initrd);
		if (s->cmdline)
			child(os, "cmdline", s->cmdline);
	}

	devices = ensure_child(dom, "devices");
	free_target(devices, NULL, dev1);
	free_target(devices, dev1, dev2);
	add_disk(devices, &s->disk, dev1, false);
	if (s->seed.pool || s->seed.path)
		add_disk(devices, &s->seed, dev2, true);
	if (!find_child(devices, "interface"))
		add_interface(devices, s);

	metadata = ensure_child(dom, "metadata");
	for (xmlNodePtr c = metadata->children, next; c; c = next) {
		next = c->next;
		if (c->type == XML_ELEMENT_NODE && c->ns && c->ns->href &&
		    xmlStrEqual(c->ns->href, BAD_CAST_(DOMXML_NS_URI))) {
			xmlUnlinkNode(c);
			xmlFreeNode(c);
		}
	}
	add_metadata(metadata, s);
	rc = dump(doc, xml_out);
cleanup:
	xmlFreeDoc(doc);
	return rc;
}

/* Our <instance> among the children of a domain's first <metadata>. */
static xmlNodePtr
find_meta(xmlNodePtr dom)
{
	xmlNodePtr md = find_child(dom, "metadata");

	if (!md)
		return NULL;
	for (xmlNodePtr n = md->children; n; n = n->next)
		if (n->type == XML_ELEMENT_NODE && n->ns && n->ns->href &&
		    xmlStrEqual(n->ns->href, BAD_CAST_(DOMXML_NS_URI)) &&
		    xmlStrEqual(n->name, BAD_CAST_("instance")))
			return n;
	return NULL;
}

static int
meta_attr(xmlNodePtr n, const char *name, char *out, size_t outlen)
{
	xmlChar *v = xmlGetProp(n, BAD_CAST_(name));
	int rc = -1;

	if (!v) {
		err_set("our metadata lacks the attribute '%s'", name);
		return -1;
	}
	if (domxml_name_valid(name, (const char *)v) == 0) {
		snprintf(out, outlen, "%s", (const char *)v);
		rc = 0;
	} else {
		err_prefix("our metadata");
	}
	xmlFree(v);
	return rc;
}

/*
 * Our <instance> element n into out. The one validation of our metadata,
 * for every reader (this file's domxml_meta_parse() for what
 * virDomainGetMetadata() returns, collect.c for the whole domain XML): it
 * unifies what were two parsers, keeping the stricter rule of each:
 * group, id and owner (when present) must be valid names
 * (domxml_name_valid(): not empty, [A-Za-z0-9._-], at most 63), and
 * generation, when present, a plain decimal number from 0 to INT64_MAX
 * (no sign, no blank: collect.c's old rule, on top of ours).
 */
static int
meta_from_node(xmlNodePtr n, struct domxml_meta *out)
{
	xmlChar *gen = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (meta_attr(n, "group", out->group, sizeof(out->group)) < 0 ||
	    meta_attr(n, "id", out->id, sizeof(out->id)) < 0)
		goto cleanup;
	gen = xmlGetProp(n, BAD_CAST_("generation"));
	if (gen) {
		int64_t g;

		if (!isdigit((unsigned char)gen[0])) {
			err_set("our metadata: bad generation '%s' (not a number)",
				(const char *)gen);
			goto cleanup;
		}
		if (util_parse_int64((const char *)gen, 0, INT64_MAX, &g) < 0) {
			err_prefix("our metadata: bad generation");
			goto cleanup;
		}
		out->generation = (uint64_t)g;
	}
	/* optional: absent in domains made before installation ids */
	if (xmlHasProp(n, BAD_CAST_("owner")) &&
	    meta_attr(n, "owner", out->owner, sizeof(out->owner)) < 0)
		goto cleanup;
	rc = 0;
cleanup:
	if (rc < 0)
		memset(out, 0, sizeof(*out));
	xmlFree(gen);
	return rc;
}

int
domxml_meta_parse(const char *xml, size_t len, struct domxml_meta *out)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr n;
	int rc = -1;

	if (len > INT32_MAX) {
		err_set("metadata too large");
		return -1;
	}
	doc = xmlReadMemory(xml, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR |
				    XML_PARSE_NOWARNING);
	if (!doc) {
		err_set("metadata is not well-formed XML");
		goto cleanup;
	}
	n = xmlDocGetRootElement(doc);
	/*
	 * virDomainGetMetadata(ELEMENT, our URI) hands back the element with
	 * its namespace stripped: a bare root <instance> is ours. Inside a
	 * whole domain XML only the element in our namespace counts.
	 */
	if (n && !n->ns && xmlStrEqual(n->name, BAD_CAST_("domain")))
		n = find_meta(n);
	else if (!n || !xmlStrEqual(n->name, BAD_CAST_("instance")) ||
		 (n->ns && !(n->ns->href &&
			     xmlStrEqual(n->ns->href, BAD_CAST_(DOMXML_NS_URI)))))
		n = NULL;
	if (!n) {
		err_set("no <instance> element in namespace %s in <metadata>",
			DOMXML_NS_URI);
		goto cleanup;
	}
	rc = meta_from_node(n, out);
cleanup:
	xmlFreeDoc(doc);
	return rc;
}

int
domxml_meta_from_domain(struct _xmlNode *domain, struct domxml_meta *out)
{
	xmlNodePtr n = find_meta(domain);

	memset(out, 0, sizeof(*out));
	if (!n)
		return 0;
	return meta_from_node(n, out) == 0 ? 1 : -1;
}

enum domxml_owner
domxml_owns(const struct domxml_meta *m, const char *owner)
{
	if (!m)
		return DOMXML_OWNER_NONE;
	if (!m->owner[0])
		return DOMXML_OWNER_LEGACY;
	if (owner && strcmp(m->owner, owner) != 0)
		return DOMXML_OWNER_FOREIGN;
	return DOMXML_OWNER_OURS;
}

int
domxml_meta_format(const struct domxml_meta *m, char **xml_out)
{
	xmlDocPtr doc = NULL;
	xmlNodePtr inst;
	xmlChar *mem = NULL;
	int size = 0;

	*xml_out = NULL;
	if (domxml_name_valid("group name", m->group) < 0 ||
	    domxml_name_valid("instance id", m->id) < 0 ||
	    (m->owner[0] && uuid_valid(m->owner) < 0))
		return -1;
	doc = xmlNewDoc(BAD_CAST_("1.0"));
	inst = xmlNewNode(NULL, BAD_CAST_("instance"));
	if (!doc || !inst)
		fatal("libxml2: out of memory");
	xmlDocSetRootElement(doc, inst);
	prop(inst, "group", m->group);
	prop(inst, "id", m->id);
	propf(inst, "generation", "%" PRIu64, m->generation);
	if (m->owner[0])
		prop(inst, "owner", m->owner);
	/* the element alone, without the XML declaration */
	xmlDocDumpMemoryEnc(doc, &mem, &size, "UTF-8");
	if (!mem)
		fatal("libxml2: out of memory");
	{
		const char *p = strstr((const char *)mem, "<instance");

		if (!p)
			fatal("domxml: serialized metadata lacks its element");
		*xml_out = xstrdup(p);
		/* drop the trailing newline */
		for (size_t n = strlen(*xml_out); n && (*xml_out)[n - 1] == '\n'; n--)
			(*xml_out)[n - 1] = '\0';
	}
	xmlFree(mem);
	xmlFreeDoc(doc);
	return 0;
}
