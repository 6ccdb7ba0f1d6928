/* Secret values for the policy's named secrets, held by the supervisor only.
 *
 * Values come from a JSON file {"name": "value", ...} that must be a regular
 * file of ours with no group or other permission bits (0600 or stricter), or
 * from our own environment (AGENTD_SECRET_<NAME>, the name upper-cased with
 * '-' and '.' as '_'); the file wins. They are resolved into an http.request's
 * headers in memory just before the tool runs: the journal keeps the agent's
 * arguments with the {"secret": "name"} placeholder, and every tool result is
 * redacted before it is journaled or answered, so a server or an error message
 * echoing a value never hands it to the agent or the store. */
#include <ctype.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/internal.h"
#include "supervisor/tools/tools.h"

#define SECRETS_FILE_MAX (1u << 20)
/* Shorter values would redact ordinary text and are guessable anyway. */
#define SECRET_MIN_LEN 8

struct sup_secrets {
	size_t n;
	char **names;  /* parallel to values; the policy's names */
	char **values; /* NULL: agentd holds no value for this name */
};

static void
wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

struct sup_secrets *
sup_secrets_free(struct sup_secrets *s)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		free(s->names[i]);
		wipe_free(s->values[i]);
	}
	free(s->names);
	free(s->values);
	free(s);
	return NULL;
}

static void
cleanup_secrets_fn(struct sup_secrets **s)
{
	sup_secrets_free(*s);
}

/* Read the secrets file, refusing one that others could read or change. */
static int
read_file(const char *path, json_t **ret, char *reason, size_t reasonsz)
{
	cleanup_close int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
	struct stat st;

	if (fd < 0) {
		int e = -errno;
		snprintf(reason, reasonsz, "secrets file %s: %s", path, strerror(-e));
		return e;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode) || (st.st_mode & 077) || st.st_uid != geteuid()) {
		snprintf(reason, reasonsz,
			 "secrets file %s must be a regular file owned by uid %u with mode 0600 "
			 "(it is %04o, uid %u)",
			 path, (unsigned)geteuid(), (unsigned)(st.st_mode & 07777),
			 (unsigned)st.st_uid);
		return -EPERM;
	}
	if ((size_t)st.st_size > SECRETS_FILE_MAX) {
		snprintf(reason, reasonsz, "secrets file %s is larger than %u bytes", path,
			 SECRETS_FILE_MAX);
		return -EFBIG;
	}
	cleanup_free char *buf = calloc(1, (size_t)st.st_size + 1);
	size_t got = 0;
	if (!buf)
		return -ENOMEM;
	while (got < (size_t)st.st_size) {
		ssize_t k = read(fd, buf + got, (size_t)st.st_size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	json_error_t jerr;
	json_t *doc = json_loadb(buf, got, JSON_REJECT_DUPLICATES, &jerr);
	explicit_bzero(buf, got);
	if (!json_is_object(doc)) {
		/* jerr.text may quote the file: say only where. */
		snprintf(reason, reasonsz,
			 "secrets file %s must be a JSON object of name to string (line %d)", path,
			 jerr.line);
		json_decref(doc);
		return -EINVAL;
	}
	*ret = doc;
	return 0;
}

static char *
from_env(const char *name)
{
	char var[160] = "AGENTD_SECRET_";
	size_t k = strlen(var);

	for (const char *p = name; *p && k + 1 < sizeof(var); p++)
		var[k++] = (*p == '-' || *p == '.') ? '_' : (char)toupper((unsigned char)*p);
	var[k] = '\0';
	const char *v = getenv(var);
	return v ? strdup(v) : NULL;
}

int
sup_secrets_load(struct sup_run *r, char *reason, size_t reasonsz)
{
	const struct policy_secret *ps = NULL;
	size_t n = policy_secrets(r->policy, &ps);
	__attribute__((cleanup(cleanup_secrets_fn))) struct sup_secrets *s = calloc(1, sizeof(*s));
	cleanup_json json_t *file = NULL;
	int e;

	if (!s)
		return -ENOMEM;
	if (r->opt.secrets_file &&
	    (e = read_file(r->opt.secrets_file, &file, reason, reasonsz)) < 0)
		return e;
	s->names = calloc(n + 1, sizeof(char *));
	s->values = calloc(n + 1, sizeof(char *));
	if (!s->names || !s->values)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++, s->n++) {
		json_t *v = json_object_get(file, ps[i].name);
		if (!(s->names[i] = strdup(ps[i].name)))
			return -ENOMEM;
		if (v && !json_is_string(v)) {
			snprintf(reason, reasonsz, "secret %s: the value must be a string",
				 ps[i].name);
			return -EINVAL;
		}
		s->values[i] = v ? strdup(json_string_value(v)) : from_env(ps[i].name);
		if (s->values[i] && strlen(s->values[i]) < SECRET_MIN_LEN) {
			snprintf(reason, reasonsz, "secret %s is shorter than %d bytes", ps[i].name,
				 SECRET_MIN_LEN);
			return -EINVAL;
		}
		if (s->values[i] && strpbrk(s->values[i], "\r\n")) {
			snprintf(reason, reasonsz, "secret %s contains a line break", ps[i].name);
			return -EINVAL;
		}
	}
	/* The copies in the parsed file are wiped by hand: jansson frees, not clears. */
	const char *k;
	json_t *v;
	json_object_foreach(file, k, v)
	{
		if (json_is_string(v))
			explicit_bzero((char *)json_string_value(v), json_string_length(v));
	}
	sup_secrets_free(r->secrets);
	r->secrets = steal_ptr(&s);
	return 0;
}

