/* The texts the plain-run scanners are checked on (agd_json_plain_len in
 * test_json.c, the C SDK's skip_plain in test_sdk_client.c): every length
 * to 160 (the 32-byte steps and the overlapping last one, the 16- and 8-byte
 * steps, the bytewise tail) and a few long ones, with a special byte at each
 * position, or near the end of the long ones, and a second one after it.
 * Each text is at the end of a buffer of its exact size, at an odd or even
 * address, so that ASan sees any read past it. check(s, len, c, at) compares
 * a scanner with its bytewise definition on s[0, len), which has special
 * byte c at position at (at == len: none). */
#ifndef AGENTD_TESTS_PLAIN_SCAN_CASES_H
#define AGENTD_TESTS_PLAIN_SCAN_CASES_H

#include <stdlib.h>

static void
plain_scan_cases(void (*check)(const unsigned char *s, size_t len, unsigned char c, size_t at))
{
	static const unsigned char stops[] = {'"', '\\', 0, 0x1f, '\n', 0x80, 0xc3, 0xff};
	/* Plain in both modes, and next to the specials in value. */
	static const unsigned char plain[] = {' ', '!', '#', '[', ']', 0x7f, 'a', '~', '-'};
	static const size_t long_lens[] = {1024, 4095, 4096, 4097, 10240 + 13};

	for (size_t n = 0; n <= 160 + sizeof(long_lens) / sizeof(*long_lens); n++) {
		size_t len = n <= 160 ? n : long_lens[n - 161], off = len % 2;
		unsigned char *buf = malloc(off + len + (len == 0)), *s = buf + off;
		assert_non_null(buf);
		for (size_t at = len > 160 ? len - 70 : 0; at <= len; at++) {
			for (size_t k = 0; k < sizeof(stops); k++) {
				for (size_t i = 0; i < len; i++)
					s[i] = plain[(i + k) % sizeof(plain)];
				if (at < len)
					s[at] = stops[k];
				if (at + 1 + k * 5 < len)
					s[at + 1 + k * 5] = stops[(k + 3) % sizeof(stops)];
				check(s, len, stops[k], at);
			}
		}
		free(buf);
	}
}

#endif
