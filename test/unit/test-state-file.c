/* test-state-file.c - the evictions on disk (state-file.c): save and load,
 * the frame with its counter and checksum, the spare a torn state.json
 * falls back to, the fsync a save owes paid before the next one, refusal
 * of a file it did not write (test/data/state/bad-*.json, each with the
 * reason it is refused for in its .expect) and of a record that does not
 * read back (drop-*.json: that record alone, the file copied aside), the
 * size bound on both sides, and random evictions through real files. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <glob.h>

#include <cmocka.h>

#include "record-util.h"
#include "store/state-file.h"

#define DATA_DIR "test/data/state"

/* ---- helpers ---- */

/* A document of recs in dir, without extra. */
static struct state_doc doc_of(const char *dir, const struct records *recs)
{
	return (struct state_doc){ .dir = dir, .records = recs, .extra = NULL };
}

static void save(const char *dir, const struct records *recs)
{
	struct state_doc doc = doc_of(dir, recs);

	assert_int_equal(state_save(&doc, true), 0);
}

/* Loads dir; fails on anything but a clean load. */
static void load_clean(const char *dir, struct records *recs)
{
	struct state_load_report rep;

	assert_int_equal(state_load(dir, recs, &rep), 0);
	if (rep.error || rep.dropped || rep.moved || rep.from_spare)
		fail_msg("not a clean load: error %d (%s), %u dropped (%s), from spare %d", rep.error, rep.reason,
			 rep.dropped, rep.dropped_reason, rep.from_spare);
	state_load_report_done(&rep);
}

/* The "seq" of a state file's text, -1 when it has none. */
static int64_t seq_of(const char *path)
{
	char *text = read_file(path, NULL), *p;
	int64_t seq = -1;

	if (text && (p = strstr(text, "\"seq\":")))
		seq = strtoll(p + 6, NULL, 10);
	free(text);
	return seq;
}

/* The body of a state file's text (caller frees), NULL without one. */
static char *body_of(const char *text)
{
	const char *p = strstr(text, ",\"body\":");
	size_t n;

	if (!p)
		return NULL;
	p += 8;
	n = strlen(p);
	return n > 0 ? xstrndup(p, n - 1) : NULL;
}

static ino_t inode_of(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_ino;
}

static ino_t fd_inode(int fd)
{
	struct stat st;

	assert_int_equal(fstat(fd, &st), 0);
	return st.st_ino;
}

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

/* Writes a state file of body (sum and all) to path. */
static void write_state(const char *path, const char *body, uint64_t seq)
{
	char *text = xasprintf("{\"version\":3,\"seq\":%" PRIu64 ",\"sum\":\"%016" PRIx64 "\",\"body\":%s}", seq,
			       hash_fnv(HASH_FNV_INIT, body, strlen(body)), body);

	write_file(path, text, strlen(text));
	free(text);
}

/* An eviction with two notices, hooks and a recovery, for files. */
static struct eviction *add_rich(struct records *recs, const char *id, enum lifecycle state)
{
	struct eviction *r = add_eviction(recs, id, state);
	struct hook_result *h;
	char other[EVENT_ID_MAX];

	(void)snprintf(other, sizeof(other), "%s-2", id);
	add_notice(r, other)->ev.type = EVENT_FREEZE;
	h = add_hook(r, "10-ok", HOOK_OK);
	hook_result_add_line(h, "done");
	h->report.has_jobs_requeued = true;
	h->report.jobs_requeued = 3;
	add_hook(r, "20-pending", HOOK_PENDING);
	if (state == LC_RECOVERING || state == LC_CLOSED) {
		r->recover_reason = RECOVER_ENDED;
		r->recover_started_wall_usec = T0 + 60 * USEC_PER_SEC;
		add_hook_to(r, CHAIN_RECOVER, "10-back", HOOK_OK);
	}
	return r;
}

static void assert_same_records(const struct records *a, const struct records *b)
{
	char why[160];

	assert_int_equal(a->n, b->n);
	for (size_t i = 0; i < a->n; i++)
		if (!eviction_reads_back(&a->items[i], &b->items[i], why, sizeof(why)))
			fail_msg("record %zu ('%s'): %s", i, a->items[i].id, why);
}

/* ---- save and load ---- */

static void test_round_trip(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *first, *second, *b1, *b2;
	struct records s, t;
	struct state_load_report rep;
	struct state_doc doc;
	cJSON *extra = cJSON_Parse("{\"evidence\":[1,\"two\",null]}");
	struct hook_result *h;

	(void)unused;
	records_init(&s);
	add_rich(&s, "first", LC_CLOSED);
	add_rich(&s, "second", LC_RECOVERING);
	h = add_hook(add_rich(&s, "third", LC_RUNNING), "30-running", HOOK_RUNNING);
	hook_result_add_line(h, "half way");
	doc = doc_of(dir, &s);
	doc.extra = extra;
	assert_int_equal(state_save(&doc, true), 0);

	records_init(&t);
	add_eviction(&t, "replaced-by-load", LC_RUNNING);
	assert_int_equal(state_load(dir, &t, &rep), 0);
	assert_int_equal(rep.error, 0);
	assert_null(rep.moved);
	assert_null(rep.kept);
	assert_false(rep.from_spare);
	assert_int_equal(rep.dropped, 0);
	assert_int_equal(rep.stale_removed, 0);
	assert_true(cJSON_Compare(rep.extra, extra, true));
	state_load_report_done(&rep);
	assert_null(rep.extra);
	assert_same_records(&s, &t);
	assert_int_equal(t.items[2].hooks[2].outcome, HOOK_PENDING);

	/* The hook that was running runs again: it was saved so, and is not
	 * after a load. Saving what was loaded, loading and saving again gives
	 * the same body. */
	first = read_file(p, NULL);
	assert_non_null(strstr(first, "\"result\":\"running\""));
	assert_non_null(strstr(first, ",\"extra\":{\"evidence\":[1,\"two\",null]}}}"));
	free(first);
	save(dir, &t);
	first = read_file(p, NULL);
	assert_null(strstr(first, "\"result\":\"running\""));
	records_done(&t);
	records_init(&t);
	load_clean(dir, &t);
	save(dir, &t);
	second = read_file(p, NULL);
	b1 = body_of(first);
	b2 = body_of(second);
	assert_non_null(b1);
	assert_string_equal(b1, b2);
	assert_int_equal(seq_of(p), 3);
	free(b1);
	free(b2);
	free(first);
	free(second);

	records_done(&t);
	records_done(&s);
	cJSON_Delete(extra);
	free(p);
	remove_tmpdir(dir);
}

