/* The control API: HTTP+JSON under /v1 on the daemon's unix socket, served by
 * libmicrohttpd in external epoll mode: MHD's epoll fd is one watch in our
 * loop, MHD_run runs on its readiness, MHD_get_timeout bounds the loop's
 * wait. Callers are identified by SO_PEERCRED on their connection; a request
 * that waits (result?wait, follow streams) is parked with
 * MHD_suspend_connection and resumed by the run it waits on, never blocking
 * the loop. docs/api.md is the reference. */
#include <fcntl.h>
#include <limits.h>
#include <microhttpd.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agentd/api.h"
#include "agentd/serve.h"
#include "common/json.h"
#include "common/sha256.h"
#include "common/util.h"

#define MAX_SEGS	8
#define LIST_DEFAULT	50
#define LIST_MAX	500
#define WAIT_MAX_S	3600
#define STREAM_CHUNK	(64u << 10)
#define MAX_PEER_GROUPS 256

enum role {
	ROLE_USER = 1,
	ROLE_ADMIN = 2,
};

struct req {
	struct serve *sv;
	uid_t uid;
	gid_t gid;
	bool admin;
	bool creds;
	char user[64]; /* name, looked up when first needed */
	bool tcp;      /* came in on the TCP listener */
	char *body;
	size_t len;
	bool too_big;
	/* result?wait parking */
	bool parked;
	struct serve_waiter waiter;
	struct serve_run *wait_run;
	int64_t deadline_ms;
};

typedef enum MHD_Result (*route_fn)(struct req *q, struct MHD_Connection *c, char **args);

struct route {
	const char *method;
	const char *pattern; /* "*" matches one non-empty segment, captured in args */
	unsigned roles;
	route_fn fn;
};

/* ---- replies ---- */

static enum MHD_Result
reply_json(struct MHD_Connection *c, unsigned status, json_t *v)
{
	cleanup_free char *s = v ? json_dumps(v, JSON_COMPACT) : NULL;
	char *text = s ? agd_asprintf("%s\n", s) : NULL;
	struct MHD_Response *resp;
	enum MHD_Result ret;

	json_decref(v);
	if (!text)
		return MHD_NO; /* out of memory: drop the connection */
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(text);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	ret = MHD_queue_response(c, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result __attribute__((format(printf, 4, 5)))
reply_error(struct MHD_Connection *c, unsigned status, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	return reply_json(c, status,
			  json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg));
}

static enum MHD_Result
reply_errno(struct MHD_Connection *c, int e, const char *msg)
{
	switch (e) {
	case -EINVAL:
		return reply_error(c, 400, "invalid", "%s", msg);
	case -EEXIST:
		return reply_error(c, 409, "conflict", "%s", msg);
	case -EUSERS:
		return reply_error(c, 429, "queue_full", "%s", msg);
	case -ESHUTDOWN:
		return reply_error(c, 503, "unavailable", "%s", msg);
	case -ENOENT:
		return reply_error(c, 404, "not_found", "%s", msg[0] ? msg : "not found");
	case -EALREADY:
		return reply_error(c, 409, "conflict", "%s", msg[0] ? msg : "already done");
	default:
		return reply_error(c, 500, "internal", "%s", msg[0] ? msg : strerror(-e));
	}
}

/* ---- runs as JSON ---- */

json_t *
api_run_json(struct serve *sv, const struct serve_run *r)
{
	struct store_run sr = {0};
	json_t *v =
	    json_pack("{s:s,s:s,s:I,s:s,s:O,s:I,s:i,s:s,s:s,s:I,s:b}", "id", r->id, "status",
		      r->status, "owner", (json_int_t)r->owner, "user", r->user, "labels",
		      r->labels, "created_ms", (json_int_t)r->created_ms, "exit_code", r->exit_code,
		      "reason", r->reason ? r->reason : "", "message_mode", r->msg_mode,
		      "wall_clock_s", (json_int_t)(r->wall_ms / 1000), "done", serve_run_final(r));

	if (!v)
		return NULL;
	if (r->queued)
		json_object_set_new(v, "queue_position", json_integer(serve_queue_position(sv, r)));
	if (r->started_ms)
		json_object_set_new(v, "started_ms", json_integer(r->started_ms));
	if (store_run_get(sv->st, r->id, &sr) == 0) {
		json_object_set_new(v, "attempts", json_integer(sr.attempts));
		json_object_set(v, "command", json_object_get(sr.spec, "argv"));
		json_object_set(v, "cwd", json_object_get(sr.spec, "cwd"));
		json_object_set_new(v, "updated_ms", json_integer(sr.updated_ms));
		store_run_clear(&sr);
	}
	return v;
}

/* The run if the caller may see it: its owner or an admin. Others get 404,
 * which does not reveal whether the id exists. */
static struct serve_run *
visible_run(struct req *q, const char *id)
{
	struct serve_run *r = serve_run_find(q->sv, id);

	return r && (q->admin || r->owner == q->uid) ? r : NULL;
}

#define RUN_OR_404(q, c, id)                                                                       \
	struct serve_run *r = visible_run(q, id);                                                  \
	if (!r)                                                                                    \
	return reply_error(c, 404, "not_found", "no run %s", id)

static const char *
query(struct MHD_Connection *c, const char *key)
{
	return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, key);
}

