/* The store's VFS (store/sqlite_vfs.c) writes a commit's WAL frames in one
 * call: a reader on SQLite's own VFS sees every commit as soon as it
 * returns, and a WAL write that fails fails its commit (the process goes
 * on; nothing committed before is lost). */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <sqlite3.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "store_files.h"

/* A commit of about size bytes that stays in SQLite's pages: an agent state
 * (a call's long args and result go to the payload file). */
static int
big_state(struct store *s, const char *run, int64_t seq, size_t size)
{
	cleanup_free char *fill = store_fill(seq, size);
	if (!fill)
		return -ENOMEM;
	cleanup_json json_t *v = json_pack("{s:s}", "fill", fill);
	return v ? store_state_save(s, run, seq, v) : -ENOMEM;
}

static void
test_reader_sees_each_commit(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	/* SQLite's default VFS, as the sqlite3 shell or another program has. */
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db,
					    "SELECT count(*), coalesce(sum(length(state)), 0) "
					    "FROM states WHERE run = 'r'",
					    -1, &st, NULL),
			 SQLITE_OK);
	int64_t bytes = 0;
	for (int64_t seq = 1; seq <= 120; seq++) {
		/* Commits of one to a few frames, and some larger than the
		 * buffer and than the most the default VFS writes at once. */
		size_t size = seq % 40 == 0 ? (size_t)(300 << 10) : 500 + (size_t)(seq * 97 % 9000);
		assert_int_equal(big_state(s, "r", seq, size), 0);
		bytes += (int64_t)size + (int64_t)strlen("{\"fill\":\"\"}");
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_int64(st, 0), seq);
		assert_int_equal(sqlite3_column_int64(st, 1), bytes);
		sqlite3_reset(st);
	}
	sqlite3_finalize(st);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	store_close(s);
}

static off_t
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static void
test_failed_write_fails_commit(void **state)
{
	struct fx *f = *state;
	char wal[128];
	pid_t pid;
	int status;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		struct rlimit rl;
		if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0 ||
		    store_run_create(s, "r", NULL) < 0)
			_exit(10);
		for (int64_t seq = 1; seq <= 5; seq++)
			if (store_pair(s, "r", seq, 100) < 0)
				_exit(11);
		/* The WAL may grow by a few frames, not by the next commit. */
		off_t size = file_size(wal);
		if (size <= 0)
			_exit(12);
		signal(SIGXFSZ, SIG_IGN);
		rl.rlim_cur = rl.rlim_max = (rlim_t)size + 8192;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(13);
		if (big_state(s, "r", 6, 20 << 10) >= 0)
			_exit(14); /* written past the limit? */
		/* The store goes on: what was committed reads back. */
		struct store_call *calls = NULL;
		size_t n = 0;
		if (store_journal_load(s, "r", &calls, &n) < 0 || n != 5)
			_exit(15);
		store_calls_free(calls, n);
		store_close(s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	/* Not killed (an abort would be SIGABRT): it saw the error. */
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);

	struct store *s = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_journal_load(s, "r", &calls, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(calls[i].status, STORE_CALL_OK);
	store_calls_free(calls, n);
	/* And the next commit lands. */
	assert_int_equal(store_pair(s, "r", 6, 20 << 10), 0);
	store_close(s);
}

/* A transaction that spilled pages to the WAL rolls back while its last
 * frames, still buffered, cannot be written (the file size limit here, a
 * full disk in use): the call that writes them fails and drops them (no
 * reader can see them), and the connection lets go of the WAL's write lock,
 * so another connection can write. */
