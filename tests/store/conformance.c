/* Store conformance checks (see conformance.h). Included by each backend's
 * cmocka test file; everything but store_conformance_run is static. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "tests/store/conformance.h"

static const struct store_conformance_backend *cf_backend;

struct cf_fixture {
	char dir[64];
	struct store *s;
};

static int
cf_setup(void **state)
{
	struct cf_fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/agentd-conf-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	*state = f;
	return 0;
}

static int
cf_teardown(void **state)
{
	struct cf_fixture *f = *state;
	char cmd[128];

	f->s = store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static struct store *
cf_open(struct cf_fixture *f)
{
	f->s = store_close(f->s);
	assert_int_equal(cf_backend->open(f->dir, STORE_DURABILITY_PROCESS, &f->s), 0);
	return f->s;
}

static struct store_call
cf_call(int64_t seq, const char *tool, json_t *args, int attempt)
{
	struct store_call c = {0};

	c.seq = seq;
	c.tool = (char *)tool;
	c.args = args;
	c.attempt = attempt;
	c.decision = (char *)"allow";
	c.rule = (char *)"";
	c.started_ms = seq;
	return c;
}

/* Intent then finish, with result {"r": seq}. */
/* Padding that makes every other value a few KB: backends may keep long
 * values apart from short ones (the SQLite one does, docs/store.md), and
 * both kinds must behave the same. */
static const char *
cf_pad(int64_t seq)
{
	static char pad[3001];

	if (!pad[0])
		memset(pad, 'p', sizeof(pad) - 1);
	return seq % 2 ? pad : pad + sizeof(pad) - 9;
}

static int
cf_commit_pair(struct store *s, const char *run, int64_t seq, int attempt)
{
	cleanup_json json_t *args = json_pack("{s:I,s:s}", "seq", seq, "pad", cf_pad(seq));
	cleanup_json json_t *res = json_pack("{s:I,s:s}", "r", seq, "pad", cf_pad(seq + 1));
	struct store_call c = cf_call(seq, "tool.x", args, attempt);
	int r = store_journal_intent(s, run, &c);

	if (r < 0)
		return r;
	return store_journal_finish(s, run, seq, STORE_CALL_OK, res, seq + 1);
}

/* Rows come back ordered by seq whatever the commit order and interleaving
 * across runs; events come back in append order. */
static void
cf_ordering(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	const char *runs[] = {"a", "b", "c"};
	struct store_call *calls = NULL;
	size_t n = 0;

	for (int64_t i = 0; i < 50; i++) {
		/* 17 is coprime with 50: a fixed permutation of 1..50. */
		int64_t seq = (i * 17) % 50 + 1;
		for (size_t r = 0; r < ARRAY_SIZE(runs); r++) {
			cleanup_json json_t *args =
			    json_pack("{s:s,s:I}", "run", runs[r], "seq", seq);
			struct store_call c = cf_call(seq, "t", args, 1);
			c.status = STORE_CALL_OK;
			c.result = args;
			c.finished_ms = seq;
			assert_int_equal(store_journal_record(s, runs[r], &c), 0);
		}
		assert_int_equal(store_event_append(s, "a", 1, seq, "call.finished", NULL), 0);
	}
	for (size_t r = 0; r < ARRAY_SIZE(runs); r++) {
		assert_int_equal(store_journal_load(s, runs[r], &calls, &n), 0);
		assert_int_equal(n, 50);
		for (size_t i = 0; i < n; i++) {
			assert_int_equal(calls[i].seq, (int64_t)i + 1);
			assert_string_equal(
			    json_string_value(json_object_get(calls[i].args, "run")), runs[r]);
			assert_int_equal(
			    json_integer_value(json_object_get(calls[i].result, "seq")), i + 1);
		}
		store_calls_free(calls, n);
	}
}

struct cf_events {
	int64_t expect[50];
	size_t n;
};

static int
cf_event_order(const struct store_event *e, void *ud)
{
	struct cf_events *c = ud;

	assert_true(c->n < ARRAY_SIZE(c->expect));
	assert_int_equal(e->seq, c->expect[c->n]);
	c->n++;
	return 0;
}

