/*
 * Unit tests for seed.c: the ISO is read back with libisofs (volume label,
 * file names, contents byte for byte); the generated YAML is parsed back
 * with libyaml; hostile names, URLs and addresses are rejected, and any
 * string quoted by seed_yaml_quote() parses back to itself.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <yaml.h>

#include "agent_text.h"
#include "log.h"
#include "seed.h"
#include "util.h"

/* --- reading back ---------------------------------------------------------- */

struct iso_read {
	IsoImage *img;
	IsoDataSource *src;
	char path[64];
};

static void
iso_open(struct iso_read *r, const unsigned char *iso, size_t len)
{
	IsoReadOpts *ro;
	FILE *f;
	int fd;

	snprintf(r->path, sizeof(r->path), "/tmp/va-test-seed-XXXXXX");
	fd = mkstemp(r->path);
	assert_true(fd >= 0);
	f = fdopen(fd, "w");
	assert_int_equal(fwrite(iso, 1, len, f), len);
	fclose(f);
	assert_true(iso_init() >= 0);
	assert_true(iso_data_source_new_from_file(r->path, &r->src) >= 0);
	assert_true(iso_read_opts_new(&ro, 0) >= 0);
	assert_true(iso_image_new("x", &r->img) >= 0);
	assert_true(iso_image_import(r->img, r->src, ro, NULL) >= 0);
	iso_read_opts_free(ro);
}

static void
iso_close(struct iso_read *r)
{
	iso_image_unref(r->img);
	iso_data_source_unref(r->src);
	unlink(r->path);
}

/* Contents of a file in the root (caller frees), NULL if absent. */
static char *
iso_cat(struct iso_read *r, const char *name, size_t *len)
{
	IsoNode *node = NULL;
	IsoStream *st;
	struct strbuf sb = STRBUF_INIT;
	char buf[4096];
	int n;

	if (iso_dir_get_node(iso_image_get_root(r->img), name, &node) != 1)
		return NULL;
	assert_int_equal(iso_node_get_type(node), LIBISO_FILE);
	st = iso_file_get_stream((IsoFile *)node);
	assert_true(iso_stream_open(st) >= 0);
	while ((n = iso_stream_read(st, buf, sizeof(buf))) > 0)
		strbuf_add(&sb, buf, (size_t)n);
	iso_stream_close(st);
	*len = sb.len;
	return strbuf_detach(&sb);
}

/* --- YAML -------------------------------------------------------------- */

/*
 * Parse YAML and return the scalar at a path of mapping keys / sequence
 * indexes ("phone_home", "url") — a tiny walker over libyaml's document.
 */
static char *
yaml_at(const char *text, const char *const *path, size_t n_path)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_node_t *node;
	char *ret = NULL;

	assert_true(yaml_parser_initialize(&p));
	yaml_parser_set_input_string(&p, (const unsigned char *)text,
				     strlen(text));
	if (!yaml_parser_load(&p, &doc))
		fail_msg("YAML does not parse: %s\n%s", p.problem, text);
	node = yaml_document_get_root_node(&doc);
	for (size_t i = 0; node && i < n_path; i++) {
		yaml_node_t *next = NULL;

		if (node->type == YAML_MAPPING_NODE) {
			for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
			     pr < node->data.mapping.pairs.top; pr++) {
				yaml_node_t *k = yaml_document_get_node(&doc, pr->key);

				if (k->type == YAML_SCALAR_NODE &&
				    strcmp((char *)k->data.scalar.value, path[i]) == 0)
					next = yaml_document_get_node(&doc, pr->value);
			}
		} else if (node->type == YAML_SEQUENCE_NODE) {
			long idx = atol(path[i]);
			yaml_node_item_t *it = node->data.sequence.items.start + idx;

			if (it < node->data.sequence.items.top)
				next = yaml_document_get_node(&doc, *it);
		}
		node = next;
	}
	if (node && node->type == YAML_SCALAR_NODE)
		ret = xstrndup((char *)node->data.scalar.value,
			       node->data.scalar.length);
	yaml_document_delete(&doc);
	yaml_parser_delete(&p);
	return ret;
}

#define AT(text, ...)                                                          \
	yaml_at(text, (const char *const[]){__VA_ARGS__},                      \
		sizeof((const char *const[]){__VA_ARGS__}) / sizeof(char *))

