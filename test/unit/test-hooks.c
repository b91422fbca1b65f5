/* test-hooks.c - the hook plan rules and the hook chain on a real sd-event
 * loop, with real scripts in a scratch directory. Waits are events (child
 * exit, fifo data, pidfd readiness) with generous upper bounds, never fixed
 * sleeps. Needs root for the ownership cases. */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <cmocka.h>

#include "event.h"
#include "hooks.h"
#include "log.h"
#include "util.h"

/* Upper bound for any one chain in these tests; reaching it is a failure. */
#define TEST_CHAIN_LIMIT_USEC (60 * USEC_PER_SEC)

static char tmpdir[64];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)remove(path);
	return 0;
}

static int setup_tmp(void **state)
{
	strscpy(tmpdir, sizeof(tmpdir), "/tmp/test-hooks-XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
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

static char *read_text(const char *path)
{
	char buf[65536];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t n = 0;

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t k = read(fd, buf + n, sizeof(buf) - 1 - n);

		assert_true(k >= 0);
		if (k == 0)
			break;
		n += (size_t)k;
		assert_true(n < sizeof(buf) - 1);
	}
	close(fd);
	buf[n] = '\0';
	return xstrdup(buf);
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
	env = hooks_env_new(&ev, "vm-7", UINT64_C(1474309785) * USEC_PER_SEC + 999999, true);
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
	env = hooks_env_new(&ev, NULL, 0, false);
	assert_string_equal(env[3], "SPOT_EVENT_ID=");
	assert_string_equal(env[4], "SPOT_EVENT_TYPE=Terminate");
	assert_string_equal(env[5], "SPOT_EVENT_STATUS=Started");
	assert_string_equal(env[7], "SPOT_NOT_BEFORE=");
	assert_string_equal(env[8], "SPOT_DEADLINE=");
	assert_string_equal(env[10], "SPOT_VM_NAME=");
	assert_string_equal(env[11], "SPOT_DRILL=0");
	strv_free(env);
	strv_free(NULL);
}

/* ---- the chain ---- */

struct run {
	sd_event *event;
	struct hooks_chain *chain;
	struct hook_result *results;
	size_t n;
	int started[32];
	size_t n_started;
	int finished[32];
	size_t n_finished;
	int chain_finished;
	int current_at_finish;
	/* behaviours */
	int stop_at_start;          /* index whose start stops the chain, or -1 */
	bool stop_mark;
	bool free_in_finished;
	bool exit_on_start;
};

static void on_started(struct hooks_chain *c, size_t index, void *userdata)
{
	struct run *t = userdata;

	assert_ptr_equal(c, t->chain);
	assert_int_equal(hooks_chain_current(c), (int)index);
	assert_int_equal(t->results[index].outcome, HOOK_RUNNING);
	assert_true(t->n_started < ELEMENTSOF(t->started));
	t->started[t->n_started++] = (int)index;
	if (t->stop_at_start == (int)index)
		hooks_chain_stop(c, t->stop_mark);
	if (t->exit_on_start)
		sd_event_exit(t->event, 0);
}

static void on_finished(struct hooks_chain *c, size_t index, void *userdata)
{
	struct run *t = userdata;

	assert_true(hook_outcome_is_final(t->results[index].outcome));
	assert_true(t->n_finished < ELEMENTSOF(t->finished));
	t->finished[t->n_finished++] = (int)index;
}

static void on_chain_finished(struct hooks_chain *c, void *userdata)
{
	struct run *t = userdata;

	t->chain_finished++;
	t->current_at_finish = hooks_chain_current(c);
	if (t->free_in_finished) {
		hooks_chain_free(c);
		t->chain = NULL;
	}
	sd_event_exit(t->event, 0);
}

static const struct hooks_chain_ops test_ops = {
	.hook_started = on_started,
	.hook_finished = on_finished,
	.chain_finished = on_chain_finished,
};

static int on_limit(sd_event_source *s, uint64_t usec, void *userdata)
{
	sd_event_exit(userdata, -ETIMEDOUT);
	return 0;
}

static void run_init(struct run *t, struct hook_result *results, size_t n)
{
	memset(t, 0, sizeof(*t));
	t->results = results;
	t->n = n;
	t->stop_at_start = -1;
	t->current_at_finish = -2;
	assert_int_equal(sd_event_new(&t->event), 0);
}

static void run_params(struct run *t, struct hooks_chain_params *p, char **env)
{
	memset(p, 0, sizeof(*p));
	p->event = t->event;
	p->results = t->results;
	p->n_results = t->n;
	p->event_id = "ev-1234";
	p->stdin_json = "{\"id\":\"ev-1234\"}";
	p->env = env;
	p->deadline_mono_usec = now_usec(CLOCK_MONOTONIC) + 50 * USEC_PER_SEC;
	p->hook_timeout_usec = 0;
	p->kill_grace_usec = 300 * USEC_PER_MSEC;
	p->ops = &test_ops;
	p->userdata = t;
}

/* Runs the loop until the chain finishes (or the test limit hits). */
static int run_loop(struct run *t)
{
	sd_event_source *limit = NULL;
	int r;

	assert_int_equal(sd_event_add_time_relative(t->event, &limit, CLOCK_MONOTONIC,
						    TEST_CHAIN_LIMIT_USEC, 0, on_limit, t->event), 0);
	r = sd_event_loop(t->event);
	sd_event_source_disable_unref(limit);
	return r;
}

static int run_chain(struct run *t, const struct hooks_chain_params *p)
{
	int r;

	assert_int_equal(hooks_chain_start(p, &t->chain), 0);
	/* Nothing happens before the loop runs. */
	assert_int_equal(t->n_started, 0);
	assert_int_equal(t->chain_finished, 0);
	r = run_loop(t);
	assert_int_equal(r, 0);
	assert_int_equal(t->chain_finished, 1);
	assert_int_equal(t->current_at_finish, -1);
	return r;
}

static void run_done(struct run *t)
{
	hooks_chain_free(t->chain);
	t->chain = NULL;
	for (size_t i = 0; i < t->n; i++)
		hook_result_done(&t->results[i]);
	sd_event_unref(t->event);
}

static void results_for(struct hook_result *res, size_t n, const char *dir, const char *const *names)
{
	for (size_t i = 0; i < n; i++) {
		char *p = xasprintf("%s/%s", dir, names[i]);

		hook_result_init(&res[i], names[i], p);
		free(p);
	}
}

static void test_chain_order_and_status(void **state)
{
	static const char *const names[] = { "10-a", "20-fail", "30-sig", "40-b" };
	char *dir = tpath("order"), *log = tpath("order.log"), *body;
	struct hook_result res[4];
	struct hooks_chain_params p;
	char **env = test_env();
	struct run t;
	char *got;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("echo 10-a >> %s", log);
	write_hook(dir, "10-a", body);
	free(body);
	body = xasprintf("echo 20-fail >> %s; exit 3", log);
	write_hook(dir, "20-fail", body);
	free(body);
	body = xasprintf("echo 30-sig >> %s; kill -USR1 $$", log);
	write_hook(dir, "30-sig", body);
	free(body);
	body = xasprintf("echo 40-b >> %s", log);
	write_hook(dir, "40-b", body);
	free(body);

	results_for(res, 4, dir, names);
	run_init(&t, res, 4);
	run_params(&t, &p, env);
	run_chain(&t, &p);

	got = read_text(log);
	assert_string_equal(got, "10-a\n20-fail\n30-sig\n40-b\n");
	free(got);

	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[0].exit_status, 0);
	assert_int_equal(res[1].outcome, HOOK_FAILED);
	assert_int_equal(res[1].exit_status, 3);
	assert_int_equal(res[2].outcome, HOOK_FAILED);
	assert_int_equal(res[2].exit_status, -1);
	assert_int_equal(res[2].term_signal, SIGUSR1);
	assert_int_equal(res[3].outcome, HOOK_OK);
	for (size_t i = 0; i < 4; i++) {
		assert_false(res[i].timed_out);
		assert_true(res[i].start_wall_usec > 0);
		assert_true(res[i].duration_usec > 0);
		assert_true(res[i].budget_usec > 40 * USEC_PER_SEC);
		assert_true(res[i].budget_usec <= 50 * USEC_PER_SEC);
		assert_int_equal(t.started[i], (int)i);
		assert_int_equal(t.finished[i], (int)i);
	}
	assert_true(res[0].start_wall_usec <= res[1].start_wall_usec);
	assert_int_equal(t.n_started, 4);
	assert_int_equal(t.n_finished, 4);

	run_done(&t);
	strv_free(env);
	free(dir);
	free(log);
}

