/* Fuzz target for policy files: parse, lint, evaluate a few fixed calls, and check
 * that policy_to_json round-trips to a policy that decides the same way. The input
 * is also used as a path and as a URL against a fixed policy, which exercises the
 * normaliser and the URL parser on hostile text. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const calls[][2] = {
    {"fs.read", "{\"path\":\"/srv/project/a.c\"}"},
    {"fs.write", "{\"path\":\"rel/../x\",\"content\":\"hello\"}"},
    {"fs.read", "{\"path\":\"/srv/project/.git/hooks/x\"}"},
    {"http.request", "{\"method\":\"GET\",\"url\":\"https://api.example.com/v1/x\"}"},
    {"http.request", "{\"method\":\"POST\",\"url\":\"http://127.1:8080/\"}"},
    {"http.request", "{\"method\":\"GET\",\"url\":\"http://a.com@evil.com/\"}"},
    {"mcp.github.create_issue", "{}"},
    {"kv.get", "[]"},
};

static struct policy *fixed;

static void
same_or_abort(const struct policy *a, const struct policy *b)
{
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
		cleanup_json json_t *args = json_loads(calls[i][1], 0, NULL);
		struct policy_result ra, rb;
		if (!args)
			abort();
		if (policy_eval(a, calls[i][0], args, "/srv/project", &ra) < 0 ||
		    policy_eval(b, calls[i][0], args, "/srv/project", &rb) < 0)
			abort();
		if (ra.decision != rb.decision || strcmp(ra.rule_id, rb.rule_id) != 0 ||
		    strcmp(ra.path_root, rb.path_root) != 0 || strcmp(ra.reason, rb.reason) != 0) {
			fprintf(stderr, "round trip changed %s: %s vs %s\n", calls[i][0], ra.reason,
				rb.reason);
			abort();
		}
		(void)policy_tool_visible(a, calls[i][0]);
	}
}

static void
as_argument(const uint8_t *data, size_t size)
{
	static const char fixed_text[] =
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"p\",\"tool\":\"fs.*\",\"path\":[\"/srv/**/x?/*.c\",\"**/.git/**\"],"
	    "\"decision\":\"allow\"},"
	    "{\"id\":\"d\",\"tool\":\"fs.*\",\"path\":\"/etc/**\",\"decision\":\"deny\"},"
	    "{\"id\":\"h\",\"tool\":\"http.request\",\"host\":[\"**.example.com\",\"127.0.0.1\","
	    "\"[::1]\"],\"url_prefix\":\"https://api.example.com/v1/\",\"method\":\"GET\","
	    "\"max_bytes\":100,\"decision\":\"allow\"},"
	    "{\"id\":\"e\",\"tool\":\"http.request\",\"host\":\"*.evil.com\",\"decision\":"
	    "\"deny\"}]}";
	struct policy_result res;
	char norm[4097];

	if (!fixed && policy_parse(fixed_text, strlen(fixed_text), &fixed, NULL) < 0)
		abort();
	if (size > 9000)
		return;
	cleanup_free char *s = malloc(size + 1);
	if (!s)
		return;
	memcpy(s, data, size);
	s[size] = '\0';
	(void)policy_normalize_path(s, "/srv/project", norm, sizeof(norm));
	cleanup_json json_t *a = json_object();
	json_object_set_new(a, "path", json_stringn(s, size));
	json_object_set_new(a, "url", json_stringn(s, size));
	json_object_set_new(a, "method", json_string("GET"));
	if (policy_eval(fixed, "fs.read", a, "/srv", &res) < 0 ||
	    policy_eval(fixed, "http.request", a, "/srv", &res) < 0)
		abort();
	(void)policy_secret_for_url(fixed, s);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct policy *p = NULL, *q = NULL;
	struct policy_error err;
	struct policy_finding *f = NULL;
	size_t n = 0;

	as_argument(data, size);
	if (policy_lint((const char *)data, size, &f, &n) == 0)
		policy_findings_free(f);
	if (policy_parse((const char *)data, size, &p, &err) < 0)
		return 0;
	cleanup_json json_t *j = policy_to_json(p);
	if (!j)
		abort();
	cleanup_free char *text = json_dumps(j, JSON_COMPACT);
	if (!text)
		abort();
	if (policy_parse(text, strlen(text), &q, &err) < 0) {
		fprintf(stderr, "policy_to_json output does not parse: %s\n%s\n", err.message,
			text);
		abort();
	}
	same_or_abort(p, q);
	struct policy *m = policy_merge(p, q); /* same ids on both sides: must be refused */
	if (m && policy_rule_count(p) > 0)
		abort();
	policy_free(m);
	policy_free(q);
	policy_free(p);
	return 0;
}
