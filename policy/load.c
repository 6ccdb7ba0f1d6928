/* Serialising, merging and loading policies from files. Merging goes through the
 * JSON form so a merged policy is by construction one that policy_parse accepts. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy_int.h"

#define POLICY_FILE_MAX	   (16u << 20)
#define POLICY_EXTENDS_MAX 8

static int
set_int(json_t *o, const char *key, uint64_t v)
{
	return json_object_set_new(o, key, json_integer((json_int_t)v));
}

static json_t *
limits_json(const struct policy_limits *l)
{
	json_t *o = json_object();
	char buf[32];
	int r = 0;

	if (!o)
		return NULL;
	if (l->calls_per_minute)
		r |= set_int(o, "calls_per_minute", l->calls_per_minute);
	if (l->max_calls)
		r |= set_int(o, "max_calls", l->max_calls);
	if (l->wall_clock_ms) {
		snprintf(buf, sizeof(buf), "%llums", (unsigned long long)l->wall_clock_ms);
		r |= json_object_set_new(o, "wall_clock", json_string(buf));
	}
	if (l->memory_bytes)
		r |= set_int(o, "memory", l->memory_bytes);
	if (l->pids)
		r |= set_int(o, "pids", l->pids);
	if (l->cpu_milli)
		r |= json_object_set_new(o, "cpu", pcpu_json(l->cpu_milli));
	if (l->tool_calls_per_minute)
		r |= set_int(o, "tool_calls_per_minute", l->tool_calls_per_minute);
	if (l->bytes_in)
		r |= set_int(o, "bytes_in", l->bytes_in);
	if (l->bytes_out)
		r |= set_int(o, "bytes_out", l->bytes_out);
	if (l->max_spend)
		r |= set_int(o, "max_spend", l->max_spend);
	if (l->ask_on_limit)
		r |= json_object_set_new(o, "on_limit", json_string("ask"));
	if (l->user_calls_per_minute)
		r |= set_int(o, "user_calls_per_minute", l->user_calls_per_minute);
	if (r) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static json_t *
mount_json(const struct policy_mount *m)
{
	return json_pack("{s:s, s:s, s:s}", "host", m->host, "path", m->path, "mode",
			 m->read_write ? "rw" : "ro");
}

static json_t *
secret_json(const struct policy_secret *s)
{
	json_t *hosts = json_array();

	if (!hosts)
		return NULL;
	for (const char *const *h = s->hosts; h && *h; h++)
		if (json_array_append_new(hosts, json_string(*h)) < 0) {
			json_decref(hosts);
			return NULL;
		}
	return json_pack("{s:o, s:s, s:s}", "hosts", hosts, "header", s->header, "format",
			 s->format);
}

/* Append the parts of p to the document being built. */
static int
add_parts(json_t *rules, json_t *mounts, json_t *secrets, const struct policy *p)
{
	for (size_t i = 0; i < p->n_rules; i++)
		if (json_array_append_new(rules, json_deep_copy(p->rules[i].src)) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < p->n_mounts; i++)
		if (json_array_append_new(mounts, mount_json(&p->mounts[i])) < 0)
			return -ENOMEM;
	for (size_t i = 0; i < p->n_secrets; i++)
		if (json_object_set_new(secrets, p->secrets[i].name, secret_json(&p->secrets[i])) <
		    0)
			return -ENOMEM;
	return 0;
}

