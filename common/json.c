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

/* Bound nesting before handing the text to jansson: counting brackets outside
 * strings is cheap and keeps a hostile frame from costing deep recursion. */
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

/* A JSON string's encoded length: quotes, plus one byte for each two-byte
 * escape and five for each \u00XX (control characters); UTF-8 is kept as is. */
static size_t
string_encoded_len(const char *s, size_t len)
{
	size_t n = len + 2;

	for (size_t i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch >= 0x20 && ch != '"' && ch != '\\')
			continue;
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

json_t *
agd_json_parse(const char *buf, size_t len, size_t max_depth, json_error_t *err)
{
	if (too_deep(buf, len, max_depth)) {
		if (err) {
			memset(err, 0, sizeof(*err));
			snprintf(err->text, sizeof(err->text), "nesting deeper than %zu",
				 max_depth);
		}
		return NULL;
	}
	/* Default flags already reject NUL in strings and invalid UTF-8. */
	return json_loadb(buf, len, JSON_REJECT_DUPLICATES, err);
}

char *
agd_json_canonical(const json_t *v)
{
	return json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
}

int
agd_json_hash(const json_t *v, char out[AGD_SHA256_HEX])
{
	char *s = agd_json_canonical(v);

	if (!s)
		return -ENOMEM;
	agd_sha256_hex(s, strlen(s), out);
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
