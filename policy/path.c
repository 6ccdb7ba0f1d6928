/* Lexical path normalisation and source positions for error messages. */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "policy/policy_int.h"

#define POLICY_PATH_MAX 4096

/* Append the segments of s to out (length *n), resolving "." and ".." lexically. */
static int
push_segments(const char *s, size_t len, char *out, size_t outsz, size_t *n)
{
	size_t i = 0;

	while (i < len) {
		while (i < len && s[i] == '/')
			i++;
		size_t j = i;
		while (j < len && s[j] != '/')
			j++;
		size_t seg = j - i;
		if (seg == 0 || (seg == 1 && s[i] == '.')) {
			/* nothing */
		} else if (seg == 2 && s[i] == '.' && s[i + 1] == '.') {
			while (*n > 0 && out[*n - 1] != '/')
				(*n)--;
			if (*n > 0)
				(*n)--; /* the '/' before the popped segment */
		} else {
			if (*n + 1 + seg + 1 > outsz || *n + 1 + seg > POLICY_PATH_MAX)
				return -ENAMETOOLONG;
			out[(*n)++] = '/';
			memcpy(out + *n, s + i, seg);
			*n += seg;
		}
		i = j;
	}
	return 0;
}

int
policy_normalize_path(const char *path, const char *cwd, char *out, size_t outsz)
{
	size_t n = 0;
	int r;

	if (!path || !out || outsz < 2)
		return -EINVAL;
	size_t plen = strnlen(path, POLICY_PATH_MAX + 1);
	if (plen == 0)
		return -EINVAL;
	if (plen > POLICY_PATH_MAX)
		return -ENAMETOOLONG;
	if (path[0] != '/') {
		if (!cwd || cwd[0] != '/')
			return -EINVAL;
		size_t clen = strnlen(cwd, POLICY_PATH_MAX + 1);
		if (clen > POLICY_PATH_MAX)
			return -ENAMETOOLONG;
		r = push_segments(cwd, clen, out, outsz, &n);
		if (r < 0)
			return r;
	}
	r = push_segments(path, plen, out, outsz, &n);
	if (r < 0)
		return r;
	if (n == 0)
		out[n++] = '/';
	out[n] = '\0';
	return 0;
}

void
ppos_of_offset(const char *buf, size_t len, size_t off, int *ret_line, int *ret_col)
{
	int line = 1, col = 1;

	for (size_t i = 0; i < off && i < len; i++) {
		if (buf[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)buf[i] & 0xc0) != 0x80) {
			col++; /* count characters, not UTF-8 continuation bytes */
		}
	}
	*ret_line = line;
	*ret_col = col;
}

/* A scanner over text jansson has already accepted, so it can be lenient. */
struct scan {
	const char *b;
	size_t len, i;
};

static void
skip_ws(struct scan *s)
{
	while (s->i < s->len && (s->b[s->i] == ' ' || s->b[s->i] == '\t' || s->b[s->i] == '\n' ||
				 s->b[s->i] == '\r'))
		s->i++;
}

/* Read a string at s->i into out (escapes decoded, truncated to outsz-1); sets
 * *ok false if truncated. */
static void
read_string(struct scan *s, char *out, size_t outsz, bool *ok)
{
	size_t n = 0;

	*ok = true;
	s->i++; /* opening quote */
	while (s->i < s->len && s->b[s->i] != '"') {
		char c = s->b[s->i++];
		if (c == '\\' && s->i < s->len) {
			char e = s->b[s->i++];
			switch (e) {
			case 'n':
				c = '\n';
				break;
			case 't':
				c = '\t';
				break;
			case 'r':
				c = '\r';
				break;
			case 'b':
				c = '\b';
				break;
			case 'f':
				c = '\f';
				break;
			case 'u': {
				unsigned v = 0;
				for (int k = 0; k < 4 && s->i < s->len; k++, s->i++) {
					char h = s->b[s->i];
					v = v * 16 +
					    (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
				}
				/* keys we look for are ASCII; anything else just won't compare
				 * equal */
				c = v < 0x80 ? (char)v : '\x01';
				break;
			}
			default:
				c = e;
			}
		}
		if (n + 1 < outsz)
			out[n++] = c;
		else
			*ok = false;
	}
	s->i++; /* closing quote */
	if (outsz)
		out[n] = '\0';
}

static void
skip_value(struct scan *s, int depth)
{
	bool ok;
	char dummy[1];

	skip_ws(s);
	if (s->i >= s->len || depth > AGD_POLICY_SCAN_DEPTH)
		return;
	char c = s->b[s->i];
	if (c == '"') {
		read_string(s, dummy, sizeof(dummy), &ok);
	} else if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		s->i++;
		for (;;) {
			skip_ws(s);
			if (s->i >= s->len)
				return;
			if (s->b[s->i] == close) {
				s->i++;
				return;
			}
			if (s->b[s->i] == ',') {
				s->i++;
				continue;
			}
			if (c == '{') {
				read_string(s, dummy, sizeof(dummy), &ok);
				skip_ws(s);
				s->i++; /* ':' */
			}
			skip_value(s, depth + 1);
		}
	} else {
		while (s->i < s->len && !strchr(",]} \t\r\n", s->b[s->i]))
			s->i++;
	}
}

bool
ppos_locate(const char *buf, size_t len, const struct pstep *steps, size_t n, bool want_key,
	    int *ret_line, int *ret_col)
{
	struct scan s = {.b = buf, .len = len};
	char key[256];
	bool ok;

	if (!buf)
		return false;
	skip_ws(&s);
	for (size_t k = 0; k < n; k++) {
		if (s.i >= len)
			return false;
		char open = s.b[s.i];
		if ((steps[k].key && open != '{') || (!steps[k].key && open != '['))
			return false;
		s.i++;
		size_t idx = 0;
		bool found = false;
		while (!found) {
			skip_ws(&s);
			if (s.i >= len || s.b[s.i] == '}' || s.b[s.i] == ']')
				return false;
			if (s.b[s.i] == ',') {
				s.i++;
				continue;
			}
			if (steps[k].key) {
				size_t kpos = s.i;
				read_string(&s, key, sizeof(key), &ok);
				skip_ws(&s);
				s.i++; /* ':' */
				skip_ws(&s);
				if (ok && strcmp(key, steps[k].key) == 0) {
					if (k + 1 == n && want_key) {
						ppos_of_offset(buf, len, kpos, ret_line, ret_col);
						return true;
					}
					found = true;
				} else {
					skip_value(&s, 0);
				}
			} else {
				if (idx == steps[k].idx) {
					found = true;
				} else {
					skip_value(&s, 0);
					idx++;
				}
			}
		}
		skip_ws(&s);
	}
	ppos_of_offset(buf, len, s.i, ret_line, ret_col);
	return true;
}
