/* Retries, fallbacks, on_unknown and the durable options (supervisor/retry.c),
 * driven with a scripted tool: each attempt's outcome is chosen by the test. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/internal.h"
#include "supervisor/retry.h"

/* The scripted tool: outcome i of the script answers attempt i. */
static const char *script[8];
static int calls;
static enum tool_class script_class;
static char last_url[128];

static enum tool_class
scripted_class(const json_t *args)
{
	return script_class;
}

static int
scripted_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	      bool *ret_is_error)
{
	const char *o = script[calls] ? script[calls] : "200";
	const char *url = json_string_value(json_object_get(args, "url"));

	calls++;
	snprintf(last_url, sizeof(last_url), "%s", url ? url : "");
	if (o[0] == 'E') {
		*ret_content = tools_error(o, "scripted");
		*ret_is_error = true;
		return 0;
	}
	int status = atoi(o);
	const char *after = strchr(o, ':'); /* "503:5" = Retry-After: 5 */
	*ret_content = json_pack("{s:i,s:{},s:s}", "status", status, "headers", "body", "");
	if (after)
		json_object_set_new(json_object_get(*ret_content, "headers"), "retry-after",
				    json_string(after + 1));
	*ret_is_error = false;
	return 0;
}

static const struct tool_def scripted = {
    .name = "http.request",
    .classify = scripted_class,
    .call = scripted_call,
};

/* The run's policy for the next setup(): allow every http.request by default. */
static const char *fixture_policy = "{\"version\":1,\"rules\":[{\"id\":\"h\",\"tool\":"
				    "\"http.request\",\"decision\":\"allow\"}]}";

struct fixture {
	struct sup_run r;
	struct tool_ctx ctx;
};

static struct fixture *
setup(const char *durable, enum tool_class cls)
{
	const char *pol = fixture_policy;
	struct fixture *f = calloc(1, sizeof(*f));
	char reason[256];
	json_error_t jerr;
	json_t *cfg = json_loads(durable, 0, &jerr);

	assert_non_null(cfg);
	assert_int_equal(sup_durable_parse(cfg, &f->r.dur, reason, sizeof(reason)), 0);
	json_decref(cfg);
	f->r.id = "t";
	f->r.cwd = "/";
	/* Fallbacks are judged by every policy layer, as live calls are. */
	json_t *doc = json_loads(pol, 0, &jerr);
	assert_int_equal(sup_layers_load(&f->r, doc, reason, sizeof(reason)), 0);
	json_decref(doc);
	f->ctx = (struct tool_ctx){.run_id = "t", .seq = 1, .default_timeout_ms = 1000};
	memset(script, 0, sizeof(script));
	calls = 0;
	script_class = cls;
	return f;
}

static void
teardown_fixture(struct fixture *f)
{
	sup_durable_free(f->r.dur);
	sup_layers_free(f->r.layers);
	policy_free(f->r.policy);
	free(f);
}

static int
run(struct fixture *f, const char *url, json_t **ret)
{
	json_t *args = json_pack("{s:s,s:s}", "method", "POST", "url", url);
	bool is_error = false;
	int e = sup_retry_call(&f->r, &scripted, args, script_class, &f->ctx, ret, &is_error);
	json_decref(args);
	return e;
}

static int
status_of(const json_t *c)
{
	return (int)json_integer_value(json_object_get(c, "status"));
}

#define RULE                                                                                       \
	"{\"tools\":[{\"tool\":\"http.*\",\"attempts\":4,\"initial_backoff_ms\":1,"                \
	"\"max_backoff_ms\":5"

static void
test_idempotent_retried_to_success(void **state)
{
	struct fixture *f = setup(RULE "}]}", TOOL_IDEMPOTENT);
	json_t *c = NULL;

	script[0] = "503", script[1] = "ETIMEDOUT", script[2] = "200";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 3);
	assert_int_equal(status_of(c), 200);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_attempts_are_a_limit(void **state)
{
	struct fixture *f = setup(RULE "}]}", TOOL_IDEMPOTENT);
	json_t *c = NULL;

	for (int i = 0; i < 8; i++)
		script[i] = "502";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 4);
	assert_int_equal(status_of(c), 502);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_effect_not_retried_after_ambiguous_failure(void **state)
{
	const char *ambiguous[] = {"503", "502", "504", "ETIMEDOUT", "ECONNRESET"};

	for (size_t i = 0; i < sizeof(ambiguous) / sizeof(ambiguous[0]); i++) {
		struct fixture *f = setup(
		    RULE ",\"fallbacks\":[{\"args\":{\"url\":\"http://b/\"}}]}]}", TOOL_EFFECT);
		json_t *c = NULL;
		script[0] = ambiguous[i];
		assert_int_equal(run(f, "http://a/x", &c), 0);
		/* Once: no retry, no fallback. */
		assert_int_equal(calls, 1);
		assert_string_equal(last_url, "http://a/x");
		json_decref(c);
		teardown_fixture(f);
	}
}

