/* Durable execution options of a run: per-tool retry policy, per-call
 * timeouts, ordered fallbacks, the run's deadline and what to do with an
 * effect whose outcome a crash left unknown. Stored in the run's spec under
 * "durable" (docs/durability.md has the format). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#include "supervisor/tools/tools.h"

struct sup_run;

/* v1 runs tools on the loop thread, so one backoff sleep is capped at this
 * (docs/decisions.md, "Retry backoff is short and synchronous in v1"). */
#define SUP_RETRY_MAX_SLEEP_MS	1000
#define SUP_RETRY_MAX_ATTEMPTS	10
#define SUP_RETRY_MAX_FALLBACKS 4

/* What happens to an effect whose outcome is unknown after a crash. */
enum sup_on_unknown {
	SUP_UNKNOWN_ASK = 0, /* the approver decides (default) */
	SUP_UNKNOWN_RETRY,   /* rerun it: the user accepts a possible repeat */
	SUP_UNKNOWN_FAIL,    /* fail the run */
	SUP_UNKNOWN_SKIP,    /* the agent gets -32004 and goes on */
};

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

/* The on_unknown action for a tool (policy key "on_unknown" once the policy
 * language has it; until then the run's durable options). */
enum sup_on_unknown sup_durable_on_unknown(const struct sup_run *r, const char *tool);

/* Parse a duration "250ms", "30s", "5m", "2h" or plain milliseconds. */
int sup_parse_duration_ms(const char *s, int64_t *ret_ms);
