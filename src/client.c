/*
 * client.c: the operator commands that talk to a running daemon through
 * its admin API (status, events, explain, scale, pause, resume, metrics).
 *
 * The daemon's address and admin token come from the same configuration
 * file the daemon reads (daemon.listen, daemon.tls, daemon.admin_token);
 * --url overrides the address and --token-file the token (a remote
 * daemon: with --url, a configuration file that does not exist is not
 * needed). The token is sent in an Authorization header, never on a
 * command line or in a log line, and over TLS only to a daemon whose
 * certificate verifies (the system's CAs, daemon.tls.ca or --ca FILE);
 * --insecure turns that off, with a warning.
 *
 * --json prints one JSON document on standard output instead of the
 * tables (docs/cli.md has each command's shape): the daemon's answers,
 * put together, with every documented field present (null when the
 * daemon has no value). Errors still go to standard error, with a
 * non-zero exit status and nothing on standard output.
 *
 * A file the daemon refused on SIGHUP (it keeps serving its last good
 * configuration) still gives the client those keys, with a warning
 * (config_load_client()).
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "commands.h"
#include "config.h"
#include "log.h"
#include "url.h"
#include "util.h"
#include "va_config.h"

struct client {
	char *base;       /* "http://127.0.0.1:8470" */
	char *token;      /* admin token, or NULL */
	char *ca;         /* CA file to verify the daemon with, or NULL */
	char *connect_to; /* curl CONNECT_TO "NAME:PORT:ADDR:PORT", or NULL */
	bool insecure;    /* --insecure: TLS without verification */
	long timeout_ms;  /* a request's deadline */
};

/* The options every client command takes. */
struct client_args {
	const char *url;  /* --url */
	const char *ca;   /* --ca */
	bool insecure;    /* --insecure */
	const char *token_file; /* --token-file */
	bool json;        /* --json, for the commands that take it */
};

#define CLIENT_LONGOPTS                                                   \
	{"url", required_argument, NULL, 'u'},                            \
	{"config", required_argument, NULL, 'c'},                         \
	{"ca", required_argument, NULL, 'A'},                             \
	{"insecure", no_argument, NULL, 'K'},                             \
	{"token-file", required_argument, NULL, 'T'},                     \
	{"token", required_argument, NULL, 'N'},                          \
	{"help", no_argument, NULL, 'h'}
/* for the commands that print what they read */
#define CLIENT_JSON_LONGOPT {"json", no_argument, NULL, 'J'}
#define CLIENT_OPTSTRING "u:c:h"
#define CLIENT_USAGE "[--url URL] [--ca FILE | --insecure] [--token-file FILE]"

/* 1 if opt is one of CLIENT_LONGOPTS (taken), 0 if not, -1 for a usage
 * error (said on stderr). */
static int
client_opt(int opt, struct client_args *a)
{
	switch (opt) {
	case 'u':
		a->url = optarg;
		return 1;
	case 'c':
		global_opts.config_path = optarg;
		return 1;
	case 'A':
		a->ca = optarg;
		return 1;
	case 'K':
		a->insecure = true;
		return 1;
	case 'T':
		a->token_file = optarg;
		return 1;
	case 'N':
		/* not an option: listed so that getopt_long does not take
		 * "--token SECRET" for --token-file abbreviated (and print
		 * the secret as a file name that does not exist) */
		fprintf(stderr,
			"virt-autoscaler: there is no --token option: a token on "
			"the command line is visible to every user (ps); write it "
			"to a file only you can read and give --token-file FILE\n");
		return -1;
	case 'J':
		a->json = true;
		return 1;
	default:
		return 0;
	}
}

static void
client_release(struct client *c)
{
	free(c->base);
	free(c->ca);
	free(c->connect_to);
	if (c->token) {
		explicit_bzero(c->token, strlen(c->token));
		free(c->token);
	}
}

/* The host part of an http(s) URL (no brackets), or NULL. Caller frees. */
static char *
url_host(const char *url)
{
	CURLU *u = curl_url();
	char *h = NULL, *out = NULL;

	if (!u)
		fatal("out of memory");
	if (curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK) {
		size_t n = strlen(h);

		out = h[0] == '[' && n > 2 ? xstrndup(h + 1, n - 2) : xstrdup(h);
	}
	curl_free(h);
	curl_url_cleanup(u);
	return out;
}

/*
 * Where a local client reaches daemon.listen. Over TLS the certificate
 * is verified for public_url's host name (the name guests verify too,
 * so the certificate carries it) while the connection goes to the
 * listen address: curl's CONNECT_TO.
 */
static void
client_base_from_config(struct client *c, const struct config *cfg)
{
	const char *addr = cfg->daemon.listen_host;
	int port = cfg->daemon.listen_port;
	char *name = NULL;

	if (!addr || !*addr || strcmp(addr, "0.0.0.0") == 0)
		addr = "127.0.0.1";
	else if (strcmp(addr, "::") == 0)
		addr = "::1";
	if (cfg->daemon.tls.present && cfg->daemon.public_url &&
	    strncmp(cfg->daemon.public_url, "https://", 8) == 0)
		name = url_host(cfg->daemon.public_url);
	if (!cfg->daemon.tls.present || !name || strcmp(name, addr) == 0) {
		c->base = url_from_host_port(cfg->daemon.tls.present ? "https"
								      : "http",
					     addr, port);
	} else {
		c->base = url_from_host_port("https", name, port);
		c->connect_to = xasprintf(strchr(addr, ':') ? "%s:%d:[%s]:%d"
							    : "%s:%d:%s:%d",
					  name, port, addr, port);
	}
	free(name);
}

/* The first line of text, for a one-line summary. */
static int
first_line_len(const char *s)
{
	const char *nl = strchr(s, '\n');

	return nl ? (int)(nl - s) : (int)strlen(s);
}

/*
 * --token-file: the admin token, the file's first line. A file that other
 * users may read is refused (the token gives control of every group):
 * the mode is checked on the open file, so a file swapped in between
 * cannot slip through. Pipes work (--token-file <(pass show va)).
 * Returns the token (caller zeroes and frees) or NULL after saying why
 * on stderr; the token itself is never printed.
 */
