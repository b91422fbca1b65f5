/* hookdir.c - which files in the hook directories may run, and why each
 * other one may not (SPEC section 4): the /etc and /usr/lib directories
 * merged by name, /etc winning and a link to /dev/null masking, every file
 * checked for type, size, mode and owner, every directory on the way to it
 * for owner and mode, names in bytewise order. It only reads directories
 * and stats files; it never runs or logs anything. */
#include "hooks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

/* Symbolic links followed in one path before giving up, as the kernel. */
#define WALK_LINKS_MAX 40

struct scan_entry {
	char *name;
	int dir;      /* 0 = etc_dir, 1 = lib_dir */
};

struct scan_dir {
	const char *path;                    /* as configured: the listing shows it */
	char real[PATH_MAX];                 /* with every link resolved */
	char fault[HOOK_SKIP_REASON_MAX];    /* "" or why no file in it may run */
	DIR *d;                              /* NULL when the directory does not exist */
};

/* What walk_path found at the end of a path. */
struct walk {
	int fd;                              /* O_PATH, owned by the caller */
	struct stat st;
	char real[PATH_MAX];                 /* the path with every link resolved */
	char fault[HOOK_SKIP_REASON_MAX];    /* "" or the first directory that fails */
};

static bool owner_ok(uid_t uid)
{
	return uid == 0 || uid == geteuid();
}

/* A directory may lead to hooks when nobody but root (or the agent's own
 * user) can change what is in it. Sticky does not help: whoever may create
 * a name there may plant a hook, or a link, under a name not yet taken. */
