#include "supervisor/replay.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int
sup_replay_init(struct sup_replay *r, struct store_call *calls, size_t n)
{
	memset(r, 0, sizeof(*r));
	r->consumed = calloc(n ? n : 1, sizeof(bool));
	if (!r->consumed)
		return -ENOMEM;
	r->calls = calls;
	r->n = n;
	return 0;
}

void
sup_replay_clear(struct sup_replay *r)
{
	store_calls_free(r->calls, r->n);
	free(r->consumed);
	memset(r, 0, sizeof(*r));
}

static bool
same_call(const struct store_call *c, const char *tool, const char *args_hash)
{
	return strcmp(c->args_hash, args_hash) == 0 && strcmp(c->tool, tool) == 0;
}

ssize_t
sup_replay_match(const struct sup_replay *r, const char *tool, const char *args_hash)
{
	/* In-order replay hits the cursor at once; reordered calls scan forward. */
	for (size_t i = r->cursor; i < r->n; i++)
		if (!r->consumed[i] && same_call(&r->calls[i], tool, args_hash))
			return (ssize_t)i;
	return -1;
}

void
sup_replay_consume(struct sup_replay *r, size_t i)
{
	if (i >= r->n || r->consumed[i])
		return;
	r->consumed[i] = true;
	r->n_consumed++;
	while (r->cursor < r->n && r->consumed[r->cursor])
		r->cursor++;
}

void
sup_replay_consume_upto(struct sup_replay *r, int64_t seq)
{
	for (size_t i = 0; i < r->n && r->calls[i].seq <= seq; i++)
		sup_replay_consume(r, i);
}

struct store_call *
sup_replay_pending(const struct sup_replay *r)
{
	return r->cursor < r->n ? &r->calls[r->cursor] : NULL;
}

int64_t
sup_replay_last_seq(const struct sup_replay *r)
{
	return r->n ? r->calls[r->n - 1].seq : 0;
}
