/* Unit tests for supervisor/proto: framing, strict parsing, builders, bounded send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/proto.h"

/* Take the next frame as a NUL-terminated copy (or NULL if none); r is the
 * proto_reader_next return value. */
static char *
next_frame(struct proto_reader *r, int *ret)
{
	const char *f;
	size_t n;
	*ret = proto_reader_next(r, &f, &n);
	if (*ret != 1)
		return NULL;
	return strndup(f, n);
}

static void
test_reader_split_and_pipelined(void **state)
{
	struct proto_reader r;
	int fds[2], rc;

	assert_int_equal(proto_reader_init(&r, 1024), 0);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	assert_int_equal(fcntl(fds[0], F_SETFL, O_NONBLOCK), 0);

	/* Nothing yet: -EAGAIN. */
	assert_int_equal(proto_reader_fill(&r, fds[0]), -EAGAIN);

	/* One frame split across two reads. */
	assert_int_equal(write(fds[1], "{\"a\":", 5), 5);
	assert_int_equal(proto_reader_fill(&r, fds[0]), 5);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, 0);
	assert_true(proto_reader_partial(&r));
	assert_int_equal(write(fds[1], "1}\n{\"b\":2}\r\n\n{\"c\"", 18), 18);
	assert_int_equal(proto_reader_fill(&r, fds[0]), 18);
	char *f = next_frame(&r, &rc);
	assert_string_equal(f, "{\"a\":1}");
	free(f);
	/* Several frames in one read; CRLF stripped; empty line is an empty frame. */
	f = next_frame(&r, &rc);
	assert_string_equal(f, "{\"b\":2}");
	free(f);
	f = next_frame(&r, &rc);
	assert_string_equal(f, "");
	free(f);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, 0);
	/* EOF in the middle of a frame is visible. */
	assert_true(proto_reader_partial(&r));
	close(fds[1]);
	assert_int_equal(proto_reader_fill(&r, fds[0]), 0);
	assert_true(proto_reader_partial(&r));
	close(fds[0]);
	proto_reader_free(&r);
}

static void
test_reader_overlong_discarded(void **state)
{
	struct proto_reader r;
	int rc;
	char big[300];

	assert_int_equal(proto_reader_init(&r, 100), 0);
	memset(big, 'x', sizeof(big));
	/* Over-long frame terminated within the same feed: -E2BIG once, then the next. */
	assert_int_equal(proto_reader_feed(&r, big, 150), 150);
	assert_int_equal(proto_reader_feed(&r, "\n{\"ok\":1}\n", 10), 10);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, -E2BIG);
	char *f = next_frame(&r, &rc);
	assert_string_equal(f, "{\"ok\":1}");
	free(f);
	assert_false(proto_reader_partial(&r));

	/* Over-long frame arriving in pieces: reported once, nothing kept. */
	assert_int_equal(proto_reader_feed(&r, big, sizeof(big)), sizeof(big));
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, -E2BIG);
	assert_true(r.len - r.consumed == 0);
	assert_true(proto_reader_partial(&r));
	for (int i = 0; i < 5; i++) {
		assert_int_equal(proto_reader_feed(&r, big, sizeof(big)), sizeof(big));
		assert_null(next_frame(&r, &rc));
		assert_int_equal(rc, 0);
		assert_true(r.cap <= 100 + (64u << 10));
	}
	assert_int_equal(proto_reader_feed(&r, "tail\n{\"n\":2}\n", 13), 13);
	f = next_frame(&r, &rc);
	assert_string_equal(f, "{\"n\":2}");
	free(f);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, 0);

	/* Exactly max bytes is fine, also with CRLF. */
	assert_int_equal(proto_reader_feed(&r, big, 100), 100);
	assert_int_equal(proto_reader_feed(&r, "\r\n", 2), 2);
	f = next_frame(&r, &rc);
	assert_int_equal(rc, 1);
	assert_int_equal(strlen(f), 100);
	free(f);
	/* max+1 bytes is too long. */
	assert_int_equal(proto_reader_feed(&r, big, 101), 101);
	assert_int_equal(proto_reader_feed(&r, "\n", 1), 1);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, -E2BIG);
	assert_null(next_frame(&r, &rc));
	assert_int_equal(rc, 0);
	proto_reader_free(&r);
}

