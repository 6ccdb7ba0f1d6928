/* BLAKE3 as in its specification (github.com/BLAKE3-team/BLAKE3-specs): the
 * default hash mode only, one-shot, 32-byte output.
 *
 * The input is cut into 1024-byte chunks. Each chunk is hashed alone: its
 * 64-byte blocks are compressed in turn into an 8-word chaining value, with
 * the chunk's index as the counter. Chaining values are then combined two by
 * two by parent compressions (the 64-byte pair as the message) up a
 * left-balanced binary tree: the left subtree of a node holds the largest
 * power of two of chunks that leaves at least one for the right. The very
 * last compression, of a chunk if there is only one, else of the top parent,
 * has the ROOT flag and gives the digest.
 *
 * Chunks do not depend on each other, so the x86-64 paths hash several of
 * them at once, and the parents of one tree level likewise: 8 (AVX2) or 16
 * (AVX-512), chunk i in lane i of every vector; or, which costs less when
 * there are fewer, up to 4 (AVX2) or 8 (AVX-512) with each input's state
 * rows in a half or a quarter of a vector. */
#include "common/blake3.h"
#include "common/blake3-internal.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#endif

enum {
	CHUNK_START = 1,
	CHUNK_END = 2,
	PARENT = 4,
	ROOT = 8,
};

#define BLOCK 64
#define CHUNK 1024
#define CV    32 /* a chaining value's 8 words, little-endian */
/* Chunks in one subtree hashed in one piece (a power of two): their chaining
 * values are kept together, on the stack. */
#define SUBTREE 64

static const uint32_t IV[8] = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
			       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};

/* The message words each round takes, in order: round r + 1 takes round r's
 * through the permutation {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14,
 * 15, 8}. */
static const uint8_t SCHED[7][16] = {
    {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15},
    {2, 6, 3, 10, 7, 0, 4, 13, 1, 11, 12, 5, 9, 14, 15, 8},
    {3, 4, 10, 12, 13, 2, 7, 14, 6, 5, 9, 0, 11, 15, 8, 1},
    {10, 7, 12, 9, 14, 3, 13, 15, 4, 0, 11, 2, 5, 8, 1, 6},
    {12, 13, 9, 11, 15, 10, 14, 8, 7, 2, 5, 3, 0, 1, 6, 4},
    {9, 14, 11, 5, 8, 12, 15, 1, 13, 3, 0, 10, 2, 6, 4, 7},
    {11, 15, 5, 0, 1, 9, 8, 6, 14, 10, 2, 12, 3, 4, 7, 13},
};

static inline uint32_t
ror(uint32_t x, int n)
{
	return (x >> n) | (x << (32 - n));
}

static inline void
g(uint32_t v[16], int a, int b, int c, int d, uint32_t x, uint32_t y)
{
	v[a] += v[b] + x;
	v[d] = ror(v[d] ^ v[a], 16);
	v[c] += v[d];
	v[b] = ror(v[b] ^ v[c], 12);
	v[a] += v[b] + y;
	v[d] = ror(v[d] ^ v[a], 8);
	v[c] += v[d];
	v[b] = ror(v[b] ^ v[c], 7);
}

/* Compresses block into the chaining value cv (the first half of the output,
 * all a 32-byte digest needs). */
