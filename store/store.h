/* Durable storage behind one interface. Backend: embedded SQLite (WAL).
 * All functions return 0 or a negative errno; outputs written only on success.
 * Everything read back is validated like untrusted input (-EBADMSG if not). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/digest.h"

struct store;

/* Limits enforced on write and re-checked on read (docs/store.md). */
#define STORE_ID_MAX	     128	 /* run id: 1..128 bytes of [!-~] except '/' and '\\' */
#define STORE_NAME_MAX	     256	 /* tool, decision, rule, event type, run status */
#define STORE_REASON_MAX     4096	 /* run failure reason */
#define STORE_VALUE_MAX	     (64u << 20) /* one JSON value (args, result, spec, state, data) */
#define STORE_JSON_MAX_DEPTH 128	 /* nesting of one stored JSON value */
#define STORE_JOURNAL_MAX    (1u << 22)	 /* rows returned by store_journal_load */

enum store_durability {
	STORE_DURABILITY_PROCESS = 0, /* synchronous=NORMAL: survives any process crash */
	STORE_DURABILITY_POWER = 1,   /* synchronous=FULL: survives power loss */
};

/* Open (creating if needed, mode 0600) the store at `path` and migrate its schema. */
int store_open(const char *path, enum store_durability d, struct store **ret);
/* Destructor; accepts NULL, returns NULL. */
struct store *store_close(struct store *s);
/* The digest of the store's texts (args_hash, the seals): BLAKE3 in a file
 * created at schema version 8 or later, SHA-256 in an older one. A call's
 * args are matched against the journal under this digest. */
enum agd_digest store_digest(const struct store *s);

/* ---- runs ---- */
struct store_run {
	char *id;
	char *status;  /* "running", "succeeded", "failed", "interrupted", ... */
	json_t *spec;  /* argv, cwd, workspace, policy, options (owned) */
	int attempts;  /* number of child starts so far */
	int exit_code; /* agent's exit status when finished, -1 otherwise */
	char *reason;  /* one-line reason when failed, "" otherwise */
	int64_t created_ms;
	int64_t updated_ms;
};
void store_run_clear(struct store_run *r); /* frees members; accepts zeroed */

/* Insert a new run with status "running". -EEXIST if the id is taken. */
int store_run_create(struct store *s, const char *id, const json_t *spec);
/* -ENOENT if unknown. */
int store_run_get(struct store *s, const char *id, struct store_run *ret);
int store_run_set_status(struct store *s, const char *id, const char *status, int exit_code,
			 const char *reason);
int store_run_set_attempts(struct store *s, const char *id, int attempts);
/* Atomically increment the run's attempts and return the new value (one commit).
 * -ENOENT if unknown. */
int store_run_next_attempt(struct store *s, const char *id, int *ret_attempt);
/* Call fn for every run, newest first; fn returning non-zero stops (and is returned).
 * fn may call other store functions but not a foreach (-EBUSY). */
int store_run_foreach(struct store *s, int (*fn)(const struct store_run *r, void *ud), void *ud);

/* ---- journal ---- */
enum store_call_status {
	STORE_CALL_INTENT = 0, /* started, outcome unknown */
	STORE_CALL_OK = 1,     /* tool ran, result recorded (may be a tool-level error) */
	STORE_CALL_ERROR = 2,  /* tool ran and failed; result holds the error result */
	STORE_CALL_DENIED = 3, /* policy (or a human) refused; result holds the error */
};

struct store_call {
	int64_t seq;
	char *tool;
	char args_hash[AGD_DIGEST_HEX];
	json_t *args; /* owned */
	enum store_call_status status;
	json_t *result; /* owned; NULL while INTENT */
	int attempt;	/* attempt that executed it */
	char *decision; /* "allow", "ask:approved", "deny", ... */
	char *rule;	/* rule id or "" */
	int64_t started_ms;
	int64_t finished_ms;
	/* Set by store_journal_load (owned): the canonical texts as stored and
	 * hashed, so a replay can answer and a budget can count bytes without
	 * encoding the values again. A caller of store_journal_intent or
	 * store_journal_record may set args_text and args_len to
	 * store_json_text(args) and its length: it is then stored and hashed as
	 * is (-EINVAL if args_len is 0 or not where its NUL is). A caller that sets args_text and
	 * args_hash both must have set args_hash to the store's digest
	 * (store_digest, lower-case hex) of exactly args_text: it is stored as given, not computed
	 * again (a row written with a wrong one is reported as corrupt, -EBADMSG, by every load,
	 * and never replayed). Without args_text a given args_hash is checked against the args
	 * (-EINVAL). */
	char *args_text;
	size_t args_len;
	char *result_text; /* NULL while INTENT */
	size_t result_len;
	/* A row compacted by store_retain: args, result and their texts are
	 * NULL; what is left is the chain, the result's digest and, for budgets,
	 * the sizes json_size gave (args_len, result_len) and the result's cost. */
	bool compacted;
	char result_hash[AGD_DIGEST_HEX];
	/* Set by store_journal_load for every finished row: the result's "cost"
	 * member when a positive integer, else 0 (a compacted row's from its
	 * tombstone). */
	int64_t result_cost;
};
void store_call_clear(struct store_call *c);
/* Parse a row's args and result from its stored texts where
 * store_journal_load_lazy left them unparsed (kept in c; a no-op for what is
 * parsed already). The texts were validated at load: only -ENOMEM is
 * expected, -EBADMSG is possible. */
