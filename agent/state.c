/* state.c - the agent's one state struct: every handled event with its hooks'
 * results, the poll statistics, their JSON form for /v1/status, and the
 * crash-safe state file. It never logs (callers do) and never trusts the
 * state file: whatever does not read back strictly is moved aside and the
 * agent starts empty rather than acting on half-understood data.
 *
 * JSON field names. They are stable: the HTTP documentation cites them.
 *
 * state.json (written by state_save, records oldest first):
 *   {"version": 1, "records": [<record>, ...]}
 *
 * <record>, one handled event (also "event" in /v1/status):
 *   event             object from event_to_json(): id, type, status, source,
 *                     not_before, resources, description, duration_s,
 *                     provider, deadline (Unix seconds), drill
 *   detected          string, RFC 3339 UTC: when the event was first seen
 *   detected_usec     integer, the same in microseconds since the epoch
 *   deadline_usec     integer, the chain's deadline (microseconds since the epoch)
 *   emergency         bool, the deadline is the emergency budget
 *   drill             bool
 *   chain_done        bool, every hook has a final result
 *   approved          bool, the platform accepted the approval
 *   approved_usec     integer, when (0 until approved)
 *   approve_attempts  integer
 *   no_approve        bool, no approval is wanted for this event
 *   gone              bool, the event has left the metadata document
 *   gone_usec         integer, when it left (0 while listed)
 *   key               string, the provider's key of a made-up id ("" if none)
 *   hooks             array of <hook> in run order
 *
 * <hook>:
 *   name, path        strings
 *   result            "pending", "running", "ok", "failed", "timeout", "skipped"
 *   exit_status       integer, -1 when killed by a signal or never started
 *   signal            integer, the signal that ended it, else 0
 *   timed_out         bool
 *   started           string, RFC 3339 UTC, "" when never started
 *   started_usec      integer, 0 when never started
 *   duration_ms       number with up to 3 decimals, for humans
 *   duration_usec     integer
 *   budget_usec       integer, the timeout the hook was given
 *   skip_reason       string, "" unless skipped ("deadline", "exit 77", "stopping")
 *   output            array of strings, the last lines, oldest first; bytes
 *                     that are not UTF-8 are shown as U+FFFD
 *   output_bytes      integer, bytes the hook wrote in total
 *
 * /v1/status (state_to_json):
 *   version           string
 *   provider          string or null
 *   vm_name           string, null until known
 *   uptime_s          integer
 *   state             "idle", "pending", "running" or "done"
 *   poll              {ok, failed, consecutive_failures (integers),
 *                      last_success (RFC 3339 or null), last_latency_ms (number),
 *                      incarnation (integer, null until known),
 *                      last_error (string, null when the last poll succeeded)}
 *   event             <record> of the current or last event, or null
 *   history           up to 10 other events, newest first, each
 *                     {id, type, status, detected (RFC 3339), deadline (RFC 3339),
 *                      approved, chain_done, hooks_ok, hooks_failed,
 *                      hooks_timeout, hooks_skipped}
 *
 * Integers in microseconds stay exact: JSON numbers are doubles here, exact up
 * to 2^53 (about year 2255 in microseconds). A reader must accept exponent
 * notation (1.7642e+15) for them, as any JSON parser does.
 */
#include "state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define STATE_FILE_VERSION  1
#define STATE_HISTORY_MAX   10
#define JSON_EXACT_MAX      ((double)(UINT64_C(1) << 53))

static const char *const phase_names[_PHASE_MAX] = {
	[PHASE_IDLE] = "idle",
	[PHASE_PENDING] = "pending",
	[PHASE_RUNNING] = "running",
	[PHASE_DONE] = "done",
};

const char *agent_phase_to_string(enum agent_phase p)
{
	if ((unsigned)p >= _PHASE_MAX)
		return NULL;
	return phase_names[p];
}

/* ---- building JSON: cJSON returns NULL only when out of memory, and like
 * the xmalloc family we abort then rather than write a partial file. ---- */

static cJSON *json_check(cJSON *item)
{
	if (!item) {
		static const char msg[] = "spot-agent: out of memory\n";

		(void)!write(STDERR_FILENO, msg, sizeof(msg) - 1);
		abort();
	}
	return item;
}

static void json_add(cJSON *o, const char *key, cJSON *item)
{
	json_check(item);
	if (!cJSON_AddItemToObject(o, key, item))
		json_check(NULL);
}

static void json_add_uint(cJSON *o, const char *key, uint64_t v)
{
	json_add(o, key, cJSON_CreateNumber((double)v));
}

static void json_add_int(cJSON *o, const char *key, int64_t v)
{
	json_add(o, key, cJSON_CreateNumber((double)v));
}

static void json_add_bool(cJSON *o, const char *key, bool v)
{
	json_add(o, key, cJSON_CreateBool(v));
}

