/* engine.c - the engine's inputs and the parts of the protocol that are not
 * one eviction's lifecycle (that is lifecycle.c's table): which notice of a
 * round belongs to which eviction, deadlines, the one hook slot, each
 * notice's acknowledgement and heartbeats, the OS shutdown, what must be on
 * disk before the next step, and when to wake up. Pure: no I/O, no clock,
 * no logging; the caller (agent.c) carries the actions out and reports
 * back.
 *
 * Every input ends in advance(): the level inputs of each eviction, the hook
 * slot, the acknowledgements, the shutdown, the exit. Each outcome that
 * must not be repeated is followed by ENGINE_PERSIST before the next hook
 * starts or the next acknowledgement goes out. */
#include "engine/engine-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A notice an eviction already handled is not a new eviction for this
 * long after its NotBefore (it may linger in the listing, Started). */
#define HANDLED_MEMORY_USEC (3600 * USEC_PER_SEC)
/* Rounds of level inputs and hook starts per input, at most. */
#define ADVANCE_PASSES (2 * RECORD_HOOKS_MAX + 16)

static const char *const action_names[_ENGINE_ACTION_MAX] = {
	[ENGINE_PERSIST] = "persist",
	[ENGINE_SCAN_HOOKS] = "scan-hooks",
	[ENGINE_START_HOOK] = "start-hook",
	[ENGINE_SHORTEN_HOOK] = "shorten-hook",
	[ENGINE_SEND_ACK] = "send-ack",
	[ENGINE_SEND_HEARTBEAT] = "send-heartbeat",
	[ENGINE_EXIT] = "exit",
	[ENGINE_RELEASE_SHUTDOWN] = "release-shutdown",
	[ENGINE_DETECTED] = "detected",
	[ENGINE_JOINED] = "joined",
	[ENGINE_RESUMED] = "resumed",
	[ENGINE_TRANSITION] = "transition",
	[ENGINE_CHANGED] = "changed",
	[ENGINE_GONE] = "gone",
	[ENGINE_BACK] = "back",
	[ENGINE_IGNORED] = "ignored",
	[ENGINE_REFUSED] = "refused",
	[ENGINE_HOOK_SKIPPED] = "hook-skipped",
	[ENGINE_START_RETRY] = "start-retry",
	[ENGINE_CHAIN_DONE] = "chain-done",
	[ENGINE_ACKED] = "acked",
	[ENGINE_ACK_FAILED] = "ack-failed",
	[ENGINE_ACK_DROPPED] = "ack-dropped",
	[ENGINE_SHUTDOWN_NOTED] = "shutdown-noted",
};

static const char *const chain_names[_CHAIN_KIND_MAX] = {
	[CHAIN_EVICT] = "evict",
	[CHAIN_RECOVER] = "recover",
};

static const char *const phase_names[_PHASE_MAX] = {
	[PHASE_IDLE] = "idle",
	[PHASE_PENDING] = "pending",
	[PHASE_RUNNING] = "running",
	[PHASE_DONE] = "done",
};

const char *engine_action_to_string(enum engine_action_kind k)
{
	if ((int)k < 0 || k >= _ENGINE_ACTION_MAX)
		return NULL;
	return action_names[k];
}

const char *chain_kind_to_string(enum chain_kind c)
{
	if ((int)c < 0 || c >= _CHAIN_KIND_MAX)
		return NULL;
	return chain_names[c];
}

const char *agent_phase_to_string(enum agent_phase p)
{
	if ((int)p < 0 || p >= _PHASE_MAX)
		return NULL;
	return phase_names[p];
}

/* ---- the action queue ---- */

struct engine_action *engine_push(struct engine *e, enum engine_action_kind kind, const char *id)
{
	struct engine_action *a;

