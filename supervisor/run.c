/* A run's lifecycle: spawn the sandboxed child, watch it, restart it.
 *
 * State x event (s6-supervise style); every transition is in this file:
 *
 *   NEW      start            -> CHILD (spawned) | FAILED (spawn failed)
 *   CHILD    child exited 0   -> SUCCEEDED
 *   CHILD    child crashed    -> BACKOFF, or FAILED when the restart limit is hit
 *   CHILD    fatal (diverged, -> kill; FAILED when the child is reaped
 *            flood, journal)
 *   CHILD    stop             -> kill; INTERRUPTED
 *   BACKOFF  timer            -> CHILD | FAILED (respawn failed)
 *   BACKOFF  stop             -> INTERRUPTED
 *   CHILD    approval idle    -> kill; SUSPENDED (interact.c; started again once decided)
 *   CHILD    restart message  -> kill; CHILD (next attempt at once, journal rolled back)
 *   CHILD    wall-clock limit -> kill; FAILED when the child is reaped
 *   BACKOFF  wall-clock limit -> FAILED
 *   CHILD    cancel           -> calls refused, grace timer; CANCELLED when the child is reaped
 *   CHILD    grace timer      -> kill; CANCELLED when the child is reaped
 *   NEW/BACKOFF  cancel       -> CANCELLED
 *   any      a final state while a call's tool is on a worker (batch.c)
 *                             -> ENDING; that final state once the call lands
 *   BACKOFF  timer while a call's tool is on a worker -> BACKOFF; timer again when it lands
 *
 * SUCCEEDED, FAILED, INTERRUPTED, SUSPENDED and CANCELLED are final for this supervisor; an
 * INTERRUPTED or SUSPENDED run is resumable (`agentd resume`): its journal is the checkpoint.
 */
#include "supervisor/internal.h"
#include "supervisor/interact.h"

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/timerfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "sandbox/sandbox.h"
#include "store/store.h"

#define BACKOFF_FIRST_MS 100
#define BACKOFF_MAX_MS	 5000

/* ---- helpers shared with broker.c and call.c ---- */

void
sup_emit(struct sup_run *r, int64_t seq, const char *type, json_t *data)
{
	/* Calls are recorded by their journal rows; per-call events are only
	 * shown live so the hot path stays at the commits its class needs. */
	if (strncmp(type, "call.", 5) != 0)
		(void)store_event_append(r->st, r->id, r->attempt, seq, type, data);
	if (r->opt.on_event)
		r->opt.on_event(r->id, r->attempt, seq, type, data, r->opt.event_ud);
	json_decref(data);
}

static void
kill_child(struct sup_run *r)
{
	if (r->w_pid.fd >= 0)
		syscall(SYS_pidfd_send_signal, r->w_pid.fd, SIGKILL, NULL, 0);
}

void
sup_fail(struct sup_run *r, const char *fmt, ...)
{
	va_list ap;

	if (r->fatal)
		return; /* keep the first reason */
	va_start(ap, fmt);
	vsnprintf(r->reason, sizeof(r->reason), fmt, ap);
	va_end(ap);
	r->fatal = true;
	kill_child(r);
}

void
sup_send(struct sup_run *r, json_t *msg)
{
	if (r->w_chan.fd < 0 || !msg) {
		json_decref(msg);
		return;
	}
	int e = proto_send(r->w_chan.fd, msg, SUP_SEND_TIMEOUT_MS);
	json_decref(msg);
	if (e == -ETIMEDOUT)
		sup_fail(r, "agent stopped reading its channel for %d s",
			 SUP_SEND_TIMEOUT_MS / 1000);
	/* EPIPE: the child is gone; its exit is handled through the pidfd. */
}

void
sup_send_frame(struct sup_run *r, char *text, size_t len)
{
	cleanup_free char *t = text;

	if (r->w_chan.fd < 0 || !t)
		return;
	if (proto_send_frame(r->w_chan.fd, t, len, SUP_SEND_TIMEOUT_MS) == -ETIMEDOUT)
		sup_fail(r, "agent stopped reading its channel for %d s",
			 SUP_SEND_TIMEOUT_MS / 1000);
}

void
sup_reply_error(struct sup_run *r, const json_t *id, int code, const char *msg, json_t *data)
{
	if (!id) { /* notifications never get responses */
		json_decref(data);
		return;
	}
	sup_send(r, proto_error(id, code, msg, data));
}

/* ---- final states ---- */

static bool
is_final(enum sup_state s)
{
	return s == SUP_ST_SUCCEEDED || s == SUP_ST_FAILED || s == SUP_ST_INTERRUPTED ||
	       s == SUP_ST_SUSPENDED || s == SUP_ST_CANCELLED;
}

/* Final, or about to be (ENDING): nothing more may start. */
static bool
settled(enum sup_state s)
{
	return is_final(s) || s == SUP_ST_ENDING;
}

