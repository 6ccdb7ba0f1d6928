/* Per-run cgroups and required defences in sandbox/: the limits written into a
 * cgroup directory (checked on a plain directory holding the control files,
 * since the writes are ordinary file writes), the refusal of a plan that
 * requires a defence the host lacks (with the reason and how to enable it),
 * and on a host with a usable cgroup v2 a real child born in its own cgroup. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

static char g_ws[64];
static const char *const g_env[] = {"PATH=/usr/bin:/bin", "HOME=/workspace", NULL};
static const char *const g_true[] = {"/bin/true", NULL};

static void
base_config(struct sandbox_config *cfg)
{
	*cfg = (struct sandbox_config){
	    .argv = g_true,
	    .envp = g_env,
	    .cwd = g_ws,
	    .workspace = g_ws,
	    .channel_fd = -1,
	    .stdin_fd = -1,
	    .stdout_fd = -1,
	    .stderr_fd = 2,
	    .uid = 65534,
	    .gid = 65534,
	    .cgroup = true,
	    .cgroup_limits = {.memory_max = 256ull << 20, .pids_max = 64, .cpu_milli = 500},
	};
}

static int
setup(void **state)
{
	snprintf(g_ws, sizeof(g_ws), "/tmp/agentd-test-cgroup.XXXXXX");
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

static void
slurp(int dirfd, const char *file, char *buf, size_t bufsz)
{
	cleanup_close int fd = openat(dirfd, file, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	ssize_t n = read(fd, buf, bufsz - 1);
	assert_true(n >= 0);
	buf[n] = '\0';
}

/* The control files as the kernel would offer them, empty. */
static int
fake_cgroup(char *dir, size_t dirsz, const char *const *files)
{
	snprintf(dir, dirsz, "/tmp/agentd-test-cgdir.XXXXXX");
	assert_non_null(mkdtemp(dir));
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	assert_true(fd >= 0);
	for (; *files; files++) {
		int f = openat(fd, *files, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
		assert_true(f >= 0);
		close(f);
	}
	return fd;
}

static void
remove_fake(int fd, const char *dir, const char *const *files)
{
	for (; *files; files++)
		unlinkat(fd, *files, 0);
	close(fd);
	rmdir(dir);
}

static void
test_limits_written(void **state)
{
	static const char *const files[] = {"memory.max", "memory.swap.max", "memory.oom.group",
					    "pids.max",	  "cpu.max",	     NULL};
	struct sandbox_cgroup_limits l = {
	    .memory_max = 512ull << 20, .pids_max = 64, .cpu_milli = 500};
	char dir[64], buf[64], err[128] = "";
	int fd = fake_cgroup(dir, sizeof(dir), files);

	assert_int_equal(sandbox_cgroup_write_limits(fd, &l, err, sizeof(err)), 0);
	slurp(fd, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "536870912\n");
	slurp(fd, "memory.swap.max", buf, sizeof(buf));
	assert_string_equal(buf, "0\n");
	slurp(fd, "memory.oom.group", buf, sizeof(buf));
	assert_string_equal(buf, "1\n");
	slurp(fd, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "64\n");
	/* half a CPU: 50 ms of every 100 ms */
	slurp(fd, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "50000 100000\n");
	remove_fake(fd, dir, files);

	/* Control: limits left unset are not written (the kernel's "max" stays). */
	fd = fake_cgroup(dir, sizeof(dir), files);
	l = (struct sandbox_cgroup_limits){.cpu_milli = 2000};
	assert_int_equal(sandbox_cgroup_write_limits(fd, &l, err, sizeof(err)), 0);
	slurp(fd, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "");
	slurp(fd, "pids.max", buf, sizeof(buf));
	assert_string_equal(buf, "");
	slurp(fd, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "200000 100000\n");
	remove_fake(fd, dir, files);

	/* A controller file that is missing is an error naming it; the
	 * optional swap knob is not. */
	static const char *const no_pids[] = {"memory.max", "cpu.max", NULL};
	fd = fake_cgroup(dir, sizeof(dir), no_pids);
	l = (struct sandbox_cgroup_limits){.memory_max = 1 << 20, .pids_max = 8};
	assert_int_equal(sandbox_cgroup_write_limits(fd, &l, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "pids.max"));
	remove_fake(fd, dir, no_pids);

	int none = -1;
	assert_int_equal(sandbox_cgroup_remove(&none), 0);
}

/* A parent that is not a cgroup v2 directory: skipped with a note, or
 * refused when required, naming the directory and how to get one. */
static void
test_fake_parent_refused(void **state)
{
	struct sandbox_config cfg;
	struct sandbox_plan *p = NULL;
	char err[512] = "";

	base_config(&cfg);
	cfg.cgroup_parent = g_ws;
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), 0);
	assert_true(sandbox_skipped(p) & SANDBOX_DEFENCE_CGROUP);
	assert_non_null(strstr(sandbox_notes(p), "is not a cgroup v2 directory"));
	p = sandbox_plan_free(p);

	cfg.require = SANDBOX_DEFENCE_CGROUP;
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), -EOPNOTSUPP);
	assert_null(p);
	if (!strstr(err, "required defence missing: cgroup") || !strstr(err, g_ws) ||
	    !strstr(err, "Delegate=yes"))
		fail_msg("unclear refusal: %s", err);
}

