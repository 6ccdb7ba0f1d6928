/* Policy layers that only tighten: system, then user, then run (then sub-runs).
 * A call is allowed only when every layer allows it, asks when some layer asks
 * and none denies, and is denied when any layer denies or has no matching rule.
 * Limits take the tightest value any layer sets; sandbox mounts and secrets
 * must be granted by every layer that declares any. Pure: no syscalls. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy_int.h"

int
policy_stack_eval(const struct policy_layer *layers, size_t n, const char *tool, const json_t *args,
		  const char *cwd, struct policy_result *ret, size_t *ret_layer)
{
	struct policy_result cur;
	size_t pick = 0;
	bool have = false;
	int e;

	if (!layers || n == 0 || !ret)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		e = policy_eval(layers[i].policy, tool, args, cwd, &cur);
		if (e < 0)
			return e;
		/* The first layer with the strictest decision explains it; among
		 * allows, the deepest path_root is the narrowest grant. */
		bool better = !have || cur.decision < ret->decision ||
			      (cur.decision == POLICY_ALLOW && ret->decision == POLICY_ALLOW &&
			       strlen(cur.path_root) > strlen(ret->path_root));
		if (better) {
			*ret = cur;
			pick = i;
			have = true;
		}
		if (ret->decision == POLICY_DENY)
			break; /* nothing is stricter */
	}
	if (n > 1) {
		/* Appended in place; a reason too long for it is cut, not the name. */
		size_t len = strnlen(ret->reason, sizeof(ret->reason));
		int w = snprintf(NULL, 0, " in layer '%s'", layers[pick].name);
		if (w > 0 && (size_t)w < sizeof(ret->reason)) {
			if (len + (size_t)w >= sizeof(ret->reason))
				len = sizeof(ret->reason) - 1 - (size_t)w;
			snprintf(ret->reason + len, sizeof(ret->reason) - len, " in layer '%s'",
				 layers[pick].name);
		}
	}
	if (ret_layer)
		*ret_layer = pick;
	return 0;
}

enum policy_on_unknown
policy_stack_on_unknown(const struct policy_layer *layers, size_t n, const char *tool,
			const json_t *args, const char *cwd)
{
	enum policy_on_unknown u = POLICY_UNKNOWN_UNSET;

	for (size_t i = 0; layers && i < n; i++) {
		enum policy_on_unknown x = policy_on_unknown(layers[i].policy, tool, args, cwd);
		if (x > u)
			u = x;
	}
	return u;
}

bool
policy_stack_tool_visible(const struct policy_layer *layers, size_t n, const char *tool)
{
	for (size_t i = 0; i < n; i++)
		if (!policy_tool_visible(layers[i].policy, tool))
			return false;
	return n > 0;
}

static uint64_t
tighter(uint64_t a, uint64_t b)
{
	return !a ? b : !b ? a : a < b ? a : b;
}

/* True if q's mounts grant m: the same host directory at the same sandbox
 * path, read-write only where q grants read-write. */
static bool
mount_granted(const struct policy_mount *m, const struct policy_mount *q, size_t nq)
{
	for (size_t i = 0; i < nq; i++)
		if (strcmp(m->host, q[i].host) == 0 && strcmp(m->path, q[i].path) == 0 &&
		    (!m->read_write || q[i].read_write))
			return true;
	return false;
}

static bool
secret_granted(const struct policy_secret *s, const struct policy *q)
{
	const struct policy_secret *qs = NULL;
	size_t nq = policy_secrets(q, &qs);

	for (size_t i = 0; i < nq; i++) {
		if (strcmp(s->name, qs[i].name) != 0 || strcmp(s->header, qs[i].header) != 0 ||
		    strcmp(s->format, qs[i].format) != 0)
			continue;
		/* every host of s must be listed by q too */
		for (const char *const *h = s->hosts; h && *h; h++) {
			bool found = false;
			for (const char *const *k = qs[i].hosts; k && *k && !found; k++)
				found = strcmp(*h, *k) == 0;
			if (!found)
				return false;
		}
		return true;
	}
	return false;
}

static json_t *
secret_doc(const struct policy_secret *s)
{
	json_t *hosts = json_array();

	for (const char *const *h = s->hosts; hosts && h && *h; h++)
		if (json_array_append_new(hosts, json_string(*h)) < 0) {
			json_decref(hosts);
			return NULL;
		}
	return hosts ? json_pack("{s:o,s:s,s:s}", "hosts", hosts, "header", s->header, "format",
				 s->format)
		     : NULL;
}

