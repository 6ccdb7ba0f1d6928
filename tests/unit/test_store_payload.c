/* The payload file (docs/store.md, "Payloads apart from the pages"): long
 * journal texts live beside the database, are checked like the rows, survive
 * backups and forks, give their space back after retention, and a file cut
 * short by a power loss ends the journal before the first row it lost. */
#include <errno.h>
#include <fcntl.h>
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
#include "store/sqlite-internal.h"
#include "store/store.h"
#include "store_files.h"

/* Check a loaded call against what store_pair() wrote. */
static void
check_pair(const struct store_call *c, int64_t seq, size_t size)
{
	assert_int_equal(c->seq, seq);
	assert_int_equal(c->status, STORE_CALL_OK);
	json_t *fill = json_object_get(c->args, "fill");
	assert_true(json_is_string(fill));
	assert_int_equal(json_string_length(fill), size);
	assert_int_equal(json_string_value(fill)[size - 1], 'a' + (int)(seq % 26));
	json_t *echo = json_object_get(c->result, "echo");
	assert_true(json_is_string(echo));
	assert_string_equal(json_string_value(echo), json_string_value(fill));
}

/* The run's journal is exactly calls 1..want as store_pair() wrote them, call
 * seq with size(seq) bytes. */
static void
load_expect(struct store *s, const char *run, size_t want, size_t (*size)(int64_t seq))
{
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_journal_load(s, run, &calls, &n), 0);
	assert_int_equal(n, want);
	for (size_t i = 0; i < n; i++)
		check_pair(&calls[i], (int64_t)i + 1, size((int64_t)i + 1));
	store_calls_free(calls, n);
}

static size_t
size_10k(int64_t seq)
{
	(void)seq;
	return 10 << 10;
}

static size_t
size_4000(int64_t seq)
{
	(void)seq;
	return 4000;
}

/* Long and short texts mixed: 100 B stays in the row. */
static size_t
size_mixed(int64_t seq)
{
	return seq % 3 == 2 ? 100 : (size_t)(seq % 3 ? 3000 : 10 << 10);
}

static off_t
file_size(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_size : -1;
}

static blkcnt_t
file_blocks(const char *path)
{
	struct stat sb;

	return stat(path, &sb) == 0 ? sb.st_blocks : -1;
}

static void
test_long_texts_apart(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct stat st;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(stat(f->ppath, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, STORE_PAYLOAD_HDR);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	for (int64_t seq = 1; seq <= 6; seq++)
		assert_int_equal(store_pair(s, "r", seq, size_mixed(seq)), 0);
	load_expect(s, "r", 6, size_mixed);
	store_close(s);
	/* Four calls' args and results are in the file, the rest in rows. */
	assert_int_equal(
	    store_sql_int(f->path, "SELECT count(*) FROM journal WHERE typeof(args) = 'blob'"), 4);
	assert_int_equal(
	    store_sql_int(f->path, "SELECT count(*) FROM outcomes WHERE typeof(result) = 'blob'"),
	    4);
	assert_int_equal(
	    store_sql_int(f->path, "SELECT count(*) FROM journal WHERE typeof(args) = 'text'"), 2);
	assert_true(file_size(f->ppath) > 4 * 2 * 3000);
	/* Read back by another open; with durability power, long texts stay
	 * in the rows (each commit is fsynced: one fsync, not two). */
	assert_int_equal(store_open(f->path, STORE_DURABILITY_POWER, &s), 0);
	load_expect(s, "r", 6, size_mixed);
	assert_int_equal(store_pair(s, "r", 7, size_mixed(7)), 0);
	load_expect(s, "r", 7, size_mixed);
	store_close(s);
	assert_int_equal(
	    store_sql_int(f->path, "SELECT count(*) FROM journal WHERE typeof(args) = 'blob'"), 4);
	assert_int_equal(
	    store_sql_int(f->path, "SELECT count(*) FROM journal WHERE typeof(args) = 'text'"), 3);
}

/* Flip one byte of the file at off. */
static void
flip(const char *path, off_t off)
{
	int fd = open(path, O_RDWR);
	char c;

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, &c, 1, off), 1);
	c ^= 1;
	assert_int_equal(pwrite(fd, &c, 1, off), 1);
	close(fd);
}

