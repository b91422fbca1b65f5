/* test-state.c - the state file round trip (a seeded property test over
 * random records included), its crash safety, refusal of a file it did not
 * write and of a record that does not read back, the bounds on both sides,
 * the record cap and the /v1/status shape. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
#include <inttypes.h>
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "store/state.h"
#include "util.h"

#define DATA_DIR "test/data/state"
#define T0 UINT64_C(1795761030000000)   /* 2026-11-27T06:30:30Z */

/* ---- helpers ---- */

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

static char *make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/test-state.XXXXXX");

	assert_non_null(mkdtemp(dir));
	return dir;
}

static void remove_tmpdir(char *dir)
{
	/* The unwritable cases may have left modes that block removal. */
	(void)chmod(dir, 0700);
	assert_int_equal(nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(dir);
}

static char *path_join(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, n), 0);
	assert_int_equal(close(fd), 0);
}

static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = xmalloc((size_t)n + 1);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	if (ret_len)
		*ret_len = (size_t)n;
	return buf;
}

static void copy_file(const char *from, const char *to)
{
	size_t n;
	char *data = read_file(from, &n);

	write_file(to, data, n);
	free(data);
}

static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Names in dir except . and .., sorted into one "a,b,c" string. */
static char *list_dir(const char *dir)
{
	struct dirent **names;
	char *out = xstrdup("");
	int n = scandir(dir, &names, NULL, alphasort);

	assert_true(n >= 0);
	for (int i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 && strcmp(names[i]->d_name, "..") != 0) {
			char *next = xasprintf("%s%s%s", out, out[0] ? "," : "", names[i]->d_name);

			free(out);
			out = next;
		}
		free(names[i]);
	}
	free(names);
	return out;
}

static void make_event(struct spot_event *ev, const char *id)
{
	event_init(ev);
	assert_int_equal(strscpy(ev->id, sizeof(ev->id), id), 0);
	ev->type = EVENT_PREEMPT;
	ev->status = EVENT_SCHEDULED;
	ev->provider = PROVIDER_AZURE;
	strscpy(ev->source, sizeof(ev->source), "Platform");
	/* An hour ahead, in whole seconds (as the wire format has them), so
	 * the event can still be approved whatever the clock says. */
	ev->not_before_usec = (now_usec(CLOCK_REALTIME) / USEC_PER_SEC + 3600) * USEC_PER_SEC;
	ev->duration_sec = -1;
}

/* A record with no hooks; finished unless told otherwise. */
static void make_record(struct event_record *r, const char *id, bool finished)
{
	event_record_init(r);
	make_event(&r->ev, id);
	r->detected_wall_usec = T0;
	r->deadline_wall_usec = T0 + 28 * USEC_PER_SEC;
	r->chain_done = finished;
	r->approved = finished;
}

static void add_record(struct agent_state *s, const char *id, bool finished)
{
	struct event_record r;

	make_record(&r, id, finished);
	assert_non_null(state_add_record(s, &r));
}

static struct hook_result *add_hook(struct event_record *r, const char *name, enum hook_outcome o)
{
	struct hook_result *h;
	char *path = xasprintf("/etc/spot-agent.d/%s", name);

	r->hooks = xrealloc(r->hooks, (r->n_hooks + 1) * sizeof(*r->hooks));
	h = &r->hooks[r->n_hooks++];
	memset(h, 0, sizeof(*h));
	hook_result_init(h, name, path);
	free(path);
	h->outcome = o;
	h->budget_usec = 27 * USEC_PER_SEC;
	return h;
}

static void collect_line(const char *line, void *userdata)
{
	cJSON_AddItemToArray(userdata, cJSON_CreateString(line));
}

/* The held output lines as a JSON array, for easy comparison. */
static cJSON *lines_of(const struct hook_result *h)
{
	cJSON *a = cJSON_CreateArray();

	hook_result_foreach_line(h, collect_line, a);
	return a;
}

static const char *const special_lines[] = {
	"plain",
	"with \"double quotes\" and 'single'",
	"back\\slash and /slash",
	"embedded\nnewline and\r\ncarriage return",
	"tab\there",
	"utf-8: é ü ✓ 日本語 🚀",
	"control: \x01\x02\x1b[31mred\x1b[0m\x7f",
	"",
};

/* ---- round trip ---- */

static void test_roundtrip(void **unused)
{
	char *dir = make_tmpdir();
	struct agent_state s, t;
	struct event_record rec, *got;
	struct hook_result *h;
	char *moved = (char *)"unset";
	cJSON *want, *have;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B", false);
	strscpy(rec.ev.description, sizeof(rec.ev.description), "Quote \" newline \n tab \t é");
	rec.ev.resources = xcalloc(2, sizeof(*rec.ev.resources));
	rec.ev.n_resources = 2;
	strscpy(rec.ev.resources[0], EVENT_RESOURCE_MAX, "vm-spot-1");
	strscpy(rec.ev.resources[1], EVENT_RESOURCE_MAX, "vm-spot-2");
	rec.emergency = true;
	rec.approve_attempts = 3;
	rec.approved_wall_usec = 0;
	rec.no_approve = true;

	h = add_hook(&rec, "00-pending", HOOK_PENDING);

	h = add_hook(&rec, "10-ok", HOOK_OK);
	h->exit_status = 0;
	h->start_wall_usec = T0 + 1234567;
	h->duration_usec = 1234567;
	for (size_t i = 0; i < ELEMENTSOF(special_lines); i++)
		hook_result_add_line(h, special_lines[i]);
	h->output_bytes = 4242;

	h = add_hook(&rec, "20-failed", HOOK_FAILED);
	h->exit_status = 3;
	h->start_wall_usec = T0 + 3 * USEC_PER_SEC;
	h->duration_usec = 17;
	for (int i = 0; i < 25; i++) {          /* more than the ring holds */
		char line[32];

		snprintf(line, sizeof(line), "line %d", i);
		hook_result_add_line(h, line);
	}

	h = add_hook(&rec, "30-killed", HOOK_FAILED);
	h->exit_status = -1;
	h->term_signal = 9;
	h->start_wall_usec = T0 + 4 * USEC_PER_SEC;

	h = add_hook(&rec, "40-timeout", HOOK_TIMEOUT);
	h->exit_status = -1;
	h->term_signal = 15;
	h->timed_out = true;
	h->start_wall_usec = T0 + 5 * USEC_PER_SEC;
	h->duration_usec = 20 * USEC_PER_SEC + 1;
	hook_result_add_line(h, "still working...");

	h = add_hook(&rec, "50-running", HOOK_RUNNING);
	h->start_wall_usec = T0 + 26 * USEC_PER_SEC;
	hook_result_add_line(h, "half way");
	h->output_bytes = 9;

	h = add_hook(&rec, "60-skipped", HOOK_SKIPPED);
	strscpy(h->skip_reason, sizeof(h->skip_reason), "deadline");

	h = add_hook(&rec, "70-bad-utf8", HOOK_OK);
	h->exit_status = 0;
	hook_result_add_line(h, "ok \xff\xfe end \xc3");

	assert_non_null(state_add_record(&s, &rec));
	add_record(&s, "second-event", true);
	assert_int_equal(state_save(&s), 0);

	state_init(&t, dir);
	{
		struct state_load_report rep;

		assert_int_equal(state_load_report(&t, &rep), 0);
		if (rep.dropped)
			fail_msg("dropped: %s", rep.dropped_reason);
		moved = rep.moved;
		free(rep.kept);
	}
	assert_null(moved);
	assert_int_equal(t.n_records, 2);
	assert_string_equal(t.records[1].ev.id, "second-event");
	got = state_find(&t, "6b2f6e4a-1c2d-4e5f-8a9b-0c1d2e3f4a5b");
	assert_ptr_equal(got, &t.records[0]);
	assert_null(state_find(&t, "no-such-event"));

	/* The event itself. */
	want = event_to_json(&s.records[0].ev, 0, false);
	have = event_to_json(&got->ev, 0, false);
	assert_true(cJSON_Compare(want, have, true));
	cJSON_Delete(want);
	cJSON_Delete(have);
	assert_int_equal(got->detected_wall_usec, T0);
	assert_int_equal(got->deadline_wall_usec, T0 + 28 * USEC_PER_SEC);
	assert_true(got->emergency);
	assert_false(got->drill);
	assert_false(got->chain_done);
	assert_false(got->approved);
	assert_int_equal(got->approve_attempts, 3);
	assert_true(got->no_approve);
	assert_false(got->gone);
	assert_int_equal(got->n_hooks, s.records[0].n_hooks);

	for (size_t i = 0; i < got->n_hooks; i++) {
		const struct hook_result *a = &s.records[0].hooks[i], *b = &got->hooks[i];

		assert_string_equal(a->name, b->name);
		assert_string_equal(a->path, b->path);
		if (a->outcome == HOOK_RUNNING) {
			/* Interrupted by a crash: it runs again from scratch. */
			assert_int_equal(b->outcome, HOOK_PENDING);
			assert_int_equal(b->start_wall_usec, 0);
			assert_int_equal(b->n_output, 0);
			continue;
		}
		assert_int_equal(a->outcome, b->outcome);
		assert_int_equal(a->exit_status, b->exit_status);
		assert_int_equal(a->term_signal, b->term_signal);
		assert_int_equal(a->timed_out, b->timed_out);
		assert_int_equal(a->start_wall_usec, b->start_wall_usec);
		assert_int_equal(a->duration_usec, b->duration_usec);
		assert_int_equal(a->budget_usec, b->budget_usec);
		assert_int_equal(a->output_bytes, b->output_bytes);
		assert_string_equal(a->skip_reason, b->skip_reason);
		if (strcmp(a->name, "70-bad-utf8") == 0) {
			assert_int_equal(b->n_output, 1);
			have = lines_of(b);
			assert_string_equal(cJSON_GetArrayItem(have, 0)->valuestring,
					    "ok \xef\xbf\xbd\xef\xbf\xbd end \xef\xbf\xbd");
			cJSON_Delete(have);
			continue;
		}
		want = lines_of(a);
		have = lines_of(b);
		assert_true(cJSON_Compare(want, have, true));
		cJSON_Delete(want);
		cJSON_Delete(have);
	}
	/* The ring kept the last ten lines, oldest first. */
	have = lines_of(&got->hooks[2]);
	assert_int_equal(cJSON_GetArraySize(have), HOOK_OUTPUT_LINES);
	assert_string_equal(cJSON_GetArrayItem(have, 0)->valuestring, "line 15");
	assert_string_equal(cJSON_GetArrayItem(have, 9)->valuestring, "line 24");
	cJSON_Delete(have);
	/* Special characters survived byte for byte. */
	have = lines_of(&got->hooks[1]);
	assert_int_equal(cJSON_GetArraySize(have), ELEMENTSOF(special_lines));
	for (size_t i = 0; i < ELEMENTSOF(special_lines); i++)
		assert_string_equal(cJSON_GetArrayItem(have, (int)i)->valuestring, special_lines[i]);
	cJSON_Delete(have);

	/* Saving what was loaded gives the same file again. */
	{
		char *p = path_join(dir, STATE_FILE_NAME), *first, *second;

		first = read_file(p, NULL);
		assert_int_equal(state_save(&t), 0);
		state_done(&t);
		state_init(&t, dir);
		assert_int_equal(state_load(&t, NULL), 0);
		assert_int_equal(state_save(&t), 0);
		second = read_file(p, NULL);
		assert_non_null(strstr(first, "\"name\":\"50-running\""));
		assert_non_null(strstr(first, "\"result\":\"running\""));
		assert_null(strstr(second, "\"result\":\"running\""));
		free(first);
		free(second);
		free(p);
	}

	state_done(&t);
	state_done(&s);
	remove_tmpdir(dir);
}

