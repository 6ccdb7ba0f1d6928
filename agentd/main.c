/* agentd: the one-shot CLI (run, resume, runs, show) over the embedded store. */
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"
#include "store/store.h"
#include "supervisor/supervisor.h"
#include "supervisor/tools/tools.h"

#define NOBODY 65534

static const char *state_opt;
static const char *secrets_opt; /* --secrets FILE */
static int idle_suspend_opt;	/* --approval-idle-suspend (0: the supervisor's default) */

static void
usage(FILE *f)
{
	fputs("usage:\n"
	      "  agentd run [--id NAME] [--policy FILE] [--policy-dir DIR] [--state DIR]\n"
	      "             [--workspace DIR]\n"
	      "             [--approve | --deny] [--max-restarts N] [--on-divergence fail|live]\n"
	      "             [--secrets FILE] [--durable-approvals [--approval-idle-suspend S]]\n"
	      "             -- CMD [ARG...]\n"
	      "  agentd resume NAME [--state DIR] [--approve | --deny] [--secrets FILE]\n"
	      "  agentd approve NAME SEQ [--deny] [--comment TEXT] [--scope once|run|always]\n"
	      "  agentd approvals [NAME] [--status STATUS]\n"
	      "  agentd send NAME TEXT [--mode queue|interrupt|restart|reject]\n"
	      "  agentd runs [--state DIR]\n"
	      "  agentd show NAME [--state DIR] [--at SEQ]\n"
	      "  agentd fork NAME --at SEQ [--id NEW] [--state DIR] [--approve | --deny]\n"
	      "  agentd admin backup FILE [--state DIR]\n"
	      "  (run and resume also take --durability process|power; run takes\n"
	      "   --durable FILE (retries, timeouts, fallbacks, on_unknown, keep_states)\n"
	      "   and --deadline DUR)\n"
	      "  agentd policy check --policy FILE TOOL ARGS_JSON [--cwd DIR]\n"
	      "  agentd policy lint FILE\n"
	      "  agentd audit [--run NAME] [--state DIR]\n"
	      "  agentd serve [--config FILE] [--state DIR] [--socket PATH]\n"
	      "  agentd doctor             # which defences this host gives a run\n"
	      "  agentd version\n",
	      f);
}

/* The store of --state DIR (state_opt), else of the default state dir. */
static int
open_store(char *dir, size_t dirsz, struct store **ret)
{
	return agd_open_state_store(state_opt, dir, dirsz, ret);
}

static bool
valid_id(const char *id)
{
	size_t n = strlen(id);

	if (n == 0 || n > 64 || id[0] == '.' || id[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(id[i] >= 'a' && id[i] <= 'z') && !(id[i] >= 'A' && id[i] <= 'Z') &&
		    !(id[i] >= '0' && id[i] <= '9') && !strchr("._-", id[i]))
			return false;
	return true;
}

/* The SDK bound at /opt/agentd: $AGENTD_SDK_DIR, or ../share/agentd/sdk next to us. */
static const char *
sdk_dir(char *buf, size_t bufsz)
{
	const char *env = getenv("AGENTD_SDK_DIR");
	char exe[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (env && env[0] == '/')
		return env;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n <= 0)
		return NULL;
	exe[n] = '\0';
	char *prefix = dirname(dirname(exe)); /* <prefix>/bin/agentd */
	char candidate[PATH_MAX];
	snprintf(candidate, sizeof(candidate), "%s/share/agentd/sdk", prefix);
	if (stat(candidate, &st) < 0 || !S_ISDIR(st.st_mode) || !realpath(candidate, exe))
		return NULL;
	snprintf(buf, bufsz, "%s", exe);
	return buf;
}

static void
print_event(const char *run_id, int attempt, int64_t seq, const char *type, const json_t *data,
	    void *ud)
{
	char line[1024];

	fprintf(stderr, "%s\n", sup_format_event(attempt, seq, type, data, line, sizeof(line)));
}

static void
print_call(const char *run_id, int attempt, const struct sup_call_line *c, void *ud)
{
	char line[1024];

	fprintf(stderr, "%s\n", sup_format_call(c, line, sizeof(line)));
}

/* Hold the run's lock for as long as we supervise it: one supervisor per run. */
static int
lock_run(const char *dir, const char *id)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/runs/%s", dir, id);
	if (agd_mkdir_p(path, 0700) < 0)
		return -errno;
	snprintf(path, sizeof(path), "%s/runs/%s/lock", dir, id);
	fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	/* A supervisor killed a moment ago may leave the lock held for a few
	 * ms more: its sandboxed child shares the lock until it closes its
	 * inherited descriptors or dies of the parent's death signal. Wait up
	 * to a second for that before taking the holder for a live agentd. */
	for (int i = 0; flock(fd, LOCK_EX | LOCK_NB) < 0; i++) {
		int e = -errno;
		if (e != -EWOULDBLOCK || i == 100) {
			close(fd);
			return e;
		}
		nanosleep(&(struct timespec){.tv_nsec = 10 * 1000 * 1000}, NULL);
	}
	return fd;
}

