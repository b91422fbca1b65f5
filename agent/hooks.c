/* hooks.c - the hook runner: runs one hook on the caller's sd-event loop
 * (fork/exec into a clean session, the event on stdin, output to the log,
 * the budget enforced) and makes sure that nothing the hook started outlives
 * it: its cgroup, its process group and every process the agent adopts as
 * child subreaper die before the end is reported. Which hook runs when is the
 * engine's. It never blocks the loop, except for a bounded wait for
 * processes it has just SIGKILLed on the free path, and before the loop runs
 * (hooks_tree_setup). */
#include "hooks.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/magic.h>
#include <sys/poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

/* ---- outcomes and results ---- */

static const char *const outcome_names[_HOOK_OUTCOME_MAX] = {
	[HOOK_PENDING] = "pending",
	[HOOK_RUNNING] = "running",
	[HOOK_OK] = "ok",
	[HOOK_FAILED] = "failed",
	[HOOK_TIMEOUT] = "timeout",
	[HOOK_SKIPPED] = "skipped",
};

const char *hook_outcome_to_string(enum hook_outcome o)
{
	if ((int)o < 0 || o >= _HOOK_OUTCOME_MAX)
		return NULL;
	return outcome_names[o];
}

int hook_outcome_from_string(const char *s, enum hook_outcome *ret)
{
	if (!s)
		return -EINVAL;
	for (int i = 0; i < _HOOK_OUTCOME_MAX; i++) {
		if (strcmp(s, outcome_names[i]) == 0) {
			*ret = (enum hook_outcome)i;
			return 0;
		}
	}
	return -EINVAL;
}

bool hook_outcome_is_final(enum hook_outcome o)
{
	return o == HOOK_OK || o == HOOK_FAILED || o == HOOK_TIMEOUT || o == HOOK_SKIPPED;
}

void hook_result_init(struct hook_result *r, const char *name, const char *path)
{
	memset(r, 0, sizeof(*r));
	(void)strscpy(r->name, sizeof(r->name), name ? name : "");
	(void)strscpy(r->path, sizeof(r->path), path ? path : "");
	r->outcome = HOOK_PENDING;
	r->exit_status = -1;
}

static void result_clear_output(struct hook_result *r)
{
	for (size_t i = 0; i < HOOK_OUTPUT_LINES; i++)
		freep_str(&r->output[i]);
	r->output_next = 0;
	r->n_output = 0;
}

void hook_result_done(struct hook_result *r)
{
	if (!r)
		return;
	result_clear_output(r);
}

void hook_result_add_line(struct hook_result *r, const char *line)
{
	size_t slot = r->output_next % HOOK_OUTPUT_LINES;

	free(r->output[slot]);
	r->output[slot] = xstrndup(line, HOOK_LINE_MAX);
	r->output_next = (slot + 1) % HOOK_OUTPUT_LINES;
	if (r->n_output < HOOK_OUTPUT_LINES)
		r->n_output++;
}

void hook_result_foreach_line(const struct hook_result *r,
			      void (*fn)(const char *line, void *userdata), void *userdata)
{
	size_t n = r->n_output > HOOK_OUTPUT_LINES ? HOOK_OUTPUT_LINES : r->n_output;
	size_t first = (r->output_next % HOOK_OUTPUT_LINES + HOOK_OUTPUT_LINES - n) % HOOK_OUTPUT_LINES;

	for (size_t i = 0; i < n; i++) {
		const char *line = r->output[(first + i) % HOOK_OUTPUT_LINES];

		if (line)
			fn(line, userdata);
	}
}

/* ---- environment ---- */

void strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static const char *str_or_empty(const char *s)
{
	return s ? s : "";
}

char **hooks_env_new(const struct spot_event *ev, const char *vm_name,
		     uint64_t deadline_wall_usec, bool drill)
{
	char not_before[RFC3339_MAX];
	char deadline[32] = "";
	char **v = xcalloc(16, sizeof(char *));
	size_t n = 0;

	(void)format_rfc3339(not_before, sizeof(not_before), ev->not_before_usec);
	if (deadline_wall_usec > 0)
		(void)snprintf(deadline, sizeof(deadline), "%llu",
			       (unsigned long long)(deadline_wall_usec / USEC_PER_SEC));

	v[n++] = xstrdup("PATH=" HOOK_PATH_ENV);
	v[n++] = xstrdup("LANG=C.UTF-8");
	v[n++] = xstrdup("TZ=UTC");
	v[n++] = xasprintf("SPOT_EVENT_ID=%s", ev->id);
	v[n++] = xasprintf("SPOT_EVENT_TYPE=%s", str_or_empty(event_type_to_string(ev->type)));
	v[n++] = xasprintf("SPOT_EVENT_STATUS=%s", str_or_empty(event_status_to_string(ev->status)));
	v[n++] = xasprintf("SPOT_EVENT_SOURCE=%s", ev->source);
	v[n++] = xasprintf("SPOT_NOT_BEFORE=%s", not_before);
	v[n++] = xasprintf("SPOT_DEADLINE=%s", deadline);
	v[n++] = xasprintf("SPOT_PROVIDER=%s", str_or_empty(provider_to_string(ev->provider)));
	v[n++] = xasprintf("SPOT_VM_NAME=%s", str_or_empty(vm_name));
	v[n++] = xstrdup(drill ? "SPOT_DRILL=1" : "SPOT_DRILL=0");
	v[n] = NULL;
	return v;
}

