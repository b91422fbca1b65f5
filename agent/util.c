/* util.c - small helpers shared by every module: allocation that aborts on
 * out-of-memory, strict number parsing and the monotonic/wall clock edge.
 * Nothing here logs or touches global state. */
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void oom(void)
{
	static const char msg[] = "spot-agent: out of memory\n";

	(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t size)
{
	void *q = realloc(p, size ? size : 1);

	if (!q)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom();
	return p;
}

char *xstrndup(const char *s, size_t n)
{
	char *p = strndup(s, n);

	if (!p)
		oom();
	return p;
}

char *xvasprintf(const char *fmt, va_list ap)
{
	char *p;

	if (vasprintf(&p, fmt, ap) < 0)
		oom();
	return p;
}

char *xasprintf(const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	p = xvasprintf(fmt, ap);
	va_end(ap);
	return p;
}

void freep_str(char **p)
{
	free(*p);
	*p = NULL;
}

int parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *ret)
{
	unsigned long long v;
	char *end;

	if (!s || !isdigit((unsigned char)s[0]))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno == ERANGE)
		return -ERANGE;
	if (errno != 0 || *end != '\0')
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*ret = v;
	return 0;
}

int parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };

	for (size_t i = 0; i < ELEMENTSOF(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	return -EINVAL;
}

int strscpy(char *dst, size_t n, const char *src)
{
	size_t len = strlen(src);

	if (n == 0)
		return -ENAMETOOLONG;
	if (len >= n) {
		memcpy(dst, src, n - 1);
		dst[n - 1] = '\0';
		return -ENAMETOOLONG;
	}
	memcpy(dst, src, len + 1);
	return 0;
}

uint64_t now_usec(clockid_t clock)
{
	struct timespec ts;

	if (clock_gettime(clock, &ts) < 0)
		abort(); /* cannot fail with a valid clock id */
	return (uint64_t)ts.tv_sec * USEC_PER_SEC + (uint64_t)ts.tv_nsec / NSEC_PER_USEC;
}

uint64_t mono_to_wall_usec(uint64_t mono_usec)
{
	uint64_t mono = now_usec(CLOCK_MONOTONIC), wall = now_usec(CLOCK_REALTIME);

	if (mono_usec >= mono)
		return wall + (mono_usec - mono);
	if (mono - mono_usec > wall)
		return 0;
	return wall - (mono - mono_usec);
}

uint64_t wall_to_mono_usec(uint64_t wall_usec)
{
	uint64_t mono = now_usec(CLOCK_MONOTONIC), wall = now_usec(CLOCK_REALTIME);

	if (wall_usec >= wall)
		return mono + (wall_usec - wall);
	if (wall - wall_usec > mono)
		return 0;
	return mono - (wall - wall_usec);
}

char *format_rfc3339_frac(char *buf, size_t n, uint64_t wall_usec, int digits)
{
	time_t t = (time_t)(wall_usec / USEC_PER_SEC);
	unsigned frac = (unsigned)(wall_usec % USEC_PER_SEC);
	char fraction[16] = "";
	struct tm tm;
	int k;

	if (n == 0)
		return buf;
	buf[0] = '\0';
	if (!gmtime_r(&t, &tm))
		return buf;
	if (digits == RFC3339_FRAC_TRIM) {
		for (digits = frac ? 6 : 0; frac && frac % 10 == 0; digits--)
			frac /= 10;
	} else {
		if (digits > 6)
			digits = 6;
		for (int i = digits; i < 6; i++)
			frac /= 10;   /* cut, not rounded */
	}
	if (digits > 0)
		(void)snprintf(fraction, sizeof(fraction), ".%0*u", digits & 7, frac % 1000000);
	k = snprintf(buf, n, "%04d-%02d-%02dT%02d:%02d:%02d%sZ", tm.tm_year + 1900, tm.tm_mon + 1,
		     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, fraction);
	if (k < 0 || (size_t)k >= n)
		buf[0] = '\0';
	return buf;
}

char *format_rfc3339(char *buf, size_t n, uint64_t wall_usec)
{
	if (wall_usec == 0) {
		if (n > 0)
			buf[0] = '\0';
		return buf;
	}
	return format_rfc3339_frac(buf, n, wall_usec, 0);
}

bool str_endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
}

int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = write(fd, p, n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
	}
	return 0;
}

int pwrite_all(int fd, const void *buf, size_t n, off_t offset)
{
	const char *p = buf;

	while (n > 0) {
		ssize_t k = pwrite(fd, p, n, offset);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += k;
		n -= (size_t)k;
		offset += k;
	}
	return 0;
}

/* The kernel's boot id, first 8 hex digits, lower case: read once. */
const char *boot_id_tag(void)
{
	static char tag[9];
	static bool done;
	char buf[64];
	ssize_t n;
	int fd;

	if (done)
		return tag;
	done = true;
	fd = open("/proc/sys/kernel/random/boot_id", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return tag;
	n = read(fd, buf, sizeof(buf) - 1);
	(void)close(fd);
	for (ssize_t i = 0, j = 0; i < n && j < 8; i++) {
		char c = buf[i];

		if (c >= 'A' && c <= 'F')
			c = (char)(c - 'A' + 'a');
		if ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))
			tag[j++] = c;
	}
	return tag;
}

uint64_t hash_fnv(uint64_t h, const void *p, size_t n)
{
	const unsigned char *b = p;

	for (size_t i = 0; i < n; i++) {
		h ^= b[i];
		h *= UINT64_C(1099511628211);
	}
	return h;
}
