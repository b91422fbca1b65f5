/* hookdir.c - which files in the hook directories may run, and why each
 * other one may not (SPEC section 4): the /etc and /usr/lib directories
 * merged by name, /etc winning and a link to /dev/null masking, every file
 * checked for type, size, mode and owner, every directory on the way to it
 * for owner and mode, names in bytewise order. It only reads directories
 * and stats files; it never runs or logs anything. */
#include "hooks/hooks.h"

#include <dirent.h>
#include <elf.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/sysmacros.h>
#include <sys/types.h>
#include <unistd.h>

/* Symbolic links followed in one path before giving up, as the kernel. */
#define WALK_LINKS_MAX 40
/* Bytes of a file the kernel looks at to tell its format (BINPRM_BUF_SIZE):
 * a "#!" line must fit, interpreter name and argument. */
#define EXEC_HEAD_MAX 256

/* This host's ELF: the class and machine it runs natively, and one it
 * runs through the kernel's compat layer (0 none). */
#if defined(__x86_64__) && defined(__LP64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_X86_64
#define HOST_ELF_COMPAT_MACHINE EM_386      /* and x32: ELFCLASS32, EM_X86_64 */
#elif defined(__i386__)
#define HOST_ELF_CLASS ELFCLASS32
#define HOST_ELF_MACHINE EM_386
#elif defined(__aarch64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_AARCH64
#define HOST_ELF_COMPAT_MACHINE EM_ARM
#elif defined(__arm__)
#define HOST_ELF_CLASS ELFCLASS32
#define HOST_ELF_MACHINE EM_ARM
#elif defined(__riscv) && __riscv_xlen == 64
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_ELF_CLASS ELFCLASS64
#define HOST_ELF_MACHINE EM_S390
#endif
#ifndef HOST_ELF_COMPAT_MACHINE
#define HOST_ELF_COMPAT_MACHINE 0
#endif
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define HOST_ELF_DATA ELFDATA2LSB
#else
#define HOST_ELF_DATA ELFDATA2MSB
#endif

/* The interpreter looked at last and what was found: most hooks share one. */
struct interp_cache {
	char path[EXEC_HEAD_MAX];
	char fault[EXEC_HEAD_MAX + 64];   /* "" when it may run */
};

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
	int fd;                              /* see open_leaf; owned by the caller */
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

/* Opens name in dfd without following a link: O_PATH, or read-only when it
 * is a regular file the agent may read, so that its first bytes can be
 * read from the very file that was looked at. Fills *st. */
static int open_leaf(int dfd, const char *name, struct stat *st)
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
 * names (a link at the end followed; see open_leaf), its stat, its real path,
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
		fd = open_leaf(dfd, name, &st);
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

/* The interpreter of a "#!" line: the first word after "#!", read as the
 * kernel reads it. Returns false when the line names none, or does not fit
 * in EXEC_HEAD_MAX bytes. */
static bool script_interpreter(const char *head, size_t k, char *buf, size_t n)
{
	const char *nl = memchr(head, '\n', k);
	size_t end = nl ? (size_t)(nl - head) : k, i = 2, j = 0;

	while (i < end && (head[i] == ' ' || head[i] == '\t'))
		i++;
	while (i < end && head[i] != ' ' && head[i] != '\t' && head[i] != '\0') {
		if (j + 1 >= n)
			return false;
		buf[j++] = head[i++];
	}
	buf[j] = '\0';
	if (j == 0)
		return false;
	/* No newline in a full buffer: the kernel refuses a name that
	 * runs to its end, since it may have been cut. */
	return nl || k < EXEC_HEAD_MAX || i < end;
}

/* Why the interpreter a "#!" line names cannot run the script, or "". The
 * hook's working directory is /, so a relative name is taken from there. */
static void interpreter_fault(const char *interp, struct interp_cache *cache)
{
	char full[EXEC_HEAD_MAX + 1];
	struct stat st;

	if (cache->path[0] && strcmp(cache->path, interp) == 0)
		return;
	(void)strscpy(cache->path, sizeof(cache->path), interp);
	(void)snprintf(full, sizeof(full), "%s%s", interp[0] == '/' ? "" : "/", interp);
	cache->fault[0] = '\0';
	if (stat(full, &st) < 0) {
		(void)snprintf(cache->fault, sizeof(cache->fault), "interpreter '%s' %s", interp,
			       errno == ENOENT || errno == ENOTDIR ? "does not exist" : "cannot be examined");
		return;
	}
	if (!S_ISREG(st.st_mode))
		(void)snprintf(cache->fault, sizeof(cache->fault), "interpreter '%s' is not a regular file", interp);
	else if (faccessat(AT_FDCWD, full, X_OK, AT_EACCESS) < 0)
		(void)snprintf(cache->fault, sizeof(cache->fault), "interpreter '%s' is not executable", interp);
}