static void
test_failed_write_releases_lock(void **state)
{
	struct fx *f = *state;
	char wal[128];
	pid_t pid;
	int status;

	snprintf(wal, sizeof(wal), "%s-wal", f->path);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		struct store *s = NULL;
		sqlite3 *a = NULL, *b = NULL;
		struct rlimit rl;
		if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0 ||
		    sqlite3_open_v2(f->path, &a, SQLITE_OPEN_READWRITE, "agentd") != SQLITE_OK ||
		    sqlite3_open_v2(f->path, &b, SQLITE_OPEN_READWRITE, NULL) != SQLITE_OK)
			_exit(10);
		/* A page cache of a few pages spills the transaction's pages to
		 * the WAL before its commit. */
		if (sqlite3_exec(
			a,
			"PRAGMA cache_size = 4; CREATE TABLE t(x);"
			"BEGIN; WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
			"WHERE i < 300) INSERT INTO t SELECT randomblob(900) FROM n;",
			NULL, NULL, NULL) != SQLITE_OK)
			_exit(11);
		off_t size = file_size(wal);
		if (size <= 0)
			_exit(12);
		signal(SIGXFSZ, SIG_IGN);
		if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(13);
		rlim_t cur = rl.rlim_cur;
		rl.rlim_cur = (rlim_t)size;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(13);
		sqlite3_exec(a, "ROLLBACK", NULL, NULL, NULL); /* may fail: the store goes on */
		if (file_size(wal) != size)
			_exit(15); /* written past the limit? */
		rl.rlim_cur = cur;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(13);
		int rc = sqlite3_exec(b, "BEGIN IMMEDIATE; INSERT INTO t VALUES (1); COMMIT", NULL,
				      NULL, NULL);
		if (rc != SQLITE_OK) {
			fprintf(stderr, "second connection: %s\n", sqlite3_errmsg(b));
			_exit(14);
		}
		sqlite3_close(b);
		sqlite3_close(a);
		store_close(s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* count(*) and sum(length(x)) of t on a connection of SQLite's own VFS. */
static int
table_sums(const char *path, int64_t *n, int64_t *bytes)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db, "SELECT count(*), coalesce(sum(length(x)), 0) FROM t",
					-1, &st, NULL);
	if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		*n = sqlite3_column_int64(st, 0);
		*bytes = sqlite3_column_int64(st, 1);
		rc = SQLITE_OK;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return rc;
}

/* The size of wal_table's row i: 100 B to 20 KB. */
static int
row_size(int i)
{
	return 100 + i * 7919 % 20000;
}

/* Rows of 100 B to 20 KB in WAL mode on the store's VFS: runs of
 * overflow pages, which a checkpoint writes as long runs. */
static sqlite3 *
wal_table(const char *path, int rows, int64_t *bytes)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, "agentd") !=
		SQLITE_OK ||
	    sqlite3_exec(db,
			 "PRAGMA page_size = 1024; PRAGMA journal_mode = WAL;"
			 "PRAGMA wal_autocheckpoint = 0; CREATE TABLE t(x)",
			 NULL, NULL, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return NULL;
	}
	*bytes = 0;
	for (int i = 0; i < rows; i++) {
		char sql[96];
		int size = row_size(i);
		snprintf(sql, sizeof(sql), "INSERT INTO t VALUES (randomblob(%d))", size);
		if (sqlite3_exec(db, sql, NULL, NULL, NULL) != SQLITE_OK) {
			sqlite3_close(db);
			return NULL;
		}
		*bytes += size;
	}
	return db;
}

/* A checkpoint copies every page, whether its writes are gathered or not:
 * once the WAL is copied and emptied, the database file alone, copied
 * elsewhere without its WAL, holds every row. A reader holding an old
 * snapshot makes the first pass stop short of the end (the pages it did
 * copy are recorded as copied at CKPT_DONE). */