json_t *
policy_stack_flatten(const struct policy_layer *layers, size_t n)
{
	struct policy_limits l = {0};
	cleanup_json json_t *doc = json_pack("{s:i,s:[],s:{},s:{s:[]},s:{}}", "version", 1, "rules",
					     "limits", "sandbox", "mounts", "secrets");
	cleanup_json json_t *costs = json_object();

	if (!doc || !costs || n == 0)
		return NULL;
	json_t *lim = json_object_get(doc, "limits");
	json_t *mounts = json_object_get(json_object_get(doc, "sandbox"), "mounts");
	json_t *secrets = json_object_get(doc, "secrets");
	l.ask_on_limit = true;
	for (size_t i = 0; i < n; i++) {
		const struct policy_limits *x = policy_limits(layers[i].policy);
		l.calls_per_minute = tighter(l.calls_per_minute, x->calls_per_minute);
		l.max_calls = tighter(l.max_calls, x->max_calls);
		l.wall_clock_ms = tighter(l.wall_clock_ms, x->wall_clock_ms);
		l.memory_bytes = tighter(l.memory_bytes, x->memory_bytes);
		l.pids = tighter(l.pids, x->pids);
		l.cpu_milli = tighter(l.cpu_milli, x->cpu_milli);
		l.tool_calls_per_minute =
		    tighter(l.tool_calls_per_minute, x->tool_calls_per_minute);
		l.bytes_in = tighter(l.bytes_in, x->bytes_in);
		l.bytes_out = tighter(l.bytes_out, x->bytes_out);
		l.max_spend = tighter(l.max_spend, x->max_spend);
		l.user_calls_per_minute =
		    tighter(l.user_calls_per_minute, x->user_calls_per_minute);
		/* The topmost layer's cost header: a lower layer can only add
		 * spend through it, never take away the one above's. */
		if (!json_object_get(lim, "cost_header") && policy_cost_header(layers[i].policy) &&
		    json_object_set_new(lim, "cost_header",
					json_string(policy_cost_header(layers[i].policy))) < 0)
			return NULL;
		/* "ask" instead of a denial only when every layer says so */
		l.ask_on_limit = l.ask_on_limit && x->ask_on_limit;
		/* the highest cost any layer charges for a tool */
		cleanup_json json_t *lj = policy_to_json(layers[i].policy);
		const char *tool;
		json_t *c;
		json_object_foreach(json_object_get(json_object_get(lj, "limits"), "cost"), tool, c)
		{
			json_t *have = json_object_get(costs, tool);
			if ((!have || json_integer_value(have) < json_integer_value(c)) &&
			    json_object_set(costs, tool, c) < 0)
				return NULL;
		}
	}
	const struct {
		const char *key;
		uint64_t v;
	} ints[] = {{"calls_per_minute", l.calls_per_minute},
		    {"max_calls", l.max_calls},
		    {"wall_clock", l.wall_clock_ms},
		    {"memory", l.memory_bytes},
		    {"pids", l.pids},
		    {"tool_calls_per_minute", l.tool_calls_per_minute},
		    {"bytes_in", l.bytes_in},
		    {"bytes_out", l.bytes_out},
		    {"max_spend", l.max_spend},
		    {"user_calls_per_minute", l.user_calls_per_minute}};
	for (size_t i = 0; i < ARRAY_SIZE(ints); i++)
		if (ints[i].v &&
		    json_object_set_new(lim, ints[i].key, json_integer((json_int_t)ints[i].v)) < 0)
			return NULL;
	if (l.ask_on_limit && json_object_set_new(lim, "on_limit", json_string("ask")) < 0)
		return NULL;
	if (l.cpu_milli && json_object_set_new(lim, "cpu", pcpu_json(l.cpu_milli)) < 0)
		return NULL;
	if (json_object_size(costs) && json_object_set(lim, "cost", costs) < 0)
		return NULL;

	/* Mounts and secrets: each declared one survives only if every other
	 * layer that declares any grants it too; a layer that declares none
	 * leaves them to the others. */
	for (size_t i = 0; i < n; i++) {
		const struct policy_mount *m = NULL;
		size_t nm = policy_mounts(layers[i].policy, &m);
		for (size_t k = 0; k < nm; k++) {
			bool ok = true, dup = false;
			for (size_t j = 0; j < n && ok; j++) {
				const struct policy_mount *q = NULL;
				size_t nq = policy_mounts(layers[j].policy, &q);
				if (j != i && nq)
					ok = mount_granted(&m[k], q, nq);
				if (j < i && nq && mount_granted(&m[k], q, nq) &&
				    mount_granted(q, &m[k], 1))
					dup = true; /* kept already from layer j */
			}
			if (ok && !dup &&
			    json_array_append_new(mounts,
						  json_pack("{s:s,s:s,s:s}", "host", m[k].host,
							    "path", m[k].path, "mode",
							    m[k].read_write ? "rw" : "ro")) < 0)
				return NULL;
		}
		const struct policy_secret *s = NULL;
		size_t ns = policy_secrets(layers[i].policy, &s);
		for (size_t k = 0; k < ns; k++) {
			bool ok = !json_object_get(secrets, s[k].name);
			for (size_t j = 0; j < n && ok; j++) {
				const struct policy_secret *q = NULL;
				if (j != i && policy_secrets(layers[j].policy, &q))
					ok = secret_granted(&s[k], layers[j].policy);
			}
			if (ok && json_object_set_new(secrets, s[k].name, secret_doc(&s[k])) < 0)
				return NULL;
		}
	}
	/* Loopback networking only when some layer asks for it and every layer
	 * that speaks of the network does. */
	bool want_net = false, deny_net = false;
	for (size_t i = 0; i < n; i++) {
		if (policy_network_loopback(layers[i].policy))
			want_net = true;
		else if (layers[i].policy->network_declared)
			deny_net = true;
	}
	if (want_net && !deny_net &&
	    json_object_set_new(json_object_get(doc, "sandbox"), "network",
				json_string("loopback")) < 0)
		return NULL;
	if (json_object_size(lim) == 0)
		json_object_del(doc, "limits");
	/* A defence any layer requires is required. */
	unsigned req = 0;
	for (size_t i = 0; i < n; i++)
		req |= policy_sandbox_require(layers[i].policy);
	if (req && json_object_set_new(json_object_get(doc, "sandbox"), "require",
				       pdefences_json(req)) < 0)
		return NULL;
	if (json_array_size(mounts) == 0 && !(want_net && !deny_net) && !req)
		json_object_del(doc, "sandbox");
	if (json_object_size(secrets) == 0)
		json_object_del(doc, "secrets");
	return steal_ptr(&doc);
}

