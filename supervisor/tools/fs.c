/* fs.* tools: host files beneath the policy's granted root. Paths are normalised
 * lexically, checked against the root, and then opened with openat2 and
 * RESOLVE_BENEATH from a descriptor of the root, so neither ".." nor a symlink
 * (absolute or relative, planted before or during the call) can leave it. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/json.h"
#include "common/util.h"
#include "policy/policy.h"
#include "supervisor/tools/tools-internal.h"
#include "supervisor/tools/tools.h"

#define FS_PATH_MAX 4096

/* A path argument resolved against the context. */
struct fs_path {
	char abs[FS_PATH_MAX];	  /* normalised absolute path (reported back) */
	const char *rel;	  /* remainder beneath the root: "." for the root itself */
	char parent[FS_PATH_MAX]; /* rel's directory part ("." if none) */
	const char *name;	  /* rel's last component (NULL for the root) */
	int rootfd;		  /* O_PATH descriptor of the root */
};

static void
fs_path_done(struct fs_path *p)
{
	agd_closep(&p->rootfd);
}

static int
fs_openat2(int dirfd, const char *path, int flags, mode_t mode)
{
	struct open_how how = {
	    .flags = (uint64_t)(flags | O_CLOEXEC),
	    .mode = (flags & O_CREAT) ? mode : 0,
	    .resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS,
	};
	for (;;) {
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		/* EAGAIN: a concurrent rename raced the lookup; retry as the man page says. */
		if (errno != EINTR && errno != EAGAIN)
			return -errno;
	}
}

/* Resolve `arg` for a call. On failure *ret_content holds the tool error and
 * 1 is returned; 0 on success; -ENOMEM. */
static int
fs_resolve(const struct tool_ctx *ctx, const char *arg, struct fs_path *p, json_t **ret_content)
{
	char root[FS_PATH_MAX];
	const char *cwd = ctx->cwd && ctx->cwd[0] ? ctx->cwd : "/";
	int r;

	p->rootfd = -1;
	r = policy_normalize_path(arg, cwd, p->abs, sizeof(p->abs));
	if (r < 0) {
		*ret_content = tools_errno_error(r, "invalid path");
		return *ret_content ? 1 : -ENOMEM;
	}
	r = policy_normalize_path(ctx->path_root && ctx->path_root[0] ? ctx->path_root : "/", "/",
				  root, sizeof(root));
	if (r < 0) {
		*ret_content = tools_errno_error(r, "invalid granted root");
		return *ret_content ? 1 : -ENOMEM;
	}
	size_t rl = strlen(root);
	if (strcmp(root, "/") == 0) {
		p->rel = p->abs[1] ? p->abs + 1 : ".";
	} else if (strcmp(p->abs, root) == 0) {
		p->rel = ".";
	} else if (strncmp(p->abs, root, rl) == 0 && p->abs[rl] == '/') {
		p->rel = p->abs + rl + 1;
	} else {
		*ret_content =
		    tools_error("EACCES", "%s: outside the granted root %s", p->abs, root);
		return *ret_content ? 1 : -ENOMEM;
	}
	if (strcmp(p->rel, ".") == 0) {
		p->name = NULL;
		snprintf(p->parent, sizeof(p->parent), ".");
	} else {
		const char *slash = strrchr(p->rel, '/');
		if (slash) {
			size_t n = (size_t)(slash - p->rel);
			memcpy(p->parent, p->rel, n);
			p->parent[n] = '\0';
			p->name = slash + 1;
		} else {
			snprintf(p->parent, sizeof(p->parent), ".");
			p->name = p->rel;
		}
	}
	p->rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (p->rootfd < 0) {
		*ret_content = tools_errno_error(errno, root);
		return *ret_content ? 1 : -ENOMEM;
	}
	return 0;
}

/* Finish a call: either content is an error (r > 0 path) or a result. */
static int
fs_done(json_t *content, bool is_error, json_t **ret_content, bool *ret_is_error)
{
	if (!content)
		return -ENOMEM;
	*ret_content = content;
	*ret_is_error = is_error;
	return 0;
}

static int
fs_fail(int err, const struct fs_path *p, json_t **ret_content, bool *ret_is_error)
{
	return fs_done(tools_errno_error(err, p->abs), true, ret_content, ret_is_error);
}

static const char *
fs_type(mode_t m)
{
	if (S_ISREG(m))
		return "file";
	if (S_ISDIR(m))
		return "dir";
	if (S_ISLNK(m))
		return "symlink";
	return "other";
}

/* ---- fs.read ---- */

static enum tool_class
fs_class_pure(const json_t *args)
{
	return TOOL_PURE;
}