static void
test_checkpoint_copies_every_page(void **state)
{
	struct fx *f = *state;
	char copy[128], cmd[320];
	int64_t want = 0, n = 0, bytes = 0;
	sqlite3 *w = wal_table(f->path, 150, &want), *r = NULL;
	int log = 0, done = 0;

	assert_non_null(w);
	assert_int_equal(sqlite3_open_v2(f->path, &r, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_exec(r, "BEGIN; SELECT count(*) FROM t", NULL, NULL, NULL),
			 SQLITE_OK);
	for (int i = 0; i < 40; i++)
		assert_int_equal(
		    sqlite3_exec(w, "INSERT INTO t VALUES (randomblob(9000))", NULL, NULL, NULL),
		    SQLITE_OK);
	want += 40 * 9000;
	assert_int_equal(sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done),
			 SQLITE_OK);
	assert_true(done > 0 && done < log); /* the reader held the rest back */
	assert_int_equal(sqlite3_exec(r, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(r), SQLITE_OK);
	assert_int_equal(
	    sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_TRUNCATE, &log, &done), SQLITE_OK);
	assert_int_equal(log, 0);
	snprintf(copy, sizeof(copy), "%s/copy.db", f->dir);
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", f->path, copy);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(table_sums(copy, &n, &bytes), SQLITE_OK);
	assert_int_equal(n, 190);
	assert_int_equal(bytes, want);
	sqlite3 *c = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(copy, &c, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(c, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
	sqlite3_finalize(st);
	sqlite3_close(c);
	assert_int_equal(sqlite3_close(w), SQLITE_OK);
}

/* A writer killed with its WAL uncopied: the next open rebuilds the WAL
 * index from the file, reading ahead under the write lock, and finds every
 * commit (a byte served wrong would fail a frame's checksum and cut the WAL
 * short there). */
static void
test_recovery_finds_every_commit(void **state)
{
	struct fx *f = *state;
	int64_t want = 0, n = 0, bytes = 0;
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int64_t b = 0;
		if (!wal_table(f->path, 400, &b))
			_exit(10);
		raise(SIGKILL);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFSIGNALED(status));
	for (int i = 0; i < 400; i++)
		want += row_size(i);

	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	assert_int_equal(sqlite3_open_v2(f->path, &db, SQLITE_OPEN_READWRITE, "agentd"), SQLITE_OK);
	assert_int_equal(
	    sqlite3_prepare_v2(db, "SELECT count(*), sum(length(x)) FROM t", -1, &st, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_step(st), SQLITE_ROW);
	assert_int_equal(sqlite3_column_int64(st, 0), 400);
	assert_int_equal(sqlite3_column_int64(st, 1), want);
	sqlite3_finalize(st);
	/* And what a checkpoint copies from it reads back alone. */
	assert_int_equal(
	    sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(db), SQLITE_OK);
	assert_int_equal(table_sums(f->path, &n, &bytes), SQLITE_OK);
	assert_int_equal(n, 400);
	assert_int_equal(bytes, want);
}

/* A checkpoint that cannot grow the database to its full size (a file size
 * limit ten pages short of it here, a full disk in use) fails, and the
 * process goes on: the pages past what the file could hold were not
 * gathered (they would be written, and fail, only at CKPT_DONE, whose error
 * SQLite ignores), so the write that fails is SQLite's own, and the
 * checkpoint is not recorded. With the limit lifted, the next one copies
 * everything. */
static void
test_checkpoint_cannot_grow(void **state)
{
	struct fx *f = *state;
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0) {
		int64_t want = 0, n = 0, bytes = 0;
		struct rlimit rl;
		sqlite3_stmt *st = NULL;
		sqlite3 *w = wal_table(f->path, 200, &want);
		if (!w || sqlite3_prepare_v2(w, "PRAGMA page_count", -1, &st, NULL) != SQLITE_OK ||
		    sqlite3_step(st) != SQLITE_ROW)
			_exit(10);
		off_t full = (off_t)sqlite3_column_int64(st, 0) * 1024, limit = full - 10 * 1024;
		sqlite3_finalize(st);
		if (file_size(f->path) >= limit)
			_exit(10);
		signal(SIGXFSZ, SIG_IGN);
		if (getrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		rlim_t cur = rl.rlim_cur;
		rl.rlim_cur = (rlim_t)limit;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		if (sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL) ==
		    SQLITE_OK)
			_exit(12); /* grew past the limit? */
		if (file_size(f->path) > limit)
			_exit(13);
		rl.rlim_cur = cur;
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(11);
		if (table_sums(f->path, &n, &bytes) != SQLITE_OK || n != 200 || bytes != want)
			_exit(14);
		if (sqlite3_wal_checkpoint_v2(w, NULL, SQLITE_CHECKPOINT_TRUNCATE, NULL, NULL) !=
		    SQLITE_OK)
			_exit(15);
		sqlite3_close(w);
		if (file_size(f->path) != full || table_sums(f->path, &n, &bytes) != SQLITE_OK ||
		    n != 200 || bytes != want)
			_exit(16);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status)); /* not aborted */
	assert_int_equal(WEXITSTATUS(status), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_reader_sees_each_commit, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_failed_write_fails_commit, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_failed_write_releases_lock, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_copies_every_page, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_recovery_finds_every_commit, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_checkpoint_cannot_grow, store_files_setup,
					    store_files_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
