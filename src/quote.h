/*
 * quote.h: text quoted for other formats: JSON string literals (by
 * json-c) and YAML double-quoted scalars (by hand: quote.c says why not
 * libyaml's emitter). Callers decide where the quoted text goes; these
 * functions only know each format's escaping rules.
 */
#ifndef VA_QUOTE_H
#define VA_QUOTE_H

#include "util.h"

/*
 * Append s to sb as a JSON string literal, quotes included (json-c's
 * escaping: \" \\ \b \f \n \r \t, other controls as \u00XX, '/' and
 * bytes from 0x7F up as they are). Bytes that are not UTF-8 are passed
 * through, as json-c does.
 */
void quote_json(struct strbuf *sb, const char *s);

/*
 * s as one YAML double-quoted scalar, quotes included, on one line:
 * printable text (non-ASCII too) as it is; '"', '\\', \n and \t escaped;
 * other C0 and C1 controls and DEL as \xXX; the line breaks U+0085,
 * U+2028, U+2029 as \N, \L, \P; U+FEFF, U+FFFE, U+FFFF as \uXXXX.
 * Caller frees. NULL + err_set() when s is not valid UTF-8 (surrogates
 * and code points above U+10FFFF included: no YAML reader takes them).
 */
char *quote_yaml(const char *s);

#endif
