/* Unit tests for common/: SHA-256 vectors, canonical JSON, strict parsing. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include "common/json.h"
#include "common/sha256.h"
#include "common/util.h"

static void
test_sha256_vectors(void **state)
{
	char hex[AGD_SHA256_HEX];
	char million[1000];

	agd_sha256_hex("", 0, hex);
	assert_string_equal(hex,
			    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	agd_sha256_hex("abc", 3, hex);
	assert_string_equal(hex,
			    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	agd_sha256_hex(two, strlen(two), hex);
	assert_string_equal(hex,
			    "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");

	/* Streaming in odd chunks equals one shot: one million 'a'. */
	struct agd_sha256 s;
	uint8_t d[AGD_SHA256_LEN];
	memset(million, 'a', sizeof(million));
	agd_sha256_init(&s);
	for (int i = 0; i < 1000; i++)
		agd_sha256_update(&s, million, sizeof(million));
	agd_sha256_final(&s, d);
	assert_int_equal(d[0], 0xcd);
	assert_int_equal(d[1], 0xc7);
	assert_int_equal(d[31], 0xd0);
}

static void
test_canonical_hash_ignores_key_order(void **state)
{
	json_error_t e;
	cleanup_json json_t *a = agd_json_parse("{\"b\":1,\"a\":[1,2]}", 17, 8, &e);
	cleanup_json json_t *b = agd_json_parse("{ \"a\" : [1, 2], \"b\" : 1 }", 25, 8, &e);
	cleanup_json json_t *c = agd_json_parse("{\"a\":[2,1],\"b\":1}", 17, 8, &e);
	char ha[AGD_SHA256_HEX], hb[AGD_SHA256_HEX], hc[AGD_SHA256_HEX];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	assert_int_equal(agd_json_hash(a, ha), 0);
	assert_int_equal(agd_json_hash(b, hb), 0);
	assert_int_equal(agd_json_hash(c, hc), 0);
	assert_string_equal(ha, hb);
	assert_string_not_equal(ha, hc);
	cleanup_free char *s = agd_json_canonical(b);
	assert_string_equal(s, "{\"a\":[1,2],\"b\":1}");
}

static void
test_strict_parse_rejects(void **state)
{
	json_error_t e;
	char deep[200];

	assert_null(agd_json_parse("{\"a\":1,\"a\":2}", 13, 8, &e));
	assert_null(agd_json_parse("\"\xff\"", 3, 8, &e));
	assert_null(agd_json_parse("\"a\\u0000b\"", 10, 8, &e));
	assert_null(agd_json_parse("{} {}", 5, 8, &e));
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_null(agd_json_parse(deep, 200, 64, &e));
	json_t *ok = agd_json_parse(deep, 200, 100, &e);
	assert_non_null(ok);
	assert_int_equal(agd_json_depth(ok), 100);
	json_decref(ok);
	/* Brackets inside strings do not count toward depth. */
	const char *str = "{\"a\":\"[[[[\\\"[[[[\"}";
	json_t *s = agd_json_parse(str, strlen(str), 2, &e);
	assert_non_null(s);
	json_decref(s);
}

