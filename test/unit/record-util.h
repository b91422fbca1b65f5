/* record-util.h - shared by the tests of the eviction records, their JSON,
 * the state file and what the endpoint shows: building evictions (by hand
 * and at random, from a seed), comparing what was written with what was
 * read back (text made UTF-8 and numbers clamped as the writer does), and
 * a few file helpers. Include after cmocka.h. */
#ifndef SPOT_TEST_RECORD_UTIL_H
#define SPOT_TEST_RECORD_UTIL_H

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/engine.h"
#include "engine/record.h"
#include "store/event-json.h"
#include "store/json.h"
#include "store/record-json.h"
#include "util.h"

#define T0 UINT64_C(1795761030000000)   /* 2026-11-27T06:30:30Z */

/* ---- files ---- */

_unused_ static int ru_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	if (flag == FTW_DP)
		return rmdir(path);
	return unlink(path);
}

_unused_ static char *make_tmpdir(void)
{
	char *dir = xstrdup("/tmp/test-records.XXXXXX");

	assert_non_null(mkdtemp(dir));
	return dir;
}

_unused_ static void remove_tmpdir(char *dir)
{
	/* The unwritable cases may have left modes that block removal. */
	(void)chmod(dir, 0700);
	assert_int_equal(nftw(dir, ru_rm_entry, 16, FTW_DEPTH | FTW_PHYS), 0);
	free(dir);
}

_unused_ static char *path_join(const char *a, const char *b)
{
	return xasprintf("%s/%s", a, b);
}

_unused_ static void write_file(const char *path, const void *data, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write_all(fd, data, n), 0);
	assert_int_equal(close(fd), 0);
}