/* ---- the hooks' process trees ----
 *
 * Two nets catch what a hook leaves behind. The agent is a child subreaper,
 * so a process whose parent dies is re-parented to the agent instead of
 * init: everything a hook starts stays below the agent, whatever it does
 * with sessions and groups. And, when hooks_tree_setup could make one, each
 * hook moves itself into a cgroup of its own, which is found again by an
 * agent restarted after a crash. Only one hook runs at a time and the agent
 * starts no other processes, so every child of the agent that no child
 * source waits for is a hook's leftover. */

/* Scan-and-stop rounds before everything found is killed. */
#define TREE_ROUNDS_MAX      8
/* After a hook's main process ended: how long to wait for the processes it
 * left behind to die (they have been sent SIGKILL, so only a process stuck
 * in the kernel takes long), and how often to look again meanwhile. */
#define TREE_WAIT_USEC       (5 * USEC_PER_SEC)
#define TREE_RECHECK_USEC    (100 * USEC_PER_MSEC)
/* hook_run_free waits this long for a main process it SIGKILLed. */
#define FREE_WAIT_MSEC       5
/* hooks_tree_setup waits this long for leftovers of an earlier agent. */
#define SETUP_WAIT_USEC      (2 * USEC_PER_SEC)
#define SETUP_POLL_NSEC      (10 * 1000 * 1000L)
#define CGROUP_DEPTH_MAX     8
#define TREE_TAG_MAX         64

static struct {
	bool subreaper;
	char *cgroup;                /* the hooks' cgroup directory, or NULL */
	char *cgroup_procs;          /* its cgroup.procs, where each hook moves itself */
	struct hook_run *active;     /* started, and not yet ended or freed */
} tree;

/* A sorted set of pids. */
struct pidset {
	pid_t *v;
	size_t n, cap;
};

static size_t pidset_lower_bound(const struct pidset *s, pid_t p)
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

static bool pidset_has(const struct pidset *s, pid_t p)
{
	size_t i = pidset_lower_bound(s, p);

	return i < s->n && s->v[i] == p;
}

/* Returns true when p was not in the set yet. */
static bool pidset_add(struct pidset *s, pid_t p)
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

static void pidset_done(struct pidset *s)
{
	free(s->v);
	*s = (struct pidset){ 0 };
}

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
	struct pidset alive;         /* living descendants of the agent */
	struct pidset children;      /* its direct children, living or not */
};

