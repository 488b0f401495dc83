/*
 * promsrc.h: an application metric measured outside the VMs, read from
 * Prometheus with an instant query (docs/scaling.md, "External metrics":
 * scaling.target.app.source: { prometheus: URL, query: PROMQL }).
 *
 * Each source has a worker thread of its own that runs
 * GET URL/api/v1/query?query=PROMQL once per the group's scaling interval
 * (libcurl, TLS verified, an optional bearer token), parses the answer
 * (promsrc_parse) and keeps the last value with its time, or why there is
 * none. The loop reads that (promsrc_get) and never waits on HTTP: a
 * source that is slow or down only makes its value unknown. Errors are
 * logged once and then rate-limited; the token is never logged.
 */
#ifndef VA_PROMSRC_H
#define VA_PROMSRC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* A query is at most this long (config.c refuses longer ones). */
#define PROMSRC_QUERY_MAX 4096
/* Bodies larger than this are refused (one number is a few hundred bytes). */
#define PROMSRC_BODY_MAX (1u << 20)
/* Why a value is unknown: at most this long, with its NUL. */
#define PROMSRC_WHY_MAX 240

/*
 * Read a Prometheus HTTP API answer to an instant query: body is len
 * bytes (not necessarily NUL-terminated). 0 with *out when it holds one
 * number: a "scalar" result, or a "vector" of exactly one series, whose
 * value is finite, from 0 to 1e12. -1 otherwise, with why (a
 * NUL-terminated line of at most whylen - 1 bytes, control characters
 * replaced) saying what is wrong: not JSON, not Prometheus' shape,
 * "status": "error" (with Prometheus' own error text, shortened), no
 * series, N series, a matrix or string result, a value that is NaN,
 * infinite, negative or too large. Pure; the unit tests and the fuzzer
 * call it.
 */
int promsrc_parse(const char *body, size_t len, double *out, char *why,
		  size_t whylen);

/*
 * The query URL: base URL's path + "/api/v1/query" (a trailing '/' of
 * the path dropped, its query and fragment too) with query=PROMQL
 * URL-encoded. *shown: the base URL without user info, query or
 * fragment, for messages. Caller frees both. -1 with err_set() when url
 * is not an http:// or https:// URL.
 */
int promsrc_urls(const char *url, const char *query, char **query_url,
		 char **shown);

struct promsrc_opts {
	const char *label;      /* for logs: "group web, app metric lb_rps" */
	const char *url;        /* base URL of Prometheus (http or https) */
	const char *query;      /* PromQL */
	const char *token;      /* bearer token or NULL; copied, never logged */
	int64_t timeout_ms;     /* per query */
	int64_t interval_ms;    /* between the starts of two queries */
};

struct promsrc;

/* Start the worker (its first query at once). NULL with err_set(). */
struct promsrc *promsrc_new(const struct promsrc_opts *o);
/* Stop the worker (a query in flight is abandoned at once); accepts NULL. */
void promsrc_free(struct promsrc *s);

/* What the worker knows, copied out under its lock. */
struct promsrc_state {
	bool have;              /* a value was read at some point */
	double value;           /* the last value read */
	int64_t value_ms;       /* when (monotonic) */
	bool failing;           /* the last query failed ... */
	char why[PROMSRC_WHY_MAX]; /* ... because of this */
	int64_t tried_ms;       /* when the last query ended; 0: none yet */
	unsigned long queries;  /* queries made */
	unsigned long errors;   /* of those, failed */
};

void promsrc_get(struct promsrc *s, struct promsrc_state *out);
/* The base URL without user info, for messages and the API. */
const char *promsrc_shown_url(const struct promsrc *s);

#endif
