/*
 * seed.c: see seed.h.
 */
#include "seed.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>

#include "agent_text.h"
#include "log.h"
#include "quote.h"
#include "url.h"
#include "util.h"

LOG_TAG("seed");

#define SEGMENT_MAX 128
#define MAX_FILE (16u << 20) /* user-data or network-config */

/* --- validation ---------------------------------------------------------- */

static int
segment_valid(const char *what, const char *s)
{
	size_t n;

	if (!s || !s[0]) {
		err_set("%s is empty", what);
		return -1;
	}
	n = strlen(s);
	if (n > SEGMENT_MAX) {
		err_set("%s is longer than %d characters", what, SEGMENT_MAX);
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' ||
				     c == '-'))) {
			err_set("%s has the byte 0x%02x at offset %zu (allowed: "
				"letters, digits, '.', '_', '-')", what, c, i);
			return -1;
		}
	}
	if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		err_set("%s must not be '%s'", what, s);
		return -1;
	}
	return 0;
}

static int
hostname_valid(const char *s)
{
	size_t n, label = 0;

	if (!s || !s[0]) {
		err_set("hostname is empty");
		return -1;
	}
	n = strlen(s);
	if (n > 253)
		goto bad;
	for (size_t i = 0; i <= n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '.' || c == '\0') {
			if (label == 0 || label > 63 || s[i - 1] == '-')
				goto bad;
			label = 0;
			continue;
		}
		if (!(isascii(c) && (isalnum(c) || c == '-')))
			goto bad;
		if (label == 0 && c == '-')
			goto bad;
		label++;
	}
	return 0;
bad:
	err_set("hostname is not a valid host name (RFC 1123: labels of "
		"letters, digits and inner '-', 1-63 characters, separated "
		"by '.')");
	return -1;
}

/*
 * public_url goes into the seed as written: in "#va:" comment lines and
 * a YAML scalar, and into the guests' tools. Its bytes are held to a
 * short list (no spaces, quotes, '#', '?' or non-ASCII) that is policy,
 * not URL syntax; the syntax (a host, a port in range, IPv6 brackets) is
 * libcurl's to check (url_check_http).
 */
static int
url_valid(const char *s)
{
	if (!s || (strncmp(s, "http://", 7) != 0 &&
		   strncmp(s, "https://", 8) != 0)) {
		err_set("public_url must start with http:// or https://");
		return -1;
	}
	if (strlen(s) > 1024) {
		err_set("public_url is longer than 1024 characters");
		return -1;
	}
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || c == '"' || c == '\'' ||
		    c == '\\' || c == '#' || c == '?' || c == '`' || c == '<' ||
		    c == '>' || c == '{' || c == '}' || c == '|' || c == '^') {
			err_set("public_url has the byte 0x%02x at offset %zu "
				"(no spaces, quotes, '#', '?' or non-ASCII)", c, i);
			return -1;
		}
	}
	if (url_check_http(s) != 0) {
		err_prefix("public_url");
		return -1;
	}
	return 0;
}

static int
ip_valid(const char *what, const char *s, int *family)
{
	unsigned char buf[16];

	if (s && inet_pton(AF_INET, s, buf) == 1) {
		if (family)
			*family = 4;
		return 0;
	}
	if (s && inet_pton(AF_INET6, s, buf) == 1) {
		if (family)
			*family = 6;
		return 0;
	}
	err_set("%s '%s' is not an IPv4 or IPv6 address", what, s ? s : "");
	return -1;
}

char *
seed_yaml_quote(const char *s)
{
	return quote_yaml(s);
}

/* Append key: "value" (quoted) with indent; returns -1 on bad UTF-8. */
static int
add_kv(struct strbuf *sb, int indent, const char *key, const char *value)
{
	char *q = seed_yaml_quote(value);

	if (!q)
		return -1;
	strbuf_addf(sb, "%*s%s: %s\n", indent, "", key, q);
	free(q);
	return 0;
}

/* Append a list item "- value" (quoted) with indent. */
static int
add_item(struct strbuf *sb, int indent, const char *value)
{
	char *q = seed_yaml_quote(value);

	if (!q)
		return -1;
	strbuf_addf(sb, "%*s- %s\n", indent, "", q);
	free(q);
	return 0;
}

/* --- URLs and files ------------------------------------------------------ */

/*
 * Appended as text, not set with curl_url_set(CURLUPART_PATH): libcurl
 * writes a URL back in its own normal form (a "/" path for a bare host,
 * for one), and the seed carries public_url as the operator wrote it;
 * the parts appended are segment_valid() already.
 */
