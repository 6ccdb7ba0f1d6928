/* agentd approve | approvals | send: decide durable approvals and send user
 * messages through the store, without the daemon. A run supervised by
 * another process notices within its 200 ms tick while a call waits, or at
 * its next call boundary (docs/interaction.md). */
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "store/store.h"

/* Who decides: the login name of the caller, or its uid. */
static const char *
whoami(char *buf, size_t bufsz)
{
	struct passwd *pw = getpwuid(getuid());

	if (pw && pw->pw_name && pw->pw_name[0])
		snprintf(buf, bufsz, "%s", pw->pw_name);
	else
		snprintf(buf, bufsz, "uid:%u", (unsigned)getuid());
	return buf;
}

static int
parse_seq(const char *s, int64_t *ret)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	if (!*s || *end || v <= 0)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
cmd_approve(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"deny", no_argument, NULL, 'D'},
	    {"comment", required_argument, NULL, 'c'},
	    {"by", required_argument, NULL, 'b'},
	    {"scope", required_argument, NULL, 'o'},
	    {"args", required_argument, NULL, 'a'},
	    {0},
	};
	const char *state = NULL, *comment = "", *by = NULL, *args_text = NULL;
	enum store_approval_scope scope = STORE_SCOPE_ONCE;
	bool deny = false;
	char dir[PATH_MAX], me[64];
	int64_t seq;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'D':
			deny = true;
			break;
		case 'c':
			comment = optarg;
			break;
		case 'b':
			by = optarg;
			break;
		case 'o':
			if (store_approval_scope_parse(optarg, &scope) < 0)
				return agd_die(2, "--scope takes once, run or always");
			break;
		case 'a':
			args_text = optarg;
			break;
		default:
			return agd_die(2,
				       "usage: agentd approve NAME SEQ [--deny] [--comment TEXT] "
				       "[--scope once|run|always] [--args JSON] [--state DIR]");
		}
	}
	if (optind != argc - 2 || parse_seq(argv[optind + 1], &seq) < 0)
		return agd_die(2, "usage: agentd approve NAME SEQ [--deny] [--comment TEXT]");
	const char *id = argv[optind];
	cleanup_json json_t *edited = NULL;
	if (args_text) {
		json_error_t jerr;
		edited = agd_json_parse(args_text, strlen(args_text), AGD_JSON_MAX_DEPTH, &jerr);
		if (!json_is_object(edited) || deny)
			return agd_die(2, "--args takes a JSON object, and only with an approval");
	}
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st))
		return 1;
	int e = store_approval_decide(st, id, seq, !deny, by ? by : whoami(me, sizeof(me)), comment,
				      edited, scope);
	store_close(st);
	switch (e) {
	case 0:
		printf("%s %s #%lld\n", deny ? "denied" : "approved", id, (long long)seq);
		return 0;
	case -ENOENT:
		return agd_die(1, "run %s has no approval at #%lld", id, (long long)seq);
	case -EALREADY:
		return agd_die(1, "the approval of %s #%lld was already decided", id,
			       (long long)seq);
	case -ETIMEDOUT:
		return agd_die(1, "the approval of %s #%lld had expired (the call is denied)", id,
			       (long long)seq);
	default:
		return agd_die(1, "cannot record the decision: %s", strerror(-e));
	}
}

static void
fmt_time(int64_t ms, char *buf, size_t bufsz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (!ms || !localtime_r(&t, &tm) || !strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, bufsz, "-");
}

