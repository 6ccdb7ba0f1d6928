/* Retries, timeouts, fallbacks and the run deadline (see retry.h).
 *
 * Safety rule: an `effect` call is retried, or failed over, only after a
 * failure that proves it was not applied (no connection was made, the name
 * did not resolve, or the service answered 429). Anything ambiguous (a
 * timeout, a reset, a 5xx) ends the call with that result. */
#include "supervisor/retry.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/internal.h"

struct sup_durable {
	json_t *cfg; /* owned; rules point into it */
	struct retry_rule *rules;
	size_t n;
	int64_t deadline_ms;		   /* wall clock; 0: none */
	enum policy_on_unknown on_unknown; /* UNSET: not said */
	int keep_states;		   /* automatic retention; 0: the run's default */
	int state_attempt;		   /* the attempt whose agent resumed from its state */
	int unretained;			   /* checkpoints since retention last ran */
	struct agd_watch w_deadline;
	struct sup_run *run;
	uint64_t rng;
};

int
sup_parse_duration_ms(const char *s, int64_t *ret_ms)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || end == s || v < 0)
		return -EINVAL;
	int64_t mul = strcmp(end, "") == 0 || strcmp(end, "ms") == 0 ? 1
		      : strcmp(end, "s") == 0			     ? 1000
		      : strcmp(end, "m") == 0			     ? 60000
		      : strcmp(end, "h") == 0			     ? 3600000
								     : 0;
	if (!mul || v > INT64_MAX / mul / 4)
		return -EINVAL;
	*ret_ms = v * mul;
	return 0;
}

static int
parse_rule(const json_t *o, struct retry_rule *rr, char *reason, size_t reasonsz)
{
	json_error_t jerr;
	json_int_t attempts = 1, initial = 100, cap = SUP_RETRY_MAX_SLEEP_MS, timeout = 0;
	double mult = 2.0, jitter = 0.0;
	const char *tool = NULL, *onu = NULL;
	json_t *retry_on = NULL, *fallbacks = NULL;

	if (json_unpack_ex(
		(json_t *)o, &jerr, JSON_STRICT, "{s:s,s?I,s?I,s?F,s?I,s?F,s?o,s?I,s?s,s?o}",
		"tool", &tool, "attempts", &attempts, "initial_backoff_ms", &initial, "multiplier",
		&mult, "max_backoff_ms", &cap, "jitter", &jitter, "retry_on", &retry_on,
		"timeout_ms", &timeout, "on_unknown", &onu, "fallbacks", &fallbacks) < 0) {
		snprintf(reason, reasonsz, "durable.tools: %s", jerr.text);
		return -EINVAL;
	}
	if (attempts < 1 || attempts > SUP_RETRY_MAX_ATTEMPTS || initial < 0 || cap < 0 ||
	    cap > SUP_RETRY_MAX_SLEEP_MS || mult < 1.0 || mult > 10.0 || jitter < 0.0 ||
	    jitter > 1.0 || timeout < 0 || timeout > TOOLS_MAX_TIMEOUT_MS) {
		snprintf(reason, reasonsz,
			 "durable.tools[%s]: attempts 1..%d, backoffs 0..%d ms, multiplier 1..10, "
			 "jitter 0..1, timeout_ms 0..%d",
			 tool, SUP_RETRY_MAX_ATTEMPTS, SUP_RETRY_MAX_SLEEP_MS,
			 TOOLS_MAX_TIMEOUT_MS);
		return -EINVAL;
	}
	int u = onu ? policy_on_unknown_parse(onu) : POLICY_UNKNOWN_UNSET;
	if (u < 0) {
		snprintf(reason, reasonsz, "durable.tools[%s].on_unknown: ask, retry, fail or skip",
			 tool);
		return -EINVAL;
	}
	if (retry_on) {
		size_t i;
		json_t *v;
		if (!json_is_array(retry_on))
			goto bad_retry_on;
		json_array_foreach(retry_on, i,
				   v) if (!json_is_string(v) &&
					  !(json_is_integer(v) && json_integer_value(v) >= 100 &&
					    json_integer_value(v) <= 599)) goto bad_retry_on;
	}
	if (fallbacks) {
		size_t i;
		json_t *v;
		if (!json_is_array(fallbacks) ||
		    json_array_size(fallbacks) > SUP_RETRY_MAX_FALLBACKS)
			goto bad_fallbacks;
		json_array_foreach(fallbacks, i, v)
		{
			const char *ft = NULL;
			json_t *fa = NULL;
			if (json_unpack_ex(v, &jerr, JSON_STRICT, "{s?s,s:o}", "tool", &ft, "args",
					   &fa) < 0 ||
			    !json_is_object(fa) || (ft && !tools_find(ft)))
				goto bad_fallbacks;
		}
	}
	*rr = (struct retry_rule){
	    tool,   (int)attempts, initial, cap,       mult,
	    jitter, retry_on,	   timeout, fallbacks, (enum policy_on_unknown)u};
	return 0;
bad_retry_on:
	snprintf(reason, reasonsz,
		 "durable.tools[%s].retry_on: a list of error codes and HTTP statuses", tool);
	return -EINVAL;
bad_fallbacks:
	snprintf(reason, reasonsz,
		 "durable.tools[%s].fallbacks: at most %d of {\"tool\"?: known tool, \"args\": "
		 "object}",
		 tool, SUP_RETRY_MAX_FALLBACKS);
	return -EINVAL;
}

