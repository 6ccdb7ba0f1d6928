/* The payload file (docs/store.md, "Payloads apart from the pages").
 *
 * A journal text (a call's args or result) of STORE_PAYLOAD_MIN bytes or
 * more is appended to DB-payloads, next to the database, and its row holds
 * a reference as a BLOB where the text would be. SQLite writes every byte
 * twice, to the WAL and again to the database at a checkpoint, and keeps a
 * large text in a chain of overflow pages; here it is written once. A
 * reference is the offset, the length and a check of both (little-endian,
 * 8 bytes each): a reference damaged in the database is told from a text
 * lost past the file's end (a power loss) and reported as corruption.
 * Appends happen only inside a write transaction, under SQLite's write
 * lock, so the file's end is each writer's to use, whatever process it is
 * in. The file starts with a header that names it: its id is also in the
 * database, so a file replaced or lost is told from one a power loss cut
 * short. */
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/util.h"
#include "store/sqlite-internal.h"

static const char magic[8] = {'a', 'g', 'd', 'p', 'a', 'y', 'l', '1'};

/* The header: magic, then the id as 32 hex digits. */
#define HDR_ID 8

static void
id_hex(const unsigned char raw[16], char out[STORE_PAYLOAD_ID])
{
	static const char hex[] = "0123456789abcdef";

	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[raw[i] >> 4];
		out[2 * i + 1] = hex[raw[i] & 15];
	}
	out[32] = '\0';
}

