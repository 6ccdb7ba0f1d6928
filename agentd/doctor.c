/* agentd doctor: which defences this host gives this user, and what a run
 * started now would get. Every answer comes from trying the thing (an
 * unshare in a throwaway child, a real sandbox running /bin/true), not from
 * reading configuration alone. Exit 0 when a run can start, 1 when it cannot
 * (the message names the missing defence and how to enable it). */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/util.h"
#include "sandbox/sandbox.h"

static void line(const char *what, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
line(const char *what, const char *fmt, ...)
{
	va_list ap;

	printf("%-22s ", what);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

/* First line of a small file, or "" (no newline kept). */
static void
read_first(const char *path, char *buf, size_t bufsz)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, bufsz - 1) : -1;

	buf[n > 0 ? n : 0] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
}

/* 0 when unshare(CLONE_NEWUSER) works in a child, and, in *nested, whether a
 * second one inside the first works too (agentd inside a sandbox, CI). */
static int
try_userns(bool *nested)
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		char map[64];
		uid_t u = geteuid();
		gid_t g = getegid();
		if (unshare(CLONE_NEWUSER) < 0)
			_exit(1);
		/* A nested namespace needs our ids mapped in this one. */
		int fd = open("/proc/self/setgroups", O_WRONLY | O_CLOEXEC);
		if (fd >= 0 && (write(fd, "deny", 4) != 4 || close(fd) < 0))
			_exit(2);
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)u, (unsigned)u);
		fd = open("/proc/self/uid_map", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map, strlen(map)) < 0 || close(fd) < 0)
			_exit(2);
		snprintf(map, sizeof(map), "%u %u 1", (unsigned)g, (unsigned)g);
		fd = open("/proc/self/gid_map", O_WRONLY | O_CLOEXEC);
		if (fd < 0 || write(fd, map, strlen(map)) < 0 || close(fd) < 0)
			_exit(2);
		_exit(unshare(CLONE_NEWUSER) < 0 ? 2 : 0);
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st))
		return -EIO;
	*nested = WEXITSTATUS(st) == 0;
	return WEXITSTATUS(st) == 1 ? -EPERM : 0;
}

static const char *
container_kind(char *buf, size_t bufsz)
{
	char env[4096];

	read_first("/run/systemd/container", buf, bufsz);
	if (buf[0])
		return buf;
	if (access("/.dockerenv", F_OK) == 0)
		return "docker";
	if (access("/run/.containerenv", F_OK) == 0)
		return "podman";
	/* PID 1's environment names the manager (readable as root). */
	cleanup_close int fd = open("/proc/1/environ", O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, env, sizeof(env) - 1) : -1;
	for (ssize_t i = 0; i < n; i += (ssize_t)strlen(env + i) + 1) {
		env[n] = '\0';
		if (strncmp(env + i, "container=", 10) == 0) {
			snprintf(buf, bufsz, "%s", env + i + 10);
			return buf;
		}
	}
	return NULL;
}

