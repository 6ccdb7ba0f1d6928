/* Shared between the supervisor's files: run.c (lifecycle), broker.c (the
 * channel and its methods), call.c (the tools/call pipeline). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/loop.h"
#include "supervisor/proto.h"
#include "supervisor/replay.h"
#include "supervisor/retry.h"
#include "supervisor/supervisor.h"
#include "supervisor/tools/tools.h"

#define SUP_SEND_TIMEOUT_MS  10000
#define SUP_TOOL_TIMEOUT_MS  30000
#define SUP_MAX_RESULT_BYTES (1u << 20) /* the reply carries it twice: stay under 4 MiB */

/* Denied syscalls of the current child, as sandbox.violation events. */
struct sup_violations {
	struct agd_watch w;	 /* the child's seccomp listener; fd -1 when none */
	bool network_loopback;	 /* which filter answers (sandbox_child) */
	int64_t tokens, last_ms; /* rate limit: events per run */
	uint64_t suppressed;	 /* dropped by the rate limit, not yet reported */
};

/* The run's lifecycle; see the table in run.c. */
enum sup_state {
	SUP_ST_NEW,
	SUP_ST_CHILD,
	SUP_ST_BACKOFF,
	SUP_ST_SUCCEEDED,
	SUP_ST_FAILED,
	SUP_ST_INTERRUPTED,
	SUP_ST_SUSPENDED, /* stopped while a call waits for its approval */
	SUP_ST_CANCELLED, /* the child exited (or was killed) after sup_run_cancel */
	SUP_ST_ENDING,	  /* final but for a call whose tool is still on a worker */
};

struct sup_run {
	struct agd_loop *loop;
	struct store *st;
	struct sup_options opt;
	char *id;
	const char *uid; /* random, unique across stores: names idempotency keys */
	json_t *spec;	 /* owned; the strings below point into it */
	struct policy *policy;
	const char *cwd, *workspace;
	int64_t owner_uid; /* spec "owner": {"uid"}; -1: none (no per-user limit) */
	int max_restarts, window_s;
	int64_t *starts_ms; /* start time of each attempt, for the intensity limit */
	size_t n_starts;

	enum sup_state state;
	int attempt;
	pid_t pid;
	int status_fd;
	int cgroup_fd; /* the attempt's own cgroup, or -1 (sandbox_cgroup_remove at reap) */
	struct agd_watch w_pid, w_chan, w_timer;
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

	struct sup_layers *layers;   /* layers.c: the policy stack that decides calls */
	struct sup_budget *budget;   /* budget.c: counters rebuilt from the journal */
	struct sup_secrets *secrets; /* secrets.c: values, never sent to the child */
	struct sup_violations viol;  /* violations.c */
	struct agd_watch w_wall;     /* wall-clock limit (policy limits.wall_clock) */
	struct sup_ix *ix;	     /* approvals and messages: interact.c */
	struct sup_durable *dur;     /* retry.c: retries, timeouts, fallbacks, deadline */

	/* sup_run_cancel: every call from now on is refused; the child is
	 * killed when the grace timer fires first. */
	bool cancelling;
	struct agd_watch w_grace;
	/* sup_run_pause: the broker reads nothing until sup_run_resume. */
	bool paused;
	/* The tools/call being answered wants the result's text block
	 * (docs/protocol.md: "_meta": {"agentd/text": false} turns it off).
	 * One call is answered at a time: the broker reads nothing more while
	 * a call waits (for its approval, or in the group commit). */
	bool call_text;

	/* Group commit (batch.c): the batch the run's live calls join, and its
	 * one queued call (the broker reads nothing more while it is set). */
	struct sup_batch *batch;
	bool own_batch; /* made for this run (no sup_options.batch) */
	struct sup_pending *pending;
	/* Its tool on a worker (sup_batch_busy), the run waits for it: the
	 * final state it reached meanwhile (SUP_ST_ENDING), or the next
	 * attempt it is to start (spawn_due), comes when it lands. */
	enum sup_state ending;
	bool spawn_due;
};

/* Store an event (except the live-only "call.*" ones) and pass it to the
 * options' on_event. Steals data. */
