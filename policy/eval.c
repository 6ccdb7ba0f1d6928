/* Evaluation: find the strongest matching rule for one tool call, without
 * allocating. Arguments are decoded lazily, once, the first time a rule needs them. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/util.h"
#include "policy/policy_int.h"

enum arg_state {
	ARG_UNKNOWN = 0,
	ARG_OK,
	ARG_MISSING,   /* the call has no such argument: the matcher does not apply */
	ARG_MALFORMED, /* present but unusable: fail closed */
};

enum m_result {
	M_NO = 0,
	M_YES,
	M_BAD, /* argument malformed: matches deny rules only */
};

struct evstate {
	const json_t *args;
	const char *cwd;
	char *path; /* the caller's result buffer */
	enum arg_state path_st;
	size_t path_len;
	enum arg_state url_st;
	struct purl url;
	enum arg_state method_st;
	const char *method;
	enum arg_state size_st;
	uint64_t size;
	const char *bad; /* what made the last M_BAD */
};

/* No arguments at all (NULL: MCP makes "arguments" optional) is an empty object;
 * arguments that are not an object are malformed for every matcher. */
static bool
args_usable(const struct evstate *s)
{
	return !s->args || json_is_object(s->args);
}

static const json_t *
arg(const struct evstate *s, const char *key)
{
	return json_is_object(s->args) ? json_object_get(s->args, key) : NULL;
}

static enum arg_state
load_path(struct evstate *s)
{
	if (s->path_st != ARG_UNKNOWN)
		return s->path_st;
	const json_t *v = arg(s, "path");
	if (!v && args_usable(s)) {
		s->path_st = ARG_MISSING;
	} else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		s->path_st = ARG_MALFORMED; /* not a string, or a NUL byte inside */
	} else if (policy_normalize_path(json_string_value(v), s->cwd ? s->cwd : "/", s->path,
					 4096) < 0) {
		s->path_st = ARG_MALFORMED;
	} else {
		s->path_st = ARG_OK;
		s->path_len = strlen(s->path);
	}
	if (s->path_st != ARG_OK)
		s->path[0] = '\0';
	return s->path_st;
}

static enum arg_state
load_url(struct evstate *s)
{
	if (s->url_st != ARG_UNKNOWN)
		return s->url_st;
	const json_t *v = arg(s, "url");
	if (!v && args_usable(s))
		s->url_st = ARG_MISSING;
	else if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v) ||
		 purl_parse(json_string_value(v), json_string_length(v), &s->url) < 0)
		s->url_st = ARG_MALFORMED;
	else if (s->url.userinfo) /* http://allowed.example@evil.example/ */
		s->url_st = ARG_MALFORMED;
	else
		s->url_st = ARG_OK;
	return s->url_st;
}

static enum arg_state
load_method(struct evstate *s)
{
	if (s->method_st != ARG_UNKNOWN)
		return s->method_st;
	const json_t *v = arg(s, "method");
	if (!v && args_usable(s)) {
		s->method_st = ARG_MISSING;
	} else if (!json_is_string(v)) {
		s->method_st = ARG_MALFORMED;
	} else {
		s->method = json_string_value(v);
		s->method_st = ARG_OK;
	}
	return s->method_st;
}

static enum arg_state
load_size(struct evstate *s)
{
	static const char *const keys[] = {"content", "body", "length"};

	if (s->size_st != ARG_UNKNOWN)
		return s->size_st;
	s->size = 0;
	s->size_st = args_usable(s) ? ARG_OK : ARG_MALFORMED;
	for (size_t i = 0; i < ARRAY_SIZE(keys) && s->size_st == ARG_OK; i++) {
		const json_t *v = arg(s, keys[i]);
		uint64_t n;
		if (!v || json_is_null(v))
			continue;
		if (json_is_string(v))
			n = json_string_length(v);
		else if (json_is_integer(v) && json_integer_value(v) >= 0)
			n = (uint64_t)json_integer_value(v);
		else {
			s->size_st = ARG_MALFORMED;
			break;
		}
		if (n > s->size)
			s->size = n;
	}
	return s->size_st;
}

static enum m_result
from_state(struct evstate *s, enum arg_state st, const char *what)
{
	if (st == ARG_MISSING)
		return M_NO;
	s->bad = what;
	return M_BAD;
}

