/* Compile a version-1 policy document: strict validation with positions, glob
 * precompilation and the tool-name index used by policy_eval. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy_int.h"

#define POLICY_MAX_DEPTH  32
#define POLICY_ID_MAX	  128
#define POLICY_METHOD_MAX 32

struct pctx {
	const char *buf;
	size_t len;
	struct plint *lint;
	struct policy_error *err;
	struct pstep path[8];
	size_t depth;
	bool oom;
};

int
plint_add(struct plint *l, int line, int column, enum policy_severity sev, const char *fmt, ...)
{
	va_list ap;

	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 16;
		struct policy_finding *nf = realloc(l->f, cap * sizeof(*nf));
		if (!nf)
			return -ENOMEM;
		l->f = nf;
		l->cap = cap;
	}
	struct policy_finding *f = &l->f[l->n++];
	f->line = line;
	f->column = column;
	f->severity = sev;
	va_start(ap, fmt);
	vsnprintf(f->message, sizeof(f->message), fmt, ap);
	va_end(ap);
	return 0;
}

static void
push_key(struct pctx *c, const char *key)
{
	if (c->depth < ARRAY_SIZE(c->path))
		c->path[c->depth] = (struct pstep){.key = key};
	c->depth++;
}

static void
push_idx(struct pctx *c, size_t idx)
{
	if (c->depth < ARRAY_SIZE(c->path))
		c->path[c->depth] = (struct pstep){.idx = idx};
	c->depth++;
}

static void
pop(struct pctx *c)
{
	c->depth--;
}

/* Report a problem at the current path, or at member `key` of it (want_key: the key
 * itself rather than its value). Returns -EINVAL (-ENOMEM if a finding cannot be
 * recorded). */
static int perr(struct pctx *c, const char *key, bool want_key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int
perr(struct pctx *c, const char *key, bool want_key, const char *fmt, ...)
{
	char msg[256];
	int line = 0, col = 0;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (key)
		push_key(c, key);
	if (c->depth <= ARRAY_SIZE(c->path) &&
	    !ppos_locate(c->buf, c->len, c->path, c->depth, key && want_key, &line, &col)) {
		line = 0;
		col = 0;
	}
	if (key)
		pop(c);
	if (c->lint) {
		if (plint_add(c->lint, line, col, POLICY_SEV_ERROR, "%s", msg) < 0) {
			c->oom = true;
			return -ENOMEM;
		}
		return -EINVAL;
	}
	if (c->err && c->err->message[0] == '\0') {
		c->err->line = line;
		c->err->column = col;
		snprintf(c->err->message, sizeof(c->err->message), "%s", msg);
	}
	return -EINVAL;
}

static bool
in_list(const char *key, const char *const *list)
{
	for (; *list; list++)
		if (strcmp(key, *list) == 0)
			return true;
	return false;
}

/* Every member of obj must be in `known`. In lint mode all unknown keys are reported. */
static int
check_keys(struct pctx *c, const json_t *obj, const char *const *known, const char *what)
{
	const char *key;
	json_t *v;
	int r = 0;

	json_object_foreach((json_t *)obj, key, v)
	{
		(void)v;
		if (in_list(key, known))
			continue;
		r = perr(c, key, true, "unknown key '%s' in %s", key, what);
		if (!c->lint || r == -ENOMEM)
			return r;
	}
	return r;
}

/* "30s", "15m", "1h", "2d", "500ms" (or an integer count of milliseconds). */
static int
parse_duration(const json_t *v, uint64_t *ret)
{
	uint64_t n = 0, mul;
	const char *s;
	size_t i = 0;

	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || n == 0)
		return -EINVAL;
	if (strcmp(s + i, "ms") == 0)
		mul = 1;
	else if (strcmp(s + i, "s") == 0)
		mul = 1000;
	else if (strcmp(s + i, "m") == 0)
		mul = 60000;
	else if (strcmp(s + i, "h") == 0)
		mul = 3600000;
	else if (strcmp(s + i, "d") == 0)
		mul = 86400000;
	else
		return -EINVAL;
	if (n > UINT64_MAX / mul)
		return -EINVAL;
	*ret = n * mul;
	return 0;
}

/* "50%", "12.5%", "0.5", "2", or a JSON number of CPUs, as thousandths of one
 * CPU; from 1% (the kernel's smallest quota per 100 ms period) to 1024 CPUs. */
static int
parse_cpu(const json_t *v, uint64_t *ret)
{
	uint64_t milli = 0;

	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0 || json_integer_value(v) > 1024)
			return -EINVAL;
		milli = (uint64_t)json_integer_value(v) * 1000;
	} else if (json_is_real(v)) {
		double d = json_real_value(v);
		if (!(d > 0 && d <= 1024))
			return -EINVAL;
		milli = (uint64_t)(d * 1000 + 0.5);
	} else if (json_is_string(v)) {
		const char *s = json_string_value(v);
		static const uint64_t scale[] = {100, 10, 1};
		uint64_t units = 0; /* thousandths of the number written */
		size_t i = 0, nd = 0, nf = 0;
		for (; s[i] >= '0' && s[i] <= '9' && nd < 7; i++, nd++)
			units = units * 10 + (uint64_t)(s[i] - '0');
		units *= 1000;
		if (s[i] == '.')
			for (i++; s[i] >= '0' && s[i] <= '9' && nf < 3; i++, nf++)
				units += (uint64_t)(s[i] - '0') * scale[nf];
		if (nd == 0 || (s[i - 1] == '.'))
			return -EINVAL;
		if (s[i] == '%') {
			/* percent of one CPU: finer than 0.1% is no quota step */
			if (units % 100 != 0)
				return -EINVAL;
			milli = units / 100;
			i++;
		} else {
			milli = units;
		}
		if (s[i] != '\0')
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (milli < 10 || milli > 1024 * 1000)
		return -EINVAL;
	*ret = milli;
	return 0;
}

