/* Unit tests for common/: SHA-256 and BLAKE3 vectors, canonical JSON, strict parsing. */
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/blake3-internal.h"
#include "common/blake3.h"
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

/* BLAKE3 of the specification's test inputs (byte i is i % 251) at lengths
 * on every edge of the chunk, tree, subtree and SIMD lane counts. The
 * digests were computed with an independent implementation (@noble/hashes
 * 2.4.0 for JavaScript). */
static const struct {
	size_t len;
	const char *hex;
} blake3_vectors[] = {
    {0, "af1349b9f5f9a1a6a0404dea36dcc9499bcb25c9adc112b7cc9a93cae41f3262"},
    {1, "2d3adedff11b61f14c886e35afa036736dcd87a74d27b5c1510225d0f592e213"},
    {2, "7b7015bb92cf0b318037702a6cdd81dee41224f734684c2c122cd6359cb1ee63"},
    {3, "e1be4d7a8ab5560aa4199eea339849ba8e293d55ca0a81006726d184519e647f"},
    {4, "f30f5ab28fe047904037f77b6da4fea1e27241c5d132638d8bedce9d40494f32"},
    {5, "b40b44dfd97e7a84a996a91af8b85188c66c126940ba7aad2e7ae6b385402aa2"},
    {6, "06c4e8ffb6872fad96f9aaca5eee1553eb62aed0ad7198cef42e87f6a616c844"},
    {7, "3f8770f387faad08faa9d8414e9f449ac68e6ff0417f673f602a646a891419fe"},
    {8, "2351207d04fc16ade43ccab08600939c7c1fa70a5c0aaca76063d04c3228eaeb"},
    {63, "e9bc37a594daad83be9470df7f7b3798297c3d834ce80ba85d6e207627b7db7b"},
    {64, "4eed7141ea4a5cd4b788606bd23f46e212af9cacebacdc7d1f4c6dc7f2511b98"},
    {65, "de1e5fa0be70df6d2be8fffd0e99ceaa8eb6e8c93a63f2d8d1c30ecb6b263dee"},
    {127, "d81293fda863f008c09e92fc382a81f5a0b4a1251cba1634016a0f86a6bd640d"},
    {128, "f17e570564b26578c33bb7f44643f539624b05df1a76c81f30acd548c44b45ef"},
    {129, "683aaae9f3c5ba37eaaf072aed0f9e30bac0865137bae68b1fde4ca2aebdcb12"},
    {1023, "10108970eeda3eb932baac1428c7a2163b0e924c9a9e25b35bba72b28f70bd11"},
    {1024, "42214739f095a406f3fc83deb889744ac00df831c10daa55189b5d121c855af7"},
    {1025, "d00278ae47eb27b34faecf67b4fe263f82d5412916c1ffd97c8cb7fb814b8444"},
    {2048, "e776b6028c7cd22a4d0ba182a8bf62205d2ef576467e838ed6f2529b85fba24a"},
    {2049, "5f4d72f40d7a5f82b15ca2b2e44b1de3c2ef86c426c95c1af0b6879522563030"},
    {3072, "b98cb0ff3623be03326b373de6b9095218513e64f1ee2edd2525c7ad1e5cffd2"},
    {3073, "7124b49501012f81cc7f11ca069ec9226cecb8a2c850cfe644e327d22d3e1cd3"},
    {4096, "015094013f57a5277b59d8475c0501042c0b642e531b0a1c8f58d2163229e969"},
    {4097, "9b4052b38f1c5fc8b1f9ff7ac7b27cd242487b3d890d15c96a1c25b8aa0fb995"},
    {5120, "9cadc15fed8b5d854562b26a9536d9707cadeda9b143978f319ab34230535833"},
    {5121, "628bd2cb2004694adaab7bbd778a25df25c47b9d4155a55f8fbd79f2fe154cff"},
    {6144, "3e2e5b74e048f3add6d21faab3f83aa44d3b2278afb83b80b3c35164ebeca205"},
    {6145, "f1323a8631446cc50536a9f705ee5cb619424d46887f3c376c695b70e0f0507f"},
    {7168, "61da957ec2499a95d6b8023e2b0e604ec7f6b50e80a9678b89d2628e99ada77a"},
    {7169, "a003fc7a51754a9b3c7fae0367ab3d782dccf28855a03d435f8cfe74605e7817"},
    {8191, "bae8dc916e8643c6cf024097237cde1cba35c05b5d84c02834cb6b886edb76d9"},
    {8192, "aae792484c8efe4f19e2ca7d371d8c467ffb10748d8a5a1ae579948f718a2a63"},
    {8193, "bab6c09cb8ce8cf459261398d2e7aef35700bf488116ceb94a36d0f5f1b7bc3b"},
    {9216, "e5ef79624045ef3e98fd23342e61d7eb965997b32928f9de591cd0d465a223fb"},
    {9217, "d42c90aa30bee83ecb52ad31b685d566145649496764878873598cef582d4d8f"},
    {10240, "dccc225642830d32489c56d1e65478fb790324dc9ebbcc0de9aaa64944e6fe7e"},
    {15360, "dc62f909be1b86aeffb12594b22fd9756540022f0ac9a050730d6989a036f6b0"},
    {16383, "7529418ecb789a30254899f229522ccde05234d2019c5ec5072bc4685a57658d"},
    {16384, "f875d6646de28985646f34ee13be9a576fd515f76b5b0a26bb324735041ddde4"},
    {16385, "1dabe216be2578830263b049de1639f39f05a4da616b9b78c7a5e4e41662fd1f"},
    {17408, "993924ff3dcbd868be9cf3fed98d4538fe579ffccf390a5aa1ddba0f6a20bfed"},
    {17409, "50bc54238ac9271c9f3471f5206a04eb25d2e26b3214ed971cc55230b0d22864"},
    {24576, "72e104689c59f7abcd1478461e3891a49b6372733cb70010e170e5d49a111e76"},
    {25600, "3b8ce4a0d3219ff37557fb7c1d2b3992be8a6560a1c01efe266cff7ae83549b8"},
    {31744, "62b6960e1a44bcc1eb1a611a8d6235b6b4b78f32e7abc4fb4c6cdcce94895c47"},
    {32768, "162183d1f9184474f5a5c9e6224e66720cdb6523f822e52d9b1efa30893f48f9"},
    {32769, "da589428d9b32c97658a04a21c0c8a38aad2ac402120819d956fd6d62bbfa36e"},
    {33792, "2e87991ba4054e53240ccea4ee7eb6f6b24c366c8dfe8e52306026918870c229"},
    {65536, "68d647e619a930e7b1082f74f334b0c65a315725569bdc123f0ee11881717bfe"},
    {65537, "7c99f9840a73dfcb6e5bfe4ff6d1558acab7e015640790c26411818bdbe17eca"},
    {102400, "bc3e3d41a1146b069abffad3c0d44860cf664390afce4d9661f7902e7943e085"},
    {131072, "306baba93b1a393cbd35172837c98b0f59a41f64e1b2682ae102d8b2534b9e1c"},
    {131073, "f837d4254d24ba3d50fe3743d46e4af6db5f5d6ab0469197d94e7ba1e906c4d8"},
    {263169, "5f939be9e0ff14200d35a1f37ac138d517c81ce2ddfd3b8b7a42c90be46e0105"},
};

