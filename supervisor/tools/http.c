/* http.request: one HTTP(S) exchange made by agentd with libcurl on behalf of the
 * agent. Bounded in time (timeout_ms, at most 5 minutes) and size (response body
 * and headers capped by the context), no redirects followed, no proxy from the
 * environment, and an Idempotency-Key so a rerun after a crash is safe. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netdb.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/tools/curl_dl.h"
#include "supervisor/tools/tools-internal.h"
#include "supervisor/tools/tools.h"

#define HTTP_MAX_HEADERS	100
#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_DEFAULT_MAX_BYTES	(4u << 20)

static const char *const http_methods[] = {"GET",   "HEAD",   "POST",	 "PUT",
					   "PATCH", "DELETE", "OPTIONS", NULL};

struct http_resp {
	char *body;
	size_t len, cap;
	size_t max;	  /* cap on body + header bytes */
	size_t hdr_bytes; /* header bytes received (counted against max) */
	bool too_big;
	json_t *headers; /* lowercase name -> value */
	bool oom;
};

static size_t
http_on_body(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_resp *r = userp;
	size_t n = size * nmemb;

	if (r->len + n + r->hdr_bytes > r->max) {
		r->too_big = true;
		return 0; /* abort the transfer: CURLE_WRITE_ERROR */
	}
	if (r->len + n > r->cap) {
		size_t ncap = r->cap ? r->cap * 2 : 16384;
		while (ncap < r->len + n)
			ncap *= 2;
		char *nb = realloc(r->body, ncap);
		if (!nb) {
			r->oom = true;
			return 0;
		}
		r->body = nb;
		r->cap = ncap;
	}
	memcpy(r->body + r->len, data, n);
	r->len += n;
	return n;
}

static size_t
http_on_header(char *data, size_t size, size_t nmemb, void *userp)
{
	struct http_resp *r = userp;
	size_t n = size * nmemb;
	char name[256];

	r->hdr_bytes += n;
	if (r->hdr_bytes + r->len > r->max) {
		r->too_big = true;
		return 0;
	}
	/* A new status line (after 1xx, or of a later response) starts a new set. */
	if (n >= 5 && memcmp(data, "HTTP/", 5) == 0) {
		json_object_clear(r->headers);
		return n;
	}
	const char *colon = memchr(data, ':', n);
	if (!colon || colon == data || (size_t)(colon - data) >= sizeof(name))
		return n; /* blank line or folded/garbled header: ignored */
	size_t nl = (size_t)(colon - data);
	for (size_t i = 0; i < nl; i++)
		name[i] = (char)tolower((unsigned char)data[i]);
	name[nl] = '\0';
	const char *v = colon + 1, *end = data + n;
	while (v < end && (*v == ' ' || *v == '\t'))
		v++;
	while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
		end--;
	json_t *val = json_stringn(v, (size_t)(end - v));
	json_t *key_ok = json_stringn(name, nl);
	if (!val || !key_ok) {
		/* Header bytes that are not UTF-8 are dropped rather than failing the call. */
		json_decref(val);
		json_decref(key_ok);
		return n;
	}
	json_decref(key_ok);
	json_t *prev = json_object_get(r->headers, name);
	if (prev) {
		/* Repeated headers are combined as RFC 9110 allows. */
		char *joined =
		    agd_asprintf("%s, %s", json_string_value(prev), json_string_value(val));
		json_decref(val);
		if (!joined) {
			r->oom = true;
			return 0;
		}
		val = json_string(joined);
		free(joined);
		if (!val) {
			r->oom = true;
			return 0;
		}
	}
	if (json_object_set_new(r->headers, name, val) < 0) {
		r->oom = true;
		return 0;
	}
	return n;
}

/* Headers that frame the message or address the connection are libcurl's to
 * set: letting the agent choose them would allow request smuggling (a second
 * request hidden in the body) or a virtual host other than the URL's, which the
 * policy checked. */
static const char *const http_reserved_headers[] = {
    "host",    "content-length", "transfer-encoding",	"connection",	    "upgrade", "te",
    "trailer", "keep-alive",	 "proxy-authorization", "proxy-connection", NULL,
};