int
agd_cmd_doctor(int argc, char **argv)
{
	char buf[512], cwd[PATH_MAX], note[1024] = "";
	bool nested = false, ok = true;

	if (argc > 1 && strcmp(argv[1], "--help") != 0)
		return agd_die(2, "usage: agentd doctor");
	if (argc > 1) {
		puts("usage: agentd doctor   (what this host and user give a sandboxed run)");
		return 0;
	}
	uid_t uid = geteuid();
	line("mode", "%s (uid %u)",
	     uid == 0 ? "root: each run uses an unprivileged uid, root is never mapped"
		      : "rootless: the caller's uid mapped into a user namespace",
	     (unsigned)uid);
	const char *ck = container_kind(buf, sizeof(buf));
	line("container", "%s", ck ? ck : "none detected");

	int e = try_userns(&nested);
	char max_ns[32];
	read_first("/proc/sys/user/max_user_namespaces", max_ns, sizeof(max_ns));
	if (e < 0) {
		ok = false;
		line("user namespaces",
		     "NOT AVAILABLE (%s; user.max_user_namespaces=%s): enable "
		     "them (sysctl user.max_user_namespaces=15000, "
		     "kernel.unprivileged_userns_clone=1 on Debian kernels, or an "
		     "AppArmor profile allowing userns for agentd)",
		     strerrorname_np(-e) ? strerrorname_np(-e) : "?", max_ns[0] ? max_ns : "?");
	} else
		line("user namespaces", "yes (nested: %s)", nested ? "yes" : "no");

	char acts[256];
	read_first("/proc/sys/kernel/seccomp/actions_avail", acts, sizeof(acts));
	bool sc = prctl(PR_GET_SECCOMP, 0, 0, 0, 0) >= 0;
	line("seccomp", "%s%s%s",
	     sc ? "yes" : "NOT AVAILABLE (a kernel with CONFIG_SECCOMP_FILTER)",
	     strstr(acts, "user_notif") ? ", user notification (violations recorded)"
					: ", no user notification (violations not recorded)",
	     strstr(acts, "kill_process") ? ", kill_process" : "");
	if (!sc)
		ok = false;

	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* VERSION */);
	if (abi >= 1)
		line("landlock", "ABI %ld: filesystem%s%s%s", abi,
		     abi >= 4 ? ", tcp bind/connect" : "",
		     abi >= 6 ? ", abstract-socket and signal scoping" : "",
		     abi < 6 ? " (older kernel: fewer fences, recorded as a note)" : "");
	else
		line("landlock",
		     "not available (%s): the mount namespace is the only filesystem "
		     "fence (enable CONFIG_SECURITY_LANDLOCK and lsm=...,landlock)",
		     strerrorname_np(errno) ? strerrorname_np(errno) : "?");

	struct sandbox_cgroup_info ci;
	if (sandbox_cgroup_detect(&ci) == 0) {
		sandbox_cgroup_describe(&ci, buf, sizeof(buf));
		line("cgroups", "%s", buf);
	}

	/* The proof: a real sandbox with the full defence set runs /bin/true. */
	char tmpl[] = "/tmp/agentd-doctor.XXXXXX";
	if (!getcwd(cwd, sizeof(cwd)) || !mkdtemp(tmpl))
		return agd_die(1, "doctor: cannot make a scratch directory: %s", strerror(errno));
	if (uid == 0 && chown(tmpl, 65534, 65534) < 0) {
		rmdir(tmpl);
		return agd_die(1, "doctor: chown %s: %s", tmpl, strerror(errno));
	}
	static const char *const targv[] = {"/bin/true", NULL};
	static const char *const tenv[] = {"PATH=/usr/bin:/bin", NULL};
	struct sandbox_config cfg = {
	    .argv = targv,
	    .envp = tenv,
	    .cwd = tmpl,
	    .workspace = tmpl,
	    .channel_fd = -1,
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = -1,
	    .uid = 65534,
	    .gid = 65534,
	    .report_violations = true,
	};
	struct sandbox_plan *plan = NULL;
	struct sandbox_child child = {.pidfd = -1, .status_fd = -1, .notify_fd = -1};
	char err[512] = "";
	e = sandbox_prepare(&cfg, &plan, err, sizeof(err));
	if (e >= 0) {
		if (sandbox_notes(plan))
			snprintf(note, sizeof(note), "%s", sandbox_notes(plan));
		e = sandbox_spawn(plan, &child, err, sizeof(err));
	}
	plan = sandbox_plan_free(plan);
	bool recorded = child.notify_fd >= 0;
	if (e >= 0) {
		siginfo_t si;
		struct sandbox_exit ex = {0};
		while (waitid((idtype_t)P_PIDFD, (id_t)child.pidfd, &si, WEXITED) < 0 &&
		       errno == EINTR)
			;
		if (sandbox_child_exit(&child, &si, &ex) < 0 || ex.signaled || ex.code != 0) {
			snprintf(err, sizeof(err), "/bin/true in the sandbox ended with %s %d",
				 ex.signaled ? "signal" : "status", ex.code);
			e = -EIO;
		}
		sandbox_child_close(&child);
	}
	rmdir(tmpl);
	if (e < 0) {
		line("a run here", "REFUSED: %s", err);
		return 1;
	}
	line("a run here",
	     "gets user, mount, pid, net (lo only), ipc, uts and cgroup namespaces; "
	     "no capabilities; no_new_privs; seccomp allowlist (%s); %s; rlimits",
	     recorded ? "violations recorded" : "violations not recorded",
	     abi >= 1 ? "landlock" : "no landlock");
	if (note[0] && strcmp(note, buf) != 0)
		line("notes", "%s", note);
	return ok ? 0 : 1;
}