/* Everything a hook's process sees: environment, stdin, cwd, fds, session,
 * signal state. */
static void test_chain_child_setup(void **state)
{
	static const char *const names[] = { "10-probe", "20-sigprobe" };
	char *dir = tpath("probe"), *body;
	struct hook_result res[2];
	struct hooks_chain_params p;
	char **env = test_env();
	char *got, *f, *expected, *q;
	unsigned long pid, pgrp, sid;
	sigset_t mask, old_mask;
	void (*old_usr2)(int);
	int leak_fd;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("tr '\\0' '\\n' < /proc/$$/environ > %1$s/env\n"
			 "cat > %1$s/stdin\n"
			 "readlink /proc/$$/cwd > %1$s/cwd\n"
			 "ls /proc/self/fd > %1$s/fds\n"
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

	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, env);
	p.hook_timeout_usec = 5 * USEC_PER_SEC + 900 * USEC_PER_MSEC;
	p.stdin_json = "{\"id\":\"ev-1234\",\"type\":\"Preempt\"}";
	run_chain(&t, &p);
	close(leak_fd);
	assert_int_equal(sigprocmask(SIG_SETMASK, &old_mask, NULL), 0);
	signal(SIGUSR2, old_usr2);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_int_equal(res[0].budget_usec, 5 * USEC_PER_SEC + 900 * USEC_PER_MSEC);

	f = xasprintf("%s/env", dir);
	got = read_text(f);
	free(f);
	expected = xstrdup("");
	for (size_t i = 0; i < ELEMENTSOF(expected_env); i++) {
		q = xasprintf("%s%s\n", expected, expected_env[i]);
		free(expected);
		expected = q;
	}
	q = xasprintf("%sSPOT_HOOK_TIMEOUT=5\n", expected);
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

	/* ls's own 0 1 2 and the directory it reads; nothing inherited. */
	f = xasprintf("%s/fds", dir);
	got = read_text(f);
	assert_string_equal(got, "0\n1\n2\n3\n");
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

	run_done(&t);
	strv_free(env);
	free(dir);
}