/* Header names are RFC 9110 tokens; values must not smuggle a line break. */
static bool
http_header_ok(const char *name, const char *value)
{
	static const char tchar[] = "!#$%&'*+-.^_`|~";

	if (!name[0])
		return false;
	for (size_t i = 0; http_reserved_headers[i]; i++)
		if (strcasecmp(name, http_reserved_headers[i]) == 0)
			return false;
	for (const char *p = name; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr(tchar, *p))
			return false;
	for (const char *p = value; *p; p++)
		if (*p == '\r' || *p == '\n')
			return false;
	return true;
}

static bool
http_v4_private(const uint8_t a[4])
{
	return a[0] == 0 || a[0] == 10 || a[0] == 127 || a[0] >= 224 ||
	       (a[0] == 100 && (a[1] & 0xc0) == 64) || (a[0] == 169 && a[1] == 254) ||
	       (a[0] == 172 && (a[1] & 0xf0) == 16) || (a[0] == 192 && a[1] == 168) ||
	       (a[0] == 192 && a[1] == 0 && a[2] == 0) || (a[0] == 198 && (a[1] & 0xfe) == 18);
}

static bool
http_addr_private(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return http_v4_private(
		    (const uint8_t *)&((const struct sockaddr_in *)sa)->sin_addr.s_addr);
	if (sa->sa_family != AF_INET6)
		return true;
	const uint8_t *b = ((const struct sockaddr_in6 *)sa)->sin6_addr.s6_addr;
	static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
	static const uint8_t nat64[12] = {0, 0x64, 0xff, 0x9b};
	static const uint8_t zero[16];
	/* Embedded IPv4 addresses are judged as IPv4. */
	if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
		return http_v4_private(b + 12);
	if (memcmp(b, zero, 15) == 0) /* :: and ::1 */
		return true;
	return (b[0] & 0xfe) == 0xfc ||			  /* fc00::/7 unique local */
	       (b[0] == 0xfe && (b[1] & 0xc0) == 0x80) || /* fe80::/10 link-local */
	       (b[0] == 0xfe && (b[1] & 0xc0) == 0xc0) || /* fec0::/10 site-local */
	       b[0] == 0xff;				  /* multicast */
}

/* libcurl's functions, loaded by the first request (curl_dl.h); set before
 * anything below runs. */
static const struct tools_curl *cu;

static void
http_url_cleanup(CURLU **u)
{
	cu->url_cleanup(*u);
}

static void
http_addrinfo_cleanup(struct addrinfo **ai)
{
	if (*ai)
		freeaddrinfo(*ai);
}

static void
http_curl_free(char **p)
{
	cu->free(*p);
}

/* A refusal from the egress check; a failed allocation is reported as such so
 * the request is never made when the check did not complete. */
