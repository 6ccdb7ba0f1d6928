/* Unit tests for store/: the SQLite backend of store/store.h, including
 * validation of tampered files (edited with the sqlite3 C API directly). */
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>
#include <sqlite3.h>

#include "common/json.h"
#include "common/digest.h"
#include "common/util.h"
#include "store/store.h"
#include "store/usage.h"
#include "store_downgrade.h"

struct fixture {
	char dir[64];
	char path[128];
	struct store *s;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/agentd-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char cmd[160];

	f->s = store_close(f->s);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

static void
reopen(struct fixture *f)
{
	f->s = store_close(f->s);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
}

/* Make the fixture's new, empty store a SHA-256 one (store_downgrade.h). */
static void
reopen_sha256(struct fixture *f)
{
	f->s = store_close(f->s);
	store_sha256(f->path);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(store_digest(f->s), AGD_DIGEST_SHA256);
}

/* The outcome rows of the journal rows matching WHERE clause w (schema 6). */
#define OUTCOME_OF(w) " id IN (SELECT id FROM journal WHERE " w ")"

/* Run SQL on the file behind the store's back, as an attacker or a bug would. */
static void
tamper(struct fixture *f, const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		fail_msg("tamper: %s", err);
	assert_int_equal(sqlite3_changes(db) > 0, 1);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
}

static int64_t
user_version(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

static struct store_call
mkcall(int64_t seq, const char *tool, json_t *args)
{
	struct store_call c = {0};

	c.seq = seq;
	c.tool = (char *)tool;
	c.args = args;
	c.attempt = 1;
	c.decision = (char *)"allow";
	c.rule = (char *)"r1";
	c.started_ms = 1000 + seq;
	return c;
}

/* Three calls: 1 intent+finish OK, 2 recorded ERROR, 3 intent+finish DENIED. */
static void
fill_journal(struct store *s, const char *run)
{
	for (int64_t seq = 1; seq <= 3; seq++) {
		cleanup_json json_t *args = json_pack("{s:s,s:I}", "path", "/a/b", "n", seq);
		cleanup_json json_t *res = json_pack("{s:I}", "bytes", seq * 10);
		struct store_call c = mkcall(seq, "fs.read", args);
		if (seq == 2) {
			c.status = STORE_CALL_ERROR;
			c.result = res;
			c.finished_ms = 2000 + seq;
			assert_int_equal(store_journal_record(s, run, &c), 0);
		} else {
			assert_int_equal(store_journal_intent(s, run, &c), 0);
			assert_int_equal(
			    store_journal_finish(s, run, seq,
						 seq == 1 ? STORE_CALL_OK : STORE_CALL_DENIED, res,
						 2000 + seq),
			    0);
		}
	}
}

static int
load_rc(struct store *s, const char *run)
{
	struct store_call *calls = NULL;
	size_t n = 0;
	int r = store_journal_load(s, run, &calls, &n);

	store_calls_free(calls, r == 0 ? n : 0);
	/* The lazy load (no JSON values built) reaches the same verdict. */
	int lazy = store_journal_load_lazy(s, run, &calls, &n);
	store_calls_free(calls, lazy == 0 ? n : 0);
	assert_int_equal(lazy, r);
	return r;
}

static void
test_open_migrate(void **state)
{
	struct fixture *f = *state;
	struct stat st;
	struct store *other = NULL;
	char wal[160];

	assert_int_equal(stat(f->path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(store_run_create(f->s, "r", NULL), 0);
	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	assert_int_equal(stat(wal, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(user_version(f->path), 8);
	/* Reopening an up-to-date file migrates nothing and works. */
	reopen(f);
	assert_int_equal(user_version(f->path), 8);
	/* A file from a newer schema is refused, not misread. */
	f->s = store_close(f->s);
	{
		sqlite3 *db;
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL),
				 SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_POWER, &other), -EPROTONOSUPPORT);
	assert_null(other);
	/* Not a database at all. */
	{
		char junk[160];
		snprintf(junk, sizeof(junk), "%s/junk.db", f->dir);
		FILE *fp = fopen(junk, "we");
		assert_non_null(fp);
		for (int i = 0; i < 200; i++)
			fputs("this is not an sqlite file ", fp);
		fclose(fp);
		assert_int_equal(store_open(junk, STORE_DURABILITY_PROCESS, &other), -EBADMSG);
	}
	assert_int_equal(store_open(f->path, 7, &other), -EINVAL);
}

static int64_t
pragma_page_size(const char *path)
{
	sqlite3 *db;
	sqlite3_stmt *st;
	int64_t v;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* Processes that open a new store at the same moment (a daemon and `agentd
 * show`, two runs on a fresh state directory) all succeed: switching the new
 * file to WAL waits for the others instead of failing with -EBUSY. */
static void
test_concurrent_first_open(void **state)
{
	struct fixture *f = *state;

	for (int round = 0; round < 30; round++) {
		char path[160];
		int go[2], status, failed = 0;

		snprintf(path, sizeof(path), "%s/new-%d.db", f->dir, round);
		assert_int_equal(pipe2(go, O_CLOEXEC), 0);
		for (int k = 0; k < 6; k++) {
			pid_t pid = fork();
			assert_true(pid >= 0);
			if (pid == 0) {
				struct store *s = NULL;
				char c;
				close(go[1]);
				if (read(go[0], &c, 1) != 0) /* released by the close */
					_exit(2);
				_exit(store_open(path, STORE_DURABILITY_PROCESS, &s) == 0 &&
					      store_run_create(s, "r", NULL) != -EBUSY
					  ? 0
					  : 1);
			}
		}
		close(go[0]);
		close(go[1]);
		while (wait(&status) > 0)
			failed += !WIFEXITED(status) || WEXITSTATUS(status) != 0;
		assert_int_equal(failed, 0);
	}
}

/* A new file gets 1 KiB pages; a file made with another page size keeps it
 * and works the same (its journal commits, reloads and verifies). */
static void
test_page_size(void **state)
{
	struct fixture *f = *state;
	char old[160];
	sqlite3 *db;
	struct store *s = NULL;

	assert_int_equal(store_run_create(f->s, "r", NULL), 0);
	assert_int_equal(pragma_page_size(f->path), 1024);
	snprintf(old, sizeof(old), "%s/old.db", f->dir);
	assert_int_equal(sqlite3_open(old, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "PRAGMA page_size = 8192; VACUUM", NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(pragma_page_size(old), 8192);
	assert_int_equal(store_open(old, STORE_DURABILITY_PROCESS, &s), 0);
	fill_journal(s, "r");
	s = store_close(s);
	assert_int_equal(pragma_page_size(old), 8192);
	assert_int_equal(store_open(old, STORE_DURABILITY_POWER, &s), 0);
	assert_int_equal(load_rc(s, "r"), 0);
	s = store_close(s);
}

static int
collect_ids(const struct store_run *r, void *ud)
{
	char *buf = ud;

	strcat(buf, r->id);
	strcat(buf, ",");
	return 0;
}

static int
stop_at_second(const struct store_run *r, void *ud)
{
	int *count = ud;

	return ++*count == 2 ? 42 : 0;
}

static void
test_runs(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *spec =
	    json_pack("{s:[s,s],s:s}", "argv", "python3", "a.py", "cwd", "/srv");
	struct store_run r = {0};
	char ids[128] = "";
	int attempt = 0, count = 0;

	assert_int_equal(store_run_create(f->s, "alpha", spec), 0);
	assert_int_equal(store_run_create(f->s, "alpha", spec), -EEXIST);
	assert_int_equal(store_run_create(f->s, "../etc", spec), -EINVAL);
	assert_int_equal(store_run_create(f->s, "", spec), -EINVAL);
	assert_int_equal(store_run_get(f->s, "nope", &r), -ENOENT);

	assert_int_equal(store_run_get(f->s, "alpha", &r), 0);
	assert_string_equal(r.id, "alpha");
	assert_string_equal(r.status, "running");
	assert_true(json_equal(r.spec, spec));
	assert_int_equal(r.attempts, 0);
	assert_int_equal(r.exit_code, -1);
	assert_string_equal(r.reason, "");
	assert_true(r.created_ms > 0 && r.updated_ms >= r.created_ms);
	store_run_clear(&r);

	assert_int_equal(store_run_set_status(f->s, "alpha", "failed", 3, "agent crashed"), 0);
	assert_int_equal(store_run_set_status(f->s, "nope", "failed", 3, NULL), -ENOENT);
	assert_int_equal(store_run_set_status(f->s, "alpha", "Bad Status", 3, NULL), -EINVAL);
	/* An over-long reason is cut at a character boundary, not refused. */
	{
		char longr[STORE_REASON_MAX + 8];
		memset(longr, 'x', sizeof(longr));
		memcpy(longr + STORE_REASON_MAX - 1, "\xc3\xa9", 2); /* é across the cut */
		longr[sizeof(longr) - 1] = '\0';
		assert_int_equal(store_run_set_status(f->s, "alpha", "failed", 1, longr), 0);
		assert_int_equal(store_run_get(f->s, "alpha", &r), 0);
		assert_int_equal(strlen(r.reason), STORE_REASON_MAX - 1);
		store_run_clear(&r);
		assert_int_equal(store_run_set_status(f->s, "alpha", "failed", 3, "agent crashed"),
				 0);
	}
	assert_int_equal(store_run_set_attempts(f->s, "alpha", 4), 0);
	assert_int_equal(store_run_set_attempts(f->s, "nope", 4), -ENOENT);
	assert_int_equal(store_run_next_attempt(f->s, "alpha", &attempt), 0);
	assert_int_equal(attempt, 5);
	assert_int_equal(store_run_next_attempt(f->s, "nope", &attempt), -ENOENT);
	assert_int_equal(attempt, 5);
	assert_int_equal(store_run_get(f->s, "alpha", &r), 0);
	assert_string_equal(r.status, "failed");
	assert_int_equal(r.exit_code, 3);
	assert_string_equal(r.reason, "agent crashed");
	assert_int_equal(r.attempts, 5);
	store_run_clear(&r);

	/* Newest first, including runs created within the same millisecond. */
	assert_int_equal(store_run_create(f->s, "beta", NULL), 0);
	assert_int_equal(store_run_create(f->s, "gamma", NULL), 0);
	assert_int_equal(store_run_foreach(f->s, collect_ids, ids), 0);
	assert_string_equal(ids, "gamma,beta,alpha,");
	assert_int_equal(store_run_foreach(f->s, stop_at_second, &count), 42);
	assert_int_equal(count, 2);

	/* A tampered status is rejected on read. */
	tamper(f, "UPDATE runs SET status = 'RUN\nNING' WHERE id = 'beta'");
	assert_int_equal(store_run_get(f->s, "beta", &r), -EBADMSG);
	assert_int_equal(store_run_get(f->s, "alpha", &r), 0);
	store_run_clear(&r);
	tamper(f, "UPDATE runs SET attempts = 'many' WHERE id = 'alpha'");
	assert_int_equal(store_run_get(f->s, "alpha", &r), -EBADMSG);
	tamper(f, "UPDATE runs SET spec = '{\"a\":1,\"a\":2}' WHERE id = 'gamma'");
	assert_int_equal(store_run_get(f->s, "gamma", &r), -EBADMSG);
}

static void
test_journal(void **state)
{
	struct fixture *f = *state;
	struct store_call *calls = NULL;
	size_t n = 0;
	char hash[AGD_SHA256_HEX];

	fill_journal(f->s, "run1");
	assert_int_equal(store_journal_load(f->s, "run1", &calls, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		assert_int_equal(calls[i].seq, (int64_t)i + 1);
		assert_string_equal(calls[i].tool, "fs.read");
		assert_int_equal(agd_json_hash(store_digest(f->s), calls[i].args, hash), 0);
		assert_string_equal(calls[i].args_hash, hash);
		assert_int_equal(json_integer_value(json_object_get(calls[i].args, "n")), i + 1);
		assert_int_equal(json_integer_value(json_object_get(calls[i].result, "bytes")),
				 (i + 1) * 10);
		assert_int_equal(calls[i].attempt, 1);
		assert_string_equal(calls[i].decision, "allow");
		assert_string_equal(calls[i].rule, "r1");
		assert_int_equal(calls[i].started_ms, 1001 + (int64_t)i);
		assert_int_equal(calls[i].finished_ms, 2001 + (int64_t)i);
	}
	assert_int_equal(calls[0].status, STORE_CALL_OK);
	assert_int_equal(calls[1].status, STORE_CALL_ERROR);
	assert_int_equal(calls[2].status, STORE_CALL_DENIED);
	store_calls_free(calls, n);

	/* Other runs are separate; an empty journal loads as zero rows. */
	assert_int_equal(store_journal_load(f->s, "other", &calls, &n), 0);
	assert_int_equal(n, 0);
	store_calls_free(calls, n);
}

static void
test_first_writer_wins(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *a1 = json_pack("{s:i}", "x", 1);
	cleanup_json json_t *a2 = json_pack("{s:i}", "x", 2);
	cleanup_json json_t *res = json_pack("{s:s}", "ok", "yes");
	cleanup_json json_t *res2 = json_pack("{s:s}", "ok", "no");
	struct store_call c1 = mkcall(1, "http.request", a1);
	struct store_call c2 = mkcall(1, "fs.write", a2);
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_journal_intent(f->s, "r", &c1), 0);
	assert_int_equal(store_journal_intent(f->s, "r", &c2), -EEXIST);
	c2.status = STORE_CALL_OK;
	c2.result = res2;
	assert_int_equal(store_journal_record(f->s, "r", &c2), -EEXIST);
	assert_int_equal(store_journal_finish(f->s, "r", 2, STORE_CALL_OK, res, 5), -ENOENT);
	assert_int_equal(store_journal_finish(f->s, "r", 1, STORE_CALL_INTENT, res, 5), -EINVAL);
	assert_int_equal(store_journal_finish(f->s, "r", 1, STORE_CALL_OK, res, 5), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 1, STORE_CALL_ERROR, res2, 6), -EALREADY);
	/* A record row is finished from birth. */
	c2.seq = 2;
	assert_int_equal(store_journal_record(f->s, "r", &c2), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 2, STORE_CALL_OK, res, 7), -EALREADY);
	/* Wrong caller-supplied hash, bad seq, missing args. */
	struct store_call bad = mkcall(3, "fs.read", a1);
	memset(bad.args_hash, 'a', AGD_SHA256_HEX - 1);
	assert_int_equal(store_journal_intent(f->s, "r", &bad), -EINVAL);
	bad = mkcall(0, "fs.read", a1);
	assert_int_equal(store_journal_intent(f->s, "r", &bad), -EINVAL);
	bad = mkcall(3, "fs.read", NULL);
	assert_int_equal(store_journal_intent(f->s, "r", &bad), -EINVAL);

	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(calls[0].tool, "http.request");
	assert_true(json_equal(calls[0].result, res));
	assert_int_equal(calls[0].finished_ms, 5);
	assert_string_equal(calls[1].tool, "fs.write");
	assert_true(json_equal(calls[1].result, res2));
	store_calls_free(calls, n);
}

/* A pure call's single row can land after a later call's intent. */
static void
test_out_of_order_commit(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("[i,s,n,b]", 1, "two", 1);
	cleanup_json json_t *scalar = json_string("plain string result");
	struct store_call *calls = NULL;
	size_t n = 0;

	struct store_call c = mkcall(1, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	c = mkcall(3, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(load_rc(f->s, "r"), -EBADMSG); /* seq 2 missing: a gap */
	c = mkcall(2, "t", args);
	c.status = STORE_CALL_OK;
	c.result = scalar;
	assert_int_equal(store_journal_record(f->s, "r", &c), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 3, STORE_CALL_OK, NULL, 9), 0);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(calls[0].status, STORE_CALL_INTENT);
	assert_null(calls[0].result);
	assert_true(json_equal(calls[1].result, scalar));
	assert_true(json_is_null(calls[2].result));
	store_calls_free(calls, n);
}

/* Each run's journal tail is cached per connection: it follows another
 * connection's writes, a rolled back batch, and, read back from the file, a
 * tail whose ordinal is not its seq (for retention too). */
static void
test_tail_cache(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{s:i}", "a", 1);
	cleanup_json json_t *st = json_object();
	struct store *other = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t done = 0;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &other), 0);
	struct store_call c = mkcall(1, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	c = mkcall(2, "t", args);
	assert_int_equal(store_journal_intent(other, "r", &c), 0);
	c = mkcall(3, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(load_rc(f->s, "r"), 0);
	assert_int_equal(load_rc(other, "r"), 0);
	other = store_close(other);

	/* A row of an aborted batch leaves no trace in the next one. */
	assert_int_equal(store_batch_begin(f->s), 0);
	c = mkcall(4, "aborted", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	store_batch_abort(f->s);
	c = mkcall(4, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);

	/* Ordinals 5, 6, 7 on seqs 5, 7, 6: the tail (ord 7) is at seq 6. */
	c = mkcall(5, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	c = mkcall(7, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	c = mkcall(6, "pure", args);
	c.status = STORE_CALL_OK;
	c.result = args;
	assert_int_equal(store_journal_record(f->s, "r", &c), 0);
	reopen(f);
	assert_int_equal(store_journal_finish(f->s, "r", 7, STORE_CALL_OK, args, 9), 0);
	c = mkcall(8, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 8);
	assert_string_equal(calls[3].tool, "t");
	store_calls_free(calls, n);
	/* Compacting seq 6 and 7 checks each one's link from its insertion
	 * predecessor (ordinals 6 and 5). */
	for (int64_t seq = 1; seq <= 5; seq++)
		assert_int_equal(store_journal_finish(f->s, "r", seq, STORE_CALL_OK, args, 9), 0);
	assert_int_equal(store_state_save(f->s, "r", 7, st), 0);
	reopen(f);
	assert_int_equal(store_retain(f->s, "r", 1, &done), 0);
	assert_int_equal(done, 7);
	assert_int_equal(load_rc(f->s, "r"), 0);
}

/* Schema version 4 to 5: the journal's ordinal and (run, started_ms) indexes
 * give way to one on (owner_uid, started_ms), owners copied from the runs. */
static void
test_upgrade_v4(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *spec =
	    json_pack("{s:{s:i,s:i,s:s}}", "owner", "uid", 1000, "gid", 1000, "user", "u");
	cleanup_json json_t *args = json_pack("{}");
	struct store_call *calls = NULL;
	size_t n = 0;
	uint64_t used = 0;
	sqlite3 *db;
	sqlite3_stmt *q;

	reopen_sha256(f);
	assert_int_equal(store_run_create(f->s, "u", spec), 0);
	fill_journal(f->s, "u");
	fill_journal(f->s, "nobody"); /* rows of a run that has no runs row */
	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      STORE_V8_TO_V7 STORE_V7_TO_V6 STORE_V6_TO_V5
				      "DROP INDEX journal_by_owner;"
				      "ALTER TABLE journal DROP COLUMN owner_uid;"
				      "CREATE UNIQUE INDEX journal_by_ord ON journal(run, ord);"
				      "CREATE INDEX journal_by_started ON journal(run, started_ms);"
				      "PRAGMA user_version = 4;",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(user_version(f->path), 4);

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(user_version(f->path), 8);
	assert_int_equal(store_user_calls_since(f->s, 1000, 0, &used), 0);
	assert_int_equal(used, 3);
	assert_int_equal(store_user_calls_since(f->s, 1000, 1003, &used), 0);
	assert_int_equal(used, 1);
	/* The chains go on from the upgraded rows. */
	struct store_call c = mkcall(4, "t", args);
	assert_int_equal(store_journal_intent(f->s, "u", &c), 0);
	assert_int_equal(store_journal_intent(f->s, "nobody", &c), 0);
	assert_int_equal(store_user_calls_since(f->s, 1000, 0, &used), 0);
	assert_int_equal(used, 4);
	assert_int_equal(store_journal_load(f->s, "u", &calls, &n), 0);
	assert_int_equal(n, 4);
	store_calls_free(calls, n);
	assert_int_equal(load_rc(f->s, "nobody"), 0);

	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT group_concat(name, ' ') FROM (SELECT name FROM "
					    "sqlite_master WHERE tbl_name = 'journal' AND type = "
					    "'index' ORDER BY name)",
					    -1, &q, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0),
			    "journal_by_owner sqlite_autoindex_journal_1");
	sqlite3_finalize(q);
	sqlite3_close(db);
}

static void
test_tamper_result(void **state)
{
	struct fixture *f = *state;

	fill_journal(f->s, "run1");
	assert_int_equal(load_rc(f->s, "run1"), 0);
	tamper(f, "UPDATE outcomes SET result = '{\"bytes\":999}' WHERE" OUTCOME_OF("seq = 2"));
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

/* A compacted row's tombstone and seal are checked like any row's. */
static void
test_tamper_compacted(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *st = json_object();
	int64_t done = 0;

	fill_journal(f->s, "run1");
	assert_int_equal(store_state_save(f->s, "run1", 2, st), 0);
	assert_int_equal(store_retain(f->s, "run1", 1, &done), 0);
	assert_true(done >= 1);
	assert_int_equal(load_rc(f->s, "run1"), 0);
	tamper(f, "UPDATE outcomes SET result = replace(result, '\"cost\":0', '\"cost\":1') "
		  "WHERE" OUTCOME_OF("seq = 1"));
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

/* Retention verifies every row it compacts: an edited one stops it before
 * anything is dropped; an edit it does not touch is left for the load. */
static void
test_retain_verifies(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *st = json_object();
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t done = -1;

	fill_journal(f->s, "run1");
	fill_journal(f->s, "run2");
	assert_int_equal(store_state_save(f->s, "run1", 2, st), 0);
	assert_int_equal(store_state_save(f->s, "run2", 2, st), 0);
	/* run1: row 2 (to be compacted) edited: refused, nothing compacted. */
	tamper(f, "UPDATE outcomes SET result = '{\"bytes\":999}' WHERE" OUTCOME_OF(
		      "run = 'run1' AND seq = 2"));
	assert_int_equal(store_retain(f->s, "run1", 1, &done), -EBADMSG);
	tamper(f, "UPDATE outcomes SET result = '{\"bytes\":20}' WHERE" OUTCOME_OF(
		      "run = 'run1' AND seq = 2"));
	assert_int_equal(store_journal_load(f->s, "run1", &calls, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_false(calls[i].compacted);
	store_calls_free(calls, n);
	/* run2: row 3 (after the cut) edited: compaction goes on without
	 * touching it, and the load still refuses the journal. */
	tamper(f,
	       "UPDATE outcomes SET finished_ms = 1 WHERE" OUTCOME_OF("run = 'run2' AND seq = 3"));
	assert_int_equal(store_retain(f->s, "run2", 1, &done), 0);
	assert_int_equal(done, 2);
	assert_int_equal(load_rc(f->s, "run2"), -EBADMSG);
}

/* The seal as docs/store.md defines it, computed independently of the store. */
static void
seal_put(struct agd_sha256 *h, const void *p, size_t len)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	agd_sha256_update(h, b, 8);
	agd_sha256_update(h, p, len);
}

static void
seal_int(struct agd_sha256 *h, int64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	seal_put(h, b, 8);
}

/* Replace row seq's result by text and recompute its seal, as someone who
 * knows the format would: the chain verifies, only validation is left. A
 * new store's seal (v3) takes the result's BLAKE3 digest. */
static void
reseal_result(struct fixture *f, const char *run, int64_t seq, const char *text)
{
	static const char tag[] = "agentd.journal.chain.v3";
	sqlite3 *db;
	sqlite3_stmt *st;
	struct agd_sha256 h;
	uint8_t d[AGD_SHA256_LEN], td[AGD_BLAKE3_LEN];
	char hex[AGD_SHA256_HEX];

	assert_int_equal(store_digest(f->s), AGD_DIGEST_BLAKE3);
	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db,
			       "SELECT link, status, finished_ms, fin FROM journal j "
			       "JOIN outcomes o ON o.id = j.id WHERE run = ?1 AND seq = ?2",
			       -1, &st, NULL),
	    SQLITE_OK);
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	const char *link = (const char *)sqlite3_column_text(st, 0);
	agd_blake3(text, strlen(text), td);
	agd_sha256_init(&h);
	seal_put(&h, tag, strlen(tag));
	seal_put(&h, link, strlen(link));
	seal_int(&h, sqlite3_column_int64(st, 3));
	seal_int(&h, sqlite3_column_int64(st, 1));
	seal_int(&h, 1);
	seal_put(&h, td, sizeof(td));
	seal_int(&h, sqlite3_column_int64(st, 2));
	agd_sha256_final(&h, d);
	for (int i = 0; i < AGD_SHA256_LEN; i++)
		snprintf(hex + 2 * i, 3, "%02x", d[i]);
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "UPDATE outcomes SET result = ?3, chain = ?4 "
					    "WHERE" OUTCOME_OF("run = ?1 AND seq = ?2"),
					    -1, &st, NULL),
			 SQLITE_OK);
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, text, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 4, hex, -1, SQLITE_STATIC);
	assert_int_equal(sqlite3_step(st), SQLITE_DONE);
	sqlite3_finalize(st);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
}

/* A row that the lazy load does not parse is still validated: a result that
 * the chain vouches for but that is not one valid JSON value is refused by
 * both loads; a valid one in another form loads, parsed. */
static void
test_lazy_validates_unparsed_rows(void **state)
{
	static const char *const bad[] = {
	    "{\"bytes\":1,\"bytes\":2}", "{\"bytes\":", "\"a\\u0000\"", "\"\xff\"", "[1] [2]", "01",
	};
	struct fixture *f = *state;
	struct store_call *calls = NULL;
	size_t n = 0;
	char run[16];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(run, sizeof(run), "bad%zu", i);
		fill_journal(f->s, run);
		reseal_result(f, run, 1, bad[i]);
		assert_int_equal(load_rc(f->s, run), -EBADMSG);
	}

	/* The resealing is right: a canonical text loads, unparsed and lazily
	 * parsed on demand; the cost is found without parsing the rest. */
	fill_journal(f->s, "good");
	reseal_result(f, "good", 1, "{\"bytes\":7,\"cost\":3}");
	reseal_result(f, "good", 2, "{\"b\":1,\"a\":{\"x\":1.5}}");
	assert_int_equal(store_journal_load_lazy(f->s, "good", &calls, &n), 0);
	assert_int_equal(n, 3);
	assert_null(calls[0].args);
	assert_non_null(calls[0].args_text);
	assert_int_equal(calls[0].result_cost, 3);
	assert_string_equal(calls[0].result_text, "{\"bytes\":7,\"cost\":3}");
	/* Not canonical (unsorted keys, a real): parsed to be validated, kept. */
	assert_non_null(calls[1].result);
	assert_int_equal(json_object_size(calls[1].result), 2);
	assert_null(calls[2].result);
	assert_int_equal(calls[2].result_cost, 0);
	assert_int_equal(store_call_json(&calls[2]), 0);
	assert_int_equal(json_integer_value(json_object_get(calls[2].result, "bytes")), 30);
	assert_int_equal(json_integer_value(json_object_get(calls[2].args, "n")), 3);
	store_calls_free(calls, n);
	assert_int_equal(load_rc(f->s, "good"), 0);
}

static void
test_tamper_args(void **state)
{
	struct fixture *f = *state;

	fill_journal(f->s, "run1");
	tamper(f, "UPDATE journal SET args = '{\"n\":2,\"path\":\"/etc/shadow\"}' WHERE seq = 2");
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

static void
test_tamper_args_and_hash(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *evil = json_pack("{s:s}", "path", "/etc/shadow");
	char hash[AGD_SHA256_HEX], sql[256];

	/* Consistent args + args_hash still break the chain's link. */
	fill_journal(f->s, "run1");
	assert_int_equal(agd_json_hash(store_digest(f->s), evil, hash), 0);
	snprintf(sql, sizeof(sql),
		 "UPDATE journal SET args = '{\"path\":\"/etc/shadow\"}', args_hash = '%s' "
		 "WHERE seq = 1",
		 hash);
	tamper(f, sql);
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

static void
test_tamper_status(void **state)
{
	struct fixture *f = *state;

	fill_journal(f->s, "run1");
	tamper(f, "UPDATE outcomes SET status = 99 WHERE" OUTCOME_OF("seq = 3"));
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
	/* A recorded outcome, damaged or not, is never overwritten. */
	assert_int_equal(store_journal_finish(f->s, "run1", 3, STORE_CALL_OK, NULL, 1), -EALREADY);
}

static void
test_tamper_status_valid(void **state)
{
	struct fixture *f = *state;

	/* A plausible edit (DENIED -> OK) is caught by the seal. */
	fill_journal(f->s, "run1");
	tamper(f, "UPDATE outcomes SET status = 1 WHERE" OUTCOME_OF("seq = 3"));
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

/* Outcomes live apart from their rows (schema 6): a deleted outcome before
 * the newest one leaves a gap in the finish ordinals; an outcome moved onto
 * another row, or two swapped, fail that row's seal; an outcome row that
 * says INTENT is malformed. None of them loads, so none is replayed. */
static void
test_tamper_outcomes(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{}");
	struct store_call c = mkcall(4, "t", args);

	fill_journal(f->s, "del");
	tamper(f, "DELETE FROM outcomes WHERE" OUTCOME_OF("run = 'del' AND seq = 2"));
	assert_int_equal(load_rc(f->s, "del"), -EBADMSG);

	fill_journal(f->s, "moved");
	assert_int_equal(store_journal_intent(f->s, "moved", &c), 0);
	assert_int_equal(load_rc(f->s, "moved"), 0);
	tamper(f,
	       "UPDATE outcomes SET id = (SELECT id FROM journal WHERE run = 'moved' AND seq = 4)"
	       " WHERE" OUTCOME_OF("run = 'moved' AND seq = 3"));
	assert_int_equal(load_rc(f->s, "moved"), -EBADMSG);

	fill_journal(f->s, "swap");
	tamper(f, "UPDATE outcomes SET id = -id WHERE" OUTCOME_OF(
		      "run = 'swap' AND seq IN (1, 3)") "; UPDATE outcomes SET id = (SELECT "
							"max(id) FROM journal WHERE run = 'swap')"
							" WHERE id = -(SELECT min(id) FROM journal "
							"WHERE run = 'swap');"
							"UPDATE outcomes SET id = (SELECT min(id) "
							"FROM journal WHERE run = 'swap')"
							" WHERE id = -(SELECT max(id) FROM journal "
							"WHERE run = 'swap')");
	assert_int_equal(load_rc(f->s, "swap"), -EBADMSG);

	fill_journal(f->s, "intent");
	tamper(f, "UPDATE outcomes SET status = 0 WHERE" OUTCOME_OF("run = 'intent' AND seq = 3"));
	assert_int_equal(load_rc(f->s, "intent"), -EBADMSG);

	/* A finish ordinal repeated instead of missing. */
	fill_journal(f->s, "fin");
	tamper(f, "UPDATE outcomes SET fin = 1 WHERE" OUTCOME_OF("run = 'fin' AND seq = 2"));
	assert_int_equal(load_rc(f->s, "fin"), -EBADMSG);

	/* An outcome deleted before the newest and the later ones renumbered
	 * to close the gap: plain edits, no hash recomputed. */
	fill_journal(f->s, "renum");
	tamper(f, "DELETE FROM outcomes WHERE" OUTCOME_OF("run = 'renum' AND seq = 2"));
	tamper(f, "UPDATE outcomes SET fin = fin - 1 WHERE"
		  " fin > 1 AND" OUTCOME_OF("run = 'renum'"));
	assert_int_equal(load_rc(f->s, "renum"), -EBADMSG);
}

/* Outcomes are numbered in the order they are written, whatever the seq
 * order; a truncation renumbers the kept ones and the journal goes on. */
static void
test_outcome_order(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{}");
	struct store_call *calls = NULL;
	size_t n = 0;

	for (int64_t seq = 1; seq <= 4; seq++) {
		struct store_call c = mkcall(seq, "t", args);
		assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	}
	int64_t order[] = {3, 1, 4, 2};
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		assert_int_equal(store_journal_finish(f->s, "r", order[i], STORE_CALL_OK, args, 9),
				 0);
		/* Another connection's finish reads the count from the file. */
		if (i == 1)
			reopen(f);
	}
	assert_int_equal(store_journal_finish(f->s, "r", 2, STORE_CALL_OK, args, 9), -EALREADY);
	assert_int_equal(load_rc(f->s, "r"), 0);
	/* Kept: seq 1 (outcome 2) and seq 2 (outcome 4), renumbered 1 and 2. */
	assert_int_equal(store_journal_truncate(f->s, "r", 2), 0);
	assert_int_equal(load_rc(f->s, "r"), 0);
	struct store_call c = mkcall(3, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 3, STORE_CALL_ERROR, args, 9), 0);
	reopen(f);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(calls[2].status, STORE_CALL_ERROR);
	store_calls_free(calls, n);
}

/* Schema version 5 to 6: outcomes move off the journal rows into their own
 * table, keyed by the row's id, and every journal still verifies; an edit
 * made before the upgrade is still caught after it. */
static void
test_upgrade_v5(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{}");
	cleanup_json json_t *st = json_object();
	struct store_call *before = NULL, *after = NULL;
	size_t nb = 0, na = 0;
	int64_t done = 0;
	sqlite3 *db;

	reopen_sha256(f);
	fill_journal(f->s, "a");
	fill_journal(f->s, "b");
	struct store_call c = mkcall(4, "t", args);
	assert_int_equal(store_journal_intent(f->s, "a", &c), 0);
	fill_journal(f->s, "edited");
	fill_journal(f->s, "compact");
	assert_int_equal(store_state_save(f->s, "compact", 2, st), 0);
	assert_int_equal(store_retain(f->s, "compact", 1, &done), 0);
	assert_int_equal(done, 2);
	assert_int_equal(store_journal_load(f->s, "a", &before, &nb), 0);
	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      STORE_V8_TO_V7 STORE_V7_TO_V6 STORE_V6_TO_V5
				      "UPDATE journal SET result = '{\"bytes\":5}'"
				      " WHERE run = 'edited' AND seq = 1",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(user_version(f->path), 5);

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(user_version(f->path), 8);
	assert_int_equal(store_journal_load(f->s, "a", &after, &na), 0);
	assert_int_equal(na, nb);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(after[i].status, before[i].status);
		assert_int_equal(after[i].finished_ms, before[i].finished_ms);
		if (before[i].result_text)
			assert_string_equal(after[i].result_text, before[i].result_text);
		else
			assert_null(after[i].result_text);
	}
	store_calls_free(before, nb);
	store_calls_free(after, na);
	assert_int_equal(load_rc(f->s, "b"), 0);
	assert_int_equal(load_rc(f->s, "compact"), 0);
	assert_int_equal(load_rc(f->s, "edited"), -EBADMSG);
	/* The upgraded intent is finished once, as its 4th outcome. */
	assert_int_equal(store_journal_finish(f->s, "a", 4, STORE_CALL_OK, args, 9), 0);
	assert_int_equal(store_journal_finish(f->s, "a", 4, STORE_CALL_OK, args, 9), -EALREADY);
	/* The rows' ids survive a VACUUM (an implicit rowid need not). */
	assert_int_equal(store_journal_truncate(f->s, "b", 1), 0);
	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, "VACUUM", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(load_rc(f->s, "a"), 0);
	assert_int_equal(load_rc(f->s, "b"), 0);
	assert_int_equal(load_rc(f->s, "compact"), 0);
}

/* The args text of fill_journal's call seq, as the store encodes it. */
static char *
fill_args_text(int64_t seq)
{
	cleanup_json json_t *args = json_pack("{s:s,s:I}", "path", "/a/b", "n", seq);
	char *txt = NULL;
	size_t len = 0;

	assert_int_equal(store_json_text(args, &txt, &len), 0);
	return txt;
}

/* Schema version 8: a new store digests its texts with BLAKE3; the file
 * records it, and a record that is not one known digest is refused. */
static void
test_digest_new_store(void **state)
{
	struct fixture *f = *state;
	struct store_call *calls = NULL;
	struct store *other = NULL;
	char want[AGD_DIGEST_HEX];
	size_t n = 0;
	sqlite3 *db;

	assert_int_equal(store_digest(f->s), AGD_DIGEST_BLAKE3);
	fill_journal(f->s, "r");
	reopen(f);
	assert_int_equal(store_digest(f->s), AGD_DIGEST_BLAKE3);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++) {
		cleanup_free char *txt = fill_args_text(calls[i].seq);
		agd_blake3_hex(txt, strlen(txt), want);
		assert_string_equal(calls[i].args_hash, want);
	}
	store_calls_free(calls, n);
	/* The rows were sealed under BLAKE3: read as SHA-256 ones, they are
	 * corrupt, never accepted. */
	tamper(f, "UPDATE text_digest SET alg = 'sha256'");
	assert_int_equal(store_digest(f->s), AGD_DIGEST_SHA256);
	assert_int_equal(load_rc(f->s, "r"), -EBADMSG);
	/* Not a digest agentd knows, or not one record: not opened. */
	f->s = store_close(f->s);
	static const char *const bad[] = {
	    "UPDATE text_digest SET alg = 'md5'",
	    "UPDATE text_digest SET alg = 'blake3'; INSERT INTO text_digest VALUES ('blake3')",
	    "DELETE FROM text_digest",
	    "DROP TABLE text_digest",
	};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(sqlite3_exec(db, bad[i], NULL, NULL, NULL), SQLITE_OK);
		sqlite3_close(db);
		assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &other), -EBADMSG);
		assert_null(other);
	}
	/* Recorded as it was: the rows load again. */
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db,
				      "CREATE TABLE text_digest (alg TEXT NOT NULL);"
				      "INSERT INTO text_digest VALUES ('blake3')",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(load_rc(f->s, "r"), 0);
}

/* Schema version 7 to 8: a file with rows keeps SHA-256, which they were
 * sealed with; they load, and the chains go on under it. */
static void
test_upgrade_v7(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{s:s}", "long", "");
	struct store_call *calls = NULL;
	char want[AGD_DIGEST_HEX];
	size_t n = 0;
	sqlite3 *db;

	reopen_sha256(f);
	fill_journal(f->s, "r");
	f->s = store_close(f->s);
	assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, STORE_V8_TO_V7, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
	assert_int_equal(user_version(f->path), 7);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	assert_int_equal(user_version(f->path), 8);
	assert_int_equal(store_digest(f->s), AGD_DIGEST_SHA256);
	assert_int_equal(load_rc(f->s, "r"), 0);
	/* A new row, with a text long enough for the payload file. */
	cleanup_free char *pad = malloc(4000);
	memset(pad, 'p', 3999);
	pad[3999] = '\0';
	json_object_set_new(args, "long", json_string(pad));
	struct store_call c = mkcall(4, "t", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 4, STORE_CALL_OK, args, 3000), 0);
	reopen(f);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 4);
	for (size_t i = 0; i < n; i++) {
		agd_sha256_hex(calls[i].args_text, calls[i].args_len, want);
		assert_string_equal(calls[i].args_hash, want);
	}
	store_calls_free(calls, n);
}

