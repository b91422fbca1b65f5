/* engine.c - the eviction protocol: which notice is this VM's, what its
 * deadline is, which hook runs next with what budget, what must be on disk
 * before the next step, and when the platform is told to go ahead. It is a
 * pure state machine over the agent_state's records: inputs in, actions out,
 * the time passed in. It never does I/O, never reads a clock and never
 * logs; the caller (agent.c) carries the actions out and reports back.
 *
 * One chain runs at a time, the most urgent first; its hooks run one after
 * another in their (bytewise) order. Each step of a chain ends in at most
 * one ENGINE_START_HOOK, and every outcome that must not be repeated is
 * followed by ENGINE_PERSIST before the next start. */
#include "engine/engine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/base.h"

static const char *const action_names[_ENGINE_ACTION_MAX] = {
	[ENGINE_PERSIST] = "persist",
	[ENGINE_SCAN_HOOKS] = "scan-hooks",
	[ENGINE_START_HOOK] = "start-hook",
	[ENGINE_KILL_HOOK] = "kill-hook",
	[ENGINE_APPROVE] = "approve",
	[ENGINE_EXIT] = "exit",
	[ENGINE_RELEASE_SHUTDOWN] = "release-shutdown",
	[ENGINE_DETECTED] = "detected",
	[ENGINE_RESUMED] = "resumed",
	[ENGINE_CHANGED] = "changed",
	[ENGINE_GONE] = "gone",
	[ENGINE_BACK] = "back",
	[ENGINE_CANCELLED] = "cancelled",
	[ENGINE_IGNORED] = "ignored",
	[ENGINE_HOOK_SKIPPED] = "hook-skipped",
	[ENGINE_START_RETRY] = "start-retry",
	[ENGINE_CHAIN_DONE] = "chain-done",
	[ENGINE_APPROVED] = "approved",
	[ENGINE_APPROVE_FAILED] = "approve-failed",
	[ENGINE_SHUTDOWN_NOTED] = "shutdown-noted",
};

const char *engine_action_to_string(enum engine_action_kind k)
{
	if ((int)k < 0 || k >= _ENGINE_ACTION_MAX)
		return NULL;
	return action_names[k];
}

/* ---- the action queue ---- */

static struct engine_action *push(struct engine *e, enum engine_action_kind kind, const char *id)
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

/* ---- records ---- */

bool engine_start_error_retried(int err)
{
	/* Shortages that pass: worth another try a moment later. */
	return err == EAGAIN || err == ENOMEM || err == EMFILE || err == ENFILE || err == ENOBUFS ||
	       err == EINTR;
}

static struct event_record *find_id(struct engine *e, const char *id)
{
	return id && id[0] ? state_find(e->state, id) : NULL;
}

static struct event_record *chain_record(struct engine *e)
{
	return find_id(e, e->chain_id);
}

/* Gone past the grace, as seen by a round of this process: what the file
 * says about a record being gone is only a hint after a restart (it may
 * have come back just before the crash). */
static bool gone_for_good(const struct event_record *r, uint64_t now)
{
	return r->gone && r->rt.gone_seen && now >= r->gone_wall_usec + ENGINE_GONE_GRACE_USEC;
}

/* The record an event of a round belongs to. A provider's own id names one
 * event for ever; a made-up key names the notice only while it is listed
 * (or back within the grace): a key seen again later is a new notice. */
static struct event_record *match(struct engine *e, const struct spot_event *ev, uint64_t now)
{
	struct agent_state *s = e->state;

	for (size_t i = s->n_records; i > 0; i--) {
		struct event_record *r = &s->records[i - 1];

		if (r->drill)
			continue;
		if (ev->id_from_first_seen) {
			if (r->key[0] && strcasecmp(r->key, ev->id) == 0 && !gone_for_good(r, now))
				return r;
		} else if (!r->key[0] && strcasecmp(r->ev.id, ev->id) == 0) {
			return r;
		}
	}
	return NULL;
}

static bool wanted(const struct engine *e, const struct spot_event *ev)
{
	return ev->type >= 0 && ev->type < _EVENT_TYPE_MAX && (e->cfg.events_mask & (1u << ev->type));
}

