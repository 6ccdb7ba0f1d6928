/* limits.cpu and "sandbox": {"require", "optional"}: parsed strictly, kept by
 * to_json, and in a layer stack the tightest cpu and every requirement win. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/json.h"
#include "policy/policy.h"

static struct policy *
parse(const char *text)
{
	struct policy *p = NULL;
	struct policy_error err = {0};

	return policy_parse(text, strlen(text), &p, &err) < 0 ? NULL : p;
}

static struct policy *
with_cpu(const char *cpu)
{
	char doc[256];

	snprintf(doc, sizeof(doc), "{\"version\":1,\"rules\":[],\"limits\":{\"cpu\":%s}}", cpu);
	return parse(doc);
}

static struct policy *
round_trip(const struct policy *p)
{
	json_t *doc = policy_to_json(p);
	char *text = json_dumps(doc, JSON_COMPACT);
	struct policy *q = parse(text);
	free(text);
	json_decref(doc);
	return q;
}

static void
test_cpu(void **state)
{
	static const struct {
		const char *in;
		uint64_t milli;
	} good[] = {{"\"50%\"", 500},	{"0.5", 500},	    {"\"0.5\"", 500}, {"2", 2000},
		    {"\"12.5%\"", 125}, {"\"0.125\"", 125}, {"\"1%\"", 10},   {"\"150%\"", 1500}};
	static const char *const bad[] = {"0",	      "-1",	    "\"0.5%\"",	  "\"abc\"",
					  "\"50%%\"", "\"1.2345\"", "\"12.55%\"", "2000",
					  "true",     "\"1.\"",	    "\"%\"",	  "\"\""};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct policy *p = with_cpu(good[i].in);
		if (!p)
			fail_msg("cpu %s refused", good[i].in);
		assert_int_equal(policy_limits(p)->cpu_milli, good[i].milli);
		struct policy *q = round_trip(p);
		assert_non_null(q);
		assert_int_equal(policy_limits(q)->cpu_milli, good[i].milli);
		policy_free(q);
		policy_free(p);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct policy *p = with_cpu(bad[i]);
		if (p)
			fail_msg("cpu %s accepted", bad[i]);
	}
	/* Control: no cpu key, no limit. */
	struct policy *p = parse("{\"version\":1,\"rules\":[]}");
	assert_int_equal(policy_limits(p)->cpu_milli, 0);
	policy_free(p);
}

static void
test_require_optional(void **state)
{
	struct policy *p = parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"require\":[\"cgroup\","
				 "\"seccomp\"],\"optional\":[\"landlock\"]}}");
	assert_non_null(p);
	assert_int_equal(policy_sandbox_require(p), POLICY_DEFENCE_CGROUP);
	struct policy *q = round_trip(p);
	assert_non_null(q);
	assert_int_equal(policy_sandbox_require(q), POLICY_DEFENCE_CGROUP);
	policy_free(q);
	policy_free(p);

	/* Control: nothing required by default. */
	p = parse("{\"version\":1,\"rules\":[]}");
	assert_int_equal(policy_sandbox_require(p), 0);
	policy_free(p);

	/* What is mandatory today cannot be made optional; unknown names and
	 * contradictions are errors. */
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"optional\":[\"seccomp\"]}}"));
	assert_null(
	    parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"optional\":[\"namespaces\"]}}"));
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"require\":[\"selinux\"]}}"));
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"require\":\"cgroup\"}}"));
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"require\":[\"cgroup\"],"
			  "\"optional\":[\"cgroup\"]}}"));
}

static void
test_stack(void **state)
{
	struct policy *sys = parse("{\"version\":1,\"rules\":[],\"limits\":{\"cpu\":\"50%\"},"
				   "\"sandbox\":{\"require\":[\"landlock\"]}}");
	struct policy *run = parse("{\"version\":1,\"rules\":[],\"limits\":{\"cpu\":2},"
				   "\"sandbox\":{\"require\":[\"cgroup\"]}}");
	assert_non_null(sys);
	assert_non_null(run);
	struct policy_layer l[] = {{"system", sys}, {"run", run}};
	json_t *flat = policy_stack_flatten(l, 2);
	char *text = json_dumps(flat, JSON_COMPACT);
	struct policy *f = parse(text);
	assert_non_null(f);
	assert_int_equal(policy_limits(f)->cpu_milli, 500); /* the tightest */
	assert_int_equal(policy_sandbox_require(f),
			 POLICY_DEFENCE_LANDLOCK | POLICY_DEFENCE_CGROUP);
	policy_free(f);
	free(text);
	json_decref(flat);
	/* Control: one layer alone keeps its own. */
	flat = policy_stack_flatten(&l[1], 1);
	text = json_dumps(flat, JSON_COMPACT);
	f = parse(text);
	assert_int_equal(policy_limits(f)->cpu_milli, 2000);
	assert_int_equal(policy_sandbox_require(f), POLICY_DEFENCE_CGROUP);
	policy_free(f);
	free(text);
	json_decref(flat);
	policy_free(sys);
	policy_free(run);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_cpu),
	    cmocka_unit_test(test_require_optional),
	    cmocka_unit_test(test_stack),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
