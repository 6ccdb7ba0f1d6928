/* agentctl: a thin client of agentd serve's control API (docs/api.md), HTTP
 * over the daemon's unix socket with libcurl. Shaped like docker/kubectl:
 * one verb per command, -o table|json|jsonl, -q for ids only, exit status 125
 * when the daemon refuses or cannot be reached, and `run --wait` exits with
 * the run's own status. */
#include <curl/curl.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"

#define EXIT_DAEMON 125
#define EXIT_USAGE  2

enum output { OUT_TABLE, OUT_JSON, OUT_JSONL };

static struct {
	char socket[108];
	char tcp[256];	   /* HOST:PORT when -H tcp://; then socket is unused */
	const char *token; /* $AGENTD_TOKEN: bearer token for tcp:// */
	enum output out;
	bool quiet;
	bool colour;
} g;

static int __attribute__((format(printf, 2, 3))) die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("agentctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return code;
}

/* ---- HTTP ---- */

struct buf {
	char *p;
	size_t n;
	/* streaming: called per complete line instead of buffering */
	int (*line_fn)(const char *line, size_t len);
	bool raw; /* streaming raw bytes to stdout (logs) */
};

static size_t
on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;

	if (b->raw && !b->line_fn) {
		fwrite(data, 1, n, stdout);
		fflush(stdout);
		return n;
	}
	char *p = realloc(b->p, b->n + n + 1);
	if (!p)
		return 0;
	b->p = p;
	memcpy(b->p + b->n, data, n);
	b->n += n;
	b->p[b->n] = '\0';
	if (b->line_fn) {
		char *nl;
		size_t off = 0;
		while ((nl = memchr(b->p + off, '\n', b->n - off))) {
			*nl = '\0';
			b->line_fn(b->p + off, (size_t)(nl - (b->p + off)));
			off = (size_t)(nl - b->p) + 1;
		}
		memmove(b->p, b->p + off, b->n - off);
		b->n -= off;
	}
	return n;
}

/* One request. Returns the HTTP status (>0) with the body in *ret (a parsed
 * JSON value when it is JSON), or a negative number when the daemon could not
 * be reached (message printed). */
static long
http(const char *method, const char *path, const json_t *body, json_t **ret, struct buf *stream)
{
	CURL *c = curl_easy_init();
	struct buf local = {0};
	struct buf *b = stream ? stream : &local;
	struct curl_slist *hdrs = NULL;
	char url[4096];
	long status = -1;

	if (!c)
		return -1;
	snprintf(url, sizeof(url), "http://%s%s", g.tcp[0] ? g.tcp : "agentd", path);
	cleanup_free char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	cleanup_free char *auth = NULL;
	if (!g.tcp[0])
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, g.socket);
	else if (g.token && (auth = agd_asprintf("Authorization: Bearer %s", g.token)))
		hdrs = curl_slist_append(hdrs, auth);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (text) {
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	} else if (strcmp(method, "POST") == 0)
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	CURLcode cr = curl_easy_perform(c);
	if (cr != CURLE_OK)
		fprintf(stderr, "agentctl: cannot talk to agentd at %s%s: %s\n",
			g.tcp[0] ? "tcp://" : "unix://", g.tcp[0] ? g.tcp : g.socket,
			curl_easy_strerror(cr));
	else
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdrs);
	curl_easy_cleanup(c);
	if (status > 0 && ret) {
		json_error_t jerr;
		*ret = b->p ? json_loads(b->p, 0, &jerr) : NULL;
	}
	free(local.p);
	if (stream) {
		free(stream->p);
		stream->p = NULL;
	}
	return cr == CURLE_OK ? status : -1;
}

/* Print the daemon's error body and return 125. */
static int
daemon_error(long status, json_t *v)
{
	json_t *e = json_object_get(v, "error");
	const char *msg = json_string_value(json_object_get(e, "message"));

	if (status > 0)
		fprintf(stderr, "agentctl: agentd: %s (HTTP %ld%s%s)\n",
			msg ? msg : "request failed", status,
			json_object_get(e, "code") ? ", " : "",
			json_string_value(json_object_get(e, "code"))
			    ? json_string_value(json_object_get(e, "code"))
			    : "");
	json_decref(v);
	return EXIT_DAEMON;
}

