/* Held outcomes (docs/store.md, "Held outcomes"): a group commit's round may
 * end without its commit once its outcomes are in the side file. A process
 * that ends there loses nothing (the next open finishes the outcomes), any
 * other write commits the held round first, the next round's commit carries
 * both, a rollback keeps the outcomes already answered, and a side file that
 * fails its check is not used. */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "store_files.h"

static int64_t
outcomes(const struct fx *f)
{
	return store_sql_int(f->path, "SELECT count(*) FROM outcomes");
}

/* The canonical text of {"echo": size bytes of the letter for seq}. */
static char *
result_text(int64_t seq, size_t size, size_t *len)
{
	cleanup_free char *fill = store_fill(seq, size);
	cleanup_json json_t *v = json_pack("{s:s}", "echo", fill);
	char *txt = NULL;

	assert_int_equal(store_json_text(v, &txt, len), 0);
	return txt;
}

static void
intent(struct store *s, int64_t seq)
{
	cleanup_json json_t *args = json_pack("{s:I}", "seq", (json_int_t)seq);

	assert_int_equal(store_echo_intent(s, "r", seq, args), 0);
}

/* A round that finishes call seq's outcome and ends held. */
static void
held_round(struct store *s, int64_t seq, size_t size)
{
	size_t len;
	cleanup_free char *txt = result_text(seq, size, &len);

	assert_int_equal(store_batch_begin(s), 0);
	assert_int_equal(
	    store_journal_finish_text(s, "r", seq, STORE_CALL_OK, txt, len, 1000 + seq), 0);
	assert_int_equal(store_batch_hold(s), 0);
}

/* A store with run "r" whose call 1 has its outcome held. */
static struct store *
open_held(const struct fx *f, enum store_durability d, size_t size)
{
	struct store *s = NULL;

	assert_int_equal(store_open(f->path, d, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	intent(s, 1);
	held_round(s, 1, size);
	return s;
}

/* The run's journal: n calls, those up to `done` with the outcome
 * held_round wrote. */
static void
expect_journal(struct store *s, size_t n, int64_t done, size_t size)
{
	struct store_call *calls = NULL;
	size_t got = 0;

	assert_int_equal(store_journal_load(s, "r", &calls, &got), 0);
	assert_int_equal(got, n);
	for (size_t i = 0; i < got; i++) {
		int64_t seq = (int64_t)i + 1;
		if (seq > done) {
			assert_int_equal(calls[i].status, STORE_CALL_INTENT);
			continue;
		}
		size_t len;
		cleanup_free char *want = result_text(seq, size, &len);
		assert_int_equal(calls[i].status, STORE_CALL_OK);
		assert_int_equal(calls[i].finished_ms, 1000 + seq);
		assert_string_equal(calls[i].result_text, want);
	}
	store_calls_free(calls, got);
}

/* A child makes call 1 and ends while its outcome is held. */
static void
crash_while_held(const struct fx *f, size_t size)
{
	pid_t pid = fork();

	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0 ||
		    store_run_create(s, "r", NULL) < 0)
			_exit(1);
		intent(s, 1);
		held_round(s, 1, size);
		_exit(store_batch_held(s) ? 0 : 2); /* no close: nothing more is written */
	}
	int status = 0;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

static void
test_held_outcome_survives_the_process(void **state)
{
	const size_t sizes[] = {100, 10 << 10};

	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		struct fx *f = *state;
		char cmd[160];

		crash_while_held(f, sizes[i]);
		assert_int_equal(outcomes(f), 0); /* not committed */
		struct store *s = NULL;
		assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
		expect_journal(s, 1, 1, sizes[i]);
		store_close(s);
		assert_int_equal(outcomes(f), 1);
		/* Opened again: the record is stale now, nothing is doubled. */
		assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
		expect_journal(s, 1, 1, sizes[i]);
		store_close(s);
		assert_int_equal(outcomes(f), 1);
		snprintf(cmd, sizeof(cmd), "rm -f '%s'*", f->path);
		assert_int_equal(system(cmd), 0);
	}
}

