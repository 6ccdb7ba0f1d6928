/* WAL checkpoints beside the writer (docs/store.md, "Checkpoints").
 *
 * The writer connection does not checkpoint itself: its WAL hook wakes a
 * thread every CKPT_STEP bytes of WAL, and that thread runs a PASSIVE
 * checkpoint on a connection of its own, copying the frames to the database
 * and fsyncing both files while the writer goes on committing. A passive
 * checkpoint never waits for the writer, and so never catches up with one
 * that keeps writing; but SQLite only rewinds the WAL to its start once a
 * checkpoint has copied every frame. So when the WAL reaches CKPT_CAP the
 * thread makes one more pass, and once it has ended the writer checkpoints
 * what it left (the frames committed during that pass: 165 to 220 KB with
 * 10 KB calls), and its next commit starts the WAL over. The WAL left by a
 * crash, which the next open reads back whole, stays near CKPT_CAP, and
 * under CKPT_HARD (the writer's threshold before) whatever the disk does.
 * The checkpoints' fsyncs are SQLite's, from a connection with the
 * writer's synchronous setting, plus one of the database per pass: no
 * durability mode is weakened. Before each checkpoint the payload file is
 * fsynced (sqlite_payload.c): the texts of the rows it copies into the
 * database are on the disk before them.
 *
 * When the store opens onto a WAL that is there already (the one a crash
 * left, or another process's), nothing is checkpointed in the first
 * CKPT_GRACE_NS (unless the WAL reaches CKPT_HARD), so a run resumed after a
 * crash does not copy that WAL while it builds its sandbox. A store opened
 * with no WAL has none to copy: its checkpoints start at once, and so a
 * crash in its first moments leaves a WAL no longer than CKPT_CAP's cycle
 * makes it, for the next open to read back.
 *
 * The thread is started by the first wake-up, so a store that writes little
 * never has one. It only ever runs SQLite on its own connection, holding
 * fork_gate, which fork() takes first (pthread_atfork): a child forked by
 * glibc's fork never inherits SQLite's mutexes held by it. The sandbox's
 * clone3 child does not run those handlers and needs none: it makes only
 * async-signal-safe calls before exec (sandbox/child.c). */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/sqlite-internal.h"

/* WAL bytes between two passes of the thread, and the WAL size at which the
 * writer copies the rest itself (docs/performance.md, "Checkpoints beside
 * the writer"). */
#define CKPT_STEP (512 << 10)
#define CKPT_CAP  (4 << 20)
#define CKPT_HARD (16 << 20)
/* No checkpoint in the first CKPT_GRACE_NS after the store opens, unless the
 * WAL reaches CKPT_HARD. A run resumed after a crash opens onto the WAL the
 * crash left, up to CKPT_CAP, and its first commit would start copying it
 * (and fsyncing) on the second CPU just as the sandbox is built and the
 * journal verified (docs/performance.md, "Resuming without a checkpoint
 * beside it"). */
#define CKPT_GRACE_NS (100 * 1000000LL)

struct store_ckpt {
	sqlite3 *db; /* the writer's connection, whose WAL hook this is */
	char *path;
	int pfd; /* the payload file */
	bool power;
	int step, cap, hard; /* in frames */
	int next, last;	     /* writer only: frames at the next wake-up, at the last commit */
	bool final;	     /* writer only: the last pass before its own was asked for */
	bool started;	     /* writer only: the thread exists (or failed to start) */
	pthread_t thread;    /* valid if started and !failed */
	bool failed;
	pthread_mutex_t mu; /* guards pending, running and stop */
	pthread_cond_t cv;
	bool pending, running, stop;
	int64_t grace_until; /* writer only: CLOCK_MONOTONIC ns, 0 once past */
};

static int64_t
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static pthread_mutex_t fork_gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

static void
gate_lock(void)
{
	pthread_mutex_lock(&fork_gate);
}

static void
gate_unlock(void)
{
	pthread_mutex_unlock(&fork_gate);
}

static void
gate_register(void)
{
	pthread_atfork(gate_lock, gate_unlock, gate_unlock);
}

/* The thread's connection: same file, same hardening, and the writer's
 * synchronous setting, which decides the checkpoint's fsyncs. */
static sqlite3 *
ckpt_connect(const struct store_ckpt *c)
{
	sqlite3 *db = NULL;

	if (sqlite3_open_v2(c->path, &db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_NOFOLLOW |
				SQLITE_OPEN_EXRESCODE,
			    store_sqlite_vfs()) != SQLITE_OK)
		goto fail;
	sqlite3_db_config(db, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_TRUSTED_SCHEMA, 0, NULL);
	sqlite3_db_config(db, SQLITE_DBCONFIG_ENABLE_LOAD_EXTENSION, 0, NULL);
	if (sqlite3_exec(db, c->power ? "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL",
			 NULL, NULL, NULL) != SQLITE_OK)
		goto fail;
	return db;
fail:
	sqlite3_close(db);
	return NULL;
}

/* One passive checkpoint. SQLite fsyncs the WAL before it copies frames,
 * but the database only after a pass that copied every frame the WAL holds
 * when it ends, which one beside a busy writer never does: the pages it
 * wrote would all be flushed by the writer's own checkpoint (and, with
 * ext4's ordered data, by a journal commit any other fsync forces). */
