/* Durable approvals and user messages (docs/interaction.md).
 *
 * An `ask` under SUP_APPROVE_DURABLE writes an approval row and the call
 * waits: no reply, and the broker reads nothing more from the agent until the
 * decision (replies are in order). While it waits a 200 ms tick looks at the
 * store (a decision or a message written by another process), the expiry and
 * the idle time after which the child is stopped and the run suspended.
 *
 * Messages are rows in the store. Whatever the supervisor hands the agent is
 * journaled as a pseudo-call (tool "agentd.inbox") so a replayed attempt
 * receives the same messages at the same point of its calls. */
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "supervisor/interact.h"
#include "supervisor/tools/tools.h"

#define IX_TICK_MS		  200
#define IX_IDLE_SUSPEND_DEFAULT_S 30

/* The call that waits for its approval. */
struct ix_pending {
	int attempt;
	json_t *id; /* the agent's request id */
	const struct tool_def *t;
	char *tool;
	json_t *args;
	char hash[AGD_DIGEST_HEX];
	int64_t seq;
	struct policy_result pr; /* its pointers live in the run's policy */
	int64_t since_ns;
	int64_t expires_ms; /* wall clock, 0: never */
	bool unknown;	    /* the rerun of an unknown outcome (journaled intent) */
};

struct sup_ix {
	struct agd_watch w_tick; /* first: the handler finds the struct from it */
	struct sup_run *r;
	struct ix_pending *pending;
	int paused_attempt; /* the channel of this attempt is not being read */
	bool restart_due;   /* a restart message arrived: act from the timer */
	int seen_attempt;
	int64_t attempt_started_ms; /* wall clock when this attempt was first seen here */
	int delivered_attempt;
	json_t *delivered; /* message id -> seq of the journal rows of this attempt */
	/* The store had no queued message for the run at this message version
	 * (store_message_version): no need to look at every call boundary. */
	bool none_queued;
	uint64_t none_version;
};

static struct ix_pending *
pending_free(struct ix_pending *p)
{
	if (!p)
		return NULL;
	json_decref(p->id);
	free(p->tool);
	json_decref(p->args);
	free(p);
	return NULL;
}

/* Answer the waiting call with a refusal (cancel, interrupt): a live call
 * gets its denial journaled, an unknown outcome its intent row finished. */
static void
pending_refuse(struct sup_run *r, struct ix_pending *p, const char *decision, json_t *data)
{
	if (p->unknown)
		sup_call_unknown_refuse(r, p->id, p->seq, PROTO_INTERRUPTED, "interrupted", data);
	else
		sup_call_refuse(r, p->id, p->tool, p->args, p->hash, p->seq, p->pr.rule_id,
				decision, PROTO_INTERRUPTED, "interrupted", data);
}

void
sup_ix_free(struct sup_run *r)
{
	struct sup_ix *ix = r->ix;

	if (!ix)
		return;
	agd_loop_close_watch(r->loop, &ix->w_tick);
	pending_free(ix->pending);
	json_decref(ix->delivered);
	free(ix);
	r->ix = NULL;
}

static void on_tick(struct agd_watch *w, uint32_t events);

static struct sup_ix *
ix_get(struct sup_run *r)
{
	if (!r->ix) {
		struct sup_ix *ix = calloc(1, sizeof(*ix));
		if (!ix)
			return NULL;
		ix->r = r;
		ix->w_tick = (struct agd_watch){
		    timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK), on_tick};
		if (ix->w_tick.fd < 0 || agd_loop_add(r->loop, &ix->w_tick, EPOLLIN) < 0) {
			agd_loop_close_watch(r->loop, &ix->w_tick);
			free(ix);
			return NULL;
		}
		r->ix = ix;
	}
	/* A call of an earlier attempt no longer waits: its child is gone. A
	 * restart message older than this attempt's first boundary is simply
	 * delivered there. */
	if (r->ix->seen_attempt != r->attempt) {
		r->ix->seen_attempt = r->attempt;
		r->ix->attempt_started_ms = agd_wall_ms();
		r->ix->pending = pending_free(r->ix->pending);
	}
	return r->ix;
}

static void
tick_arm(struct sup_ix *ix, int64_t first_ms, int64_t every_ms)
{
	struct itimerspec its = {
	    .it_value = {first_ms / 1000, (first_ms % 1000) * 1000000},
	    .it_interval = {every_ms / 1000, (every_ms % 1000) * 1000000},
	};
	timerfd_settime(ix->w_tick.fd, 0, &its, NULL);
}

bool
sup_ix_waiting(struct sup_run *r)
{
	struct sup_ix *ix = r->ix;

	return ix && ix->pending && ix->pending->attempt == r->attempt && !r->fatal;
}

/* Nothing more is answered: a call waits, the run is paused, or a restart
 * is about to happen. */
bool
sup_ix_blocked(struct sup_run *r)
{
	return sup_ix_waiting(r) || (r->ix && (r->ix->restart_due || r->paused));
}

bool
sup_ix_hold(struct sup_run *r)
{
	struct sup_ix *ix = r->ix;

	if (!sup_ix_blocked(r))
		return false;
	if (ix->paused_attempt != r->attempt) {
		ix->paused_attempt = r->attempt;
		if (r->w_chan.fd >= 0)
			agd_loop_mod(r->loop, &r->w_chan, 0);
	} else if (r->w_chan.fd >= 0) {
		/* Not reading, yet woken: either an event of the batch that
		 * paused us, or the agent hung up (epoll reports that whatever
		 * we ask for). Only the latter closes: the call can no longer be
		 * answered. */
		struct pollfd pfd = {.fd = r->w_chan.fd};
		if (poll(&pfd, 1, 0) > 0 && (pfd.revents & (POLLHUP | POLLERR)))
			sup_broker_close(r);
	}
	return true;
}

