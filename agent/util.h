/* util.h - the process's edge helpers: clocks, RFC 3339 formatting, the
 * boot id, whole writes; and, through engine/base.h, what every layer uses. */
#ifndef SPOT_UTIL_H
#define SPOT_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>
#include <time.h>

#include "engine/base.h"

/* Current time in microseconds. */
uint64_t now_usec(clockid_t clock);

/* Converts a CLOCK_MONOTONIC time to wall-clock time (and back), using the
 * current offset between the two clocks. */
uint64_t mono_to_wall_usec(uint64_t mono_usec);
uint64_t wall_to_mono_usec(uint64_t wall_usec);


/* The first 8 hex digits of this boot's id (lower case), "" when unknown:
 * it tells one boot from the next, and stays across restarts of the agent
 * within one boot. Read once; the string is static. */
const char *boot_id_tag(void);

/* Writes all of buf to fd, retrying on EINTR/short writes. 0 or -errno. */
int write_all(int fd, const void *buf, size_t n);
/* The same at offset, with pwrite. */
int pwrite_all(int fd, const void *buf, size_t n, off_t offset);

#endif
