/* test-hooks.c - the hook plan rules, and the runner of one hook on a real
 * sd-event loop with real scripts in a scratch directory: outcomes, output,
 * the child's setup, timeouts, exec errors, and the processes a hook leaves
 * behind (process group, setsid, double fork, cgroup, an earlier agent's
 * leftovers). Waits are events (the end of a run, fifo data, pidfd
 * readiness) with generous upper bounds, never fixed sleeps. Needs root for
 * the ownership and cgroup cases.
 *
 * `test-hooks --failfork` is the fork-failure case alone, which
 * test_run_fork_failure runs in a child under LD_PRELOAD of the failfork
 * shim (test/shim/failfork.c; SPOT_FAILFORK_SO names it, default
 * build/test/failfork.so, skipped when it is missing). */
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <limits.h>
#include <sys/poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/engine.h"
#include "engine/event.h"
#include "hooks/chain.h"
#include "hooks/hooks.h"
#include "hooks/interp.h"
#include "store/json.h"
#include "store/record-json.h"
#include "log.h"
#include "util.h"

/* Longer than the part of a file the kernel reads to tell its format. */
#define EXEC_HEAD_PROBE 300

/* Upper bound for any one run in these tests; reaching it is a failure. */
#define TEST_RUN_LIMIT_USEC (60 * USEC_PER_SEC)

extern char **environ;

static char tmpdir[PATH_MAX];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)remove(path);
	return 0;
}

/* The scratch directory: below one whose every component passes the hook
 * directory checks, which /tmp (world-writable) does not. The build tree
 * unless SPOT_TEST_HOOKS_BASE names another (make unit sets it from
 * build-aux/trusted-dir); run from the top directory. */
static int setup_tmp(void **state)
{
	const char *base = getenv("SPOT_TEST_HOOKS_BASE");
	char real[PATH_MAX];

	if (!base || !base[0]) {
		base = "build/it-hooks";
		(void)mkdir("build", 0755);
	}
	if (mkdir(base, 0700) < 0 && errno != EEXIST)
		fail_msg("cannot make '%s': %s", base, strerror(errno));
	assert_non_null(realpath(base, real));
	assert_true((size_t)snprintf(tmpdir, sizeof(tmpdir), "%s/test-hooks-XXXXXX", real) < sizeof(tmpdir));
	assert_non_null(mkdtemp(tmpdir));
	assert_int_equal(chmod(tmpdir, 0755), 0);
	return 0;
}

