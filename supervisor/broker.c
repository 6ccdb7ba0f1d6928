/* The agent channel: read frames, parse strictly, dispatch through the
 * method table, answer. A hostile agent gets errors, then is killed if it
 * keeps sending garbage; it never stalls or crashes the loop. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "supervisor/interact.h"
#include "supervisor/internal.h"
#include "supervisor/tools/tools.h"

#define MAX_MALFORMED_FRAMES 100
#define MAX_MALFORMED_BYTES  (10u << 20)

static void
m_initialize(struct sup_run *r, const json_t *id, json_t *params)
{
	sup_send(r, proto_result(id, json_pack("{s:s,s:{s:{}},s:{s:s,s:s}}", "protocolVersion",
					       "2025-06-18", "capabilities", "tools", "serverInfo",
					       "name", "agentd", "version", AGENTD_VERSION)));
}

static void
m_ping(struct sup_run *r, const json_t *id, json_t *params)
{
	sup_send(r, proto_result(id, json_object()));
}

static void
m_ignore(struct sup_run *r, const json_t *id, json_t *params)
{
}

static void
m_tools_list(struct sup_run *r, const json_t *id, json_t *params)
{
	json_t *tools = json_array();

	for (size_t i = 0; tools && tools_builtin[i]; i++)
		if (sup_tool_visible(r, tools_builtin[i]->name))
			json_array_append_new(tools, sup_tool_entry(r, tools_builtin[i]));
	sup_send(r, proto_result(id, json_pack("{s:o}", "tools", tools)));
}

static void
m_resume(struct sup_run *r, const json_t *id, json_t *params)
{
	int use_state = 1;
	json_error_t jerr;
	json_t *state = NULL;
	int64_t state_seq = 0;

	if (params &&
	    json_unpack_ex(params, &jerr, JSON_STRICT, "{s?b}", "use_state", &use_state) < 0) {
		sup_reply_error(r, id, PROTO_INVALID_PARAMS,
				"agentd/resume takes {\"use_state\": bool}", NULL);
		return;
	}
	int e = store_state_load(r->st, r->id, &state, &state_seq);
	if (e < 0 && e != -ENOENT) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "could not load the saved state",
				NULL);
		return;
	}
	sup_durable_note_resume(r, use_state);
	if (use_state && state) {
		sup_replay_consume_upto(&r->replay, state_seq);
		if (state_seq > r->last_seq)
			r->last_seq = state_seq;
	}
	sup_send(r, proto_result(id, json_pack("{s:s,s:i,s:o,s:I,s:I}", "run_id", r->id, "attempt",
					       r->attempt, "state", state ? state : json_null(),
					       "state_seq", (json_int_t)state_seq, "journal_len",
					       (json_int_t)sup_replay_last_seq(&r->replay))));
}

static void
m_checkpoint(struct sup_run *r, const json_t *id, json_t *params)
{
	json_t *state = params ? json_object_get(params, "state") : NULL;

	if (!state || json_object_size(params) != 1) {
		sup_reply_error(r, id, PROTO_INVALID_PARAMS,
				"agentd/checkpoint takes {\"state\": any}", NULL);
		return;
	}
	int e = store_state_save(r->st, r->id, r->last_seq, state);
	if (e < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "could not save the state", NULL);
		return;
	}
	/* The state row is the record; agents checkpoint often, so no event. */
	sup_send(r, proto_result(id, json_pack("{s:I}", "seq", (json_int_t)r->last_seq)));
	/* After the answer: the agent does not wait for it. */
	sup_durable_retain(r);
}

/* The dispatch table: anything not here is "method not found". */
enum { M_REQUEST = 1, M_NOTIFICATION = 2 };
static const struct method {
	const char *name;
	unsigned flags;
	void (*fn)(struct sup_run *r, const json_t *id, json_t *params);
} methods[] = {
    {"initialize", M_REQUEST, m_initialize},
    {"notifications/initialized", M_NOTIFICATION, m_ignore},
    {"notifications/cancelled", M_NOTIFICATION, m_ignore},
    {"notifications/progress", M_NOTIFICATION, m_ignore},
    {"ping", M_REQUEST, m_ping},
    {"tools/list", M_REQUEST, m_tools_list},
    {"tools/call", M_REQUEST, sup_tools_call},
    {"agentd/resume", M_REQUEST, m_resume},
    {"agentd/checkpoint", M_REQUEST, m_checkpoint},
    {"agentd/inbox", M_REQUEST, sup_ix_inbox},
};