int
sup_durable_parse(const json_t *cfg, struct sup_durable **ret, char *reason, size_t reasonsz)
{
	struct sup_durable *d = calloc(1, sizeof(*d));
	json_error_t jerr;
	json_int_t deadline = 0, keep = 0;
	const char *onu = NULL;
	json_t *tools = NULL;
	int e = -EINVAL;

	if (!d)
		return -ENOMEM;
	d->w_deadline.fd = -1;
	if (getrandom(&d->rng, sizeof(d->rng), 0) != sizeof(d->rng) || !d->rng)
		d->rng = 0x9e3779b97f4a7c15ull;
	if (!cfg)
		goto done;
	d->cfg = json_incref((json_t *)cfg);
	if (json_unpack_ex(d->cfg, &jerr, JSON_STRICT, "{s?I,s?s,s?o,s?I}", "deadline_ms",
			   &deadline, "on_unknown", &onu, "tools", &tools, "keep_states",
			   &keep) < 0) {
		snprintf(reason, reasonsz, "durable: %s", jerr.text);
		goto fail;
	}
	if (deadline < 0 || (onu && policy_on_unknown_parse(onu) < 0) ||
	    (tools && !json_is_array(tools))) {
		snprintf(reason, reasonsz,
			 "durable: deadline_ms >= 0, on_unknown ask|retry|fail|skip, tools a list");
		goto fail;
	}
	if (keep < 0 || keep > SUP_KEEP_STATES_MAX) {
		snprintf(reason, reasonsz, "durable: keep_states 0..%d (0: no automatic retention)",
			 SUP_KEEP_STATES_MAX);
		goto fail;
	}
	d->keep_states = (int)keep;
	d->deadline_ms = deadline;
	d->on_unknown =
	    onu ? (enum policy_on_unknown)policy_on_unknown_parse(onu) : POLICY_UNKNOWN_UNSET;
	d->n = json_array_size(tools);
	d->rules = calloc(d->n ? d->n : 1, sizeof(*d->rules));
	if (!d->rules) {
		e = -ENOMEM;
		goto fail;
	}
	for (size_t i = 0; i < d->n; i++)
		if ((e = parse_rule(json_array_get(tools, i), &d->rules[i], reason, reasonsz)) < 0)
			goto fail;
done:
	*ret = d;
	return 0;
fail:
	sup_durable_free(d);
	return e;
}

struct sup_durable *
sup_durable_free(struct sup_durable *d)
{
	if (!d)
		return NULL;
	if (d->run)
		agd_loop_close_watch(d->run->loop, &d->w_deadline);
	else if (d->w_deadline.fd >= 0)
		close(d->w_deadline.fd);
	json_decref(d->cfg);
	free(d->rules);
	free(d);
	return NULL;
}

static void
on_deadline(struct agd_watch *w, uint32_t events)
{
	struct sup_durable *d =
	    (struct sup_durable *)((char *)w - offsetof(struct sup_durable, w_deadline));
	struct sup_run *r = d->run;
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) < 0)
		return;
	if (r->w_pid.fd < 0) {
		/* Between attempts: look again once the next child is up. */
		struct itimerspec its = {.it_value = {0, 50 * 1000000}};
		timerfd_settime(w->fd, 0, &its, NULL);
		return;
	}
	sup_emit(r, 0, "run.deadline",
		 json_pack("{s:I}", "deadline_ms", (json_int_t)d->deadline_ms));
	sup_fail(r, "the run's deadline passed");
}