static void
finish(struct sup_run *r, enum sup_state s)
{
	/* The tool of its call still runs on a worker: the run ends when that
	 * call's outcome is journaled (sup_run_landed), so no one resumes it
	 * meanwhile and a daemon that stops waits for it. */
	if (sup_batch_busy(r)) {
		r->ending = s;
		r->state = SUP_ST_ENDING;
		return;
	}
	r->state = s;
	switch (s) {
	case SUP_ST_SUCCEEDED:
		r->reason[0] = '\0';
		store_run_set_status(r->st, r->id, "succeeded", r->exit_code, "");
		sup_emit(r, 0, "run.succeeded", json_pack("{s:i}", "exit_code", r->exit_code));
		break;
	case SUP_ST_INTERRUPTED:
		/* A paused run stays paused for whoever starts it next. */
		store_run_set_status(r->st, r->id, r->paused ? "paused" : "interrupted", -1,
				     r->reason);
		sup_emit(r, 0, "run.interrupted", json_pack("{s:s}", "reason", r->reason));
		break;
	case SUP_ST_SUSPENDED:
		/* As for an interruption: a paused run stays paused. */
		store_run_set_status(r->st, r->id, r->paused ? "paused" : "suspended", -1,
				     r->reason);
		sup_emit(r, 0, "run.suspended", json_pack("{s:s}", "reason", r->reason));
		break;
	case SUP_ST_CANCELLED:
		store_run_set_status(r->st, r->id, "cancelled", r->exit_code, r->reason);
		sup_emit(r, 0, "run.cancelled",
			 json_pack("{s:s,s:i}", "reason", r->reason, "exit_code", r->exit_code));
		break;
	default:
		if (!r->reason[0])
			snprintf(r->reason, sizeof(r->reason), "agent failed");
		store_run_set_status(r->st, r->id, "failed", r->exit_code, r->reason);
		sup_emit(r, 0, "run.failed",
			 json_pack("{s:s,s:i}", "reason", r->reason, "exit_code", r->exit_code));
		break;
	}
	if (r->opt.on_done)
		r->opt.on_done(r, r->opt.done_ud);
}

/* ---- spawning ---- */

static void
free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static char **
build_env(struct sup_run *r)
{
	json_t *extra = json_object_get(r->spec, "environment");
	char **env = calloc(10 + json_object_size(extra), sizeof(char *));
	const char *name;
	json_t *val;
	int i = 0;

	if (!env)
		return NULL;
	/* The run's own variables (POST /v1/runs "environment"): load_spec
	 * refused the reserved names, so none shadows the runtime's below. */
	json_object_foreach(extra, name, val)
	{
		env[i++] = agd_asprintf("%s=%s", name, json_string_value(val));
	}
	env[i++] = agd_asprintf("PATH=/opt/agentd/bin:/usr/local/bin:/usr/bin:/bin");
	env[i++] = agd_asprintf("PYTHONPATH=/opt/agentd/python");
	env[i++] = agd_asprintf("PYTHONUNBUFFERED=1");
	env[i++] = agd_asprintf("HOME=/workspace");
	env[i++] = agd_asprintf("LANG=C.UTF-8");
	env[i++] = agd_asprintf("AGENTD_FD=3");
	env[i++] = agd_asprintf("AGENTD_RUN_ID=%s", r->id);
	env[i++] = agd_asprintf("AGENTD_ATTEMPT=%d", r->attempt);
	for (int k = 0; k < i; k++)
		if (!env[k]) {
			/* free_strv stops at the first NULL: free every slot. */
			for (int j = 0; j < i; j++)
				free(env[j]);
			free(env);
			return NULL;
		}
	return env;
}

static void on_pidfd(struct agd_watch *w, uint32_t events);
static void on_chan(struct agd_watch *w, uint32_t events);

/* The policy's required defences, in the sandbox's terms. */
static unsigned
sandbox_require(const struct policy *p)
{
	unsigned req = policy_sandbox_require(p), out = 0;

	if (req & POLICY_DEFENCE_LANDLOCK)
		out |= SANDBOX_DEFENCE_LANDLOCK;
	if (req & POLICY_DEFENCE_CGROUP)
		out |= SANDBOX_DEFENCE_CGROUP;
	return out;
}

static json_t *
skipped_json(unsigned skipped)
{
	json_t *a = json_array();

	if (a && (skipped & SANDBOX_DEFENCE_LANDLOCK))
		json_array_append_new(a, json_string("landlock"));
	if (a && (skipped & SANDBOX_DEFENCE_CGROUP))
		json_array_append_new(a, json_string("cgroup"));
	return a;
}

/* Every earlier attempt's calls are replayable: load and verify the journal
 * (sandbox_spawn_gated runs this while the child builds its sandbox; the
 * agent starts only once it has passed). */