static void
malformed(struct sup_run *r, size_t bytes, const char *what)
{
	r->malformed++;
	r->malformed_bytes += bytes;
	if (r->malformed > MAX_MALFORMED_FRAMES || r->malformed_bytes > MAX_MALFORMED_BYTES) {
		sup_emit(r, 0, "protocol.flood",
			 json_pack("{s:i,s:I}", "frames", r->malformed, "bytes",
				   (json_int_t)r->malformed_bytes));
		sup_fail(r, "agent sent too much malformed input (%u frames, %zu bytes); last: %s",
			 r->malformed, r->malformed_bytes, what);
	}
}

static void
handle_frame(struct sup_run *r, const char *frame, size_t len)
{
	struct proto_msg m;
	json_t *rid = NULL;
	char err[256] = "";

	int code = proto_parse(frame, len, &m, &rid, err, sizeof(err));
	if (code < 0) {
		malformed(r, len, err);
		sup_send(r, proto_error(rid, code, err[0] ? err : "invalid message", NULL));
		json_decref(rid);
		return;
	}
	json_decref(rid);		/* the message holds the id too */
	if (m.kind == PROTO_RESPONSE) { /* we send no requests yet */
		proto_msg_clear(&m);
		return;
	}
	const struct method *meth = NULL;
	for (size_t i = 0; i < ARRAY_SIZE(methods); i++)
		if (strcmp(methods[i].name, m.method) == 0)
			meth = &methods[i];
	unsigned want = m.kind == PROTO_REQUEST ? M_REQUEST : M_NOTIFICATION;
	if (!meth || !(meth->flags & want)) {
		malformed(r, len, "unknown method");
		sup_reply_error(r, m.id, PROTO_METHOD_NOT_FOUND, "method not found",
				json_pack("{s:s}", "method", m.method));
	} else {
		r->malformed = 0;
		/* A call boundary: messages due here go out before the reply. */
		if ((m.kind != PROTO_REQUEST || sup_ix_boundary(r, m.method)) &&
		    r->w_chan.fd >= 0 && !r->fatal)
			meth->fn(r, m.id, m.params);
	}
	proto_msg_clear(&m);
}

void
sup_broker_close(struct sup_run *r)
{
	agd_loop_close_watch(r->loop, &r->w_chan);
}

/* Answer the complete frames already buffered, stopping while a call waits
 * (for its approval, or in the group commit). */
void
sup_broker_drain(struct sup_run *r)
{
	const char *frame;
	size_t len;
	int k;

	while (r->w_chan.fd >= 0 && !r->fatal && !r->pending && !sup_ix_blocked(r) &&
	       (k = proto_reader_next(&r->rd, &frame, &len)) != 0) {
		if (k == -E2BIG) {
			malformed(r, r->rd.max, "frame too large");
			sup_send(r,
				 proto_error(NULL, PROTO_FRAME_TOO_LARGE, "frame too large", NULL));
			continue;
		}
		handle_frame(r, frame, len);
	}
}

void
sup_broker_read(struct sup_run *r)
{
	/* A queued call is answered first; the flush reads on. After a wait,
	 * frames may already be buffered. */
	if (r->pending || sup_ix_hold(r))
		return;
	sup_broker_drain(r);
	for (int budget = 64; budget > 0 && r->w_chan.fd >= 0 && !r->fatal; budget--) {
		if (r->pending || sup_ix_hold(r))
			return;
		ssize_t n = proto_reader_fill(&r->rd, r->w_chan.fd);
		if (n == -EAGAIN)
			return;
		if (n < 0 || n == 0) {
			if (proto_reader_partial(&r->rd))
				sup_emit(r, 0, "protocol.error",
					 json_pack("{s:s}", "error", "channel closed mid-frame"));
			sup_broker_close(r);
			return;
		}
		sup_broker_drain(r);
	}
}
