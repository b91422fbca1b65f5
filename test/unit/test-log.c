/* test-log.c - the log back ends: RFC 3339 millisecond timestamps, the text
 * line (time, level, event and hook, one line per record), the JSON object,
 * the journal socket probe and the fallback to text when there is no
 * journal, and the plural helper. stderr is captured into a temporary file
 * around each record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "log.h"

#define TS_RE "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z"

static FILE *capture_file;
static int capture_saved = -1;

static void capture_begin(void)
{
	fflush(stderr);
	capture_file = tmpfile();
	assert_non_null(capture_file);
	capture_saved = dup(STDERR_FILENO);
	assert_true(capture_saved >= 0);
	assert_true(dup2(fileno(capture_file), STDERR_FILENO) >= 0);
}

/* Returns what was written to stderr; the caller frees it. */
static char *capture_end(void)
{
	char *s;
	long n;

	fflush(stderr);
	assert_true(dup2(capture_saved, STDERR_FILENO) >= 0);
	close(capture_saved);
	capture_saved = -1;
	assert_int_equal(fseek(capture_file, 0, SEEK_END), 0);
	n = ftell(capture_file);
	assert_true(n >= 0);
	rewind(capture_file);
	s = calloc(1, (size_t)n + 1);
	assert_non_null(s);
	assert_int_equal(fread(s, 1, (size_t)n, capture_file), (size_t)n);
	fclose(capture_file);
	capture_file = NULL;
	return s;
}

static void assert_matches(const char *s, const char *pattern)
{
	regex_t re;
	int r;

	assert_int_equal(regcomp(&re, pattern, REG_EXTENDED | REG_NOSUB), 0);
	r = regexec(&re, s, 0, NULL, 0);
	regfree(&re);
	if (r != 0)
		fprintf(stderr, "'%s' does not match /%s/\n", s, pattern);
	assert_int_equal(r, 0);
}

static size_t count_lines(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += *s == '\n';
	return n;
}

static void test_timestamp(void **state)
{
	char buf[LOG_TIMESTAMP_MAX];

	(void)state;
	assert_string_equal(log_format_timestamp(buf, sizeof(buf), 0), "1970-01-01T00:00:00.000Z");
	assert_string_equal(log_format_timestamp(buf, sizeof(buf), UINT64_C(1796126207123456)),
			    "2026-12-01T11:56:47.123Z");
	/* Cut, not rounded: .9999 s is still the same second. */
	assert_string_equal(log_format_timestamp(buf, sizeof(buf), UINT64_C(951868799999999)),
			    "2000-02-29T23:59:59.999Z");
	assert_string_equal(log_format_timestamp(buf, sizeof(buf), UINT64_C(1000)), "1970-01-01T00:00:00.001Z");
	assert_string_equal(log_format_timestamp(buf, sizeof(buf), UINT64_C(999)), "1970-01-01T00:00:00.000Z");
	/* 24 characters: a buffer one short gets "" rather than a cut time. */
	assert_string_equal(log_format_timestamp(buf, 25, 0), "1970-01-01T00:00:00.000Z");
	assert_string_equal(log_format_timestamp(buf, 24, 0), "");
	assert_string_equal(log_format_timestamp(buf, 10, 0), "");
}

static void test_plural(void **state)
{
	(void)state;
	assert_string_equal(plural(0, "hook", "hooks"), "hooks");
	assert_string_equal(plural(1, "hook", "hooks"), "hook");
	assert_string_equal(plural(2, "hook", "hooks"), "hooks");
	assert_string_equal(plural(UINT64_MAX, "process", "processes"), "processes");
}

static void test_text_lines(void **state)
{
	char *out, *second, *third;

	(void)state;
	log_setup(LOG_FORMAT_TEXT, LOG_INFO);
	assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);

	capture_begin();
	log_info("hello %d", 1);
	out = capture_end();
	assert_matches(out, "^" TS_RE " spot-agent: info: hello 1\n$");
	free(out);

	capture_begin();
	log_hook(LOG_WARNING, "ev-1", "10-hook", "two\nlines\rin one");
	log_event(LOG_NOTICE, "ev-2", "event only");
	assert_int_equal(log_errno(-ENOENT, "cannot open '%s'", "x"), -ENOENT);
	log_debug("not shown at info");
	out = capture_end();
	assert_int_equal(count_lines(out), 3);
	second = strchr(out, '\n') + 1;
	third = strchr(second, '\n') + 1;
	second[-1] = third[-1] = '\0';
	assert_matches(out, "^" TS_RE " spot-agent: warning: \\[ev-1 10-hook\\] two lines in one$");
	assert_matches(second, "^" TS_RE " spot-agent: notice: \\[ev-2\\] event only$");
	assert_matches(third, "^" TS_RE " spot-agent: error: cannot open 'x': No such file or directory\n$");
	free(out);
}

