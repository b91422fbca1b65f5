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