/* GET/POST returning JSON; 0 with *ret on 2xx, else the exit code. */
static int
call(const char *method, const char *path, const json_t *body, json_t **ret)
{
	json_t *v = NULL;
	long st = http(method, path, body, &v, NULL);

	if (st < 200 || st >= 300)
		return daemon_error(st, v);
	if (!v)
		return die(EXIT_DAEMON, "agentd sent a reply that is not JSON");
	*ret = v;
	return 0;
}

/* ---- output ---- */

static const char *
colour_for(const char *status)
{
	if (!g.colour)
		return "";
	if (!strcmp(status, "succeeded"))
		return "\033[32m";
	if (!strcmp(status, "failed") || !strcmp(status, "cancelled"))
		return "\033[31m";
	if (!strcmp(status, "queued") || !strcmp(status, "suspended") ||
	    !strcmp(status, "interrupted"))
		return "\033[33m";
	return "\033[36m";
}

static void
print_json(const json_t *v)
{
	cleanup_free char *s =
	    json_dumps(v, g.out == OUT_JSON ? JSON_INDENT(2) | JSON_SORT_KEYS : JSON_COMPACT);
	if (s)
		puts(s);
}

static void
fmt_time(int64_t ms, char *buf, size_t bufsz)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	localtime_r(&t, &tm);
	strftime(buf, bufsz, "%Y-%m-%d %H:%M:%S", &tm);
}

static void
print_run_row(const json_t *r)
{
	const char *status = json_string_value(json_object_get(r, "status"));
	char when[32], st[48];
	cleanup_free char *cmd = json_dumps(json_object_get(r, "command"), JSON_COMPACT);

	if (g.quiet) {
		puts(json_string_value(json_object_get(r, "id")));
		return;
	}
	fmt_time(json_integer_value(json_object_get(r, "created_ms")), when, sizeof(when));
	if (json_object_get(r, "queue_position"))
		snprintf(st, sizeof(st), "%s #%lld", status,
			 (long long)json_integer_value(json_object_get(r, "queue_position")));
	else
		snprintf(st, sizeof(st), "%s", status);
	printf("%-34s %s%-14s%s %-10s %-5lld %-19s %s\n",
	       json_string_value(json_object_get(r, "id")), colour_for(status), st,
	       g.colour ? "\033[0m" : "", json_string_value(json_object_get(r, "user")),
	       (long long)json_integer_value(json_object_get(r, "exit_code")), when,
	       cmd ? cmd : "");
}

static void
print_runs(const json_t *list)
{
	size_t i;
	json_t *r;

	if (g.out == OUT_JSON) {
		print_json(list);
		return;
	}
	if (g.out == OUT_JSONL) {
		json_array_foreach(list, i, r) print_json(r);
		return;
	}
	if (!g.quiet)
		printf("%-34s %-14s %-10s %-5s %-19s %s\n", "RUN", "STATUS", "USER", "EXIT",
		       "CREATED", "COMMAND");
	json_array_foreach(list, i, r) print_run_row(r);
}

static void
print_run(const json_t *r)
{
	if (g.out != OUT_TABLE) {
		print_json(r);
		return;
	}
	if (g.quiet) {
		puts(json_string_value(json_object_get(r, "id")));
		return;
	}
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)r, k, v)
	{
		cleanup_free char *s = json_is_string(v)
					   ? strdup(json_string_value(v))
					   : json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
		printf("%-15s %s\n", k, s ? s : "");
	}
}

/* ---- commands ---- */

static char *
urlenc(const char *s)
{
	CURL *c = curl_easy_init();
	char *e = c ? curl_easy_escape(c, s, 0) : NULL;
	char *r = e ? strdup(e) : NULL;

	curl_free(e);
	curl_easy_cleanup(c);
	return r;
}

static int
wait_result(const char *id, json_t **ret)
{
	char path[512];
	cleanup_free char *eid = urlenc(id);

	for (;;) {
		json_t *v = NULL;
		snprintf(path, sizeof(path), "/v1/runs/%s/result?wait=60", eid ? eid : id);
		int rc = call("GET", path, NULL, &v);
		if (rc)
			return rc;
		if (json_is_true(json_object_get(v, "done"))) {
			*ret = v;
			return 0;
		}
		json_decref(v);
	}
}

static int
run_exit_status(const json_t *r)
{
	const char *st = json_string_value(json_object_get(r, "status"));
	json_int_t ec = json_integer_value(json_object_get(r, "exit_code"));

	if (st && !strcmp(st, "succeeded"))
		return (int)ec;
	if (st && !strcmp(st, "failed") && ec > 0 && ec < 256)
		return (int)ec;
	fprintf(stderr, "agentctl: run %s %s%s%s\n", json_string_value(json_object_get(r, "id")),
		st ? st : "?", json_string_length(json_object_get(r, "reason")) ? ": " : "",
		json_string_value(json_object_get(r, "reason")) ?: "");
	return 1;
}

