/* Globs: '*' within one segment, '**' across segments, '?' one byte, '\' escapes.
 * Compiled to a token list and matched by NFA simulation over a bitset, so a
 * hostile subject cannot make matching super-linear whatever the pattern. */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "policy/policy_int.h"

void
pglob_done(struct pglob *g)
{
	if (!g)
		return;
	free(g->src);
	free(g->tok);
	free(g->prefix);
	free(g->root);
	free(g->cls);
	free(g->adv);
	memset(g, 0, sizeof(*g));
}

/* Literal directory prefix used as the root tools open beneath: everything before
 * the segment holding the first wildcard; for a fully literal path its parent. */
static char *
path_root_of(const struct pglob *g)
{
	uint32_t n = 0;

	while (n < g->ntok && g->tok[n].kind == PTOK_LIT)
		n++;
	/* back to the last '/': for a fully literal path this is its parent, so a
	 * symlink at that name is still resolved beneath the root */
	while (n > 0 && g->tok[n - 1].c != '/')
		n--;
	/* drop the trailing '/' unless it is the root itself */
	if (n > 1)
		n--;
	if (n == 0)
		return strdup("/");
	char *root = malloc(n + 1);
	if (!root)
		return NULL;
	for (uint32_t i = 0; i < n; i++)
		root[i] = (char)g->tok[i].c;
	root[n] = '\0';
	return root;
}

static int compile_fast(struct pglob *g);

int
pglob_compile(const char *src, char sep, struct pglob *ret)
{
	size_t len = strlen(src);
	struct pglob g = {.sep = sep, .literal = true};
	uint32_t n = 0;

	if (len == 0 || len > PGLOB_MAX_LEN)
		return -EINVAL;
	g.tok = calloc(len + 1, sizeof(*g.tok));
	g.src = strdup(src);
	g.prefix = malloc(len + 1);
	if (!g.tok || !g.src || !g.prefix) {
		pglob_done(&g);
		return -ENOMEM;
	}
	for (size_t i = 0; i < len; i++) {
		char c = src[i];
		if (c == '\\') {
			if (i + 1 == len) {
				pglob_done(&g);
				return -EINVAL;
			}
			g.tok[n++] = (struct ptok){.kind = PTOK_LIT, .c = (uint8_t)src[++i]};
		} else if (c == '?') {
			g.tok[n++] = (struct ptok){.kind = PTOK_ANY1};
		} else if (c == '*') {
			bool dbl = i + 1 < len && src[i + 1] == '*';
			if (dbl)
				i++;
			/* '***' and beyond mean the same as '**' */
			while (dbl && i + 1 < len && src[i + 1] == '*')
				i++;
			g.tok[n++] =
			    (struct ptok){.kind = (dbl || sep == 0) ? PTOK_DSTAR : PTOK_STAR};
		} else {
			g.tok[n++] = (struct ptok){.kind = PTOK_LIT, .c = (uint8_t)c};
		}
	}
	g.ntok = n;
	/* Zero-segment forms of a double star next to separators: "x/" DSTAR matches
	 * "x", "x/" DSTAR "/y" matches "x/y", and a leading DSTAR "/y" matches "/y". */
	for (uint32_t i = 0; sep && i < n; i++) {
		if (g.tok[i].kind != PTOK_DSTAR)
			continue;
		bool sep_before = i > 0 && g.tok[i - 1].kind == PTOK_LIT && g.tok[i - 1].c == sep;
		bool sep_after =
		    i + 1 < n && g.tok[i + 1].kind == PTOK_LIT && g.tok[i + 1].c == sep;
		/* The jump starts before the separator, never from the star's own
		 * self-looping state: "a/ ** /z" must not match "a/b/cz". */
		if (sep_before && (sep_after || i + 1 == n))
			g.tok[i - 1].eps2 = 1;
		else if (i == 0 && sep_after)
			g.tok[0].eps2 = 2; /* only from the start state, see initial() */
	}
	uint32_t p = 0;
	while (p < n && g.tok[p].kind == PTOK_LIT && !g.tok[p].eps2) {
		g.prefix[p] = (char)g.tok[p].c;
		p++;
	}
	g.prefix[p] = '\0';
	g.prefix_len = p;
	g.literal = true;
	for (uint32_t i = 0; i < n; i++)
		if (g.tok[i].kind != PTOK_LIT)
			g.literal = false;
	if (g.literal) {
		/* escapes removed: src becomes the literal itself */
		for (uint32_t i = 0; i < n; i++)
			g.src[i] = (char)g.tok[i].c;
		g.src[n] = '\0';
	}
	if (compile_fast(&g) < 0) {
		pglob_done(&g);
		return -ENOMEM;
	}
	if (sep == '/') {
		g.root = path_root_of(&g);
		if (!g.root) {
			pglob_done(&g);
			return -ENOMEM;
		}
	}
	*ret = g;
	return 0;
}

#define BIT_SET(b, i)  ((b)[(i) >> 6] |= (uint64_t)1 << ((i)&63))
#define BIT_TEST(b, i) (((b)[(i) >> 6] >> ((i)&63)) & 1)

