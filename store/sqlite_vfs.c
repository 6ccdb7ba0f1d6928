/* A commit's WAL frames in one write (docs/store.md, "WAL writes").
 *
 * SQLite appends a commit to the WAL with one write(2) per frame header and
 * one per page: a 10 KB call is about forty of them over its two commits,
 * and the kernel's cost per write (the page-cache walk, the filesystem's
 * block reservation, the file's timestamps) is most of what the writer
 * spends in the kernel. This VFS, a thin layer over SQLite's default one,
 * gathers the consecutive writes of a connection's WAL in a buffer and
 * writes them with one call once the commit's last frame is complete: the
 * frame whose header carries the database size, which SQLite writes last.
 * That is before SQLite publishes the commit in the WAL index, where
 * readers (other connections and processes, the checkpoint thread) find
 * it, and before the commit returns; a failed write fails the commit as it
 * did before. So a commit that returns is in the file as before, and a
 * crash before that point loses only frames no reader could see, as a crash
 * between SQLite's own writes would. With --durability power SQLite syncs
 * the WAL at each commit, and a sync writes the buffer first.
 *
 * Every other call on the WAL file (read, sync, size, truncate, lock,
 * control, close) writes the buffer first, so SQLite never sees the
 * difference; a write that does not continue the previous one (a header
 * rewritten in place, the WAL restarting at offset 0) goes to the file
 * directly. A second guard: each shared-memory call on the database file
 * (the WAL index) writes its WAL's buffer first, should a SQLite version
 * order its writes otherwise. A failed write is that call's error, except
 * that a release (unlock, unmap) still goes through, and at the barrier
 * that publishes a commit, which cannot fail, the process aborts rather
 * than let the index publish frames that are not in the file (a crash
 * there is recovered from the file like any other). Only the WAL is
 * buffered: the database file is written by checkpoints, off the writer's
 * path. */
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/sqlite-internal.h"

#define VFS_NAME      "agentd"
#define WAL_FRAME_HDR 24
/* A call's commit fits many times over; a longer run of writes is written
 * out as the buffer fills. The default VFS writes at most 128 KiB - 1
 * bytes in one call (it masks the length), so the buffer stays below. */
#define WAL_BUF (64 << 10)

struct vfile {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, in the same allocation */
	struct vfile *wal;  /* a database file: its connection's WAL, if open */
	struct vfile *db;   /* a WAL file: its database file */
	bool is_wal;
	/* A WAL file's pending writes: len bytes for offset off.. */
	char *buf;
	sqlite3_int64 off, next; /* next: where the last write ended (-1: none) */
	int len;
	bool commit; /* the last write was a commit frame's header */
};

static sqlite3_vfs *base_vfs;
static sqlite3_vfs vfs;
static sqlite3_io_methods methods[3]; /* by the real file's iVersion - 1 */

static bool
ours(const sqlite3_file *f)
{
	return f && f->pMethods >= &methods[0] && f->pMethods <= &methods[2];
}

static int
flush(struct vfile *f)
{
	int n = f ? f->len : 0;

	if (n == 0)
		return SQLITE_OK;
	f->len = 0;
	return f->real->pMethods->xWrite(f->real, f->buf, n, f->off);
}

/* The WAL's buffer, before any call on the file but a continuing write. */
#define REAL(p) (((struct vfile *)(p))->real)
#define FLUSHED(p, call)                                                                           \
	do {                                                                                       \
		int rc_ = flush((struct vfile *)(p));                                              \
		if (rc_ != SQLITE_OK)                                                              \
			return rc_;                                                                \
		return REAL(p)->pMethods->call;                                                    \
	} while (0)

static int
v_close(sqlite3_file *p)
{
	struct vfile *f = (struct vfile *)p;
	int rc = flush(f), rc2;

	if (f->db)
		f->db->wal = NULL;
	if (f->wal)
		f->wal->db = NULL;
	rc2 = f->real->pMethods->xClose(f->real);
	free(f->buf);
	return rc != SQLITE_OK ? rc : rc2;
}

static int
v_read(sqlite3_file *p, void *b, int n, sqlite3_int64 o)
{
	FLUSHED(p, xRead(REAL(p), b, n, o));
}

