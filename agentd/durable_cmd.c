/* Durable-execution parts of the CLI: run options (--durable FILE,
 * --deadline, --durability), `agentd fork`, `agentd admin backup` and
 * `agentd admin compact`. */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "supervisor/retry.h"

static const char *durable_file;
static int64_t deadline_ms;
static int durability = -1; /* -1: $AGENTD_DURABILITY or process */

int
agd_durable_option(int c, const char *arg)
{
	switch (c) {
	case AGD_OPT_DURABLE:
		durable_file = arg;
		return 1;
	case AGD_OPT_DEADLINE:
		if (sup_parse_duration_ms(arg, &deadline_ms) < 0 || deadline_ms == 0) {
			agd_die(2, "--deadline takes a duration: 500ms, 30s, 5m, 2h");
			return -1;
		}
		return 1;
	case AGD_OPT_DURABILITY:
		if (strcmp(arg, "process") == 0)
			durability = STORE_DURABILITY_PROCESS;
		else if (strcmp(arg, "power") == 0)
			durability = STORE_DURABILITY_POWER;
		else {
			agd_die(2, "--durability takes process or power");
			return -1;
		}
		return 1;
	}
	return 0;
}

enum store_durability
agd_durability(void)
{
	const char *env = getenv("AGENTD_DURABILITY");

	if (durability >= 0)
		return (enum store_durability)durability;
	return env && strcmp(env, "power") == 0 ? STORE_DURABILITY_POWER : STORE_DURABILITY_PROCESS;
}

int
agd_durable_spec(json_t *spec)
{
	cleanup_json json_t *cfg = NULL;
	char reason[512] = "";

	if (durable_file) {
		json_error_t jerr;
		cfg = json_load_file(durable_file, JSON_REJECT_DUPLICATES, &jerr);
		if (!cfg)
			return agd_die(2, "%s:%d:%d: %s", durable_file, jerr.line, jerr.column,
				       jerr.text);
		if (!json_is_object(cfg))
			return agd_die(2, "%s: not a JSON object", durable_file);
	}
	if (deadline_ms) {
		if (!cfg && !(cfg = json_object()))
			return agd_die(1, "out of memory");
		json_object_set_new(cfg, "deadline_ms", json_integer(agd_wall_ms() + deadline_ms));
	}
	if (!cfg)
		return 0;
	struct sup_durable *d = NULL;
	if (sup_durable_parse(cfg, &d, reason, sizeof(reason)) < 0)
		return agd_die(2, "%s: %s", durable_file ? durable_file : "--deadline", reason);
	sup_durable_free(d);
	if (json_object_set(spec, "durable", cfg) < 0)
		return agd_die(1, "out of memory");
	return 0;
}

/* ---- agentd fork NAME --at SEQ [--id NEW] [--state DIR] [--approve|--deny] ---- */

