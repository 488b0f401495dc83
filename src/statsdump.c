/*
 * statsdump.c: write and parse the text dump of bulk stats results.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "statsdump.h"

static const char *const type_names[] = {
	[VIR_TYPED_PARAM_INT] = "int",
	[VIR_TYPED_PARAM_UINT] = "uint",
	[VIR_TYPED_PARAM_LLONG] = "llong",
	[VIR_TYPED_PARAM_ULLONG] = "ullong",
	[VIR_TYPED_PARAM_DOUBLE] = "double",
	[VIR_TYPED_PARAM_BOOLEAN] = "boolean",
	[VIR_TYPED_PARAM_STRING] = "string",
};

void
statsdump_add_round(struct strbuf *sb, int64_t t_ms)
{
	strbuf_addf(sb, "round %" PRId64 "\n", t_ms);
}

void
statsdump_add_domain(struct strbuf *sb, const char *uuid, unsigned vcpus,
		     const char *name, const virTypedParameter *params,
		     int nparams)
{
	strbuf_addf(sb, "domain %s %u %s\n", uuid, vcpus, name);
	for (int i = 0; i < nparams; i++) {
		const virTypedParameter *p = &params[i];

		switch (p->type) {
		case VIR_TYPED_PARAM_INT:
			strbuf_addf(sb, "%s int %d\n", p->field, p->value.i);
			break;
		case VIR_TYPED_PARAM_UINT:
			strbuf_addf(sb, "%s uint %u\n", p->field, p->value.ui);
			break;
		case VIR_TYPED_PARAM_LLONG:
			strbuf_addf(sb, "%s llong %lld\n", p->field, p->value.l);
			break;
		case VIR_TYPED_PARAM_ULLONG:
			strbuf_addf(sb, "%s ullong %llu\n", p->field, p->value.ul);
			break;
		case VIR_TYPED_PARAM_DOUBLE:
			strbuf_addf(sb, "%s double %.17g\n", p->field, p->value.d);
			break;
		case VIR_TYPED_PARAM_BOOLEAN:
			strbuf_addf(sb, "%s boolean %d\n", p->field, p->value.b ? 1 : 0);
			break;
		case VIR_TYPED_PARAM_STRING:
			strbuf_addf(sb, "%s string %s\n", p->field,
				    p->value.s ? p->value.s : "");
			break;
		default:
			break;
		}
	}
}

static void
domain_release(struct statsdump_domain *d)
{
	for (int i = 0; i < d->nparams; i++)
		if (d->params[i].type == VIR_TYPED_PARAM_STRING)
			free(d->params[i].value.s);
	free(d->params);
	free(d->name);
}

void
statsdump_release(struct statsdump *d)
{
	for (size_t r = 0; r < d->n_rounds; r++) {
		for (size_t k = 0; k < d->rounds[r].n_doms; k++)
			domain_release(&d->rounds[r].doms[k]);
		free(d->rounds[r].doms);
	}
	free(d->rounds);
	memset(d, 0, sizeof(*d));
}

/* Split off the next space-separated word of *p (NUL-terminating it). */
static char *
word(char **p)
{
	char *s = *p, *w;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s)
		return NULL;
	w = s;
	while (*s && *s != ' ' && *s != '\t')
		s++;
	if (*s)
		*s++ = '\0';
	*p = s;
	return w;
}

static int
parse_i64(const char *s, int64_t min, int64_t max, int64_t *out)
{
	return util_parse_int64(s, min, max, out);
}

static int
parse_ull(const char *s, unsigned long long *out)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || *s == ' ')
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || *end ? -1 : 0;
}

static int
parse_param(char *rest, virTypedParameter *p)
{
	char *field = word(&rest), *type = word(&rest), *val;
	int64_t i;
	unsigned long long u;
	size_t t;

	memset(p, 0, sizeof(*p));
	if (!field || !type) {
		err_set("expected FIELD TYPE VALUE");
		return -1;
	}
	if (strlen(field) >= VIR_TYPED_PARAM_FIELD_LENGTH) {
		err_set("field name longer than %d characters",
			VIR_TYPED_PARAM_FIELD_LENGTH - 1);
		return -1;
	}
	memcpy(p->field, field, strlen(field) + 1);
	for (t = 0; t < ARRAY_SIZE(type_names); t++)
		if (type_names[t] && strcmp(type, type_names[t]) == 0)
			break;
	if (t == ARRAY_SIZE(type_names)) {
		err_set("unknown type '%s'", type);
		return -1;
	}
	while (*rest == ' ' || *rest == '\t')
		rest++;
	val = rest;
	p->type = (int)t;
	switch (t) {
	case VIR_TYPED_PARAM_INT:
		if (parse_i64(val, INT32_MIN, INT32_MAX, &i) < 0)
			goto bad;
		p->value.i = (int)i;
		break;
	case VIR_TYPED_PARAM_UINT:
		if (parse_ull(val, &u) < 0 || u > UINT32_MAX)
			goto bad;
		p->value.ui = (unsigned)u;
		break;
	case VIR_TYPED_PARAM_LLONG:
		if (parse_i64(val, INT64_MIN, INT64_MAX, &i) < 0)
			goto bad;
		p->value.l = i;
		break;
	case VIR_TYPED_PARAM_ULLONG:
		if (parse_ull(val, &u) < 0)
			goto bad;
		p->value.ul = u;
		break;
	case VIR_TYPED_PARAM_DOUBLE: {
		char *end;

		errno = 0;
		p->value.d = strtod(val, &end);
		if (!*val || errno || *end || !isfinite(p->value.d))
			goto bad;
		break;
	}
	case VIR_TYPED_PARAM_BOOLEAN:
		if (strcmp(val, "0") != 0 && strcmp(val, "1") != 0)
			goto bad;
		p->value.b = val[0] == '1';
		break;
	case VIR_TYPED_PARAM_STRING:
		p->value.s = xstrdup(val);
		break;
	}
	return 0;
bad:
	p->type = VIR_TYPED_PARAM_INT; /* nothing to free */
	err_set("bad %s value '%.40s' for %s", type, val, field);
	return -1;
}