static void
test_reader_many_small_frames(void **state)
{
	struct proto_reader r;
	int rc, count = 0;
	char chunk[4096];

	assert_int_equal(proto_reader_init(&r, 64), 0);
	for (size_t i = 0; i + 3 <= sizeof(chunk); i += 3)
		memcpy(chunk + i, "{}\n", 3);
	for (int round = 0; round < 50; round++) {
		size_t off = 0, want = sizeof(chunk) / 3 * 3;
		while (off < want) {
			size_t n = proto_reader_feed(&r, chunk + off, want - off);
			off += n;
			const char *f;
			size_t fl;
			while ((rc = proto_reader_next(&r, &f, &fl)) == 1) {
				assert_int_equal(fl, 2);
				assert_memory_equal(f, "{}", 2);
				count++;
			}
			assert_int_equal(rc, 0);
		}
	}
	assert_int_equal(count, 50 * (int)(sizeof(chunk) / 3));
	assert_false(proto_reader_partial(&r));
	proto_reader_free(&r);
	assert_int_equal(proto_reader_init(&r, 0), -EINVAL);
}

/* Parse a string; returns the code and fills *m (on success) and *id. */
static int
parse(const char *s, struct proto_msg *m, json_t **id)
{
	char err[256];
	struct proto_msg tmp = {0};
	int r = proto_parse(s, strlen(s), &tmp, id, err, sizeof(err));
	if (r == 0)
		*m = tmp;
	else {
		assert_true(err[0] != '\0');
		/* Error texts are always safe to put in a reply. */
		json_t *js = json_string(err);
		assert_non_null(js);
		json_decref(js);
	}
	return r;
}

static void
test_parse_valid(void **state)
{
	struct proto_msg m = {0};
	json_t *id = NULL;

	assert_int_equal(
	    parse("{\"jsonrpc\":\"2.0\",\"id\":7,\"method\":\"tools/list\",\"params\":{}}", &m,
		  &id),
	    0);
	assert_int_equal(m.kind, PROTO_REQUEST);
	assert_string_equal(m.method, "tools/list");
	assert_int_equal(json_integer_value(m.id), 7);
	assert_true(json_is_object(m.params));
	json_decref(id);
	proto_msg_clear(&m);

	assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":\"a-1\",\"method\":\"ping\"}", &m, &id),
			 0);
	assert_int_equal(m.kind, PROTO_REQUEST);
	assert_string_equal(json_string_value(m.id), "a-1");
	assert_null(m.params);
	json_decref(id);
	proto_msg_clear(&m);

	assert_int_equal(
	    parse("{\"method\":\"notifications/initialized\",\"jsonrpc\":\"2.0\",\"params\":[]}",
		  &m, &id),
	    0);
	assert_int_equal(m.kind, PROTO_NOTIFICATION);
	assert_null(m.id);
	assert_null(id);
	assert_true(json_is_array(m.params));
	proto_msg_clear(&m);

	assert_int_equal(parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}", &m, &id), 0);
	assert_int_equal(m.kind, PROTO_RESPONSE);
	assert_null(m.method);
	json_decref(id);
	proto_msg_clear(&m);

	assert_int_equal(
	    parse("{\"jsonrpc\":\"2.0\",\"id\":3,\"error\":{\"code\":-1,\"message\":\"x\"}}", &m,
		  &id),
	    0);
	assert_int_equal(m.kind, PROTO_RESPONSE);
	json_decref(id);
	proto_msg_clear(&m);
}

