/* notices.c - a round of the metadata service, notice by notice: which
 * eviction each notice belongs to (one open eviction per machine: a second
 * notice joins it), what changed in a notice already held, which feeds may
 * withdraw a notice by leaving the listing, and each eviction's deadline. */
#include "engine/engine-internal.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A notice an eviction already handled is not a new eviction for this
 * long after its NotBefore (it may linger in the listing, Started). */
#define HANDLED_MEMORY_USEC (3600 * USEC_PER_SEC)

/* Feeds whose notice can be withdrawn by leaving the listing. An AWS spot
 * notice, an Auto Scaling termination, a GCP preemption and the OS's
 * shutdown are never taken back: a metadata answer that misses them is a
 * glitch, and the eviction goes on. */
static bool feed_withdraws(enum event_feed f)
{
	return f == FEED_AZURE_SCHEDULED || f == FEED_AWS_MAINTENANCE || f == FEED_GCP_MAINTENANCE;
}

enum notice_class engine_notice_class(const struct engine *e, const struct eviction *r, size_t k)
{
	const struct notice *n = &r->notices[k];
	const struct engine_rt *rt = NULL;

	if (n->ev.end == END_COMPLETED)
		return NOTICE_ENDED;
	if (n->ev.end == END_CANCELED)
		return NOTICE_WITHDRAWN;
	if (!n->gone || !feed_withdraws(n->ev.feed))
		return NOTICE_LIVE;
	for (size_t i = 0; i < e->n_rt; i++)
		if (strcasecmp(e->rt[i].id, r->id) == 0)
			rt = &e->rt[i];
	/* Gone as a file says, before a round of this process confirmed it:
	 * the grace has not begun. */
	if (!rt || !rt->notice[k].gone_confirmed || e->now < n->gone_wall_usec + ENGINE_GONE_GRACE_USEC)
		return NOTICE_GONE;
	/* Started, approved (the platform was told to go ahead and takes an
	 * approved event out of the listing once it is done) or gone past its
	 * NotBefore: it happened. */
	if (n->started || n->ack == ACK_SENT ||
	    (n->ev.not_before_usec && n->gone_wall_usec >= n->ev.not_before_usec))
		return NOTICE_ENDED;
	return NOTICE_WITHDRAWN;
}

/* A NotBefore and the deadline it gives, as first seen. */
void engine_notice_deadline(const struct engine *e, struct notice *n, uint64_t now)
{
	n->deadline_wall_usec = event_deadline(&n->ev, now, e->cfg.margin_usec, &n->emergency);
}

void engine_update_deadline(struct engine *e, struct eviction *r)
{
	uint64_t d = USEC_INFINITY, drain;
	bool emergency = false;

	for (size_t k = 0; k < r->n_notices; k++) {
		enum notice_class c = engine_notice_class(e, r, k);

		if ((c == NOTICE_LIVE || c == NOTICE_GONE) && r->notices[k].deadline_wall_usec < d) {
			d = r->notices[k].deadline_wall_usec;
			emergency = r->notices[k].emergency;
		}
	}
	if (d == USEC_INFINITY)
		return;
	drain = r->detected_wall_usec + e->cfg.drain_usec;
	if (d != r->deadline_wall_usec || emergency != r->emergency) {
		r->deadline_wall_usec = d;
		r->emergency = emergency;
		engine_persist(e);
	}
	r->drain_until_wall_usec = drain < d ? drain : d;
	if (e->slot.chain == CHAIN_EVICT)
		engine_clamp_running(e, r, d);
}

void engine_notice_from_event(const struct engine *e, struct notice *n,
			      const struct spot_event *ev, uint64_t now)
{
	notice_init(n);
	event_copy(&n->ev, ev);
	if (ev->id_from_first_seen) {
		char suffix[24];
		size_t room;

		(void)strscpy(n->key, sizeof(n->key), ev->id);
		(void)snprintf(suffix, sizeof(suffix), "-%" PRIu64, now / USEC_PER_SEC);
		/* The key is cut, never the suffix that tells notices apart. */
		room = sizeof(n->ev.id) - strlen(suffix) - 1;
		(void)snprintf(n->ev.id, sizeof(n->ev.id), "%.*s%s", (int)room, ev->id, suffix);
	}
	if (n->ev.not_before_usec == 0 && ev->notice_usec > 0)
		n->ev.not_before_usec = now + ev->notice_usec;
	n->ev.id_from_first_seen = false;
	n->ev.notice_usec = 0;
	n->first_seen_wall_usec = now;
	engine_notice_deadline(e, n, now);
	n->started = ev->status == EVENT_STARTED || (n->ev.not_before_usec && now >= n->ev.not_before_usec);
	n->policy = ev->type >= 0 && ev->type < _EVENT_TYPE_MAX ? e->cfg.ack_policy[ev->type] : ACK_AFTER_HOOKS;
	n->ack = ev->needs_ack && e->cfg.approve && n->policy != ACK_NEVER ? ACK_WAITING : ACK_NONE;
}