static const char *const blake3_paths[] = {"portable", "AVX2", "AVX-512"};

#define CHUNK_BYTES 1024 /* BLAKE3's chunk */

static void
test_blake3_vectors(void **state)
{
	char hex[AGD_BLAKE3_HEX];
	uint8_t d[AGD_BLAKE3_LEN];
	int tested = 0;

	for (int p = AGD_BLAKE3_PORTABLE; p <= AGD_BLAKE3_AVX512; p++) {
		if (agd_blake3_force(p) < 0) {
			print_message("blake3: %s path not checked: this build or CPU lacks it\n",
				      blake3_paths[p]);
			continue;
		}
		for (size_t v = 0; v < sizeof(blake3_vectors) / sizeof(*blake3_vectors); v++) {
			size_t len = blake3_vectors[v].len;
			/* exactly len bytes, so that ASan sees any read past them */
			uint8_t *in = malloc(len ? len : 1);

			assert_non_null(in);
			for (size_t i = 0; i < len; i++)
				in[i] = (uint8_t)(i % 251);
			agd_blake3_hex(in, len, hex);
			if (strcmp(hex, blake3_vectors[v].hex) != 0)
				print_error("blake3 %s path, %zu bytes\n", blake3_paths[p], len);
			assert_string_equal(hex, blake3_vectors[v].hex);
			agd_blake3(in, len, d); /* the same digest in bytes */
			for (int i = 0; i < AGD_BLAKE3_LEN; i++)
				snprintf(hex + 2 * i, 3, "%02x", d[i]);
			assert_string_equal(hex, blake3_vectors[v].hex);
			free(in);
		}
		agd_blake3_hex(NULL, 0, hex); /* an empty text may have no buffer */
		assert_string_equal(hex, blake3_vectors[0].hex);
		tested++;
	}
	assert_int_equal(agd_blake3_force(AGD_BLAKE3_AUTO), 0);
	assert_true(tested >= 1);
}