static void
compress_portable(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len,
		  uint32_t flags)
{
	uint32_t m[16], v[16];

	for (int i = 0; i < 16; i++)
		m[i] = (uint32_t)block[4 * i] | (uint32_t)block[4 * i + 1] << 8 |
		       (uint32_t)block[4 * i + 2] << 16 | (uint32_t)block[4 * i + 3] << 24;
	memcpy(v, cv, 8 * sizeof(*v));
	memcpy(v + 8, IV, 4 * sizeof(*v));
	v[12] = (uint32_t)counter, v[13] = (uint32_t)(counter >> 32);
	v[14] = len, v[15] = flags;
	for (int r = 0; r < 7; r++) {
		const uint8_t *s = SCHED[r];
		g(v, 0, 4, 8, 12, m[s[0]], m[s[1]]); /* columns */
		g(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
		g(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
		g(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
		g(v, 0, 5, 10, 15, m[s[8]], m[s[9]]); /* diagonals */
		g(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
		g(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
		g(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
	}
	for (int i = 0; i < 8; i++)
		cv[i] = v[i] ^ v[i + 8];
}

static void
store_cv(uint8_t out[CV], const uint32_t cv[8])
{
	for (int i = 0; i < 8; i++) {
		out[4 * i] = (uint8_t)cv[i];
		out[4 * i + 1] = (uint8_t)(cv[i] >> 8);
		out[4 * i + 2] = (uint8_t)(cv[i] >> 16);
		out[4 * i + 3] = (uint8_t)(cv[i] >> 24);
	}
}

#if defined(__x86_64__)
/* The x86-64 paths. What AVX2 and AVX-512 share is inlined into one function
 * per target, each compiled with that target's instructions (vprord rotates
 * in one instruction where AVX2 needs three). */
#define TARGET_AVX2   __attribute__((target("avx2")))
#define TARGET_AVX512 __attribute__((target("avx512f,avx512vl")))
#define INLINE	      static inline __attribute__((always_inline))

typedef uint32_t u32x4 __attribute__((vector_size(16)));
typedef uint32_t u32x8 __attribute__((vector_size(32)));
typedef uint8_t u8x16 __attribute__((vector_size(16)));

/* One compression with the state's four rows in four vectors: the columns'
 * four G functions run side by side, then the diagonals' once rows 1 to 3
 * are turned by 1 to 3 words. This is for the compressions done one at a
 * time (inputs of one chunk, the top parents, the root): one long chain of
 * dependent instructions, it takes 0.6 times the portable code's time with
 * AVX2, 0.5 with AVX-512. */
INLINE u32x4
ror4x(u32x4 x, int n)
{
	if (n == 16) /* whole bytes: one shuffle */
		return (u32x4)__builtin_shufflevector((u8x16)x, (u8x16)x, 2, 3, 0, 1, 6, 7, 4, 5,
						      10, 11, 8, 9, 14, 15, 12, 13);
	if (n == 8)
		return (u32x4)__builtin_shufflevector((u8x16)x, (u8x16)x, 1, 2, 3, 0, 5, 6, 7, 4, 9,
						      10, 11, 8, 13, 14, 15, 12);
	return (x >> n) | (x << (32 - n));
}

INLINE void
g4x(u32x4 *a, u32x4 *b, u32x4 *c, u32x4 *d, u32x4 x, u32x4 y)
{
	*a = *a + x + *b; /* b comes last: the others are ready before it */
	*d = ror4x(*d ^ *a, 16);
	*c += *d;
	*b = ror4x(*b ^ *c, 12);
	*a = *a + y + *b;
	*d = ror4x(*d ^ *a, 8);
	*c += *d;
	*b = ror4x(*b ^ *c, 7);
}

INLINE void
compress_rows(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len,
	      uint32_t flags)
{
	uint32_t m[16];
	u32x4 a = {cv[0], cv[1], cv[2], cv[3]}, b = {cv[4], cv[5], cv[6], cv[7]};
	u32x4 c = {IV[0], IV[1], IV[2], IV[3]};
	u32x4 d = {(uint32_t)counter, (uint32_t)(counter >> 32), len, flags};

	memcpy(m, block, BLOCK); /* x86 is little-endian */
#pragma GCC unroll 7
	for (int r = 0; r < 7; r++) {
		const uint8_t *s = SCHED[r];
		g4x(&a, &b, &c, &d, (u32x4){m[s[0]], m[s[2]], m[s[4]], m[s[6]]},
		    (u32x4){m[s[1]], m[s[3]], m[s[5]], m[s[7]]});
		a = __builtin_shufflevector(a, a, 3, 0, 1, 2);
		c = __builtin_shufflevector(c, c, 1, 2, 3, 0);
		d = __builtin_shufflevector(d, d, 2, 3, 0, 1);
		g4x(&a, &b, &c, &d, (u32x4){m[s[14]], m[s[8]], m[s[10]], m[s[12]]},
		    (u32x4){m[s[15]], m[s[9]], m[s[11]], m[s[13]]});
		a = __builtin_shufflevector(a, a, 1, 2, 3, 0);
		c = __builtin_shufflevector(c, c, 3, 0, 1, 2);
		d = __builtin_shufflevector(d, d, 2, 3, 0, 1);
	}
	a ^= c, b ^= d;
	memcpy(cv, &a, 16);
	memcpy(cv + 4, &b, 16);
}

TARGET_AVX2 static void
compress_avx2(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len,
	      uint32_t flags)
{
	compress_rows(cv, block, counter, len, flags);
}

TARGET_AVX512 static void
compress_avx512(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len,
		uint32_t flags)
{
	compress_rows(cv, block, counter, len, flags);
}

/* hash_many's inputs side by side, input i in lane i of every vector (the
 * state and the message word-sliced: v[j] and m[j] hold word j of every
 * input). Here, for each lane: where it reads, its counter, the index of its
 * last block and that block's length. Lanes past the inputs repeat input 0
 * and are not stored; a partial chunk (only ever the last input) is read
 * from pad, zero-filled, and its lane stops changing after its last block. */
struct lanes {
	const uint8_t *p[16];
	uint32_t lo[16], hi[16], end[16], tail[16];
};

static void
lanes_init(struct lanes *l, int width, const uint8_t *in, size_t len, uint64_t counter, bool parent,
	   uint8_t pad[CHUNK])
{
	size_t stride = parent ? BLOCK : CHUNK;

	for (int i = 0; i < width; i++) {
		size_t off = (size_t)i * stride < len ? (size_t)i * stride : 0;
		size_t n = len - off < stride ? len - off : stride;
		uint64_t c = parent ? 0 : counter + off / stride;

		l->p[i] = in + off;
		if (n < stride) {
			memset(pad, 0, CHUNK);
			memcpy(pad, in + off, n);
			l->p[i] = pad;
		}
		l->lo[i] = (uint32_t)c, l->hi[i] = (uint32_t)(c >> 32);
		l->end[i] = (uint32_t)((n - 1) / BLOCK);
		l->tail[i] = (uint32_t)(n - BLOCK * l->end[i]);
	}
}

TARGET_AVX2 INLINE __m256i
ror8x(__m256i x, int n)
{
	const __m256i rot16 =
	    _mm256_setr_epi8(2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14, 15, 12, 13, 2, 3, 0, 1, 6, 7,
			     4, 5, 10, 11, 8, 9, 14, 15, 12, 13);
	const __m256i rot8 = _mm256_setr_epi8(1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12,
					      1, 2, 3, 0, 5, 6, 7, 4, 9, 10, 11, 8, 13, 14, 15, 12);
	if (n == 16) /* whole bytes: one shuffle instead of two shifts and an or */
		return _mm256_shuffle_epi8(x, rot16);
	if (n == 8)
		return _mm256_shuffle_epi8(x, rot8);
	return (__m256i)((u32x8)x >> n | (u32x8)x << (32 - n)); /* one vprord with AVX-512 */
}

TARGET_AVX2 INLINE void
g8x(__m256i v[16], int a, int b, int c, int d, __m256i x, __m256i y)
{
	v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), x);
	v[d] = ror8x(_mm256_xor_si256(v[d], v[a]), 16);
	v[c] = _mm256_add_epi32(v[c], v[d]);
	v[b] = ror8x(_mm256_xor_si256(v[b], v[c]), 12);
	v[a] = _mm256_add_epi32(_mm256_add_epi32(v[a], v[b]), y);
	v[d] = ror8x(_mm256_xor_si256(v[d], v[a]), 8);
	v[c] = _mm256_add_epi32(v[c], v[d]);
	v[b] = ror8x(_mm256_xor_si256(v[b], v[c]), 7);
}

/* r[i] holds 8 words of input i; afterwards r[j] holds word j of every
 * input: 2x2 blocks of words transposed, then 4x4 within each 128-bit half,
 * then the halves swapped. */
TARGET_AVX2 INLINE void
transpose8x(__m256i r[8])
{
	__m256i t[8], u[8];

	for (int i = 0; i < 8; i += 2) {
		t[i] = _mm256_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm256_unpackhi_epi32(r[i], r[i + 1]);
	}
	for (int i = 0; i < 8; i += 4) {
		u[i] = _mm256_unpacklo_epi64(t[i], t[i + 2]);
		u[i + 1] = _mm256_unpackhi_epi64(t[i], t[i + 2]);
		u[i + 2] = _mm256_unpacklo_epi64(t[i + 1], t[i + 3]);
		u[i + 3] = _mm256_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
	for (int k = 0; k < 4; k++) {
		r[k] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x20);
		r[k + 4] = _mm256_permute2x128_si256(u[k], u[k + 4], 0x31);
	}
}

/* Up to 8 inputs (len bytes at in) in 256-bit vectors. */
TARGET_AVX2 static void
hash8_avx2(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	struct lanes l;
	uint8_t pad[CHUNK];
	__m256i h[8], v[16], m[16], end, tail;

	lanes_init(&l, 8, in, len, counter, parent, pad);
	end = _mm256_loadu_si256((const __m256i *)l.end);
	tail = _mm256_loadu_si256((const __m256i *)l.tail);
	for (int j = 0; j < 8; j++)
		h[j] = _mm256_set1_epi32((int)IV[j]);
	for (uint32_t b = 0; b <= l.end[0]; b++) {
		__m256i bv = _mm256_set1_epi32((int)b);
		__m256i last = _mm256_cmpeq_epi32(end, bv), done = _mm256_cmpgt_epi32(bv, end);
		uint32_t flags = parent ? PARENT : b == 0 ? CHUNK_START : 0;

		for (int i = 0; i < 8; i++) {
			m[i] = _mm256_loadu_si256((const __m256i *)(l.p[i] + b * BLOCK));
			m[i + 8] = _mm256_loadu_si256((const __m256i *)(l.p[i] + b * BLOCK + 32));
		}
		transpose8x(m);
		transpose8x(m + 8);
		for (int j = 0; j < 8; j++) {
			v[j] = h[j];
			v[j + 8] = _mm256_set1_epi32((int)IV[j]);
		}
		v[12] = _mm256_loadu_si256((const __m256i *)l.lo);
		v[13] = _mm256_loadu_si256((const __m256i *)l.hi);
		v[14] = _mm256_blendv_epi8(_mm256_set1_epi32(BLOCK), tail, last);
		v[15] = _mm256_or_si256(
		    _mm256_set1_epi32((int)flags),
		    _mm256_and_si256(last, _mm256_set1_epi32(parent ? 0 : CHUNK_END)));
#pragma GCC unroll 7
		for (int r = 0; r < 7; r++) {
			const uint8_t *s = SCHED[r];
			g8x(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
			g8x(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
			g8x(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
			g8x(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
			g8x(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
			g8x(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
			g8x(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
			g8x(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
		}
		/* lanes past their last block keep their chaining value */
		for (int j = 0; j < 8; j++)
			h[j] = _mm256_blendv_epi8(_mm256_xor_si256(v[j], v[j + 8]), h[j], done);
	}
	transpose8x(h); /* back: h[i] is input i's chaining value */
	for (size_t i = 0; i < 8 && i * (parent ? BLOCK : CHUNK) < len; i++)
		_mm256_storeu_si256((__m256i *)(out + i * CV), h[i]);
}

/* Up to 2 * sets inputs with AVX2, 2 to a set of 256-bit vectors, each
 * 128-bit half one input's state rows (hash_rows() with half as many to a
 * vector). AVX2 has no two-source permute, so each input keeps its block's
 * words in the order a round takes them (the columns' first and second
 * words, then the diagonals', as compress_rows() takes them), in two
 * vectors, and permutes them for the next round: each word of the next
 * order is word RNEXT[k] of this one. */
TARGET_AVX2 INLINE void
g2r(__m256i *a, __m256i *b, __m256i *c, __m256i *d, __m256i x, __m256i y)
{
	*a = _mm256_add_epi32(_mm256_add_epi32(*a, x), *b);
	*d = ror8x(_mm256_xor_si256(*d, *a), 16);
	*c = _mm256_add_epi32(*c, *d);
	*b = ror8x(_mm256_xor_si256(*b, *c), 12);
	*a = _mm256_add_epi32(_mm256_add_epi32(*a, y), *b);
	*d = ror8x(_mm256_xor_si256(*d, *a), 8);
	*c = _mm256_add_epi32(*c, *d);
	*b = ror8x(_mm256_xor_si256(*b, *c), 7);
}

TARGET_AVX2 INLINE void
hash_rows_avx2(int sets, const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	/* RNEXT = {1, 5, 7, 2, 3, 10, 0, 15, 12, 4, 11, 13, 9, 14, 6, 8}: the
	 * message permutation, seen in the round's order. Its first 8 words
	 * come from the first vector but where the blend's bit is set, its
	 * last 8 likewise. */
	const __m256i first_lo = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
	const __m256i first_hi = _mm256_setr_epi32(6, 0, 2, 4, 7, 1, 3, 5);
	const __m256i next_lo = _mm256_setr_epi32(1, 5, 7, 2, 3, 2, 0, 7);
	const __m256i next_hi = _mm256_setr_epi32(4, 4, 3, 5, 1, 6, 6, 0);
	struct lanes l;
	uint8_t pad[CHUNK];
	uint32_t cvs[2][2][8];
	__m256i h[2][2];

	lanes_init(&l, 2 * sets, in, len, counter, parent, pad);
	for (int s = 0; s < sets; s++) {
		h[s][0] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IV));
		h[s][1] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(IV + 4)));
	}
	for (uint32_t b = 0; b <= l.end[0]; b++) {
		__m256i a[2], bb[2], c[2], d[2], live[2], m[2][2][2];

#pragma GCC unroll 2
		for (int s = 0; s < sets; s++) {
			uint32_t row3[2][4];
			int64_t on[2];

			for (int i = 0; i < 2; i++) {
				int j = 2 * s + i;
				bool last = b == l.end[j];
				const uint8_t *p = l.p[j] + (b <= l.end[j] ? b : 0) * BLOCK;
				__m256i lo = _mm256_loadu_si256((const __m256i *)p);
				__m256i hi = _mm256_loadu_si256((const __m256i *)(p + 32));

				m[s][i][0] = _mm256_permutevar8x32_epi32(lo, first_lo);
				m[s][i][1] = _mm256_permutevar8x32_epi32(hi, first_hi);
				row3[i][0] = l.lo[j], row3[i][1] = l.hi[j];
				row3[i][2] = last ? l.tail[j] : BLOCK;
				row3[i][3] =
				    parent ? PARENT
					   : (b == 0 ? CHUNK_START : 0) | (last ? CHUNK_END : 0);
				on[i] = b <= l.end[j] ? -1 : 0;
			}
			live[s] = _mm256_set_epi64x(on[1], on[1], on[0], on[0]);
			d[s] = _mm256_loadu_si256((const __m256i *)row3);
			a[s] = h[s][0], bb[s] = h[s][1];
			c[s] = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)IV));
		}
#pragma GCC unroll 7
		for (int r = 0; r < 7; r++) {
#pragma GCC unroll 2
			for (int s = 0; s < sets; s++) {
				__m256i *m0 = m[s][0], *m1 = m[s][1];

				g2r(&a[s], &bb[s], &c[s], &d[s],
				    _mm256_permute2x128_si256(m0[0], m1[0], 0x20),
				    _mm256_permute2x128_si256(m0[0], m1[0], 0x31));
				a[s] = _mm256_shuffle_epi32(a[s], _MM_SHUFFLE(2, 1, 0, 3));
				c[s] = _mm256_shuffle_epi32(c[s], _MM_SHUFFLE(0, 3, 2, 1));
				d[s] = _mm256_shuffle_epi32(d[s], _MM_SHUFFLE(1, 0, 3, 2));
				g2r(&a[s], &bb[s], &c[s], &d[s],
				    _mm256_permute2x128_si256(m0[1], m1[1], 0x20),
				    _mm256_permute2x128_si256(m0[1], m1[1], 0x31));
				a[s] = _mm256_shuffle_epi32(a[s], _MM_SHUFFLE(0, 3, 2, 1));
				c[s] = _mm256_shuffle_epi32(c[s], _MM_SHUFFLE(2, 1, 0, 3));
				d[s] = _mm256_shuffle_epi32(d[s], _MM_SHUFFLE(1, 0, 3, 2));
				for (int i = 0; i < 2 && r < 6; i++) {
					__m256i *w = m[s][i];
					__m256i lo = _mm256_blend_epi32(
					    _mm256_permutevar8x32_epi32(w[0], next_lo),
					    _mm256_permutevar8x32_epi32(w[1], next_lo), 0xa0);
					__m256i hi = _mm256_blend_epi32(
					    _mm256_permutevar8x32_epi32(w[0], next_hi),
					    _mm256_permutevar8x32_epi32(w[1], next_hi), 0xbd);
					w[0] = lo, w[1] = hi;
				}
			}
		}
#pragma GCC unroll 2
		for (int s = 0; s < sets; s++) {
			h[s][0] =
			    _mm256_blendv_epi8(h[s][0], _mm256_xor_si256(a[s], c[s]), live[s]);
			h[s][1] =
			    _mm256_blendv_epi8(h[s][1], _mm256_xor_si256(bb[s], d[s]), live[s]);
		}
	}
	for (int s = 0; s < sets; s++) {
		_mm256_storeu_si256((__m256i *)cvs[s][0], h[s][0]);
		_mm256_storeu_si256((__m256i *)cvs[s][1], h[s][1]);
	}
	for (size_t i = 0; i < 2 * (size_t)sets && i * (parent ? BLOCK : CHUNK) < len; i++) {
		memcpy(out + i * CV, cvs[i / 2][0] + 4 * (i % 2), 16);
		memcpy(out + i * CV + 16, cvs[i / 2][1] + 4 * (i % 2), 16);
	}
}

TARGET_AVX2 static void
hash2_avx2(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	hash_rows_avx2(1, in, len, counter, parent, out);
}

TARGET_AVX2 static void
hash4_avx2(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	hash_rows_avx2(2, in, len, counter, parent, out);
}

TARGET_AVX512 INLINE void
g16x(__m512i v[16], int a, int b, int c, int d, __m512i x, __m512i y)
{
	v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), x);
	v[d] = _mm512_ror_epi32(_mm512_xor_si512(v[d], v[a]), 16);
	v[c] = _mm512_add_epi32(v[c], v[d]);
	v[b] = _mm512_ror_epi32(_mm512_xor_si512(v[b], v[c]), 12);
	v[a] = _mm512_add_epi32(_mm512_add_epi32(v[a], v[b]), y);
	v[d] = _mm512_ror_epi32(_mm512_xor_si512(v[d], v[a]), 8);
	v[c] = _mm512_add_epi32(v[c], v[d]);
	v[b] = _mm512_ror_epi32(_mm512_xor_si512(v[b], v[c]), 7);
}

/* As transpose8x, with a 4x4 transpose of the 128-bit quarters to end. */
TARGET_AVX512 INLINE void
transpose16x(__m512i r[16])
{
	__m512i t[16], u[16];

#pragma GCC unroll 8
	for (int i = 0; i < 16; i += 2) {
		t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
		t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
	}
	/* u[4 * q + k]: in quarter Q, word 4 * Q + k of inputs 4 * q to 4 * q + 3 */
#pragma GCC unroll 4
	for (int i = 0; i < 16; i += 4) {
		u[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
		u[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
		u[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
		u[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
	}
#pragma GCC unroll 4
	for (int k = 0; k < 4; k++) {
		__m512i x0 = _mm512_shuffle_i32x4(u[k], u[k + 4], 0x44);
		__m512i x1 = _mm512_shuffle_i32x4(u[k], u[k + 4], 0xee);
		__m512i x2 = _mm512_shuffle_i32x4(u[k + 8], u[k + 12], 0x44);
		__m512i x3 = _mm512_shuffle_i32x4(u[k + 8], u[k + 12], 0xee);
		r[k] = _mm512_shuffle_i32x4(x0, x2, 0x88);
		r[k + 4] = _mm512_shuffle_i32x4(x0, x2, 0xdd);
		r[k + 8] = _mm512_shuffle_i32x4(x1, x3, 0x88);
		r[k + 12] = _mm512_shuffle_i32x4(x1, x3, 0xdd);
	}
}

/* Up to 16 inputs in 512-bit vectors. */
TARGET_AVX512 static void
hash16_avx512(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	struct lanes l;
	uint8_t pad[CHUNK];
	__m512i h[16], v[16], m[16], end, tail;

	lanes_init(&l, 16, in, len, counter, parent, pad);
	end = _mm512_loadu_si512(l.end);
	tail = _mm512_loadu_si512(l.tail);
	for (int j = 0; j < 8; j++)
		h[j] = _mm512_set1_epi32((int)IV[j]);
	for (uint32_t b = 0; b <= l.end[0]; b++) {
		__m512i bv = _mm512_set1_epi32((int)b);
		__mmask16 last = _mm512_cmpeq_epi32_mask(end, bv);
		__mmask16 live = _mm512_cmpge_epi32_mask(end, bv);
		uint32_t flags = parent ? PARENT : b == 0 ? CHUNK_START : 0;

		for (int i = 0; i < 16; i++)
			m[i] = _mm512_loadu_si512(l.p[i] + b * BLOCK);
		transpose16x(m);
		for (int j = 0; j < 8; j++) {
			v[j] = h[j];
			v[j + 8] = _mm512_set1_epi32((int)IV[j]);
		}
		v[12] = _mm512_loadu_si512(l.lo);
		v[13] = _mm512_loadu_si512(l.hi);
		v[14] = _mm512_mask_blend_epi32(last, _mm512_set1_epi32(BLOCK), tail);
		v[15] = _mm512_or_si512(_mm512_set1_epi32((int)flags),
					_mm512_maskz_set1_epi32(last, parent ? 0 : CHUNK_END));
#pragma GCC unroll 7
		for (int r = 0; r < 7; r++) {
			const uint8_t *s = SCHED[r];
			g16x(v, 0, 4, 8, 12, m[s[0]], m[s[1]]);
			g16x(v, 1, 5, 9, 13, m[s[2]], m[s[3]]);
			g16x(v, 2, 6, 10, 14, m[s[4]], m[s[5]]);
			g16x(v, 3, 7, 11, 15, m[s[6]], m[s[7]]);
			g16x(v, 0, 5, 10, 15, m[s[8]], m[s[9]]);
			g16x(v, 1, 6, 11, 12, m[s[10]], m[s[11]]);
			g16x(v, 2, 7, 8, 13, m[s[12]], m[s[13]]);
			g16x(v, 3, 4, 9, 14, m[s[14]], m[s[15]]);
		}
		for (int j = 0; j < 8; j++)
			h[j] = _mm512_mask_xor_epi32(h[j], live, v[j], v[j + 8]);
	}
	/* The transpose takes 16 rows and a chaining value has 8 words: rows
	 * 8 to 15 are zero and end up in the upper halves, not stored. */
	for (int j = 8; j < 16; j++)
		h[j] = _mm512_setzero_si512();
	transpose16x(h);
	for (size_t i = 0; i < 16 && i * (parent ? BLOCK : CHUNK) < len; i++)
		_mm256_storeu_si256((__m256i *)(out + i * CV), _mm512_castsi512_si256(h[i]));
}

/* Up to 4 inputs to a set of 512-bit vectors, each 128-bit quarter one
 * input's state rows as compress_rows() has them: more instructions per
 * input than the word-sliced hash16_avx512(), but fewer than it spends on
 * idle lanes when there are fewer than 9 inputs, and a set's four chains of
 * dependent instructions run side by side in about the time of one. The message words a round
 * takes, a quarter each from the input's own block, come from the blocks' quarters m[0..3] (m[q]:
 * words 4q to 4q + 3 of every input) by two two-source permutes and a
 * blend. */
TARGET_AVX512 INLINE void
g4r(__m512i *a, __m512i *b, __m512i *c, __m512i *d, __m512i x, __m512i y)
{
	*a = _mm512_add_epi32(_mm512_add_epi32(*a, x), *b);
	*d = _mm512_ror_epi32(_mm512_xor_si512(*d, *a), 16);
	*c = _mm512_add_epi32(*c, *d);
	*b = _mm512_ror_epi32(_mm512_xor_si512(*b, *c), 12);
	*a = _mm512_add_epi32(_mm512_add_epi32(*a, y), *b);
	*d = _mm512_ror_epi32(_mm512_xor_si512(*d, *a), 8);
	*c = _mm512_add_epi32(*c, *d);
	*b = _mm512_ror_epi32(_mm512_xor_si512(*b, *c), 7);
}

/* Words SCHED[r][w[0..3]] of every input's block, in a vector's quarters. */
TARGET_AVX512 INLINE __m512i
msg4r(const __m512i m[4], int r, const uint8_t w[4])
{
	uint32_t idx[16];
	__mmask16 hi = 0;

#pragma GCC unroll 16
	for (int i = 0; i < 16; i++) {
		uint32_t k = SCHED[r][w[i % 4]];

		idx[i] = (uint32_t)(i & ~3) + (k & 3) + (k & 4 ? 16 : 0);
		hi |= (__mmask16)((k >> 3) << i);
	}
	__m512i x = _mm512_loadu_si512(idx);
	return _mm512_mask_blend_epi32(hi, _mm512_permutex2var_epi32(m[0], x, m[1]),
				       _mm512_permutex2var_epi32(m[2], x, m[3]));
}

/* Up to 4 * sets inputs, 4 to a set of vectors. */
TARGET_AVX512 INLINE void
hash_rows(int sets, const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	/* which of a round's words the columns and diagonals take: the
	 * diagonals with rows 0, 2 and 3 turned, so that row 1, the last one
	 * computed, goes on without a shuffle */
	static const uint8_t w[4][4] = {
	    {0, 2, 4, 6}, {1, 3, 5, 7}, {14, 8, 10, 12}, {15, 9, 11, 13}};
	struct lanes l;
	uint8_t pad[CHUNK];
	uint32_t cvs[2][2][16];
	__m512i h[2][2], row3[2][2];

	lanes_init(&l, 4 * sets, in, len, counter, parent, pad);
	/* row 3 of each input's state: its counter, block length and flags,
	 * for its blocks but the last ([0]) and for its last ([1]) */
	for (int s = 0; s < sets; s++) {
		row3[s][0] = row3[s][1] = _mm512_setzero_si512();
		for (int i = 0; i < 4; i++) {
			uint32_t f = parent ? PARENT : 0, e = parent ? 0 : CHUNK_END;
			int j = 4 * s + i;

			row3[s][0] = _mm512_mask_broadcast_i32x4(
			    row3[s][0], (__mmask16)(0xf << 4 * i),
			    _mm_setr_epi32((int)l.lo[j], (int)l.hi[j], BLOCK, (int)f));
			row3[s][1] = _mm512_mask_broadcast_i32x4(
			    row3[s][1], (__mmask16)(0xf << 4 * i),
			    _mm_setr_epi32((int)l.lo[j], (int)l.hi[j], (int)l.tail[j],
					   (int)(f | e)));
		}
		h[s][0] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)IV));
		h[s][1] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(IV + 4)));
	}
	for (uint32_t b = 0; b <= l.end[0]; b++) {
		__m512i a[2], bb[2], c[2], d[2], m[2][4];
		__mmask16 last[2] = {0}, live[2] = {0};

#pragma GCC unroll 2
		for (int s = 0; s < sets; s++) {
			__m512i x[4];

			for (int i = 0; i < 4; i++) {
				uint32_t e = l.end[4 * s + i];

				last[s] |= (__mmask16)((e == b ? 0xf : 0) << 4 * i);
				live[s] |= (__mmask16)((e >= b ? 0xf : 0) << 4 * i);
				x[i] = _mm512_loadu_si512(l.p[4 * s + i] + b * BLOCK);
			}
			/* x[i] has input i's block; m[s][q] its quarter q of each */
			for (int k = 0; k < 2; k++) {
				__m512i lo = _mm512_shuffle_i32x4(x[2 * k], x[2 * k + 1], 0x44);
				__m512i hi = _mm512_shuffle_i32x4(x[2 * k], x[2 * k + 1], 0xee);
				x[2 * k] = lo, x[2 * k + 1] = hi;
			}
			m[s][0] = _mm512_shuffle_i32x4(x[0], x[2], 0x88);
			m[s][1] = _mm512_shuffle_i32x4(x[0], x[2], 0xdd);
			m[s][2] = _mm512_shuffle_i32x4(x[1], x[3], 0x88);
			m[s][3] = _mm512_shuffle_i32x4(x[1], x[3], 0xdd);
			a[s] = h[s][0], bb[s] = h[s][1];
			c[s] = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)IV));
			d[s] = _mm512_mask_blend_epi32(last[s], row3[s][0], row3[s][1]);
			if (b == 0 && !parent)
				d[s] =
				    _mm512_or_si512(d[s], _mm512_set4_epi32(CHUNK_START, 0, 0, 0));
		}
#pragma GCC unroll 7
		for (int r = 0; r < 7; r++) {
#pragma GCC unroll 2
			for (int s = 0; s < sets; s++) {
				g4r(&a[s], &bb[s], &c[s], &d[s], msg4r(m[s], r, w[0]),
				    msg4r(m[s], r, w[1]));
				a[s] = _mm512_shuffle_epi32(a[s], _MM_SHUFFLE(2, 1, 0, 3));
				c[s] = _mm512_shuffle_epi32(c[s], _MM_SHUFFLE(0, 3, 2, 1));
				d[s] = _mm512_shuffle_epi32(d[s], _MM_SHUFFLE(1, 0, 3, 2));
			}
#pragma GCC unroll 2
			for (int s = 0; s < sets; s++) {
				g4r(&a[s], &bb[s], &c[s], &d[s], msg4r(m[s], r, w[2]),
				    msg4r(m[s], r, w[3]));
				a[s] = _mm512_shuffle_epi32(a[s], _MM_SHUFFLE(0, 3, 2, 1));
				c[s] = _mm512_shuffle_epi32(c[s], _MM_SHUFFLE(2, 1, 0, 3));
				d[s] = _mm512_shuffle_epi32(d[s], _MM_SHUFFLE(1, 0, 3, 2));
			}
		}
#pragma GCC unroll 2
		for (int s = 0; s < sets; s++) {
			h[s][0] = _mm512_mask_xor_epi32(h[s][0], live[s], a[s], c[s]);
			h[s][1] = _mm512_mask_xor_epi32(h[s][1], live[s], bb[s], d[s]);
		}
	}
	for (int s = 0; s < sets; s++) {
		_mm512_storeu_si512(cvs[s][0], h[s][0]);
		_mm512_storeu_si512(cvs[s][1], h[s][1]);
	}
	for (size_t i = 0; i < 4 * (size_t)sets && i * (parent ? BLOCK : CHUNK) < len; i++) {
		memcpy(out + i * CV, cvs[i / 4][0] + 4 * (i % 4), 16);
		memcpy(out + i * CV + 16, cvs[i / 4][1] + 4 * (i % 4), 16);
	}
}

