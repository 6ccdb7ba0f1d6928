/* The control API's request bodies and parameters, parsed and validated with no
 * side effects (agentd/api_parse.c), so they can be fuzzed on their own
 * (tests/fuzz/fuzz_api.c). The HTTP side is agentd/api.c. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/policy.h"

#define API_BODY_MAX	   (1u << 20)  /* one request body */
#define API_ARGV_MAX	   256	       /* arguments of a run's command */
#define API_ARG_MAX	   4096	       /* bytes of one argument */
#define API_LABELS_MAX	   32	       /* labels on one run */
#define API_LABEL_MAX	   256	       /* bytes of a label key or value */
#define API_IDEM_MAX	   128	       /* bytes of an idempotency key */
#define API_TEXT_MAX	   (64u << 10) /* one user message */
#define API_COMMENT_MAX	   4096
#define API_RUN_ID_MAX	   64
#define API_MAX_RESTARTS   1000
#define API_WALL_CLOCK_MAX (366LL * 24 * 3600)

/* POST /v1/runs. Strings and values point into root, which owns them. */
struct api_run_req {
	json_t *root;
	json_t *argv;		     /* non-empty array of strings */
	const char *cwd;	     /* absolute, or NULL (the daemon picks) */
	const char *name;	     /* run id asked for, or NULL */
	json_t *policy;		     /* v1 policy document narrowing the user's, or NULL */
	json_t *labels;		     /* object of strings, or NULL */
	int max_restarts;	     /* default 5 */
	int64_t wall_clock_s;	     /* 0: none */
	const char *message_mode;    /* "queue" (default), "interrupt", "restart", "reject" */
	const char *idempotency_key; /* or NULL */
	const char *webhook;	     /* http(s) URL POSTed the run when final, or NULL */
	json_t *environment;	     /* agd_env_check'ed object of strings, or NULL */
};

/* Parse a run submission. 0 and *ret filled (clear with api_run_req_clear), or
 * -EINVAL with a one-line message in err; -ENOMEM. */
int api_parse_run_req(const char *buf, size_t len, struct api_run_req *ret, char *err,
		      size_t errsz);
void api_run_req_clear(struct api_run_req *r);

/* POST /v1/approvals/{run}/{seq}: {"decision": "approve"|"deny", "args"?: {...},
 * "comment"?: "...", "scope"?: "once"|"run"|"always"}. */
struct api_decision_req {
	json_t *root;
	bool approve;
	json_t *args;	     /* edited arguments (an object), or NULL */
	const char *comment; /* "" if none */
	const char *scope;   /* "once" if none */
};
int api_parse_decision(const char *buf, size_t len, struct api_decision_req *ret, char *err,
		       size_t errsz);

/* POST /v1/runs/{id}/messages: {"text": "...", "mode"?: "queue"|...}. */
struct api_message_req {
	json_t *root;
	const char *text;
	const char *mode; /* NULL: the run's default */
};
int api_parse_message(const char *buf, size_t len, struct api_message_req *ret, char *err,
		      size_t errsz);

/* 1..64 of [A-Za-z0-9._-], not starting with '.' or '-'. */
bool api_valid_run_id(const char *id);
/* A message mode name. */
bool api_valid_message_mode(const char *mode);
/* Decimal integer in [min, max] with nothing after it. 0 or -EINVAL. */
int api_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret);

/* The "policy" value of a run's spec: the user's layers (an array of
 * {"name", "policy"} from the policy directory, top first) followed by the
 * request's document, if any, as the "run" layer. A call is allowed only if
 * every layer allows it (policy_stack_eval), so a run's own document can only
 * narrow what its user may do. The document must be a self-contained version-1
 * policy (no "extends"). With no layers at all the result is a deny-all
 * document. Returns 0 and a new reference in *ret, -EINVAL with a message in
 * err, or -ENOMEM. */
int api_run_policy(const json_t *layers, const json_t *doc, json_t **ret, char *err, size_t errsz);
