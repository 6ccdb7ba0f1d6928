/* The supervisor of one run: child lifecycle, the broker loop and restarts.
 *
 * Lifecycle (state x event):
 *
 *   state     | child exited 0 | child crashed           | diverged/fatal | timer      |
 * SIGINT/TERM
 *   ----------+----------------+-------------------------+----------------+------------+------------
 *   CHILD     | SUCCEEDED      | BACKOFF, or FAILED when | kill; FAILED   | -          | kill;
 * INTERRUPTED |                | the restart limit hit   | on exit        |            | BACKOFF |
 * -              | -                       | -              | CHILD      | INTERRUPTED
 *
 * SUCCEEDED, FAILED and INTERRUPTED end the loop. INTERRUPTED leaves the run
 * resumable (`agentd resume`): its journal is the checkpoint.
 */
#include "supervisor/supervisor.h"

#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "supervisor/proto.h"
#include "supervisor/replay.h"
#include "supervisor/tools/tools.h"

#define MAX_MALFORMED_FRAMES 100
#define MAX_MALFORMED_BYTES  (10u << 20)
#define SEND_TIMEOUT_MS	     10000
#define TOOL_TIMEOUT_MS	     30000
#define MAX_RESULT_BYTES     (1u << 20) /* the reply carries it twice: stay under 4 MiB */
#define BACKOFF_FIRST_MS     100
#define BACKOFF_MAX_MS	     5000

enum run_state { ST_CHILD, ST_BACKOFF, ST_SUCCEEDED, ST_FAILED, ST_INTERRUPTED };

struct run {
	struct store *st;
	const struct sup_options *opt;
	const char *id;
	const char *uid; /* random, unique across stores: names idempotency keys */
	json_t *spec;
	struct policy *policy;
	const char *cwd, *workspace;
	int max_restarts, window_s;
	int64_t *starts_ms; /* start time of each attempt, for the intensity limit */
	size_t n_starts;

	enum run_state state;
	int attempt;
	pid_t pid;
	int pidfd, status_fd, chan, epfd, sigfd, timerfd;
	struct proto_reader rd;
	struct sup_replay replay;
	int64_t next_seq;  /* seq of the next live call */
	int64_t last_seq;  /* last seq handled in this attempt */
	uint64_t replayed; /* calls answered from the journal in this attempt */
	int64_t first_replayed, last_replayed;
	uint64_t live_calls;
	unsigned malformed;
	size_t malformed_bytes;
	bool fatal; /* the current child must not be restarted */

	int exit_code;
	char reason[512];
};

/* ---- events ---- */

static void
emit(struct run *r, int64_t seq, const char *type, json_t *data)
{
	/* Calls are recorded by their journal rows; everything else is an event row.
	 * Per-call events are only shown live so the hot path stays one commit. */
	if (strncmp(type, "call.", 5) != 0)
		(void)store_event_append(r->st, r->id, r->attempt, seq, type, data);
	if (r->opt->on_event)
		r->opt->on_event(r->id, r->attempt, seq, type, data, r->opt->event_ud);
	json_decref(data);
}

