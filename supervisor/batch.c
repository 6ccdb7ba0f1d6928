/* Group commit: the live calls of every run on one loop and store share
 * their journal commits (docs/durability.md, "Group commit").
 *
 * A live call that may run (sup_call_execute_live) is queued here instead of
 * being run at once, and its run reads nothing more until it is answered.
 * Once the loop has dispatched its batch of ready fds, the flush takes every
 * queued call, in the order queued, through four phases:
 *
 *   1. the intents of all non-pure calls: one transaction, one commit;
 *   2. the tools: a tool that never blocks runs here, any other is handed to
 *      a tool worker as a self-contained job (sup_job) and the flush goes on;
 *   3. the outcomes of the calls whose tools have finished (here, or on a
 *      worker since the last round): one transaction, one commit;
 *   4. their replies.
 *
 * A worker runs a job (retries and their sleeps included) touching nothing
 * but the job, posts it to the finished queue and writes the eventfd the
 * loop watches; the loop takes the finished jobs, emits the events their
 * attempts recorded, redacts their results (sup_call_job_done), encodes
 * them once and counts them against the budgets, and the next flush
 * commits and answers them. So an intent is durable before its tool runs,
 * an outcome before the agent sees it, and a commit that fails fails
 * exactly the calls it carried (their runs fail, nothing is answered). A
 * run has at most one call here, so its seqs stay in order; with
 * --durability power a batch pays one fsync per phase instead of two per
 * call. A run whose call is on a worker waits for it before it ends or
 * starts its next attempt (run.c, SUP_ST_ENDING): the late outcome is
 * always journaled. Without workers (agentd run) every tool runs in the
 * flush, as phase 2 of the same round. */
#include <pthread.h>
#include <stddef.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

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
	size_t args_len;	   /* its length */
	json_t *exec_args;	   /* what the tool runs with (an approver's edit) */
	char hash[AGD_DIGEST_HEX]; /* of args */
	int64_t seq, t0_ns, started_ms;
	enum tool_class cls;
	bool rerun;	 /* of a journaled intent (unknown outcome): no intent row to write */
	bool reply_text; /* the reply carries the text block (r->call_text) */
	char *rule_id, *path_root, *decision; /* copies: a reload may replace the policy */
	/* phase results */
	bool dead;	/* failed or abandoned: no further phase, no reply */
	bool wrote;	/* has a row in the transaction being committed */
	bool on_worker; /* its job is with the workers (r->pending stays set) */
	bool landed;	/* its job came back from a worker */
	struct sup_job *job;
	json_t *content;
	bool is_error;
	char *text; /* content's canonical text: journaled and framed as is */
	size_t text_len;
};

struct sup_batch {
	struct agd_defer d;    /* first: the deferred fn finds the batch from it */
	struct agd_defer held; /* commits a held round (hold) */
	struct agd_loop *loop;
	struct store *st;
	struct sup_pending *head, **tail;
	struct sup_pending *landed, **landed_tail; /* back from a worker, to commit */
	bool flushing;

	/* The tool workers: up to `workers` threads, started with the first
	 * call that needs one (n so far: a daemon whose calls never block
	 * stays single-threaded); `todo` and `done` are queues of jobs under
	 * mu; a worker writes w_done (an eventfd) after each job. */
	int workers, n;
	pthread_t *threads;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct sup_job *todo, **todo_tail, *done, **done_tail;
	bool quit;
	struct agd_watch w_done;
	size_t on_workers; /* jobs handed out and not yet taken back (loop only) */
};

static void on_held(struct agd_defer *d);

static struct sup_pending *
pending_free(struct sup_pending *p)
{
	if (!p)
		return NULL;
	json_decref(p->id);
	json_decref(p->args);
	free(p->args_text);
	json_decref(p->exec_args);
	sup_job_free(p->job);
	json_decref(p->content);
	free(p->text);
	free(p->rule_id);
	free(p->path_root);
	free(p->decision);
	free(p);
	return NULL;
}

static void on_deferred(struct agd_defer *d);
static void on_done(struct agd_watch *w, uint32_t events);

static void *
worker(void *arg)
{
	struct sup_batch *b = arg;
	const uint64_t one = 1;

	pthread_mutex_lock(&b->mu);
	for (;;) {
		while (!b->todo && !b->quit)
			pthread_cond_wait(&b->cv, &b->mu);
		struct sup_job *j = b->todo;
		if (!j) /* told to quit, and every job handed out has run */
			break;
		b->todo = j->next;
		if (!b->todo)
			b->todo_tail = &b->todo;
		pthread_mutex_unlock(&b->mu);
		sup_job_run(j);
		pthread_mutex_lock(&b->mu);
		j->next = NULL;
		*b->done_tail = j;
		b->done_tail = &j->next;
		(void)!write(b->w_done.fd, &one, sizeof(one));
	}
	pthread_mutex_unlock(&b->mu);
	return NULL;
}