/* A new notice: everything the agent makes up for it is fixed here. */
static void create_record(struct engine *e, const struct spot_event *ev, uint64_t now)
{
	struct event_record rec;

	event_record_init(&rec);
	event_copy(&rec.ev, ev);
	if (ev->id_from_first_seen) {
		char suffix[24];
		size_t room;

		(void)strscpy(rec.key, sizeof(rec.key), ev->id);
		(void)snprintf(suffix, sizeof(suffix), "-%" PRIu64, now / USEC_PER_SEC);
		/* The key is cut, never the suffix that tells notices apart. */
		room = sizeof(rec.ev.id) - strlen(suffix) - 1;
		(void)snprintf(rec.ev.id, sizeof(rec.ev.id), "%.*s%s", (int)room, ev->id, suffix);
	}
	if (rec.ev.not_before_usec == 0 && ev->notice_usec > 0)
		rec.ev.not_before_usec = now + ev->notice_usec;
	rec.ev.id_from_first_seen = false;
	rec.ev.notice_usec = 0;
	rec.detected_wall_usec = now;
	rec.deadline_wall_usec = event_deadline(&rec.ev, now, e->cfg.margin_usec, &rec.emergency);
	rec.no_approve = !e->cfg.approve;
	rec.rt.listed = true;
	rec.rt.matched = true;
	{
		struct event_record *stored = state_add_record_at(e->state, &rec, now);

		push(e, ENGINE_DETECTED, stored->ev.id);
		/* The first sighting fixes the id and the deadline (they depend
		 * on the time it happened): on disk before a hook sees them, so
		 * a restarted agent gives the same (see persist_new). */
		e->persist_new = true;
	}
}

/* A later answer for a known record: its status, and a NotBefore that moved
 * (AWS moves the spot time), update the record and the deadline. */
static void update_record(struct engine *e, struct event_record *r, const struct spot_event *ev,
			  uint64_t now)
{
	bool changed = false;

	if (r->gone) {
		r->gone = false;
		r->gone_wall_usec = 0;
		push(e, ENGINE_BACK, r->ev.id);
	}
	r->rt.listed = true;
	if (ev->status != r->ev.status) {
		r->ev.status = ev->status;
		changed = true;
	}
	/* A NotBefore the agent made up stays; a provider's own may move. An
	 * empty one (Azure blanks it once Started) keeps what was known. */
	if (!ev->id_from_first_seen || ev->notice_usec == 0) {
		uint64_t nb = ev->not_before_usec;

		if (nb != 0 && nb != r->ev.not_before_usec) {
			r->ev.not_before_usec = nb;
			changed = true;
			if (nb > now + e->cfg.margin_usec) {
				r->deadline_wall_usec = nb - e->cfg.margin_usec;
				r->emergency = false;
			} else if (nb > now && nb < r->deadline_wall_usec) {
				r->deadline_wall_usec = nb;
			}
		}
	}
	if (changed)
		push(e, ENGINE_CHANGED, r->ev.id);
}

static void skip_pending(struct engine *e, struct event_record *r, size_t from, const char *reason)
{
	for (size_t i = from; i < r->n_hooks; i++) {
		struct hook_result *h = &r->hooks[i];
		struct engine_action *a;

		if (h->outcome != HOOK_PENDING)
			continue;
		h->outcome = HOOK_SKIPPED;
		(void)strscpy(h->skip_reason, sizeof(h->skip_reason), reason);
		a = push(e, ENGINE_HOOK_SKIPPED, r->ev.id);
		a->hook = i;
	}
}

static int compare_results(const void *x, const void *y)
{
	const struct hook_result *a = x, *b = y;

	return strcmp(a->name, b->name);
}

/* Makes r's hooks follow plan: final outcomes stay as they are, anything
 * else becomes pending, new hooks join, a pending hook whose file is gone
 * is skipped ("removed"), and the list is in bytewise order. */