/* Add the epsilon successors of every state in b. Epsilons only move forward, so
 * one pass in increasing order, revisiting bits it adds, reaches the fixpoint. */
static void
closure(const struct pglob *g, uint64_t *b)
{
	size_t nw = (g->ntok + 1 + 63) / 64;

	for (size_t w = 0; w < nw; w++) {
		uint64_t bits = b[w];
		while (bits) {
			uint32_t i = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
			bits &= bits - 1;
			if (i >= g->ntok)
				continue;
			const struct ptok *t = &g->tok[i];
			uint32_t succ[2], ns = 0;
			if (t->kind == PTOK_STAR || t->kind == PTOK_DSTAR)
				succ[ns++] = i + 1;
			if (t->eps2 == 1)
				succ[ns++] = i + 2;
			for (uint32_t k = 0; k < ns; k++) {
				uint32_t j = succ[k];
				if (BIT_TEST(b, j))
					continue;
				BIT_SET(b, j);
				if ((j >> 6) == w)
					bits |= (uint64_t)1 << (j & 63);
			}
		}
	}
}

static uint64_t
closure_fast(const struct pglob *g, uint64_t x)
{
	for (;;) {
		uint64_t add = ((x & g->m_eps1) << 1) | ((x & g->m_eps2) << 2);
		if ((add & ~x) == 0)
			return x;
		x |= add;
	}
}

/* Precompute the single-word form (see struct pglob). */
static int
compile_fast(struct pglob *g)
{
	uint8_t ncls = 2; /* 0: other bytes, 1: the separator */

	if (g->ntok >= 63)
		return 0;
	g->cls = calloc(256, 1);
	g->adv = calloc(g->ntok + 2, sizeof(uint64_t));
	if (!g->cls || !g->adv)
		return -ENOMEM;
	if (g->sep)
		g->cls[(uint8_t)g->sep] = 1;
	for (uint32_t i = 0; i < g->ntok; i++) {
		const struct ptok *t = &g->tok[i];
		uint64_t bit = (uint64_t)1 << i;
		if (t->kind == PTOK_LIT && g->cls[t->c] == 0 &&
		    !(g->sep && t->c == (uint8_t)g->sep))
			g->cls[t->c] = ncls++;
		if (t->kind == PTOK_STAR || t->kind == PTOK_DSTAR) {
			g->m_loop |= bit;
			g->m_eps1 |= bit;
		}
		if (t->kind == PTOK_DSTAR)
			g->m_dstar |= bit;
		if (t->eps2 == 1)
			g->m_eps2 |= bit;
	}
	for (uint32_t i = 0; i < g->ntok; i++) {
		const struct ptok *t = &g->tok[i];
		uint64_t bit = (uint64_t)1 << i;
		if (t->kind == PTOK_LIT)
			g->adv[g->cls[t->c]] |= bit;
		else if (t->kind == PTOK_ANY1)
			for (uint8_t c = 0; c < ncls; c++)
				if (c != 1 || !g->sep)
					g->adv[c] |= bit;
	}
	uint64_t init = (uint64_t)1 << g->prefix_len;
	if (g->prefix_len == 0 && g->ntok > 0 && g->tok[0].eps2 == 2)
		init |= (uint64_t)1 << 2;
	g->m_init = closure_fast(g, init);
	g->fast = true;
	return 0;
}

/* The start state set: state 0 and its closure, plus the skip of a leading
 * double star and its separator, which is only possible before any byte is read. */
static void
initial(const struct pglob *g, uint64_t *b, uint32_t start)
{
	BIT_SET(b, start);
	if (start == 0 && g->ntok > 0 && g->tok[0].eps2 == 2)
		BIT_SET(b, 2);
	closure(g, b);
}

static bool
any_set(const uint64_t *b, size_t nw)
{
	for (size_t w = 0; w < nw; w++)
		if (b[w])
			return true;
	return false;
}

bool
pglob_match(const struct pglob *g, const char *s, size_t len)
{
	uint64_t cur[PGLOB_MAX_WORDS], next[PGLOB_MAX_WORDS];
	size_t nw = (g->ntok + 1 + 63) / 64;

	if (g->literal)
		return len == g->ntok && memcmp(s, g->src, len) == 0;
	if (len < g->prefix_len || memcmp(s, g->prefix, g->prefix_len) != 0)
		return false;
	if (g->fast) {
		uint64_t x = g->m_init;
		uint8_t sep = (uint8_t)g->sep;
		for (size_t k = g->prefix_len; k < len; k++) {
			uint8_t c = (uint8_t)s[k];
			uint64_t stay = x & ((sep && c == sep) ? g->m_dstar : g->m_loop);
			x = ((x & g->adv[g->cls[c]]) << 1) | stay;
			if (!x)
				return false;
			x = closure_fast(g, x);
		}
		return (x >> g->ntok) & 1;
	}
	memset(cur, 0, nw * sizeof(uint64_t));
	initial(g, cur, g->prefix_len);
	for (size_t k = g->prefix_len; k < len; k++) {
		uint8_t c = (uint8_t)s[k];
		bool is_sep = g->sep && c == (uint8_t)g->sep;
		memset(next, 0, nw * sizeof(uint64_t));
		for (size_t w = 0; w < nw; w++) {
			uint64_t bits = cur[w];
			while (bits) {
				uint32_t i = (uint32_t)(w * 64 + (size_t)__builtin_ctzll(bits));
				bits &= bits - 1;
				if (i >= g->ntok)
					continue;
				const struct ptok *t = &g->tok[i];
				switch (t->kind) {
				case PTOK_LIT:
					if (t->c == c)
						BIT_SET(next, i + 1);
					break;
				case PTOK_ANY1:
					if (!is_sep)
						BIT_SET(next, i + 1);
					break;
				case PTOK_STAR:
					if (!is_sep)
						BIT_SET(next, i);
					break;
				case PTOK_DSTAR:
					BIT_SET(next, i);
					break;
				}
			}
		}
		closure(g, next);
		if (!any_set(next, nw))
			return false;
		memcpy(cur, next, nw * sizeof(uint64_t));
	}
	return BIT_TEST(cur, g->ntok);
}

