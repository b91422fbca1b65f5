/* test-state.c - the state file round trip, its crash safety and refusal of
 * anything it did not write, the record cap and the /v1/status shape. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <glob.h>
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

#include "state.h"
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
	assert_int_equal(state_load(&t, &moved), 0);
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

	(void)unused;
	/* The bad-* files are this one with one thing changed. */
	copy_file(DATA_DIR "/good.json", p);
	state_init(&s, dir);
	assert_int_equal(state_load(&s, &moved), 0);
	assert_null(moved);
	assert_int_equal(s.n_records, 1);
	assert_string_equal(s.records[0].ev.id, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
	assert_int_equal(s.records[0].detected_wall_usec, T0);
	assert_int_equal(s.records[0].n_hooks, 1);
	assert_int_equal(s.records[0].hooks[0].outcome, HOOK_OK);
	assert_int_equal(s.records[0].hooks[0].duration_usec, 1234567);
	assert_int_equal(s.records[0].hooks[0].n_output, 2);
	assert_true(event_record_is_finished(&s.records[0]));
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

static void test_corrupt_special(void **unused)
{
	char *dir, *p;
	size_t n;

	(void)unused;
	/* 2 MiB: valid JSON padded with spaces, refused for its size alone. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	{
		static const char doc[] = "{\"version\":1,\"records\":[]}";
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
		static const char doc[] = "{\"version\":1,\"records\":[]}";
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

/* The object at level 0 (top), 1 (the record) or 2 (its hook) of doc. */
static cJSON *object_at(cJSON *doc, int level)
{
	cJSON *o = doc;

	if (level >= 1)
		o = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "records"), 0);
	if (level >= 2)
		o = cJSON_GetArrayItem(cJSON_GetObjectItem(o, "hooks"), 0);
	assert_non_null(o);
	return o;
}

/* Loads dir and returns whether the file was refused. */
static bool load_refused(const char *dir)
{
	struct agent_state s;
	char *moved = NULL;
	bool refused;

	state_init(&s, dir);
	assert_int_equal(state_load(&s, &moved), 0);
	refused = moved != NULL;
	if (refused) {
		assert_int_equal(s.n_records, 0);
		assert_int_equal(unlink(moved), 0);
	}
	free(moved);
	state_done(&s);
	return refused;
}

/* Every field of the file, of a record and of a hook, given a value of the
 * wrong type or left out, makes the file corrupt. */
static void test_every_field_type(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *pristine;
	struct agent_state s;
	struct event_record rec;
	int checked = 0;

	(void)unused;
	state_init(&s, dir);
	make_record(&rec, "typed", true);
	hook_result_add_line(add_hook(&rec, "10-a", HOOK_OK), "out");
	state_add_record(&s, &rec);
	assert_int_equal(state_save(&s), 0);
	state_done(&s);
	pristine = read_file(p, NULL);

	/* The untouched document loads: the refusals below are real. */
	assert_false(load_refused(dir));

	for (int level = 0; level < 3; level++) {
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
			/* A string for numbers and bools, a number for the rest. */
			wrong = cJSON_IsNumber(orig) || cJSON_IsBool(orig) ?
				cJSON_CreateString("1") : cJSON_CreateNumber(1);
			assert_true(cJSON_ReplaceItemInObjectCaseSensitive(obj, key, wrong));
			write_json(p, doc);
			if (!load_refused(dir))
				fail_msg("wrong type for '%s' (level %d) was accepted", key, level);

			cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
			write_json(p, doc);
			/* Keys added later are optional, so older files still load. */
			if (strcmp(key, "gone_usec") != 0 && strcmp(key, "key") != 0 && !load_refused(dir))
				fail_msg("missing '%s' (level %d) was accepted", key, level);

			cJSON_Delete(doc);
			free(key);
			checked++;
		}
	}
	print_message("fields checked for type and presence: %d\n", checked);
	assert_int_equal(checked, 2 + 15 + 14);

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

static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
{
	const cJSON *item;
	size_t count = 0;

	assert_true(cJSON_IsObject(o));
	for (size_t i = 0; i < n; i++)
		if (!cJSON_HasObjectItem(o, keys[i]))
			fail_msg("missing key '%s'", keys[i]);
	cJSON_ArrayForEach(item, o)
		count++;
	assert_int_equal(count, n);
}

