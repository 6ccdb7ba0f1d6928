/* tools/call: replay match, policy, approval, journal, execution.
 *
 * A live call: the policy decides (deny / ask / allow); a denial is journaled
 * and answered; otherwise an intent row is committed unless the tool is pure,
 * the tool runs, its result is committed, and only then is it answered.
 * A call matching a journaled one is answered from the journal. */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/interact.h"
#include "supervisor/internal.h"
#include "supervisor/tools/tools.h"

/* The MCP result for a stored outcome, tagged with its seq (and replay flag). */
static json_t *
tool_reply(const json_t *content, bool is_error, int64_t seq, bool replayed, bool text)
{
	json_t *res = proto_tool_result(json_deep_copy(content), is_error, text);
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

static bool
ask_tty(struct sup_run *r, int64_t seq, const char *tool, const json_t *args, const char *rule)
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
approve(struct sup_run *r, int64_t seq, const char *tool, const json_t *args, const char *rule,
	const char **ret_by)
{
	switch (r->opt.approval) {
	case SUP_APPROVE_ALL:
		*ret_by = "--approve";
		return true;
	case SUP_DENY_ALL:
		*ret_by = "--deny";
		return false;
	case SUP_APPROVE_ASK_TTY:
		break;
	case SUP_APPROVE_DURABLE:
		/* Never: durable asks wait for their approval row (interact.c),
		 * and a daemon's loop must never wait on a terminal. */
		*ret_by = "durable approvals";
		return false;
	}
	*ret_by = "tty";
	return ask_tty(r, seq, tool, args, rule);
}

void
sup_show_call(struct sup_run *r, int64_t seq, const char *tool, const char *decision,
	      const char *rule, const char *outcome, bool replayed, int64_t dur_us)
{
	if (!r->opt.on_call)
		return;
	struct sup_call_line c = {seq, tool, decision, rule, outcome, replayed, dur_us};
	r->opt.on_call(r->id, r->attempt, &c, r->opt.event_ud);
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

int
sup_call_job(struct sup_run *r, const struct tool_def *t, const json_t *args, int64_t seq,
	     const char *path_root, enum tool_class cls, struct sup_job **ret_job)
{
	cleanup_free char *key = agd_asprintf("%s:%lld", r->uid, (long long)seq);
	struct tool_ctx ctx = {
	    .run_id = r->id,
	    .seq = seq,
	    .cwd = r->cwd,
	    .path_root = path_root,
	    .idempotency_key = key,
	    .default_timeout_ms = SUP_TOOL_TIMEOUT_MS,
	    .max_result_bytes = SUP_MAX_RESULT_BYTES,
	    /* Egress to private addresses only where the policy names them. */
	    .deny_private_addresses = !sup_egress_named(r, t->name, args),
	    .cost_header = policy_cost_header(r->policy),
	};
	json_t *refused = NULL;
	int e;

	if (!key)
		return -ENOMEM;
	/* Secrets are resolved only into the copy the tool runs with. */
	cleanup_json json_t *resolved = NULL;
	e = sup_secrets_apply(r, t->name, args, &resolved, &refused);
	if (e == 0)
		e = sup_retry_job(r, t, resolved ? resolved : args, cls, &ctx, ret_job);
	if (e < 0) {
		json_decref(refused);
		return e;
	}
	if (refused) { /* answered without running */
		(*ret_job)->content = refused;
		(*ret_job)->is_error = true;
		(*ret_job)->done = true;
	}
	return 0;
}

int
sup_call_job_done(struct sup_run *r, struct sup_job *j, json_t **ret_content, bool *ret_is_error)
{
	sup_job_emit(r, j);
	if (j->err < 0)
		return j->err;
	if (sup_secrets_redact(r, j->content) < 0)
		return -ENOMEM;
	*ret_content = steal_ptr(&j->content);
	*ret_is_error = j->is_error;
	return 0;
}

/* Journal a refused live call at seq and answer it with `code` (PROTO_DENIED,
 * PROTO_INTERRUPTED) and data (stolen). */
void
sup_call_refuse(struct sup_run *r, const json_t *id, const char *tool, const json_t *args,
		const char *hash, int64_t seq, const char *rule_id, const char *decision, int code,
		const char *message, json_t *data)
{
	json_t *err = json_pack("{s:i,s:s,s:O}", "code", code, "message", message, "data", data);
	struct store_call c = {
	    .seq = seq,
	    .tool = (char *)tool,
	    .args = (json_t *)args,
	    .status = STORE_CALL_DENIED,
	    .result = err,
	    .attempt = r->attempt,
	    .decision = (char *)decision,
	    .rule = (char *)rule_id,
	    .started_ms = agd_wall_ms(),
	};
	int e;

	memcpy(c.args_hash, hash, AGD_DIGEST_HEX);
	c.finished_ms = c.started_ms;
	e = store_journal_record(r->st, r->id, &c);
	json_decref(err);
	if (e < 0) {
		json_decref(data);
		sup_fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
		return;
	}
	r->next_seq++;
	r->last_seq = seq;
	r->live_calls++;
	sup_reply_error(r, id, code, message, data);
	sup_show_call(r, seq, tool, decision, rule_id, "denied", false, 0);
}

/* Run an allowed live call at seq and answer it: intent unless pure, the tool
 * on exec_args (the agent's args, or an approver's edit of them), result,
 * reply, all through the group commit (batch.c). The journal row keeps the
 * agent's args and hash so a replay of the same call still matches it. */
void
sup_call_execute_live(struct sup_run *r, const json_t *id, const struct tool_def *t,
		      const char *tool, const json_t *args, char *args_text, size_t args_len,
		      const char *hash, int64_t seq, const struct policy_result *pr,
		      const char *decision, const json_t *exec_args, int64_t t0)
{
	int e = sup_batch_add(r, id, t, args, args_text, args_len, hash, seq, pr, decision,
			      exec_args, t0, false);

	if (e < 0) {
		sup_fail(r, "cannot queue #%lld: %s", (long long)seq, strerror(-e));
		return;
	}
	r->next_seq++;
	r->last_seq = seq;
	r->live_calls++;
}

/* args_text (taken) is args' canonical text, args_len its length. */
static void
do_live_call(struct sup_run *r, const json_t *id, const struct tool_def *t, const char *tool,
	     const json_t *args, char *args_text, size_t args_len, const char *hash)
{
	cleanup_free char *text = args_text;
	struct policy_result pr;
	int64_t seq = r->next_seq;
	int64_t t0 = agd_now_ns();
	const struct policy_limits *lim = policy_limits(r->policy);
	const char *decision = "allow";

	if (sup_policy_eval(r, tool, args, &pr) < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "policy evaluation failed", NULL);
		return;
	}
	char limit[64], limit_rule[80];
	if (pr.decision != POLICY_DENY &&
	    sup_budget_check(r, tool, args, args_len, limit, sizeof(limit), pr.reason,
			     sizeof(pr.reason)) == 1) {
		snprintf(limit_rule, sizeof(limit_rule), "limits.%s", limit);
		pr.rule_id = limit_rule;
		if (!lim->ask_on_limit) {
			sup_refuse_limit(r, id, tool, args, hash, seq, limit, pr.reason);
			return;
		}
		pr.decision = POLICY_ASK; /* "on_limit": "ask" */
	} else if (sup_budget_charge(r, tool, args, args_len) < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}

	if (pr.decision == POLICY_ASK && r->opt.approval == SUP_APPROVE_DURABLE) {
		/* A durable approval: the call waits (interact.c). */
		sup_ix_ask(r, id, t, tool, args, hash, &pr);
		return;
	}
	bool refused = pr.decision == POLICY_DENY;
	const char *by = NULL;
	if (pr.decision == POLICY_ASK) {
		sup_emit(r, seq, "approval.requested",
			 json_pack("{s:I,s:s,s:O,s:s}", "seq", (json_int_t)seq, "tool", tool,
				   "args", args, "rule", pr.rule_id));
		refused = !approve(r, seq, tool, args, pr.rule_id, &by);
		decision = refused ? "ask:denied" : "ask:approved";
		sup_emit(r, seq, refused ? "approval.denied" : "approval.granted",
			 json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)seq, "rule", pr.rule_id,
				   "by", by));
	}
	if (refused) {
		bool asked = pr.decision == POLICY_ASK;
		json_t *data = json_pack("{s:s,s:s?,s:s}", "decision", asked ? "ask" : "deny",
					 "rule", pr.rule ? pr.rule_id : NULL, "reason",
					 asked ? "refused by the approver" : pr.reason);
		if (asked && data)
			json_object_set_new(data, "approved", json_false());
		if (!pr.rule && !asked && data)
			json_object_set_new(data, "reason", json_string(pr.reason));
		/* What rule would have allowed it, for the agent, the journal row
		 * and the audit record. */
		if (!pr.rule && !asked && data)
			json_object_set_new(data, "suggestion",
					    policy_suggest_rule(tool, args, r->cwd));
		sup_call_refuse(r, id, tool, args, hash, seq, pr.rule_id,
				asked ? "ask:denied" : "deny", PROTO_DENIED, "denied by policy",
				data);
		return;
	}
	sup_call_execute_live(r, id, t, tool, args, steal_ptr(&text), args_len, hash, seq, &pr,
			      decision, args, t0);
}

