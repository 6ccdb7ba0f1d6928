/* The child side of sandbox_spawn(). Runs right after clone3 in a copy of a
 * possibly multi-threaded parent, so it only makes async-signal-safe calls:
 * raw syscalls and thin libc syscall wrappers, no malloc, no stdio, no locks.
 * Every step is mandatory; a failure is reported as {step, op, errno} on the
 * error pipe and the child exits 127 without running the program. */
#include "sandbox/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/landlock.h>
#include <linux/securebits.h>
#include <linux/seccomp.h>
#include <net/if.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Fixed fd numbers once the child has arranged its descriptors. */
#define FD_ERR	  4
#define FD_STATUS 5
#define FD_NOTIFY 6 /* only with report_violations, closed before the program runs */
#define FD_GO	  7 /* only with a gate, closed before the program runs */

static int g_err_fd = -1;

static _Noreturn void
fail(enum sbx_step step, int op, int err)
{
	struct sbx_report r = {.step = step, .op = op, .err = err ? err : EIO};

	if (g_err_fd >= 0) {
		ssize_t n;
		do
			n = write(g_err_fd, &r, sizeof(r));
		while (n < 0 && errno == EINTR);
	}
	_exit(127);
}

static void
set_attr(const char *path, unsigned flags, int op, bool recursive)
{
	struct mount_attr attr = {.attr_set = MOUNT_ATTR_NOSUID};

	if (!(flags & SBX_F_DEV))
		attr.attr_set |= MOUNT_ATTR_NODEV;
	if (flags & SBX_F_RO)
		attr.attr_set |= MOUNT_ATTR_RDONLY;
	if (syscall(SYS_mount_setattr, AT_FDCWD, path, recursive ? AT_RECURSIVE : 0, &attr,
		    sizeof(attr)) == 0)
		return;
	if (errno != ENOSYS)
		fail(SBX_STEP_MOUNT_OP, op, errno);

	/* Kernels before 5.12: a bind remount. In a user namespace the flags the
	 * source mount already has (nosuid, nodev, noexec, atime mode) are locked
	 * and must be repeated, or the remount fails with EPERM. Only the top
	 * mount is changed; submounts keep their own flags. */
	struct statfs sfs;
	if (statfs(path, &sfs) < 0)
		fail(SBX_STEP_MOUNT_OP, op, errno);
	unsigned long mf = MS_REMOUNT | MS_BIND | MS_NOSUID;
	if (!(flags & SBX_F_DEV) || (sfs.f_flags & ST_NODEV))
		mf |= MS_NODEV;
	if ((flags & SBX_F_RO) || (sfs.f_flags & ST_RDONLY))
		mf |= MS_RDONLY;
	if (sfs.f_flags & ST_NOEXEC)
		mf |= MS_NOEXEC;
	if (sfs.f_flags & ST_NOATIME)
		mf |= MS_NOATIME;
	else if (sfs.f_flags & ST_RELATIME)
		mf |= MS_RELATIME;
	else
		mf |= MS_STRICTATIME;
	if (sfs.f_flags & ST_NODIRATIME)
		mf |= MS_NODIRATIME;
	if (mount(NULL, path, NULL, mf, NULL) < 0)
		fail(SBX_STEP_MOUNT_OP, op, errno);
}