static int
supervise(struct store *st, const char *dir, const char *id, enum sup_approval approval,
	  enum sup_divergence div)
{
	char sdk[PATH_MAX], reason[1024];
	int exit_code = -1;
	cleanup_close int lock = lock_run(dir, id);

	if (lock == -EWOULDBLOCK)
		return agd_die(1, "run %s is already being supervised by another agentd", id);
	if (lock < 0)
		return agd_die(1, "cannot lock run %s: %s", id, strerror(-lock));

	/* Root mode: the tenant's own unprivileged id (stable per state dir). */
	uid_t sid = NOBODY;
	int ie = geteuid() == 0 ? agd_sandbox_id(dir, &sid) : 0;
	if (ie < 0)
		return agd_die(1, "cannot assign this tenant's sandbox uid: %s", strerror(-ie));
	struct sup_options opt = {
	    .approval = approval,
	    .on_divergence = div,
	    .sdk_dir = sdk_dir(sdk, sizeof(sdk)),
	    .sandbox_uid = sid,
	    .sandbox_gid = sid,
	    .on_event = print_event,
	    .on_call = print_call,
	    .stdout_fd = -1,
	    .stderr_fd = -1,
	    .approval_idle_suspend_s = idle_suspend_opt,
	    .secrets_file = secrets_opt,
	    .cgroup_parent = getenv("AGENTD_CGROUP_PARENT"),
	};
	int e = sup_supervise(st, id, &opt, &exit_code, reason, sizeof(reason));
	if (e == -EINTR)
		return agd_die(130, "%s", reason);
	if (e == -EAGAIN) /* EX_TEMPFAIL: resumable once the approval is decided */
		return agd_die(75, "run %s %s", id, reason);
	if (e < 0)
		return agd_die(1, "%s", reason[0] ? reason : strerror(-e));
	if (reason[0])
		return agd_die(exit_code > 0 && exit_code < 126 ? exit_code : 1,
			       "run %s failed: %s", id, reason);
	return exit_code;
}

/* --durable-approvals / --approval-idle-suspend, shared by run and resume:
 * 1 when c was one of them, 0 when not, -1 on a bad value. */
static bool durable_opt;

static int
interact_opt(int c, const char *arg)
{
	char *end;
	long v;

	switch (c) {
	case 'P':
		durable_opt = true;
		return 1;
	case 'I':
		v = strtol(arg, &end, 10);
		if (*end || v < 1 || v > 86400 * 365) {
			agd_die(2, "--approval-idle-suspend takes a number of seconds (>= 1)");
			return -1;
		}
		idle_suspend_opt = (int)v;
		durable_opt = true;
		return 1;
	}
	return 0;
}

