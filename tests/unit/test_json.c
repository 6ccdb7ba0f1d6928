/* The strict parser and the canonical encoder (common/json_codec.c) against
 * jansson, which they must match: the same texts accepted, the same values
 * (and key order) built, the same canonical bytes written. Edge cases by
 * hand, then many generated values and mutated texts. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"
#include "plain_scan_cases.h"

#define MAX_DEPTH 16

static uint64_t rng = 0x243f6a8885a308d3u;

static uint64_t
next(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

static char *
jansson_canonical(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

/* The encoder writes what jansson writes. */
static void
same_encoding(const json_t *v)
{
	cleanup_free char *want = jansson_canonical(v);
	cleanup_free char *got = agd_json_canonical(v);

	if (!want || !got || strcmp(want, got) != 0)
		fail_msg("canonical text differs:\n jansson %s\n ours    %s", want ? want : "NULL",
			 got ? got : "NULL");
	assert_int_equal(agd_json_encoded_len(v), strlen(got));
}

/* The parser decides as jansson (with the depth bound) and builds the same
 * value, keys in the same order. Returns whether it accepted. */
static bool
same_parse(const char *t, size_t len, size_t depth)
{
	json_error_t je, oe;
	json_t *want = json_loadb(t, len, JSON_REJECT_DUPLICATES, &je);
	json_t *got = agd_json_parse(t, len, depth, &oe);

	if (want && agd_json_depth(want) > depth) {
		json_decref(want);
		want = NULL;
	}
	/* The one difference: jansson's reader drops a NUL byte that follows
	 * a number or a literal; ours refuses every NUL outside a string. */
	if (want && !got && memchr(t, '\0', len)) {
		json_decref(want);
		return false;
	}
	if (!want != !got)
		fail_msg("%s accepts, the other refuses: %.*s (%s)", want ? "jansson" : "ours",
			 (int)len, t, want ? oe.text : "");
	if (!got) {
		assert_true(oe.text[0] != '\0');
		return false;
	}
	/* Equal values, and the same insertion order of keys. */
	cleanup_free char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
	cleanup_free char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!json_equal(want, got) || !a || !b || strcmp(a, b) != 0)
		fail_msg("values differ for %.*s:\n jansson %s\n ours    %s", (int)len, t, a, b);
	same_encoding(got);
	json_decref(want);
	json_decref(got);
	return true;
}

static bool
same_parse_str(const char *t)
{
	return same_parse(t, strlen(t), MAX_DEPTH);
}