static void test_chain_hook_timeout_env(void **state)
{
	static const char *const names[] = { "10-t" };
	char *dir = tpath("tenv"), *body, *f, *got;
	struct hook_result res[1];
	struct hooks_chain_params p;
	char *env[] = { "PATH=/usr/bin:/bin", "SPOT_HOOK_TIMEOUT=999", NULL };
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("tr '\\0' '\\n' < /proc/$$/environ > %s/env", dir);
	write_hook(dir, "10-t", body);
	free(body);

	/* Less than a second left: still "1", never "0". */
	results_for(res, 1, dir, names);
	run_init(&t, res, 1);
	run_params(&t, &p, env);
	p.hook_timeout_usec = 900 * USEC_PER_MSEC;
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_OK);
	f = xasprintf("%s/env", dir);
	got = read_text(f);
	assert_string_equal(got, "PATH=/usr/bin:/bin\nSPOT_HOOK_TIMEOUT=1\n");
	free(got);
	free(f);
	run_done(&t);
	free(dir);
}

static void test_chain_exit77(void **state)
{
	static const char *const names[] = { "10-a", "20-stop", "30-b", "40-c" };
	char *dir = tpath("e77"), *log = tpath("e77.log"), *body, *got;
	struct hook_result res[4];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; i < 4; i++) {
		body = xasprintf("echo %s >> %s%s", names[i], log, i == 1 ? "; exit 77" : "");
		write_hook(dir, names[i], body);
		free(body);
	}
	results_for(res, 4, dir, names);
	run_init(&t, res, 4);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);

	got = read_text(log);
	assert_string_equal(got, "10-a\n20-stop\n");
	free(got);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_int_equal(res[1].exit_status, 77);
	for (size_t i = 2; i < 4; i++) {
		assert_int_equal(res[i].outcome, HOOK_SKIPPED);
		assert_string_equal(res[i].skip_reason, "exit 77");
		assert_int_equal(res[i].start_wall_usec, 0);
	}
	assert_int_equal(t.n_started, 2);
	assert_int_equal(t.n_finished, 4);
	for (size_t i = 0; i < 4; i++)
		assert_int_equal(t.finished[i], (int)i);
	run_done(&t);
	free(dir);
	free(log);
}