static void
expect_at(const char *text, const char *want, char *got)
{
	if (!got || strcmp(got, want) != 0)
		fail_msg("expected '%s', got '%s' in\n%s", want,
			 got ? got : "(none)", text);
	free(got);
}

/* --- MIME --------------------------------------------------------------- */

/*
 * The body of the part of a MIME multipart vendor-data with this
 * Content-Type (caller frees), NULL if there is none. Parts are split at
 * "\n--BOUNDARY" lines as RFC 2046 says; the line break before a boundary
 * belongs to the boundary.
 */
static char *
mime_part(const char *doc, const char *ctype)
{
	const char *delim = "\n--" SEED_MIME_BOUNDARY;
	const char *p = strstr(doc, delim);

	while (p) {
		const char *hdr = p + strlen(delim), *body, *end;

		if (strncmp(hdr, "--", 2) == 0)
			return NULL; /* the closing boundary */
		hdr = strchr(hdr, '\n');
		assert_non_null(hdr);
		body = strstr(hdr, "\n\n");
		assert_non_null(body);
		end = strstr(body + 2, delim);
		assert_non_null(end);
		if (memmem(hdr, (size_t)(body - hdr), ctype, strlen(ctype)))
			return xstrndup(body + 2, (size_t)(end - body - 2));
		p = end;
	}
	return NULL;
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;

	for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/* --- tests --------------------------------------------------------------- */

static const char user_data[] =
	"#cloud-config\n"
	"# the user's file, byte for byte: odd spacing, tabs\t, unicode \xc3\xa9\n"
	"runcmd:\n  - [ sh, -c, 'echo \"hi\" > /tmp/x' ]\n"
	"phone_home: {url: 'x'}   \r\n\x00binary after NUL";

static void
test_iso_roundtrip(void **state)
{
	const char *dns[] = {"192.0.2.53", "2001:db8::53"};
	struct seed_net net = {.address = "192.0.2.10", .prefix = 24,
			       .gateway = "192.0.2.1", .dns = dns, .n_dns = 2,
			       .mac = "52:54:00:12:34:56"};
	struct seed_spec spec = {
		.instance_id = "web-0001", .hostname = "web-0001",
		.user_data = user_data, .user_data_len = sizeof(user_data) - 1,
		.public_url = "http://10.0.2.2:8470/", .secret = "s3cr3t_-.X",
		.heartbeat_interval = 7, .net = &net};
	struct iso_read r;
	unsigned char *iso = NULL;
	size_t len = 0, n;
	char *s;

	(void)state;
	if (seed_build_iso(&spec, &iso, &len) < 0)
		fail_msg("%s", err_msg());
	assert_true(len > 0 && len % 2048 == 0);
	iso_open(&r, iso, len);
	assert_string_equal(iso_image_get_volume_id(r.img), "cidata");

	s = iso_cat(&r, "user-data", &n);
	assert_non_null(s);
	assert_int_equal(n, sizeof(user_data) - 1);
	assert_memory_equal(s, user_data, n);
	free(s);

	s = iso_cat(&r, "meta-data", &n);
	assert_non_null(s);
	expect_at(s, "web-0001", AT(s, "instance-id"));
	expect_at(s, "web-0001", AT(s, "local-hostname"));
	free(s);

	s = iso_cat(&r, "vendor-data", &n);
	assert_non_null(s);
	{
		char *doc = s;

		s = mime_part(doc, "text/cloud-config");
		assert_non_null(s);
		free(doc);
	}
	assert_memory_equal(s, "#cloud-config\n", 14);
	expect_at(s, "http://10.0.2.2:8470/v1/checkin/web-0001/s3cr3t_-.X",
		  AT(s, "phone_home", "url"));
	expect_at(s, "instance_id", AT(s, "phone_home", "post", "0"));
	expect_at(s, "hostname", AT(s, "phone_home", "post", "1"));
	expect_at(s, "10", AT(s, "phone_home", "tries"));
	assert_non_null(strstr(s, "\n#va: heartbeat_url=http://10.0.2.2:8470/v1/"
				  "heartbeat/web-0001/s3cr3t_-.X\n"));
	assert_non_null(strstr(s, "\n#va: heartbeat_interval=7\n"));
	free(s);

	s = iso_cat(&r, "network-config", &n);
	assert_non_null(s);
	expect_at(s, "2", AT(s, "version"));
	expect_at(s, "52:54:00:12:34:56",
		  AT(s, "ethernets", "eth0", "match", "macaddress"));
	expect_at(s, "eth0", AT(s, "ethernets", "eth0", "set-name"));
	expect_at(s, "192.0.2.10/24", AT(s, "ethernets", "eth0", "addresses", "0"));
	expect_at(s, "0.0.0.0/0", AT(s, "ethernets", "eth0", "routes", "0", "to"));
	expect_at(s, "192.0.2.1", AT(s, "ethernets", "eth0", "routes", "0", "via"));
	expect_at(s, "2001:db8::53", AT(s, "ethernets", "eth0", "nameservers",
					"addresses", "1"));
	free(s);
	assert_null(iso_cat(&r, "nonexistent", &n));
	iso_close(&r);
	free(iso);
}

static void
test_iso_minimal(void **state)
{
	static const char netcfg[] = "network:\n  version: 1\n  config: disabled\n";
	struct seed_spec spec = {
		.instance_id = "i", .hostname = "h",
		.public_url = "https://autoscaler.example:8470/prefix",
		.secret = "x", .network_config = netcfg,
		.network_config_len = sizeof(netcfg) - 1};
	struct iso_read r;
	unsigned char *iso = NULL;
	size_t len = 0, n;
	char *s;

	(void)state;
	if (seed_build_iso(&spec, &iso, &len) < 0)
		fail_msg("%s", err_msg());
	iso_open(&r, iso, len);
	s = iso_cat(&r, "user-data", &n); /* required by NoCloud: present, empty */
	assert_non_null(s);
	assert_int_equal(n, 0);
	free(s);
	s = iso_cat(&r, "network-config", &n);
	assert_int_equal(n, sizeof(netcfg) - 1);
	assert_memory_equal(s, netcfg, n);
	free(s);
	s = iso_cat(&r, "vendor-data", &n);
	{
		char *cc = mime_part(s, "text/cloud-config");

		expect_at(cc, "https://autoscaler.example:8470/prefix/v1/checkin/i/x",
			  AT(cc, "phone_home", "url"));
		free(cc);
	}
	free(s);
	iso_close(&r);
	free(iso);

	/* phone_home off: only the #va: lines */
	spec.no_phone_home = true;
	s = seed_vendor_data(&spec);
	assert_non_null(s);
	assert_null(strstr(s, "\nphone_home:"));
	assert_non_null(strstr(s, "\n#va: heartbeat_url=https://"));
	free(s);
	spec.no_phone_home = false;

	/* both a network-config file and a static address: refused */
	spec.net = &(struct seed_net){.address = "192.0.2.1", .prefix = 24};
	assert_int_equal(seed_build_iso(&spec, &iso, &len), -1);
}

/* Hostile values are rejected before anything is written. */
static void
test_hostile(void **state)
{
	static const struct {
		const char *id, *host, *url, *secret, *msg;
	} bad[] = {
		{"a\nb", "h", "http://x", "s", "instance id has the byte 0x0a"},
		{"a: b", "h", "http://x", "s", "instance id has the byte 0x3a"},
		{"x\"}", "h", "http://x", "s", "instance id"},
		{"..", "h", "http://x", "s", "must not be '..'"},
		{"../etc", "h", "http://x", "s", "instance id"},
		{"", "h", "http://x", "s", "instance id is empty"},
		{"ok", "h\nx: y", "http://x", "s", "hostname"},
		{"ok", "-h", "http://x", "s", "hostname"},
		{"ok", "a..b", "http://x", "s", "hostname"},
		{"ok", "h", "http://x\"\n  evil: 1", "s", "public_url has the byte"},
		{"ok", "h", "http://x #c", "s", "public_url has the byte 0x20"},
		{"ok", "h", "http://x?q=1", "s", "public_url has the byte 0x3f"},
		{"ok", "h", "ftp://x", "s", "must start with http"},
		{"ok", "h", "http://", "s", "no host"},
		{"ok", "h", "http://x/\xc3\xa9", "s", "public_url has the byte 0xc3"},
		{"ok", "h", "http://x", "s/../../admin", "instance secret"},
		{"ok", "h", "http://x", "s%2f", "instance secret"},
		{"ok", "h", "http://x", "", "instance secret is empty"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct seed_spec spec = {.instance_id = bad[i].id,
					 .hostname = bad[i].host,
					 .public_url = bad[i].url,
					 .secret = bad[i].secret};
		unsigned char *iso = NULL;
		size_t len = 0;

		assert_int_equal(seed_build_iso(&spec, &iso, &len), -1);
		assert_null(iso);
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 bad[i].msg);
	}
}

static void
test_network_bad(void **state)
{
	const char *dns_bad[] = {"8.8.8.8\n  evil: 1"};
	static const struct {
		struct seed_net net;
		const char *msg;
	} bad[] = {
		{{.address = "192.0.2.1/24", .prefix = 24}, "not an IPv4"},
		{{.address = "192.0.2.1", .prefix = 33}, "prefix /33"},
		{{.address = "192.0.2.1", .prefix = 0}, "prefix /0"},
		{{.address = "192.0.2.1", .prefix = 24, .gateway = "2001:db8::1"},
		 "different families"},
		{{.address = "192.0.2.1", .prefix = 24, .gateway = "x\"y"},
		 "gateway"},
		{{.address = "192.0.2.1", .prefix = 24, .interface = "eth0: {}"},
		 "interface name"},
		{{.address = "192.0.2.1", .prefix = 24, .mac = "52:54:00:zz:00:00"},
		 "mac"},
	};
	struct seed_net n6 = {.address = "2001:db8::10", .prefix = 64,
			      .gateway = "2001:db8::1", .interface = "ens3"};
	char *s;

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_null(seed_network_config(&bad[i].net));
		if (!strstr(err_msg(), bad[i].msg))
			fail_msg("case %zu: '%s' lacks '%s'", i, err_msg(),
				 bad[i].msg);
	}
	assert_null(seed_network_config(&(struct seed_net){
		.address = "192.0.2.1", .prefix = 24, .dns = dns_bad, .n_dns = 1}));
	s = seed_network_config(&n6);
	assert_non_null(s);
	expect_at(s, "::/0", AT(s, "ethernets", "ens3", "routes", "0", "to"));
	expect_at(s, "2001:db8::10/64", AT(s, "ethernets", "ens3", "addresses", "0"));
	free(s);
}

