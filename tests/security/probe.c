/* agentd-probe: a static helper the escape suite runs inside the sandbox.
 *
 *   agentd-probe status          key=value lines: CapEff, CapBnd, NoNewPrivs,
 *                                Seccomp, ifaces, uid, gid, hostname
 *   agentd-probe try VECTOR [ARG] attempt one escape; prints
 *                                "VECTOR: BLOCKED (ERRNO)" and exits 0, or
 *                                "VECTOR: ESCAPED" and exits 1
 *   agentd-probe try openat-fd0 NAME  open NAME relative to fd 0 (a directory)
 *   agentd-probe try kill PID    signal 0 to a pid (outside processes)
 *   agentd-probe try abstract-connect NAME  connect to "\0NAME"
 *   agentd-probe try forkbomb N  fork N sleeping children (blocked if fork fails)
 *   agentd-probe try memhog MIB  allocate and touch MIB mebibytes
 *   agentd-probe try euid-root   ESCAPED when running with effective uid 0
 *   agentd-probe try int80-self  i386 syscall in this very process
 *   agentd-probe list            the vector names
 *
 * A vector the kernel answers by killing the process (seccomp's bad-arch
 * action) is blocked too: the caller sees the signal. Every attempt undoes
 * what it did when it succeeds, so the probe can run on a host as a control.
 * Depends on libc only (linked with -static). */
#define _GNU_SOURCE /* built outside the project flags */
#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/perf_event.h>
#include <linux/sched.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef AF_VSOCK
#define AF_VSOCK 40
#endif
#ifndef AF_ALG
#define AF_ALG 38
#endif

static int
errname_print(const char *vector, int err)
{
	const char *n = strerrorname_np(err);
	printf("%s: BLOCKED (%s)\n", vector, n ? n : "unknown");
	return 0;
}

/* r >= 0 is success. */
static int
report(const char *vector, long r, int err)
{
	if (r >= 0) {
		printf("%s: ESCAPED\n", vector);
		return 1;
	}
	return errname_print(vector, err);
}

/* Run fn in a child; its exit code is 0 on success or an errno. Lets a
 * vector change process state (namespaces, root) without affecting us. */
static int
in_child(const char *vector, int (*fn)(const char *), const char *arg)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return report(vector, -1, errno);
	if (pid == 0)
		_exit(fn(arg));
	int st;
	if (waitpid(pid, &st, 0) < 0)
		return report(vector, -1, errno);
	if (WIFSIGNALED(st)) {
		/* The kernel killed it: that is a block, say so the same way. */
		printf("%s: BLOCKED (signal %d)\n", vector, WTERMSIG(st));
		return 0;
	}
	int code = WEXITSTATUS(st);
	return report(vector, code == 0 ? 0 : -1, code);
}

#define RET_ERRNO(expr) return (expr) < 0 ? (errno ? errno : EIO) : 0

static int
v_unshare_user(const char *a)
{
	RET_ERRNO(unshare(CLONE_NEWUSER));
}

static int
v_unshare_mount(const char *a)
{
	RET_ERRNO(unshare(CLONE_NEWNS));
}

static int
v_setns(const char *a)
{
	int fd = open("/proc/self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	RET_ERRNO(setns(fd, CLONE_NEWNS));
}

static int
v_chroot(const char *a)
{
	RET_ERRNO(chroot("/"));
}

static int
v_setuid_root(const char *a)
{
	RET_ERRNO(setuid(0));
}

static int
v_traceme(const char *a)
{
	RET_ERRNO(ptrace(PTRACE_TRACEME, 0, NULL, NULL));
}

static int
v_clone(unsigned long flags)
{
	long r = syscall(SYS_clone, flags | SIGCHLD, 0, 0, 0, 0);
	if (r == 0)
		_exit(0);
	if (r < 0)
		return errno;
	waitpid((pid_t)r, NULL, 0);
	return 0;
}

static int
v_clone3(unsigned long flags)
{
	struct clone_args ca = {.flags = flags, .exit_signal = SIGCHLD};
	long r = syscall(SYS_clone3, &ca, sizeof(ca));
	if (r == 0)
		_exit(0);
	if (r < 0)
		return errno;
	waitpid((pid_t)r, NULL, 0);
	return 0;
}

static int
v_mount(void)
{
	char dir[] = "/tmp/agentd-probe-XXXXXX";
	if (!mkdtemp(dir))
		return errno;
	int r = mount("none", dir, "tmpfs", 0, "size=4k");
	int e = errno;
	if (r == 0)
		umount2(dir, MNT_DETACH);
	rmdir(dir);
	return r == 0 ? 0 : e;
}

static int
v_ptrace(void)
{
	pid_t pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		pause();
		_exit(0);
	}
	long r = ptrace(PTRACE_SEIZE, pid, NULL, NULL);
	int e = errno;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return r == 0 ? 0 : e;
}

