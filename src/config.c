/*
 * config.c: autoscale.yaml -> struct config.
 *
 * Three stages:
 *  1. the bytes are checked to be UTF-8, then libyaml's event API builds a
 *     small tree of nodes with their line/column (aliases are refused, so
 *     memory stays proportional to the file; depth and node count are
 *     capped);
 *  2. the tree is walked against one table of options per section (Redis
 *     static_configs[] style: name, type, bounds, default, reloadable,
 *     doc). The same tables fill defaults, print the effective config and
 *     describe the schema (config_schema_walk) for the man page test;
 *  3. cross-field checks (per-section check callbacks, then whole-file
 *     references such as a group naming an undefined host).
 * Problems are collected with their position, sorted, and written out as
 * "FILE:LINE:COL: path.to.key: what is wrong" lines.
 */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "config.h"
#include "log.h"
#include "policy.h"
#include "promsrc.h"
#include "quote.h"
#include "url.h"
#include "util.h"

LOG_TAG("config");

#define MAX_DEPTH 64
#define MAX_NODES 100000
#define MAX_ERRORS 100
#define MAX_UTF8_ERRORS 10
/* Far above any real configuration; they keep the checks' time bounded. */
#define MAX_HOSTS 1000
#define MAX_GROUPS 1000
#define MAX_LIST 1000      /* host names of a group, dns servers */
#define MAX_RULES 100      /* steps, schedules of a group */
#define MAX_OPTIONS 256    /* placement_options */

/* ------------------------------------------------------------------ */
/* The YAML tree                                                        */

enum ynode_kind { YN_SCALAR, YN_SEQ, YN_MAP, YN_BAD };

struct ynode {
	enum ynode_kind kind;
	int line, col;    /* 1-based */
	bool plain;       /* scalar written without quotes or block style */
	char *value;      /* scalar text */
	size_t len;
	struct ynode **kids; /* SEQ: items; MAP: key, value, key, value... */
	unsigned n, alloc;
	bool closed;      /* SEQ, MAP: its end was read (see keep_partial) */
};

struct perr {
	int line, col; /* 0: file-level */
	unsigned seq;
	bool warn;     /* a warning: reported, but the file is accepted */
	char *msg;
};

struct pctx {
	const char *name;
	/* config_load(): also check what depends on where the file is
	 * used: the files it names, environment variables, the admin
	 * token's strength, whether guests reach the default public_url */
	bool check_files;
	const char *base_dir;
	struct perr *errs;
	unsigned n_errs, alloc_errs;
	unsigned n_warns; /* of n_errs, how many are warnings */
	unsigned n_nodes;
	bool alias_reported;
	/* group nodes, parallel to cfg->groups, for the whole-file checks */
	const struct ynode **group_nodes;
	const struct ynode *hosts_node;
	struct config *cfg;
	/* daemon.public_url was not written and defaults to 10.0.2.2 */
	bool public_url_user_net;
	const struct ynode *daemon_node; /* daemon section, or NULL */
	/* config_load_client(): return the tree built before a syntax error */
	bool keep_partial;
};