/* Whatever the string, the quoted form parses back to it. */
static void
test_yaml_quote(void **state)
{
	static const char *const vals[] = {
		"plain", "", "with \"quotes\" and \\backslash\\",
		"colon: and # hash", "newline\nand\ttab\rcr", "- dash",
		"{flow: [x]}", "&anchor *alias !tag", "\x01\x1f\x7f",
		"unicode \xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		"line sep \xe2\x80\xa8 para \xe2\x80\xa9 nel \xc2\x85",
		("\xef\xbb\xbf" "bom"), "'single'", "%YAML 1.1", "---", "...",
		"null", "~", "true", "0x10",
		"c1 \xc2\x80 \xc2\x9f nbsp \xc2\xa0 nonchar \xef\xbf\xbe \xef\xbf\xbf",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(vals); i++) {
		char *q = seed_yaml_quote(vals[i]);
		char *doc;

		assert_non_null(q);
		doc = xasprintf("k: %s\n", q);
		expect_at(doc, vals[i], AT(doc, "k"));
		free(doc);
		free(q);
	}
	/* invalid UTF-8 is refused, not passed on */
	assert_null(seed_yaml_quote("bad \xc3 utf8"));
	assert_null(seed_yaml_quote("surrogate \xed\xa0\x80"));
	assert_null(seed_yaml_quote("overlong \xc0\xaf"));
}

