/* base.c - what every layer may use, the engine included: allocation that
 * aborts when memory runs out, bounded string copies, strict number
 * parsing, UTF-8 checks, a cheap hash. Pure: libc only, no I/O, no clock,
 * no global state. */
#include "engine/base.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Out of memory: systemd sees the SIGABRT, logs it and restarts the
 * agent, which is all that can usefully happen. No message: this layer
 * does no I/O. */
static void oom(void)
{
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

bool str_endswith(const char *s, const char *suffix)
{
	size_t ls = strlen(s), lx = strlen(suffix);

	return ls >= lx && memcmp(s + ls - lx, suffix, lx) == 0;
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

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. Reads
 * no further than the first byte that breaks the sequence (a NUL does). */
static size_t utf8_sequence(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else
		return 0;

	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

bool utf8_valid(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		size_t n = utf8_sequence(p);

		if (n == 0)
			return false;
		p += n;
	}
	return true;
}

size_t utf8_copy(char *dst, size_t n, const char *src)
{
	static const char replacement[] = "\xef\xbf\xbd";   /* U+FFFD */
	const unsigned char *p = (const unsigned char *)src;
	size_t len = 0;

	while (*p) {
		size_t k = utf8_sequence(p);
		size_t take = k ? k : sizeof(replacement) - 1;

		if (len + take > n - 1)
			break;
		memcpy(dst + len, k ? (const void *)p : (const void *)replacement, take);
		len += take;
		p += k ? k : 1;
	}
	dst[len] = '\0';
	return len;
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