/* A message longer than a line holds is cut, and the line still ends. */
static void test_text_long_message(void **state)
{
	char *big = malloc(20000), *out;

	(void)state;
	memset(big, 'a', 19999);
	big[19999] = '\0';
	log_setup(LOG_FORMAT_TEXT, LOG_INFO);
	capture_begin();
	log_info("%s", big);
	out = capture_end();
	assert_int_equal(count_lines(out), 1);
	assert_true(out[strlen(out) - 1] == '\n');
	assert_true(strlen(out) > 4000 && strlen(out) < 20000);
	free(out);
	free(big);
}

static void test_json_lines(void **state)
{
	cJSON *o;
	char *out;

	(void)state;
	log_setup(LOG_FORMAT_JSON, LOG_DEBUG);
	assert_int_equal(log_get_format(), LOG_FORMAT_JSON);
	capture_begin();
	log_hook(LOG_WARNING, "ev-1", "10-hook", "two\nlines \"quoted\"");
	out = capture_end();
	assert_int_equal(count_lines(out), 1);
	o = cJSON_Parse(out);
	assert_non_null(o);
	assert_matches(cJSON_GetObjectItemCaseSensitive(o, "time")->valuestring, "^" TS_RE "$");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring, "warning");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "event_id")->valuestring, "ev-1");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "hook")->valuestring, "10-hook");
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "message")->valuestring, "two\nlines \"quoted\"");
	cJSON_Delete(o);
	free(out);

	capture_begin();
	log_debug("plain");
	out = capture_end();
	o = cJSON_Parse(out);
	assert_non_null(o);
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "event_id"));
	assert_null(cJSON_GetObjectItemCaseSensitive(o, "hook"));
	assert_string_equal(cJSON_GetObjectItemCaseSensitive(o, "level")->valuestring, "debug");
	cJSON_Delete(o);
	free(out);
}

static void test_journal_probe(void **state)
{
	char dir[] = "/tmp/test-log.XXXXXX", path[PATH_MAX], longpath[200];
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	(void)state;
	assert_non_null(mkdtemp(dir));
	(void)snprintf(path, sizeof(path), "%s/socket", dir);
	assert_int_equal(log_journal_probe(path), -ENOENT);

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	assert_true(fd >= 0);
	assert_true(strlen(path) < sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(log_journal_probe(path), 0);
	/* The file stays, nobody reads: what a stopped journald leaves. */
	close(fd);
	assert_int_equal(log_journal_probe(path), -ECONNREFUSED);
	assert_int_equal(unlink(path), 0);
	assert_int_equal(rmdir(dir), 0);

	memset(longpath, 'x', sizeof(longpath) - 1);
	longpath[0] = '/';
	longpath[sizeof(longpath) - 1] = '\0';
	assert_int_equal(log_journal_probe(longpath), -ENAMETOOLONG);
}

/* JOURNAL_STREAM counts only when it names stderr; the journal is used only
 * when its socket takes datagrams, else text after one warning. */
static void test_journal_choice_and_fallback(void **state)
{
	bool have_journal = log_journal_probe(LOG_JOURNAL_SOCKET) == 0;
	char stream[64], *out;
	struct stat st;

	(void)state;
	capture_begin();
	unsetenv("JOURNAL_STREAM");
	log_setup(LOG_FORMAT_AUTO, LOG_INFO);
	assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);
	/* Inherited from a parent whose stderr was the journal, not ours. */
	setenv("JOURNAL_STREAM", "1:2", 1);
	log_setup(LOG_FORMAT_AUTO, LOG_INFO);
	assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);
	setenv("JOURNAL_STREAM", "garbage", 1);
	log_setup(LOG_FORMAT_AUTO, LOG_INFO);
	assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);
	out = capture_end();
	assert_string_equal(out, "");
	free(out);

	capture_begin();
	assert_int_equal(fstat(STDERR_FILENO, &st), 0);
	(void)snprintf(stream, sizeof(stream), "%llu:%llu", (unsigned long long)st.st_dev,
		       (unsigned long long)st.st_ino);
	setenv("JOURNAL_STREAM", stream, 1);
	log_setup(LOG_FORMAT_AUTO, LOG_INFO);
	if (have_journal) {
		assert_int_equal(log_get_format(), LOG_FORMAT_JOURNAL);
		out = capture_end();
		assert_string_equal(out, "");
	} else {
		assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);
		/* Asked again (a reload): no second warning. */
		log_setup(LOG_FORMAT_JOURNAL, LOG_INFO);
		assert_int_equal(log_get_format(), LOG_FORMAT_TEXT);
		log_info("still here");
		out = capture_end();
		assert_int_equal(count_lines(out), 2);
		assert_matches(out, "^" TS_RE " spot-agent: warning: log: no journal at '" LOG_JOURNAL_SOCKET
			       "', logging text to stderr instead: [^\n]+\n" TS_RE " spot-agent: info: still here\n$");
	}
	free(out);
	unsetenv("JOURNAL_STREAM");
	log_setup(LOG_FORMAT_TEXT, LOG_INFO);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_timestamp),
		cmocka_unit_test(test_plural),
		cmocka_unit_test(test_text_lines),
		cmocka_unit_test(test_text_long_message),
		cmocka_unit_test(test_json_lines),
		cmocka_unit_test(test_journal_probe),
		cmocka_unit_test(test_journal_choice_and_fallback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
