#include "common/json.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

size_t
agd_json_depth(const json_t *v)
{
	size_t max = 0, d;
	const char *key;
	json_t *child;
	size_t i;

	if (json_is_object(v)) {
		json_object_foreach((json_t *)v, key, child)
		{
			(void)key;
			d = agd_json_depth(child);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	if (json_is_array(v)) {
		json_array_foreach(v, i, child)
		{
			d = agd_json_depth(child);
			if (d > max)
				max = d;
		}
		return max + 1;
	}
	return 0;
}

/* A JSON string's encoded length: quotes, plus one byte for each two-byte
 * escape and five for each \u00XX (control characters); UTF-8 is kept as is. */
static size_t
string_encoded_len(const char *s, size_t len)
{
	size_t n = len + 2;

	for (size_t i = agd_json_plain_len(s, len, false); i < len;
	     i += 1 + agd_json_plain_len(s + i + 1, len - i - 1, false)) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\' || ch == '\b' || ch == '\f' || ch == '\n' ||
		    ch == '\r' || ch == '\t')
			n += 1;
		else
			n += 5;
	}
	return n;
}

size_t
agd_json_encoded_len(const json_t *v)
{
	const char *key;
	json_t *child;
	size_t n, i;
	char num[32];

	if (!v)
		return 0;
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		n = 2;
		json_object_foreach((json_t *)v, key, child)
		{
			/* "key":value plus the comma before every member but the first */
			n += string_encoded_len(key, strlen(key)) + 1 + agd_json_encoded_len(child);
		}
		return json_object_size(v) ? n + json_object_size(v) - 1 : n;
	case JSON_ARRAY:
		n = 2;
		json_array_foreach(v, i, child)
		{
			n += agd_json_encoded_len(child);
		}
		return json_array_size(v) ? n + json_array_size(v) - 1 : n;
	case JSON_STRING:
		return string_encoded_len(json_string_value(v), json_string_length(v));
	case JSON_INTEGER:
		return (size_t)snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT,
					json_integer_value(v));
	case JSON_REAL: {
		char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		n = t ? strlen(t) : 0;
		free(t);
		return n;
	}
	case JSON_TRUE:
		return 4;
	case JSON_FALSE:
		return 5;
	case JSON_NULL:
		return 4;
	}
	return 0;
}

int
agd_json_hash(enum agd_digest d, const json_t *v, char out[AGD_DIGEST_HEX])
{
	char *s = agd_json_canonical(v);

	if (!s)
		return -ENOMEM;
	agd_digest_hex(d, s, strlen(s), out);
	free(s);
	return 0;
}

static bool
env_reserved(const char *name)
{
	return strcmp(name, "PATH") == 0 || strcmp(name, "HOME") == 0 ||
	       strcmp(name, "LANG") == 0 || strncmp(name, "PYTHON", 6) == 0 ||
	       strncmp(name, "LD_", 3) == 0 || strncmp(name, "AGENTD_", 7) == 0;
}

static bool
env_name_valid(const char *name)
{
	if (!((name[0] >= 'A' && name[0] <= 'Z') || name[0] == '_'))
		return false;
	for (const char *p = name + 1; *p; p++)
		if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
			return false;
	return true;
}