static void
cf_event_ordering(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	struct cf_events c = {0};
	struct cf_events want = {0};

	for (int64_t i = 0; i < 50; i++) {
		want.expect[i] = (i * 31) % 50;
		assert_int_equal(store_event_append(s, "e", 1, want.expect[i], "x", NULL), 0);
		assert_int_equal(store_event_append(s, "other", 1, 0, "y", NULL), 0);
	}
	memcpy(c.expect, want.expect, sizeof(c.expect));
	assert_int_equal(store_event_foreach(s, "e", cf_event_order, &c), 0);
	assert_int_equal(c.n, 50);
}

static void
cf_first_writer_wins(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	cleanup_json json_t *a = json_pack("{s:s}", "who", "first");
	cleanup_json json_t *b = json_pack("{s:s}", "who", "second");
	struct store_call first = cf_call(1, "first.tool", a, 1);
	struct store_call second = cf_call(1, "second.tool", b, 2);
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_journal_intent(s, "r", &first), 0);
	assert_int_equal(store_journal_intent(s, "r", &second), -EEXIST);
	second.status = STORE_CALL_OK;
	second.result = b;
	assert_int_equal(store_journal_record(s, "r", &second), -EEXIST);
	assert_int_equal(store_journal_finish(s, "r", 1, STORE_CALL_OK, a, 3), 0);
	assert_int_equal(store_journal_finish(s, "r", 1, STORE_CALL_OK, b, 4), -EALREADY);
	assert_int_equal(store_journal_finish(s, "r", 9, STORE_CALL_OK, b, 4), -ENOENT);
	/* Recorded rows win the same way. */
	second.seq = 2;
	assert_int_equal(store_journal_record(s, "r", &second), 0);
	first.seq = 2;
	assert_int_equal(store_journal_intent(s, "r", &first), -EEXIST);

	assert_int_equal(store_journal_load(s, "r", &calls, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(calls[0].tool, "first.tool");
	assert_true(json_equal(calls[0].result, a));
	assert_int_equal(calls[0].finished_ms, 3);
	assert_string_equal(calls[1].tool, "second.tool");
	assert_int_equal(calls[1].attempt, 2);
	store_calls_free(calls, n);
}

/* Several processes race for the same (run, seq) slots and also write their
 * own runs: no error other than -EEXIST surfaces, each slot has exactly one
 * winner, and the stored row is the winner's. */
#define CF_WRITERS 4
#define CF_SLOTS   100

static void
cf_concurrent_writers(void **state)
{
	struct cf_fixture *f = *state;
	pid_t pids[CF_WRITERS];
	int wins[CF_WRITERS] = {0}, stored[CF_WRITERS] = {0}, total = 0;
	struct store_call *calls = NULL;
	size_t n = 0;

	f->s = store_close(f->s);
	/* Create the store first so the children race on data, not creation. */
	cf_open(f);
	f->s = store_close(f->s);
	for (int p = 0; p < CF_WRITERS; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct store *s = NULL;
			char own[16];
			int won = 0;
			if (cf_backend->open(f->dir, STORE_DURABILITY_PROCESS, &s) < 0)
				_exit(255);
			snprintf(own, sizeof(own), "own%d", p);
			for (int64_t seq = 1; seq <= CF_SLOTS; seq++) {
				json_t *args = json_pack("{s:i,s:s}", "p", p, "pad", cf_pad(seq));
				struct store_call c = cf_call(seq, "race", args, 1);
				c.status = STORE_CALL_OK;
				c.result = args;
				int r = store_journal_record(s, "shared", &c);
				if (r == 0)
					won++;
				else if (r != -EEXIST)
					_exit(254);
				if (cf_commit_pair(s, own, seq, 1) < 0)
					_exit(253);
				json_decref(args);
			}
			store_close(s);
			_exit(won);
		}
	}
	for (int p = 0; p < CF_WRITERS; p++) {
		int status;
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_true(WEXITSTATUS(status) <= CF_SLOTS);
		wins[p] = WEXITSTATUS(status);
		total += wins[p];
	}
	assert_int_equal(total, CF_SLOTS);
	struct store *s = cf_open(f);
	assert_int_equal(store_journal_load(s, "shared", &calls, &n), 0);
	assert_int_equal(n, CF_SLOTS);
	for (size_t i = 0; i < n; i++) {
		json_int_t p = json_integer_value(json_object_get(calls[i].args, "p"));
		assert_true(p >= 0 && p < CF_WRITERS);
		stored[p]++;
	}
	store_calls_free(calls, n);
	for (int p = 0; p < CF_WRITERS; p++) {
		char own[16];
		assert_int_equal(stored[p], wins[p]);
		snprintf(own, sizeof(own), "own%d", p);
		assert_int_equal(store_journal_load(s, own, &calls, &n), 0);
		assert_int_equal(n, CF_SLOTS);
		store_calls_free(calls, n);
	}
}