static int
load_journal(void *ud, char *err, size_t errsz)
{
	struct sup_run *r = ud;
	struct store_call *calls = NULL;
	size_t n = 0;
	int e;

	sup_replay_clear(&r->replay);
	e = store_journal_load_lazy(r->st, r->id, &calls, &n);
	if (e == 0 && (e = sup_replay_init(&r->replay, calls, n)) < 0)
		store_calls_free(calls, n);
	if (e < 0) {
		snprintf(err, errsz, "journal unreadable: %s", strerror(-e));
		return e;
	}
	r->next_seq = sup_replay_last_seq(&r->replay) + 1;
	/* Budgets continue from what the journal says was used. */
	e = sup_budget_rebuild(r, r->replay.calls, r->replay.n);
	if (e < 0) {
		snprintf(err, errsz, "budget rebuild failed: %s", strerror(-e));
		return e;
	}
	return 0;
}

/* Start the next attempt. On failure r->reason says why. */
static int
spawn_child(struct sup_run *r)
{
	json_t *jargv = json_object_get(r->spec, "argv");
	size_t argc = json_array_size(jargv);
	cleanup_free const char **argv = calloc(argc + 1, sizeof(char *));
	char **envp = NULL;
	int sv[2] = {-1, -1};
	struct sandbox_plan *plan = NULL;
	struct sandbox_child child;
	const struct sandbox_gate gate = {load_journal, r};
	char err[512] = ""; /* a refusal names the missing defence and how to enable it */
	int e;

	if (!argv)
		return -ENOMEM;
	for (size_t i = 0; i < argc; i++)
		argv[i] = json_string_value(json_array_get(jargv, i));

	e = store_run_next_attempt(r->st, r->id, &r->attempt);
	if (e < 0) {
		snprintf(r->reason, sizeof(r->reason), "store: %s", strerror(-e));
		return e;
	}
	envp = build_env(r);
	if (!envp)
		return -ENOMEM;

	const struct policy_mount *pm = NULL;
	size_t n_pm = policy_mounts(r->policy, &pm);
	cleanup_free struct sandbox_bind *binds = calloc(n_pm + 1, sizeof(*binds));
	size_t nb = 0;
	if (!binds) {
		free_strv(envp);
		return -ENOMEM;
	}
	if (r->opt.sdk_dir)
		binds[nb++] = (struct sandbox_bind){r->opt.sdk_dir, "/opt/agentd", false};
	for (size_t i = 0; i < n_pm; i++)
		binds[nb++] = (struct sandbox_bind){pm[i].host, pm[i].path, pm[i].read_write};

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
		e = -errno;
		free_strv(envp);
		return e;
	}
	const struct policy_limits *lim = policy_limits(r->policy);
	/* One cgroup per attempt, named after the run: a stale one left by a
	 * supervisor that died is found and reclaimed by the next attempt. */
	char cgname[64];
	snprintf(cgname, sizeof(cgname), "agentd-%s-%d", r->uid, r->attempt);
	struct sandbox_config cfg = {
	    .argv = argv,
	    .envp = (const char *const *)envp,
	    .cwd = r->cwd,
	    .workspace = r->workspace,
	    .channel_fd = sv[1],
	    .stdin_fd = -1,
	    .stdout_fd = r->opt.stdout_fd >= 0 ? r->opt.stdout_fd : STDOUT_FILENO,
	    .stderr_fd = r->opt.stderr_fd >= 0 ? r->opt.stderr_fd : STDERR_FILENO,
	    .binds = binds,
	    .n_binds = nb,
	    .rlimits = {.address_space = lim->memory_bytes, .processes = lim->pids},
	    .uid = r->opt.sandbox_uid,
	    .gid = r->opt.sandbox_gid,
	    .report_violations = true,
	    .network_loopback = policy_network_loopback(r->policy),
	    .cgroup = true,
	    .cgroup_parent = r->opt.cgroup_parent,
	    .cgroup_name = cgname,
	    .cgroup_limits = {.memory_max = lim->memory_bytes,
			      .pids_max = lim->pids,
			      .cpu_milli = lim->cpu_milli},
	    .require = sandbox_require(r->policy),
	};
	e = sandbox_prepare(&cfg, &plan, err, sizeof(err));
	if (e >= 0 && sandbox_notes(plan))
		sup_emit(r, 0, "sandbox.note", json_pack("{s:s}", "note", sandbox_notes(plan)));
	/* Optional defences the host lacks: the run goes on without them, and
	 * says which (a required one refused the plan above). */
	if (e >= 0 && sandbox_skipped(plan))
		sup_emit(r, 0, "sandbox.skipped",
			 json_pack("{s:o}", "defences", skipped_json(sandbox_skipped(plan))));
	if (e >= 0)
		e = sandbox_spawn_gated(plan, &gate, &child, err, sizeof(err));
	/* A child killed from outside during its setup (EPIPE on release,
	 * ESRCH on its id maps) is a crash of this start, not a broken
	 * configuration: start it again rather than fail the run. */
	for (int k = 0; k < 3 && (e == -EPIPE || e == -ESRCH); k++) {
		sup_emit(r, 0, "sandbox.respawn", json_pack("{s:s}", "error", err));
		err[0] = '\0';
		e = sandbox_spawn_gated(plan, &gate, &child, err, sizeof(err));
	}
	sandbox_plan_free(plan);
	free_strv(envp);
	close(sv[1]);
	if (e < 0) {
		close(sv[0]);
		snprintf(r->reason, sizeof(r->reason), "%s", err[0] ? err : strerror(-e));
		return e;
	}

	r->pid = child.pid;
	r->status_fd = child.status_fd;
	r->cgroup_fd = child.cgroup_fd;
	r->w_pid = (struct agd_watch){child.pidfd, on_pidfd};
	r->w_chan = (struct agd_watch){sv[0], on_chan};
	fcntl(sv[0], F_SETFL, O_NONBLOCK);
	proto_reader_free(&r->rd);
	if (proto_reader_init(&r->rd,
			      r->opt.max_frame ? r->opt.max_frame : PROTO_MAX_FRAME_DEFAULT) < 0 ||
	    agd_loop_add(r->loop, &r->w_chan, EPOLLIN) < 0 ||
	    agd_loop_add(r->loop, &r->w_pid, EPOLLIN) < 0) {
		/* The child cannot be watched: do not let it run unsupervised. */
		kill_child(r);
		siginfo_t si;
		waitid(P_PIDFD, (id_t)r->w_pid.fd, &si, WEXITED);
		agd_loop_close_watch(r->loop, &r->w_chan);
		agd_loop_close_watch(r->loop, &r->w_pid);
		if (child.notify_fd >= 0)
			close(child.notify_fd);
		sandbox_cgroup_remove(&r->cgroup_fd);
		snprintf(r->reason, sizeof(r->reason), "cannot watch the agent");
		return -ENOMEM;
	}
	sup_violations_start(r, child.notify_fd, child.network_loopback);
	r->malformed = 0;
	r->malformed_bytes = 0;
	r->replayed = r->first_replayed = r->last_replayed = 0;
	r->last_seq = 0;

	int64_t *ns = realloc(r->starts_ms, (r->n_starts + 1) * sizeof(int64_t));
	if (ns) {
		r->starts_ms = ns;
		r->starts_ms[r->n_starts++] = agd_now_ns() / 1000000;
	}
	r->state = SUP_ST_CHILD;
	sup_emit(r, 0, "attempt.started",
		 json_pack("{s:i,s:i,s:I}", "attempt", r->attempt, "pid", (int)r->pid,
			   "journal_len", (json_int_t)r->replay.n));
	return 0;
}

