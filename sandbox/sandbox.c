/* sandbox_prepare(): validate the configuration and build the plan in the
 * parent (allocations allowed here); sandbox_spawn(): clone3 the child, write
 * its id maps, release it, and wait for exec or a setup error. */
#include "sandbox/internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/landlock.h>
#include <linux/sched.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"

static const char *const sbx_step_names[SBX_STEP__MAX] = {
    [SBX_STEP_SYNC] = "waiting for id maps (user namespace)",
    [SBX_STEP_PROPAGATION] = "making mounts private (mount namespace)",
    [SBX_STEP_SCRATCH] = "scratch tmpfs (mount namespace)",
    [SBX_STEP_PIVOT_SCRATCH] = "pivot_root into scratch (mount namespace)",
    [SBX_STEP_ROOT_TMPFS] = "root tmpfs (mount namespace)",
    [SBX_STEP_MOUNT_OP] = "mount",
    [SBX_STEP_PIVOT] = "pivot_root (mount namespace)",
    [SBX_STEP_UMOUNT_OLD] = "detaching the host root (mount namespace)",
    [SBX_STEP_ROOT_RO] = "read-only root (mount namespace)",
    [SBX_STEP_CHDIR] = "chdir to cwd",
    [SBX_STEP_HOSTNAME] = "sethostname (uts namespace)",
    [SBX_STEP_LOOPBACK] = "bringing up lo (network namespace)",
    [SBX_STEP_SETSID] = "setsid",
    [SBX_STEP_FDS] = "arranging file descriptors",
    [SBX_STEP_RLIMIT] = "setrlimit",
    [SBX_STEP_CAPBSET] = "dropping the capability bounding set",
    [SBX_STEP_AMBIENT] = "clearing ambient capabilities",
    [SBX_STEP_SECUREBITS] = "locking securebits",
    [SBX_STEP_SETGROUPS] = "setgroups",
    [SBX_STEP_SETGID] = "setresgid",
    [SBX_STEP_SETUID] = "setresuid",
    [SBX_STEP_CAPSET] = "clearing capabilities (capset)",
    [SBX_STEP_NNP] = "no_new_privs",
    [SBX_STEP_LANDLOCK] = "landlock",
    [SBX_STEP_SECCOMP] = "seccomp",
    [SBX_STEP_PDEATHSIG] = "parent-death signal",
    [SBX_STEP_INIT] = "sandbox init",
    [SBX_STEP_GATE] = "waiting for the start (gate)",
    [SBX_STEP_FORK] = "forking the program",
    [SBX_STEP_EXEC] = "exec",
};

/* Landlock filesystem rights by bit. */
#define LL_EXECUTE	   (1ull << 0)
#define LL_WRITE_FILE	   (1ull << 1)
#define LL_READ_FILE	   (1ull << 2)
#define LL_READ_DIR	   (1ull << 3)
#define LL_IOCTL_DEV	   (1ull << 15)
#define LL_TRUNCATE	   (1ull << 14)
#define LL_RO		   (LL_EXECUTE | LL_READ_FILE | LL_READ_DIR)
#define LL_ALL		   ((1ull << 16) - 1)
#define LL_SCOPE_ALL	   ((1ull << 0) | (1ull << 1)) /* abstract unix sockets, signals */
#define LL_NET_BIND_TCP	   (1ull << 0)
#define LL_NET_CONNECT_TCP (1ull << 1)

static void __attribute__((format(printf, 3, 4)))
set_err(char *err, size_t errsz, const char *fmt, ...)
{
	va_list ap;

	if (!err || errsz == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errsz, fmt, ap);
	va_end(ap);
}

static const char *
errname(int e)
{
	const char *n = strerrorname_np(e);
	return n ? n : "unknown error";
}

static void
strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static char **
strv_dup(const char *const *v)
{
	size_t n = 0;

	while (v[n])
		n++;
	char **r = calloc(n + 1, sizeof(char *));
	if (!r)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!(r[i] = strdup(v[i]))) {
			strv_free(r);
			return NULL;
		}
	return r;
}

struct sandbox_plan *
sandbox_plan_free(struct sandbox_plan *p)
{
	if (!p)
		return NULL;
	for (size_t i = 0; i < p->n_ops; i++) {
		free(p->ops[i].src);
		free(p->ops[i].dst);
		free(p->ops[i].what);
	}
	free(p->ops);
	for (size_t i = 0; i < p->n_ll; i++)
		free(p->ll[i].path);
	free(p->ll);
	strv_free(p->argv);
	strv_free(p->envp);
	strv_free(p->exec_paths);
	free(p->cwd);
	free(p->hostname);
	free(p->uid_map);
	free(p->gid_map);
	free(p->bpf);
	free(p->notify_bpf);
	if (p->cg_parent_fd >= 0)
		close(p->cg_parent_fd);
	free(p);
	return NULL;
}

/* A canonical absolute path: no empty, "." or ".." components, no trailing
 * slash, not the root itself. */
static bool
path_ok(const char *s)
{
	if (!s || s[0] != '/' || s[1] == '\0' || strlen(s) >= 1024)
		return false;
	for (const char *c = s; *c;) {
		const char *seg = c + 1, *end = strchr(seg, '/');
		size_t len = end ? (size_t)(end - seg) : strlen(seg);
		if (len == 0 || (len == 1 && seg[0] == '.') ||
		    (len == 2 && seg[0] == '.' && seg[1] == '.'))
			return false;
		c = seg + len;
	}
	return true;
}

static bool
path_under(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '\0' || path[n] == '/');
}

