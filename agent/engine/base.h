/* base.h - what every layer may use, the engine included: time units,
 * allocation that aborts on out-of-memory, bounded copies, strict number
 * parsing, UTF-8 text, a cheap hash, and the bounds of the integers and
 * instants the agent's documents carry exactly. libc only. */
#ifndef SPOT_ENGINE_BASE_H
#define SPOT_ENGINE_BASE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define USEC_PER_SEC  UINT64_C(1000000)
#define USEC_PER_MSEC UINT64_C(1000)
#define NSEC_PER_USEC UINT64_C(1000)
#define USEC_INFINITY UINT64_MAX

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* Every integer the agent writes lies within +-(2^53 - 1) (RFC 7493), so a
 * reader that holds numbers as doubles, cJSON included, gets it exactly. */
#define JSON_INT_MAX INT64_C(9007199254740991)

/* Instants are microseconds since the epoch, before 2200-01-01T00:00:00Z;
 * 2^53 microseconds would be reached in 2255. Writers clamp to this range,
 * readers refuse what lies outside it, and the parsers of the metadata
 * services' times (event_parse_time) refuse it at the door. 0 is "none". */
#define JSON_TIME_END_SEC  INT64_C(7258118400)     /* 2200-01-01T00:00:00Z */
#define JSON_TIME_MAX_USEC ((uint64_t)JSON_TIME_END_SEC * UINT64_C(1000000) - 1)

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

/* Returns true when s ends with suffix. */
bool str_endswith(const char *s, const char *suffix);

/* FNV-1a over n bytes, continuing from h (start with HASH_FNV_INIT): a
 * cheap signature, not for anything an adversary controls. */
#define HASH_FNV_INIT UINT64_C(14695981039346656037)
uint64_t hash_fnv(uint64_t h, const void *p, size_t n);

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

/* True when s is valid UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF). */
bool utf8_valid(const char *s);

/* Copies src into dst (size n >= 1) with every byte that is not part of a
 * valid UTF-8 sequence replaced by U+FFFD, cut at a character boundary so
 * that it fits. Returns the length written. */
size_t utf8_copy(char *dst, size_t n, const char *src);

#endif