	if (e->first > 0 && e->first == e->n_actions) {
		e->first = 0;
		e->n_actions = 0;
	}
	if (e->n_actions == e->cap) {
		e->cap = e->cap ? 2 * e->cap : 16;
		e->actions = xrealloc(e->actions, e->cap * sizeof(*e->actions));
	}
	a = &e->actions[e->n_actions++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	if (id)
		(void)strscpy(a->id, sizeof(a->id), id);
	return a;
}

bool engine_next_action(struct engine *e, struct engine_action *ret)
{
	if (e->first >= e->n_actions)
		return false;
	*ret = e->actions[e->first++];
	return true;
}

void engine_persist(struct engine *e)
{
	e->persist_now = true;
}

/* ---- what one process knows of an eviction ---- */

struct engine_rt *engine_rt_of(struct engine *e, const struct eviction *r)
{
	for (size_t i = 0; i < e->n_rt; i++)
		if (strcasecmp(e->rt[i].id, r->id) == 0)
			return &e->rt[i];
	e->rt = xrealloc(e->rt, (e->n_rt + 1) * sizeof(*e->rt));
	memset(&e->rt[e->n_rt], 0, sizeof(*e->rt));
	(void)strscpy(e->rt[e->n_rt].id, sizeof(e->rt[e->n_rt].id), r->id);
	return &e->rt[e->n_rt++];
}

/* Forgets what it knew of evictions no longer held. */
static void prune_rt(struct engine *e)
{
	for (size_t i = 0; i < e->n_rt;) {
		if (records_find(e->records, e->rt[i].id)) {
			i++;
			continue;
		}
		e->rt[i] = e->rt[--e->n_rt];
	}
}

/* ---- chains ---- */

struct hook_result *engine_chain(struct eviction *r, enum chain_kind c, size_t *ret_n)
{
	if (c == CHAIN_RECOVER) {
		*ret_n = r->n_recover_hooks;
		return r->recover_hooks;
	}
	*ret_n = r->n_hooks;
	return r->hooks;
}

uint64_t engine_chain_deadline(const struct eviction *r, enum chain_kind c)
{
	if (c == CHAIN_RECOVER)
		return r->recover_started_wall_usec + ENGINE_RECOVER_BUDGET_USEC;
	return r->deadline_wall_usec;
}

bool engine_slot_runs(const struct engine *e, const struct eviction *r)
{
	return e->slot.id[0] && strcasecmp(e->slot.id, r->id) == 0;
}

void engine_skip_pending(struct engine *e, struct eviction *r, enum chain_kind c, size_t from,
			 const char *reason)
{
	size_t n;
	struct hook_result *hooks = engine_chain(r, c, &n);

	for (size_t i = from; i < n; i++) {
		struct engine_action *a;

		if (hooks[i].outcome != HOOK_PENDING)
			continue;
		hooks[i].outcome = HOOK_SKIPPED;
		(void)strscpy(hooks[i].skip_reason, sizeof(hooks[i].skip_reason), reason);
		a = engine_push(e, ENGINE_HOOK_SKIPPED, r->id);
		a->chain = c;
		a->hook = i;
		engine_persist(e);
	}
}

void engine_clamp_running(struct engine *e, struct eviction *r, uint64_t end)
{
	struct engine_action *a;

	if (!engine_slot_runs(e, r) || end >= e->slot.end_wall_usec)
		return;
	e->slot.end_wall_usec = end;
	e->slot.shortened = true;
	a = engine_push(e, ENGINE_SHORTEN_HOOK, r->id);
	a->chain = e->slot.chain;
	a->hook = e->slot.hook;
	a->end_wall_usec = end;
}

/* ---- notices ---- */

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
	if (n->started || (n->ev.not_before_usec && n->gone_wall_usec >= n->ev.not_before_usec))
		return NOTICE_ENDED;
	return NOTICE_WITHDRAWN;
}

/* A NotBefore and the deadline it gives, as first seen. */
static void notice_deadline(const struct engine *e, struct notice *n, uint64_t now)
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

static void notice_from_event(const struct engine *e, struct notice *n, const struct spot_event *ev,
			      uint64_t now)
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
	notice_deadline(e, n, now);
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
static struct eviction *open_eviction(struct engine *e)
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
static bool handled_before(struct engine *e, const struct spot_event *ev, uint64_t now)
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
static struct eviction *create_eviction(struct engine *e, struct notice *n, uint64_t now)
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
	prune_rt(e);
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

static void join(struct engine *e, struct eviction *r, struct notice *n, uint64_t now)
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
	bool changed = false;
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
			changed = true;
			if (nb > now + e->cfg.margin_usec) {
				n->deadline_wall_usec = nb - e->cfg.margin_usec;
				n->emergency = false;
			} else if (nb > now) {
				n->deadline_wall_usec = nb;
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
	}
	if (changed) {
		a = engine_push(e, ENGINE_CHANGED, r->id);
		a->notice = k;
		engine_persist(e);
	}
	lifecycle_fire(e, r, IN_SEEN);
}