/* "512M", "1G", "64K", "1T", optionally followed by "B" or "iB"; or an integer of bytes. */
static int
parse_size(const json_t *v, uint64_t *ret)
{
	uint64_t n = 0, mul = 1;
	const char *s;
	size_t i = 0;

	if (json_is_integer(v)) {
		if (json_integer_value(v) <= 0)
			return -EINVAL;
		*ret = (uint64_t)json_integer_value(v);
		return 0;
	}
	if (!json_is_string(v))
		return -EINVAL;
	s = json_string_value(v);
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		if (n > (UINT64_MAX - 9) / 10)
			return -EINVAL;
		n = n * 10 + (uint64_t)(s[i] - '0');
	}
	if (i == 0 || n == 0)
		return -EINVAL;
	switch (s[i] | 0x20) {
	case 'k':
		mul = 1ull << 10;
		break;
	case 'm':
		mul = 1ull << 20;
		break;
	case 'g':
		mul = 1ull << 30;
		break;
	case 't':
		mul = 1ull << 40;
		break;
	default:
		mul = 0;
	}
	if (s[i] == '\0') {
		mul = 1;
	} else if (mul) {
		i++;
		if (strcmp(s + i, "") != 0 && strcmp(s + i, "B") != 0 && strcmp(s + i, "iB") != 0)
			return -EINVAL;
	} else if (strcmp(s + i, "B") != 0) {
		return -EINVAL;
	} else {
		mul = 1;
	}
	if (n > UINT64_MAX / mul)
		return -EINVAL;
	*ret = n * mul;
	return 0;
}

static bool
name_ok(const char *s, size_t max)
{
	size_t n = strlen(s);

	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];
		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