/* A journaled call whose outcome a crash left unknown (intent, no result). */
static void
do_unknown_outcome(struct sup_run *r, const json_t *id, const struct tool_def *t,
		   struct store_call *c)
{
	enum tool_class cls;
	struct policy_result pr;
	int64_t t0 = agd_now_ns();
	const char *by = "class";
	int e = store_call_json(c); /* the journal was loaded without the values */

	if (e < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "journal row unreadable", NULL);
		sup_fail(r, "journal row #%lld unreadable: %s", (long long)c->seq, strerror(-e));
		return;
	}
	cls = t->classify(c->args);
	if (sup_policy_eval(r, c->tool, c->args, &pr) < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "policy evaluation failed", NULL);
		return;
	}
	sup_emit(r, c->seq, "call.unknown_outcome",
		 json_pack("{s:I,s:s,s:s}", "seq", (json_int_t)c->seq, "tool", c->tool, "class",
			   cls == TOOL_EFFECT ? "effect" : "idempotent"));
	/* pure and idempotent calls are rerun (the same idempotency key is sent);
	 * an effect per its on_unknown action: by default only when a human confirms. */
	enum policy_on_unknown act =
	    cls == TOOL_EFFECT ? sup_on_unknown(r, c->tool, c->args) : POLICY_UNKNOWN_RETRY;
	if (act == POLICY_UNKNOWN_FAIL) {
		sup_reply_error(r, id, PROTO_UNKNOWN_OUTCOME, "unknown outcome", NULL);
		sup_fail(r,
			 "#%lld %s: a crash left this effect's outcome unknown (on_unknown: fail)",
			 (long long)c->seq, c->tool);
		return;
	}
	if (act == POLICY_UNKNOWN_ASK && r->opt.approval == SUP_APPROVE_DURABLE) {
		/* A durable approval of the rerun: the call waits (interact.c). */
		sup_ix_ask_unknown(r, id, t, c, &pr);
		return;
	}
	if (act == POLICY_UNKNOWN_SKIP ||
	    (act == POLICY_UNKNOWN_ASK &&
	     !approve(r, c->seq, c->tool, c->args, "on_unknown", &by))) {
		sup_call_unknown_refuse(r, id, c->seq, PROTO_UNKNOWN_OUTCOME, "unknown outcome",
					json_pack("{s:I,s:s}", "seq", (json_int_t)c->seq, "reason",
						  "a crash left this effect's outcome unknown"));
		return;
	}
	sup_call_unknown_rerun(r, id, t, c, pr.path_root, t0);
}