/* NULL becomes JSON null. */
static void json_add_string(cJSON *o, const char *key, const char *v)
{
	json_add(o, key, v ? cJSON_CreateString(v) : cJSON_CreateNull());
}

/* RFC 3339, or "" (null_if_zero false) / null (true) for 0. */
static void json_add_time(cJSON *o, const char *key, uint64_t wall_usec, bool null_if_zero)
{
	char buf[RFC3339_MAX];

	if (wall_usec == 0 && null_if_zero)
		json_add(o, key, cJSON_CreateNull());
	else
		json_add_string(o, key, format_rfc3339(buf, sizeof(buf), wall_usec));
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 when invalid. */
static size_t utf8_sequence(const unsigned char *s)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		n = 2;
	else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		if (c == 0xe0)
			lo = 0xa0;      /* overlong */
		else if (c == 0xed)
			hi = 0x9f;      /* surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		if (c == 0xf0)
			lo = 0x90;      /* overlong */
		else if (c == 0xf4)
			hi = 0x8f;      /* above U+10FFFF */
	} else
		return 0;

	if (s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < n; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return n;
}

/* Hook output is whatever a program printed; JSON wants UTF-8. Returns a
 * copy with every invalid byte replaced by U+FFFD (caller frees), or NULL
 * when s is valid already. */
static char *utf8_sanitize(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *copy, *q;

	while (*p) {
		size_t n = utf8_sequence(p);

		if (n == 0)
			break;
		p += n;
	}
	if (*p == '\0')
		return NULL;

	q = copy = xmalloc(strlen(s) * 3 + 1);
	p = (const unsigned char *)s;
	while (*p) {
		size_t n = utf8_sequence(p);

		if (n == 0) {
			memcpy(q, "\xef\xbf\xbd", 3);
			q += 3;
			p++;
		} else {
			memcpy(q, p, n);
			q += n;
			p += n;
		}
	}
	*q = '\0';
	return copy;
}

static void add_output_line(const char *line, void *userdata)
{
	cJSON *array = userdata;
	char *clean = utf8_sanitize(line);

	if (!cJSON_AddItemToArray(array, json_check(cJSON_CreateString(clean ? clean : line))))
		json_check(NULL);
	free(clean);
}

static cJSON *hook_to_json(const struct hook_result *h, bool with_output)
{
	cJSON *o = json_check(cJSON_CreateObject()), *output;

	json_add_string(o, "name", h->name);
	json_add_string(o, "path", h->path);
	json_add_string(o, "result", hook_outcome_to_string(h->outcome));
	json_add_int(o, "exit_status", h->exit_status);
	json_add_int(o, "signal", h->term_signal);
	json_add_bool(o, "timed_out", h->timed_out);
	json_add_time(o, "started", h->start_wall_usec, false);
	json_add_uint(o, "started_usec", h->start_wall_usec);
	json_add(o, "duration_ms", cJSON_CreateNumber((double)h->duration_usec / 1000.0));
	json_add_uint(o, "duration_usec", h->duration_usec);
	json_add_uint(o, "budget_usec", h->budget_usec);
	json_add_string(o, "skip_reason", h->skip_reason);
	output = json_check(cJSON_CreateArray());
	if (with_output)
		hook_result_foreach_line(h, add_output_line, output);
	json_add(o, "output", output);
	json_add_uint(o, "output_bytes", h->output_bytes);
	return o;
}

static cJSON *record_to_json(const struct event_record *r, bool with_output)
{
	cJSON *o = json_check(cJSON_CreateObject()), *hooks;

	json_add(o, "event", event_to_json(&r->ev, r->deadline_wall_usec, r->drill));
	json_add_time(o, "detected", r->detected_wall_usec, false);
	json_add_uint(o, "detected_usec", r->detected_wall_usec);
	json_add_uint(o, "deadline_usec", r->deadline_wall_usec);
	json_add_bool(o, "emergency", r->emergency);
	json_add_bool(o, "drill", r->drill);
	json_add_bool(o, "chain_done", r->chain_done);
	json_add_bool(o, "approved", r->approved);
	json_add_uint(o, "approved_usec", r->approved_wall_usec);
	json_add_uint(o, "approve_attempts", r->approve_attempts);
	json_add_bool(o, "no_approve", r->no_approve);
	json_add_bool(o, "gone", r->gone);
	json_add_uint(o, "gone_usec", r->gone_wall_usec);
	json_add_string(o, "key", r->key);
	hooks = json_check(cJSON_CreateArray());
	for (size_t i = 0; i < r->n_hooks; i++)
		if (!cJSON_AddItemToArray(hooks, hook_to_json(&r->hooks[i], with_output)))
			json_check(NULL);
	json_add(o, "hooks", hooks);
	return o;
}

