/* Budgets and rate limits of a run (policy "limits"): total calls, calls per
 * minute (all tools, and each tool on its own), argument bytes in, result
 * bytes out, and spend. Every counter is derived from the journal, so a
 * restarted child or supervisor starts from what the run has already used: a
 * crash cannot reset a budget. Calls refused by a limit do not count, so an
 * agent hammering a closed limit does not grow the sliding window. */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "store/usage.h"
#include "supervisor/internal.h"

#define MINUTE_MS 60000

struct sup_budget_call {
	char *tool;
	int64_t ms;
};

struct sup_budget {
	uint64_t calls, bytes_in, bytes_out, spend;
	/* Calls of the last minute, oldest first; kept only when a per-minute
	 * limit is set, so it is bounded by that limit. */
	struct sup_budget_call *recent;
	size_t n_recent, cap;
};

struct sup_budget *
sup_budget_free(struct sup_budget *b)
{
	if (!b)
		return NULL;
	for (size_t i = 0; i < b->n_recent; i++)
		free(b->recent[i].tool);
	free(b->recent);
	free(b);
	return NULL;
}

/* The bytes a call's args or result count: the length of its canonical
 * text, which the call has already (it is journaled as is), for an object or
 * an array, else 0. A journaled value may be unparsed (v NULL): its text
 * says which it is. */
static size_t
stored_size(const json_t *v, const char *text, size_t len)
{
	if (v)
		return json_is_object(v) || json_is_array(v) ? len : 0;
	return text[0] == '{' || text[0] == '[' ? len : 0;
}

/* What a finished call costs: the policy's per-tool cost plus the "cost" a
 * tool reported in its result. */
static uint64_t
call_spend(const struct policy *p, const char *tool, const json_t *result)
{
	json_t *c = json_object_get(result, "cost");
	uint64_t s = policy_tool_cost(p, tool);

	if (json_is_integer(c) && json_integer_value(c) > 0)
		s += (uint64_t)json_integer_value(c);
	return s;
}

static void
prune(struct sup_budget *b, int64_t now)
{
	size_t k = 0;

	while (k < b->n_recent && now - b->recent[k].ms >= MINUTE_MS)
		free(b->recent[k++].tool);
	if (k == 0)
		return; /* also when empty: recent may be NULL */
	memmove(b->recent, b->recent + k, (b->n_recent - k) * sizeof(*b->recent));
	b->n_recent -= k;
}

static int
remember(struct sup_budget *b, const char *tool, int64_t ms)
{
	if (b->n_recent == b->cap) {
		size_t ncap = b->cap ? b->cap * 2 : 16;
		struct sup_budget_call *n = realloc(b->recent, ncap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		b->recent = n;
		b->cap = ncap;
	}
	char *t = strdup(tool);
	if (!t)
		return -ENOMEM;
	b->recent[b->n_recent++] = (struct sup_budget_call){t, ms};
	return 0;
}

/* The calls of the last minute are kept for the per-minute limits; for
 * user_calls_per_minute they stand for the user's when the run has no owner. */
static bool
keeps_recent(const struct policy_limits *l)
{
	return l->calls_per_minute || l->tool_calls_per_minute || l->user_calls_per_minute;
}

static bool
refused_by_limit(const char *rule)
{
	return rule && strncmp(rule, "limits.", 7) == 0;
}

int
sup_budget_rebuild(struct sup_run *r, const struct store_call *calls, size_t n)
{
	const struct policy_limits *l = policy_limits(r->policy);
	struct sup_budget *b = calloc(1, sizeof(*b));
	int64_t now = agd_wall_ms();

	if (!b)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct store_call *c = &calls[i];
		/* A limit denial did not use the budget (see the top of this file);
		 * an approver's refusal of a limit-ask did not either. */
		if (refused_by_limit(c->rule) && c->status == STORE_CALL_DENIED)
			continue;
		b->calls++;
		/* A compacted row kept the counts (store_retain); every loaded
		 * row has its result's cost. */
		b->bytes_in +=
		    c->compacted ? c->args_len : stored_size(c->args, c->args_text, c->args_len);
		if (c->status == STORE_CALL_OK || c->status == STORE_CALL_ERROR) {
			b->bytes_out += c->compacted
					    ? c->result_len
					    : stored_size(c->result, c->result_text, c->result_len);
			b->spend += policy_tool_cost(r->policy, c->tool) + (uint64_t)c->result_cost;
		}
		if (keeps_recent(l) && now - c->started_ms < MINUTE_MS &&
		    remember(b, c->tool, c->started_ms) < 0) {
			sup_budget_free(b);
			return -ENOMEM;
		}
	}
	sup_budget_free(r->budget);
	r->budget = b;
	return 0;
}