static int
cmd_run(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"name", required_argument, NULL, 'n'},
	    {"policy", required_argument, NULL, 'p'},
	    {"label", required_argument, NULL, 'l'},
	    {"env", required_argument, NULL, 'e'},
	    {"max-restarts", required_argument, NULL, 'r'},
	    {"wall-clock", required_argument, NULL, 'W'},
	    {"idempotency-key", required_argument, NULL, 'k'},
	    {"message-mode", required_argument, NULL, 'm'},
	    {"cwd", required_argument, NULL, 'C'},
	    {"wait", no_argument, NULL, 'w'},
	    {0},
	};
	cleanup_json json_t *body = json_object(), *labels = json_object(), *env = json_object();
	char err[256];
	bool wait = false;
	char cwd[PATH_MAX];
	int c;

	optind = 0;
	if (getcwd(cwd, sizeof(cwd)))
		json_object_set_new(body, "cwd", json_string(cwd));
	while ((c = getopt_long(argc, argv, "+wn:l:e:", opts, NULL)) != -1) {
		switch (c) {
		case 'n':
			json_object_set_new(body, "name", json_string(optarg));
			break;
		case 'p': {
			json_error_t jerr;
			json_t *p = json_load_file(optarg, JSON_REJECT_DUPLICATES, &jerr);
			if (!p)
				return die(EXIT_USAGE, "%s:%d: %s", optarg, jerr.line, jerr.text);
			json_object_set_new(body, "policy", p);
			break;
		}
		case 'l': {
			char *eq = strchr(optarg, '=');
			if (!eq)
				return die(EXIT_USAGE, "--label takes KEY=VALUE");
			*eq = '\0';
			json_object_set_new(labels, optarg, json_string(eq + 1));
			break;
		}
		case 'e': {
			/* KEY=VALUE; the value may hold '=' and be empty. */
			char *eq = strchr(optarg, '=');
			if (!eq || eq == optarg)
				return die(EXIT_USAGE, "--env takes KEY=VALUE (got '%s')", optarg);
			*eq = '\0';
			if (json_object_get(env, optarg))
				return die(EXIT_USAGE, "--env %s given twice", optarg);
			json_t *val = json_string(eq + 1);
			if (!val || json_object_set_new(env, optarg, val) < 0)
				return die(EXIT_USAGE, "--env %s: the value must be UTF-8 text",
					   optarg);
			/* The daemon's rules, checked here so a typo fails before a submit. */
			if (agd_env_check(env, err, sizeof(err)) < 0)
				return die(EXIT_USAGE, "--env: %s", err);
			break;
		}
		case 'r':
			json_object_set_new(body, "max_restarts", json_integer(atoi(optarg)));
			break;
		case 'W':
			json_object_set_new(
			    body, "limits",
			    json_pack("{s:I}", "wall_clock_s", (json_int_t)atoll(optarg)));
			break;
		case 'k':
			json_object_set_new(body, "idempotency_key", json_string(optarg));
			break;
		case 'm':
			json_object_set_new(body, "message_mode", json_string(optarg));
			break;
		case 'C':
			json_object_set_new(body, "cwd", json_string(optarg));
			break;
		case 'w':
			wait = true;
			break;
		default:
			return die(EXIT_USAGE, "usage: agentctl run [OPTIONS] -- CMD [ARG...]");
		}
	}
	if (optind >= argc)
		return die(EXIT_USAGE, "run: no command given (put it after --)");
	json_t *cmd = json_array();
	for (int i = optind; i < argc; i++)
		json_array_append_new(cmd, json_string(argv[i]));
	json_object_set_new(body, "command", cmd);
	if (json_object_size(labels))
		json_object_set(body, "labels", labels);
	if (json_object_size(env))
		json_object_set(body, "environment", env);

	json_t *r = NULL;
	int rc = call("POST", "/v1/runs", body, &r);
	if (rc)
		return rc;
	const char *id = json_string_value(json_object_get(r, "id"));
	if (!wait) {
		print_run(r);
		json_decref(r);
		return 0;
	}
	if (g.out == OUT_TABLE && !g.quiet)
		fprintf(stderr, "agentctl: run %s submitted (%s)\n", id,
			json_string_value(json_object_get(r, "status")));
	json_t *fin = NULL;
	rc = wait_result(id, &fin);
	json_decref(r);
	if (rc)
		return rc;
	if (g.out != OUT_TABLE || g.quiet)
		print_run(fin);
	rc = run_exit_status(fin);
	json_decref(fin);
	return rc;
}