static enum sup_approval
approval_from(bool approve, bool deny)
{
	if (durable_opt && !approve && !deny)
		return SUP_APPROVE_DURABLE;
	return approve ? SUP_APPROVE_ALL : deny ? SUP_DENY_ALL : SUP_APPROVE_ASK_TTY;
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"id", required_argument, NULL, 'i'},
	    {"policy", required_argument, NULL, 'p'},
	    {"policy-dir", required_argument, NULL, 'Y'},
	    {"state", required_argument, NULL, 's'},
	    {"workspace", required_argument, NULL, 'w'},
	    {"approve", no_argument, NULL, 'A'},
	    {"deny", no_argument, NULL, 'D'},
	    {"durable-approvals", no_argument, NULL, 'P'},
	    {"approval-idle-suspend", required_argument, NULL, 'I'},
	    {"max-restarts", required_argument, NULL, 'r'},
	    {"on-divergence", required_argument, NULL, 'd'},
	    {"secrets", required_argument, NULL, 'S'},
	    {"durable", required_argument, NULL, AGD_OPT_DURABLE},
	    {"deadline", required_argument, NULL, AGD_OPT_DEADLINE},
	    {"durability", required_argument, NULL, AGD_OPT_DURABILITY},
	    {"help", no_argument, NULL, 'h'},
	    {0},
	};
	const char *id = NULL, *policy_path = NULL, *workspace = NULL, *policy_dir_opt = NULL;
	bool approve = false, deny = false;
	int max_restarts = 5, c;
	enum sup_divergence div = SUP_DIVERGE_FAIL;
	char idbuf[80], dir[PATH_MAX], cwd[PATH_MAX], ws[PATH_MAX + 128];

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'i':
			id = optarg;
			break;
		case 'p':
			policy_path = optarg;
			break;
		case 'Y':
			policy_dir_opt = optarg;
			break;
		case 's':
			state_opt = optarg;
			break;
		case 'S':
			secrets_opt = optarg;
			break;
		case AGD_OPT_DURABLE:
		case AGD_OPT_DEADLINE:
		case AGD_OPT_DURABILITY:
			if (agd_durable_option(c, optarg) < 0)
				return 2;
			break;
		case 'w':
			workspace = optarg;
			break;
		case 'A':
			approve = true;
			break;
		case 'D':
			deny = true;
			break;
		case 'P':
		case 'I':
			if (interact_opt(c, optarg) < 0)
				return 2;
			break;
		case 'r': {
			char *end;
			long v = strtol(optarg, &end, 10);
			if (*end || v < 0 || v > 1000)
				return agd_die(2, "--max-restarts takes a number from 0 to 1000");
			max_restarts = (int)v;
			break;
		}
		case 'd':
			if (strcmp(optarg, "fail") == 0)
				div = SUP_DIVERGE_FAIL;
			else if (strcmp(optarg, "live") == 0 || strcmp(optarg, "diverge") == 0)
				div = SUP_DIVERGE_LIVE;
			else
				return agd_die(2, "--on-divergence takes fail or live");
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return agd_die(2, "run: no command given (put it after --)");
	}
	if (approve && deny)
		return agd_die(2, "--approve and --deny exclude each other");
	if (id && !valid_id(id))
		return agd_die(2, "invalid run id '%s': use 1-64 of [A-Za-z0-9._-]", id);
	if (!id) {
		uint16_t rnd = 0;
		time_t now = time(NULL);
		struct tm tm;
		if (getrandom(&rnd, sizeof(rnd), 0) < 0)
			rnd = (uint16_t)getpid();
		gmtime_r(&now, &tm);
		snprintf(idbuf, sizeof(idbuf), "run-%04d%02d%02d-%02d%02d%02d-%04x",
			 tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			 tm.tm_sec, rnd);
		id = idbuf;
	}
	if (!getcwd(cwd, sizeof(cwd)))
		return agd_die(1, "cannot get the working directory: %s", strerror(errno));

	/* The policy layers are resolved now and stored whole: a resumed run
	 * keeps them. */
	int e;
	cleanup_json json_t *doc = NULL;
	e = agd_run_policy(policy_dir_opt, policy_path, &doc);
	if (e)
		return e;

	struct store *st = NULL;
	if (open_store(dir, sizeof(dir), &st))
		return 1;

	bool created_ws = false;
	if (workspace) {
		if (!realpath(workspace, ws)) {
			store_close(st);
			return agd_die(2, "workspace %s: %s", workspace, strerror(errno));
		}
	} else {
		snprintf(ws, sizeof(ws), "%s/runs/%s/workspace", dir, id);
		e = agd_mkdir_p(ws, 0700);
		if (e < 0) {
			store_close(st);
			return agd_die(1, "cannot create workspace %s: %s", ws, strerror(-e));
		}
		created_ws = true;
	}
	/* Root mode: the agent runs as an unprivileged uid that must own its workspace. */
	uid_t sid = NOBODY;
	if (created_ws && geteuid() == 0 &&
	    ((e = agd_sandbox_id(dir, &sid)) < 0 ||
	     (e = chown(ws, sid, sid) < 0 ? -errno : 0) < 0)) {
		store_close(st);
		return agd_die(1, "cannot hand workspace %s to the sandbox user: %s", ws,
			       strerror(-e));
	}

	cleanup_json json_t *spec = sup_spec_new(argv + optind, cwd, ws, doc, max_restarts, 60);
	if (!spec) {
		store_close(st);
		return agd_die(1, "out of memory");
	}
	/* The calling user owns the run: per-user limits count its calls with
	 * the user's other runs in this store. */
	struct passwd *pw = getpwuid(getuid());
	char uidname[16];
	snprintf(uidname, sizeof(uidname), "%u", (unsigned)getuid());
	if (sup_spec_set_owner(spec, getuid(), getgid(), pw ? pw->pw_name : uidname) < 0) {
		store_close(st);
		return agd_die(1, "out of memory");
	}
	int drc = agd_durable_spec(spec);
	if (drc) {
		store_close(st);
		return drc;
	}
	e = store_run_create(st, id, spec);
	if (e == -EEXIST) {
		store_close(st);
		return agd_die(1,
			       "a run named %s already exists; continue it with `agentd resume %s`",
			       id, id);
	}
	if (e < 0) {
		store_close(st);
		return agd_die(1, "cannot record run %s: %s", id, strerror(-e));
	}
	fprintf(stderr, "agentd: run %s (state %s)\n", id, dir);
	int rc = supervise(st, dir, id, approval_from(approve, deny), div);
	store_close(st);
	return rc;
}

