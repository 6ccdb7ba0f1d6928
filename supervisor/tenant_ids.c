/* Root mode: each tenant's runs use their own unprivileged uid/gid, taken
 * from a configured range and never shared with another tenant. The
 * assignment is recorded in <state>/tenant-ids ("name id" lines, appended
 * under an exclusive lock) so it is stable across runs, resumes and restarts
 * of agentd; an id some host account already uses is skipped. */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <grp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "common/util.h"
#include "supervisor/tenant_ids.h"

#define TENANT_FILE_MAX (4u << 20) /* 4 MiB of "name id" lines */

static bool
valid_tenant(const char *t)
{
	size_t n = strlen(t);

	if (n == 0 || n > 64 || t[0] == '.' || t[0] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(t[i] >= 'a' && t[i] <= 'z') && !(t[i] >= 'A' && t[i] <= 'Z') &&
		    !(t[i] >= '0' && t[i] <= '9') && !strchr("._-", t[i]))
			return false;
	return true;
}

int
sup_tenant_id(const char *state_dir, const char *tenant, uint32_t base, uint32_t count,
	      uid_t *ret_id)
{
	char path[4096], buf[256];
	cleanup_close int fd = -1;
	cleanup_free char *text = NULL;
	size_t len = 0, cap = 0;
	uint64_t next = base;

	if (!state_dir || !tenant || !ret_id || !valid_tenant(tenant) || base == 0 || count == 0 ||
	    (uint64_t)base + count > 0xfffffffeu)
		return -EINVAL;
	if ((size_t)snprintf(path, sizeof(path), "%s/tenant-ids", state_dir) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX) < 0)
		return -errno;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof(buf), (off_t)len);
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		if (len + (size_t)n > TENANT_FILE_MAX)
			return -EFBIG;
		if (len + (size_t)n + 1 > cap) {
			cap = (len + (size_t)n + 1) * 2;
			char *t = realloc(text, cap);
			if (!t)
				return -ENOMEM;
			text = t;
		}
		memcpy(text + len, buf, (size_t)n);
		len += (size_t)n;
	}
	/* The file is ours, but read it like any stored input: strictly. */
	for (char *line = text, *end; line && line < text + len; line = end + 1) {
		end = memchr(line, '\n', (size_t)(text + len - line));
		if (!end)
			return -EBADMSG; /* a torn last line: refuse rather than guess */
		*end = '\0';
		char name[65];
		unsigned long id;
		int used = 0;
		if (sscanf(line, "%64s %lu%n", name, &id, &used) != 2 || line[used] != '\0' ||
		    !valid_tenant(name))
			return -EBADMSG;
		if (strcmp(name, tenant) == 0) {
			if (id < base || id >= (uint64_t)base + count)
				return -ERANGE; /* the range was changed under existing tenants */
			*ret_id = (uid_t)id;
			return 0;
		}
		if (id >= next)
			next = id + 1;
	}
	/* Never an id a host account or group has: files it owns are not ours. */
	while (next < (uint64_t)base + count && (getpwuid((uid_t)next) || getgrgid((gid_t)next)))
		next++;
	if (next >= (uint64_t)base + count)
		return -ENOSPC;
	int k = snprintf(buf, sizeof(buf), "%s %llu\n", tenant, (unsigned long long)next);
	if (write(fd, buf, (size_t)k) != k)
		return errno ? -errno : -EIO;
	if (fsync(fd) < 0)
		return -errno;
	*ret_id = (uid_t)next;
	return 0;
}
