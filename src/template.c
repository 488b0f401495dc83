/*
 * template.c: a group's VM template as canonical JSON and its hash
 * (template.h). json-c writes and reads the JSON; GnuTLS hashes it.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include <json-c/json.h>

#include "log.h"
#include "template.h"
#include "util.h"

static void
put_str(struct json_object *o, const char *key, const char *v, size_t len)
{
	json_object_object_add(o, key, v ? json_object_new_string_len(v, (int)len)
					 : NULL);
}

char *
template_body(const struct config_group *gc, const struct provision_files *f)
{
	const struct config_template *t = &gc->template;
	struct json_object *o = json_object_new_object();
	char *out;

	/* keys in a fixed order: the same template, the same text */
	json_object_object_add(o, "version", json_object_new_int(1));
	put_str(o, "image", t->image, t->image ? strlen(t->image) : 0);
	json_object_object_add(o, "disk", json_object_new_int64((int64_t)t->disk));
	json_object_object_add(o, "vcpus", json_object_new_int(t->vcpus));
	json_object_object_add(o, "memory",
			       json_object_new_int64((int64_t)t->memory));
	put_str(o, "kernel", t->kernel, t->kernel ? strlen(t->kernel) : 0);
	put_str(o, "initrd", t->initrd, t->initrd ? strlen(t->initrd) : 0);
	put_str(o, "cmdline", t->cmdline, t->cmdline ? strlen(t->cmdline) : 0);
	put_str(o, "user_data", f->user_data, f->user_data_len);
	put_str(o, "network_config", f->network_config, f->network_config_len);
	put_str(o, "domain_template", f->domain_template,
		f->domain_template_len);
	json_object_object_add(o, "phone_home",
			       json_object_new_boolean(gc->cloud_init.phone_home));
	json_object_object_add(o, "agent",
			       json_object_new_boolean(gc->cloud_init.agent));
	out = xstrdup(json_object_to_json_string_ext(
		o, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE));
	json_object_put(o);
	return out;
}

void
template_hash(const char *body, char out[65])
{
	unsigned char d[32];

	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, body, strlen(body), d) < 0)
		fatal("template: SHA-256 failed");
	for (int i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static char *
memdup0(const char *p, size_t n)
{
	char *s = xmalloc(n + 1);

	memcpy(s, p, n);
	s[n] = '\0';
	return s;
}

/* The string at key (NULL when null or absent), owned by c; -1 when it
 * is not a string. */
static int
get_str(struct json_object *o, const char *key, struct template_copy *c,
	char **out, size_t *len)
{
	struct json_object *v = NULL;
	size_t n = 0;

	*out = NULL;
	if (len)
		*len = 0;
	if (!json_object_object_get_ex(o, key, &v) || !v)
		return 0;
	if (!json_object_is_type(v, json_type_string)) {
		err_set("template: %s is not a string", key);
		return -1;
	}
	while (n < ARRAY_SIZE(c->owned) && c->owned[n])
		n++;
	if (n == ARRAY_SIZE(c->owned))
		fatal("template: too many strings");
	c->owned[n] = memdup0(json_object_get_string(v),
				   (size_t)json_object_get_string_len(v));
	*out = c->owned[n];
	if (len)
		*len = (size_t)json_object_get_string_len(v);
	return 0;
}

static int
get_int(struct json_object *o, const char *key, int64_t min, int64_t max,
	int64_t *out)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_int)) {
		err_set("template: %s is missing or not a number", key);
		return -1;
	}
	errno = 0;
	*out = json_object_get_int64(v);
	if (errno || *out < min || *out > max) {
		err_set("template: %s is out of range", key);
		return -1;
	}
	return 0;
}

static int
get_bool(struct json_object *o, const char *key, bool *out)
{
	struct json_object *v = NULL;

	if (!json_object_object_get_ex(o, key, &v) ||
	    !json_object_is_type(v, json_type_boolean)) {
		err_set("template: %s is missing or not true/false", key);
		return -1;
	}
	*out = json_object_get_boolean(v);
	return 0;
}

int
template_parse(const char *body, const struct config_group *gc,
	       struct template_copy *c)
{
	struct json_object *o = json_tokener_parse(body);
	struct config_template *t;
	int64_t disk, vcpus, memory, version;
	size_t ulen = 0, nlen = 0, dlen = 0;
	char *ud = NULL, *nc = NULL, *dt = NULL;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->gc = *gc;
	t = &c->gc.template;
	if (!o || !json_object_is_type(o, json_type_object)) {
		err_set("template: not a JSON object");
		goto out;
	}
	if (get_int(o, "version", 1, 1, &version) < 0 ||
	    get_str(o, "image", c, &t->image, NULL) < 0 ||
	    get_int(o, "disk", 0, INT64_MAX, &disk) < 0 ||
	    get_int(o, "vcpus", 1, 4096, &vcpus) < 0 ||
	    get_int(o, "memory", 0, INT64_MAX, &memory) < 0 ||
	    get_str(o, "kernel", c, &t->kernel, NULL) < 0 ||
	    get_str(o, "initrd", c, &t->initrd, NULL) < 0 ||
	    get_str(o, "cmdline", c, &t->cmdline, NULL) < 0 ||
	    get_str(o, "user_data", c, &ud, &ulen) < 0 ||
	    get_str(o, "network_config", c, &nc, &nlen) < 0 ||
	    get_str(o, "domain_template", c, &dt, &dlen) < 0 ||
	    get_bool(o, "phone_home", &c->gc.cloud_init.phone_home) < 0 ||
	    get_bool(o, "agent", &c->gc.cloud_init.agent) < 0)
		goto out;
	t->disk = (uint64_t)disk;
	t->vcpus = (int)vcpus;
	t->memory = (uint64_t)memory;
	c->files.user_data = ud;
	c->files.user_data_len = ulen;
	c->files.network_config = nc;
	c->files.network_config_len = nlen;
	c->files.domain_template = dt;
	c->files.domain_template_len = dlen;
	rc = 0;
out:
	if (o)
		json_object_put(o);
	if (rc < 0)
		template_copy_release(c);
	return rc;
}

void
template_copy_release(struct template_copy *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(c->owned); i++)
		free(c->owned[i]);
	memset(c, 0, sizeof(*c));
}