static int
cmd_resume(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"approve", no_argument, NULL, 'A'},
	    {"deny", no_argument, NULL, 'D'},
	    {"durable-approvals", no_argument, NULL, 'P'},
	    {"approval-idle-suspend", required_argument, NULL, 'I'},
	    {"on-divergence", required_argument, NULL, 'd'},
	    {"secrets", required_argument, NULL, 'S'},
	    {"durable", required_argument, NULL, AGD_OPT_DURABLE},
	    {"deadline", required_argument, NULL, AGD_OPT_DEADLINE},
	    {"durability", required_argument, NULL, AGD_OPT_DURABILITY},
	    {0},
	};
	bool approve = false, deny = false;
	enum sup_divergence div = SUP_DIVERGE_FAIL;
	char dir[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state_opt = optarg;
			break;
		case 'S':
			secrets_opt = optarg;
			break;
		case AGD_OPT_DURABLE:
		case AGD_OPT_DEADLINE:
		case AGD_OPT_DURABILITY:
			if (agd_durable_option(c, optarg) < 0)
				return 2;
			break;
		case 'A':
			approve = true;
			break;
		case 'D':
			deny = true;
			break;
		case 'P':
		case 'I':
			if (interact_opt(c, optarg) < 0)
				return 2;
			break;
		case 'd':
			div = strcmp(optarg, "fail") == 0 ? SUP_DIVERGE_FAIL : SUP_DIVERGE_LIVE;
			break;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc - 1)
		return agd_die(2, "usage: agentd resume NAME [--state DIR]");
	const char *id = argv[optind];
	struct store *st = NULL;
	if (open_store(dir, sizeof(dir), &st))
		return 1;
	struct store_run sr = {0};
	int e = store_run_get(st, id, &sr);
	if (e < 0) {
		store_close(st);
		return agd_die(1, "no run named %s in %s", id, dir);
	}
	bool finished = strcmp(sr.status, "succeeded") == 0 || strcmp(sr.status, "failed") == 0;
	char status[32];
	snprintf(status, sizeof(status), "%s", sr.status);
	store_run_clear(&sr);
	if (finished) {
		store_close(st);
		return agd_die(1, "run %s has already %s", id, status);
	}
	/* A suspended run waits on a durable approval: keep it durable. */
	if (strcmp(status, "suspended") == 0)
		durable_opt = true;
	fprintf(stderr, "agentd: resuming run %s (was %s)\n", id, status);
	int rc = supervise(st, dir, id, approval_from(approve, deny), div);
	store_close(st);
	return rc;
}

