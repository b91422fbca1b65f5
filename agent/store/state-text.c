/* state-text.c - a state file's text: the records rendered into it (the
 * hooks' output lines shed while it would outgrow STATE_FILE_MAX), framed
 * with the save counter and the body's checksum, and parsed back as
 * strictly as the writer writes, a bad record costing only itself. It
 * touches no file and never logs: the files, the spare and the load's
 * fallbacks are state-file.c's.
 *
 * state.json: {"version":3,"seq":N,"sum":"<16 hex>","body":{"records":
 * [<record>, ...],"extra":<value>}} with sum the FNV-1a hash of the body's
 * bytes as written; record-json.c describes a record. */
#include "store/state-file-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "store/record-json.h"
#include "util.h"

static const char *const body_keys[] = { "records", "extra" };

/* ---- rendering ---- */

/* Which hook output lines go into the file. They are for humans only, so
 * they are what gives way when the file would outgrow STATE_FILE_MAX. */
enum output_policy {
	OUTPUT_ALL,
	OUTPUT_OPEN,   /* only for evictions not closed */
	OUTPUT_NONE,
	_OUTPUT_POLICY_MAX,
};

static char *print_json(const cJSON *o)
{
	char *p = cJSON_PrintUnformatted(o);

	if (!p)
		abort();   /* only when out of memory */
	return p;
}

/* The body: {"records":[...],"extra":...}. */
static char *render_body(const struct state_doc *doc, enum output_policy policy)
{
	size_t len = 64, off, n_records = doc->records ? doc->records->n : 0;
	char **texts = xcalloc(n_records ? n_records : 1, sizeof(*texts));
	char *extra = doc->extra ? print_json(doc->extra) : xstrdup("null");
	char *text;

	for (size_t i = 0; i < n_records; i++) {
		const struct eviction *r = &doc->records->items[i];
		bool with_output = policy == OUTPUT_ALL || (policy == OUTPUT_OPEN && r->state != LC_CLOSED);
		cJSON *o = record_to_json(r, with_output);

		texts[i] = print_json(o);
		cJSON_Delete(o);
		len += strlen(texts[i]) + 1;
	}
	len += strlen(extra);
	text = xmalloc(len);
	off = (size_t)snprintf(text, len, "{\"records\":[");
	for (size_t i = 0; i < n_records; i++) {
		size_t k = strlen(texts[i]);

		if (i > 0)
			text[off++] = ',';
		memcpy(text + off, texts[i], k);
		off += k;
		free(texts[i]);
	}
	off += (size_t)snprintf(text + off, len - off, "],\"extra\":%s}", extra);
	free(texts);
	free(extra);
	return text;
}

char *render_seq(const struct state_doc *doc, uint64_t seq)
{
	for (int policy = OUTPUT_ALL; policy < _OUTPUT_POLICY_MAX; policy++) {
		char *body = render_body(doc, (enum output_policy)policy);
		size_t n = strlen(body);
		char *text;

		if (n + 128 > STATE_FILE_MAX) {
			free(body);
			continue;
		}
		text = xasprintf("{\"version\":%d,\"seq\":%" PRIu64 ",\"sum\":\"%016" PRIx64 "\",\"body\":%s}",
				 STATE_FILE_VERSION, seq, hash_fnv(HASH_FNV_INIT, body, n), body);
		free(body);
		return text;
	}
	return NULL;
}

char *state_render(const struct state_doc *doc)
{
	return render_seq(doc, 1);
}

/* ---- parsing ---- */

/* The parts of a file's text: its counter, and its body as written. */
struct file_view {
	uint64_t seq;
	const char *body;
	size_t body_len;
};

/* Decimal digits at p, before end, as the writer writes a number (no sign,
 * no space, no leading zero): their value, and where they stop in
 * *ret_end. -EINVAL without a digit or past UINT64_MAX. The text need not
 * be NUL-terminated. */