static void merge_plan(struct event_record *r, const struct hook_plan *plan)
{
	size_t n = r->n_hooks;

	for (size_t i = 0; i < r->n_hooks; i++)
		if (!hook_outcome_is_final(r->hooks[i].outcome))
			r->hooks[i].outcome = HOOK_PENDING;
	for (size_t i = 0; i < plan->n_hooks; i++) {
		struct hook_result *found = NULL;

		for (size_t j = 0; j < n && !found; j++)
			if (strcmp(r->hooks[j].name, plan->hooks[i].name) == 0)
				found = &r->hooks[j];
		if (found) {
			/* The file may have moved between /usr/lib and /etc. */
			if (!hook_outcome_is_final(found->outcome))
				(void)strscpy(found->path, sizeof(found->path), plan->hooks[i].path);
			continue;
		}
		if (r->n_hooks >= STATE_RECORD_HOOKS_MAX)
			break;
		r->hooks = xrealloc(r->hooks, (r->n_hooks + 1) * sizeof(*r->hooks));
		hook_result_init(&r->hooks[r->n_hooks], plan->hooks[i].name, plan->hooks[i].path);
		r->n_hooks++;
	}
	for (size_t i = 0; i < r->n_hooks; i++) {
		struct hook_result *h = &r->hooks[i];
		bool planned = false;

		if (h->outcome != HOOK_PENDING)
			continue;
		for (size_t j = 0; j < plan->n_hooks && !planned; j++)
			planned = strcmp(plan->hooks[j].name, h->name) == 0;
		if (!planned) {
			h->outcome = HOOK_SKIPPED;
			(void)strscpy(h->skip_reason, sizeof(h->skip_reason), "removed");
		}
	}
	if (r->n_hooks > 1)   /* an empty chain has no array at all */
		qsort(r->hooks, r->n_hooks, sizeof(*r->hooks), compare_results);
}

static void finish_chain(struct engine *e, struct event_record *r)
{
	r->chain_done = true;
	push(e, ENGINE_CHAIN_DONE, r->ev.id);
	if (strcasecmp(e->chain_id, r->ev.id) == 0)
		e->chain_id[0] = '\0';
}

bool engine_wants_approval(const struct engine *e, const struct event_record *r, uint64_t now)
{
	if (!e->cfg.approve || !e->cfg.provider_approves || r->no_approve || r->drill ||
	    r->ev.type == EVENT_SHUTDOWN)
		return false;
	if (!r->chain_done || r->approved || r->gone)
		return false;
	/* Only a Scheduled event can be approved, past its NotBefore the
	 * platform goes ahead without us, and after a restart only a round of
	 * this process can say it is still Scheduled. */
	if (!r->rt.listed || r->ev.status != EVENT_SCHEDULED)
		return false;
	return r->ev.not_before_usec == 0 || now < r->ev.not_before_usec;
}

static bool approval_in_flight(const struct engine *e)
{
	for (size_t i = 0; i < e->state->n_records; i++)
		if (e->state->records[i].rt.approving)
			return true;
	return false;
}

static void maybe_approve(struct engine *e, uint64_t now)
{
	if (approval_in_flight(e))
		return;
	for (size_t i = 0; i < e->state->n_records; i++) {
		struct event_record *r = &e->state->records[i];

		if (!engine_wants_approval(e, r, now) || now < r->rt.approve_next_wall_usec)
			continue;
		r->rt.approving = true;
		push(e, ENGINE_APPROVE, r->ev.id);
		return;
	}
}

/* The most urgent record that still needs its chain and may run it now. */
static struct event_record *pick_chain(struct engine *e)
{
	struct event_record *best = NULL;

	for (size_t i = 0; i < e->state->n_records; i++) {
		struct event_record *r = &e->state->records[i];

		if (r->drill || r->chain_done || r->gone)
			continue;
		if (!best || r->deadline_wall_usec < best->deadline_wall_usec)
			best = r;
	}
	return best;
}

/* Records that stayed gone past the grace: the rest of their chain is
 * cancelled (a chain paused on its way there holds the slot meanwhile).
 * Records waiting past their deadline: the rest is skipped. */