static void
free_strv(char **v, size_t n)
{
	if (!v)
		return;
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

static void
free_strv_null(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static void
rule_done(struct policy_rule *r)
{
	free(r->id);
	pglob_done(&r->tool);
	for (size_t i = 0; i < r->n_paths; i++)
		pglob_done(&r->paths[i]);
	free(r->paths);
	for (size_t i = 0; i < r->n_hosts; i++)
		pglob_done(&r->hosts[i]);
	free(r->hosts);
	for (size_t i = 0; i < r->n_cidrs; i++)
		free(r->cidrs[i].src);
	free(r->cidrs);
	free_strv(r->methods, r->n_methods);
	free_strv(r->url_prefixes, r->n_url_prefixes);
	free_strv_null(r->approvers);
	json_decref(r->src);
	memset(r, 0, sizeof(*r));
}

struct policy *
policy_free(struct policy *p)
{
	if (!p)
		return NULL;
	free(p->extends);
	json_decref(p->description);
	json_decref(p->costs);
	free(p->cost_header);
	for (size_t i = 0; i < p->n_rules; i++)
		rule_done(&p->rules[i]);
	free(p->rules);
	for (size_t i = 0; i < p->n_mounts; i++) {
		free((char *)p->mounts[i].host);
		free((char *)p->mounts[i].path);
	}
	free(p->mounts);
	for (size_t i = 0; i < p->n_secrets; i++) {
		free((char *)p->secrets[i].name);
		free((char *)p->secrets[i].header);
		free((char *)p->secrets[i].format);
		free(p->secret_hosts[i].names); /* borrowed from the globs */
		for (size_t k = 0; k < p->secret_hosts[i].n; k++)
			pglob_done(&p->secret_hosts[i].globs[k]);
		free(p->secret_hosts[i].globs);
	}
	free(p->secrets);
	free(p->secret_hosts);
	pindex_free(p);
	free(p);
	return NULL;
}

/* A matcher value: a string or a non-empty array of strings. Returns the strings as
 * borrowed pointers in a new array. */
static int
string_list(struct pctx *c, const char *key, const json_t *v, const char ***ret, size_t *ret_n)
{
	const char **out;
	size_t n, i;

	if (json_is_string(v)) {
		out = calloc(1, sizeof(*out));
		if (!out)
			return -ENOMEM;
		out[0] = json_string_value(v);
		*ret = out;
		*ret_n = 1;
		return 0;
	}
	if (!json_is_array(v) || json_array_size(v) == 0)
		return perr(c, key, false, "'%s' must be a string or a non-empty array of strings",
			    key);
	n = json_array_size(v);
	for (i = 0; i < n; i++) {
		if (!json_is_string(json_array_get(v, i))) {
			push_key(c, key);
			push_idx(c, i);
			int r = perr(c, NULL, false, "'%s' entries must be strings", key);
			pop(c);
			pop(c);
			return r;
		}
	}
	out = calloc(n, sizeof(*out));
	if (!out)
		return -ENOMEM;
	for (i = 0; i < n; i++)
		out[i] = json_string_value(json_array_get(v, i));
	*ret = out;
	*ret_n = n;
	return 0;
}

/* Report a problem with entry i of a matcher list (or the value if it was a string). */
static int
perr_entry(struct pctx *c, const char *key, const json_t *v, size_t i, const char *fmt,
	   const char *what)
{
	int r;

	push_key(c, key);
	if (json_is_array(v))
		push_idx(c, i);
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	r = perr(c, NULL, false, fmt, what);
#pragma GCC diagnostic pop
	if (json_is_array(v))
		pop(c);
	pop(c);
	return r;
}

static bool
path_glob_ok(const char *s)
{
	size_t n = strlen(s);

	if (!(s[0] == '/' || (s[0] == '*' && s[1] == '*')))
		return false;
	if (n > 1 && s[n - 1] == '/')
		return false;
	/* segments must already be normal: no "", ".", ".." */
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '/')
			continue;
		size_t j = i + 1;
		while (j < n && s[j] != '/')
			j++;
		size_t seg = j - i - 1;
		if ((seg == 0 && n > 1) || (seg == 1 && s[i + 1] == '.') ||
		    (seg == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
			return false;
	}
	return true;
}

/* Compile one host glob (lowercased; IP literals canonicalised). */
static int
host_glob(const char *s, struct pglob *ret)
{
	char low[PHOST_MAX_LEN + 3], ip[PHOST_MAX_LEN + 3];
	size_t n = strlen(s);

	if (n > 0 && s[n - 1] == '.' && s[0] != '[')
		n--;
	if (n == 0 || n > PHOST_MAX_LEN + 2)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		low[i] = (s[i] >= 'A' && s[i] <= 'Z') ? (char)(s[i] + 32) : s[i];
	low[n] = '\0';
	if (!strpbrk(low, "*?")) {
		int r = purl_host_ip(low, n, NULL, ip, sizeof(ip));
		if (r < 0)
			return -EINVAL;
		if (r == 1) {
			r = pglob_compile(ip, '.', ret);
			if (r == 0)
				ret->is_ip = true;
			return r;
		}
	}
	for (size_t i = 0; i < n; i++) {
		char ch = low[i];
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
			  ch == '_' || ch == '.' || ch == '*' || ch == '?';
		if (!ok || (ch == '.' && (i == 0 || low[i - 1] == '.')))
			return -EINVAL;
	}
	return pglob_compile(low, '.', ret);
}

/* A host matcher: host globs, and (where ret_c is given) address blocks. */
static int
compile_hosts(struct pctx *c, const char *key, const json_t *v, struct pglob **ret, size_t *ret_n,
	      struct pcidr **ret_c, size_t *ret_nc)
{
	cleanup_free const char **list = NULL;
	size_t n = 0, ng = 0, nc = 0;
	int r = string_list(c, key, v, &list, &n);

	if (r < 0)
		return r;
	struct pglob *g = calloc(n, sizeof(*g));
	struct pcidr *cid = calloc(n, sizeof(*cid));
	if (!g || !cid) {
		free(g);
		free(cid);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		if (strchr(list[i], '/'))
			r = ret_c ? pcidr_parse(list[i], &cid[nc]) : -EINVAL;
		else
			r = host_glob(list[i], &g[ng]);
		if (r < 0) {
			for (size_t k = 0; k < ng; k++)
				pglob_done(&g[k]);
			for (size_t k = 0; k < nc; k++)
				free(cid[k].src);
			free(g);
			free(cid);
			if (r == -ENOMEM)
				return r;
			return perr_entry(c, key, v, i,
					  ret_c ? "invalid host pattern or address block in '%s'"
						: "invalid host pattern in '%s'",
					  key);
		}
		if (strchr(list[i], '/'))
			nc++;
		else
			ng++;
	}
	*ret = g;
	*ret_n = ng;
	if (ret_c) {
		*ret_c = cid;
		*ret_nc = nc;
	} else {
		free(cid);
	}
	return 0;
}

static int
compile_on_unknown(struct pctx *c, const json_t *v, enum policy_on_unknown *ret)
{
	int u = json_is_string(v) ? policy_on_unknown_parse(json_string_value(v)) : -1;

	if (u < 0)
		return perr(c, "on_unknown", false,
			    "'on_unknown' must be \"ask\", \"retry\", \"fail\" or \"skip\"");
	*ret = (enum policy_on_unknown)u;
	return 0;
}

static int
compile_rule(struct pctx *c, const json_t *o, struct policy_rule *rule)
{
	static const char *const known[] = {
	    "id",	  "tool",      "decision",  "description", "path",	 "host", "method",
	    "url_prefix", "max_bytes", "approvers", "expires",	   "on_unknown", NULL};
	cleanup_free const char **list = NULL;
	size_t n = 0;
	json_t *v;
	int r;

	if (!json_is_object(o))
		return perr(c, NULL, false, "a rule must be an object");
	r = check_keys(c, o, known, "rule");
	if (r < 0)
		return r;

	v = json_object_get(o, "id");
	if (!v)
		return perr(c, NULL, false, "rule has no 'id'");
	if (!json_is_string(v) || !name_ok(json_string_value(v), POLICY_ID_MAX))
		return perr(c, "id", false,
			    "'id' must be a non-empty string of letters, digits, '-', '_', '.' "
			    "(at most %d)",
			    POLICY_ID_MAX);
	const char *id = json_string_value(v);

	v = json_object_get(o, "decision");
	if (!v)
		return perr(c, NULL, false, "rule '%s' has no 'decision'", id);
	const char *d = json_is_string(v) ? json_string_value(v) : "";
	if (strcmp(d, "allow") == 0)
		rule->decision = POLICY_ALLOW;
	else if (strcmp(d, "ask") == 0)
		rule->decision = POLICY_ASK;
	else if (strcmp(d, "deny") == 0)
		rule->decision = POLICY_DENY;
	else
		return perr(c, "decision", false,
			    "'decision' must be \"allow\", \"ask\" or \"deny\"");

	v = json_object_get(o, "tool");
	if (!v)
		return perr(c, NULL, false, "rule '%s' has no 'tool'", id);
	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    json_string_length(v) > PGLOB_MAX_LEN)
		return perr(c, "tool", false, "'tool' must be a non-empty tool name pattern");
	r = pglob_compile(json_string_value(v), 0, &rule->tool);
	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return perr(c, "tool", false, "invalid tool pattern");

	if ((v = json_object_get(o, "description")) && !json_is_string(v))
		return perr(c, "description", false, "'description' must be a string");

	if ((v = json_object_get(o, "path"))) {
		r = string_list(c, "path", v, &list, &n);
		if (r < 0)
			return r;
		rule->paths = calloc(n, sizeof(*rule->paths));
		if (!rule->paths)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			if (!path_glob_ok(list[i]))
				return perr_entry(c, "path", v, i,
						  "%s: path patterns must be absolute and normal "
						  "(start with '/' or '**'; no '//', '.', '..' "
						  "segments or trailing '/')",
						  "path");
			r = pglob_compile(list[i], '/', &rule->paths[i]);
			if (r == -ENOMEM)
				return r;
			if (r < 0)
				return perr_entry(c, "path", v, i, "invalid %s pattern", "path");
			rule->n_paths++;
		}
		free(steal_ptr(&list));
	}
	if ((v = json_object_get(o, "host"))) {
		r = compile_hosts(c, "host", v, &rule->hosts, &rule->n_hosts, &rule->cidrs,
				  &rule->n_cidrs);
		if (r < 0)
			return r;
	}
	if ((v = json_object_get(o, "method"))) {
		r = string_list(c, "method", v, &list, &n);
		if (r < 0)
			return r;
		rule->methods = calloc(n, sizeof(char *));
		if (!rule->methods)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			size_t len = strlen(list[i]);
			if (len == 0 || len > POLICY_METHOD_MAX)
				return perr_entry(c, "method", v, i, "invalid %s", "method");
			char *m = strdup(list[i]);
			if (!m)
				return -ENOMEM;
			rule->methods[rule->n_methods++] = m;
			for (char *q = m; *q; q++) {
				if (*q >= 'a' && *q <= 'z')
					*q = (char)(*q - 32);
				if (!(*q >= 'A' && *q <= 'Z'))
					return perr_entry(c, "method", v, i,
							  "invalid %s (letters only)", "method");
			}
		}
		free(steal_ptr(&list));
	}
	if ((v = json_object_get(o, "url_prefix"))) {
		r = string_list(c, "url_prefix", v, &list, &n);
		if (r < 0)
			return r;
		rule->url_prefixes = calloc(n, sizeof(char *));
		if (!rule->url_prefixes)
			return -ENOMEM;
		for (size_t i = 0; i < n; i++) {
			struct purl *u = malloc(sizeof(*u));
			if (!u)
				return -ENOMEM;
			r = purl_parse(list[i], strlen(list[i]), u);
			if (r < 0 || u->userinfo) {
				free(u);
				return perr_entry(c, "url_prefix", v, i,
						  "invalid %s (an http or https URL without "
						  "userinfo)",
						  "url_prefix");
			}
			rule->url_prefixes[rule->n_url_prefixes] = strdup(u->norm);
			free(u);
			if (!rule->url_prefixes[rule->n_url_prefixes++])
				return -ENOMEM;
		}
		free(steal_ptr(&list));
	}
	if ((v = json_object_get(o, "max_bytes"))) {
		if (!json_is_integer(v) || json_integer_value(v) < 0)
			return perr(c, "max_bytes", false,
				    "'max_bytes' must be a non-negative integer");
		rule->has_max_bytes = true;
		rule->max_bytes = (uint64_t)json_integer_value(v);
	}
	size_t na = 0;
	if ((v = json_object_get(o, "approvers"))) {
		if (rule->decision != POLICY_ASK)
			return perr(c, "approvers", true, "'approvers' is only valid on ask rules");
		if (!json_is_array(v))
			return perr(c, "approvers", false, "'approvers' must be an array of names");
		na = json_array_size(v);
		for (size_t i = 0; i < na; i++) {
			json_t *a = json_array_get(v, i);
			if (!json_is_string(a) || json_string_length(a) == 0 ||
			    json_string_length(a) > 256)
				return perr_entry(c, "approvers", v, i, "invalid %s entry",
						  "approvers");
		}
	}
	rule->approvers = calloc(na + 1, sizeof(char *));
	if (!rule->approvers)
		return -ENOMEM;
	for (size_t i = 0; i < na; i++)
		if (!(rule->approvers[i] = strdup(json_string_value(json_array_get(v, i)))))
			return -ENOMEM;
	if ((v = json_object_get(o, "expires"))) {
		if (rule->decision != POLICY_ASK)
			return perr(c, "expires", true, "'expires' is only valid on ask rules");
		if (parse_duration(v, &rule->expires_ms) < 0)
			return perr(c, "expires", false,
				    "'expires' must be a duration like \"30s\", \"15m\", \"1h\", "
				    "\"2d\"");
	}
	if ((v = json_object_get(o, "on_unknown"))) {
		/* A denied call never runs, so never has an outcome to doubt. */
		if (rule->decision == POLICY_DENY)
			return perr(c, "on_unknown", true,
				    "'on_unknown' is only valid on allow and ask rules");
		if ((r = compile_on_unknown(c, v, &rule->on_unknown)) < 0)
			return r;
	}
	rule->id = strdup(id);
	if (!rule->id)
		return -ENOMEM;
	rule->src = json_incref((json_t *)o);
	return 0;
}