static int
write_all(int fd, const void *p, size_t len, int64_t off)
{
	const char *c = p;

	while (len > 0) {
		ssize_t n = pwrite(fd, c, len, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		c += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* The directory entry of a new file, made durable. */
static int
sync_dir(const char *path)
{
	cleanup_free char *copy = strdup(path);
	if (!copy)
		return -ENOMEM;
	cleanup_close int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return -errno;
	return 0;
}

int
store_payload_create(const char *path, const struct stat *db_st, char ret_id[STORE_PAYLOAD_ID])
{
	unsigned char raw[16];
	char hdr[STORE_PAYLOAD_HDR] = {0};
	int r;

	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
		return -EIO;
	id_hex(raw, ret_id);
	memcpy(hdr, magic, sizeof(magic));
	memcpy(hdr + HDR_ID, ret_id, 32);
	/* Under the database's write lock and with no id recorded: nothing can
	 * refer to what an older file there holds. */
	cleanup_close int fd =
	    open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	/* Root making the store of another user's file: the file is theirs,
	 * as SQLite does for the -wal and -shm files. */
	if (geteuid() == 0 && fchown(fd, db_st->st_uid, db_st->st_gid) < 0)
		return -errno;
	r = write_all(fd, hdr, sizeof(hdr), 0);
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (r == 0)
		r = sync_dir(path);
	return r;
}

int
store_payload_open(const char *path, const char id[STORE_PAYLOAD_ID], int *ret_fd)
{
	char hdr[STORE_PAYLOAD_HDR];
	struct stat st;
	ssize_t n;

	cleanup_close int fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return errno == ENOENT ? -EBADMSG : -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EBADMSG;
	n = pread(fd, hdr, sizeof(hdr), 0);
	if (n < 0)
		return -errno;
	/* Another file, or none: its texts are not the ones the rows name. */
	if (n != (ssize_t)sizeof(hdr) || memcmp(hdr, magic, sizeof(magic)) != 0 ||
	    memcmp(hdr + HDR_ID, id, 32) != 0)
		return -EBADMSG;
	*ret_fd = take_fd(&fd);
	return 0;
}

/* The check word of a reference: a mix of its offset and length (not a
 * secret: the texts' hashes and seals are what detect an edit). */
static uint64_t
ref_check(uint64_t off, uint64_t len)
{
	uint64_t z = off * 0x9e3779b97f4a7c15ULL ^ len ^ 0x6167647061796c31ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void
ref_put(unsigned char ref[STORE_PAYLOAD_REF], uint64_t off, uint64_t len)
{
	uint64_t v[3] = {htole64(off), htole64(len), htole64(ref_check(off, len))};

	memcpy(ref, v, sizeof(v));
}

int
store_payload_append(int fd, int64_t *end, const struct iovec *iov, int n,
		     unsigned char (*refs)[STORE_PAYLOAD_REF])
{
	struct iovec v[STORE_PAYLOAD_IOV];
	size_t total = 0, done = 0;
	int64_t off;

	if (n < 1 || n > STORE_PAYLOAD_IOV)
		return -EINVAL;
	if (*end < 0) {
		struct stat st;
		if (fstat(fd, &st) < 0)
			return -errno;
		if (st.st_size < STORE_PAYLOAD_HDR)
			return -EBADMSG;
		*end = st.st_size;
	}
	off = *end;
	for (int i = 0; i < n; i++) {
		ref_put(refs[i], (uint64_t)(off + (int64_t)total), iov[i].iov_len);
		total += iov[i].iov_len;
		v[i] = iov[i];
	}
	/* One write for all of a row's texts; a short one goes on from where
	 * it stopped. */
	for (int first = 0; done < total;) {
		ssize_t w = pwritev(fd, v + first, n - first, off + (int64_t)done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			*end = -1; /* what got written, if anything, is left unreferenced */
			return w < 0 ? -errno : -EIO;
		}
		done += (size_t)w;
		while (first < n && (size_t)w >= v[first].iov_len) {
			w -= (ssize_t)v[first].iov_len;
			first++;
		}
		if (first < n) {
			v[first].iov_base = (char *)v[first].iov_base + w;
			v[first].iov_len -= (size_t)w;
		}
	}
	*end = off + (int64_t)total;
	return 0;
}

int
store_payload_ref(const void *blob, int n, size_t max, struct store_payload_ref *ret)
{
	uint64_t v[3], off, len;

	if (!blob || n != STORE_PAYLOAD_REF)
		return -EBADMSG;
	memcpy(v, blob, sizeof(v));
	off = le64toh(v[0]);
	len = le64toh(v[1]);
	if (le64toh(v[2]) != ref_check(off, len))
		return -EBADMSG;
	if (off < STORE_PAYLOAD_HDR || len == 0 || len > max || off > (uint64_t)INT64_MAX - len)
		return -EBADMSG;
	ret->off = (int64_t)off;
	ret->len = (int64_t)len;
	return 0;
}

int
store_payload_read(int fd, const struct store_payload_ref *ref, char **ret)
{
	size_t len = (size_t)ref->len, got = 0;
	cleanup_free char *buf = malloc(len + 1);

	if (!buf)
		return -ENOMEM;
	while (got < len) {
		ssize_t n = pread(fd, buf + got, len - got, ref->off + (int64_t)got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			/* Past the file's end: the text of a commit that a power
			 * loss kept while the file lost its tail (durability
			 * process). */
			struct stat st;
			if (fstat(fd, &st) < 0)
				return -errno;
			return st.st_size < ref->off + ref->len ? -ENODATA : -EIO;
		}
		got += (size_t)n;
	}
	buf[len] = '\0';
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	*ret = steal_ptr(&buf);
	return 0;
}

/* Readers hold a shared lock on the file's first byte while they read texts,
 * and space is given back only under an exclusive one (open file
 * description locks: per struct store, any process). */
static int
lock(int fd, short type, int cmd)
{
	struct flock fl = {.l_type = type, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1};

	while (fcntl(fd, cmd, &fl) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

int
store_payload_lock_read(int fd)
{
	return lock(fd, F_RDLCK, F_OFD_SETLKW);
}

int
store_payload_trylock_free(int fd)
{
	return lock(fd, F_WRLCK, F_OFD_SETLK);
}

void
store_payload_unlock(int fd)
{
	lock(fd, F_UNLCK, F_OFD_SETLK);
}

/* Whether [off, off + len) lies in the file and holds only zero bytes: space
 * given back before, or never written (a text is JSON: never a zero byte). */
static bool
zeros(int fd, int64_t off, size_t len)
{
	char buf[4096];

	if (len > sizeof(buf) || pread(fd, buf, len, off) != (ssize_t)len)
		return false;
	for (size_t i = 0; i < len; i++)
		if (buf[i])
			return false;
	return true;
}

int
store_payload_punch(int fd, const struct store_payload_ref *ref)
{
	const int64_t blk = 4096;
	int64_t a = ref->off, b = ref->off + ref->len;
	int64_t a0 = a / blk * blk, b1 = (b + blk - 1) / blk * blk;

	/* A block this span shares with one given back before is free whole
	 * once this one is: widen to it, or it would stay allocated for good. */
	if (a > a0 && zeros(fd, a0, (size_t)(a - a0)))
		a = a0;
	if (b < b1 && zeros(fd, b, (size_t)(b1 - b)))
		b = b1;
	if (fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, a, b - a) < 0)
		return errno == EOPNOTSUPP ? 0 : -errno;
	return 0;
}
