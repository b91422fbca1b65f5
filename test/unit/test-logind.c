/* test-logind.c - the logind delay lock. The state machine is driven through
 * every sequence that matters (the lock taken, a shutdown with its budget,
 * release, cancel and re-take, Inhibit failing, no bus, the signal before the
 * lock's answer, double release, the bus lost), asserting each action. The
 * time-span parser and the configuration reader run on files in a temporary
 * root. Last, the sd-bus glue against a private dbus-daemon with a fake
 * login1 (skipped without dbus-daemon). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "logind/logind.h"
#include "util.h"

#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

/* ---- the state machine -------------------------------------------------- */

#define TAKE_MAX 8

struct taken {
	struct logind_action a[TAKE_MAX];
	size_t n;
};

static struct taken take(struct logind_sm *sm)
{
	struct taken t = { .n = 0 };

	while (t.n < TAKE_MAX && logind_sm_next_action(sm, &t.a[t.n]))
		t.n++;
	assert_false(logind_sm_next_action(sm, &(struct logind_action){ 0 }));
	return t;
}

/* The actions since the last call are exactly kinds[0..n). */
static struct taken expect(struct logind_sm *sm, size_t n, const enum logind_action_kind *kinds)
{
	struct taken t = take(sm);

	assert_int_equal(t.n, n);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(t.a[i].kind, kinds[i]);
	return t;
}

#define EXPECT(sm, ...)                                                              \
	expect((sm), sizeof((enum logind_action_kind[]){ __VA_ARGS__ }) /             \
			     sizeof(enum logind_action_kind),                          \
	       (enum logind_action_kind[]){ __VA_ARGS__ })
#define EXPECT_NONE(sm) expect((sm), 0, NULL)

/* Up, delay read (30 s), lock 7 held. */
static void held(struct logind_sm *sm)
{
	logind_sm_init(sm);
	logind_sm_bus_up(sm);
	EXPECT(sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_delay_max(sm, SEC(30));
	logind_sm_inhibit_answered(sm, 7);
	EXPECT_NONE(sm);
	assert_true(logind_sm_holding(sm));
}

static void test_lock_taken(void **state)
{
	struct logind_sm sm;

	logind_sm_init(&sm);
	EXPECT_NONE(&sm);
	assert_false(logind_sm_holding(&sm));
	assert_int_equal(logind_sm_delay_max_usec(&sm), 0);

	/* Nothing is asked before the bus is up and the signal watched. */
	logind_sm_bus_up(&sm);
	EXPECT(&sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	assert_false(logind_sm_holding(&sm));
	/* Up twice is still one request. */
	logind_sm_bus_up(&sm);
	EXPECT_NONE(&sm);

	logind_sm_delay_max(&sm, SEC(30));
	assert_int_equal(logind_sm_delay_max_usec(&sm), SEC(30));
	logind_sm_inhibit_answered(&sm, 7);
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
	assert_int_equal(sm.fd, 7);

	/* An answer nobody asked for is closed, the lock kept. */
	logind_sm_inhibit_answered(&sm, 11);
	struct taken t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 11);
	assert_true(logind_sm_holding(&sm));
	assert_int_equal(sm.fd, 7);

	/* A delay of 0 is known, and means no time. */
	logind_sm_delay_max(&sm, 0);
	assert_int_equal(logind_sm_delay_max_usec(&sm), 0);
	assert_true(sm.delay_known);
}

static void test_shutdown_and_release(void **state)
{
	struct logind_sm sm;
	struct taken t;

	held(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, SEC(30));
	/* The lock is held until the owner lets go. */
	assert_true(logind_sm_holding(&sm));
	/* logind repeating itself is one shutdown. */
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT_NONE(&sm);

	logind_sm_release(&sm);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 7);
	assert_false(logind_sm_holding(&sm));
	assert_int_equal(sm.fd, -1);

	/* Double release: nothing more to close. */
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);
	/* Nor is the lock taken again while the shutdown goes on. */
	logind_sm_delay_max(&sm, SEC(30));
	EXPECT_NONE(&sm);
	assert_false(logind_sm_holding(&sm));
}

static void test_budget_forms(void **state)
{
	struct logind_sm sm;
	struct taken t;

	/* The delay not known yet (its answer lost): logind's default. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	EXPECT(&sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_inhibit_answered(&sm, 5);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, LOGIND_DELAY_MAX_DEFAULT_USEC);

	/* "infinity" passes through. */
	held(&sm);
	logind_sm_delay_max(&sm, USEC_INFINITY);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_true(t.a[0].budget_usec == USEC_INFINITY);

	/* No lock held: logind does not wait, the budget is 0. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	logind_sm_inhibit_failed(&sm, "refused");
	(void)take(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, 0);
}

static void test_cancel_retakes(void **state)
{
	struct logind_sm sm;
	struct taken t;

	/* Released, then cancelled: taken again, the delay read again. */
	held(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	logind_sm_release(&sm);
	EXPECT(&sm, LOGIND_CLOSE_LOCK);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_inhibit_answered(&sm, 8);
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
	assert_int_equal(sm.fd, 8);
	/* The next shutdown is a new one, with its own budget and release. */
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, SEC(30));
	logind_sm_release(&sm);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 8);

	/* Cancelled before the owner released: the lock is still held. */
	held(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED);
	assert_true(logind_sm_holding(&sm));
	/* A release after the cancel is outside a shutdown: for good. */
	logind_sm_release(&sm);
	EXPECT(&sm, LOGIND_CLOSE_LOCK);

	/* A cancel whose start we never saw: no report, the lock kept. */
	held(&sm);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
}

