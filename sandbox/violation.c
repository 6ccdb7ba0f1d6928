/* Violations: denied syscalls held by the kernel (seccomp user notification)
 * and answered by the caller with exactly the errno the filter would give.
 *
 * The filter is compiled once as an errno program (sandbox_seccomp_get). The
 * notify variant is that program with every SECCOMP_RET_ERRNO return turned
 * into SECCOMP_RET_USER_NOTIF; the answer to a notification is found by
 * running the errno program on the notification's seccomp_data with the small
 * interpreter below, so the two can never disagree about what is denied or
 * with which errno. A notification is never answered with
 * SECCOMP_USER_NOTIF_FLAG_CONTINUE: nothing the filter denies ever runs. */
#include "sandbox/internal.h"

#include <errno.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/util.h"

/* glibc creates threads with clone3 first and falls back to clone on
 * ENOSYS: that answer stays in the kernel so thread creation never waits for
 * the supervisor, and a routine probe is not reported as a violation. */
#if defined(__x86_64__)
#define SBX_NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define SBX_NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#endif

int
sbx_seccomp_notify_variant(const struct sock_filter *in, unsigned short len,
			   struct sock_filter **ret_bpf, unsigned short *ret_len)
{
#if defined(SBX_NATIVE_AUDIT_ARCH) && defined(__NR_clone3)
	static const struct sock_filter guard[] = {
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SBX_NATIVE_AUDIT_ARCH, 0, 3),
	    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
	    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_clone3, 0, 1),
	    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | ENOSYS),
	};
#else
	static const struct sock_filter guard[] = {
	    BPF_STMT(BPF_JMP | BPF_JA, 0),
	};
#endif
	size_t n = ARRAY_SIZE(guard) + len;

	if (n > BPF_MAXINSNS)
		return -E2BIG;
	struct sock_filter *out = malloc(n * sizeof(*out));
	if (!out)
		return -ENOMEM;
	memcpy(out, guard, sizeof(guard));
	/* Jumps are relative and forward only, so a prefix moves nothing. */
	for (size_t i = 0; i < len; i++) {
		struct sock_filter f = in[i];
		if (BPF_CLASS(f.code) == BPF_RET && BPF_RVAL(f.code) == BPF_K &&
		    (f.k & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO)
			f.k = SECCOMP_RET_USER_NOTIF;
		out[ARRAY_SIZE(guard) + i] = f;
	}
	*ret_bpf = out;
	*ret_len = (unsigned short)n;
	return 0;
}

uint32_t
sbx_bpf_run(const struct sock_filter *prog, unsigned short len, const struct seccomp_data *d)
{
	uint32_t a = 0, x = 0, mem[BPF_MEMWORDS] = {0};
	const unsigned char *data = (const unsigned char *)d;

	/* Anything this interpreter does not understand kills: fail closed. */
	for (size_t pc = 0; pc < len; pc++) {
		const struct sock_filter *f = &prog[pc];
		uint32_t src = BPF_SRC(f->code) == BPF_X ? x : f->k;
		switch (BPF_CLASS(f->code)) {
		case BPF_LD:
			if (f->code == (BPF_LD | BPF_W | BPF_ABS)) {
				if (f->k % 4 || f->k > sizeof(*d) - 4)
					return SECCOMP_RET_KILL_PROCESS;
				memcpy(&a, data + f->k, 4);
			} else if (f->code == (BPF_LD | BPF_W | BPF_LEN))
				a = sizeof(*d);
			else if (f->code == (BPF_LD | BPF_IMM))
				a = f->k;
			else if (f->code == (BPF_LD | BPF_MEM) && f->k < BPF_MEMWORDS)
				a = mem[f->k];
			else
				return SECCOMP_RET_KILL_PROCESS;
			break;
		case BPF_LDX:
			if (f->code == (BPF_LDX | BPF_IMM))
				x = f->k;
			else if (f->code == (BPF_LDX | BPF_MEM) && f->k < BPF_MEMWORDS)
				x = mem[f->k];
			else if (f->code == (BPF_LDX | BPF_W | BPF_LEN))
				x = sizeof(*d);
			else
				return SECCOMP_RET_KILL_PROCESS;
			break;
		case BPF_ST:
		case BPF_STX:
			if (f->k >= BPF_MEMWORDS)
				return SECCOMP_RET_KILL_PROCESS;
			mem[f->k] = BPF_CLASS(f->code) == BPF_ST ? a : x;
			break;
		case BPF_ALU:
			switch (BPF_OP(f->code)) {
			case BPF_ADD:
				a += src;
				break;
			case BPF_SUB:
				a -= src;
				break;
			case BPF_MUL:
				a *= src;
				break;
			case BPF_DIV:
				if (!src)
					return SECCOMP_RET_KILL_PROCESS;
				a /= src;
				break;
			case BPF_MOD:
				if (!src)
					return SECCOMP_RET_KILL_PROCESS;
				a %= src;
				break;
			case BPF_OR:
				a |= src;
				break;
			case BPF_AND:
				a &= src;
				break;
			case BPF_XOR:
				a ^= src;
				break;
			case BPF_LSH:
				a = src < 32 ? a << src : 0;
				break;
			case BPF_RSH:
				a = src < 32 ? a >> src : 0;
				break;
			case BPF_NEG:
				a = -a;
				break;
			default:
				return SECCOMP_RET_KILL_PROCESS;
			}
			break;
		case BPF_JMP: {
			bool t;
			switch (BPF_OP(f->code)) {
			case BPF_JA:
				pc += f->k;
				continue;
			case BPF_JEQ:
				t = a == src;
				break;
			case BPF_JGT:
				t = a > src;
				break;
			case BPF_JGE:
				t = a >= src;
				break;
			case BPF_JSET:
				t = (a & src) != 0;
				break;
			default:
				return SECCOMP_RET_KILL_PROCESS;
			}
			pc += t ? f->jt : f->jf;
			break;
		}
		case BPF_RET:
			return BPF_RVAL(f->code) == BPF_A ? a : f->k;
		case BPF_MISC:
			if (BPF_MISCOP(f->code) == BPF_TAX)
				x = a;
			else
				a = x;
			break;
		}
	}
	return SECCOMP_RET_KILL_PROCESS; /* fell off the end */
}

