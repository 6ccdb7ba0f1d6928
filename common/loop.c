#include "common/loop.h"

#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "common/util.h"

int
agd_loop_init(struct agd_loop *l)
{
	l->quit = false;
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

int
agd_loop_once(struct agd_loop *l, int timeout_ms)
{
	struct epoll_event evs[32];
	int n = epoll_wait(l->epfd, evs, ARRAY_SIZE(evs), timeout_ms);

	if (n < 0)
		return errno == EINTR ? 0 : -errno;
	for (int i = 0; i < n; i++) {
		struct agd_watch *w = evs[i].data.ptr;
		/* A handler earlier in this batch may have closed this watch. */
		if (w->fd >= 0)
			w->fn(w, evs[i].events);
	}
	return 0;
}