/* ---- the file on disk ---- */

static void test_file_mode_and_no_temp(void **unused)
{
	char *top = make_tmpdir(), *dir = path_join(top, "state"), *p, *names;
	struct agent_state s;
	struct stat st;

	(void)unused;
	state_init(&s, dir);
	add_record(&s, "e1", true);
	/* The directory does not exist yet: save creates it, private. */
	assert_int_equal(state_save(&s), 0);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);

	p = path_join(dir, STATE_FILE_NAME);
	for (int i = 0; i < 5; i++) {
		add_record(&s, "again", true);
		assert_int_equal(state_save(&s), 0);
	}
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	/* No temp files left, only the spare the next save overwrites. */
	names = list_dir(dir);
	assert_string_equal(names, STATE_SPARE_NAME ",state.json");
	free(names);
	free(p);
	p = path_join(dir, STATE_SPARE_NAME);
	assert_int_equal(lstat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);

	free(p);
	state_done(&s);
	free(dir);
	remove_tmpdir(top);
}

static void test_stale_temp_file(void **unused)
{
	char *dir = make_tmpdir(), *tmp = path_join(dir, ".state.json.abc123"), *moved = NULL, *names;
	static const char half[] = "{\"version\":1,\"records\":[{\"event\":{\"id\":\"x";
	struct agent_state s;

	(void)unused;
	/* A crash between write and rename left only the temp file. */
	write_file(tmp, half, sizeof(half) - 1);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	assert_int_equal(s.n_records, 0);

	/* With a good state.json next to it, that one is loaded. */
	add_record(&s, "kept", true);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	assert_int_equal(s.n_records, 1);
	assert_string_equal(s.records[0].ev.id, "kept");

	/* The temp file of a crashed save is gone, the state file stays. */
	names = list_dir(dir);
	assert_string_equal(names, "state.json");
	free(names);

	state_done(&s);
	free(tmp);
	remove_tmpdir(dir);
}

static void test_missing_and_no_dir(void **unused)
{
	char *top = make_tmpdir(), *dir = path_join(top, "absent");
	struct agent_state s;
	char *moved = NULL;

	(void)unused;
	state_init(&s, dir);
	add_record(&s, "gone-on-load", true);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	assert_int_equal(s.n_records, 0);
	assert_false(file_exists(dir));   /* loading creates nothing */
	state_done(&s);

	/* No state directory (a drill): nothing is read or written. */
	state_init(&s, NULL);
	add_record(&s, "drill", true);
	assert_int_equal(state_save(&s), 0);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	state_done(&s);

	free(dir);
	remove_tmpdir(top);
}

/* Loads dir/state.json and expects it moved aside and an empty state. */
static void expect_moved_aside(const char *dir, const char *what)
{
	struct agent_state s;
	char *moved = NULL, *p = path_join(dir, STATE_FILE_NAME), *prefix;

	state_init(&s, dir);
	add_record(&s, "dropped-by-load", true);
	assert_int_equal(state_load(&s, &moved), 0);
	if (!moved)
		fail_msg("%s: not moved aside", what);
	assert_int_equal(s.n_records, 0);
	assert_null(state_current(&s));
	prefix = xasprintf("%s/state.json.corrupt-", dir);
	assert_true(strncmp(moved, prefix, strlen(prefix)) == 0);
	assert_true(file_exists(moved));
	assert_false(file_exists(p));

	/* The agent carries on: the next save works and loads back. */
	add_record(&s, "after", true);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	assert_int_equal(s.n_records, 1);

	state_done(&s);
	free(prefix);
	free(moved);
	free(p);
}

