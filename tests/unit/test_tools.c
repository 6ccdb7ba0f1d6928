/* Unit tests for the built-in tools: fs.* beneath a granted root (including
 * symlink and ".." escapes), and http.request against an in-test HTTP server. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "supervisor/tools/tools.h"

struct fx {
	char base[64];
	char root[128];
	char outside[128];
	struct tool_ctx ctx;
};

static void
write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(agd_write_all(fd, data, len), 0);
	close(fd);
}

static char *
slurp(const char *path)
{
	char *buf = NULL;
	if (agd_read_file(path, 1 << 20, &buf, NULL) < 0)
		return NULL;
	return buf;
}

static int
fx_setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));
	char p[256];

	snprintf(f->base, sizeof(f->base), "/tmp/agentd-tools-XXXXXX");
	assert_non_null(mkdtemp(f->base));
	snprintf(f->root, sizeof(f->root), "%s/root", f->base);
	snprintf(f->outside, sizeof(f->outside), "%s/outside", f->base);
	assert_int_equal(mkdir(f->root, 0755), 0);
	assert_int_equal(mkdir(f->outside, 0755), 0);
	snprintf(p, sizeof(p), "%s/secret", f->outside);
	write_file(p, "top secret", 10);
	snprintf(p, sizeof(p), "%s/sub", f->root);
	assert_int_equal(mkdir(p, 0755), 0);
	snprintf(p, sizeof(p), "%s/hello.txt", f->root);
	write_file(p, "hello world", 11);
	/* Escapes: an absolute and a relative directory link, and a file link. */
	snprintf(p, sizeof(p), "%s/abs", f->root);
	assert_int_equal(symlink(f->outside, p), 0);
	snprintf(p, sizeof(p), "%s/rel", f->root);
	assert_int_equal(symlink("../outside", p), 0);
	snprintf(p, sizeof(p), "%s/file-link", f->root);
	assert_int_equal(symlink("../outside/secret", p), 0);
	/* A link that stays inside the root is fine. */
	snprintf(p, sizeof(p), "%s/inner-link", f->root);
	assert_int_equal(symlink("hello.txt", p), 0);

	f->ctx.run_id = "run1";
	f->ctx.seq = 1;
	f->ctx.cwd = f->root;
	f->ctx.path_root = f->root;
	f->ctx.idempotency_key = "run1:1";
	f->ctx.default_timeout_ms = 5000;
	f->ctx.max_result_bytes = 1 << 20;
	*state = f;
	return 0;
}

static int
rm_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	char p[512];

	while (d && (de = readdir(d))) {
		struct stat st;
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
			rm_tree(p);
		else
			unlink(p);
	}
	if (d)
		closedir(d);
	return rmdir(path);
}

static int
fx_teardown(void **state)
{
	struct fx *f = *state;
	rm_tree(f->base);
	free(f);
	return 0;
}

/* Run a tool with args given as JSON text; returns the content, sets *is_error. */
static json_t *
run(const struct tool_ctx *ctx, const char *tool, const char *args_json, bool *is_error)
{
	const struct tool_def *t = tools_find(tool);
	json_error_t e;
	json_t *args = json_loads(args_json, 0, &e);
	json_t *content = NULL;

	assert_non_null(t);
	if (!args)
		fail_msg("bad test args %s: %s", args_json, e.text);
	*is_error = false;
	assert_int_equal(t->call(ctx, args, &content, is_error), 0);
	assert_non_null(content);
	json_decref(args);
	return content;
}

static void
expect_error(const struct tool_ctx *ctx, const char *tool, const char *args, const char *code)
{
	bool is_error;
	json_t *c = run(ctx, tool, args, &is_error);
	const char *got = json_string_value(json_object_get(json_object_get(c, "error"), "code"));
	if (!is_error || !got || strcmp(got, code) != 0) {
		char *s = json_dumps(c, 0);
		fail_msg("%s %s: want %s, got %s", tool, args, code, s);
	}
	assert_true(json_is_string(json_object_get(json_object_get(c, "error"), "message")));
	json_decref(c);
}

