/* agentd serve: the daemon. One agd_loop drives everything: signals (signalfd),
 * the control API (libmicrohttpd's epoll fd as one watch, api.c), every run's
 * supervisor (sup_run_open on the same loop), each run's log pipe, and a
 * housekeeping tick (wall-clock limits, parked connections' deadlines).
 *
 * Scheduling: runs wait in one FIFO per tenant (the owner's uid); the pump
 * starts them round robin across tenants while the global and per-tenant
 * running limits allow. A run's life as the daemon sees it:
 *
 *   queued     pump                -> running
 *   queued     cancel / kill       -> cancelled
 *   running    supervisor done     -> succeeded | failed | suspended | interrupted
 *   running    kill                -> cancelled (stopped now)
 *   running    cancel              -> running (calls refused) -> cancelled at child exit
 *   running    pause               -> paused (its next call waits)
 *   paused     resume              -> running
 *   paused     cancel / kill       -> as running
 *   paused     SIGTERM / crash     -> paused (in the store too: the next start resumes it paused)
 *   running    wall-clock limit    -> failed
 *   running    SIGTERM             -> interrupted (resumed at the next start)
 *   running    suspended while paused -> paused (no process, in the store too)
 *   suspended  pause               -> paused (no process, in the store too)
 *   suspended  approval decided    -> queued (head of its tenant's queue)
 *   paused, no process  approval decided -> paused (queued at the head, started held)
 *   paused, no process  resume     -> suspended, or queued if decided meanwhile
 *   interrupted  daemon start      -> running (replays its journal)
 *   paused     daemon start        -> paused (its journal replays once it is resumed;
 *                                     no process while its approval is pending)
 */
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <grp.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agentd/api.h"
#include "agentd/cli.h"
#include "agentd/serve.h"
#include "common/json.h"
#include "common/util.h"
#include "supervisor/retry.h"
#include "supervisor/tenant_ids.h"
#include "supervisor/tools/tools.h"

#define NOBODY		65534
#define TICK_MS		500
#define PUMP_BATCH	16 /* runs started per loop iteration */
#define CONFIG_MAX	(1u << 20)
#define LOG_MAX_DEFAULT (8LL << 20)

static void on_run_done(struct sup_run *sup, void *ud);

/* ---- the run table ---- */

bool
serve_run_final(const struct serve_run *r)
{
	return strcmp(r->status, "succeeded") == 0 || strcmp(r->status, "failed") == 0 ||
	       strcmp(r->status, "cancelled") == 0;
}

struct serve_run *
serve_run_find(struct serve *sv, const char *id)
{
	for (size_t i = 0; i < sv->n_runs; i++)
		if (!sv->runs[i]->deleted && strcmp(sv->runs[i]->id, id) == 0)
			return sv->runs[i];
	return NULL;
}

struct serve_run *
serve_run_find_idem(struct serve *sv, uid_t owner, const char *key)
{
	for (size_t i = 0; i < sv->n_runs; i++) {
		struct serve_run *r = sv->runs[i];
		if (!r->deleted && r->owner == owner && r->idem && strcmp(r->idem, key) == 0)
			return r;
	}
	return NULL;
}

static struct serve_tenant *
tenant_get(struct serve *sv, uid_t uid)
{
	struct serve_tenant **pp = &sv->tenants;

	for (; *pp; pp = &(*pp)->next)
		if ((*pp)->uid == uid)
			return *pp;
	*pp = calloc(1, sizeof(**pp));
	if (*pp)
		(*pp)->uid = uid;
	return *pp;
}

static struct serve_run *
run_free(struct serve_run *r)
{
	if (!r)
		return NULL;
	sup_run_free(r->sup);
	free(r->id);
	free(r->user);
	free(r->idem);
	free(r->msg_mode);
	free(r->webhook);
	free(r->reason);
	json_decref(r->labels);
	if (r->log_fd >= 0)
		close(r->log_fd);
	if (r->log_wr >= 0)
		close(r->log_wr);
	if (r->lock_fd >= 0)
		close(r->lock_fd);
	free(r);
	return NULL;
}

