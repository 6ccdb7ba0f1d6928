/* agentd client library: JSON-RPC over the agent channel. See agentd_client.h. */
#include "agentd_client.h"

#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Queued user messages beyond this are dropped oldest first: an agent that
 * never reads its messages must not grow without bound. */
#define MAX_QUEUED_MESSAGES 1024
#define READ_CHUNK	    65536

/* The library is installed for agent code, so it carries its own cleanup
 * helpers instead of depending on agentd's internal headers. */
static inline void
freep(void *p)
{
	free(*(void **)p);
}
static inline void
decrefp(json_t **p)
{
	json_decref(*p);
}
#define cleanup_free __attribute__((cleanup(freep)))
#define cleanup_json __attribute__((cleanup(decrefp)))

struct agentd_client {
	int fd;
	char *buf; /* bytes received and not yet consumed */
	size_t len;
	size_t cap;
	int64_t next_id;
	bool last_replayed;
	int64_t last_seq;
	json_t *messages; /* array of agentd/message params */
};

void
agentd_error_clear(struct agentd_error *err)
{
	if (!err)
		return;
	free(err->json);
	memset(err, 0, sizeof(*err));
}

static void
copy_str(char *dst, size_t size, const char *src)
{
	snprintf(dst, size, "%s", src ? src : "");
}

int
agentd_connect_fd(int fd, struct agentd_client **ret_client)
{
	struct agentd_client *c;
	int type = 0;
	socklen_t tlen = sizeof(type);

	if (fd < 0 || !ret_client)
		return -EINVAL;
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) < 0 || type != SOCK_STREAM)
		return -ENOTCONN;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->messages = json_array();
	if (!c->messages) {
		free(c);
		return -ENOMEM;
	}
	c->fd = fd;
	c->next_id = 1;
	*ret_client = c;
	return 0;
}

int
agentd_connect(struct agentd_client **ret_client)
{
	const char *env = getenv("AGENTD_FD");
	char *end = NULL;
	long fd;

	if (!env || !*env)
		return -ENOTCONN;
	errno = 0;
	fd = strtol(env, &end, 10);
	if (errno || *end || fd < 0 || fd > INT_MAX)
		return -ENOTCONN;
	return agentd_connect_fd((int)fd, ret_client);
}

struct agentd_client *
agentd_client_free(struct agentd_client *c)
{
	if (!c)
		return NULL;
	if (c->fd >= 0)
		close(c->fd);
	free(c->buf);
	json_decref(c->messages);
	free(c);
	return NULL;
}

bool
agentd_last_replayed(const struct agentd_client *c)
{
	return c && c->last_replayed;
}

int64_t
agentd_last_seq(const struct agentd_client *c)
{
	return c ? c->last_seq : 0;
}