/* ---- the hook slot ---- */

static void clear_slot(struct engine *e)
{
	e->slot.id[0] = '\0';
	e->slot.shortened = false;
}

static bool chain_has_pending(struct eviction *r, enum chain_kind c, size_t *ret_i)
{
	size_t n;
	struct hook_result *hooks = engine_chain(r, c, &n);

	for (size_t i = 0; i < n; i++)
		if (hooks[i].outcome == HOOK_PENDING) {
			*ret_i = i;
			return true;
		}
	return false;
}

/* The eviction whose chain gets the free slot: the open one, else the
 * oldest recovering one (not while stopping: the recover hooks left wait
 * for the next start). */
static struct eviction *slot_candidate(struct engine *e)
{
	struct eviction *open = open_eviction(e);

	if (open && lifecycle_props(open->state)->starts_hooks)
		return open;
	if (e->stopping)
		return NULL;
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];

		if (r->state == LC_RECOVERING)
			return r;
	}
	return NULL;
}

/* Starts the next hook when the slot is free: returns true when it did
 * something (a scan asked, a hook started), so the caller looks again. */
static bool run_slot(struct engine *e)
{
	struct eviction *r;
	struct engine_rt *rt;
	enum chain_kind c;
	struct hook_result *hooks, *h;
	struct engine_action *a;
	uint64_t now = e->now, deadline, budget;
	size_t n, i;

	if (e->slot.id[0] || e->slot.scanning)
		return false;
	r = slot_candidate(e);
	if (!r)
		return false;
	rt = engine_rt_of(e, r);
	c = lifecycle_props(r->state)->chain;
	deadline = engine_chain_deadline(r, c);
	if (now >= deadline || (rt->retry_wall_usec && rt->retry_wall_usec > now))
		return false;
	if (!rt->planned || rt->planned_chain != c) {
		e->slot.scanning = true;
		(void)strscpy(e->slot.scan_id, sizeof(e->slot.scan_id), r->id);
		a = engine_push(e, ENGINE_SCAN_HOOKS, r->id);
		a->chain = c;
		return true;
	}
	if (!chain_has_pending(r, c, &i))
		return false;
	rt->retry_wall_usec = 0;
	hooks = engine_chain(r, c, &n);
	h = &hooks[i];
	budget = deadline - now;
	if (e->cfg.hook_timeout_usec > 0 && e->cfg.hook_timeout_usec < budget)
		budget = e->cfg.hook_timeout_usec;
	h->outcome = HOOK_RUNNING;
	h->start_wall_usec = now;
	h->budget_usec = budget;
	h->error[0] = '\0';
	(void)strscpy(e->slot.id, sizeof(e->slot.id), r->id);
	e->slot.chain = c;
	e->slot.hook = i;
	e->slot.end_wall_usec = now + budget;
	e->slot.shortened = false;
	if (c == CHAIN_EVICT)
		eviction_note_seen(r);
	/* The first sighting fixed the id and the deadline: on disk right in
	 * front of the first hook start, fast (a crash of the agent keeps
	 * what the kernel has; the first outcome's save is durable). */
	if (e->persist_new) {
		e->persist_new = false;
		engine_push(e, ENGINE_PERSIST, NULL)->fast = true;
	}
	a = engine_push(e, ENGINE_START_HOOK, r->id);
	a->chain = c;
	a->hook = i;
	a->budget_usec = budget;
	lifecycle_fire(e, r, IN_HOOK_STARTED);
	return true;
}