static int
print_run(const struct store_run *r, void *ud)
{
	char when[32];
	time_t t = (time_t)(r->created_ms / 1000);
	struct tm tm;
	cleanup_free char *cmd = json_dumps(json_object_get(r->spec, "argv"), JSON_COMPACT);

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	printf("%-32s %-12s %-8d %-5d %-20s %s\n", r->id, r->status, r->attempts, r->exit_code,
	       when, cmd ? cmd : "");
	return 0;
}

static int
cmd_runs(int argc, char **argv)
{
	char dir[PATH_MAX];
	struct store *st = NULL;

	if (argc == 3 && strcmp(argv[1], "--state") == 0)
		state_opt = argv[2];
	else if (argc != 1)
		return agd_die(2, "usage: agentd runs [--state DIR]");
	if (open_store(dir, sizeof(dir), &st))
		return 1;
	printf("%-32s %-12s %-8s %-5s %-20s %s\n", "RUN", "STATUS", "ATTEMPTS", "EXIT", "CREATED",
	       "COMMAND");
	int e = store_run_foreach(st, print_run, NULL);
	store_close(st);
	return e < 0 ? agd_die(1, "cannot list runs: %s", strerror(-e)) : 0;
}

struct item {
	int64_t ts;
	int64_t seq;
	int64_t order;
	char *line;
};

static int
cmp_item(const void *a, const void *b)
{
	const struct item *x = a, *y = b;

	/* Same millisecond: by seq, an event about a call before the call's row. */
	if (x->ts != y->ts)
		return x->ts < y->ts ? -1 : 1;
	if (x->seq != y->seq && x->seq && y->seq)
		return x->seq < y->seq ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

struct items {
	struct item *v;
	size_t n, cap;
};

static int
add_item(struct items *it, int64_t ts, int64_t seq, char *line)
{
	if (!line)
		return -ENOMEM;
	if (it->n == it->cap) {
		size_t cap = it->cap ? it->cap * 2 : 64;
		struct item *v = realloc(it->v, cap * sizeof(*v));
		if (!v) {
			free(line);
			return -ENOMEM;
		}
		it->v = v;
		it->cap = cap;
	}
	it->v[it->n] = (struct item){ts, seq, (int64_t)it->n, line};
	it->n++;
	return 0;
}

static int
add_event(const struct store_event *ev, void *ud)
{
	char line[1024];

	sup_format_event(ev->attempt, ev->seq, ev->type, ev->data, line, sizeof(line));
	return add_item(ud, ev->ts_ms, ev->seq, strdup(line));
}

static const char *const call_status[] = {"unknown outcome", "ok", "error", "denied"};

static int
cmd_show(int argc, char **argv)
{
	char dir[PATH_MAX];
	struct store *st = NULL;
	struct store_run sr = {0};
	struct store_call *calls = NULL;
	size_t n = 0;
	struct items it = {0};
	const char *id = NULL;
	int64_t at = -1; /* --at SEQ: the run as it stood after call SEQ */

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state_opt = argv[++i];
		else if (strcmp(argv[i], "--at") == 0 && i + 1 < argc)
			at = agd_parse_at(argv[++i]);
		else if (!id && argv[i][0] != '-')
			id = argv[i];
		else
			return agd_die(2, "usage: agentd show NAME [--state DIR]");
	}
	if (!id)
		return agd_die(2, "usage: agentd show NAME [--state DIR]");
	if (open_store(dir, sizeof(dir), &st))
		return 1;
	int e = store_run_get(st, id, &sr);
	if (e < 0) {
		store_close(st);
		return agd_die(1, "no run named %s in %s", id, dir);
	}
	cleanup_free char *cmd = json_dumps(json_object_get(sr.spec, "argv"), JSON_COMPACT);
	printf("run %s: %s after %d attempt%s%s%s\ncommand: %s\n", sr.id, sr.status, sr.attempts,
	       sr.attempts == 1 ? "" : "s", sr.reason[0] ? " — " : "", sr.reason, cmd ? cmd : "");

	e = store_event_foreach(st, id, add_event, &it);
	if (e >= 0)
		e = store_journal_load(st, id, &calls, &n);
	for (size_t i = 0; e >= 0 && i < n; i++) {
		const struct store_call *c = &calls[i];
		char dur[32] = "";
		if (c->status != STORE_CALL_INTENT && c->status != STORE_CALL_DENIED)
			snprintf(dur, sizeof(dur), "%lld ms",
				 (long long)(c->finished_ms - c->started_ms));
		/* A denial with no matching rule says what rule would allow it. */
		json_t *sugg =
		    c->status == STORE_CALL_DENIED
			? json_object_get(json_object_get(c->result, "data"), "suggestion")
			: NULL;
		cleanup_free char *stext = sugg ? json_dumps(sugg, JSON_COMPACT) : NULL;
		e = add_item(&it, c->started_ms, c->seq,
			     agd_asprintf("  #%-4lld %-13s %-13s %-16s %-9s %s  (attempt %d)%s%s",
					  (long long)c->seq, c->tool, c->decision,
					  c->rule[0] ? c->rule : "-", dur, call_status[c->status],
					  c->attempt, stext ? "  would be allowed by: " : "",
					  stext ? stext : ""));
	}
	if (e < 0)
		fprintf(stderr, "agentd: cannot read the timeline of %s: %s\n", id, strerror(-e));
	qsort(it.v, it.n, sizeof(*it.v), cmp_item);
	int64_t cutoff = agd_show_cutoff_ms(calls, n, at);
	for (size_t i = 0; i < it.n; i++) {
		if (at < 0 || (it.v[i].seq <= at && it.v[i].ts <= cutoff))
			puts(it.v[i].line);
		free(it.v[i].line);
	}
	free(it.v);
	if (at >= 0 && e >= 0)
		agd_show_state_at(st, id, at);
	store_calls_free(calls, n);
	store_run_clear(&sr);
	store_close(st);
	return e < 0 ? 1 : 0;
}

