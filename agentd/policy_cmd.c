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

static int
cmd_check(int argc, char **argv)
{
	const char *path = NULL, *tool = NULL, *args_text = NULL, *cwd_opt = NULL;
	char cwd[PATH_MAX];

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--policy") == 0 && i + 1 < argc)
			path = argv[++i];
		else if (strcmp(argv[i], "--cwd") == 0 && i + 1 < argc)
			cwd_opt = argv[++i];
		else if (!tool)
			tool = argv[i];
		else if (!args_text)
			args_text = argv[i];
		else
			return agd_die(2,
				       "usage: agentd policy check --policy FILE TOOL ARGS_JSON");
	}
	if (!path || !tool)
		return agd_die(2, "usage: agentd policy check --policy FILE TOOL ARGS_JSON");
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

	struct policy *pol = NULL;
	struct policy_error perr = {0};
	cleanup_free char *copy = strdup(path);
	int e = copy ? policy_load_file(path, dirname(copy), &pol, &perr) : -ENOMEM;
	if (e < 0)
		return agd_die(2, "%s:%d:%d: %s", path, perr.line, perr.column, perr.message);
	struct policy_result r;
	e = policy_eval(pol, tool, args, cwd, &r);
	if (e < 0) {
		policy_free(pol);
		return agd_die(1, "evaluation failed: %s", strerror(-e));
	}
	printf("decision: %s\nrule: %s\nreason: %s\n", decision_name[r.decision],
	       r.rule ? r.rule_id : "(no rule matched)", r.reason);
	policy_free(pol);
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
	return agd_die(2, "usage: agentd policy check --policy FILE TOOL ARGS_JSON [--cwd DIR]\n"
			  "       agentd policy lint FILE");
}
