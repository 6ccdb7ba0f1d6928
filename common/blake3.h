/* BLAKE3, its default hash mode with a 256-bit output, one-shot. Used for
 * the journal's text digests in stores created at schema version 8 and
 * later (docs/store.md). */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define AGD_BLAKE3_LEN 32
#define AGD_BLAKE3_HEX (AGD_BLAKE3_LEN * 2 + 1)

/* Digest of buf (len bytes). */
void agd_blake3(const void *buf, size_t len, uint8_t out[AGD_BLAKE3_LEN]);

/* The same, written as lowercase hex (NUL-terminated). */
void agd_blake3_hex(const void *buf, size_t len, char out[AGD_BLAKE3_HEX]);