static void test_good_data_file(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *moved = NULL;
	struct agent_state s;
	struct event_record *r;

	(void)unused;
	/* The bad-* and drop-* files are this one with one thing changed. */
	copy_file(DATA_DIR "/good.json", p);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	assert_int_equal(s.n_records, 1);
	r = &s.records[0];
	assert_string_equal(r->ev.id, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
	assert_int_equal(r->detected_wall_usec, T0);
	assert_int_equal(r->deadline_wall_usec, T0 + 28 * USEC_PER_SEC);
	assert_int_equal(r->ev.not_before_usec, T0 + 30 * USEC_PER_SEC);
	/* Started now; the hook read it Scheduled. */
	assert_int_equal(r->ev.status, EVENT_STARTED);
	assert_true(r->seen.set);
	assert_int_equal(r->seen.status, EVENT_SCHEDULED);
	assert_int_equal(r->seen.deadline_wall_usec, T0 + 28 * USEC_PER_SEC);
	assert_int_equal(r->ev.duration_sec, -1);
	assert_string_equal(r->key, "");
	assert_true(r->approved);
	assert_int_equal(r->approved_wall_usec, T0 + 3 * USEC_PER_SEC);
	assert_int_equal(r->approve_attempts, 1);
	assert_false(r->no_approve);
	assert_int_equal(r->n_hooks, 1);
	assert_int_equal(r->hooks[0].outcome, HOOK_OK);
	assert_int_equal(r->hooks[0].exit_status, 0);
	assert_int_equal(r->hooks[0].term_signal, 0);
	assert_int_equal(r->hooks[0].duration_usec, 1234567);
	assert_int_equal(r->hooks[0].n_output, 2);
	assert_string_equal(r->hooks[0].skip_reason, "");
	assert_true(event_record_is_finished(r));
	state_done(&s);
	free(p);
	remove_tmpdir(dir);
}

static void test_corrupt_data_files(void **unused)
{
	glob_t g;
	int n = 0;

	(void)unused;
	assert_int_equal(glob(DATA_DIR "/bad-*.json", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME);

		copy_file(g.gl_pathv[i], p);
		expect_moved_aside(dir, g.gl_pathv[i]);
		n++;
		free(p);
		remove_tmpdir(dir);
	}
	globfree(&g);
	print_message("corrupt data files checked: %d\n", n);
	assert_true(n >= 15);
}

/* A file with one record that does not read back: that record is left out,
 * the other kept, the file as it was copied aside for a human. */
static void test_dropped_data_files(void **unused)
{
	glob_t g;
	int n = 0;

	(void)unused;
	assert_int_equal(glob(DATA_DIR "/drop-*.json", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *original, *copy;
		struct state_load_report rep;
		struct agent_state s;

		copy_file(g.gl_pathv[i], p);
		original = read_file(p, NULL);
		state_init(&s, dir);
		assert_int_equal(state_load_report(&s, &rep), 0);
		if (rep.error || rep.moved)
			fail_msg("%s: refused as a whole (%s)", g.gl_pathv[i], rep.reason);
		if (s.n_records != 1 || rep.dropped != 1)
			fail_msg("%s: %zu records kept, %u dropped", g.gl_pathv[i], s.n_records, rep.dropped);
		assert_string_equal(s.records[0].ev.id, "the-good-one");
		if (strncmp(rep.dropped_reason, "record 1 (", 10) != 0)
			fail_msg("%s: reason '%s'", g.gl_pathv[i], rep.dropped_reason);
		print_message("%s: %s\n", g.gl_pathv[i] + strlen(DATA_DIR) + 1, rep.dropped_reason);
		assert_non_null(rep.kept);
		copy = read_file(rep.kept, NULL);
		assert_string_equal(copy, original);
		free(rep.kept);
		/* The file itself stays until the next save replaces it. */
		assert_true(file_exists(p));
		assert_int_equal(state_save(&s), 0);
		state_done(&s);
		state_init(&s, dir);
		assert_int_equal(state_load_report(&s, &rep), 0);
		assert_int_equal(rep.dropped, 0);
		assert_null(rep.kept);
		assert_int_equal(s.n_records, 1);
		state_done(&s);
		free(copy);
		free(original);
		free(p);
		remove_tmpdir(dir);
		n++;
	}
	globfree(&g);
	print_message("data files with a bad record checked: %d\n", n);
	assert_true(n >= 15);
}

static void test_corrupt_special(void **unused)
{
	char *dir, *p;
	size_t n;

	(void)unused;
	/* 2 MiB: valid JSON padded with spaces, refused for its size alone. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	{
		static const char doc[] = "{\"version\":2,\"records\":[]}";
		char *big;

		n = 2 * 1024 * 1024;
		big = xmalloc(n);
		memset(big, ' ', n);
		memcpy(big, doc, sizeof(doc) - 1);
		write_file(p, big, n);
		free(big);
	}
	expect_moved_aside(dir, "2 MiB");
	free(p);
	remove_tmpdir(dir);

	/* Exactly at the limit it is read (and is valid). */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	{
		static const char doc[] = "{\"version\":2,\"records\":[]}";
		struct agent_state s;
		char *big, *moved = NULL;

		n = STATE_FILE_MAX;
		big = xmalloc(n);
		memset(big, '\n', n);
		memcpy(big, doc, sizeof(doc) - 1);
		write_file(p, big, n);
		free(big);
		state_init(&s, dir);
		assert_int_equal(state_load(&s, &moved), 0);
		assert_null(moved);
		assert_true(file_exists(p));
		state_done(&s);
	}
	free(p);
	remove_tmpdir(dir);

	/* A directory in its place. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(mkdir(p, 0700), 0);
	expect_moved_aside(dir, "directory");
	free(p);
	remove_tmpdir(dir);

	/* A FIFO in its place must not hang the load. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_moved_aside(dir, "fifo");
	free(p);
	remove_tmpdir(dir);
}

/* Writes doc to path. */
static void write_json(const char *path, const cJSON *doc)
{
	char *text = cJSON_PrintUnformatted(doc);

	assert_non_null(text);
	write_file(path, text, strlen(text));
	cJSON_free(text);
}

/* The object at level 0 (top), 1 (the record), 2 (its hook), 3 (its
 * approval) or 4 (its event) of doc. */
static cJSON *object_at(cJSON *doc, int level)
{
	cJSON *o = doc, *record = NULL;

	if (level >= 1)
		o = record = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "records"), 0);
	if (level == 2)
		o = cJSON_GetArrayItem(cJSON_GetObjectItem(record, "hooks"), 0);
	if (level == 3)
		o = cJSON_GetObjectItem(record, "approval");
	if (level == 4)
		o = cJSON_GetObjectItem(record, "event");
	assert_non_null(o);
	return o;
}

/* What loading dir did: 'r' the file was refused (and moved aside), 'd'
 * its one record was dropped, 'k' it was kept. */
static char load_outcome(const char *dir)
{
	struct state_load_report rep;
	struct agent_state s;
	char what = 'k';

	state_init(&s, dir);
	assert_int_equal(state_load_report(&s, &rep), 0);
	if (rep.moved) {
		what = 'r';
		assert_int_equal(s.n_records, 0);
		assert_int_equal(unlink(rep.moved), 0);
	} else if (rep.dropped > 0) {
		what = 'd';
		assert_int_equal(s.n_records, 0);
		assert_int_equal(rep.dropped, 1);
		assert_non_null(rep.kept);
		assert_int_equal(unlink(rep.kept), 0);
	} else {
		assert_int_equal(s.n_records, 1);
	}
	free(rep.moved);
	free(rep.kept);
	state_done(&s);
	return what;
}

/* Every field of the file, of a record, of a hook, of an approval and of
 * an event, given a value of the wrong type or left out, or an unknown
 * field added, makes the file refused (top level) or that record dropped. */
static void test_every_field_type(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *pristine;
	struct agent_state s;
	struct event_record rec;
	struct hook_result *h;
	int checked = 0;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "typed", true);
	h = add_hook(&rec, "10-a", HOOK_OK);
	hook_result_add_line(h, "out");
	h->exit_status = 0;
	h->start_wall_usec = T0;
	state_add_record(&s, &rec);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	pristine = read_file(p, NULL);

	/* The untouched document loads: the refusals below are real. */
	assert_int_equal(load_outcome(dir), 'k');

	for (int level = 0; level < 5; level++) {
		char want = level == 0 ? 'r' : 'd';
		cJSON *doc = cJSON_Parse(pristine);
		int nkeys = cJSON_GetArraySize(object_at(doc, level));

		cJSON_Delete(doc);
		for (int k = 0; k < nkeys; k++) {
			cJSON *obj, *orig, *wrong;
			char *key;

			doc = cJSON_Parse(pristine);
			obj = object_at(doc, level);
			orig = cJSON_GetArrayItem(obj, k);
			key = xstrdup(orig->string);
			/* No field takes an object but those that must be one. */
			wrong = cJSON_IsObject(orig) ? cJSON_CreateNumber(1) : cJSON_CreateObject();
			assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, wrong));
			write_json(p, doc);
			if (load_outcome(dir) != want)
				fail_msg("wrong type for '%s' (level %d) was accepted", key, level);

			cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
			write_json(p, doc);
			if (load_outcome(dir) != want)
				fail_msg("missing '%s' (level %d) was accepted", key, level);

			cJSON_Delete(doc);
			free(key);
			checked++;
		}
		/* Nothing but the known fields. */
		doc = cJSON_Parse(pristine);
		cJSON_AddNullToObject(object_at(doc, level), "unknown_field");
		write_json(p, doc);
		if (load_outcome(dir) != want)
			fail_msg("an unknown field (level %d) was accepted", level);
		cJSON_Delete(doc);
	}
	print_message("fields checked for type and presence: %d\n", checked);
	assert_int_equal(checked, 2 + 16 + 13 + 5 + 13);

	free(pristine);
	free(p);
	remove_tmpdir(dir);
}

static void test_unusable_dir(void **unused)
{
	char *top = make_tmpdir(), *file = path_join(top, "file"), *under = path_join(file, "state");
	struct agent_state s;
	char *moved = NULL;

	(void)unused;
	write_file(file, "x", 1);

	/* A directory below a regular file: ENOTDIR whatever our privileges. */
	state_init(&s, under);
	add_record(&s, "e", true);
	assert_int_equal(state_save(&s), -ENOTDIR);
	assert_int_equal(state_load(&s, &moved), -ENOTDIR);
	assert_null(moved);
	state_done(&s);

	/* The state directory is itself a regular file. */
	state_init(&s, file);
	add_record(&s, "e", true);
	assert_int_equal(state_save(&s), -ENOTDIR);
	assert_int_equal(state_load(&s, &moved), -ENOTDIR);
	state_done(&s);

	/* Nothing was left in the top directory but the file. */
	{
		char *names = list_dir(top);

		assert_string_equal(names, "file");
		free(names);
	}
	free(under);
	free(file);
	remove_tmpdir(top);
}

/* ---- records ---- */

static void test_running_loads_pending(void **unused)
{
	char *dir = make_tmpdir();
	struct agent_state s;
	struct event_record rec;
	struct hook_result *h;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "crashed", false);
	h = add_hook(&rec, "10-done", HOOK_OK);
	h->exit_status = 0;
	h = add_hook(&rec, "20-was-running", HOOK_RUNNING);
	h->start_wall_usec = T0 + USEC_PER_SEC;
	h->duration_usec = 5;
	hook_result_add_line(h, "partial");
	add_hook(&rec, "30-not-started", HOOK_PENDING);
	state_add_record(&s, &rec);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);

	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	assert_int_equal(s.n_records, 1);
	assert_int_equal(s.records[0].hooks[0].outcome, HOOK_OK);
	assert_int_equal(s.records[0].hooks[1].outcome, HOOK_PENDING);
	assert_false(hook_outcome_is_final(s.records[0].hooks[1].outcome));
	assert_string_equal(s.records[0].hooks[1].name, "20-was-running");
	assert_int_equal(s.records[0].hooks[1].start_wall_usec, 0);
	assert_int_equal(s.records[0].hooks[1].duration_usec, 0);
	assert_int_equal(s.records[0].hooks[1].n_output, 0);
	assert_int_equal(s.records[0].hooks[2].outcome, HOOK_PENDING);
	assert_ptr_equal(state_current(&s), &s.records[0]);
	state_done(&s);
	remove_tmpdir(dir);
}

