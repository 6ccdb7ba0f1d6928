/* Unit tests for sandbox/: configuration validation with clear errors, and
 * real spawns whose exit status, signal death and channel are observed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/internal.h"
#include "sandbox/sandbox.h"

static char g_ws[64];
static const char *const g_env[] = {"PATH=/usr/bin:/bin", "HOME=/workspace", NULL};

static void
base_config(struct sandbox_config *cfg, const char *const *argv)
{
	*cfg = (struct sandbox_config){
	    .argv = argv,
	    .envp = g_env,
	    .cwd = g_ws,
	    .workspace = g_ws,
	    .channel_fd = -1,
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = 2,
	    .uid = 65534,
	    .gid = 65534,
	};
}

static int
setup(void **state)
{
	snprintf(g_ws, sizeof(g_ws), "/tmp/agentd-test-sandbox.XXXXXX");
	if (!mkdtemp(g_ws))
		return -1;
	chmod(g_ws, 0755);
	if (geteuid() == 0 && chown(g_ws, 65534, 65534) < 0)
		return -1;
	return 0;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path) < 0 ? -1 : 0;
}

/* The workspace and the placeholders the sandbox made in it. */
static int
teardown(void **state)
{
	return nftw(g_ws, rm_one, 8, FTW_DEPTH | FTW_PHYS);
}

/* prepare must fail with want (negative errno) and an error naming `needle`. */
static void
expect_reject(const struct sandbox_config *cfg, int want, const char *needle)
{
	struct sandbox_plan *p = NULL;
	char err[256] = "";

	int r = sandbox_prepare(cfg, &p, err, sizeof(err));
	assert_int_equal(r, want);
	assert_null(p);
	if (!strstr(err, needle))
		fail_msg("error '%s' does not mention '%s'", err, needle);
}

static void
test_prepare_rejects_bad_configs(void **state)
{
	static const char *const argv[] = {"/bin/true", NULL};
	static const char *const empty_argv[] = {NULL};
	struct sandbox_config cfg;

	base_config(&cfg, empty_argv);
	expect_reject(&cfg, -EINVAL, "argv");

	base_config(&cfg, argv);
	cfg.envp = NULL;
	expect_reject(&cfg, -EINVAL, "envp");

	base_config(&cfg, argv);
	cfg.cwd = "relative/dir";
	expect_reject(&cfg, -EINVAL, "cwd must be a canonical absolute path");

	base_config(&cfg, argv);
	cfg.cwd = "/";
	expect_reject(&cfg, -EINVAL, "cwd");

	base_config(&cfg, argv);
	cfg.cwd = "/usr/../etc";
	expect_reject(&cfg, -EINVAL, "cwd");

	base_config(&cfg, argv);
	cfg.workspace = NULL;
	expect_reject(&cfg, -EINVAL, "workspace");

	base_config(&cfg, argv);
	cfg.workspace = "/nonexistent/agentd-workspace";
	expect_reject(&cfg, -ENOENT, "workspace /nonexistent/agentd-workspace");

	base_config(&cfg, argv);
	cfg.workspace = "/etc/passwd";
	expect_reject(&cfg, -ENOTDIR, "not a directory");

	struct sandbox_bind bad_rel = {.host = "usr", .path = "/x"};
	base_config(&cfg, argv);
	cfg.binds = &bad_rel;
	cfg.n_binds = 1;
	expect_reject(&cfg, -EINVAL, "bind 0");

	struct sandbox_bind bad_proc = {.host = "/usr", .path = "/proc/x"};
	cfg.binds = &bad_proc;
	expect_reject(&cfg, -EINVAL, "reserved");

	struct sandbox_bind missing = {.host = "/nonexistent/src", .path = "/data"};
	cfg.binds = &missing;
	expect_reject(&cfg, -ENOENT, "/nonexistent/src");

	base_config(&cfg, argv);
	cfg.channel_fd = 987;
	expect_reject(&cfg, -EBADF, "channel fd 987");

	base_config(&cfg, argv);
	cfg.hostname = "this-hostname-is-far-too-long-to-be-a-valid-uts-name-in-the-kernel-x";
	expect_reject(&cfg, -EINVAL, "hostname");

	if (geteuid() == 0) {
		base_config(&cfg, argv);
		cfg.uid = 0;
		expect_reject(&cfg, -EPERM, "root is never mapped");
	}
}

/* Spawn, wait on the pidfd, decode. Returns the spawn result. */
static int
run(const struct sandbox_config *cfg, struct sandbox_exit *ex, char *err, size_t errsz)
{
	struct sandbox_plan *p = NULL;
	struct sandbox_child c;
	siginfo_t si;

	int r = sandbox_prepare(cfg, &p, err, errsz);
	if (r < 0)
		fail_msg("prepare: %s", err);
	r = sandbox_spawn(p, &c, err, errsz);
	p = sandbox_plan_free(p);
	if (r < 0)
		return r;
	assert_true(c.pid > 0);
	assert_true(c.pidfd >= 0);
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)c.pidfd, &si, WEXITED), 0);
	assert_int_equal(sandbox_child_exit(&c, &si, ex), 0);
	sandbox_child_close(&c);
	assert_int_equal(c.pidfd, -1);
	return 0;
}