static int
fs_read_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	     bool *ret_is_error)
{
	json_error_t jerr;
	const char *path;
	json_int_t offset = 0, length = -1;
	struct fs_path p __attribute__((cleanup(fs_path_done))) = {.rootfd = -1};
	json_t *content = NULL;
	struct stat st;
	int r;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s, s?:I, s?:I}", "path", &path,
			   "offset", &offset, "length", &length) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	if (offset < 0 || (length < 0 && json_object_get(args, "length")))
		return fs_done(tools_error("EINVAL", "offset and length must not be negative"),
			       true, ret_content, ret_is_error);
	r = fs_resolve(ctx, path, &p, &content);
	if (r != 0)
		return r < 0 ? r : fs_done(content, true, ret_content, ret_is_error);

	size_t cap = ctx->max_result_bytes && ctx->max_result_bytes < TOOLS_MAX_READ_BYTES
			 ? ctx->max_result_bytes
			 : TOOLS_MAX_READ_BYTES;
	size_t want = length < 0 || (uint64_t)length > cap ? cap : (size_t)length;
	/* O_NONBLOCK: opening a FIFO must not stall the supervisor. */
	cleanup_close int fd = fs_openat2(p.rootfd, p.rel, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return fs_fail(fd, &p, ret_content, ret_is_error);
	if (fstat(fd, &st) < 0)
		return fs_fail(errno, &p, ret_content, ret_is_error);
	if (S_ISDIR(st.st_mode))
		return fs_fail(EISDIR, &p, ret_content, ret_is_error);
	if (!S_ISREG(st.st_mode))
		return fs_done(tools_error("EINVAL", "%s: not a regular file", p.abs), true,
			       ret_content, ret_is_error);

	cleanup_free char *buf = malloc(want ? want : 1);
	size_t got = 0;
	if (!buf)
		return -ENOMEM;
	while (got < want) {
		ssize_t n = pread(fd, buf + got, want - got, (off_t)offset + (off_t)got);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return fs_fail(errno, &p, ret_content, ret_is_error);
		}
		if (n == 0)
			break;
		got += (size_t)n;
	}
	bool eof = (uint64_t)offset + got >= (uint64_t)st.st_size;
	json_t *text = tools_text_or_null(buf, got);
	const char *key = "content";
	if (!text) {
		text = tools_base64(buf, got);
		key = "content_base64";
		if (!text)
			return -ENOMEM;
	}
	return fs_done(json_pack("{s:s,s:o,s:I,s:I,s:b}", "path", p.abs, key, text, "size",
				 (json_int_t)st.st_size, "offset", offset, "eof", eof),
		       false, ret_content, ret_is_error);
}

/* ---- fs.write ---- */

static enum tool_class
fs_write_class(const json_t *args)
{
	return json_is_true(json_object_get(args, "append")) ? TOOL_EFFECT : TOOL_IDEMPOTENT;
}

static int
fs_write_all(int fd, const char *data, size_t len)
{
	return agd_write_all(fd, data, len);
}

/* Replace p's file atomically: write a temporary file next to it, flush it and
 * rename it over the target, all relative to a parent descriptor opened beneath
 * the root. A crash leaves either the old or the new content, never a mix. */
