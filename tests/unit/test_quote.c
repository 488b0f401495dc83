/*
 * Unit tests for quote.c: JSON string literals (json-c) byte for byte,
 * and YAML double-quoted scalars byte for byte and parsed back by libyaml
 * to the very string given.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>
#include <json-c/json.h>
#include <yaml.h>

#include "log.h"
#include "quote.h"
#include "util.h"

static void
test_json(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", "\"\""},
		{"plain", "\"plain\""},
		{"q\"b\\s", "\"q\\\"b\\\\s\""},
		{"a/b", "\"a/b\""}, /* no \/ */
		{"\n\r\t", "\"\\n\\r\\t\""},
		{"\b\f", "\"\\b\\f\""},
		{"\x01\x1f", "\"\\u0001\\u001f\""},
		{"del \x7f", "\"del \x7f\""},
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
		 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\""},
		{"ls \xe2\x80\xa8", "\"ls \xe2\x80\xa8\""},
		{"bad \xc3 utf8", "\"bad \xc3 utf8\""}, /* passed through */
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		struct strbuf sb = STRBUF_INIT;

		quote_json(&sb, cases[i].in);
		if (strcmp(sb.buf, cases[i].out) != 0)
			fail_msg("case %zu: got %s, want %s", i, sb.buf,
				 cases[i].out);
		/* valid UTF-8 in, valid JSON out: json-c reads it back */
		if (i != ARRAY_SIZE(cases) - 1) {
			char *doc = xasprintf("[%s]", sb.buf);
			struct json_object *o = json_tokener_parse(doc);

			assert_non_null(o);
			assert_string_equal(json_object_get_string(
				json_object_array_get_idx(o, 0)), cases[i].in);
			json_object_put(o);
			free(doc);
		}
		strbuf_release(&sb);
	}
}

/* The first scalar of a YAML document, as libyaml reads it. */
static char *
yaml_first_scalar(const char *doc)
{
	yaml_parser_t p;
	yaml_event_t ev;
	char *v = NULL;

	assert_true(yaml_parser_initialize(&p));
	yaml_parser_set_input_string(&p, (const unsigned char *)doc,
				     strlen(doc));
	for (;;) {
		if (!yaml_parser_parse(&p, &ev))
			fail_msg("libyaml refused %s: %s", doc, p.problem);
		if (ev.type == YAML_SCALAR_EVENT)
			v = xstrndup((const char *)ev.data.scalar.value,
				     ev.data.scalar.length);
		if (v || ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			break;
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	return v;
}

static void
test_yaml(void **state)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{"", "\"\""},
		{"plain", "\"plain\""},
		{"q\"b\\s", "\"q\\\"b\\\\s\""},
		{"a: b # c", "\"a: b # c\""},
		{"\n\t", "\"\\n\\t\""},
		{"cr\r nul-less \x01 esc \x1b del \x7f",
		 "\"cr\\x0D nul-less \\x01 esc \\x1B del \\x7F\""},
		{"c1 \xc2\x80 \xc2\x9f nel \xc2\x85 nbsp \xc2\xa0",
		 "\"c1 \\x80 \\x9F nel \\N nbsp \xc2\xa0\""},
		{"ls \xe2\x80\xa8 ps \xe2\x80\xa9", "\"ls \\L ps \\P\""},
		{"bom \xef\xbb\xbf nonchar \xef\xbf\xbe \xef\xbf\xbf",
		 "\"bom \\uFEFF nonchar \\uFFFE \\uFFFF\""},
		/* printable beyond the BMP stays as it is (libyaml's emitter
		 * would write \U0001F600) */
		{"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf0\xa0\x80\x80",
		 "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xf0\xa0\x80\x80\""},
	};
	static const char *const bad[] = {
		"bad \xc3", "bad \xc3 x", "overlong \xc0\xaf", "overlong \xe0\x80\xaf",
		"surrogate \xed\xa0\x80", "too big \xf4\x90\x80\x80", "\xff",
		"\x80 lone continuation",
	};

	(void)state;
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		char *q = quote_yaml(cases[i].in);
		char *doc, *back;

		assert_non_null(q);
		if (strcmp(q, cases[i].out) != 0)
			fail_msg("case %zu: got %s, want %s", i, q, cases[i].out);
		doc = xasprintf("- %s\n", q);
		back = yaml_first_scalar(doc);
		assert_non_null(back);
		assert_string_equal(back, cases[i].in);
		free(back);
		free(doc);
		free(q);
	}
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		if (quote_yaml(bad[i]))
			fail_msg("bad case %zu accepted", i);
		assert_non_null(strstr(err_msg(), "not valid UTF-8"));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_json),
		cmocka_unit_test(test_yaml),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
