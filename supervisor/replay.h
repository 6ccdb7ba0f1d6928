/* Replay matching: which journaled call answers an incoming call.
 * Pure bookkeeping over a loaded journal; no I/O. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "store/store.h"

struct sup_replay {
	struct store_call *calls; /* ordered by seq, 1..n */
	size_t n;
	bool *consumed;
	size_t n_consumed;
	size_t cursor; /* first unconsumed index (fast path for in-order replay) */
};

/* Take ownership of a loaded journal (calls may be NULL when n is 0). */
int sup_replay_init(struct sup_replay *r, struct store_call *calls, size_t n);
void sup_replay_clear(struct sup_replay *r);

/* The k-th occurrence of (tool, hash) in this attempt matches the k-th journaled
 * one: returns the index of the first unconsumed call with the same tool and
 * arguments hash, or -1. */
ssize_t sup_replay_match(const struct sup_replay *r, const char *tool, const char *args_hash);
void sup_replay_consume(struct sup_replay *r, size_t i);
/* Mark every call with seq <= seq consumed (the agent resumed from a state). */
void sup_replay_consume_upto(struct sup_replay *r, int64_t seq);
/* The first unconsumed call, or NULL when replay is over. */
struct store_call *sup_replay_pending(const struct sup_replay *r);
/* Highest journaled seq (0 when empty). */
int64_t sup_replay_last_seq(const struct sup_replay *r);