static void
test_tamper_delete_middle(void **state)
{
	struct fixture *f = *state;

	fill_journal(f->s, "run1");
	tamper(f, "DELETE FROM journal WHERE seq = 2");
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

static void
test_tamper_renumber(void **state)
{
	struct fixture *f = *state;

	/* Deleting a row and renumbering the rest closes the gap, not the chain. */
	fill_journal(f->s, "run1");
	tamper(f, "DELETE FROM journal WHERE seq = 2; UPDATE journal SET seq = 2 WHERE seq = 3");
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
}

static void
test_tamper_types(void **state)
{
	struct fixture *f = *state;

	fill_journal(f->s, "run1");
	tamper(f, "UPDATE journal SET seq = 1.5 WHERE seq = 1");
	assert_int_equal(load_rc(f->s, "run1"), -EBADMSG);
	fill_journal(f->s, "run2");
	tamper(f, "UPDATE journal SET args_hash = upper(args_hash) WHERE run = 'run2' AND seq = 1");
	assert_int_equal(load_rc(f->s, "run2"), -EBADMSG);
	fill_journal(f->s, "run3");
	tamper(f,
	       "UPDATE outcomes SET result = '[1] x' WHERE" OUTCOME_OF("run = 'run3' AND seq = 1"));
	assert_int_equal(load_rc(f->s, "run3"), -EBADMSG);
	fill_journal(f->s, "run4");
	tamper(f, "UPDATE outcomes SET result = NULL WHERE" OUTCOME_OF("run = 'run4' AND seq = 1"));
	assert_int_equal(load_rc(f->s, "run4"), -EBADMSG);
	fill_journal(f->s, "run5");
	tamper(f, "UPDATE journal SET tool = 'fs.read' || char(10) WHERE run = 'run5'");
	assert_int_equal(load_rc(f->s, "run5"), -EBADMSG);
}

static void
test_truncate(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *args = json_pack("{}");
	cleanup_json json_t *st = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t seq = 0;

	/* Insertion order 1, 2, 4, 3, 5 so truncation removes a kept row's
	 * insertion predecessor and the chain must be re-sealed. */
	int64_t order[] = {1, 2, 4, 3, 5};
	for (size_t i = 0; i < ARRAY_SIZE(order); i++) {
		struct store_call c = mkcall(order[i], "t", args);
		assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
		cleanup_json json_t *st_i = json_pack("{s:I}", "at", order[i]);
		assert_int_equal(store_state_save(f->s, "r", order[i], st_i), 0);
	}
	assert_int_equal(store_journal_truncate(f->s, "r", 3), 0);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 3);
	assert_int_equal(calls[2].seq, 3);
	store_calls_free(calls, n);
	/* States saved after the cut are gone; the newest kept one wins. */
	assert_int_equal(store_state_load(f->s, "r", &st, &seq), 0);
	assert_int_equal(seq, 3);
	/* Going live again after the cut. */
	struct store_call c = mkcall(4, "t2", args);
	assert_int_equal(store_journal_intent(f->s, "r", &c), 0);
	assert_int_equal(store_journal_finish(f->s, "r", 2, STORE_CALL_OK, args, 1), 0);
	reopen(f);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 4);
	assert_string_equal(calls[3].tool, "t2");
	store_calls_free(calls, n);
	assert_int_equal(store_journal_truncate(f->s, "r", 0), 0);
	assert_int_equal(store_journal_load(f->s, "r", &calls, &n), 0);
	assert_int_equal(n, 0);
	store_calls_free(calls, n);

	/* A tampered journal is not laundered by a truncation. */
	fill_journal(f->s, "q");
	tamper(f, "UPDATE outcomes SET result = '{\"bytes\":1}' WHERE" OUTCOME_OF(
		      "run = 'q' AND seq = 1"));
	assert_int_equal(store_journal_truncate(f->s, "q", 2), -EBADMSG);
	assert_int_equal(load_rc(f->s, "q"), -EBADMSG);
}