/* ---- events ---- */

static void
on_chan(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, w_chan));

	sup_broker_read(r);
}

/* Starts within the restart window (the one that just ended included). */
static int
recent_starts(struct sup_run *r)
{
	int64_t now = agd_now_ns() / 1000000;
	int k = 0;

	for (size_t i = 0; i < r->n_starts; i++)
		if (now - r->starts_ms[i] <= (int64_t)r->window_s * 1000)
			k++;
	return k;
}

/* Reap the child (it has exited or was killed) and forget its fds. */
static struct sandbox_exit
reap(struct sup_run *r)
{
	siginfo_t si = {0};
	struct sandbox_exit ex = {.signaled = true, .code = SIGKILL};

	if (waitid(P_PIDFD, (id_t)r->w_pid.fd, &si, WEXITED) == 0) {
		struct sandbox_child c = {.pid = r->pid,
					  .pidfd = r->w_pid.fd,
					  .status_fd = r->status_fd,
					  .notify_fd = -1};
		if (sandbox_child_exit(&c, &si, &ex) < 0)
			ex = (struct sandbox_exit){si.si_code != CLD_EXITED, si.si_status};
	}
	sup_violations_stop(r);
	agd_loop_close_watch(r->loop, &r->w_pid);
	if (r->status_fd >= 0)
		close(r->status_fd);
	r->status_fd = -1;
	/* The attempt is over: nothing it forked may outlive it. */
	if (r->cgroup_fd >= 0) {
		int e = sandbox_cgroup_remove(&r->cgroup_fd);
		if (e < 0)
			sup_emit(r, 0, "sandbox.cgroup_left",
				 json_pack("{s:s}", "error", strerror(-e)));
	}
	sup_broker_close(r);
	return ex;
}