static int compare_results(const void *x, const void *y)
{
	const struct hook_result *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* Makes the chain follow the plan: final outcomes stay, anything else
 * becomes pending, new hooks join, a pending hook whose file is gone is
 * skipped ("removed"), and the list is in bytewise order. */
static void merge_plan(struct hook_result **hooks_p, size_t *n_p, const struct hook_ref *plan, size_t n_plan)
{
	struct hook_result *hooks = *hooks_p;
	size_t n = *n_p, old = n;

	for (size_t i = 0; i < n; i++)
		if (!hook_outcome_is_final(hooks[i].outcome))
			hooks[i].outcome = HOOK_PENDING;
	for (size_t i = 0; i < n_plan; i++) {
		struct hook_result *found = NULL;

		for (size_t j = 0; j < old && !found; j++)
			if (strcmp(hooks[j].name, plan[i].name) == 0)
				found = &hooks[j];
		if (found) {
			/* The file may have moved between /usr/lib and /etc. */
			if (!hook_outcome_is_final(found->outcome))
				(void)strscpy(found->path, sizeof(found->path), plan[i].path);
			continue;
		}
		if (n >= RECORD_HOOKS_MAX)
			break;
		hooks = xrealloc(hooks, (n + 1) * sizeof(*hooks));
		hook_result_init(&hooks[n], plan[i].name, plan[i].path);
		n++;
	}
	for (size_t i = 0; i < n; i++) {
		bool planned = false;

		if (hooks[i].outcome != HOOK_PENDING)
			continue;
		for (size_t j = 0; j < n_plan && !planned; j++)
			planned = strcmp(plan[j].name, hooks[i].name) == 0;
		if (!planned) {
			hooks[i].outcome = HOOK_SKIPPED;
			(void)strscpy(hooks[i].skip_reason, sizeof(hooks[i].skip_reason), "removed");
		}
	}
	if (n > 1)   /* an empty chain has no array at all */
		qsort(hooks, n, sizeof(*hooks), compare_results);
	*hooks_p = hooks;
	*n_p = n;
}

/* ---- acknowledgements and heartbeats ---- */

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

static void drop_moot_acks(struct engine *e, struct eviction *r)
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
static bool ack_sendable(const struct engine *e, const struct eviction *r, const struct engine_rt *rt, size_t k)
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
static void send_acks(struct engine *e)
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

			if (!ack_sendable(e, r, rt, k) || e->now < rt->notice[k].ack_next_wall_usec)
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

static void send_heartbeats(struct engine *e)
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

/* ---- the OS shutting down ---- */

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
	notice_from_event(e, n, &ev, now);
	event_done(&ev);
}

static struct notice *os_notice_of(struct eviction *r)
{
	for (size_t k = 0; k < r->n_notices; k++)
		if (r->notices[k].ev.feed == FEED_OS)
			return &r->notices[k];
	return NULL;
}

static bool in_hand(const struct engine *e);

static void decide_shutdown(struct engine *e)
{
	struct eviction *open;
	struct notice n;
	uint64_t now = e->now;

	if (!e->shutdown.on || e->shutdown.decided)
		return;
	open = open_eviction(e);
	if (!open && e->shutdown.rounds < ENGINE_SHUTDOWN_ROUNDS && now < e->shutdown.decide_wall_usec)
		return;  /* waiting for a round asked after it began */
	e->shutdown.decided = true;
	if (open) {
		struct notice *have = os_notice_of(open);

		/* The shutdown joins the eviction in hand: its budget binds. */
		if (have) {
			have->ev.end = END_NONE;
			have->ev.not_before_usec = e->shutdown.end_wall_usec;
			notice_deadline(e, have, now);
			engine_update_deadline(e, open);
		} else {
			os_notice(e, &n, now);
			join(e, open, &n, now);
		}
		engine_push(e, ENGINE_SHUTDOWN_NOTED, open->id);
		return;
	}
	if (!(e->cfg.events_mask & (1u << EVENT_SHUTDOWN))) {
		engine_push(e, ENGINE_SHUTDOWN_NOTED, NULL);
		return;
	}
	os_notice(e, &n, now);
	if (handled_before(e, &n.ev, now)) {
		/* Run once in this boot already. */
		notice_done(&n);
		engine_push(e, ENGINE_SHUTDOWN_NOTED, NULL);
		return;
	}
	open = create_eviction(e, &n, now);
	engine_push(e, ENGINE_SHUTDOWN_NOTED, open->id);
}

/* Once nothing is in hand, or logind's budget is spent, the OS may go on. */
static void maybe_release(struct engine *e)
{
	if (!e->shutdown.on || !e->shutdown.decided || e->shutdown.released)
		return;
	if (in_hand(e) && e->now < e->shutdown.end_wall_usec)
		return;
	e->shutdown.released = true;
	engine_push(e, ENGINE_RELEASE_SHUTDOWN, NULL);
}

/* ---- in hand ---- */

