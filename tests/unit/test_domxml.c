/*
 * Unit tests for domxml.c: the produced XML is parsed back (XPath) and
 * checked; a user template is filled; hostile names are rejected; the
 * result is defined on libvirt's test driver and our metadata read back
 * through virDomainGetMetadata.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <libvirt/libvirt.h>
#include <libvirt/virterror.h>
#include <libxml/parser.h>
#include <libxml/xpath.h>
#include <libxml/xpathInternals.h>

#include "domxml.h"
#include "log.h"
#include "util.h"

#define MiB (UINT64_C(1) << 20)

struct xdoc {
	xmlDocPtr doc;
	xmlXPathContextPtr ctx;
};

static void
xopen(struct xdoc *x, const char *xml)
{
	x->doc = xmlReadMemory(xml, (int)strlen(xml), NULL, NULL, XML_PARSE_NONET);
	if (!x->doc)
		fail_msg("produced XML does not parse:\n%s", xml);
	x->ctx = xmlXPathNewContext(x->doc);
	xmlXPathRegisterNs(x->ctx, (const xmlChar *)"va",
			   (const xmlChar *)DOMXML_NS_URI);
}

static void
xclose(struct xdoc *x)
{
	xmlXPathFreeContext(x->ctx);
	xmlFreeDoc(x->doc);
}

/* String value of an XPath expression ("" when nothing matches). */
static char *
xs(struct xdoc *x, const char *expr)
{
	char *e = xasprintf("string(%s)", expr);
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)e, x->ctx);
	char *r;

	free(e);
	assert_non_null(o);
	r = xstrdup((const char *)o->stringval);
	xmlXPathFreeObject(o);
	return r;
}

static long
xcount(struct xdoc *x, const char *expr)
{
	char *e = xasprintf("count(%s)", expr);
	xmlXPathObjectPtr o = xmlXPathEvalExpression((const xmlChar *)e, x->ctx);
	long n;

	assert_non_null(o);
	n = (long)o->floatval;
	xmlXPathFreeObject(o);
	free(e);
	return n;
}

#define EXPECT(x, expr, want)                                                  \
	do {                                                                   \
		char *got_ = xs(x, expr);                                      \
		if (strcmp(got_, want) != 0)                                   \
			fail_msg("%s: expected '%s', got '%s'", expr, want,    \
				 got_);                                        \
		free(got_);                                                    \
	} while (0)

/* An installation id (store_owner_id()). */
#define OWNER "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a59"

static struct domxml_spec
base_spec(void)
{
	return (struct domxml_spec){
		.name = "web-0001",
		.uuid = "0b6f6f4e-6a4b-4f3c-9a63-9a6c1b1d2e3f",
		.type = DOMXML_TYPE_QEMU,
		.vcpus = 2,
		.memory = 512 * MiB,
		.disk = {.pool = "va-test", .volume = "web-0001.qcow2"},
		.seed = {.pool = "va-test", .volume = "web-0001-seed.iso"},
		.kernel = "/var/lib/va/vmlinuz",
		.initrd = "/var/lib/va/initrd.img",
		.cmdline = "console=ttyS0 root=/dev/vda rw quiet \"x<y&z\"",
		.net = DOMXML_NET_USER,
		.console_log = "/var/log/va/web-0001.log",
		.balloon_period = 5,
		.guest_agent = true,
		.group = "web",
		.instance_id = "web-0001",
		.generation = 42,
		.owner = OWNER,
	};
}