void
sup_call_unknown_refuse(struct sup_run *r, const json_t *id, int64_t seq, int code,
			const char *message, json_t *data)
{
	json_t *err = json_pack("{s:i,s:s,s:O}", "code", code, "message", message, "data", data);
	int e = store_journal_finish(r->st, r->id, seq, STORE_CALL_DENIED, err, agd_wall_ms());

	json_decref(err);
	if (e < 0) {
		json_decref(data);
		sup_fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
		return;
	}
	sup_reply_error(r, id, code, message, data);
}

void
sup_call_unknown_rerun(struct sup_run *r, const json_t *id, const struct tool_def *t,
		       const struct store_call *c, const char *path_root, int64_t t0)
{
	/* An approver's edit replaced the arguments this call runs with. */
	cleanup_json json_t *edited = sup_ix_edited_args(r, c);
	struct policy_result pr = {.rule_id = c->rule, .path_root = path_root};
	/* Through the group commit like a live call (its tool on a worker
	 * under agentd serve), minus the intent: the journal has it. */
	int e = sup_batch_add(r, id, t, c->args, NULL, 0, c->args_hash, c->seq, &pr, "rerun",
			      edited ? edited : c->args, t0, true);

	if (e < 0)
		sup_fail(r, "cannot queue the rerun of #%lld: %s", (long long)c->seq, strerror(-e));
}

