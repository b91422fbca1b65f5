/* record-json.c - an eviction record as JSON: written by one set of
 * functions for state.json and /v1/status alike, and read back strictly
 * (every field there, with its type and in its range, nothing else). It
 * never logs and decides nothing: what the fields mean is the engine's.
 *
 * <record>: id, lifecycle, lifecycle_since(_usec), event (the lead
 *   notice's event document as the latest hook read it on stdin),
 *   event_status, not_before(_usec), key, gone, gone_at(_usec) (the lead
 *   notice's, as now), deadline(_usec), emergency, detected(_usec), boot,
 *   chain_done, chain_ended(_usec), empty_plan, drain_until(_usec),
 *   last_alive(_usec), hooks [<hook>...], approval (the first notice that
 *   is acknowledged, null when none is), notices [<notice>...], recovery
 *   (null, or reason, started(_usec), downtime_usec, hooks).
 * <notice>: event (its own document), key, feed, end, needs_ack,
 *   first_seen(_usec), emergency, gone, gone_at(_usec), started, approval
 *   {policy, state, at(_usec), attempts}.
 * Text is UTF-8 everywhere but a hook's name and path in state.json: those
 * are kept byte for byte, since a hook is recognised by its file name after
 * a restart. The fields that only show others (the lead notice's, the
 * event hooks read, chain_done, approval) must be what the others give.
 * hook-json.c describes a <hook>. */
#include "store/record-json-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/event-json.h"

const char *const record_keys[] = {
	"id", "lifecycle", "lifecycle_since", "lifecycle_since_usec", "event", "event_status",
	"not_before", "not_before_usec", "key", "gone", "gone_at", "gone_at_usec", "deadline",
	"deadline_usec", "emergency", "detected", "detected_usec", "boot", "chain_done", "chain_ended",
	"chain_ended_usec", "empty_plan", "drain_until", "drain_until_usec", "last_alive",
	"last_alive_usec", "hooks", "approval", "notices", "recovery",
};
const size_t record_n_keys = ELEMENTSOF(record_keys);

static const char *const notice_keys[] = {
	"event", "key", "feed", "end", "needs_ack", "first_seen", "first_seen_usec", "emergency",
	"gone", "gone_at", "gone_at_usec", "started", "approval",
};
static const char *const notice_approval_keys[] = {
	"policy", "state", "at", "at_usec", "attempts",
};
static const char *const approval_keys[] = {
	"wanted", "approved", "approved_at", "approved_at_usec", "attempts",
};
static const char *const recovery_keys[] = {
	"reason", "started", "started_usec", "downtime_usec", "hooks",
};
static const char *const end_names[_EVENT_END_MAX] = {
	[END_NONE] = NULL,
	[END_COMPLETED] = "completed",
	[END_CANCELED] = "canceled",
};

/* ---- writing ---- */

/* Microseconds of a duration as a JSON integer, 0 meaning none. */
int64_t usec_int(uint64_t usec)
{
	return usec > (uint64_t)JSON_INT_MAX ? JSON_INT_MAX : (int64_t)usec;
}

static cJSON *notice_to_json(const struct notice *n)
{
	cJSON *o = json_object_new(), *ap = json_object_new();

	json_add(o, "event", event_to_json(&n->ev, n->deadline_wall_usec, false));
	json_add_text(o, "key", n->key, sizeof(n->key));
	json_add_text(o, "feed", event_feed_to_string(n->ev.feed), 0);
	json_add_text(o, "end", end_names[n->ev.end < _EVENT_END_MAX ? n->ev.end : END_NONE], 0);
	json_add_bool(o, "needs_ack", n->ev.needs_ack);
	json_add_instant(o, "first_seen", n->first_seen_wall_usec);
	json_add_bool(o, "emergency", n->emergency);
	json_add_bool(o, "gone", n->gone);
	json_add_instant(o, "gone_at", n->gone_wall_usec);
	json_add_bool(o, "started", n->started);
	json_add_text(ap, "policy", ack_policy_to_string(n->policy), 0);
	json_add_text(ap, "state", ack_state_to_string(n->ack), 0);
	json_add_instant(ap, "at", n->acked_wall_usec);
	json_add_int(ap, "attempts", n->ack_attempts, 0, UINT32_MAX);
	json_add(o, "approval", ap);
	return o;
}