static void
expect_invalid(const char *s, int code, json_t *want_id)
{
	struct proto_msg m = {0};
	json_t *id = NULL;
	int r = parse(s, &m, &id);
	if (r != code)
		fail_msg("%s: got %d want %d", s, r, code);
	assert_null(m.root);
	if (want_id) {
		assert_non_null(id);
		assert_true(json_equal(id, want_id));
	} else {
		assert_null(id);
	}
	json_decref(id);
	json_decref(want_id);
}

static void
test_parse_invalid(void **state)
{
	expect_invalid("", PROTO_PARSE_ERROR, NULL);
	expect_invalid("{", PROTO_PARSE_ERROR, NULL);
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\"} x", PROTO_PARSE_ERROR,
		       NULL);
	/* duplicate keys */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"id\":2,\"method\":\"a\"}",
		       PROTO_PARSE_ERROR, NULL);
	/* invalid UTF-8 */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"\xff\xfe\"}", PROTO_PARSE_ERROR,
		       NULL);
	/* NUL escape */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"a\\u0000b\"}", PROTO_PARSE_ERROR,
		       NULL);
	/* not an object */
	expect_invalid("[1,2]", PROTO_INVALID_REQUEST, NULL);
	expect_invalid("42", PROTO_INVALID_REQUEST, NULL);
	expect_invalid("\"str\"", PROTO_INVALID_REQUEST, NULL);
	expect_invalid("null", PROTO_INVALID_REQUEST, NULL);
	/* version */
	expect_invalid("{\"id\":1,\"method\":\"a\"}", PROTO_INVALID_REQUEST, json_integer(1));
	expect_invalid("{\"jsonrpc\":\"1.0\",\"id\":1,\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       json_integer(1));
	expect_invalid("{\"jsonrpc\":2,\"id\":\"q\",\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       json_string("q"));
	/* id types */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":null,\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       NULL);
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1.5,\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       NULL);
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":1.0,\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       NULL);
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":[1],\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       NULL);
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":true,\"method\":\"a\"}", PROTO_INVALID_REQUEST,
		       NULL);
	/* member types */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":1}", PROTO_INVALID_REQUEST,
		       json_integer(5));
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"a\",\"params\":\"x\"}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"a\",\"params\":null}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	/* unknown member */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"a\",\"extra\":1}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	/* request with result */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"method\":\"a\",\"result\":1}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	/* responses: result xor error, error shape, id required */
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5}", PROTO_INVALID_REQUEST, json_integer(5));
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":1,\"error\":{\"code\":1,"
		       "\"message\":\"m\"}}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	expect_invalid("{\"jsonrpc\":\"2.0\",\"result\":1}", PROTO_INVALID_REQUEST, NULL);
	expect_invalid(
	    "{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":\"x\",\"message\":\"m\"}}",
	    PROTO_INVALID_REQUEST, json_integer(5));
	expect_invalid("{\"jsonrpc\":\"2.0\",\"id\":5,\"error\":{\"code\":1,\"message\":\"m\","
		       "\"z\":1}}",
		       PROTO_INVALID_REQUEST, json_integer(5));
	/* integer too large for an id is a parse error (jansson refuses it) */
	expect_invalid(
	    "{\"jsonrpc\":\"2.0\",\"id\":123456789012345678901234567890,\"method\":\"a\"}",
	    PROTO_PARSE_ERROR, NULL);
}

