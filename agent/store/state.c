/* state.c - the agent's one state struct: every handled event with its hooks'
 * results, the poll statistics, their JSON form for /v1/status, and the
 * crash-safe state file. It never logs (callers do) and never trusts the
 * state file: a file that is not what state_save writes is moved aside, a
 * record in it that does not read back strictly is left out alone, and the
 * agent never acts on half-understood data.
 *
 * Both documents follow json.h's conventions (integers written as
 * integers, instants as "x" in RFC 3339 plus "x_usec", null for absent,
 * UTF-8 text) and share one shape for a record; spot-agent(8) lists every
 * field and doc/spot-agent.schema.json is their schema. What the agent can
 * hold it can write and read back: values are bounded where they enter
 * (event.c, the providers) and clamped again on the way out, the reader
 * checks the same bounds.
 *
 * state.json (written by state_save, records oldest first):
 *   {"version": 2, "records": [<record>, ...]}
 * <record>: event (the event document as the latest hook started read it on
 *   stdin, see event_to_json), event_status, not_before(_usec),
 *   deadline(_usec), emergency, detected(_usec), key, gone, gone_at(_usec),
 *   chain_done, hooks [<hook>...], approval {wanted, approved,
 *   approved_at(_usec), attempts}.
 * <hook>: name, path, result, exit_status, signal, timed_out,
 *   started(_usec), duration_usec, budget_usec, skip_reason, output,
 *   output_bytes.
 * /v1/status: version, provider, vm_name, uptime_s, state,
 *   rebalance_recommended, poll {...}, the <record> fields of the current
 *   or last event (hooks with "error" too; all null when there is none),
 *   history [...].
 *
 * Text is made UTF-8 (U+FFFD for other bytes) everywhere but in a hook's
 * name and path in state.json: those are kept byte for byte, since a hook
 * is recognised by its file name after a restart.
 */
#include "store/state.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include "util.h"

#define STATE_FILE_VERSION  2
#define STATE_HISTORY_MAX   10
#define HOOK_EXIT_MAX       255
#define HOOK_SIGNAL_MAX     127   /* what a wait status can carry */

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

/* The fields, in the order they are written. */
static const char *const hook_keys[] = {
	"name", "path", "result", "exit_status", "signal", "timed_out", "started", "started_usec",
	"duration_usec", "budget_usec", "skip_reason", "output", "output_bytes",
};
static const char *const record_keys[] = {
	"event", "event_status", "not_before", "not_before_usec", "deadline", "deadline_usec",
	"emergency", "detected", "detected_usec", "key", "gone", "gone_at", "gone_at_usec",
	"chain_done", "hooks", "approval",
};
static const char *const approval_keys[] = {
	"wanted", "approved", "approved_at", "approved_at_usec", "attempts",
};
static const char *const file_keys[] = { "version", "records" };

/* ---- writing a record ---- */

/* Microseconds of a duration as a JSON integer, 0 meaning none. */
static int64_t usec_int(uint64_t usec)
{
	return usec > (uint64_t)JSON_INT_MAX ? JSON_INT_MAX : (int64_t)usec;
}

static void add_output_line(const char *line, void *userdata)
{
	/* Lines read back through hook_result_add_line, which keeps
	 * HOOK_LINE_MAX bytes: they are written that short. */
	json_append(userdata, json_text_new(line, HOOK_LINE_MAX + 1));
}

/* The one place a hook's error is put in words (/v1/status only: the
 * errno behind it is not persisted). */
static const char *hook_error(const struct hook_result *h, char *buf, size_t n)
{
	if (h->exec_detail[0])   /* the runner's own words, the interpreter named */
		(void)snprintf(buf, n, "%s", h->exec_detail);
	else if (h->exec_errno)
		(void)snprintf(buf, n, "cannot execute: %s", strerror(h->exec_errno));
	else if (h->start_errno)
		(void)snprintf(buf, n, "cannot start: %s", strerror(h->start_errno));
	else
		return NULL;
	return buf;
}

