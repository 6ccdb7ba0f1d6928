/* Fuzz target: store rows. The input is split on '\n' into column values that
 * are written straight into a store file (as a tampered or corrupted file
 * would hold them) and read back through the store API, which must return 0
 * or a negative errno and never crash, leak or misread.
 *
 * Line layout: journal rows of 14 lines each (seq, ord, tool, args_hash,
 * args, status, result, attempt, decision, rule, started_ms, finished_ms,
 * link, chain), at most 3 rows; the first line is also used as a state blob
 * and a run spec. A value "\N" is SQL NULL. Row i is journal row i + 1; its
 * outcome columns (status, result, finished_ms, chain) go to the outcomes
 * row of that id unless status is "0" or "\N" (an intent), numbered in row
 * order. */
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sqlite3.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define COLS	  14
#define MAX_LINES (3 * COLS)

static struct store *fz_store;
static sqlite3 *fz_raw;
static char fz_path[64];

static void
fz_cleanup(void)
{
	char p[80];

	fz_store = store_close(fz_store);
	sqlite3_close(fz_raw);
	fz_raw = NULL;
	unlink(fz_path);
	snprintf(p, sizeof(p), "%s-wal", fz_path);
	unlink(p);
	snprintf(p, sizeof(p), "%s-shm", fz_path);
	unlink(p);
}

static int
fz_init(void)
{
	int fd;

	if (fz_store)
		return 0;
	snprintf(fz_path, sizeof(fz_path), "/tmp/agentd-fuzz-store-XXXXXX");
	fd = mkostemp(fz_path, O_CLOEXEC);
	if (fd < 0)
		return -1;
	close(fd);
	if (store_open(fz_path, STORE_DURABILITY_PROCESS, &fz_store) < 0)
		return -1;
	if (sqlite3_open(fz_path, &fz_raw) != SQLITE_OK)
		return -1;
	sqlite3_busy_timeout(fz_raw, 5000);
	atexit(fz_cleanup);
	return 0;
}

static void
bind_value(sqlite3_stmt *st, int idx, const char *v, size_t len)
{
	if (len == 2 && v[0] == '\\' && v[1] == 'N')
		sqlite3_bind_null(st, idx);
	else
		sqlite3_bind_text(st, idx, v, (int)len, SQLITE_STATIC);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *lines[MAX_LINES];
	size_t lens[MAX_LINES];
	size_t nlines = 0, start = 0;
	sqlite3_stmt *st = NULL;

	if (size > (1u << 20) || fz_init() < 0)
		return 0;
	for (size_t i = 0; i <= size && nlines < MAX_LINES; i++) {
		if (i == size || data[i] == '\n') {
			lines[nlines] = (const char *)data + start;
			lens[nlines] = i - start;
			nlines++;
			start = i + 1;
		}
	}
	sqlite3_exec(fz_raw,
		     "DELETE FROM journal; DELETE FROM outcomes; DELETE FROM states; "
		     "DELETE FROM runs",
		     NULL, NULL, NULL);
	sqlite3_stmt *out = NULL;
	if (sqlite3_prepare_v2(fz_raw,
			       "INSERT OR REPLACE INTO journal(id, run, seq, ord, tool, args_hash, "
			       "args, attempt, decision, rule, started_ms, link) VALUES (?15, 'f', "
			       "?1, ?2, ?3, ?4, ?5, ?8, ?9, ?10, ?11, ?13)",
			       -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(fz_raw,
			       "INSERT OR REPLACE INTO outcomes(id, fin, status, result, "
			       "finished_ms, chain) VALUES (?15, ?16, ?6, ?7, ?12, ?14)",
			       -1, &out, NULL) == SQLITE_OK) {
		int64_t fin = 0;
		for (size_t row = 0; (row + 1) * COLS <= nlines; row++) {
			const char *status = lines[row * COLS + 5];
			size_t slen = lens[row * COLS + 5];
			bool intent = (slen == 2 && !memcmp(status, "\\N", 2)) ||
				      (slen == 1 && status[0] == '0');
			for (int k = 0; k < 2; k++) {
				sqlite3_stmt *q = k ? out : st;
				if (k && intent)
					break;
				for (int c = 0; c < COLS; c++)
					bind_value(q, c + 1, lines[row * COLS + c],
						   lens[row * COLS + c]);
				sqlite3_bind_int64(q, 15, (int64_t)row + 1);
				sqlite3_bind_int64(q, 16, fin + 1);
				if (sqlite3_step(q) == SQLITE_DONE && k)
					fin++;
				sqlite3_reset(q);
			}
		}
	}
	sqlite3_finalize(out);
	sqlite3_finalize(st);
	st = NULL;
	if (nlines > 0 &&
	    sqlite3_prepare_v2(
		fz_raw, "INSERT INTO states(run, seq, state, created_ms) VALUES ('f', 1, ?1, 0)",
		-1, &st, NULL) == SQLITE_OK) {
		bind_value(st, 1, lines[0], lens[0]);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);
	if (nlines > 0 &&
	    sqlite3_prepare_v2(fz_raw,
			       "INSERT INTO runs VALUES ('f', 'running', ?1, 0, -1, '', 0, 0)", -1,
			       &st, NULL) == SQLITE_OK) {
		bind_value(st, 1, lines[0], lens[0]);
		sqlite3_step(st);
	}
	sqlite3_finalize(st);

	struct store_call *calls = NULL;
	size_t n = 0;
	if (store_journal_load(fz_store, "f", &calls, &n) == 0) {
		/* What passes validation is internally consistent. */
		for (size_t i = 0; i < n; i++) {
			char hash[AGD_SHA256_HEX];
			if (calls[i].seq != (int64_t)i + 1 ||
			    agd_json_hash(store_digest(fz_store), calls[i].args, hash) != 0 ||
			    strcmp(hash, calls[i].args_hash) != 0)
				abort();
		}
		store_calls_free(calls, n);
	}
	json_t *state = NULL;
	int64_t seq;
	if (store_state_load(fz_store, "f", &state, &seq) == 0)
		json_decref(state);
	struct store_run run = {0};
	if (store_run_get(fz_store, "f", &run) == 0)
		store_run_clear(&run);
	return 0;
}