static void tree_scan_done(struct tree_scan *t)
{
	pidset_done(&t->alive);
	pidset_done(&t->children);
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
static void reap_children(const struct pidset *children, const pid_t keep[2])
{
	for (size_t i = 0; i < children->n; i++) {
		siginfo_t si = { 0 };

		if (!pid_kept(children->v[i], keep))
			(void)waitid(P_PID, (id_t)children->v[i], &si, WEXITED | WNOHANG);
	}
}

/* SIGTERM (and SIGCONT, for a stopped one) to every living descendant. */
static void tree_terminate(void)
{
	struct tree_scan t;

	tree_scan(&t);
	for (size_t i = 0; i < t.alive.n; i++) {
		(void)kill(t.alive.v[i], SIGTERM);
		(void)kill(t.alive.v[i], SIGCONT);
	}
	tree_scan_done(&t);
}

/* SIGKILL to every living descendant, the careful way: all of them are
 * stopped first, scanning again until a scan finds nobody new (a stopped
 * process cannot fork), and only then killed. Reaps the dead children on
 * the way (see reap_children). Adds the pids killed to *killed (may be
 * NULL). Returns how many were alive; *ret_watch (may be NULL) gets one
 * living child of the agent not in keep, or 0. The pids come from /proc, so
 * one that exits and is reused between the scan and the kill would be hit:
 * the same race as any cgroup.procs reader, in a window of microseconds. */
static size_t tree_kill(const pid_t keep[2], struct pidset *killed, pid_t *ret_watch)
{
	struct pidset stopped = { 0 };
	size_t alive = 0;
	pid_t watch = 0;

	for (int round = 0; round < TREE_ROUNDS_MAX; round++) {
		struct tree_scan t;
		size_t fresh = 0;

		tree_scan(&t);
		reap_children(&t.children, keep);
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
	pidset_done(&stopped);
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
static void cgroup_read_pids(const char *dir, struct pidset *set, unsigned depth)
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
	struct pidset s = { 0 };
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
	pidset_done(&s);
	return r;
}

/* SIGKILL to everything in the cgroup. cgroup.kill (Linux 5.14) does it
 * atomically, forks in flight included; before that: freeze (a frozen
 * process cannot fork, and a fatal signal still ends it), kill what is
 * listed, thaw, until a round lists nobody new. */
static void cgroup_kill(const char *dir)
{
	struct pidset killed = { 0 };

	if (cgroup_write(dir, "cgroup.kill", "1") >= 0)
		return;
	for (int round = 0; round < TREE_ROUNDS_MAX; round++) {
		struct pidset s = { 0 };
		size_t fresh = 0;

		(void)cgroup_write(dir, "cgroup.freeze", "1");
		cgroup_read_pids(dir, &s, 0);
		for (size_t i = 0; i < s.n; i++) {
			(void)kill(s.v[i], SIGKILL);
			if (pidset_add(&killed, s.v[i]))
				fresh++;
		}
		(void)cgroup_write(dir, "cgroup.freeze", "0");
		pidset_done(&s);
		if (fresh == 0)
			break;
	}
	pidset_done(&killed);
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
	struct pidset s = { 0 };
	unsigned n;

	cgroup_read_pids(dir, &s, 0);
	n = (unsigned)s.n;
	pidset_done(&s);
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
	freep_str(&tree.cgroup_procs);
}

int hooks_tree_setup(const char *tag, unsigned *ret_killed)
{
	char own[PATH_MAX];
	const char *mount;
	unsigned killed = 0;
	char *dir = NULL;
	int r = 0;

	if (tag && !tag_valid(tag))
		return -EINVAL;
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) < 0)
		return -errno;
	tree.subreaper = true;
	tree_forget_cgroup();
	if (!tag)
		goto out;

	/* No cgroup is no error: the subreaper alone still catches what a
	 * hook leaves behind while the agent lives. */
	mount = cgroup2_mount();
	if (!mount || own_cgroup(own, sizeof(own)) < 0)
		goto out;
	dir = xasprintf("%s%s/spot-agent-hooks-%s", mount, strcmp(own, "/") == 0 ? "" : own, tag);
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		goto out;
	tree.cgroup_procs = xasprintf("%s/cgroup.procs", dir);
	if (access(tree.cgroup_procs, W_OK) < 0) {
		freep_str(&tree.cgroup_procs);
		goto out;
	}
	/* A previous agent may have died between freezing and thawing; a
	 * hook moved into a frozen cgroup would hang. */
	(void)cgroup_write(dir, "cgroup.freeze", "0");
	tree.cgroup = dir;
	dir = NULL;
	r = kill_leftovers(tree.cgroup, &killed);
out:
	free(dir);
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
	/* EBUSY while something still lives there: then it stays for the
	 * next agent's set-up to deal with. */
	if (tree.cgroup)
		(void)rmdir(tree.cgroup);
	tree_forget_cgroup();
}

/* ---- running one hook ---- */

/* Output read in one go: what a finished hook left in the pipe, bounded in
 * case an escaped process keeps writing. */
#define DRAIN_MAX (4 * 1024 * 1024)

struct hook_run {
	sd_event *event;
	struct hook_result res;
	char *event_id;
	char *stdin_json;
	size_t stdin_len;
	size_t stdin_off;
	uint64_t kill_grace_usec;
	hook_run_ended ended;
	void *userdata;

	pid_t pid;                       /* the main process, its group and session */
	uint64_t start_mono_usec;
	sd_event_source *child_source;   /* the main process; NULL once it ended */
	sd_event_source *timer_source;   /* the budget, then the grace */
	bool term_sent;
	bool main_ended;                 /* waiting for what it left behind */
	bool finished;                   /* ended was called */
	int stdin_fd;
	sd_event_source *stdin_source;
	int out_fd;                      /* stdout and stderr share one pipe */
	sd_event_source *out_source;
	int exec_fd;                     /* execve's errno, or EOF when it worked */
	char line[HOOK_LINE_MAX + 1];
	size_t line_len;
	uint64_t logged_bytes;
	bool drop_noted;

	/* After the main process ended. */
	struct pidset left;              /* processes it left behind, killed */
	sd_event_source *orphan_source;  /* one adopted leftover we wait for */
	pid_t orphan_pid;
	sd_event_source *reap_timer;     /* looks again; bounds the wait */
	uint64_t reap_until_mono_usec;
	sd_event_source *end_source;     /* defer: reports the end */
};

static double usec_to_sec(uint64_t usec)
{
	return (double)usec / (double)USEC_PER_SEC;
}

static const char *signal_name(int sig, char *buf, size_t n)
{
	const char *abbrev = sigabbrev_np(sig);

	if (abbrev)
		(void)snprintf(buf, n, "SIG%s", abbrev);
	else
		(void)snprintf(buf, n, "signal %d", sig);
	return buf;
}

static void close_source(sd_event_source **s, int *fd)
{
	*s = sd_event_source_disable_unref(*s);
	if (fd && *fd >= 0) {
		close(*fd);
		*fd = -1;
	}
}