static void
perr_add(struct pctx *ctx, int line, int col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static void
perr_add(struct pctx *ctx, int line, int col, const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	if (ctx->n_errs == ctx->alloc_errs) {
		ctx->alloc_errs = ctx->alloc_errs ? 2 * ctx->alloc_errs : 16;
		ctx->errs = xreallocarray(ctx->errs, ctx->alloc_errs,
					  sizeof(*ctx->errs));
	}
	ctx->errs[ctx->n_errs].line = line;
	ctx->errs[ctx->n_errs].col = col;
	ctx->errs[ctx->n_errs].seq = ctx->n_errs;
	ctx->errs[ctx->n_errs].warn = false;
	ctx->errs[ctx->n_errs].msg = strbuf_detach(&sb);
	ctx->n_errs++;
}

/* A problem at a node, prefixed with the key path when there is one. */
static void
nerr(struct pctx *ctx, const struct ynode *n, const char *path,
     const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
nerr(struct pctx *ctx, const struct ynode *n, const char *path,
     const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	if (path && *path)
		strbuf_addf(&sb, "%s: ", path);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	perr_add(ctx, n ? n->line : 1, n ? n->col : 1, "%s", strbuf_str(&sb));
	strbuf_release(&sb);
}

/*
 * A warning at a node: something that works only in some setups (the
 * message says which). The file is accepted; `check` prints it on
 * stderr, run and reload log it.
 */
static void
nwarn(struct pctx *ctx, const struct ynode *n, const char *path,
      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

static void
nwarn(struct pctx *ctx, const struct ynode *n, const char *path,
      const char *fmt, ...)
{
	struct strbuf sb = STRBUF_INIT;
	va_list ap;

	strbuf_adds(&sb, "warning: ");
	if (path && *path)
		strbuf_addf(&sb, "%s: ", path);
	va_start(ap, fmt);
	strbuf_vaddf(&sb, fmt, ap);
	va_end(ap);
	perr_add(ctx, n ? n->line : 1, n ? n->col : 1, "%s", strbuf_str(&sb));
	ctx->errs[ctx->n_errs - 1].warn = true;
	ctx->n_warns++;
	strbuf_release(&sb);
}

/* Whether a problem was already reported at this node. */
static bool
node_has_error(const struct pctx *ctx, const struct ynode *n)
{
	for (unsigned i = 0; n && i < ctx->n_errs; i++)
		if (!ctx->errs[i].warn && ctx->errs[i].line == n->line &&
		    ctx->errs[i].col == n->col)
			return true;
	return false;
}

/* Whether any problem (not a warning) was recorded. */
static bool
has_errors(const struct pctx *ctx)
{
	return ctx->n_errs > ctx->n_warns;
}

static int
perr_cmp(const void *a, const void *b)
{
	const struct perr *x = a, *y = b;

	if (x->line != y->line)
		return x->line < y->line ? -1 : 1;
	if (x->col != y->col)
		return x->col < y->col ? -1 : 1;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/*
 * Write out the problems, sorted by position, and forget them. With any
 * error, only the errors go to errors (a refused file's warnings would
 * only distract); without, the warnings go to warnings (may be NULL).
 */
static void
perr_flush(struct pctx *ctx, struct strbuf *errors, struct strbuf *warnings)
{
	bool failed = has_errors(ctx);
	unsigned shown = 0, hidden = 0;

	if (ctx->n_errs)
		qsort(ctx->errs, ctx->n_errs, sizeof(*ctx->errs), perr_cmp);
	for (unsigned i = 0; i < ctx->n_errs; i++) {
		struct strbuf *out = failed ? errors : warnings;

		if (ctx->errs[i].warn == failed)
			out = NULL;
		if (out && shown < MAX_ERRORS) {
			if (ctx->errs[i].line > 0)
				strbuf_addf(out, "%s:%d:%d: %s\n", ctx->name,
					    ctx->errs[i].line, ctx->errs[i].col,
					    ctx->errs[i].msg);
			else
				strbuf_addf(out, "%s: %s\n", ctx->name,
					    ctx->errs[i].msg);
			shown++;
		} else if (out) {
			hidden++;
		}
		free(ctx->errs[i].msg);
	}
	if (hidden)
		strbuf_addf(failed ? errors : warnings,
			    "%s: %u more problems not shown\n", ctx->name,
			    hidden);
	free(ctx->errs);
	ctx->errs = NULL;
	ctx->n_errs = ctx->alloc_errs = ctx->n_warns = 0;
}

static void
ynode_free(struct ynode *n)
{
	if (!n)
		return;
	/* depth is capped at MAX_DEPTH, so recursion is bounded */
	for (unsigned i = 0; i < n->n; i++)
		ynode_free(n->kids[i]);
	free(n->kids);
	free(n->value);
	free(n);
}

static void
ynode_add(struct ynode *parent, struct ynode *kid)
{
	if (parent->n == parent->alloc) {
		parent->alloc = parent->alloc ? 2 * parent->alloc : 4;
		parent->kids = xreallocarray(parent->kids, parent->alloc,
					     sizeof(*parent->kids));
	}
	parent->kids[parent->n++] = kid;
}

/* Line and column (1-based, in characters) of a byte offset. */
static void
offset_to_linecol(const char *data, size_t len, size_t off, int *line,
		  int *col)
{
	int l = 1, c = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		unsigned char b = (unsigned char)data[i];

		if (b == '\n') {
			l++;
			c = 1;
		} else if ((b & 0xC0) != 0x80) {
			c++;
		}
	}
	*line = l;
	*col = c;
}

/* Length of the valid UTF-8 sequence at p, or 0. */
static size_t
utf8_seq(const unsigned char *p, size_t left)
{
	uint32_t cp;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
		cp = p[0] & 0x1F;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 3;
		cp = p[0] & 0x0F;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 4;
		cp = p[0] & 0x07;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3F);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
	    cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
		return 0;
	return n;
}

/* Report bytes that are not UTF-8 (one per line, at most a few). */
static int
check_utf8(struct pctx *ctx, const char *data, size_t len)
{
	const unsigned char *p = (const unsigned char *)data;
	int line = 1, col = 1, bad = 0, last_bad_line = 0;

	if (len >= 2 && ((p[0] == 0xFF && p[1] == 0xFE) ||
			 (p[0] == 0xFE && p[1] == 0xFF))) {
		perr_add(ctx, 1, 1, "the file is UTF-16 (it starts with a byte "
			 "order mark); save it as UTF-8");
		return -1;
	}

	for (size_t i = 0; i < len;) {
		size_t n = utf8_seq(p + i, len - i);

		if (n == 0) {
			if (line != last_bad_line && bad < MAX_UTF8_ERRORS)
				perr_add(ctx, line, col,
					 "byte 0x%02X is not valid UTF-8 (the "
					 "file must be UTF-8 text)", p[i]);
			last_bad_line = line;
			bad++;
			n = 1;
		}
		if (p[i] == '\n') {
			line++;
			col = 1;
		} else {
			col++;
		}
		i += n;
	}
	if (bad > MAX_UTF8_ERRORS)
		perr_add(ctx, 0, 0, "%d more bytes that are not UTF-8",
			 bad - MAX_UTF8_ERRORS);
	return bad ? -1 : 0;
}

static struct ynode *
ynode_new(struct pctx *ctx, enum ynode_kind kind, const yaml_mark_t *m)
{
	struct ynode *n = xcalloc(1, sizeof(*n));

	n->kind = kind;
	n->line = (int)m->line + 1;
	n->col = (int)m->column + 1;
	ctx->n_nodes++;
	return n;
}

static void
report_yaml_error(struct pctx *ctx, const yaml_parser_t *p, const char *data,
		  size_t len)
{
	int line, col;
	const char *problem = p->problem ? p->problem : "unknown problem";

	if (p->error == YAML_READER_ERROR) {
		offset_to_linecol(data, len, p->problem_offset, &line, &col);
		perr_add(ctx, line, col, "YAML syntax error: %s", problem);
		return;
	}
	if (p->error == YAML_MEMORY_ERROR)
		fatal("libyaml: out of memory");
	line = (int)p->problem_mark.line + 1;
	col = (int)p->problem_mark.column + 1;
	if (p->context)
		perr_add(ctx, line, col,
			 "YAML syntax error: %s (%s at line %d, column %d)",
			 problem, p->context, (int)p->context_mark.line + 1,
			 (int)p->context_mark.column + 1);
	else
		perr_add(ctx, line, col, "YAML syntax error: %s", problem);
}

/*
 * Build the node tree. Returns the root, or NULL (problems recorded) on a
 * syntax error, an alias, too deep or too many nodes, more than one
 * document, or no document at all. With ctx->keep_partial, the tree
 * built up to a syntax error is returned (its unfinished sequences and
 * mappings are not closed).
 */
static struct ynode *
yaml_build(struct pctx *ctx, const char *data, size_t len)
{
	yaml_parser_t parser;
	yaml_event_t ev;
	struct ynode *stack[MAX_DEPTH + 1];
	int depth = 0;
	struct ynode *root = NULL;
	int docs = 0;
	bool done = false, failed = false;

	if (!yaml_parser_initialize(&parser))
		fatal("libyaml: cannot initialize the parser");
	yaml_parser_set_input_string(&parser, (const unsigned char *)data, len);
	/* No yaml_parser_set_encoding(): libyaml then skips a UTF-8 byte
	 * order mark. UTF-16 was refused before (check_utf8). */

	while (!done) {
		struct ynode *n = NULL;
		bool push = false;

		if (!yaml_parser_parse(&parser, &ev)) {
			report_yaml_error(ctx, &parser, data, len);
			failed = true;
			break;
		}
		switch (ev.type) {
		case YAML_STREAM_END_EVENT:
			done = true;
			break;
		case YAML_DOCUMENT_START_EVENT:
			if (++docs > 1) {
				perr_add(ctx, (int)ev.start_mark.line + 1,
					 (int)ev.start_mark.column + 1,
					 "a second YAML document; the "
					 "configuration must be one document");
				failed = true;
				done = true;
			}
			break;
		case YAML_MAPPING_START_EVENT:
			n = ynode_new(ctx, YN_MAP, &ev.start_mark);
			push = true;
			break;
		case YAML_SEQUENCE_START_EVENT:
			n = ynode_new(ctx, YN_SEQ, &ev.start_mark);
			push = true;
			break;
		case YAML_SCALAR_EVENT:
			n = ynode_new(ctx, YN_SCALAR, &ev.start_mark);
			n->value = xstrndup((const char *)ev.data.scalar.value,
					    ev.data.scalar.length);
			n->len = ev.data.scalar.length;
			n->plain = ev.data.scalar.style ==
				   YAML_PLAIN_SCALAR_STYLE;
			break;
		case YAML_ALIAS_EVENT:
			/* Refusing aliases bounds memory and time: the tree
			 * is never bigger than the text (no alias bombs). */
			n = ynode_new(ctx, YN_BAD, &ev.start_mark);
			if (!ctx->alias_reported)
				perr_add(ctx, n->line, n->col,
					 "YAML aliases (*%s) are not supported: "
					 "write the value out in full",
					 (const char *)ev.data.alias.anchor);
			ctx->alias_reported = true;
			break;
		case YAML_MAPPING_END_EVENT:
		case YAML_SEQUENCE_END_EVENT:
			if (depth > 0)
				stack[--depth]->closed = true;
			break;
		default:
			break;
		}
		if (n) {
			if (ctx->n_nodes > MAX_NODES) {
				perr_add(ctx, n->line, n->col,
					 "more than %d YAML nodes: this is "
					 "not a plausible configuration",
					 MAX_NODES);
				ynode_free(n);
				failed = true;
				done = true;
			} else if (depth == 0) {
				/* one document, so one root */
				ynode_free(root);
				root = n;
			} else {
				ynode_add(stack[depth - 1], n);
			}
			if (!done && push) {
				if (depth == MAX_DEPTH) {
					perr_add(ctx, n->line, n->col,
						 "nested deeper than %d levels",
						 MAX_DEPTH);
					failed = true;
					done = true;
				} else {
					stack[depth++] = n;
				}
			}
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&parser);
	if (failed && !ctx->keep_partial) {
		ynode_free(root);
		return NULL;
	}
	if (!root) {
		perr_add(ctx, 1, 1,
			 "the file is empty or holds only comments; it must "
			 "at least say 'version: 1' and list 'hosts'");
		return NULL;
	}
	return root;
}

static bool
ynode_is_null(const struct ynode *n)
{
	return n->kind == YN_SCALAR && n->plain &&
	       (n->len == 0 || strcmp(n->value, "~") == 0 ||
		strcmp(n->value, "null") == 0 || strcmp(n->value, "Null") == 0 ||
		strcmp(n->value, "NULL") == 0);
}

static const char *
ynode_describe(const struct ynode *n)
{
	switch (n->kind) {
	case YN_MAP:
		return "a mapping";
	case YN_SEQ:
		return "a sequence";
	case YN_SCALAR: {
		static _Thread_local char buf[64];

		if (ynode_is_null(n))
			return "nothing (null)";
		if (n->len > 24 || strlen(n->value) != n->len)
			return "a scalar";
		snprintf(buf, sizeof(buf), "'%s'", n->value);
		return buf;
	}
	default:
		return "an alias";
	}
}

/* The value of key in a mapping node, or NULL. */
static const struct ynode *
ymap_get(const struct ynode *map, const char *key)
{
	if (!map || map->kind != YN_MAP)
		return NULL;
	for (unsigned i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == YN_SCALAR &&
		    strcmp(map->kids[i]->value, key) == 0)
			return map->kids[i + 1];
	return NULL;
}

/* The key node of key in a mapping node, or NULL. */
static const struct ynode *
ymap_key(const struct ynode *map, const char *key)
{
	if (!map || map->kind != YN_MAP)
		return NULL;
	for (unsigned i = 0; i + 1 < map->n; i += 2)
		if (map->kids[i]->kind == YN_SCALAR &&
		    strcmp(map->kids[i]->value, key) == 0)
			return map->kids[i];
	return NULL;
}

/* ------------------------------------------------------------------ */
/* Option tables                                                        */

enum ctype {
	T_STR,      /* char *, non-empty text */
	T_PATH,     /* char *, a file path */
	T_NAME,     /* char *, [A-Za-z0-9][A-Za-z0-9._-]{0,62} */
	T_URL,      /* char *, http:// or https:// URL */
	T_BOOL,     /* bool */
	T_INT,      /* int */
	T_DOUBLE,   /* double */
	T_DURATION, /* int64_t milliseconds */
	T_SIZE,     /* uint64_t bytes */
	T_SIZE_D,   /* double bytes (a rate per second) */
	T_PERCENT,  /* double 0..100 */
	T_FRACTION, /* written as a percentage, stored as a fraction */
	T_ENUM,     /* int (an enum), names in opt->enums */
	T_SECRET,   /* struct config_secret */
	T_STRLIST,  /* struct config_strlist */
	T_IPLIST,   /* struct config_strlist of IP addresses */
	T_NODE,     /* const struct ynode *: interpreted by a check */
	T_SECTION,  /* a mapping described by opt->sub */
	T_CUSTOM,   /* opt->parse / opt->print */
};

#define F_REQ 0x01        /* required */
#define F_RELOAD 0x02     /* a SIGHUP reload may change it */
#define F_OMIT 0x04       /* printed only when set (non-NULL, non-zero) */
#define F_MIN_EXCL 0x08   /* the minimum itself is not allowed */
#define F_NO_REFRESH 0x10 /* groups.*.template: changing it replaces no
			     instance (not part of template.h's template) */

struct section;
struct opt;

typedef int (*parse_fn)(struct pctx *ctx, const struct ynode *n, void *base,
			const struct opt *o, const char *path);
typedef void (*print_fn)(struct strbuf *out, const void *base, int indent,
			 const struct opt *o);
typedef bool (*show_fn)(const void *base);
typedef void (*check_fn)(struct pctx *ctx, const struct ynode *map,
			 void *base, const char *path);

struct opt {
	const char *name;
	enum ctype type;
	size_t off;
	unsigned flags;
	double min, max;          /* numbers, durations (ms), sizes (bytes) */
	const char *def;          /* default, written as in the file */
	const char *defdoc;       /* default described (derived defaults) */
	const char *doc;
	const struct section *sub; /* T_SECTION; list element for CUSTOM */
	const char *const *enums; /* T_ENUM, NULL-terminated */
	parse_fn parse;           /* T_CUSTOM */
	print_fn print;           /* T_CUSTOM */
	show_fn show;             /* print only if show(base) */
	const char *type_name;    /* T_CUSTOM/T_NODE: for the schema */
	const char *elem;         /* CUSTOM lists: "[]" or ".*" */
};

struct section {
	const char *name;
	const struct opt *opts;
	size_t present_off;       /* bool set when the mapping is given */
	check_fn check;           /* cross-field checks after parsing */
};

#define NO_PRESENT ((size_t)-1)

#define FIELD(base, o, T) ((T *)(void *)((char *)(base) + (o)->off))
#define CFIELD(base, o, T) \
	((const T *)(const void *)((const char *)(base) + (o)->off))

static const char *const bool_true[] = {"true", "True", "TRUE", "yes",
					"Yes", "YES", "on", "On", "ON", NULL};
static const char *const bool_false[] = {"false", "False", "FALSE", "no",
					 "No", "NO", "off", "Off", "OFF", NULL};

static bool
in_list(const char *s, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(s, *list) == 0)
			return true;
	return false;
}

static bool
valid_name(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 63 || !isalnum((unsigned char)s[0]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!isalnum((unsigned char)s[i]) && s[i] != '.' &&
		    s[i] != '_' && s[i] != '-')
			return false;
	return true;
}

static bool
valid_ip(const char *s, int *family)
{
	unsigned char buf[sizeof(struct in6_addr)];

	if (inet_pton(AF_INET, s, buf) == 1) {
		if (family)
			*family = AF_INET;
		return true;
	}
	if (inet_pton(AF_INET6, s, buf) == 1) {
		if (family)
			*family = AF_INET6;
		return true;
	}
	return false;
}

static void
set_str(char **field, const char *v)
{
	free(*field);
	*field = v ? xstrdup(v) : NULL;
}

/* Format a bound or value of a numeric option as written in the file. */
static char *
format_num(enum ctype t, double v)
{
	switch (t) {
	case T_DURATION:
		return util_format_duration((int64_t)v);
	case T_SIZE:
	case T_SIZE_D:
		return util_format_size((uint64_t)v);
	case T_PERCENT:
	case T_FRACTION:
		return util_format_percent(v);
	case T_INT:
		return xasprintf("%lld", (long long)v);
	default:
		return xasprintf("%.15g", v);
	}
}

static int
check_bounds(struct pctx *ctx, const struct ynode *n, const struct opt *o,
	     const char *path, double v)
{
	bool low = (o->flags & F_MIN_EXCL) ? v <= o->min : v < o->min;

	if (o->min == o->max && v != o->min) {
		char *a = format_num(o->type, o->min);

		nerr(ctx, n, path, "must be %s, not %s", a, n->value);
		free(a);
		return -1;
	}

	if (low || v > o->max) {
		char *a = format_num(o->type, o->min);
		char *b = format_num(o->type, o->max);

		if (o->flags & F_MIN_EXCL)
			nerr(ctx, n, path,
			     "%s is out of range (more than %s, at most %s)",
			     n->value, a, b);
		else
			nerr(ctx, n, path, "%s is out of range (%s..%s)",
			     n->value, a, b);
		free(a);
		free(b);
		return -1;
	}
	return 0;
}

static bool
parse_double_text(const char *s, double *out)
{
	char *end;

	if (!*s || strspn(s, "0123456789.eE+-") != strlen(s))
		return false;
	errno = 0;
	*out = strtod(s, &end);
	return !errno && *end == '\0' && isfinite(*out);
}

static int parse_section(struct pctx *ctx, const struct ynode *n,
			 const struct section *sec, void *base,
			 const char *path);

/* What a value of this option looks like, for "expected ..." messages. */
static const char *
value_desc(const struct opt *o)
{
	switch (o->type) {
	case T_STR:
		return "text";
	case T_PATH:
		return "a path";
	case T_NAME:
		return "a name";
	case T_URL:
		return "a URL";
	case T_INT:
		return "a whole number";
	case T_DOUBLE:
		return "a number";
	case T_DURATION:
		return "a duration like 30s, 5m or 1h";
	case T_SIZE:
	case T_SIZE_D:
		return "a size like 512MiB";
	case T_PERCENT:
	case T_FRACTION:
		return "a percentage like 60%";
	case T_ENUM:
		return "a keyword";
	default:
		return "a value";
	}
}
static void apply_defaults(const struct section *sec, void *base, bool deep);

/* A scalar that is a string: not null, not a sequence or mapping. */
static const char *
want_string(struct pctx *ctx, const struct ynode *n, const char *path,
	    const char *what)
{
	if (n->kind == YN_BAD)
		return NULL;
	if (n->kind != YN_SCALAR) {
		nerr(ctx, n, path, "expected %s, got %s", what,
		     ynode_describe(n));
		return NULL;
	}
	if (ynode_is_null(n)) {
		nerr(ctx, n, path, "missing value (expected %s)", what);
		return NULL;
	}
	if (strlen(n->value) != n->len) {
		nerr(ctx, n, path, "contains a NUL character");
		return NULL;
	}
	return n->value;
}

static int
parse_bool(struct pctx *ctx, const struct ynode *n, const char *path,
	   bool *out)
{
	const char *s = want_string(ctx, n, path, "true or false");

	if (!s)
		return -1;
	if (in_list(s, bool_true)) {
		*out = true;
		return 0;
	}
	if (in_list(s, bool_false)) {
		*out = false;
		return 0;
	}
	nerr(ctx, n, path, "expected true or false, got '%s'", s);
	return -1;
}

static int
parse_strlist(struct pctx *ctx, const struct ynode *n, const char *path,
	      struct config_strlist *out, bool ips)
{
	int rc = 0;

	if (n->kind == YN_BAD)
		return -1;
	if (n->kind != YN_SEQ) {
		nerr(ctx, n, path, "expected a list like [a, b], got %s",
		     ynode_describe(n));
		return -1;
	}
	if (n->n > MAX_LIST) {
		nerr(ctx, n, path, "more than %d entries", MAX_LIST);
		return -1;
	}
	for (unsigned i = 0; i < out->n; i++)
		free(out->v[i]);
	free(out->v);
	out->v = xcalloc(n->n + 1, sizeof(*out->v));
	out->n = 0;
	for (unsigned i = 0; i < n->n; i++) {
		char *ipath = xasprintf("%s[%u]", path, i);
		const char *s = want_string(ctx, n->kids[i], ipath,
					    ips ? "an IP address" : "a string");

		if (s && ips && !valid_ip(s, NULL)) {
			nerr(ctx, n->kids[i], ipath,
			     "'%s' is not an IP address", s);
			s = NULL;
		}
		if (s)
			out->v[out->n++] = xstrdup(s);
		else
			rc = -1;
		free(ipath);
	}
	return rc;
}

static void
strlist_release(struct config_strlist *l)
{
	for (unsigned i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
parse_secret(struct pctx *ctx, const struct ynode *n, const char *path,
	     struct config_secret *out)
{
	const struct ynode *f, *e;
	const char *s;

	if (n->kind == YN_BAD)
		return -1;
	if (n->kind == YN_SCALAR && !ynode_is_null(n)) {
		nerr(ctx, n, path,
		     "secrets are not written inline; use { file: PATH } or "
		     "{ env: NAME } so the value stays out of the "
		     "configuration file");
		return -1;
	}
	if (n->kind != YN_MAP) {
		nerr(ctx, n, path, "expected { file: PATH } or { env: NAME }, "
		     "got %s", ynode_describe(n));
		return -1;
	}
	for (unsigned i = 0; i + 1 < n->n; i += 2) {
		const struct ynode *k = n->kids[i];

		if (k->kind != YN_SCALAR || (strcmp(k->value, "file") != 0 &&
					     strcmp(k->value, "env") != 0)) {
			nerr(ctx, k, path,
			     "unknown key '%s' in a secret (use file or env)",
			     k->kind == YN_SCALAR ? k->value : "?");
			return -1;
		}
	}
	f = ymap_get(n, "file");
	e = ymap_get(n, "env");
	if ((f && e) || (!f && !e) || n->n != 2) {
		nerr(ctx, n, path, "give exactly one of file or env");
		return -1;
	}
	s = want_string(ctx, f ? f : e, path, f ? "a path" : "a variable name");
	if (!s)
		return -1;
	if (!*s) {
		nerr(ctx, f ? f : e, path, "%s must not be empty",
		     f ? "file" : "env");
		return -1;
	}
	if (e) {
		for (const char *p = s; *p; p++) {
			if (!isalnum((unsigned char)*p) && *p != '_') {
				nerr(ctx, e, path,
				     "'%s' is not an environment variable name",
				     s);
				return -1;
			}
		}
	}
	free(out->ref);
	free(out->path);
	out->source = f ? CONFIG_SECRET_FILE : CONFIG_SECRET_ENV;
	out->ref = xstrdup(s);
	out->path = NULL;
	if (f) {
		if (s[0] == '/' || !ctx->base_dir)
			out->path = xstrdup(s);
		else
			out->path = xasprintf("%s/%s", ctx->base_dir, s);
	}
	return 0;
}

static unsigned edit_distance(const char *a, const char *b);

/* Whether d is a plausible typo distance for a word of len characters. */
static bool
close_enough(unsigned d, size_t len)
{
	return d < len && (d <= 2 || d * 3 <= len);
}

/* The word of a NULL-terminated list nearest to s, if close enough. */
static const char *
nearest_word(const char *const *words, const char *s)
{
	const char *best = NULL;
	unsigned best_d = 100;

	for (; *words; words++) {
		unsigned d = edit_distance(s, *words);

		if (d < best_d) {
			best_d = d;
			best = *words;
		}
	}
	return best && close_enough(best_d, strlen(s)) ? best : NULL;
}

/* Parse one value of a non-section option into base. */
static int
parse_value(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	const char *s = NULL;
	double d;

	switch (o->type) {
	case T_SECTION:
	case T_CUSTOM:
	case T_SECRET:
	case T_STRLIST:
	case T_IPLIST:
	case T_NODE:
	case T_BOOL:
		break;
	default:
		s = want_string(ctx, n, path, value_desc(o));
		if (!s)
			return -1;
	}

	switch (o->type) {
	case T_STR:
	case T_PATH:
	case T_NAME:
	case T_URL:
		if (!*s) {
			nerr(ctx, n, path, "must not be empty");
			return -1;
		}
		if (n->plain && (in_list(s, bool_true) ||
				 in_list(s, bool_false))) {
			nerr(ctx, n, path,
			     "expected text, got the boolean '%s' (quote it if "
			     "you mean the text)", s);
			return -1;
		}
		for (size_t i = 0; i < n->len; i++) {
			unsigned char c = (unsigned char)n->value[i];

			/* they end in libvirt XML (which refuses them),
			 * cloud-init YAML or a URL: never what was meant */
			if (c < 0x20 || c == 0x7f) {
				nerr(ctx, n, path, "has the control character "
				     "0x%02X at offset %zu", c, i);
				return -1;
			}
		}
		if (o->type == T_NAME && !valid_name(s)) {
			nerr(ctx, n, path,
			     "'%s' is not a valid name (letters, digits, '.', "
			     "'_', '-'; starting with a letter or digit; at "
			     "most 63 characters)", s);
			return -1;
		}
		if (o->type == T_URL && url_check_http(s) != 0) {
			nerr(ctx, n, path, "%s", err_msg());
			return -1;
		}
		set_str(FIELD(base, o, char *), s);
		return 0;
	case T_BOOL:
		return parse_bool(ctx, n, path, FIELD(base, o, bool));
	case T_INT: {
		int64_t v;

		if (util_parse_int64(s, INT32_MIN, INT32_MAX, &v) != 0) {
			nerr(ctx, n, path, "'%s' is not a whole number", s);
			return -1;
		}
		if (check_bounds(ctx, n, o, path, (double)v) != 0)
			return -1;
		*FIELD(base, o, int) = (int)v;
		return 0;
	}
	case T_DOUBLE:
		if (!parse_double_text(s, &d)) {
			nerr(ctx, n, path, "'%s' is not a number", s);
			return -1;
		}
		if (check_bounds(ctx, n, o, path, d) != 0)
			return -1;
		*FIELD(base, o, double) = d;
		return 0;
	case T_DURATION: {
		int64_t v;

		if (util_parse_duration_ms(s, &v) != 0) {
			nerr(ctx, n, path, "%s", err_msg());
			return -1;
		}
		if (check_bounds(ctx, n, o, path, (double)v) != 0)
			return -1;
		*FIELD(base, o, int64_t) = v;
		return 0;
	}
	case T_SIZE:
	case T_SIZE_D: {
		uint64_t v;

		if (util_parse_size(s, &v) != 0) {
			nerr(ctx, n, path, "%s", err_msg());
			return -1;
		}
		if (check_bounds(ctx, n, o, path, (double)v) != 0)
			return -1;
		if (o->type == T_SIZE)
			*FIELD(base, o, uint64_t) = v;
		else
			*FIELD(base, o, double) = (double)v;
		return 0;
	}
	case T_PERCENT:
	case T_FRACTION:
		if (util_parse_percent(s, &d) != 0) {
			nerr(ctx, n, path, "%s", err_msg());
			return -1;
		}
		if (check_bounds(ctx, n, o, path, d) != 0)
			return -1;
		*FIELD(base, o, double) = o->type == T_FRACTION ? d / 100 : d;
		return 0;
	case T_ENUM:
		for (int i = 0; o->enums[i]; i++) {
			if (strcmp(o->enums[i], s) == 0) {
				*FIELD(base, o, int) = i;
				return 0;
			}
		}
		{
			struct strbuf sb = STRBUF_INIT;
			const char *near = nearest_word(o->enums, s);

			for (int i = 0; o->enums[i]; i++)
				strbuf_addf(&sb, "%s%s", i ? ", " : "",
					    o->enums[i]);
			if (near)
				strbuf_addf(&sb, " (did you mean '%s'?)", near);
			nerr(ctx, n, path, "'%s' is not one of %s", s,
			     strbuf_str(&sb));
			strbuf_release(&sb);
		}
		return -1;
	case T_SECRET:
		return parse_secret(ctx, n, path,
				    FIELD(base, o, struct config_secret));
	case T_STRLIST:
	case T_IPLIST:
		return parse_strlist(ctx, n, path,
				     FIELD(base, o, struct config_strlist),
				     o->type == T_IPLIST);
	case T_NODE:
		*FIELD(base, o, const struct ynode *) = n;
		return 0;
	case T_CUSTOM:
		if (n->kind == YN_BAD)
			return -1;
		return o->parse(ctx, n, base, o, path);
	case T_SECTION:
		return parse_section(ctx, n, o->sub, FIELD(base, o, char), path);
	}
	return -1;
}

/* Damerau (optimal string alignment) distance, for "did you mean". */
static unsigned
edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	unsigned *d;
	unsigned r;

	if (la > 64 || lb > 64)
		return 100;
	d = xcalloc((la + 1) * (lb + 1), sizeof(*d));
#define D(i, j) d[(i) * (lb + 1) + (j)]
	for (size_t i = 0; i <= la; i++)
		D(i, 0) = (unsigned)i;
	for (size_t j = 0; j <= lb; j++)
		D(0, j) = (unsigned)j;
	for (size_t i = 1; i <= la; i++) {
		for (size_t j = 1; j <= lb; j++) {
			unsigned cost = a[i - 1] != b[j - 1];
			unsigned v = D(i - 1, j) + 1;

			if (D(i, j - 1) + 1 < v)
				v = D(i, j - 1) + 1;
			if (D(i - 1, j - 1) + cost < v)
				v = D(i - 1, j - 1) + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] &&
			    a[i - 2] == b[j - 1] && D(i - 2, j - 2) + 1 < v)
				v = D(i - 2, j - 2) + 1;
			D(i, j) = v;
		}
	}
	r = D(la, lb);
#undef D
	free(d);
	return r;
}

static const char *
nearest_key(const struct section *sec, const char *key)
{
	const char *best = NULL;
	unsigned best_d = 100;
	size_t len = strlen(key);

	for (const struct opt *o = sec->opts; o->name; o++) {
		unsigned d = edit_distance(key, o->name);

		if (d < best_d) {
			best_d = d;
			best = o->name;
		}
	}
	return best && close_enough(best_d, len) ? best : NULL;
}

static char *
join_path(const char *path, const char *key)
{
	return path && *path ? xasprintf("%s.%s", path, key) : xstrdup(key);
}

static void
apply_defaults(const struct section *sec, void *base, bool deep)
{
	for (const struct opt *o = sec->opts; o->name; o++) {
		if (o->type == T_SECTION) {
			if (deep)
				apply_defaults(o->sub, FIELD(base, o, char),
					       true);
			continue;
		}
		if (!o->def)
			continue;
		{
			struct ynode fake = {
				.kind = YN_SCALAR, .line = 0, .col = 0,
				.plain = false, .value = (char *)o->def,
				.len = strlen(o->def),
			};
			struct pctx scratch = {.name = "defaults"};

			if (parse_value(&scratch, &fake, base, o, o->name) != 0 ||
			    scratch.n_errs)
				fatal("config: bad default '%s' for %s: %s",
				      o->def, o->name, scratch.errs[0].msg);
		}
	}
}

/*
 * A section not written in the file: defaults, then the checks that
 * derive values (an absent optional block stays absent).
 */
static void
absent_section(struct pctx *ctx, const struct section *sec, void *base,
	       const char *path)
{
	if (sec->present_off != NO_PRESENT) {
		apply_defaults(sec, base, true);
		return;
	}
	apply_defaults(sec, base, false);
	for (const struct opt *o = sec->opts; o->name; o++) {
		if (o->type == T_SECTION) {
			char *kpath = join_path(path, o->name);

			absent_section(ctx, o->sub, FIELD(base, o, char), kpath);
			free(kpath);
		}
	}
	if (sec->check)
		sec->check(ctx, NULL, base, path);
}

static int
parse_section(struct pctx *ctx, const struct ynode *n,
	      const struct section *sec, void *base, const char *path)
{
	const struct ynode *seen[64] = {NULL};
	unsigned n_opts = 0;
	int rc = 0;

	for (const struct opt *o = sec->opts; o->name; o++)
		n_opts++;
	if (n_opts > ARRAY_SIZE(seen))
		fatal("config: section %s has too many options", sec->name);

	apply_defaults(sec, base, false);
	if (sec->present_off != NO_PRESENT)
		*(bool *)(void *)((char *)base + sec->present_off) = true;

	if (n->kind == YN_BAD)
		return -1;
	if (n->kind != YN_MAP && !ynode_is_null(n)) {
		nerr(ctx, n, path, "expected a mapping (key: value lines), "
		     "got %s", ynode_describe(n));
		apply_defaults(sec, base, true);
		return -1;
	}

	for (unsigned i = 0; n->kind == YN_MAP && i + 1 < n->n; i += 2) {
		const struct ynode *k = n->kids[i], *v = n->kids[i + 1];
		const struct opt *o;
		unsigned idx = 0;
		char *kpath;

		if (k->kind != YN_SCALAR || ynode_is_null(k)) {
			if (k->kind != YN_BAD)
				nerr(ctx, k, path, "a key must be a plain word, "
				     "not %s", ynode_describe(k));
			rc = -1;
			continue;
		}
		for (o = sec->opts; o->name; o++, idx++)
			if (strcmp(o->name, k->value) == 0)
				break;
		if (!o->name) {
			/* suggestions only while they are still shown */
			const char *near = ctx->n_errs < MAX_ERRORS
						   ? nearest_key(sec, k->value)
						   : NULL;

			if (near)
				nerr(ctx, k, path,
				     "unknown key '%s' (did you mean '%s'?)",
				     k->value, near);
			else
				nerr(ctx, k, path, "unknown key '%s'",
				     k->value);
			rc = -1;
			continue;
		}
		kpath = join_path(path, o->name);
		if (seen[idx]) {
			nerr(ctx, k, kpath, "duplicate key (first given at "
			     "line %d)", seen[idx]->line);
			free(kpath);
			rc = -1;
			continue;
		}
		seen[idx] = k;
		if (parse_value(ctx, v, base, o, kpath) != 0)
			rc = -1;
		free(kpath);
	}

	/* Sub-sections not given get their defaults; required keys. */
	{
		unsigned idx = 0;

		for (const struct opt *o = sec->opts; o->name; o++, idx++) {
			if (seen[idx])
				continue;
			if (o->type == T_SECTION) {
				char *kpath = join_path(path, o->name);

				absent_section(ctx, o->sub, FIELD(base, o, char),
					       kpath);
				free(kpath);
			}
			if (o->flags & F_REQ) {
				nerr(ctx, n, path, "missing required key '%s'",
				     o->name);
				rc = -1;
			}
		}
	}
	if (sec->check)
		sec->check(ctx, n, base, path);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Printing                                                             */

static bool
looks_special(const char *s)
{
	static const char *const nulls[] = {"~", "null", "Null", "NULL", NULL};
	static const char *const other[] = {"y", "Y", "n", "N", NULL};

	return in_list(s, nulls) || in_list(s, bool_true) ||
	       in_list(s, bool_false) || in_list(s, other);
}

/*
 * A scalar as `check` prints it: plain when it is made of a few safe
 * characters and does not read as a YAML 1.1 null or boolean, else
 * double-quoted (quote_yaml(), shared with the seed). Not left to
 * libyaml's emitter to choose: it knows YAML's syntax but not which
 * words a reader turns into booleans, where it must quote it picks
 * single quotes, and it escapes every character beyond U+FFFF (quote.c);
 * the printed configuration keeps one short rule instead.
 */
static void
print_scalar(struct strbuf *out, const char *s)
{
	bool plain = *s && !looks_special(s) &&
		     (isalpha((unsigned char)s[0]) || s[0] == '/' ||
		      s[0] == '_');
	char *q;

	for (const char *p = s; plain && *p; p++) {
		unsigned char c = (unsigned char)*p;

		if (isalnum(c) || strchr("_./@+=-~", c))
			continue;
		if (c == ':' && p[1] && p[1] != ' ')
			continue;
		plain = false;
	}
	if (plain) {
		strbuf_adds(out, s);
		return;
	}
	/* Every string of a parsed configuration is UTF-8: check_utf8()
	 * and libyaml's reader refuse anything else. */
	q = quote_yaml(s);
	if (!q)
		fatal("config_print: %s", err_msg());
	strbuf_adds(out, q);
	free(q);
}

static void
indent_to(struct strbuf *out, int indent)
{
	for (int i = 0; i < indent; i++)
		strbuf_addc(out, ' ');
}

static void
print_strlist(struct strbuf *out, const struct config_strlist *l)
{
	strbuf_addc(out, '[');
	for (unsigned i = 0; i < l->n; i++) {
		if (i)
			strbuf_adds(out, ", ");
		print_scalar(out, l->v[i]);
	}
	strbuf_addc(out, ']');
}

/* Whether a value is "set" for F_OMIT. */
static bool
opt_is_set(const void *base, const struct opt *o)
{
	switch (o->type) {
	case T_STR:
	case T_PATH:
	case T_NAME:
	case T_URL:
		return *CFIELD(base, o, char *) != NULL;
	case T_BOOL:
		return *CFIELD(base, o, bool);
	case T_INT:
	case T_ENUM:
		return *CFIELD(base, o, int) != 0;
	case T_DOUBLE:
	case T_SIZE_D:
	case T_PERCENT:
	case T_FRACTION:
		return *CFIELD(base, o, double) != 0;
	case T_DURATION:
		return *CFIELD(base, o, int64_t) != 0;
	case T_SIZE:
		return *CFIELD(base, o, uint64_t) != 0;
	case T_SECRET:
		return CFIELD(base, o, struct config_secret)->source !=
		       CONFIG_SECRET_NONE;
	case T_STRLIST:
	case T_IPLIST:
		return CFIELD(base, o, struct config_strlist)->n > 0;
	default:
		return true;
	}
}

static void print_section(struct strbuf *out, const struct section *sec,
			  const void *base, int indent);

/* The value of a scalar option, as written in the file (no newline). */
static void
print_value(struct strbuf *out, const void *base, const struct opt *o)
{
	char *s = NULL;

	switch (o->type) {
	case T_STR:
	case T_PATH:
	case T_NAME:
	case T_URL: {
		const char *v = *CFIELD(base, o, char *);

		print_scalar(out, v ? v : "");
		return;
	}
	case T_BOOL:
		strbuf_adds(out, *CFIELD(base, o, bool) ? "true" : "false");
		return;
	case T_INT:
		strbuf_addf(out, "%d", *CFIELD(base, o, int));
		return;
	case T_DOUBLE:
		strbuf_addf(out, "%g", *CFIELD(base, o, double));
		return;
	case T_DURATION:
		s = util_format_duration(*CFIELD(base, o, int64_t));
		break;
	case T_SIZE:
		s = util_format_size(*CFIELD(base, o, uint64_t));
		break;
	case T_SIZE_D:
		s = util_format_size((uint64_t)*CFIELD(base, o, double));
		break;
	case T_PERCENT:
		s = util_format_percent(*CFIELD(base, o, double));
		break;
	case T_FRACTION:
		s = util_format_percent(*CFIELD(base, o, double) * 100);
		break;
	case T_ENUM:
		strbuf_adds(out, o->enums[*CFIELD(base, o, int)]);
		return;
	case T_SECRET: {
		const struct config_secret *sec =
			CFIELD(base, o, struct config_secret);

		if (sec->source == CONFIG_SECRET_NONE) {
			strbuf_adds(out, "null");
			return;
		}
		strbuf_adds(out, sec->source == CONFIG_SECRET_FILE ? "{ file: "
								    : "{ env: ");
		print_scalar(out, sec->ref);
		strbuf_adds(out, " }");
		return;
	}
	case T_STRLIST:
	case T_IPLIST:
		print_strlist(out, CFIELD(base, o, struct config_strlist));
		return;
	default:
		return;
	}
	strbuf_adds(out, s);
	free(s);
}

static void
print_opt(struct strbuf *out, const void *base, const struct opt *o,
	  int indent)
{
	if (o->show && !o->show(base))
		return;
	if ((o->flags & F_OMIT) && !opt_is_set(base, o))
		return;
	if (o->type == T_CUSTOM) {
		o->print(out, base, indent, o);
		return;
	}
	if (o->type == T_SECTION) {
		const void *sub = CFIELD(base, o, char);
		struct strbuf body = STRBUF_INIT;

		if (o->sub->present_off != NO_PRESENT &&
		    !*(const bool *)(const void *)((const char *)sub +
						   o->sub->present_off))
			return;
		print_section(&body, o->sub, sub, indent + 2);
		indent_to(out, indent);
		if (body.len)
			strbuf_addf(out, "%s:\n%s", o->name, body.buf);
		else
			strbuf_addf(out, "%s: {}\n", o->name);
		strbuf_release(&body);
		return;
	}
	indent_to(out, indent);
	strbuf_addf(out, "%s: ", o->name);
	print_value(out, base, o);
	strbuf_addc(out, '\n');
}

static void
print_section(struct strbuf *out, const struct section *sec,
	      const void *base, int indent)
{
	for (const struct opt *o = sec->opts; o->name; o++)
		print_opt(out, base, o, indent);
}

/*
 * Print a section as a list element: "- " in place of the indentation of
 * its first line.
 */
static void
print_list_item(struct strbuf *out, const struct section *sec,
		const void *base, int indent)
{
	struct strbuf body = STRBUF_INIT;

	print_section(&body, sec, base, indent + 2);
	if (body.len >= (size_t)indent + 2) {
		body.buf[indent] = '-';
		strbuf_add(out, body.buf, body.len);
	} else {
		indent_to(out, indent);
		strbuf_adds(out, "- {}\n");
	}
	strbuf_release(&body);
}

/* ------------------------------------------------------------------ */
/* Custom values                                                        */

/*
 * "HOST:PORT" or "[V6]:PORT" -> host (allocated) and port. Not read with
 * curl_url() behind a made-up scheme: it would take user info, a path and
 * a missing port, each of which a listen address must refuse, so the
 * checks would outnumber the parsing saved.
 */
static int
split_host_port(const char *s, char **host, int *port)
{
	const char *colon;
	int64_t p;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -1;
		colon = close + 1;
		*host = xstrndup(s + 1, (size_t)(close - s - 1));
	} else {
		colon = strrchr(s, ':');
		if (!colon || memchr(s, ':', (size_t)(colon - s)))
			return -1;
		*host = xstrndup(s, (size_t)(colon - s));
	}
	if (!**host || strchr(*host, ' ') ||
	    util_parse_int64(colon + 1, 1, 65535, &p) != 0 ||
	    colon[1] == '+' || colon[1] == '-') {
		free(*host);
		*host = NULL;
		return -1;
	}
	*port = (int)p;
	return 0;
}

static int
parse_listen(struct pctx *ctx, const struct ynode *n, void *base,
	     const struct opt *o, const char *path)
{
	struct config_daemon *d = base;
	const char *s = want_string(ctx, n, path, "HOST:PORT");
	char *host = NULL;
	int port;

	if (!s)
		return -1;
	if (split_host_port(s, &host, &port) != 0) {
		nerr(ctx, n, path, "'%s' is not HOST:PORT or [IPV6]:PORT with "
		     "a port from 1 to 65535", s);
		return -1;
	}
	set_str(&d->listen, s);
	free(d->listen_host);
	d->listen_host = host;
	d->listen_port = port;
	return 0;
}

static void
print_listen(struct strbuf *out, const void *base, int indent,
	     const struct opt *o)
{
	const struct config_daemon *d = base;

	indent_to(out, indent);
	strbuf_adds(out, "listen: ");
	print_scalar(out, d->listen);
	strbuf_addc(out, '\n');
}

static void
state_release(struct config_state *st)
{
	free(st->url);
	free(st->path);
	free(st->user);
	free(st->host);
	free(st->database);
	free(st->socket);
	memset(st, 0, sizeof(*st));
}

/*
 * By hand, not with libcurl's URL API (curl_url() with
 * CURLU_NON_SUPPORT_SCHEME): curl reads "sqlite:///var/lib/x.db" as the
 * host "var" and the path "/x.db", and for mysql:// it drops an empty
 * port ("h:/db") without a word and takes port 0, a fragment and a path
 * of several segments, each of which would need a check of its own after
 * the call. The store reads the same URL again when it opens it
 * (store_url_check(), src/store/mysql.c).
 */
static int
parse_state(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	struct config_state *st = FIELD(base, o, struct config_state);
	struct config_state nst = {0};
	const char *s = want_string(ctx, n, path, "a state URL");

	if (!s)
		return -1;
	if (strncmp(s, "sqlite://", 9) == 0) {
		nst.kind = CONFIG_STATE_SQLITE;
		if (s[9] != '/' || s[10] == '\0' || s[strlen(s) - 1] == '/') {
			nerr(ctx, n, path,
			     "'%s': write sqlite:///ABSOLUTE/PATH/state.db", s);
			return -1;
		}
		nst.path = xstrdup(s + 9);
	} else if (strncmp(s, "mysql://", 8) == 0) {
		const char *p = s + 8;
		const char *at, *slash, *q;
		char *hostport;

		nst.kind = CONFIG_STATE_MYSQL;
		slash = strchr(p, '/');
		if (!slash || !slash[1]) {
			nerr(ctx, n, path, "'%s': write mysql://[USER@]HOST"
			     "[:PORT]/DATABASE[?socket=PATH]", s);
			return -1;
		}
		at = memchr(p, '@', (size_t)(slash - p));
		if (at) {
			if (memchr(p, ':', (size_t)(at - p))) {
				nerr(ctx, n, path, "no password in the URL: "
				     "use daemon.state_password");
				return -1;
			}
			if (at == p) {
				nerr(ctx, n, path, "'%s': empty user name", s);
				return -1;
			}
			nst.user = xstrndup(p, (size_t)(at - p));
			p = at + 1;
		}
		hostport = xstrndup(p, (size_t)(slash - p));
		if (strchr(hostport, ':')) {
			if (split_host_port(hostport, &nst.host, &nst.port)) {
				nerr(ctx, n, path, "'%s': bad HOST:PORT '%s'",
				     s, hostport);
				free(hostport);
				state_release(&nst);
				return -1;
			}
			free(hostport);
		} else {
			nst.host = hostport;
		}
		q = strchr(slash + 1, '?');
		nst.database = q ? xstrndup(slash + 1, (size_t)(q - slash - 1))
				 : xstrdup(slash + 1);
		if (!nst.host[0] || !nst.database[0] ||
		    strchr(nst.database, '/')) {
			nerr(ctx, n, path, "'%s': write mysql://[USER@]HOST"
			     "[:PORT]/DATABASE[?socket=PATH]", s);
			state_release(&nst);
			return -1;
		}
		if (q) {
			if (strncmp(q, "?socket=/", 9) != 0) {
				nerr(ctx, n, path, "'%s': the only parameter "
				     "is ?socket=ABSOLUTE_PATH", s);
				state_release(&nst);
				return -1;
			}
			nst.socket = xstrdup(q + 8);
		}
	} else {
		nerr(ctx, n, path, "'%s' is not sqlite:///PATH or "
		     "mysql://[USER@]HOST[:PORT]/DATABASE", s);
		return -1;
	}
	nst.url = xstrdup(s);
	state_release(st);
	*st = nst;
	return 0;
}

static void
print_state(struct strbuf *out, const void *base, int indent,
	    const struct opt *o)
{
	indent_to(out, indent);
	strbuf_adds(out, "state: ");
	print_scalar(out, CFIELD(base, o, struct config_state)->url);
	strbuf_addc(out, '\n');
}

static int
parse_placement(struct pctx *ctx, const struct ynode *n, void *base,
		const struct opt *o, const char *path)
{
	static const char *const names[] = {"round-robin", "most-free",
					    "fill-first", NULL};
	struct config_group *g = base;
	const char *s = want_string(ctx, n, path, "a placement strategy");

	if (!s)
		return -1;
	for (int i = 0; names[i]; i++) {
		if (strcmp(s, names[i]) == 0) {
			g->placement = (enum config_placement)i;
			set_str(&g->placement_plugin, NULL);
			return 0;
		}
	}
	if (strncmp(s, "plugin:", 7) == 0) {
		if (s[7] != '/') {
			nerr(ctx, n, path, "the plugin path must be absolute "
			     "(plugin:/path/to/strategy.so), got '%s'", s + 7);
			return -1;
		}
		g->placement = CONFIG_PLACEMENT_PLUGIN;
		set_str(&g->placement_plugin, s + 7);
		return 0;
	}
	{
		const char *near = nearest_word(names, s);

		nerr(ctx, n, path, "'%s' is not one of round-robin, most-free, "
		     "fill-first, plugin:/PATH.so%s%s%s", s,
		     near ? " (did you mean '" : "", near ? near : "",
		     near ? "'?)" : "");
	}
	return -1;
}

static void
print_placement(struct strbuf *out, const void *base, int indent,
		const struct opt *o)
{
	static const char *const names[] = {"round-robin", "most-free",
					    "fill-first"};
	const struct config_group *g = base;

	indent_to(out, indent);
	strbuf_adds(out, "placement: ");
	if (g->placement == CONFIG_PLACEMENT_PLUGIN) {
		char *s = xasprintf("plugin:%s", g->placement_plugin);

		print_scalar(out, s);
		free(s);
	} else {
		strbuf_adds(out, names[g->placement]);
	}
	strbuf_addc(out, '\n');
}

static int
parse_kvmap(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	struct config_kvlist *l = FIELD(base, o, struct config_kvlist);
	int rc = 0;

	if (ynode_is_null(n))
		return 0;
	if (n->kind != YN_MAP) {
		nerr(ctx, n, path, "expected a mapping of names to strings, "
		     "got %s", ynode_describe(n));
		return -1;
	}
	if (n->n / 2 > MAX_OPTIONS) {
		nerr(ctx, n, path, "more than %d options", MAX_OPTIONS);
		return -1;
	}
	l->v = xcalloc(n->n / 2 + 1, sizeof(*l->v));
	for (unsigned i = 0; i + 1 < n->n; i += 2) {
		const struct ynode *k = n->kids[i], *v = n->kids[i + 1];
		const char *ks = want_string(ctx, k, path, "a key");
		const char *vs;
		char *kpath;
		bool dup = false;

		if (!ks) {
			rc = -1;
			continue;
		}
		kpath = join_path(path, ks);
		for (unsigned j = 0; j + 1 < i; j += 2)
			if (n->kids[j]->kind == YN_SCALAR &&
			    strcmp(n->kids[j]->value, ks) == 0) {
				nerr(ctx, k, kpath, "duplicate key (first given "
				     "at line %d)", n->kids[j]->line);
				dup = true;
				break;
			}
		vs = dup ? NULL : want_string(ctx, v, kpath, "a string");
		if (vs) {
			l->v[l->n].key = xstrdup(ks);
			l->v[l->n].value = xstrdup(vs);
			l->n++;
		} else {
			rc = -1;
		}
		free(kpath);
	}
	return rc;
}

static void
print_kvmap(struct strbuf *out, const void *base, int indent,
	    const struct opt *o)
{
	const struct config_kvlist *l = CFIELD(base, o, struct config_kvlist);

	if (!l->n)
		return;
	indent_to(out, indent);
	strbuf_addf(out, "%s:\n", o->name);
	for (unsigned i = 0; i < l->n; i++) {
		indent_to(out, indent + 2);
		print_scalar(out, l->v[i].key);
		strbuf_adds(out, ": ");
		print_scalar(out, l->v[i].value);
		strbuf_addc(out, '\n');
	}
}

static void
kvlist_release(struct config_kvlist *l)
{
	for (unsigned i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int
parse_range(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	struct config_static_addresses *sa = base;
	const char *s = want_string(ctx, n, path, "FIRST-LAST");
	const char *dash;
	char *a, *b;
	int fa, fb;

	if (!s)
		return -1;
	dash = strchr(s, '-');
	if (!dash) {
		nerr(ctx, n, path, "'%s' is not a range FIRST-LAST "
		     "(10.0.0.10-10.0.0.50)", s);
		return -1;
	}
	a = xstrndup(s, (size_t)(dash - s));
	b = xstrdup(dash + 1);
	if (!valid_ip(a, &fa) || !valid_ip(b, &fb) || fa != fb) {
		nerr(ctx, n, path, "'%s' is not a range of two addresses of "
		     "the same family (10.0.0.10-10.0.0.50)", s);
		free(a);
		free(b);
		return -1;
	}
	{
		unsigned char x[16], y[16], d[16];
		size_t alen = fa == AF_INET ? 4 : 16;
		int borrow = 0;
		uint64_t cnt = 0;

		inet_pton(fa, a, x);
		inet_pton(fa, b, y);
		if (memcmp(x, y, alen) > 0) {
			nerr(ctx, n, path, "'%s': the first address is after "
			     "the last", s);
			free(a);
			free(b);
			return -1;
		}
		/* y - x, byte by byte with borrow */
		for (size_t i = alen; i-- > 0;) {
			int v = (int)y[i] - (int)x[i] - borrow;

			borrow = v < 0;
			d[i] = (unsigned char)(v < 0 ? v + 256 : v);
		}
		for (size_t i = 0; i < alen; i++) {
			if (i + 4 < alen && d[i]) {
				cnt = UINT32_MAX; /* saturate: plenty */
				break;
			}
			cnt = cnt * 256 + d[i];
		}
		sa->count = cnt + 1;
	}
	set_str(&sa->range, s);
	free(sa->first);
	free(sa->last);
	sa->first = a;
	sa->last = b;
	sa->family = fa;
	return 0;
}

static void
print_range(struct strbuf *out, const void *base, int indent,
	    const struct opt *o)
{
	const struct config_static_addresses *sa = base;

	indent_to(out, indent);
	strbuf_adds(out, "range: ");
	print_scalar(out, sa->range ? sa->range : "");
	strbuf_addc(out, '\n');
}

static int
parse_gateway(struct pctx *ctx, const struct ynode *n, void *base,
	      const struct opt *o, const char *path)
{
	const char *s = want_string(ctx, n, path, "an IP address");

	if (!s)
		return -1;
	if (!valid_ip(s, NULL)) {
		nerr(ctx, n, path, "'%s' is not an IP address", s);
		return -1;
	}
	set_str(FIELD(base, o, char *), s);
	return 0;
}

static void
print_gateway(struct strbuf *out, const void *base, int indent,
	      const struct opt *o)
{
	const char *s = *CFIELD(base, o, char *);

	if (!s)
		return;
	indent_to(out, indent);
	strbuf_addf(out, "%s: ", o->name);
	print_scalar(out, s);
	strbuf_addc(out, '\n');
}

/* ---- steps ---- */

struct step_raw {
	char *metric;
	char *app;
	const struct ynode *above, *below;
	int64_t for_ms;
	char *change;
	int min_step;
};

static const struct opt step_opts[] = {
	{.name = "metric", .type = T_STR, .off = offsetof(struct step_raw, metric),
	 .flags = F_RELOAD, .defdoc = "none (give metric or app)",
	 .doc = "cpu, memory, disk_iops, disk_bytes or net_bytes"},
	{.name = "app", .type = T_STR, .off = offsetof(struct step_raw, app),
	 .flags = F_RELOAD, .defdoc = "none (give metric or app)",
	 .doc = "instead of metric: an application metric the guests report "
		"in their heartbeats (1-63 of A-Za-z0-9_.); the group's mean, "
		"or its total for a target's kind: total"},
	{.name = "above", .type = T_NODE, .off = offsetof(struct step_raw, above),
	 .flags = F_RELOAD, .type_name = "threshold",
	 .defdoc = "none (give above or below)",
	 .doc = "the rule fires while the metric is above this value "
		"(60% for cpu/memory, a number for disk_iops, a size for "
		"disk_bytes/net_bytes, per second)"},
	{.name = "below", .type = T_NODE, .off = offsetof(struct step_raw, below),
	 .flags = F_RELOAD, .type_name = "threshold",
	 .defdoc = "none (give above or below)",
	 .doc = "the rule fires while the metric is below this value"},
	{.name = "for", .type = T_DURATION, .off = offsetof(struct step_raw, for_ms),
	 .flags = F_RELOAD, .min = 0, .max = 86400000, .def = "0s",
	 .doc = "how long the condition must hold"},
	{.name = "change", .type = T_STR, .off = offsetof(struct step_raw, change),
	 .flags = F_REQ | F_RELOAD, .type_name = "change",
	 .doc = "+N or -N instances, or +P% / -P% of the current size"},
	{.name = "min_step", .type = T_INT, .off = offsetof(struct step_raw, min_step),
	 .flags = F_RELOAD, .min = 1, .max = 1000, .def = "1",
	 .doc = "with a percentage change: change at least this many instances"},
	{0},
};
static const struct section step_section = {"step", step_opts, NO_PRESENT,
					    NULL};

static int
parse_threshold(struct pctx *ctx, const struct ynode *n, enum policy_metric m,
		const char *path, double *out)
{
	const char *s = want_string(ctx, n, path, "a threshold");
	uint64_t sz;

	if (!s)
		return -1;
	if (policy_metric_is_percent(m)) {
		if (util_parse_percent(s, out) != 0) {
			nerr(ctx, n, path, "%s", err_msg());
			return -1;
		}
		if (*out > 100) {
			nerr(ctx, n, path, "%s is out of range (0%%..100%%)", s);
			return -1;
		}
		return 0;
	}
	if (m == POLICY_METRIC_DISK_IOPS) {
		if (!parse_double_text(s, out) || *out < 0) {
			nerr(ctx, n, path, "'%s' is not a number of operations "
			     "per second", s);
			return -1;
		}
		return 0;
	}
	if (util_parse_size(s, &sz) != 0) {
		nerr(ctx, n, path, "%s (bytes per second)", err_msg());
		return -1;
	}
	*out = (double)sz;
	return 0;
}

/* An app metric's threshold: a plain number, 0..POLICY_APP_VALUE_MAX. */
static int
parse_app_threshold(struct pctx *ctx, const struct ynode *n, const char *path,
		    double *out)
{
	const char *s = want_string(ctx, n, path, "a threshold");

	if (!s)
		return -1;
	if (!parse_double_text(s, out) || *out < 0 ||
	    *out > POLICY_APP_VALUE_MAX) {
		nerr(ctx, n, path, "'%s' is not a number from 0 to %g (an "
		     "application metric's threshold, in its own unit)", s,
		     POLICY_APP_VALUE_MAX);
		return -1;
	}
	return 0;
}

static char *
format_threshold(enum policy_metric m, double v)
{
	if (policy_metric_is_percent(m))
		return util_format_percent(v);
	if (m == POLICY_METRIC_DISK_IOPS)
		return xasprintf("%g", v);
	return util_format_size((uint64_t)v);
}

static int
parse_change(const char *s, int *change, double *pct)
{
	size_t len = strlen(s);
	int64_t v;

	if (len < 2 || (s[0] != '+' && s[0] != '-'))
		return -1;
	if (s[len - 1] == '%') {
		double d;

		if (util_parse_percent(s + 1, &d) != 0 || d == 0 || d > 1000)
			return -1;
		if (s[0] == '-' && d > 100)
			return -1;
		*pct = s[0] == '-' ? -d : d;
		*change = 0;
		return 0;
	}
	if (!isdigit((unsigned char)s[1]) ||
	    util_parse_int64(s + 1, 1, 1000, &v) != 0)
		return -1;
	*change = s[0] == '-' ? -(int)v : (int)v;
	*pct = 0;
	return 0;
}

/*
 * The index of app metric name in p->app, added (kind average, no
 * target) when new; -1 with an error at n when the name is bad or the
 * policy names too many.
 */
static int
app_register(struct pctx *ctx, const struct ynode *n, const char *path,
	     struct policy_params *p, const char *name)
{
	int i;

	if (!policy_app_name_ok(name)) {
		nerr(ctx, n, path, "'%s' is not an application metric name: "
		     "1-63 of A-Za-z0-9_. (what a heartbeat accepts)", name);
		return -1;
	}
	i = policy_app_find(p, name);
	if (i >= 0)
		return i;
	if (p->n_app >= POLICY_APP_MAX) {
		nerr(ctx, n, path, "more than %d application metrics in one "
		     "group's policy", POLICY_APP_MAX);
		return -1;
	}
	snprintf(p->app[p->n_app].name, sizeof(p->app[0].name), "%s", name);
	p->app[p->n_app].kind = POLICY_APP_AVERAGE;
	p->app[p->n_app].target = 0;
	return (int)p->n_app++;
}

static int
parse_steps(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	struct policy_params *p = base;
	int rc = 0;

	if (n->kind != YN_SEQ) {
		nerr(ctx, n, path, "expected a list of step rules, got %s",
		     ynode_describe(n));
		return -1;
	}
	if (n->n > MAX_RULES) {
		nerr(ctx, n, path, "more than %d step rules", MAX_RULES);
		return -1;
	}
	free(p->steps);
	p->steps = xcalloc(n->n + 1, sizeof(*p->steps));
	p->n_steps = 0;
	for (unsigned i = 0; i < n->n; i++) {
		const struct ynode *item = n->kids[i];
		struct step_raw raw = {0};
		struct policy_step st = {0};
		char *ipath = xasprintf("%s[%u]", path, i);
		char *sub;
		int ok = parse_section(ctx, item, &step_section, &raw, ipath);

		if (ok == 0 && !!raw.metric == !!raw.app) {
			nerr(ctx, item, ipath, "give exactly one of metric or "
			     "app");
			ok = -1;
		}
		if (ok == 0 && raw.app) {
			int a;

			sub = join_path(ipath, "app");
			a = app_register(ctx, ymap_get(item, "app"), sub, p,
					 raw.app);
			free(sub);
			if (a < 0)
				ok = -1;
			else
				st.app = (unsigned)a + 1;
		} else if (ok == 0 && policy_metric_from_name(raw.metric,
							       &st.metric) != 0) {
			sub = join_path(ipath, "metric");
			nerr(ctx, ymap_get(item, "metric"), sub, "%s",
			     err_msg());
			free(sub);
			ok = -1;
		}
		if (ok == 0 && !!raw.above == !!raw.below) {
			nerr(ctx, item, ipath, "give exactly one of above or "
			     "below");
			ok = -1;
		}
		if (ok == 0) {
			st.dir = raw.above ? POLICY_STEP_ABOVE
					   : POLICY_STEP_BELOW;
			sub = join_path(ipath, raw.above ? "above" : "below");
			if (st.app ? parse_app_threshold(ctx, raw.above
							   ? raw.above : raw.below,
							 sub, &st.threshold)
				   : parse_threshold(ctx, raw.above ? raw.above
								    : raw.below,
						     st.metric, sub,
						     &st.threshold))
				ok = -1;
			free(sub);
		}
		if (raw.change && parse_change(raw.change, &st.change,
					       &st.change_pct) != 0) {
			sub = join_path(ipath, "change");
			nerr(ctx, ymap_get(item, "change"), sub,
			     "'%s' is not a change: write +N or -N (1..1000 "
			     "instances) or +P%% / -P%% of the group's size",
			     raw.change);
			free(sub);
			ok = -1;
		}
		if (ok == 0 && st.change_pct == 0 &&
		    ymap_get(item, "min_step")) {
			sub = join_path(ipath, "min_step");
			nerr(ctx, ymap_key(item, "min_step"), sub,
			     "only applies to a percentage change");
			free(sub);
			ok = -1;
		}
		st.for_ms = raw.for_ms;
		st.min_step = raw.min_step;
		if (ok == 0)
			p->steps[p->n_steps++] = st;
		else
			rc = -1;
		free(raw.metric);
		free(raw.app);
		free(raw.change);
		free(ipath);
	}
	return rc;
}

static void
print_steps(struct strbuf *out, const void *base, int indent,
	    const struct opt *o)
{
	const struct policy_params *p = base;

	if (!p->n_steps)
		return;
	indent_to(out, indent);
	strbuf_adds(out, "steps:\n");
	for (unsigned i = 0; i < p->n_steps; i++) {
		const struct policy_step *st = &p->steps[i];
		char *thr = format_threshold(st->metric, st->threshold);
		char *dur = util_format_duration(st->for_ms);

		indent_to(out, indent + 2);
		if (st->app && st->app <= p->n_app) {
			free(thr);
			thr = xasprintf("%g", st->threshold);
			strbuf_addf(out, "- app: %s\n", p->app[st->app - 1].name);
		} else {
			strbuf_addf(out, "- metric: %s\n",
				    policy_metric_name(st->metric));
		}
		indent_to(out, indent + 4);
		strbuf_addf(out, "%s: %s\n",
			    st->dir == POLICY_STEP_ABOVE ? "above" : "below",
			    thr);
		indent_to(out, indent + 4);
		strbuf_addf(out, "for: %s\n", dur);
		indent_to(out, indent + 4);
		if (st->change_pct != 0) {
			char *pct = util_format_percent(fabs(st->change_pct));

			strbuf_addf(out, "change: %c%s\n",
				    st->change_pct < 0 ? '-' : '+', pct);
			indent_to(out, indent + 4);
			strbuf_addf(out, "min_step: %d\n", st->min_step);
			free(pct);
		} else {
			strbuf_addf(out, "change: %+d\n", st->change);
		}
		free(thr);
		free(dur);
	}
}

/* ---- schedules ---- */

struct sched_raw {
	char *name;
	char *when;
	int min, max;
};

static const struct opt sched_opts[] = {
	{.name = "name", .type = T_NAME, .off = offsetof(struct sched_raw, name),
	 .flags = F_REQ | F_RELOAD, .doc = "names the schedule in reasons and logs"},
	{.name = "when", .type = T_STR, .off = offsetof(struct sched_raw, when),
	 .flags = F_REQ | F_RELOAD, .type_name = "cron",
	 .doc = "local-time window \"MINUTE HOUR DAY MONTH WEEKDAY\" "
		"(*, N, N-M, a,b, */S; weekdays also mon-fri)"},
	{.name = "min", .type = T_INT, .off = offsetof(struct sched_raw, min),
	 .flags = F_RELOAD, .min = 0, .max = 1000,
	 .defdoc = "the group's min", .doc = "the group's min while the window is open"},
	{.name = "max", .type = T_INT, .off = offsetof(struct sched_raw, max),
	 .flags = F_RELOAD, .min = 0, .max = 1000,
	 .defdoc = "the group's max", .doc = "the group's max while the window is open"},
	{0},
};
static const struct section sched_section = {"schedule", sched_opts,
					     NO_PRESENT, NULL};

static int
parse_schedules(struct pctx *ctx, const struct ynode *n, void *base,
		const struct opt *o, const char *path)
{
	struct policy_params *p = base;
	int rc = 0;

	if (n->kind != YN_SEQ) {
		nerr(ctx, n, path, "expected a list of schedules, got %s",
		     ynode_describe(n));
		return -1;
	}
	if (n->n > MAX_RULES) {
		nerr(ctx, n, path, "more than %d schedules", MAX_RULES);
		return -1;
	}
	for (unsigned i = 0; i < p->n_schedules; i++)
		free(p->schedules[i].name);
	free(p->schedules);
	p->schedules = xcalloc(n->n + 1, sizeof(*p->schedules));
	p->n_schedules = 0;
	for (unsigned i = 0; i < n->n; i++) {
		const struct ynode *item = n->kids[i];
		struct sched_raw raw = {.min = -1, .max = -1};
		struct policy_schedule sc = {0};
		char *ipath = xasprintf("%s[%u]", path, i);
		int ok = parse_section(ctx, item, &sched_section, &raw, ipath);

		if (raw.when && policy_cron_parse(raw.when, &sc.when) != 0) {
			char *sub = join_path(ipath, "when");

			nerr(ctx, ymap_get(item, "when"), sub, "%s", err_msg());
			free(sub);
			ok = -1;
		}
		if (ok == 0 && raw.min < 0 && raw.max < 0) {
			nerr(ctx, item, ipath, "give min, max or both");
			ok = -1;
		}
		if (ok == 0 && raw.min >= 0 && raw.max >= 0 &&
		    raw.min > raw.max) {
			nerr(ctx, ymap_get(item, "min"), ipath,
			     "min %d is more than max %d", raw.min, raw.max);
			ok = -1;
		}
		if (raw.name) {
			for (unsigned j = 0; j < p->n_schedules; j++) {
				if (strcmp(p->schedules[j].name, raw.name) == 0) {
					nerr(ctx, ymap_get(item, "name"), ipath,
					     "duplicate schedule name '%s'",
					     raw.name);
					ok = -1;
				}
			}
		}
		if (ok == 0) {
			sc.name = raw.name;
			raw.name = NULL;
			sc.min = raw.min;
			sc.max = raw.max;
			p->schedules[p->n_schedules++] = sc;
		} else {
			rc = -1;
		}
		free(raw.name);
		free(raw.when);
		free(ipath);
	}
	return rc;
}

/* The cron text is not kept by policy_cron_parse: print from the bits. */
/*
 * star_ok: a full range may be written "*". Not for day-of-month and
 * day-of-week unless they were "*": cron treats an explicit full range
 * there differently (either day field matching is enough).
 */
static void
cron_field(struct strbuf *out, uint64_t bits, int lo, int hi, bool any,
	   bool star_ok)
{
	bool first = true;

	if (any) {
		strbuf_addc(out, '*');
		return;
	}
	for (int i = lo; i <= hi; i++) {
		int j = i;

		if (!(bits & (1ULL << i)))
			continue;
		while (j + 1 <= hi && (bits & (1ULL << (j + 1))))
			j++;
		if (i == lo && j == hi && star_ok) {
			strbuf_addc(out, '*');
			return;
		}
		strbuf_addf(out, first ? "%d" : ",%d", i);
		if (j > i)
			strbuf_addf(out, "-%d", j);
		first = false;
		i = j;
	}
}

static char *
cron_format(const struct policy_cron *c)
{
	struct strbuf sb = STRBUF_INIT;

	cron_field(&sb, c->minutes, 0, 59, false, true);
	strbuf_addc(&sb, ' ');
	cron_field(&sb, c->hours, 0, 23, false, true);
	strbuf_addc(&sb, ' ');
	cron_field(&sb, c->mdays, 1, 31, c->mday_any, false);
	strbuf_addc(&sb, ' ');
	cron_field(&sb, c->months, 1, 12, false, true);
	strbuf_addc(&sb, ' ');
	cron_field(&sb, c->wdays, 0, 6, c->wday_any, false);
	return strbuf_detach(&sb);
}

static void
print_schedules(struct strbuf *out, const void *base, int indent,
		const struct opt *o)
{
	const struct policy_params *p = base;

	if (!p->n_schedules)
		return;
	indent_to(out, indent);
	strbuf_adds(out, "schedules:\n");
	for (unsigned i = 0; i < p->n_schedules; i++) {
		const struct policy_schedule *sc = &p->schedules[i];
		char *when = cron_format(&sc->when);

		indent_to(out, indent + 2);
		strbuf_adds(out, "- name: ");
		print_scalar(out, sc->name);
		strbuf_addc(out, '\n');
		indent_to(out, indent + 4);
		strbuf_adds(out, "when: ");
		print_scalar(out, when);
		strbuf_addc(out, '\n');
		if (sc->min >= 0) {
			indent_to(out, indent + 4);
			strbuf_addf(out, "min: %d\n", sc->min);
		}
		if (sc->max >= 0) {
			indent_to(out, indent + 4);
			strbuf_addf(out, "max: %d\n", sc->max);
		}
		free(when);
	}
}

/* ------------------------------------------------------------------ */
/* The tables                                                           */

#define SEC 1000.0
#define MIN (60 * SEC)
#define HOUR (60 * MIN)
#define DAY (24 * HOUR)
#define KIB 1024.0
#define MIB (1024 * KIB)
#define GIB (1024 * MIB)
#define TIB (1024 * GIB)

static const char *const log_levels[] = {"error", "warn", "info", "debug",
					 NULL};
static const char *const log_formats[] = {"auto", "journal", "plain", NULL};
static const char *const domain_types[] = {"kvm", "qemu", NULL};
static const char *const scale_in_orders[] = {"newest", "oldest",
					      "busiest-host-first", NULL};

static void check_tls(struct pctx *, const struct ynode *, void *,
		      const char *);
static void check_influxdb(struct pctx *, const struct ynode *, void *,
			   const char *);
static void check_daemon(struct pctx *, const struct ynode *, void *,
			 const char *);
static void check_host(struct pctx *, const struct ynode *, void *,
		       const char *);
static void check_template(struct pctx *, const struct ynode *, void *,
			   const char *);
static void check_cloud_init(struct pctx *, const struct ynode *, void *,
			     const char *);
static void check_static(struct pctx *, const struct ynode *, void *,
			 const char *);
static void check_limit(struct pctx *, const struct ynode *, void *,
			const char *);
static void check_group(struct pctx *, const struct ynode *, void *,
			const char *);
static void check_root(struct pctx *, const struct ynode *, void *,
		       const char *);
static int parse_hosts(struct pctx *, const struct ynode *, void *,
		       const struct opt *, const char *);
static void print_hosts(struct strbuf *, const void *, int,
			const struct opt *);
static int parse_groups(struct pctx *, const struct ynode *, void *,
			const struct opt *, const char *);
static void print_groups(struct strbuf *, const void *, int,
			 const struct opt *);

#define R F_RELOAD

static const struct opt tls_opts[] = {
	{.name = "cert", .type = T_PATH, .off = offsetof(struct config_tls, cert),
	 .flags = F_REQ, .doc = "PEM certificate chain served by the HTTP API"},
	{.name = "key", .type = T_PATH, .off = offsetof(struct config_tls, key),
	 .flags = F_REQ, .doc = "PEM private key of the certificate"},
	{.name = "ca", .type = T_PATH, .off = offsetof(struct config_tls, ca),
	 .flags = F_OMIT | R, .defdoc = "the system's CA certificates",
	 .doc = "PEM CA certificate(s) the command-line client verifies the "
		"daemon's certificate with (a self-signed certificate: itself); "
		"not used by the daemon"},
	{0},
};
static const struct section tls_section = {
	"tls", tls_opts, offsetof(struct config_tls, present), check_tls};

static const struct opt http_opts[] = {
	{.name = "max_body", .type = T_SIZE,
	 .off = offsetof(struct config_http, max_body), .min = KIB,
	 .max = 16 * MIB, .def = "64KiB",
	 .doc = "largest request body accepted"},
	{.name = "max_connections", .type = T_INT,
	 .off = offsetof(struct config_http, max_connections), .min = 1,
	 .max = 65536, .def = "256", .doc = "concurrent connections"},
	{.name = "timeout", .type = T_DURATION,
	 .off = offsetof(struct config_http, timeout_ms), .min = SEC,
	 .max = 10 * MIN, .def = "10s",
	 .doc = "a connection idle this long is closed"},
	{.name = "max_connections_per_address", .type = T_INT,
	 .off = offsetof(struct config_http, max_per_address), .min = 1,
	 .max = 65536, .def = "64",
	 .doc = "concurrent connections from one client address (under QEMU user networking every guest is 127.0.0.1)"},
	{.name = "request_timeout", .type = T_DURATION,
	 .off = offsetof(struct config_http, request_timeout_ms), .min = SEC,
	 .max = 10 * MIN, .def = "10s",
	 .doc = "a request (headers and body) must arrive within this long of the connection or of the previous request"},
	{0},
};
static const struct section http_section = {"http", http_opts, NO_PRESENT,
					    NULL};

static const struct opt influxdb_opts[] = {
	{.name = "url", .type = T_URL, .off = offsetof(struct config_influxdb, url),
	 .flags = F_REQ, .doc = "base URL of the InfluxDB 1.x HTTP API"},
	{.name = "database", .type = T_STR,
	 .off = offsetof(struct config_influxdb, database),
	 .def = "autoscaler", .doc = "database the samples are written to"},
	{.name = "username", .type = T_STR,
	 .off = offsetof(struct config_influxdb, username), .flags = F_OMIT,
	 .defdoc = "none (no authentication)", .doc = "user to authenticate as"},
	{.name = "password", .type = T_SECRET,
	 .off = offsetof(struct config_influxdb, password), .flags = F_OMIT,
	 .defdoc = "none", .doc = "password of username: { file: PATH } or { env: NAME }"},
	{.name = "batch", .type = T_INT, .off = offsetof(struct config_influxdb, batch),
	 .min = 1, .max = 100000, .def = "500",
	 .doc = "samples sent per write request"},
	{.name = "buffer", .type = T_INT,
	 .off = offsetof(struct config_influxdb, buffer), .min = 1,
	 .max = 10000000, .def = "10000",
	 .doc = "samples kept while InfluxDB is unreachable (oldest dropped first)"},
	{.name = "timeout", .type = T_DURATION,
	 .off = offsetof(struct config_influxdb, timeout_ms), .min = 100,
	 .max = 5 * MIN, .def = "5s", .doc = "timeout of one write request"},
	{0},
};
static const struct section influxdb_section = {
	"influxdb", influxdb_opts, offsetof(struct config_influxdb, present),
	check_influxdb};

static const struct opt metrics_opts[] = {
	{.name = "retention", .type = T_DURATION,
	 .off = offsetof(struct config_metrics, retention_ms),
	 .min = MIN, .max = 30 * DAY, .def = "15m",
	 .doc = "how long the built-in store keeps samples (7 to 21 bytes per "
		"instance and collection; at least every group's "
		"scaling.interval)"},
	{.name = "influxdb", .type = T_SECTION,
	 .off = offsetof(struct config_metrics, influxdb),
	 .sub = &influxdb_section,
	 .defdoc = "not used", .doc = "also write samples to InfluxDB 1.x"},
	{0},
};
static const struct section metrics_section = {"metrics", metrics_opts,
					       NO_PRESENT, NULL};

static const struct opt ha_opts[] = {
	{.name = "enabled", .type = T_BOOL, .off = offsetof(struct config_ha, enabled),
	 .def = "false",
	 .doc = "run active/standby: only the holder of a lease in the "
		"(shared, mysql) state store acts"},
	{.name = "lease", .type = T_DURATION, .off = offsetof(struct config_ha, lease_ms),
	 .min = 3 * SEC, .max = 10 * MIN, .def = "15s",
	 .doc = "lease length; a standby takes over this long after the "
		"active daemon stops renewing"},
	{.name = "node_id", .type = T_NAME, .off = offsetof(struct config_ha, node_id),
	 .flags = F_OMIT, .defdoc = "the host name",
	 .doc = "this daemon's name in the lease"},
	{0},
};
static const struct section ha_section = {"ha", ha_opts, NO_PRESENT, NULL};

static const struct opt daemon_opts[] = {
	{.name = "interval", .type = T_DURATION,
	 .off = offsetof(struct config_daemon, interval_ms), .flags = R,
	 .min = SEC, .max = HOUR, .def = "10s",
	 .doc = "collect + decide tick; default of every group's scaling.interval"},
	{.name = "listen", .type = T_CUSTOM, .parse = parse_listen,
	 .print = print_listen, .def = "127.0.0.1:8470", .type_name = "address",
	 .doc = "HOST:PORT or [IPV6]:PORT of the check-in and admin HTTP API"},
	{.name = "public_url", .type = T_URL,
	 .off = offsetof(struct config_daemon, public_url), .flags = R,
	 .defdoc = "http://10.0.2.2:PORT when listen is on 127.0.0.0/8 or "
		   "localhost (QEMU user networking maps 10.0.2.2 there), "
		   "else http://LISTEN; https with tls",
	 .doc = "URL guests use to check in"},
	{.name = "state", .type = T_CUSTOM, .parse = parse_state,
	 .print = print_state, .off = offsetof(struct config_daemon, state),
	 .def = "sqlite:///var/lib/virt-autoscaler/state.db",
	 .type_name = "URL",
	 .doc = "state store: sqlite:///PATH or mysql://[USER@]HOST[:PORT]/DB[?socket=PATH]"},
	{.name = "state_password", .type = T_SECRET,
	 .off = offsetof(struct config_daemon, state_password), .flags = F_OMIT,
	 .defdoc = "none",
	 .doc = "MySQL/MariaDB password: { file: PATH } or { env: NAME }"},
	{.name = "event_retention", .type = T_DURATION,
	 .off = offsetof(struct config_daemon, event_retention_ms), .flags = R,
	 .min = 0, .max = 3650 * DAY, .def = "90d",
	 .doc = "activity history (events) older than this is deleted, "
		"checked hourly; 0s keeps it forever"},
	{.name = "admin_token", .type = T_SECRET,
	 .off = offsetof(struct config_daemon, admin_token),
	 .flags = F_OMIT | R, .defdoc = "none (the admin API refuses every request)",
	 .doc = "bearer token of the admin API: { file: PATH } or { env: NAME }"},
	{.name = "log_level", .type = T_ENUM,
	 .off = offsetof(struct config_daemon, log_level), .flags = R,
	 .enums = log_levels, .def = "info", .doc = "error, warn, info or debug"},
	{.name = "log_format", .type = T_ENUM,
	 .off = offsetof(struct config_daemon, log_format), .flags = R,
	 .enums = log_formats, .def = "auto",
	 .doc = "how log lines on stderr look. journal: one line per message "
		"with its sd-daemon priority prefix (<3> error ... <7> debug) "
		"and no timestamp; plain: a timestamp, no prefix; auto: journal "
		"when stderr is systemd's journal ($JOURNAL_STREAM), else plain"},
	{.name = "metrics_instances", .type = T_BOOL,
	 .off = offsetof(struct config_daemon, metrics_instances), .flags = R,
	 .def = "false",
	 .doc = "show the per-instance series (va_instance_*, one per VM id) "
		"on /metrics without the admin token; with it they are always "
		"shown"},
	{.name = "tls", .type = T_SECTION, .off = offsetof(struct config_daemon, tls),
	 .sub = &tls_section, .defdoc = "plain HTTP",
	 .doc = "serve the HTTP API over TLS"},
	{.name = "http", .type = T_SECTION, .off = offsetof(struct config_daemon, http),
	 .sub = &http_section, .doc = "HTTP server limits"},
	{.name = "metrics", .type = T_SECTION,
	 .off = offsetof(struct config_daemon, metrics), .sub = &metrics_section,
	 .doc = "where samples are kept"},
	{.name = "ha", .type = T_SECTION, .off = offsetof(struct config_daemon, ha),
	 .sub = &ha_section, .doc = "high availability (two daemons, one active)"},
	{0},
};
static const struct section daemon_section = {"daemon", daemon_opts,
					      NO_PRESENT, check_daemon};

static const struct opt host_opts[] = {
	{.name = "name", .type = T_NAME, .off = offsetof(struct config_host, name),
	 .flags = F_REQ, .doc = "unique name of the host"},
	{.name = "uri", .type = T_STR, .off = offsetof(struct config_host, uri),
	 .flags = F_REQ, .type_name = "URI",
	 .doc = "libvirt connection URI (qemu:///system, qemu+ssh://root@kvm2/system)"},
	{.name = "pool", .type = T_STR, .off = offsetof(struct config_host, pool),
	 .def = "default",
	 .doc = "storage pool for instance disks and cloud-init seeds; "
		"change it once the host has no instances (theirs stay in "
		"the old pool)"},
	{.name = "network", .type = T_STR, .off = offsetof(struct config_host, network),
	 .flags = F_OMIT | R, .defdoc = "default (when neither bridge nor user_net)",
	 .doc = "libvirt network the instances join"},
	{.name = "bridge", .type = T_STR, .off = offsetof(struct config_host, bridge),
	 .flags = F_OMIT | R, .defdoc = "none",
	 .doc = "host bridge the instances join (instead of network)"},
	{.name = "user_net", .type = T_BOOL, .off = offsetof(struct config_host, user_net),
	 .flags = F_OMIT | R, .def = "false",
	 .doc = "QEMU user networking (the guest reaches the host's loopback "
		"at 10.0.2.2) instead of network or bridge"},
	{.name = "domain_type", .type = T_ENUM,
	 .off = offsetof(struct config_host, domain_type), .flags = R,
	 .enums = domain_types, .def = "kvm",
	 .doc = "kvm, or qemu (emulation) where KVM is unavailable"},
	{.name = "cpu_overcommit", .type = T_DOUBLE,
	 .off = offsetof(struct config_host, cpu_overcommit),
	 .flags = F_MIN_EXCL | R, .min = 0, .max = 64, .def = "4",
	 .doc = "vCPUs that may be placed per host CPU"},
	{.name = "memory_overcommit", .type = T_DOUBLE,
	 .off = offsetof(struct config_host, memory_overcommit),
	 .flags = F_MIN_EXCL | R, .min = 0, .max = 16, .def = "1",
	 .doc = "guest memory that may be placed per byte of host memory"},
	{.name = "reserved_memory", .type = T_SIZE,
	 .off = offsetof(struct config_host, reserved_memory), .flags = R,
	 .min = 0, .max = TIB, .def = "1GiB",
	 .doc = "host memory never given to instances"},
	{.name = "max_instances", .type = T_INT,
	 .off = offsetof(struct config_host, max_instances), .flags = R,
	 .min = 0, .max = 100000, .def = "0",
	 .doc = "instances of all groups on this host; 0 = unlimited"},
	{0},
};
static const struct section host_section = {"host", host_opts, NO_PRESENT,
					    check_host};

static bool
show_vm_shape(const void *base)
{
	return ((const struct config_template *)base)->domain_xml == NULL;
}

static const struct opt template_opts[] = {
	{.name = "vcpus", .type = T_INT, .off = offsetof(struct config_template, vcpus),
	 .flags = R, .min = 1, .max = 256, .def = "1", .show = show_vm_shape,
	 .doc = "virtual CPUs per instance"},
	{.name = "memory", .type = T_SIZE,
	 .off = offsetof(struct config_template, memory), .flags = R,
	 .min = 64 * MIB, .max = 16 * TIB, .def = "1GiB", .show = show_vm_shape,
	 .doc = "memory per instance"},
	{.name = "image", .type = T_PATH, .off = offsetof(struct config_template, image),
	 .flags = F_REQ | R,
	 .doc = "base image: a volume name in the host's pool, or an absolute "
		"path (uploaded to the pool if the volume is missing)"},
	{.name = "disk", .type = T_SIZE, .off = offsetof(struct config_template, disk),
	 .flags = R, .min = MIB, .max = 64 * TIB, .def = "10GiB",
	 .doc = "size of each instance's disk (a qcow2 overlay on the image)"},
	{.name = "kernel", .type = T_PATH, .off = offsetof(struct config_template, kernel),
	 .flags = F_OMIT | R, .defdoc = "none (boot from the disk)",
	 .doc = "direct kernel boot: kernel path on the host"},
	{.name = "initrd", .type = T_PATH, .off = offsetof(struct config_template, initrd),
	 .flags = F_OMIT | R, .defdoc = "none", .doc = "initrd path on the host (needs kernel)"},
	{.name = "cmdline", .type = T_STR, .off = offsetof(struct config_template, cmdline),
	 .flags = F_OMIT | R, .defdoc = "none", .doc = "kernel command line (needs kernel)"},
	/* its contents are the template's, not its path (template.c) */
	{.name = "domain_xml", .type = T_PATH,
	 .off = offsetof(struct config_template, domain_xml),
	 .flags = F_OMIT | R | F_NO_REFRESH,
	 .defdoc = "none",
	 .doc = "libvirt domain XML template used instead of vcpus, memory, "
		"kernel, initrd and cmdline"},
	{.name = "name_prefix", .type = T_NAME,
	 .off = offsetof(struct config_template, name_prefix),
	 .flags = R | F_NO_REFRESH,
	 .defdoc = "the group's name", .doc = "instances are named PREFIX-SUFFIX"},
	{0},
};
static const struct section template_section = {"template", template_opts,
						NO_PRESENT, check_template};

size_t
config_template_keys(struct config_template_key *out, size_t max)
{
	size_t n = 0;

	for (const struct opt *o = template_opts; o->name; o++) {
		enum config_key_kind k;

		if (o->flags & F_NO_REFRESH)
			continue;
		switch (o->type) {
		case T_INT:
			k = CONFIG_KEY_INT;
			break;
		case T_SIZE:
			k = CONFIG_KEY_SIZE;
			break;
		case T_STR:
		case T_PATH:
		case T_NAME:
			k = CONFIG_KEY_STR;
			break;
		default:
			fatal("config: template key %s: a type template.c does "
			      "not know", o->name);
		}
		if (n < max)
			out[n] = (struct config_template_key){o->name, k, o->off};
		n++;
	}
	return n;
}

static const struct opt static_opts[] = {
	{.name = "range", .type = T_CUSTOM, .parse = parse_range,
	 .print = print_range, .flags = F_REQ | R, .type_name = "address range",
	 .doc = "FIRST-LAST addresses handed to instances"},
	{.name = "prefix", .type = T_INT,
	 .off = offsetof(struct config_static_addresses, prefix),
	 .flags = F_REQ | R, .min = 1, .max = 128, .doc = "prefix length of the subnet"},
	{.name = "gateway", .type = T_CUSTOM, .parse = parse_gateway,
	 .print = print_gateway,
	 .off = offsetof(struct config_static_addresses, gateway), .flags = R,
	 .type_name = "address", .defdoc = "none", .doc = "default gateway"},
	{.name = "dns", .type = T_IPLIST,
	 .off = offsetof(struct config_static_addresses, dns), .flags = F_OMIT | R,
	 .defdoc = "none", .doc = "name servers"},
	{0},
};
static const struct section static_section = {
	"static_addresses", static_opts,
	offsetof(struct config_static_addresses, present), check_static};

static const struct opt cloud_init_opts[] = {
	{.name = "user_data", .type = T_PATH,
	 .off = offsetof(struct config_cloud_init, user_data), .flags = F_OMIT | R,
	 .defdoc = "none (an empty user-data; the daemon's vendor-data, with "
		   "phone_home, is added either way)",
	 .doc = "cloud-init user-data file (relative paths: to the "
		"configuration file's directory)"},
	{.name = "network_config", .type = T_PATH,
	 .off = offsetof(struct config_cloud_init, network_config),
	 .flags = F_OMIT | R, .defdoc = "none (DHCP)",
	 .doc = "cloud-init network-config file"},
	{.name = "static_addresses", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_cloud_init, static_addresses),
	 .sub = &static_section, .defdoc = "none (DHCP)",
	 .doc = "give each instance a fixed address from a range "
		"(instead of network_config)"},
	{.name = "phone_home", .type = T_BOOL,
	 .off = offsetof(struct config_cloud_init, phone_home), .flags = R,
	 .def = "true",
	 .doc = "add cloud-init phone_home to the daemon's public_url to the "
		"vendor-data (the group's user-data is passed through untouched)"},
	{.name = "agent", .type = T_BOOL,
	 .off = offsetof(struct config_cloud_init, agent), .flags = R,
	 .def = "true",
	 .doc = "install virt-autoscaler-agent in the guest (vendor-data): "
		"heartbeats with busy and metrics from a status file"},
	{0},
};
static const struct section cloud_init_section = {
	"cloud_init", cloud_init_opts, NO_PRESENT, check_cloud_init};

#define TARGET_OPT(nm, m, t, mx, d)                                           \
	{.name = nm, .type = t,                                              \
	 .off = (m) * sizeof(double), .flags = F_OMIT | F_MIN_EXCL | R,     \
	 .min = 0, .max = mx, .defdoc = "not tracked", .doc = d}
static void
secret_release(struct config_secret *s)
{
	free(s->ref);
	free(s->path);
	memset(s, 0, sizeof(*s));
}

static void
app_source_release(struct config_app_source *s)
{
	free(s->prometheus);
	free(s->query);
	secret_release(&s->token);
	memset(s, 0, sizeof(*s));
}

/* scaling.target.app: { metric: NAME, value: N, kind: average | total,
 * source: { prometheus: URL, query: PROMQL, ... } } */
struct app_raw {
	char *metric;
	double value;
	int kind;
	struct config_app_source source;
};

static void
check_app_source(struct pctx *ctx, const struct ynode *map, void *base,
		 const char *path)
{
	const struct config_app_source *s = base;
	const struct ynode *q = map ? ymap_get(map, "query") : NULL;

	if (s->query && strlen(s->query) > PROMSRC_QUERY_MAX) {
		char *sub = join_path(path, "query");

		nerr(ctx, q ? q : map, sub, "%zu characters, more than the %d "
		     "allowed", strlen(s->query), PROMSRC_QUERY_MAX);
		free(sub);
	}
}

static const struct opt app_source_opts[] = {
	{.name = "prometheus", .type = T_URL,
	 .off = offsetof(struct config_app_source, prometheus),
	 .flags = F_REQ | R,
	 .doc = "base URL of Prometheus' HTTP API (http:// or https://; TLS "
		"certificates are verified against the system's CAs)"},
	{.name = "query", .type = T_STR,
	 .off = offsetof(struct config_app_source, query), .flags = F_REQ | R,
	 .doc = "PromQL instant query giving one number for the whole group "
		"(a scalar or a single series), run once per scaling.interval"},
	{.name = "timeout", .type = T_DURATION,
	 .off = offsetof(struct config_app_source, timeout_ms), .flags = R,
	 .min = 100, .max = 60 * SEC, .def = "5s",
	 .doc = "a query not answered within this is an error"},
	{.name = "token", .type = T_SECRET,
	 .off = offsetof(struct config_app_source, token), .flags = F_OMIT | R,
	 .defdoc = "none",
	 .doc = "bearer token sent to Prometheus: { file: PATH } or "
		"{ env: NAME }; read at start and reload, never logged"},
	{0},
};
static const struct section app_source_section = {
	"source", app_source_opts,
	offsetof(struct config_app_source, present), check_app_source};

static const char *const app_kinds[] = {"average", "total", NULL};

static const struct opt app_opts[] = {
	{.name = "metric", .type = T_STR, .off = offsetof(struct app_raw, metric),
	 .flags = F_REQ | R,
	 .doc = "the name the guests' heartbeats give it (1-63 of "
		"A-Za-z0-9_.); the daemon cannot know at check time whether "
		"guests will report it"},
	{.name = "value", .type = T_DOUBLE, .off = offsetof(struct app_raw, value),
	 .flags = F_REQ | F_MIN_EXCL | R, .min = 0, .max = POLICY_APP_VALUE_MAX,
	 .doc = "average: the per-instance mean to hold; total: what one "
		"instance handles (desired = ceil(total / value))"},
	{.name = "kind", .type = T_ENUM, .off = offsetof(struct app_raw, kind),
	 .flags = R, .enums = app_kinds, .def = "average",
	 .doc = "average: each instance reports its own share; total: they "
		"report one figure for the whole group (the newest counts)"},
	{.name = "source", .type = T_SECTION,
	 .off = offsetof(struct app_raw, source), .flags = R,
	 .sub = &app_source_section, .defdoc = "none (the guests' heartbeats)",
	 .doc = "take the figure from outside the VMs instead of heartbeats: "
		"{ prometheus: URL, query: PROMQL }; implies kind: total"},
	{0},
};
static const struct section app_section = {"app", app_opts, NO_PRESENT,
					   NULL};

static int
parse_app_target(struct pctx *ctx, const struct ynode *n, void *base,
		 const struct opt *o, const char *path)
{
	struct policy_params *p = (struct policy_params *)(void *)
		((char *)base - offsetof(struct policy_params, target));
	struct app_raw raw = {0};
	int rc = parse_section(ctx, n, &app_section, &raw, path);

	if (rc == 0) {
		char *sub = join_path(path, "metric");
		int a = app_register(ctx, ymap_get(n, "metric"), sub, p,
				     raw.metric);

		free(sub);
		if (a < 0) {
			rc = -1;
		} else {
			p->app[a].kind = raw.kind == 1 ? POLICY_APP_TOTAL
						       : POLICY_APP_AVERAGE;
			p->app[a].target = raw.value;
		}
		if (a >= 0 && raw.source.present) {
			/* scaling is parsed into a group's policy only */
			struct config_group *g = (struct config_group *)(void *)
				((char *)p - offsetof(struct config_group, policy));
			const struct ynode *k = ymap_get(n, "kind");

			if (k && raw.kind != 1) {
				sub = join_path(path, "kind");
				nerr(ctx, k, sub, "a source gives one figure for "
				     "the whole group: use kind: total (value: "
				     "what one instance handles); an average from "
				     "outside cannot tell which instances it covers");
				free(sub);
				rc = -1;
			} else {
				p->app[a].kind = POLICY_APP_TOTAL;
				snprintf(p->app[a].source,
					 sizeof(p->app[a].source), "prometheus");
				g->app_source = raw.source;
				memset(&raw.source, 0, sizeof(raw.source));
			}
		}
	}
	free(raw.metric);
	app_source_release(&raw.source);
	return rc;
}

static void
print_app_target(struct strbuf *out, const void *base, int indent,
		 const struct opt *o)
{
	const struct policy_params *p = (const struct policy_params *)
		(const void *)((const char *)base -
			       offsetof(struct policy_params, target));

	for (unsigned i = 0; i < p->n_app && i < POLICY_APP_MAX; i++) {
		if (!(p->app[i].target > 0))
			continue;
		indent_to(out, indent);
		strbuf_adds(out, "app:\n");
		indent_to(out, indent + 2);
		strbuf_addf(out, "metric: %s\n", p->app[i].name);
		indent_to(out, indent + 2);
		strbuf_addf(out, "value: %g\n", p->app[i].target);
		indent_to(out, indent + 2);
		strbuf_addf(out, "kind: %s\n",
			    policy_app_kind_name(p->app[i].kind));
		if (p->app[i].source[0]) {
			const struct config_group *g = (const struct config_group *)
				(const void *)((const char *)p -
					       offsetof(struct config_group, policy));

			indent_to(out, indent + 2);
			strbuf_adds(out, "source:\n");
			print_section(out, &app_source_section, &g->app_source,
				      indent + 4);
		}
	}
}

static const struct opt target_opts[] = {
	TARGET_OPT("cpu", POLICY_METRIC_CPU, T_PERCENT, 100,
		   "keep the group's average CPU use (of allotted vCPU time) near this"),
	TARGET_OPT("memory", POLICY_METRIC_MEMORY, T_PERCENT, 100,
		   "keep the average guest memory in use near this"),
	TARGET_OPT("disk_iops", POLICY_METRIC_DISK_IOPS, T_DOUBLE, 1e9,
		   "keep the average disk operations per second per instance near this"),
	TARGET_OPT("disk_bytes", POLICY_METRIC_DISK_BYTES, T_SIZE_D, 1024 * GIB,
		   "keep the average disk bytes per second per instance near this"),
	TARGET_OPT("net_bytes", POLICY_METRIC_NET_BYTES, T_SIZE_D, 1024 * GIB,
		   "keep the average network bytes per second per instance near this"),
	{.name = "app", .type = T_CUSTOM, .parse = parse_app_target,
	 .print = print_app_target, .flags = R, .sub = &app_section,
	 .elem = "", .type_name = "mapping", .defdoc = "not tracked",
	 .doc = "an application metric the guests report in their "
		"heartbeats, or a source measures outside them: { metric: "
		"NAME, value: N, kind: average | total, source: {...} }"},
	{0},
};
static const struct section target_section = {"target", target_opts,
					      NO_PRESENT, NULL};

static const struct opt limit_opts[] = {
	{.name = "instances", .type = T_INT,
	 .off = offsetof(struct policy_rate_limit, instances), .flags = R,
	 .min = 0, .max = 1000, .doc = "at most this many instances per period ..."},
	{.name = "percent", .type = T_PERCENT,
	 .off = offsetof(struct policy_rate_limit, percent), .flags = R,
	 .min = 0, .max = 1000,
	 .doc = "... or this share of the current size, whichever is more"},
	{.name = "period", .type = T_DURATION,
	 .off = offsetof(struct policy_rate_limit, period_ms), .flags = R,
	 .min = 0, .max = DAY, .doc = "the period; 0s = no limit"},
	{0},
};
static const struct section limit_section = {"limit", limit_opts,
					     NO_PRESENT, check_limit};

static const struct opt saturation_opts[] = {
	{.name = "above", .type = T_PERCENT,
	 .off = offsetof(struct policy_saturation, above_pct), .flags = R,
	 .min = 0, .max = 100,
	 .doc = "a cpu or memory average at or above this is saturated "
		"(demand unknown); 0% = off (the plain HPA formula)"},
	{.name = "scale_up", .type = T_PERCENT,
	 .off = offsetof(struct policy_saturation, scale_up_pct), .flags = R,
	 .min = 1, .max = 1000,
	 .doc = "when saturated, grow the ready capacity by at least this share"},
	{0},
};
static const struct section saturation_section = {"saturation",
						  saturation_opts, NO_PRESENT,
						  NULL};

/* scaling.predictive: the forecaster's floor (policy.h, forecast.h) */
static const char *const predictive_modes[] = {
	"off", "forecast_only", "forecast_and_scale", NULL};

static const struct opt predictive_opts[] = {
	{.name = "mode", .type = T_ENUM,
	 .off = offsetof(struct policy_predictive, mode), .flags = R,
	 .enums = predictive_modes, .def = "off",
	 .doc = "off; forecast_only: show the forecast in decisions without "
		"acting; forecast_and_scale: the size is at least the "
		"forecast floor"},
	{.name = "buffer", .type = T_DURATION,
	 .off = offsetof(struct policy_predictive, buffer_ms), .flags = R,
	 .min = 0, .max = 6 * HOUR, .def = "5m",
	 .doc = "how far ahead the forecast window starts (rounded up to a "
		"minute); at least the boot time"},
	{.name = "window", .type = T_DURATION,
	 .off = offsetof(struct policy_predictive, window_ms), .flags = R,
	 .min = MIN, .max = 6 * HOUR, .def = "10m",
	 .doc = "the forecast window's length: the floor is the peak "
		"forecast within it"},
	{0},
};
static const struct section predictive_section = {"predictive",
						  predictive_opts, NO_PRESENT,
						  NULL};

static bool
show_predictive(const void *base)
{
	return ((const struct policy_params *)base)->predictive.mode !=
	       POLICY_PREDICTIVE_OFF;
}

static const struct opt scaling_opts[] = {
	{.name = "interval", .type = T_DURATION,
	 .off = offsetof(struct policy_params, interval_ms), .flags = R,
	 .min = SEC, .max = HOUR, .defdoc = "daemon.interval",
	 .doc = "how often the group's policy is evaluated; at least "
		"daemon.interval"},
	{.name = "target", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct policy_params, target), .sub = &target_section,
	 .defdoc = "none", .doc = "target tracking: metric -> value to hold"},
	{.name = "tolerance", .type = T_FRACTION,
	 .off = offsetof(struct policy_params, tolerance), .flags = R,
	 .min = 0, .max = 100,
	 .doc = "target tracking does nothing while the metric is within "
		"this share of the target"},
	{.name = "steps", .type = T_CUSTOM, .parse = parse_steps,
	 .print = print_steps, .flags = R, .sub = &step_section, .elem = "[]",
	 .type_name = "sequence", .defdoc = "none",
	 .doc = "step rules: metric above/below a threshold for a while -> change"},
	{.name = "schedules", .type = T_CUSTOM, .parse = parse_schedules,
	 .print = print_schedules, .flags = R, .sub = &sched_section,
	 .elem = "[]", .type_name = "sequence", .defdoc = "none",
	 .doc = "time windows that replace min and/or max"},
	{.name = "cooldown", .type = T_DURATION,
	 .off = offsetof(struct policy_params, cooldown_ms), .flags = R,
	 .min = 0, .max = DAY, .doc = "after a change, no further change for this long"},
	{.name = "warmup", .type = T_DURATION,
	 .off = offsetof(struct policy_params, warmup_ms), .flags = R,
	 .min = 0, .max = DAY, .doc = "a new instance's metrics are ignored this long"},
	{.name = "scale_up_window", .type = T_DURATION,
	 .off = offsetof(struct policy_params, scale_up_window_ms), .flags = R,
	 .min = 0, .max = DAY,
	 .doc = "stabilization: grow only to the lowest size recommended in this window"},
	{.name = "scale_down_window", .type = T_DURATION,
	 .off = offsetof(struct policy_params, scale_down_window_ms), .flags = R,
	 .min = 0, .max = DAY,
	 .doc = "stabilization: shrink only to the highest size recommended in this window"},
	{.name = "scale_up_window_skip", .type = T_PERCENT,
	 .off = offsetof(struct policy_params, scale_up_window_skip_pct),
	 .flags = R, .min = 0, .max = 1000,
	 .doc = "an increase of more than this share of the size skips the "
		"scale-up window; 0% = never"},
	{.name = "saturation", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct policy_params, saturation),
	 .sub = &saturation_section,
	 .doc = "target tracking when a cpu/memory average is saturated"},
	{.name = "predictive", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct policy_params, predictive),
	 .sub = &predictive_section, .show = show_predictive,
	 .doc = "predictive scaling: a floor from the load of earlier days "
		"and weeks, kept in the state store (printed only when on)"},
	{.name = "scale_up_limit", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct policy_params, scale_up_limit),
	 .sub = &limit_section, .doc = "rate limit on growing"},
	{.name = "scale_down_limit", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct policy_params, scale_down_limit),
	 .sub = &limit_section, .doc = "rate limit on shrinking"},
	{0},
};
static const struct section scaling_section = {"scaling", scaling_opts,
					       NO_PRESENT, NULL};