TARGET_AVX512 static void
hash4_avx512(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	hash_rows(1, in, len, counter, parent, out);
}

TARGET_AVX512 static void
hash8r_avx512(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	hash_rows(2, in, len, counter, parent, out);
}

/* XCR0: which register states the kernel saves (YMM: bits 1-2; ZMM: 5-7). */
static uint64_t
xcr0(void)
{
	uint32_t lo, hi;

	__asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (uint64_t)hi << 32 | lo;
}

static int
cpu_path(void)
{
	unsigned a, b, c, d;
	uint64_t x;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) /* OSXSAVE */
		return AGD_BLAKE3_PORTABLE;
	x = xcr0();
	if ((x & 0x06) != 0x06 || !__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(b & (1u << 5)))
		return AGD_BLAKE3_PORTABLE;
	if ((x & 0xe6) == 0xe6 && (b & (1u << 16)) && (b & (1u << 31))) /* AVX512F, AVX512VL */
		return AGD_BLAKE3_AVX512;
	return AGD_BLAKE3_AVX2;
}
#else
static int
cpu_path(void)
{
	return AGD_BLAKE3_PORTABLE;
}
#endif

static int best = -1, forced = AGD_BLAKE3_AUTO;

static int
path(void)
{
	int f = __atomic_load_n(&forced, __ATOMIC_RELAXED);
	int b = __atomic_load_n(&best, __ATOMIC_RELAXED);

	if (f != AGD_BLAKE3_AUTO)
		return f;
	if (b < 0) {
		b = cpu_path();
		__atomic_store_n(&best, b, __ATOMIC_RELAXED);
	}
	return b;
}

