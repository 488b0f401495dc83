/*
 * domxml.h: libvirt domain XML for a VM of a group, built with libxml2's
 * tree API (every value escaped by libxml2), either from a spec or from a
 * user-supplied domain XML template; and our <metadata> tag.
 *
 * Our metadata (it marks the domains virt-autoscaler owns):
 *   <metadata>
 *     <va:instance xmlns:va="https://virt-autoscaler.org/xmlns/1"
 *                  group="web" id="web-0001" generation="3"
 *                  owner="7f0c...-..."/>
 *   </metadata>
 * owner is the installation id of the state store whose daemon made the
 * domain (store_owner_id()): several installations may share a host and
 * group names, and a daemon acts only on domains with its own owner id
 * (docs/state.md). Domains made before the owner existed lack it;
 * domxml_meta_parse() then leaves meta.owner empty.
 * Read it back with virDomainGetMetadata(dom, VIR_DOMAIN_METADATA_ELEMENT,
 * DOMXML_NS_URI, ...) and domxml_meta_parse().
 *
 * Names (domain name, group, instance id, pool, volume, network, bridge)
 * must match [A-Za-z0-9._-]{1,63} and not start with '.' or '-'; anything
 * else is rejected with an error naming the field.
 */
#ifndef VA_DOMXML_H
#define VA_DOMXML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DOMXML_NS_URI "https://virt-autoscaler.org/xmlns/1"
#define DOMXML_NS_PREFIX "va"
#define DOMXML_NAME_MAX 63

enum domxml_type {
	DOMXML_TYPE_KVM,   /* <domain type='kvm'> + <cpu mode='host-passthrough'/> */
	DOMXML_TYPE_QEMU,  /* <domain type='qemu'>, no <cpu> (TCG emulation) */
	DOMXML_TYPE_LAST
};

enum domxml_net {
	DOMXML_NET_NONE,
	DOMXML_NET_NETWORK, /* <interface type='network'><source network=.../> */
	DOMXML_NET_BRIDGE,  /* <interface type='bridge'><source bridge=.../> */
	DOMXML_NET_USER,    /* <interface type='user'> (SLIRP; host is 10.0.2.2) */
	DOMXML_NET_LAST
};

/*
 * A disk: a volume of a storage pool (<disk type='volume'>, resolved by
 * libvirt on the host, so it works for remote hosts) when pool is set,
 * else a file path (<disk type='file'>). An unset disk (no pool and no
 * path) is left out.
 */
struct domxml_disk {
	const char *pool;
	const char *volume;
	const char *path;
	const char *format; /* "qcow2", "raw"; NULL: qcow2 for the root disk,
			       raw for the seed */
};

struct domxml_spec {
	const char *name;          /* domain name (required) */
	const char *uuid;          /* NULL: libvirt generates one */
	enum domxml_type type;
	unsigned vcpus;            /* >= 1 */
	uint64_t memory;           /* bytes (>= 1 MiB), rounded up to KiB */
	struct domxml_disk disk;   /* root disk (overlay): virtio, writable */
	struct domxml_disk seed;   /* cloud-init seed ISO: virtio, <readonly/> */
	const char *kernel;        /* direct boot when set */
	const char *initrd;
	const char *cmdline;
	enum domxml_net net;
	const char *net_source;    /* network or bridge name */
	const char *mac;           /* "52:54:00:xx:xx:xx" or NULL (libvirt picks) */
	const char *console_log;   /* serial pty, also logged to this host file
				      when set (<log file=.../>) */
	unsigned balloon_period;   /* seconds for <memballoon><stats period>; 0: none */
	bool guest_agent;          /* org.qemu.guest_agent.0 virtio channel */
	/* metadata */
	const char *group;
	const char *instance_id;
	uint64_t generation;       /* configuration generation */
	const char *owner;         /* installation id (a UUID), or NULL: no
				      owner attribute (tests, tools) */
};

/*
 * Build a complete domain XML from spec. *xml_out is a NUL-terminated
 * string the caller frees with free(). Returns 0, or -1 with err_set()
 * naming the invalid field.
 */
int domxml_build(const struct domxml_spec *spec, char **xml_out);