static void fail(struct run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
fail(struct run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->fatal)
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	r->fatal = true;
	if (r->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
}

/* ---- replies ---- */

static void
send_msg(struct run *r, json_t *msg)
{
	if (r->chan < 0 || !msg) {
		json_decref(msg);
		return;
	}
	int e = proto_send(r->chan, msg, SEND_TIMEOUT_MS);
	json_decref(msg);
	if (e == -ETIMEDOUT)
		fail(r, "agent stopped reading its channel for %d s", SEND_TIMEOUT_MS / 1000);
	/* EPIPE: the child is gone; its exit is handled through the pidfd. */
}

static void
reply_error(struct run *r, const json_t *id, int code, const char *msg, json_t *data)
{
	if (!id) { /* notifications never get responses */
		json_decref(data);
		return;
	}
	send_msg(r, proto_error(id, code, msg, data));
}

/* The MCP result for a stored outcome, tagged with its seq (and replay flag). */
static json_t *
tool_reply(const json_t *content, bool is_error, int64_t seq, bool replayed)
{
	json_t *res = proto_tool_result(json_deep_copy(content), is_error);
	json_t *meta = json_pack("{s:I}", "agentd/seq", (json_int_t)seq);

	if (!res || !meta) {
		json_decref(res);
		json_decref(meta);
		return NULL;
	}
	if (replayed)
		json_object_set_new(meta, "agentd/replayed", json_true());
	json_object_set_new(res, "_meta", meta);
	return res;
}

/* ---- approvals ---- */

static bool
ask_tty(struct run *r, int64_t seq, const char *tool, const json_t *args, const char *rule)
{
	cleanup_free char *a = agd_json_canonical(args);
	char line[32];
	FILE *tty = fopen("/dev/tty", "r+e");

	if (!tty)
		return false;
	fprintf(tty, "agentd: approve call #%lld %s %s (rule '%s')? [y/N] ", (long long)seq, tool,
		a ? a : "", rule);
	fflush(tty);
	bool yes = fgets(line, sizeof(line), tty) && (line[0] == 'y' || line[0] == 'Y');
	fclose(tty);
	return yes;
}

static bool
approve(struct run *r, int64_t seq, const char *tool, const json_t *args, const char *rule,
	const char **ret_by)
{
	switch (r->opt->approval) {
	case SUP_APPROVE_ALL:
		*ret_by = "--approve";
		return true;
	case SUP_DENY_ALL:
		*ret_by = "--deny";
		return false;
	case SUP_APPROVE_ASK_TTY:
		break;
	}
	*ret_by = "tty";
	return ask_tty(r, seq, tool, args, rule);
}

/* ---- tools/call ---- */

static json_t *
call_event(int64_t seq, const char *tool, const char *decision, const char *rule,
	   const char *outcome, bool replayed, int64_t dur_us)
{
	return json_pack("{s:I,s:s,s:s,s:s,s:s,s:b,s:I}", "seq", (json_int_t)seq, "tool", tool,
			 "decision", decision, "rule", rule ? rule : "", "outcome", outcome,
			 "replayed", replayed, "duration_us", (json_int_t)dur_us);
}

static const char *
outcome_name(enum store_call_status s)
{
	switch (s) {
	case STORE_CALL_OK:
		return "ok";
	case STORE_CALL_ERROR:
		return "error";
	case STORE_CALL_DENIED:
		return "denied";
	case STORE_CALL_INTENT:
		break;
	}
	return "unknown";
}

/* Run a tool and record its outcome; the row for seq is an intent unless pure. */
static int
execute(struct run *r, const struct tool_def *t, const json_t *args, int64_t seq,
	const char *path_root, enum tool_class cls, json_t **ret_content, bool *ret_is_error)
{
	cleanup_free char *key = agd_asprintf("%s:%lld", r->uid, (long long)seq);
	struct tool_ctx ctx = {
	    .run_id = r->id,
	    .seq = seq,
	    .cwd = r->cwd,
	    .path_root = path_root,
	    .idempotency_key = key,
	    .default_timeout_ms = TOOL_TIMEOUT_MS,
	    .max_result_bytes = MAX_RESULT_BYTES,
	};
	json_t *content = NULL;
	bool is_error = false;
	int e;

	if (!key)
		return -ENOMEM;
	e = t->call(&ctx, args, &content, &is_error);
	if (e < 0)
		return e;
	(void)cls;
	*ret_content = content;
	*ret_is_error = is_error;
	return 0;
}

static void
do_live_call(struct run *r, const json_t *id, const struct tool_def *t, const char *tool,
	     const json_t *args, const char *hash)
{
	struct policy_result pr;
	int64_t seq = r->next_seq;
	int64_t t0 = agd_now_ns();
	const struct policy_limits *lim = policy_limits(r->policy);
	const char *decision = "allow";
	int e;

	if (policy_eval(r->policy, tool, args, r->cwd, &pr) < 0) {
		reply_error(r, id, PROTO_INTERNAL_ERROR, "policy evaluation failed", NULL);
		return;
	}
	if (lim->max_calls && r->live_calls >= lim->max_calls && pr.decision != POLICY_DENY) {
		pr.decision = POLICY_DENY;
		snprintf(pr.reason, sizeof(pr.reason), "limit max_calls (%llu) reached",
			 (unsigned long long)lim->max_calls);
		pr.rule_id = "limits.max_calls";
	}

	struct store_call c = {
	    .seq = seq,
	    .tool = (char *)tool,
	    .args = (json_t *)args,
	    .attempt = r->attempt,
	    .rule = (char *)pr.rule_id,
	    .started_ms = agd_wall_ms(),
	};
	memcpy(c.args_hash, hash, AGD_SHA256_HEX);

	bool refused = pr.decision == POLICY_DENY;
	const char *by = NULL;
	if (pr.decision == POLICY_ASK) {
		emit(r, seq, "approval.requested",
		     json_pack("{s:I,s:s,s:O,s:s}", "seq", (json_int_t)seq, "tool", tool, "args",
			       args, "rule", pr.rule_id));
		refused = !approve(r, seq, tool, args, pr.rule_id, &by);
		decision = refused ? "ask:denied" : "ask:approved";
		emit(r, seq, refused ? "approval.denied" : "approval.granted",
		     json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "rule", pr.rule_id, "by",
			       by));
	}
	if (refused) {
		bool asked = pr.decision == POLICY_ASK;
		json_t *data = json_pack("{s:s,s:s?,s:s}", "decision", asked ? "ask" : "deny",
					 "rule", pr.rule ? pr.rule_id : NULL, "reason",
					 asked ? "refused by the approver" : pr.reason);
		if (asked && data)
			json_object_set_new(data, "approved", json_false());
		if (!pr.rule && !asked && data)
			json_object_set_new(data, "reason", json_string("no rule matched"));
		json_t *err = json_pack("{s:i,s:s,s:O}", "code", PROTO_DENIED, "message",
					"denied by policy", "data", data);
		c.status = STORE_CALL_DENIED;
		c.result = err;
		c.decision = asked ? "ask:denied" : "deny";
		c.finished_ms = c.started_ms;
		e = store_journal_record(r->st, r->id, &c);
		if (e < 0) {
			json_decref(err);
			json_decref(data);
			fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
			return;
		}
		r->next_seq++;
		r->last_seq = seq;
		r->live_calls++;
		emit(r, seq, "call.denied",
		     call_event(seq, tool, c.decision, pr.rule_id, "denied", false, 0));
		reply_error(r, id, PROTO_DENIED, "denied by policy", json_incref(data));
		json_decref(err);
		json_decref(data);
		return;
	}

	enum tool_class cls = t->classify(args);
	c.decision = (char *)decision;
	if (cls != TOOL_PURE) {
		/* The intent is durable before the effect can happen. */
		c.status = STORE_CALL_INTENT;
		e = store_journal_intent(r->st, r->id, &c);
		if (e < 0) {
			fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
			return;
		}
	}
	r->next_seq++;
	r->last_seq = seq;
	r->live_calls++;

	cleanup_json json_t *content = NULL;
	bool is_error = false;
	e = execute(r, t, args, seq, pr.path_root, cls, &content, &is_error);
	if (e < 0) {
		fail(r, "tool %s failed internally: %s", tool, strerror(-e));
		return;
	}
	c.status = is_error ? STORE_CALL_ERROR : STORE_CALL_OK;
	c.result = content;
	c.finished_ms = agd_wall_ms();
	e = cls == TOOL_PURE
		? store_journal_record(r->st, r->id, &c)
		: store_journal_finish(r->st, r->id, seq, c.status, content, c.finished_ms);
	if (e < 0) {
		/* Never reply with an outcome the journal does not hold. */
		fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
		return;
	}
	emit(r, seq, "call.finished",
	     call_event(seq, tool, decision, pr.rule_id, outcome_name(c.status), false,
			(agd_now_ns() - t0) / 1000));
	send_msg(r, proto_result(id, tool_reply(content, is_error, seq, false)));
}

