/* statedir.c - the state directory as the operator's machine must keep it:
 * one agent per directory (a flock(2)ed lock file holding the agent's pid,
 * taken before the agent does anything else, so that a second agent never
 * touches the first one's state or hooks), and a directory and state files
 * that only the agent's user can change (state.json decides which hooks
 * never run again). It opens and stats; it never reads state.json, and it
 * does not log: the caller reports its one line. */
#include "statedir.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "hooks/trust.h"
#include "store/state-file.h"
#include "util.h"

#define PID_TEXT_MAX 24
#define PROC_LOCKS "/proc/locks"

/* Writes the parent directory of path (trailing slashes ignored) to buf. */
static void parent_of(const char *path, char *buf, size_t n)
{
	size_t len = strlen(path);

	while (len > 1 && path[len - 1] == '/')
		len--;
	while (len > 0 && path[len - 1] != '/')
		len--;
	while (len > 1 && path[len - 1] == '/')
		len--;
	if (len == 0) {
		(void)strscpy(buf, n, ".");
		return;
	}
	if (len >= n)
		len = n - 1;
	memcpy(buf, path, len);
	buf[len] = '\0';
}

static const char *file_type(mode_t m)
{
	if (S_ISLNK(m))
		return "a symbolic link";
	if (S_ISFIFO(m))
		return "a FIFO";
	if (S_ISDIR(m))
		return "a directory";
	if (S_ISSOCK(m))
		return "a socket";
	if (S_ISCHR(m) || S_ISBLK(m))
		return "a device";
	return "not a regular file";
}

/* One state file, looked at without following a link. 0 when it is absent
 * or fine, -EPERM with msg when not. */
static int check_file(int dfd, const char *dir, const char *name, char *msg, size_t n)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return 0;
		(void)snprintf(msg, n, "'%s/%s' cannot be examined: %s", dir, name, strerror(errno));
		return -errno;
	}
	if (S_ISLNK(st.st_mode)) {
		(void)snprintf(msg, n, "'%s/%s' is a symbolic link: the agent never reads its state through "
			       "a link; remove it", dir, name);
		return -EPERM;
	}
	if (!S_ISREG(st.st_mode)) {
		(void)snprintf(msg, n, "'%s/%s' is %s, not a regular file: remove it", dir, name,
			       file_type(st.st_mode));
		return -EPERM;
	}
	if (st.st_uid != geteuid()) {
		(void)snprintf(msg, n, "'%s/%s' is owned by uid %u, not by the agent's user (uid %u): "
			       "remove it, or chown it if it is the agent's", dir, name, (unsigned)st.st_uid,
			       (unsigned)geteuid());
		return -EPERM;
	}
	if (st.st_mode & (S_IWGRP | S_IWOTH)) {
		(void)snprintf(msg, n, "'%s/%s' is %s-writable: chmod 0600 it", dir, name,
			       st.st_mode & S_IWOTH ? "world" : "group");
		return -EPERM;
	}
	return 0;
}