static void
test_registry(void **state)
{
	size_t n = 0;
	for (; tools_builtin[n]; n++) {
		json_error_t e;
		json_t *schema =
		    json_loads(tools_builtin[n]->input_schema, JSON_REJECT_DUPLICATES, &e);
		assert_non_null(schema);
		assert_string_equal(json_string_value(json_object_get(schema, "type")), "object");
		json_decref(schema);
		assert_non_null(tools_builtin[n]->description);
		assert_ptr_equal(tools_find(tools_builtin[n]->name), tools_builtin[n]);
		json_t *d = tools_describe(tools_builtin[n]);
		assert_non_null(d);
		assert_string_equal(json_string_value(json_object_get(d, "name")),
				    tools_builtin[n]->name);
		assert_true(json_is_object(json_object_get(d, "inputSchema")));
		assert_int_equal(json_object_size(d), 3);
		json_decref(d);
	}
	assert_int_equal(n, 7);
	assert_null(tools_find("fs.nope"));

	/* agentd.echo returns its value and costs what an effect costs. */
	json_t *ev = json_pack("{s:[i,s]}", "value", 1, "x");
	json_t *out = NULL;
	bool is_err = true;
	assert_int_equal(tools_echo.classify(ev), TOOL_IDEMPOTENT);
	assert_int_equal(tools_echo.call(NULL, ev, &out, &is_err), 0);
	assert_false(is_err);
	assert_true(json_equal(json_object_get(out, "value"), json_object_get(ev, "value")));
	json_decref(out);
	json_object_set_new(ev, "extra", json_true());
	assert_int_equal(tools_echo.call(NULL, ev, &out, &is_err), 0);
	assert_true(is_err);
	json_decref(out);
	json_decref(ev);
	assert_null(tools_find(NULL));

	json_t *a = json_pack("{s:s,s:s}", "path", "x", "content", "y");
	assert_int_equal(tools_fs_write.classify(a), TOOL_IDEMPOTENT);
	json_object_set_new(a, "append", json_true());
	assert_int_equal(tools_fs_write.classify(a), TOOL_EFFECT);
	assert_int_equal(tools_fs_read.classify(a), TOOL_PURE);
	assert_int_equal(tools_fs_list.classify(a), TOOL_PURE);
	assert_int_equal(tools_fs_stat.classify(a), TOOL_PURE);
	assert_int_equal(tools_fs_delete.classify(a), TOOL_IDEMPOTENT);
	assert_int_equal(tools_http_request.classify(a), TOOL_IDEMPOTENT);
	json_decref(a);

	json_t *e = tools_error("ENOENT", "no %s", "file");
	char *s = json_dumps(e, JSON_COMPACT);
	assert_string_equal(s, "{\"error\":{\"code\":\"ENOENT\",\"message\":\"no file\"}}");
	free(s);
	json_decref(e);
}

static void
test_fs_read(void **state)
{
	struct fx *f = *state;
	bool is_error;
	char p[256];

	json_t *c = run(&f->ctx, "fs.read", "{\"path\":\"hello.txt\"}", &is_error);
	assert_false(is_error);
	assert_string_equal(json_string_value(json_object_get(c, "content")), "hello world");
	assert_int_equal(json_integer_value(json_object_get(c, "size")), 11);
	assert_int_equal(json_integer_value(json_object_get(c, "offset")), 0);
	assert_true(json_is_true(json_object_get(c, "eof")));
	snprintf(p, sizeof(p), "%s/hello.txt", f->root);
	assert_string_equal(json_string_value(json_object_get(c, "path")), p);
	json_decref(c);

	/* Offset and length page through the file. */
	c = run(&f->ctx, "fs.read", "{\"path\":\"./sub/../hello.txt\",\"offset\":2,\"length\":3}",
		&is_error);
	assert_false(is_error);
	assert_string_equal(json_string_value(json_object_get(c, "content")), "llo");
	assert_true(json_is_false(json_object_get(c, "eof")));
	json_decref(c);

	/* Absolute path inside the root; inner symlink is followed. */
	char args[512];
	snprintf(args, sizeof(args), "{\"path\":\"%s/inner-link\",\"offset\":6}", f->root);
	c = run(&f->ctx, "fs.read", args, &is_error);
	assert_false(is_error);
	assert_string_equal(json_string_value(json_object_get(c, "content")), "world");
	json_decref(c);

	/* Binary data comes back as base64. */
	snprintf(p, sizeof(p), "%s/bin", f->root);
	write_file(p, "\x00\xff\x01", 3);
	c = run(&f->ctx, "fs.read", "{\"path\":\"bin\"}", &is_error);
	assert_false(is_error);
	assert_null(json_object_get(c, "content"));
	assert_string_equal(json_string_value(json_object_get(c, "content_base64")), "AP8B");
	json_decref(c);

	/* The context's result cap bounds a read. */
	struct tool_ctx small = f->ctx;
	small.max_result_bytes = 4;
	c = run(&small, "fs.read", "{\"path\":\"hello.txt\"}", &is_error);
	assert_string_equal(json_string_value(json_object_get(c, "content")), "hell");
	assert_true(json_is_false(json_object_get(c, "eof")));
	json_decref(c);

	expect_error(&f->ctx, "fs.read", "{\"path\":\"missing\"}", "ENOENT");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"sub\"}", "EISDIR");
	expect_error(&f->ctx, "fs.read", "{}", "EINVAL");
	expect_error(&f->ctx, "fs.read", "{\"path\":1}", "EINVAL");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"hello.txt\",\"extra\":1}", "EINVAL");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"hello.txt\",\"offset\":-1}", "EINVAL");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"hello.txt\",\"offset\":1.5}", "EINVAL");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"\"}", "EINVAL");
	/* A FIFO must not block the supervisor. */
	snprintf(p, sizeof(p), "%s/fifo", f->root);
	assert_int_equal(mkfifo(p, 0644), 0);
	expect_error(&f->ctx, "fs.read", "{\"path\":\"fifo\"}", "EINVAL");
}

