/* A suggested rule for a denied call: the narrowest allow rule in the
 * policy language that would have matched it, for the timeline and the audit
 * record ("what rule would allow this"). Pure. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy_int.h"

/* Characters a rule id may use; anything else becomes '-'. */
static void
id_part(char *dst, size_t dstsz, const char *src)
{
	size_t k = 0;

	for (const char *p = src; *p && k + 1 < dstsz; p++) {
		char ch = *p;
		bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			  (ch >= '0' && ch <= '9') || ch == '.' || ch == '_';
		if (!ok && (k == 0 || dst[k - 1] == '-'))
			continue;
		dst[k++] = ok ? ch : '-';
	}
	while (k > 0 && dst[k - 1] == '-')
		k--;
	dst[k] = '\0';
}

json_t *
policy_suggest_rule(const char *tool, const json_t *args, const char *cwd)
{
	char idbuf[192], part[64], norm[4097];
	const char *path = json_string_value(json_object_get(args, "path"));
	const char *url = json_string_value(json_object_get(args, "url"));
	const char *method = json_string_value(json_object_get(args, "method"));

	if (!tool)
		return NULL;
	id_part(part, sizeof(part), tool);
	if (path && strncmp(tool, "fs.", 3) == 0 &&
	    policy_normalize_path(path, cwd, norm, sizeof(norm)) == 0) {
		/* The file itself: a wider grant is the operator's call, not ours. */
		char leaf[48];
		const char *base = strrchr(norm, '/');
		id_part(leaf, sizeof(leaf), base && base[1] ? base + 1 : "root");
		snprintf(idbuf, sizeof(idbuf), "allow-%s-%s", part, leaf);
		return json_pack("{s:s,s:s,s:s,s:s}", "id", idbuf, "tool", tool, "path", norm,
				 "decision", "allow");
	}
	if (url && strcmp(tool, "http.request") == 0) {
		struct purl *u = malloc(sizeof(*u));
		json_t *rule = NULL;
		if (!u)
			return NULL;
		if (purl_parse(url, strlen(url), u) == 0 && !u->userinfo) {
			char h[64];
			id_part(h, sizeof(h), u->host);
			snprintf(idbuf, sizeof(idbuf), "allow-http-%s", h);
			rule = json_pack("{s:s,s:s,s:s,s:s}", "id", idbuf, "tool", tool, "host",
					 u->host, "decision", "allow");
			if (rule && method)
				json_object_set_new(rule, "method", json_string(method));
		}
		free(u);
		return rule;
	}
	snprintf(idbuf, sizeof(idbuf), "allow-%s", part);
	return json_pack("{s:s,s:s,s:s}", "id", idbuf, "tool", tool, "decision", "allow");
}