/* A journaled call whose outcome a crash left unknown (intent, no result). */
static void
do_unknown_outcome(struct run *r, const json_t *id, const struct tool_def *t,
		   const struct store_call *c)
{
	enum tool_class cls = t->classify(c->args);
	struct policy_result pr;
	int64_t t0 = agd_now_ns();
	const char *by = "class";
	int e;

	if (policy_eval(r->policy, c->tool, c->args, r->cwd, &pr) < 0) {
		reply_error(r, id, PROTO_INTERNAL_ERROR, "policy evaluation failed", NULL);
		return;
	}
	emit(r, c->seq, "call.unknown_outcome",
	     json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)c->seq, "tool", c->tool, "class",
		       cls == TOOL_EFFECT ? "effect" : "idempotent"));
	/* pure and idempotent calls are rerun (the same idempotency key is sent);
	 * an effect is rerun only when a human confirms. */
	if (cls == TOOL_EFFECT && !approve(r, c->seq, c->tool, c->args, "on_unknown", &by)) {
		json_t *data = json_pack("{s:I,s:s}", "seq", (json_int_t)c->seq, "reason",
					 "a crash left this effect's outcome unknown");
		json_t *err = json_pack("{s:i,s:s,s:O}", "code", PROTO_UNKNOWN_OUTCOME, "message",
					"unknown outcome", "data", data);
		e = store_journal_finish(r->st, r->id, c->seq, STORE_CALL_DENIED, err,
					 agd_wall_ms());
		json_decref(err);
		if (e < 0) {
			json_decref(data);
			fail(r, "journal write failed for #%lld: %s", (long long)c->seq,
			     strerror(-e));
			return;
		}
		reply_error(r, id, PROTO_UNKNOWN_OUTCOME, "unknown outcome", data);
		return;
	}
	cleanup_json json_t *content = NULL;
	bool is_error = false;
	e = execute(r, t, c->args, c->seq, pr.path_root, cls, &content, &is_error);
	if (e < 0) {
		fail(r, "tool %s failed internally: %s", c->tool, strerror(-e));
		return;
	}
	enum store_call_status status = is_error ? STORE_CALL_ERROR : STORE_CALL_OK;
	e = store_journal_finish(r->st, r->id, c->seq, status, content, agd_wall_ms());
	if (e < 0) {
		fail(r, "journal write failed for #%lld: %s", (long long)c->seq, strerror(-e));
		return;
	}
	emit(r, c->seq, "call.finished",
	     call_event(c->seq, c->tool, "rerun", c->rule, outcome_name(status), false,
			(agd_now_ns() - t0) / 1000));
	send_msg(r, proto_result(id, tool_reply(content, is_error, c->seq, false)));
}

static void
do_replayed_call(struct run *r, const json_t *id, const struct store_call *c)
{
	r->replayed++;
	if (!r->first_replayed)
		r->first_replayed = c->seq;
	r->last_replayed = c->seq;
	emit(r, c->seq, "call.replayed",
	     call_event(c->seq, c->tool, c->decision, c->rule, outcome_name(c->status), true, 0));
	if (c->status == STORE_CALL_DENIED) {
		json_t *code = json_object_get(c->result, "code");
		json_t *msg = json_object_get(c->result, "message");
		json_t *data = json_object_get(c->result, "data");
		reply_error(r, id,
			    json_is_integer(code) ? (int)json_integer_value(code) : PROTO_DENIED,
			    json_is_string(msg) ? json_string_value(msg) : "denied",
			    data ? json_deep_copy(data) : NULL);
		return;
	}
	send_msg(r, proto_result(
			id, tool_reply(c->result, c->status == STORE_CALL_ERROR, c->seq, true)));
}