/* A writer reports each commit after it returns, and is SIGKILLed at some
 * point in a series of commits; every reported commit must be in the store,
 * intact, and the store must open and accept the next commits. Repeated with
 * growing delays, resuming the same journal each round. */
static void
cf_crash_consistency(void **state)
{
	struct cf_fixture *f = *state;
	int64_t next = 1;

	f->s = store_close(f->s);
	cf_open(f);
	f->s = store_close(f->s);
	for (int round = 0; round < 6; round++) {
		int64_t reported = 0; /* 2*seq for an intent, 2*seq+1 for a finish */
		int64_t v;
		int pfd[2];
		pid_t pid;

		assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
		pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *s = NULL;
			close(pfd[0]);
			if (cf_backend->open(f->dir, STORE_DURABILITY_PROCESS, &s) < 0)
				_exit(2);
			for (int64_t seq = next;; seq++) {
				cleanup_json json_t *args =
				    json_pack("{s:I,s:s}", "seq", seq, "pad", cf_pad(seq));
				cleanup_json json_t *res =
				    json_pack("{s:I,s:s}", "r", seq, "pad", cf_pad(seq + 1));
				struct store_call c = cf_call(seq, "tool.x", args, round + 1);
				if (store_journal_intent(s, "crash", &c) < 0)
					_exit(3);
				v = 2 * seq;
				if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
					_exit(4);
				if (store_journal_finish(s, "crash", seq, STORE_CALL_OK, res,
							 seq + 1) < 0)
					_exit(3);
				v = 2 * seq + 1;
				if (write(pfd[1], &v, sizeof(v)) != sizeof(v))
					_exit(4);
			}
		}
		close(pfd[1]);
		/* Let it commit a varying number of rows, then kill it mid-series. */
		for (int i = 0; i < 20 + round * 37; i++) {
			assert_int_equal(read(pfd[0], &v, sizeof(v)), sizeof(v));
			reported = v;
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		/* Commits reported after our last read also count. */
		while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
			reported = v;
		close(pfd[0]);

		struct store *s = cf_open(f);
		struct store_call *calls = NULL;
		size_t n = 0;
		assert_int_equal(store_journal_load(s, "crash", &calls, &n), 0);
		assert_true((int64_t)n >= reported / 2);
		assert_true((int64_t)n <= reported / 2 + 1);
		for (size_t i = 0; i < n; i++) {
			int64_t seq = (int64_t)i + 1;
			assert_int_equal(json_integer_value(json_object_get(calls[i].args, "seq")),
					 seq);
			if (2 * seq + 1 <= reported) {
				assert_int_equal(calls[i].status, STORE_CALL_OK);
				assert_int_equal(
				    json_integer_value(json_object_get(calls[i].result, "r")), seq);
			}
		}
		/* The restarted writer settles an unknown outcome and goes on. */
		if (n > 0 && calls[n - 1].status == STORE_CALL_INTENT) {
			cleanup_json json_t *res = json_pack("{s:I}", "r", (json_int_t)n);
			assert_int_equal(
			    store_journal_finish(s, "crash", (int64_t)n, STORE_CALL_OK, res, 1), 0);
		}
		next = (int64_t)n + 1;
		store_calls_free(calls, n);
		f->s = store_close(f->s);
	}
}