static void
test_edited_text_detected(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	assert_int_equal(store_pair(s, "r", 1, 4000), 0);
	assert_int_equal(store_pair(s, "r", 2, 4000), 0);
	off_t end = file_size(f->ppath);
	/* The last byte of the second result: its seal no longer matches. */
	flip(f->ppath, end - 3);
	assert_int_equal(store_journal_load(s, "r", &calls, &n), -EBADMSG);
	flip(f->ppath, end - 3);
	load_expect(s, "r", 2, size_4000);
	/* A byte of the first args: their hash no longer matches. */
	flip(f->ppath, STORE_PAYLOAD_HDR + 20);
	assert_int_equal(store_journal_load(s, "r", &calls, &n), -EBADMSG);
	flip(f->ppath, STORE_PAYLOAD_HDR + 20);
	/* A reference edited to point elsewhere in the file. */
	store_close(s);
	{
		sqlite3 *db = NULL;
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(
		    sqlite3_exec(db,
				 "UPDATE outcomes SET result = (SELECT result FROM"
				 " outcomes ORDER BY id LIMIT 1) WHERE id = (SELECT max(id)"
				 " FROM outcomes)",
				 NULL, NULL, NULL),
		    SQLITE_OK);
		sqlite3_close(db);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_journal_load(s, "r", &calls, &n), -EBADMSG);
	store_close(s);
}

static int
count_event(const struct store_event *e, void *ud)
{
	if (strcmp(e->type, "journal.truncated") == 0) {
		json_t *from = json_object_get(e->data, "from_seq");
		*(int64_t *)ud = json_integer_value(from);
	}
	return 0;
}

/* A reference damaged in the database (here its offset, moved past
 * the file's end) fails its check: corruption, reported, and the journal
 * is left as it is, never cut as after a power loss. */
static void
test_damaged_reference_is_corruption(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t from = 0;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	for (int64_t seq = 1; seq <= 3; seq++)
		assert_int_equal(store_pair(s, "r", seq, 4000), 0);
	store_close(s);
	{
		sqlite3 *db = NULL;
		sqlite3_stmt *st = NULL;
		unsigned char ref[STORE_PAYLOAD_REF];
		assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
		assert_int_equal(
		    sqlite3_prepare_v2(db, "SELECT args FROM journal WHERE run = 'r' AND seq = 2",
				       -1, &st, NULL),
		    SQLITE_OK);
		assert_int_equal(sqlite3_step(st), SQLITE_ROW);
		assert_int_equal(sqlite3_column_bytes(st, 0), STORE_PAYLOAD_REF);
		memcpy(ref, sqlite3_column_blob(st, 0), sizeof(ref));
		sqlite3_finalize(st);
		ref[2] ^= 1; /* the offset, 64 KiB on: past the end */
		assert_int_equal(sqlite3_prepare_v2(
				     db, "UPDATE journal SET args = ?1 WHERE run = 'r' AND seq = 2",
				     -1, &st, NULL),
				 SQLITE_OK);
		sqlite3_bind_blob(st, 1, ref, sizeof(ref), SQLITE_STATIC);
		assert_int_equal(sqlite3_step(st), SQLITE_DONE);
		sqlite3_finalize(st);
		sqlite3_close(db);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_journal_load(s, "r", &calls, &n), -EBADMSG);
	assert_int_equal(store_event_foreach(s, "r", count_event, &from), 0);
	assert_int_equal(from, 0);
	store_close(s);
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM journal WHERE run = 'r'"), 3);
}

static void
test_file_missing_or_replaced(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char cmd[512];

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	assert_int_equal(store_pair(s, "r", 1, 4000), 0);
	store_close(s);
	snprintf(cmd, sizeof(cmd), "mv '%s' '%s.away'", f->ppath, f->ppath);
	assert_int_equal(system(cmd), 0);
	/* Gone: refused, never taken for a power loss that cut every text. */
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), -EBADMSG);
	/* Another store's file in its place: refused too. */
	{
		char other[112];
		snprintf(other, sizeof(other), "%s/other.db", f->dir);
		assert_int_equal(store_open(other, STORE_DURABILITY_PROCESS, &s), 0);
		store_close(s);
		snprintf(cmd, sizeof(cmd), "cp '%s-payloads' '%s'", other, f->ppath);
		assert_int_equal(system(cmd), 0);
	}
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), -EBADMSG);
	snprintf(cmd, sizeof(cmd), "mv '%s.away' '%s'", f->ppath, f->ppath);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	load_expect(s, "r", 1, size_4000);
	store_close(s);
}