/* Bind a host path opened before the id switch (see open_host_sources). */
static void
bind_host_fd(int fd, const char *dst, int op)
{
	int tree = (int)syscall(SYS_open_tree, fd, "",
				OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_EMPTY_PATH | AT_RECURSIVE);
	if (tree < 0)
		fail(SBX_STEP_MOUNT_OP, op, errno);
	if (syscall(SYS_move_mount, tree, "", AT_FDCWD, dst, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		fail(SBX_STEP_MOUNT_OP, op, errno);
	close(tree);
	close(fd);
}

/* Host bind sources are opened while the child still has the supervisor's
 * identity: in root mode the agent's unprivileged uid may not be able to
 * traverse to them (a state directory of mode 0700, a checkout under /root),
 * yet the mount points in the new root must be created as the mapped uid. The
 * O_PATH fds are taken in our own mount namespace, so they can be cloned into
 * the new root after the switch. */
static void
open_host_sources(const struct sandbox_plan *p, int *fds)
{
	const size_t pre = sizeof(SBX_OLDROOT) - 1;

	for (size_t i = 0; i < p->n_ops; i++) {
		const struct sbx_op *o = &p->ops[i];
		fds[i] = -1;
		if (o->kind != SBX_BIND || strncmp(o->src, SBX_OLDROOT "/", pre + 1) != 0)
			continue;
		fds[i] = open(o->src + pre, O_PATH | O_CLOEXEC);
		if (fds[i] < 0 && !((o->flags & SBX_F_OPTIONAL) && errno == ENOENT))
			fail(SBX_STEP_MOUNT_OP, (int)i, errno);
	}
}

static void
apply_op(const struct sbx_op *o, int i, int host_fd)
{
	switch (o->kind) {
	case SBX_MKDIR:
		if (mkdir(o->dst, o->mode) < 0 && errno != EEXIST)
			fail(SBX_STEP_MOUNT_OP, i, errno);
		break;
	case SBX_MKFILE:
		if (mknod(o->dst, S_IFREG | 0444, 0) < 0 && errno != EEXIST)
			fail(SBX_STEP_MOUNT_OP, i, errno);
		break;
	case SBX_SYMLINK:
		if (symlink(o->src, o->dst) < 0 && errno != EEXIST)
			fail(SBX_STEP_MOUNT_OP, i, errno);
		break;
	case SBX_BIND:
		if (host_fd >= 0) {
			bind_host_fd(host_fd, o->dst, i);
			set_attr(o->dst, o->flags, i, true);
			break;
		}
		if (mount(o->src, o->dst, NULL, MS_BIND | MS_REC, NULL) < 0) {
			if ((o->flags & SBX_F_OPTIONAL) && errno == ENOENT)
				break;
			if ((o->flags & SBX_F_IF_REACHABLE) && errno == EACCES)
				break;
			fail(SBX_STEP_MOUNT_OP, i, errno);
		}
		set_attr(o->dst, o->flags, i, true);
		break;
	case SBX_TMPFS:
		if (mount("tmpfs", o->dst, "tmpfs", MS_NOSUID | MS_NODEV, o->src) < 0)
			fail(SBX_STEP_MOUNT_OP, i, errno);
		break;
	case SBX_PROC:
		if (mount("proc", o->dst, "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) < 0)
			fail(SBX_STEP_MOUNT_OP, i, errno);
		break;
	case SBX_RO:
		set_attr(o->dst, SBX_F_RO, i, false);
		break;
	}
}

static void
build_root(const struct sandbox_plan *p, const int *host_fds)
{
	if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0)
		fail(SBX_STEP_PROPAGATION, -1, errno);
	/* A scratch tmpfs becomes the root for a while so the host tree can be
	 * reached as /oldroot (even a host /tmp, which the scratch mount covers
	 * only until the pivot moves it away). */
	if (mount("tmpfs", "/tmp", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0700,size=64k") < 0)
		fail(SBX_STEP_SCRATCH, -1, errno);
	if (mkdir("/tmp" SBX_OLDROOT, 0700) < 0 || mkdir("/tmp" SBX_NEWROOT, 0755) < 0)
		fail(SBX_STEP_SCRATCH, -1, errno);
	if (syscall(SYS_pivot_root, "/tmp", "/tmp" SBX_OLDROOT) < 0)
		fail(SBX_STEP_PIVOT_SCRATCH, -1, errno);
	if (chdir("/") < 0)
		fail(SBX_STEP_PIVOT_SCRATCH, -1, errno);
	if (mount("tmpfs", SBX_NEWROOT, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m") < 0)
		fail(SBX_STEP_ROOT_TMPFS, -1, errno);

	for (size_t i = 0; i < p->n_ops; i++)
		apply_op(&p->ops[i], (int)i, host_fds[i]);

	/* pivot_root(".", ".") stacks the scratch root (with the host below it)
	 * on top of the new root; detaching it drops every host mount at once. */
	if (chdir(SBX_NEWROOT) < 0)
		fail(SBX_STEP_PIVOT, -1, errno);
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		fail(SBX_STEP_PIVOT, -1, errno);
	if (umount2(".", MNT_DETACH) < 0)
		fail(SBX_STEP_UMOUNT_OLD, -1, errno);
	if (chdir("/") < 0)
		fail(SBX_STEP_PIVOT, -1, errno);
	if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) <
	    0)
		fail(SBX_STEP_ROOT_RO, -1, errno);
	if (chdir(p->cwd) < 0)
		fail(SBX_STEP_CHDIR, -1, errno);
}

static void
loopback_up(void)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		fail(SBX_STEP_LOOPBACK, -1, errno);
	memset(&ifr, 0, sizeof(ifr));
	memcpy(ifr.ifr_name, "lo", 3);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		fail(SBX_STEP_LOOPBACK, -1, errno);
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		fail(SBX_STEP_LOOPBACK, -1, errno);
	close(fd);
}

/* Put the caller's descriptors on 0..3, the error and status pipes on 4 and 5,
 * the listener socket on 6 and the gate's pipe on 7 (close-on-exec), and
 * close everything else. */
static void
arrange_fds(const struct sandbox_plan *p, int err_fd, int status_fd, int notify_sock, int go_fd)
{
	int tmp[4], e, s, ns = -1, go = -1, last = FD_STATUS;

	e = fcntl(err_fd, F_DUPFD_CLOEXEC, 10);
	if (e < 0)
		fail(SBX_STEP_FDS, -1, errno);
	g_err_fd = e;
	s = fcntl(status_fd, F_DUPFD_CLOEXEC, 10);
	if (s < 0)
		fail(SBX_STEP_FDS, -1, errno);
	if (notify_sock >= 0 && (ns = fcntl(notify_sock, F_DUPFD_CLOEXEC, 10)) < 0)
		fail(SBX_STEP_FDS, -1, errno);
	if (go_fd >= 0 && (go = fcntl(go_fd, F_DUPFD_CLOEXEC, 10)) < 0)
		fail(SBX_STEP_FDS, -1, errno);
	for (int i = 0; i < 4; i++) {
		if (p->stdio[i] >= 0)
			tmp[i] = fcntl(p->stdio[i], F_DUPFD_CLOEXEC, 10);
		else if (i < 3)
			tmp[i] = open("/dev/null", (i == 0 ? O_RDONLY : O_WRONLY) | O_CLOEXEC);
		else
			tmp[i] = -2;
		if (tmp[i] == -1)
			fail(SBX_STEP_FDS, i, errno);
	}
	for (int i = 0; i < 4; i++) {
		if (tmp[i] < 0) {
			close(i);
			continue;
		}
		if (dup3(tmp[i], i, 0) < 0)
			fail(SBX_STEP_FDS, i, errno);
	}
	if (dup3(e, FD_ERR, O_CLOEXEC) < 0)
		fail(SBX_STEP_FDS, -1, errno);
	g_err_fd = FD_ERR;
	if (dup3(s, FD_STATUS, O_CLOEXEC) < 0)
		fail(SBX_STEP_FDS, -1, errno);
	if (ns >= 0) {
		if (dup3(ns, FD_NOTIFY, O_CLOEXEC) < 0)
			fail(SBX_STEP_FDS, -1, errno);
		last = FD_NOTIFY;
	}
	if (go >= 0) {
		if ((last + 1 < FD_GO && syscall(SYS_close_range, last + 1, FD_GO - 1, 0) < 0) ||
		    dup3(go, FD_GO, O_CLOEXEC) < 0)
			fail(SBX_STEP_FDS, -1, errno);
		last = FD_GO;
	}
	if (syscall(SYS_close_range, last + 1, ~0u, 0) < 0)
		fail(SBX_STEP_FDS, -1, errno);
}

/* The sandbox is complete: wait for the parent's go (its own checks of what
 * the program will be given). EOF means it refused or died; it also kills
 * us in that case, this is the fallback. */
static void
wait_gate(void)
{
	char c;
	ssize_t n;

	do
		n = read(FD_GO, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		fail(SBX_STEP_GATE, -1, n < 0 ? errno : EPIPE);
	close(FD_GO);
}

/* Become the mapped ids first: in root mode the child is still host root,
 * which is not mapped in the namespace, so it could neither create files in
 * its own tmpfs (EOVERFLOW) nor should it look up host paths with root's
 * identity or groups. Securebits keep the namespace capabilities across the
 * uid change and make uid 0 special nowhere, for good. */
static void
set_ids(const struct sandbox_plan *p)
{
	if (prctl(PR_SET_SECUREBITS,
		  SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
		      SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
		      SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED,
		  0, 0, 0) < 0)
		fail(SBX_STEP_SECUREBITS, -1, errno);
	/* Rootless: setgroups is denied in the namespace (as bubblewrap does);
	 * the caller's supplementary groups stay and show as the overflow gid.
	 * Raw syscalls, as for the ids below: glibc's wrappers would apply the
	 * change to every thread of the supervisor (its tool workers), which
	 * this copy does not have, and wait for them forever. */
	if (!p->rootless && syscall(SYS_setgroups, 0, NULL) < 0)
		fail(SBX_STEP_SETGROUPS, -1, errno);
	if (syscall(SYS_setresgid, p->gid, p->gid, p->gid) < 0)
		fail(SBX_STEP_SETGID, -1, errno);
	if (syscall(SYS_setresuid, p->uid, p->uid, p->uid) < 0)
		fail(SBX_STEP_SETUID, -1, errno);
}

static void
drop_capabilities(void)
{
	/* Bounding set first (needs CAP_SETPCAP, which we still hold), so no
	 * later execve can regain anything. */
	for (int cap = 0; cap < 64; cap++)
		if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
			fail(SBX_STEP_CAPBSET, cap, errno);
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
		fail(SBX_STEP_AMBIENT, -1, errno);
	struct __user_cap_header_struct hdr = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
	struct __user_cap_data_struct data[2];
	memset(data, 0, sizeof(data));
	if (syscall(SYS_capset, &hdr, data) < 0)
		fail(SBX_STEP_CAPSET, -1, errno);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		fail(SBX_STEP_NNP, -1, errno);
}

/* Landlock ABI structs, spelled out so newer fields work with older headers. */
struct sbx_ll_attr {
	uint64_t handled_access_fs;
	uint64_t handled_access_net;
	uint64_t scoped;
};
struct sbx_ll_path {
	uint64_t allowed_access;
	int32_t parent_fd;
} __attribute__((packed));

/* Rights that make sense on a non-directory (execute .. truncate, ioctl_dev). */
#define SBX_LL_FILE_RIGHTS ((1ull << 0) | (1ull << 1) | (1ull << 2) | (1ull << 14) | (1ull << 15))

static void
apply_landlock(const struct sandbox_plan *p)
{
	struct sbx_ll_attr attr = {
	    .handled_access_fs = p->ll_handled_fs,
	    .handled_access_net = p->ll_handled_net,
	    .scoped = p->ll_scoped,
	};
	size_t size = p->ll_abi >= 6 ? sizeof(attr) : p->ll_abi >= 4 ? 16 : 8;

	if (p->ll_abi <= 0)
		return;
	int rfd = (int)syscall(SYS_landlock_create_ruleset, &attr, size, 0);
	if (rfd < 0)
		fail(SBX_STEP_LANDLOCK, -1, errno);
	for (size_t i = 0; i < p->n_ll; i++) {
		int fd = open(p->ll[i].path, O_PATH | O_CLOEXEC);
		if (fd < 0) {
			/* an optional mount that was skipped, or a path we cannot
			 * reach (nor can the program): a rule only grants, so
			 * leaving it out never widens anything */
			if (errno == ENOENT || errno == EACCES)
				continue;
			fail(SBX_STEP_LANDLOCK, (int)i, errno);
		}
		struct stat st;
		if (fstat(fd, &st) < 0)
			fail(SBX_STEP_LANDLOCK, (int)i, errno);
		struct sbx_ll_path pb = {.allowed_access = p->ll[i].access & p->ll_handled_fs,
					 .parent_fd = fd};
		if (!S_ISDIR(st.st_mode))
			pb.allowed_access &= SBX_LL_FILE_RIGHTS;
		if (syscall(SYS_landlock_add_rule, rfd, LANDLOCK_RULE_PATH_BENEATH, &pb, 0) < 0)
			fail(SBX_STEP_LANDLOCK, (int)i, errno);
		close(fd);
	}
	if (syscall(SYS_landlock_restrict_self, rfd, 0) < 0)
		fail(SBX_STEP_LANDLOCK, -1, errno);
	close(rfd);
}

static volatile pid_t g_prog = -1;

static void
forward_signal(int sig)
{
	int saved = errno;
	if (g_prog > 0)
		kill(g_prog, sig);
	errno = saved;
}

static _Noreturn void
exec_program(const struct sandbox_plan *p)
{
	struct sigaction sa = {.sa_handler = SIG_DFL};
	sigset_t none;
	int err = ENOENT;

	for (int sig = 1; sig < NSIG; sig++)
		sigaction(sig, &sa, NULL); /* EINVAL for KILL/STOP/reserved is fine */
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (char **c = p->exec_paths; *c; c++) {
		execve(*c, p->argv, p->envp);
		/* Like execvp: keep looking after "not here", remember the rest. */
		if (errno != ENOENT && errno != ENOTDIR)
			err = errno;
	}
	fail(SBX_STEP_EXEC, -1, err);
}

/* PID 1 of the sandbox. Already fully locked down; forks the program, reaps
 * everything, forwards SIGTERM/SIGINT/SIGHUP, and exits with the program's
 * status. A pid-namespace init cannot kill itself with a signal, so a signal
 * death is reported as exit 128+sig plus the exact wait status on the status
 * pipe (see sandbox_child_exit()). */
static _Noreturn void
run_init(const struct sandbox_plan *p)
{
	static const int fwd[] = {SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2};
	struct sigaction sa = {.sa_handler = forward_signal};
	sigset_t none;

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		if (sigaction(fwd[i], &sa, NULL) < 0)
			fail(SBX_STEP_INIT, -1, errno);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	/* The program must not be able to reach init through /proc/1/mem. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		fail(SBX_STEP_INIT, -1, errno);

	/* Block forwarded signals until g_prog is known, so none is lost. */
	sigset_t block;
	sigemptyset(&block);
	for (size_t i = 0; i < sizeof(fwd) / sizeof(fwd[0]); i++)
		sigaddset(&block, fwd[i]);
	sigprocmask(SIG_SETMASK, &block, NULL);

	/* Raw clone, not fork(): glibc's fork takes locks a sibling thread of
	 * the supervisor may have held when we were cloned. */
	long pid = syscall(SYS_clone, (unsigned long)SIGCHLD, 0, 0, 0, 0);
	if (pid < 0)
		fail(SBX_STEP_FORK, -1, errno);
	if (pid == 0)
		exec_program(p);
	g_prog = (pid_t)pid;
	/* init keeps none of the program's descriptors: the channel reaches EOF
	 * when the program is gone, and the error pipe closes on its exec. */
	for (int fd = 0; fd <= FD_ERR; fd++)
		close(fd);
	g_err_fd = -1;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);

	for (;;) {
		int st;
		pid_t r = (pid_t)syscall(SYS_wait4, -1, &st, 0, NULL);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			_exit(127); /* ECHILD cannot happen while the program lives */
		}
		if (r != g_prog)
			continue;
		struct sbx_status rep = {.magic = SBX_STATUS_MAGIC, .wstatus = st};
		ssize_t n;
		do
			n = write(FD_STATUS, &rep, sizeof(rep));
		while (n < 0 && errno == EINTR);
		if (WIFEXITED(st))
			_exit(WEXITSTATUS(st));
		_exit(128 + WTERMSIG(st));
	}
}

/* Hand the seccomp listener to the supervisor. */
static void
send_listener(int listener)
{
	char byte = 'L';
	struct iovec iov = {.iov_base = &byte, .iov_len = 1};
	union {
		struct cmsghdr h;
		char buf[CMSG_SPACE(sizeof(int))];
	} cm;
	struct msghdr mh = {.msg_iov = &iov,
			    .msg_iovlen = 1,
			    .msg_control = cm.buf,
			    .msg_controllen = sizeof(cm.buf)};
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);

	memset(cm.buf, 0, sizeof(cm.buf));
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(c), &listener, sizeof(int));
	if (sendmsg(FD_NOTIFY, &mh, MSG_NOSIGNAL) != 1)
		fail(SBX_STEP_SECCOMP, -1, errno);
}

/* The filter goes in last. With report_violations, denied calls wait for
 * the supervisor, which holds the listener; if the kernel refuses a listener
 * (EBUSY: a filter above us already has one) the plain errno program is
 * installed instead and the supervisor receives none. Nothing in the sandbox
 * keeps the listener: the program could otherwise answer for itself. */
static void
apply_seccomp(const struct sandbox_plan *p, int notify_sock)
{
	if (p->notify_bpf && notify_sock >= 0) {
		struct sock_fprog prog = {.len = p->notify_len, .filter = p->notify_bpf};
		long lfd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER,
				   SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
		if (lfd >= 0) {
			send_listener((int)lfd);
			close((int)lfd);
			close(FD_NOTIFY);
			return;
		}
		if (errno != EBUSY)
			fail(SBX_STEP_SECCOMP, -1, errno);
	}
	if (notify_sock >= 0)
		close(FD_NOTIFY);
	if (p->bpf) {
		struct sock_fprog prog = {.len = p->bpf_len, .filter = p->bpf};
		if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0)
			fail(SBX_STEP_SECCOMP, -1, errno);
	}
}