static char *
guest_url(const char *public_url, const char *kind, const char *id,
	  const char *secret)
{
	size_t n;

	if (url_valid(public_url) < 0 ||
	    segment_valid("instance id", id) < 0 ||
	    segment_valid("instance secret", secret) < 0)
		return NULL;
	n = strlen(public_url);
	if (public_url[n - 1] == '/')
		n--;
	return xasprintf("%.*s/v1/%s/%s/%s", (int)n, public_url, kind, id,
			 secret);
}

char *
seed_checkin_url(const char *public_url, const char *id, const char *secret)
{
	return guest_url(public_url, "checkin", id, secret);
}

char *
seed_heartbeat_url(const char *public_url, const char *id, const char *secret)
{
	return guest_url(public_url, "heartbeat", id, secret);
}

char *
seed_meta_data(const struct seed_spec *spec)
{
	struct strbuf sb = STRBUF_INIT;

	if (segment_valid("instance id", spec->instance_id) < 0 ||
	    hostname_valid(spec->hostname) < 0)
		return NULL;
	add_kv(&sb, 0, "instance-id", spec->instance_id);
	add_kv(&sb, 0, "local-hostname", spec->hostname);
	return strbuf_detach(&sb);
}

/* The #cloud-config part: #va: lines and phone_home. */
static void
vendor_cloud_config(struct strbuf *sb, const struct seed_spec *spec,
		    const char *checkin, const char *hb, unsigned interval)
{
	strbuf_adds(sb, "#cloud-config\n"
			"# Added by virt-autoscaler (the group's user-data is "
			"passed through untouched).\n");
	/* Comments for guests that send heartbeats; validated URLs only. */
	strbuf_addf(sb, "#va: checkin_url=%s\n", checkin);
	strbuf_addf(sb, "#va: heartbeat_url=%s\n", hb);
	strbuf_addf(sb, "#va: heartbeat_interval=%u\n", interval);
	if (!spec->no_phone_home) {
		strbuf_adds(sb, "phone_home:\n");
		add_kv(sb, 2, "url", checkin);
		strbuf_adds(sb, "  post: [instance_id, hostname]\n"
				"  tries: 10\n");
	}
}

/*
 * The shell script part that installs the agent (agent/install.sh). The
 * heartbeat URL (with the secret) is only in a quoted here-document, so it
 * reaches the 0600 file through a pipe: never a command line, never a
 * world-readable file. hb is url_valid() + path segments: no '"' or '\'
 * to escape in JSON, no control characters.
 */
static void
vendor_agent_script(struct strbuf *sb, const char *hb, unsigned interval)
{
	strbuf_adds(sb, "#!/bin/sh\n"
			"# virt-autoscaler: installs virt-autoscaler-agent, "
			"which sends this\n"
			"# instance's heartbeats (docs/provisioning.md).\n"
			"va_conf() {\n"
			"\tcat <<'VA_CONF_EOF'\n");
	strbuf_addf(sb, "{\"heartbeat_url\": \"%s\", \"interval\": %u,\n", hb,
		    interval);
	strbuf_adds(sb, "VA_CONF_EOF\n"
			"\tprintf ' \"status_file\": "
			"\"%s/run/virt-autoscaler/status.json\"}\\n' \"$1\"\n"
			"}\n"
			"va_agent() {\n"
			"\tcat <<'VA_AGENT_EOF'\n");
	strbuf_adds(sb, AGENT_PROGRAM);
	strbuf_adds(sb, "VA_AGENT_EOF\n}\n");
	strbuf_adds(sb, AGENT_INSTALL);
}

