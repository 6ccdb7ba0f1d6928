/* Benchmark agent: times brokered calls from inside the sandbox.
 *
 * usage: calls_agent N TOOL ARGS_JSON
 * Attempt 1 makes N live calls and prints their round-trip latency, then kills
 * itself with SIGKILL; attempt 2 makes the same N calls, which the supervisor
 * answers from the journal, and prints the replay latency and rate. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "agentd_client.h"

static double
now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static int
cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct agentd_client *c = NULL;
	const char *att = getenv("AGENTD_ATTEMPT");
	int attempt = att ? atoi(att) : 1;

	if (argc != 4) {
		fprintf(stderr, "usage: calls_agent N TOOL ARGS_JSON\n");
		return 64;
	}
	long n = strtol(argv[1], NULL, 10);
	double *lat = calloc((size_t)n, sizeof(double));
	if (!lat || n <= 0 || agentd_connect(&c) < 0) {
		fprintf(stderr, "calls_agent: cannot start\n");
		return 1;
	}
	double t0 = now_us();
	for (long i = 0; i < n; i++) {
		struct agentd_error err = {0};
		char *res = NULL;
		double s = now_us();
		int r = agentd_call(c, argv[2], argv[3], &res, &err);
		lat[i] = now_us() - s;
		free(res);
		if (r < 0) {
			fprintf(stderr, "calls_agent: call %ld: %s %s\n", i + 1, agentd_strerror(r),
				err.message);
			return 1;
		}
		agentd_error_clear(&err);
	}
	double total = now_us() - t0;
	qsort(lat, (size_t)n, sizeof(double), cmp);
	printf("BENCH %s n=%ld p50_us=%.1f p99_us=%.1f calls_per_s=%.0f\n",
	       attempt == 1 ? "live" : "replay", n, lat[n / 2], lat[(n * 99) / 100],
	       (double)n / (total / 1e6));
	fflush(stdout);
	if (attempt == 1)
		kill(getpid(), SIGKILL);
	agentd_client_free(c);
	free(lat);
	return 0;
}