static int
table_add(struct serve *sv, struct serve_run *r)
{
	if (sv->n_runs == sv->cap_runs) {
		size_t cap = sv->cap_runs ? sv->cap_runs * 2 : 64;
		struct serve_run **v = realloc(sv->runs, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		sv->runs = v;
		sv->cap_runs = cap;
	}
	sv->runs[sv->n_runs++] = r;
	return 0;
}

static void
set_status(struct serve_run *r, const char *status, const char *reason)
{
	snprintf(r->status, sizeof(r->status), "%s", status);
	if (serve_run_final(r))
		r->finished_ms = agd_wall_ms();
	if (reason) {
		free(r->reason);
		r->reason = strdup(reason);
	}
}

/* ---- queue ---- */

static void
enqueue(struct serve_run *r, bool at_head)
{
	struct serve_tenant *t = r->tenant;

	r->queued = true;
	r->qnext = NULL;
	if (at_head) {
		r->qnext = t->qhead;
		t->qhead = r;
		if (!t->qtail)
			t->qtail = r;
	} else {
		if (t->qtail)
			t->qtail->qnext = r;
		else
			t->qhead = r;
		t->qtail = r;
	}
	t->queued++;
	set_status(r, "queued", "");
}

static void
dequeue(struct serve_run *r)
{
	struct serve_tenant *t = r->tenant;
	struct serve_run **pp = &t->qhead, *prev = NULL;

	for (; *pp; prev = *pp, pp = &(*pp)->qnext)
		if (*pp == r) {
			*pp = r->qnext;
			if (t->qtail == r)
				t->qtail = prev;
			t->queued--;
			r->queued = false;
			r->qnext = NULL;
			return;
		}
}

int
serve_queue_position(struct serve *sv, const struct serve_run *r)
{
	const struct serve_tenant *mine = r->tenant, *t;
	int idx = 0, pos = 0;

	if (!r->queued)
		return 0;
	for (const struct serve_run *q = mine->qhead; q && q != r; q = q->qnext)
		idx++;
	/* Round robin from the cursor: every tenant's first idx runs go before
	 * ours, and so do the (idx+1)-th runs of tenants ahead of ours. */
	bool before = true;
	t = sv->rr ? sv->rr : sv->tenants;
	for (struct serve_tenant *x = sv->tenants; x; x = x->next) {
		if (t == mine)
			before = false;
		pos += t->queued < idx ? t->queued : idx;
		if (before && t->queued > idx)
			pos++;
		t = t->next ? t->next : sv->tenants;
	}
	return pos + 1;
}

const char *
serve_log_path(struct serve *sv, const struct serve_run *r, char *buf, size_t bufsz)
{
	snprintf(buf, bufsz, "%s/runs/%s/agent.log", sv->cfg.state, r->id);
	return buf;
}

/* ---- waiters (parked connections) ---- */

void
serve_park(struct serve *sv, struct serve_run *r, struct serve_waiter *w)
{
	w->next = r->waiters;
	r->waiters = w;
	*w->parked = true;
	sv->n_parked++;
}

void
serve_unpark(struct serve *sv, struct serve_run *r, struct serve_waiter *w)
{
	for (struct serve_waiter **pp = &r->waiters; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			*w->parked = false;
			sv->n_parked--;
			return;
		}
}

void
serve_wake(struct serve *sv, struct serve_run *r)
{
	struct serve_waiter *w = r->waiters;

	r->waiters = NULL;
	while (w) {
		struct serve_waiter *next = w->next;
		*w->parked = false;
		sv->n_parked--;
		api_resume(sv, w->conn);
		w = next;
	}
}

/* ---- logs ---- */

static void
on_log(struct agd_watch *w, uint32_t events)
{
	struct serve_run *r = (struct serve_run *)((char *)w - offsetof(struct serve_run, w_log));
	char buf[65536];
	bool any = false;

	for (int rounds = 0; rounds < 16; rounds++) {
		ssize_t n = read(w->fd, buf, sizeof(buf));
		if (n <= 0) {
			if (n == 0 || (errno != EAGAIN && errno != EINTR))
				agd_loop_close_watch(&r->sv->loop, w);
			break;
		}
		any = true;
		int64_t room = r->sv->cfg.log_max_bytes - r->log_bytes;
		if (room > 0 && r->log_fd >= 0) {
			size_t k = (size_t)(n < room ? n : room);
			if (agd_write_all(r->log_fd, buf, k) == 0)
				r->log_bytes += (int64_t)k;
		}
		if ((int64_t)n > room && !r->log_truncated && r->log_fd >= 0) {
			/* Bounded per run: the rest is counted, not kept. */
			static const char note[] =
			    "\n[agentd: log limit reached; output dropped]\n";
			(void)agd_write_all(r->log_fd, note, sizeof(note) - 1);
			r->log_truncated = true;
		}
	}
	if (any)
		serve_wake(r->sv, r);
}

static int
log_open(struct serve *sv, struct serve_run *r)
{
	char path[PATH_MAX];
	int p[2];
	struct stat st;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	r->log_fd = open(serve_log_path(sv, r, path, sizeof(path)),
			 O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	r->log_bytes = r->log_fd >= 0 && fstat(r->log_fd, &st) == 0 ? st.st_size : 0;
	r->log_wr = p[1];
	r->w_log = (struct agd_watch){p[0], on_log};
	int e = agd_loop_add(&sv->loop, &r->w_log, EPOLLIN);
	if (e < 0) {
		close(p[0]);
		r->w_log.fd = -1;
	}
	return e;
}

static void
log_close(struct serve *sv, struct serve_run *r)
{
	if (r->log_wr >= 0)
		close(r->log_wr);
	r->log_wr = -1;
	if (r->w_log.fd >= 0)
		on_log(&r->w_log, EPOLLIN); /* what the agent wrote last */
	agd_loop_close_watch(&sv->loop, &r->w_log);
	if (r->log_fd >= 0)
		close(r->log_fd);
	r->log_fd = -1;
}

/* ---- starting and finishing runs ---- */

static void
on_run_event(const char *run_id, int attempt, int64_t seq, const char *type, const json_t *data,
	     void *ud)
{
	struct serve_run *r = ud;

	/* call.* events are live-only (not stored): nothing new for followers. */
	if (strncmp(type, "call.", 5) != 0)
		serve_wake(r->sv, r);
}

static int
lock_run(struct serve *sv, struct serve_run *r)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/runs/%s/lock", sv->cfg.state, r->id);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

/* Once per run, after its final status is stored. */
static void
run_finished(struct serve *sv, struct serve_run *r)
{
	if (r->webhook && !r->hooked && serve_run_final(r)) {
		r->hooked = true;
		serve_hook_send(sv, r->webhook, api_run_json(sv, r));
	}
}

static void
start_failed(struct serve *sv, struct serve_run *r, const char *why)
{
	set_status(r, "failed", why);
	store_run_set_status(sv->st, r->id, "failed", -1, why);
	serve_wake(sv, r);
	run_finished(sv, r);
}

/* Judge a running run by its stored stack narrowed with its user's layers as
 * the policy directory holds them now (SIGHUP, and each start: a run resumed
 * after a restart sees the files of the day). A reload can only narrow. */
static void
narrow_run(struct serve *sv, struct serve_run *r)
{
	cleanup_json json_t *layers = NULL;
	char err[512];
	int e = agd_policy_stack(sv->cfg.policy_dir[0] ? sv->cfg.policy_dir : NULL, r->user, NULL,
				 &layers, err, sizeof(err));

	if (e == 0)
		e = sup_run_narrow_policy(r->sup, layers, err, sizeof(err));
	if (e < 0)
		fprintf(stderr, "agentd: run %s keeps its policy: %s\n", r->id, err);
}

static void
start_run(struct serve *sv, struct serve_run *r)
{
	char reason[512];
	/* Recovered paused: it starts held, as it was. */
	bool paused = strcmp(r->status, "paused") == 0;
	int e;

	if (r->sup) { /* the previous supervisor of this run is done */
		r->sup = sup_run_free(r->sup);
		r->free_sup = false;
	}
	if (r->lock_fd < 0) {
		r->lock_fd = lock_run(sv, r);
		if (r->lock_fd < 0) {
			start_failed(sv, r, "run is supervised by another agentd");
			return;
		}
	}
	if (log_open(sv, r) < 0) {
		log_close(sv, r);
		start_failed(sv, r, "cannot set up the run's log");
		return;
	}
	struct sup_options opt = {
	    .approval = SUP_APPROVE_DURABLE,
	    .on_divergence = SUP_DIVERGE_FAIL,
	    .sdk_dir = sv->sdk_dir,
	    /* Root mode: a tenant's agents run as the tenant (its own files stay
	     * its own); root's as nobody. */
	    .sandbox_uid = r->sandbox_uid,
	    .sandbox_gid = (gid_t)r->sandbox_uid,
	    .on_event = on_run_event,
	    .event_ud = r,
	    .stdout_fd = r->log_wr,
	    .stderr_fd = r->log_wr,
	    .on_done = on_run_done,
	    .done_ud = r,
	    .approval_idle_suspend_s = sv->cfg.approval_idle_suspend_s,
	    .keep_states = sv->cfg.keep_states,
	    .cgroup_parent = getenv("AGENTD_CGROUP_PARENT"),
	    .batch = sv->batch,
	};
	e = sup_run_open(&sv->loop, sv->st, r->id, &opt, &r->sup, reason, sizeof(reason));
	if (e < 0) {
		log_close(sv, r);
		start_failed(sv, r, reason);
		return;
	}
	narrow_run(sv, r);
	if (paused && (e = sup_run_pause(r->sup)) < 0) {
		fprintf(stderr, "agentd: run %s cannot stay paused: %s\n", r->id, strerror(-e));
		paused = false;
	}
	r->tenant->running++;
	sv->running++;
	r->started_ms = agd_wall_ms();
	set_status(r, paused ? "paused" : "running", "");
	serve_wake(sv, r);
	sup_run_start(r->sup); /* on failure on_run_done has run already */
}

static void
defer_free(struct serve *sv, struct sup_run *sup)
{
	if (sv->n_free == sv->cap_free) {
		size_t cap = sv->cap_free ? sv->cap_free * 2 : 16;
		struct sup_run **v = realloc(sv->to_free, cap * sizeof(*v));
		if (!v)
			return; /* leaked rather than freed under the loop's feet */
		sv->to_free = v;
		sv->cap_free = cap;
	}
	sv->to_free[sv->n_free++] = sup;
}

static void
on_run_done(struct sup_run *sup, void *ud)
{
	struct serve_run *r = ud;
	struct serve *sv = r->sv;
	const char *why = "";
	int exit_code = -1;
	int e = sup_run_result(sup, &exit_code, &why);

	r->exit_code = exit_code;
	if (r->final_status && e != 0) {
		set_status(r, r->final_status, why);
		store_run_set_status(sv->st, r->id, r->final_status, exit_code, why);
	} else if (e == 0)
		set_status(r, "succeeded", "");
	else if (e == -EINTR)
		set_status(r, "interrupted", why);
	else if (e == -EAGAIN) /* the supervisor stored "paused" if it was */
		set_status(r, strcmp(r->status, "paused") == 0 ? "paused" : "suspended", why);
	else if (e == -ECANCELED)
		set_status(r, "cancelled", why);
	else
		set_status(r, "failed", why);
	r->final_status = NULL;
	log_close(sv, r);
	/* Suspended (paused or not) it stays ours until its decision. */
	if (r->lock_fd >= 0 && strcmp(r->status, "suspended") != 0 &&
	    strcmp(r->status, "paused") != 0)
		r->lock_fd = (close(r->lock_fd), -1);
	r->sup = NULL;
	defer_free(sv, sup);
	r->tenant->running--;
	sv->running--;
	serve_wake(sv, r);
	run_finished(sv, r);
	serve_pump(sv);
}

void
serve_pump(struct serve *sv)
{
	if (sv->pumping || sv->draining || sv->stopping)
		return;
	sv->pumping = true;
	sv->pump_more = false;
	int started = 0;
	while (sv->running < sv->cfg.max_running && sv->tenants) {
		/* Spawning is synchronous: start a batch, then let the loop
		 * serve the API and the running agents before the next one. */
		if (started == PUMP_BATCH) {
			sv->pump_more = true;
			break;
		}
		struct serve_tenant *t = sv->rr ? sv->rr : sv->tenants, *pick = NULL;
		for (struct serve_tenant *x = sv->tenants; x; x = x->next) {
			if (t->queued > 0 && t->running < sv->cfg.max_running_per_user) {
				pick = t;
				break;
			}
			t = t->next ? t->next : sv->tenants;
		}
		if (!pick)
			break;
		struct serve_run *r = pick->qhead;
		sv->rr = pick->next ? pick->next : sv->tenants;
		dequeue(r);
		start_run(sv, r);
		started++;
	}
	sv->pumping = false;
}

int
serve_run_cancel(struct serve *sv, struct serve_run *r, bool kill)
{
	const char *why = kill ? "killed" : "cancelled";

	if (serve_run_final(r))
		return -EALREADY;
	if (r->queued)
		dequeue(r);
	if (r->sup && !sup_run_done(r->sup)) {
		if (strcmp(r->status, "paused") == 0)
			set_status(r, "running", NULL);
		if (!kill) {
			/* The agent sees the refusal at its next call and can
			 * end cleanly; on_run_done records "cancelled". */
			int e = sup_run_cancel(r->sup, SERVE_CANCEL_GRACE_MS);
			serve_wake(sv, r);
			return e;
		}
		r->final_status = "cancelled";
		sup_run_stop(r->sup, why);
		return 0;
	}
	set_status(r, "cancelled", why);
	store_run_set_status(sv->st, r->id, "cancelled", -1, why);
	if (r->lock_fd >= 0)
		r->lock_fd = (close(r->lock_fd), -1);
	serve_wake(sv, r);
	run_finished(sv, r);
	return 0;
}

static bool has_pending_approval(struct serve *sv, struct serve_run *r);

/* A suspended run holds no process: its pause is only its status, in the
 * store too, and whoever starts it next (a decision, a daemon start) starts
 * it held. */
static int
pause_stopped(struct serve *sv, struct serve_run *r, bool pause)
{
	if (strcmp(r->status, pause ? "suspended" : "paused") != 0)
		return -EALREADY;
	/* Resumed: back to waiting for its approval, or queued if it was
	 * decided while paused (then it is queued already). */
	const char *to = "paused";

	if (!pause)
		to = r->queued || !has_pending_approval(sv, r) ? "queued" : "suspended";
	int e = store_run_set_status(sv->st, r->id, to, -1, "");
	if (e < 0)
		return e;
	/* The event a supervised run's pause emits, at its last attempt; the
	 * status change is made either way. */
	struct store_run sr = {0};
	if (store_run_get(sv->st, r->id, &sr) == 0) {
		json_t *data = json_pack("{s:b}", "process", 0);
		(void)store_event_append(sv->st, r->id, sr.attempts, 0,
					 pause ? "run.paused" : "run.resumed", data);
		json_decref(data);
	}
	store_run_clear(&sr);
	if (!pause && !r->queued && strcmp(to, "queued") == 0)
		enqueue(r, true);
	set_status(r, to, NULL);
	serve_wake(sv, r);
	serve_pump(sv);
	return 0;
}

int
serve_run_pause(struct serve *sv, struct serve_run *r, bool pause)
{
	if (!r->sup)
		return pause_stopped(sv, r, pause);
	if (sup_run_done(r->sup) || strcmp(r->status, pause ? "running" : "paused") != 0)
		return -EALREADY;
	int e = pause ? sup_run_pause(r->sup) : sup_run_resume(r->sup);
	if (e < 0)
		return e;
	/* The supervisor keeps it in the store: a restarted daemon starts the
	 * run paused again. */
	set_status(r, pause ? "paused" : "running", NULL);
	serve_wake(sv, r);
	return 0;
}

int
serve_run_restart(struct serve *sv, struct serve_run *r)
{
	bool paused = strcmp(r->status, "paused") == 0 && !r->sup;

	if (r->queued || (!paused && strcmp(r->status, "suspended") != 0 &&
			  strcmp(r->status, "interrupted") != 0))
		return -EALREADY;
	enqueue(r, true);
	/* A paused one stays paused, in the store too: start_run starts it
	 * held, as a daemon start does. */
	if (paused)
		set_status(r, "paused", NULL);
	else
		store_run_set_status(sv->st, r->id, "queued", -1, "");
	serve_pump(sv);
	return 0;
}

/* ---- submission ---- */

static void
new_id(char *buf, size_t bufsz)
{
	uint32_t rnd = 0;
	time_t now = time(NULL);
	struct tm tm;

	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (uint32_t)agd_now_ns();
	gmtime_r(&now, &tm);
	snprintf(buf, bufsz, "r-%04d%02d%02d-%02d%02d%02d-%08x", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, rnd);
}

static char *
user_name(uid_t uid)
{
	struct passwd pw, *res = NULL;
	char buf[4096];

	if (getpwuid_r(uid, &pw, buf, sizeof(buf), &res) == 0 && res)
		return strdup(res->pw_name);
	return agd_asprintf("%u", (unsigned)uid);
}

int
serve_submit(struct serve *sv, uid_t uid, gid_t gid, const struct api_run_req *req,
	     struct serve_run **ret_run, char *err, size_t errsz)
{
	char id[80], ws[PATH_MAX + 16], dir[PATH_MAX];
	struct stat st;
	int e;

	if (sv->draining || sv->stopping) {
		snprintf(err, errsz, "agentd is %s: not accepting runs",
			 sv->stopping ? "stopping" : "draining");
		return -ESHUTDOWN;
	}
	if (req->idempotency_key) {
		struct serve_run *old = serve_run_find_idem(sv, uid, req->idempotency_key);
		if (old) {
			*ret_run = old;
			return 1;
		}
	}
	struct serve_tenant *t = tenant_get(sv, uid);
	if (!t)
		return -ENOMEM;
	if (t->queued >= sv->cfg.max_queued_per_user) {
		snprintf(err, errsz, "you have %d runs queued, the limit: retry later", t->queued);
		return -EUSERS;
	}
	if (req->name) {
		struct store_run sr = {0};
		if (serve_run_find(sv, req->name) || store_run_get(sv->st, req->name, &sr) == 0) {
			store_run_clear(&sr);
			snprintf(err, errsz, "a run named %s exists", req->name);
			return -EEXIST;
		}
		snprintf(id, sizeof(id), "%s", req->name);
	} else
		new_id(id, sizeof(id));

	if (req->webhook && !serve_hook_host_allowed(sv, req->webhook)) {
		snprintf(err, errsz, "webhooks to that host are not enabled (webhook_hosts)");
		return -EINVAL;
	}
	cleanup_free char *user = user_name(uid);
	if (!user)
		return -ENOMEM;
	/* The user's layers from the policy directory (system, then the user's
	 * own or default.json), then the request's document as the run's layer:
	 * every layer must allow a call, so a run can only narrow its user. */
	cleanup_json json_t *layers = NULL, *doc = NULL;
	e = agd_policy_stack(sv->cfg.policy_dir[0] ? sv->cfg.policy_dir : NULL, user, NULL, &layers,
			     err, errsz);
	if (e < 0)
		return e == -ENOMEM ? e : -EINVAL;
	e = api_run_policy(layers, req->policy, &doc, err, errsz);
	if (e < 0)
		return e;
	/* Root mode: the tenant's own unprivileged uid, stable per state dir. */
	uid_t sid = NOBODY;
	if (geteuid() == 0) {
		e = sup_tenant_id(sv->cfg.state, user, SUP_TENANT_ID_BASE, SUP_TENANT_ID_COUNT,
				  &sid);
		if (e < 0) {
			snprintf(err, errsz, "no sandbox uid for %s: %s", user, strerror(-e));
			return e;
		}
	}

	snprintf(dir, sizeof(dir), "%s/runs/%s", sv->cfg.state, id);
	snprintf(ws, sizeof(ws), "%s/workspace", dir);
	const char *cwd = req->cwd ? req->cwd : ws;
	char canon[PATH_MAX];
	if (req->cwd && (stat(req->cwd, &st) < 0 || !S_ISDIR(st.st_mode))) {
		snprintf(err, errsz, "cwd %s is not a directory", req->cwd);
		return -EINVAL;
	}
	/* The sandbox binds it at the same path: canonical, and not the root. */
	if (req->cwd && (!realpath(req->cwd, canon) || strcmp(canon, req->cwd) != 0 ||
			 strcmp(canon, "/") == 0)) {
		snprintf(err, errsz, "cwd %s must be a canonical absolute path other than /",
			 req->cwd);
		return -EINVAL;
	}
	e = agd_mkdir_p(ws, 0700);
	if (e < 0) {
		snprintf(err, errsz, "cannot create the workspace: %s", strerror(-e));
		return e;
	}
	if (geteuid() == 0 && chown(ws, sid, sid) < 0) {
		snprintf(err, errsz, "cannot hand the workspace to the sandbox user");
		return -errno;
	}

	size_t argc = json_array_size(req->argv);
	cleanup_free char **argv = calloc(argc + 1, sizeof(char *));
	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		argv[i] = (char *)json_string_value(json_array_get(req->argv, i));
	cleanup_json json_t *spec = sup_spec_new(argv, cwd, ws, doc, req->max_restarts, 60);
	int64_t wall_s = req->wall_clock_s;
	json_t *labels = req->labels ? json_deep_copy(req->labels) : json_object();
	json_t *daemon = json_pack("{s:I,s:I,s:s,s:o,s:s,s:I,s:I}", "owner", (json_int_t)uid, "gid",
				   (json_int_t)gid, "user", user, "labels", labels, "message_mode",
				   req->message_mode, "wall_clock_s", (json_int_t)wall_s,
				   "sandbox_uid", (json_int_t)sid);
	if (!spec || !daemon || json_object_set_new(spec, "daemon", daemon) < 0 ||
	    sup_spec_set_owner(spec, uid, gid, user) < 0)
		return -ENOMEM;
	if (req->idempotency_key &&
	    json_object_set_new(daemon, "idempotency_key", json_string(req->idempotency_key)) < 0)
		return -ENOMEM;
	if (req->webhook && json_object_set_new(daemon, "webhook", json_string(req->webhook)) < 0)
		return -ENOMEM;
	if (req->environment && json_object_set(spec, "environment", req->environment) < 0)
		return -ENOMEM;

	struct serve_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct serve_run){
	    .sv = sv,
	    .id = strdup(id),
	    .owner = uid,
	    .owner_gid = gid,
	    .user = steal_ptr(&user),
	    .idem = req->idempotency_key ? strdup(req->idempotency_key) : NULL,
	    .webhook = req->webhook ? strdup(req->webhook) : NULL,
	    .labels = json_incref(json_object_get(daemon, "labels")),
	    .msg_mode = strdup(req->message_mode),
	    .created_ms = agd_wall_ms(),
	    .wall_ms = wall_s * 1000,
	    .sandbox_uid = sid,
	    .order = sv->next_order++,
	    .exit_code = -1,
	    .reason = strdup(""),
	    .tenant = t,
	    .w_log = {-1, on_log},
	    .log_wr = -1,
	    .log_fd = -1,
	    .lock_fd = -1,
	};
	if (!r->id || !r->msg_mode || !r->reason || (req->idempotency_key && !r->idem) ||
	    (req->webhook && !r->webhook)) {
		run_free(r);
		return -ENOMEM;
	}
	/* One commit holds the spec with its owner: a crash cannot leave an
	 * ownerless run. The status goes to queued right after; a run found
	 * "running" with no attempt on recovery is queued again. */
	e = store_run_create(sv->st, id, spec);
	if (e < 0) {
		snprintf(err, errsz, "cannot record the run: %s", strerror(-e));
		run_free(r);
		return e == -EEXIST ? -EEXIST : e;
	}
	store_run_set_status(sv->st, id, "queued", -1, "");
	if ((e = table_add(sv, r)) < 0) {
		run_free(r);
		return e;
	}
	enqueue(r, false);
	*ret_run = r;
	/* Started by the loop once this reply is on its way: a submit never
	 * waits for a sandbox to be built. */
	sv->pump_more = true;
	return 0;
}

/* ---- deletion and retention ---- */

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	/* FTW_PHYS: symlinks are removed, never followed. */
	return (flag == FTW_DP ? rmdir(path) : unlink(path)) < 0 && errno != ENOENT ? -errno : 0;
}

