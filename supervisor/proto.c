/* The agent channel: newline framing, strict JSON-RPC 2.0 parsing, reply builders
 * and a bounded writer. Everything here treats the peer as hostile: every buffer
 * is capped, every parse is strict, and no call can block without a deadline. */
#include "supervisor/proto.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"

/* One fill never reads more than this; the buffer never holds more than
 * max + PROTO_READ_CHUNK bytes. */
#define PROTO_READ_CHUNK (64u << 10)
/* Sanity bound on the configurable frame limit. */
#define PROTO_MAX_FRAME_LIMIT (1u << 30)

/*
 * Reader layout: buf[0, consumed) has been handed out already, buf[consumed, len)
 * is pending input, and buf[consumed, scan) is known to hold no newline. Handed
 * out bytes are only dropped (memmove) at the next fill, so a burst of small
 * pipelined frames costs one move rather than one per frame.
 */

int
proto_reader_init(struct proto_reader *r, size_t max_frame)
{
	if (max_frame == 0 || max_frame > PROTO_MAX_FRAME_LIMIT)
		return -EINVAL;
	memset(r, 0, sizeof(*r));
	r->max = max_frame;
	return 0;
}

void
proto_reader_free(struct proto_reader *r)
{
	if (!r)
		return;
	free(r->buf);
	r->buf = NULL;
	r->len = r->cap = r->scan = r->consumed = 0;
	r->discarding = false;
}

static size_t
reader_limit(const struct proto_reader *r)
{
	return r->max + PROTO_READ_CHUNK;
}

/* Drop handed-out bytes and make room for one more chunk. Returns the number of
 * bytes that may be appended now (0 if the buffer is at its limit), or -ENOMEM. */
static ssize_t
reader_make_room(struct proto_reader *r)
{
	if (r->consumed > 0) {
		memmove(r->buf, r->buf + r->consumed, r->len - r->consumed);
		r->len -= r->consumed;
		r->scan = r->scan > r->consumed ? r->scan - r->consumed : 0;
		r->consumed = 0;
	}
	size_t limit = reader_limit(r);
	size_t want = r->len + PROTO_READ_CHUNK;
	if (want > limit)
		want = limit;
	if (r->cap < want) {
		/* Grow geometrically so an idle channel costs little memory. */
		size_t ncap = r->cap ? r->cap * 2 : PROTO_READ_CHUNK;
		if (ncap < want)
			ncap = want;
		if (ncap > limit)
			ncap = limit;
		char *nb = realloc(r->buf, ncap);
		if (!nb)
			return -ENOMEM;
		r->buf = nb;
		r->cap = ncap;
	}
	size_t room = r->cap - r->len;
	return (ssize_t)(room < PROTO_READ_CHUNK ? room : PROTO_READ_CHUNK);
}

ssize_t
proto_reader_fill(struct proto_reader *r, int fd)
{
	ssize_t room = reader_make_room(r);
	if (room < 0)
		return room;
	if (room == 0)
		return -ENOBUFS; /* caller must drain with proto_reader_next first */
	for (;;) {
		ssize_t n = read(fd, r->buf + r->len, (size_t)room);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EWOULDBLOCK)
				return -EAGAIN;
			return -errno;
		}
		r->len += (size_t)n;
		return n;
	}
}

size_t
proto_reader_feed(struct proto_reader *r, const void *data, size_t len)
{
	ssize_t room = reader_make_room(r);
	if (room <= 0)
		return 0;
	size_t n = len < (size_t)room ? len : (size_t)room;
	memcpy(r->buf + r->len, data, n);
	r->len += n;
	return n;
}

int
proto_reader_next(struct proto_reader *r, const char **ret_frame, size_t *ret_len)
{
	for (;;) {
		size_t from = r->scan > r->consumed ? r->scan : r->consumed;
		char *nl = from < r->len ? memchr(r->buf + from, '\n', r->len - from) : NULL;

		if (r->discarding) {
			if (!nl) {
				/* Nothing of an over-long frame is ever kept. */
				r->len = r->consumed;
				r->scan = r->len;
				return 0;
			}
			r->consumed = (size_t)(nl - r->buf) + 1;
			r->scan = r->consumed;
			r->discarding = false;
			continue;
		}
		if (!nl) {
			r->scan = r->len;
			/* max bytes plus a '\r' may legitimately wait for their '\n'. */
			if (r->len - r->consumed > r->max + 1) {
				r->discarding = true;
				r->len = r->consumed;
				r->scan = r->len;
				return -E2BIG;
			}
			return 0;
		}
		const char *frame = r->buf + r->consumed;
		size_t flen = (size_t)(nl - frame);
		r->consumed = (size_t)(nl - r->buf) + 1;
		r->scan = r->consumed;
		if (flen > 0 && frame[flen - 1] == '\r')
			flen--;
		if (flen > r->max)
			return -E2BIG;
		*ret_frame = frame;
		*ret_len = flen;
		return 1;
	}
}