static cJSON *hook_to_json(const struct hook_result *h, bool with_output, bool for_status)
{
	cJSON *o = json_object_new(), *output = json_array_new();
	char error[STATE_REASON_MAX];

	if (for_status) {
		json_add_text(o, "name", h->name, sizeof(h->name));
		json_add_text(o, "path", h->path, sizeof(h->path));
	} else {
		json_add_bytes(o, "name", h->name);
		json_add_bytes(o, "path", h->path);
	}
	json_add_text(o, "result", hook_outcome_to_string(h->outcome), 0);
	json_add_int_or_null(o, "exit_status", h->exit_status, 0, HOOK_EXIT_MAX, -1);
	json_add_int_or_null(o, "signal", h->term_signal, 1, HOOK_SIGNAL_MAX, 0);
	json_add_bool(o, "timed_out", h->timed_out);
	json_add_instant(o, "started", h->start_wall_usec);
	json_add_int_or_null(o, "duration_usec", usec_int(h->duration_usec), 1, JSON_INT_MAX, 0);
	json_add_int_or_null(o, "budget_usec", usec_int(h->budget_usec), 1, JSON_INT_MAX, 0);
	json_add_text(o, "skip_reason", h->skip_reason, sizeof(h->skip_reason));
	if (with_output)
		hook_result_foreach_line(h, add_output_line, output);
	json_add(o, "output", output);
	json_add_count(o, "output_bytes", h->output_bytes);
	if (for_status)
		json_add_text(o, "error", hook_error(h, error, sizeof(error)), 0);
	return o;
}

/* The event as the hooks last read it (r->seen) or, before any, as seen. */
static cJSON *seen_event_to_json(const struct event_record *r)
{
	struct spot_event ev = r->ev;    /* shallow: the resources stay r's */
	uint64_t deadline = r->deadline_wall_usec;

	if (r->seen.set) {
		ev.status = r->seen.status;
		ev.not_before_usec = r->seen.not_before_usec;
		deadline = r->seen.deadline_wall_usec;
	}
	return event_to_json(&ev, deadline, r->drill);
}

/* Adds the record's fields (record_keys) to o. */
static void add_record_fields(cJSON *o, const struct event_record *r, bool with_output, bool for_status)
{
	cJSON *hooks = json_array_new(), *approval = json_object_new();

	json_add(o, "event", seen_event_to_json(r));
	json_add_text(o, "event_status", event_status_to_string(r->ev.status), 0);
	json_add_instant(o, "not_before", r->ev.not_before_usec);
	json_add_instant(o, "deadline", r->deadline_wall_usec);
	json_add_bool(o, "emergency", r->emergency);
	json_add_instant(o, "detected", r->detected_wall_usec);
	json_add_text(o, "key", r->key, sizeof(r->key));
	json_add_bool(o, "gone", r->gone);
	json_add_instant(o, "gone_at", r->gone_wall_usec);
	json_add_bool(o, "chain_done", r->chain_done);
	for (size_t i = 0; i < r->n_hooks; i++)
		json_append(hooks, hook_to_json(&r->hooks[i], with_output, for_status));
	json_add(o, "hooks", hooks);
	json_add_bool(approval, "wanted", !r->no_approve);
	json_add_bool(approval, "approved", r->approved);
	json_add_instant(approval, "approved_at", r->approved_wall_usec);
	json_add_int(approval, "attempts", r->approve_attempts, 0, UINT32_MAX);
	json_add(o, "approval", approval);
}

static cJSON *record_to_json(const struct event_record *r, bool with_output)
{
	cJSON *o = json_object_new();

	add_record_fields(o, r, with_output, false);
	return o;
}

cJSON *event_record_to_json(const struct event_record *r)
{
	return record_to_json(r, true);
}

char *event_record_stdin(struct event_record *r, bool drill)
{
	cJSON *o;
	char *printed, *text;

	r->seen.set = true;
	r->seen.status = r->ev.status;
	r->seen.not_before_usec = r->ev.not_before_usec;
	r->seen.deadline_wall_usec = r->deadline_wall_usec;
	o = event_to_json(&r->ev, r->deadline_wall_usec, drill);
	printed = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	text = xstrdup(printed ? printed : "");
	cJSON_free(printed);
	if (!text[0])
		abort();   /* only when out of memory */
	return text;
}