static void test_inhibit_failing(void **state)
{
	struct logind_sm sm;
	struct taken t;

	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	EXPECT(&sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_inhibit_failed(&sm, "no logind on the system bus");
	t = EXPECT(&sm, LOGIND_UNAVAILABLE);
	assert_string_equal(t.a[0].why, "no logind on the system bus");
	assert_false(logind_sm_holding(&sm));
	/* A second failure answer is no news. */
	logind_sm_inhibit_failed(&sm, "again");
	EXPECT_NONE(&sm);

	/* A cancelled shutdown asks again; failing again is not told twice. */
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, 0);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_inhibit_failed(&sm, "refused");
	EXPECT_NONE(&sm);

	/* Once a lock was held, a new outage is told again. */
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_inhibit_answered(&sm, 9);
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
	logind_sm_bus_down(&sm, "the system bus connection was lost");
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK, LOGIND_UNAVAILABLE);
	assert_int_equal(t.a[0].fd, 9);
	assert_string_equal(t.a[1].why, "the system bus connection was lost");

	/* A long reason is cut, not overrun. */
	char why[LOGIND_WHY_MAX * 2];
	memset(why, 'x', sizeof(why) - 1);
	why[sizeof(why) - 1] = '\0';
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_inhibit_failed(&sm, why);
	t = EXPECT(&sm, LOGIND_UNAVAILABLE);
	assert_int_equal(strlen(t.a[0].why), LOGIND_WHY_MAX - 1);
}

static void test_no_bus(void **state)
{
	struct logind_sm sm;
	struct taken t;

	logind_sm_init(&sm);
	logind_sm_bus_down(&sm, "no system bus: No such file or directory");
	t = EXPECT(&sm, LOGIND_UNAVAILABLE);
	assert_string_equal(t.a[0].why, "no system bus: No such file or directory");
	/* Said once; nothing is ever asked for; release is harmless. */
	logind_sm_bus_down(&sm, "again");
	logind_sm_bus_up(&sm);
	EXPECT_NONE(&sm);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT_NONE(&sm);
	logind_sm_release(&sm);
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);
	assert_false(logind_sm_holding(&sm));
	assert_int_equal(logind_sm_delay_max_usec(&sm), 0);
}

static void test_signal_before_answer(void **state)
{
	struct logind_sm sm;
	struct taken t;

	/* The lock comes after the signal: kept (it is there if the shutdown is
	 * cancelled), closed on release. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	EXPECT(&sm, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, 0);
	logind_sm_inhibit_answered(&sm, 9);
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
	logind_sm_release(&sm);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 9);

	/* The owner released before the answer: it is closed as it comes. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);
	logind_sm_inhibit_answered(&sm, 9);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 9);
	assert_false(logind_sm_holding(&sm));
	/* And the cancel takes it again. */
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);

	/* logind refuses a delay lock during the shutdown: no report. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	logind_sm_inhibit_failed(&sm, "The operation inhibition has been requested for is already running");
	EXPECT_NONE(&sm);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED, LOGIND_READ_DELAY, LOGIND_TAKE_LOCK);
}

static void test_release_outside_shutdown(void **state)
{
	struct logind_sm sm;
	struct taken t;

	/* The agent stops: the lock goes for good. */
	held(&sm);
	logind_sm_release(&sm);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 7);
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	t = EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	assert_int_equal(t.a[0].budget_usec, 0);
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED);
	assert_false(logind_sm_holding(&sm));

	/* Stopping while the answer is on its way: closed as it comes, and a
	 * failure then is no news either. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);
	logind_sm_inhibit_answered(&sm, 4);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 4);
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_release(&sm);
	logind_sm_inhibit_failed(&sm, "late");
	EXPECT_NONE(&sm);
}

static void test_bus_lost(void **state)
{
	struct logind_sm sm;
	struct taken t;

	/* Outside a shutdown a lock nobody listens for only delays shutdowns. */
	held(&sm);
	logind_sm_bus_down(&sm, "lost");
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK, LOGIND_UNAVAILABLE);
	assert_int_equal(t.a[0].fd, 7);
	assert_false(logind_sm_holding(&sm));
	logind_sm_release(&sm);
	EXPECT_NONE(&sm);

	/* During a shutdown the bus stopping is expected: the lock stays for
	 * the owner to release. */
	held(&sm);
	logind_sm_prepare_for_shutdown(&sm, true);
	EXPECT(&sm, LOGIND_SHUTDOWN_STARTED);
	logind_sm_bus_down(&sm, "lost");
	EXPECT_NONE(&sm);
	assert_true(logind_sm_holding(&sm));
	logind_sm_release(&sm);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 7);
	/* Told of a cancel then, it cannot take the lock and says so. */
	logind_sm_prepare_for_shutdown(&sm, false);
	EXPECT(&sm, LOGIND_SHUTDOWN_CANCELLED, LOGIND_UNAVAILABLE);

	/* Lost with the answer on its way: the late lock is closed. */
	logind_sm_init(&sm);
	logind_sm_bus_up(&sm);
	(void)take(&sm);
	logind_sm_bus_down(&sm, "lost");
	EXPECT(&sm, LOGIND_UNAVAILABLE);
	logind_sm_inhibit_answered(&sm, 6);
	t = EXPECT(&sm, LOGIND_CLOSE_LOCK);
	assert_int_equal(t.a[0].fd, 6);
	assert_false(logind_sm_holding(&sm));
}

