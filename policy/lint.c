/* policy_lint: every problem in a policy document in one pass, with positions,
 * plus rules that can never take effect because a stronger rule covers them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy_int.h"

/* Cheap necessary condition for pglob_covers: every string of a starts with a's
 * literal prefix, so d's prefix must agree with it. */
static bool
prefix_compatible(const struct pglob *d, const struct pglob *a)
{
	if (a->literal)
		return pglob_match(d, a->src, strlen(a->src));
	if (d->literal)
		return false; /* a wildcard language is never inside one string */
	if (d->prefix_len <= a->prefix_len)
		return memcmp(d->prefix, a->prefix, d->prefix_len) == 0;
	return true;
}

static bool
glob_covers(const struct pglob *d, const struct pglob *a)
{
	if (!prefix_compatible(d, a))
		return false;
	if (a->literal)
		return true; /* prefix_compatible matched it exactly */
	return pglob_covers(d, a);
}

static bool
host_covered(const struct policy_rule *d, const struct pglob *h)
{
	if (h->is_ip && d->n_cidrs) {
		struct pip ip;
		char txt[PHOST_MAX_LEN + 3];
		if (purl_host_ip(h->src, strlen(h->src), &ip, txt, sizeof(txt)) == 1)
			for (size_t i = 0; i < d->n_cidrs; i++)
				if (pcidr_contains(&d->cidrs[i], &ip))
					return true;
	}
	for (size_t i = 0; i < d->n_hosts; i++) {
		const struct pglob *g = &d->hosts[i];
		if (h->is_ip) {
			/* mirrors eval: an IP is matched by its literal, and by name globs
			 * only in deny rules */
			if ((g->is_ip && strcmp(g->src, h->src) == 0) ||
			    (!g->is_ip && d->decision == POLICY_DENY && !g->literal &&
			     pglob_match(g, h->src, strlen(h->src))))
				return true;
		} else if (!g->is_ip && glob_covers(g, h)) {
			return true;
		}
	}
	return false;
}

/* True if every call that a matches is also matched by d (sound, not complete). */
static bool
rule_covers(const struct policy_rule *d, const struct policy_rule *a)
{
	/* presence checks first: most pairs fail here without touching a glob */
	bool d_hosts = d->n_hosts || d->n_cidrs, a_hosts = a->n_hosts || a->n_cidrs;
	if ((d->n_paths && !a->n_paths) || (d_hosts && !a_hosts) ||
	    (d->n_methods && !a->n_methods) || (d->n_url_prefixes && !a->n_url_prefixes) ||
	    (d->has_max_bytes && (!a->has_max_bytes || a->max_bytes > d->max_bytes)))
		return false;
	if (!glob_covers(&d->tool, &a->tool))
		return false;
	if (d->n_paths) {
		if (!a->n_paths)
			return false;
		for (size_t i = 0; i < a->n_paths; i++) {
			bool ok = false;
			for (size_t k = 0; k < d->n_paths && !ok; k++)
				ok = glob_covers(&d->paths[k], &a->paths[i]);
			if (!ok)
				return false;
		}
	}
	if (d_hosts) {
		for (size_t i = 0; i < a->n_hosts; i++)
			if (!host_covered(d, &a->hosts[i]))
				return false;
		/* a block is covered by a block of d that contains it */
		for (size_t i = 0; i < a->n_cidrs; i++) {
			const struct pcidr *ac = &a->cidrs[i];
			bool ok = false;
			for (size_t k = 0; k < d->n_cidrs && !ok; k++)
				ok = d->cidrs[k].plen <= ac->plen &&
				     pcidr_contains(&d->cidrs[k], &ac->net);
			if (!ok)
				return false;
		}
	}
	if (d->n_methods) {
		if (!a->n_methods)
			return false;
		for (size_t i = 0; i < a->n_methods; i++) {
			bool ok = false;
			for (size_t k = 0; k < d->n_methods && !ok; k++)
				ok = strcmp(d->methods[k], a->methods[i]) == 0;
			if (!ok)
				return false;
		}
	}
	if (d->n_url_prefixes) {
		if (!a->n_url_prefixes)
			return false;
		for (size_t i = 0; i < a->n_url_prefixes; i++) {
			bool ok = false;
			for (size_t k = 0; k < d->n_url_prefixes && !ok; k++)
				ok = strncmp(a->url_prefixes[i], d->url_prefixes[k],
					     strlen(d->url_prefixes[k])) == 0;
			if (!ok)
				return false;
		}
	}
	if (d->has_max_bytes && (!a->has_max_bytes || a->max_bytes > d->max_bytes))
		return false;
	return true;
}

