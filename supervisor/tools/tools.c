/* The built-in tool registry and helpers shared by the tools. */
#include "supervisor/tools/tools.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/tools/curl_dl.h"
#include "supervisor/tools/tools-internal.h"

const struct tool_def *const tools_builtin[] = {
    &tools_fs_read,   &tools_fs_write,	   &tools_fs_list, &tools_fs_stat,
    &tools_fs_delete, &tools_http_request, &tools_echo,	   NULL,
};

const struct tool_def *
tools_find(const char *name)
{
	if (!name)
		return NULL;
	for (size_t i = 0; tools_builtin[i]; i++)
		if (strcmp(tools_builtin[i]->name, name) == 0)
			return tools_builtin[i];
	return NULL;
}

json_t *
tools_describe(const struct tool_def *t)
{
	json_error_t e;
	json_t *schema = json_loads(t->input_schema, JSON_REJECT_DUPLICATES, &e);

	/* The schemas are compiled-in constants; test_tools checks they parse. */
	if (!schema)
		return NULL;
	return json_pack("{s:s,s:s,s:o}", "name", t->name, "description", t->description,
			 "inputSchema", schema);
}

void
tools_global_init(void)
{
	(void)tools_curl(NULL); /* a failure is reported by the tool that needs it */
}

json_t *
tools_error(const char *code, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *m = json_string(msg);
	/* Messages may quote untrusted bytes; never fail on them. */
	if (!m)
		m = json_string("(message is not valid UTF-8)");
	return json_pack("{s:{s:s,s:o}}", "error", "code", code, "message", m);
}

const char *
tools_errno_code(int err)
{
	if (err < 0)
		err = -err;
	const char *name = strerrorname_np(err);
	return name ? name : "EIO";
}

json_t *
tools_errno_error(int err, const char *what)
{
	if (err < 0)
		err = -err;
	return tools_error(tools_errno_code(err), "%s: %s", what, strerror(err));
}

json_t *
tools_base64(const void *buf, size_t len)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	const unsigned char *p = buf;
	size_t olen = (len + 2) / 3 * 4;
	char *out = malloc(olen + 1);
	size_t o = 0;

	if (!out)
		return NULL;
	for (size_t i = 0; i < len; i += 3) {
		unsigned v = (unsigned)p[i] << 16;
		if (i + 1 < len)
			v |= (unsigned)p[i + 1] << 8;
		if (i + 2 < len)
			v |= p[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	json_t *s = json_stringn_nocheck(out, o);
	free(out);
	return s;
}

json_t *
tools_text_or_null(const char *buf, size_t len)
{
	/* NUL is valid UTF-8 but agentd's strict parser refuses it in strings, so a
	 * result carrying one could not be read back from the journal. */
	if (memchr(buf, '\0', len))
		return NULL;
	return json_stringn(buf, len);
}

int
tools_bad_args(const json_error_t *jerr, json_t **ret_content, bool *ret_is_error)
{
	json_t *e = tools_error("EINVAL", "invalid arguments: %s", jerr->text);
	if (!e)
		return -ENOMEM;
	*ret_content = e;
	*ret_is_error = true;
	return 0;
}