/* ---- time spans --------------------------------------------------------- */

static void test_parse_sec(void **state)
{
	static const struct {
		const char *s;
		uint64_t usec;
	} good[] = {
		{ "30", SEC(30) },
		{ "30s", SEC(30) },
		{ "2min", SEC(120) },
		{ "1min 30s", SEC(90) },
		{ "1min30s", SEC(90) },
		{ "1min 30", SEC(90) },
		{ "  45 sec ", SEC(45) },
		{ "5 s", SEC(5) },
		{ "0", 0 },
		{ "500ms", 500 * USEC_PER_MSEC },
		{ "1.5s", 1500 * USEC_PER_MSEC },
		{ ".5", 500 * USEC_PER_MSEC },
		{ "1.25min", SEC(75) },
		{ "1m", SEC(60) },
		{ "1M", SEC(2629800) },
		{ "1h", SEC(3600) },
		{ "1hr 1m 1s", SEC(3661) },
		{ "2 hours", SEC(7200) },
		{ "1d", SEC(86400) },
		{ "1w", SEC(604800) },
		{ "1y", SEC(31557600) },
		{ "10us", 10 },
		{ "3 seconds", SEC(3) },
		{ "1minute", SEC(60) },
		{ "infinity", USEC_INFINITY },
		{ " infinity ", USEC_INFINITY },
	};
	static const char *const bad[] = {
		"", "   ", "abc", "-5", "5x", "5mins", "1.s", ".", "s", "5 5x",
		"infinity s", "Infinity", "1 M s", "30s,", "+5",
	};
	char longs[300];
	uint64_t v;

	for (size_t i = 0; i < ELEMENTSOF(good); i++) {
		v = 1;
		if (logind_parse_sec(good[i].s, &v) != 0 || v != good[i].usec)
			fail_msg("'%s': got %llu", good[i].s, (unsigned long long)v);
	}
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		v = 12345;
		if (logind_parse_sec(bad[i], &v) != -EINVAL || v != 12345)
			fail_msg("'%s' was accepted", bad[i]);
	}
	assert_int_equal(logind_parse_sec("99999999999999999999", &v), -ERANGE);
	assert_int_equal(logind_parse_sec("18446744073710s", &v), -ERANGE);
	assert_int_equal(logind_parse_sec("600000y", &v), -ERANGE);
	assert_int_equal(logind_parse_sec("18446744073709551615us 1us", &v), -ERANGE);
	assert_int_equal(logind_parse_sec(NULL, &v), -EINVAL);
	/* Bounded: too long, or too many parts. */
	memset(longs, ' ', sizeof(longs) - 2);
	longs[sizeof(longs) - 2] = '1';
	longs[sizeof(longs) - 1] = '\0';
	assert_int_equal(logind_parse_sec(longs, &v), -EINVAL);
	assert_int_equal(logind_parse_sec("1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", &v), 0);
	assert_int_equal(v, SEC(32));
	assert_int_equal(logind_parse_sec("1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1", &v),
			 -EINVAL);
}

/* ---- the configuration reader ------------------------------------------- */

static char root[64];

