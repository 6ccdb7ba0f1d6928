/* Shared between the SQLite backend's files: sqlite.c (runs, journal, states,
 * events) and sqlite_interact.c (approvals, messages). Not a public API. */
#pragma once

#include <jansson.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "store/store.h"

struct store_ix;

/* The connection and its iteration guard (one cached statement at a time). */
sqlite3 *store_sqlite_db(struct store *s);
bool *store_sqlite_iterating(struct store *s);
/* sqlite_interact.c's statement cache, prepared on first use, freed by store_close. */
struct store_ix **store_sqlite_ix(struct store *s);
struct store_ix *store_ix_free(struct store_ix *ix);

/* Statement and transaction helpers of sqlite.c. A cached statement is
 * borrowed: cleanup_stmt resets it and drops its bindings on leaving scope. */
void store_sqlite_stmt_resetp(sqlite3_stmt **p);
#define cleanup_stmt __attribute__((cleanup(store_sqlite_stmt_resetp)))
/* Run a statement that returns no row, then reset it. 0 or -errno. */
int store_sqlite_step_done(sqlite3_stmt *st);
/* A write transaction (BEGIN IMMEDIATE) that rolls back when it leaves scope
 * uncommitted. tx_begin is -EBUSY while a group commit is open; tx_join
 * (journal writes) joins it instead, and its commit then only counts the row:
 * it becomes durable with the batch (store_batch_commit). */
struct store_tx {
	struct store *s;
	bool active;
	bool joined;  /* inside an open batch: no BEGIN, no COMMIT of its own */
	bool journal; /* writes one journal row (stats) */
};
void store_sqlite_tx_cleanup(struct store_tx *t);
#define cleanup_tx __attribute__((cleanup(store_sqlite_tx_cleanup)))
int store_sqlite_tx_begin(struct store *s, struct store_tx *t);
int store_sqlite_tx_join(struct store *s, struct store_tx *t);
int store_sqlite_tx_commit(struct store_tx *t);

/* Validation and conversion helpers of sqlite.c (docs/store.md). */
int store_sqlite_map_rc(int rc);
bool store_sqlite_valid_id(const char *id);
bool store_sqlite_valid_name(const char *v, bool allow_empty);
int store_sqlite_json_to_text(const json_t *v, char **ret);
int store_sqlite_col_json(sqlite3_stmt *st, int col, json_t **ret);
int store_sqlite_col_int64(sqlite3_stmt *st, int col, int64_t min, int64_t max, int64_t *ret);
int store_sqlite_col_strdup(sqlite3_stmt *st, int col, size_t max, bool (*check)(const char *),
			    char **ret);

/* Schema version 2: approvals and messages (in sqlite_interact.c). */
int store_sqlite_migrate_v2(sqlite3 *db);
/* Schema version 3: runs.owner_uid and the journal's time index
 * (sqlite_usage.c); the owner a spec names ("owner": {"uid": N}), -1 if none. */
int store_sqlite_migrate_v3(sqlite3 *db);
/* Schema version 4: approvals.rerun_attempt (in sqlite_interact.c). */
int store_sqlite_migrate_v4(sqlite3 *db);
int64_t store_sqlite_spec_owner(const json_t *spec);

/* Checkpoints beside the writer (sqlite_ckpt.c): installed as db's WAL hook
 * in place of SQLite's own checkpoint after a commit. store_ckpt_free stops
 * its thread (waiting for a pass in progress) and must run before db closes. */
struct store_ckpt;
/* payload_fd: the payload file, fsynced before every checkpoint. wal_found:
 * the database's WAL was there before this open (a crash's, another
 * process's), so checkpoints wait out a grace period. */
int store_ckpt_attach(sqlite3 *db, enum store_durability d, int page_size, int payload_fd,
		      bool wal_found, struct store_ckpt **ret);
struct store_ckpt *store_ckpt_free(struct store_ckpt *c);

/* The VFS the store's connections open their files with (sqlite_vfs.c): the
 * default one, with a commit's WAL frames written in one call. Its name, or
 * NULL (SQLite's default VFS) if it could not be registered. */
const char *store_sqlite_vfs(void);

/* The payload file (sqlite_payload.c, docs/store.md "Payloads apart from the
 * pages"): DB-payloads holds every journal text of STORE_PAYLOAD_MIN bytes or
 * more; its row holds a STORE_PAYLOAD_REF-byte reference in its place. */
#define STORE_PAYLOAD_MIN 1024
#define STORE_PAYLOAD_REF 24 /* offset, length, check */
#define STORE_PAYLOAD_HDR 64 /* the file's header: magic and id */
#define STORE_PAYLOAD_ID  33 /* the id: 32 hex digits and NUL */
struct stat;
struct store_payload_ref {
	int64_t off, len;
};
/* A new, empty file at path with a new id (fsynced, as is its directory
 * entry), owned as db_st says when made by root. */
int store_payload_create(const char *path, const struct stat *db_st, char ret_id[STORE_PAYLOAD_ID]);
/* Open the file; -EBADMSG if it is missing or is not the one with that id. */
int store_payload_open(const char *path, const char id[STORE_PAYLOAD_ID], int *ret_fd);
/* Append texts, one after the other, at *end (the file's size if negative:
 * under the write lock, the file's end is the writer's), and give their
 * references. At most STORE_PAYLOAD_IOV texts. */
#define STORE_PAYLOAD_IOV 2
struct iovec;
int store_payload_append(int fd, int64_t *end, const struct iovec *iov, int n,
			 unsigned char (*refs)[STORE_PAYLOAD_REF]);
/* Decode a reference read from a row (untrusted): -EBADMSG unless well formed
 * and of 1..max bytes. */
int store_payload_ref(const void *blob, int n, size_t max, struct store_payload_ref *ret);
/* Read a referenced text, NUL-terminated, into a new buffer: -ENODATA if it
 * lies past the file's end, -EBADMSG if it holds a NUL. */
int store_payload_read(int fd, const struct store_payload_ref *ref, char **ret);
/* A reader's shared lock (waits), the exclusive one that reclaiming space
 * needs (-EAGAIN while any reader holds one), and their release. */
int store_payload_lock_read(int fd);
int store_payload_trylock_free(int fd);
void store_payload_unlock(int fd);
/* Give a text's space back to the file system (a hole). */
int store_payload_punch(int fd, const struct store_payload_ref *ref);
/* Commit the batch store_batch_hold left held, if any: every write of the
 * store but the journal's own in a group commit comes after it. 0 or the
 * commit's -errno. */
int store_sqlite_unhold(struct store *s);