static void close_fd(int *fd)
{
	if (*fd >= 0)
		close(*fd);
	*fd = -1;
}

/* Bytes below 0x20 other than tab become '?', so a hook cannot forge log
 * records or terminal escapes. Empty lines are dropped. */
static void emit_line(struct hook_run *run, char *line, size_t len)
{
	struct hook_result *r = &run->res;

	if (len > 0 && line[len - 1] == '\r')
		len--;
	if (len == 0)
		return;
	line[len] = '\0';
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	if (run->logged_bytes < HOOK_LOG_BYTES_MAX) {
		log_hook(LOG_INFO, run->event_id, r->name, "%s", line);
		run->logged_bytes += len + 1;
	} else if (!run->drop_noted) {
		log_hook(LOG_WARNING, run->event_id, r->name,
			 "hook '%s' wrote more than %d KiB, further output is counted but not logged",
			 r->name, HOOK_LOG_BYTES_MAX / 1024);
		run->drop_noted = true;
	}
	hook_result_add_line(r, line);
}

static void feed_output(struct hook_run *run, const char *buf, size_t n)
{
	run->res.output_bytes += n;
	while (n > 0) {
		const char *nl = memchr(buf, '\n', n);
		size_t take = nl ? (size_t)(nl - buf) : n;
		size_t room = HOOK_LINE_MAX - run->line_len;

		if (take > room)
			take = room;
		memcpy(run->line + run->line_len, buf, take);
		run->line_len += take;
		buf += take;
		n -= take;
		if (n > 0 && *buf == '\n') {
			buf++;
			n--;
			emit_line(run, run->line, run->line_len);
			run->line_len = 0;
		} else if (run->line_len == HOOK_LINE_MAX) {
			emit_line(run, run->line, run->line_len);
			run->line_len = 0;
		}
	}
}

static void flush_output(struct hook_run *run)
{
	if (run->line_len > 0)
		emit_line(run, run->line, run->line_len);
	run->line_len = 0;
}

/* Reads what is there without blocking, at most max bytes; at EOF (or an
 * error) the pipe is closed. */
static void read_output(struct hook_run *run, size_t max)
{
	char buf[16384];
	size_t total = 0;

	while (run->out_fd >= 0 && total < max) {
		ssize_t k = read(run->out_fd, buf, sizeof(buf));

		if (k > 0) {
			feed_output(run, buf, (size_t)k);
			total += (size_t)k;
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return;
		flush_output(run);
		close_source(&run->out_source, &run->out_fd);
	}
}

static int on_output(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	/* A bounded amount per wakeup keeps a chatty hook from starving the loop. */
	read_output(userdata, 4 * 16384);
	return 0;
}

static int on_stdin(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct hook_run *run = userdata;

	while (run->stdin_off < run->stdin_len) {
		ssize_t k = write(run->stdin_fd, run->stdin_json + run->stdin_off,
				  run->stdin_len - run->stdin_off);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0 && errno == EAGAIN)
			return 0;
		if (k <= 0)
			break;  /* EPIPE: the hook does not read its stdin, fine */
		run->stdin_off += (size_t)k;
	}
	close_source(&run->stdin_source, &run->stdin_fd);
	return 0;
}

/* The pids that child sources wait for, which nobody else may reap. */
static void run_keep(const struct hook_run *run, pid_t keep[2])
{
	keep[0] = run->child_source ? run->pid : 0;
	keep[1] = run->orphan_source ? run->orphan_pid : 0;
}

/* sig to the hook's group, its whole tree and, for SIGKILL, its cgroup. */
static void signal_run(struct hook_run *run, int sig)
{
	pid_t keep[2];

	if (run->child_source) {
		/* The main process is unreaped, so neither id can have been
		 * reused; the plain pid covers a child that has not reached
		 * setsid yet. */
		(void)kill(-run->pid, sig);
		(void)kill(run->pid, sig);
		if (sig == SIGTERM) {
			(void)kill(-run->pid, SIGCONT);
			(void)kill(run->pid, SIGCONT);
		}
	}
	if (sig == SIGTERM) {
		tree_terminate();
		return;
	}
	if (tree.cgroup)
		cgroup_kill(tree.cgroup);
	run_keep(run, keep);
	(void)tree_kill(keep, NULL, NULL);
}

