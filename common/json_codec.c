/* The strict JSON parser and the canonical encoder (common/json.h).
 *
 * Both build or read jansson values, and both give what jansson gives:
 * agd_json_parse accepts exactly the texts json_loadb(JSON_REJECT_DUPLICATES)
 * accepts within the depth bound, with the same values, and
 * agd_json_canonical writes byte for byte what json_dumps(JSON_COMPACT |
 * JSON_SORT_KEYS | JSON_ENCODE_ANY) writes (tests/unit/test_json.c and
 * tests/fuzz/fuzz_json.c compare them). They exist for speed: jansson reads
 * and writes a character at a time through callbacks, while a payload is
 * mostly long runs of plain characters, which these find thirty-two bytes a
 * step with AVX2 (chosen at run time), sixteen with SSE2, eight otherwise, and
 * copy with memcpy (docs/decisions.md, "JSON parser and encoder"). */
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define PLAIN_AVX2 1 /* an AVX2 scan, taken when the CPU has it */
#endif

#include "common/json.h"
#include "common/util.h"

/* jansson's own nesting limit (JSON_PARSER_MAX_DEPTH): never parse deeper. */
#define JANSSON_MAX_DEPTH 2048
/* The encoder's bound: a value nested this deep can only be a cycle. */
#define ENCODE_MAX_DEPTH 4096

#define ONES  0x0101010101010101ull
#define HIGHS 0x8080808080808080ull

/* Bytes of w (little-endian lanes) that end a plain run: '"', '\\', a control
 * character and, with ascii, any byte >= 0x80. Each test may mark lanes above
 * a marked one falsely (a borrow), never below, so the lowest mark is true. */
static inline uint64_t
special_lanes(uint64_t w, bool ascii)
{
	uint64_t q = w ^ (ONES * '"'), b = w ^ (ONES * '\\');
	uint64_t m = ((w - ONES * 0x20) & ~w) | ((q - ONES) & ~q) | ((b - ONES) & ~b);

	return (m & HIGHS) | (ascii ? w & HIGHS : 0);
}

#ifdef PLAIN_AVX2
/* The special lanes of the 32 bytes at p: '"', '\\', and those below 0x20
 * as signed bytes (with ascii, which are also all the bytes >= 0x80) or as
 * unsigned ones (without: the sign bits flipped, then compared below 0xa0). */
__attribute__((target("avx2"))) static inline unsigned
special_lanes32(const char *p, __m256i flip, __m256i below)
{
	__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
	__m256i m = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('"')),
						    _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\\'))),
				    _mm256_cmpgt_epi8(below, _mm256_xor_si256(x, flip)));

	return (unsigned)_mm256_movemask_epi8(m);
}

/* agd_json_plain_len for len >= 32, thirty-two bytes a step. The last step
 * reads the 32 bytes that end at len, overlapping bytes already found plain,
 * so that nothing past len is read. */
__attribute__((target("avx2"))) static size_t
plain_len_avx2(const char *s, size_t len, bool ascii)
{
	const __m256i flip = _mm256_set1_epi8(ascii ? 0 : (char)0x80),
		      below = _mm256_set1_epi8(ascii ? 0x20 : (char)0xa0);
	size_t i = 0;
	unsigned bits;

	for (; i + 32 <= len; i += 32)
		if ((bits = special_lanes32(s + i, flip, below)))
			return i + (size_t)__builtin_ctz(bits);
	if (i == len)
		return len;
	i = len - 32;
	bits = special_lanes32(s + i, flip, below);
	return bits ? i + (size_t)__builtin_ctz(bits) : len;
}
#endif

size_t
agd_json_plain_len(const char *s, size_t len, bool ascii)
{
	size_t i = 0;

#ifdef PLAIN_AVX2
	if (len >= 32 && __builtin_cpu_supports("avx2"))
		return plain_len_avx2(s, len, ascii);
#endif
#ifdef __SSE2__
	/* Sixteen bytes a step, the test of special_lanes32. */
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
		      flip = _mm_set1_epi8(ascii ? 0 : (char)0x80),
		      below = _mm_set1_epi8(ascii ? 0x20 : (char)0xa0);
	for (; i + 16 <= len; i += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
		__m128i m =
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
				 _mm_cmplt_epi8(_mm_xor_si128(x, flip), below));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits)
			return i + (size_t)__builtin_ctz(bits);
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	for (; i + 8 <= len; i += 8) {
		uint64_t w;
		memcpy(&w, s + i, 8);
		uint64_t m = special_lanes(w, ascii);
		if (m)
			return i + (size_t)__builtin_ctzll(m) / 8;
	}