bool
proto_reader_partial(const struct proto_reader *r)
{
	return r->discarding || r->len > r->consumed;
}

/* ---- parsing ---- */

static int parse_fail(int code, char *err, size_t errsz, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Replace every byte outside printable ASCII with '?'. Error texts may quote
 * the offending input (jansson's "near '...'"), possibly cut mid-character, and
 * a reply must still be valid UTF-8 JSON. */
static void
ascii_sanitize(char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			*s = '?';
}

static int
parse_fail(int code, char *err, size_t errsz, const char *fmt, ...)
{
	if (err && errsz > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errsz, fmt, ap);
		va_end(ap);
		ascii_sanitize(err);
	}
	return code;
}

static bool
valid_id(const json_t *id)
{
	return json_is_string(id) || json_is_integer(id);
}

/* Valid JSON that is not an object or array is an invalid request, not a parse
 * error (JSON-RPC 2.0). agd_json_parse only accepts containers, so check scalars
 * separately; they cannot nest, so no depth bound is needed. */
static bool
is_json_scalar(const char *frame, size_t len)
{
	size_t i = 0;
	while (i < len && (frame[i] == ' ' || frame[i] == '\t' || frame[i] == '\r'))
		i++;
	if (i == len || frame[i] == '{' || frame[i] == '[')
		return false;
	json_error_t e;
	json_t *v = json_loadb(frame, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &e);
	bool ok = v != NULL;
	json_decref(v);
	return ok;
}

static int
check_error_object(const json_t *e, char *err, size_t errsz)
{
	const char *key;
	json_t *v;

	if (!json_is_object(e))
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz, "error must be an object");
	if (!json_is_integer(json_object_get(e, "code")))
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
				  "error.code must be an integer");
	if (!json_is_string(json_object_get(e, "message")))
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
				  "error.message must be a string");
	json_object_foreach((json_t *)e, key, v)
	{
		if (strcmp(key, "code") && strcmp(key, "message") && strcmp(key, "data"))
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "unknown member in error object");
	}
	return 0;
}

int
proto_parse(const char *frame, size_t len, struct proto_msg *ret, json_t **ret_id, char *err,
	    size_t errsz)
{
	json_error_t jerr;
	const char *key;
	json_t *v;

	if (ret_id)
		*ret_id = NULL;
	cleanup_json json_t *root = agd_json_parse(frame, len, AGD_JSON_MAX_DEPTH, &jerr);
	if (!root) {
		if (is_json_scalar(frame, len))
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "message is not an object");
		return parse_fail(PROTO_PARSE_ERROR, err, errsz, "parse error: %s", jerr.text);
	}
	if (!json_is_object(root))
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz, "message is not an object");

	json_t *id = json_object_get(root, "id");
	/* Recover the id first so any later error can be addressed to the request. */
	if (id && valid_id(id) && ret_id)
		*ret_id = json_incref(id);

	json_object_foreach(root, key, v)
	{
		if (strcmp(key, "jsonrpc") && strcmp(key, "id") && strcmp(key, "method") &&
		    strcmp(key, "params") && strcmp(key, "result") && strcmp(key, "error"))
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "unknown member \"%.64s\"", key);
	}
	json_t *ver = json_object_get(root, "jsonrpc");
	if (!json_is_string(ver) || strcmp(json_string_value(ver), "2.0") != 0)
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz, "jsonrpc must be \"2.0\"");
	if (id && !valid_id(id))
		return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
				  "id must be a string or an integer");

	json_t *method = json_object_get(root, "method");
	json_t *params = json_object_get(root, "params");
	json_t *result = json_object_get(root, "result");
	json_t *error = json_object_get(root, "error");
	struct proto_msg m = {0};

	if (method) {
		if (!json_is_string(method))
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "method must be a string");
		if (params && !json_is_object(params) && !json_is_array(params))
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "params must be an object or an array");
		if (result || error)
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "a request cannot carry result or error");
		m.kind = id ? PROTO_REQUEST : PROTO_NOTIFICATION;
		m.method = json_string_value(method);
		m.params = params;
	} else {
		if (!id)
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "message has neither method nor id");
		if (params)
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "a response cannot carry params");
		if (!result == !error)
			return parse_fail(PROTO_INVALID_REQUEST, err, errsz,
					  "a response needs exactly one of result and error");
		if (error) {
			int r = check_error_object(error, err, errsz);
			if (r < 0)
				return r;
		}
		m.kind = PROTO_RESPONSE;
	}
	m.id = id;
	m.root = steal_ptr(&root);
	*ret = m;
	return 0;
}

