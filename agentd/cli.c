/* Command-line helpers shared by agentd and agentd-serve. */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/util.h"
#include "store/store.h"

/* The last --state given to agd_open_state_store: later opens use it too. */
static const char *state_opt;

int
agd_die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("agentd: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* $XDG_STATE_HOME/agentd, ~/.local/state/agentd, or /var/lib/agentd for root. */
static int
state_dir(char *out, size_t outsz)
{
	const char *xdg = getenv("XDG_STATE_HOME");
	const char *home = getenv("HOME");

	if (state_opt)
		snprintf(out, outsz, "%s", state_opt);
	else if (geteuid() == 0)
		snprintf(out, outsz, "/var/lib/agentd");
	else if (xdg && xdg[0] == '/')
		snprintf(out, outsz, "%s/agentd", xdg);
	else if (home && home[0] == '/')
		snprintf(out, outsz, "%s/.local/state/agentd", home);
	else
		return -ENOENT;
	int e = agd_mkdir_p(out, 0700);
	if (e < 0)
		return e;
	/* Absolute from here on: runs record their workspace under it, and the
	 * supervisor refuses a relative path read back from the store. */
	char abs[PATH_MAX];
	if (!realpath(out, abs))
		return -errno;
	if (strlen(abs) >= outsz)
		return -ENAMETOOLONG;
	strcpy(out, abs);
	return 0;
}

int
agd_open_state_store(const char *state, char *dir, size_t dirsz, struct store **ret)
{
	char path[PATH_MAX];
	int e;

	if (state)
		state_opt = state;
	e = state_dir(dir, dirsz);
	if (e < 0)
		return agd_die(1, "cannot use state directory %s: %s", dir, strerror(-e));
	snprintf(path, sizeof(path), "%s/agentd.db", dir);
	e = store_open(path, agd_durability(), ret);
	if (e < 0)
		return agd_die(1, "cannot open store %s: %s", path, agd_store_open_error(e));
	return 0;
}

const char *
agd_store_open_error(int e)
{
	if (e == -EPROTONOSUPPORT)
		return "it was written by a newer agentd";
	if (e == -EBADMSG)
		return "not an agentd store, or damaged, or its payload file (the store's name "
		       "followed by -payloads) is missing or another store's";
	return strerror(-e);
}