static void
m_tools_call(struct run *r, const json_t *id, json_t *params)
{
	const char *tool = NULL;
	json_t *args = NULL;
	json_error_t jerr;
	char hash[AGD_SHA256_HEX];

	if (!params ||
	    json_unpack_ex(params, &jerr, JSON_STRICT, "{s:s,s?o}", "name", &tool, "arguments",
			   &args) < 0 ||
	    (args && !json_is_object(args))) {
		reply_error(r, id, PROTO_INVALID_PARAMS,
			    "tools/call needs {\"name\": string, \"arguments\": object}", NULL);
		return;
	}
	cleanup_json json_t *empty = args ? NULL : json_object();
	if (!args)
		args = empty;
	const struct tool_def *t = tools_find(tool);
	if (!t) {
		reply_error(r, id, PROTO_INVALID_PARAMS, "unknown tool",
			    json_pack("{s:s}", "tool", tool));
		return;
	}
	if (agd_json_hash(args, hash) < 0) {
		reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}

	ssize_t i = sup_replay_match(&r->replay, tool, hash);
	if (i >= 0) {
		const struct store_call *c = &r->replay.calls[i];
		sup_replay_consume(&r->replay, (size_t)i);
		if (c->seq > r->last_seq)
			r->last_seq = c->seq;
		if (c->status == STORE_CALL_INTENT)
			do_unknown_outcome(r, id, t, c);
		else
			do_replayed_call(r, id, c);
		return;
	}
	const struct store_call *p = sup_replay_pending(&r->replay);
	if (p) {
		if (r->opt->on_divergence == SUP_DIVERGE_LIVE) {
			int e = store_journal_truncate(r->st, r->id, p->seq - 1);
			if (e < 0) {
				fail(r, "journal truncate failed: %s", strerror(-e));
				return;
			}
			emit(r, p->seq, "replay.diverged",
			     json_pack("{s:I,s:s}", "seq", (json_int_t)p->seq, "action", "live"));
			r->next_seq = p->seq;
			/* Forget the rest of the journal: from here the run is live. */
			for (size_t k = 0; k < r->replay.n; k++)
				if (r->replay.calls[k].seq >= p->seq)
					sup_replay_consume(&r->replay, k);
		} else {
			json_t *data =
			    json_pack("{s:I,s:{s:s,s:s},s:{s:s,s:s}}", "seq", (json_int_t)p->seq,
				      "recorded", "tool", p->tool, "args_hash", p->args_hash,
				      "received", "tool", tool, "args_hash", hash);
			emit(r, p->seq, "replay.diverged", json_incref(data));
			reply_error(r, id, PROTO_DIVERGED, "replay diverged from the journal",
				    data);
			fail(r,
			     "replay diverged at #%lld: the journal has %s (args %.12s), the "
			     "agent called %s (args %.12s)",
			     (long long)p->seq, p->tool, p->args_hash, tool, hash);
			return;
		}
	}
	do_live_call(r, id, t, tool, args, hash);
}

/* ---- other methods ---- */

static void
m_initialize(struct run *r, const json_t *id, json_t *params)
{
	send_msg(r, proto_result(id, json_pack("{s:s,s:{s:{}},s:{s:s,s:s}}", "protocolVersion",
					       "2025-06-18", "capabilities", "tools", "serverInfo",
					       "name", "agentd", "version", AGENTD_VERSION)));
}

static void
m_ping(struct run *r, const json_t *id, json_t *params)
{
	send_msg(r, proto_result(id, json_object()));
}

static void
m_ignore(struct run *r, const json_t *id, json_t *params)
{
}

static void
m_tools_list(struct run *r, const json_t *id, json_t *params)
{
	json_t *tools = json_array();

	for (size_t i = 0; tools && tools_builtin[i]; i++)
		if (policy_tool_visible(r->policy, tools_builtin[i]->name))
			json_array_append_new(tools, tools_describe(tools_builtin[i]));
	send_msg(r, proto_result(id, json_pack("{s:o}", "tools", tools)));
}

static void
m_resume(struct run *r, const json_t *id, json_t *params)
{
	int use_state = 1;
	json_error_t jerr;
	json_t *state = NULL;
	int64_t state_seq = 0;

	if (params &&
	    json_unpack_ex(params, &jerr, JSON_STRICT, "{s?b}", "use_state", &use_state) < 0) {
		reply_error(r, id, PROTO_INVALID_PARAMS,
			    "agentd/resume takes {\"use_state\": bool}", NULL);
		return;
	}
	int e = store_state_load(r->st, r->id, &state, &state_seq);
	if (e < 0 && e != -ENOENT) {
		reply_error(r, id, PROTO_INTERNAL_ERROR, "could not load the saved state", NULL);
		return;
	}
	if (use_state && state) {
		sup_replay_consume_upto(&r->replay, state_seq);
		if (state_seq > r->last_seq)
			r->last_seq = state_seq;
	}
	send_msg(r, proto_result(id, json_pack("{s:s,s:i,s:o,s:I,s:I}", "run_id", r->id, "attempt",
					       r->attempt, "state", state ? state : json_null(),
					       "state_seq", (json_int_t)state_seq, "journal_len",
					       (json_int_t)sup_replay_last_seq(&r->replay))));
}