/* The wait is over: read the channel again and answer what is buffered. */
static void
unpause(struct sup_run *r)
{
	struct sup_ix *ix = r->ix;

	ix->pending = pending_free(ix->pending);
	if (!ix->restart_due)
		tick_arm(ix, 0, 0);
	if (ix->paused_attempt == r->attempt) {
		ix->paused_attempt = 0;
		if (r->w_chan.fd >= 0)
			agd_loop_mod(r->loop, &r->w_chan, EPOLLIN);
	}
	if (r->w_chan.fd >= 0)
		sup_broker_read(r);
}

/* The pause is over (nothing else blocks): read the channel again. */
static void
resume_reading(struct sup_run *r)
{
	struct sup_ix *ix = r->ix;

	if (!ix || sup_ix_blocked(r))
		return;
	if (ix->paused_attempt == r->attempt) {
		ix->paused_attempt = 0;
		if (r->w_chan.fd >= 0)
			agd_loop_mod(r->loop, &r->w_chan, EPOLLIN);
	}
	if (r->w_chan.fd >= 0)
		sup_broker_read(r);
}

int
sup_run_pause(struct sup_run *r)
{
	if (sup_run_done(r))
		return -EALREADY;
	if (r->cancelling)
		return -ECANCELED;
	/* sup_ix_hold keeps its state in the interaction object. */
	if (!ix_get(r))
		return -ENOMEM;
	if (r->paused)
		return 0;
	/* Kept in the store, so a restart of the daemon does not undo it. */
	int e = store_run_set_status(r->st, r->id, "paused", -1, "");
	if (e < 0)
		return e;
	r->paused = true;
	sup_emit(r, 0, "run.paused", json_object());
	return 0;
}

int
sup_run_resume(struct sup_run *r)
{
	if (sup_run_done(r))
		return -EALREADY;
	if (!r->paused)
		return 0;
	int e = store_run_set_status(r->st, r->id, "running", -1, "");
	if (e < 0)
		return e;
	r->paused = false;
	sup_emit(r, 0, "run.resumed", json_object());
	resume_reading(r);
	return 0;
}

void
sup_ix_cancel(struct sup_run *r)
{
	r->paused = false;
	if (!r->ix)
		return;
	if (sup_ix_waiting(r)) {
		struct ix_pending *p = r->ix->pending;
		/* The approval is moot: the run ends without this call. */
		(void)store_approval_decide(r->st, r->id, p->seq, false, "cancel", "run cancelled",
					    NULL, STORE_SCOPE_ONCE);
		pending_refuse(r, p, "cancelled", json_pack("{s:s}", "reason", "cancelled"));
		unpause(r);
		return;
	}
	resume_reading(r);
}

/* ---- approvals ---- */

static json_t *
refusal_data(const struct policy_result *pr, const char *reason)
{
	return json_pack("{s:s,s:b,s:s?,s:s}", "decision", "ask", "approved", 0, "rule",
			 pr->rule ? pr->rule_id : NULL, "reason", reason);
}

/* Apply a decided approval row to the call (a), answering it. */
static void
apply(struct sup_run *r, const json_t *id, const struct tool_def *t, const char *tool,
      const json_t *args, const char *hash, int64_t seq, const struct policy_result *pr,
      const struct store_approval *a, const char *by_override)
{
	const char *by = by_override ? by_override : a->decided_by;

	switch (a->status) {
	case STORE_APPROVAL_APPROVED: {
		json_t *ev = json_pack("{s:I,s:s,s:s,s:s,s:s}", "seq", (json_int_t)seq, "rule",
				       pr->rule_id, "by", by, "scope",
				       by_override ? "run" : store_approval_scope_name(a->scope),
				       "comment", by_override ? "" : a->comment);
		if (ev && a->edited_args && !by_override)
			json_object_set(ev, "edited_args", a->edited_args);
		if (ev && !by_override && a->scope == STORE_SCOPE_ALWAYS)
			/* Not enforced beyond this run yet: offered as a rule to add. */
			json_object_set_new(ev, "rule_suggestion",
					    json_pack("{s:s,s:s,s:s}", "id", "always-approved",
						      "tool", tool, "decision", "allow"));
		sup_emit(r, seq, "approval.granted", ev);
		bool edited = a->edited_args && !by_override;
		sup_call_execute_live(r, id, t, tool, args, NULL, 0, hash, seq, pr,
				      edited ? "ask:edited" : "ask:approved",
				      edited ? a->edited_args : args, agd_now_ns());
		return;
	}
	case STORE_APPROVAL_DENIED:
		sup_emit(r, seq, "approval.denied",
			 json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)seq, "rule", pr->rule_id,
				   "by", by, "comment", a->comment));
		sup_call_refuse(
		    r, id, tool, args, hash, seq, pr->rule_id, "ask:denied", PROTO_DENIED,
		    "denied by policy",
		    refusal_data(pr, a->comment[0] ? a->comment : "refused by the approver"));
		return;
	case STORE_APPROVAL_EXPIRED:
	default:
		sup_emit(r, seq, "approval.expired",
			 json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "rule", pr->rule_id));
		sup_call_refuse(r, id, tool, args, hash, seq, pr->rule_id, "ask:expired",
				PROTO_DENIED, "denied by policy",
				refusal_data(pr, "the approval expired"));
		return;
	}
}

