/* A run's policy stack: the layers stored in its spec (system, user, run...),
 * each of which may only narrow the ones above it. Calls are decided by every
 * layer (policy_stack_eval); r->policy holds what the stack grants besides
 * rules (limits, mounts, secrets). With one layer r->policy is that layer. */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/internal.h"
#include "supervisor/tools/tools.h"

#define SUP_MAX_LAYERS 8

struct sup_layers {
	size_t n;
	struct policy_layer v[SUP_MAX_LAYERS];
	struct policy *owned[SUP_MAX_LAYERS];
	json_t *src; /* the stored layers: the names point into it */
};

struct sup_layers *
sup_layers_free(struct sup_layers *l)
{
	if (!l)
		return NULL;
	for (size_t i = 0; i < l->n; i++)
		policy_free(l->owned[i]);
	json_decref(l->src);
	free(l);
	return NULL;
}

static int
parse_doc(const json_t *doc, struct policy **ret, struct policy_error *perr)
{
	cleanup_free char *text = json_dumps(doc, JSON_COMPACT);

	if (!text)
		return -ENOMEM;
	return policy_parse(text, strlen(text), ret, perr);
}

int
sup_layers_load(struct sup_run *r, const json_t *pol, char *reason, size_t reasonsz)
{
	struct sup_layers *l = calloc(1, sizeof(*l));
	struct policy_error perr = {0};
	size_t i;
	json_t *layer;
	int e;

	if (!l)
		return -ENOMEM;
	/* A reload's stack is not in the spec: hold it as long as the names. */
	l->src = json_incref((json_t *)pol);
	if (json_is_object(pol)) {
		/* A spec from before layers: one document. */
		l->v[0].name = "run";
		e = parse_doc(pol, &l->owned[0], &perr);
		if (e < 0)
			goto bad;
		l->v[0].policy = l->owned[0];
		l->n = 1;
	} else if (json_is_array(pol) && json_array_size(pol) >= 1 &&
		   json_array_size(pol) <= SUP_MAX_LAYERS) {
		json_array_foreach(pol, i, layer)
		{
			const char *name = NULL;
			json_t *doc = NULL;
			json_error_t jerr;
			if (json_unpack_ex(layer, &jerr, JSON_STRICT, "{s:s,s:o}", "name", &name,
					   "policy", &doc) < 0 ||
			    !json_is_object(doc)) {
				snprintf(perr.message, sizeof(perr.message),
					 "layer %zu: want {\"name\": string, \"policy\": object}",
					 i);
				e = -EBADMSG;
				goto bad;
			}
			e = parse_doc(doc, &l->owned[i], &perr);
			l->n = i + 1; /* owned[i] is freed with the rest */
			if (e < 0)
				goto bad;
			l->v[i] = (struct policy_layer){name, l->owned[i]};
		}
	} else {
		snprintf(perr.message, sizeof(perr.message),
			 "want a policy or an array of 1..%d layers", SUP_MAX_LAYERS);
		e = -EBADMSG;
		goto bad;
	}

	if (l->n == 1) {
		cleanup_json json_t *doc = policy_to_json(l->v[0].policy);
		e = doc ? parse_doc(doc, &r->policy, &perr) : -ENOMEM;
	} else {
		cleanup_json json_t *flat = policy_stack_flatten(l->v, l->n);
		e = flat ? parse_doc(flat, &r->policy, &perr) : -ENOMEM;
	}
	if (e < 0)
		goto bad;
	sup_layers_free(r->layers);
	r->layers = l;
	return 0;
bad:
	snprintf(reason, reasonsz, "run %s has an invalid stored policy: %s", r->id, perr.message);
	sup_layers_free(l);
	return e == -ENOMEM ? e : -EBADMSG;
}

