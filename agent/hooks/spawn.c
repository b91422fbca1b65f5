/* spawn.c - starting a hook's process: a vfork-style clone that shares
 * the agent's memory until its exec, a new session, default signal
 * dispositions and an empty mask, cwd /, the pipes on 0, 1 and 2, the
 * checked file on 3 and every other descriptor closed, then execveat of
 * that descriptor. The child makes raw system calls only; the parent side
 * never waits for more than the exec. What runs when, and what happens to
 * the process afterwards, is run.c's. */
#include "hooks/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

/* The child runs on this stack from clone until its exec, while the agent
 * waits (CLONE_VFORK); one spawn at a time, and only a few hundred bytes
 * of it are used. */
#define CHILD_STACK_SIZE (64 * 1024)
static _Alignas(64) unsigned char child_stack[CHILD_STACK_SIZE];

/* The kernel's sigset_t: 64 signals. */
#define KERNEL_SIGSET_SIZE 8

#define _child_ __attribute__((no_sanitize("address", "undefined"), noinline))

static _child_ _Noreturn void child_fail(struct hook_spawn *a, const char *step)
{
	a->err = errno;
	a->step = step;
	_exit(127);
}

/* The child, sharing the agent's memory until it execs: nothing here may
 * allocate, lock or touch what the agent uses, so it makes raw system
 * calls only (no sanitizer either, whose run-time expects its own stacks). */
static _child_ int child_main(void *userdata)
{
	static const uint64_t none = 0;
	/* All zeros is SIG_DFL in every layout of the kernel's struct
	 * sigaction, which glibc's is larger than. */
	static const struct sigaction dfl;
	struct hook_spawn *a = userdata;
	long in, out, err, ex;

	/* No cgroup to join: the child was born in the hooks' cgroup, where
	 * the agent lives (hooks_tree_setup). */
	if (syscall(SYS_setsid) < 0)
		child_fail(a, "setsid");
	/* A hook must not outlive a crashed agent: the restarted agent runs
	 * it again (it never completed), and two copies must never overlap.
	 * The check after prctl closes the race with an agent already gone. */
	if (syscall(SYS_prctl, PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
		child_fail(a, "prctl");
	if (syscall(SYS_getppid) != a->agent_pid) {
		errno = ESRCH;
		child_fail(a, "getppid");
	}
	/* Every disposition back to the default, the two signals glibc
	 * reserves (32, 33) included, and then the mask (the agent blocked
	 * everything around the clone) emptied. */
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &dfl, NULL, (size_t)KERNEL_SIGSET_SIZE);
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, (size_t)KERNEL_SIGSET_SIZE) < 0)
		child_fail(a, "sigprocmask");
	if (syscall(SYS_chdir, "/") < 0)
		child_fail(a, "chdir");

	/* Move the descriptors above 3 first: one of them may be 0 to 3
	 * when the agent runs without standard streams. The hook's file
	 * ends up at 3 (open across the exec for a script, whose interpreter
	 * is handed /dev/fd/3), and everything above it is closed. */
	in = syscall(SYS_fcntl, a->in_fd, F_DUPFD_CLOEXEC, 4);
	out = syscall(SYS_fcntl, a->out_fd, F_DUPFD_CLOEXEC, 4);
	err = syscall(SYS_fcntl, a->err_fd, F_DUPFD_CLOEXEC, 4);
	ex = syscall(SYS_fcntl, a->exec_fd, F_DUPFD_CLOEXEC, 4);
	if (in < 0 || out < 0 || err < 0 || ex < 0 || syscall(SYS_dup3, in, 0, 0) < 0 ||
	    syscall(SYS_dup3, out, 1, 0) < 0 || syscall(SYS_dup3, err, 2, 0) < 0 ||
	    syscall(SYS_dup3, ex, 3, a->keep_exec_fd ? 0 : O_CLOEXEC) < 0)
		child_fail(a, "dup3");
	if (syscall(SYS_close_range, 4U, ~0U, 0U) < 0)
		for (int fd = 4; fd < a->max_fd; fd++)
			(void)syscall(SYS_close, fd);

	(void)syscall(SYS_execveat, 3, "", a->argv, a->envp, AT_EMPTY_PATH);
	child_fail(a, "execveat");
}

pid_t hook_spawn(struct hook_spawn *a)
{
	static const uint64_t all = UINT64_MAX;
	long max_fd = sysconf(_SC_OPEN_MAX);
	uint64_t old;
	pid_t pid;
	int e;

	if (max_fd < 0 || max_fd > 65536)
		max_fd = 65536;
	if (syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, (size_t)KERNEL_SIGSET_SIZE) < 0)
		return -errno;
	a->err = 0;
	a->step = NULL;
	a->agent_pid = getpid();
	a->max_fd = (int)max_fd;
	pid = clone(child_main, child_stack + sizeof(child_stack), CLONE_VM | CLONE_VFORK | SIGCHLD, a);
	e = errno;
	(void)syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, (size_t)KERNEL_SIGSET_SIZE);
	return pid < 0 ? -e : pid;
}

void hook_spawn_describe(const struct hook_file *f, int err, const char *step, char *buf, size_t n)
{
	char interp[PATH_MAX];
	int k;

	if (strcmp(step, "execveat") != 0)
		k = snprintf(buf, n, "could not be set up: %s: %s", step, strerror(err));
	else if ((err == ENOENT || (f->script && (err == EACCES || err == ENOEXEC))) &&
		 hook_file_interpreter(f, interp, sizeof(interp)) >= 0)
		k = snprintf(buf, n, "cannot execute: %s (interpreter '%s')", strerror(err), interp);
	else
		k = snprintf(buf, n, "cannot execute: %s", strerror(err));
	if (k < 0)
		buf[0] = '\0';  /* cut to fit otherwise */
}
