/* The rule index that keeps policy_eval fast on large policies.
 *
 * Level 1 picks a bucket by tool name: literal tool names get their own bucket
 * (which already includes the wildcard rules that match that name), other names
 * fall back to the bucket of their longest dotted prefix that wildcard patterns
 * start with ("fs" for "fs.list" under "fs.*") or to the
 * residual bucket. Each bucket lists its rules in precedence order.
 *
 * Level 2, inside a bucket: a rule with a path matcher can only match paths
 * beneath (or equal to) the root of one of its globs, and a rule whose hosts are
 * all literal only matches those hosts. Such rules are keyed by root or host; a
 * call looks up the ancestors of its path and its host, and merges those short
 * lists with the rules that have no key. */
#include <errno.h>
#include <string.h>

#include "common/util.h"
#include "policy/policy_int.h"

uint32_t
pindex_hash_step(uint32_t h, uint8_t c)
{
	return (h ^ c) * 16777619u;
}

static uint32_t
hash_mem(const char *s, size_t len)
{
	uint32_t h = PINDEX_HASH_INIT;

	for (size_t i = 0; i < len; i++)
		h = pindex_hash_step(h, (uint8_t)s[i]);
	return h;
}

static void
bucket_done(struct policy_bucket *b)
{
	free(b->name);
	free(b->idx);
	free(b->always);
	for (size_t i = 0; i < b->keys_size; i++) {
		free(b->keys[i].key);
		free(b->keys[i].pos);
	}
	free(b->keys);
}

void
pindex_free(struct policy *p)
{
	for (size_t i = 0; i < p->tab_size; i++)
		bucket_done(&p->tab[i]);
	free(p->tab);
	for (size_t i = 0; i < p->groups_size; i++)
		bucket_done(&p->groups[i]);
	free(p->groups);
	bucket_done(&p->residual);
}

/* Sort rule indices by precedence: deny, ask, allow, then document order.
 * Insertion sort: C17 qsort has no context argument, and this runs once. */
static void
sort_idx(const struct policy_rule *rules, uint32_t *v, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		uint32_t x = v[i];
		size_t j = i;
		while (j > 0) {
			const struct policy_rule *a = &rules[v[j - 1]], *b = &rules[x];
			if (a->decision < b->decision ||
			    (a->decision == b->decision && a->index < b->index))
				break;
			v[j] = v[j - 1];
			j--;
		}
		v[j] = x;
	}
}

/* The group key of a wildcard tool pattern: its longest literal dotted prefix
 * ("mcp.github" for "mcp.github.*", "fs" for "fs.*"), decoded into buf; 0 if it
 * has none ("*", "fs*"). Only names starting with "<key>." can match it. */
static size_t
group_key(const struct pglob *g, char *buf, size_t bufsz)
{
	size_t n = 0, key = 0;

	for (uint32_t i = 0; i < g->ntok && g->tok[i].kind == PTOK_LIT && n + 1 < bufsz; i++) {
		if (g->tok[i].c == '.')
			key = n;
		buf[n++] = (char)g->tok[i].c;
	}
	buf[key] = '\0';
	return key;
}

static struct policy_bucket *
table_slot(struct policy_bucket *tab, size_t size, const char *name, size_t len, uint32_t h)
{
	size_t s = h & (size - 1);

	while (tab[s].name && !(tab[s].hash == h && strlen(tab[s].name) == len &&
				memcmp(tab[s].name, name, len) == 0))
		s = (s + 1) & (size - 1);
	return &tab[s];
}

static const struct policy_bucket *
table_find(const struct policy_bucket *tab, size_t size, const char *name, size_t len)
{
	if (!size)
		return NULL;
	uint32_t h = hash_mem(name, len);
	size_t s = h & (size - 1);

	while (tab[s].name) {
		if (tab[s].hash == h && strncmp(tab[s].name, name, len) == 0 &&
		    tab[s].name[len] == '\0')
			return &tab[s];
		s = (s + 1) & (size - 1);
	}
	return NULL;
}

static int
key_add(struct policy_bucket *b, const char *key, uint32_t pos)
{
	size_t len = strlen(key);
	uint32_t h = hash_mem(key, len);
	size_t s = h & (b->keys_size - 1);

	while (b->keys[s].key && !(b->keys[s].hash == h && b->keys[s].len == len &&
				   memcmp(b->keys[s].key, key, len) == 0))
		s = (s + 1) & (b->keys_size - 1);
	struct pkey *k = &b->keys[s];
	if (!k->key) {
		if (!(k->key = strdup(key)))
			return -ENOMEM;
		k->len = (uint32_t)len;
		k->hash = h;
	}
	if (k->n && k->pos[k->n - 1] == pos)
		return 0; /* a rule with two globs under the same root */
	if (k->n == k->cap) {
		uint32_t cap = k->cap ? k->cap * 2 : 4;
		uint32_t *np = realloc(k->pos, cap * sizeof(uint32_t));
		if (!np)
			return -ENOMEM;
		k->pos = np;
		k->cap = cap;
	}
	k->pos[k->n++] = pos;
	return 0;
}

static bool
hosts_literal(const struct policy_rule *r)
{
	for (size_t i = 0; i < r->n_hosts; i++)
		if (!r->hosts[i].literal)
			return false;
	return r->n_hosts > 0 && r->n_cidrs == 0;
}