static char *
client_token_file(const char *path)
{
	struct strbuf sb = STRBUF_INIT;
	struct stat st;
	char buf[512];
	char *tok = NULL;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		fprintf(stderr, "virt-autoscaler: --token-file %s: %s\n", path,
			strerror(errno));
		return NULL;
	}
	if (fstat(fd, &st) != 0) {
		fprintf(stderr, "virt-autoscaler: --token-file %s: %s\n", path,
			strerror(errno));
		goto cleanup;
	}
	if (S_ISDIR(st.st_mode)) {
		fprintf(stderr, "virt-autoscaler: --token-file %s: is a directory\n",
			path);
		goto cleanup;
	}
	if (st.st_mode & S_IROTH) {
		fprintf(stderr,
			"virt-autoscaler: --token-file %s: readable by every user "
			"(mode %04o); the admin token must be kept secret: "
			"chmod o-rwx %s\n",
			path, (unsigned)(st.st_mode & 07777), path);
		goto cleanup;
	}
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "virt-autoscaler: --token-file %s: %s\n",
				path, strerror(errno));
			goto cleanup;
		}
		strbuf_add(&sb, buf, (size_t)n);
		if (sb.len > 64 * 1024) {
			fprintf(stderr, "virt-autoscaler: --token-file %s: longer "
				"than 64 KiB, not a token\n", path);
			goto cleanup;
		}
	}
	/* the first line; a final newline (echo TOKEN > FILE) is not part
	 * of the token */
	for (size_t i = 0; i < sb.len; i++) {
		if (sb.buf[i] == '\n' || sb.buf[i] == '\r') {
			sb.buf[i] = '\0';
			sb.len = i;
			break;
		}
	}
	if (sb.len == 0 || strlen(strbuf_str(&sb)) != sb.len) {
		fprintf(stderr, "virt-autoscaler: --token-file %s: %s\n", path,
			sb.len ? "holds a NUL byte" : "empty (the admin token "
			"is its first line)");
		goto cleanup;
	}
	tok = xstrndup(sb.buf, sb.len);
cleanup:
	explicit_bzero(buf, sizeof(buf));
	if (sb.buf)
		explicit_bzero(sb.buf, sb.alloc);
	strbuf_release(&sb);
	close(fd);
	return tok;
}

/*
 * With --url, the configuration is only needed for what the command line
 * leaves out: the built-in default file may be missing (a workstation
 * that reaches a remote daemon with --url and --token-file). A file named
 * with -c must exist.
 */
static bool
client_config_optional(const struct client_args *a)
{
	struct stat st;

	return a->url && strcmp(global_opts.config_path, VA_DEFAULT_CONFIG) == 0 &&
	       stat(global_opts.config_path, &st) != 0 && errno == ENOENT;
}

static int
client_init(struct client *c, const struct client_args *a)
{
	struct strbuf problems = STRBUF_INIT;
	struct config *cfg = NULL;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->timeout_ms = 30000;
	if (a->url && url_check_http(a->url) != 0) {
		fprintf(stderr, "virt-autoscaler: --url: %s\n", err_msg());
		return -1;
	}
	if (a->ca && a->insecure) {
		fprintf(stderr, "virt-autoscaler: --ca and --insecure exclude each other\n");
		return -1;
	}
	if (a->token_file) {
		c->token = client_token_file(a->token_file);
		if (!c->token)
			return -1;
	}
	if (client_config_optional(a)) {
		c->base = xstrdup(a->url);
		c->insecure = a->insecure;
		if (a->ca)
			c->ca = xstrdup(a->ca);
		rc = 0;
		goto warn;
	}
	cfg = config_load_client(global_opts.config_path, &problems);
	if (!cfg) {
		fprintf(stderr, "%s", strbuf_str(&problems));
		goto cleanup;
	}
	if (problems.len) {
		const char *p = strbuf_str(&problems);
		unsigned n = 0;

		for (const char *q = p; *q; q++)
			n += *q == '\n';
		fprintf(stderr,
			"virt-autoscaler: warning: %s does not pass `virt-autoscaler check` "
			"(%u problem%s; the first: %.*s). A running daemon keeps the "
			"configuration it last loaded; this command uses the file's "
			"daemon.listen, public_url, tls and admin_token.\n",
			global_opts.config_path, n, n == 1 ? "" : "s",
			first_line_len(p), p);
	}
	if (a->url)
		c->base = xstrdup(a->url);
	else
		client_base_from_config(c, cfg);
	c->insecure = a->insecure;
	if (a->ca)
		c->ca = xstrdup(a->ca);
	else if (cfg->daemon.tls.ca)
		c->ca = config_resolve_path(cfg, cfg->daemon.tls.ca);
	if (!c->token && cfg->daemon.admin_token.source != CONFIG_SECRET_NONE &&
	    config_secret_read(&cfg->daemon.admin_token, &c->token) != 0) {
		fprintf(stderr, "virt-autoscaler: admin token: %s\n", err_msg());
		goto cleanup;
	}
	rc = 0;
warn:
	if (c->insecure && strncmp(c->base, "https://", 8) == 0)
		fprintf(stderr,
			"virt-autoscaler: warning: --insecure: the daemon's certificate "
			"is not verified; the admin token goes to whoever answers at %s\n",
			c->base);
cleanup:
	if (rc != 0)
		client_release(c);
	config_free(cfg);
	strbuf_release(&problems);
	return rc;
}

static size_t
collect_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	strbuf_add(ud, ptr, size * nmemb);
	return size * nmemb;
}

/*
 * One request to the daemon. Returns the parsed JSON reply (caller puts
 * it) when the status is 2xx; otherwise prints the daemon's error and
 * returns NULL.
 */