/* A power loss (durability process) kept the rows of calls 4 and 5 but cut
 * the file's tail, where call 4's result and call 5 were: the journal ends
 * before call 4, as if its commit had been lost, and the run's timeline says
 * so. */
static void
test_power_loss_cuts_tail(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	int64_t from = 0;
	off_t cut = 0;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	assert_int_equal(store_run_create(s, "other", NULL), 0);
	for (int64_t seq = 1; seq <= 5; seq++) {
		assert_int_equal(store_pair(s, "r", seq, 4000), 0);
		if (seq == 3)
			assert_int_equal(store_pair(s, "other", 1, 4000), 0);
		if (seq == 4)
			cut = file_size(f->ppath) - 100; /* inside call 4's result */
	}
	store_close(s);
	assert_int_equal(truncate(f->ppath, cut), 0);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	load_expect(s, "r", 3, size_4000);
	load_expect(s, "other", 1, size_4000);
	assert_int_equal(store_event_foreach(s, "r", count_event, &from), 0);
	assert_int_equal(from, 4);
	/* The run goes on from there. */
	assert_int_equal(store_pair(s, "r", 4, 4000), 0);
	load_expect(s, "r", 4, size_4000);
	store_close(s);
}

/* Retention gives the space of the texts it drops back to the file system,
 * but not while a reader may still read them. */
static void
test_retention_gives_space_back(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	int64_t done = 0;
	cleanup_json json_t *st = json_pack("{s:i}", "n", 1);

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	for (int64_t seq = 1; seq <= 40; seq++)
		assert_int_equal(store_pair(s, "r", seq, 10 << 10), 0);
	assert_int_equal(store_state_save(s, "r", 20, st), 0);
	assert_int_equal(store_state_save(s, "r", 40, st), 0);
	blkcnt_t before = file_blocks(f->ppath);
	off_t size = file_size(f->ppath);
	assert_true(before * 512 >= 40 * 2 * (10 << 10));

	/* A reader holds the read lock: the space waits. */
	int rfd = open(f->ppath, O_RDWR);
	assert_true(rfd >= 0);
	assert_int_equal(store_payload_lock_read(rfd), 0);
	assert_int_equal(store_retain(s, "r", 1, &done), 0);
	assert_int_equal(done, 40);
	assert_int_equal(file_blocks(f->ppath), before);
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM payload_free"), 80);
	store_payload_unlock(rfd);
	close(rfd);

	/* The next retention (here with nothing to compact) gives it back. */
	assert_int_equal(store_retain(s, "r", 1, &done), 0);
	assert_int_equal(done, 0);
	assert_true(file_blocks(f->ppath) * 512 <= 8192);
	assert_int_equal(file_size(f->ppath), size);
	assert_int_equal(store_sql_int(f->path, "SELECT count(*) FROM payload_free"), 0);
	/* Compacted rows still load (hashes and tombstones), and new calls
	 * append after the holes. */
	struct store_call *calls = NULL;
	size_t n = 0;
	assert_int_equal(store_journal_load(s, "r", &calls, &n), 0);
	assert_int_equal(n, 40);
	for (size_t i = 0; i < n; i++)
		assert_true(calls[i].compacted);
	store_calls_free(calls, n);
	assert_int_equal(store_pair(s, "r", 41, 10 << 10), 0);
	assert_true(file_size(f->ppath) > size);
	store_close(s);
}

/* Truncating a journal (divergence, rollback) frees the texts of the rows it
 * deletes; copies of a run (fork) have their own texts. */
static void
test_truncate_and_copy(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;

	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "a", NULL), 0);
	assert_int_equal(store_run_create(s, "b", NULL), 0);
	for (int64_t seq = 1; seq <= 10; seq++)
		assert_int_equal(store_pair(s, "a", seq, 10 << 10), 0);
	assert_int_equal(store_journal_load(s, "a", &calls, &n), 0);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(store_journal_record(s, "b", &calls[i]), 0);
	store_calls_free(calls, n);
	blkcnt_t before = file_blocks(f->ppath);
	assert_int_equal(store_journal_truncate(s, "a", 2), 0);
	/* The texts of calls 3-10 were one span: all of it is given back but
	 * for the blocks it shares with call 2's and the copy's texts. */
	assert_true((before - file_blocks(f->ppath)) * 512 >= 8 * 2 * (10 << 10) - 8192);
	load_expect(s, "a", 2, size_10k);
	load_expect(s, "b", 10, size_10k);
	store_close(s);
}

