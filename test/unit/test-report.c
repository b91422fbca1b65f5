/* test-report.c - a hook's report: every rule of the parser (keys, values,
 * repeats, lengths, NUL bytes, the size bound, comments and blank lines),
 * the sums over a chain, and the file's life: created empty and private,
 * read by name (a file renamed into place counts), refused when it is not
 * a regular file, removed once read. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hooks/report.h"
#include "util.h"

static int parse(const char *text, struct hook_report *r, char *why, size_t n)
{
	return hook_report_parse(text, strlen(text), r, why, n);
}

static void test_good(void **state)
{
	struct hook_report r;
	char why[HOOK_REPORT_WHY_MAX];

	assert_int_equal(parse("lost_work_seconds=42\ncheckpoint_bytes=1048576\njobs_requeued=3\nabandon=1\n",
			       &r, why, sizeof(why)), 0);
	assert_true(r.has_lost_work && r.lost_work_seconds == 42);
	assert_true(r.has_checkpoint_bytes && r.checkpoint_bytes == 1048576);
	assert_true(r.has_jobs_requeued && r.jobs_requeued == 3);
	assert_true(r.abandon);

	/* Empty, comments, blank lines, no final newline, zero and the top. */
	assert_int_equal(parse("", &r, why, sizeof(why)), 0);
	assert_false(r.has_lost_work || r.has_checkpoint_bytes || r.has_jobs_requeued || r.abandon);
	assert_int_equal(parse("# written by 10-checkpoint\n\nlost_work_seconds=0", &r, why, sizeof(why)), 0);
	assert_true(r.has_lost_work && r.lost_work_seconds == 0);
	assert_false(r.has_checkpoint_bytes);
	assert_int_equal(parse("jobs_requeued=9007199254740991\nabandon=0\n", &r, why, sizeof(why)), 0);
	assert_true(r.jobs_requeued == UINT64_C(9007199254740991));
	assert_false(r.abandon);
}

static void test_refused(void **state)
{
	static const struct {
		const char *text;
		const char *why;   /* a part of the reason */
	} cases[] = {
		{ "lost_work=5\n", "line 1: unknown key 'lost_work'" },
		{ "\nLOST_WORK_SECONDS=5\n", "line 2: unknown key" },
		{ "lost_work_seconds\n", "line 1: 'lost_work_seconds' is not key=value" },
		{ "lost_work_seconds=\n", "line 1: 'lost_work_seconds': '' is not a whole number" },
		{ "lost_work_seconds=-1\n", "'lost_work_seconds': '-1' is not a whole number" },
		{ "lost_work_seconds=+1\n", "'+1'" },
		{ "lost_work_seconds=1.5\n", "'1.5'" },
		{ "lost_work_seconds= 1\n", "' 1'" },
		{ "lost_work_seconds=1 \n", "'1 '" },
		{ "lost_work_seconds =1\n", "unknown key 'lost_work_seconds '" },
		{ "checkpoint_bytes=9007199254740992\n", "'checkpoint_bytes': '9007199254740992'" },
		{ "jobs_requeued=99999999999999999999999999\n", "'jobs_requeued'" },
		{ "jobs_requeued=0x10\n", "'0x10'" },
		{ "abandon=yes\n", "line 1: 'abandon': 'yes' is not 0 or 1" },
		{ "abandon=11\n", "'abandon': '11'" },
		{ "abandon=1\nabandon=1\n", "line 2: 'abandon' is given twice" },
		{ "lost_work_seconds=1\nlost_work_seconds=2\n", "line 2: 'lost_work_seconds' is given twice" },
		{ "lost_work_seconds=1\r\n", "'1?'" },
	};
	char why[HOOK_REPORT_WHY_MAX];

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct hook_report r = { .lost_work_seconds = 77 };

		why[0] = '\0';
		if (parse(cases[i].text, &r, why, sizeof(why)) != -EBADMSG)
			fail_msg("taken: %s", cases[i].text);
		if (!strstr(why, cases[i].why))
			fail_msg("'%s': reason '%s' lacks '%s'", cases[i].text, why, cases[i].why);
		assert_int_equal(r.lost_work_seconds, 77);   /* untouched */
	}
}

static void test_bounds(void **state)
{
	char text[HOOK_REPORT_FILE_MAX + 2], why[HOOK_REPORT_WHY_MAX], line[HOOK_REPORT_LINE_MAX + 8];
	struct hook_report r;

	/* A line of exactly the bound is fine (as a comment), one byte more is not. */
	memset(line, '#', HOOK_REPORT_LINE_MAX);
	line[HOOK_REPORT_LINE_MAX] = '\0';
	assert_int_equal(parse(line, &r, why, sizeof(why)), 0);
	(void)snprintf(text, sizeof(text), "abandon=1\n%s#\n", line);
	assert_int_equal(parse(text, &r, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "line 2: longer than 128 bytes"));

	/* The whole file: HOOK_REPORT_FILE_MAX bytes are fine, one more is not. */
	memset(text, '\n', sizeof(text));
	assert_int_equal(hook_report_parse(text, HOOK_REPORT_FILE_MAX, &r, why, sizeof(why)), 0);
	assert_int_equal(hook_report_parse(text, HOOK_REPORT_FILE_MAX + 1, &r, why, sizeof(why)), -EFBIG);
	assert_non_null(strstr(why, "larger than 4096 bytes"));

	/* A NUL byte. */
	assert_int_equal(hook_report_parse("abandon=1\n\0x\n", 13, &r, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "line 2: a NUL byte"));
}

