/* Shared by the store tests that work on a store's files: a fresh directory
 * per test with the store's path in it, and calls whose args and result
 * carry a given number of bytes. Include after cmocka.h and store/store.h. */
#ifndef AGENTD_TESTS_STORE_FILES_H
#define AGENTD_TESTS_STORE_FILES_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "common/json.h"
#include "common/util.h"

struct fx {
	char dir[64], path[96], ppath[112]; /* the directory, the store, its payload file */
};

static inline int
store_files_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	assert_non_null(f);
	snprintf(f->dir, sizeof(f->dir), "/tmp/agentd-store-XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/store.db", f->dir);
	snprintf(f->ppath, sizeof(f->ppath), "%s-payloads", f->path);
	*state = f;
	return 0;
}

static inline int
store_files_teardown(void **state)
{
	struct fx *f = *state;
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
	assert_int_equal(system(cmd), 0);
	free(f);
	return 0;
}

/* An integer from one SQL query on the file, through a plain connection
 * (which sees only what is committed). */
static inline int64_t
store_sql_int(const char *path, const char *sql)
{
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int64_t v = -1;

	assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int64(st, 0);
	sqlite3_finalize(st);
	sqlite3_close(db);
	return v;
}

/* size bytes of the letter for seq, NUL-terminated (NULL if out of memory). */
static inline char *
store_fill(int64_t seq, size_t size)
{
	char *fill = malloc(size + 1);

	if (fill) {
		memset(fill, 'a' + (int)(seq % 26), size);
		fill[size] = '\0';
	}
	return fill;
}

/* The intent of an agentd.echo call at seq with these args (started at
 * seq ms). */
static inline int
store_echo_intent(struct store *s, const char *run, int64_t seq, json_t *args)
{
	struct store_call c = {
	    .seq = seq,
	    .tool = "agentd.echo",
	    .args = args,
	    .attempt = 1,
	    .decision = "allow",
	    .rule = "",
	    .started_ms = seq,
	};

	return store_journal_intent(s, run, &c);
}

/* An effect call at seq whose args ({"seq", "fill"}) and result ({"echo"})
 * carry `size` bytes each: an intent, then its outcome. */
static inline int
store_pair(struct store *s, const char *run, int64_t seq, size_t size)
{
	cleanup_free char *fill = store_fill(seq, size);
	if (!fill)
		return -ENOMEM;
	cleanup_json json_t *args = json_pack("{s:I,s:s}", "seq", (json_int_t)seq, "fill", fill);
	cleanup_json json_t *res = json_pack("{s:s}", "echo", fill);
	int r = store_echo_intent(s, run, seq, args);

	return r < 0 ? r : store_journal_finish(s, run, seq, STORE_CALL_OK, res, seq + 1);
}

#endif