/* A backup is one self-contained file: its rows hold their texts. */
static void
test_backup_self_contained(void **state)
{
	struct fx *f = *state;
	struct store *s = NULL;
	char bak[112], cmd[512];

	snprintf(bak, sizeof(bak), "%s/backup.db", f->dir);
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	assert_int_equal(store_run_create(s, "r", NULL), 0);
	for (int64_t seq = 1; seq <= 6; seq++)
		assert_int_equal(store_pair(s, "r", seq, size_mixed(seq)), 0);
	assert_int_equal(store_backup(s, bak), 0);
	store_close(s);
	assert_int_equal(
	    store_sql_int(bak, "SELECT count(*) FROM journal WHERE typeof(args) = 'blob'"), 0);
	assert_int_equal(
	    store_sql_int(bak, "SELECT count(*) FROM outcomes WHERE typeof(result) = 'blob'"), 0);
	/* The source's files are gone; the backup opens and reads whole. */
	snprintf(cmd, sizeof(cmd), "rm -f '%s' '%s'", f->path, f->ppath);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(store_open(bak, STORE_DURABILITY_PROCESS, &s), 0);
	load_expect(s, "r", 6, size_mixed);
	assert_int_equal(store_pair(s, "r", 7, size_mixed(7)), 0);
	store_close(s);
	assert_int_equal(store_open(bak, STORE_DURABILITY_PROCESS, &s), 0);
	load_expect(s, "r", 7, size_mixed);
	store_close(s);
}

/* A text the payload file cannot take (a file size limit it has reached,
 * while the database and its WAL have room) fails its commit; the store goes
 * on. */
static void
test_append_fails(void **state)
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
		for (int64_t seq = 1; seq <= 3; seq++)
			if (store_pair(s, "r", seq, 200 << 10) < 0)
				_exit(11);
		off_t room =
		    file_size(wal) > file_size(f->path) ? file_size(wal) : file_size(f->path);
		if (room + (64 << 10) >= file_size(f->ppath))
			_exit(12);
		signal(SIGXFSZ, SIG_IGN);
		rl.rlim_cur = rl.rlim_max = (rlim_t)(room + (64 << 10));
		if (setrlimit(RLIMIT_FSIZE, &rl) < 0)
			_exit(13);
		if (store_pair(s, "r", 4, 8000) >= 0)
			_exit(14);
		if (store_pair(s, "r", 4, 100) < 0)
			_exit(15);
		struct store_call *calls = NULL;
		size_t n = 0;
		if (store_journal_load(s, "r", &calls, &n) < 0 || n != 4)
			_exit(16);
		store_calls_free(calls, n);
		store_close(s);
		_exit(0);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* Writers in several processes append to one file: each text lands where
 * its row says. */
static void
test_writers_in_processes(void **state)
{
	struct fx *f = *state;
	enum { WRITERS = 3, CALLS = 60 };
	pid_t pids[WRITERS];
	int status;

	for (int w = 0; w < WRITERS; w++) {
		pids[w] = fork();
		assert_true(pids[w] >= 0);
		if (pids[w] == 0) {
			struct store *s = NULL;
			char run[16];
			snprintf(run, sizeof(run), "w%d", w);
			if (store_open(f->path, STORE_DURABILITY_PROCESS, &s) < 0)
				_exit(10);
			if (store_run_create(s, run, NULL) < 0)
				_exit(11);
			for (int64_t seq = 1; seq <= CALLS; seq++)
				if (store_pair(s, run, seq, size_mixed(seq)) < 0)
					_exit(12);
			store_close(s);
			_exit(0);
		}
	}
	for (int w = 0; w < WRITERS; w++) {
		assert_int_equal(waitpid(pids[w], &status, 0), pids[w]);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 0);
	}
	struct store *s = NULL;
	assert_int_equal(store_open(f->path, STORE_DURABILITY_PROCESS, &s), 0);
	for (int w = 0; w < WRITERS; w++) {
		char run[16];
		snprintf(run, sizeof(run), "w%d", w);
		load_expect(s, run, CALLS, size_mixed);
	}
	store_close(s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_long_texts_apart, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_edited_text_detected, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_damaged_reference_is_corruption, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_file_missing_or_replaced, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_power_loss_cuts_tail, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_retention_gives_space_back, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_truncate_and_copy, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_backup_self_contained, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_append_fails, store_files_setup,
					    store_files_teardown),
	    cmocka_unit_test_setup_teardown(test_writers_in_processes, store_files_setup,
					    store_files_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