static int
compile_limits(struct pctx *c, const json_t *o, struct policy_limits *l)
{
	static const char *const known[] = {"calls_per_minute",
					    "max_calls",
					    "wall_clock",
					    "memory",
					    "pids",
					    "tool_calls_per_minute",
					    "bytes_in",
					    "bytes_out",
					    "max_spend",
					    "cost",
					    "on_limit",
					    "user_calls_per_minute",
					    "cost_header",
					    "cpu",
					    NULL};
	static const char *const ints[] = {
	    "calls_per_minute",	     "max_calls", "pids",
	    "tool_calls_per_minute", "max_spend", "user_calls_per_minute"};
	uint64_t *dst[] = {&l->calls_per_minute,      &l->max_calls, &l->pids,
			   &l->tool_calls_per_minute, &l->max_spend, &l->user_calls_per_minute};
	static const char *const sizes[] = {"bytes_in", "bytes_out"};
	uint64_t *sdst[] = {&l->bytes_in, &l->bytes_out};
	json_t *v;
	int r, first = 0;

	if (!json_is_object(o))
		return perr(c, NULL, false, "'limits' must be an object");
	r = check_keys(c, o, known, "limits");
	if (r < 0 && (!c->lint || r == -ENOMEM))
		return r;
	first = r;
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++) {
		if (!(v = json_object_get(o, ints[i])))
			continue;
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			r = perr(c, ints[i], false, "'%s' must be a positive integer", ints[i]);
			if (!c->lint || r == -ENOMEM)
				return r;
			first = r;
			continue;
		}
		*dst[i] = (uint64_t)json_integer_value(v);
	}
	if ((v = json_object_get(o, "wall_clock")) && parse_duration(v, &l->wall_clock_ms) < 0) {
		r = perr(c, "wall_clock", false,
			 "'wall_clock' must be a duration like \"30s\", \"15m\", \"2h\", \"1d\"");
		if (!c->lint || r == -ENOMEM)
			return r;
		first = r;
	}
	if ((v = json_object_get(o, "memory")) && parse_size(v, &l->memory_bytes) < 0) {
		r = perr(c, "memory", false, "'memory' must be a size like \"512M\" or \"1G\"");
		if (!c->lint || r == -ENOMEM)
			return r;
		first = r;
	}
	if ((v = json_object_get(o, "cpu")) && parse_cpu(v, &l->cpu_milli) < 0) {
		r = perr(c, "cpu", false,
			 "'cpu' must be a share of one CPU like \"50%%\" or 0.5, or a number of "
			 "CPUs like 2 (from 1%% to 1024)");
		if (!c->lint || r == -ENOMEM)
			return r;
		first = r;
	}
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++) {
		if ((v = json_object_get(o, sizes[i])) && parse_size(v, sdst[i]) < 0) {
			r = perr(c, sizes[i], false, "'%s' must be a size like \"10M\"", sizes[i]);
			if (!c->lint || r == -ENOMEM)
				return r;
			first = r;
		}
	}
	if ((v = json_object_get(o, "on_limit"))) {
		const char *s = json_string_value(v);
		if (s && (strcmp(s, "deny") == 0 || strcmp(s, "ask") == 0)) {
			l->ask_on_limit = strcmp(s, "ask") == 0;
		} else {
			r = perr(c, "on_limit", false, "'on_limit' must be \"deny\" or \"ask\"");
			if (!c->lint || r == -ENOMEM)
				return r;
			first = r;
		}
	}
	return first;
}

