/* Agent side of tests/integration/test_sdk_c.sh: exercises the C client
 * library under fake_supervisor.py; prints one line per check and exits 1 if
 * any failed. Built by the test against the staged SDK (include/ + lib/). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd_client.h"

static int failures;

static void
check(const char *name, int ok, const char *detail)
{
	printf("%s %s%s%s\n", ok ? "ok  " : "FAIL", name, detail ? ": " : "", detail ? detail : "");
	if (!ok)
		failures++;
}

int
main(void)
{
	struct agentd_client *c = NULL;
	struct agentd_error err = {0};
	char *out = NULL;
	int64_t seq = -1;
	int r;

	r = agentd_connect(&c);
	check("connect", r == 0, agentd_strerror(r));
	if (r < 0)
		return 1;

	r = agentd_resume(c, false, &out, &err);
	check("resume", r == 0 && out && strstr(out, "\"attempt\":2"), out);
	free(out);
	out = NULL;

	r = agentd_checkpoint(c, "{\"step\":1}", &seq, &err);
	check("checkpoint seq", r == 0 && seq == 0, NULL);

	r = agentd_call(c, "fs.read", "{\"path\":\"/data/b.txt\"}", &out, &err);
	check("call result", r == 0 && out && strcmp(out, "{\"content\":\"beta\"}") == 0, out);
	check("replayed flag", agentd_last_replayed(c) && agentd_last_seq(c) == 1, NULL);
	free(out);
	out = NULL;

	r = agentd_next_message(c, &out);
	check("first queued message", r == 1 && out && strstr(out, "\"text\":\"first\""), out);
	free(out);
	out = NULL;
	r = agentd_next_message(c, &out);
	check("second queued message", r == 1 && out && strstr(out, "\"text\":\"second\""), out);
	free(out);
	out = NULL;
	check("queue drained", agentd_next_message(c, &out) == 0 && out == NULL, NULL);

	r = agentd_call(c, "fs.read", "{\"path\":\"/data/a.txt\"}", &out, &err);
	check("live call not replayed", r == 0 && !agentd_last_replayed(c), NULL);
	free(out);
	out = NULL;

	r = agentd_call(c, "fs.read", "{\"path\":\"/etc/shadow\"}", &out, &err);
	check("denied",
	      r == -AGENTD_EDENIED && strcmp(err.rule, "no-secrets") == 0 &&
		  strcmp(err.decision, "deny") == 0 && err.rpc_code == AGENTD_RPC_DENIED,
	      err.message);
	check("no output on failure", out == NULL, NULL);
	agentd_error_clear(&err);

	r = agentd_call(c, "fs.read", "{\"path\":\"/data/missing\"}", &out, &err);
	check("tool error",
	      r == -AGENTD_ETOOL && strcmp(err.code, "ENOENT") == 0 && err.json &&
		  strstr(err.json, "ENOENT"),
	      err.json);
	agentd_error_clear(&err);

	r = agentd_call(c, "fs.list", "{\"path\":\"/data\"}", &out, &err);
	check("other rpc error", r == -AGENTD_EREMOTE && err.rpc_code == AGENTD_RPC_LIMIT,
	      err.message);
	agentd_error_clear(&err);

	r = agentd_call(c, "fs.read", "[1]", &out, &err);
	check("non-object args rejected", r == -EINVAL, NULL);

	r = agentd_call(c, "http.request", "{\"url\":\"http://127.0.0.1/big\"}", &out, &err);
	check("2 MiB result, ping answered", r == 0 && out && strlen(out) > (2u << 20), NULL);
	free(out);
	out = NULL;

	/* Arguments on two lines: the request is built by jansson, not
	 * framed around their text. */
	r = agentd_call(c, "fs.write", "{\"path\":\n\"/out/r.md\"}", &out, &err);
	check("multi-line args",
	      r == 0 && out && strcmp(out, "{\"path\":\"/out/r.md\",\"bytes\":3}") == 0, out);
	free(out);
	out = NULL;

	r = agentd_call(c, "fs.read", "{\"path\":\"/data/garbage\"}", &out, &err);
	check("garbage frame", r == -EPROTO, agentd_strerror(r));

	c = agentd_client_free(c);
	return failures ? 1 : 0;
}