/* A later ask for a tool approved with scope run (or always) in this run. */
struct scope_find {
	const char *tool;
	int64_t seq;
	bool found;
};

static int
scope_match(const struct store_approval *a, void *ud)
{
	struct scope_find *f = ud;

	/* An unknown outcome's approval covers its rerun only. */
	if (a->scope != STORE_SCOPE_ONCE && a->seq != f->seq && strcmp(a->tool, f->tool) == 0 &&
	    strcmp(a->rule, SUP_UNKNOWN_RULE) != 0) {
		f->found = true;
		return 1;
	}
	return 0;
}

/* The approvers a rule names (none without a rule), as a JSON array. */
static json_t *
rule_approvers(const struct policy_rule *rule)
{
	const char *const *names = rule ? policy_rule_approvers(rule) : NULL;
	json_t *a = json_array();

	for (size_t i = 0; a && names && names[i]; i++)
		json_array_append_new(a, json_string(names[i]));
	return a;
}

/* Record approval row (first writer wins) and read it back as it stands, a
 * pending row past its expiry expired. Fails the run on a store error. */
static int
ask_row(struct sup_run *r, const struct store_approval *row, struct store_approval *a)
{
	int e = store_approval_create(r->st, row);

	if (e == 0)
		sup_emit(r, row->seq, "approval.requested",
			 json_pack("{s:I,s:s,s:O,s:s,s:O,s:s,s:I}", "seq", (json_int_t)row->seq,
				   "tool", row->tool, "args", row->args, "rule", row->rule,
				   "approvers", row->approvers, "reason", row->reason, "expires_ms",
				   (json_int_t)row->expires_ms));
	else if (e != -EEXIST) {
		sup_fail(r, "approval write failed for #%lld: %s", (long long)row->seq,
			 strerror(-e));
		return e;
	}
	/* Asked before (an earlier attempt): the row may hold the decision. */
	e = store_approval_get(r->st, r->id, row->seq, a);
	if (e < 0) {
		sup_fail(r, "approval for #%lld unreadable: %s", (long long)row->seq, strerror(-e));
		return e;
	}
	if (a->status == STORE_APPROVAL_PENDING && a->expires_ms &&
	    agd_wall_ms() >= a->expires_ms) {
		store_approval_clear(a);
		e = store_approval_expire(r->st, r->id, row->seq);
		if ((e < 0 && e != -EALREADY) ||
		    store_approval_get(r->st, r->id, row->seq, a) < 0) {
			sup_fail(r, "approval for #%lld: store failed", (long long)row->seq);
			return -EIO;
		}
	}
	return 0;
}