static int teardown_tmp(void **state)
{
	(void)nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static char *tpath(const char *fmt, ...) _printf_(1, 2);
static char *tpath(const char *fmt, ...)
{
	va_list ap;
	char *rel, *p;

	va_start(ap, fmt);
	rel = xvasprintf(fmt, ap);
	va_end(ap);
	p = xasprintf("%s/%s", tmpdir, rel);
	free(rel);
	return p;
}

static void write_mode(const char *path, const char *content, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, content, strlen(content)), 0);
	assert_int_equal(close(fd), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Writes a hook script: "#!/bin/sh" plus body, mode 0755. */
static void write_hook(const char *dir, const char *name, const char *body)
{
	char *path = xasprintf("%s/%s", dir, name);
	char *content = xasprintf("#!/bin/sh\n%s\n", body);

	write_mode(path, content, 0755);
	free(content);
	free(path);
}

/* The whole file, NUL-terminated, or NULL when it does not exist. */
static char *read_text(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0, cap = 65536;
	char *buf;

	if (fd < 0)
		return NULL;
	buf = xmalloc(cap);
	for (;;) {
		ssize_t k;

		if (cap - n < 4096) {
			cap *= 2;
			buf = xrealloc(buf, cap);
		}
		k = read(fd, buf + n, cap - 1 - n);
		assert_true(k >= 0);
		if (k == 0)
			break;
		n += (size_t)k;
	}
	close(fd);
	buf[n] = '\0';
	return buf;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* True once pid is gone or a zombie; waits for that up to 10 s. */
static bool process_ends(pid_t pid)
{
	struct pollfd p = { .events = POLLIN };

	p.fd = pidfd_open(pid, 0);
	if (p.fd < 0)
		return errno == ESRCH;
	p.revents = 0;
	while (poll(&p, 1, 10000) < 0 && errno == EINTR)
		;
	close(p.fd);
	return p.revents & POLLIN;
}

static pid_t read_pid(const char *path)
{
	char *s = read_text(path);
	uint64_t v = 0;

	assert_non_null(s);
	s[strcspn(s, "\n")] = '\0';
	assert_int_equal(parse_uint64(s, 2, INT32_MAX, &v), 0);
	free(s);
	return (pid_t)v;
}

/* ---- outcomes and the output ring ---- */

static void test_outcome_strings(void **state)
{
	enum hook_outcome o;

	for (int i = 0; i < _HOOK_OUTCOME_MAX; i++) {
		const char *s = hook_outcome_to_string((enum hook_outcome)i);

		assert_non_null(s);
		assert_int_equal(hook_outcome_from_string(s, &o), 0);
		assert_int_equal(o, i);
	}
	assert_string_equal(hook_outcome_to_string(HOOK_TIMEOUT), "timeout");
	assert_null(hook_outcome_to_string(_HOOK_OUTCOME_MAX));
	assert_int_equal(hook_outcome_from_string("OK", &o), -EINVAL);
	assert_false(hook_outcome_is_final(HOOK_PENDING));
	assert_false(hook_outcome_is_final(HOOK_RUNNING));
	assert_true(hook_outcome_is_final(HOOK_OK));
	assert_true(hook_outcome_is_final(HOOK_FAILED));
	assert_true(hook_outcome_is_final(HOOK_TIMEOUT));
	assert_true(hook_outcome_is_final(HOOK_SKIPPED));
}

struct lines {
	char *v[64];
	size_t n;
};

static void collect_line(const char *line, void *userdata)
{
	struct lines *l = userdata;

	assert_true(l->n < ELEMENTSOF(l->v));
	l->v[l->n++] = xstrdup(line);
}

static void lines_get(const struct hook_result *r, struct lines *l)
{
	memset(l, 0, sizeof(*l));
	hook_result_foreach_line(r, collect_line, l);
}

static void lines_done(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	l->n = 0;
}

static void test_result_ring(void **state)
{
	struct hook_result r;
	struct lines l;
	char *big;

	hook_result_init(&r, "10-x", "/etc/spot-agent.d/10-x");
	assert_int_equal(r.outcome, HOOK_PENDING);
	assert_int_equal(r.exit_status, -1);
	assert_string_equal(r.name, "10-x");

	lines_get(&r, &l);
	assert_int_equal(l.n, 0);

	for (int i = 1; i <= 3; i++) {
		char buf[32];

		snprintf(buf, sizeof(buf), "line %d", i);
		hook_result_add_line(&r, buf);
	}
	lines_get(&r, &l);
	assert_int_equal(l.n, 3);
	assert_string_equal(l.v[0], "line 1");
	assert_string_equal(l.v[2], "line 3");
	lines_done(&l);

	for (int i = 4; i <= 25; i++) {
		char buf[32];

		snprintf(buf, sizeof(buf), "line %d", i);
		hook_result_add_line(&r, buf);
	}
	lines_get(&r, &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_string_equal(l.v[0], "line 16");
	assert_string_equal(l.v[9], "line 25");
	lines_done(&l);

	big = xmalloc(HOOK_LINE_MAX * 3);
	memset(big, 'y', HOOK_LINE_MAX * 3 - 1);
	big[HOOK_LINE_MAX * 3 - 1] = '\0';
	hook_result_add_line(&r, big);
	lines_get(&r, &l);
	assert_int_equal(strlen(l.v[9]), HOOK_LINE_MAX);
	lines_done(&l);
	free(big);

	/* A line of bytes that are not UTF-8 is kept as UTF-8 (U+FFFD each,
	 * three bytes), cut on a character boundary within HOOK_LINE_MAX: the
	 * state file then reads back exactly what is held. */
	big = xmalloc(HOOK_LINE_MAX + 1);
	memset(big, 0xff, HOOK_LINE_MAX);
	big[HOOK_LINE_MAX] = '\0';
	hook_result_add_line(&r, big);
	lines_get(&r, &l);
	assert_true(utf8_valid(l.v[9]));
	assert_int_equal(strlen(l.v[9]), HOOK_LINE_MAX / 3 * 3);
	assert_memory_equal(l.v[9], "\xef\xbf\xbd", 3);
	lines_done(&l);
	free(big);

	hook_result_done(&r);
	lines_get(&r, &l);
	assert_int_equal(l.n, 0);
	hook_result_done(NULL);
}

/* ---- scanning ---- */

static const struct hook_skip *find_skip(const struct hook_plan *p, const char *name)
{
	for (size_t i = 0; i < p->n_skips; i++)
		if (strcmp(p->skips[i].name, name) == 0)
			return &p->skips[i];
	return NULL;
}

static void assert_skip(const struct hook_plan *p, const char *dir, const char *name,
			const char *reason)
{
	const struct hook_skip *s = find_skip(p, name);
	char *path = xasprintf("%s/%s", dir, name);

	if (!s)
		fail_msg("'%s' not in the skips", name);
	assert_string_equal(s->reason, reason);
	assert_string_equal(s->path, path);
	free(path);
}

static void test_scan_rules(void **state)
{
	char *etc = tpath("etc"), *lib = tpath("lib"), *other = tpath("other");
	char longname[HOOK_NAME_MAX + 8];
	static const char *const order[] = {
		"10-ok", "20-override", "30-lib", "9-b", "A", "_x", "a", "link-ok",
	};
	static const char *const leftovers[] = {
		"bar.dpkg-old", "bar.dpkg-new", "bar.dpkg-dist", "bar.dpkg-tmp", "bar.dpkg-bak",
		"baz.rpmnew", "baz.rpmsave", "baz.rpmorig",
	};
	struct hook_plan plan;
	char *p;

	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(mkdir(lib, 0755), 0);
	assert_int_equal(mkdir(other, 0755), 0);

	write_hook(etc, "10-ok", "exit 0");
	write_hook(etc, "9-b", "exit 0");
	write_hook(etc, "A", "exit 0");
	write_hook(etc, "a", "exit 0");
	write_hook(etc, "_x", "exit 0");
	write_hook(etc, "20-override", "exit 0");
	write_hook(etc, ".hidden", "exit 0");
	write_hook(etc, "foo~", "exit 0");
	for (size_t i = 0; i < ELEMENTSOF(leftovers); i++)
		write_hook(etc, leftovers[i], "exit 0");
	write_hook(etc, "x.swp", "exit 0");

	p = xasprintf("%s/noexec", etc);
	write_mode(p, "#!/bin/sh\n", 0644);
	free(p);
	p = xasprintf("%s/empty", etc);
	write_mode(p, "", 0755);
	free(p);
	p = xasprintf("%s/gw", etc);
	write_mode(p, "#!/bin/sh\n", 0775);
	free(p);
	p = xasprintf("%s/ww", etc);
	write_mode(p, "#!/bin/sh\n", 0757);
	free(p);
	p = xasprintf("%s/suid", etc);
	write_mode(p, "#!/bin/sh\n", 04755);
	free(p);
	p = xasprintf("%s/sgid", etc);
	write_mode(p, "#!/bin/sh\n", 02755);
	free(p);
	p = xasprintf("%s/notroot", etc);
	write_mode(p, "#!/bin/sh\n", 0755);
	assert_int_equal(chown(p, 1234, 0), 0);
	assert_int_equal(chmod(p, 0755), 0);
	free(p);
	p = xasprintf("%s/dir", etc);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xasprintf("%s/fifo", etc);
	assert_int_equal(mkfifo(p, 0755), 0);
	free(p);
	p = xasprintf("%s/broken", etc);
	assert_int_equal(symlink("/nonexistent/spot-agent-hook", p), 0);
	free(p);
	p = xasprintf("%s/masked", etc);
	assert_int_equal(symlink("/dev/null", p), 0);
	free(p);

	/* A link to a good file elsewhere runs, under its link name. */
	write_hook(other, "target", "exit 0");
	p = xasprintf("%s/link-ok", etc);
	assert_int_equal(symlink("../other/target", p), 0);
	free(p);
	/* A link to a file that may not run is judged by that file. */
	p = xasprintf("%s/gw-target", other);
	write_mode(p, "#!/bin/sh\n", 0777);
	free(p);
	p = xasprintf("%s/link-ww", etc);
	assert_int_equal(symlink("../other/gw-target", p), 0);
	free(p);

	memset(longname, 'n', HOOK_NAME_MAX);
	longname[HOOK_NAME_MAX] = '\0';
	write_hook(etc, longname, "exit 0");

	write_hook(lib, "30-lib", "exit 0");
	write_hook(lib, "masked", "exit 0");
	write_hook(lib, "20-override", "exit 0");
	p = xasprintf("%s/devnull-in-lib", lib);
	assert_int_equal(symlink("/dev/null", p), 0);
	free(p);
	p = xasprintf("%s/35-lib-noexec", lib);
	write_mode(p, "#!/bin/sh\n", 0644);
	free(p);

	assert_int_equal(hooks_scan(etc, lib, &plan), 0);

	assert_int_equal(plan.n_hooks, ELEMENTSOF(order));
	for (size_t i = 0; i < plan.n_hooks; i++) {
		const char *dir = strcmp(order[i], "30-lib") == 0 ? lib : etc;

		p = xasprintf("%s/%s", dir, order[i]);
		assert_string_equal(plan.hooks[i].name, order[i]);
		assert_string_equal(plan.hooks[i].path, p);
		free(p);
	}

	assert_skip(&plan, etc, ".hidden", "hidden file");
	assert_skip(&plan, etc, "foo~", "backup file");
	for (size_t i = 0; i < ELEMENTSOF(leftovers); i++)
		assert_skip(&plan, etc, leftovers[i], "package manager leftover");
	assert_skip(&plan, etc, "x.swp", "editor swap file");
	assert_skip(&plan, etc, "noexec", "not executable");
	assert_skip(&plan, etc, "empty", "empty file");
	assert_skip(&plan, etc, "gw", "group-writable");
	assert_skip(&plan, etc, "ww", "world-writable");
	assert_skip(&plan, etc, "suid", "setuid");
	assert_skip(&plan, etc, "sgid", "setgid");
	assert_skip(&plan, etc, "notroot", "not owned by root");
	assert_skip(&plan, etc, "dir", "not a regular file");
	assert_skip(&plan, etc, "fifo", "not a regular file");
	assert_skip(&plan, etc, "broken", "broken link");
	assert_skip(&plan, etc, "masked", "masked");
	assert_skip(&plan, etc, "link-ww", "group-writable");
	assert_skip(&plan, lib, "devnull-in-lib", "not a regular file");
	assert_skip(&plan, lib, "35-lib-noexec", "not executable");

	/* The long name is listed cut to fit; its path is the real one. */
	p = xasprintf("%s/%s", etc, longname);
	longname[HOOK_NAME_MAX - 1] = '\0';
	assert_non_null(find_skip(&plan, longname));
	assert_string_equal(find_skip(&plan, longname)->reason, "name too long");
	assert_string_equal(find_skip(&plan, longname)->path, p);
	free(p);
	assert_int_equal(plan.n_skips, 26);
	assert_int_equal(plan.n_skips_dropped, 0);

	/* Bytewise order in the skips, too. */
	for (size_t i = 1; i < plan.n_skips; i++)
		assert_true(strcmp(plan.skips[i - 1].name, plan.skips[i].name) < 0);

	hook_plan_done(&plan);
	assert_null(plan.hooks);
	assert_int_equal(plan.n_hooks, 0);
	hook_plan_done(NULL);
	free(etc);
	free(lib);
	free(other);
}

static void test_scan_missing_and_bad(void **state)
{
	char *file = tpath("plainfile");
	struct hook_plan plan;
	char *lib = tpath("onlylib");

	assert_int_equal(hooks_scan("/nonexistent/spot-etc", "/nonexistent/spot-lib", &plan), 0);
	assert_int_equal(plan.n_hooks, 0);
	assert_int_equal(plan.n_skips, 0);
	hook_plan_done(&plan);

	assert_int_equal(mkdir(lib, 0755), 0);
	write_hook(lib, "50-x", "exit 0");
	assert_int_equal(hooks_scan("/nonexistent/spot-etc", lib, &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	assert_string_equal(plan.hooks[0].name, "50-x");
	hook_plan_done(&plan);

	assert_int_equal(hooks_scan(lib, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	hook_plan_done(&plan);
	assert_int_equal(hooks_scan(lib, "", &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	hook_plan_done(&plan);

	write_mode(file, "x", 0644);
	memset(&plan, 0x5a, sizeof(plan));
	assert_int_equal(hooks_scan(file, NULL, &plan), -ENOTDIR);
	free(file);
	free(lib);
}

/* recover.d below a hook directory holds the recover hooks: the scan passes
 * over it (in either directory) without listing it as a skipped file,
 * while any other directory is still one. */
static void test_scan_recover_dir(void **state)
{
	char *etc = tpath("rec-etc"), *lib = tpath("rec-lib"), *p;
	struct hook_plan plan;

	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(mkdir(lib, 0755), 0);
	write_hook(etc, "10-a", "exit 0");
	p = xasprintf("%s/" HOOKS_RECOVER_DIR, etc);
	assert_int_equal(mkdir(p, 0755), 0);
	write_hook(p, "10-back", "exit 0");
	free(p);
	p = xasprintf("%s/" HOOKS_RECOVER_DIR, lib);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);
	p = xasprintf("%s/sub.d", etc);
	assert_int_equal(mkdir(p, 0755), 0);
	free(p);

	assert_int_equal(hooks_scan(etc, lib, &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	assert_string_equal(plan.hooks[0].name, "10-a");
	assert_int_equal(plan.n_skips, 1);
	assert_skip(&plan, etc, "sub.d", "not a regular file");
	assert_null(find_skip(&plan, HOOKS_RECOVER_DIR));
	hook_plan_done(&plan);
	free(lib);
	free(etc);
}

static void test_scan_too_many(void **state)
{
	char *dir = tpath("many");
	struct hook_plan plan;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (int i = 0; i < HOOKS_MAX + 6; i++) {
		char name[16];

		snprintf(name, sizeof(name), "h%03d", i);
		write_hook(dir, name, "exit 0");
	}
	write_hook(dir, "zz~", "exit 0");
	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, HOOKS_MAX);
	assert_string_equal(plan.hooks[0].name, "h000");
	assert_string_equal(plan.hooks[HOOKS_MAX - 1].name, "h063");
	assert_int_equal(plan.n_skips, 7);
	assert_string_equal(plan.skips[0].name, "h064");
	assert_string_equal(plan.skips[0].reason, "too many hooks");
	assert_string_equal(plan.skips[5].name, "h069");
	assert_string_equal(plan.skips[6].reason, "backup file");
	hook_plan_done(&plan);
	free(dir);
}

static void test_scan_skips_capped(void **state)
{
	char *dir = tpath("junk");
	struct hook_plan plan;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (int i = 0; i < HOOKS_SKIPS_MAX + 10; i++) {
		char name[16];

		snprintf(name, sizeof(name), "j%04d~", i);
		write_hook(dir, name, "exit 0");
	}
	write_hook(dir, "ok", "exit 0");
	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	assert_int_equal(plan.n_skips, HOOKS_SKIPS_MAX);
	assert_int_equal(plan.n_skips_dropped, 10);
	hook_plan_done(&plan);
	free(dir);
}

/* The way to a hook: every directory from / to it, and for a link every
 * directory its target is reached through, must be root's (or ours) and
 * writable by nobody else. */
static void assert_only_skip(const struct hook_plan *p, const char *dir, const char *name,
			     const char *reason)
{
	assert_int_equal(p->n_hooks, 0);
	assert_int_equal(p->n_skips, 1);
	assert_skip(p, dir, name, reason);
}

static void scan_one(const char *dir, const char *name, const char *reason)
{
	struct hook_plan plan;

	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	if (reason) {
		assert_only_skip(&plan, dir, name, reason);
	} else {
		assert_int_equal(plan.n_skips, 0);
		assert_int_equal(plan.n_hooks, 1);
		assert_string_equal(plan.hooks[0].name, name);
	}
	hook_plan_done(&plan);
}

static char *fmt(char *buf, size_t n, const char *f, ...) _printf_(3, 4);
static char *fmt(char *buf, size_t n, const char *f, ...)
{
	va_list ap;
	int k;

	va_start(ap, f);
	k = vsnprintf(buf, n, f, ap);
	va_end(ap);
	assert_true(k >= 0 && (size_t)k < n);
	return buf;
}

static void test_scan_trust(void **state)
{
	char base[PATH_MAX], d[PATH_MAX], p[PATH_MAX], why[2 * PATH_MAX], other[PATH_MAX], ww[PATH_MAX];
	char links[PATH_MAX], alias[PATH_MAX], lnk[PATH_MAX];
	char tmp[] = "/tmp/test-hooks-trust-XXXXXX";
	struct hook_plan plan;

	fmt(base, sizeof(base), "%s/trust", tmpdir);
	assert_int_equal(mkdir(base, 0755), 0);

	/* The hook directory itself: every file in it is refused, for the
	 * same reason. */
	fmt(d, sizeof(d), "%s/ww", base);
	assert_int_equal(mkdir(d, 0755), 0);
	write_hook(d, "10-a", "exit 0");
	write_hook(d, "20-b", "exit 0");
	assert_int_equal(chmod(d, 0777), 0);
	fmt(why, sizeof(why), "directory '%s' is world-writable", d);
	assert_int_equal(hooks_scan(d, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 0);
	assert_int_equal(plan.n_skips, 2);
	assert_skip(&plan, d, "10-a", why);
	assert_skip(&plan, d, "20-b", why);
	hook_plan_done(&plan);
	/* Sticky does not help. */
	assert_int_equal(chmod(d, 01777), 0);
	assert_int_equal(hooks_scan(d, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 0);
	assert_skip(&plan, d, "10-a", why);
	hook_plan_done(&plan);
	assert_int_equal(chmod(d, 0775), 0);
	fmt(why, sizeof(why), "directory '%s' is group-writable", d);
	assert_int_equal(hooks_scan(d, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 0);
	assert_skip(&plan, d, "20-b", why);
	hook_plan_done(&plan);
	assert_int_equal(chmod(d, 0755), 0);
	assert_int_equal(chown(d, 65534, 0), 0);
	fmt(why, sizeof(why), "directory '%s' is owned by uid 65534", d);
	assert_int_equal(hooks_scan(d, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 0);
	assert_skip(&plan, d, "10-a", why);
	hook_plan_done(&plan);
	/* Back to root's: both run. */
	assert_int_equal(chown(d, 0, 0), 0);
	assert_int_equal(hooks_scan(d, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 2);
	hook_plan_done(&plan);

	/* A parent of the hook directory, and its parent. */
	fmt(p, sizeof(p), "%s/parent", base);
	assert_int_equal(mkdir(p, 0755), 0);
	fmt(d, sizeof(d), "%s/hooks", p);
	assert_int_equal(mkdir(d, 0755), 0);
	write_hook(d, "10-a", "exit 0");
	scan_one(d, "10-a", NULL);
	assert_int_equal(chown(p, 65534, 65534), 0);
	scan_one(d, "10-a", fmt(why, sizeof(why), "directory '%s' is owned by uid 65534", p));
	assert_int_equal(chown(p, 0, 0), 0);
	assert_int_equal(chmod(base, 0757), 0);
	scan_one(d, "10-a", fmt(why, sizeof(why), "directory '%s' is world-writable", base));
	assert_int_equal(chmod(base, 0755), 0);
	/* The same directory named with "." and "..": the same rules. */
	fmt(alias, sizeof(alias), "%s/./hooks/../hooks", p);
	scan_one(alias, "10-a", NULL);
	assert_int_equal(chmod(p, 0777), 0);
	scan_one(alias, "10-a", fmt(why, sizeof(why), "directory '%s' is world-writable", p));
	assert_int_equal(chmod(p, 0755), 0);

	/* A hook directory below /tmp is never trusted. */
	assert_non_null(mkdtemp(tmp));
	write_hook(tmp, "10-a", "exit 0");
	scan_one(tmp, "10-a", "directory '/tmp' is world-writable");
	fmt(p, sizeof(p), "%s/10-a", tmp);
	assert_int_equal(unlink(p), 0);
	assert_int_equal(rmdir(tmp), 0);

	/* Links: the link's directory is the hook directory; the target's
	 * directories, and those of any link on the way, are checked too. */
	fmt(other, sizeof(other), "%s/other", base);
	fmt(ww, sizeof(ww), "%s/open", base);
	fmt(links, sizeof(links), "%s/links", base);
	assert_int_equal(mkdir(other, 0755), 0);
	assert_int_equal(mkdir(ww, 0755), 0);
	assert_int_equal(mkdir(links, 0755), 0);
	write_hook(other, "target", "exit 0");
	write_hook(ww, "target", "exit 0");
	assert_int_equal(chmod(ww, 0777), 0);
	fmt(lnk, sizeof(lnk), "%s/10-l", links);
	assert_int_equal(symlink("../other/target", lnk), 0);
	scan_one(links, "10-l", NULL);
	assert_int_equal(unlink(lnk), 0);
	assert_int_equal(symlink("../open/target", lnk), 0);
	scan_one(links, "10-l", fmt(why, sizeof(why),
				    "link target '%s/../open/target': directory '%s' is world-writable",
				    links, ww));
	/* Through a link that lives in the open directory. */
	fmt(p, sizeof(p), "%s/hop", ww);
	assert_int_equal(symlink("../other/target", p), 0);
	assert_int_equal(unlink(lnk), 0);
	assert_int_equal(symlink("../open/hop", lnk), 0);
	scan_one(links, "10-l", fmt(why, sizeof(why),
				    "link target '%s/../open/hop': directory '%s' is world-writable",
				    links, ww));
	/* An absolute target, in a directory owned by someone else. */
	assert_int_equal(unlink(lnk), 0);
	assert_int_equal(symlink(fmt(p, sizeof(p), "%s/target", other), lnk), 0);
	assert_int_equal(chown(other, 65534, 0), 0);
	scan_one(links, "10-l", fmt(why, sizeof(why),
				    "link target '%s/target': directory '%s' is owned by uid 65534",
				    other, other));
	assert_int_equal(chown(other, 0, 0), 0);
	scan_one(links, "10-l", NULL);

	/* The hook directory reached through a link in an open directory. */
	fmt(alias, sizeof(alias), "%s/hooklink", ww);
	assert_int_equal(symlink("../links", alias), 0);
	scan_one(alias, "10-l", fmt(why, sizeof(why), "directory '%s' is world-writable", ww));
	assert_int_equal(chmod(ww, 0755), 0);
	scan_one(alias, "10-l", NULL);
}

/* A copy of /bin/true with its header bytes at off replaced. */
static void elf_copy(const char *dir, const char *name, size_t off, const unsigned char *bytes, size_t n)
{
	char *src, *path = xasprintf("%s/%s", dir, name);
	struct stat st;
	int fd;

	assert_int_equal(stat("/bin/true", &st), 0);
	src = xmalloc((size_t)st.st_size);
	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(read(fd, src, (size_t)st.st_size), st.st_size);
	close(fd);
	if (n)
		memcpy(src + off, bytes, n);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0755);
	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, src, (size_t)st.st_size), 0);
	close(fd);
	free(src);
	free(path);
}

/* Files the kernel would refuse to execute are skipped at the scan, with
 * the reason: no "#!" and not ELF, a "#!" interpreter that is missing or
 * not executable, an ELF file for another machine. */
static void test_scan_exec_formats(void **state)
{
	char *dir = tpath("formats"), *f, *want, *interp = tpath("formats-interp");
	unsigned char sparc[2] = { 43, 0 }, rel[2] = { 1, 0 };
	char longline[EXEC_HEAD_PROBE];
	struct hook_plan plan;
	unsigned char head[5];
	int fd;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-sh", "exit 0");
	f = xasprintf("%s/11-env", dir);
	write_mode(f, "#! /usr/bin/env sh\nexit 0\n", 0755);
	free(f);
	f = xasprintf("%s/20-text", dir);
	write_mode(f, "echo no interpreter line\n", 0755);
	free(f);
	f = xasprintf("%s/21-bang-only", dir);
	write_mode(f, "#!\n", 0755);
	free(f);
	memset(longline, 'x', sizeof(longline));
	memcpy(longline, "#!/", 3);
	longline[sizeof(longline) - 1] = '\0';
	f = xasprintf("%s/22-long", dir);
	write_mode(f, longline, 0755);
	free(f);
	f = xasprintf("%s/30-missing", dir);
	write_mode(f, "#!/nonexistent/interpreter -x\necho never\n", 0755);
	free(f);
	write_mode(interp, "#!/bin/sh\n", 0644);
	f = xasprintf("%s/31-noexec-interp", dir);
	want = xasprintf("#!%s\n", interp);
	write_mode(f, want, 0755);
	free(want);
	free(f);
	f = xasprintf("%s/32-dir-interp", dir);
	write_mode(f, "#!/usr\n", 0755);
	free(f);
	f = xasprintf("%s/33-relative", dir);
	write_mode(f, "#!bin/sh\nexit 0\n", 0755);
	free(f);
	elf_copy(dir, "40-elf", 0, NULL, 0);
	elf_copy(dir, "41-elf-sparc", 18, sparc, 2);
	elf_copy(dir, "42-elf-rel", 16, rel, 2);

	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 4);
	assert_string_equal(plan.hooks[0].name, "10-sh");
	assert_true(plan.hooks[0].script);
	assert_string_equal(plan.hooks[1].name, "11-env");
	assert_string_equal(plan.hooks[2].name, "33-relative");
	assert_string_equal(plan.hooks[3].name, "40-elf");
	/* A binary needs no descriptor across its exec. */
	assert_false(plan.hooks[3].script);
	assert_skip(&plan, dir, "20-text", "not an executable format (no '#!' line, not ELF)");
	assert_skip(&plan, dir, "21-bang-only", "'#!' line names no interpreter, or is too long");
	assert_skip(&plan, dir, "22-long", "'#!' line names no interpreter, or is too long");
	assert_skip(&plan, dir, "30-missing", "interpreter '/nonexistent/interpreter' does not exist");
	want = xasprintf("interpreter '%s' is not executable", interp);
	assert_skip(&plan, dir, "31-noexec-interp", want);
	free(want);
	assert_skip(&plan, dir, "32-dir-interp", "interpreter '/usr' is not a regular file");
	fd = open("/bin/true", O_RDONLY | O_CLOEXEC);
	assert_int_equal(read(fd, head, sizeof(head)), (ssize_t)sizeof(head));
	close(fd);
	want = xasprintf("ELF executable for another machine (e_machine 43, %s-bit)",
			 head[EI_CLASS] == ELFCLASS64 ? "64" : "32");
	assert_skip(&plan, dir, "41-elf-sparc", want);
	free(want);
	assert_skip(&plan, dir, "42-elf-rel", "ELF file that is not an executable");
	assert_int_equal(plan.n_skips, 8);
	hook_plan_done(&plan);

	/* A file system mounted noexec. */
	free(dir);
	dir = tpath("formats-noexec");
	assert_int_equal(mkdir(dir, 0755), 0);
	if (mount("spot-test", dir, "tmpfs", MS_NOEXEC, "mode=0755") < 0) {
		fprintf(stderr, "test-hooks: cannot mount a tmpfs (%s), skipping the noexec case\n",
			strerror(errno));
	} else {
		write_hook(dir, "10-sh", "exit 0");
		assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
		assert_only_skip(&plan, dir, "10-sh", "on a file system mounted noexec");
		hook_plan_done(&plan);
		assert_int_equal(umount(dir), 0);
	}
	free(interp);
	free(dir);
}

/* Which skips are refusals (a file meant to run that will not: check and
 * drill fail on it) and which are not; a README is passed over without a
 * word; Windows line endings have a reason of their own; an interpreter is
 * held to the hooks' own rules, the whole way up. */
static void test_scan_refusals(void **state)
{
	char *dir = tpath("refusals"), *one = tpath("refusals-one"), *open_dir = tpath("refusals-open");
	char *f, *want, *interp;
	struct hook_plan plan;

	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkdir(one, 0755), 0);
	assert_int_equal(mkdir(open_dir, 0755), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	write_hook(dir, "10-ok", "exit 0");
	f = xasprintf("%s/20-crlf", dir);
	write_mode(f, "#!/bin/sh\r\nexit 0\r\n", 0755);
	free(f);
	f = xasprintf("%s/21-crlf-arg", dir);
	write_mode(f, "#!/bin/sh -e\r\nexit 0\r\n", 0755);
	free(f);
	f = xasprintf("%s/README", dir);
	write_mode(f, "Hooks for this machine.\n", 0644);
	free(f);
	f = xasprintf("%s/README.md", dir);
	write_mode(f, "#!/bin/sh\n", 0755);
	free(f);
	f = xasprintf("%s/30-noexec", dir);
	write_mode(f, "#!/bin/sh\nexit 0\n", 0644);
	free(f);
	f = xasprintf("%s/31-notes.txt", dir);
	write_mode(f, "not a hook\n", 0644);
	free(f);
	f = xasprintf("%s/40-empty", dir);
	write_mode(f, "", 0755);
	free(f);
	f = xasprintf("%s/41-backup~", dir);
	write_mode(f, "#!/bin/sh\nexit 0\n", 0755);
	free(f);
	f = xasprintf("%s/recover.d", dir);
	assert_int_equal(mkdir(f, 0755), 0);
	free(f);
	f = xasprintf("%s/50-dangling", dir);
	assert_int_equal(symlink("/nonexistent/hook", f), 0);
	free(f);
	/* An interpreter where anybody could replace it. */
	interp = xasprintf("%s/sh", open_dir);
	write_mode(interp, "#!/bin/sh\n", 0755);
	want = xasprintf("#!%s\nexit 0\n", interp);
	f = xasprintf("%s/60-open-interp", dir);
	write_mode(f, want, 0755);
	free(f);
	f = xasprintf("%s/60-open-interp", one);
	write_mode(f, want, 0755);
	free(f);
	free(want);

	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 1);
	assert_string_equal(plan.hooks[0].name, "10-ok");
	assert_null(find_skip(&plan, "README"));
	assert_null(find_skip(&plan, "README.md"));
	assert_skip(&plan, dir, "20-crlf", "Windows line endings (CRLF): convert it with dos2unix");
	assert_skip(&plan, dir, "21-crlf-arg", "Windows line endings (CRLF): convert it with dos2unix");
	assert_skip(&plan, dir, "30-noexec", "not executable");
	assert_skip(&plan, dir, "31-notes.txt", "not executable");
	assert_skip(&plan, dir, "40-empty", "empty file");
	assert_skip(&plan, dir, "41-backup~", "backup file");
	/* The recover hooks' directory is theirs, not a skipped hook. */
	assert_null(find_skip(&plan, "recover.d"));
	assert_skip(&plan, dir, "50-dangling", "broken link");
	want = xasprintf("interpreter '%s': directory '%s' is world-writable", interp, open_dir);
	assert_skip(&plan, dir, "60-open-interp", want);
	free(want);
	assert_true(find_skip(&plan, "20-crlf")->refused);
	assert_true(find_skip(&plan, "21-crlf-arg")->refused);
	assert_true(find_skip(&plan, "30-noexec")->refused);
	assert_false(find_skip(&plan, "31-notes.txt")->refused);
	assert_true(find_skip(&plan, "40-empty")->refused);
	assert_false(find_skip(&plan, "41-backup~")->refused);
	assert_true(find_skip(&plan, "50-dangling")->refused);
	assert_true(find_skip(&plan, "60-open-interp")->refused);
	assert_int_equal(plan.n_skips, 8);
	assert_int_equal(plan.n_refused, 6);
	hook_plan_done(&plan);

	/* The interpreter's directory fixed: it runs; the interpreter itself
	 * group-writable: it does not. */
	assert_int_equal(chmod(open_dir, 0755), 0);
	scan_one(one, "60-open-interp", NULL);
	assert_int_equal(chmod(interp, 0775), 0);
	want = xasprintf("interpreter '%s' is group-writable", interp);
	scan_one(one, "60-open-interp", want);
	free(want);
	free(interp);
	free(open_dir);
	free(one);
	free(dir);
}

static size_t count_fds(void);

/* interp_fault for "#!/usr/bin/env arg" searching search_path, with a
 * cache of its own (a cache is for one search path). */
static const char *env_fault(const char *arg, const char *search_path)
{
	static struct format_interp_cache cache;

	memset(&cache, 0, sizeof(cache));
	return interp_fault("/usr/bin/env", arg, search_path, &cache);
}

/* Which program "#!/usr/bin/env ARG" runs, found as env finds it, and
 * whether it may be trusted: every directory searched before it too, since
 * a program put there would run instead. */
static void test_env_interpreter(void **state)
{
	char *good = tpath("env-good"), *open_dir = tpath("env-open"), *missing = tpath("env-missing");
	char *prog = tpath("env-good/tool"), *planted = tpath("env-open/tool");
	char *after = NULL, *before = NULL, *want, *dir = tpath("env-hooks"), *f;
	struct format_interp_cache cache = { 0 };

	assert_int_equal(mkdir(good, 0755), 0);
	assert_int_equal(mkdir(open_dir, 0755), 0);
	assert_int_equal(chmod(open_dir, 0777), 0);
	write_mode(prog, "#!/bin/sh\n", 0755);
	after = xasprintf("%s:%s:%s", missing, good, open_dir);
	before = xasprintf("%s:%s", open_dir, good);

	/* Found in a trusted directory; a missing one before it is passed over,
	 * an untrusted one after it never searched. */
	assert_string_equal(env_fault("tool", after), "");
	assert_string_equal(env_fault("-S tool -x", after), "");
	assert_string_equal(env_fault("-S LANG=C tool", after), "");
	assert_string_equal(env_fault("--split-string=tool -x", after), "");
	/* An untrusted directory searched first, even without the program in
	 * it: anybody could put one there. */
	want = xasprintf("env's interpreter 'tool': directory '%s' is world-writable", open_dir);
	assert_string_equal(env_fault("tool", before), want);
	free(want);
	/* The program itself as a path, in an untrusted directory. */
	write_mode(planted, "#!/bin/sh\n", 0755);
	want = xasprintf("env's interpreter '%s': directory '%s' is world-writable", planted, open_dir);
	assert_string_equal(env_fault(planted, after), want);
	free(want);
	/* Group-writable where it was found. */
	assert_int_equal(chmod(prog, 0775), 0);
	want = xasprintf("env's interpreter '%s' is group-writable", prog);
	assert_string_equal(env_fault("tool", after), want);
	free(want);
	assert_int_equal(chmod(prog, 0755), 0);
	/* What env would not run, or where it cannot be told. */
	want = xasprintf("env's interpreter 'nothere': directory '%s' is world-writable", open_dir);
	assert_string_equal(env_fault("nothere", after), want);
	free(want);
	want = xasprintf("env's interpreter 'nothere' is not on the hooks' PATH (%s)", good);
	assert_string_equal(env_fault("nothere", good), want);
	free(want);
	assert_string_equal(env_fault("", after),
			    "'#!/usr/bin/env' names no program for env to run");
	assert_string_equal(env_fault("-S LANG=C", after),
			    "'#!/usr/bin/env -S LANG=C' names no program for env to run");
	assert_string_equal(env_fault("tool -x", after),
			    "'#!/usr/bin/env tool -x' hands env 'tool -x' as one program name: "
			    "split it with 'env -S'");
	assert_string_equal(env_fault("-i tool", after),
			    "'#!/usr/bin/env -i tool' leaves it unclear which program env runs: "
			    "name the interpreter by its full path");
	assert_string_equal(env_fault("-S 'tool' -x", after),
			    "'#!/usr/bin/env -S 'tool' -x' leaves it unclear which program env runs: "
			    "name the interpreter by its full path");
	assert_string_equal(env_fault("-S $TOOL", after),
			    "'#!/usr/bin/env -S $TOOL' leaves it unclear which program env runs: "
			    "name the interpreter by its full path");
	/* Not env: its argument is the interpreter's own business. */
	assert_string_equal(interp_fault("/bin/sh", "-e", after, &cache), "");

	/* Through the scan, on the hooks' own PATH. */
	assert_int_equal(mkdir(dir, 0755), 0);
	f = xasprintf("%s/10-env", dir);
	write_mode(f, "#!/usr/bin/env sh\nexit 0\n", 0755);
	scan_one(dir, "10-env", NULL);
	want = xasprintf("#!/usr/bin/env %s\nexit 0\n", planted);
	write_mode(f, want, 0755);
	free(want);
	want = xasprintf("env's interpreter '%s': directory '%s' is world-writable", planted, open_dir);
	scan_one(dir, "10-env", want);
	free(want);
	free(f);
	free(dir);
	free(before);
	free(after);
	free(planted);
	free(prog);
	free(missing);
	free(open_dir);
	free(good);
}
/* 100 000 runnable files: 64 run, every other one is accounted for, the
 * first HOOKS_SKIPS_MAX listed as "too many hooks", the rest counted. */
static void test_scan_huge_dir(void **state)
{
	char *dir = tpath("huge"), *first, name[32], *p;
	const size_t n = 100000;
	struct hook_plan plan;
	size_t fds = count_fds();

	assert_int_equal(mkdir(dir, 0755), 0);
	first = NULL;
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(name, sizeof(name), "h%06zu", i);
		p = xasprintf("%s/%s", dir, name);
		/* Links to a few files, below the file systems' link limits. */
		if (i % 50000 == 0) {
			write_hook(dir, name, "exit 0");
			free(first);
			first = p;
			continue;
		}
		assert_int_equal(link(first, p), 0);
		free(p);
	}
	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, HOOKS_MAX);
	assert_string_equal(plan.hooks[HOOKS_MAX - 1].name, "h000063");
	assert_int_equal(plan.n_skips, HOOKS_SKIPS_MAX);
	for (size_t i = 0; i < plan.n_skips; i++)
		assert_string_equal(plan.skips[i].reason, "too many hooks");
	assert_int_equal(plan.n_hooks + plan.n_skips + plan.n_skips_dropped, n);
	/* Only the hooks that run are held open. */
	assert_int_equal(count_fds(), fds + HOOKS_MAX);
	hook_plan_done(&plan);
	assert_int_equal(count_fds(), fds);
	for (size_t i = 0; i < n; i++) {
		(void)snprintf(name, sizeof(name), "h%06zu", i);
		p = xasprintf("%s/%s", dir, name);
		assert_int_equal(unlink(p), 0);
		free(p);
	}
	free(first);
	free(dir);
}

/* ---- environment ---- */

static char **test_env(void)
{
	struct spot_event ev;
	char **env;

	event_init(&ev);
	strscpy(ev.id, sizeof(ev.id), "ev-1234");
	ev.type = EVENT_PREEMPT;
	ev.status = EVENT_SCHEDULED;
	strscpy(ev.source, sizeof(ev.source), "Platform");
	ev.not_before_usec = UINT64_C(1474309787) * USEC_PER_SEC;
	ev.provider = PROVIDER_AZURE;
	env = hooks_env_new(&ev, "vm-7", UINT64_C(1474309785) * USEC_PER_SEC + 999999, true, NULL);
	event_done(&ev);
	return env;
}

static const char *const expected_env[] = {
	"PATH=" HOOK_PATH_ENV,
	"LANG=C.UTF-8",
	"TZ=UTC",
	"SPOT_EVENT_ID=ev-1234",
	"SPOT_EVENT_TYPE=Preempt",
	"SPOT_EVENT_STATUS=Scheduled",
	"SPOT_EVENT_SOURCE=Platform",
	"SPOT_NOT_BEFORE=2016-09-19T18:29:47Z",
	"SPOT_DEADLINE=1474309785",
	"SPOT_PROVIDER=azure",
	"SPOT_VM_NAME=vm-7",
	"SPOT_DRILL=1",
	"SPOT_PHASE=evict",
};

static void test_env_new(void **state)
{
	struct spot_event ev;
	char **env = test_env();
	size_t n = 0;

	while (env[n])
		n++;
	assert_int_equal(n, ELEMENTSOF(expected_env));
	for (size_t i = 0; i < n; i++)
		assert_string_equal(env[i], expected_env[i]);
	strv_free(env);

	event_init(&ev);
	ev.type = EVENT_TERMINATE;
	ev.status = EVENT_STARTED;
	env = hooks_env_new(&ev, NULL, 0, false, &(struct hook_phase){ .recover = false });
	assert_string_equal(env[3], "SPOT_EVENT_ID=");
	assert_string_equal(env[4], "SPOT_EVENT_TYPE=Terminate");
	assert_string_equal(env[5], "SPOT_EVENT_STATUS=Started");
	assert_string_equal(env[7], "SPOT_NOT_BEFORE=");
	assert_string_equal(env[8], "SPOT_DEADLINE=");
	assert_string_equal(env[10], "SPOT_VM_NAME=");
	assert_string_equal(env[11], "SPOT_DRILL=0");
	/* The evict phase says so, and nothing of a recovery. */
	assert_string_equal(env[12], "SPOT_PHASE=evict");
	assert_null(env[13]);
	strv_free(env);
	strv_free(NULL);

	/* The recover phase: why, and how long the machine was away. */
	{
		static const struct {
			enum recover_reason reason;
			uint64_t downtime_sec;
			const char *want_reason, *want_downtime;
		} cases[] = {
			{ RECOVER_CANCELLED, 0, "SPOT_RECOVER_REASON=cancelled", "SPOT_DOWNTIME=0" },
			{ RECOVER_ENDED, 42, "SPOT_RECOVER_REASON=ended", "SPOT_DOWNTIME=42" },
			{ RECOVER_BOOT, UINT64_C(86400) * 400, "SPOT_RECOVER_REASON=boot", "SPOT_DOWNTIME=34560000" },
		};

		for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
			struct hook_phase phase = {
				.recover = true,
				.recover_reason = recover_reason_to_string(cases[i].reason),
				.downtime_sec = cases[i].downtime_sec,
			};
			size_t k = 0;

			env = hooks_env_new(&ev, "vm-7", 0, false, &phase);
			while (env[k])
				k++;
			assert_int_equal(k, 15);
			assert_string_equal(env[3], "SPOT_EVENT_ID=");
			assert_string_equal(env[12], "SPOT_PHASE=recover");
			assert_string_equal(env[13], cases[i].want_reason);
			assert_string_equal(env[14], cases[i].want_downtime);
			strv_free(env);
		}
		/* A reason not given is empty, never "(null)". */
		env = hooks_env_new(&ev, "vm-7", 0, false, &(struct hook_phase){ .recover = true });
		assert_string_equal(env[12], "SPOT_PHASE=recover");
		assert_string_equal(env[13], "SPOT_RECOVER_REASON=");
		assert_string_equal(env[14], "SPOT_DOWNTIME=0");
		strv_free(env);
	}
	event_done(&ev);
}

/* ---- running one hook ---- */

/* The hooks' cgroup these tests made, removed at the end. */
static char *test_cgroup;

/* True when pid is gone or a zombie right now. */
static bool dead_now(pid_t pid)
{
	struct pollfd p = { .events = POLLIN };

	p.fd = pidfd_open(pid, 0);
	if (p.fd < 0)
		return errno == ESRCH;
	assert_true(poll(&p, 1, 0) >= 0);
	close(p.fd);
	return p.revents & POLLIN;
}

/* The test process has no children left, not even zombies. */
static bool no_children(void)
{
	siginfo_t si = { 0 };

	return waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT) < 0 && errno == ECHILD;
}

/* Open file descriptors of the test process. */
static size_t count_fds(void)
{
	struct dirent *de;
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	assert_non_null(d);
	while ((de = readdir(d)))
		if (de->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

struct trun {
	sd_event *event;
	struct hook_run *run;
	char *path;
	struct hook_result res;       /* what ended reported, lines moved here */
	int n_ended;
	bool free_in_ended;
	uint64_t ended_mono_usec;
	/* Files the hook writes pids into; checked when ended is called. */
	const char *pid_files[4];
	size_t n_pid_files;
	pid_t pids[4];
	bool dead_at_end[4];
	/* A fifo the hook writes a line to when it is ready. */
	int fifo_fd;
	sd_event_source *fifo_source;
	void (*on_ready)(struct trun *t);
	uint64_t ready_mono_usec;
};

static void on_ended(struct hook_run *run, struct hook_result *res, void *userdata)
{
	struct trun *t = userdata;

	assert_ptr_equal(run, t->run);
	t->n_ended++;
	t->ended_mono_usec = now_usec(CLOCK_MONOTONIC);
	hook_result_done(&t->res);
	t->res = *res;
	/* Moved out, as the engine does. */
	for (size_t i = 0; i < HOOK_OUTPUT_LINES; i++)
		res->output[i] = NULL;
	res->n_output = 0;
	res->output_next = 0;
	for (size_t i = 0; i < t->n_pid_files; i++) {
		t->pids[i] = read_pid(t->pid_files[i]);
		t->dead_at_end[i] = dead_now(t->pids[i]);
	}
	if (t->free_in_ended) {
		hook_run_free(run);
		t->run = NULL;
	}
	sd_event_exit(t->event, 0);
}

static int on_fifo(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	struct trun *t = userdata;
	char buf[64];

	(void)!read(fd, buf, sizeof(buf));
	t->ready_mono_usec = now_usec(CLOCK_MONOTONIC);
	t->fifo_source = sd_event_source_disable_unref(t->fifo_source);
	if (t->on_ready)
		t->on_ready(t);
	return 0;
}

static int on_limit(sd_event_source *s, uint64_t usec, void *userdata)
{
	sd_event_exit(userdata, -ETIMEDOUT);
	return 0;
}

static void trun_init(struct trun *t)
{
	memset(t, 0, sizeof(*t));
	t->fifo_fd = -1;
	hook_result_init(&t->res, "", "");
	assert_int_equal(sd_event_new(&t->event), 0);
}

/* A fifo in dir the hook can write "ready" to; on_ready runs then. */
static char *trun_fifo(struct trun *t, const char *dir, void (*on_ready)(struct trun *t))
{
	char *fifo = xasprintf("%s/ready.fifo", dir);

	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* O_RDWR: never sees a hangup, and the hook's open never blocks. */
	t->fifo_fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(t->fifo_fd >= 0);
	assert_int_equal(sd_event_add_io(t->event, &t->fifo_source, t->fifo_fd, EPOLLIN, on_fifo, t), 0);
	t->on_ready = on_ready;
	return fifo;
}

static void trun_params(struct trun *t, struct hook_run_params *p, const char *dir, const char *name)
{
	free(t->path);
	t->path = xasprintf("%s/%s", dir, name);
	memset(p, 0, sizeof(*p));
	p->event = t->event;
	p->name = name;
	p->path = t->path;
	p->event_id = "ev-1234";
	p->stdin_json = "{\"id\":\"ev-1234\"}";
	p->budget_usec = 50 * USEC_PER_SEC;
	p->kill_grace_usec = 300 * USEC_PER_MSEC;
	p->ended = on_ended;
	p->userdata = t;
}

/* Runs the loop until something calls sd_event_exit (or the limit hits). */
static int trun_loop(struct trun *t)
{
	sd_event_source *limit = NULL;
	int r;

	assert_int_equal(sd_event_add_time_relative(t->event, &limit, CLOCK_MONOTONIC,
						    TEST_RUN_LIMIT_USEC, 0, on_limit, t->event), 0);
	r = sd_event_loop(t->event);
	sd_event_source_disable_unref(limit);
	return r;
}

/* Starts the hook and runs the loop until it ended. */
static void trun_run(struct trun *t, const struct hook_run_params *p)
{
	assert_int_equal(hook_run_start(p, &t->run), 0);
	assert_non_null(t->run);
	/* Nothing is called back from within the start. */
	assert_int_equal(t->n_ended, 0);
	assert_int_equal(trun_loop(t), 0);
	assert_int_equal(t->n_ended, 1);
	/* Everything the hook left is dead and reaped, its main process by
	 * sd-event after the child callback returned. */
	assert_true(no_children());
}

static void trun_done(struct trun *t)
{
	hook_run_free(t->run);
	t->run = NULL;
	hook_result_done(&t->res);
	sd_event_source_disable_unref(t->fifo_source);
	if (t->fifo_fd >= 0)
		close(t->fifo_fd);
	sd_event_unref(t->event);
	free(t->path);
	memset(t, 0, sizeof(*t));
}

/* Runs one hook with default parameters (env may be NULL). */
static void run_simple(struct trun *t, const char *dir, const char *name, char **env)
{
	struct hook_run_params p;

	trun_params(t, &p, dir, name);
	p.env = env;
	trun_run(t, &p);
}

/* Log records on stderr between capture_start and capture_end, at info. */
struct capture {
	int saved_fd;
	char *path;
	int saved_priority;
};

static void capture_start(struct capture *c)
{
	int fd;

	c->path = tpath("capture.%d", (int)getpid());
	fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	fflush(stderr);
	c->saved_fd = fcntl(STDERR_FILENO, F_DUPFD_CLOEXEC, 3);
	assert_true(c->saved_fd >= 0);
	assert_int_equal(dup2(fd, STDERR_FILENO), STDERR_FILENO);
	close(fd);
	c->saved_priority = log_get_max_priority();
	log_setup(LOG_FORMAT_TEXT, LOG_INFO);
}

/* Returns what was logged; the caller frees. */
static char *capture_end(struct capture *c)
{
	char *text;

	fflush(stderr);
	assert_int_equal(dup2(c->saved_fd, STDERR_FILENO), STDERR_FILENO);
	close(c->saved_fd);
	log_setup(LOG_FORMAT_TEXT, c->saved_priority);
	text = read_text(c->path);
	assert_non_null(text);
	(void)unlink(c->path);
	free(c->path);
	return text;
}

static void assert_contains(const char *text, const char *needle)
{
	if (!strstr(text, needle))
		fail_msg("'%s' not in:\n%s", needle, text);
}

static void test_run_exit_status(void **state)
{
	char *dir = tpath("status"), *log = tpath("status.log"), *body, *got, *want;
	struct capture cap;
	struct trun t;
	char *logged;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("echo 10-ok >> %s", log);
	write_hook(dir, "10-ok", body);
	free(body);
	write_hook(dir, "20-fail", "exit 3");
	write_hook(dir, "30-sig", "kill -USR1 $$");
	write_hook(dir, "40-77", "exit 77");
	write_hook(dir, "50-127", "exit 127");

	capture_start(&cap);
	trun_init(&t);
	run_simple(&t, dir, "10-ok", NULL);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.exit_status, 0);
	assert_int_equal(t.res.term_signal, 0);
	assert_string_equal(t.res.error, "");
	assert_false(t.res.timed_out);
	assert_string_equal(t.res.name, "10-ok");
	assert_string_equal(t.res.path, t.path);
	assert_true(t.res.start_wall_usec > 0);
	assert_true(t.res.duration_usec > 0);
	assert_int_equal(t.res.budget_usec, 50 * USEC_PER_SEC);
	got = read_text(log);
	assert_string_equal(got, "10-ok\n");
	free(got);
	/* The lines the integration tests look for. */
	want = xasprintf("[ev-1234 10-ok] hook '10-ok' started (pid ");
	assert_contains(logged, want);
	free(want);
	assert_contains(logged, ", timeout 50.0 s)");
	assert_contains(logged, "[ev-1234 10-ok] hook '10-ok' exited 0 after ");
	free(logged);
	trun_done(&t);

	trun_init(&t);
	run_simple(&t, dir, "20-fail", NULL);
	assert_int_equal(t.res.outcome, HOOK_FAILED);
	assert_int_equal(t.res.exit_status, 3);
	assert_int_equal(t.res.term_signal, 0);
	trun_done(&t);

	trun_init(&t);
	run_simple(&t, dir, "30-sig", NULL);
	assert_int_equal(t.res.outcome, HOOK_FAILED);
	assert_int_equal(t.res.exit_status, -1);
	assert_int_equal(t.res.term_signal, SIGUSR1);
	assert_false(t.res.timed_out);
	trun_done(&t);

	/* What 77 means is the engine's: for the runner it is success. */
	trun_init(&t);
	run_simple(&t, dir, "40-77", NULL);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.exit_status, 77);
	trun_done(&t);

	/* A hook's own 127 is not an exec error. */
	trun_init(&t);
	run_simple(&t, dir, "50-127", NULL);
	assert_int_equal(t.res.outcome, HOOK_FAILED);
	assert_int_equal(t.res.exit_status, 127);
	assert_string_equal(t.res.error, "");
	trun_done(&t);

	free(dir);
	free(log);
}

/* Everything a hook's process sees: environment, stdin, cwd, fds, session,
 * signal state. */
static void test_run_child_setup(void **state)
{
	char *dir = tpath("probe"), *body;
	char **env = test_env();
	char *got, *f, *expected, *q;
	unsigned long pid, pgrp, sid;
	struct hook_run_params p;
	sigset_t mask, old_mask;
	void (*old_usr2)(int);
	int leak_fd;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("tr '\\0' '\\n' < /proc/$$/environ > %1$s/env\n"
			 "cat > %1$s/stdin\n"
			 "readlink /proc/$$/cwd > %1$s/cwd\n"
			 "ls /proc/self/fd > %1$s/fds\n"
			 "readlink /proc/$$/fd/3 > %1$s/fd3\n"
			 "echo \"$0\" > %1$s/arg0\n"
			 "cat /proc/$$/stat > %1$s/stat\n"
			 "echo $$ > %1$s/pid\n",
			 dir);
	write_hook(dir, "10-probe", body);
	free(body);
	/* Not a shell (dash blocks signals around its forks), not perl (it
	 * ignores SIGFPE itself). */
	body = xasprintf("#!/usr/bin/mawk -f\n"
			 "BEGIN { while ((getline l < \"/proc/self/status\") > 0)\n"
			 "\tif (l ~ /^Sig(Blk|Ign):/) print l > \"%s/sig\" }\n",
			 dir);
	f = xasprintf("%s/20-sigprobe", dir);
	write_mode(f, body, 0755);
	free(f);
	free(body);

	/* An fd without O_CLOEXEC, and signal state a child must not inherit. */
	leak_fd = open("/dev/null", O_RDONLY);
	assert_true(leak_fd >= 3);
	sigemptyset(&mask);
	sigaddset(&mask, SIGUSR1);
	assert_int_equal(sigprocmask(SIG_BLOCK, &mask, &old_mask), 0);
	old_usr2 = signal(SIGUSR2, SIG_IGN);

	trun_init(&t);
	trun_params(&t, &p, dir, "10-probe");
	p.env = env;
	p.budget_usec = 5 * USEC_PER_SEC + 900 * USEC_PER_MSEC;
	p.stdin_json = "{\"id\":\"ev-1234\",\"type\":\"Preempt\"}";
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.budget_usec, 5 * USEC_PER_SEC + 900 * USEC_PER_MSEC);
	trun_done(&t);

	trun_init(&t);
	run_simple(&t, dir, "20-sigprobe", env);
	assert_int_equal(t.res.outcome, HOOK_OK);
	trun_done(&t);

	close(leak_fd);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
	signal(SIGUSR2, old_usr2);

	f = xasprintf("%s/env", dir);
	got = read_text(f);
	free(f);
	expected = xstrdup("");
	for (size_t i = 0; i < ELEMENTSOF(expected_env); i++) {
		q = xasprintf("%s%s\n", expected, expected_env[i]);
		free(expected);
		expected = q;
	}
	q = xasprintf("%sSPOT_HOOK_TIMEOUT=5\nSPOT_HOOK_PATH=%s/10-probe\n", expected, dir);
	free(expected);
	expected = q;
	assert_string_equal(got, expected);
	free(got);
	free(expected);

	f = xasprintf("%s/stdin", dir);
	got = read_text(f);
	assert_string_equal(got, "{\"id\":\"ev-1234\",\"type\":\"Preempt\"}");
	free(got);
	free(f);

	f = xasprintf("%s/cwd", dir);
	got = read_text(f);
	assert_string_equal(got, "/\n");
	free(got);
	free(f);

	/* ls's own 0 1 2, the hook's file (3, which the shell reads the
	 * script through) and the directory ls reads; nothing inherited, and
	 * the exec error pipe closed by the exec. */
	f = xasprintf("%s/fds", dir);
	got = read_text(f);
	assert_string_equal(got, "0\n1\n2\n3\n4\n");
	free(got);
	free(f);
	f = xasprintf("%s/fd3", dir);
	got = read_text(f);
	q = xasprintf("%s/10-probe\n", dir);
	assert_string_equal(got, q);
	free(q);
	free(got);
	free(f);
	/* A script is handed to its interpreter by descriptor. */
	f = xasprintf("%s/arg0", dir);
	got = read_text(f);
	assert_string_equal(got, "/dev/fd/3\n");
	free(got);
	free(f);

	f = xasprintf("%s/stat", dir);
	got = read_text(f);
	q = strrchr(got, ')');
	assert_non_null(q);
	assert_int_equal(sscanf(q + 1, " %*c %*d %lu %lu", &pgrp, &sid), 2);
	free(got);
	free(f);
	f = xasprintf("%s/pid", dir);
	pid = (unsigned long)read_pid(f);
	free(f);
	assert_int_equal(pgrp, pid);
	assert_int_equal(sid, pid);

	f = xasprintf("%s/sig", dir);
	got = read_text(f);
	assert_string_equal(got, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n");
	free(got);
	free(f);

	strv_free(env);
	free(dir);
}

static void hook_timeout_case(const char *dir, uint64_t budget_usec, const char *want)
{
	char *env[] = { "PATH=/usr/bin:/bin", "SPOT_HOOK_TIMEOUT=999", "SPOT_HOOK_PATH=/elsewhere", NULL };
	char *f = xasprintf("%s/env", dir), *got;
	struct hook_run_params p;
	struct trun t;

	trun_init(&t);
	trun_params(&t, &p, dir, "10-t");
	p.env = env;
	p.budget_usec = budget_usec;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.budget_usec, budget_usec);
	got = read_text(f);
	assert_string_equal(got, want);
	free(got);
	free(f);
	trun_done(&t);
}

static void test_run_hook_timeout_env(void **state)
{
	char *dir = tpath("tenv"), *body, *want;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("tr '\\0' '\\n' < /proc/$$/environ > %s/env", dir);
	write_hook(dir, "10-t", body);
	free(body);

	/* The base environment's own value goes; less than a second left is
	 * still "1", never "0"; no budget at all is "0". */
	want = xasprintf("PATH=/usr/bin:/bin\nSPOT_HOOK_TIMEOUT=1\nSPOT_HOOK_PATH=%s/10-t\n", dir);
	hook_timeout_case(dir, 900 * USEC_PER_MSEC, want);
	free(want);
	want = xasprintf("PATH=/usr/bin:/bin\nSPOT_HOOK_TIMEOUT=42\nSPOT_HOOK_PATH=%s/10-t\n", dir);
	hook_timeout_case(dir, 42 * USEC_PER_SEC + 999999, want);
	free(want);
	want = xasprintf("PATH=/usr/bin:/bin\nSPOT_HOOK_TIMEOUT=0\nSPOT_HOOK_PATH=%s/10-t\n", dir);
	hook_timeout_case(dir, USEC_INFINITY, want);
	free(want);
	free(dir);
}

/* The budget runs out: SIGTERM is enough for this one. */
static void test_run_budget(void **state)
{
	char *dir = tpath("budget");
	struct hook_run_params p;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-hang", "exec sleep 1000");

	trun_init(&t);
	trun_params(&t, &p, dir, "10-hang");
	p.budget_usec = 300 * USEC_PER_MSEC;
	p.kill_grace_usec = 30 * USEC_PER_SEC;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_true(t.res.timed_out);
	assert_int_equal(t.res.term_signal, SIGTERM);
	assert_int_equal(t.res.exit_status, -1);
	assert_int_equal(t.res.budget_usec, 300 * USEC_PER_MSEC);
	/* SIGTERM a quarter of the budget before its end (the grace is
	 * longer than that). */
	assert_true(t.res.duration_usec >= 225 * USEC_PER_MSEC);
	assert_true(t.res.duration_usec < 20 * USEC_PER_SEC);
	trun_done(&t);
	free(dir);
}

/* One that ignores SIGTERM: SIGKILL at the end of its budget, not a grace
 * after it, so that it ends within its budget. */
static void test_run_budget_includes_grace(void **state)
{
	char *dir = tpath("budget-grace"), *logged;
	struct hook_run_params p;
	struct capture cap;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-stubborn", "trap '' TERM\nsleep 1000\nsleep 1000");
	trun_init(&t);
	trun_params(&t, &p, dir, "10-stubborn");
	p.budget_usec = 800 * USEC_PER_MSEC;
	p.kill_grace_usec = 30 * USEC_PER_SEC;
	capture_start(&cap);
	trun_run(&t, &p);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_int_equal(t.res.term_signal, SIGKILL);
	assert_true(t.res.duration_usec >= 800 * USEC_PER_MSEC);
	assert_true(t.res.duration_usec < 20 * USEC_PER_SEC);
	/* SIGTERM a grace before the timeout, SIGKILL at it, said as such. */
	assert_contains(logged, "hook '10-stubborn' has run 0.6 s of its 0.8 s timeout: SIGTERM to its "
				"process group now, SIGKILL at 0.8 s if it is still running");
	assert_contains(logged, "hook '10-stubborn' still running 0.2 s after SIGTERM, sending SIGKILL");
	free(logged);
	trun_done(&t);
	free(dir);
}

static void kill_when_ready(struct trun *t)
{
	hook_run_kill(t->run);
	/* A second kill is harmless. */
	hook_run_kill(t->run);
}

/* hook_run_kill on a hook that goes when asked: SIGTERM reaches its whole
 * group, and its background child dies with it. */
static void test_run_kill_term(void **state)
{
	char *dir = tpath("term"), *bg = tpath("term.bg"), *fifo, *body;
	struct hook_run_params p;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, kill_when_ready);
	body = xasprintf("sleep 1000 &\necho $! > %s\necho waiting\necho ready > %s\nsleep 1000",
			 bg, fifo);
	write_hook(dir, "10-wait", body);
	free(body);

	t.pid_files[t.n_pid_files++] = bg;
	trun_params(&t, &p, dir, "10-wait");
	p.budget_usec = USEC_INFINITY;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_true(t.res.timed_out);
	assert_int_equal(t.res.term_signal, SIGTERM);
	assert_int_equal(t.res.exit_status, -1);
	assert_int_equal(t.res.budget_usec, USEC_INFINITY);
	assert_int_equal(t.res.n_output, 1);
	assert_string_equal(t.res.output[0], "waiting");
	assert_true(t.dead_at_end[0]);
	trun_done(&t);
	free(dir);
	free(bg);
	free(fifo);
}

/* This one ignores SIGTERM (and so does its child): SIGKILL after the
 * grace takes them all. */
static void test_run_kill_grace(void **state)
{
	char *dir = tpath("stubborn"), *bg = tpath("stubborn.bg"), *fifo, *body, *logged;
	struct hook_run_params p;
	struct capture cap;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, kill_when_ready);
	body = xasprintf("trap '' TERM\nsleep 1000 &\necho $! > %s\necho ready > %s\nsleep 1000\nsleep 1000",
			 bg, fifo);
	write_hook(dir, "10-stubborn", body);
	free(body);

	t.pid_files[t.n_pid_files++] = bg;
	trun_params(&t, &p, dir, "10-stubborn");
	p.kill_grace_usec = 200 * USEC_PER_MSEC;
	capture_start(&cap);
	trun_run(&t, &p);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_true(t.res.timed_out);
	assert_int_equal(t.res.term_signal, SIGKILL);
	assert_true(t.ended_mono_usec - t.ready_mono_usec >= 200 * USEC_PER_MSEC);
	assert_true(t.dead_at_end[0]);
	assert_contains(logged, "hook '10-stubborn' is stopped after ");
	assert_contains(logged, ": SIGTERM to its process group now, SIGKILL in 0.2 s if it is still running");
	assert_contains(logged, "hook '10-stubborn' still running 0.2 s after SIGTERM, sending SIGKILL");
	assert_contains(logged, "hook '10-stubborn' killed by SIGKILL after ");
	/* Killed with it, not left behind. */
	assert_null(strstr(logged, "behind"));
	free(logged);
	trun_done(&t);
	free(dir);
	free(bg);
	free(fifo);
}

static void test_run_output(void **state)
{
	char *dir = tpath("talk");
	char xs[HOOK_LINE_MAX + 1];
	struct lines l;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	/* stdout only: stderr has a pipe of its own, so the order between
	 * the two is the reads' (test_run_stderr). */
	write_hook(dir, "10-talk",
		   "i=1; while [ $i -le 15 ]; do echo \"line $i\"; i=$((i+1)); done\n"
		   "printf 'crlf\\r\\n\\n\\n'\n"
		   "printf 'tab\\there\\033[31m\\n'\n"
		   "head -c 3000 /dev/zero | tr '\\0' x; echo\n"
		   "printf 'no newline at end'");
	trun_init(&t);
	run_simple(&t, dir, "10-talk", NULL);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.output_bytes, 9 * 7 + 6 * 8 + 8 + 14 + 3001 + 17);

	lines_get(&t.res, &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_string_equal(l.v[0], "line 12");
	assert_string_equal(l.v[1], "line 13");
	assert_string_equal(l.v[2], "line 14");
	assert_string_equal(l.v[3], "line 15");
	assert_string_equal(l.v[4], "crlf");
	assert_string_equal(l.v[5], "tab\there?[31m");
	memset(xs, 'x', HOOK_LINE_MAX);
	xs[HOOK_LINE_MAX] = '\0';
	assert_string_equal(l.v[6], xs);
	assert_string_equal(l.v[7], xs);
	xs[3000 - 2 * HOOK_LINE_MAX] = '\0';
	assert_string_equal(l.v[8], xs);
	assert_string_equal(l.v[9], "no newline at end");
	lines_done(&l);
	trun_done(&t);
	free(dir);
}

/* stderr is logged at warning, stdout at info, both into the ring; a
 * script's shell errors name the hook, not /dev/fd/3 (which stays as it is
 * where it is not the script's name, and on stdout). */
static void test_run_stderr(void **state)
{
	char *dir = tpath("stderr"), *logged, *want;
	struct capture cap;
	struct lines l;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-err",
		   "echo 'to stdout'\n"
		   "sleep 0.1\n"
		   "echo 'to stderr' >&2\n"
		   "sleep 0.1\n"
		   "no_such_command_xyz\n"
		   "sleep 0.1\n"
		   "echo \"fd /dev/fd/30 and /dev/fd/3/x; \\$0=$0\"\n"
		   "echo \"\\$0=$0\" >&2\n"
		   "exit 0");
	trun_init(&t);
	capture_start(&cap);
	run_simple(&t, dir, "10-err", NULL);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_contains(logged, "spot-agent: info: [ev-1234 10-err] to stdout\n");
	assert_contains(logged, "spot-agent: warning: [ev-1234 10-err] to stderr\n");
	want = xasprintf("spot-agent: warning: [ev-1234 10-err] %s/10-err: 6: no_such_command_xyz: not found\n", dir);
	assert_contains(logged, want);
	free(want);
	assert_contains(logged, "spot-agent: info: [ev-1234 10-err] fd /dev/fd/30 and /dev/fd/3/x; $0=/dev/fd/3\n");
	want = xasprintf("spot-agent: warning: [ev-1234 10-err] $0=%s/10-err\n", dir);
	assert_contains(logged, want);
	free(want);
	assert_null(strstr(logged, "/dev/fd/3: "));
	lines_get(&t.res, &l);
	assert_int_equal(l.n, 5);
	assert_string_equal(l.v[1], "to stderr");
	lines_done(&l);
	free(logged);
	trun_done(&t);
	free(dir);
}

static void test_run_big_output(void **state)
{
	char *dir = tpath("flood"), *logged;
	struct capture cap;
	struct lines l;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-flood", "yes abcdefghij | head -c 2097152\necho\necho done");
	write_hook(dir, "20-flood-noline", "head -c 2097152 /dev/zero");

	trun_init(&t);
	capture_start(&cap);
	run_simple(&t, dir, "10-flood", NULL);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.output_bytes, 2097152 + 1 + 5);
	lines_get(&t.res, &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_string_equal(l.v[9], "done");
	assert_string_equal(l.v[8], "ab");  /* 2097152 = 190650 * 11 + 2 */
	assert_string_equal(l.v[7], "abcdefghij");
	lines_done(&l);
	/* The log got its cap's worth, and a note. */
	assert_contains(logged, "hook '10-flood' wrote more than 256 KiB, further output is counted but not logged");
	{
		/* Lines of 10 bytes and a newline until the cap is reached. */
		size_t n = 0;

		for (const char *q = logged; (q = strstr(q, "] abcdefghij\n")); q++)
			n++;
		assert_int_equal(n, (HOOK_LOG_BYTES_MAX + 10) / 11);
		assert_null(strstr(logged, "] done\n"));
	}
	free(logged);
	trun_done(&t);

	trun_init(&t);
	run_simple(&t, dir, "20-flood-noline", NULL);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.output_bytes, 2097152);
	lines_get(&t.res, &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_int_equal(strlen(l.v[9]), 2097152 % HOOK_LINE_MAX ? 2097152 % HOOK_LINE_MAX : HOOK_LINE_MAX);
	assert_int_equal(l.v[9][0], '?');
	lines_done(&l);
	trun_done(&t);
	free(dir);
}

static void test_run_stdin(void **state)
{
	char *dir = tpath("stdin"), *count = tpath("stdin.count"), *body, *json, *got, *want;
	struct hook_run_params p;
	size_t n = 300 * 1024;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-deaf", "exit 0");
	body = xasprintf("wc -c > %s", count);
	write_hook(dir, "20-count", body);
	free(body);
	write_hook(dir, "30-none", "cat; echo end");

	/* More than a pipe holds. */
	json = xmalloc(n + 1);
	memset(json, ' ', n);
	json[0] = '{';
	json[n - 1] = '}';
	json[n] = '\0';

	/* One that never reads it: EPIPE, not a crash or a hang. */
	trun_init(&t);
	trun_params(&t, &p, dir, "10-deaf");
	p.stdin_json = json;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	trun_done(&t);

	trun_init(&t);
	trun_params(&t, &p, dir, "20-count");
	p.stdin_json = json;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	got = read_text(count);
	want = xasprintf("%zu\n", n);
	assert_string_equal(got, want);
	free(got);
	free(want);
	trun_done(&t);

	/* No event at all: stdin is at EOF at once. */
	trun_init(&t);
	trun_params(&t, &p, dir, "30-none");
	p.stdin_json = NULL;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.n_output, 1);
	assert_string_equal(t.res.output[0], "end");
	trun_done(&t);

	free(json);
	free(dir);
	free(count);
}