static void
test_build(void **state)
{
	struct domxml_spec s = base_spec();
	struct xdoc x;
	char *xml = NULL;

	(void)state;
	if (domxml_build(&s, &xml) < 0)
		fail_msg("%s", err_msg());
	xopen(&x, xml);
	EXPECT(&x, "/domain/@type", "qemu");
	EXPECT(&x, "/domain/name", "web-0001");
	EXPECT(&x, "/domain/uuid", "0b6f6f4e-6a4b-4f3c-9a63-9a6c1b1d2e3f");
	EXPECT(&x, "/domain/memory", "524288");
	EXPECT(&x, "/domain/memory/@unit", "KiB");
	EXPECT(&x, "/domain/currentMemory", "524288");
	EXPECT(&x, "/domain/vcpu", "2");
	assert_int_equal(xcount(&x, "/domain/cpu"), 0); /* qemu: no <cpu> */
	EXPECT(&x, "/domain/os/kernel", "/var/lib/va/vmlinuz");
	EXPECT(&x, "/domain/os/initrd", "/var/lib/va/initrd.img");
	EXPECT(&x, "/domain/os/cmdline",
	       "console=ttyS0 root=/dev/vda rw quiet \"x<y&z\"");
	EXPECT(&x, "/domain/devices/disk[1]/@type", "volume");
	EXPECT(&x, "/domain/devices/disk[1]/driver/@type", "qcow2");
	EXPECT(&x, "/domain/devices/disk[1]/source/@pool", "va-test");
	EXPECT(&x, "/domain/devices/disk[1]/source/@volume", "web-0001.qcow2");
	EXPECT(&x, "/domain/devices/disk[1]/target/@dev", "vda");
	EXPECT(&x, "/domain/devices/disk[1]/target/@bus", "virtio");
	assert_int_equal(xcount(&x, "/domain/devices/disk[1]/readonly"), 0);
	EXPECT(&x, "/domain/devices/disk[2]/driver/@type", "raw");
	EXPECT(&x, "/domain/devices/disk[2]/source/@volume", "web-0001-seed.iso");
	EXPECT(&x, "/domain/devices/disk[2]/target/@dev", "vdb");
	assert_int_equal(xcount(&x, "/domain/devices/disk[2]/readonly"), 1);
	EXPECT(&x, "/domain/devices/interface/@type", "user");
	EXPECT(&x, "/domain/devices/interface/model/@type", "virtio");
	EXPECT(&x, "/domain/devices/serial/@type", "pty");
	EXPECT(&x, "/domain/devices/serial/log/@file", "/var/log/va/web-0001.log");
	EXPECT(&x, "/domain/devices/console/target/@type", "serial");
	EXPECT(&x, "/domain/devices/memballoon/@model", "virtio");
	EXPECT(&x, "/domain/devices/memballoon/stats/@period", "5");
	EXPECT(&x, "/domain/devices/channel/target/@name",
	       "org.qemu.guest_agent.0");
	EXPECT(&x, "/domain/metadata/va:instance/@group", "web");
	EXPECT(&x, "/domain/metadata/va:instance/@id", "web-0001");
	EXPECT(&x, "/domain/metadata/va:instance/@generation", "42");
	EXPECT(&x, "/domain/metadata/va:instance/@owner", OWNER);
	xclose(&x);
	free(xml);

	/* without an owner (tests, tools): no attribute */
	s.owner = NULL;
	if (domxml_build(&s, &xml) < 0)
		fail_msg("%s", err_msg());
	xopen(&x, xml);
	assert_int_equal(xcount(&x, "/domain/metadata/va:instance/@owner"), 0);
	assert_int_equal(xcount(&x, "/domain/metadata/va:instance/@id"), 1);
	xclose(&x);
	free(xml);
	s.owner = OWNER;

	/* kvm, file disks, network, no seed, no kernel, no agent */
	s.type = DOMXML_TYPE_KVM;
	s.disk = (struct domxml_disk){.path = "/var/lib/libvirt/images/a.qcow2"};
	s.seed = (struct domxml_disk){0};
	s.kernel = s.initrd = s.cmdline = NULL;
	s.net = DOMXML_NET_BRIDGE;
	s.net_source = "br0";
	s.mac = "52:54:00:aa:bb:cc";
	s.guest_agent = false;
	s.console_log = NULL;
	s.uuid = NULL;
	assert_int_equal(domxml_build(&s, &xml), 0);
	xopen(&x, xml);
	EXPECT(&x, "/domain/@type", "kvm");
	EXPECT(&x, "/domain/cpu/@mode", "host-passthrough");
	assert_int_equal(xcount(&x, "/domain/uuid"), 0);
	EXPECT(&x, "/domain/os/boot/@dev", "hd");
	EXPECT(&x, "/domain/devices/disk/@type", "file");
	EXPECT(&x, "/domain/devices/disk/source/@file",
	       "/var/lib/libvirt/images/a.qcow2");
	assert_int_equal(xcount(&x, "/domain/devices/disk"), 1);
	EXPECT(&x, "/domain/devices/interface/@type", "bridge");
	EXPECT(&x, "/domain/devices/interface/source/@bridge", "br0");
	EXPECT(&x, "/domain/devices/interface/mac/@address", "52:54:00:aa:bb:cc");
	assert_int_equal(xcount(&x, "/domain/devices/channel"), 0);
	xclose(&x);
	free(xml);
}