int
sup_durable_arm(struct sup_run *r)
{
	struct sup_durable *d = r->dur;

	if (!d || !d->deadline_ms || d->w_deadline.fd >= 0)
		return 0;
	d->run = r;
	d->w_deadline = (struct agd_watch){
	    timerfd_create(CLOCK_REALTIME, TFD_CLOEXEC | TFD_NONBLOCK), on_deadline};
	if (d->w_deadline.fd < 0)
		return -errno;
	struct itimerspec its = {
	    .it_value = {d->deadline_ms / 1000, (d->deadline_ms % 1000) * 1000000}};
	if (timerfd_settime(d->w_deadline.fd, TFD_TIMER_ABSTIME, &its, NULL) < 0)
		return -errno;
	return agd_loop_add(r->loop, &d->w_deadline, EPOLLIN);
}

static const struct retry_rule *
find_rule(const struct sup_durable *d, const char *tool)
{
	for (size_t i = 0; d && i < d->n; i++)
		if (fnmatch(d->rules[i].tool, tool, 0) == 0)
			return &d->rules[i];
	return NULL;
}

enum policy_on_unknown
sup_on_unknown(const struct sup_run *r, const char *tool, const json_t *args)
{
	const struct retry_rule *rr = find_rule(r->dur, tool);
	enum policy_on_unknown d = rr && rr->on_unknown ? rr->on_unknown
				   : r->dur		? r->dur->on_unknown
							: POLICY_UNKNOWN_UNSET;
	enum policy_on_unknown p = sup_policy_on_unknown(r, tool, args);

	/* Each says how far it trusts a rerun: the one that trusts it least wins. */
	if (p > d)
		d = p;
	return d ? d : POLICY_UNKNOWN_ASK;
}

/* ---- automatic retention ---- */

void
sup_durable_note_resume(struct sup_run *r, bool use_state)
{
	if (r->dur)
		r->dur->state_attempt = use_state ? r->attempt : 0;
}

int
sup_durable_keep_states(const struct sup_run *r)
{
	return r->dur && r->dur->keep_states ? r->dur->keep_states : r->opt.keep_states;
}

void
sup_durable_retain(struct sup_run *r)
{
	struct sup_durable *d = r->dur;
	int keep = sup_durable_keep_states(r);
	int64_t rows = 0;

	/* Only for an agent that resumes from its state: one that re-executes
	 * from the start replays every row and must keep them all. */
	if (!d || keep <= 0 || d->state_attempt != r->attempt)
		return;
	/* Every keep_states checkpoints, so each run of it (which verifies the
	 * whole journal) is paid for by that many: at most 2 * keep_states
	 * states are ever stored. */
	if (++d->unretained < keep)
		return;
	int e = store_retain(r->st, r->id, keep, &rows);
	if (e == -EBUSY) /* inside a group commit: at the next checkpoint */
		return;
	d->unretained = 0;
	if (e < 0) /* the run goes on uncompacted: nothing is lost */
		sup_emit(r, 0, "retention.failed",
			 json_pack("{s:s,s:i}", "error", strerror(-e), "keep_states", keep));
	else if (rows)
		sup_emit(r, 0, "retention.compacted",
			 json_pack("{s:I,s:i}", "rows", (json_int_t)rows, "keep_states", keep));
}

/* ---- one call ---- */

static const char *
error_code(const json_t *content, bool is_error)
{
	return is_error
		   ? json_string_value(json_object_get(json_object_get(content, "error"), "code"))
		   : NULL;
}

static int
http_status(const json_t *content, bool is_error)
{
	json_t *s = is_error ? NULL : json_object_get(content, "status");
	return json_is_integer(s) ? (int)json_integer_value(s) : 0;
}

/* Failures after which nothing was applied: safe to repeat even an effect. */
static bool
unambiguous(const char *code, int status)
{
	return (code && (strcmp(code, "ECONNREFUSED") == 0 || strcmp(code, "EHOSTUNREACH") == 0)) ||
	       status == 429;
}