/* Make the call at seq wait for its pending approval. */
static void
wait_for(struct sup_run *r, struct sup_ix *ix, const json_t *id, const struct tool_def *t,
	 const char *tool, const json_t *args, const char *hash, int64_t seq,
	 const struct policy_result *pr, int64_t expires_ms, bool unknown)
{
	struct ix_pending *p = calloc(1, sizeof(*p));

	if (!p || !(p->tool = strdup(tool))) {
		free(p);
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	p->attempt = r->attempt;
	p->id = json_deep_copy(id);
	p->t = t;
	p->args = json_deep_copy(args);
	memcpy(p->hash, hash, AGD_DIGEST_HEX);
	p->seq = seq;
	p->pr = *pr;
	p->since_ns = agd_now_ns();
	p->expires_ms = expires_ms;
	p->unknown = unknown;
	pending_free(ix->pending);
	ix->pending = p;
	sup_emit(r, seq, "approval.waiting",
		 json_pack("{s:I,s:s,s:I}", "seq", (json_int_t)seq, "tool", tool, "expires_ms",
			   (json_int_t)p->expires_ms));
	tick_arm(ix, IX_TICK_MS, IX_TICK_MS);
}

void
sup_ix_ask(struct sup_run *r, const json_t *id, const struct tool_def *t, const char *tool,
	   const json_t *args, const char *hash, const struct policy_result *pr)
{
	struct sup_ix *ix = ix_get(r);
	struct store_approval a = {0};
	int64_t seq = r->next_seq;
	char h[AGD_DIGEST_HEX];
	int e;

	if (!ix) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	struct scope_find sf = {.tool = tool, .seq = seq};
	e = store_approval_foreach(r->st, r->id, "approved", NULL, scope_match, &sf);
	if (e < 0 && e != 1) {
		sup_fail(r, "approvals unreadable: %s", strerror(-e));
		return;
	}
	if (sf.found) {
		struct store_approval ok = {.status = STORE_APPROVAL_APPROVED, .comment = ""};
		apply(r, id, t, tool, args, hash, seq, pr, &ok, "scope:run");
		return;
	}

	cleanup_json json_t *approvers = rule_approvers(pr->rule);
	int64_t now = agd_wall_ms();
	uint64_t ttl = pr->rule ? policy_rule_expires_ms(pr->rule) : 0;
	struct store_approval row = {
	    .run = r->id,
	    .seq = seq,
	    .tool = (char *)tool,
	    .args = (json_t *)args,
	    .rule = (char *)pr->rule_id,
	    .approvers = approvers,
	    .reason = (char *)pr->reason,
	    .created_ms = now,
	    .expires_ms = ttl ? now + (int64_t)ttl : 0,
	};
	if (ask_row(r, &row, &a) < 0)
		return;
	if (strcmp(a.tool, tool) != 0 || agd_json_hash(store_digest(r->st), a.args, h) < 0 ||
	    strcmp(h, hash) != 0) {
		store_approval_clear(&a);
		sup_call_refuse(r, id, tool, args, hash, seq, pr->rule_id, "ask:mismatch",
				PROTO_DENIED, "denied by policy",
				refusal_data(pr, "the approval at this seq is for another call"));
		return;
	}
	if (a.status != STORE_APPROVAL_PENDING) {
		apply(r, id, t, tool, args, hash, seq, pr, &a, NULL);
		store_approval_clear(&a);
		return;
	}
	wait_for(r, ix, id, t, tool, args, hash, seq, pr, a.expires_ms, false);
	store_approval_clear(&a);
}

/* Apply a decided unknown-outcome approval row (a) to the call at seq. */
static void
apply_unknown(struct sup_run *r, const json_t *id, const struct tool_def *t, int64_t seq,
	      const struct policy_result *pr, const struct store_approval *a)
{
	const char *why = a->comment[0] ? a->comment : "refused by the approver";

	switch (a->status) {
	case STORE_APPROVAL_APPROVED: {
		/* The row's arguments are those the call ran with; the approver
		 * may have edited them for the rerun. */
		struct store_call c = {.seq = seq,
				       .tool = a->tool,
				       .args = a->edited_args ? a->edited_args : a->args,
				       .rule = (char *)pr->rule_id};
		json_t *ev =
		    json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)seq, "rule", SUP_UNKNOWN_RULE,
			      "by", a->decided_by, "comment", a->comment);
		if (ev && a->edited_args)
			json_object_set(ev, "edited_args", a->edited_args);
		sup_emit(r, seq, "approval.granted", ev);
		/* The approval covers one rerun: record that it starts before
		 * the tool runs, so a crash during it is asked again. */
		int e = store_approval_rerun(r->st, r->id, seq, r->attempt);
		if (e < 0) {
			sup_fail(r, "approval write failed for #%lld: %s", (long long)seq,
				 strerror(-e));
			return;
		}
		sup_call_unknown_rerun(r, id, t, &c, pr->path_root, agd_now_ns());
		return;
	}
	case STORE_APPROVAL_DENIED:
		sup_emit(r, seq, "approval.denied",
			 json_pack("{s:I,s:s,s:s,s:s}", "seq", (json_int_t)seq, "rule",
				   SUP_UNKNOWN_RULE, "by", a->decided_by, "comment", a->comment));
		break;
	case STORE_APPROVAL_EXPIRED:
	default:
		sup_emit(r, seq, "approval.expired",
			 json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "rule", SUP_UNKNOWN_RULE));
		why = "the approval expired";
		break;
	}
	sup_call_unknown_refuse(r, id, seq, PROTO_UNKNOWN_OUTCOME, "unknown outcome",
				json_pack("{s:I,s:s,s:b,s:s}", "seq", (json_int_t)seq, "reason",
					  "a crash left this effect's outcome unknown", "approved",
					  0, "comment", why));
}

static bool
unknown_row(const struct store_approval *a)
{
	return strcmp(a->rule, SUP_UNKNOWN_RULE) == 0 &&
	       strncmp(a->reason, SUP_UNKNOWN_REASON, strlen(SUP_UNKNOWN_REASON)) == 0;
}

/* The reason of an unknown outcome's approval: it names the call and the
 * arguments it ran with (the approver decides on it alone) and, when an
 * approved rerun was itself interrupted, the attempt that started it. */
static char *
unknown_reason(const struct store_call *c, const json_t *ran, int rerun_attempt)
{
	cleanup_free char *text = agd_json_canonical(ran);

	if (!text)
		return NULL;
	size_t cut = strlen(text);
	if (cut > 1024) { /* at a UTF-8 character boundary */
		cut = 1024;
		while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
			cut--;
	}
	if (rerun_attempt > 0)
		return agd_asprintf("%s #%lld %s %.*s%s; its approved rerun (attempt %d) was "
				    "interrupted too and may have run again",
				    SUP_UNKNOWN_REASON, (long long)c->seq, c->tool, (int)cut, text,
				    text[cut] ? "..." : "", rerun_attempt);
	return agd_asprintf("%s #%lld %s %.*s%s", SUP_UNKNOWN_REASON, (long long)c->seq, c->tool,
			    (int)cut, text, text[cut] ? "..." : "");
}

