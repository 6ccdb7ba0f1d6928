/* cgroup v2 detection: is there a hierarchy, is our cgroup in it writable by
 * us (delegated), and which of the controllers the sandbox would use (memory,
 * pids, cpu) does it offer. A hybrid host (controllers held by v1, an empty
 * cgroup2 at /sys/fs/cgroup/unified) has a cgroup2 without controllers: runs
 * then rely on rlimits and their pid namespace, and say so. */
#include "sandbox/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
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
	/* Creating a cgroup per run is not implemented: say so, never imply it. */
	return snprintf(buf, bufsz,
			"cgroup v2 at %s offers memory, pids and cpu, but per-run cgroups are not "
			"used yet: memory, pids and cpu are bounded by rlimits and the pid "
			"namespace only",
			ci->path);
}