static enum m_result
match_paths(struct evstate *s, const struct policy_rule *r, const struct pglob **ret_glob)
{
	enum arg_state st = load_path(s);

	if (st != ARG_OK)
		return from_state(s, st, "path");
	for (size_t i = 0; i < r->n_paths; i++) {
		if (pglob_match(&r->paths[i], s->path, s->path_len)) {
			*ret_glob = &r->paths[i];
			return M_YES;
		}
	}
	return M_NO;
}

static enum m_result
match_hosts(struct evstate *s, const struct policy_rule *r)
{
	enum arg_state st = load_url(s);

	if (st != ARG_OK)
		return from_state(s, st, "url");
	const char *h = s->url.host;
	size_t hl = strlen(h);
	if (s->url.is_ip)
		for (size_t i = 0; i < r->n_cidrs; i++)
			if (pcidr_contains(&r->cidrs[i], &s->url.ip))
				return M_YES;
	for (size_t i = 0; i < r->n_hosts; i++) {
		const struct pglob *g = &r->hosts[i];
		if (s->url.is_ip) {
			/* numeric hosts match their canonical literal; only deny rules let
			 * a name glob cover them too, so "*.example.com" never admits an IP */
			if (g->is_ip ? strcmp(g->src, h) == 0
				     : (r->decision == POLICY_DENY && !g->literal &&
					pglob_match(g, h, hl)))
				return M_YES;
		} else if (!g->is_ip && pglob_match(g, h, hl)) {
			return M_YES;
		}
	}
	return M_NO;
}

static enum m_result
match_methods(struct evstate *s, const struct policy_rule *r)
{
	enum arg_state st = load_method(s);

	if (st != ARG_OK)
		return from_state(s, st, "method");
	for (size_t i = 0; i < r->n_methods; i++)
		if (strcasecmp(r->methods[i], s->method) == 0)
			return M_YES;
	return M_NO;
}

static enum m_result
match_url_prefixes(struct evstate *s, const struct policy_rule *r)
{
	enum arg_state st = load_url(s);

	if (st != ARG_OK)
		return from_state(s, st, "url");
	for (size_t i = 0; i < r->n_url_prefixes; i++)
		if (strncmp(s->url.norm, r->url_prefixes[i], strlen(r->url_prefixes[i])) == 0)
			return M_YES;
	return M_NO;
}

static enum m_result
match_size(struct evstate *s, const struct policy_rule *r)
{
	enum arg_state st = load_size(s);

	if (st != ARG_OK)
		return from_state(s, st, "size");
	return s->size <= r->max_bytes ? M_YES : M_NO;
}

/* Does rule r match? *ret_failclosed is set when a deny rule matched only because
 * an argument it inspects was malformed. */
static bool
rule_matches(struct evstate *s, const struct policy_rule *r, const struct pglob **ret_glob,
	     bool *ret_failclosed)
{
	enum m_result m[5];
	size_t n = 0;

	*ret_glob = NULL;
	*ret_failclosed = false;
	if (r->n_paths)
		m[n++] = match_paths(s, r, ret_glob);
	if (n && m[n - 1] == M_NO)
		return false;
	if (r->n_hosts || r->n_cidrs)
		m[n++] = match_hosts(s, r);
	if (n && m[n - 1] == M_NO)
		return false;
	if (r->n_methods)
		m[n++] = match_methods(s, r);
	if (n && m[n - 1] == M_NO)
		return false;
	if (r->n_url_prefixes)
		m[n++] = match_url_prefixes(s, r);
	if (n && m[n - 1] == M_NO)
		return false;
	if (r->has_max_bytes)
		m[n++] = match_size(s, r);
	for (size_t i = 0; i < n; i++) {
		if (m[i] == M_NO)
			return false;
		if (m[i] == M_BAD) {
			if (r->decision != POLICY_DENY)
				return false;
			*ret_failclosed = true;
		}
	}
	return true;
}

