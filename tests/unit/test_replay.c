/* Replay matching: content-based, k-th occurrence matches k-th journaled call. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "supervisor/replay.h"

static struct store_call *
journal(const char *const *spec, size_t n)
{
	struct store_call *c = calloc(n, sizeof(*c));

	/* spec entries are "tool:hashchar"; the hash is that char repeated. */
	for (size_t i = 0; i < n; i++) {
		c[i].seq = (int64_t)i + 1;
		c[i].tool = strndup(spec[i], strchr(spec[i], ':') - spec[i]);
		memset(c[i].args_hash, strchr(spec[i], ':')[1], AGD_SHA256_HEX - 1);
		c[i].decision = strdup("allow");
		c[i].rule = strdup("");
		c[i].status = STORE_CALL_OK;
	}
	return c;
}

static void
hash(char out[AGD_SHA256_HEX], char ch)
{
	memset(out, ch, AGD_SHA256_HEX - 1);
	out[AGD_SHA256_HEX - 1] = '\0';
}

static void
test_in_order(void **state)
{
	const char *spec[] = {"a:1", "b:2", "a:1"};
	struct sup_replay r;
	char h[AGD_SHA256_HEX];

	assert_int_equal(sup_replay_init(&r, journal(spec, 3), 3), 0);
	hash(h, '1');
	assert_int_equal(sup_replay_match(&r, "a", h), 0);
	sup_replay_consume(&r, 0);
	/* The second occurrence of a:1 matches the second journaled one. */
	assert_int_equal(sup_replay_match(&r, "a", h), 2);
	hash(h, '2');
	assert_int_equal(sup_replay_match(&r, "b", h), 1);
	sup_replay_consume(&r, 1);
	assert_ptr_equal(sup_replay_pending(&r), &r.calls[2]);
	sup_replay_consume(&r, 2);
	assert_null(sup_replay_pending(&r));
	assert_int_equal(sup_replay_last_seq(&r), 3);
	sup_replay_clear(&r);
}

static void
test_reordered_concurrent_calls(void **state)
{
	const char *spec[] = {"x:1", "y:2", "z:3"};
	struct sup_replay r;
	char h[AGD_SHA256_HEX];

	assert_int_equal(sup_replay_init(&r, journal(spec, 3), 3), 0);
	hash(h, '3');
	assert_int_equal(sup_replay_match(&r, "z", h), 2);
	sup_replay_consume(&r, 2);
	hash(h, '1');
	assert_int_equal(sup_replay_match(&r, "x", h), 0);
	sup_replay_consume(&r, 0);
	/* y is still pending; a call that matches nothing is a divergence. */
	hash(h, '9');
	assert_int_equal(sup_replay_match(&r, "y", h), -1);
	assert_non_null(sup_replay_pending(&r));
	assert_int_equal(sup_replay_pending(&r)->seq, 2);
	sup_replay_clear(&r);
}

static void
test_tool_and_hash_must_both_match(void **state)
{
	const char *spec[] = {"fs.read:a"};
	struct sup_replay r;
	char h[AGD_SHA256_HEX];

	assert_int_equal(sup_replay_init(&r, journal(spec, 1), 1), 0);
	hash(h, 'a');
	assert_int_equal(sup_replay_match(&r, "fs.write", h), -1);
	hash(h, 'b');
	assert_int_equal(sup_replay_match(&r, "fs.read", h), -1);
	sup_replay_clear(&r);
}

static void
test_resume_from_state_consumes_prefix(void **state)
{
	const char *spec[] = {"a:1", "a:1", "b:2", "c:3"};
	struct sup_replay r;
	char h[AGD_SHA256_HEX];

	assert_int_equal(sup_replay_init(&r, journal(spec, 4), 4), 0);
	sup_replay_consume_upto(&r, 2);
	hash(h, '1');
	assert_int_equal(sup_replay_match(&r, "a", h), -1);
	assert_int_equal(sup_replay_pending(&r)->seq, 3);
	sup_replay_clear(&r);
}

static void
test_empty_journal(void **state)
{
	struct sup_replay r;
	char h[AGD_SHA256_HEX];

	assert_int_equal(sup_replay_init(&r, NULL, 0), 0);
	hash(h, '1');
	assert_int_equal(sup_replay_match(&r, "a", h), -1);
	assert_null(sup_replay_pending(&r));
	assert_int_equal(sup_replay_last_seq(&r), 0);
	sup_replay_clear(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_in_order),
	    cmocka_unit_test(test_reordered_concurrent_calls),
	    cmocka_unit_test(test_tool_and_hash_must_both_match),
	    cmocka_unit_test(test_resume_from_state_consumes_prefix),
	    cmocka_unit_test(test_empty_journal),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
