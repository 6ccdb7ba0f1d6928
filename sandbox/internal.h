/* Private to sandbox/: the plan built by sandbox_prepare() and applied by the
 * child after clone3. Everything here is plain data so the child can apply it
 * without allocating. */
#pragma once

#include <linux/filter.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/types.h>

#include "sandbox/sandbox.h"

/* Paths while the mount tree is being built: the host root is reachable at
 * SBX_OLDROOT and the future root is SBX_NEWROOT (both inside a scratch tmpfs
 * that is discarded by the final pivot_root). */
#define SBX_OLDROOT "/oldroot"
#define SBX_NEWROOT "/newroot"

enum sbx_op_kind {
	SBX_MKDIR,   /* dst, mode; existing directory is fine */
	SBX_MKFILE,  /* dst: empty regular file to bind a file onto */
	SBX_SYMLINK, /* src = link target, dst = link */
	SBX_BIND,    /* src -> dst, recursive, then attributes fixed up */
	SBX_TMPFS,   /* dst, src = mount options */
	SBX_PROC,    /* dst */
	SBX_RO,	     /* make the mount at dst read-only (not recursive) */
};

#define SBX_F_RO       (1u << 0) /* bind read-only */
#define SBX_F_DEV      (1u << 1) /* device node bind: must not get nodev */
#define SBX_F_OPTIONAL (1u << 2) /* a missing source is skipped */
/* Skipped when the child (already the program's uid) may not reach it
 * (EACCES): then neither may the program, which has fewer rights. */
#define SBX_F_IF_REACHABLE (1u << 3)

struct sbx_op {
	enum sbx_op_kind kind;
	unsigned flags;
	mode_t mode;
	char *src;
	char *dst;
	char *what; /* for error messages: "bind /usr" */
};

struct sbx_ll_rule {
	char *path; /* path inside the final root */
	uint64_t access;
};

/* Steps reported by the child as {step, op, errno}. Keep in sync with
 * sbx_step_names in sandbox.c. */
enum sbx_step {
	SBX_STEP_SYNC,
	SBX_STEP_PROPAGATION,
	SBX_STEP_SCRATCH,
	SBX_STEP_PIVOT_SCRATCH,
	SBX_STEP_ROOT_TMPFS,
	SBX_STEP_MOUNT_OP,
	SBX_STEP_PIVOT,
	SBX_STEP_UMOUNT_OLD,
	SBX_STEP_ROOT_RO,
	SBX_STEP_CHDIR,
	SBX_STEP_HOSTNAME,
	SBX_STEP_LOOPBACK,
	SBX_STEP_SETSID,
	SBX_STEP_FDS,
	SBX_STEP_RLIMIT,
	SBX_STEP_CAPBSET,
	SBX_STEP_AMBIENT,
	SBX_STEP_SECUREBITS,
	SBX_STEP_SETGROUPS,
	SBX_STEP_SETGID,
	SBX_STEP_SETUID,
	SBX_STEP_CAPSET,
	SBX_STEP_NNP,
	SBX_STEP_LANDLOCK,
	SBX_STEP_SECCOMP,
	SBX_STEP_PDEATHSIG,
	SBX_STEP_INIT,
	SBX_STEP_GATE,
	SBX_STEP_FORK,
	SBX_STEP_EXEC,
	SBX_STEP__MAX,
};

struct sbx_report {
	int32_t step;
	int32_t op;
	int32_t err;
};

/* What init sends to the parent just before it exits: the program's wait
 * status, so a signal death is not confused with an exit(128 + n). */
#define SBX_STATUS_MAGIC 0x41474453u /* "AGDS" */
struct sbx_status {
	uint32_t magic;
	int32_t wstatus;
};

#define SBX_MAX_RLIMITS 6

struct sandbox_plan {
	struct sbx_op *ops;
	size_t n_ops, cap_ops;
	struct sbx_ll_rule *ll;
	size_t n_ll, cap_ll;

	char **argv;
	char **envp;
	char **exec_paths; /* candidate absolute paths for argv[0], NULL-terminated */
	char *cwd;
	char *hostname;
	char *uid_map;
	char *gid_map;
	bool rootless;
	uid_t uid;
	gid_t gid;

	int rl_resource[SBX_MAX_RLIMITS];
	struct rlimit rl_value[SBX_MAX_RLIMITS];
	size_t n_rl;

	int stdio[4]; /* caller fds for 0..3; -1 = /dev/null (3: none) */

	struct sock_filter *bpf;
	unsigned short bpf_len;
	/* report_violations: bpf with errno returns turned into user notifications */
	struct sock_filter *notify_bpf;
	unsigned short notify_len;
	bool inet;

	int ll_abi; /* 0: landlock not used */
	uint64_t ll_handled_fs;
	uint64_t ll_handled_net;
	uint64_t ll_scoped;

	/* Per-child cgroup v2 (cgroup.c): used when cg_parent_fd >= 0. */
	int cg_parent_fd; /* O_PATH directory the children's cgroups are made in */
	char cg_name[128];
	bool cg_name_given;
	struct sandbox_cgroup_limits cg_limits;
	unsigned skipped; /* SANDBOX_DEFENCE_* gone without */

	char notes[768];
};

/* cgroup.c: decide whether this plan's children get cgroups of their own.
 * Sets p->cg_parent_fd (>= 0) when they do; otherwise writes why not into
 * why (one clause, for the notes and for a refusal). Returns 0 or -ENOMEM. */
int sbx_cgroup_plan(struct sandbox_plan *p, const struct sandbox_config *cfg, char *why,
		    size_t whysz);
/* cgroup.c: make the child's cgroup (reclaiming a stale one of the same
 * name) with the plan's limits; *ret_fd is its O_CLOEXEC directory fd. */
int sbx_cgroup_create(const struct sandbox_plan *p, int *ret_fd, char *err, size_t errsz);

/* seccomp.c: compile the filter into *ret_bpf (malloc'd). inet: AF_INET and
 * AF_INET6 sockets allowed besides AF_UNIX. */
int sandbox_seccomp_compile(bool inet, struct sock_filter **ret_bpf, unsigned short *ret_len,
			    char *err, size_t errsz);

/* The ahead-of-time compiled program for this architecture (static storage),
 * or -ENOENT if there is none. */
int sandbox_seccomp_prebuilt(bool inet, const struct sock_filter **ret_bpf,
			     unsigned short *ret_len);

/* The filter for a plan: the prebuilt one if present, else compiled now. */
int sandbox_seccomp_get(bool inet, struct sock_filter **ret_bpf, unsigned short *ret_len, char *err,
			size_t errsz);

/* violation.c: the notify variant of an errno program (malloc'd), and a
 * classic-BPF interpreter that returns what the kernel would. */
struct seccomp_data;
int sbx_seccomp_notify_variant(const struct sock_filter *in, unsigned short len,
			       struct sock_filter **ret_bpf, unsigned short *ret_len);
uint32_t sbx_bpf_run(const struct sock_filter *prog, unsigned short len,
		     const struct seccomp_data *d);

/* child.c: runs in the freshly cloned child; never returns. */
/* host_fds: room for p->n_ops fds, filled by the child (its own copy). */
/* notify_sock: where the seccomp listener is sent (SCM_RIGHTS), or -1. */
/* go_fd: with a gate, the pipe whose one byte starts the program once the
 * sandbox is complete; -1 to start it at once. */
_Noreturn void sandbox_child_main(const struct sandbox_plan *p, int sync_fd, int err_fd,
				  int status_fd, int notify_sock, int go_fd, int *host_fds);