static void sweep_gone(struct engine *e, uint64_t now)
{
	for (size_t i = 0; i < e->state->n_records; i++) {
		struct event_record *r = &e->state->records[i];
		bool running = e->running >= 0 && strcasecmp(r->ev.id, e->chain_id) == 0;

		if (r->drill || r->chain_done || running)
			continue;
		if (gone_for_good(r, now)) {
			push(e, ENGINE_CANCELLED, r->ev.id);
			skip_pending(e, r, 0, "cancelled");
		} else if (now >= r->deadline_wall_usec && (r->gone || !r->rt.planned ||
							     strcasecmp(r->ev.id, e->chain_id) != 0)) {
			/* Waiting (paused, or for its turn) past its deadline. */
			skip_pending(e, r, 0, "deadline");
		} else {
			continue;
		}
		finish_chain(e, r);
		push(e, ENGINE_PERSIST, NULL);
	}
}

/* New records go to disk right in front of the first hook start that
 * follows them (after the scan of the hook directories, so as not to make
 * the hook wait for both), or, when no hook starts, at the end of the step,
 * after an approval it sends: an empty chain's approval does not wait for
 * the disk. Until then nothing outside the agent has seen what the record
 * fixed but the provider's own id, which a restart finds again. The write
 * is fast, not durable: a crash of the agent keeps what the kernel has,
 * and a power loss takes the hooks with it; the fsync comes with the
 * first hook's outcome. */
static void save_new_records(struct engine *e)
{
	if (!e->persist_new)
		return;
	e->persist_new = false;
	push(e, ENGINE_PERSIST, NULL)->fast = true;
}

/* One step of the chain slot: keeps going until a hook runs, the chain
 * waits (retry, scan, pause) or nothing is left. */
static void advance_chain(struct engine *e, uint64_t now)
{
	for (;;) {
		struct event_record *r = chain_record(e);
		struct hook_result *h = NULL;
		struct engine_action *a;
		uint64_t budget;
		size_t i;

		if (e->running >= 0) {
			/* A NotBefore that moved earlier shortens the hook's budget. */
			if (r && now >= r->deadline_wall_usec && now < e->running_end_wall_usec &&
			    !e->kill_sent) {
				e->kill_sent = true;
				push(e, ENGINE_KILL_HOOK, r->ev.id)->hook = (size_t)e->running;
			}
			return;
		}
		if (!r || r->chain_done) {
			e->chain_id[0] = '\0';
			r = pick_chain(e);
			if (!r)
				return;
			(void)strscpy(e->chain_id, sizeof(e->chain_id), r->ev.id);
			r->rt.planned = false;
		}
		if (!r->rt.planned) {
			if (r->gone || r->rt.retry_wall_usec > now)
				return;
			push(e, ENGINE_SCAN_HOOKS, r->ev.id);
			e->scan_pending = true;
			return;  /* engine_hooks_scanned goes on */
		}
		for (i = 0; i < r->n_hooks; i++)
			if (r->hooks[i].outcome == HOOK_PENDING) {
				h = &r->hooks[i];
				break;
			}
		if (!h) {
			finish_chain(e, r);
			continue;
		}
		/* Paused while gone (back within the grace, or cancelled by
		 * sweep_gone). */
		if (r->gone)
			return;
		if (now >= r->deadline_wall_usec) {
			skip_pending(e, r, i, "deadline");
			finish_chain(e, r);
			push(e, ENGINE_PERSIST, NULL);
			continue;
		}
		if (r->rt.retry_wall_usec > now)
			return;
		r->rt.retry_wall_usec = 0;
		budget = r->deadline_wall_usec - now;
		if (e->cfg.hook_timeout_usec > 0 && e->cfg.hook_timeout_usec < budget)
			budget = e->cfg.hook_timeout_usec;
		h->outcome = HOOK_RUNNING;
		h->start_wall_usec = now;
		h->budget_usec = budget;
		e->running = (int)i;
		e->running_end_wall_usec = now + budget;
		e->kill_sent = false;
		save_new_records(e);
		a = push(e, ENGINE_START_HOOK, r->ev.id);
		a->hook = i;
		a->budget_usec = budget;
		return;
	}
}

/* Something to finish before the agent may leave or the OS shut down: a
 * hook running, a chain with time left, an approval due or in flight. */
