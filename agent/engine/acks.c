/* acks.c - each notice's acknowledgement (approve, complete the lifecycle
 * action) and Auto Scaling heartbeats: when one may go out, one at a time,
 * retried with a backoff, dropped once moot (the event started, its
 * NotBefore passed, it ended). */
#include "engine/engine-internal.h"


void engine_drop_acks(struct engine *e, struct eviction *r, bool after_hooks_only, const char *reason)
{
	for (size_t k = 0; k < r->n_notices; k++) {
		struct notice *n = &r->notices[k];
		struct engine_action *a;

		if (n->ack != ACK_WAITING || (after_hooks_only && n->policy != ACK_AFTER_HOOKS))
			continue;
		n->ack = ACK_DROPPED;
		a = engine_push(e, ENGINE_ACK_DROPPED, r->id);
		a->notice = k;
		a->reason = reason;
		engine_persist(e);
	}
}

/* The platform went ahead without the acknowledgement: it is moot. */
static const char *ack_moot(const struct notice *n, uint64_t now)
{
	if (n->ev.end != END_NONE)
		return "the provider says it is over";
	if (n->ev.feed == FEED_AZURE_SCHEDULED && n->ev.status == EVENT_STARTED)
		return "the event started";
	if (n->ev.not_before_usec && now >= n->ev.not_before_usec)
		return "its NotBefore passed";
	return NULL;
}

void engine_drop_moot_acks(struct engine *e, struct eviction *r)
{
	for (size_t k = 0; k < r->n_notices; k++) {
		struct notice *n = &r->notices[k];
		const char *why;
		struct engine_action *a;

		if (n->ack != ACK_WAITING || !(why = ack_moot(n, e->now)))
			continue;
		n->ack = ACK_DROPPED;
		a = engine_push(e, ENGINE_ACK_DROPPED, r->id);
		a->notice = k;
		a->reason = why;
		engine_persist(e);
	}
}

/* Notice k may be acknowledged now: a round of this process lists it, and
 * the lifecycle allows its kind of acknowledgement. */
bool engine_ack_sendable(const struct engine *e, const struct eviction *r, const struct engine_rt *rt, size_t k)
{
	const struct notice *n = &r->notices[k];
	const struct state_props *p = lifecycle_props(r->state);

	if (n->ack != ACK_WAITING || !rt->notice[k].listed || n->gone || ack_moot(n, e->now))
		return false;
	return n->policy == ACK_AT_ONCE ? p->at_once_acks : p->after_hooks_acks;
}

static bool abandon_asked(const struct eviction *r)
{
	for (size_t i = 0; i < r->n_hooks; i++)
		if (r->hooks[i].report.abandon)
			return true;
	return false;
}

/* One call to the provider at a time: an acknowledgement and a heartbeat
 * share its request. */
void engine_send_acks(struct engine *e)
{
	if (e->ack_in_flight || e->heartbeat_in_flight)
		return;
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];
		struct engine_rt *rt;

		if (r->state == LC_CLOSED)
			continue;
		rt = engine_rt_of(e, r);
		for (size_t k = 0; k < r->n_notices; k++) {
			struct engine_action *a;

			if (!engine_ack_sendable(e, r, rt, k) || e->now < rt->notice[k].ack_next_wall_usec)
				continue;
			e->ack_in_flight = true;
			a = engine_push(e, ENGINE_SEND_ACK, r->id);
			a->notice = k;
			a->abandon = abandon_asked(r);
			return;
		}
	}
}

static bool heartbeat_due(const struct engine *e, const struct eviction *r, const struct engine_rt *rt,
			  size_t k)
{
	const struct notice *n = &r->notices[k];

	return e->cfg.heartbeat_period_usec > 0 && n->ev.feed == FEED_AWS_LIFECYCLE &&
	       n->ack == ACK_WAITING && rt->notice[k].listed && lifecycle_props(r->state)->heartbeats;
}

void engine_send_heartbeats(struct engine *e)
{
	if (e->heartbeat_in_flight || e->ack_in_flight)
		return;
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];
		struct engine_rt *rt;

		if (r->state == LC_CLOSED)
			continue;
		rt = engine_rt_of(e, r);
		for (size_t k = 0; k < r->n_notices; k++) {
			struct engine_action *a;

			if (!heartbeat_due(e, r, rt, k) || e->now < rt->notice[k].heartbeat_next_wall_usec)
				continue;
			e->heartbeat_in_flight = true;
			rt->notice[k].heartbeat_next_wall_usec = e->now + e->cfg.heartbeat_period_usec;
			a = engine_push(e, ENGINE_SEND_HEARTBEAT, r->id);
			a->notice = k;
			return;
		}
	}
}


static struct notice *notice_at(struct engine *e, const char *id, size_t k, struct eviction **ret_r)
{
	struct eviction *r = id && id[0] ? records_find(e->records, id) : NULL;

	*ret_r = r;
	return r && k < r->n_notices ? &r->notices[k] : NULL;
}

void engine_ack_answered(struct engine *e, const char *id, size_t k, bool ok, uint64_t now)
{
	struct eviction *r;
	struct notice *n = notice_at(e, id, k, &r);

	e->now = now;
	e->ack_in_flight = false;
	if (n) {
		struct engine_rt *rt = engine_rt_of(e, r);
		struct engine_action *a;

		n->ack_attempts++;
		if (ok) {
			n->ack = ACK_SENT;
			n->acked_wall_usec = now;
			rt->notice[k].ack_failures = 0;
			r->last_alive_wall_usec = now;
			a = engine_push(e, ENGINE_ACKED, r->id);
			a->notice = k;
			engine_push(e, ENGINE_PERSIST, NULL);
		} else {
			uint64_t delay = ENGINE_ACK_RETRY_USEC;
			uint64_t cap = n->ev.not_before_usec > now + ENGINE_ACK_FAR_USEC ? ENGINE_ACK_RETRY_LONG_USEC :
											   ENGINE_ACK_RETRY_MAX_USEC;

			for (unsigned j = 0; j < rt->notice[k].ack_failures && delay < cap; j++)
				delay *= 2;
			if (delay > cap)
				delay = cap;
			rt->notice[k].ack_failures++;
			/* Stopping: one last try only. */
			rt->notice[k].ack_next_wall_usec = e->stopping ? USEC_INFINITY : now + delay;
			a = engine_push(e, ENGINE_ACK_FAILED, r->id);
			a->notice = k;
		}
	}
	engine_advance(e, now);
}

void engine_heartbeat_answered(struct engine *e, const char *id, size_t k, bool ok, uint64_t now)
{
	struct eviction *r;
	struct notice *n = notice_at(e, id, k, &r);

	e->heartbeat_in_flight = false;
	if (n && !ok) {
		/* Tried again soon rather than a whole period later. */
		struct engine_rt *rt = engine_rt_of(e, r);
		uint64_t soon = now + ENGINE_ACK_RETRY_MAX_USEC;

		if (soon < rt->notice[k].heartbeat_next_wall_usec)
			rt->notice[k].heartbeat_next_wall_usec = soon;
	}
	engine_advance(e, now);
}

