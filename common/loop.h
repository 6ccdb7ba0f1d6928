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

/* Work to do once the current batch of events has been dispatched (before
 * the loop waits again): handlers that each queue a part of something (a
 * group commit) let it run once for all of them. */
struct agd_defer;
typedef void (*agd_defer_fn)(struct agd_defer *d);
struct agd_defer {
	agd_defer_fn fn;
	struct agd_defer *next;
	bool queued;
};

struct agd_loop {
	int epfd;
	bool quit;
	struct agd_defer *deferred; /* queued, in order */
	struct agd_defer **deferred_tail;
	struct agd_defer *timed; /* agd_loop_after: one, due at timed_ns */
	int64_t timed_ns;
};

int agd_loop_init(struct agd_loop *l);
void agd_loop_close(struct agd_loop *l);
/* Register w (w->fd, w->fn set by the caller) for events (EPOLLIN...). */
int agd_loop_add(struct agd_loop *l, struct agd_watch *w, uint32_t events);
int agd_loop_mod(struct agd_loop *l, struct agd_watch *w, uint32_t events);
/* Unregister and close w->fd (sets it to -1). Accepts an unregistered watch. */
void agd_loop_close_watch(struct agd_loop *l, struct agd_watch *w);
/* Queue d (d->fn set) to run once after the current batch of events, or,
 * when queued outside a dispatch, before the next wait. Queuing a queued d
 * does nothing; d may queue itself again from its fn. */
void agd_loop_defer(struct agd_loop *l, struct agd_defer *d);
/* Take d off the queue (nothing if it is not queued). */
void agd_loop_cancel(struct agd_loop *l, struct agd_defer *d);
/* Run d once, ms milliseconds from now (monotonic), whatever the loop
 * dispatches meanwhile: a wait ends in time for it. One such d at a time;
 * while one is set, a second call does nothing (the first stays due). */
void agd_loop_after(struct agd_loop *l, struct agd_defer *d, int ms);
/* Run the queued work now (also what agd_loop_once does around a wait). */
void agd_loop_run_deferred(struct agd_loop *l);
/* Run what is queued, wait up to timeout_ms (-1: forever; 0 if work was
 * queued meanwhile), dispatch one batch, run what it queued. 0 or -errno. */
int agd_loop_once(struct agd_loop *l, int timeout_ms);