int
serve_run_delete(struct serve *sv, struct serve_run *r, const char *why)
{
	char dir[PATH_MAX];

	if (!serve_run_final(r))
		return -EBUSY;
	/* The journal and events stay in the store (audit); the run's files
	 * go, and the run is no longer listed, shown or resumed. */
	int e = store_run_set_status(sv->st, r->id, "deleted", r->exit_code, why);
	if (e < 0)
		return e;
	snprintf(dir, sizeof(dir), "%.1023s/runs/%.128s", sv->cfg.state, r->id);
	(void)nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	serve_wake(sv, r);
	/* Kept in memory, hidden: a stream still sending may point at it. */
	r->deleted = true;
	sv->n_deleted++;
	return 0;
}

static void
retention_sweep(struct serve *sv, int64_t now)
{
	if (!sv->cfg.retention_s)
		return;
	for (size_t i = 0; i < sv->n_runs; i++) {
		struct serve_run *r = sv->runs[i];
		if (!r->deleted && serve_run_final(r) && r->finished_ms &&
		    now - r->finished_ms >= sv->cfg.retention_s * 1000)
			(void)serve_run_delete(sv, r, "retention");
	}
}

/* ---- fork ---- */

/* A new run that starts where `src` stood after call `at`: the same command,
 * cwd, policy and owner; the journal up to `at` and the newest state saved by
 * then are copied, so its first attempt replays them and goes live after.
 * It gets a new uid (calls after `at` are new operations with idempotency
 * keys of their own) and a fresh workspace, and is queued like a submit. */