static const struct opt health_opts[] = {
	{.name = "ready_within", .type = T_DURATION,
	 .off = offsetof(struct config_health, ready_within_ms), .flags = R,
	 .min = 10 * SEC, .max = DAY, .def = "5m",
	 .doc = "a new instance that has not checked in by then is replaced"},
	{.name = "heartbeat_timeout", .type = T_DURATION,
	 .off = offsetof(struct config_health, heartbeat_timeout_ms), .flags = R,
	 .min = 0, .max = DAY, .def = "1m",
	 .doc = "an instance silent this long is unhealthy; 0s = heartbeats not required"},
	{.name = "replace", .type = T_BOOL,
	 .off = offsetof(struct config_health, replace), .flags = R,
	 .def = "true", .doc = "replace unhealthy instances"},
	{.name = "max_replace", .type = T_INT,
	 .off = offsetof(struct config_health, max_replace), .flags = R,
	 .min = 0, .max = 1000, .def = "2",
	 .doc = "at most this many replacements at once ..."},
	{.name = "max_replace_share", .type = T_PERCENT,
	 .off = offsetof(struct config_health, max_replace_share), .flags = R,
	 .min = 0, .max = 100, .def = "34%",
	 .doc = "... and at most this share of the group"},
	{.name = "busy_max", .type = T_DURATION,
	 .off = offsetof(struct config_health, busy_max_ms), .flags = R,
	 .min = 0, .max = 7 * DAY, .def = "30m",
	 .doc = "an instance that reports itself busy is protected from "
		"scale-in at most this long"},
	{0},
};
static const struct section health_section = {"health", health_opts,
					      NO_PRESENT, NULL};