static void
on_pidfd(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, w_pid));

	/* Answer what the child sent before it died, then reap it. Its calls
	 * go through the group commit now rather than after the loop's batch. */
	while (r->w_chan.fd >= 0) {
		sup_broker_read(r);
		if (!r->pending)
			break;
		sup_batch_flush(r->batch);
		if (r->pending) /* a flush already running: it answers this one */
			break;
	}
	struct sandbox_exit ex = reap(r);
	sup_violations_exit(r, ex.signaled, ex.code);
	json_t *data = !ex.signaled
			   ? json_pack("{s:i}", "exit_code", ex.code)
			   : json_pack("{s:i,s:s}", "signal", ex.code, "signame",
				       sigabbrev_np(ex.code) ? sigabbrev_np(ex.code) : "?");
	if (r->replayed)
		sup_emit(r, 0, "replay.summary",
			 json_pack("{s:I,s:I,s:I}", "replayed", (json_int_t)r->replayed, "first",
				   (json_int_t)r->first_replayed, "last",
				   (json_int_t)r->last_replayed));
	sup_emit(r, 0, "child.exited", data);

	if (r->cancelling) {
		r->exit_code = ex.signaled ? 128 + ex.code : ex.code;
		finish(r, SUP_ST_CANCELLED);
		return;
	}
	if (r->fatal) {
		r->exit_code = -1;
		finish(r, SUP_ST_FAILED);
		return;
	}
	r->exit_code = ex.signaled ? 128 + ex.code : ex.code;
	if (!ex.signaled && ex.code == 0) {
		finish(r, SUP_ST_SUCCEEDED);
		return;
	}
	int restarts = recent_starts(r) - 1; /* the first start is not a restart */
	if (restarts >= r->max_restarts) {
		snprintf(r->reason, sizeof(r->reason),
			 "agent %s %d; restart limit reached (%d restarts within %d s)",
			 ex.signaled ? "killed by signal" : "exited with status", ex.code,
			 r->max_restarts, r->window_s);
		finish(r, SUP_ST_FAILED);
		return;
	}
	/* The first restart within the window is immediate: a single crash
	 * resumes at once, and only a crash loop backs off (100 ms, doubling).
	 * It still goes through the timer (1 ns), so BACKOFF is one path. */
	int64_t delay = restarts == 0 ? 0 : BACKOFF_FIRST_MS;
	for (int i = 1; i < restarts && delay < BACKOFF_MAX_MS; i++)
		delay *= 2;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	struct itimerspec its = {.it_value = {delay / 1000, delay ? (delay % 1000) * 1000000 : 1}};
	timerfd_settime(r->w_timer.fd, 0, &its, NULL);
	r->state = SUP_ST_BACKOFF;
	sup_emit(r, 0, "restart.scheduled",
		 json_pack("{s:I,s:i,s:i}", "delay_ms", (json_int_t)delay, "restart", restarts + 1,
			   "max_restarts", r->max_restarts));
}

static void
on_timer(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, w_timer));
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) < 0 || r->state != SUP_ST_BACKOFF)
		return;
	/* The next attempt replays the journal: not before the outcome of the
	 * call still on a worker is in it. */
	if (sup_batch_busy(r)) {
		r->spawn_due = true;
		return;
	}
	if (spawn_child(r) < 0) {
		r->exit_code = -1;
		finish(r, SUP_ST_FAILED);
	}
}

/* ---- the run object ---- */

