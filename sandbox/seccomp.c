/* The seccomp allowlist, compiled once in the parent with libseccomp and
 * exported as classic BPF so the child only has to install it. */
#include "sandbox/internal.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <seccomp.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/util.h"

/* What an ordinary Linux program, /bin/sh and python3 need, in the spirit of
 * Docker's default profile. Names unknown to this libseccomp are skipped (they
 * then fall to the default ENOSYS, which callers handle as "not available"). */
static const char *const allowed[] = {
    "_llseek",
    "accept",
    "accept4",
    "access",
    "alarm",
    "arch_prctl",
    "bind",
    "brk",
    "cachestat",
    "capget",
    "capset",
    "chdir",
    "chmod",
    "chown",
    "clock_getres",
    "clock_gettime",
    "clock_nanosleep",
    "close",
    "close_range",
    "connect",
    "copy_file_range",
    "creat",
    "dup",
    "dup2",
    "dup3",
    "epoll_create",
    "epoll_create1",
    "epoll_ctl",
    "epoll_pwait",
    "epoll_pwait2",
    "epoll_wait",
    "eventfd",
    "eventfd2",
    "execve",
    "execveat",
    "exit",
    "exit_group",
    "faccessat",
    "faccessat2",
    "fadvise64",
    "fallocate",
    "fchdir",
    "fchmod",
    "fchmodat",
    "fchmodat2",
    "fchown",
    "fchownat",
    "fcntl",
    "fdatasync",
    "fgetxattr",
    "flistxattr",
    "flock",
    "fork",
    "fremovexattr",
    "fsetxattr",
    "fstat",
    "fstatfs",
    "fsync",
    "ftruncate",
    "futex",
    "futex_requeue",
    "futex_wait",
    "futex_waitv",
    "futex_wake",
    "futimesat",
    "get_robust_list",
    "getcpu",
    "getcwd",
    "getdents",
    "getdents64",
    "getegid",
    "geteuid",
    "getgid",
    "getgroups",
    "getitimer",
    "getpeername",
    "getpgid",
    "getpgrp",
    "getpid",
    "getppid",
    "getpriority",
    "getrandom",
    "getresgid",
    "getresuid",
    "getrlimit",
    "getrusage",
    "getsid",
    "getsockname",
    "getsockopt",
    "gettid",
    "gettimeofday",
    "getuid",
    "getxattr",
    "inotify_add_watch",
    "inotify_init",
    "inotify_init1",
    "inotify_rm_watch",
    "io_cancel",
    "io_destroy",
    "io_getevents",
    "io_pgetevents",
    "io_setup",
    "io_submit",
    "kill",
    "landlock_add_rule",
    "landlock_create_ruleset",
    "landlock_restrict_self",
    "lchown",
    "lgetxattr",
    "link",
    "linkat",
    "listen",
    "listxattr",
    "llistxattr",
    "lremovexattr",
    "lseek",
    "lsetxattr",
    "lstat",
    "madvise",
    "map_shadow_stack",
    "membarrier",
    "memfd_create",
    "mincore",
    "mkdir",
    "mkdirat",
    "mknod",
    "mknodat",
    "mlock",
    "mlock2",
    "mlockall",
    "mmap",
    "mprotect",
    "mq_getsetattr",
    "mq_notify",
    "mq_open",
    "mq_timedreceive",
    "mq_timedsend",
    "mq_unlink",
    "mremap",
    "msgctl",
    "msgget",
    "msgrcv",
    "msgsnd",
    "msync",
    "munlock",
    "munlockall",
    "munmap",
    "name_to_handle_at",
    "nanosleep",
    "newfstatat",
    "open",
    "openat",
    "openat2",
    "pause",
    "pidfd_open",
    "pidfd_send_signal",
    "pipe",
    "pipe2",
    "pkey_alloc",
    "pkey_free",
    "pkey_mprotect",
    "poll",
    "ppoll",
    "prctl",
    "pread64",
    "preadv",
    "preadv2",
    "prlimit64",
    "pselect6",
    "pwrite64",
    "pwritev",
    "pwritev2",
    "read",
    "readahead",
    "readlink",
    "readlinkat",
    "readv",
    "recvfrom",
    "recvmmsg",
    "recvmsg",
    "remap_file_pages",
    "removexattr",
    "rename",
    "renameat",
    "renameat2",
    "restart_syscall",
    "rmdir",
    "rseq",
    "rt_sigaction",
    "rt_sigpending",
    "rt_sigprocmask",
    "rt_sigqueueinfo",
    "rt_sigreturn",
    "rt_sigsuspend",
    "rt_sigtimedwait",
    "rt_tgsigqueueinfo",
    "sched_get_priority_max",
    "sched_get_priority_min",
    "sched_getaffinity",
    "sched_getattr",
    "sched_getparam",
    "sched_getscheduler",
    "sched_rr_get_interval",
    "sched_setaffinity",
    "sched_setattr",
    "sched_setparam",
    "sched_setscheduler",
    "sched_yield",
    "seccomp",
    "select",
    "semctl",
    "semget",
    "semop",
    "semtimedop",
    "sendfile",
    "sendmmsg",
    "sendmsg",
    "sendto",
    "set_robust_list",
    "set_tid_address",
    "setfsgid",
    "setfsuid",
    "setgid",
    "setgroups",
    "setitimer",
    "setpgid",
    "setpriority",
    "setregid",
    "setresgid",
    "setresuid",
    "setreuid",
    "setrlimit",
    "setsid",
    "setsockopt",
    "setuid",
    "setxattr",
    "shmat",
    "shmctl",
    "shmdt",
    "shmget",
    "shutdown",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "splice",
    "stat",
    "statfs",
    "statx",
    "symlink",
    "symlinkat",
    "sync",
    "sync_file_range",
    "syncfs",
    "sysinfo",
    "tee",
    "tgkill",
    "time",
    "timer_create",
    "timer_delete",
    "timer_getoverrun",
    "timer_gettime",
    "timer_settime",
    "timerfd_create",
    "timerfd_gettime",
    "timerfd_settime",
    "times",
    "tkill",
    "truncate",
    "umask",
    "uname",
    "unlink",
    "unlinkat",
    "utime",
    "utimensat",
    "utimes",
    "vfork",
    "vmsplice",
    "wait4",
    "waitid",
    "write",
    "writev",
};

