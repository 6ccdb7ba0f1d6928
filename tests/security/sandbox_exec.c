/* agentd-sandbox-exec: run one program in the sandbox and exit with its
 * status (128+sig for a signal death, like a shell). A test and bench driver
 * for the sandbox library; the real entry point is `agentd run`. */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/util.h"
#include "sandbox/sandbox.h"

extern char **environ;

static void
usage(FILE *f)
{
	fprintf(f, "usage: agentd-sandbox-exec [--no-seccomp] [--no-landlock] [--cwd DIR] "
		   "[--workspace DIR]\n"
		   "       [--bind HOST:PATH[:rw]]... [--uid N --gid N] [--channel FD]\n"
		   "       [--pidfile FILE] [--quiet] [--network unix|loopback] [--memory BYTES]\n"
		   "       [--writable-name NAME]...\n"
		   "       [--violations FILE | --no-violations] -- CMD [ARG...]\n");
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"no-seccomp", no_argument, NULL, 'S'},
	    {"no-landlock", no_argument, NULL, 'L'},
	    {"cwd", required_argument, NULL, 'c'},
	    {"workspace", required_argument, NULL, 'w'},
	    {"bind", required_argument, NULL, 'b'},
	    {"uid", required_argument, NULL, 'u'},
	    {"gid", required_argument, NULL, 'g'},
	    {"channel", required_argument, NULL, 'C'},
	    {"quiet", no_argument, NULL, 'q'},
	    {"pidfile", required_argument, NULL, 'p'},
	    {"help", no_argument, NULL, 'h'},
	    {"network", required_argument, NULL, 'n'},
	    {"violations", required_argument, NULL, 'V'},
	    {"no-violations", no_argument, NULL, 'N'},
	    {"memory", required_argument, NULL, 'm'},
	    {"writable-name", required_argument, NULL, 'W'},
	    {NULL, 0, NULL, 0},
	};
	struct sandbox_bind binds[32];
	char cwdbuf[4096], err[512] = "";
	struct sandbox_config cfg = {
	    .channel_fd = -1,
	    .stdin_fd = 0,
	    .stdout_fd = 1,
	    .stderr_fd = 2,
	    .binds = binds,
	    .uid = 65534,
	    .gid = 65534,
	    .report_violations = true,
	};
	const char *viol_path = NULL;
	const char *wnames[16] = {NULL};
	size_t n_wnames = 0;
	bool quiet = false;
	const char *pidfile = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'S':
			cfg.unsafe_no_seccomp = true;
			break;
		case 'L':
			cfg.unsafe_no_landlock = true;
			break;
		case 'c':
			cfg.cwd = optarg;
			break;
		case 'w':
			cfg.workspace = optarg;
			break;
		case 'b': {
			if (cfg.n_binds == ARRAY_SIZE(binds)) {
				fprintf(stderr, "agentd-sandbox-exec: too many --bind\n");
				return 125;
			}
			char *host = optarg, *path = strchr(optarg, ':');
			if (!path) {
				usage(stderr);
				return 125;
			}
			*path++ = '\0';
			char *mode = strchr(path, ':');
			bool rw = false;
			if (mode) {
				*mode++ = '\0';
				rw = strcmp(mode, "rw") == 0;
			}
			binds[cfg.n_binds++] = (struct sandbox_bind){host, path, rw};
			break;
		}
		case 'u':
			cfg.uid = (uid_t)strtoul(optarg, NULL, 10);
			break;
		case 'g':
			cfg.gid = (gid_t)strtoul(optarg, NULL, 10);
			break;
		case 'C':
			cfg.channel_fd = atoi(optarg);
			break;
		case 'q':
			quiet = true;
			break;
		case 'p':
			pidfile = optarg;
			break;
		case 'n':
			if (strcmp(optarg, "loopback") != 0 && strcmp(optarg, "unix") != 0) {
				usage(stderr);
				return 125;
			}
			cfg.network_loopback = strcmp(optarg, "loopback") == 0;
			break;
		case 'V':
			viol_path = optarg;
			break;
		case 'N':
			cfg.report_violations = false;
			break;
		case 'W':
			if (n_wnames + 1 >= ARRAY_SIZE(wnames)) {
				usage(stderr);
				return 125;
			}
			wnames[n_wnames++] = optarg;
			cfg.writable_names = wnames;
			break;
		case 'm':
			cfg.rlimits.address_space = strtoull(optarg, NULL, 10);
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 125;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 125;
	}
	if (!cfg.cwd) {
		if (!getcwd(cwdbuf, sizeof(cwdbuf))) {
			perror("agentd-sandbox-exec: getcwd");
			return 125;
		}
		cfg.cwd = cwdbuf;
	}
	if (!cfg.workspace)
		cfg.workspace = cfg.cwd;
	cfg.argv = (const char *const *)&argv[optind];
	cfg.envp = (const char *const *)environ;

	struct sandbox_plan *plan = NULL;
	int r = sandbox_prepare(&cfg, &plan, err, sizeof(err));
	if (r < 0) {
		fprintf(stderr, "agentd-sandbox-exec: %s\n", err);
		return 125;
	}
	if (!quiet && sandbox_notes(plan))
		fprintf(stderr, "agentd-sandbox-exec: note: %s\n", sandbox_notes(plan));
	struct sandbox_child child;
	r = sandbox_spawn(plan, &child, err, sizeof(err));
	plan = sandbox_plan_free(plan);
	if (r < 0) {
		fprintf(stderr, "agentd-sandbox-exec: %s\n", err);
		return r == -ENOENT ? 127 : 126;
	}
	if (pidfile) {
		/* Host pid of the sandbox's init, for tests that signal it. */
		FILE *f = fopen(pidfile, "we");
		if (!f || fprintf(f, "%d\n", (int)child.pid) < 0 || fclose(f) != 0) {
			perror("agentd-sandbox-exec: pidfile");
			return 125;
		}
	}
	/* Answer denied syscalls until the sandbox is gone; one line each:
	 * "SYSCALL ERRNO [name=value...]". */
	FILE *vf = viol_path ? fopen(viol_path, "ae") : NULL;
	if (viol_path && !vf) {
		perror("agentd-sandbox-exec: violations file");
		return 125;
	}
	while (child.notify_fd >= 0) {
		struct pollfd pfd[2] = {{child.pidfd, POLLIN, 0}, {child.notify_fd, POLLIN, 0}};
		if (poll(pfd, 2, -1) < 0 && errno != EINTR)
			break;
		if (pfd[0].revents)
			break;
		struct sandbox_violation v;
		r = sandbox_violation_next(&child, &v);
		if (r == -EPIPE)
			break;
		if (r < 0)
			continue;
		FILE *out = vf ? vf : quiet ? NULL : stderr;
		if (!out)
			continue;
		fprintf(out, "%s%s %s", out == stderr ? "agentd-sandbox-exec: violation: " : "",
			v.syscall, strerrorname_np(v.err) ? strerrorname_np(v.err) : "?");
		for (size_t i = 0; i < v.n_args; i++)
			fprintf(out, " %s=%#llx", v.args[i].name,
				(unsigned long long)v.args[i].value);
		fputc('\n', out);
		fflush(out);
	}
	if (vf)
		fclose(vf);
	siginfo_t si;
	do
		r = waitid((idtype_t)P_PIDFD, (id_t)child.pidfd, &si, WEXITED);
	while (r < 0 && errno == EINTR);
	if (r < 0) {
		perror("agentd-sandbox-exec: waitid");
		return 125;
	}
	struct sandbox_exit ex;
	r = sandbox_child_exit(&child, &si, &ex);
	sandbox_child_close(&child);
	if (r < 0)
		return 125;
	if (ex.signaled) {
		if (!quiet)
			fprintf(stderr, "agentd-sandbox-exec: killed by signal %d (%s)\n", ex.code,
				strsignal(ex.code));
		return 128 + ex.code;
	}
	return ex.code;
}