_Noreturn void
sandbox_child_main(const struct sandbox_plan *p, int sync_fd, int err_fd, int status_fd,
		   int notify_sock, int go_fd, int *host_fds)
{
	char c;
	ssize_t n;

	g_err_fd = err_fd;
	/* Die with the supervisor thread that spawned us. Set before waiting
	 * for the id maps so a parent that dies meanwhile is noticed as EOF. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(SBX_STEP_PDEATHSIG, -1, errno);
	do
		n = read(sync_fd, &c, 1);
	while (n < 0 && errno == EINTR);
	if (n != 1)
		fail(SBX_STEP_SYNC, -1, n < 0 ? errno : EPIPE);
	close(sync_fd);

	open_host_sources(p, host_fds);
	set_ids(p);
	build_root(p, host_fds);
	if (sethostname(p->hostname, strlen(p->hostname)) < 0)
		fail(SBX_STEP_HOSTNAME, -1, errno);
	loopback_up();
	/* A new session has no controlling terminal: TIOCSTI on an inherited
	 * terminal cannot push input to the supervisor's shell. */
	if (setsid() < 0)
		fail(SBX_STEP_SETSID, -1, errno);
	arrange_fds(p, err_fd, status_fd, notify_sock, go_fd);
	for (size_t i = 0; i < p->n_rl; i++)
		if (setrlimit((__rlimit_resource_t)p->rl_resource[i], &p->rl_value[i]) < 0)
			fail(SBX_STEP_RLIMIT, p->rl_resource[i], errno);
	drop_capabilities();
	/* Changing credentials cleared the parent-death signal; set it again and
	 * check the parent is still there (it holds the error pipe's read end
	 * until we exec). */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		fail(SBX_STEP_PDEATHSIG, -1, errno);
	struct pollfd pfd = {.fd = FD_ERR, .events = 0};
	if (poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLERR))
		_exit(127);
	apply_landlock(p);
	apply_seccomp(p, notify_sock);
	if (go_fd >= 0)
		wait_gate();
	run_init(p);
}
