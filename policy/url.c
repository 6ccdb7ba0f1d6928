/* A small, strict URL parser for http/https: just enough to decide which host a
 * request goes to, the way the HTTP client will see it. Anything unusual is an
 * error, so matchers fail closed rather than guess. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "common/util.h"
#include "policy/policy_int.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static char
lower(char c)
{
	return (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
}

/* One part of an IPv4 number in inet_aton syntax: decimal, 0x hex or 0 octal.
 * Returns 0 and the value, or -EINVAL (empty, bad digit, over 32 bits). */
static int
ipv4_part(const char *s, size_t len, uint64_t *ret)
{
	uint64_t v = 0;
	unsigned base = 10;
	size_t i = 0;

	if (len == 0)
		return -EINVAL;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		base = 16;
		i = 2;
	} else if (len >= 2 && s[0] == '0') {
		base = 8;
		i = 1;
	}
	for (; i < len; i++) {
		unsigned d;
		char c = lower(s[i]);
		if (is_digit(c))
			d = (unsigned)(c - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (unsigned)(c - 'a' + 10);
		else
			return -EINVAL;
		if (d >= base)
			return -EINVAL;
		v = v * base + d;
		if (v > 0xffffffffu)
			return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* A label is "numeric" (so the host must be an IPv4 number) the way the WHATWG URL
 * standard decides it: all decimal digits, or 0x followed by hex digits. */
static bool
label_numeric(const char *s, size_t len)
{
	size_t i = 0;

	if (len == 0)
		return false;
	if (len >= 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		for (i = 2; i < len; i++)
			if (!is_hex(s[i]))
				return false;
		return true;
	}
	for (; i < len; i++)
		if (!is_digit(s[i]))
			return false;
	return true;
}

int
purl_host_ip(const char *host, size_t len, struct pip *ret_ip, char *out, size_t outsz)
{
	char tmp[PHOST_MAX_LEN + 3];

	if (len == 0 || len > PHOST_MAX_LEN + 2)
		return -EINVAL;
	if (host[0] == '[' || memchr(host, ':', len)) {
		struct in6_addr a6;
		char txt[INET6_ADDRSTRLEN];
		size_t off = 0, n = len;
		if (host[0] == '[') {
			if (len < 3 || host[len - 1] != ']')
				return -EINVAL;
			off = 1;
			n = len - 2;
		}
		memcpy(tmp, host + off, n);
		tmp[n] = '\0';
		/* zone ids and anything inet_pton rejects make the host invalid */
		if (inet_pton(AF_INET6, tmp, &a6) != 1)
			return -EINVAL;
		if (IN6_IS_ADDR_V4MAPPED(&a6)) {
			/* [::ffff:127.0.0.1] reaches 127.0.0.1: one address, one name */
			const uint8_t *b = a6.s6_addr + 12;
			if (ret_ip) {
				ret_ip->fam = 4;
				memcpy(ret_ip->b, b, 4);
			}
			if ((size_t)snprintf(out, outsz, "%u.%u.%u.%u", b[0], b[1], b[2], b[3]) >=
			    outsz)
				return -EINVAL;
			return 1;
		}
		if (!inet_ntop(AF_INET6, &a6, txt, sizeof(txt)))
			return -EINVAL;
		if ((size_t)snprintf(out, outsz, "[%s]", txt) >= outsz)
			return -EINVAL;
		if (ret_ip) {
			ret_ip->fam = 6;
			memcpy(ret_ip->b, a6.s6_addr, 16);
		}
		return 1;
	}
	/* last label decides; a trailing dot was already stripped by the caller */
	const char *last = host;
	for (size_t i = 0; i < len; i++)
		if (host[i] == '.')
			last = host + i + 1;
	if (!label_numeric(last, len - (size_t)(last - host)))
		return 0;

	uint64_t parts[4];
	size_t np = 0, start = 0;
	for (size_t i = 0; i <= len; i++) {
		if (i < len && host[i] != '.')
			continue;
		if (np == 4)
			return -EINVAL;
		if (ipv4_part(host + start, i - start, &parts[np]) < 0)
			return -EINVAL;
		np++;
		start = i + 1;
	}
	uint64_t v = 0;
	for (size_t i = 0; i + 1 < np; i++) {
		if (parts[i] > 255)
			return -EINVAL;
		v |= parts[i] << (8 * (3 - i));
	}
	/* the last part fills all remaining bytes: 127.1 is 127.0.0.1 */
	if (parts[np - 1] >= ((uint64_t)1 << (8 * (5 - np))))
		return -EINVAL;
	v |= parts[np - 1];
	if (ret_ip) {
		ret_ip->fam = 4;
		for (int k = 0; k < 4; k++)
			ret_ip->b[k] = (uint8_t)(v >> (8 * (3 - k)));
	}
	if ((size_t)snprintf(out, outsz, "%u.%u.%u.%u", (unsigned)(v >> 24) & 255,
			     (unsigned)(v >> 16) & 255, (unsigned)(v >> 8) & 255,
			     (unsigned)v & 255) >= outsz)
		return -EINVAL;
	return 1;
}

/* Append to the normalised URL, failing when it would not fit. */
static int
put(struct purl *u, size_t *n, const char *s, size_t len)
{
	if (*n + len > PURL_MAX_LEN)
		return -EINVAL;
	memcpy(u->norm + *n, s, len);
	*n += len;
	u->norm[*n] = '\0';
	return 0;
}

/* Remove dot segments from an absolute path in place, the way RFC 3986 (and curl)
 * does before the request is sent. */
static size_t
remove_dots(char *p, size_t len)
{
	size_t out = 0, i = 0;

	while (i < len) {
		/* p[i] == '/' always here */
		size_t j = i + 1;
		while (j < len && p[j] != '/')
			j++;
		size_t seg = j - i - 1;
		bool last = j == len;
		if (seg == 1 && p[i + 1] == '.') {
			if (last)
				p[out++] = '/';
		} else if (seg == 2 && p[i + 1] == '.' && p[i + 2] == '.') {
			while (out > 0 && p[out - 1] != '/')
				out--;
			if (out > 0)
				out--;
			if (last)
				p[out++] = '/';
		} else {
			memmove(p + out, p + i, j - i);
			out += j - i;
		}
		i = j;
	}
	if (out == 0)
		p[out++] = '/';
	return out;
}

int
purl_parse(const char *url, size_t len, struct purl *ret)
{
	/* the matcher state is large; parse in place rather than copy 8 KiB */
	struct purl *const up = ret;
	size_t i, n = 0;

	up->https = up->userinfo = up->is_ip = false;
	up->port = 0;
	up->host[0] = up->norm[0] = '\0';
	char path[PURL_MAX_LEN + 1];

	if (len == 0 || len > PURL_MAX_LEN)
		return -EINVAL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)url[i];
		/* controls, spaces, backslashes and non-ASCII are where parsers disagree */
		if (c <= 0x20 || c >= 0x7f || c == '\\')
			return -EINVAL;
	}
	if (len >= 7 && strncasecmp(url, "http://", 7) == 0) {
		i = 7;
	} else if (len >= 8 && strncasecmp(url, "https://", 8) == 0) {
		up->https = true;
		i = 8;
	} else {
		return -EINVAL;
	}
	size_t auth = i;
	while (i < len && url[i] != '/' && url[i] != '?' && url[i] != '#')
		i++;
	size_t auth_end = i;
	if (memchr(url + auth, '@', auth_end - auth))
		up->userinfo = true;
	/* host[:port] after any userinfo (kept so a denial can still name the host) */
	size_t h = auth;
	for (size_t k = auth; k < auth_end; k++)
		if (url[k] == '@')
			h = k + 1;
	size_t hend = auth_end, pstart = auth_end;
	if (h < auth_end && url[h] == '[') {
		const char *rb = memchr(url + h, ']', auth_end - h);
		if (!rb)
			return -EINVAL;
		hend = (size_t)(rb - url) + 1;
		pstart = hend;
	} else {
		const char *colon = memchr(url + h, ':', auth_end - h);
		if (colon)
			hend = pstart = (size_t)(colon - url);
	}
	if (pstart < auth_end) {
		if (url[pstart] != ':')
			return -EINVAL;
		unsigned long port = 0;
		size_t k = pstart + 1;
		if (auth_end - k > 5)
			return -EINVAL;
		for (; k < auth_end; k++) {
			if (!is_digit(url[k]))
				return -EINVAL;
			port = port * 10 + (unsigned long)(url[k] - '0');
		}
		if (port > 65535)
			return -EINVAL;
		up->port = (unsigned)port;
	}
	if (up->port == (up->https ? 443u : 80u))
		up->port = 0;

	size_t hlen = hend - h;
	char host[PHOST_MAX_LEN + 3];
	if (hlen > 0 && url[h] != '[' && url[hend - 1] == '.')
		hlen--;
	if (hlen == 0 || hlen > PHOST_MAX_LEN + 2)
		return -EINVAL;
	for (size_t k = 0; k < hlen; k++)
		host[k] = lower(url[h + k]);
	host[hlen] = '\0';
	int r = purl_host_ip(host, hlen, &up->ip, up->host, sizeof(up->host));
	if (r < 0)
		return r;
	if (r == 1) {
		up->is_ip = true;
	} else {
		if (hlen > PHOST_MAX_LEN)
			return -EINVAL;
		for (size_t k = 0; k < hlen; k++) {
			char c = host[k];
			bool ok = (c >= 'a' && c <= 'z') || is_digit(c) || c == '-' || c == '_' ||
				  c == '.';
			if (!ok || (c == '.' && (k == 0 || host[k - 1] == '.')))
				return -EINVAL;
		}
		memcpy(up->host, host, hlen + 1);
	}

	/* path and query; the fragment never reaches the server */
	size_t frag = len;
	const char *hash = memchr(url + auth_end, '#', len - auth_end);
	if (hash)
		frag = (size_t)(hash - url);
	size_t q = frag;
	const char *qm = memchr(url + auth_end, '?', frag - auth_end);
	if (qm)
		q = (size_t)(qm - url);
	size_t plen = q - auth_end;
	if (plen == 0) {
		path[0] = '/';
		plen = 1;
	} else {
		memcpy(path, url + auth_end, plen);
	}
	/* encoded dots and slashes would let a server see a different path */
	for (size_t k = 0; k + 2 < plen; k++) {
		if (path[k] != '%')
			continue;
		char a = path[k + 1], b = lower(path[k + 2]);
		if (!is_hex(a) || !is_hex(b))
			return -EINVAL;
		if (a == '2' && (b == 'e' || b == 'f'))
			return -EINVAL;
		if (a == '5' && b == 'c')
			return -EINVAL;
	}
	if (plen >= 1 && path[plen - 1] == '%')
		return -EINVAL;
	if (plen >= 2 && path[plen - 2] == '%')
		return -EINVAL;
	plen = remove_dots(path, plen);

	char portbuf[8];
	if (put(up, &n, up->https ? "https://" : "http://", up->https ? 8 : 7) < 0 ||
	    put(up, &n, up->host, strlen(up->host)) < 0)
		return -EINVAL;
	if (up->port) {
		int pl = snprintf(portbuf, sizeof(portbuf), ":%u", up->port);
		if (put(up, &n, portbuf, (size_t)pl) < 0)
			return -EINVAL;
	}
	if (put(up, &n, path, plen) < 0 || put(up, &n, url + q, frag - q) < 0)
		return -EINVAL;
	return 0;
}