static void
m_checkpoint(struct run *r, const json_t *id, json_t *params)
{
	json_t *state = params ? json_object_get(params, "state") : NULL;

	if (!state || json_object_size(params) != 1) {
		reply_error(r, id, PROTO_INVALID_PARAMS, "agentd/checkpoint takes {\"state\": any}",
			    NULL);
		return;
	}
	int e = store_state_save(r->st, r->id, r->last_seq, state);
	if (e < 0) {
		reply_error(r, id, PROTO_INTERNAL_ERROR, "could not save the state", NULL);
		return;
	}
	/* The state row is the record; agents checkpoint often, so no event. */
	send_msg(r, proto_result(id, json_pack("{s:I}", "seq", (json_int_t)r->last_seq)));
}

/* The dispatch table: anything not here is "method not found". */
enum { M_REQUEST = 1, M_NOTIFICATION = 2 };
static const struct method {
	const char *name;
	unsigned flags;
	void (*fn)(struct run *r, const json_t *id, json_t *params);
} methods[] = {
    {"initialize", M_REQUEST, m_initialize},
    {"notifications/initialized", M_NOTIFICATION, m_ignore},
    {"notifications/cancelled", M_NOTIFICATION, m_ignore},
    {"notifications/progress", M_NOTIFICATION, m_ignore},
    {"ping", M_REQUEST, m_ping},
    {"tools/list", M_REQUEST, m_tools_list},
    {"tools/call", M_REQUEST, m_tools_call},
    {"agentd/resume", M_REQUEST, m_resume},
    {"agentd/checkpoint", M_REQUEST, m_checkpoint},
};

static void
malformed(struct run *r, size_t bytes, const char *what)
{
	r->malformed++;
	r->malformed_bytes += bytes;
	if (r->malformed > MAX_MALFORMED_FRAMES || r->malformed_bytes > MAX_MALFORMED_BYTES) {
		emit(r, 0, "protocol.flood",
		     json_pack("{s:i,s:I}", "frames", r->malformed, "bytes",
			       (json_int_t)r->malformed_bytes));
		fail(r, "agent sent too much malformed input (%u frames, %zu bytes); last: %s",
		     r->malformed, r->malformed_bytes, what);
	}
}

static void
handle_frame(struct run *r, const char *frame, size_t len)
{
	struct proto_msg m;
	json_t *rid = NULL;
	char err[256] = "";

	int code = proto_parse(frame, len, &m, &rid, err, sizeof(err));
	if (code < 0) {
		malformed(r, len, err);
		send_msg(r, proto_error(rid, code, err[0] ? err : "invalid message", NULL));
		json_decref(rid);
		return;
	}
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
		reply_error(r, m.id, PROTO_METHOD_NOT_FOUND, "method not found",
			    json_pack("{s:s}", "method", m.method));
	} else {
		r->malformed = 0;
		meth->fn(r, m.id, m.params);
	}
	proto_msg_clear(&m);
}

static void
close_channel(struct run *r)
{
	if (r->chan < 0)
		return;
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->chan, NULL);
	close(r->chan);
	r->chan = -1;
}

static void
on_channel(struct run *r)
{
	for (int budget = 64; budget > 0 && r->chan >= 0 && !r->fatal; budget--) {
		ssize_t n = proto_reader_fill(&r->rd, r->chan);
		if (n == -EAGAIN)
			return;
		if (n < 0 || n == 0) {
			if (proto_reader_partial(&r->rd))
				emit(r, 0, "protocol.error",
				     json_pack("{s:s}", "error", "channel closed mid-frame"));
			close_channel(r);
			return;
		}
		const char *frame;
		size_t len;
		int k;
		while (r->chan >= 0 && !r->fatal &&
		       (k = proto_reader_next(&r->rd, &frame, &len)) != 0) {
			if (k == -E2BIG) {
				malformed(r, r->rd.max, "frame too large");
				send_msg(r, proto_error(NULL, PROTO_FRAME_TOO_LARGE,
							"frame too large", NULL));
				continue;
			}
			handle_frame(r, frame, len);
		}
	}
}

/* ---- child lifecycle ---- */

static char **
build_env(struct run *r)
{
	char **env = calloc(10, sizeof(char *));
	int i = 0;

	if (!env)
		return NULL;
	env[i++] = agd_asprintf("PATH=/opt/agentd/bin:/usr/local/bin:/usr/bin:/bin");
	env[i++] = agd_asprintf("PYTHONPATH=/opt/agentd/python");
	env[i++] = agd_asprintf("PYTHONUNBUFFERED=1");
	env[i++] = agd_asprintf("HOME=/workspace");
	env[i++] = agd_asprintf("LANG=C.UTF-8");
	env[i++] = agd_asprintf("AGENTD_FD=3");
	env[i++] = agd_asprintf("AGENTD_RUN_ID=%s", r->id);
	env[i++] = agd_asprintf("AGENTD_ATTEMPT=%d", r->attempt);
	for (int k = 0; k < i; k++)
		if (!env[k])
			goto oom;
	return env;
oom:
	for (int k = 0; k < i; k++)
		free(env[k]);
	free(env);
	return NULL;
}