/* ---- handlers ---- */

static enum MHD_Result
h_health(struct req *q, struct MHD_Connection *c, char **args)
{
	struct serve *sv = q->sv;
	int queued = 0, workers = 0;
	size_t busy = 0;

	struct store_journal_stats js;

	for (struct serve_tenant *t = sv->tenants; t; t = t->next)
		queued += t->queued;
	store_journal_stats(sv->st, &js);
	sup_batch_workers(sv->batch, &workers, &busy);
	return reply_json(c, 200,
			  json_pack("{s:s,s:i,s:i,s:I,s:I,s:{s:I,s:I,s:I},s:{s:i,s:I}}", "status",
				    sv->stopping   ? "stopping"
				    : sv->draining ? "draining"
						   : "ok",
				    "running", sv->running, "queued", queued, "runs",
				    (json_int_t)(sv->n_runs - sv->n_deleted), "uptime_s",
				    (json_int_t)((agd_wall_ms() - sv->started_ms) / 1000),
				    "journal", "commits", (json_int_t)js.commits, "rows",
				    (json_int_t)js.rows, "largest_commit",
				    (json_int_t)js.largest_commit, "tools", "workers", workers,
				    "busy", (json_int_t)busy));
}

static enum MHD_Result
h_version(struct req *q, struct MHD_Connection *c, char **args)
{
	return reply_json(c, 200,
			  json_pack("{s:s,s:s,s:I,s:b}", "version", AGENTD_VERSION, "api", "v1",
				    "uid", (json_int_t)q->uid, "admin", q->admin));
}

static enum MHD_Result
h_submit(struct req *q, struct MHD_Connection *c, char **args)
{
	struct api_run_req rq = {0};
	struct serve_run *r = NULL;
	char err[512] = "";
	int e = api_parse_run_req(q->body ? q->body : "", q->len, &rq, err, sizeof(err));

	if (e < 0)
		return reply_error(c, 400, "invalid", "%s", err);
	const char *hdr = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Idempotency-Key");
	if (hdr && !rq.idempotency_key) {
		if (!*hdr || strlen(hdr) > API_IDEM_MAX) {
			api_run_req_clear(&rq);
			return reply_error(c, 400, "invalid", "Idempotency-Key: 1-128 bytes");
		}
		rq.idempotency_key = hdr;
	}
	e = serve_submit(q->sv, q->uid, q->gid, &rq, &r, err, sizeof(err));
	api_run_req_clear(&rq);
	if (e < 0)
		return reply_errno(c, e, err);
	/* 201 for a new run, 200 for the one a retried key names. */
	return reply_json(c, e == 1 ? 200 : 201, api_run_json(q->sv, r));
}

static bool
list_match(struct req *q, const struct serve_run *r, const char *status, const char *user)
{
	if (r->deleted || (!q->admin && r->owner != q->uid))
		return false;
	if (status && strcmp(status, r->status) != 0)
		return false;
	if (user) {
		char uidbuf[16];
		snprintf(uidbuf, sizeof(uidbuf), "%u", (unsigned)r->owner);
		if (strcmp(user, r->user) != 0 && strcmp(user, uidbuf) != 0)
			return false;
	}
	return true;
}

static enum MHD_Result
h_list(struct req *q, struct MHD_Connection *c, char **args)
{
	struct serve *sv = q->sv;
	const char *status = query(c, "status"), *user = query(c, "user");
	int64_t limit = LIST_DEFAULT, cursor = INT64_MAX;

	if (query(c, "limit") && api_parse_int(query(c, "limit"), 1, LIST_MAX, &limit) < 0)
		return reply_error(c, 400, "invalid", "limit must be 1..%d", LIST_MAX);
	if (query(c, "cursor") && api_parse_int(query(c, "cursor"), 0, INT64_MAX, &cursor) < 0)
		return reply_error(c, 400, "invalid", "cursor must be one a listing returned");
	json_t *list = json_array();
	int64_t last = -1;
	bool more = false;
	/* Newest first; the cursor is the submission order of the last run shown. */
	for (size_t i = sv->n_runs; i-- > 0;) {
		struct serve_run *r = sv->runs[i];
		if ((int64_t)r->order >= cursor || !list_match(q, r, status, user))
			continue;
		if ((int64_t)json_array_size(list) == limit) {
			more = true;
			break;
		}
		json_array_append_new(list, api_run_json(sv, r));
		last = (int64_t)r->order;
	}
	int64_t next = more ? last : -1;
	json_t *v = json_pack("{s:o}", "runs", list);
	if (v)
		json_object_set_new(v, "next_cursor",
				    next >= 0 ? json_sprintf("%lld", (long long)next)
					      : json_null());
	return reply_json(c, 200, v);
}

static enum MHD_Result
h_get(struct req *q, struct MHD_Connection *c, char **args)
{
	RUN_OR_404(q, c, args[0]);
	return reply_json(c, 200, api_run_json(q->sv, r));
}

