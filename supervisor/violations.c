/* Sandbox violations: every syscall the seccomp filter denies is held by the
 * kernel until the supervisor answers it through the child's listener (see
 * sandbox_violation_next), and becomes a "sandbox.violation" event in the
 * run's timeline: {"syscall", "nr", "args": {name: value}, "action",
 * "errno"}. The answer is the filter's own errno, so recording changes
 * nothing the program sees. A hostile program can deny itself syscalls in a
 * loop: events are rate-limited per run and the rest counted. */
#include "supervisor/internal.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

#define VIOL_BURST	20 /* events stored at once */
#define VIOL_PER_SECOND 5  /* refill rate after the burst */
#define VIOL_PER_WAKEUP 64 /* notifications answered per loop turn */

static bool
take_token(struct sup_violations *v)
{
	int64_t now = agd_now_ns() / 1000000;

	if (v->last_ms == 0) {
		v->tokens = VIOL_BURST;
		v->last_ms = now;
	}
	int64_t refill = (now - v->last_ms) * VIOL_PER_SECOND / 1000;
	if (refill > 0) {
		v->tokens = v->tokens + refill > VIOL_BURST ? VIOL_BURST : v->tokens + refill;
		v->last_ms = now;
	}
	if (v->tokens <= 0)
		return false;
	v->tokens--;
	return true;
}

static void
flush_suppressed(struct sup_run *r)
{
	if (!r->viol.suppressed)
		return;
	sup_emit(r, 0, "sandbox.violations_suppressed",
		 json_pack("{s:I,s:s}", "count", (json_int_t)r->viol.suppressed, "why",
			   "rate limit of sandbox.violation events"));
	r->viol.suppressed = 0;
}

static void
record(struct sup_run *r, const struct sandbox_violation *sv)
{
	if (!take_token(&r->viol)) {
		r->viol.suppressed++;
		return;
	}
	json_t *args = json_object();
	for (size_t i = 0; args && i < sv->n_args; i++)
		json_object_set_new(args, sv->args[i].name,
				    json_integer((json_int_t)sv->args[i].value));
	const char *en = strerrorname_np(sv->err);
	flush_suppressed(r);
	sup_emit(r, 0, "sandbox.violation",
		 json_pack("{s:s,s:i,s:o*,s:s,s:s}", "syscall", sv->syscall, "nr", sv->nr, "args",
			   args, "action", "denied", "errno", en ? en : "?"));
}

/* Answer what is pending; false when the listener is finished. */
static bool
drain(struct sup_run *r, int max)
{
	struct sandbox_child c = {.pid = r->pid,
				  .pidfd = -1,
				  .status_fd = -1,
				  .notify_fd = r->viol.w.fd,
				  .network_loopback = r->viol.network_loopback};

	for (int i = 0; i < max; i++) {
		struct sandbox_violation sv;
		int e = sandbox_violation_next(&c, &sv);
		if (e == -EAGAIN)
			return true;
		if (e == -ENOENT || e == -EINTR)
			continue; /* the caller is gone; nothing to answer */
		if (e < 0)
			return false; /* EPIPE: nobody left under the filter */
		record(r, &sv);
	}
	return true;
}

static void
on_notify(struct agd_watch *w, uint32_t events)
{
	struct sup_run *r = (struct sup_run *)((char *)w - offsetof(struct sup_run, viol.w));

	/* Bounded per turn so the channel and the pidfd are served too; the
	 * watch is level-triggered, so the rest comes on the next turn. */
	if (!drain(r, VIOL_PER_WAKEUP))
		agd_loop_close_watch(r->loop, &r->viol.w);
}

void
sup_violations_start(struct sup_run *r, int notify_fd, bool network_loopback)
{
	r->viol.network_loopback = network_loopback;
	r->viol.w = (struct agd_watch){notify_fd, on_notify};
	if (notify_fd < 0) {
		sup_emit(r, 0, "sandbox.note",
			 json_pack("{s:s}", "note",
				   "seccomp user notification unavailable (a listener exists "
				   "above us): denied syscalls are refused but not recorded"));
		return;
	}
	if (agd_loop_add(r->loop, &r->viol.w, EPOLLIN) < 0) {
		/* Closing the listener makes the kernel answer ENOSYS: still denied. */
		agd_loop_close_watch(r->loop, &r->viol.w);
		sup_emit(r, 0, "sandbox.note",
			 json_pack("{s:s}", "note",
				   "cannot watch the seccomp listener: denied syscalls are "
				   "refused (ENOSYS) but not recorded"));
	}
}

void
sup_violations_stop(struct sup_run *r)
{
	if (r->viol.w.fd >= 0) {
		drain(r, 1024);
		agd_loop_close_watch(r->loop, &r->viol.w);
	}
	flush_suppressed(r);
}

void
sup_violations_exit(struct sup_run *r, bool signaled, int code)
{
	/* Only the filter's kill action sends SIGSYS with no handler able to
	 * stop it: a syscall of a foreign architecture (i386 int 0x80) or x32. */
	if (!signaled || code != SIGSYS)
		return;
	if (!take_token(&r->viol)) {
		r->viol.suppressed++;
		return;
	}
	sup_emit(r, 0, "sandbox.violation",
		 json_pack("{s:s,s:s,s:s}", "syscall", "foreign-architecture or x32 syscall",
			   "action", "killed", "signal", "SIGSYS"));
}