static void
free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int
spawn_child(struct run *r)
{
	json_t *jargv = json_object_get(r->spec, "argv");
	size_t argc = json_array_size(jargv);
	cleanup_free const char **argv = calloc(argc + 1, sizeof(char *));
	char **envp = NULL;
	int sv[2] = {-1, -1};
	struct sandbox_plan *plan = NULL;
	struct sandbox_child child;
	char err[256] = "";
	int e;

	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		argv[i] = json_string_value(json_array_get(jargv, i));

	e = store_run_next_attempt(r->st, r->id, &r->attempt);
	if (e < 0) {
		snprintf(r->reason, sizeof(r->reason), "store: %s", strerror(-e));
		return e;
	}
	envp = build_env(r);
	if (!envp)
		return -ENOMEM;

	const struct policy_mount *pm = NULL;
	size_t n_pm = policy_mounts(r->policy, &pm);
	cleanup_free struct sandbox_bind *binds = calloc(n_pm + 1, sizeof(*binds));
	size_t nb = 0;
	if (!binds) {
		free_strv(envp);
		return -ENOMEM;
	}
	if (r->opt->sdk_dir)
		binds[nb++] = (struct sandbox_bind){r->opt->sdk_dir, "/opt/agentd", false};
	for (size_t i = 0; i < n_pm; i++)
		binds[nb++] = (struct sandbox_bind){pm[i].host, pm[i].path, pm[i].read_write};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		e = -errno;
		free_strv(envp);
		return e;
	}
	const struct policy_limits *lim = policy_limits(r->policy);
	struct sandbox_config cfg = {
	    .argv = argv,
	    .envp = (const char *const *)envp,
	    .cwd = r->cwd,
	    .workspace = r->workspace,
	    .channel_fd = sv[1],
	    .stdin_fd = -1,
	    .stdout_fd = r->opt->stdout_fd >= 0 ? r->opt->stdout_fd : STDOUT_FILENO,
	    .stderr_fd = r->opt->stderr_fd >= 0 ? r->opt->stderr_fd : STDERR_FILENO,
	    .binds = binds,
	    .n_binds = nb,
	    .rlimits = {.address_space = lim->memory_bytes, .processes = lim->pids},
	    .uid = r->opt->sandbox_uid,
	    .gid = r->opt->sandbox_gid,
	};
	e = sandbox_prepare(&cfg, &plan, err, sizeof(err));
	if (e >= 0 && sandbox_notes(plan))
		emit(r, 0, "sandbox.note", json_pack("{s:s}", "note", sandbox_notes(plan)));
	if (e >= 0)
		e = sandbox_spawn(plan, &child, err, sizeof(err));
	sandbox_plan_free(plan);
	free_strv(envp);
	close(sv[1]);
	if (e < 0) {
		close(sv[0]);
		snprintf(r->reason, sizeof(r->reason), "%s", err[0] ? err : strerror(-e));
		return e;
	}

	r->pid = child.pid;
	r->pidfd = child.pidfd;
	r->status_fd = child.status_fd;
	r->chan = sv[0];
	fcntl(r->chan, F_SETFL, O_NONBLOCK);
	proto_reader_free(&r->rd);
	proto_reader_init(&r->rd, r->opt->max_frame ? r->opt->max_frame : PROTO_MAX_FRAME_DEFAULT);
	r->malformed = 0;
	r->malformed_bytes = 0;
	r->replayed = r->first_replayed = r->last_replayed = 0;
	r->last_seq = 0;

	/* Reload the journal: every earlier attempt's calls are replayable. */
	struct store_call *calls = NULL;
	size_t n = 0;
	sup_replay_clear(&r->replay);
	e = store_journal_load(r->st, r->id, &calls, &n);
	if (e < 0 || (e = sup_replay_init(&r->replay, calls, n)) < 0) {
		snprintf(r->reason, sizeof(r->reason), "journal unreadable: %s", strerror(-e));
		syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
		return e;
	}
	r->next_seq = sup_replay_last_seq(&r->replay) + 1;

	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r->chan};
	epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->chan, &ev);
	ev.data.ptr = &r->pidfd;
	epoll_ctl(r->epfd, EPOLL_CTL_ADD, r->pidfd, &ev);

	int64_t *ns = realloc(r->starts_ms, (r->n_starts + 1) * sizeof(int64_t));
	if (ns) {
		r->starts_ms = ns;
		r->starts_ms[r->n_starts++] = agd_now_ns() / 1000000;
	}
	r->state = ST_CHILD;
	emit(r, 0, "attempt.started",
	     json_pack("{s:i,s:i,s:I}", "attempt", r->attempt, "pid", (int)r->pid, "journal_len",
		       (json_int_t)n));
	return 0;
}

/* Restarts within the window so far (the one that just ended included). */
static int
recent_starts(struct run *r)
{
	int64_t now = agd_now_ns() / 1000000;
	int k = 0;

	for (size_t i = 0; i < r->n_starts; i++)
		if (now - r->starts_ms[i] <= (int64_t)r->window_s * 1000)
			k++;
	return k;
}