static enum MHD_Result
h_result(struct req *q, struct MHD_Connection *c, char **args)
{
	int64_t wait = 0;

	RUN_OR_404(q, c, args[0]);
	if (query(c, "wait") && api_parse_int(query(c, "wait"), 0, WAIT_MAX_S, &wait) < 0)
		return reply_error(c, 400, "invalid", "wait must be 0..%d seconds", WAIT_MAX_S);
	if (!q->deadline_ms)
		q->deadline_ms = agd_wall_ms() + wait * 1000;
	if (!serve_run_final(r) && !q->sv->stopping && agd_wall_ms() < q->deadline_ms) {
		/* Park until the run changes or the deadline passes (the tick
		 * wakes us); the loop goes on serving everyone else. */
		q->waiter = (struct serve_waiter){
		    .conn = c, .deadline_ms = q->deadline_ms, .parked = &q->parked};
		q->wait_run = r;
		MHD_suspend_connection(c);
		serve_park(q->sv, r, &q->waiter);
		return MHD_YES;
	}
	return reply_json(c, 200, api_run_json(q->sv, r));
}

static json_t *
call_json(const struct store_call *k)
{
	static const char *const st[] = {"intent", "ok", "error", "denied"};

	return json_pack("{s:I,s:s,s:O,s:s,s:O?,s:i,s:s,s:s,s:I,s:I}", "seq", (json_int_t)k->seq,
			 "tool", k->tool, "args", k->args, "status", st[k->status], "result",
			 k->result, "attempt", k->attempt, "decision", k->decision, "rule", k->rule,
			 "started_ms", (json_int_t)k->started_ms, "finished_ms",
			 (json_int_t)k->finished_ms);
}

static enum MHD_Result
h_journal(struct req *q, struct MHD_Connection *c, char **args)
{
	struct store_call *calls = NULL;
	size_t n = 0;

	RUN_OR_404(q, c, args[0]);
	int e = store_journal_load(q->sv->st, r->id, &calls, &n);
	if (e < 0)
		return reply_error(c, 500, "store", "cannot read the journal: %s", strerror(-e));
	json_t *list = json_array();
	for (size_t i = 0; list && i < n; i++)
		json_array_append_new(list, call_json(&calls[i]));
	store_calls_free(calls, n);
	return reply_json(c, 200, json_pack("{s:s,s:o}", "run", r->id, "calls", list));
}

static enum MHD_Result
cancel_or_kill(struct req *q, struct MHD_Connection *c, char **args, bool kill)
{
	RUN_OR_404(q, c, args[0]);
	int e = serve_run_cancel(q->sv, r, kill);
	if (e == -EALREADY)
		return reply_error(c, 409, "conflict", "run %s has already %s", r->id, r->status);
	if (e < 0)
		return reply_errno(c, e, "");
	return reply_json(c, 200, api_run_json(q->sv, r));
}

static enum MHD_Result
h_cancel(struct req *q, struct MHD_Connection *c, char **args)
{
	return cancel_or_kill(q, c, args, false);
}

static enum MHD_Result
h_kill(struct req *q, struct MHD_Connection *c, char **args)
{
	return cancel_or_kill(q, c, args, true);
}

static enum MHD_Result
pause_or_resume(struct req *q, struct MHD_Connection *c, char **args, bool pause)
{
	RUN_OR_404(q, c, args[0]);
	int e = serve_run_pause(q->sv, r, pause);
	if (e == -EALREADY)
		return reply_error(c, 409, "conflict", "run %s is %s", r->id, r->status);
	if (e == -ECANCELED)
		return reply_error(c, 409, "conflict", "run %s is being cancelled", r->id);
	if (e < 0)
		return reply_errno(c, e, "");
	return reply_json(c, 200, api_run_json(q->sv, r));
}

static enum MHD_Result
h_pause(struct req *q, struct MHD_Connection *c, char **args)
{
	return pause_or_resume(q, c, args, true);
}

static enum MHD_Result
h_resume(struct req *q, struct MHD_Connection *c, char **args)
{
	return pause_or_resume(q, c, args, false);
}

static enum MHD_Result
h_fork(struct req *q, struct MHD_Connection *c, char **args)
{
	struct serve_run *f = NULL;
	const char *name = NULL;
	json_int_t from = -1;
	json_error_t jerr;
	char err[512] = "";

	RUN_OR_404(q, c, args[0]);
	cleanup_json json_t *body = agd_json_parse(q->body ? q->body : "", q->len, 8, &jerr);
	if (!body || json_unpack_ex(body, &jerr, JSON_STRICT, "{s:I,s?s}", "from_seq", &from,
				    "name", &name) < 0)
		return reply_error(c, 400, "invalid",
				   "fork takes {\"from_seq\": N, \"name\"?: ID}");
	if (from < 0 || (name && !api_valid_run_id(name)))
		return reply_error(c, 400, "invalid",
				   "from_seq must be >= 0; name 1-64 of [A-Za-z0-9._-]");
	int e = serve_run_fork(q->sv, r, from, name, &f, err, sizeof(err));
	if (e < 0)
		return reply_errno(c, e, err);
	return reply_json(c, 201, api_run_json(q->sv, f));
}

