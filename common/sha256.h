/* SHA-256 (FIPS 180-4). Used for argument hashes and the journal's hash chain. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define AGD_SHA256_LEN 32
#define AGD_SHA256_HEX (AGD_SHA256_LEN * 2 + 1)

struct agd_sha256 {
	uint32_t h[8];
	uint64_t bytes;
	uint8_t block[64];
	size_t fill;
};

void agd_sha256_init(struct agd_sha256 *s);
void agd_sha256_update(struct agd_sha256 *s, const void *data, size_t len);
void agd_sha256_final(struct agd_sha256 *s, uint8_t out[AGD_SHA256_LEN]);

/* One-shot digest of buf, written as lowercase hex (NUL-terminated). */
void agd_sha256_hex(const void *buf, size_t len, char out[AGD_SHA256_HEX]);