/* Coverage check by a product of the two NFAs: U[a] holds the states of d that d
 * reaches on *every* string that takes a to its state a. Self-loops of a are only
 * survived by d's states that loop on at least the same bytes, which makes this an
 * under-approximation: a true answer is always right, a false one may be missed. */
bool
pglob_covers(const struct pglob *d, const struct pglob *a)
{
	size_t nw = (d->ntok + 1 + 63) / 64;
	size_t na = a->ntok + 1;
	bool ok = false;

	if (d->sep != a->sep)
		return false;
	uint64_t *u = calloc(na * nw, sizeof(uint64_t));
	bool *seen = calloc(na, sizeof(bool));
	uint64_t *tmp = calloc(nw, sizeof(uint64_t));
	uint64_t *init = calloc(nw, sizeof(uint64_t));
	if (!u || !seen || !tmp || !init)
		goto out;

		/* intersect contribution `c` into state b */
#define CONTRIBUTE(b, c)                                                                           \
	do {                                                                                       \
		uint64_t *dst_ = u + (size_t)(b)*nw;                                               \
		if (!seen[b]) {                                                                    \
			memcpy(dst_, (c), nw * sizeof(uint64_t));                                  \
			seen[b] = true;                                                            \
		} else {                                                                           \
			for (size_t w_ = 0; w_ < nw; w_++)                                         \
				dst_[w_] &= (c)[w_];                                               \
		}                                                                                  \
	} while (0)

	initial(d, init, 0);
	CONTRIBUTE(0, init);
	for (uint32_t ai = 0; ai < a->ntok; ai++) {
		if (!seen[ai])
			continue;
		uint64_t *cur = u + (size_t)ai * nw;
		const struct ptok *at = &a->tok[ai];
		bool loops = at->kind == PTOK_STAR || at->kind == PTOK_DSTAR;

		if (loops) {
			/* keep only d states that absorb any byte a's loop can take */
			for (uint32_t di = 0; di < d->ntok; di++) {
				if (!BIT_TEST(cur, di))
					continue;
				const struct ptok *dt = &d->tok[di];
				bool keep = dt->kind == PTOK_DSTAR ||
					    (dt->kind == PTOK_STAR && at->kind == PTOK_STAR);
				if (!keep)
					cur[di >> 6] &= ~((uint64_t)1 << (di & 63));
			}
			cur[d->ntok >> 6] &= ~((uint64_t)1 << (d->ntok & 63));
			closure(d, cur);
			CONTRIBUTE(ai + 1, cur);
		} else {
			memset(tmp, 0, nw * sizeof(uint64_t));
			for (uint32_t di = 0; di < d->ntok; di++) {
				if (!BIT_TEST(cur, di))
					continue;
				const struct ptok *dt = &d->tok[di];
				if (at->kind == PTOK_LIT) {
					bool is_sep = d->sep && at->c == (uint8_t)d->sep;
					if ((dt->kind == PTOK_LIT && dt->c == at->c) ||
					    (dt->kind == PTOK_ANY1 && !is_sep))
						BIT_SET(tmp, di + 1);
					else if (dt->kind == PTOK_DSTAR ||
						 (dt->kind == PTOK_STAR && !is_sep))
						BIT_SET(tmp, di);
				} else { /* ANY1: any non-separator byte */
					if (dt->kind == PTOK_ANY1)
						BIT_SET(tmp, di + 1);
					else if (dt->kind == PTOK_STAR || dt->kind == PTOK_DSTAR)
						BIT_SET(tmp, di);
				}
			}
			closure(d, tmp);
			CONTRIBUTE(ai + 1, tmp);
		}
		if (at->eps2 == 1)
			CONTRIBUTE(ai + 2, cur);
		else if (at->eps2 == 2 && ai == 0)
			CONTRIBUTE(2, init); /* from a's start state, before any byte */
	}
#undef CONTRIBUTE
	ok = seen[a->ntok] && BIT_TEST(u + (size_t)a->ntok * nw, d->ntok);
out:
	free(u);
	free(seen);
	free(tmp);
	free(init);
	return ok;
}
