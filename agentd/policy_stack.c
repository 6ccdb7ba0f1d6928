/* The policy layers of a new run: the operator's system policy and the
 * calling user's policy from the policy directory, then --policy FILE. Each
 * layer can only narrow the ones above it (docs/policy.md, Layers). */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agentd/cli.h"
#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"

#define SYSTEM_POLICY_DIR "/etc/agentd/policies"

static bool
is_dir(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool
file_exists(const char *p)
{
	struct stat st;

	return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* The policy directory: --policy-dir, else /etc/agentd/policies for root and
 * $XDG_CONFIG_HOME/agentd/policies (~/.config/...) otherwise; "" when the
 * default does not exist. An explicit directory must exist. */
static int
policy_dir(const char *opt, char *out, size_t outsz, char *err, size_t errsz)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	out[0] = '\0';
	if (opt) {
		if (!is_dir(opt)) {
			snprintf(err, errsz, "policy directory %s does not exist", opt);
			return -ENOENT;
		}
		snprintf(out, outsz, "%s", opt);
		return 0;
	}
	if (geteuid() == 0)
		snprintf(out, outsz, "%s", SYSTEM_POLICY_DIR);
	else if (xdg && xdg[0] == '/')
		snprintf(out, outsz, "%s/agentd/policies", xdg);
	else if (home && home[0] == '/')
		snprintf(out, outsz, "%s/.config/agentd/policies", home);
	if (out[0] && !is_dir(out))
		out[0] = '\0';
	return 0;
}

static int
add_layer(json_t *layers, const char *name, const char *path, const char *dir, char *err,
	  size_t errsz)
{
	struct policy *p = NULL;
	struct policy_error perr = {0};
	int e = policy_load_file(path, dir, &p, &perr);

	if (e < 0) {
		if (perr.line)
			snprintf(err, errsz, "%s:%d:%d: %s", path, perr.line, perr.column,
				 perr.message);
		else
			snprintf(err, errsz, "%s: %s", path,
				 perr.message[0] ? perr.message : strerror(-e));
		return e;
	}
	json_t *doc = policy_to_json(p);
	policy_free(p);
	if (!doc ||
	    json_array_append_new(layers, json_pack("{s:s,s:o}", "name", name, "policy", doc)) < 0)
		return -ENOMEM;
	return 0;
}

static bool
user_name_ok(const char *u)
{
	if (!u[0] || strlen(u) > 64 || u[0] == '.')
		return false;
	for (const char *p = u; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= 'A' && *p <= 'Z') &&
		    !(*p >= '0' && *p <= '9') && !strchr("._-", *p))
			return false;
	return true;
}

int
agd_policy_stack(const char *dir_opt, const char *user, const char *file, json_t **ret, char *err,
		 size_t errsz)
{
	char dir[PATH_MAX], path[PATH_MAX + 80], uname[80];
	cleanup_json json_t *layers = json_array();
	int e;

	err[0] = '\0';
	if (!layers)
		return -ENOMEM;
	e = policy_dir(dir_opt, dir, sizeof(dir), err, errsz);
	if (e < 0)
		return e;
	if (!user) {
		struct passwd *pw = getpwuid(getuid());
		if (!pw) {
			snprintf(err, errsz, "cannot find the name of uid %u", (unsigned)getuid());
			return -ENOENT;
		}
		snprintf(uname, sizeof(uname), "%s", pw->pw_name);
		user = uname;
	}
	if (!user_name_ok(user)) {
		snprintf(err, errsz, "user name '%.64s' cannot name a policy file", user);
		return -EINVAL;
	}
	if (dir[0]) {
		snprintf(path, sizeof(path), "%s/system.json", dir);
		if (file_exists(path) &&
		    (e = add_layer(layers, "system", path, dir, err, errsz)) < 0)
			return e;
		char lname[96];
		snprintf(lname, sizeof(lname), "user:%.64s", user);
		snprintf(path, sizeof(path), "%s/%.64s.json", dir, user);
		if (!file_exists(path))
			snprintf(path, sizeof(path), "%s/default.json", dir);
		if (file_exists(path) && (e = add_layer(layers, lname, path, dir, err, errsz)) < 0)
			return e;
	}
	if (file) {
		cleanup_free char *copy = strdup(file);
		if (!copy)
			return -ENOMEM;
		e = add_layer(layers, "run", file, dirname(copy), err, errsz);
		if (e < 0)
			return e;
	}
	*ret = steal_ptr(&layers);
	return 0;
}

int
agd_run_policy(const char *dir_opt, const char *file, json_t **ret)
{
	cleanup_json json_t *layers = NULL;
	char err[1024];
	int e = agd_policy_stack(dir_opt, NULL, file, &layers, err, sizeof(err));

	if (e < 0)
		return agd_die(2, "%s", err[0] ? err : strerror(-e));
	if (json_array_size(layers) == 0) {
		fprintf(stderr, "agentd: no --policy given and no policy directory: every tool "
				"call will be denied\n");
		*ret = json_pack("{s:i,s:[]}", "version", 1, "rules");
	} else if (json_array_size(layers) == 1 && file) {
		/* Only the run's own file: stored as one document, as before layers. */
		*ret = json_incref(json_object_get(json_array_get(layers, 0), "policy"));
	} else {
		*ret = steal_ptr(&layers);
	}
	return *ret ? 0 : agd_die(1, "out of memory");
}