static void
test_states(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *a = json_pack("{s:i}", "step", 1);
	cleanup_json json_t *b = json_integer(7);
	json_t *got = NULL;
	int64_t seq = -1;

	assert_int_equal(store_state_load(f->s, "r", &got, &seq), -ENOENT);
	assert_int_equal(store_state_save(f->s, "r", 5, a), 0);
	assert_int_equal(store_state_save(f->s, "r", 2, b), 0);
	assert_int_equal(store_state_load(f->s, "r", &got, &seq), 0);
	/* Newest saved wins, even with a lower seq. */
	assert_true(json_equal(got, b));
	assert_int_equal(seq, 2);
	json_decref(got);
	assert_int_equal(store_state_save(f->s, "r", 1, NULL), -EINVAL);
	tamper(f, "UPDATE states SET state = '7 8' WHERE seq = 2");
	assert_int_equal(store_state_load(f->s, "r", &got, &seq), -EBADMSG);
}

struct ev_collect {
	int count;
	int64_t last_id;
	char types[128];
};

static int
collect_events(const struct store_event *e, void *ud)
{
	struct ev_collect *c = ud;

	assert_true(e->id > c->last_id);
	c->last_id = e->id;
	strcat(c->types, e->type);
	strcat(c->types, e->data ? "+" : "-");
	strcat(c->types, ",");
	c->count++;
	return 0;
}