int
sup_budget_check(struct sup_run *r, const char *tool, const json_t *args, size_t args_len,
		 char *limit, size_t limitsz, char *reason, size_t reasonsz)
{
	const struct policy_limits *l = policy_limits(r->policy);
	struct sup_budget *b = r->budget;
	int64_t now = agd_wall_ms();
	uint64_t in = stored_size(args, NULL, args_len), cost = policy_tool_cost(r->policy, tool);

	if (!b)
		return -EINVAL;
	prune(b, now);
	uint64_t all = b->n_recent, mine = 0;
	for (size_t i = 0; i < b->n_recent; i++)
		mine += strcmp(b->recent[i].tool, tool) == 0;

#define OVER(name, fmt, ...)                                                                       \
	do {                                                                                       \
		snprintf(limit, limitsz, "%s", name);                                              \
		snprintf(reason, reasonsz, fmt, __VA_ARGS__);                                      \
		return 1;                                                                          \
	} while (0)
	if (l->max_calls && b->calls >= l->max_calls)
		OVER("max_calls", "limit max_calls (%llu calls per run) reached",
		     (unsigned long long)l->max_calls);
	if (l->calls_per_minute && all >= l->calls_per_minute)
		OVER("calls_per_minute", "limit calls_per_minute (%llu) reached",
		     (unsigned long long)l->calls_per_minute);
	if (l->tool_calls_per_minute && mine >= l->tool_calls_per_minute)
		OVER("tool_calls_per_minute", "limit tool_calls_per_minute (%llu) reached for %s",
		     (unsigned long long)l->tool_calls_per_minute, tool);
	if (l->user_calls_per_minute) {
		/* Every run of the owner in this store, counted in the journal (one
		 * indexed read); a run without an owner counts as its own user. A
		 * store that cannot count refuses the call: the limit fails closed. */
		uint64_t used = all;
		int e = r->owner_uid < 0 ? 0
					 : store_user_calls_since(r->st, r->owner_uid,
								  now - MINUTE_MS + 1, &used);
		if (e < 0)
			OVER("user_calls_per_minute",
			     "limit user_calls_per_minute: cannot count the user's calls: %s",
			     strerror(-e));
		if (used >= l->user_calls_per_minute)
			OVER("user_calls_per_minute",
			     "limit user_calls_per_minute (%llu, all of the user's runs) reached",
			     (unsigned long long)l->user_calls_per_minute);
	}
	if (l->bytes_in && b->bytes_in + in > l->bytes_in)
		OVER("bytes_in", "limit bytes_in (%llu) would be exceeded: %llu used, call is %llu",
		     (unsigned long long)l->bytes_in, (unsigned long long)b->bytes_in,
		     (unsigned long long)in);
	if (l->bytes_out && b->bytes_out >= l->bytes_out)
		OVER("bytes_out", "limit bytes_out (%llu) reached: %llu received",
		     (unsigned long long)l->bytes_out, (unsigned long long)b->bytes_out);
	if (l->max_spend && (b->spend >= l->max_spend || b->spend + cost > l->max_spend))
		OVER("max_spend",
		     "limit max_spend (%llu) would be exceeded: %llu spent, call costs %llu",
		     (unsigned long long)l->max_spend, (unsigned long long)b->spend,
		     (unsigned long long)cost);
#undef OVER
	return 0;
}

int
sup_budget_charge(struct sup_run *r, const char *tool, const json_t *args, size_t args_len)
{
	const struct policy_limits *l = policy_limits(r->policy);
	struct sup_budget *b = r->budget;

	if (!b)
		return -EINVAL;
	b->calls++;
	b->bytes_in += stored_size(args, NULL, args_len);
	if (keeps_recent(l))
		return remember(b, tool, agd_wall_ms());
	return 0;
}

void
sup_budget_result(struct sup_run *r, const char *tool, const json_t *content, size_t text_len)
{
	if (!r->budget)
		return;
	r->budget->bytes_out += stored_size(content, NULL, text_len);
	r->budget->spend += call_spend(r->policy, tool, content);
}

void
sup_refuse_limit(struct sup_run *r, const json_t *id, const char *tool, const json_t *args,
		 const char *hash, int64_t seq, const char *limit, const char *reason)
{
	cleanup_free char *rule = agd_asprintf("limits.%s", limit);
	json_t *data = json_pack("{s:s,s:s,s:s,s:s}", "decision", "deny", "limit", limit, "rule",
				 rule ? rule : "limits", "reason", reason);
	cleanup_json json_t *err = json_pack("{s:i,s:s,s:O}", "code", PROTO_LIMIT, "message",
					     "limit reached", "data", data);
	struct store_call c = {
	    .seq = seq,
	    .tool = (char *)tool,
	    .args = (json_t *)args,
	    .status = STORE_CALL_DENIED,
	    .result = err,
	    .attempt = r->attempt,
	    .decision = "deny",
	    .rule = rule,
	    .started_ms = agd_wall_ms(),
	};

	if (!rule || !data || !err) {
		json_decref(data);
		sup_reply_error(r, id, PROTO_INTERNAL_ERROR, "out of memory", NULL);
		return;
	}
	memcpy(c.args_hash, hash, AGD_DIGEST_HEX);
	c.finished_ms = c.started_ms;
	int e = store_journal_record(r->st, r->id, &c);
	if (e < 0) {
		json_decref(data);
		sup_fail(r, "journal write failed for #%lld: %s", (long long)seq, strerror(-e));
		return;
	}
	r->next_seq++;
	r->last_seq = seq;
	sup_reply_error(r, id, PROTO_LIMIT, "limit reached", data);
	sup_show_call(r, seq, tool, "deny", rule, "denied", false, 0);
}