static enum MHD_Result
h_delete(struct req *q, struct MHD_Connection *c, char **args)
{
	RUN_OR_404(q, c, args[0]);
	int e = serve_run_delete(q->sv, r, "deleted");
	if (e == -EBUSY)
		return reply_error(c, 409, "conflict", "run %s is %s: cancel it first", r->id,
				   r->status);
	if (e < 0)
		return reply_errno(c, e, "");
	return reply_json(c, 200, json_pack("{s:s,s:b}", "id", r->id, "deleted", 1));
}

static enum MHD_Result
h_drain(struct req *q, struct MHD_Connection *c, char **args)
{
	q->sv->draining = true;
	serve_notify("STATUS=draining");
	return h_health(q, c, args);
}

static enum MHD_Result
h_undrain(struct req *q, struct MHD_Connection *c, char **args)
{
	q->sv->draining = false;
	serve_notify("STATUS=serving");
	serve_pump(q->sv);
	return h_health(q, c, args);
}

/* ---- streams: events (NDJSON) and logs, optionally followed ---- */

enum stream_kind { STREAM_EVENTS, STREAM_LOGS };

struct stream {
	struct serve *sv;
	struct serve_run *run;
	struct MHD_Connection *conn;
	enum stream_kind kind;
	bool follow;
	int64_t after; /* events: last id sent; logs: bytes sent */
	char *buf;
	size_t len, pos;
	bool parked;
	struct serve_waiter waiter;
	int64_t last_sent_ms;
};

struct collect {
	struct stream *s;
	size_t cap;
	int n;
};

static int
collect_event(const struct store_event *ev, void *ud)
{
	struct collect *k = ud;
	struct stream *s = k->s;

	if (ev->id <= s->after)
		return 0;
	if (k->n >= 1000)
		return 1; /* enough for one refill */
	cleanup_json json_t *v = json_pack(
	    "{s:I,s:I,s:i,s:I,s:s,s:O?}", "id", (json_int_t)ev->id, "ts_ms", (json_int_t)ev->ts_ms,
	    "attempt", ev->attempt, "seq", (json_int_t)ev->seq, "type", ev->type, "data", ev->data);
	cleanup_free char *line = v ? json_dumps(v, JSON_COMPACT) : NULL;
	if (!line)
		return -ENOMEM;
	size_t n = strlen(line);
	if (s->len + n + 2 > k->cap) {
		size_t cap = (k->cap + n + 2) * 2;
		char *b = realloc(s->buf, cap);
		if (!b)
			return -ENOMEM;
		s->buf = b;
		k->cap = cap;
	}
	memcpy(s->buf + s->len, line, n);
	s->buf[s->len + n] = '\n';
	s->len += n + 1;
	s->after = ev->id;
	k->n++;
	return 0;
}

static int
refill(struct stream *s)
{
	s->len = s->pos = 0;
	if (s->kind == STREAM_EVENTS) {
		struct collect k = {.s = s, .cap = 0};
		free(s->buf);
		s->buf = NULL;
		int e = store_event_foreach(s->sv->st, s->run->id, collect_event, &k);
		return e < 0 ? e : 0;
	}
	char path[PATH_MAX];
	cleanup_close int fd = open(serve_log_path(s->sv, s->run, path, sizeof(path)),
				    O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!s->buf && !(s->buf = malloc(STREAM_CHUNK)))
		return -ENOMEM;
	ssize_t n = pread(fd, s->buf, STREAM_CHUNK, s->after);
	if (n < 0)
		return -errno;
	s->len = (size_t)n;
	s->after += n;
	return 0;
}

static ssize_t
stream_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct stream *s = cls;

	if (s->pos == s->len) {
		/* Final status first, then refill: the last events are stored
		 * before the run is done, so nothing is missed. */
		bool final = serve_run_final(s->run) || s->sv->stopping;
		if (refill(s) < 0)
			return MHD_CONTENT_READER_END_WITH_ERROR;
		if (s->len == 0) {
			if (!s->follow || final)
				return MHD_CONTENT_READER_END_OF_STREAM;
			/* A blank line now and then (NDJSON readers skip it) finds
			 * clients that went away while the stream was parked: a
			 * parked connection is not polled. */
			int64_t now = agd_wall_ms();
			if (s->kind == STREAM_EVENTS && max > 0 &&
			    now - s->last_sent_ms >= API_HEARTBEAT_MS / 2) {
				s->last_sent_ms = now;
				out[0] = '\n';
				return 1;
			}
			s->waiter = (struct serve_waiter){.conn = s->conn, .parked = &s->parked};
			MHD_suspend_connection(s->conn);
			serve_park(s->sv, s->run, &s->waiter);
			return 0;
		}
	}
	size_t n = s->len - s->pos < max ? s->len - s->pos : max;
	memcpy(out, s->buf + s->pos, n);
	s->pos += n;
	s->last_sent_ms = agd_wall_ms();
	return (ssize_t)n;
}

static void
stream_free(void *cls)
{
	struct stream *s = cls;

	if (s->parked)
		serve_unpark(s->sv, s->run, &s->waiter);
	free(s->buf);
	free(s);
}