static void
on_child_exit(struct run *r)
{
	siginfo_t si = {0};

	struct sandbox_exit ex = {0};

	if (waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED) < 0)
		return;
	struct sandbox_child c = {r->pid, r->pidfd, r->status_fd};
	if (sandbox_child_exit(&c, &si, &ex) < 0)
		ex = (struct sandbox_exit){si.si_code != CLD_EXITED, si.si_status};
	epoll_ctl(r->epfd, EPOLL_CTL_DEL, r->pidfd, NULL);
	sandbox_child_close(&c);
	r->pidfd = r->status_fd = -1;
	close_channel(r);

	bool ok = !ex.signaled && ex.code == 0;
	json_t *data = !ex.signaled
			   ? json_pack("{s:i}", "exit_code", ex.code)
			   : json_pack("{s:i,s:s}", "signal", ex.code, "signame",
				       sigabbrev_np(ex.code) ? sigabbrev_np(ex.code) : "?");
	if (r->replayed)
		emit(r, 0, "replay.summary",
		     json_pack("{s:I,s:I,s:I}", "replayed", (json_int_t)r->replayed, "first",
			       (json_int_t)r->first_replayed, "last",
			       (json_int_t)r->last_replayed));
	emit(r, 0, "child.exited", data);

	if (r->fatal) {
		r->state = ST_FAILED;
		r->exit_code = -1;
		return;
	}
	if (ok) {
		r->state = ST_SUCCEEDED;
		r->exit_code = 0;
		return;
	}
	r->exit_code = ex.signaled ? 128 + ex.code : ex.code;
	int restarts = recent_starts(r) - 1; /* the first start is not a restart */
	if (restarts >= r->max_restarts) {
		snprintf(r->reason, sizeof(r->reason),
			 "agent %s %d; restart limit reached (%d restarts within %d s)",
			 ex.signaled ? "killed by signal" : "exited with status", ex.code,
			 r->max_restarts, r->window_s);
		r->state = ST_FAILED;
		return;
	}
	int64_t delay = BACKOFF_FIRST_MS;
	for (int i = 0; i < restarts && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	struct itimerspec its = {.it_value = {delay / 1000, (delay % 1000) * 1000000}};
	timerfd_settime(r->timerfd, 0, &its, NULL);
	r->state = ST_BACKOFF;
	emit(r, 0, "restart.scheduled",
	     json_pack("{s:I,s:i,s:i}", "delay_ms", (json_int_t)delay, "restart", restarts + 1,
		       "max_restarts", r->max_restarts));
}

static int
loop(struct run *r)
{
	struct epoll_event evs[8];

	while (r->state == ST_CHILD || r->state == ST_BACKOFF) {
		int n = epoll_wait(r->epfd, evs, ARRAY_SIZE(evs), -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		for (int i = 0; i < n; i++) {
			int *fdp = evs[i].data.ptr;
			if (fdp == &r->sigfd) {
				struct signalfd_siginfo ssi;
				if (read(r->sigfd, &ssi, sizeof(ssi)) != sizeof(ssi))
					continue;
				if (r->pidfd >= 0)
					syscall(SYS_pidfd_send_signal, r->pidfd, SIGKILL, NULL, 0);
				snprintf(r->reason, sizeof(r->reason),
					 "interrupted by %s; continue with `agentd resume %s`",
					 sigabbrev_np((int)ssi.ssi_signo), r->id);
				r->state = ST_INTERRUPTED;
			} else if (fdp == &r->timerfd) {
				uint64_t ticks;
				if (read(r->timerfd, &ticks, sizeof(ticks)) < 0)
					continue;
				if (r->state == ST_BACKOFF && spawn_child(r) < 0) {
					r->state = ST_FAILED;
					r->exit_code = -1;
				}
			} else if (fdp == &r->chan && r->chan >= 0) {
				on_channel(r);
			} else if (fdp == &r->pidfd && r->pidfd >= 0) {
				/* Answer what the child sent before it died, then reap it. */
				if (r->chan >= 0)
					on_channel(r);
				on_child_exit(r);
			}
			if (r->state == ST_INTERRUPTED)
				break;
		}
	}
	if (r->state == ST_INTERRUPTED && r->pidfd >= 0) {
		siginfo_t si;
		waitid(P_PIDFD, (id_t)r->pidfd, &si, WEXITED);
	}
	return 0;
}

json_t *
sup_spec_new(char *const *argv, const char *cwd, const char *workspace, const json_t *policy_doc,
	     int max_restarts, int restart_window_s)
{
	json_t *a = json_array();
	uint8_t rnd[16];
	char uid[33];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd))
		return NULL;
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(uid + 2 * i, 3, "%02x", rnd[i]);
	for (size_t i = 0; a && argv[i]; i++)
		json_array_append_new(a, json_string(argv[i]));
	return json_pack("{s:s,s:o,s:s,s:s,s:O,s:i,s:i}", "uid", uid, "argv", a, "cwd", cwd,
			 "workspace", workspace, "policy", policy_doc, "max_restarts", max_restarts,
			 "restart_window_s", restart_window_s);
}