/* 8-4-4-4-12 hexadecimal digits. */
static bool
uuid_valid(const char *s)
{
	if (strlen(s) != VIR_UUID_STRING_BUFLEN - 1)
		return false;
	for (int i = 0; s[i]; i++) {
		bool dash = i == 8 || i == 13 || i == 18 || i == 23;

		if (dash ? s[i] != '-' : !strchr("0123456789abcdefABCDEF", s[i]))
			return false;
	}
	return true;
}

int
statsdump_parse(const char *text, size_t len, struct statsdump *out)
{
	char *buf = xstrndup(text, len), *line, *next;
	unsigned lineno = 0;
	size_t a_rounds = 0, a_doms = 0, a_params = 0;
	struct statsdump_round *round = NULL;
	struct statsdump_domain *dom = NULL;
	int rc = -1;

	memset(out, 0, sizeof(*out));
	if (strlen(buf) != len) {
		err_set("stats dump: line %u: NUL byte in text", 1u);
		goto cleanup;
	}
	for (line = buf; line; line = next) {
		char *rest;

		lineno++;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		if (*line && line[strlen(line) - 1] == '\r')
			line[strlen(line) - 1] = '\0';
		rest = line;
		while (*rest == ' ' || *rest == '\t')
			rest++;
		if (!*rest || *rest == '#')
			continue;
		if (strncmp(rest, "round ", 6) == 0) {
			int64_t t;

			rest += 6;
			while (*rest == ' ')
				rest++;
			if (parse_i64(rest, INT64_MIN, INT64_MAX, &t) < 0) {
				err_prefix("stats dump: line %u: round", lineno);
				goto cleanup;
			}
			if (out->n_rounds == a_rounds) {
				a_rounds = a_rounds ? a_rounds * 2 : 4;
				out->rounds = xreallocarray(out->rounds, a_rounds,
							    sizeof(*out->rounds));
			}
			round = &out->rounds[out->n_rounds++];
			memset(round, 0, sizeof(*round));
			round->t_ms = t;
			a_doms = 0;
			dom = NULL;
		} else if (strncmp(rest, "domain ", 7) == 0) {
			char *uuid, *vcpus;
			int64_t v;

			rest += 7;
			uuid = word(&rest);
			vcpus = word(&rest);
			while (*rest == ' ')
				rest++;
			if (!round) {
				err_set("stats dump: line %u: domain before any round",
					lineno);
				goto cleanup;
			}
			if (!uuid || !vcpus || !*rest) {
				err_set("stats dump: line %u: expected "
					"'domain UUID VCPUS NAME'", lineno);
				goto cleanup;
			}
			if (!uuid_valid(uuid)) {
				err_set("stats dump: line %u: bad UUID '%.40s'",
					lineno, uuid);
				goto cleanup;
			}
			if (parse_i64(vcpus, 0, 4096, &v) < 0) {
				err_prefix("stats dump: line %u: vCPUs", lineno);
				goto cleanup;
			}
			if (round->n_doms == a_doms) {
				a_doms = a_doms ? a_doms * 2 : 4;
				round->doms = xreallocarray(round->doms, a_doms,
							    sizeof(*round->doms));
			}
			dom = &round->doms[round->n_doms++];
			memset(dom, 0, sizeof(*dom));
			memcpy(dom->uuid, uuid, VIR_UUID_STRING_BUFLEN);
			dom->vcpus = (unsigned)v;
			dom->name = xstrdup(rest);
			a_params = 0;
		} else {
			if (!dom) {
				err_set("stats dump: line %u: field before any domain",
					lineno);
				goto cleanup;
			}
			if ((size_t)dom->nparams == a_params) {
				a_params = a_params ? a_params * 2 : 16;
				dom->params = xreallocarray(dom->params, a_params,
							    sizeof(*dom->params));
			}
			if (parse_param(rest, &dom->params[dom->nparams]) < 0) {
				err_prefix("stats dump: line %u", lineno);
				goto cleanup;
			}
			dom->nparams++;
		}
	}
	rc = 0;
cleanup:
	free(buf);
	return rc;
}
