/*
 * Unit tests for config.c beyond the golden files (tests/config): secrets
 * read from a file or the environment, lookups, the print -> parse round
 * trip on the API, reload flags and config_reload_check, the error list
 * format, and the man page documenting exactly the keys of the tables.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "util.h"

#ifndef SRCDIR
#define SRCDIR "."
#endif

static const char base_yaml[] =
	"version: 1\n"
	"daemon:\n"
	"  interval: 20s\n"
	"  admin_token: { env: VA_TEST_CONFIG_TOKEN }\n"
	"hosts:\n"
	"  - { name: kvm1, uri: \"test:///default\", user_net: true }\n"
	"  - { name: kvm2, uri: \"test:///default\", bridge: br0 }\n"
	"groups:\n"
	"  web:\n"
	"    min: 1\n"
	"    max: 5\n"
	"    hosts: [kvm2]\n"
	"    template: { image: base.qcow2 }\n"
	"    scaling:\n"
	"      target: { cpu: 60% }\n"
	"  db:\n"
	"    min: 0\n"
	"    max: 2\n"
	"    template: { image: db.qcow2 }\n"
	"    scaling: { interval: 1m }\n";

static struct config *
parse(const char *text, struct strbuf *errors)
{
	return config_parse_buffer(text, strlen(text), "t.yaml", errors);
}

static void
test_lookup(void **state)
{
	struct strbuf errors = STRBUF_INIT;
	struct config *cfg = parse(base_yaml, &errors);
	const struct config_group *web, *db;
	const struct config_host *h;

	(void)state;
	assert_non_null(cfg);
	assert_string_equal(strbuf_str(&errors), "");
	web = config_group_find(cfg, "web");
	db = config_group_find(cfg, "db");
	assert_non_null(web);
	assert_non_null(db);
	assert_null(config_group_find(cfg, "nope"));
	assert_null(config_group_find(cfg, NULL));
	h = config_host_find(cfg, "kvm2");
	assert_non_null(h);
	assert_int_equal(h->net_kind, CONFIG_NET_BRIDGE);
	assert_string_equal(h->net_name, "br0");
	assert_int_equal(config_host_find(cfg, "kvm1")->net_kind,
			 CONFIG_NET_USER);
	assert_null(config_host_find(cfg, "kvm3"));

	/* explicit host list, resolved */
	assert_int_equal(web->hosts.n, 1);
	assert_ptr_equal(web->host_ptrs[0], h);
	/* default: every host */
	assert_int_equal(db->hosts.n, 2);
	assert_string_equal(db->host_ptrs[0]->name, "kvm1");

	/* the policy mirrors the group and the daemon */
	assert_int_equal(web->policy.min, 1);
	assert_int_equal(web->policy.max, 5);
	assert_int_equal(web->policy.interval_ms, 20000);
	assert_int_equal(db->policy.interval_ms, 60000);
	assert_true(web->policy.target[POLICY_METRIC_CPU] == 60.0);
	assert_int_equal(web->desired, 1);
	assert_string_equal(web->template.name_prefix, "web");
	assert_string_equal(cfg->daemon.public_url, "http://10.0.2.2:8470");
	config_free(cfg);
	strbuf_release(&errors);
}

static void
test_secret_file(void **state)
{
	char path[] = "/tmp/va-test-secret-XXXXXX";
	int fd = mkstemp(path);
	struct config_secret s = {CONFIG_SECRET_FILE, path, NULL};
	char *v = NULL;

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "s3cret\n\n", 8), 8);
	close(fd);
	assert_int_equal(config_secret_read(&s, &v), 0);
	assert_string_equal(v, "s3cret");
	free(v);

	/* world-readable still works (with a warning in the log) */
	chmod(path, 0644);
	assert_int_equal(config_secret_read(&s, &v), 0);
	free(v);

	/* empty file */
	fd = open(path, O_WRONLY | O_TRUNC);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "\n", 1), 1);
	close(fd);
	assert_int_equal(config_secret_read(&s, &v), -1);
	assert_null(v);
	assert_non_null(strstr(err_msg(), "empty"));

	unlink(path);
	assert_int_equal(config_secret_read(&s, &v), -1);
	assert_non_null(strstr(err_msg(), "No such file"));
}