/* Validate the stored spec (it is read back from disk: untrusted). */
static int
load_spec(struct run *r, const struct store_run *sr, char *reason, size_t reasonsz)
{
	json_t *argv = NULL, *pol = NULL;
	json_error_t jerr;
	struct policy_error perr = {0};

	if (json_unpack_ex(sr->spec, &jerr, JSON_STRICT, "{s:s,s:o,s:s,s:s,s:o,s:i,s:i}", "uid",
			   &r->uid, "argv", &argv, "cwd", &r->cwd, "workspace", &r->workspace,
			   "policy", &pol, "max_restarts", &r->max_restarts, "restart_window_s",
			   &r->window_s) < 0 ||
	    strlen(r->uid) != 32 || !json_is_array(argv) || json_array_size(argv) == 0 ||
	    r->cwd[0] != '/' || r->workspace[0] != '/' || r->max_restarts < 0 || r->window_s <= 0) {
		snprintf(reason, reasonsz, "run %s has an invalid spec in the store: %s", sr->id,
			 jerr.text);
		return -EBADMSG;
	}
	for (size_t i = 0; i < json_array_size(argv); i++)
		if (!json_is_string(json_array_get(argv, i))) {
			snprintf(reason, reasonsz, "run %s has a non-string argument", sr->id);
			return -EBADMSG;
		}
	cleanup_free char *text = json_dumps(pol, JSON_COMPACT);
	if (!text)
		return -ENOMEM;
	int e = policy_parse(text, strlen(text), &r->policy, &perr);
	if (e < 0) {
		snprintf(reason, reasonsz, "run %s has an invalid stored policy: %s", sr->id,
			 perr.message);
		return e;
	}
	return 0;
}

int
sup_supervise(struct store *st, const char *run_id, const struct sup_options *opt, int *ret_exit,
	      char *reason, size_t reasonsz)
{
	struct store_run sr = {0};
	struct run r = {
	    .st = st,
	    .opt = opt,
	    .id = run_id,
	    .pidfd = -1,
	    .chan = -1,
	    .epfd = -1,
	    .sigfd = -1,
	    .timerfd = -1,
	    .exit_code = -1,
	};
	sigset_t mask, old;
	int e;

	reason[0] = '\0';
	e = store_run_get(st, run_id, &sr);
	if (e < 0) {
		snprintf(reason, reasonsz, "no run named %s", run_id);
		return e;
	}
	r.spec = sr.spec;
	e = load_spec(&r, &sr, reason, reasonsz);
	if (e < 0)
		goto out;

	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &old);
	r.sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	r.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	r.epfd = epoll_create1(EPOLL_CLOEXEC);
	if (r.sigfd < 0 || r.timerfd < 0 || r.epfd < 0) {
		e = -errno;
		snprintf(reason, reasonsz, "event loop setup failed: %s", strerror(-e));
		goto out_sig;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &r.sigfd};
	epoll_ctl(r.epfd, EPOLL_CTL_ADD, r.sigfd, &ev);
	ev.data.ptr = &r.timerfd;
	epoll_ctl(r.epfd, EPOLL_CTL_ADD, r.timerfd, &ev);
	if (proto_reader_init(&r.rd, PROTO_MAX_FRAME_DEFAULT) < 0) {
		e = -ENOMEM;
		goto out_sig;
	}
	store_run_set_status(st, run_id, "running", -1, "");
	e = spawn_child(&r);
	if (e < 0) {
		snprintf(reason, reasonsz, "could not start the agent: %s", r.reason);
		store_run_set_status(st, run_id, "failed", -1, reason);
		emit(&r, 0, "run.failed", json_pack("{s:s}", "reason", reason));
		goto out_sig;
	}
	e = loop(&r);
	if (e < 0) {
		snprintf(reason, reasonsz, "event loop failed: %s", strerror(-e));
		goto out_sig;
	}

	switch (r.state) {
	case ST_SUCCEEDED:
		store_run_set_status(st, run_id, "succeeded", 0, "");
		emit(&r, 0, "run.succeeded", json_pack("{s:i}", "exit_code", 0));
		break;
	case ST_INTERRUPTED:
		store_run_set_status(st, run_id, "interrupted", -1, r.reason);
		emit(&r, 0, "run.interrupted", json_pack("{s:s}", "reason", r.reason));
		e = -EINTR;
		break;
	default:
		if (!r.reason[0])
			snprintf(r.reason, sizeof(r.reason), "agent failed");
		store_run_set_status(st, run_id, "failed", r.exit_code, r.reason);
		emit(&r, 0, "run.failed",
		     json_pack("{s:s,s:i}", "reason", r.reason, "exit_code", r.exit_code));
		break;
	}
	snprintf(reason, reasonsz, "%s", r.reason);
	*ret_exit = r.exit_code;
out_sig:
	sigprocmask(SIG_SETMASK, &old, NULL);
out:
	if (r.pidfd >= 0) {
		syscall(SYS_pidfd_send_signal, r.pidfd, SIGKILL, NULL, 0);
		close(r.pidfd);
	}
	if (r.status_fd >= 0)
		close(r.status_fd);
	close_channel(&r);
	if (r.epfd >= 0)
		close(r.epfd);
	if (r.sigfd >= 0)
		close(r.sigfd);
	if (r.timerfd >= 0)
		close(r.timerfd);
	proto_reader_free(&r.rd);
	sup_replay_clear(&r.replay);
	policy_free(r.policy);
	free(r.starts_ms);
	store_run_clear(&sr);
	return e;
}