int
agd_blake3_force(int p)
{
	if (p != AGD_BLAKE3_AUTO && (p < AGD_BLAKE3_PORTABLE || p > cpu_path()))
		return -ENOTSUP;
	__atomic_store_n(&forced, p, __ATOMIC_RELAXED);
	return 0;
}

static void
compress(uint32_t cv[8], const uint8_t block[BLOCK], uint64_t counter, uint32_t len, uint32_t flags)
{
	switch (path()) {
#if defined(__x86_64__)
	case AGD_BLAKE3_AVX512:
		compress_avx512(cv, block, counter, len, flags);
		return;
	case AGD_BLAKE3_AVX2:
		compress_avx2(cv, block, counter, len, flags);
		return;
#endif
	default:
		compress_portable(cv, block, counter, len, flags);
	}
}

/* A compression not done yet: the last of a chunk, or a parent's. It gives
 * the chaining value, or the digest with ROOT if nothing follows. */
struct node {
	uint32_t cv[8];
	uint8_t block[BLOCK];
	uint64_t counter;
	uint32_t len, flags;
};

static void
chunk_node(const uint8_t *in, size_t len, uint64_t counter, struct node *ret)
{
	memcpy(ret->cv, IV, sizeof(ret->cv));
	ret->counter = counter;
	ret->flags = CHUNK_START;
	for (; len > BLOCK; in += BLOCK, len -= BLOCK) {
		compress(ret->cv, in, counter, BLOCK, ret->flags);
		ret->flags = 0;
	}
	memset(ret->block, 0, BLOCK);
	if (len > 0) /* in is NULL for an empty input */
		memcpy(ret->block, in, len);
	ret->len = (uint32_t)len;
	ret->flags |= CHUNK_END;
}

