/* cgroup v2: detection (is there a hierarchy, is our cgroup in it writable by
 * us, which of the controllers the sandbox uses -- memory, pids, cpu -- does
 * it offer) and a cgroup per child. A hybrid host (controllers held by v1, an
 * empty cgroup2 at /sys/fs/cgroup/unified) has a cgroup2 without controllers:
 * runs then rely on rlimits and their pid namespace, and say so.
 *
 * Per child: sandbox_prepare() picks the parent (a delegated directory given
 * by the caller, or our own cgroup) and turns the controllers on in its
 * cgroup.subtree_control; sandbox_spawn() makes the child's directory, writes
 * its limits and clones the child straight into it (CLONE_INTO_CGROUP), so no
 * instruction of the program ever runs outside its limits; the caller ends
 * it with sandbox_cgroup_remove() after reaping (cgroup.kill, then rmdir). */
#include "sandbox/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

#include "common/util.h"

/* The first cgroup2 mount point in /proc/self/mountinfo, and its root. */
static int
find_mount(char *mnt, size_t mntsz, char *root, size_t rootsz)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[1024];
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts... - fstype source superopts */
		char *sep = strstr(line, " - ");
		char r_root[512], r_mnt[512], fstype[64];
		if (!sep || sscanf(sep + 3, "%63s", fstype) != 1 || strcmp(fstype, "cgroup2") != 0)
			continue;
		if (sscanf(line, "%*s %*s %*s %511s %511s", r_root, r_mnt) != 2)
			continue;
		snprintf(mnt, mntsz, "%s", r_mnt);
		snprintf(root, rootsz, "%s", r_root);
		r = 0;
		break;
	}
	fclose(f);
	return r;
}

/* Our cgroup v2 path ("0::/path" in /proc/self/cgroup). */
static int
own_path(char *out, size_t outsz)
{
	FILE *f = fopen("/proc/self/cgroup", "re");
	char line[1024];
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::", 3) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		r = (size_t)snprintf(out, outsz, "%s", line + 3) < outsz ? 0 : -ENAMETOOLONG;
		break;
	}
	fclose(f);
	return r;
}

static bool
has_word(const char *list, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = list; (p = strstr(p, w)); p += n)
		if ((p == list || p[-1] == ' ') && (p[n] == ' ' || p[n] == '\n' || p[n] == '\0'))
			return true;
	return false;
}

int
sandbox_cgroup_detect(struct sandbox_cgroup_info *ret)
{
	struct sandbox_cgroup_info ci = {0};
	char mnt[512], root[512], own[512], ctl[256] = "";

	if (!ret)
		return -EINVAL;
	if (find_mount(mnt, sizeof(mnt), root, sizeof(root)) < 0) {
		*ret = ci;
		return 0;
	}
	ci.v2 = true;
	/* The mount shows the hierarchy from `root` down; our path is absolute
	 * in the hierarchy (a cgroup namespace makes both "/"). */
	if (own_path(own, sizeof(own)) < 0)
		snprintf(own, sizeof(own), "/");
	const char *rel = own;
	size_t rl = strlen(root);
	if (strcmp(root, "/") != 0 && strncmp(own, root, rl) == 0)
		rel = own + rl;
	int n = snprintf(ci.path, sizeof(ci.path), "%s%s", mnt, strcmp(rel, "/") == 0 ? "" : rel);
	if (n < 0 || (size_t)n >= sizeof(ci.path) || access(ci.path, F_OK) < 0)
		if ((size_t)snprintf(ci.path, sizeof(ci.path), "%s", mnt) >= sizeof(ci.path))
			return -ENAMETOOLONG;

	char file[600];
	snprintf(file, sizeof(file), "%s/cgroup.controllers", ci.path);
	cleanup_close int fd = open(file, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t got = read(fd, ctl, sizeof(ctl) - 1);
		ctl[got > 0 ? got : 0] = '\0';
	}
	ci.memory = has_word(ctl, "memory");
	ci.pids = has_word(ctl, "pids");
	ci.cpu = has_word(ctl, "cpu");
	snprintf(file, sizeof(file), "%s/cgroup.procs", ci.path);
	ci.writable = access(ci.path, W_OK) == 0 && access(file, W_OK) == 0;
	snprintf(file, sizeof(file), "%s/cgroup.kill", ci.path);
	ci.kill = access(file, F_OK) == 0;
	*ret = ci;
	return 0;
}

