/* Policy layers: strictest decision over all layers, flattening of limits,
 * mounts and secrets, reload narrowing, and the budget limit keys. */
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

static const char sys_doc[] =
    "{\"version\":1,\"rules\":["
    "{\"id\":\"sys-read\",\"tool\":\"fs.read\",\"path\":\"/srv/**\",\"decision\":\"allow\"},"
    "{\"id\":\"sys-ask\",\"tool\":\"fs.write\",\"path\":\"/srv/**\",\"decision\":\"ask\"},"
    "{\"id\":\"sys-keys\",\"tool\":\"fs.*\",\"path\":\"/srv/keys/**\",\"decision\":\"deny\"}],"
    "\"limits\":{\"max_calls\":100,\"calls_per_minute\":50,\"on_limit\":\"ask\"},"
    "\"sandbox\":{\"mounts\":[{\"host\":\"/srv\",\"path\":\"/srv\",\"mode\":\"rw\"}]},"
    "\"secrets\":{\"gh\":{\"hosts\":[\"api.github.com\"],\"header\":\"Authorization\"}}}";
static const char user_doc[] =
    "{\"version\":1,\"rules\":["
    "{\"id\":\"u-read\",\"tool\":\"fs.read\",\"path\":\"/srv/p/**\",\"decision\":\"allow\"},"
    "{\"id\":\"u-write\",\"tool\":\"fs.write\",\"path\":\"/srv/p/**\",\"decision\":\"allow\"},"
    "{\"id\":\"u-etc\",\"tool\":\"fs.read\",\"path\":\"/etc/**\",\"decision\":\"allow\"}],"
    "\"limits\":{\"max_calls\":10,\"bytes_out\":\"1K\",\"cost\":{\"fs.read\":2}},"
    "\"sandbox\":{\"mounts\":[{\"host\":\"/srv\",\"path\":\"/srv\",\"mode\":\"ro\"},"
    "{\"host\":\"/opt\",\"path\":\"/opt\",\"mode\":\"ro\"}]}}";

static void
eval_is(const struct policy_layer *l, size_t n, const char *tool, const char *args_text,
	enum policy_decision want, const char *rule, size_t layer)
{
	cleanup_json json_t *args = json_loads(args_text, 0, NULL);
	struct policy_result r;
	size_t pick = 99;

	assert_int_equal(policy_stack_eval(l, n, tool, args, "/", &r, &pick), 0);
	assert_int_equal(r.decision, want);
	assert_string_equal(r.rule_id, rule);
	assert_int_equal(pick, layer);
	if (n > 1)
		assert_non_null(strstr(r.reason, l[layer].name));
}

static void
test_stack_eval(void **state)
{
	struct policy *s = parse(sys_doc), *u = parse(user_doc);
	struct policy_layer l[] = {{"system", s}, {"user:alice", u}};

	/* both allow: the deepest grant explains it */
	eval_is(l, 2, "fs.read", "{\"path\":\"/srv/p/x\"}", POLICY_ALLOW, "u-read", 1);
	/* the user's policy has no rule: denied although the system allows */
	eval_is(l, 2, "fs.read", "{\"path\":\"/srv/q\"}", POLICY_DENY, "", 1);
	/* the user allows /etc, the system has no rule for it */
	eval_is(l, 2, "fs.read", "{\"path\":\"/etc/passwd\"}", POLICY_DENY, "", 0);
	/* the system denies for everyone */
	eval_is(l, 2, "fs.read", "{\"path\":\"/srv/keys/k\"}", POLICY_DENY, "sys-keys", 0);
	/* one layer asks, the other allows: ask */
	eval_is(l, 2, "fs.write", "{\"path\":\"/srv/p/x\"}", POLICY_ASK, "sys-ask", 0);
	/* control: one layer alone is that layer */
	eval_is(l + 1, 1, "fs.read", "{\"path\":\"/etc/passwd\"}", POLICY_ALLOW, "u-etc", 0);
	assert_true(policy_stack_tool_visible(l, 2, "fs.write"));
	assert_false(policy_stack_tool_visible(l, 2, "http.request"));

	cleanup_json json_t *c = policy_stack_constraints(l, 2, "fs.read");
	assert_non_null(c);
	assert_int_equal(json_array_size(c), 3); /* sys-read, u-read, u-etc; no deny */
	assert_string_equal(json_string_value(json_array_get(c, 0)),
			    "allow (rule 'sys-read'): path \"/srv/**\" [layer system]");
	policy_free(s);
	policy_free(u);
}

