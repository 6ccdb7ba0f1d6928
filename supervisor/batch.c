/* Group commit: the live calls of every run on one loop and store share
 * their journal commits (docs/durability.md, "Group commit").
 *
 * A live call that may run (sup_call_execute_live) is queued here instead of
 * being run at once, and its run reads nothing more until it is answered.
 * Once the loop has dispatched its batch of ready fds, the flush takes every
 * queued call, in the order queued, through four phases:
 *
 *   1. the intents of all non-pure calls: one transaction, one commit;
 *   2. the tools, one call after the other;
 *   3. the outcomes of all calls: one transaction, one commit;
 *   4. the replies.
 *
 * So an intent is durable before its tool runs, an outcome before the agent
 * sees it, and a commit that fails fails exactly the calls it carried (their
 * runs fail, nothing is answered). A run has at most one queued call, so its
 * seqs stay in order; with --durability power a batch pays one fsync per
 * phase instead of two per call. */
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/interact.h"
#include "supervisor/internal.h"
#include "supervisor/tools/tools.h"

/* A live call between its policy decision and its reply. */
struct sup_pending {
	struct sup_run *r;
	struct sup_pending *next;
	int attempt;
	json_t *id;		   /* the agent's request id */
	const struct tool_def *t;  /* t->name is the call's tool */
	json_t *args;		   /* as the agent sent them (journaled) */
	char *args_text;	   /* their canonical text, hashed and journaled (or NULL) */
	json_t *exec_args;	   /* what the tool runs with (an approver's edit) */
	char hash[AGD_SHA256_HEX]; /* of args */
	int64_t seq, t0_ns, started_ms;
	enum tool_class cls;
	char *rule_id, *path_root, *decision; /* copies: a reload may replace the policy */
	/* phase results */
	bool dead;  /* failed or abandoned: no further phase, no reply */
	bool wrote; /* has a row in the transaction being committed */
	json_t *content;
	bool is_error;
	char *text; /* content's canonical text: journaled and framed as is */
	size_t text_len;
};

struct sup_batch {
	struct agd_defer d; /* first: the deferred fn finds the batch from it */
	struct agd_loop *loop;
	struct store *st;
	struct sup_pending *head, **tail;
	bool flushing;
};

static struct sup_pending *
pending_free(struct sup_pending *p)
{
	if (!p)
		return NULL;
	json_decref(p->id);
	json_decref(p->args);
	free(p->args_text);
	json_decref(p->exec_args);
	json_decref(p->content);
	free(p->text);
	free(p->rule_id);
	free(p->path_root);
	free(p->decision);
	free(p);
	return NULL;
}

static void on_deferred(struct agd_defer *d);

struct sup_batch *
sup_batch_new(struct agd_loop *loop, struct store *st)
{
	struct sup_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->d.fn = on_deferred;
	b->loop = loop;
	b->st = st;
	b->tail = &b->head;
	return b;
}

struct sup_batch *
sup_batch_free(struct sup_batch *b)
{
	if (!b)
		return NULL;
	agd_loop_cancel(b->loop, &b->d);
	while (b->head) {
		struct sup_pending *p = b->head;
		b->head = p->next;
		p->r->pending = NULL;
		pending_free(p);
	}
	free(b);
	return NULL;
}

void
sup_batch_forget(struct sup_run *r)
{
	struct sup_batch *b = r->batch;

	if (!r->pending || !b)
		return;
	for (struct sup_pending **pp = &b->head; *pp; pp = &(*pp)->next)
		if (*pp == r->pending) {
			*pp = r->pending->next;
			if (b->tail == &r->pending->next)
				b->tail = pp;
			break;
		}
	r->pending = pending_free(r->pending);
}

int
sup_batch_add(struct sup_run *r, const json_t *id, const struct tool_def *t, const json_t *args,
	      const char *args_text, const char *hash, int64_t seq, const struct policy_result *pr,
	      const char *decision, const json_t *exec_args, int64_t t0_ns)
{
	struct sup_batch *b = r->batch;
	struct sup_pending *p = calloc(1, sizeof(*p));

	if (!p)
		return -ENOMEM;
	*p = (struct sup_pending){
	    .r = r,
	    .attempt = r->attempt,
	    .id = json_incref((json_t *)id),
	    .t = t,
	    .args = json_incref((json_t *)args),
	    .args_text = args_text ? strdup(args_text) : NULL,
	    .exec_args = json_incref((json_t *)exec_args),
	    .seq = seq,
	    .t0_ns = t0_ns,
	    .started_ms = agd_wall_ms(),
	    .cls = t->classify(exec_args),
	    .rule_id = strdup(pr->rule_id ? pr->rule_id : ""),
	    .path_root = pr->path_root ? strdup(pr->path_root) : NULL,
	    .decision = strdup(decision),
	};
	memcpy(p->hash, hash, AGD_SHA256_HEX);
	if (!p->rule_id || !p->decision || (pr->path_root && !p->path_root) ||
	    (args_text && !p->args_text)) {
		pending_free(p);
		return -ENOMEM;
	}
	r->pending = p;
	*b->tail = p;
	b->tail = &p->next;
	agd_loop_defer(b->loop, &b->d);
	return 0;
}

/* Never reply with an outcome the journal does not hold: the run fails. */
static void
fail_call(struct sup_pending *p, int e)
{
	p->dead = true;
	sup_fail(p->r, "journal write failed for #%lld: %s", (long long)p->seq, strerror(-e));
}

/* Commit the rows the calls marked `wrote` put in the open batch; a failed
 * commit fails every one of them. */