static const struct opt scale_in_opts[] = {
	{.name = "order", .type = T_ENUM,
	 .off = offsetof(struct config_scale_in, order), .flags = R,
	 .enums = scale_in_orders, .def = "newest",
	 .doc = "which instances go first: newest, oldest or busiest-host-first"},
	{.name = "drain", .type = T_DURATION,
	 .off = offsetof(struct config_scale_in, drain_ms), .flags = R,
	 .min = 0, .max = HOUR, .def = "1m",
	 .doc = "graceful shutdown timeout before an instance is destroyed"},
	{0},
};
static const struct section scale_in_section = {"scale_in", scale_in_opts,
						NO_PRESENT, NULL};

static const char *const targets_formats[] = {"plain", "haproxy", "nginx",
					     NULL};

static const struct opt targets_opts[] = {
	{.name = "port", .type = T_INT,
	 .off = offsetof(struct config_targets, port), .flags = R,
	 .min = 0, .max = 65535, .def = "0",
	 .doc = "the service's port on every instance, added to each address "
		"(0: none; haproxy and nginx need one)"},
	{.name = "file", .type = T_PATH,
	 .off = offsetof(struct config_targets, file), .flags = F_OMIT | R,
	 .defdoc = "none",
	 .doc = "absolute path of a file rewritten atomically whenever the "
		"ready instances or their addresses change"},
	{.name = "format", .type = T_ENUM,
	 .off = offsetof(struct config_targets, format), .flags = R,
	 .enums = targets_formats, .def = "plain",
	 .doc = "the file's lines: plain (ADDR[:PORT]), haproxy (server ID "
		"ADDR:PORT check) or nginx (server ADDR:PORT;)"},
	{.name = "reload_url", .type = T_URL,
	 .off = offsetof(struct config_targets, reload_url), .flags = F_OMIT | R,
	 .defdoc = "none",
	 .doc = "an empty HTTP POST goes there after the file changed "
		"(retried with backoff)"},
	{0},
};