static struct json_object *
client_call(const struct client *c, const char *method, const char *path,
	    const char *body)
{
	CURL *h = curl_easy_init();
	struct curl_slist *hdr = NULL, *connect_to = NULL;
	struct strbuf reply = STRBUF_INIT;
	struct json_object *json = NULL;
	/* Appended, not resolved with curl_url(): an absolute path would
	 * replace a path the base may have (a daemon behind a proxy). */
	char *url = xasprintf("%s%s", c->base, path);
	long status = 0;
	char errbuf[CURL_ERROR_SIZE] = "";
	CURLcode cc;

	if (!h)
		fatal("curl_easy_init failed");
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &reply);
	curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, c->timeout_ms);
	curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
	/* libcurl verifies the peer and its name by default: the token is
	 * sent only after the handshake proved whom it goes to */
	if (c->insecure) {
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
	} else if (c->ca) {
		curl_easy_setopt(h, CURLOPT_CAINFO, c->ca);
	}
	if (c->connect_to) {
		connect_to = curl_slist_append(NULL, c->connect_to);
		curl_easy_setopt(h, CURLOPT_CONNECT_TO, connect_to);
	}
	if (c->token) {
		struct strbuf auth = STRBUF_INIT;

		strbuf_addf(&auth, "Authorization: Bearer %s", c->token);
		hdr = curl_slist_append(hdr, strbuf_str(&auth));
		explicit_bzero(auth.buf, auth.len);
		strbuf_release(&auth);
	}
	if (body) {
		hdr = curl_slist_append(hdr, "Content-Type: application/json");
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, body);
	}
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdr);
	cc = curl_easy_perform(h);
	if (cc != CURLE_OK) {
		if (cc == CURLE_PEER_FAILED_VERIFICATION ||
		    cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CONNECT_ERROR)
			fprintf(stderr,
				"virt-autoscaler: %s: TLS: %s; the admin token was not sent.\n"
				"(give the CA that signed the daemon's certificate with --ca FILE "
				"or daemon.tls.ca; for a self-signed certificate, the certificate "
				"itself)\n",
				c->base, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		else
			fprintf(stderr,
				"virt-autoscaler: cannot reach the daemon at %s: %s\n"
				"(is `virt-autoscaler run` running with this configuration?)\n",
				c->base, errbuf[0] ? errbuf : curl_easy_strerror(cc));
		goto cleanup;
	}
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
	json = json_tokener_parse(strbuf_str(&reply));
	if (status < 200 || status > 299) {
		struct json_object *e;

		if (json && json_object_object_get_ex(json, "error", &e))
			fprintf(stderr, "virt-autoscaler: %s: %s\n", path,
				json_object_get_string(e));
		else
			fprintf(stderr, "virt-autoscaler: %s: HTTP %ld\n", path,
				status);
		if ((status == 401 || status == 403) && !c->token)
			fprintf(stderr, "(this command sent no admin token: give "
				"--token-file FILE, or daemon.admin_token in %s)\n",
				global_opts.config_path);
		json_object_put(json);
		json = NULL;
		goto cleanup;
	}
	if (!json)
		fprintf(stderr, "virt-autoscaler: %s: the daemon's reply is not JSON\n",
			path);
cleanup:
	curl_slist_free_all(hdr);
	curl_slist_free_all(connect_to);
	curl_easy_cleanup(h);
	strbuf_release(&reply);
	free(url);
	return json;
}

static const char *
jstr(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return "-";
	return json_object_get_string(v);
}

static int64_t
jint(struct json_object *o, const char *key)
{
	struct json_object *v;

	if (!json_object_object_get_ex(o, key, &v) || !v)
		return -1;
	return json_object_get_int64(v);
}

static void
format_time(int64_t ms, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0) {
		snprintf(buf, len, "-");
		return;
	}
	localtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

/*
 * --json. The fields each command's document guarantees (docs/cli.md):
 * the daemon's answers pass through as they are, and a documented field
 * the daemon left out (a host not measured yet has no cpus) is null, so
 * that scripts find every documented field. Fields the daemon adds later
 * appear too.
 */
static const char *const json_group_keys[] = {
	"name", "min", "max", "desired", "current", "ready", "paused",
	"metrics", "last_decision", "busy_held", "waiting_for_hosts",
	"refresh", NULL};
static const char *const json_host_keys[] = {
	"name", "state", "since", "reason", "cpus", "memory_bytes",
	"free_memory_bytes", "domains", "vcpus_allocated",
	"memory_allocated_bytes", NULL};
static const char *const json_instance_keys[] = {
	"id", "group", "host", "domain", "state", "created", "ready_at",
	"last_heartbeat", "busy", "address", "template", NULL};
static const char *const json_event_keys[] = {
	"id", "time", "group", "instance", "kind", "message", NULL};
static const char *const json_metrics_keys[] = {
	"id", "group", "state", "window_s", "samples", "last_sample_age_s",
	"metrics", NULL};

static void
json_fill(struct json_object *o, const char *const *keys)
{
	for (size_t i = 0; keys[i]; i++)
		if (!json_object_object_get_ex(o, keys[i], NULL))
			json_object_object_add(o, keys[i], NULL);
}

/*
 * The array `key` of a reply to `path`, each of its objects with `keys`
 * filled in; NULL after saying on stderr that it is not there. Borrowed
 * from reply.
 */
static struct json_object *
json_reply_array(struct json_object *reply, const char *key,
		 const char *path, const char *const *keys)
{
	struct json_object *arr;

	if (!json_object_object_get_ex(reply, key, &arr) ||
	    !json_object_is_type(arr, json_type_array)) {
		fprintf(stderr, "virt-autoscaler: %s: the daemon's reply has no "
			"'%s' list\n", path, key);
		return NULL;
	}
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *o = json_object_array_get_idx(arr, i);

		if (!json_object_is_type(o, json_type_object)) {
			fprintf(stderr, "virt-autoscaler: %s: an entry of '%s' "
				"is not an object\n", path, key);
			return NULL;
		}
		json_fill(o, keys);
	}
	return arr;
}

/* One document on stdout, indented, with a final newline. */
static int
json_print(struct json_object *doc)
{
	const char *text = json_object_to_json_string_ext(
		doc, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_SPACED |
			     JSON_C_TO_STRING_NOSLASHESCAPE);

	if (!text)
		fatal("out of memory");
	if (printf("%s\n", text) < 0 || fflush(stdout) != 0) {
		fprintf(stderr, "virt-autoscaler: writing to standard output: %s\n",
			strerror(errno));
		return -1;
	}
	return 0;
}

/* The client options only, then the command's arguments in any order
 * with them ("explain web --limit 3"). */
static int
parse_client_opts(int argc, char **argv, const char *usage,
		  struct client_args *a, bool with_json)
{
	static const struct option longopts[] = {
		CLIENT_LONGOPTS,
		{NULL, 0, NULL, 0},
	};
	static const struct option longopts_json[] = {
		CLIENT_LONGOPTS,
		CLIENT_JSON_LONGOPT,
		{NULL, 0, NULL, 0},
	};
	int opt, taken;

