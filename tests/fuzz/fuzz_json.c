/* libFuzzer target for the strict JSON parser and the canonical encoder
 * (common/json_codec.c), differential: every input is parsed by agd_json_parse
 * and by jansson (json_loadb with JSON_REJECT_DUPLICATES, then the depth
 * bound). Invariants: the same verdict (but for a NUL byte jansson skips); for an accepted text the
 * same value with keys in the same order; agd_json_canonical writes byte for byte what jansson's
 * canonical encoding writes, and agd_json_encoded_len counts it. The first byte picks the depth
 * bound, the rest is the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	json_error_t e;

	if (size < 1)
		return 0;
	size_t depth = 1 + data[0] % 40;
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	json_t *want = json_loadb(text, len, JSON_REJECT_DUPLICATES, &e);
	json_t *got = agd_json_parse(text, len, depth, &e);

	if (want && agd_json_depth(want) > depth) {
		json_decref(want);
		want = NULL;
	}
	/* jansson's reader drops one NUL byte that follows a number or a
	 * literal (its lookahead, put back, reads as an empty slot); ours
	 * refuses every NUL byte outside a string. */
	if (want && !got && memchr(text, '\0', len)) {
		json_decref(want);
		return 0;
	}
	if (!want != !got)
		abort();
	if (!got)
		return e.text[0] ? 0 : (abort(), 0);
	char *a = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
	char *b = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
	char *c = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
	char *d = agd_json_canonical(got);
	if (!a || !b || !c || !d || !json_equal(want, got) || strcmp(a, b) != 0 ||
	    strcmp(c, d) != 0 || agd_json_encoded_len(got) != strlen(d))
		abort();
	free(a);
	free(b);
	free(c);
	free(d);
	json_decref(want);
	json_decref(got);
	return 0;
}