void
sup_ix_ask_unknown(struct sup_run *r, const json_t *id, const struct tool_def *t,
		   const struct store_call *c, const struct policy_result *pr)
{
	struct sup_ix *ix = ix_get(r);
	struct store_approval a = {0};
	char h[AGD_DIGEST_HEX];
	int e;

	if (!ix) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	/* What the call ran with: the agent's arguments or an approver's edit
	 * of them (read before this row replaces that approval). */
	cleanup_json json_t *edited = sup_ix_edited_args(r, c);
	const json_t *ran = edited ? edited : c->args;
	cleanup_free char *reason = unknown_reason(c, ran, 0);
	cleanup_json json_t *approvers = rule_approvers(pr->rule);
	int64_t now = agd_wall_ms();
	uint64_t ttl = pr->rule ? policy_rule_expires_ms(pr->rule) : 0;
	struct store_approval row = {
	    .run = r->id,
	    .seq = c->seq,
	    .tool = c->tool,
	    .args = (json_t *)ran,
	    .rule = SUP_UNKNOWN_RULE,
	    .approvers = approvers,
	    .reason = reason,
	    .created_ms = now,
	    .expires_ms = ttl ? now + (int64_t)ttl : 0,
	};
	if (!reason || !approvers) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	if (ask_row(r, &row, &a) < 0)
		return;
	/* An approval covers one run. The row at this seq may be the approval
	 * of the call itself (its rule asked before it ran), or of a rerun that
	 * a crash interrupted too: either way no one has decided on running it
	 * again. Ask again. */
	bool rerun_started = unknown_row(&a) && a.rerun_attempt > 0;
	if ((rerun_started || !unknown_row(&a)) && a.status == STORE_APPROVAL_APPROVED &&
	    strcmp(a.tool, c->tool) == 0) {
		cleanup_json json_t *asked = NULL;
		cleanup_free char *why = NULL;
		if (rerun_started) {
			/* The arguments stay those asked about; the reason names
			 * those the interrupted rerun ran with. */
			asked = json_incref(a.args);
			why = unknown_reason(c, a.edited_args ? a.edited_args : a.args,
					     a.rerun_attempt);
			if (!why) {
				store_approval_clear(&a);
				sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
				return;
			}
			row.args = asked;
			row.reason = why;
		}
		store_approval_clear(&a);
		e = store_approval_reask(r->st, &row);
		if (e < 0) {
			sup_fail(r, "approval write failed for #%lld: %s", (long long)c->seq,
				 strerror(-e));
			return;
		}
		sup_emit(r, c->seq, "approval.requested",
			 json_pack("{s:I,s:s,s:O,s:s,s:O,s:s,s:I}", "seq", (json_int_t)c->seq,
				   "tool", c->tool, "args", row.args, "rule", SUP_UNKNOWN_RULE,
				   "approvers", approvers, "reason", row.reason, "expires_ms",
				   (json_int_t)row.expires_ms));
		if (ask_row(r, &row, &a) < 0)
			return;
	}
	/* Anything else is not this call's: no one has decided on its rerun. */
	bool same_args = agd_json_hash(store_digest(r->st), a.args, h) == 0 &&
			 (strcmp(h, c->args_hash) == 0 ||
			  (c->decision && strcmp(c->decision, "ask:edited") == 0));
	if (!unknown_row(&a) || strcmp(a.tool, c->tool) != 0 || !same_args) {
		store_approval_clear(&a);
		sup_call_unknown_refuse(
		    r, id, c->seq, PROTO_UNKNOWN_OUTCOME, "unknown outcome",
		    json_pack("{s:I,s:s}", "seq", (json_int_t)c->seq, "reason",
			      "a crash left this effect's outcome unknown; the approval at this "
			      "seq is not one for its rerun"));
		return;
	}
	if (a.status != STORE_APPROVAL_PENDING)
		apply_unknown(r, id, t, c->seq, pr, &a);
	else
		wait_for(r, ix, id, t, c->tool, a.args, c->args_hash, c->seq, pr, a.expires_ms,
			 true);
	store_approval_clear(&a);
}

/* Answer the waiting call from its (now decided) approval row. */
static void
resolve_pending(struct sup_run *r)
{
	struct ix_pending *p = r->ix->pending;
	struct store_approval a = {0};

	if (store_approval_get(r->st, r->id, p->seq, &a) < 0) {
		sup_fail(r, "approval for #%lld unreadable", (long long)p->seq);
		return;
	}
	if (a.status != STORE_APPROVAL_PENDING) {
		if (p->unknown)
			apply_unknown(r, p->id, p->t, p->seq, &p->pr, &a);
		else
			apply(r, p->id, p->t, p->tool, p->args, p->hash, p->seq, &p->pr, &a, NULL);
		unpause(r);
	}
	store_approval_clear(&a);
}

json_t *
sup_ix_edited_args(struct sup_run *r, const struct store_call *c)
{
	struct store_approval a = {0};
	json_t *v = NULL;

	if (!c->decision || strcmp(c->decision, "ask:edited") != 0 ||
	    store_approval_get(r->st, r->id, c->seq, &a) < 0)
		return NULL;
	if (a.status == STORE_APPROVAL_APPROVED && a.edited_args)
		v = json_incref(a.edited_args);
	store_approval_clear(&a);
	return v;
}

int
sup_run_decide_scope(struct sup_run *r, int64_t seq, bool approve, const char *by,
		     const char *comment, const json_t *edited_args,
		     enum store_approval_scope scope)
{
	int e = store_approval_decide(r->st, r->id, seq, approve, by, comment, edited_args, scope);

	if (e < 0 && e != -ETIMEDOUT)
		return e;
	/* A live run waiting at seq goes on now; otherwise the stored decision
	 * is found when the call comes again. */
	if (sup_ix_waiting(r) && r->ix->pending->seq == seq)
		resolve_pending(r);
	return e;
}

int
sup_run_decide(struct sup_run *r, int64_t seq, bool approve, const char *by, const char *comment,
	       const json_t *edited_args)
{
	return sup_run_decide_scope(r, seq, approve, by, comment, edited_args, STORE_SCOPE_ONCE);
}

/* ---- messages ---- */