/* Position of the rule object whose source is `src` in the document's "rules". */
static void
rule_pos(const char *buf, size_t len, const json_t *doc, const json_t *src, int *line, int *col)
{
	const json_t *rules = json_object_get(doc, "rules");

	*line = *col = 0;
	for (size_t k = 0; k < json_array_size(rules); k++) {
		if (json_array_get(rules, k) != src)
			continue;
		struct pstep steps[] = {{.key = "rules"}, {.idx = k}};
		if (!ppos_locate(buf, len, steps, 2, false, line, col))
			*line = *col = 0;
		return;
	}
}

static int
find_shadowed(const char *buf, size_t len, const json_t *doc, const struct policy *p,
	      struct plint *l)
{
	for (size_t i = 0; i < p->n_rules; i++) {
		const struct policy_rule *a = &p->rules[i];
		if (a->decision == POLICY_DENY)
			continue;
		for (size_t k = 0; k < p->n_rules; k++) {
			const struct policy_rule *d = &p->rules[k];
			if (d->decision >= a->decision || !rule_covers(d, a))
				continue;
			int line, col, dline, dcol;
			rule_pos(buf, len, doc, a->src, &line, &col);
			rule_pos(buf, len, doc, d->src, &dline, &dcol);
			if (plint_add(
				l, line, col, POLICY_SEV_WARNING,
				"rule '%s' (%s) can never take effect: rule '%s' (%s) at line "
				"%d matches every call it matches and wins",
				a->id, policy_decision_name(a->decision), d->id,
				policy_decision_name(d->decision), dline) < 0)
				return -ENOMEM;
			break;
		}
	}
	return 0;
}

static int
finding_cmp(const void *x, const void *y)
{
	const struct policy_finding *a = x, *b = y;

	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	if (a->column != b->column)
		return a->column < b->column ? -1 : 1;
	return 0;
}

int
policy_lint(const char *buf, size_t len, struct policy_finding **ret, size_t *ret_n)
{
	struct plint l = {0};
	json_error_t jerr;
	struct policy *p = NULL;
	int r = 0;

	if (!buf || !ret || !ret_n)
		return -EINVAL;
	cleanup_json json_t *doc = agd_json_parse(buf, len, 32, &jerr);
	if (!doc) {
		r = plint_add(&l, jerr.line > 0 ? jerr.line : 0, jerr.column > 0 ? jerr.column : 0,
			      POLICY_SEV_ERROR, "%s", jerr.text);
	} else {
		r = policy_compile(doc, buf, len, &l, &p, NULL);
		if (r == -EINVAL)
			r = 0; /* problems are in the findings */
		if (r == 0 && p)
			r = find_shadowed(buf, len, doc, p, &l);
	}
	policy_free(p);
	if (r < 0) {
		free(l.f);
		return r;
	}
	/* stable order for readers: by position (qsort is fine: positions are distinct
	 * enough, and ties keep no meaning) */
	if (l.n > 1)
		qsort(l.f, l.n, sizeof(*l.f), finding_cmp);
	*ret = l.f;
	*ret_n = l.n;
	return 0;
}

struct policy_finding *
policy_findings_free(struct policy_finding *f)
{
	free(f);
	return NULL;
}
