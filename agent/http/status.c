/* status.c - the /v1/status document and the facts the endpoint reads:
 * readiness and the phase through the engine, the current eviction flat at
 * the top, the history as summaries. It reads and renders; it never
 * changes what it shows and never logs. */
#include "http/status.h"

#include <stdlib.h>
#include <string.h>

#include "store/json.h"
#include "store/record-json.h"
#include "util.h"

void agent_state_init(struct agent_state *s)
{
	memset(s, 0, sizeof(*s));
	s->started_mono_usec = now_usec(CLOCK_MONOTONIC);
	s->poll.incarnation = -1;
}

void agent_state_done(struct agent_state *s)
{
	if (!s)
		return;
	free(s->provider);
	free(s->vm_name);
	memset(s, 0, sizeof(*s));
}

bool status_ready(const struct agent_state *s, uint64_t now_wall_usec, const struct eviction **ret_cause)
{
	if (!s->engine) {
		if (ret_cause)
			*ret_cause = NULL;
		return true;
	}
	return engine_ready(s->engine, now_wall_usec, ret_cause);
}

enum agent_phase status_phase(const struct agent_state *s, uint64_t now_wall_usec)
{
	return s->engine ? engine_phase(s->engine, now_wall_usec) : PHASE_IDLE;
}

const struct eviction *status_current(const struct agent_state *s)
{
	return s->records ? records_current(s->records) : NULL;
}

/* Microseconds of a duration as a JSON integer, 0 meaning none. */
static int64_t usec_int(uint64_t usec)
{
	return usec > (uint64_t)JSON_INT_MAX ? JSON_INT_MAX : (int64_t)usec;
}

static cJSON *summary(const struct eviction *r)
{
	cJSON *o = json_object_new();
	const struct notice *lead = eviction_lead_const(r);
	unsigned ok = 0, failed = 0, timeout = 0, skipped = 0;
	bool approved = false;

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
	for (size_t k = 0; k < r->n_notices; k++)
		approved = approved || r->notices[k].ack == ACK_SENT;
	json_add_text(o, "id", r->id, sizeof(r->id));
	json_add_text(o, "type", lead ? event_type_to_string(lead->ev.type) : NULL, 0);
	json_add_text(o, "event_status", lead ? event_status_to_string(lead->ev.status) : NULL, 0);
	json_add_text(o, "lifecycle", lifecycle_to_string(r->state), 0);
	json_add_instant(o, "detected", r->detected_wall_usec);
	json_add_instant(o, "deadline", r->deadline_wall_usec);
	json_add_bool(o, "chain_done", r->chain_ended_wall_usec != 0);
	json_add_bool(o, "approved", approved);
	json_add_count(o, "notices", r->n_notices);
	json_add_count(o, "hooks_ok", ok);
	json_add_count(o, "hooks_failed", failed);
	json_add_count(o, "hooks_timeout", timeout);
	json_add_count(o, "hooks_skipped", skipped);
	json_add_text(o, "recover_reason", r->recover_reason != RECOVER_NONE ?
		      recover_reason_to_string(r->recover_reason) : NULL, 0);
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
	json_add_text(o, "optional_error", p->optional_error, sizeof(p->optional_error));
	json_add_bool(o, "imds_v1", p->imds_v1);
	return o;
}

/* What the operator should know of the agent itself: a refused reload,
 * and the notices it saw and does not act on. */
static void add_operator_fields(cJSON *o, const struct agent_state *s)
{
	cJSON *config = json_object_new(), *ignored = json_array_new();
	const struct ignored_event *e;

	json_add_text(config, "reload_error", s->reload_error, sizeof(s->reload_error));
	json_add(o, "config", config);
	for (size_t i = 0; (e = ignored_events_get(&s->ignored, i)); i++) {
		cJSON *item = json_object_new();

		json_add_text(item, "id", e->id, sizeof(e->id));
		json_add_text(item, "type", event_type_to_string(e->type), 0);
		json_add_instant(item, "first_seen", e->first_seen_wall_usec);
		json_append(ignored, item);
	}
	json_add(o, "ignored_events", ignored);
}

cJSON *status_to_json(const struct agent_state *s, const char *version)
{
	const struct eviction *current = status_current(s);
	uint64_t now = now_usec(CLOCK_MONOTONIC), wall = now_usec(CLOCK_REALTIME);
	cJSON *o = json_object_new(), *history = json_array_new();
	size_t shown = 0;

	json_add_text(o, "version", version, 0);
	json_add_text(o, "provider", s->provider, 0);
	json_add_text(o, "vm_name", s->vm_name, 0);
	json_add_count(o, "uptime_s", now > s->started_mono_usec ? (now - s->started_mono_usec) / USEC_PER_SEC : 0);
	json_add_text(o, "state", agent_phase_to_string(status_phase(s, wall)), 0);
	json_add_bool(o, "ready", status_ready(s, wall, NULL));
	json_add_bool(o, "rebalance_recommended", s->rebalance_recommended);
	json_add(o, "poll", poll_to_json(&s->poll));
	/* The eviction flat at the top: status.event is what the hooks read. */
	if (current)
		record_add_fields(o, current, true, RECORD_STATUS);
	else
		for (size_t i = 0; i < record_n_keys; i++)
			json_add_null(o, record_keys[i]);
	for (size_t i = s->records ? s->records->n : 0; i > 0 && shown < STATUS_HISTORY_MAX; i--) {
		const struct eviction *r = &s->records->items[i - 1];

		if (r == current || r->drill)
			continue;
		json_append(history, summary(r));
		shown++;
	}
	json_add(o, "history", history);
	add_operator_fields(o, s);
	return o;
}
