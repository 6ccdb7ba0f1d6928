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

/* v1 runs tools on the loop thread, so one backoff sleep is capped at this
 * (docs/decisions.md, "Retry backoff is short and synchronous in v1"). */
#define SUP_RETRY_MAX_SLEEP_MS	1000
#define SUP_RETRY_MAX_ATTEMPTS	10
#define SUP_RETRY_MAX_FALLBACKS 4
#define SUP_KEEP_STATES_MAX	1000

struct sup_durable;

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
 * is an event. The last attempt's result is the call's. Returns 0 or -ENOMEM. */
int sup_retry_call(struct sup_run *r, const struct tool_def *t, const json_t *args,
		   enum tool_class cls, struct tool_ctx *ctx, json_t **ret_content,
		   bool *ret_is_error);

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