static int
fork_copy(struct store *st, const char *dir, const char *src, int64_t at, const char *id)
{
	struct store_run sr = {0};
	struct store_call *calls = NULL;
	size_t n = 0;
	uint8_t rnd[16];
	char uid[33];
	int e;

	if ((e = store_run_get(st, src, &sr)) < 0)
		return agd_die(1, "no run named %s in %s", src, dir);
	cleanup_json json_t *spec = json_deep_copy(sr.spec);
	store_run_clear(&sr);
	if ((e = store_journal_load(st, src, &calls, &n)) < 0)
		return agd_die(1, "cannot read the journal of %s: %s", src, strerror(-e));
	if (at < 0 || (size_t)at > n) {
		store_calls_free(calls, n);
		return agd_die(2, "--at %lld: run %s has calls #1..#%zu", (long long)at, src, n);
	}
	/* The fork resumes from the newest state at or before SEQ. */
	cleanup_json json_t *state = NULL;
	int64_t sseq = 0;
	if (store_state_load_at(st, src, at, &state, &sseq) < 0)
		state = NULL;
	for (size_t i = 0; i < (size_t)at; i++) {
		/* The seq is read before the calls are freed for the message. */
		long long bad = (long long)calls[i].seq;
		if (calls[i].compacted && (!state || sseq < calls[i].seq)) {
			/* Retention dropped its args and result: only a fork that
			 * resumes from a state after it can do without them. */
			store_calls_free(calls, n);
			return agd_die(1,
				       "call #%lld of %s was compacted by retention and no state "
				       "saved at or before #%lld covers it; fork at or after a "
				       "state saved after it",
				       bad, src, (long long)at);
		} else if (calls[i].status == STORE_CALL_INTENT) {
			/* Its idempotency key names the source run: the fork must not rerun it. */
			store_calls_free(calls, n);
			return agd_die(1, "call #%lld of %s has an unknown outcome; fork before it",
				       bad, src);
		}
	}
	/* A new uid: calls after SEQ are new operations with keys of their own. */
	if (!spec || getrandom(rnd, sizeof(rnd), 0) != sizeof(rnd)) {
		store_calls_free(calls, n);
		return agd_die(1, "out of memory");
	}
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(uid + 2 * i, 3, "%02x", rnd[i]);
	json_object_set_new(spec, "uid", json_string(uid));
	/* A workspace agentd made for the source gets a fresh one for the fork. */
	char ws[PATH_MAX + 256], srcws[PATH_MAX + 256];
	snprintf(srcws, sizeof(srcws), "%s/runs/%s/workspace", dir, src);
	const char *w = json_string_value(json_object_get(spec, "workspace"));
	if (w && strcmp(w, srcws) == 0) {
		snprintf(ws, sizeof(ws), "%s/runs/%s/workspace", dir, id);
		if ((e = agd_mkdir_p(ws, 0700)) < 0 ||
		    (geteuid() == 0 && chown(ws, 65534, 65534) < 0)) {
			store_calls_free(calls, n);
			return agd_die(1, "cannot create workspace %s", ws);
		}
		json_object_set_new(spec, "workspace", json_string(ws));
	}
	/* One transaction: a fork that fails part way leaves no run that a
	 * daemon would start with only some of the calls copied. */
	e = store_batch_begin(st);
	if (e >= 0)
		e = store_run_create(st, id, spec);
	for (size_t i = 0; e >= 0 && i < (size_t)at; i++)
		e = store_journal_record(st, id, &calls[i]);
	store_calls_free(calls, n);
	if (e >= 0 && state)
		e = store_state_save(st, id, sseq, state);
	if (e >= 0)
		e = store_run_set_status(st, id, "interrupted", -1, "forked");
	if (e >= 0)
		e = store_batch_commit(st);
	else
		store_batch_abort(st);
	if (e == -EEXIST)
		return agd_die(1, "a run named %s already exists", id);
	if (e < 0)
		return agd_die(1, "cannot create the fork %s: %s", id, strerror(-e));
	return 0;
}

int
agd_cmd_fork(int argc, char **argv, int (*resume)(int argc, char **argv))
{
	static const struct option opts[] = {
	    {"at", required_argument, NULL, 'a'},
	    {"id", required_argument, NULL, 'i'},
	    {"state", required_argument, NULL, 's'},
	    {"approve", no_argument, NULL, 'A'},
	    {"deny", no_argument, NULL, 'D'},
	    {"no-start", no_argument, NULL, 'n'},
	    {0},
	};
	const char *state = NULL, *id = NULL, *answer = NULL;
	int64_t at = -1;
	bool start = true;
	char idbuf[128], dir[PATH_MAX];
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (c) {
		case 'a': {
			char *end;
			at = strtoll(optarg, &end, 10);
			if (*end || at < 0)
				return agd_die(2, "--at takes a call number (0 or more)");
			break;
		}
		case 'i':
			id = optarg;
			break;
		case 's':
			state = optarg;
			break;
		case 'A':
			answer = "--approve";
			break;
		case 'D':
			answer = "--deny";
			break;
		case 'n':
			start = false;
			break;
		default:
			return agd_die(2,
				       "usage: agentd fork NAME --at SEQ [--id NEW] [--state DIR] "
				       "[--approve | --deny] [--no-start]");
		}
	}
	if (optind != argc - 1 || at < 0)
		return agd_die(2, "usage: agentd fork NAME --at SEQ [--id NEW] [--state DIR]");
	const char *src = argv[optind];
	if (!id) {
		snprintf(idbuf, sizeof(idbuf), "%.80s-fork%lld", src, (long long)at);
		id = idbuf;
	}
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st) != 0)
		return 1;
	int rc = fork_copy(st, dir, src, at, id);
	store_close(st);
	if (rc)
		return rc;
	fprintf(stderr, "agentd: forked %s at #%lld as %s\n", src, (long long)at, id);
	if (!start)
		return 0;
	char *rargv[] = {"resume", (char *)id, "--state", dir, (char *)answer, NULL};
	optind = 0; /* resume parses its own options */
	return resume(answer ? 5 : 4, rargv);
}