/* Runs the plan's hook named name; returns its first output line (owned). */
static char *run_planned(const struct hook_plan *plan, const char *name)
{
	struct hook_run_params p;
	struct trun t;
	char *line;
	size_t i;

	for (i = 0; i < plan->n_hooks && strcmp(plan->hooks[i].name, name) != 0; i++)
		;
	assert_true(i < plan->n_hooks);
	trun_init(&t);
	trun_params(&t, &p, "/unused", name);
	p.path = plan->hooks[i].path;
	p.file = &plan->hooks[i];
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_string_equal(t.res.path, plan->hooks[i].path);
	assert_true(t.res.n_output >= 1);
	line = xstrdup(t.res.output[0]);
	trun_done(&t);
	return line;
}

/* What runs is the file that was checked: the plan's descriptor, whatever
 * the path names by then; it is checked again when it starts. Without a
 * plan the path is opened and checked at the start. */
static void test_run_what_was_checked(void **state)
{
	char *dir = tpath("checked"), *open_dir = tpath("checked-open"), *f, *g, *line;
	char why[HOOK_SKIP_REASON_MAX];
	struct hook_run_params p;
	struct hook_run *run = NULL;
	struct hook_plan plan;
	struct trun t;
	size_t fds;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-swapped", "echo \"original $SPOT_HOOK_PATH\"");
	write_hook(dir, "20-removed", "echo still here");
	write_hook(dir, "30-chmod", "echo ran");
	write_hook(dir, "40-evil", "echo evil");
	fds = count_fds();
	assert_int_equal(hooks_scan(dir, NULL, &plan), 0);
	assert_int_equal(plan.n_hooks, 4);
	/* One descriptor per hook, held by the plan. */
	assert_int_equal(count_fds(), fds + 4);

	/* Another executable renamed over the hook after the scan. */
	f = xasprintf("%s/10-swapped", dir);
	g = xasprintf("%s/40-evil", dir);
	assert_int_equal(rename(g, f), 0);
	free(g);
	line = run_planned(&plan, "10-swapped");
	g = xasprintf("original %s", f);
	assert_string_equal(line, g);
	free(line);
	free(g);
	free(f);
	/* Removed after the scan: the checked file still runs. */
	f = xasprintf("%s/20-removed", dir);
	assert_int_equal(unlink(f), 0);
	free(f);
	line = run_planned(&plan, "20-removed");
	assert_string_equal(line, "still here");
	free(line);
	/* Made group-writable after the scan: refused at its start. */
	f = xasprintf("%s/30-chmod", dir);
	assert_int_equal(chmod(f, 0775), 0);
	trun_init(&t);
	trun_params(&t, &p, dir, "30-chmod");
	p.file = &plan.hooks[2];
	p.why = why;
	p.why_size = sizeof(why);
	assert_int_equal(hook_run_start(&p, &run), -EPERM);
	assert_null(run);
	assert_string_equal(why, "group-writable");
	assert_true(no_children());
	trun_done(&t);
	free(f);

	hook_plan_done(&plan);
	assert_int_equal(count_fds(), fds);

	/* No plan: the path is opened and checked at the start. */
	assert_int_equal(mkdir(open_dir, 0755), 0);
	write_hook(open_dir, "10-a", "echo a");
	f = xasprintf("%s/30-noexec", dir);
	write_mode(f, "#!/bin/sh\necho never\n", 0644);
	free(f);
	fds = count_fds();
	assert_int_equal(chmod(open_dir, 0777), 0);
	trun_init(&t);
	trun_params(&t, &p, open_dir, "10-a");
	p.why = why;
	p.why_size = sizeof(why);
	assert_int_equal(hook_run_start(&p, &run), -EPERM);
	line = xasprintf("directory '%s' is world-writable", open_dir);
	assert_string_equal(why, line);
	free(line);
	trun_params(&t, &p, dir, "30-noexec");
	p.why = why;
	p.why_size = sizeof(why);
	assert_int_equal(hook_run_start(&p, &run), -EPERM);
	assert_string_equal(why, "not executable");
	trun_params(&t, &p, dir, "50-gone");
	p.why = why;
	p.why_size = sizeof(why);
	assert_int_equal(hook_run_start(&p, &run), -ENOENT);
	assert_string_equal(why, "");
	assert_null(run);
	assert_true(no_children());
	trun_done(&t);
	assert_int_equal(count_fds(), fds);
	assert_int_equal(chmod(open_dir, 0755), 0);
	trun_init(&t);
	trun_params(&t, &p, open_dir, "10-a");
	trun_run(&t, &p);
	assert_string_equal(t.res.output[0], "a");
	trun_done(&t);
	/* A run leaves no descriptor behind. */
	assert_int_equal(count_fds(), fds);
	free(dir);
	free(open_dir);
}