int
serve_run_fork(struct serve *sv, struct serve_run *src, int64_t at, const char *name,
	       struct serve_run **ret_run, char *err, size_t errsz)
{
	struct store_run sr = {0};
	struct store_call *calls = NULL;
	size_t n = 0;
	char id[80], ws[PATH_MAX + 16];
	uint8_t rnd[16];
	char uid[33];
	int e;

	if (sv->draining || sv->stopping) {
		snprintf(err, errsz, "agentd is %s: not accepting runs",
			 sv->stopping ? "stopping" : "draining");
		return -ESHUTDOWN;
	}
	if (src->tenant->queued >= sv->cfg.max_queued_per_user) {
		snprintf(err, errsz, "you have %d runs queued, the limit: retry later",
			 src->tenant->queued);
		return -EUSERS;
	}
	if (name)
		snprintf(id, sizeof(id), "%s", name);
	else
		snprintf(id, sizeof(id), "%.40s-fork%lld", src->id, (long long)at);
	if (serve_run_find(sv, id) || store_run_get(sv->st, id, &sr) == 0) {
		store_run_clear(&sr);
		snprintf(err, errsz, "a run named %s exists", id);
		return -EEXIST;
	}
	if ((e = store_run_get(sv->st, src->id, &sr)) < 0)
		return e;
	cleanup_json json_t *spec = json_deep_copy(sr.spec);
	store_run_clear(&sr);
	if (!spec)
		return -ENOMEM;
	if ((e = store_journal_load(sv->st, src->id, &calls, &n)) < 0) {
		snprintf(err, errsz, "cannot read the journal of %s", src->id);
		return e;
	}
	if ((size_t)at > n) {
		store_calls_free(calls, n);
		snprintf(err, errsz, "run %s has calls #1..#%zu", src->id, n);
		return -EINVAL;
	}
	for (size_t i = 0; i < (size_t)at; i++)
		if (calls[i].status == STORE_CALL_INTENT) {
			/* Its outcome is unknown and its key names the source run. */
			snprintf(err, errsz, "call #%lld has an unknown outcome; fork before it",
				 (long long)calls[i].seq);
			store_calls_free(calls, n);
			return -EINVAL;
		}
	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		store_calls_free(calls, n);
		return -EIO;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(uid + 2 * i, 3, "%02x", rnd[i]);
	snprintf(ws, sizeof(ws), "%s/runs/%s/workspace", sv->cfg.state, id);
	json_t *d = json_object_get(spec, "daemon");
	e = agd_mkdir_p(ws, 0700);
	if (e == 0 && geteuid() == 0 && chown(ws, src->sandbox_uid, src->sandbox_uid) < 0)
		e = -errno;
	if (e == 0 &&
	    (json_object_set_new(spec, "uid", json_string(uid)) < 0 ||
	     json_object_set_new(spec, "workspace", json_string(ws)) < 0 || !json_is_object(d) ||
	     json_object_set_new(d, "forked_from",
				 json_pack("{s:s,s:I}", "run", src->id, "seq", (json_int_t)at)) <
		 0))
		e = -ENOMEM;
	if (e == 0) /* the key stays the source's: a retried submit finds that one */
		json_object_del(d, "idempotency_key");
	/* One transaction: a fork that fails part way leaves no run with only
	 * some of the calls copied. */
	if (e == 0)
		e = store_batch_begin(sv->st);
	if (e == 0)
		e = store_run_create(sv->st, id, spec);
	for (size_t i = 0; e == 0 && i < (size_t)at; i++)
		e = store_journal_record(sv->st, id, &calls[i]);
	store_calls_free(calls, n);
	json_t *state = NULL;
	int64_t sseq = 0;
	if (e == 0 && store_state_load_at(sv->st, src->id, at, &state, &sseq) == 0) {
		e = store_state_save(sv->st, id, sseq, state);
		json_decref(state);
	}
	if (e == 0)
		e = store_run_set_status(sv->st, id, "queued", -1, "");
	if (e == 0)
		e = store_batch_commit(sv->st);
	else
		store_batch_abort(sv->st);
	if (e < 0) {
		snprintf(err, errsz, "cannot create the fork: %s", strerror(-e));
		return e;
	}
	struct serve_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct serve_run){
	    .sv = sv,
	    .id = strdup(id),
	    .owner = src->owner,
	    .owner_gid = src->owner_gid,
	    .user = strdup(src->user),
	    .labels = json_incref(src->labels),
	    .msg_mode = strdup(src->msg_mode),
	    .created_ms = agd_wall_ms(),
	    .wall_ms = src->wall_ms,
	    .sandbox_uid = src->sandbox_uid,
	    .order = sv->next_order++,
	    .exit_code = -1,
	    .reason = strdup(""),
	    .tenant = src->tenant,
	    .w_log = {-1, on_log},
	    .log_wr = -1,
	    .log_fd = -1,
	    .lock_fd = -1,
	};
	if (!r->id || !r->user || !r->msg_mode || !r->reason || (e = table_add(sv, r)) < 0) {
		run_free(r);
		return -ENOMEM;
	}
	enqueue(r, false);
	sv->pump_more = true;
	*ret_run = r;
	return 0;
}

