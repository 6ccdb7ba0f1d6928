/* SQLite backend of store/store.h. Design notes: docs/store.md.
 *
 * One connection per struct store, used from one thread. The hot path
 * (journal intent / finish / record) runs on statements prepared once at open
 * and cached in the struct, inside BEGIN IMMEDIATE so that two processes
 * writing the same file queue on the busy handler instead of failing with
 * SQLITE_BUSY on a read-to-write lock upgrade. */
#include "store/store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sqlite3.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/json.h"
#include "common/sha256.h"
#include "common/util.h"
#include "store/sqlite-internal.h"

#define BUSY_TIMEOUT_MS 10000
/* Page size of a new file. */
#define PAGE_SIZE 1024

enum stmt_id {
	ST_BEGIN,
	ST_COMMIT,
	ST_ROLLBACK,
	ST_SAVEPOINT,
	ST_RELEASE,
	ST_ROLLBACK_TO,
	ST_RUN_INSERT,
	ST_RUN_GET,
	ST_RUN_SET_STATUS,
	ST_RUN_SET_ATTEMPTS,
	ST_RUN_NEXT_ATTEMPT,
	ST_RUN_LIST,
	ST_DATA_VERSION,
	ST_J_TAIL,
	ST_J_ROW_LINK,
	ST_J_INSERT,
	ST_J_ROW,
	ST_O_INSERT,
	ST_J_LOAD,
	ST_O_DELETE_AFTER,
	ST_J_DELETE_AFTER,
	ST_J_RESEAL,
	ST_O_RESEAL,
	ST_STATE_DELETE_AFTER,
	ST_STATE_INSERT,
	ST_STATE_LOAD,
	ST_STATE_NTH,
	ST_STATE_DELETE_BEFORE,
	ST_J_COMPACT,
	ST_O_COMPACT,
	ST_J_TO_COMPACT,
	ST_J_LINK_AT,
	ST_EVENT_INSERT,
	ST_EVENT_LIST,
	ST_PL_FREE_ADD,
	ST_PL_FREE_LIST,
	ST_PL_FREE_DROP,
	ST__MAX,
};

static const char *const stmt_sql[ST__MAX] = {
    [ST_BEGIN] = "BEGIN IMMEDIATE",
    [ST_COMMIT] = "COMMIT",
    [ST_ROLLBACK] = "ROLLBACK",
    [ST_SAVEPOINT] = "SAVEPOINT journal_row",
    [ST_RELEASE] = "RELEASE journal_row",
    [ST_ROLLBACK_TO] = "ROLLBACK TO journal_row",
    [ST_RUN_INSERT] = "INSERT INTO runs(id, status, spec, attempts, exit_code, reason, "
		      "created_ms, updated_ms, owner_uid) "
		      "VALUES (?1, 'running', ?2, 0, -1, '', ?3, ?3, ?4)",
    [ST_RUN_GET] = "SELECT id, status, spec, attempts, exit_code, reason, created_ms, "
		   "updated_ms FROM runs WHERE id = ?1",
    [ST_RUN_SET_STATUS] = "UPDATE runs SET status = ?2, exit_code = ?3, reason = ?4, "
			  "updated_ms = ?5 WHERE id = ?1",
    [ST_RUN_SET_ATTEMPTS] = "UPDATE runs SET attempts = ?2, updated_ms = ?3 WHERE id = ?1",
    [ST_RUN_NEXT_ATTEMPT] = "UPDATE runs SET attempts = attempts + 1, updated_ms = ?2 "
			    "WHERE id = ?1 RETURNING attempts",
    [ST_RUN_LIST] = "SELECT id, status, spec, attempts, exit_code, reason, created_ms, "
		    "updated_ms FROM runs ORDER BY created_ms DESC, rowid DESC",
    [ST_DATA_VERSION] = "PRAGMA data_version",
    /* A run's newest ordinal (NULL if it has no row), its number of
     * outcomes and its owner (NULL if no such run). */
    [ST_J_TAIL] = "SELECT max(j.ord), count(o.id), (SELECT owner_uid FROM runs WHERE id = ?1) "
		  "FROM journal j LEFT JOIN outcomes o ON o.id = j.id WHERE j.run = ?1",
    [ST_J_ROW_LINK] = "SELECT ord, link FROM journal WHERE run = ?1 AND seq = ?2",
    [ST_J_INSERT] = "INSERT INTO journal(run, seq, ord, tool, args_hash, args, attempt, decision, "
		    "rule, started_ms, link, owner_uid) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
    [ST_J_ROW] = "SELECT id, link FROM journal WHERE run = ?1 AND seq = ?2",
    /* The primary key makes the first outcome of a row the only one. */
    [ST_O_INSERT] = "INSERT INTO outcomes(id, fin, status, result, finished_ms, chain) "
		    "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    /* Columns 0-13 are the row (read_call), 14 its id, 15 its outcome's
     * finish ordinal; the outcome's columns are NULL for an intent. */
    [ST_J_LOAD] = "SELECT j.seq, j.ord, j.tool, j.args_hash, j.args, o.status, o.result, "
		  "j.attempt, j.decision, j.rule, j.started_ms, o.finished_ms, j.link, o.chain, "
		  "j.id, o.fin FROM journal j LEFT JOIN outcomes o ON o.id = j.id "
		  "WHERE j.run = ?1 ORDER BY j.seq",
    [ST_O_DELETE_AFTER] = "DELETE FROM outcomes WHERE id IN "
			  "(SELECT id FROM journal WHERE run = ?1 AND seq > ?2)",
    [ST_J_DELETE_AFTER] = "DELETE FROM journal WHERE run = ?1 AND seq > ?2",
    [ST_J_RESEAL] = "UPDATE journal SET ord = ?2, link = ?3 WHERE id = ?1",
    [ST_O_RESEAL] = "UPDATE outcomes SET fin = ?2, chain = ?3 WHERE id = ?1",
    [ST_STATE_DELETE_AFTER] = "DELETE FROM states WHERE run = ?1 AND seq > ?2",
    [ST_STATE_INSERT] = "INSERT INTO states(run, seq, state, created_ms) VALUES (?1, ?2, ?3, ?4)",
    [ST_STATE_NTH] = "SELECT rowid, seq FROM states WHERE run = ?1 ORDER BY rowid DESC "
		     "LIMIT 1 OFFSET ?2",
    [ST_STATE_DELETE_BEFORE] = "DELETE FROM states WHERE run = ?1 AND rowid < ?2",
    [ST_J_COMPACT] = "UPDATE journal SET args = '' WHERE id = ?1",
    [ST_O_COMPACT] = "UPDATE outcomes SET result = ?2, chain = ?3 WHERE id = ?1",
    /* Columns as in ST_J_LOAD: the finished rows store_retain compacts. */
    [ST_J_TO_COMPACT] = "SELECT j.seq, j.ord, j.tool, j.args_hash, j.args, o.status, o.result, "
			"j.attempt, j.decision, j.rule, j.started_ms, o.finished_ms, j.link, "
			"o.chain, j.id, o.fin FROM journal j JOIN outcomes o ON o.id = j.id "
			"WHERE j.run = ?1 AND j.seq <= ?2 AND j.args != '' ORDER BY j.seq",
    [ST_J_LINK_AT] = "SELECT link FROM journal WHERE run = ?1 AND ord = ?2",
    [ST_STATE_LOAD] = "SELECT seq, state FROM states WHERE run = ?1 AND seq <= ?2 "
		      "ORDER BY rowid DESC LIMIT 1",
    [ST_EVENT_INSERT] = "INSERT INTO events(run, ts_ms, attempt, seq, type, data) "
			"VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    [ST_EVENT_LIST] = "SELECT id, ts_ms, attempt, seq, type, data FROM events WHERE run = ?1 "
		      "ORDER BY id",
    [ST_PL_FREE_ADD] = "INSERT INTO payload_free(off, len) VALUES (?1, ?2)",
    [ST_PL_FREE_LIST] = "SELECT id, off, len FROM payload_free ORDER BY off",
    [ST_PL_FREE_DROP] = "DELETE FROM payload_free WHERE id <= ?1",
};

/* A run's journal tail as this connection last wrote or read it: the ordinal
 * and link of its newest row (0 and "" if none), its number of outcomes and
 * its owner's uid; the seq and id of that row once this connection has
 * inserted it (else 0). */
struct tail {
	struct tail *next;
	int64_t ord, fins, owner, seq, rowid;
	char link[AGD_SHA256_HEX];
	char run[];
};

/* Enough for every run a daemon has busy at once; past TAILS_MAX entries the
 * cache starts over (each run then reads its tail once more). */
#define TAIL_BUCKETS 1024
#define TAILS_MAX    8192

struct store {
	sqlite3 *db;
	enum store_durability durability;
	bool iterating; /* a foreach is stepping a cached statement */
	sqlite3_stmt *stmt[ST__MAX];
	struct store_ix *ix;	 /* approvals and messages: sqlite_interact.c */
	struct store_ckpt *ckpt; /* WAL checkpoints: sqlite_ckpt.c */
	bool batch;		 /* a group commit is open (store_batch_begin) */
	uint64_t batch_rows;	 /* journal rows written in it so far */
	struct store_journal_stats stats;
	/* Journal tails (docs/store.md, "Schema version 5"): valid while no other
	 * connection has committed (data_version) and nothing was rolled back. */
	struct tail *tails[TAIL_BUCKETS];
	size_t n_tails;
	int64_t data_version;
	/* The payload file (sqlite_payload.c): its fd, and its end as this
	 * connection left it (-1: not known; valid with the tails, since
	 * another connection appends only in a transaction of its own, which
	 * either commits, and data_version tells, or leaves bytes no row names,
	 * which may be written over). */
	int pfd;
	int64_t pend;
	enum agd_digest digest; /* of texts: store_digest */
	/* Held outcomes (store_batch_hold, "---- held outcomes ----" below):
	 * the side file (-1 until first needed); whether the open batch is
	 * held between two rounds; whether holding is off for good (answered
	 * outcomes that could not be finished stay in the side file for the
	 * next open); whether the side file holds records not yet committed;
	 * rows of the batch no record covers; the records. */
	int hfd;
	bool held, hold_off, hdirty;
	unsigned hold_other;
	char *hbuf;
	size_t hlen, hcap;
	char hpath[PATH_MAX];
};

/* ---- schema migrations ----
 * Version N is migrations[N - 1]; each runs inside the one transaction that
 * store_open uses to bring a file from its user_version to the newest. A new
 * version is a new function appended to the list, never an edit of an old one. */

static const char schema_v1[] = "CREATE TABLE runs ("
				" id TEXT PRIMARY KEY NOT NULL,"
				" status TEXT NOT NULL,"
				" spec TEXT NOT NULL,"
				" attempts INTEGER NOT NULL DEFAULT 0,"
				" exit_code INTEGER NOT NULL DEFAULT -1,"
				" reason TEXT NOT NULL DEFAULT '',"
				" created_ms INTEGER NOT NULL,"
				" updated_ms INTEGER NOT NULL);"
				"CREATE INDEX runs_by_created ON runs(created_ms);"
				"CREATE TABLE journal ("
				" run TEXT NOT NULL,"
				" seq INTEGER NOT NULL,"
				" ord INTEGER NOT NULL,"
				" tool TEXT NOT NULL,"
				" args_hash TEXT NOT NULL,"
				" args TEXT NOT NULL,"
				" status INTEGER NOT NULL,"
				" result TEXT,"
				" attempt INTEGER NOT NULL,"
				" decision TEXT NOT NULL,"
				" rule TEXT NOT NULL,"
				" started_ms INTEGER NOT NULL,"
				" finished_ms INTEGER NOT NULL,"
				" link TEXT NOT NULL,"
				" chain TEXT NOT NULL,"
				" PRIMARY KEY (run, seq));"
				"CREATE UNIQUE INDEX journal_by_ord ON journal(run, ord);"
				"CREATE TABLE states ("
				" run TEXT NOT NULL,"
				" seq INTEGER NOT NULL,"
				" state TEXT NOT NULL,"
				" created_ms INTEGER NOT NULL);"
				"CREATE INDEX states_by_run ON states(run, seq);"
				"CREATE TABLE events ("
				" id INTEGER PRIMARY KEY AUTOINCREMENT,"
				" run TEXT NOT NULL,"
				" ts_ms INTEGER NOT NULL,"
				" attempt INTEGER NOT NULL,"
				" seq INTEGER NOT NULL,"
				" type TEXT NOT NULL,"
				" data TEXT);"
				"CREATE INDEX events_by_run ON events(run, id);";

static int map_rc(int rc);
static void held_recover(struct store *s);
static void held_redo(struct store *s);

static int
migrate_v1(sqlite3 *db)
{
	return map_rc(sqlite3_exec(db, schema_v1, NULL, NULL, NULL));
}

/* v5: a journal row costs one index besides its primary key. Each index on
 * (run, ...) puts a run's new entry on a leaf page of its own, so a group
 * commit across many runs wrote one page per run per index. The ordinal
 * index goes (the tail of each run is cached, ordinals are verified on every
 * load), and the per-user count reads an index on the row's owner, copied
 * from its run, instead of one on (run, started_ms): the owners of a commit
 * are usually fewer than its runs. */
static const char schema_v5[] =
    "DROP INDEX journal_by_ord;"
    "DROP INDEX journal_by_started;"
    "ALTER TABLE journal ADD COLUMN owner_uid INTEGER NOT NULL DEFAULT -1;"
    "UPDATE journal SET owner_uid = (SELECT owner_uid FROM runs WHERE id = journal.run)"
    " WHERE run IN (SELECT id FROM runs);"
    "CREATE INDEX journal_by_owner ON journal(owner_uid, started_ms);";

static int
migrate_v5(sqlite3 *db)
{
	return map_rc(sqlite3_exec(db, schema_v5, NULL, NULL, NULL));
}

