/* The interaction pillar inside the supervisor (interact.c): durable
 * approvals that make a call wait, user messages and their delivery at call
 * boundaries, suspension and rollback restarts. docs/interaction.md. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy/policy.h"
#include "supervisor/internal.h"

struct tool_def;

/* Tool name of the journal's pseudo-calls that record message deliveries. */
#define SUP_INBOX_TOOL "agentd.inbox"
/* The rule id and the start of the reason of an unknown outcome's approval. */
#define SUP_UNKNOWN_RULE   "on_unknown"
#define SUP_UNKNOWN_REASON "unknown outcome: the call may or may not have run:"

/* interact.c */
/* A live call the policy answered `ask` under SUP_APPROVE_DURABLE: answer it
 * from a stored decision, or record the approval and make the call wait. */
void sup_ix_ask(struct sup_run *r, const json_t *id, const struct tool_def *t, const char *tool,
		const json_t *args, const char *hash, const struct policy_result *pr);
/* A journaled effect call whose outcome a crash left unknown, on_unknown
 * `ask` under SUP_APPROVE_DURABLE: answer it from the decision of its
 * approval row (rule "on_unknown", at c's seq), or record one and wait.
 * Approved: rerun (sup_call_unknown_rerun); denied or expired: -32004. */
void sup_ix_ask_unknown(struct sup_run *r, const json_t *id, const struct tool_def *t,
			const struct store_call *c, const struct policy_result *pr);
/* The approver's edited arguments for journaled call c (decision
 * "ask:edited"), a new reference; NULL when the call ran with its own. */
json_t *sup_ix_edited_args(struct sup_run *r, const struct store_call *c);
/* True while a call of the current attempt waits for its approval: the
 * broker then answers nothing else (replies are in order). */
bool sup_ix_waiting(struct sup_run *r);
/* Broker hook at the top of a read: when waiting, stop reading the channel
 * (a second call while stopped means the peer hung up: close it). True when
 * the broker must not read now. */
bool sup_ix_hold(struct sup_run *r);
/* True while nothing more may be answered: a call waits for its approval, or
 * a restart message is about to roll the attempt back. */
bool sup_ix_blocked(struct sup_run *r);
/* Call boundary, before a request is answered: replay the journaled message
 * deliveries due here, or deliver queued messages (live). False when the
 * request must not be answered (a restart is due). */
bool sup_ix_boundary(struct sup_run *r, const char *method);
/* The agentd/inbox method. */
void sup_ix_inbox(struct sup_run *r, const json_t *id, json_t *params);
void sup_ix_free(struct sup_run *r);
/* sup_run_cancel: answer a call waiting for its approval (-32003, data
 * {"reason": "cancelled"}), lift a pause and read the channel again. */
void sup_ix_cancel(struct sup_run *r);

/* call.c: the two ends of a live call, shared with interact.c. */
void sup_call_refuse(struct sup_run *r, const json_t *id, const char *tool, const json_t *args,
		     const char *hash, int64_t seq, const char *rule_id, const char *decision,
		     int code, const char *message, json_t *data);
/* args_text, if not NULL, is store_json_text(args) (the text hash was taken
 * over) and args_len its length, journaled as is instead of encoding args
 * again; it is taken (freed by the call). */
void sup_call_execute_live(struct sup_run *r, const json_t *id, const struct tool_def *t,
			   const char *tool, const json_t *args, char *args_text, size_t args_len,
			   const char *hash, int64_t seq, const struct policy_result *pr,
			   const char *decision, const json_t *exec_args, int64_t t0);

/* call.c: an unknown outcome's two answers. Refuse: finish the intent row
 * at seq as denied and answer code (-32004, or -32003 when interrupted) with
 * message and data (stolen). Rerun: queue c in the group commit (batch.c)
 * to run again (with its idempotency key; on a worker if its tool may
 * block), finish its row and answer the result; the run reads nothing
 * more until then. */
void sup_call_unknown_refuse(struct sup_run *r, const json_t *id, int64_t seq, int code,
			     const char *message, json_t *data);
void sup_call_unknown_rerun(struct sup_run *r, const json_t *id, const struct tool_def *t,
			    const struct store_call *c, const char *path_root, int64_t t0);

/* run.c: stop the child and end the run "suspended" (sup_run_result -EAGAIN). */
void sup_suspend(struct sup_run *r, const char *why);
/* run.c: kill the child now and start the next attempt at once. */
void sup_restart_now(struct sup_run *r);