static void
do_replayed_call(struct sup_run *r, const json_t *id, struct store_call *c)
{
	r->replayed++;
	if (!r->first_replayed)
		r->first_replayed = c->seq;
	r->last_replayed = c->seq;
	sup_show_call(r, c->seq, c->tool, c->decision, c->rule, outcome_name(c->status), true, 0);
	if (c->compacted) {
		/* Retention dropped this outcome: nothing can answer it. Only a
		 * re-execution that ignores the saved state gets here. */
		sup_fail(r,
			 "call #%lld was compacted by retention and cannot be replayed; resume "
			 "from the saved state (use_state)",
			 (long long)c->seq);
		return;
	}
	/* The stored text answers an OK or ERROR row as it is; a denial's
	 * error, or a frame that could not be built, needs the value. */
	char *frame = NULL;
	size_t len = 0;
	if (c->status != STORE_CALL_DENIED && c->result_text &&
	    proto_stored_result_frame(id, c->result_text, c->result_len,
				      c->status == STORE_CALL_ERROR, c->seq, true, r->call_text,
				      &frame, &len) == 0) {
		sup_send_frame(r, frame, len);
		return;
	}
	int e = store_call_json(c);
	if (e < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "journal row unreadable", NULL);
		sup_fail(r, "journal row #%lld unreadable: %s", (long long)c->seq, strerror(-e));
		return;
	}
	if (c->status == STORE_CALL_DENIED) {
		json_t *code = json_object_get(c->result, "code");
		json_t *msg = json_object_get(c->result, "message");
		json_t *data = json_object_get(c->result, "data");
		sup_reply_error(
		    r, id, json_is_integer(code) ? (int)json_integer_value(code) : PROTO_DENIED,
		    json_is_string(msg) ? json_string_value(msg) : "denied",
		    data ? json_deep_copy(data) : NULL);
		return;
	}
	sup_send(r, proto_result(id, tool_reply(c->result, c->status == STORE_CALL_ERROR, c->seq,
						true, r->call_text)));
}

void
sup_tools_call(struct sup_run *r, const json_t *id, json_t *params)
{
	const char *tool = NULL;
	json_t *args = NULL, *meta = NULL;
	json_error_t jerr;
	char hash[AGD_DIGEST_HEX];

	/* A cancelled run runs nothing more; the agent sees why and may exit. */
	if (r->cancelling) {
		sup_reply_error(r, id, PROTO_INTERRUPTED, "interrupted",
				json_pack("{s:s}", "reason", "cancelled"));
		return;
	}
	if (!params ||
	    json_unpack_ex(params, &jerr, JSON_STRICT, "{s:s,s?o,s?o}", "name", &tool, "arguments",
			   &args, "_meta", &meta) < 0 ||
	    (args && !json_is_object(args)) || (meta && !json_is_object(meta))) {
		sup_reply_error(r, id, PROTO_INVALID_PARAMS,
				"tools/call needs {\"name\": string, \"arguments\": object}", NULL);
		return;
	}
	/* Only false turns the text block off: MCP's SHOULD is the default. */
	r->call_text = !json_is_false(json_object_get(meta, "agentd/text"));
	cleanup_json json_t *empty = args ? NULL : json_object();
	if (!args)
		args = empty;
	const struct tool_def *t = tools_find(tool);
	if (!t) {
		sup_reply_error(r, id, PROTO_INVALID_PARAMS, "unknown tool",
				json_pack("{s:s}", "tool", tool));
		return;
	}
	/* Encoded once: hashed here, journaled as is by a live call. */
	cleanup_free char *args_text = NULL;
	size_t args_len = 0;
	int e = store_json_text(args, &args_text, &args_len);
	if (e < 0) {
		if (e == -ENOMEM)
			sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		else
			sup_reply_error(r, id, PROTO_INVALID_PARAMS, "arguments too large", NULL);
		return;
	}
	agd_digest_hex(store_digest(r->st), args_text, args_len, hash);

	ssize_t i = sup_replay_match(&r->replay, tool, hash);
	if (i >= 0) {
		struct store_call *c = &r->replay.calls[i];
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
		if (r->opt.on_divergence == SUP_DIVERGE_LIVE) {
			e = store_journal_truncate(r->st, r->id, p->seq - 1);
			if (e < 0) {
				sup_fail(r, "journal truncate failed: %s", strerror(-e));
				return;
			}
			sup_emit(
			    r, p->seq, "replay.diverged",
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
			sup_emit(r, p->seq, "replay.diverged", json_incref(data));
			sup_reply_error(r, id, PROTO_DIVERGED, "replay diverged from the journal",
					data);
			sup_fail(r,
				 "replay diverged at #%lld: the journal has %s (args %.12s), the "
				 "agent called %s (args %.12s)",
				 (long long)p->seq, p->tool, p->args_hash, tool, hash);
			return;
		}
	}
	do_live_call(r, id, t, tool, args, steal_ptr(&args_text), args_len, hash);
}