static int
send_json(struct agentd_client *c, const json_t *msg)
{
	cleanup_free char *text = json_dumps(msg, JSON_COMPACT | JSON_ENCODE_ANY);
	size_t len, off = 0;

	if (!text)
		return -ENOMEM;
	len = strlen(text);
	if (len > AGENTD_MAX_FRAME)
		return -EMSGSIZE;
	/* jansson escapes control characters, so the only newline is the
	 * terminator appended here. */
	text[len] = '\n';
	len++;
	while (off < len) {
		/* MSG_NOSIGNAL: a dead supervisor is -EPIPE, not a fatal SIGPIPE. */
		ssize_t n = send(c->fd, text + off, len - off, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		off += (size_t)n;
	}
	return 0;
}

/* Read the next frame and parse it. Returns 0 with a new reference in *ret. */
static int
read_json(struct agentd_client *c, json_t **ret)
{
	for (;;) {
		char *nl = c->len ? memchr(c->buf, '\n', c->len) : NULL;
		if (nl) {
			size_t flen = (size_t)(nl - c->buf), rest;
			json_error_t jerr;
			json_t *v;

			if (flen && c->buf[flen - 1] == '\r')
				flen--;
			v = flen ? json_loadb(c->buf, flen, JSON_REJECT_DUPLICATES, &jerr) : NULL;
			rest = c->len - (size_t)(nl + 1 - c->buf);
			memmove(c->buf, nl + 1, rest);
			c->len = rest;
			if (!flen)
				continue; /* blank line: tolerated */
			if (!v || !json_is_object(v)) {
				json_decref(v);
				return -EPROTO;
			}
			*ret = v;
			return 0;
		}
		if (c->len > AGENTD_MAX_FRAME)
			return -EMSGSIZE;
		if (c->cap - c->len < READ_CHUNK) {
			size_t ncap = c->cap ? c->cap * 2 : READ_CHUNK * 2;
			char *nbuf = realloc(c->buf, ncap);
			if (!nbuf)
				return -ENOMEM;
			c->buf = nbuf;
			c->cap = ncap;
		}
		ssize_t n = read(c->fd, c->buf + c->len, c->cap - c->len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EPIPE;
		c->len += (size_t)n;
	}
}

/* A message that carries a method: queue user messages, answer pings,
 * refuse other requests. */
static int
handle_incoming(struct agentd_client *c, json_t *msg, const char *method)
{
	json_t *id = json_object_get(msg, "id");
	cleanup_json json_t *reply = NULL;

	if (!id) {
		if (strcmp(method, "agentd/message") == 0) {
			json_t *params = json_object_get(msg, "params");
			if (json_array_size(c->messages) >= MAX_QUEUED_MESSAGES)
				json_array_remove(c->messages, 0);
			if (json_array_append_new(c->messages,
						  params ? json_incref(params) : json_object()) < 0)
				return -ENOMEM;
		}
		return 0;
	}
	if (strcmp(method, "ping") == 0)
		reply = json_pack("{s:s, s:O, s:{}}", "jsonrpc", "2.0", "id", id, "result");
	else
		reply = json_pack("{s:s, s:O, s:{s:i, s:s}}", "jsonrpc", "2.0", "id", id, "error",
				  "code", -32601, "message", "method not found");
	if (!reply)
		return -ENOMEM;
	return send_json(c, reply);
}

static void
fill_rpc_error(const json_t *error, struct agentd_error *err)
{
	json_t *data = json_object_get(error, "data");
	const char *message = json_string_value(json_object_get(error, "message"));

	if (!err)
		return;
	agentd_error_clear(err);
	err->rpc_code = (int)json_integer_value(json_object_get(error, "code"));
	copy_str(err->message, sizeof(err->message), message);
	if (err->rpc_code == AGENTD_RPC_DENIED && json_is_object(data)) {
		const char *reason = json_string_value(json_object_get(data, "reason"));
		copy_str(err->decision, sizeof(err->decision),
			 json_string_value(json_object_get(data, "decision")));
		copy_str(err->rule, sizeof(err->rule),
			 json_string_value(json_object_get(data, "rule")));
		if (reason)
			copy_str(err->message, sizeof(err->message), reason);
	}
	if (data)
		err->json = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);
}

/* Send one request and wait for its response. Returns 0 with the result
 * (a new reference) in *ret_result. */
static int
request_json(struct agentd_client *c, const char *method, json_t *params, json_t **ret_result,
	     struct agentd_error *err)
{
	cleanup_json json_t *req = NULL;
	int64_t id;
	int r;

	if (!c || !method)
		return -EINVAL;
	id = c->next_id++;
	req =
	    json_pack("{s:s, s:I, s:s}", "jsonrpc", "2.0", "id", (json_int_t)id, "method", method);
	if (!req)
		return -ENOMEM;
	if (params && json_object_set(req, "params", params) < 0)
		return -ENOMEM;
	r = send_json(c, req);
	if (r < 0)
		return r;
	for (;;) {
		cleanup_json json_t *msg = NULL;
		const char *m;
		json_t *rid, *error, *result;

		r = read_json(c, &msg);
		if (r < 0)
			return r;
		m = json_string_value(json_object_get(msg, "method"));
		if (m) {
			r = handle_incoming(c, msg, m);
			if (r < 0)
				return r;
			continue;
		}
		rid = json_object_get(msg, "id");
		error = json_object_get(msg, "error");
		/* Only one request is ever in flight, so any other id is a
		 * supervisor fault (e.g. a parse error addressed to id null). */
		if (!json_is_integer(rid) || json_integer_value(rid) != id) {
			if (json_is_object(error))
				fill_rpc_error(error, err);
			return -EPROTO;
		}
		if (json_is_object(error)) {
			fill_rpc_error(error, err);
			return json_integer_value(json_object_get(error, "code")) ==
				       AGENTD_RPC_DENIED
				   ? -AGENTD_EDENIED
				   : -AGENTD_EREMOTE;
		}
		result = json_object_get(msg, "result");
		if (!result)
			return -EPROTO;
		*ret_result = json_incref(result);
		return 0;
	}
}

static int
parse_params(const char *text, json_t **ret)
{
	json_error_t jerr;
	json_t *v;

	if (!text) {
		*ret = NULL;
		return 0;
	}
	v = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!v)
		return -EINVAL;
	*ret = v;
	return 0;
}

static int
dump_out(const json_t *v, char **ret)
{
	char *text;

	if (!ret)
		return 0;
	text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return -ENOMEM;
	*ret = text;
	return 0;
}

int
agentd_request(struct agentd_client *c, const char *method, const char *params_json,
	       char **ret_result_json, struct agentd_error *err)
{
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	int r;

	r = parse_params(params_json, &params);
	if (r < 0)
		return r;
	r = request_json(c, method, params, &result, err);
	if (r < 0)
		return r;
	return dump_out(result, ret_result_json);
}