int
sandbox_cgroup_describe(const struct sandbox_cgroup_info *ci, char *buf, size_t bufsz)
{
	if (!ci->v2)
		return snprintf(buf, bufsz,
				"no cgroup v2 hierarchy: memory, pids and cpu are bounded by "
				"rlimits and the pid namespace only");
	if (!ci->writable || !ci->memory || !ci->pids || !ci->cpu)
		return snprintf(
		    buf, bufsz,
		    "cgroup v2 at %s is %s%s%s%s%s: memory, pids and cpu are bounded by "
		    "rlimits and the pid namespace only",
		    ci->path, ci->writable ? "writable" : "not writable by us",
		    ci->memory && ci->pids && ci->cpu ? "" : ", missing controllers:",
		    ci->memory ? "" : " memory", ci->pids ? "" : " pids", ci->cpu ? "" : " cpu");
	return snprintf(buf, bufsz,
			"cgroup v2 at %s offers memory, pids and cpu: each run gets a cgroup of "
			"its own with memory.max, pids.max and cpu.max from its policy",
			ci->path);
}

/* Read a small control file at dirfd into buf (NUL-terminated). */
static int
read_at(int dirfd, const char *file, char *buf, size_t bufsz)
{
	cleanup_close int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = read(fd, buf, bufsz - 1);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return 0;
}