/* v6: a call's outcome is a row of its own. Updating the journal row made
 * SQLite rewrite the whole record, args overflow pages included, so a call's
 * args reached the WAL twice. The journal row is now written once (compaction
 * and truncation aside) and its outcome goes to `outcomes`, keyed by the
 * row's id: an INTEGER PRIMARY KEY, which VACUUM keeps (an implicit rowid
 * may change), so the table is rebuilt. `fin` numbers a run's outcomes in
 * the order they were written (docs/store.md, "Schema version 6"); existing
 * ones are numbered in seq order. Links and seals are unchanged. */
static const char schema_v6[] =
    "ALTER TABLE journal RENAME TO journal_v5;"
    "CREATE TABLE journal ("
    " id INTEGER PRIMARY KEY,"
    " run TEXT NOT NULL,"
    " seq INTEGER NOT NULL,"
    " ord INTEGER NOT NULL,"
    " tool TEXT NOT NULL,"
    " args_hash TEXT NOT NULL,"
    " args TEXT NOT NULL,"
    " attempt INTEGER NOT NULL,"
    " decision TEXT NOT NULL,"
    " rule TEXT NOT NULL,"
    " started_ms INTEGER NOT NULL,"
    " link TEXT NOT NULL,"
    " owner_uid INTEGER NOT NULL DEFAULT -1,"
    " UNIQUE (run, seq));"
    "CREATE TABLE outcomes ("
    " id INTEGER PRIMARY KEY,"
    " fin INTEGER NOT NULL,"
    " status INTEGER NOT NULL,"
    " result TEXT,"
    " finished_ms INTEGER NOT NULL,"
    " chain TEXT NOT NULL);"
    "INSERT INTO journal(id, run, seq, ord, tool, args_hash, args, attempt, decision, rule,"
    " started_ms, link, owner_uid)"
    " SELECT rowid, run, seq, ord, tool, args_hash, args, attempt, decision, rule, started_ms,"
    " link, owner_uid FROM journal_v5;"
    /* A row edited to status 0 with a result keeps it, and fails its load. */
    "INSERT INTO outcomes(id, fin, status, result, finished_ms, chain)"
    " SELECT rowid, row_number() OVER (PARTITION BY run ORDER BY seq), status, result,"
    " finished_ms, chain FROM journal_v5 WHERE status != 0 OR result IS NOT NULL;"
    "DROP TABLE journal_v5;"
    "CREATE INDEX journal_by_owner ON journal(owner_uid, started_ms);";

static int
migrate_v6(sqlite3 *db)
{
	return map_rc(sqlite3_exec(db, schema_v6, NULL, NULL, NULL));
}

/* Version 7: texts apart (docs/store.md, "Payloads apart from the pages"):
 * the payload file's id, and the spans of it that rows no longer name and
 * that are not given back yet. */
static const char schema_v7[] = "CREATE TABLE payload_file (id TEXT NOT NULL);"
				"CREATE TABLE payload_free ("
				" id INTEGER PRIMARY KEY AUTOINCREMENT," /* never reused */
				" off INTEGER NOT NULL,"
				" len INTEGER NOT NULL);";

static int
migrate_v7(sqlite3 *db)
{
	return map_rc(sqlite3_exec(db, schema_v7, NULL, NULL, NULL));
}

/* Version 8: the digest of the store's texts (docs/store.md, "Schema version
 * 8"). A file from an older version keeps SHA-256, which its rows were
 * sealed with; a new one takes BLAKE3 (migrate). */
static const char schema_v8[] = "CREATE TABLE text_digest (alg TEXT NOT NULL);"
				"INSERT INTO text_digest(alg) VALUES ('sha256');";

static int
migrate_v8(sqlite3 *db)
{
	return map_rc(sqlite3_exec(db, schema_v8, NULL, NULL, NULL));
}

static int (*const migrations[])(sqlite3 *db) = {
    migrate_v1,
    store_sqlite_migrate_v2,
    store_sqlite_migrate_v3,
    store_sqlite_migrate_v4,
    migrate_v5,
    migrate_v6,
    migrate_v7,
    migrate_v8,
};

#define SCHEMA_VERSION ((int)ARRAY_SIZE(migrations))

/* ---- journal tails ---- */

static size_t
tail_bucket(const char *run)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)run; *p; p++)
		h = (h ^ *p) * 16777619u;
	return h & (TAIL_BUCKETS - 1);
}

static struct tail **
tail_slot(struct store *s, const char *run)
{
	struct tail **pp = &s->tails[tail_bucket(run)];

	while (*pp && strcmp((*pp)->run, run) != 0)
		pp = &(*pp)->next;
	return pp;
}

static void
tails_clear(struct store *s)
{
	for (size_t i = 0; i < TAIL_BUCKETS; i++)
		while (s->tails[i]) {
			struct tail *t = s->tails[i];
			s->tails[i] = t->next;
			free(t);
		}
	s->n_tails = 0;
	s->pend = -1; /* the payload file's end goes with them */
}

static void
tail_forget(struct store *s, const char *run)
{
	struct tail **pp = tail_slot(s, run), *t = *pp;

	if (t) {
		*pp = t->next;
		free(t);
		s->n_tails--;
	}
}

/* Record a run's tail after a row or an outcome was written in the open
 * transaction. Out of memory only means the next write reads it from the file. */
static void
tail_set(struct store *s, const char *run, const struct tail *v)
{
	struct tail **pp = tail_slot(s, run), *t = *pp;

	if (!t) {
		size_t len = strlen(run);
		if (s->n_tails >= TAILS_MAX) {
			tails_clear(s);
			pp = tail_slot(s, run);
		}
		t = malloc(sizeof(*t) + len + 1);
		if (!t)
			return;
		memcpy(t->run, run, len + 1);
		t->next = NULL;
		*pp = t;
		s->n_tails++;
	}
	t->ord = v->ord;
	t->fins = v->fins;
	t->owner = v->owner;
	t->seq = v->seq;
	t->rowid = v->rowid;
	memcpy(t->link, v->link, AGD_SHA256_HEX);
}

/* Called once a write transaction holds the lock: another connection's
 * commit since ours may have written any run's journal. */
static void
tails_check(struct store *s)
{
	sqlite3_stmt *st = s->stmt[ST_DATA_VERSION];
	bool row = sqlite3_step(st) == SQLITE_ROW;
	int64_t v = row ? sqlite3_column_int64(st, 0) : s->data_version;

	sqlite3_reset(st);
	if (!row || v != s->data_version)
		tails_clear(s);
	s->data_version = v;
}

/* ---- small helpers ---- */

static int
map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		if (rc == SQLITE_CONSTRAINT_PRIMARYKEY || rc == SQLITE_CONSTRAINT_UNIQUE)
			return -EEXIST;
		return -EINVAL;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_FORMAT:
	case SQLITE_MISMATCH:
	case SQLITE_SCHEMA:
		return -EBADMSG;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_RANGE:
	case SQLITE_MISUSE:
		return -EINVAL;
	default:
		return -EIO;
	}
}

/* A cached statement is borrowed, never finalized: leaving scope resets it and
 * drops its bindings (which may own large buffers). */
void
store_sqlite_stmt_resetp(sqlite3_stmt **p)
{
	if (*p) {
		sqlite3_reset(*p);
		sqlite3_clear_bindings(*p);
	}
}

static void
stmt_finalizep(sqlite3_stmt **p)
{
	sqlite3_finalize(*p);
}
#define cleanup_finalize __attribute__((cleanup(stmt_finalizep)))

int
store_sqlite_step_done(sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	int r = rc == SQLITE_DONE ? 0 : (rc == SQLITE_ROW ? -EINVAL : map_rc(rc));

	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return r;
}

void
store_sqlite_tx_cleanup(struct store_tx *t)
{
	if (t->active) {
		store_sqlite_step_done(t->s->stmt[ST_ROLLBACK]);
		tails_clear(t->s);
	}
}

int
store_sqlite_tx_begin(struct store *s, struct store_tx *t)
{
	int r = store_sqlite_unhold(s);

	if (r < 0)
		return r;
	if (s->batch)
		return -EBUSY;
	r = store_sqlite_step_done(s->stmt[ST_BEGIN]);
	t->s = s;
	t->active = r == 0;
	if (r == 0)
		tails_check(s);
	return r;
}

int
store_sqlite_tx_join(struct store *s, struct store_tx *t)
{
	int r = store_sqlite_unhold(s);

	if (r < 0)
		return r;
	t->journal = true;
	if (!s->batch)
		return store_sqlite_tx_begin(s, t);
	/* Some errors (I/O, disk full) make SQLite roll the transaction back by
	 * itself: the batch is lost, and a write now would commit on its own. */
	if (sqlite3_get_autocommit(s->db)) {
		tails_clear(s);
		return -EIO;
	}
	/* A journal write changes nothing until its one statement succeeds, so a
	 * failed one leaves the batch as it was: no savepoint needed. */
	t->s = s;
	t->joined = true;
	s->hold_other++; /* until a record covers the row (held_note) */
	return 0;
}

int
store_sqlite_tx_commit(struct store_tx *t)
{
	struct store *s = t->s;

	if (t->joined) {
		s->batch_rows++;
		return 0;
	}
	int r = store_sqlite_step_done(s->stmt[ST_COMMIT]);

	/* A failed COMMIT leaves the transaction open: the cleanup rolls it back. */
	if (r == 0) {
		t->active = false;
		if (t->journal) {
			s->stats.commits++;
			s->stats.rows++;
			if (!s->stats.largest_commit)
				s->stats.largest_commit = 1;
		}
	}
	return r;
}

/* ---- group commit ---- */

int
store_batch_begin(struct store *s)
{
	if (s && s->held) { /* the next round of a held batch */
		s->held = false;
		return 0;
	}
	if (!s || s->batch)
		return -EBUSY;
	int r = store_sqlite_step_done(s->stmt[ST_BEGIN]);

	if (r < 0)
		return r;
	tails_check(s);
	s->batch = true;
	s->batch_rows = 0;
	s->hold_other = 0;
	return 0;
}

int
store_batch_commit(struct store *s)
{
	if (!s || !s->batch)
		return -EINVAL;
	int r = store_sqlite_step_done(s->stmt[ST_COMMIT]);

	s->held = false;
	if (r < 0) {
		store_batch_abort(s);
		return r;
	}
	s->hlen = 0; /* the records' outcomes are in the journal now */
	s->hdirty = false;
	s->batch = false;
	if (s->batch_rows) {
		s->stats.commits++;
		s->stats.rows += s->batch_rows;
		if (s->batch_rows > s->stats.largest_commit)
			s->stats.largest_commit = s->batch_rows;
	}
	return 0;
}

void
store_batch_abort(struct store *s)
{
	if (!s || !s->batch)
		return;
	bool redo = s->hdirty;

	s->held = false;
	/* After a failed COMMIT SQLite may have rolled back already. */
	if (!sqlite3_get_autocommit(s->db))
		store_sqlite_step_done(s->stmt[ST_ROLLBACK]);
	tails_clear(s);
	s->batch = false;
	if (redo)
		held_redo(s); /* outcomes already answered */
	s->hlen = 0;
}

void
store_journal_stats(struct store *s, struct store_journal_stats *ret)
{
	*ret = s->stats;
}

static bool
valid_id(const char *id)
{
	size_t n;

	if (!id)
		return false;
	n = strnlen(id, STORE_ID_MAX + 1);
	if (n == 0 || n > STORE_ID_MAX || strcmp(id, ".") == 0 || strcmp(id, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)id[i];
		/* Ids name workspace directories and appear in logs. */
		if (c < 0x21 || c > 0x7e || c == '/' || c == '\\')
			return false;
	}
	return true;
}

/* Short names (tool, decision, rule, event type): printable, no control bytes. */
static bool
valid_name(const char *v, bool allow_empty)
{
	size_t n;

	if (!v)
		return false;
	n = strnlen(v, STORE_NAME_MAX + 1);
	if (n > STORE_NAME_MAX || (n == 0 && !allow_empty))
		return false;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)v[i] < 0x20 || v[i] == 0x7f)
			return false;
	return true;
}

static bool
valid_run_status(const char *v)
{
	size_t n;

	if (!v)
		return false;
	n = strnlen(v, STORE_NAME_MAX + 1);
	if (n == 0 || n > STORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = v[i];
		if (!((c >= 'a' && c <= 'z') || c == '_' || c == '-' || c == '.' || c == ':'))
			return false;
	}
	return true;
}

static bool
valid_hex64(const char *v, size_t len)
{
	bool ok = len == AGD_SHA256_HEX - 1;

	/* Without a branch per digit: hashes are random, so digit-or-letter
	 * branches mispredict (three of these per journal row read). */
	for (size_t i = 0; ok && i < AGD_SHA256_HEX - 1; i += 16) {
		bool all = true;
		for (size_t k = i; k < i + 16; k++) {
			unsigned char c = (unsigned char)v[k];
			all &= (unsigned char)(c - '0') < 10 || (unsigned char)(c - 'a') < 6;
		}
		ok = all;
	}
	return ok;
}

/* Canonical text of a value to store; -EINVAL past the depth limit, -E2BIG
 * past the size limit. Canonical so the bytes hashed into the chain are the
 * bytes a re-encoding of the parsed value would give. */
static int
json_to_text(const json_t *v, char **ret, size_t *ret_len)
{
	char *txt;
	size_t len;

	if (!v || agd_json_depth(v) > STORE_JSON_MAX_DEPTH)
		return -EINVAL;
	txt = agd_json_canonical_n(v, &len);
	if (!txt)
		return -ENOMEM;
	if (len > STORE_VALUE_MAX) {
		free(txt);
		return -E2BIG;
	}
	*ret = txt;
	if (ret_len)
		*ret_len = len;
	return 0;
}

/* Parse a stored JSON value strictly. agd_json_parse accepts only an object or
 * an array at top level, so a scalar is wrapped in [ ] and unwrapped; a
 * crafted text that is not exactly one value fails the length-1 check or the
 * parser's trailing-garbage check. */