static void
test_reject(void **state)
{
	static const struct {
		int field;
		const char *value, *msg;
	} bad[] = {
		{0, "web'0001", "domain name 'web'0001' has the character '''"},
		{0, "a<b>", "domain name"},
		{0, "", "domain name is empty"},
		{0, "-x", "must not start with '-'"},
		{0, "x\n", "byte 0x0a"},
		{0, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
		 "too long"},
		{1, "we b", "group name"},
		{2, "id/../x", "instance id"},
		{3, "../../etc", "disk volume"},
		{4, "pool\"x", "disk pool"},
		{5, "not-a-uuid", "uuid"},
		{6, "net work", "network"},
		{7, "52:54:00:zz:bb:cc", "mac"},
		{8, "console=ttyS0\nroot=x", "cmdline has the control byte 0x0a"},
		{9, "relative/kernel", "absolute"},
		{10, "web", "owner: uuid 'web'"},
		{10, "7f0c9a51-3c1e-4d2b-8a6f-0e1d2c3b4a5\"", "owner"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct domxml_spec s = base_spec();
		char *xml = NULL;

		switch (bad[i].field) {
		case 0: s.name = bad[i].value; break;
		case 1: s.group = bad[i].value; break;
		case 2: s.instance_id = bad[i].value; break;
		case 3: s.disk.volume = bad[i].value; break;
		case 4: s.disk.pool = bad[i].value; break;
		case 5: s.uuid = bad[i].value; break;
		case 6: s.net = DOMXML_NET_NETWORK; s.net_source = bad[i].value; break;
		case 7: s.mac = bad[i].value; break;
		case 8: s.cmdline = bad[i].value; break;
		case 9: s.kernel = bad[i].value; break;
		case 10: s.owner = bad[i].value; break;
		}
		assert_int_equal(domxml_build(&s, &xml), -1);
		assert_null(xml);
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 bad[i].msg);
		assert_int_equal(domxml_from_template("<domain/>", 9, "t.xml", &s,
						      &xml), -1);
	}
}

static const char tmpl[] =
	"<!-- user's template -->\n"
	"<domain type='kvm' xmlns:other='urn:other'>\n"
	"  <name>template</name>\n"
	"  <uuid>11111111-2222-3333-4444-555555555555</uuid>\n"
	"  <memory unit='GiB'>4</memory>\n"
	"  <currentMemory unit='GiB'>2</currentMemory>\n"
	"  <vcpu placement='static'>8</vcpu>\n"
	"  <metadata>\n"
	"    <other:keep>user data</other:keep>\n"
	"    <va:instance xmlns:va='https://virt-autoscaler.org/xmlns/1' "
	"group='stale' id='stale' generation='1' "
	"owner='00000000-0000-4000-8000-000000000000'/>\n"
	"  </metadata>\n"
	"  <os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>\n"
	"  <cpu mode='custom'><model>qemu64</model></cpu>\n"
	"  <devices>\n"
	"    <disk type='file' device='disk'><source file='/data/shared.img'/>"
	"<target dev='vda' bus='virtio'/></disk>\n"
	"    <disk type='file' device='cdrom'><target dev='hdc' bus='ide'/></disk>\n"
	"    <interface type='network'><source network='prod'/></interface>\n"
	"    <serial type='pty'/>\n"
	"  </devices>\n"
	"</domain>\n";