int
pcidr_parse(const char *s, struct pcidr *ret)
{
	char addr[PHOST_MAX_LEN + 3], canon[PHOST_MAX_LEN + 3], buf[PHOST_MAX_LEN + 8];
	struct pip ip;
	const char *slash = strrchr(s, '/');
	unsigned long plen = 0;

	if (!slash || slash == s || (size_t)(slash - s) >= sizeof(addr) || !slash[1] ||
	    strlen(slash + 1) > 3)
		return -EINVAL;
	for (const char *q = slash + 1; *q; q++) {
		if (!is_digit(*q))
			return -EINVAL;
		plen = plen * 10 + (unsigned long)(*q - '0');
	}
	size_t n = (size_t)(slash - s);
	for (size_t i = 0; i < n; i++)
		addr[i] = lower(s[i]);
	addr[n] = '\0';
	if (purl_host_ip(addr, n, &ip, canon, sizeof(canon)) != 1)
		return -EINVAL;
	/* "[::ffff:a.b.c.d]/N" would need its length rebased: write the IPv4 block */
	if (ip.fam == 4 && (addr[0] == '[' || strchr(addr, ':')))
		return -EINVAL;
	if (plen > (ip.fam == 4 ? 32u : 128u))
		return -EINVAL;
	/* keep the network part only, so equal blocks compare equal as text */
	for (unsigned k = 0; k < 16; k++) {
		unsigned bit0 = k * 8;
		if (bit0 >= plen)
			ip.b[k] = 0;
		else if (bit0 + 8 > plen)
			ip.b[k] &= (uint8_t)(0xff << (8 - (plen - bit0)));
	}
	if (ip.fam == 4) {
		snprintf(buf, sizeof(buf), "%u.%u.%u.%u/%lu", ip.b[0], ip.b[1], ip.b[2], ip.b[3],
			 plen);
	} else {
		char txt[INET6_ADDRSTRLEN];
		if (!inet_ntop(AF_INET6, ip.b, txt, sizeof(txt)))
			return -EINVAL;
		snprintf(buf, sizeof(buf), "[%s]/%lu", txt, plen);
	}
	ret->src = strdup(buf);
	if (!ret->src)
		return -ENOMEM;
	ret->net = ip;
	ret->plen = (uint8_t)plen;
	return 0;
}

bool
pcidr_contains(const struct pcidr *c, const struct pip *ip)
{
	unsigned full = c->plen / 8, rest = c->plen % 8;

	if (c->net.fam != ip->fam)
		return false;
	if (memcmp(c->net.b, ip->b, full) != 0)
		return false;
	if (rest == 0)
		return true;
	uint8_t mask = (uint8_t)(0xff << (8 - rest));
	return (c->net.b[full] & mask) == (ip->b[full] & mask);
}