#endif
	for (; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == '"' || c == '\\' || (ascii && c >= 0x80))
			break;
	}
	return i;
}

size_t
agd_utf8_len(const unsigned char *p, size_t left)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (p[0] < 0x80)
		return 1;
	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (left < n || p[1] < lo || p[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

/* ---- parser ---- */

struct parser {
	const unsigned char *p, *end;
	char *scratch; /* a string with escapes, decoded; a real's text */
	size_t cap;
	bool oom;
};

static bool
scratch_reserve(struct parser *s, size_t n)
{
	if (n <= s->cap)
		return true;
	size_t cap = s->cap ? s->cap : 256;
	while (cap < n)
		cap *= 2;
	char *b = realloc(s->scratch, cap);
	if (!b) {
		s->oom = true;
		return false;
	}
	s->scratch = b;
	s->cap = cap;
	return true;
}

static void
skip_ws(struct parser *s)
{
	while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
		s->p++;
}

static int
hex4(const unsigned char *p)
{
	int v = 0;

	for (int i = 0; i < 4; i++) {
		unsigned char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10
			: c >= 'A' && c <= 'F' ? c - 'A' + 10
					       : -1;
		if (d < 0)
			return -1;
		v = v << 4 | d;
	}
	return v;
}

/* One escape at s->p (on its backslash), decoded to the end of the scratch
 * text of length *n. \u0000 and lone surrogates are refused, as jansson does
 * without JSON_ALLOW_NUL. */
static bool
parse_escape(struct parser *s, size_t *n)
{
	const unsigned char *p = s->p;
	size_t left = (size_t)(s->end - p);
	char *o;
	int cp;

	if (left < 2 || !scratch_reserve(s, *n + 4))
		return false;
	o = s->scratch + *n;
	switch (p[1]) {
	case '"':
	case '\\':
	case '/':
		*o = (char)p[1];
		break;
	case 'b':
		*o = '\b';
		break;
	case 'f':
		*o = '\f';
		break;
	case 'n':
		*o = '\n';
		break;
	case 'r':
		*o = '\r';
		break;
	case 't':
		*o = '\t';
		break;
	case 'u':
		if (left < 6 || (cp = hex4(p + 2)) <= 0 || (cp >= 0xdc00 && cp <= 0xdfff))
			return false;
		if (cp >= 0xd800 && cp <= 0xdbff) {
			int lo;
			if (left < 12 || p[6] != '\\' || p[7] != 'u' ||
			    (lo = hex4(p + 8)) < 0xdc00 || lo > 0xdfff)
				return false;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			s->p += 6;
		}
		s->p += 6;
		if (cp < 0x80) {
			o[0] = (char)cp;
			*n += 1;
		} else if (cp < 0x800) {
			o[0] = (char)(0xc0 | cp >> 6);
			o[1] = (char)(0x80 | (cp & 0x3f));
			*n += 2;
		} else if (cp < 0x10000) {
			o[0] = (char)(0xe0 | cp >> 12);
			o[1] = (char)(0x80 | (cp >> 6 & 0x3f));
			o[2] = (char)(0x80 | (cp & 0x3f));
			*n += 3;
		} else {
			o[0] = (char)(0xf0 | cp >> 18);
			o[1] = (char)(0x80 | (cp >> 12 & 0x3f));
			o[2] = (char)(0x80 | (cp >> 6 & 0x3f));
			o[3] = (char)(0x80 | (cp & 0x3f));
			*n += 4;
		}
		return true;
	default:
		return false;
	}
	s->p += 2;
	*n += 1;
	return true;
}

/* A string at s->p (on its opening quote). *ret points into the input when
 * the string has no escape, else into the scratch buffer (valid until the
 * next string is parsed). */
static bool
parse_string(struct parser *s, const char **ret, size_t *ret_len)
{
	const unsigned char *start = ++s->p;
	bool escaped = false;
	size_t n = 0; /* decoded bytes in scratch, once escaped */

	for (;;) {
		const unsigned char *run = s->p;
		s->p += agd_json_plain_len((const char *)s->p, (size_t)(s->end - s->p), true);
		while (s->p < s->end && *s->p >= 0x80) {
			size_t k = agd_utf8_len(s->p, (size_t)(s->end - s->p));
			if (!k)
				return false;
			s->p += k;
			s->p +=
			    agd_json_plain_len((const char *)s->p, (size_t)(s->end - s->p), true);
		}
		if (escaped) {
			size_t k = (size_t)(s->p - run);
			if (!scratch_reserve(s, n + k))
				return false;
			memcpy(s->scratch + n, run, k);
			n += k;
		}
		if (s->p >= s->end || *s->p < 0x20)
			return false;
		if (*s->p == '"')
			break;
		/* A backslash: from here the text is decoded into scratch. */
		if (!escaped) {
			n = (size_t)(s->p - start);
			if (!scratch_reserve(s, n + 4))
				return false;
			memcpy(s->scratch, start, n);
			escaped = true;
		}
		if (!parse_escape(s, &n))
			return false;
	}
	*ret = escaped ? s->scratch : (const char *)start;
	*ret_len = escaped ? n : (size_t)(s->p - start);
	s->p++;
	return true;
}

static size_t
skip_digits(struct parser *s)
{
	const unsigned char *from = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return (size_t)(s->p - from);
}

/* A number: an integer that does not fit json_int_t and a real that
 * overflows a double are refused, as jansson does; no leading zero. */
static json_t *
parse_number(struct parser *s)
{
	const unsigned char *from = s->p;
	bool neg = false, real = false;

	if (*s->p == '-') {
		neg = true;
		s->p++;
	}
	if (s->p < s->end && *s->p == '0')
		s->p++;
	else if (skip_digits(s) == 0)
		return NULL;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		if (skip_digits(s) == 0)
			return NULL;
		real = true;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		if (skip_digits(s) == 0)
			return NULL;
		real = true;
	}
	if (!real) {
		/* |json_int_t| is at most 2^63 (negative) or 2^63 - 1. */
		uint64_t v = 0, max = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
		for (const unsigned char *d = from + neg; d < s->p; d++) {
			unsigned digit = (unsigned)(*d - '0');
			if (v > (max - digit) / 10)
				return NULL;
			v = v * 10 + digit;
		}
		json_t *j = json_integer(neg ? (json_int_t)(0 - v) : (json_int_t)v);
		s->oom |= !j;
		return j;
	}
	size_t len = (size_t)(s->p - from);
	if (!scratch_reserve(s, len + 1))
		return NULL;
	memcpy(s->scratch, from, len);
	s->scratch[len] = '\0';
	errno = 0;
	double d = strtod(s->scratch, NULL);
	if (errno == ERANGE && (d == HUGE_VAL || d == -HUGE_VAL))
		return NULL;
	json_t *j = json_real(d);
	s->oom |= !j;
	return j;
}

static json_t *parse_value(struct parser *s, size_t depth_left);

static json_t *
parse_object(struct parser *s, size_t depth_left)
{
	cleanup_json json_t *obj = json_object();

	s->p++;
	if (!obj) {
		s->oom = true;
		return NULL;
	}
	skip_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return steal_ptr(&obj);
	}
	for (;;) {
		const char *key;
		size_t klen;
		if (s->p >= s->end || *s->p != '"' || !parse_string(s, &key, &klen))
			return NULL;
		if (json_object_getn(obj, key, klen))
			return NULL; /* a duplicate key */
		/* A decoded key lives in scratch, which the value may reuse. */
		cleanup_free char *own = NULL;
		if (key == s->scratch) {
			own = malloc(klen ? klen : 1);
			if (!own) {
				s->oom = true;
				return NULL;
			}
			memcpy(own, key, klen);
			key = own;
		}
		skip_ws(s);
		if (s->p >= s->end || *s->p != ':')
			return NULL;
		s->p++;
		skip_ws(s);
		json_t *v = parse_value(s, depth_left);
		if (!v)
			return NULL;
		if (json_object_setn_new_nocheck(obj, key, klen, v) < 0) {
			s->oom = true;
			return NULL;
		}
		skip_ws(s);
		if (s->p >= s->end)
			return NULL;
		if (*s->p == '}') {
			s->p++;
			return steal_ptr(&obj);
		}
		if (*s->p != ',')
			return NULL;
		s->p++;
		skip_ws(s);
	}
}

