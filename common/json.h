/* JSON helpers on top of jansson for untrusted input and canonical hashing. */
#pragma once

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#include "common/digest.h"

/* Maximum nesting depth accepted from untrusted input. */
#define AGD_JSON_MAX_DEPTH 64

/* Parse untrusted JSON strictly: duplicate keys rejected, invalid UTF-8 rejected,
 * NUL in strings rejected, nesting deeper than max_depth rejected, a single
 * top-level value only (an object or an array). Accepts exactly what jansson's
 * json_loadb(JSON_REJECT_DUPLICATES) accepts within the depth, with the same
 * values and key order (common/json_codec.c), except that a NUL byte outside
 * a string is always refused (jansson's reader skips one after a number or a
 * literal). Returns a new reference, or NULL
 * with err filled (if not NULL) as jansson words it. */
json_t *agd_json_parse(const char *buf, size_t len, size_t max_depth, json_error_t *err);

/* Whether buf[0..len) is certainly one JSON value that the strict parser
 * accepts (agd_json_parse, a scalar wrapped in [ ]) with at most max_depth
 * nested arrays and objects: the form agd_json_canonical writes (no
 * whitespace, object keys in strictly increasing byte order, hence unique,
 * and unescaped; integers of at most 18 digits; valid UTF-8), checked in one
 * pass without building the value. false means "not proven" (another form,
 * a real, an escaped key, or invalid): the caller parses the text to decide.
 * Never true for a text the strict parser would reject. */
bool agd_json_canonical_valid(const char *buf, size_t len, size_t max_depth);

/* Canonical compact encoding (sorted keys, no spaces, UTF-8 as is): byte for
 * byte what json_dumps(JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY) writes.
 * Returns a malloc'd string owned by the caller, or NULL (out of memory, a
 * string or key that is not UTF-8, nesting past 4096: only a cycle). */
char *agd_json_canonical(const json_t *v);
/* The same, with its strlen in *ret_len (if not NULL), known without a scan. */
char *agd_json_canonical_n(const json_t *v, size_t *ret_len);

/* The length of the longest prefix of s[0..len) that a JSON string holds as
 * it is: no '"', '\\' or control character and, with ascii, no byte >= 0x80
 * (which needs a UTF-8 check). Thirty-two bytes a step on a CPU with AVX2,
 * sixteen with SSE2, eight otherwise; nothing past len is read. */
size_t agd_json_plain_len(const char *s, size_t len, bool ascii);

/* The length of the UTF-8 sequence at p (at most left bytes, left >= 1), 0
 * if it is not one strictly (RFC 3629: no overlong form, no surrogate,
 * nothing above U+10FFFF), as jansson decides. */
size_t agd_utf8_len(const unsigned char *p, size_t left);

/* Hex digest d of the canonical encoding of v. Returns 0 or -ENOMEM. */
int agd_json_hash(enum agd_digest d, const json_t *v, char out[AGD_DIGEST_HEX]);

/* Depth of the deepest array/object in v (a scalar is 0). */
size_t agd_json_depth(const json_t *v);

/* strlen of agd_json_canonical(v), computed without encoding (a byte count of
 * the escapes jansson writes); reals are encoded, being rare and irregular.
 * 0 for NULL or when out of memory. */
size_t agd_json_encoded_len(const json_t *v);

/* Free a jansson value via cleanup attribute (json_auto_t style). */
static inline void
agd_json_decrefp(json_t **p)
{
	json_decref(*p);
}
#define cleanup_json __attribute__((cleanup(agd_json_decrefp)))

/* Bounds of a run's "environment" (agd_env_check). */
#define AGD_ENV_MAX_VARS  64
#define AGD_ENV_MAX_BYTES 4096

/* Check a run's extra environment: an object of at most AGD_ENV_MAX_VARS
 * strings named [A-Z_][A-Z0-9_]*, at most AGD_ENV_MAX_BYTES of "NAME=value"
 * in all, no NUL, none of the names the runtime sets or that change how the
 * agent's programs load (PATH, HOME, LANG, PYTHON*, LD_*, AGENTD_*).
 * 0, or -EINVAL with a one-line message in err. */
int agd_env_check(const json_t *env, char *err, size_t errsz);