static int
write_at(int dirfd, const char *file, const char *val)
{
	cleanup_close int fd = openat(dirfd, file, O_WRONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	return agd_write_all(fd, val, strlen(val));
}

int
sandbox_cgroup_write_limits(int dirfd, const struct sandbox_cgroup_limits *l, char *err,
			    size_t errsz)
{
	char v[64];
	int r;

	if (dirfd < 0 || !l)
		return -EINVAL;
	if (l->memory_max) {
		snprintf(v, sizeof(v), "%llu\n", (unsigned long long)l->memory_max);
		if ((r = write_at(dirfd, "memory.max", v)) < 0)
			goto fail_memory;
		/* Swap would let the run use memory past memory.max; a kernel
		 * without swap accounting has no such file. */
		r = write_at(dirfd, "memory.swap.max", "0\n");
		if (r < 0 && r != -ENOENT) {
			snprintf(err, errsz, "cgroup: memory.swap.max: %s", strerror(-r));
			return r;
		}
	}
	/* An OOM kill takes the whole run, never one helper process of it. */
	r = write_at(dirfd, "memory.oom.group", "1\n");
	if (r < 0 && r != -ENOENT) {
		snprintf(err, errsz, "cgroup: memory.oom.group: %s", strerror(-r));
		return r;
	}
	if (l->pids_max) {
		snprintf(v, sizeof(v), "%llu\n", (unsigned long long)l->pids_max);
		if ((r = write_at(dirfd, "pids.max", v)) < 0) {
			snprintf(err, errsz, "cgroup: pids.max: %s", strerror(-r));
			return r;
		}
	}
	if (l->cpu_milli) {
		/* quota per 100 ms period: 1/1000 of a CPU is 100 us */
		snprintf(v, sizeof(v), "%llu 100000\n", (unsigned long long)l->cpu_milli * 100);
		if ((r = write_at(dirfd, "cpu.max", v)) < 0) {
			snprintf(err, errsz, "cgroup: cpu.max: %s", strerror(-r));
			return r;
		}
	}
	return 0;
fail_memory:
	snprintf(err, errsz, "cgroup: memory.max: %s", strerror(-r));
	return r;
}

static const char *const needed[] = {"memory", "pids", "cpu"};

/* The controllers of `needed` missing from a space-separated list, as " a b". */
static void
missing_words(const char *list, char *out, size_t outsz)
{
	out[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(needed); i++)
		if (!has_word(list, needed[i])) {
			size_t n = strlen(out);
			snprintf(out + n, outsz - n, " %s", needed[i]);
		}
}

/* Turn memory, pids and cpu on for the children of dirfd. */
static int
enable_controllers(int dirfd)
{
	char have[256], miss[64];
	int r;

	if ((r = read_at(dirfd, "cgroup.subtree_control", have, sizeof(have))) < 0)
		return r;
	missing_words(have, miss, sizeof(miss));
	if (!miss[0])
		return 0;
	char want[80] = "";
	for (char *w = strtok(miss, " "); w; w = strtok(NULL, " ")) {
		size_t n = strlen(want);
		snprintf(want + n, sizeof(want) - n, "%s+%s", n ? " " : "", w);
	}
	return write_at(dirfd, "cgroup.subtree_control", want);
}

#define SBX_CG_HINT                                                                                \
	"needs cgroup v2 with memory, pids and cpu delegated to agentd: boot with "                \
	"systemd.unified_cgroup_hierarchy=1, then Delegate=yes or AGENTD_CGROUP_PARENT=<dir>"

int
sbx_cgroup_plan(struct sandbox_plan *p, const struct sandbox_config *cfg, char *why, size_t whysz)
{
	struct sandbox_cgroup_info ci;
	struct statfs sf;
	char parent[512], ctl[256], miss[64];
	int r;

	p->cg_parent_fd = -1;
	p->cg_limits = cfg->cgroup_limits;
	if (cfg->cgroup_name) {
		const char *n = cfg->cgroup_name;
		if (!n[0] || strchr(n, '/') || strcmp(n, ".") == 0 || strcmp(n, "..") == 0 ||
		    strlen(n) >= sizeof(p->cg_name)) {
			snprintf(why, whysz, "cgroup: invalid cgroup name");
			return -EINVAL;
		}
		snprintf(p->cg_name, sizeof(p->cg_name), "%s", n);
		p->cg_name_given = true;
	}
	if (cfg->cgroup_parent) {
		if ((size_t)snprintf(parent, sizeof(parent), "%s", cfg->cgroup_parent) >=
		    sizeof(parent)) {
			snprintf(why, whysz, "cgroup: parent path too long");
			return 0;
		}
	} else {
		if ((r = sandbox_cgroup_detect(&ci)) < 0 || !ci.v2) {
			snprintf(why, whysz, "cgroup: no cgroup v2 hierarchy (" SBX_CG_HINT ")");
			return 0;
		}
		snprintf(parent, sizeof(parent), "%s", ci.path);
	}
	cleanup_close int fd = open(parent, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(why, whysz, "cgroup: %s: %s (" SBX_CG_HINT ")", parent, strerror(errno));
		return 0;
	}
	if (fstatfs(fd, &sf) < 0 || sf.f_type != CGROUP2_SUPER_MAGIC) {
		snprintf(why, whysz, "cgroup: %s is not a cgroup v2 directory (" SBX_CG_HINT ")",
			 parent);
		return 0;
	}
	if (read_at(fd, "cgroup.controllers", ctl, sizeof(ctl)) < 0)
		ctl[0] = '\0';
	missing_words(ctl, miss, sizeof(miss));
	if (miss[0]) {
		snprintf(why, whysz,
			 "cgroup: cgroup v2 at %s lacks controllers:%s (held by cgroup v1 or not "
			 "delegated; " SBX_CG_HINT ")",
			 parent, miss);
		return 0;
	}
	if (faccessat(fd, ".", W_OK, AT_EACCESS) < 0 ||
	    faccessat(fd, "cgroup.subtree_control", W_OK, AT_EACCESS) < 0) {
		snprintf(why, whysz,
			 "cgroup: cgroup v2 at %s is not writable by us (" SBX_CG_HINT ")", parent);
		return 0;
	}
	r = enable_controllers(fd);
	if (r == -EBUSY && !cfg->cgroup_parent) {
		/* Our own cgroup holds us, and a cgroup with processes cannot give
		 * controllers to its children: move this process into a leaf of
		 * its own first (what a delegated service is expected to do). */
		if ((mkdirat(fd, "agentd-supervisor", 0755) == 0 || errno == EEXIST)) {
			cleanup_close int leaf =
			    openat(fd, "agentd-supervisor", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (leaf >= 0 && write_at(leaf, "cgroup.procs", "0\n") == 0)
				r = enable_controllers(fd);
		}
	}
	if (r < 0) {
		snprintf(why, whysz,
			 "cgroup: cannot enable memory, pids and cpu in %s/cgroup.subtree_control: "
			 "%s (" SBX_CG_HINT ")",
			 parent, strerror(-r));
		return 0;
	}
	p->cg_parent_fd = take_fd(&fd);
	return 0;
}

int
sbx_cgroup_create(const struct sandbox_plan *p, int *ret_fd, char *err, size_t errsz)
{
	static unsigned seq;
	char name[160];
	int r;

	if (p->cg_name_given)
		snprintf(name, sizeof(name), "%s", p->cg_name);
	else
		snprintf(name, sizeof(name), "agentd-%d-%u", (int)getpid(), seq++);
	for (int tries = 0;; tries++) {
		if (mkdirat(p->cg_parent_fd, name, 0755) == 0)
			break;
		r = -errno;
		if (r != -EEXIST || tries > 0) {
			snprintf(err, errsz, "cgroup: creating %s: %s", name, strerror(-r));
			return r;
		}
		/* Left by a supervisor that died with its child: end it. */
		int old = openat(p->cg_parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (old < 0 || (r = sandbox_cgroup_remove(&old)) < 0) {
			r = old < 0 ? -errno : r;
			snprintf(err, errsz, "cgroup: stale %s cannot be removed: %s", name,
				 strerror(-r));
			return r;
		}
	}
	int fd = openat(p->cg_parent_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		unlinkat(p->cg_parent_fd, name, AT_REMOVEDIR);
		snprintf(err, errsz, "cgroup: opening %s: %s", name, strerror(-r));
		return r;
	}
	if ((r = sandbox_cgroup_write_limits(fd, &p->cg_limits, err, errsz)) < 0) {
		sandbox_cgroup_remove(&fd);
		return r;
	}
	*ret_fd = fd;
	return 0;
}

/* SIGKILL every process listed in cgroup.procs (kernels before cgroup.kill). */
static void
kill_procs(int dirfd)
{
	char buf[4096];

	if (read_at(dirfd, "cgroup.procs", buf, sizeof(buf)) < 0)
		return;
	for (char *s = buf, *end; *s; s = end) {
		long pid = strtol(s, &end, 10);
		if (end == s)
			break;
		if (pid > 0)
			kill((pid_t)pid, SIGKILL);
	}
}

int
sandbox_cgroup_remove(int *cgroup_fd)
{
	char link[64], path[4096];
	int r = 0;

	if (!cgroup_fd || *cgroup_fd < 0)
		return 0;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", *cgroup_fd);
	ssize_t n = readlink(link, path, sizeof(path) - 1);
	if (n <= 0) {
		r = n < 0 ? -errno : -EIO;
		goto out;
	}
	path[n] = '\0';
	bool has_kill = write_at(*cgroup_fd, "cgroup.kill", "1\n") == 0;
	for (int i = 0; i < 200; i++) {
		if (!has_kill)
			kill_procs(*cgroup_fd);
		if (rmdir(path) == 0) {
			r = 0;
			break;
		}
		r = -errno;
		if (r != -EBUSY)
			break;
		/* the kernel is still tearing the killed processes down */
		nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
	}
out:
	close(*cgroup_fd);
	*cgroup_fd = -1;
	return r;
}
