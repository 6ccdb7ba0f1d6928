/* limits.user_calls_per_minute and limits.cost_header: parsing, serialising,
 * merging under extends, and flattening across layers (tightest limit; the
 * topmost layer's cost header). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

static struct policy *
parse(const char *text)
{
	struct policy *p = NULL;
	struct policy_error err = {0};

	if (policy_parse(text, strlen(text), &p, &err) < 0)
		fail_msg("parse: %s at %d:%d", err.message, err.line, err.column);
	return p;
}

static int
parse_err(const char *text)
{
	struct policy *p = NULL;
	struct policy_error err = {0};
	int r = policy_parse(text, strlen(text), &p, &err);

	policy_free(p);
	return r;
}

static struct policy *
reparse(const json_t *doc)
{
	cleanup_free char *text = json_dumps(doc, JSON_COMPACT);

	assert_non_null(text);
	return parse(text);
}

static void
test_parse_and_round_trip(void **state)
{
	struct policy *p = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":30,"
				 "\"cost_header\":\"X-Cost\"}}");
	assert_int_equal(policy_limits(p)->user_calls_per_minute, 30);
	assert_string_equal(policy_cost_header(p), "X-Cost");
	cleanup_json json_t *doc = policy_to_json(p);
	struct policy *q = reparse(doc);
	assert_int_equal(policy_limits(q)->user_calls_per_minute, 30);
	assert_string_equal(policy_cost_header(q), "X-Cost");
	policy_free(q);
	policy_free(p);

	struct policy *none = parse("{\"version\":1,\"limits\":{\"max_calls\":3}}");
	assert_int_equal(policy_limits(none)->user_calls_per_minute, 0);
	assert_null(policy_cost_header(none));
	policy_free(none);
}

static void
test_invalid_values(void **state)
{
	static const char *const bad[] = {
	    "{\"version\":1,\"limits\":{\"user_calls_per_minute\":0}}",
	    "{\"version\":1,\"limits\":{\"user_calls_per_minute\":-1}}",
	    "{\"version\":1,\"limits\":{\"user_calls_per_minute\":\"10\"}}",
	    "{\"version\":1,\"limits\":{\"cost_header\":\"\"}}",
	    "{\"version\":1,\"limits\":{\"cost_header\":\"X Cost\"}}",
	    "{\"version\":1,\"limits\":{\"cost_header\":\"X-Cost:\"}}",
	    "{\"version\":1,\"limits\":{\"cost_header\":5}}",
	    "{\"version\":1,\"limits\":{\"user_calls_per_minut\":5}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		assert_int_equal(parse_err(bad[i]), -EINVAL);
	/* lint knows the keys: no finding for a valid document */
	const char ok[] = "{\"version\":1,\"limits\":{\"user_calls_per_minute\":5,"
			  "\"cost_header\":\"X-Cost\"}}";
	struct policy_finding *f = NULL;
	size_t n = 99;
	assert_int_equal(policy_lint(ok, strlen(ok), &f, &n), 0);
	assert_int_equal(n, 0);
	policy_findings_free(f);
}

static void
test_merge(void **state)
{
	struct policy *base = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":30,"
				    "\"cost_header\":\"X-Cost\"}}");
	struct policy *p = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":60}}");
	struct policy *m = policy_merge(base, p);
	assert_non_null(m);
	/* an extending policy's set limit replaces its base's, as for the others */
	assert_int_equal(policy_limits(m)->user_calls_per_minute, 60);
	assert_string_equal(policy_cost_header(m), "X-Cost");
	policy_free(m);
	policy_free(p);
	policy_free(base);
}

static void
test_flatten(void **state)
{
	struct policy *sys = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":100,"
				   "\"cost_header\":\"X-Cost\"}}");
	struct policy *user = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":10,"
				    "\"cost_header\":\"X-Free\"}}");
	struct policy *run = parse("{\"version\":1,\"limits\":{\"user_calls_per_minute\":500}}");
	struct policy_layer l[] = {{"system", sys}, {"user:alice", user}, {"run", run}};

	cleanup_json json_t *flat = policy_stack_flatten(l, 3);
	assert_non_null(flat);
	struct policy *f = reparse(flat);
	assert_int_equal(policy_limits(f)->user_calls_per_minute, 10); /* the tightest */
	assert_string_equal(policy_cost_header(f), "X-Cost");	       /* the topmost */
	policy_free(f);

	/* a lower layer may name one when the layers above name none */
	struct policy_layer l2[] = {{"run", run}, {"user:alice", user}};
	cleanup_json json_t *flat2 = policy_stack_flatten(l2, 2);
	struct policy *f2 = reparse(flat2);
	assert_int_equal(policy_limits(f2)->user_calls_per_minute, 10);
	assert_string_equal(policy_cost_header(f2), "X-Free");
	policy_free(f2);

	/* no layer sets them: unset */
	struct policy *empty = parse("{\"version\":1}");
	struct policy_layer l3[] = {{"system", empty}, {"run", empty}};
	cleanup_json json_t *flat3 = policy_stack_flatten(l3, 2);
	struct policy *f3 = reparse(flat3);
	assert_int_equal(policy_limits(f3)->user_calls_per_minute, 0);
	assert_null(policy_cost_header(f3));
	policy_free(f3);
	policy_free(empty);
	policy_free(sys);
	policy_free(user);
	policy_free(run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_round_trip),
	    cmocka_unit_test(test_invalid_values),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_flatten),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