static int arm_timer(struct hook_run *run, sd_event_source **s, uint64_t usec,
		     sd_event_time_handler_t fn)
{
	int r;

	if (!*s)
		return sd_event_add_time(run->event, s, CLOCK_MONOTONIC, usec, USEC_PER_MSEC, fn, run);
	r = sd_event_source_set_time(*s, usec);
	if (r >= 0)
		r = sd_event_source_set_enabled(*s, SD_EVENT_ONESHOT);
	return r;
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* The first step of a timeout: SIGTERM now, SIGKILL after the grace. */
static void begin_kill(struct hook_run *run)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	run->term_sent = true;
	run->res.timed_out = true;
	log_hook(LOG_WARNING, run->event_id, run->res.name, "hook '%s' timed out after %.1f s, killing",
		 run->res.name, usec_to_sec(now - run->start_mono_usec));
	signal_run(run, SIGTERM);
	if (arm_timer(run, &run->timer_source, now + run->kill_grace_usec, on_timer) < 0)
		signal_run(run, SIGKILL);  /* cannot wait for the grace */
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct hook_run *run = userdata;

	if (!run->term_sent) {
		begin_kill(run);
		return 0;
	}
	log_hook(LOG_WARNING, run->event_id, run->res.name,
		 "hook '%s' still running %.1f s after SIGTERM, sending SIGKILL",
		 run->res.name, usec_to_sec(run->kill_grace_usec));
	signal_run(run, SIGKILL);
	return 0;
}

void hook_run_kill(struct hook_run *run)
{
	if (!run || run->main_ended || run->term_sent)
		return;
	begin_kill(run);
}

/* The interpreter a "#!" line names, when it does not exist; else "". */
static void missing_interpreter(const char *path, char *buf, size_t n)
{
	char head[256];
	struct stat st;
	ssize_t k;
	size_t i = 2, j = 0;
	int fd;

	buf[0] = '\0';
	fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return;
	k = fstat(fd, &st) >= 0 && S_ISREG(st.st_mode) ? read(fd, head, sizeof(head) - 1) : -1;
	close(fd);
	if (k < 2 || head[0] != '#' || head[1] != '!')
		return;
	head[k] = '\0';
	while (head[i] == ' ' || head[i] == '\t')
		i++;
	while (head[i] && !strchr(" \t\r\n", head[i]) && j < n - 1)
		buf[j++] = head[i++];
	buf[j] = '\0';
	if (j == 0 || access(buf, F_OK) >= 0)
		buf[0] = '\0';
}

static void log_end(struct hook_run *run)
{
	const struct hook_result *r = &run->res;
	const char *suffix = r->timed_out ? " (timed out)" :
			     r->exit_status == 127 ? " (a command was not found, or the hook could not be set up)" : "";
	char sig[32];

	if (r->exec_errno) {
		char interp[PATH_MAX];

		missing_interpreter(r->path, interp, sizeof(interp));
		log_hook(LOG_WARNING, run->event_id, r->name, "hook '%s' cannot be executed: %s%s%s%s",
			 r->name, strerror(r->exec_errno), interp[0] ? " (interpreter '" : "",
			 interp, interp[0] ? "')" : "");
	} else if (r->term_signal > 0)
		log_hook(LOG_WARNING, run->event_id, r->name, "hook '%s' killed by %s after %.2f s%s",
			 r->name, signal_name(r->term_signal, sig, sizeof(sig)),
			 usec_to_sec(r->duration_usec), suffix);
	else
		log_hook(r->outcome == HOOK_OK ? LOG_INFO : LOG_WARNING, run->event_id, r->name,
			 "hook '%s' exited %d after %.2f s%s",
			 r->name, r->exit_status, usec_to_sec(r->duration_usec), suffix);
}

static void report_end(struct hook_run *run)
{
	if (tree.active == run)
		tree.active = NULL;
	run->finished = true;
	/* The last thing a run does: ended may free it. */
	run->ended(run, &run->res, run->userdata);
}

static int on_end(sd_event_source *s, void *userdata)
{
	struct hook_run *run = userdata;

	run->end_source = sd_event_source_disable_unref(run->end_source);
	report_end(run);
	return 0;
}

/* Everything is dead: closes up and reports the end from a callback of its
 * own. Not from this one: the caller may start the next hook from ended,
 * and the pid whose child source is being dispatched is reaped by sd-event
 * only after the dispatch; a sweep must not take it first. */
static void finish(struct hook_run *run)
{
	close_source(&run->reap_timer, NULL);
	close_source(&run->orphan_source, NULL);
	read_output(run, DRAIN_MAX);
	flush_output(run);
	close_source(&run->out_source, &run->out_fd);
	close_source(&run->stdin_source, &run->stdin_fd);
	close_fd(&run->exec_fd);
	/* A hook killed for its timeout took its children with it; one that
	 * ended by itself should not have left any. */
	if (run->left.n > 0 && !run->res.timed_out)
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s' left %zu process%s behind, killed", run->res.name,
			 run->left.n, run->left.n == 1 ? "" : "es");
	if (sd_event_add_defer(run->event, &run->end_source, on_end, run) < 0)
		report_end(run);  /* no memory for a source: at once, then */
}

static int on_orphan_exit(sd_event_source *s, const siginfo_t *si, void *userdata);
static int on_reap_timer(sd_event_source *s, uint64_t usec, void *userdata);

/* Kills what the ended hook left behind and reports the end once all of it
 * is dead; until then it waits for one adopted leftover at a time, and
 * looks again every TREE_RECHECK_USEC for what no pidfd reports (a process
 * of the cgroup that is not below the agent). dying: a pid whose source is
 * being dispatched, which sd-event reaps after the callback. */