/* Compares every path's digest of len bytes at in with the portable one's;
 * returns how many paths it compared. */
static int
blake3_paths_agree_on(const uint8_t *in, size_t len, size_t off)
{
	uint8_t want[AGD_BLAKE3_LEN], got[AGD_BLAKE3_LEN];
	int compared = 0;

	assert_int_equal(agd_blake3_force(AGD_BLAKE3_PORTABLE), 0);
	agd_blake3(in, len, want);
	for (int p = AGD_BLAKE3_AVX2; p <= AGD_BLAKE3_AVX512; p++) {
		if (agd_blake3_force(p) < 0)
			continue;
		agd_blake3(in, len, got);
		if (memcmp(got, want, sizeof(want)) != 0)
			print_error("blake3 %s path, %zu bytes at offset %zu\n", blake3_paths[p],
				    len, off);
		assert_memory_equal(got, want, sizeof(want));
		compared++;
	}
	return compared;
}

/* Every path gives the portable one's digest: on each count of chunks up to
 * 17 (1 to 17 inputs side by side, and the parent levels above them) with
 * the last chunk one byte short, whole, or 1, 64, 200 or 513 bytes into a
 * new one; and on random lengths at random alignments. */
/* Random bytes (xorshift64 from *x) at off in a fresh buffer, len of them
 * compared across the paths. */
static int
paths_agree_on_random(uint64_t *x, size_t len, size_t off)
{
	uint8_t *buf = malloc(off + len + 1);

	assert_non_null(buf);
	for (size_t i = 0; i < off + len; i++) {
		*x ^= *x << 13, *x ^= *x >> 7, *x ^= *x << 17;
		buf[i] = (uint8_t)*x;
	}
	int compared = blake3_paths_agree_on(buf + off, len, off);
	free(buf);
	return compared;
}

static void
test_blake3_paths_agree(void **state)
{
	uint64_t x = 0x9e3779b97f4a7c15ULL; /* xorshift64, fixed seed */
	static const size_t ends[] = {CHUNK_BYTES - 1, 0, 1, 64, 200, 513};
	int compared = 0;

	for (size_t n = 1; n <= 17; n++) {
		for (size_t e = 0; e < sizeof(ends) / sizeof(*ends); e++) {
			size_t len = (n - 1) * CHUNK_BYTES + ends[e];

			compared += paths_agree_on_random(&x, len, n % 3);
		}
	}
	for (int round = 0; round < 400; round++) {
		size_t len, off;

		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		len = x % 40001, off = (x >> 32) % 64;
		compared += paths_agree_on_random(&x, len, off);
	}
	assert_int_equal(agd_blake3_force(AGD_BLAKE3_AUTO), 0);
	if (compared == 0)
		print_message("blake3: no SIMD path to compare: this build or CPU has none\n");
}

static void
test_canonical_hash_ignores_key_order(void **state)
{
	json_error_t e;
	cleanup_json json_t *a = agd_json_parse("{\"b\":1,\"a\":[1,2]}", 17, 8, &e);
	cleanup_json json_t *b = agd_json_parse("{ \"a\" : [1, 2], \"b\" : 1 }", 25, 8, &e);
	cleanup_json json_t *c = agd_json_parse("{\"a\":[2,1],\"b\":1}", 17, 8, &e);
	char ha[AGD_DIGEST_HEX], hb[AGD_DIGEST_HEX], hc[AGD_DIGEST_HEX], h2[AGD_DIGEST_HEX];

	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(c);
	for (int d = AGD_DIGEST_SHA256; d <= AGD_DIGEST_BLAKE3; d++) {
		assert_int_equal(agd_json_hash(d, a, ha), 0);
		assert_int_equal(agd_json_hash(d, b, hb), 0);
		assert_int_equal(agd_json_hash(d, c, hc), 0);
		assert_string_equal(ha, hb);
		assert_string_not_equal(ha, hc);
		/* The digest of the canonical text, under the digest asked for. */
		agd_digest_hex(d, "{\"a\":[1,2],\"b\":1}", 17, h2);
		assert_string_equal(ha, h2);
		agd_digest_hex(!d, "{\"a\":[1,2],\"b\":1}", 17, h2);
		assert_string_not_equal(ha, h2);
	}
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
	    cmocka_unit_test(test_blake3_vectors),
	    cmocka_unit_test(test_blake3_paths_agree),
	    cmocka_unit_test(test_canonical_hash_ignores_key_order),
	    cmocka_unit_test(test_strict_parse_rejects),
	    cmocka_unit_test(test_encoded_len_matches_encoder),
	    cmocka_unit_test(test_canonical_valid),
	    cmocka_unit_test(test_canonical_valid_never_looser),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
