/* trust.c - whether nobody but root (or the agent's own user) can change
 * what a path leads to: every directory from / to it, a symbolic link's
 * target and the directories it is reached through included, owned by
 * root or the agent's user and neither group- nor world-writable, as
 * sshd's StrictModes. Hooks, their interpreters and the state directory
 * are held to it. It only opens and stats; it never reads a file's
 * contents, decides what may run or logs. */
#include "hooks/trust.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

/* Symbolic links followed in one path before giving up, as the kernel. */
#define WALK_LINKS_MAX 40

bool trust_owner_ok(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* A directory may lead to hooks when nobody but root (or the agent's own
 * user) can change what is in it. Sticky does not help: whoever may create
 * a name there may plant a hook, or a link, under a name not yet taken. */
bool trust_dir_fault(const struct stat *st, const char *path, char *why, size_t n)
{
	if (!trust_owner_ok(st->st_uid))
		(void)snprintf(why, n, "directory '%s' is owned by uid %u", path, (unsigned)st->st_uid);
	else if (st->st_mode & S_IWOTH)
		(void)snprintf(why, n, "directory '%s' is world-writable", path);
	else if (st->st_mode & S_IWGRP)
		(void)snprintf(why, n, "directory '%s' is group-writable", path);
	else
		return false;
	return true;
}

/* Checks the directory dfd (at real, "" for /) unless a fault is noted. */
static int note_dir(int dfd, const char *real, struct trust_walk *w)
{
	struct stat st;

	if (fstat(dfd, &st) < 0)
		return -errno;
	if (!w->fault[0])
		(void)trust_dir_fault(&st, real[0] ? real : "/", w->fault, sizeof(w->fault));
	w->st = st;
	return 0;
}

/* Opens name in dfd without following a link: O_PATH, or read-only when it
 * is a regular file the agent may read, so that its first bytes can be
 * read from the very file that was looked at. Fills *st. */
int trust_open_leaf(int dfd, const char *name, struct stat *st)
{
	struct stat rst;
	int fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC), rfd, r;

	if (fd < 0)
		return -errno;
	if (fstat(fd, st) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	if (!S_ISREG(st->st_mode))
		return fd;
	rfd = openat(dfd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (rfd < 0)
		return fd;  /* not ours to read: it may still be executed */
	if (fstat(rfd, &rst) < 0 || rst.st_dev != st->st_dev || rst.st_ino != st->st_ino) {
		close(rfd);  /* replaced in between: keep the one looked at */
		return fd;
	}
	close(fd);
	*st = rst;
	return rfd;
}

/* Resolves path from / one component at a time, as the kernel would, and
 * checks every directory it passes through on the way, the ones a symbolic
 * link's target is reached through included. A relative path starts at
 * the working directory. On success *w holds a descriptor of what the path
 * names (a link at the end followed; see trust_open_leaf), its stat, its real path,
 * and the first directory that fails the check, if any (the walk goes on
 * past it, so that the caller can still list what is there). Returns 0 or
 * -errno: -ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG, -EACCES, ... */
int trust_walk(const char *path, struct trust_walk *w)
{
	char todo[PATH_MAX], next[PATH_MAX], target[PATH_MAX], name[NAME_MAX + 1];
	const char *p;
	int dfd = -1, links = 0, r;
	size_t len;

	w->fd = -1;
	w->real[0] = '\0';
	w->fault[0] = '\0';
	if (path[0] == '/') {
		if (strscpy(todo, sizeof(todo), path) < 0)
			return -ENAMETOOLONG;
	} else {
		char cwd[PATH_MAX];
		int k;

		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		k = snprintf(todo, sizeof(todo), "%s/%s", cwd, path);
		if (k < 0 || (size_t)k >= sizeof(todo))
			return -ENAMETOOLONG;
	}
	dfd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = note_dir(dfd, "", w);
	if (r < 0)
		goto out;

	p = todo;
	for (;;) {
		struct stat st;
		const char *rest;
		int fd, k;

		while (*p == '/')
			p++;
		if (!*p) {
			/* The path names a directory (or /). */
			if (!w->real[0])
				(void)strscpy(w->real, sizeof(w->real), "/");
			w->fd = dfd;
			return 0;
		}
		len = strcspn(p, "/");
		rest = p + len;
		if (len == 1 && p[0] == '.') {
			p = rest;
			continue;
		}
		if (len == 2 && p[0] == '.' && p[1] == '.') {
			char *slash = strrchr(w->real, '/');

			if (slash)
				*slash = '\0';
			fd = openat(dfd, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0) {
				r = -errno;
				goto out;
			}
			close(dfd);
			dfd = fd;
			r = note_dir(dfd, w->real, w);
			if (r < 0)
				goto out;
			p = rest;
			continue;
		}
		if (len > NAME_MAX) {
			r = -ENAMETOOLONG;
			goto out;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		fd = trust_open_leaf(dfd, name, &st);
		if (fd < 0) {
			r = fd;
			goto out;
		}
		if (S_ISLNK(st.st_mode)) {
			/* The directory holding the link was checked: go on
			 * with its target, from / or from here. */
			ssize_t n = readlinkat(fd, "", target, sizeof(target) - 1);

			r = n < 0 ? -errno : 0;
			close(fd);
			if (r < 0)
				goto out;
			if (++links > WALK_LINKS_MAX) {
				r = -ELOOP;
				goto out;
			}
			target[n] = '\0';
			k = snprintf(next, sizeof(next), "%s%s", target, rest);
			if (k < 0 || (size_t)k >= sizeof(next)) {
				r = -ENAMETOOLONG;
				goto out;
			}
			memcpy(todo, next, (size_t)k + 1);
			p = todo;
			if (target[0] == '/') {
				fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
				if (fd < 0) {
					r = -errno;
					goto out;
				}
				close(dfd);
				dfd = fd;
				w->real[0] = '\0';
			}
			continue;
		}
		k = (int)strlen(w->real);
		if ((size_t)k + 1 + len >= sizeof(w->real)) {
			close(fd);
			r = -ENAMETOOLONG;
			goto out;
		}
		w->real[k] = '/';
		memcpy(w->real + k + 1, name, len + 1);
		close(dfd);
		dfd = fd;
		if (S_ISDIR(st.st_mode)) {
			r = note_dir(dfd, w->real, w);
			if (r < 0)
				goto out;
			p = rest;
			continue;
		}
		/* Not a directory: the end, unless something follows. */
		if (*rest) {
			r = -ENOTDIR;
			goto out;
		}
		w->st = st;
		w->fd = dfd;
		return 0;
	}
out:
	if (dfd >= 0)
		close(dfd);
	w->fd = -1;
	return r;
}