static void
check_targets(struct pctx *ctx, const struct ynode *map, void *base,
	      const char *path)
{
	struct config_targets *t = base;

	if (t->file && t->file[0] != '/')
		nerr(ctx, ymap_get(map, "file"), path,
		     "file must be an absolute path, got '%s'", t->file);
	if (t->file && t->format != CONFIG_TARGETS_PLAIN && !t->port)
		nerr(ctx, ymap_key(map, "format"), path,
		     "format %s needs a port (targets.port)",
		     targets_formats[t->format]);
	if (t->reload_url && !t->file)
		nerr(ctx, ymap_key(map, "reload_url"), path,
		     "reload_url needs a file: it is called when the file changed");
}

static const struct section targets_section = {"targets", targets_opts,
					       NO_PRESENT, check_targets};

static const char *const warm_states[] = {"saved", "paused", "stopped",
					 NULL};

const char *
config_warm_state_name(enum config_warm_state st)
{
	return st < CONFIG_WARM_LAST ? warm_states[st] : NULL;
}

static const struct opt warm_pool_opts[] = {
	{.name = "size", .type = T_INT,
	 .off = offsetof(struct config_warm_pool, size), .flags = R,
	 .min = 0, .max = 1000, .def = "0",
	 .doc = "prepared instances kept beyond desired (at most max - min)"},
	{.name = "max_prepared", .type = T_INT,
	 .off = offsetof(struct config_warm_pool, max_prepared), .flags = R,
	 .min = 0, .max = 2000, .def = "0",
	 .doc = "cap on desired + warm instances (0: none)"},
	{.name = "state", .type = T_ENUM,
	 .off = offsetof(struct config_warm_pool, state), .flags = R,
	 .enums = warm_states, .def = "saved",
	 .doc = "how a warm instance waits: saved (RAM written to the host's "
		"disk, managed save), paused (RAM held) or stopped (shut off)"},
	{.name = "reuse_on_scale_in", .type = T_BOOL,
	 .off = offsetof(struct config_warm_pool, reuse_on_scale_in),
	 .flags = R, .def = "false",
	 .doc = "scale-in returns instances to the pool (up to size) "
		"instead of deleting them"},
	{.name = "resume_within", .type = T_DURATION,
	 .off = offsetof(struct config_warm_pool, resume_within_ms),
	 .flags = R, .min = 1000, .max = HOUR, .def = "2m",
	 .doc = "a drawn instance must send a heartbeat or check in this long "
		"after the draw, else it is removed and the next warm instance "
		"(or a new one) takes its place"},
	{0},
};
static const struct section warm_pool_section = {"warm_pool",
	warm_pool_opts, offsetof(struct config_warm_pool, present), NULL};