cJSON *event_record_to_json(const struct event_record *r)
{
	return record_to_json(r, true);
}

/* ---- reading JSON back: every field must be there with its type. ---- */

static int json_get_bool(const cJSON *o, const char *key, bool *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsBool(v))
		return -EBADMSG;
	*ret = cJSON_IsTrue(v);
	return 0;
}

/* An integral number in [0, max] that a double holds exactly. */
static int json_get_uint(const cJSON *o, const char *key, uint64_t max, uint64_t *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d;

	if (!cJSON_IsNumber(v))
		return -EBADMSG;
	d = v->valuedouble;
	if (!(d >= 0 && d <= JSON_EXACT_MAX) || d > (double)max || (double)(uint64_t)d != d)
		return -EBADMSG;
	*ret = (uint64_t)d;
	return 0;
}

static int json_get_int(const cJSON *o, const char *key, int min, int max, int *ret)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	double d;

	if (!cJSON_IsNumber(v))
		return -EBADMSG;
	d = v->valuedouble;
	if (!(d >= min && d <= max) || (double)(int)d != d)
		return -EBADMSG;
	*ret = (int)d;
	return 0;
}

/* A string that fits buf (n bytes with the NUL); buf may be NULL to only check. */
static int json_get_string(const cJSON *o, const char *key, char *buf, size_t n)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);

	if (!cJSON_IsString(v) || !v->valuestring)
		return -EBADMSG;
	if (buf && strscpy(buf, n, v->valuestring) < 0)
		return -EBADMSG;
	return 0;
}

static int json_get_number(const cJSON *o, const char *key)
{
	return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(o, key)) ? 0 : -EBADMSG;
}

/* Fills h from o. On success h holds owned lines (hook_result_done frees
 * them); on failure nothing is left to free. */
static int hook_from_json(const cJSON *o, struct hook_result *h)
{
	char name[HOOK_NAME_MAX], path[PATH_MAX], result[16];
	const cJSON *output, *line;
	int r;

	if (!cJSON_IsObject(o))
		return -EBADMSG;
	if (json_get_string(o, "name", name, sizeof(name)) < 0 ||
	    json_get_string(o, "path", path, sizeof(path)) < 0 ||
	    json_get_string(o, "result", result, sizeof(result)) < 0)
		return -EBADMSG;
	output = cJSON_GetObjectItemCaseSensitive(o, "output");
	if (!cJSON_IsArray(output) || cJSON_GetArraySize(output) > HOOK_OUTPUT_LINES)
		return -EBADMSG;
	cJSON_ArrayForEach(line, output)
		if (!cJSON_IsString(line) || !line->valuestring)
			return -EBADMSG;

	hook_result_init(h, name, path);
	if (hook_outcome_from_string(result, &h->outcome) < 0 ||
	    json_get_int(o, "exit_status", -1, 255, &h->exit_status) < 0 ||
	    json_get_int(o, "signal", 0, 128, &h->term_signal) < 0 ||
	    json_get_bool(o, "timed_out", &h->timed_out) < 0 ||
	    json_get_string(o, "started", NULL, 0) < 0 ||
	    json_get_uint(o, "started_usec", UINT64_MAX, &h->start_wall_usec) < 0 ||
	    json_get_number(o, "duration_ms") < 0 ||
	    json_get_uint(o, "duration_usec", UINT64_MAX, &h->duration_usec) < 0 ||
	    json_get_uint(o, "budget_usec", UINT64_MAX, &h->budget_usec) < 0 ||
	    json_get_string(o, "skip_reason", h->skip_reason, sizeof(h->skip_reason)) < 0 ||
	    json_get_uint(o, "output_bytes", UINT64_MAX, &h->output_bytes) < 0) {
		r = -EBADMSG;
		goto out;
	}

	if (h->outcome == HOOK_RUNNING) {
		/* The agent stopped while this hook ran: it never completed, so it
		 * runs again. The interrupted run's figures and lines go. */
		hook_result_init(h, name, path);
		h->outcome = HOOK_PENDING;
	} else {
		cJSON_ArrayForEach(line, output)
			hook_result_add_line(h, line->valuestring);
	}
	r = 0;
out:
	if (r < 0)
		hook_result_done(h);
	return r;
}

void event_record_init(struct event_record *r)
{
	memset(r, 0, sizeof(*r));
	event_init(&r->ev);
}

void event_record_done(struct event_record *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->n_hooks; i++)
		hook_result_done(&r->hooks[i]);
	free(r->hooks);
	event_done(&r->ev);
	free(r->file_text);
	memset(r, 0, sizeof(*r));
}