static void exec_case(const char *dir, const char *name, bool script, const char *want_detail)
{
	struct hook_file file = { 0 };
	struct hook_run_params p;
	struct capture cap;
	struct trun t;
	char *logged, *want;

	/* Opened here, past the scan's checks, as a file whose
	 * interpreter went after the scan would be. */
	(void)snprintf(file.path, sizeof(file.path), "%s/%s", dir, name);
	(void)strscpy(file.name, sizeof(file.name), name);
	file.fd = open(file.path, O_PATH | O_CLOEXEC);
	assert_true(file.fd >= 0);
	file.script = script;
	trun_init(&t);
	trun_params(&t, &p, dir, name);
	p.file = &file;
	capture_start(&cap);
	trun_run(&t, &p);
	logged = capture_end(&cap);
	close(file.fd);
	assert_int_equal(t.res.outcome, HOOK_FAILED);
	assert_int_equal(t.res.exit_status, 127);
	assert_int_equal(t.res.term_signal, 0);
	assert_string_equal(t.res.error, want_detail);
	assert_int_equal(t.res.n_output, 0);
	assert_int_equal(t.res.output_bytes, 0);
	want = xasprintf("[ev-1234 %s] hook '%s' %s\n", name, name, want_detail);
	assert_contains(logged, want);
	free(want);
	free(logged);
	trun_done(&t);
}

