/* statedir.h - the state directory's lock and trust (statedir.c): one agent
 * per state directory, and a directory and files only the agent's user
 * can change. */
#ifndef SPOT_STATEDIR_H
#define SPOT_STATEDIR_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The lock file in the state directory: flock(2)ed by the running agent,
 * which writes its pid into it. */
#define STATEDIR_LOCK_NAME "agent.lock"

/* Each function returns 0 when all is well, with one line in msg saying
 * what was found (check's output), or -errno with one line in msg saying
 * what is wrong and what to do (stderr). msg names the state directory. */

/* The state directory passes the hooks' trust rules: it (or, while it does
 * not exist yet, its parent) and every directory on the way to it are owned
 * by root or the agent's user and neither group- nor world-writable; and
 * state.json and its spare, where they exist, are regular files (a link is
 * never followed) owned by the agent's user and writable by nobody else.
 * -EPERM when a rule fails. Opens and stats only; never reads a file. */
int statedir_check(const char *state_dir, char *msg, size_t n);

/* Takes the state directory's lock for this process: opens (creating it,
 * 0600) the lock file with O_NOFOLLOW and O_CLOEXEC, flock(LOCK_EX |
 * LOCK_NB), and writes this process's pid into it. *ret_fd holds the lock
 * until it is closed (at exit). -EBUSY when another process holds it: msg
 * names that process's pid as the lock file (or /proc/locks) tells it.
 * The directory must exist. */
int statedir_lock(const char *state_dir, int *ret_fd, char *msg, size_t n);

/* Who holds the lock, without taking or changing anything: *ret_pid the
 * holder's pid (0 when it cannot be told) and 1, or 0 when nobody holds
 * it (or there is no lock file), or -errno. For check. */
int statedir_lock_holder(const char *state_dir, pid_t *ret_pid);

#endif
