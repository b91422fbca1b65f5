/* tree.c - the hooks' process trees as the runner sees them: finding,
 * stopping, killing and reaping every descendant of the agent through
 * /proc. It knows no hook run: the runner (run.c, run-end.c) says when to
 * kill and which pids a child source waits for, and those it must never
 * reap. The subreaper and the hooks' cgroup are tree-cgroup.c's. It never
 * logs and never sleeps. */
#include "hooks/tree-internal.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "util.h"

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
bool pidset_add(struct hooktree_pidset *s, pid_t p)
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

/* ---- for the runner ---- */

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