/* 4 MiB args and results (the default frame limit) round-trip intact. */
static void
cf_large_values(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	size_t big = 4u << 20;
	cleanup_free char *blob = malloc(big + 1);
	struct store_call *calls = NULL;
	json_t *got = NULL;
	int64_t seq;
	size_t n = 0;

	assert_non_null(blob);
	for (size_t i = 0; i < big; i++)
		blob[i] = (char)('a' + i % 26);
	blob[big] = '\0';
	cleanup_json json_t *args = json_pack("{s:s}", "content", blob);
	blob[0] = 'Z';
	cleanup_json json_t *res = json_pack("{s:s}", "body", blob);
	cleanup_json json_t *arr = json_array();
	for (int i = 0; i < 1000; i++)
		json_array_append_new(arr, json_pack("{s:i,s:s}", "i", i, "pad", "0123456789"));

	struct store_call c = cf_call(1, "fs.write", args, 1);
	assert_int_equal(store_journal_intent(s, "big", &c), 0);
	assert_int_equal(store_journal_finish(s, "big", 1, STORE_CALL_OK, res, 2), 0);
	c = cf_call(2, "http.request", arr, 1);
	c.status = STORE_CALL_OK;
	c.result = args;
	assert_int_equal(store_journal_record(s, "big", &c), 0);
	assert_int_equal(store_state_save(s, "big", 2, res), 0);

	s = cf_open(f);
	assert_int_equal(store_journal_load(s, "big", &calls, &n), 0);
	assert_int_equal(n, 2);
	assert_true(json_equal(calls[0].args, args));
	assert_true(json_equal(calls[0].result, res));
	assert_true(json_equal(calls[1].args, arr));
	assert_true(json_equal(calls[1].result, args));
	store_calls_free(calls, n);
	assert_int_equal(store_state_load(s, "big", &got, &seq), 0);
	assert_true(json_equal(got, res));
	assert_int_equal(seq, 2);
	json_decref(got);
}

/* The state as it stood at a seq (fork --at, show --at): the newest one saved
 * at or before it; a fork copies it under the new run. */
static void
cf_state_at(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	cleanup_json json_t *spec = json_pack("{s:s}", "k", "v");
	json_t *got = NULL;
	int64_t seq = 0;

	assert_int_equal(store_run_create(s, "st", spec), 0);
	for (int64_t k = 2; k <= 8; k += 3) { /* states at 2, 5, 8 */
		cleanup_json json_t *v = json_pack("{s:I}", "at", k);
		assert_int_equal(store_state_save(s, "st", k, v), 0);
	}
	assert_int_equal(store_state_load_at(s, "st", 1, &got, &seq), -ENOENT);
	assert_int_equal(store_state_load_at(s, "st", 2, &got, &seq), 0);
	assert_int_equal(seq, 2);
	json_decref(got);
	assert_int_equal(store_state_load_at(s, "st", 7, &got, &seq), 0);
	assert_int_equal(seq, 5);
	assert_int_equal(json_integer_value(json_object_get(got, "at")), 5);
	json_decref(got);
	assert_int_equal(store_state_load_at(s, "st", 100, &got, &seq), 0);
	assert_int_equal(seq, 8);
	json_decref(got);
	assert_int_equal(store_state_load_at(s, "st", -1, &got, &seq), -EINVAL);
	/* The newest state overall is unchanged by the lookups. */
	assert_int_equal(store_state_load(s, "st", &got, &seq), 0);
	assert_int_equal(seq, 8);
	json_decref(got);
}

/* Retention: the newest K states are kept, finished rows at or before the
 * oldest kept state are compacted to hashes, the journal still verifies
 * (also after a truncate re-seals it), and unknown outcomes are kept whole. */