static void test_record_cap(void **unused)
{
	struct agent_state s;
	char id[32];

	(void)unused;
	/* Finished records: the newest STATE_RECORDS_MAX stay. */
	state_init(&s, NULL);
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		add_record(&s, id, true);
	}
	assert_int_equal(s.n_records, STATE_RECORDS_MAX);
	snprintf(id, sizeof(id), "f%d", 40 - STATE_RECORDS_MAX);
	assert_string_equal(s.records[0].ev.id, id);
	assert_string_equal(s.records[STATE_RECORDS_MAX - 1].ev.id, "f39");
	state_done(&s);

	/* An unfinished record, and one awaiting approval, survive any number
	 * of newer finished ones. */
	state_init(&s, NULL);
	add_record(&s, "running", false);
	{
		struct event_record r;

		make_record(&r, "awaiting-approval", true);
		r.approved = false;
		assert_true(event_record_awaits_approval(&r));
		assert_false(event_record_is_finished(&r));
		state_add_record(&s, &r);
	}
	for (int i = 0; i < 40; i++) {
		snprintf(id, sizeof(id), "f%d", i);
		add_record(&s, id, true);
	}
	assert_int_equal(s.n_records, STATE_RECORDS_MAX);
	assert_string_equal(s.records[0].ev.id, "running");
	assert_string_equal(s.records[1].ev.id, "awaiting-approval");
	assert_string_equal(s.records[2].ev.id, "f26");
	assert_string_equal(s.records[STATE_RECORDS_MAX - 1].ev.id, "f39");
	/* The current record is the newest unfinished one. */
	assert_string_equal(state_current(&s)->ev.id, "awaiting-approval");
	state_done(&s);

	/* All unfinished: the cap gives way, nothing due is forgotten. */
	state_init(&s, NULL);
	for (int i = 0; i < STATE_RECORDS_MAX + 4; i++) {
		snprintf(id, sizeof(id), "u%d", i);
		add_record(&s, id, false);
	}
	assert_int_equal(s.n_records, STATE_RECORDS_MAX + 4);
	/* A finished record just added is never dropped at once: the caller
	 * holds the returned pointer. */
	{
		struct event_record r, *got;

		make_record(&r, "new-finished", true);
		got = state_add_record(&s, &r);
		assert_string_equal(got->ev.id, "new-finished");
		assert_ptr_equal(got, &s.records[s.n_records - 1]);
		assert_int_equal(r.n_hooks, 0);           /* *r was zeroed */
		assert_null(r.hooks);
	}
	state_done(&s);
}

static void test_approval_rules(void **unused)
{
	struct event_record r;

	(void)unused;
	make_record(&r, "a", true);
	r.approved = false;
	assert_true(event_record_awaits_approval(&r));
	r.no_approve = true;
	assert_false(event_record_awaits_approval(&r));
	assert_true(event_record_is_finished(&r));
	r.no_approve = false;
	r.drill = true;
	assert_false(event_record_awaits_approval(&r));
	r.drill = false;
	r.gone = true;
	assert_false(event_record_awaits_approval(&r));
	r.gone = false;
	r.ev.status = EVENT_STARTED;
	assert_false(event_record_awaits_approval(&r));
	r.ev.status = EVENT_SCHEDULED;
	r.ev.not_before_usec = now_usec(CLOCK_REALTIME) - USEC_PER_SEC;
	assert_false(event_record_awaits_approval(&r));
	r.ev.not_before_usec = 0;
	assert_true(event_record_awaits_approval(&r));
	r.ev.provider = PROVIDER_AWS;
	assert_false(event_record_awaits_approval(&r));
	assert_true(event_record_is_finished(&r));
	r.chain_done = false;
	assert_false(event_record_is_finished(&r));
	event_record_done(&r);
}

static void test_load_keeps_newest(void **unused)
{
	char *dir = make_tmpdir(), id[32];
	struct agent_state s;

	(void)unused;
	state_init(&s, dir);
	for (int i = 0; i < STATE_RECORDS_MAX + 5; i++) {
		snprintf(id, sizeof(id), "u%d", i);
		add_record(&s, id, false);
	}
	assert_int_equal(state_save(&s), 0);
	state_done(&s);

	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	assert_int_equal(s.n_records, STATE_RECORDS_MAX);
	assert_string_equal(s.records[0].ev.id, "u5");
	snprintf(id, sizeof(id), "u%d", STATE_RECORDS_MAX + 4);
	assert_string_equal(s.records[STATE_RECORDS_MAX - 1].ev.id, id);
	state_done(&s);
	remove_tmpdir(dir);
}

static void test_current(void **unused)
{
	struct agent_state s;

	(void)unused;
	state_init(&s, NULL);
	assert_null(state_current(&s));
	add_record(&s, "old-done", true);
	assert_string_equal(state_current(&s)->ev.id, "old-done");
	add_record(&s, "in-progress", false);
	add_record(&s, "newer-done", true);
	assert_string_equal(state_current(&s)->ev.id, "in-progress");
	state_find(&s, "IN-PROGRESS")->chain_done = true;
	state_find(&s, "in-progress")->approved = true;
	assert_string_equal(state_current(&s)->ev.id, "newer-done");
	state_done(&s);
}

/* ---- /v1/status ---- */

/* o holds exactly these keys, in this order. */
static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
	const cJSON *item;
	size_t i = 0;

	assert_true(cJSON_IsObject(o));
	cJSON_ArrayForEach(item, o) {
		if (i >= n)
			fail_msg("extra key '%s'", item->string);
		if (strcmp(item->string, keys[i]) != 0)
			fail_msg("key %zu is '%s', want '%s'", i, item->string, keys[i]);
		i++;
	}
	if (i != n)
		fail_msg("missing key '%s'", keys[i]);
}

/* The member k of o as JSON text: digits, null, "text". */
static void assert_member(const cJSON *o, const char *k, const char *want)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
	char *got;

	if (!v)
		fail_msg("no member '%s'", k);
	got = cJSON_PrintUnformatted(v);
	if (strcmp(got, want) != 0)
		fail_msg("'%s' is %s, want %s", k, got, want);
	cJSON_free(got);
}

static const char *const top_keys[] = {
	"version", "provider", "vm_name", "uptime_s", "state", "rebalance_recommended", "poll",
	"event", "event_status", "not_before", "not_before_usec", "deadline", "deadline_usec",
	"emergency", "detected", "detected_usec", "key", "gone", "gone_at", "gone_at_usec",
	"chain_done", "hooks", "approval", "history",
};
static const char *const poll_keys[] = {
	"ok", "failed", "consecutive_failures", "last_success", "last_success_usec",
	"last_latency_usec", "incarnation", "last_error",
};
static const char *const event_keys[] = {
	"id", "type", "status", "source", "not_before", "not_before_usec", "resources",
	"description", "duration_s", "provider", "deadline", "deadline_usec", "drill",
};
static const char *const status_hook_keys[] = {
	"name", "path", "result", "exit_status", "signal", "timed_out", "started", "started_usec",
	"duration_usec", "budget_usec", "skip_reason", "output", "output_bytes", "error",
};
static const char *const approval_keys[] = {
	"wanted", "approved", "approved_at", "approved_at_usec", "attempts",
};
static const char *const summary_keys[] = {
	"id", "type", "event_status", "detected", "detected_usec", "deadline", "deadline_usec",
	"chain_done", "approved", "hooks_ok", "hooks_failed", "hooks_timeout", "hooks_skipped",
};