static int
add_op(struct sandbox_plan *p, enum sbx_op_kind kind, unsigned flags, mode_t mode, const char *src,
       const char *dst, const char *what)
{
	if (p->n_ops == p->cap_ops) {
		size_t cap = p->cap_ops ? p->cap_ops * 2 : 64;
		struct sbx_op *n = realloc(p->ops, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->ops = n;
		p->cap_ops = cap;
	}
	struct sbx_op *o = &p->ops[p->n_ops];
	*o = (struct sbx_op){.kind = kind, .flags = flags, .mode = mode};
	o->src = src ? strdup(src) : NULL;
	o->dst = agd_asprintf(SBX_NEWROOT "%s", dst);
	o->what = strdup(what);
	if ((src && !o->src) || !o->dst || !o->what) {
		free(o->src);
		free(o->dst);
		free(o->what);
		return -ENOMEM;
	}
	p->n_ops++;
	return 0;
}

static int
add_ll(struct sandbox_plan *p, const char *path, uint64_t access)
{
	if (p->n_ll == p->cap_ll) {
		size_t cap = p->cap_ll ? p->cap_ll * 2 : 32;
		struct sbx_ll_rule *n = realloc(p->ll, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		p->ll = n;
		p->cap_ll = cap;
	}
	if (!(p->ll[p->n_ll].path = strdup(path)))
		return -ENOMEM;
	p->ll[p->n_ll++].access = access;
	return 0;
}

/* mkdir every parent of path inside the new root (tmpfs; ones that already
 * exist, e.g. inside an earlier bind, are accepted as they are). */
static int
add_parents(struct sandbox_plan *p, const char *path)
{
	char buf[1024];
	int r;

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *c = buf + 1; *c; c++) {
		if (*c != '/')
			continue;
		*c = '\0';
		r = add_op(p, SBX_MKDIR, 0, 0755, NULL, buf, "creating a mount point");
		*c = '/';
		if (r < 0)
			return r;
	}
	return 0;
}

/* Bind host:path. The host path is resolved now, in the parent, so the
 * mount point type (directory or file) matches. */
static int
add_bind(struct sandbox_plan *p, const char *host, const char *path, unsigned flags, char *err,
	 size_t errsz)
{
	struct stat st;
	char what[1100];
	int r;

	if (stat(host, &st) < 0) {
		r = -errno;
		if (flags & SBX_F_OPTIONAL)
			return 0;
		set_err(err, errsz, "sandbox: bind source %s: %s", host, strerror(-r));
		return r;
	}
	/* Symlinks are resolved here, against the host root: in the child an
	 * absolute link target would be looked up in the scratch root instead
	 * (/etc/localtime -> /usr/share/zoneinfo/... would not be found). */
	cleanup_free char *real = realpath(host, NULL);
	if (!real) {
		r = -errno;
		set_err(err, errsz, "sandbox: bind source %s: %s", host, strerror(-r));
		return r;
	}
	if ((r = add_parents(p, path)) < 0)
		return r;
	snprintf(what, sizeof(what), "creating mount point %s", path);
	r = add_op(p, S_ISDIR(st.st_mode) ? SBX_MKDIR : SBX_MKFILE, 0, 0755, NULL, path, what);
	if (r < 0)
		return r;
	cleanup_free char *src = agd_asprintf(SBX_OLDROOT "%s", real);
	if (!src)
		return -ENOMEM;
	/* Optional means "skip if absent now"; once planned, the bind is
	 * mandatory like every other step. */
	flags &= ~SBX_F_OPTIONAL;
	snprintf(what, sizeof(what), "bind %s at %s (%s)", host, path,
		 (flags & SBX_F_RO) ? "ro" : "rw");
	if ((r = add_op(p, SBX_BIND, flags, 0, src, path, what)) < 0)
		return r;
	uint64_t access = (flags & SBX_F_RO) ? LL_RO : LL_ALL;
	if (flags & SBX_F_DEV)
		access = LL_READ_FILE | LL_WRITE_FILE | LL_IOCTL_DEV | LL_TRUNCATE;
	return add_ll(p, path, access);
}

/* Names inside a writable mount that something outside the sandbox runs or
 * trusts later: git hooks and git's config (core.hooksPath, aliases,
 * fsmonitor), shell start-up files. */
static const char *const protected_names[] = {
    ".git/hooks", ".git/config", ".bashrc", ".bash_profile", ".bash_login", ".bash_logout",
    ".profile",	  ".zshrc",	 ".zshenv", ".zprofile",     ".zlogin",	    ".envrc",
};

static bool
name_listed(const char *const *list, const char *name)
{
	for (; list && *list; list++)
		if (strcmp(*list, name) == 0)
			return true;
	return false;
}

/* A directory with nothing in it. */
static bool
dir_empty(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *e;
	bool empty = d != NULL;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return false;
	}
	while (empty && (e = readdir(d)))
		empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
	closedir(d);
	return empty;
}

/* A placeholder that could not be made because the name exists, or because
 * nobody with our rights (the program has no more) may create it there. */
static bool
placeholder_ok(int e)
{
	return e == EEXIST || e == EACCES || e == EPERM || e == EROFS;
}

/* An empty file at dirfd/name unless something is there already (a symlink
 * included: O_EXCL never follows one). */
static int
placeholder_file(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);

	if (fd < 0)
		return placeholder_ok(errno) ? 0 : -errno;
	/* readable by the program whatever our umask; writable by nobody */
	int r = fchmod(fd, 0444) < 0 ? -errno : 0;
	close(fd);
	return r;
}

/* An empty directory at dirfd/name unless something is there already. */
static int
placeholder_dir(int dirfd, const char *name)
{
	if (mkdirat(dirfd, name, 0755) < 0)
		return placeholder_ok(errno) ? 0 : -errno;
	return fchmodat(dirfd, name, 0755, 0) < 0 ? -errno : 0;
}

/* A protected name that does not exist yet cannot be covered by a bind, and
 * landlock can only add rights beneath a directory, never take one away: so
 * each missing name gets an empty placeholder on the host (a file, mode
 * 0444; for .git an empty directory), which protect_names() then binds
 * read-only like an existing one. Placeholders stay after the run: removing
 * one would detach the bind over it in every other run sharing the mount.
 * Returns 0 or a negative errno (err says which name). */