/* /bin/true with its program interpreter's path changed to one that does
 * not exist; false when it has none this test knows. */
static bool elf_bad_loader(const char *dir, const char *name, char *ret_loader, size_t n)
{
	char *path = xasprintf("%s/%s", dir, name), *bin, *hit;
	struct stat st;
	bool found;

	assert_int_equal(stat("/bin/true", &st), 0);
	bin = xmalloc((size_t)st.st_size + 1);
	{
		int fd = open("/bin/true", O_RDONLY | O_CLOEXEC);

		assert_int_equal(read(fd, bin, (size_t)st.st_size), st.st_size);
		close(fd);
	}
	bin[st.st_size] = '\0';
	hit = memmem(bin, (size_t)st.st_size, "/lib64/ld-", 10);
	if (!hit)
		hit = memmem(bin, (size_t)st.st_size, "/lib/ld-", 8);
	found = hit != NULL;
	if (found) {
		memcpy(hit, "/nox", 4);
		(void)strscpy(ret_loader, n, hit);
		write_mode(path, "", 0755);
		{
			int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);

			assert_int_equal(write_all(fd, bin, (size_t)st.st_size), 0);
			close(fd);
		}
	}
	free(bin);
	free(path);
	return found;
}

/* A file past the scan's checks that still cannot be executed (its
 * interpreter went away after the scan, say): it ends as failed with exit
 * 127, and the result and the log say why, the interpreter named. */
