/* Policy language (version 1): parse and evaluate. Pure code: no syscalls, no I/O
 * except the thin file/dir loaders at the bottom, so it can be fuzzed.
 * See docs/policy.md for the language. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum policy_decision {
	POLICY_DENY = 0,
	POLICY_ASK = 1,
	POLICY_ALLOW = 2,
};

struct policy;	    /* opaque, immutable once parsed */
struct policy_rule; /* opaque, owned by its policy */

/* Where a parse/validation error is: 1-based line and column in the input (0 if unknown). */
struct policy_error {
	int line;
	int column;
	char message[256];
};

/* What happens to an `effect` call whose outcome a crash left unknown (an
 * intent without a result), "on_unknown" at the top level or on an allow or
 * ask rule (docs/policy.md, on_unknown). Ordered from the widest to the
 * strictest: where several say something, the strictest wins. */
enum policy_on_unknown {
	POLICY_UNKNOWN_UNSET = 0, /* the policy says nothing */
	POLICY_UNKNOWN_RETRY,	  /* rerun it: a repeat is accepted */
	POLICY_UNKNOWN_ASK,	  /* an approver decides */
	POLICY_UNKNOWN_SKIP,	  /* the agent gets an error and goes on */
	POLICY_UNKNOWN_FAIL,	  /* the run fails */
};

/* Resource limits from the policy's "limits" object; 0 means "not set". */
struct policy_limits {
	uint64_t calls_per_minute;
	uint64_t max_calls;
	uint64_t wall_clock_ms;
	uint64_t memory_bytes;
	uint64_t pids;
	uint64_t cpu_milli; /* "cpu": thousandths of one CPU ("50%" and 0.5 are 500) */
	/* Budgets (docs/policy.md, Limits). tool_calls_per_minute applies to each tool
	 * on its own; bytes_in counts the agent's canonical arguments, bytes_out the
	 * results it receives; max_spend the cost units of "cost" (per tool) plus the
	 * "cost" a tool reports in its result. */
	uint64_t tool_calls_per_minute;
	uint64_t bytes_in;
	uint64_t bytes_out;
	uint64_t max_spend;
	bool ask_on_limit; /* "on_limit": "ask" (default "deny") */
	/* Calls per minute of all of the run owner's runs in the same store
	 * together (the supervisor counts them in the store's journal). */
	uint64_t user_calls_per_minute;
};

/* One entry of "sandbox.mounts". */
struct policy_mount {
	const char *host; /* absolute, normalised */
	const char *path; /* absolute path inside the sandbox */
	bool read_write;
};

/* Result of one evaluation. Pointers point into the policy and stay valid as long
 * as the policy lives. */
struct policy_result {
	enum policy_decision decision;
	const struct policy_rule *rule; /* NULL: no rule matched (decision is DENY) */
	const char *rule_id;		/* "" when rule is NULL */
	/* For path-matching rules: the literal directory prefix of the matched rule's
	 * path glob (e.g. "/srv/project" for "/srv/project/ **"; the parent directory for
	 * a glob without wildcards, "/etc" for "/etc/hosts"), "/" otherwise. The matched
	 * path is equal to it or beneath it. Tools open paths beneath it with
	 * RESOLVE_BENEATH. */
	const char *path_root;
	/* Normalised absolute path argument that was matched ("" if the call had none). */
	char path[4096];
	/* Human-readable explanation, e.g. "rule 'no-hooks' (deny) matched fs.read path ..." */
	char reason[512];
};

/* Parse a policy document from (buf, len). `extends` is recorded, not resolved
 * (see policy_load_file). Returns 0 and a new policy in *ret, or -EINVAL with err
 * filled (line/column of the offending value), or -ENOMEM. */
int policy_parse(const char *buf, size_t len, struct policy **ret, struct policy_error *err);

/* Destructor; accepts NULL, returns NULL. */
struct policy *policy_free(struct policy *p);

/* Evaluate a tool call. `tool` is the tool name, `args` its arguments object (NULL is
 * taken as {}; a non-object makes every argument matcher see a malformed argument),
 * `cwd` the directory relative paths are resolved against (absolute).
 * Among matching rules deny > ask > allow; no match is a denial.
 * Malformed arguments for a matcher (e.g. a non-string path, a NUL byte, an
 * unparsable URL) make the rule's matcher fail closed: deny rules still match
 * conservatively, allow/ask rules do not. A call that lacks the argument altogether
 * does not match a rule with that matcher. Never allocates. Returns 0 (result in
 * *ret), or -EINVAL if p or ret is NULL. */
int policy_eval(const struct policy *p, const char *tool, const json_t *args, const char *cwd,
		struct policy_result *ret);