static int
v_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 o)
{
	struct vfile *f = (struct vfile *)p;
	const unsigned char *h = b;
	bool ends_commit = f->commit, continues = o == f->next;
	int rc;

	if (!f->is_wal)
		return f->real->pMethods->xWrite(f->real, b, n, o);
	/* A frame header whose commit field (bytes 4-7: the database size in
	 * pages) is set: the page written next ends the commit. */
	f->commit = n == WAL_FRAME_HDR && (h[4] | h[5] | h[6] | h[7]) != 0;
	f->next = o + n;
	if (!continues || f->len + n > WAL_BUF) {
		rc = flush(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (!continues || n > WAL_BUF)
		return f->real->pMethods->xWrite(f->real, b, n, o);
	if (f->len == 0)
		f->off = o;
	memcpy(f->buf + f->len, b, (size_t)n);
	f->len += n;
	return ends_commit ? flush(f) : SQLITE_OK;
}

static int
v_truncate(sqlite3_file *p, sqlite3_int64 size)
{
	FLUSHED(p, xTruncate(REAL(p), size));
}

static int
v_sync(sqlite3_file *p, int flags)
{
	FLUSHED(p, xSync(REAL(p), flags));
}

static int
v_file_size(sqlite3_file *p, sqlite3_int64 *size)
{
	FLUSHED(p, xFileSize(REAL(p), size));
}

static int
v_lock(sqlite3_file *p, int level)
{
	FLUSHED(p, xLock(REAL(p), level));
}

static int
v_unlock(sqlite3_file *p, int level)
{
	FLUSHED(p, xUnlock(REAL(p), level));
}

static int
v_check_reserved(sqlite3_file *p, int *out)
{
	FLUSHED(p, xCheckReservedLock(REAL(p), out));
}

static int
v_file_control(sqlite3_file *p, int op, void *arg)
{
	FLUSHED(p, xFileControl(REAL(p), op, arg));
}

static int
v_sector_size(sqlite3_file *p)
{
	return REAL(p)->pMethods->xSectorSize(REAL(p));
}

static int
v_device_characteristics(sqlite3_file *p)
{
	return REAL(p)->pMethods->xDeviceCharacteristics(REAL(p));
}

/* The WAL index (shared memory, on the database file): its WAL's buffer
 * first, the second guard above. */
static int
shm_flush(sqlite3_file *p)
{
	return flush(((struct vfile *)p)->wal);
}

static int
v_shm_map(sqlite3_file *p, int page, int size, int extend, void volatile **ret)
{
	int rc = shm_flush(p);

	return rc != SQLITE_OK ? rc : REAL(p)->pMethods->xShmMap(REAL(p), page, size, extend, ret);
}

static int
v_shm_lock(sqlite3_file *p, int offset, int n, int flags)
{
	int rc = shm_flush(p);

	/* A release always goes through (SQLite ignores its result): a lock
	 * kept after a failed write would block every other connection. */
	if (rc != SQLITE_OK && !(flags & SQLITE_SHM_UNLOCK))
		return rc;
	int rc2 = REAL(p)->pMethods->xShmLock(REAL(p), offset, n, flags);
	return rc != SQLITE_OK ? rc : rc2;
}

static void
v_shm_barrier(sqlite3_file *p)
{
	/* The barrier comes as SQLite publishes a commit and cannot fail: if
	 * its frames cannot be written now, no reader may see it. */
	if (shm_flush(p) != SQLITE_OK) {
		fprintf(stderr, "agentd: store: cannot write the WAL of a commit being "
				"published; stopping so that no reader sees it\n");
		abort();
	}
	REAL(p)->pMethods->xShmBarrier(REAL(p));
}

static int
v_shm_unmap(sqlite3_file *p, int delete_flag)
{
	int rc = shm_flush(p);
	int rc2 = REAL(p)->pMethods->xShmUnmap(REAL(p), delete_flag); /* as a release */

	return rc != SQLITE_OK ? rc : rc2;
}

static int
v_fetch(sqlite3_file *p, sqlite3_int64 o, int n, void **ret)
{
	FLUSHED(p, xFetch(REAL(p), o, n, ret));
}

static int
v_unfetch(sqlite3_file *p, sqlite3_int64 o, void *q)
{
	return REAL(p)->pMethods->xUnfetch(REAL(p), o, q);
}

static int
v_open(sqlite3_vfs *v, sqlite3_filename name, sqlite3_file *p, int flags, int *out_flags)
{
	struct vfile *f = (struct vfile *)p;
	int rc;

	(void)v;
	memset(f, 0, sizeof(*f));
	f->real = (sqlite3_file *)(f + 1);
	f->next = -1;
	if (flags & SQLITE_OPEN_WAL) {
		f->buf = malloc(WAL_BUF);
		if (!f->buf)
			return SQLITE_NOMEM;
	}
	rc = base_vfs->xOpen(base_vfs, name, f->real, flags, out_flags);
	/* A file the default VFS did not open (its pMethods NULL) is not
	 * closed by SQLite: neither is this one. */
	if (rc != SQLITE_OK || !f->real->pMethods) {
		free(f->buf);
		f->buf = NULL;
		return rc;
	}
	p->pMethods = &methods[f->real->pMethods->iVersion - 1];
	if (f->buf) {
		sqlite3_file *db = sqlite3_database_file_object(name);
		f->is_wal = true;
		if (ours(db)) {
			f->db = (struct vfile *)db;
			f->db->wal = f;
		}
	}
	return SQLITE_OK;
}

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int registered = SQLITE_ERROR;

static void
do_register(void)
{
	const sqlite3_io_methods m = {
	    .xClose = v_close,
	    .xRead = v_read,
	    .xWrite = v_write,
	    .xTruncate = v_truncate,
	    .xSync = v_sync,
	    .xFileSize = v_file_size,
	    .xLock = v_lock,
	    .xUnlock = v_unlock,
	    .xCheckReservedLock = v_check_reserved,
	    .xFileControl = v_file_control,
	    .xSectorSize = v_sector_size,
	    .xDeviceCharacteristics = v_device_characteristics,
	    .xShmMap = v_shm_map,
	    .xShmLock = v_shm_lock,
	    .xShmBarrier = v_shm_barrier,
	    .xShmUnmap = v_shm_unmap,
	    .xFetch = v_fetch,
	    .xUnfetch = v_unfetch,
	};

	base_vfs = sqlite3_vfs_find(NULL);
	if (!base_vfs)
		return;
	for (int i = 0; i < 3; i++) {
		methods[i] = m;
		methods[i].iVersion = i + 1;
	}
	vfs = *base_vfs;
	vfs.zName = VFS_NAME;
	vfs.szOsFile = (int)sizeof(struct vfile) + base_vfs->szOsFile;
	vfs.xOpen = v_open;
	vfs.pNext = NULL;
	registered = sqlite3_vfs_register(&vfs, 0);
}

const char *
store_sqlite_vfs(void)
{
	pthread_once(&once, do_register);
	return registered == SQLITE_OK ? VFS_NAME : NULL;
}