/* ---- reading a record back: every field there, with its type and in its
 * range, nothing else. ---- */

/* Puts "<context>: " in front of the defect recorded so far. */
static void err_context(struct json_err *err, const char *fmt, ...) _printf_(2, 3);
static void err_context(struct json_err *err, const char *fmt, ...)
{
	char head[64], tail[sizeof(err->why)];
	va_list ap;
	size_t k;

	if (!err)
		return;
	va_start(ap, fmt);
	(void)vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	(void)strscpy(tail, sizeof(tail), err->why);
	(void)strscpy(err->why, sizeof(err->why), head);
	k = strlen(err->why);
	if (k + 2 < sizeof(err->why)) {
		memcpy(err->why + k, ": ", 2);
		(void)strscpy(err->why + k + 2, sizeof(err->why) - k - 2, tail);
	}
}

/* Fills h from o. On success h holds owned lines (hook_result_done frees
 * them); on failure nothing is left to free. */
static int hook_from_json(const cJSON *o, struct hook_result *h, struct json_err *err)
{
	char name[HOOK_NAME_MAX], path[PATH_MAX], result[16];
	int64_t exit_status, term_signal, duration, budget, output_bytes;
	const cJSON *output, *line;
	uint64_t started;
	bool timed_out;

	if (json_check_keys(err, o, hook_keys, ELEMENTSOF(hook_keys)) < 0 ||
	    json_get_bytes(err, o, "name", name, sizeof(name)) < 0 ||
	    json_get_bytes(err, o, "path", path, sizeof(path)) < 0 ||
	    json_get_text(err, o, "result", false, result, sizeof(result)) < 0 ||
	    json_get_int_or_null(err, o, "exit_status", 0, HOOK_EXIT_MAX, -1, &exit_status) < 0 ||
	    json_get_int_or_null(err, o, "signal", 1, HOOK_SIGNAL_MAX, 0, &term_signal) < 0 ||
	    json_get_bool(err, o, "timed_out", &timed_out) < 0 ||
	    json_get_instant(err, o, "started", &started) < 0 ||
	    json_get_int_or_null(err, o, "duration_usec", 1, JSON_INT_MAX, 0, &duration) < 0 ||
	    json_get_int_or_null(err, o, "budget_usec", 1, JSON_INT_MAX, 0, &budget) < 0 ||
	    json_get_int(err, o, "output_bytes", 0, JSON_INT_MAX, &output_bytes) < 0)
		return -EBADMSG;
	output = cJSON_GetObjectItemCaseSensitive(o, "output");
	if (!cJSON_IsArray(output) || cJSON_GetArraySize(output) > HOOK_OUTPUT_LINES)
		return json_fail(err, "'output' is not an array of at most %d lines", HOOK_OUTPUT_LINES);
	cJSON_ArrayForEach(line, output)
		if (!cJSON_IsString(line) || !line->valuestring || !json_text_valid(line->valuestring) ||
		    strlen(line->valuestring) > HOOK_LINE_MAX)
			return json_fail(err, "'output' holds something other than a line of UTF-8 text");

	hook_result_init(h, name, path);
	if (hook_outcome_from_string(result, &h->outcome) < 0)
		return json_fail(err, "'result' is '%s'", result);
	if (json_get_text(err, o, "skip_reason", true, h->skip_reason, sizeof(h->skip_reason)) < 0)
		return -EBADMSG;
	if (h->outcome == HOOK_RUNNING) {
		/* The agent stopped while this hook ran: it never completed, so it
		 * runs again. The interrupted run's figures and lines go. */
		hook_result_init(h, name, path);
		h->outcome = HOOK_PENDING;
		return 0;
	}
	h->exit_status = (int)exit_status;
	h->term_signal = (int)term_signal;
	h->timed_out = timed_out;
	h->start_wall_usec = started;
	h->duration_usec = (uint64_t)duration;
	h->budget_usec = (uint64_t)budget;
	h->output_bytes = (uint64_t)output_bytes;
	cJSON_ArrayForEach(line, output)
		hook_result_add_line(h, line->valuestring);
	return 0;
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

static int approval_from_json(const cJSON *o, struct event_record *rec, struct json_err *err)
{
	int64_t attempts;
	bool wanted;

	if (json_check_keys(err, o, approval_keys, ELEMENTSOF(approval_keys)) < 0 ||
	    json_get_bool(err, o, "wanted", &wanted) < 0 ||
	    json_get_bool(err, o, "approved", &rec->approved) < 0 ||
	    json_get_instant(err, o, "approved_at", &rec->approved_wall_usec) < 0 ||
	    json_get_int(err, o, "attempts", 0, UINT32_MAX, &attempts) < 0)
		return -EBADMSG;
	rec->no_approve = !wanted;
	rec->approve_attempts = (unsigned)attempts;
	return 0;
}

int event_record_from_json_err(const cJSON *o, struct event_record *ret, struct json_err *err)
{
	struct event_record rec;
	const cJSON *hooks, *h;
	char status[16];
	int n, r = -EBADMSG;

	event_record_init(&rec);
	if (json_check_keys(err, o, record_keys, ELEMENTSOF(record_keys)) < 0)
		goto out;
	if (event_doc_from_json(cJSON_GetObjectItemCaseSensitive(o, "event"), &rec.ev,
				&rec.seen.deadline_wall_usec, &rec.drill, err) < 0) {
		err_context(err, "event");
		goto out;
	}
	rec.seen.set = true;
	rec.seen.status = rec.ev.status;
	rec.seen.not_before_usec = rec.ev.not_before_usec;
	if (json_get_text(err, o, "event_status", false, status, sizeof(status)) < 0 ||
	    json_get_instant(err, o, "not_before", &rec.ev.not_before_usec) < 0 ||
	    json_get_instant(err, o, "deadline", &rec.deadline_wall_usec) < 0 ||
	    json_get_bool(err, o, "emergency", &rec.emergency) < 0 ||
	    json_get_instant(err, o, "detected", &rec.detected_wall_usec) < 0 ||
	    json_get_text(err, o, "key", true, rec.key, sizeof(rec.key)) < 0 ||
	    json_get_bool(err, o, "gone", &rec.gone) < 0 ||
	    json_get_instant(err, o, "gone_at", &rec.gone_wall_usec) < 0 ||
	    json_get_bool(err, o, "chain_done", &rec.chain_done) < 0)
		goto out;
	rec.ev.status = event_status_from_string(status);
	if (rec.ev.status == EVENT_STATUS_INVALID) {
		(void)json_fail(err, "'event_status' is '%s'", status);
		goto out;
	}
	if (rec.key[0] && !event_id_valid(rec.key)) {
		(void)json_fail(err, "'key' has control characters");
		goto out;
	}
	if (approval_from_json(cJSON_GetObjectItemCaseSensitive(o, "approval"), &rec, err) < 0) {
		err_context(err, "approval");
		goto out;
	}

	hooks = cJSON_GetObjectItemCaseSensitive(o, "hooks");
	n = cJSON_GetArraySize(hooks);
	if (!cJSON_IsArray(hooks) || n > STATE_RECORD_HOOKS_MAX) {
		(void)json_fail(err, "'hooks' is not an array of at most %d hooks", STATE_RECORD_HOOKS_MAX);
		goto out;
	}
	rec.hooks = xcalloc((size_t)n, sizeof(*rec.hooks));
	cJSON_ArrayForEach(h, hooks) {
		if (hook_from_json(h, &rec.hooks[rec.n_hooks], err) < 0) {
			err_context(err, "hooks[%zu]", rec.n_hooks);
			goto out;
		}
		rec.n_hooks++;
	}

	*ret = rec;
	return 0;
out:
	event_record_done(&rec);
	return r;
}

int event_record_from_json(const cJSON *o, struct event_record *ret)
{
	return event_record_from_json_err(o, ret, NULL);
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
	if (!r->seen.set) {
		/* Until a hook reads it, the event shows as first seen. */
		r->seen.set = true;
		r->seen.status = r->ev.status;
		r->seen.not_before_usec = r->ev.not_before_usec;
		r->seen.deadline_wall_usec = r->deadline_wall_usec;
	}
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
	h = sig_bytes(h, &r->seen.set, sizeof(r->seen.set));
	h = sig_bytes(h, &r->seen.status, sizeof(r->seen.status));
	h = sig_bytes(h, &r->seen.not_before_usec, sizeof(r->seen.not_before_usec));
	h = sig_bytes(h, &r->seen.deadline_wall_usec, sizeof(r->seen.deadline_wall_usec));
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
		abort();   /* only when out of memory */
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
	struct state_sync sync = STATE_SYNC_INIT;
	int r = state_save_begin(s, &sync);

	if (r < 0)
		return r;
	if (!durable) {
		state_sync_drop(&sync);
		return 0;
	}
	return state_sync_finish(&sync);
}

void state_sync_drop(struct state_sync *sync)
{
	if (sync->fd >= 0)
		(void)close(sync->fd);
	if (sync->dfd >= 0)
		(void)close(sync->dfd);
	*sync = (struct state_sync)STATE_SYNC_INIT;
}

int state_sync_finish(struct state_sync *sync)
{
	int r = 0;

	if (sync->fd < 0)
		return 0;
	/* The data first, then the directory that names it. */
	if (fdatasync(sync->fd) < 0 || fsync(sync->dfd) < 0)
		r = -errno;
	state_sync_drop(sync);
	return r;
}

/* Puts the spare file in the place of state.json. An exchange rather than
 * a rename over the old file, and the old file kept as the next save's
 * spare rather than unlinked: ext4 writes a file out at once when it
 * replaces another by rename (auto_da_alloc), and frees an unlinked file's
 * blocks there and then; either cost half a millisecond before the next
 * hook could start. Overwriting the spare in place reuses its blocks. */
static int replace_file(int dfd)
{
	if (renameat2(dfd, STATE_SPARE_NAME, dfd, STATE_FILE_NAME, RENAME_EXCHANGE) == 0)
		return 0;
	/* No state.json yet (the next save makes a new spare), or a file
	 * system without exchange. */
	if ((errno == ENOENT || errno == EINVAL || errno == ENOSYS) &&
	    renameat(dfd, STATE_SPARE_NAME, dfd, STATE_FILE_NAME) == 0)
		return 0;
	return -errno;
}

static int open_state_dir(const char *dir)
{
	int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0 && errno == ENOENT) {
		if (mkdir(dir, 0700) < 0 && errno != EEXIST)
			return -errno;
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	}
	return dfd < 0 ? -errno : dfd;
}

