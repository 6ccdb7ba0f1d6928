#include "common/loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/util.h"

int
agd_loop_init(struct agd_loop *l)
{
	l->quit = false;
	l->deferred = NULL;
	l->deferred_tail = &l->deferred;
	l->timed = NULL;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	return l->epfd < 0 ? -errno : 0;
}

void
agd_loop_close(struct agd_loop *l)
{
	if (l->epfd >= 0)
		close(l->epfd);
	l->epfd = -1;
}

int
agd_loop_add(struct agd_loop *l, struct agd_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(l->epfd, EPOLL_CTL_ADD, w->fd, &ev) < 0 ? -errno : 0;
}

int
agd_loop_mod(struct agd_loop *l, struct agd_watch *w, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = w};

	return epoll_ctl(l->epfd, EPOLL_CTL_MOD, w->fd, &ev) < 0 ? -errno : 0;
}

void
agd_loop_close_watch(struct agd_loop *l, struct agd_watch *w)
{
	if (w->fd < 0)
		return;
	epoll_ctl(l->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	close(w->fd);
	w->fd = -1;
}

void
agd_loop_defer(struct agd_loop *l, struct agd_defer *d)
{
	if (d->queued)
		return;
	d->queued = true;
	d->next = NULL;
	*l->deferred_tail = d;
	l->deferred_tail = &d->next;
}

void
agd_loop_cancel(struct agd_loop *l, struct agd_defer *d)
{
	if (l->timed == d)
		l->timed = NULL;
	if (!d->queued)
		return;
	for (struct agd_defer **p = &l->deferred; *p; p = &(*p)->next)
		if (*p == d) {
			*p = d->next;
			if (l->deferred_tail == &d->next)
				l->deferred_tail = p;
			break;
		}
	d->queued = false;
}

void
agd_loop_run_deferred(struct agd_loop *l)
{
	struct agd_defer *d;

	while ((d = l->deferred)) {
		l->deferred = d->next;
		if (!l->deferred)
			l->deferred_tail = &l->deferred;
		d->queued = false;
		d->fn(d);
	}
}

void
agd_loop_after(struct agd_loop *l, struct agd_defer *d, int ms)
{
	if (l->timed)
		return;
	l->timed = d;
	l->timed_ns = agd_now_ns() + (int64_t)ms * 1000000;
}

/* The timed work, if due. */
static void
run_timed(struct agd_loop *l)
{
	struct agd_defer *d = l->timed;

	if (d && agd_now_ns() >= l->timed_ns) {
		l->timed = NULL;
		d->fn(d);
	}
}

int
agd_loop_once(struct agd_loop *l, int timeout_ms)
{
	/* One wait returns many ready fds: the more handlers share one batch,
	 * the more a deferred group commit carries. */
	struct epoll_event evs[128];

	agd_loop_run_deferred(l);
	if (l->deferred)
		timeout_ms = 0;
	if (l->timed) {
		int64_t left = l->timed_ns - agd_now_ns();
		int due = left <= 0 ? 0 : (int)((left + 999999) / 1000000);
		if (timeout_ms < 0 || due < timeout_ms)
			timeout_ms = due;
	}
	int n = epoll_wait(l->epfd, evs, ARRAY_SIZE(evs), timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct agd_watch *w = evs[i].data.ptr;
		/* A handler earlier in this batch may have closed this watch. */
		if (w->fd >= 0)
			w->fn(w, evs[i].events);
	}
	agd_loop_run_deferred(l);
	run_timed(l);
	return 0;
}
