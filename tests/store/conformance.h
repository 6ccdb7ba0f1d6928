/* Backend-independent conformance checks for store/store.h. A backend test
 * (tests/unit/test_store_conformance.c for SQLite) describes how to open its
 * store and runs the suite; every backend must pass the same checks. */
#pragma once

#include "store/store.h"

struct store_conformance_backend {
	const char *name;
	/* Open (creating if needed) the backend's store kept under directory
	 * `dir`. Must be callable from a forked child. */
	int (*open)(const char *dir, enum store_durability d, struct store **ret);
	/* Leave an empty, never-migrated (version 0) store under `dir`. */
	int (*make_empty)(const char *dir);
	/* Schema version found under `dir`, or a negative errno. */
	int (*schema_version)(const char *dir, int *ret_version);
	int current_version;
};

/* Run every conformance check as a cmocka group; returns the failure count. */
int store_conformance_run(const struct store_conformance_backend *b);
