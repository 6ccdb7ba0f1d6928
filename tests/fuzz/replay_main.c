/* Replays a libFuzzer corpus directory (or single files) through the target, so
 * every `make test` exercises the corpus without needing clang's libFuzzer. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
replay_file(const char *path)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	int r = agd_read_file(path, 64u << 20, &buf, &len);

	if (r < 0) {
		fprintf(stderr, "%s: %s\n", path, strerror(-r));
		return 1;
	}
	LLVMFuzzerTestOneInput((const uint8_t *)buf, len);
	return 0;
}

int
main(int argc, char **argv)
{
	int failures = 0, count = 0;

	for (int i = 1; i < argc; i++) {
		struct stat st;
		if (stat(argv[i], &st) < 0) {
			perror(argv[i]);
			return 1;
		}
		if (!S_ISDIR(st.st_mode)) {
			failures += replay_file(argv[i]);
			count++;
			continue;
		}
		DIR *d = opendir(argv[i]);
		struct dirent *de;
		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char path[4096];
			snprintf(path, sizeof(path), "%s/%s", argv[i], de->d_name);
			failures += replay_file(path);
			count++;
		}
		if (d)
			closedir(d);
	}
	if (count == 0) {
		fprintf(stderr, "no corpus inputs given\n");
		return 1;
	}
	printf("replayed %d inputs, %d unreadable\n", count, failures);
	return failures ? 1 : 0;
}