static bool
listed(const json_t *list, const char *code, int status)
{
	static const char *const def_codes[] = {"ECONNREFUSED", "EHOSTUNREACH", "ETIMEDOUT",
						"ECONNRESET"};
	static const int def_status[] = {429, 502, 503, 504};
	size_t i;
	json_t *v;

	if (!list) {
		for (i = 0; code && i < sizeof(def_codes) / sizeof(def_codes[0]); i++)
			if (strcmp(code, def_codes[i]) == 0)
				return true;
		for (i = 0; status && i < sizeof(def_status) / sizeof(def_status[0]); i++)
			if (status == def_status[i])
				return true;
		return false;
	}
	json_array_foreach(list, i, v)
	{
		if (code && json_is_string(v) && strcmp(code, json_string_value(v)) == 0)
			return true;
		if (status && json_is_integer(v) && json_integer_value(v) == status)
			return true;
	}
	return false;
}

/* Should this outcome be tried again (or failed over)? */
static bool
transient(const struct retry_rule *rr, enum tool_class cls, const json_t *content, bool is_error)
{
	const char *code = error_code(content, is_error);
	int status = http_status(content, is_error);

	if (!listed(rr->retry_on, code, status))
		return false;
	return cls != TOOL_EFFECT || unambiguous(code, status);
}

/* Retry-After in ms (delta-seconds or an HTTP-date); -1 when absent. */
static int64_t
retry_after_ms(const json_t *content, bool is_error)
{
	const char *v = is_error ? NULL
				 : json_string_value(json_object_get(
				       json_object_get(content, "headers"), "retry-after"));
	struct tm tm = {0};
	char *end;

	if (!v)
		return -1;
	long long s = strtoll(v, &end, 10);
	if (end != v && *end == '\0' && s >= 0)
		return s > 86400 ? 86400000 : s * 1000;
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end || *end)
		return -1;
	int64_t diff = (int64_t)timegm(&tm) * 1000 - agd_wall_ms();
	return diff < 0 ? 0 : diff;
}

/* xorshift64: jitter needs spread, not secrecy. */
static uint64_t
next_rng(uint64_t *rng)
{
	*rng ^= *rng << 13;
	*rng ^= *rng >> 7;
	*rng ^= *rng << 17;
	return *rng;
}

static int64_t
backoff_ms(uint64_t *rng, const struct retry_rule *rr, int done)
{
	double ms = (double)rr->initial_ms;

	for (int i = 1; i < done && ms < (double)rr->cap_ms; i++)
		ms *= rr->multiplier;
	if (ms > (double)rr->cap_ms)
		ms = (double)rr->cap_ms;
	double u = (double)(next_rng(rng) >> 11) / (double)(1ull << 53);
	return (int64_t)(ms * (1.0 - rr->jitter * u));
}

/* Time left for this call: the rule's timeout and the run's deadline; -1: unbounded. */
static int64_t
time_left(int64_t deadline_ms, const struct retry_rule *rr, int64_t start_ms)
{
	int64_t left = -1;

	if (rr && rr->timeout_ms)
		left = rr->timeout_ms - (agd_now_ns() / 1000000 - start_ms);
	if (deadline_ms) {
		int64_t dl = deadline_ms - agd_wall_ms();
		if (left < 0 || dl < left)
			left = dl;
	}
	return left < -1 ? 0 : left;
}

/* One attempt of tool t, its timeout bounded by `left` ms (-1: unbounded). */
static int
attempt(const struct tool_def *t, const json_t *args, struct tool_ctx *ctx, int64_t left,
	json_t **ret_content, bool *ret_is_error)
{
	cleanup_json json_t *bounded = NULL;
	int saved = ctx->default_timeout_ms;

	if (left == 0) {
		json_t *c = tools_error("ETIMEDOUT", "the call's timeout or the run's deadline "
						     "passed before it could run");
		if (!c)
			return -ENOMEM;
		*ret_content = c;
		*ret_is_error = true;
		return 0;
	}
	if (left > 0) {
		json_t *to = json_object_get(args, "timeout_ms");
		if (json_is_integer(to) && json_integer_value(to) > left) {
			bounded = json_copy((json_t *)args);
			if (!bounded ||
			    json_object_set_new(bounded, "timeout_ms", json_integer(left)) < 0)
				return -ENOMEM;
		}
		if (ctx->default_timeout_ms <= 0 || ctx->default_timeout_ms > left)
			ctx->default_timeout_ms = (int)left;
	}
	int e = t->call(ctx, bounded ? bounded : args, ret_content, ret_is_error);
	ctx->default_timeout_ms = saved;
	return e;
}

static json_t *
attempt_event(int64_t seq, const char *tool, int n, const json_t *content, bool is_error)
{
	const char *code = error_code(content, is_error);
	int status = http_status(content, is_error);
	json_t *ev = json_pack("{s:I,s:s,s:i}", "seq", (json_int_t)seq, "tool", tool, "attempt", n);

	if (ev && code)
		json_object_set_new(ev, "error", json_string(code));
	if (ev && status)
		json_object_set_new(ev, "status", json_integer(status));
	return ev;
}