int
agentd_call(struct agentd_client *c, const char *tool, const char *args_json,
	    char **ret_result_json, struct agentd_error *err)
{
	cleanup_json json_t *args = NULL;
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	json_t *content, *meta;
	int r;

	if (!tool)
		return -EINVAL;
	r = parse_params(args_json ? args_json : "{}", &args);
	if (r < 0)
		return r;
	if (!json_is_object(args))
		return -EINVAL;
	params = json_pack("{s:s, s:O}", "name", tool, "arguments", args);
	if (!params)
		return -ENOMEM;
	r = request_json(c, "tools/call", params, &result, err);
	if (r < 0)
		return r;
	if (!json_is_object(result))
		return -EPROTO;
	content = json_object_get(result, "structuredContent");
	if (!content) {
		/* A bare MCP result: the first text block holds the JSON. */
		json_t *block = json_array_get(json_object_get(result, "content"), 0);
		const char *text = json_string_value(json_object_get(block, "text"));
		json_t *parsed = text ? json_loads(text, JSON_DECODE_ANY, NULL) : NULL;
		if (!parsed)
			parsed = json_pack("{s:s}", "text", text ? text : "");
		if (!parsed || json_object_set_new(result, "structuredContent", parsed) < 0)
			return -ENOMEM;
		content = parsed;
	}
	if (json_is_true(json_object_get(result, "isError"))) {
		json_t *e = json_object_get(content, "error");
		if (err) {
			agentd_error_clear(err);
			copy_str(err->code, sizeof(err->code),
				 json_string_value(json_object_get(e, "code")));
			copy_str(err->message, sizeof(err->message),
				 json_string_value(json_object_get(e, "message")));
			if (!err->code[0])
				copy_str(err->code, sizeof(err->code), "EUNKNOWN");
			err->json = json_dumps(content, JSON_COMPACT | JSON_ENCODE_ANY);
		}
		return -AGENTD_ETOOL;
	}
	r = dump_out(content, ret_result_json);
	if (r < 0)
		return r;
	meta = json_object_get(result, "_meta");
	c->last_replayed = json_is_true(json_object_get(meta, "agentd/replayed"));
	c->last_seq = json_integer_value(json_object_get(meta, "agentd/seq"));
	return 0;
}

int
agentd_resume(struct agentd_client *c, bool use_state, char **ret_result_json,
	      struct agentd_error *err)
{
	cleanup_json json_t *params = json_pack("{s:b}", "use_state", use_state);
	cleanup_json json_t *result = NULL;
	int r;

	if (!params)
		return -ENOMEM;
	r = request_json(c, "agentd/resume", params, &result, err);
	if (r < 0)
		return r;
	if (!json_is_object(result))
		return -EPROTO;
	return dump_out(result, ret_result_json);
}

int
agentd_checkpoint(struct agentd_client *c, const char *state_json, int64_t *ret_seq,
		  struct agentd_error *err)
{
	cleanup_json json_t *state = NULL;
	cleanup_json json_t *params = NULL;
	cleanup_json json_t *result = NULL;
	int r;

	r = parse_params(state_json ? state_json : "null", &state);
	if (r < 0)
		return r;
	params = json_pack("{s:O}", "state", state);
	if (!params)
		return -ENOMEM;
	r = request_json(c, "agentd/checkpoint", params, &result, err);
	if (r < 0)
		return r;
	if (!json_is_integer(json_object_get(result, "seq")))
		return -EPROTO;
	if (ret_seq)
		*ret_seq = json_integer_value(json_object_get(result, "seq"));
	return 0;
}

int
agentd_next_message(struct agentd_client *c, char **ret_params_json)
{
	int r;

	if (!c || !ret_params_json)
		return -EINVAL;
	if (json_array_size(c->messages) == 0)
		return 0;
	r = dump_out(json_array_get(c->messages, 0), ret_params_json);
	if (r < 0)
		return r;
	json_array_remove(c->messages, 0);
	return 1;
}

const char *
agentd_strerror(int r)
{
	switch (-r) {
	case 0:
		return "success";
	case AGENTD_ETOOL:
		return "tool error";
	case AGENTD_EDENIED:
		return "denied";
	case AGENTD_EREMOTE:
		return "error from supervisor";
	case ENOTCONN:
		return "not running under agentd (AGENTD_FD missing or not a socket)";
	case EPIPE:
		return "the supervisor closed the agentd channel";
	case EPROTO:
		return "malformed message from the supervisor";
	case EMSGSIZE:
		return "frame exceeds the maximum size";
	default:
		return strerror(-r);
	}
}
