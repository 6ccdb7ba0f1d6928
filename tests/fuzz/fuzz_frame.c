/* libFuzzer target for the agent channel: bytes from a hostile child go through
 * the framing reader (split at a data-derived point, with a data-derived frame
 * limit) and every frame through proto_parse, answered as the supervisor would.
 * Invariants checked: the reader never holds more than max + 64 KiB, a reply is
 * always one line, and a parsed message has the shape its kind promises. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "supervisor/proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_reply(json_t *reply)
{
	if (!reply)
		abort();
	char *s = json_dumps(reply, JSON_COMPACT);
	if (!s || strchr(s, '\n'))
		abort();
	free(s);
	json_decref(reply);
}

static void
handle_frame(const char *frame, size_t len)
{
	struct proto_msg m = {0};
	json_t *id = NULL;
	char err[256] = "";
	int r = proto_parse(frame, len, &m, &id, err, sizeof(err));

	if (r < 0) {
		if (m.root || !err[0])
			abort();
		if (id && !json_is_string(id) && !json_is_integer(id))
			abort();
		check_reply(proto_error(id, r, err, NULL));
		json_decref(id);
		return;
	}
	if (r != 0 || !json_is_object(m.root))
		abort();
	switch (m.kind) {
	case PROTO_REQUEST:
		if (!m.method || !m.id || (!json_is_string(m.id) && !json_is_integer(m.id)))
			abort();
		check_reply(
		    proto_result(m.id, proto_tool_result(json_deep_copy(m.root), false, true)));
		break;
	case PROTO_NOTIFICATION:
		if (!m.method || m.id)
			abort();
		break;
	case PROTO_RESPONSE:
		if (m.method || !m.id)
			abort();
		break;
	}
	if (m.params && !json_is_object(m.params) && !json_is_array(m.params))
		abort();
	json_decref(id);
	proto_msg_clear(&m);
}

static void
drain(struct proto_reader *r)
{
	const char *f;
	size_t n;
	int rc;

	while ((rc = proto_reader_next(r, &f, &n)) != 0) {
		if (rc == -E2BIG) {
			check_reply(
			    proto_error(NULL, PROTO_FRAME_TOO_LARGE, "frame too large", NULL));
			continue;
		}
		if (rc != 1 || n > r->max || memchr(f, '\n', n))
			abort();
		handle_frame(f, n);
	}
	if (r->cap > r->max + (64u << 10))
		abort();
}

static void
feed_all(struct proto_reader *r, const uint8_t *p, size_t len)
{
	while (len > 0) {
		size_t n = proto_reader_feed(r, p, len);
		p += n;
		len -= n;
		drain(r);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct proto_reader r;

	if (size < 2)
		return 0;
	/* Byte 0 picks a small or the default frame limit, byte 1 the split point. */
	size_t max = (data[0] & 1) ? 64u + data[0] : PROTO_MAX_FRAME_DEFAULT;
	const uint8_t *p = data + 2;
	size_t len = size - 2;
	size_t split = len ? (size_t)data[1] * len / 255 : 0;

	if (proto_reader_init(&r, max) < 0)
		abort();
	feed_all(&r, p, split);
	feed_all(&r, p + split, len - split);
	(void)proto_reader_partial(&r);
	proto_reader_free(&r);
	return 0;
}
