/* queries.c - what the engine answers without changing anything: whether
 * work is still in hand, when it must be woken next, whether the VM is
 * ready and which phase the operator sees. */
#include "engine/engine-internal.h"

#include <string.h>
#include <strings.h>

static bool ack_pending(const struct engine *e, const struct eviction *r)
{
	for (size_t i = 0; i < e->n_rt; i++) {
		const struct engine_rt *rt = &e->rt[i];

		if (strcasecmp(rt->id, r->id) != 0)
			continue;
		for (size_t k = 0; k < r->n_notices; k++)
			if (engine_ack_sendable(e, r, rt, k) && rt->notice[k].ack_next_wall_usec != USEC_INFINITY)
				return true;
	}
	return false;
}

/* Something to finish before the agent may leave or the OS go on: a hook
 * running, a chain with time left, the drain before a due
 * acknowledgement, an acknowledgement due. */
bool engine_in_hand(const struct engine *e)
{
	if (e->slot.id[0] || e->slot.scanning || e->ack_in_flight)
		return true;
	for (size_t i = 0; i < e->records->n; i++) {
		const struct eviction *r = &e->records->items[i];
		size_t n;
		struct hook_result *hooks;

		switch (r->state) {
		case LC_DETECTED:
		case LC_RUNNING:
			hooks = engine_chain((struct eviction *)r, CHAIN_EVICT, &n);
			for (size_t j = 0; j < n; j++)
				if (hooks[j].outcome == HOOK_PENDING && e->now < r->deadline_wall_usec)
					return true;
			if (n == 0 && !r->empty_plan && e->now < r->deadline_wall_usec)
				return true;   /* not planned yet */
			break;
		case LC_PAUSED:
			/* Rounds no longer come once stopping: nothing brings
			 * its notices back. */
			if (!e->stopping)
				return true;
			break;
		case LC_DRAINING:
			return true;
		case LC_ACKING:
			if (ack_pending(e, r))
				return true;
			break;
		case LC_RECOVERING:
			if (!e->stopping && e->now < engine_chain_deadline(r, CHAIN_RECOVER))
				return true;
			break;
		default:
			break;
		}
	}
	return false;
}


/* ---- queries ---- */

static void earliest(uint64_t *t, uint64_t candidate, uint64_t now)
{
	if (candidate > now && candidate < *t)
		*t = candidate;
}

static uint64_t latest_not_before(const struct eviction *r)
{
	uint64_t nb = 0;

	for (size_t k = 0; k < r->n_notices; k++)
		if (r->notices[k].ev.not_before_usec > nb)
			nb = r->notices[k].ev.not_before_usec;
	return nb;
}

/* Only times at which engine_advance() would act (or readiness changes): a
 * wake-up that changes nothing would spin the loop. */
uint64_t engine_next_wake(const struct engine *e)
{
	uint64_t t = USEC_INFINITY, now = e->now;

	if (e->exited)
		return t;
	if (e->shutdown.on && !e->shutdown.decided)
		earliest(&t, e->shutdown.decide_wall_usec, now);
	if (e->shutdown.on && e->shutdown.decided && !e->shutdown.released)
		earliest(&t, e->shutdown.end_wall_usec, now);
	for (size_t i = 0; i < e->records->n; i++) {
		const struct eviction *r = &e->records->items[i];
		const struct state_props *p = lifecycle_props(r->state);
		const struct engine_rt *rt = NULL;

		if (r->state == LC_CLOSED)
			continue;
		for (size_t j = 0; j < e->n_rt; j++)
			if (strcasecmp(e->rt[j].id, r->id) == 0)
				rt = &e->rt[j];
		earliest(&t, engine_chain_deadline(r, p->chain), now);
		if (rt && rt->retry_wall_usec)
			earliest(&t, rt->retry_wall_usec, now);
		for (size_t k = 0; k < r->n_notices; k++) {
			const struct notice *n = &r->notices[k];

			if (n->gone && rt && rt->notice[k].gone_confirmed)
				earliest(&t, n->gone_wall_usec + ENGINE_GONE_GRACE_USEC, now);
			if (n->ack == ACK_WAITING) {
				earliest(&t, n->ev.not_before_usec, now);
				if (rt && rt->notice[k].ack_next_wall_usec != USEC_INFINITY)
					earliest(&t, rt->notice[k].ack_next_wall_usec, now);
				if (rt && e->cfg.heartbeat_period_usec)
					earliest(&t, rt->notice[k].heartbeat_next_wall_usec, now);
			}
		}
		if (r->state == LC_DRAINING)
			earliest(&t, r->drain_until_wall_usec, now);
		if (r->state == LC_CANCELLED)
			earliest(&t, lifecycle_settled_at(r), now);
		if (r->state == LC_DONE)
			earliest(&t, latest_not_before(r), now);
	}
	return t;
}

bool engine_active(const struct engine *e)
{
	return engine_in_hand(e);
}

static bool listed_live(const struct engine *e, const struct eviction *r)
{
	for (size_t i = 0; i < e->n_rt; i++) {
		if (strcasecmp(e->rt[i].id, r->id) != 0)
			continue;
		for (size_t k = 0; k < r->n_notices; k++)
			if (e->rt[i].notice[k].listed && engine_notice_class(e, r, k) == NOTICE_LIVE &&
			    r->notices[k].ev.feed != FEED_OS)
				return true;
	}
	return false;
}

/* An eviction done with its work holds readiness down until it is over:
 * while its NotBefore has not passed, or a round of this process still
 * lists one of its notices. */
bool engine_done_over(const struct engine *e, const struct eviction *r, uint64_t now)
{
	return now >= latest_not_before(r) && !listed_live(e, r);
}

bool engine_ready(const struct engine *e, uint64_t now, const struct eviction **ret_cause)
{
	for (size_t i = e->records->n; i > 0; i--) {
		const struct eviction *r = &e->records->items[i - 1];

		if (lifecycle_props(r->state)->unready || (r->state == LC_DONE && !engine_done_over(e, r, now))) {
			if (ret_cause)
				*ret_cause = r;
			return false;
		}
	}
	if (ret_cause)
		*ret_cause = NULL;
	return true;
}

enum agent_phase engine_phase(const struct engine *e, uint64_t now)
{
	for (size_t i = e->records->n; i > 0; i--) {
		const struct eviction *r = &e->records->items[i - 1];
		enum agent_phase p;

		if (r->state == LC_CLOSED)
			continue;
		p = lifecycle_props(r->state)->phase;
		if (r->state == LC_DONE && engine_done_over(e, r, now))
			p = PHASE_IDLE;
		if (p != PHASE_IDLE)
			return p;
	}
	return PHASE_IDLE;
}