static const char *elf_machine_name(unsigned m)
{
	switch (m) {
	case EM_386: return "i386";
	case EM_X86_64: return "x86-64";
	case EM_ARM: return "ARM";
	case EM_AARCH64: return "AArch64";
	case EM_RISCV: return "RISC-V";
	case EM_PPC64: return "PowerPC64";
	case EM_S390: return "s390";
	default: return NULL;
	}
}

/* Why this host cannot run the ELF file whose header is head, or NULL. */
static const char *elf_fault(const unsigned char *head, size_t k, char *why, size_t n)
{
	unsigned cls, data, type, machine;
	const char *name;

	if (k < 20)
		return "truncated ELF header";
	cls = head[EI_CLASS];
	data = head[EI_DATA];
	if (data == ELFDATA2LSB) {
		type = head[16] | (unsigned)head[17] << 8;
		machine = head[18] | (unsigned)head[19] << 8;
	} else {
		type = (unsigned)head[16] << 8 | head[17];
		machine = (unsigned)head[18] << 8 | head[19];
	}
	if (type != ET_EXEC && type != ET_DYN)
		return "ELF file that is not an executable";
#ifdef HOST_ELF_MACHINE
	if (data == HOST_ELF_DATA &&
	    ((cls == HOST_ELF_CLASS && machine == HOST_ELF_MACHINE) ||
	     (HOST_ELF_COMPAT_MACHINE && cls == ELFCLASS32 && machine == HOST_ELF_COMPAT_MACHINE) ||
	     (HOST_ELF_MACHINE == EM_X86_64 && cls == ELFCLASS32 && machine == EM_X86_64)))
		return NULL;
	name = elf_machine_name(machine);
	if (name)
		(void)snprintf(why, n, "ELF executable for another machine (%s%s, %s-bit)", name,
			       data == ELFDATA2MSB ? " big-endian" : "", cls == ELFCLASS64 ? "64" : "32");
	else
		(void)snprintf(why, n, "ELF executable for another machine (e_machine %u, %s-bit)", machine,
			       cls == ELFCLASS64 ? "64" : "32");
	return why;
#else
	(void)name;
	(void)cls;
	(void)machine;
	return NULL;
#endif
}

/* Whether the kernel can execute the file: on a file system not mounted
 * noexec, a "#!" line naming an interpreter that exists and is executable,
 * or an ELF executable for this host; anything else fails with ENOEXEC,
 * ENOENT or EACCES at the moment it matters. NULL when it can (or the file cannot be read, which the kernel
 * does not need for a binary), else why not, in why or static. Sets
 * *ret_script when the descriptor must stay open across the exec. */