static const char *const mode_names[] = {
    [SUP_MSG_QUEUE] = "queue",
    [SUP_MSG_INTERRUPT] = "interrupt",
    [SUP_MSG_RESTART] = "restart",
    [SUP_MSG_REJECT] = "reject",
};

/* Messages the journal of this attempt's start already shows delivered
 * (a crash came between the journal row and marking the message). */
static int64_t
delivered_at(struct sup_run *r, int64_t msg_id)
{
	struct sup_ix *ix = r->ix;
	char key[32];

	if (ix->delivered_attempt != r->attempt) {
		json_decref(ix->delivered);
		ix->delivered = json_object();
		ix->delivered_attempt = r->attempt;
		for (size_t i = 0; ix->delivered && i < r->replay.n; i++) {
			struct store_call *c = &r->replay.calls[i];
			json_t *msgs;
			size_t k;
			json_t *m;
			if (strcmp(c->tool, SUP_INBOX_TOOL) != 0 || store_call_json(c) < 0)
				continue;
			msgs = json_object_get(c->result, "messages");
			json_array_foreach(msgs, k, m)
			{
				json_t *mid = json_object_get(m, "id");
				if (!json_is_integer(mid))
					continue;
				snprintf(key, sizeof(key), "%lld",
					 (long long)json_integer_value(mid));
				json_object_set_new(ix->delivered, key, json_integer(c->seq));
			}
		}
	}
	snprintf(key, sizeof(key), "%lld", (long long)msg_id);
	json_t *v = json_object_get(ix->delivered, key);
	return json_is_integer(v) ? (int64_t)json_integer_value(v) : 0;
}

static bool
restart_wanted(struct sup_run *r, const struct store_message *m)
{
	return strcmp(m->mode, "restart") == 0 && m->created_ms > r->ix->attempt_started_ms;
}

/* Journal a delivery of msgs (array of {id, text, mode}) as the pseudo-call
 * at the next seq, then mark the messages delivered there. */
static int
journal_delivery(struct sup_run *r, const char *via, json_t *msgs)
{
	cleanup_json json_t *args = json_pack("{s:s}", "via", via);
	cleanup_json json_t *result = json_pack("{s:O}", "messages", msgs);
	int64_t seq = r->next_seq;
	struct store_call c = {
	    .seq = seq,
	    .tool = SUP_INBOX_TOOL,
	    .args = args,
	    .status = STORE_CALL_OK,
	    .result = result,
	    .attempt = r->attempt,
	    .decision = "inbox",
	    .rule = "",
	    .started_ms = agd_wall_ms(),
	};
	size_t i;
	json_t *m;
	int e;

	if (!args || !result)
		return -ENOMEM;
	c.finished_ms = c.started_ms;
	e = store_journal_record(r->st, r->id, &c);
	if (e < 0)
		return e;
	r->next_seq++;
	r->last_seq = seq;
	json_array_foreach(msgs, i, m)(void)
	    store_message_deliver(r->st, r->id, json_integer_value(json_object_get(m, "id")), seq);
	if (json_array_size(msgs))
		sup_emit(r, seq, "message.delivered",
			 json_pack("{s:I,s:s,s:I}", "seq", (json_int_t)seq, "via", via, "count",
				   (json_int_t)json_array_size(msgs)));
	return 0;
}

static json_t *
message_json(const struct store_message *m)
{
	return json_pack("{s:I,s:s,s:s}", "id", (json_int_t)m->id, "text", m->text, "mode",
			 m->mode);
}

/* Queued messages that can be handed over now, as {id, text, mode} (a
 * restart that is still to happen is not one of them). */
static int
deliverable(struct sup_run *r, json_t **ret)
{
	struct store_message *v = NULL;
	size_t n = 0;
	uint64_t version = 0;
	bool versioned = store_message_version(r->st, &version) == 0;
	json_t *out = json_array();

	if (!out)
		return -ENOMEM;
	if (versioned && r->ix->none_queued && r->ix->none_version == version) {
		*ret = out;
		return 0;
	}
	int e = store_message_list_queued(r->st, r->id, &v, &n);
	if (e < 0) {
		json_decref(out);
		return e;
	}
	r->ix->none_queued = versioned && n == 0;
	r->ix->none_version = version;
	for (size_t i = 0; i < n; i++) {
		int64_t at = delivered_at(r, v[i].id);
		if (at) {
			(void)store_message_deliver(r->st, r->id, v[i].id, at);
			continue;
		}
		if (restart_wanted(r, &v[i])) {
			r->ix->restart_due = true;
			tick_arm(r->ix, 1, IX_TICK_MS);
			continue;
		}
		json_array_append_new(out, message_json(&v[i]));
	}
	store_messages_free(v, n);
	*ret = out;
	return 0;
}

static void
send_messages(struct sup_run *r, const json_t *msgs)
{
	size_t i;
	json_t *m;

	json_array_foreach(msgs, i, m)
	{
		json_t *text = json_object_get(m, "text"), *mode = json_object_get(m, "mode");
		json_t *mid = json_object_get(m, "id");
		if (!json_is_string(text) || !json_is_string(mode) || !json_is_integer(mid))
			continue;
		sup_send(
		    r, proto_notification("agentd/message", json_pack("{s:O,s:O,s:O}", "id", mid,
								      "text", text, "mode", mode)));
	}
}