/* Denied with EPERM so the program gets a clear "not permitted": namespace and
 * mount manipulation, cross-process memory access, kernel attack surface that
 * containers conventionally refuse. */
static const char *const denied_eperm[] = {
    "acct",
    "add_key",
    "bpf",
    "chroot",
    "clock_adjtime",
    "clock_settime",
    "create_module",
    "delete_module",
    "finit_module",
    "fsconfig",
    "fsmount",
    "fsopen",
    "fspick",
    "get_kernel_syms",
    "init_module",
    "io_uring_enter",
    "io_uring_register",
    "io_uring_setup",
    "ioperm",
    "iopl",
    "kcmp",
    "kexec_file_load",
    "kexec_load",
    "keyctl",
    "lookup_dcookie",
    "mbind",
    "migrate_pages",
    "mount",
    "mount_setattr",
    "move_mount",
    "move_pages",
    "nfsservctl",
    "open_by_handle_at",
    "open_tree",
    "perf_event_open",
    "pidfd_getfd",
    "pivot_root",
    "process_madvise",
    "process_mrelease",
    "process_vm_readv",
    "process_vm_writev",
    "ptrace",
    "query_module",
    "quotactl",
    "quotactl_fd",
    "reboot",
    "request_key",
    "set_mempolicy",
    "setdomainname",
    "sethostname",
    "setns",
    "settimeofday",
    "adjtimex",
    "swapoff",
    "swapon",
    "syslog",
    "umount",
    "umount2",
    "unshare",
    "uselib",
    "userfaultfd",
    "ustat",
    "vhangup",
    "_sysctl",
    "listmount",
    "statmount",
    "lsm_set_self_attr",
};

/* Namespace-creating clone flags (CLONE_NEWTIME overlaps the exit-signal byte
 * of clone() and only exists for clone3/unshare, both denied). */
static const uint64_t clone_new_flags[] = {
    CLONE_NEWNS,   CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC,
    CLONE_NEWUSER, CLONE_NEWPID,    CLONE_NEWNET,
};

static int
add_rule(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned n,
	 const struct scmp_arg_cmp *cmp, char *err, size_t errsz)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return 0; /* unknown to this libseccomp/arch: default action applies */
	int r = seccomp_rule_add_array(ctx, action, nr, n, cmp);
	if (r < 0)
		snprintf(err, errsz, "sandbox: seccomp rule for %s: %s", name, strerror(-r));
	return r;
}

