/* agentd-call: call one agentd tool from a shell script inside the sandbox.
 *
 *   agentd-call TOOL [JSON_ARGS | -]
 *
 * Prints the tool's structuredContent as one line of JSON on stdout.
 * Exit status: 0 success, 1 tool error (error JSON on stderr), 2 denied (rule
 * and reason on stderr), 3 protocol/connection or other supervisor error,
 * 64 usage. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd_client.h"

enum {
	EXIT_OK = 0,
	EXIT_TOOL = 1,
	EXIT_DENIED = 2,
	EXIT_CHANNEL = 3,
	EXIT_USAGE = 64,
};

static void
freep(void *p)
{
	free(*(void **)p);
}
#define cleanup_free __attribute__((cleanup(freep)))

static void
usage(FILE *f)
{
	fprintf(f, "usage: agentd-call TOOL [JSON_ARGS | -]\n"
		   "Call an agentd tool; JSON_ARGS defaults to {} and '-' reads them from stdin.\n"
		   "Exit: 0 ok, 1 tool error, 2 denied, 3 channel/protocol error, 64 usage.\n");
}

/* Read all of stdin, bounded by the frame size: anything larger could not be
 * sent anyway. */
static int
read_stdin(char **ret)
{
	size_t len = 0, cap = 65536;
	cleanup_free char *buf = malloc(cap);

	if (!buf)
		return -ENOMEM;
	for (;;) {
		size_t n;
		if (cap - len < 2) {
			char *nbuf;
			if (cap > AGENTD_MAX_FRAME)
				return -EMSGSIZE;
			nbuf = realloc(buf, cap * 2);
			if (!nbuf)
				return -ENOMEM;
			buf = nbuf;
			cap *= 2;
		}
		n = fread(buf + len, 1, cap - len - 1, stdin);
		len += n;
		if (n == 0) {
			if (ferror(stdin))
				return -EIO;
			break;
		}
	}
	buf[len] = '\0';
	*ret = buf;
	buf = NULL;
	return 0;
}

int
main(int argc, char **argv)
{
	struct agentd_client *c = NULL;
	struct agentd_error err = {0};
	cleanup_free char *stdin_args = NULL;
	cleanup_free char *result = NULL;
	const char *args = "{}";
	int r, status;

	if (argc == 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		usage(stdout);
		return EXIT_OK;
	}
	if (argc < 2 || argc > 3 || argv[1][0] == '\0') {
		usage(stderr);
		return EXIT_USAGE;
	}
	if (argc == 3) {
		if (strcmp(argv[2], "-") == 0) {
			r = read_stdin(&stdin_args);
			if (r < 0) {
				fprintf(stderr, "agentd-call: reading arguments from stdin: %s\n",
					agentd_strerror(r));
				return EXIT_USAGE;
			}
			args = stdin_args;
		} else {
			args = argv[2];
		}
	}

	r = agentd_connect(&c);
	if (r < 0) {
		fprintf(stderr, "agentd-call: %s\n", agentd_strerror(r));
		return EXIT_CHANNEL;
	}
	r = agentd_call(c, argv[1], args, &result, &err);
	c = agentd_client_free(c);

	if (r == 0) {
		printf("%s\n", result);
		status = fflush(stdout) == 0 ? EXIT_OK : EXIT_CHANNEL;
	} else if (r == -EINVAL) {
		fprintf(stderr, "agentd-call: arguments must be a JSON object: %s\n", args);
		status = EXIT_USAGE;
	} else if (r == -AGENTD_ETOOL) {
		fprintf(stderr, "%s\n", err.json ? err.json : "{}");
		status = EXIT_TOOL;
	} else if (r == -AGENTD_EDENIED) {
		fprintf(stderr, "agentd-call: %s denied by %s%s: %s\n", argv[1],
			err.rule[0] ? "rule " : "policy", err.rule, err.message);
		status = EXIT_DENIED;
	} else if (r == -AGENTD_EREMOTE) {
		fprintf(stderr, "agentd-call: %s: %s (JSON-RPC %d)%s%s\n", argv[1], err.message,
			err.rpc_code, err.json ? " " : "", err.json ? err.json : "");
		status = EXIT_CHANNEL;
	} else {
		fprintf(stderr, "agentd-call: %s: %s\n", argv[1], agentd_strerror(r));
		status = EXIT_CHANNEL;
	}
	agentd_error_clear(&err);
	return status;
}