	memset(a, 0, sizeof(*a));
	while ((opt = getopt_long(argc, argv, CLIENT_OPTSTRING,
				  with_json ? longopts_json : longopts,
				  NULL)) != -1) {
		if ((taken = client_opt(opt, a)) > 0)
			continue;
		if (taken < 0)
			return 2;
		if (opt == 'h') {
			printf("usage: virt-autoscaler %s\n", usage);
			return 1;
		}
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	return 0;
}

static void
print_events(struct json_object *events, bool decisions_only)
{
	size_t n = json_object_array_length(events);

	for (size_t i = 0; i < n; i++) {
		struct json_object *e = json_object_array_get_idx(events, i);
		char when[32];

		if (decisions_only && strcmp(jstr(e, "kind"), "decision") != 0)
			continue;
		format_time(jint(e, "time"), when, sizeof(when));
		if (decisions_only) {
			printf("%s  %s\n", when, jstr(e, "message"));
			continue;
		}
		printf("%s  %-10s %-12s %s", when, jstr(e, "group"),
		       jstr(e, "kind"), jstr(e, "message"));
		if (strcmp(jstr(e, "instance"), "-") != 0)
			printf("  [%s]", jstr(e, "instance"));
		printf("\n");
	}
}

static double jdouble(struct json_object *o, const char *key, bool *present);
static void print_refresh_short(struct json_object *g);

/* status: ", forecast N (MODE)" or ", no forecast (MODE)" for a group
 * with predictive scaling. */
static void
print_forecast_short(struct json_object *g)
{
	struct json_object *pr;
	bool have;
	double f;

	if (!json_object_object_get_ex(g, "predictive", &pr) ||
	    !json_object_is_type(pr, json_type_object))
		return;
	f = jdouble(pr, "forecast", &have);
	if (have)
		printf(", forecast %.0f (%s)", f, jstr(pr, "mode"));
	else
		printf(", no forecast (%s)", jstr(pr, "mode"));
}

int
cmd_status(int argc, char **argv)
{
	struct client_args a;
	struct client c;
	struct json_object *groups = NULL, *insts = NULL, *hosts = NULL, *arr;
	int rc = parse_client_opts(argc, argv, "status [--json] " CLIENT_USAGE,
				   &a, true);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (optind != argc) {
		fprintf(stderr, "usage: virt-autoscaler status [--json] " CLIENT_USAGE "\n");
		return 2;
	}
	if (client_init(&c, &a) != 0)
		return 1;
	rc = 1;
	groups = client_call(&c, "GET", "/v1/groups", NULL);
	if (!groups)
		goto cleanup;
	insts = client_call(&c, "GET", "/v1/instances", NULL);
	if (!insts)
		goto cleanup;
	hosts = client_call(&c, "GET", "/v1/hosts", NULL);
	if (!hosts)
		goto cleanup;
	if (a.json) {
		struct json_object *doc, *g, *h, *in;

		g = json_reply_array(groups, "groups", "/v1/groups", json_group_keys);
		h = json_reply_array(hosts, "hosts", "/v1/hosts", json_host_keys);
		in = json_reply_array(insts, "instances", "/v1/instances",
				      json_instance_keys);
		if (!g || !h || !in)
			goto cleanup;
		doc = json_object_new_object();
		json_object_object_add(doc, "groups", json_object_get(g));
		json_object_object_add(doc, "hosts", json_object_get(h));
		json_object_object_add(doc, "instances", json_object_get(in));
		rc = json_print(doc) == 0 ? 0 : 1;
		json_object_put(doc);
		goto cleanup;
	}
	printf("%-16s %5s %5s %7s %7s %5s  %s\n", "GROUP", "MIN", "MAX",
	       "DESIRED", "CURRENT", "READY", "STATE");
	if (json_object_object_get_ex(groups, "groups", &arr)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *g = json_object_array_get_idx(arr, i);
			struct json_object *p;
			bool paused = json_object_object_get_ex(g, "paused", &p) &&
				      json_object_get_boolean(p);

			int64_t held = jint(g, "busy_held");
			bool waiting = json_object_object_get_ex(g, "waiting_for_hosts", &p) &&
				       json_object_get_boolean(p);

			printf("%-16s %5lld %5lld %7lld %7lld %5lld  %s",
			       jstr(g, "name"), (long long)jint(g, "min"),
			       (long long)jint(g, "max"),
			       (long long)jint(g, "desired"),
			       (long long)jint(g, "current"),
			       (long long)jint(g, "ready"),
			       paused ? "paused" : "active");
			if (held > 0)
				printf(", scale-in of %lld held by busy instances",
				       (long long)held);
			if (waiting)
				printf(", waiting for hosts to be measured");
			if (json_object_object_get_ex(g, "warm_pool", &p))
				printf(", warm pool (%s): %lld warm, %lld warming, "
				       "target %lld", jstr(p, "state"),
				       (long long)jint(p, "warm"),
				       (long long)jint(p, "warming"),
				       (long long)jint(p, "target"));
			print_forecast_short(g);
			print_refresh_short(g);
			printf("\n");
		}
	}
	printf("\n%-16s %-8s %-20s %5s %7s  %s\n", "HOST", "STATE", "SINCE",
	       "CPUS", "DOMAINS", "REASON");
	if (json_object_object_get_ex(hosts, "hosts", &arr)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *h = json_object_array_get_idx(arr, i);
			char since[32];

			format_time(jint(h, "since"), since, sizeof(since));
			printf("%-16s %-8s %-20s %5s %7s  %s\n", jstr(h, "name"),
			       jstr(h, "state"), since, jstr(h, "cpus"),
			       jstr(h, "domains"), jstr(h, "reason"));
		}
	}
	printf("\n%-38s %-10s %-10s %-14s %-4s %-15s %-20s %s\n", "INSTANCE",
	       "GROUP", "HOST", "STATE", "BUSY", "ADDRESS", "CREATED",
	       "LAST HEARTBEAT");
	if (json_object_object_get_ex(insts, "instances", &arr)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *in = json_object_array_get_idx(arr, i);
			char created[32], hb[32];
			struct json_object *b;
			bool busy = json_object_object_get_ex(in, "busy", &b) &&
				    json_object_get_boolean(b);

			format_time(jint(in, "created"), created, sizeof(created));
			format_time(jint(in, "last_heartbeat"), hb, sizeof(hb));
			printf("%-38s %-10s %-10s %-14s %-4s %-15s %-20s %s\n",
			       jstr(in, "id"), jstr(in, "group"), jstr(in, "host"),
			       jstr(in, "state"), busy ? "yes" : "-",
			       jstr(in, "address"), created, hb);
		}
	}
	rc = 0;