static enum MHD_Result
stream_reply(struct req *q, struct MHD_Connection *c, char **args, enum stream_kind kind)
{
	int64_t after = 0;
	const char *f = query(c, "follow");
	const char *a = query(c, kind == STREAM_EVENTS ? "after" : "offset");

	RUN_OR_404(q, c, args[0]);
	if (a && api_parse_int(a, 0, INT64_MAX, &after) < 0)
		return reply_error(c, 400, "invalid", "%s must be a non-negative integer",
				   kind == STREAM_EVENTS ? "after" : "offset");
	struct stream *s = calloc(1, sizeof(*s));
	if (!s)
		return MHD_NO;
	*s = (struct stream){.sv = q->sv,
			     .run = r,
			     .conn = c,
			     .kind = kind,
			     .follow = f && (strcmp(f, "1") == 0 || strcmp(f, "true") == 0),
			     .after = after};
	struct MHD_Response *resp = MHD_create_response_from_callback(
	    MHD_SIZE_UNKNOWN, STREAM_CHUNK, stream_read, s, stream_free);
	if (!resp) {
		free(s);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
				kind == STREAM_EVENTS ? "application/x-ndjson"
						      : "text/plain; charset=utf-8");
	enum MHD_Result ret = MHD_queue_response(c, 200, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result
h_events(struct req *q, struct MHD_Connection *c, char **args)
{
	return stream_reply(q, c, args, STREAM_EVENTS);
}

static enum MHD_Result
h_logs(struct req *q, struct MHD_Connection *c, char **args)
{
	return stream_reply(q, c, args, STREAM_LOGS);
}

/* ---- approvals and messages ---- */

/* The caller's user name (approvers are named by user name in policies). */
static const char *
req_user(struct req *q)
{
	if (!q->user[0]) {
		struct passwd pw, *res = NULL;
		char buf[4096];
		if (getpwuid_r(q->uid, &pw, buf, sizeof(buf), &res) == 0 && res)
			snprintf(q->user, sizeof(q->user), "%s", res->pw_name);
		else
			snprintf(q->user, sizeof(q->user), "%u", (unsigned)q->uid);
	}
	return q->user;
}

/* Who decides: admins; the approvers a rule names; with none named, the
 * run's owner. */
static bool
may_decide(struct req *q, const struct serve_run *r, const json_t *approvers)
{
	size_t i;
	json_t *v;

	if (q->admin)
		return true;
	if (json_array_size(approvers) == 0)
		return r->owner == q->uid;
	json_array_foreach(approvers, i,
			   v) if (json_is_string(v) &&
				  strcmp(json_string_value(v), req_user(q)) == 0) return true;
	return false;
}

static json_t *
approval_json(const struct store_approval *a, const struct serve_run *r)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:O,s:s,s:O,s:s,s:I,s:I,s:s,s:s,s:I,s:s,s:O?,s:s,s:i}",
			 "run", a->run, "user", r->user, "seq", (json_int_t)a->seq, "tool", a->tool,
			 "args", a->args, "rule", a->rule, "approvers", a->approvers, "reason",
			 a->reason, "created_ms", (json_int_t)a->created_ms, "expires_ms",
			 (json_int_t)a->expires_ms, "status", store_approval_status_name(a->status),
			 "decided_by", a->decided_by, "decided_ms", (json_int_t)a->decided_ms,
			 "comment", a->comment, "edited_args", a->edited_args, "scope",
			 store_approval_scope_name(a->scope), "rerun_attempt", a->rerun_attempt);
}

struct approvals_ctx {
	struct req *q;
	json_t *list;
};

static int
collect_approval(const struct store_approval *a, void *ud)
{
	struct approvals_ctx *k = ud;
	struct serve_run *r = serve_run_find(k->q->sv, a->run);

	if (!r || !(r->owner == k->q->uid || may_decide(k->q, r, a->approvers)))
		return 0;
	if (json_array_size(k->list) >= LIST_MAX)
		return 1;
	json_array_append_new(k->list, approval_json(a, r));
	return 0;
}

static enum MHD_Result
h_approvals(struct req *q, struct MHD_Connection *c, char **args)
{
	const char *status = query(c, "status"), *run = query(c, "run");
	const char *approver = query(c, "approver");
	struct approvals_ctx k = {q, NULL};

	if (!status)
		status = "pending";
	else if (strcmp(status, "all") == 0)
		status = NULL;
	if (run && !visible_run(q, run))
		return reply_error(c, 404, "not_found", "no run %s", run);
	if (!(k.list = json_array()))
		return MHD_NO;
	int e = store_approval_foreach(q->sv->st, run, status, approver, collect_approval, &k);
	if (e < 0) {
		json_decref(k.list);
		return reply_errno(c, e == -EINVAL ? e : -EIO, e == -EINVAL ? "bad filter" : "");
	}
	return reply_json(c, 200, json_pack("{s:o}", "approvals", k.list));
}