/* Every file is private; a save leaves state.json and the spare the next
 * save overwrites, nothing else; the spare holds the save before. */
static void test_files_and_spare(void **unused)
{
	char *top = make_tmpdir(), *dir = path_join(top, "state"), *p, *spare, *names;
	struct records s;
	struct stat st;

	(void)unused;
	records_init(&s);
	add_eviction(&s, "e1", LC_CLOSED);
	/* The directory does not exist yet: a save creates it, private. */
	save(dir, &s);
	assert_int_equal(stat(dir, &st), 0);
	assert_true(S_ISDIR(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0700);
	/* The first save leaves no spare yet. */
	names = list_dir(dir);
	assert_string_equal(names, "state.json");
	free(names);

	p = path_join(dir, STATE_FILE_NAME);
	spare = path_join(dir, STATE_SPARE_NAME);
	for (int i = 0; i < 5; i++) {
		add_eviction(&s, "again", LC_CLOSED);
		save(dir, &s);
		assert_int_equal(seq_of(spare), seq_of(p) - 1);
	}
	assert_int_equal(stat(p, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(lstat(spare, &st), 0);
	assert_true(S_ISREG(st.st_mode));
	assert_int_equal(st.st_mode & 07777, 0600);
	names = list_dir(dir);
	assert_string_equal(names, STATE_SPARE_NAME ",state.json");
	free(names);

	/* A shorter save over a longer spare leaves nothing of the old one. */
	records_done(&s);
	records_init(&s);
	save(dir, &s);
	save(dir, &s);
	{
		char *text = read_file(p, NULL), *sp = read_file(spare, NULL);

		assert_non_null(strstr(text, "\"body\":{\"records\":[],\"extra\":null}}"));
		assert_non_null(strstr(sp, "\"body\":{\"records\":[],\"extra\":null}}"));
		assert_int_equal(strlen(text), strlen(sp));
		free(text);
		free(sp);
	}
	/* Without a directory (a drill) nothing is written. */
	{
		struct state_doc doc = doc_of(NULL, &s);
		struct state_sync sync = STATE_SYNC_INIT;

		assert_int_equal(state_save(&doc, true), 0);
		assert_int_equal(state_save_begin(&doc, &sync), 0);
		assert_int_equal(sync.fd, -1);
		assert_int_equal(sync.seq, 0);
	}
	records_done(&s);
	free(spare);
	free(p);
	free(dir);
	remove_tmpdir(top);
}

/* The save counter grows with every save, and a writer that has not saved
 * yet goes on from the file's. */
static void test_seq(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *text;
	struct state_sync sync = STATE_SYNC_INIT, other = STATE_SYNC_INIT;
	struct records s;
	struct state_doc doc;

	(void)unused;
	records_init(&s);
	doc = doc_of(dir, &s);
	for (uint64_t i = 1; i <= 3; i++) {
		assert_int_equal(state_save_begin(&doc, &sync), 0);
		assert_int_equal(sync.seq, i);
		assert_int_equal(seq_of(p), (int64_t)i);
	}
	assert_int_equal(state_sync_finish(&sync), 0);
	assert_int_equal(sync.seq, 3);           /* the counter stays */
	assert_int_equal(state_save_begin(&doc, &other), 0);
	assert_int_equal(other.seq, 4);
	assert_int_equal(seq_of(p), 4);
	state_sync_drop(&other);
	assert_int_equal(other.fd, -1);
	assert_int_equal(other.seq, 4);
	assert_int_equal(state_save(&doc, false), 0);
	assert_int_equal(seq_of(p), 5);

	/* state_render: the save's text with seq 1, without a file. */
	add_eviction(&s, "r", LC_DONE);
	text = state_render(&doc);
	assert_non_null(text);
	assert_true(strncmp(text, "{\"version\":3,\"seq\":1,\"sum\":\"", 28) == 0);
	{
		struct records t;
		char *body = body_of(text);
		char sum[17];

		records_init(&t);
		assert_int_equal(state_parse_text(&t, text, strlen(text)), 0);
		assert_same_records(&s, &t);
		records_done(&t);
		(void)snprintf(sum, sizeof(sum), "%016" PRIx64, hash_fnv(HASH_FNV_INIT, body, strlen(body)));
		assert_memory_equal(text + 28, sum, 16);
		free(body);
	}
	free(text);
	/* No records at all (NULL). */
	doc.records = NULL;
	text = state_render(&doc);
	assert_non_null(strstr(text, "\"body\":{\"records\":[],\"extra\":null}}"));
	free(text);
	records_done(&s);
	free(p);
	remove_tmpdir(dir);
}

/* A save while the previous one still owes its fsyncs pays them first
 * (its file is whole on disk before its predecessor, the spare, is
 * overwritten), then owes its own: the same two descriptors' worth. */
static void test_sync_owed(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *spare = path_join(dir, STATE_SPARE_NAME);
	struct state_sync sync = STATE_SYNC_INIT;
	struct records s;
	struct state_doc doc;
	char *before, *spare_before;
	ino_t first;
	size_t fds;
	int pipefd[2];

	(void)unused;
	records_init(&s);
	doc = doc_of(dir, &s);
	add_eviction(&s, "e", LC_RUNNING);
	save(dir, &s);
	fds = count_fds();

	assert_int_equal(state_save_begin(&doc, &sync), 0);
	assert_true(sync.fd >= 0 && sync.dfd >= 0);
	assert_true(fcntl(sync.fd, F_GETFD) & FD_CLOEXEC);
	/* It owes the new state.json and the directory. */
	assert_int_equal(fd_inode(sync.fd), inode_of(p));
	first = fd_inode(sync.fd);
	assert_int_equal(count_fds(), fds + 2);

	/* The next save: the file owed is now the spare it overwrites, and its
	 * descriptors went (paid): no more are open than one save owes. */
	add_eviction(&s, "f", LC_RUNNING);
	assert_int_equal(state_save_begin(&doc, &sync), 0);
	assert_int_equal(count_fds(), fds + 2);
	assert_int_equal(fd_inode(sync.fd), inode_of(p));
	assert_int_equal(inode_of(spare), first);
	assert_int_equal(state_sync_finish(&sync), 0);
	assert_int_equal(sync.fd, -1);
	assert_int_equal(sync.dfd, -1);
	assert_int_equal(count_fds(), fds);
	/* Nothing owed: finishing again is a no-op. */
	assert_int_equal(state_sync_finish(&sync), 0);
	state_sync_drop(&sync);

	/* A debt that cannot be paid fails the next save before it touches
	 * either file, and is forgotten. */
	before = read_file(p, NULL);
	spare_before = read_file(spare, NULL);
	assert_int_equal(pipe2(pipefd, O_CLOEXEC), 0);
	sync.fd = pipefd[0];
	sync.dfd = pipefd[1];
	add_eviction(&s, "g", LC_RUNNING);
	assert_int_equal(state_save_begin(&doc, &sync), -EINVAL);
	assert_int_equal(sync.fd, -1);
	assert_int_equal(sync.dfd, -1);
	assert_true(fcntl(pipefd[0], F_GETFD) < 0 && errno == EBADF);
	assert_true(fcntl(pipefd[1], F_GETFD) < 0 && errno == EBADF);
	{
		char *after = read_file(p, NULL), *spare_after = read_file(spare, NULL);

		assert_string_equal(after, before);
		assert_string_equal(spare_after, spare_before);
		free(after);
		free(spare_after);
	}
	assert_int_equal(count_fds(), fds);
	/* The next one goes through. */
	assert_int_equal(state_save_begin(&doc, &sync), 0);
	assert_int_equal(state_sync_finish(&sync), 0);
	{
		struct records t;

		records_init(&t);
		load_clean(dir, &t);
		assert_int_equal(t.n, 3);
		records_done(&t);
	}
	free(before);
	free(spare_before);
	records_done(&s);
	free(spare);
	free(p);
	remove_tmpdir(dir);
}

static void test_stale_temp_file(void **unused)
{
	char *dir = make_tmpdir(), *tmp = path_join(dir, ".state.json.abc123"), *names;
	static const char half[] = "{\"version\":2,\"records\":[{\"event\":{\"id\":\"x";
	struct state_load_report rep;
	struct records s;

	(void)unused;
	/* An older agent's crash between write and rename left its temp file. */
	write_file(tmp, half, sizeof(half) - 1);
	records_init(&s);
	assert_int_equal(state_load(dir, &s, &rep), 0);
	assert_int_equal(rep.stale_removed, 1);
	assert_null(rep.moved);
	assert_int_equal(s.n, 0);
	state_load_report_done(&rep);
	assert_false(file_exists(tmp));

	/* With a good state.json and its spare next to another one: that one
	 * goes, they stay. */
	add_eviction(&s, "kept", LC_CLOSED);
	save(dir, &s);
	save(dir, &s);
	write_file(tmp, half, sizeof(half) - 1);
	records_done(&s);
	records_init(&s);
	assert_int_equal(state_load(dir, &s, &rep), 0);
	assert_int_equal(rep.stale_removed, 1);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.items[0].id, "kept");
	state_load_report_done(&rep);
	names = list_dir(dir);
	assert_string_equal(names, STATE_SPARE_NAME ",state.json");
	free(names);
	records_done(&s);
	free(tmp);
	remove_tmpdir(dir);
}

static void test_missing_and_no_dir(void **unused)
{
	char *top = make_tmpdir(), *dir = path_join(top, "absent");
	struct state_load_report rep;
	struct records s;

	(void)unused;
	records_init(&s);
	add_eviction(&s, "gone-on-load", LC_CLOSED);
	assert_int_equal(state_load(dir, &s, &rep), 0);
	assert_null(rep.moved);
	assert_int_equal(rep.error, 0);
	assert_int_equal(s.n, 0);
	assert_false(file_exists(dir));   /* loading creates nothing */
	state_load_report_done(&rep);

	/* No state directory (a drill): nothing is read. */
	add_eviction(&s, "drill", LC_CLOSED);
	assert_int_equal(state_load(NULL, &s, &rep), 0);
	assert_int_equal(s.n, 0);
	state_load_report_done(&rep);
	records_done(&s);
	free(dir);
	remove_tmpdir(top);
}

/* ---- files it did not write ---- */

static char *expect_of(const char *json_path)
{
	char *p = xasprintf("%.*s.expect", (int)(strlen(json_path) - strlen(".json")), json_path);
	char *text = read_file(p, NULL);

	if (!text)
		fail_msg("missing '%s'", p);
	text[strcspn(text, "\n")] = '\0';
	free(p);
	return text;
}

/* Loads dir/state.json and expects it refused for why, moved aside, and an
 * empty state that the next save replaces. */
static void expect_moved_aside(const char *dir, const char *what, int want_error, const char *why)
{
	struct state_load_report rep;
	struct records s;
	char *p = path_join(dir, STATE_FILE_NAME), *prefix;

	records_init(&s);
	add_eviction(&s, "dropped-by-load", LC_CLOSED);
	assert_int_equal(state_load(dir, &s, &rep), 0);
	if (!rep.moved)
		fail_msg("%s: not moved aside", what);
	if (rep.error != want_error)
		fail_msg("%s: error %d, want %d", what, rep.error, want_error);
	if (why && strcmp(rep.reason, why) != 0)
		fail_msg("%s: reason '%s', want '%s'", what, rep.reason, why);
	assert_false(rep.from_spare);
	assert_int_equal(s.n, 0);
	assert_null(records_current(&s));
	prefix = xasprintf("%s/state.json.corrupt-", dir);
	assert_true(strncmp(rep.moved, prefix, strlen(prefix)) == 0);
	assert_true(file_exists(rep.moved));
	assert_false(file_exists(p));
	state_load_report_done(&rep);

	/* The agent carries on: the next save works and loads back. */
	add_eviction(&s, "after", LC_CLOSED);
	save(dir, &s);
	records_done(&s);
	records_init(&s);
	load_clean(dir, &s);
	assert_int_equal(s.n, 1);
	records_done(&s);
	free(prefix);
	free(p);
}

static void test_good_data_file(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *stdin_text;
	const struct notice *n;
	struct eviction *r;
	struct records s;

	(void)unused;
	/* The bad-* and drop-* files are this one with one thing changed. */
	copy_file(DATA_DIR "/good.json", p);
	records_init(&s);
	load_clean(dir, &s);
	assert_int_equal(s.n, 1);
	r = &s.items[0];
	assert_string_equal(r->id, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
	assert_int_equal(r->state, LC_DONE);
	assert_int_equal(r->state_since_wall_usec, T0 + 3 * USEC_PER_SEC);
	assert_int_equal(r->detected_wall_usec, T0);
	assert_int_equal(r->deadline_wall_usec, T0 + 28 * USEC_PER_SEC);
	assert_string_equal(r->boot, "0a1b2c3d4e5f6071");
	assert_int_equal(r->chain_ended_wall_usec, T0 + 2 * USEC_PER_SEC);
	assert_int_equal(r->last_alive_wall_usec, T0 + 3 * USEC_PER_SEC);
	assert_false(r->emergency);
	assert_false(r->drill);
	assert_false(r->empty_plan);
	assert_int_equal(r->n_notices, 2);
	n = &r->notices[0];
	assert_string_equal(n->ev.id, r->id);
	assert_int_equal(n->ev.type, EVENT_PREEMPT);
	assert_int_equal(n->ev.not_before_usec, T0 + 30 * USEC_PER_SEC);
	assert_int_equal(n->ev.duration_sec, -1);
	assert_int_equal(n->ev.feed, FEED_AZURE_SCHEDULED);
	assert_true(n->ev.needs_ack);
	assert_int_equal(n->ev.end, END_NONE);
	assert_string_equal(n->key, "");
	/* Started now; the hook read it Scheduled. */
	assert_int_equal(n->ev.status, EVENT_STARTED);
	assert_true(n->started);
	assert_true(r->seen.set);
	assert_int_equal(r->seen.status, EVENT_SCHEDULED);
	assert_int_equal(r->seen.deadline_wall_usec, T0 + 28 * USEC_PER_SEC);
	assert_int_equal(n->ack, ACK_SENT);
	assert_int_equal(n->policy, ACK_AFTER_HOOKS);
	assert_int_equal(n->acked_wall_usec, T0 + 3 * USEC_PER_SEC);
	assert_int_equal(n->ack_attempts, 1);
	n = &r->notices[1];
	assert_string_equal(n->ev.id, "9D0E1F2A-3B4C-4D5E-8F60-718293A4B5C6");
	assert_int_equal(n->ev.type, EVENT_FREEZE);
	assert_int_equal(n->ev.duration_sec, 9);
	assert_int_equal(n->first_seen_wall_usec, T0 + USEC_PER_SEC);
	assert_int_equal(r->n_hooks, 1);
	assert_int_equal(r->hooks[0].outcome, HOOK_OK);
	assert_int_equal(r->hooks[0].exit_status, 0);
	assert_int_equal(r->hooks[0].term_signal, 0);
	assert_int_equal(r->hooks[0].duration_usec, 1234567);
	assert_int_equal(r->hooks[0].n_output, 2);
	assert_int_equal(report_keys_of(&r->hooks[0].report), 1u << REPORT_CHECKPOINT_BYTES);
	assert_int_equal(r->hooks[0].report.checkpoint_bytes, 1048576);
	assert_string_equal(r->hooks[0].skip_reason, "");
	assert_int_equal(r->recover_reason, RECOVER_NONE);
	assert_int_equal(r->n_recover_hooks, 0);
	/* What the hook read on stdin, as it read it. */
	stdin_text = record_stdin(r);
	assert_non_null(strstr(stdin_text, "\"status\":\"Scheduled\""));
	free(stdin_text);
	records_done(&s);
	free(p);
	remove_tmpdir(dir);
}

/* Every bad-*.json is refused as a whole for the reason in its .expect. */
static void test_corrupt_data_files(void **unused)
{
	glob_t g;
	int n = 0;

	(void)unused;
	assert_int_equal(glob(DATA_DIR "/bad-*.json", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *why = expect_of(g.gl_pathv[i]);

		copy_file(g.gl_pathv[i], p);
		expect_moved_aside(dir, g.gl_pathv[i], -EBADMSG, why);
		n++;
		free(why);
		free(p);
		remove_tmpdir(dir);
	}
	globfree(&g);
	print_message("corrupt data files checked: %d\n", n);
	assert_true(n >= 32);
}

/* A file with one record that does not read back: that record is left out
 * for the reason in its .expect, the other kept, the file as it was copied
 * aside for a human. */
static void test_dropped_data_files(void **unused)
{
	glob_t g;
	int n = 0;

	(void)unused;
	assert_int_equal(glob(DATA_DIR "/drop-*.json", 0, NULL, &g), 0);
	for (size_t i = 0; i < g.gl_pathc; i++) {
		char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *original, *copy;
		char *why = expect_of(g.gl_pathv[i]);
		struct state_load_report rep;
		struct records s;

		copy_file(g.gl_pathv[i], p);
		original = read_file(p, NULL);
		records_init(&s);
		assert_int_equal(state_load(dir, &s, &rep), 0);
		if (rep.error || rep.moved)
			fail_msg("%s: refused as a whole (%s)", g.gl_pathv[i], rep.reason);
		if (s.n != 1 || rep.dropped != 1)
			fail_msg("%s: %zu records kept, %u dropped", g.gl_pathv[i], s.n, rep.dropped);
		assert_string_equal(s.items[0].id, "the-good-one");
		if (strcmp(rep.dropped_reason, why) != 0)
			fail_msg("%s: reason '%s', want '%s'", g.gl_pathv[i], rep.dropped_reason, why);
		assert_non_null(rep.kept);
		copy = read_file(rep.kept, NULL);
		assert_string_equal(copy, original);
		state_load_report_done(&rep);
		/* The file itself stays until the next save replaces it. */
		assert_true(file_exists(p));
		save(dir, &s);
		records_done(&s);
		records_init(&s);
		load_clean(dir, &s);
		assert_int_equal(s.n, 1);
		records_done(&s);
		free(copy);
		free(original);
		free(why);
		free(p);
		remove_tmpdir(dir);
		n++;
	}
	globfree(&g);
	print_message("data files with a bad record checked: %d\n", n);
	assert_true(n >= 40);
}

/* The body of an empty state file, padded inside with spaces to make the
 * whole file len bytes. Caller frees. */
static char *padded_body(size_t len)
{
	static const char head[] = "{\"records\":[", tail[] = "],\"extra\":null}";
	size_t frame = strlen("{\"version\":3,\"seq\":1,\"sum\":\"0123456789abcdef\",\"body\":}");
	size_t n = len - frame;
	char *body = xmalloc(n + 1);

	memset(body, ' ', n);
	memcpy(body, head, sizeof(head) - 1);
	memcpy(body + n - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
	body[n] = '\0';
	return body;
}

static void test_corrupt_special(void **unused)
{
	char *dir, *p, *body;
	struct records s;
	struct stat st;

	(void)unused;
	/* Larger than STATE_FILE_MAX, valid as it is: refused for its size. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	body = padded_body(STATE_FILE_MAX + 1);
	write_state(p, body, 1);
	free(body);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, STATE_FILE_MAX + 1);
	expect_moved_aside(dir, "too large", -EFBIG, "");
	free(p);
	remove_tmpdir(dir);

	/* Exactly at the limit it is read. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	body = padded_body(STATE_FILE_MAX);
	write_state(p, body, 1);
	free(body);
	assert_int_equal(stat(p, &st), 0);
	assert_int_equal(st.st_size, STATE_FILE_MAX);
	records_init(&s);
	load_clean(dir, &s);
	assert_true(file_exists(p));
	records_done(&s);
	free(p);
	remove_tmpdir(dir);

	/* A directory in its place. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(mkdir(p, 0700), 0);
	expect_moved_aside(dir, "directory", -EBADMSG, "not a regular file");
	free(p);
	remove_tmpdir(dir);

	/* A FIFO in its place must not hang the load. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(mkfifo(p, 0600), 0);
	expect_moved_aside(dir, "fifo", -EBADMSG, "not a regular file");
	free(p);
	remove_tmpdir(dir);

	/* A symbolic link is never followed, even to a good file. */
	dir = make_tmpdir();
	p = path_join(dir, STATE_FILE_NAME);
	{
		char *target = path_join(dir, "elsewhere.json");

		copy_file(DATA_DIR "/good.json", target);
		assert_int_equal(symlink(target, p), 0);
		expect_moved_aside(dir, "symlink", -ELOOP, "a symbolic link, which is never followed");
		assert_true(file_exists(target));
		free(target);
	}
	free(p);
	remove_tmpdir(dir);
}

static void test_unusable_dir(void **unused)
{
	char *top = make_tmpdir(), *file = path_join(top, "file"), *under = path_join(file, "state");
	struct state_load_report rep;
	struct records s;
	struct state_doc doc;

	(void)unused;
	write_file(file, "x", 1);
	records_init(&s);
	add_eviction(&s, "e", LC_CLOSED);

	/* A directory below a regular file: ENOTDIR whatever our privileges. */
	doc = doc_of(under, &s);
	assert_int_equal(state_save(&doc, true), -ENOTDIR);
	assert_int_equal(state_load(under, &s, &rep), -ENOTDIR);
	assert_null(rep.moved);
	state_load_report_done(&rep);

	/* The state directory is itself a regular file. */
	add_eviction(&s, "e", LC_CLOSED);
	doc = doc_of(file, &s);
	assert_int_equal(state_save(&doc, true), -ENOTDIR);
	assert_int_equal(state_load(file, &s, &rep), -ENOTDIR);
	state_load_report_done(&rep);

	/* A spare that is not a regular file is never written through. */
	{
		char *dir = path_join(top, "d"), *spare;

		assert_int_equal(mkdir(dir, 0700), 0);
		spare = path_join(dir, STATE_SPARE_NAME);
		assert_int_equal(mkfifo(spare, 0600), 0);
		doc = doc_of(dir, &s);
		assert_int_equal(state_save(&doc, true), -EEXIST);
		{
			struct stat st;
			char *names = list_dir(dir);

			assert_int_equal(lstat(spare, &st), 0);
			assert_true(S_ISFIFO(st.st_mode));
			assert_string_equal(names, STATE_SPARE_NAME);
			free(names);
		}
		free(spare);
		free(dir);
	}
	/* Nothing was left in the top directory but the file and that one. */
	{
		char *names = list_dir(top);

		assert_string_equal(names, "d,file");
		free(names);
	}
	records_done(&s);
	free(under);
	free(file);
	remove_tmpdir(top);
}

/* ---- a torn state.json and its spare ---- */

/* The ways a crash of the machine leaves a file: cut short, bytes not
 * what were written, blocks of zeros. */
enum tear {
	TEAR_TRUNCATE,
	TEAR_FLIP,
	TEAR_ZEROS,
	TEAR_EMPTY,
	_TEAR_MAX,
};

static void tear(const char *path, enum tear how)
{
	size_t n;
	char *text = read_file(path, &n);

	assert_non_null(text);
	switch (how) {
	case TEAR_TRUNCATE:
		n = n * 2 / 3;
		break;
	case TEAR_FLIP:
		/* Inside the body, where only the sum tells. */
		for (size_t i = n / 2; i < n / 2 + 8; i++)
			text[i] ^= 0x01;
		break;
	case TEAR_ZEROS:
		memset(text + n / 2, 0, n - n / 2);
		break;
	default:
		n = 0;
		break;
	}
	write_file(path, text, n);
	free(text);
}

/* Three saves: state.json holds the third, the spare the second. */
static void three_saves(const char *dir, struct records *s, struct records *second)
{
	save(dir, s);
	add_rich(s, "two", LC_RUNNING);
	save(dir, s);
	records_init(second);
	load_clean(dir, second);
	add_rich(s, "three", LC_RUNNING);
	save(dir, s);
}

static void test_torn_with_spare(void **unused)
{
	(void)unused;
	for (int how = 0; how < _TEAR_MAX; how++) {
		char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *spare = path_join(dir, STATE_SPARE_NAME);
		struct state_load_report rep;
		struct records s, second, t;
		char *spare_text, *names, *want;

		records_init(&s);
		add_rich(&s, "one", LC_CLOSED);
		three_saves(dir, &s, &second);
		assert_int_equal(seq_of(p), 3);
		assert_int_equal(seq_of(spare), 2);
		spare_text = read_file(spare, NULL);
		tear(p, (enum tear)how);

		records_init(&t);
		assert_int_equal(state_load(dir, &t, &rep), 0);
		assert_true(rep.from_spare);
		assert_int_equal(rep.error, -EBADMSG);
		if (how == TEAR_FLIP)
			assert_string_equal(rep.reason, "torn: its checksum does not match its contents");
		assert_non_null(rep.reason[0] ? rep.reason : NULL);
		assert_int_equal(rep.dropped, 0);
		assert_null(rep.kept);
		/* The save before the torn one. */
		assert_same_records(&second, &t);
		/* The torn file went aside; the spare is state.json now, as it was. */
		assert_non_null(rep.moved);
		want = xasprintf("%s/state.json.corrupt-", dir);
		assert_true(strncmp(rep.moved, want, strlen(want)) == 0);
		assert_true(file_exists(rep.moved));
		free(want);
		assert_false(file_exists(spare));
		{
			char *now = read_file(p, NULL);

			assert_string_equal(now, spare_text);
			free(now);
		}
		names = list_dir(dir);
		assert_true(strncmp(names, "state.json,state.json.corrupt-", 30) == 0);
		free(names);
		state_load_report_done(&rep);

		/* The next writer goes on from the spare's counter. */
		save(dir, &t);
		assert_int_equal(seq_of(p), 3);
		records_done(&t);
		records_init(&t);
		load_clean(dir, &t);
		assert_same_records(&second, &t);
		records_done(&t);
		records_done(&second);
		records_done(&s);
		free(spare_text);
		free(spare);
		free(p);
		remove_tmpdir(dir);
	}
}

/* Both torn: an empty state, state.json aside; a good state.json with a
 * torn spare: state.json, the spare left for the next save; no spare. */
static void test_torn_both(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *spare = path_join(dir, STATE_SPARE_NAME);
	struct state_load_report rep;
	struct records s, second, t;

	(void)unused;
	records_init(&s);
	add_rich(&s, "one", LC_CLOSED);
	three_saves(dir, &s, &second);
	tear(p, TEAR_FLIP);
	tear(spare, TEAR_TRUNCATE);
	records_init(&t);
	add_eviction(&t, "replaced", LC_RUNNING);
	assert_int_equal(state_load(dir, &t, &rep), 0);
	assert_false(rep.from_spare);
	assert_int_equal(rep.error, -EBADMSG);
	assert_string_equal(rep.reason, "torn: its checksum does not match its contents");
	assert_non_null(rep.moved);
	assert_int_equal(t.n, 0);
	assert_false(file_exists(p));
	state_load_report_done(&rep);
	/* The next save works and loads back. */
	add_eviction(&t, "after", LC_RUNNING);
	save(dir, &t);
	records_done(&t);
	records_init(&t);
	load_clean(dir, &t);
	assert_int_equal(t.n, 1);
	records_done(&t);
	records_done(&second);
	records_done(&s);

	/* A good state.json wins over a torn spare, which stays as it is. */
	records_init(&s);
	add_rich(&s, "one", LC_CLOSED);
	save(dir, &s);
	save(dir, &s);
	tear(spare, TEAR_ZEROS);
	records_init(&t);
	load_clean(dir, &t);
	assert_same_records(&s, &t);
	assert_true(file_exists(spare));
	records_done(&t);

	/* A torn state.json without a spare: empty, moved aside. */
	assert_int_equal(unlink(spare), 0);
	tear(p, TEAR_TRUNCATE);
	expect_moved_aside(dir, "torn without a spare", -EBADMSG, "torn or not a spot-agent state file");
	records_done(&s);
	free(spare);
	free(p);
	remove_tmpdir(dir);
}

/* A spare with a record that does not read back: that record is left out,
 * the others come from the spare. */
static void test_spare_with_dropped_record(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *spare = path_join(dir, STATE_SPARE_NAME);
	struct state_load_report rep;
	struct records t;
	char *text;

	(void)unused;
	copy_file(DATA_DIR "/drop-lifecycle-unknown.json", spare);
	copy_file(DATA_DIR "/bad-sum-mismatch.json", p);
	records_init(&t);
	assert_int_equal(state_load(dir, &t, &rep), 0);
	assert_true(rep.from_spare);
	assert_int_equal(rep.dropped, 1);
	assert_string_equal(rep.dropped_reason,
			    "record 1 ('6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B'): 'lifecycle' is 'evicting'");
	assert_int_equal(t.n, 1);
	assert_string_equal(t.items[0].id, "the-good-one");
	text = read_file(p, NULL);
	assert_non_null(strstr(text, "\"evicting\""));
	free(text);
	state_load_report_done(&rep);
	records_done(&t);
	free(spare);
	free(p);
	remove_tmpdir(dir);
}

/* ---- bounds ---- */

static void add_bulky(struct records *s, const char *id, enum lifecycle state, int n_hooks, const char *line)
{
	struct eviction *r = add_eviction(s, id, state);

	for (int i = 0; i < n_hooks; i++) {
		char name[32];
		struct hook_result *h;

		snprintf(name, sizeof(name), "%02d-bulky", i);
		h = add_hook(r, name, HOOK_OK);
		for (int j = 0; j < HOOK_OUTPUT_LINES; j++)
			hook_result_add_line(h, line);
	}
}

static void test_save_size_bound(void **unused)
{
	char *dir = make_tmpdir(), *p = path_join(dir, STATE_FILE_NAME), *before, *after;
	char *ctl = xmalloc(1001);    /* 1000 bytes, 6000 once escaped as \u0001 */
	struct records s;
	struct stat st;

	(void)unused;
	memset(ctl, 0x01, 1000);
	ctl[1000] = '\0';

	/* Closed evictions lose their output lines, the open one keeps them. */
	records_init(&s);
	add_bulky(&s, "done-1", LC_CLOSED, 20, ctl);
	add_bulky(&s, "done-2", LC_CLOSED, 20, ctl);
	add_bulky(&s, "current", LC_RUNNING, 2, "small line");
	save(dir, &s);
	assert_int_equal(stat(p, &st), 0);
	assert_true(st.st_size <= STATE_FILE_MAX);
	records_done(&s);
	records_init(&s);
	load_clean(dir, &s);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.items[0].n_hooks, 20);
	assert_int_equal(s.items[0].hooks[19].n_output, 0);
	assert_int_equal(s.items[0].hooks[19].outcome, HOOK_OK);
	assert_int_equal(s.items[2].hooks[1].n_output, HOOK_OUTPUT_LINES);
	records_done(&s);

	/* Even the open eviction's lines go when they alone are too many. */
	records_init(&s);
	add_bulky(&s, "current", LC_RUNNING, 30, ctl);
	save(dir, &s);
	records_done(&s);
	records_init(&s);
	load_clean(dir, &s);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.items[0].n_hooks, 30);
	assert_int_equal(s.items[0].hooks[0].n_output, 0);

	/* Beyond that the save fails and the previous file stays intact. */
	before = read_file(p, NULL);
	for (int k = 0; k < 2; k++) {
		struct eviction *r = add_eviction(&s, k ? "huge-2" : "huge-1", LC_RUNNING);

		for (int i = 0; i < RECORD_HOOKS_MAX; i++) {
			struct hook_result *h = add_hook(r, "x", HOOK_PENDING);

			memset(h->path, 'p', PATH_MAX - 1);
			h->path[PATH_MAX - 1] = '\0';
		}
	}
	{
		struct state_doc doc = doc_of(dir, &s);

		assert_null(state_render(&doc));
		assert_int_equal(state_save(&doc, true), -EFBIG);
	}
	after = read_file(p, NULL);
	assert_string_equal(before, after);
	{
		char *names = list_dir(dir);

		assert_string_equal(names, STATE_SPARE_NAME ",state.json");
		free(names);
	}
	records_done(&s);
	free(before);
	free(after);
	free(ctl);
	free(p);
	remove_tmpdir(dir);
}

/* A file holds as many records as it holds; a load keeps the newest
 * RECORDS_MAX of them. */
static void test_load_keeps_newest(void **unused)
{
	char *dir = make_tmpdir(), id[32];
	struct records s;

	(void)unused;
	records_init(&s);
	for (int i = 0; i < RECORDS_MAX + 5; i++) {
		snprintf(id, sizeof(id), "u%d", i);
		add_eviction(&s, id, LC_RUNNING);
	}
	save(dir, &s);
	records_done(&s);
	records_init(&s);
	load_clean(dir, &s);
	assert_int_equal(s.n, RECORDS_MAX);
	assert_string_equal(s.items[0].id, "u5");
	snprintf(id, sizeof(id), "u%d", RECORDS_MAX + 4);
	assert_string_equal(s.items[RECORDS_MAX - 1].id, id);
	records_done(&s);
	remove_tmpdir(dir);
}

/* state_parse_text checks text as state_load checks a file, and leaves the
 * records alone when it refuses. */
static void test_parse_text(void **unused)
{
	struct records s;
	char *good, *text;
	size_t n;

	(void)unused;
	good = read_file(DATA_DIR "/good.json", &n);
	assert_non_null(good);
	records_init(&s);
	add_eviction(&s, "kept", LC_RUNNING);
	assert_int_equal(state_parse_text(&s, good, n - 1), -EBADMSG);   /* one byte short */
	assert_int_equal(s.n, 1);
	assert_string_equal(s.items[0].id, "kept");
	assert_int_equal(state_parse_text(&s, "", 0), -EBADMSG);
	assert_int_equal(state_parse_text(&s, good, STATE_FILE_MAX + 1), -EFBIG);
	assert_int_equal(s.n, 1);
	/* Not NUL-terminated: only len counts. */
	text = xmalloc(n + 8);
	memcpy(text, good, n);
	memcpy(text + n, "garbage!", 8);
	assert_int_equal(state_parse_text(&s, text, n), 0);
	assert_int_equal(s.n, 1);
	assert_string_equal(s.items[0].id, "6B2F6E4A-1C2D-4E5F-8A9B-0C1D2E3F4A5B");
	free(text);
	/* A frame cut in a number: read up to len, never past it (an exactly
	 * sized buffer, for the sanitizers). */
	{
		static const char *const cuts[] = {
			"{\"version\":3", "{\"version\":3,\"seq\":66", "{\"version\":3,\"seq\":66,\"sum\":\"0123",
		};

		for (size_t i = 0; i < ELEMENTSOF(cuts); i++) {
			size_t k = strlen(cuts[i]);

			text = xmalloc(k);
			memcpy(text, cuts[i], k);
			assert_int_equal(state_parse_text(&s, text, k), -EBADMSG);
			free(text);
		}
		assert_int_equal(s.n, 1);
	}
	free(good);
	records_done(&s);
}

/* ---- property: random evictions through real files ---- */

#define FILE_PROP_ITERATIONS 150
#define FILE_PROP_SEED       UINT64_C(0x5107a6e2025)

static void test_property_files(void **unused)
{
	uint64_t base = env_u64("SPOT_STATE_SEED", FILE_PROP_SEED);
	uint64_t iterations = env_u64("SPOT_STATE_FILE_ITERATIONS", FILE_PROP_ITERATIONS);
	char *dir = make_tmpdir(), why[STATE_REASON_MAX + 32];

	(void)unused;
	for (uint64_t i = 0; i < iterations; i++) {
		uint64_t seed = base + i * UINT64_C(0x9e3779b97f4a7c15);
		struct rng r = { seed };
		struct records s, t;
		struct state_load_report rep;
		size_t count = 1 + rng_below(&r, 3);
		bool ok = true;

		records_init(&s);
		for (size_t k = 0; k < count; k++) {
			struct eviction rec;

			/* Small enough that no output lines are shed to fit the cap. */
			rng_eviction(&r, &rec, (int)(i * 10 + k), 4);
			(void)records_add(&s, &rec);
		}
		{
			struct state_doc doc = doc_of(dir, &s);

			assert_int_equal(state_save(&doc, false), 0);
		}
		records_init(&t);
		assert_int_equal(state_load(dir, &t, &rep), 0);
		if (rep.error || rep.dropped) {
			(void)snprintf(why, sizeof(why), "%s", rep.error ? rep.reason : rep.dropped_reason);
			ok = false;
		} else if (t.n != s.n) {
			(void)snprintf(why, sizeof(why), "%zu records, not %zu", t.n, s.n);
			ok = false;
		}
		for (size_t k = 0; ok && k < s.n; k++)
			ok = eviction_reads_back(&s.items[k], &t.items[k], why, sizeof(why));
		state_load_report_done(&rep);
		records_done(&t);
		records_done(&s);
		if (!ok)
			fail_msg("iteration %" PRIu64 " of seed %#" PRIx64 ": %s (alone: SPOT_STATE_SEED=%#" PRIx64
				 " SPOT_STATE_FILE_ITERATIONS=1)", i, base, why, seed);
	}
	print_message("property: %" PRIu64 " random files read back (seed %#" PRIx64 ")\n", iterations, base);
	remove_tmpdir(dir);
}

/* ---- cost of a save (printed, not asserted) ---- */

static void test_save_timing(void **unused)
{
	char *dir = make_tmpdir(), *p;
	struct state_sync sync = STATE_SYNC_INIT;
	struct records s;
	struct eviction *r;
	struct state_doc doc;
	uint64_t start, total;
	struct stat st;
	const int rounds = 100;

	(void)unused;
	records_init(&s);
	for (int i = 0; i < 4; i++) {
		char id[32];

		snprintf(id, sizeof(id), "older-%d", i);
		add_rich(&s, id, LC_CLOSED);
	}
	/* A realistic current eviction: eight hooks with full output rings. */
	r = add_eviction(&s, "timed", LC_RUNNING);
	for (int i = 0; i < 8; i++) {
		char name[32];
		struct hook_result *h;

		snprintf(name, sizeof(name), "%02d-hook", i * 10);
		h = add_hook(r, name, i < 4 ? HOOK_OK : HOOK_PENDING);
		for (int j = 0; j < HOOK_OUTPUT_LINES; j++)
			hook_result_add_line(h, "a typical line of hook output, about eighty characters long...");
	}
	doc = doc_of(dir, &s);
	start = now_usec(CLOCK_MONOTONIC);
	for (int i = 0; i < rounds; i++) {
		assert_int_equal(state_save_begin(&doc, &sync), 0);
		assert_int_equal(state_sync_finish(&sync), 0);
	}
	total = now_usec(CLOCK_MONOTONIC) - start;
	p = path_join(dir, STATE_FILE_NAME);
	assert_int_equal(stat(p, &st), 0);
	print_message("state_save: %d saves of %lld bytes, average %.3f ms\n",
		      rounds, (long long)st.st_size, (double)total / rounds / 1000.0);
	free(p);
	records_done(&s);
	remove_tmpdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_files_and_spare),
		cmocka_unit_test(test_seq),
		cmocka_unit_test(test_sync_owed),
		cmocka_unit_test(test_stale_temp_file),
		cmocka_unit_test(test_missing_and_no_dir),
		cmocka_unit_test(test_good_data_file),
		cmocka_unit_test(test_corrupt_data_files),
		cmocka_unit_test(test_dropped_data_files),
		cmocka_unit_test(test_corrupt_special),
		cmocka_unit_test(test_unusable_dir),
		cmocka_unit_test(test_torn_with_spare),
		cmocka_unit_test(test_torn_both),
		cmocka_unit_test(test_spare_with_dropped_record),
		cmocka_unit_test(test_save_size_bound),
		cmocka_unit_test(test_load_keeps_newest),
		cmocka_unit_test(test_parse_text),
		cmocka_unit_test(test_property_files),
		cmocka_unit_test(test_save_timing),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