/* The first unconsumed journal row if it is a delivery made via `via`. */
static const struct store_call *
replay_delivery(struct sup_run *r, const char *via)
{
	struct store_call *p = sup_replay_pending(&r->replay);
	const char *v;
	int e;

	if (!p || strcmp(p->tool, SUP_INBOX_TOOL) != 0)
		return NULL;
	/* The journal was loaded without the values: parse this row's. */
	if ((e = store_call_json(p)) < 0) {
		sup_fail(r, "journal row #%lld unreadable: %s", (long long)p->seq, strerror(-e));
		return NULL;
	}
	v = json_string_value(json_object_get(p->args, "via"));
	if (!v || strcmp(v, via) != 0)
		return NULL;
	sup_replay_consume(&r->replay, (size_t)(p - r->replay.calls));
	if (p->seq > r->last_seq)
		r->last_seq = p->seq;
	return p;
}

bool
sup_ix_boundary(struct sup_run *r, const char *method)
{
	const struct store_call *p;
	json_t *msgs = NULL;

	if (!ix_get(r))
		return true;
	if (sup_replay_pending(&r->replay)) {
		/* Replaying: hand over exactly what the first attempt got here. */
		while (strcmp(method, "agentd/inbox") != 0 &&
		       (p = replay_delivery(r, "notification")))
			send_messages(r, json_object_get(p->result, "messages"));
		return true;
	}
	if (deliverable(r, &msgs) < 0)
		return true; /* a read failure only delays delivery */
	if (r->ix->restart_due) {
		/* This request belongs to the attempt about to be rolled back. */
		json_decref(msgs);
		return false;
	}
	if (strcmp(method, "agentd/inbox") == 0) {
		json_decref(msgs); /* its answer carries them */
		return true;
	}
	if (json_array_size(msgs) > 0) {
		int e = journal_delivery(r, "notification", msgs);
		if (e < 0)
			sup_fail(r, "journal write failed for a message delivery: %s",
				 strerror(-e));
		else
			send_messages(r, msgs);
	}
	json_decref(msgs);
	return true;
}

void
sup_ix_inbox(struct sup_run *r, const json_t *id, json_t *params)
{
	const struct store_call *p;
	json_t *msgs = NULL;

	if (params && (!json_is_object(params) || json_object_size(params) != 0)) {
		sup_reply_error(r, id, PROTO_INVALID_PARAMS, "agentd/inbox takes no parameters",
				NULL);
		return;
	}
	if (!ix_get(r)) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	if (sup_replay_pending(&r->replay)) {
		p = replay_delivery(r, "request");
		msgs = p ? json_object_get(p->result, "messages") : NULL;
		sup_send(r, proto_result(id, json_pack("{s:O}", "messages",
						       json_is_array(msgs) ? msgs : json_array())));
		return;
	}
	if (deliverable(r, &msgs) < 0) {
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "messages unreadable", NULL);
		return;
	}
	/* Journaled even when empty: a replay must see the same empty answer. */
	int e = journal_delivery(r, "request", msgs);
	if (e < 0) {
		json_decref(msgs);
		sup_fail(r, "journal write failed for a message delivery: %s", strerror(-e));
		return;
	}
	sup_send(r, proto_result(id, json_pack("{s:o}", "messages", msgs)));
}

/* Answer the waiting call with -32003 carrying message m. */
static void
interrupt_pending(struct sup_run *r, const struct store_message *m)
{
	struct ix_pending *p = r->ix->pending;

	/* The approval is moot: the call is answered, and a replay takes the
	 * answer from the journal. */
	(void)store_approval_decide(r->st, r->id, p->seq, false, "interrupt", m->text, NULL,
				    STORE_SCOPE_ONCE);
	sup_emit(r, p->seq, "message.interrupted",
		 json_pack("{s:I,s:I}", "seq", (json_int_t)p->seq, "message", (json_int_t)m->id));
	int64_t seq = p->seq;
	pending_refuse(r, p, "interrupted",
		       json_pack("{s:s,s:I}", "message", m->text, "id", (json_int_t)m->id));
	(void)store_message_deliver(r->st, r->id, m->id, seq);
	unpause(r);
}

/* Roll back to the last checkpoint and start a new attempt, which gets the
 * queued restart message first thing. The discarded journal rows are kept
 * in a journal.discarded event (the audit trail). */
static void
restart_from_checkpoint(struct sup_run *r)
{
	struct store_call *calls = NULL;
	cleanup_json json_t *state = NULL;
	int64_t after = 0;
	size_t n = 0;
	int e;

	r->ix->restart_due = false;
	e = store_state_load(r->st, r->id, &state, &after);
	if (e < 0 && e != -ENOENT) {
		sup_fail(r, "restart: state unreadable: %s", strerror(-e));
		return;
	}
	if (e == -ENOENT)
		after = 0;
	e = store_journal_load(r->st, r->id, &calls, &n);
	if (e < 0) {
		sup_fail(r, "restart: journal unreadable: %s", strerror(-e));
		return;
	}
	json_t *gone = json_array();
	for (size_t i = 0; gone && i < n; i++) {
		const struct store_call *c = &calls[i];
		if (c->seq <= after)
			continue;
		json_array_append_new(gone, json_pack("{s:I,s:s,s:O,s:s,s:i,s:s,s:O?}", "seq",
						      (json_int_t)c->seq, "tool", c->tool, "args",
						      c->args, "args_hash", c->args_hash, "status",
						      (int)c->status, "decision", c->decision,
						      "result", c->result));
	}
	store_calls_free(calls, n);
	sup_emit(r, 0, "journal.discarded",
		 json_pack("{s:I,s:o}", "after_seq", (json_int_t)after, "calls", gone));
	e = store_journal_truncate(r->st, r->id, after);
	if (e == 0)
		e = store_approval_discard(r->st, r->id, after);
	if (e < 0) {
		sup_fail(r, "restart: journal truncate failed: %s", strerror(-e));
		return;
	}
	r->ix->pending = pending_free(r->ix->pending);
	sup_emit(r, 0, "run.restarting",
		 json_pack("{s:I,s:s}", "after_seq", (json_int_t)after, "reason", "user message"));
	sup_restart_now(r);
}

