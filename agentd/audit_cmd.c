/* agentd audit [--run NAME] [--state DIR]: every policy decision as JSONL.
 *
 * The audit stream is the journal itself (docs/decisions.md): each brokered
 * call's row already holds the decision and the rule, is written before the
 * call runs or is answered, and is hash-chained per run and verified when
 * loaded. Exporting it costs the hot path nothing. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "store/store.h"

static const char *
status_name(enum store_call_status s)
{
	switch (s) {
	case STORE_CALL_OK:
		return "ok";
	case STORE_CALL_ERROR:
		return "error";
	case STORE_CALL_DENIED:
		return "denied";
	case STORE_CALL_INTENT:
		break;
	}
	return "unknown";
}

/* One line per journal row: run, seq, decision, rule, and for a denial the
 * reason and suggested rule the agent was given. Arguments are left out (a
 * hash identifies them): the audit stream may be shipped elsewhere. */
static int
print_run_audit(struct store *st, const char *run)
{
	struct store_call *calls = NULL;
	size_t n = 0;
	int e = store_journal_load(st, run, &calls, &n);

	if (e < 0) {
		agd_die(1, "journal of %s unreadable: %s", run, strerror(-e));
		return e;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_call *c = &calls[i];
		json_t *data = json_object_get(c->result, "data");
		cleanup_json json_t *line =
		    json_pack("{s:s,s:I,s:i,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "run", run, "seq",
			      (json_int_t)c->seq, "attempt", c->attempt, "tool", c->tool,
			      "args_hash", c->args_hash, "decision", c->decision ? c->decision : "",
			      "rule", c->rule && c->rule[0] ? c->rule : "(no rule matched)",
			      "status", status_name(c->status), "started_ms",
			      (json_int_t)c->started_ms, "finished_ms", (json_int_t)c->finished_ms);
		if (!line) {
			e = -ENOMEM;
			break;
		}
		if (c->status == STORE_CALL_DENIED && json_is_object(data)) {
			json_t *v;
			if ((v = json_object_get(data, "reason")))
				json_object_set(line, "reason", v);
			if ((v = json_object_get(data, "limit")))
				json_object_set(line, "limit", v);
			if ((v = json_object_get(data, "suggestion")))
				json_object_set(line, "suggestion", v);
		}
		cleanup_free char *text = json_dumps(line, JSON_COMPACT | JSON_SORT_KEYS);
		if (!text) {
			e = -ENOMEM;
			break;
		}
		puts(text);
	}
	store_calls_free(calls, n);
	return e < 0 ? e : 0;
}

struct audit_all {
	struct store *st;
	int err;
};

static int
audit_one(const struct store_run *r, void *ud)
{
	struct audit_all *a = ud;
	int e = print_run_audit(a->st, r->id);

	if (e < 0 && !a->err)
		a->err = e;
	return 0; /* one unreadable run does not hide the others */
}

int
agd_cmd_audit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"state", required_argument, NULL, 's'},
	    {0},
	};
	const char *run = NULL, *state = NULL;
	char dir[PATH_MAX];
	struct store *st = NULL;
	int c;

	while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		if (c == 'r')
			run = optarg;
		else if (c == 's')
			state = optarg;
		else
			return agd_die(2, "usage: agentd audit [--run NAME] [--state DIR]");
	}
	if (optind != argc)
		return agd_die(2, "usage: agentd audit [--run NAME] [--state DIR]");
	if (agd_open_state_store(state, dir, sizeof(dir), &st))
		return 1;
	int e;
	if (run) {
		struct store_run sr = {0};
		e = store_run_get(st, run, &sr);
		store_run_clear(&sr);
		if (e < 0) {
			store_close(st);
			return agd_die(1, "no run named %s", run);
		}
		e = print_run_audit(st, run);
	} else {
		struct audit_all a = {st, 0};
		e = store_run_foreach(st, audit_one, &a);
		if (e >= 0)
			e = a.err;
	}
	store_close(st);
	if (fflush(stdout) != 0)
		return agd_die(1, "write failed");
	return e < 0 ? 1 : 0;
}
