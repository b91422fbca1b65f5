/* engine.c - the engine's frame: its action queue, what one process knows
 * of each eviction, the chains, and the inputs that are not a round
 * (notices.c), a hook (slot.c), an acknowledgement (acks.c) or the OS
 * shutting down (shutdown.c). One eviction's lifecycle is lifecycle.c's
 * table; when to wake and whether the VM is ready is queries.c. Pure: no
 * I/O, no clock, no logging; the caller (agent.c) carries the actions out
 * and reports back.
 *
 * Every input ends in engine_advance(): the level inputs of each eviction, the hook
 * slot, the acknowledgements, the shutdown, the exit. Each outcome that
 * must not be repeated is followed by ENGINE_PERSIST before the next hook
 * starts or the next acknowledgement goes out. */
#include "engine/engine-internal.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

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
void engine_prune_rt(struct engine *e)
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

/* ---- after every input ---- */

void engine_advance(struct engine *e, uint64_t now)
{
	e->now = now;
	if (e->exited)
		return;
	engine_prune_rt(e);
	for (unsigned pass = 0; pass < ADVANCE_PASSES; pass++) {
		for (size_t i = 0; i < e->records->n; i++) {
			struct eviction *r = &e->records->items[i];

			if (r->state == LC_CLOSED)
				continue;
			engine_drop_moot_acks(e, r);
			lifecycle_levels(e, r);
		}
		engine_decide_shutdown(e);
		if (!engine_run_slot(e))
			break;
	}
	engine_send_acks(e);
	engine_send_heartbeats(e);
	engine_maybe_release(e);
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
	if (e->stopping && !engine_in_hand(e)) {
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

void engine_unrun_interrupted(struct hook_result *hooks, size_t n)
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

		engine_unrun_interrupted(r->hooks, r->n_hooks);
		engine_unrun_interrupted(r->recover_hooks, r->n_recover_hooks);
		if (s == LC_CLOSED)
			continue;
		(void)engine_rt_of(e, r);
		if (r->boot[0] && e->cfg.boot[0] && strcmp(r->boot, e->cfg.boot) != 0)
			lifecycle_fire(e, r, IN_BOOT);
		else if (s == LC_DETECTED || s == LC_RUNNING || s == LC_PAUSED || s == LC_DRAINING ||
			 s == LC_ACKING || s == LC_RECOVERING)
			engine_push(e, ENGINE_RESUMED, r->id);
	}
	engine_advance(e, now);
}


void engine_tick(struct engine *e, uint64_t now)
{
	engine_advance(e, now);
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
	engine_advance(e, now);
}