/* SIGTERM is enough for this one; its background child dies with it, and
 * the next hook still runs. */
static void test_chain_timeout_term(void **state)
{
	static const char *const names[] = { "10-hang", "20-next" };
	char *dir = tpath("hang"), *bg = tpath("hang.bg"), *mark = tpath("hang.next"), *body;
	struct hook_result res[2];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("sleep 1000 &\necho $! > %s\necho waiting\nsleep 1000", bg);
	write_hook(dir, "10-hang", body);
	free(body);
	body = xasprintf("touch %s", mark);
	write_hook(dir, "20-next", body);
	free(body);

	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	p.hook_timeout_usec = 1 * USEC_PER_SEC;
	run_chain(&t, &p);

	assert_int_equal(res[0].outcome, HOOK_TIMEOUT);
	assert_true(res[0].timed_out);
	assert_int_equal(res[0].term_signal, SIGTERM);
	assert_int_equal(res[0].exit_status, -1);
	assert_int_equal(res[0].budget_usec, 1 * USEC_PER_SEC);
	assert_true(res[0].duration_usec >= 1 * USEC_PER_SEC);
	assert_true(res[0].duration_usec < 20 * USEC_PER_SEC);
	assert_int_equal(res[0].n_output, 1);
	assert_true(process_ends(read_pid(bg)));
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_true(exists(mark));
	run_done(&t);
	free(dir);
	free(bg);
	free(mark);
}

/* This one ignores SIGTERM (and so do its children): SIGKILL after the
 * grace takes the whole group. */
static void test_chain_timeout_kill(void **state)
{
	static const char *const names[] = { "10-stubborn", "20-next" };
	char *dir = tpath("stubborn"), *bg = tpath("stubborn.bg"), *mark = tpath("stubborn.next");
	struct hook_result res[2];
	struct hooks_chain_params p;
	struct run t;
	char *body;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("trap '' TERM\nsleep 1000 &\necho $! > %s\nsleep 1000\nsleep 1000", bg);
	write_hook(dir, "10-stubborn", body);
	free(body);
	body = xasprintf("touch %s", mark);
	write_hook(dir, "20-next", body);
	free(body);

	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	p.hook_timeout_usec = 1 * USEC_PER_SEC;
	run_chain(&t, &p);

	assert_int_equal(res[0].outcome, HOOK_TIMEOUT);
	assert_true(res[0].timed_out);
	assert_int_equal(res[0].term_signal, SIGKILL);
	assert_true(res[0].duration_usec >= 1 * USEC_PER_SEC + 300 * USEC_PER_MSEC);
	assert_true(res[0].duration_usec < 20 * USEC_PER_SEC);
	assert_true(process_ends(read_pid(bg)));
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_true(exists(mark));
	run_done(&t);
	free(dir);
	free(bg);
	free(mark);
}