/* ioctl: everything but terminal input injection (TIOCSTI, TIOCLINUX). The
 * kernel looks only at the low 32 bits of the request, so must we. libseccomp
 * drops conditional rules of a syscall that also has an unconditional one, so
 * "allow unless" is spelled as allow rules that cover every other value:
 * requests that differ from the bad ones in a bit they share are allowed bit
 * by bit, and the few values left (all combinations of the bits in which the
 * bad ones differ) are listed one by one. */
static int
add_ioctl_rules(scmp_filter_ctx ctx, char *err, size_t errsz)
{
	static const uint32_t bad[] = {TIOCSTI, TIOCLINUX};
	uint32_t diff = bad[0] ^ bad[1], common = ~diff, pattern = bad[0] & common;
	int r;

	for (int b = 0; b < 32; b++) {
		uint32_t bit = 1u << b;
		if (!(common & bit))
			continue;
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, bit, ~pattern & bit);
		if ((r = add_rule(ctx, SCMP_ACT_ALLOW, "ioctl", 1, &c, err, errsz)) < 0)
			return r;
	}
	/* Enumerate the subsets of diff. */
	for (uint32_t sub = diff;; sub = (sub - 1) & diff) {
		uint32_t v = pattern | sub;
		bool is_bad = false;
		for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
			is_bad |= v == bad[i];
		struct scmp_arg_cmp c = SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffu, v);
		if ((r = add_rule(ctx, is_bad ? SCMP_ACT_ERRNO(EPERM) : SCMP_ACT_ALLOW, "ioctl", 1,
				  &c, err, errsz)) < 0)
			return r;
		if (sub == 0)
			break;
	}
	return 0;
}

static void
release_ctx(scmp_filter_ctx *ctx)
{
	if (*ctx)
		seccomp_release(*ctx);
}

int
sandbox_seccomp_compile(bool inet, struct sock_filter **ret_bpf, unsigned short *ret_len, char *err,
			size_t errsz)
{
	_cleanup_(release_ctx) scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ERRNO(ENOSYS));
	cleanup_close int mfd = -1;
	cleanup_free struct sock_filter *bpf = NULL;
	int r;

	if (!ctx) {
		snprintf(err, errsz, "sandbox: seccomp_init failed");
		return -ENOMEM;
	}
	/* A foreign-architecture syscall (i386 int 0x80) kills the whole process;
	 * libseccomp also routes x32 numbers on x86_64 to this action. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r < 0) {
		snprintf(err, errsz, "sandbox: seccomp bad-arch action: %s", strerror(-r));
		return r;
	}
	/* No "no_new_privs" from libseccomp: the child sets it itself. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 0);
	if (r < 0)
		return r;
	/* A binary search over syscall numbers instead of a linear chain: every
	 * syscall the program makes runs this filter. */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	if (r < 0)
		return r;

	for (size_t i = 0; i < ARRAY_SIZE(allowed); i++)
		if ((r = add_rule(ctx, SCMP_ACT_ALLOW, allowed[i], 0, NULL, err, errsz)) < 0)
			return r;
	for (size_t i = 0; i < ARRAY_SIZE(denied_eperm); i++)
		if ((r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), denied_eperm[i], 0, NULL, err,
				  errsz)) < 0)
			return r;

	/* clone3 passes its flags in memory BPF cannot read, so it is left to
	 * the default ENOSYS (libseccomp refuses a rule equal to the default):
	 * glibc then falls back to clone, whose flags are checked below. */
	uint64_t all_new = 0;
	for (size_t i = 0; i < ARRAY_SIZE(clone_new_flags); i++) {
		struct scmp_arg_cmp c =
		    SCMP_A0(SCMP_CMP_MASKED_EQ, clone_new_flags[i], clone_new_flags[i]);
		all_new |= clone_new_flags[i];
		if ((r = add_rule(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, &c, err, errsz)) < 0)
			return r;
	}
	struct scmp_arg_cmp no_new = SCMP_A0(SCMP_CMP_MASKED_EQ, all_new, 0);
	if ((r = add_rule(ctx, SCMP_ACT_ALLOW, "clone", 1, &no_new, err, errsz)) < 0)
		return r;

	if ((r = add_ioctl_rules(ctx, err, errsz)) < 0)
		return r;

	/* (The unused second datum of EQ/GT is spelled out for -Wmissing-field-initializers.) */
	/* Sockets: unix only by default; unix and IP when the policy asks for
	 * the loopback network (the network namespace has only lo). Every other
	 * family value, including ones with high bits set, is refused. */
	for (int fam = 0; fam <= AF_INET6; fam++) {
		bool ok = fam == AF_UNIX || (inet && (fam == AF_INET || fam == AF_INET6));
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, (uint64_t)fam, 0);
		if ((r = add_rule(ctx, ok ? SCMP_ACT_ALLOW : SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket",
				  1, &c, err, errsz)) < 0)
			return r;
	}
	struct scmp_arg_cmp big = SCMP_A0(SCMP_CMP_GT, (uint64_t)AF_INET6, 0);
	if ((r = add_rule(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), "socket", 1, &big, err, errsz)) < 0)
		return r;
	struct scmp_arg_cmp unix_only = SCMP_A0(SCMP_CMP_EQ, (uint64_t)AF_UNIX, 0);
	if ((r = add_rule(ctx, SCMP_ACT_ALLOW, "socketpair", 1, &unix_only, err, errsz)) < 0)
		return r;

	/* personality: only the values ordinary programs query or set. */
	static const uint64_t personas[] = {0x0, 0x0008, 0x20000, 0x20008, 0xffffffff};
	for (size_t i = 0; i < ARRAY_SIZE(personas); i++) {
		struct scmp_arg_cmp c = SCMP_A0(SCMP_CMP_EQ, personas[i], 0);
		if ((r = add_rule(ctx, SCMP_ACT_ALLOW, "personality", 1, &c, err, errsz)) < 0)
			return r;
	}

	mfd = memfd_create("agentd-seccomp", MFD_CLOEXEC);
	if (mfd < 0) {
		r = -errno;
		snprintf(err, errsz, "sandbox: seccomp export: memfd_create: %s", strerror(-r));
		return r;
	}
	r = seccomp_export_bpf(ctx, mfd);
	if (r < 0) {
		snprintf(err, errsz, "sandbox: seccomp export failed: %s", strerror(-r));
		return r;
	}
	off_t size = lseek(mfd, 0, SEEK_END);
	if (size <= 0 || size % (off_t)sizeof(struct sock_filter) != 0 ||
	    size / (off_t)sizeof(struct sock_filter) > BPF_MAXINSNS) {
		snprintf(err, errsz, "sandbox: seccomp export produced %lld bytes",
			 (long long)size);
		return -EINVAL;
	}
	bpf = malloc((size_t)size);
	if (!bpf)
		return -ENOMEM;
	if (pread(mfd, bpf, (size_t)size, 0) != size) {
		snprintf(err, errsz, "sandbox: seccomp export: short read");
		return -EIO;
	}
	*ret_len = (unsigned short)(size / (off_t)sizeof(struct sock_filter));
	*ret_bpf = steal_ptr(&bpf);
	return 0;
}

