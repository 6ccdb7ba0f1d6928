/* Unit tests for the policy engine: parsing, evaluation, normalisation, merge,
 * serialisation, loading and lint. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

static struct policy *
parse_ok(const char *text)
{
	struct policy *p = NULL;
	struct policy_error err;
	int r = policy_parse(text, strlen(text), &p, &err);

	if (r != 0)
		fail_msg("parse failed at %d:%d: %s", err.line, err.column, err.message);
	assert_non_null(p);
	return p;
}

static int
parse_err(const char *text, struct policy_error *err)
{
	struct policy *p = NULL;
	int r = policy_parse(text, strlen(text), &p, err);

	assert_null(p);
	return r;
}

/* Evaluate tool with args given as JSON text; returns the decision. */
static enum policy_decision
eval(const struct policy *p, const char *tool, const char *args, const char *cwd,
     struct policy_result *res)
{
	json_error_t jerr;
	cleanup_json json_t *a = args ? json_loads(args, JSON_ALLOW_NUL, &jerr) : json_object();
	struct policy_result local;

	if (!a)
		fail_msg("bad test args %s: %s", args, jerr.text);
	if (!res)
		res = &local;
	assert_int_equal(policy_eval(p, tool, a, cwd ? cwd : "/home/u", res), 0);
	return res->decision;
}

static const char *design_example =
    "{\n"
    "  \"version\": 1,\n"
    "  \"extends\": \"default\",\n"
    "  \"rules\": [\n"
    "    {\"id\": \"read-project\", \"tool\": \"fs.read\", \"path\": \"/srv/project/**\", "
    "\"decision\": \"allow\"},\n"
    "    {\"id\": \"no-hooks\", \"tool\": \"fs.*\", \"path\": \"**/.git/hooks/**\", "
    "\"decision\": \"deny\"},\n"
    "    {\"id\": \"api-read\", \"tool\": \"http.request\", \"host\": [\"api.example.com\"], "
    "\"method\": [\"GET\"], \"decision\": \"allow\"},\n"
    "    {\"id\": \"api-write\", \"tool\": \"http.request\", \"host\": \"api.example.com\",\n"
    "     \"method\": [\"POST\", \"PUT\", \"DELETE\"], \"decision\": \"ask\", \"approvers\": "
    "[\"alice\"], \"expires\": \"1h\"}\n"
    "  ],\n"
    "  \"limits\": {\"calls_per_minute\": 120, \"max_calls\": 10000, \"wall_clock\": \"2h\", "
    "\"memory\": \"1G\", \"pids\": 256},\n"
    "  \"sandbox\": {\"mounts\": [{\"host\": \"/srv/data\", \"path\": \"/data\", \"mode\": "
    "\"ro\"}]},\n"
    "  \"secrets\": {\"example\": {\"hosts\": [\"api.example.com\"], \"header\": "
    "\"Authorization\", \"format\": \"Bearer {}\"}}\n"
    "}\n";

static void
test_design_example(void **state)
{
	struct policy *p = parse_ok(design_example);
	struct policy_result res;

	assert_string_equal(policy_extends(p), "default");
	const struct policy_limits *l = policy_limits(p);
	assert_int_equal(l->calls_per_minute, 120);
	assert_int_equal(l->max_calls, 10000);
	assert_int_equal(l->wall_clock_ms, 2ull * 3600 * 1000);
	assert_int_equal(l->memory_bytes, 1ull << 30);
	assert_int_equal(l->pids, 256);
	const struct policy_mount *m;
	assert_int_equal(policy_mounts(p, &m), 1);
	assert_string_equal(m[0].host, "/srv/data");
	assert_string_equal(m[0].path, "/data");
	assert_false(m[0].read_write);
	const struct policy_secret *s;
	assert_int_equal(policy_secrets(p, &s), 1);
	assert_string_equal(s[0].name, "example");
	assert_string_equal(s[0].header, "Authorization");
	assert_string_equal(s[0].format, "Bearer {}");
	assert_string_equal(s[0].hosts[0], "api.example.com");
	assert_null(s[0].hosts[1]);
	assert_ptr_equal(policy_secret_for_url(p, "https://API.example.com/x"), &s[0]);
	assert_null(policy_secret_for_url(p, "https://evil.com/"));
	assert_null(policy_secret_for_url(p, "https://api.example.com@evil.com/"));

	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/project/src/main.c\"}", NULL, &res),
			 POLICY_ALLOW);
	assert_string_equal(res.rule_id, "read-project");
	assert_string_equal(res.path_root, "/srv/project");
	assert_string_equal(res.path, "/srv/project/src/main.c");
	assert_non_null(strstr(res.reason, "read-project"));

	assert_int_equal(
	    eval(p, "fs.read", "{\"path\":\"/srv/project/.git/hooks/pre-commit\"}", NULL, &res),
	    POLICY_DENY);
	assert_string_equal(res.rule_id, "no-hooks");
	assert_non_null(strstr(res.reason, "no-hooks"));

	assert_int_equal(eval(p, "http.request",
			      "{\"method\":\"get\",\"url\":\"https://api.example.com/v1/x\"}", NULL,
			      &res),
			 POLICY_ALLOW);
	assert_string_equal(res.rule_id, "api-read");
	assert_int_equal(eval(p, "http.request",
			      "{\"method\":\"POST\",\"url\":\"https://api.example.com/v1/x\"}",
			      NULL, &res),
			 POLICY_ASK);
	assert_string_equal(res.rule_id, "api-write");
	assert_string_equal(policy_rule_approvers(res.rule)[0], "alice");
	assert_null(policy_rule_approvers(res.rule)[1]);
	assert_int_equal(policy_rule_expires_ms(res.rule), 3600000);

	assert_int_equal(eval(p, "fs.write", "{\"path\":\"/srv/project/a\"}", NULL, &res),
			 POLICY_DENY);
	assert_null(res.rule);
	assert_string_equal(res.rule_id, "");
	assert_string_equal(res.reason, "no rule matched");
	policy_free(p);
}

static void
test_precedence(void **state)
{
	struct policy *p = parse_ok(
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"a\",\"tool\":\"t.x\",\"decision\":\"allow\"},"
	    "{\"id\":\"b\",\"tool\":\"t.*\",\"decision\":\"ask\"},"
	    "{\"id\":\"c\",\"tool\":\"t.x\",\"path\":\"/secret/**\",\"decision\":\"deny\"},"
	    "{\"id\":\"d\",\"tool\":\"u\",\"decision\":\"allow\"},"
	    "{\"id\":\"e\",\"tool\":\"u\",\"decision\":\"allow\"}"
	    "]}");
	struct policy_result res;

	assert_int_equal(eval(p, "t.x", "{\"path\":\"/a\"}", NULL, &res), POLICY_ASK);
	assert_string_equal(res.rule_id, "b");
	assert_int_equal(eval(p, "t.x", "{\"path\":\"/secret/k\"}", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "c");
	/* a glob-only tool name falls back to the wildcard rules */
	assert_int_equal(eval(p, "t.other", NULL, NULL, &res), POLICY_ASK);
	assert_string_equal(res.rule_id, "b");
	/* same decision: the first in document order names the decision */
	assert_int_equal(eval(p, "u", NULL, NULL, &res), POLICY_ALLOW);
	assert_string_equal(res.rule_id, "d");
	assert_int_equal(eval(p, "v", NULL, NULL, &res), POLICY_DENY);
	assert_null(res.rule);
	assert_int_equal(eval(p, NULL, NULL, NULL, &res), POLICY_DENY);

	assert_true(policy_tool_visible(p, "t.x"));
	assert_true(policy_tool_visible(p, "t.y"));
	assert_true(policy_tool_visible(p, "u"));
	assert_false(policy_tool_visible(p, "fs.read"));
	policy_free(p);

	p = parse_ok("{\"version\":1,\"rules\":[{\"id\":\"n\",\"tool\":\"fs.read\","
		     "\"decision\":\"deny\"},{\"id\":\"all\",\"tool\":\"*\",\"decision\":"
		     "\"allow\"}]}");
	/* listed: the wildcard allow covers it, even though calls are denied */
	assert_true(policy_tool_visible(p, "fs.read"));
	assert_true(policy_tool_visible(p, "fs.write"));
	assert_true(policy_tool_visible(p, "mcp.github.create_issue"));
	assert_int_equal(eval(p, "fs.read", NULL, NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "n");
	assert_int_equal(eval(p, "anything.at.all", NULL, NULL, &res), POLICY_ALLOW);
	policy_free(p);
}

static void
test_default_deny_empty(void **state)
{
	struct policy *p = parse_ok("{\"version\": 1}");
	struct policy_result res;

	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/etc/passwd\"}", NULL, &res), POLICY_DENY);
	assert_null(res.rule);
	assert_string_equal(res.path_root, "/");
	assert_string_equal(res.path, "/etc/passwd");
	assert_false(policy_tool_visible(p, "fs.read"));
	policy_free(p);
}

