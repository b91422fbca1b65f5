/* fuzz-state.c - libFuzzer target for the state file reader
 * (state_parse_text, what state_load applies to state.json). Any bytes are
 * read or refused, never crash; refused text leaves the records alone; an
 * accepted file holds at most STATE_RECORDS_MAX records and no hook still
 * running; /v1/status renders from it as JSON text that parses; and what
 * state_save writes of it loads back (state_load, the real file path) and
 * saves to the same bytes again. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "store/state.h"
#include "util.h"

/* A private directory for the saved files (under $TMPDIR, else /tmp),
 * removed at exit. */
static char *dir;
static char *file;

static void remove_dir(void)
{
	(void)unlink(file);
	(void)rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	dir = xasprintf("%s/spot-fuzz-state.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fuzz_assert(mkdtemp(dir));
	file = xasprintf("%s/%s", dir, STATE_FILE_NAME);
	(void)atexit(remove_dir);
	return 0;
}

/* The bytes of the state file in dir. Caller frees. */
static char *read_file(size_t *ret_len)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	size_t cap = STATE_FILE_MAX + 1, len = 0;
	char *buf = xmalloc(cap + 1);
	ssize_t k;

	fuzz_assert(fd >= 0);
	while ((k = read(fd, buf + len, cap - len)) > 0)
		len += (size_t)k;
	fuzz_assert(k == 0 && len <= STATE_FILE_MAX);
	close(fd);
	buf[len] = '\0';
	*ret_len = len;
	return buf;
}

static void check_status(const struct agent_state *s)
{
	cJSON *j = state_to_json(s, "fuzz"), *back;
	char *text;

	fuzz_assert(j);
	text = cJSON_Print(j);
	fuzz_assert(text);
	back = cJSON_ParseWithLength(text, strlen(text));
	fuzz_assert(cJSON_IsObject(back));
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(j);
}

/* Saves s, checks the file loads back whole, and returns its bytes (caller
 * frees); *loaded gets what was loaded (state_done). Without fsync: the
 * files are the kernel's either way, and this runs per input. */
static char *save_load(const struct agent_state *s, struct agent_state *loaded, size_t *ret_len)
{
	char *text, *moved = NULL;

	fuzz_assert(state_save_opt(s, false) == 0);
	text = read_file(ret_len);
	state_init(loaded, dir);
	fuzz_assert(state_load(loaded, &moved) == 0);
	fuzz_assert(!moved);
	fuzz_assert(loaded->n_records == s->n_records);
	return text;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_state s, s2, s3;
	char *text1, *text2;
	size_t len1, len2;
	int r;

	state_init(&s, dir);
	r = state_parse_text(&s, (const char *)data, size);
	fuzz_assert(r == 0 || r == -EBADMSG || r == -EFBIG);
	if (r < 0) {
		fuzz_assert(s.n_records == 0 && !s.records);
		state_done(&s);
		return 0;
	}
	fuzz_assert(s.n_records <= STATE_RECORDS_MAX);
	for (size_t i = 0; i < s.n_records; i++) {
		const struct event_record *rec = &s.records[i];

		fuzz_assert(event_id_valid(rec->ev.id));
		fuzz_assert(rec->n_hooks <= STATE_RECORD_HOOKS_MAX);
		for (size_t j = 0; j < rec->n_hooks; j++) {
			fuzz_assert(rec->hooks[j].outcome != HOOK_RUNNING);
			fuzz_assert(rec->hooks[j].n_output <= HOOK_OUTPUT_LINES);
		}
	}
	check_status(&s);

	/* Saved and loaded, saved again: the same bytes. */
	text1 = save_load(&s, &s2, &len1);
	text2 = save_load(&s2, &s3, &len2);
	fuzz_assert(len1 == len2 && memcmp(text1, text2, len1) == 0);
	free(text2);
	free(text1);
	state_done(&s3);
	state_done(&s2);
	state_done(&s);
	return 0;
}
