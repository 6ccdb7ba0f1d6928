/* Built-in tools run by the supervisor on behalf of the agent. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* How a tool call behaves when rerun after a crash left its outcome unknown. */
enum tool_class {
	TOOL_PURE = 0,	     /* no side effect: safe to rerun; needs no intent row */
	TOOL_IDEMPOTENT = 1, /* rerun with the same idempotency key is safe */
	TOOL_EFFECT = 2,     /* never rerun blindly */
};

struct tool_ctx {
	const char *run_id;
	int64_t seq;
	const char *cwd;	     /* relative paths resolve against it (absolute) */
	const char *path_root;	     /* fs.*: open beneath this directory (from policy) */
	const char *idempotency_key; /* "<run>:<seq>", sent by idempotent tools */
	int default_timeout_ms;	     /* used when the call gives none */
	size_t max_result_bytes;     /* cap on data returned to the agent */
	/* http.request: refuse hosts that resolve to loopback, private, link-local,
	 * CGNAT, multicast or reserved addresses, and pin the checked addresses so
	 * DNS cannot change them before the connection (false: no address check). */
	bool deny_private_addresses;
	/* http.request: the response header (policy limits.cost_header) whose
	 * integer value is reported as the result's "cost", added to the run's
	 * spend; NULL: none. */
	const char *cost_header;
};

struct tool_def {
	const char *name;
	const char *description;
	const char *input_schema; /* JSON Schema text for tools/list */
	/* Class of this particular call (e.g. fs.write with append is an effect). */
	enum tool_class (*classify)(const json_t *args);
	/* Run the call. Always produces a result: on success the structured content
	 * with *ret_is_error false; on a tool-level failure (bad arguments, ENOENT,
	 * connection refused, timeout...) {"error":{"code":"ENOENT","message":"..."}}
	 * with *ret_is_error true. Returns 0, or -ENOMEM only. */
	int (*call)(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
		    bool *ret_is_error);
	/* Never blocks: no I/O, bounded work in memory. agentd serve runs such a
	 * call on its loop thread instead of handing it to a tool worker (a
	 * handoff would cost more than the call; docs/decisions.md). Must be
	 * safe to call from any thread either way. */
	bool nonblocking;
};

/* The registry: all built-in tools, NULL-terminated order is stable. */
extern const struct tool_def *const tools_builtin[];
const struct tool_def *tools_find(const char *name);

/* Build a tool-level error content object {"error":{"code":code,"message":msg}}. */
json_t *tools_error(const char *code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The tools/list entry of a tool: {"name","description","inputSchema"} with the
 * schema parsed into JSON. New reference, or NULL on allocation failure. */
json_t *tools_describe(const struct tool_def *t);

/* Process-wide setup of the tools' libraries now rather than at first use:
 * loads libcurl and runs curl_global_init (supervisor/tools/curl_dl.h). For a
 * program that uses libcurl itself (agentd-serve); http.request loads it on
 * its first request anyway. Idempotent; not thread-safe. */
void tools_global_init(void);

/* The individual built-in tools (also reachable through tools_builtin). */
extern const struct tool_def tools_fs_read;
extern const struct tool_def tools_fs_write;
extern const struct tool_def tools_fs_list;
extern const struct tool_def tools_fs_stat;
extern const struct tool_def tools_fs_delete;
extern const struct tool_def tools_http_request;
extern const struct tool_def tools_echo;

/* Limits applied by the built-in tools regardless of the context. */
#define TOOLS_MAX_READ_BYTES   (4u << 20) /* fs.read per call */
#define TOOLS_MAX_LIST_ENTRIES 10000	  /* fs.list per call */
#define TOOLS_MAX_TIMEOUT_MS   300000	  /* http.request timeout_ms */