static bool notice_matches(const struct notice *n, const struct spot_event *ev)
{
	if (ev->id_from_first_seen)
		return n->key[0] && strcasecmp(n->key, ev->id) == 0;
	return !n->key[0] && strcasecmp(n->ev.id, ev->id) == 0;
}

/* The one eviction new notices join: open, not recovering or closed. */
struct eviction *engine_open_eviction(struct engine *e)
{
	for (size_t i = e->records->n; i > 0; i--) {
		struct eviction *r = &e->records->items[i - 1];

		if (lifecycle_props(r->state)->joinable)
			return r;
	}
	return NULL;
}

/* An eviction already handled this notice (it recovered or closed, and
 * not because the notice was withdrawn): a notice lingering in the
 * listing is not a new eviction. */
bool engine_handled_before(struct engine *e, const struct spot_event *ev, uint64_t now)
{
	for (size_t i = e->records->n; i > 0; i--) {
		const struct eviction *r = &e->records->items[i - 1];

		if (lifecycle_props(r->state)->joinable || r->recover_reason == RECOVER_CANCELLED)
			continue;
		for (size_t k = 0; k < r->n_notices; k++) {
			const struct notice *n = &r->notices[k];
			uint64_t t = n->ev.not_before_usec ? n->ev.not_before_usec : n->first_seen_wall_usec;

			if (notice_matches(n, ev) && now < t + HANDLED_MEMORY_USEC)
				return true;
		}
	}
	return false;
}

static bool wanted(const struct engine *e, const struct spot_event *ev)
{
	return ev->type >= 0 && ev->type < _EVENT_TYPE_MAX && (e->cfg.events_mask & (1u << ev->type));
}

/* An id no eviction held uses: the notice's own, or with a suffix. */
static void unique_id(struct engine *e, char *id, size_t n, uint64_t now)
{
	char base[EVENT_ID_MAX], suffix[32];

	if (!records_find(e->records, id))
		return;
	(void)strscpy(base, sizeof(base), id);
	for (unsigned k = 1; k < 1000; k++) {
		size_t room;

		(void)snprintf(suffix, sizeof(suffix), "-%" PRIu64 "-%u", now / USEC_PER_SEC, k);
		room = n - strlen(suffix) - 1;
		(void)snprintf(id, n, "%.*s%s", (int)room, base, suffix);
		if (!records_find(e->records, id))
			return;
	}
}

/* A new eviction led by notice n (taken over). Everything the agent
 * makes up for it is fixed here, and on disk before a hook sees it. */
struct eviction *engine_create_eviction(struct engine *e, struct notice *n, uint64_t now)
{
	struct eviction rec, *r;
	struct engine_rt *rt;

	eviction_init(&rec);
	(void)strscpy(rec.id, sizeof(rec.id), n->ev.id);
	unique_id(e, rec.id, sizeof(rec.id), now);
	rec.state = LC_DETECTED;
	rec.state_since_wall_usec = now;
	rec.detected_wall_usec = now;
	rec.last_alive_wall_usec = now;
	rec.deadline_wall_usec = n->deadline_wall_usec;
	rec.emergency = n->emergency;
	(void)strscpy(rec.boot, sizeof(rec.boot), e->cfg.boot);
	rec.notices = xcalloc(1, sizeof(*rec.notices));
	rec.notices[0] = *n;
	rec.n_notices = 1;
	memset(n, 0, sizeof(*n));
	{
		uint64_t drain = now + e->cfg.drain_usec;

		rec.drain_until_wall_usec = drain < rec.deadline_wall_usec ? drain : rec.deadline_wall_usec;
	}
	r = records_add(e->records, &rec);
	engine_prune_rt(e);
	rt = engine_rt_of(e, r);
	memset(rt->notice, 0, sizeof(rt->notice));
	rt->notice[0].listed = true;
	rt->notice[0].matched = true;
	engine_push(e, ENGINE_DETECTED, r->id);
	e->persist_new = true;
	/* A newer eviction takes the hook slot from recover hooks. */
	for (size_t i = 0; i < e->records->n; i++)
		if (e->records->items[i].state == LC_RECOVERING)
			lifecycle_fire(e, &e->records->items[i], IN_PREEMPTED);
	return r;
}

