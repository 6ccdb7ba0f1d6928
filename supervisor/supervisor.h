/* A run's life: spawn the sandboxed child, broker its calls (policy, journal,
 * tools, replay), restart it after a crash. One run per supervisor object; all
 * work happens on the caller's thread in one epoll loop. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/loop.h"
#include "policy/policy.h"
#include "store/store.h"

enum sup_approval {
	SUP_APPROVE_ASK_TTY = 0, /* prompt on /dev/tty; deny when there is none */
	SUP_APPROVE_ALL = 1,	 /* --approve */
	SUP_DENY_ALL = 2,	 /* --deny */
	/* agentd serve: an `ask` creates a durable approval row in the store and the
	 * call waits; sup_run_decide (or a decision stored while the run was
	 * suspended) lets it go on. After approval_idle_suspend_s of waiting the
	 * child is stopped and the run ends "suspended" (see sup_run_result). */
	SUP_APPROVE_DURABLE = 3,
};

/* How a user message reaches a running run (DESIGN.md, Interaction). */
enum sup_msg_mode {
	SUP_MSG_QUEUE = 0,     /* delivered at the next call boundary / agentd/inbox */
	SUP_MSG_INTERRUPT = 1, /* the pending call returns -32003 carrying the message */
	SUP_MSG_RESTART = 2,   /* roll back to the last checkpoint, restart with the message */
	SUP_MSG_REJECT = 3,    /* refused (-EBUSY) while a call is in flight */
};

/* How a journaled call that must be recorded is handled after a mismatch on replay. */
enum sup_divergence {
	SUP_DIVERGE_FAIL = 0, /* fail the run naming the seq (default) */
	SUP_DIVERGE_LIVE = 1, /* truncate the journal there and go live */
};

/* Receives every event as it is stored; used by `agentd run` to print the timeline. */
typedef void (*sup_event_fn)(const char *run_id, int attempt, int64_t seq, const char *type,
			     const json_t *data, void *ud);

/* A brokered call as the live timeline shows it. Never stored: the call's
 * journal row is its record. */
struct sup_call_line {
	int64_t seq;
	const char *tool, *decision, *rule; /* rule: NULL or "" for none */
	const char *outcome;		    /* "ok", "error", "denied", "unknown" */
	bool replayed;
	int64_t duration_us; /* shown for a live call that ran */
};

/* Receives each call as it is answered; used by `agentd run` to print it. */
typedef void (*sup_call_fn)(const char *run_id, int attempt, const struct sup_call_line *c,
			    void *ud);

struct sup_run;
/* Group commit (docs/durability.md): runs that share a batch share their
 * journal commits. A batch belongs to one loop and one store; it commits
 * after each batch of events the loop dispatches. Free it after its runs. */
struct sup_batch;
/* workers > 0: that many tool workers (threads, started with the first call
 * that needs one) run the tools that may block, so the loop goes on
 * meanwhile; 0: every tool runs on the loop thread. NULL on ENOMEM. Freeing
 * waits for the tools that are running. */
struct sup_batch *sup_batch_new(struct agd_loop *loop, struct store *st, int workers);
struct sup_batch *sup_batch_free(struct sup_batch *b);
/* Its tool workers, and the calls handed to them and not yet back. */
void sup_batch_workers(const struct sup_batch *b, int *ret_workers, size_t *ret_busy);

/* Called once when a run reaches a final state (succeeded, failed, interrupted).
 * It must not free the run: free it after the current loop iteration. */
typedef void (*sup_done_fn)(struct sup_run *r, void *ud);

