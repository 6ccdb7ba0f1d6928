/* The agent channel: newline-delimited JSON-RPC 2.0 (MCP stdio framing).
 * Framing and parsing only; no policy, no I/O beyond the fd given.
 * Full specification: docs/protocol.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define PROTO_MAX_FRAME_DEFAULT (4u << 20)

/* JSON-RPC 2.0 standard codes */
#define PROTO_PARSE_ERROR      (-32700)
#define PROTO_INVALID_REQUEST  (-32600)
#define PROTO_METHOD_NOT_FOUND (-32601)
#define PROTO_INVALID_PARAMS   (-32602)
#define PROTO_INTERNAL_ERROR   (-32603)
/* agentd codes (data carries details; see docs/protocol.md) */
#define PROTO_DENIED	      (-32001) /* policy or a human refused the call */
#define PROTO_DIVERGED	      (-32002) /* replayed call does not match the journal */
#define PROTO_INTERRUPTED     (-32003) /* the user interrupted the pending call */
#define PROTO_UNKNOWN_OUTCOME (-32004) /* crash left an effect's outcome unknown */
#define PROTO_LIMIT	      (-32005) /* a budget or rate limit was reached */
#define PROTO_FRAME_TOO_LARGE (-32006) /* a frame exceeded the maximum size */

/* Incremental newline framing with a hard size limit. */
struct proto_reader {
	char *buf;
	size_t len; /* bytes buffered */
	size_t cap;
	size_t max;	 /* maximum frame size, excluding the newline */
	size_t scan;	 /* bytes of buf already searched for '\n' */
	size_t consumed; /* bytes of buf handed out by the last proto_reader_next */
	bool discarding; /* inside an over-long frame: drop until the next newline */
};

int proto_reader_init(struct proto_reader *r, size_t max_frame);
void proto_reader_free(struct proto_reader *r);
/* One read(2) from fd into the buffer (at most 64 KiB). Returns bytes read,
 * 0 on EOF, -EAGAIN when nothing is available, or another -errno. */
ssize_t proto_reader_fill(struct proto_reader *r, int fd);
/* Take the next complete frame. Returns 1 with *ret_frame and *ret_len pointing into
 * the reader (valid until the next call; not NUL-terminated; newline and a
 * trailing '\r' stripped), 0 if no complete frame is buffered, or -E2BIG once
 * per over-long frame (which is discarded up to its newline). */
int proto_reader_next(struct proto_reader *r, const char **ret_frame, size_t *ret_len);
/* Append up to len bytes from memory instead of reading an fd (tests, fuzzing).
 * Accepts at most 64 KiB and at most the free space per call, like
 * proto_reader_fill; returns the number of bytes taken (0 when the buffer is full
 * and proto_reader_next must be called first). */
size_t proto_reader_feed(struct proto_reader *r, const void *data, size_t len);
/* True if bytes of an unterminated frame are buffered (used to report EOF mid-frame). */
bool proto_reader_partial(const struct proto_reader *r);

enum proto_kind {
	PROTO_REQUEST,	    /* has method and id */
	PROTO_NOTIFICATION, /* has method, no id */
	PROTO_RESPONSE,	    /* has id and result or error (agent answering us) */
};

struct proto_msg {
	enum proto_kind kind;
	json_t *root;	    /* owned: the whole message */
	json_t *id;	    /* borrowed from root: string or integer; NULL for notifications */
	const char *method; /* borrowed; NULL for responses */
	json_t *params;	    /* borrowed: object or array, or NULL if absent */
};

/* Parse one frame strictly (agd_json_parse: duplicate keys, invalid UTF-8, depth).
 * Returns 0 and fills *ret, or a JSON-RPC error code (negative) with a message in
 * err; *ret_id then holds the request id if one could be recovered (new
 * reference, or NULL) so the error can be addressed to it. */
int proto_parse(const char *frame, size_t len, struct proto_msg *ret, json_t **ret_id, char *err,
		size_t errsz);
void proto_msg_clear(struct proto_msg *m);

/* Build responses. proto_result steals `result`; proto_error steals `data` (may be NULL).
 * `id` is borrowed (json null when NULL). Return new references. */
json_t *proto_result(const json_t *id, json_t *result);
json_t *proto_error(const json_t *id, int code, const char *message, json_t *data);
/* Build a notification; steals params (may be NULL). */
json_t *proto_notification(const char *method, json_t *params);

/* Encode msg compactly followed by '\n' and write it all to fd. The fd may be
 * non-blocking: waits with poll up to timeout_ms in total for the peer to read.
 * Returns 0, -ETIMEDOUT, -EPIPE or -errno. */
int proto_send(int fd, const json_t *msg, int timeout_ms);
/* Write an encoded frame (ending in '\n') as proto_send does. */
int proto_send_frame(int fd, const char *text, size_t len, int timeout_ms);

/* The encoded response frame (ending in '\n') answering request `id` with a
 * stored tool outcome, from content's canonical text (len bytes, one JSON
 * value, as the journal holds it) without parsing or re-encoding it: the
 * bytes proto_send gives for proto_result(id, proto_tool_result(content,
 * is_error, text)) with "_meta": {"agentd/seq": seq[, "agentd/replayed":
 * true]}. The text is read once. *ret is malloc'd; 0 or -errno (-EINVAL:
 * empty, or with text a control character that no JSON text holds). */
int proto_stored_result_frame(const json_t *id, const char *content, size_t len, bool is_error,
			      int64_t seq, bool replayed, bool text, char **ret, size_t *ret_len);

/* MCP tool result: {"content":[{"type":"text","text":<compact json>}],
 * "structuredContent": content, "isError": is_error}; without text (the
 * client reads structuredContent only: "agentd/text": false) "content" is
 * [] and the result is not encoded twice. Steals content. */
json_t *proto_tool_result(json_t *content, bool is_error, bool text);