static void
test_parse_edges(void **state)
{
	static const char *const accepted[] = {
	    "{}",
	    "[]",
	    " \t\r\n[ 1 , 2 ]\n ",
	    "{\"a\":1,\"b\":[true,false,null],\"c\":{\"d\":\"e\"}}",
	    "{\"z\":1,\"a\":2,\"m\":3}",
	    "[0,-0,1,-1,9223372036854775807,-9223372036854775808]",
	    "[0.0,-0.0,1.5,-1.5e3,1E-7,2e+10,1e-400,0.1,123456789.123456789]",
	    "[1.7976931348623157e308,4.9e-324]",
	    "[\"\",\"a\",\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"]",
	    "[\"\\u0001\\u001f\\u0020\\u007f\\u0080\\u07ff\\u0800\\uffff\"]",
	    "[\"\\ud83d\\ude00\",\"\\uD83D\\uDE00\",\"\\uDBFF\\uDFFF\"]",
	    "[\"h\xc3\xa9llo \xe2\x82\xac \xf0\x9f\x98\x80 \x7f\"]",
	    "[\"\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"]",
	    "{\"a\\n\":1,\"a\\u0041\":2,\"\xc3\xa9\":3}",
	    "{\"\":0}",
	    "[[[[[]]]],[{}],{\"a\":[{\"b\":[]}]}]",
	    "[\"a long plain run that crosses several eight byte words, then \\\"one\\\" "
	    "escape\"]",
	    "[\"0123456789abcdef\\n0123456789abcdef\xc3\xa9"
	    "0123456789abcdef\"]",
	};
	static const char *const refused[] = {
	    "",
	    " ",
	    "1",
	    "\"s\"",
	    "null",
	    "true",
	    "{} {}",
	    "[] x",
	    "[",
	    "]",
	    "{",
	    "[1,]",
	    "[,1]",
	    "[1 2]",
	    "{\"a\":1,}",
	    "{,}",
	    "{\"a\"}",
	    "{\"a\":}",
	    "{\"a\" 1}",
	    "{1:2}",
	    "{a:1}",
	    "{\"a\":1,\"a\":2}",
	    "{\"a\":1,\"\\u0061\":2}",
	    "[01]",
	    "[-01]",
	    "[00]",
	    "[-]",
	    "[+1]",
	    "[.5]",
	    "[1.]",
	    "[1.e5]",
	    "[1e]",
	    "[1e+]",
	    "[1e-]",
	    "[0x10]",
	    "[9223372036854775808]",
	    "[-9223372036854775809]",
	    "[99999999999999999999]",
	    "[1e400]",
	    "[-1e400]",
	    "[Infinity]",
	    "[NaN]",
	    "[tru]",
	    "[truex]",
	    "[True]",
	    "[nul]",
	    "[nulll]",
	    "[\"a\nb\"]",
	    "[\"a\tb\"]",
	    "[\"\x01\"]",
	    "[\"\\u0000\"]",
	    "[\"\\ud800\"]",
	    "[\"\\udc00\"]",
	    "[\"\\ud800\\u0041\"]",
	    "[\"\\ud800x\"]",
	    "[\"\\ud800\\ud800\"]",
	    "[\"\\u12\"]",
	    "[\"\\u12g4\"]",
	    "[\"\\x\"]",
	    "[\"\\'\"]",
	    "[\"\\",
	    "[\"abc",
	    "[\"\xff\"]",
	    "[\"\xc0\x80\"]",
	    "[\"\xc1\xbf\"]",
	    "[\"\xe0\x9f\xbf\"]",
	    "[\"\xed\xa0\x80\"]",
	    "[\"\xf0\x8f\xbf\xbf\"]",
	    "[\"\xf4\x90\x80\x80\"]",
	    "[\"\xf5\x80\x80\x80\"]",
	    "[\"\xe2\x82\"]",
	    "[\"\x80\"]",
	    "[1]\xff",
	    "\xef\xbb\xbf[]",
	    "[/*c*/1]",
	    "['a']",
	};
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(accepted); i++)
		if (!same_parse_str(accepted[i]))
			fail_msg("refused: %s", accepted[i]);
	for (size_t i = 0; i < ARRAY_SIZE(refused); i++)
		if (same_parse_str(refused[i]))
			fail_msg("accepted: %s", refused[i]);
	/* A NUL byte in the text, inside a string and outside. */
	assert_false(same_parse("[\"a\0b\"]", 7, MAX_DEPTH));
	assert_false(same_parse("[1]\0", 4, MAX_DEPTH));
	assert_false(same_parse("[1,\0]", 5, MAX_DEPTH));
	/* jansson accepts these (it skips the NUL after a number or literal). */
	json_error_t e;
	assert_null(agd_json_parse("[0\0]", 4, MAX_DEPTH, &e));
	assert_null(agd_json_parse("[true\0,1]", 9, MAX_DEPTH, &e));
	assert_null(agd_json_parse("{\"a\":1.5\0}", 10, MAX_DEPTH, &e));
}

static void
test_parse_depth_and_errors(void **state)
{
	char deep[2 * 70];
	json_error_t e;
	(void)state;

	/* Exactly max_depth containers pass, one more does not. */
	for (size_t d = 1; d <= 65; d++) {
		memset(deep, '[', d);
		memset(deep + d, ']', d);
		json_t *v = agd_json_parse(deep, 2 * d, 64, &e);
		if ((v != NULL) != (d <= 64))
			fail_msg("depth %zu at bound 64: %s", d, v ? "accepted" : e.text);
		json_decref(v);
	}
	assert_null(agd_json_parse("[[[]]]", 6, 2, &e));
	assert_string_equal(e.text, "nesting deeper than 2");
	assert_null(agd_json_parse("{\"a\":{\"b\":{}}}", 14, 2, &e));
	assert_string_equal(e.text, "nesting deeper than 2");
	/* Errors are jansson's words and positions. */
	assert_null(agd_json_parse("{\"a\":1,\"a\":2}", 13, 8, &e));
	assert_non_null(strstr(e.text, "duplicate object key"));
	assert_null(agd_json_parse("{\n \"a\": tru }", 13, 8, &e));
	assert_int_equal(e.line, 2);
	assert_true(e.column > 0);
	assert_null(agd_json_parse("[1] [2]", 7, 8, NULL));
}