/* ---- recovery ---- */

struct rec {
	struct serve *sv;
	struct serve_run **v;
	size_t n, cap;
	int attempts_dummy;
};

static int
recover_one(const struct store_run *sr, void *ud)
{
	struct rec *rc = ud;
	json_t *d = json_object_get(sr->spec, "daemon");
	json_int_t owner = -1, gid = -1, wall = 0, sid = NOBODY;
	const char *user = NULL, *mode = "queue", *idem = NULL, *hook = NULL;
	json_t *labels = NULL;

	/* Runs made by `agentd run` in the same state dir have no daemon
	 * record: their own supervisor owns them. */
	if (!json_is_object(d) || strcmp(sr->status, "deleted") == 0 ||
	    json_unpack(d, "{s:I,s:I,s:s,s:o,s:s,s:I,s?s,s?I,s?s}", "owner", &owner, "gid", &gid,
			"user", &user, "labels", &labels, "message_mode", &mode, "wall_clock_s",
			&wall, "idempotency_key", &idem, "sandbox_uid", &sid, "webhook",
			&hook) < 0 ||
	    sid <= 0 || sid > UINT32_MAX - 1 || owner < 0 || owner > UINT32_MAX - 1 || gid < 0 ||
	    gid > UINT32_MAX - 1 || !json_is_object(labels) || !api_valid_message_mode(mode) ||
	    wall < 0)
		return 0;
	if (rc->n == rc->cap) {
		size_t cap = rc->cap ? rc->cap * 2 : 64;
		struct serve_run **v = realloc(rc->v, cap * sizeof(*v));
		if (!v)
			return -ENOMEM;
		rc->v = v;
		rc->cap = cap;
	}
	struct serve_run *r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	*r = (struct serve_run){
	    .sv = rc->sv,
	    .id = strdup(sr->id),
	    .owner = (uid_t)owner,
	    .owner_gid = (gid_t)gid,
	    .user = strdup(user),
	    .idem = idem ? strdup(idem) : NULL,
	    .webhook = hook ? strdup(hook) : NULL,
	    .labels = json_incref(labels),
	    .msg_mode = strdup(mode),
	    .created_ms = sr->created_ms,
	    .wall_ms = wall * 1000,
	    .sandbox_uid = (uid_t)sid,
	    .exit_code = sr->exit_code,
	    .reason = strdup(sr->reason),
	    .w_log = {-1, on_log},
	    .log_wr = -1,
	    .log_fd = -1,
	    .lock_fd = -1,
	};
	snprintf(r->status, sizeof(r->status), "%s", sr->status);
	r->finished_ms = serve_run_final(r) ? sr->updated_ms : 0;
	r->hooked = serve_run_final(r); /* final before this start: reported then */
	/* A run recorded "running" before its first attempt was still queued. */
	if (strcmp(sr->status, "running") == 0 && sr->attempts == 0)
		snprintf(r->status, sizeof(r->status), "queued");
	rc->v[rc->n++] = r;
	return 0;
}