/* The first notice that is acknowledged, for the record's "approval". */
static const struct notice *acked_notice(const struct eviction *r)
{
	for (size_t k = 0; k < r->n_notices; k++)
		if (r->notices[k].ack != ACK_NONE)
			return &r->notices[k];
	return NULL;
}

void record_add_fields(cJSON *o, const struct eviction *r, bool with_output, enum record_form form)
{
	const struct notice *lead = eviction_lead_const(r), *acked = acked_notice(r);
	cJSON *notices = json_array_new();
	struct spot_event seen;
	uint64_t seen_deadline;

	eviction_seen_event(r, &seen, &seen_deadline);
	json_add_text(o, "id", r->id, sizeof(r->id));
	json_add_text(o, "lifecycle", lifecycle_to_string(r->state), 0);
	json_add_instant(o, "lifecycle_since", r->state_since_wall_usec);
	json_add(o, "event", event_to_json(&seen, seen_deadline, r->drill));
	json_add_text(o, "event_status", lead ? event_status_to_string(lead->ev.status) : NULL, 0);
	json_add_instant(o, "not_before", lead ? lead->ev.not_before_usec : 0);
	json_add_text(o, "key", lead ? lead->key : NULL, EVENT_ID_MAX);
	json_add_bool(o, "gone", lead && lead->gone);
	json_add_instant(o, "gone_at", lead ? lead->gone_wall_usec : 0);
	json_add_instant(o, "deadline", r->deadline_wall_usec);
	json_add_bool(o, "emergency", r->emergency);
	json_add_instant(o, "detected", r->detected_wall_usec);
	json_add_text(o, "boot", r->boot, sizeof(r->boot));
	json_add_bool(o, "chain_done", r->chain_ended_wall_usec != 0);
	json_add_instant(o, "chain_ended", r->chain_ended_wall_usec);
	json_add_bool(o, "empty_plan", r->empty_plan);
	json_add_instant(o, "drain_until", r->drain_until_wall_usec);
	json_add_instant(o, "last_alive", r->last_alive_wall_usec);
	json_add(o, "hooks", hooks_to_json(r->hooks, r->n_hooks, with_output, form));
	if (acked) {
		cJSON *ap = json_object_new();

		json_add_bool(ap, "wanted", acked->ack != ACK_DROPPED);
		json_add_bool(ap, "approved", acked->ack == ACK_SENT);
		json_add_instant(ap, "approved_at", acked->acked_wall_usec);
		json_add_int(ap, "attempts", acked->ack_attempts, 0, UINT32_MAX);
		json_add(o, "approval", ap);
	} else {
		json_add_null(o, "approval");
	}
	for (size_t k = 0; k < r->n_notices; k++)
		json_append(notices, notice_to_json(&r->notices[k]));
	json_add(o, "notices", notices);
	if (r->recover_reason != RECOVER_NONE || r->n_recover_hooks > 0) {
		cJSON *rec = json_object_new();

		json_add_text(rec, "reason", recover_reason_to_string(r->recover_reason), 0);
		json_add_instant(rec, "started", r->recover_started_wall_usec);
		json_add_int_or_null(rec, "downtime_usec", usec_int(r->downtime_usec), 0, JSON_INT_MAX, -1);
		json_add(rec, "hooks", hooks_to_json(r->recover_hooks, r->n_recover_hooks, with_output, form));
		json_add(o, "recovery", rec);
	} else {
		json_add_null(o, "recovery");
	}
}

cJSON *record_to_json(const struct eviction *r, bool with_output)
{
	cJSON *o = json_object_new();

	record_add_fields(o, r, with_output, RECORD_FILE);
	return o;
}

char *record_stdin(struct eviction *r)
{
	struct spot_event seen;
	uint64_t deadline;
	char *printed, *text;
	cJSON *o;

	eviction_seen_event(r, &seen, &deadline);
	o = event_to_json(&seen, deadline, r->drill);
	printed = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	text = xstrdup(printed ? printed : "");
	cJSON_free(printed);
	if (!text[0])
		abort();   /* only when out of memory */
	return text;
}

/* ---- reading back ---- */

void err_context(struct json_err *err, const char *fmt, ...)
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