static json_t *http_deny(bool *ret_oom, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static json_t *
http_deny(bool *ret_oom, const char *code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	json_t *e = tools_error(code, "%s", msg);
	if (!e)
		*ret_oom = true;
	return e;
}

/* Egress address control. The policy decides which hosts may be called; this
 * decides which addresses they may be: the host is resolved here, every address
 * must be public, and the checked addresses are pinned with CURLOPT_RESOLVE so a
 * second DNS answer (rebinding) cannot redirect the connection. The lookup uses
 * the system resolver's own timeouts, not timeout_ms.
 * Returns NULL when allowed (pins added to *pins and set on curl), or a tool
 * error; on allocation failure *ret_oom is set. */
static json_t *
http_egress_deny(const struct tool_ctx *ctx, CURL *curl, const char *url, struct curl_slist **pins,
		 bool *ret_oom)
{
	__attribute__((cleanup(http_url_cleanup))) CURLU *u = cu->url();
	__attribute__((cleanup(http_addrinfo_cleanup))) struct addrinfo *ai = NULL;
	__attribute__((cleanup(http_curl_free))) char *host = NULL;
	__attribute__((cleanup(http_curl_free))) char *port = NULL;
	char list[1024], ip[INET6_ADDRSTRLEN], bare[256], pin[1400];
	size_t off = 0;

	if (!u) {
		*ret_oom = true;
		return NULL;
	}
	if (cu->url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
	    cu->url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK ||
	    cu->url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
		return http_deny(ret_oom, "EINVAL", "malformed url");
	/* curl returns an IPv6 literal in brackets; the resolver wants it bare. */
	size_t hl = strlen(host);
	if (hl >= 2 && host[0] == '[' && host[hl - 1] == ']')
		snprintf(bare, sizeof(bare), "%.*s", (int)(hl - 2), host + 1);
	else
		snprintf(bare, sizeof(bare), "%s", host);
	struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
	int gr = getaddrinfo(bare, NULL, &hints, &ai);
	if (gr != 0)
		return http_deny(ret_oom, "EHOSTUNREACH", "%s: %s", bare, gai_strerror(gr));
	for (struct addrinfo *a = ai; a; a = a->ai_next) {
		const void *addr =
		    a->ai_family == AF_INET
			? (const void *)&((struct sockaddr_in *)a->ai_addr)->sin_addr
			: (const void *)&((struct sockaddr_in6 *)a->ai_addr)->sin6_addr;
		if (!inet_ntop(a->ai_family, addr, ip, sizeof(ip)))
			continue;
		/* One non-public answer refuses the host: mixed answers are what
		 * rebinding looks like. */
		if (http_addr_private(a->ai_addr))
			return http_deny(ret_oom, "EACCES", "%s resolves to non-public address %s",
					 bare, ip);
		bool v6 = a->ai_family == AF_INET6;
		int n = snprintf(list + off, sizeof(list) - off, "%s%s%s%s", off ? "," : "",
				 v6 ? "[" : "", ip, v6 ? "]" : "");
		if (n < 0 || (size_t)n >= sizeof(list) - off) {
			list[off] = '\0';
			break; /* enough addresses pinned */
		}
		off += (size_t)n;
	}
	if (off == 0)
		return http_deny(ret_oom, "EHOSTUNREACH", "%s: no usable address", bare);
	snprintf(pin, sizeof(pin), "%s:%s:%s", host, port, list);
	struct curl_slist *nl = cu->slist_append(*pins, pin);
	if (!nl) {
		*ret_oom = true;
		return NULL;
	}
	*pins = nl;
	cu->easy_setopt(curl, CURLOPT_RESOLVE, *pins);
	return NULL;
}

static const char *
http_error_code(CURLcode rc, long os_errno)
{
	switch (rc) {
	case CURLE_COULDNT_CONNECT:
		if (os_errno == ENETUNREACH || os_errno == EHOSTUNREACH)
			return tools_errno_code((int)os_errno);
		return "ECONNREFUSED";
	case CURLE_OPERATION_TIMEDOUT:
		return "ETIMEDOUT";
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
		return "EHOSTUNREACH";
	case CURLE_UNSUPPORTED_PROTOCOL:
	case CURLE_URL_MALFORMAT:
		return "EINVAL";
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return "ECONNRESET";
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		return "ETLS";
	case CURLE_TOO_MANY_REDIRECTS:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
		return "EPROTO";
	default:
		return "EIO";
	}
}

static int
http_done(json_t *content, bool is_error, json_t **ret_content, bool *ret_is_error)
{
	if (!content)
		return -ENOMEM;
	*ret_content = content;
	*ret_is_error = is_error;
	return 0;
}

static void
http_curl_cleanup(CURL **c)
{
	if (*c)
		cu->easy_cleanup(*c);
}

static void
http_slist_cleanup(struct curl_slist **l)
{
	if (*l)
		cu->slist_free_all(*l);
}

/* The cost a response reports in the policy's cost header: a decimal
 * integer of at most 15 digits (so a sum of them cannot overflow). Anything
 * else reports no cost: the per-tool cost of the policy still applies. */
static bool
http_reported_cost(const json_t *headers, const char *name, json_int_t *ret)
{
	char lower[80];
	size_t n = strlen(name);

	if (n >= sizeof(lower))
		return false;
	for (size_t i = 0; i <= n; i++)
		lower[i] = (char)tolower((unsigned char)name[i]);
	const char *v = json_string_value(json_object_get(headers, lower));
	if (!v)
		return false;
	v += strspn(v, " \t");
	size_t d = strspn(v, "0123456789");
	if (d == 0 || d > 15 || v[d + strspn(v + d, " \t")] != '\0')
		return false;
	*ret = (json_int_t)strtoll(v, NULL, 10);
	return true;
}

static int
http_request_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
		  bool *ret_is_error)
{
	json_error_t jerr;
	const char *method, *url, *body = NULL;
	size_t body_len = 0;
	json_t *headers = NULL;
	json_int_t timeout_ms = -1;
	__attribute__((cleanup(http_curl_cleanup))) CURL *curl = NULL;
	__attribute__((cleanup(http_slist_cleanup))) struct curl_slist *hl = NULL;
	__attribute__((cleanup(http_slist_cleanup))) struct curl_slist *pins = NULL;
	char errbuf[CURL_ERROR_SIZE] = "";
	bool have_idem = false, have_expect = false;
	const char *key;
	json_t *v;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s, s:s, s?o, s?s%, s?I}",
			   "method", &method, "url", &url, "headers", &headers, "body", &body,
			   &body_len, "timeout_ms", &timeout_ms) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);

	bool known = false;
	for (size_t i = 0; http_methods[i]; i++)
		if (strcmp(method, http_methods[i]) == 0)
			known = true;
	if (!known)
		return http_done(tools_error("EINVAL", "unsupported method %.32s", method), true,
				 ret_content, ret_is_error);
	if (strncasecmp(url, "http://", 7) != 0 && strncasecmp(url, "https://", 8) != 0)
		return http_done(tools_error("EINVAL", "url must be http:// or https://"), true,
				 ret_content, ret_is_error);
	if (timeout_ms == -1 && !json_object_get(args, "timeout_ms"))
		timeout_ms =
		    ctx->default_timeout_ms > 0 ? ctx->default_timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
	if (timeout_ms <= 0 || timeout_ms > TOOLS_MAX_TIMEOUT_MS)
		return http_done(
		    tools_error("EINVAL", "timeout_ms must be 1..%d", TOOLS_MAX_TIMEOUT_MS), true,
		    ret_content, ret_is_error);
	if (headers && !json_is_object(headers))
		return http_done(tools_error("EINVAL", "headers must be an object"), true,
				 ret_content, ret_is_error);
	if (headers && json_object_size(headers) > HTTP_MAX_HEADERS)
		return http_done(tools_error("EINVAL", "more than %d headers", HTTP_MAX_HEADERS),
				 true, ret_content, ret_is_error);
	const char *why = NULL;
	cu = tools_curl(&why);
	if (!cu)
		return http_done(tools_error("ENOTSUP", "%s", why), true, ret_content,
				 ret_is_error);
	json_object_foreach(headers, key, v)
	{
		if (!json_is_string(v) || !http_header_ok(key, json_string_value(v)))
			return http_done(tools_error("EINVAL", "invalid header %.64s", key), true,
					 ret_content, ret_is_error);
		if (strcasecmp(key, "Idempotency-Key") == 0)
			have_idem = true;
		if (strcasecmp(key, "Expect") == 0)
			have_expect = true;
		cleanup_free char *line =
		    json_string_value(v)[0]
			? agd_asprintf("%s: %s", key, json_string_value(v))
			: agd_asprintf("%s;", key); /* curl's syntax for an empty value */
		if (!line)
			return -ENOMEM;
		struct curl_slist *nl = cu->slist_append(hl, line);
		if (!nl)
			return -ENOMEM;
		hl = nl;
	}
	if (!have_idem && ctx->idempotency_key && ctx->idempotency_key[0]) {
		cleanup_free char *line = agd_asprintf("Idempotency-Key: %s", ctx->idempotency_key);
		struct curl_slist *nl = line ? cu->slist_append(hl, line) : NULL;
		if (!nl)
			return -ENOMEM;
		hl = nl;
	}
	if (!have_expect) {
		/* No "Expect: 100-continue" round trip for larger bodies. */
		struct curl_slist *nl = cu->slist_append(hl, "Expect:");
		if (!nl)
			return -ENOMEM;
		hl = nl;
	}

	curl = cu->easy_init();
	if (!curl)
		return -ENOMEM;
	cleanup_json json_t *resp_headers = json_object();
	struct http_resp resp = {
	    .max = ctx->max_result_bytes ? ctx->max_result_bytes : HTTP_DEFAULT_MAX_BYTES,
	    .headers = resp_headers,
	};
	if (!resp_headers)
		return -ENOMEM;

	cu->easy_setopt(curl, CURLOPT_URL, url);
	cu->easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https");
	cu->easy_setopt(curl, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	cu->easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	cu->easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	/* The agent's egress must not depend on the supervisor's environment. */
	cu->easy_setopt(curl, CURLOPT_PROXY, "");
	cu->easy_setopt(curl, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
	cu->easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
	cu->easy_setopt(curl, CURLOPT_USERAGENT, "agentd/" AGENTD_VERSION);
	cu->easy_setopt(curl, CURLOPT_ERRORBUFFER, errbuf);
	cu->easy_setopt(curl, CURLOPT_WRITEFUNCTION, http_on_body);
	cu->easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
	cu->easy_setopt(curl, CURLOPT_HEADERFUNCTION, http_on_header);
	cu->easy_setopt(curl, CURLOPT_HEADERDATA, &resp);
	cu->easy_setopt(curl, CURLOPT_HTTPHEADER, hl);
	if (strcmp(method, "HEAD") == 0) {
		cu->easy_setopt(curl, CURLOPT_NOBODY, 1L);
	} else if (strcmp(method, "GET") != 0) {
		cu->easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	}
	if (body && strcmp(method, "HEAD") != 0) {
		cu->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
		cu->easy_setopt(curl, CURLOPT_POSTFIELDS, body);
	} else if (strcmp(method, "POST") == 0) {
		cu->easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)0);
		cu->easy_setopt(curl, CURLOPT_POSTFIELDS, "");
	}

	if (ctx->deny_private_addresses) {
		bool oom = false;
		json_t *deny = http_egress_deny(ctx, curl, url, &pins, &oom);
		if (oom)
			return -ENOMEM;
		if (deny)
			return http_done(deny, true, ret_content, ret_is_error);
	}

	CURLcode rc = cu->easy_perform(curl);
	cleanup_free char *rbody = resp.body;
	if (resp.oom)
		return -ENOMEM;
	if (rc != CURLE_OK) {
		if (resp.too_big)
			return http_done(
			    tools_error("E2BIG", "response larger than %zu bytes", resp.max), true,
			    ret_content, ret_is_error);
		long os_errno = 0;
		cu->easy_getinfo(curl, CURLINFO_OS_ERRNO, &os_errno);
		return http_done(tools_error(http_error_code(rc, os_errno), "%s",
					     errbuf[0] ? errbuf : cu->easy_strerror(rc)),
				 true, ret_content, ret_is_error);
	}
	long status = 0;
	cu->easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);

	json_t *b = tools_text_or_null(rbody ? rbody : "", resp.len);
	const char *bkey = "body";
	if (!b) {
		b = tools_base64(rbody ? rbody : "", resp.len);
		bkey = "body_base64";
		if (!b)
			return -ENOMEM;
	}
	json_t *content = json_pack("{s:I,s:O,s:o}", "status", (json_int_t)status, "headers",
				    resp_headers, bkey, b);
	json_int_t cost = 0;
	if (content && ctx->cost_header &&
	    http_reported_cost(resp_headers, ctx->cost_header, &cost) && cost > 0 &&
	    json_object_set_new(content, "cost", json_integer(cost)) < 0) {
		json_decref(content);
		return -ENOMEM;
	}
	return http_done(content, false, ret_content, ret_is_error);
}

static enum tool_class
http_class(const json_t *args)
{
	return TOOL_IDEMPOTENT;
}

const struct tool_def tools_http_request = {
    .name = "http.request",
    .description = "Make one HTTP(S) request from agentd. Redirects are not followed; the "
		   "response body is capped. An Idempotency-Key header is sent unless given.",
    .input_schema =
	"{\"type\":\"object\",\"properties\":{\"method\":{\"type\":\"string\",\"enum\":[\"GET\","
	"\"HEAD\",\"POST\",\"PUT\",\"PATCH\",\"DELETE\",\"OPTIONS\"]},\"url\":{\"type\":"
	"\"string\"},\"headers\":{\"type\":\"object\",\"additionalProperties\":{\"type\":"
	"\"string\"}},\"body\":{\"type\":\"string\"},\"timeout_ms\":{\"type\":\"integer\","
	"\"minimum\":1,\"maximum\":300000}},\"required\":[\"method\",\"url\"],"
	"\"additionalProperties\":false}",
    .classify = http_class,
    .call = http_request_call,
};
