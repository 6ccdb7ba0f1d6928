/* agentd client library: JSON-RPC over the agent channel. See agentd_client.h. */
#include "agentd_client.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define SKIP_AVX2 1 /* an AVX2 scan, taken when the CPU has it */
#endif

/* Queued user messages beyond this are dropped oldest first: an agent that
 * never reads its messages must not grow without bound. */
#define MAX_QUEUED_MESSAGES 1024
#define READ_CHUNK	    65536

/* The library is installed for agent code, so it carries its own cleanup
 * helpers instead of depending on agentd's internal headers. */
static inline void
freep(void *p)
{
	free(*(void **)p);
}
static inline void
decrefp(json_t **p)
{
	json_decref(*p);
}
#define cleanup_free __attribute__((cleanup(freep)))
#define cleanup_json __attribute__((cleanup(decrefp)))

struct agentd_client {
	int fd;
	char *buf; /* bytes received: [0, used) is the frame handed out last */
	size_t len;
	size_t cap;
	size_t used;
	int64_t next_id;
	bool last_replayed;
	int64_t last_seq;
	json_t *messages; /* array of agentd/message params */
};

void
agentd_error_clear(struct agentd_error *err)
{
	if (!err)
		return;
	free(err->json);
	memset(err, 0, sizeof(*err));
}

static void
copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

int
agentd_connect_fd(int fd, struct agentd_client **ret_client)
{
	struct agentd_client *c;
	int type = 0;
	socklen_t tlen = sizeof(type);

	if (fd < 0 || !ret_client)
		return -EINVAL;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
		return -ENOTCONN;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->messages = json_array();
	if (!c->messages) {
		free(c);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;
	*ret_client = c;
	return 0;
}

int
agentd_connect(struct agentd_client **ret_client)
{
	const char *env = getenv("AGENTD_FD");
	char *end = NULL;
	long fd;

	if (!env || !*env)
		return -ENOTCONN;
	errno = 0;
	fd = strtol(env, &end, 10);
	if (errno || *end || fd < 0 || fd > INT_MAX)
		return -ENOTCONN;
	return agentd_connect_fd((int)fd, ret_client);
}

struct agentd_client *
agentd_client_free(struct agentd_client *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	json_decref(c->messages);
	free(c);
	return NULL;
}

bool
agentd_last_replayed(const struct agentd_client *c)
{
	return c && c->last_replayed;
}

int64_t
agentd_last_seq(const struct agentd_client *c)
{
	return c ? c->last_seq : 0;
}

/* Send text[0, len) (one frame without its newline) and the newline, which
 * text must have room for at text[len]. */
static int
send_text(struct agentd_client *c, char *text, size_t len)
{
	size_t off = 0;

	if (len > AGENTD_MAX_FRAME)
		return -EMSGSIZE;
	text[len] = '\n';
	len++;
	while (off < len) {
		/* MSG_NOSIGNAL: a dead supervisor is -EPIPE, not a fatal SIGPIPE. */
		ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

static int
send_json(struct agentd_client *c, const json_t *msg)
{
	cleanup_free char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);

	if (!text)
		return -ENOMEM;
	/* jansson escapes control characters, so the only newline is the
	 * terminator. */
	return send_text(c, text, strlen(text));
}

/* The next non-blank frame, as a view into the buffer that stays valid
 * until the next call (which drops it). */
static int
next_frame(struct agentd_client *c, const char **ret, size_t *ret_len)
{
	if (c->used) {
		memmove(c->buf, c->buf + c->used, c->len - c->used);
		c->len -= c->used;
		c->used = 0;
	}
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t flen = (size_t)(nl - c->buf);

			if (flen && c->buf[flen - 1] == '\r')
				flen--;
			if (!flen) { /* blank line: tolerated */
				memmove(c->buf, nl + 1, c->len - (size_t)(nl + 1 - c->buf));
				c->len -= (size_t)(nl + 1 - c->buf);
				continue;
			}
			c->used = (size_t)(nl + 1 - c->buf);
			*ret = c->buf;
			*ret_len = flen;
			return 0;
		}
		if (c->len > AGENTD_MAX_FRAME)
			return -EMSGSIZE;
		if (c->cap - c->len < READ_CHUNK) {
			size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK * 2;
			char *nbuf = realloc(c->buf, ncap);
			if (!nbuf)
				return -ENOMEM;
			c->buf = nbuf;
			c->cap = ncap;
		}
		/* Wait in poll, not in read: a reader blocked in read on a unix
		 * stream socket is also woken when the supervisor reads the
		 * request (the socket's send space frees), a wasted wake-up and
		 * context switch per call; poll waits for input only. */
		struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
		if (poll(&pfd, 1, -1) < 0 && errno != EINTR)
			return -errno;
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		c->len += (size_t)n;
	}
}