/* "N" or "P%": 0 and the count, or -1 */
int
config_refresh_amount(const char *s, int desired, int *out)
{
	char *end;
	long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || v > 1000000)
		return -1;
	if (*end == '%' && !end[1] && v <= 100) {
		/* a share of desired, rounded down: "25%" of 3 is 0 */
		*out = (int)(v * desired / 100);
		return 0;
	}
	if (*end)
		return -1;
	*out = (int)v;
	return 0;
}

static void
check_refresh(struct pctx *ctx, const struct ynode *map, void *base,
	      const char *path)
{
	struct config_refresh *r = base;
	int n = 0, last = 0;

	if (config_refresh_amount(r->max_unavailable, 100, &n) < 0) {
		nerr(ctx, ymap_get(map, "max_unavailable"), path,
		     "max_unavailable must be a number of instances (1) or a "
		     "percentage of desired (25%%), got '%s'",
		     r->max_unavailable);
		return;
	}
	if (strcmp(r->max_unavailable, "0") == 0 ||
	    strcmp(r->max_unavailable, "0%") == 0) {
		if (r->surge == 0)
			nerr(ctx, ymap_get(map, "surge"), path,
			     "max_unavailable and surge are both 0: a refresh "
			     "could never replace an instance");
	}
	for (unsigned i = 0; i < r->checkpoints.n; i++) {
		const char *c = r->checkpoints.v[i];
		char *end;
		long v = strtol(c, &end, 10);

		if (end == c || strcmp(end, "%") != 0 || v < 1 || v > 100 ||
		    v <= last) {
			nerr(ctx, ymap_get(map, "checkpoints"), path,
			     "checkpoints must be ascending percentages "
			     "between 1%% and 100%%, got '%s'", c);
			return;
		}
		last = (int)v;
	}
}

static const struct opt refresh_opts[] = {
	{.name = "auto", .type = T_BOOL,
	 .off = offsetof(struct config_refresh, automatic), .flags = R,
	 .def = "true",
	 .doc = "refresh the group when its template (image, vcpus, memory, "
		"disk, kernel, user-data, network-config, domain template) "
		"changes; false: only `virt-autoscaler refresh GROUP`"},
	{.name = "max_unavailable", .type = T_STR,
	 .off = offsetof(struct config_refresh, max_unavailable), .flags = R,
	 .def = "1",
	 .doc = "ready instances a refresh may take below desired at any "
		"moment: a number, or a percentage of desired (rounded down)"},
	{.name = "surge", .type = T_INT,
	 .off = offsetof(struct config_refresh, surge), .flags = R,
	 .min = 0, .max = 1000, .def = "1",
	 .doc = "new instances a refresh starts beyond desired (within max)"},
	{.name = "min_healthy", .type = T_PERCENT,
	 .off = offsetof(struct config_refresh, min_healthy), .flags = R,
	 .min = 0, .max = 100, .def = "90%",
	 .doc = "the health gate: old instances are removed only while at "
		"least this share of desired stays ready"},
	{.name = "checkpoints", .type = T_STRLIST,
	 .off = offsetof(struct config_refresh, checkpoints), .flags = R,
	 .doc = "pause at these shares of instances replaced (e.g. [50%]) "
		"until `virt-autoscaler refresh GROUP --resume`"},
	{.name = "rollback_after", .type = T_INT,
	 .off = offsetof(struct config_refresh, rollback_after), .flags = R,
	 .min = 0, .max = 1000, .def = "1",
	 .doc = "roll back to the previous template when this many new "
		"instances failed to become ready (0: never)"},
	{0},
};
static const struct section refresh_section = {"refresh", refresh_opts,
	offsetof(struct config_refresh, present), check_refresh};

static const char *const hook_results[] = {"continue", "abandon", NULL};

static void
check_hook(struct pctx *ctx, const struct ynode *map, void *base,
	   const char *path)
{
	struct config_hook *h = base;

	if (h->backoff_max_ms < h->backoff_ms)
		nerr(ctx, ymap_key(map, "backoff_max"), path,
		     "backoff_max (%" PRId64 " ms) is less than backoff (%" PRId64
		     " ms)", h->backoff_max_ms, h->backoff_ms);
	if (h->secret.source == CONFIG_SECRET_NONE)
		nerr(ctx, map, path, "a hook needs a secret: { file: PATH } "
		     "with the HMAC-SHA256 key its receiver verifies");
}

#define HOOK_OPTS(DEFAULT_RESULT, RESULT_DOC)                                  \
	{.name = "url", .type = T_URL,                                         \
	 .off = offsetof(struct config_hook, url), .flags = F_REQ | R,         \
	 .doc = "where the event is POSTed (http:// or https://; TLS "          \
		"certificates are verified against the system's CAs)"},         \
	{.name = "secret", .type = T_SECRET,                                   \
	 .off = offsetof(struct config_hook, secret), .flags = F_OMIT | R,     \
	 .defdoc = "none (required)",                                          \
	 .doc = "the HMAC-SHA256 key the event is signed with: { file: PATH } " \
		"or { env: NAME }; read at start and reload, never logged"},    \
	{.name = "timeout", .type = T_DURATION,                                \
	 .off = offsetof(struct config_hook, timeout_ms), .flags = R,          \
	 .min = SEC, .max = 48 * HOUR, .def = "5m",                            \
	 .doc = "how long the instance waits for the hook to be completed "    \
		"(POST /v1/instances/ID/lifecycle) before default_result "      \
		"applies"},                                                     \
	{.name = "default_result", .type = T_ENUM,                             \
	 .off = offsetof(struct config_hook, default_result), .flags = R,      \
	 .enums = hook_results, .def = DEFAULT_RESULT, .doc = RESULT_DOC},      \
	{.name = "backoff", .type = T_DURATION,                                \
	 .off = offsetof(struct config_hook, backoff_ms), .flags = R,          \
	 .min = 100, .max = HOUR, .def = "1s",                                 \
	 .doc = "a failed POST is retried after this, then twice as long "     \
		"each time (up to backoff_max), until the timeout"},            \
	{.name = "backoff_max", .type = T_DURATION,                            \
	 .off = offsetof(struct config_hook, backoff_max_ms), .flags = R,      \
	 .min = 100, .max = HOUR, .def = "30s",                                \
	 .doc = "the longest wait between two attempts"},                      \
	{0}

static const struct opt hook_launch_opts[] = {
	HOOK_OPTS("abandon",
		  "applied at the timeout: continue (the instance goes into "
		  "service) or abandon (it is removed and replaced, as AWS "
		  "does by default)"),
};
static const struct opt hook_terminate_opts[] = {
	HOOK_OPTS("continue",
		  "applied at the timeout; the instance is removed either way "
		  "(abandon only records that the hook did not finish)"),
};
#undef HOOK_OPTS
static const struct section hook_launch_section = {"launch",
	hook_launch_opts, offsetof(struct config_hook, present), check_hook};
static const struct section hook_terminate_section = {"terminate",
	hook_terminate_opts, offsetof(struct config_hook, present), check_hook};

static const struct opt hooks_opts[] = {
	{.name = "launch", .type = T_SECTION, .flags = R,
	 .off = offsetof(struct config_hooks, launch),
	 .sub = &hook_launch_section,
	 .doc = "called when a new instance checked in, before it counts as "
		"ready (state launch_wait)"},
	{.name = "terminate", .type = T_SECTION, .flags = R,
	 .off = offsetof(struct config_hooks, terminate),
	 .sub = &hook_terminate_section,
	 .doc = "called when scale-in chose a ready instance, before its "
		"drain (state terminate_wait)"},
	{0},
};
static const struct section hooks_section = {"hooks", hooks_opts,
					     NO_PRESENT, NULL};

/* `check` prints hooks only when the group has one */
static bool
show_hooks(const void *base)
{
	const struct config_group *g = base;

	return g->hooks.launch.present || g->hooks.terminate.present;
}

static const struct opt group_opts[] = {
	{.name = "min", .type = T_INT, .off = offsetof(struct config_group, min),
	 .flags = F_REQ | R, .min = 0, .max = 1000, .doc = "fewest instances"},
	{.name = "max", .type = T_INT, .off = offsetof(struct config_group, max),
	 .flags = F_REQ | R, .min = 0, .max = 1000, .doc = "most instances (>= min)"},
	{.name = "desired", .type = T_INT, .off = offsetof(struct config_group, desired),
	 .flags = R, .min = 0, .max = 1000, .defdoc = "min",
	 .doc = "initial size, between min and max"},
	{.name = "hosts", .type = T_STRLIST, .off = offsetof(struct config_group, hosts),
	 .flags = R, .defdoc = "all hosts", .doc = "names of the hosts the group may use"},
	{.name = "placement", .type = T_CUSTOM, .parse = parse_placement,
	 .print = print_placement, .flags = R, .def = "round-robin",
	 .type_name = "strategy",
	 .doc = "round-robin, most-free, fill-first or plugin:/ABSOLUTE/PATH.so"},
	{.name = "placement_options", .type = T_CUSTOM, .parse = parse_kvmap,
	 .print = print_kvmap, .flags = R,
	 .off = offsetof(struct config_group, placement_options),
	 .type_name = "mapping", .defdoc = "none",
	 .doc = "strings passed to a placement plugin"},
	{.name = "spread", .type = T_BOOL, .off = offsetof(struct config_group, spread),
	 .flags = R, .def = "true",
	 .doc = "spread instances across hosts (anti-affinity) where possible"},
	{.name = "template", .type = T_SECTION,
	 .off = offsetof(struct config_group, template), .flags = F_REQ | F_RELOAD,
	 .sub = &template_section, .doc = "what an instance looks like"},
	{.name = "cloud_init", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, cloud_init),
	 .sub = &cloud_init_section, .doc = "how an instance is customized"},
	{.name = "scaling", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, policy), .sub = &scaling_section,
	 .doc = "when the group grows and shrinks"},
	{.name = "health", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, health), .sub = &health_section,
	 .doc = "check-in and replacement of unhealthy instances"},
	{.name = "scale_in", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, scale_in), .sub = &scale_in_section,
	 .doc = "how instances are removed"},
	{.name = "targets", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, targets), .sub = &targets_section,
	 .doc = "the ready instances' addresses for a load balancer: "
		"GET /v1/groups/NAME/targets, a file, a reload URL"},
	{.name = "warm_pool", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, warm_pool),
	 .sub = &warm_pool_section,
	 .doc = "prepared instances a scale-out resumes instead of booting "
		"new ones"},
	{.name = "refresh", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, refresh), .sub = &refresh_section,
	 .doc = "instance refresh: replacing the group's instances in batches "
		"when its template changes"},
	{.name = "hooks", .type = T_SECTION, .flags = F_RELOAD,
	 .off = offsetof(struct config_group, hooks), .sub = &hooks_section,
	 .show = show_hooks,
	 .doc = "lifecycle hooks: a signed HTTP POST when an instance starts "
		"or is about to be removed, which it waits for"},
	{0},
};
static const struct section group_section = {"group", group_opts,
					     NO_PRESENT, check_group};

static const struct opt root_opts[] = {
	{.name = "version", .type = T_INT, .off = offsetof(struct config, version),
	 .flags = F_REQ, .min = 1, .max = 1,
	 .doc = "version of the file format; must be 1"},
	{.name = "daemon", .type = T_SECTION, .off = offsetof(struct config, daemon),
	 .sub = &daemon_section, .doc = "settings of the daemon itself"},
	{.name = "hosts", .type = T_CUSTOM, .parse = parse_hosts,
	 .print = print_hosts, .flags = F_REQ, .sub = &host_section,
	 .elem = "[]", .type_name = "sequence",
	 .doc = "the libvirt hosts (at least one); adding, removing or "
		"renaming a host, or changing its uri, needs a restart"},
	{.name = "groups", .type = T_CUSTOM, .parse = parse_groups,
	 .print = print_groups, .flags = R, .sub = &group_section, .elem = ".*",
	 .type_name = "mapping", .defdoc = "none",
	 .doc = "the groups of instances, by name"},
	{0},
};
static const struct section root_section = {"", root_opts, NO_PRESENT,
					    check_root};

#undef R

/* ------------------------------------------------------------------ */
/* Hosts and groups                                                     */

static int
parse_hosts(struct pctx *ctx, const struct ynode *n, void *base,
	    const struct opt *o, const char *path)
{
	struct config *cfg = base;
	int rc = 0;

	if (n->kind != YN_SEQ) {
		nerr(ctx, n, path, "expected a list of hosts (- name: ...), "
		     "got %s", ynode_describe(n));
		return -1;
	}
	if (n->n == 0) {
		nerr(ctx, n, path, "at least one host is needed");
		return -1;
	}
	if (n->n > MAX_HOSTS) {
		nerr(ctx, n, path, "more than %d hosts", MAX_HOSTS);
		return -1;
	}
	ctx->hosts_node = n;
	cfg->hosts = xcalloc(n->n, sizeof(*cfg->hosts));
	for (unsigned i = 0; i < n->n; i++) {
		struct config_host *h = &cfg->hosts[cfg->n_hosts];
		char *ipath = xasprintf("%s[%u]", path, i);

		h->line = n->kids[i]->line;
		if (parse_section(ctx, n->kids[i], &host_section, h, ipath))
			rc = -1;
		cfg->n_hosts++;
		if (h->name) {
			for (unsigned j = 0; j + 1 < cfg->n_hosts; j++) {
				if (cfg->hosts[j].name &&
				    strcmp(cfg->hosts[j].name, h->name) == 0) {
					nerr(ctx, ymap_get(n->kids[i], "name"),
					     ipath, "duplicate host name '%s' "
					     "(first defined at line %d)",
					     h->name, cfg->hosts[j].line);
					rc = -1;
					break;
				}
			}
		}
		free(ipath);
	}
	return rc;
}

static void
print_hosts(struct strbuf *out, const void *base, int indent,
	    const struct opt *o)
{
	const struct config *cfg = base;

	indent_to(out, indent);
	strbuf_adds(out, "hosts:\n");
	for (unsigned i = 0; i < cfg->n_hosts; i++)
		print_list_item(out, &host_section, &cfg->hosts[i], indent + 2);
}

static void
group_release(struct config_group *g)
{
	free(g->name);
	strlist_release(&g->hosts);
	free(g->host_ptrs);
	free(g->placement_plugin);
	kvlist_release(&g->placement_options);
	free(g->template.image);
	free(g->template.kernel);
	free(g->template.initrd);
	free(g->template.cmdline);
	free(g->template.domain_xml);
	free(g->template.name_prefix);
	free(g->cloud_init.user_data);
	free(g->cloud_init.network_config);
	free(g->cloud_init.static_addresses.range);
	free(g->cloud_init.static_addresses.first);
	free(g->cloud_init.static_addresses.last);
	free(g->cloud_init.static_addresses.gateway);
	strlist_release(&g->cloud_init.static_addresses.dns);
	free(g->targets.file);
	free(g->targets.reload_url);
	free(g->refresh.max_unavailable);
	strlist_release(&g->refresh.checkpoints);
	free(g->hooks.launch.url);
	secret_release(&g->hooks.launch.secret);
	free(g->hooks.terminate.url);
	secret_release(&g->hooks.terminate.secret);
	app_source_release(&g->app_source);
	policy_params_release(&g->policy);
}

static void
group_init(struct config_group *g, const char *name)
{
	memset(g, 0, sizeof(*g));
	g->name = xstrdup(name);
	g->desired = -1;
	policy_params_defaults(&g->policy);
	g->policy.interval_ms = -1; /* daemon.interval, filled in later */
}

static int
parse_groups(struct pctx *ctx, const struct ynode *n, void *base,
	     const struct opt *o, const char *path)
{
	struct config *cfg = base;
	int rc = 0;

	if (ynode_is_null(n))
		return 0;
	if (n->kind != YN_MAP) {
		nerr(ctx, n, path, "expected a mapping of group names to "
		     "groups, got %s", ynode_describe(n));
		return -1;
	}
	if (n->n / 2 > MAX_GROUPS) {
		nerr(ctx, n, path, "more than %d groups", MAX_GROUPS);
		return -1;
	}
	cfg->groups = xcalloc(n->n / 2 + 1, sizeof(*cfg->groups));
	ctx->group_nodes = xcalloc(n->n / 2 + 1, sizeof(*ctx->group_nodes));
	for (unsigned i = 0; i + 1 < n->n; i += 2) {
		const struct ynode *k = n->kids[i], *v = n->kids[i + 1];
		struct config_group *g;
		const char *name = want_string(ctx, k, path, "a group name");
		char *gpath;
		bool dup = false;

		if (!name) {
			rc = -1;
			continue;
		}
		gpath = join_path(path, name);
		if (!valid_name(name)) {
			nerr(ctx, k, gpath, "'%s' is not a valid group name "
			     "(letters, digits, '.', '_', '-'; starting with a "
			     "letter or digit; at most 63 characters)", name);
			rc = -1;
		}
		for (unsigned j = 0; j < cfg->n_groups; j++) {
			if (strcmp(cfg->groups[j].name, name) == 0) {
				nerr(ctx, k, gpath, "duplicate group (first "
				     "defined at line %d)", cfg->groups[j].line);
				dup = true;
			}
		}
		if (dup) {
			free(gpath);
			rc = -1;
			continue;
		}
		g = &cfg->groups[cfg->n_groups];
		group_init(g, name);
		g->line = k->line;
		ctx->group_nodes[cfg->n_groups] = v;
		cfg->n_groups++;
		if (parse_section(ctx, v, &group_section, g, gpath) != 0)
			rc = -1;
		free(gpath);
	}
	return rc;
}

static void
print_groups(struct strbuf *out, const void *base, int indent,
	     const struct opt *o)
{
	const struct config *cfg = base;

	indent_to(out, indent);
	if (!cfg->n_groups) {
		strbuf_adds(out, "groups: {}\n");
		return;
	}
	strbuf_adds(out, "groups:\n");
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		indent_to(out, indent + 2);
		print_scalar(out, cfg->groups[i].name);
		strbuf_adds(out, ":\n");
		print_section(out, &group_section, &cfg->groups[i], indent + 4);
	}
}

/* ------------------------------------------------------------------ */
/* Cross-field checks                                                   */