static void
test_exit_status(void **state)
{
	static const char *const t[] = {"/bin/true", NULL};
	static const char *const f[] = {"false", NULL}; /* PATH lookup */
	static const char *const e42[] = {"/bin/sh", "-c", "exit 42", NULL};
	struct sandbox_config cfg;
	struct sandbox_exit ex;
	char err[256];

	base_config(&cfg, t);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 0);

	base_config(&cfg, f);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 1);

	base_config(&cfg, e42);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 42);
}

static void
test_signal_death(void **state)
{
	static const char *const k9[] = {"/bin/sh", "-c", "kill -9 $$", NULL};
	static const char *const e137[] = {"/bin/sh", "-c", "exit 137", NULL};
	struct sandbox_config cfg;
	struct sandbox_exit ex;
	char err[256];

	base_config(&cfg, k9);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_true(ex.signaled);
	assert_int_equal(ex.code, SIGKILL);

	/* The same number as an exit code is not a signal. */
	base_config(&cfg, e137);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 137);
}

static void
test_killed_from_outside(void **state)
{
	static const char *const argv[] = {"/bin/sleep", "30", NULL};
	struct sandbox_config cfg;
	struct sandbox_plan *p = NULL;
	struct sandbox_child c;
	struct sandbox_exit ex;
	siginfo_t si;
	char err[256];

	base_config(&cfg, argv);
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), 0);
	/* Landlock is there (ABI >= 1) exactly when the note does not say it is
	 * missing; cgroup limits are not applied, and the note always says so. */
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* VERSION */);
	assert_non_null(sandbox_notes(p));
	if (abi >= 1)
		assert_null(strstr(sandbox_notes(p), "landlock unavailable"));
	else
		assert_non_null(strstr(sandbox_notes(p), "landlock unavailable"));
	assert_non_null(strstr(sandbox_notes(p), "bounded by rlimits and the pid namespace"));
	/* The plan is reusable: two children from one plan. */
	for (int i = 0; i < 2; i++) {
		assert_int_equal(sandbox_spawn(p, &c, err, sizeof(err)), 0);
		assert_int_equal(syscall(SYS_pidfd_send_signal, c.pidfd, SIGKILL, NULL, 0), 0);
		assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)c.pidfd, &si, WEXITED), 0);
		assert_int_equal(si.si_code, CLD_KILLED);
		assert_int_equal(sandbox_child_exit(&c, &si, &ex), 0);
		assert_true(ex.signaled);
		assert_int_equal(ex.code, SIGKILL);
		sandbox_child_close(&c);
	}
	sandbox_plan_free(p);
}

static void
test_setup_errors_named(void **state)
{
	static const char *const missing[] = {"/nonexistent/program", NULL};
	static const char *const t[] = {"/bin/true", NULL};
	struct sandbox_config cfg;
	struct sandbox_exit ex;
	char err[256] = "";

	base_config(&cfg, missing);
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), -ENOENT);
	if (!strstr(err, "exec /nonexistent/program failed: ENOENT"))
		fail_msg("unexpected error: %s", err);

	/* A mount point that cannot be created inside a read-only bind. */
	struct sandbox_bind b = {.host = g_ws, .path = "/usr/agentd-no-such-dir"};
	base_config(&cfg, t);
	cfg.binds = &b;
	cfg.n_binds = 1;
	err[0] = '\0';
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), -EROFS);
	if (!strstr(err, "/usr/agentd-no-such-dir") || !strstr(err, "EROFS"))
		fail_msg("unexpected error: %s", err);
}

static void
test_channel_is_fd3(void **state)
{
	static const char *const argv[] = {"/bin/sh", "-c", "echo \"hi $AGENTD_FD\" >&3", NULL};
	static const char *const env[] = {"PATH=/usr/bin:/bin", "AGENTD_FD=3", NULL};
	struct sandbox_config cfg;
	struct sandbox_exit ex;
	char err[256], buf[32] = "";
	int sv[2];

	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	base_config(&cfg, argv);
	cfg.envp = env;
	cfg.channel_fd = sv[1];
	assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
	assert_int_equal(ex.code, 0);
	close(sv[1]);
	ssize_t n = read(sv[0], buf, sizeof(buf) - 1);
	assert_true(n > 0);
	assert_string_equal(buf, "hi 3\n");
	/* Nobody in the sandbox holds the channel any more: EOF. */
	assert_int_equal(read(sv[0], buf, sizeof(buf)), 0);
	close(sv[0]);
}

/* What the gate of a spawn saw, and what it answers. */
struct gate_probe {
	const char *marker; /* the file the program creates when it runs */
	int answer;
	int calls;
	bool marker_seen; /* the program had run while the gate was closed */
};