static const char *
value_of(const struct sup_secrets *s, const char *name)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (strcmp(s->names[i], name) == 0)
			return s->values[i];
	return NULL;
}

/* `format` with its "{}" replaced by value. */
static char *
render(const char *format, const char *value)
{
	const char *at = strstr(format, "{}");

	if (!at)
		return NULL;
	return agd_asprintf("%.*s%s%s", (int)(at - format), format, value, at + 2);
}

int
sup_secrets_apply(struct sup_run *r, const char *tool, const json_t *args, json_t **ret_args,
		  json_t **ret_error)
{
	const char *url = json_string_value(json_object_get(args, "url"));
	json_t *headers = json_object_get(args, "headers");
	cleanup_json json_t *out = NULL;
	const char *key;
	json_t *v;

	*ret_args = NULL;
	*ret_error = NULL;
	if (strcmp(tool, "http.request") != 0 || !url)
		return 0;
	/* {"secret": "name"} header values the agent asked for. */
	json_object_foreach(headers, key, v)
	{
		if (!json_is_object(v))
			continue;
		const char *name = NULL;
		json_error_t jerr;
		if (json_unpack_ex(v, &jerr, JSON_STRICT, "{s:s}", "secret", &name) < 0) {
			*ret_error = tools_error(
			    "EINVAL", "header %.64s: a secret is {\"secret\": \"name\"}", key);
			return *ret_error ? 0 : -ENOMEM;
		}
		const struct policy_secret *ps = policy_secret_named_for_url(r->policy, name, url);
		const char *val = value_of(r->secrets, name);
		if (!ps || strcasecmp(ps->header, key) != 0) {
			*ret_error = tools_error("EACCES",
						 "secret %.64s may not be sent in header %.64s to "
						 "this host",
						 name, key);
			return *ret_error ? 0 : -ENOMEM;
		}
		if (!val) {
			*ret_error =
			    tools_error("ENOKEY", "agentd holds no value for secret %.64s", name);
			return *ret_error ? 0 : -ENOMEM;
		}
		if (!out && !(out = json_deep_copy(args)))
			return -ENOMEM;
		cleanup_free char *line = render(ps->format, val);
		json_t *h = json_object_get(out, "headers");
		if (!line || json_object_set_new(h, key, json_string(line)) < 0) {
			if (line)
				explicit_bzero(line, strlen(line));
			return -ENOMEM;
		}
		explicit_bzero(line, strlen(line));
	}
	/* The policy's binding alone also injects (docs/policy.md, Secrets), unless
	 * the agent set that header itself. */
	const struct policy_secret *ps = policy_secret_for_url(r->policy, url);
	const char *val = ps ? value_of(r->secrets, ps->name) : NULL;
	if (ps && val) {
		bool given = false;
		json_object_foreach(headers, key, v)
		{
			given |= strcasecmp(key, ps->header) == 0;
		}
		if (!given) {
			if (!out && !(out = json_deep_copy(args)))
				return -ENOMEM;
			json_t *h = json_object_get(out, "headers");
			if (!h && (json_object_set_new(out, "headers", json_object()) < 0 ||
				   !(h = json_object_get(out, "headers"))))
				return -ENOMEM;
			cleanup_free char *line = render(ps->format, val);
			if (!line || json_object_set_new(h, ps->header, json_string(line)) < 0)
				return -ENOMEM;
			explicit_bzero(line, strlen(line));
		}
	}
	*ret_args = steal_ptr(&out);
	return 0;
}