static int
json_from_text(const char *txt, size_t len, json_t **ret)
{
	cleanup_free char *wrapped = NULL;
	json_t *v;
	size_t i = 0;

	if (!txt || len > STORE_VALUE_MAX)
		return -EBADMSG;
	while (i < len && (txt[i] == ' ' || txt[i] == '\t' || txt[i] == '\n' || txt[i] == '\r'))
		i++;
	if (i < len && (txt[i] == '{' || txt[i] == '[')) {
		v = agd_json_parse(txt, len, STORE_JSON_MAX_DEPTH, NULL);
		if (!v)
			return -EBADMSG;
		*ret = v;
		return 0;
	}
	wrapped = malloc(len + 3);
	if (!wrapped)
		return -ENOMEM;
	wrapped[0] = '[';
	memcpy(wrapped + 1, txt, len);
	wrapped[len + 1] = ']';
	wrapped[len + 2] = '\0';
	cleanup_json json_t *arr = agd_json_parse(wrapped, len + 2, STORE_JSON_MAX_DEPTH + 1, NULL);
	if (!json_is_array(arr) || json_array_size(arr) != 1)
		return -EBADMSG;
	*ret = json_incref(json_array_get(arr, 0));
	return 0;
}

static int
col_json(sqlite3_stmt *st, int col, json_t **ret)
{
	if (sqlite3_column_type(st, col) != SQLITE_TEXT)
		return -EBADMSG;
	const char *txt = (const char *)sqlite3_column_text(st, col);
	if (!txt)
		return -ENOMEM;
	return json_from_text(txt, (size_t)sqlite3_column_bytes(st, col), ret);
}

static int
col_int64(sqlite3_stmt *st, int col, int64_t min, int64_t max, int64_t *ret)
{
	int64_t v;

	if (sqlite3_column_type(st, col) != SQLITE_INTEGER)
		return -EBADMSG;
	v = sqlite3_column_int64(st, col);
	if (v < min || v > max)
		return -EBADMSG;
	*ret = v;
	return 0;
}

static int
col_int(sqlite3_stmt *st, int col, int min, int max, int *ret)
{
	int64_t v;
	int r = col_int64(st, col, min, max, &v);

	if (r < 0)
		return r;
	*ret = (int)v;
	return 0;
}

/* A text column as a C string with no embedded NUL, at most max bytes. */
static int
col_text(sqlite3_stmt *st, int col, size_t max, const char **ret, size_t *ret_len)
{
	const char *txt;
	size_t len;

	if (sqlite3_column_type(st, col) != SQLITE_TEXT)
		return -EBADMSG;
	txt = (const char *)sqlite3_column_text(st, col);
	if (!txt)
		return -ENOMEM;
	len = (size_t)sqlite3_column_bytes(st, col);
	if (len > max || strlen(txt) != len)
		return -EBADMSG;
	*ret = txt;
	if (ret_len)
		*ret_len = len;
	return 0;
}

static int
col_strdup(sqlite3_stmt *st, int col, size_t max, bool (*check)(const char *), char **ret)
{
	const char *txt;
	char *copy;
	int r = col_text(st, col, max, &txt, NULL);

	if (r < 0)
		return r;
	if (check && !check(txt))
		return -EBADMSG;
	copy = strdup(txt);
	if (!copy)
		return -ENOMEM;
	*ret = copy;
	return 0;
}

static bool
check_name(const char *v)
{
	return valid_name(v, true);
}

static bool
check_tool(const char *v)
{
	return valid_name(v, false);
}

/* ---- open / close ---- */

static int
exec_pragma(sqlite3 *db, const char *sql, const char *expect)
{
	cleanup_finalize sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

	if (rc != SQLITE_OK)
		return map_rc(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW && expect) {
		const char *v = (const char *)sqlite3_column_text(st, 0);
		if (!v || strcasecmp(v, expect) != 0)
			return -EIO;
	} else if (rc != SQLITE_ROW && rc != SQLITE_DONE) {
		return map_rc(rc);
	}
	return 0;
}

/* WAL mode. Switching a new file to it takes an exclusive lock that SQLite
 * does not wait for when another connection holds a shared one: two
 * processes opening a new store at once (a daemon and `agentd show`, two
 * runs) would see one of them refused at once. It waits as the busy
 * timeout would. */
static int
wal_mode(sqlite3 *db)
{
	int r, waited_ms = 0;

	while ((r = exec_pragma(db, "PRAGMA journal_mode = WAL", "wal")) == -EBUSY &&
	       waited_ms < BUSY_TIMEOUT_MS) {
		sqlite3_sleep(2);
		waited_ms += 2;
	}
	return r;
}

static int
set_pragma_int(sqlite3 *db, const char *name, int v)
{
	char sql[96];

	snprintf(sql, sizeof(sql), "PRAGMA %s = %d", name, v);
	return exec_pragma(db, sql, NULL);
}

/* The file's page size, or SQLite's default if it cannot be read. */
static int
page_size(sqlite3 *db)
{
	cleanup_finalize sqlite3_stmt *st = NULL;
	int v = 0;

	if (sqlite3_prepare_v2(db, "PRAGMA page_size", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	return v >= 512 && v <= 65536 ? v : 4096;
}

static int
migrate(sqlite3 *db)
{
	cleanup_finalize sqlite3_stmt *st = NULL;
	int rc, r, version;
	char sql[64];

	/* A current file needs no write lock: a reader (agentd show, ls) never
	 * waits for a writer. Otherwise the version is read again under it. */
	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW &&
	    sqlite3_column_int(st, 0) == SCHEMA_VERSION)
		return 0;
	sqlite3_finalize(steal_ptr(&st));
	rc = sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return map_rc(rc);
	rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
	if (rc != SQLITE_OK || sqlite3_step(st) != SQLITE_ROW) {
		r = map_rc(rc == SQLITE_OK ? sqlite3_errcode(db) : rc);
		goto fail;
	}
	version = sqlite3_column_int(st, 0);
	sqlite3_finalize(steal_ptr(&st));
	/* A newer agentd wrote this file: refuse rather than misread it. */
	if (version < 0 || version > SCHEMA_VERSION) {
		r = -EPROTONOSUPPORT;
		goto fail;
	}
	for (int v = version; v < SCHEMA_VERSION; v++) {
		r = migrations[v](db);
		if (r < 0)
			goto fail;
	}
	if (version == 0) { /* a new file */
		rc = sqlite3_exec(db, "UPDATE text_digest SET alg = 'blake3'", NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			r = map_rc(rc);
			goto fail;
		}
	}
	if (version != SCHEMA_VERSION) {
		snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
		rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
		if (rc != SQLITE_OK) {
			r = map_rc(rc);
			goto fail;
		}
	}
	rc = sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		r = map_rc(rc);
		goto fail;
	}
	return 0;
fail:
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

/* Create the file ourselves so it is 0600 from birth (SQLite would use 0644
 * less umask); the -wal and -shm files inherit the database file's mode. */
static int
precreate(const char *path)
{
	cleanup_close int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	struct stat st;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return 0;
}

/* Whether the database has a WAL with something in it before this open:
 * one a crash left, or another process's. SQLite removes it at the last
 * clean close. 1 or 0, or -errno. */
static int
wal_found(const char *path)
{
	char wal[PATH_MAX];
	struct stat st;

	if ((size_t)snprintf(wal, sizeof(wal), "%s-wal", path) >= sizeof(wal))
		return -ENAMETOOLONG;
	if (stat(wal, &st) == 0)
		return st.st_size > 0;
	return errno == ENOENT ? 0 : -errno;
}

/* The digest the file's texts are under: its one text_digest row. */
static int
digest_read(sqlite3 *db, enum agd_digest *ret)
{
	cleanup_finalize sqlite3_stmt *st = NULL;
	const char *txt;
	size_t len;
	int rc = sqlite3_prepare_v2(db, "SELECT alg FROM text_digest", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return rc == SQLITE_ERROR ? -EBADMSG : map_rc(rc);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return rc == SQLITE_DONE ? -EBADMSG : map_rc(rc);
	int r = col_text(st, 0, 16, &txt, &len);
	if (r < 0)
		return r;
	int d = agd_digest_from_name(txt);
	if (d < 0 || sqlite3_step(st) != SQLITE_DONE)
		return -EBADMSG;
	*ret = (enum agd_digest)d;
	return 0;
}

/* The payload file's id as the database records it: 0, -ENOENT if none. */
static int
payload_id(sqlite3 *db, char out[STORE_PAYLOAD_ID])
{
	cleanup_finalize sqlite3_stmt *st = NULL;
	const char *txt;
	size_t len;
	int rc = sqlite3_prepare_v2(db, "SELECT id FROM payload_file", -1, &st, NULL);

	if (rc != SQLITE_OK)
		return map_rc(rc);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return map_rc(rc);
	int r = col_text(st, 0, STORE_PAYLOAD_ID - 1, &txt, &len);
	if (r < 0)
		return r;
	if (len != STORE_PAYLOAD_ID - 1 || strspn(txt, "0123456789abcdef") != len)
		return -EBADMSG;
	memcpy(out, txt, len + 1);
	return 0;
}

/* Open the payload file that the database names, making it first if it
 * names none (a new store, or a backup, whose texts are all in its rows). */
static int
payload_attach(struct store *s, const char *path)
{
	char ppath[PATH_MAX], id[STORE_PAYLOAD_ID];
	struct stat st;
	int r;

	if ((size_t)snprintf(ppath, sizeof(ppath), "%s-payloads", path) >= sizeof(ppath))
		return -ENAMETOOLONG;
	r = payload_id(s->db, id);
	if (r == -ENOENT) {
		if (stat(path, &st) < 0)
			return -errno;
		if (sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
			return map_rc(sqlite3_extended_errcode(s->db));
		r = payload_id(s->db, id);
		if (r == -ENOENT) {
			cleanup_finalize sqlite3_stmt *ins = NULL;
			int rc = SQLITE_OK;

			r = store_payload_create(ppath, &st, id);
			if (r == 0)
				rc = sqlite3_prepare_v2(s->db,
							"INSERT INTO payload_file(id) VALUES (?1)",
							-1, &ins, NULL);
			if (r == 0 && rc == SQLITE_OK) {
				sqlite3_bind_text(ins, 1, id, -1, SQLITE_STATIC);
				rc = sqlite3_step(ins);
			}
			if (r == 0 && rc != SQLITE_DONE)
				r = map_rc(rc);
		}
		if (r == 0 && sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			r = map_rc(sqlite3_extended_errcode(s->db));
		if (r < 0) {
			sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
			return r;
		}
	}
	if (r < 0)
		return r;
	return store_payload_open(ppath, id, &s->pfd);
}

int
store_open(const char *path, enum store_durability d, struct store **ret)
{
	cleanup_free struct store *s = NULL;
	sqlite3 *db = NULL;
	int rc, r;

	if (!path || !ret || (d != STORE_DURABILITY_PROCESS && d != STORE_DURABILITY_POWER))
		return -EINVAL;
	r = precreate(path);
	if (r < 0)
		return r;
	r = wal_found(path);
	if (r < 0)
		return r;
	bool wal = r;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	rc = sqlite3_open_v2(path, &db,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX |
				 SQLITE_OPEN_NOFOLLOW | SQLITE_OPEN_EXRESCODE,
			     store_sqlite_vfs());
	if (rc != SQLITE_OK) {
		sqlite3_close(db);
		return map_rc(rc);
	}
	s->db = db;
	s->durability = d;
	s->pfd = -1;
	s->pend = -1;
	s->hfd = -1;
	if ((size_t)snprintf(s->hpath, sizeof(s->hpath), "%s-held", path) >= sizeof(s->hpath)) {
		sqlite3_close(db);
		return -ENAMETOOLONG;
	}
	sqlite3_extended_result_codes(db, 1);
	sqlite3_busy_timeout(db, BUSY_TIMEOUT_MS);
	/* The file is untrusted: no schema-defined functions with side effects,
	 * no writable_schema tricks. */
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);

	/* A journal commit writes one WAL frame per B-tree page it touches, and
	 * a call's row and index entries are small: 1 KiB pages write about half
	 * the bytes of 2 KiB ones for calls up to a few KB (docs/decisions.md;
	 * only a new file takes it, an existing one keeps its size).
	 * Checkpoints, which copy them to the database and fsync, run beside
	 * the writer (sqlite_ckpt.c, docs/performance.md). */
	r = set_pragma_int(db, "page_size", PAGE_SIZE);
	if (r == 0)
		r = wal_mode(db);
	if (r == 0)
		r = exec_pragma(db,
				d == STORE_DURABILITY_POWER ? "PRAGMA synchronous = FULL"
							    : "PRAGMA synchronous = NORMAL",
				NULL);
	if (r == 0)
		r = migrate(db);
	if (r == 0)
		r = digest_read(db, &s->digest);
	if (r == 0)
		r = payload_attach(s, path);
	if (r == 0)
		r = store_ckpt_attach(db, d, page_size(db), s->pfd, wal, &s->ckpt);
	for (int i = 0; r == 0 && i < ST__MAX; i++) {
		rc = sqlite3_prepare_v3(db, stmt_sql[i], -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[i],
					NULL);
		/* A statement that does not fit the file's schema: not our file. */
		if (rc != SQLITE_OK)
			r = rc == SQLITE_ERROR ? -EBADMSG : map_rc(rc);
	}
	if (r < 0) {
		store_close(steal_ptr(&s));
		return r;
	}
	held_recover(s);
	*ret = steal_ptr(&s);
	return 0;
}

enum agd_digest
store_digest(const struct store *s)
{
	return s->digest;
}

struct store *
store_close(struct store *s)
{
	if (!s)
		return NULL;
	store_sqlite_unhold(s); /* answered outcomes: committed, not rolled back */
	store_batch_abort(s);
	tails_clear(s);
	for (int i = 0; i < ST__MAX; i++)
		sqlite3_finalize(s->stmt[i]);
	s->ix = store_ix_free(s->ix);
	s->ckpt = store_ckpt_free(s->ckpt);
	/* The last connection's close copies the WAL into the database: the
	 * texts its rows name go to the disk first (as before any checkpoint). */
	if (s->pfd >= 0) {
		fdatasync(s->pfd);
		close(s->pfd);
	}
	sqlite3_close(s->db);
	if (s->hfd >= 0)
		close(s->hfd);
	free(s->hbuf);
	free(s);
	return NULL;
}

/* ---- runs ---- */

void
store_run_clear(struct store_run *r)
{
	if (!r)
		return;
	free(r->id);
	free(r->status);
	json_decref(r->spec);
	free(r->reason);
	memset(r, 0, sizeof(*r));
}

int
store_run_create(struct store *s, const char *id, const json_t *spec)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	char *txt = NULL;
	int r;

	if (!s || !valid_id(id))
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	r = json_to_text(spec ? spec : json_null(), &txt, NULL);
	if (r < 0)
		return r;
	st = s->stmt[ST_RUN_INSERT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, txt, -1, free);
	sqlite3_bind_int64(st, 3, agd_wall_ms());
	sqlite3_bind_int64(st, 4, store_sqlite_spec_owner(spec));
	/* Journal rows copy the run's owner: a tail read before the run existed
	 * holds none. */
	tail_forget(s, id);
	return store_sqlite_step_done(st);
}

/* Read and validate one runs row (columns as in ST_RUN_GET). */
static int
read_run(sqlite3_stmt *st, struct store_run *ret)
{
	struct store_run run = {0};
	int r;

	r = col_strdup(st, 0, STORE_ID_MAX, valid_id, &run.id);
	if (r == 0)
		r = col_strdup(st, 1, STORE_NAME_MAX, valid_run_status, &run.status);
	if (r == 0)
		r = col_json(st, 2, &run.spec);
	if (r == 0)
		r = col_int(st, 3, 0, INT_MAX, &run.attempts);
	if (r == 0)
		r = col_int(st, 4, INT_MIN, INT_MAX, &run.exit_code);
	if (r == 0)
		r = col_strdup(st, 5, STORE_REASON_MAX, NULL, &run.reason);
	if (r == 0)
		r = col_int64(st, 6, 0, INT64_MAX, &run.created_ms);
	if (r == 0)
		r = col_int64(st, 7, 0, INT64_MAX, &run.updated_ms);
	if (r < 0) {
		store_run_clear(&run);
		return r;
	}
	*ret = run;
	return 0;
}

int
store_run_get(struct store *s, const char *id, struct store_run *ret)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	struct store_run run;
	int rc, r;

	if (!s || !ret || !valid_id(id))
		return -EINVAL;
	st = s->stmt[ST_RUN_GET];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return map_rc(rc);
	r = read_run(st, &run);
	if (r < 0)
		return r;
	/* The row must be the one asked for (a collation trick must not alias). */
	if (strcmp(run.id, id) != 0) {
		store_run_clear(&run);
		return -EBADMSG;
	}
	*ret = run;
	return 0;
}

int
store_run_set_status(struct store *s, const char *id, const char *status, int exit_code,
		     const char *reason)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	size_t len;

	if (!reason)
		reason = "";
	if (!s || !valid_id(id) || !valid_run_status(status))
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	/* A reason is informational: an over-long one is cut (on a UTF-8
	 * character boundary) rather than failing the status change. */
	len = strnlen(reason, STORE_REASON_MAX + 1);
	if (len > STORE_REASON_MAX) {
		len = STORE_REASON_MAX;
		while (len > 0 && ((unsigned char)reason[len] & 0xc0) == 0x80)
			len--;
	}
	st = s->stmt[ST_RUN_SET_STATUS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, status, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 3, exit_code);
	sqlite3_bind_text(st, 4, reason, (int)len, SQLITE_STATIC);
	sqlite3_bind_int64(st, 5, agd_wall_ms());
	r = store_sqlite_step_done(st);
	if (r < 0)
		return r;
	return sqlite3_changes(s->db) == 1 ? 0 : -ENOENT;
}

