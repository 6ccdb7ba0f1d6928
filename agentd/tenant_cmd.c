/* The sandbox uid of the command line's tenant in root mode. The tenant is
 * $AGENTD_TENANT when set (root acting for a named tenant), else the name of
 * the calling user; its id comes from the state dir's tenant-ids record
 * (supervisor/tenant_ids.c), within $AGENTD_TENANT_IDS=BASE:COUNT or the
 * default range. */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "supervisor/tenant_ids.h"

int
agd_sandbox_id(const char *state_dir, uid_t *ret)
{
	const char *tenant = getenv("AGENTD_TENANT");
	const char *range = getenv("AGENTD_TENANT_IDS");
	uint32_t base = SUP_TENANT_ID_BASE, count = SUP_TENANT_ID_COUNT;
	char namebuf[64];

	if (!tenant || !tenant[0]) {
		/* A copy: sup_tenant_id() looks up other uids with getpwuid(),
		 * which reuses the buffer pw points into. */
		struct passwd *pw = getpwuid(getuid());
		if (pw)
			snprintf(namebuf, sizeof(namebuf), "%s", pw->pw_name);
		else
			snprintf(namebuf, sizeof(namebuf), "uid-%u", (unsigned)getuid());
		tenant = namebuf;
	}
	if (range && range[0]) {
		unsigned long b, c;
		int used = 0;
		if (sscanf(range, "%lu:%lu%n", &b, &c, &used) != 2 || range[used] || b == 0 ||
		    c == 0 || b + c > 0xfffffffeul)
			return -EINVAL;
		base = (uint32_t)b;
		count = (uint32_t)c;
	}
	return sup_tenant_id(state_dir, tenant, base, count, ret);
}