static const char *exec_fault(int fd, struct interp_cache *cache, bool *ret_script, char *why, size_t n)
{
	unsigned char head[EXEC_HEAD_MAX];
	char interp[EXEC_HEAD_MAX];
	int flags = fcntl(fd, F_GETFL);
	ssize_t k;

	struct statvfs sv;

	*ret_script = true;
	if (fstatvfs(fd, &sv) == 0 && (sv.f_flag & ST_NOEXEC))
		return "on a file system mounted noexec";
	if (flags < 0 || (flags & O_PATH))
		return NULL;
	do
		k = pread(fd, head, sizeof(head), 0);
	while (k < 0 && errno == EINTR);
	if (k < 0)
		return "cannot be read";
	if (k >= 2 && head[0] == '#' && head[1] == '!') {
		if (!script_interpreter((const char *)head, (size_t)k, interp, sizeof(interp)))
			return "'#!' line names no interpreter, or is too long";
		interpreter_fault(interp, cache);
		if (!cache->fault[0])
			return NULL;
		(void)strscpy(why, n, cache->fault);
		return why;
	}
	*ret_script = false;
	if (k >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
		return elf_fault(head, (size_t)k, why, n);
	return "not an executable format (no '#!' line, not ELF)";
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
	fd = open_leaf(dfd, name, ret_st);
	if (fd < 0) {
		if (fd != -ENOENT)
			(void)strscpy(why, n, "cannot be examined");
		return -1;
	}
	return fd;
}

/* Opens the entry when it may run: the descriptor, or -1 with the reason
 * in why ("" when it vanished while we looked). */
static int entry_open(const struct scan_dir *d, const char *name, bool masks, struct interp_cache *cache,
		      bool *ret_script, char *why, size_t n)
{
	struct stat st;
	const char *fault;
	int fd = open_entry(d, name, masks, &st, why, n);

	if (fd < 0)
		return -1;
	fault = inode_fault(&st);
	if (!fault)
		fault = exec_fault(fd, cache, ret_script, why, n);
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
	struct interp_cache cache = { 0 };
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
		bool script = true;
		int k, fd = -1;

		/* The same name in lib_dir after its etc_dir entry is overridden. */
		if (i > 0 && strcmp(entries[i - 1].name, e->name) == 0)
			continue;
		/* The recover hooks' directory is not a hook, nor a file to
		 * warn about: the recover chain reads it. */
		if (strcmp(e->name, HOOKS_RECOVER_DIR) == 0 && is_directory(d, e->name))
			continue;

		reason = name_skip_reason(e->name);
		k = snprintf(path, sizeof(path), "%s/%s", d->path, e->name);
		if (!reason && (k < 0 || (size_t)k >= sizeof(path)))
			reason = "name too long";
		if (!reason) {
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
			plan_add_skip(&plan, &skips_cap, e->name, d->path, reason);
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
	struct interp_cache cache = { 0 };
	char buf[HOOK_SKIP_REASON_MAX];
	const char *fault, *slash;
	bool script = true;
	struct walk w;
	int r;

	if (!path || !path[0])
		return -EINVAL;
	r = walk_path(path, &w);
	if (r < 0)
		return r;
	fault = w.fault[0] ? w.fault : inode_fault(&w.st);
	if (!fault)
		fault = exec_fault(w.fd, &cache, &script, buf, sizeof(buf));
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

/* The program interpreter of the ELF file on fd (native byte order only):
 * the PT_INTERP entry of its program headers. */
static int elf_interpreter(int fd, const unsigned char *head, size_t k, char *buf, size_t n)
{
	bool is64 = head[EI_CLASS] == ELFCLASS64;
	uint64_t phoff, off = 0, size = 0;
	unsigned phnum, phentsize;
	Elf64_Ehdr e64;
	Elf32_Ehdr e32;

	if (head[EI_DATA] != HOST_ELF_DATA || k < (is64 ? sizeof(e64) : sizeof(e32)))
		return -ENOENT;
	if (is64) {
		memcpy(&e64, head, sizeof(e64));
		phoff = e64.e_phoff;
		phnum = e64.e_phnum;
		phentsize = e64.e_phentsize;
	} else {
		memcpy(&e32, head, sizeof(e32));
		phoff = e32.e_phoff;
		phnum = e32.e_phnum;
		phentsize = e32.e_phentsize;
	}
	/* The kernel reads no more than 64 KiB of program headers either. */
	if (phentsize < (is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr)) ||
	    (uint64_t)phnum * phentsize > 65536)
		return -ENOENT;
	for (unsigned i = 0; i < phnum && !size; i++) {
		off_t at = (off_t)(phoff + (uint64_t)i * phentsize);
		Elf64_Phdr p64;
		Elf32_Phdr p32;

		if (is64) {
			if (pread(fd, &p64, sizeof(p64), at) != (ssize_t)sizeof(p64))
				return -ENOENT;
			if (p64.p_type == PT_INTERP) {
				off = p64.p_offset;
				size = p64.p_filesz;
			}
		} else {
			if (pread(fd, &p32, sizeof(p32), at) != (ssize_t)sizeof(p32))
				return -ENOENT;
			if (p32.p_type == PT_INTERP) {
				off = p32.p_offset;
				size = p32.p_filesz;
			}
		}
	}
	if (size < 2 || size > n || pread(fd, buf, (size_t)size, (off_t)off) != (ssize_t)size ||
	    buf[size - 1] != '\0')
		return -ENOENT;
	return 0;
}

int hook_file_interpreter(const struct hook_file *f, char *buf, size_t n)
{
	unsigned char head[EXEC_HEAD_MAX];
	int flags = fcntl(f->fd, F_GETFL), fd = f->fd, r;
	ssize_t k;

	if (flags < 0)
		return -errno;
	if (flags & O_PATH) {
		/* Opened only to be executed: read it through /proc. */
		char proc[64];

		(void)snprintf(proc, sizeof(proc), "/proc/self/fd/%d", f->fd);
		fd = open(proc, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
		if (fd < 0)
			return -errno;
	}
	k = pread(fd, head, sizeof(head), 0);
	if (k < 0)
		r = -errno;
	else if (k >= 2 && head[0] == '#' && head[1] == '!')
		r = script_interpreter((const char *)head, (size_t)k, buf, n) ? 0 : -ENOENT;
	else if (k >= SELFMAG && memcmp(head, ELFMAG, SELFMAG) == 0)
		r = elf_interpreter(fd, head, (size_t)k, buf, n);
	else
		r = -ENOENT;
	if (fd != f->fd)
		close(fd);
	return r;
}