int
store_run_set_attempts(struct store *s, const char *id, int attempts)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int r;

	if (!s || !valid_id(id) || attempts < 0)
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	st = s->stmt[ST_RUN_SET_ATTEMPTS];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 2, attempts);
	sqlite3_bind_int64(st, 3, agd_wall_ms());
	r = store_sqlite_step_done(st);
	if (r < 0)
		return r;
	return sqlite3_changes(s->db) == 1 ? 0 : -ENOENT;
}

int
store_run_next_attempt(struct store *s, const char *id, int *ret_attempt)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int64_t v;
	int rc, r;

	if (!s || !ret_attempt || !valid_id(id))
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	st = s->stmt[ST_RUN_NEXT_ATTEMPT];
	sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, agd_wall_ms());
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return map_rc(rc);
	r = col_int64(st, 0, 1, INT_MAX, &v);
	/* Step to the end so the autocommit transaction commits here, and a
	 * commit failure is reported rather than lost in a reset. */
	rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		return map_rc(rc);
	if (r < 0)
		return r;
	*ret_attempt = (int)v;
	return 0;
}

int
store_run_foreach(struct store *s, int (*fn)(const struct store_run *r, void *ud), void *ud)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc, r = 0;

	if (!s || !fn)
		return -EINVAL;
	/* The cached statement cannot be stepped twice at once. */
	if (s->iterating)
		return -EBUSY;
	st = s->stmt[ST_RUN_LIST];
	s->iterating = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_run run;
		r = read_run(st, &run);
		if (r < 0)
			break;
		r = fn(&run, ud);
		store_run_clear(&run);
		if (r != 0)
			break;
	}
	s->iterating = false;
	if (r != 0)
		return r;
	return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

/* ---- journal ---- */

/* The hash chain (docs/store.md). Every field is length-prefixed so no two
 * different rows encode to the same bytes. */
static void
chain_bytes(struct agd_sha256 *h, const void *p, size_t len)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
	agd_sha256_update(h, b, sizeof(b));
	agd_sha256_update(h, p, len);
}

static void
chain_str(struct agd_sha256 *h, const char *v)
{
	chain_bytes(h, v, strlen(v));
}

static void
chain_int(struct agd_sha256 *h, int64_t v)
{
	uint8_t b[8];

	for (int i = 0; i < 8; i++)
		b[i] = (uint8_t)((uint64_t)v >> (56 - 8 * i));
	chain_bytes(h, b, sizeof(b));
}

static void
hash_hex(struct agd_sha256 *h, char out[AGD_SHA256_HEX])
{
	static const char digits[] = "0123456789abcdef";
	uint8_t d[AGD_SHA256_LEN];

	agd_sha256_final(h, d);
	for (int i = 0; i < AGD_SHA256_LEN; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[AGD_SHA256_HEX - 1] = '\0';
}

/* link(row) = H(link of the row inserted before it in this run, or "" for the
 * first; the row's immutable fields). */
static void
journal_link(const char *prev_link, const char *run, int64_t ord, const struct store_call *c,
	     const char *args_hash, char out[AGD_SHA256_HEX])
{
	struct agd_sha256 h;

	agd_sha256_init(&h);
	chain_str(&h, "agentd.journal.link.v1");
	chain_str(&h, prev_link);
	chain_str(&h, run);
	chain_int(&h, c->seq);
	chain_int(&h, ord);
	chain_str(&h, c->tool);
	chain_str(&h, args_hash);
	chain_int(&h, c->attempt);
	chain_str(&h, c->decision ? c->decision : "");
	chain_str(&h, c->rule ? c->rule : "");
	chain_int(&h, c->started_ms);
	hash_hex(&h, out);
}

/* chain(row) = H(link(row), the outcome's finish ordinal; the outcome:
 * status, result bytes, finished_ms). A row compacted by store_retain is
 * sealed under its own tag over the tombstone that replaced its result (the
 * result's hash and sizes). fin 0 gives the v1 seal, without the ordinal,
 * which outcomes written before it was sealed keep. In a BLAKE3 store (v3)
 * the result enters as its BLAKE3 digest, and there is no v1 seal
 * (docs/store.md). */
static void
journal_seal_as(enum agd_digest d, bool compacted, const char *link, int64_t fin, int status,
		const char *result, size_t result_len, int64_t finished_ms,
		char out[AGD_SHA256_HEX])
{
	static const char *const tags[2][3] = {
	    {"agentd.journal.chain.v1", "agentd.journal.chain.v2", "agentd.journal.chain.v3"},
	    {"agentd.journal.compacted.v1", "agentd.journal.compacted.v2",
	     "agentd.journal.compacted.v3"},
	};
	bool b3 = d == AGD_DIGEST_BLAKE3;
	struct agd_sha256 h;

	agd_sha256_init(&h);
	chain_str(&h, tags[compacted][b3 ? 2 : fin != 0]);
	chain_str(&h, link);
	if (fin || b3)
		chain_int(&h, fin);
	chain_int(&h, status);
	chain_int(&h, result != NULL);
	if (result && b3) {
		uint8_t rd[AGD_BLAKE3_LEN];

		agd_blake3(result, result_len, rd);
		chain_bytes(&h, rd, sizeof(rd));
	} else if (result) {
		chain_bytes(&h, result, result_len);
	}
	chain_int(&h, finished_ms);
	hash_hex(&h, out);
}

void
store_call_clear(struct store_call *c)
{
	if (!c)
		return;
	free(c->tool);
	json_decref(c->args);
	json_decref(c->result);
	free(c->decision);
	free(c->rule);
	free(c->args_text);
	free(c->result_text);
	memset(c, 0, sizeof(*c));
}

void
store_calls_free(struct store_call *calls, size_t n)
{
	if (!calls)
		return;
	for (size_t i = 0; i < n; i++)
		store_call_clear(&calls[i]);
	free(calls);
}

static bool
valid_status(int64_t v)
{
	return v >= STORE_CALL_INTENT && v <= STORE_CALL_DENIED;
}

static int tombstone_text(enum agd_digest d, const struct store_call *c, char **ret);

/* The link of a run's row with ordinal `ord`. No index is kept on ordinals
 * (docs/store.md): the row whose seq equals it is tried first, which is the
 * row except where a pure call was committed after a later call's intent;
 * only then are the run's rows scanned. */
static int
link_at(struct store *s, const char *run, int64_t ord, char out[AGD_SHA256_HEX])
{
	const char *txt;
	size_t len;
	int rc, r;

	{
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_ROW_LINK];
		int64_t got;

		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, ord);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW && (r = col_int64(st, 0, INT64_MIN, INT64_MAX, &got)) < 0)
			return r;
		if (rc == SQLITE_ROW && got == ord) {
			r = col_text(st, 1, AGD_SHA256_HEX, &txt, &len);
			if (r == 0 && !valid_hex64(txt, len))
				r = -EBADMSG;
			if (r == 0)
				memcpy(out, txt, len + 1);
			return r;
		}
		if (rc != SQLITE_ROW && rc != SQLITE_DONE)
			return map_rc(rc);
	}
	cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_LINK_AT];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, ord);
	rc = sqlite3_step(st);
	r = rc == SQLITE_ROW	? col_text(st, 0, AGD_SHA256_HEX, &txt, &len)
	    : rc == SQLITE_DONE ? -EBADMSG
				: map_rc(rc);
	if (r == 0 && !valid_hex64(txt, len))
		r = -EBADMSG;
	if (r == 0)
		memcpy(out, txt, len + 1);
	return r;
}

/* A run's tail, from the cache or else from the file (inside the write
 * transaction, so it stays current until the commit). */
static int
journal_tail(struct store *s, const char *run, struct tail *ret)
{
	struct tail *t = *tail_slot(s, run);
	int rc, r;

	if (t) {
		memcpy(ret, t, sizeof(*t));
		return 0;
	}
	*ret = (struct tail){.owner = -1};
	{
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_TAIL];

		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		rc = sqlite3_step(st);
		if (rc != SQLITE_ROW)
			return map_rc(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
		r = 0;
		if (sqlite3_column_type(st, 0) != SQLITE_NULL)
			r = col_int64(st, 0, 1, INT64_MAX - 1, &ret->ord);
		if (r == 0)
			r = col_int64(st, 1, 0, INT64_MAX - 1, &ret->fins);
		if (r == 0 && sqlite3_column_type(st, 2) != SQLITE_NULL)
			r = col_int64(st, 2, INT64_MIN, INT64_MAX, &ret->owner);
		if (r < 0)
			return r;
	}
	return ret->ord ? link_at(s, run, ret->ord, ret->link) : 0;
}

/* A row's texts (its args, its result): with durability process, each of
 * STORE_PAYLOAD_MIN bytes or more is appended to the payload file, all of a
 * row's in one write, and its reference is bound in its place; a shorter
 * one, and every one with durability power, is bound as text. (Power fsyncs
 * each commit: the texts in the WAL cost that one fsync, apart they would
 * cost a second.) */
struct row_texts {
	const char *txt[STORE_PAYLOAD_IOV];
	size_t len[STORE_PAYLOAD_IOV];
	unsigned char ref[STORE_PAYLOAD_IOV][STORE_PAYLOAD_REF];
	bool apart[STORE_PAYLOAD_IOV];
};

static int
texts_put(struct store *s, struct row_texts *t)
{
	struct iovec iov[STORE_PAYLOAD_IOV];
	unsigned char refs[STORE_PAYLOAD_IOV][STORE_PAYLOAD_REF];
	int n = 0, r;

	for (int i = 0; i < STORE_PAYLOAD_IOV; i++) {
		t->apart[i] = t->txt[i] && t->len[i] >= STORE_PAYLOAD_MIN &&
			      s->durability == STORE_DURABILITY_PROCESS;
		if (t->apart[i])
			iov[n++] = (struct iovec){(void *)t->txt[i], t->len[i]};
	}
	if (!n)
		return 0;
	r = store_payload_append(s->pfd, &s->pend, iov, n, refs);
	if (r < 0)
		return r;
	for (int i = 0, j = 0; i < STORE_PAYLOAD_IOV; i++)
		if (t->apart[i])
			memcpy(t->ref[i], refs[j++], STORE_PAYLOAD_REF);
	return 0;
}

/* Bind text i of t (which outlives the statement's step). */
static void
bind_row_text(sqlite3_stmt *st, int idx, const struct row_texts *t, int i)
{
	if (t->apart[i])
		sqlite3_bind_blob(st, idx, t->ref[i], STORE_PAYLOAD_REF, SQLITE_STATIC);
	else
		sqlite3_bind_text(st, idx, t->txt[i], (int)t->len[i], SQLITE_STATIC);
}