static int
gate_fn(void *ud, char *err, size_t errsz)
{
	struct gate_probe *g = ud;

	g->calls++;
	/* Long enough for the child to finish its sandbox: a program that
	 * started without the gate would have created the marker by now. */
	usleep(200 * 1000);
	g->marker_seen = access(g->marker, F_OK) == 0;
	if (g->answer < 0)
		snprintf(err, errsz, "check failed");
	return g->answer;
}

/* A gated spawn starts the program only once the gate says so; a gate that
 * fails gets its error back and the program never runs. */
static void
test_gate(void **state)
{
	char marker[128], script[160];
	const char *argv[] = {"/bin/sh", "-c", script, NULL};
	struct sandbox_config cfg;
	struct sandbox_plan *p = NULL;
	struct sandbox_child c;
	struct sandbox_exit ex;
	siginfo_t si;
	char err[256] = "";

	snprintf(marker, sizeof(marker), "%s/ran", g_ws);
	/* The gate's pipe (fd 7 in the child) is not the program's. */
	snprintf(script, sizeof(script),
		 "test -e /proc/self/fd/7 && exit 9; touch /workspace/ran; exit 7");
	base_config(&cfg, argv);
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), 0);

	struct gate_probe g = {.marker = marker, .answer = -EBADMSG};
	struct sandbox_gate gate = {gate_fn, &g};
	assert_int_equal(sandbox_spawn_gated(p, &gate, &c, err, sizeof(err)), -EBADMSG);
	assert_int_equal(g.calls, 1);
	assert_false(g.marker_seen);
	assert_string_equal(err, "check failed");
	/* Refused: the child was killed and reaped before the program ran. */
	usleep(100 * 1000);
	assert_int_equal(access(marker, F_OK), -1);

	g = (struct gate_probe){.marker = marker, .answer = 0};
	err[0] = '\0';
	assert_int_equal(sandbox_spawn_gated(p, &gate, &c, err, sizeof(err)), 0);
	assert_int_equal(g.calls, 1);
	assert_false(g.marker_seen);
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)c.pidfd, &si, WEXITED), 0);
	assert_int_equal(sandbox_child_exit(&c, &si, &ex), 0);
	assert_false(ex.signaled);
	assert_int_equal(ex.code, 7);
	assert_int_equal(access(marker, F_OK), 0);
	sandbox_child_close(&c);
	unlink(marker);
	sandbox_plan_free(p);
}

/* The prebuilt filter used at spawn time is exactly what libseccomp compiles
 * from the rules in sandbox/seccomp.c (regenerate with agentd-seccomp-gen). */
static void *
wait_on_pipe(void *arg)
{
	char c;

	return read(*(int *)arg, &c, 1) < 0 ? NULL : arg;
}

/* The supervisor may have other threads (the store's checkpointer): the
 * child, a copy of one thread, must not wait for the others (glibc's id
 * changes do, in a process that had threads). A hang fails by timeout. */
static void
test_parent_has_threads(void **state)
{
	static const char *const t[] = {"/bin/sh", "-c", "exit 7", NULL};
	struct sandbox_config cfg;
	struct sandbox_exit ex;
	char err[256];
	int pfd[2];
	pthread_t th;

	assert_int_equal(pipe2(pfd, O_CLOEXEC), 0);
	assert_int_equal(pthread_create(&th, NULL, wait_on_pipe, &pfd[0]), 0);
	base_config(&cfg, t);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(run(&cfg, &ex, err, sizeof(err)), 0);
		assert_false(ex.signaled);
		assert_int_equal(ex.code, 7);
	}
	close(pfd[1]);
	assert_int_equal(pthread_join(th, NULL), 0);
	close(pfd[0]);
}

static void
test_prebuilt_seccomp_is_current(void **state)
{
	for (int inet = 0; inet <= 1; inet++) {
		const struct sock_filter *pre;
		unsigned short pre_len, len;
		struct sock_filter *bpf = NULL;
		char err[256];

		if (sandbox_seccomp_prebuilt(inet, &pre, &pre_len) < 0)
			skip();
		assert_int_equal(sandbox_seccomp_compile(inet, &bpf, &len, err, sizeof(err)), 0);
		assert_int_equal(pre_len, len);
		assert_memory_equal(pre, bpf, len * sizeof(*bpf));
		free(bpf);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_prepare_rejects_bad_configs),
	    cmocka_unit_test(test_exit_status),
	    cmocka_unit_test(test_signal_death),
	    cmocka_unit_test(test_killed_from_outside),
	    cmocka_unit_test(test_setup_errors_named),
	    cmocka_unit_test(test_channel_is_fd3),
	    cmocka_unit_test(test_gate),
	    cmocka_unit_test(test_parent_has_threads),
	    cmocka_unit_test(test_prebuilt_seccomp_is_current),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