static void test_to_json(void **unused)
{
	struct agent_state s;
	struct event_record rec;
	struct hook_result *h;
	const cJSON *poll, *hk, *hist;
	cJSON *o;
	char id[32], *text;

	(void)unused;
	state_init(&s, NULL);
	o = state_to_json(&s, "0.1.0");
	assert_keys(o, top_keys, ELEMENTSOF(top_keys));
	assert_member(o, "version", "\"0.1.0\"");
	assert_member(o, "provider", "null");
	assert_member(o, "vm_name", "null");
	assert_member(o, "state", "\"idle\"");
	assert_member(o, "history", "[]");
	/* No event: every field of one is null, none is left out. */
	for (size_t i = 7; i < ELEMENTSOF(top_keys) - 1; i++)
		assert_member(o, top_keys[i], "null");
	poll = cJSON_GetObjectItem(o, "poll");
	assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
	assert_member(poll, "ok", "0");
	assert_member(poll, "last_success", "null");
	assert_member(poll, "last_success_usec", "null");
	assert_member(poll, "last_latency_usec", "null");
	assert_member(poll, "incarnation", "null");
	assert_member(poll, "last_error", "null");
	cJSON_Delete(o);

	s.provider = xstrdup("azure");
	s.vm_name = xstrdup("vm-spot-1");
	s.phase = PHASE_RUNNING;
	s.poll.ok = UINT64_C(5000000000);           /* above 2^32 */
	s.poll.failed = 2;
	s.poll.consecutive_failures = 1;
	s.poll.last_ok_wall_usec = T0;
	s.poll.last_latency_usec = 1500;
	s.poll.incarnation = 3;
	strscpy(s.poll.last_error, sizeof(s.poll.last_error), "HTTP 500");
	for (int i = 0; i < 12; i++) {
		snprintf(id, sizeof(id), "old%d", i);
		add_record(&s, id, true);
	}
	make_record(&rec, "now", false);
	rec.ev.description[0] = '\0';
	rec.ev.duration_sec = 30;
	rec.deadline_wall_usec = JSON_TIME_MAX_USEC;   /* the last instant kept */
	h = add_hook(&rec, "10-a", HOOK_OK);
	h->exit_status = 0;
	h->start_wall_usec = T0 + 1;
	h->duration_usec = 1234567;
	h->output_bytes = (uint64_t)JSON_INT_MAX;
	hook_result_add_line(h, "hello");
	h = add_hook(&rec, "20-b", HOOK_FAILED);
	h->exec_errno = ENOENT;
	h->exit_status = 127;
	h->output_bytes = UINT64_MAX;                  /* clamped on the way out */
	add_hook(&rec, "30-c", HOOK_PENDING);
	state_add_record(&s, &rec);

	o = state_to_json(&s, "0.1.0");
	assert_keys(o, top_keys, ELEMENTSOF(top_keys));
	assert_member(o, "provider", "\"azure\"");
	assert_member(o, "vm_name", "\"vm-spot-1\"");
	assert_member(o, "state", "\"running\"");
	poll = cJSON_GetObjectItem(o, "poll");
	assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
	assert_member(poll, "ok", "5000000000");
	assert_member(poll, "last_success", "\"2026-11-27T06:30:30.000000Z\"");
	assert_member(poll, "last_success_usec", "1795761030000000");
	assert_member(poll, "last_latency_usec", "1500");
	assert_member(poll, "incarnation", "3");
	assert_member(poll, "last_error", "\"HTTP 500\"");

	/* Flat: the event as hooks read it, then the record's own fields. */
	assert_keys(cJSON_GetObjectItem(o, "event"), event_keys, ELEMENTSOF(event_keys));
	assert_member(cJSON_GetObjectItem(o, "event"), "id", "\"now\"");
	assert_member(cJSON_GetObjectItem(o, "event"), "source", "\"Platform\"");
	assert_member(cJSON_GetObjectItem(o, "event"), "description", "null");
	assert_member(cJSON_GetObjectItem(o, "event"), "duration_s", "30");
	assert_member(cJSON_GetObjectItem(o, "event"), "deadline_usec", "7258118399999999");
	assert_member(o, "event_status", "\"Scheduled\"");
	assert_member(o, "detected", "\"2026-11-27T06:30:30.000000Z\"");
	assert_member(o, "detected_usec", "1795761030000000");   /* above 2^31, exact */
	assert_member(o, "deadline", "\"2199-12-31T23:59:59.999999Z\"");
	assert_member(o, "deadline_usec", "7258118399999999");    /* near 2^53, exact */
	assert_member(o, "key", "null");
	assert_member(o, "gone", "false");
	assert_member(o, "gone_at", "null");
	assert_member(o, "gone_at_usec", "null");
	assert_member(o, "chain_done", "false");
	assert_keys(cJSON_GetObjectItem(o, "approval"), approval_keys, ELEMENTSOF(approval_keys));
	assert_member(cJSON_GetObjectItem(o, "approval"), "wanted", "true");
	assert_member(cJSON_GetObjectItem(o, "approval"), "approved_at", "null");
	assert_member(cJSON_GetObjectItem(o, "approval"), "attempts", "0");

	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "hooks")), 3);
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0);
	assert_keys(hk, status_hook_keys, ELEMENTSOF(status_hook_keys));
	assert_member(hk, "result", "\"ok\"");
	assert_member(hk, "exit_status", "0");
	assert_member(hk, "signal", "null");
	assert_member(hk, "started", "\"2026-11-27T06:30:30.000001Z\"");
	assert_member(hk, "started_usec", "1795761030000001");
	assert_member(hk, "duration_usec", "1234567");
	assert_member(hk, "budget_usec", "27000000");
	assert_member(hk, "skip_reason", "null");
	assert_member(hk, "output", "[\"hello\"]");
	assert_member(hk, "output_bytes", "9007199254740991");
	assert_member(hk, "error", "null");
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 1);
	assert_member(hk, "exit_status", "127");
	assert_member(hk, "output_bytes", "9007199254740991");
	assert_member(hk, "error", "\"cannot execute: No such file or directory\"");
	/* Not started: absent is null, never "" or 0. */
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 2);
	assert_member(hk, "result", "\"pending\"");
	assert_member(hk, "exit_status", "null");
	assert_member(hk, "started", "null");
	assert_member(hk, "started_usec", "null");
	assert_member(hk, "duration_usec", "null");
	assert_member(hk, "output", "[]");

	hist = cJSON_GetObjectItem(o, "history");
	assert_int_equal(cJSON_GetArraySize(hist), 10);
	assert_keys(cJSON_GetArrayItem(hist, 0), summary_keys, ELEMENTSOF(summary_keys));
	assert_member(cJSON_GetArrayItem(hist, 0), "id", "\"old11\"");
	assert_member(cJSON_GetArrayItem(hist, 9), "id", "\"old2\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "type", "\"Preempt\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "deadline", "\"2026-11-27T06:30:58.000000Z\"");
	assert_member(cJSON_GetArrayItem(hist, 0), "deadline_usec", "1795761058000000");

	/* Whole document: integers as digits (no exponent, no fraction), and
	 * no "" standing for absent; the same in the pretty form http.c sends. */
	text = cJSON_PrintUnformatted(o);
	assert_null(strstr(text, "e+"));
	assert_null(strstr(text, "E+"));
	assert_null(strstr(text, "\"\""));
	assert_non_null(strstr(text, "\"detected_usec\":1795761030000000,"));
	cJSON_free(text);
	text = cJSON_Print(o);
	assert_non_null(strstr(text, "\"detected_usec\":\t1795761030000000,"));
	cJSON_free(text);
	cJSON_Delete(o);

	/* History counts the outcomes. */
	state_find(&s, "now")->chain_done = true;
	state_find(&s, "now")->hooks[2].outcome = HOOK_TIMEOUT;
	state_find(&s, "now")->approved = true;
	add_record(&s, "newest", true);
	o = state_to_json(&s, "0.1.0");
	hist = cJSON_GetObjectItem(o, "history");
	assert_member(cJSON_GetObjectItem(o, "event"), "id", "\"newest\"");
	hk = cJSON_GetArrayItem(hist, 0);
	assert_member(hk, "id", "\"now\"");
	assert_member(hk, "hooks_ok", "1");
	assert_member(hk, "hooks_failed", "1");
	assert_member(hk, "hooks_timeout", "1");
	assert_member(hk, "hooks_skipped", "0");
	cJSON_Delete(o);

	for (int p = 0; p < _PHASE_MAX; p++)
		assert_non_null(agent_phase_to_string((enum agent_phase)p));
	assert_string_equal(agent_phase_to_string(PHASE_PENDING), "pending");
	assert_string_equal(agent_phase_to_string(PHASE_DONE), "done");
	assert_null(agent_phase_to_string(_PHASE_MAX));
	state_done(&s);
}

/* status.event printed is want. */
static void assert_event_is(const cJSON *status, const char *want)
{
	char *got = cJSON_PrintUnformatted(cJSON_GetObjectItem(status, "event"));

	assert_string_equal(got, want);
	cJSON_free(got);
}

/* /v1/status shows the event as the last hook read it, and the platform's
 * word since then beside it; the file keeps both. */
static void test_seen_event(void **unused)
{
	char *dir = make_tmpdir();
	struct agent_state s;
	struct event_record rec, *r;
	char *stdin_text;
	cJSON *o, *doc;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "seen", false);
	add_hook(&rec, "10-a", HOOK_PENDING);
	r = state_add_record(&s, &rec);
	/* Before any hook: as first seen. */
	assert_true(r->seen.set);
	assert_int_equal(r->seen.status, EVENT_SCHEDULED);

	stdin_text = event_record_stdin(r, false);
	doc = cJSON_Parse(stdin_text);
	assert_non_null(doc);
	/* The platform says Started and moves NotBefore after the hook read it. */
	r->ev.status = EVENT_STARTED;
	r->ev.not_before_usec += 5 * USEC_PER_SEC;
	r->deadline_wall_usec -= USEC_PER_SEC;
	o = state_to_json(&s, "0.1.0");
	/* "event" is byte for byte what the hook read on stdin. */
	assert_event_is(o, stdin_text);
	assert_member(cJSON_GetObjectItem(o, "event"), "status", "\"Scheduled\"");
	assert_member(o, "event_status", "\"Started\"");
	{
		char want[24];

		(void)snprintf(want, sizeof(want), "%" PRIu64, r->ev.not_before_usec);
		assert_member(o, "not_before_usec", want);
	}
	cJSON_Delete(o);

	/* Across a restart. */
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	r = &s.records[0];
	assert_int_equal(r->ev.status, EVENT_STARTED);
	assert_int_equal(r->seen.status, EVENT_SCHEDULED);
	o = state_to_json(&s, "0.1.0");
	assert_event_is(o, stdin_text);
	cJSON_Delete(o);

	/* The next hook reads the event as it is now. */
	free(stdin_text);
	stdin_text = event_record_stdin(r, false);
	assert_non_null(strstr(stdin_text, "\"status\":\"Started\""));
	o = state_to_json(&s, "0.1.0");
	assert_member(cJSON_GetObjectItem(o, "event"), "status", "\"Started\"");
	cJSON_Delete(o);

	free(stdin_text);
	cJSON_Delete(doc);
	state_done(&s);
	remove_tmpdir(dir);
}

/* A record with values beyond every bound (only code can put them there:
 * the entry points refuse them) still saves as a file that loads, with the
 * values clamped, and nothing is dropped. */
