/* Per-user usage across the runs of one store (schema version 3). */
#pragma once

#include <stdint.h>

#include "store/store.h"

/* store_run_create records the owner the spec names, "owner": {"uid": N}
 * (a run without one has no owner and counts for no one). */

/* How many journal rows started at or after since_ms across every run whose
 * owner is owner_uid (per-user rate limits), leaving out calls a limit refused
 * (status DENIED with a "limits." rule). One indexed read. 0 and *ret_n, or
 * -EINVAL (no store, owner_uid < 0), or a store error. */
int store_user_calls_since(struct store *s, int64_t owner_uid, int64_t since_ms, uint64_t *ret_n);