static int
v_io_uring(void)
{
	uint32_t params[30]; /* struct io_uring_params is 120 bytes */
	memset(params, 0, sizeof(params));
	long fd = syscall(SYS_io_uring_setup, 1, params);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_keyctl(void)
{
	/* KEYCTL_GET_KEYRING_ID (0) of KEY_SPEC_SESSION_KEYRING (-3), no create */
	long r = syscall(SYS_keyctl, 0, -3, 0);
	return r < 0 ? errno : 0;
}

static int
v_bpf(void)
{
	union bpf_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.map_type = BPF_MAP_TYPE_ARRAY;
	attr.key_size = 4;
	attr.value_size = 4;
	attr.max_entries = 1;
	long fd = syscall(SYS_bpf, BPF_MAP_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_perf(void)
{
	struct perf_event_attr attr;
	memset(&attr, 0, sizeof(attr));
	attr.type = PERF_TYPE_SOFTWARE;
	attr.size = sizeof(attr);
	attr.config = PERF_COUNT_SW_CPU_CLOCK;
	attr.exclude_kernel = 1;
	attr.exclude_hv = 1;
	long fd = syscall(SYS_perf_event_open, &attr, 0, -1, -1, 0);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_userfaultfd(void)
{
	long fd = syscall(SYS_userfaultfd, O_CLOEXEC | 1 /* UFFD_USER_MODE_ONLY */);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_ioctl(unsigned long req)
{
	char c = '\n';
	/* Pushing a newline into our own stdin terminal, if it is one. */
	long r = syscall(SYS_ioctl, 0, req, &c);
	return r < 0 ? errno : 0;
}

static int
v_fsopen(void)
{
	long fd = syscall(SYS_fsopen, "tmpfs", 1 /* FSOPEN_CLOEXEC */);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_open_tree(void)
{
	/* OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC: a detached copy of the tree. */
	long fd = syscall(SYS_open_tree, AT_FDCWD, "/", 1 | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_socket(int family, int type)
{
	int fd = socket(family, type | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int
v_personality(void)
{
	int old = personality(0xffffffff);
	int r = personality(READ_IMPLIES_EXEC);
	if (r < 0)
		return errno;
	personality((unsigned long)old);
	return 0;
}

static int
v_mknod(void)
{
	char path[] = "/tmp/agentd-probe-null-XXXXXX";
	int fd = mkstemp(path);
	if (fd < 0)
		return errno;
	close(fd);
	unlink(path);
	int r = mknod(path, S_IFCHR | 0600, makedev(1, 3));
	int e = errno;
	unlink(path);
	return r == 0 ? 0 : e;
}

static int
v_open(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

static int
v_write(const char *path)
{
	/* Appending nothing is enough to prove write access; never truncates. */
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return errno;
	close(fd);
	return 0;
}

/* 32-bit syscall through int 0x80 (i386 getpid is 20). */
static int
v_int80(const char *a)
{
	long r;
	__asm__ volatile("int $0x80" : "=a"(r) : "0"(20L) : "memory");
	return r < 0 ? (int)-r : 0;
}

/* x32 ABI: getpid (39) with __X32_SYSCALL_BIT. */
static int
v_x32(const char *a)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "0"(0x40000000L | 39L) : "rcx", "r11", "memory");
	return r < 0 ? (int)-r : 0;
}

static int
v_process_vm(void)
{
	/* Our own memory: the kernel would allow it, only the filter refuses. */
	char src[8] = "secret", dst[8] = "";
	struct iovec l = {dst, sizeof(dst)}, r = {src, sizeof(src)};
	long n = syscall(SYS_process_vm_readv, getpid(), &l, 1, &r, 1, 0);
	return n < 0 ? errno : 0;
}

static int
v_tcp_connect(void)
{
	/* Port 1 on lo: nothing listens, so the network stack says
	 * ECONNREFUSED; only a fence in front of it says otherwise. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int r = connect(fd, (struct sockaddr *)&a, sizeof(a));
	int e = errno;
	close(fd);
	return r == 0 ? 0 : e;
}

static int
v_abstract(const char *name)
{
	struct sockaddr_un a = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	if (n + 1 > sizeof(a.sun_path))
		return ENAMETOOLONG;
	memcpy(a.sun_path + 1, name, n);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return errno;
	int r = connect(fd, (struct sockaddr *)&a,
			(socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n));
	int e = errno;
	close(fd);
	return r == 0 ? 0 : e;
}

/* Fork up to n children that wait to be killed; a fork that fails first
 * is the block. All children are killed before returning. */
static int
v_forkbomb(const char *arg)
{
	long n = strtol(arg, NULL, 10);
	pid_t *kids = calloc((size_t)n + 1, sizeof(pid_t));
	long made = 0;
	int e = 0;

	if (!kids)
		return ENOMEM;
	while (made < n) {
		pid_t p = fork();
		if (p < 0) {
			e = errno;
			break;
		}
		if (p == 0) {
			pause();
			_exit(0);
		}
		kids[made++] = p;
	}
	for (long i = 0; i < made; i++)
		kill(kids[i], SIGKILL);
	for (long i = 0; i < made; i++)
		waitpid(kids[i], NULL, 0);
	free(kids);
	fprintf(stderr, "forkbomb: %ld children\n", made);
	return e;
}

static int
v_memhog(const char *arg)
{
	long mib = strtol(arg, NULL, 10);
	for (long i = 0; i < mib; i++) {
		char *m =
		    mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (m == MAP_FAILED) {
			fprintf(stderr, "memhog: %ld MiB\n", i);
			return errno;
		}
		memset(m, 1, 1 << 20);
	}
	return 0;
}

struct vector {
	const char *name;
	int (*fn)(void);
};

static int
v_clone3_newuser(void)
{
	return v_clone3(CLONE_NEWUSER);
}
static int
v_clone3_plain(void)
{
	return v_clone3(0);
}
static int
v_clone_newns(void)
{
	return v_clone(CLONE_NEWNS);
}
static int
v_clone_newuser(void)
{
	return v_clone(CLONE_NEWUSER);
}
static int
v_clone_newnet(void)
{
	return v_clone(CLONE_NEWNET);
}
static int
v_tiocsti(void)
{
	return v_ioctl(TIOCSTI);
}
static int
v_tiocsti_high(void)
{
	return v_ioctl(0xffffffff00005412ul);
}
static int
v_tioclinux(void)
{
	return v_ioctl(TIOCLINUX);
}
static int
v_sock_netlink(void)
{
	return v_socket(AF_NETLINK, SOCK_RAW);
}
static int
v_sock_packet(void)
{
	return v_socket(AF_PACKET, SOCK_RAW);
}
static int
v_sock_vsock(void)
{
	return v_socket(AF_VSOCK, SOCK_STREAM);
}
static int
v_sock_alg(void)
{
	return v_socket(AF_ALG, SOCK_SEQPACKET);
}
static int
v_sock_high(void)
{
	/* AF_UNIX in the low 32 bits, garbage above: must not pass as AF_UNIX. */
	long fd = syscall(SYS_socket, 0x100000000l | AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0)
		return errno;
	close((int)fd);
	return 0;
}

static int
v_sock_inet(void)
{
	return v_socket(AF_INET, SOCK_STREAM);
}
static int
v_sock_inet6(void)
{
	return v_socket(AF_INET6, SOCK_DGRAM);
}

static int
v_sock_unix(void)
{
	return v_socket(AF_UNIX, SOCK_STREAM);
}

static const struct vector vectors[] = {
    {"socket-unix", v_sock_unix},
    {"socket-inet", v_sock_inet},
    {"socket-inet6", v_sock_inet6},
    {"process_vm_readv", v_process_vm},
    {"tcp-connect", v_tcp_connect},
    {"io_uring_setup", v_io_uring},
    {"mount", v_mount},
    {"ptrace", v_ptrace},
    {"clone3-newuser", v_clone3_newuser},
    {"clone3", v_clone3_plain},
    {"clone-newns", v_clone_newns},
    {"clone-newuser", v_clone_newuser},
    {"clone-newnet", v_clone_newnet},
    {"keyctl", v_keyctl},
    {"bpf", v_bpf},
    {"perf_event_open", v_perf},
    {"userfaultfd", v_userfaultfd},
    {"tiocsti", v_tiocsti},
    {"tiocsti-high", v_tiocsti_high},
    {"tioclinux", v_tioclinux},
    {"fsopen", v_fsopen},
    {"open_tree", v_open_tree},
    {"socket-netlink", v_sock_netlink},
    {"socket-packet", v_sock_packet},
    {"socket-vsock", v_sock_vsock},
    {"socket-alg", v_sock_alg},
    {"socket-highbits", v_sock_high},
    {"personality", v_personality},
    {"mknod", v_mknod},
};

/* Vectors that change the calling process run in a child. */
static const struct {
	const char *name;
	int (*fn)(const char *);
} child_vectors[] = {
    {"unshare", v_unshare_user},
    {"unshare-mount", v_unshare_mount},
    {"setns", v_setns},
    {"chroot", v_chroot},
    {"setuid-root", v_setuid_root},
    {"ptrace-traceme", v_traceme},
    {"int80", v_int80},
    {"x32", v_x32},
};

static void
status_line(const char *key)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	size_t n = strlen(key);

	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, key, n) == 0 && line[n] == ':') {
			char *v = line + n + 1;
			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			printf("%s=%s\n", key, v);
		}
	fclose(f);
}

static int
cmd_status(void)
{
	char host[256] = "";
	FILE *f;
	char line[512];

	status_line("CapEff");
	status_line("CapPrm");
	status_line("CapBnd");
	status_line("CapAmb");
	status_line("NoNewPrivs");
	status_line("Seccomp");
	printf("ifaces=");
	if ((f = fopen("/proc/net/dev", "re"))) {
		int first = 1;
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');
			if (!colon)
				continue;
			*colon = '\0';
			char *name = line + strspn(line, " ");
			printf("%s%s", first ? "" : ",", name);
			first = 0;
		}
		fclose(f);
	}
	printf("\n");
	printf("uid=%u\ngid=%u\npid=%d\n", (unsigned)getuid(), (unsigned)getgid(), (int)getpid());
	gethostname(host, sizeof(host) - 1);
	printf("hostname=%s\n", host);
	return 0;
}

int
main(int argc, char **argv)
{
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && strcmp(argv[1], "status") == 0)
		return cmd_status();
	if (argc >= 2 && strcmp(argv[1], "list") == 0) {
		for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
			printf("%s\n", vectors[i].name);
		for (size_t i = 0; i < sizeof(child_vectors) / sizeof(child_vectors[0]); i++)
			printf("%s\n", child_vectors[i].name);
		printf("open PATH\nwrite PATH\nopenat-fd0 NAME\nkill PID\nabstract-connect NAME\n"
		       "forkbomb N\nmemhog MIB\neuid-root\nint80-self\n");
		return 0;
	}
	if (argc < 3 || strcmp(argv[1], "try") != 0) {
		fprintf(stderr, "usage: agentd-probe status | list | try VECTOR [PATH]\n");
		return 2;
	}
	const char *v = argv[2];
	if (strcmp(v, "openat-fd0") == 0 && argc >= 4) {
		/* A host directory leaked in as fd 0: only landlock stands
		 * between it and the files below it. */
		int fd = openat(0, argv[3], O_RDONLY | O_CLOEXEC);
		int e = errno;
		if (fd >= 0)
			close(fd);
		char name[600];
		snprintf(name, sizeof(name), "openat-fd0 %s", argv[3]);
		return report(name, fd, e);
	}
	if (strcmp(v, "euid-root") == 0) {
		if (geteuid() == 0) {
			printf("%s: ESCAPED\n", v);
			return 1;
		}
		printf("%s: BLOCKED (euid %u)\n", v, (unsigned)geteuid());
		return 0;
	}
	if (strcmp(v, "int80-self") == 0)
		return report(v, v_int80(NULL) ? -1 : 0, EIO); /* the kernel kills us first */
	if (argc >= 4 && (strcmp(v, "kill") == 0 || strcmp(v, "abstract-connect") == 0 ||
			  strcmp(v, "forkbomb") == 0 || strcmp(v, "memhog") == 0)) {
		int e = v[0] == 'k'   ? (kill((pid_t)atoi(argv[3]), 0) < 0 ? errno : 0)
			: v[0] == 'a' ? v_abstract(argv[3])
			: v[0] == 'f' ? v_forkbomb(argv[3])
				      : v_memhog(argv[3]);
		char name[600];
		snprintf(name, sizeof(name), "%s %s", v, argv[3]);
		return report(name, e ? -1 : 0, e);
	}
	if (strcmp(v, "open") == 0 || strcmp(v, "write") == 0) {
		if (argc < 4) {
			fprintf(stderr, "agentd-probe: %s needs a PATH\n", v);
			return 2;
		}
		int e = v[0] == 'o' ? v_open(argv[3]) : v_write(argv[3]);
		char name[600];
		snprintf(name, sizeof(name), "%s %s", v, argv[3]);
		return report(name, e ? -1 : 0, e);
	}
	for (size_t i = 0; i < sizeof(child_vectors) / sizeof(child_vectors[0]); i++)
		if (strcmp(v, child_vectors[i].name) == 0)
			return in_child(v, child_vectors[i].fn, NULL);
	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
		if (strcmp(v, vectors[i].name) == 0) {
			int e = vectors[i].fn();
			return report(v, e ? -1 : 0, e);
		}
	fprintf(stderr, "agentd-probe: unknown vector %s\n", v);
	return 2;
}
