/* fuzz-state.c - libFuzzer target for the state file reader
 * (state_parse_text, what state_load applies to state.json). Any bytes are
 * read or refused, never crash; refused text leaves the records alone; an
 * accepted file holds at most RECORDS_MAX evictions, each with a valid id,
 * one to RECORD_NOTICES_MAX notices and no hook still running; /v1/status
 * renders from it as JSON text that parses; what parses re-renders
 * (state_render) and re-parses to the same bytes; and what state_save
 * writes of it loads back whole (state_load, the real file path), its body
 * the rendered one. Each input is tried as it is and, when it has the
 * frame's shape, with its sum made right: a mutation inside the body then
 * reaches the record reader instead of failing the checksum. */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fuzz-util.h"
#include "http/status.h"
#include "store/state-file.h"
#include "util.h"

/* A private directory for the saved files (under $TMPDIR, else /tmp),
 * removed at exit. */
static char *dir;
static char *file;
static char *spare;

static void remove_dir(void)
{
	(void)unlink(file);
	(void)unlink(spare);
	(void)rmdir(dir);
}

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	const char *tmp = getenv("TMPDIR");

	dir = xasprintf("%s/spot-fuzz-state.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	fuzz_assert(mkdtemp(dir));
	file = xasprintf("%s/%s", dir, STATE_FILE_NAME);
	spare = xasprintf("%s/%s", dir, STATE_SPARE_NAME);
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

/* The body of a state file's text: from after "body": to the last byte. */
static const char *body_of(const char *text, size_t *ret_len)
{
	const char *p = strstr(text, ",\"body\":");

	fuzz_assert(p);
	p += 8;
	*ret_len = strlen(p) - 1;
	return p;
}

static void check_status(const struct records *recs)
{
	struct agent_state s;
	cJSON *j, *back;
	char *text;

	agent_state_init(&s);
	s.records = recs;
	j = status_to_json(&s, "fuzz");
	fuzz_assert(j);
	text = cJSON_Print(j);
	fuzz_assert(text);
	back = cJSON_ParseWithLength(text, strlen(text));
	fuzz_assert(cJSON_IsObject(back));
	cJSON_Delete(back);
	free(text);
	cJSON_Delete(j);
	agent_state_done(&s);
}

static void check_hooks(const struct hook_result *hooks, size_t n)
{
	fuzz_assert(n <= RECORD_HOOKS_MAX);
	for (size_t j = 0; j < n; j++) {
		fuzz_assert(hooks[j].outcome != HOOK_RUNNING);
		fuzz_assert(hooks[j].n_output <= HOOK_OUTPUT_LINES);
	}
}

static void check_text(const char *data, size_t size);

/* The input with its "sum" made right, when it has the frame's shape
 * (caller frees); NULL when it has not. Exactly size bytes, no NUL. */
static char *sealed(const uint8_t *data, size_t size)
{
	static const char sum[] = ",\"sum\":\"", body[] = "\",\"body\":";
	const uint8_t *p = memmem(data, size, sum, sizeof(sum) - 1);
	size_t off, start;
	uint64_t h;
	char *copy;

	if (!p)
		return NULL;
	off = (size_t)(p - data) + sizeof(sum) - 1;
	start = off + 16 + sizeof(body) - 1;
	if (start + 1 > size || memcmp(data + off + 16, body, sizeof(body) - 1) != 0)
		return NULL;
	copy = xmalloc(size);
	memcpy(copy, data, size);
	h = hash_fnv(HASH_FNV_INIT, copy + start, size - 1 - start);
	for (int i = 15; i >= 0; i--, h >>= 4)
		copy[off + (size_t)i] = "0123456789abcdef"[h & 15];
	return copy;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *copy = sealed(data, size);

	check_text((const char *)data, size);
	if (copy && memcmp(copy, data, size) != 0)
		check_text(copy, size);
	free(copy);
	return 0;
}

static void check_text(const char *data, size_t size)
{
	struct state_doc doc = { .dir = dir };
	struct state_load_report rep;
	struct records s, s2, s3;
	char *text1, *text2, *saved;
	const char *b1, *b2;
	size_t n1, n2, len;
	struct eviction sentinel;
	int r;

	/* Refused text leaves what was there. */
	records_init(&s);
	eviction_init(&sentinel);
	(void)strscpy(sentinel.id, sizeof(sentinel.id), "sentinel");
	(void)records_add(&s, &sentinel);
	r = state_parse_text(&s, data, size);
	fuzz_assert(r == 0 || r == -EBADMSG || r == -EFBIG);
	if (r < 0) {
		fuzz_assert(s.n == 1 && strcmp(s.items[0].id, "sentinel") == 0);
		records_done(&s);
		return;
	}
	fuzz_assert(s.n <= RECORDS_MAX);
	for (size_t i = 0; i < s.n; i++) {
		const struct eviction *rec = &s.items[i];

		fuzz_assert(event_id_valid(rec->id));
		fuzz_assert(rec->n_notices >= 1 && rec->n_notices <= RECORD_NOTICES_MAX);
		for (size_t k = 0; k < rec->n_notices; k++)
			fuzz_assert(event_id_valid(rec->notices[k].ev.id));
		fuzz_assert(rec->state < _LC_MAX);
		check_hooks(rec->hooks, rec->n_hooks);
		check_hooks(rec->recover_hooks, rec->n_recover_hooks);
	}
	check_status(&s);

	/* Rendered, parsed, rendered again: the same bytes. Text that
	 * parsed may render larger than it was (escapes), beyond the cap:
	 * then nothing is written. */
	doc.records = &s;
	text1 = state_render(&doc);
	if (!text1) {
		fuzz_assert(state_save(&doc, false) == -EFBIG);
		records_done(&s);
		return;
	}
	records_init(&s2);
	fuzz_assert(state_parse_text(&s2, text1, strlen(text1)) == 0);
	fuzz_assert(s2.n == s.n);
	doc.records = &s2;
	text2 = state_render(&doc);
	fuzz_assert(text2 && strcmp(text1, text2) == 0);

	/* Saved through the real file and loaded whole: its body is the one
	 * rendered (the counter aside). Without fsync: the files are the
	 * kernel's either way, and this runs per input. */
	doc.records = &s;
	fuzz_assert(state_save(&doc, false) == 0);
	saved = read_file(&len);
	b1 = body_of(text1, &n1);
	b2 = body_of(saved, &n2);
	fuzz_assert(n1 == n2 && memcmp(b1, b2, n1) == 0);
	records_init(&s3);
	fuzz_assert(state_load(dir, &s3, &rep) == 0);
	fuzz_assert(rep.error == 0 && !rep.moved && !rep.from_spare && rep.dropped == 0);
	fuzz_assert(s3.n == s.n);
	state_load_report_done(&rep);

	free(saved);
	free(text2);
	free(text1);
	records_done(&s3);
	records_done(&s2);
	records_done(&s);
}
