/* hooktree.c - the hooks' process trees: the agent as child subreaper, the
 * hooks' cgroup (leftovers killed, the agent moved in and out, removed), and
 * finding, stopping, killing and reaping every descendant of the agent
 * through /proc. It knows no hook run: the runner (hooks.c) says when to
 * kill and which pids a child source waits for, and those it must never
 * reap. It never logs, and never sleeps except in hooks_tree_setup, before
 * the loop runs. */
#include "hooks/tree.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "util.h"

/* Scan-and-stop rounds before everything found is killed. */
#define TREE_ROUNDS_MAX      8
/* hooks_tree_setup waits this long for leftovers of an earlier agent. */
#define SETUP_WAIT_USEC      (2 * USEC_PER_SEC)
#define SETUP_POLL_NSEC      (10 * 1000 * 1000L)
#define CGROUP_DEPTH_MAX     8
#define TREE_TAG_MAX         64

/* Two nets catch what a hook leaves behind. The agent is a child subreaper,
 * so a process whose parent dies is re-parented to the agent instead of
 * init: everything a hook starts stays below the agent, whatever it does
 * with sessions and groups; that is what the runner kills. And, when
 * hooks_tree_setup could make one, the agent itself lives in a cgroup of
 * the hooks, which every hook inherits at fork (a migration per hook would
 * cost milliseconds in the kernel) and which an agent restarted after a
 * crash finds again with the old hooks' leftovers in it. Because the agent
 * is in it, that cgroup is never killed or frozen while the agent runs.
 * Only one hook runs at a time and the agent starts no other processes, so
 * every child of the agent that no child source waits for is a hook's
 * leftover. */
static struct {
	bool subreaper;
	char *cgroup;                /* the hooks' cgroup directory, or NULL */
	char *origin;                /* the cgroup the agent came from, to go back to */
	bool joined;                 /* the agent is in cgroup */
} tree;

/* ---- sets of pids ---- */

static size_t pidset_lower_bound(const struct hooktree_pidset *s, pid_t p)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->v[mid] < p)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static bool pidset_has(const struct hooktree_pidset *s, pid_t p)
{
	size_t i = pidset_lower_bound(s, p);

	return i < s->n && s->v[i] == p;
}

/* Returns true when p was not in the set yet. */
static bool pidset_add(struct hooktree_pidset *s, pid_t p)
{
	size_t i = pidset_lower_bound(s, p);

	if (pidset_has(s, p))
		return false;
	if (s->n == s->cap) {
		s->cap = s->cap ? 2 * s->cap : 16;
		s->v = xrealloc(s->v, s->cap * sizeof(pid_t));
	}
	memmove(s->v + i + 1, s->v + i, (s->n - i) * sizeof(pid_t));
	s->v[i] = p;
	s->n++;
	return true;
}

void hooktree_pidset_done(struct hooktree_pidset *s)
{
	free(s->v);
	*s = (struct hooktree_pidset){ 0 };
}

/* ---- the agent's descendants, through /proc ---- */

struct proc_info {
	pid_t pid, ppid;
	bool dead;                   /* a zombie, or on its way out */
};

static int proc_info_cmp_ppid(const void *a, const void *b)
{
	const struct proc_info *x = a, *y = b;

	return (x->ppid > y->ppid) - (x->ppid < y->ppid);
}

static int read_proc_stat(pid_t pid, struct proc_info *ret)
{
	char path[64], buf[1024];
	const char *q;
	ssize_t k;
	char state;
	int fd, ppid;

	(void)snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	k = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (k <= 0)
		return -EIO;
	buf[k] = '\0';
	/* "pid (comm) state ppid ...": comm may hold anything, ')' too. */
	q = strrchr(buf, ')');
	if (!q || sscanf(q + 1, " %c %d", &state, &ppid) != 2)
		return -EIO;
	ret->pid = pid;
	ret->ppid = (pid_t)ppid;
	ret->dead = state == 'Z' || state == 'X' || state == 'x';
	return 0;
}

/* Every process in /proc with its parent, sorted by parent. Caller frees. A
 * kernel with CONFIG_PROC_CHILDREN would name the agent's children
 * directly, but their descendants need the whole table anyway. */
static size_t proc_scan(struct proc_info **ret)
{
	struct proc_info *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	DIR *d = opendir("/proc");

	if (d) {
		while ((de = readdir(d))) {
			uint64_t pid;

			if (parse_uint64(de->d_name, 1, INT32_MAX, &pid) < 0)
				continue;
			if (n == cap) {
				cap = cap ? 2 * cap : 256;
				v = xrealloc(v, cap * sizeof(*v));
			}
			if (read_proc_stat((pid_t)pid, &v[n]) >= 0)
				n++;
		}
		closedir(d);
	}
	if (n > 1)
		qsort(v, n, sizeof(*v), proc_info_cmp_ppid);
	*ret = v;
	return n;
}