static bool in_hand(const struct engine *e, uint64_t now)
{
	if (e->running >= 0 || approval_in_flight(e))
		return true;
	for (size_t i = 0; i < e->state->n_records; i++) {
		const struct event_record *r = &e->state->records[i];

		if (r->drill)
			continue;
		if (!r->chain_done && !gone_for_good(r, now) && now < r->deadline_wall_usec)
			return true;
		if (engine_wants_approval(e, r, now) && r->rt.approve_next_wall_usec != USEC_INFINITY)
			return true;
	}
	return false;
}

/* The OS is going down: run what is in hand; with nothing, a platform
 * notice the next round shows; with none, the synthetic Shutdown event. */
static void decide_shutdown(struct engine *e, uint64_t now)
{
	struct event_record rec;
	char id[EVENT_ID_MAX];

	if (!e->shutdown || e->shutdown_decided)
		return;
	if (!in_hand(e, now) && e->shutdown_rounds < ENGINE_SHUTDOWN_ROUNDS &&
	    now < e->shutdown_decide_wall_usec)
		return;  /* waiting for a round asked after it began */
	e->shutdown_decided = true;
	(void)snprintf(id, sizeof(id), "os-shutdown-%s", e->boot_tag[0] ? e->boot_tag : "boot");
	if (in_hand(e, now) || !(e->cfg.events_mask & (1u << EVENT_SHUTDOWN)) || state_find(e->state, id)) {
		/* Covered already, not wanted, or run once in this boot already. */
		push(e, ENGINE_SHUTDOWN_NOTED, NULL);
		return;
	}
	event_record_init(&rec);
	(void)strscpy(rec.ev.id, sizeof(rec.ev.id), id);
	rec.ev.type = EVENT_SHUTDOWN;
	rec.ev.status = EVENT_SCHEDULED;
	rec.ev.provider = e->cfg.provider;
	rec.ev.duration_sec = -1;
	(void)strscpy(rec.ev.source, sizeof(rec.ev.source), "OS");
	(void)strscpy(rec.ev.description, sizeof(rec.ev.description),
		      "the operating system is shutting down");
	rec.ev.not_before_usec = e->shutdown_end_wall_usec;
	rec.detected_wall_usec = now;
	rec.deadline_wall_usec = event_deadline(&rec.ev, now, e->cfg.margin_usec, &rec.emergency);
	rec.no_approve = true;
	rec.rt.listed = true;
	{
		struct event_record *stored = state_add_record_at(e->state, &rec, now);

		push(e, ENGINE_SHUTDOWN_NOTED, stored->ev.id);
		push(e, ENGINE_DETECTED, stored->ev.id);
		e->persist_new = true;
	}
}

/* Once nothing is in hand, or logind's budget is spent, the OS may go on. */
static void maybe_release(struct engine *e, uint64_t now)
{
	if (!e->shutdown || !e->shutdown_decided || e->shutdown_released)
		return;
	if (in_hand(e, now) && now < e->shutdown_end_wall_usec)
		return;
	e->shutdown_released = true;
	push(e, ENGINE_RELEASE_SHUTDOWN, NULL);
}

static void update_phase(struct engine *e, uint64_t now)
{
	enum agent_phase phase = PHASE_IDLE;

	for (size_t i = 0; i < e->state->n_records; i++) {
		const struct event_record *r = &e->state->records[i];
		bool is_chain = strcasecmp(r->ev.id, e->chain_id) == 0;
		enum agent_phase p;

		if (r->drill)
			continue;
		if (is_chain && e->running >= 0)
			p = PHASE_RUNNING;
		else if (!r->chain_done && !gone_for_good(r, now))
			p = PHASE_PENDING;
		else if (r->chain_done && !r->gone && r->rt.listed)
			p = PHASE_DONE;
		else
			continue;
		if (phase == PHASE_IDLE || p == PHASE_RUNNING || (p == PHASE_PENDING && phase == PHASE_DONE))
			phase = p;
	}
	e->state->phase = phase;
}

/* After every input: cancel what stayed gone, run the chain slot, send a
 * due approval, and when stopping leave once nothing is in hand. */