/* Seal and insert the outcome of the row t->rowid (whose link is t->link)
 * as the run's outcome number t->fins + 1, then count it in *t. -EEXIST if
 * the row has one already. */
static int
outcome_insert(struct store *s, struct tail *t, bool compacted, enum store_call_status status,
	       const struct row_texts *texts, int i, int64_t finished_ms)
{
	const char *result_txt = texts->txt[i];
	size_t len = texts->len[i];
	cleanup_stmt sqlite3_stmt *st = s->stmt[ST_O_INSERT];
	char chain[AGD_SHA256_HEX];
	int r;

	journal_seal_as(s->digest, compacted, t->link, t->fins + 1, status, result_txt, len,
			finished_ms, chain);
	sqlite3_bind_int64(st, 1, t->rowid);
	sqlite3_bind_int64(st, 2, t->fins + 1);
	sqlite3_bind_int(st, 3, status);
	bind_row_text(st, 4, texts, i);
	sqlite3_bind_int64(st, 5, finished_ms);
	sqlite3_bind_text(st, 6, chain, -1, SQLITE_STATIC);
	r = store_sqlite_step_done(st);
	if (r == 0)
		t->fins++;
	return r;
}

static int
journal_insert(struct store *s, const char *run, const struct store_call *c,
	       enum store_call_status status, const json_t *result, const char *result_text,
	       size_t result_len, int64_t finished_ms)
{
	cleanup_tx struct store_tx tx = {0};
	cleanup_free char *args_own = NULL;
	cleanup_free char *result_own = NULL;
	const char *args, *result_txt = NULL;
	size_t args_len, result_txt_len = 0;
	char args_hash[AGD_SHA256_HEX], link[AGD_SHA256_HEX];
	struct tail tail;
	int r;

	if (!s || !c || !valid_id(run) || c->seq <= 0 || !valid_name(c->tool, false) ||
	    !valid_name(c->decision ? c->decision : "", true) ||
	    !valid_name(c->rule ? c->rule : "", true) || c->attempt < 0 || c->started_ms < 0 ||
	    finished_ms < 0)
		return -EINVAL;
	if (c->compacted) {
		/* A compacted row copied (a fork): its hash and tombstone stand
		 * for the args and result it no longer has. */
		if (status == STORE_CALL_INTENT ||
		    !valid_hex64(c->args_hash, strlen(c->args_hash)) ||
		    !valid_hex64(c->result_hash, strlen(c->result_hash)))
			return -EINVAL;
		args = "";
		args_len = 0;
		memcpy(args_hash, c->args_hash, sizeof(args_hash));
		r = tombstone_text(s->digest, c, &result_own);
		if (r < 0)
			return r;
		result_txt = result_own;
		result_txt_len = strlen(result_own);
		goto have_texts;
	}
	if (c->args_text) {
		/* The caller's canonical text (store_json_text(c->args)) and its
		 * length. Never empty: that marks a compacted row. */
		args_len = c->args_len;
		if (args_len == 0 || c->args_text[args_len] != '\0')
			return -EINVAL;
		if (args_len > STORE_VALUE_MAX)
			return -E2BIG;
		args = c->args_text;
	} else {
		r = json_to_text(c->args, &args_own, &args_len);
		if (r < 0)
			return r;
		args = args_own;
	}
	if (c->args_text && c->args_hash[0]) {
		/* The caller hashed this very text (store.h): not hashed twice.
		 * A wrong hash is not trusted later: every load hashes the
		 * stored text again and reports the row as corrupt. */
		if (!valid_hex64(c->args_hash, strnlen(c->args_hash, AGD_SHA256_HEX)))
			return -EINVAL;
		memcpy(args_hash, c->args_hash, sizeof(args_hash));
	} else {
		agd_digest_hex(s->digest, args, args_len, args_hash);
		/* A caller-supplied hash must describe these args. */
		if (c->args_hash[0] && strcmp(c->args_hash, args_hash) != 0)
			return -EINVAL;
	}
	if (status != STORE_CALL_INTENT && result_text) {
		if (result_len == 0 || result_text[result_len] != '\0')
			return -EINVAL;
		if (result_len > STORE_VALUE_MAX)
			return -E2BIG;
		result_txt = result_text;
		result_txt_len = result_len;
	} else if (status != STORE_CALL_INTENT) {
		r = json_to_text(result ? result : json_null(), &result_own, &result_txt_len);
		if (r < 0)
			return r;
		result_txt = result_own;
	}

have_texts:
	r = store_sqlite_tx_join(s, &tx);
	if (r < 0)
		return r;
	r = journal_tail(s, run, &tail);
	if (r < 0)
		return r;
	tail.ord++;
	journal_link(tail.link, run, tail.ord, c, args_hash, link);
	/* Inside a group commit the row and its outcome must go in together or
	 * not at all (an intent alone is one statement: nothing to undo). */
	bool undo = tx.joined && status != STORE_CALL_INTENT;
	if (undo && (r = store_sqlite_step_done(s->stmt[ST_SAVEPOINT])) < 0)
		return r;
	struct row_texts texts = {.txt = {args, result_txt}, .len = {args_len, result_txt_len}};
	r = texts_put(s, &texts);
	if (r == 0) {
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_INSERT];

		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, c->seq);
		sqlite3_bind_int64(st, 3, tail.ord);
		sqlite3_bind_text(st, 4, c->tool, -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 5, args_hash, -1, SQLITE_STATIC);
		bind_row_text(st, 6, &texts, 0);
		sqlite3_bind_int(st, 7, c->attempt);
		sqlite3_bind_text(st, 8, c->decision ? c->decision : "", -1, SQLITE_STATIC);
		sqlite3_bind_text(st, 9, c->rule ? c->rule : "", -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 10, c->started_ms);
		sqlite3_bind_text(st, 11, link, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 12, tail.owner);
		r = store_sqlite_step_done(st);
	}
	tail.seq = c->seq;
	tail.rowid = sqlite3_last_insert_rowid(s->db);
	memcpy(tail.link, link, sizeof(link));
	if (r == 0 && status != STORE_CALL_INTENT) {
		r = outcome_insert(s, &tail, c->compacted, status, &texts, 1, finished_ms);
		if (r == -EEXIST)
			r = -EBADMSG; /* an outcome left without its row */
	}
	if (undo) {
		if (r < 0)
			store_sqlite_step_done(s->stmt[ST_ROLLBACK_TO]);
		int rr = store_sqlite_step_done(s->stmt[ST_RELEASE]);
		if (r == 0)
			r = rr;
	}
	if (r < 0)
		return r;
	/* Cached before the commit: a failed commit rolls back, which clears
	 * the cache. */
	tail_set(s, run, &tail);
	return store_sqlite_tx_commit(&tx);
}

int
store_journal_intent(struct store *s, const char *run, const struct store_call *c)
{
	return journal_insert(s, run, c, STORE_CALL_INTENT, NULL, NULL, 0, 0);
}

int
store_journal_record(struct store *s, const char *run, const struct store_call *c)
{
	if (!c || c->status == STORE_CALL_INTENT || !valid_status(c->status))
		return -EINVAL;
	return journal_insert(s, run, c, c->status, c->result, c->result_text, c->result_len,
			      c->finished_ms);
}

int
store_json_text(const json_t *v, char **ret, size_t *ret_len)
{
	return json_to_text(v, ret, ret_len);
}

int
store_journal_finish(struct store *s, const char *run, int64_t seq, enum store_call_status status,
		     const json_t *result, int64_t finished_ms)
{
	cleanup_free char *result_txt = NULL;
	size_t len;
	int r;

	if (!s || !valid_id(run) || seq <= 0 || status == STORE_CALL_INTENT ||
	    !valid_status(status) || finished_ms < 0)
		return -EINVAL;
	r = json_to_text(result ? result : json_null(), &result_txt, &len);
	if (r < 0)
		return r;
	return store_journal_finish_text(s, run, seq, status, result_txt, len, finished_ms);
}

/* ---- held outcomes (docs/store.md, "Held outcomes") ----
 * store_batch_hold ends a group commit's round without its commit: the
 * outcomes the batch finished are written as records to DB-held first, so
 * an answer given before the commit survives the process, and the batch
 * goes on into the next round, whose commit carries both. The write lock
 * stays with this connection meanwhile, so no other writer appends to the
 * files or reads the records back while they are live. Any other write
 * commits the held batch first (store_sqlite_unhold). The next open finishes
 * every outcome a record holds whose intent is in the journal, has the
 * record's link and no outcome yet, the usual way (store_journal_finish_text),
 * so the row is the one the commit would have written.
 *
 * The file: a header (magic, body length, a check of the
 * body), then the records, each a fixed part (status, kind: the text itself
 * or its payload-file reference, the run id's length, the data's length,
 * seq, finish time, the intent's link) then the run id and the data.
 * Rewritten from offset 0 at each hold; stale records (committed since)
 * are harmless: their outcomes exist. */
#define HELD_HDR   24
#define HELD_FIXED 88
#define HELD_MAX   (STORE_VALUE_MAX + (64u << 10))
static const char held_magic[8] = {'a', 'g', 'd', 'h', 'e', 'l', 'd', '1'};

static uint64_t
held_check(const char *p, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < n; i++)
		h = (h ^ (unsigned char)p[i]) * 0x100000001b3ULL;
	return h;
}

static void
put_le(char *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (char)(v >> (8 * i));
}

static uint64_t
get_le(const char *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = v << 8 | (unsigned char)p[i];
	return v;
}

/* Note the outcome just finished in the open batch: text i of t, for the
 * row whose link is given. False if it cannot be kept (no memory, too
 * large): the round then commits instead of holding. */
static bool
held_note(struct store *s, const char *run, int64_t seq, const char *link,
	  enum store_call_status status, int64_t finished_ms, const struct row_texts *t, int i)
{
	size_t rl = strlen(run), dl = t->apart[i] ? STORE_PAYLOAD_REF : t->len[i];
	size_t need = s->hlen + HELD_FIXED + rl + dl;

	if (s->durability != STORE_DURABILITY_PROCESS || s->hold_off || rl > UINT16_MAX ||
	    need > HELD_MAX)
		return false;
	if (need > s->hcap) {
		size_t cap = s->hcap ? s->hcap : 4096;
		while (cap < need)
			cap *= 2;
		char *b = realloc(s->hbuf, cap);
		if (!b)
			return false;
		s->hbuf = b;
		s->hcap = cap;
	}
	char *p = s->hbuf + s->hlen;
	p[0] = (char)status;
	p[1] = (char)t->apart[i];
	put_le(p + 2, rl, 2);
	put_le(p + 4, dl, 4);
	put_le(p + 8, (uint64_t)seq, 8);
	put_le(p + 16, (uint64_t)finished_ms, 8);
	memcpy(p + 24, link, 64);
	memcpy(p + HELD_FIXED, run, rl);
	memcpy(p + HELD_FIXED + rl, t->apart[i] ? (const char *)t->ref[i] : t->txt[i], dl);
	s->hlen = need;
	return true;
}

static int
held_file(struct store *s)
{
	struct stat st;

	if (s->hfd >= 0)
		return 0;
	s->hfd = open(s->hpath, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (s->hfd < 0)
		return -errno;
	/* Root making the store of another user's file: theirs, as the
	 * payload file. */
	const char *db = sqlite3_db_filename(s->db, "main");
	if (geteuid() == 0 && db && stat(db, &st) == 0 && fchown(s->hfd, st.st_uid, st.st_gid) < 0)
		return -errno;
	return 0;
}

int
store_batch_hold(struct store *s)
{
	if (!s || !s->batch || s->held)
		return -EINVAL;
	if (s->durability != STORE_DURABILITY_PROCESS || s->hold_off || s->hold_other || !s->hlen)
		return store_batch_commit(s);
	char hdr[HELD_HDR];
	memcpy(hdr, held_magic, 8);
	put_le(hdr + 8, s->hlen, 8);
	put_le(hdr + 16, held_check(s->hbuf, s->hlen), 8);
	struct iovec v[2] = {{hdr, sizeof(hdr)}, {s->hbuf, s->hlen}};
	ssize_t want = (ssize_t)(sizeof(hdr) + s->hlen), n = -1;
	if (held_file(s) == 0)
		while ((n = pwritev(s->hfd, v, 2, 0)) < 0 && errno == EINTR)
			;
	/* Not written whole: the round commits instead (a torn file fails its
	 * check, and its outcomes are committed now). */
	if (n != want)
		return store_batch_commit(s);
	s->hdirty = true;
	s->held = true;
	return 0;
}

bool
store_batch_held(const struct store *s)
{
	return s && s->held;
}

int
store_sqlite_unhold(struct store *s)
{
	return s->held ? store_batch_commit(s) : 0;
}

/* One record of the file read back: finished if it applies (see above). A
 * record that does not apply, or that is not sound, is passed over. */
static int
held_apply(struct store *s, const char *p, size_t rl, size_t dl)
{
	enum store_call_status status = (unsigned char)p[0];
	bool ref = p[1] != 0;
	int64_t seq = (int64_t)get_le(p + 8, 8), finished = (int64_t)get_le(p + 16, 8);
	char run[STORE_ID_MAX + 1], link[AGD_SHA256_HEX];
	cleanup_free char *txt = NULL, *canon = NULL;
	json_t *v = NULL;
	size_t len;
	int r;

	if (rl > STORE_ID_MAX)
		return 0;
	memcpy(run, p + HELD_FIXED, rl);
	run[rl] = '\0';
	memcpy(link, p + 24, 64);
	link[64] = '\0';
	if (!valid_id(run) || seq <= 0 || finished < 0 || !valid_hex64(link, 64))
		return 0;
	int64_t id = 0;
	{
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_ROW];
		const char *have;
		size_t hl;

		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, seq);
		if (sqlite3_step(st) != SQLITE_ROW || col_int64(st, 0, 1, INT64_MAX, &id) < 0 ||
		    col_text(st, 1, AGD_SHA256_HEX, &have, &hl) < 0 || hl != 64 ||
		    memcmp(have, link, 64) != 0)
			return 0; /* not the intent it was the outcome of */
	}
	/* Finished already (the usual case: a stale record): a read, so an
	 * open takes no write lock for it. */
	{
		cleanup_finalize sqlite3_stmt *st = NULL;

		if (sqlite3_prepare_v2(s->db, "SELECT 1 FROM outcomes WHERE id = ?1", -1, &st,
				       NULL) != SQLITE_OK)
			return 0;
		sqlite3_bind_int64(st, 1, id);
		if (sqlite3_step(st) != SQLITE_DONE)
			return 0;
	}
	if (ref) {
		struct store_payload_ref pr;
		if (store_payload_ref(p + HELD_FIXED + rl, (int)dl, STORE_VALUE_MAX, &pr) < 0 ||
		    store_payload_read(s->pfd, &pr, &txt) < 0)
			return 0;
		len = (size_t)pr.len;
	} else {
		txt = malloc(dl + 1);
		if (!txt)
			return -ENOMEM;
		memcpy(txt, p + HELD_FIXED + rl, dl);
		txt[dl] = '\0';
		len = dl;
	}
	/* Untrusted: a JSON value, in the canonical text it was stored as. */
	if (json_from_text(txt, len, &v) < 0)
		return 0;
	r = json_to_text(v, &canon, NULL);
	json_decref(v);
	if (r < 0 || strcmp(canon, txt) != 0)
		return 0;
	r = store_journal_finish_text(s, run, seq, status, txt, len, finished);
	return r == -EALREADY || r == -EINVAL || r == -ENOENT ? 0 : r;
}

