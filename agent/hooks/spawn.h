/* spawn.h - starting one hook's process (spawn.c). */
#ifndef SPOT_HOOKS_SPAWN_H
#define SPOT_HOOKS_SPAWN_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "hooks/hooks.h"

/* What the child is given, and what it reports back. */
struct hook_spawn {
	int in_fd, out_fd, err_fd;   /* become its 0, 1 and 2 */
	int exec_fd;                 /* the checked hook file; becomes its 3 */
	bool keep_exec_fd;           /* a script: its interpreter reads /dev/fd/3 */
	char *const *argv;
	char *const *envp;
	/* Set by hook_spawn for the child. */
	int max_fd;
	pid_t agent_pid;
	/* Written by the child, read by the agent once the child has
	 * exec'd or exited (they share memory until then): why it failed,
	 * and at which step ("execveat", "setsid", ...; static). 0 when the
	 * exec worked. */
	int err;
	const char *step;
};

/* Starts the child like vfork: it shares the agent's memory and the agent
 * waits until it has exec'd or exited, so nothing is copied (a fork's page
 * tables are most of a spawn's cost), and a failed exec's errno is in
 * a->err when this returns. Every signal is blocked meanwhile, so that no
 * handler of the agent's runs in the child. In the child: a new session,
 * PR_SET_PDEATHSIG SIGKILL, default dispositions, an empty mask, cwd /,
 * in_fd on 0, out_fd on 1, err_fd on 2, exec_fd on 3 (closed at the exec unless
 * keep_exec_fd), every other descriptor closed, then execveat(3, "",
 * AT_EMPTY_PATH). One spawn at a time (the child's stack is static).
 * Returns the pid or -errno. */
pid_t hook_spawn(struct hook_spawn *a);

/* Why the child did not get to run the hook, in words, from the errno and
 * the step it reported: "could not be set up: setsid: ...", or "cannot
 * execute: ..." with the interpreter it needs when that explains it. */
void hook_spawn_describe(const struct hook_file *f, int err, const char *step, char *buf, size_t n);

#endif
