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

/* groups.*.template's keys that make the template, from config.c's table:
 * a new key there is a new key here, with no edit */
#define MAX_KEYS 32

static size_t
keys(struct config_template_key k[MAX_KEYS])
{
	size_t n = config_template_keys(k, MAX_KEYS);

	if (n > MAX_KEYS)
		fatal("template: more than %d template keys", MAX_KEYS);
	return n;
}

char *
template_body(const struct config_group *gc, const struct provision_files *f)
{
	struct config_template_key k[MAX_KEYS];
	size_t nk = keys(k);
	struct json_object *o = json_object_new_object();
	struct json_object *t = json_object_new_object();
	char *out;

	/* keys in a fixed order (the table's): the same template, the same
	 * text */
	for (size_t i = 0; i < nk; i++) {
		const char *base = (const char *)&gc->template + k[i].off;

		switch (k[i].kind) {
		case CONFIG_KEY_INT: {
			int v;

			memcpy(&v, base, sizeof(v));
			json_object_object_add(t, k[i].name,
					       json_object_new_int(v));
			break;
		}
		case CONFIG_KEY_SIZE: {
			uint64_t v;

			memcpy(&v, base, sizeof(v));
			json_object_object_add(t, k[i].name,
					       json_object_new_int64((int64_t)v));
			break;
		}
		case CONFIG_KEY_STR: {
			const char *v;

			memcpy(&v, base, sizeof(v));
			put_str(t, k[i].name, v, v ? strlen(v) : 0);
			break;
		}
		}
	}
	json_object_object_add(o, "version", json_object_new_int(2));
	json_object_object_add(o, "template", t);
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
	struct config_template_key k[MAX_KEYS];
	size_t nk = keys(k);
	struct json_object *o = json_tokener_parse(body), *t = NULL;
	int64_t version;
	size_t ulen = 0, nlen = 0, dlen = 0;
	char *ud = NULL, *nc = NULL, *dt = NULL;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	c->gc = *gc;
	if (!o || !json_object_is_type(o, json_type_object)) {
		err_set("template: not a JSON object");
		goto out;
	}
	if (get_int(o, "version", 2, 2, &version) < 0)
		goto out;
	if (!json_object_object_get_ex(o, "template", &t) ||
	    !json_object_is_type(t, json_type_object)) {
		err_set("template: template is missing or not an object");
		goto out;
	}
	/* every key the table has now: a body without one is from another
	 * version (an older template is rolled back to only by a daemon
	 * that wrote it) */
	for (size_t i = 0; i < nk; i++) {
		char *base = (char *)&c->gc.template + k[i].off;
		int64_t v;
		char *str;

		switch (k[i].kind) {
		case CONFIG_KEY_INT: {
			int iv;

			if (get_int(t, k[i].name, 0, INT32_MAX, &v) < 0)
				goto out;
			iv = (int)v;
			memcpy(base, &iv, sizeof(iv));
			break;
		}
		case CONFIG_KEY_SIZE: {
			uint64_t uv;

			if (get_int(t, k[i].name, 0, INT64_MAX, &v) < 0)
				goto out;
			uv = (uint64_t)v;
			memcpy(base, &uv, sizeof(uv));
			break;
		}
		case CONFIG_KEY_STR:
			if (!json_object_object_get_ex(t, k[i].name, NULL)) {
				err_set("template: %s is missing", k[i].name);
				goto out;
			}
			if (get_str(t, k[i].name, c, &str, NULL) < 0)
				goto out;
			memcpy(base, &str, sizeof(str));
			break;
		}
	}
	if (get_str(o, "user_data", c, &ud, &ulen) < 0 ||
	    get_str(o, "network_config", c, &nc, &nlen) < 0 ||
	    get_str(o, "domain_template", c, &dt, &dlen) < 0 ||
	    get_bool(o, "phone_home", &c->gc.cloud_init.phone_home) < 0 ||
	    get_bool(o, "agent", &c->gc.cloud_init.agent) < 0)
		goto out;
	if (!c->gc.template.image || c->gc.template.vcpus < 1) {
		err_set("template: no image, or no vCPU");
		goto out;
	}
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