static void
explain(const struct evstate *s, const struct policy_rule *r, const char *tool, bool failclosed,
	char *out, size_t outsz)
{
	size_t n = 0;

#define ADD(...)                                                                                   \
	do {                                                                                       \
		if (n < outsz) {                                                                   \
			int k_ = snprintf(out + n, outsz - n, __VA_ARGS__);                        \
			if (k_ > 0)                                                                \
				n += (size_t)k_;                                                   \
		}                                                                                  \
	} while (0)

	ADD("rule '%s' (%s) matched %s", r->id, policy_decision_name(r->decision), tool);
	if (failclosed) {
		ADD(": invalid or unparsable %s argument (fails closed)", s->bad ? s->bad : "");
		return;
	}
	if (r->n_paths)
		ADD(" path %s", s->path);
	if (r->n_hosts || r->n_cidrs)
		ADD(" host %s", s->url.host);
	if (r->n_methods)
		ADD(" method %s", s->method);
	if (r->n_url_prefixes)
		ADD(" url %s", s->url.norm);
	if (r->has_max_bytes)
		ADD(" size %llu <= %llu", (unsigned long long)s->size,
		    (unsigned long long)r->max_bytes);
#undef ADD
}

/* Candidate rules of a bucket for one call, in precedence order: a merge of the
 * bucket's short keyed lists, or the whole bucket when the index cannot be used. */
struct cand {
	const struct policy_bucket *b;
	bool linear;
	size_t li;
	size_t nl;
	const uint32_t *list[PCAND_MAX_LISTS];
	uint32_t len[PCAND_MAX_LISTS];
	uint32_t cur[PCAND_MAX_LISTS];
};

static void
cand_add(struct cand *c, const uint32_t *list, size_t len)
{
	if (len == 0)
		return;
	if (c->nl == PCAND_MAX_LISTS) {
		c->linear = true;
		return;
	}
	c->list[c->nl] = list;
	c->len[c->nl] = (uint32_t)len;
	c->cur[c->nl] = 0;
	c->nl++;
}

static void
cand_key(struct cand *c, const char *key, size_t len, uint32_t h)
{
	const struct pkey *k = pindex_key(c->b, key, len, h);

	if (k)
		cand_add(c, k->pos, k->n);
}

static void
cand_init(struct evstate *s, const struct policy_bucket *b, struct cand *c)
{
	c->b = b;
	c->li = 0;
	c->nl = 0;
	c->linear = b->keys_size == 0;
	if (c->linear)
		return;
	cand_add(c, b->always, b->n_always);
	if (b->path_keys) {
		/* a malformed path must still reach deny rules: no shortcut then */
		enum arg_state st = load_path(s);
		if (st == ARG_MALFORMED) {
			c->linear = true;
			return;
		}
		if (st == ARG_OK) {
			/* every ancestor of the path, and the path itself */
			uint32_t h = pindex_hash_step(PINDEX_HASH_INIT, '/');
			cand_key(c, "/", 1, h);
			for (size_t k = 1; k <= s->path_len && !c->linear; k++) {
				if ((k == s->path_len || s->path[k] == '/') && k > 1)
					cand_key(c, s->path, k, h);
				if (k < s->path_len)
					h = pindex_hash_step(h, (uint8_t)s->path[k]);
			}
		}
	}
	if (b->host_keys) {
		enum arg_state st = load_url(s);
		if (st == ARG_MALFORMED) {
			c->linear = true;
			return;
		}
		if (st == ARG_OK) {
			size_t hl = strlen(s->url.host);
			uint32_t h = PINDEX_HASH_INIT;
			for (size_t k = 0; k < hl; k++)
				h = pindex_hash_step(h, (uint8_t)s->url.host[k]);
			cand_key(c, s->url.host, hl, h);
		}
	}
}

/* Next position in the bucket's idx, or SIZE_MAX when done. */
static size_t
cand_next(struct cand *c)
{
	if (c->linear)
		return c->li < c->b->n ? c->li++ : SIZE_MAX;
	uint32_t min = UINT32_MAX;
	for (size_t i = 0; i < c->nl; i++)
		if (c->cur[i] < c->len[i] && c->list[i][c->cur[i]] < min)
			min = c->list[i][c->cur[i]];
	if (min == UINT32_MAX)
		return SIZE_MAX;
	/* a rule keyed under several roots appears in several lists: take it once */
	for (size_t i = 0; i < c->nl; i++)
		if (c->cur[i] < c->len[i] && c->list[i][c->cur[i]] == min)
			c->cur[i]++;
	return min;
}