static void
test_template(void **state)
{
	struct domxml_spec s = base_spec();
	struct xdoc x;
	char *xml = NULL;

	(void)state;
	s.kernel = s.initrd = s.cmdline = NULL;
	if (domxml_from_template(tmpl, sizeof(tmpl) - 1, "web.xml", &s, &xml) < 0)
		fail_msg("%s", err_msg());
	xopen(&x, xml);
	EXPECT(&x, "/domain/@type", "qemu");
	EXPECT(&x, "/domain/name", "web-0001");
	assert_int_equal(xcount(&x, "/domain/name"), 1);
	EXPECT(&x, "/domain/uuid", "0b6f6f4e-6a4b-4f3c-9a63-9a6c1b1d2e3f");
	EXPECT(&x, "/domain/memory", "524288");
	EXPECT(&x, "/domain/memory/@unit", "KiB");
	EXPECT(&x, "/domain/currentMemory", "524288");
	EXPECT(&x, "/domain/currentMemory/@unit", "KiB");
	EXPECT(&x, "/domain/vcpu", "2");
	EXPECT(&x, "/domain/vcpu/@placement", "static");
	EXPECT(&x, "/domain/cpu/model", "qemu64"); /* the template's */
	EXPECT(&x, "/domain/os/type/@machine", "pc");
	/* the template's disks stay; ours take the first free names */
	assert_int_equal(xcount(&x, "/domain/devices/disk"), 4);
	EXPECT(&x, "/domain/devices/disk[3]/source/@volume", "web-0001.qcow2");
	EXPECT(&x, "/domain/devices/disk[3]/target/@dev", "vdb");
	EXPECT(&x, "/domain/devices/disk[4]/source/@volume", "web-0001-seed.iso");
	EXPECT(&x, "/domain/devices/disk[4]/target/@dev", "vdc");
	/* the template has an interface: ours is not added */
	assert_int_equal(xcount(&x, "/domain/devices/interface"), 1);
	EXPECT(&x, "/domain/devices/interface/source/@network", "prod");
	/* the user's metadata stays, the stale one of ours is replaced */
	EXPECT(&x, "/domain/metadata/*[local-name()='keep']", "user data");
	assert_int_equal(xcount(&x, "/domain/metadata/va:instance"), 1);
	EXPECT(&x, "/domain/metadata/va:instance/@group", "web");
	EXPECT(&x, "/domain/metadata/va:instance/@generation", "42");
	EXPECT(&x, "/domain/metadata/va:instance/@owner", OWNER);
	xclose(&x);
	free(xml);

	/* a bare template: everything needed is created; no uuid kept */
	s.uuid = NULL;
	s.kernel = "/k";
	assert_int_equal(domxml_from_template("<domain><uuid>x</uuid></domain>",
					      31, "bare.xml", &s, &xml), 0);
	xopen(&x, xml);
	assert_int_equal(xcount(&x, "/domain/uuid"), 0);
	EXPECT(&x, "/domain/os/type", "hvm");
	EXPECT(&x, "/domain/os/kernel", "/k");
	EXPECT(&x, "/domain/devices/disk[1]/target/@dev", "vda");
	EXPECT(&x, "/domain/devices/interface/@type", "user");
	EXPECT(&x, "/domain/metadata/va:instance/@id", "web-0001");
	xclose(&x);
	free(xml);
}

static void
test_template_bad(void **state)
{
	static const struct {
		const char *xml, *msg;
	} bad[] = {
		{"<domain>", "t.xml:1: domain XML template:"},
		{"", "domain XML template"},
		{"<vm/>", "the root element must be <domain>"},
		{"<x:domain xmlns:x='urn:x'/>", "the root element must be <domain>"},
		{"<!DOCTYPE domain [<!ENTITY xxe SYSTEM 'file:///etc/passwd'>]>"
		 "<domain><name>&xxe;</name></domain>", "must not have a DOCTYPE"},
		{"<!DOCTYPE domain><domain/>", "must not have a DOCTYPE"},
	};
	struct domxml_spec s = base_spec();

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char *xml = NULL;

		assert_int_equal(domxml_from_template(bad[i].xml, strlen(bad[i].xml),
						      "t.xml", &s, &xml), -1);
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 bad[i].msg);
	}
}