/* A hook that exits normally takes its background children with it, and
 * one holding the output pipe open does not keep the chain waiting. */
static void test_chain_leftover_children(void **state)
{
	static const char *const names[] = { "10-daemonish" };
	char *dir = tpath("left"), *bg = tpath("left.bg"), *body;
	struct hook_result res[1];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	body = xasprintf("sleep 1000 &\necho $! > %s\necho bye\nexit 0", bg);
	write_hook(dir, "10-daemonish", body);
	free(body);

	results_for(res, 1, dir, names);
	run_init(&t, res, 1);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_false(res[0].timed_out);
	assert_true(res[0].duration_usec < 20 * USEC_PER_SEC);
	assert_int_equal(res[0].n_output, 1);
	assert_string_equal(res[0].output[0], "bye");
	assert_true(process_ends(read_pid(bg)));
	run_done(&t);
	free(dir);
	free(bg);
}

static void test_chain_deadline_passed(void **state)
{
	static const char *const names[] = { "10-a", "20-b", "30-c" };
	char *dir = tpath("late"), *log = tpath("late.log"), *body;
	struct hook_result res[3];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; i < 3; i++) {
		body = xasprintf("echo %s >> %s", names[i], log);
		write_hook(dir, names[i], body);
		free(body);
	}
	results_for(res, 3, dir, names);
	run_init(&t, res, 3);
	run_params(&t, &p, NULL);
	p.deadline_mono_usec = now_usec(CLOCK_MONOTONIC) - 1;
	run_chain(&t, &p);
	assert_false(exists(log));
	assert_int_equal(t.n_started, 0);
	assert_int_equal(t.n_finished, 3);
	for (size_t i = 0; i < 3; i++) {
		assert_int_equal(res[i].outcome, HOOK_SKIPPED);
		assert_string_equal(res[i].skip_reason, "deadline");
		assert_int_equal(t.finished[i], (int)i);
	}
	run_done(&t);
	free(dir);
	free(log);
}

/* The deadline, not a hook timeout, cuts the first hook; the second is
 * then past the deadline and skipped. */
static void test_chain_deadline_during(void **state)
{
	static const char *const names[] = { "10-slow", "20-late" };
	char *dir = tpath("during"), *mark = tpath("during.mark"), *body;
	struct hook_result res[2];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-slow", "exec sleep 1000");
	body = xasprintf("touch %s", mark);
	write_hook(dir, "20-late", body);
	free(body);

	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	p.deadline_mono_usec = now_usec(CLOCK_MONOTONIC) + 1 * USEC_PER_SEC;
	p.hook_timeout_usec = 30 * USEC_PER_SEC;
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_TIMEOUT);
	assert_int_equal(res[0].term_signal, SIGTERM);
	assert_true(res[0].budget_usec <= 1 * USEC_PER_SEC);
	assert_int_equal(res[1].outcome, HOOK_SKIPPED);
	assert_string_equal(res[1].skip_reason, "deadline");
	assert_false(exists(mark));
	run_done(&t);
	free(dir);
	free(mark);
}

