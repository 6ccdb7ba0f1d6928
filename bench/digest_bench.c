/* digest_bench: the journal's text digests, SHA-256 beside BLAKE3, in MB/s at
 * 1 KB, 10 KB and 100 KB, and their ratio.
 *
 *   digest_bench [MS]     (default 100 ms of CPU time per measurement)
 *
 * Each figure is the best of 5 measurements taken in turn with the others',
 * in this process's CPU time, so that other load on the machine shows less.
 * The BLAKE3 column is the path this CPU picks; each path's own figure
 * follows. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "common/blake3-internal.h"
#include "common/blake3.h"
#include "common/sha256.h"

#define SHA256 (-2) /* a path number for agd_sha256_hex */

static const char *const path_names[] = {"portable", "AVX2", "AVX-512"};

static double
cpu_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* MB/s of one function (SHA256 or a BLAKE3 path) on len bytes at buf. */
static double
measure(int path, const uint8_t *buf, size_t len, double secs)
{
	char hex[AGD_SHA256_HEX > AGD_BLAKE3_HEX ? AGD_SHA256_HEX : AGD_BLAKE3_HEX];
	double start = cpu_now(), t;
	size_t calls = 0;

	if (path != SHA256 && agd_blake3_force(path) < 0)
		return 0;
	do {
		for (int i = 0; i < 16; i++, calls++) {
			if (path == SHA256)
				agd_sha256_hex(buf, len, hex);
			else
				agd_blake3_hex(buf, len, hex);
		}
		t = cpu_now() - start;
	} while (t < secs);
	return (double)(calls * len) / t / 1e6;
}

int
main(int argc, char **argv)
{
	static const size_t sizes[] = {1024, 10240, 102400};
	static uint8_t buf[102400];
	double secs = (argc > 1 ? atof(argv[1]) : 100) / 1000;
	int paths = 0;

	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 24);
	while (paths <= AGD_BLAKE3_AVX512 && agd_blake3_force(paths) == 0)
		paths++;
	printf("  %-6s %8s %8s %6s", "size", "sha256", "blake3", "ratio");
	for (int p = 0; p < paths; p++)
		printf(" %9s", path_names[p]);
	printf("   (MB/s; blake3 = %s path)\n", path_names[paths - 1]);
	for (size_t s = 0; s < sizeof(sizes) / sizeof(*sizes); s++) {
		double best[AGD_BLAKE3_AVX512 + 2] = {0}; /* [0]: SHA-256, [1 + p]: path p */

		for (int round = 0; round < 5; round++) {
			for (int p = -1; p < paths; p++) {
				double r = measure(p < 0 ? SHA256 : p, buf, sizes[s], secs);
				if (r > best[p + 1])
					best[p + 1] = r;
			}
		}
		printf("  %3zu KB %8.0f %8.0f %5.2fx", sizes[s] / 1024, best[0], best[paths],
		       best[paths] / best[0]);
		for (int p = 0; p < paths; p++)
			printf(" %9.0f", best[p + 1]);
		printf("\n");
	}
	agd_blake3_force(AGD_BLAKE3_AUTO);
	return 0;
}