int
agd_env_check(const json_t *env, char *err, size_t errsz)
{
	const char *k;
	json_t *v;
	size_t total = 0;

	if (!json_is_object(env) || json_object_size(env) > AGD_ENV_MAX_VARS) {
		snprintf(err, errsz, "'environment' must be an object of at most %d strings",
			 AGD_ENV_MAX_VARS);
		return -EINVAL;
	}
	json_object_foreach((json_t *)env, k, v)
	{
		if (!env_name_valid(k)) {
			snprintf(err, errsz, "environment name '%.64s' is not [A-Z_][A-Z0-9_]*", k);
			return -EINVAL;
		}
		/* The runtime's own variables, and those that change how the
		 * interpreter or the loader behave, stay as the runtime sets them. */
		if (env_reserved(k)) {
			snprintf(err, errsz, "environment name '%s' is reserved", k);
			return -EINVAL;
		}
		if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
			snprintf(err, errsz,
				 "environment value of '%s' must be a string without NUL", k);
			return -EINVAL;
		}
		total += strlen(k) + 1 + json_string_length(v);
		if (total > AGD_ENV_MAX_BYTES) {
			snprintf(err, errsz, "'environment' exceeds %d bytes", AGD_ENV_MAX_BYTES);
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- agd_json_canonical_valid: a one-pass check of canonical text ---- */

struct scan {
	const unsigned char *p, *end;
};

static bool scan_value(struct scan *s, size_t depth_left);

/* One UTF-8 sequence of 2..4 bytes at s->p, strictly. */
static bool
scan_utf8(struct scan *s)
{
	size_t n = agd_utf8_len(s->p, (size_t)(s->end - s->p));

	if (n < 2)
		return false;
	s->p += n;
	return true;
}

static int
hex_digit(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* A string at s->p (on its opening quote); *escaped says whether it holds
 * an escape. \u0000 and surrogate escapes are left to the parser. */
static bool
scan_string(struct scan *s, bool *escaped)
{
	s->p++;
	while (s->p < s->end) {
		unsigned char c = *s->p;
		if (c == '"') {
			s->p++;
			return true;
		}
		if (c < 0x20)
			return false;
		if (c != '\\') {
			/* A plain run (agd_json_plain_len). */
			size_t n =
			    agd_json_plain_len((const char *)s->p, (size_t)(s->end - s->p), true);
			if (n) {
				s->p += n;
				continue;
			}
		}
		if (c >= 0x80) {
			if (!scan_utf8(s))
				return false;
			continue;
		}
		if (c != '\\') {
			s->p++;
			continue;
		}
		*escaped = true;
		if (s->end - s->p < 2)
			return false;
		c = s->p[1];
		if (c == 'u') {
			unsigned v = 0;
			if (s->end - s->p < 6)
				return false;
			for (int i = 2; i < 6; i++) {
				int d = hex_digit(s->p[i]);
				if (d < 0)
					return false;
				v = v << 4 | (unsigned)d;
			}
			if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
				return false;
			s->p += 6;
		} else if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
			   c == 'r' || c == 't') {
			s->p += 2;
		} else {
			return false;
		}
	}
	return false;
}

/* An integer that fits json_int_t whatever its digits (at most 18); reals,
 * leading zeros and -0 are left to the parser. */
static bool
scan_integer(struct scan *s)
{
	const unsigned char *p = s->p, *digits;

	if (*p == '-')
		p++;
	digits = p;
	while (p < s->end && *p >= '0' && *p <= '9')
		p++;
	if (p == digits || p - digits > 18 ||
	    (*digits == '0' && (p - digits > 1 || digits != s->p)))
		return false;
	if (p < s->end && (*p == '.' || *p == 'e' || *p == 'E'))
		return false;
	s->p = p;
	return true;
}

static bool
scan_literal(struct scan *s, const char *word, size_t n)
{
	if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool
scan_object(struct scan *s, size_t depth_left)
{
	const unsigned char *prev = NULL;
	size_t prev_len = 0;

	if (depth_left == 0)
		return false;
	s->p++;
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return true;
	}
	for (;;) {
		const unsigned char *key = s->p + 1;
		bool escaped = false;
		if (s->p >= s->end || *s->p != '"' || !scan_string(s, &escaped) || escaped)
			return false;
		/* Strictly increasing keys are unique keys. */
		size_t len = (size_t)(s->p - 1 - key);
		if (prev) {
			int c = memcmp(prev, key, prev_len < len ? prev_len : len);
			if (c > 0 || (c == 0 && prev_len >= len))
				return false;
		}
		prev = key;
		prev_len = len;
		if (s->p >= s->end || *s->p != ':')
			return false;
		s->p++;
		if (!scan_value(s, depth_left - 1) || s->p >= s->end)
			return false;
		if (*s->p == '}') {
			s->p++;
			return true;
		}
		if (*s->p++ != ',')
			return false;
	}
}

static bool
scan_array(struct scan *s, size_t depth_left)
{
	if (depth_left == 0)
		return false;
	s->p++;
	if (s->p < s->end && *s->p == ']') {
		s->p++;
		return true;
	}
	for (;;) {
		if (!scan_value(s, depth_left - 1) || s->p >= s->end)
			return false;
		if (*s->p == ']') {
			s->p++;
			return true;
		}
		if (*s->p++ != ',')
			return false;
	}
}

/* depth_left: how many more arrays or objects may open inside this value. */
static bool
scan_value(struct scan *s, size_t depth_left)
{
	bool escaped = false;

	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '{':
		return scan_object(s, depth_left);
	case '[':
		return scan_array(s, depth_left);
	case '"':
		return scan_string(s, &escaped);
	case 't':
		return scan_literal(s, "true", 4);
	case 'f':
		return scan_literal(s, "false", 5);
	case 'n':
		return scan_literal(s, "null", 4);
	default:
		return (*s->p == '-' || (*s->p >= '0' && *s->p <= '9')) && scan_integer(s);
	}
}

bool
agd_json_canonical_valid(const char *buf, size_t len, size_t max_depth)
{
	struct scan s = {(const unsigned char *)buf, (const unsigned char *)buf + len};

	return buf && scan_value(&s, max_depth) && s.p == s.end;
}