static int
cmd_ls(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"status", required_argument, NULL, 's'},
	    {"user", required_argument, NULL, 'u'},
	    {"limit", required_argument, NULL, 'n'},
	    {0},
	};
	const char *status = NULL, *user = NULL;
	int limit = 500, c;
	cleanup_json json_t *all = json_array();

	optind = 0;
	while ((c = getopt_long(argc, argv, "s:u:n:", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			status = optarg;
			break;
		case 'u':
			user = optarg;
			break;
		case 'n':
			limit = atoi(optarg);
			break;
		default:
			return die(EXIT_USAGE, "usage: agentctl ls [--status S] [--user U]");
		}
	}
	cleanup_free char *es = status ? urlenc(status) : NULL;
	cleanup_free char *eu = user ? urlenc(user) : NULL;
	cleanup_free char *cursor = NULL;
	/* Follow the cursor until the listing is complete or --limit is met. */
	while ((int)json_array_size(all) < limit) {
		char path[1024];
		json_t *v = NULL;
		snprintf(path, sizeof(path), "/v1/runs?limit=%d%s%s%s%s%s%s",
			 limit - (int)json_array_size(all) > 500
			     ? 500
			     : limit - (int)json_array_size(all),
			 es ? "&status=" : "", es ? es : "", eu ? "&user=" : "", eu ? eu : "",
			 cursor ? "&cursor=" : "", cursor ? cursor : "");
		int rc = call("GET", path, NULL, &v);
		if (rc)
			return rc;
		json_array_extend(all, json_object_get(v, "runs"));
		const char *next = json_string_value(json_object_get(v, "next_cursor"));
		free(cursor);
		cursor = next ? strdup(next) : NULL;
		json_decref(v);
		if (!cursor)
			break;
	}
	print_runs(all);
	return 0;
}

static int
simple_run_verb(int argc, char **argv, const char *method, const char *suffix)
{
	char path[512];
	json_t *v = NULL;

	if (argc != 2)
		return die(EXIT_USAGE, "usage: agentctl %s RUN", argv[0]);
	cleanup_free char *id = urlenc(argv[1]);
	snprintf(path, sizeof(path), "/v1/runs/%s%s", id ? id : "", suffix);
	int rc = call(method, path, NULL, &v);
	if (rc)
		return rc;
	print_run(v);
	json_decref(v);
	return 0;
}

static int
print_event_line(const char *line, size_t len)
{
	json_error_t jerr;

	if (g.out != OUT_TABLE) {
		fwrite(line, 1, len, stdout);
		fputc('\n', stdout);
		fflush(stdout);
		return 0;
	}
	json_t *ev = json_loadb(line, len, 0, &jerr);
	if (!ev)
		return 0;
	char when[32];
	fmt_time(json_integer_value(json_object_get(ev, "ts_ms")), when, sizeof(when));
	cleanup_free char *data = json_dumps(json_object_get(ev, "data"), JSON_COMPACT);
	printf("%-6lld %s  attempt %lld  %-20s %s\n",
	       (long long)json_integer_value(json_object_get(ev, "id")), when,
	       (long long)json_integer_value(json_object_get(ev, "attempt")),
	       json_string_value(json_object_get(ev, "type")), data ? data : "");
	fflush(stdout);
	json_decref(ev);
	return 0;
}

static int
cmd_stream(int argc, char **argv, bool events)
{
	bool follow = false;
	const char *after = NULL, *id = NULL;
	char path[512];

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "-f") || !strcmp(argv[i], "--follow"))
			follow = true;
		else if (!strcmp(argv[i], "--after") && i + 1 < argc)
			after = argv[++i];
		else if (!id)
			id = argv[i];
		else
			return die(EXIT_USAGE, "usage: agentctl %s [-f] RUN", argv[0]);
	}
	if (!id)
		return die(EXIT_USAGE, "usage: agentctl %s [-f] RUN", argv[0]);
	cleanup_free char *eid = urlenc(id);
	snprintf(path, sizeof(path), "/v1/runs/%s/%s?follow=%d%s%s", eid ? eid : "",
		 events ? "events" : "logs", follow, after ? "&after=" : "", after ? after : "");
	struct buf b = {.raw = !events, .line_fn = events ? print_event_line : NULL};
	/* Errors come back as JSON: check the run first so they are readable. */
	json_t *v = NULL;
	char rpath[512];
	snprintf(rpath, sizeof(rpath), "/v1/runs/%s", eid ? eid : "");
	int rc = call("GET", rpath, NULL, &v);
	if (rc)
		return rc;
	json_decref(v);
	long st = http("GET", path, NULL, NULL, &b);
	if (st < 200 || st >= 300)
		return daemon_error(st, NULL);
	return 0;
}