int event_record_from_json(const cJSON *o, struct event_record *ret)
{
	struct event_record rec;
	const cJSON *hooks, *h;
	uint64_t attempts;
	int n, r;

	event_record_init(&rec);
	r = -EBADMSG;
	if (!cJSON_IsObject(o))
		goto out;
	hooks = cJSON_GetObjectItemCaseSensitive(o, "hooks");
	if (!cJSON_IsArray(hooks))
		goto out;
	n = cJSON_GetArraySize(hooks);
	if (n < 0 || n > STATE_RECORD_HOOKS_MAX)
		goto out;

	if (!cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(o, "event")) ||
	    event_from_json(cJSON_GetObjectItemCaseSensitive(o, "event"), &rec.ev) < 0) {
		r = -EBADMSG;
		goto out;
	}
	if (json_get_string(o, "detected", NULL, 0) < 0 ||
	    json_get_uint(o, "detected_usec", UINT64_MAX, &rec.detected_wall_usec) < 0 ||
	    json_get_uint(o, "deadline_usec", UINT64_MAX, &rec.deadline_wall_usec) < 0 ||
	    json_get_bool(o, "emergency", &rec.emergency) < 0 ||
	    json_get_bool(o, "drill", &rec.drill) < 0 ||
	    json_get_bool(o, "chain_done", &rec.chain_done) < 0 ||
	    json_get_bool(o, "approved", &rec.approved) < 0 ||
	    json_get_uint(o, "approved_usec", UINT64_MAX, &rec.approved_wall_usec) < 0 ||
	    json_get_uint(o, "approve_attempts", UINT32_MAX, &attempts) < 0 ||
	    json_get_bool(o, "no_approve", &rec.no_approve) < 0 ||
	    json_get_bool(o, "gone", &rec.gone) < 0) {
		r = -EBADMSG;
		goto out;
	}
	rec.approve_attempts = (unsigned)attempts;
	/* Added later: a file written before them reads as "" and 0. */
	if ((cJSON_GetObjectItemCaseSensitive(o, "gone_usec") &&
	     json_get_uint(o, "gone_usec", UINT64_MAX, &rec.gone_wall_usec) < 0) ||
	    (cJSON_GetObjectItemCaseSensitive(o, "key") &&
	     json_get_string(o, "key", rec.key, sizeof(rec.key)) < 0)) {
		r = -EBADMSG;
		goto out;
	}

	rec.hooks = xcalloc((size_t)n, sizeof(*rec.hooks));
	cJSON_ArrayForEach(h, hooks) {
		r = hook_from_json(h, &rec.hooks[rec.n_hooks]);
		if (r < 0)
			goto out;
		rec.n_hooks++;
	}

	*ret = rec;
	return 0;
out:
	event_record_done(&rec);
	return r;
}

/* ---- the state struct ---- */

void state_init(struct agent_state *s, const char *state_dir)
{
	memset(s, 0, sizeof(*s));
	s->state_dir = state_dir ? xstrdup(state_dir) : NULL;
	s->phase = PHASE_IDLE;
	s->started_mono_usec = now_usec(CLOCK_MONOTONIC);
	s->poll.incarnation = -1;
}

static void state_clear_records(struct agent_state *s)
{
	for (size_t i = 0; i < s->n_records; i++)
		event_record_done(&s->records[i]);
	free(s->records);
	s->records = NULL;
	s->n_records = 0;
}

void state_done(struct agent_state *s)
{
	if (!s)
		return;
	state_clear_records(s);
	free(s->state_dir);
	free(s->provider);
	free(s->vm_name);
	memset(s, 0, sizeof(*s));
}

bool event_record_awaits_approval_at(const struct event_record *r, uint64_t now_wall_usec)
{
	if (r->ev.provider != PROVIDER_AZURE || r->drill || r->no_approve || r->gone || r->approved)
		return false;
	/* Only a Scheduled event can be approved, and past its NotBefore the
	 * platform goes ahead without us. */
	if (r->ev.status != EVENT_SCHEDULED)
		return false;
	return r->ev.not_before_usec == 0 || now_wall_usec < r->ev.not_before_usec;
}

bool event_record_awaits_approval(const struct event_record *r)
{
	return event_record_awaits_approval_at(r, now_usec(CLOCK_REALTIME));
}

static bool finished_at(const struct event_record *r, uint64_t now_wall_usec)
{
	return r->chain_done && !event_record_awaits_approval_at(r, now_wall_usec);
}

bool event_record_is_finished(const struct event_record *r)
{
	return finished_at(r, now_usec(CLOCK_REALTIME));
}

struct event_record *state_find(struct agent_state *s, const char *event_id)
{
	/* Newest first: should an id ever repeat, the latest record counts. */
	for (size_t i = s->n_records; i > 0; i--)
		if (strcasecmp(s->records[i - 1].ev.id, event_id) == 0)
			return &s->records[i - 1];
	return NULL;
}