/* A random string: plain runs, escapes, control characters, UTF-8 of every
 * length, quotes; sometimes long. */
static size_t
gen_string(char *buf, size_t cap)
{
	static const char *const pieces[] = {
	    "a",
	    "xyz",
	    " ",
	    "\"",
	    "\\",
	    "/",
	    "\b",
	    "\f",
	    "\n",
	    "\r",
	    "\t",
	    "\x01",
	    "\x1f",
	    "\x7f",
	    "\xc3\xa9",
	    "\xdf\xbf",
	    "\xe2\x82\xac",
	    "\xef\xbf\xbf",
	    "\xf0\x9f\x98\x80",
	    "\xf4\x8f\xbf\xbf",
	    "0123456789abcdef",
	    "{\"k\":[1]}",
	};
	size_t n = 0, parts = next() % 8;

	if (next() % 16 == 0)
		parts = 40 + next() % 200;
	for (size_t i = 0; i < parts; i++) {
		const char *p = pieces[next() % ARRAY_SIZE(pieces)];
		size_t l = strlen(p);
		if (n + l >= cap)
			break;
		memcpy(buf + n, p, l);
		n += l;
	}
	return n;
}

static json_t *
gen_value(int depth)
{
	char s[4096];
	size_t n;
	json_t *v;

	switch (next() % (depth < 5 ? 9 : 6)) {
	case 0:
		return json_null();
	case 1:
		return json_boolean(next() & 1);
	case 2: {
		static const json_int_t edges[] = {0,
						   -1,
						   1,
						   9,
						   10,
						   -10,
						   INT64_MAX,
						   INT64_MIN,
						   999999999999999999,
						   1000000000000000000};
		return json_integer(next() % 3 ? (json_int_t)(next() >> (next() % 64)) *
						     (next() & 1 ? -1 : 1)
					       : edges[next() % ARRAY_SIZE(edges)]);
	}
	case 3: {
		static const double edges[] = {0.0,    -0.0, 0.1,   1e300, -1e-300,
					       5e-324, 1.5,  100.0, 1e22,  123456789012345678.0};
		uint64_t bits = next();
		double d;
		memcpy(&d, &bits, sizeof(d));
		if (next() % 2 || d != d || d - d != 0)
			d = edges[next() % ARRAY_SIZE(edges)];
		return json_real(d);
	}
	case 4:
	case 5:
		n = gen_string(s, sizeof(s));
		return json_stringn(s, n);
	case 6:
	case 7:
		v = json_object();
		for (size_t i = 0, k = next() % 12; i < k; i++) {
			n = next() % 3
				? (size_t)snprintf(s, sizeof(s), "%c%u", 'a' + (int)(next() % 4),
						   (unsigned)(next() % 20))
				: gen_string(s, 64);
			if (n == 0 || memchr(s, '\0', n))
				continue;
			s[n] = '\0';
			json_object_set_new(v, s, gen_value(depth + 1));
		}
		return v;
	default:
		v = json_array();
		for (size_t i = 0, k = next() % 6; i < k; i++)
			json_array_append_new(v, gen_value(depth + 1));
		return v;
	}
}

/* Generated values: the encoder writes jansson's bytes; the parser reads
 * jansson's text (compact and indented, keys in any order) back to the same
 * value. */
static void
test_generated_values(void **state)
{
	(void)state;

	for (int i = 0; i < 20000; i++) {
		cleanup_json json_t *v = gen_value(0);
		assert_non_null(v);
		same_encoding(v);
		cleanup_json json_t *wrapped = json_pack("[O]", v);
		size_t flags = i % 2 ? JSON_COMPACT : JSON_INDENT(i % 5);
		cleanup_free char *text = json_dumps(wrapped, flags | (i % 3 ? JSON_SORT_KEYS : 0));
		assert_non_null(text);
		if (!same_parse(text, strlen(text), MAX_DEPTH))
			fail_msg("refused jansson's own text: %s", text);
	}
}