static void advance(struct engine *e, uint64_t now)
{
	e->now = now;
	if (e->exited)
		return;
	sweep_gone(e, now);
	decide_shutdown(e, now);
	advance_chain(e, now);
	maybe_approve(e, now);
	maybe_release(e, now);
	/* Behind an approval, when no hook start came first: nothing a
	 * restart could get wrong waits on it. */
	if (!e->scan_pending)
		save_new_records(e);
	/* Behind the hook start this step may still make (after a scan). */
	if (e->persist_later && !e->scan_pending) {
		e->persist_later = false;
		push(e, ENGINE_PERSIST, NULL);
	}
	update_phase(e, now);
	if (e->stopping && !in_hand(e, now)) {
		e->exited = true;
		push(e, ENGINE_EXIT, NULL);
	}
}

/* ---- inputs ---- */

void engine_init(struct engine *e, const struct engine_config *cfg, struct agent_state *st)
{
	memset(e, 0, sizeof(*e));
	e->cfg = *cfg;
	e->state = st;
	e->running = -1;
}

void engine_done(struct engine *e)
{
	if (!e)
		return;
	free(e->actions);
	e->actions = NULL;
	e->n_actions = e->first = e->cap = 0;
}

void engine_set_config(struct engine *e, const struct engine_config *cfg)
{
	e->cfg = *cfg;
}

void engine_start(struct engine *e, uint64_t now)
{
	for (size_t i = 0; i < e->state->n_records; i++) {
		struct event_record *r = &e->state->records[i];
		bool all_final = r->n_hooks > 0;

		memset(&r->rt, 0, sizeof(r->rt));
		if (r->drill)
			continue;
		for (size_t j = 0; j < r->n_hooks; j++) {
			if (r->hooks[j].outcome == HOOK_RUNNING)
				r->hooks[j].outcome = HOOK_PENDING;  /* it never completed */
			if (!hook_outcome_is_final(r->hooks[j].outcome))
				all_final = false;
		}
		if (all_final)
			r->chain_done = true;
		if (!r->chain_done && !r->gone && now < r->deadline_wall_usec)
			push(e, ENGINE_RESUMED, r->ev.id);
	}
	advance(e, now);
}

void engine_round(struct engine *e, const struct event_list *events, const char *vm_name, uint64_t now)
{
	struct agent_state *s = e->state;

	if (e->exited)
		return;
	e->now = now;
	for (size_t k = 0; k < s->n_records; k++)
		s->records[k].rt.matched = false;
	if (e->shutdown && e->shutdown_rounds < ENGINE_SHUTDOWN_ROUNDS)
		e->shutdown_rounds++;
	for (size_t i = 0; events && i < events->n_events; i++) {
		const struct spot_event *ev = &events->events[i];
		struct event_record *r;

		if (vm_name && !event_names_resource(ev, vm_name))
			continue;
		r = match(e, ev, now);
		if (r) {
			r->rt.matched = true;
			update_record(e, r, ev, now);
			continue;
		}
		/* Whose event this is cannot be told before the name is known. */
		if (!vm_name)
			continue;
		if (!wanted(e, ev)) {
			push(e, ENGINE_IGNORED, ev->id)->event_type = ev->type;
			continue;
		}
		create_record(e, ev, now);
	}
	for (size_t k = 0; k < s->n_records; k++) {
		struct event_record *r = &s->records[k];

		if (r->rt.matched || r->drill || r->ev.type == EVENT_SHUTDOWN)
			continue;
		if (r->gone) {
			if (!r->rt.gone_seen) {
				/* Loaded gone: confirmed now, the grace starts now. */
				r->rt.gone_seen = true;
				r->gone_wall_usec = now;
			}
			continue;
		}
		r->gone = true;
		r->rt.gone_seen = true;
		r->gone_wall_usec = now;
		r->rt.listed = false;
		push(e, ENGINE_GONE, r->ev.id);
		/* On disk, so that a restart does not resume a cancelled chain;
		 * after a hook this round starts, not in front of it. */
		e->persist_later = true;
	}
	advance(e, now);
}

