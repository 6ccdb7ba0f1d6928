/* store_user_calls_since: a user's calls across their runs in a window,
 * other owners' runs and runs without an owner left out, limit refusals not
 * counted; the owner is taken from the spec at store_run_create. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"
#include "store/usage.h"

static void
add_run(struct store *s, const char *id, json_int_t owner)
{
	cleanup_json json_t *spec = json_pack("{s:s}", "uid", id);
	assert_non_null(spec);
	if (owner >= 0)
		assert_int_equal(json_object_set_new(spec, "owner",
						     json_pack("{s:I,s:I,s:s}", "uid", owner, "gid",
							       owner, "user", "u")),
				 0);
	assert_int_equal(store_run_create(s, id, spec), 0);
}

static void
add_call(struct store *s, const char *run, int64_t seq, int64_t started_ms, bool limit_refusal)
{
	cleanup_json json_t *args = json_pack("{s:I}", "n", (json_int_t)seq);
	cleanup_json json_t *res = json_pack("{s:s}", "ok", "yes");
	struct store_call c = {
	    .seq = seq,
	    .tool = "agentd.echo",
	    .args = args,
	    .status = limit_refusal ? STORE_CALL_DENIED : STORE_CALL_OK,
	    .result = res,
	    .attempt = 1,
	    .decision = "deny",
	    .rule = limit_refusal ? "limits.max_calls" : "echo",
	    .started_ms = started_ms,
	    .finished_ms = started_ms,
	};
	assert_int_equal(store_journal_record(s, run, &c), 0);
}

static void
test_counts_per_owner(void **state)
{
	char dir[] = "/tmp/agentd-usage-XXXXXX", path[64], cmd[96];
	struct store *s = NULL;
	uint64_t n = 99;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/store.db", dir);
	assert_int_equal(store_open(path, STORE_DURABILITY_PROCESS, &s), 0);
	add_run(s, "a1", 1000);
	add_run(s, "a2", 1000);
	add_run(s, "b1", 1001);
	add_run(s, "none", -1);
	add_call(s, "a1", 1, 5000, false);
	add_call(s, "a1", 2, 9000, false);
	add_call(s, "a2", 1, 9500, false);
	add_call(s, "a2", 2, 9600, true); /* refused by a limit: not counted */
	add_call(s, "b1", 1, 9000, false);
	add_call(s, "none", 1, 9000, false);

	assert_int_equal(store_user_calls_since(s, 1000, 8000, &n), 0);
	assert_int_equal(n, 2); /* a1#2 and a2#1 */
	assert_int_equal(store_user_calls_since(s, 1000, 0, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(store_user_calls_since(s, 1001, 8000, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(store_user_calls_since(s, 1002, 0, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_user_calls_since(s, 1000, 9501, &n), 0);
	assert_int_equal(n, 0);
	assert_int_equal(store_user_calls_since(s, -1, 0, &n), -EINVAL);
	assert_int_equal(store_user_calls_since(NULL, 1000, 0, &n), -EINVAL);

	/* the owner survives reopening (a resumed supervisor, the daemon) */
	s = store_close(s);
	assert_int_equal(store_open(path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_user_calls_since(s, 1000, 8000, &n), 0);
	assert_int_equal(n, 2);
	s = store_close(s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts_per_owner),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
