/* Durable execution options of a run: per-tool retry policy, per-call
 * timeouts, ordered fallbacks, the run's deadline and what to do with an
 * effect whose outcome a crash left unknown. Stored in the run's spec under
 * "durable" (docs/durability.md has the format). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "policy/policy.h"
#include "supervisor/tools/tools.h"

struct sup_run;

/* One backoff sleep is capped at this (docs/decisions.md, "Retry backoff is
 * short and synchronous in v1"): under agentd run it sleeps the loop. */
#define SUP_RETRY_MAX_SLEEP_MS	1000
#define SUP_RETRY_MAX_ATTEMPTS	10
#define SUP_RETRY_MAX_FALLBACKS 4
#define SUP_KEEP_STATES_MAX	1000

struct sup_durable;

/* A retry rule (durable.tools[i]); its pointers point into the options. */
struct retry_rule {
	const char *tool; /* pattern: exact, "prefix.*" or "*" */
	int attempts;
	int64_t initial_ms, cap_ms;
	double multiplier, jitter;
	const json_t *retry_on; /* NULL: the defaults */
	int64_t timeout_ms;	/* whole call, retries included; 0: none */
	const json_t *fallbacks;
	enum policy_on_unknown on_unknown; /* UNSET: the run's */
};

/* A fallback of a job, judged by the run's policy when the job was made. */
struct sup_job_fallback {
	const struct tool_def *t;
	json_t *args;
	char *path_root;
	bool skipped; /* of a stronger class than the call's, or not allowed */
};

/* One call's tool run with its retries, timeouts and fallbacks, made
 * self-contained: the arguments, the context's strings, the retry rule and
 * the fallbacks (already judged by the policy) are the job's own copies, so
 * any thread may run it (sup_job_run) while the loop goes on. What the run
 * would have been told on the way (retry.scheduled, retry.gave_up,
 * retry.fallback) is recorded in `events`; the loop emits them with the
 * result (sup_job_emit). */
struct sup_job {
	const struct tool_def *t;
	json_t *args;
	enum tool_class cls;
	struct tool_ctx ctx; /* its strings point to the copies below */
	char *run_id, *cwd, *path_root, *key, *cost_header;
	bool has_rule;
	struct retry_rule rule; /* tool and fallbacks NULL, retry_on a copy */
	struct sup_job_fallback *fb;
	size_t n_fb;
	int64_t deadline_ms; /* the run's, wall clock; 0: none */
	uint64_t rng;	     /* backoff jitter */
	bool nonblocking;    /* sup_job_inline: args are the caller's, not a copy */
	/* results */
	bool done; /* ran, or answered without running (content set) */
	int err;   /* 0 or -ENOMEM: nothing to record */
	json_t *content;
	bool is_error;
	json_t *events; /* [[type, data]...] or NULL */
	/* the loop's: the call waiting for it and the workers' queue */
	void *owner;
	struct sup_job *next;
};

/* Validate spec["durable"] (absent: defaults) into *ret. 0, -EINVAL with reason
 * filled, or -ENOMEM. Free with sup_durable_free. */
int sup_durable_parse(const json_t *spec_durable, struct sup_durable **ret, char *reason,
		      size_t reasonsz);
/* Accepts NULL, returns NULL. */
struct sup_durable *sup_durable_free(struct sup_durable *d);

/* Arm the run's deadline timer on its loop (no-op without a deadline). */
int sup_durable_arm(struct sup_run *r);

/* Run one call with the run's retry policy, timeout, deadline and fallbacks:
 * ctx as the plain tool would get it. Every retried or failed-over attempt
 * is an event. The last attempt's result is the call's. Returns 0 or -ENOMEM.
 * On the caller's thread, backoff sleeps included: sup_retry_job, then
 * sup_job_run on the thread of one's choice, then sup_job_emit. */
int sup_retry_call(struct sup_run *r, const struct tool_def *t, const json_t *args,
		   enum tool_class cls, struct tool_ctx *ctx, json_t **ret_content,
		   bool *ret_is_error);
/* The job of that call (copies of args, ctx and the run's rule for the tool;
 * the fallbacks judged now). 0 or -ENOMEM. */
int sup_retry_job(struct sup_run *r, const struct tool_def *t, const json_t *args,
		  enum tool_class cls, const struct tool_ctx *ctx, struct sup_job **ret);
/* Run the job (nothing if done): touches nothing but the job. */
void sup_job_run(struct sup_job *j);
/* True when the job may run on the loop thread: answered already, or a tool
 * that never blocks (tool_def.nonblocking) with no retry or fallback to wait for. */
bool sup_job_inline(const struct sup_job *j);
/* Emit (sup_emit) and forget the events the job recorded. */
void sup_job_emit(struct sup_run *r, struct sup_job *j);
/* Accepts NULL, returns NULL. */
struct sup_job *sup_job_free(struct sup_job *j);

/* What happens to an `effect` call of `tool` with `args` whose outcome a
 * crash left unknown: the strictest of what the run's policy layers say
 * (policy_stack_on_unknown) and its durable options (the tool's entry, else
 * durable.on_unknown); POLICY_UNKNOWN_ASK, the approver, when none says. */
enum policy_on_unknown sup_on_unknown(const struct sup_run *r, const char *tool,
				      const json_t *args);

/* Automatic retention (durable.keep_states, else the options' keep_states).
 * note_resume records whether this attempt's agent resumed from its state
 * (agentd/resume use_state); retain runs after a checkpoint is committed and
 * answered: every keep_states checkpoints of such an attempt it keeps the
 * newest keep_states states and compacts the journal rows before the oldest
 * (store_retain), with a retention.compacted event. A failure is an event;
 * the run goes on. */
void sup_durable_note_resume(struct sup_run *r, bool use_state);
int sup_durable_keep_states(const struct sup_run *r);
void sup_durable_retain(struct sup_run *r);

/* Parse a duration "250ms", "30s", "5m", "2h" or plain milliseconds. */
int sup_parse_duration_ms(const char *s, int64_t *ret_ms);
