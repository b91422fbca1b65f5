/* trust.h - whether nobody but root (or the agent's own user) can change
 * what a path leads to (trust.c): the rule hooks, their interpreters and
 * the state directory are held to. */
#ifndef SPOT_HOOKS_TRUST_H
#define SPOT_HOOKS_TRUST_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>
#include <sys/types.h>

/* Why a path may not be trusted: names a directory on the way. */
#define TRUST_FAULT_MAX (PATH_MAX + 256)

/* What trust_walk found at the end of a path. */
struct trust_walk {
	int fd;                          /* see trust_open_leaf; owned by the caller */
	struct stat st;
	char real[PATH_MAX];             /* the path with every link resolved */
	char fault[TRUST_FAULT_MAX];     /* "" or the first directory that fails */
};

/* Root and the agent's effective uid may own what leads to a hook. */
bool trust_owner_ok(uid_t uid);

/* The rule for a directory on the way: owned by root or the agent's user,
 * neither group- nor world-writable (sticky or not). False when st passes;
 * else true with the reason, naming path, in why. */
bool trust_dir_fault(const struct stat *st, const char *path, char *why, size_t n);

/* Opens name in dfd without following a link: O_PATH, or read-only when it
 * is a regular file the agent may read, so that its first bytes can be
 * read from the very file that was looked at. Fills *st. Returns the
 * descriptor (O_CLOEXEC) or -errno. */
int trust_open_leaf(int dfd, const char *name, struct stat *st);

/* Resolves path from / one component at a time, as the kernel would, and
 * checks every directory it passes through on the way (trust_dir_fault),
 * the ones a symbolic link's target is reached through included. A
 * relative path starts at the working directory. On success *w holds a
 * descriptor of what the path names (a link at the end followed; see
 * trust_open_leaf), its stat, its real path, and the first directory that
 * fails the check, if any (the walk goes on past it, so that the caller
 * can still list what is there). Returns 0 or -errno: -ENOENT, -ENOTDIR,
 * -ELOOP, -ENAMETOOLONG, -EACCES, ... */
int trust_walk(const char *path, struct trust_walk *w);

#endif
