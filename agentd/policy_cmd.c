/* agentd policy check: explain the decision for one call. */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

/* The same bound as policy_load_file: a policy is never larger. */
#define LINT_MAX_BYTES (16u << 20)

static const char *const decision_name[] = {"deny", "ask", "allow"};

/* Parsed layers of a stack from agd_policy_stack. */
struct layers {
	size_t n;
	struct policy_layer v[8];
	struct policy *own[8];
};

static void
layers_done(struct layers *l)
{
	for (size_t i = 0; i < l->n; i++)
		policy_free(l->own[i]);
}

static int
cmd_check(int argc, char **argv)
{
	static const char usage[] = "usage: agentd policy check [--policy FILE] [--policy-dir DIR] "
				    "[--user U] [--cwd DIR] TOOL ARGS_JSON";
	const char *path = NULL, *tool = NULL, *args_text = NULL, *cwd_opt = NULL;
	const char *dir = NULL, *user = NULL;
	char cwd[PATH_MAX], err[1024];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--policy-dir") == 0 && i + 1 < argc)
			dir = argv[++i];
		else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc)
			user = argv[++i];
		else if (strcmp(argv[i], "--cwd") == 0 && i + 1 < argc)
			cwd_opt = argv[++i];
		else if (!tool)
			tool = argv[i];
		else if (!args_text)
			args_text = argv[i];
		else
			return agd_die(2, "%s", usage);
	}
	if (!tool)
		return agd_die(2, "%s", usage);
	if (!args_text)
		args_text = "{}";
	if (cwd_opt)
		snprintf(cwd, sizeof(cwd), "%s", cwd_opt);
	else if (!getcwd(cwd, sizeof(cwd)))
		return agd_die(1, "cannot get the working directory");

	json_error_t jerr;
	cleanup_json json_t *args =
	    agd_json_parse(args_text, strlen(args_text), AGD_JSON_MAX_DEPTH, &jerr);
	if (!json_is_object(args))
		return agd_die(2, "ARGS_JSON must be a JSON object: %s", jerr.text);

	/* The same layers `agentd run` would store: system, user, --policy. */
	cleanup_json json_t *stack = NULL;
	int e = agd_policy_stack(dir, user, path, &stack, err, sizeof(err));
	if (e < 0)
		return agd_die(2, "%s", err[0] ? err : strerror(-e));
	if (json_array_size(stack) == 0)
		return agd_die(2, "no policy: give --policy FILE or a policy directory");
	struct layers l = {0};
	size_t i;
	json_t *layer;
	json_array_foreach(stack, i, layer)
	{
		struct policy_error perr = {0};
		cleanup_free char *text =
		    json_dumps(json_object_get(layer, "policy"), JSON_COMPACT);
		if (i >= ARRAY_SIZE(l.v) || !text ||
		    policy_parse(text, strlen(text), &l.own[i], &perr) < 0) {
			layers_done(&l);
			return agd_die(1, "layer %zu: %s", i, perr.message);
		}
		l.v[i] = (struct policy_layer){json_string_value(json_object_get(layer, "name")),
					       l.own[i]};
		l.n = i + 1;
	}
	struct policy_result r;
	size_t pick = 0;
	e = policy_stack_eval(l.v, l.n, tool, args, cwd, &r, &pick);
	if (e < 0) {
		layers_done(&l);
		return agd_die(1, "evaluation failed: %s", strerror(-e));
	}
	printf("decision: %s\nrule: %s\nlayer: %s\nreason: %s\n", decision_name[r.decision],
	       r.rule ? r.rule_id : "(no rule matched)", l.v[pick].name, r.reason);
	enum policy_on_unknown u = policy_stack_on_unknown(l.v, l.n, tool, args, cwd);
	if (u != POLICY_UNKNOWN_UNSET) /* for an effect a crash leaves unknown */
		printf("on_unknown: %s\n", policy_on_unknown_name(u));
	/* Every layer's own answer: the decision is the strictest of them. */
	for (size_t k = 0; k < l.n && l.n > 1; k++) {
		struct policy_result lr;
		if (policy_eval(l.v[k].policy, tool, args, cwd, &lr) == 0)
			printf("  %s: %s (%s)\n", l.v[k].name, decision_name[lr.decision],
			       lr.rule ? lr.rule_id : "no rule matched");
	}
	layers_done(&l);
	/* Exit status mirrors the decision so scripts can test it. */
	return r.decision == POLICY_ALLOW ? 0 : r.decision == POLICY_ASK ? 3 : 4;
}

/* agentd policy lint FILE: every finding as "FILE:LINE:COLUMN: SEVERITY: MESSAGE";
 * exit 1 if any is an error, 0 for warnings alone, 2 when the file cannot be read. */
static int
cmd_lint(int argc, char **argv)
{
	if (argc != 2)
		return agd_die(2, "usage: agentd policy lint FILE");
	const char *path = argv[1];
	cleanup_free char *buf = NULL;
	size_t len = 0;
	int e = agd_read_file(path, LINT_MAX_BYTES, &buf, &len);
	if (e < 0)
		return agd_die(2, "cannot read %s: %s", path, strerror(-e));

	struct policy_finding *f = NULL;
	size_t n = 0;
	e = policy_lint(buf, len, &f, &n);
	if (e < 0)
		return agd_die(1, "lint failed: %s", strerror(-e));
	bool error = false;
	for (size_t i = 0; i < n; i++) {
		printf("%s:%d:%d: %s: %s\n", path, f[i].line, f[i].column,
		       f[i].severity == POLICY_SEV_ERROR ? "error" : "warning", f[i].message);
		error |= f[i].severity == POLICY_SEV_ERROR;
	}
	policy_findings_free(f);
	return error ? 1 : 0;
}

int
agd_cmd_policy(int argc, char **argv)
{
	if (argc >= 2 && strcmp(argv[1], "check") == 0)
		return cmd_check(argc - 1, argv + 1);
	if (argc >= 2 && strcmp(argv[1], "lint") == 0)
		return cmd_lint(argc - 1, argv + 1);
	return agd_die(2,
		       "usage: agentd policy check [--policy FILE] [--policy-dir DIR] [--user U] "
		       "TOOL ARGS_JSON [--cwd DIR]\n"
		       "       agentd policy lint FILE");
}
