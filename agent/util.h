/* util.h - allocation wrappers, checked number parsing, time helpers. */
#ifndef SPOT_UTIL_H
#define SPOT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <time.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_INFINITY UINT64_MAX

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* The x* family aborts on allocation failure: under systemd we are restarted,
 * and an agent that limps on without memory helps nobody. */
void *xmalloc(size_t size);
void *xcalloc(size_t n, size_t size);
void *xrealloc(void *p, size_t size);
char *xstrdup(const char *s);
char *xstrndup(const char *s, size_t n);
char *xasprintf(const char *fmt, ...) _printf_(1, 2);
char *xvasprintf(const char *fmt, va_list ap) _printf_(1, 0);

/* Frees *p and sets it to NULL. */
void freep_str(char **p);

/* Parses a base-10 unsigned integer in [min, max]. Rejects signs, spaces,
 * trailing garbage and overflow. Returns 0 or -EINVAL/-ERANGE. */
int parse_uint64(const char *s, uint64_t min, uint64_t max, uint64_t *ret);

/* Parses yes/no/true/false/on/off/1/0. Returns 0 or -EINVAL. */
int parse_bool(const char *s, bool *ret);

/* Copies src into dst of size n, always NUL-terminated; returns -ENAMETOOLONG
 * when truncated (dst still holds the truncated prefix). */
int strscpy(char *dst, size_t n, const char *src);

/* Current time in microseconds. */
uint64_t now_usec(clockid_t clock);

/* Converts a CLOCK_MONOTONIC time to wall-clock time (and back), using the
 * current offset between the two clocks. */
uint64_t mono_to_wall_usec(uint64_t mono_usec);
uint64_t wall_to_mono_usec(uint64_t wall_usec);

/* Formats a wall-clock time as RFC 3339 UTC with second precision
 * ("2026-11-27T06:31:00Z") into buf (at least 21 bytes). Empty for 0. */
char *format_rfc3339(char *buf, size_t n, uint64_t wall_usec);
/* The same with digits (0 to 6) of the second's fraction, cut, not
 * rounded; RFC3339_FRAC_TRIM: the microseconds without trailing zeros
 * (none for a whole second). 0 is 1970-01-01T00:00:00Z here. Empty when
 * buf is too small. */
#define RFC3339_FRAC_TRIM (-1)
char *format_rfc3339_frac(char *buf, size_t n, uint64_t wall_usec, int digits);
#define RFC3339_MAX 32

/* The first 8 hex digits of this boot's id (lower case), "" when unknown:
 * it tells one boot from the next, and stays across restarts of the agent
 * within one boot. Read once; the string is static. */
const char *boot_id_tag(void);

/* FNV-1a over n bytes, continuing from h (start with HASH_FNV_INIT): a
 * cheap signature, not for anything an adversary controls. */
#define HASH_FNV_INIT UINT64_C(14695981039346656037)
uint64_t hash_fnv(uint64_t h, const void *p, size_t n);

/* Returns true when s ends with suffix. */
bool str_endswith(const char *s, const char *suffix);

/* Writes all of buf to fd, retrying on EINTR/short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
/* The same at offset, with pwrite. */
int pwrite_all(int fd, const void *buf, size_t n, off_t offset);

#endif
