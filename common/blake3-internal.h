/* common/blake3.c's implementations, for its tests and benchmark only. */
#pragma once

enum agd_blake3_path {
	AGD_BLAKE3_AUTO = -1, /* the widest this CPU has */
	AGD_BLAKE3_PORTABLE = 0,
	AGD_BLAKE3_AVX2 = 1,   /* 8 chunks at a time */
	AGD_BLAKE3_AVX512 = 2, /* 16 chunks at a time */
};

/* Makes agd_blake3() use path from now on. Returns 0, or -ENOTSUP (nothing
 * changed) when this build or CPU lacks it. Not to be called while another
 * thread hashes. */
int agd_blake3_force(int path);
