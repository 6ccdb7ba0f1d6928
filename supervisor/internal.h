/* Shared between the supervisor's files: run.c (lifecycle), broker.c (the
 * channel and its methods), call.c (the tools/call pipeline). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/loop.h"
#include "supervisor/proto.h"
#include "supervisor/replay.h"
#include "supervisor/supervisor.h"

#define SUP_SEND_TIMEOUT_MS  10000
#define SUP_TOOL_TIMEOUT_MS  30000
#define SUP_MAX_RESULT_BYTES (1u << 20) /* the reply carries it twice: stay under 4 MiB */

/* Denied syscalls of the current child, as sandbox.violation events. */
struct sup_violations {
	struct agd_watch w;	 /* the child's seccomp listener; fd -1 when none */
	bool network_loopback;	 /* which filter answers (sandbox_child) */
	int64_t tokens, last_ms; /* rate limit: events per run */
	uint64_t suppressed;	 /* dropped by the rate limit, not yet reported */
};

/* The run's lifecycle; see the table in run.c. */
enum sup_state {
	SUP_ST_NEW,
	SUP_ST_CHILD,
	SUP_ST_BACKOFF,
	SUP_ST_SUCCEEDED,
	SUP_ST_FAILED,
	SUP_ST_INTERRUPTED,
};

struct sup_run {
	struct agd_loop *loop;
	struct store *st;
	struct sup_options opt;
	char *id;
	const char *uid; /* random, unique across stores: names idempotency keys */
	json_t *spec;	 /* owned; the strings below point into it */
	struct policy *policy;
	const char *cwd, *workspace;
	int max_restarts, window_s;
	int64_t *starts_ms; /* start time of each attempt, for the intensity limit */
	size_t n_starts;

	enum sup_state state;
	int attempt;
	pid_t pid;
	int status_fd;
	struct agd_watch w_pid, w_chan, w_timer;
	struct proto_reader rd;
	struct sup_replay replay;
	int64_t next_seq;  /* seq of the next live call */
	int64_t last_seq;  /* last seq handled in this attempt */
	uint64_t replayed; /* calls answered from the journal in this attempt */
	int64_t first_replayed, last_replayed;
	uint64_t live_calls;
	unsigned malformed;
	size_t malformed_bytes;
	bool fatal; /* the current child must not be restarted */

	int exit_code;
	char reason[512];

	struct sup_violations viol; /* violations.c */
	struct agd_watch w_wall;    /* wall-clock limit (policy limits.wall_clock) */
};

/* Store an event (except the live-only "call.*" ones) and pass it to the
 * options' on_event. Steals data. */
void sup_emit(struct sup_run *r, int64_t seq, const char *type, json_t *data);
/* Fail the run with a reason (the first one wins) and kill its child. */
void sup_fail(struct sup_run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Send a message to the agent; steals msg (NULL is ignored). */
void sup_send(struct sup_run *r, json_t *msg);
/* Error reply to a request (nothing for a notification: id NULL). Steals data. */
void sup_reply_error(struct sup_run *r, const json_t *id, int code, const char *msg, json_t *data);

/* broker.c: read and answer everything the agent sent; close on EOF. */
void sup_broker_read(struct sup_run *r);
void sup_broker_close(struct sup_run *r);

/* violations.c: watch the child's seccomp listener (takes notify_fd; -1 is
 * recorded as a note when violations were asked for); stop at reap, after
 * answering what is still pending; the SIGSYS death of a program killed by the
 * filter (a foreign-architecture syscall) is a violation too. */
void sup_violations_start(struct sup_run *r, int notify_fd, bool network_loopback);
void sup_violations_stop(struct sup_run *r);
void sup_violations_exit(struct sup_run *r, bool signaled, int code);

/* call.c: the tools/call method. */
void sup_tools_call(struct sup_run *r, const json_t *id, json_t *params);