static void
cf_retention(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t done = -1, seq = 0;
	json_t *got = NULL;
	char want[AGD_SHA256_HEX];

	assert_int_equal(store_run_create(s, "rt", NULL), 0);
	for (int64_t k = 1; k <= 10; k++) {
		if (k == 3) { /* an unknown outcome: intent only */
			cleanup_json json_t *args = json_pack("{s:I}", "seq", k);
			struct store_call c = cf_call(k, "tool.x", args, 1);
			assert_int_equal(store_journal_intent(s, "rt", &c), 0);
		} else {
			assert_int_equal(cf_commit_pair(s, "rt", k, 1), 0);
		}
		if (k == 2 || k == 5 || k == 8) {
			cleanup_json json_t *v = json_pack("{s:I}", "at", k);
			assert_int_equal(store_state_save(s, "rt", k, v), 0);
		}
	}
	assert_int_equal(store_retain(s, "rt", 0, &done), -EINVAL);
	assert_int_equal(store_retain(s, "", 1, &done), -EINVAL);
	/* Fewer states than asked for: nothing changes. */
	assert_int_equal(store_retain(s, "rt", 4, &done), 0);
	assert_int_equal(done, 0);
	assert_int_equal(store_state_load_at(s, "rt", 2, &got, &seq), 0);
	json_decref(got);

	/* Keep 2 states (5 and 8): rows 1, 2, 4, 5 compacted; 3 kept whole. */
	assert_int_equal(store_retain(s, "rt", 2, &done), 0);
	assert_int_equal(done, 4);
	assert_int_equal(store_state_load_at(s, "rt", 4, &got, &seq), -ENOENT);
	assert_int_equal(store_state_load_at(s, "rt", 5, &got, &seq), 0);
	assert_int_equal(seq, 5);
	json_decref(got);
	assert_int_equal(store_journal_load(s, "rt", &calls, &n), 0);
	assert_int_equal(n, 10);
	for (size_t i = 0; i < n; i++) {
		bool compact = calls[i].seq <= 5 && calls[i].seq != 3;
		assert_int_equal(calls[i].compacted, compact);
		if (!compact) {
			assert_non_null(calls[i].args);
			continue;
		}
		assert_null(calls[i].args);
		assert_null(calls[i].result);
		assert_int_equal(calls[i].status, STORE_CALL_OK);
		/* The texts cf_commit_pair wrote, as the store encodes them. */
		json_int_t q = (json_int_t)calls[i].seq;
		cleanup_json json_t *a = json_pack("{s:I,s:s}", "seq", q, "pad", cf_pad(q));
		cleanup_json json_t *r = json_pack("{s:I,s:s}", "r", q, "pad", cf_pad(q + 1));
		char *at = NULL, *rt = NULL;
		size_t al = 0, rl = 0;
		assert_int_equal(store_json_text(a, &at, &al), 0);
		assert_int_equal(store_json_text(r, &rt, &rl), 0);
		agd_digest_hex(store_digest(s), rt, rl, want);
		free(at);
		free(rt);
		assert_string_equal(calls[i].result_hash, want);
		assert_int_equal(calls[i].result_len, rl);
		assert_int_equal(calls[i].args_len, al);
	}
	assert_int_equal(calls[2].status, STORE_CALL_INTENT);
	store_calls_free(calls, n);

	/* Idempotent; an unknown outcome can still be finished. */
	assert_int_equal(store_retain(s, "rt", 2, &done), 0);
	assert_int_equal(done, 0);
	cleanup_json json_t *res = json_pack("{s:b}", "late", 1);
	assert_int_equal(store_journal_finish(s, "rt", 3, STORE_CALL_OK, res, 99), 0);
	/* A truncate re-seals compacted rows too, and the result still verifies. */
	assert_int_equal(store_journal_truncate(s, "rt", 7), 0);
	s = cf_open(f);
	assert_int_equal(store_journal_load(s, "rt", &calls, &n), 0);
	assert_int_equal(n, 7);
	assert_true(calls[0].compacted && calls[4].compacted && !calls[5].compacted);
	assert_true(json_is_true(json_object_get(calls[2].result, "late")));

	/* A fork copies compacted rows as they are: same hashes and sizes,
	 * still compacted, and the copy verifies. */
	assert_int_equal(store_run_create(s, "rt-fork", NULL), 0);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(store_journal_record(s, "rt-fork", &calls[i]), 0);
	struct store_call *copy = NULL;
	size_t nc = 0;
	s = cf_open(f);
	assert_int_equal(store_journal_load(s, "rt-fork", &copy, &nc), 0);
	assert_int_equal(nc, 6);
	for (size_t i = 0; i < nc; i++) {
		assert_int_equal(copy[i].compacted, calls[i].compacted);
		assert_string_equal(copy[i].args_hash, calls[i].args_hash);
		if (!copy[i].compacted)
			continue;
		assert_null(copy[i].args);
		assert_string_equal(copy[i].result_hash, calls[i].result_hash);
		assert_int_equal(copy[i].args_len, calls[i].args_len);
		assert_int_equal(copy[i].result_len, calls[i].result_len);
	}
	store_calls_free(copy, nc);
	/* A compacted row is never an unknown outcome. */
	calls[0].status = STORE_CALL_INTENT;
	assert_int_equal(store_journal_intent(s, "rt-fork", &calls[0]), -EINVAL);
	store_calls_free(calls, n);
}