struct sup_options {
	enum sup_approval approval;
	enum sup_divergence on_divergence;
	const char *sdk_dir; /* host dir bound at /opt/agentd (NULL: none) */
	uid_t sandbox_uid;   /* root mode only */
	gid_t sandbox_gid;
	size_t max_frame;	  /* 0: PROTO_MAX_FRAME_DEFAULT */
	sup_event_fn on_event;	  /* may be NULL */
	sup_call_fn on_call;	  /* may be NULL */
	void *event_ud;		  /* for both */
	int stdout_fd, stderr_fd; /* the agent's stdout/stderr (-1: inherit ours) */
	sup_done_fn on_done;	  /* may be NULL */
	void *done_ud;
	/* SUP_APPROVE_DURABLE: seconds a call may wait for its approval before
	 * the child is stopped and the run suspended; 0: 30 s, negative: never. */
	int approval_idle_suspend_s;
	/* JSON {"name": "value"} for the policy's secrets, mode 0600 (NULL: only
	 * AGENTD_SECRET_<NAME> from the environment). */
	const char *secrets_file;
	/* A delegated cgroup v2 directory the runs' cgroups are made in (NULL:
	 * agentd's own cgroup); from AGENTD_CGROUP_PARENT. */
	const char *cgroup_parent;
	/* The group commit this run joins (the loop and store must be the run's);
	 * NULL: one of its own. */
	struct sup_batch *batch;
	/* Automatic retention for runs whose durable options set no
	 * keep_states (agentd serve's "keep_states"); 0: none. */
	int keep_states;
};

/* The immutable description of a run, stored as the run's spec:
 * {"uid":"<32 hex>","argv":[...],"cwd":"/abs","workspace":"/abs","policy":{v1 doc},
 *  "max_restarts":5,"restart_window_s":60}. The uid is random: idempotency keys
 * ("<uid>:<seq>") must not collide between runs of the same name in two stores. */
json_t *sup_spec_new(char *const *argv, const char *cwd, const char *workspace,
		     const json_t *policy_doc, int max_restarts, int restart_window_s);
/* Record who the run belongs to: "owner": {"uid": N, "gid": N, "user": "name"}
 * (the calling user of `agentd run`, the submitting peer of `agentd serve`).
 * The store indexes the uid: per-user limits count every run of one owner.
 * 0 or -ENOMEM. */
int sup_spec_set_owner(json_t *spec, uid_t uid, gid_t gid, const char *user);

/* A run driven by an event loop the caller owns (agentd serve runs many).
 * sup_run_open loads and validates the run's stored spec and registers its
 * timer; returns 0 or a negative errno with reason filled. Options are copied. */
int sup_run_open(struct agd_loop *loop, struct store *st, const char *run_id,
		 const struct sup_options *opt, struct sup_run **ret, char *reason,
		 size_t reasonsz);
/* Start the next attempt (the first, or the one after a supervisor crash).
 * On failure the run is already final (failed) and -EIO is returned. */
int sup_run_start(struct sup_run *r);
/* Kill the child now and leave the run interrupted (resumable). */
void sup_run_stop(struct sup_run *r, const char *why);
bool sup_run_done(const struct sup_run *r);
/* A policy reload (agentd serve: SIGHUP, and each start of a run): the run is
 * judged from now on by the stack stored in its spec plus every layer of
 * `reloaded` ([{"name", "policy"}...], as agd_policy_stack builds it) that it
 * does not already have (policy_stack_narrow). Always computed from the stored
 * stack, so the result is never wider than what the run started with, and a
 * later reload that drops a narrowing goes back to it. The spec itself is
 * unchanged. 0, or a negative errno with reason filled (the run keeps the
 * stack it had). */
int sup_run_narrow_policy(struct sup_run *r, const json_t *reloaded, char *reason, size_t reasonsz);
const char *sup_run_id(const struct sup_run *r);
/* Once done: 0 (succeeded), -EINTR (interrupted), -EAGAIN (suspended while
 * waiting for an approval: start it again once decided), -ECANCELED
 * (sup_run_cancel) or -EIO (failed), with
 * the agent's exit status and the reason (owned by the run). -EBUSY before. */
