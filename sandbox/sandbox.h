/* Turn a freshly created child into a jail and exec a program in it.
 * Knows nothing about agents, tools or policies.
 *
 * Split (crun's generate/apply): sandbox_prepare() builds everything in the
 * parent (seccomp BPF, mount plan, id maps, env); sandbox_spawn() clones the
 * child, which only applies the plan with async-signal-safe calls and reports a
 * setup failure through a pipe as (step, errno). Fail closed: if any defence
 * cannot be applied the program is never executed. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <signal.h>
#include <stdint.h>
#include <sys/types.h>

struct sandbox_bind {
	const char *host; /* absolute host path (file or directory) */
	const char *path; /* absolute path inside the sandbox */
	bool read_write;
};

struct sandbox_rlimits {
	uint64_t address_space; /* RLIMIT_AS bytes; 0 = default (16 GiB) */
	uint64_t cpu_seconds;	/* RLIMIT_CPU; 0 = unlimited */
	uint64_t file_size;	/* RLIMIT_FSIZE bytes; 0 = default (1 GiB) */
	uint64_t open_files;	/* RLIMIT_NOFILE; 0 = default (1024) */
	uint64_t processes;	/* RLIMIT_NPROC; 0 = default (256) */
};

/* Defences a caller may insist on (sandbox_config.require): without them the
 * plan is refused instead of degraded. Every other defence is always applied. */
#define SANDBOX_DEFENCE_LANDLOCK (1u << 0)
#define SANDBOX_DEFENCE_CGROUP	 (1u << 1)

/* Limits written into the run's own cgroup v2 directory. */
struct sandbox_cgroup_limits {
	uint64_t memory_max; /* memory.max bytes (swap off); 0 = no limit */
	uint64_t pids_max;   /* pids.max; 0 = no limit */
	uint64_t cpu_milli;  /* cpu.max in thousandths of one CPU; 0 = no limit */
};

struct sandbox_config {
	const char *const *argv; /* program and arguments; argv[0] looked up in PATH of envp */
	const char *const *envp; /* the complete environment of the program */
	const char *cwd;	 /* host directory bound read-only at the same path; working dir */
	const char *workspace;	 /* host directory bound read-write at /workspace */
	int channel_fd;		 /* becomes fd 3 in the child; -1 for none */
	int stdin_fd, stdout_fd, stderr_fd; /* become 0, 1, 2; -1 = /dev/null */
	const struct sandbox_bind *binds;   /* extra binds (SDK, policy mounts) */
	size_t n_binds;
	struct sandbox_rlimits rlimits;
	/* Root mode only: the unprivileged host uid/gid the program runs as. When the
	 * supervisor is not root these are ignored and the caller's ids are mapped. */
	uid_t uid;
	gid_t gid;
	const char *hostname; /* default "agentd" */
	/* Sockets the program may create. false (default): AF_UNIX only, and
	 * landlock (ABI 4+) also refuses TCP bind/connect. true: AF_UNIX, AF_INET
	 * and AF_INET6 too; the network namespace still has only lo. */
	bool network_loopback;
	/* Record denied syscalls: the kernel holds each one until the caller
	 * answers it through sandbox_child.notify_fd (see sandbox_violation_next).
	 * A caller that sets this must serve notify_fd, or denied calls block. */
	bool report_violations;
	/* Names under writable mounts that stay writable although protected by
	 * default (".git/hooks", ".git/config", ".bashrc", ".profile", ".zshrc"...):
	 * NULL-terminated, or NULL for none. */
	const char *const *writable_names;
	/* Start each child in a cgroup v2 directory of its own (clone3
	 * CLONE_INTO_CGROUP) with cgroup_limits, when a writable hierarchy with
	 * the memory, pids and cpu controllers is there; else rlimits only and a
	 * note (or a refusal when require has SANDBOX_DEFENCE_CGROUP). */
	bool cgroup;
	const char *cgroup_parent; /* delegated cgroup2 directory; NULL: our own cgroup */
	const char *cgroup_name;   /* the child's cgroup under it; NULL: "agentd-<pid>-<n>" */
	struct sandbox_cgroup_limits cgroup_limits;
	unsigned require; /* SANDBOX_DEFENCE_*: refuse rather than run without them */
	/* Test switch: skip the seccomp filter. Only the escape suite's
	 * "protection off" controls set it; never reachable from a policy. */
	bool unsafe_no_seccomp;
	/* Test switch, same rules: skip the landlock ruleset. */
	bool unsafe_no_landlock;
};

struct sandbox_plan; /* opaque: everything the child will apply */

/* Build the plan in the parent. Returns 0 and *ret, or a negative errno with a
 * one-line reason in err (naming the defence that is unavailable and why). */
int sandbox_prepare(const struct sandbox_config *cfg, struct sandbox_plan **ret, char *err,
		    size_t errsz);
struct sandbox_plan *sandbox_plan_free(struct sandbox_plan *p);

struct sandbox_child {
	pid_t pid;
	int pidfd;     /* O_CLOEXEC pidfd of the child; owned by the caller */
	int status_fd; /* O_CLOEXEC pipe, read by sandbox_child_exit(); owned by the caller */
	/* O_CLOEXEC seccomp listener when report_violations was set, else -1;
	 * owned by the caller. Still -1 with report_violations set when the
	 * kernel refused a listener (one already exists above us, e.g. inside a
	 * container runtime that uses one): denials then apply unrecorded. */
	int notify_fd;
	bool network_loopback; /* copied from the config: which filter answers */
	/* O_CLOEXEC fd of the child's own cgroup directory, or -1 when it runs
	 * without one; owned by the caller, who ends it with
	 * sandbox_cgroup_remove() once the child is reaped. */
	int cgroup_fd;
};

