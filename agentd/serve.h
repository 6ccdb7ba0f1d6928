/* agentd serve: shared between serve.c (daemon, runs, scheduler, recovery),
 * serve_notify.c (sd_notify) and api.c (the HTTP control API). */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/loop.h"
#include "policy/policy.h"
#include "store/store.h"
#include "supervisor/supervisor.h"

struct MHD_Daemon;
struct hook;
struct MHD_Connection;

/* A bearer token of the optional TCP listener, kept as its SHA-256 only. */
struct serve_token {
	char sha256[65]; /* lowercase hex */
	uid_t uid;
	gid_t gid;
	bool admin;
};

struct serve_config {
	char state[1024];
	char socket[108];      /* sun_path */
	char policy_dir[1024]; /* system.json, <user>.json or default.json; "": the default */
	gid_t admin_gid;       /* members are admins; (gid_t)-1: none */
	bool has_admin_group;
	int max_running;	  /* global */
	int max_running_per_user; /* per tenant */
	int max_queued_per_user;
	int64_t log_max_bytes;	     /* per run */
	int approval_idle_suspend_s; /* see sup_options; 0: the supervisor's default */
	int64_t retention_s; /* final runs are deleted this long after finishing (0: kept) */
	int keep_states;     /* automatic retention of runs that set none (0: none) */
	int tool_workers;    /* threads running the tools that may block (0: the loop's) */
	char **hook_hosts;   /* hosts completion webhooks may go to (none: webhooks off) */
	size_t n_hook_hosts;
	char tcp_listen[128]; /* "HOST:PORT"; "" = no TCP listener (default) */
	struct serve_token *tokens;
	size_t n_tokens;
};

/* A connection parked until something happens to a run (result?wait, follow). */
struct serve_waiter {
	struct MHD_Connection *conn;
	struct serve_waiter *next;
	int64_t deadline_ms; /* 0: none (woken by the run only) */
	bool *parked;	     /* cleared when woken */
};

struct serve_tenant;

struct serve;

struct serve_run {
	struct serve *sv;
	char *id;
	uid_t owner;
	gid_t owner_gid;
	char *user;	/* owner's name */
	char *idem;	/* idempotency key or NULL */
	json_t *labels; /* object (owned) */
	char *msg_mode; /* the run's default message mode */
	char *webhook;	/* completion webhook URL or NULL */
	bool hooked;	/* its webhook was sent (or is not to be) */
	int64_t created_ms;
	int64_t wall_ms;   /* 0: none */
	uid_t sandbox_uid; /* root mode: the tenant's own unprivileged uid (and gid) */
	int64_t started_ms;
	uint64_t order; /* submission order, for the queue */
	char status[24];
	int64_t finished_ms; /* when it became final (0: not final) */
	bool deleted;	     /* hidden from every lookup (kept for streams in flight) */
	int exit_code;
	char *reason;
	const char *final_status; /* set by cancel/kill/limit: recorded on done */

	struct sup_run *sup; /* while running */
	bool free_sup;	     /* done: free sup after this loop iteration */
	struct agd_watch w_log;
	int log_wr;  /* the agent's stdout/stderr pipe, write end */
	int log_fd;  /* <state>/runs/<id>/agent.log */
	int lock_fd; /* flock on <state>/runs/<id>/lock while supervised */
	int64_t log_bytes;
	bool log_truncated;

	struct serve_tenant *tenant;
	struct serve_run *qnext; /* tenant queue */
	bool queued;
	struct serve_waiter *waiters;
};

struct serve_tenant {
	uid_t uid;
	int running, queued;
	struct serve_run *qhead, *qtail;
	struct serve_tenant *next;
};

struct serve {
	struct serve_config cfg;
	struct agd_loop loop;
	struct store *st;
	struct sup_batch *batch; /* the group commit every run joins */
	struct agd_watch w_sig, w_mhd, w_tick;
	struct MHD_Daemon *mhd;
	struct agd_watch w_mhd_tcp; /* the optional TCP listener (bearer tokens) */
	struct MHD_Daemon *mhd_tcp;
	bool mhd_kick;		 /* run MHD_run after this iteration */
	int64_t mhd_deadline_ns; /* MHD asked to be run by then (0: no timeout) */
	bool pumping;
	bool pump_more;		  /* queued runs wait for the next iteration's batch */
	int lock_fd;		  /* flock on <state>/serve.lock: one daemon per state dir */
	struct sup_run **to_free; /* finished supervisors, freed between iterations */
	size_t n_free, cap_free;
	bool draining; /* admin drain: queued runs wait, new ones are refused */
	bool stopping; /* SIGTERM: stop everything and exit */
	char sdk[4096];
	const char *sdk_dir;
	int64_t started_ms;
	int64_t heartbeat_ms; /* last wake of every parked connection */
	int64_t swept_ms;     /* last retention sweep */
	void *hooks;	      /* CURLM * of completion webhooks (serve_webhook.c) */
	struct agd_watch w_hook_timer;
	struct hook *hook_list;
	int hooks_active;
	uint64_t hooks_sent, hooks_failed;