int sup_run_result(const struct sup_run *r, int *ret_exit, const char **ret_reason);
/* Decide the approval at `seq` of this run: approve (optionally with edited
 * arguments, an object the tool then runs with; the journal keeps the agent's
 * own arguments and their hash, so a replay still matches) or deny, with who
 * decided (1..256 bytes) and an optional comment; recorded in the store
 * (approved/denied, decided_by, decided_ms). A call of this live run waiting
 * at seq goes on at once; otherwise (suspended, or not asked yet in this
 * attempt) the stored decision is applied when the call comes again.
 * 0; -ENOENT when there is no approval at seq; -EALREADY when it was decided
 * already; -ETIMEDOUT when it had expired (recorded as expired: a denial).
 * Scope once. */
int sup_run_decide(struct sup_run *r, int64_t seq, bool approve, const char *by,
		   const char *comment, const json_t *edited_args);
/* The same with a scope: STORE_SCOPE_RUN approves later asks for the same
 * tool in this run without asking (also after restarts: it is read from the
 * approvals table); STORE_SCOPE_ALWAYS does the same within the run and adds
 * a "rule_suggestion" {id, tool, decision: "allow"} to the approval.granted
 * event for the caller to turn into a policy rule (not enforced beyond the
 * run yet). */
int sup_run_decide_scope(struct sup_run *r, int64_t seq, bool approve, const char *by,
			 const char *comment, const json_t *edited_args,
			 enum store_approval_scope scope);
/* Hand a user message to the run; it is stored first (store_message_add)
 * and then, by mode: queue: delivered at the next call boundary (an
 * agentd/message notification before the next reply, or agentd/inbox);
 * interrupt: a call waiting for its approval is answered -32003 {"message",
 * "id"} at once, else as queue; restart: the journal is rolled back to the
 * last checkpoint (discarded rows kept in a journal.discarded event), the
 * child is killed and the next attempt starts at once and gets the message
 * at its first boundary; reject: -EBUSY (message stored "rejected") while a
 * call waits, else as queue. 0 or a negative errno (-EINVAL: bad text). */
int sup_run_message(struct sup_run *r, const char *text, enum sup_msg_mode mode);
/* Graceful cancel: every tools/call from now on, and the one waiting for its
 * approval, is answered -32003 with data {"reason": "cancelled"}; a pause is
 * lifted. The run ends cancelled (sup_run_result -ECANCELED) when the child
 * exits, or when it is killed after grace_ms. Between attempts it ends at
 * once (on_done runs before this returns). 0, or -EALREADY once final. */
int sup_run_cancel(struct sup_run *r, int grace_ms);
/* Pause: the broker stops reading the agent's channel, so its next call (or
 * the one after a pending approval is answered) waits; resume reads again.
 * Nothing is signalled: an agent computing between calls goes on until its
 * next call. 0; -EALREADY once final; -ECANCELED (pause) while cancelling. */
int sup_run_pause(struct sup_run *r);
int sup_run_resume(struct sup_run *r);
/* Kills a still-running child. Accepts NULL, returns NULL. */
struct sup_run *sup_run_free(struct sup_run *r);

/* Supervise run `run_id` (already created in the store with its spec) until it
 * succeeds, fails, or we are interrupted by SIGINT/SIGTERM (the run is then left
 * "interrupted" and can be continued with sup_supervise again: `agentd resume`).
 * Returns 0 when the run reached a final state, with the agent's exit status in
 * *ret_exit (or -1 if it failed without one) and a one-line reason in `reason`
 * for failures ("" on success); returns a negative errno if supervision itself
 * could not proceed (reason says why), -EINTR when interrupted and -EAGAIN when
 * the run was suspended waiting for an approval (reason says how to go on). */
int sup_supervise(struct store *st, const char *run_id, const struct sup_options *opt,
		  int *ret_exit, char *reason, size_t reasonsz);

/* Render one event as a single timeline line (no newline). Returns buf. */
const char *sup_format_event(int attempt, int64_t seq, const char *type, const json_t *data,
			     char *buf, size_t bufsz);
/* The same for a call (sup_format_event renders a stored call.* event, as
 * older versions stored them, the same way). Returns buf. */
const char *sup_format_call(const struct sup_call_line *c, char *buf, size_t bufsz);