static json_t *
parse_array(struct parser *s, size_t depth_left)
{
	cleanup_json json_t *arr = json_array();

	s->p++;
	if (!arr) {
		s->oom = true;
		return NULL;
	}
	skip_ws(s);
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return steal_ptr(&arr);
	}
	for (;;) {
		json_t *v = parse_value(s, depth_left);
		if (!v)
			return NULL;
		if (json_array_append_new(arr, v) < 0) {
			s->oom = true;
			return NULL;
		}
		skip_ws(s);
		if (s->p >= s->end)
			return NULL;
		if (*s->p == ']') {
			s->p++;
			return steal_ptr(&arr);
		}
		if (*s->p != ',')
			return NULL;
		s->p++;
		skip_ws(s);
	}
}

static bool
literal(struct parser *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

/* depth_left: how many more arrays or objects may open, this one included. */
static json_t *
parse_value(struct parser *s, size_t depth_left)
{
	const char *str;
	size_t len;
	json_t *v;

	if (s->p >= s->end)
		return NULL;
	switch (*s->p) {
	case '{':
		return depth_left ? parse_object(s, depth_left - 1) : NULL;
	case '[':
		return depth_left ? parse_array(s, depth_left - 1) : NULL;
	case '"':
		if (!parse_string(s, &str, &len))
			return NULL;
		v = json_stringn_nocheck(str, len);
		break;
	case 't':
		return literal(s, "true", 4) ? json_true() : NULL;
	case 'f':
		return literal(s, "false", 5) ? json_false() : NULL;
	case 'n':
		return literal(s, "null", 4) ? json_null() : NULL;
	default:
		if (*s->p != '-' && (*s->p < '0' || *s->p > '9'))
			return NULL;
		return parse_number(s);
	}
	s->oom |= !v;
	return v;
}

/* Bound nesting as the parser did before it was ours: counting brackets
 * outside strings. Used only to word a refusal as it was worded. */
static bool
too_deep(const char *buf, size_t len, size_t max_depth)
{
	size_t depth = 0;
	bool in_str = false;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = false;
		} else if (c == '"') {
			in_str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > max_depth)
				return true;
		} else if ((c == ']' || c == '}') && depth > 0) {
			depth--;
		}
	}
	return false;
}