static void
test_secret_env(void **state)
{
	struct config_secret s = {CONFIG_SECRET_ENV,
				  (char *)"VA_TEST_CONFIG_SECRET", NULL};
	struct config_secret none = {CONFIG_SECRET_NONE, NULL, NULL};
	char *v = NULL;

	(void)state;
	unsetenv("VA_TEST_CONFIG_SECRET");
	assert_int_equal(config_secret_read(&s, &v), -1);
	assert_non_null(strstr(err_msg(), "not set"));
	setenv("VA_TEST_CONFIG_SECRET", "", 1);
	assert_int_equal(config_secret_read(&s, &v), -1);
	assert_non_null(strstr(err_msg(), "empty"));
	setenv("VA_TEST_CONFIG_SECRET", "tok en", 1);
	assert_int_equal(config_secret_read(&s, &v), 0);
	assert_string_equal(v, "tok en");
	free(v);
	assert_int_equal(config_secret_read(&none, &v), -1);
	unsetenv("VA_TEST_CONFIG_SECRET");
}

/* The printer shows where a secret comes from, never its value. */
static void
test_secret_not_printed(void **state)
{
	struct strbuf errors = STRBUF_INIT, out = STRBUF_INIT;
	struct config *cfg;
	char *v = NULL;

	(void)state;
	setenv("VA_TEST_CONFIG_TOKEN", "very-secret-value", 1);
	cfg = parse(base_yaml, &errors);
	assert_non_null(cfg);
	assert_int_equal(cfg->daemon.admin_token.source, CONFIG_SECRET_ENV);
	assert_int_equal(config_secret_read(&cfg->daemon.admin_token, &v), 0);
	assert_string_equal(v, "very-secret-value");
	free(v);
	config_print(cfg, &out);
	assert_non_null(strstr(out.buf, "admin_token: { env: VA_TEST_CONFIG_TOKEN }"));
	assert_null(strstr(out.buf, "very-secret-value"));
	unsetenv("VA_TEST_CONFIG_TOKEN");
	config_free(cfg);
	strbuf_release(&out);
	strbuf_release(&errors);
}

/* print -> parse -> print is stable (the goldens check files; this the API) */
static void
test_round_trip(void **state)
{
	static const char *const inputs[] = {
		base_yaml,
		"version: 1\nhosts: [{name: a, uri: \"test:///default\"}]\n",
		"version: 1\n"
		"daemon: { listen: \"[::1]:1\", state: \"mysql://u@h/d\", "
		"state_password: { file: /run/p } }\n"
		"hosts: [{name: a, uri: \"test:///default\", network: n}]\n"
		"groups:\n"
		"  g:\n"
		"    min: 0\n"
		"    max: 3\n"
		"    template: { image: \"/x y/z\", kernel: /k, cmdline: \"a: b # c\" }\n"
		"    scaling:\n"
		"      steps:\n"
		"        - { metric: disk_bytes, above: 1MiB, change: +10% }\n"
		"        - { metric: memory, below: 12.5%, for: 90s, change: -1 }\n"
		"      schedules:\n"
		"        - { name: w, when: \"*/15 0-5,22 * * sat,sun\", max: 1 }\n",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(inputs); i++) {
		struct strbuf errors = STRBUF_INIT, a = STRBUF_INIT,
			      b = STRBUF_INIT;
		struct config *c1 = parse(inputs[i], &errors), *c2;

		if (!c1)
			fail_msg("input %zu: %s", i, strbuf_str(&errors));
		config_print(c1, &a);
		c2 = parse(a.buf, &errors);
		if (!c2)
			fail_msg("printed %zu: %s\n%s", i, strbuf_str(&errors),
				 a.buf);
		config_print(c2, &b);
		assert_string_equal(a.buf, b.buf);
		config_free(c1);
		config_free(c2);
		strbuf_release(&a);
		strbuf_release(&b);
		strbuf_release(&errors);
	}
}