/* ---- the job ---- */

struct sup_job *
sup_job_free(struct sup_job *j)
{
	if (!j)
		return NULL;
	json_decref(j->args);
	free(j->run_id);
	free(j->cwd);
	free(j->path_root);
	free(j->key);
	free(j->cost_header);
	json_decref((json_t *)j->rule.retry_on);
	for (size_t i = 0; i < j->n_fb; i++) {
		json_decref(j->fb[i].args);
		free(j->fb[i].path_root);
	}
	free(j->fb);
	json_decref(j->content);
	json_decref(j->events);
	free(j);
	return NULL;
}

static bool
dup_str(const char *s, char **ret)
{
	*ret = s ? strdup(s) : NULL;
	return !s || *ret;
}

/* Judge the rule's fallbacks as the call's own: the policy, and a class no
 * stronger than the intent recorded for the call. */
static int
judge_fallbacks(struct sup_run *r, struct sup_job *j, const json_t *fallbacks)
{
	size_t i;
	json_t *fb;

	j->fb = calloc(json_array_size(fallbacks), sizeof(*j->fb));
	if (!j->fb)
		return -ENOMEM;
	json_array_foreach(fallbacks, i, fb)
	{
		struct sup_job_fallback *f = &j->fb[j->n_fb++];
		const char *name = json_string_value(json_object_get(fb, "tool"));
		const json_t *fargs = json_object_get(fb, "args");
		struct policy_result pr;

		f->t = name ? tools_find(name) : j->t;
		if (name) {
			f->args = json_deep_copy(fargs);
		} else { /* the same tool: its arguments with these replaced */
			f->args = json_deep_copy(j->args);
			if (f->args && json_object_update(f->args, (json_t *)fargs) < 0)
				return -ENOMEM;
		}
		if (!f->args)
			return -ENOMEM;
		f->skipped = f->t->classify(f->args) > j->cls ||
			     sup_policy_eval(r, f->t->name, f->args, &pr) < 0 ||
			     pr.decision != POLICY_ALLOW;
		if (!f->skipped && !dup_str(pr.path_root, &f->path_root))
			return -ENOMEM;
	}
	return 0;
}

int
sup_retry_job(struct sup_run *r, const struct tool_def *t, const json_t *args, enum tool_class cls,
	      const struct tool_ctx *ctx, struct sup_job **ret)
{
	struct sup_durable *d = r->dur;
	const struct retry_rule *rr = find_rule(d, t->name);
	struct sup_job *j = calloc(1, sizeof(*j));

	if (!j)
		return -ENOMEM;
	j->t = t;
	j->cls = cls;
	j->ctx = *ctx;
	j->deadline_ms = d ? d->deadline_ms : 0;
	/* Nothing to wait for: no I/O, no backoff sleep. Such a job shares the
	 * caller's arguments (no other thread sees them); one for a worker
	 * gets its own. */
	j->nonblocking = t->nonblocking && (!rr || (rr->attempts <= 1 && !rr->fallbacks));
	j->args = j->nonblocking ? json_incref((json_t *)args) : json_deep_copy(args);
	if (!j->args || !dup_str(ctx->run_id, &j->run_id) || !dup_str(ctx->cwd, &j->cwd) ||
	    !dup_str(ctx->path_root, &j->path_root) || !dup_str(ctx->idempotency_key, &j->key) ||
	    !dup_str(ctx->cost_header, &j->cost_header))
		goto oom;
	j->ctx.run_id = j->run_id;
	j->ctx.cwd = j->cwd;
	j->ctx.path_root = j->path_root;
	j->ctx.idempotency_key = j->key;
	j->ctx.cost_header = j->cost_header;
	if (rr) {
		j->has_rule = true;
		j->rule = *rr;
		j->rule.tool = NULL;
		j->rule.fallbacks = NULL;
		j->rule.retry_on = rr->retry_on ? json_deep_copy(rr->retry_on) : NULL;
		if (rr->retry_on && !j->rule.retry_on)
			goto oom;
		if (rr->fallbacks && judge_fallbacks(r, j, rr->fallbacks) < 0)
			goto oom;
		j->rng = next_rng(&d->rng);
	}
	*ret = j;
	return 0;
oom:
	sup_job_free(j);
	return -ENOMEM;
}