static int
parse_frame(const char *f, size_t len, json_t **ret)
{
	json_error_t jerr;
	json_t *v = json_loadb(f, len, JSON_REJECT_DUPLICATES, &jerr);

	if (!v || !json_is_object(v)) {
		json_decref(v);
		return -EPROTO;
	}
	*ret = v;
	return 0;
}

/* ---- the reply to a tools/call without building it ----
 * A live or replayed call's reply carries its result as structuredContent,
 * which is what agentd_call returns as the supervisor wrote it (and as a
 * text block too unless the call asked for none: the scanner skips it).
 * Parsing the frame into jansson values and encoding structuredContent
 * again cost more than the rest of a call; this scanner checks the frame
 * and finds that text in one pass instead. It
 * accepts only what it fully checks (JSON syntax, UTF-8, no NUL, no lone
 * surrogate, no repeated key, integers that fit) and leaves everything else
 * (errors, messages, isError, a bare MCP result, \u-escaped or repeated keys,
 * large numbers) to the jansson path, so both paths accept the same frames
 * and return the same text. */
#define SCAN_MAX_DEPTH 64
#define SCAN_MAX_KEYS  64

struct scan {
	const unsigned char *p, *end;
	int depth;
	/* Inside structuredContent: only what jansson's compact encoding of the
	 * parsed value would give back byte for byte (no whitespace, no "\/" or
	 * \u escape, integers only), so returning the text as it is returns
	 * what the jansson path returns. */
	bool canon;
	bool newline; /* whitespace skipped held a '\r' or '\n' */
};

struct scan_keys {
	size_t n;
	struct {
		const unsigned char *p;
		size_t len;
	} k[SCAN_MAX_KEYS];
};

static void
scan_ws(struct scan *s)
{
	while (!s->canon && s->p < s->end &&
	       (*s->p == ' ' || *s->p == '\t' || *s->p == '\r' || *s->p == '\n')) {
		s->newline |= *s->p != ' ' && *s->p != '\t';
		s->p++;
	}
}

static int
hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

#ifdef SKIP_AVX2
/* The lanes of the 32 bytes at p that end a plain run: '"', '\\', and those
 * below 0x20 as signed bytes, which are also all the bytes >= 0x80. */
__attribute__((target("avx2"))) static inline unsigned
special32(const unsigned char *p)
{
	__m256i x = _mm256_loadu_si256((const __m256i *)(const void *)p);
	__m256i m = _mm256_or_si256(_mm256_or_si256(_mm256_cmpeq_epi8(x, _mm256_set1_epi8('"')),
						    _mm256_cmpeq_epi8(x, _mm256_set1_epi8('\\'))),
				    _mm256_cmpgt_epi8(_mm256_set1_epi8(0x20), x));

	return (unsigned)_mm256_movemask_epi8(m);
}

/* skip_plain for end - p >= 32, thirty-two bytes a step. The last step reads
 * the 32 bytes that end at end, overlapping bytes already found plain, so
 * that nothing past end is read. */
__attribute__((target("avx2"))) static const unsigned char *
skip_plain_avx2(const unsigned char *p, const unsigned char *end)
{
	unsigned bits;

	for (; end - p >= 32; p += 32)
		if ((bits = special32(p)))
			return p + __builtin_ctz(bits);
	if (p == end)
		return end;
	p = end - 32;
	bits = special32(p);
	return bits ? p + __builtin_ctz(bits) : end;
}
#endif