static int
fs_replace(const struct fs_path *p, const char *data, size_t len)
{
	char tmp[300];
	uint64_t rnd = 0;
	struct stat st;
	mode_t mode = 0644;
	int r;

	if (strlen(p->name) > 200)
		return -ENAMETOOLONG;
	cleanup_close int dfd = fs_openat2(p->rootfd, p->parent, O_PATH | O_DIRECTORY, 0);
	if (dfd < 0)
		return dfd;
	if (fstatat(dfd, p->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		if (S_ISDIR(st.st_mode))
			return -EISDIR;
		if (S_ISREG(st.st_mode))
			mode = st.st_mode & 07777;
	}
	if (getrandom(&rnd, sizeof(rnd), GRND_NONBLOCK) < 0)
		rnd = (uint64_t)agd_now_ns();
	snprintf(tmp, sizeof(tmp), ".%s.agentd-%016llx", p->name, (unsigned long long)rnd);
	/* O_EXCL with a single component never follows a symlink. */
	cleanup_close int fd =
	    openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	r = fs_write_all(fd, data, len);
	if (r == 0 && fchmod(fd, mode) < 0)
		r = -errno;
	if (r == 0 && fdatasync(fd) < 0)
		r = -errno;
	if (r == 0 && renameat(dfd, tmp, dfd, p->name) < 0)
		r = -errno;
	if (r < 0) {
		unlinkat(dfd, tmp, 0);
		return r;
	}
	/* Make the rename itself durable; a failure here does not undo the write. */
	int dsync = openat(dfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dsync >= 0) {
		(void)fsync(dsync);
		close(dsync);
	}
	return 0;
}

static int
fs_append(const struct fs_path *p, const char *data, size_t len)
{
	struct stat st;
	cleanup_close int fd = fs_openat2(
	    p->rootfd, p->rel, O_WRONLY | O_APPEND | O_CREAT | O_NONBLOCK | O_NOCTTY, 0644);
	if (fd < 0)
		return fd;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	return fs_write_all(fd, data, len);
}

static int
fs_write_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	      bool *ret_is_error)
{
	json_error_t jerr;
	const char *path, *data;
	size_t len;
	int append = 0;
	struct fs_path p __attribute__((cleanup(fs_path_done))) = {.rootfd = -1};
	json_t *content = NULL;
	int r;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s, s:s%, s?:b}", "path", &path,
			   "content", &data, &len, "append", &append) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	r = fs_resolve(ctx, path, &p, &content);
	if (r != 0)
		return r < 0 ? r : fs_done(content, true, ret_content, ret_is_error);
	if (!p.name)
		return fs_fail(EISDIR, &p, ret_content, ret_is_error);
	r = append ? fs_append(&p, data, len) : fs_replace(&p, data, len);
	if (r == -ENOMEM)
		return r;
	if (r == -EINVAL)
		return fs_done(tools_error("EINVAL", "%s: not a regular file", p.abs), true,
			       ret_content, ret_is_error);
	if (r < 0)
		return fs_fail(r, &p, ret_content, ret_is_error);
	return fs_done(json_pack("{s:s,s:I}", "path", p.abs, "bytes", (json_int_t)len), false,
		       ret_content, ret_is_error);
}

/* ---- fs.list ---- */

struct fs_entry {
	char *name;
	const char *type;
	json_int_t size;
};

static int
fs_entry_cmp(const void *a, const void *b)
{
	return strcmp(((const struct fs_entry *)a)->name, ((const struct fs_entry *)b)->name);
}

static int
fs_list_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	     bool *ret_is_error)
{
	json_error_t jerr;
	const char *path;
	struct fs_path p __attribute__((cleanup(fs_path_done))) = {.rootfd = -1};
	json_t *content = NULL;
	struct fs_entry *ents = NULL;
	size_t n = 0;
	bool truncated = false;
	int r;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s}", "path", &path) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	r = fs_resolve(ctx, path, &p, &content);
	if (r != 0)
		return r < 0 ? r : fs_done(content, true, ret_content, ret_is_error);
	int fd = fs_openat2(p.rootfd, p.rel, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fs_fail(fd, &p, ret_content, ret_is_error);
	DIR *d = fdopendir(fd);
	if (!d) {
		r = errno;
		close(fd);
		return fs_fail(r, &p, ret_content, ret_is_error);
	}
	ents = calloc(TOOLS_MAX_LIST_ENTRIES, sizeof(*ents));
	if (!ents) {
		closedir(d);
		return -ENOMEM;
	}
	struct dirent *de;
	r = 0;
	while ((de = readdir(d))) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (n == TOOLS_MAX_LIST_ENTRIES) {
			truncated = true;
			break;
		}
		if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue; /* removed while listing */
		ents[n].name = strdup(de->d_name);
		if (!ents[n].name) {
			r = -ENOMEM;
			break;
		}
		ents[n].type = fs_type(st.st_mode);
		ents[n].size = (json_int_t)st.st_size;
		n++;
	}
	closedir(d);
	json_t *arr = r == 0 ? json_array() : NULL;
	if (arr) {
		qsort(ents, n, sizeof(*ents), fs_entry_cmp);
		for (size_t i = 0; i < n; i++) {
			json_t *name = json_string(ents[i].name);
			/* Names that are not UTF-8 cannot be represented; skip them. */
			if (!name)
				continue;
			if (json_array_append_new(arr, json_pack("{s:o,s:s,s:I}", "name", name,
								 "type", ents[i].type, "size",
								 ents[i].size)) < 0) {
				json_decref(arr);
				arr = NULL;
				break;
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(ents[i].name);
	free(ents);
	if (!arr)
		return -ENOMEM;
	json_t *res = json_pack("{s:s,s:o}", "path", p.abs, "entries", arr);
	if (res && truncated && json_object_set_new(res, "truncated", json_true()) < 0) {
		json_decref(res);
		res = NULL;
	}
	return fs_done(res, false, ret_content, ret_is_error);
}

/* ---- fs.stat ---- */

static int
fs_stat_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	     bool *ret_is_error)
{
	json_error_t jerr;
	const char *path;
	struct fs_path p __attribute__((cleanup(fs_path_done))) = {.rootfd = -1};
	json_t *content = NULL;
	struct stat st;
	int r;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s}", "path", &path) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	r = fs_resolve(ctx, path, &p, &content);
	if (r != 0)
		return r < 0 ? r : fs_done(content, true, ret_content, ret_is_error);
	cleanup_close int fd = fs_openat2(p.rootfd, p.rel, O_PATH, 0);
	if (fd < 0)
		return fs_fail(fd, &p, ret_content, ret_is_error);
	if (fstat(fd, &st) < 0)
		return fs_fail(errno, &p, ret_content, ret_is_error);
	json_int_t mtime_ms = (json_int_t)st.st_mtim.tv_sec * 1000 + st.st_mtim.tv_nsec / 1000000;
	return fs_done(json_pack("{s:s,s:s,s:I,s:I,s:I}", "path", p.abs, "type",
				 fs_type(st.st_mode), "size", (json_int_t)st.st_size, "mode",
				 (json_int_t)(st.st_mode & 07777), "mtime_ms", mtime_ms),
		       false, ret_content, ret_is_error);
}