static void
test_fs_escapes(void **state)
{
	struct fx *f = *state;
	char p[256], args[512];

	/* Symlinks pointing outside the root: absolute, relative, and to a file. */
	expect_error(&f->ctx, "fs.read", "{\"path\":\"abs/secret\"}", "EXDEV");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"rel/secret\"}", "EXDEV");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"file-link\"}", "EXDEV");
	expect_error(&f->ctx, "fs.stat", "{\"path\":\"file-link\"}", "EXDEV");
	expect_error(&f->ctx, "fs.list", "{\"path\":\"abs\"}", "EXDEV");
	expect_error(&f->ctx, "fs.write", "{\"path\":\"abs/new\",\"content\":\"x\"}", "EXDEV");
	expect_error(&f->ctx, "fs.write", "{\"path\":\"rel/secret\",\"content\":\"x\"}", "EXDEV");
	expect_error(&f->ctx, "fs.write",
		     "{\"path\":\"file-link\",\"content\":\"x\",\"append\":true}", "EXDEV");
	expect_error(&f->ctx, "fs.delete", "{\"path\":\"abs/secret\"}", "EXDEV");
	/* ".." and absolute paths outside the root never reach the filesystem. */
	expect_error(&f->ctx, "fs.read", "{\"path\":\"../outside/secret\"}", "EACCES");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"sub/../../outside/secret\"}", "EACCES");
	expect_error(&f->ctx, "fs.read", "{\"path\":\"/etc/passwd\"}", "EACCES");
	snprintf(args, sizeof(args), "{\"path\":\"%s/secret\",\"content\":\"x\"}", f->outside);
	expect_error(&f->ctx, "fs.write", args, "EACCES");
	/* A root given with a trailing slash or a sibling prefix does not widen it. */
	snprintf(args, sizeof(args), "{\"path\":\"%s-evil/x\"}", f->root);
	expect_error(&f->ctx, "fs.read", args, "EACCES");

	/* A non-append write to the file link replaces the link, not its target. */
	bool is_error;
	json_t *c =
	    run(&f->ctx, "fs.write", "{\"path\":\"file-link\",\"content\":\"mine\"}", &is_error);
	assert_false(is_error);
	json_decref(c);
	snprintf(p, sizeof(p), "%s/secret", f->outside);
	char *s = slurp(p);
	assert_string_equal(s, "top secret");
	free(s);
	/* Deleting a link removes the link only. */
	c = run(&f->ctx, "fs.delete", "{\"path\":\"rel\"}", &is_error);
	assert_false(is_error);
	json_decref(c);
	s = slurp(p);
	assert_string_equal(s, "top secret");
	free(s);
	/* No file was created outside. */
	snprintf(p, sizeof(p), "%s/new", f->outside);
	assert_int_equal(access(p, F_OK), -1);
}

