/* Small shared helpers: cleanup attributes, ownership hand-off, array size. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define _cleanup_(f)  __attribute__((cleanup(f)))

static inline void
agd_freep(void *p)
{
	free(*(void **)p);
}

static inline void
agd_closep(int *fd)
{
	if (*fd >= 0) {
		int saved = errno;
		close(*fd);
		errno = saved;
	}
}

#define cleanup_free  _cleanup_(agd_freep)
#define cleanup_close _cleanup_(agd_closep)

/* Hand ownership of a pointer out of a cleanup variable. */
#define steal_ptr(pp)                                                                              \
	({                                                                                         \
		__typeof__(*(pp)) _p = *(pp);                                                      \
		*(pp) = NULL;                                                                      \
		_p;                                                                                \
	})

/* Hand ownership of an fd out of a cleanup variable. */
static inline int
take_fd(int *fd)
{
	int r = *fd;
	*fd = -1;
	return r;
}

/* Write all of buf, retrying on EINTR and short writes. Returns 0 or -errno. */
int agd_write_all(int fd, const void *buf, size_t len);

/* Read a whole file (at most max bytes) into a NUL-terminated buffer.
 * On success *ret_buf is owned by the caller. Returns 0, -EFBIG or -errno. */
int agd_read_file(const char *path, size_t max, char **ret_buf, size_t *ret_len);

/* mkdir -p with the given mode. Returns 0 or -errno. */
int agd_mkdir_p(const char *path, mode_t mode);

/* Monotonic time in nanoseconds; wall-clock time in milliseconds since the epoch. */
int64_t agd_now_ns(void);
int64_t agd_wall_ms(void);

/* Printf into a freshly allocated string; NULL on allocation failure. */
char *agd_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