static void test_chain_output(void **state)
{
	static const char *const names[] = { "10-talk" };
	char *dir = tpath("talk");
	struct hook_result res[1];
	struct hooks_chain_params p;
	struct lines l;
	struct run t;
	char xs[HOOK_LINE_MAX + 1];

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-talk",
		   "i=1; while [ $i -le 15 ]; do echo \"line $i\"; i=$((i+1)); done\n"
		   "echo 'to stderr' >&2\n"
		   "printf 'crlf\\r\\n\\n\\n'\n"
		   "printf 'tab\\there\\033[31m\\n'\n"
		   "head -c 3000 /dev/zero | tr '\\0' x; echo\n"
		   "printf 'no newline at end'");
	results_for(res, 1, dir, names);
	run_init(&t, res, 1);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[0].output_bytes, 9 * 7 + 6 * 8 + 10 + 8 + 14 + 3001 + 17);

	lines_get(&res[0], &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_string_equal(l.v[0], "line 13");
	assert_string_equal(l.v[1], "line 14");
	assert_string_equal(l.v[2], "line 15");
	assert_string_equal(l.v[3], "to stderr");
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
	run_done(&t);
	free(dir);
}

static void test_chain_big_output(void **state)
{
	static const char *const names[] = { "10-flood", "20-flood-noline" };
	char *dir = tpath("flood");
	struct hook_result res[2];
	struct hooks_chain_params p;
	struct lines l;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-flood", "yes abcdefghij | head -c 2097152\necho\necho done");
	write_hook(dir, "20-flood-noline", "head -c 2097152 /dev/zero");
	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[0].output_bytes, 2097152 + 1 + 5);
	lines_get(&res[0], &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_string_equal(l.v[9], "done");
	assert_string_equal(l.v[8], "ab");  /* 2097152 = 190650 * 11 + 2 */
	assert_string_equal(l.v[7], "abcdefghij");
	lines_done(&l);
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_int_equal(res[1].output_bytes, 2097152);
	lines_get(&res[1], &l);
	assert_int_equal(l.n, HOOK_OUTPUT_LINES);
	assert_int_equal(strlen(l.v[9]), 2097152 % HOOK_LINE_MAX ? 2097152 % HOOK_LINE_MAX : HOOK_LINE_MAX);
	assert_int_equal(l.v[9][0], '?');
	lines_done(&l);
	run_done(&t);
	free(dir);
}

static void test_chain_stdin(void **state)
{
	static const char *const names[] = { "10-deaf", "20-count" };
	char *dir = tpath("stdin"), *count = tpath("stdin.count"), *body, *json, *got, *want;
	struct hook_result res[2];
	struct hooks_chain_params p;
	size_t n = 300 * 1024;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-deaf", "exit 0");
	body = xasprintf("wc -c > %s", count);
	write_hook(dir, "20-count", body);
	free(body);

	json = xmalloc(n + 1);
	memset(json, ' ', n);
	json[0] = '{';
	json[n - 1] = '}';
	json[n] = '\0';
	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	p.stdin_json = json;
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[1].outcome, HOOK_OK);
	got = read_text(count);
	want = xasprintf("%zu\n", n);
	assert_string_equal(got, want);
	free(got);
	free(want);
	free(json);
	run_done(&t);
	free(dir);
	free(count);
}

static void test_chain_exec_failure(void **state)
{
	static const char *const names[] = { "10-gone", "20-badinterp", "30-ok" };
	char *dir = tpath("execfail"), *p2;
	struct hook_result res[3];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	p2 = xasprintf("%s/20-badinterp", dir);
	write_mode(p2, "#!/nonexistent/interpreter\n", 0755);
	free(p2);
	write_hook(dir, "30-ok", "exit 0");
	results_for(res, 3, dir, names);
	run_init(&t, res, 3);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	assert_int_equal(res[0].outcome, HOOK_FAILED);
	assert_int_equal(res[0].exit_status, 127);
	assert_int_equal(res[1].outcome, HOOK_FAILED);
	assert_int_equal(res[1].exit_status, 127);
	assert_int_equal(res[1].n_output, 0);
	assert_int_equal(res[2].outcome, HOOK_OK);
	run_done(&t);
	free(dir);
}