static int
cmd_journal(int argc, char **argv)
{
	char path[512];
	json_t *v = NULL;

	if (argc != 2)
		return die(EXIT_USAGE, "usage: agentctl journal RUN");
	cleanup_free char *id = urlenc(argv[1]);
	snprintf(path, sizeof(path), "/v1/runs/%s/journal", id ? id : "");
	int rc = call("GET", path, NULL, &v);
	if (rc)
		return rc;
	json_t *calls = json_object_get(v, "calls"), *k;
	size_t i;
	if (g.out == OUT_JSON)
		print_json(v);
	else if (g.out == OUT_JSONL)
		json_array_foreach(calls, i, k) print_json(k);
	else {
		printf("%-5s %-16s %-8s %-14s %-16s %s\n", "SEQ", "TOOL", "STATUS", "DECISION",
		       "RULE", "ATTEMPT");
		json_array_foreach(calls, i, k)
		    printf("%-5lld %-16s %-8s %-14s %-16s %lld\n",
			   (long long)json_integer_value(json_object_get(k, "seq")),
			   json_string_value(json_object_get(k, "tool")),
			   json_string_value(json_object_get(k, "status")),
			   json_string_value(json_object_get(k, "decision")),
			   json_string_value(json_object_get(k, "rule")),
			   (long long)json_integer_value(json_object_get(k, "attempt")));
	}
	json_decref(v);
	return 0;
}

static int
cmd_send(int argc, char **argv)
{
	static const struct option opts[] = {{"mode", required_argument, NULL, 'm'}, {0}};
	const char *mode = NULL;
	char path[512];
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "m:", opts, NULL)) != -1) {
		if (c != 'm')
			return die(EXIT_USAGE, "usage: agentctl send [--mode M] RUN TEXT");
		mode = optarg;
	}
	if (argc - optind != 2)
		return die(EXIT_USAGE, "usage: agentctl send [--mode M] RUN TEXT");
	cleanup_free char *id = urlenc(argv[optind]);
	cleanup_json json_t *body = json_pack("{s:s}", "text", argv[optind + 1]);
	json_t *v = NULL;
	if (mode)
		json_object_set_new(body, "mode", json_string(mode));
	snprintf(path, sizeof(path), "/v1/runs/%s/messages", id ? id : "");
	int rc = call("POST", path, body, &v);
	if (rc)
		return rc;
	if (g.out != OUT_TABLE)
		print_json(v);
	else if (!g.quiet)
		printf("message sent to %s (%s)\n", json_string_value(json_object_get(v, "run")),
		       json_string_value(json_object_get(v, "mode")));
	json_decref(v);
	return 0;
}