	struct serve_run **runs; /* submission order */
	size_t n_runs, cap_runs;
	size_t n_deleted; /* of runs[], hidden */
	uint64_t next_order;
	struct serve_tenant *tenants, *rr; /* round-robin cursor */
	int running;
	int n_parked;
};

/* Parked follow streams are woken this often (events streams then send a
 * blank line), so connections whose clients left are noticed and closed. */
#define API_HEARTBEAT_MS 15000

/* serve.c */
struct serve_run *serve_run_find(struct serve *sv, const char *id);
struct serve_run *serve_run_find_idem(struct serve *sv, uid_t owner, const char *key);
/* Create, record and queue a run from a validated request; *ret_run on success.
 * -EEXIST (name taken), -EUSERS (queue full: 429), -ESHUTDOWN (draining),
 * -EINVAL with err filled; other negative errno. */
struct api_run_req;
int serve_submit(struct serve *sv, uid_t uid, gid_t gid, const struct api_run_req *req,
		 struct serve_run **ret_run, char *err, size_t errsz);
/* Fork `src` after its call `at` (0: from the start) as run `name` (NULL: a
 * generated one), queued. Same errors as serve_submit. */
int serve_run_fork(struct serve *sv, struct serve_run *src, int64_t at, const char *name,
		   struct serve_run **ret_run, char *err, size_t errsz);
/* Delete a final run: its files go, its store rows stay for audit with
 * status "deleted"; no longer listed or shown. -EBUSY if not final. */
int serve_run_delete(struct serve *sv, struct serve_run *r, const char *why);
/* Graceful cancel or immediate kill; a queued run is dropped. A graceful
 * cancel of a running run refuses its calls from the next boundary on and
 * ends it "cancelled" when the child exits (killed after
 * SERVE_CANCEL_GRACE_MS). 0 or -EALREADY when final. */
#define SERVE_CANCEL_GRACE_MS 5000
/* Config tool_workers: threads that run the tools that may block (http.request,
 * fs.*), so a slow one stalls only its own run. */
#define SERVE_TOOL_WORKERS_DEFAULT 4
#define SERVE_TOOL_WORKERS_MAX	   64
int serve_run_cancel(struct serve *sv, struct serve_run *r, bool kill);
/* Pause ("paused": its next call waits) or resume ("running") a running
 * run. A suspended run (no process) is paused in its status only: its
 * decision starts it held; resumed, it is "suspended" again ("queued" once
 * decided). 0; -EALREADY when it is not running or suspended (or paused, to
 * resume);
 * -ECANCELED while a cancel is under way. */
int serve_run_pause(struct serve *sv, struct serve_run *r, bool pause);
/* 1-based position in the fair queue, 0 if not queued. */
int serve_queue_position(struct serve *sv, const struct serve_run *r);
bool serve_run_final(const struct serve_run *r);
/* Start a suspended run again (its approval was decided). */
int serve_run_restart(struct serve *sv, struct serve_run *r);
void serve_wake(struct serve *sv, struct serve_run *r);
void serve_park(struct serve *sv, struct serve_run *r, struct serve_waiter *w);
void serve_unpark(struct serve *sv, struct serve_run *r, struct serve_waiter *w);
void serve_pump(struct serve *sv);
const char *serve_log_path(struct serve *sv, const struct serve_run *r, char *buf, size_t bufsz);

/* api.c */
int api_start(struct serve *sv, int listen_fd);
/* The optional TCP listener: callers present "Authorization: Bearer TOKEN". */
int api_start_tcp(struct serve *sv, int listen_fd);
void api_stop(struct serve *sv);
/* Run MHD's work and re-arm its timeout; call after every loop iteration. */
int api_timeout_ms(struct serve *sv);
void api_run(struct serve *sv);
/* The run as the API shows it (new reference). */
json_t *api_run_json(struct serve *sv, const struct serve_run *r);
/* Resume a connection parked with serve_park. */
void api_resume(struct serve *sv, struct MHD_Connection *c);

/* serve_webhook.c: completion webhooks, driven by the loop. */
int serve_hooks_init(struct serve *sv);
void serve_hooks_free(struct serve *sv);
/* True if url is http(s) to a host the config's webhook_hosts names. */
bool serve_hook_host_allowed(const struct serve *sv, const char *url);
/* POST body (stolen) to url, retried twice; best effort. */
void serve_hook_send(struct serve *sv, const char *url, json_t *body);

/* serve_notify.c: sd_notify over $NOTIFY_SOCKET (no-op without it). */
void serve_notify(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