/* Finish the outcomes of n bytes of records (see above). -errno if one of
 * them could not be written (the rest are not tried). */
static int
held_apply_all(struct store *s, const char *body, size_t n)
{
	for (size_t off = 0; off + HELD_FIXED <= n;) {
		const char *p = body + off;
		size_t rl = (size_t)get_le(p + 2, 2), dl = (size_t)get_le(p + 4, 4);
		if (rl == 0 || dl > n || off + HELD_FIXED + rl + dl > n)
			return 0;
		int r = held_apply(s, p, rl, dl);
		if (r < 0)
			return r;
		off += HELD_FIXED + rl + dl;
	}
	return 0;
}

/* A held batch was rolled back (its commit failed): its outcomes were
 * answered, so they are finished again at once, each in a commit of its
 * own. What cannot be (the disk is still full) stays in the side file,
 * which this connection then never writes again, for the next open. */
static void
held_redo(struct store *s)
{
	cleanup_free char *body = s->hbuf;
	size_t n = s->hlen;

	s->hbuf = NULL;
	s->hlen = s->hcap = 0;
	s->hdirty = false;
	if (held_apply_all(s, body, n) < 0)
		s->hold_off = true;
}

/* At open: finish what the file holds (see above). Best effort: a file
 * that cannot be read or checked leaves the journal as it is. */
static void
held_recover(struct store *s)
{
	char hdr[HELD_HDR];
	cleanup_free char *body = NULL;
	cleanup_close int fd = open(s->hpath, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || pread(fd, hdr, sizeof(hdr), 0) != (ssize_t)sizeof(hdr) ||
	    memcmp(hdr, held_magic, 8) != 0)
		return;
	size_t n = (size_t)get_le(hdr + 8, 8);
	if (n == 0 || n > HELD_MAX || !(body = malloc(n)) ||
	    pread(fd, body, n, HELD_HDR) != (ssize_t)n ||
	    held_check(body, n) != get_le(hdr + 16, 8))
		return;
	held_apply_all(s, body, n);
}

int
store_journal_finish_text(struct store *s, const char *run, int64_t seq,
			  enum store_call_status status, const char *result_txt, size_t len,
			  int64_t finished_ms)
{
	cleanup_tx struct store_tx tx = {0};
	struct tail tail;
	int rc, r;

	if (!s || !valid_id(run) || seq <= 0 || status == STORE_CALL_INTENT ||
	    !valid_status(status) || finished_ms < 0 || !result_txt || len == 0 ||
	    result_txt[len] != '\0')
		return -EINVAL;
	if (len > STORE_VALUE_MAX)
		return -E2BIG;

	r = store_sqlite_tx_join(s, &tx);
	if (r < 0)
		return r;
	r = journal_tail(s, run, &tail);
	if (r < 0)
		return r;
	/* The intent this connection inserted last for the run: its id and
	 * link are known. Any other is looked up. */
	struct tail row = tail;
	if (!(tail.seq == seq && tail.rowid)) {
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_ROW];
		const char *txt;
		size_t link_len;

		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, seq);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE)
			return -ENOENT;
		if (rc != SQLITE_ROW)
			return map_rc(rc);
		r = col_int64(st, 0, 1, INT64_MAX, &row.rowid);
		if (r == 0)
			r = col_text(st, 1, AGD_SHA256_HEX, &txt, &link_len);
		if (r < 0)
			return r;
		if (!valid_hex64(txt, link_len))
			return -EBADMSG;
		memcpy(row.link, txt, link_len + 1);
	}
	/* Never overwrite a recorded outcome: the outcome's key is its row. */
	struct row_texts texts = {.txt = {result_txt}, .len = {len}};
	r = texts_put(s, &texts);
	if (r == 0)
		r = outcome_insert(s, &row, false, status, &texts, 0, finished_ms);
	if (r < 0)
		return r == -EEXIST ? -EALREADY : r;
	if (tx.joined && held_note(s, run, seq, row.link, status, finished_ms, &texts, 0))
		s->hold_other--;
	tail.fins = row.fins;
	tail_set(s, run, &tail);
	return store_sqlite_tx_commit(&tx);
}

static int
dup_text(const char *txt, size_t len, char **ret, size_t *ret_len)
{
	char *copy = malloc(len + 1);

	if (!copy)
		return -ENOMEM;
	memcpy(copy, txt, len);
	copy[len] = '\0';
	*ret = copy;
	*ret_len = len;
	return 0;
}

/* The tombstone a compacted row keeps in place of its result:
 * {"args_bytes":N,"cost":C,"result_bytes":M,"sha256":"<hex of the result text>"}, the
 * digest named "blake3" in a BLAKE3 store. */
static int
read_tombstone(enum agd_digest d, const char *txt, size_t len, struct store_call *c)
{
	cleanup_json json_t *t = NULL;
	json_error_t jerr;
	json_int_t ab, rb, cost;
	const char *hex;
	int r = json_from_text(txt, len, &t);

	if (r < 0)
		return r;
	if (json_unpack_ex(t, &jerr, JSON_STRICT, "{s:I,s:I,s:I,s:s}", "args_bytes", &ab, "cost",
			   &cost, "result_bytes", &rb, agd_digest_name(d), &hex) < 0 ||
	    ab < 0 || rb < 0 || cost < 0 || !valid_hex64(hex, strlen(hex)))
		return -EBADMSG;
	c->args_len = (size_t)ab;
	c->result_len = (size_t)rb;
	c->result_cost = cost;
	memcpy(c->result_hash, hex, AGD_SHA256_HEX);
	return 0;
}

/* A stored JSON text read back: parsed into *ret when parse is set; else
 * only checked, by the one-pass check of canonical text, and parsed (kept in
 * *ret) when that cannot prove it valid. Either way it is validated. */
static int
check_json_text(const char *txt, size_t len, bool parse, json_t **ret)
{
	if (!parse && agd_json_canonical_valid(txt, len, STORE_JSON_MAX_DEPTH))
		return 0;
	return json_from_text(txt, len, ret);
}

/* The cost a result reports: its "cost" member when a positive integer. */
static int64_t
result_cost(const json_t *result)
{
	json_t *cost = json_object_get(result, "cost");

	return json_is_integer(cost) && json_integer_value(cost) > 0 ? json_integer_value(cost) : 0;
}

int
store_call_json(struct store_call *c)
{
	int r;

	if (!c->args && c->args_text) {
		r = json_from_text(c->args_text, c->args_len, &c->args);
		if (r < 0)
			return r;
	}
	if (!c->result && c->result_text) {
		r = json_from_text(c->result_text, c->result_len, &c->result);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Per-row chain material kept while a journal is verified: the row's id, its
 * ordinal, its outcome's finish ordinal (0 for an intent) and its link. */
struct row_link {
	int64_t id, ord, fin;
	char link[AGD_SHA256_HEX];
	struct store_payload_ref args_ref, res_ref; /* len 0: the text is in the row */
};

/* A journal text column: in the row, or a reference to the payload file,
 * whose text is read into *own unless !texts (then *ret is NULL). */
static int
col_journal_text(struct store *s, sqlite3_stmt *st, int col, bool texts, const char **ret,
		 size_t *ret_len, char **own, struct store_payload_ref *ref)
{
	int r;

	if (sqlite3_column_type(st, col) != SQLITE_BLOB)
		return col_text(st, col, STORE_VALUE_MAX, ret, ret_len);
	const void *blob = sqlite3_column_blob(st, col);
	r = store_payload_ref(blob, sqlite3_column_bytes(st, col), STORE_VALUE_MAX, ref);
	if (r < 0)
		return r;
	*ret = NULL;
	*ret_len = (size_t)ref->len;
	if (!texts)
		return 0;
	r = store_payload_read(s->pfd, ref, own);
	if (r < 0)
		return r;
	*ret = *own;
	return 0;
}

/* A text read for a call: the buffer itself when it was read from the
 * payload file, else a copy of the row's. */
static int
take_text(const char *txt, size_t len, char **own, char **ret, size_t *ret_len)
{
	if (!*own)
		return dup_text(txt, len, ret, ret_len);
	*ret = steal_ptr(own);
	*ret_len = len;
	return 0;
}

/* Read one journal row (columns as in ST_J_LOAD), validating every field and
 * the row's seal; the link is checked once all rows are known. With !texts
 * (a row about to be deleted) its args and result are neither read nor
 * checked: only what the chain's links cover. */
static int
read_call(struct store *s, sqlite3_stmt *st, int64_t want_seq, bool parse, bool texts,
	  struct store_call *ret, struct row_link *ret_link)
{
	struct store_call c = {0};
	struct row_link l = {0};
	char hash[AGD_SHA256_HEX], seal[AGD_SHA256_HEX];
	cleanup_free char *args_own = NULL, *res_own = NULL;
	const char *txt = NULL, *res_txt = NULL;
	size_t len = 0, res_len = 0;
	int64_t status;
	int r;

	r = col_int64(st, 0, 1, INT64_MAX, &c.seq);
	if (r == 0 && c.seq != want_seq)
		r = -EBADMSG; /* a gap, or a row out of order */
	if (r == 0)
		r = col_int64(st, 1, 1, INT64_MAX, &l.ord);
	if (r == 0)
		r = col_strdup(st, 2, STORE_NAME_MAX, check_tool, &c.tool);
	if (r == 0)
		r = col_text(st, 3, AGD_SHA256_HEX, &txt, &len);
	if (r == 0 && !valid_hex64(txt, len))
		r = -EBADMSG;
	if (r == 0)
		memcpy(c.args_hash, txt, len + 1);
	/* The args hash covers the stored bytes themselves: they were written
	 * canonical, so hashing them is what re-encoding the parsed value would
	 * give, without the encode, and a non-canonical edit fails too. */
	if (r == 0)
		r = col_journal_text(s, st, 4, texts, &txt, &len, &args_own, &l.args_ref);
	/* Empty args (never valid JSON, so never written for a live row) mark a
	 * row compacted by store_retain. */
	if (r == 0 && len == 0)
		c.compacted = true;
	if (r == 0 && texts && !c.compacted) {
		agd_digest_hex(s->digest, txt, len, hash);
		if (strcmp(hash, c.args_hash) != 0)
			r = -EBADMSG;
	}
	if (r == 0 && texts && !c.compacted)
		r = check_json_text(txt, len, parse, &c.args);
	if (r == 0 && texts && !c.compacted)
		r = take_text(txt, len, &args_own, &c.args_text, &c.args_len);
	/* No outcome row: an intent, never a compacted one. */
	bool intent = sqlite3_column_type(st, 5) == SQLITE_NULL;
	if (r == 0 && intent && c.compacted)
		r = -EBADMSG;
	if (r == 0 && !intent)
		r = col_int64(st, 5, STORE_CALL_OK, STORE_CALL_DENIED, &status);
	if (r == 0) {
		c.status = intent ? STORE_CALL_INTENT : (enum store_call_status)status;
		if (!intent) {
			r = col_journal_text(s, st, 6, texts, &res_txt, &res_len, &res_own,
					     &l.res_ref);
			if (r == 0 && !texts)
				; /* not read */
			else if (r == 0 && c.compacted)
				r = read_tombstone(s->digest, res_txt, res_len, &c);
			else if (r == 0)
				r = check_json_text(res_txt, res_len, parse, &c.result);
			/* A text proven canonical has no escaped key, so a result
			 * without the bytes "cost": has no "cost" member. */
			if (r == 0 && texts && !c.compacted && !c.result &&
			    memmem(res_txt, res_len, "\"cost\":", 7))
				r = json_from_text(res_txt, res_len, &c.result);
			if (r == 0 && texts && !c.compacted)
				c.result_cost = result_cost(c.result);
			if (r == 0 && texts && !c.compacted)
				r = take_text(res_txt, res_len, &res_own, &c.result_text,
					      &c.result_len);
		}
	}
	if (r == 0)
		r = col_int(st, 7, 0, INT_MAX, &c.attempt);
	if (r == 0)
		r = col_strdup(st, 8, STORE_NAME_MAX, check_name, &c.decision);
	if (r == 0)
		r = col_strdup(st, 9, STORE_NAME_MAX, check_name, &c.rule);
	if (r == 0)
		r = col_int64(st, 10, 0, INT64_MAX, &c.started_ms);
	if (r == 0 && !intent)
		r = col_int64(st, 11, 0, INT64_MAX, &c.finished_ms);
	if (r == 0)
		r = col_text(st, 12, AGD_SHA256_HEX, &txt, &len);
	if (r == 0 && !valid_hex64(txt, len))
		r = -EBADMSG;
	if (r == 0) {
		memcpy(l.link, txt, len + 1);
		r = col_int64(st, 14, 1, INT64_MAX, &l.id);
	}
	if (r == 0 && !intent)
		r = col_int64(st, 15, 1, INT64_MAX, &l.fin);
	if (r == 0 && !intent)
		r = col_text(st, 13, AGD_SHA256_HEX, &txt, &len);
	if (r == 0 && !intent && !valid_hex64(txt, len))
		r = -EBADMSG;
	if (r == 0 && !intent && texts) {
		/* res_txt is still valid: fetching other columns of the row
		 * does not convert or move column 6 (and a text read from the
		 * payload file is c.result_text's buffer). */
		journal_seal_as(s->digest, c.compacted, l.link, l.fin, (int)c.status, res_txt,
				res_len, c.finished_ms, seal);
		/* Else a v1 seal: its finish ordinal is checked only for being
		 * one of 1..m (verify_links). */
		if (strcmp(seal, txt) != 0 && s->digest == AGD_DIGEST_SHA256)
			journal_seal_as(s->digest, c.compacted, l.link, 0, (int)c.status, res_txt,
					res_len, c.finished_ms, seal);
		if (strcmp(seal, txt) != 0)
			r = -EBADMSG;
	}
	if (r < 0) {
		store_call_clear(&c);
		return r;
	}
	*ret = c;
	*ret_link = l;
	return 0;
}

/* Verify the links: the insertion ordinals are exactly 1..n, the finish
 * ordinals of the m outcomes exactly 1..m (so an outcome deleted before the
 * newest one leaves a gap), and each row's link hashes the link of the row
 * inserted before it. */
static int
verify_links(const char *run, const struct store_call *calls, const struct row_link *links,
	     size_t n)
{
	cleanup_free size_t *by_ord = NULL;
	cleanup_free bool *fin_seen = NULL;
	char want[AGD_SHA256_HEX];
	size_t m = 0;

	if (n == 0)
		return 0;
	by_ord = malloc(n * sizeof(*by_ord));
	fin_seen = calloc(n, sizeof(*fin_seen));
	if (!by_ord || !fin_seen)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		by_ord[i] = SIZE_MAX;
	for (size_t i = 0; i < n; i++) {
		if (links[i].ord < 1 || (uint64_t)links[i].ord > n ||
		    by_ord[links[i].ord - 1] != SIZE_MAX)
			return -EBADMSG;
		by_ord[links[i].ord - 1] = i;
		m += links[i].fin != 0;
	}
	for (size_t i = 0; i < n; i++) {
		if (!links[i].fin)
			continue;
		if ((uint64_t)links[i].fin > m || fin_seen[links[i].fin - 1])
			return -EBADMSG;
		fin_seen[links[i].fin - 1] = true;
	}
	for (size_t i = 0; i < n; i++) {
		int64_t ord = links[i].ord;
		const char *prev = ord == 1 ? "" : links[by_ord[ord - 2]].link;
		journal_link(prev, run, ord, &calls[i], calls[i].args_hash, want);
		if (strcmp(want, links[i].link) != 0)
			return -EBADMSG;
	}
	return 0;
}

/* Read and verify a run's journal; its chain material too if ret_links.
 * The args and results of rows after seq texts_upto are not read (they are
 * about to be deleted). -ENODATA, with *ret_lost its seq, if a row's text
 * lies past the payload file's end. */
static int
journal_read(struct store *s, const char *run, bool parse, int64_t texts_upto,
	     struct store_call **ret, struct row_link **ret_links, size_t *ret_n, int64_t *ret_lost)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	cleanup_free struct row_link *links = NULL;
	struct store_call *calls = NULL;
	size_t n = 0, cap = 0;
	int rc, r = 0;
	/* Outside a write transaction, texts are read under the payload file's
	 * read lock, taken before the statement's snapshot: no space a row of
	 * it names is given back meanwhile (payload_reclaim). */
	bool locked = sqlite3_get_autocommit(s->db);

	if (locked && (r = store_payload_lock_read(s->pfd)) < 0)
		return r;
	st = s->stmt[ST_J_LOAD];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct store_call *nc;
			struct row_link *nl;
			if (ncap > STORE_JOURNAL_MAX)
				ncap = STORE_JOURNAL_MAX;
			if (n >= ncap) {
				r = -E2BIG;
				break;
			}
			nc = realloc(calls, ncap * sizeof(*calls));
			if (!nc) {
				r = -ENOMEM;
				break;
			}
			calls = nc;
			nl = realloc(links, ncap * sizeof(*links));
			if (!nl) {
				r = -ENOMEM;
				break;
			}
			links = nl;
			cap = ncap;
		}
		int64_t seq = (int64_t)n + 1;
		r = read_call(s, st, seq, parse, seq <= texts_upto, &calls[n], &links[n]);
		if (r == -ENODATA)
			*ret_lost = seq;
		if (r < 0)
			break;
		n++;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = map_rc(rc);
	if (locked) {
		sqlite3_reset(st);
		store_payload_unlock(s->pfd);
	}
	if (r == 0)
		r = verify_links(run, calls, links, n);
	if (r < 0) {
		store_calls_free(calls, n);
		return r;
	}
	*ret = calls;
	if (ret_links)
		*ret_links = steal_ptr(&links);
	*ret_n = n;
	return 0;
}