static int
cmd_approvals(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"run", required_argument, NULL, 'r'},
	    {"status", required_argument, NULL, 's'},
	    {"approver", required_argument, NULL, 'a'},
	    {0},
	};
	const char *run = NULL, *status = NULL, *approver = NULL;
	char path[1024];
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "r:s:a:", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			run = optarg;
			break;
		case 's':
			status = optarg;
			break;
		case 'a':
			approver = optarg;
			break;
		default:
			return die(
			    EXIT_USAGE,
			    "usage: agentctl approvals [--run R] [--status S|all] [--approver U]");
		}
	}
	if (optind < argc && !run)
		run = argv[optind];
	cleanup_free char *er = run ? urlenc(run) : NULL;
	cleanup_free char *es = status ? urlenc(status) : NULL;
	cleanup_free char *ea = approver ? urlenc(approver) : NULL;
	snprintf(path, sizeof(path), "/v1/approvals?x=1%s%s%s%s%s%s", er ? "&run=" : "",
		 er ? er : "", es ? "&status=" : "", es ? es : "", ea ? "&approver=" : "",
		 ea ? ea : "");
	json_t *v = NULL;
	int rc = call("GET", path, NULL, &v);
	if (rc)
		return rc;
	json_t *list = json_object_get(v, "approvals"), *a;
	size_t i;
	if (g.out == OUT_JSON)
		print_json(list);
	else if (g.out == OUT_JSONL)
		json_array_foreach(list, i, a) print_json(a);
	else {
		if (!g.quiet)
			printf("%-34s %-5s %-10s %-16s %-9s %-14s %s\n", "RUN", "SEQ", "USER",
			       "TOOL", "STATUS", "RULE", "ARGS");
		json_array_foreach(list, i, a)
		{
			cleanup_free char *args =
			    json_dumps(json_object_get(a, "args"), JSON_COMPACT);
			if (g.quiet) {
				printf("%s/%lld\n", json_string_value(json_object_get(a, "run")),
				       (long long)json_integer_value(json_object_get(a, "seq")));
				continue;
			}
			printf("%-34s %-5lld %-10s %-16s %-9s %-14s %s\n",
			       json_string_value(json_object_get(a, "run")),
			       (long long)json_integer_value(json_object_get(a, "seq")),
			       json_string_value(json_object_get(a, "user")),
			       json_string_value(json_object_get(a, "tool")),
			       json_string_value(json_object_get(a, "status")),
			       json_string_value(json_object_get(a, "rule")), args ? args : "");
		}
	}
	json_decref(v);
	return 0;
}

static int
cmd_decide(int argc, char **argv, bool approve)
{
	static const struct option opts[] = {
	    {"edit", required_argument, NULL, 'e'},
	    {"scope", required_argument, NULL, 's'},
	    {"comment", required_argument, NULL, 'c'},
	    {0},
	};
	cleanup_json json_t *body = json_pack("{s:s}", "decision", approve ? "approve" : "deny");
	char path[512];
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "e:s:c:", opts, NULL)) != -1) {
		switch (c) {
		case 'e': {
			json_error_t jerr;
			json_t *a = json_loads(optarg, JSON_REJECT_DUPLICATES, &jerr);
			if (!json_is_object(a) || !approve) {
				json_decref(a);
				return die(EXIT_USAGE, "--edit takes a JSON object (approve only)");
			}
			json_object_set_new(body, "args", a);
			break;
		}
		case 's':
			json_object_set_new(body, "scope", json_string(optarg));
			break;
		case 'c':
			json_object_set_new(body, "comment", json_string(optarg));
			break;
		default:
			return die(EXIT_USAGE,
				   "usage: agentctl %s RUN SEQ [--edit ARGS] "
				   "[--scope once|run|always] [--comment TEXT]",
				   argv[0]);
		}
	}
	/* RUN SEQ or RUN/SEQ, as `approvals -q` prints them */
	const char *run = NULL, *seq = NULL;
	cleanup_free char *copy = NULL;
	if (argc - optind == 2) {
		run = argv[optind];
		seq = argv[optind + 1];
	} else if (argc - optind == 1 && (copy = strdup(argv[optind])) && strchr(copy, '/')) {
		*strrchr(copy, '/') = '\0';
		run = copy;
		seq = copy + strlen(copy) + 1;
	} else
		return die(EXIT_USAGE, "usage: agentctl %s RUN SEQ", argv[0]);
	cleanup_free char *er = urlenc(run);
	cleanup_free char *eq = urlenc(seq);
	snprintf(path, sizeof(path), "/v1/approvals/%s/%s", er ? er : "", eq ? eq : "");
	json_t *v = NULL;
	int rc = call("POST", path, body, &v);
	if (rc)
		return rc;
	if (g.out != OUT_TABLE)
		print_json(v);
	else if (!g.quiet)
		printf("%s/%lld %s by %s\n", json_string_value(json_object_get(v, "run")),
		       (long long)json_integer_value(json_object_get(v, "seq")),
		       json_string_value(json_object_get(v, "status")),
		       json_string_value(json_object_get(v, "decided_by")));
	json_decref(v);
	return 0;
}