/* True if some allow or ask rule's tool pattern matches `tool` (used for tools/list). */
bool policy_tool_visible(const struct policy *p, const char *tool);

/* Rule accessors. */
const char *policy_rule_id(const struct policy_rule *r);
/* "ask" rules: approvers (NULL-terminated, may be empty) and expiry in ms (0 = none). */
const char *const *policy_rule_approvers(const struct policy_rule *r);
uint64_t policy_rule_expires_ms(const struct policy_rule *r);

const struct policy_limits *policy_limits(const struct policy *p);
/* on_unknown for a call: that of the rule deciding it (policy_eval's rule) if
 * it names one, else the policy's top-level one, else UNSET. */
enum policy_on_unknown policy_on_unknown(const struct policy *p, const char *tool,
					 const json_t *args, const char *cwd);
/* "retry", "ask", "skip", "fail" ("" for UNSET); parse: the value, or -1. */
const char *policy_on_unknown_name(enum policy_on_unknown u);
int policy_on_unknown_parse(const char *s);
/* limits.cost[tool]: cost units charged per call of `tool` (0 when unset). */
uint64_t policy_tool_cost(const struct policy *p, const char *tool);
/* limits.cost_header: the HTTP response header whose integer value an
 * http.request adds to the run's spend (as its result's "cost"), or NULL. */
const char *policy_cost_header(const struct policy *p);
size_t policy_mounts(const struct policy *p, const struct policy_mount **ret);
/* "sandbox": {"network": "loopback"}: IP sockets on the loopback interface are
 * allowed in the sandbox (default "unix": AF_UNIX sockets only). */
bool policy_network_loopback(const struct policy *p);
/* Defences of "sandbox": {"require": [...], "optional": [...]}. Without a
 * required one a run is refused; an optional one (the default for these) is
 * skipped with an event when the host lacks it. Everything else the sandbox
 * does is always mandatory. */
#define POLICY_DEFENCE_LANDLOCK (1u << 0)
#define POLICY_DEFENCE_CGROUP	(1u << 1)
/* The POLICY_DEFENCE_* bits "sandbox.require" names. */
unsigned policy_sandbox_require(const struct policy *p);
/* The "extends" name, or NULL. */
const char *policy_extends(const struct policy *p);

/* Merge `base` (the policy extended) under `p`: rules of both apply, limits of
 * `p` override set ones of base; mounts of both; secrets of both, p's winning on a
 * name. Returns a new policy (with no "extends"), or NULL with errno ENOMEM, or
 * EEXIST when a rule id is defined in both. */
struct policy *policy_merge(const struct policy *base, const struct policy *p);

/* Lexically normalise `path` against `cwd` ("." and ".." and "//" removed, no
 * trailing "/"; ".." at "/" stays at "/"). No file system access.
 * Returns 0, -EINVAL (empty, relative with no absolute cwd) or -ENAMETOOLONG (path
 * or cwd over 4096 bytes, result over 4096 bytes or not fitting outsz). */
int policy_normalize_path(const char *path, const char *cwd, char *out, size_t outsz);

/* Load a policy file, resolving `extends` against `dir` (files "<name>.json"; dir
 * NULL: the directory of `path`);
 * the built-in name "default" with no file present is an empty policy (deny all).
 * Cycles and depth over 8 are errors. err->message names the file. */
int policy_load_file(const char *path, const char *dir, struct policy **ret,
		     struct policy_error *err);

/* Serialise a (merged) policy back into a self-contained version-1 document with
 * no "extends", such that policy_parse of its encoding evaluates identically.
 * Used to store the exact policy a run started with. New reference or NULL. */
json_t *policy_to_json(const struct policy *p);

/* ---- Additions: secrets, lint, helpers ---- */

/* One entry of "secrets": agentd injects the value of secret `name` into the header
 * `header` (formatted by replacing "{}" in `format`) of HTTP requests to `hosts`.
 * The secret value itself is never in the policy. */
struct policy_secret {
	const char *name;
	const char *const *hosts; /* NULL-terminated host globs as written (lowercased) */
	const char *header;
	const char *format; /* contains "{}" exactly once; default "{}" */
};

size_t policy_secrets(const struct policy *p, const struct policy_secret **ret);
/* The secret whose hosts match the host of `url` (first in name order), or NULL
 * (also for URLs that carry userinfo or do not parse). */
const struct policy_secret *policy_secret_for_url(const struct policy *p, const char *url);
/* The secret `name` if the host of `url` is one of its hosts (same rules as
 * policy_secret_for_url), else NULL (unknown name, other host, bad URL). */
const struct policy_secret *policy_secret_named_for_url(const struct policy *p, const char *name,
							const char *url);