static enum MHD_Result
h_decide(struct req *q, struct MHD_Connection *c, char **args)
{
	struct api_decision_req d = {0};
	struct store_approval a = {0};
	enum store_approval_scope scope = STORE_SCOPE_ONCE;
	char err[512] = "";
	int64_t seq;
	int e;

	RUN_OR_404(q, c, args[0]);
	if (api_parse_int(args[1], 1, INT64_MAX, &seq) < 0)
		return reply_error(c, 404, "not_found", "no approval %s/%s", args[0], args[1]);
	if (store_approval_get(q->sv->st, r->id, seq, &a) < 0)
		return reply_error(c, 404, "not_found", "no approval %s/%s", r->id, args[1]);
	bool allowed = may_decide(q, r, a.approvers);
	store_approval_clear(&a);
	if (!allowed)
		return reply_error(c, 403, "forbidden", "you are not an approver of %s/%lld", r->id,
				   (long long)seq);
	e = api_parse_decision(q->body ? q->body : "", q->len, &d, err, sizeof(err));
	if (e < 0)
		return reply_error(c, 400, "invalid", "%s", err);
	store_approval_scope_parse(d.scope, &scope);
	if (r->sup && !sup_run_done(r->sup))
		e = sup_run_decide_scope(r->sup, seq, d.approve, req_user(q), d.comment, d.args,
					 scope);
	else
		e = store_approval_decide(q->sv->st, r->id, seq, d.approve, req_user(q), d.comment,
					  d.args, scope);
	json_decref(d.root);
	if (e == -EALREADY)
		return reply_error(c, 409, "conflict", "approval %s/%lld was decided already",
				   r->id, (long long)seq);
	if (e == -ETIMEDOUT)
		return reply_error(c, 409, "expired", "approval %s/%lld had expired (a denial)",
				   r->id, (long long)seq);
	if (e < 0)
		return reply_errno(c, e, "");
	/* A suspended run has no process: start it again; it replays up to the
	 * decided call, which then goes on with the decision. */
	if (strcmp(r->status, "suspended") == 0 || (strcmp(r->status, "paused") == 0 && !r->sup))
		serve_run_restart(q->sv, r);
	if (store_approval_get(q->sv->st, r->id, seq, &a) < 0)
		return reply_error(c, 500, "store", "cannot read the approval back");
	json_t *v = approval_json(&a, r);
	store_approval_clear(&a);
	return reply_json(c, 200, v);
}

static enum MHD_Result
h_message(struct req *q, struct MHD_Connection *c, char **args)
{
	static const char *const modes[] = {"queue", "interrupt", "restart", "reject"};
	struct api_message_req m = {0};
	char err[512] = "";
	int e;

	RUN_OR_404(q, c, args[0]);
	e = api_parse_message(q->body ? q->body : "", q->len, &m, err, sizeof(err));
	if (e < 0)
		return reply_error(c, 400, "invalid", "%s", err);
	const char *mode = m.mode ? m.mode : r->msg_mode;
	if (serve_run_final(r)) {
		json_decref(m.root);
		return reply_error(c, 409, "conflict", "run %s has already %s", r->id, r->status);
	}
	bool live = r->sup && !sup_run_done(r->sup);
	int64_t id = 0;
	if (live) {
		enum sup_msg_mode mm = SUP_MSG_QUEUE;
		for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
			if (strcmp(mode, modes[i]) == 0)
				mm = (enum sup_msg_mode)i;
		e = sup_run_message(r->sup, m.text, mm);
	} else
		/* Not running (queued, suspended): kept for its next attempt. */
		e = store_message_add(q->sv->st, r->id, m.text, mode, &id);
	json_t *v =
	    e < 0 ? NULL : json_pack("{s:s,s:s,s:b}", "run", r->id, "mode", mode, "live", live);
	json_decref(m.root); /* mode may point into it */
	if (e == -EBUSY)
		return reply_error(c, 409, "busy", "run %s is in a call: message rejected", r->id);
	if (e < 0)
		return reply_errno(c, e, "");
	return reply_json(c, 202, v);
}

/* ---- dispatch ---- */

#define ANY (ROLE_USER | ROLE_ADMIN)

static const struct route routes[] = {
    {"GET", "/v1/health", ANY, h_health},
    {"GET", "/v1/version", ANY, h_version},
    {"POST", "/v1/runs", ANY, h_submit},
    {"GET", "/v1/runs", ANY, h_list},
    {"GET", "/v1/runs/*", ANY, h_get},
    {"DELETE", "/v1/runs/*", ANY, h_delete},
    {"GET", "/v1/runs/*/result", ANY, h_result},
    {"GET", "/v1/runs/*/journal", ANY, h_journal},
    {"GET", "/v1/runs/*/events", ANY, h_events},
    {"GET", "/v1/runs/*/logs", ANY, h_logs},
    {"POST", "/v1/runs/*/cancel", ANY, h_cancel},
    {"POST", "/v1/runs/*/kill", ANY, h_kill},
    {"POST", "/v1/runs/*/pause", ANY, h_pause},
    {"POST", "/v1/runs/*/resume", ANY, h_resume},
    {"POST", "/v1/runs/*/messages", ANY, h_message},
    {"POST", "/v1/runs/*/fork", ANY, h_fork},
    {"GET", "/v1/approvals", ANY, h_approvals},
    {"POST", "/v1/approvals/*/*", ANY, h_decide},
    {"POST", "/v1/admin/drain", ROLE_ADMIN, h_drain},
    {"POST", "/v1/admin/undrain", ROLE_ADMIN, h_undrain},
};