#if defined(__x86_64__)
/* The same programs, compiled ahead of time: libseccomp needs milliseconds to
 * build one, a large share of a sandbox spawn. tests/unit/test_sandbox.c
 * fails if either ever differs from what sandbox_seccomp_compile() produces;
 * regenerate with `agentd-seccomp-gen > sandbox/seccomp_x86_64.inc` and
 * `agentd-seccomp-gen --inet > sandbox/seccomp_x86_64_inet.inc`. */
static const struct sock_filter prebuilt_unix[] = {
#include "sandbox/seccomp_x86_64.inc"
};
static const struct sock_filter prebuilt_inet[] = {
#include "sandbox/seccomp_x86_64_inet.inc"
};

int
sandbox_seccomp_prebuilt(bool inet, const struct sock_filter **ret_bpf, unsigned short *ret_len)
{
	*ret_bpf = inet ? prebuilt_inet : prebuilt_unix;
	*ret_len = (unsigned short)(inet ? ARRAY_SIZE(prebuilt_inet) : ARRAY_SIZE(prebuilt_unix));
	return 0;
}
#else
int
sandbox_seccomp_prebuilt(bool inet, const struct sock_filter **ret_bpf, unsigned short *ret_len)
{
	return -ENOENT;
}
#endif

int
sandbox_seccomp_get(bool inet, struct sock_filter **ret_bpf, unsigned short *ret_len, char *err,
		    size_t errsz)
{
	const struct sock_filter *pre;
	unsigned short len;

	if (sandbox_seccomp_prebuilt(inet, &pre, &len) < 0 || len == 0)
		return sandbox_seccomp_compile(inet, ret_bpf, ret_len, err, errsz);
	struct sock_filter *copy = malloc(len * sizeof(*copy));
	if (!copy)
		return -ENOMEM;
	memcpy(copy, pre, len * sizeof(*copy));
	*ret_bpf = copy;
	*ret_len = len;
	return 0;
}
