/* Root mode: a stable, unshared uid/gid per tenant (supervisor/tenant_ids.c). */
#pragma once

#include <stdint.h>
#include <sys/types.h>

/* The default range: ids 200000..265535, one per tenant, far above the ids
 * distributions give to accounts. AGENTD_TENANT_IDS=BASE:COUNT overrides it
 * for the command line. */
#define SUP_TENANT_ID_BASE  200000u
#define SUP_TENANT_ID_COUNT 65536u

/* The uid (and equal gid) of `tenant` ([A-Za-z0-9._-], 1-64 bytes) in
 * [base, base + count): the one recorded in <state_dir>/tenant-ids, or the next
 * free one (skipping ids of host accounts and groups), recorded durably under
 * an exclusive lock. Returns 0; -EINVAL (bad name or range), -ENOSPC (range
 * used up), -ERANGE (the recorded id lies outside the range), -EBADMSG (a
 * malformed file), or another negative errno. */
int sup_tenant_id(const char *state_dir, const char *tenant, uint32_t base, uint32_t count,
		  uid_t *ret_id);