struct event_record *state_current(struct agent_state *s)
{
	for (size_t i = s->n_records; i > 0; i--)
		if (!event_record_is_finished(&s->records[i - 1]))
			return &s->records[i - 1];
	return s->n_records > 0 ? &s->records[s->n_records - 1] : NULL;
}

static const struct event_record *state_current_const(const struct agent_state *s)
{
	return state_current((struct agent_state *)s);
}

struct event_record *state_add_record(struct agent_state *s, struct event_record *r)
{
	return state_add_record_at(s, r, now_usec(CLOCK_REALTIME));
}

struct event_record *state_add_record_at(struct agent_state *s, struct event_record *r,
					 uint64_t now_wall_usec)
{
	s->records = xrealloc(s->records, (s->n_records + 1) * sizeof(*s->records));
	s->records[s->n_records++] = *r;
	memset(r, 0, sizeof(*r));

	/* Drop the oldest finished records while there are too many. Unfinished
	 * ones stay even beyond the cap (their hooks or approval are still due),
	 * and so does the record just added, which the caller holds. The cap is
	 * thus soft, bounded by how many events can be in progress at once. */
	for (size_t i = 0; s->n_records > STATE_RECORDS_MAX && i + 1 < s->n_records;) {
		if (!finished_at(&s->records[i], now_wall_usec)) {
			i++;
			continue;
		}
		event_record_done(&s->records[i]);
		memmove(&s->records[i], &s->records[i + 1],
			(s->n_records - i - 1) * sizeof(*s->records));
		s->n_records--;
	}
	return &s->records[s->n_records - 1];
}

/* ---- the state file ---- */

/* Which hook output lines go into the file. They are for humans only, so
 * they are what gives way when the file would outgrow STATE_FILE_MAX. */
enum output_policy {
	OUTPUT_ALL,
	OUTPUT_UNFINISHED,   /* only for records not finished */
	OUTPUT_NONE,
	_OUTPUT_POLICY_MAX,
};

static uint64_t sig_bytes(uint64_t h, const void *p, size_t n)
{
	return hash_fnv(h, p, n);
}

static uint64_t sig_str(uint64_t h, const char *s)
{
	return sig_bytes(h, s ? s : "", s ? strlen(s) + 1 : 1);
}

static void sig_line(const char *line, void *userdata)
{
	uint64_t *h = userdata;

	*h = sig_str(*h, line);
}

/* A signature of everything record_to_json writes: equal signatures, equal
 * text. Hashing is far cheaper than building and printing the JSON, which
 * on the eviction path is what a save costs besides its fsync. */
static uint64_t record_sig(const struct event_record *r, bool with_output)
{
	uint64_t h = HASH_FNV_INIT;
	const struct spot_event *ev = &r->ev;

	h = sig_str(h, ev->id);
	h = sig_bytes(h, &ev->type, sizeof(ev->type));
	h = sig_bytes(h, &ev->status, sizeof(ev->status));
	h = sig_str(h, ev->source);
	h = sig_bytes(h, &ev->not_before_usec, sizeof(ev->not_before_usec));
	h = sig_str(h, ev->description);
	h = sig_bytes(h, &ev->duration_sec, sizeof(ev->duration_sec));
	h = sig_bytes(h, &ev->provider, sizeof(ev->provider));
	for (size_t i = 0; i < ev->n_resources; i++)
		h = sig_str(h, ev->resources[i]);
	h = sig_bytes(h, &ev->n_resources, sizeof(ev->n_resources));
	h = sig_bytes(h, &r->detected_wall_usec, sizeof(r->detected_wall_usec));
	h = sig_bytes(h, &r->deadline_wall_usec, sizeof(r->deadline_wall_usec));
	h = sig_bytes(h, &r->approved_wall_usec, sizeof(r->approved_wall_usec));
	h = sig_bytes(h, &r->gone_wall_usec, sizeof(r->gone_wall_usec));
	h = sig_bytes(h, &r->approve_attempts, sizeof(r->approve_attempts));
	{
		bool flags[] = { r->emergency, r->drill, r->chain_done, r->approved, r->no_approve, r->gone,
				 with_output };

		h = sig_bytes(h, flags, sizeof(flags));
	}
	h = sig_str(h, r->key);
	h = sig_bytes(h, &r->n_hooks, sizeof(r->n_hooks));
	for (size_t i = 0; i < r->n_hooks; i++) {
		const struct hook_result *x = &r->hooks[i];

		h = sig_str(h, x->name);
		h = sig_str(h, x->path);
		h = sig_bytes(h, &x->outcome, sizeof(x->outcome));
		h = sig_bytes(h, &x->exit_status, sizeof(x->exit_status));
		h = sig_bytes(h, &x->term_signal, sizeof(x->term_signal));
		h = sig_bytes(h, &x->timed_out, sizeof(x->timed_out));
		h = sig_bytes(h, &x->start_wall_usec, sizeof(x->start_wall_usec));
		h = sig_bytes(h, &x->duration_usec, sizeof(x->duration_usec));
		h = sig_bytes(h, &x->budget_usec, sizeof(x->budget_usec));
		h = sig_str(h, x->skip_reason);
		h = sig_bytes(h, &x->output_bytes, sizeof(x->output_bytes));
		h = sig_bytes(h, &x->n_output, sizeof(x->n_output));
		if (with_output)
			hook_result_foreach_line(x, sig_line, &h);
	}
	return h;
}

