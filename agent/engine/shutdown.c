/* shutdown.c - the OS shutting down (logind's PrepareForShutdown): an OS
 * notice joins the open eviction or starts one, and the delay lock is
 * released once nothing is left in hand or the budget is spent. */
#include "engine/engine-internal.h"

#include <stdio.h>
#include <string.h>

static void os_notice(const struct engine *e, struct notice *n, uint64_t now)
{
	struct spot_event ev;

	event_init(&ev);
	(void)snprintf(ev.id, sizeof(ev.id), "os-shutdown-%s", e->cfg.boot[0] ? e->cfg.boot : "boot");
	ev.type = EVENT_SHUTDOWN;
	ev.status = EVENT_SCHEDULED;
	ev.provider = e->cfg.provider;
	ev.duration_sec = -1;
	ev.feed = FEED_OS;
	ev.not_before_usec = e->shutdown.end_wall_usec;
	(void)strscpy(ev.source, sizeof(ev.source), "OS");
	(void)strscpy(ev.description, sizeof(ev.description), "the operating system is shutting down");
	engine_notice_from_event(e, n, &ev, now);
	event_done(&ev);
}

static struct notice *os_notice_of(struct eviction *r)
{
	for (size_t k = 0; k < r->n_notices; k++)
		if (r->notices[k].ev.feed == FEED_OS)
			return &r->notices[k];
	return NULL;
}


void engine_decide_shutdown(struct engine *e)
{
	struct eviction *open;
	struct notice n;
	uint64_t now = e->now;

	if (!e->shutdown.on || e->shutdown.decided)
		return;
	open = engine_open_eviction(e);
	if (!open && e->shutdown.rounds < ENGINE_SHUTDOWN_ROUNDS && now < e->shutdown.decide_wall_usec)
		return;  /* waiting for a round asked after it began */
	e->shutdown.decided = true;
	if (open) {
		struct notice *have = os_notice_of(open);

		/* The shutdown joins the eviction in hand: its budget binds. */
		if (have) {
			have->ev.end = END_NONE;
			have->ev.not_before_usec = e->shutdown.end_wall_usec;
			engine_notice_deadline(e, have, now);
			engine_update_deadline(e, open);
		} else {
			os_notice(e, &n, now);
			engine_join(e, open, &n, now);
		}
		engine_push(e, ENGINE_SHUTDOWN_NOTED, open->id);
		return;
	}
	if (!(e->cfg.events_mask & (1u << EVENT_SHUTDOWN))) {
		engine_push(e, ENGINE_SHUTDOWN_NOTED, NULL);
		return;
	}
	os_notice(e, &n, now);
	if (engine_handled_before(e, &n.ev, now)) {
		/* Run once in this boot already. */
		notice_done(&n);
		engine_push(e, ENGINE_SHUTDOWN_NOTED, NULL);
		return;
	}
	open = engine_create_eviction(e, &n, now);
	engine_push(e, ENGINE_SHUTDOWN_NOTED, open->id);
}

/* Once nothing is in hand, or logind's budget is spent, the OS may go on. */
void engine_maybe_release(struct engine *e)
{
	if (!e->shutdown.on || !e->shutdown.decided || e->shutdown.released)
		return;
	if (engine_in_hand(e) && e->now < e->shutdown.end_wall_usec)
		return;
	e->shutdown.released = true;
	engine_push(e, ENGINE_RELEASE_SHUTDOWN, NULL);
}


void engine_shutdown(struct engine *e, uint64_t budget_usec, uint64_t now)
{
	if (e->shutdown.on) {
		engine_advance(e, now);
		return;
	}
	e->shutdown.on = true;
	e->shutdown.rounds = 0;
	e->shutdown.decided = false;
	e->shutdown.released = false;
	e->shutdown.decide_wall_usec = now + ENGINE_SHUTDOWN_WAIT_USEC;
	/* An unlimited delay (InhibitDelayMaxSec=infinity) ends at the last
	 * instant a record can hold. */
	e->shutdown.end_wall_usec = now > JSON_TIME_MAX_USEC || budget_usec > JSON_TIME_MAX_USEC - now ?
		JSON_TIME_MAX_USEC : now + budget_usec;
	engine_advance(e, now);
}

void engine_shutdown_cancelled(struct engine *e, uint64_t now)
{
	e->now = now;
	e->shutdown.on = false;
	/* The OS lives on: its notice is over, the platform's (if any) stay. */
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];
		struct notice *n = lifecycle_props(r->state)->joinable ? os_notice_of(r) : NULL;

		if (n && n->ev.end == END_NONE) {
			n->ev.end = END_COMPLETED;
			engine_persist(e);
		}
	}
	engine_advance(e, now);
}