static bool
path_allowed(const char *glob, const char *path)
{
	char doc[2048];
	struct policy_result res;

	snprintf(doc, sizeof(doc),
		 "{\"version\":1,\"rules\":[{\"id\":\"r\",\"tool\":\"fs.read\",\"path\":\"%s\","
		 "\"decision\":\"allow\"}]}",
		 glob);
	struct policy *p = parse_ok(doc);
	cleanup_json json_t *a = json_pack("{s:s}", "path", path);
	assert_int_equal(policy_eval(p, "fs.read", a, "/", &res), 0);
	policy_free(p);
	return res.decision == POLICY_ALLOW;
}

static void
test_globs(void **state)
{
	assert_true(path_allowed("/a/*.txt", "/a/x.txt"));
	assert_true(path_allowed("/a/*.txt", "/a/.txt"));
	assert_false(path_allowed("/a/*.txt", "/a/b/x.txt"));
	assert_true(path_allowed("/a/**", "/a/b/c/d"));
	assert_true(path_allowed("/a/**", "/a"));
	assert_false(path_allowed("/a/**", "/ab"));
	assert_false(path_allowed("/a/**", "/b/a/c"));
	assert_true(path_allowed("/a/**/z", "/a/z"));
	assert_true(path_allowed("/a/**/z", "/a/b/c/z"));
	assert_false(path_allowed("/a/**/z", "/a/b/cz"));
	assert_true(path_allowed("**/.git/**", "/x/y/.git/config"));
	assert_true(path_allowed("**/.git/**", "/.git/config"));
	assert_false(path_allowed("**/.git/**", "/x/y/.gitignore"));
	assert_true(path_allowed("/a/?.c", "/a/x.c"));
	assert_false(path_allowed("/a/?.c", "/a/xy.c"));
	assert_false(path_allowed("/a?b", "/a/b"));
	assert_true(path_allowed("/a/\\\\*", "/a/*"));
	assert_false(path_allowed("/a/\\\\*", "/a/b"));
	assert_true(path_allowed("/srv/file.txt", "/srv/file.txt"));
	assert_false(path_allowed("/srv/file.txt", "/srv/file.txt2"));
	assert_true(path_allowed("/**", "/"));
	/* many stars on a long subject stay linear: must finish quickly */
	char big[4000];
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	int64_t t0 = agd_now_ns();
	assert_false(path_allowed("/**a**a**a**a**a**a**a**a**a**a**b", big));
	assert_true(agd_now_ns() - t0 < 500 * 1000 * 1000);
}

static void
test_path_root(void **state)
{
	struct policy *p = parse_ok(
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"a\",\"tool\":\"fs.read\",\"path\":[\"/x/y/*.c\",\"/srv/pro*/q/**\"],"
	    "\"decision\":\"allow\"},"
	    "{\"id\":\"b\",\"tool\":\"fs.read\",\"path\":\"/etc/hosts\",\"decision\":\"allow\"},"
	    "{\"id\":\"c\",\"tool\":\"fs.list\",\"decision\":\"allow\"}]}");
	struct policy_result res;

	eval(p, "fs.read", "{\"path\":\"/x/y/m.c\"}", NULL, &res);
	assert_string_equal(res.path_root, "/x/y");
	eval(p, "fs.read", "{\"path\":\"/srv/project/q/m.c\"}", NULL, &res);
	assert_string_equal(res.path_root, "/srv");
	eval(p, "fs.read", "{\"path\":\"/etc/hosts\"}", NULL, &res);
	assert_string_equal(res.rule_id, "b");
	assert_string_equal(res.path_root, "/etc");
	eval(p, "fs.list", "{\"path\":\"rel/dir\"}", "/w", &res);
	assert_string_equal(res.path_root, "/");
	assert_string_equal(res.path, "/w/rel/dir");
	policy_free(p);
}