int store_call_json(struct store_call *c);

/* Insert an INTENT row (one commit). First writer wins: -EEXIST if (run, seq) exists. */
int store_journal_intent(struct store *s, const char *run, const struct store_call *c);
/* Record the outcome of an INTENT row (one commit): status, result, finished_ms.
 * -ENOENT if the row does not exist, -EALREADY if it is not INTENT (a recorded
 * outcome is never overwritten). A NULL result is stored as JSON null. */
int store_journal_finish(struct store *s, const char *run, int64_t seq,
			 enum store_call_status status, const json_t *result, int64_t finished_ms);
/* The canonical text store_journal_* would store for v (sorted keys, compact),
 * checked against STORE_JSON_MAX_DEPTH (-EINVAL) and STORE_VALUE_MAX (-E2BIG).
 * A caller that also needs the text (to answer with it) encodes once. */
int store_json_text(const json_t *v, char **ret, size_t *ret_len);
/* store_journal_finish with the result given as store_json_text's output
 * and length (stored and hashed as is). */
int store_journal_finish_text(struct store *s, const char *run, int64_t seq,
			      enum store_call_status status, const char *result_text, size_t len,
			      int64_t finished_ms);
/* Insert a complete row in one commit (pure calls, denials). -EEXIST as above.
 * If c->result_text is set it must be store_json_text(c->result), with
 * c->result_len its length, and is stored as is. A compacted call (as
 * store_journal_load gives it: a fork's copy) is stored compacted, with its
 * args hash and tombstone. */
int store_journal_record(struct store *s, const char *run, const struct store_call *c);
/* Group commit: between store_batch_begin and store_batch_commit the journal
 * writes above (intent, finish, finish_text, record), of any runs, join one
 * transaction instead of committing each: they return 0 once their row is
 * written, and it is durable only when store_batch_commit returns 0. Then all
 * of them are, in the order written; after a failed commit, an abort or a
 * crash before the commit, none is. A journal write that fails inside the
 * batch changes nothing and the batch goes on. Any other write transaction
 * (truncate, retain, approvals, ...) is -EBUSY while a batch is open; keep
 * the batch to journal writes. begin: -EBUSY if one is open (a held one,
 * store_batch_hold, goes on instead: 0); commit: -EINVAL if none is (a
 * failed commit rolls back and closes the batch). */
int store_batch_begin(struct store *s);
int store_batch_commit(struct store *s);
/* Roll the open batch back (nothing when none is open). Outcomes a held
 * round carried (store_batch_hold) were answered: they are finished again
 * at once, or, if that fails too, by the next open. */
void store_batch_abort(struct store *s);
/* End a round of the open batch without its commit (docs/store.md, "Held
 * outcomes"): the outcomes it finished (store_journal_finish_text) are
 * written first to a side file, from which the next open finishes them
 * should this process end before the commit, so they may be answered now.
 * The batch stays open and held: the next store_batch_begin goes on with
 * it (its commit carries both rounds), store_batch_commit commits it, and
 * any other write commits it first. Commits instead (same result as
 * store_batch_commit) with durability power, when the batch holds other
 * rows, or when the side file cannot be written. -EINVAL if no batch is
 * open or it is held already. */
int store_batch_hold(struct store *s);
/* Whether a batch is held (store_batch_hold). */
bool store_batch_held(const struct store *s);
/* Journal rows committed and the commits that carried them, since open. */
struct store_journal_stats {
	uint64_t commits;	 /* commits holding at least one journal row */
	uint64_t rows;		 /* journal rows (intents, outcomes, records) committed */
	uint64_t largest_commit; /* most rows in one commit */
};
void store_journal_stats(struct store *s, struct store_journal_stats *ret);
/* Load a run's journal ordered by seq. *ret is a malloc'd array of *n calls;
 * free with store_calls_free. */
int store_journal_load(struct store *s, const char *run, struct store_call **ret, size_t *n);
/* store_journal_load with the same checks (every column validated, every JSON
 * text checked to be one valid value within the limits, the args hashes and
 * the hash chain verified) but without building the JSON values: args and
 * result stay NULL unless the text had to be parsed to be validated; the
 * texts are always set. store_call_json parses a row when it is needed.
 * The replay path: most rows are only matched by hash and answered with
 * their stored text. */