static void
test_errors(void **state)
{
	static const char bad[] =
		"version: 1\n"
		"daemon:\n"
		"  interval: 5\n"
		"  colour: blue\n"
		"hosts:\n"
		"  - { name: a, uri: \"test:///default\" }\n"
		"groups:\n"
		"  g: { min: 3, max: 2, template: { image: i } }\n";
	struct strbuf errors = STRBUF_INIT;
	unsigned lines = 0;

	(void)state;
	assert_null(parse(bad, &errors));
	for (const char *p = errors.buf; p && *p; p = strchr(p, '\n') + 1) {
		assert_int_equal(strncmp(p, "t.yaml:", 7), 0);
		lines++;
	}
	assert_int_equal(lines, 3);
	assert_non_null(strstr(errors.buf, "t.yaml:3:13: daemon.interval:"));
	assert_non_null(strstr(errors.buf, "t.yaml:4:3: daemon: unknown key 'colour'"));
	assert_non_null(strstr(errors.buf, "t.yaml:8:21: groups.g: max (2) is less than min (3)"));
	strbuf_release(&errors);

	/* NULL errors buffer is allowed */
	assert_null(parse(bad, NULL));

	/* a missing file names the path and the reason */
	assert_null(config_load("/nonexistent/dir/autoscale.yaml", &errors));
	assert_string_equal(errors.buf, "/nonexistent/dir/autoscale.yaml: cannot "
			    "read the configuration: No such file or directory\n");
	strbuf_release(&errors);
}

/*
 * URLs in the configuration are read by libcurl's URL parser: IPv6 hosts,
 * user info and ports are checked, and the public_url made from listen
 * too.
 */
static void
test_urls(void **state)
{
	static const struct {
		const char *daemon; /* the daemon section's inside */
		const char *public_url; /* effective; NULL: refused */
		const char *msg;
	} cases[] = {
		{"listen: \"127.0.0.1:8470\"", "http://10.0.2.2:8470", NULL},
		{"listen: \"[fd00::1]:8470\"", "http://[fd00::1]:8470", NULL},
		{"listen: \"kvm1.example:1\"", "http://kvm1.example:1", NULL},
		{"public_url: \"http://[fd00::1]:8470/va/\"",
		 "http://[fd00::1]:8470/va/", NULL},
		{"public_url: \"https://va@autoscaler.example:443\"",
		 "https://va@autoscaler.example:443", NULL},
		{"public_url: \"http://[fe80::1%25ens3]:8470\"",
		 "http://[fe80::1%25ens3]:8470", NULL},
		{"public_url: \"ftp://x\"", NULL,
		 "'ftp://x' is not an http:// or https:// URL"},
		{"public_url: \"http:///x\"", NULL, "no host"},
		{"public_url: \"http://h:65536\"", NULL,
		 "'http://h:65536' is not a valid URL: Port number"},
		{"public_url: \"http://[fd00::1:8470\"", NULL,
		 "is not a valid URL"},
		{"public_url: \"http://h/a\\tb\"", NULL,
		 "has the control character 0x09 at offset 10"},
		/* a fragment, a query, a quote: the seed's URL breaks */
		{"public_url: \"http://h:1/a#b\"", NULL,
		 "has the character '#' at offset 12"},
		{"public_url: \"http://h:1/?a\"", NULL,
		 "has the character '?' at offset 11"},
		{"public_url: 'http://h:1/\"'", NULL,
		 "has the character '\"' at offset 11"},
		{"public_url: \"http://ho^st\"", NULL, "is not a valid URL"},
		{"listen: \"ho^st:8470\"", NULL,
		 "daemon: listen gives no URL guests can use ('http://ho^st:8470'"},
		{"metrics: { influxdb: { url: \"http://va@[::1]:8086\", "
		 "database: va } }", "http://10.0.2.2:8470", NULL},
		{"metrics: { influxdb: { url: \"http://h:8086x\", "
		 "database: va } }", NULL, "daemon.metrics.influxdb.url: "
		 "'http://h:8086x' is not a valid URL"},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf errors = STRBUF_INIT;
		char *text = xasprintf("version: 1\ndaemon: { %s }\n"
				       "hosts: [{name: a, uri: \"test:///default\"}]\n",
				       cases[i].daemon);
		struct config *cfg = parse(text, &errors);

		if (cases[i].public_url) {
			if (!cfg)
				fail_msg("case %zu: %s", i, strbuf_str(&errors));
			assert_string_equal(cfg->daemon.public_url,
					    cases[i].public_url);
		} else {
			if (cfg)
				fail_msg("case %zu accepted", i);
			if (!strstr(strbuf_str(&errors), cases[i].msg))
				fail_msg("case %zu: '%s' lacks '%s'", i,
					 strbuf_str(&errors), cases[i].msg);
		}
		config_free(cfg);
		free(text);
		strbuf_release(&errors);
	}
}