/* Start the workers. They block every signal: signals are the loop's
 * (signalfd), and a SIGTERM taken by a worker would kill the daemon. True
 * when at least one runs. */
static bool
start_workers(struct sup_batch *b)
{
	sigset_t all, old;

	if (b->w_done.fd < 0) {
		b->w_done = (struct agd_watch){eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), on_done};
		if (b->w_done.fd < 0 || agd_loop_add(b->loop, &b->w_done, EPOLLIN) < 0) {
			agd_loop_close_watch(b->loop, &b->w_done);
			return false;
		}
	}
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	while (b->n < b->workers && pthread_create(&b->threads[b->n], NULL, worker, b) == 0)
		b->n++;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return b->n > 0;
}

struct sup_batch *
sup_batch_new(struct agd_loop *loop, struct store *st, int workers)
{
	struct sup_batch *b = calloc(1, sizeof(*b));

	if (!b)
		return NULL;
	b->d.fn = on_deferred;
	b->held.fn = on_held;
	b->loop = loop;
	b->st = st;
	b->tail = &b->head;
	b->landed_tail = &b->landed;
	b->todo_tail = &b->todo;
	b->done_tail = &b->done;
	b->w_done.fd = -1;
	pthread_mutex_init(&b->mu, NULL);
	pthread_cond_init(&b->cv, NULL);
	b->workers = workers;
	if (workers > 0 && !(b->threads = calloc((size_t)workers, sizeof(*b->threads))))
		return sup_batch_free(b);
	return b;
}

static void
forget(struct sup_pending *p)
{
	if (p->r)
		p->r->pending = NULL;
	pending_free(p);
}

struct sup_batch *
sup_batch_free(struct sup_batch *b)
{
	if (!b)
		return NULL;
	agd_loop_cancel(b->loop, &b->d);
	agd_loop_cancel(b->loop, &b->held);
	/* Outcomes answered in a held round: committed now. */
	if (store_batch_held(b->st))
		store_batch_commit(b->st);
	/* The jobs handed out run to their end (a tool is never abandoned
	 * half-way); their calls are dropped unanswered with their runs. */
	pthread_mutex_lock(&b->mu);
	b->quit = true;
	pthread_cond_broadcast(&b->cv);
	pthread_mutex_unlock(&b->mu);
	for (int i = 0; i < b->n; i++)
		pthread_join(b->threads[i], NULL);
	free(b->threads);
	while (b->done) {
		struct sup_job *j = b->done;
		b->done = j->next;
		forget(j->owner);
	}
	agd_loop_close_watch(b->loop, &b->w_done);
	pthread_cond_destroy(&b->cv);
	pthread_mutex_destroy(&b->mu);
	while (b->head) {
		struct sup_pending *p = b->head;
		b->head = p->next;
		forget(p);
	}
	while (b->landed) {
		struct sup_pending *p = b->landed;
		b->landed = p->next;
		forget(p);
	}
	free(b);
	return NULL;
}

static void
unlink_from(struct sup_pending **head, struct sup_pending ***tail, struct sup_pending *p)
{
	for (struct sup_pending **pp = head; *pp; pp = &(*pp)->next)
		if (*pp == p) {
			*pp = p->next;
			if (*tail == &p->next)
				*tail = pp;
			return;
		}
}

void
sup_batch_forget(struct sup_run *r)
{
	struct sup_batch *b = r->batch;
	struct sup_pending *p = r->pending;

	if (!p || !b)
		return;
	r->pending = NULL;
	if (p->on_worker) { /* the worker's to finish: dropped when it comes back */
		p->r = NULL;
		return;
	}
	unlink_from(&b->head, &b->tail, p);
	unlink_from(&b->landed, &b->landed_tail, p);
	pending_free(p);
}

void
sup_batch_workers(const struct sup_batch *b, int *ret_workers, size_t *ret_busy)
{
	*ret_workers = b->workers;
	*ret_busy = b->on_workers;
}

bool
sup_batch_busy(const struct sup_run *r)
{
	/* Landed is busy too: its outcome is written by the next flush, after
	 * whatever else this loop turn dispatches (a restart's tick, a cancel),
	 * which must not roll back or end the run under it. */
	return r->pending && (r->pending->on_worker || r->pending->landed);
}

