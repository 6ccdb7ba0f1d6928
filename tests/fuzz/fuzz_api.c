/* Fuzz target for control API request bodies (agentd/api_parse.c): the run
 * submission, an approval decision and a user message, plus the narrowing of
 * a fixed user policy by a submitted policy document. Whatever the input, the
 * parsers must return 0 or -EINVAL/-ENOMEM, and what they accept must satisfy
 * the documented invariants (checked below, abort otherwise). */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/api.h"
#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct policy *user;

static void
check(bool ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_api: invariant broken: %s\n", what);
		abort();
	}
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
		struct policy *p = NULL;
		e = api_narrow_policy(user, r.policy, &p, err, sizeof(err));
		check(e == 0 || e == -EINVAL || e == -EEXIST || e == -ENOMEM, "narrow: return");
		if (e == 0) {
			/* Narrowing never adds an allow: every allow rule is the user's. */
			size_t allows = 0;
			for (size_t i = 0; i < policy_rule_count(p); i++)
				allows += policy_rule_decision(policy_rule_at(p, i)) == POLICY_ALLOW;
			check(allows <= 1, "narrowing added an allow rule");
			policy_free(p);
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
		static const char doc[] = "{\"version\":1,\"rules\":[{\"id\":\"u\",\"tool\":\"fs.read\","
					  "\"path\":\"/srv/**\",\"decision\":\"allow\"}],"
					  "\"limits\":{\"max_calls\":100}}";
		struct policy_error perr;
		if (policy_parse(doc, sizeof(doc) - 1, &user, &perr) < 0)
			abort();
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