cleanup:
	json_object_put(groups);
	json_object_put(insts);
	json_object_put(hosts);
	client_release(&c);
	return rc;
}

/*
 * explain: the hosts that are down, which a decision cannot use (no new
 * instance is placed there; their instances are not measured). When the
 * daemon cannot say, client_call() said why on stderr.
 */
static void
print_hosts_down(struct client *c)
{
	struct json_object *reply = client_call(c, "GET", "/v1/hosts", NULL);
	struct json_object *hosts;

	if (!reply)
		return;
	if (json_object_object_get_ex(reply, "hosts", &hosts) &&
	    json_object_is_type(hosts, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(hosts); i++) {
			struct json_object *h = json_object_array_get_idx(hosts, i);

			if (strcmp(jstr(h, "state"), "down") != 0)
				continue;
			printf("host %s is down (%s): nothing is placed there and "
			       "its instances are not measured\n",
			       jstr(h, "name"), jstr(h, "reason"));
		}
	}
	json_object_put(reply);
}

static double jdouble(struct json_object *o, const char *key, bool *present);

/*
 * explain: the group's app metric measured outside (scaling.target.app
 * .source), what it read last or why it has nothing, and the group's
 * last decision (a hold for want of that figure is no decision event).
 * Nothing for a group without a source, or a daemon before them.
 */
/*
 * explain's parts: GET /v1/groups/GROUP and its object `key`. NULL when
 * there is none (a group without it, a daemon before it, no answer) or
 * when doc is given (the object then went into doc under key); else the
 * reply (json_object_put() it), with the object in *obj.
 */
static struct json_object *
group_part(struct client *c, const char *group, const char *key,
	   struct json_object *doc, struct json_object **obj)
{
	struct json_object *reply;
	struct strbuf path = STRBUF_INIT;
	char *esc = curl_easy_escape(NULL, group, 0);

	strbuf_addf(&path, "/v1/groups/%s", esc);
	curl_free(esc);
	reply = client_call(c, "GET", strbuf_str(&path), NULL);
	strbuf_release(&path);
	if (!reply)
		return NULL;
	if (!json_object_object_get_ex(reply, key, obj) ||
	    !json_object_is_type(*obj, json_type_object)) {
		json_object_put(reply);
		return NULL;
	}
	if (doc) {
		json_object_object_add(doc, key, json_object_get(*obj));
		json_object_put(reply);
		return NULL;
	}
	return reply;
}

static void
print_app_source(struct client *c, const char *group, struct json_object *doc)
{
	struct json_object *src, *reply = group_part(c, group, "app_source",
						     doc, &src);
	bool p;

	if (!reply)
		return;
	printf("app metric %s from %s %s, query %s: ", jstr(src, "metric"),
	       jstr(src, "source"), jstr(src, "url"), jstr(src, "query"));
	if (strcmp(jstr(src, "error"), "-") != 0) {
		printf("no value: %s", jstr(src, "error"));
	} else {
		double v = jdouble(src, "value", &p);

		if (p)
			printf("%.6g, %.0f s ago", v, jdouble(src, "age_s", &p));
		else
			printf("no answer yet");
	}
	printf("; target %.6g per instance\n", jdouble(src, "target", &p));
	if (strcmp(jstr(reply, "last_decision"), "-") != 0)
		printf("last decision: %s\n", jstr(reply, "last_decision"));
	json_object_put(reply);
}

/*
 * explain: the group's forecast (scaling.predictive): the floor for the
 * window ahead and whether it acts, or why there is none. Nothing for a
 * group without predictive scaling, or a daemon before it.
 */
static void
print_forecast(struct client *c, const char *group, struct json_object *doc)
{
	struct json_object *pr, *reply = group_part(c, group, "predictive",
						    doc, &pr);
	double f, peak, buffer, window;
	bool have, p;

	if (!reply)
		return;
	f = jdouble(pr, "forecast", &have);
	peak = jdouble(pr, "peak", &p);
	buffer = jdouble(pr, "buffer_s", &p) / 60;
	window = jdouble(pr, "window_s", &p) / 60;
	if (have)
		printf("forecast (%s): %.0f instances needed in %.0fm..%.0fm "
		       "(peak load %.2f, from %.0f minutes of history, "
		       "computed %.0f s ago)%s\n", jstr(pr, "mode"), f, buffer,
		       buffer + window, peak,
		       jdouble(pr, "history_minutes", &p),
		       jdouble(pr, "updated_s", &p),
		       strcmp(jstr(pr, "mode"), "forecast_only") == 0
			       ? ": not acting" : ": the size is at least this");
	else
		printf("forecast (%s): none: %s\n", jstr(pr, "mode"),
		       jstr(pr, "why"));
	json_object_put(reply);
}

/* explain: the group's instance refresh, when it had one (into doc with
 * --json) */
static void
print_refresh(struct client *c, const char *group, struct json_object *doc)
{
	struct json_object *r, *reply = group_part(c, group, "refresh", doc, &r);
	char when[32];

	if (!reply)
		return;
	format_time(jint(r, "started"), when, sizeof(when));
	printf("refresh %s (begun %s): %lld of %lld still to replace, %lld "
	       "batch%s, %lld failed; template %s (previous %s); "
	       "max_unavailable %s, surge %lld, min_healthy %lld%%: %s\n",
	       jstr(r, "state"), when, (long long)jint(r, "remaining"),
	       (long long)jint(r, "total"), (long long)jint(r, "batches"),
	       jint(r, "batches") == 1 ? "" : "es",
	       (long long)jint(r, "failures"), jstr(r, "target"),
	       jstr(r, "previous"), jstr(r, "max_unavailable"),
	       (long long)jint(r, "surge"), (long long)jint(r, "min_healthy"),
	       jstr(r, "message"));
	json_object_put(reply);
}