/* An alias bomb is refused at once, without expanding anything. */
static void
test_alias_bomb(void **state)
{
	struct strbuf text = STRBUF_INIT, errors = STRBUF_INIT;

	(void)state;
	strbuf_adds(&text, "version: 1\na0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
	for (int i = 1; i < 30; i++) {
		strbuf_addf(&text, "a%d: &a%d [", i, i);
		for (int j = 0; j < 10; j++)
			strbuf_addf(&text, "%s*a%d", j ? ", " : "", i - 1);
		strbuf_adds(&text, "]\n");
	}
	assert_null(parse(text.buf, &errors));
	assert_non_null(strstr(errors.buf, "aliases (*a0) are not supported"));
	strbuf_release(&text);
	strbuf_release(&errors);
}

/* Admin tokens under 128 bits are refused: the estimate, by table. */
static void
test_token_bits(void **state)
{
	static const struct {
		const char *token;
		bool strong;
	} cases[] = {
		{"x", false},
		{"0123456789abcdef0123456789abcdef", true},   /* 32 hex: 128 */
		{"0123456789abcdef0123456789abcde", false},   /* 31 hex: 124 */
		{"0123456789ABCDEF0123456789ABCDEF", true},
		{"q3Zt9Kp0Lx2Wv8Ny7Bm4Rc", true},              /* 22 base64: 131 */
		{"Zm9vYmFyYmF6cXV1eDEyM", false},              /* 21: 125 */
		{"p7Sx0+Ae2/Kc9QmTz4Lw1Q==", true},            /* base64 16 */
		{"correcthorsebatterystaple", false},          /* 25 lower: 117 */
		{"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false},
		{"abababababababababababababababababababab", false},
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		double bits = config_token_bits(cases[i].token);

		if ((bits >= 128) != cases[i].strong)
			fail_msg("case %zu: %.1f bits", i, bits);
	}
}

static void
test_resolve_path(void **state)
{
	char dir[] = "/tmp/va-test-config-XXXXXX";
	char *path, *r;
	struct strbuf errors = STRBUF_INIT;
	struct config *cfg;
	FILE *f;

	(void)state;
	assert_non_null(mkdtemp(dir));
	path = xasprintf("%s/a.yaml", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs("version: 1\nhosts: [{name: a, uri: \"test:///default\"}]\n", f);
	fclose(f);
	cfg = config_load(path, &errors);
	assert_non_null(cfg);
	r = config_resolve_path(cfg, "ud.yaml");
	assert_int_equal(strncmp(r, dir, strlen(dir)), 0);
	assert_string_equal(r + strlen(dir), "/ud.yaml");
	free(r);
	r = config_resolve_path(cfg, "/abs");
	assert_string_equal(r, "/abs");
	free(r);
	config_free(cfg);
	unlink(path);
	rmdir(dir);
	free(path);
	strbuf_release(&errors);
}

struct keys {
	char **v;
	char **extra; /* schema: default or NULL; man: the .BR line */
	unsigned n;
	bool bad;
};

static void
keys_add(struct keys *ks, char *key, const char *extra)
{
	ks->v = xreallocarray(ks->v, ks->n + 1, sizeof(*ks->v));
	ks->extra = xreallocarray(ks->extra, ks->n + 1, sizeof(*ks->extra));
	ks->v[ks->n] = key;
	ks->extra[ks->n] = extra ? xstrdup(extra) : NULL;
	ks->n++;
}

static void
collect_key(const struct config_key_info *k, void *arg)
{
	struct keys *ks = arg;

	keys_add(ks, xstrdup(k->key), k->required ? NULL : k->def);
	if (!k->doc || !*k->doc || !k->type) {
		print_error("key %s has no doc or type\n", k->key);
		ks->bad = true;
	}
	if (!k->required && !k->def && strcmp(k->type, "mapping") != 0) {
		print_error("optional key %s documents no default\n", k->key);
		ks->bad = true;
	}
	/* everything about groups, and hosts but their identity, may
	 * change on reload */
	if ((strncmp(k->key, "hosts[]", 7) == 0 ||
	     strncmp(k->key, "groups", 6) == 0) && !k->reloadable &&
	    strcmp(k->key, "hosts[].name") != 0 &&
	    strcmp(k->key, "hosts[].uri") != 0 &&
	    strcmp(k->key, "hosts[].pool") != 0) {
		print_error("key %s is not reloadable\n", k->key);
		ks->bad = true;
	}
}

static void
keys_free(struct keys *ks)
{
	for (unsigned i = 0; i < ks->n; i++) {
		free(ks->v[i]);
		free(ks->extra[i]);
	}
	free(ks->v);
	free(ks->extra);
}

static void
test_reload_flags(void **state)
{
	struct keys ks = {0};
	struct strbuf errors = STRBUF_INIT, why = STRBUF_INIT;
	struct config *a, *b, *c;
	char *text;

	(void)state;
	config_schema_walk(collect_key, &ks);
	assert_false(ks.bad);
	assert_true(ks.n > 80);
	keys_free(&ks);

	assert_int_equal(config_key_reloadable("version"), 0);
	assert_int_equal(config_key_reloadable("daemon.listen"), 0);
	assert_int_equal(config_key_reloadable("daemon.state"), 0);
	assert_int_equal(config_key_reloadable("daemon.http.max_body"), 0);
	assert_int_equal(config_key_reloadable("daemon.log_level"), 1);
	assert_int_equal(config_key_reloadable("daemon.interval"), 1);
	/* the metrics rings are sized at start */
	assert_int_equal(config_key_reloadable("daemon.metrics.retention"), 0);
	assert_int_equal(config_key_reloadable("daemon.event_retention"), 1);
	assert_int_equal(config_key_reloadable("groups.*.max"), 1);
	assert_int_equal(config_key_reloadable("groups.*.scaling.steps[].change"), 1);
	assert_int_equal(config_key_reloadable("hosts[].uri"), 0);
	assert_int_equal(config_key_reloadable("hosts[].max_instances"), 1);
	/* the host's instances keep their volumes in the old pool */
	assert_int_equal(config_key_reloadable("hosts[].pool"), 0);
	assert_int_equal(config_key_reloadable("no.such.key"), -1);

	a = parse(base_yaml, &errors);
	text = xasprintf("%s", base_yaml);
	memcpy(strstr(text, "interval: 20s"), "interval: 30s", 13);
	b = parse(text, &errors);
	free(text);
	text = xasprintf("version: 1\ndaemon:\n  listen: 127.0.0.1:1\n"
			 "  tls: { cert: /c, key: /k }\n%s",
			 strstr(base_yaml, "hosts:"));
	c = parse(text, &errors);
	free(text);
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(config_reload_check(a, b, &why), 0);
	assert_string_equal(why.buf ? why.buf : "", "");
	assert_int_equal(config_reload_check(a, c, &why), -1);
	assert_non_null(strstr(why.buf, "daemon.listen: changed"));
	assert_non_null(strstr(why.buf, "daemon.tls.cert: changed"));
	config_free(c);
	strbuf_reset(&why);

	/* host limits may change; host identity may not */
	text = xasprintf("%s", base_yaml);
	memcpy(strstr(text, "user_net: true"), "bridge: br1   ", 14);
	c = parse(text, &errors);
	free(text);
	assert_non_null(c);
	assert_int_equal(config_reload_check(a, c, &why), 0);
	config_free(c);
	/* a host's pool may not: its instances' volumes are in the old one */
	text = xasprintf("%s", base_yaml);
	memcpy(strstr(text, "user_net: true"), "pool: other   ", 14);
	c = parse(text, &errors);
	free(text);
	assert_non_null(c);
	assert_int_equal(config_reload_check(a, c, &why), -1);
	assert_non_null(strstr(why.buf, "the pool of host 'kvm1' changed from "
				       "'default' to 'other'"));
	config_free(c);
	strbuf_reset(&why);
	text = xasprintf("%s", base_yaml);
	memcpy(strstr(text, "name: kvm1"), "name: kvm3", 10);
	c = parse(text, &errors);
	free(text);
	assert_non_null(c);
	assert_int_equal(config_reload_check(a, c, &why), -1);
	assert_non_null(strstr(why.buf, "host 'kvm1' was removed"));
	assert_non_null(strstr(why.buf, "host 'kvm3' was added"));
	config_free(a);
	config_free(b);
	config_free(c);
	strbuf_release(&why);
	strbuf_release(&errors);
}

/*
 * man/autoscale.yaml.5 lists every key: ".SS PATH" headings, and under
 * them ".TP" followed by ".B KEY" or ".BR KEY ...". The set of documented
 * keys must equal the set in the tables.
 */
static void
test_man_page(void **state)
{
	struct keys ks = {0}, man = {0};
	char *text = util_read_file(SRCDIR "/man/autoscale.yaml.5", 1 << 20, NULL);
	char section[256] = "";
	bool after_tp = false, in_keys = false;
	unsigned missing = 0;

	(void)state;
	assert_non_null(text);
	config_schema_walk(collect_key, &ks);
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		if (strncmp(line, ".SH ", 4) == 0) {
			in_keys = strcmp(line, ".SH KEYS") == 0;
			continue;
		}
		if (!in_keys)
			continue;
		if (strncmp(line, ".SS ", 4) == 0) {
			const char *s = line + 4;
			size_t len;

			if (*s == '"')
				s++;
			len = strcspn(s, "\"");
			snprintf(section, sizeof(section), "%.*s", (int)len, s);
			if (strcmp(section, "Top level") == 0)
				section[0] = '\0';
			after_tp = false;
			continue;
		}
		if (strcmp(line, ".TP") == 0) {
			after_tp = true;
			continue;
		}
		if (after_tp && (strncmp(line, ".B ", 3) == 0 ||
				 strncmp(line, ".BR ", 4) == 0)) {
			const char *k = line + (line[2] == ' ' ? 3 : 4);
			size_t len = strcspn(k, " \"");

			struct strbuf plain = STRBUF_INIT;

			/* roff escapes back to text: \- is -, \e is \ */
			for (const char *p = line; *p; p++) {
				if (p[0] == '\\' && p[1] == '-') {
					strbuf_addc(&plain, '-');
					p++;
				} else if (p[0] == '\\' && p[1] == 'e') {
					strbuf_addc(&plain, '\\');
					p++;
				} else {
					strbuf_addc(&plain, *p);
				}
			}
			keys_add(&man, section[0]
				? xasprintf("%s.%.*s", section, (int)len, k)
				: xasprintf("%.*s", (int)len, k), plain.buf);
			strbuf_release(&plain);
		}
		after_tp = false;
	}
	for (unsigned i = 0; i < ks.n; i++) {
		bool found = false;

		for (unsigned j = 0; j < man.n && !found; j++) {
			found = strcmp(ks.v[i], man.v[j]) == 0;
			if (found && ks.extra[i]) {
				char *want = xasprintf("default: %s", ks.extra[i]);

				if (!strstr(man.extra[j], want)) {
					print_error("man page: %s should say "
						    "'%s' (tests/config/"
						    "man-keys.py regenerates "
						    "the list)\n", ks.v[i],
						    want);
					missing++;
				}
				free(want);
			}
		}
		if (!found) {
			print_error("not in the man page: %s\n", ks.v[i]);
			missing++;
		}
	}
	for (unsigned j = 0; j < man.n; j++) {
		bool found = false;

		for (unsigned i = 0; i < ks.n && !found; i++)
			found = strcmp(ks.v[i], man.v[j]) == 0;
		if (!found) {
			print_error("in the man page but not a key: %s\n",
				    man.v[j]);
			missing++;
		}
	}
	assert_int_equal(missing, 0);
	keys_free(&ks);
	keys_free(&man);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_token_bits),
		cmocka_unit_test(test_secret_file),
		cmocka_unit_test(test_secret_env),
		cmocka_unit_test(test_secret_not_printed),
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_urls),
		cmocka_unit_test(test_alias_bomb),
		cmocka_unit_test(test_resolve_path),
		cmocka_unit_test(test_reload_flags),
		cmocka_unit_test(test_man_page),
	};

	log_set_level(LOG_LEVEL_ERROR);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
