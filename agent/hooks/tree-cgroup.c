/* tree-cgroup.c - where the hooks' process trees are kept: the agent as
 * child subreaper, and the hooks' cgroup (leftovers of an earlier agent
 * killed, the agent moved in and out, the cgroup removed). It kills only
 * what an earlier agent left in that cgroup: what a hook of this agent
 * leaves behind is tree.c's. It never logs, and never sleeps except in
 * hooks_tree_setup, before the loop runs. */
#include "hooks/tree-internal.h"

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
#include <time.h>
#include <unistd.h>

#include "util.h"

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