static bool dir_fault(const struct stat *st, const char *path, char *why, size_t n)
{
	if (!owner_ok(st->st_uid))
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
static int note_dir(int dfd, const char *real, struct walk *w)
{
	struct stat st;

	if (fstat(dfd, &st) < 0)
		return -errno;
	if (!w->fault[0])
		(void)dir_fault(&st, real[0] ? real : "/", w->fault, sizeof(w->fault));
	w->st = st;
	return 0;
}

/* Resolves path from / one component at a time, as the kernel would, and
 * checks every directory it passes through on the way, the ones a symbolic
 * link's target is reached through included. A relative path starts at
 * the working directory. On success *w holds an O_PATH descriptor of what
 * the path names (a link at the end followed), its stat, its real path,
 * and the first directory that fails the check, if any (the walk goes on
 * past it, so that the caller can still list what is there). Returns 0 or
 * -errno: -ENOENT, -ENOTDIR, -ELOOP, -ENAMETOOLONG, -EACCES, ... */
static int walk_path(const char *path, struct walk *w)
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
		fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (fd < 0 || fstat(fd, &st) < 0) {
			r = -errno;
			if (fd >= 0)
				close(fd);
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

static int scan_entry_cmp(const void *a, const void *b)
{
	const struct scan_entry *x = a, *y = b;
	int r = strcmp(x->name, y->name);

	if (r != 0)
		return r;
	return x->dir - y->dir;  /* etc_dir first, so it wins the merge */
}

static int read_dir(struct scan_dir *sd, int index, struct scan_entry **entries,
		    size_t *n, size_t *cap)
{
	struct dirent *de;
	struct walk w;
	int fd, r;

	sd->d = NULL;
	sd->fault[0] = '\0';
	if (!sd->path || !sd->path[0])
		return 0;
	r = walk_path(sd->path, &w);
	if (r < 0)
		return r == -ENOENT ? 0 : r;
	if (!S_ISDIR(w.st.st_mode)) {
		close(w.fd);
		return -ENOTDIR;
	}
	(void)strscpy(sd->real, sizeof(sd->real), w.real);
	(void)strscpy(sd->fault, sizeof(sd->fault), w.fault);
	/* The very directory that was checked. */
	fd = openat(w.fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r = -errno;
	close(w.fd);
	if (fd < 0)
		return r;
	sd->d = fdopendir(fd);
	if (!sd->d) {
		r = -errno;
		close(fd);
		return r;
	}
	for (;;) {
		errno = 0;
		de = readdir(sd->d);
		if (!de) {
			if (errno != 0)
				return -errno;
			return 0;
		}
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (*n == *cap) {
			*cap = *cap ? *cap * 2 : 32;
			*entries = xrealloc(*entries, *cap * sizeof(**entries));
		}
		(*entries)[*n].name = xstrdup(de->d_name);
		(*entries)[*n].dir = index;
		(*n)++;
	}
}

/* Rules that need only the name, in the order they are reported. */
static const char *name_skip_reason(const char *name)
{
	static const char *const leftovers[] = {
		".rpmnew", ".rpmsave", ".rpmorig", ".ucf-old", ".ucf-new", ".ucf-dist",
	};
	const char *dot = strrchr(name, '.');

	if (name[0] == '.')
		return "hidden file";
	if (str_endswith(name, "~"))
		return "backup file";
	if (dot && strncmp(dot, ".dpkg-", 6) == 0)
		return "package manager leftover";
	for (size_t i = 0; i < ELEMENTSOF(leftovers); i++)
		if (str_endswith(name, leftovers[i]))
			return "package manager leftover";
	if (str_endswith(name, ".swp"))
		return "editor swap file";
	if (strlen(name) >= HOOK_NAME_MAX)
		return "name too long";
	return NULL;
}

static bool is_dev_null_link(int dfd, const char *name, const struct stat *lst)
{
	char target[16];
	struct stat st;
	ssize_t k;

	if (!S_ISLNK(lst->st_mode))
		return false;
	k = readlinkat(dfd, name, target, sizeof(target) - 1);
	if (k > 0) {
		target[k] = '\0';
		if (strcmp(target, "/dev/null") == 0)
			return true;
	}
	return fstatat(dfd, name, &st, 0) == 0 && S_ISCHR(st.st_mode) &&
	       st.st_rdev == makedev(1, 3);
}

/* The rules on the file itself. */
static const char *inode_fault(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return "not a regular file";
	if (st->st_size == 0)
		return "empty file";
	if (!(st->st_mode & S_IXUSR))
		return "not executable";
	if (!owner_ok(st->st_uid))
		return "not owned by root";
	if (st->st_mode & S_IWGRP)
		return "group-writable";
	if (st->st_mode & S_IWOTH)
		return "world-writable";
	if (st->st_mode & S_ISUID)
		return "setuid";
	if (st->st_mode & S_ISGID)
		return "setgid";
	return NULL;
}

/* Opens the entry name of the directory d, a link followed through a walk
 * that checks every directory on its way. Returns an O_PATH descriptor
 * and its stat, or -1 with the reason in why ("" when the entry vanished
 * while we looked: not worth a line). */
static int open_entry(const struct scan_dir *d, const char *name, bool masks, struct stat *ret_st,
		      char *why, size_t n)
{
	int dfd = dirfd(d->d), fd;
	struct stat lst;

	why[0] = '\0';
	if (fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno != ENOENT)
			(void)strscpy(why, n, "cannot be examined");
		return -1;
	}
	if (masks && is_dev_null_link(dfd, name, &lst)) {
		(void)strscpy(why, n, "masked");
		return -1;
	}
	if (d->fault[0]) {
		(void)strscpy(why, n, d->fault);
		return -1;
	}
	if (S_ISLNK(lst.st_mode)) {
		char target[PATH_MAX], full[PATH_MAX];
		ssize_t k = readlinkat(dfd, name, target, sizeof(target) - 1);
		struct walk w;
		int r, len;

		if (k < 0) {
			(void)strscpy(why, n, errno == ENOENT ? "" : "cannot be examined");
			return -1;
		}
		target[k] = '\0';
		len = target[0] == '/' ? snprintf(full, sizeof(full), "%s", target) :
					 snprintf(full, sizeof(full), "%s/%s", d->real, target);
		if (len < 0 || (size_t)len >= sizeof(full)) {
			(void)strscpy(why, n, "broken link");
			return -1;
		}
		r = walk_path(full, &w);
		if (r == -ENOENT || r == -ELOOP || r == -ENOTDIR || r == -ENAMETOOLONG) {
			(void)strscpy(why, n, "broken link");
			return -1;
		}
		if (r < 0) {
			(void)strscpy(why, n, "cannot be examined");
			return -1;
		}
		if (w.fault[0]) {
			/* Cut to fit when it must: the directory comes last. */
			if (snprintf(why, n, "link target '%s': %s", full, w.fault) < 0)
				(void)strscpy(why, n, w.fault);
			close(w.fd);
			return -1;
		}
		*ret_st = w.st;
		return w.fd;
	}
	fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 || fstat(fd, ret_st) < 0) {
		if (errno != ENOENT)
			(void)strscpy(why, n, "cannot be examined");
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return fd;
}

/* Opens the entry when it may run: the descriptor, or -1 with the reason
 * in why ("" when it vanished while we looked). */
static int entry_open(const struct scan_dir *d, const char *name, bool masks, char *why, size_t n)
{
	struct stat st;
	const char *fault;
	int fd = open_entry(d, name, masks, &st, why, n);

	if (fd < 0)
		return -1;
	fault = inode_fault(&st);
	if (fault) {
		(void)strscpy(why, n, fault);
		close(fd);
		return -1;
	}
	return fd;
}

static void plan_add_skip(struct hook_plan *plan, size_t *cap, const char *name,
			  const char *dir, const char *reason)
{
	struct hook_skip *s;

	if (plan->n_skips >= HOOKS_SKIPS_MAX) {
		plan->n_skips_dropped++;
		return;
	}
	if (plan->n_skips == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		plan->skips = xrealloc(plan->skips, *cap * sizeof(*plan->skips));
	}
	s = &plan->skips[plan->n_skips++];
	memset(s, 0, sizeof(*s));
	(void)strscpy(s->name, sizeof(s->name), name);
	(void)snprintf(s->path, sizeof(s->path), "%s/%s", dir, name);
	(void)strscpy(s->reason, sizeof(s->reason), reason);
}

static void plan_add_hook(struct hook_plan *plan, size_t *cap, const char *name, const char *path,
			  int fd)
{
	struct hook_file *h;

	if (plan->n_hooks == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		plan->hooks = xrealloc(plan->hooks, *cap * sizeof(*plan->hooks));
	}
	h = &plan->hooks[plan->n_hooks++];
	memset(h, 0, sizeof(*h));
	(void)strscpy(h->name, sizeof(h->name), name);
	(void)strscpy(h->path, sizeof(h->path), path);
	h->fd = fd;
	h->script = true;
}

int hooks_scan(const char *etc_dir, const char *lib_dir, struct hook_plan *ret)
{
	struct scan_dir *dirs = xcalloc(2, sizeof(*dirs));
	struct hook_plan plan = { .owns_fds = true };
	struct scan_entry *entries = NULL;
	size_t n = 0, cap = 0, hooks_cap = 0, skips_cap = 0;
	char *why = xmalloc(HOOK_SKIP_REASON_MAX);
	int r;

	dirs[0].path = etc_dir;
	dirs[1].path = lib_dir;
	for (int i = 0; i < 2; i++) {
		r = read_dir(&dirs[i], i, &entries, &n, &cap);
		if (r < 0)
			goto out;
	}
	if (n > 0)
		qsort(entries, n, sizeof(*entries), scan_entry_cmp);

	for (size_t i = 0; i < n; i++) {
		const struct scan_entry *e = &entries[i];
		const struct scan_dir *d = &dirs[e->dir];
		char path[PATH_MAX];
		const char *reason;
		int k, fd = -1;

		/* The same name in lib_dir after its etc_dir entry is overridden. */
		if (i > 0 && strcmp(entries[i - 1].name, e->name) == 0)
			continue;

		reason = name_skip_reason(e->name);
		k = snprintf(path, sizeof(path), "%s/%s", d->path, e->name);
		if (!reason && (k < 0 || (size_t)k >= sizeof(path)))
			reason = "name too long";
		if (!reason) {
			fd = entry_open(d, e->name, e->dir == 0, why, HOOK_SKIP_REASON_MAX);
			if (fd < 0 && !why[0])
				continue;  /* vanished */
			if (fd < 0)
				reason = why;
		}
		if (!reason && plan.n_hooks >= HOOKS_MAX) {
			reason = "too many hooks";
			close(fd);
		}
		if (reason)
			plan_add_skip(&plan, &skips_cap, e->name, d->path, reason);
		else
			plan_add_hook(&plan, &hooks_cap, e->name, path, fd);
	}
	*ret = plan;
	plan = (struct hook_plan){ 0 };
	r = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(entries[i].name);
	free(entries);
	for (int i = 0; i < 2; i++)
		if (dirs[i].d)
			closedir(dirs[i].d);
	free(dirs);
	free(why);
	hook_plan_done(&plan);
	return r;
}

void hook_plan_done(struct hook_plan *plan)
{
	if (!plan)
		return;
	for (size_t i = 0; plan->owns_fds && i < plan->n_hooks; i++)
		if (plan->hooks[i].fd >= 0)
			close(plan->hooks[i].fd);
	free(plan->hooks);
	free(plan->skips);
	*plan = (struct hook_plan){ 0 };
}

int hooks_open(const char *path, const char *name, struct hook_file *ret, char *why, size_t why_size)
{
	const char *fault, *slash;
	struct walk w;
	int r;

	if (!path || !path[0])
		return -EINVAL;
	r = walk_path(path, &w);
	if (r < 0)
		return r;
	fault = w.fault[0] ? w.fault : inode_fault(&w.st);
	if (fault) {
		if (why && why_size)
			(void)strscpy(why, why_size, fault);
		close(w.fd);
		return -EPERM;
	}
	slash = strrchr(path, '/');
	memset(ret, 0, sizeof(*ret));
	(void)strscpy(ret->name, sizeof(ret->name), name ? name : slash ? slash + 1 : path);
	(void)strscpy(ret->path, sizeof(ret->path), path);
	ret->fd = w.fd;
	ret->script = true;
	return 0;
}

int hook_file_recheck(const struct hook_file *f, char *why, size_t why_size)
{
	const char *fault;
	struct stat st;

	if (fstat(f->fd, &st) < 0)
		return -errno;
	fault = inode_fault(&st);
	if (fault) {
		if (why && why_size)
			(void)strscpy(why, why_size, fault);
		return -EPERM;
	}
	return 0;
}