/* This host as it is: if it has no usable cgroup v2 a required cgroup is
 * refused; if it has one, the child is born in a cgroup of its own with the
 * limits, and the cgroup is gone after sandbox_cgroup_remove. */
static void
test_required_cgroup_here(void **state)
{
	struct sandbox_config cfg;
	struct sandbox_plan *p = NULL;
	struct sandbox_child c;
	char err[512] = "";

	base_config(&cfg);
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), 0);
	bool usable = !(sandbox_skipped(p) & SANDBOX_DEFENCE_CGROUP);
	if (!usable) {
		/* the note says why, and that rlimits are what is left */
		assert_non_null(strstr(sandbox_notes(p), "cgroup"));
		assert_non_null(strstr(sandbox_notes(p), "bounded by rlimits"));
	}
	p = sandbox_plan_free(p);

	cfg.require = SANDBOX_DEFENCE_CGROUP;
	int r = sandbox_prepare(&cfg, &p, err, sizeof(err));
	if (!usable) {
		assert_int_equal(r, -EOPNOTSUPP);
		assert_non_null(strstr(err, "required"));
		return;
	}
	assert_int_equal(r, 0);
	assert_int_equal(sandbox_spawn(p, &c, err, sizeof(err)), 0);
	assert_true(c.cgroup_fd >= 0);
	char buf[64];
	slurp(c.cgroup_fd, "memory.max", buf, sizeof(buf));
	assert_string_equal(buf, "268435456\n");
	slurp(c.cgroup_fd, "cpu.max", buf, sizeof(buf));
	assert_string_equal(buf, "50000 100000\n");
	siginfo_t si;
	assert_int_equal(waitid((idtype_t)P_PIDFD, (id_t)c.pidfd, &si, WEXITED), 0);
	assert_int_equal(sandbox_cgroup_remove(&c.cgroup_fd), 0);
	assert_int_equal(c.cgroup_fd, -1);
	sandbox_child_close(&c);
	sandbox_plan_free(p);
}

static void
test_required_landlock(void **state)
{
	struct sandbox_config cfg;
	struct sandbox_plan *p = NULL;
	char err[512] = "";
	long abi = syscall(SYS_landlock_create_ruleset, NULL, 0, 1 /* VERSION */);

	base_config(&cfg);
	cfg.cgroup = false;
	cfg.require = SANDBOX_DEFENCE_LANDLOCK;
	int r = sandbox_prepare(&cfg, &p, err, sizeof(err));
	if (abi < 1) {
		assert_int_equal(r, -EOPNOTSUPP);
		assert_non_null(strstr(err, "landlock"));
		assert_non_null(strstr(err, "lsm="));
		return;
	}
	/* Control: landlock is here, so requiring it is fine... */
	assert_int_equal(r, 0);
	assert_false(sandbox_skipped(p) & SANDBOX_DEFENCE_LANDLOCK);
	p = sandbox_plan_free(p);
	/* ...and without it the plan is refused, naming it. */
	cfg.unsafe_no_landlock = true;
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), -EOPNOTSUPP);
	assert_null(p);
	assert_non_null(strstr(err, "required defence missing: landlock"));
	/* not required: skipped, and reported as skipped */
	cfg.require = 0;
	assert_int_equal(sandbox_prepare(&cfg, &p, err, sizeof(err)), 0);
	assert_true(sandbox_skipped(p) & SANDBOX_DEFENCE_LANDLOCK);
	sandbox_plan_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_limits_written),
	    cmocka_unit_test(test_fake_parent_refused),
	    cmocka_unit_test(test_required_cgroup_here),
	    cmocka_unit_test(test_required_landlock),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