static void
test_stack_flatten(void **state)
{
	struct policy *s = parse(sys_doc), *u = parse(user_doc);
	struct policy_layer l[] = {{"system", s}, {"user:alice", u}};
	cleanup_json json_t *flat = policy_stack_flatten(l, 2);
	assert_non_null(flat);
	cleanup_free char *text = json_dumps(flat, JSON_COMPACT);
	struct policy *f = parse(text);
	const struct policy_limits *lim = policy_limits(f);

	assert_int_equal(lim->max_calls, 10);	     /* the tighter */
	assert_int_equal(lim->calls_per_minute, 50); /* set by one layer only */
	assert_int_equal(lim->bytes_out, 1024);
	assert_false(lim->ask_on_limit); /* the user layer does not say "ask" */
	assert_int_equal(policy_tool_cost(f, "fs.read"), 2);
	const struct policy_mount *m = NULL;
	assert_int_equal(policy_mounts(f, &m), 1); /* /opt is not granted by the system */
	assert_string_equal(m[0].host, "/srv");
	assert_false(m[0].read_write); /* rw only where both grant rw */
	const struct policy_secret *sec = NULL;
	assert_int_equal(policy_secrets(f, &sec), 1); /* the user declares none */
	assert_int_equal(policy_rule_count(f), 0);    /* rules stay in the layers */
	policy_free(f);
	policy_free(s);
	policy_free(u);
}

static void
test_stack_narrow(void **state)
{
	cleanup_json json_t *stored =
	    json_loads("[{\"name\":\"system\",\"policy\":{\"version\":1}},"
		       "{\"name\":\"run\",\"policy\":{\"version\":1,\"rules\":[]}}]",
		       0, NULL);
	cleanup_json json_t *same =
	    json_loads("[{\"name\":\"system\",\"policy\":{\"version\":1}}]", 0, NULL);
	cleanup_json json_t *newer = json_loads(
	    "[{\"name\":\"system\",\"policy\":{\"version\":1,\"limits\":{\"max_calls\":1}}}]", 0,
	    NULL);
	cleanup_json json_t *a = policy_stack_narrow(stored, same);
	cleanup_json json_t *b = policy_stack_narrow(stored, newer);

	assert_true(json_equal(a, stored)); /* nothing new: unchanged */
	assert_int_equal(json_array_size(b), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(b, 2), "name")),
			    "system (reloaded)");
	/* the stored layers are all still there: a reload cannot drop a restriction */
	assert_true(json_equal(json_array_get(b, 0), json_array_get(stored, 0)));
	assert_true(json_equal(json_array_get(b, 1), json_array_get(stored, 1)));
	assert_null(policy_stack_narrow(stored, NULL));
}

static void
test_limit_keys(void **state)
{
	struct policy *p = parse("{\"version\":1,\"limits\":{\"tool_calls_per_minute\":3,"
				 "\"bytes_in\":\"2K\",\"bytes_out\":100,\"max_spend\":7,"
				 "\"cost\":{\"http.request\":5},\"on_limit\":\"ask\"}}");
	const struct policy_limits *l = policy_limits(p);
	assert_int_equal(l->tool_calls_per_minute, 3);
	assert_int_equal(l->bytes_in, 2048);
	assert_int_equal(l->bytes_out, 100);
	assert_int_equal(l->max_spend, 7);
	assert_true(l->ask_on_limit);
	assert_int_equal(policy_tool_cost(p, "http.request"), 5);
	assert_int_equal(policy_tool_cost(p, "fs.read"), 0);
	/* round trip through the stored form */
	cleanup_json json_t *doc = policy_to_json(p);
	cleanup_free char *text = json_dumps(doc, JSON_COMPACT);
	struct policy *q = parse(text);
	assert_int_equal(policy_limits(q)->bytes_in, 2048);
	assert_true(policy_limits(q)->ask_on_limit);
	assert_int_equal(policy_tool_cost(q, "http.request"), 5);
	policy_free(q);
	policy_free(p);

	static const char *const bad[] = {
	    "{\"version\":1,\"limits\":{\"on_limit\":\"maybe\"}}",
	    "{\"version\":1,\"limits\":{\"cost\":{\"x\":0}}}",
	    "{\"version\":1,\"limits\":{\"cost\":[1]}}",
	    "{\"version\":1,\"limits\":{\"bytes_in\":\"lots\"}}",
	    "{\"version\":1,\"limits\":{\"max_spend\":-1}}",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		struct policy *x = NULL;
		struct policy_error err = {0};
		assert_int_equal(policy_parse(bad[i], strlen(bad[i]), &x, &err), -EINVAL);
		assert_true(err.line > 0);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_stack_eval),
	    cmocka_unit_test(test_stack_flatten),
	    cmocka_unit_test(test_stack_narrow),
	    cmocka_unit_test(test_limit_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