static int make_root(void **state)
{
	(void)strscpy(root, sizeof(root), "/tmp/test-logind.XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int remove_root(void **state)
{
	char *cmd[] = { "rm", "-rf", root, NULL };
	pid_t pid = fork();
	int status;

	if (pid == 0) {
		execvp(cmd[0], cmd);
		_exit(127);
	}
	return pid > 0 && waitpid(pid, &status, 0) == pid && status == 0 ? 0 : -1;
}

/* mkdir -p of the directories of root/rel. */
static void make_parents(const char *rel)
{
	char path[PATH_MAX];

	assert_true((size_t)snprintf(path, sizeof(path), "%s%s", root, rel) < sizeof(path));
	for (char *p = path + strlen(root) + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		assert_true(mkdir(path, 0755) == 0 || errno == EEXIST);
		*p = '/';
	}
}

static void put(const char *rel, const char *text)
{
	char path[PATH_MAX];
	FILE *f;

	make_parents(rel);
	(void)snprintf(path, sizeof(path), "%s%s", root, rel);
	assert_non_null(f = fopen(path, "we"));
	assert_int_equal(fputs(text, f) >= 0, 1);
	assert_int_equal(fclose(f), 0);
}

static void link_to(const char *rel, const char *target)
{
	char path[PATH_MAX];

	make_parents(rel);
	(void)snprintf(path, sizeof(path), "%s%s", root, rel);
	(void)unlink(path);
	assert_int_equal(symlink(target, path), 0);
}

static void gone(const char *rel)
{
	char path[PATH_MAX];

	(void)snprintf(path, sizeof(path), "%s%s", root, rel);
	assert_int_equal(unlink(path), 0);
}

static void expect_delay(uint64_t usec, const char *source)
{
	char src[PATH_MAX];
	uint64_t v = 1;
	int r;

	r = logind_read_delay_max_at(root, &v, src, sizeof(src));
	if (r != 0)
		fail_msg("read: %s at '%s'", strerror(-r), src);
	if (v != usec)
		fail_msg("delay %llu, expected %llu (source '%s')", (unsigned long long)v,
			 (unsigned long long)usec, src);
	assert_string_equal(src, source);
}

#define ETC_MAIN "/etc/systemd/logind.conf"
#define ETC_D    "/etc/systemd/logind.conf.d/"
#define RUN_D    "/run/systemd/logind.conf.d/"
#define LOCAL_D  "/usr/local/lib/systemd/logind.conf.d/"
#define LIB_D    "/usr/lib/systemd/logind.conf.d/"

static void test_conf_main(void **state)
{
	/* Nothing at all: logind's default. */
	expect_delay(LOGIND_DELAY_MAX_DEFAULT_USEC, "");
	/* Debian's logind.conf: every key commented out. */
	put(ETC_MAIN, "[Login]\n#NAutoVTs=6\n#InhibitDelayMaxSec=5\n;InhibitDelayMaxSec=9\n");
	expect_delay(LOGIND_DELAY_MAX_DEFAULT_USEC, "");
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=30\n");
	expect_delay(SEC(30), ETC_MAIN);
	/* Spaces around '=' and the value, the last assignment wins, CRLF. */
	put(ETC_MAIN, "  [Login]  \r\n  InhibitDelayMaxSec = 1min 30s  \r\nInhibitDelayMaxSec=2min\r\n");
	expect_delay(SEC(120), ETC_MAIN);
	/* Other sections, keys outside a section, lines without '=', other
	 * spellings of the key: none of them count. */
	put(ETC_MAIN, "InhibitDelayMaxSec=1\n[Other]\nInhibitDelayMaxSec=2\n[login]\nInhibitDelayMaxSec=3\n"
		      "[Login]\ninhibitdelaymaxsec=4\nInhibitDelayMaxSec\nInhibitDelayMaxSecs=5\n");
	expect_delay(LOGIND_DELAY_MAX_DEFAULT_USEC, "");
	/* A value logind cannot parse is ignored: the earlier one holds. */
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=20\nInhibitDelayMaxSec=soon\nInhibitDelayMaxSec=\n");
	expect_delay(SEC(20), ETC_MAIN);
	/* Continuation lines are joined; a comment does not go on. */
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=1min \\\n 10s\n# note \\\nInhibitDelayMaxSec=1min \\\n20s");
	expect_delay(SEC(80), ETC_MAIN);
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=infinity\n");
	expect_delay(USEC_INFINITY, ETC_MAIN);
	/* A section after [Login] ends it. */
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=7\n[Sleep]\nInhibitDelayMaxSec=8\n");
	expect_delay(SEC(7), ETC_MAIN);

	/* The main file is the first of the search path that exists. */
	put("/usr/lib/systemd/logind.conf", "[Login]\nInhibitDelayMaxSec=9\n");
	expect_delay(SEC(7), ETC_MAIN);
	gone(ETC_MAIN);
	expect_delay(SEC(9), "/usr/lib/systemd/logind.conf");
	gone("/usr/lib/systemd/logind.conf");
}

static void test_conf_dropins(void **state)
{
	put(ETC_MAIN, "[Login]\nInhibitDelayMaxSec=60\n");
	/* Drop-ins override the main file. */
	put(LIB_D "unattended-upgrades-logind-maxdelay.conf", "[Login]\nInhibitDelayMaxSec=30\n");
	expect_delay(SEC(30), LIB_D "unattended-upgrades-logind-maxdelay.conf");
	/* By file name across directories: "zz-" sorts after it. */
	put(LIB_D "zz-spot-agent.conf", "[Login]\nInhibitDelayMaxSec=45\n");
	put(ETC_D "10-early.conf", "[Login]\nInhibitDelayMaxSec=1\n");
	put(RUN_D "50-middle.conf", "[Login]\nInhibitDelayMaxSec=2\n");
	expect_delay(SEC(45), LIB_D "zz-spot-agent.conf");
	/* An operator's later name still wins, wherever it lives. */
	put(LOCAL_D "zzz-local.conf", "[Login]\nInhibitDelayMaxSec=3min\n");
	expect_delay(SEC(180), LOCAL_D "zzz-local.conf");
	gone(LOCAL_D "zzz-local.conf");

	/* The same name: /etc over /run over /usr/local/lib over /usr/lib. */
	put(LOCAL_D "zz-spot-agent.conf", "[Login]\nInhibitDelayMaxSec=12\n");
	expect_delay(SEC(12), LOCAL_D "zz-spot-agent.conf");
	put(RUN_D "zz-spot-agent.conf", "[Login]\nInhibitDelayMaxSec=11\n");
	expect_delay(SEC(11), RUN_D "zz-spot-agent.conf");
	put(ETC_D "zz-spot-agent.conf", "[Login]\nInhibitDelayMaxSec=10\n");
	expect_delay(SEC(10), ETC_D "zz-spot-agent.conf");
	/* A replacement without the key: the others of that name are not
	 * read, so the value comes from the name before it. */
	put(ETC_D "zz-spot-agent.conf", "[Login]\n#InhibitDelayMaxSec=10\n");
	expect_delay(SEC(30), LIB_D "unattended-upgrades-logind-maxdelay.conf");
	/* Masked with /dev/null: the same. */
	link_to(ETC_D "zz-spot-agent.conf", "/dev/null");
	expect_delay(SEC(30), LIB_D "unattended-upgrades-logind-maxdelay.conf");
	gone(ETC_D "zz-spot-agent.conf");
	gone(RUN_D "zz-spot-agent.conf");
	gone(LOCAL_D "zz-spot-agent.conf");
	expect_delay(SEC(45), LIB_D "zz-spot-agent.conf");

	/* Not drop-ins: other suffixes, hidden files, directories, dangling
	 * links. */
	put(ETC_D "zzzz.conf.bak", "[Login]\nInhibitDelayMaxSec=1\n");
	put(ETC_D "zzzz.conf~", "[Login]\nInhibitDelayMaxSec=1\n");
	put(ETC_D ".zzzz.conf", "[Login]\nInhibitDelayMaxSec=1\n");
	put(ETC_D "README", "[Login]\nInhibitDelayMaxSec=1\n");
	put(ETC_D "zzzz-dir.conf/x", "");
	link_to(ETC_D "zzzz-dangling.conf", "/nonexistent/file.conf");
	put(ETC_D ".conf", "[Login]\nInhibitDelayMaxSec=1\n");
	expect_delay(SEC(45), LIB_D "zz-spot-agent.conf");
	/* A link to a regular file counts. */
	put("/opt/mine.conf", "[Login]\nInhibitDelayMaxSec=99\n");
	link_to(ETC_D "zzzz-link.conf", "../../../opt/mine.conf");
	expect_delay(SEC(99), ETC_D "zzzz-link.conf");
	gone(ETC_D "zzzz-link.conf");

	/* A drop-in with an unusable value leaves the earlier one. */
	put(ETC_D "zzzz-bad.conf", "[Login]\nInhibitDelayMaxSec=-1\n");
	expect_delay(SEC(45), LIB_D "zz-spot-agent.conf");
	gone(ETC_D "zzzz-bad.conf");
}

/* The file we ship beats unattended-upgrades' and sets 30 s. */
static void test_conf_shipped(void **state)
{
	char text[4096];
	size_t n;
	FILE *f;

	assert_non_null(f = fopen("packaging/systemd/logind.conf.d/zz-spot-agent.conf", "re"));
	n = fread(text, 1, sizeof(text) - 1, f);
	(void)fclose(f);
	text[n] = '\0';
	put(LIB_D "zz-spot-agent.conf", text);
	put(LIB_D "unattended-upgrades-logind-maxdelay.conf", "[Login]\nInhibitDelayMaxSec=30\n");
	put(LIB_D "50-vendor.conf", "[Login]\nInhibitDelayMaxSec=5\n");
	put(ETC_MAIN, "[Login]\n#InhibitDelayMaxSec=5\n");
	expect_delay(SEC(30), LIB_D "zz-spot-agent.conf");
}

static void test_conf_limits(void **state)
{
	char src[PATH_MAX], name[64];
	uint64_t v = 77;
	int r;

	put(RUN_D "0001.conf", "[Login]\nInhibitDelayMaxSec=3\n");
	expect_delay(SEC(3), RUN_D "0001.conf");

	/* A file over the cap. */
	{
		char path[PATH_MAX];
		int fd;

		make_parents(ETC_D "huge.conf");
		(void)snprintf(path, sizeof(path), "%s%s", root, ETC_D "huge.conf");
		assert_true((fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644)) >= 0);
		assert_int_equal(ftruncate(fd, LOGIND_CONF_FILE_MAX + 1), 0);
		(void)close(fd);
		r = logind_read_delay_max_at(root, &v, src, sizeof(src));
		assert_int_equal(r, -EFBIG);
		assert_string_equal(src, ETC_D "huge.conf");
		gone(ETC_D "huge.conf");
	}
	/* A FIFO does not hang the reader; it is no configuration. */
	{
		char path[PATH_MAX];

		make_parents(ETC_D "zzzz-fifo.conf");
		(void)snprintf(path, sizeof(path), "%s%s", root, ETC_D "zzzz-fifo.conf");
		assert_int_equal(mkfifo(path, 0644), 0);
		expect_delay(SEC(3), RUN_D "0001.conf");
		gone(ETC_D "zzzz-fifo.conf");
	}
	/* A NULL or small source buffer is fine. */
	assert_int_equal(logind_read_delay_max_at(root, &v, NULL, 0), 0);
	assert_int_equal(v, SEC(3));
	assert_int_equal(logind_read_delay_max_at(root, &v, src, 4), 0);
	assert_string_equal(src, "/ru");

	/* Too many drop-ins: an error naming the directory, nothing written. */
	for (int i = 2; i <= LOGIND_CONF_DROPINS_MAX + 1; i++) {
		(void)snprintf(name, sizeof(name), RUN_D "%04d.conf", i);
		put(name, "");
	}
	r = logind_read_delay_max_at(root, &v, src, sizeof(src));
	assert_int_equal(r, -E2BIG);
	assert_string_equal(src, "/run/systemd/logind.conf.d");
	assert_int_equal(v, SEC(3));
	/* At the cap exactly, all is well. */
	(void)snprintf(name, sizeof(name), RUN_D "%04d.conf", LOGIND_CONF_DROPINS_MAX + 1);
	gone(name);
	expect_delay(SEC(3), RUN_D "0001.conf");
}

/* ---- the glue, against a private bus ------------------------------------ */

struct fake_logind {
	sd_bus *bus;
	uint64_t delay_usec;
	unsigned inhibits;            /* Inhibit calls */
	char what[32], who[32], why[64], mode[16];
	int lock_rd[4];               /* read ends of the locks handed out */
};

struct owner {
	unsigned started, cancelled, unavailable;
	uint64_t budget_usec;
	char why[LOGIND_WHY_MAX];
	struct logind *l;
	bool release_on_start;
};

static int fake_inhibit(sd_bus_message *m, void *userdata, sd_bus_error *error)
{
	struct fake_logind *f = userdata;
	const char *what, *who, *why, *mode;
	int p[2], r;

	r = sd_bus_message_read(m, "ssss", &what, &who, &why, &mode);
	if (r < 0)
		return r;
	(void)strscpy(f->what, sizeof(f->what), what);
	(void)strscpy(f->who, sizeof(f->who), who);
	(void)strscpy(f->why, sizeof(f->why), why);
	(void)strscpy(f->mode, sizeof(f->mode), mode);
	if (f->inhibits >= ELEMENTSOF(f->lock_rd))
		return sd_bus_error_set(error, SD_BUS_ERROR_LIMITS_EXCEEDED, "too many");
	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	f->lock_rd[f->inhibits++] = p[0];
	r = sd_bus_reply_method_return(m, "h", p[1]);
	(void)close(p[1]);
	return r;
}

static const sd_bus_vtable fake_vtable[] = {
	SD_BUS_VTABLE_START(0),
	SD_BUS_METHOD("Inhibit", "ssss", "h", fake_inhibit, SD_BUS_VTABLE_UNPRIVILEGED),
	SD_BUS_PROPERTY("InhibitDelayMaxUSec", "t", NULL, offsetof(struct fake_logind, delay_usec),
			SD_BUS_VTABLE_PROPERTY_CONST),
	SD_BUS_SIGNAL("PrepareForShutdown", "b", 0),
	SD_BUS_VTABLE_END,
};

static void on_started(uint64_t budget_usec, void *userdata)
{
	struct owner *o = userdata;

	o->started++;
	o->budget_usec = budget_usec;
	if (o->release_on_start)
		logind_release(o->l);
}

static void on_cancelled(void *userdata)
{
	((struct owner *)userdata)->cancelled++;
}

static void on_unavailable(const char *why, void *userdata)
{
	struct owner *o = userdata;

	o->unavailable++;
	(void)strscpy(o->why, sizeof(o->why), why);
}

static const struct logind_ops owner_ops = {
	.shutdown_started = on_started,
	.shutdown_cancelled = on_cancelled,
	.unavailable = on_unavailable,
};

static pid_t daemon_pid;
static char bus_address[512];

/* A dbus-daemon of our own; its address in bus_address. */
static bool start_bus(void)
{
	int p[2];
	ssize_t n;

	if (access("/usr/bin/dbus-daemon", X_OK) != 0)
		return false;
	assert_int_equal(pipe2(p, O_CLOEXEC), 0);
	daemon_pid = fork();
	assert_true(daemon_pid >= 0);
	if (daemon_pid == 0) {
		char fdarg[32];
		int devnull = open("/dev/null", O_RDWR);

		/* It dies with the test, and holds none of its output open: a
		 * pipe reading the test's output must see its end. */
		(void)prctl(PR_SET_PDEATHSIG, SIGKILL);
		(void)snprintf(fdarg, sizeof(fdarg), "--print-address=%d", p[1]);
		(void)fcntl(p[1], F_SETFD, 0);
		if (devnull >= 0) {
			(void)dup2(devnull, 0);
			(void)dup2(devnull, 1);
			(void)dup2(devnull, 2);
		}
		execl("/usr/bin/dbus-daemon", "dbus-daemon", "--session", "--nofork", "--nopidfile",
		      fdarg, (char *)NULL);
		_exit(127);
	}
	(void)close(p[1]);
	n = read(p[0], bus_address, sizeof(bus_address) - 1);
	(void)close(p[0]);
	if (n <= 0)
		return false;
	bus_address[n] = '\0';
	bus_address[strcspn(bus_address, "\n")] = '\0';
	return true;
}

static void stop_bus(void)
{
	if (daemon_pid > 0) {
		(void)kill(daemon_pid, SIGTERM);
		(void)waitpid(daemon_pid, NULL, 0);
		daemon_pid = 0;
	}
}

/* Also when a test failed half-way. */
static int teardown_bus(void **state)
{
	stop_bus();
	return 0;
}

static void fake_start(sd_event *e, struct fake_logind *f, bool own_name)
{
	memset(f, 0, sizeof(*f));
	f->delay_usec = SEC(30);
	assert_int_equal(sd_bus_new(&f->bus), 0);
	assert_true(sd_bus_set_address(f->bus, bus_address) >= 0);
	assert_true(sd_bus_set_bus_client(f->bus, 1) >= 0);
	assert_true(sd_bus_start(f->bus) >= 0);
	assert_true(sd_bus_add_object_vtable(f->bus, NULL, "/org/freedesktop/login1",
					     "org.freedesktop.login1.Manager", fake_vtable, f) >= 0);
	if (own_name)
		assert_true(sd_bus_request_name(f->bus, "org.freedesktop.login1", 0) >= 0);
	assert_true(sd_bus_attach_event(f->bus, e, SD_EVENT_PRIORITY_NORMAL) >= 0);
}

static void fake_stop(struct fake_logind *f)
{
	for (unsigned i = 0; i < f->inhibits; i++)
		(void)close(f->lock_rd[i]);
	f->bus = sd_bus_flush_close_unref(f->bus);
}

static void fake_signal(struct fake_logind *f, bool active)
{
	assert_true(sd_bus_emit_signal(f->bus, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
				       "PrepareForShutdown", "b", (int)active) >= 0);
}

/* Whether every write end of lock i is closed. dbus-daemon closes its copy
 * just after passing it on, maybe after we got ours: so "closed" may wait a
 * little, "still open" is asked without waiting. */
static bool lock_closed_within(const struct fake_logind *f, unsigned i, int timeout_ms)
{
	struct pollfd p = { .fd = f->lock_rd[i], .events = POLLIN };

	return poll(&p, 1, timeout_ms) == 1 && (p.revents & (POLLHUP | POLLIN));
}
#define lock_closed(f, i) lock_closed_within((f), (i), 2000)
#define lock_open(f, i)   (!lock_closed_within((f), (i), 0))

/* Runs the loop until cond holds, for at most 5 s. */
#define RUN_UNTIL(e, cond)                                                         \
	do {                                                                       \
		uint64_t until_ = now_usec(CLOCK_MONOTONIC) + SEC(5);              \
		while (!(cond) && now_usec(CLOCK_MONOTONIC) < until_)              \
			assert_true(sd_event_run((e), 100 * USEC_PER_MSEC) >= 0);   \
		assert_true(cond);                                                 \
	} while (0)

static void test_glue(void **state)
{
	struct fake_logind f;
	struct owner o = { 0 };
	sd_event *e = NULL;
	struct logind *l = NULL;

	if (!start_bus())
		skip();
	assert_int_equal(setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address, 1), 0);
	assert_int_equal(sd_event_new(&e), 0);
	fake_start(e, &f, true);

	assert_int_equal(logind_new(e, &owner_ops, &o, &l), 0);
	o.l = l;
	/* Nothing happens inside logind_new. */
	assert_false(logind_holding(l));
	assert_int_equal(f.inhibits, 0);
	RUN_UNTIL(e, logind_holding(l));
	assert_int_equal(f.inhibits, 1);
	assert_string_equal(f.what, "shutdown");
	assert_string_equal(f.who, "spot-agent");
	assert_string_equal(f.why, "run eviction hooks");
	assert_string_equal(f.mode, "delay");
	assert_int_equal(logind_delay_max_usec(l), SEC(30));
	assert_true(lock_open(&f, 0));
	assert_int_equal(o.unavailable, 0);

	/* Shutdown: the owner hears of it with the budget; the lock holds until
	 * released, and the release frees it. */
	fake_signal(&f, true);
	RUN_UNTIL(e, o.started == 1);
	assert_int_equal(o.budget_usec, SEC(30));
	assert_true(logind_holding(l));
	assert_true(lock_open(&f, 0));
	logind_release(l);
	assert_false(logind_holding(l));
	assert_true(lock_closed(&f, 0));

	/* Cancelled: the lock is taken again, and its delay read again. */
	f.delay_usec = SEC(45);
	fake_signal(&f, false);
	RUN_UNTIL(e, o.cancelled == 1 && logind_holding(l));
	assert_int_equal(f.inhibits, 2);
	assert_int_equal(logind_delay_max_usec(l), SEC(45));

	/* Released from inside the owner's callback. */
	o.release_on_start = true;
	fake_signal(&f, true);
	RUN_UNTIL(e, o.started == 2);
	assert_int_equal(o.budget_usec, SEC(45));
	assert_false(logind_holding(l));
	assert_true(lock_closed(&f, 1));
	fake_signal(&f, false);
	RUN_UNTIL(e, o.cancelled == 2 && logind_holding(l));

	/* Freeing closes the lock. */
	logind_free(l);
	assert_true(lock_closed(&f, 2));
	assert_int_equal(o.unavailable, 0);

	fake_stop(&f);
	e = sd_event_unref(e);
	stop_bus();
}