/* A load that meets a row whose text a power loss cut from the payload
 * file (durability process: the file is fsynced before each checkpoint,
 * but the kernel may write a WAL page first) ends the journal before that
 * row, as a commit the power loss took whole would have: the row and every
 * later one are deleted, with the run's approvals after it, and the run's
 * timeline says so (docs/store.md, "Payloads apart from the pages"). */
static int
journal_load(struct store *s, const char *run, bool parse, struct store_call **ret, size_t *n)
{
	int64_t lost = 0;
	int r;

	if (!s || !ret || !n || !valid_id(run))
		return -EINVAL;
	r = journal_read(s, run, parse, INT64_MAX, ret, NULL, n, &lost);
	if (r != -ENODATA || lost < 1 || s->batch)
		return r;
	r = store_journal_truncate(s, run, lost - 1);
	if (r == 0)
		r = store_approval_discard(s, run, lost - 1);
	if (r == 0) {
		cleanup_json json_t *data =
		    json_pack("{s:s,s:I}", "reason", "payload lost", "from_seq", (json_int_t)lost);
		r = data ? store_event_append(s, run, 0, lost, "journal.truncated", data) : -ENOMEM;
	}
	if (r < 0)
		return r;
	return journal_read(s, run, parse, INT64_MAX, ret, NULL, n, &lost);
}

int
store_journal_load(struct store *s, const char *run, struct store_call **ret, size_t *n)
{
	return journal_load(s, run, true, ret, n);
}

int
store_journal_load_lazy(struct store *s, const char *run, struct store_call **ret, size_t *n)
{
	return journal_load(s, run, false, ret, n);
}

/* A compacted row's tombstone text, canonical (sorted keys). */
static int
tombstone_text(enum agd_digest d, const struct store_call *c, char **ret)
{
	cleanup_json json_t *t =
	    json_pack("{s:I,s:I,s:I,s:s}", "args_bytes", (json_int_t)c->args_len, "cost",
		      (json_int_t)c->result_cost, "result_bytes", (json_int_t)c->result_len,
		      agd_digest_name(d), c->result_hash);

	if (!t)
		return -ENOMEM;
	return json_to_text(t, ret, NULL);
}

/* Record that a row no longer names its texts in the payload file: their
 * space is given back once the transaction has committed and no reader may
 * still see the row (payload_reclaim). */
static int
payload_free(struct store *s, const struct row_link *l)
{
	const struct store_payload_ref *refs[] = {&l->args_ref, &l->res_ref};
	int r = 0;

	for (size_t i = 0; r == 0 && i < ARRAY_SIZE(refs); i++) {
		if (!refs[i]->len)
			continue;
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_PL_FREE_ADD];
		sqlite3_bind_int64(st, 1, refs[i]->off);
		sqlite3_bind_int64(st, 2, refs[i]->len);
		r = store_sqlite_step_done(st);
	}
	return r;
}

/* Punch holes where the texts that no row names were (payload_free), under
 * the payload file's exclusive lock: a reader, which takes the shared one
 * before its snapshot, never reads a row that names them. While any reader
 * holds it, the spans wait for the next call. */
static void
payload_reclaim(struct store *s)
{
	struct store_payload_ref span = {0};
	int64_t last = 0;

	if (store_payload_trylock_free(s->pfd) < 0)
		return;
	{
		/* Adjacent spans are punched as one: a block they share is
		 * given back too. */
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_PL_FREE_LIST];
		while (sqlite3_step(st) == SQLITE_ROW) {
			struct store_payload_ref ref = {sqlite3_column_int64(st, 1),
							sqlite3_column_int64(st, 2)};
			int64_t id = sqlite3_column_int64(st, 0);
			if (id > last)
				last = id;
			/* Untrusted like any row: never the header. */
			if (ref.off < STORE_PAYLOAD_HDR || ref.len <= 0 ||
			    ref.off > INT64_MAX - ref.len)
				continue;
			if (span.len && ref.off == span.off + span.len) {
				span.len += ref.len;
				continue;
			}
			if (span.len)
				store_payload_punch(s->pfd, &span);
			span = ref;
		}
		if (span.len)
			store_payload_punch(s->pfd, &span);
	}
	store_payload_unlock(s->pfd);
	if (!last)
		return;
	/* Failing here leaves spans that are punched again later: no harm. */
	cleanup_tx struct store_tx tx = {0};
	if (store_sqlite_tx_begin(s, &tx) < 0)
		return;
	cleanup_stmt sqlite3_stmt *st = s->stmt[ST_PL_FREE_DROP];
	sqlite3_bind_int64(st, 1, last);
	if (store_sqlite_step_done(st) == 0)
		store_sqlite_tx_commit(&tx);
}

int
store_journal_truncate(struct store *s, const char *run, int64_t after_seq)
{
	cleanup_tx struct store_tx tx = {0};
	cleanup_free struct row_link *links = NULL;
	cleanup_free int64_t *new_fin = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	char prev[AGD_SHA256_HEX] = "";
	int r;

	if (!s || !valid_id(run) || after_seq < 0)
		return -EINVAL;
	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	r = journal_read(s, run, false, after_seq, &calls, &links, &n, &(int64_t){0});
	if (r < 0)
		return r;
	for (size_t i = 0; r == 0 && i < n; i++) {
		if (calls[i].seq > after_seq)
			r = payload_free(s, &links[i]);
	}
	/* The kept outcomes keep their finish order, renumbered 1..k: new_fin
	 * maps a verified finish ordinal (1..m <= n) to its new one. */
	new_fin = calloc(n + 1, sizeof(*new_fin));
	if (!new_fin)
		r = -ENOMEM;
	for (size_t i = 0; r == 0 && i < n && calls[i].seq <= after_seq; i++)
		new_fin[links[i].fin] = links[i].fin != 0;
	for (size_t f = 1, k = 0; r == 0 && f <= n; f++)
		new_fin[f] = new_fin[f] ? (int64_t)++k : 0;
	for (int i = ST_O_DELETE_AFTER; r == 0 && i <= ST_J_DELETE_AFTER; i++) {
		cleanup_stmt sqlite3_stmt *st = s->stmt[i];
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, after_seq);
		r = store_sqlite_step_done(st);
	}
	if (r == 0) {
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_STATE_DELETE_AFTER];
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, after_seq);
		r = store_sqlite_step_done(st);
	}
	/* Re-seal the kept rows in seq order: their insertion predecessors may
	 * have been deleted. */
	tail_forget(s, run);
	for (size_t i = 0; r == 0 && i < n && calls[i].seq <= after_seq; i++) {
		cleanup_free char *res = NULL;
		char link[AGD_SHA256_HEX], chain[AGD_SHA256_HEX];

		journal_link(prev, run, calls[i].seq, &calls[i], calls[i].args_hash, link);
		memcpy(prev, link, sizeof(prev));
		{
			cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_RESEAL];
			sqlite3_bind_int64(st, 1, links[i].id);
			sqlite3_bind_int64(st, 2, calls[i].seq);
			sqlite3_bind_text(st, 3, link, -1, SQLITE_STATIC);
			r = store_sqlite_step_done(st);
		}
		if (r < 0 || calls[i].status == STORE_CALL_INTENT)
			continue;
		/* The bytes each outcome was sealed with: its stored result
		 * text, or a compacted row's tombstone. */
		const char *rt = calls[i].result_text;
		size_t rl = calls[i].result_len;
		if (calls[i].compacted) {
			r = tombstone_text(s->digest, &calls[i], &res);
			if (r < 0)
				break;
			rt = res;
			rl = strlen(res);
		}
		journal_seal_as(s->digest, calls[i].compacted, link, new_fin[links[i].fin],
				(int)calls[i].status, rt, rl, calls[i].finished_ms, chain);
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_O_RESEAL];
		sqlite3_bind_int64(st, 1, links[i].id);
		sqlite3_bind_int64(st, 2, new_fin[links[i].fin]);
		sqlite3_bind_text(st, 3, chain, -1, SQLITE_STATIC);
		r = store_sqlite_step_done(st);
	}
	store_calls_free(calls, n);
	if (r < 0)
		return r;
	r = store_sqlite_tx_commit(&tx);
	if (r == 0)
		payload_reclaim(s);
	return r;
}

/* ---- agent state ---- */

/* What budgets count for a value (supervisor/budget.c json_size): the
 * compact text's length for an object or an array, else 0. */
static size_t
counted_len(const char *text, size_t len)
{
	return text && (text[0] == '{' || text[0] == '[') ? len : 0;
}

/* Compact a verified row: its args go, its outcome's result becomes the
 * tombstone, sealed under the compacted tag. */
