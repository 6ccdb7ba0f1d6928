/* Unit tests for sdk/c: the reply scanner of agentd_call against jansson.
 * The scanner may decline any frame (jansson then reads it), but a frame it
 * accepts must be one jansson accepts, with the same structuredContent text
 * the jansson path returns, the same seq and the same replay flag. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "sdk/c/agentd_client.c"
#include "plain_scan_cases.h"

/* supervisor/proto.c: the frame a live or replayed call is answered with. */
int proto_stored_result_frame(const json_t *id, const char *content, size_t len, bool is_error,
			      int64_t seq, bool replayed, bool text, char **ret, size_t *ret_len);

/* What agentd_call's jansson path makes of frame as the reply to id 1: true
 * with structuredContent's compact text when it is a plain result. */
static bool
jansson_reply(const char *frame, size_t len, char **ret_text, int64_t *ret_seq, bool *ret_replayed)
{
	json_t *msg = NULL;
	bool ok = false;

	if (parse_frame(frame, len, &msg) < 0)
		return false;
	json_t *result = json_object_get(msg, "result");
	json_t *sc = json_object_get(result, "structuredContent");
	json_t *meta = json_object_get(result, "_meta");
	if (!json_object_get(msg, "method") && !json_object_get(msg, "error") &&
	    json_is_integer(json_object_get(msg, "id")) &&
	    json_integer_value(json_object_get(msg, "id")) == 1 && json_is_object(result) && sc &&
	    !json_is_true(json_object_get(result, "isError"))) {
		*ret_text = json_dumps(sc, JSON_COMPACT | JSON_ENCODE_ANY);
		*ret_seq = json_integer_value(json_object_get(meta, "agentd/seq"));
		*ret_replayed = json_is_true(json_object_get(meta, "agentd/replayed"));
		ok = *ret_text != NULL;
	}
	json_decref(msg);
	return ok;
}

/* The invariant; returns whether the scanner accepted the frame. */
static bool
check_frame(const char *frame, size_t len)
{
	struct call_reply fast = {0};
	char *text = NULL;
	int64_t seq = 0;
	bool replayed = false;
	bool scanned = scan_call_reply(frame, len, 1, &fast);
	bool parsed = jansson_reply(frame, len, &text, &seq, &replayed);

	if (scanned) {
		if (!parsed)
			fail_msg("accepted a frame jansson refuses: %.*s", (int)len, frame);
		if (fast.len != strlen(text) || memcmp(fast.content, text, fast.len) != 0)
			fail_msg("text differs: %.*s vs %s", (int)fast.len, fast.content, text);
		assert_int_equal(fast.seq, seq);
		assert_int_equal(fast.replayed, replayed);
	}
	free(text);
	return scanned;
}