/* Split url into at most MAX_SEGS non-empty segments (in place in buf). */
static int
split(char *buf, char **segs)
{
	int n = 0;

	if (buf[0] != '/')
		return -1;
	for (char *save = NULL, *t = strtok_r(buf, "/", &save); t; t = strtok_r(NULL, "/", &save)) {
		if (n == MAX_SEGS)
			return -1;
		segs[n++] = t;
	}
	return n;
}

static enum MHD_Result
dispatch(struct req *q, struct MHD_Connection *c, const char *url, const char *method)
{
	char ubuf[1024], pbuf[64];
	char *useg[MAX_SEGS], *pseg[MAX_SEGS], *args[MAX_SEGS];
	bool path_known = false;

	if (strlen(url) >= sizeof(ubuf))
		return reply_error(c, 414, "uri_too_long", "the path is too long");
	snprintf(ubuf, sizeof(ubuf), "%s", url);
	int nu = split(ubuf, useg);
	if (nu < 0)
		return reply_error(c, 404, "not_found", "no such path");
	for (size_t i = 0; i < ARRAY_SIZE(routes); i++) {
		snprintf(pbuf, sizeof(pbuf), "%s", routes[i].pattern);
		int np = split(pbuf, pseg), na = 0;
		if (np != nu)
			continue;
		bool ok = true;
		for (int k = 0; ok && k < np; k++) {
			if (strcmp(pseg[k], "*") == 0)
				args[na++] = useg[k];
			else
				ok = strcmp(pseg[k], useg[k]) == 0;
		}
		if (!ok)
			continue;
		path_known = true;
		if (strcmp(routes[i].method, method) != 0)
			continue;
		unsigned role = q->admin ? ROLE_ADMIN : ROLE_USER;
		if (!(routes[i].roles & role))
			return reply_error(c, 403, "forbidden", "this needs an agentd admin");
		return routes[i].fn(q, c, args);
	}
	if (path_known)
		return reply_error(c, 405, "method_not_allowed", "%s is not allowed here", method);
	return reply_error(c, 404, "not_found", "no such path: %s", url);
}

static void
peer_creds(struct req *q, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci =
	    MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cr;
	socklen_t len = sizeof(cr);
	const struct serve_config *cfg = &q->sv->cfg;

	if (!ci || getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERCRED, &cr, &len) < 0)
		return;
	q->uid = cr.uid;
	q->gid = cr.gid;
	q->creds = true;
	/* Admins: root, the daemon's own user (rootless), members of admin_group. */
	q->admin = cr.uid == 0 || cr.uid == geteuid();
	if (!q->admin && cfg->has_admin_group) {
		gid_t groups[MAX_PEER_GROUPS];
		socklen_t glen = sizeof(groups);
		q->admin = cr.gid == cfg->admin_gid;
		if (!q->admin &&
		    getsockopt(ci->connect_fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) == 0)
			for (size_t i = 0; i < glen / sizeof(gid_t); i++)
				q->admin = q->admin || groups[i] == cfg->admin_gid;
	}
}

/* TCP callers: "Authorization: Bearer TOKEN", matched by its SHA-256 against
 * the configured hashes (tokens are never kept in clear), every entry compared
 * in full so the time taken does not say which one nearly matched. */
static void
bearer_creds(struct req *q, struct MHD_Connection *c)
{
	const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
	const struct serve_config *cfg = &q->sv->cfg;
	char hex[AGD_SHA256_HEX];
	const struct serve_token *hit = NULL;

	if (!h || strncmp(h, "Bearer ", 7) != 0 || strlen(h + 7) < 16 || strlen(h + 7) > 512)
		return;
	agd_sha256_hex(h + 7, strlen(h + 7), hex);
	for (size_t i = 0; i < cfg->n_tokens; i++) {
		unsigned char diff = 0;
		for (size_t k = 0; k < 64; k++)
			diff |= (unsigned char)(hex[k] ^ cfg->tokens[i].sha256[k]);
		if (!diff)
			hit = &cfg->tokens[i];
	}
	if (!hit)
		return;
	q->uid = hit->uid;
	q->gid = hit->gid;
	q->admin = hit->admin;
	q->creds = true;
}

static bool
on_tcp(struct req *q, struct MHD_Connection *c)
{
	const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);

	return ci && ci->daemon && ci->daemon == q->sv->mhd_tcp;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
	   const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	struct req *q = *con_cls;

	if (!q) {
		q = calloc(1, sizeof(*q));
		if (!q)
			return MHD_NO;
		q->sv = cls;
		q->tcp = on_tcp(q, c);
		if (q->tcp)
			bearer_creds(q, c);
		else
			peer_creds(q, c);
		*con_cls = q;
		return MHD_YES;
	}
	if (*upload_size) {
		if (q->len + *upload_size > API_BODY_MAX)
			q->too_big = true;
		if (!q->too_big) {
			char *b = realloc(q->body, q->len + *upload_size + 1);
			if (!b)
				return MHD_NO;
			memcpy(b + q->len, upload, *upload_size);
			q->body = b;
			q->len += *upload_size;
			q->body[q->len] = '\0';
		}
		*upload_size = 0;
		return MHD_YES;
	}
	if (q->parked)
		return MHD_YES; /* not resumed yet */
	if (!q->creds && q->tcp) {
		enum MHD_Result ret =
		    reply_error(c, 401, "unauthorized", "a valid bearer token is required");
		return ret;
	}
	if (!q->creds)
		return reply_error(c, 403, "forbidden", "cannot identify the caller");
	if (q->too_big)
		return reply_error(c, 413, "too_large", "request bodies are limited to %u bytes",
				   API_BODY_MAX);
	return dispatch(q, c, url, method);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
	     enum MHD_RequestTerminationCode toe)
{
	struct req *q = *con_cls;