char *
seed_vendor_data(const struct seed_spec *spec)
{
	struct strbuf sb = STRBUF_INIT;
	char *checkin = NULL, *hb = NULL, *ret = NULL;
	unsigned interval = spec->heartbeat_interval ? spec->heartbeat_interval
						     : 30;

	checkin = seed_checkin_url(spec->public_url, spec->instance_id,
				   spec->secret);
	if (!checkin)
		goto cleanup;
	hb = seed_heartbeat_url(spec->public_url, spec->instance_id,
				spec->secret);
	if (!hb)
		goto cleanup;
	if (spec->no_agent) {
		vendor_cloud_config(&sb, spec, checkin, hb, interval);
		ret = strbuf_detach(&sb);
		goto cleanup;
	}
	/*
	 * A MIME multipart document, as cloud-init's make-mime writes it. The
	 * agent is a script part, not write_files/runcmd in the cloud-config:
	 * cloud-init merges user-data over vendor-data key by key, so a
	 * user-data with its own write_files or runcmd would silently drop
	 * ours; vendor scripts run regardless (scripts-vendor).
	 */
	strbuf_adds(&sb, "Content-Type: multipart/mixed; boundary=\""
			 SEED_MIME_BOUNDARY "\"\n"
			 "MIME-Version: 1.0\n"
			 "\n"
			 "--" SEED_MIME_BOUNDARY "\n"
			 "Content-Type: text/cloud-config; charset=\"us-ascii\"\n"
			 "MIME-Version: 1.0\n"
			 "Content-Transfer-Encoding: 7bit\n"
			 "Content-Disposition: attachment; "
			 "filename=\"virt-autoscaler.cfg\"\n"
			 "\n");
	vendor_cloud_config(&sb, spec, checkin, hb, interval);
	strbuf_adds(&sb, "\n"
			 "--" SEED_MIME_BOUNDARY "\n"
			 "Content-Type: text/x-shellscript; charset=\"us-ascii\"\n"
			 "MIME-Version: 1.0\n"
			 "Content-Transfer-Encoding: 7bit\n"
			 "Content-Disposition: attachment; "
			 "filename=\"virt-autoscaler-agent.sh\"\n"
			 "\n");
	vendor_agent_script(&sb, hb, interval);
	strbuf_adds(&sb, "\n--" SEED_MIME_BOUNDARY "--\n");
	ret = strbuf_detach(&sb);
cleanup:
	strbuf_release(&sb);
	free(checkin);
	free(hb);
	return ret;
}

static int
iface_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 15)
		goto bad;
	for (size_t i = 0; i < n; i++)
		if (!isascii((unsigned char)s[i]) ||
		    !(isalnum((unsigned char)s[i]) || s[i] == '_' ||
		      s[i] == '-' || s[i] == '.'))
			goto bad;
	return 0;
bad:
	err_set("interface name '%s' is not 1-15 characters of "
		"[A-Za-z0-9._-]", s);
	return -1;
}

static int
mac_valid(const char *s)
{
	if (strlen(s) != 17)
		goto bad;
	for (int i = 0; i < 17; i++) {
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			goto bad;
	}
	return 0;
bad:
	err_set("mac '%s' is not of the form 52:54:00:xx:xx:xx", s);
	return -1;
}

char *
seed_network_config(const struct seed_net *net)
{
	struct strbuf sb = STRBUF_INIT;
	const char *iface = net->interface ? net->interface : "eth0";
	char *addr = NULL, *ret = NULL;
	int fam, gfam;

	if (iface_valid(iface) < 0 || ip_valid("address", net->address, &fam) < 0)
		goto cleanup;
	if (net->prefix < 1 || net->prefix > (fam == 4 ? 32u : 128u)) {
		err_set("prefix /%u out of range for %s", net->prefix,
			net->address);
		goto cleanup;
	}
	if (net->gateway) {
		if (ip_valid("gateway", net->gateway, &gfam) < 0)
			goto cleanup;
		if (gfam != fam) {
			err_set("gateway %s and address %s are of different "
				"families", net->gateway, net->address);
			goto cleanup;
		}
	}
	for (size_t i = 0; i < net->n_dns; i++)
		if (ip_valid("dns", net->dns[i], NULL) < 0)
			goto cleanup;
	if (net->mac && mac_valid(net->mac) < 0)
		goto cleanup;

	strbuf_adds(&sb, "version: 2\nethernets:\n");
	/* iface is validated: [A-Za-z0-9._-] cannot break a plain key */
	strbuf_addf(&sb, "  %s:\n", iface);
	if (net->mac) {
		strbuf_adds(&sb, "    match:\n");
		add_kv(&sb, 6, "macaddress", net->mac);
		add_kv(&sb, 4, "set-name", iface);
	}
	addr = xasprintf("%s/%u", net->address, net->prefix);
	strbuf_adds(&sb, "    addresses:\n");
	add_item(&sb, 6, addr);
	if (net->gateway) {
		strbuf_adds(&sb, "    routes:\n");
		add_kv(&sb, 6, "- to", fam == 4 ? "0.0.0.0/0" : "::/0");
		add_kv(&sb, 8, "via", net->gateway);
	}
	if (net->n_dns > 0) {
		strbuf_adds(&sb, "    nameservers:\n      addresses:\n");
		for (size_t i = 0; i < net->n_dns; i++)
			add_item(&sb, 8, net->dns[i]);
	}
	ret = strbuf_detach(&sb);
cleanup:
	strbuf_release(&sb);
	free(addr);
	return ret;
}

/* --- ISO ----------------------------------------------------------------- */

static pthread_once_t iso_once = PTHREAD_ONCE_INIT;
static int iso_init_rc;