static void test_bounds_clamped_on_write(void **unused)
{
	char *dir = make_tmpdir();
	struct state_load_report rep;
	struct agent_state s;
	struct event_record rec, *r;
	struct hook_result *h;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "extreme", false);
	rec.ev.not_before_usec = UINT64_MAX;          /* what an unlimited logind delay was */
	rec.deadline_wall_usec = UINT64_MAX - 2;
	rec.detected_wall_usec = JSON_TIME_MAX_USEC + 1;
	rec.approved_wall_usec = UINT64_C(1) << 53;
	rec.ev.duration_sec = INT64_MAX;
	rec.approve_attempts = UINT32_MAX;
	h = add_hook(&rec, "10-x", HOOK_FAILED);
	h->exit_status = 300;
	h->term_signal = 200;
	h->start_wall_usec = UINT64_MAX;
	h->duration_usec = UINT64_MAX;
	h->budget_usec = (UINT64_C(1) << 53) + 1;
	h->output_bytes = UINT64_MAX;
	state_add_record(&s, &rec);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);

	state_init(&s, dir);
	assert_int_equal(state_load_report(&s, &rep), 0);
	assert_int_equal(rep.error, 0);
	assert_null(rep.moved);
	assert_int_equal(rep.dropped, 0);
	assert_int_equal(s.n_records, 1);
	r = &s.records[0];
	assert_int_equal(r->ev.not_before_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(r->deadline_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(r->detected_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(r->approved_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(r->ev.duration_sec, EVENT_DURATION_MAX_SEC);
	assert_int_equal(r->approve_attempts, UINT32_MAX);
	assert_int_equal(r->hooks[0].exit_status, 255);
	assert_int_equal(r->hooks[0].term_signal, 127);
	assert_int_equal(r->hooks[0].start_wall_usec, JSON_TIME_MAX_USEC);
	assert_int_equal(r->hooks[0].duration_usec, JSON_INT_MAX);
	assert_int_equal(r->hooks[0].budget_usec, JSON_INT_MAX);
	assert_int_equal(r->hooks[0].output_bytes, JSON_INT_MAX);
	state_done(&s);
	remove_tmpdir(dir);
}

/* A bad record among good ones: it alone goes, the others are kept in
 * order, and the report names it. */
static void test_dropped_record_report(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *text;
	struct state_load_report rep;
	struct agent_state s;
	cJSON *doc, *second;

	(void)unused;
	state_init(&s, dir);
	add_record(&s, "first", true);
	add_record(&s, "second", true);
	add_record(&s, "third", false);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);

	/* As an older agent wrote it: a deadline a double cannot hold. */
	text = read_file(p, NULL);
	doc = cJSON_Parse(text);
	second = cJSON_GetArrayItem(cJSON_GetObjectItem(doc, "records"), 1);
	cJSON_ReplaceItemInObjectCaseSensitive(second, "deadline_usec", cJSON_CreateNumber(18446744073709551615.0));
	write_json(p, doc);
	cJSON_Delete(doc);
	free(text);

	state_init(&s, dir);
	assert_int_equal(state_load_report(&s, &rep), 0);
	assert_int_equal(rep.error, 0);
	assert_null(rep.moved);
	assert_int_equal(rep.dropped, 1);
	assert_non_null(strstr(rep.dropped_reason, "record 2 ('second')"));
	assert_non_null(strstr(rep.dropped_reason, "'deadline_usec'"));
	assert_non_null(rep.kept);
	assert_int_equal(s.n_records, 2);
	assert_string_equal(s.records[0].ev.id, "first");
	assert_string_equal(s.records[1].ev.id, "third");
	free(rep.kept);
	free(rep.moved);
	state_done(&s);

	/* A file of another format version goes aside as a whole, saying so. */
	write_file(p, "{\"version\":1,\"records\":[]}", 26);
	state_init(&s, dir);
	assert_int_equal(state_load_report(&s, &rep), 0);
	assert_int_equal(rep.error, -EBADMSG);
	assert_non_null(rep.moved);
	assert_string_equal(rep.reason, "format version 1, this spot-agent reads version 2 only");
	free(rep.moved);
	free(rep.kept);
	state_done(&s);
	free(p);
	remove_tmpdir(dir);
}

/* ---- property: whatever the agent holds reads back as written ---- */

#define PROP_ITERATIONS 2000
#define PROP_SEED       UINT64_C(0x5107a6e2024)
#define PROP_FILE_EVERY 25         /* every so many, through a real state file */

struct rng {
	uint64_t s;
};

/* splitmix64: tiny, and the same sequence everywhere. */
static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* A length in [min, max]: mostly short, now and then the extremes. */
static size_t rng_len(struct rng *r, size_t min, size_t max)
{
	switch (rng_below(r, 8)) {
	case 0:
		return max;
	case 1:
		return min;
	case 2:
		return min + rng_below(r, max - min + 1);
	default:
		return min + rng_below(r, (max - min < 24 ? max - min : 24) + 1);
	}
}

/* n bytes and a NUL into buf: random bytes, letters, or pieces of text
 * that is UTF-8, broken UTF-8, quotes, escapes and control characters. */
static void rng_bytes(struct rng *r, char *buf, size_t n, bool valid_only)
{
	static const char *const any[] = {
		"a", "Z", "0", " ", "\"", "\\", "/", "\n", "\r", "\t", "\x01", "\x1b", "\x7f",
		"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x80", "\xef\xbf\xbd",
		"\xc3", "\xe2\x82", "\xff", "\xfe", "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\x80",
	};
	static const char *const valid[] = {
		"a", "Z", "-", " ", "\"", "\\", "/", "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x9a\x80",
	};
	unsigned mode = valid_only ? 2 : (unsigned)rng_below(r, 3);
	size_t len = 0;

	while (len < n) {
		const char *piece;
		size_t k;

		if (mode == 0) {
			buf[len++] = (char)(1 + rng_below(r, 255));
			continue;
		}
		if (mode == 1) {
			buf[len++] = (char)('a' + rng_below(r, 26));
			continue;
		}
		piece = valid_only ? valid[rng_below(r, ELEMENTSOF(valid))] : any[rng_below(r, ELEMENTSOF(any))];
		k = strlen(piece);
		if (len + k > n) {
			if (valid_only)
				break;
			k = n - len;
		}
		memcpy(buf + len, piece, k);
		len += k;
	}
	buf[len] = '\0';
}

static uint64_t rng_time(struct rng *r)
{
	switch (rng_below(r, 10)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return JSON_TIME_MAX_USEC;
	case 3:
		return JSON_TIME_MAX_USEC - rng_below(r, 1000);
	case 4:
		return (UINT64_C(1) << 31) + rng_below(r, 1000);
	case 5:
		return UINT64_MAX - rng_below(r, 3);          /* beyond: clamped */
	case 6:
		return JSON_TIME_MAX_USEC + 1 + rng_below(r, UINT64_C(1) << 60);
	default:
		return 1 + rng_below(r, JSON_TIME_MAX_USEC);
	}
}

/* Durations, sizes and counters. */
static uint64_t rng_usec(struct rng *r)
{
	switch (rng_below(r, 8)) {
	case 0:
		return 0;
	case 1:
		return 1;
	case 2:
		return (uint64_t)JSON_INT_MAX;
	case 3:
		return (uint64_t)JSON_INT_MAX + 1;
	case 4:
		return UINT64_MAX;
	default:
		return rng_below(r, UINT64_C(1) << (1 + rng_below(r, 53)));
	}
}

static int64_t rng_pick(struct rng *r, const int64_t *v, size_t n)
{
	return v[rng_below(r, n)];
}

/* An id the providers would accept (event_id_valid). */
static void rng_id(struct rng *r, char *buf, size_t n, int index)
{
	if (rng_below(r, 3) == 0) {
		rng_bytes(r, buf, rng_len(r, 1, n - 1), true);
		if (event_id_valid(buf))
			return;
	}
	(void)snprintf(buf, n, "ev-%d-%" PRIx64, index, rng_next(r));
}

static void rng_hook(struct rng *r, struct hook_result *h)
{
	static const int64_t exits[] = { -1, 0, 1, 77, 127, 255, 256, 300, -7 };
	static const int64_t signals[] = { 0, 1, 9, 15, 64, 127, 128, 200, -3 };
	char name[HOOK_NAME_MAX], *path = xmalloc(PATH_MAX), *line = xmalloc(HOOK_LINE_MAX + 101);
	size_t lines;

	rng_bytes(r, name, rng_len(r, 1, HOOK_NAME_MAX - 1), false);
	rng_bytes(r, path, rng_below(r, 16) == 0 ? rng_len(r, 1, PATH_MAX - 1) : rng_len(r, 1, 60), false);
	hook_result_init(h, name, path);
	h->outcome = (enum hook_outcome)rng_below(r, _HOOK_OUTCOME_MAX);
	h->exit_status = (int)(rng_below(r, 2) ? rng_pick(r, exits, ELEMENTSOF(exits)) : (int64_t)rng_below(r, 256));
	h->term_signal = (int)rng_pick(r, signals, ELEMENTSOF(signals));
	h->timed_out = rng_below(r, 2);
	h->start_wall_usec = rng_time(r);
	h->duration_usec = rng_usec(r);
	h->budget_usec = rng_usec(r);
	rng_bytes(r, h->skip_reason, rng_len(r, 0, HOOK_REASON_MAX - 1), false);
	lines = rng_len(r, 0, HOOK_OUTPUT_LINES + 2);
	for (size_t i = 0; i < lines; i++) {
		rng_bytes(r, line, rng_len(r, 0, HOOK_LINE_MAX + 100), false);
		hook_result_add_line(h, line);
	}
	h->output_bytes = rng_usec(r);
	free(line);
	free(path);
}

static void rng_record(struct rng *r, struct event_record *rec, int index, size_t max_hooks)
{
	static const int64_t durations[] = { -1, 0, 1, 30, EVENT_DURATION_MAX_SEC, INT64_MAX, -5 };
	static const enum provider providers[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP };
	struct spot_event *ev = &rec->ev;
	size_t n;

	event_record_init(rec);
	rng_id(r, ev->id, sizeof(ev->id), index);
	ev->type = (enum event_type)rng_below(r, _EVENT_TYPE_MAX);
	ev->status = (enum event_status)rng_below(r, _EVENT_STATUS_MAX);
	ev->provider = providers[rng_below(r, ELEMENTSOF(providers))];
	rng_bytes(r, ev->source, rng_len(r, 0, sizeof(ev->source) - 1), false);
	rng_bytes(r, ev->description, rng_len(r, 0, sizeof(ev->description) - 1), false);
	ev->not_before_usec = rng_time(r);
	ev->duration_sec = rng_below(r, 2) ? rng_pick(r, durations, ELEMENTSOF(durations)) :
		(int64_t)rng_below(r, UINT64_C(1) << 40);
	/* Straight into the array: event_add_resource would clean them. */
	n = rng_len(r, 0, EVENT_RESOURCES_MAX);
	ev->resources = n ? xcalloc(n, sizeof(*ev->resources)) : NULL;
	for (size_t i = 0; i < n; i++)
		rng_bytes(r, ev->resources[i], rng_len(r, 1, EVENT_RESOURCE_MAX - 1), false);
	ev->n_resources = n;

	rec->detected_wall_usec = rng_time(r);
	rec->deadline_wall_usec = rng_time(r);
	rec->emergency = rng_below(r, 2);
	rec->drill = rng_below(r, 2);
	rec->chain_done = rng_below(r, 2);
	rec->approved = rng_below(r, 2);
	rec->approved_wall_usec = rng_time(r);
	rec->approve_attempts = rng_below(r, 4) == 0 ? UINT32_MAX : (unsigned)rng_below(r, 10);
	rec->gone = rng_below(r, 2);
	rec->gone_wall_usec = rng_time(r);
	rec->no_approve = rng_below(r, 2);
	if (rng_below(r, 3) == 0)
		rng_id(r, rec->key, sizeof(rec->key), index);
	if (rng_below(r, 2)) {
		rec->seen.set = true;
		rec->seen.status = (enum event_status)rng_below(r, _EVENT_STATUS_MAX);
		rec->seen.not_before_usec = rng_time(r);
		rec->seen.deadline_wall_usec = rng_time(r);
	}
	n = rng_below(r, 16) == 0 ? max_hooks : rng_below(r, (max_hooks < 8 ? max_hooks : 8) + 1);
	rec->hooks = xcalloc(n ? n : 1, sizeof(*rec->hooks));
	for (size_t i = 0; i < n; i++)
		rng_hook(r, &rec->hooks[i]);
	rec->n_hooks = n;
}

/* ---- what reading back must give: the persisted fields, with text made
 * UTF-8 and numbers clamped to their bounds as the writer does ---- */

static uint64_t want_time(uint64_t v)
{
	return v > JSON_TIME_MAX_USEC ? JSON_TIME_MAX_USEC : v;
}

static uint64_t want_count(uint64_t v)
{
	return v > (uint64_t)JSON_INT_MAX ? (uint64_t)JSON_INT_MAX : v;
}

static int64_t want_clamp(int64_t v, int64_t if_null, int64_t min, int64_t max)
{
	return v == if_null ? v : v < min ? min : v > max ? max : v;
}

static bool text_is(const char *got, const char *raw, size_t n)
{
	char *want = xmalloc(n);
	bool same;

	(void)utf8_copy(want, n, raw);
	same = strcmp(got, want) == 0;
	free(want);
	return same;
}

struct line_list {
	char *lines[HOOK_OUTPUT_LINES];
	size_t n;
};

static void list_line(const char *line, void *userdata)
{
	struct line_list *l = userdata;

	l->lines[l->n++] = xstrdup(line);
}

static void line_list_done(struct line_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->lines[i]);
}

#define DIFFER(what) do { (void)snprintf(why, n, "%s", what); return false; } while (0)

static bool hook_reads_back(const struct hook_result *a, const struct hook_result *b, char *why, size_t n)
{
	struct line_list la = { .n = 0 }, lb = { .n = 0 };
	bool same = true;

	if (strcmp(a->name, b->name) != 0 || strcmp(a->path, b->path) != 0)
		DIFFER("hook name or path");
	if (a->outcome == HOOK_RUNNING) {
		/* Interrupted by the agent's end: pending, from scratch. */
		if (b->outcome != HOOK_PENDING || b->exit_status != -1 || b->term_signal || b->timed_out ||
		    b->start_wall_usec || b->duration_usec || b->budget_usec || b->skip_reason[0] ||
		    b->n_output || b->output_bytes)
			DIFFER("a running hook did not come back pending and blank");
		return true;
	}
	if (a->outcome != b->outcome)
		DIFFER("hook outcome");
	if (b->exit_status != want_clamp(a->exit_status, -1, 0, 255))
		DIFFER("hook exit_status");
	if (b->term_signal != want_clamp(a->term_signal, 0, 1, 127))
		DIFFER("hook signal");
	if (a->timed_out != b->timed_out)
		DIFFER("hook timed_out");
	if (b->start_wall_usec != want_time(a->start_wall_usec))
		DIFFER("hook started");
	if (b->duration_usec != want_count(a->duration_usec) || b->budget_usec != want_count(a->budget_usec))
		DIFFER("hook duration or budget");
	if (b->output_bytes != want_count(a->output_bytes))
		DIFFER("hook output_bytes");
	if (!text_is(b->skip_reason, a->skip_reason, sizeof(a->skip_reason)))
		DIFFER("hook skip_reason");
	hook_result_foreach_line(a, list_line, &la);
	hook_result_foreach_line(b, list_line, &lb);
	if (la.n != lb.n) {
		(void)snprintf(why, n, "hook output: %zu lines, not %zu", lb.n, la.n);
		same = false;
	}
	for (size_t i = 0; same && i < la.n; i++)
		if (!text_is(lb.lines[i], la.lines[i], HOOK_LINE_MAX + 1)) {
			(void)snprintf(why, n, "hook output line %zu", i);
			same = false;
		}
	line_list_done(&la);
	line_list_done(&lb);
	return same;
}

static bool record_reads_back(const struct event_record *a, const struct event_record *b, char *why, size_t n)
{
	const struct spot_event *x = &a->ev, *y = &b->ev;

	if (strcmp(x->id, y->id) != 0 || x->type != y->type || x->status != y->status ||
	    x->provider != y->provider)
		DIFFER("event id, type, status or provider");
	if (!text_is(y->source, x->source, sizeof(x->source)) ||
	    !text_is(y->description, x->description, sizeof(x->description)))
		DIFFER("event source or description");
	if (y->not_before_usec != want_time(x->not_before_usec))
		DIFFER("event not_before");
	if (y->duration_sec != want_clamp(x->duration_sec, -1, 0, EVENT_DURATION_MAX_SEC))
		DIFFER("event duration_s");
	if (x->n_resources != y->n_resources)
		DIFFER("number of resources");
	for (size_t i = 0; i < x->n_resources; i++)
		if (!text_is(y->resources[i], x->resources[i], EVENT_RESOURCE_MAX))
			DIFFER("a resource");
	if (b->detected_wall_usec != want_time(a->detected_wall_usec) ||
	    b->deadline_wall_usec != want_time(a->deadline_wall_usec) ||
	    b->approved_wall_usec != want_time(a->approved_wall_usec) ||
	    b->gone_wall_usec != want_time(a->gone_wall_usec))
		DIFFER("a record time");
	if (a->emergency != b->emergency || a->drill != b->drill || a->chain_done != b->chain_done ||
	    a->approved != b->approved || a->no_approve != b->no_approve || a->gone != b->gone ||
	    a->approve_attempts != b->approve_attempts)
		DIFFER("a record flag or the attempts");
	if (strcmp(a->key, b->key) != 0)
		DIFFER("record key");
	/* What hooks read: the snapshot, or the live values before any. */
	if (!b->seen.set ||
	    b->seen.status != (a->seen.set ? a->seen.status : x->status) ||
	    b->seen.not_before_usec != want_time(a->seen.set ? a->seen.not_before_usec : x->not_before_usec) ||
	    b->seen.deadline_wall_usec != want_time(a->seen.set ? a->seen.deadline_wall_usec : a->deadline_wall_usec))
		DIFFER("the event as hooks read it");
	if (a->n_hooks != b->n_hooks)
		DIFFER("number of hooks");
	for (size_t i = 0; i < a->n_hooks; i++)
		if (!hook_reads_back(&a->hooks[i], &b->hooks[i], why, n))
			return false;
	return true;
}

#undef DIFFER

static char *record_text(const struct event_record *r)
{
	cJSON *o = event_record_to_json(r);
	char *text = cJSON_PrintUnformatted(o);

	cJSON_Delete(o);
	assert_non_null(text);
	return text;
}

/* Renders, parses and compares one record; the text of what was read
 * renders to itself again (a fixed point after one round). */
static bool record_round_trip(const struct event_record *rec, char *why, size_t n)
{
	struct event_record back, again;
	struct json_err err = { "" };
	char *text = record_text(rec), *text2, *text3;
	cJSON *parsed = cJSON_Parse(text);
	bool ok;

	if (!parsed || event_record_from_json_err(parsed, &back, &err) < 0) {
		(void)snprintf(why, n, "did not read back: %s", parsed ? err.why : "not JSON");
		cJSON_Delete(parsed);
		cJSON_free(text);
		return false;
	}
	cJSON_Delete(parsed);
	ok = record_reads_back(rec, &back, why, n);
	text2 = record_text(&back);
	parsed = cJSON_Parse(text2);
	assert_int_equal(event_record_from_json(parsed, &again), 0);
	text3 = record_text(&again);
	if (ok && strcmp(text2, text3) != 0) {
		(void)snprintf(why, n, "what was read back renders differently the second time");
		ok = false;
	}
	cJSON_Delete(parsed);
	event_record_done(&again);
	event_record_done(&back);
	cJSON_free(text3);
	cJSON_free(text2);
	cJSON_free(text);
	return ok;
}

/* A few records through state_save and state_load. */
static bool file_round_trip(struct rng *r, const char *dir, int index, char *why, size_t n)
{
	struct state_load_report rep;
	struct agent_state s, t;
	size_t count = 1 + rng_below(r, 2);
	bool ok = true;

	state_init(&s, dir);
	for (size_t i = 0; i < count; i++) {
		struct event_record rec;

		/* Small enough that no output lines are shed to fit the cap. */
		rng_record(r, &rec, index * 10 + (int)i, 4);
		state_add_record_at(&s, &rec, 0);
	}
	assert_int_equal(state_save_opt(&s, false), 0);
	state_init(&t, dir);
	assert_int_equal(state_load_report(&t, &rep), 0);
	if (rep.error || rep.dropped) {
		(void)strscpy(why, n, rep.error ? rep.reason : rep.dropped_reason);
		ok = false;
	} else if (t.n_records != s.n_records) {
		(void)snprintf(why, n, "state file: %zu records, not %zu", t.n_records, s.n_records);
		ok = false;
	}
	for (size_t i = 0; ok && i < s.n_records; i++)
		ok = record_reads_back(&s.records[i], &t.records[i], why, n);
	free(rep.moved);
	free(rep.kept);
	state_done(&t);
	state_done(&s);
	return ok;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = getenv(name);
	unsigned long long x;
	char *end;

	if (!v || !v[0])
		return dflt;
	errno = 0;
	x = strtoull(v, &end, 0);   /* 0x... as printed on failure */
	if (errno || *end || v[0] == '-')
		fail_msg("%s='%s' is not a number", name, v);
	return (uint64_t)x;
}

/* Random records (ids, types, statuses, times with 0 and the extremes,
 * hooks with random outcomes, output lines of arbitrary bytes, counts up
 * to the maxima), rendered and parsed: the persisted fields come back.
 * Deterministic; SPOT_STATE_SEED and SPOT_STATE_ITERATIONS pick others, and
 * a failure prints the seed that repeats it alone. */
static void test_property_round_trip(void **unused)
{
	uint64_t base = env_u64("SPOT_STATE_SEED", PROP_SEED);
	uint64_t iterations = env_u64("SPOT_STATE_ITERATIONS", PROP_ITERATIONS);
	char *dir = make_tmpdir(), why[160];

	(void)unused;
	for (uint64_t i = 0; i < iterations; i++) {
		/* Each iteration is its own seed: the first of a run started there. */
		uint64_t seed = base + i * UINT64_C(0x9e3779b97f4a7c15);
		struct rng r = { seed };
		struct event_record rec;
		bool ok;

		if (rng_below(&r, PROP_FILE_EVERY) == 0) {
			ok = file_round_trip(&r, dir, (int)i, why, sizeof(why));
		} else {
			rng_record(&r, &rec, (int)i, STATE_RECORD_HOOKS_MAX);
			ok = record_round_trip(&rec, why, sizeof(why));
			event_record_done(&rec);
		}
		if (!ok)
			fail_msg("iteration %" PRIu64 " of seed %#" PRIx64 ": %s (alone: SPOT_STATE_SEED=%#" PRIx64
				 " SPOT_STATE_ITERATIONS=1)", i, base, why, seed);
	}
	print_message("property: %" PRIu64 " random records read back (seed %#" PRIx64 ")\n", iterations, base);
	remove_tmpdir(dir);
}

/* ---- the size bound holds for what save writes ---- */

static void add_bulky_record(struct agent_state *s, const char *id, bool finished,
			     int n_hooks, const char *line)
{
	struct event_record r;

	make_record(&r, id, finished);
	for (int i = 0; i < n_hooks; i++) {
		char name[32];
		struct hook_result *h;

		snprintf(name, sizeof(name), "%02d-bulky", i);
		h = add_hook(&r, name, HOOK_OK);
		for (int j = 0; j < HOOK_OUTPUT_LINES; j++)
			hook_result_add_line(h, line);
	}
	state_add_record(s, &r);
}

static void test_save_size_bound(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *before, *after;
	char *ctl = xmalloc(1001);    /* 1000 bytes, 6000 once escaped as \u0001 */
	struct agent_state s;
	struct stat st;

	(void)unused;
	memset(ctl, 0x01, 1000);
	ctl[1000] = '\0';

	/* Finished records lose their output lines, the current one keeps them. */
	state_init(&s, dir);
	add_bulky_record(&s, "done-1", true, 20, ctl);
	add_bulky_record(&s, "done-2", true, 20, ctl);
	add_bulky_record(&s, "current", false, 2, "small line");
	assert_int_equal(state_save(&s), 0);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_size <= STATE_FILE_MAX);
	state_done(&s);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	assert_int_equal(s.n_records, 3);
	assert_int_equal(s.records[0].n_hooks, 20);
	assert_int_equal(s.records[0].hooks[19].n_output, 0);
	assert_int_equal(s.records[0].hooks[19].outcome, HOOK_OK);
	assert_int_equal(s.records[2].hooks[1].n_output, HOOK_OUTPUT_LINES);
	state_done(&s);

	/* Even the current record's lines go when they alone are too many. */
	state_init(&s, dir);
	add_bulky_record(&s, "current", false, 30, ctl);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, NULL), 0);
	assert_int_equal(s.n_records, 1);
	assert_int_equal(s.records[0].n_hooks, 30);
	assert_int_equal(s.records[0].hooks[0].n_output, 0);

	/* Beyond that the save fails and the previous file stays intact. */
	before = read_file(p, NULL);
	{
		struct event_record r;

		make_record(&r, "huge", false);
		for (int i = 0; i < HOOKS_MAX; i++) {
			struct hook_result *h = add_hook(&r, "x", HOOK_PENDING);

			memset(h->path, 'p', PATH_MAX - 1);
			h->path[PATH_MAX - 1] = '\0';
		}
		state_add_record(&s, &r);
		add_record(&s, "more", false);
		add_record(&s, "and-more", false);
		for (size_t i = 0; i < 4; i++) {
			struct event_record copy;

			make_record(&copy, "copy", false);
			copy.hooks = xcalloc(HOOKS_MAX, sizeof(*copy.hooks));
			for (int j = 0; j < HOOKS_MAX; j++)
				hook_result_init(&copy.hooks[j], "x", s.records[1].hooks[j].path);
			copy.n_hooks = HOOKS_MAX;
			state_add_record(&s, &copy);
		}
	}
	assert_int_equal(state_save(&s), -EFBIG);
	after = read_file(p, NULL);
	assert_string_equal(before, after);
	{
		char *names = list_dir(dir);

		assert_string_equal(names, STATE_SPARE_NAME ",state.json");
		free(names);
	}
	state_done(&s);

	free(before);
	free(after);
	free(ctl);
	free(p);
	remove_tmpdir(dir);
}