static int
events_common(int argc, char **argv, bool explain)
{
	static const struct option longopts[] = {
		CLIENT_LONGOPTS,
		CLIENT_JSON_LONGOPT,
		{"limit", required_argument, NULL, 'n'},
		{"group", required_argument, NULL, 'g'},
		{NULL, 0, NULL, 0},
	};
	const char *usage = explain ? "explain [--limit N] [--json] " CLIENT_USAGE " GROUP"
				    : "events [--group GROUP] [--limit N] [--json] " CLIENT_USAGE;
	const char *group = NULL;
	struct client_args a = {0};
	int64_t limit = explain ? 20 : 50;
	struct client c;
	struct json_object *reply, *arr;
	struct strbuf path = STRBUF_INIT;
	int opt, taken, rc = 1;

	while ((opt = getopt_long(argc, argv, CLIENT_OPTSTRING "n:g:", longopts,
				  NULL)) != -1) {
		if ((taken = client_opt(opt, &a)) > 0)
			continue;
		if (taken < 0)
			return 2;
		switch (opt) {
		case 'n':
			if (util_parse_int64(optarg, 1, 10000, &limit) != 0) {
				fprintf(stderr, "virt-autoscaler: --limit: %s\n",
					err_msg());
				return 2;
			}
			break;
		case 'g':
			group = optarg;
			break;
		case 'h':
			printf("usage: virt-autoscaler %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
			return 2;
		}
	}
	if (explain) {
		if (optind != argc - 1) {
			fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
			return 2;
		}
		group = argv[optind];
	} else if (optind != argc) {
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	if (client_init(&c, &a) != 0)
		return 1;
	strbuf_addf(&path, "/v1/events?limit=%lld", (long long)limit);
	if (explain)
		strbuf_adds(&path, "&kind=decision");
	if (group) {
		char *esc = curl_easy_escape(NULL, group, 0);

		strbuf_addf(&path, "&group=%s", esc);
		curl_free(esc);
	}
	reply = client_call(&c, "GET", strbuf_str(&path), NULL);
	if (!reply)
		goto cleanup;
	arr = json_reply_array(reply, "events", "/v1/events", json_event_keys);
	if (!arr)
		goto cleanup;
	/* Nothing recorded: a group the daemon does not know is an error
	 * (the history of a group no longer configured is still shown). */
	if (group && json_object_array_length(arr) == 0) {
		struct json_object *g;
		char *esc = curl_easy_escape(NULL, group, 0);

		strbuf_reset(&path);
		strbuf_addf(&path, "/v1/groups/%s", esc);
		curl_free(esc);
		g = client_call(&c, "GET", strbuf_str(&path), NULL);
		if (!g)
			goto cleanup;
		json_object_put(g);
	}
	if (a.json) {
		struct json_object *doc = json_object_new_object();

		if (explain) {
			struct json_object *d = json_object_new_array();

			for (size_t i = 0; i < json_object_array_length(arr); i++) {
				struct json_object *e = json_object_array_get_idx(arr, i);

				if (strcmp(jstr(e, "kind"), "decision") == 0)
					json_object_array_add(d, json_object_get(e));
			}
			json_object_object_add(doc, "group",
					       json_object_new_string(group));
			json_object_object_add(doc, "decisions", d);
			print_app_source(&c, group, doc);
			print_forecast(&c, group, doc);
			print_refresh(&c, group, doc);
		} else {
			json_object_object_add(doc, "events", json_object_get(arr));
		}
		rc = json_print(doc) == 0 ? 0 : 1;
		json_object_put(doc);
		goto cleanup;
	}
	if (explain && json_object_array_length(arr) == 0)
		printf("no decisions recorded for group %s yet\n", group);
	print_events(arr, explain);
	if (explain) {
		print_app_source(&c, group, NULL);
		print_forecast(&c, group, NULL);
		print_refresh(&c, group, NULL);
		print_hosts_down(&c);
	}
	rc = 0;
cleanup:
	strbuf_release(&path);
	json_object_put(reply);
	client_release(&c);
	return rc;
}

int
cmd_events(int argc, char **argv)
{
	return events_common(argc, argv, false);
}

int
cmd_explain(int argc, char **argv)
{
	return events_common(argc, argv, true);
}

int
cmd_scale(int argc, char **argv)
{
	struct client_args a;
	struct client c;
	struct json_object *reply;
	int64_t n;
	char *path, *body;
	int rc = parse_client_opts(argc, argv, "scale " CLIENT_USAGE " GROUP N",
				   &a, false);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (optind != argc - 2) {
		fprintf(stderr, "usage: virt-autoscaler scale " CLIENT_USAGE " GROUP N\n");
		return 2;
	}
	if (util_parse_int64(argv[optind + 1], 0, 100000, &n) != 0) {
		fprintf(stderr, "virt-autoscaler: scale: N: %s\n", err_msg());
		return 2;
	}
	if (client_init(&c, &a) != 0)
		return 1;
	path = xasprintf("/v1/groups/%s/desired", argv[optind]);
	body = xasprintf("{\"desired\": %lld}", (long long)n);
	reply = client_call(&c, "PUT", path, body);
	if (reply)
		printf("group %s: desired size set to %lld (%s)\n", argv[optind],
		       (long long)n, jstr(reply, "note"));
	json_object_put(reply);
	free(path);
	free(body);
	client_release(&c);
	return reply ? 0 : 1;
}

static int
pause_common(int argc, char **argv, bool pause)
{
	struct client_args a;
	struct client c;
	struct json_object *reply;
	char *path;
	const char *usage = pause ? "pause " CLIENT_USAGE " GROUP"
				  : "resume " CLIENT_USAGE " GROUP";
	int rc = parse_client_opts(argc, argv, usage, &a, false);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (optind != argc - 1) {
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	if (client_init(&c, &a) != 0)
		return 1;
	path = xasprintf("/v1/groups/%s/%s", argv[optind], pause ? "pause" : "resume");
	reply = client_call(&c, "POST", path, "{}");
	if (reply)
		printf("group %s %s\n", argv[optind], pause ? "paused" : "resumed");
	json_object_put(reply);
	free(path);
	client_release(&c);
	return reply ? 0 : 1;
}

int
cmd_pause(int argc, char **argv)
{
	return pause_common(argc, argv, true);
}

int
cmd_resume(int argc, char **argv)
{
	return pause_common(argc, argv, false);
}

/*
 * refresh GROUP [--max-unavailable N|P%] [--surge N] [--min-healthy P]
 *               [--checkpoint P]... | --cancel | --resume
 */
int
cmd_refresh(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLIENT_LONGOPTS,
		{"max-unavailable", required_argument, NULL, 'M'},
		{"surge", required_argument, NULL, 'S'},
		{"min-healthy", required_argument, NULL, 'H'},
		{"checkpoint", required_argument, NULL, 'P'},
		{"cancel", no_argument, NULL, 'X'},
		{"resume", no_argument, NULL, 'R'},
		{NULL, 0, NULL, 0},
	};
	const char *usage =
		"refresh " CLIENT_USAGE " GROUP [--max-unavailable N|P%] "
		"[--surge N] [--min-healthy P%] [--checkpoint P%]... "
		"[--cancel | --resume]";
	struct client_args a = {0};
	struct json_object *doc, *cps = NULL, *reply;
	const char *action = "start";
	struct client c;
	char *path;
	int opt, taken, n;
	int64_t v;

	doc = json_object_new_object();
	while ((opt = getopt_long(argc, argv, CLIENT_OPTSTRING, longopts,
				  NULL)) != -1) {
		if ((taken = client_opt(opt, &a)) > 0)
			continue;
		if (taken < 0)
			goto usage;
		switch (opt) {
		case 'M':
			if (config_refresh_amount(optarg, 100, &n) != 0) {
				fprintf(stderr, "virt-autoscaler: --max-unavailable: "
					"a number of instances (1) or a percentage "
					"of desired (25%%), not '%s'\n", optarg);
				goto bad;
			}
			json_object_object_add(doc, "max_unavailable",
					       json_object_new_string(optarg));
			break;
		case 'S':
		case 'H':
		case 'P': {
			char buf[16];
			size_t len = strlen(optarg);

			snprintf(buf, sizeof(buf), "%s", optarg);
			if (opt != 'S' && len && buf[len - 1] == '%')
				buf[len - 1] = '\0';
			if (util_parse_int64(buf, opt == 'P' ? 1 : 0,
					     opt == 'S' ? 1000 : 100, &v) != 0) {
				fprintf(stderr, "virt-autoscaler: --%s: %s\n",
					opt == 'S' ? "surge" : opt == 'H'
						? "min-healthy" : "checkpoint",
					err_msg());
				goto bad;
			}
			if (opt == 'P') {
				if (!cps)
					cps = json_object_new_array();
				json_object_array_add(cps,
						      json_object_new_int64(v));
			} else {
				json_object_object_add(doc, opt == 'S' ? "surge"
								       : "min_healthy",
						       json_object_new_int64(v));
			}
			break;
		}
		case 'X':
			action = "cancel";
			break;
		case 'R':
			action = "resume";
			break;
		case 'h':
			printf("usage: virt-autoscaler %s\n", usage);
			json_object_put(doc);
			json_object_put(cps);
			return 0;
		default:
			goto usage;
		}
	}
	if (optind != argc - 1)
		goto usage;
	if (strcmp(action, "start") != 0 &&
	    (json_object_object_length(doc) || cps)) {
		fprintf(stderr, "virt-autoscaler: refresh --%s takes no other "
			"option\n", action);
		goto bad;
	}
	if (cps)
		json_object_object_add(doc, "checkpoints", cps);
	cps = NULL;
	json_object_object_add(doc, "action", json_object_new_string(action));
	if (client_init(&c, &a) != 0) {
		json_object_put(doc);
		return 1;
	}
	path = xasprintf("/v1/groups/%s/refresh", argv[optind]);
	reply = client_call(&c, "POST", path,
			    json_object_to_json_string_ext(doc,
							   JSON_C_TO_STRING_PLAIN));
	if (reply)
		printf("group %s: refresh %s (%s)\n", argv[optind],
		       strcmp(action, "start") == 0 ? "started" : jstr(reply, "note"),
		       jstr(reply, "note"));
	json_object_put(reply);
	json_object_put(doc);
	free(path);
	client_release(&c);
	return reply ? 0 : 1;
usage:
	fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
bad:
	json_object_put(doc);
	json_object_put(cps);
	return 2;
}

/* status: the group's instance refresh, when it has had one */
static void
print_refresh_short(struct json_object *g)
{
	struct json_object *r;
	const char *st;

	if (!json_object_object_get_ex(g, "refresh", &r) ||
	    !json_object_is_type(r, json_type_object))
		return;
	st = jstr(r, "state");
	if (strcmp(st, "running") == 0 || strcmp(st, "paused") == 0 ||
	    strcmp(st, "rolling_back") == 0)
		printf(", refresh %s: %lld of %lld to replace, batch %lld, "
		       "template %s", st, (long long)jint(r, "remaining"),
		       (long long)jint(r, "total"), (long long)jint(r, "batches"),
		       jstr(r, "target"));
	else
		printf(", last refresh %s", st);
}

/* A metric's value with its unit, by the metric's name (rates.h). */
static void
format_metric(const char *name, double v, char *buf, size_t len)
{
	static const char *const units[] = {"B/s", "KiB/s", "MiB/s", "GiB/s",
					    "TiB/s"};
	size_t n = strlen(name);
	size_t u = 0;

	if (strcmp(name, "cpu") == 0 || strcmp(name, "memory") == 0) {
		snprintf(buf, len, "%.1f %%", v);
	} else if (n > 4 && strcmp(name + n - 4, "_bps") == 0) {
		while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
			v /= 1024;
			u++;
		}
		snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", v, units[u]);
	} else if (n > 5 && strcmp(name + n - 5, "_iops") == 0) {
		snprintf(buf, len, "%.1f ops/s", v);
	} else {
		snprintf(buf, len, "%.3f", v);
	}
}

static double
jdouble(struct json_object *o, const char *key, bool *present)
{
	struct json_object *v;

	*present = json_object_object_get_ex(o, key, &v) && v &&
		   !json_object_is_type(v, json_type_null);
	return *present ? json_object_get_double(v) : 0;
}

int
cmd_metrics(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLIENT_LONGOPTS,
		CLIENT_JSON_LONGOPT,
		{"window", required_argument, NULL, 'w'},
		{NULL, 0, NULL, 0},
	};
	const char *usage = "metrics [--window DURATION] [--json] " CLIENT_USAGE " INSTANCE";
	const char *window = NULL;
	struct client_args a = {0};
	struct client c;
	struct json_object *reply, *metrics;
	struct strbuf path = STRBUF_INIT;
	char *esc, *span;
	double age;
	bool have_age, dummy;
	int64_t samples, w;
	int opt, taken;

	while ((opt = getopt_long(argc, argv, CLIENT_OPTSTRING "w:", longopts,
				  NULL)) != -1) {
		if ((taken = client_opt(opt, &a)) > 0)
			continue;
		if (taken < 0)
			return 2;
		switch (opt) {
		case 'w':
			if (util_parse_duration_ms(optarg, &w) != 0) {
				fprintf(stderr, "virt-autoscaler: --window: %s\n",
					err_msg());
				return 2;
			}
			if (w <= 0) {
				fprintf(stderr, "virt-autoscaler: --window: must be longer than 0s\n");
				return 2;
			}
			window = optarg;
			break;
		case 'h':
			printf("usage: virt-autoscaler %s\n", usage);
			return 0;
		default:
			fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
			return 2;
		}
	}
	if (optind != argc - 1) {
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	if (client_init(&c, &a) != 0)
		return 1;
	esc = curl_easy_escape(NULL, argv[optind], 0);
	strbuf_addf(&path, "/v1/instances/%s/metrics", esc);
	curl_free(esc);
	if (window) {
		esc = curl_easy_escape(NULL, window, 0);
		strbuf_addf(&path, "?window=%s", esc);
		curl_free(esc);
	}
	reply = client_call(&c, "GET", strbuf_str(&path), NULL);
	strbuf_release(&path);
	client_release(&c);
	if (!reply)
		return 1;
	if (a.json) {
		struct json_object *m;
		int rc = 1;

		json_fill(reply, json_metrics_keys);
		if (!json_object_object_get_ex(reply, "metrics", &m) ||
		    !json_object_is_type(m, json_type_object)) {
			fprintf(stderr, "virt-autoscaler: metrics %s: the daemon's "
				"reply has no 'metrics' object\n", argv[optind]);
		} else {
			rc = json_print(reply) == 0 ? 0 : 1;
		}
		json_object_put(reply);
		return rc;
	}
	samples = jint(reply, "samples");
	age = jdouble(reply, "last_sample_age_s", &have_age);
	span = util_format_duration(
		(int64_t)(jdouble(reply, "window_s", &dummy) * 1000 + 0.5));
	printf("instance %s (group %s, %s): ", jstr(reply, "id"),
	       jstr(reply, "group"), jstr(reply, "state"));
	if (!json_object_object_get_ex(reply, "metrics", &metrics) ||
	    !json_object_is_type(metrics, json_type_object))
		metrics = NULL;
	if (samples <= 0)
		printf("no samples in the last %s: not collected (the domain is not running, or the instance is new or removed)\n",
		       span);
	else if (!metrics || json_object_object_length(metrics) == 0)
		printf("%lld samples in the last %s (the newest %.0f s ago), none with metric values: libvirt reports no counters for this domain\n",
		       (long long)samples, span, have_age ? age : 0.0);
	else
		printf("%lld samples in the last %s, the newest %.0f s ago\n",
		       (long long)samples, span, age);
	if (samples > 0 && metrics && json_object_object_length(metrics) > 0) {
		printf("%-16s %14s %14s %14s\n", "METRIC", "MEAN", "MAX", "LAST");
		json_object_object_foreach(metrics, name, m) {
			char mean[32], max[32], last[32];
			bool p;

			format_metric(name, jdouble(m, "mean", &p), mean, sizeof(mean));
			format_metric(name, jdouble(m, "max", &p), max, sizeof(max));
			format_metric(name, jdouble(m, "last", &p), last, sizeof(last));
			printf("%-16s %14s %14s %14s\n", name, mean, max, last);
		}
	}
	/* the application metrics from its heartbeats (a daemon before
	 * them has no app_metrics) */
	if (json_object_object_get_ex(reply, "app_metrics", &metrics) &&
	    json_object_is_type(metrics, json_type_object) &&
	    json_object_object_length(metrics) > 0) {
		printf("%-24s %14s %10s\n", "APP METRIC", "LAST", "AGE");
		json_object_object_foreach(metrics, aname, am) {
			bool p;
			double v = jdouble(am, "value", &p);
			double ag = jdouble(am, "age_s", &p);

			printf("%-24s %14.6g %9.0fs\n", aname, v, ag);
		}
	}
	free(span);
	json_object_put(reply);
	return 0;
}

/* The group names of the configuration file, for _complete's fallback. */
static int
complete_groups_from_config(void)
{
	struct strbuf problems = STRBUF_INIT;
	struct config *cfg = config_load_client(global_opts.config_path, &problems);
	int rc = 1;

	if (cfg && !problems.len && cfg->n_groups) {
		for (unsigned i = 0; i < cfg->n_groups; i++)
			printf("%s\n", cfg->groups[i].name);
		rc = 0;
	}
	config_free(cfg);
	strbuf_release(&problems);
	return rc;
}

/*
 * _complete groups|instances [client options]: the names bash completion
 * offers (contrib/bash-completion/virt-autoscaler), one a line: from the
 * daemon within 2 s, the groups otherwise from the configuration file.
 * Not listed in the help; errors go to stderr, which the completion
 * discards.
 */
int
cmd_complete(int argc, char **argv)
{
	const char *usage = "_complete groups|instances " CLIENT_USAGE;
	struct client_args a;
	struct client c;
	struct json_object *reply = NULL, *arr;
	const char *what, *path, *key, *field;
	int rc = parse_client_opts(argc, argv, usage, &a, false);

	if (rc)
		return rc == 1 ? 0 : rc;
	if (optind != argc - 1) {
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	what = argv[optind];
	if (strcmp(what, "groups") == 0) {
		path = "/v1/groups";
		key = "groups";
		field = "name";
	} else if (strcmp(what, "instances") == 0) {
		path = "/v1/instances";
		key = "instances";
		field = "id";
	} else {
		fprintf(stderr, "usage: virt-autoscaler %s\n", usage);
		return 2;
	}
	rc = 1;
	if (client_init(&c, &a) == 0) {
		c.timeout_ms = 2000;
		reply = client_call(&c, "GET", path, NULL);
		client_release(&c);
	}
	if (reply && json_object_object_get_ex(reply, key, &arr) &&
	    json_object_is_type(arr, json_type_array)) {
		for (size_t i = 0; i < json_object_array_length(arr); i++) {
			struct json_object *o = json_object_array_get_idx(arr, i);

			if (strcmp(jstr(o, field), "-") != 0)
				printf("%s\n", jstr(o, field));
		}
		rc = 0;
	} else if (strcmp(what, "groups") == 0) {
		rc = complete_groups_from_config();
	}
	json_object_put(reply);
	return rc;
}