static void
iso_setup(void)
{
	iso_init_rc = iso_init();
	if (iso_init_rc >= 0)
		iso_set_msgs_severities("NEVER", "FATAL", "libisofs");
}

static int
add_file(IsoImage *img, const char *name, const void *data, size_t len)
{
	unsigned char *copy = xmalloc(len ? len : 1);
	IsoStream *st = NULL;
	IsoFile *file = NULL;
	int r;

	memcpy(copy, data, len);
	r = iso_memory_stream_new(copy, len, &st);
	if (r < 0) {
		free(copy);
		err_set("libisofs: cannot make a stream for %s (%d)", name, r);
		return -1;
	}
	r = iso_tree_add_new_file(iso_image_get_root(img), name, st, &file);
	if (r < 0) {
		iso_stream_unref(st);
		err_set("libisofs: cannot add %s (%d)", name, r);
		return -1;
	}
	/* the file took over our reference to the stream */
	iso_node_set_permissions((IsoNode *)file, 0444);
	return 0;
}

int
seed_build_iso(const struct seed_spec *spec, unsigned char **iso, size_t *len)
{
	IsoImage *img = NULL;
	IsoWriteOpts *opts = NULL;
	struct burn_source *bs = NULL;
	struct strbuf out = STRBUF_INIT;
	char *meta = NULL, *vendor = NULL, *netcfg = NULL;
	unsigned char block[2048];
	int r, rc = -1;

	if (spec->network_config && spec->net) {
		err_set("seed: both a network-config file and a static address "
			"given");
		return -1;
	}
	if (spec->user_data_len > MAX_FILE ||
	    spec->network_config_len > MAX_FILE) {
		err_set("seed: user-data or network-config larger than 16 MiB");
		return -1;
	}
	meta = seed_meta_data(spec);
	if (!meta)
		goto cleanup;
	vendor = seed_vendor_data(spec);
	if (!vendor)
		goto cleanup;
	if (spec->net) {
		netcfg = seed_network_config(spec->net);
		if (!netcfg) {
			err_prefix("network-config");
			goto cleanup;
		}
	}
	pthread_once(&iso_once, iso_setup);
	if (iso_init_rc < 0) {
		err_set("libisofs: initialisation failed (%d)", iso_init_rc);
		goto cleanup;
	}
	r = iso_image_new(SEED_VOLUME_ID, &img);
	if (r < 0) {
		err_set("libisofs: cannot create an image (%d)", r);
		goto cleanup;
	}
	iso_image_set_volume_id(img, SEED_VOLUME_ID);
	if (add_file(img, "meta-data", meta, strlen(meta)) < 0 ||
	    add_file(img, "user-data", spec->user_data ? spec->user_data : "",
		     spec->user_data ? spec->user_data_len : 0) < 0 ||
	    add_file(img, "vendor-data", vendor, strlen(vendor)) < 0)
		goto cleanup;
	if (spec->network_config &&
	    add_file(img, "network-config", spec->network_config,
		     spec->network_config_len) < 0)
		goto cleanup;
	if (netcfg && add_file(img, "network-config", netcfg, strlen(netcfg)) < 0)
		goto cleanup;

	/* Profile 2: Rock Ridge and Joliet, like genisoimage -J -r. */
	r = iso_write_opts_new(&opts, 2);
	if (r < 0) {
		err_set("libisofs: write options (%d)", r);
		goto cleanup;
	}
	/* Keep the label lower case, "cidata", as genisoimage -V does. */
	iso_write_opts_set_relaxed_vol_atts(opts, 1);
	r = iso_image_create_burn_source(img, opts, &bs);
	if (r < 0) {
		err_set("libisofs: cannot start writing the image (%d)", r);
		goto cleanup;
	}
	for (;;) {
		int n = bs->read_xt(bs, block, sizeof(block));

		if (n < 0) {
			err_set("libisofs: writing the image failed");
			goto cleanup;
		}
		if (n == 0)
			break;
		strbuf_add(&out, block, (size_t)n);
		if (out.len > 64u << 20) {
			err_set("seed image larger than 64 MiB");
			goto cleanup;
		}
	}
	*len = out.len;
	*iso = (unsigned char *)strbuf_detach(&out);
	log_debug("seed for %s: %zu bytes", spec->instance_id, *len);
	rc = 0;
cleanup:
	if (bs) {
		if (rc < 0 && bs->cancel)
			bs->cancel(bs);
		bs->free_data(bs);
		free(bs);
	}
	if (opts)
		iso_write_opts_free(opts);
	if (img)
		iso_image_unref(img);
	strbuf_release(&out);
	free(meta);
	free(vendor);
	free(netcfg);
	return rc;
}
