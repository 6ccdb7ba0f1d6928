/* Per-user usage across runs (schema version 3): each run records its owner's
 * uid, taken from the spec's "owner" object when the run is created. Since
 * version 5 each journal row carries its run's owner, indexed with its start
 * time, so the calls one user made in a recent window are one index range. */
#include <errno.h>
#include <sqlite3.h>
#include <stdint.h>

#include "common/util.h"
#include "store/sqlite-internal.h"
#include "store/usage.h"

/* Runs created before version 3 get the owner their spec names: the "owner"
 * object of `agentd run`, or the daemon's record of a submitted run. */
static const char schema_v3[] =
    "ALTER TABLE runs ADD COLUMN owner_uid INTEGER NOT NULL DEFAULT -1;"
    "UPDATE runs SET owner_uid = json_extract(spec, '$.owner.uid')"
    " WHERE json_valid(spec) AND json_type(spec, '$.owner.uid') = 'integer';"
    "UPDATE runs SET owner_uid = json_extract(spec, '$.daemon.owner')"
    " WHERE owner_uid = -1 AND json_valid(spec)"
    " AND json_type(spec, '$.daemon.owner') = 'integer';"
    "CREATE INDEX runs_by_owner ON runs(owner_uid);"
    "CREATE INDEX journal_by_started ON journal(run, started_ms);";

int
store_sqlite_migrate_v3(sqlite3 *db)
{
	return store_sqlite_map_rc(sqlite3_exec(db, schema_v3, NULL, NULL, NULL));
}

int64_t
store_sqlite_spec_owner(const json_t *spec)
{
	json_t *v = json_object_get(json_object_get(spec, "owner"), "uid");

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > (json_int_t)UINT32_MAX - 1)
		return -1;
	return json_integer_value(v);
}

static void
finalizep(sqlite3_stmt **p)
{
	sqlite3_finalize(*p);
}

int
store_user_calls_since(struct store *s, int64_t owner_uid, int64_t since_ms, uint64_t *ret_n)
{
	/* Calls refused by a limit did not use the budget (supervisor/budget.c). */
	static const char sql[] = "SELECT count(*) FROM journal j WHERE owner_uid = ?1"
				  " AND started_ms >= ?2 AND NOT (substr(rule, 1, 7) = 'limits.'"
				  " AND EXISTS (SELECT 1 FROM outcomes o"
				  " WHERE o.id = j.id AND o.status = 3))";
	__attribute__((cleanup(finalizep))) sqlite3_stmt *st = NULL;
	int rc;

	if (!s || !ret_n || owner_uid < 0)
		return -EINVAL;
	rc = sqlite3_prepare_v2(store_sqlite_db(s), sql, -1, &st, NULL);
	if (rc != SQLITE_OK)
		return store_sqlite_map_rc(rc);
	sqlite3_bind_int64(st, 1, owner_uid);
	sqlite3_bind_int64(st, 2, since_ms);
	rc = sqlite3_step(st);
	if (rc != SQLITE_ROW)
		return store_sqlite_map_rc(rc == SQLITE_DONE ? SQLITE_CORRUPT : rc);
	sqlite3_int64 n = sqlite3_column_int64(st, 0);
	if (n < 0)
		return -EBADMSG;
	*ret_n = (uint64_t)n;
	return 0;
}