int state_save_begin(const struct agent_state *s, struct state_sync *sync)
{
	char *text = NULL;
	int fd = -1, dfd = -1, r;
	struct stat st;
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

	r = dfd = open_state_dir(s->state_dir);
	if (r < 0)
		goto out;
	fd = openat(dfd, STATE_SPARE_NAME, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0 || fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		r = -EEXIST;
		goto out;
	}
	r = pwrite_all(fd, text, len, 0);
	if (r < 0)
		goto out;
	if (ftruncate(fd, (off_t)len) < 0) {
		r = -errno;
		goto out;
	}
	r = replace_file(dfd);
	if (r < 0)
		goto out;
	state_sync_drop(sync);   /* what it owed is covered by this save's fsyncs */
	sync->fd = fd;
	sync->dfd = dfd;
	fd = dfd = -1;
	r = 0;
out:
	if (fd >= 0)
		(void)close(fd);
	if (dfd >= 0)
		(void)close(dfd);
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
	if (st.st_uid != geteuid()) {
		free(buf);
		return -EPERM;
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

/* The id of a record that did not read back, for the log: as much of it
 * as is plain text, "?" when there is none. */
static void record_label(const cJSON *item, char *buf, size_t n)
{
	const cJSON *id = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, "event"), "id");
	char raw[EVENT_ID_MAX];

	if (!cJSON_IsString(id) || !id->valuestring || !id->valuestring[0]) {
		(void)strscpy(buf, n, "?");
		return;
	}
	(void)strscpy(raw, sizeof(raw), id->valuestring);
	for (char *p = raw; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	(void)json_text_copy(buf, n, raw);
}

/* Parses a whole state file into records (oldest first, at most
 * STATE_RECORDS_MAX: the newest are kept). A file that is not JSON, not a
 * state file or of another version is refused (-EBADMSG, rep->reason); a
 * record that does not read back is left out and counted in rep. */
static int parse_state_file(const char *text, size_t len, struct event_record **ret_records,
			    size_t *ret_n, struct state_load_report *rep)
{
	struct event_record *records = NULL;
	const cJSON *array, *item;
	struct json_err err = { "" };
	size_t n = 0, index = 0;
	int64_t version;
	cJSON *root;
	int r = -EBADMSG;

	/* Embedded NULs would hide trailing bytes from the parser. */
	if (len == 0 || memchr(text, '\0', len)) {
		(void)strscpy(rep->reason, sizeof(rep->reason), len == 0 ? "empty" : "not JSON (a NUL byte)");
		return -EBADMSG;
	}
	/* The length includes our NUL so trailing garbage is refused. */
	root = cJSON_ParseWithLengthOpts(text, len + 1, NULL, true);
	if (!root) {
		(void)strscpy(rep->reason, sizeof(rep->reason), "not JSON");
		return -EBADMSG;
	}
	if (json_check_keys(&err, root, file_keys, ELEMENTSOF(file_keys)) < 0 ||
	    json_get_int(&err, root, "version", 1, JSON_INT_MAX, &version) < 0) {
		(void)snprintf(rep->reason, sizeof(rep->reason), "not a spot-agent state file: %s", err.why);
		goto out;
	}
	if (version != STATE_FILE_VERSION) {
		(void)snprintf(rep->reason, sizeof(rep->reason),
			       "format version %lld, this spot-agent reads version %d only",
			       (long long)version, STATE_FILE_VERSION);
		goto out;
	}
	array = cJSON_GetObjectItemCaseSensitive(root, "records");
	if (!cJSON_IsArray(array)) {
		(void)strscpy(rep->reason, sizeof(rep->reason), "not a spot-agent state file: 'records' is not an array");
		goto out;
	}

	records = xcalloc((size_t)cJSON_GetArraySize(array), sizeof(*records));
	cJSON_ArrayForEach(item, array) {
		struct event_record rec;

		index++;
		memset(&err, 0, sizeof(err));
		if (event_record_from_json_err(item, &rec, &err) < 0) {
			/* One bad record costs that record, not the file. */
			if (rep->dropped++ == 0) {
				char label[48];

				record_label(item, label, sizeof(label));
				(void)snprintf(rep->dropped_reason, sizeof(rep->dropped_reason),
					       "record %zu ('%s'): %s", index, label, err.why);
			}
			continue;
		}
		records[n++] = rec;
	}
	if (n > STATE_RECORDS_MAX) {
		size_t skip = n - STATE_RECORDS_MAX;

		for (size_t j = 0; j < skip; j++)
			event_record_done(&records[j]);
		memmove(records, records + skip, STATE_RECORDS_MAX * sizeof(*records));
		n = STATE_RECORDS_MAX;
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

/* Writes the text of a file whose records were partly left out next to it,
 * as it was, for a human to look at: the next save replaces the file. Not
 * made durable (it is evidence, not state). Returns the path (caller frees)
 * or NULL. */
static char *keep_copy(int dfd, const char *dir, const char *text, size_t len)
{
	uint64_t secs = now_usec(CLOCK_REALTIME) / USEC_PER_SEC;
	char *name = xasprintf("%s.corrupt-%llu", STATE_FILE_NAME, (unsigned long long)secs);
	char *path = NULL;
	int fd;

	fd = openat(dfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
	if (fd >= 0) {
		if (write_all(fd, text, len) == 0 && close(fd) == 0)
			path = xasprintf("%s/%s", dir, name);
		else
			(void)unlinkat(dfd, name, 0);
		fd = -1;
	}
	free(name);
	return path;
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
	{
		struct state_load_report rep = { 0 };

		r = parse_state_file(copy, len, &records, &n, &rep);
		free(rep.moved);
		free(rep.kept);
	}
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
	free(rep.kept);
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

	/* O_NONBLOCK: a FIFO in its place must not hang us; it is refused below.
	 * O_NOFOLLOW: never read through a link (statedir.c refuses one at start). */
	fd = openat(dfd, STATE_FILE_NAME, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | O_NOFOLLOW);
	if (fd < 0) {
		r = errno == ENOENT ? 0 : -errno;
		goto out;
	}
	len = read_bounded(fd, &text);
	r = len < 0 ? (int)len : parse_state_file(text, (size_t)len, &records, &n, rep);
	if (r >= 0) {
		s->records = records;
		s->n_records = n;
		if (rep->dropped > 0)
			rep->kept = keep_copy(dfd, s->state_dir, text, (size_t)len);
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
	cJSON *o = json_object_new();
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

	json_add_text(o, "id", r->ev.id, sizeof(r->ev.id));
	json_add_text(o, "type", event_type_to_string(r->ev.type), 0);
	json_add_text(o, "event_status", event_status_to_string(r->ev.status), 0);
	json_add_instant(o, "detected", r->detected_wall_usec);
	json_add_instant(o, "deadline", r->deadline_wall_usec);
	json_add_bool(o, "chain_done", r->chain_done);
	json_add_bool(o, "approved", r->approved);
	json_add_count(o, "hooks_ok", ok);
	json_add_count(o, "hooks_failed", failed);
	json_add_count(o, "hooks_timeout", timeout);
	json_add_count(o, "hooks_skipped", skipped);
	return o;
}

static cJSON *poll_to_json(const struct poll_stats *p)
{
	cJSON *o = json_object_new();

	json_add_count(o, "ok", p->ok);
	json_add_count(o, "failed", p->failed);
	json_add_count(o, "consecutive_failures", p->consecutive_failures);
	json_add_instant(o, "last_success", p->last_ok_wall_usec);
	json_add_int_or_null(o, "last_latency_usec", usec_int(p->last_latency_usec), 1, JSON_INT_MAX, 0);
	json_add_int_or_null(o, "incarnation", p->incarnation, 0, JSON_INT_MAX, -1);
	json_add_text(o, "last_error", p->last_error, sizeof(p->last_error));
	return o;
}

cJSON *state_to_json(const struct agent_state *s, const char *version)
{
	const struct event_record *current = state_current_const(s);
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	cJSON *o = json_object_new(), *history = json_array_new();
	size_t shown = 0;

	json_add_text(o, "version", version, 0);
	json_add_text(o, "provider", s->provider, 0);
	json_add_text(o, "vm_name", s->vm_name, 0);
	json_add_count(o, "uptime_s", now > s->started_mono_usec ?
		       (now - s->started_mono_usec) / USEC_PER_SEC : 0);
	json_add_text(o, "state", agent_phase_to_string(s->phase), 0);
	json_add_bool(o, "rebalance_recommended", s->rebalance_recommended);
	json_add(o, "poll", poll_to_json(&s->poll));
	/* The record flat at the top: status.event is what the hooks read. */
	if (current)
		add_record_fields(o, current, true, true);
	else
		for (size_t i = 0; i < ELEMENTSOF(record_keys); i++)
			json_add_null(o, record_keys[i]);

	for (size_t i = s->n_records; i > 0 && shown < STATE_HISTORY_MAX; i--) {
		const struct event_record *r = &s->records[i - 1];

		if (r == current)
			continue;
		json_append(history, record_summary(r));
		shown++;
	}
	json_add(o, "history", history);
	return o;
}