static void
commit(struct sup_batch *b, struct sup_pending *list)
{
	int e = store_batch_commit(b->st);

	for (struct sup_pending *p = list; p; p = p->next) {
		if (p->wrote && e < 0)
			fail_call(p, e);
		p->wrote = false;
	}
}

static void
store_call_of(const struct sup_pending *p, struct store_call *c)
{
	*c = (struct store_call){
	    .seq = p->seq,
	    .tool = (char *)p->t->name,
	    .args = p->args,
	    .args_text = p->args_text,
	    .args_len = p->args_text ? strlen(p->args_text) : 0,
	    .attempt = p->attempt,
	    .decision = p->decision,
	    .rule = p->rule_id,
	    .started_ms = p->started_ms,
	};
	memcpy(c->args_hash, p->hash, AGD_SHA256_HEX);
}

/* Phase 1: the intents, durable before any tool of the batch runs. */
static void
write_intents(struct sup_batch *b, struct sup_pending *list)
{
	bool any = false;
	int e;

	for (struct sup_pending *p = list; p; p = p->next)
		any |= !p->dead && p->cls != TOOL_PURE;
	if (!any)
		return;
	e = store_batch_begin(b->st);
	for (struct sup_pending *p = list; p; p = p->next) {
		if (p->dead || p->cls == TOOL_PURE)
			continue;
		if (e == 0) {
			struct store_call c;
			store_call_of(p, &c);
			c.status = STORE_CALL_INTENT;
			int w = store_journal_intent(b->st, p->r->id, &c);
			if (w == 0)
				p->wrote = true;
			else
				fail_call(p, w);
		} else {
			fail_call(p, e);
		}
	}
	if (e == 0)
		commit(b, list);
}

/* Phase 2: run the tool; its outcome encoded once, for the journal and the
 * reply. */
static void
run_tool(struct sup_pending *p)
{
	int e = sup_call_run_tool(p->r, p->t, p->exec_args, p->seq, p->path_root, p->cls,
				  &p->content, &p->is_error);

	if (e < 0) {
		p->dead = true;
		sup_fail(p->r, "tool %s failed internally: %s", p->t->name, strerror(-e));
		return;
	}
	e = store_json_text(p->content, &p->text, &p->text_len);
	if (e < 0)
		fail_call(p, e);
}

/* Phase 3: the outcomes, durable before any reply. */
static void
write_outcomes(struct sup_batch *b, struct sup_pending *list)
{
	bool any = false;
	int e;

	for (struct sup_pending *p = list; p; p = p->next)
		any |= !p->dead;
	if (!any)
		return;
	e = store_batch_begin(b->st);
	for (struct sup_pending *p = list; p; p = p->next) {
		if (p->dead)
			continue;
		if (e < 0) {
			fail_call(p, e);
			continue;
		}
		struct store_call c;
		store_call_of(p, &c);
		c.status = p->is_error ? STORE_CALL_ERROR : STORE_CALL_OK;
		c.result = p->content;
		c.result_text = p->text;
		c.result_len = p->text_len;
		c.finished_ms = agd_wall_ms();
		int w = p->cls == TOOL_PURE
			    ? store_journal_record(b->st, p->r->id, &c)
			    : store_journal_finish_text(b->st, p->r->id, p->seq, c.status, p->text,
							c.finished_ms);
		if (w == 0)
			p->wrote = true;
		else
			fail_call(p, w);
	}
	if (e == 0)
		commit(b, list);
}

static void
reply(struct sup_pending *p)
{
	struct sup_run *r = p->r;
	char *frame = NULL;
	size_t len = 0;

	if (r->opt.on_event && !r->opt.no_call_events)
		sup_emit(r, p->seq, "call.finished",
			 sup_call_event(p->seq, p->t->name, p->decision, p->rule_id,
					p->is_error ? "error" : "ok", false,
					(agd_now_ns() - p->t0_ns) / 1000));
	if (proto_stored_result_frame(p->id, p->text, p->text_len, p->is_error, p->seq, false,
				      &frame, &len) == 0)
		sup_send_frame(r, frame, len);
	else
		sup_fail(r, "out of memory answering #%lld", (long long)p->seq);
}

void
sup_batch_flush(struct sup_batch *b)
{
	/* A flush may answer a run whose next call is already buffered: that
	 * call joins the next round. Re-entry (a run's on_done freeing things)
	 * finds nothing to do. */
	if (!b || b->flushing)
		return;
	b->flushing = true;
	while (b->head) {
		struct sup_pending *list = b->head;
		b->head = NULL;
		b->tail = &b->head;

		for (struct sup_pending *p = list; p; p = p->next) {
			struct sup_run *r = p->r;
			/* Abandoned: the run failed, ended or moved to another
			 * attempt since the call was queued; no row was written. */
			p->dead = p->attempt != r->attempt || r->fatal || sup_run_done(r);
		}
		write_intents(b, list);
		for (struct sup_pending *p = list; p; p = p->next)
			if (!p->dead)
				run_tool(p);
		write_outcomes(b, list);
		for (struct sup_pending *p = list; p; p = p->next)
			if (!p->dead)
				reply(p);
		/* The runs read again: what they sent meanwhile is answered now
		 * (its live calls queue for the next round). */
		while (list) {
			struct sup_pending *p = list;
			list = p->next;
			struct sup_run *r = p->r;
			r->pending = NULL;
			pending_free(p);
			sup_broker_drain(r);
		}
	}
	b->flushing = false;
}

static void
on_deferred(struct agd_defer *d)
{
	sup_batch_flush((struct sup_batch *)d);
}