bool
sup_job_inline(const struct sup_job *j)
{
	return j->done || j->nonblocking;
}

/* Keep an event for the loop to emit (a lost one on ENOMEM, as sup_emit's). */
static void
record(struct sup_job *j, const char *type, json_t *data)
{
	if (!j->events)
		j->events = json_array();
	if (data && j->events)
		json_array_append_new(j->events, json_pack("[s,o]", type, data));
	else
		json_decref(data);
}

void
sup_job_emit(struct sup_run *r, struct sup_job *j)
{
	size_t i;
	json_t *ev;

	json_array_foreach(j->events, i, ev)
	{
		sup_emit(r, j->ctx.seq, json_string_value(json_array_get(ev, 0)),
			 json_incref(json_array_get(ev, 1)));
	}
	j->events = (json_decref(j->events), NULL);
}

void
sup_job_run(struct sup_job *j)
{
	const struct retry_rule *rr = j->has_rule ? &j->rule : NULL;
	const struct tool_def *t = j->t;
	struct tool_ctx *ctx = &j->ctx;
	int64_t start = agd_now_ns() / 1000000;
	json_t *content = NULL;
	bool is_error = false;
	int e;

	if (j->done)
		return;
	j->done = true;
	for (int n = 1;; n++) {
		e = attempt(t, j->args, ctx, time_left(j->deadline_ms, rr, start), &content,
			    &is_error);
		if (e < 0) {
			j->err = e;
			return;
		}
		if (!rr || n >= rr->attempts || !transient(rr, j->cls, content, is_error))
			break;
		int64_t delay = backoff_ms(&j->rng, rr, n);
		int64_t after = retry_after_ms(content, is_error);
		if (after > delay)
			delay = after;
		int64_t left = time_left(j->deadline_ms, rr, start);
		json_t *ev = attempt_event(ctx->seq, t->name, n, content, is_error);
		if (delay > SUP_RETRY_MAX_SLEEP_MS || (left >= 0 && delay >= left)) {
			/* Honour Retry-After by not retrying sooner than it says. */
			if (ev)
				json_object_set_new(ev, "gave_up",
						    json_string(delay > SUP_RETRY_MAX_SLEEP_MS
								    ? "retry-after too long"
								    : "no time left"));
			record(j, "retry.gave_up", ev);
			break;
		}
		if (ev)
			json_object_set_new(ev, "delay_ms", json_integer(delay));
		record(j, "retry.scheduled", ev);
		struct timespec ts = {delay / 1000, (delay % 1000) * 1000000};
		while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
			;
		json_decref(content);
		content = NULL;
	}

	/* Retries spent on a transient failure: ordered fallbacks, one attempt each. */
	bool more = j->n_fb && transient(rr, j->cls, content, is_error);
	for (size_t i = 0; more && i < j->n_fb; i++) {
		const struct sup_job_fallback *f = &j->fb[i];
		json_t *ev = json_pack("{s:I,s:s,s:s,s:i}", "seq", (json_int_t)ctx->seq, "tool",
				       t->name, "fallback", f->t->name, "index", (int)i);
		if (f->skipped) {
			if (ev)
				json_object_set_new(ev, "skipped", json_true());
			record(j, "retry.fallback", ev);
			continue;
		}
		record(j, "retry.fallback", ev);
		json_t *fc = NULL;
		bool fe = false;
		ctx->path_root = f->path_root;
		e = attempt(f->t, f->args, ctx, time_left(j->deadline_ms, rr, start), &fc, &fe);
		ctx->path_root = j->path_root;
		json_decref(content);
		content = NULL;
		if (e < 0) {
			j->err = e;
			return;
		}
		content = fc;
		is_error = fe;
		more = transient(rr, f->t->classify(f->args), content, is_error);
	}
	j->content = content;
	j->is_error = is_error;
}

int
sup_retry_call(struct sup_run *r, const struct tool_def *t, const json_t *args, enum tool_class cls,
	       struct tool_ctx *ctx, json_t **ret_content, bool *ret_is_error)
{
	struct sup_job *j = NULL;
	int e = sup_retry_job(r, t, args, cls, ctx, &j);

	if (e < 0)
		return e;
	sup_job_run(j);
	sup_job_emit(r, j);
	e = j->err;
	if (e == 0) {
		*ret_content = steal_ptr(&j->content);
		*ret_is_error = j->is_error;
	}
	sup_job_free(j);
	return e;
}
