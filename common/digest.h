/* The journal's text digests: a call's args and result enter the hash chain
 * through one of these (docs/store.md, "Schema version 8"). A store keeps one
 * for its life: SHA-256 in a file created before version 8, BLAKE3 in a newer
 * one, which digests a 10 KB text several times faster. */
#pragma once

#include <stddef.h>

#include "common/blake3.h"
#include "common/sha256.h"

enum agd_digest {
	AGD_DIGEST_SHA256,
	AGD_DIGEST_BLAKE3,
};

/* Both are 32 bytes, written as 64 lowercase hex digits and a NUL. */
#define AGD_DIGEST_LEN 32
#define AGD_DIGEST_HEX (AGD_DIGEST_LEN * 2 + 1)
_Static_assert(AGD_SHA256_LEN == AGD_DIGEST_LEN && AGD_BLAKE3_LEN == AGD_DIGEST_LEN,
	       "one digest size");

/* The digest d of buf, as lowercase hex. */
void agd_digest_hex(enum agd_digest d, const void *buf, size_t len, char out[AGD_DIGEST_HEX]);

/* The name a store records ("sha256", "blake3"), and back: -1 if unknown. */
const char *agd_digest_name(enum agd_digest d);
int agd_digest_from_name(const char *name);