json_t *
sup_spec_new(char *const *argv, const char *cwd, const char *workspace, const json_t *policy_doc,
	     int max_restarts, int restart_window_s)
{
	json_t *a = json_array();
	uint8_t rnd[16];
	char uid[33];

	if (getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		json_decref(a);
		return NULL;
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(uid + 2 * i, 3, "%02x", rnd[i]);
	for (size_t i = 0; a && argv[i]; i++)
		json_array_append_new(a, json_string(argv[i]));
	return json_pack("{s:s,s:o,s:s,s:s,s:O,s:i,s:i}", "uid", uid, "argv", a, "cwd", cwd,
			 "workspace", workspace, "policy", policy_doc, "max_restarts", max_restarts,
			 "restart_window_s", restart_window_s);
}

int
sup_spec_set_owner(json_t *spec, uid_t uid, gid_t gid, const char *user)
{
	json_t *o = json_pack("{s:I,s:I,s:s}", "uid", (json_int_t)uid, "gid", (json_int_t)gid,
			      "user", user);

	if (!o || json_object_set_new(spec, "owner", o) < 0)
		return -ENOMEM;
	return 0;
}

/* Validate the stored spec (it is read back from disk: untrusted). */
static int
load_spec(struct sup_run *r, char *reason, size_t reasonsz)
{
	json_t *argv = NULL, *pol = NULL, *daemon = NULL, *durable = NULL, *owner = NULL,
	       *env = NULL;
	json_int_t owner_uid = -1, owner_gid = -1;
	const char *owner_user = NULL;
	json_error_t jerr = {.text = ""};

	/* "daemon" is agentd serve's own record of the run (owner, labels...);
	 * the supervisor does not interpret it. */
	if (json_unpack_ex(
		r->spec, &jerr, JSON_STRICT, "{s:s,s:o,s:s,s:s,s:o,s:i,s:i,s?o,s?o,s?o,s?o}", "uid",
		&r->uid, "argv", &argv, "cwd", &r->cwd, "workspace", &r->workspace, "policy", &pol,
		"max_restarts", &r->max_restarts, "restart_window_s", &r->window_s, "daemon",
		&daemon, "durable", &durable, "owner", &owner, "environment", &env) < 0 ||
	    (owner && (json_unpack_ex(owner, &jerr, JSON_STRICT, "{s:I,s:I,s:s}", "uid", &owner_uid,
				      "gid", &owner_gid, "user", &owner_user) < 0 ||
		       owner_uid < 0 || owner_uid > (json_int_t)UINT32_MAX - 1)) ||
	    (daemon && !json_is_object(daemon)) || strlen(r->uid) != 32 || !json_is_array(argv) ||
	    json_array_size(argv) == 0 || r->cwd[0] != '/' || r->workspace[0] != '/' ||
	    r->max_restarts < 0 || r->window_s <= 0) {
		snprintf(reason, reasonsz, "run %s has an invalid spec in the store: %s", r->id,
			 jerr.text[0] ? jerr.text
				      : "a field out of range (uid, argv, cwd and workspace "
					"absolute, max_restarts, restart_window_s, owner)");
		return -EBADMSG;
	}
	for (size_t i = 0; i < json_array_size(argv); i++)
		if (!json_is_string(json_array_get(argv, i))) {
			snprintf(reason, reasonsz, "run %s has a non-string argument", r->id);
			return -EBADMSG;
		}
	/* Checked again: the spec is read back from disk. */
	if (env && agd_env_check(env, reason, reasonsz) < 0)
		return -EBADMSG;
	r->owner_uid = owner_uid;
	/* One policy document, or the layers system, user, run... */
	int e = sup_layers_load(r, pol, reason, reasonsz);
	if (e < 0)
		return e;
	return sup_durable_parse(durable, &r->dur, reason, reasonsz);
}

int
sup_run_open(struct agd_loop *loop, struct store *st, const char *run_id,
	     const struct sup_options *opt, struct sup_run **ret, char *reason, size_t reasonsz)
{
	struct store_run sr = {0};
	struct sup_run *r = calloc(1, sizeof(*r));
	int e;

	reason[0] = '\0';
	if (!r || !(r->id = strdup(run_id))) {
		free(r);
		return -ENOMEM;
	}
	r->loop = loop;
	r->st = st;
	r->opt = *opt;
	r->status_fd = -1;
	r->cgroup_fd = -1;
	r->w_pid.fd = r->w_chan.fd = r->w_timer.fd = r->viol.w.fd = r->w_wall.fd = -1;
	r->w_grace.fd = -1;
	r->exit_code = -1;
	r->call_text = true;
	r->batch = opt->batch;
	if (!r->batch) {
		r->batch = sup_batch_new(loop, st, 0); /* one run: its tools on its loop */
		r->own_batch = true;
		if (!r->batch) {
			e = -ENOMEM;
			snprintf(reason, reasonsz, "out of memory");
			goto fail;
		}
	}
	e = store_run_get(st, run_id, &sr);
	if (e < 0) {
		snprintf(reason, reasonsz, "no run named %s", run_id);
		goto fail;
	}
	r->spec = steal_ptr(&sr.spec);
	store_run_clear(&sr);
	e = load_spec(r, reason, reasonsz);
	if (e < 0)
		goto fail;
	e = sup_secrets_load(r, reason, reasonsz);
	if (e < 0) {
		if (!reason[0])
			snprintf(reason, reasonsz, "cannot load secrets: %s", strerror(-e));
		goto fail;
	}
	r->w_timer = (struct agd_watch){timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
					on_timer};
	if (r->w_timer.fd < 0 || (e = agd_loop_add(loop, &r->w_timer, EPOLLIN)) < 0 ||
	    (e = proto_reader_init(&r->rd, PROTO_MAX_FRAME_DEFAULT)) < 0) {
		e = r->w_timer.fd < 0 ? -errno : e;
		snprintf(reason, reasonsz, "event loop setup failed: %s", strerror(-e));
		goto fail;
	}
	e = sup_durable_arm(r);
	if (e < 0) {
		snprintf(reason, reasonsz, "deadline timer setup failed: %s", strerror(-e));
		goto fail;
	}
	*ret = r;
	return 0;
fail:
	sup_run_free(r);
	return e;
}

/* The policy's limits.wall_clock, counted from this supervisor's start of
 * the run, across restarts and backoff. */
static void
on_wall(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, w_wall));
	uint64_t ticks, ms = policy_limits(r->policy)->wall_clock_ms;
	char lim[32];

	if (read(w->fd, &ticks, sizeof(ticks)) < 0 || settled(r->state))
		return;
	if (ms % 1000)
		snprintf(lim, sizeof(lim), "%llu ms", (unsigned long long)ms);
	else
		snprintf(lim, sizeof(lim), "%llu s", (unsigned long long)(ms / 1000));
	if (r->state == SUP_ST_CHILD) {
		sup_fail(r, "wall-clock limit of %s reached", lim);
		return; /* finished as failed when the child is reaped */
	}
	snprintf(r->reason, sizeof(r->reason), "wall-clock limit of %s reached", lim);
	r->exit_code = -1;
	finish(r, SUP_ST_FAILED);
}