static void test_chain_resume(void **state)
{
	static const char *const names[] = { "10-done", "20-todo", "30-skipped" };
	char *dir = tpath("resume"), *log = tpath("resume.log"), *body, *got;
	struct hook_result res[3];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; i < 3; i++) {
		body = xasprintf("echo %s >> %s", names[i], log);
		write_hook(dir, names[i], body);
		free(body);
	}
	results_for(res, 3, dir, names);
	res[0].outcome = HOOK_OK;
	res[0].exit_status = 0;
	res[2].outcome = HOOK_SKIPPED;
	strscpy(res[2].skip_reason, sizeof(res[2].skip_reason), "exit 77");
	run_init(&t, res, 3);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	got = read_text(log);
	assert_string_equal(got, "20-todo\n");
	free(got);
	assert_int_equal(t.n_started, 1);
	assert_int_equal(t.started[0], 1);
	assert_int_equal(t.n_finished, 1);
	assert_int_equal(res[0].outcome, HOOK_OK);
	assert_int_equal(res[1].outcome, HOOK_OK);
	assert_int_equal(res[2].outcome, HOOK_SKIPPED);
	run_done(&t);
	free(dir);
	free(log);
}

static void stop_case(bool mark, int stop_at)
{
	static const char *const names[] = { "10-a", "20-b", "30-c" };
	char *dir = tpath("stop-%d-%d", mark, stop_at), *log = tpath("stop-%d-%d.log", mark, stop_at);
	struct hook_result res[3];
	struct hooks_chain_params p;
	struct run t;
	char *body, *got;

	assert_int_equal(mkdir(dir, 0755), 0);
	for (size_t i = 0; i < 3; i++) {
		body = xasprintf("echo %s >> %s", names[i], log);
		write_hook(dir, names[i], body);
		free(body);
	}
	results_for(res, 3, dir, names);
	run_init(&t, res, 3);
	t.stop_at_start = stop_at;
	t.stop_mark = mark;
	run_params(&t, &p, NULL);
	assert_int_equal(hooks_chain_start(&p, &t.chain), 0);
	if (stop_at < 0)
		hooks_chain_stop(t.chain, mark);
	assert_int_equal(t.n_finished, 0);
	assert_int_equal(run_loop(&t), 0);
	assert_int_equal(t.chain_finished, 1);

	got = read_text(log);
	if (stop_at < 0) {
		assert_null(got);
		assert_int_equal(t.n_started, 0);
	} else {
		assert_string_equal(got, "10-a\n");
		assert_int_equal(res[0].outcome, HOOK_OK);
	}
	free(got);
	for (size_t i = stop_at < 0 ? 0 : 1; i < 3; i++) {
		assert_int_equal(res[i].outcome, mark ? HOOK_SKIPPED : HOOK_PENDING);
		assert_string_equal(res[i].skip_reason, mark ? "stopping" : "");
	}
	assert_int_equal(t.n_finished, mark ? 3 : (stop_at < 0 ? 0 : 1));

	/* A late stop is harmless. */
	hooks_chain_stop(t.chain, true);
	run_done(&t);
	free(dir);
	free(log);
}

static void test_chain_stop(void **state)
{
	stop_case(true, 0);
	stop_case(false, 0);
	stop_case(true, -1);
	stop_case(false, -1);
}

static int on_fifo(sd_event_source *s, int fd, uint32_t revents, void *userdata)
{
	sd_event_exit(sd_event_source_get_event(s), 0);
	return 0;
}