/* Build a self-contained document of base (may be NULL) overlaid by p. */
static json_t *
document(const struct policy *base, const struct policy *p)
{
	cleanup_json json_t *doc = json_object();
	json_t *rules = NULL, *mounts = NULL, *secrets = NULL;
	struct policy_limits l = base ? base->limits : (struct policy_limits){0};
	const json_t *desc = p->description ? p->description : base ? base->description : NULL;

	/* json_object_set_new takes the reference even when it fails */
	if (!doc || json_object_set_new(doc, "version", json_integer(1)) < 0 ||
	    json_object_set_new(doc, "rules", (rules = json_array())) < 0 ||
	    json_object_set_new(doc, "secrets", (secrets = json_object())) < 0 ||
	    json_object_set_new(doc, "sandbox", json_pack("{s:[]}", "mounts")) < 0)
		return NULL;
	mounts = json_object_get(json_object_get(doc, "sandbox"), "mounts");
	if ((base && add_parts(rules, mounts, secrets, base) < 0) ||
	    add_parts(rules, mounts, secrets, p) < 0)
		return NULL;
	/* the extending policy's limits override the ones it sets */
	if (p->limits.calls_per_minute)
		l.calls_per_minute = p->limits.calls_per_minute;
	if (p->limits.max_calls)
		l.max_calls = p->limits.max_calls;
	if (p->limits.wall_clock_ms)
		l.wall_clock_ms = p->limits.wall_clock_ms;
	if (p->limits.memory_bytes)
		l.memory_bytes = p->limits.memory_bytes;
	if (p->limits.pids)
		l.pids = p->limits.pids;
	if (p->limits.cpu_milli)
		l.cpu_milli = p->limits.cpu_milli;
	if (p->limits.tool_calls_per_minute)
		l.tool_calls_per_minute = p->limits.tool_calls_per_minute;
	if (p->limits.bytes_in)
		l.bytes_in = p->limits.bytes_in;
	if (p->limits.bytes_out)
		l.bytes_out = p->limits.bytes_out;
	if (p->limits.max_spend)
		l.max_spend = p->limits.max_spend;
	if (p->limits.user_calls_per_minute)
		l.user_calls_per_minute = p->limits.user_calls_per_minute;
	l.ask_on_limit = l.ask_on_limit || p->limits.ask_on_limit;
	if (json_object_set_new(doc, "limits", limits_json(&l)) < 0)
		return NULL;
	/* the cost header: p's if it names one, else base's */
	const char *ch = p->cost_header ? p->cost_header : base ? base->cost_header : NULL;
	if (ch &&
	    json_object_set_new(json_object_get(doc, "limits"), "cost_header", json_string(ch)) < 0)
		return NULL;
	/* per-tool costs: p's entry wins for a tool in both */
	json_t *costs = json_object();
	if (!costs || json_object_set_new(json_object_get(doc, "limits"), "cost", costs) < 0 ||
	    (base && base->costs && json_object_update(costs, base->costs) < 0) ||
	    (p->costs && json_object_update(costs, p->costs) < 0))
		return NULL;
	if (json_object_size(costs) == 0)
		json_object_del(json_object_get(doc, "limits"), "cost");
	if (desc && json_object_set_new(doc, "description", json_deep_copy(desc)) < 0)
		return NULL;
	/* on_unknown: the extending policy's if it says one, else its base's */
	enum policy_on_unknown onu = p->on_unknown ? p->on_unknown
				     : base	   ? base->on_unknown
						   : POLICY_UNKNOWN_UNSET;
	if (onu &&
	    json_object_set_new(doc, "on_unknown", json_string(policy_on_unknown_name(onu))) < 0)
		return NULL;
	/* leave out empty sections so the stored document reads like a written one */
	if (json_object_size(secrets) == 0)
		json_object_del(doc, "secrets");
	/* the extending policy's word on the network wins over its base's */
	const struct policy *net = p->network_declared		    ? p
				   : base && base->network_declared ? base
								    : NULL;
	if (net &&
	    json_object_set_new(json_object_get(doc, "sandbox"), "network",
				json_string(net->network_loopback ? "loopback" : "unix")) < 0)
		return NULL;
	/* a defence either document requires stays required */
	unsigned req = p->require | (base ? base->require : 0);
	unsigned opt = (p->optional | (base ? base->optional : 0)) & ~req;
	json_t *sbx = json_object_get(doc, "sandbox");
	if ((req && json_object_set_new(sbx, "require", pdefences_json(req)) < 0) ||
	    (opt && json_object_set_new(sbx, "optional", pdefences_json(opt)) < 0))
		return NULL;
	if (json_array_size(mounts) == 0 && json_object_size(sbx) == 1)
		json_object_del(doc, "sandbox");
	if (json_object_size(json_object_get(doc, "limits")) == 0)
		json_object_del(doc, "limits");
	return steal_ptr(&doc);
}

json_t *
policy_to_json(const struct policy *p)
{
	if (!p)
		return NULL;
	return document(NULL, p);
}

static int
merge(const struct policy *base, const struct policy *p, struct policy **ret,
      struct policy_error *err)
{
	cleanup_json json_t *doc = document(base, p);
	struct policy *m = NULL;

	if (!doc)
		return -ENOMEM;
	int r = policy_compile(doc, NULL, 0, NULL, &m, err);
	if (r < 0)
		return r;
	*ret = m;
	return 0;
}