static void test_run_exec_failure(void **state)
{
	char *dir = tpath("execfail"), *f, *interp = tpath("execfail-interp"), *want;
	unsigned char sparc[2] = { 43, 0 };
	char loader[PATH_MAX];

	assert_int_equal(mkdir(dir, 0755), 0);
	f = xasprintf("%s/20-badinterp", dir);
	write_mode(f, "#!/nonexistent/interpreter -x\necho never\n", 0755);
	free(f);
	f = xasprintf("%s/40-garbage", dir);
	write_mode(f, "\x01\x02 not a script, not ELF\n", 0755);
	free(f);
	write_mode(interp, "#!/bin/sh\n", 0644);
	f = xasprintf("%s/50-noexec-interp", dir);
	want = xasprintf("#!%s\n", interp);
	write_mode(f, want, 0755);
	free(want);
	free(f);
	elf_copy(dir, "60-foreign", 18, sparc, 2);

	exec_case(dir, "20-badinterp", true,
		  "cannot execute: No such file or directory (interpreter '/nonexistent/interpreter')");
	exec_case(dir, "40-garbage", true, "cannot execute: Exec format error");
	want = xasprintf("cannot execute: Permission denied (interpreter '%s')", interp);
	exec_case(dir, "50-noexec-interp", true, want);
	free(want);
	/* Not the loader's fault: no interpreter named. */
	exec_case(dir, "60-foreign", false, "cannot execute: Exec format error");
	if (elf_bad_loader(dir, "70-no-loader", loader, sizeof(loader))) {
		want = xasprintf("cannot execute: No such file or directory (interpreter '%s')", loader);
		exec_case(dir, "70-no-loader", false, want);
		free(want);
	}
	free(interp);
	free(dir);
}

/* A hook that leaves three processes behind: one in its group, one in a
 * session of its own, one double-forked (its parent gone before the hook
 * ends). "escape" moves the hook out of the cgroup first, so that only the
 * subreaper can find them. */
static void write_leaver(const char *dir, const char *name, const char *escape)
{
	char *body = xasprintf("%1$s\n"
			       "sleep 1000 &\n"
			       "echo $! > %2$s/%3$s.group\n"
			       "setsid sh -c 'echo $$; exec sleep 1000' > %2$s/%3$s.session &\n"
			       "sh -c 'sleep 1000 & echo $! > %2$s/%3$s.orphan'\n"
			       "until [ -s %2$s/%3$s.session ]; do sleep 0.01; done\n"
			       "echo bye\n",
			       escape ? escape : "", dir, name);

	write_hook(dir, name, body);
	free(body);
}

static void leaver_case(const char *dir, const char *name, const char *escape, bool expect_note)
{
	char *files[3], *logged, *want;
	struct capture cap;
	struct trun t;

	write_leaver(dir, name, escape);
	trun_init(&t);
	files[0] = xasprintf("%s/%s.group", dir, name);
	files[1] = xasprintf("%s/%s.session", dir, name);
	files[2] = xasprintf("%s/%s.orphan", dir, name);
	for (size_t i = 0; i < 3; i++)
		t.pid_files[t.n_pid_files++] = files[i];
	capture_start(&cap);
	run_simple(&t, dir, name, NULL);
	logged = capture_end(&cap);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.exit_status, 0);
	assert_int_equal(t.res.n_output, 1);
	assert_string_equal(t.res.output[0], "bye");
	for (size_t i = 0; i < 3; i++) {
		if (!t.dead_at_end[i])
			fail_msg("'%s' (pid %d) still alive when the end was reported", files[i],
				 (int)t.pids[i]);
		free(files[i]);
	}
	if (expect_note) {
		want = xasprintf("hook '%s' left 3 processes behind, killed", name);
		assert_contains(logged, want);
		free(want);
	}
	free(logged);
	trun_done(&t);
}

/* Without a cgroup, the subreaper finds them all. */
static void test_run_leftovers_subreaper(void **state)
{
	char *dir = tpath("left-sr");

	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(hooks_tree_setup(NULL, NULL), 0);
	assert_null(hooks_tree_cgroup());
	leaver_case(dir, "10-leaver", NULL, true);
	free(dir);
}

static const char *test_tag(void)
{
	static char tag[32];

	(void)snprintf(tag, sizeof(tag), "unit-%d", (int)getpid());
	return tag;
}

/* Sets up the tests' cgroup; false when this machine gives none. */
static bool setup_cgroup(void)
{
	unsigned killed = 99;

	assert_int_equal(hooks_tree_setup(test_tag(), &killed), 0);
	if (!hooks_tree_cgroup())
		return false;
	assert_int_equal(killed, 0);
	if (!test_cgroup)
		test_cgroup = xstrdup(hooks_tree_cgroup());
	assert_string_equal(hooks_tree_cgroup(), test_cgroup);
	assert_true(str_endswith(test_cgroup, "/spot-agent-hooks-unit-") ||
		    strstr(test_cgroup, "/spot-agent-hooks-unit-"));
	return true;
}

/* The test process's cgroup2 path ("/" or "/a/b"), in buf. */
static void own_cgroup(char *buf, size_t n)
{
	char line[PATH_MAX + 16];
	FILE *f = fopen("/proc/self/cgroup", "re");
	bool found = false;

	assert_non_null(f);
	while (!found && fgets(line, sizeof(line), f)) {
		if (strncmp(line, "0::/", 4) != 0)
			continue;
		line[strcspn(line, "\n")] = '\0';
		assert_int_equal(strscpy(buf, n, line + 3), 0);
		found = true;
	}
	fclose(f);
	assert_true(found);
}

/* Whether the cgroup2 path cg (as /proc/PID/cgroup names it) is the
 * directory dir. */
static bool cgroup_is(const char *cg, const char *dir)
{
	return strcmp(cg, "/") != 0 && str_endswith(dir, cg);
}

/* The agent lives in the hooks' cgroup, so every hook is born there (and
 * an agent restarted after a crash finds the leftovers there); while the
 * agent runs, the subreaper kills them, those of a hook that left the
 * cgroup as well. */
static void test_run_leftovers_cgroup(void **state)
{
	char *dir = tpath("left-cg"), *parent, *escape;
	char cg[PATH_MAX];
	struct trun t;

	if (!setup_cgroup())
		skip();
	assert_int_equal(mkdir(dir, 0755), 0);
	own_cgroup(cg, sizeof(cg));
	assert_true(cgroup_is(cg, test_cgroup));

	write_hook(dir, "05-where", "sed -n 's/^0:://p' /proc/self/cgroup\n"
		   "setsid sh -c 'sed -n \"s/^0:://p\" /proc/self/cgroup'");
	trun_init(&t);
	run_simple(&t, dir, "05-where", NULL);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_int_equal(t.res.n_output, 2);
	assert_string_equal(t.res.output[0], cg);
	assert_string_equal(t.res.output[1], cg);
	trun_done(&t);

	leaver_case(dir, "10-in-cgroup", NULL, true);

	parent = xstrdup(test_cgroup);
	escape = xasprintf("echo $$ > %s/cgroup.procs", dirname(parent));
	leaver_case(dir, "20-escapes-cgroup", escape, true);
	free(escape);
	free(parent);
	free(dir);
}

static void exit_when_ready(struct trun *t)
{
	sd_event_exit(t->event, 0);
}

/* Freeing a running hook kills it and all it started at once. */
static void test_run_free_running(void **state)
{
	char *dir = tpath("forever"), *fifo, *body, *f;
	struct hook_run_params p;
	pid_t pids[4];
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, exit_when_ready);
	body = xasprintf("echo $$ > %1$s/main\n"
			 "sleep 1000 &\n"
			 "echo $! > %1$s/group\n"
			 "setsid sh -c 'echo $$; exec sleep 1000' > %1$s/session &\n"
			 "sh -c 'sleep 1000 & echo $! > %1$s/orphan'\n"
			 "until [ -s %1$s/session ]; do sleep 0.01; done\n"
			 "echo ready > %2$s\n"
			 "sleep 1000",
			 dir, fifo);
	write_hook(dir, "10-forever", body);
	free(body);

	trun_params(&t, &p, dir, "10-forever");
	assert_int_equal(hook_run_start(&p, &t.run), 0);
	assert_int_equal(trun_loop(&t), 0);
	assert_true(t.ready_mono_usec > 0);
	/* One run at a time. */
	{
		struct hook_run *other = NULL;

		assert_int_equal(hook_run_start(&p, &other), -EBUSY);
		assert_null(other);
	}
	{
		static const char *const names[] = { "main", "group", "session", "orphan" };

		for (size_t i = 0; i < 4; i++) {
			f = xasprintf("%s/%s", dir, names[i]);
			pids[i] = read_pid(f);
			free(f);
			assert_false(dead_now(pids[i]));
		}
	}
	hook_run_free(t.run);
	t.run = NULL;
	for (size_t i = 0; i < 4; i++)
		assert_true(process_ends(pids[i]));
	assert_int_equal(t.n_ended, 0);
	trun_done(&t);

	/* Zombies hook_run_free could not wait for are reaped when the next
	 * hook starts, before it runs: that one waits for its stdin, which
	 * only the loop writes, so it cannot be a zombie itself yet. */
	write_hook(dir, "20-next", "cat > /dev/null");
	trun_init(&t);
	trun_params(&t, &p, dir, "20-next");
	assert_int_equal(hook_run_start(&p, &t.run), 0);
	{
		siginfo_t si = { 0 };

		assert_int_equal(waitid(P_ALL, 0, &si, WEXITED | WNOHANG | WNOWAIT), 0);
		assert_int_equal(si.si_pid, 0);
	}
	assert_int_equal(trun_loop(&t), 0);
	assert_int_equal(t.n_ended, 1);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_true(no_children());
	trun_done(&t);
	free(fifo);
	free(dir);
}

static void test_run_free_in_ended(void **state)
{
	char *dir = tpath("selffree");
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-a", "echo hi");
	trun_init(&t);
	t.free_in_ended = true;
	run_simple(&t, dir, "10-a", NULL);
	assert_null(t.run);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_string_equal(t.res.output[0], "hi");
	trun_done(&t);
	hook_run_free(NULL);
	hook_run_kill(NULL);
	free(dir);
}

/* An agent killed while a hook ran leaves the hook's children in the
 * cgroup; the next agent's set-up kills them before any hook runs again. */
static void test_tree_setup_leftovers(void **state)
{
	int pipefd[2], status;
	unsigned killed = 0;
	char buf[64] = "";
	uint64_t gc = 0;
	size_t n = 0;
	pid_t helper;
	char *procs;

	assert_int_equal(hooks_tree_setup("bad/tag", &killed), -EINVAL);
	assert_int_equal(hooks_tree_setup("", &killed), -EINVAL);
	assert_int_equal(hooks_tree_setup(".x", &killed), -EINVAL);
	if (!setup_cgroup())
		skip();

	/* The "previous agent's hook": in the cgroup, with a child. */
	procs = xasprintf("%s/cgroup.procs", test_cgroup);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		int fd = open(procs, O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1 || dup2(pipefd[1], 1) != 1)
			_exit(1);
		execl("/bin/sh", "sh", "-c", "sleep 1000 & echo \"$!\"; exec sleep 1000", (char *)NULL);
		_exit(1);
	}
	close(pipefd[1]);
	while (n < sizeof(buf) - 1 && !strchr(buf, '\n')) {
		ssize_t k = read(pipefd[0], buf + n, sizeof(buf) - 1 - n);

		assert_true(k > 0);
		n += (size_t)k;
		buf[n] = '\0';
	}
	close(pipefd[0]);
	buf[strcspn(buf, "\n")] = '\0';
	assert_int_equal(parse_uint64(buf, 2, INT32_MAX, &gc), 0);
	free(procs);
	assert_false(dead_now(helper));
	assert_false(dead_now((pid_t)gc));

	/* The restarted agent, same tag: it moves out, kills them, and moves
	 * back in. */
	assert_int_equal(hooks_tree_setup(test_tag(), &killed), 0);
	assert_int_equal(killed, 2);
	{
		char cg[PATH_MAX];

		own_cgroup(cg, sizeof(cg));
		assert_true(cgroup_is(cg, test_cgroup));
	}
	assert_true(dead_now(helper));
	assert_true(dead_now((pid_t)gc));
	assert_int_equal(waitpid(helper, &status, 0), helper);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	/* Adopted by us when the helper died. */
	assert_int_equal(waitpid((pid_t)gc, &status, 0), (pid_t)gc);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	assert_true(no_children());

	/* Nothing left: nothing killed. */
	assert_int_equal(hooks_tree_setup(test_tag(), &killed), 0);
	assert_int_equal(killed, 0);
}

/* hooks_tree_done moves the agent back out and forgets the cgroup, but
 * leaves one still in use (rmdir fails) to the next set-up, which kills
 * what is in it; an empty one it removes. */
static void test_tree_done_busy(void **state)
{
	char before[PATH_MAX], cg[PATH_MAX];
	unsigned killed = 0;
	int pipefd[2], status;
	char ok = 0;
	pid_t helper;
	char *procs;

	hooks_tree_done();
	own_cgroup(before, sizeof(before));
	if (!setup_cgroup())
		skip();
	own_cgroup(cg, sizeof(cg));
	assert_true(cgroup_is(cg, test_cgroup));
	procs = xasprintf("%s/cgroup.procs", test_cgroup);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	helper = fork();
	assert_true(helper >= 0);
	if (helper == 0) {
		int fd = open(procs, O_WRONLY | O_CLOEXEC);

		if (fd < 0 || write(fd, "0", 1) != 1 || write(pipefd[1], "1", 1) != 1)
			_exit(1);
		execl("/bin/sleep", "sleep", "1000", (char *)NULL);
		_exit(1);
	}
	close(pipefd[1]);
	assert_int_equal(read(pipefd[0], &ok, 1), 1);
	close(pipefd[0]);
	free(procs);

	hooks_tree_done();
	assert_null(hooks_tree_cgroup());
	assert_true(exists(test_cgroup));
	assert_false(dead_now(helper));
	own_cgroup(cg, sizeof(cg));
	assert_string_equal(cg, before);
	hooks_tree_done();                /* nothing to forget */
	assert_null(hooks_tree_cgroup());

	assert_int_equal(hooks_tree_setup(test_tag(), &killed), 0);
	assert_int_equal(killed, 1);
	assert_int_equal(waitpid(helper, &status, 0), helper);
	assert_true(WIFSIGNALED(status));
	assert_int_equal(WTERMSIG(status), SIGKILL);
	hooks_tree_done();
	assert_false(exists(test_cgroup));
	own_cgroup(cg, sizeof(cg));
	assert_string_equal(cg, before);
	/* Back to what the later tests expect. */
	assert_true(setup_cgroup());
}

/* ---- fork failure, under the failfork shim ---- */

/* Runs in `test-hooks --failfork`, with LD_PRELOAD set. */
static void test_failfork_child(void **state)
{
	const char *ff = getenv("SPOT_FAILFORK_FILE");
	char *dir = tpath("ff");
	struct hook_run_params p;
	size_t fds;
	struct hook_run *run = NULL;
	struct trun t;

	assert_non_null(ff);
	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-a", "echo ran");
	trun_init(&t);
	trun_params(&t, &p, dir, "10-a");
	/* Open the lazily opened things before counting fds. */
	assert_int_equal(sd_event_run(t.event, 0), 0);

	/* The next fork fails. */
	write_mode(ff, "1\n", 0644);
	fds = count_fds();
	assert_int_equal(hook_run_start(&p, &run), -EAGAIN);
	assert_null(run);
	/* The shim really was asked (it used up its count)... */
	assert_false(exists(ff));
	/* ...and nothing is left: no process, no pipe, no callback. */
	assert_true(no_children());
	assert_int_equal(sd_event_run(t.event, 0), 0);
	assert_int_equal(t.n_ended, 0);
	assert_int_equal(count_fds(), fds);

	/* As the engine does: try again, now it works. */
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_OK);
	assert_string_equal(t.res.output[0], "ran");

	/* An empty file fails every fork while it exists. */
	hook_run_free(t.run);
	t.run = NULL;
	write_mode(ff, "", 0644);
	assert_int_equal(hook_run_start(&p, &run), -EAGAIN);
	assert_int_equal(hook_run_start(&p, &run), -EAGAIN);
	assert_true(exists(ff));
	assert_int_equal(unlink(ff), 0);
	assert_null(run);
	assert_true(no_children());
	trun_done(&t);
	free(dir);
}