static void
test_fs_write_append_delete(void **state)
{
	struct fx *f = *state;
	bool is_error;
	char p[256];

	json_t *c =
	    run(&f->ctx, "fs.write", "{\"path\":\"sub/out.txt\",\"content\":\"first\"}", &is_error);
	assert_false(is_error);
	assert_int_equal(json_integer_value(json_object_get(c, "bytes")), 5);
	json_decref(c);
	snprintf(p, sizeof(p), "%s/sub/out.txt", f->root);
	char *s = slurp(p);
	assert_string_equal(s, "first");
	free(s);

	/* Replace keeps the existing mode and leaves no temporary file behind. */
	assert_int_equal(chmod(p, 0600), 0);
	c = run(&f->ctx, "fs.write", "{\"path\":\"sub/out.txt\",\"content\":\"2nd\"}", &is_error);
	assert_false(is_error);
	json_decref(c);
	s = slurp(p);
	assert_string_equal(s, "2nd");
	free(s);
	struct stat st;
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);

	c = run(&f->ctx, "fs.write",
		"{\"path\":\"sub/out.txt\",\"content\":\"+more\",\"append\":true}", &is_error);
	assert_false(is_error);
	assert_int_equal(json_integer_value(json_object_get(c, "bytes")), 5);
	json_decref(c);
	s = slurp(p);
	assert_string_equal(s, "2nd+more");
	free(s);

	c = run(&f->ctx, "fs.list", "{\"path\":\"sub\"}", &is_error);
	assert_int_equal(json_array_size(json_object_get(c, "entries")), 1);
	json_decref(c);

	/* Append creates a missing file. */
	c = run(&f->ctx, "fs.write", "{\"path\":\"log\",\"content\":\"a\",\"append\":true}",
		&is_error);
	assert_false(is_error);
	json_decref(c);

	expect_error(&f->ctx, "fs.write", "{\"path\":\"sub\",\"content\":\"x\"}", "EISDIR");
	expect_error(&f->ctx, "fs.write", "{\"path\":\"nodir/x\",\"content\":\"x\"}", "ENOENT");
	expect_error(&f->ctx, "fs.write", "{\"path\":\"x\"}", "EINVAL");
	expect_error(&f->ctx, "fs.write", "{\"path\":\"x\",\"content\":\"x\",\"append\":1}",
		     "EINVAL");

	c = run(&f->ctx, "fs.delete", "{\"path\":\"sub/out.txt\"}", &is_error);
	assert_false(is_error);
	assert_true(json_is_true(json_object_get(c, "deleted")));
	json_decref(c);
	assert_int_equal(access(p, F_OK), -1);
	expect_error(&f->ctx, "fs.delete", "{\"path\":\"sub/out.txt\"}", "ENOENT");
	expect_error(&f->ctx, "fs.delete", "{\"path\":\"sub\"}", "EISDIR");
	expect_error(&f->ctx, "fs.delete", "{\"path\":\".\"}", "EISDIR");
}

static void
test_fs_list_stat(void **state)
{
	struct fx *f = *state;
	bool is_error;
	char p[256];

	json_t *c = run(&f->ctx, "fs.list", "{\"path\":\".\"}", &is_error);
	assert_false(is_error);
	assert_string_equal(json_string_value(json_object_get(c, "path")), f->root);
	json_t *ents = json_object_get(c, "entries");
	const char *want[] = {"abs", "file-link", "hello.txt", "inner-link", "rel", "sub"};
	assert_int_equal(json_array_size(ents), ARRAY_SIZE(want));
	for (size_t i = 0; i < ARRAY_SIZE(want); i++)
		assert_string_equal(
		    json_string_value(json_object_get(json_array_get(ents, i), "name")), want[i]);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ents, 0), "type")),
			    "symlink");
	assert_string_equal(json_string_value(json_object_get(json_array_get(ents, 2), "type")),
			    "file");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(ents, 2), "size")), 11);
	assert_string_equal(json_string_value(json_object_get(json_array_get(ents, 5), "type")),
			    "dir");
	json_decref(c);

	snprintf(p, sizeof(p), "%s/hello.txt", f->root);
	assert_int_equal(chmod(p, 0640), 0);
	c = run(&f->ctx, "fs.stat", "{\"path\":\"hello.txt\"}", &is_error);
	assert_false(is_error);
	assert_string_equal(json_string_value(json_object_get(c, "type")), "file");
	assert_int_equal(json_integer_value(json_object_get(c, "size")), 11);
	assert_int_equal(json_integer_value(json_object_get(c, "mode")), 0640);
	int64_t now = agd_wall_ms();
	json_int_t mt = json_integer_value(json_object_get(c, "mtime_ms"));
	assert_true(mt > now - 600000 && mt <= now + 1000);
	json_decref(c);
	c = run(&f->ctx, "fs.stat", "{\"path\":\"sub\"}", &is_error);
	assert_string_equal(json_string_value(json_object_get(c, "type")), "dir");
	json_decref(c);
	expect_error(&f->ctx, "fs.stat", "{\"path\":\"nope\"}", "ENOENT");
	expect_error(&f->ctx, "fs.list", "{\"path\":\"hello.txt\"}", "ENOTDIR");
}