/* Replace every occurrence of each value in s by "[secret:NAME]"; NULL when
 * nothing matched. */
static char *
redact_string(const struct sup_secrets *s, const char *in)
{
	char *cur = NULL;

	for (size_t i = 0; i < s->n; i++) {
		const char *val = s->values[i];
		const char *src = cur ? cur : in;
		if (!val || !strstr(src, val))
			continue;
		size_t vl = strlen(val);
		cleanup_free char *mark = agd_asprintf("[secret:%s]", s->names[i]);
		if (!mark)
			return NULL;
		size_t ml = strlen(mark), cnt = 0;
		for (const char *p = strstr(src, val); p; p = strstr(p + vl, val))
			cnt++;
		char *outb = malloc(strlen(src) - cnt * vl + cnt * ml + 1), *o = outb;
		if (!outb)
			return NULL;
		for (const char *p = src, *q; (q = strstr(p, val)); p = q + vl) {
			memcpy(o, p, (size_t)(q - p));
			o += q - p;
			memcpy(o, mark, ml);
			o += ml;
			src = q + vl;
		}
		strcpy(o, src);
		free(cur);
		cur = outb;
	}
	return cur;
}

static int
redact(const struct sup_secrets *s, json_t *v, int depth)
{
	const char *key;
	json_t *x;
	size_t i;

	if (depth > AGD_JSON_MAX_DEPTH + 8)
		return -E2BIG;
	if (json_is_string(v)) {
		if (strlen(json_string_value(v)) != json_string_length(v)) {
			/* Embedded NUL: searched as bytes, and a hit drops the whole string. */
			for (size_t k = 0; k < s->n; k++)
				if (s->values[k] &&
				    memmem(json_string_value(v), json_string_length(v),
					   s->values[k], strlen(s->values[k])))
					return json_string_set(v, "[secret]") < 0 ? -ENOMEM : 0;
			return 0;
		}
		char *red = redact_string(s, json_string_value(v));
		int e = red ? json_string_set(v, red) : 0;
		free(red);
		return e < 0 ? -ENOMEM : 0;
	}
	if (json_is_object(v)) {
		json_object_foreach(v, key, x)
		{
			int e = redact(s, x, depth + 1);
			if (e < 0)
				return e;
		}
	} else if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			int e = redact(s, x, depth + 1);
			if (e < 0)
				return e;
		}
	}
	return 0;
}

int
sup_secrets_redact(struct sup_run *r, json_t *content)
{
	bool any = false;

	for (size_t i = 0; r->secrets && i < r->secrets->n; i++)
		any |= r->secrets->values[i] != NULL;
	if (!any || !content)
		return 0;
	return redact(r->secrets, content, 0);
}