static void
ckpt_pass(const struct store_ckpt *c, sqlite3 *db)
{
	sqlite3_file *f = NULL;
	int log = 0, done = 0;

	if (fdatasync(c->pfd) < 0)
		return;
	if (sqlite3_wal_checkpoint_v2(db, NULL, SQLITE_CHECKPOINT_PASSIVE, &log, &done) !=
		SQLITE_OK ||
	    done <= 0)
		return;
	if (sqlite3_file_control(db, "main", SQLITE_FCNTL_FILE_POINTER, &f) == SQLITE_OK && f &&
	    f->pMethods)
		f->pMethods->xSync(f, c->power ? SQLITE_SYNC_FULL : SQLITE_SYNC_NORMAL);
}

static void *
ckpt_main(void *arg)
{
	struct store_ckpt *c = arg;
	sqlite3 *db = NULL;

	pthread_mutex_lock(&c->mu);
	for (;;) {
		while (!c->pending && !c->stop)
			pthread_cond_wait(&c->cv, &c->mu);
		if (c->stop)
			break;
		c->pending = false;
		c->running = true;
		pthread_mutex_unlock(&c->mu);
		gate_lock();
		if (!db)
			db = ckpt_connect(c);
		/* SQLITE_BUSY (another checkpoint is running, the writer's or
		 * another process's) and errors leave the frames to the next pass
		 * or to the writer at CKPT_CAP. */
		if (db)
			ckpt_pass(c, db);
		gate_unlock();
		pthread_mutex_lock(&c->mu);
		c->running = false;
		pthread_cond_broadcast(&c->cv);
	}
	pthread_mutex_unlock(&c->mu);
	gate_lock();
	sqlite3_close(db);
	gate_unlock();
	return NULL;
}

/* Start the thread with every signal blocked: they are the loop's. */
static void
ckpt_start(struct store_ckpt *c)
{
	sigset_t all, old;

	c->started = true;
	pthread_once(&fork_once, gate_register);
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	c->failed = pthread_create(&c->thread, NULL, ckpt_main, c) != 0;
	pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Wake the thread for a pass, starting it first if need be. False if
 * there is no thread (it could not be started). */
static bool
ckpt_wake(struct store_ckpt *c)
{
	if (!c->started)
		ckpt_start(c);
	if (c->failed)
		return false;
	pthread_mutex_lock(&c->mu);
	c->pending = true;
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	return true;
}

/* Whether the pass asked for last has ended (or there is no thread). With
 * wait, until it has. */
static bool
ckpt_done(struct store_ckpt *c, bool wait)
{
	bool done;

	if (!c->started || c->failed)
		return true;
	pthread_mutex_lock(&c->mu);
	while (wait && (c->pending || c->running))
		pthread_cond_wait(&c->cv, &c->mu);
	done = !c->pending && !c->running;
	pthread_mutex_unlock(&c->mu);
	return done;
}

static int
ckpt_hook(void *arg, sqlite3 *db, const char *name, int frames)
{
	struct store_ckpt *c = arg;

	if (c->grace_until) {
		if (frames < c->hard && now_ns() < c->grace_until)
			return SQLITE_OK;
		c->grace_until = 0;
	}
	if (frames < c->last) { /* the WAL started over */
		c->next = c->step;
		c->final = false;
	}
	c->last = frames;
	if (frames >= c->cap) {
		/* A last pass first, from here: what it leaves, the frames
		 * committed while it runs, is what the writer copies itself,
		 * once it has ended (a later commit), unless the WAL has grown
		 * to CKPT_HARD meanwhile (a pass slowed down by other I/O); then
		 * this commit waits for it. No other wake-up until then. */
		if (!c->final) {
			c->final = true;
			if (ckpt_wake(c))
				return SQLITE_OK;
		}
		if (!ckpt_done(c, frames >= c->hard))
			return SQLITE_OK;
		if (fdatasync(c->pfd) == 0)
			sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
		return SQLITE_OK;
	}
	if (frames < c->next)
		return SQLITE_OK;
	c->next = frames + c->step;
	ckpt_wake(c); /* without a thread, the writer's checkpoints at CKPT_CAP remain */
	return SQLITE_OK;
}

int
store_ckpt_attach(sqlite3 *db, enum store_durability d, int page_size, int payload_fd,
		  bool wal_found, struct store_ckpt **ret)
{
	struct store_ckpt *c;
	const char *path = sqlite3_db_filename(db, "main");

	if (!path || !*path)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->path = strdup(path);
	if (!c->path) {
		free(c);
		return -ENOMEM;
	}
	c->db = db;
	c->pfd = payload_fd;
	c->power = d == STORE_DURABILITY_POWER;
	c->step = CKPT_STEP / page_size;
	c->cap = CKPT_CAP / page_size;
	c->hard = CKPT_HARD / page_size;
	c->next = c->step;
	c->grace_until = wal_found ? now_ns() + CKPT_GRACE_NS : 0;
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	/* Replaces SQLite's own checkpoint after a commit (wal_autocheckpoint). */
	sqlite3_wal_hook(db, ckpt_hook, c);
	*ret = c;
	return 0;
}

struct store_ckpt *
store_ckpt_free(struct store_ckpt *c)
{
	if (!c)
		return NULL;
	sqlite3_wal_hook(c->db, NULL, NULL);
	if (c->started && !c->failed) {
		pthread_mutex_lock(&c->mu);
		c->stop = true;
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
		pthread_join(c->thread, NULL);
	}
	pthread_cond_destroy(&c->cv);
	pthread_mutex_destroy(&c->mu);
	free(c->path);
	free(c);
	return NULL;
}
