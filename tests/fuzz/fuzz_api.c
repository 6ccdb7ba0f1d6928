/* Fuzz target for control API request bodies (agentd/api_parse.c): the run
 * submission, an approval decision and a user message, plus the policy stack
 * a submitted policy document makes with a fixed user policy. Whatever the input, the
 * parsers must return 0 or -EINVAL/-ENOMEM, and what they accept must satisfy
 * the documented invariants (checked below, abort otherwise); a run's own
 * policy layer never widens what the user's layer decides. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/api.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy *user;
static json_t *layers; /* [{"name": "user:u", "policy": user's document}] */

static const char *const probes[][2] = {
    {"fs.read", "{\"path\":\"/srv/a\"}"},
    {"fs.read", "{\"path\":\"/etc/shadow\"}"},
    {"fs.write", "{\"path\":\"/srv/a\",\"content\":\"x\"}"},
    {"http.request", "{\"method\":\"GET\",\"url\":\"http://example.com/\"}"},
};

static void
check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_api: invariant broken: %s\n", what);
		abort();
	}
}

/* Every probe call decides no wider with the run layer than without it. */
static void
never_wider(const json_t *stack)
{
	struct policy *run = NULL;
	struct policy_error perr;
	cleanup_free char *text =
	    json_dumps(json_object_get(json_array_get(stack, 1), "policy"), JSON_COMPACT);

	check(text && policy_parse(text, strlen(text), &run, &perr) == 0,
	      "the run layer as stored parses");
	struct policy_layer base[1] = {{"user:u", user}},
			    both[2] = {{"user:u", user}, {"run", run}};
	for (size_t i = 0; i < ARRAY_SIZE(probes); i++) {
		json_error_t jerr;
		json_t *args = json_loads(probes[i][1], 0, &jerr);
		struct policy_result a, b;
		check(policy_stack_eval(base, 1, probes[i][0], args, "/", &a, NULL) == 0 &&
			  policy_stack_eval(both, 2, probes[i][0], args, "/", &b, NULL) == 0,
		      "stack eval");
		check(b.decision <= a.decision, "a run layer widened the user's policy");
		json_decref(args);
	}
	policy_free(run);
}

static void
run_req(const char *buf, size_t len)
{
	struct api_run_req r = {0};
	char err[256];
	int e = api_parse_run_req(buf, len, &r, err, sizeof(err));

	check(e == 0 || e == -EINVAL || e == -ENOMEM, "run: return value");
	if (e < 0) {
		check(err[0] != '\0' || e == -ENOMEM, "run: error without a message");
		return;
	}
	check(json_array_size(r.argv) >= 1 && json_array_size(r.argv) <= API_ARGV_MAX, "argv");
	check(!r.cwd || r.cwd[0] == '/', "cwd");
	check(!r.name || api_valid_run_id(r.name), "name");
	check(api_valid_message_mode(r.message_mode), "message_mode");
	check(r.max_restarts >= 0 && r.max_restarts <= API_MAX_RESTARTS, "max_restarts");
	check(r.wall_clock_s >= 0 && r.wall_clock_s <= API_WALL_CLOCK_MAX, "wall_clock");
	if (r.policy) {
		json_t *stack = NULL;
		e = api_run_policy(layers, r.policy, &stack, err, sizeof(err));
		check(e == 0 || e == -EINVAL || e == -ENOMEM, "run policy: return");
		if (e == 0) {
			check(json_array_size(stack) == 2, "run policy: user layer + run layer");
			never_wider(stack);
			json_decref(stack);
		}
	}
	api_run_req_clear(&r);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *buf = (const char *)data;
	char err[256];

	if (!user) {
		static const char doc[] =
		    "{\"version\":1,\"rules\":[{\"id\":\"u\",\"tool\":\"fs.read\","
		    "\"path\":\"/srv/**\",\"decision\":\"allow\"}],"
		    "\"limits\":{\"max_calls\":100}}";
		struct policy_error perr;
		if (policy_parse(doc, sizeof(doc) - 1, &user, &perr) < 0)
			abort();
		layers = json_pack("[{s:s,s:o}]", "name", "user:u", "policy", policy_to_json(user));
	}
	run_req(buf, size);

	struct api_decision_req d = {0};
	int e = api_parse_decision(buf, size, &d, err, sizeof(err));
	check(e == 0 || e == -EINVAL || e == -ENOMEM, "decision: return value");
	if (e == 0) {
		check(!d.args || (d.approve && json_is_object(d.args)), "decision args");
		check(!strcmp(d.scope, "once") || !strcmp(d.scope, "run") ||
			  !strcmp(d.scope, "always"),
		      "decision scope");
		json_decref(d.root);
	}

	struct api_message_req m = {0};
	e = api_parse_message(buf, size, &m, err, sizeof(err));
	check(e == 0 || e == -EINVAL || e == -ENOMEM, "message: return value");
	if (e == 0) {
		check(strlen(m.text) >= 1 && strlen(m.text) <= API_TEXT_MAX, "message text");
		check(!m.mode || api_valid_message_mode(m.mode), "message mode");
		json_decref(m.root);
	}

	/* The input as a query parameter. */
	char num[32];
	size_t n = size < sizeof(num) - 1 ? size : sizeof(num) - 1;
	memcpy(num, data, n);
	num[n] = '\0';
	int64_t v;
	if (api_parse_int(num, 0, 3600, &v) == 0)
		check(v >= 0 && v <= 3600, "int range");
	(void)api_valid_run_id(num);
	return 0;
}