/* The whole file, NUL-terminated; NULL when it cannot be opened. */
_unused_ static char *read_file(const char *path, size_t *ret_len)
{
	FILE *f = fopen(path, "re");
	char *buf;
	long n;

	if (!f)
		return NULL;
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

_unused_ static void copy_file(const char *from, const char *to)
{
	size_t n;
	char *data = read_file(from, &n);

	assert_non_null(data);
	write_file(to, data, n);
	free(data);
}

_unused_ static bool file_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Names in dir except . and .., sorted into one "a,b,c" string. */
_unused_ static char *list_dir(const char *dir)
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

/* ---- building by hand ---- */

/* An Azure Preempt notice, Scheduled, an hour ahead in whole seconds (as
 * the wire format has them), naming vm-spot-1. */
_unused_ static void make_notice(struct notice *n, const char *id)
{
	notice_init(n);
	assert_int_equal(strscpy(n->ev.id, sizeof(n->ev.id), id), 0);
	n->ev.type = EVENT_PREEMPT;
	n->ev.status = EVENT_SCHEDULED;
	n->ev.provider = PROVIDER_AZURE;
	n->ev.feed = FEED_AZURE_SCHEDULED;
	n->ev.needs_ack = true;
	(void)strscpy(n->ev.source, sizeof(n->ev.source), "Platform");
	n->ev.not_before_usec = (now_usec(CLOCK_REALTIME) / USEC_PER_SEC + 3600) * USEC_PER_SEC;
	n->ev.duration_sec = -1;
	assert_int_equal(event_add_resource(&n->ev, "vm-spot-1"), 0);
	n->first_seen_wall_usec = T0;
	n->deadline_wall_usec = T0 + 28 * USEC_PER_SEC;
	n->policy = ACK_AFTER_HOOKS;
	n->ack = ACK_WAITING;
}

/* An eviction in state, led by one notice of the same id, no hooks. */
_unused_ static void make_eviction(struct eviction *r, const char *id, enum lifecycle state)
{
	eviction_init(r);
	assert_int_equal(strscpy(r->id, sizeof(r->id), id), 0);
	r->state = state;
	r->state_since_wall_usec = T0 + USEC_PER_SEC;
	r->detected_wall_usec = T0;
	r->deadline_wall_usec = T0 + 28 * USEC_PER_SEC;
	r->last_alive_wall_usec = T0;
	r->notices = xcalloc(1, sizeof(*r->notices));
	r->n_notices = 1;
	make_notice(&r->notices[0], id);
	if (state == LC_DONE || state == LC_CLOSED || state == LC_RECOVERING)
		r->chain_ended_wall_usec = T0 + 2 * USEC_PER_SEC;
}

/* Appends a notice of that id, made as make_notice makes one. */
_unused_ static struct notice *add_notice(struct eviction *r, const char *id)
{
	r->notices = xrealloc(r->notices, (r->n_notices + 1) * sizeof(*r->notices));
	make_notice(&r->notices[r->n_notices], id);
	return &r->notices[r->n_notices++];
}

/* Appends a hook to chain c of r. */
_unused_ static struct hook_result *add_hook_to(struct eviction *r, enum chain_kind c, const char *name,
						 enum hook_outcome o)
{
	struct hook_result **hooks = c == CHAIN_RECOVER ? &r->recover_hooks : &r->hooks;
	size_t *n = c == CHAIN_RECOVER ? &r->n_recover_hooks : &r->n_hooks;
	char *path = xasprintf("/etc/spot-agent.d/%s%s", c == CHAIN_RECOVER ? "recover.d/" : "", name);
	struct hook_result *h;

	*hooks = xrealloc(*hooks, (*n + 1) * sizeof(**hooks));
	h = &(*hooks)[(*n)++];
	hook_result_init(h, name, path);
	free(path);
	h->outcome = o;
	h->budget_usec = 27 * USEC_PER_SEC;
	if (o == HOOK_OK || o == HOOK_FAILED || o == HOOK_TIMEOUT || o == HOOK_RUNNING) {
		h->start_wall_usec = T0 + USEC_PER_SEC;
		h->exit_status = o == HOOK_OK ? 0 : o == HOOK_FAILED ? 1 : -1;
		h->duration_usec = o == HOOK_RUNNING ? 0 : 1234567;
	}
	return h;
}

_unused_ static struct hook_result *add_hook(struct eviction *r, const char *name, enum hook_outcome o)
{
	return add_hook_to(r, CHAIN_EVICT, name, o);
}

/* Appends an eviction made by make_eviction to recs. */
_unused_ static struct eviction *add_eviction(struct records *recs, const char *id, enum lifecycle state)
{
	struct eviction r;

	make_eviction(&r, id, state);
	return records_add(recs, &r);
}

/* An engine on recs as the agent configures it by default (margin 2 s,
 * drain 10 s, every type, acknowledgements after the hooks), started now
 * on boot "boot-1". */
_unused_ static void start_engine(struct engine *e, struct records *recs)
{
	struct engine_config cfg = {
		.margin_usec = 2 * USEC_PER_SEC,
		.drain_usec = 10 * USEC_PER_SEC,
		.events_mask = ~0u,
		.approve = true,
		.provider = PROVIDER_AZURE,
		.boot = "boot-1",
	};

	engine_init(e, &cfg, recs);
	engine_start(e, now_usec(CLOCK_REALTIME));
}

/* ---- JSON helpers ---- */

/* o holds exactly these keys, in this order. */
_unused_ static void assert_keys(const cJSON *o, const char *const *keys, size_t n)
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
_unused_ static void assert_member(const cJSON *o, const char *k, const char *want)
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

_unused_ static void collect_line(const char *line, void *userdata)
{
	cJSON_AddItemToArray(userdata, cJSON_CreateString(line));
}

/* The held output lines as a JSON array, for easy comparison. */
_unused_ static cJSON *lines_of(const struct hook_result *h)
{
	cJSON *a = cJSON_CreateArray();

	hook_result_foreach_line(h, collect_line, a);
	return a;
}

/* ---- random evictions: a seeded generator ---- */

struct rng {
	uint64_t s;
};

/* splitmix64: tiny, and the same sequence everywhere. */
_unused_ static uint64_t rng_next(struct rng *r)
{
	uint64_t z = (r->s += UINT64_C(0x9e3779b97f4a7c15));

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

_unused_ static uint64_t rng_below(struct rng *r, uint64_t n)
{
	return n ? rng_next(r) % n : 0;
}

/* A length in [min, max]: mostly short, now and then the extremes. */
_unused_ static size_t rng_len(struct rng *r, size_t min, size_t max)
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
_unused_ static void rng_bytes(struct rng *r, char *buf, size_t n, bool valid_only)
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

_unused_ static uint64_t rng_time(struct rng *r)
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
_unused_ static uint64_t rng_usec(struct rng *r)
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

_unused_ static int64_t rng_pick(struct rng *r, const int64_t *v, size_t n)
{
	return v[rng_below(r, n)];
}

/* An id the providers would accept (event_id_valid). */
_unused_ static void rng_id(struct rng *r, char *buf, size_t n, const char *prefix, int index)
{
	if (rng_below(r, 3) == 0) {
		rng_bytes(r, buf, rng_len(r, 1, n - 1), true);
		if (event_id_valid(buf))
			return;
	}
	(void)snprintf(buf, n, "%s-%d-%" PRIx64, prefix, index, rng_next(r));
}

_unused_ static void rng_hook(struct rng *r, struct hook_result *h)
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
	if (rng_below(r, 3) == 0)
		rng_bytes(r, h->error, rng_len(r, 0, HOOK_DETAIL_MAX - 1), false);
	for (enum report_key k = 0; k < _REPORT_KEY_MAX; k++)
		if (rng_below(r, 3) == 0) {
			*hook_report_has(&h->report, k) = true;
			*hook_report_value(&h->report, k) = rng_usec(r);
		}
	h->report.abandon = rng_below(r, 4) == 0;
	lines = rng_len(r, 0, HOOK_OUTPUT_LINES + 2);
	for (size_t i = 0; i < lines; i++) {
		rng_bytes(r, line, rng_len(r, 0, HOOK_LINE_MAX + 100), false);
		hook_result_add_line(h, line);
	}
	h->output_bytes = rng_usec(r);
	free(line);
	free(path);
}

_unused_ static void rng_event(struct rng *r, struct spot_event *ev, int index)
{
	static const int64_t durations[] = { -1, 0, 1, 30, EVENT_DURATION_MAX_SEC, INT64_MAX, -5 };
	static const enum provider providers[] = { PROVIDER_AZURE, PROVIDER_AWS, PROVIDER_GCP };
	size_t n;

	event_init(ev);
	rng_id(r, ev->id, sizeof(ev->id), "ev", index);
	ev->type = (enum event_type)rng_below(r, _EVENT_TYPE_MAX);
	ev->status = (enum event_status)rng_below(r, _EVENT_STATUS_MAX);
	ev->provider = providers[rng_below(r, ELEMENTSOF(providers))];
	ev->feed = (enum event_feed)rng_below(r, _EVENT_FEED_MAX);
	ev->end = (enum event_end)rng_below(r, _EVENT_END_MAX);
	ev->needs_ack = rng_below(r, 2);
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
}

_unused_ static void rng_notice(struct rng *r, struct notice *n, int index)
{
	notice_init(n);
	rng_event(r, &n->ev, index);
	if (rng_below(r, 3) == 0)
		rng_id(r, n->key, sizeof(n->key), "key", index);
	n->first_seen_wall_usec = rng_time(r);
	n->deadline_wall_usec = rng_time(r);
	n->emergency = rng_below(r, 2);
	n->gone = rng_below(r, 2);
	n->gone_wall_usec = rng_time(r);
	n->started = rng_below(r, 2);
	n->policy = (enum ack_policy)rng_below(r, _ACK_POLICY_MAX);
	n->ack = (enum ack_state)rng_below(r, _ACK_STATE_MAX);
	n->acked_wall_usec = rng_time(r);
	n->ack_attempts = rng_below(r, 4) == 0 ? UINT32_MAX : (unsigned)rng_below(r, 10);
}

_unused_ static void rng_hooks(struct rng *r, struct hook_result **ret, size_t *ret_n, size_t max)
{
	size_t n = rng_below(r, 16) == 0 ? max : rng_below(r, (max < 8 ? max : 8) + 1);

	*ret = xcalloc(n ? n : 1, sizeof(**ret));
	for (size_t i = 0; i < n; i++)
		rng_hook(r, &(*ret)[i]);
	*ret_n = n;
}

/* A random eviction: every field, every enum value, the extremes. */
_unused_ static void rng_eviction(struct rng *r, struct eviction *rec, int index, size_t max_hooks)
{
	size_t n;

	eviction_init(rec);
	rng_id(r, rec->id, sizeof(rec->id), "evc", index);
	rec->state = (enum lifecycle)rng_below(r, _LC_MAX);
	rec->state_since_wall_usec = rng_time(r);
	rec->detected_wall_usec = rng_time(r);
	rec->deadline_wall_usec = rng_time(r);
	rec->emergency = rng_below(r, 2);
	rec->drill = rng_below(r, 2);
	if (rng_below(r, 2))
		(void)snprintf(rec->boot, sizeof(rec->boot), "%016" PRIx64 "%.*" PRIx64, rng_next(r),
			       (int)rng_below(r, 17), rng_next(r));
	n = rng_below(r, 8) == 0 ? RECORD_NOTICES_MAX : 1 + rng_below(r, 3);
	rec->notices = xcalloc(n, sizeof(*rec->notices));
	for (size_t k = 0; k < n; k++)
		rng_notice(r, &rec->notices[k], index * 10 + (int)k);
	rec->n_notices = n;
	rng_hooks(r, &rec->hooks, &rec->n_hooks, max_hooks);
	rec->empty_plan = rng_below(r, 2);
	rec->chain_ended_wall_usec = rng_time(r);
	rec->drain_until_wall_usec = rng_time(r);
	rec->last_alive_wall_usec = rng_time(r);
	if (rng_below(r, 2)) {
		rec->recover_reason = (enum recover_reason)rng_below(r, _RECOVER_REASON_MAX);
		rec->recover_started_wall_usec = rng_time(r);
		rec->downtime_usec = rng_usec(r);
		rng_hooks(r, &rec->recover_hooks, &rec->n_recover_hooks, max_hooks < 4 ? max_hooks : 4);
	}
	if (rng_below(r, 2)) {
		rec->seen.set = true;
		rec->seen.status = (enum event_status)rng_below(r, _EVENT_STATUS_MAX);
		rec->seen.not_before_usec = rng_time(r);
		rec->seen.deadline_wall_usec = rng_time(r);
	}
}

/* ---- what reading back must give: the persisted fields, with text made
 * UTF-8 and numbers clamped to their bounds as the writer does ---- */

_unused_ static uint64_t want_time(uint64_t v)
{
	return v > JSON_TIME_MAX_USEC ? JSON_TIME_MAX_USEC : v;
}

/* The keys a report holds, one bit each. */
_unused_ static unsigned report_keys_of(const struct hook_report *rep)
{
	struct hook_report r = *rep;
	unsigned bits = 0;

	for (enum report_key k = 0; k < _REPORT_KEY_MAX; k++)
		if (*hook_report_has(&r, k))
			bits |= 1u << k;
	return bits;
}

_unused_ static uint64_t want_count(uint64_t v)
{
	return v > (uint64_t)JSON_INT_MAX ? (uint64_t)JSON_INT_MAX : v;
}

_unused_ static int64_t want_clamp(int64_t v, int64_t if_null, int64_t min, int64_t max)
{
	return v == if_null ? v : v < min ? min : v > max ? max : v;
}

_unused_ static bool text_is(const char *got, const char *raw, size_t n)
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

_unused_ static void list_line(const char *line, void *userdata)
{
	struct line_list *l = userdata;

	l->lines[l->n++] = xstrdup(line);
}

_unused_ static void line_list_done(struct line_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->lines[i]);
}