/* The one ownership rule: whose is a domain with this metadata? */
static void
test_owns(void **state)
{
	static const struct {
		const char *meta;   /* NULL: none */
		const char *ours;   /* our installation id, NULL: not checked */
		enum domxml_owner want;
	} cases[] = {
		{NULL, OWNER, DOMXML_OWNER_NONE},
		{NULL, NULL, DOMXML_OWNER_NONE},
		{"<instance group='g' id='i' owner='" OWNER "'/>", OWNER,
		 DOMXML_OWNER_OURS},
		{"<instance group='g' id='i'/>", OWNER, DOMXML_OWNER_LEGACY},
		{"<instance group='g' id='i' "
		 "owner='00000000-0000-4000-8000-000000000000'/>", OWNER,
		 DOMXML_OWNER_FOREIGN},
		/* owner not checked (tools): any owner is ours */
		{"<instance group='g' id='i' "
		 "owner='00000000-0000-4000-8000-000000000000'/>", NULL,
		 DOMXML_OWNER_OURS},
		{"<instance group='g' id='i'/>", NULL, DOMXML_OWNER_LEGACY},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct domxml_meta m;

		if (cases[i].meta)
			assert_int_equal(domxml_meta_parse(cases[i].meta,
							   strlen(cases[i].meta),
							   &m), 0);
		if (domxml_owns(cases[i].meta ? &m : NULL, cases[i].ours) !=
		    cases[i].want)
			fail_msg("case %zu", i);
	}
}

/* domxml_meta_from_domain(): the whole domain, as collect.c reads it. */
static void
test_meta_from_domain(void **state)
{
	static const char ok[] =
		"<domain><metadata><x:instance xmlns:x='" DOMXML_NS_URI "' "
		"group='web' id='w-1' generation='4'/></metadata></domain>";
	static const char none[] =
		"<domain><metadata><x:instance xmlns:x='https://example.org/' "
		"group='web' id='w-1'/></metadata></domain>";
	static const char bad[] =
		"<domain><metadata><x:instance xmlns:x='" DOMXML_NS_URI "' "
		"group='web' id='w 1'/></metadata></domain>";
	const char *docs[] = {ok, none, bad};
	const int want[] = {1, 0, -1};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(docs); i++) {
		xmlDocPtr doc = xmlReadMemory(docs[i], (int)strlen(docs[i]),
					      NULL, NULL, XML_PARSE_NONET);
		struct domxml_meta m;

		assert_non_null(doc);
		assert_int_equal(domxml_meta_from_domain(
					 xmlDocGetRootElement(doc), &m),
				 want[i]);
		if (want[i] == 1) {
			assert_string_equal(m.group, "web");
			assert_int_equal(m.generation, 4);
		}
		xmlFreeDoc(doc);
	}
}