static void
test_damaged_side_file_is_not_used(void **state)
{
	struct fx *f = *state;
	char hpath[128];
	char b;

	crash_while_held(f, 100);
	snprintf(hpath, sizeof(hpath), "%s-held", f->path);
	cleanup_close int fd = open(hpath, O_RDWR);
	assert_true(fd >= 0);
	/* A byte of the record's text (past the header and the fixed part). */
	assert_int_equal(pread(fd, &b, 1, 24 + 88 + 1 + 5), 1);
	b ^= 1;
	assert_int_equal(pwrite(fd, &b, 1, 24 + 88 + 1 + 5), 1);

	struct store *s = NULL;
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	expect_journal(s, 1, 0, 100); /* the intent only, as after any crash mid-call */
	store_close(s);
}

static void
test_other_writes_commit_the_held_round(void **state)
{
	struct fx *f = *state;
	struct store *s = open_held(f, STORE_DURABILITY_PROCESS, 100);

	assert_true(store_batch_held(s));
	assert_int_equal(outcomes(f), 0);
	assert_int_equal(store_event_append(s, "r", 1, 1, "note", NULL), 0);
	assert_false(store_batch_held(s));
	assert_int_equal(outcomes(f), 1);
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM events"), 1);

	/* The same through a transaction of its own, and through the
	 * approvals' statements. */
	intent(s, 2);
	held_round(s, 2, 100);
	assert_int_equal(store_run_set_status(s, "r", "running", -1, ""), 0);
	assert_int_equal(outcomes(f), 2);
	intent(s, 3);
	held_round(s, 3, 100);
	int64_t id = 0;
	assert_int_equal(store_message_add(s, "r", "hello", "queue", &id), 0);
	assert_int_equal(outcomes(f), 3);
	expect_journal(s, 3, 3, 100);
	store_close(s);
}

static void
test_next_round_commits_both(void **state)
{
	struct fx *f = *state;
	struct store *s = open_held(f, STORE_DURABILITY_PROCESS, 10 << 10);

	/* The next round: its intent joins the held batch, one commit. */
	assert_int_equal(store_batch_begin(s), 0);
	assert_false(store_batch_held(s));
	intent(s, 2);
	assert_int_equal(outcomes(f), 0);
	assert_int_equal(store_batch_commit(s), 0);
	assert_int_equal(outcomes(f), 1);
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM journal"), 2);
	/* A round that ends held, then the store closes: committed. */
	held_round(s, 2, 10 << 10);
	store_close(s);
	assert_int_equal(outcomes(f), 2);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	expect_journal(s, 2, 2, 10 << 10);
	store_close(s);
}

/* A held round's outcomes were answered: a rollback of the batch that
 * carries them (a failed commit) finishes them again; the rest goes. */
static void
test_rollback_keeps_answered_outcomes(void **state)
{
	struct fx *f = *state;
	struct store *s = open_held(f, STORE_DURABILITY_PROCESS, 10 << 10);

	assert_int_equal(store_batch_begin(s), 0);
	intent(s, 2);
	store_batch_abort(s);
	assert_false(store_batch_held(s));
	assert_int_equal(outcomes(f), 1);
	expect_journal(s, 1, 1, 10 << 10);
	/* Holding goes on afterwards. */
	intent(s, 2);
	held_round(s, 2, 10 << 10);
	assert_true(store_batch_held(s));
	store_close(s);
	assert_int_equal(outcomes(f), 2);
}

static void
test_power_durability_commits(void **state)
{
	struct fx *f = *state;
	struct store *s = open_held(f, STORE_DURABILITY_POWER, 100);

	assert_false(store_batch_held(s));
	assert_int_equal(outcomes(f), 1);
	/* A batch with a row no record covers (an intent) commits too. */
	assert_int_equal(store_batch_begin(s), 0);
	intent(s, 2);
	assert_int_equal(store_batch_hold(s), 0);
	assert_false(store_batch_held(s));
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM journal"), 2);
	assert_int_equal(store_batch_hold(s), -EINVAL); /* no batch open */
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_held_outcome_survives_the_process,
					    store_files_setup, store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_side_file_is_not_used, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_other_writes_commit_the_held_round,
					    store_files_setup, store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_next_round_commits_both, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_rollback_keeps_answered_outcomes,
					    store_files_setup, store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_power_durability_commits, store_files_setup,
					    store_files_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