/* ---- http ---- */

enum srv_mode { SRV_OK, SRV_SILENT, SRV_BIG, SRV_REDIRECT };

struct srv {
	pid_t pid;
	int port;
	int req_fd; /* the raw request as the server saw it */
};

static void
srv_child(int lfd, int out, enum srv_mode mode)
{
	char buf[65536];
	size_t len = 0;
	int c = accept(lfd, NULL, NULL);
	if (c < 0)
		_exit(1);
	if (mode == SRV_SILENT) {
		pause();
		_exit(0);
	}
	/* Read the head, then Content-Length bytes of body. */
	char *end = NULL;
	while (!end && len < sizeof(buf) - 1) {
		ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			_exit(1);
		len += (size_t)n;
		buf[len] = '\0';
		end = strstr(buf, "\r\n\r\n");
	}
	size_t want = (size_t)(end - buf) + 4;
	char *cl = strcasestr(buf, "\r\ncontent-length:");
	if (cl && cl < end)
		want += strtoul(cl + 17, NULL, 10);
	while (len < want && len < sizeof(buf) - 1) {
		ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	(void)!write(out, buf, len);
	close(out);
	const char *resp = "HTTP/1.1 201 Created\r\nX-Test: Yes\r\nSet-Cookie: a=1\r\n"
			   "Set-Cookie: b=2\r\nContent-Length: 5\r\nConnection: close\r\n\r\nhello";
	if (mode == SRV_REDIRECT)
		resp = "HTTP/1.1 302 Found\r\nLocation: http://127.0.0.1:1/elsewhere\r\n"
		       "Content-Length: 0\r\nConnection: close\r\n\r\n";
	if (mode == SRV_BIG) {
		const char *head = "HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\n";
		(void)!write(c, head, strlen(head));
		memset(buf, 'z', sizeof(buf));
		for (int i = 0; i < 3; i++)
			if (write(c, buf, sizeof(buf)) < 0)
				break;
		_exit(0);
	}
	(void)!write(c, resp, strlen(resp));
	shutdown(c, SHUT_WR);
	_exit(0);
}

static void
srv_start(struct srv *s, enum srv_mode mode)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int p[2];
	int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	assert_true(lfd >= 0);
	assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(listen(lfd, 4), 0);
	assert_int_equal(getsockname(lfd, (struct sockaddr *)&a, &al), 0);
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	s->port = ntohs(a.sin_port);
	s->pid = fork();
	assert_true(s->pid >= 0);
	if (s->pid == 0) {
		close(p[0]);
		srv_child(lfd, p[1], mode);
	}
	close(lfd);
	close(p[1]);
	s->req_fd = p[0];
}

/* Stop the server and return what it received (NUL-terminated, owned). */
static char *
srv_stop(struct srv *s)
{
	char *buf = calloc(1, 65537);
	size_t len = 0;
	ssize_t n;

	kill(s->pid, SIGKILL);
	waitpid(s->pid, NULL, 0);
	while ((n = read(s->req_fd, buf + len, 65536 - len)) > 0)
		len += (size_t)n;
	close(s->req_fd);
	return buf;
}

