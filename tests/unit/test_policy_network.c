/* "sandbox": {"network": ...}: parsed strictly, kept by to_json, and in a layer
 * stack granted only when no layer that speaks of the network refuses it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
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

static void
test_parse_and_round_trip(void **state)
{
	struct policy *p =
	    parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"network\":\"loopback\"}}");
	assert_non_null(p);
	assert_true(policy_network_loopback(p));
	json_t *doc = policy_to_json(p);
	char *text = json_dumps(doc, JSON_COMPACT);
	struct policy *q = parse(text);
	assert_non_null(q);
	assert_true(policy_network_loopback(q));
	free(text);
	json_decref(doc);
	policy_free(q);
	policy_free(p);

	p = parse("{\"version\":1,\"rules\":[]}");
	assert_false(policy_network_loopback(p));
	policy_free(p);
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"network\":\"internet\"}}"));
	assert_null(parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"network\":true}}"));
}

static void
test_stack_tightens(void **state)
{
	struct policy *sys_unix =
	    parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"network\":\"unix\"}}");
	struct policy *silent = parse("{\"version\":1,\"rules\":[]}");
	struct policy *want =
	    parse("{\"version\":1,\"rules\":[],\"sandbox\":{\"network\":\"loopback\"}}");
	struct policy_layer a[] = {{"system", silent}, {"run", want}};
	struct policy_layer b[] = {{"system", sys_unix}, {"run", want}};

	json_t *fa = policy_stack_flatten(a, 2), *fb = policy_stack_flatten(b, 2);
	char *ta = json_dumps(fa, JSON_COMPACT), *tb = json_dumps(fb, JSON_COMPACT);
	struct policy *pa = parse(ta), *pb = parse(tb);
	assert_true(policy_network_loopback(pa));  /* a silent layer leaves it to others */
	assert_false(policy_network_loopback(pb)); /* a layer that says unix wins */
	free(ta);
	free(tb);
	json_decref(fa);
	json_decref(fb);
	policy_free(pa);
	policy_free(pb);
	policy_free(sys_unix);
	policy_free(silent);
	policy_free(want);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_parse_and_round_trip),
	    cmocka_unit_test(test_stack_tightens),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