static bool ack_pending(const struct engine *e, const struct eviction *r)
{
	for (size_t i = 0; i < e->n_rt; i++) {
		const struct engine_rt *rt = &e->rt[i];

		if (strcasecmp(rt->id, r->id) != 0)
			continue;
		for (size_t k = 0; k < r->n_notices; k++)
			if (ack_sendable(e, r, rt, k) && rt->notice[k].ack_next_wall_usec != USEC_INFINITY)
				return true;
	}
	return false;
}

/* Something to finish before the agent may leave or the OS go on: a hook
 * running, a chain with time left, the drain before a due
 * acknowledgement, an acknowledgement due. */
static bool in_hand(const struct engine *e)
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

/* ---- after every input ---- */

static void advance(struct engine *e, uint64_t now)
{
	e->now = now;
	if (e->exited)
		return;
	prune_rt(e);
	for (unsigned pass = 0; pass < ADVANCE_PASSES; pass++) {
		for (size_t i = 0; i < e->records->n; i++) {
			struct eviction *r = &e->records->items[i];

			if (r->state == LC_CLOSED)
				continue;
			drop_moot_acks(e, r);
			lifecycle_levels(e, r);
		}
		decide_shutdown(e);
		if (!run_slot(e))
			break;
	}
	send_acks(e);
	send_heartbeats(e);
	maybe_release(e);
	/* Behind an acknowledgement, when no hook start came first: nothing
	 * a restart could get wrong waits on it. */
	if (e->persist_new && !e->slot.scanning) {
		e->persist_new = false;
		engine_push(e, ENGINE_PERSIST, NULL)->fast = true;
		e->persist_now = false;
	}
	if (e->persist_now) {
		e->persist_now = false;
		engine_push(e, ENGINE_PERSIST, NULL);
	}
	if (e->stopping && !in_hand(e)) {
		e->exited = true;
		engine_push(e, ENGINE_EXIT, NULL);
	}
}

/* ---- inputs ---- */

void engine_init(struct engine *e, const struct engine_config *cfg, struct records *records)
{
	memset(e, 0, sizeof(*e));
	e->cfg = *cfg;
	e->records = records;
}

void engine_done(struct engine *e)
{
	if (!e)
		return;
	free(e->actions);
	free(e->rt);
	e->actions = NULL;
	e->rt = NULL;
	e->n_rt = 0;
	e->n_actions = e->first = e->cap = 0;
}

void engine_set_config(struct engine *e, const struct engine_config *cfg)
{
	e->cfg = *cfg;
}

static void unrun_interrupted(struct hook_result *hooks, size_t n)
{
	for (size_t j = 0; j < n; j++)
		if (hooks[j].outcome == HOOK_RUNNING)
			hooks[j].outcome = HOOK_PENDING;   /* it never completed */
}

void engine_start(struct engine *e, uint64_t now)
{
	e->now = now;
	e->started = true;
	for (size_t i = 0; i < e->records->n; i++) {
		struct eviction *r = &e->records->items[i];
		enum lifecycle s = r->state;

		unrun_interrupted(r->hooks, r->n_hooks);
		unrun_interrupted(r->recover_hooks, r->n_recover_hooks);
		if (s == LC_CLOSED)
			continue;
		(void)engine_rt_of(e, r);
		if (r->boot[0] && e->cfg.boot[0] && strcmp(r->boot, e->cfg.boot) != 0)
			lifecycle_fire(e, r, IN_BOOT);
		else if (s == LC_DETECTED || s == LC_RUNNING || s == LC_PAUSED || s == LC_DRAINING ||
			 s == LC_ACKING || s == LC_RECOVERING)
			engine_push(e, ENGINE_RESUMED, r->id);
	}
	advance(e, now);
}

