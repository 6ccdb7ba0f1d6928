#ifndef AGENTD_TESTS_STORE_DOWNGRADE_H
#define AGENTD_TESTS_STORE_DOWNGRADE_H

/* SQL that turns a version 8 store file back into a version 7 one. Only a
 * SHA-256 store's rows are what version 7 wrote: the upgrade tests make
 * theirs one first (store_sha256), by applying this to a new, empty file,
 * which reopened is a file that had rows before version 8. */
#define STORE_V8_TO_V7 "DROP TABLE text_digest; PRAGMA user_version = 7;"

/* Turn the new, empty store file at path into a SHA-256 one (above). */
static inline void
store_sha256(const char *path)
{
	sqlite3 *db;

	assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
	assert_int_equal(sqlite3_exec(db, STORE_V8_TO_V7, NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(db);
}

/* SQL that turns a version 7 store file back into a version 6 one:
 * the payload file's tables go (the tests that use it write no text long
 * enough to be in the payload file). */
#define STORE_V7_TO_V6 "DROP TABLE payload_free; DROP TABLE payload_file; PRAGMA user_version = 6;"

/* SQL that turns a version 6 store file back into a version 5 one,
 * for the upgrade tests: each outcome goes back onto its journal row. An
 * intent's seal is not kept in version 6 (it is the row's link under status
 * 0), so intents get an empty one, which the version 6 migration drops. */
#define STORE_V6_TO_V5                                                                             \
	"ALTER TABLE journal RENAME TO journal_v6;"                                                \
	"CREATE TABLE journal (run TEXT NOT NULL, seq INTEGER NOT NULL, ord INTEGER NOT NULL,"     \
	" tool TEXT NOT NULL, args_hash TEXT NOT NULL, args TEXT NOT NULL, status INTEGER NOT "    \
	"NULL, result TEXT, attempt INTEGER NOT NULL, decision TEXT NOT NULL, rule TEXT NOT NULL," \
	" started_ms INTEGER NOT NULL, finished_ms INTEGER NOT NULL, link TEXT NOT NULL,"          \
	" chain TEXT NOT NULL, owner_uid INTEGER NOT NULL DEFAULT -1, PRIMARY KEY (run, seq));"    \
	"INSERT INTO journal SELECT j.run, j.seq, j.ord, j.tool, j.args_hash, j.args,"             \
	" coalesce(o.status, 0), o.result, j.attempt, j.decision, j.rule, j.started_ms,"           \
	" coalesce(o.finished_ms, 0), j.link, coalesce(o.chain, ''), j.owner_uid"                  \
	" FROM journal_v6 j LEFT JOIN outcomes o ON o.id = j.id ORDER BY j.id;"                    \
	"DROP TABLE journal_v6; DROP TABLE outcomes;"                                              \
	"CREATE INDEX journal_by_owner ON journal(owner_uid, started_ms);"                         \
	"PRAGMA user_version = 5;"

#endif
