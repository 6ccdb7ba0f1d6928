/* One epoll loop, one thread. Each registered fd is a watch: the epoll data
 * points at the watch, whose handler runs when the fd is ready. Handlers must
 * not free a watch's memory while the loop may still hold events for it in
 * the current batch; owners free objects between agd_loop_once calls. */
#pragma once

#include <stdbool.h>
#include <stdint.h>

struct agd_watch;
typedef void (*agd_watch_fn)(struct agd_watch *w, uint32_t events);

struct agd_watch {
	int fd; /* -1 while not registered */
	agd_watch_fn fn;
};

struct agd_loop {
	int epfd;
	bool quit;
};

int agd_loop_init(struct agd_loop *l);
void agd_loop_close(struct agd_loop *l);
/* Register w (w->fd, w->fn set by the caller) for events (EPOLLIN...). */
int agd_loop_add(struct agd_loop *l, struct agd_watch *w, uint32_t events);
int agd_loop_mod(struct agd_loop *l, struct agd_watch *w, uint32_t events);
/* Unregister and close w->fd (sets it to -1). Accepts an unregistered watch. */
void agd_loop_close_watch(struct agd_loop *l, struct agd_watch *w);
/* Wait up to timeout_ms (-1: forever) and dispatch one batch. 0 or -errno. */
int agd_loop_once(struct agd_loop *l, int timeout_ms);