static void
test_urls(void **state)
{
	char *u;

	(void)state;
	u = seed_checkin_url("http://10.0.2.2:8470", "web-1", "abc");
	assert_string_equal(u, "http://10.0.2.2:8470/v1/checkin/web-1/abc");
	free(u);
	u = seed_heartbeat_url("http://[::1]:8470/", "web-1", "abc");
	assert_string_equal(u, "http://[::1]:8470/v1/heartbeat/web-1/abc");
	free(u);
	/* the URL as written: user info, a path prefix, scoped IPv6 */
	u = seed_checkin_url("https://va@[fe80::1%25ens3]:443/prefix/", "web-1",
			     "abc");
	assert_string_equal(u, "https://va@[fe80::1%25ens3]:443/prefix/v1/checkin/web-1/abc");
	free(u);
	/* libcurl's URL syntax on top of the byte rules */
	assert_null(seed_checkin_url("http://h:99999", "web-1", "abc"));
	assert_non_null(strstr(err_msg(), "public_url: 'http://h:99999'"));
	assert_null(seed_checkin_url("http://[::1", "web-1", "abc"));
	assert_non_null(strstr(err_msg(), "public_url"));
	assert_null(seed_checkin_url("http://:8470", "web-1", "abc"));
	assert_non_null(strstr(err_msg(), "public_url"));
	assert_null(seed_checkin_url("http:///x", "web-1", "abc"));
	assert_non_null(strstr(err_msg(), "no host"));
	assert_null(seed_checkin_url("HTTP://x", "web-1", "abc"));
	assert_non_null(strstr(err_msg(), "must start with http"));
}