static void
parent_node(const uint8_t pair[2 * CV], struct node *ret)
{
	memcpy(ret->cv, IV, sizeof(ret->cv));
	memcpy(ret->block, pair, BLOCK);
	ret->counter = 0;
	ret->len = BLOCK;
	ret->flags = PARENT;
}

static void
node_finish(struct node *n, uint32_t flags, uint8_t out[CV])
{
	compress(n->cv, n->block, n->counter, n->len, n->flags | flags);
	store_cv(out, n->cv);
}

/* One chunk of len bytes (counter: its index), or one parent (in: the pair
 * of its children's chaining values), to its chaining value. */
static void
hash_one(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t out[CV])
{
	struct node n;

	if (parent)
		parent_node(in, &n);
	else
		chunk_node(in, len, counter, &n);
	node_finish(&n, 0, out);
}

/* The chunks of len bytes at in (counter: the first one's index), or the
 * parents of the len / 64 chaining value pairs at in, to chaining values at
 * out. For parents, out may be in: each group of pairs is read before its
 * parents are written, and those land below the pairs still to read. */
static void
hash_many(const uint8_t *in, size_t len, uint64_t counter, bool parent, uint8_t *out)
{
	size_t stride = parent ? BLOCK : CHUNK;
#if defined(__x86_64__)
	int p = path();
#endif

	while (len > 0) {
		size_t n = (len + stride - 1) / stride, k = 1, l;
		void (*hash)(const uint8_t *, size_t, uint64_t, bool, uint8_t *) = hash_one;

#if defined(__x86_64__)
		/* Spare lanes cost as much as used ones, so 9 inputs take 16
		 * lanes rather than 8 and 8. Up to 8 inputs (AVX-512) or 4
		 * (AVX2) go in rows instead, in half to two thirds of the time
		 * of 8 lanes (12 in rows take as long as 16 lanes); one goes
		 * alone, in four-word vectors (compress_rows()). */
		if (p == AGD_BLAKE3_AVX512 && n > 8)
			hash = hash16_avx512, k = 16;
		else if (p == AGD_BLAKE3_AVX512 && n > 4)
			hash = hash8r_avx512, k = 8;
		else if (p == AGD_BLAKE3_AVX512 && n > 1)
			hash = hash4_avx512, k = 4;
		else if (p == AGD_BLAKE3_AVX2 && n > 4)
			hash = hash8_avx2, k = 8;
		else if (p == AGD_BLAKE3_AVX2 && n > 2)
			hash = hash4_avx2, k = 4;
		else if (p == AGD_BLAKE3_AVX2 && n > 1)
			hash = hash2_avx2, k = 2;
#endif
		k = n < k ? n : k;
		l = len < k * stride ? len : k * stride;
		hash(in, l, counter, parent, out);
		in += l, len -= l, out += k * CV, counter += k;
	}
}