void
proto_msg_clear(struct proto_msg *m)
{
	if (!m)
		return;
	json_decref(m->root);
	memset(m, 0, sizeof(*m));
}

/* ---- builders ---- */

static json_t *
envelope(const json_t *id)
{
	json_t *msg = json_object();
	if (!msg)
		return NULL;
	json_t *idv = id ? json_deep_copy(id) : json_null();
	if (json_object_set_new(msg, "jsonrpc", json_string("2.0")) < 0 ||
	    json_object_set_new(msg, "id", idv) < 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *
proto_result(const json_t *id, json_t *result)
{
	if (!result)
		return NULL;
	json_t *msg = envelope(id);
	if (!msg || json_object_set_new(msg, "result", result) < 0) {
		if (!msg)
			json_decref(result);
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *
proto_error(const json_t *id, int code, const char *message, json_t *data)
{
	cleanup_json json_t *e = json_object();
	cleanup_json json_t *d = data;

	if (!e || json_object_set_new(e, "code", json_integer(code)) < 0)
		return NULL;
	json_t *m = json_string(message ? message : "");
	if (!m && message) {
		/* Not UTF-8: send a sanitised copy rather than no reply at all. */
		cleanup_free char *copy = strdup(message);
		if (!copy)
			return NULL;
		ascii_sanitize(copy);
		m = json_string(copy);
	}
	if (json_object_set_new(e, "message", m) < 0)
		return NULL;
	if (d && json_object_set_new(e, "data", steal_ptr(&d)) < 0)
		return NULL;
	json_t *msg = envelope(id);
	if (!msg || json_object_set_new(msg, "error", steal_ptr(&e)) < 0) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *
proto_notification(const char *method, json_t *params)
{
	cleanup_json json_t *p = params;
	json_t *msg = json_object();

	if (!msg || json_object_set_new(msg, "jsonrpc", json_string("2.0")) < 0 ||
	    json_object_set_new(msg, "method", json_string(method)) < 0 ||
	    (p && json_object_set_new(msg, "params", steal_ptr(&p)) < 0)) {
		json_decref(msg);
		return NULL;
	}
	return msg;
}

json_t *
proto_tool_result(json_t *content, bool is_error, bool text)
{
	cleanup_json json_t *c = content;
	cleanup_json json_t *arr = NULL;
	json_t *res;

	if (!c)
		return NULL;
	arr = json_array();
	if (!arr)
		return NULL;
	if (text) {
		cleanup_free char *t = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!t || json_array_append_new(
			      arr, json_pack("{s:s,s:s}", "type", "text", "text", t)) < 0)
			return NULL;
	}
	res = json_object();
	if (!res || json_object_set_new(res, "content", steal_ptr(&arr)) < 0 ||
	    json_object_set_new(res, "structuredContent", steal_ptr(&c)) < 0 ||
	    json_object_set_new(res, "isError", json_boolean(is_error)) < 0) {
		json_decref(res);
		return NULL;
	}
	return res;
}

/* The string body jansson's compact encoder writes for s, into out, in one
 * pass and in at most two bytes for each byte of s: '"', '\\' and the
 * control characters with a short escape (\b \f \n \r \t) take two, the
 * rest is copied. NULL at any other control character, which it would
 * write as \u00XX: no JSON text holds one. */
static char *
escape_into(char *out, const char *s, size_t len)
{
	for (;;) {
		/* Copy the plain bytes before the next one to escape in a
		 * single move. */
		size_t run = agd_json_plain_len(s, len, false);
		memcpy(out, s, run);
		out += run;
		if (run == len)
			return out;
		char esc;
		switch (s[run]) {
		case '"':
			esc = '"';
			break;
		case '\\':
			esc = '\\';
			break;
		case '\b':
			esc = 'b';
			break;
		case '\f':
			esc = 'f';
			break;
		case '\n':
			esc = 'n';
			break;
		case '\r':
			esc = 'r';
			break;
		case '\t':
			esc = 't';
			break;
		default:
			return NULL;
		}
		*out++ = '\\';
		*out++ = esc;
		s += run + 1;
		len -= run + 1;
	}
}

int
proto_stored_result_frame(const json_t *id, const char *content, size_t len, bool is_error,
			  int64_t seq, bool replayed, bool text, char **ret, size_t *ret_len)
{
	cleanup_free char *id_txt = NULL;
	cleanup_free char *buf = NULL;
	char tail[160];
	int tl;
	size_t total;
	char *p;

	if (!content || len == 0 || len > (SIZE_MAX - 4096) / 3)
		return -EINVAL;
	id_txt = json_dumps(id ? id : json_null(), JSON_COMPACT | JSON_ENCODE_ANY);
	if (!id_txt)
		return -ENOMEM;
	/* Field order is that of proto_result(envelope) + proto_tool_result +
	 * the _meta the broker adds, so a replayed reply is byte for byte what
	 * encoding the parsed result would give. */
	tl = snprintf(tail, sizeof(tail), ",\"isError\":%s,\"_meta\":{\"agentd/seq\":%lld%s}}}\n",
		      is_error ? "true" : "false", (long long)seq,
		      replayed ? ",\"agentd/replayed\":true" : "");
	if (tl < 0 || (size_t)tl >= sizeof(tail))
		return -EOVERFLOW;
	/* Room for the text escaped at its longest (escape_into), so the
	 * content is scanned once. */
	total = strlen("{\"jsonrpc\":\"2.0\",\"id\":,\"result\":{\"content\":[{\"type\":\"text\","
		       "\"text\":\"\"}],\"structuredContent\":") +
		strlen(id_txt) + (text ? 2 * len : 0) + len + (size_t)tl;
	buf = malloc(total + 1);
	if (!buf)
		return -ENOMEM;
	p = buf;
	p += sprintf(p, "{\"jsonrpc\":\"2.0\",\"id\":%s,\"result\":{\"content\":[", id_txt);
	if (text) {
		p += sprintf(p, "{\"type\":\"text\",\"text\":\"");
		p = escape_into(p, content, len);
		if (!p)
			return -EINVAL;
		p += sprintf(p, "\"}");
	}
	p += sprintf(p, "],\"structuredContent\":");
	memcpy(p, content, len);
	p += len;
	memcpy(p, tail, (size_t)tl);
	p += tl;
	*p = '\0';
	*ret_len = (size_t)(p - buf);
	*ret = steal_ptr(&buf);
	return 0;
}

/* ---- writer ---- */

/* Wait until fd is writable or the deadline passes. Returns 0, -ETIMEDOUT or -errno. */
static int
wait_writable(int fd, int64_t deadline)
{
	for (;;) {
		int64_t left_ns = deadline - agd_now_ns();
		if (left_ns <= 0)
			return -ETIMEDOUT;
		struct pollfd pfd = {.fd = fd, .events = POLLOUT};
		int pr = poll(&pfd, 1, (int)((left_ns + 999999) / 1000000));
		if (pr < 0 && errno == EINTR)
			continue;
		if (pr < 0)
			return -errno;
		if (pr == 0)
			return -ETIMEDOUT;
		if (pfd.revents & POLLNVAL)
			return -EBADF;
		/* POLLERR/POLLHUP: let the next write report the precise error. */
		return 0;
	}
}

int
proto_send(int fd, const json_t *msg, int timeout_ms)
{
	cleanup_free char *text = json_dumps(msg, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	size_t len = strlen(text);
	/* Reuse the terminating NUL's slot for the newline. */
	text[len++] = '\n';
	return proto_send_frame(fd, text, len, timeout_ms);
}

int
proto_send_frame(int fd, const char *text, size_t len, int timeout_ms)
{
	int64_t deadline = agd_now_ns() + (int64_t)(timeout_ms < 0 ? 0 : timeout_ms) * 1000000;
	bool is_socket = true, blocking = false;
	size_t off = 0;
	int r;

	while (off < len) {
		ssize_t n;
		if (is_socket) {
			/* MSG_DONTWAIT: never block even if the fd is in blocking mode;
			 * MSG_NOSIGNAL: a dead peer is -EPIPE, not SIGPIPE. */
			n = send(fd, text + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
			if (n < 0 && errno == ENOTSOCK) {
				int fl = fcntl(fd, F_GETFL);
				if (fl < 0)
					return -errno;
				is_socket = false;
				blocking = !(fl & O_NONBLOCK);
				continue;
			}
		} else if (blocking) {
			/* A pipe that polls writable takes PIPE_BUF bytes without
			 * blocking; more could block past the deadline. */
			r = wait_writable(fd, deadline);
			if (r < 0)
				return r;
			size_t chunk = len - off < PIPE_BUF ? len - off : PIPE_BUF;
			n = write(fd, text + off, chunk);
		} else {
			n = write(fd, text + off, len - off);
		}
		if (n >= 0) {
			off += (size_t)n;
			continue;
		}
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		r = wait_writable(fd, deadline);
		if (r < 0)
			return r;
	}
	return 0;
}