static int enum_text(struct json_err *err, const cJSON *o, const char *key, int (*parse)(const char *, int *),
		     int *ret)
{
	char text[32];

	if (json_get_text(err, o, key, false, text, sizeof(text)) < 0)
		return -EBADMSG;
	if (parse(text, ret) < 0)
		return json_fail(err, "'%s' is '%s'", key, text);
	return 0;
}

static int parse_feed(const char *s, int *ret)
{
	for (int f = 0; f < _EVENT_FEED_MAX; f++)
		if (strcmp(s, event_feed_to_string((enum event_feed)f)) == 0) {
			*ret = f;
			return 0;
		}
	return -EINVAL;
}

static int parse_policy(const char *s, int *ret)
{
	enum ack_policy p;
	int r = ack_policy_from_string(s, &p);

	*ret = (int)p;
	return r;
}

static int parse_ack(const char *s, int *ret)
{
	enum ack_state a;
	int r = ack_state_from_string(s, &a);

	*ret = (int)a;
	return r;
}

static int parse_lifecycle(const char *s, int *ret)
{
	enum lifecycle l;
	int r = lifecycle_from_string(s, &l);

	*ret = (int)l;
	return r;
}

static int parse_reason(const char *s, int *ret)
{
	enum recover_reason rr;
	int r = recover_reason_from_string(s, &rr);

	*ret = (int)rr;
	return r;
}

static int notice_from_json(const cJSON *o, struct notice *ret, struct json_err *err)
{
	struct notice n;
	const cJSON *ap, *end;
	int feed = 0, policy = 0, ack = 0;
	int64_t attempts;

	notice_init(&n);
	if (json_check_keys(err, o, notice_keys, ELEMENTSOF(notice_keys)) < 0)
		goto fail;
	if (event_doc_from_json(cJSON_GetObjectItemCaseSensitive(o, "event"), &n.ev, &n.deadline_wall_usec, NULL,
				err) < 0) {
		err_context(err, "event");
		goto fail;
	}
	if (json_get_text(err, o, "key", true, n.key, sizeof(n.key)) < 0 ||
	    enum_text(err, o, "feed", parse_feed, &feed) < 0 ||
	    json_get_bool(err, o, "needs_ack", &n.ev.needs_ack) < 0 ||
	    json_get_instant(err, o, "first_seen", &n.first_seen_wall_usec) < 0 ||
	    json_get_bool(err, o, "emergency", &n.emergency) < 0 ||
	    json_get_bool(err, o, "gone", &n.gone) < 0 ||
	    json_get_instant(err, o, "gone_at", &n.gone_wall_usec) < 0 ||
	    json_get_bool(err, o, "started", &n.started) < 0)
		goto fail;
	if (n.key[0] && !event_id_valid(n.key)) {
		(void)json_fail(err, "'key' has control characters");
		goto fail;
	}
	n.ev.feed = (enum event_feed)feed;
	end = cJSON_GetObjectItemCaseSensitive(o, "end");
	if (cJSON_IsString(end) && end->valuestring && strcmp(end->valuestring, "completed") == 0)
		n.ev.end = END_COMPLETED;
	else if (cJSON_IsString(end) && end->valuestring && strcmp(end->valuestring, "canceled") == 0)
		n.ev.end = END_CANCELED;
	else if (!cJSON_IsNull(end)) {
		(void)json_fail(err, "'end' is not null, 'completed' or 'canceled'");
		goto fail;
	}
	ap = cJSON_GetObjectItemCaseSensitive(o, "approval");
	if (json_check_keys(err, ap, notice_approval_keys, ELEMENTSOF(notice_approval_keys)) < 0 ||
	    enum_text(err, ap, "policy", parse_policy, &policy) < 0 ||
	    enum_text(err, ap, "state", parse_ack, &ack) < 0 ||
	    json_get_instant(err, ap, "at", &n.acked_wall_usec) < 0 ||
	    json_get_int(err, ap, "attempts", 0, UINT32_MAX, &attempts) < 0) {
		err_context(err, "approval");
		goto fail;
	}
	n.policy = (enum ack_policy)policy;
	n.ack = (enum ack_state)ack;
	n.ack_attempts = (unsigned)attempts;
	*ret = n;
	return 0;
fail:
	notice_done(&n);
	return -EBADMSG;
}