static void
test_normalize_path(void **state)
{
	char out[4097];

	assert_int_equal(policy_normalize_path("/a/b/../c", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/c");
	assert_int_equal(policy_normalize_path("//a///b//", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b");
	assert_int_equal(policy_normalize_path("/a/b/.", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b");
	assert_int_equal(policy_normalize_path("/a/./b/./", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/a/b");
	assert_int_equal(policy_normalize_path("/../../etc", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/etc");
	assert_int_equal(policy_normalize_path("x/../../y", "/home/u", out, sizeof(out)), 0);
	assert_string_equal(out, "/home/y");
	assert_int_equal(policy_normalize_path(".", "/home/u/", out, sizeof(out)), 0);
	assert_string_equal(out, "/home/u");
	assert_int_equal(policy_normalize_path("..", "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/");
	assert_int_equal(policy_normalize_path("", "/", out, sizeof(out)), -EINVAL);
	assert_int_equal(policy_normalize_path("rel", NULL, out, sizeof(out)), -EINVAL);
	assert_int_equal(policy_normalize_path("rel", "also-rel", out, sizeof(out)), -EINVAL);
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[0] = '/';
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(policy_normalize_path(big, "/", out, sizeof(out)), -ENAMETOOLONG);
	/* fits in 4096 but the output buffer is smaller */
	assert_int_equal(policy_normalize_path("/abcdef", "/", out, 4), -ENAMETOOLONG);
}

static void
test_path_tricks(void **state)
{
	struct policy *p = parse_ok(
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"proj\",\"tool\":\"fs.*\",\"path\":\"/srv/p/**\",\"decision\":\"allow\"},"
	    "{\"id\":\"nosecret\",\"tool\":\"fs.*\",\"path\":\"/srv/p/secret/**\","
	    "\"decision\":\"deny\"}]}");
	struct policy_result res;

	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/p/../../etc/passwd\"}", NULL, &res),
			 POLICY_DENY);
	assert_null(res.rule);
	assert_string_equal(res.path, "/etc/passwd");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/p//secret/./k\"}", NULL, &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/p/x/../secret/k\"}", NULL, &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/p/secret/.\"}", NULL, &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"k\"}", "/srv/p/secret", &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"a/b\"}", "/srv/p", &res), POLICY_ALLOW);
	assert_string_equal(res.path, "/srv/p/a/b");

	/* NUL byte: the allow rule cannot match, the deny rule fails closed */
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/srv/p/a\\u0000b\"}", NULL, &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	assert_non_null(strstr(res.reason, "fails closed"));
	assert_string_equal(res.path, "");
	assert_string_equal(res.path_root, "/");
	/* non-string path: same */
	assert_int_equal(eval(p, "fs.read", "{\"path\":42}", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	/* overlong */
	char *big = malloc(6000);
	assert_non_null(big);
	strcpy(big, "/srv/p/");
	memset(big + 7, 'a', 5000);
	big[5007] = '\0';
	cleanup_json json_t *a = json_pack("{s:s}", "path", big);
	free(big);
	assert_int_equal(policy_eval(p, "fs.read", a, "/", &res), 0);
	assert_int_equal(res.decision, POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	/* a missing path: the matcher does not apply to the call at all */
	assert_int_equal(eval(p, "fs.read", "{}", NULL, &res), POLICY_DENY);
	assert_null(res.rule);
	/* no arguments at all are {}; arguments that are not an object are malformed */
	assert_int_equal(policy_eval(p, "fs.read", NULL, "/", &res), 0);
	assert_null(res.rule);
	assert_int_equal(eval(p, "fs.read", "[\"/srv/p/a\"]", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "nosecret");
	policy_free(p);
}

static enum policy_decision
url_decision(const struct policy *p, const char *method, const char *url, struct policy_result *res)
{
	cleanup_json json_t *a = json_pack("{s:s, s:s}", "method", method, "url", url);
	assert_int_equal(policy_eval(p, "http.request", a, "/", res), 0);
	return res->decision;
}

static void
test_host_tricks(void **state)
{
	struct policy *p = parse_ok(
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"api\",\"tool\":\"http.request\",\"host\":[\"API.Example.com\","
	    "\"*.cdn.example.com\",\"**.deep.example.com\"],\"decision\":\"allow\"},"
	    "{\"id\":\"local\",\"tool\":\"http.request\",\"host\":\"127.0.0.1\","
	    "\"decision\":\"ask\"},"
	    "{\"id\":\"v6\",\"tool\":\"http.request\",\"host\":\"[::1]\",\"decision\":\"ask\"},"
	    "{\"id\":\"evil\",\"tool\":\"http.request\",\"host\":\"evil.com\","
	    "\"decision\":\"deny\"}]}");
	struct policy_result res;

	assert_int_equal(url_decision(p, "GET", "https://api.example.com/x", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "HTTPS://API.EXAMPLE.COM/x", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://api.example.com./x", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://api.example.com:8443/x", &res),
			 POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "http://api.example.com", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://api.example.com.evil.net/", &res),
			 POLICY_DENY);
	assert_null(res.rule);
	/* userinfo: never matches allow/ask; the deny rule fails closed */
	assert_int_equal(url_decision(p, "GET", "http://api.example.com@evil.com/", &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "evil");
	assert_int_equal(url_decision(p, "GET", "http://user:pw@api.example.com/", &res),
			 POLICY_DENY);
	/* label globs */
	assert_int_equal(url_decision(p, "GET", "https://a.cdn.example.com/", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://a.b.cdn.example.com/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://cdn.example.com/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://a.b.deep.example.com/", &res),
			 POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://deep.example.com/", &res), POLICY_ALLOW);
	/* IP literal forms of loopback */
	const char *loop[] = {"http://127.0.0.1/",  "http://127.1/",	  "http://0x7f.1/",
			      "http://2130706433/", "http://0177.0.0.1/", "http://127.0.1:80/",
			      "http://0x7F000001/"};
	for (size_t i = 0; i < ARRAY_SIZE(loop); i++) {
		assert_int_equal(url_decision(p, "GET", loop[i], &res), POLICY_ASK);
		assert_string_equal(res.rule_id, "local");
		assert_non_null(strstr(res.reason, "127.0.0.1"));
	}
	assert_int_equal(url_decision(p, "GET", "http://[::1]:8080/", &res), POLICY_ASK);
	assert_string_equal(res.rule_id, "v6");
	assert_int_equal(url_decision(p, "GET", "http://[0:0:0:0:0:0:0:1]/", &res), POLICY_ASK);
	assert_string_equal(res.rule_id, "v6");
	/* invalid numbers and odd URLs never match allow rules */
	assert_int_equal(url_decision(p, "GET", "http://256.0.0.1/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "http://1.2.3.4.5/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "ftp://api.example.com/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api.example.com:99999/", &res),
			 POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api.example.com\\@evil.com/", &res),
			 POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api%2eexample.com/", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https:///api.example.com", &res), POLICY_DENY);
	policy_free(p);

	/* a name glob never admits an IP literal on an allow rule, but a deny glob does */
	p = parse_ok("{\"version\":1,\"rules\":["
		     "{\"id\":\"any\",\"tool\":\"http.request\",\"host\":\"**\","
		     "\"decision\":\"allow\"}]}");
	assert_int_equal(url_decision(p, "GET", "https://example.org/", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "http://127.1/", &res), POLICY_DENY);
	policy_free(p);
	p = parse_ok("{\"version\":1,\"rules\":["
		     "{\"id\":\"any\",\"tool\":\"http.request\",\"decision\":\"allow\"},"
		     "{\"id\":\"no-all\",\"tool\":\"http.request\",\"host\":\"**\","
		     "\"decision\":\"deny\"}]}");
	assert_int_equal(url_decision(p, "GET", "http://0x7f.1/", &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "no-all");
	policy_free(p);
}

static void
test_methods_prefix_size(void **state)
{
	struct policy *p = parse_ok(
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"v1\",\"tool\":\"http.request\",\"url_prefix\":\"https://api.x.com/v1/\","
	    "\"method\":[\"get\",\"HEAD\"],\"decision\":\"allow\"},"
	    "{\"id\":\"bare\",\"tool\":\"http.request\",\"url_prefix\":\"https://b.x.com\","
	    "\"decision\":\"allow\"},"
	    "{\"id\":\"small\",\"tool\":\"fs.write\",\"max_bytes\":10,\"decision\":\"allow\"}]}");
	struct policy_result res;

	assert_int_equal(url_decision(p, "GET", "https://api.x.com/v1/users", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "Head", "https://API.x.com:443/v1/users", &res),
			 POLICY_ALLOW);
	assert_int_equal(url_decision(p, "POST", "https://api.x.com/v1/users", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api.x.com/v2/users", &res), POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api.x.com/v1/../admin", &res),
			 POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "https://api.x.com/v1/%2e%2e/admin", &res),
			 POLICY_DENY);
	assert_int_equal(url_decision(p, "GET", "http://api.x.com/v1/users", &res), POLICY_DENY);
	/* a prefix without a path cannot be extended into another host */
	assert_int_equal(url_decision(p, "GET", "https://b.x.com/anything", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "https://b.x.com.evil.com/", &res), POLICY_DENY);
	/* method argument missing or not a string */
	assert_int_equal(eval(p, "http.request", "{\"url\":\"https://api.x.com/v1/\"}", NULL, &res),
			 POLICY_DENY);
	assert_int_equal(
	    eval(p, "http.request", "{\"method\":7,\"url\":\"https://api.x.com/v1/\"}", NULL, &res),
	    POLICY_DENY);

	assert_int_equal(
	    eval(p, "fs.write", "{\"path\":\"/a\",\"content\":\"0123456789\"}", NULL, &res),
	    POLICY_ALLOW);
	assert_int_equal(
	    eval(p, "fs.write", "{\"path\":\"/a\",\"content\":\"0123456789a\"}", NULL, &res),
	    POLICY_DENY);
	assert_int_equal(eval(p, "fs.write", "{\"body\":\"01234567890\"}", NULL, &res),
			 POLICY_DENY);
	assert_int_equal(eval(p, "fs.write", "{\"length\":11}", NULL, &res), POLICY_DENY);
	assert_int_equal(eval(p, "fs.write", "{\"length\":-1}", NULL, &res), POLICY_DENY);
	assert_int_equal(eval(p, "fs.write", "{\"length\":10}", NULL, &res), POLICY_ALLOW);
	assert_int_equal(eval(p, "fs.write", "{\"content\":{}}", NULL, &res), POLICY_DENY);
	policy_free(p);
}

/* Deterministic PRNG for the differential test. */
static uint32_t
rnd(uint32_t *st)
{
	*st = *st * 1103515245u + 12345u;
	return (*st >> 16) & 0x7fff;
}

#define PICK(st, arr) ((arr)[rnd(st) % ARRAY_SIZE(arr)])

/* The indexed evaluation of a large policy must decide exactly like evaluating each
 * rule on its own (one-rule policies are too small to be indexed) and taking the
 * strongest match: deny > ask > allow, then document order. */
static void
test_index_differential(void **state)
{
	static const char *tools[] = {"fs.read", "fs.write", "fs.*",	"*",	   "http.request",
				      "http.*",	 "mcp.a.*",  "kv.get",	"fs.read", "mcp.*",
				      "*.read",	 "fs.r*",    "mcp.a.b", "mcp.?.*"};
	static const char *paths[] = {"/srv/a/**",  "/srv/a/b/*.c", "/srv/**", "/srv/a/secret/**",
				      "**/.git/**", "/etc/hosts",   "/srv/a",  "/srv/a/b/?.c",
				      "/**",	    "/srv/a/b/**/x"};
	static const char *hosts[] = {"127.0.0.0/8", "[::]/0",	 "a.com", "*.a.com", "127.0.0.1",
				      "b.org",	     "**.b.org", "[::1]", "c.net"};
	static const char *decisions[] = {"allow", "ask", "deny", "allow"};
	static const char *ctools[] = {"fs.read", "fs.write", "fs.list", "http.request", "mcp.a.x",
				       "kv.get",  "kv.put",   "other",	 "mcp.b.y",	 "mcp.a.b",
				       "mcp.a",	  "x.read",   "mcp"};
	static const char *cpaths[] = {
	    "/srv/a/b/c.c",	  "/srv/a/b/x", "/srv/a/b/q/x", "/srv/a/secret/k",
	    "/srv/a/.git/config", "/etc/hosts", "/srv/a",	"b/c.c",
	    "../../etc/hosts",	  "/",		"/srv"};
	static const char *curls[] = {"http://[::ffff:127.0.0.9]/",
				      "http://[2001:db8::1]/",
				      "https://a.com/x",
				      "https://x.a.com/",
				      "http://127.1/",
				      "https://b.org",
				      "https://y.b.org/",
				      "http://[::1]/",
				      "https://a.com@c.net/",
				      "ftp://a.com/",
				      "https://c.net./x"};
	uint32_t st = 12345;

	for (int round = 0; round < 25; round++) {
		size_t n_rules = 10 + rnd(&st) % 40;
		json_t *rules = json_array();
		for (size_t i = 0; i < n_rules; i++) {
			char id[32];
			snprintf(id, sizeof(id), "r%zu", i);
			json_t *r = json_pack("{s:s, s:s, s:s}", "id", id, "tool", PICK(&st, tools),
					      "decision", PICK(&st, decisions));
			if (rnd(&st) % 2) {
				json_t *a = json_array();
				for (uint32_t k = 0, m = 1 + rnd(&st) % 2; k < m; k++)
					json_array_append_new(a, json_string(PICK(&st, paths)));
				json_object_set_new(r, "path", a);
			}
			if (rnd(&st) % 3 == 0) {
				json_t *a = json_array();
				for (uint32_t k = 0, m = 1 + rnd(&st) % 2; k < m; k++)
					json_array_append_new(a, json_string(PICK(&st, hosts)));
				json_object_set_new(r, "host", a);
			}
			if (rnd(&st) % 4 == 0)
				json_object_set_new(r, "method",
						    json_string(rnd(&st) % 2 ? "GET" : "post"));
			json_array_append_new(rules, r);
		}
		cleanup_json json_t *doc = json_pack("{s:i, s:o}", "version", 1, "rules", rules);
		cleanup_free char *text = json_dumps(doc, 0);
		struct policy *big = parse_ok(text);
		struct policy **single = calloc(n_rules, sizeof(*single));
		assert_non_null(single);
		for (size_t i = 0; i < n_rules; i++) {
			cleanup_json json_t *one = json_pack("{s:i, s:[O]}", "version", 1, "rules",
							     json_array_get(rules, i));
			cleanup_free char *t1 = json_dumps(one, 0);
			single[i] = parse_ok(t1);
		}
		for (int call = 0; call < 300; call++) {
			const char *tool = PICK(&st, ctools);
			cleanup_json json_t *args = json_object();
			uint32_t shape = rnd(&st) % 8;
			if (shape < 5)
				json_object_set_new(args, "path", json_string(PICK(&st, cpaths)));
			else if (shape == 5)
				json_object_set_new(args, "path", json_integer(7));
			if (rnd(&st) % 2)
				json_object_set_new(args, "url", json_string(PICK(&st, curls)));
			if (rnd(&st) % 2)
				json_object_set_new(args, "method",
						    json_string(rnd(&st) % 2 ? "get" : "POST"));
			struct policy_result got, one;
			assert_int_equal(policy_eval(big, tool, args, "/srv/a", &got), 0);
			int best = -1;
			enum policy_decision bd = POLICY_ALLOW;
			char want_root[4096] = "/";
			for (size_t i = 0; i < n_rules; i++) {
				assert_int_equal(policy_eval(single[i], tool, args, "/srv/a", &one),
						 0);
				if (!one.rule)
					continue;
				if (best < 0 || one.decision < bd) {
					best = (int)i;
					bd = one.decision;
					snprintf(want_root, sizeof(want_root), "%s", one.path_root);
				}
			}
			if (best < 0) {
				if (got.rule)
					fail_msg("round %d: %s %s: got %s, want no match", round,
						 tool, json_dumps(args, JSON_COMPACT), got.reason);
				continue;
			}
			char want_id[32];
			snprintf(want_id, sizeof(want_id), "r%d", best);
			if (!got.rule || strcmp(got.rule_id, want_id) != 0 || got.decision != bd)
				fail_msg("round %d: %s %s: got '%s', want rule %s", round, tool,
					 json_dumps(args, JSON_COMPACT), got.reason, want_id);
			assert_string_equal(got.path_root, want_root);
		}
		for (size_t i = 0; i < n_rules; i++)
			policy_free(single[i]);
		free(single);
		policy_free(big);
	}
}

/* More matching roots than the merge can track: evaluation falls back to a scan of
 * the whole bucket and must still find the deny deep down. */
static void
test_index_many_roots(void **state)
{
	char prefix[512] = "";
	cleanup_json json_t *rules = json_array();
	struct policy_result res;

	for (int i = 0; i < 45; i++) {
		char id[32], glob[600];
		strcat(prefix, "/a");
		snprintf(id, sizeof(id), "r%d", i);
		snprintf(glob, sizeof(glob), "%s/**", prefix);
		json_array_append_new(rules, json_pack("{s:s, s:s, s:s, s:s}", "id", id, "tool",
						       "fs.read", "path", glob, "decision",
						       i == 44 ? "deny" : "allow"));
	}
	cleanup_json json_t *doc = json_pack("{s:i, s:O}", "version", 1, "rules", rules);
	cleanup_free char *text = json_dumps(doc, 0);
	struct policy *p = parse_ok(text);
	char path[600];
	snprintf(path, sizeof(path), "{\"path\":\"%s/x\"}", prefix);
	assert_int_equal(eval(p, "fs.read", path, NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "r44");
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/a/a/x\"}", NULL, &res), POLICY_ALLOW);
	assert_string_equal(res.rule_id, "r0");
	assert_string_equal(res.path_root, "/a");
	policy_free(p);
}

static const struct policy_finding *find(const struct policy_finding *f, size_t n,
					 const char *needle);

static void
test_address_blocks(void **state)
{
	struct policy *p =
	    parse_ok("{\"version\":1,\"rules\":["
		     "{\"id\":\"web\",\"tool\":\"http.request\",\"decision\":\"allow\"},"
		     "{\"id\":\"no-local\",\"tool\":\"http.request\",\"host\":[\"127.0.0.0/8\","
		     "\"0.0.0.0/8\",\"[::1]/128\",\"169.254.0.0/16\"],\"decision\":\"deny\"},"
		     "{\"id\":\"lan\",\"tool\":\"http.request\",\"host\":[\"10.0.0.0/8\","
		     "\"[FD00::]/8\"],\"decision\":\"ask\"}]}");
	struct policy_result res;

	const char *local[] = {"http://127.0.0.2/",	     "http://0x7f.0.0.5/", "http://127.1/",
			       "http://[::ffff:127.0.0.1]/", "http://[::1]:8080/", "http://0/",
			       "http://169.254.169.254/"};
	for (size_t i = 0; i < ARRAY_SIZE(local); i++) {
		assert_int_equal(url_decision(p, "GET", local[i], &res), POLICY_DENY);
		assert_string_equal(res.rule_id, "no-local");
	}
	assert_int_equal(url_decision(p, "GET", "https://example.com/", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "http://128.0.0.1/", &res), POLICY_ALLOW);
	assert_int_equal(url_decision(p, "GET", "http://10.1.2.3/", &res), POLICY_ASK);
	assert_int_equal(url_decision(p, "GET", "http://[fd12::1]/", &res), POLICY_ASK);
	assert_int_equal(url_decision(p, "GET", "http://[fe80::1]/", &res), POLICY_ALLOW);

	/* the blocks survive the round trip through policy_to_json */
	cleanup_json json_t *j = policy_to_json(p);
	cleanup_free char *text = json_dumps(j, 0);
	struct policy *q = parse_ok(text);
	assert_int_equal(url_decision(q, "GET", "http://[::ffff:127.0.0.1]/", &res), POLICY_DENY);
	assert_int_equal(url_decision(q, "GET", "http://[fd12::1]/", &res), POLICY_ASK);
	policy_free(q);
	policy_free(p);

	/* an IPv4-mapped address matches its IPv4 literal */
	p = parse_ok("{\"version\":1,\"rules\":[{\"id\":\"l\",\"tool\":\"http.request\","
		     "\"host\":\"[::ffff:10.0.0.1]\",\"decision\":\"allow\"}]}");
	assert_int_equal(url_decision(p, "GET", "http://10.0.0.1/", &res), POLICY_ALLOW);
	policy_free(p);

	struct policy_error err;
	const char *bad[] = {"10.0.0.0/33", "[::1]/129", "foo/8",      "[::ffff:1.2.3.4]/120",
			     "10.0.0.0/",   "/8",	 "10.0.0.0/8x"};
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		char doc[256];
		snprintf(doc, sizeof(doc),
			 "{\"version\":1,\"rules\":[{\"id\":\"x\",\"tool\":\"t\",\"host\":"
			 "\"%s\",\"decision\":\"deny\"}]}",
			 bad[i]);
		assert_int_equal(parse_err(doc, &err), -EINVAL);
		assert_non_null(strstr(err.message, "host"));
	}
	/* secrets name hosts, not blocks */
	assert_int_equal(parse_err("{\"version\":1,\"secrets\":{\"s\":{\"hosts\":\"10.0.0.0/8\","
				   "\"header\":\"X\"}}}",
				   &err),
			 -EINVAL);

	/* lint: an address or a smaller block inside a denied block is shadowed */
	const char *t = "{\"version\":1,\"rules\":["
			"{\"id\":\"d\",\"tool\":\"http.request\",\"host\":\"10.0.0.0/8\","
			"\"decision\":\"deny\"},"
			"{\"id\":\"a1\",\"tool\":\"http.request\",\"host\":\"10.1.2.3\","
			"\"decision\":\"allow\"},"
			"{\"id\":\"a2\",\"tool\":\"http.request\",\"host\":\"10.1.0.0/16\","
			"\"decision\":\"ask\"},"
			"{\"id\":\"a3\",\"tool\":\"http.request\",\"host\":\"11.0.0.0/16\","
			"\"decision\":\"ask\"}]}";
	struct policy_finding *f = NULL;
	size_t n = 0;
	assert_int_equal(policy_lint(t, strlen(t), &f, &n), 0);
	assert_non_null(find(f, n, "rule 'a1'"));
	assert_non_null(find(f, n, "rule 'a2'"));
	assert_null(find(f, n, "rule 'a3'"));
	assert_int_equal(n, 2);
	policy_findings_free(f);
}

static void
expect_error(const char *text, int line, int col, const char *needle)
{
	struct policy_error err;

	assert_int_equal(parse_err(text, &err), -EINVAL);
	if (err.line != line || err.column != col || !strstr(err.message, needle))
		fail_msg("expected %d:%d '%s', got %d:%d '%s'", line, col, needle, err.line,
			 err.column, err.message);
}

static void
test_parse_errors(void **state)
{
	expect_error("{\"version\": 2}", 1, 13, "version");
	expect_error("{}", 1, 1, "version");
	expect_error("[]", 1, 1, "object");
	expect_error("{\"version\": 1,\n  \"rulez\": []}", 2, 3, "unknown key 'rulez'");
	expect_error("{\"version\": 1, \"rules\": [\n"
		     "  {\"id\": \"a\", \"tool\": \"x\", \"decision\": \"allow\"},\n"
		     "  {\"id\": \"b\", \"tool\": \"x\", \"decison\": \"allow\"}\n]}",
		     3, 28, "unknown key 'decison'");
	expect_error("{\"version\": 1, \"rules\": [\n"
		     "  {\"id\": \"a\", \"tool\": \"x\", \"decision\": \"allow\"},\n"
		     "  {\"id\": \"a\", \"tool\": \"y\", \"decision\": \"deny\"}\n]}",
		     3, 10, "duplicate rule id");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"\", \"tool\": \"x\", \"decision\": "
		     "\"allow\"}]}",
		     1, 33, "'id'");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"maybe\"}]}",
		     1, 63, "decision");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"allow\", \"path\": [\"/ok/**\", \"rel/x\"]}]}",
		     1, 91, "path");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"allow\", \"expires\": \"1h\"}]}",
		     1, 72, "only valid on ask");
	expect_error("{\"version\": 1, \"limits\": {\"memory\": \"12Q\"}}", 1, 37, "memory");
	expect_error("{\"version\": 1, \"limits\": {\"wall_clock\": \"5 minutes\"}}", 1, 41,
		     "wall_clock");
	expect_error("{\"version\": 1, \"limits\": {\"pids\": -1}}", 1, 35, "pids");
	expect_error("{\"version\": 1, \"sandbox\": {\"mounts\": [{\"host\": \"rel\", \"path\": "
		     "\"/d\"}]}}",
		     1, 48, "host");
	expect_error("{\"version\": 1, \"sandbox\": {\"mounts\": [{\"host\": \"/a\", \"path\": "
		     "\"/d\", \"mode\": \"rx\"}]}}",
		     1, 76, "mode");
	expect_error("{\"version\": 1, \"secrets\": {\"k\": {\"hosts\": \"a.com\", \"header\": "
		     "\"Bad Header\"}}}",
		     1, 62, "header");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"allow\", \"host\": \"a..b\"}]}",
		     1, 80, "host");
	/* syntax errors and duplicate keys carry jansson's position */
	struct policy_error err;
	assert_int_equal(parse_err("{\"version\": 1,\n\"version\": 1}", &err), -EINVAL);
	assert_int_equal(err.line, 2);
	assert_non_null(strstr(err.message, "duplicate"));
	assert_int_equal(parse_err("{\"version\": 1,,}", &err), -EINVAL);
	assert_int_equal(err.line, 1);
	assert_true(err.column > 0);
	assert_int_equal(parse_err("", &err), -EINVAL);
}

static void
test_value_forms(void **state)
{
	struct policy *p =
	    parse_ok("{\"version\":1,\"description\":\"d\",\"limits\":{\"wall_clock\":\"30s\","
		     "\"memory\":\"512M\"},\"rules\":[{\"id\":\"a\",\"tool\":\"x\",\"decision\":"
		     "\"ask\",\"expires\":\"15m\",\"description\":\"why\"},"
		     "{\"id\":\"b\",\"tool\":\"x\",\"decision\":\"ask\",\"expires\":\"2d\"}]}");
	assert_int_equal(policy_limits(p)->wall_clock_ms, 30000);
	assert_int_equal(policy_limits(p)->memory_bytes, 512ull << 20);
	assert_int_equal(policy_limits(p)->max_calls, 0);
	assert_int_equal(policy_rule_count(p), 2);
	assert_int_equal(policy_rule_expires_ms(policy_rule_at(p, 0)), 15 * 60000);
	assert_int_equal(policy_rule_expires_ms(policy_rule_at(p, 1)), 2 * 86400000ull);
	assert_string_equal(policy_rule_description(policy_rule_at(p, 0)), "why");
	assert_null(policy_rule_description(policy_rule_at(p, 1)));
	assert_null(policy_rule_approvers(policy_rule_at(p, 1))[0]);
	assert_null(policy_rule_at(p, 2));
	policy_free(p);
}

static void
assert_same_decisions(const struct policy *a, const struct policy *b)
{
	static const char *calls[][2] = {
	    {"fs.read", "{\"path\":\"/srv/project/a\"}"},
	    {"fs.read", "{\"path\":\"/srv/project/.git/hooks/x\"}"},
	    {"fs.write", "{\"path\":\"/srv/project/a\"}"},
	    {"http.request", "{\"method\":\"GET\",\"url\":\"https://api.example.com/\"}"},
	    {"http.request", "{\"method\":\"PUT\",\"url\":\"https://api.example.com/\"}"},
	    {"http.request", "{\"method\":\"GET\",\"url\":\"https://u@api.example.com/\"}"},
	    {"kv.get", "{}"},
	};
	for (size_t i = 0; i < ARRAY_SIZE(calls); i++) {
		struct policy_result ra, rb;
		eval(a, calls[i][0], calls[i][1], NULL, &ra);
		eval(b, calls[i][0], calls[i][1], NULL, &rb);
		assert_int_equal(ra.decision, rb.decision);
		assert_string_equal(ra.rule_id, rb.rule_id);
		assert_string_equal(ra.path_root, rb.path_root);
		assert_string_equal(ra.reason, rb.reason);
	}
}

static void
test_to_json_roundtrip(void **state)
{
	struct policy *p = parse_ok(design_example);
	cleanup_json json_t *j = policy_to_json(p);
	assert_non_null(j);
	assert_null(json_object_get(j, "extends"));
	cleanup_free char *text = json_dumps(j, JSON_COMPACT);
	struct policy *q = parse_ok(text);

	assert_same_decisions(p, q);
	assert_memory_equal(policy_limits(p), policy_limits(q), sizeof(struct policy_limits));
	const struct policy_mount *m;
	assert_int_equal(policy_mounts(q, &m), 1);
	assert_string_equal(m[0].path, "/data");
	const struct policy_secret *s;
	assert_int_equal(policy_secrets(q, &s), 1);
	assert_string_equal(s[0].format, "Bearer {}");
	/* and a second round trip is a fixed point */
	cleanup_json json_t *j2 = policy_to_json(q);
	assert_true(json_equal(j, j2));
	policy_free(p);
	policy_free(q);
}

static void
test_merge(void **state)
{
	struct policy *base = parse_ok(
	    "{\"version\":1,\"rules\":[{\"id\":\"b-allow\",\"tool\":\"fs.read\",\"decision\":"
	    "\"allow\"},{\"id\":\"b-deny\",\"tool\":\"fs.read\",\"path\":\"/etc/**\","
	    "\"decision\":\"deny\"}],\"limits\":{\"max_calls\":5,\"pids\":10},"
	    "\"sandbox\":{\"mounts\":[{\"host\":\"/a\",\"path\":\"/a\"}]}}");
	struct policy *child = parse_ok(
	    "{\"version\":1,\"extends\":\"base\",\"rules\":[{\"id\":\"c-allow\",\"tool\":"
	    "\"fs.read\",\"path\":\"/etc/hosts\",\"decision\":\"allow\"},{\"id\":\"c-ask\","
	    "\"tool\":\"fs.write\",\"decision\":\"ask\"}],\"limits\":{\"max_calls\":7},"
	    "\"sandbox\":{\"mounts\":[{\"host\":\"/b\",\"path\":\"/b\",\"mode\":\"rw\"}]}}");
	struct policy *m = policy_merge(base, child);
	struct policy_result res;

	assert_non_null(m);
	assert_null(policy_extends(m));
	assert_int_equal(policy_limits(m)->max_calls, 7);
	assert_int_equal(policy_limits(m)->pids, 10);
	const struct policy_mount *mm;
	assert_int_equal(policy_mounts(m, &mm), 2);
	assert_true(mm[1].read_write);
	/* the base's deny still wins over the extension's allow */
	assert_int_equal(eval(m, "fs.read", "{\"path\":\"/etc/hosts\"}", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "b-deny");
	assert_int_equal(eval(m, "fs.read", "{\"path\":\"/home/x\"}", NULL, &res), POLICY_ALLOW);
	assert_string_equal(res.rule_id, "b-allow");
	assert_int_equal(eval(m, "fs.write", "{\"path\":\"/home/x\"}", NULL, &res), POLICY_ASK);
	/* a rule id in both is refused */
	struct policy *dup = policy_merge(base, base);
	assert_null(dup);
	assert_int_equal(errno, EEXIST);
	policy_free(m);
	policy_free(base);
	policy_free(child);
}

static void
write_file(const char *dir, const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "we");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void
test_load_file(void **state)
{
	char dir[] = "/tmp/agentd-policy-test-XXXXXX";
	char path[512];
	struct policy *p = NULL;
	struct policy_error err;
	struct policy_result res;

	assert_non_null(mkdtemp(dir));
	write_file(dir, "team.json",
		   "{\"version\":1,\"extends\":\"default\",\"rules\":[{\"id\":\"t\",\"tool\":"
		   "\"fs.read\",\"decision\":\"allow\"}],\"limits\":{\"pids\":3}}");
	write_file(dir, "alice.json",
		   "{\"version\":1,\"extends\":\"team\",\"rules\":[{\"id\":\"a\",\"tool\":"
		   "\"fs.read\",\"path\":\"/private/**\",\"decision\":\"deny\"}]}");
	write_file(dir, "loop1.json", "{\"version\":1,\"extends\":\"loop2\"}");
	write_file(dir, "loop2.json", "{\"version\":1,\"extends\":\"loop1\"}");
	write_file(dir, "bad.json", "{\"version\":1,\n \"oops\":1}");
	write_file(dir, "dupe.json",
		   "{\"version\":1,\"extends\":\"team\",\"rules\":[{\"id\":\"t\",\"tool\":\"x\","
		   "\"decision\":\"deny\"}]}");
	write_file(dir, "missing.json", "{\"version\":1,\"extends\":\"nosuch\"}");
	for (int i = 0; i < 10; i++) {
		char name[32], text[128];
		snprintf(name, sizeof(name), "d%d.json", i);
		snprintf(text, sizeof(text), "{\"version\":1,\"extends\":\"d%d\"}", i + 1);
		write_file(dir, name, text);
	}
	write_file(dir, "d10.json", "{\"version\":1}");

	snprintf(path, sizeof(path), "%s/alice.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), 0);
	assert_null(policy_extends(p));
	assert_int_equal(policy_limits(p)->pids, 3);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/pub\"}", NULL, &res), POLICY_ALLOW);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/private/k\"}", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "a");
	p = policy_free(p);
	/* dir NULL: names resolve next to the file */
	assert_int_equal(policy_load_file(path, NULL, &p, &err), 0);
	p = policy_free(p);

	snprintf(path, sizeof(path), "%s/loop1.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -ELOOP);
	assert_non_null(strstr(err.message, "cycle"));
	assert_non_null(strstr(err.message, "loop1.json"));
	snprintf(path, sizeof(path), "%s/d0.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -ELOOP);
	assert_non_null(strstr(err.message, "deeper"));
	snprintf(path, sizeof(path), "%s/d3.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), 0);
	p = policy_free(p);
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -EINVAL);
	assert_non_null(strstr(err.message, "bad.json"));
	assert_non_null(strstr(err.message, "oops"));
	assert_int_equal(err.line, 2);
	assert_int_equal(err.column, 2);
	snprintf(path, sizeof(path), "%s/dupe.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -EINVAL);
	assert_non_null(strstr(err.message, "dupe.json"));
	snprintf(path, sizeof(path), "%s/missing.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -ENOENT);
	assert_non_null(strstr(err.message, "nosuch.json"));
	snprintf(path, sizeof(path), "%s/none.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), -ENOENT);
	assert_non_null(strstr(err.message, "none.json"));

	/* a "default.json" in the directory replaces the built-in empty default */
	write_file(dir, "default.json",
		   "{\"version\":1,\"rules\":[{\"id\":\"def\",\"tool\":\"kv.*\",\"decision\":"
		   "\"allow\"}]}");
	snprintf(path, sizeof(path), "%s/team.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), 0);
	assert_int_equal(eval(p, "kv.get", NULL, NULL, &res), POLICY_ALLOW);
	p = policy_free(p);

	char cmd[600];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

static const struct policy_finding *
find(const struct policy_finding *f, size_t n, const char *needle)
{
	for (size_t i = 0; i < n; i++)
		if (strstr(f[i].message, needle))
			return &f[i];
	return NULL;
}

static void
test_lint(void **state)
{
	const char *text = "{\n"
			   "  \"version\": 1,\n"
			   "  \"rules\": [\n"
			   "    {\"id\": \"no-etc\", \"tool\": \"fs.*\", \"path\": \"/etc/**\", "
			   "\"decision\": \"deny\"},\n"
			   "    {\"id\": \"etc-hosts\", \"tool\": \"fs.read\", \"path\": "
			   "\"/etc/hosts\", \"decision\": \"allow\"},\n"
			   "    {\"id\": \"ok\", \"tool\": \"fs.read\", \"path\": \"/srv/**\", "
			   "\"decision\": \"allow\"},\n"
			   "    {\"id\": \"typo\", \"tool\": \"fs.list\", \"paht\": \"/x\", "
			   "\"decision\": \"allow\"},\n"
			   "    {\"id\": \"ok\", \"tool\": \"fs.list\", \"decision\": \"allow\"}\n"
			   "  ],\n"
			   "  \"limitz\": {}\n"
			   "}\n";
	struct policy_finding *f = NULL;
	size_t n = 0;

	assert_int_equal(policy_lint(text, strlen(text), &f, &n), 0);
	const struct policy_finding *sh = find(f, n, "etc-hosts");
	assert_non_null(sh);
	assert_int_equal(sh->severity, POLICY_SEV_WARNING);
	assert_int_equal(sh->line, 5);
	assert_int_equal(sh->column, 5);
	assert_non_null(strstr(sh->message, "no-etc"));
	const struct policy_finding *uk = find(f, n, "unknown key 'paht'");
	assert_non_null(uk);
	assert_int_equal(uk->severity, POLICY_SEV_ERROR);
	assert_int_equal(uk->line, 7);
	assert_int_equal(uk->column, 39);
	const struct policy_finding *top = find(f, n, "unknown key 'limitz'");
	assert_non_null(top);
	assert_int_equal(top->line, 10);
	assert_int_equal(top->column, 3);
	const struct policy_finding *dup = find(f, n, "duplicate rule id 'ok'");
	assert_non_null(dup);
	assert_int_equal(dup->line, 8);
	assert_int_equal(dup->column, 12);
	/* "ok" is not shadowed (no deny covers /srv) */
	assert_null(find(f, n, "rule 'ok'"));
	assert_int_equal(n, 4);
	policy_findings_free(f);

	/* a clean policy has no findings; a syntax error is one finding */
	assert_int_equal(policy_lint(design_example, strlen(design_example), &f, &n), 0);
	assert_int_equal(n, 0);
	policy_findings_free(f);
	assert_int_equal(policy_lint("{\"version\":1,\n  \"rules\": [}", 27, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].line, 2);
	assert_int_equal(f[0].severity, POLICY_SEV_ERROR);
	policy_findings_free(f);

	/* ask covered by deny; allow covered by an ask glob; partial overlap is no finding */
	const char *t2 =
	    "{\"version\":1,\"rules\":["
	    "{\"id\":\"d\",\"tool\":\"http.*\",\"host\":\"**.corp\",\"decision\":"
	    "\"deny\"},"
	    "{\"id\":\"q\",\"tool\":\"http.request\",\"host\":\"a.b.corp\",\"method\":"
	    "\"GET\",\"decision\":\"ask\"},"
	    "{\"id\":\"w\",\"tool\":\"fs.write\",\"path\":\"/w/*\",\"decision\":\"ask\"},"
	    "{\"id\":\"w2\",\"tool\":\"fs.write\",\"path\":\"/w/a?\",\"max_bytes\":5,"
	    "\"decision\":\"allow\"},"
	    "{\"id\":\"w3\",\"tool\":\"fs.write\",\"path\":\"/w/**\",\"decision\":"
	    "\"allow\"}]}";
	assert_int_equal(policy_lint(t2, strlen(t2), &f, &n), 0);
	assert_non_null(find(f, n, "rule 'q' (ask)"));
	assert_non_null(find(f, n, "rule 'w2' (allow)"));
	assert_null(find(f, n, "rule 'w3'"));
	assert_int_equal(n, 2);
	policy_findings_free(f);
}

static enum policy_on_unknown
on_unknown(const struct policy *p, const char *tool, const char *path)
{
	cleanup_json json_t *a =
	    json_pack("{s:s,s:s,s:b}", "path", path, "content", "x", "append", 1);

	return policy_on_unknown(p, tool, a, "/");
}

static void
test_on_unknown(void **state)
{
	const char *text =
	    "{\"version\":1,\"on_unknown\":\"skip\",\"rules\":["
	    "{\"id\":\"ledger\",\"tool\":\"fs.write\",\"path\":\"/ledger/**\","
	    "\"decision\":\"ask\",\"on_unknown\":\"fail\"},"
	    "{\"id\":\"log\",\"tool\":\"fs.write\",\"path\":\"/log/**\",\"decision\":"
	    "\"allow\",\"on_unknown\":\"retry\"},"
	    "{\"id\":\"tmp\",\"tool\":\"fs.write\",\"path\":\"/tmp/**\",\"decision\":"
	    "\"allow\"},"
	    "{\"id\":\"no\",\"tool\":\"fs.write\",\"path\":\"/log/secret/**\","
	    "\"decision\":\"deny\"}]}";
	struct policy *p = parse_ok(text);

	/* the deciding rule's, else the top level's */
	assert_int_equal(on_unknown(p, "fs.write", "/ledger/a"), POLICY_UNKNOWN_FAIL);
	assert_int_equal(on_unknown(p, "fs.write", "/log/a"), POLICY_UNKNOWN_RETRY);
	assert_int_equal(on_unknown(p, "fs.write", "/tmp/a"), POLICY_UNKNOWN_SKIP);
	assert_int_equal(on_unknown(p, "fs.write", "/elsewhere"), POLICY_UNKNOWN_SKIP);
	assert_int_equal(on_unknown(p, "fs.write", "/log/secret/k"), POLICY_UNKNOWN_SKIP);
	/* serialised with the run and merged under extends: the same answers */
	cleanup_json json_t *j = policy_to_json(p);
	assert_string_equal(json_string_value(json_object_get(j, "on_unknown")), "skip");
	cleanup_free char *t2 = json_dumps(j, JSON_COMPACT);
	struct policy *q = parse_ok(t2);
	assert_int_equal(on_unknown(q, "fs.write", "/ledger/a"), POLICY_UNKNOWN_FAIL);
	assert_int_equal(on_unknown(q, "fs.write", "/log/a"), POLICY_UNKNOWN_RETRY);
	assert_int_equal(on_unknown(q, "fs.write", "/tmp/a"), POLICY_UNKNOWN_SKIP);
	struct policy *ext = parse_ok("{\"version\":1,\"on_unknown\":\"ask\"}");
	struct policy *m = policy_merge(p, ext);
	assert_non_null(m);
	assert_int_equal(on_unknown(m, "fs.write", "/tmp/a"), POLICY_UNKNOWN_ASK);
	assert_int_equal(on_unknown(m, "fs.write", "/log/a"), POLICY_UNKNOWN_RETRY);
	policy_free(m);
	struct policy *plain = parse_ok("{\"version\":1}");
	m = policy_merge(p, plain); /* an extension that says nothing keeps the base's */
	assert_int_equal(on_unknown(m, "fs.write", "/tmp/a"), POLICY_UNKNOWN_SKIP);
	assert_int_equal(on_unknown(plain, "fs.write", "/tmp/a"), POLICY_UNKNOWN_UNSET);
	/* layers: the strictest any layer says */
	struct policy_layer l[] = {{"system", plain}, {"user:u", q}, {"run", ext}};
	cleanup_json json_t *a = json_pack("{s:s}", "path", "/log/a");
	assert_int_equal(policy_stack_on_unknown(l, 1, "fs.write", a, "/"), POLICY_UNKNOWN_UNSET);
	assert_int_equal(policy_stack_on_unknown(l, 2, "fs.write", a, "/"), POLICY_UNKNOWN_RETRY);
	assert_int_equal(policy_stack_on_unknown(l, 3, "fs.write", a, "/"), POLICY_UNKNOWN_ASK);
	assert_int_equal(policy_on_unknown_parse("retry"), POLICY_UNKNOWN_RETRY);
	assert_int_equal(policy_on_unknown_parse("maybe"), -1);
	assert_int_equal(policy_on_unknown_parse(""), -1);
	assert_string_equal(policy_on_unknown_name(POLICY_UNKNOWN_FAIL), "fail");
	policy_free(m);
	policy_free(plain);
	policy_free(ext);
	policy_free(q);
	policy_free(p);

	/* errors name the place and the accepted values */
	expect_error("{\"version\": 1, \"on_unknown\": \"maybe\"}", 1, 30,
		     "'on_unknown' must be \"ask\", \"retry\", \"fail\" or \"skip\"");
	expect_error("{\"version\": 1, \"on_unknown\": true}", 1, 30, "'on_unknown' must be");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"deny\", \"on_unknown\": \"fail\"}]}",
		     1, 71, "only valid on allow and ask rules");
	expect_error("{\"version\": 1, \"rules\": [{\"id\": \"a\", \"tool\": \"x\", \"decision\": "
		     "\"allow\", \"on_unknown\": \"Retry\"}]}",
		     1, 86, "'on_unknown' must be");
	/* lint reports each of them in one pass */
	const char *bad = "{\"version\": 1, \"on_unknown\": \"later\", \"rules\": [\n"
			  "  {\"id\": \"a\", \"tool\": \"x\", \"decision\": \"deny\", "
			  "\"on_unknown\": \"skip\"}]}";
	struct policy_finding *f = NULL;
	size_t n = 0;
	assert_int_equal(policy_lint(bad, strlen(bad), &f, &n), 0);
	const struct policy_finding *top = find(f, n, "'on_unknown' must be");
	const struct policy_finding *rule = find(f, n, "only valid on allow and ask rules");
	assert_non_null(top);
	assert_non_null(rule);
	assert_int_equal(top->line, 1);
	assert_int_equal(rule->line, 2);
	policy_findings_free(f);
}

static void
test_fixtures(void **state)
{
	const char *src = getenv("AGENTD_SRC_DIR");
	char path[1024];
	cleanup_free char *buf = NULL;
	size_t len;
	struct policy_finding *f = NULL;
	size_t n = 0;

	if (!src)
		skip(); /* run through ctest, which sets it */
	snprintf(path, sizeof(path), "%s/tests/fixtures/policy/shadowed.json", src);
	assert_int_equal(agd_read_file(path, 1 << 20, &buf, &len), 0);
	assert_int_equal(policy_lint(buf, len, &f, &n), 0);
	assert_true(n >= 1);
	const struct policy_finding *sh = find(f, n, "rule 'read-keys' (allow) can never");
	assert_non_null(sh);
	assert_int_equal(sh->line, 5);
	assert_int_equal(sh->column, 5);
	assert_int_equal(sh->severity, POLICY_SEV_WARNING);
	/* read-home is only partly covered by no-ssh: not reported */
	assert_null(find(f, n, "read-home"));
	f = policy_findings_free(f);
	free(steal_ptr(&buf));

	snprintf(path, sizeof(path), "%s/tests/fixtures/policy/unknown_key.json", src);
	assert_int_equal(agd_read_file(path, 1 << 20, &buf, &len), 0);
	assert_int_equal(policy_lint(buf, len, &f, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(f[0].severity, POLICY_SEV_ERROR);
	assert_int_equal(f[0].line, 4);
	assert_int_equal(f[0].column, 39);
	assert_non_null(strstr(f[0].message, "unknown key 'paths'"));
	policy_findings_free(f);
}

/* The examples of docs/policy.md (copied verbatim into tests/fixtures/policy/) must
 * parse, lint clean and decide as the page says. */
static void
test_doc_examples(void **state)
{
	const char *src = getenv("AGENTD_SRC_DIR");
	char dir[1024], path[1100];
	struct policy *p = NULL;
	struct policy_error err;
	struct policy_result res;

	if (!src)
		skip(); /* run through ctest, which sets it */
	snprintf(dir, sizeof(dir), "%s/tests/fixtures/policy", src);
	static const char *clean[] = {"design.json", "coding-agent.json", "site/default.json",
				      "site/alice.json", "clean.json"};
	for (size_t i = 0; i < ARRAY_SIZE(clean); i++) {
		cleanup_free char *buf = NULL;
		size_t len;
		struct policy_finding *f = NULL;
		size_t n = 0;
		snprintf(path, sizeof(path), "%s/%s", dir, clean[i]);
		assert_int_equal(agd_read_file(path, 1 << 20, &buf, &len), 0);
		assert_int_equal(policy_lint(buf, len, &f, &n), 0);
		if (n)
			fail_msg("%s:%d:%d: %s", clean[i], f[0].line, f[0].column, f[0].message);
		policy_findings_free(f);
	}

	snprintf(path, sizeof(path), "%s/design.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), 0);
	assert_int_equal(
	    eval(p, "fs.read", "{\"path\":\"/srv/project/../../etc/passwd\"}", NULL, &res),
	    POLICY_DENY);
	assert_string_equal(res.path, "/etc/passwd");
	assert_null(res.rule);
	p = policy_free(p);

	snprintf(path, sizeof(path), "%s/coding-agent.json", dir);
	assert_int_equal(policy_load_file(path, dir, &p, &err), 0);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/home/dev/src/app/main.py\"}", NULL, &res),
			 POLICY_ALLOW);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/home/dev/src/app/.env\"}", NULL, &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "no-secrets");
	assert_int_equal(eval(p, "fs.write",
			      "{\"path\":\"/home/dev/src/app/a.py\",\"content\":\"x\"}", NULL,
			      &res),
			 POLICY_ASK);
	assert_int_equal(
	    url_decision(p, "POST", "https://api.github.com/repos/acme/app/pulls", &res),
	    POLICY_ASK);
	assert_string_equal(res.rule_id, "github-pr");
	assert_int_equal(url_decision(p, "GET", "http://169.254.169.254/latest/", &res),
			 POLICY_DENY);
	assert_string_equal(res.rule_id, "no-metadata");
	assert_non_null(policy_secret_for_url(p, "https://api.github.com/user"));
	p = policy_free(p);

	/* site/ holds a default.json, which replaces the built-in empty default */
	snprintf(path, sizeof(path), "%s/site/alice.json", dir);
	assert_int_equal(policy_load_file(path, NULL, &p, &err), 0);
	assert_int_equal(policy_rule_count(p), 5);
	assert_int_equal(policy_limits(p)->max_calls, 5000);
	assert_int_equal(policy_limits(p)->calls_per_minute, 60);
	assert_int_equal(policy_limits(p)->memory_bytes, 2ull << 30);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/home/alice/notes\"}", NULL, &res),
			 POLICY_ALLOW);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/home/alice/.ssh/id\"}", NULL, &res),
			 POLICY_DENY);
	assert_int_equal(eval(p, "fs.read", "{\"path\":\"/etc/passwd\"}", NULL, &res), POLICY_DENY);
	assert_string_equal(res.rule_id, "site-no-etc");
	assert_int_equal(url_decision(p, "GET", "https://x.alice.dev/", &res), POLICY_ASK);
	p = policy_free(p);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_design_example),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_default_deny_empty),
	    cmocka_unit_test(test_globs),
	    cmocka_unit_test(test_path_root),
	    cmocka_unit_test(test_normalize_path),
	    cmocka_unit_test(test_path_tricks),
	    cmocka_unit_test(test_host_tricks),
	    cmocka_unit_test(test_methods_prefix_size),
	    cmocka_unit_test(test_index_differential),
	    cmocka_unit_test(test_address_blocks),
	    cmocka_unit_test(test_index_many_roots),
	    cmocka_unit_test(test_parse_errors),
	    cmocka_unit_test(test_value_forms),
	    cmocka_unit_test(test_to_json_roundtrip),
	    cmocka_unit_test(test_merge),
	    cmocka_unit_test(test_on_unknown),
	    cmocka_unit_test(test_load_file),
	    cmocka_unit_test(test_lint),
	    cmocka_unit_test(test_fixtures),
	    cmocka_unit_test(test_doc_examples),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