/* The error of a refused text, worded as before: the nesting bound, else
 * jansson's message and position (it refuses the same texts). */
static void
parse_error(const char *buf, size_t len, size_t max_depth, bool oom, json_error_t *err)
{
	memset(err, 0, sizeof(*err));
	if (oom) {
		snprintf(err->text, sizeof(err->text), "out of memory");
	} else if (too_deep(buf, len, max_depth)) {
		snprintf(err->text, sizeof(err->text), "nesting deeper than %zu", max_depth);
	} else {
		json_t *v = json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);
		if (v) {
			json_decref(v);
			memset(err, 0, sizeof(*err));
			snprintf(err->text, sizeof(err->text), "invalid JSON");
		}
	}
}

json_t *
agd_json_parse(const char *buf, size_t len, size_t max_depth, json_error_t *err)
{
	struct parser s = {.p = (const unsigned char *)buf,
			   .end = (const unsigned char *)buf + len};
	json_t *v = NULL;

	if (max_depth > JANSSON_MAX_DEPTH)
		max_depth = JANSSON_MAX_DEPTH;
	skip_ws(&s);
	/* One object or array (no JSON_DECODE_ANY), then only whitespace. */
	if (s.p < s.end && (*s.p == '{' || *s.p == '['))
		v = parse_value(&s, max_depth);
	if (v) {
		skip_ws(&s);
		if (s.p != s.end)
			v = (json_decref(v), NULL);
	}
	free(s.scratch);
	if (!v && err)
		parse_error(buf, len, max_depth, s.oom, err);
	return v;
}

/* ---- canonical encoder ---- */

struct out {
	char *p;
	size_t len, cap;
};

static bool
out_reserve(struct out *o, size_t n)
{
	if (o->cap - o->len >= n)
		return true;
	size_t cap = o->cap ? o->cap : 64;
	while (cap - o->len < n)
		cap *= 2;
	char *p = realloc(o->p, cap);
	if (!p)
		return false;
	o->p = p;
	o->cap = cap;
	return true;
}

static bool
out_put(struct out *o, const void *s, size_t n)
{
	if (!out_reserve(o, n))
		return false;
	memcpy(o->p + o->len, s, n);
	o->len += n;
	return true;
}

/* jansson's dump_string: '"', '\\' and control characters escaped (the short
 * forms, else \u00XX in upper case), everything else as is; a string that is
 * not valid UTF-8 fails the encoding. */