static int
cmp_created(const void *a, const void *b)
{
	const struct serve_run *x = *(struct serve_run *const *)a,
			       *y = *(struct serve_run *const *)b;

	if (x->created_ms != y->created_ms)
		return x->created_ms < y->created_ms ? -1 : 1;
	return strcmp(x->id, y->id);
}

static int
count_one(const struct store_approval *a, void *ud)
{
	(*(int *)ud)++;
	return 1;
}

static bool
has_pending_approval(struct serve *sv, struct serve_run *r)
{
	int n = 0;

	/* On a store error keep it suspended: a decision can still restart it. */
	return store_approval_foreach(sv->st, r->id, "pending", NULL, count_one, &n) < 0 || n > 0;
}

/* Load every daemon run; queue the queued ones and resume the ones that were
 * running when the previous daemon stopped or died: their journals are their
 * checkpoints, so nothing runs twice. */
static int
recover(struct serve *sv, int *ret_resumed)
{
	struct rec rc = {.sv = sv};
	int e = store_run_foreach(sv->st, recover_one, &rc), resumed = 0;

	if (e < 0) {
		for (size_t i = 0; i < rc.n; i++)
			run_free(rc.v[i]);
		free(rc.v);
		return e;
	}
	if (rc.n) /* qsort wants an array even for none */
		qsort(rc.v, rc.n, sizeof(*rc.v), cmp_created);
	for (size_t i = 0; i < rc.n; i++) {
		struct serve_run *r = rc.v[i];
		r->order = sv->next_order++;
		r->tenant = tenant_get(sv, r->owner);
		if (!r->tenant || table_add(sv, r) < 0) {
			run_free(r);
			continue;
		}
		if (strcmp(r->status, "queued") == 0)
			enqueue(r, false);
		else if (strcmp(r->status, "suspended") == 0 && !has_pending_approval(sv, r))
			enqueue(r, true); /* decided while no daemon ran (agentd approve) */
		else if (strcmp(r->status, "paused") == 0 && has_pending_approval(sv, r))
			; /* paused on its approval: no process until it is decided */
		else if (strcmp(r->status, "running") == 0 ||
			 strcmp(r->status, "interrupted") == 0 ||
			 strcmp(r->status, "paused") == 0) {
			start_run(sv, r);
			resumed++;
		}
	}
	free(rc.v);
	*ret_resumed = resumed;
	return 0;
}

/* ---- signals, tick, loop ---- */

static void
stop_all(struct serve *sv, const char *why)
{
	for (size_t i = 0; i < sv->n_runs; i++)
		if (sv->runs[i]->sup && !sup_run_done(sv->runs[i]->sup))
			sup_run_stop(sv->runs[i]->sup, why);
}

static void
on_signal(struct agd_watch *w, uint32_t events)
{
	struct serve *sv = (struct serve *)((char *)w - offsetof(struct serve, w_sig));
	struct signalfd_siginfo ssi;

	if (read(w->fd, &ssi, sizeof(ssi)) != sizeof(ssi))
		return;
	if (ssi.ssi_signo == SIGHUP) {
		/* New submissions read the files anyway; running runs are
		 * narrowed by them (never widened). */
		int n = 0;
		for (size_t i = 0; i < sv->n_runs; i++)
			if (sv->runs[i]->sup && !sup_run_done(sv->runs[i]->sup)) {
				narrow_run(sv, sv->runs[i]);
				n++;
			}
		fprintf(stderr, "agentd: SIGHUP: policies reloaded for %d running run%s\n", n,
			n == 1 ? "" : "s");
		return;
	}
	if (sv->stopping)
		return;
	fprintf(stderr, "agentd: SIG%s: stopping %d running run%s (resumed at the next start)\n",
		sigabbrev_np((int)ssi.ssi_signo), sv->running, sv->running == 1 ? "" : "s");
	serve_notify("STOPPING=1\nSTATUS=stopping");
	sv->stopping = true;
	stop_all(sv, "agentd stopped; resumed when it starts again");
	for (size_t i = 0; i < sv->n_runs; i++)
		serve_wake(sv, sv->runs[i]);
}

static void
on_tick(struct agd_watch *w, uint32_t events)
{
	struct serve *sv = (struct serve *)((char *)w - offsetof(struct serve, w_tick));
	uint64_t ticks;
	int64_t now = agd_wall_ms();

	if (read(w->fd, &ticks, sizeof(ticks)) < 0)
		return;
	bool heartbeat = now - sv->heartbeat_ms >= API_HEARTBEAT_MS;
	if (heartbeat)
		sv->heartbeat_ms = now;
	if (now - sv->swept_ms >= 1000) {
		sv->swept_ms = now;
		retention_sweep(sv, now);
	}
	for (size_t i = 0; i < sv->n_runs; i++) {
		struct serve_run *r = sv->runs[i];
		if (heartbeat && r->waiters) {
			serve_wake(sv, r);
			continue;
		}
		if (r->sup && !sup_run_done(r->sup) && r->wall_ms &&
		    now - r->started_ms >= r->wall_ms) {
			char why[128];
			snprintf(why, sizeof(why), "wall-clock limit of %lld s reached",
				 (long long)(r->wall_ms / 1000));
			r->final_status = "failed";
			sup_run_stop(r->sup, why);
		}
		/* Parked connections whose deadline passed are woken to answer. */
		for (struct serve_waiter *x = r->waiters; x; x = x->next)
			if (x->deadline_ms && now >= x->deadline_ms) {
				serve_wake(sv, r);
				break;
			}
	}
}

static int
listen_unix(const char *path, bool world)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	char dir[PATH_MAX];
	struct stat st;

	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	snprintf(dir, sizeof(dir), "%.107s", path); /* fits sun_path, checked above */
	int e = agd_mkdir_p(dirname(dir), 0755);
	if (e < 0)
		return e;
	strcpy(sa.sun_path, path);
	cleanup_close int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	/* A stale socket from a daemon that died; the state lock says none runs. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
		unlink(path);
	mode_t old = umask(world ? 0111 : 0177);
	int r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (r < 0 || listen(fd, 512) < 0)
		return -errno;
	return take_fd(&fd);
}

static int
load_tokens(struct serve_config *c, const json_t *tokens)
{
	size_t i;
	json_t *t;

	if (!json_is_array(tokens) || json_array_size(tokens) > 10000)
		return -EINVAL;
	c->tokens = calloc(json_array_size(tokens) + 1, sizeof(*c->tokens));
	if (!c->tokens)
		return -ENOMEM;
	json_array_foreach(tokens, i, t)
	{
		const char *user = NULL, *hash = NULL;
		int admin = 0;
		struct passwd pw, *res = NULL;
		char buf[4096];
		if (json_unpack(t, "{s:s,s:s,s?b}", "user", &user, "sha256", &hash, "admin",
				&admin) < 0 ||
		    strlen(hash) != 64 || strspn(hash, "0123456789abcdef") != 64 ||
		    getpwnam_r(user, &pw, buf, sizeof(buf), &res) != 0 || !res)
			return -EINVAL;
		struct serve_token *k = &c->tokens[c->n_tokens++];
		memcpy(k->sha256, hash, 65);
		k->uid = res->pw_uid;
		k->gid = res->pw_gid;
		k->admin = admin;
	}
	return 0;
}

/* HOST:PORT ([v6]:PORT too), bound with SO_REUSEADDR. */
static int
listen_tcp(const char *spec)
{
	char host[128];
	const char *colon = strrchr(spec, ':');
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai = NULL;
	int one = 1;

	snprintf(host, sizeof(host), "%.*s", (int)(colon - spec), spec);
	if (host[0] == '[' && host[strlen(host) - 1] == ']') {
		memmove(host, host + 1, strlen(host));
		host[strlen(host) - 1] = '\0';
	}
	if (getaddrinfo(host, colon + 1, &hints, &ai) != 0 || !ai)
		return -EINVAL;
	cleanup_close int fd =
	    socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, ai->ai_protocol);
	int e = fd < 0 ? -errno : 0;
	if (!e)
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (!e && (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 512) < 0))
		e = -errno;
	freeaddrinfo(ai);
	return e < 0 ? e : take_fd(&fd);
}