static void test_run_fork_failure(void **state)
{
	const char *so_env = getenv("SPOT_FAILFORK_SO");
	char so[PATH_MAX], *ff = tpath("failfork");
	const char *asan = getenv("ASAN_OPTIONS");
	char *argv[] = { "test-hooks", "--failfork", NULL };
	char **envp;
	size_t n = 0, k = 0;
	int status;
	pid_t pid;

	if (!realpath(so_env && so_env[0] ? so_env : "build/test/failfork.so", so)) {
		fprintf(stderr, "test-hooks: no failfork shim (%s), skipping the fork failure case\n",
			so_env && so_env[0] ? so_env : "build/test/failfork.so");
		free(ff);
		skip();
	}
	while (environ[n])
		n++;
	envp = xcalloc(n + 4, sizeof(char *));
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], "LD_PRELOAD=", 11) != 0 &&
		    strncmp(environ[i], "SPOT_FAILFORK_FILE=", 19) != 0 &&
		    strncmp(environ[i], "ASAN_OPTIONS=", 13) != 0)
			envp[k++] = environ[i];
	envp[k++] = xasprintf("LD_PRELOAD=%s", so);
	envp[k++] = xasprintf("SPOT_FAILFORK_FILE=%s", ff);
	/* The shim comes before the sanitizer's runtime in a sanitizer build. */
	envp[k++] = xasprintf("ASAN_OPTIONS=%s%sverify_asan_link_order=0", asan ? asan : "",
			      asan && asan[0] ? ":" : "");
	envp[k] = NULL;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		execve("/proc/self/exe", argv, envp);
		_exit(126);
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	for (size_t i = k - 3; i < k; i++)
		free(envp[i]);
	free(envp);
	free(ff);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
}

/* ---- a running hook's end moved (hook_run_set_end) ---- */

/* What the next on_ready does: the new end, relative to now (negative:
 * already past), and whether hook_run_kill comes first. */
static int64_t set_end_offset_usec;
static bool set_end_after_kill;
static uint64_t set_end_wall_usec;

static void set_end_when_ready(struct trun *t)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	if (set_end_after_kill)
		hook_run_kill(t->run);
	set_end_wall_usec = now_usec(CLOCK_REALTIME);
	hook_run_set_end(t->run, set_end_offset_usec < 0 ? now - (uint64_t)-set_end_offset_usec :
			 now + (uint64_t)set_end_offset_usec);
}

/* Runs dir/name (it writes "ready" to the fifo in dir) with budget and
 * grace; on ready its end moves by offset. The log is returned (caller
 * frees). */
static char *set_end_case(struct trun *t, const char *dir, const char *name, uint64_t budget_usec,
			  uint64_t grace_usec, int64_t offset_usec, bool after_kill)
{
	struct hook_run_params p;
	struct capture cap;

	set_end_offset_usec = offset_usec;
	set_end_after_kill = after_kill;
	set_end_wall_usec = 0;
	trun_params(t, &p, dir, name);
	p.budget_usec = budget_usec;
	p.kill_grace_usec = grace_usec;
	capture_start(&cap);
	trun_run(t, &p);
	assert_true(set_end_wall_usec > 0);
	return capture_end(&cap);
}

/* The deadline moves in while a hook runs: SIGTERM a grace before the new
 * end, SIGKILL at it, both well inside the budget it started with. */
static void test_run_set_end_shortened(void **state)
{
	char *dir = tpath("set-end"), *mark = tpath("set-end.term"), *fifo, *body, *logged, *got;
	uint64_t term_wall;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, set_end_when_ready);
	/* It notes when SIGTERM came and goes on: only SIGKILL ends it. */
	body = xasprintf("trap 'date +%%s%%N > %s' TERM\necho ready > %s\n"
			 "while :; do sleep 1000 & wait $!; done", mark, fifo);
	write_hook(dir, "10-slow", body);
	free(body);

	logged = set_end_case(&t, dir, "10-slow", 50 * USEC_PER_SEC, 700 * USEC_PER_MSEC,
			      (int64_t)(3 * USEC_PER_SEC), false);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_true(t.res.timed_out);
	assert_int_equal(t.res.term_signal, SIGKILL);
	/* The budget it was given stays on record. */
	assert_int_equal(t.res.budget_usec, 50 * USEC_PER_SEC);
	/* SIGKILL at the new end, not before, and long before the old one. */
	assert_true(t.ended_mono_usec - t.ready_mono_usec >= 3 * USEC_PER_SEC);
	assert_true(t.ended_mono_usec - t.ready_mono_usec < 20 * USEC_PER_SEC);
	/* SIGTERM the grace (700 ms, less than a quarter of what the budget
	 * has become) before it. */
	got = read_text(mark);
	assert_non_null(got);
	got[strcspn(got, "\n")] = '\0';
	assert_int_equal(parse_uint64(got, 1, UINT64_MAX, &term_wall), 0);
	term_wall /= NSEC_PER_USEC;
	if (term_wall < set_end_wall_usec + 2290 * USEC_PER_MSEC || term_wall > set_end_wall_usec + 3 * USEC_PER_SEC)
		fail_msg("SIGTERM came %.3f s after the end moved, not 2.3 s",
			 (double)((int64_t)(term_wall - set_end_wall_usec)) / USEC_PER_SEC);
	free(got);
	assert_contains(logged, "hook '10-slow': the deadline moved, it must end within 3.0 s");
	assert_contains(logged, "hook '10-slow' killed by SIGKILL after ");
	assert_contains(logged, " (timed out)");
	assert_contains(logged, "hook '10-slow' still running 0.7 s after SIGTERM, sending SIGKILL");
	free(logged);
	trun_done(&t);
	free(fifo);
	free(mark);
	free(dir);
}

/* An end that has passed already: the hook is killed at once (SIGTERM,
 * SIGKILL right after), not a grace later. */
static void test_run_set_end_past(void **state)
{
	char *dir = tpath("set-end-past"), *fifo, *body, *logged;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, set_end_when_ready);
	body = xasprintf("trap '' TERM\necho ready > %s\nsleep 1000\nsleep 1000", fifo);
	write_hook(dir, "10-stubborn", body);
	free(body);

	logged = set_end_case(&t, dir, "10-stubborn", 50 * USEC_PER_SEC, 30 * USEC_PER_SEC,
			      -(int64_t)USEC_PER_SEC, false);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_true(t.res.timed_out);
	assert_int_equal(t.res.term_signal, SIGKILL);
	assert_true(t.ended_mono_usec - t.ready_mono_usec < 5 * USEC_PER_SEC);
	assert_contains(logged, "hook '10-stubborn': the deadline moved, it must end within 0.0 s");
	assert_contains(logged, "hook '10-stubborn' killed by SIGKILL after ");
	assert_contains(logged, " (timed out)");
	free(logged);
	trun_done(&t);
	free(fifo);
	free(dir);
}

/* An end later than the one in force changes nothing: the budget ends the
 * hook as it would have (SIGTERM a quarter of it before its end). */
static void test_run_set_end_later(void **state)
{
	char *dir = tpath("set-end-later"), *fifo, *body, *logged;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, set_end_when_ready);
	body = xasprintf("echo ready > %s\nexec sleep 1000", fifo);
	write_hook(dir, "10-hang", body);
	free(body);

	logged = set_end_case(&t, dir, "10-hang", 1200 * USEC_PER_MSEC, 30 * USEC_PER_SEC,
			      (int64_t)(60 * USEC_PER_SEC), false);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_int_equal(t.res.term_signal, SIGTERM);
	assert_true(t.res.duration_usec >= 900 * USEC_PER_MSEC);
	assert_true(t.res.duration_usec < 20 * USEC_PER_SEC);
	assert_null(strstr(logged, "the deadline moved"));
	free(logged);
	trun_done(&t);

	/* The same end as the budget's: no change either (nothing logged). */
	hook_run_set_end(NULL, 0);
	free(fifo);
	free(dir);
}

/* Shortened once, then asked for a later end: the earlier one holds. */
static void shorten_twice(struct trun *t)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC);

	set_end_wall_usec = now_usec(CLOCK_REALTIME);
	hook_run_set_end(t->run, now + 1500 * USEC_PER_MSEC);
	hook_run_set_end(t->run, now + 40 * USEC_PER_SEC);
	hook_run_set_end(t->run, USEC_INFINITY);
}

static void test_run_set_end_only_earlier(void **state)
{
	char *dir = tpath("set-end-twice"), *fifo, *body;
	struct hook_run_params p;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, shorten_twice);
	body = xasprintf("echo ready > %s\nexec sleep 1000", fifo);
	write_hook(dir, "10-hang", body);
	free(body);
	trun_params(&t, &p, dir, "10-hang");
	p.budget_usec = USEC_INFINITY;
	p.kill_grace_usec = 200 * USEC_PER_MSEC;
	trun_run(&t, &p);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_int_equal(t.res.term_signal, SIGTERM);
	assert_int_equal(t.res.budget_usec, USEC_INFINITY);
	/* SIGTERM at 1.3 s (the grace before 1.5 s), which ends it. */
	assert_true(t.ended_mono_usec - t.ready_mono_usec >= 1300 * USEC_PER_MSEC);
	assert_true(t.ended_mono_usec - t.ready_mono_usec < 20 * USEC_PER_SEC);
	trun_done(&t);
	free(fifo);
	free(dir);
}

/* A hook already on its way out (SIGTERM sent, a long grace to go): the
 * new end brings its SIGKILL forward. */
static void test_run_set_end_after_kill(void **state)
{
	char *dir = tpath("set-end-kill"), *fifo, *body, *logged;
	struct trun t;

	assert_int_equal(mkdir(dir, 0755), 0);
	trun_init(&t);
	fifo = trun_fifo(&t, dir, set_end_when_ready);
	body = xasprintf("trap '' TERM\necho ready > %s\nsleep 1000\nsleep 1000", fifo);
	write_hook(dir, "10-stubborn", body);
	free(body);

	logged = set_end_case(&t, dir, "10-stubborn", USEC_INFINITY, 30 * USEC_PER_SEC,
			      (int64_t)(300 * USEC_PER_MSEC), true);
	assert_int_equal(t.res.outcome, HOOK_TIMEOUT);
	assert_int_equal(t.res.term_signal, SIGKILL);
	assert_true(t.ended_mono_usec - t.ready_mono_usec >= 300 * USEC_PER_MSEC);
	assert_true(t.ended_mono_usec - t.ready_mono_usec < 10 * USEC_PER_SEC);
	assert_contains(logged, "hook '10-stubborn' killed by SIGKILL after ");
	assert_contains(logged, " (timed out)");
	assert_contains(logged, "hook '10-stubborn' still running 0.3 s after SIGTERM, sending SIGKILL");
	free(logged);
	trun_done(&t);
	free(fifo);
	free(dir);
}

/* ---- the chain: the engine's hook actions carried out ---- */

/* Appends ",name" (or "name" to an empty list). */
static void names_append(char *buf, size_t n, const char *name)
{
	size_t k = strlen(buf);

	(void)snprintf(buf + k, n - k, "%s%s", k ? "," : "", name);
}

struct tchain {
	sd_event *event;
	sd_event_source *timer;      /* engine_next_wake */
	struct engine engine;
	struct records records;
	struct chain chain;
	char *vm_name;
	int chain_done[_CHAIN_KIND_MAX];
	enum chain_kind wait_for;
	/* What the owner was told. */
	int started[_CHAIN_KIND_MAX], ended[_CHAIN_KIND_MAX];
	char ended_names[256];
	/* Moves the end of the first hook started to now (ENGINE_SHORTEN_HOOK
	 * as the engine would send it). */
	bool shorten_first;
};

static void tchain_drain(void *userdata)
{
	struct tchain *t = userdata;
	struct engine_action a;
	uint64_t wake;

	while (engine_next_action(&t->engine, &a)) {
		if (chain_carry_out(&t->chain, &a))
			continue;
		if (a.kind == ENGINE_CHAIN_DONE) {
			t->chain_done[a.chain]++;
			if (a.chain == t->wait_for)
				(void)sd_event_exit(t->event, 0);
		}
	}
	wake = engine_next_wake(&t->engine);
	if (wake != USEC_INFINITY) {
		assert_int_equal(sd_event_source_set_time(t->timer, wall_to_mono_usec(wake)), 0);
		assert_int_equal(sd_event_source_set_enabled(t->timer, SD_EVENT_ONESHOT), 0);
	}
}

static int tchain_on_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct tchain *t = userdata;

	engine_tick(&t->engine, now_usec(CLOCK_REALTIME));
	tchain_drain(t);
	return 0;
}

static void tchain_hook_started(void *userdata, const struct eviction *r, enum chain_kind c, size_t hook)
{
	struct tchain *t = userdata;
	size_t n = 0;
	struct hook_result *hooks = engine_chain((struct eviction *)r, c, &n);

	assert_true(hook < n);
	assert_int_equal(hooks[hook].outcome, HOOK_RUNNING);
	assert_non_null(t->chain.run);
	if (t->shorten_first && t->started[c] == 0) {
		struct engine_action a = { .kind = ENGINE_SHORTEN_HOOK, .end_wall_usec = now_usec(CLOCK_REALTIME) };

		(void)strscpy(a.id, sizeof(a.id), r->id);
		assert_true(chain_carry_out(&t->chain, &a));
	}
	t->started[c]++;
}

static void tchain_hook_ended(void *userdata, const struct eviction *r, enum chain_kind c,
			      const struct hook_result *res)
{
	struct tchain *t = userdata;

	t->ended[c]++;
	names_append(t->ended_names, sizeof(t->ended_names), res->name);
}

static void tchain_init(struct tchain *t, const char *hooks_dir, const char *lib_dir, const char *boot)
{
	struct engine_config cfg = {
		.margin_usec = 2 * USEC_PER_SEC,
		.events_mask = ~0u,
		.approve = false,
		.provider = PROVIDER_AZURE,
	};

	memset(t, 0, sizeof(*t));
	(void)strscpy(cfg.boot, sizeof(cfg.boot), boot);
	records_init(&t->records);
	assert_int_equal(sd_event_new(&t->event), 0);
	assert_int_equal(sd_event_add_time(t->event, &t->timer, CLOCK_MONOTONIC, USEC_INFINITY, 1,
					   tchain_on_timer, t), 0);
	t->vm_name = xstrdup("vm-7");
	engine_init(&t->engine, &cfg, &t->records);
	chain_init(&t->chain);
	t->chain.event = t->event;
	t->chain.engine = &t->engine;
	t->chain.records = &t->records;
	t->chain.hooks_dir = hooks_dir;
	t->chain.hooks_lib_dir = lib_dir;
	t->chain.vm_name = (const char *const *)&t->vm_name;
	t->chain.hook_started = tchain_hook_started;
	t->chain.hook_ended = tchain_hook_ended;
	t->chain.after_input = tchain_drain;
	t->chain.userdata = t;
}

/* Takes the engine's actions and runs the loop until chain c is done. */
static void tchain_run(struct tchain *t, enum chain_kind c)
{
	sd_event_source *limit = NULL;

	t->wait_for = c;
	tchain_drain(t);
	if (t->chain_done[c] > 0)
		return;
	assert_int_equal(sd_event_add_time_relative(t->event, &limit, CLOCK_MONOTONIC, TEST_RUN_LIMIT_USEC, 0,
						    on_limit, t->event), 0);
	assert_int_equal(sd_event_loop(t->event), 0);
	sd_event_source_disable_unref(limit);
	assert_int_equal(t->chain_done[c], 1);
	assert_null(t->chain.run);
	assert_true(no_children());
}

static void tchain_done(struct tchain *t)
{
	chain_done(&t->chain);
	engine_done(&t->engine);
	records_done(&t->records);
	sd_event_source_disable_unref(t->timer);
	sd_event_unref(t->event);
	free(t->vm_name);
	memset(t, 0, sizeof(*t));
}

/* A hook that keeps its environment and stdin in out/<name>.env and .in. */
static void write_probe(const char *dir, const char *out, const char *name)
{
	char *body = xasprintf("tr '\\0' '\\n' < /proc/$$/environ | grep '^SPOT_' > %1$s/%2$s.env\n"
			       "cat > %1$s/%2$s.in", out, name);

	write_hook(dir, name, body);
	free(body);
}

/* The value of SPOT_<key> in an env file written by a probe, NULL when it
 * is not there (caller frees). */
static char *env_value(const char *text, const char *key)
{
	char *needle = xasprintf("\nSPOT_%s=", key), *hit, *v = NULL;
	char *copy = xasprintf("\n%s", text);

	hit = strstr(copy, needle);
	if (hit) {
		hit += strlen(needle);
		v = xstrndup(hit, strcspn(hit, "\n"));
	}
	free(copy);
	free(needle);
	return v;
}

