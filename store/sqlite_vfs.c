/* Fewer, larger reads and writes for SQLite's WAL and checkpoints
 * (docs/store.md, "WAL writes", "Checkpoint reads and writes").
 *
 * WAL writes. SQLite appends a commit to the WAL with one write(2) per frame
 * header and one per page: a 10 KB call is about forty of them over its two
 * commits, and the kernel's cost per write (the page-cache walk, the
 * filesystem's block reservation, the file's timestamps) is most of what the
 * writer spends in the kernel. This VFS, a thin layer over SQLite's default
 * one, gathers the consecutive writes of a connection's WAL in a buffer and
 * writes them with one call once the commit's last frame is complete: the
 * frame whose header carries the database size, which SQLite writes last.
 * That is before SQLite publishes the commit in the WAL index, where readers
 * (other connections and processes, the checkpoint thread) find it, and
 * before the commit returns; a failed write fails the commit as it did
 * before. So a commit that returns is in the file as before, and a crash
 * before that point loses only frames no reader could see, as a crash
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
 * there is recovered from the file like any other).
 *
 * Reads ahead. SQLite reads the WAL one frame at a time: a checkpoint one
 * page per read(2), and the recovery after a crash one frame per read, so a
 * 4 MiB WAL of 1 KiB pages is four thousand calls. On a read that continues
 * the previous one, a connection reads 64 KiB of the WAL at once and serves
 * the next reads from it, but only while those bytes cannot change:
 * - while it holds the WAL's write lock (recovery runs under it): only the
 *   holder writes the WAL, and its own writes drop what was read ahead;
 * - while it copies frames to the database (between SQLite's CKPT_START and
 *   CKPT_DONE): it reads only frames a commit had published before, which no
 *   one rewrites until a later checkpoint has copied them all (SQLite's own
 *   rule for the WAL to start over). Bytes past them, which a writer may be
 *   appending meanwhile, are read ahead but never served.
 * Outside those two, and whenever the read-ahead itself fails or would pass
 * the file's end, a read goes to the file as before.
 *
 * Checkpoint writes. A checkpoint writes the database one page per write(2),
 * in page order, so the pages a run appends go out as long runs of 1 KiB
 * writes. Between CKPT_START and CKPT_DONE the database file gathers
 * consecutive writes in a buffer of the same size, and writes them out when
 * a write does not continue them, when the buffer fills, before any other
 * call on the file (size, sync, truncate, read, lock, control, the shared
 * memory), and at CKPT_DONE, which SQLite sends after copying and before it
 * records the frames as copied. A failed write there is the next write's
 * error, which ends the checkpoint unrecorded, as before; but SQLite ignores
 * the result of CKPT_DONE, so only writes into space the file already has
 * are gathered: at the size hint SQLite gives before copying (the size the
 * database will grow to) the file is extended to it with zeros, and a write
 * past what it holds afterwards (the extension failed: disk full, a file
 * size limit) goes to the file directly and fails the checkpoint as it did.
 * A write into that space that still fails at CKPT_DONE (an I/O error)
 * stops the process, as at the commit barrier: the checkpoint is then not
 * recorded, and the next open copies the frames again. */
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
/* The read-ahead: 64 KiB, a little over sixty 1 KiB frames. */
#define WAL_RA (64 << 10)

struct vfile {
	sqlite3_file base;
	sqlite3_file *real; /* the default VFS's file, in the same allocation */
	struct vfile *wal;  /* a database file: its connection's WAL, if open */
	struct vfile *db;   /* a WAL file: its database file */
	bool is_wal;
	/* Pending writes (a WAL's, or a database's during a checkpoint): len
	 * bytes for offset off.. */
	char *buf;
	sqlite3_int64 off, next; /* next: where the last write ended (-1: none) */
	int len;
	bool commit; /* the last write was a commit frame's header */
	/* A WAL file's reads ahead (see "Reads ahead" above): rlen bytes from
	 * roff, kept only while the bytes cannot change under them. */
	char *rbuf;
	sqlite3_int64 roff, rnext, rsize; /* rnext: where the last read ended; rsize: -1 unknown */
	int rlen;
	bool ckpt;   /* the connection is copying frames (a checkpoint) */
	bool writer; /* the connection holds the WAL's write lock */
	/* A database file during a checkpoint: its size, known to be
	 * allocated (-1: unknown). Its pending writes use buf, off, len. */
	sqlite3_int64 room;
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

/* The file's pending writes, before any call on it but a continuing write. */
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
	free(f->rbuf);
	return rc != SQLITE_OK ? rc : rc2;
}

/* Forget what was read ahead: the bytes may change from here on. */
static void
ra_drop(struct vfile *f)
{
	if (!f)
		return;
	f->rlen = 0;
	f->rsize = -1;
}

/* n bytes at o from what was read ahead, reading the next WAL_RA bytes
 * first if needed. 1 if the read must go to the file instead. */