void engine_round(struct engine *e, const struct event_list *events, uint32_t feeds_answered,
		  const char *vm_name, uint64_t now)
{
	struct eviction *open;

	if (e->exited)
		return;
	e->now = now;
	prune_rt(e);
	for (size_t i = 0; i < e->n_rt; i++)
		for (size_t k = 0; k < RECORD_NOTICES_MAX; k++)
			e->rt[i].notice[k].matched = false;
	if (e->shutdown.on && e->shutdown.rounds < ENGINE_SHUTDOWN_ROUNDS)
		e->shutdown.rounds++;
	for (size_t i = 0; events && i < events->n_events; i++) {
		const struct spot_event *ev = &events->events[i];
		struct notice n;
		bool found = false;
		struct engine_action *a;

		if (vm_name && !event_names_resource(ev, vm_name))
			continue;
		open = open_eviction(e);
		for (size_t k = 0; open && k < open->n_notices && !found; k++)
			if (notice_matches(&open->notices[k], ev)) {
				update_notice(e, open, k, ev, now);
				found = true;
			}
		/* Whose event this is cannot be told before the name is known. */
		if (found || !vm_name || handled_before(e, ev, now))
			continue;
		if (!wanted(e, ev)) {
			a = engine_push(e, ENGINE_IGNORED, ev->id);
			a->event_type = ev->type;
			continue;
		}
		if (ev->end != END_NONE)
			continue;   /* over before it was seen: nothing to do */
		notice_from_event(e, &n, ev, now);
		open = open_eviction(e);
		if (open)
			join(e, open, &n, now);
		else
			(void)create_eviction(e, &n, now);
	}
	/* What its feed answered without is gone. */
	open = open_eviction(e);
	if (open) {
		struct engine_rt *rt = engine_rt_of(e, open);

		for (size_t k = 0; k < open->n_notices; k++) {
			struct notice *n = &open->notices[k];
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
			a = engine_push(e, ENGINE_GONE, open->id);
			a->notice = k;
			engine_persist(e);
		}
	}
	advance(e, now);
}

void engine_hooks_scanned(struct engine *e, const char *id, enum chain_kind chain, const struct hook_ref *hooks,
			  size_t n_hooks, bool readable, uint64_t now)
{
	struct eviction *r = id && id[0] ? records_find(e->records, id) : NULL;
	struct engine_rt *rt;
	size_t n;

	e->now = now;
	e->slot.scanning = false;
	e->slot.scan_id[0] = '\0';
	if (!r || lifecycle_props(r->state)->chain != chain || !lifecycle_props(r->state)->starts_hooks) {
		advance(e, now);
		return;
	}
	rt = engine_rt_of(e, r);
	(void)engine_chain(r, chain, &n);
	if (!readable && n == 0) {
		/* Never run an empty chain (and acknowledge it) because a
		 * directory could not be read. */
		lifecycle_fire(e, r, IN_UNREADABLE);
		advance(e, now);
		return;
	}
	if (chain == CHAIN_RECOVER) {
		if (readable)
			merge_plan(&r->recover_hooks, &r->n_recover_hooks, hooks, n_hooks);
		else
			unrun_interrupted(r->recover_hooks, r->n_recover_hooks);
	} else {
		if (readable)
			merge_plan(&r->hooks, &r->n_hooks, hooks, n_hooks);
		else
			unrun_interrupted(r->hooks, r->n_hooks);
		if (readable && r->n_hooks == 0)
			r->empty_plan = true;
	}
	rt->planned = true;
	rt->planned_chain = chain;
	rt->retry_wall_usec = 0;
	lifecycle_fire(e, r, IN_PLANNED);
	advance(e, now);
}

bool engine_start_error_retried(int err)
{
	/* Shortages that pass: worth another try a moment later. */
	return err == EAGAIN || err == ENOMEM || err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == EINTR;
}

static struct hook_result *slot_hook(struct engine *e, struct eviction **ret_r)
{
	struct eviction *r = e->slot.id[0] ? records_find(e->records, e->slot.id) : NULL;
	struct hook_result *hooks;
	size_t n;

	*ret_r = r;
	if (!r)
		return NULL;
	hooks = engine_chain(r, e->slot.chain, &n);
	return e->slot.hook < n ? &hooks[e->slot.hook] : NULL;
}

void engine_hook_start_failed(struct engine *e, int err, const char *why, uint64_t now)
{
	struct eviction *r;
	struct hook_result *h = slot_hook(e, &r);

	e->now = now;
	if (h) {
		struct engine_rt *rt = engine_rt_of(e, r);
		struct engine_action *a;
		enum chain_kind c = e->slot.chain;
		size_t i = e->slot.hook;

		h->start_wall_usec = 0;
		if (why && why[0])
			(void)strscpy(h->error, sizeof(h->error), why);
		else
			(void)snprintf(h->error, sizeof(h->error), "cannot start: %s", strerror(err));
		clear_slot(e);
		if (engine_start_error_retried(err)) {
			h->outcome = HOOK_PENDING;
			rt->retry_wall_usec = now + ENGINE_START_RETRY_USEC;
			a = engine_push(e, ENGINE_START_RETRY, r->id);
			a->chain = c;
			a->hook = i;
			a->err = err;
		} else {
			h->outcome = HOOK_FAILED;
			h->exit_status = -1;
			engine_push(e, ENGINE_PERSIST, NULL);
			lifecycle_fire(e, r, IN_HOOK_ENDED);
		}
	} else {
		clear_slot(e);
	}
	advance(e, now);
}