void sup_emit(struct sup_run *r, int64_t seq, const char *type, json_t *data);
/* Fail the run with a reason (the first one wins) and kill its child. */
void sup_fail(struct sup_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send a message to the agent; steals msg (NULL is ignored). */
void sup_send(struct sup_run *r, json_t *msg);
/* Send an encoded frame (ending in '\n'); takes ownership of text. */
void sup_send_frame(struct sup_run *r, char *text, size_t len);
/* Error reply to a request (nothing for a notification: id NULL). Steals data. */
void sup_reply_error(struct sup_run *r, const json_t *id, int code, const char *msg, json_t *data);

/* broker.c: read and answer everything the agent sent; close on EOF. */
void sup_broker_read(struct sup_run *r);
void sup_broker_close(struct sup_run *r);

/* violations.c: watch the child's seccomp listener (takes notify_fd; -1 is
 * recorded as a note when violations were asked for); stop at reap, after
 * answering what is still pending; the SIGSYS death of a program killed by the
 * filter (a foreign-architecture syscall) is a violation too. */
void sup_violations_start(struct sup_run *r, int notify_fd, bool network_loopback);
void sup_violations_stop(struct sup_run *r);
void sup_violations_exit(struct sup_run *r, bool signaled, int code);

/* layers.c: the run's policy stack (spec "policy": one document or
 * [{"name","policy"}...]). load sets r->layers and r->policy (what the stack
 * grants besides rules); eval decides a call over every layer; visible and
 * entry serve tools/list (the entry's description lists the constraints). */
struct sup_layers;
struct tool_def;
struct sup_layers *sup_layers_free(struct sup_layers *l);
int sup_layers_load(struct sup_run *r, const json_t *pol, char *reason, size_t reasonsz);
int sup_policy_eval(struct sup_run *r, const char *tool, const json_t *args,
		    struct policy_result *ret);
/* The stack's on_unknown for the call (policy_stack_on_unknown). */
enum policy_on_unknown sup_policy_on_unknown(const struct sup_run *r, const char *tool,
					     const json_t *args);
bool sup_tool_visible(struct sup_run *r, const char *tool);
json_t *sup_tool_entry(struct sup_run *r, const struct tool_def *t);
/* True when the call's URL host is an address literal that every layer's
 * deciding rule names (host or url_prefix matcher): only then may
 * http.request reach a loopback, private or link-local address. */
bool sup_egress_named(struct sup_run *r, const char *tool, const json_t *args);

/* budget.c: the policy's budgets and rate limits. rebuild recomputes every
 * counter from the journal (at each attempt); check returns 1 with the limit's
 * name and a reason when the call must not run, 0 when it may; charge counts
 * a call that goes ahead, result its outcome. args_len and text_len are the
 * lengths of the args' and the result's canonical texts (store_json_text). */
struct sup_budget;
struct sup_budget *sup_budget_free(struct sup_budget *b);
int sup_budget_rebuild(struct sup_run *r, const struct store_call *calls, size_t n);
int sup_budget_check(struct sup_run *r, const char *tool, const json_t *args, size_t args_len,
		     char *limit, size_t limitsz, char *reason, size_t reasonsz);
int sup_budget_charge(struct sup_run *r, const char *tool, const json_t *args, size_t args_len);
void sup_budget_result(struct sup_run *r, const char *tool, const json_t *content, size_t text_len);
/* Journal a call refused by a limit and answer it with PROTO_LIMIT, data
 * {"decision":"deny","limit":NAME,"rule":"limits.NAME","reason":...}. */
void sup_refuse_limit(struct sup_run *r, const json_t *id, const char *tool, const json_t *args,
		      const char *hash, int64_t seq, const char *limit, const char *reason);

/* secrets.c: load the values of the policy's secrets (opt.secrets_file, then
 * the environment); apply: the arguments the tool runs with (*ret_args NULL:
 * the agent's own), or a tool error in *ret_error; redact: values in a result
 * replaced by "[secret:NAME]" in place. */
struct sup_secrets;
struct sup_secrets *sup_secrets_free(struct sup_secrets *s);
int sup_secrets_load(struct sup_run *r, char *reason, size_t reasonsz);
int sup_secrets_apply(struct sup_run *r, const char *tool, const json_t *args, json_t **ret_args,
		      json_t **ret_error);
int sup_secrets_redact(struct sup_run *r, json_t *content);

/* call.c: the tools/call method. */
void sup_tools_call(struct sup_run *r, const json_t *id, json_t *params);
/* Run a tool (retries, secrets, redaction, budgets) on behalf of the call at
 * seq, in two steps so that it may run on a worker (batch.c): job makes the
 * call's job (secrets resolved into its copy of the arguments; a refused
 * secret answers it without running); once sup_job_run has run it, done
 * emits what its attempts recorded and redacts the result (the tool's
 * result or error, a new reference in *ret_content; the caller counts it,
 * sup_budget_result), on the loop thread. 0 or -ENOMEM (an internal failure: nothing to record). */
int sup_call_job(struct sup_run *r, const struct tool_def *t, const json_t *args, int64_t seq,
		 const char *path_root, enum tool_class cls, struct sup_job **ret_job);
int sup_call_job_done(struct sup_run *r, struct sup_job *j, json_t **ret_content,
		      bool *ret_is_error);
/* Show a call on the live timeline (the options' on_call, if any). */
void sup_show_call(struct sup_run *r, int64_t seq, const char *tool, const char *decision,
		   const char *rule, const char *outcome, bool replayed, int64_t dur_us);

/* batch.c: the group commit. add queues an allowed live call (its run reads
 * nothing more until it is answered; r->pending); flush runs every queued call
 * through intents, tools (here or on a worker), outcomes and replies (also run
 * by the loop after each batch of events; add takes args_text, the args'
 * canonical text or NULL, even when it fails); forget drops the run's queued call
 * (sup_run_free; one on a worker is dropped when it comes back). */
struct sup_pending;
int sup_batch_add(struct sup_run *r, const json_t *id, const struct tool_def *t, const json_t *args,
		  char *args_text, size_t args_len, const char *hash, int64_t seq,
		  const struct policy_result *pr, const char *decision, const json_t *exec_args,
		  int64_t t0_ns, bool rerun);
void sup_batch_flush(struct sup_batch *b);
void sup_batch_forget(struct sup_run *r);
/* The run's call is on a worker, or back from one with its outcome not yet
 * journaled: until that outcome is written the run neither ends nor starts
 * another attempt, and its journal is not rolled back. */
bool sup_batch_busy(const struct sup_run *r);
/* run.c: the run's call from a worker has been journaled and answered. */
void sup_run_landed(struct sup_run *r);
/* broker.c: answer the frames already buffered (after a queued call's reply). */
void sup_broker_drain(struct sup_run *r);