static int recovery_from_json(const cJSON *o, struct eviction *rec, struct json_err *err)
{
	int reason = 0;
	int64_t downtime;

	if (cJSON_IsNull(o))
		return 0;
	if (json_check_keys(err, o, recovery_keys, ELEMENTSOF(recovery_keys)) < 0 ||
	    enum_text(err, o, "reason", parse_reason, &reason) < 0 ||
	    json_get_instant(err, o, "started", &rec->recover_started_wall_usec) < 0 ||
	    json_get_int_or_null(err, o, "downtime_usec", 0, JSON_INT_MAX, -1, &downtime) < 0)
		return -EBADMSG;
	rec->recover_reason = (enum recover_reason)reason;
	rec->downtime_usec = downtime > 0 ? (uint64_t)downtime : 0;
	return hooks_from_json(cJSON_GetObjectItemCaseSensitive(o, "hooks"), &rec->recover_hooks,
			       &rec->n_recover_hooks, err);
}

/* A number as a double: the writer builds numbers as raw digits, a parsed
 * document holds them as doubles (exact within +-(2^53 - 1)). */
static bool number_of(const cJSON *v, double *ret)
{
	char *end;

	if (cJSON_IsNumber(v)) {
		*ret = v->valuedouble;
		return true;
	}
	if (cJSON_IsRaw(v) && v->valuestring) {
		*ret = strtod(v->valuestring, &end);
		return end != v->valuestring && *end == '\0';
	}
	return false;
}

/* a and b hold the same JSON value. */
static bool same_value(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;
	double da, db;

	if (!a || !b)
		return a == b;
	if (number_of(a, &da) && number_of(b, &db))
		return da == db;
	if ((a->type & 0xff) != (b->type & 0xff))
		return false;
	switch (a->type & 0xff) {
	case cJSON_String:
		return a->valuestring && b->valuestring && strcmp(a->valuestring, b->valuestring) == 0;
	case cJSON_Array:
		for (x = a->child, y = b->child; x && y; x = x->next, y = y->next)
			if (!same_value(x, y))
				return false;
		return !x && !y;
	case cJSON_Object:
		if (cJSON_GetArraySize(a) != cJSON_GetArraySize(b))
			return false;
		cJSON_ArrayForEach(x, a)
			if (!x->string || !same_value(x, cJSON_GetObjectItemCaseSensitive(b, x->string)))
				return false;
		return true;
	default:
		return true;   /* null, true, false: the type says it all */
	}
}

/* In what the record renders to, the hooks that were saved running as
 * they were saved: they read back pending, on purpose. */
static void keep_running(cJSON *again, const cJSON *saved)
{
	const cJSON *h;
	int i = 0;

	cJSON_ArrayForEach(h, saved) {
		const cJSON *result = cJSON_GetObjectItemCaseSensitive(h, "result");

		if (cJSON_IsString(result) && strcmp(result->valuestring, "running") == 0)
			(void)cJSON_ReplaceItemInArray(again, i, cJSON_Duplicate(h, true));
		i++;
	}
}

/* Nothing the writer would not write: the record renders back to what was
 * read, which holds the fields that only show others (the lead notice's
 * status, NotBefore, key and gone, the event hooks read, chain_done, the
 * approval) and the values the reader passes over (a notice's drill). */
static int check_rendered(const cJSON *o, const struct eviction *rec, struct json_err *err)
{
	cJSON *again = record_to_json(rec, true);
	const cJSON *saved_rec = cJSON_GetObjectItemCaseSensitive(o, "recovery");
	cJSON *again_rec = cJSON_GetObjectItemCaseSensitive(again, "recovery");
	int r = 0;

	keep_running(cJSON_GetObjectItemCaseSensitive(again, "hooks"), cJSON_GetObjectItemCaseSensitive(o, "hooks"));
	if (cJSON_IsObject(saved_rec) && cJSON_IsObject(again_rec))
		keep_running(cJSON_GetObjectItemCaseSensitive(again_rec, "hooks"),
			     cJSON_GetObjectItemCaseSensitive(saved_rec, "hooks"));
	for (size_t i = 0; i < record_n_keys && r == 0; i++)
		if (!same_value(cJSON_GetObjectItemCaseSensitive(o, record_keys[i]),
				cJSON_GetObjectItemCaseSensitive(again, record_keys[i])))
			r = json_fail(err, "'%s' does not follow from the rest of the record", record_keys[i]);
	cJSON_Delete(again);
	return r;
}