int
sup_run_narrow_policy(struct sup_run *r, const json_t *reloaded, char *reason, size_t reasonsz)
{
	const json_t *pol = json_object_get(r->spec, "policy");
	/* A spec from before layers holds one document: its one layer. */
	cleanup_json json_t *stored = json_is_object(pol)
					  ? json_pack("[{s:s,s:O}]", "name", "run", "policy", pol)
					  : json_incref((json_t *)pol);
	struct policy *old = r->policy;
	int e;

	if (!stored)
		return -ENOMEM;
	cleanup_json json_t *narrowed = policy_stack_narrow(stored, reloaded);
	if (!narrowed) {
		snprintf(reason, reasonsz, "run %s: the reloaded layers cannot be combined", r->id);
		return json_is_array(stored) && json_is_array(reloaded) ? -ENOMEM : -EINVAL;
	}
	/* On success sup_layers_load has replaced both the layers and
	 * r->policy (limits, mounts, secrets); on failure neither. */
	e = sup_layers_load(r, narrowed, reason, reasonsz);
	if (e < 0)
		return e;
	if (old != r->policy)
		policy_free(old);
	return 0;
}

int
sup_policy_eval(struct sup_run *r, const char *tool, const json_t *args, struct policy_result *ret)
{
	if (!r->layers)
		return -EINVAL;
	return policy_stack_eval(r->layers->v, r->layers->n, tool, args, r->cwd, ret, NULL);
}

enum policy_on_unknown
sup_policy_on_unknown(const struct sup_run *r, const char *tool, const json_t *args)
{
	if (!r->layers)
		return POLICY_UNKNOWN_UNSET;
	return policy_stack_on_unknown(r->layers->v, r->layers->n, tool, args, r->cwd);
}

bool
sup_tool_visible(struct sup_run *r, const char *tool)
{
	return r->layers && policy_stack_tool_visible(r->layers->v, r->layers->n, tool);
}

json_t *
sup_tool_entry(struct sup_run *r, const struct tool_def *t)
{
	cleanup_json json_t *entry = tools_describe(t);
	cleanup_json json_t *lines =
	    r->layers ? policy_stack_constraints(r->layers->v, r->layers->n, t->name) : NULL;

	if (!entry || !lines)
		return NULL;
	/* The agent learns what it may do from the description it already reads. */
	size_t i;
	json_t *line;
	cleanup_free char *desc = strdup(t->description);
	if (!desc)
		return NULL;
	json_array_foreach(lines, i, line)
	{
		char *nd = agd_asprintf("%s%s%s", desc, i ? "\n- " : "\nPolicy for this run:\n- ",
					json_string_value(line));
		if (!nd)
			return NULL;
		free(desc);
		desc = nd;
	}
	if (json_object_set_new(entry, "description", json_string(desc)) < 0)
		return NULL;
	return steal_ptr(&entry);
}

/* The URL's host is an IP address literal (v4, or v6 in brackets). */
static bool
host_is_literal(const char *url)
{
	const char *h = strstr(url, "://");
	char host[64];
	size_t n = 0;

	if (!h)
		return false;
	h += 3;
	if (strpbrk(h, "@") && strchr(h, '@') < (strchr(h, '/') ? strchr(h, '/') : h + strlen(h)))
		return false; /* userinfo: never treated as a literal */
	if (*h == '[')
		return true;
	while (h[n] && h[n] != ':' && h[n] != '/' && h[n] != '?' && h[n] != '#' &&
	       n + 1 < sizeof(host)) {
		host[n] = h[n];
		n++;
	}
	host[n] = '\0';
	struct in_addr a;
	return n && inet_pton(AF_INET, host, &a) == 1;
}

bool
sup_egress_named(struct sup_run *r, const char *tool, const json_t *args)
{
	const char *url = json_string_value(json_object_get(args, "url"));

	if (!r->layers || !url || !host_is_literal(url))
		return false;
	/* An address literal matches only a host or url_prefix matcher that names
	 * it (or a block around it); a rule without one matches any URL and
	 * names nothing. Every layer must name it. */
	for (size_t i = 0; i < r->layers->n; i++) {
		struct policy_result pr;
		if (policy_eval(r->layers->v[i].policy, tool, args, r->cwd, &pr) < 0 || !pr.rule ||
		    pr.decision == POLICY_DENY)
			return false;
		const json_t *src = policy_rule_json(pr.rule);
		if (!json_object_get(src, "host") && !json_object_get(src, "url_prefix"))
			return false;
	}
	return true;
}