static void
test_meta_parse(void **state)
{
	struct domxml_meta m;
	static const char el[] =
		"<instance xmlns=\"https://virt-autoscaler.org/xmlns/1\" "
		"group=\"web\" id=\"web-7\" generation=\"3\"/>";
	static const char bad_group[] =
		"<i:instance xmlns:i='https://virt-autoscaler.org/xmlns/1' "
		"group='a b' id='c'/>";
	static const char dom_nons[] =
		"<domain><metadata><instance group='a' id='b'/></metadata></domain>";
	static const char with_owner[] =
		"<domain><metadata><va:instance xmlns:va="
		"'https://virt-autoscaler.org/xmlns/1' group='web' id='web-7' "
		"generation='1' owner='" OWNER "'/></metadata></domain>";
	static const char bad_owner[] =
		"<instance group='web' id='web-7' owner='a b'/>";
	static const char empty_owner[] =
		"<instance group='web' id='web-7' owner=''/>";

	(void)state;
	assert_int_equal(domxml_meta_parse(el, sizeof(el) - 1, &m), 0);
	assert_string_equal(m.group, "web");
	assert_string_equal(m.id, "web-7");
	assert_int_equal(m.generation, 3);
	/* bare root <instance> (as libvirt returns it) is ours ... */
	assert_int_equal(domxml_meta_parse("<instance group='a' id='b'/>", 28, &m),
			 0);
	/* ... but inside a domain only in our namespace */
	assert_int_equal(domxml_meta_parse(dom_nons, strlen(dom_nons), &m), -1);
	assert_non_null(strstr(err_msg(), "no <instance> element"));
	assert_int_equal(domxml_meta_parse(bad_group, strlen(bad_group), &m), -1);
	assert_non_null(strstr(err_msg(), "group"));
	/* no owner attribute (made before installation ids): empty */
	assert_int_equal(domxml_meta_parse(el, sizeof(el) - 1, &m), 0);
	assert_string_equal(m.owner, "");
	/* owner read when present, refused when malformed */
	assert_int_equal(domxml_meta_parse(with_owner, strlen(with_owner), &m),
			 0);
	assert_string_equal(m.owner, OWNER);
	assert_string_equal(m.id, "web-7");
	assert_int_equal(domxml_meta_parse(bad_owner, strlen(bad_owner), &m), -1);
	assert_non_null(strstr(err_msg(), "owner"));
	assert_int_equal(domxml_meta_parse(empty_owner, strlen(empty_owner), &m),
			 -1);
	assert_non_null(strstr(err_msg(), "owner"));
}

static void
quiet(void *opaque, virErrorPtr e)
{
}

/* Defined on the test driver; metadata read back through libvirt. */
static void
test_define(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct domxml_spec s = base_spec();
	struct domxml_meta m;
	virDomainPtr dom;
	char *xml = NULL, *meta, *back;
	char uuid[37];

	(void)state;
	assert_non_null(conn);
	domxml_uuid_generate(uuid);
	s.uuid = uuid;
	s.disk = (struct domxml_disk){.path = "/var/lib/va/web-0001.qcow2"};
	s.seed = (struct domxml_disk){.path = "/var/lib/va/web-0001-seed.iso"};
	assert_int_equal(domxml_build(&s, &xml), 0);
	dom = virDomainDefineXML(conn, xml);
	if (!dom)
		fail_msg("define: %s\n%s", virGetLastErrorMessage(), xml);
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				    DOMXML_NS_URI, VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(meta);
	if (domxml_meta_parse(meta, strlen(meta), &m) < 0)
		fail_msg("%s: %s", err_msg(), meta);
	assert_string_equal(m.group, "web");
	assert_string_equal(m.id, "web-0001");
	assert_int_equal(m.generation, 42);
	assert_string_equal(m.owner, OWNER);
	back = virDomainGetXMLDesc(dom, 0);
	assert_non_null(strstr(back, uuid));
	assert_int_equal(domxml_meta_parse(back, strlen(back), &m), 0);
	if (virDomainCreate(dom) < 0)
		fail_msg("start: %s", virGetLastErrorMessage());
	assert_int_equal(virDomainDestroy(dom), 0);
	assert_int_equal(virDomainUndefine(dom), 0);
	free(back);
	free(meta);
	free(xml);
	virDomainFree(dom);

	/* The same from the user template: libvirt accepts it too. */
	s.disk = (struct domxml_disk){.pool = "default-pool",
				      .volume = "web-0001.qcow2"};
	if (domxml_from_template(tmpl, sizeof(tmpl) - 1, "web.xml", &s, &xml) < 0)
		fail_msg("%s", err_msg());
	dom = virDomainDefineXML(conn, xml);
	if (!dom)
		fail_msg("define from template: %s\n%s", virGetLastErrorMessage(),
			 xml);
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				    DOMXML_NS_URI, VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(meta);
	assert_int_equal(domxml_meta_parse(meta, strlen(meta), &m), 0);
	assert_string_equal(m.id, "web-0001");
	assert_string_equal(m.owner, OWNER);
	assert_int_equal(virDomainUndefine(dom), 0);
	free(meta);
	free(xml);
	virDomainFree(dom);
	virConnectClose(conn);
}