static int
make_placeholders(const struct sandbox_config *cfg, const char *host, char *err, size_t errsz)
{
	cleanup_close int dfd = open(host, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int r = 0;

	if (dfd < 0) {
		r = -errno;
		set_err(err, errsz, "sandbox: protected names in %s: %s", host, strerror(-r));
		return r;
	}
	bool hooks_rw = name_listed(cfg->writable_names, ".git/hooks");
	bool config_rw = name_listed(cfg->writable_names, ".git/config");
	if (!hooks_rw || !config_rw) {
		if ((r = placeholder_dir(dfd, ".git")) < 0)
			goto fail;
		/* An empty .git (ours, or anyone's) is bound read-only whole;
		 * inside an existing repository the missing names are made. */
		cleanup_close int gfd =
		    dir_empty(dfd, ".git")
			? -1
			: openat(dfd, ".git", O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (gfd >= 0 && !hooks_rw && (r = placeholder_dir(gfd, "hooks")) < 0)
			goto fail;
		if (gfd >= 0 && !config_rw && (r = placeholder_file(gfd, "config")) < 0)
			goto fail;
	}
	for (size_t i = 0; i < ARRAY_SIZE(protected_names); i++) {
		const char *n = protected_names[i];
		if (strchr(n, '/') || name_listed(cfg->writable_names, n))
			continue;
		if ((r = placeholder_file(dfd, n)) < 0)
			goto fail;
	}
	return 0;
fail:
	set_err(err, errsz, "sandbox: placeholder for a protected name in %s: %s", host,
		strerror(-r));
	return r;
}

/* Bind `path` (inside the sandbox, under a writable mount bound earlier)
 * over itself. Taken from the new root after the id switch, not from the
 * host: in root mode a workspace of mode 0700 belongs to the program's uid,
 * which the child has not yet become when it opens host sources. */
static int
self_bind(struct sandbox_plan *p, const char *path, unsigned flags, bool dir)
{
	char what[1100];
	int r;

	cleanup_free char *src = agd_asprintf(SBX_NEWROOT "%s", path);
	if (!src)
		return -ENOMEM;
	snprintf(what, sizeof(what), "bind %s over itself (%s)", path,
		 (flags & SBX_F_RO) ? "ro" : "rw");
	if ((r = add_op(p, SBX_BIND, flags | SBX_F_IF_REACHABLE, 0, src, path, what)) < 0)
		return r;
	uint64_t access = (flags & SBX_F_RO) ? LL_RO : LL_ALL;
	if (!dir)
		access &= LL_EXECUTE | LL_WRITE_FILE | LL_READ_FILE | LL_TRUNCATE;
	return add_ll(p, path, access);
}

/* Each protected name under a writable mount gets a read-only bind over
 * itself (made first as a placeholder when missing): the program can neither
 * write it nor remove, replace or create it (a mount point is busy). Names
 * the configuration lists stay writable; symlinks are left alone (the
 * program could retarget them anyway). */
static int
protect_names(struct sandbox_plan *p, const struct sandbox_config *cfg, const char *host,
	      const char *path, char *err, size_t errsz)
{
	struct stat st;
	int r;

	if ((r = make_placeholders(cfg, host, err, errsz)) < 0)
		return r;

	/* Pin .git itself with a read-write bind over itself: a mount point
	 * cannot be renamed, so the program cannot move the protected .git
	 * aside and put a fresh one with its own hooks in its place. */
	cleanup_free char *git = agd_asprintf("%s/.git", host);
	cleanup_free char *git_in = agd_asprintf("%s/.git", path);
	if (!git || !git_in)
		return -ENOMEM;
	/* An empty .git (the placeholder) is bound read-only: no repository
	 * with hooks or config of the program's making can appear there. */
	if ((!name_listed(cfg->writable_names, ".git/hooks") ||
	     !name_listed(cfg->writable_names, ".git/config")) &&
	    lstat(git, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (r = self_bind(p, git_in, dir_empty(AT_FDCWD, git) ? SBX_F_RO : 0, true)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(protected_names); i++) {
		const char *n = protected_names[i];
		if (name_listed(cfg->writable_names, n))
			continue;
		cleanup_free char *h = agd_asprintf("%s/%s", host, n);
		cleanup_free char *in = agd_asprintf("%s/%s", path, n);
		if (!h || !in)
			return -ENOMEM;
		if (lstat(h, &st) < 0 || S_ISLNK(st.st_mode))
			continue;
		if ((r = self_bind(p, in, SBX_F_RO, S_ISDIR(st.st_mode))) < 0)
			return r;
	}
	return 0;
}

/* /bin, /lib... mirror the host: a symlink (merged /usr) stays a symlink, a
 * real directory becomes a read-only bind. */
static int
add_system_dir(struct sandbox_plan *p, const char *dir, char *err, size_t errsz)
{
	struct stat st;
	char target[512];

	if (lstat(dir, &st) < 0)
		return 0;
	if (S_ISLNK(st.st_mode)) {
		ssize_t n = readlink(dir, target, sizeof(target) - 1);
		if (n <= 0)
			return 0;
		target[n] = '\0';
		return add_op(p, SBX_SYMLINK, 0, 0, target, dir, "system symlink");
	}
	if (!S_ISDIR(st.st_mode))
		return 0;
	return add_bind(p, dir, dir, SBX_F_RO, err, errsz);
}

static int
build_mounts(struct sandbox_plan *p, const struct sandbox_config *cfg, char *err, size_t errsz)
{
	static const char *const sysdirs[] = {"/usr",	"/bin",	  "/sbin",  "/lib",
					      "/lib64", "/lib32", "/libx32"};
	/* Never /etc/shadow or gshadow: only what name resolution, the dynamic
	 * linker and TLS need. */
	static const char *const etc[] = {
	    "/etc/ld.so.cache", "/etc/ld.so.conf",  "/etc/ld.so.conf.d",  "/etc/alternatives",
	    "/etc/localtime",	"/etc/hosts",	    "/etc/nsswitch.conf", "/etc/passwd",
	    "/etc/group",	"/etc/resolv.conf", "/etc/ssl/certs",	  "/etc/ca-certificates",
	    "/etc/host.conf",	"/etc/mime.types",
	};
	static const char *const devs[] = {"/dev/null",	  "/dev/zero",	  "/dev/full",
					   "/dev/random", "/dev/urandom", "/dev/tty"};
	static const char *const devlinks[][2] = {
	    {"/proc/self/fd", "/dev/fd"},
	    {"/proc/self/fd/0", "/dev/stdin"},
	    {"/proc/self/fd/1", "/dev/stdout"},
	    {"/proc/self/fd/2", "/dev/stderr"},
	};
	static const char *const proc_ro[] = {"/proc/sys", "/proc/sysrq-trigger", "/proc/irq",
					      "/proc/bus"};
	int r;

	if ((r = add_ll(p, "/", LL_READ_DIR)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(sysdirs); i++)
		if ((r = add_system_dir(p, sysdirs[i], err, errsz)) < 0)
			return r;
	if ((r = add_op(p, SBX_MKDIR, 0, 0755, NULL, "/etc", "creating /etc")) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(etc); i++)
		if ((r = add_bind(p, etc[i], etc[i], SBX_F_RO | SBX_F_OPTIONAL, err, errsz)) < 0)
			return r;

	/* Private /tmp, minimal /dev, fresh /proc. */
	if ((r = add_op(p, SBX_MKDIR, 0, 0755, NULL, "/tmp", "creating /tmp")) < 0 ||
	    (r = add_op(p, SBX_TMPFS, 0, 0, "mode=1777", "/tmp", "tmpfs /tmp")) < 0 ||
	    (r = add_ll(p, "/tmp", LL_ALL)) < 0)
		return r;
	if ((r = add_op(p, SBX_MKDIR, 0, 0755, NULL, "/dev", "creating /dev")) < 0 ||
	    (r = add_op(p, SBX_TMPFS, 0, 0, "mode=0755,size=64k", "/dev", "tmpfs /dev")) < 0 ||
	    (r = add_ll(p, "/dev", LL_READ_DIR)) < 0)
		return r;
	for (size_t i = 0; i < ARRAY_SIZE(devs); i++)
		if ((r = add_bind(p, devs[i], devs[i], SBX_F_DEV | SBX_F_OPTIONAL, err, errsz)) < 0)
			return r;
	for (size_t i = 0; i < ARRAY_SIZE(devlinks); i++)
		if ((r = add_op(p, SBX_SYMLINK, 0, 0, devlinks[i][0], devlinks[i][1],
				"/dev symlink")) < 0)
			return r;
	if ((r = add_op(p, SBX_MKDIR, 0, 01777, NULL, "/dev/shm", "creating /dev/shm")) < 0 ||
	    (r = add_op(p, SBX_TMPFS, 0, 0, "mode=1777", "/dev/shm", "tmpfs /dev/shm")) < 0 ||
	    (r = add_ll(p, "/dev/shm", LL_ALL)) < 0)
		return r;
	if ((r = add_op(p, SBX_RO, 0, 0, NULL, "/dev", "read-only /dev")) < 0)
		return r;
	if ((r = add_op(p, SBX_MKDIR, 0, 0555, NULL, "/proc", "creating /proc")) < 0 ||
	    (r = add_op(p, SBX_PROC, 0, 0, NULL, "/proc", "proc /proc (pid namespace)")) < 0 ||
	    (r = add_ll(p, "/proc", LL_READ_FILE | LL_READ_DIR | LL_WRITE_FILE)) < 0)
		return r;
	/* Kernel knobs stay read-only even where the namespace would allow more. */
	for (size_t i = 0; i < ARRAY_SIZE(proc_ro); i++) {
		cleanup_free char *src = agd_asprintf(SBX_NEWROOT "%s", proc_ro[i]);
		char what[64];
		if (!src)
			return -ENOMEM;
		snprintf(what, sizeof(what), "read-only %s", proc_ro[i]);
		if ((r = add_op(p, SBX_BIND, SBX_F_RO | SBX_F_OPTIONAL, 0, src, proc_ro[i], what)) <
		    0)
			return r;
	}

	/* The caller's directories last, so they shadow anything above. */
	if ((r = add_bind(p, cfg->cwd, cfg->cwd, SBX_F_RO, err, errsz)) < 0)
		return r;
	if ((r = add_bind(p, cfg->workspace, "/workspace", 0, err, errsz)) < 0 ||
	    (r = protect_names(p, cfg, cfg->workspace, "/workspace", err, errsz)) < 0)
		return r;
	for (size_t i = 0; i < cfg->n_binds; i++) {
		const struct sandbox_bind *b = &cfg->binds[i];
		if ((r = add_bind(p, b->host, b->path, b->read_write ? 0 : SBX_F_RO, err, errsz)) <
		    0)
			return r;
		if (b->read_write && (r = protect_names(p, cfg, b->host, b->path, err, errsz)) < 0)
			return r;
	}
	return 0;
}

static int
check_dir(const char *what, const char *path, char *err, size_t errsz)
{
	struct stat st;

	if (!path_ok(path)) {
		set_err(err, errsz,
			"sandbox: %s must be a canonical absolute path other than /: %s", what,
			path ? path : "(none)");
		return -EINVAL;
	}
	if (stat(path, &st) < 0) {
		int r = -errno;
		set_err(err, errsz, "sandbox: %s %s: %s", what, path, strerror(-r));
		return r;
	}
	if (!S_ISDIR(st.st_mode)) {
		set_err(err, errsz, "sandbox: %s %s is not a directory", what, path);
		return -ENOTDIR;
	}
	return 0;
}

static int
check_fd(const char *what, int fd, bool may_be_none, char *err, size_t errsz)
{
	if (fd == -1 && may_be_none)
		return 0;
	if (fd < 0 || fcntl(fd, F_GETFD) < 0) {
		set_err(err, errsz, "sandbox: %s fd %d is not open", what, fd);
		return -EBADF;
	}
	return 0;
}

static int
validate(const struct sandbox_config *cfg, char *err, size_t errsz)
{
	int r;

	if (!cfg->argv || !cfg->argv[0] || !cfg->argv[0][0]) {
		set_err(err, errsz, "sandbox: no program given (argv is empty)");
		return -EINVAL;
	}
	if (!cfg->envp) {
		set_err(err, errsz, "sandbox: envp is required (the complete environment)");
		return -EINVAL;
	}
	if ((r = check_dir("cwd", cfg->cwd, err, errsz)) < 0 ||
	    (r = check_dir("workspace", cfg->workspace, err, errsz)) < 0)
		return r;
	if (cfg->n_binds && !cfg->binds) {
		set_err(err, errsz, "sandbox: n_binds is set but binds is NULL");
		return -EINVAL;
	}
	for (size_t i = 0; i < cfg->n_binds; i++) {
		const struct sandbox_bind *b = &cfg->binds[i];
		if (!path_ok(b->host) || !path_ok(b->path)) {
			set_err(err, errsz,
				"sandbox: bind %zu: host and path must be canonical absolute paths "
				"other than /",
				i);
			return -EINVAL;
		}
		if (path_under(b->path, "/proc") || path_under(b->path, "/dev")) {
			set_err(err, errsz, "sandbox: bind %zu: %s is reserved", i, b->path);
			return -EINVAL;
		}
	}
	if (path_under(cfg->cwd, "/proc") || path_under(cfg->cwd, "/dev")) {
		set_err(err, errsz, "sandbox: cwd %s cannot be shown inside the sandbox", cfg->cwd);
		return -EINVAL;
	}
	const char *h = cfg->hostname ? cfg->hostname : "agentd";
	if (!h[0] || strlen(h) > 64) {
		set_err(err, errsz, "sandbox: hostname must be 1..64 bytes");
		return -EINVAL;
	}
	if ((r = check_fd("channel", cfg->channel_fd, true, err, errsz)) < 0 ||
	    (r = check_fd("stdin", cfg->stdin_fd, true, err, errsz)) < 0 ||
	    (r = check_fd("stdout", cfg->stdout_fd, true, err, errsz)) < 0 ||
	    (r = check_fd("stderr", cfg->stderr_fd, true, err, errsz)) < 0)
		return r;
	if (geteuid() == 0 &&
	    (cfg->uid == 0 || cfg->gid == 0 || cfg->uid == (uid_t)-1 || cfg->gid == (gid_t)-1)) {
		set_err(err, errsz,
			"sandbox: running as root needs an unprivileged uid/gid for the program "
			"(got %u:%u; root is never mapped)",
			(unsigned)cfg->uid, (unsigned)cfg->gid);
		return -EPERM;
	}
	return 0;
}

/* Where execve will look for argv[0], computed here because PATH lookup
 * allocates. The paths are the sandbox's, which mirror the host's /usr. */
static int
build_exec_paths(struct sandbox_plan *p, const struct sandbox_config *cfg)
{
	const char *prog = cfg->argv[0];
	const char *path = "/usr/local/bin:/usr/bin:/bin";
	size_t n = 1;

	if (strchr(prog, '/')) {
		p->exec_paths = calloc(2, sizeof(char *));
		if (!p->exec_paths || !(p->exec_paths[0] = strdup(prog)))
			return -ENOMEM;
		return 0;
	}
	for (const char *const *e = cfg->envp; *e; e++)
		if (strncmp(*e, "PATH=", 5) == 0)
			path = *e + 5;
	for (const char *c = path; *c; c++)
		n += *c == ':';
	p->exec_paths = calloc(n + 1, sizeof(char *));
	if (!p->exec_paths)
		return -ENOMEM;
	size_t k = 0;
	for (const char *c = path;;) {
		const char *end = strchrnul(c, ':');
		int len = (int)(end - c);
		/* Like execvp, an empty entry means the current directory. */
		p->exec_paths[k] =
		    len ? agd_asprintf("%.*s/%s", len, c, prog) : agd_asprintf("./%s", prog);
		if (!p->exec_paths[k++])
			return -ENOMEM;
		if (!*end)
			break;
		c = end + 1;
	}
	return 0;
}

static void
add_rlimit(struct sandbox_plan *p, int res, uint64_t want)
{
	struct rlimit cur;

	/* Never above the current hard limit: raising needs CAP_SYS_RESOURCE. */
	if (getrlimit((__rlimit_resource_t)res, &cur) == 0 && cur.rlim_max != RLIM_INFINITY &&
	    (want == RLIM_INFINITY || want > cur.rlim_max))
		want = cur.rlim_max;
	p->rl_resource[p->n_rl] = res;
	p->rl_value[p->n_rl].rlim_cur = want;
	p->rl_value[p->n_rl].rlim_max = want;
	p->n_rl++;
}

static void
probe_landlock(struct sandbox_plan *p)
{
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);

	if (abi < 1) {
		snprintf(p->notes, sizeof(p->notes),
			 "landlock unavailable (%s): the filesystem is fenced by the mount "
			 "namespace only",
			 errname(errno));
		p->ll_abi = 0;
		return;
	}
	p->ll_abi = (int)abi;
	p->ll_handled_fs = (1ull << 13) - 1; /* ABI 1 */
	if (abi >= 2)
		p->ll_handled_fs |= 1ull << 13; /* refer */
	if (abi >= 3)
		p->ll_handled_fs |= 1ull << 14; /* truncate */
	if (abi >= 5)
		p->ll_handled_fs |= 1ull << 15; /* ioctl_dev */
	/* TCP bind and connect with no rule allowing any port: a second fence
	 * behind the socket-family filter when only unix sockets are allowed. */
	if (abi >= 4 && !p->inet)
		p->ll_handled_net = LL_NET_BIND_TCP | LL_NET_CONNECT_TCP;
	if (abi >= 6)
		p->ll_scoped = LL_SCOPE_ALL;
}

/* Why a required landlock is missing, and how to get it. */
static void
landlock_refusal(const struct sandbox_config *cfg, char *err, size_t errsz)
{
	if (cfg->unsafe_no_landlock) {
		set_err(err, errsz,
			"sandbox: required defence missing: landlock: switched off by the caller");
		return;
	}
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, LANDLOCK_CREATE_RULESET_VERSION);
	int e = abi < 0 ? errno : 0;
	if (e == EOPNOTSUPP)
		set_err(err, errsz,
			"sandbox: required defence missing: landlock: the kernel has it but it is "
			"disabled (add landlock to the lsm= boot parameter)");
	else
		set_err(err, errsz,
			"sandbox: required defence missing: landlock: kernel without landlock (%s; "
			"needs Linux >= 5.13 with CONFIG_SECURITY_LANDLOCK and lsm=landlock)",
			errname(e ? e : ENOSYS));
}

static void add_note(struct sandbox_plan *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
add_note(struct sandbox_plan *p, const char *fmt, ...)
{
	size_t used = strlen(p->notes);
	va_list ap;

	if (used && used + 2 < sizeof(p->notes)) {
		memcpy(p->notes + used, "; ", 3);
		used += 2;
	}
	va_start(ap, fmt);
	vsnprintf(p->notes + used, sizeof(p->notes) - used, fmt, ap);
	va_end(ap);
}

/* A cgroup per child when asked for and possible; else a note, or a refusal
 * when the caller requires it. */
static int
plan_cgroup(struct sandbox_plan *p, const struct sandbox_config *cfg, char *err, size_t errsz)
{
	char why[640] = "";
	int r;

	if (cfg->cgroup && (r = sbx_cgroup_plan(p, cfg, why, sizeof(why))) < 0) {
		set_err(err, errsz, "sandbox: %s", why[0] ? why : errname(-r));
		return r;
	}
	if (p->cg_parent_fd >= 0)
		return 0;
	p->skipped |= SANDBOX_DEFENCE_CGROUP;
	if (!cfg->cgroup)
		snprintf(why, sizeof(why), "cgroup: none asked for");
	if (cfg->require & SANDBOX_DEFENCE_CGROUP) {
		set_err(err, errsz, "sandbox: required defence missing: %s", why);
		return -EOPNOTSUPP;
	}
	add_note(p, "%s: memory, pids and cpu are bounded by rlimits and the pid namespace only",
		 why);
	return 0;
}

int
sandbox_prepare(const struct sandbox_config *cfg, struct sandbox_plan **ret, char *err,
		size_t errsz)
{
	struct sandbox_plan *p = NULL;
	int r;

	if (!cfg || !ret) {
		set_err(err, errsz, "sandbox: no configuration");
		return -EINVAL;
	}
	if ((r = validate(cfg, err, errsz)) < 0)
		return r;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->cg_parent_fd = -1;
	p->rootless = geteuid() != 0;
	p->uid = p->rootless ? geteuid() : cfg->uid;
	p->gid = p->rootless ? getegid() : cfg->gid;
	p->uid_map = agd_asprintf("%u %u 1\n", (unsigned)p->uid, (unsigned)p->uid);
	p->gid_map = agd_asprintf("%u %u 1\n", (unsigned)p->gid, (unsigned)p->gid);
	p->hostname = strdup(cfg->hostname ? cfg->hostname : "agentd");
	p->cwd = strdup(cfg->cwd);
	p->argv = strv_dup(cfg->argv);
	p->envp = strv_dup(cfg->envp);
	if (!p->uid_map || !p->gid_map || !p->hostname || !p->cwd || !p->argv || !p->envp) {
		r = -ENOMEM;
		goto fail;
	}
	if ((r = build_exec_paths(p, cfg)) < 0)
		goto fail;
	p->stdio[0] = cfg->stdin_fd;
	p->stdio[1] = cfg->stdout_fd;
	p->stdio[2] = cfg->stderr_fd;
	p->stdio[3] = cfg->channel_fd;

	const struct sandbox_rlimits *rl = &cfg->rlimits;
	add_rlimit(p, RLIMIT_AS, rl->address_space ? rl->address_space : 16ull << 30);
	add_rlimit(p, RLIMIT_CPU, rl->cpu_seconds ? rl->cpu_seconds : RLIM_INFINITY);
	add_rlimit(p, RLIMIT_FSIZE, rl->file_size ? rl->file_size : 1ull << 30);
	add_rlimit(p, RLIMIT_NOFILE, rl->open_files ? rl->open_files : 1024);
	add_rlimit(p, RLIMIT_NPROC, rl->processes ? rl->processes : 256);
	add_rlimit(p, RLIMIT_CORE, 0);

	if ((r = build_mounts(p, cfg, err, errsz)) < 0)
		goto fail;
	p->inet = cfg->network_loopback;
	if (!cfg->unsafe_no_landlock)
		probe_landlock(p);
	if (!p->ll_abi) {
		p->skipped |= SANDBOX_DEFENCE_LANDLOCK;
		if (cfg->require & SANDBOX_DEFENCE_LANDLOCK) {
			landlock_refusal(cfg, err, errsz);
			r = -EOPNOTSUPP;
			goto fail;
		}
	}
	if ((r = plan_cgroup(p, cfg, err, errsz)) < 0)
		goto fail;
	if (!cfg->unsafe_no_seccomp &&
	    (r = sandbox_seccomp_get(p->inet, &p->bpf, &p->bpf_len, err, errsz)) < 0)
		goto fail;
	if (p->bpf && cfg->report_violations &&
	    (r = sbx_seccomp_notify_variant(p->bpf, p->bpf_len, &p->notify_bpf, &p->notify_len)) <
		0) {
		set_err(err, errsz, "sandbox: seccomp notify program: %s", errname(-r));
		goto fail;
	}
	*ret = p;
	return 0;
fail:
	if (r == -ENOMEM && err && errsz && !err[0])
		set_err(err, errsz, "sandbox: out of memory");
	sandbox_plan_free(p);
	return r;
}

const char *
sandbox_notes(const struct sandbox_plan *p)
{
	return p && p->notes[0] ? p->notes : NULL;
}

unsigned
sandbox_skipped(const struct sandbox_plan *p)
{
	return p ? p->skipped : 0;
}

static int
write_proc(pid_t pid, const char *file, const char *data)
{
	char path[64];
	cleanup_close int fd = -1;

	snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, file);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ssize_t n = write(fd, data, strlen(data));
	if (n < 0)
		return -errno;
	return (size_t)n == strlen(data) ? 0 : -EIO;
}

static int
reap(int pidfd)
{
	siginfo_t si;
	int r;

	do
		r = waitid((idtype_t)P_PIDFD, (id_t)pidfd, &si, WEXITED);
	while (r < 0 && errno == EINTR);
	return r;
}

/* One fd sent with SCM_RIGHTS, or -1. */
static int
recv_fd(int sock)
{
	char byte;
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	int fd = -1;

	if (recvmsg(sock, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC) <= 0)
		return -1;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
		    c->cmsg_len == CMSG_LEN(sizeof(int)))
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	return fd;
}

/* sandbox_spawn_gated() with the child's cgroup already made (cgfd, or -1). */
static int
spawn_in(const struct sandbox_plan *p, const struct sandbox_gate *gate, int cgfd,
	 struct sandbox_child *ret, char *err, size_t errsz)
{
	cleanup_close int sync_r = -1, sync_w = -1, err_r = -1, err_w = -1, st_r = -1, st_w = -1;
	cleanup_close int pidfd = -1, nt_r = -1, nt_w = -1, go_r = -1, go_w = -1;
	int fds[2], r, go = 0;

	if (!p || !ret) {
		set_err(err, errsz, "sandbox: no plan");
		return -EINVAL;
	}
	/* Filled in by the child in its copy of our memory; no allocation there. */
	cleanup_free int *host_fds = calloc(p->n_ops ? p->n_ops : 1, sizeof(int));
	if (!host_fds) {
		set_err(err, errsz, "sandbox: out of memory");
		return -ENOMEM;
	}
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto errno_fail;
	sync_r = fds[0], sync_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto errno_fail;
	err_r = fds[0], err_w = fds[1];
	if (pipe2(fds, O_CLOEXEC) < 0)
		goto errno_fail;
	st_r = fds[0], st_w = fds[1];
	/* The seccomp listener comes back over this (SCM_RIGHTS). */
	if (p->notify_bpf) {
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, fds) < 0)
			goto errno_fail;
		nt_r = fds[0], nt_w = fds[1];
	}
	if (gate) {
		if (pipe2(fds, O_CLOEXEC) < 0)
			goto errno_fail;
		go_r = fds[0], go_w = fds[1];
	}

	struct clone_args ca = {
	    .flags = CLONE_PIDFD | CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | CLONE_NEWNET |
		     CLONE_NEWIPC | CLONE_NEWUTS | CLONE_NEWCGROUP,
	    .pidfd = (uint64_t)(uintptr_t)&pidfd,
	    .exit_signal = SIGCHLD,
	};
	/* Born in its cgroup: nothing of the program runs before its limits. */
	if (cgfd >= 0) {
		ca.flags |= CLONE_INTO_CGROUP;
		ca.cgroup = (uint64_t)cgfd;
	}
	long pid = syscall(SYS_clone3, &ca, sizeof(ca));
	if (pid < 0 && cgfd >= 0) {
		r = -errno;
		set_err(err, errsz, "sandbox: clone3 into the run's cgroup failed: %s",
			errname(-r));
		return r;
	}
	if (pid < 0) {
		r = -errno;
		set_err(err, errsz,
			"sandbox: clone3 failed: %s (namespaces: user, mount, pid, net, ipc, uts, "
			"cgroup; %s)",
			errname(-r),
			r == -ENOSYS ? "a kernel with clone3 (5.3+) is needed"
				     : "enable user namespaces (user.max_user_namespaces, "
				       "kernel.unprivileged_userns_clone); see `agentd doctor`");
		return r;
	}
	if (pid == 0) {
		close(sync_w);
		close(err_r);
		close(st_r);
		if (nt_r >= 0)
			close(nt_r);
		if (go_w >= 0)
			close(go_w);
		sandbox_child_main(p, sync_r, err_w, st_w, nt_w, go_r, host_fds);
	}
	close(take_fd(&sync_r));
	close(take_fd(&err_w));
	close(take_fd(&st_w));
	if (nt_w >= 0)
		close(take_fd(&nt_w));
	if (go_r >= 0)
		close(take_fd(&go_r));

	/* Id maps: map exactly one unprivileged id to itself. Rootless needs
	 * setgroups denied before gid_map may be written. */
	if (p->rootless && (r = write_proc((pid_t)pid, "setgroups", "deny")) < 0) {
		set_err(err, errsz, "sandbox: writing setgroups failed: %s (user namespace)",
			errname(-r));
		goto kill_child;
	}
	if ((r = write_proc((pid_t)pid, "uid_map", p->uid_map)) < 0) {
		set_err(err, errsz, "sandbox: writing uid_map failed: %s (user namespace)",
			errname(-r));
		goto kill_child;
	}
	if ((r = write_proc((pid_t)pid, "gid_map", p->gid_map)) < 0) {
		set_err(err, errsz, "sandbox: writing gid_map failed: %s (user namespace)",
			errname(-r));
		goto kill_child;
	}
	if ((r = agd_write_all(sync_w, "G", 1)) < 0) {
		set_err(err, errsz, "sandbox: releasing the child failed: %s", errname(-r));
		goto kill_child;
	}
	close(take_fd(&sync_w));

	/* The child builds its sandbox meanwhile and then waits for the byte on
	 * go; without it (a failed check) it is killed there, before the
	 * program exists. */
	if (gate) {
		if ((r = gate->fn(gate->ud, err, errsz)) < 0)
			goto kill_child;
		/* EPIPE: the child is gone; its report, if any, says why. */
		go = agd_write_all(go_w, "G", 1);
		close(take_fd(&go_w));
	}

	/* EOF: the program's exec closed the last write end. */
	struct sbx_report rep;
	size_t got = 0;
	while (got < sizeof(rep)) {
		ssize_t n = read(err_r, (char *)&rep + got, sizeof(rep) - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	if (got == 0 && go < 0) {
		set_err(err, errsz, "sandbox: starting the program failed: %s", errname(-go));
		reap(pidfd);
		return go;
	}
	if (got == 0) {
		/* init sent the listener before it forked the program, so it is
		 * queued by now; none means the kernel refused one (EBUSY). */
		int listener = nt_r >= 0 ? recv_fd(nt_r) : -1;
		ret->pid = (pid_t)pid;
		ret->pidfd = take_fd(&pidfd);
		ret->status_fd = take_fd(&st_r);
		ret->notify_fd = listener;
		ret->network_loopback = p->inet;
		ret->cgroup_fd = -1;
		return 0;
	}
	reap(pidfd);
	if (got != sizeof(rep) || rep.step < 0 || rep.step >= SBX_STEP__MAX || rep.err <= 0) {
		set_err(err, errsz, "sandbox: setup failed with a garbled report");
		return -EIO;
	}
	if (rep.step == SBX_STEP_MOUNT_OP && rep.op >= 0 && (size_t)rep.op < p->n_ops)
		set_err(err, errsz, "sandbox: %s failed: %s (mount namespace)", p->ops[rep.op].what,
			errname(rep.err));
	else if (rep.step == SBX_STEP_EXEC)
		set_err(err, errsz, "sandbox: exec %s failed: %s", p->argv[0], errname(rep.err));
	else
		set_err(err, errsz, "sandbox: %s failed: %s", sbx_step_names[rep.step],
			errname(rep.err));
	return -rep.err;

kill_child:
	syscall(SYS_pidfd_send_signal, pidfd, SIGKILL, NULL, 0);
	reap(pidfd);
	return r;
errno_fail:
	r = -errno;
	set_err(err, errsz, "sandbox: pipe2 failed: %s", errname(-r));
	return r;
}

int
sandbox_spawn(const struct sandbox_plan *p, struct sandbox_child *ret, char *err, size_t errsz)
{
	return sandbox_spawn_gated(p, NULL, ret, err, errsz);
}

int
sandbox_spawn_gated(const struct sandbox_plan *p, const struct sandbox_gate *gate,
		    struct sandbox_child *ret, char *err, size_t errsz)
{
	cleanup_close int cgfd = -1;
	struct sandbox_child c;
	int r;

	if (!p || !ret) {
		set_err(err, errsz, "sandbox: no plan");
		return -EINVAL;
	}
	if (p->cg_parent_fd >= 0 && (r = sbx_cgroup_create(p, &cgfd, err, errsz)) < 0)
		return r;
	if ((r = spawn_in(p, gate, cgfd, &c, err, errsz)) < 0) {
		/* the child, if any, has been reaped */
		sandbox_cgroup_remove(&cgfd);
		return r;
	}
	c.cgroup_fd = take_fd(&cgfd);
	*ret = c;
	return 0;
}

int
sandbox_child_exit(const struct sandbox_child *c, const siginfo_t *si, struct sandbox_exit *ret)
{
	struct sbx_status rep;

	if (!c || !si || !ret)
		return -EINVAL;
	if (si->si_code == CLD_KILLED || si->si_code == CLD_DUMPED) {
		/* init itself was killed (only possible from outside: the supervisor,
		 * the OOM killer); the program died with the namespace. */
		*ret = (struct sandbox_exit){.signaled = true, .code = si->si_status};
		return 0;
	}
	if (si->si_code != CLD_EXITED)
		return -EINVAL;
	if (c->status_fd >= 0) {
		struct pollfd pfd = {.fd = c->status_fd, .events = POLLIN};
		if (poll(&pfd, 1, 0) > 0 && read(c->status_fd, &rep, sizeof(rep)) == sizeof(rep) &&
		    rep.magic == SBX_STATUS_MAGIC) {
			if (WIFSIGNALED(rep.wstatus))
				*ret = (struct sandbox_exit){.signaled = true,
							     .code = WTERMSIG(rep.wstatus)};
			else
				*ret = (struct sandbox_exit){.code = WEXITSTATUS(rep.wstatus)};
			return 0;
		}
	}
	*ret = (struct sandbox_exit){.code = si->si_status};
	return 0;
}

void
sandbox_child_close(struct sandbox_child *c)
{
	if (!c)
		return;
	if (c->pidfd >= 0)
		close(c->pidfd);
	if (c->status_fd >= 0)
		close(c->status_fd);
	if (c->notify_fd >= 0)
		close(c->notify_fd);
	c->pidfd = c->status_fd = c->notify_fd = -1;
}
