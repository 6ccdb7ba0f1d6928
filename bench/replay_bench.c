/* The supervisor's replay path, measured without the agent or the socket:
 * load and verify the journal of a run with N calls, then answer N calls from
 * it as the broker does (hash the incoming arguments, match, frame the stored
 * result as the reply). usage: replay_bench [-n CALLS] [-p PAYLOAD_BYTES] [-d DIR]
 * Prints one line per phase and the whole path's rate in calls per second. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "store/store.h"
#include "supervisor/proto.h"
#include "supervisor/replay.h"

static int64_t
cpu_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	long n = 20000, payload = 16;
	const char *dir = "/var/tmp";
	int c;

	while ((c = getopt(argc, argv, "n:p:d:")) != -1) {
		if (c == 'n')
			n = strtol(optarg, NULL, 10);
		else if (c == 'p')
			payload = strtol(optarg, NULL, 10);
		else if (c == 'd')
			dir = optarg;
		else
			return 64;
	}
	char path[4096];
	snprintf(path, sizeof(path), "%s/agentd-replay-bench-%d.db", dir, (int)getpid());
	struct store *st = NULL;
	if (store_open(path, STORE_DURABILITY_PROCESS, &st) < 0)
		return 1;
	json_t *spec = json_pack("{s:s}", "bench", "replay");
	store_run_create(st, "r", spec);
	json_decref(spec);
	char *val = malloc((size_t)payload + 1);
	memset(val, 'x', (size_t)payload);
	val[payload] = '\0';
	json_t **incoming = calloc((size_t)n, sizeof(json_t *));
	for (long i = 0; i < n; i++) {
		json_t *args = json_pack("{s:s,s:I}", "value", val, "i", (json_int_t)i);
		json_t *res = json_pack("{s:O}", "value", args);
		struct store_call call = {.seq = i + 1,
					  .tool = "agentd.echo",
					  .args = args,
					  .status = STORE_CALL_OK,
					  .result = res,
					  .attempt = 1,
					  .decision = "allow",
					  .rule = "echo",
					  .started_ms = agd_wall_ms(),
					  .finished_ms = agd_wall_ms()};
		agd_json_hash(store_digest(st), args, call.args_hash);
		if (store_journal_record(st, "r", &call) < 0)
			return 1;
		incoming[i] = args; /* what the agent sends again on replay */
		json_decref(res);
	}

	int64_t t0 = agd_now_ns(), c0 = cpu_ns();
	struct store_call *calls = NULL;
	size_t got = 0;
	struct sup_replay rp;
	if (store_journal_load_lazy(st, "r", &calls, &got) < 0 ||
	    sup_replay_init(&rp, calls, got) < 0)
		return 1;
	int64_t t1 = agd_now_ns(), c1 = cpu_ns();
	size_t bytes = 0;
	json_t *id = json_integer(1);
	for (long i = 0; i < n; i++) {
		char hash[AGD_DIGEST_HEX];
		agd_json_hash(store_digest(st), incoming[i], hash);
		ssize_t k = sup_replay_match(&rp, "agentd.echo", hash);
		if (k < 0)
			return 1;
		sup_replay_consume(&rp, (size_t)k);
		/* As call.c answers a replayed call: the stored canonical text
		 * framed as it is (with the text block, MCP's default). */
		const struct store_call *sc = &rp.calls[k];
		char *text = NULL;
		size_t len = 0;
		if (proto_stored_result_frame(id, sc->result_text, sc->result_len, false, sc->seq,
					      true, true, &text, &len) < 0)
			return 1;
		bytes += len;
		free(text);
	}
	int64_t t2 = agd_now_ns(), c2 = cpu_ns();
	printf("  journal load + verify: %ld calls in %.1f ms (%.0f calls/s)\n", n,
	       (double)(t1 - t0) / 1e6, (double)n / ((double)(t1 - t0) / 1e9));
	printf("  match + reply encode:  %ld calls in %.1f ms (%.0f calls/s, %zu reply bytes)\n", n,
	       (double)(t2 - t1) / 1e6, (double)n / ((double)(t2 - t1) / 1e9), bytes);
	/* CPU time too: on a shared machine wall time mostly measures the
	 * other load, CPU time what the path costs. */
	printf("  per CPU second:        load + verify %.0f, match + reply %.0f, whole path "
	       "%.0f calls/s\n",
	       (double)n / ((double)(c1 - c0) / 1e9), (double)n / ((double)(c2 - c1) / 1e9),
	       (double)n / ((double)(c2 - c0) / 1e9));
	printf("BENCH replay_path calls=%ld calls_per_s=%.0f calls_per_cpu_s=%.0f\n", n,
	       (double)n / ((double)(t2 - t0) / 1e9), (double)n / ((double)(c2 - c0) / 1e9));
	sup_replay_clear(&rp);
	json_decref(id);
	for (long i = 0; i < n; i++)
		json_decref(incoming[i]);
	free(incoming);
	free(val);
	store_close(st);
	static const char *const suffixes[] = {"", "-wal", "-shm", "-payloads"};
	for (size_t i = 0; i < ARRAY_SIZE(suffixes); i++) {
		cleanup_free char *p = agd_asprintf("%s%s", path, suffixes[i]);
		if (p)
			unlink(p);
	}
	return 0;
}