static void
test_effect_retried_when_nothing_was_applied(void **state)
{
	const char *unapplied[] = {"ECONNREFUSED", "EHOSTUNREACH", "429"};

	for (size_t i = 0; i < sizeof(unapplied) / sizeof(unapplied[0]); i++) {
		struct fixture *f = setup(RULE "}]}", TOOL_EFFECT);
		json_t *c = NULL;
		script[0] = unapplied[i], script[1] = "201";
		assert_int_equal(run(f, "http://a/x", &c), 0);
		assert_int_equal(calls, 2);
		assert_int_equal(status_of(c), 201);
		json_decref(c);
		teardown_fixture(f);
	}
}

static void
test_retry_after_honoured(void **state)
{
	/* Longer than the v1 cap: no retry sooner than the service asked. */
	struct fixture *f = setup(RULE "}]}", TOOL_IDEMPOTENT);
	json_t *c = NULL;
	script[0] = "429:5";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 1);
	json_decref(c);
	teardown_fixture(f);

	/* Within it: waited at least that long. */
	f = setup(RULE "}]}", TOOL_IDEMPOTENT);
	script[0] = "503:1", script[1] = "200";
	int64_t t0 = agd_now_ns();
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_true(agd_now_ns() - t0 >= 1000000000LL);
	assert_int_equal(calls, 2);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_non_retryable_and_custom_lists(void **state)
{
	struct fixture *f = setup(RULE "}]}", TOOL_IDEMPOTENT);
	json_t *c = NULL;
	script[0] = "404";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 1);
	json_decref(c);
	teardown_fixture(f);

	f = setup(RULE ",\"retry_on\":[404]}]}", TOOL_IDEMPOTENT);
	script[0] = "404", script[1] = "503", script[2] = "200";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 2); /* 503 is not in this rule's list */
	assert_int_equal(status_of(c), 503);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_fallbacks_in_order(void **state)
{
	struct fixture *f =
	    setup(RULE ",\"attempts\":2,\"fallbacks\":[{\"args\":{\"url\":\"http://b/\"}},"
		       "{\"args\":{\"url\":\"http://c/\"}}]}]}",
		  TOOL_IDEMPOTENT);
	json_t *c = NULL;

	script[0] = "503", script[1] = "503", script[2] = "503", script[3] = "200";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 4); /* 2 attempts, then b (503), then c */
	assert_string_equal(last_url, "http://c/");
	assert_int_equal(status_of(c), 200);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_fallback_denied_by_policy_is_skipped(void **state)
{
	const char *saved = fixture_policy;
	fixture_policy = "{\"version\":1,\"rules\":[{\"id\":\"a\",\"tool\":\"http.request\","
			 "\"url_prefix\":\"http://a/\",\"decision\":\"allow\"}]}";
	struct fixture *f = setup(RULE ",\"attempts\":1,\"fallbacks\":[{\"args\":{\"url\":"
				       "\"http://b/\"}},{\"args\":{\"url\":\"http://a/2\"}}]}]}",
				  TOOL_IDEMPOTENT);
	json_t *c = NULL;

	fixture_policy = saved;
	script[0] = "503", script[1] = "200";
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_int_equal(calls, 2); /* http://b/ is not allowed: never called */
	assert_string_equal(last_url, "http://a/2");
	assert_int_equal(status_of(c), 200);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_timeout_bounds_the_call(void **state)
{
	/* 150 ms for the whole call with 100 ms backoffs: at most two attempts, not ten. */
	struct fixture *f =
	    setup("{\"tools\":[{\"tool\":\"*\",\"attempts\":10,\"initial_backoff_ms\":100,"
		  "\"max_backoff_ms\":100,\"timeout_ms\":150}]}",
		  TOOL_IDEMPOTENT);
	json_t *c = NULL;
	for (int i = 0; i < 8; i++)
		script[i] = "503";
	int64_t t0 = agd_now_ns();
	assert_int_equal(run(f, "http://a/x", &c), 0);
	assert_true(agd_now_ns() - t0 < 400000000LL);
	assert_true(calls >= 1 && calls <= 2);
	json_decref(c);
	teardown_fixture(f);
}

static void
test_options_validated(void **state)
{
	static const char *const bad[] = {
	    "{\"tools\":[{\"tool\":\"*\",\"attempts\":0}]}",
	    "{\"tools\":[{\"tool\":\"*\",\"max_backoff_ms\":5000}]}",
	    "{\"tools\":[{\"tool\":\"*\",\"jitter\":2}]}",
	    "{\"tools\":[{\"tool\":\"*\",\"retry_on\":[\"E\",99]}]}",
	    "{\"tools\":[{\"tool\":\"*\",\"fallbacks\":[{\"tool\":\"no.such\",\"args\":{}}]}]}",
	    "{\"tools\":[{\"tool\":\"*\",\"bogus\":1}]}",
	    "{\"on_unknown\":\"maybe\"}",
	    "{\"deadline_ms\":-1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct sup_durable *d = NULL;
		char reason[256] = "";
		json_t *cfg = json_loads(bad[i], 0, NULL);
		assert_int_equal(sup_durable_parse(cfg, &d, reason, sizeof(reason)), -EINVAL);
		assert_true(reason[0] != '\0');
		json_decref(cfg);
	}
}

/* on_unknown of a call with the policy `pol` and the durable options `dur`. */
static enum policy_on_unknown
on_unknown_with(const char *pol, const char *dur, const char *tool, const char *path)
{
	const char *saved = fixture_policy;
	json_t *args = json_pack("{s:s,s:s,s:b}", "path", path, "content", "x", "append", 1);

	fixture_policy = pol;
	struct fixture *f = setup(dur, TOOL_EFFECT);
	fixture_policy = saved;
	enum policy_on_unknown u = sup_on_unknown(&f->r, tool, args);
	teardown_fixture(f);
	json_decref(args);
	return u;
}

static void
test_on_unknown(void **state)
{
	const char *dur = "{\"on_unknown\":\"fail\",\"tools\":[{\"tool\":\"fs.*\","
			  "\"on_unknown\":\"skip\"}]}";
	const char *none = "{\"version\":1,\"rules\":[{\"id\":\"w\",\"tool\":\"*\","
			   "\"decision\":\"allow\"}]}";
	/* The policy's word: the deciding rule's, else the top level's. */
	const char *pol = "{\"version\":1,\"on_unknown\":\"skip\",\"rules\":[{\"id\":\"w\","
			  "\"tool\":\"fs.write\",\"path\":\"/x/**\",\"decision\":\"allow\","
			  "\"on_unknown\":\"retry\"}]}";

	/* Durable options alone: the tool's entry, else the run's; else ask. */
	assert_int_equal(on_unknown_with(none, dur, "fs.write", "/x/a"), POLICY_UNKNOWN_SKIP);
	assert_int_equal(on_unknown_with(none, dur, "http.request", "/x/a"), POLICY_UNKNOWN_FAIL);
	assert_int_equal(on_unknown_with(none, "{}", "fs.write", "/x/a"), POLICY_UNKNOWN_ASK);
	/* The policy alone. */
	assert_int_equal(on_unknown_with(pol, "{}", "fs.write", "/x/a"), POLICY_UNKNOWN_RETRY);
	assert_int_equal(on_unknown_with(pol, "{}", "fs.write", "/y/a"), POLICY_UNKNOWN_SKIP);
	/* Both: the one that trusts a rerun least wins, either way round. */
	assert_int_equal(on_unknown_with(pol, "{\"on_unknown\":\"ask\"}", "fs.write", "/x/a"),
			 POLICY_UNKNOWN_ASK);
	assert_int_equal(on_unknown_with(pol, "{\"on_unknown\":\"fail\"}", "fs.write", "/x/a"),
			 POLICY_UNKNOWN_FAIL);
	assert_int_equal(on_unknown_with(pol,
					 "{\"tools\":[{\"tool\":\"fs.write\","
					 "\"on_unknown\":\"retry\"}]}",
					 "fs.write", "/y/a"),
			 POLICY_UNKNOWN_SKIP);
	/* Layers: a lower layer cannot loosen what a higher one says. */
	const char *layers =
	    "[{\"name\":\"system\",\"policy\":{\"version\":1,\"on_unknown\":\"fail\","
	    "\"rules\":[{\"id\":\"a\",\"tool\":\"*\",\"decision\":\"allow\"}]}},"
	    "{\"name\":\"run\",\"policy\":{\"version\":1,\"rules\":[{\"id\":\"b\","
	    "\"tool\":\"*\",\"decision\":\"allow\",\"on_unknown\":\"retry\"}]}}]";
	assert_int_equal(on_unknown_with(layers, "{}", "fs.write", "/x/a"), POLICY_UNKNOWN_FAIL);
}

static void
test_durations(void **state)
{
	int64_t ms = 0;
	assert_int_equal(sup_parse_duration_ms("250ms", &ms), 0);
	assert_int_equal(ms, 250);
	assert_int_equal(sup_parse_duration_ms("30s", &ms), 0);
	assert_int_equal(ms, 30000);
	assert_int_equal(sup_parse_duration_ms("2h", &ms), 0);
	assert_int_equal(ms, 7200000);
	assert_int_equal(sup_parse_duration_ms("5", &ms), 0);
	assert_int_equal(ms, 5);
	assert_int_equal(sup_parse_duration_ms("5d", &ms), -EINVAL);
	assert_int_equal(sup_parse_duration_ms("-1s", &ms), -EINVAL);
	assert_int_equal(sup_parse_duration_ms("", &ms), -EINVAL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_idempotent_retried_to_success),
	    cmocka_unit_test(test_attempts_are_a_limit),
	    cmocka_unit_test(test_effect_not_retried_after_ambiguous_failure),
	    cmocka_unit_test(test_effect_retried_when_nothing_was_applied),
	    cmocka_unit_test(test_retry_after_honoured),
	    cmocka_unit_test(test_non_retryable_and_custom_lists),
	    cmocka_unit_test(test_fallbacks_in_order),
	    cmocka_unit_test(test_fallback_denied_by_policy_is_skipped),
	    cmocka_unit_test(test_timeout_bounds_the_call),
	    cmocka_unit_test(test_options_validated),
	    cmocka_unit_test(test_on_unknown),
	    cmocka_unit_test(test_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