static void tidy_up(struct hook_run *run, pid_t dying)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	pid_t keep[2], watch = 0;
	size_t alive;

	run_keep(run, keep);
	if (!keep[0])
		keep[0] = dying;
	else if (!keep[1])
		keep[1] = dying;
	if (tree.cgroup) {
		cgroup_read_pids(tree.cgroup, &run->left, 0);
		cgroup_kill(tree.cgroup);
	}
	alive = tree_kill(keep, &run->left, &watch);
	/* Every member of the hook's group is below the agent, so this adds
	 * nothing tree_kill missed but a fork in flight; the leader is an
	 * unreaped zombie while its callback runs, so the id is still its. */
	if (dying == run->pid)
		(void)kill(-run->pid, SIGKILL);
	if (alive == 0 && !(tree.cgroup && cgroup_populated(tree.cgroup))) {
		finish(run);
		return;
	}
	if (now >= run->reap_until_mono_usec) {
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s': %zu process%s it left behind still alive %.0f s after SIGKILL, going on",
			 run->res.name, alive, alive == 1 ? "" : "es", usec_to_sec(TREE_WAIT_USEC));
		finish(run);
		return;
	}
	if (!run->orphan_source && watch > 0 &&
	    sd_event_add_child(run->event, &run->orphan_source, watch, WEXITED, on_orphan_exit, run) >= 0)
		run->orphan_pid = watch;
	if (arm_timer(run, &run->reap_timer, now + TREE_RECHECK_USEC < run->reap_until_mono_usec ?
					     now + TREE_RECHECK_USEC : run->reap_until_mono_usec,
		      on_reap_timer) < 0 && !run->orphan_source) {
		log_hook(LOG_WARNING, run->event_id, run->res.name,
			 "hook '%s': cannot wait for the processes it left behind, going on",
			 run->res.name);
		finish(run);
	}
}

static int on_orphan_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hook_run *run = userdata;
	pid_t pid = run->orphan_pid;

	run->orphan_source = sd_event_source_disable_unref(run->orphan_source);
	run->orphan_pid = 0;
	tidy_up(run, pid);
	return 0;
}

static int on_reap_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	tidy_up(userdata, 0);
	return 0;
}

static int on_child_exit(sd_event_source *s, const siginfo_t *si, void *userdata)
{
	struct hook_run *run = userdata;
	struct hook_result *r = &run->res;
	int err = 0;

	if (si->si_code == CLD_EXITED) {
		r->exit_status = si->si_status;
		r->term_signal = 0;
	} else {
		r->exit_status = -1;
		r->term_signal = si->si_status;
	}
	r->duration_usec = now_usec(CLOCK_MONOTONIC) - run->start_mono_usec;
	run->main_ended = true;
	close_source(&run->timer_source, NULL);
	close_source(&run->stdin_source, &run->stdin_fd);

	/* The exec error pipe is complete by now: the child wrote execve's
	 * errno before it exited, or the exec closed the pipe (EOF). */
	if (run->exec_fd >= 0 && read(run->exec_fd, &err, sizeof(err)) == (ssize_t)sizeof(err) &&
	    err > 0 && r->exit_status == 127)
		r->exec_errno = err;
	close_fd(&run->exec_fd);

	if (r->timed_out)
		r->outcome = HOOK_TIMEOUT;
	else if (r->exit_status == 0 || r->exit_status == HOOK_EXIT_SKIP_REST)
		r->outcome = HOOK_OK;
	else
		r->outcome = HOOK_FAILED;

	/* Take what is in the pipe now, so the output comes before the end in
	 * the log; what dying leftovers add is read until they are gone. */
	read_output(run, DRAIN_MAX);
	flush_output(run);
	log_end(run);

	/* sd-event reaps the zombie after this callback returns. */
	(void)sd_event_source_set_child_process_own(s, false);
	run->child_source = sd_event_source_disable_unref(run->child_source);
	run->reap_until_mono_usec = now_usec(CLOCK_MONOTONIC) + TREE_WAIT_USEC;
	tidy_up(run, run->pid);
	return 0;
}

struct child_args {
	int in_fd, out_fd, err_fd;
	char *const *argv;
	char *const *envp;
	int max_fd;
	pid_t agent_pid;
	const char *cgroup_procs;     /* NULL: no cgroup */
};