void engine_hook_ended(struct engine *e, struct hook_result *res, uint64_t now)
{
	struct eviction *r;
	struct hook_result *h = slot_hook(e, &r);

	e->now = now;
	if (h) {
		enum chain_kind c = e->slot.chain;
		size_t i = e->slot.hook;

		h->outcome = res->outcome == HOOK_RUNNING || res->outcome == HOOK_PENDING ? HOOK_FAILED :
			     res->outcome;
		h->exit_status = res->exit_status;
		h->term_signal = res->term_signal;
		h->timed_out = res->timed_out;
		(void)strscpy(h->error, sizeof(h->error), res->error);
		if (res->start_wall_usec)
			h->start_wall_usec = res->start_wall_usec;
		h->duration_usec = res->duration_usec;
		h->output_bytes = res->output_bytes;
		h->report = res->report;
		for (size_t k = 0; k < HOOK_OUTPUT_LINES; k++) {
			free(h->output[k]);
			h->output[k] = res->output[k];
			res->output[k] = NULL;
		}
		h->output_next = res->output_next;
		h->n_output = res->n_output;
		res->n_output = 0;
		res->output_next = 0;
		r->last_alive_wall_usec = now;
		clear_slot(e);
		/* Exit 77 and the skips it means are one write: a crash between
		 * them must not run what the hook meant to skip. */
		if (h->outcome == HOOK_OK && h->exit_status == HOOK_EXIT_SKIP_REST && !h->timed_out)
			engine_skip_pending(e, r, c, i + 1, "exit 77");
		e->persist_now = false;
		engine_push(e, ENGINE_PERSIST, NULL);
		lifecycle_fire(e, r, IN_HOOK_ENDED);
	} else {
		clear_slot(e);
	}
	advance(e, now);
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
	advance(e, now);
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
	advance(e, now);
}

void engine_tick(struct engine *e, uint64_t now)
{
	advance(e, now);
}

void engine_shutdown(struct engine *e, uint64_t budget_usec, uint64_t now)
{
	if (e->shutdown.on) {
		advance(e, now);
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
	advance(e, now);
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
	advance(e, now);
}

void engine_stop(struct engine *e, uint64_t now)
{
	e->stopping = true;
	/* A waiting retry is not worth staying for; a due acknowledgement is. */
	for (size_t i = 0; i < e->n_rt; i++)
		for (size_t k = 0; k < RECORD_NOTICES_MAX; k++)
			if (e->rt[i].notice[k].ack_next_wall_usec != USEC_INFINITY)
				e->rt[i].notice[k].ack_next_wall_usec = 0;
	for (size_t i = 0; i < e->records->n; i++)
		if (e->records->items[i].state != LC_CLOSED)
			lifecycle_fire(e, &e->records->items[i], IN_STOP);
	advance(e, now);
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

/* Only times at which advance() would act (or readiness changes): a
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
	return in_hand(e);
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
static bool done_over(const struct engine *e, const struct eviction *r, uint64_t now)
{
	return now >= latest_not_before(r) && !listed_live(e, r);
}

bool engine_ready(const struct engine *e, uint64_t now, const struct eviction **ret_cause)
{
	for (size_t i = e->records->n; i > 0; i--) {
		const struct eviction *r = &e->records->items[i - 1];

		if (lifecycle_props(r->state)->unready || (r->state == LC_DONE && !done_over(e, r, now))) {
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
		if (r->state == LC_RUNNING && !engine_slot_runs(e, r))
			p = PHASE_RUNNING;
		if (r->state == LC_DONE && done_over(e, r, now))
			p = PHASE_IDLE;
		if (p != PHASE_IDLE)
			return p;
	}
	return PHASE_IDLE;
}
