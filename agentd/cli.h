/* Shared pieces of the agentd command line. */
#pragma once

#include <stdarg.h>

/* Print "agentd: <message>" on stderr and return code (for `return agd_die(...)`). */
int agd_die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* agentd policy check|lint ... (argv[0] is "policy"). */
int agd_cmd_policy(int argc, char **argv);

/* agentd serve [--config FILE] [--state DIR] [--socket PATH] (agentd/serve.c). */
int agd_cmd_serve(int argc, char **argv);