static bool
encode_string(struct out *o, const char *str, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *s = (const unsigned char *)str, *end = s + len;

	if (!out_reserve(o, len + 2))
		return false;
	o->p[o->len++] = '"';
	while (s < end) {
		size_t n = agd_json_plain_len((const char *)s, (size_t)(end - s), true);
		if (!out_put(o, s, n))
			return false;
		s += n;
		if (s == end)
			break;
		if (*s >= 0x80) {
			n = agd_utf8_len(s, (size_t)(end - s));
			if (!n || !out_put(o, s, n))
				return false;
			s += n;
			continue;
		}
		char esc[6] = {'\\', 0, '0', '0', hex[*s >> 4], hex[*s & 15]};
		switch (*s) {
		case '"':
		case '\\':
			esc[1] = (char)*s;
			break;
		case '\b':
			esc[1] = 'b';
			break;
		case '\f':
			esc[1] = 'f';
			break;
		case '\n':
			esc[1] = 'n';
			break;
		case '\r':
			esc[1] = 'r';
			break;
		case '\t':
			esc[1] = 't';
			break;
		default:
			esc[1] = 'u';
			break;
		}
		if (!out_put(o, esc, esc[1] == 'u' ? 6 : 2))
			return false;
		s++;
	}
	return out_put(o, "\"", 1);
}

struct member {
	const char *key;
	size_t len;
	json_t *value;
};

/* jansson's key order: bytes compared, a prefix first. */
static int
member_cmp(const void *a, const void *b)
{
	const struct member *x = a, *y = b;
	int c = memcmp(x->key, y->key, x->len < y->len ? x->len : y->len);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

static bool encode_value(struct out *o, const json_t *v, int depth);

static bool
encode_object(struct out *o, const json_t *v, int depth)
{
	size_t n = json_object_size(v), i = 0;
	struct member few[8];
	cleanup_free struct member *many = NULL;
	struct member *m = few;

	if (n > ARRAY_SIZE(few)) {
		many = malloc(n * sizeof(*many));
		if (!many)
			return false;
		m = many;
	}
	for (void *it = json_object_iter((json_t *)v); it && i < n;
	     it = json_object_iter_next((json_t *)v, it), i++)
		m[i] = (struct member){json_object_iter_key(it), json_object_iter_key_len(it),
				       json_object_iter_value(it)};
	if (n > 1)
		qsort(m, n, sizeof(*m), member_cmp);
	if (!out_put(o, "{", 1))
		return false;
	for (i = 0; i < n; i++) {
		if ((i && !out_put(o, ",", 1)) || !encode_string(o, m[i].key, m[i].len) ||
		    !out_put(o, ":", 1) || !encode_value(o, m[i].value, depth + 1))
			return false;
	}
	return out_put(o, "}", 1);
}

static bool
encode_value(struct out *o, const json_t *v, int depth)
{
	char num[32];
	int n;

	if (!v || depth > ENCODE_MAX_DEPTH)
		return false;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return encode_object(o, v, depth);
	case JSON_ARRAY:
		if (!out_put(o, "[", 1))
			return false;
		for (size_t i = 0; i < json_array_size(v); i++)
			if ((i && !out_put(o, ",", 1)) ||
			    !encode_value(o, json_array_get(v, i), depth + 1))
				return false;
		return out_put(o, "]", 1);
	case JSON_STRING:
		return encode_string(o, json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		n = snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return n > 0 && out_put(o, num, (size_t)n);
	case JSON_REAL: {
		/* Rare, and jansson's shortest-form rules for doubles are its
		 * own: its text, as it is. */
		cleanup_free char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		return t && out_put(o, t, strlen(t));
	}
	case JSON_TRUE:
		return out_put(o, "true", 4);
	case JSON_FALSE:
		return out_put(o, "false", 5);
	case JSON_NULL:
		return out_put(o, "null", 4);
	}
	return false;
}

char *
agd_json_canonical_n(const json_t *v, size_t *ret_len)
{
	struct out o = {0};

	if (!encode_value(&o, v, 0) || !out_put(&o, "", 1)) {
		free(o.p);
		return NULL;
	}
	if (ret_len)
		*ret_len = o.len - 1;
	return o.p;
}

char *
agd_json_canonical(const json_t *v)
{
	return agd_json_canonical_n(v, NULL);
}