/* In config_load: a local file the daemon will read must be readable. */
static void
check_file(struct pctx *ctx, const struct ynode *map, const char *key,
	   const char *path, const char *file)
{
	char *full, *kpath;
	struct stat st;
	int fd;

	if (!ctx->check_files || !file)
		return;
	full = file[0] == '/' || !ctx->base_dir
		       ? xstrdup(file)
		       : xasprintf("%s/%s", ctx->base_dir, file);
	kpath = join_path(path, key);
	fd = open(full, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0) {
		nerr(ctx, ymap_get(map, key), kpath, "cannot read '%s'%s: %s",
		     file, file[0] == '/' ? "" : " (relative to the "
		     "configuration file's directory)", strerror(errno));
	} else {
		if (fstat(fd, &st) == 0 && S_ISDIR(st.st_mode))
			nerr(ctx, ymap_get(map, key), kpath,
			     "'%s' is a directory, not a file", file);
		close(fd);
	}
	free(kpath);
	free(full);
}

static void
check_secret_file(struct pctx *ctx, const struct ynode *map, const char *key,
		  const char *path, const struct config_secret *s)
{
	const struct ynode *v = ymap_get(map, key);

	if (s->source == CONFIG_SECRET_FILE && v)
		check_file(ctx, v, "file", path && *path ? path : key,
			   s->ref);
}

/*
 * In config_load: a secret from the environment must be set there, as
 * it will be for run (systemd's EnvironmentFile= applies to ExecStartPre
 * too). Otherwise check passes and run fails.
 */
static void
check_secret_env(struct pctx *ctx, const struct ynode *map, const char *key,
		 const char *path, const struct config_secret *s)
{
	const char *v;
	char *kpath;

	if (!ctx->check_files || s->source != CONFIG_SECRET_ENV ||
	    node_has_error(ctx, ymap_key(map, key)))
		return; /* not used, or already refused */
	v = getenv(s->ref);
	if (v && *v)
		return;
	kpath = join_path(path, key);
	nerr(ctx, ymap_get(ymap_get(map, key), "env"), kpath,
	     "the environment variable %s is %s; run reads the secret from it "
	     "and would fail (run check in the daemon's environment)",
	     s->ref, v ? "empty" : "not set");
	free(kpath);
}

/*
 * The secret's value, in config_load only (NULL otherwise, or when it
 * cannot be read: check_secret_file/check_secret_env said why). Trailing
 * newlines removed, as config_secret_read() does. Caller zeroes, frees.
 */
static char *
secret_peek(const struct pctx *ctx, const struct config_secret *s)
{
	char *v = NULL;
	size_t len;

	if (!ctx->check_files)
		return NULL;
	if (s->source == CONFIG_SECRET_ENV) {
		const char *e = getenv(s->ref);

		return e && *e ? xstrdup(e) : NULL;
	}
	if (s->source != CONFIG_SECRET_FILE)
		return NULL;
	v = util_read_file(s->path ? s->path : s->ref, 64 * 1024, &len);
	if (!v)
		return NULL;
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r'))
		v[--len] = '\0';
	return v;
}

/*
 * An estimate of a token's entropy in bits, for refusing weak admin
 * tokens: its length times log2 of the alphabet its characters suggest
 * (hexadecimal digits 16; else 26 per letter case, 10 digits, 33 other
 * printable characters). A token of fewer than 8 distinct characters
 * ("aaaa...", "abababab...") counts as 0: it was not drawn at random.
 * Random tokens from `openssl rand -hex 16` (32 characters) or
 * `-base64 16` (24) reach 128 bits; see docs/http-api.md.
 */
double
config_token_bits(const char *s)
{
	bool lower = false, upper = false, digit = false, other = false;
	bool hex = true;
	unsigned char seen[256] = {0};
	unsigned distinct = 0, alphabet = 0;
	size_t n = strlen(s);

	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!seen[c]++)
			distinct++;
		if (islower(c))
			lower = true;
		else if (isupper(c))
			upper = true;
		else if (isdigit(c))
			digit = true;
		else
			other = true;
		if (!isxdigit(c))
			hex = false;
	}
	if (n == 0 || distinct < 8)
		return 0;
	if (hex)
		return 4.0 * (double)n;
	alphabet = (lower ? 26 : 0) + (upper ? 26 : 0) + (digit ? 10 : 0) +
		   (other ? 33 : 0);
	return (double)n * log2((double)alphabet);
}

static void
check_tls(struct pctx *ctx, const struct ynode *map, void *base,
	  const char *path)
{
	struct config_tls *t = base;

	check_file(ctx, map, "cert", path, t->cert);
	check_file(ctx, map, "key", path, t->key);
	check_file(ctx, map, "ca", path, t->ca);
}

static void
check_influxdb(struct pctx *ctx, const struct ynode *map, void *base,
	       const char *path)
{
	struct config_influxdb *in = base;
	char *p = join_path(path, "password");

	if (in->buffer < in->batch)
		nerr(ctx, ymap_get(map, "buffer"), path,
		     "buffer (%d) must hold at least one batch (%d)",
		     in->buffer, in->batch);
	if (in->password.source != CONFIG_SECRET_NONE && !in->username)
		nerr(ctx, ymap_key(map, "password"), path,
		     "password without username");
	check_secret_file(ctx, map, "password", p, &in->password);
	check_secret_env(ctx, map, "password", path, &in->password);
	free(p);
}

static bool
is_loopback(const char *host)
{
	/* QEMU user networking maps 10.0.2.2 to the host's 127.0.0.1 */
	return strncmp(host, "127.", 4) == 0 || strcmp(host, "localhost") == 0;
}

static bool
is_wildcard(const char *host)
{
	return strcmp(host, "0.0.0.0") == 0 || strcmp(host, "::") == 0;
}

/*
 * public_url goes into every guest's seed as written, in "#va:" comment
 * lines and a double-quoted YAML scalar, and gets "/v1/checkin/ID/SECRET"
 * appended: seed.c refuses (at each provisioning) spaces, quotes, '#',
 * '?', non-ASCII and a few more. The same rule, here, where it is one
 * error instead of a failed provisioning per tick.
 */
static int
guest_url_valid(const char *s)
{
	for (size_t i = 0; s[i]; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c <= 0x20 || c >= 0x7f || strchr("\"'\\#?`<>{}|^", c)) {
			if (c > 0x20 && c < 0x7f)
				err_set("has the character '%c' at offset %zu",
					c, i);
			else
				err_set("has the byte 0x%02X at offset %zu", c,
					i);
			return -1;
		}
	}
	return 0;
}

static void
check_daemon(struct pctx *ctx, const struct ynode *map, void *base,
	     const char *path)
{
	struct config_daemon *d = base;
	char *p;

	ctx->daemon_node = map;
	if (d->public_url && guest_url_valid(d->public_url) != 0)
		nerr(ctx, ymap_get(map, "public_url"), path,
		     "public_url %s: it goes into every guest's cloud-init seed "
		     "with the check-in path appended (no spaces, quotes, '#', "
		     "'?', '\\', '<', '>', '{', '}', '|', '^', '`' or "
		     "non-ASCII; percent-encode them)", err_msg());
	if (!d->public_url && d->listen_host) {
		const char *scheme = d->tls.present ? "https" : "http";

		if (is_loopback(d->listen_host)) {
			d->public_url = url_from_host_port(scheme, "10.0.2.2",
							   d->listen_port);
			ctx->public_url_user_net = true;
		} else if (strcmp(d->listen_host, "0.0.0.0") == 0 ||
			 strcmp(d->listen_host, "::") == 0)
			nerr(ctx, ymap_get(map, "listen"), path,
			     "with a wildcard listen address, set public_url "
			     "to the URL guests can reach");
		else
			d->public_url = url_from_host_port(scheme,
							   d->listen_host,
							   d->listen_port);
		/* the URL made from listen obeys public_url's rules: else
		 * it is accepted here and refused once printed (`check`'s
		 * round trip; the config fuzzer found one with a '#') */
		if (d->public_url && (url_check_http(d->public_url) != 0 ||
				      guest_url_valid(d->public_url) != 0))
			nerr(ctx, ymap_get(map, "listen"), path,
			     "listen gives no URL guests can use (%s): set "
			     "public_url", err_msg());
	}
	if (d->state.kind == CONFIG_STATE_SQLITE) {
		if (d->ha.enabled)
			nerr(ctx, ymap_get(ymap_get(map, "ha"), "enabled"),
			     path, "ha.enabled needs a state store that both "
			     "daemons share (mysql://...), not sqlite");
		if (d->state_password.source != CONFIG_SECRET_NONE)
			nerr(ctx, ymap_key(map, "state_password"), path,
			     "state_password is only used with a mysql:// "
			     "state store");
	}
	p = join_path(path, "state_password");
	check_secret_file(ctx, map, "state_password", p, &d->state_password);
	free(p);
	p = join_path(path, "admin_token");
	check_secret_file(ctx, map, "admin_token", p, &d->admin_token);
	free(p);
	check_secret_env(ctx, map, "state_password", path, &d->state_password);
	check_secret_env(ctx, map, "admin_token", path, &d->admin_token);
	{
		char *tok = secret_peek(ctx, &d->admin_token);

		if (tok) {
			double bits = config_token_bits(tok);

			char what[80];

			if (bits > 0)
				snprintf(what, sizeof(what), "about %.0f bits "
					 "of entropy", bits);
			else
				snprintf(what, sizeof(what), "fewer than 8 "
					 "different characters");
			if (bits < 128)
				nerr(ctx, ymap_get(map, "admin_token"), path,
				     "admin_token is too weak: %zu character%s, "
				     "%s; 128 bits are needed (whoever reaches "
				     "the API could guess it). Make one with "
				     "`openssl rand -hex 16` (32 hex digits) or "
				     "`openssl rand -base64 16`", strlen(tok),
				     strlen(tok) == 1 ? "" : "s", what);
			explicit_bzero(tok, strlen(tok));
			free(tok);
		}
	}
	if (d->listen_host && !d->tls.present && !is_loopback(d->listen_host) &&
	    strcmp(d->listen_host, "::1") != 0) {
		if (is_wildcard(d->listen_host))
			nerr(ctx, ymap_get(map, "listen"), path,
			     "listen %s without tls serves the admin API on "
			     "every network in clear (the admin token, the "
			     "guests' check-in secrets): set daemon.tls, or "
			     "listen on a loopback address or on the address "
			     "of a network only this host and its guests "
			     "reach", d->listen);
		else
			nwarn(ctx, ymap_get(map, "listen"), path,
			      "listen %s without tls: the admin token and "
			      "the guests' check-in secrets cross the network "
			      "in clear. Acceptable only where nothing but "
			      "this host and its guests reach that address "
			      "(a libvirt NAT network's bridge address); "
			      "otherwise set daemon.tls", d->listen);
	}
}

/*
 * A libvirt object name the daemon writes into XML and looks up (pool,
 * network, bridge, volume): what domxml_name_valid() takes at each
 * provisioning, checked here once. NULL if fine, else what is wrong.
 */
static const char *
libvirt_name_problem(const char *s, char *buf, size_t len)
{
	size_t n = strlen(s);

	if (n > 63)
		return "is longer than 63 characters";
	if (s[0] == '.' || s[0] == '-') {
		snprintf(buf, len, "must not start with '%c'", s[0]);
		return buf;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];

		if (!(isascii(c) && (isalnum(c) || c == '.' || c == '_' ||
				     c == '-'))) {
			if (isascii(c) && isprint(c))
				snprintf(buf, len, "has the character '%c'", c);
			else
				snprintf(buf, len, "has the byte 0x%02X", c);
			return buf;
		}
	}
	return NULL;
}

static void
check_libvirt_name(struct pctx *ctx, const struct ynode *map, const char *key,
		   const char *path, const char *what, const char *s)
{
	char buf[64];
	const char *why;

	if (!s || node_has_error(ctx, ymap_get(map, key)))
		return;
	why = libvirt_name_problem(s, buf, sizeof(buf));
	if (why)
		nerr(ctx, ymap_get(map, key), path, "%s '%s' %s (allowed: "
		     "letters, digits, '.', '_', '-', not first '.' or '-'; "
		     "at most 63)", what, s, why);
}

static void
check_host(struct pctx *ctx, const struct ynode *map, void *base,
	   const char *path)
{
	struct config_host *h = base;
	int set = !!h->network + !!h->bridge + !!h->user_net;
	const char *colon;

	if (set > 1)
		nerr(ctx, ymap_key(map, h->bridge ? "bridge" : "user_net"), path,
		     "network, bridge and user_net exclude each other; set one");
	check_libvirt_name(ctx, map, "pool", path, "pool", h->pool);
	check_libvirt_name(ctx, map, "network", path, "network", h->network);
	check_libvirt_name(ctx, map, "bridge", path, "bridge", h->bridge);
	if (h->bridge) {
		h->net_kind = CONFIG_NET_BRIDGE;
		h->net_name = h->bridge;
	} else if (h->user_net) {
		h->net_kind = CONFIG_NET_USER;
		h->net_name = NULL;
	} else {
		if (!h->network)
			h->network = xstrdup("default");
		h->net_kind = CONFIG_NET_NETWORK;
		h->net_name = h->network;
	}
	if (h->uri) {
		colon = strchr(h->uri, ':');
		if (!colon || colon == h->uri || !isalpha((unsigned char)h->uri[0]) ||
		    strspn(h->uri, "abcdefghijklmnopqrstuvwxyz0123456789+.-") !=
			    (size_t)(colon - h->uri))
			nerr(ctx, ymap_get(map, "uri"), path,
			     "'%s' is not a libvirt URI (like qemu:///system)",
			     h->uri);
	}
}

static void
check_template(struct pctx *ctx, const struct ynode *map, void *base,
	       const char *path)
{
	static const char *const shape[] = {"vcpus", "memory", "kernel",
					    "initrd", "cmdline"};
	struct config_template *t = base;

	if (t->domain_xml) {
		for (size_t i = 0; i < ARRAY_SIZE(shape); i++)
			if (ymap_key(map, shape[i]))
				nerr(ctx, ymap_key(map, shape[i]), path,
				     "%s and domain_xml exclude each other "
				     "(the template defines it)", shape[i]);
		check_file(ctx, map, "domain_xml", path, t->domain_xml);
	}
	if (!t->kernel) {
		if (t->initrd)
			nerr(ctx, ymap_key(map, "initrd"), path,
			     "initrd needs kernel");
		if (t->cmdline)
			nerr(ctx, ymap_key(map, "cmdline"), path,
			     "cmdline needs kernel");
	}
	if (t->image && t->image[0] != '/' && strchr(t->image, '/')) {
		nerr(ctx, ymap_get(map, "image"), path,
		     "image '%s' must be a volume name or an absolute path",
		     t->image);
	} else if (t->image) {
		/* the volume's name: the file's name when uploaded */
		check_libvirt_name(ctx, map, "image", path,
				   t->image[0] == '/' ? "image file name"
						      : "image volume",
				   strrchr(t->image, '/') ? strrchr(t->image, '/') + 1
							  : t->image);
		if (t->image[0] == '/' && ctx->check_files &&
		    access(t->image, R_OK) != 0) {
			char *kpath = join_path(path, "image");

			nerr(ctx, ymap_get(map, "image"), kpath,
			     "cannot read '%s': %s (the daemon uploads it to a "
			     "host's pool when that pool lacks it; to use a "
			     "volume already in the pools, give its name "
			     "instead of a path)", t->image, strerror(errno));
			free(kpath);
		}
	}
}

static void
check_cloud_init(struct pctx *ctx, const struct ynode *map, void *base,
		 const char *path)
{
	struct config_cloud_init *ci = base;

	if (ci->network_config && ci->static_addresses.present)
		nerr(ctx, ymap_key(map, "static_addresses"), path,
		     "network_config and static_addresses exclude each other");
	check_file(ctx, map, "user_data", path, ci->user_data);
	check_file(ctx, map, "network_config", path, ci->network_config);
}

static bool
same_prefix(const char *a, const char *b, int family, int prefix)
{
	unsigned char x[16], y[16];

	if (inet_pton(family, a, x) != 1 || inet_pton(family, b, y) != 1)
		return false;
	for (int i = 0; i < prefix; i++) {
		int mask = 0x80 >> (i % 8);

		if ((x[i / 8] & mask) != (y[i / 8] & mask))
			return false;
	}
	return true;
}

static void
check_static(struct pctx *ctx, const struct ynode *map, void *base,
	     const char *path)
{
	struct config_static_addresses *sa = base;
	int gf;

	if (!sa->range || !sa->prefix)
		return;
	if (sa->family == AF_INET && sa->prefix > 32) {
		nerr(ctx, ymap_get(map, "prefix"), path,
		     "prefix %d is too long for IPv4 (at most 32)", sa->prefix);
		return;
	}
	if (!same_prefix(sa->first, sa->last, sa->family, sa->prefix))
		nerr(ctx, ymap_get(map, "range"), path,
		     "the range %s does not fit in one /%d subnet", sa->range,
		     sa->prefix);
	if (sa->gateway) {
		if (!valid_ip(sa->gateway, &gf) || gf != sa->family)
			nerr(ctx, ymap_get(map, "gateway"), path,
			     "gateway %s is not of the range's address family",
			     sa->gateway);
		else if (!same_prefix(sa->first, sa->gateway, sa->family,
				      sa->prefix))
			nerr(ctx, ymap_get(map, "gateway"), path,
			     "gateway %s is outside the range's /%d subnet",
			     sa->gateway, sa->prefix);
	}
}

static void
check_limit(struct pctx *ctx, const struct ynode *map, void *base,
	    const char *path)
{
	struct policy_rate_limit *l = base;

	if (l->period_ms > 0 && l->instances == 0 && l->percent == 0)
		nerr(ctx, map, path, "a period with neither instances nor "
		     "percent allows no change at all");
	if (l->period_ms == 0 && (l->instances > 0 || l->percent > 0))
		nerr(ctx, map, path, "instances and percent need a period");
}

/* The forecast is of the load target tracking measures: it needs a
 * target. (buffer and window are at most 6h each, so together within
 * FORECAST_HORIZON_MAX_MIN.) */
static void
check_predictive(struct pctx *ctx, const struct ynode *sc,
		 const struct config_group *g, const char *path)
{
	const struct policy_params *p = &g->policy;
	const struct ynode *pn = ymap_get(sc, "predictive");
	bool tracked = false;

	if (!pn || p->predictive.mode == POLICY_PREDICTIVE_OFF ||
	    node_has_error(ctx, pn))
		return;
	for (unsigned m = 0; m < POLICY_METRIC_LAST; m++)
		tracked = tracked || p->target[m] > 0;
	for (unsigned a = 0; a < p->n_app && a < POLICY_APP_MAX; a++)
		tracked = tracked || p->app[a].target > 0;
	if (!tracked)
		nerr(ctx, ymap_get(pn, "mode"), path, "scaling.predictive "
		     "needs a scaling.target: the forecast is of the load "
		     "target tracking measures");
}

/* The pool against the group's bounds and its template. */
static void
check_warm_pool(struct pctx *ctx, const struct ynode *wp,
		const struct config_group *g, const char *path)
{
	const struct config_warm_pool *w = &g->warm_pool;

	if (!w->present || node_has_error(ctx, wp))
		return;
	if (g->max >= g->min && w->size > g->max - g->min)
		nerr(ctx, ymap_get(wp, "size"), path,
		     "warm_pool.size (%d) is more than max - min (%d): the "
		     "pool could never be used in full", w->size,
		     g->max - g->min);
	if (w->max_prepared && w->max_prepared < g->max)
		nerr(ctx, ymap_get(wp, "max_prepared"), path,
		     "warm_pool.max_prepared (%d) is less than max (%d): it "
		     "caps desired + warm, so it cannot be below max",
		     w->max_prepared, g->max);
	if (w->reuse_on_scale_in && w->size == 0)
		nerr(ctx, ymap_get(wp, "reuse_on_scale_in"), path,
		     "warm_pool.reuse_on_scale_in needs a size above 0");
}

static void
check_group(struct pctx *ctx, const struct ynode *map, void *base,
	    const char *path)
{
	struct config_group *g = base;
	const struct ynode *sc = ymap_get(map, "scaling");
	const struct config_static_addresses *sa =
		&g->cloud_init.static_addresses;

	if (g->max < g->min && ymap_get(map, "max") && ymap_get(map, "min") &&
	    !node_has_error(ctx, ymap_get(map, "max")) &&
	    !node_has_error(ctx, ymap_get(map, "min")))
		nerr(ctx, ymap_get(map, "max"), path,
		     "max (%d) is less than min (%d)", g->max, g->min);
	if (g->desired < 0)
		g->desired = g->min;
	else if ((g->desired < g->min || g->desired > g->max) &&
		 !node_has_error(ctx, ymap_get(map, "desired")))
		nerr(ctx, ymap_get(map, "desired"), path,
		     "desired (%d) is outside min..max (%d..%d)", g->desired,
		     g->min, g->max);
	if (!g->template.name_prefix)
		g->template.name_prefix = xstrdup(g->name);
	check_predictive(ctx, sc, g, path);
	check_warm_pool(ctx, ymap_get(map, "warm_pool"), g, path);
	if (sa->present && sa->range && sa->count < (uint64_t)g->max)
		nerr(ctx, ymap_get(ymap_get(ymap_get(map, "cloud_init"),
					    "static_addresses"), "range"),
		     path, "cloud_init.static_addresses.range holds %" PRIu64
		     " addresses, fewer than max (%d)", sa->count, g->max);
	if (g->placement != CONFIG_PLACEMENT_PLUGIN &&
	    g->placement_options.n > 0)
		nerr(ctx, ymap_key(map, "placement_options"), path,
		     "placement_options only apply to placement: plugin:...");
	for (unsigned i = 0; i < g->policy.n_schedules; i++) {
		const struct policy_schedule *s = &g->policy.schedules[i];
		const struct ynode *item = NULL;
		const struct ynode *seq = ymap_get(sc, "schedules");

		if (seq && seq->kind == YN_SEQ)
			for (unsigned j = 0; j < seq->n && !item; j++) {
				const struct ynode *nm = ymap_get(seq->kids[j],
								  "name");

				if (nm && nm->kind == YN_SCALAR &&
				    strcmp(nm->value, s->name) == 0)
					item = seq->kids[j];
			}
		if (s->max < 0 && s->min > g->max)
			nerr(ctx, item, path, "schedule '%s': min %d is more "
			     "than the group's max %d (set max in the schedule "
			     "too)", s->name, s->min, g->max);
		if (s->min < 0 && s->max >= 0 && s->max < g->min)
			nerr(ctx, item, path, "schedule '%s': max %d is less "
			     "than the group's min %d (set min in the schedule "
			     "too)", s->name, s->max, g->min);
	}
	g->policy.min = g->min;
	g->policy.max = g->max;
}