static int
print_approval(const struct store_approval *a, void *ud)
{
	bool *json = ud;
	char created[32], expires[32];
	const char *status = store_approval_status_name(a->status);

	/* Stored as pending, but nobody can approve it any more. */
	if (a->status == STORE_APPROVAL_PENDING && a->expires_ms && agd_wall_ms() >= a->expires_ms)
		status = "expired";
	if (*json) {
		cleanup_json json_t *o = json_pack(
		    "{s:s,s:I,s:s,s:O,s:s,s:O,s:s,s:I,s:I,s:s,s:s,s:I,s:s,s:O?,s:s,s:i}", "run",
		    a->run, "seq", (json_int_t)a->seq, "tool", a->tool, "args", a->args, "rule",
		    a->rule, "approvers", a->approvers, "reason", a->reason, "created_ms",
		    (json_int_t)a->created_ms, "expires_ms", (json_int_t)a->expires_ms, "status",
		    status, "decided_by", a->decided_by, "decided_ms", (json_int_t)a->decided_ms,
		    "comment", a->comment, "edited_args", a->edited_args, "scope",
		    store_approval_scope_name(a->scope), "rerun_attempt", a->rerun_attempt);
		cleanup_free char *txt = o ? agd_json_canonical(o) : NULL;
		if (txt)
			puts(txt);
		return 0;
	}
	cleanup_free char *args = agd_json_canonical(a->args);
	fmt_time(a->created_ms, created, sizeof(created));
	fmt_time(a->expires_ms, expires, sizeof(expires));
	printf("%-24s %-5lld %-14s %-9s %-14s %-12s %-19s %-19s %.60s\n", a->run, (long long)a->seq,
	       a->tool, status, a->rule[0] ? a->rule : "-", a->decided_by[0] ? a->decided_by : "-",
	       created, expires, args ? args : "");
	return 0;
}

static int
cmd_approvals(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"status", required_argument, NULL, 't'},
	    {"json", no_argument, NULL, 'j'},
	    {0},
	};
	const char *state = NULL, *status = NULL;
	bool json = false;
	char dir[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 't':
			status = optarg;
			break;
		case 'j':
			json = true;
			break;
		default:
			return agd_die(2,
				       "usage: agentd approvals [NAME] [--status STATUS] [--json]");
		}
	}
	if (optind < argc - 1)
		return agd_die(2, "usage: agentd approvals [NAME] [--status STATUS] [--json]");
	const char *id = optind < argc ? argv[optind] : NULL;
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st))
		return 1;
	if (!json)
		printf("%-24s %-5s %-14s %-9s %-14s %-12s %-19s %-19s %s\n", "RUN", "SEQ", "TOOL",
		       "STATUS", "RULE", "BY", "CREATED", "EXPIRES", "ARGS");
	int e = store_approval_foreach(st, id, status, NULL, print_approval, &json);
	store_close(st);
	if (e == -EINVAL)
		return agd_die(2, "--status takes pending, approved, denied or expired");
	if (e < 0)
		return agd_die(1, "cannot list approvals: %s", strerror(-e));
	return 0;
}

static int
cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"state", required_argument, NULL, 's'},
	    {"mode", required_argument, NULL, 'm'},
	    {0},
	};
	const char *state = NULL, *mode = "queue";
	char dir[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			state = optarg;
			break;
		case 'm':
			mode = optarg;
			break;
		default:
			return agd_die(2, "usage: agentd send NAME TEXT "
					  "[--mode queue|interrupt|restart|reject] [--state DIR]");
		}
	}
	if (optind != argc - 2)
		return agd_die(2, "usage: agentd send NAME TEXT [--mode MODE]");
	if (strcmp(mode, "queue") != 0 && strcmp(mode, "interrupt") != 0 &&
	    strcmp(mode, "restart") != 0 && strcmp(mode, "reject") != 0)
		return agd_die(2, "--mode takes queue, interrupt, restart or reject");
	const char *id = argv[optind], *text = argv[optind + 1];
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st))
		return 1;
	struct store_run sr = {0};
	int e = store_run_get(st, id, &sr);
	if (e == 0) {
		bool final =
		    strcmp(sr.status, "succeeded") == 0 || strcmp(sr.status, "failed") == 0;
		store_run_clear(&sr);
		if (final)
			e = -ESRCH;
	}
	int64_t mid = 0;
	if (e == 0)
		e = store_message_add(st, id, text, mode, &mid);
	store_close(st);
	if (e == -ENOENT)
		return agd_die(1, "no run named %s in %s", id, dir);
	if (e == -ESRCH)
		return agd_die(1, "run %s has finished", id);
	if (e == -EINVAL)
		return agd_die(2, "the message must be valid UTF-8 of at most %u bytes",
			       STORE_MESSAGE_MAX);
	if (e < 0)
		return agd_die(1, "cannot store the message: %s", strerror(-e));
	printf("message %lld queued for %s (%s)\n", (long long)mid, id, mode);
	return 0;
}

int
agd_cmd_interact(int argc, char **argv)
{
	if (strcmp(argv[0], "approve") == 0)
		return cmd_approve(argc, argv);
	if (strcmp(argv[0], "approvals") == 0)
		return cmd_approvals(argc, argv);
	return cmd_send(argc, argv);
}