/* A caller's canonical args text (store_json_text) is stored and hashed as
 * given, for intents and complete rows alike. A hash given with it is taken
 * as given (the caller hashed that text), so a wrong one is written, and
 * then every load reports the journal as corrupt: no row of it is ever
 * handed out to be replayed. */
static void
cf_caller_args_text(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f);
	cleanup_json json_t *args = json_pack("{s:s,s:[i,i]}", "b", "\u00e9\n", "a", 1, 2);
	cleanup_free char *txt = NULL;
	struct store_call *calls = NULL;
	char hash[AGD_SHA256_HEX];
	size_t len = 0, n = 0;

	assert_int_equal(store_json_text(args, &txt, &len), 0);
	assert_string_equal(txt, "{\"a\":[1,2],\"b\":\"\u00e9\\n\"}");
	agd_digest_hex(store_digest(s), txt, len, hash);
	struct store_call c = cf_call(1, "tool.x", args, 1);
	c.args_text = txt;
	c.args_len = len;
	memset(c.args_hash, 'F', AGD_SHA256_HEX - 1); /* not lower-case hex */
	c.args_hash[AGD_SHA256_HEX - 1] = '\0';
	assert_int_equal(store_journal_intent(s, "t", &c), -EINVAL);
	/* The hash of other args, on intent and complete rows. */
	cleanup_json json_t *other = json_pack("{s:i}", "a", 2);
	assert_int_equal(agd_json_hash(store_digest(s), other, c.args_hash), 0);
	assert_int_equal(store_journal_intent(s, "bad-intent", &c), 0);
	c.status = STORE_CALL_OK;
	c.result = args;
	assert_int_equal(store_journal_record(s, "bad-record", &c), 0);
	/* Without the text, a hash is checked against the args. */
	struct store_call v = cf_call(1, "tool.x", args, 1);
	memcpy(v.args_hash, c.args_hash, AGD_SHA256_HEX);
	assert_int_equal(store_journal_intent(s, "bad-values", &v), -EINVAL);
	for (int lazy = 0; lazy < 2; lazy++) {
		for (int k = 0; k < 2; k++) {
			const char *run = k ? "bad-record" : "bad-intent";
			calls = NULL;
			n = 0;
			assert_int_equal(lazy ? store_journal_load_lazy(s, run, &calls, &n)
					      : store_journal_load(s, run, &calls, &n),
					 -EBADMSG);
			assert_null(calls);
			assert_int_equal(n, 0);
		}
	}
	c.status = STORE_CALL_INTENT;
	c.result = NULL;
	memcpy(c.args_hash, hash, AGD_SHA256_HEX);
	assert_int_equal(store_journal_intent(s, "t", &c), 0);
	assert_int_equal(store_journal_finish(s, "t", 1, STORE_CALL_OK, args, 2), 0);
	c.seq = 2;
	c.args_hash[0] = '\0';
	c.status = STORE_CALL_OK;
	c.result = args;
	assert_int_equal(store_journal_record(s, "t", &c), 0);

	assert_int_equal(store_journal_load(s, "t", &calls, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++) {
		assert_string_equal(calls[i].args_text, txt);
		assert_int_equal(calls[i].args_len, len);
		assert_string_equal(calls[i].args_hash, hash);
		assert_true(json_equal(calls[i].args, args));
	}
	store_calls_free(calls, n);
}