static void test_to_json(void **unused)
{
	static const char *const top_keys[] = {
		"version", "provider", "vm_name", "uptime_s", "state", "rebalance_recommended", "poll",
		"event", "history",
	};
	static const char *const poll_keys[] = {
		"ok", "failed", "consecutive_failures", "last_success", "last_latency_ms",
		"incarnation", "last_error",
	};
	static const char *const record_keys[] = {
		"event", "detected", "detected_usec", "deadline_usec", "emergency", "drill",
		"chain_done", "approved", "approved_usec", "approve_attempts", "no_approve",
		"gone", "gone_usec", "key", "hooks",
	};
	static const char *const hook_keys[] = {
		"name", "path", "result", "exit_status", "signal", "timed_out", "started",
		"started_usec", "duration_ms", "duration_usec", "budget_usec", "skip_reason",
		"output", "output_bytes",
	};
	static const char *const summary_keys[] = {
		"id", "type", "status", "detected", "deadline", "approved", "chain_done",
		"hooks_ok", "hooks_failed", "hooks_timeout", "hooks_skipped",
	};
	struct agent_state s;
	struct event_record rec;
	struct hook_result *h;
	const cJSON *poll, *ev, *hist, *hk;
	cJSON *o;
	char id[32];

	(void)unused;
	state_init(&s, NULL);
	o = state_to_json(&s, "0.1.0");
	assert_keys(o, top_keys, ELEMENTSOF(top_keys));
	assert_string_equal(cJSON_GetObjectItem(o, "version")->valuestring, "0.1.0");
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "vm_name")));
	assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "idle");
	assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, "uptime_s")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(o, "event")));
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(o, "history")), 0);
	poll = cJSON_GetObjectItem(o, "poll");
	assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(poll, "last_success")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(poll, "incarnation")));
	assert_true(cJSON_IsNull(cJSON_GetObjectItem(poll, "last_error")));
	cJSON_Delete(o);

	s.provider = xstrdup("azure");
	s.vm_name = xstrdup("vm-spot-1");
	s.phase = PHASE_RUNNING;
	s.poll.ok = 7;
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
	h = add_hook(&rec, "10-a", HOOK_OK);
	h->duration_usec = 1234567;
	hook_result_add_line(h, "hello");
	add_hook(&rec, "20-b", HOOK_RUNNING);
	state_add_record(&s, &rec);

	o = state_to_json(&s, "0.1.0");
	assert_keys(o, top_keys, ELEMENTSOF(top_keys));
	assert_string_equal(cJSON_GetObjectItem(o, "provider")->valuestring, "azure");
	assert_string_equal(cJSON_GetObjectItem(o, "vm_name")->valuestring, "vm-spot-1");
	assert_string_equal(cJSON_GetObjectItem(o, "state")->valuestring, "running");
	poll = cJSON_GetObjectItem(o, "poll");
	assert_keys(poll, poll_keys, ELEMENTSOF(poll_keys));
	assert_int_equal(cJSON_GetObjectItem(poll, "ok")->valuedouble, 7);
	assert_string_equal(cJSON_GetObjectItem(poll, "last_success")->valuestring, "2026-11-27T06:30:30Z");
	assert_true(cJSON_GetObjectItem(poll, "last_latency_ms")->valuedouble == 1.5);
	assert_int_equal(cJSON_GetObjectItem(poll, "incarnation")->valuedouble, 3);
	assert_string_equal(cJSON_GetObjectItem(poll, "last_error")->valuestring, "HTTP 500");

	ev = cJSON_GetObjectItem(o, "event");
	assert_keys(ev, record_keys, ELEMENTSOF(record_keys));
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(ev, "event"), "id")->valuestring, "now");
	assert_string_equal(cJSON_GetObjectItem(ev, "detected")->valuestring, "2026-11-27T06:30:30Z");
	assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(ev, "hooks")), 2);
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "hooks"), 0);
	assert_keys(hk, hook_keys, ELEMENTSOF(hook_keys));
	assert_string_equal(cJSON_GetObjectItem(hk, "result")->valuestring, "ok");
	assert_true(cJSON_GetObjectItem(hk, "duration_ms")->valuedouble == 1234.567);
	assert_string_equal(cJSON_GetObjectItem(hk, "started")->valuestring, "");
	assert_string_equal(cJSON_GetArrayItem(cJSON_GetObjectItem(hk, "output"), 0)->valuestring, "hello");
	hk = cJSON_GetArrayItem(cJSON_GetObjectItem(ev, "hooks"), 1);
	assert_string_equal(cJSON_GetObjectItem(hk, "result")->valuestring, "running");

	hist = cJSON_GetObjectItem(o, "history");
	assert_int_equal(cJSON_GetArraySize(hist), 10);
	assert_keys(cJSON_GetArrayItem(hist, 0), summary_keys, ELEMENTSOF(summary_keys));
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 0), "id")->valuestring, "old11");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 9), "id")->valuestring, "old2");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 0), "type")->valuestring, "Preempt");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetArrayItem(hist, 0), "deadline")->valuestring,
			    "2026-11-27T06:30:58Z");
	cJSON_Delete(o);

	/* History counts the outcomes. */
	state_find(&s, "now")->chain_done = true;
	state_find(&s, "now")->hooks[1].outcome = HOOK_TIMEOUT;
	state_find(&s, "now")->approved = true;
	add_record(&s, "newest", true);
	o = state_to_json(&s, "0.1.0");
	hist = cJSON_GetObjectItem(o, "history");
	assert_string_equal(cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetObjectItem(o, "event"), "event"),
						"id")->valuestring, "newest");
	hk = cJSON_GetArrayItem(hist, 0);
	assert_string_equal(cJSON_GetObjectItem(hk, "id")->valuestring, "now");
	assert_int_equal(cJSON_GetObjectItem(hk, "hooks_ok")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(hk, "hooks_timeout")->valuedouble, 1);
	assert_int_equal(cJSON_GetObjectItem(hk, "hooks_failed")->valuedouble, 0);
	assert_int_equal(cJSON_GetObjectItem(hk, "hooks_skipped")->valuedouble, 0);
	cJSON_Delete(o);

	for (int p = 0; p < _PHASE_MAX; p++)
		assert_non_null(agent_phase_to_string((enum agent_phase)p));
	assert_string_equal(agent_phase_to_string(PHASE_PENDING), "pending");
	assert_string_equal(agent_phase_to_string(PHASE_DONE), "done");
	assert_null(agent_phase_to_string(_PHASE_MAX));
	state_done(&s);
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
		cmocka_unit_test(test_corrupt_special),
		cmocka_unit_test(test_every_field_type),
		cmocka_unit_test(test_unusable_dir),
		cmocka_unit_test(test_running_loads_pending),
		cmocka_unit_test(test_record_cap),
		cmocka_unit_test(test_approval_rules),
		cmocka_unit_test(test_load_keeps_newest),
		cmocka_unit_test(test_current),
		cmocka_unit_test(test_to_json),
		cmocka_unit_test(test_save_size_bound),
		cmocka_unit_test(test_save_timing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