static int
ra_read(struct vfile *f, void *b, int n, sqlite3_int64 o)
{
	bool continues = o >= f->rnext && o - f->rnext <= WAL_FRAME_HDR;

	f->rnext = o + n;
	if (!f->ckpt && !f->writer)
		return 1;
	if (o >= f->roff && o + n <= f->roff + f->rlen) {
		memcpy(b, f->rbuf + (o - f->roff), (size_t)n);
		return 0;
	}
	if (!continues || n > WAL_RA)
		return 1;
	if (f->rsize < 0 && f->real->pMethods->xFileSize(f->real, &f->rsize) != SQLITE_OK) {
		f->rsize = -1;
		return 1;
	}
	sqlite3_int64 len = f->rsize - o < WAL_RA ? f->rsize - o : WAL_RA;
	if (len < n)
		return 1;
	if (!f->rbuf && !(f->rbuf = malloc(WAL_RA)))
		return 1;
	f->rlen = 0;
	if (f->real->pMethods->xRead(f->real, f->rbuf, (int)len, o) != SQLITE_OK)
		return 1;
	f->roff = o;
	f->rlen = (int)len;
	memcpy(b, f->rbuf, (size_t)n);
	return 0;
}

static int
v_read(sqlite3_file *p, void *b, int n, sqlite3_int64 o)
{
	struct vfile *f = (struct vfile *)p;
	int rc = flush(f);

	if (rc != SQLITE_OK)
		return rc;
	if (f->is_wal && ra_read(f, b, n, o) == 0)
		return SQLITE_OK;
	return f->real->pMethods->xRead(f->real, b, n, o);
}

/* A checkpoint's write to the database: gathered if it lands in allocated
 * space (see "Checkpoint writes" above). */
static int
db_write(struct vfile *f, const void *b, int n, sqlite3_int64 o)
{
	bool gather = f->wal && f->wal->ckpt && o + n <= f->room && n <= WAL_BUF;
	int rc;

	if (f->len > 0 && (!gather || o != f->off + f->len || f->len + n > WAL_BUF)) {
		rc = flush(f);
		if (rc != SQLITE_OK)
			return rc;
	}
	if (gather && !f->buf)
		gather = (f->buf = malloc(WAL_BUF)) != NULL;
	if (!gather)
		return f->real->pMethods->xWrite(f->real, b, n, o);
	if (f->len == 0)
		f->off = o;
	memcpy(f->buf + f->len, b, (size_t)n);
	f->len += n;
	return SQLITE_OK;
}

static int
v_write(sqlite3_file *p, const void *b, int n, sqlite3_int64 o)
{
	struct vfile *f = (struct vfile *)p;
	const unsigned char *h = b;
	bool ends_commit = f->commit, continues = o == f->next;
	int rc;

	if (!f->is_wal)
		return db_write(f, b, n, o);
	ra_drop(f);
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
	ra_drop((struct vfile *)p);
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
	struct vfile *f = (struct vfile *)p;
	int rc = flush(f);

	if (rc == SQLITE_OK)
		rc = f->real->pMethods->xFileSize(f->real, size);
	/* SQLite asks the database's size right after CKPT_START. */
	if (rc == SQLITE_OK && f->wal && f->wal->ckpt)
		f->room = *size;
	return rc;
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

/* Before a checkpoint copies pages past the database's end: the file
 * extended to the size it will have, with zeros, so that the copy writes
 * only into allocated space (a failure here, disk full, leaves the rest to
 * the copy's own writes, which fail the checkpoint). */
static void
db_extend(struct vfile *f, sqlite3_int64 want)
{
	static const char zeros[WAL_BUF];
	sqlite3_int64 have;

	if (f->real->pMethods->xFileSize(f->real, &have) != SQLITE_OK)
		return;
	while (have < want) {
		int n = want - have < WAL_BUF ? (int)(want - have) : WAL_BUF;
		if (f->real->pMethods->xWrite(f->real, zeros, n, have) != SQLITE_OK)
			break;
		have += n;
	}
	f->room = have;
}

static int
v_file_control(sqlite3_file *p, int op, void *arg)
{
	struct vfile *f = (struct vfile *)p, *w = f->wal;
	int rc = flush(f);

	/* On the database file, around a checkpoint's copy loop. */
	if (w && (op == SQLITE_FCNTL_CKPT_START || op == SQLITE_FCNTL_CKPT_DONE)) {
		if (rc != SQLITE_OK) {
			fprintf(stderr, "agentd: store: cannot write the pages of a checkpoint "
					"being recorded; stopping so that it is not\n");
			abort();
		}
		ra_drop(w);
		w->ckpt = op == SQLITE_FCNTL_CKPT_START;
		f->room = -1;
	}
	if (rc != SQLITE_OK)
		return rc;
	if (op == SQLITE_FCNTL_SIZE_HINT && w && w->ckpt)
		db_extend(f, *(const sqlite3_int64 *)arg);
	return f->real->pMethods->xFileControl(f->real, op, arg);
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
	int rc = flush((struct vfile *)p);

	return rc != SQLITE_OK ? rc : flush(((struct vfile *)p)->wal);
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
	/* The WAL's write lock is slot 0: taken, or given up. */
	struct vfile *w = ((struct vfile *)p)->wal;
	if (w && offset == 0 && (flags & SQLITE_SHM_EXCLUSIVE)) {
		ra_drop(w);
		w->writer = (flags & SQLITE_SHM_LOCK) && rc2 == SQLITE_OK;
	}
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
	f->rnext = -1;
	f->rsize = -1;
	f->room = -1;
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

	/* Before SQLite's first use in the process (this runs before the
	 * store's first open): no count of its memory, which SQLite keeps
	 * under a global mutex at every allocation and agentd never reads
	 * (docs/performance.md, "SQLite without memory statistics"). Where
	 * SQLite was used first, the call fails and the counts stay: no harm. */
	sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
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
