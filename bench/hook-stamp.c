/* hook-stamp.c - a hook for make bench: the first thing it does is read
 * CLOCK_REALTIME and append "<SPOT_EVENT_ID> <nanoseconds>" to the file
 * named at build time, so that the bench sees when the agent's exec of a
 * hook took effect, on the child's side. bench/bench.py builds it (static,
 * when the C library allows) into its temporary directory; it is never
 * installed and must never read its stdin or block. */
#define _POSIX_C_SOURCE 200809L

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#ifndef STAMP_PATH
#error "build with -DSTAMP_PATH='\"/path/to/stamps\"'"
#endif

int main(void)
{
	struct timespec ts;
	const char *id;
	char line[256];
	int fd, n;

	/* Before anything else: the clock is the figure. */
	if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
		return 1;
	id = getenv("SPOT_EVENT_ID");
	n = snprintf(line, sizeof(line), "%s %lld%09ld\n", id ? id : "-", (long long)ts.tv_sec,
		     (long)ts.tv_nsec);
	if (n < 0 || (size_t)n >= sizeof(line))
		return 1;
	fd = open(STAMP_PATH, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return 1;
	/* One write with O_APPEND: a line is never split, whoever else appends. */
	if (write(fd, line, (size_t)n) != n) {
		(void)close(fd);
		return 1;
	}
	return close(fd) < 0 ? 1 : 0;
}