#define DIFFER(...) do { (void)snprintf(why, n, __VA_ARGS__); return false; } while (0)

_unused_ static bool hook_reads_back(const struct hook_result *a, const struct hook_result *b, char *why, size_t n)
{
	struct line_list la = { .n = 0 }, lb = { .n = 0 };
	bool same = true;

	if (strcmp(a->name, b->name) != 0 || strcmp(a->path, b->path) != 0)
		DIFFER("hook name or path");
	if (a->outcome == HOOK_RUNNING) {
		/* Interrupted by the agent's end: pending, from scratch. */
		if (b->outcome != HOOK_PENDING || b->exit_status != -1 || b->term_signal || b->timed_out ||
		    b->start_wall_usec || b->duration_usec || b->budget_usec || b->skip_reason[0] ||
		    b->error[0] || report_keys_of(&b->report) || b->report.abandon || b->n_output || b->output_bytes)
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
	if (!text_is(b->error, a->error, sizeof(a->error)))
		DIFFER("hook error");
	if (report_keys_of(&a->report) != report_keys_of(&b->report) || a->report.abandon != b->report.abandon)
		DIFFER("hook report keys or abandon");
	for (enum report_key k = 0; k < _REPORT_KEY_MAX; k++) {
		struct hook_report ra = a->report, rb = b->report;

		if (*hook_report_has(&ra, k) && *hook_report_value(&rb, k) != want_count(*hook_report_value(&ra, k)))
			DIFFER("hook report '%s'", report_key_to_string(k));
	}
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

_unused_ static bool hooks_read_back(const struct hook_result *a, size_t na, const struct hook_result *b, size_t nb,
				     char *why, size_t n)
{
	if (na != nb)
		DIFFER("%zu hooks, not %zu", nb, na);
	for (size_t i = 0; i < na; i++)
		if (!hook_reads_back(&a[i], &b[i], why, n))
			return false;
	return true;
}

_unused_ static bool event_reads_back(const struct spot_event *x, const struct spot_event *y, char *why, size_t n)
{
	if (strcmp(x->id, y->id) != 0 || x->type != y->type || x->status != y->status || x->provider != y->provider)
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
			DIFFER("resource %zu", i);
	return true;
}

_unused_ static bool notice_reads_back(const struct notice *a, const struct notice *b, char *why, size_t n)
{
	if (!event_reads_back(&a->ev, &b->ev, why, n))
		return false;
	if (a->ev.feed != b->ev.feed || a->ev.end != b->ev.end || a->ev.needs_ack != b->ev.needs_ack)
		DIFFER("notice feed, end or needs_ack");
	if (strcmp(a->key, b->key) != 0)
		DIFFER("notice key");
	if (b->first_seen_wall_usec != want_time(a->first_seen_wall_usec) ||
	    b->deadline_wall_usec != want_time(a->deadline_wall_usec) ||
	    b->gone_wall_usec != want_time(a->gone_wall_usec) ||
	    b->acked_wall_usec != want_time(a->acked_wall_usec))
		DIFFER("a notice time");
	if (a->emergency != b->emergency || a->gone != b->gone || a->started != b->started)
		DIFFER("a notice flag");
	if (a->policy != b->policy || a->ack != b->ack || a->ack_attempts != b->ack_attempts)
		DIFFER("notice approval");
	return true;
}

/* b (read back) holds what a (written) persisted. */
_unused_ static bool eviction_reads_back(const struct eviction *a, const struct eviction *b, char *why, size_t n)
{
	const struct notice *lead = eviction_lead_const(a);

	if (strcmp(a->id, b->id) != 0)
		DIFFER("id");
	if (a->state != b->state)
		DIFFER("lifecycle %s, not %s", lifecycle_to_string(b->state), lifecycle_to_string(a->state));
	if (b->state_since_wall_usec != want_time(a->state_since_wall_usec) ||
	    b->detected_wall_usec != want_time(a->detected_wall_usec) ||
	    b->deadline_wall_usec != want_time(a->deadline_wall_usec) ||
	    b->chain_ended_wall_usec != want_time(a->chain_ended_wall_usec) ||
	    b->drain_until_wall_usec != want_time(a->drain_until_wall_usec) ||
	    b->last_alive_wall_usec != want_time(a->last_alive_wall_usec))
		DIFFER("an eviction time");
	if (a->emergency != b->emergency || a->drill != b->drill || a->empty_plan != b->empty_plan)
		DIFFER("an eviction flag");
	if (strcmp(a->boot, b->boot) != 0)
		DIFFER("boot");
	if (a->n_notices != b->n_notices)
		DIFFER("%zu notices, not %zu", b->n_notices, a->n_notices);
	for (size_t k = 0; k < a->n_notices; k++)
		if (!notice_reads_back(&a->notices[k], &b->notices[k], why, n)) {
			size_t len = strlen(why);

			(void)snprintf(why + len, n - len, " (notice %zu)", k);
			return false;
		}
	/* What hooks read: the snapshot, or the live values before any. */
	if (!b->seen.set ||
	    b->seen.status != (a->seen.set ? a->seen.status : lead->ev.status) ||
	    b->seen.not_before_usec != want_time(a->seen.set ? a->seen.not_before_usec : lead->ev.not_before_usec) ||
	    b->seen.deadline_wall_usec != want_time(a->seen.set ? a->seen.deadline_wall_usec : a->deadline_wall_usec))
		DIFFER("the event as hooks read it");
	if (!hooks_read_back(a->hooks, a->n_hooks, b->hooks, b->n_hooks, why, n))
		return false;
	if (a->recover_reason != b->recover_reason)
		DIFFER("recover reason");
	if (a->recover_reason != RECOVER_NONE || a->n_recover_hooks > 0) {
		if (b->recover_started_wall_usec != want_time(a->recover_started_wall_usec) ||
		    b->downtime_usec != want_count(a->downtime_usec))
			DIFFER("recovery started or downtime");
	} else if (b->recover_started_wall_usec || b->downtime_usec) {
		DIFFER("recovery figures without a recovery");
	}
	if (!hooks_read_back(a->recover_hooks, a->n_recover_hooks, b->recover_hooks, b->n_recover_hooks, why, n)) {
		size_t len = strlen(why);

		(void)snprintf(why + len, n - len, " (recovery)");
		return false;
	}
	return true;
}

#undef DIFFER

/* The record's state.json text. Caller frees (cJSON_free). */
_unused_ static char *record_text(const struct eviction *r)
{
	cJSON *o = record_to_json(r, true);
	char *text = cJSON_PrintUnformatted(o);

	cJSON_Delete(o);
	assert_non_null(text);
	return text;
}

_unused_ static uint64_t env_u64(const char *name, uint64_t dflt)
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

#endif