/* The first byte at or after p that is '"', '\\', a control character or
 * non-ASCII (end if none): a payload's long plain runs are skipped 32 bytes
 * a step on a CPU with AVX2, else sixteen or eight. In the eight-byte test a
 * lane above a true one may be marked falsely (a borrow), never one below,
 * so the lowest mark is the answer. */
static const unsigned char *
skip_plain(const unsigned char *p, const unsigned char *end)
{
#ifdef SKIP_AVX2
	if (end - p >= 32 && __builtin_cpu_supports("avx2"))
		return skip_plain_avx2(p, end);
#endif
#ifdef __SSE2__
	/* Sixteen bytes a step, the test of special32. */
	const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
		      below = _mm_set1_epi8(0x20);
	for (; end - p >= 16; p += 16) {
		__m128i x = _mm_loadu_si128((const __m128i *)(const void *)p);
		__m128i m =
		    _mm_or_si128(_mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
				 _mm_cmplt_epi8(x, below));
		unsigned bits = (unsigned)_mm_movemask_epi8(m);
		if (bits)
			return p + __builtin_ctz(bits);
	}
#endif
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	const uint64_t ones = 0x0101010101010101ull, highs = 0x8080808080808080ull;

	for (; end - p >= 8; p += 8) {
		uint64_t w, q, b, m;
		memcpy(&w, p, 8);
		q = w ^ (ones * '"');
		b = w ^ (ones * '\\');
		m = (((w - ones * 0x20) & ~w) | ((q - ones) & ~q) | ((b - ones) & ~b) | w) & highs;
		if (m)
			return p + __builtin_ctzll(m) / 8;
	}
#endif
	while (p < end && *p >= 0x20 && *p < 0x80 && *p != '"' && *p != '\\')
		p++;
	return p;
}

/* A string; ret and ret_len (may be NULL) get its raw bytes between the quotes. */
static bool
scan_string(struct scan *s, const unsigned char **ret, size_t *ret_len)
{
	const unsigned char *p = s->p, *end = s->end, *start;

	if (p >= end || *p != '"')
		return false;
	start = ++p;
	while ((p = skip_plain(p, end)) < end) {
		unsigned char ch = *p;
		if (ch == '"') {
			if (ret) {
				*ret = start;
				*ret_len = (size_t)(p - start);
			}
			s->p = p + 1;
			return true;
		}
		if (ch < 0x20)
			return false;
		if (ch == '\\') {
			if (end - p < 2)
				return false;
			ch = p[1];
			if (ch == 'u') {
				int v = 0;
				if (s->canon || end - p < 6)
					return false;
				for (int i = 2; i < 6; i++) {
					int h = hexval(p[i]);
					if (h < 0)
						return false;
					v = v << 4 | h;
				}
				/* NUL and surrogates: jansson's decision. */
				if (v == 0 || (v >= 0xd800 && v <= 0xdfff))
					return false;
				p += 6;
			} else if (ch == '"' || ch == '\\' || (ch == '/' && !s->canon) ||
				   ch == 'b' || ch == 'f' || ch == 'n' || ch == 'r' || ch == 't') {
				p += 2;
			} else {
				return false;
			}
			continue;
		}
		if (ch < 0x80) {
			p++;
			continue;
		}
		/* One UTF-8 sequence: shortest form, no surrogate, at most U+10FFFF. */
		int n;
		uint32_t cp;
		if (ch >= 0xc2 && ch <= 0xdf)
			n = 1, cp = ch & 0x1f;
		else if (ch >= 0xe0 && ch <= 0xef)
			n = 2, cp = ch & 0x0f;
		else if (ch >= 0xf0 && ch <= 0xf4)
			n = 3, cp = ch & 0x07;
		else
			return false;
		if (end - p <= n)
			return false;
		for (int i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i] & 0x3f);
		}
		if ((n == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (n == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return false;
		p += n + 1;
	}
	return false;
}

static size_t
scan_digits(struct scan *s)
{
	const unsigned char *from = s->p;

	while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
		s->p++;
	return (size_t)(s->p - from);
}

/* A number whose integer part has at most 18 digits and whose exponent at
 * most 2 (anything larger: jansson decides whether it fits). *ret_int (may be
 * NULL) is set when it is an integer. */
static bool
scan_number(struct scan *s, bool *ret_int, int64_t *ret_v)
{
	const unsigned char *from = s->p;
	bool neg = s->p < s->end && *s->p == '-', is_int = true;
	size_t n;

	if (neg)
		s->p++;
	if (s->p >= s->end || *s->p < '0' || *s->p > '9' ||
	    (*s->p == '0' && s->end - s->p > 1 && s->p[1] >= '0' && s->p[1] <= '9'))
		return false;
	n = scan_digits(s);
	if (n > 18)
		return false;
	if (s->p < s->end && *s->p == '.') {
		s->p++;
		is_int = false;
		if (scan_digits(s) == 0)
			return false;
	}
	if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
		s->p++;
		is_int = false;
		if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
			s->p++;
		n = scan_digits(s);
		if (n == 0 || n > 2)
			return false;
	}
	/* jansson writes reals its own way and -0 as 0. */
	if (s->canon && (!is_int || (neg && s->p - from == 2 && from[1] == '0')))
		return false;
	if (ret_int)
		*ret_int = is_int;
	if (ret_v && is_int) {
		int64_t v = 0;
		for (const unsigned char *q = from + neg; q < s->p; q++)
			v = v * 10 + (*q - '0');
		*ret_v = neg ? -v : v;
	}
	return true;
}