int record_from_json(const cJSON *o, struct eviction *ret, struct json_err *err)
{
	struct eviction rec;
	const cJSON *notices, *item, *approval;
	uint64_t ignored_instant;
	int lifecycle = 0, n;
	bool ignored_bool;

	eviction_init(&rec);
	if (json_check_keys(err, o, record_keys, record_n_keys) < 0 ||
	    json_get_text(err, o, "id", false, rec.id, sizeof(rec.id)) < 0 ||
	    enum_text(err, o, "lifecycle", parse_lifecycle, &lifecycle) < 0 ||
	    json_get_instant(err, o, "lifecycle_since", &rec.state_since_wall_usec) < 0 ||
	    json_get_instant(err, o, "deadline", &rec.deadline_wall_usec) < 0 ||
	    json_get_bool(err, o, "emergency", &rec.emergency) < 0 ||
	    json_get_instant(err, o, "detected", &rec.detected_wall_usec) < 0 ||
	    json_get_text(err, o, "boot", true, rec.boot, sizeof(rec.boot)) < 0 ||
	    json_get_instant(err, o, "chain_ended", &rec.chain_ended_wall_usec) < 0 ||
	    json_get_bool(err, o, "empty_plan", &rec.empty_plan) < 0 ||
	    json_get_instant(err, o, "drain_until", &rec.drain_until_wall_usec) < 0 ||
	    json_get_instant(err, o, "last_alive", &rec.last_alive_wall_usec) < 0 ||
	    /* The lead notice's fields, shown at the top for /v1/status. */
	    json_get_text(err, o, "event_status", true, NULL, 16) < 0 ||
	    json_get_instant(err, o, "not_before", &ignored_instant) < 0 ||
	    json_get_text(err, o, "key", true, NULL, EVENT_ID_MAX) < 0 ||
	    json_get_bool(err, o, "gone", &ignored_bool) < 0 ||
	    json_get_instant(err, o, "gone_at", &ignored_instant) < 0 ||
	    json_get_bool(err, o, "chain_done", &ignored_bool) < 0)
		goto fail;
	if (!event_id_valid(rec.id)) {
		(void)json_fail(err, "'id' has control characters");
		goto fail;
	}
	rec.state = (enum lifecycle)lifecycle;
	{
		struct spot_event seen;

		event_init(&seen);
		if (event_doc_from_json(cJSON_GetObjectItemCaseSensitive(o, "event"), &seen,
					&rec.seen.deadline_wall_usec, &rec.drill, err) < 0) {
			err_context(err, "event");
			goto fail;
		}
		rec.seen.set = true;
		rec.seen.status = seen.status;
		rec.seen.not_before_usec = seen.not_before_usec;
		event_done(&seen);
	}
	approval = cJSON_GetObjectItemCaseSensitive(o, "approval");
	if (!cJSON_IsNull(approval) && json_check_keys(err, approval, approval_keys, ELEMENTSOF(approval_keys)) < 0) {
		err_context(err, "approval");
		goto fail;
	}
	if (hooks_from_json(cJSON_GetObjectItemCaseSensitive(o, "hooks"), &rec.hooks, &rec.n_hooks, err) < 0)
		goto fail;
	notices = cJSON_GetObjectItemCaseSensitive(o, "notices");
	n = cJSON_GetArraySize(notices);
	if (!cJSON_IsArray(notices) || n < 1 || n > RECORD_NOTICES_MAX) {
		(void)json_fail(err, "'notices' is not an array of 1 to %d notices", RECORD_NOTICES_MAX);
		goto fail;
	}
	rec.notices = xcalloc((size_t)n, sizeof(*rec.notices));
	cJSON_ArrayForEach(item, notices) {
		if (notice_from_json(item, &rec.notices[rec.n_notices], err) < 0) {
			err_context(err, "notices[%zu]", rec.n_notices);
			goto fail;
		}
		rec.n_notices++;
	}
	if (recovery_from_json(cJSON_GetObjectItemCaseSensitive(o, "recovery"), &rec, err) < 0) {
		err_context(err, "recovery");
		goto fail;
	}
	if (check_rendered(o, &rec, err) < 0)
		goto fail;
	*ret = rec;
	return 0;
fail:
	eviction_done(&rec);
	return -EBADMSG;
}