struct policy *
policy_merge(const struct policy *base, const struct policy *p)
{
	struct policy_error err = {0};
	struct policy *m = NULL;

	if (!base || !p) {
		errno = EINVAL;
		return NULL;
	}
	int r = merge(base, p, &m, &err);
	if (r < 0) {
		/* the only way valid parts fail to compile together: a rule id in both */
		errno = r == -EINVAL ? EEXIST : -r;
		return NULL;
	}
	return m;
}

static void
file_err(struct policy_error *err, const char *file, int line, int col, const char *msg)
{
	err->line = line;
	err->column = col;
	/* long names are cut; the message stays one line */
	if (snprintf(err->message, sizeof(err->message), "%s: %s", file, msg) < 0)
		err->message[0] = '\0';
}

struct chain {
	dev_t dev[POLICY_EXTENDS_MAX + 2];
	ino_t ino[POLICY_EXTENDS_MAX + 2];
	size_t n;
};

static int
load_rec(const char *path, const char *dir, struct chain *ch, struct policy **ret,
	 struct policy_error *err)
{
	cleanup_free char *buf = NULL;
	size_t len = 0;
	struct stat st;
	struct policy *p = NULL;
	int r;

	if (stat(path, &st) < 0) {
		r = -errno;
		file_err(err, path, 0, 0, strerror(-r));
		return r;
	}
	for (size_t i = 0; i < ch->n; i++) {
		if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
			file_err(err, path, 0, 0, "'extends' forms a cycle");
			return -ELOOP;
		}
	}
	if (ch->n > POLICY_EXTENDS_MAX) {
		file_err(err, path, 0, 0, "'extends' chain deeper than 8");
		return -ELOOP;
	}
	ch->dev[ch->n] = st.st_dev;
	ch->ino[ch->n] = st.st_ino;
	ch->n++;

	r = agd_read_file(path, POLICY_FILE_MAX, &buf, &len);
	if (r < 0) {
		file_err(err, path, 0, 0, strerror(-r));
		return r;
	}
	struct policy_error perr = {0};
	r = policy_parse(buf, len, &p, &perr);
	if (r < 0) {
		file_err(err, path, perr.line, perr.column, perr.message);
		return r;
	}
	if (!p->extends) {
		*ret = p;
		return 0;
	}

	char base_path[PATH_MAX];
	cleanup_free char *own_dir = NULL;
	if (!dir) {
		/* without a policy directory, names resolve next to the file */
		const char *slash = strrchr(path, '/');
		own_dir =
		    slash ? strndup(path, (size_t)(slash - path) + (slash == path)) : strdup(".");
		if (!own_dir) {
			policy_free(p);
			return -ENOMEM;
		}
		dir = own_dir;
	}
	if ((size_t)snprintf(base_path, sizeof(base_path), "%s/%s.json", dir, p->extends) >=
	    sizeof(base_path)) {
		file_err(err, path, 0, 0, "'extends' path too long");
		policy_free(p);
		return -ENAMETOOLONG;
	}
	if (strcmp(p->extends, "default") == 0 && access(base_path, F_OK) < 0 && errno == ENOENT) {
		/* built-in "default": the empty policy, which denies everything */
		free(p->extends);
		p->extends = NULL;
		*ret = p;
		return 0;
	}
	struct policy *base = NULL;
	r = load_rec(base_path, dir, ch, &base, err);
	if (r < 0) {
		policy_free(p);
		return r;
	}
	struct policy *m = NULL;
	struct policy_error merr = {0};
	r = merge(base, p, &m, &merr);
	policy_free(base);
	policy_free(p);
	if (r < 0) {
		file_err(err, path, 0, 0,
			 r == -EINVAL ? "a rule id is defined both here and in the extended policy"
				      : strerror(-r));
		return r;
	}
	*ret = m;
	return 0;
}

int
policy_load_file(const char *path, const char *dir, struct policy **ret, struct policy_error *err)
{
	struct policy_error dummy;
	struct chain ch = {.n = 0};

	if (!err)
		err = &dummy;
	memset(err, 0, sizeof(*err));
	if (!path || !ret) {
		snprintf(err->message, sizeof(err->message), "no policy file");
		return -EINVAL;
	}
	return load_rec(path, dir, &ch, ret, err);
}