int
policy_eval(const struct policy *p, const char *tool, const json_t *args, const char *cwd,
	    struct policy_result *ret)
{
	struct evstate s;
	struct cand c;

	if (!p || !ret)
		return -EINVAL;
	/* field by field: zeroing the whole state would clear an 8 KiB URL buffer */
	s.args = args;
	s.cwd = cwd;
	s.path = ret->path;
	s.path_st = s.url_st = s.method_st = s.size_st = ARG_UNKNOWN;
	s.path_len = 0;
	s.method = NULL;
	s.size = 0;
	s.bad = NULL;
	ret->path[0] = '\0';
	const struct policy_bucket *b = tool ? pindex_bucket(p, tool) : NULL;
	size_t tlen = tool ? strlen(tool) : 0;
	if (b)
		cand_init(&s, b, &c);
	/* candidates come in precedence order: the first match decides */
	for (size_t pos; b && (pos = cand_next(&c)) != SIZE_MAX;) {
		const struct policy_rule *r = &p->rules[b->idx[pos]];
		const struct pglob *g;
		bool failclosed;

		if (b->check_tool && !pglob_match(&r->tool, tool, tlen))
			continue;
		if (!rule_matches(&s, r, &g, &failclosed))
			continue;
		ret->decision = r->decision;
		ret->rule = r;
		ret->rule_id = r->id;
		ret->path_root = (g && !failclosed) ? g->root : "/";
		explain(&s, r, tool, failclosed, ret->reason, sizeof(ret->reason));
		load_path(&s); /* report the call's normalised path even if r had no matcher */
		return 0;
	}
	ret->decision = POLICY_DENY;
	ret->rule = NULL;
	ret->rule_id = "";
	ret->path_root = "/";
	snprintf(ret->reason, sizeof(ret->reason), "no rule matched");
	load_path(&s);
	return 0;
}

bool
policy_tool_visible(const struct policy *p, const char *tool)
{
	if (!p || !tool)
		return false;
	const struct policy_bucket *b = pindex_bucket(p, tool);
	size_t tlen = strlen(tool);
	for (size_t i = 0; i < b->n; i++) {
		const struct policy_rule *r = &p->rules[b->idx[i]];
		if (r->decision != POLICY_DENY &&
		    (!b->check_tool || pglob_match(&r->tool, tool, tlen)))
			return true;
	}
	return false;
}

/* Index of the first secret (from `from`, in name order) whose hosts match url's
 * host, n_secrets when none. */
static size_t
secret_match(const struct policy *p, const struct purl *u, size_t from, size_t to)
{
	size_t hl = strlen(u->host);

	for (size_t i = from; i < to; i++) {
		const struct psecret_hosts *h = &p->secret_hosts[i];
		for (size_t k = 0; k < h->n; k++) {
			const struct pglob *g = &h->globs[k];
			/* a secret goes to an IP only when that IP is named */
			bool m = u->is_ip ? (g->is_ip && strcmp(g->src, u->host) == 0)
					  : (!g->is_ip && pglob_match(g, u->host, hl));
			if (m)
				return i;
		}
	}
	return p->n_secrets;
}

/* The secret named `name` if url may carry it (name NULL: the first that may). */
static const struct policy_secret *
secret_lookup(const struct policy *p, const char *name, const char *url)
{
	struct purl *u;
	const struct policy_secret *found = NULL;
	size_t from = 0, to = p ? p->n_secrets : 0;

	if (!p || !url || p->n_secrets == 0)
		return NULL;
	if (name) {
		for (from = 0; from < p->n_secrets; from++)
			if (strcmp(p->secrets[from].name, name) == 0)
				break;
		if (from == p->n_secrets)
			return NULL;
		to = from + 1;
	}
	u = malloc(sizeof(*u));
	if (!u)
		return NULL;
	if (purl_parse(url, strlen(url), u) == 0 && !u->userinfo) {
		size_t i = secret_match(p, u, from, to);
		if (i < p->n_secrets)
			found = &p->secrets[i];
	}
	free(u);
	return found;
}

const struct policy_secret *
policy_secret_for_url(const struct policy *p, const char *url)
{
	return secret_lookup(p, NULL, url);
}

const struct policy_secret *
policy_secret_named_for_url(const struct policy *p, const char *name, const char *url)
{
	return name ? secret_lookup(p, name, url) : NULL;
}