static int
cmd_fork(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"from", required_argument, NULL, 'f'},
	    {"name", required_argument, NULL, 'n'},
	    {0},
	};
	cleanup_json json_t *body = json_object();
	json_t *v = NULL;
	char path[512];
	bool from = false;
	int c;

	optind = 0;
	while ((c = getopt_long(argc, argv, "f:n:", opts, NULL)) != -1) {
		if (c == 'f') {
			json_object_set_new(body, "from_seq", json_integer(atoll(optarg)));
			from = true;
		} else if (c == 'n')
			json_object_set_new(body, "name", json_string(optarg));
		else
			return die(EXIT_USAGE, "usage: agentctl fork RUN --from SEQ [--name N]");
	}
	if (argc - optind != 1 || !from)
		return die(EXIT_USAGE, "usage: agentctl fork RUN --from SEQ [--name N]");
	cleanup_free char *id = urlenc(argv[optind]);
	snprintf(path, sizeof(path), "/v1/runs/%s/fork", id ? id : "");
	int rc = call("POST", path, body, &v);
	if (rc)
		return rc;
	print_run(v);
	json_decref(v);
	return 0;
}

static int
cmd_admin(const char *path)
{
	json_t *v = NULL;
	int rc = call(strstr(path, "health") ? "GET" : "POST", path, NULL, &v);

	if (rc)
		return rc;
	print_run(v);
	json_decref(v);
	return 0;
}

static int
cmd_version(void)
{
	json_t *v = NULL;

	printf("client: agentctl %s\n", AGENTD_VERSION);
	long st = http("GET", "/v1/version", NULL, &v, NULL);
	if (st != 200)
		return daemon_error(st, v);
	printf("server: agentd %s (api %s)\n", json_string_value(json_object_get(v, "version")),
	       json_string_value(json_object_get(v, "api")));
	json_decref(v);
	return 0;
}

static const char completion_bash[] =
    "# bash completion for agentctl: eval \"$(agentctl completion bash)\"\n"
    "_agentctl() {\n"
    "\tlocal cur=${COMP_WORDS[COMP_CWORD]}\n"
    "\tlocal verbs='run ls show logs events journal cancel kill pause resume fork rm send "
    "approvals approve deny "
    "drain undrain health version completion'\n"
    "\tif [ \"$COMP_CWORD\" -eq 1 ]; then\n"
    "\t\tCOMPREPLY=($(compgen -W \"$verbs\" -- \"$cur\"))\n"
    "\t\treturn\n"
    "\tfi\n"
    "\tcase ${COMP_WORDS[1]} in\n"
    "\trun) [[ $cur == -* ]] && COMPREPLY=($(compgen -W '--name --policy --label --env "
    "--max-restarts --wall-clock --idempotency-key --message-mode --cwd --wait' -- \"$cur\"));;\n"
    "\tshow|logs|events|journal|cancel|kill|pause|resume|fork|rm|send|approve|deny)\n"
    "\t\tCOMPREPLY=($(compgen -W \"$(agentctl ls -q 2>/dev/null)\" -- \"$cur\"));;\n"
    "\tcompletion) COMPREPLY=($(compgen -W bash -- \"$cur\"));;\n"
    "\tesac\n"
    "}\n"
    "complete -F _agentctl agentctl\n";

static void
usage(FILE *f)
{
	fputs(
	    "usage: agentctl [-H unix://PATH|tcp://HOST:PORT] [-o table|json|jsonl] [-q] COMMAND\n"
	    "  run [--name N] [--policy FILE] [--label K=V] [-e|--env K=V] [--max-restarts N]\n"
	    "      [--wall-clock S] [--idempotency-key K] [--message-mode M] [--wait] -- CMD...\n"
	    "  ls [--status S] [--user U]     show RUN      journal RUN\n"
	    "  logs [-f] RUN                  events [-f] [--after ID] RUN\n"
	    "  cancel RUN                     kill RUN\n"
	    "  pause RUN                      resume RUN\n"
	    "  send [--mode queue|interrupt|restart|reject] RUN TEXT\n"
	    "  approvals [--run R] [--status pending|approved|denied|expired|all]\n"
	    "  approve RUN SEQ [--edit ARGS] [--scope once|run|always] [--comment C]\n"
	    "  deny RUN SEQ [--comment C]\n"
	    "  health    drain    undrain (admins)\n"
	    "  version                        completion bash\n"
	    "The daemon: -H, or $AGENTD_HOST, else /run/agentd/agentd.sock (root) or\n"
	    "$XDG_RUNTIME_DIR/agentd.sock; tcp:// sends $AGENTD_TOKEN as a bearer token.\n"
	    "Exit status 125: agentd refused or is unreachable.\n",
	    f);
}