void engine_hooks_scanned(struct engine *e, const char *id, const struct hook_plan *plan, uint64_t now)
{
	struct event_record *r = find_id(e, id);

	e->scan_pending = false;
	if (!r || r->chain_done || strcasecmp(e->chain_id, r->ev.id) != 0) {
		advance(e, now);
		return;
	}
	if (!plan && r->n_hooks == 0) {
		/* Never run an empty chain (and approve) because a directory
		 * could not be read. */
		r->rt.retry_wall_usec = now + ENGINE_SCAN_RETRY_USEC;
	} else {
		if (plan)
			merge_plan(r, plan);
		else
			for (size_t i = 0; i < r->n_hooks; i++)
				if (!hook_outcome_is_final(r->hooks[i].outcome))
					r->hooks[i].outcome = HOOK_PENDING;
		r->rt.planned = true;
		r->rt.retry_wall_usec = 0;
	}
	advance(e, now);
}

void engine_hook_start_failed(struct engine *e, int err, uint64_t now)
{
	struct event_record *r = chain_record(e);

	if (r && e->running >= 0) {
		struct hook_result *h = &r->hooks[e->running];
		struct engine_action *a;

		h->start_errno = err;
		if (engine_start_error_retried(err)) {
			h->outcome = HOOK_PENDING;
			h->start_wall_usec = 0;
			r->rt.retry_wall_usec = now + ENGINE_START_RETRY_USEC;
			a = push(e, ENGINE_START_RETRY, r->ev.id);
			a->hook = (size_t)e->running;
			a->err = err;
		} else {
			h->outcome = HOOK_FAILED;
			h->exit_status = -1;
			push(e, ENGINE_PERSIST, NULL);
		}
	}
	e->running = -1;
	advance(e, now);
}

void engine_hook_ended(struct engine *e, struct hook_result *res, uint64_t now)
{
	struct event_record *r = chain_record(e);

	if (r && e->running >= 0) {
		size_t i = (size_t)e->running;
		struct hook_result *h = &r->hooks[i];

		h->outcome = res->outcome == HOOK_RUNNING || res->outcome == HOOK_PENDING ? HOOK_FAILED :
			     res->outcome;
		h->exit_status = res->exit_status;
		h->term_signal = res->term_signal;
		h->timed_out = res->timed_out;
		h->exec_errno = res->exec_errno;
		(void)strscpy(h->exec_detail, sizeof(h->exec_detail), res->exec_detail);
		h->start_errno = 0;
		if (res->start_wall_usec)
			h->start_wall_usec = res->start_wall_usec;
		h->duration_usec = res->duration_usec;
		h->output_bytes = res->output_bytes;
		for (size_t k = 0; k < HOOK_OUTPUT_LINES; k++) {
			free(h->output[k]);
			h->output[k] = res->output[k];
			res->output[k] = NULL;
		}
		h->output_next = res->output_next;
		h->n_output = res->n_output;
		res->n_output = 0;
		res->output_next = 0;
		/* Exit 77 and the skips it means are one write: a crash between
		 * them must not run what the hook meant to skip. */
		if (h->outcome == HOOK_OK && h->exit_status == HOOK_EXIT_SKIP_REST && !h->timed_out)
			skip_pending(e, r, i + 1, "exit 77");
		push(e, ENGINE_PERSIST, NULL);
	}
	e->running = -1;
	e->kill_sent = false;
	advance(e, now);
}

void engine_approval_answered(struct engine *e, const char *id, bool ok, uint64_t now)
{
	struct event_record *r = find_id(e, id);

	if (r) {
		r->rt.approving = false;
		r->approve_attempts++;
		if (ok) {
			r->approved = true;
			r->approved_wall_usec = now;
			r->rt.approve_failures = 0;
			push(e, ENGINE_APPROVED, r->ev.id);
			push(e, ENGINE_PERSIST, NULL);
		} else {
			uint64_t delay = ENGINE_APPROVE_RETRY_USEC;

			for (unsigned k = 0; k < r->rt.approve_failures && delay < ENGINE_APPROVE_RETRY_MAX_USEC; k++)
				delay *= 2;
			if (delay > ENGINE_APPROVE_RETRY_MAX_USEC)
				delay = ENGINE_APPROVE_RETRY_MAX_USEC;
			r->rt.approve_failures++;
			/* Stopping: one last try only. */
			r->rt.approve_next_wall_usec = e->stopping ? USEC_INFINITY : now + delay;
			push(e, ENGINE_APPROVE_FAILED, r->ev.id);
		}
	}
	advance(e, now);
}

