/* policy_bench: latency of policy_eval on a generated 1,000-rule policy and the
 * memory a loaded policy takes.
 *
 *   policy_bench [RULES] [CALLS]     (defaults 1000 rules, 200000 calls)
 *
 * Prints p50/p90/p99/max per evaluation in nanoseconds for a mixed workload
 * (fs paths that hit allow, deny and no rule; http calls by host and method;
 * wildcard tool names), the parse time, and the heap bytes held by the policy. */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* A policy shaped like a large multi-tenant one: many project roots, deny rules
 * carved out of them, many API hosts, and some wildcard tool rules. */
static json_t *
generate(size_t n)
{
	json_t *rules = json_array();
	char id[64], a[128], b[128];

	for (size_t i = 0; i < n; i++) {
		json_t *r;
		snprintf(id, sizeof(id), "r%zu", i);
		switch (i % 10) {
		case 0:
		case 1:
		case 2:
		case 3:
			snprintf(a, sizeof(a), "/srv/proj%zu/**", i);
			r = json_pack("{s:s, s:s, s:s, s:s}", "id", id, "tool",
				      (i % 3) ? "fs.read" : "fs.*", "path", a, "decision", "allow");
			break;
		case 4:
		case 5:
			snprintf(a, sizeof(a), "/srv/proj%zu/**/.git/hooks/**", i - 4);
			snprintf(b, sizeof(b), "/srv/proj%zu/secret/*.key", i - 4);
			r = json_pack("{s:s, s:s, s:[s,s], s:s}", "id", id, "tool", "fs.*", "path",
				      a, b, "decision", "deny");
			break;
		case 6:
		case 7:
		case 8:
			snprintf(a, sizeof(a), "api%zu.example.com", i);
			r = json_pack("{s:s, s:s, s:s, s:[s,s], s:s}", "id", id, "tool",
				      "http.request", "host", a, "method", "GET", "HEAD",
				      "decision", (i % 2) ? "allow" : "ask");
			break;
		default:
			snprintf(a, sizeof(a), "mcp.server%zu.*", i);
			r = json_pack("{s:s, s:s, s:s}", "id", id, "tool", a, "decision", "ask");
		}
		json_array_append_new(rules, r);
	}
	return json_pack("{s:i, s:o}", "version", 1, "rules", rules);
}

int
main(int argc, char **argv)
{
	size_t n_rules = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000;
	size_t n_calls = argc > 2 ? strtoul(argv[2], NULL, 10) : 200000;
	struct policy *p = NULL;
	struct policy_error err;
	enum { N_ARGS = 8 };
	json_t *args[N_ARGS];
	const char *tools[N_ARGS];
	char buf[256];

	cleanup_json json_t *doc = generate(n_rules);
	cleanup_free char *text = json_dumps(doc, JSON_COMPACT);
	if (!text)
		return 1;

	struct mallinfo2 before = mallinfo2();
	int64_t t0 = agd_now_ns();
	if (policy_parse(text, strlen(text), &p, &err) < 0) {
		fprintf(stderr, "parse: %d:%d: %s\n", err.line, err.column, err.message);
		return 1;
	}
	int64_t parse_ns = agd_now_ns() - t0;
	struct mallinfo2 after = mallinfo2();

	snprintf(buf, sizeof(buf), "/srv/proj%zu/src/module/file.c", (n_rules / 2) / 10 * 10);
	args[0] = json_pack("{s:s}", "path", buf);
	tools[0] = "fs.read";
	snprintf(buf, sizeof(buf), "/srv/proj%zu/.git/hooks/pre-commit", (n_rules / 3) / 10 * 10);
	args[1] = json_pack("{s:s}", "path", buf);
	tools[1] = "fs.write";
	args[2] = json_pack("{s:s}", "path", "/etc/shadow");
	tools[2] = "fs.read";
	args[3] = json_pack("{s:s}", "path", "../../relative/path/x");
	tools[3] = "fs.list";
	snprintf(buf, sizeof(buf), "https://api%zu.example.com/v1/items?page=2",
		 (n_rules / 2) / 10 * 10 + 7);
	args[4] = json_pack("{s:s, s:s}", "method", "GET", "url", buf);
	tools[4] = "http.request";
	args[5] = json_pack("{s:s, s:s}", "method", "POST", "url", "https://unknown.example.org/");
	tools[5] = "http.request";
	args[6] = json_object();
	snprintf(buf, sizeof(buf), "mcp.server%zu.search", (n_rules / 2) / 10 * 10 + 9);
	tools[6] = strdup(buf);
	args[7] = json_object();
	tools[7] = "kv.get";

	int64_t *lat = calloc(n_calls, sizeof(*lat));
	size_t decisions[3] = {0};
	struct policy_result res;
	if (!lat)
		return 1;
	for (size_t i = 0; i < n_calls; i++) {
		size_t k = i % N_ARGS;
		int64_t s = agd_now_ns();
		policy_eval(p, tools[k], args[k], "/srv/proj0", &res);
		lat[i] = agd_now_ns() - s;
		decisions[res.decision]++;
	}
	/* the timer's own cost, to report it next to the figures */
	int64_t s = agd_now_ns(), e = s;
	for (int i = 0; i < 1000; i++)
		e = agd_now_ns();
	if (getenv("POLICY_BENCH_DETAIL")) {
		for (size_t k = 0; k < N_ARGS; k++) {
			int64_t sum = 0;
			size_t cnt = 0;
			for (size_t i = k; i < n_calls; i += N_ARGS) {
				sum += lat[i];
				cnt++;
			}
			printf("  call %zu (%s): mean %lld ns\n", k, tools[k],
			       (long long)(sum / (int64_t)(cnt ? cnt : 1)));
		}
	}
	qsort(lat, n_calls, sizeof(*lat), cmp_i64);

	struct policy_finding *findings = NULL;
	size_t n_findings = 0;
	int64_t l0 = agd_now_ns();
	if (policy_lint(text, strlen(text), &findings, &n_findings) < 0)
		return 1;
	int64_t lint_ns = agd_now_ns() - l0;
	policy_findings_free(findings);

	printf("rules: %zu  policy text: %zu bytes  parse: %.2f ms  lint: %.2f ms (%zu findings)\n",
	       n_rules, strlen(text), (double)parse_ns / 1e6, (double)lint_ns / 1e6, n_findings);
	printf("policy heap: %zu bytes (%.1f KiB, %.0f bytes/rule)\n",
	       after.uordblks - before.uordblks, (double)(after.uordblks - before.uordblks) / 1024,
	       (double)(after.uordblks - before.uordblks) / (double)(n_rules ? n_rules : 1));
	printf("eval over %zu calls (%zu allow, %zu ask, %zu deny):\n", n_calls,
	       decisions[POLICY_ALLOW], decisions[POLICY_ASK], decisions[POLICY_DENY]);
	printf("  p50 %lld ns  p90 %lld ns  p99 %lld ns  max %lld ns  (timer overhead ~%lld ns)\n",
	       (long long)lat[n_calls / 2], (long long)lat[n_calls * 9 / 10],
	       (long long)lat[n_calls * 99 / 100], (long long)lat[n_calls - 1],
	       (long long)((e - s) / 1000));
	for (int i = 0; i < N_ARGS; i++)
		json_decref(args[i]);
	free((char *)tools[6]);
	free(lat);
	policy_free(p);
	return 0;
}
