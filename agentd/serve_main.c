/* agentd-serve: the daemon (`agentd serve` execs it). A program of its own so
 * that agentd run and resume do not load what only the daemon needs
 * (libmicrohttpd, libcurl for webhooks) at every start (docs/decisions.md). */
#include <signal.h>

#include "agentd/cli.h"

int
main(int argc, char **argv)
{
	/* As agentd's main: a write to a child killed a moment earlier is
	 * -EPIPE, not death. */
	signal(SIGPIPE, SIG_IGN);
	return agd_cmd_serve(argc, argv);
}