/* ---- fs.delete ---- */

static enum tool_class
fs_class_idempotent(const json_t *args)
{
	return TOOL_IDEMPOTENT;
}

static int
fs_delete_call(const struct tool_ctx *ctx, const json_t *args, json_t **ret_content,
	       bool *ret_is_error)
{
	json_error_t jerr;
	const char *path;
	struct fs_path p __attribute__((cleanup(fs_path_done))) = {.rootfd = -1};
	json_t *content = NULL;
	struct stat st;
	int r;

	if (json_unpack_ex((json_t *)args, &jerr, JSON_STRICT, "{s:s}", "path", &path) < 0)
		return tools_bad_args(&jerr, ret_content, ret_is_error);
	r = fs_resolve(ctx, path, &p, &content);
	if (r != 0)
		return r < 0 ? r : fs_done(content, true, ret_content, ret_is_error);
	if (!p.name)
		return fs_fail(EISDIR, &p, ret_content, ret_is_error);
	cleanup_close int dfd = fs_openat2(p.rootfd, p.parent, O_PATH | O_DIRECTORY, 0);
	if (dfd < 0)
		return fs_fail(dfd, &p, ret_content, ret_is_error);
	/* The last component itself is removed, never what a symlink points to. */
	if (fstatat(dfd, p.name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return fs_fail(errno, &p, ret_content, ret_is_error);
	if (S_ISDIR(st.st_mode))
		return fs_fail(EISDIR, &p, ret_content, ret_is_error);
	if (unlinkat(dfd, p.name, 0) < 0)
		return fs_fail(errno, &p, ret_content, ret_is_error);
	return fs_done(json_pack("{s:s,s:b}", "path", p.abs, "deleted", 1), false, ret_content,
		       ret_is_error);
}

/* ---- definitions ---- */

const struct tool_def tools_fs_read = {
    .name = "fs.read",
    .description = "Read a file (UTF-8 text, or base64 when the data is not UTF-8). Reads at "
		   "most 4 MiB per call; use offset/length to page.",
    .input_schema =
	"{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
	"\"offset\":{\"type\":\"integer\",\"minimum\":0},\"length\":{\"type\":\"integer\","
	"\"minimum\":0}},\"required\":[\"path\"],\"additionalProperties\":false}",
    .classify = fs_class_pure,
    .call = fs_read_call,
};

const struct tool_def tools_fs_write = {
    .name = "fs.write",
    .description = "Write a file: replace its content atomically, or append to it.",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"},"
		    "\"content\":{\"type\":\"string\"},\"append\":{\"type\":\"boolean\"}},"
		    "\"required\":[\"path\",\"content\"],\"additionalProperties\":false}",
    .classify = fs_write_class,
    .call = fs_write_call,
};

const struct tool_def tools_fs_list = {
    .name = "fs.list",
    .description = "List a directory: entries sorted by name (at most 10000).",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},"
		    "\"required\":[\"path\"],\"additionalProperties\":false}",
    .classify = fs_class_pure,
    .call = fs_list_call,
};

const struct tool_def tools_fs_stat = {
    .name = "fs.stat",
    .description = "Type, size, permission bits and modification time of a path.",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},"
		    "\"required\":[\"path\"],\"additionalProperties\":false}",
    .classify = fs_class_pure,
    .call = fs_stat_call,
};

const struct tool_def tools_fs_delete = {
    .name = "fs.delete",
    .description = "Delete a file (not a directory).",
    .input_schema = "{\"type\":\"object\",\"properties\":{\"path\":{\"type\":\"string\"}},"
		    "\"required\":[\"path\"],\"additionalProperties\":false}",
    .classify = fs_class_idempotent,
    .call = fs_delete_call,
};