/* The record's text, from the cache when nothing it shows has changed.
 * Borrowed until the record changes or goes. The cache is bookkeeping,
 * not state: it is written through a const record on purpose. */
static const char *record_file_text(const struct event_record *r, bool with_output)
{
	struct event_record *w = (struct event_record *)r;
	uint64_t sig = record_sig(r, with_output);
	cJSON *o;

	if (w->file_text && w->file_sig == sig)
		return w->file_text;
	o = record_to_json(r, with_output);
	free(w->file_text);
	w->file_text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!w->file_text)
		json_check(NULL);
	w->file_sig = sig;
	return w->file_text;
}

static char *state_file_render(const struct agent_state *s, enum output_policy policy)
{
	size_t len = 64, off;
	char *text;

	for (size_t i = 0; i < s->n_records; i++) {
		const struct event_record *r = &s->records[i];
		bool with_output = policy == OUTPUT_ALL ||
			(policy == OUTPUT_UNFINISHED && !event_record_is_finished(r));

		len += strlen(record_file_text(r, with_output)) + 1;
	}
	text = xmalloc(len);
	off = (size_t)snprintf(text, len, "{\"version\":%d,\"records\":[", STATE_FILE_VERSION);
	for (size_t i = 0; i < s->n_records; i++) {
		const struct event_record *r = &s->records[i];
		const char *t = r->file_text;   /* rendered just above */
		size_t n = strlen(t);

		if (i > 0)
			text[off++] = ',';
		memcpy(text + off, t, n);
		off += n;
	}
	memcpy(text + off, "]}", 3);
	return text;
}

int state_save(const struct agent_state *s)
{
	return state_save_opt(s, true);
}

int state_save_opt(const struct agent_state *s, bool durable)
{
	char *text = NULL, *tmp = NULL, *final = NULL;
	bool created = false;
	int fd = -1, dfd = -1, r;
	size_t len = 0;

	if (!s->state_dir)
		return 0;

	/* Never write what state_load would refuse: shed output lines first,
	 * and if even the bare records are too large, keep the old file. */
	for (int policy = OUTPUT_ALL; policy < _OUTPUT_POLICY_MAX; policy++) {
		free(text);
		text = state_file_render(s, (enum output_policy)policy);
		len = strlen(text);
		if (len <= STATE_FILE_MAX)
			break;
	}
	if (len > STATE_FILE_MAX) {
		r = -EFBIG;
		goto out;
	}

	if (mkdir(s->state_dir, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto out;
	}

	tmp = xasprintf("%s/.%s.XXXXXX", s->state_dir, STATE_FILE_NAME);
	fd = mkostemp(tmp, O_CLOEXEC);   /* mode 0600 */
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	created = true;

	r = write_all(fd, text, len);
	if (r < 0)
		goto out;
	if (durable && fsync(fd) < 0) {
		r = -errno;
		goto out;
	}
	r = close(fd);
	fd = -1;
	if (r < 0) {
		r = -errno;
		goto out;
	}

	final = xasprintf("%s/%s", s->state_dir, STATE_FILE_NAME);
	if (rename(tmp, final) < 0) {
		r = -errno;
		goto out;
	}
	created = false;

	if (!durable) {
		r = 0;
		goto out;
	}
	/* The rename is durable only once the directory is. */
	dfd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		r = -errno;
		goto out;
	}
	r = fsync(dfd) < 0 ? -errno : 0;
out:
	if (fd >= 0)
		(void)close(fd);
	if (dfd >= 0)
		(void)close(dfd);
	if (created)
		(void)unlink(tmp);
	free(final);
	free(tmp);
	free(text);
	return r;
}

/* Reads the file opened as fd into a NUL-terminated buffer (caller frees).
 * Returns the length, or -errno; -EFBIG when it exceeds STATE_FILE_MAX. */