void engine_tick(struct engine *e, uint64_t now)
{
	advance(e, now);
}

void engine_shutdown(struct engine *e, uint64_t budget_usec, const char *boot_tag, uint64_t now)
{
	if (e->shutdown) {
		advance(e, now);
		return;
	}
	e->shutdown = true;
	e->shutdown_rounds = 0;
	e->shutdown_decided = false;
	e->shutdown_released = false;
	e->shutdown_decide_wall_usec = now + ENGINE_SHUTDOWN_WAIT_USEC;
	/* An unlimited delay (InhibitDelayMaxSec=infinity) ends at the last
	 * instant a record can hold: it becomes the Shutdown event's NotBefore. */
	e->shutdown_end_wall_usec = now > JSON_TIME_MAX_USEC || budget_usec > JSON_TIME_MAX_USEC - now ?
		JSON_TIME_MAX_USEC : now + budget_usec;
	(void)strscpy(e->boot_tag, sizeof(e->boot_tag), boot_tag ? boot_tag : "");
	advance(e, now);
}

void engine_shutdown_cancelled(struct engine *e, uint64_t now)
{
	e->shutdown = false;
	advance(e, now);
}

void engine_stop(struct engine *e, uint64_t now)
{
	e->stopping = true;
	/* A waiting retry is not worth staying for; a due approval is. */
	for (size_t i = 0; i < e->state->n_records; i++) {
		struct event_record *r = &e->state->records[i];

		if (r->rt.approve_next_wall_usec != USEC_INFINITY)
			r->rt.approve_next_wall_usec = 0;
	}
	advance(e, now);
}

/* ---- queries ---- */

static void earliest(uint64_t *t, uint64_t candidate)
{
	if (candidate < *t)
		*t = candidate;
}

/* Only times at which advance() would act: a wake-up that changes nothing
 * would spin the loop. */
uint64_t engine_next_wake(const struct engine *e)
{
	uint64_t t = USEC_INFINITY;

	if (e->exited)
		return t;
	if (e->shutdown && !e->shutdown_decided)
		earliest(&t, e->shutdown_decide_wall_usec);
	if (e->shutdown && e->shutdown_decided && !e->shutdown_released)
		earliest(&t, e->shutdown_end_wall_usec);
	for (size_t i = 0; i < e->state->n_records; i++) {
		const struct event_record *r = &e->state->records[i];
		bool is_chain = strcasecmp(r->ev.id, e->chain_id) == 0;
		bool running = is_chain && e->running >= 0;

		if (r->drill)
			continue;
		if (engine_wants_approval(e, r, e->now) && !r->rt.approving &&
		    r->rt.approve_next_wall_usec != USEC_INFINITY && r->rt.approve_next_wall_usec > e->now)
			earliest(&t, r->rt.approve_next_wall_usec);
		if (r->chain_done)
			continue;
		if (running) {
			/* A deadline moved before the end of the hook's budget. */
			if (!e->kill_sent && r->deadline_wall_usec < e->running_end_wall_usec)
				earliest(&t, r->deadline_wall_usec);
			continue;
		}
		if (r->gone && r->rt.gone_seen)
			earliest(&t, r->gone_wall_usec + ENGINE_GONE_GRACE_USEC);
		earliest(&t, r->deadline_wall_usec);
		if (is_chain && !r->gone && r->rt.retry_wall_usec > 0)
			earliest(&t, r->rt.retry_wall_usec);
	}
	return t;
}

bool engine_active(const struct engine *e)
{
	return e->chain_id[0] || in_hand(e, e->now);
}

enum agent_phase engine_phase(const struct engine *e)
{
	return e->state->phase;
}