static int
arm_wall_clock(struct sup_run *r)
{
	uint64_t ms = policy_limits(r->policy)->wall_clock_ms;

	if (!ms || r->w_wall.fd >= 0)
		return 0;
	r->w_wall = (struct agd_watch){timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
				       on_wall};
	struct itimerspec its = {.it_value = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000}};
	if (r->w_wall.fd < 0 || timerfd_settime(r->w_wall.fd, 0, &its, NULL) < 0 ||
	    agd_loop_add(r->loop, &r->w_wall, EPOLLIN) < 0) {
		agd_loop_close_watch(r->loop, &r->w_wall);
		snprintf(r->reason, sizeof(r->reason), "cannot arm the wall-clock limit");
		return -EIO;
	}
	return 0;
}

int
sup_run_start(struct sup_run *r)
{
	store_run_set_status(r->st, r->id, r->paused ? "paused" : "running", -1, "");
	/* A limit that cannot be enforced is a refusal, not a silent pass. */
	if (arm_wall_clock(r) < 0) {
		finish(r, SUP_ST_FAILED);
		return -EIO;
	}
	if (spawn_child(r) < 0) {
		static const char pre[] = "could not start the agent: ";
		size_t n = strnlen(r->reason, sizeof(r->reason) - sizeof(pre));
		memmove(r->reason + sizeof(pre) - 1, r->reason, n);
		memcpy(r->reason, pre, sizeof(pre) - 1);
		r->reason[sizeof(pre) - 1 + n] = '\0';
		finish(r, SUP_ST_FAILED);
		return -EIO;
	}
	return 0;
}

void
sup_run_stop(struct sup_run *r, const char *why)
{
	if (settled(r->state))
		return;
	if (r->w_pid.fd >= 0) {
		kill_child(r);
		reap(r);
	}
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	finish(r, SUP_ST_INTERRUPTED);
}

void
sup_suspend(struct sup_run *r, const char *why)
{
	if (settled(r->state))
		return;
	if (r->w_pid.fd >= 0) {
		kill_child(r);
		reap(r);
	}
	snprintf(r->reason, sizeof(r->reason), "%s", why);
	finish(r, SUP_ST_SUSPENDED);
}

void
sup_restart_now(struct sup_run *r)
{
	if (settled(r->state))
		return;
	/* A cancelled run gets no next attempt: the reap finishes it. */
	if (r->cancelling) {
		kill_child(r);
		return;
	}
	if (r->w_pid.fd >= 0) {
		kill_child(r);
		reap(r);
	}
	if (sup_batch_busy(r)) { /* the next attempt once its call lands */
		r->state = SUP_ST_BACKOFF;
		r->spawn_due = true;
		return;
	}
	if (spawn_child(r) < 0) {
		r->exit_code = -1;
		finish(r, SUP_ST_FAILED);
	}
}

void
sup_run_landed(struct sup_run *r)
{
	if (r->state == SUP_ST_ENDING) {
		finish(r, r->ending);
	} else if (r->spawn_due && r->state == SUP_ST_BACKOFF) {
		struct itimerspec its = {.it_value = {0, 1}};
		timerfd_settime(r->w_timer.fd, 0, &its, NULL);
	}
	r->spawn_due = false;
}

static void
on_grace(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, w_grace));
	uint64_t ticks;

	if (read(w->fd, &ticks, sizeof(ticks)) < 0 || r->state != SUP_ST_CHILD)
		return;
	snprintf(r->reason, sizeof(r->reason), "cancelled; killed after the grace period");
	kill_child(r); /* finished as cancelled when the child is reaped */
}