/*
 * Fill a user's domain XML template (tmpl, len bytes, read from origin,
 * used in messages) for spec. The template must be a <domain> document
 * without a DOCTYPE (no entities, no network access while parsing).
 * What is set or replaced, everything else is kept as written:
 *   - <domain type=...> from spec.type;
 *   - <name>, <uuid> (removed when spec.uuid is NULL: a template's UUID
 *     would be shared by every VM), <memory>, <currentMemory> (when
 *     present), <vcpu> (text only; its attributes are kept);
 *   - <os>: <kernel>, <initrd>, <cmdline> replaced when spec.kernel is set;
 *   - <devices> (created when missing): our root disk and seed disk are
 *     appended with the first free vdX target names; an <interface> from
 *     spec.net only when the template has none; <console>, <serial>,
 *     <memballoon>, <channel> are the template's;
 *   - <metadata> (created when missing): any element in our namespace is
 *     replaced by our <va:instance .../>.
 * Returns 0 and *xml_out (caller frees), or -1 with err_set().
 */
int domxml_from_template(const char *tmpl, size_t len, const char *origin,
			 const struct domxml_spec *spec, char **xml_out);

/* 0 if name is acceptable, else -1 with err_set("WHAT 'NAME': ..."). */
int domxml_name_valid(const char *what, const char *name);

/* A random (version 4) UUID, lower case, into out (37 bytes with NUL). */
void domxml_uuid_generate(char out[37]);

struct domxml_meta {
	char group[DOMXML_NAME_MAX + 1];
	char id[DOMXML_NAME_MAX + 1];
	uint64_t generation;
	char owner[DOMXML_NAME_MAX + 1]; /* "" when the attribute is absent */
};

/*
 * Find our <instance> element in xml: the element alone as
 * virDomainGetMetadata(VIR_DOMAIN_METADATA_ELEMENT, DOMXML_NS_URI) returns
 * it (libvirt strips the namespace, so a bare root <instance> is taken as
 * ours), or in a whole domain XML (there only in namespace DOMXML_NS_URI,
 * any prefix). Returns 0 and fills out, -1 with err_set() when absent or invalid.
 */
int domxml_meta_parse(const char *xml, size_t len, struct domxml_meta *out);

/*
 * The same for a <domain> element already parsed with libxml2 (collect.c
 * reads the whole domain XML once; struct _xmlNode is libxml2's xmlNode):
 * 1 and *out when the domain's <metadata> holds our element and it is
 * valid, 0 when it holds none, -1 with err_set() when ours is invalid.
 * Same validation as domxml_meta_parse() (one parser for our element).
 */
struct _xmlNode;
int domxml_meta_from_domain(struct _xmlNode *domain, struct domxml_meta *out);

/*
 * "Is this domain ours?", the one rule for every module that acts on
 * domains (collect.c collects, provision.c's instance_remove() removes,
 * reconcile_plan.c adopts, repairs and removes):
 */
enum domxml_owner {
	DOMXML_OWNER_NONE,    /* no (valid) metadata of ours: not ours */
	DOMXML_OWNER_OURS,    /* owner= is our installation id */
	DOMXML_OWNER_LEGACY,  /* ours, without owner=: a version before
				 installation ids made it (reconciliation
				 warns once and writes our id into it) */
	DOMXML_OWNER_FOREIGN, /* owner= is another installation's id: never
				 adopted, removed, collected or changed */
	DOMXML_OWNER_LAST
};
/*
 * m: the domain's metadata, or NULL when it has none or it did not parse
 * (a malformed element is not ours). owner: our installation id
 * (store_owner_id()), or NULL when it is not checked (tools, tests): then
 * any owner= counts as OURS.
 */
enum domxml_owner domxml_owns(const struct domxml_meta *m, const char *owner);

/*
 * Our metadata element for m, without namespace, as virDomainSetMetadata(
 * dom, VIR_DOMAIN_METADATA_ELEMENT, xml, DOMXML_NS_PREFIX, DOMXML_NS_URI,
 * flags) takes it: <instance group=".." id=".." generation=".."
 * [owner=".."]/> (owner left out when m->owner is empty). Used to write
 * our owner id into domains that older versions made. *xml_out: caller
 * frees. 0, or -1 with err_set() naming an invalid field.
 */
int domxml_meta_format(const struct domxml_meta *m, char **xml_out);

#endif