/* Freeing the chain while a hook runs kills its whole group. */
static void test_chain_free_running(void **state)
{
	static const char *const names[] = { "10-forever", "20-never" };
	char *dir = tpath("forever"), *fifo = tpath("forever.fifo"), *body;
	struct hook_result res[2];
	struct hooks_chain_params p;
	sd_event_source *src = NULL;
	char buf[32];
	uint64_t v;
	ssize_t k;
	struct run t;
	int fd;

	assert_int_equal(mkdir(dir, 0755), 0);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	/* O_RDWR: never sees a hangup, readable once the hook writes. */
	fd = open(fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC);
	assert_true(fd >= 0);
	body = xasprintf("sleep 1000 &\necho $! > %s\nsleep 1000", fifo);
	write_hook(dir, "10-forever", body);
	free(body);

	results_for(res, 2, dir, names);
	run_init(&t, res, 2);
	run_params(&t, &p, NULL);
	assert_int_equal(sd_event_add_io(t.event, &src, fd, EPOLLIN, on_fifo, NULL), 0);
	assert_int_equal(hooks_chain_start(&p, &t.chain), 0);
	assert_int_equal(run_loop(&t), 0);
	assert_int_equal(t.n_started, 1);
	assert_int_equal(hooks_chain_current(t.chain), 0);
	k = read(fd, buf, sizeof(buf) - 1);
	assert_true(k > 1);
	buf[k] = '\0';
	buf[strcspn(buf, "\n")] = '\0';
	assert_int_equal(parse_uint64(buf, 2, INT32_MAX, &v), 0);

	hooks_chain_free(t.chain);
	t.chain = NULL;
	assert_int_equal(res[0].outcome, HOOK_FAILED);
	assert_int_equal(res[0].term_signal, SIGKILL);
	assert_int_equal(res[1].outcome, HOOK_PENDING);
	assert_true(process_ends((pid_t)v));
	assert_int_equal(t.chain_finished, 0);
	sd_event_source_disable_unref(src);
	close(fd);
	run_done(&t);
	free(dir);
	free(fifo);
}

static void test_chain_free_in_finished(void **state)
{
	static const char *const names[] = { "10-a" };
	char *dir = tpath("selffree");
	struct hook_result res[1];
	struct hooks_chain_params p;
	struct run t;

	assert_int_equal(mkdir(dir, 0755), 0);
	write_hook(dir, "10-a", "echo hi");
	results_for(res, 1, dir, names);

	run_init(&t, res, 1);
	t.free_in_finished = true;
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	assert_null(t.chain);
	assert_int_equal(res[0].outcome, HOOK_OK);
	run_done(&t);

	/* And when nothing ran at all. */
	results_for(res, 1, dir, names);
	run_init(&t, res, 1);
	t.free_in_finished = true;
	run_params(&t, &p, NULL);
	p.deadline_mono_usec = 0;
	run_chain(&t, &p);
	assert_null(t.chain);
	assert_int_equal(res[0].outcome, HOOK_SKIPPED);
	run_done(&t);

	/* An empty chain finishes too. */
	run_init(&t, NULL, 0);
	run_params(&t, &p, NULL);
	run_chain(&t, &p);
	run_done(&t);
	free(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outcome_strings),
		cmocka_unit_test(test_result_ring),
		cmocka_unit_test(test_env_new),
		cmocka_unit_test(test_scan_rules),
		cmocka_unit_test(test_scan_missing_and_bad),
		cmocka_unit_test(test_scan_too_many),
		cmocka_unit_test(test_scan_skips_capped),
		cmocka_unit_test(test_chain_order_and_status),
		cmocka_unit_test(test_chain_child_setup),
		cmocka_unit_test(test_chain_hook_timeout_env),
		cmocka_unit_test(test_chain_exit77),
		cmocka_unit_test(test_chain_timeout_term),
		cmocka_unit_test(test_chain_timeout_kill),
		cmocka_unit_test(test_chain_leftover_children),
		cmocka_unit_test(test_chain_deadline_passed),
		cmocka_unit_test(test_chain_deadline_during),
		cmocka_unit_test(test_chain_output),
		cmocka_unit_test(test_chain_big_output),
		cmocka_unit_test(test_chain_stdin),
		cmocka_unit_test(test_chain_exec_failure),
		cmocka_unit_test(test_chain_resume),
		cmocka_unit_test(test_chain_stop),
		cmocka_unit_test(test_chain_free_running),
		cmocka_unit_test(test_chain_free_in_finished),
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
	return cmocka_run_group_tests(tests, setup_tmp, teardown_tmp);
}