json_t *
policy_stack_narrow(const json_t *stored, const json_t *reloaded)
{
	cleanup_json json_t *out = json_deep_copy(stored);
	size_t i;
	json_t *layer;

	if (!json_is_array(out) || !json_is_array(reloaded))
		return NULL;
	json_array_foreach(reloaded, i, layer)
	{
		/* A layer the run already has adds nothing; any other one can only
		 * take away (the decision is the strictest over all layers). */
		bool known = false;
		size_t k;
		json_t *have;
		json_array_foreach(out, k, have)
		{
			known |= json_equal(json_object_get(have, "policy"),
					    json_object_get(layer, "policy"));
		}
		if (known)
			continue;
		const char *name = json_string_value(json_object_get(layer, "name"));
		cleanup_free char *rn = agd_asprintf("%s (reloaded)", name ? name : "layer");
		json_t *copy = rn ? json_pack("{s:s,s:O}", "name", rn, "policy",
					      json_object_get(layer, "policy"))
				  : NULL;
		if (!copy || json_array_append_new(out, copy) < 0)
			return NULL;
	}
	return steal_ptr(&out);
}

bool
policy_rule_matches_tool(const struct policy_rule *r, const char *tool)
{
	return r && tool && pglob_match(&r->tool, tool, strlen(tool));
}

const json_t *
policy_rule_json(const struct policy_rule *r)
{
	return r ? r->src : NULL;
}

/* The argument matchers of a rule as one line: "path [\"/srv/ **\"]; method \"GET\"". */
static int
append_matchers(json_t *lines, const struct policy_rule *r)
{
	static const char *const keys[] = {"path", "host", "method", "url_prefix", "max_bytes"};
	char buf[1024];
	size_t off = 0;

	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		json_t *v = json_object_get(r->src, keys[i]);
		if (!v)
			continue;
		cleanup_free char *t = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		if (!t)
			return -ENOMEM;
		int w =
		    snprintf(buf + off, sizeof(buf) - off, "%s%s %s", off ? "; " : "", keys[i], t);
		if (w < 0 || (size_t)w >= sizeof(buf) - off)
			break;
		off += (size_t)w;
	}
	cleanup_free char *line =
	    agd_asprintf("%s (rule '%s'): %s", policy_decision_name(r->decision), r->id,
			 off ? buf : "any arguments");
	if (!line || json_array_append_new(lines, json_string(line)) < 0)
		return -ENOMEM;
	return 0;
}

json_t *
policy_stack_constraints(const struct policy_layer *layers, size_t n, const char *tool)
{
	cleanup_json json_t *out = json_array();

	if (!out)
		return NULL;
	for (size_t i = 0; i < n; i++) {
		const struct policy *p = layers[i].policy;
		for (size_t k = 0; k < p->n_rules; k++) {
			const struct policy_rule *r = &p->rules[k];
			if (r->decision == POLICY_DENY || !policy_rule_matches_tool(r, tool))
				continue;
			if (append_matchers(out, r) < 0)
				return NULL;
			if (n > 1) {
				json_t *last = json_array_get(out, json_array_size(out) - 1);
				cleanup_free char *s = agd_asprintf(
				    "%s [layer %s]", json_string_value(last), layers[i].name);
				if (!s || json_string_set(last, s) < 0)
					return NULL;
			}
		}
	}
	return steal_ptr(&out);
}