/* Runs in the forked child: only async-signal-safe calls from here on. */
static _Noreturn void child_exec(const struct child_args *a)
{
	struct sigaction sa;
	sigset_t none;
	int in, out, err, e;

	/* Into the hooks' cgroup first, so that everything it forks is
	 * there too; without it, the subreaper still catches them. */
	if (a->cgroup_procs) {
		int fd = open(a->cgroup_procs, O_WRONLY | O_CLOEXEC);

		if (fd >= 0) {
			(void)!write(fd, "0", 1);
			(void)close(fd);
		}
	}
	if (setsid() < 0)
		_exit(127);
	/* A hook must not outlive a crashed agent: the restarted agent runs
	 * it again (it never completed), and two copies must never overlap.
	 * The check after prctl closes the race with an agent already gone. */
	if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0 || getppid() != a->agent_pid)
		_exit(127);
	/* The raw system call, because glibc refuses to touch the two signals
	 * it reserves (32, 33) and an ignored disposition there would
	 * otherwise be inherited. All zeros is SIG_DFL in every layout of
	 * the kernel's struct sigaction. */
	memset(&sa, 0, sizeof(sa));
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)syscall(SYS_rt_sigaction, sig, &sa, NULL, (size_t)(_NSIG - 1) / 8);
	sigemptyset(&none);
	(void)sigprocmask(SIG_SETMASK, &none, NULL);
	if (chdir("/") < 0)
		_exit(127);

	/* Move the pipe ends above 2 first: one of them may be 0, 1 or 2
	 * when the agent runs without standard streams. The exec error pipe
	 * ends up at 3, close-on-exec, and everything above it is closed. */
	in = fcntl(a->in_fd, F_DUPFD_CLOEXEC, 3);
	out = fcntl(a->out_fd, F_DUPFD_CLOEXEC, 3);
	err = fcntl(a->err_fd, F_DUPFD_CLOEXEC, 3);
	if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
		_exit(127);
	if (err != 3 && dup3(err, 3, O_CLOEXEC) < 0)
		_exit(127);
	if (close_range(4, ~0U, 0) < 0)
		for (int fd = 4; fd < a->max_fd; fd++)
			(void)close(fd);

	execve(a->argv[0], a->argv, a->envp);
	e = errno;
	(void)!write(3, &e, sizeof(e));
	_exit(127);
}

static int set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -errno;
	return 0;
}

static int ensure_sigchld_blocked(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	return -pthread_sigmask(SIG_BLOCK, &set, NULL);
}

/* Kills and reaps what an earlier run may have left: by now every child of
 * the agent is such a leftover (see the top of the tree section). */
static void sweep_leftovers(void)
{
	if (tree.cgroup)
		cgroup_kill(tree.cgroup);
	(void)tree_kill(NULL, NULL, NULL);
}

/* SIGKILLs the run's tree, waits FREE_WAIT_MSEC at most for the main
 * process, and reaps what has died; later sweeps reap the rest. */
static void kill_now(struct hook_run *run)
{
	signal_run(run, SIGKILL);
	if (run->child_source) {
		struct pollfd p = { .fd = sd_event_source_get_child_pidfd(run->child_source), .events = POLLIN };

		if (p.fd >= 0)
			while (poll(&p, 1, FREE_WAIT_MSEC) < 0 && errno == EINTR)
				;
		/* Not the source's own kill-and-wait, which may block. */
		(void)sd_event_source_set_child_process_own(run->child_source, false);
		run->child_source = sd_event_source_disable_unref(run->child_source);
	}
	close_source(&run->orphan_source, NULL);
	(void)tree_kill(NULL, NULL, NULL);
}

static void run_release(struct hook_run *run)
{
	close_source(&run->timer_source, NULL);
	close_source(&run->reap_timer, NULL);
	close_source(&run->orphan_source, NULL);
	close_source(&run->end_source, NULL);
	close_source(&run->out_source, &run->out_fd);
	close_source(&run->stdin_source, &run->stdin_fd);
	close_fd(&run->exec_fd);
	hook_result_done(&run->res);
	pidset_done(&run->left);
	sd_event_unref(run->event);
	free(run->stdin_json);
	free(run->event_id);
	free(run);
}

void hook_run_free(struct hook_run *run)
{
	if (!run)
		return;
	/* With end_source pending, everything is dead already. */
	if (!run->finished && !run->end_source) {
		if (!run->main_ended)
			log_hook(LOG_WARNING, run->event_id, run->res.name,
				 "hook '%s' killed: the run is going away", run->res.name);
		kill_now(run);
	}
	if (tree.active == run)
		tree.active = NULL;
	run_release(run);
}

/* The environment of the hook: the base one without any SPOT_HOOK_TIMEOUT,
 * then that variable for this budget. Frees with strv_free. */
static char **run_env(char **base, uint64_t budget_usec)
{
	uint64_t secs = budget_usec == USEC_INFINITY ? 0 : budget_usec / USEC_PER_SEC;
	size_t n = 0, k = 0;
	char **v;

	if (secs == 0 && budget_usec != USEC_INFINITY)
		secs = 1;
	while (base && base[n])
		n++;
	v = xcalloc(n + 2, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(base[i], "SPOT_HOOK_TIMEOUT=", 18) != 0)
			v[k++] = xstrdup(base[i]);
	v[k++] = xasprintf("SPOT_HOOK_TIMEOUT=%llu", (unsigned long long)secs);
	v[k] = NULL;
	return v;
}