int
sup_run_cancel(struct sup_run *r, int grace_ms)
{
	if (settled(r->state))
		return -EALREADY;
	if (r->cancelling)
		return 0;
	r->cancelling = true;
	snprintf(r->reason, sizeof(r->reason), "cancelled");
	sup_emit(r, 0, "run.cancelling", json_pack("{s:i}", "grace_ms", grace_ms));
	if (r->state != SUP_ST_CHILD) {
		r->exit_code = -1;
		finish(r, SUP_ST_CANCELLED);
		return 0;
	}
	/* Without a timer the child could outlive the cancel: kill it now. */
	r->w_grace = (struct agd_watch){timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK),
					on_grace};
	struct itimerspec its = {.it_value = {grace_ms / 1000, (grace_ms % 1000) * 1000000 + 1}};
	if (r->w_grace.fd < 0 || timerfd_settime(r->w_grace.fd, 0, &its, NULL) < 0 ||
	    agd_loop_add(r->loop, &r->w_grace, EPOLLIN) < 0) {
		agd_loop_close_watch(r->loop, &r->w_grace);
		kill_child(r);
		return 0;
	}
	sup_ix_cancel(r);
	return 0;
}

bool
sup_run_done(const struct sup_run *r)
{
	return is_final(r->state);
}

const char *
sup_run_id(const struct sup_run *r)
{
	return r->id;
}

int
sup_run_result(const struct sup_run *r, int *ret_exit, const char **ret_reason)
{
	if (!is_final(r->state))
		return -EBUSY;
	*ret_exit = r->exit_code;
	*ret_reason = r->reason;
	if (r->state == SUP_ST_SUSPENDED)
		return -EAGAIN;
	if (r->state == SUP_ST_CANCELLED)
		return -ECANCELED;
	return r->state == SUP_ST_SUCCEEDED ? 0 : r->state == SUP_ST_INTERRUPTED ? -EINTR : -EIO;
}

struct sup_run *
sup_run_free(struct sup_run *r)
{
	if (!r)
		return NULL;
	sup_batch_forget(r);
	if (r->own_batch)
		r->batch = sup_batch_free(r->batch);
	if (r->w_pid.fd >= 0) {
		kill_child(r);
		reap(r);
	}
	sup_broker_close(r);
	sup_ix_free(r);
	agd_loop_close_watch(r->loop, &r->w_timer);
	agd_loop_close_watch(r->loop, &r->viol.w);
	agd_loop_close_watch(r->loop, &r->w_wall);
	agd_loop_close_watch(r->loop, &r->w_grace);
	if (r->status_fd >= 0)
		close(r->status_fd);
	proto_reader_free(&r->rd);
	sup_replay_clear(&r->replay);
	sup_budget_free(r->budget);
	sup_layers_free(r->layers);
	sup_secrets_free(r->secrets);
	r->dur = sup_durable_free(r->dur);
	policy_free(r->policy);
	json_decref(r->spec);
	free(r->starts_ms);
	free(r->id);
	free(r);
	return NULL;
}

/* ---- one run in the foreground ---- */

struct fg {
	struct agd_watch w_sig;
	struct sup_run *run;
};

static void
on_signal(struct agd_watch *w, uint32_t events)
{
	struct fg *fg = (struct fg *)w;
	struct signalfd_siginfo ssi;
	char why[256];

	if (read(w->fd, &ssi, sizeof(ssi)) != sizeof(ssi))
		return;
	snprintf(why, sizeof(why), "interrupted by SIG%s; continue with `agentd resume %s`",
		 sigabbrev_np((int)ssi.ssi_signo), fg->run->id);
	sup_run_stop(fg->run, why);
}

int
sup_supervise(struct store *st, const char *run_id, const struct sup_options *opt, int *ret_exit,
	      char *reason, size_t reasonsz)
{
	struct agd_loop loop;
	struct fg fg = {.w_sig = {-1, on_signal}};
	sigset_t mask, old;
	int e;

	reason[0] = '\0';
	*ret_exit = -1;
	e = agd_loop_init(&loop);
	if (e < 0) {
		snprintf(reason, reasonsz, "event loop setup failed: %s", strerror(-e));
		return e;
	}
	e = sup_run_open(&loop, st, run_id, opt, &fg.run, reason, reasonsz);
	if (e < 0) {
		agd_loop_close(&loop);
		return e;
	}
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, &old);
	fg.w_sig.fd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (fg.w_sig.fd < 0 || agd_loop_add(&loop, &fg.w_sig, EPOLLIN) < 0) {
		e = -errno;
		snprintf(reason, reasonsz, "signal setup failed: %s", strerror(-e));
		goto out;
	}
	sup_run_start(fg.run);
	while (!sup_run_done(fg.run) && (e = agd_loop_once(&loop, -1)) >= 0)
		;
	if (e < 0) {
		snprintf(reason, reasonsz, "event loop failed: %s", strerror(-e));
		goto out;
	}
	const char *why = "";
	e = sup_run_result(fg.run, ret_exit, &why);
	snprintf(reason, reasonsz, "%s", why);
	if (e == -EIO)
		e = 0; /* a failed run is a result, not a supervision error */
out:
	agd_loop_close_watch(&loop, &fg.w_sig);
	sigprocmask(SIG_SETMASK, &old, NULL);
	sup_run_free(fg.run);
	agd_loop_close(&loop);
	return e;
}