int store_journal_load_lazy(struct store *s, const char *run, struct store_call **ret, size_t *n);
void store_calls_free(struct store_call *calls, size_t n);
/* Delete the run's journal rows with seq > after_seq and the states saved after
 * after_seq (divergence, restart from a checkpoint, fork), re-sealing the hash
 * chain of the rows kept; one commit. The journal is verified first: -EBADMSG
 * if it was tampered with (a truncation never launders an edited row). */
int store_journal_truncate(struct store *s, const char *run, int64_t after_seq);

/* Retention: keep the run's newest keep_snapshots states (>= 1; older ones
 * are deleted) and compact every finished journal row at or before the seq
 * of the oldest state kept: its args and result text are dropped, its link,
 * args hash, outcome, result hash and sizes kept, and its seal recomputed
 * over the result hash, so the journal still verifies. Rows with an unknown
 * outcome (INTENT) are never compacted. Such a row cannot be replayed: with
 * use_state a restart consumes it without replay. One commit, after every
 * row it compacts is verified (fields, seal, link; -EBADMSG otherwise): the
 * rows it leaves alone are left to the loads to verify. Fewer than keep_snapshots
 * states: nothing is done. *ret_compacted (may be NULL): rows compacted now. */
int store_retain(struct store *s, const char *run, int keep_snapshots, int64_t *ret_compacted);

/* ---- agent state (agentd/checkpoint) ---- */
/* Save a state blob taken after call `seq`. */
int store_state_save(struct store *s, const char *run, int64_t seq, const json_t *state);
/* Newest state: -ENOENT if none. */
int store_state_load(struct store *s, const char *run, json_t **ret_state, int64_t *ret_seq);
/* Newest state saved at a seq <= at_seq (the run as it stood then, fork --at):
 * -ENOENT if none. */
int store_state_load_at(struct store *s, const char *run, int64_t at_seq, json_t **ret_state,
			int64_t *ret_seq);

/* ---- events (timeline) ---- */
struct store_event {
	int64_t id;
	int64_t ts_ms;
	int attempt;
	int64_t seq; /* 0 when not about a call */
	char *type;  /* "run.started", "call.finished", "child.exited", ... */
	json_t *data;
};
int store_event_append(struct store *s, const char *run, int attempt, int64_t seq, const char *type,
		       const json_t *data);
/* Call fn for each event of `run` in order; non-zero from fn stops and is returned.
 * e->data is NULL when appended without data. fn may not start a foreach (-EBUSY). */
int store_event_foreach(struct store *s, const char *run,
			int (*fn)(const struct store_event *e, void *ud), void *ud);

/* ---- approvals (durable `ask` decisions; docs/interaction.md) ---- */
#define STORE_MESSAGE_MAX (64u << 10) /* one user message's text */

enum store_approval_status {
	STORE_APPROVAL_PENDING = 0,
	STORE_APPROVAL_APPROVED = 1,
	STORE_APPROVAL_DENIED = 2,
	STORE_APPROVAL_EXPIRED = 3, /* counts as a denial */
};

/* What an approval covers: this call, later asks for the same tool in this
 * run, or always (a user-visible rule the caller writes). */
enum store_approval_scope {
	STORE_SCOPE_ONCE = 0,
	STORE_SCOPE_RUN = 1,
	STORE_SCOPE_ALWAYS = 2,
};

struct store_approval {
	char *run;
	int64_t seq; /* the call's seq in the run's journal */
	char *tool;
	json_t *args;	   /* owned; the call's arguments as the agent sent them */
	char *rule;	   /* rule id that asked, "" if none */
	json_t *approvers; /* owned; JSON array of strings, [] = anyone */
	char *reason;	   /* why it asks ("" if none) */
	int64_t created_ms;
	int64_t expires_ms; /* 0: never */
	enum store_approval_status status;
	char *decided_by;    /* "" while pending */
	int64_t decided_ms;  /* 0 while pending */
	char *comment;	     /* "" if none */
	json_t *edited_args; /* owned; NULL unless approved with edited arguments */
	enum store_approval_scope scope;
	int rerun_attempt; /* attempt that started the approved rerun (0: none) */
};
void store_approval_clear(struct store_approval *a); /* frees members; accepts zeroed */
/* "pending", "approved", "denied", "expired" / "once", "run", "always". */
const char *store_approval_status_name(enum store_approval_status st);
const char *store_approval_scope_name(enum store_approval_scope sc);
/* 0 and *ret set, or -EINVAL for an unknown name. */
int store_approval_scope_parse(const char *name, enum store_approval_scope *ret);

/* Insert a pending approval from a's run, seq, tool, args, rule, approvers
 * (NULL = []), reason, created_ms (0 = now) and expires_ms; the decision
 * fields are ignored. First writer wins: -EEXIST if (run, seq) has one. */