/* An empty, version-0 store is migrated to the current version on open and
 * then behaves like a fresh one. */
static size_t
cf_journal_len(struct store *s, const char *run)
{
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_journal_load(s, run, &calls, &n), 0);
	store_calls_free(calls, n);
	return n;
}

/* Group commit: the rows of a batch, across runs, become visible together
 * at its commit and in the order written; a failed write inside it changes
 * nothing and the rest still commit; an abort or a writer killed before the
 * commit leaves none of them; other write transactions are refused while it
 * is open. */
static void
cf_group_commit(void **state)
{
	struct cf_fixture *f = *state;
	struct store *s = cf_open(f), *other = NULL;
	const char *runs[] = {"a", "b", "c"};
	struct store_journal_stats st0, st1;
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(cf_backend->open(f->dir, STORE_DURABILITY_PROCESS, &other), 0);
	assert_int_equal(store_batch_commit(s), -EINVAL);
	store_journal_stats(s, &st0);

	/* Intents of three runs, then in a second batch their outcomes, a
	 * record and another intent: invisible to another connection until
	 * each commit. */
	assert_int_equal(store_batch_begin(s), 0);
	assert_int_equal(store_batch_begin(s), -EBUSY);
	for (size_t r = 0; r < ARRAY_SIZE(runs); r++) {
		cleanup_json json_t *args = json_pack("{s:s}", "run", runs[r]);
		struct store_call c = cf_call(1, "t", args, 1);
		assert_int_equal(store_journal_intent(s, runs[r], &c), 0);
	}
	/* A write of its own is refused meanwhile, and changes nothing. */
	assert_int_equal(store_journal_truncate(s, "a", 0), -EBUSY);
	assert_int_equal(cf_journal_len(other, "a"), 0);
	assert_int_equal(store_batch_commit(s), 0);
	for (size_t r = 0; r < ARRAY_SIZE(runs); r++)
		assert_int_equal(cf_journal_len(other, runs[r]), 1);

	assert_int_equal(store_batch_begin(s), 0);
	for (size_t r = 0; r < ARRAY_SIZE(runs); r++) {
		cleanup_json json_t *res = json_pack("{s:s}", "done", runs[r]);
		cleanup_json json_t *args = json_pack("{s:i}", "k", 2);
		struct store_call c = cf_call(2, "p", args, 1);
		assert_int_equal(store_journal_finish(s, runs[r], 1, STORE_CALL_OK, res, 5), 0);
		c.status = STORE_CALL_OK;
		c.result = res;
		c.finished_ms = 6;
		assert_int_equal(store_journal_record(s, runs[r], &c), 0);
		c.seq = 3;
		assert_int_equal(store_journal_intent(s, runs[r], &c), 0);
	}
	/* A failing write inside the batch (first writer wins) leaves it usable. */
	{
		cleanup_json json_t *args = json_object();
		struct store_call c = cf_call(2, "late", args, 1);
		assert_int_equal(store_journal_intent(s, "b", &c), -EEXIST);
		assert_int_equal(store_journal_finish(s, "b", 1, STORE_CALL_OK, args, 7),
				 -EALREADY);
	}
	assert_int_equal(cf_journal_len(other, "b"), 1);
	assert_int_equal(store_batch_commit(s), 0);
	for (size_t r = 0; r < ARRAY_SIZE(runs); r++) {
		assert_int_equal(store_journal_load(other, runs[r], &calls, &n), 0);
		assert_int_equal(n, 3);
		for (size_t i = 0; i < n; i++)
			assert_int_equal(calls[i].seq, (int64_t)i + 1);
		assert_int_equal(calls[0].status, STORE_CALL_OK);
		assert_string_equal(json_string_value(json_object_get(calls[0].result, "done")),
				    runs[r]);
		assert_string_equal(calls[1].tool, "p");
		assert_int_equal(calls[2].status, STORE_CALL_INTENT);
		store_calls_free(calls, n);
	}
	store_journal_stats(s, &st1);
	assert_int_equal(st1.commits - st0.commits, 2);
	assert_int_equal(st1.rows - st0.rows, 12);
	assert_int_equal(st1.largest_commit, 9);

	/* An abort leaves nothing, in this connection or another; the store
	 * takes ordinary writes again. */
	assert_int_equal(store_batch_begin(s), 0);
	for (int64_t seq = 1; seq <= 3; seq++) {
		cleanup_json json_t *args = json_pack("{s:I}", "seq", seq);
		struct store_call c = cf_call(seq, "t", args, 1);
		assert_int_equal(store_journal_intent(s, "d", &c), 0);
	}
	store_batch_abort(s);
	assert_int_equal(cf_journal_len(s, "d"), 0);
	assert_int_equal(cf_journal_len(other, "d"), 0);
	assert_int_equal(cf_commit_pair(s, "d", 1, 1), 0);
	assert_int_equal(cf_journal_len(other, "d"), 1);

	/* A writer killed inside its batch: none of its rows; killed right
	 * after the commit: all of them. */
	for (int commit = 0; commit <= 1; commit++) {
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *w = NULL;
			if (cf_backend->open(f->dir, STORE_DURABILITY_PROCESS, &w) < 0 ||
			    store_batch_begin(w) < 0)
				_exit(1);
			for (int64_t seq = 1; seq <= 20; seq++) {
				json_t *args = json_pack("{s:I}", "seq", seq);
				struct store_call c = cf_call(seq, "t", args, 1);
				if (store_journal_intent(w, commit ? "killed-after" : "killed-in",
							 &c) < 0)
					_exit(1);
				json_decref(args);
			}
			if (commit && store_batch_commit(w) < 0)
				_exit(1);
			kill(getpid(), SIGKILL);
			_exit(1);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
	}
	assert_int_equal(cf_journal_len(other, "killed-in"), 0);
	assert_int_equal(cf_journal_len(other, "killed-after"), 20);
	store_close(other);
}

