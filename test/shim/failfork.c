/* failfork.c - an LD_PRELOAD shim that makes fork() and clone() fail with
 * EAGAIN, so a test can see what the agent does when it cannot start a
 * hook (the agent starts its hooks with clone(CLONE_VM | CLONE_VFORK)).
 *
 * While the file named by the environment variable SPOT_FAILFORK_FILE
 * exists, fork() and clone() fail with EAGAIN and create no process:
 * - if the file holds a number N > 0, only the next N forks fail: each
 *   failure writes N - 1 back, and the one that reaches 0 removes the file,
 *   so later forks work again;
 * - anything else (empty, 0, not a number) fails every fork until the test
 *   removes the file.
 * Without the variable, or without the file, they are the real ones
 * (dlsym(RTLD_NEXT)). Only the exported fork() and clone() are wrapped,
 * not what glibc calls inside (pthread_create, posix_spawn). Not
 * thread-safe across concurrent calls, which tests do not make.
 *
 * Build (the Makefile is not involved):
 *   cc -shared -fPIC -o build/test/failfork.so test/shim/failfork.c -ldl
 * Use:
 *   echo 1 > /tmp/ff; SPOT_FAILFORK_FILE=/tmp/ff LD_PRELOAD=$PWD/build/test/failfork.so prog
 * Under AddressSanitizer add ASAN_OPTIONS=verify_asan_link_order=0, since
 * the shim then comes before the sanitizer's runtime. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

pid_t fork(void);

/* The count in the file, or -1 for "fail always"; 0 when there is no file. */
static long failures_left(const char *path)
{
	char buf[32];
	char *end;
	ssize_t k;
	long n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return -1;
	buf[k] = '\0';
	errno = 0;
	n = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || (*end != '\0' && *end != '\n') || n <= 0)
		return -1;
	return n;
}

static void set_failures_left(const char *path, long n)
{
	char buf[32];
	int fd, len;

	if (n == 0) {
		(void)unlink(path);
		return;
	}
	len = snprintf(buf, sizeof(buf), "%ld\n", n);
	fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
	if (fd < 0)
		return;
	(void)!write(fd, buf, (size_t)len);
	close(fd);
}

/* True when this call is to fail (and counts it). */
static int should_fail(void)
{
	const char *path = getenv("SPOT_FAILFORK_FILE");

	if (path && path[0]) {
		long n = failures_left(path);

		if (n != 0) {
			if (n > 0)
				set_failures_left(path, n - 1);
			return 1;
		}
	}
	return 0;
}

int clone(int (*fn)(void *), void *stack, int flags, void *arg, ...)
{
	static int (*real_clone)(int (*)(void *), void *, int, void *, ...);
	pid_t *parent_tid = NULL, *child_tid = NULL;
	void *tls = NULL;
	va_list ap;

	if (should_fail()) {
		errno = EAGAIN;
		return -1;
	}
	/* The optional arguments, only when the flags say they were passed. */
	if (flags & (CLONE_PARENT_SETTID | CLONE_SETTLS | CLONE_CHILD_SETTID | CLONE_CHILD_CLEARTID |
		     CLONE_PIDFD)) {
		va_start(ap, arg);
		parent_tid = va_arg(ap, pid_t *);
		tls = va_arg(ap, void *);
		child_tid = va_arg(ap, pid_t *);
		va_end(ap);
	}
	if (!real_clone)
		real_clone = (int (*)(int (*)(void *), void *, int, void *, ...))dlsym(RTLD_NEXT, "clone");
	if (!real_clone) {
		errno = ENOSYS;
		return -1;
	}
	return real_clone(fn, stack, flags, arg, parent_tid, tls, child_tid);
}

pid_t fork(void)
{
	static pid_t (*real_fork)(void);

	if (should_fail()) {
		errno = EAGAIN;
		return -1;
	}
	if (!real_fork)
		real_fork = (pid_t (*)(void))dlsym(RTLD_NEXT, "fork");
	if (!real_fork) {
		errno = ENOSYS;
		return -1;
	}
	return real_fork();
}