/* Create the sandboxed child and exec the program. Blocks until the child has
 * either exec'd successfully or failed setup. On setup failure returns a
 * negative errno with err naming the failed step (e.g. "seccomp: EINVAL"), and
 * the child has been reaped. The plan may be reused for further spawns. */
int sandbox_spawn(const struct sandbox_plan *p, struct sandbox_child *ret, char *err, size_t errsz);

/* What the caller checks before the program may start (sandbox_spawn_gated).
 * fn returns 0 to start it, or a negative errno with a reason in err. */
struct sandbox_gate {
	int (*fn)(void *ud, char *err, size_t errsz);
	void *ud;
};

/* sandbox_spawn(), with gate->fn called in this process while the child
 * builds its sandbox: the child applies every defence (namespaces, mounts,
 * ids, capabilities, landlock, seccomp) and then waits, and the program is
 * started only once fn has returned 0. When fn fails, the child is killed
 * before anything of the program runs, and its error and err are returned.
 * fn may be called again by a later spawn when this one fails. */
int sandbox_spawn_gated(const struct sandbox_plan *p, const struct sandbox_gate *gate,
			struct sandbox_child *ret, char *err, size_t errsz);

/* Non-fatal degradations of this plan (landlock missing or older than
 * expected; resources bounded without cgroup limits), as one line for the
 * caller to log; NULL when there are none. The string lives as long as the
 * plan. */
const char *sandbox_notes(const struct sandbox_plan *p);
/* The SANDBOX_DEFENCE_* this plan goes without (each named in the notes). */
unsigned sandbox_skipped(const struct sandbox_plan *p);

/* cgroup v2 as seen from this process. */
struct sandbox_cgroup_info {
	bool v2;		/* a cgroup2 hierarchy is mounted */
	bool writable;		/* our cgroup in it accepts new children and processes */
	bool memory, pids, cpu; /* controllers offered in our cgroup */
	bool kill;		/* cgroup.kill exists (teardown of a whole cgroup) */
	char path[512];		/* our cgroup's directory */
};

/* Look at /proc/self/mountinfo and /proc/self/cgroup. Returns 0 (an absent
 * hierarchy is v2 = false), -EINVAL or -ENAMETOOLONG. */
int sandbox_cgroup_detect(struct sandbox_cgroup_info *ret);
/* One line saying what the runs get from cgroups here (snprintf's return). */
int sandbox_cgroup_describe(const struct sandbox_cgroup_info *ci, char *buf, size_t bufsz);

/* End a child's cgroup: kill whatever is left in it (cgroup.kill, or one
 * SIGKILL per process where that file is missing), wait briefly for it to
 * empty, remove the directory and close *cgroup_fd (set to -1). Accepts -1.
 * Returns 0, -EBUSY when it did not empty in time (the directory stays and
 * is reclaimed by the next child of the same name), or another negative
 * errno. */
int sandbox_cgroup_remove(int *cgroup_fd);

/* Write the limits into the cgroup directory dirfd (memory.max,
 * memory.swap.max, memory.oom.group, pids.max, cpu.max); files the kernel
 * does not offer for optional knobs (swap) are skipped. Returns 0 or a
 * negative errno with err naming the file. */
int sandbox_cgroup_write_limits(int dirfd, const struct sandbox_cgroup_limits *l, char *err,
				size_t errsz);

/* How the program ended. */
struct sandbox_exit {
	bool signaled; /* killed by signal `code` (else exited with status `code`) */
	int code;
};

/* PID 1 of the sandbox is a small init that runs the program. A namespace
 * init cannot die of a signal sent from inside, so when the program is killed
 * init exits with 128+sig and, just before, writes the program's exact wait
 * status to status_fd. After waitid(P_PIDFD, c->pidfd, &si, WEXITED) reported
 * init's end, this combines both: a SIGKILLed program gives {signaled=true,
 * code=SIGKILL}, an exit(137) gives {false, 137}; init killed from outside
 * (supervisor, OOM) gives si's signal. Does not block. Returns 0 or -EINVAL. */
int sandbox_child_exit(const struct sandbox_child *c, const siginfo_t *si,
		       struct sandbox_exit *ret);

/* One denied syscall, already answered. */
struct sandbox_violation {
	pid_t pid;	  /* the calling thread, in the caller's pid namespace */
	int nr;		  /* syscall number (native architecture) */
	char syscall[32]; /* its name, or "syscall_<nr>" */
	struct {
		const char *name; /* static string, e.g. "family" */
		uint64_t value;
	} args[3]; /* the arguments that decide the answer, if any */
	size_t n_args;
	int err; /* the errno the program got (the filter's own answer) */
};

/* Take one pending notification from c->notify_fd, answer it with the errno
 * the filter gives that call (never letting it run), and describe it in *ret.
 * Never blocks. Returns 0; -EAGAIN when nothing is pending; -EPIPE when no
 * process is left under the filter (stop watching); -ENOENT when the caller
 * died before it was read; another negative errno on failure. */
int sandbox_violation_next(const struct sandbox_child *c, struct sandbox_violation *ret);

/* Close pidfd, status_fd and notify_fd (set to -1). Accepts NULL. Does not kill or reap,
 * and leaves cgroup_fd alone: end it with sandbox_cgroup_remove() after reaping. */
void sandbox_child_close(struct sandbox_child *c);