static ssize_t read_bounded(int fd, char **ret)
{
	size_t cap = STATE_FILE_MAX + 1, len = 0;
	char *buf = xmalloc(cap + 1);
	struct stat st;

	if (fstat(fd, &st) < 0) {
		free(buf);
		return -errno;
	}
	if (!S_ISREG(st.st_mode)) {
		free(buf);
		return -EBADMSG;
	}
	if (st.st_size > STATE_FILE_MAX) {
		free(buf);
		return -EFBIG;
	}

	while (len < cap) {
		ssize_t k = read(fd, buf + len, cap - len);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			free(buf);
			return -errno;
		}
		if (k == 0)
			break;
		len += (size_t)k;
	}
	if (len > STATE_FILE_MAX) {
		free(buf);
		return -EFBIG;
	}
	buf[len] = '\0';
	*ret = buf;
	return (ssize_t)len;
}

/* Parses a whole state file into records (oldest first, at most
 * STATE_RECORDS_MAX: the newest are kept). */
static int parse_state_file(const char *text, size_t len,
			    struct event_record **ret_records, size_t *ret_n)
{
	struct event_record *records = NULL;
	const cJSON *version, *array, *item;
	size_t n = 0, skip, i = 0;
	cJSON *root;
	int r, total;

	/* Embedded NULs would hide trailing bytes from the parser. */
	if (len == 0 || memchr(text, '\0', len))
		return -EBADMSG;
	/* The length includes our NUL so trailing garbage is refused. */
	root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, true);
	if (!root)
		return -EBADMSG;

	version = cJSON_GetObjectItemCaseSensitive(root, "version");
	array = cJSON_GetObjectItemCaseSensitive(root, "records");
	if (!cJSON_IsObject(root) || !cJSON_IsNumber(version) ||
	    version->valuedouble != STATE_FILE_VERSION || !cJSON_IsArray(array)) {
		r = -EBADMSG;
		goto out;
	}

	total = cJSON_GetArraySize(array);
	skip = total > STATE_RECORDS_MAX ? (size_t)total - STATE_RECORDS_MAX : 0;
	records = xcalloc((size_t)total - skip, sizeof(*records));
	cJSON_ArrayForEach(item, array) {
		/* Older records beyond the cap are still checked: a file that
		 * is wrong anywhere is not ours. */
		struct event_record rec;

		r = event_record_from_json(item, &rec);
		if (r < 0)
			goto out;
		if (i++ < skip)
			event_record_done(&rec);
		else
			records[n++] = rec;
	}

	*ret_records = records;
	*ret_n = n;
	records = NULL;
	n = 0;
	r = 0;
out:
	for (size_t j = 0; j < n; j++)
		event_record_done(&records[j]);
	free(records);
	cJSON_Delete(root);
	return r;
}

int state_parse_text(struct agent_state *s, const char *text, size_t len)
{
	struct event_record *records = NULL;
	size_t n = 0;
	char *copy;
	int r;

	if (len > STATE_FILE_MAX)
		return -EFBIG;
	/* parse_state_file wants the NUL that read_bounded puts after the text. */
	copy = xmalloc(len + 1);
	memcpy(copy, text, len);
	copy[len] = '\0';
	r = parse_state_file(copy, len, &records, &n);
	free(copy);
	if (r < 0)
		return r;
	state_clear_records(s);
	s->records = records;
	s->n_records = n;
	return 0;
}

/* Moves the bad file out of the way so the next save starts afresh and a
 * human can look at it. Returns the new path (caller frees) or NULL when it
 * could only be removed, or not even that. */
static char *move_aside(int dfd, const char *dir)
{
	uint64_t secs = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
	char *name = xasprintf("%s.corrupt-%llu", STATE_FILE_NAME, (unsigned long long)secs);
	char *path = NULL;

	if (renameat(dfd, STATE_FILE_NAME, dfd, name) == 0)
		path = xasprintf("%s/%s", dir, name);
	else if (unlinkat(dfd, STATE_FILE_NAME, 0) < 0 && (errno == EISDIR || errno == EPERM))
		(void)unlinkat(dfd, STATE_FILE_NAME, AT_REMOVEDIR);
	free(name);
	return path;
}

/* Temp files of saves that never reached their rename (the agent died
 * in between): nothing reads them, so they go. */
static unsigned remove_stale(int dfd)
{
	size_t prefix = strlen(STATE_FILE_NAME) + 2;   /* ".state.json." */
	unsigned n = 0;
	struct dirent *d;
	DIR *dir;
	int fd;

	fd = fcntl(dfd, F_DUPFD_CLOEXEC, 3);
	if (fd < 0)
		return 0;
	dir = fdopendir(fd);
	if (!dir) {
		(void)close(fd);
		return 0;
	}
	while ((d = readdir(dir))) {
		if (d->d_name[0] != '.' || strncmp(d->d_name + 1, STATE_FILE_NAME, prefix - 2) != 0 ||
		    d->d_name[prefix - 1] != '.' || strlen(d->d_name) != prefix + 6)
			continue;
		if (unlinkat(dfd, d->d_name, 0) == 0)
			n++;
	}
	closedir(dir);
	return n;
}

