/*
 * quote.c: see quote.h.
 */
#include "quote.h"

#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "log.h"

/*
 * json-c has no public call that escapes a string alone, so this makes a
 * string object and prints it: a few allocations, about half a
 * microsecond a string, ten times what a hand-written loop costs. The
 * largest replies (10,000 events of 4 strings) spend some 20 ms in it;
 * a heartbeat's reply, 2 strings, about a microsecond.
 */
void
quote_json(struct strbuf *sb, const char *s)
{
	struct json_object *o = json_object_new_string(s);
	const char *text;

	if (!o)
		fatal("out of memory");
	text = json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN |
						 JSON_C_TO_STRING_NOSLASHESCAPE);
	if (!text)
		fatal("out of memory");
	strbuf_adds(sb, text);
	json_object_put(o);
}

/*
 * Length of the valid UTF-8 sequence at p (1-4), or 0: overlong forms,
 * surrogates and code points above U+10FFFF are not valid. *cp gets the
 * code point. A NUL is never a continuation byte: never reads past it.
 */
static size_t
utf8_decode(const unsigned char *p, uint32_t *cp)
{
	size_t n;
	uint32_t c;

	if (p[0] < 0x80) {
		*cp = p[0];
		return 1;
	}
	if (p[0] >= 0xC2 && p[0] <= 0xDF) {
		n = 2;
		c = p[0] & 0x1Fu;
	} else if (p[0] >= 0xE0 && p[0] <= 0xEF) {
		n = 3;
		c = p[0] & 0x0Fu;
	} else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
		n = 4;
		c = p[0] & 0x07u;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xC0) != 0x80)
			return 0;
		c = (c << 6) | (p[i] & 0x3Fu);
	}
	if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) ||
	    c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

/*
 * Hand-written, not libyaml's emitter (yaml_emitter_emit() of a scalar
 * event in YAML_DOUBLE_QUOTED_SCALAR_STYLE): libyaml 0.2.5 counts no
 * character beyond U+FFFF as printable, so the emitter writes every emoji
 * or rare CJK character as \U0001F600 even with yaml_emitter_set_unicode(),
 * and quoting one scalar takes five events, a write callback and the
 * stripping of the document's line break. libyaml's own check of UTF-8
 * would also let surrogates through, which it then writes as escapes its
 * parser refuses. The rules below are YAML's printable set and its
 * escapes, as the emitter applies them within the Basic Multilingual
 * Plane, and beyond it they leave printable text as it is.
 */
char *
quote_yaml(const char *s)
{
	struct strbuf out = STRBUF_INIT;

	strbuf_addc(&out, '"');
	for (const unsigned char *p = (const unsigned char *)s; *p;) {
		uint32_t cp = 0;
		size_t n = utf8_decode(p, &cp);

		if (n == 0) {
			err_set("text is not valid UTF-8 (byte 0x%02x at offset "
				"%td)", *p, (const char *)p - s);
			strbuf_release(&out);
			return NULL;
		}
		if (cp == '"' || cp == '\\')
			strbuf_addf(&out, "\\%c", (char)cp);
		else if (cp == '\n')
			strbuf_adds(&out, "\\n");
		else if (cp == '\t')
			strbuf_adds(&out, "\\t");
		else if (cp < 0x20 || (cp >= 0x7F && cp <= 0x84) ||
			 (cp >= 0x86 && cp <= 0x9F))
			strbuf_addf(&out, "\\x%02X", cp); /* C0, DEL, C1 */
		else if (cp == 0x85)
			strbuf_adds(&out, "\\N"); /* line breaks YAML folds */
		else if (cp == 0x2028)
			strbuf_adds(&out, "\\L");
		else if (cp == 0x2029)
			strbuf_adds(&out, "\\P");
		else if (cp == 0xFEFF || cp == 0xFFFE || cp == 0xFFFF)
			strbuf_addf(&out, "\\u%04X", cp); /* BOM, nonchars */
		else
			strbuf_add(&out, p, n);
		p += n;
	}
	strbuf_addc(&out, '"');
	return strbuf_detach(&out);
}