static void test_sum(void **state)
{
	struct hook_report sum = { 0 };
	struct hook_report a = { .has_lost_work = true, .lost_work_seconds = 10, .has_jobs_requeued = true,
				 .jobs_requeued = 2 };
	struct hook_report b = { .has_lost_work = true, .lost_work_seconds = 5, .abandon = true };
	struct hook_report big = { .has_checkpoint_bytes = true, .checkpoint_bytes = UINT64_C(9007199254740991) };

	hook_report_add(&sum, &a);
	hook_report_add(&sum, &b);
	assert_true(sum.has_lost_work && sum.lost_work_seconds == 15);
	assert_true(sum.has_jobs_requeued && sum.jobs_requeued == 2);
	assert_false(sum.has_checkpoint_bytes);
	assert_true(sum.abandon);
	hook_report_add(&sum, &big);
	hook_report_add(&sum, &big);
	assert_true(sum.checkpoint_bytes == UINT64_C(9007199254740991));
}

static void write_file(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY | O_TRUNC | O_CREAT | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void test_file(void **state)
{
	char dir[] = "/tmp/test-report-XXXXXX", why[HOOK_REPORT_WHY_MAX], tmp[PATH_MAX];
	struct hook_report_file f;
	struct hook_report r;
	struct stat st;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(hook_report_file_create(&f, dir, "10-check point"), 0);
	assert_true(strstr(f.path, "/reports/10-check_point") != NULL);
	assert_int_equal(stat(f.path, &st), 0);
	assert_true(S_ISREG(st.st_mode) && (st.st_mode & 07777) == 0600 && st.st_size == 0);
	(void)snprintf(tmp, sizeof(tmp), "%s/reports", dir);
	assert_int_equal(stat(tmp, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0700);

	/* Nothing written: an empty report. */
	assert_int_equal(hook_report_file_read(&f, &r, why, sizeof(why)), 0);
	assert_false(r.has_lost_work);
	assert_int_equal(f.path[0], '\0');

	/* Written in place. */
	assert_int_equal(hook_report_file_create(&f, dir, "10-checkpoint"), 0);
	write_file(f.path, "lost_work_seconds=12\n");
	(void)snprintf(tmp, sizeof(tmp), "%s", f.path);
	assert_int_equal(hook_report_file_read(&f, &r, why, sizeof(why)), 0);
	assert_true(r.has_lost_work && r.lost_work_seconds == 12);
	assert_int_equal(access(tmp, F_OK), -1);   /* removed */

	/* Renamed into place. */
	assert_int_equal(hook_report_file_create(&f, dir, "10-checkpoint"), 0);
	(void)snprintf(tmp, sizeof(tmp), "%s/new", dir);
	write_file(tmp, "jobs_requeued=4\n");
	assert_int_equal(rename(tmp, f.path), 0);
	assert_int_equal(hook_report_file_read(&f, &r, why, sizeof(why)), 0);
	assert_true(r.has_jobs_requeued && r.jobs_requeued == 4);

	/* Refused: bad text, a symbolic link, a directory. */
	assert_int_equal(hook_report_file_create(&f, dir, "x"), 0);
	write_file(f.path, "abandon=maybe\n");
	assert_int_equal(hook_report_file_read(&f, &r, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "'abandon'"));
	assert_int_equal(hook_report_file_create(&f, dir, "x"), 0);
	assert_int_equal(unlink(f.path), 0);
	assert_int_equal(symlink("/etc/passwd", f.path), 0);
	assert_true(hook_report_file_read(&f, &r, why, sizeof(why)) < 0);
	assert_int_equal(hook_report_file_create(&f, dir, "x"), 0);   /* the link is replaced */
	assert_int_equal(lstat(f.path, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(unlink(f.path), 0);
	assert_int_equal(mkdir(f.path, 0700), 0);
	assert_true(hook_report_file_read(&f, &r, why, sizeof(why)) < 0);
	(void)snprintf(tmp, sizeof(tmp), "%s/reports/x", dir);
	assert_int_equal(rmdir(tmp), 0);

	/* A reports directory others may write is not used. */
	(void)snprintf(tmp, sizeof(tmp), "%s/reports", dir);
	assert_int_equal(chmod(tmp, 0777), 0);
	assert_int_equal(hook_report_file_create(&f, dir, "y"), -EPERM);
	assert_int_equal(f.path[0], '\0');
	assert_int_equal(rmdir(tmp), 0);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_sum),
		cmocka_unit_test(test_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