static int
compact_row(struct store *s, struct store_call *c, const struct row_link *l)
{
	cleanup_free char *tomb = NULL;
	char seal[AGD_SHA256_HEX];
	int r;

	agd_digest_hex(s->digest, c->result_text, c->result_len, c->result_hash);
	c->args_len = counted_len(c->args_text, c->args_len);
	c->result_len = counted_len(c->result_text, c->result_len);
	r = tombstone_text(s->digest, c, &tomb);
	if (r < 0)
		return r;
	journal_seal_as(s->digest, true, l->link, l->fin, (int)c->status, tomb, strlen(tomb),
			c->finished_ms, seal);
	r = payload_free(s, l);
	if (r < 0)
		return r;
	{
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_COMPACT];
		sqlite3_bind_int64(st, 1, l->id);
		r = store_sqlite_step_done(st);
	}
	if (r < 0)
		return r;
	cleanup_stmt sqlite3_stmt *st = s->stmt[ST_O_COMPACT];
	sqlite3_bind_int64(st, 1, l->id);
	sqlite3_bind_text(st, 2, tomb, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, seal, -1, SQLITE_STATIC);
	return store_sqlite_step_done(st);
}

/* The finished, not yet compacted rows at or before seq `cut`, each verified
 * (fields, seal, link), with their chain material. */
static int
rows_to_compact(struct store *s, const char *run, int64_t cut, struct store_call **ret,
		struct row_link **ret_links, size_t *ret_n)
{
	cleanup_stmt sqlite3_stmt *st = s->stmt[ST_J_TO_COMPACT];
	cleanup_free struct row_link *links = NULL;
	struct store_call *calls = NULL;
	size_t n = 0, cap = 0;
	int rc = SQLITE_DONE, r = 0;

	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, cut);
	while (r == 0 && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		char prev[AGD_SHA256_HEX] = "", want[AGD_SHA256_HEX];
		if (n == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct store_call *nc = realloc(calls, ncap * sizeof(*calls));
			if (!nc) {
				r = -ENOMEM;
				break;
			}
			calls = nc;
			struct row_link *nl = realloc(links, ncap * sizeof(*links));
			if (!nl) {
				r = -ENOMEM;
				break;
			}
			links = nl;
			cap = ncap;
		}
		r = read_call(s, st, sqlite3_column_int64(st, 0), false, true, &calls[n],
			      &links[n]);
		if (r < 0)
			break;
		n++;
		struct row_link *l = &links[n - 1];
		if (l->ord > 1 && (r = link_at(s, run, l->ord - 1, prev)) < 0)
			break;
		journal_link(prev, run, l->ord, &calls[n - 1], calls[n - 1].args_hash, want);
		if (strcmp(want, l->link) != 0)
			r = -EBADMSG;
	}
	if (r == 0 && rc != SQLITE_DONE)
		r = map_rc(rc);
	if (r < 0) {
		store_calls_free(calls, n);
		return r;
	}
	*ret = calls;
	*ret_links = steal_ptr(&links);
	*ret_n = n;
	return 0;
}

int
store_retain(struct store *s, const char *run, int keep_snapshots, int64_t *ret_compacted)
{
	cleanup_tx struct store_tx tx = {0};
	cleanup_free struct row_link *links = NULL;
	struct store_call *calls = NULL;
	size_t n = 0;
	int64_t cut, cut_rowid, done = 0;
	int rc, r;

	if (!s || !valid_id(run) || keep_snapshots < 1)
		return -EINVAL;
	r = store_sqlite_tx_begin(s, &tx);
	if (r < 0)
		return r;
	{
		/* The oldest state kept: the keep_snapshots-th newest. */
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_STATE_NTH];
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, keep_snapshots - 1);
		rc = sqlite3_step(st);
		if (rc == SQLITE_DONE) {
			if (ret_compacted)
				*ret_compacted = 0;
			return 0; /* fewer states than that: nothing to do */
		}
		if (rc != SQLITE_ROW)
			return map_rc(rc);
		r = col_int64(st, 0, 1, INT64_MAX, &cut_rowid);
		if (r == 0)
			r = col_int64(st, 1, 0, INT64_MAX, &cut);
		if (r < 0)
			return r;
	}
	{
		cleanup_stmt sqlite3_stmt *st = s->stmt[ST_STATE_DELETE_BEFORE];
		sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
		sqlite3_bind_int64(st, 2, cut_rowid);
		r = store_sqlite_step_done(st);
		if (r < 0)
			return r;
	}
	/* Verify every row it rewrites before dropping anything: its fields
	 * and seal (read_call), and its link from the row inserted before it.
	 * Compaction never launders an edited row, and costs O(rows compacted)
	 * rather than O(journal): compacted rows and rows after the cut are not
	 * rewritten, and every load still verifies the whole chain. */
	r = rows_to_compact(s, run, cut, &calls, &links, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		r = compact_row(s, &calls[i], &links[i]);
		if (r == 0)
			done++;
	}
	store_calls_free(calls, n);
	if (r < 0)
		return r;
	r = store_sqlite_tx_commit(&tx);
	if (r < 0)
		return r;
	payload_reclaim(s);
	if (ret_compacted)
		*ret_compacted = done;
	return 0;
}

int
store_state_save(struct store *s, const char *run, int64_t seq, const json_t *state)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	char *txt = NULL;
	int r;

	if (!s || !valid_id(run) || seq < 0 || !state)
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	r = json_to_text(state, &txt, NULL);
	if (r < 0)
		return r;
	st = s->stmt[ST_STATE_INSERT];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, seq);
	sqlite3_bind_text(st, 3, txt, -1, free);
	sqlite3_bind_int64(st, 4, agd_wall_ms());
	return store_sqlite_step_done(st);
}

int
store_state_load(struct store *s, const char *run, json_t **ret_state, int64_t *ret_seq)
{
	return store_state_load_at(s, run, INT64_MAX, ret_state, ret_seq);
}

int
store_state_load_at(struct store *s, const char *run, int64_t at_seq, json_t **ret_state,
		    int64_t *ret_seq)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	json_t *state = NULL;
	int64_t seq;
	int rc, r;

	if (!s || !ret_state || !valid_id(run) || at_seq < 0)
		return -EINVAL;
	st = s->stmt[ST_STATE_LOAD];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, at_seq);
	rc = sqlite3_step(st);
	if (rc == SQLITE_DONE)
		return -ENOENT;
	if (rc != SQLITE_ROW)
		return map_rc(rc);
	r = col_int64(st, 0, 0, INT64_MAX, &seq);
	if (r == 0)
		r = col_json(st, 1, &state);
	if (r < 0)
		return r;
	*ret_state = state;
	if (ret_seq)
		*ret_seq = seq;
	return 0;
}

/* ---- events ---- */

int
store_event_append(struct store *s, const char *run, int attempt, int64_t seq, const char *type,
		   const json_t *data)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	char *txt = NULL;
	int r;

	if (!s || !valid_id(run) || attempt < 0 || seq < 0 || !valid_name(type, false))
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	if (data) {
		r = json_to_text(data, &txt, NULL);
		if (r < 0)
			return r;
	}
	st = s->stmt[ST_EVENT_INSERT];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, agd_wall_ms());
	sqlite3_bind_int(st, 3, attempt);
	sqlite3_bind_int64(st, 4, seq);
	sqlite3_bind_text(st, 5, type, -1, SQLITE_STATIC);
	if (txt)
		sqlite3_bind_text(st, 6, txt, -1, free);
	else
		sqlite3_bind_null(st, 6);
	return store_sqlite_step_done(st);
}

static int
read_event(sqlite3_stmt *st, struct store_event *ret)
{
	struct store_event e = {0};
	int r;

	r = col_int64(st, 0, 1, INT64_MAX, &e.id);
	if (r == 0)
		r = col_int64(st, 1, 0, INT64_MAX, &e.ts_ms);
	if (r == 0)
		r = col_int(st, 2, 0, INT_MAX, &e.attempt);
	if (r == 0)
		r = col_int64(st, 3, 0, INT64_MAX, &e.seq);
	if (r == 0)
		r = col_strdup(st, 4, STORE_NAME_MAX, check_tool, &e.type);
	if (r == 0 && sqlite3_column_type(st, 5) != SQLITE_NULL)
		r = col_json(st, 5, &e.data);
	if (r < 0) {
		free(e.type);
		json_decref(e.data);
		return r;
	}
	*ret = e;
	return 0;
}

int
store_event_foreach(struct store *s, const char *run,
		    int (*fn)(const struct store_event *e, void *ud), void *ud)
{
	cleanup_stmt sqlite3_stmt *st = NULL;
	int rc, r = 0;

	if (!s || !fn || !valid_id(run))
		return -EINVAL;
	if (s->iterating)
		return -EBUSY;
	st = s->stmt[ST_EVENT_LIST];
	sqlite3_bind_text(st, 1, run, -1, SQLITE_STATIC);
	s->iterating = true;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct store_event e;
		r = read_event(st, &e);
		if (r < 0)
			break;
		r = fn(&e, ud);
		free(e.type);
		json_decref(e.data);
		if (r != 0)
			break;
	}
	s->iterating = false;
	if (r != 0)
		return r;
	return rc == SQLITE_DONE ? 0 : map_rc(rc);
}

/* ---- operations ---- */

/* agentd_payload(x) on a backup's connection: the text a reference names
 * (read from the source store's payload file), any other value as it is. */
static void
payload_fn(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	struct store *s = sqlite3_user_data(ctx);
	struct store_payload_ref ref;
	char *txt = NULL;
	int r;

	(void)argc;
	if (sqlite3_value_type(argv[0]) != SQLITE_BLOB) {
		sqlite3_result_value(ctx, argv[0]);
		return;
	}
	const void *blob = sqlite3_value_blob(argv[0]);
	r = store_payload_ref(blob, sqlite3_value_bytes(argv[0]), STORE_VALUE_MAX, &ref);
	if (r == 0)
		r = store_payload_read(s->pfd, &ref, &txt);
	if (r < 0) {
		sqlite3_result_error(ctx, "journal text unreadable", -1);
		return;
	}
	sqlite3_result_text64(ctx, txt, (sqlite3_uint64)ref.len, free, SQLITE_UTF8);
}

/* A backup is one file: the texts its rows name in the payload file are put
 * back in the rows, and it names no payload file (a store opened on it
 * makes its own). */
static int
backup_inline(struct store *s, sqlite3 *dst)
{
	int rc = sqlite3_create_function(dst, "agentd_payload", 1, SQLITE_UTF8, s, payload_fn, NULL,
					 NULL);

	if (rc == SQLITE_OK)
		rc = sqlite3_exec(dst,
				  "BEGIN;"
				  "UPDATE journal SET args = agentd_payload(args)"
				  " WHERE typeof(args) = 'blob';"
				  "UPDATE outcomes SET result = agentd_payload(result)"
				  " WHERE typeof(result) = 'blob';"
				  "DELETE FROM payload_free;"
				  "DELETE FROM payload_file;"
				  "COMMIT;",
				  NULL, NULL, NULL);
	if (rc != SQLITE_OK) {
		int r = sqlite3_extended_errcode(dst) == SQLITE_ERROR
			    ? -EBADMSG
			    : map_rc(sqlite3_extended_errcode(dst));
		sqlite3_exec(dst, "ROLLBACK", NULL, NULL, NULL);
		return r < 0 ? r : -EIO;
	}
	return 0;
}

int
store_backup(struct store *s, const char *path)
{
	sqlite3 *dst = NULL;
	sqlite3_backup *b;
	int rc, r;

	if (!s || !path)
		return -EINVAL;
	r = store_sqlite_unhold(s);
	if (r < 0)
		return r;
	r = precreate(path);
	if (r < 0)
		return r;
	rc = sqlite3_open_v2(path, &dst,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
				 SQLITE_OPEN_EXRESCODE,
			     NULL);
	if (rc != SQLITE_OK) {
		sqlite3_close(dst);
		return map_rc(rc);
	}
	sqlite3_busy_timeout(dst, BUSY_TIMEOUT_MS);
	b = sqlite3_backup_init(dst, "main", s->db, "main");
	if (!b) {
		r = map_rc(sqlite3_extended_errcode(dst));
		sqlite3_close(dst);
		return r < 0 ? r : -EIO;
	}
	/* Copy in one step: the source is read inside one read transaction,
	 * so the copy is a consistent snapshot; and under the payload file's
	 * read lock until its texts are copied too. */
	r = store_payload_lock_read(s->pfd);
	for (int tries = 0; r == 0 && tries < BUSY_TIMEOUT_MS / 10; tries++) {
		rc = sqlite3_backup_step(b, -1);
		if (rc != SQLITE_OK && rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
			break;
		sqlite3_sleep(10);
	}
	sqlite3_backup_finish(b);
	if (r == 0)
		r = rc == SQLITE_DONE ? 0 : map_rc(rc);
	if (r == 0)
		r = backup_inline(s, dst);
	store_payload_unlock(s->pfd);
	if (sqlite3_close(dst) != SQLITE_OK && r == 0)
		r = -EIO;
	return r;
}

/* ---- helpers shared with sqlite_interact.c (sqlite-internal.h) ---- */

sqlite3 *
store_sqlite_db(struct store *s)
{
	return s->db;
}

bool *
store_sqlite_iterating(struct store *s)
{
	return &s->iterating;
}

struct store_ix **
store_sqlite_ix(struct store *s)
{
	return &s->ix;
}

int
store_sqlite_map_rc(int rc)
{
	return map_rc(rc);
}

bool
store_sqlite_valid_id(const char *id)
{
	return valid_id(id);
}

bool
store_sqlite_valid_name(const char *v, bool allow_empty)
{
	return valid_name(v, allow_empty);
}

int
store_sqlite_json_to_text(const json_t *v, char **ret)
{
	return json_to_text(v, ret, NULL);
}

int
store_sqlite_col_json(sqlite3_stmt *st, int col, json_t **ret)
{
	return col_json(st, col, ret);
}

int
store_sqlite_col_int64(sqlite3_stmt *st, int col, int64_t min, int64_t max, int64_t *ret)
{
	return col_int64(st, col, min, max, ret);
}

int
store_sqlite_col_strdup(sqlite3_stmt *st, int col, size_t max, bool (*check)(const char *),
			char **ret)
{
	return col_strdup(st, col, max, check, ret);
}
