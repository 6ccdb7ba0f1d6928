/* One line per event, shared by the live view of `agentd run` and `agentd show`. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/supervisor.h"

static const char *
str(const json_t *data, const char *key)
{
	const char *s = json_string_value(json_object_get(data, key));
	return s ? s : "";
}

static long long
num(const json_t *data, const char *key)
{
	return (long long)json_integer_value(json_object_get(data, key));
}

const char *
sup_format_call(const struct sup_call_line *c, char *buf, size_t bufsz)
{
	char dur[32] = "";

	/* Tenths of a millisecond, rounded half up, without floating point:
	 * this runs once per live call of `agentd run`. */
	if (!c->replayed && strcmp(c->outcome, "denied") != 0) {
		long long t = (c->duration_us > 0 ? c->duration_us : 0) / 50;
		t = t / 2 + t % 2;
		snprintf(dur, sizeof(dur), "%lld.%lld ms", t / 10, t % 10);
	}
	snprintf(buf, bufsz, "  #%-4lld %-13s %-13s %-16s %-9s %s%s", (long long)c->seq, c->tool,
		 c->decision, c->rule && c->rule[0] ? c->rule : "-", dur, c->outcome,
		 c->replayed ? "  (replayed from journal)" : "");
	return buf;
}

const char *
sup_format_event(int attempt, int64_t seq, const char *type, const json_t *data, char *buf,
		 size_t bufsz)
{
	if (strncmp(type, "call.", 5) == 0 && strcmp(type, "call.unknown_outcome") != 0) {
		struct sup_call_line c = {
		    .seq = seq,
		    .tool = str(data, "tool"),
		    .decision = str(data, "decision"),
		    .rule = str(data, "rule"),
		    .outcome = strcmp(type, "call.denied") == 0 ? "denied" : str(data, "outcome"),
		    .replayed = json_is_true(json_object_get(data, "replayed")),
		    .duration_us = num(data, "duration_us"),
		};
		return sup_format_call(&c, buf, bufsz);
	}
	if (strcmp(type, "attempt.started") == 0)
		snprintf(buf, bufsz, "agentd: attempt %d started (pid %lld, %lld journaled calls)",
			 attempt, num(data, "pid"), num(data, "journal_len"));
	else if (strcmp(type, "child.exited") == 0 && json_object_get(data, "signal"))
		snprintf(buf, bufsz, "agentd: attempt %d killed by SIG%s", attempt,
			 str(data, "signame"));
	else if (strcmp(type, "child.exited") == 0)
		snprintf(buf, bufsz, "agentd: attempt %d exited with status %lld", attempt,
			 num(data, "exit_code"));
	else if (strcmp(type, "restart.scheduled") == 0)
		snprintf(buf, bufsz, "agentd: restarting in %lld ms (restart %lld of at most %lld)",
			 num(data, "delay_ms"), num(data, "restart"), num(data, "max_restarts"));
	else if (strcmp(type, "replay.summary") == 0)
		snprintf(buf, bufsz,
			 "agentd: attempt %d replayed %lld calls from the journal (#%lld..#%lld)",
			 attempt, num(data, "replayed"), num(data, "first"), num(data, "last"));
	else if (strcmp(type, "replay.diverged") == 0)
		snprintf(buf, bufsz, "agentd: replay diverged from the journal at #%lld",
			 (long long)seq);
	else if (strcmp(type, "approval.requested") == 0)
		snprintf(buf, bufsz, "agentd: #%lld %s needs approval (rule '%s')", (long long)seq,
			 str(data, "tool"), str(data, "rule"));
	else if (strcmp(type, "approval.granted") == 0 || strcmp(type, "approval.denied") == 0)
		snprintf(buf, bufsz, "agentd: #%lld %s by %s", (long long)seq,
			 strcmp(type, "approval.granted") == 0 ? "approved" : "refused",
			 str(data, "by"));
	else if (strcmp(type, "call.unknown_outcome") == 0)
		snprintf(
		    buf, bufsz,
		    "agentd: #%lld %s: a crash left its outcome unknown (%s): handling by class",
		    (long long)seq, str(data, "tool"), str(data, "class"));
	else if (strcmp(type, "checkpoint") == 0)
		snprintf(buf, bufsz, "agentd: state checkpointed after #%lld", num(data, "seq"));
	else if (strcmp(type, "run.succeeded") == 0)
		snprintf(buf, bufsz, "agentd: run succeeded");
	else if (strcmp(type, "run.failed") == 0 || strcmp(type, "run.interrupted") == 0)
		snprintf(buf, bufsz, "agentd: run %s: %s",
			 strcmp(type, "run.failed") == 0 ? "failed" : "interrupted",
			 str(data, "reason"));
	else {
		char *d = json_dumps(data, JSON_COMPACT);
		snprintf(buf, bufsz, "agentd: %s %s", type, d ? d : "");
		free(d);
	}
	return buf;
}