/* ---- agentd admin backup FILE [--state DIR] ---- */

/* agentd admin compact NAME --keep N [--state DIR]: store_retain. */
static int
cmd_compact(int argc, char **argv)
{
	static const char usage[] = "usage: agentd admin compact NAME --keep N [--state DIR]";
	const char *state = NULL, *id = NULL;
	char dir[PATH_MAX], *end = NULL;
	long keep = -1;
	int64_t done = 0;

	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state = argv[++i];
		else if (strcmp(argv[i], "--keep") == 0 && i + 1 < argc)
			keep = strtol(argv[++i], &end, 10);
		else if (!id)
			id = argv[i];
		else
			return agd_die(2, usage);
	}
	if (!id || keep < 1 || keep > INT_MAX || !end || *end)
		return agd_die(2, usage);
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st) != 0)
		return 1;
	struct store_run run = {0};
	int e = store_run_get(st, id, &run);
	store_run_clear(&run);
	if (e == 0)
		e = store_retain(st, id, (int)keep, &done);
	store_close(st);
	if (e < 0)
		return agd_die(1, "compact %s failed: %s", id, strerror(-e));
	printf("%s: %lld journal rows compacted, newest %ld states kept\n", id, (long long)done,
	       keep);
	return 0;
}

int
agd_cmd_admin(int argc, char **argv)
{
	const char *state = NULL, *file = NULL;
	char dir[PATH_MAX];

	if (argc >= 2 && strcmp(argv[1], "compact") == 0)
		return cmd_compact(argc, argv);
	if (argc < 2 || strcmp(argv[1], "backup") != 0)
		return agd_die(2, "usage: agentd admin backup FILE [--state DIR]");
	for (int i = 2; i < argc; i++) {
		if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
			state = argv[++i];
		else if (!file)
			file = argv[i];
		else
			return agd_die(2, "usage: agentd admin backup FILE [--state DIR]");
	}
	if (!file)
		return agd_die(2, "usage: agentd admin backup FILE [--state DIR]");
	struct store *st = NULL;
	if (agd_open_state_store(state, dir, sizeof(dir), &st) != 0)
		return 1;
	int e = store_backup(st, file);
	store_close(st);
	if (e < 0)
		return agd_die(1, "backup to %s failed: %s", file, strerror(-e));
	fprintf(stderr, "agentd: backed up %s/agentd.db to %s\n", dir, file);
	return 0;
}

/* ---- agentd show NAME --at SEQ ---- */

int64_t
agd_parse_at(const char *s)
{
	char *end;
	long long v = strtoll(s, &end, 10);

	return *end || end == s || v < 0 ? INT64_MAX : v;
}

int64_t
agd_show_cutoff_ms(const struct store_call *calls, size_t n, int64_t at)
{
	if (at < 0 || (uint64_t)at >= n)
		return INT64_MAX;
	return calls[at].started_ms; /* calls[at] is #at+1 */
}

void
agd_show_state_at(struct store *st, const char *id, int64_t at)
{
	json_t *state = NULL;
	int64_t seq = 0;

	if (store_state_load_at(st, id, at, &state, &seq) < 0) {
		printf("state at #%lld: none saved\n", (long long)at);
		return;
	}
	cleanup_free char *txt = agd_json_canonical(state);
	json_decref(state);
	printf("state at #%lld (saved at #%lld): %.4000s\n", (long long)at, (long long)seq,
	       txt ? txt : "?");
}