static void
test_parse_deep_nesting(void **state)
{
	char buf[512];
	struct proto_msg m = {0};
	json_t *id = NULL;
	/* Depth 64 in total (the envelope plus 63 arrays) is accepted. */
	size_t n = (size_t)snprintf(buf, sizeof(buf),
				    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
				    "\"a\",\"params\":");
	for (int i = 0; i < 63; i++)
		buf[n++] = '[';
	for (int i = 0; i < 63; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	buf[n] = '\0';
	assert_int_equal(parse(buf, &m, &id), 0);
	json_decref(id);
	proto_msg_clear(&m);

	/* One more level is refused as a parse error. */
	n = (size_t)snprintf(buf, sizeof(buf),
			     "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":"
			     "\"a\",\"params\":");
	for (int i = 0; i < 64; i++)
		buf[n++] = '[';
	for (int i = 0; i < 64; i++)
		buf[n++] = ']';
	buf[n++] = '}';
	buf[n] = '\0';
	expect_invalid(buf, PROTO_PARSE_ERROR, NULL);

	/* Hostile depth far beyond the limit costs no recursion. */
	static char deep[200000];
	memset(deep, '[', sizeof(deep) - 1);
	deep[sizeof(deep) - 1] = '\0';
	expect_invalid(deep, PROTO_PARSE_ERROR, NULL);
}

static void
expect_dump(json_t *msg, const char *want)
{
	assert_non_null(msg);
	char *s = json_dumps(msg, JSON_COMPACT);
	assert_string_equal(s, want);
	free(s);
	json_decref(msg);
}

static void
test_builders(void **state)
{
	json_t *id = json_integer(9);
	json_t *sid = json_string("x");

	expect_dump(proto_result(id, json_pack("{s:i}", "seq", 3)),
		    "{\"jsonrpc\":\"2.0\",\"id\":9,\"result\":{\"seq\":3}}");
	expect_dump(proto_result(sid, json_object()),
		    "{\"jsonrpc\":\"2.0\",\"id\":\"x\",\"result\":{}}");
	expect_dump(proto_error(NULL, PROTO_FRAME_TOO_LARGE, "frame too large", NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32006,\"message\":"
		    "\"frame too large\"}}");
	expect_dump(
	    proto_error(id, PROTO_DENIED, "denied",
			json_pack("{s:s,s:n,s:s}", "decision", "deny", "rule", "reason",
				  "no rule matched")),
	    "{\"jsonrpc\":\"2.0\",\"id\":9,\"error\":{\"code\":-32001,\"message\":\"denied\","
	    "\"data\":{\"decision\":\"deny\",\"rule\":null,\"reason\":\"no rule matched\"}}}");
	expect_dump(
	    proto_notification("agentd/message",
			       json_pack("{s:s,s:s}", "text", "hi", "mode", "queue")),
	    "{\"jsonrpc\":\"2.0\",\"method\":\"agentd/message\",\"params\":{\"text\":\"hi\","
	    "\"mode\":\"queue\"}}");
	expect_dump(proto_notification("ping", NULL), "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}");
	expect_dump(
	    proto_tool_result(json_pack("{s:s,s:i}", "path", "/a", "bytes", 2), false, true),
	    "{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"path\\\":\\\"/a\\\",\\\"bytes\\\":"
	    "2}\"}],\"structuredContent\":{\"path\":\"/a\",\"bytes\":2},\"isError\":false}");
	/* "agentd/text": false: no text block, the same structuredContent. */
	expect_dump(
	    proto_tool_result(json_pack("{s:s,s:i}", "path", "/a", "bytes", 2), false, false),
	    "{\"content\":[],\"structuredContent\":{\"path\":\"/a\",\"bytes\":2},"
	    "\"isError\":false}");
	expect_dump(
	    proto_tool_result(
		json_pack("{s:{s:s,s:s}}", "error", "code", "ENOENT", "message", "no such file"),
		true, false),
	    "{\"content\":[],\"structuredContent\":{\"error\":{\"code\":\"ENOENT\",\"message\":"
	    "\"no such file\"}},\"isError\":true}");
	expect_dump(
	    proto_tool_result(
		json_pack("{s:{s:s,s:s}}", "error", "code", "ENOENT", "message", "no such file"),
		true, true),
	    "{\"content\":[{\"type\":\"text\",\"text\":\"{\\\"error\\\":{\\\"code\\\":"
	    "\\\"ENOENT\\\",\\\"message\\\":\\\"no such file\\\"}}\"}],\"structuredContent\":"
	    "{\"error\":{\"code\":\"ENOENT\",\"message\":\"no such file\"}},\"isError\":true}");
	/* A message that is not UTF-8 is sanitised, never dropped. */
	expect_dump(proto_error(NULL, PROTO_PARSE_ERROR, "near '\xc3'", NULL),
		    "{\"jsonrpc\":\"2.0\",\"id\":null,\"error\":{\"code\":-32700,\"message\":"
		    "\"near '?'\"}}");
	/* The id is copied, not shared. */
	json_t *res = proto_result(id, json_object());
	json_integer_set(id, 10);
	assert_int_equal(json_integer_value(json_object_get(res, "id")), 9);
	json_decref(res);
	json_decref(id);
	json_decref(sid);
}

/* The replay path frames a stored canonical text directly; it must give the
 * bytes the json path gives for every kind of content: escapes, control
 * characters, non-ASCII, DEL, scalars, string and null ids. */
static void
test_stored_result_frame(void **state)
{
	static const char *const contents[] = {
	    "{\"a\":\"x\\\"y\\\\z\\n\\t\\u0001\\u001f\\b\\f\\r/\",\"b\":[1,2.5,null,true]}",
	    "{\"u\":\"h\u00e9llo \u2028 \u20ac\",\"del\":\"\x7f\",\"e\":{}}",
	    "null",
	    "\"just a string\\n\"",
	    "[]",
	    "{\"nested\":{\"k\":[{\"x\":\"\\\"\\\"\"}]},\"n\":-12345678901234}",
	};
	json_t *ids[] = {json_integer(7), json_string("req-\"1\""), json_null(), NULL};
	(void)state;

	for (size_t i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
		json_t *v = json_loads(contents[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		/* The journal stores the canonical text. */
		cleanup_free char *canon =
		    json_dumps(v, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
		/* ... and the json path answered from the value parsed back. */
		json_decref(v);
		v = json_loads(canon, JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++) {
			for (int err = 0; err < 4; err++) {
				bool text = err < 2;
				json_t *res = proto_tool_result(json_deep_copy(v), err & 1, text);
				json_t *meta = json_pack("{s:I,s:b}", "agentd/seq", (json_int_t)42,
							 "agentd/replayed", 1);
				json_object_set_new(res, "_meta", meta);
				json_t *msg = proto_result(ids[k], res);
				cleanup_free char *want = json_dumps(msg, JSON_COMPACT);
				json_decref(msg);
				char *got = NULL;
				size_t len = 0;
				assert_int_equal(
				    proto_stored_result_frame(ids[k], canon, strlen(canon), err & 1,
							      42, true, text, &got, &len),
				    0);
				assert_int_equal(len, strlen(want) + 1);
				assert_int_equal(got[len - 1], '\n');
				got[len - 1] = '\0';
				assert_string_equal(got, want);
				free(got);
			}
		}
		json_decref(v);
	}
	for (size_t k = 0; k < sizeof(ids) / sizeof(ids[0]); k++)
		json_decref(ids[k]);
	char *got = NULL;
	size_t len = 0;
	assert_int_equal(proto_stored_result_frame(NULL, "", 0, false, 1, true, true, &got, &len),
			 -EINVAL);
	assert_null(got);
	assert_int_equal(proto_stored_result_frame(NULL, "", 0, false, 1, true, false, &got, &len),
			 -EINVAL);
	assert_null(got);
	/* A control character no JSON text holds (it would need \u00XX). */
	assert_int_equal(
	    proto_stored_result_frame(NULL, "[\"a\x01\"]", 6, false, 1, true, true, &got, &len),
	    -EINVAL);
	assert_null(got);
}

/* The exact bytes of a stored result's frame with and without the text
 * block ("_meta": {"agentd/text": false} in the call). */
static void
test_stored_result_frame_bytes(void **state)
{
	static const char content[] = "{\"s\":\"a\\\"b\\n\"}";
	json_t *id = json_integer(3);
	char *got = NULL;
	size_t len = 0;
	(void)state;

	assert_int_equal(proto_stored_result_frame(id, content, strlen(content), false, 5, false,
						   true, &got, &len),
			 0);
	assert_string_equal(got, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[{\"type\":"
				 "\"text\",\"text\":\"{\\\"s\\\":\\\"a\\\\\\\"b\\\\n\\\"}\"}],"
				 "\"structuredContent\":{\"s\":\"a\\\"b\\n\"},\"isError\":false,"
				 "\"_meta\":{\"agentd/seq\":5}}}\n");
	assert_int_equal(len, strlen(got));
	free(got);
	assert_int_equal(proto_stored_result_frame(id, content, strlen(content), true, 5, true,
						   false, &got, &len),
			 0);
	assert_string_equal(got, "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"content\":[],"
				 "\"structuredContent\":{\"s\":\"a\\\"b\\n\"},\"isError\":true,"
				 "\"_meta\":{\"agentd/seq\":5,\"agentd/replayed\":true}}}\n");
	assert_int_equal(len, strlen(got));
	free(got);
	json_decref(id);
}

static void
test_send_roundtrip_and_timeout(void **state)
{
	int fds[2];
	char buf[256];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
	json_t *msg = proto_result(NULL, json_pack("{s:s}", "t", "a\nb"));
	assert_int_equal(proto_send(fds[0], msg, 1000), 0);
	json_decref(msg);
	ssize_t n = read(fds[1], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	buf[n] = '\0';
	/* One line, newline-terminated; the embedded newline is escaped. */
	assert_string_equal(buf,
			    "{\"jsonrpc\":\"2.0\",\"id\":null,\"result\":{\"t\":\"a\\nb\"}}\n");

	/* A peer that never reads: the fd stays blocking, the send must still time out. */
	int sz = 4096;
	setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
	cleanup_free char *big = malloc(1 << 20);
	memset(big, 'a', 1 << 20);
	big[(1 << 20) - 1] = '\0';
	msg = proto_result(NULL, json_string(big));
	int64_t t0 = agd_now_ns();
	assert_int_equal(proto_send(fds[0], msg, 200), -ETIMEDOUT);
	int64_t ms = (agd_now_ns() - t0) / 1000000;
	assert_true(ms >= 150 && ms < 2000);

	/* A closed peer is -EPIPE without SIGPIPE killing us. */
	close(fds[1]);
	assert_int_equal(proto_send(fds[0], msg, 200), -EPIPE);
	close(fds[0]);

	/* A blocking pipe (not a socket) that nobody reads also times out. */
	int pp[2];
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	t0 = agd_now_ns();
	assert_int_equal(proto_send(pp[1], msg, 200), -ETIMEDOUT);
	ms = (agd_now_ns() - t0) / 1000000;
	assert_true(ms >= 150 && ms < 2000);
	close(pp[0]);
	close(pp[1]);
	json_decref(msg);
	assert_int_equal(pipe2(pp, O_CLOEXEC), 0);
	msg = proto_notification("ping", NULL);
	assert_int_equal(proto_send(pp[1], msg, 200), 0);
	json_decref(msg);
	n = read(pp[0], buf, sizeof(buf) - 1);
	const char *want = "{\"jsonrpc\":\"2.0\",\"method\":\"ping\"}\n";
	assert_int_equal(n, strlen(want));
	assert_memory_equal(buf, want, strlen(want));
	close(pp[0]);
	close(pp[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reader_split_and_pipelined),
	    cmocka_unit_test(test_reader_overlong_discarded),
	    cmocka_unit_test(test_reader_many_small_frames),
	    cmocka_unit_test(test_parse_valid),
	    cmocka_unit_test(test_parse_invalid),
	    cmocka_unit_test(test_parse_deep_nesting),
	    cmocka_unit_test(test_builders),
	    cmocka_unit_test(test_stored_result_frame),
	    cmocka_unit_test(test_stored_result_frame_bytes),
	    cmocka_unit_test(test_send_roundtrip_and_timeout),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