static const struct {
	const char *text;
	bool taken; /* by the scanner (else jansson reads the frame) */
} contents[] = {
    {"{\"value\":\"00000001\"}", true},
    {"{}", true},
    {"[]", true},
    {"null", true},
    {"42", true},
    {"-7", true},
    {"\"text\"", true},
    {"{\"a\":[1,2,{\"b\":null}],\"c\":true,\"d\":false,\"e\":\"\\n\\\"\\\\\"}", true},
    {"{\"path\":\"/srv/p\",\"t\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}", true},
    {"{\"c\":\"\\u0001\"}", false},
    {"{\"n\":1.5}", false},
    {"{\"n\":1e3}", false},
    {"{\"n\":-0}", false},
    {"{\"s\":\"a\\/b\"}", false},
    {"{\"s\":\"\\u00e9\"}", false},
    {"{\"big\":123456789012345678901234567890}", false},
    {"{\"k\":1,\"k\":2}", false},
    {"{\"x\": 1}", false},
    {"{\"deep\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     true},
    {"{\"deeper\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]"
     "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}",
     false},
};

/* Replies as the supervisor frames them: jansson's compact text of a value
 * is taken by the scanner, with its text, seq and replay flag; the rest is
 * left to jansson. */
static void
test_supervisor_frames(void **state)
{
	json_t *id = json_integer(1);

	for (size_t i = 0; i < sizeof(contents) / sizeof(contents[0]); i++) {
		/* With and without the text block ("agentd/text": false). */
		for (int k = 0; k < 4; k++) {
			const char *text = contents[i].text;
			char *frame = NULL;
			size_t len = 0;
			assert_int_equal(proto_stored_result_frame(id, text, strlen(text), false,
								   7 + i, k & 1, k < 2, &frame,
								   &len),
					 0);
			len--; /* the newline */
			if (check_frame(frame, len) != contents[i].taken)
				fail_msg("%s: %s", contents[i].taken ? "declined" : "taken", frame);
			free(frame);
		}
	}
	json_decref(id);
}

static const char *const frames[] = {
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"x\"}],"
    "\"structuredContent\":{\"v\":1},\"isError\":false,\"_meta\":{\"agentd/seq\":3}}}",
    "{ \"jsonrpc\" : \"2.0\" , \"id\" : 1 , \"result\" : { \"structuredContent\" : {\"v\":1} } }",
    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"structuredContent\":{ \"v\": 1 }}}",
    "{\"id\":1,\"result\":{\"_meta\":{\"agentd/replayed\":true,\"agentd/seq\":9,\"x\":[1]},"
    "\"structuredContent\":[\"a\"]}}",
    "{\"id\":2,\"result\":{\"structuredContent\":{}}}",
    "{\"id\":1,\"id\":1,\"result\":{\"structuredContent\":{}}}",
    "{\"id\":1,\"result\":{\"structuredContent\":{},\"structuredContent\":[]}}",
    "{\"id\":1,\"result\":{\"structuredContent\":{},\"content\":{\"a\":1,\"a\":2}}}",
    "{\"id\":1,\"result\":{\"structuredContent\":{},\"isError\":true}}",
    "{\"id\":1,\"error\":{\"code\":-32001,\"message\":\"denied\"}}",
    "{\"jsonrpc\":\"2.0\",\"method\":\"agentd/message\",\"params\":{}}",
    "{\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":\"{}\"}]}}",
    "{\"id\":1,\"result\":{\"structuredContent\":\"\xff\"}}",
    "{\"id\":1,\"result\":{\"structuredContent\":\"\xc0\xaf\"}}",
    "{\"id\":1,\"result\":{\"structuredContent\":\"\xed\xa0\x80\"}}",
    "{\"id\":1,\"result\":{\"structuredContent\":{}},\"x\":\"\\ud800\"}",
    "{\"id\":1,\"result\":{\"structuredContent\":{}},\"x\":\"\\u0000\"}",
    "{\"id\":1,\"result\":{\"structuredContent\":{}}} trailing",
    "{\"id\":1,\"result\":{\"structuredContent\":{}}",
    "{\"id\":01,\"result\":{\"structuredContent\":{}}}",
    "{\"id\":1.0,\"result\":{\"structuredContent\":{}}}",
    "{\"id\":1,\"result\":{\"structuredContent\":[1,]}}",
    "{\"id\":1,\"result\":{\"structuredContent\":{\"a\":1,}}}",
    "{\"id\":1,\"result\":{\"_meta\":{\"agentd/seq\":99999999999999999999},"
    "\"structuredContent\":{}}}",
};

/* Hand-written frames and byte-level mutations of them: whatever the
 * scanner accepts, jansson accepts with the same outcome. */
static void
test_mutations(void **state)
{
	static const char alphabet[] = "{}[]\",:\\ 0123456789-.eE+tfnulrsa\x80\xc3\xff\n";
	uint64_t rng = 0x2545f4914f6cdd1dull;
	char buf[512];
	size_t accepted = 0;

	for (size_t i = 0; i < sizeof(frames) / sizeof(frames[0]); i++)
		accepted += check_frame(frames[i], strlen(frames[i]));
	/* The first, second and fourth: compact structuredContent, id 1. */
	assert_int_equal(accepted, 3);
	for (int round = 0; round < 200000; round++) {
		const char *base = frames[round % (sizeof(frames) / sizeof(frames[0]))];
		size_t len = strlen(base);
		memcpy(buf, base, len);
		for (int m = 0; m < 1 + round % 3; m++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t at = (size_t)(rng >> 8) % (len + 1);
			char ch = alphabet[(rng >> 40) % (sizeof(alphabet) - 1)];
			switch ((rng >> 32) % 3) {
			case 0: /* replace */
				if (at < len)
					buf[at] = ch;
				break;
			case 1: /* insert */
				if (len + 1 < sizeof(buf)) {
					memmove(buf + at + 1, buf + at, len - at);
					buf[at] = ch;
					len++;
				}
				break;
			default: /* delete */
				if (at < len) {
					memmove(buf + at, buf + at + 1, len - at - 1);
					len--;
				}
			}
		}
		check_frame(buf, len);
	}
}

/* skip_plain stops where its definition does, a byte at a time, in
 * s[0, len), which has special byte c at position at (at == len: none). */
static void
same_skip(const unsigned char *s, size_t len, unsigned char c, size_t at)
{
	size_t want = 0;

	while (want < len && s[want] >= 0x20 && s[want] < 0x80 && s[want] != '"' && s[want] != '\\')
		want++;
	size_t got = (size_t)(skip_plain(s, s + len) - s);
	if (got != want)
		fail_msg("length %zu, 0x%02x at %zu: %zu, not %zu", len, c, at, got, want);
}

static void
test_skip_plain(void **state)
{
	(void)state;
	plain_scan_cases(same_skip);
}

static bool
args_ok(const char *text)
{
	size_t n;
	bool one_line;

	return scan_args(text, &n, &one_line);
}

/* Arguments: whatever the scanner takes, jansson takes as one object. */
static void
test_args(void **state)
{
	static const char *const texts[] = {
	    "{}",
	    " { \"a\" : [1, -2.5e10, true, null, \"\\u00e9\\n\"] } ",
	    "{\"p\":{\"q\":{}}}",
	    "{\"a\":1,\"a\":2}",
	    "[]",
	    "{\"a\":1} x",
	    "{\"s\":\"\\ud83d\\ude00\"}",
	    "{\"n\":12345678901234567890}",
	    "{\"t\":\"caf\xc3\xa9\"}",
	    "{\n\"a\" :\r\n\"b\\n\"}\n",
	};
	static const char alphabet[] = "{}[]\",:\\ 0123456789-.eE+tfnulrsa\x80\xc3\xff\t\n\r";
	uint64_t rng = 0x9e3779b97f4a7c15ull;
	char buf[256];
	size_t taken = 0;

	for (int round = 0; round < 200000; round++) {
		const char *base = texts[round % (sizeof(texts) / sizeof(texts[0]))];
		size_t len = strlen(base);
		memcpy(buf, base, len);
		for (int m = 0; round >= 100 && m < 1 + round % 3; m++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t at = (size_t)(rng >> 8) % (len + 1);
			if ((rng >> 32) % 2 && len + 1 < sizeof(buf)) {
				memmove(buf + at + 1, buf + at, len - at);
				buf[at] = alphabet[(rng >> 40) % (sizeof(alphabet) - 1)];
				len++;
			} else if (at < len) {
				buf[at] = alphabet[(rng >> 40) % (sizeof(alphabet) - 1)];
			}
		}
		buf[len] = '\0';
		if (strlen(buf) != len)
			continue;
		size_t n = 0;
		bool one_line = false;
		if (!scan_args(buf, &n, &one_line))
			continue;
		taken++;
		/* Its length, and on one line exactly when no raw CR or LF. */
		assert_int_equal(n, len);
		assert_int_equal(one_line, !strpbrk(buf, "\r\n"));
		json_t *v = json_loads(buf, JSON_REJECT_DUPLICATES, NULL);
		if (!json_is_object(v))
			fail_msg("scanner took arguments jansson refuses: %s", buf);
		json_decref(v);
	}
	assert_true(taken > 1000);
	assert_true(args_ok("{}") && args_ok(" { \"a\" : [1, -2.5e10, true, null] } "));
	assert_false(args_ok("{\"a\":1,\"a\":2}") || args_ok("[]") || args_ok("{} x"));
}

/* End to end over a socket: a message before the reply is queued, the
 * reply is answered from the scanned text. */
static void
test_call_over_socket(void **state)
{
	int sv[2];
	struct agentd_client *c = NULL;
	struct agentd_error err = {0};
	char *out = NULL, *msg = NULL;
	static const char script[] =
	    "{\"jsonrpc\":\"2.0\",\"method\":\"agentd/message\",\"params\":{\"text\":\"hi\"}}\n"
	    "\n"
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[{\"type\":\"text\",\"text\":"
	    "\"{\\\"v\\\":\\\"\xc3\xa9\\\"}\"}],\"structuredContent\":{\"v\":\"\xc3\xa9\"},"
	    "\"isError\":false,\"_meta\":{\"agentd/seq\":5,\"agentd/replayed\":true}}}\n"
	    "{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"structuredContent\": {\"w\": 2}}}\n";

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	assert_int_equal(write(sv[1], script, sizeof(script) - 1), (ssize_t)sizeof(script) - 1);
	assert_int_equal(agentd_connect_fd(sv[0], &c), 0);
	assert_int_equal(agentd_call(c, "agentd.echo", "{\"v\":\"\xc3\xa9\"}", &out, &err), 0);
	assert_string_equal(out, "{\"v\":\"\xc3\xa9\"}");
	assert_true(agentd_last_replayed(c));
	assert_int_equal(agentd_last_seq(c), 5);
	free(out);
	/* Not compact: the jansson path, the same answer as before. */
	assert_int_equal(agentd_call(c, "agentd.echo", "{}", &out, &err), 0);
	assert_string_equal(out, "{\"w\":2}");
	assert_false(agentd_last_replayed(c));
	free(out);
	assert_int_equal(agentd_next_message(c, &msg), 1);
	assert_string_equal(msg, "{\"text\":\"hi\"}");
	free(msg);
	/* Arguments that are not one object are refused before anything is sent;
	 * a text on one line goes out as it is, one on several lines is encoded. */
	assert_int_equal(agentd_call(c, "agentd.echo", "[1]", &out, &err), -EINVAL);
	assert_int_equal(agentd_call(c, "agentd.echo", "{\"a\":1,\"a\":2}", &out, &err), -EINVAL);
	static const char third[] = "{\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{}}\n";
	assert_int_equal(write(sv[1], third, sizeof(third) - 1), (ssize_t)sizeof(third) - 1);
	assert_int_equal(agentd_call(c, "agentd.echo", "{\"b\":\n 1}", &out, &err), 0);
	assert_string_equal(out, "{\"text\":\"\"}"); /* a bare result without text */
	free(out);
	/* A reply without the text block, as the call asked ("agentd/text": false). */
	static const char fourth[] =
	    "{\"jsonrpc\":\"2.0\",\"id\":4,\"result\":{\"content\":[],\"structuredContent\":"
	    "{\"x\":[1]},\"isError\":false,\"_meta\":{\"agentd/seq\":6}}}\n";
	assert_int_equal(write(sv[1], fourth, sizeof(fourth) - 1), (ssize_t)sizeof(fourth) - 1);
	assert_int_equal(agentd_call(c, "agentd.echo", "{\"x\":[1]}", &out, &err), 0);
	assert_string_equal(out, "{\"x\":[1]}");
	assert_int_equal(agentd_last_seq(c), 6);
	free(out);
	char sent[1024];
	ssize_t n = read(sv[1], sent, sizeof(sent) - 1);
	assert_true(n > 0);
	sent[n] = '\0';
	assert_string_equal(
	    sent,
	    "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/call\",\"params\":{\"name\":"
	    "\"agentd.echo\",\"arguments\":{\"v\":\"\xc3\xa9\"},\"_meta\":{\"agentd/text\":"
	    "false}}}\n"
	    "{\"jsonrpc\":\"2.0\",\"id\":2,\"method\":\"tools/call\",\"params\":{\"name\":"
	    "\"agentd.echo\",\"arguments\":{},\"_meta\":{\"agentd/text\":false}}}\n"
	    "{\"jsonrpc\":\"2.0\",\"id\":3,\"method\":\"tools/call\",\"params\":{\"name\":"
	    "\"agentd.echo\",\"arguments\":{\"b\":1},\"_meta\":{\"agentd/text\":false}}}\n"
	    "{\"jsonrpc\":\"2.0\",\"id\":4,\"method\":\"tools/call\",\"params\":{\"name\":"
	    "\"agentd.echo\",\"arguments\":{\"x\":[1]},\"_meta\":{\"agentd/text\":false}}}\n");
	agentd_client_free(c);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_supervisor_frames),
	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_args),
	    cmocka_unit_test(test_call_over_socket),
	    cmocka_unit_test(test_skip_plain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