static void
cf_migration_from_empty(void **state)
{
	struct cf_fixture *f = *state;
	struct store_run r = {0};
	int version = -1;

	assert_int_equal(cf_backend->make_empty(f->dir), 0);
	assert_int_equal(cf_backend->schema_version(f->dir, &version), 0);
	assert_int_equal(version, 0);
	struct store *s = cf_open(f);
	assert_int_equal(cf_backend->schema_version(f->dir, &version), 0);
	assert_int_equal(version, cf_backend->current_version);
	assert_int_equal(store_run_create(s, "m", NULL), 0);
	assert_int_equal(cf_commit_pair(s, "m", 1, 1), 0);
	/* Opening again is idempotent. */
	s = cf_open(f);
	assert_int_equal(cf_backend->schema_version(f->dir, &version), 0);
	assert_int_equal(version, cf_backend->current_version);
	assert_int_equal(store_run_get(s, "m", &r), 0);
	store_run_clear(&r);
}

int
store_conformance_run(const struct store_conformance_backend *b)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(cf_ordering, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_event_ordering, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_first_writer_wins, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_concurrent_writers, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_crash_consistency, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_large_values, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_state_at, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_retention, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_caller_args_text, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_group_commit, cf_setup, cf_teardown),
	    cmocka_unit_test_setup_teardown(cf_migration_from_empty, cf_setup, cf_teardown),
	};

	cf_backend = b;
	return _cmocka_run_group_tests(b->name, tests, ARRAY_SIZE(tests), NULL, NULL);
}