/*
 * daemon.public_url not written, listen on loopback: the default
 * http://10.0.2.2:PORT is the host's loopback only to guests on QEMU user
 * networking. A guest on a libvirt network or a bridge sends it out of
 * its gateway, never reaches the daemon, never checks in, and is replaced
 * again and again. libvirt's test driver (test://) runs no guest.
 */
static void
check_user_net_url(struct pctx *ctx, const struct config *cfg)
{
	const struct ynode *hosts = ctx->hosts_node;

	/* on an otherwise valid file: hosts and groups are whole then */
	if (!ctx->public_url_user_net || !ctx->check_files || has_errors(ctx))
		return;
	for (unsigned i = 0; i < cfg->n_hosts; i++) {
		const struct config_host *h = &cfg->hosts[i];
		bool used = false;

		if (h->net_kind == CONFIG_NET_USER || !h->uri ||
		    strncmp(h->uri, "test:", 5) == 0)
			continue;
		for (unsigned g = 0; g < cfg->n_groups && !used; g++)
			for (unsigned j = 0; cfg->groups[g].host_ptrs &&
					     j < cfg->groups[g].hosts.n; j++)
				if (cfg->groups[g].host_ptrs[j] == h)
					used = true;
		if (!used)
			continue;
		nerr(ctx, hosts && hosts->kind == YN_SEQ && i < hosts->n
				  ? hosts->kids[i]
				  : ymap_get(ctx->daemon_node, "listen"),
		     "daemon.public_url",
		     "not set, so it defaults to %s, which only guests on "
		     "QEMU user networking (user_net) reach; the guests of "
		     "host '%s' (%s %s) cannot and would never check in: set "
		     "daemon.public_url to an address they reach, and "
		     "daemon.listen to one the daemon serves it on",
		     cfg->daemon.public_url, h->name,
		     h->net_kind == CONFIG_NET_BRIDGE ? "bridge" : "network",
		     h->net_name ? h->net_name : "?");
	}
}

static void
check_root(struct pctx *ctx, const struct ynode *map, void *base,
	   const char *path)
{
	struct config *cfg = base;
	const char *app_names[POLICY_APP_DAEMON_MAX];
	unsigned n_app_names = 0;

	/* the daemon keeps every instance's last value of each app metric
	 * some group names: a bounded set */
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		const struct policy_params *pp = &cfg->groups[i].policy;

		for (unsigned a = 0; a < pp->n_app; a++) {
			unsigned k;

			for (k = 0; k < n_app_names; k++)
				if (strcmp(app_names[k], pp->app[a].name) == 0)
					break;
			if (k < n_app_names)
				continue;
			if (n_app_names == POLICY_APP_DAEMON_MAX) {
				nerr(ctx, ctx->group_nodes[i], "groups",
				     "the groups name more than %d different "
				     "application metrics", POLICY_APP_DAEMON_MAX);
				break;
			}
			app_names[n_app_names++] = pp->app[a].name;
		}
	}
	for (unsigned i = 0; i < cfg->n_groups; i++) {
		struct config_group *g = &cfg->groups[i];
		const struct ynode *gn = ctx->group_nodes[i];
		const struct ynode *hn = ymap_get(gn, "hosts");
		char *gpath = xasprintf("groups.%s", g->name);

		if (g->policy.interval_ms < 0) {
			g->policy.interval_ms = cfg->daemon.interval_ms;
		} else if (g->policy.interval_ms < cfg->daemon.interval_ms) {
			const struct ynode *iv =
				ymap_get(ymap_get(gn, "scaling"), "interval");
			char *a = util_format_duration(g->policy.interval_ms);
			char *b = util_format_duration(cfg->daemon.interval_ms);

			if (!node_has_error(ctx, iv))
				nerr(ctx, iv, gpath, "scaling.interval (%s) is "
				     "shorter than daemon.interval (%s), which is "
				     "how often metrics are collected", a, b);
			free(a);
			free(b);
		}
		if (g->policy.interval_ms > cfg->daemon.metrics.retention_ms) {
			const struct ynode *iv =
				ymap_get(ymap_get(gn, "scaling"), "interval");
			char *a = util_format_duration(g->policy.interval_ms);
			char *b = util_format_duration(
				cfg->daemon.metrics.retention_ms);

			const struct ynode *dn = ymap_get(map, "daemon");
			const char *from = iv ? "" : ", from daemon.interval";

			if (!iv)
				iv = ymap_get(ymap_get(dn, "metrics"),
					      "retention");
			if (!iv)
				iv = ymap_get(dn, "interval");
			if (!node_has_error(ctx, iv))
				nerr(ctx, iv, gpath, "scaling.interval (%s%s) is "
				     "longer than daemon.metrics.retention (%s): "
				     "each decision reads one interval of samples "
				     "from the built-in store", a, from, b);
			free(a);
			free(b);
		}
		if (!hn) {
			/* default: every host */
			strlist_release(&g->hosts);
			g->hosts.v = xcalloc(cfg->n_hosts + 1,
					     sizeof(*g->hosts.v));
			for (unsigned j = 0; j < cfg->n_hosts; j++)
				if (cfg->hosts[j].name &&
				    config_host_find(cfg, cfg->hosts[j].name) ==
					    &cfg->hosts[j])
					g->hosts.v[g->hosts.n++] =
						xstrdup(cfg->hosts[j].name);
		} else if (hn->kind == YN_SEQ && hn->n == 0) {
			nerr(ctx, hn, gpath, "hosts: the list is empty; name at "
			     "least one host, or leave hosts out for all");
		}
		g->host_ptrs = xcalloc(g->hosts.n + 1, sizeof(*g->host_ptrs));
		for (unsigned j = 0; j < g->hosts.n; j++) {
			const struct ynode *item =
				hn && hn->kind == YN_SEQ && j < hn->n
					? hn->kids[j]
					: hn;
			char *hpath = xasprintf("%s.hosts[%u]", gpath, j);

			g->host_ptrs[j] = config_host_find(cfg, g->hosts.v[j]);
			if (!g->host_ptrs[j])
				nerr(ctx, item, hpath, "no host named '%s' is "
				     "defined in hosts", g->hosts.v[j]);
			for (unsigned k = 0; k < j; k++)
				if (strcmp(g->hosts.v[k], g->hosts.v[j]) == 0)
					nerr(ctx, item, hpath, "host '%s' is "
					     "listed twice", g->hosts.v[j]);
			free(hpath);
		}
		free(gpath);
	}
	check_user_net_url(ctx, cfg);
}

/* ------------------------------------------------------------------ */
/* Public API                                                           */

static struct config *
parse_data(struct pctx *ctx, const char *data, size_t len)
{
	struct config *cfg;
	struct ynode *root;

	if (len > CONFIG_MAX_FILE_SIZE) {
		perr_add(ctx, 0, 0, "larger than 4 MiB; is this the right file?");
		return NULL;
	}
	if (check_utf8(ctx, data, len) != 0)
		return NULL;
	root = yaml_build(ctx, data, len);
	if (!root)
		return NULL;
	if (root->kind != YN_MAP) {
		nerr(ctx, root, NULL, "the top level must be a mapping "
		     "(version: 1, daemon: ..., hosts: ..., groups: ...), got %s",
		     ynode_describe(root));
		ynode_free(root);
		return NULL;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	ctx->cfg = cfg;
	parse_section(ctx, root, &root_section, cfg, "");
	ynode_free(root);
	free(ctx->group_nodes);
	ctx->group_nodes = NULL;
	if (has_errors(ctx)) {
		config_free(cfg);
		return NULL;
	}
	return cfg;
}

struct config *
config_parse_buffer(const char *data, size_t len, const char *name,
		    struct strbuf *errors)
{
	struct pctx ctx = {.name = name ? name : "<buffer>"};
	struct config *cfg = parse_data(&ctx, data, len);
	struct strbuf warnings = STRBUF_INIT;

	if (cfg) {
		cfg->path = xstrdup(ctx.name);
		cfg->base_dir = NULL;
	}
	perr_flush(&ctx, errors, &warnings);
	if (cfg && warnings.len)
		cfg->warnings = strbuf_detach(&warnings);
	strbuf_release(&warnings);
	return cfg;
}

/* The directory relative paths in the file resolve against. */
static char *
dir_of(const char *path)
{
	char *dir = xstrdup(path), *slash = strrchr(dir, '/');

	if (!slash) {
		free(dir);
		return xstrdup(".");
	}
	if (slash == dir)
		slash[1] = '\0';
	else
		*slash = '\0';
	return dir;
}

/* The file's bytes, or NULL with the problem recorded. */
static char *
read_config_file(struct pctx *ctx, const char *path, size_t *len)
{
	char *data = util_read_file(path, CONFIG_MAX_FILE_SIZE, len);

	if (!data) {
		const char *m = err_msg();
		size_t plen = strlen(path);

		if (strncmp(m, path, plen) == 0 && strncmp(m + plen, ": ", 2) == 0)
			m += plen + 2;
		if (strncmp(m, "larger than", 11) == 0)
			perr_add(ctx, 0, 0, "larger than 4 MiB; is this the "
				 "right file?");
		else
			perr_add(ctx, 0, 0, "cannot read the configuration: %s",
				 m);
	}
	return data;
}

static struct config *
load(const char *path, struct strbuf *errors, bool check_files)
{
	struct pctx ctx = {.name = path, .check_files = check_files};
	struct strbuf warnings = STRBUF_INIT;
	struct config *cfg = NULL;
	char *data, *dir = dir_of(path);
	size_t len;

	ctx.base_dir = dir;
	data = read_config_file(&ctx, path, &len);
	if (data) {
		cfg = parse_data(&ctx, data, len);
		free(data);
	}
	if (cfg) {
		cfg->path = xstrdup(path);
		cfg->base_dir = dir;
		dir = NULL;
	}
	free(dir);
	perr_flush(&ctx, errors, &warnings);
	if (cfg && warnings.len)
		cfg->warnings = strbuf_detach(&warnings);
	strbuf_release(&warnings);
	return cfg;
}

struct config *
config_load(const char *path, struct strbuf *errors)
{
	return load(path, errors, true);
}

struct config *
config_load_offline(const char *path, struct strbuf *errors)
{
	return load(path, errors, false);
}

/* The daemon keys the client reads, parsed on their own. */
static const char *const client_keys[] = {"listen", "public_url", "tls",
					  "admin_token", NULL};

/*
 * config_load_client's fallback: the tree (whole, or up to a syntax
 * error) and from it only client_keys, each parsed by its own table
 * row; problems elsewhere are ignored. The daemon section must be
 * complete: a section cut off by a syntax error might lack the token.
 */
static struct config *
load_client_keys(const char *path, struct strbuf *errors)
{
	struct pctx ctx = {.name = path, .keep_partial = true};
	struct config *cfg = NULL;
	struct ynode *root = NULL;
	const struct ynode *dn;
	char *data, *dir = dir_of(path);
	size_t len;

	ctx.base_dir = dir;
	data = read_config_file(&ctx, path, &len);
	if (!data)
		goto out;
	if (check_utf8(&ctx, data, len) == 0)
		root = yaml_build(&ctx, data, len);
	free(data);
	/* only what follows counts */
	perr_flush(&ctx, NULL, NULL);
	dn = ymap_get(root, "daemon");
	if (!root || root->kind != YN_MAP || (dn && dn->kind != YN_MAP) ||
	    (dn && !dn->closed) || (!dn && !root->closed)) {
		perr_add(&ctx, 0, 0, "its daemon section cannot be read on its "
			 "own either (it is cut off by the error, or missing)");
		goto out;
	}
	cfg = xcalloc(1, sizeof(*cfg));
	apply_defaults(&daemon_section, &cfg->daemon, true);
	for (const struct opt *o = daemon_opts; o->name; o++) {
		const struct ynode *v = ymap_get(dn, o->name);
		char *kpath;

		if (!v || !in_list(o->name, client_keys))
			continue;
		kpath = join_path("daemon", o->name);
		parse_value(&ctx, v, &cfg->daemon, o, kpath);
		free(kpath);
	}
	check_daemon(&ctx, dn, &cfg->daemon, "daemon");
	if (has_errors(&ctx)) {
		config_free(cfg);
		cfg = NULL;
	} else {
		cfg->path = xstrdup(path);
		cfg->base_dir = dir;
		dir = NULL;
	}
out:
	ynode_free(root);
	free(dir);
	perr_flush(&ctx, errors, NULL);
	return cfg;
}

struct config *
config_load_client(const char *path, struct strbuf *problems)
{
	struct config *cfg = config_load_offline(path, problems);
	struct strbuf more = STRBUF_INIT;

	if (cfg)
		return cfg;
	cfg = load_client_keys(path, &more);
	/* a file that cannot be read fails both ways alike: say it once */
	if (!cfg && !strstr(strbuf_str(problems), strbuf_str(&more)))
		strbuf_add(problems, more.buf, more.len);
	strbuf_release(&more);
	return cfg;
}


void
config_free(struct config *cfg)
{
	struct config_daemon *d;

	if (!cfg)
		return;
	d = &cfg->daemon;
	free(d->listen);
	free(d->listen_host);
	free(d->public_url);
	state_release(&d->state);
	secret_release(&d->state_password);
	secret_release(&d->admin_token);
	free(d->tls.cert);
	free(d->tls.key);
	free(d->tls.ca);
	free(d->metrics.influxdb.url);
	free(d->metrics.influxdb.database);
	free(d->metrics.influxdb.username);
	secret_release(&d->metrics.influxdb.password);
	free(d->ha.node_id);
	for (unsigned i = 0; i < cfg->n_hosts; i++) {
		struct config_host *h = &cfg->hosts[i];

		free(h->name);
		free(h->uri);
		free(h->pool);
		free(h->network);
		free(h->bridge);
	}
	free(cfg->hosts);
	for (unsigned i = 0; i < cfg->n_groups; i++)
		group_release(&cfg->groups[i]);
	free(cfg->groups);
	free(cfg->path);
	free(cfg->base_dir);
	free(cfg->warnings);
	free(cfg);
}

const struct config_group *
config_group_find(const struct config *cfg, const char *name)
{
	for (unsigned i = 0; cfg && name && i < cfg->n_groups; i++)
		if (strcmp(cfg->groups[i].name, name) == 0)
			return &cfg->groups[i];
	return NULL;
}

const struct config_host *
config_host_find(const struct config *cfg, const char *name)
{
	for (unsigned i = 0; cfg && name && i < cfg->n_hosts; i++)
		if (cfg->hosts[i].name && strcmp(cfg->hosts[i].name, name) == 0)
			return &cfg->hosts[i];
	return NULL;
}

char *
config_resolve_path(const struct config *cfg, const char *path)
{
	if (!path)
		return NULL;
	if (path[0] == '/' || !cfg->base_dir)
		return xstrdup(path);
	return xasprintf("%s/%s", cfg->base_dir, path);
}

int
config_print(const struct config *cfg, struct strbuf *out)
{
	print_section(out, &root_section, cfg, 0);
	return 0;
}

int
config_secret_read(const struct config_secret *s, char **out)
{
	*out = NULL;
	switch (s->source) {
	case CONFIG_SECRET_FILE: {
		const char *path = s->path ? s->path : s->ref;
		struct stat st;
		size_t len;
		char *v;

		v = util_read_file(path, 64 * 1024, &len);
		if (!v) {
			err_prefix("secret file");
			return -1;
		}
		if (stat(path, &st) == 0 && (st.st_mode & S_IROTH))
			log_warn("secret file %s is readable by every user; "
				 "chmod o-r it", path);
		while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r'))
			v[--len] = '\0';
		if (len == 0 || strlen(v) != len) {
			err_set("secret file %s is empty or holds a NUL byte",
				path);
			free(v);
			return -1;
		}
		*out = v;
		return 0;
	}
	case CONFIG_SECRET_ENV: {
		const char *v = getenv(s->ref);

		if (!v || !*v) {
			err_set("environment variable %s is %s", s->ref,
				v ? "empty" : "not set");
			return -1;
		}
		*out = xstrdup(v);
		return 0;
	}
	default:
		err_set("no secret configured");
		return -1;
	}
}

/* Reload: every option of the daemon section without F_RELOAD. */
static void
reload_cmp(const struct section *sec, const void *a, const void *b,
	   const char *path, struct strbuf *why, int *rc)
{
	for (const struct opt *o = sec->opts; o->name; o++) {
		char *kpath = join_path(path, o->name);

		if (o->flags & F_RELOAD) {
			free(kpath);
			continue;
		}
		if (o->type == T_SECTION) {
			reload_cmp(o->sub, CFIELD(a, o, char), CFIELD(b, o, char),
				   kpath, why, rc);
		} else {
			struct strbuf x = STRBUF_INIT, y = STRBUF_INIT;

			if (o->type == T_CUSTOM) {
				o->print(&x, a, 0, o);
				o->print(&y, b, 0, o);
			} else {
				print_value(&x, a, o);
				print_value(&y, b, o);
			}
			if (strcmp(strbuf_str(&x), strbuf_str(&y)) != 0) {
				strbuf_addf(why, "%s: changed; a reload cannot "
					    "apply this, restart the daemon\n",
					    kpath);
				*rc = -1;
			}
			strbuf_release(&x);
			strbuf_release(&y);
		}
		free(kpath);
	}
}

int
config_reload_check(const struct config *old_cfg,
		    const struct config *new_cfg, struct strbuf *why)
{
	int rc = 0;

	reload_cmp(&daemon_section, &old_cfg->daemon, &new_cfg->daemon,
		   "daemon", why, &rc);
	/* The daemon keeps one connection per host: the set of hosts and
	 * their URIs stay; their limits and networks may change. */
	for (unsigned i = 0; i < old_cfg->n_hosts; i++) {
		const struct config_host *o = &old_cfg->hosts[i];
		const struct config_host *n = config_host_find(new_cfg, o->name);

		if (!n) {
			strbuf_addf(why, "hosts: host '%s' was removed; a "
				    "reload cannot apply this, restart the "
				    "daemon\n", o->name);
			rc = -1;
		} else if (strcmp(o->uri, n->uri) != 0) {
			strbuf_addf(why, "hosts: the uri of host '%s' changed; "
				    "a reload cannot apply this, restart the "
				    "daemon\n", o->name);
			rc = -1;
		} else if (strcmp(o->pool, n->pool) != 0) {
			/* removals find an instance's volumes in its host's
			 * pool: instances made in the old one would leave
			 * theirs behind */
			strbuf_addf(why, "hosts: the pool of host '%s' changed "
				    "from '%s' to '%s'; a reload cannot apply "
				    "this: the host's instances have their "
				    "volumes in '%s'. Remove them (scale the "
				    "groups off the host), then restart the "
				    "daemon\n", o->name, o->pool, n->pool,
				    o->pool);
			rc = -1;
		}
	}
	for (unsigned i = 0; i < new_cfg->n_hosts; i++) {
		if (!config_host_find(old_cfg, new_cfg->hosts[i].name)) {
			strbuf_addf(why, "hosts: host '%s' was added; a reload "
				    "cannot apply this, restart the daemon\n",
				    new_cfg->hosts[i].name);
			rc = -1;
		}
	}
	return rc;
}

static const char *
type_name(const struct opt *o)
{
	static const char *const names[] = {
		[T_STR] = "string", [T_PATH] = "path", [T_NAME] = "name",
		[T_URL] = "URL", [T_BOOL] = "boolean", [T_INT] = "integer",
		[T_DOUBLE] = "number", [T_DURATION] = "duration",
		[T_SIZE] = "size", [T_SIZE_D] = "size per second",
		[T_PERCENT] = "percentage", [T_FRACTION] = "percentage",
		[T_ENUM] = "keyword", [T_SECRET] = "secret",
		[T_STRLIST] = "list of names", [T_IPLIST] = "list of addresses",
		[T_NODE] = "value", [T_SECTION] = "mapping",
		[T_CUSTOM] = "value",
	};

	return o->type_name ? o->type_name : names[o->type];
}

static void
schema_walk(const struct section *sec, const char *prefix, const void *base,
	    config_schema_fn fn, void *arg)
{
	for (const struct opt *o = sec->opts; o->name; o++) {
		struct config_key_info k = {0};
		char *key = join_path(prefix, o->name);
		char *bounds = NULL;
		struct strbuf def = STRBUF_INIT;

		k.key = key;
		k.type = type_name(o);
		k.required = o->flags & F_REQ;
		k.reloadable = o->flags & F_RELOAD;
		k.doc = o->doc;
		if (o->defdoc)
			k.def = o->defdoc;
		else if (o->def)
			k.def = o->def;
		else if (base && !k.required && o->type != T_SECTION &&
			 o->type != T_CUSTOM) {
			print_value(&def, base, o);
			k.def = strbuf_str(&def);
		}
		switch (o->type) {
		case T_INT:
		case T_DOUBLE:
		case T_DURATION:
		case T_SIZE:
		case T_SIZE_D:
		case T_PERCENT:
		case T_FRACTION:
			if (o->min != o->max || o->min != 0) {
				char *a = format_num(o->type, o->min);
				char *b = format_num(o->type, o->max);

				bounds = xasprintf("%s%s..%s",
						   o->flags & F_MIN_EXCL ? ">"
									 : "",
						   a, b);
				free(a);
				free(b);
			}
			break;
		case T_ENUM: {
			struct strbuf sb = STRBUF_INIT;

			for (int i = 0; o->enums[i]; i++)
				strbuf_addf(&sb, "%s%s", i ? " | " : "",
					    o->enums[i]);
			bounds = strbuf_detach(&sb);
			break;
		}
		default:
			break;
		}
		k.bounds = bounds;
		fn(&k, arg);
		if (o->type == T_SECTION)
			schema_walk(o->sub, key,
				    base ? CFIELD(base, o, char) : NULL, fn, arg);
		else if (o->type == T_CUSTOM && o->sub) {
			char *sub = xasprintf("%s%s", key, o->elem);

			if (o->sub == &group_section) {
				struct config_group g;

				group_init(&g, "x");
				schema_walk(o->sub, sub, &g, fn, arg);
				group_release(&g);
			} else {
				schema_walk(o->sub, sub, NULL, fn, arg);
			}
			free(sub);
		}
		strbuf_release(&def);
		free(bounds);
		free(key);
	}
}

void
config_schema_walk(config_schema_fn fn, void *arg)
{
	schema_walk(&root_section, "", NULL, fn, arg);
}

struct reload_find {
	const char *key;
	int result;
};

static void
reload_find_cb(const struct config_key_info *k, void *arg)
{
	struct reload_find *f = arg;

	if (strcmp(k->key, f->key) == 0)
		f->result = k->reloadable;
}

int
config_key_reloadable(const char *key)
{
	struct reload_find f = {key, -1};

	config_schema_walk(reload_find_cb, &f);
	return f.result;
}
