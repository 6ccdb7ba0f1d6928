/* Control API request bodies: strict parsing and validation, no side effects.
 * Everything here takes (buf, len) from an untrusted caller. */
#include "agentd/api.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"

#define BODY_MAX_DEPTH 32

static int
fail(char *err, size_t errsz, const char *msg)
{
	snprintf(err, errsz, "%s", msg);
	return -EINVAL;
}

static json_t *
parse_object(const char *buf, size_t len, char *err, size_t errsz)
{
	json_error_t jerr;
	json_t *v;

	if (len > API_BODY_MAX) {
		fail(err, errsz, "request body too large");
		return NULL;
	}
	v = agd_json_parse(buf, len, BODY_MAX_DEPTH, &jerr);
	if (!v) {
		snprintf(err, errsz, "invalid JSON: %s", jerr.text);
		return NULL;
	}
	if (!json_is_object(v)) {
		json_decref(v);
		fail(err, errsz, "the body must be a JSON object");
		return NULL;
	}
	return v;
}

/* A string of 1..max bytes (0..max when empty_ok) with no control characters. */
static bool
valid_text(const char *s, size_t max, bool empty_ok, bool newlines_ok)
{
	size_t n = strnlen(s, max + 1);

	if (n > max || (n == 0 && !empty_ok))
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if ((c < 0x20 && !(newlines_ok && (c == '\n' || c == '\t'))) || c == 0x7f)
			return false;
	}
	return true;
}

bool
api_valid_run_id(const char *id)
{
	size_t n = strnlen(id, API_RUN_ID_MAX + 1);

	if (n == 0 || n > API_RUN_ID_MAX || id[0] == '.' || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && !strchr("._-", id[i]))
			return false;
	return true;
}

bool
api_valid_message_mode(const char *mode)
{
	static const char *const modes[] = {"queue", "interrupt", "restart", "reject"};

	for (size_t i = 0; i < ARRAY_SIZE(modes); i++)
		if (strcmp(mode, modes[i]) == 0)
			return true;
	return false;
}

int
api_parse_int(const char *s, int64_t min, int64_t max, int64_t *ret)
{
	char *end;
	long long v;

	if (!s || !*s || strlen(s) > 20 || !(s[0] == '-' || (s[0] >= '0' && s[0] <= '9')))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*ret = v;
	return 0;
}

void
api_run_req_clear(struct api_run_req *r)
{
	json_decref(r->root);
	*r = (struct api_run_req){0};
}

int
api_parse_run_req(const char *buf, size_t len, struct api_run_req *ret, char *err, size_t errsz)
{
	json_t *argv = NULL, *policy = NULL, *labels = NULL, *limits = NULL, *env = NULL;
	const char *cwd = NULL, *name = NULL, *mode = "queue", *idem = NULL, *hook = NULL;
	json_int_t max_restarts = 5, wall = 0;
	json_error_t jerr;
	cleanup_json json_t *root = parse_object(buf, len, err, errsz);

	if (!root)
		return -EINVAL;
	if (json_unpack_ex(root, &jerr, JSON_STRICT,
			   "{s:o,s?s,s?s,s?o,s?o,s?o,s?I,s?s,s?s,s?s,s?o}", "command", &argv, "cwd",
			   &cwd, "name", &name, "policy", &policy, "labels", &labels, "limits",
			   &limits, "max_restarts", &max_restarts, "message_mode", &mode,
			   "idempotency_key", &idem, "webhook", &hook, "environment", &env) < 0) {
		snprintf(err, errsz, "invalid run request: %s", jerr.text);
		return -EINVAL;
	}
	if (!json_is_array(argv) || json_array_size(argv) == 0 ||
	    json_array_size(argv) > API_ARGV_MAX)
		return fail(err, errsz, "'command' must be a non-empty array of strings");
	for (size_t i = 0; i < json_array_size(argv); i++) {
		json_t *a = json_array_get(argv, i);
		if (!json_is_string(a) || json_string_length(a) > API_ARG_MAX ||
		    strlen(json_string_value(a)) != json_string_length(a))
			return fail(err, errsz, "'command' must be a non-empty array of strings");
	}
	if (json_string_length(json_array_get(argv, 0)) == 0)
		return fail(err, errsz, "'command' names no program");
	if (cwd && (cwd[0] != '/' || !valid_text(cwd, 4095, false, false)))
		return fail(err, errsz, "'cwd' must be an absolute path");
	if (name && !api_valid_run_id(name))
		return fail(err, errsz, "'name' must be 1-64 of [A-Za-z0-9._-]");
	if (policy && !json_is_object(policy))
		return fail(err, errsz, "'policy' must be a policy document (an object)");
	if (labels) {
		const char *k;
		json_t *v;
		if (!json_is_object(labels) || json_object_size(labels) > API_LABELS_MAX)
			return fail(err, errsz, "'labels' must be an object of at most 32 strings");
		json_object_foreach(
		    labels, k, v) if (!valid_text(k, API_LABEL_MAX, false, false) ||
				      !json_is_string(v) ||
				      !valid_text(json_string_value(v), API_LABEL_MAX, true,
						  false)) return fail(err, errsz,
								      "each label must be a string "
								      "of at most 256 bytes");
	}
	if (limits) {
		if (json_unpack_ex(limits, &jerr, JSON_STRICT, "{s?I}", "wall_clock_s", &wall) <
			0 ||
		    wall < 0 || wall > API_WALL_CLOCK_MAX)
			return fail(err, errsz,
				    "'limits' takes {\"wall_clock_s\": 0..31622400} (other limits "
				    "belong in the policy)");
	}
	if (max_restarts < 0 || max_restarts > API_MAX_RESTARTS)
		return fail(err, errsz, "'max_restarts' must be 0..1000");
	if (!api_valid_message_mode(mode))
		return fail(err, errsz,
			    "'message_mode' must be queue, interrupt, restart or reject");
	if (idem && !valid_text(idem, API_IDEM_MAX, false, false))
		return fail(err, errsz, "'idempotency_key' must be 1-128 printable bytes");
	if (hook && (!valid_text(hook, 2048, false, false) ||
		     (strncmp(hook, "http://", 7) != 0 && strncmp(hook, "https://", 8) != 0)))
		return fail(err, errsz, "'webhook' must be an http:// or https:// URL");
	if (env && agd_env_check(env, err, errsz) < 0)
		return -EINVAL;

	*ret = (struct api_run_req){
	    .argv = argv,
	    .cwd = cwd,
	    .name = name,
	    .policy = policy,
	    .labels = labels,
	    .max_restarts = (int)max_restarts,
	    .wall_clock_s = wall,
	    .message_mode = mode,
	    .idempotency_key = idem,
	    .environment = env,
	    .webhook = hook,
	};
	ret->root = steal_ptr(&root);
	return 0;
}