static int parse_digits(const char *p, const char *end, uint64_t *ret, const char **ret_end)
{
	uint64_t v = 0;
	const char *q = p;

	for (; q < end && *q >= '0' && *q <= '9'; q++) {
		unsigned d = (unsigned)(*q - '0');

		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (q == p || (*p == '0' && q - p > 1))
		return -EINVAL;
	*ret = v;
	*ret_end = q;
	return 0;
}

/* Checks the frame the writer puts around the body, and the body's sum. */
static int check_frame(const char *text, size_t len, struct file_view *v, char *why, size_t n)
{
	static const char head[] = "{\"version\":";
	const char *p = text, *end = text + len, *e;
	uint64_t version = 0, sum = 0;

	if (len == 0) {
		(void)snprintf(why, n, "empty");
		return -EBADMSG;
	}
	if (memchr(text, '\0', len)) {
		(void)snprintf(why, n, "not JSON (a NUL byte)");
		return -EBADMSG;
	}
	if (len < sizeof(head) || memcmp(p, head, sizeof(head) - 1) != 0) {
		(void)snprintf(why, n, "not a spot-agent state file");
		return -EBADMSG;
	}
	p += sizeof(head) - 1;
	if (parse_digits(p, end, &version, &e) < 0) {
		(void)snprintf(why, n, "not a spot-agent state file");
		return -EBADMSG;
	}
	if (version != STATE_FILE_VERSION) {
		(void)snprintf(why, n, "format version %" PRIu64 ", this spot-agent reads version %d only", version,
			       STATE_FILE_VERSION);
		return -EBADMSG;
	}
	p = e;
	if ((size_t)(end - p) < 7 || memcmp(p, ",\"seq\":", 7) != 0)
		goto torn;
	p += 7;
	if (parse_digits(p, end, &v->seq, &e) < 0)
		goto torn;
	p = e;
	if ((size_t)(end - p) < 8 + 16 + 10 || memcmp(p, ",\"sum\":\"", 8) != 0)
		goto torn;
	p += 8;
	for (int i = 0; i < 16; i++, p++) {
		char c = *p;
		int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;

		if (d < 0)
			goto torn;
		sum = sum << 4 | (uint64_t)d;
	}
	if (memcmp(p, "\",\"body\":", 9) != 0)
		goto torn;
	p += 9;
	if (end - p < 2 || end[-1] != '}')
		goto torn;
	v->body = p;
	v->body_len = (size_t)(end - 1 - p);
	if (hash_fnv(HASH_FNV_INIT, v->body, v->body_len) != sum) {
		(void)snprintf(why, n, "torn: its checksum does not match its contents");
		return -EBADMSG;
	}
	return 0;
torn:
	(void)snprintf(why, n, "torn or not a spot-agent state file");
	return -EBADMSG;
}

/* The id of a record that did not read back, for the log: as much of it
 * as is plain text, "?" when there is none. */
static void record_label(const cJSON *item, char *buf, size_t n)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(item, "id");
	char raw[EVENT_ID_MAX];

	if (!cJSON_IsString(id) || !id->valuestring || !id->valuestring[0]) {
		(void)strscpy(buf, n, "?");
		return;
	}
	(void)strscpy(raw, sizeof(raw), id->valuestring);
	for (char *q = raw; *q; q++)
		if ((unsigned char)*q < 0x20 || *q == 0x7f)
			*q = '?';
	(void)utf8_copy(buf, n, raw);
}

/* Parses a whole file into evictions (oldest first, at most RECORDS_MAX:
 * the newest are kept). A record that does not read back is left out and
 * counted in rep. */
int parse_file(const char *text, size_t len, struct eviction **ret_items, size_t *ret_n,
	       uint64_t *ret_seq, struct state_load_report *rep)
{
	struct eviction *items = NULL;
	struct file_view v = { 0 };
	const cJSON *array, *item;
	struct json_err err = { "" };
	size_t n = 0, index = 0;
	const char *body_end = NULL;
	cJSON *body;
	int r;

	r = check_frame(text, len, &v, rep->reason, sizeof(rep->reason));
	if (r < 0)
		return r;
	body = cJSON_ParseWithLengthOpts(v.body, v.body_len, &body_end, false);
	/* The body is one object and nothing after it: the writer writes no
	 * more (and the sum would cover whatever followed). */
	if (body && body_end != v.body + v.body_len)
		(void)json_fail(&err, "text after the body");
	if (!body || err.why[0] || json_check_keys(&err, body, body_keys, ELEMENTSOF(body_keys)) < 0) {
		(void)snprintf(rep->reason, sizeof(rep->reason), "not a spot-agent state file%s%s",
			       err.why[0] ? ": " : "", err.why);
		cJSON_Delete(body);
		return -EBADMSG;
	}
	array = cJSON_GetObjectItemCaseSensitive(body, "records");
	if (!cJSON_IsArray(array)) {
		(void)strscpy(rep->reason, sizeof(rep->reason), "not a spot-agent state file: 'records' is not an array");
		cJSON_Delete(body);
		return -EBADMSG;
	}
	items = xcalloc((size_t)cJSON_GetArraySize(array) + 1, sizeof(*items));
	cJSON_ArrayForEach(item, array) {
		struct eviction rec;

		index++;
		memset(&err, 0, sizeof(err));
		if (record_from_json(item, &rec, &err) < 0) {
			/* One bad record costs that record, not the file. */
			if (rep->dropped++ == 0) {
				char label[48];

				record_label(item, label, sizeof(label));
				(void)snprintf(rep->dropped_reason, sizeof(rep->dropped_reason),
					       "record %zu ('%s'): %s", index, label, err.why);
			}
			continue;
		}
		items[n++] = rec;
	}
	if (n > RECORDS_MAX) {
		size_t skip = n - RECORDS_MAX;

		for (size_t j = 0; j < skip; j++)
			eviction_done(&items[j]);
		memmove(items, items + skip, RECORDS_MAX * sizeof(*items));
		n = RECORDS_MAX;
	}
	item = cJSON_GetObjectItemCaseSensitive(body, "extra");
	cJSON_Delete(rep->extra);
	rep->extra = item && !cJSON_IsNull(item) ? cJSON_Duplicate(item, true) : NULL;
	cJSON_Delete(body);
	*ret_items = items;
	*ret_n = n;
	*ret_seq = v.seq;
	return 0;
}

int state_parse_text(struct records *recs, const char *text, size_t len)
{
	struct state_load_report rep = { 0 };
	struct eviction *items = NULL;
	uint64_t seq;
	size_t n = 0;
	int r;

	if (len > STATE_FILE_MAX)
		return -EFBIG;
	r = parse_file(text, len, &items, &n, &seq, &rep);
	state_load_report_done(&rep);
	if (r < 0)
		return r;
	records_replace(recs, items, n);
	return 0;
}
