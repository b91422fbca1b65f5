/* agent-ack.c - the engine's acknowledgements (Azure StartRequests, the
 * Auto Scaling CompleteLifecycleAction) and heartbeats, sent through the
 * provider one at a time, within the metadata service's rate budget (an
 * acknowledgement waits for a free request rather than break it; polls
 * always leave it one), and their answers handed back to the engine. */
#include "agent-internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

static void on_ack_answer(const char *event_id, enum imds_result result, const char *error, void *userdata)
{
	struct agent *a = userdata;
	bool ok = result == IMDS_RESULT_OK;
	char id[EVENT_ID_MAX];

	a->ack.in_flight = false;
	metrics_approval(a->metrics, ok);
	(void)strscpy(a->ack.error, sizeof(a->ack.error), ok ? "" : error);
	(void)strscpy(id, sizeof(id), a->ack.id);
	engine_ack_answered(&a->engine, id, a->ack.notice, ok, agent_now_wall());
	agent_drain(a);
}

/* The notice's provider id and feed, as the provider acknowledges it. */
static bool ack_of(struct agent *a, const char *id, size_t k, struct provider_ack *ret)
{
	struct eviction *r = records_find(&a->records, id);

	if (!r || k >= r->n_notices)
		return false;
	ret->event_id = r->notices[k].ev.id;
	ret->feed = r->notices[k].ev.feed;
	return true;
}

/* When the metadata service's rate budget has room for what the next
 * call sends there (now, or later when the timer is armed for it). A
 * stopping agent does not wait. */
static bool room_now(struct agent *a)
{
	uint64_t now = now_usec(CLOCK_MONOTONIC), at, armed = USEC_INFINITY;
	unsigned cost = a->provider ? provider_call_cost(a->provider) : 1;
	int enabled = SD_EVENT_OFF;

	if (cost == 0 || a->stopping)
		return true;
	at = poll_rate_free_at(&a->sched, now, cost);
	if (at <= now)
		return true;
	/* One timer for both kinds of call: the earlier wait wins. */
	(void)sd_event_source_get_enabled(a->ack_timer, &enabled);
	if (enabled != SD_EVENT_OFF)
		(void)sd_event_source_get_time(a->ack_timer, &armed);
	if (at < armed) {
		(void)sd_event_source_set_time(a->ack_timer, at);
		(void)sd_event_source_set_enabled(a->ack_timer, SD_EVENT_ONESHOT);
	}
	return false;
}

/* Sends the acknowledgement now, or as soon as the rate budget has room. */
static void send_ack_now(struct agent *a)
{
	struct provider_ack ack = { 0 };
	int r;

	if (!room_now(a)) {
		a->ack.waiting = true;
		return;
	}
	a->ack.waiting = false;
	if (!ack_of(a, a->ack.id, a->ack.notice, &ack)) {
		r = -ENOENT;
	} else {
		ack.abandon = a->ack.abandon;
		a->ack.in_flight = true;
		r = a->provider ? provider_approve(a->provider, &ack, AGENT_APPROVE_TIMEOUT_USEC, on_ack_answer, a) :
				  -EOPNOTSUPP;
	}
	if (r < 0) {
		a->ack.in_flight = false;
		(void)snprintf(a->ack.error, sizeof(a->ack.error), "cannot send: %s", strerror(-r));
		engine_ack_answered(&a->engine, a->ack.id, a->ack.notice, false, agent_now_wall());
	}
}

void agent_send_ack(struct agent *a, const struct engine_action *act)
{
	(void)strscpy(a->ack.id, sizeof(a->ack.id), act->id);
	a->ack.notice = act->notice;
	a->ack.abandon = act->abandon;
	send_ack_now(a);
}

static void on_heartbeat_answer(enum imds_result result, const char *error, void *userdata)
{
	struct agent *a = userdata;
	bool ok = result == IMDS_RESULT_OK;
	char id[EVENT_ID_MAX];

	a->heartbeat.in_flight = false;
	/* One line per change: a failing heartbeat, and its recovery. */
	if (!ok && strcmp(a->heartbeat.error, error) != 0)
		log_event(LOG_WARNING, a->heartbeat.id, "lifecycle heartbeat failed: %s, retrying", error);
	else if (ok && a->heartbeat.error[0])
		log_event(LOG_INFO, a->heartbeat.id, "lifecycle heartbeats answer again");
	(void)strscpy(a->heartbeat.error, sizeof(a->heartbeat.error), ok ? "" : error);
	(void)strscpy(id, sizeof(id), a->heartbeat.id);
	engine_heartbeat_answered(&a->engine, id, a->heartbeat.notice, ok, agent_now_wall());
	agent_drain(a);
}

static void send_heartbeat_now(struct agent *a)
{
	int r;

	if (!room_now(a)) {
		a->heartbeat.waiting = true;
		return;
	}
	a->heartbeat.waiting = false;
	a->heartbeat.in_flight = true;
	r = a->provider ? provider_heartbeat(a->provider, on_heartbeat_answer, a) : -EOPNOTSUPP;
	if (r < 0) {
		a->heartbeat.in_flight = false;
		engine_heartbeat_answered(&a->engine, a->heartbeat.id, a->heartbeat.notice, false,
					  agent_now_wall());
	}
}

void agent_send_heartbeat(struct agent *a, const struct engine_action *act)
{
	(void)strscpy(a->heartbeat.id, sizeof(a->heartbeat.id), act->id);
	a->heartbeat.notice = act->notice;
	send_heartbeat_now(a);
}

static int on_ack_timer(sd_event_source *s, uint64_t usec, void *userdata)
{
	struct agent *a = userdata;

	if (a->ack.waiting)
		send_ack_now(a);
	if (a->heartbeat.waiting)
		send_heartbeat_now(a);
	agent_drain(a);
	return 0;
}

int agent_ack_setup(struct agent *a)
{
	int r = sd_event_add_time(a->event, &a->ack_timer, CLOCK_MONOTONIC, USEC_INFINITY, 1, on_ack_timer, a);

	if (r >= 0)
		(void)sd_event_source_set_description(a->ack_timer, "approve");
	return r;
}

void agent_ack_done(struct agent *a)
{
	a->ack_timer = sd_event_source_disable_unref(a->ack_timer);
}