static void
test_http_request(void **state)
{
	struct fx *f = *state;
	struct srv s;
	char args[512];
	bool is_error;

	srv_start(&s, SRV_OK);
	snprintf(args, sizeof(args),
		 "{\"method\":\"PUT\",\"url\":\"http://127.0.0.1:%d/things/1?x=y\","
		 "\"headers\":{\"X-Agent\":\"yes\",\"Content-Type\":\"text/plain\"},"
		 "\"body\":\"payload-123\",\"timeout_ms\":5000}",
		 s.port);
	json_t *c = run(&f->ctx, "http.request", args, &is_error);
	char *req = srv_stop(&s);
	if (is_error)
		fail_msg("%s", json_dumps(c, 0));
	assert_int_equal(json_integer_value(json_object_get(c, "status")), 201);
	assert_string_equal(json_string_value(json_object_get(c, "body")), "hello");
	json_t *h = json_object_get(c, "headers");
	assert_string_equal(json_string_value(json_object_get(h, "x-test")), "Yes");
	assert_string_equal(json_string_value(json_object_get(h, "set-cookie")), "a=1, b=2");
	assert_string_equal(json_string_value(json_object_get(h, "content-length")), "5");
	json_decref(c);

	assert_non_null(strstr(req, "PUT /things/1?x=y HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\nIdempotency-Key: run1:1\r\n"));
	assert_non_null(strstr(req, "\r\nX-Agent: yes\r\n"));
	assert_non_null(strstr(req, "\r\nContent-Type: text/plain\r\n"));
	assert_null(strcasestr(req, "Expect:"));
	assert_non_null(strstr(req, "\r\n\r\npayload-123"));
	free(req);

	/* The agent's own Idempotency-Key wins; GET sends no body. */
	srv_start(&s, SRV_OK);
	snprintf(args, sizeof(args),
		 "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%d/\","
		 "\"headers\":{\"idempotency-key\":\"mine\"}}",
		 s.port);
	c = run(&f->ctx, "http.request", args, &is_error);
	req = srv_stop(&s);
	assert_false(is_error);
	json_decref(c);
	assert_non_null(strstr(req, "GET / HTTP/1.1\r\n"));
	assert_non_null(strstr(req, "\r\nidempotency-key: mine\r\n"));
	assert_null(strstr(req, "run1:1"));
	free(req);

	/* Redirects are returned, not followed. */
	srv_start(&s, SRV_REDIRECT);
	snprintf(args, sizeof(args), "{\"method\":\"POST\",\"url\":\"http://127.0.0.1:%d/r\"}",
		 s.port);
	c = run(&f->ctx, "http.request", args, &is_error);
	req = srv_stop(&s);
	assert_false(is_error);
	assert_int_equal(json_integer_value(json_object_get(c, "status")), 302);
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(c, "headers"), "location")),
	    "http://127.0.0.1:1/elsewhere");
	json_decref(c);
	assert_non_null(strstr(req, "POST /r HTTP/1.1\r\n"));
	free(req);
}