static bool
scan_literal(struct scan *s, const char *lit)
{
	size_t n = strlen(lit);

	if ((size_t)(s->end - s->p) < n || memcmp(s->p, lit, n) != 0)
		return false;
	s->p += n;
	return true;
}

static bool scan_value(struct scan *s);

/* Next member of an object whose '{' has been consumed: 1 with its key and
 * s->p at the value, 0 after the closing '}', -1 if malformed, a key repeats,
 * a key has escapes or there are too many keys. */
static int
scan_member(struct scan *s, struct scan_keys *keys, const unsigned char **ret_key, size_t *ret_len)
{
	const unsigned char *k;
	size_t len;

	scan_ws(s);
	if (s->p < s->end && *s->p == '}') {
		s->p++;
		return 0;
	}
	if (keys->n > 0) {
		if (s->p >= s->end || *s->p != ',')
			return -1;
		s->p++;
		scan_ws(s);
	}
	if (!scan_string(s, &k, &len) || memchr(k, '\\', len) || keys->n == SCAN_MAX_KEYS)
		return -1;
	for (size_t i = 0; i < keys->n; i++)
		if (keys->k[i].len == len && memcmp(keys->k[i].p, k, len) == 0)
			return -1;
	keys->k[keys->n].p = k;
	keys->k[keys->n].len = len;
	keys->n++;
	scan_ws(s);
	if (s->p >= s->end || *s->p != ':')
		return -1;
	s->p++;
	scan_ws(s);
	*ret_key = k;
	*ret_len = len;
	return 1;
}

static bool
scan_open(struct scan *s, unsigned char ch)
{
	scan_ws(s);
	if (s->p >= s->end || *s->p != ch || s->depth == SCAN_MAX_DEPTH)
		return false;
	s->p++;
	s->depth++;
	return true;
}

static bool
scan_object(struct scan *s)
{
	struct scan_keys keys = {0};
	const unsigned char *k;
	size_t len;
	int m;

	if (!scan_open(s, '{'))
		return false;
	while ((m = scan_member(s, &keys, &k, &len)) == 1)
		if (!scan_value(s))
			return false;
	s->depth--;
	return m == 0;
}

static bool
scan_array(struct scan *s)
{
	bool first = true;

	if (!scan_open(s, '['))
		return false;
	for (;;) {
		scan_ws(s);
		if (s->p < s->end && *s->p == ']') {
			s->p++;
			s->depth--;
			return true;
		}
		if (!first) {
			if (s->p >= s->end || *s->p != ',')
				return false;
			s->p++;
		}
		first = false;
		if (!scan_value(s))
			return false;
	}
}