/* Mutated texts: every verdict and value equal to jansson's. */
static void
test_mutated_texts(void **state)
{
	static const char alphabet[] = "{}[]\":,\\/u0123456789abcdefABCDEFntrl-+.eE \t\n"
				       "\x01\x1f\x7f\x80\xbf\xc2\xdf\xe0\xed\xef\xf0\xf4\xff";
	size_t accepted = 0, refused = 0;
	(void)state;

	for (int iter = 0; iter < 40000; iter++) {
		cleanup_json json_t *v = json_pack("[o]", gen_value(2));
		cleanup_free char *seed = json_dumps(v, iter % 2 ? JSON_COMPACT : JSON_INDENT(1));
		char t[8192];
		size_t len = strlen(seed);
		if (len >= sizeof(t) - 16)
			continue;
		memcpy(t, seed, len);
		for (int m = 0, k = 1 + (int)(next() % 3); m < k; m++) {
			size_t pos = next() % (len + 1);
			char ch = alphabet[next() % (sizeof(alphabet) - 1)];
			switch (next() % 3) {
			case 0:
				if (pos < len)
					t[pos] = ch;
				break;
			case 1:
				memmove(t + pos + 1, t + pos, len - pos);
				t[pos] = ch;
				len++;
				break;
			default:
				if (pos < len) {
					memmove(t + pos, t + pos + 1, len - pos - 1);
					len--;
				}
			}
		}
		if (same_parse(t, len, MAX_DEPTH))
			accepted++;
		else
			refused++;
	}
	/* Both sides exercised. */
	assert_true(accepted > 2000);
	assert_true(refused > 2000);
}

/* Strings that only the checked constructors refuse: the encoder fails on
 * them as jansson does, never writes them out. */
static void
test_encoder_refuses_invalid_utf8(void **state)
{
	cleanup_json json_t *s = json_stringn_nocheck("a\xff", 2);
	cleanup_json json_t *nul = json_stringn("a\0b", 3);
	(void)state;

	assert_null(agd_json_canonical(s));
	assert_null(jansson_canonical(s));
	same_encoding(nul);
	assert_null(agd_json_canonical(NULL));
}

static void
test_plain_len(void **state)
{
	char buf[64];
	(void)state;

	for (size_t at = 0; at < 40; at++) {
		static const char stops[] = {'"', '\\', '\0', '\x1f', '\n', (char)0x80, (char)0xff};
		for (size_t k = 0; k < sizeof(stops); k++) {
			memset(buf, 'a', sizeof(buf));
			buf[at] = stops[k];
			/* A second stop after the first, so a false lane above
			 * it could only be found if the lowest were wrong. */
			buf[at + 1] = '\x01';
			bool high = (unsigned char)stops[k] >= 0x80;
			assert_int_equal(agd_json_plain_len(buf, sizeof(buf), true), at);
			assert_int_equal(agd_json_plain_len(buf, sizeof(buf), false),
					 high ? at + 1 : at);
		}
	}
	memset(buf, 0x7f, sizeof(buf));
	assert_int_equal(agd_json_plain_len(buf, sizeof(buf), true), sizeof(buf));
	memset(buf, ' ', sizeof(buf));
	assert_int_equal(agd_json_plain_len(buf, 13, true), 13);
	assert_int_equal(agd_json_plain_len(buf, 0, true), 0);
}

/* agd_json_plain_len gives its definition, a byte at a time, on s[0, len),
 * which has special byte c at position at (at == len: none). */
static void
same_plain_len(const unsigned char *s, size_t len, unsigned char c, size_t at)
{
	for (int ascii = 0; ascii < 2; ascii++) {
		size_t want = 0;
		while (want < len && s[want] >= 0x20 && s[want] != '"' && s[want] != '\\' &&
		       (!ascii || s[want] < 0x80))
			want++;
		size_t got = agd_json_plain_len((const char *)s, len, ascii);
		if (got != want)
			fail_msg("length %zu, 0x%02x at %zu, ascii %d: %zu, not %zu", len, c, at,
				 ascii, got, want);
	}
}

static void
test_plain_len_every_position(void **state)
{
	(void)state;
	plain_scan_cases(same_plain_len);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_edges),
	    cmocka_unit_test(test_parse_depth_and_errors),
	    cmocka_unit_test(test_generated_values),
	    cmocka_unit_test(test_mutated_texts),
	    cmocka_unit_test(test_encoder_refuses_invalid_utf8),
	    cmocka_unit_test(test_plain_len),
	    cmocka_unit_test(test_plain_len_every_position),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