int state_load(struct agent_state *s, char **ret_moved)
{
	struct state_load_report rep;
	int r = state_load_report(s, &rep);

	if (ret_moved)
		*ret_moved = rep.moved;
	else
		free(rep.moved);
	return r;
}

int state_load_report(struct agent_state *s, struct state_load_report *rep)
{
	struct event_record *records = NULL;
	size_t n = 0;
	char *text = NULL;
	int dfd, fd = -1, r;
	ssize_t len;

	memset(rep, 0, sizeof(*rep));
	state_clear_records(s);
	if (!s->state_dir)
		return 0;

	dfd = open(s->state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return errno == ENOENT ? 0 : -errno;
	rep->stale_removed = remove_stale(dfd);

	/* O_NONBLOCK: a FIFO in its place must not hang us; it is refused below. */
	fd = openat(dfd, STATE_FILE_NAME, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	len = read_bounded(fd, &text);
	r = len < 0 ? (int)len : parse_state_file(text, (size_t)len, &records, &n);
	if (r >= 0) {
		s->records = records;
		s->n_records = n;
	}
out:
	if (r < 0) {
		/* Unreadable, too large or not ours: start empty. */
		rep->error = r;
		rep->moved = move_aside(dfd, s->state_dir);
		r = 0;
	}
	if (fd >= 0)
		(void)close(fd);
	(void)close(dfd);
	free(text);
	return r;
}

/* ---- /v1/status ---- */

static cJSON *record_summary(const struct event_record *r)
{
	cJSON *o = json_check(cJSON_CreateObject());
	unsigned ok = 0, failed = 0, timeout = 0, skipped = 0;

	for (size_t i = 0; i < r->n_hooks; i++)
		switch (r->hooks[i].outcome) {
		case HOOK_OK:
			ok++;
			break;
		case HOOK_FAILED:
			failed++;
			break;
		case HOOK_TIMEOUT:
			timeout++;
			break;
		case HOOK_SKIPPED:
			skipped++;
			break;
		default:
			break;
		}

	json_add_string(o, "id", r->ev.id);
	json_add_string(o, "type", event_type_to_string(r->ev.type));
	json_add_string(o, "status", event_status_to_string(r->ev.status));
	json_add_time(o, "detected", r->detected_wall_usec, true);
	json_add_time(o, "deadline", r->deadline_wall_usec, true);
	json_add_bool(o, "approved", r->approved);
	json_add_bool(o, "chain_done", r->chain_done);
	json_add_uint(o, "hooks_ok", ok);
	json_add_uint(o, "hooks_failed", failed);
	json_add_uint(o, "hooks_timeout", timeout);
	json_add_uint(o, "hooks_skipped", skipped);
	return o;
}

static cJSON *poll_to_json(const struct poll_stats *p)
{
	cJSON *o = json_check(cJSON_CreateObject());

	json_add_uint(o, "ok", p->ok);
	json_add_uint(o, "failed", p->failed);
	json_add_uint(o, "consecutive_failures", p->consecutive_failures);
	json_add_time(o, "last_success", p->last_ok_wall_usec, true);
	json_add(o, "last_latency_ms", cJSON_CreateNumber((double)p->last_latency_usec / 1000.0));
	if (p->incarnation < 0)
		json_add(o, "incarnation", cJSON_CreateNull());
	else
		json_add_int(o, "incarnation", p->incarnation);
	json_add_string(o, "last_error", p->last_error[0] ? p->last_error : NULL);
	return o;
}

cJSON *state_to_json(const struct agent_state *s, const char *version)
{
	const struct event_record *current = state_current_const(s);
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	cJSON *o = json_check(cJSON_CreateObject()), *history;
	size_t shown = 0;

	json_add_string(o, "version", version);
	json_add_string(o, "provider", s->provider);
	json_add_string(o, "vm_name", s->vm_name);
	json_add_uint(o, "uptime_s", now > s->started_mono_usec ?
		      (now - s->started_mono_usec) / USEC_PER_SEC : 0);
	json_add_string(o, "state", agent_phase_to_string(s->phase));
	json_add_bool(o, "rebalance_recommended", s->rebalance_recommended);
	json_add(o, "poll", poll_to_json(&s->poll));
	json_add(o, "event", current ? event_record_to_json(current) : cJSON_CreateNull());

	history = json_check(cJSON_CreateArray());
	for (size_t i = s->n_records; i > 0 && shown < STATE_HISTORY_MAX; i--) {
		const struct event_record *r = &s->records[i - 1];

		if (r == current)
			continue;
		if (!cJSON_AddItemToArray(history, record_summary(r)))
			json_check(NULL);
		shown++;
	}
	json_add(o, "history", history);
	return o;
}