const char *policy_rule_description(const struct policy_rule *r); /* NULL if none */
enum policy_decision policy_rule_decision(const struct policy_rule *r);
size_t policy_rule_count(const struct policy *p);
const struct policy_rule *policy_rule_at(const struct policy *p, size_t i);
const char *policy_decision_name(enum policy_decision d); /* "deny" | "ask" | "allow" */

/* Lint, for `agentd policy lint FILE` / `agentctl policy lint`.
 * Reports every problem it can find in one pass, not only the first: JSON syntax
 * errors and duplicate keys (one finding, parsing stops there), unknown keys,
 * invalid values, duplicate rule ids, and rules that can never take effect because
 * a rule with a stronger decision covers them (same or wider tool pattern and
 * every matcher at least as wide). Each finding has the 1-based line and column
 * of the offending key or value (of the rule object for shadowed rules).
 * `extends` is not resolved. Returns 0 with *ret (owned by the caller, free with
 * policy_findings_free) and *ret_n set, possibly zero findings; -ENOMEM.
 * The CLI prints "FILE:LINE:COLUMN: SEVERITY: MESSAGE" per finding and exits 1 if
 * any finding is an error, 0 otherwise (warnings alone do not fail). */
enum policy_severity {
	POLICY_SEV_ERROR = 0,
	POLICY_SEV_WARNING = 1,
};

struct policy_finding {
	int line;
	int column;
	enum policy_severity severity;
	char message[256];
};

int policy_lint(const char *buf, size_t len, struct policy_finding **ret, size_t *ret_n);
struct policy_finding *policy_findings_free(struct policy_finding *f);

/* ---- Layers (docs/policy.md, Layers) ---- */

/* One layer of a run's policy stack, top (system) first. */
struct policy_layer {
	const char *name; /* "system", "user:alice", "run", ... */
	const struct policy *policy;
};

/* Evaluate a call against every layer: deny if any layer denies or has no
 * matching rule, else ask if any asks, else allow. *ret is the result of the
 * layer that decided (the first with the strictest decision; among allows the
 * one with the deepest path_root), its reason suffixed with "in layer 'NAME'"
 * when n > 1; *ret_layer (may be NULL) its index. 0, or -EINVAL. */
int policy_stack_eval(const struct policy_layer *layers, size_t n, const char *tool,
		      const json_t *args, const char *cwd, struct policy_result *ret,
		      size_t *ret_layer);
/* on_unknown for a call across the layers: the strictest any layer's
 * policy_on_unknown gives (UNSET if none says anything). */
enum policy_on_unknown policy_stack_on_unknown(const struct policy_layer *layers, size_t n,
					       const char *tool, const json_t *args,
					       const char *cwd);
/* True if every layer may allow or ask for `tool` (tools/list). */
bool policy_stack_tool_visible(const struct policy_layer *layers, size_t n, const char *tool);
/* A rule-less version-1 document with what the stack grants besides rules:
 * each limit at its tightest, per-tool costs at their highest, "on_limit":
 * "ask" only if every layer says so; a mount or secret only if every other
 * layer that declares any grants it identically. New reference or NULL. */
json_t *policy_stack_flatten(const struct policy_layer *layers, size_t n);
/* SIGHUP reload for a running run: `stored` is its stack as stored
 * ([{"name": ..., "policy": {doc}}, ...]), `reloaded` the newly loaded layers
 * in the same form. Returns the stack the run continues with: its own layers
 * plus every reloaded layer it does not already have, so the result is never
 * wider than either (a reload can only narrow a running run). New reference,
 * or NULL (not arrays, or ENOMEM). */
json_t *policy_stack_narrow(const json_t *stored, const json_t *reloaded);
/* True if the rule's tool pattern matches `tool`. */
bool policy_rule_matches_tool(const struct policy_rule *r, const char *tool);
/* The rule object as written (borrowed). */
const json_t *policy_rule_json(const struct policy_rule *r);
/* For tools/list: one line per allow/ask rule of every layer whose tool
 * pattern matches `tool`, "allow (rule 'ID'): path [\"/srv/ **\"]; method
 * \"GET\"" (with " [layer NAME]" when n > 1). Every layer's lines must hold
 * for a call to go through. New JSON array of strings, or NULL. */
json_t *policy_stack_constraints(const struct policy_layer *layers, size_t n, const char *tool);

/* For a denied call: the narrowest allow rule that would match it, as a rule
 * object ({"id","tool","path"|"host"+"method","decision":"allow"}) to show in
 * the denial and the audit record. A deny rule still wins over it: it says
 * what is missing, not that adding it is enough. New reference, or NULL. */
json_t *policy_suggest_rule(const char *tool, const json_t *args, const char *cwd);