/* Look at queued messages while a call waits: interrupt, restart, reject. */
static void
poll_messages(struct sup_run *r)
{
	struct store_message *v = NULL;
	size_t n = 0;

	if (store_message_list_queued(r->st, r->id, &v, &n) < 0)
		return;
	for (size_t i = 0; i < n && sup_ix_waiting(r); i++) {
		if (strcmp(v[i].mode, "interrupt") == 0)
			interrupt_pending(r, &v[i]);
		else if (restart_wanted(r, &v[i]))
			r->ix->restart_due = true;
		else if (strcmp(v[i].mode, "reject") == 0)
			(void)store_message_reject(r->st, r->id, v[i].id);
	}
	store_messages_free(v, n);
}

static void
suspend(struct sup_run *r, int idle_s)
{
	struct ix_pending *p = r->ix->pending;
	char why[512];

	snprintf(why, sizeof(why),
		 "suspended waiting for approval of call #%lld (%s); decide with `agentd approve "
		 "%s %lld`, then `agentd resume %s`",
		 (long long)p->seq, p->tool, r->id, (long long)p->seq, r->id);
	sup_emit(r, p->seq, "approval.suspended",
		 json_pack("{s:I,s:s,s:i}", "seq", (json_int_t)p->seq, "tool", p->tool, "idle_s",
			   idle_s));
	r->ix->pending = pending_free(r->ix->pending);
	tick_arm(r->ix, 0, 0);
	sup_suspend(r, why);
}

static void
on_tick(struct agd_watch *w, uint32_t events)
{
	struct sup_ix *ix = (struct sup_ix *)w;
	struct sup_run *r = ix->r;
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) < 0)
		return;
	if (sup_run_done(r)) {
		tick_arm(ix, 0, 0);
		return;
	}
	if (sup_ix_waiting(r)) {
		struct ix_pending *p;
		int idle_s = r->opt.approval_idle_suspend_s ? r->opt.approval_idle_suspend_s
							    : IX_IDLE_SUSPEND_DEFAULT_S;
		/* A decision another process stored, or the expiry. */
		resolve_pending(r);
		/* Answering it may have let the agent ask again: a new call. */
		p = ix->pending;
		if (sup_ix_waiting(r) && p->expires_ms && agd_wall_ms() >= p->expires_ms) {
			(void)store_approval_expire(r->st, r->id, p->seq);
			resolve_pending(r);
		}
		if (sup_ix_waiting(r))
			poll_messages(r);
		if (sup_ix_waiting(r) && !ix->restart_due && idle_s > 0 &&
		    agd_now_ns() - ix->pending->since_ns >= (int64_t)idle_s * 1000000000) {
			suspend(r, idle_s);
			return;
		}
	}
	if (ix->restart_due && (r->state == SUP_ST_CHILD || r->state == SUP_ST_BACKOFF) &&
	    !sup_batch_busy(r))
		restart_from_checkpoint(r);
	else if (!sup_ix_waiting(r) && !ix->restart_due)
		tick_arm(ix, 0, 0);
}

int
sup_run_message(struct sup_run *r, const char *text, enum sup_msg_mode mode)
{
	struct store_message m = {0};
	int64_t id = 0;
	int e;

	if ((unsigned)mode >= ARRAY_SIZE(mode_names))
		return -EINVAL;
	if (!ix_get(r))
		return -ENOMEM;
	e = store_message_add(r->st, r->id, text, mode_names[mode], &id);
	if (e < 0)
		return e;
	bool waiting = sup_ix_waiting(r) && !sup_run_done(r);
	switch (mode) {
	case SUP_MSG_REJECT:
		if (waiting) {
			(void)store_message_reject(r->st, r->id, id);
			sup_emit(r, 0, "message.rejected",
				 json_pack("{s:I}", "id", (json_int_t)id));
			return -EBUSY;
		}
		break;
	case SUP_MSG_INTERRUPT:
		if (waiting) {
			m = (struct store_message){.id = id, .text = (char *)text};
			interrupt_pending(r, &m);
		}
		break;
	case SUP_MSG_RESTART:
		/* Between attempts too: the next one starts now, rolled back. A
		 * call whose tool runs on a worker lands first (its outcome is
		 * journaled, then rolled back with the rest): the tick restarts. */
		if (sup_batch_busy(r)) {
			r->ix->restart_due = true;
			tick_arm(r->ix, IX_TICK_MS, IX_TICK_MS);
		} else if (r->state == SUP_ST_CHILD || r->state == SUP_ST_BACKOFF) {
			restart_from_checkpoint(r);
		}
		break;
	case SUP_MSG_QUEUE:
		break;
	}
	sup_emit(r, 0, "message.received",
		 json_pack("{s:I,s:s}", "id", (json_int_t)id, "mode", mode_names[mode]));
	return 0;
}
