/* Benchmark agent: a checkpointed loop of STEPS brokered steps.
 *
 * usage: durable_agent STEPS PAYLOAD fixed|grow [hold|crash]
 * Each step is one agentd.echo call: with "fixed" its value is PAYLOAD bytes,
 * with "grow" it is the step's 100-byte addition to a state that grows by
 * 100 B a step (the journal holds each step's input and output, never the
 * whole state). Attempt 1 prints "BENCH steps=N ns=T" and, with "hold",
 * waits to be killed (crash-to-resume), with "crash" prints "CRASH at_ns=T"
 * and kills itself (agent crash-to-resume). A later attempt prints the time at
 * which agentd/resume answered and at which replay of the journal
 * ended (wall clock ns): "RESUME resumed_ns=A replayed_ns=B replayed=N". */
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentd_client.h"

static long long
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts); /* compared with `date +%s%N` */
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int
main(int argc, char **argv)
{
	struct agentd_client *c = NULL;
	const char *att = getenv("AGENTD_ATTEMPT");
	int attempt = att ? atoi(att) : 1;

	if (argc < 4) {
		fprintf(stderr, "usage: durable_agent STEPS PAYLOAD fixed|grow [hold|crash]\n");
		return 64;
	}
	long steps = strtol(argv[1], NULL, 10);
	long payload = strcmp(argv[3], "grow") == 0 ? 100 : strtol(argv[2], NULL, 10);
	bool hold = argc > 4 && strcmp(argv[4], "hold") == 0;
	bool crash = argc > 4 && strcmp(argv[4], "crash") == 0;
	char *args = malloc((size_t)payload + 64);
	if (!args || steps <= 0 || agentd_connect(&c) < 0) {
		fprintf(stderr, "durable_agent: cannot start\n");
		return 1;
	}
	char *res = NULL;
	struct agentd_error err = {0};
	if (agentd_resume(c, false, &res, &err) < 0) {
		fprintf(stderr, "durable_agent: resume: %s\n", err.message);
		return 1;
	}
	long long resumed = now_ns();
	free(res);
	long long t0 = now_ns();
	long replayed = 0;
	for (long i = 0; i < steps; i++) {
		/* The step's data: distinct per step, as a real step's would be. */
		int n = snprintf(args, 64, "{\"value\":\"%08ld", i);
		memset(args + n, 'x', (size_t)(payload > 8 ? payload - 8 : 0));
		strcpy(args + n + (payload > 8 ? payload - 8 : 0), "\"}");
		res = NULL;
		if (agentd_call(c, "agentd.echo", args, &res, &err) < 0) {
			fprintf(stderr, "durable_agent: step %ld: %s\n", i + 1, err.message);
			return 1;
		}
		replayed += agentd_last_replayed(c);
		free(res);
	}
	long long t1 = now_ns();
	if (attempt == 1) {
		printf("BENCH steps=%ld ns=%lld\n", steps, t1 - t0);
		fflush(stdout);
		while (hold)
			pause();
		if (crash) {
			/* Agent crash: the supervisor restarts it (the first
			 * restart is immediate) and attempt 2 reports when it
			 * had its resume point, to be compared with this. */
			printf("CRASH at_ns=%lld\n", now_ns());
			fflush(stdout);
			raise(SIGKILL);
		}
	} else {
		printf("RESUME resumed_ns=%lld replayed_ns=%lld replayed=%ld\n", resumed, t1,
		       replayed);
	}
	agentd_client_free(c);
	free(args);
	return 0;
}