/* The top node of the tree over len bytes at in (at most SUBTREE chunks, the
 * first one's index counter). */
static void
subtree(const uint8_t *in, size_t len, uint64_t counter, struct node *ret)
{
	uint8_t cvs[SUBTREE * CV];
	size_t n = (len + CHUNK - 1) / CHUNK;

	if (len <= CHUNK) {
		chunk_node(in, len, counter, ret);
		return;
	}
	hash_many(in, len, counter, false, cvs);
	/* Level by level: pairing the nodes of a level from the left, an odd
	 * last one going up alone, makes the left-balanced tree. */
	for (; n > 2; n = (n + 1) / 2) {
		hash_many(cvs, n / 2 * BLOCK, 0, true, cvs);
		if (n % 2)
			memmove(cvs + n / 2 * CV, cvs + (n - 1) * CV, CV);
	}
	parent_node(cvs, ret);
}

void
agd_blake3(const void *buf, size_t len, uint8_t out[AGD_BLAKE3_LEN])
{
	const uint8_t *in = buf;
	/* One chaining value per set bit of the count of whole subtrees: at
	 * most 64 - 16 of them (a subtree is 2^16 bytes). */
	uint8_t stack[48][CV], pair[2 * CV];
	size_t depth = 0;
	uint64_t done = 0;
	struct node top;

	/* Longer inputs: whole subtrees while more input follows. The left
	 * subtree of a node being a power of two, two subtrees of a size merge
	 * as soon as both are done; the k-th subtree ends as many merges as k
	 * has trailing zero bits. */
	for (; len > SUBTREE * CHUNK; in += SUBTREE * CHUNK, len -= SUBTREE * CHUNK) {
		subtree(in, SUBTREE * CHUNK, done * SUBTREE, &top);
		node_finish(&top, 0, pair + CV);
		for (uint64_t k = ++done; !(k & 1); k >>= 1) {
			memcpy(pair, stack[--depth], CV);
			parent_node(pair, &top);
			node_finish(&top, 0, pair + CV);
		}
		memcpy(stack[depth++], pair + CV, CV);
	}
	/* The last subtree, then what is left on the stack, right to left. */
	subtree(in, len, done * SUBTREE, &top);
	while (depth > 0) {
		memcpy(pair, stack[--depth], CV);
		node_finish(&top, 0, pair + CV);
		parent_node(pair, &top);
	}
	node_finish(&top, ROOT, out);
}

void
agd_blake3_hex(const void *buf, size_t len, char out[AGD_BLAKE3_HEX])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t d[AGD_BLAKE3_LEN];

	agd_blake3(buf, len, d);
	for (int i = 0; i < AGD_BLAKE3_LEN; i++) {
		out[2 * i] = hex[d[i] >> 4];
		out[2 * i + 1] = hex[d[i] & 15];
	}
	out[AGD_BLAKE3_HEX - 1] = '\0';
}
