/*
 * Fuzz the seed's YAML rendering with hostile names and addresses (they
 * come from the configuration and the daemon): the input is split at NUL
 * bytes into instance id, hostname, public URL, secret, address, gateway
 * and a quoted value. Whatever seed.c accepts must parse back with libyaml
 * to exactly the values given (no YAML injection), and seed_yaml_quote()
 * must round-trip any valid UTF-8 string. The vendor-data is a MIME
 * document: its parts and the here-documents of the agent's script must
 * end exactly where seed.c ends them.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "seed.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The scalar at key `key` of the top-level mapping (or under `parent`). */
static char *
scalar_at(const char *text, const char *parent, const char *key)
{
	yaml_parser_t p;
	yaml_document_t doc;
	yaml_node_t *node;
	char *ret = NULL;

	if (!yaml_parser_initialize(&p))
		abort();
	yaml_parser_set_input_string(&p, (const unsigned char *)text,
				     strlen(text));
	if (!yaml_parser_load(&p, &doc))
		abort(); /* what we generate must always parse */
	node = yaml_document_get_root_node(&doc);
	for (int depth = parent ? 0 : 1; node && depth < 2; depth++) {
		const char *want = depth == 0 ? parent : key;
		yaml_node_t *next = NULL;

		if (node->type != YAML_MAPPING_NODE)
			break;
		for (yaml_node_pair_t *pr = node->data.mapping.pairs.start;
		     pr < node->data.mapping.pairs.top; pr++) {
			yaml_node_t *k = yaml_document_get_node(&doc, pr->key);

			if (k->type == YAML_SCALAR_NODE &&
			    strcmp((char *)k->data.scalar.value, want) == 0)
				next = yaml_document_get_node(&doc, pr->value);
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

static void
expect(const char *text, const char *parent, const char *key, const char *want)
{
	char *got = scalar_at(text, parent, key);

	if (!got || strcmp(got, want) != 0)
		abort();
	free(got);
}

static size_t
count(const char *s, const char *what)
{
	size_t n = 0;

	for (const char *p = strstr(s, what); p; p = strstr(p + 1, what))
		n++;
	return n;
}

/*
 * The vendor-data is MIME: its cloud-config part must parse to the values
 * given, and no value may end a part or a here-document of the agent's
 * script early (each delimiter line exactly where seed.c puts it).
 */
static char *
cloud_config_part(const char *doc)
{
	const char *delim = "\n--" SEED_MIME_BOUNDARY;
	const char *body, *end;

	if (count(doc, delim) != 3 ||
	    count(doc, "\nVA_CONF_EOF\n") != 1 ||
	    count(doc, "\nVA_AGENT_EOF\n") != 1)
		abort();
	body = strstr(doc, "\n\n#cloud-config\n");
	if (!body)
		abort();
	end = strstr(body, delim);
	if (!end)
		abort();
	return xstrndup(body + 2, (size_t)(end - body - 2));
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *buf = xmalloc(size + 1);
	const char *f[7] = {"", "", "", "", "", "", ""};
	size_t nf = 0, start = 0;
	struct seed_spec spec;
	struct seed_net net;
	char *s, *url;

	memcpy(buf, data, size);
	buf[size] = '\0';
	for (size_t i = 0; i <= size && nf < 7; i++) {
		if (i == size || buf[i] == '\0') {
			f[nf++] = buf + start;
			start = i + 1;
		}
	}
	memset(&spec, 0, sizeof(spec));
	spec.instance_id = f[0];
	spec.hostname = f[1];
	spec.public_url = f[2];
	spec.secret = f[3];
	s = seed_meta_data(&spec);
	if (s) {
		expect(s, NULL, "instance-id", f[0]);
		expect(s, NULL, "local-hostname", f[1]);
		free(s);
	}
	s = seed_vendor_data(&spec);
	if (s) {
		char *cc = cloud_config_part(s);

		url = seed_checkin_url(f[2], f[0], f[3]);
		if (!url)
			abort();
		expect(cc, "phone_home", "url", url);
		free(url);
		free(cc);
		free(s);
	}
	memset(&net, 0, sizeof(net));
	net.address = f[4];
	net.prefix = 24;
	net.gateway = f[5][0] ? f[5] : NULL;
	s = seed_network_config(&net);
	free(s); /* the unit test checks the structure; here: no crash */
	s = seed_yaml_quote(f[6]);
	if (s) {
		char *doc = xasprintf("k: %s\n", s);

		expect(doc, NULL, "k", f[6]);
		free(doc);
		free(s);
	}
	free(buf);
	return 0;
}