struct tree_scan {
	struct hooktree_pidset alive;         /* living descendants of the agent */
	struct hooktree_pidset children;      /* its direct children, living or not */
};

static void tree_scan_done(struct tree_scan *t)
{
	hooktree_pidset_done(&t->alive);
	hooktree_pidset_done(&t->children);
}

/* The first entry of procs (sorted by parent) whose parent is ppid. */
static size_t first_child(const struct proc_info *procs, size_t n, pid_t ppid)
{
	size_t lo = 0, hi = n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (procs[mid].ppid < ppid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Walks the process table down from the agent. */
static void tree_scan(struct tree_scan *t)
{
	pid_t self = getpid();
	struct proc_info *procs;
	size_t n = proc_scan(&procs), head = 0, len = 0;
	/* Each process has one parent, so no pid is queued twice; the bound
	 * guards against a table read while pids were being reused. */
	pid_t *queue = xmalloc((n + 1) * sizeof(pid_t));

	*t = (struct tree_scan){ 0 };
	queue[len++] = self;
	while (head < len) {
		pid_t parent = queue[head++];

		for (size_t i = first_child(procs, n, parent); i < n && procs[i].ppid == parent && len <= n; i++) {
			const struct proc_info *p = &procs[i];

			if (p->pid == self)
				continue;
			queue[len++] = p->pid;
			if (parent == self)
				(void)pidset_add(&t->children, p->pid);
			if (!p->dead)
				(void)pidset_add(&t->alive, p->pid);
		}
	}
	free(queue);
	free(procs);
}

static bool pid_kept(pid_t p, const pid_t keep[2])
{
	return keep && (p == keep[0] || p == keep[1]);
}

/* Reaps the agent's children that have died, except the ones in keep: a
 * child source waits for those, and sd-event fails when its pid was reaped
 * behind its back. */
static void reap_children(const struct hooktree_pidset *children, const pid_t keep[2],
			  struct hooktree_pidset *killed)
{
	for (size_t i = 0; i < children->n; i++) {
		siginfo_t si = { 0 };

		if (pid_kept(children->v[i], keep) ||
		    waitid(P_PID, (id_t)children->v[i], &si, WEXITED | WNOHANG) < 0)
			continue;
		/* Killed a moment ago, by the runner's SIGKILL to the group. */
		if (killed && si.si_pid > 0 && si.si_code == CLD_KILLED && si.si_status == SIGKILL)
			(void)pidset_add(killed, si.si_pid);
	}
}

void hooktree_terminate(void)
{
	struct tree_scan t;

	tree_scan(&t);
	for (size_t i = 0; i < t.alive.n; i++) {
		(void)kill(t.alive.v[i], SIGTERM);
		(void)kill(t.alive.v[i], SIGCONT);
	}
	tree_scan_done(&t);
}

/* The careful way: every living descendant is stopped first, scanning again
 * until a scan finds nobody new (a stopped process cannot fork), and only
 * then killed. The pids come from /proc, so one that exits and is reused
 * between the scan and the kill would be hit: the same race as any
 * cgroup.procs reader, in a window of microseconds. */
size_t hooktree_kill(const pid_t keep[2], struct hooktree_pidset *killed, pid_t *ret_watch)
{
	struct hooktree_pidset stopped = { 0 };
	size_t alive = 0;
	pid_t watch = 0;

	for (int round = 0; round < TREE_ROUNDS_MAX; round++) {
		struct tree_scan t;
		size_t fresh = 0;

		tree_scan(&t);
		reap_children(&t.children, keep, killed);
		for (size_t i = 0; i < t.alive.n; i++) {
			if (!pidset_add(&stopped, t.alive.v[i]))
				continue;
			(void)kill(t.alive.v[i], SIGSTOP);
			fresh++;
		}
		alive = t.alive.n;
		watch = 0;
		for (size_t i = 0; i < t.children.n && watch == 0; i++)
			if (!pid_kept(t.children.v[i], keep) && pidset_has(&t.alive, t.children.v[i]))
				watch = t.children.v[i];
		tree_scan_done(&t);
		if (fresh == 0)
			break;
	}
	for (size_t i = 0; i < stopped.n; i++) {
		(void)kill(stopped.v[i], SIGKILL);
		if (killed)
			(void)pidset_add(killed, stopped.v[i]);
	}
	hooktree_pidset_done(&stopped);
	if (ret_watch)
		*ret_watch = watch;
	return alive;
}

/* ---- the hooks' cgroup ---- */

static int cgroup_write(const char *dir, const char *file, const char *value)
{
	char path[PATH_MAX];
	int fd, r = 0;

	if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, file) >= sizeof(path))
		return -ENAMETOOLONG;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, value, strlen(value)) < 0)
		r = -errno;
	close(fd);
	return r;
}