static int
load_config(struct serve_config *c, const char *path)
{
	cleanup_free char *buf = NULL;
	size_t len;
	json_error_t jerr;
	const char *state = NULL, *sock = NULL, *pdir = NULL, *group = NULL;
	json_int_t maxr = c->max_running, maxu = c->max_running_per_user,
		   maxq = c->max_queued_per_user, logmax = c->log_max_bytes,
		   idle = c->approval_idle_suspend_s, workers = c->tool_workers;
	const char *tcp = NULL;
	json_t *tokens = NULL;
	json_int_t retention = 0, keep = 0;
	json_t *hook_hosts = NULL;
	int e = agd_read_file(path, CONFIG_MAX, &buf, &len);

	if (e < 0)
		return agd_die(-1, "config %s: %s", path, strerror(-e));
	cleanup_json json_t *doc = agd_json_parse(buf, len, 16, &jerr);
	if (!doc ||
	    json_unpack_ex(doc, &jerr, JSON_STRICT,
			   "{s?s,s?s,s?s,s?s,s?I,s?I,s?I,s?I,s?I,s?s,s?o,s?I,s?o,s?I,s?I}", "state",
			   &state, "socket", &sock, "policy_dir", &pdir, "admin_group", &group,
			   "max_running", &maxr, "max_running_per_user", &maxu,
			   "max_queued_per_user", &maxq, "log_max_bytes", &logmax,
			   "approval_idle_suspend_s", &idle, "tcp_listen", &tcp, "tokens", &tokens,
			   "retention_s", &retention, "webhook_hosts", &hook_hosts, "keep_states",
			   &keep, "tool_workers", &workers) < 0)
		return agd_die(-1, "config %s:%d: %s", path, jerr.line, jerr.text);
	if (maxr < 1 || maxr > 100000 || maxu < 1 || maxu > 100000 || maxq < 0 || maxq > 1000000 ||
	    logmax < 0)
		return agd_die(-1, "config %s: limits out of range", path);
	if (workers < 0 || workers > SERVE_TOOL_WORKERS_MAX)
		return agd_die(-1,
			       "config %s: tool_workers must be 0..%d (0: tools run on the loop "
			       "thread)",
			       path, SERVE_TOOL_WORKERS_MAX);
	c->tool_workers = (int)workers;
	c->max_running = (int)maxr;
	c->max_running_per_user = (int)maxu;
	c->max_queued_per_user = (int)maxq;
	c->log_max_bytes = logmax;
	c->approval_idle_suspend_s = idle < -1 ? -1 : idle > 86400 * 365 ? 86400 * 365 : (int)idle;
	if (tcp && (strlen(tcp) >= sizeof(c->tcp_listen) || !strrchr(tcp, ':')))
		return agd_die(-1, "config %s: tcp_listen takes HOST:PORT", path);
	if (tcp)
		snprintf(c->tcp_listen, sizeof(c->tcp_listen), "%s", tcp);
	if (retention < 0)
		return agd_die(-1, "config %s: retention_s must be >= 0", path);
	c->retention_s = retention;
	if (keep < 0 || keep > SUP_KEEP_STATES_MAX)
		return agd_die(-1,
			       "config %s: keep_states must be 0..%d (0: no automatic retention)",
			       path, SUP_KEEP_STATES_MAX);
	c->keep_states = (int)keep;
	if (hook_hosts) {
		size_t i;
		json_t *h;
		if (!json_is_array(hook_hosts) || json_array_size(hook_hosts) > 1000)
			return agd_die(-1, "config %s: webhook_hosts is a list of host names",
				       path);
		c->hook_hosts = calloc(json_array_size(hook_hosts) + 1, sizeof(char *));
		if (!c->hook_hosts)
			return agd_die(-1, "out of memory");
		json_array_foreach(hook_hosts, i, h)
		{
			if (!json_is_string(h) ||
			    !(c->hook_hosts[i] = strdup(json_string_value(h))))
				return agd_die(
				    -1, "config %s: webhook_hosts is a list of host names", path);
			c->n_hook_hosts = i + 1;
		}
	}
	if (tokens && load_tokens(c, tokens) < 0)
		return agd_die(-1,
			       "config %s: tokens: [{\"user\": NAME, \"sha256\": 64 hex, "
			       "\"admin\"?: bool}...] with existing users",
			       path);
	if (c->tcp_listen[0] && c->n_tokens == 0)
		return agd_die(-1, "config %s: tcp_listen needs tokens", path);
	if (state)
		snprintf(c->state, sizeof(c->state), "%s", state);
	if (sock)
		snprintf(c->socket, sizeof(c->socket), "%s", sock);
	if (pdir)
		snprintf(c->policy_dir, sizeof(c->policy_dir), "%s", pdir);
	if (group) {
		struct group gr, *res = NULL;
		char gbuf[8192];
		if (getgrnam_r(group, &gr, gbuf, sizeof(gbuf), &res) != 0 || !res)
			return agd_die(-1, "config %s: no group named %s", path, group);
		c->admin_gid = res->gr_gid;
		c->has_admin_group = true;
	}
	return 0;
}