/* The counted length must equal the encoder's for every kind of value. */
static void
test_encoded_len_matches_encoder(void **state)
{
	static const char *const docs[] = {
	    "{}",
	    "[]",
	    "{\"a\":[1,-2,3.25,1e300,null,true,false],\"b\":{\"c\":\"\"}}",
	    "{\"esc\":\"q\\\" b\\\\ n\\n t\\t r\\r b\\b f\\f c\\u0001\\u001f /\",\"k\\n\":1}",
	    "{\"u\":\"h\u00e9llo \u2028 \u20ac \x7f\"}",
	    "[[[[]]],{\"x\":[{}]},-9223372036854775807,0.1]",
	    "\"scalar\"",
	    "42",
	    "null",
	};
	(void)state;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *v = json_loads(docs[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		char *t = agd_json_canonical(v);
		assert_non_null(t);
		assert_int_equal(agd_json_encoded_len(v), strlen(t));
		free(t);
		json_decref(v);
	}
	assert_int_equal(agd_json_encoded_len(NULL), 0);
}

/* The strict parser as the store applies it: a scalar is parsed wrapped. */
static bool
strict_accepts(const char *t, size_t len, size_t depth)
{
	char buf[512];
	json_t *v;

	if (len && (t[0] == '{' || t[0] == '[')) {
		v = agd_json_parse(t, len, depth, NULL);
	} else {
		assert_true(len + 2 < sizeof(buf));
		buf[0] = '[';
		memcpy(buf + 1, t, len);
		buf[len + 1] = ']';
		v = agd_json_parse(buf, len + 2, depth + 1, NULL);
		if (v && json_array_size(v) != 1) {
			json_decref(v);
			v = NULL;
		}
	}
	json_decref(v);
	return v != NULL;
}

static void
test_canonical_valid(void **state)
{
	/* What agd_json_canonical writes is proven valid in one pass. */
	static const char *const docs[] = {
	    "{\"a\":[1,-2,0,null,true,false],\"b\":{\"c\":\"\"},\"ba\":[]}",
	    "{\"esc\":\"q\\\" b\\\\ n\\n t\\t c\\u0001\\u001f /\"}",
	    "{\"u\":\"h\u00e9llo \u2028 \u20ac \U0001f600 \x7f\"}",
	    "[[[[]]],{\"x\":[{}]},-999999999999999999,\"s\"]",
	    "\"scalar\"",
	    "42",
	    "null",
	};
	/* Not proven (another form, or invalid): the caller parses. */
	static const char *const not_proven[] = {
	    "{\"a\":1,\"a\":2}",
	    "{\"b\":1,\"a\":2}",
	    "{\"a\":1 }",
	    " {}",
	    "{\"a\\n\":1}",
	    "\"\xff\"",
	    "\"\xed\xa0\x80\"",
	    "\"\xc0\x80\"",
	    "\"\xf4\x90\x80\x80\"",
	    "\"\xe2\x82\"",
	    "\"a\\u0000b\"",
	    "\"\\ud800\"",
	    "\"\\x\"",
	    "\"a\nb\"",
	    "{} {}",
	    "[1,]",
	    "[,1]",
	    "01",
	    "-0",
	    "-",
	    "1.5",
	    "1e3",
	    "9223372036854775807",
	    "{\"a\":}",
	    "{\"a\"}",
	    "{1:2}",
	    "tru",
	    "nul",
	    "\"open",
	    "[",
	    "{",
	    "",
	    "[1 2]",
	    "{\"a\":1,}",
	};
	char deep[300];
	(void)state;

	for (size_t i = 0; i < sizeof(docs) / sizeof(docs[0]); i++) {
		json_t *v = json_loads(docs[i], JSON_DECODE_ANY, NULL);
		assert_non_null(v);
		char *t = agd_json_canonical(v);
		assert_non_null(t);
		if (!agd_json_canonical_valid(t, strlen(t), 8))
			fail_msg("canonical text not proven valid: %s", t);
		free(t);
		json_decref(v);
	}
	for (size_t i = 0; i < sizeof(not_proven) / sizeof(not_proven[0]); i++)
		if (agd_json_canonical_valid(not_proven[i], strlen(not_proven[i]), 8))
			fail_msg("proven valid: %s", not_proven[i]);
	assert_false(agd_json_canonical_valid(NULL, 0, 8));
	/* Depth: 100 nested arrays pass at 100, not at 99. */
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	assert_true(agd_json_canonical_valid(deep, 200, 100));
	assert_false(agd_json_canonical_valid(deep, 200, 99));
	/* A length that cuts the text is not one value. */
	assert_false(agd_json_canonical_valid("{\"a\":1}", 6, 8));
}

/* Never proven valid when the strict parser rejects: mutate canonical texts
 * at random and compare the two verdicts. */
static void
test_canonical_valid_never_looser(void **state)
{
	static const char *const seeds[] = {
	    "{\"a\":[1,-2,null,true,false],\"b\":{\"c\":\"x\\n\\u0001\"},\"d\":"
	    "\"\xc3\xa9\xe2\x82\xac\"}",
	    "[[{\"k\":\"v\",\"l\":[]}],\"s\",0,12345]",
	    "{\"aa\":1,\"ab\":{\"x\":{\"y\":[\"\xf0\x9f\x98\x80\"]}}}",
	};
	static const char alphabet[] =
	    "{}[]\":,\\u0019aAbfnrt-e.+ \x80\xbf\xc2\xe0\xed\xf0\xf4\xff";
	uint64_t x = 0x9e3779b97f4a7c15u;
	size_t proven = 0, rejected = 0;
	(void)state;

	for (int iter = 0; iter < 300000; iter++) {
		char t[256];
		const char *seed = seeds[iter % 3];
		size_t len = strlen(seed);
		memcpy(t, seed, len);
		for (int m = 0; m < 1 + iter % 3; m++) {
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			size_t pos = (size_t)(x >> 8) % (len + 1);
			char ch = alphabet[(x >> 40) % (sizeof(alphabet) - 1)];
			switch ((x >> 56) % 3) {
			case 0: /* replace */
				if (pos < len)
					t[pos] = ch;
				break;
			case 1: /* insert */
				if (len + 1 < sizeof(t) - 8) {
					memmove(t + pos + 1, t + pos, len - pos);
					t[pos] = ch;
					len++;
				}
				break;
			default: /* delete */
				if (pos < len) {
					memmove(t + pos, t + pos + 1, len - pos - 1);
					len--;
				}
			}
		}
		bool ok = strict_accepts(t, len, 8);
		if (agd_json_canonical_valid(t, len, 8)) {
			proven++;
			if (!ok)
				fail_msg("proven valid but the parser rejects: %.*s", (int)len, t);
		}
		rejected += !ok;
	}
	/* The mutations exercise both sides. */
	assert_true(proven > 1000);
	assert_true(rejected > 1000);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sha256_vectors),
	    cmocka_unit_test(test_canonical_hash_ignores_key_order),
	    cmocka_unit_test(test_strict_parse_rejects),
	    cmocka_unit_test(test_encoded_len_matches_encoder),
	    cmocka_unit_test(test_canonical_valid),
	    cmocka_unit_test(test_canonical_valid_never_looser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
