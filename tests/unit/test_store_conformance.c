/* The store conformance suite (tests/store/) run against the SQLite backend. */
#include "tests/store/conformance.c"

#include <fcntl.h>
#include <sqlite3.h>

static int
sqlite_path(const char *dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/store.db", dir);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
sqlite_open(const char *dir, enum store_durability d, struct store **ret)
{
	char path[256];
	int r = sqlite_path(dir, path, sizeof(path));

	return r < 0 ? r : store_open(path, d, ret);
}

/* Version 0 for SQLite is a zero-length file: no tables, user_version 0. */
static int
sqlite_make_empty(const char *dir)
{
	char path[256];
	int r = sqlite_path(dir, path, sizeof(path));
	int fd;

	if (r < 0)
		return r;
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	close(fd);
	return 0;
}

static int
sqlite_schema_version(const char *dir, int *ret_version)
{
	char path[256];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int r = sqlite_path(dir, path, sizeof(path));

	if (r < 0)
		return r;
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
		sqlite3_close(db);
		return -EIO;
	}
	r = -EIO;
	if (sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW) {
		*ret_version = sqlite3_column_int(st, 0);
		r = 0;
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return r;
}

int
main(void)
{
	static const struct store_conformance_backend sqlite_backend = {
	    .name = "store-conformance-sqlite",
	    .open = sqlite_open,
	    .make_empty = sqlite_make_empty,
	    .schema_version = sqlite_schema_version,
	    .current_version = 8,
	};

	return store_conformance_run(&sqlite_backend) ? 1 : 0;
}