/* The element for virDomainSetMetadata: written into a domain made
 * without an owner (as older versions made them), read back with it. */
static void
test_meta_format(void **state)
{
	virConnectPtr conn = virConnectOpen("test:///default");
	struct domxml_spec s = base_spec();
	struct domxml_meta m, back;
	virDomainPtr dom;
	char *xml = NULL, *el = NULL, *meta;
	char uuid[37];

	(void)state;
	assert_non_null(conn);
	domxml_uuid_generate(uuid);
	s.uuid = uuid;
	s.owner = NULL; /* legacy */
	s.disk = (struct domxml_disk){.path = "/var/lib/va/web-0001.qcow2"};
	s.seed = (struct domxml_disk){.path = "/var/lib/va/web-0001-seed.iso"};
	assert_int_equal(domxml_build(&s, &xml), 0);
	dom = virDomainDefineXML(conn, xml);
	assert_non_null(dom);
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				    DOMXML_NS_URI, VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(meta);
	assert_int_equal(domxml_meta_parse(meta, strlen(meta), &m), 0);
	assert_string_equal(m.owner, "");
	free(meta);

	snprintf(m.owner, sizeof(m.owner), "%s", OWNER);
	assert_int_equal(domxml_meta_format(&m, &el), 0);
	assert_non_null(strstr(el, "owner=\"" OWNER "\""));
	assert_null(strstr(el, "<?xml"));
	if (virDomainSetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT, el,
				 DOMXML_NS_PREFIX, DOMXML_NS_URI,
				 VIR_DOMAIN_AFFECT_CONFIG) < 0)
		fail_msg("set metadata: %s\n%s", virGetLastErrorMessage(), el);
	meta = virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
				    DOMXML_NS_URI, VIR_DOMAIN_AFFECT_CONFIG);
	assert_non_null(meta);
	assert_int_equal(domxml_meta_parse(meta, strlen(meta), &back), 0);
	assert_string_equal(back.group, "web");
	assert_string_equal(back.id, "web-0001");
	assert_int_equal(back.generation, 42);
	assert_string_equal(back.owner, OWNER);
	free(meta);
	free(el);
	/* the whole domain XML shows it in our namespace */
	meta = virDomainGetXMLDesc(dom, VIR_DOMAIN_XML_INACTIVE);
	assert_int_equal(domxml_meta_parse(meta, strlen(meta), &back), 0);
	assert_string_equal(back.owner, OWNER);
	free(meta);

	/* invalid fields are refused, an empty owner is left out */
	m.owner[0] = '\0';
	assert_int_equal(domxml_meta_format(&m, &el), 0);
	assert_null(strstr(el, "owner"));
	free(el);
	snprintf(m.owner, sizeof(m.owner), "nope");
	assert_int_equal(domxml_meta_format(&m, &el), -1);
	assert_null(el);
	snprintf(m.group, sizeof(m.group), "a b");
	m.owner[0] = '\0';
	assert_int_equal(domxml_meta_format(&m, &el), -1);
	assert_non_null(strstr(err_msg(), "group"));

	assert_int_equal(virDomainUndefine(dom), 0);
	virDomainFree(dom);
	free(xml);
	virConnectClose(conn);
}

static void
test_uuid(void **state)
{
	char a[37], b[37];

	(void)state;
	domxml_uuid_generate(a);
	domxml_uuid_generate(b);
	assert_int_equal(strlen(a), 36);
	assert_string_not_equal(a, b);
	assert_int_equal(a[14], '4');
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_build),
		cmocka_unit_test(test_reject),
		cmocka_unit_test(test_template),
		cmocka_unit_test(test_template_bad),
		cmocka_unit_test(test_meta_parse),
		cmocka_unit_test(test_owns),
		cmocka_unit_test(test_meta_from_domain),
		cmocka_unit_test(test_define),
		cmocka_unit_test(test_meta_format),
		cmocka_unit_test(test_uuid),
	};

	virSetErrorFunc(NULL, quiet);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