static void assert_env(const char *text, const char *key, const char *want)
{
	char *v = env_value(text, key);

	if (!want) {
		if (v)
			fail_msg("SPOT_%s is '%s', want it unset", key, v);
		return;
	}
	if (!v)
		fail_msg("SPOT_%s is not set, want '%s'", key, want);
	if (strcmp(v, want) != 0)
		fail_msg("SPOT_%s is '%s', want '%s'", key, v, want);
	free(v);
}

/* An eviction's chain through chain.c: the plan from the hook directories
 * (recover.d below them left out), each hook started with the eviction's
 * environment (SPOT_PHASE=evict) and its event on stdin, the owner told of
 * each start and end, the engine of each end. */
static void test_chain_evict(void **state)
{
	char *top = tpath("chain-evict"), *etc = tpath("chain-evict/etc"), *lib = tpath("chain-evict/lib");
	char *out = tpath("chain-evict/out"), *rec_etc = chain_recover_dir(etc), *p, *text;
	struct event_list list = { 0 };
	struct spot_event ev;
	struct eviction *r;
	struct tchain t;
	uint64_t now = now_usec(CLOCK_REALTIME);

	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(mkdir(lib, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	assert_int_equal(mkdir(rec_etc, 0755), 0);
	write_probe(etc, out, "10-etc");
	write_probe(lib, out, "20-lib");
	write_probe(rec_etc, out, "10-recover");

	event_init(&ev);
	(void)strscpy(ev.id, sizeof(ev.id), "EV-CHAIN-1");
	ev.type = EVENT_PREEMPT;
	ev.status = EVENT_SCHEDULED;
	ev.provider = PROVIDER_AZURE;
	ev.feed = FEED_AZURE_SCHEDULED;
	ev.needs_ack = true;
	(void)strscpy(ev.source, sizeof(ev.source), "Platform");
	ev.not_before_usec = (now / USEC_PER_SEC + 120) * USEC_PER_SEC;
	ev.duration_sec = -1;
	assert_int_equal(event_add_resource(&ev, "vm-7"), 0);
	list.events = &ev;
	list.n_events = 1;

	tchain_init(&t, etc, lib, "b1");
	engine_start(&t.engine, now);
	engine_round(&t.engine, &list, EVENT_FEEDS_ALL, t.vm_name, now);
	tchain_run(&t, CHAIN_EVICT);

	r = records_find(&t.records, "EV-CHAIN-1");
	assert_non_null(r);
	assert_int_equal(r->n_hooks, 2);
	assert_string_equal(r->hooks[0].name, "10-etc");
	assert_string_equal(r->hooks[1].name, "20-lib");
	assert_int_equal(r->hooks[0].outcome, HOOK_OK);
	assert_int_equal(r->hooks[1].outcome, HOOK_OK);
	assert_int_equal(r->n_recover_hooks, 0);
	assert_int_equal(t.started[CHAIN_EVICT], 2);
	assert_int_equal(t.ended[CHAIN_EVICT], 2);
	assert_int_equal(t.started[CHAIN_RECOVER], 0);
	assert_string_equal(t.ended_names, "10-etc,20-lib");
	/* recover.d is no hook of this chain, nor a file to warn about. */
	assert_int_equal(t.chain.plan.n_hooks, 2);
	assert_int_equal(t.chain.plan.n_skips, 0);
	p = xasprintf("%s/10-recover.env", out);
	assert_false(exists(p));
	free(p);

	for (int i = 0; i < 2; i++) {
		char *want = record_stdin(r), *got;

		p = xasprintf("%s/%s.env", out, i == 0 ? "10-etc" : "20-lib");
		text = read_text(p);
		assert_non_null(text);
		assert_env(text, "PHASE", "evict");
		assert_env(text, "RECOVER_REASON", NULL);
		assert_env(text, "DOWNTIME", NULL);
		assert_env(text, "EVENT_ID", "EV-CHAIN-1");
		assert_env(text, "EVENT_TYPE", "Preempt");
		assert_env(text, "VM_NAME", "vm-7");
		assert_env(text, "DRILL", "0");
		free(text);
		free(p);
		/* stdin: the event document as the record shows it. */
		p = xasprintf("%s/%s.in", out, i == 0 ? "10-etc" : "20-lib");
		got = read_text(p);
		assert_non_null(got);
		assert_string_equal(got, want);
		free(got);
		free(want);
		free(p);
	}
	event_done(&ev);
	tchain_done(&t);
	free(rec_etc);
	free(out);
	free(lib);
	free(etc);
	free(top);
}

/* The recover chain: the VM came back on a new boot, so the hooks of
 * recover.d below both hook directories run (merged by name, /etc's
 * winning), with SPOT_PHASE=recover, the reason and the downtime; the
 * eviction's own hooks do not run again. */
static void test_chain_recover(void **state)
{
	char *top = tpath("chain-recover"), *etc = tpath("chain-recover/etc"), *lib = tpath("chain-recover/lib");
	char *out = tpath("chain-recover/out"), *rec_etc = chain_recover_dir(etc), *rec_lib = chain_recover_dir(lib);
	uint64_t now = now_usec(CLOCK_REALTIME);
	struct eviction rec, *r;
	struct notice *n;
	struct tchain t;
	char *p, *text, *down;
	uint64_t downtime;

	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(mkdir(lib, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	assert_int_equal(mkdir(rec_etc, 0755), 0);
	assert_int_equal(mkdir(rec_lib, 0755), 0);
	write_probe(etc, out, "10-evict");
	write_probe(rec_etc, out, "10-rec-etc");
	write_probe(rec_etc, out, "30-both");
	write_probe(rec_lib, out, "20-rec-lib");
	write_hook(rec_lib, "30-both", "exit 9");   /* masked by /etc's */

	/* An eviction of the boot before, its hook run. */
	eviction_init(&rec);
	(void)strscpy(rec.id, sizeof(rec.id), "EV-RECOVER-1");
	rec.state = LC_DONE;
	rec.state_since_wall_usec = now - 50 * USEC_PER_SEC;
	rec.detected_wall_usec = now - 60 * USEC_PER_SEC;
	rec.deadline_wall_usec = now - 40 * USEC_PER_SEC;
	rec.chain_ended_wall_usec = now - 55 * USEC_PER_SEC;
	rec.last_alive_wall_usec = now - 42 * USEC_PER_SEC;
	(void)strscpy(rec.boot, sizeof(rec.boot), "b1");
	rec.notices = xcalloc(1, sizeof(*rec.notices));
	rec.n_notices = 1;
	n = &rec.notices[0];
	notice_init(n);
	(void)strscpy(n->ev.id, sizeof(n->ev.id), "EV-RECOVER-1");
	n->ev.type = EVENT_PREEMPT;
	n->ev.provider = PROVIDER_AZURE;
	n->ev.duration_sec = -1;
	n->ev.not_before_usec = now - 38 * USEC_PER_SEC;
	n->first_seen_wall_usec = rec.detected_wall_usec;
	rec.hooks = xcalloc(1, sizeof(*rec.hooks));
	rec.n_hooks = 1;
	p = xasprintf("%s/10-evict", etc);
	hook_result_init(&rec.hooks[0], "10-evict", p);
	free(p);
	rec.hooks[0].outcome = HOOK_OK;
	rec.hooks[0].exit_status = 0;
	rec.hooks[0].start_wall_usec = now - 59 * USEC_PER_SEC;
	rec.hooks[0].duration_usec = USEC_PER_SEC;

	tchain_init(&t, etc, lib, "b2");
	(void)records_add(&t.records, &rec);
	engine_start(&t.engine, now);
	tchain_run(&t, CHAIN_RECOVER);

	r = records_find(&t.records, "EV-RECOVER-1");
	assert_non_null(r);
	assert_int_equal(r->recover_reason, RECOVER_BOOT);
	assert_int_equal(r->n_recover_hooks, 3);
	assert_string_equal(r->recover_hooks[0].name, "10-rec-etc");
	assert_string_equal(r->recover_hooks[1].name, "20-rec-lib");
	assert_string_equal(r->recover_hooks[2].name, "30-both");
	p = xasprintf("%s/30-both", rec_etc);
	assert_string_equal(r->recover_hooks[2].path, p);
	free(p);
	for (size_t i = 0; i < 3; i++)
		assert_int_equal(r->recover_hooks[i].outcome, HOOK_OK);
	/* The eviction's own hook kept its outcome and did not run again. */
	assert_int_equal(r->n_hooks, 1);
	assert_int_equal(r->hooks[0].outcome, HOOK_OK);
	p = xasprintf("%s/10-evict.env", out);
	assert_false(exists(p));
	free(p);
	assert_int_equal(t.started[CHAIN_EVICT], 0);
	assert_int_equal(t.started[CHAIN_RECOVER], 3);
	assert_int_equal(t.ended[CHAIN_RECOVER], 3);
	assert_string_equal(t.ended_names, "10-rec-etc,20-rec-lib,30-both");
	/* The plans: recover.d's, the evict plan untouched. */
	assert_int_equal(t.chain.recover_plan.n_hooks, 3);
	assert_int_equal(t.chain.plan.n_hooks, 0);

	for (int i = 0; i < 3; i++) {
		static const char *const names[] = { "10-rec-etc", "20-rec-lib", "30-both" };

		p = xasprintf("%s/%s.env", out, names[i]);
		text = read_text(p);
		assert_non_null(text);
		assert_env(text, "PHASE", "recover");
		assert_env(text, "RECOVER_REASON", "boot");
		assert_env(text, "EVENT_ID", "EV-RECOVER-1");
		down = env_value(text, "DOWNTIME");
		assert_non_null(down);
		/* From the last sign of life, 42 s before the start. */
		assert_int_equal(parse_uint64(down, 0, UINT64_MAX, &downtime), 0);
		assert_true(downtime >= 42 && downtime <= 43);
		free(down);
		free(text);
		free(p);
	}
	tchain_done(&t);
	free(rec_lib);
	free(rec_etc);
	free(out);
	free(lib);
	free(etc);
	free(top);
}

/* recover.d below a directory; none below none. */
static void test_chain_recover_dir(void **state)
{
	char *d;

	assert_null(chain_recover_dir(NULL));
	assert_null(chain_recover_dir(""));
	assert_null(chain_recover_dir("none"));
	d = chain_recover_dir("/etc/spot-agent.d");
	assert_string_equal(d, "/etc/spot-agent.d/" CHAIN_RECOVER_DIR);
	assert_string_equal(CHAIN_RECOVER_DIR, "recover.d");
	free(d);
}

/* ENGINE_SHORTEN_HOOK: the running hook's end moves to the engine's wall
 * clock instant (here: now, so it is killed at once); the chain goes on
 * with the next hook. Without a running hook it is a no-op. */
static void test_chain_shorten(void **state)
{
	char *top = tpath("chain-shorten"), *etc = tpath("chain-shorten/etc"), *out = tpath("chain-shorten/out");
	struct engine_action a = { .kind = ENGINE_SHORTEN_HOOK, .end_wall_usec = 1 };
	struct event_list list = { 0 };
	uint64_t now = now_usec(CLOCK_REALTIME);
	struct spot_event ev;
	struct eviction *r;
	struct tchain t;

	assert_int_equal(mkdir(top, 0755), 0);
	assert_int_equal(mkdir(etc, 0755), 0);
	assert_int_equal(mkdir(out, 0755), 0);
	write_hook(etc, "10-hang", "exec sleep 1000");
	write_probe(etc, out, "20-next");

	event_init(&ev);
	(void)strscpy(ev.id, sizeof(ev.id), "EV-SHORT-1");
	ev.type = EVENT_PREEMPT;
	ev.provider = PROVIDER_AZURE;
	ev.duration_sec = -1;
	ev.not_before_usec = (now / USEC_PER_SEC + 300) * USEC_PER_SEC;
	assert_int_equal(event_add_resource(&ev, "vm-7"), 0);
	list.events = &ev;
	list.n_events = 1;

	tchain_init(&t, etc, NULL, "b1");
	assert_true(chain_carry_out(&t.chain, &a));   /* nothing runs: no-op */
	t.shorten_first = true;
	engine_start(&t.engine, now);
	engine_round(&t.engine, &list, EVENT_FEEDS_ALL, t.vm_name, now);
	tchain_run(&t, CHAIN_EVICT);
	r = records_find(&t.records, "EV-SHORT-1");
	assert_non_null(r);
	assert_int_equal(r->n_hooks, 2);
	assert_int_equal(r->hooks[0].outcome, HOOK_TIMEOUT);
	assert_true(r->hooks[0].timed_out);
	/* SIGTERM, SIGKILL right after it: whichever got there first. */
	assert_true(r->hooks[0].term_signal == SIGTERM || r->hooks[0].term_signal == SIGKILL);
	assert_true(r->hooks[0].duration_usec < 10 * USEC_PER_SEC);
	assert_int_equal(r->hooks[1].outcome, HOOK_OK);
	assert_string_equal(t.ended_names, "10-hang,20-next");
	event_done(&ev);
	tchain_done(&t);
	free(out);
	free(etc);
	free(top);
}

static int teardown_all(void **state)
{
	if (test_cgroup) {
		(void)hooks_tree_setup(test_tag(), NULL);
		hooks_tree_done();
		assert_null(hooks_tree_cgroup());
		assert_false(exists(test_cgroup));
		freep_str(&test_cgroup);
	}
	return teardown_tmp(state);
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome_strings),
		cmocka_unit_test(test_result_ring),
		cmocka_unit_test(test_env_new),
		cmocka_unit_test(test_scan_rules),
		cmocka_unit_test(test_scan_missing_and_bad),
		cmocka_unit_test(test_scan_recover_dir),
		cmocka_unit_test(test_scan_too_many),
		cmocka_unit_test(test_scan_skips_capped),
		cmocka_unit_test(test_scan_trust),
		cmocka_unit_test(test_scan_exec_formats),
		cmocka_unit_test(test_scan_refusals),
		cmocka_unit_test(test_env_interpreter),
		cmocka_unit_test(test_scan_huge_dir),
		cmocka_unit_test(test_run_exit_status),
		cmocka_unit_test(test_run_child_setup),
		cmocka_unit_test(test_run_hook_timeout_env),
		cmocka_unit_test(test_run_budget),
		cmocka_unit_test(test_run_budget_includes_grace),
		cmocka_unit_test(test_run_kill_term),
		cmocka_unit_test(test_run_kill_grace),
		cmocka_unit_test(test_run_set_end_shortened),
		cmocka_unit_test(test_run_set_end_past),
		cmocka_unit_test(test_run_set_end_later),
		cmocka_unit_test(test_run_set_end_only_earlier),
		cmocka_unit_test(test_run_set_end_after_kill),
		cmocka_unit_test(test_run_output),
		cmocka_unit_test(test_run_stderr),
		cmocka_unit_test(test_run_big_output),
		cmocka_unit_test(test_run_stdin),
		cmocka_unit_test(test_run_what_was_checked),
		cmocka_unit_test(test_run_exec_failure),
		cmocka_unit_test(test_run_leftovers_subreaper),
		cmocka_unit_test(test_run_leftovers_cgroup),
		cmocka_unit_test(test_run_free_running),
		cmocka_unit_test(test_run_free_in_ended),
		cmocka_unit_test(test_chain_recover_dir),
		cmocka_unit_test(test_chain_evict),
		cmocka_unit_test(test_chain_recover),
		cmocka_unit_test(test_chain_shorten),
		cmocka_unit_test(test_tree_setup_leftovers),
		cmocka_unit_test(test_tree_done_busy),
		cmocka_unit_test(test_run_fork_failure),
	};
	const struct CMUnitTest failfork_tests[] = {
		cmocka_unit_test(test_failfork_child),
	};
	const char *verbose = getenv("SPOT_TEST_VERBOSE");

	/* main() of the agent does the same; a hook that closes its stdin
	 * early must not kill us. */
	signal(SIGPIPE, SIG_IGN);
	log_setup(LOG_FORMAT_TEXT, verbose && verbose[0] ? LOG_DEBUG : LOG_WARNING);
	if (geteuid() != 0) {
		fprintf(stderr, "test-hooks: needs root (file ownership cases), skipping\n");
		return 77;
	}
	if (argc == 2 && strcmp(argv[1], "--failfork") == 0)
		return cmocka_run_group_tests_name("failfork", failfork_tests, setup_tmp, teardown_tmp);
	return cmocka_run_group_tests(tests, setup_tmp, teardown_all);
}