static const char *
default_sdk_dir(char *buf, size_t bufsz)
{
	const char *env = getenv("AGENTD_SDK_DIR");
	char exe[PATH_MAX], cand[PATH_MAX + 32];
	struct stat st;
	ssize_t n;

	if (env && env[0] == '/')
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	snprintf(cand, sizeof(cand), "%s/share/agentd/sdk", dirname(dirname(exe)));
	if (stat(cand, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(cand, buf) || bufsz < PATH_MAX)
		return NULL;
	return buf;
}

static void
serve_free(struct serve *sv)
{
	serve_hooks_free(sv);
	for (size_t i = 0; i < sv->n_free; i++)
		sup_run_free(sv->to_free[i]);
	free(sv->to_free);
	for (size_t i = 0; i < sv->n_runs; i++)
		run_free(sv->runs[i]);
	free(sv->runs);
	sv->batch = sup_batch_free(sv->batch);
	while (sv->tenants) {
		struct serve_tenant *t = sv->tenants;
		sv->tenants = t->next;
		free(t);
	}
	agd_loop_close_watch(&sv->loop, &sv->w_sig);
	agd_loop_close_watch(&sv->loop, &sv->w_tick);
	store_close(sv->st);
	agd_loop_close(&sv->loop);
	if (sv->lock_fd >= 0)
		close(sv->lock_fd);
	free(sv->cfg.tokens);
	for (size_t i = 0; i < sv->cfg.n_hook_hosts; i++)
		free(sv->cfg.hook_hosts[i]);
	free(sv->cfg.hook_hosts);
}

static void
usage_serve(FILE *f)
{
	fputs("usage: agentd serve [--config FILE] [--state DIR] [--socket PATH]\n", f);
}

int
agd_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"state", required_argument, NULL, 's'},
	    {"socket", required_argument, NULL, 'S'},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	static struct serve sv_storage;
	struct serve *sv = &sv_storage;
	const char *config = NULL, *state = NULL, *sock = NULL;
	char path[PATH_MAX + 32];
	int c, e, resumed = 0;
	bool root = geteuid() == 0;

	*sv = (struct serve){
	    .cfg = {.max_running = 64,
		    .max_running_per_user = 16,
		    .max_queued_per_user = 1000,
		    .log_max_bytes = LOG_MAX_DEFAULT,
		    .tool_workers = SERVE_TOOL_WORKERS_DEFAULT},
	    .w_sig = {-1, on_signal},
	    .w_tick = {-1, on_tick},
	    .w_mhd = {-1, NULL},
	    .w_mhd_tcp = {-1, NULL},
	    .lock_fd = -1,
	};
	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'S':
			sock = optarg;
			break;
		case 'h':
			usage_serve(stdout);
			return 0;
		default:
			usage_serve(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage_serve(stderr);
		return 2;
	}
	/* Defaults, then the config file, then the command line. */
	const char *xdg_state = getenv("XDG_STATE_HOME"), *home = getenv("HOME"),
		   *xdg_run = getenv("XDG_RUNTIME_DIR");
	if (root)
		snprintf(sv->cfg.state, sizeof(sv->cfg.state), "/var/lib/agentd");
	else if (xdg_state && xdg_state[0] == '/')
		snprintf(sv->cfg.state, sizeof(sv->cfg.state), "%s/agentd", xdg_state);
	else if (home && home[0] == '/')
		snprintf(sv->cfg.state, sizeof(sv->cfg.state), "%s/.local/state/agentd", home);
	if (root)
		snprintf(sv->cfg.socket, sizeof(sv->cfg.socket), "/run/agentd/agentd.sock");
	else if (xdg_run && xdg_run[0] == '/')
		snprintf(sv->cfg.socket, sizeof(sv->cfg.socket), "%s/agentd.sock", xdg_run);
	if (config && load_config(&sv->cfg, config) < 0)
		return 2;
	if (state)
		snprintf(sv->cfg.state, sizeof(sv->cfg.state), "%s", state);
	if (sock)
		snprintf(sv->cfg.socket, sizeof(sv->cfg.socket), "%s", sock);
	if (!sv->cfg.state[0] || !sv->cfg.socket[0])
		return agd_die(2, "no state directory or socket path: pass --state and --socket");

	e = agd_mkdir_p(sv->cfg.state, 0700);
	if (e < 0)
		return agd_die(1, "cannot use state directory %s: %s", sv->cfg.state, strerror(-e));
	snprintf(path, sizeof(path), "%.1023s/serve.lock", sv->cfg.state);
	sv->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (sv->lock_fd < 0 || flock(sv->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return agd_die(1, "another agentd serve uses %s", sv->cfg.state);
	snprintf(path, sizeof(path), "%.1023s/agentd.db", sv->cfg.state);
	/* AGENTD_DURABILITY=power: synchronous=FULL, one fsync per group commit. */
	e = store_open(path, agd_durability(), &sv->st);
	if (e < 0)
		return agd_die(1, "cannot open store %s: %s", path, agd_store_open_error(e));
	if ((e = agd_loop_init(&sv->loop)) < 0)
		return agd_die(1, "event loop: %s", strerror(-e));
	/* Every run's live calls share the journal's commits; their tools that
	 * may block run on the workers (threads started by the first such
	 * call, after tools_global_init below, which is not thread-safe). */
	sv->batch = sup_batch_new(&sv->loop, sv->st, sv->cfg.tool_workers);
	if (!sv->batch)
		return agd_die(1, "out of memory");
	sv->sdk_dir = default_sdk_dir(sv->sdk, sizeof(sv->sdk));
	if ((e = serve_hooks_init(sv)) < 0)
		return agd_die(1, "webhooks: %s", strerror(-e));
	sv->started_ms = agd_wall_ms();
	tools_global_init();
	/* Each run holds a handful of fds (pidfd, channel, log pipe, timer,
	 * lock): take the whole hard limit (systemd's LimitNOFILE sets it). */
	struct rlimit nofile;
	if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
		nofile.rlim_cur = nofile.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &nofile);
	}

	sigset_t mask;
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	signal(SIGPIPE, SIG_IGN);
	sv->w_sig.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	sv->w_tick.fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	struct itimerspec its = {.it_interval = {0, TICK_MS * 1000000L},
				 .it_value = {0, TICK_MS * 1000000L}};
	if (sv->w_sig.fd < 0 || sv->w_tick.fd < 0 ||
	    timerfd_settime(sv->w_tick.fd, 0, &its, NULL) < 0 ||
	    agd_loop_add(&sv->loop, &sv->w_sig, EPOLLIN) < 0 ||
	    agd_loop_add(&sv->loop, &sv->w_tick, EPOLLIN) < 0) {
		serve_free(sv);
		return agd_die(1, "signal/timer setup failed: %s", strerror(errno));
	}

	int lfd = listen_unix(sv->cfg.socket, root);
	if (lfd < 0) {
		serve_free(sv);
		return agd_die(1, "cannot listen on %s: %s", sv->cfg.socket, strerror(-lfd));
	}
	e = api_start(sv, lfd);
	if (e < 0) {
		close(lfd);
		serve_free(sv);
		return agd_die(1, "cannot start the HTTP server: %s", strerror(-e));
	}
	if (sv->cfg.tcp_listen[0]) {
		int tfd = listen_tcp(sv->cfg.tcp_listen);
		e = tfd < 0 ? tfd : api_start_tcp(sv, tfd);
		if (e < 0) {
			if (tfd >= 0)
				close(tfd);
			api_stop(sv);
			serve_free(sv);
			return agd_die(1, "cannot listen on tcp %s: %s", sv->cfg.tcp_listen,
				       strerror(-e));
		}
		fprintf(stderr, "agentd: also serving on tcp %s (bearer tokens)\n",
			sv->cfg.tcp_listen);
	}
	e = recover(sv, &resumed);
	if (e < 0)
		fprintf(stderr, "agentd: cannot read runs from the store: %s\n", strerror(-e));
	serve_pump(sv);
	fprintf(stderr, "agentd: serving on %s (state %s, %zu runs known, %d resumed)\n",
		sv->cfg.socket, sv->cfg.state, sv->n_runs, resumed);
	serve_notify("READY=1\nSTATUS=serving on %s; %d runs resumed", sv->cfg.socket, resumed);

	int rc = 0;
	while (!(sv->stopping && sv->running == 0)) {
		int timeout = api_timeout_ms(sv);
		e = agd_loop_once(&sv->loop, sv->pump_more ? 0 : timeout);
		if (e < 0) {
			fprintf(stderr, "agentd: event loop failed: %s\n", strerror(-e));
			rc = 1;
			break;
		}
		api_run(sv);
		for (size_t i = 0; i < sv->n_free; i++)
			sup_run_free(sv->to_free[i]);
		sv->n_free = 0;
		if (sv->pump_more)
			serve_pump(sv);
	}
	stop_all(sv, "agentd stopped; resumed when it starts again");
	api_stop(sv);
	unlink(sv->cfg.socket);
	serve_free(sv);
	fprintf(stderr, "agentd: stopped\n");
	return rc;
}