/* Adds the pids in dir and the cgroups below it to *set. */
static void cgroup_read_pids(const char *dir, struct hooktree_pidset *set, unsigned depth)
{
	char path[PATH_MAX], buf[4096], num[16];
	size_t num_len = 0;
	struct dirent *de;
	ssize_t k;
	DIR *d;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.procs", dir) >= sizeof(path))
		return;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	while ((k = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < k; i++) {
			uint64_t v;

			if (buf[i] != '\n') {
				if (num_len < sizeof(num) - 1)
					num[num_len++] = buf[i];
				continue;
			}
			num[num_len] = '\0';
			if (parse_uint64(num, 1, INT32_MAX, &v) >= 0)
				(void)pidset_add(set, (pid_t)v);
			num_len = 0;
		}
	}
	close(fd);

	if (depth >= CGROUP_DEPTH_MAX)
		return;
	d = opendir(dir);
	if (!d)
		return;
	while ((de = readdir(d))) {
		if (de->d_type != DT_DIR || de->d_name[0] == '.')
			continue;
		if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) < sizeof(path))
			cgroup_read_pids(path, set, depth + 1);
	}
	closedir(d);
}

/* Whether a process lives in the cgroup or below (zombies do not count). */
static bool cgroup_populated(const char *dir)
{
	char path[PATH_MAX], buf[256];
	struct hooktree_pidset s = { 0 };
	const char *p;
	ssize_t k;
	bool r;
	int fd;

	if ((size_t)snprintf(path, sizeof(path), "%s/cgroup.events", dir) >= sizeof(path))
		return false;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		k = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (k > 0) {
			buf[k] = '\0';
			p = strstr(buf, "populated ");
			if (p)
				return p[strlen("populated ")] != '0';
		}
	}
	cgroup_read_pids(dir, &s, 0);
	r = s.n > 0;
	hooktree_pidset_done(&s);
	return r;
}

/* SIGKILL to everything in the cgroup. cgroup.kill (Linux 5.14) does it
 * atomically, forks in flight included; before that: freeze (a frozen
 * process cannot fork, and a fatal signal still ends it), kill what is
 * listed, thaw, until a round lists nobody new. */
static void cgroup_kill(const char *dir)
{
	struct hooktree_pidset killed = { 0 };

	if (cgroup_write(dir, "cgroup.kill", "1") >= 0)
		return;
	for (int round = 0; round < TREE_ROUNDS_MAX; round++) {
		struct hooktree_pidset s = { 0 };
		size_t fresh = 0;

		(void)cgroup_write(dir, "cgroup.freeze", "1");
		cgroup_read_pids(dir, &s, 0);
		for (size_t i = 0; i < s.n; i++) {
			(void)kill(s.v[i], SIGKILL);
			if (pidset_add(&killed, s.v[i]))
				fresh++;
		}
		(void)cgroup_write(dir, "cgroup.freeze", "0");
		hooktree_pidset_done(&s);
		if (fresh == 0)
			break;
	}
	hooktree_pidset_done(&killed);
}

/* Where the cgroup2 hierarchy is mounted: /sys/fs/cgroup on a unified
 * system, /sys/fs/cgroup/unified on a hybrid one. */
static const char *cgroup2_mount(void)
{
	static const char *const candidates[] = { "/sys/fs/cgroup", "/sys/fs/cgroup/unified" };
	struct statfs sfs;

	for (size_t i = 0; i < ELEMENTSOF(candidates); i++)
		if (statfs(candidates[i], &sfs) >= 0 && sfs.f_type == CGROUP2_SUPER_MAGIC)
			return candidates[i];
	return NULL;
}

/* The agent's own cgroup2 path ("/" or "/system.slice/x.service"). */
static int own_cgroup(char *buf, size_t n)
{
	char line[PATH_MAX + 16];
	FILE *f = fopen("/proc/self/cgroup", "re");
	int r = -ENOENT;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::/", 4) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		r = strscpy(buf, n, line + 3);
		break;
	}
	fclose(f);
	return r;
}