static void
test_events(void **state)
{
	struct fixture *f = *state;
	cleanup_json json_t *d = json_pack("{s:i}", "pid", 42);
	struct ev_collect c = {0};

	assert_int_equal(store_event_append(f->s, "r", 1, 0, "run.started", d), 0);
	assert_int_equal(store_event_append(f->s, "x", 1, 0, "other.run", d), 0);
	assert_int_equal(store_event_append(f->s, "r", 1, 1, "call.finished", NULL), 0);
	assert_int_equal(store_event_append(f->s, "r", 2, 0, "child.exited", d), 0);
	assert_int_equal(store_event_append(f->s, "r", 2, 0, "", d), -EINVAL);
	assert_int_equal(store_event_foreach(f->s, "r", collect_events, &c), 0);
	assert_int_equal(c.count, 3);
	assert_string_equal(c.types, "run.started+,call.finished-,child.exited+,");
	tamper(f, "UPDATE events SET attempt = -1 WHERE type = 'child.exited'");
	memset(&c, 0, sizeof(c));
	assert_int_equal(store_event_foreach(f->s, "r", collect_events, &c), -EBADMSG);
	assert_int_equal(c.count, 2);
}

static void
test_persist_and_backup(void **state)
{
	struct fixture *f = *state;
	struct store *b = NULL;
	struct store_run r = {0};
	char bpath[160];
	struct stat st;

	assert_int_equal(store_run_create(f->s, "keep", NULL), 0);
	fill_journal(f->s, "keep");
	reopen(f);
	assert_int_equal(store_run_get(f->s, "keep", &r), 0);
	store_run_clear(&r);
	assert_int_equal(load_rc(f->s, "keep"), 0);

	snprintf(bpath, sizeof(bpath), "%s/backup.db", f->dir);
	assert_int_equal(store_backup(f->s, bpath), 0);
	assert_int_equal(stat(bpath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	/* Later writes do not reach the copy. */
	assert_int_equal(store_run_create(f->s, "later", NULL), 0);
	assert_int_equal(store_open(bpath, STORE_DURABILITY_PROCESS, &b), 0);
	assert_int_equal(store_run_get(b, "keep", &r), 0);
	store_run_clear(&r);
	assert_int_equal(store_run_get(b, "later", &r), -ENOENT);
	assert_int_equal(load_rc(b, "keep"), 0);
	b = store_close(b);
	/* Backing up again over an existing copy replaces it. */
	assert_int_equal(store_backup(f->s, bpath), 0);
	assert_int_equal(store_open(bpath, STORE_DURABILITY_PROCESS, &b), 0);
	assert_int_equal(store_run_get(b, "later", &r), 0);
	store_run_clear(&r);
	b = store_close(b);
}

/* Two processes write the same file, including the same run: every call
 * returns 0 or -EEXIST, never a surfaced SQLITE_BUSY. */
static void
test_concurrent_processes(void **state)
{
	struct fixture *f = *state;
	pid_t pids[2];
	struct store_call *calls = NULL;
	size_t n = 0;

	f->s = store_close(f->s);
	for (int p = 0; p < 2; p++) {
		pids[p] = fork();
		assert_true(pids[p] >= 0);
		if (pids[p] == 0) {
			struct store *s = NULL;
			char run[16];
			int bad = 0;
			if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0)
				_exit(2);
			snprintf(run, sizeof(run), "own%d", p);
			for (int64_t seq = 1; seq <= 150; seq++) {
				json_t *args = json_pack("{s:I,s:i}", "seq", seq, "p", p);
				struct store_call c = mkcall(seq, "t", args);
				if (store_journal_intent(s, run, &c) != 0 ||
				    store_journal_finish(s, run, seq, STORE_CALL_OK, args, 1) != 0)
					bad++;
				c.status = STORE_CALL_OK;
				c.result = args;
				int r = store_journal_record(s, "shared", &c);
				if (r != 0 && r != -EEXIST)
					bad++;
				json_decref(args);
			}
			store_close(s);
			_exit(bad ? 1 : 0);
		}
	}
	for (int p = 0; p < 2; p++) {
		int status;
		assert_int_equal(waitpid(pids[p], &status, 0), pids[p]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
	for (int p = 0; p < 2; p++) {
		char run[16];
		snprintf(run, sizeof(run), "own%d", p);
		assert_int_equal(store_journal_load(f->s, run, &calls, &n), 0);
		assert_int_equal(n, 150);
		assert_int_equal(calls[149].status, STORE_CALL_OK);
		store_calls_free(calls, n);
	}
	assert_int_equal(store_journal_load(f->s, "shared", &calls, &n), 0);
	assert_int_equal(n, 150);
	store_calls_free(calls, n);
}

/* Checkpoints run beside the writer (store/sqlite_ckpt.c). A call whose args
 * and result carry 8 KB each: a pair of commits writes about 25 WAL frames,
 * so 600 of them pass every threshold many times over. */
#define BIG_CALLS 600

static int
big_pair(struct store *s, const char *run, int64_t seq)
{
	char pad[8192];

	memset(pad, 'a' + (int)(seq % 26), sizeof(pad) - 1);
	pad[sizeof(pad) - 1] = '\0';
	cleanup_json json_t *args = json_pack("{s:I,s:s}", "seq", seq, "pad", pad);
	cleanup_json json_t *res = json_pack("{s:s,s:I}", "pad", pad, "r", seq);
	struct store_call c = mkcall(seq, "t", args);
	int r = store_journal_intent(s, run, &c);

	if (r == 0)
		r = store_journal_finish(s, run, seq, STORE_CALL_OK, res, 2000 + seq);
	/* The call's texts go to the payload file; a state holding both
	 * keeps the WAL as busy as the texts in the rows did. */
	cleanup_json json_t *st = json_pack("{s:O,s:O}", "args", args, "res", res);
	return r < 0 ? r : st ? store_state_save(s, run, seq, st) : -ENOMEM;
}

static off_t
wal_size(const struct fixture *f)
{
	char wal[160];
	struct stat st;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	return stat(wal, &st) == 0 ? st.st_size : 0;
}

/* The WAL stays bounded while the writer keeps writing (without any
 * checkpoint it would hold all ~30 MB written), every row is there after a
 * reopen, and a child forked by glibc while the checkpointer may be in a
 * pass can open and write the store (a child inheriting one of SQLite's
 * mutexes held by that thread would hang here until the test's timeout). */
static void
test_checkpoints(void **state)
{
	struct fixture *f = *state;
	off_t max = 0;

	/* Reopened onto no WAL (the clean close removed it): checkpoints
	 * start at once, with no grace period. */
	reopen(f);
	for (int64_t seq = 1; seq <= BIG_CALLS; seq++) {
		assert_int_equal(big_pair(f->s, "big", seq), 0);
		if (wal_size(f) > max)
			max = wal_size(f);
		if (seq % 100 != 0)
			continue;
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *s = NULL;
			char run[16];
			snprintf(run, sizeof(run), "child%d", (int)(seq / 100));
			_exit(store_open(f->path, STORE_DURABILITY_PROCESS, &s) == 0 &&
				      big_pair(s, run, 1) == 0 && !store_close(s)
				  ? 0
				  : 1);
		}
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	/* The writer's own checkpoint is due at 4 MiB (forced at 16): the WAL
	 * passes it only by what is committed while the last pass runs (and
	 * stays under it when the passes keep up with a slow writer). */
	assert_true(max > 0);
	assert_true(max < (10 << 20));
	reopen(f);
	assert_int_equal(load_rc(f->s, "big"), 0);
	struct store_call *calls = NULL;
	size_t n = 0;
	assert_int_equal(store_journal_load(f->s, "big", &calls, &n), 0);
	assert_int_equal(n, BIG_CALLS);
	assert_int_equal(json_integer_value(json_object_get(calls[n - 1].result, "r")), BIG_CALLS);
	store_calls_free(calls, n);
	assert_int_equal(load_rc(f->s, "child6"), 0);
}

/* A writer SIGKILLed while checkpoints are under way (the thread's passes,
 * the writer's own): every commit it reported is there and verifies. */
static void
test_checkpoints_crash(void **state)
{
	struct fixture *f = *state;
	const int kill_at[] = {90, 250, 420};
	int64_t next = 1;

	f->s = store_close(f->s);
	for (size_t round = 0; round < sizeof(kill_at) / sizeof(kill_at[0]); round++) {
		int pfd[2];
		int64_t v, reported = 0;

		assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
		pid_t pid = fork();
		assert_true(pid >= 0);
		if (pid == 0) {
			struct store *s = NULL;
			close(pfd[0]);
			if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0)
				_exit(2);
			for (int64_t seq = next;; seq++) {
				if (big_pair(s, "crash", seq) < 0)
					_exit(3);
				if (write(pfd[1], &seq, sizeof(seq)) != sizeof(seq))
					_exit(4);
			}
		}
		close(pfd[1]);
		for (int i = 0; i < kill_at[round]; i++) {
			assert_int_equal(read(pfd[0], &v, sizeof(v)), sizeof(v));
			reported = v;
		}
		assert_int_equal(kill(pid, SIGKILL), 0);
		int status;
		assert_int_equal(waitpid(pid, &status, 0), pid);
		assert_true(WIFSIGNALED(status));
		while (read(pfd[0], &v, sizeof(v)) == sizeof(v))
			reported = v;
		close(pfd[0]);

		struct store_call *calls = NULL;
		size_t n = 0;
		assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
		assert_int_equal(load_rc(f->s, "crash"), 0);
		assert_int_equal(store_journal_load(f->s, "crash", &calls, &n), 0);
		/* Each reported pair is whole; the one in flight may be there,
		 * with its intent only or whole. */
		assert_true((int64_t)n >= reported && (int64_t)n <= reported + 1);
		for (size_t i = 0; i < (size_t)reported; i++)
			assert_int_equal(calls[i].status, STORE_CALL_OK);
		if ((int64_t)n > reported && calls[n - 1].status == STORE_CALL_INTENT)
			assert_int_equal(
			    store_journal_finish(f->s, "crash", (int64_t)n, STORE_CALL_OK, NULL, 1),
			    0);
		store_calls_free(calls, n);
		next = (int64_t)n + 1;
		f->s = store_close(f->s);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &f->s), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_open_migrate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_page_size, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_first_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_runs, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_journal, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_first_writer_wins, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_out_of_order_commit, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tail_cache, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_v4, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_result, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_args, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_args_and_hash, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_status, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_status_valid, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_outcomes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_outcome_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_v5, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_digest_new_store, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_upgrade_v7, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_delete_middle, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_renumber, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_types, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_lazy_validates_unparsed_rows, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_truncate, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_retain_verifies, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tamper_compacted, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_states, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_events, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_persist_and_backup, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_concurrent_processes, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoints_crash, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