static bool
scan_value(struct scan *s)
{
	scan_ws(s);
	if (s->p >= s->end)
		return false;
	switch (*s->p) {
	case '"':
		return scan_string(s, NULL, NULL);
	case '{':
		return scan_object(s);
	case '[':
		return scan_array(s);
	case 't':
		return scan_literal(s, "true");
	case 'f':
		return scan_literal(s, "false");
	case 'n':
		return scan_literal(s, "null");
	default:
		return scan_number(s, NULL, NULL);
	}
}

static bool
key_is(const unsigned char *k, size_t len, const char *name)
{
	return len == strlen(name) && memcmp(k, name, len) == 0;
}

/* The caller's arguments are one JSON object that jansson would accept; with
 * its length and whether it is on one line (a raw '\r' or '\n' can only be
 * whitespace between tokens). */
static bool
scan_args(const char *text, size_t *ret_len, bool *ret_one_line)
{
	size_t len = strlen(text);
	struct scan s = {.p = (const unsigned char *)text,
			 .end = (const unsigned char *)text + len};

	scan_ws(&s);
	if (s.p >= s.end || *s.p != '{' || !scan_object(&s))
		return false;
	scan_ws(&s);
	if (s.p != s.end)
		return false;
	*ret_len = len;
	*ret_one_line = !s.newline;
	return true;
}

struct call_reply {
	const char *content; /* structuredContent's text, a view into the frame */
	size_t len;
	bool replayed;
	int64_t seq;
};

/* _meta: agentd/seq (an integer) and agentd/replayed (a boolean) if present. */
static bool
scan_meta(struct scan *s, struct call_reply *out)
{
	struct scan_keys keys = {0};
	const unsigned char *k;
	size_t len;
	int m;

	if (!scan_open(s, '{'))
		return false;
	while ((m = scan_member(s, &keys, &k, &len)) == 1) {
		bool is_int = false;
		if (key_is(k, len, "agentd/seq")) {
			if (!scan_number(s, &is_int, &out->seq) || !is_int)
				return false;
		} else if (key_is(k, len, "agentd/replayed")) {
			if (scan_literal(s, "true"))
				out->replayed = true;
			else if (!scan_literal(s, "false"))
				return false;
		} else if (!scan_value(s)) {
			return false;
		}
	}
	s->depth--;
	return m == 0;
}

/* The frame is {"jsonrpc", "id": id, "result": {..., "structuredContent": V,
 * "isError": false (or absent), "_meta": ...}} in any order: true with V's
 * text. Anything else: false, and the jansson path reads the frame. */
static bool
scan_call_reply(const char *frame, size_t flen, int64_t id, struct call_reply *out)
{
	struct scan s = {.p = (const unsigned char *)frame,
			 .end = (const unsigned char *)frame + flen};
	struct scan_keys top = {0}, res = {0};
	struct call_reply r = {0};
	const unsigned char *k;
	size_t len;
	bool have_id = false, have_result = false;
	int m;

	if (!scan_open(&s, '{'))
		return false;
	while ((m = scan_member(&s, &top, &k, &len)) == 1) {
		if (key_is(k, len, "jsonrpc")) {
			if (!scan_string(&s, NULL, NULL))
				return false;
		} else if (key_is(k, len, "id")) {
			bool is_int = false;
			int64_t v = 0;
			if (!scan_number(&s, &is_int, &v) || !is_int || v != id)
				return false;
			have_id = true;
		} else if (key_is(k, len, "result")) {
			if (!scan_open(&s, '{'))
				return false;
			int rm;
			while ((rm = scan_member(&s, &res, &k, &len)) == 1) {
				if (key_is(k, len, "structuredContent")) {
					const unsigned char *from = s.p;
					s.canon = true;
					if (!scan_value(&s))
						return false;
					s.canon = false;
					r.content = (const char *)from;
					r.len = (size_t)(s.p - from);
				} else if (key_is(k, len, "isError")) {
					if (!scan_literal(&s, "false"))
						return false;
				} else if (key_is(k, len, "_meta")) {
					if (!scan_meta(&s, &r))
						return false;
				} else if (!scan_value(&s)) {
					return false;
				}
			}
			if (rm < 0)
				return false;
			s.depth--;
			have_result = true;
		} else {
			return false; /* a method, an error, or unknown */
		}
	}
	scan_ws(&s);
	if (m < 0 || s.p != s.end || !have_id || !have_result || !r.content)
		return false;
	*out = r;
	return true;
}