static bool tag_valid(const char *tag)
{
	size_t n = strlen(tag);

	if (n == 0 || n > TREE_TAG_MAX || tag[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-", tag[i]))
			return false;
	return true;
}

static void sleep_nsec(long nsec)
{
	struct timespec ts = { .tv_sec = 0, .tv_nsec = nsec };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Kills whatever is in dir: left over from an agent that was killed while
 * a hook ran. This is the one wait in this file that sleeps, and it is
 * allowed only because hooks_tree_setup runs before the loop starts. */
static int kill_leftovers(const char *dir, unsigned *ret_killed)
{
	uint64_t until = now_usec(CLOCK_MONOTONIC) + SETUP_WAIT_USEC;
	struct hooktree_pidset s = { 0 };
	unsigned n;

	cgroup_read_pids(dir, &s, 0);
	n = (unsigned)s.n;
	hooktree_pidset_done(&s);
	for (;;) {
		cgroup_kill(dir);
		if (!cgroup_populated(dir))
			break;
		if (now_usec(CLOCK_MONOTONIC) >= until)
			return -EBUSY;
		sleep_nsec(SETUP_POLL_NSEC);
	}
	*ret_killed = n;
	return 0;
}

static void tree_forget_cgroup(void)
{
	freep_str(&tree.cgroup);
	freep_str(&tree.origin);
	tree.joined = false;
}

/* Moves the agent back where it came from and removes the cgroup (EBUSY
 * while something still lives there: then it stays for the next agent's
 * set-up to deal with), and forgets it. When the agent cannot move back,
 * everything stays as it is, and that error is returned. */
static int tree_leave_cgroup(void)
{
	int r;

	if (tree.joined) {
		r = cgroup_write(tree.origin, "cgroup.procs", "0");
		if (r < 0)
			return r;
		tree.joined = false;
	}
	if (tree.cgroup)
		(void)rmdir(tree.cgroup);
	tree_forget_cgroup();
	return 0;
}

/* The name of the hooks' cgroup for tag, below the agent's own. */
static char *hooks_cgroup_name(const char *tag)
{
	return xasprintf("spot-agent-hooks-%s", tag);
}

int hooks_tree_setup(const char *tag, unsigned *ret_killed)
{
	char own[PATH_MAX], *name = NULL, *last;
	const char *mount;
	unsigned killed = 0;
	char *dir = NULL, *origin = NULL;
	int r;

	if (tag && !tag_valid(tag))
		return -EINVAL;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return -errno;
	tree.subreaper = true;
	/* Out of the cgroup chosen before, first: its leftovers are killed
	 * below, and the agent must not be among them. */
	r = tree_leave_cgroup();
	if (r < 0 || !tag)
		goto out;

	/* No cgroup is no error: the subreaper alone still catches what a
	 * hook leaves behind while the agent lives. */
	mount = cgroup2_mount();
	if (!mount || own_cgroup(own, sizeof(own)) < 0)
		goto out;
	/* An agent that finds itself in the hooks' cgroup already (started
	 * from within it) uses the one above, and moves there first. */
	name = hooks_cgroup_name(tag);
	last = strrchr(own, '/');
	if (strcmp(last + 1, name) == 0) {
		*last = '\0';
		origin = xasprintf("%s%s", mount, own);
		if (cgroup_write(origin, "cgroup.procs", "0") < 0)
			goto out;
	} else
		origin = xasprintf("%s%s", mount, strcmp(own, "/") == 0 ? "" : own);
	dir = xasprintf("%s/%s", origin, name);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto out;
	/* A previous agent may have died between freezing and thawing; a
	 * process moved into a frozen cgroup would hang. */
	(void)cgroup_write(dir, "cgroup.freeze", "0");
	r = kill_leftovers(dir, &killed);
	if (r < 0 && r != -EBUSY)
		goto out;
	/* Now the agent moves in, once, and every hook is born there. When
	 * it cannot (no write access where the two cgroups meet, or a
	 * cgroup that may not hold processes), there is no cgroup. Still
	 * joined when leftovers would not die: they are kept apart from the
	 * next agent's hooks by nothing else anyway. */
	if (cgroup_write(dir, "cgroup.procs", "0") < 0) {
		(void)rmdir(dir);
		r = 0;
		goto out;
	}
	tree.cgroup = dir;
	tree.origin = origin;
	tree.joined = true;
	dir = origin = NULL;
out:
	free(dir);
	free(origin);
	free(name);
	if (r >= 0 && ret_killed)
		*ret_killed = killed;
	return r;
}

const char *hooks_tree_cgroup(void)
{
	return tree.cgroup;
}

void hooks_tree_done(void)
{
	(void)tree_leave_cgroup();
}

/* ---- for the runner ---- */

void hooktree_ensure_subreaper(void)
{
	if (tree.subreaper)
		return;
	/* hooks_tree_setup was not called: the subreaper at least. It
	 * cannot fail on any kernel with cgroup2. */
	(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
	tree.subreaper = true;
}

bool hooktree_reap_all(struct hooktree_pidset *killed)
{
	for (;;) {
		siginfo_t si = { 0 };

		if (waitid(P_ALL, 0, &si, WEXITED | WNOHANG) < 0) {
			if (errno == EINTR)
				continue;
			return errno == ECHILD;
		}
		if (si.si_pid == 0)
			return false;
		if (killed && si.si_code == CLD_KILLED && si.si_status == SIGKILL)
			(void)pidset_add(killed, si.si_pid);
	}
}

void hooktree_sweep(void)
{
	(void)hooktree_kill(NULL, NULL, NULL);
}