/* Sort the bucket and build its sub-index. */
static int
bucket_finish(const struct policy *p, struct policy_bucket *b)
{
	size_t n_keys = 0;

	sort_idx(p->rules, b->idx, b->n);
	b->always = calloc(b->n + 1, sizeof(uint32_t));
	if (!b->always)
		return -ENOMEM;
	for (size_t j = 0; j < b->n; j++) {
		const struct policy_rule *r = &p->rules[b->idx[j]];
		n_keys += r->n_paths ? r->n_paths : hosts_literal(r) ? r->n_hosts : 0;
	}
	/* a sub-index only pays off with enough rules to skip */
	if (n_keys == 0 || b->n < 8) {
		for (size_t j = 0; j < b->n; j++)
			b->always[b->n_always++] = (uint32_t)j;
		return 0;
	}
	b->keys_size = 8;
	while (b->keys_size < n_keys * 2)
		b->keys_size *= 2;
	b->keys = calloc(b->keys_size, sizeof(*b->keys));
	if (!b->keys)
		return -ENOMEM;
	for (size_t j = 0; j < b->n; j++) {
		const struct policy_rule *r = &p->rules[b->idx[j]];
		int ret = 0;
		if (r->n_paths) {
			b->path_keys = true;
			for (size_t k = 0; k < r->n_paths && ret == 0; k++)
				ret = key_add(b, r->paths[k].root, (uint32_t)j);
		} else if (hosts_literal(r)) {
			b->host_keys = true;
			for (size_t k = 0; k < r->n_hosts && ret == 0; k++)
				ret = key_add(b, r->hosts[k].src, (uint32_t)j);
		} else {
			b->always[b->n_always++] = (uint32_t)j;
		}
		if (ret < 0)
			return ret;
	}
	return 0;
}

int
pindex_build(struct policy *p)
{
	size_t n_lit = 0, n_groups = 0;
	char key[PGLOB_MAX_LEN + 1];
	int r;

	for (size_t i = 0; i < p->n_rules; i++) {
		if (p->rules[i].tool.literal)
			n_lit++;
		else
			n_groups++;
	}
	p->tab_size = 8;
	while (p->tab_size < n_lit * 2)
		p->tab_size *= 2;
	p->groups_size = 8;
	while (p->groups_size < n_groups * 2)
		p->groups_size *= 2;
	p->tab = calloc(p->tab_size, sizeof(*p->tab));
	p->groups = calloc(p->groups_size, sizeof(*p->groups));
	p->residual.idx = calloc(p->n_rules + 1, sizeof(uint32_t));
	if (!p->tab || !p->groups || !p->residual.idx)
		return -ENOMEM;
	p->residual.check_tool = true;

	/* create buckets: literal names and first labels */
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct pglob *t = &p->rules[i].tool;
		struct policy_bucket *b;
		size_t fl;
		if (t->literal) {
			size_t len = strlen(t->src);
			b = table_slot(p->tab, p->tab_size, t->src, len, hash_mem(t->src, len));
			if (!b->name && !(b->name = strdup(t->src)))
				return -ENOMEM;
			b->hash = hash_mem(t->src, len);
		} else if ((fl = group_key(t, key, sizeof(key)))) {
			uint32_t h = hash_mem(key, fl);
			b = table_slot(p->groups, p->groups_size, key, fl, h);
			if (!b->name && !(b->name = strndup(key, fl)))
				return -ENOMEM;
			b->hash = h;
			b->check_tool = true;
		} else {
			p->residual.idx[p->residual.n++] = (uint32_t)i;
		}
	}
	/* fill them: every rule whose tool pattern can match names of the bucket */
	for (size_t pass = 0; pass < 2; pass++) {
		struct policy_bucket *tab = pass ? p->groups : p->tab;
		size_t size = pass ? p->groups_size : p->tab_size;
		for (size_t s = 0; s < size; s++) {
			struct policy_bucket *b = &tab[s];
			if (!b->name)
				continue;
			size_t blen = strlen(b->name);
			b->idx = calloc(p->n_rules + 1, sizeof(uint32_t));
			if (!b->idx)
				return -ENOMEM;
			for (size_t i = 0; i < p->n_rules; i++) {
				const struct pglob *t = &p->rules[i].tool;
				size_t fl = t->literal ? 0 : group_key(t, key, sizeof(key));
				bool in;
				if (!pass) /* literal name: exact, or a wildcard that matches it */
					in = t->literal ? strcmp(t->src, b->name) == 0
							: pglob_match(t, b->name, blen);
				else /* group: wildcards keyed by a dotted prefix of its key, and
				      * the residual ones */
					in = !t->literal &&
					     (fl == 0 ||
					      (fl <= blen && memcmp(key, b->name, fl) == 0 &&
					       (fl == blen || b->name[fl] == '.')));
				if (in)
					b->idx[b->n++] = (uint32_t)i;
			}
			/* sized for every rule while filling; give the rest back */
			uint32_t *shrunk = realloc(b->idx, (b->n + 1) * sizeof(uint32_t));
			if (shrunk)
				b->idx = shrunk;
			if ((r = bucket_finish(p, b)) < 0)
				return r;
		}
	}
	return bucket_finish(p, &p->residual);
}

const struct policy_bucket *
pindex_bucket(const struct policy *p, const char *tool)
{
	size_t len = strlen(tool);
	const struct policy_bucket *b = table_find(p->tab, p->tab_size, tool, len);

	if (b)
		return b;
	/* the longest dotted prefix that is a group key: its bucket also holds the
	 * rules of every shorter key */
	for (size_t k = len; k > 0; k--)
		if (tool[k - 1] == '.' && (b = table_find(p->groups, p->groups_size, tool, k - 1)))
			return b;
	return &p->residual;
}

const struct pkey *
pindex_key(const struct policy_bucket *b, const char *key, size_t len, uint32_t hash)
{
	size_t s = hash & (b->keys_size - 1);

	while (b->keys[s].key) {
		const struct pkey *k = &b->keys[s];
		if (k->hash == hash && k->len == len && memcmp(k->key, key, len) == 0)
			return k;
		s = (s + 1) & (b->keys_size - 1);
	}
	return NULL;
}