int
api_parse_decision(const char *buf, size_t len, struct api_decision_req *ret, char *err,
		   size_t errsz)
{
	const char *decision = NULL, *comment = "", *scope = "once";
	json_t *args = NULL;
	json_error_t jerr;
	cleanup_json json_t *root = parse_object(buf, len, err, errsz);

	if (!root)
		return -EINVAL;
	if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:s,s?o,s?s,s?s}", "decision", &decision,
			   "args", &args, "comment", &comment, "scope", &scope) < 0) {
		snprintf(err, errsz, "invalid decision: %s", jerr.text);
		return -EINVAL;
	}
	bool approve = strcmp(decision, "approve") == 0;
	if (!approve && strcmp(decision, "deny") != 0)
		return fail(err, errsz, "'decision' must be approve or deny");
	if (args && (!json_is_object(args) || !approve))
		return fail(err, errsz, "'args' (an object) goes only with approve");
	if (!valid_text(comment, API_COMMENT_MAX, true, true))
		return fail(err, errsz, "'comment' must be at most 4096 bytes of text");
	if (strcmp(scope, "once") && strcmp(scope, "run") && strcmp(scope, "always"))
		return fail(err, errsz, "'scope' must be once, run or always");
	*ret = (struct api_decision_req){
	    .approve = approve, .args = args, .comment = comment, .scope = scope};
	ret->root = steal_ptr(&root);
	return 0;
}

int
api_parse_message(const char *buf, size_t len, struct api_message_req *ret, char *err, size_t errsz)
{
	const char *text = NULL, *mode = NULL;
	json_error_t jerr;
	cleanup_json json_t *root = parse_object(buf, len, err, errsz);

	if (!root)
		return -EINVAL;
	if (json_unpack_ex(root, &jerr, JSON_STRICT, "{s:s,s?s}", "text", &text, "mode", &mode) <
	    0) {
		snprintf(err, errsz, "invalid message: %s", jerr.text);
		return -EINVAL;
	}
	if (!valid_text(text, API_TEXT_MAX, false, true))
		return fail(err, errsz, "'text' must be 1..65536 bytes of text");
	if (mode && !api_valid_message_mode(mode))
		return fail(err, errsz, "'mode' must be queue, interrupt, restart or reject");
	*ret = (struct api_message_req){.text = text, .mode = mode};
	ret->root = steal_ptr(&root);
	return 0;
}

int
api_run_policy(const json_t *layers, const json_t *doc, json_t **ret, char *err, size_t errsz)
{
	struct policy_error perr = {0};
	struct policy *p = NULL;
	cleanup_free char *text = NULL;
	int e;

	if (!json_is_array(layers))
		return fail(err, errsz, "policy layers must be an array");
	if (doc) {
		if (!json_is_object(doc))
			return fail(err, errsz, "'policy' must be a policy document (an object)");
		if (json_object_get(doc, "extends"))
			return fail(err, errsz, "policy: a run's policy cannot extend another");
		text = json_dumps(doc, JSON_COMPACT);
		if (!text)
			return -ENOMEM;
		e = policy_parse(text, strlen(text), &p, &perr);
		if (e < 0) {
			snprintf(err, errsz, "policy: %s", perr.message);
			return e == -ENOMEM ? e : -EINVAL;
		}
	}
	/* Stored as the parser's canonical form, as the other layers are. */
	json_t *canon = p ? policy_to_json(p) : NULL;
	policy_free(p);
	if (doc && !canon)
		return -ENOMEM;
	if (json_array_size(layers) == 0 && !canon) {
		*ret = json_pack("{s:i,s:[]}", "version", 1, "rules");
		return *ret ? 0 : -ENOMEM;
	}
	json_t *stack = json_deep_copy(layers);
	if (!stack || (canon && json_array_append_new(stack, json_pack("{s:s,s:o}", "name", "run",
								       "policy", canon)) < 0)) {
		json_decref(stack);
		return -ENOMEM;
	}
	*ret = stack;
	return 0;
}