/*
 * The agent's vendor-data (docs/provisioning.md, "The guest agent"): a MIME
 * document cloud-init recognises, the cloud-config part as before, and a
 * script part holding the agent and its configuration, with the secret
 * only in a quoted here-document (a pipe into a file created 0600), never
 * in a command's arguments; a user-data key cannot override it (it is not
 * a cloud-config key). With cloud_init.agent: false, the cloud-config
 * alone.
 */
static void
test_vendor_agent(void **state)
{
	struct seed_spec spec = {
		.instance_id = "web-0001", .hostname = "web-0001",
		.public_url = "http://10.0.2.2:8470", .secret = "S3CR3Tx",
		.heartbeat_interval = 20};
	char *doc, *cc, *sh, *line;
	const char *conf = "\tcat <<'VA_CONF_EOF'\n{\"heartbeat_url\": "
			   "\"http://10.0.2.2:8470/v1/heartbeat/web-0001/"
			   "S3CR3Tx\", \"interval\": 20,\nVA_CONF_EOF\n";

	(void)state;
	doc = seed_vendor_data(&spec);
	assert_non_null(doc);
	/* cloud-init takes it for MIME when this is in its first 4 KiB */
	assert_memory_equal(doc, "Content-Type: multipart/mixed; boundary=", 40);
	line = strstr(doc, "\nMIME-Version: 1.0\n");
	assert_true(line && line - doc < 4096);
	cc = mime_part(doc, "Content-Type: text/cloud-config;");
	sh = mime_part(doc, "Content-Type: text/x-shellscript;");
	assert_non_null(cc);
	assert_non_null(sh);
	assert_memory_equal(cc, "#cloud-config\n", 14);
	expect_at(cc, "http://10.0.2.2:8470/v1/checkin/web-0001/S3CR3Tx",
		  AT(cc, "phone_home", "url"));
	assert_memory_equal(sh, "#!/bin/sh\n", 10);
	/* the secret: 2 #va: lines and phone_home, then the here-document */
	assert_int_equal(count(cc, "S3CR3Tx"), 3);
	assert_int_equal(count(sh, "S3CR3Tx"), 1);
	assert_int_equal(count(doc, "S3CR3Tx"), 4);
	assert_non_null(strstr(sh, conf));
	assert_non_null(strstr(sh, "(umask 077 && va_conf \"$root\" >\"$conf.new\")\n"
				   "chmod 0600 \"$conf.new\"\n"));
	/* the agent whole, in its own quoted here-document */
	line = xasprintf("\tcat <<'VA_AGENT_EOF'\n%sVA_AGENT_EOF\n}\n",
			 AGENT_PROGRAM);
	assert_non_null(strstr(sh, line));
	free(line);
	assert_non_null(strstr(sh, AGENT_INSTALL));
	/* the tiny test guest reads these lines from the whole file */
	assert_int_equal(count(doc, "\nphone_home:"), 1);
	assert_int_equal(count(doc, "\n#va: heartbeat_url="), 1);
	assert_int_equal(count(doc, "\n--" SEED_MIME_BOUNDARY), 3);
	assert_non_null(strstr(doc, "\n--" SEED_MIME_BOUNDARY "--\n"));
	free(cc);
	free(sh);
	free(doc);

	spec.no_agent = true;
	doc = seed_vendor_data(&spec);
	assert_memory_equal(doc, "#cloud-config\n", 14);
	assert_null(strstr(doc, "#!/bin/sh"));
	assert_null(strstr(doc, "MIME"));
	assert_non_null(strstr(doc, "\n#va: heartbeat_interval=20\n"));
	free(doc);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_iso_roundtrip),
		cmocka_unit_test(test_iso_minimal),
		cmocka_unit_test(test_hostile),
		cmocka_unit_test(test_network_bad),
		cmocka_unit_test(test_yaml_quote),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_vendor_agent),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