static void
test_http_failures(void **state)
{
	struct fx *f = *state;
	struct srv s;
	char args[512];

	/* A server that accepts and never answers: timeout_ms bounds the call. */
	srv_start(&s, SRV_SILENT);
	snprintf(args, sizeof(args),
		 "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%d/\",\"timeout_ms\":200}",
		 s.port);
	int64_t t0 = agd_now_ns();
	expect_error(&f->ctx, "http.request", args, "ETIMEDOUT");
	int64_t ms = (agd_now_ns() - t0) / 1000000;
	assert_true(ms >= 150 && ms < 3000);
	free(srv_stop(&s));

	/* Response over the cap. */
	struct tool_ctx small = f->ctx;
	small.max_result_bytes = 1000;
	srv_start(&s, SRV_BIG);
	snprintf(args, sizeof(args), "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%d/\"}",
		 s.port);
	expect_error(&small, "http.request", args, "E2BIG");
	free(srv_stop(&s));

	/* Nobody listening. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &al), 0);
	snprintf(args, sizeof(args), "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%d/\"}",
		 ntohs(a.sin_port));
	expect_error(&f->ctx, "http.request", args, "ECONNREFUSED");
	close(fd);

	/* Argument checking. */
	expect_error(&f->ctx, "http.request", "{\"method\":\"GET\",\"url\":\"file:///etc/passwd\"}",
		     "EINVAL");
	expect_error(&f->ctx, "http.request", "{\"method\":\"GET\",\"url\":\"ftp://x/\"}",
		     "EINVAL");
	expect_error(&f->ctx, "http.request", "{\"method\":\"TRACE\",\"url\":\"http://x/\"}",
		     "EINVAL");
	expect_error(&f->ctx, "http.request", "{\"url\":\"http://x/\"}", "EINVAL");
	expect_error(
	    &f->ctx, "http.request",
	    "{\"method\":\"GET\",\"url\":\"http://x/\",\"headers\":{\"A\":\"b\\r\\nC: d\"}}",
	    "EINVAL");
	expect_error(&f->ctx, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://x/\",\"headers\":{\"A B\":\"c\"}}",
		     "EINVAL");
	expect_error(&f->ctx, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://x/\",\"headers\":{\"A\":1}}", "EINVAL");
	expect_error(&f->ctx, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://x/\",\"headers\":{\"HOST\":\"y\"}}",
		     "EINVAL");
	expect_error(
	    &f->ctx, "http.request",
	    "{\"method\":\"POST\",\"url\":\"http://x/\",\"headers\":{\"Transfer-Encoding\":"
	    "\"chunked\"}}",
	    "EINVAL");
	expect_error(&f->ctx, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://x/\",\"timeout_ms\":300001}", "EINVAL");
	expect_error(&f->ctx, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://x/\",\"timeout_ms\":0}", "EINVAL");
	expect_error(&f->ctx, "http.request", "{\"method\":\"GET\",\"url\":\"http://x/\",\"y\":0}",
		     "EINVAL");
}

static void
test_http_egress(void **state)
{
	struct fx *f = *state;
	struct tool_ctx strict = f->ctx;
	struct srv s;
	char args[512];
	bool is_error;

	strict.deny_private_addresses = true;
	/* Non-public destinations are refused before any connection is made. */
	srv_start(&s, SRV_OK);
	const char *hosts[] = {"127.0.0.1",   "localhost",  "[::1]",	       "10.1.2.3",
			       "192.168.0.1", "172.16.5.5", "169.254.169.254", "100.64.0.1",
			       "0.0.0.0",     "[fe80::1]",  "[fd00::1]",       "[::ffff:127.0.0.1]",
			       "224.0.0.1"};
	for (size_t i = 0; i < ARRAY_SIZE(hosts); i++) {
		snprintf(args, sizeof(args),
			 "{\"method\":\"GET\",\"url\":\"http://%s:%d/\",\"timeout_ms\":500}",
			 hosts[i], s.port);
		expect_error(&strict, "http.request", args, "EACCES");
	}
	/* The in-test server saw nothing: it is still waiting for its first client. */
	int st;
	assert_int_equal(waitpid(s.pid, &st, WNOHANG), 0);
	/* Without the flag the same request goes through. */
	snprintf(args, sizeof(args), "{\"method\":\"GET\",\"url\":\"http://127.0.0.1:%d/\"}",
		 s.port);
	json_t *c = run(&f->ctx, "http.request", args, &is_error);
	assert_false(is_error);
	assert_int_equal(json_integer_value(json_object_get(c, "status")), 201);
	json_decref(c);
	free(srv_stop(&s));

	/* A public literal passes the check (and then fails to connect offline). */
	c = run(&strict, "http.request",
		"{\"method\":\"GET\",\"url\":\"http://192.0.2.1:9/\",\"timeout_ms\":200}",
		&is_error);
	assert_true(is_error);
	assert_string_not_equal(
	    json_string_value(json_object_get(json_object_get(c, "error"), "code")), "EACCES");
	json_decref(c);
	/* A name that does not resolve. */
	expect_error(&strict, "http.request",
		     "{\"method\":\"GET\",\"url\":\"http://no-such-host.invalid/\"}",
		     "EHOSTUNREACH");
}

int
main(void)
{
	signal(SIGPIPE, SIG_IGN);
	tools_global_init();
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_registry),
	    cmocka_unit_test_setup_teardown(test_fs_read, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_fs_escapes, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_fs_write_append_delete, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_fs_list_stat, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_http_request, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_http_failures, fx_setup, fx_teardown),
	    cmocka_unit_test_setup_teardown(test_http_egress, fx_setup, fx_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
