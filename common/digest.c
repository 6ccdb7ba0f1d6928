#include "common/digest.h"

#include <string.h>

void
agd_digest_hex(enum agd_digest d, const void *buf, size_t len, char out[AGD_DIGEST_HEX])
{
	if (d == AGD_DIGEST_BLAKE3)
		agd_blake3_hex(buf, len, out);
	else
		agd_sha256_hex(buf, len, out);
}

static const char *const names[] = {
    [AGD_DIGEST_SHA256] = "sha256",
    [AGD_DIGEST_BLAKE3] = "blake3",
};

const char *
agd_digest_name(enum agd_digest d)
{
	return names[d];
}

int
agd_digest_from_name(const char *name)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (strcmp(name, names[i]) == 0)
			return (int)i;
	return -1;
}