/* A message that carries a method: queue user messages, answer pings,
 * refuse other requests. */
static int
handle_incoming(struct agentd_client *c, json_t *msg, const char *method)
{
	json_t *id = json_object_get(msg, "id");
	cleanup_json json_t *reply = NULL;

	if (!id) {
		if (strcmp(method, "agentd/message") == 0) {
			json_t *params = json_object_get(msg, "params");
			if (json_array_size(c->messages) >= MAX_QUEUED_MESSAGES)
				json_array_remove(c->messages, 0);
			if (json_array_append_new(c->messages,
						  params ? json_incref(params) : json_object()) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	if (strcmp(method, "ping") == 0)
		reply = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result");
	else
		reply = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
				  "code", -32601, "message", "method not found");
	if (!reply)
		return -ENOMEM;
	return send_json(c, reply);
}

static void
fill_rpc_error(const json_t *error, struct agentd_error *err)
{
	json_t *data = json_object_get(error, "data");
	const char *message = json_string_value(json_object_get(error, "message"));

	if (!err)
		return;
	agentd_error_clear(err);
	err->rpc_code = (int)json_integer_value(json_object_get(error, "code"));
	copy_str(err->message, sizeof(err->message), message);
	if (err->rpc_code == AGENTD_RPC_DENIED && json_is_object(data)) {
		const char *reason = json_string_value(json_object_get(data, "reason"));
		copy_str(err->decision, sizeof(err->decision),
			 json_string_value(json_object_get(data, "decision")));
		copy_str(err->rule, sizeof(err->rule),
			 json_string_value(json_object_get(data, "rule")));
		if (reason)
			copy_str(err->message, sizeof(err->message), reason);
	}
	if (data)
		err->json = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Wait for the response to request id. Returns 0 with the result (a new
 * reference) in *ret_result; with fast (a tools/call), 1 when the reply was
 * a plain result read by scan_call_reply into *fast instead. */
static int
await_reply(struct agentd_client *c, int64_t id, json_t **ret_result, struct call_reply *fast,
	    struct agentd_error *err)
{
	int r;

	for (;;) {
		cleanup_json json_t *msg = NULL;
		const char *m, *frame = NULL;
		size_t flen = 0;
		json_t *rid, *error, *result;

		r = next_frame(c, &frame, &flen);
		if (r < 0)
			return r;
		if (fast && scan_call_reply(frame, flen, id, fast))
			return 1;
		r = parse_frame(frame, flen, &msg);
		if (r < 0)
			return r;
		m = json_string_value(json_object_get(msg, "method"));
		if (m) {
			r = handle_incoming(c, msg, m);
			if (r < 0)
				return r;
			continue;
		}
		rid = json_object_get(msg, "id");
		error = json_object_get(msg, "error");
		/* Only one request is ever in flight, so any other id is a
		 * supervisor fault (e.g. a parse error addressed to id null). */
		if (!json_is_integer(rid) || json_integer_value(rid) != id) {
			if (json_is_object(error))
				fill_rpc_error(error, err);
			return -EPROTO;
		}
		if (json_is_object(error)) {
			fill_rpc_error(error, err);
			return json_integer_value(json_object_get(error, "code")) ==
				       AGENTD_RPC_DENIED
				   ? -AGENTD_EDENIED
				   : -AGENTD_EREMOTE;
		}
		result = json_object_get(msg, "result");
		if (!result)
			return -EPROTO;
		*ret_result = json_incref(result);
		return 0;
	}
}

/* Send one request and wait for its response (await_reply). */
static int
request_json(struct agentd_client *c, const char *method, json_t *params, json_t **ret_result,
	     struct call_reply *fast, struct agentd_error *err)
{
	cleanup_json json_t *req = NULL;
	int64_t id;
	int r;

	if (!c || !method)
		return -EINVAL;
	id = c->next_id++;
	req =
	    json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)id, "method", method);
	if (!req)
		return -ENOMEM;
	if (params && json_object_set(req, "params", params) < 0)
		return -ENOMEM;
	r = send_json(c, req);
	if (r < 0)
		return r;
	return await_reply(c, id, ret_result, fast, err);
}

/* A tools/call request framed around the caller's own arguments text (checked
 * already: one JSON object, no repeated key, alen bytes on one line) instead
 * of encoding it again. Only for a tool name that needs no escape; otherwise
 * -EAGAIN and request_json does it. */
static int
request_call_text(struct agentd_client *c, const char *tool, const char *args, size_t alen,
		  json_t **ret_result, struct call_reply *fast, struct agentd_error *err)
{
	static const char head[] = "{\"jsonrpc\":\"2.0\",\"id\":%lld,\"method\":\"tools/call\","
				   "\"params\":{\"name\":\"%s\",\"arguments\":";
	static const char tail[] = ",\"_meta\":{\"agentd/text\":false}}}";
	size_t tlen = strlen(tool);
	int64_t id;
	int r;

	for (size_t i = 0; i < tlen; i++)
		if (tool[i] < 0x20 || tool[i] > 0x7e || tool[i] == '"' || tool[i] == '\\')
			return -EAGAIN;
	if (alen > AGENTD_MAX_FRAME)
		return -EMSGSIZE;
	cleanup_free char *text = malloc(sizeof(head) + 24 + tlen + alen + sizeof(tail));
	if (!text)
		return -ENOMEM;
	id = c->next_id++;
	int n = sprintf(text, head, (long long)id, tool);
	memcpy(text + n, args, alen);
	memcpy(text + n + alen, tail, sizeof(tail) - 1);
	r = send_text(c, text, (size_t)n + alen + sizeof(tail) - 1);
	if (r < 0)
		return r;
	return await_reply(c, id, ret_result, fast, err);
}

static int
parse_params(const char *text, json_t **ret)
{
	json_error_t jerr;
	json_t *v;

	if (!text) {
		*ret = NULL;
		return 0;
	}
	v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
dump_out(const json_t *v, char **ret)
{
	char *text;

	if (!ret)
		return 0;
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

int
agentd_request(struct agentd_client *c, const char *method, const char *params_json,
	       char **ret_result_json, struct agentd_error *err)
{
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	int r;

	r = parse_params(params_json, &params);
	if (r < 0)
		return r;
	r = request_json(c, method, params, &result, NULL, err);
	if (r < 0)
		return r;
	return dump_out(result, ret_result_json);
}

int
agentd_call(struct agentd_client *c, const char *tool, const char *args_json,
	    char **ret_result_json, struct agentd_error *err)
{
	cleanup_json json_t *args = NULL;
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	json_t *content, *meta;
	int r;

	if (!tool)
		return -EINVAL;
	/* One object, checked by the scanner or else by jansson. */
	size_t alen = 0;
	bool one_line = false;
	if (!args_json || !scan_args(args_json, &alen, &one_line)) {
		r = parse_params(args_json ? args_json : "{}", &args);
		if (r < 0)
			return r;
		if (!json_is_object(args))
			return -EINVAL;
		if (args_json) {
			alen = strlen(args_json);
			one_line = !strpbrk(args_json, "\r\n");
		}
	}
	struct call_reply fast;
	r = args_json && c && one_line
		? request_call_text(c, tool, args_json, alen, &result, &fast, err)
		: -EAGAIN;
	if (r == -EAGAIN) {
		if (!args && parse_params(args_json, &args) < 0)
			return -EINVAL;
		params = json_pack("{s:s, s:O, s:{s:b}}", "name", tool, "arguments", args, "_meta",
				   "agentd/text", 0);
		if (!params)
			return -ENOMEM;
		r = request_json(c, "tools/call", params, &result, &fast, err);
	}
	if (r < 0)
		return r;
	if (r == 1) {
		if (ret_result_json) {
			/* The scanner saw every byte: no NUL is among them. */
			char *text = malloc(fast.len + 1);
			if (!text)
				return -ENOMEM;
			memcpy(text, fast.content, fast.len);
			text[fast.len] = '\0';
			*ret_result_json = text;
		}
		c->last_replayed = fast.replayed;
		c->last_seq = fast.seq;
		return 0;
	}
	if (!json_is_object(result))
		return -EPROTO;
	content = json_object_get(result, "structuredContent");
	if (!content) {
		/* A bare MCP result: the first text block holds the JSON. */
		json_t *block = json_array_get(json_object_get(result, "content"), 0);
		const char *text = json_string_value(json_object_get(block, "text"));
		json_t *parsed = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
		if (!parsed)
			parsed = json_pack("{s:s}", "text", text ? text : "");
		if (!parsed || json_object_set_new(result, "structuredContent", parsed) < 0)
			return -ENOMEM;
		content = parsed;
	}
	if (json_is_true(json_object_get(result, "isError"))) {
		json_t *e = json_object_get(content, "error");
		if (err) {
			agentd_error_clear(err);
			copy_str(err->code, sizeof(err->code),
				 json_string_value(json_object_get(e, "code")));
			copy_str(err->message, sizeof(err->message),
				 json_string_value(json_object_get(e, "message")));
			if (!err->code[0])
				copy_str(err->code, sizeof(err->code), "EUNKNOWN");
			err->json = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
		}
		return -AGENTD_ETOOL;
	}
	r = dump_out(content, ret_result_json);
	if (r < 0)
		return r;
	meta = json_object_get(result, "_meta");
	c->last_replayed = json_is_true(json_object_get(meta, "agentd/replayed"));
	c->last_seq = json_integer_value(json_object_get(meta, "agentd/seq"));
	return 0;
}

int
agentd_resume(struct agentd_client *c, bool use_state, char **ret_result_json,
	      struct agentd_error *err)
{
	cleanup_json json_t *params = json_pack("{s:b}", "use_state", use_state);
	cleanup_json json_t *result = NULL;
	int r;

	if (!params)
		return -ENOMEM;
	r = request_json(c, "agentd/resume", params, &result, NULL, err);
	if (r < 0)
		return r;
	if (!json_is_object(result))
		return -EPROTO;
	return dump_out(result, ret_result_json);
}

int
agentd_checkpoint(struct agentd_client *c, const char *state_json, int64_t *ret_seq,
		  struct agentd_error *err)
{
	cleanup_json json_t *state = NULL;
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	int r;

	r = parse_params(state_json ? state_json : "null", &state);
	if (r < 0)
		return r;
	params = json_pack("{s:O}", "state", state);
	if (!params)
		return -ENOMEM;
	r = request_json(c, "agentd/checkpoint", params, &result, NULL, err);
	if (r < 0)
		return r;
	if (!json_is_integer(json_object_get(result, "seq")))
		return -EPROTO;
	if (ret_seq)
		*ret_seq = json_integer_value(json_object_get(result, "seq"));
	return 0;
}

int
agentd_next_message(struct agentd_client *c, char **ret_params_json)
{
	int r;

	if (!c || !ret_params_json)
		return -EINVAL;
	if (json_array_size(c->messages) == 0)
		return 0;
	r = dump_out(json_array_get(c->messages, 0), ret_params_json);
	if (r < 0)
		return r;
	json_array_remove(c->messages, 0);
	return 1;
}

const char *
agentd_strerror(int r)
{
	switch (-r) {
	case 0:
		return "success";
	case AGENTD_ETOOL:
		return "tool error";
	case AGENTD_EDENIED:
		return "denied";
	case AGENTD_EREMOTE:
		return "error from supervisor";
	case ENOTCONN:
		return "not running under agentd (AGENTD_FD missing or not a socket)";
	case EPIPE:
		return "the supervisor closed the agentd channel";
	case EPROTO:
		return "malformed message from the supervisor";
	case EMSGSIZE:
		return "frame exceeds the maximum size";
	default:
		return strerror(-r);
	}
}