static void test_glue_no_logind(void **state)
{
	struct fake_logind f;
	struct owner o = { 0 };
	sd_event *e = NULL;
	struct logind *l = NULL;

	if (!start_bus())
		skip();
	assert_int_equal(setenv("DBUS_SYSTEM_BUS_ADDRESS", bus_address, 1), 0);
	assert_int_equal(sd_event_new(&e), 0);
	/* A bus on which nobody owns org.freedesktop.login1. */
	fake_start(e, &f, false);
	assert_int_equal(logind_new(e, &owner_ops, &o, &l), 0);
	RUN_UNTIL(e, o.unavailable == 1);
	assert_non_null(strstr(o.why, "no logind"));
	assert_false(logind_holding(l));
	/* Without the property, the delay comes from the configuration. */
	assert_true(logind_delay_max_usec(l) > 0);
	/* The bus going away now is not told again. */
	stop_bus();
	for (int i = 0; i < 5; i++)
		(void)sd_event_run(e, 20 * USEC_PER_MSEC);
	assert_int_equal(o.unavailable, 1);
	logind_free(l);
	fake_stop(&f);
	e = sd_event_unref(e);
}

static void test_glue_no_bus(void **state)
{
	struct owner o = { 0 };
	sd_event *e = NULL;
	struct logind *l = NULL;

	assert_int_equal(setenv("DBUS_SYSTEM_BUS_ADDRESS", "unix:path=/nonexistent/spot-agent-test/bus", 1), 0);
	assert_int_equal(sd_event_new(&e), 0);
	assert_int_equal(logind_new(e, &owner_ops, &o, &l), 0);
	assert_int_equal(o.unavailable, 0);
	RUN_UNTIL(e, o.unavailable == 1);
	assert_non_null(strstr(o.why, "no system bus"));
	for (int i = 0; i < 3; i++)
		(void)sd_event_run(e, 10 * USEC_PER_MSEC);
	assert_int_equal(o.unavailable, 1);
	assert_false(logind_holding(l));
	logind_release(l);
	logind_free(l);
	logind_free(NULL);
	e = sd_event_unref(e);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lock_taken),
		cmocka_unit_test(test_shutdown_and_release),
		cmocka_unit_test(test_budget_forms),
		cmocka_unit_test(test_cancel_retakes),
		cmocka_unit_test(test_inhibit_failing),
		cmocka_unit_test(test_no_bus),
		cmocka_unit_test(test_signal_before_answer),
		cmocka_unit_test(test_release_outside_shutdown),
		cmocka_unit_test(test_bus_lost),
		cmocka_unit_test(test_parse_sec),
		cmocka_unit_test_setup_teardown(test_conf_main, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_conf_dropins, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_conf_shipped, make_root, remove_root),
		cmocka_unit_test_setup_teardown(test_conf_limits, make_root, remove_root),
		cmocka_unit_test_teardown(test_glue, teardown_bus),
		cmocka_unit_test_teardown(test_glue_no_logind, teardown_bus),
		cmocka_unit_test_teardown(test_glue_no_bus, teardown_bus),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