int store_approval_create(struct store *s, const struct store_approval *a);
/* Ask again at (run, seq): its decided row becomes a pending one from a's
 * fields as store_approval_create takes them (the decision is dropped).
 * -ENOENT unless (run, seq) has a decided row. */
int store_approval_reask(struct store *s, const struct store_approval *a);
/* Record that attempt (>= 1) starts the rerun an approved row at (run, seq)
 * allows (one commit, before the tool runs). -EALREADY unless the row is
 * approved with no rerun started; a reask clears it. */
int store_approval_rerun(struct store *s, const char *run, int64_t seq, int attempt);
/* -ENOENT if none. The stored status is returned as is (a pending row past
 * its expiry stays pending until decided or expired). */
int store_approval_get(struct store *s, const char *run, int64_t seq, struct store_approval *ret);
/* Decide a pending approval in one transaction: approved (with optional
 * edited_args, an object) or denied, by `by` (1..256 bytes), with an optional
 * comment and the scope. -ENOENT if none; -EALREADY if it is not pending;
 * -ETIMEDOUT if its expiry has passed: it is then recorded as expired. */
int store_approval_decide(struct store *s, const char *run, int64_t seq, bool approve,
			  const char *by, const char *comment, const json_t *edited_args,
			  enum store_approval_scope scope);
/* Delete the run's approvals with seq > after_seq, whatever their status:
 * the journal was rolled back past them and their seqs will be reused. */
int store_approval_discard(struct store *s, const char *run, int64_t after_seq);
/* Mark a pending approval expired (decided_by "expiry"). -ENOENT, -EALREADY. */
int store_approval_expire(struct store *s, const char *run, int64_t seq);
/* Call fn for each approval matching every non-NULL filter, oldest first:
 * run id, status name, approver (rows whose approvers list names it or is
 * empty). Non-zero from fn stops and is returned; fn may not start a foreach. */
int store_approval_foreach(struct store *s, const char *run, const char *status,
			   const char *approver,
			   int (*fn)(const struct store_approval *a, void *ud), void *ud);

/* ---- user messages ---- */
enum store_msg_status {
	STORE_MSG_QUEUED = 0,
	STORE_MSG_DELIVERED = 1,
	STORE_MSG_REJECTED = 2,
};

struct store_message {
	int64_t id; /* increasing within the store */
	char *run;
	char *text; /* 0..STORE_MESSAGE_MAX bytes, no NUL */
	char *mode; /* "queue", "interrupt", "restart", "reject" */
	enum store_msg_status status;
	int64_t created_ms;
	int64_t delivered_ms;  /* 0 unless delivered */
	int64_t delivered_seq; /* journal seq of the delivery, 0 unless delivered */
};
void store_message_clear(struct store_message *m);
void store_messages_free(struct store_message *m, size_t n);
const char *store_msg_status_name(enum store_msg_status st);

/* Queue a message for run (which need not exist yet: the daemon may accept
 * one first); *ret_id is its id. -EINVAL for a bad mode or text. */
int store_message_add(struct store *s, const char *run, const char *text, const char *mode,
		      int64_t *ret_id);
/* Take the run's queued messages, oldest first, marking them delivered at
 * delivered_seq in one transaction. *ret is NULL and *ret_n 0 when none (the
 * common case costs one read, no write lock). Free with store_messages_free. */
int store_message_take_queued(struct store *s, const char *run, int64_t delivered_seq,
			      struct store_message **ret, size_t *ret_n);
/* The run's queued messages, oldest first, without changing them (*ret NULL
 * when none). Free with store_messages_free. */
int store_message_list_queued(struct store *s, const char *run, struct store_message **ret,
			      size_t *ret_n);
/* A number that changes whenever a message may have been queued since it was
 * last read: by this connection (store_message_add) or by another one (any
 * commit of another process). A caller that found no queued message for a
 * run can skip looking again while it stays the same. */
int store_message_version(struct store *s, uint64_t *ret);
/* Mark one queued message delivered at delivered_seq. -ENOENT, -EALREADY. */
int store_message_deliver(struct store *s, const char *run, int64_t id, int64_t delivered_seq);
/* Mark one queued message rejected. -ENOENT if none, -EALREADY if not queued. */
int store_message_reject(struct store *s, const char *run, int64_t id);
/* Call fn for each message of run, oldest first; as the other foreach calls. */
int store_message_foreach(struct store *s, const char *run,
			  int (*fn)(const struct store_message *m, void *ud), void *ud);

/* ---- operations ---- */
/* Consistent online copy of the whole store to `path` (created 0600, replaced
 * if it exists) with the SQLite backup API; writers may continue meanwhile. */
int store_backup(struct store *s, const char *path);
