/* hookdir.c - which files in the hook directories may run, and why each
 * other one may not (SPEC section 4): the /etc and /usr/lib directories
 * merged by name, /etc winning and a link to /dev/null masking, every file
 * checked for type, size, mode and owner, names in bytewise order. It only
 * reads directories and stats files; it never runs or logs anything. */
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

struct scan_entry {
	char *name;
	int dir;      /* 0 = etc_dir, 1 = lib_dir */
};

struct scan_dir {
	const char *path;
	DIR *d;       /* NULL when the directory does not exist */
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
	int fd;

	sd->d = NULL;
	if (!sd->path || !sd->path[0])
		return 0;
	fd = open(sd->path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	sd->d = fdopendir(fd);
	if (!sd->d) {
		int r = -errno;

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

/* Rules on the file itself (links followed). Returns NULL when it may run,
 * "" when the entry vanished while we looked (not worth a line), else the
 * reason. */
static const char *file_skip_reason(int dfd, const char *name, bool masks)
{
	struct stat lst, st;

	if (fstatat(dfd, name, &lst, AT_SYMLINK_NOFOLLOW) < 0)
		return errno == ENOENT ? "" : "cannot be examined";
	if (masks && is_dev_null_link(dfd, name, &lst))
		return "masked";
	if (fstatat(dfd, name, &st, 0) < 0) {
		if (S_ISLNK(lst.st_mode) && (errno == ENOENT || errno == ELOOP || errno == ENOTDIR))
			return "broken link";
		return errno == ENOENT ? "" : "cannot be examined";
	}
	if (!S_ISREG(st.st_mode))
		return "not a regular file";
	if (st.st_size == 0)
		return "empty file";
	if (!(st.st_mode & S_IXUSR))
		return "not executable";
	if (st.st_uid != 0 && st.st_uid != geteuid())
		return "not owned by root";
	if (st.st_mode & S_IWGRP)
		return "group-writable";
	if (st.st_mode & S_IWOTH)
		return "world-writable";
	if (st.st_mode & S_ISUID)
		return "setuid";
	if (st.st_mode & S_ISGID)
		return "setgid";
	return NULL;
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

static void plan_add_hook(struct hook_plan *plan, size_t *cap, const char *name, const char *path)
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
}

int hooks_scan(const char *etc_dir, const char *lib_dir, struct hook_plan *ret)
{
	struct scan_dir dirs[2] = { { .path = etc_dir }, { .path = lib_dir } };
	struct hook_plan plan = { 0 };
	struct scan_entry *entries = NULL;
	size_t n = 0, cap = 0, hooks_cap = 0, skips_cap = 0;
	int r;

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
		int k;

		/* The same name in lib_dir after its etc_dir entry is overridden. */
		if (i > 0 && strcmp(entries[i - 1].name, e->name) == 0)
			continue;

		reason = name_skip_reason(e->name);
		k = snprintf(path, sizeof(path), "%s/%s", d->path, e->name);
		if (!reason && (k < 0 || (size_t)k >= sizeof(path)))
			reason = "name too long";
		if (!reason)
			reason = file_skip_reason(dirfd(d->d), e->name, e->dir == 0);
		if (reason && !reason[0])
			continue;
		if (!reason && plan.n_hooks >= HOOKS_MAX)
			reason = "too many hooks";
		if (reason)
			plan_add_skip(&plan, &skips_cap, e->name, d->path, reason);
		else
			plan_add_hook(&plan, &hooks_cap, e->name, path);
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
	hook_plan_done(&plan);
	return r;
}

void hook_plan_done(struct hook_plan *plan)
{
	if (!plan)
		return;
	free(plan->hooks);
	free(plan->skips);
	*plan = (struct hook_plan){ 0 };
}