int statedir_check(const char *state_dir, char *msg, size_t n)
{
	static const char *const files[] = { STATE_FILE_NAME, STATE_SPARE_NAME, STATEDIR_LOCK_NAME };
	char parent[PATH_MAX];
	const char *looked = state_dir;
	struct trust_walk w;
	int r;

	msg[0] = '\0';
	r = trust_walk(state_dir, &w);
	if (r == -ENOENT) {
		/* Not created yet: its parent is where it will be. */
		parent_of(state_dir, parent, sizeof(parent));
		looked = parent;
		r = trust_walk(parent, &w);
	}
	if (r < 0) {
		(void)snprintf(msg, n, "state-dir '%s' cannot be examined: %s", state_dir, strerror(-r));
		return r;
	}
	if (w.fault[0] || !S_ISDIR(w.st.st_mode) || !trust_owner_ok(w.st.st_uid) ||
	    (w.st.st_mode & (S_IWGRP | S_IWOTH))) {
		char why[TRUST_FAULT_MAX];

		if (!w.fault[0] && S_ISDIR(w.st.st_mode))
			(void)trust_dir_fault(&w.st, w.real, why, sizeof(why));
		else
			(void)strscpy(why, sizeof(why), w.fault[0] ? w.fault : "not a directory");
		(void)close(w.fd);
		(void)snprintf(msg, n, "state-dir '%s' is not in trusted hands: %s; it and every directory "
			       "above it must be owned by root or the agent's user and writable by no one else",
			       state_dir, why);
		return -EPERM;
	}
	if (looked == state_dir) {
		int dfd = openat(w.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

		r = dfd < 0 ? -errno : 0;
		for (size_t i = 0; r == 0 && i < ELEMENTSOF(files); i++)
			r = check_file(dfd, state_dir, files[i], msg, n);
		if (dfd >= 0)
			(void)close(dfd);
		if (r < 0) {
			if (r != -EPERM && !msg[0])
				(void)snprintf(msg, n, "state-dir '%s' cannot be opened: %s", state_dir,
					       strerror(-r));
			(void)close(w.fd);
			return r;
		}
	}
	(void)close(w.fd);
	(void)snprintf(msg, n, "state-dir '%s' %s the agent's alone", state_dir,
		       looked == state_dir ? "is" : "will be");
	return 0;
}

/* The pid written into the lock file open as fd, 0 when there is none. */
static pid_t read_pid(int fd)
{
	char text[PID_TEXT_MAX + 1];
	uint64_t pid;
	ssize_t k = pread(fd, text, PID_TEXT_MAX, 0);

	if (k <= 0)
		return 0;
	text[k] = '\0';
	text[strcspn(text, "\n")] = '\0';
	if (parse_uint64(text, 1, INT_MAX, &pid) < 0)
		return 0;
	return (pid_t)pid;
}

/* The pid holding a flock(2) on the file st describes, as /proc/locks shows
 * it: 1 with *ret_pid (0 when not visible from here), 0 when nobody holds
 * one, -errno when /proc/locks cannot be read. Lines read:
 * "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (device in hex). */
static int proc_lock_holder(const struct stat *st, pid_t *ret_pid)
{
	char line[256], want[64];
	int r = 0;
	FILE *f = fopen(PROC_LOCKS, "re");

	if (!f)
		return -errno;
	(void)snprintf(want, sizeof(want), "%02x:%02x:%" PRIu64, major(st->st_dev), minor(st->st_dev),
		       (uint64_t)st->st_ino);
	while (fgets(line, sizeof(line), f)) {
		char kind[16], dev[64];
		long pid;

		/* "->" marks a waiter, not a holder. */
		if (strstr(line, "->") ||
		    sscanf(line, "%*[^:]: %15s %*s %*s %ld %63s", kind, &pid, dev) != 3)
			continue;
		if (strcmp(kind, "FLOCK") == 0 && strcmp(dev, want) == 0) {
			*ret_pid = pid > 0 ? (pid_t)pid : 0;
			r = 1;
			break;
		}
	}
	(void)fclose(f);
	return r;
}

static int open_lock(const char *state_dir, int flags, struct stat *ret_st)
{
	char path[PATH_MAX];
	int fd, k = snprintf(path, sizeof(path), "%s/%s", state_dir, STATEDIR_LOCK_NAME);

	if (k < 0 || (size_t)k >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, flags | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (fstat(fd, ret_st) < 0 || !S_ISREG(ret_st->st_mode) || ret_st->st_uid != geteuid()) {
		(void)close(fd);
		return -EPERM;
	}
	return fd;
}

int statedir_lock(const char *state_dir, int *ret_fd, char *msg, size_t n)
{
	char text[PID_TEXT_MAX];
	struct stat st;
	pid_t holder;
	int fd, k, r;

	fd = open_lock(state_dir, O_RDWR | O_CREAT, &st);
	if (fd < 0) {
		if (fd == -EPERM || fd == -ELOOP)
			(void)snprintf(msg, n, "'%s/%s' is not a regular file of the agent's user: remove it",
				       state_dir, STATEDIR_LOCK_NAME);
		else
			(void)snprintf(msg, n, "state-dir '%s': cannot open its lock file '%s': %s", state_dir,
				       STATEDIR_LOCK_NAME, strerror(-fd));
		return fd == -ELOOP ? -EPERM : fd;
	}
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		holder = read_pid(fd);
		if (holder == 0)
			(void)proc_lock_holder(&st, &holder);
		(void)close(fd);
		if (r != -EBUSY) {
			(void)snprintf(msg, n, "state-dir '%s': cannot lock '%s': %s", state_dir,
				       STATEDIR_LOCK_NAME, strerror(-r));
			return r;
		}
		if (holder > 0)
			(void)snprintf(msg, n, "state-dir '%s' is in use by another spot-agent (pid %d): one agent "
				       "per state directory; stop that one or set another state-dir", state_dir,
				       (int)holder);
		else
			(void)snprintf(msg, n, "state-dir '%s' is in use by another spot-agent (pid unknown): one "
				       "agent per state directory; stop that one or set another state-dir",
				       state_dir);
		return r;
	}
	k = snprintf(text, sizeof(text), "%d\n", (int)getpid());
	if (ftruncate(fd, 0) < 0 || pwrite_all(fd, text, (size_t)k, 0) < 0) {
		/* The lock holds all the same; only the message of a second
		 * agent would lack the pid (it asks /proc/locks then). */
		(void)snprintf(msg, n, "state-dir '%s' locked by this agent (pid %d; the pid could not be "
			       "written)", state_dir, (int)getpid());
	} else {
		(void)snprintf(msg, n, "state-dir '%s' locked by this agent (pid %d)", state_dir, (int)getpid());
	}
	*ret_fd = fd;
	return 0;
}

int statedir_lock_holder(const char *state_dir, pid_t *ret_pid)
{
	struct stat st;
	pid_t pid = 0;
	int fd, r;

	fd = open_lock(state_dir, O_RDONLY, &st);
	if (fd == -ENOENT)
		return 0;
	if (fd < 0)
		return fd;
	r = proc_lock_holder(&st, &pid);
	if (r > 0 && pid == 0)
		pid = read_pid(fd);
	if (r < 0) {
		/* No /proc/locks: the pid in the file, if that process lives. */
		pid = read_pid(fd);
		r = pid > 0 && (kill(pid, 0) == 0 || errno == EPERM) ? 1 : 0;
	}
	(void)close(fd);
	if (r > 0)
		*ret_pid = pid;
	return r;
}