/* agentd serve is the program agentd-serve next to this one, so that only the
 * daemon maps libmicrohttpd (docs/decisions.md); argv[0] stays "serve". */
static int
cmd_serve(char **argv)
{
	char exe[PATH_MAX], path[PATH_MAX + 16];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);

	if (n <= 0)
		return agd_die(1, "cannot find agentd-serve: /proc/self/exe: %s", strerror(errno));
	exe[n] = '\0';
	snprintf(path, sizeof(path), "%s/agentd-serve", dirname(exe));
	execv(path, argv);
	return agd_die(127, "cannot run %s: %s", path, strerror(errno));
}

int
main(int argc, char **argv)
{
	/* A supervisor must outlive its agent: a write to a pipe or socket of a
	 * child that was just killed (spawn sync pipe, channel) is -EPIPE, not
	 * death. The sandboxed child resets every disposition to the default. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	const char *cmd = argv[1];
	argc--, argv++;
	if (strcmp(cmd, "run") == 0)
		return cmd_run(argc, argv);
	if (strcmp(cmd, "resume") == 0)
		return cmd_resume(argc, argv);
	if (strcmp(cmd, "runs") == 0)
		return cmd_runs(argc, argv);
	if (strcmp(cmd, "show") == 0)
		return cmd_show(argc, argv);
	if (strcmp(cmd, "fork") == 0)
		return agd_cmd_fork(argc, argv, cmd_resume);
	if (strcmp(cmd, "admin") == 0)
		return agd_cmd_admin(argc, argv);
	if (strcmp(cmd, "approve") == 0 || strcmp(cmd, "approvals") == 0 ||
	    strcmp(cmd, "send") == 0)
		return agd_cmd_interact(argc, argv);
	if (strcmp(cmd, "policy") == 0)
		return agd_cmd_policy(argc, argv);
	if (strcmp(cmd, "audit") == 0)
		return agd_cmd_audit(argc, argv);
	if (strcmp(cmd, "doctor") == 0)
		return agd_cmd_doctor(argc, argv);
	if (strcmp(cmd, "serve") == 0)
		return cmd_serve(argv);
	if (strcmp(cmd, "version") == 0 || strcmp(cmd, "--version") == 0) {
		printf("agentd %s\n", AGENTD_VERSION);
		return 0;
	}
	if (strcmp(cmd, "help") == 0 || strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		usage(stdout);
		return 0;
	}
	usage(stderr);
	return agd_die(2, "unknown command '%s'", cmd);
}
