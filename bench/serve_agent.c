/* Benchmark agent for agentd serve: N brokered agentd.echo calls, with an
 * optional pause between them so that many runs are alive at once.
 *
 * usage: serve_agent N [PAUSE_MS] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "agentd_client.h"

int
main(int argc, char **argv)
{
	struct agentd_client *c = NULL;
	long n = argc > 1 ? atol(argv[1]) : 10, pause_ms = argc > 2 ? atol(argv[2]) : 0;
	char args[64];

	if (n <= 0 || agentd_connect(&c) < 0) {
		fprintf(stderr, "usage: serve_agent N [PAUSE_MS] (inside agentd)\n");
		return 2;
	}
	for (long i = 0; i < n; i++) {
		struct agentd_error err = {0};
		char *res = NULL;
		snprintf(args, sizeof(args), "{\"value\": %ld}", i);
		int r = agentd_call(c, "agentd.echo", args, &res, &err);
		free(res);
		agentd_error_clear(&err);
		if (r < 0) {
			fprintf(stderr, "serve_agent: call %ld: %s\n", i + 1, agentd_strerror(r));
			return 1;
		}
		if (pause_ms) {
			struct timespec ts = {pause_ms / 1000, (pause_ms % 1000) * 1000000L};
			nanosleep(&ts, NULL);
		}
	}
	agentd_client_free(c);
	return 0;
}