	if (!q)
		return;
	if (q->parked)
		serve_unpark(q->sv, q->wait_run, &q->waiter);
	free(q->body);
	free(q);
	*con_cls = NULL;
}

void
api_resume(struct serve *sv, struct MHD_Connection *c)
{
	MHD_resume_connection(c);
	sv->mhd_kick = true;
}

static void
on_mhd(struct agd_watch *w, uint32_t events)
{
	struct serve *sv = (struct serve *)((char *)w - offsetof(struct serve, w_mhd));

	sv->mhd_kick = true;
	api_run(sv);
}

static void
on_mhd_tcp(struct agd_watch *w, uint32_t events)
{
	struct serve *sv = (struct serve *)((char *)w - offsetof(struct serve, w_mhd_tcp));

	sv->mhd_kick = true;
	api_run(sv);
}

/* One MHD daemon in external epoll mode on listen_fd, its epoll fd a watch. */
static int
start_daemon(struct serve *sv, int listen_fd, struct MHD_Daemon **ret, struct agd_watch *w,
	     agd_watch_fn fn)
{
	const union MHD_DaemonInfo *di;
	struct MHD_Daemon *d;

	d = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG, 0, NULL,
			     NULL, on_request, sv, MHD_OPTION_LISTEN_SOCKET, listen_fd,
			     MHD_OPTION_NOTIFY_COMPLETED, on_completed, sv,
			     MHD_OPTION_CONNECTION_LIMIT, 4096u, MHD_OPTION_CONNECTION_TIMEOUT,
			     300u, MHD_OPTION_END);
	if (!d)
		return -EIO;
	di = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD);
	*w = (struct agd_watch){di ? di->epoll_fd : -1, fn};
	int e = di ? agd_loop_add(&sv->loop, w, EPOLLIN) : -EIO;
	if (e < 0) {
		MHD_stop_daemon(d);
		w->fd = -1;
		return e;
	}
	*ret = d;
	return 0;
}

int
api_start(struct serve *sv, int listen_fd)
{
	return start_daemon(sv, listen_fd, &sv->mhd, &sv->w_mhd, on_mhd);
}

int
api_start_tcp(struct serve *sv, int listen_fd)
{
	return start_daemon(sv, listen_fd, &sv->mhd_tcp, &sv->w_mhd_tcp, on_mhd_tcp);
}

int
api_timeout_ms(struct serve *sv)
{
	struct MHD_Daemon *ds[] = {sv->mhd, sv->mhd_tcp};
	MHD_UNSIGNED_LONG_LONG to, best = ULLONG_MAX;

	if (sv->mhd_kick)
		return 0;
	for (size_t i = 0; i < ARRAY_SIZE(ds); i++)
		if (ds[i] && MHD_get_timeout(ds[i], &to) == MHD_YES && to < best)
			best = to;
	if (best == ULLONG_MAX) {
		sv->mhd_deadline_ns = 0;
		return -1;
	}
	sv->mhd_deadline_ns = agd_now_ns() + (int64_t)(best > INT_MAX ? INT_MAX : best) * 1000000;
	return best > INT_MAX ? INT_MAX : (int)best;
}

void
api_run(struct serve *sv)
{
	if (!sv->mhd_kick && !(sv->mhd_deadline_ns && agd_now_ns() >= sv->mhd_deadline_ns))
		return;
	/* Resumed connections are handled by the next MHD_run; repeat while a
	 * handler resumed more. */
	for (int i = 0; i < 4 && (sv->mhd_kick || i == 0); i++) {
		sv->mhd_kick = false;
		if (sv->mhd)
			MHD_run(sv->mhd);
		if (sv->mhd_tcp)
			MHD_run(sv->mhd_tcp);
	}
}

static void
stop_daemon(struct serve *sv, struct MHD_Daemon **d, struct agd_watch *w)
{
	if (!*d)
		return;
	if (w->fd >= 0)
		epoll_ctl(sv->loop.epfd, EPOLL_CTL_DEL, w->fd, NULL); /* MHD closes it */
	w->fd = -1;
	MHD_stop_daemon(*d);
	*d = NULL;
}

void
api_stop(struct serve *sv)
{
	/* No connection may stay suspended when MHD stops: answer them all. */
	for (size_t i = 0; i < sv->n_runs; i++)
		serve_wake(sv, sv->runs[i]);
	sv->mhd_kick = true;
	api_run(sv);
	stop_daemon(sv, &sv->mhd, &sv->w_mhd);
	stop_daemon(sv, &sv->mhd_tcp, &sv->w_mhd_tcp);
}