static int
set_host(const char *h)
{
	if (strncmp(h, "tcp://", 6) == 0) {
		if (!h[6] || strlen(h + 6) >= sizeof(g.tcp) || strchr(h + 6, '/'))
			return die(EXIT_USAGE, "-H takes tcp://HOST:PORT (got %s)", h);
		snprintf(g.tcp, sizeof(g.tcp), "%s", h + 6);
		return 0;
	}
	g.tcp[0] = '\0';
	if (strncmp(h, "unix://", 7) == 0)
		h += 7;
	if (h[0] != '/' || strlen(h) >= sizeof(g.socket))
		return die(EXIT_USAGE, "-H takes unix:///absolute/path (got %s)", h);
	snprintf(g.socket, sizeof(g.socket), "%s", h);
	return 0;
}

int
main(int argc, char **argv)
{
	const char *host = getenv("AGENTD_HOST"), *xdg = getenv("XDG_RUNTIME_DIR");
	int c, rc;

	if (geteuid() == 0 || !xdg || xdg[0] != '/')
		snprintf(g.socket, sizeof(g.socket), "/run/agentd/agentd.sock");
	else
		snprintf(g.socket, sizeof(g.socket), "%.90s/agentd.sock", xdg);
	if (host && *host && (rc = set_host(host)))
		return rc;
	g.token = getenv("AGENTD_TOKEN");
	while ((c = getopt(argc, argv, "+H:o:qh")) != -1) {
		switch (c) {
		case 'H':
			if ((rc = set_host(optarg)))
				return rc;
			break;
		case 'o':
			if (!strcmp(optarg, "table"))
				g.out = OUT_TABLE;
			else if (!strcmp(optarg, "json"))
				g.out = OUT_JSON;
			else if (!strcmp(optarg, "jsonl"))
				g.out = OUT_JSONL;
			else
				return die(EXIT_USAGE, "-o takes table, json or jsonl");
			break;
		case 'q':
			g.quiet = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	const char *nc = getenv("NO_COLOR");
	g.colour = isatty(STDOUT_FILENO) && !(nc && *nc);
	if (optind >= argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	argc -= optind;
	argv += optind;
	const char *cmd = argv[0];
	if (!strcmp(cmd, "completion")) {
		if (argc != 2 || strcmp(argv[1], "bash"))
			return die(EXIT_USAGE, "usage: agentctl completion bash");
		fputs(completion_bash, stdout);
		return 0;
	}
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help")) {
		usage(stdout);
		return 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (!strcmp(cmd, "run"))
		rc = cmd_run(argc, argv);
	else if (!strcmp(cmd, "ls") || !strcmp(cmd, "ps"))
		rc = cmd_ls(argc, argv);
	else if (!strcmp(cmd, "show"))
		rc = simple_run_verb(argc, argv, "GET", "");
	else if (!strcmp(cmd, "cancel"))
		rc = simple_run_verb(argc, argv, "POST", "/cancel");
	else if (!strcmp(cmd, "kill"))
		rc = simple_run_verb(argc, argv, "POST", "/kill");
	else if (!strcmp(cmd, "pause"))
		rc = simple_run_verb(argc, argv, "POST", "/pause");
	else if (!strcmp(cmd, "resume"))
		rc = simple_run_verb(argc, argv, "POST", "/resume");
	else if (!strcmp(cmd, "rm"))
		rc = simple_run_verb(argc, argv, "DELETE", "");
	else if (!strcmp(cmd, "logs"))
		rc = cmd_stream(argc, argv, false);
	else if (!strcmp(cmd, "events"))
		rc = cmd_stream(argc, argv, true);
	else if (!strcmp(cmd, "journal"))
		rc = cmd_journal(argc, argv);
	else if (!strcmp(cmd, "fork"))
		rc = cmd_fork(argc, argv);
	else if (!strcmp(cmd, "send"))
		rc = cmd_send(argc, argv);
	else if (!strcmp(cmd, "approvals"))
		rc = cmd_approvals(argc, argv);
	else if (!strcmp(cmd, "approve"))
		rc = cmd_decide(argc, argv, true);
	else if (!strcmp(cmd, "deny"))
		rc = cmd_decide(argc, argv, false);
	else if (!strcmp(cmd, "health"))
		rc = cmd_admin("/v1/health");
	else if (!strcmp(cmd, "drain"))
		rc = cmd_admin("/v1/admin/drain");
	else if (!strcmp(cmd, "undrain"))
		rc = cmd_admin("/v1/admin/undrain");
	else if (!strcmp(cmd, "version"))
		rc = cmd_version();
	else {
		usage(stderr);
		rc = die(EXIT_USAGE, "unknown command '%s'", cmd);
	}
	curl_global_cleanup();
	return rc;
}