void engine_join(struct engine *e, struct eviction *r, struct notice *n, uint64_t now)
{
	struct engine_rt *rt = engine_rt_of(e, r);
	struct engine_action *a;
	size_t k = r->n_notices;

	if (k >= RECORD_NOTICES_MAX) {
		a = engine_push(e, ENGINE_REFUSED, n->ev.id);
		a->event_type = n->ev.type;
		notice_done(n);
		return;
	}
	r->notices = xrealloc(r->notices, (k + 1) * sizeof(*r->notices));
	r->notices[k] = *n;
	memset(n, 0, sizeof(*n));
	r->n_notices++;
	memset(&rt->notice[k], 0, sizeof(rt->notice[k]));
	rt->notice[k].listed = true;
	rt->notice[k].matched = true;
	a = engine_push(e, ENGINE_JOINED, r->id);
	a->notice = k;
	engine_persist(e);
	lifecycle_fire(e, r, IN_JOINED);
}

/* A later answer for a known notice: what changed is recorded, and the
 * deadline follows NotBefore both ways. */
static void update_notice(struct engine *e, struct eviction *r, size_t k, const struct spot_event *ev,
			  uint64_t now)
{
	struct notice *n = &r->notices[k];
	struct engine_rt *rt = engine_rt_of(e, r);
	bool changed = false, drift = false;
	struct engine_action *a;

	rt->notice[k].listed = true;
	rt->notice[k].matched = true;
	if (n->gone) {
		n->gone = false;
		n->gone_wall_usec = 0;
		rt->notice[k].gone_confirmed = false;
		a = engine_push(e, ENGINE_BACK, r->id);
		a->notice = k;
		engine_persist(e);
	}
	if (ev->end != n->ev.end) {
		n->ev.end = ev->end;
		changed = true;
	}
	if (ev->status != n->ev.status) {
		n->ev.status = ev->status;
		changed = true;
	}
	/* A NotBefore the agent made up stays; a provider's own may move, and
	 * the deadline with it. An empty one (Azure blanks it once Started)
	 * keeps what was known. */
	if (!ev->id_from_first_seen || ev->notice_usec == 0) {
		uint64_t nb = ev->not_before_usec, old = n->ev.not_before_usec;
		uint64_t diff = nb > old ? nb - old : old - nb;

		/* The jitter is tolerated only where the id is made up (AWS's
		 * spot time); a provider's own event moves exactly. */
		if (nb != 0 && (old == 0 || diff >= (ev->id_from_first_seen ? ENGINE_NOT_BEFORE_JITTER_USEC : 1))) {
			n->ev.not_before_usec = nb;
			drift = !changed && ev->id_from_first_seen && old != 0 && nb > old;
			changed = true;
			if (nb > now) {
				uint64_t d = event_margin_deadline(nb, now, e->cfg.margin_usec);

				/* Earlier never lengthens the time the hooks have. */
				n->deadline_wall_usec = old && nb < old && n->deadline_wall_usec < d ?
							n->deadline_wall_usec : d;
				if (nb - now > e->cfg.margin_usec)
					n->emergency = false;
			} else {
				/* Into the past: the platform may act any moment. */
				uint64_t soon = now + EVENT_EMERGENCY_BUDGET_SEC * USEC_PER_SEC;

				if (soon < n->deadline_wall_usec) {
					n->deadline_wall_usec = soon;
					n->emergency = true;
				}
			}
		}
	}
	if (!n->started && (n->ev.status == EVENT_STARTED ||
			    (n->ev.not_before_usec && now >= n->ev.not_before_usec))) {
		uint64_t soon = now + EVENT_EMERGENCY_BUDGET_SEC * USEC_PER_SEC;

		/* Started: the platform is at work; the hooks get at most the
		 * emergency budget from now. */
		n->started = true;
		if (soon < n->deadline_wall_usec) {
			n->deadline_wall_usec = soon;
			n->emergency = true;
		}
		changed = true;
		drift = false;
	}
	if (changed) {
		a = engine_push(e, ENGINE_CHANGED, r->id);
		a->notice = k;
		a->drift = drift;
		engine_persist(e);
	}
	lifecycle_fire(e, r, IN_SEEN);
}