/* ---- cost of a save (printed, not asserted) ---- */

static void test_save_timing(void **unused)
{
	char *dir = make_tmpdir(), *p;
	struct agent_state s;
	struct event_record rec;
	uint64_t start, total;
	struct stat st;
	const int rounds = 100;

	(void)unused;
	state_init(&s, dir);
	for (int i = 0; i < 4; i++) {
		char id[32];

		snprintf(id, sizeof(id), "older-%d", i);
		add_record(&s, id, true);
	}
	/* A realistic current event: eight hooks with full output rings. */
	make_record(&rec, "timed", false);
	for (int i = 0; i < 8; i++) {
		char name[32];
		struct hook_result *h;

		snprintf(name, sizeof(name), "%02d-hook", i * 10);
		h = add_hook(&rec, name, i < 4 ? HOOK_OK : HOOK_PENDING);
		for (int j = 0; j < HOOK_OUTPUT_LINES; j++)
			hook_result_add_line(h, "a typical line of hook output, about eighty characters long...");
	}
	state_add_record(&s, &rec);

	start = now_usec(CLOCK_MONOTONIC);
	for (int i = 0; i < rounds; i++)
		assert_int_equal(state_save(&s), 0);
	total = now_usec(CLOCK_MONOTONIC) - start;

	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(stat(p, &st), 0);
	print_message("state_save: %d saves of %lld bytes, average %.3f ms\n",
		      rounds, (long long)st.st_size, (double)total / rounds / 1000.0);
	free(p);
	state_done(&s);
	remove_tmpdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_roundtrip),
		cmocka_unit_test(test_file_mode_and_no_temp),
		cmocka_unit_test(test_stale_temp_file),
		cmocka_unit_test(test_missing_and_no_dir),
		cmocka_unit_test(test_good_data_file),
		cmocka_unit_test(test_corrupt_data_files),
		cmocka_unit_test(test_dropped_data_files),
		cmocka_unit_test(test_corrupt_special),
		cmocka_unit_test(test_every_field_type),
		cmocka_unit_test(test_unusable_dir),
		cmocka_unit_test(test_running_loads_pending),
		cmocka_unit_test(test_record_cap),
		cmocka_unit_test(test_approval_rules),
		cmocka_unit_test(test_load_keeps_newest),
		cmocka_unit_test(test_current),
		cmocka_unit_test(test_to_json),
		cmocka_unit_test(test_seen_event),
		cmocka_unit_test(test_bounds_clamped_on_write),
		cmocka_unit_test(test_dropped_record_report),
		cmocka_unit_test(test_property_round_trip),
		cmocka_unit_test(test_save_size_bound),
		cmocka_unit_test(test_save_timing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