/* limits.cost_header: an HTTP header name (RFC 9110 token, 1..64 bytes). */
static int
compile_cost_header(struct pctx *c, const json_t *v, struct policy *p)
{
	const char *s = json_string_value(v);
	size_t n = s ? strlen(s) : 0;

	if (n == 0 || n > 64 ||
	    strspn(s, "!#$%&'*+-.^_`|~0123456789"
		      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") != n)
		return perr(c, NULL, false, "'cost_header' must be an HTTP header name");
	p->cost_header = strdup(s);
	return p->cost_header ? 0 : -ENOMEM;
}

/* limits.cost: {"tool name": positive integer}. Names are literal tool names. */
static int
compile_costs(struct pctx *c, const json_t *o, struct policy *p)
{
	const char *k;
	json_t *v;

	if (!json_is_object(o))
		return perr(c, NULL, false, "'cost' must be an object of tool name to integer");
	json_object_foreach((json_t *)o, k, v)
	{
		if (!json_is_integer(v) || json_integer_value(v) <= 0 || !k[0])
			return perr(c, k, false, "cost of '%s' must be a positive integer", k);
	}
	p->costs = json_deep_copy(o);
	return p->costs ? 0 : -ENOMEM;
}

/* Defences a policy may require or mark optional, and the ones that are
 * always applied (accepted in "require", refused in "optional"). */
static const struct {
	const char *name;
	unsigned bit; /* 0: always applied */
} defences[] = {
    {"landlock", POLICY_DEFENCE_LANDLOCK},
    {"cgroup", POLICY_DEFENCE_CGROUP},
    {"namespaces", 0},
    {"seccomp", 0},
    {"capabilities", 0},
    {"no_new_privs", 0},
    {"rlimits", 0},
};

json_t *
pcpu_json(uint64_t milli)
{
	char buf[32];

	if (milli % 10 == 0)
		snprintf(buf, sizeof(buf), "%llu%%", (unsigned long long)(milli / 10));
	else
		snprintf(buf, sizeof(buf), "%llu.%llu%%", (unsigned long long)(milli / 10),
			 (unsigned long long)(milli % 10));
	return json_string(buf);
}

json_t *
pdefences_json(unsigned mask)
{
	json_t *a = json_array();

	for (size_t i = 0; a && i < ARRAY_SIZE(defences); i++)
		if ((defences[i].bit & mask) &&
		    json_array_append_new(a, json_string(defences[i].name)) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

/* "sandbox": {"require": [...], "optional": [...]}. */
static int
compile_defences(struct pctx *c, const json_t *sb, struct policy *p)
{
	static const char *const keys[] = {"require", "optional"};
	unsigned *dst[] = {&p->require, &p->optional};
	int first = 0, r;

	for (size_t k = 0; k < ARRAY_SIZE(keys); k++) {
		json_t *a = json_object_get(sb, keys[k]), *v;
		size_t i;
		if (!a)
			continue;
		push_key(c, keys[k]);
		if (!json_is_array(a)) {
			r = perr(c, NULL, false, "'%s' must be an array of defence names", keys[k]);
			pop(c);
			if (!c->lint || r == -ENOMEM)
				return r;
			first = r;
			continue;
		}
		json_array_foreach(a, i, v)
		{
			const char *n = json_string_value(v);
			size_t d = 0;
			while (n && d < ARRAY_SIZE(defences) && strcmp(defences[d].name, n) != 0)
				d++;
			push_idx(c, i);
			r = 0;
			if (!n || d == ARRAY_SIZE(defences))
				r = perr(c, NULL, false,
					 "unknown defence (known: landlock, cgroup, namespaces, "
					 "seccomp, capabilities, no_new_privs, rlimits)");
			else if (k == 1 && !defences[d].bit)
				r = perr(c, NULL, false,
					 "'%s' is always applied and cannot be optional", n);
			else if (k == 1 && (p->require & defences[d].bit))
				r = perr(c, NULL, false, "'%s' is both required and optional", n);
			else
				*dst[k] |= defences[d].bit;
			pop(c);
			if (r < 0 && (!c->lint || r == -ENOMEM)) {
				pop(c);
				return r;
			}
			if (r < 0)
				first = r;
		}
		pop(c);
	}
	return first;
}

static int
compile_mounts(struct pctx *c, const json_t *sb, struct policy *p)
{
	static const char *const known_sb[] = {"mounts", "network", "require", "optional", NULL};
	static const char *const known_m[] = {"host", "path", "mode", NULL};
	char norm[4097];
	json_t *mounts, *m;
	size_t i;
	int r;

	if (!json_is_object(sb))
		return perr(c, NULL, false, "'sandbox' must be an object");
	r = check_keys(c, sb, known_sb, "sandbox");
	if (r < 0)
		return r;
	json_t *net = json_object_get(sb, "network");
	if (net) {
		push_key(c, "network");
		if (!json_is_string(net) || (strcmp(json_string_value(net), "unix") != 0 &&
					     strcmp(json_string_value(net), "loopback") != 0)) {
			r = perr(c, NULL, false, "'network' must be \"unix\" or \"loopback\"");
			pop(c);
			if (!c->lint)
				return r;
		} else {
			p->network_loopback = strcmp(json_string_value(net), "loopback") == 0;
			p->network_declared = true;
			pop(c);
		}
	}
	if ((r = compile_defences(c, sb, p)) < 0 && (!c->lint || r == -ENOMEM))
		return r;
	if (!(mounts = json_object_get(sb, "mounts")))
		return r < 0 ? r : 0;
	push_key(c, "mounts");
	if (!json_is_array(mounts)) {
		r = perr(c, NULL, false, "'mounts' must be an array");
		goto out;
	}
	p->mounts = calloc(json_array_size(mounts) + 1, sizeof(*p->mounts));
	if (!p->mounts) {
		r = -ENOMEM;
		goto out;
	}
	json_array_foreach(mounts, i, m)
	{
		push_idx(c, i);
		json_t *host = json_object_get(m, "host"), *path = json_object_get(m, "path");
		json_t *mode = json_object_get(m, "mode");
		struct policy_mount *pm = &p->mounts[p->n_mounts];
		if (!json_is_object(m)) {
			r = perr(c, NULL, false, "a mount must be an object");
		} else if ((r = check_keys(c, m, known_m, "mount")) < 0) {
		} else if (!json_is_string(host) || json_string_value(host)[0] != '/' ||
			   policy_normalize_path(json_string_value(host), "/", norm, sizeof(norm)) <
			       0) {
			r = perr(c, host ? "host" : NULL, false,
				 "mount 'host' must be an absolute path");
		} else if (!(pm->host = strdup(norm))) {
			r = -ENOMEM;
		} else if (!json_is_string(path) || json_string_value(path)[0] != '/' ||
			   policy_normalize_path(json_string_value(path), "/", norm, sizeof(norm)) <
			       0 ||
			   strcmp(norm, "/") == 0) {
			free((char *)pm->host);
			pm->host = NULL;
			r = perr(c, path ? "path" : NULL, false,
				 "mount 'path' must be an absolute path other than '/'");
		} else if (!(pm->path = strdup(norm))) {
			free((char *)pm->host);
			pm->host = NULL;
			r = -ENOMEM;
		} else if (mode && !(json_is_string(mode) &&
				     (strcmp(json_string_value(mode), "ro") == 0 ||
				      strcmp(json_string_value(mode), "rw") == 0))) {
			free((char *)pm->host);
			free((char *)pm->path);
			pm->host = pm->path = NULL;
			r = perr(c, "mode", false, "mount 'mode' must be \"ro\" or \"rw\"");
		} else {
			pm->read_write = mode && strcmp(json_string_value(mode), "rw") == 0;
			p->n_mounts++;
		}
		pop(c);
		if (r < 0 && (!c->lint || r == -ENOMEM))
			goto out;
	}
out:
	pop(c);
	return r;
}

static bool
header_ok(const char *s)
{
	if (!*s || strlen(s) > 128)
		return false;
	for (; *s; s++)
		if (!strchr("!#$%&'*+-.^_`|~", *s) &&
		    !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9')))
			return false;
	return true;
}

static bool
format_ok(const char *s)
{
	const char *a = strstr(s, "{}");

	if (!a || strstr(a + 2, "{}") || strlen(s) > 1024)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int
secret_cmp(const void *a, const void *b)
{
	return strcmp(((const struct policy_secret *)a)->name,
		      ((const struct policy_secret *)b)->name);
}

static int
compile_secrets(struct pctx *c, const json_t *o, struct policy *p)
{
	static const char *const known[] = {"hosts", "header", "format", NULL};
	const char *name;
	json_t *s;
	size_t n = json_object_size(o);
	int r = 0;

	if (!json_is_object(o))
		return perr(c, NULL, false, "'secrets' must be an object");
	p->secrets = calloc(n + 1, sizeof(*p->secrets));
	p->secret_hosts = calloc(n + 1, sizeof(*p->secret_hosts));
	if (!p->secrets || !p->secret_hosts)
		return -ENOMEM;
	json_object_foreach((json_t *)o, name, s)
	{
		struct policy_secret *ps = &p->secrets[p->n_secrets];
		struct psecret_hosts *ph = &p->secret_hosts[p->n_secrets];
		json_t *hosts, *header, *format;

		push_key(c, name);
		if (!name_ok(name, 128)) {
			pop(c);
			r = perr(c, name, true, "invalid secret name '%s'", name);
			goto next;
		}
		if (!json_is_object(s)) {
			r = perr(c, NULL, false, "a secret must be an object");
			goto next_pop;
		}
		if ((r = check_keys(c, s, known, "secret")) < 0)
			goto next_pop;
		hosts = json_object_get(s, "hosts");
		header = json_object_get(s, "header");
		format = json_object_get(s, "format");
		if (!hosts) {
			r = perr(c, NULL, false, "secret '%s' has no 'hosts'", name);
			goto next_pop;
		}
		if (!json_is_string(header) || !header_ok(json_string_value(header))) {
			r = perr(c, header ? "header" : NULL, false,
				 "secret 'header' must be an HTTP header name");
			goto next_pop;
		}
		if (format && (!json_is_string(format) || !format_ok(json_string_value(format)))) {
			r = perr(c, "format", false,
				 "secret 'format' must contain \"{}\" once and no control "
				 "characters");
			goto next_pop;
		}
		if ((r = compile_hosts(c, "hosts", hosts, &ph->globs, &ph->n, NULL, NULL)) < 0)
			goto next_pop;
		ph->names = calloc(ph->n + 1, sizeof(char *));
		ps->name = strdup(name);
		ps->header = strdup(json_string_value(header));
		ps->format = strdup(format ? json_string_value(format) : "{}");
		if (!ph->names || !ps->name || !ps->header || !ps->format) {
			r = -ENOMEM;
		} else {
			for (size_t k = 0; k < ph->n; k++)
				ph->names[k] = ph->globs[k].src;
			ps->hosts = (const char *const *)ph->names;
		}
		/* counted even on ENOMEM so policy_free releases what was allocated */
		p->n_secrets++;
	next_pop:
		pop(c);
	next:
		if (r < 0 && (!c->lint || r == -ENOMEM))
			return r;
	}
	qsort(p->secrets, p->n_secrets, sizeof(*p->secrets), secret_cmp);
	/* keep the parallel host globs in the same order */
	struct psecret_hosts *sorted = calloc(n + 1, sizeof(*sorted));
	if (!sorted)
		return -ENOMEM;
	for (size_t i = 0; i < p->n_secrets; i++)
		for (size_t k = 0; k < p->n_secrets; k++)
			if (p->secret_hosts[k].names &&
			    p->secrets[i].hosts == (const char *const *)p->secret_hosts[k].names)
				sorted[i] = p->secret_hosts[k];
	free(p->secret_hosts);
	p->secret_hosts = sorted;
	return r;
}

static int
compile_rules(struct pctx *c, const json_t *rules, struct policy *p)
{
	size_t n, i;
	int r = 0;

	if (!json_is_array(rules))
		return perr(c, NULL, false, "'rules' must be an array");
	n = json_array_size(rules);
	if (n > POLICY_MAX_RULES)
		return perr(c, NULL, false, "too many rules (at most %d)", POLICY_MAX_RULES);
	p->rules = calloc(n + 1, sizeof(*p->rules));
	if (!p->rules)
		return -ENOMEM;
	for (i = 0; i < n; i++) {
		struct policy_rule *rule = &p->rules[p->n_rules];
		int rr;

		push_idx(c, i);
		rr = compile_rule(c, json_array_get(rules, i), rule);
		if (rr == 0) {
			/* ids are unique: they name the rule in every decision */
			for (size_t k = 0; k < p->n_rules; k++) {
				if (strcmp(p->rules[k].id, rule->id) != 0)
					continue;
				rr = perr(c, "id", false, "duplicate rule id '%s'", rule->id);
				break;
			}
		}
		pop(c);
		if (rr < 0) {
			rule_done(rule);
			r = rr;
			if (!c->lint || rr == -ENOMEM)
				return rr;
			continue;
		}
		rule->index = p->n_rules++;
	}
	return r;
}

int
policy_compile(json_t *doc, const char *buf, size_t len, struct plint *lint, struct policy **ret,
	       struct policy_error *err)
{
	static const char *const known[] = {"version", "extends", "description", "rules", "limits",
					    "sandbox", "secrets", "on_unknown",	 NULL};
	struct pctx c = {.buf = buf, .len = len, .lint = lint, .err = err};
	struct policy *p = NULL;
	json_t *v;
	int r = 0, rr;

#define STEP(expr)                                                                                 \
	do {                                                                                       \
		rr = (expr);                                                                       \
		if (rr < 0) {                                                                      \
			r = rr;                                                                    \
			if (!lint || rr == -ENOMEM)                                                \
				goto fail;                                                         \
		}                                                                                  \
	} while (0)

	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	if (!json_is_object(doc)) {
		r = perr(&c, NULL, false, "a policy must be a JSON object");
		goto fail;
	}
	STEP(check_keys(&c, doc, known, "policy"));
	v = json_object_get(doc, "version");
	if (!v)
		STEP(perr(&c, NULL, false, "missing \"version\": 1"));
	else if (!json_is_integer(v) || json_integer_value(v) != 1)
		STEP(perr(&c, "version", false, "unsupported version (only 1 is known)"));
	if ((v = json_object_get(doc, "extends"))) {
		if (!json_is_string(v) || !name_ok(json_string_value(v), 128))
			STEP(perr(&c, "extends", false,
				  "'extends' must be a policy name (letters, digits, '-', '_', "
				  "'.')"));
		else if (!(p->extends = strdup(json_string_value(v))))
			STEP(-ENOMEM);
	}
	if ((v = json_object_get(doc, "description"))) {
		if (!json_is_string(v))
			STEP(perr(&c, "description", false, "'description' must be a string"));
		else
			p->description = json_incref(v);
	}
	if ((v = json_object_get(doc, "on_unknown")))
		STEP(compile_on_unknown(&c, v, &p->on_unknown));
	if ((v = json_object_get(doc, "rules"))) {
		push_key(&c, "rules");
		rr = compile_rules(&c, v, p);
		pop(&c);
		STEP(rr);
	}
	if ((v = json_object_get(doc, "limits"))) {
		push_key(&c, "limits");
		rr = compile_limits(&c, v, &p->limits);
		json_t *cv = json_object_get(v, "cost");
		if (rr >= 0 && cv) {
			push_key(&c, "cost");
			rr = compile_costs(&c, cv, p);
			pop(&c);
		}
		json_t *hv = json_object_get(v, "cost_header");
		if (rr >= 0 && hv) {
			push_key(&c, "cost_header");
			rr = compile_cost_header(&c, hv, p);
			pop(&c);
		}
		pop(&c);
		STEP(rr);
	}
	if ((v = json_object_get(doc, "sandbox"))) {
		push_key(&c, "sandbox");
		rr = compile_mounts(&c, v, p);
		pop(&c);
		STEP(rr);
	}
	if ((v = json_object_get(doc, "secrets"))) {
		push_key(&c, "secrets");
		rr = compile_secrets(&c, v, p);
		pop(&c);
		STEP(rr);
	}
#undef STEP
	if (c.oom) {
		r = -ENOMEM;
		goto fail;
	}
	rr = pindex_build(p);
	if (rr < 0) {
		r = rr;
		goto fail;
	}
	*ret = p;
	return r;
fail:
	policy_free(p);
	return r;
}

int
policy_parse(const char *buf, size_t len, struct policy **ret, struct policy_error *err)
{
	json_error_t jerr;
	struct policy_error dummy;

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!buf) {
		snprintf(err->message, sizeof(err->message), "no policy text");
		return -EINVAL;
	}
	cleanup_json json_t *doc = agd_json_parse(buf, len, POLICY_MAX_DEPTH, &jerr);
	if (!doc) {
		err->line = jerr.line > 0 ? jerr.line : 0;
		err->column = jerr.column > 0 ? jerr.column : 0;
		snprintf(err->message, sizeof(err->message), "%s", jerr.text);
		return -EINVAL;
	}
	struct policy *p = NULL;
	int r = policy_compile(doc, buf, len, NULL, &p, err);
	if (r < 0) {
		if (r == -ENOMEM && err->message[0] == '\0')
			snprintf(err->message, sizeof(err->message), "out of memory");
		return r;
	}
	*ret = p;
	return 0;
}

/* ---- accessors ---- */

const char *
policy_rule_id(const struct policy_rule *r)
{
	return r ? r->id : "";
}

const char *const *
policy_rule_approvers(const struct policy_rule *r)
{
	static const char *const none[] = {NULL};

	return r && r->approvers ? (const char *const *)r->approvers : none;
}

uint64_t
policy_rule_expires_ms(const struct policy_rule *r)
{
	return r ? r->expires_ms : 0;
}

const char *
policy_rule_description(const struct policy_rule *r)
{
	json_t *d = r && r->src ? json_object_get(r->src, "description") : NULL;

	return json_is_string(d) ? json_string_value(d) : NULL;
}

enum policy_decision
policy_rule_decision(const struct policy_rule *r)
{
	return r ? r->decision : POLICY_DENY;
}

size_t
policy_rule_count(const struct policy *p)
{
	return p ? p->n_rules : 0;
}

const struct policy_rule *
policy_rule_at(const struct policy *p, size_t i)
{
	return p && i < p->n_rules ? &p->rules[i] : NULL;
}

const char *
policy_decision_name(enum policy_decision d)
{
	switch (d) {
	case POLICY_ALLOW:
		return "allow";
	case POLICY_ASK:
		return "ask";
	case POLICY_DENY:
		break;
	}
	return "deny";
}

uint64_t
policy_tool_cost(const struct policy *p, const char *tool)
{
	json_t *v = p->costs ? json_object_get(p->costs, tool) : NULL;

	return v ? (uint64_t)json_integer_value(v) : 0;
}

const char *
policy_cost_header(const struct policy *p)
{
	return p->cost_header;
}

const struct policy_limits *
policy_limits(const struct policy *p)
{
	return &p->limits;
}

static const char *const on_unknown_names[] = {"", "retry", "ask", "skip", "fail"};

const char *
policy_on_unknown_name(enum policy_on_unknown u)
{
	return (size_t)u < ARRAY_SIZE(on_unknown_names) ? on_unknown_names[u] : "";
}

int
policy_on_unknown_parse(const char *s)
{
	for (size_t i = 1; s && i < ARRAY_SIZE(on_unknown_names); i++)
		if (strcmp(s, on_unknown_names[i]) == 0)
			return (int)i;
	return -1;
}

enum policy_on_unknown
policy_on_unknown(const struct policy *p, const char *tool, const json_t *args, const char *cwd)
{
	struct policy_result pr;

	if (policy_eval(p, tool, args, cwd, &pr) == 0 && pr.rule && pr.rule->on_unknown)
		return pr.rule->on_unknown;
	return p ? p->on_unknown : POLICY_UNKNOWN_UNSET;
}

bool
policy_network_loopback(const struct policy *p)
{
	return p->network_loopback;
}

unsigned
policy_sandbox_require(const struct policy *p)
{
	return p->require;
}

size_t
policy_mounts(const struct policy *p, const struct policy_mount **ret)
{
	if (ret)
		*ret = p->mounts;
	return p->n_mounts;
}

const char *
policy_extends(const struct policy *p)
{
	return p->extends;
}

size_t
policy_secrets(const struct policy *p, const struct policy_secret **ret)
{
	if (ret)
		*ret = p->secrets;
	return p->n_secrets;
}