int
sup_batch_add(struct sup_run *r, const json_t *id, const struct tool_def *t, const json_t *args,
	      char *args_text, size_t args_len, const char *hash, int64_t seq,
	      const struct policy_result *pr, const char *decision, const json_t *exec_args,
	      int64_t t0_ns, bool rerun)
{
	struct sup_batch *b = r->batch;
	struct sup_pending *p = calloc(1, sizeof(*p));

	if (!p) {
		free(args_text);
		return -ENOMEM;
	}
	*p = (struct sup_pending){
	    .r = r,
	    .attempt = r->attempt,
	    .id = json_incref((json_t *)id),
	    .t = t,
	    .args = json_incref((json_t *)args),
	    .args_text = args_text,
	    .args_len = args_len,
	    .exec_args = json_incref((json_t *)exec_args),
	    .seq = seq,
	    .t0_ns = t0_ns,
	    .started_ms = agd_wall_ms(),
	    .cls = t->classify(exec_args),
	    .rerun = rerun,
	    .reply_text = r->call_text,
	    .rule_id = strdup(pr->rule_id ? pr->rule_id : ""),
	    .path_root = pr->path_root ? strdup(pr->path_root) : NULL,
	    .decision = strdup(decision),
	};
	memcpy(p->hash, hash, AGD_DIGEST_HEX);
	if (!p->rule_id || !p->decision || (pr->path_root && !p->path_root)) {
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

/* The calls marked `wrote` put rows in the open batch, which was just
 * committed (or held) with result e: a failure fails every one of them. */
static void
settle(struct sup_pending *list, int e)
{
	for (struct sup_pending *p = list; p; p = p->next) {
		if (p->wrote && e < 0)
			fail_call(p, e);
		p->wrote = false;
	}
}

static void
commit(struct sup_batch *b, struct sup_pending *list)
{
	settle(list, store_batch_commit(b->st));
}

/* The outcomes' round ends held (docs/durability.md, "Held outcomes"):
 * answered once their records are written, committed with the next round
 * (its intents), or by on_held within HOLD_MS if none comes: an agent
 * thinking, a run ending. The store commits instead where holding does not
 * apply. */
#define HOLD_MS 1

static void
on_held(struct agd_defer *d)
{
	struct sup_batch *b = (struct sup_batch *)((char *)d - offsetof(struct sup_batch, held));

	/* A failure leaves the outcomes to the side file, which the next open
	 * of the store finishes (store_batch_abort). */
	if (store_batch_held(b->st))
		store_batch_commit(b->st);
}

static void
hold(struct sup_batch *b, struct sup_pending *list)
{
	settle(list, store_batch_hold(b->st));
	if (store_batch_held(b->st))
		agd_loop_after(b->loop, &b->held, HOLD_MS);
}

static void
store_call_of(const struct sup_pending *p, struct store_call *c)
{
	*c = (struct store_call){
	    .seq = p->seq,
	    .tool = (char *)p->t->name,
	    .args = p->args,
	    .args_text = p->args_text,
	    .args_len = p->args_len,
	    .attempt = p->attempt,
	    .decision = p->decision,
	    .rule = p->rule_id,
	    .started_ms = p->started_ms,
	};
	memcpy(c->args_hash, p->hash, AGD_DIGEST_HEX);
}

/* Phase 1: the intents, durable before any tool of the batch runs. */
static void
write_intents(struct sup_batch *b, struct sup_pending *list)
{
	bool any = false;
	int e;

	for (struct sup_pending *p = list; p; p = p->next)
		any |= !p->dead && p->cls != TOOL_PURE && !p->rerun;
	if (!any)
		return;
	e = store_batch_begin(b->st);
	for (struct sup_pending *p = list; p; p = p->next) {
		if (p->dead || p->cls == TOOL_PURE || p->rerun)
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

/* The tool's outcome (its job has run), encoded once, for the journal, the
 * budgets and the reply. */
static void
finish_tool(struct sup_pending *p)
{
	int e = sup_call_job_done(p->r, p->job, &p->content, &p->is_error);

	p->job = sup_job_free(p->job);
	if (e < 0) {
		p->dead = true;
		sup_fail(p->r, "tool %s failed internally: %s", p->t->name, strerror(-e));
		return;
	}
	e = store_json_text(p->content, &p->text, &p->text_len);
	if (e < 0) {
		fail_call(p, e);
		return;
	}
	sup_budget_result(p->r, p->t->name, p->content, p->text_len);
}

/* Phase 2: run the tool here, or hand it to a worker (true). */
static bool
start_tool(struct sup_batch *b, struct sup_pending *p)
{
	int e = sup_call_job(p->r, p->t, p->exec_args, p->seq, p->path_root, p->cls, &p->job);

	if (e < 0) {
		p->dead = true;
		sup_fail(p->r, "tool %s failed internally: %s", p->t->name, strerror(-e));
		return false;
	}
	/* No worker could be started (threads, fds): it runs here rather than
	 * not at all. */
	if (!b->workers || sup_job_inline(p->job) || (!b->n && !start_workers(b))) {
		sup_job_run(p->job);
		finish_tool(p);
		return false;
	}
	p->job->owner = p;
	p->on_worker = true;
	b->on_workers++;
	pthread_mutex_lock(&b->mu);
	*b->todo_tail = p->job;
	b->todo_tail = &p->job->next;
	pthread_cond_signal(&b->cv);
	pthread_mutex_unlock(&b->mu);
	return true;
}

/* Jobs back from the workers: their calls join the next flush. */
static void
on_done(struct agd_watch *w, uint32_t events)
{
	struct sup_batch *b = (struct sup_batch *)((char *)w - offsetof(struct sup_batch, w_done));
	uint64_t n;

	if (read(w->fd, &n, sizeof(n)) < 0)
		return;
	pthread_mutex_lock(&b->mu);
	struct sup_job *j = b->done;
	b->done = NULL;
	b->done_tail = &b->done;
	pthread_mutex_unlock(&b->mu);
	while (j) {
		struct sup_pending *p = j->owner;
		j = j->next;
		b->on_workers--;
		p->on_worker = false;
		if (!p->r) { /* its run was freed meanwhile */
			pending_free(p);
			continue;
		}
		p->landed = true;
		finish_tool(p);
		p->next = NULL;
		*b->landed_tail = p;
		b->landed_tail = &p->next;
	}
	agd_loop_defer(b->loop, &b->d);
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
		int w = p->cls == TOOL_PURE && !p->rerun
			    ? store_journal_record(b->st, p->r->id, &c)
			    : store_journal_finish_text(b->st, p->r->id, p->seq, c.status, p->text,
							p->text_len, c.finished_ms);
		if (w == 0)
			p->wrote = true;
		else
			fail_call(p, w);
	}
	if (e == 0)
		hold(b, list);
}

static void
reply(struct sup_pending *p)
{
	struct sup_run *r = p->r;
	char *frame = NULL;
	size_t len = 0;

	int64_t dur_us = (agd_now_ns() - p->t0_ns) / 1000;
	int e = proto_stored_result_frame(p->id, p->text, p->text_len, p->is_error, p->seq, false,
					  p->reply_text, &frame, &len);
	if (e == 0)
		sup_send_frame(r, frame, len);
	else
		sup_fail(r, "cannot answer #%lld: %s", (long long)p->seq, strerror(-e));
	/* After the answer: the agent goes on while the line is written. */
	sup_show_call(r, p->seq, p->t->name, p->decision, p->rule_id, p->is_error ? "error" : "ok",
		      false, dur_us);
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
	while (b->head || b->landed) {
		struct sup_pending *list = b->head, *ready = NULL, **rt = &ready;
		b->head = NULL;
		b->tail = &b->head;

		for (struct sup_pending *p = list; p; p = p->next) {
			struct sup_run *r = p->r;
			/* Abandoned: the run failed, ended or moved to another
			 * attempt since the call was queued; no row was written. */
			p->dead = p->attempt != r->attempt || r->fatal || sup_run_done(r);
		}
		write_intents(b, list);
		while (list) {
			struct sup_pending *p = list;
			list = p->next;
			p->next = NULL;
			if (!p->dead && start_tool(b, p))
				continue; /* on a worker: answered in a later round */
			*rt = p;
			rt = &p->next;
		}
		/* With the calls whose tools finished on a worker meanwhile. */
		*rt = b->landed;
		b->landed = NULL;
		b->landed_tail = &b->landed;
		write_outcomes(b, ready);
		for (struct sup_pending *p = ready; p; p = p->next)
			if (!p->dead)
				reply(p);
		/* The runs read again: what they sent meanwhile is answered now
		 * (its live calls queue for the next round). */
		while (ready) {
			struct sup_pending *p = ready;
			ready = p->next;
			struct sup_run *r = p->r;
			bool landed = p->landed;
			r->pending = NULL;
			pending_free(p);
			if (landed)
				sup_run_landed(r);
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