/* Finds the notice ev is, among the evictions that take notices (the one
 * in hand, and one done and over that waits for its notices to end). */
static bool match_notice(struct engine *e, const struct spot_event *ev, uint64_t now)
{
	for (size_t i = e->records->n; i > 0; i--) {
		struct eviction *r = &e->records->items[i - 1];

		if (!lifecycle_props(r->state)->joinable)
			continue;
		for (size_t k = 0; k < r->n_notices; k++)
			if (notice_matches(&r->notices[k], ev)) {
				update_notice(e, r, k, ev, now);
				return true;
			}
	}
	return false;
}

/* What its feed answered without is gone. */
static void sweep_gone(struct engine *e, struct eviction *r, uint32_t feeds_answered, uint64_t now)
{
	struct engine_rt *rt = engine_rt_of(e, r);

	for (size_t k = 0; k < r->n_notices; k++) {
		struct notice *n = &r->notices[k];
		struct engine_action *a;

		if (rt->notice[k].matched || !(feeds_answered & (1u << n->ev.feed)) ||
		    !feed_withdraws(n->ev.feed))
			continue;
		if (n->gone) {
			if (!rt->notice[k].gone_confirmed) {
				/* Loaded gone: confirmed now, the grace starts now. */
				rt->notice[k].gone_confirmed = true;
				n->gone_wall_usec = now;
			}
			continue;
		}
		n->gone = true;
		n->gone_wall_usec = now;
		rt->notice[k].gone_confirmed = true;
		rt->notice[k].listed = false;
		a = engine_push(e, ENGINE_GONE, r->id);
		a->notice = k;
		engine_persist(e);
	}
}

void engine_round(struct engine *e, const struct event_list *events, uint32_t feeds_answered,
		  const char *vm_name, uint64_t now)
{
	bool matched[EVENTS_MAX] = { false };
	struct eviction *open;

	if (e->exited)
		return;
	e->now = now;
	engine_prune_rt(e);
	for (size_t i = 0; i < e->n_rt; i++)
		for (size_t k = 0; k < RECORD_NOTICES_MAX; k++)
			e->rt[i].notice[k].matched = false;
	if (e->shutdown.on && e->shutdown.rounds < ENGINE_SHUTDOWN_ROUNDS)
		e->shutdown.rounds++;
	/* The notices held first, so that a new one is told apart from them
	 * with the whole round known (is the eviction in hand still listed?). */
	for (size_t i = 0; events && i < events->n_events && i < EVENTS_MAX; i++) {
		const struct spot_event *ev = &events->events[i];

		matched[i] = (!vm_name || event_names_resource(ev, vm_name)) && match_notice(e, ev, now);
	}
	for (size_t i = 0; events && i < events->n_events && i < EVENTS_MAX; i++) {
		const struct spot_event *ev = &events->events[i];
		struct notice n;
		struct engine_action *a;

		if (matched[i] || (vm_name && !event_names_resource(ev, vm_name)))
			continue;
		/* Whose event this is cannot be told before the name is known. */
		if (!vm_name || engine_handled_before(e, ev, now))
			continue;
		if (!wanted(e, ev)) {
			a = engine_push(e, ENGINE_IGNORED, ev->id);
			a->event_type = ev->type;
			continue;
		}
		if (ev->end != END_NONE)
			continue;   /* over before it was seen: nothing to do */
		engine_notice_from_event(e, &n, ev, now);
		open = engine_open_eviction(e);
		/* One eviction per machine while it is in hand; once it is done
		 * and over, a further notice is the next eviction. */
		if (open && !(open->state == LC_DONE && engine_done_over(e, open, now)))
			engine_join(e, open, &n, now);
		else
			(void)engine_create_eviction(e, &n, now);
	}
	for (size_t i = 0; i < e->records->n; i++)
		if (lifecycle_props(e->records->items[i].state)->joinable)
			sweep_gone(e, &e->records->items[i], feeds_answered, now);
	engine_advance(e, now);
}