int hook_run_start(const struct hook_run_params *p, struct hook_run **ret)
{
	int in_pipe[2] = { -1, -1 }, out_pipe[2] = { -1, -1 }, err_pipe[2] = { -1, -1 };
	struct child_args a = { 0 };
	struct hook_run *run;
	char *argv[2] = { NULL, NULL };
	char **envp = NULL;
	long max_fd;
	uint64_t now;
	int k;

	if (!p || !p->event || !p->path || !p->ended || !ret)
		return -EINVAL;
	if (tree.active)
		return -EBUSY;
	k = ensure_sigchld_blocked();
	if (k < 0)
		return k;
	if (!tree.subreaper) {
		/* hooks_tree_setup was not called: the subreaper at least.
		 * It cannot fail on any kernel with cgroup2. */
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
		tree.subreaper = true;
	}
	sweep_leftovers();

	run = xcalloc(1, sizeof(*run));
	run->event = sd_event_ref(p->event);
	hook_result_init(&run->res, p->name ? p->name : p->path, p->path);
	run->res.budget_usec = p->budget_usec;
	run->event_id = xstrdup(p->event_id ? p->event_id : "");
	run->stdin_json = xstrdup(p->stdin_json ? p->stdin_json : "");
	run->stdin_len = strlen(run->stdin_json);
	run->kill_grace_usec = p->kill_grace_usec ? p->kill_grace_usec : HOOK_KILL_GRACE_USEC;
	run->ended = p->ended;
	run->userdata = p->userdata;
	run->stdin_fd = run->out_fd = run->exec_fd = -1;

	envp = run_env(p->env, p->budget_usec);
	argv[0] = run->res.path;
	max_fd = sysconf(_SC_OPEN_MAX);
	if (max_fd < 0 || max_fd > 65536)
		max_fd = 65536;

	if (pipe2(in_pipe, O_CLOEXEC) < 0 || pipe2(out_pipe, O_CLOEXEC) < 0 ||
	    pipe2(err_pipe, O_CLOEXEC) < 0) {
		k = -errno;
		goto fail;
	}
	k = set_nonblock(in_pipe[1]);
	if (k >= 0)
		k = set_nonblock(out_pipe[0]);
	if (k >= 0)
		k = set_nonblock(err_pipe[0]);
	if (k < 0)
		goto fail;

	a = (struct child_args){
		.in_fd = in_pipe[0], .out_fd = out_pipe[1], .err_fd = err_pipe[1],
		.argv = argv, .envp = envp, .max_fd = (int)max_fd, .agent_pid = getpid(),
		.cgroup_procs = tree.cgroup_procs,
	};
	now = now_usec(CLOCK_MONOTONIC);
	run->start_mono_usec = now;
	run->res.start_wall_usec = now_usec(CLOCK_REALTIME);
	run->pid = fork();
	if (run->pid < 0) {
		k = -errno;
		goto fail;
	}
	if (run->pid == 0)
		child_exec(&a);

	run->stdin_fd = in_pipe[1];
	run->out_fd = out_pipe[0];
	run->exec_fd = err_pipe[0];
	in_pipe[1] = out_pipe[0] = err_pipe[0] = -1;

	k = sd_event_add_child(run->event, &run->child_source, run->pid, WEXITED, on_child_exit, run);
	if (k >= 0) {
		(void)sd_event_source_set_child_process_own(run->child_source, true);
		k = sd_event_add_io(run->event, &run->out_source, run->out_fd, EPOLLIN, on_output, run);
	}
	if (k >= 0 && run->stdin_len > 0)
		k = sd_event_add_io(run->event, &run->stdin_source, run->stdin_fd, EPOLLOUT, on_stdin, run);
	else if (k >= 0)
		close_fd(&run->stdin_fd);
	if (k >= 0 && p->budget_usec != USEC_INFINITY)
		k = arm_timer(run, &run->timer_source, now + p->budget_usec, on_timer);
	if (k < 0) {
		signal_run(run, SIGKILL);
		if (run->child_source) {
			/* Owned by the source: killed and reaped on unref. */
			run->child_source = sd_event_source_disable_unref(run->child_source);
		} else {
			(void)kill(run->pid, SIGKILL);
			while (waitpid(run->pid, NULL, 0) < 0 && errno == EINTR)
				;
		}
		goto fail;
	}

	if (p->budget_usec == USEC_INFINITY)
		log_hook(LOG_INFO, run->event_id, run->res.name, "hook '%s' started (pid %d, no timeout)",
			 run->res.name, (int)run->pid);
	else
		log_hook(LOG_INFO, run->event_id, run->res.name, "hook '%s' started (pid %d, timeout %.1f s)",
			 run->res.name, (int)run->pid, usec_to_sec(p->budget_usec));
	run->res.outcome = HOOK_RUNNING;
	tree.active = run;
	strv_free(envp);
	*ret = run;
	return 0;

fail:
	for (int i = 0; i < 2; i++) {
		close_fd(&in_pipe[i]);
		close_fd(&out_pipe[i]);
		close_fd(&err_pipe[i]);
	}
	strv_free(envp);
	run->finished = true;
	run_release(run);
	return k;
}