/* The arguments worth recording for a denied call, by syscall name. */
static const struct {
	const char *syscall;
	const char *names[3];
	unsigned char idx[3];
} interesting[] = {
    {"socket", {"family", "type", "protocol"}, {0, 1, 2}},
    {"socketpair", {"family", "type", "protocol"}, {0, 1, 2}},
    {"ioctl", {"fd", "request"}, {0, 1}},
    {"clone", {"flags"}, {0}},
    {"unshare", {"flags"}, {0}},
    {"setns", {"fd", "nstype"}, {0, 1}},
    {"personality", {"persona"}, {0}},
    {"mount", {"flags"}, {3}},
    {"umount2", {"flags"}, {1}},
    {"ptrace", {"request", "pid"}, {0, 1}},
    {"process_vm_readv", {"pid"}, {0}},
    {"process_vm_writev", {"pid"}, {0}},
    {"pidfd_getfd", {"pidfd", "fd"}, {0, 1}},
    {"keyctl", {"operation"}, {0}},
    {"bpf", {"cmd"}, {0}},
    {"perf_event_open", {"pid", "cpu"}, {1, 2}},
    {"io_uring_setup", {"entries"}, {0}},
    {"open_tree", {"flags"}, {2}},
    {"fsopen", {"flags"}, {1}},
    {"userfaultfd", {"flags"}, {0}},
    {"kill", {"pid", "sig"}, {0, 1}},
};

static void
describe(const struct seccomp_data *d, struct sandbox_violation *v)
{
	char *name = seccomp_syscall_resolve_num_arch(seccomp_arch_native(), d->nr);

	if (name)
		snprintf(v->syscall, sizeof(v->syscall), "%s", name);
	else
		snprintf(v->syscall, sizeof(v->syscall), "syscall_%d", d->nr);
	free(name);
	for (size_t i = 0; i < ARRAY_SIZE(interesting); i++) {
		if (strcmp(interesting[i].syscall, v->syscall) != 0)
			continue;
		for (size_t k = 0; k < 3 && interesting[i].names[k]; k++) {
			v->args[k].name = interesting[i].names[k];
			v->args[k].value = d->args[interesting[i].idx[k]];
			v->n_args = k + 1;
		}
	}
}

int
sandbox_violation_next(const struct sandbox_child *c, struct sandbox_violation *ret)
{
	struct seccomp_notif_sizes sizes;
	union {
		struct seccomp_notif n;
		char raw[512];
	} req;
	struct pollfd pfd = {.fd = c ? c->notify_fd : -1, .events = POLLIN};
	const struct sock_filter *prog;
	unsigned short len;

	if (!c || c->notify_fd < 0 || !ret)
		return -EINVAL;
	int k = poll(&pfd, 1, 0);
	if (k < 0)
		return -errno;
	if (k == 0)
		return -EAGAIN;
	if (!(pfd.revents & POLLIN))
		return -EPIPE; /* every process under the filter is gone */
	/* The kernel copies out its own struct size; never let it exceed ours. */
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0)
		return -errno;
	if (sizes.seccomp_notif > sizeof(req) ||
	    sizes.seccomp_notif_resp > sizeof(struct seccomp_notif_resp) + 64)
		return -EOVERFLOW;
	memset(&req, 0, sizeof(req));
	while (ioctl(c->notify_fd, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
		if (errno != EINTR)
			return -errno; /* ENOENT: the caller died before we read it */
	}

	struct sandbox_violation v = {.pid = (pid_t)req.n.pid, .nr = req.n.data.nr};
	describe(&req.n.data, &v);
	/* Same program as the child's, before the notify rewrite. */
	cleanup_free struct sock_filter *compiled = NULL;
	if (sandbox_seccomp_prebuilt(c->network_loopback, &prog, &len) < 0) {
		char err[128];
		int r =
		    sandbox_seccomp_compile(c->network_loopback, &compiled, &len, err, sizeof(err));
		if (r < 0)
			len = 0;
		prog = compiled;
	}
	uint32_t act = len ? sbx_bpf_run(prog, len, &req.n.data) : SECCOMP_RET_KILL_PROCESS;
	/* Only errno returns are rewritten, so anything else means the two
	 * programs disagree: refuse with EPERM rather than let it through. */
	v.err = (act & SECCOMP_RET_ACTION_FULL) == SECCOMP_RET_ERRNO ? (int)(act & SECCOMP_RET_DATA)
								     : EPERM;
	if (v.err == 0)
		v.err = EPERM;

	union {
		struct seccomp_notif_resp r;
		char raw[sizeof(struct seccomp_notif_resp) + 64];
	} resp;
	memset(&resp, 0, sizeof(resp));
	resp.r.id = req.n.id;
	resp.r.error = -v.err;
	resp.r.val = 0;
	resp.r.flags = 0;
	while (ioctl(c->notify_fd, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0) {
		if (errno == EINTR)
			continue;
		if (errno != ENOENT) /* ENOENT: the caller died meanwhile; still a violation */
			return -errno;
		break;
	}
	*ret = v;
	return 0;
}
