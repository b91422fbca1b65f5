/* scan.c - which files in the hook directories may run, and why each
 * other one may not (SPEC section 4): the /etc and /usr/lib directories
 * merged by name, /etc winning and a link to /dev/null masking, names
 * checked against the ignore rules, every file for type, size, mode and
 * owner, the way to it through trust.c, its format through format.c, in
 * bytewise order. It only reads directories and stats files; it never runs
 * or logs anything. */
#include "hooks/hooks.h"

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

#include "hooks/format.h"
#include "hooks/trust.h"

/* A link to /dev/null in the /etc directory: on purpose, never a refusal. */
#define REASON_MASKED "masked"

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
	struct trust_walk w;
	int fd, r;

	sd->d = NULL;
	sd->fault[0] = '\0';
	if (!sd->path || !sd->path[0])
		return 0;
	r = trust_walk(sd->path, &w);
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

/* The documented ignores: names that are never meant to run, whatever the
 * file (SPEC section 4). Their skips are listed, but fail no check. */
static const char *name_ignored(const char *name)
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
	return NULL;
}

/* A README (README, README.md, ...) explains the directory: the package
 * ships one. It is passed over without a word, neither run nor listed. */
static bool name_is_readme(const char *name)
{
	return strncmp(name, "README", 6) == 0;
}

/* Whether the entry was meant to run: (a link to) a regular file that is
 * executable by anybody or starts with "#!", or a link that leads nowhere.
 * A skip of such a file is a refusal, which check and drill fail on; a
 * text file or a directory next to the hooks is not. It reads two bytes
 * at most, without blocking. */
static bool entry_meant(int dfd, const char *name)
{
	struct stat st;
	char head[2];
	ssize_t k;
	int fd;

	if (fstatat(dfd, name, &st, 0) < 0)
		return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode);
	if (!S_ISREG(st.st_mode))
		return false;
	if (st.st_mode & (S_IXUSR | S_IXGRP | S_IXOTH))
		return true;
	fd = openat(dfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return false;
	k = pread(fd, head, sizeof(head), 0);
	close(fd);
	return k == 2 && head[0] == '#' && head[1] == '!';
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
	if (!trust_owner_ok(st->st_uid))
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
		(void)strscpy(why, n, REASON_MASKED);
		return -1;
	}
	if (d->fault[0]) {
		(void)strscpy(why, n, d->fault);
		return -1;
	}
	if (S_ISLNK(lst.st_mode)) {
		char target[PATH_MAX], full[PATH_MAX];
		ssize_t k = readlinkat(dfd, name, target, sizeof(target) - 1);
		struct trust_walk w;
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
		r = trust_walk(full, &w);
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
	fd = trust_open_leaf(dfd, name, ret_st);
	if (fd < 0) {
		if (fd != -ENOENT)
			(void)strscpy(why, n, "cannot be examined");
		return -1;
	}
	return fd;
}

/* Opens the entry when it may run: the descriptor, or -1 with the reason
 * in why ("" when it vanished while we looked). */
static int entry_open(const struct scan_dir *d, const char *name, bool masks,
		      struct format_interp_cache *cache, bool *ret_script, char *why, size_t n)
{
	struct stat st;
	const char *fault;
	int fd = open_entry(d, name, masks, &st, why, n);

	if (fd < 0)
		return -1;
	fault = inode_fault(&st);
	if (!fault)
		fault = format_exec_fault(fd, cache, ret_script, why, n);
	if (fault) {
		if (fault != why)
			(void)strscpy(why, n, fault);
		close(fd);
		return -1;
	}
	return fd;
}

/* The entry is a directory (or a link to one). */
static bool is_directory(const struct scan_dir *d, const char *name)
{
	struct stat st;

	return d->d && fstatat(dirfd(d->d), name, &st, 0) == 0 && S_ISDIR(st.st_mode);
}

static void plan_add_skip(struct hook_plan *plan, size_t *cap, const char *name,
			  const char *dir, const char *reason, bool refused)
{
	struct hook_skip *s;

	if (refused)
		plan->n_refused++;
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
	s->refused = refused;
}

static void plan_add_hook(struct hook_plan *plan, size_t *cap, const char *name, const char *path,
			  int fd, bool script)
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
	h->script = script;
}

int hooks_scan(const char *etc_dir, const char *lib_dir, struct hook_plan *ret)
{
	struct scan_dir *dirs = xcalloc(2, sizeof(*dirs));
	struct hook_plan plan = { .owns_fds = true };
	struct format_interp_cache cache = { 0 };
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
		const char *reason = NULL;
		bool script = true;
		int k, fd = -1;

		/* The same name in lib_dir after its etc_dir entry is overridden. */
		if (i > 0 && strcmp(entries[i - 1].name, e->name) == 0)
			continue;
		/* The recover hooks' directory is not a hook, nor a file to
		 * warn about: the recover chain reads it. */
		if (strcmp(e->name, HOOKS_RECOVER_DIR) == 0 && is_directory(d, e->name))
			continue;

		if (name_is_readme(e->name))
			continue;
		reason = name_ignored(e->name);
		if (reason) {
			plan_add_skip(&plan, &skips_cap, e->name, d->path, reason, false);
			continue;
		}
		k = snprintf(path, sizeof(path), "%s/%s", d->path, e->name);
		if (strlen(e->name) >= HOOK_NAME_MAX || k < 0 || (size_t)k >= sizeof(path)) {
			reason = "name too long";
		} else {
			fd = entry_open(d, e->name, e->dir == 0, &cache, &script, why, HOOK_SKIP_REASON_MAX);
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
			plan_add_skip(&plan, &skips_cap, e->name, d->path, reason,
				      strcmp(reason, REASON_MASKED) != 0 && entry_meant(dirfd(d->d), e->name));
		else
			plan_add_hook(&plan, &hooks_cap, e->name, path, fd, script);
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
	struct format_interp_cache cache = { 0 };
	char buf[HOOK_SKIP_REASON_MAX];
	const char *fault, *slash;
	bool script = true;
	struct trust_walk w;
	int r;

	if (!path || !path[0])
		return -EINVAL;
	r = trust_walk(path, &w);
	if (r < 0)
		return r;
	fault = w.fault[0] ? w.fault : inode_fault(&w.st);
	if (!fault)
		fault = format_exec_fault(w.fd, &cache, &script, buf, sizeof(buf));
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
	ret->script = script;
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

int hook_file_interpreter(const struct hook_file *f, char *buf, size_t n)
{
	return format_interpreter(f->fd, buf, n);
}
