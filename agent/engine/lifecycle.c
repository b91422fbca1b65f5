/* lifecycle.c - the protocol: how one eviction moves from its first notice
 * to its end. Read the two tables below: what each state allows
 * (state_props) and the transitions (rules), a row per state and input,
 * with a guard, an action and the next state. Every state has a row for
 * every input (the unit test checks it), so nothing the agent does hides in
 * a combination of flags. The actions change the record and queue the
 * engine's actions; they never do I/O, read a clock or log. */
#include "engine/engine-internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SAME (-1)   /* the next state is the current one */
#define IN(x) (1u << (x))
#define ALL_EDGE (IN(IN_SEEN) | IN(IN_JOINED) | IN(IN_PLANNED) | IN(IN_UNREADABLE) | \
		  IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) | IN(IN_BOOT) | IN(IN_PREEMPTED) | IN(IN_STOP))
#define ALL_LEVEL (IN(IN_ENDED) | IN(IN_WITHDRAWN) | IN(IN_GONE) | IN(IN_BACK) | IN(IN_DEADLINE) | \
		   IN(IN_CHAIN_END) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED))
#define ALL_INPUTS (ALL_EDGE | ALL_LEVEL)

static const char *const input_names[_IN_MAX] = {
	[IN_SEEN] = "seen",
	[IN_JOINED] = "joined",
	[IN_PLANNED] = "planned",
	[IN_UNREADABLE] = "unreadable",
	[IN_HOOK_STARTED] = "hook-started",
	[IN_HOOK_ENDED] = "hook-ended",
	[IN_BOOT] = "boot",
	[IN_PREEMPTED] = "preempted",
	[IN_STOP] = "stop",
	[IN_ENDED] = "ended",
	[IN_WITHDRAWN] = "withdrawn",
	[IN_GONE] = "gone",
	[IN_BACK] = "back",
	[IN_DEADLINE] = "deadline",
	[IN_CHAIN_END] = "chain-end",
	[IN_DRAINED] = "drained",
	[IN_ACKS_SETTLED] = "acks-settled",
	[IN_SETTLED] = "settled",
};

const char *input_to_string(enum input in)
{
	if ((int)in < 0 || in >= _IN_MAX)
		return NULL;
	return input_names[in];
}

/* ---- what each state allows ---- */

static const struct state_props props[_LC_MAX] = {
	/*                  joinable starts chain          unready after  at-once beats  phase */
	[LC_DETECTED]   = { true,    true,  CHAIN_EVICT,   true,   false, true,   true,  PHASE_PENDING },
	[LC_RUNNING]    = { true,    true,  CHAIN_EVICT,   true,   false, true,   true,  PHASE_RUNNING },
	[LC_PAUSED]     = { true,    false, CHAIN_EVICT,   true,   false, true,   true,  PHASE_RUNNING },
	[LC_DRAINING]   = { true,    false, CHAIN_EVICT,   true,   false, true,   true,  PHASE_DONE },
	[LC_ACKING]     = { true,    false, CHAIN_EVICT,   true,   true,  true,   true,  PHASE_DONE },
	/* Unready until it is over: see engine_ready. */
	[LC_DONE]       = { true,    false, CHAIN_EVICT,   false,  false, true,   false, PHASE_DONE },
	[LC_CANCELLED]  = { true,    false, CHAIN_EVICT,   false,  false, false,  false, PHASE_IDLE },
	[LC_RECOVERING] = { false,   true,  CHAIN_RECOVER, false,  false, false,  false, PHASE_IDLE },
	[LC_CLOSED]     = { false,   false, CHAIN_EVICT,   false,  false, false,  false, PHASE_IDLE },
};

const struct state_props *lifecycle_props(enum lifecycle s)
{
	return &props[s < _LC_MAX ? s : LC_CLOSED];
}

/* ---- guards ---- */

typedef bool (*guard_fn)(struct engine *e, struct eviction *r);

static bool hook_running(struct engine *e, struct eviction *r)
{
	return engine_slot_runs(e, r);
}

/* Some hook of the chain ran: there is something to recover. */
static bool chain_ran(struct engine *e, struct eviction *r)
{
	return eviction_chain_ran(r);
}

/* The chain may be acknowledged: a hook ran, or the plan held none. */
static bool ran_or_empty(struct engine *e, struct eviction *r)
{
	return eviction_chain_ran(r) || r->empty_plan;
}

static bool after_hooks_ack_waiting(const struct eviction *r)
{
	for (size_t i = 0; i < r->n_notices; i++)
		if (r->notices[i].ack == ACK_WAITING && r->notices[i].policy == ACK_AFTER_HOOKS)
			return true;
	return false;
}

/* The chain may be acknowledged and an acknowledgement waits for it. */
static bool ack_due(struct engine *e, struct eviction *r)
{
	return ran_or_empty(e, r) && after_hooks_ack_waiting(r);
}

/* The chain is under way: some hook of it is no longer pending. */
static bool under_way(struct engine *e, struct eviction *r)
{
	for (size_t i = 0; i < r->n_hooks; i++)
		if (r->hooks[i].outcome != HOOK_PENDING)
			return true;
	return false;
}

/* ---- actions ---- */

typedef void (*action_fn)(struct engine *e, struct eviction *r);

/* A notice's facts changed (NotBefore, Started, a notice joined): the
 * deadline follows, and the running hook with it. */
static void follow_deadline(struct engine *e, struct eviction *r)
{
	engine_update_deadline(e, r);
}

/* The deadline passed with a hook left: the running one ends at it, the
 * others are skipped. */
static void at_deadline(struct engine *e, struct eviction *r)
{
	enum chain_kind c = lifecycle_props(r->state)->chain;

	if (engine_slot_runs(e, r))
		engine_clamp_running(e, r, engine_chain_deadline(r, c));
	else
		engine_skip_pending(e, r, c, 0, "deadline");
}

static void scan_later(struct engine *e, struct eviction *r)
{
	struct engine_rt *rt = engine_rt_of(e, r);

	rt->retry_wall_usec = e->now + ENGINE_SCAN_RETRY_USEC;
}

static void chain_done(struct engine *e, struct eviction *r)
{
	struct engine_action *a = engine_push(e, ENGINE_CHAIN_DONE, r->id);

	a->chain = CHAIN_EVICT;
	r->chain_ended_wall_usec = e->now;
}

/* The chain ended with no hook run and hooks planned (every start failed,
 * or the directories stayed unreadable): nothing is acknowledged. */
static void chain_unrun(struct engine *e, struct eviction *r)
{
	chain_done(e, r);
	engine_drop_acks(e, r, true, "no hook ran");
}

static void chain_done_no_ack(struct engine *e, struct eviction *r)
{
	chain_done(e, r);
}

/* Every notice withdrew: the hooks left are not run, nothing is
 * acknowledged meanwhile (a notice back resumes them). */
static void cancel(struct engine *e, struct eviction *r)
{
	engine_skip_pending(e, r, CHAIN_EVICT, 0, "cancelled");
}

/* A notice is back after a cancel: what the cancel skipped runs. */
static void uncancel(struct engine *e, struct eviction *r)
{
	for (size_t i = 0; i < r->n_hooks; i++) {
		struct hook_result *h = &r->hooks[i];

		if (h->outcome == HOOK_SKIPPED && strcmp(h->skip_reason, "cancelled") == 0) {
			h->outcome = HOOK_PENDING;
			h->skip_reason[0] = '\0';
		}
	}
	engine_rt_of(e, r)->planned = false;   /* the directories are read again */
}

static void begin_recovery(struct engine *e, struct eviction *r, enum recover_reason why)
{
	uint64_t from = r->last_alive_wall_usec;

	for (size_t i = 0; i < r->n_notices; i++)
		if (r->notices[i].ack == ACK_SENT && r->notices[i].acked_wall_usec > 0)
			from = r->notices[i].acked_wall_usec;
	engine_skip_pending(e, r, CHAIN_EVICT, 0, why == RECOVER_BOOT ? "rebooted" : "ended");
	engine_drop_acks(e, r, false, why == RECOVER_BOOT ? "the VM came back" : "the eviction is over");
	r->recover_reason = why;
	r->recover_started_wall_usec = e->now;
	r->downtime_usec = from && e->now > from ? e->now - from : 0;
	engine_rt_of(e, r)->planned = false;
}

static void recover_cancelled(struct engine *e, struct eviction *r)
{
	begin_recovery(e, r, RECOVER_CANCELLED);
}

static void recover_ended(struct engine *e, struct eviction *r)
{
	begin_recovery(e, r, RECOVER_ENDED);
}

static void recover_boot(struct engine *e, struct eviction *r)
{
	begin_recovery(e, r, RECOVER_BOOT);
}

/* Over with nothing to recover (no hook ran). */
static void close_unrun(struct engine *e, struct eviction *r)
{
	engine_skip_pending(e, r, CHAIN_EVICT, 0, "ended");
	engine_drop_acks(e, r, false, "the eviction is over");
}

/* A newer eviction needs the slot: the recover hooks left are skipped,
 * the running one gets its grace. */
static void yield_slot(struct engine *e, struct eviction *r)
{
	engine_skip_pending(e, r, CHAIN_RECOVER, 0, "evicting");
	if (engine_slot_runs(e, r))
		engine_clamp_running(e, r, e->now + 2 * USEC_PER_SEC);
}

static void recover_deadline(struct engine *e, struct eviction *r)
{
	if (engine_slot_runs(e, r))
		engine_clamp_running(e, r, engine_chain_deadline(r, CHAIN_RECOVER));
	else
		engine_skip_pending(e, r, CHAIN_RECOVER, 0, "deadline");
}

static void recovered(struct engine *e, struct eviction *r)
{
	struct engine_action *a = engine_push(e, ENGINE_CHAIN_DONE, r->id);

	a->chain = CHAIN_RECOVER;
}

/* ---- the transitions ----
 * Rows are tried in order; the first whose state and input match and whose
 * guard holds (none: always) acts and sets the next state. */

struct rule {
	enum lifecycle state;
	uint32_t inputs;        /* IN(x) of each input the row takes */
	guard_fn guard;
	action_fn action;
	int next;               /* enum lifecycle, or SAME */
	const char *name;
};

static const struct rule rules[] = {
	/* ---- detected: readiness is down, the plan is being taken ---- */
	{ LC_DETECTED, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "detected: a notice seen or joined -> the deadline follows" },
	{ LC_DETECTED, IN(IN_UNREADABLE), NULL, scan_later, SAME,
	  "detected: hook directories unreadable -> read them again shortly" },
	{ LC_DETECTED, IN(IN_HOOK_STARTED), NULL, NULL, LC_RUNNING,
	  "detected: the first hook is started -> running" },
	{ LC_DETECTED, IN(IN_GONE), NULL, NULL, LC_PAUSED,
	  "detected: every notice left -> paused" },
	{ LC_DETECTED, IN(IN_WITHDRAWN), NULL, cancel, LC_CANCELLED,
	  "detected: every notice withdrawn -> cancelled" },
	{ LC_DETECTED, IN(IN_ENDED) | IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "detected: over before any hook ran -> closed" },
	{ LC_DETECTED, IN(IN_DEADLINE), NULL, at_deadline, SAME,
	  "detected: deadline passed -> the hooks are skipped" },
	{ LC_DETECTED, IN(IN_CHAIN_END), ack_due, chain_done, LC_DRAINING,
	  "detected: an empty chain is done, an acknowledgement waits -> draining" },
	{ LC_DETECTED, IN(IN_CHAIN_END), ran_or_empty, chain_done_no_ack, LC_DONE,
	  "detected: an empty chain is done -> done" },
	{ LC_DETECTED, IN(IN_CHAIN_END), NULL, chain_unrun, LC_DONE,
	  "detected: chain over and no hook ran -> done, nothing acknowledged" },
	{ LC_DETECTED, IN(IN_PLANNED) | IN(IN_HOOK_ENDED) | IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_BACK) |
	  IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED), NULL, NULL, SAME,
	  "detected: nothing changes" },

	/* ---- running: the hooks, one after another ---- */
	{ LC_RUNNING, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "running: a notice seen or joined -> the deadline follows" },
	{ LC_RUNNING, IN(IN_GONE), NULL, NULL, LC_PAUSED,
	  "running: every notice left -> paused" },
	{ LC_RUNNING, IN(IN_WITHDRAWN), NULL, cancel, LC_CANCELLED,
	  "running: every notice withdrawn -> cancelled" },
	{ LC_RUNNING, IN(IN_ENDED), hook_running, NULL, SAME,
	  "running: over while a hook runs -> it runs to its end" },
	{ LC_RUNNING, IN(IN_ENDED), chain_ran, recover_ended, LC_RECOVERING,
	  "running: over, the VM lived -> recovering" },
	{ LC_RUNNING, IN(IN_ENDED), NULL, close_unrun, LC_CLOSED,
	  "running: over before any hook ran -> closed" },
	{ LC_RUNNING, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "running: the VM came back on a new boot -> recovering" },
	{ LC_RUNNING, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "running: a new boot, no hook had run -> closed" },
	{ LC_RUNNING, IN(IN_DEADLINE), NULL, at_deadline, SAME,
	  "running: deadline passed -> the running hook ends, the rest are skipped" },
	{ LC_RUNNING, IN(IN_CHAIN_END), ack_due, chain_done, LC_DRAINING,
	  "running: chain done, an acknowledgement waits -> draining" },
	{ LC_RUNNING, IN(IN_CHAIN_END), ran_or_empty, chain_done_no_ack, LC_DONE,
	  "running: chain done, nothing to acknowledge -> done" },
	{ LC_RUNNING, IN(IN_CHAIN_END), NULL, chain_unrun, LC_DONE,
	  "running: chain over and no hook ran -> done, nothing acknowledged" },
	/* Unreadable directories keep the hooks already known: only a chain
	 * with none (detected) waits for them. */
	{ LC_RUNNING, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) |
	  IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_BACK) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED),
	  NULL, NULL, SAME,
	  "running: nothing changes (the slot starts the next hook)" },

	/* ---- paused: every notice left; no hook starts until one is back ---- */
	{ LC_PAUSED, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "paused: a notice seen or joined -> the deadline follows" },
	{ LC_PAUSED, IN(IN_BACK), under_way, NULL, LC_RUNNING,
	  "paused: a notice is back -> running" },
	{ LC_PAUSED, IN(IN_BACK), NULL, NULL, LC_DETECTED,
	  "paused: a notice is back, no hook started yet -> detected" },
	{ LC_PAUSED, IN(IN_WITHDRAWN), NULL, cancel, LC_CANCELLED,
	  "paused: gone past the grace without starting -> cancelled" },
	{ LC_PAUSED, IN(IN_ENDED), hook_running, NULL, SAME,
	  "paused: over while a hook runs -> it runs to its end" },
	{ LC_PAUSED, IN(IN_ENDED), chain_ran, recover_ended, LC_RECOVERING,
	  "paused: gone past the grace after it started, the VM lived -> recovering" },
	{ LC_PAUSED, IN(IN_ENDED), NULL, close_unrun, LC_CLOSED,
	  "paused: over before any hook ran -> closed" },
	{ LC_PAUSED, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "paused: the VM came back on a new boot -> recovering" },
	{ LC_PAUSED, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "paused: a new boot, no hook had run -> closed" },
	{ LC_PAUSED, IN(IN_DEADLINE), NULL, at_deadline, SAME,
	  "paused: deadline passed -> the running hook ends, the rest are skipped" },
	{ LC_PAUSED, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) | IN(IN_PREEMPTED) |
	  IN(IN_STOP) | IN(IN_GONE) | IN(IN_CHAIN_END) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) |
	  IN(IN_SETTLED), NULL, NULL, SAME,
	  "paused: nothing changes" },

	/* ---- draining: the chain ended, readiness has to be down long
	 * enough before the platform is told ---- */
	{ LC_DRAINING, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "draining: a notice seen or joined -> the deadline follows" },
	{ LC_DRAINING, IN(IN_DRAINED), NULL, NULL, LC_ACKING,
	  "draining: the drain has passed -> acknowledging" },
	{ LC_DRAINING, IN(IN_WITHDRAWN), NULL, NULL, LC_CANCELLED,
	  "draining: every notice withdrawn -> cancelled" },
	{ LC_DRAINING, IN(IN_ENDED), chain_ran, recover_ended, LC_RECOVERING,
	  "draining: over, the VM lived -> recovering" },
	{ LC_DRAINING, IN(IN_ENDED), NULL, close_unrun, LC_CLOSED,
	  "draining: over, no hook had run -> closed" },
	{ LC_DRAINING, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "draining: the VM came back on a new boot -> recovering" },
	{ LC_DRAINING, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "draining: a new boot, no hook had run -> closed" },
	{ LC_DRAINING, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) |
	  IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_GONE) | IN(IN_BACK) | IN(IN_DEADLINE) |
	  IN(IN_CHAIN_END) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED), NULL, NULL, SAME,
	  "draining: nothing changes" },

	/* ---- acknowledging: each notice's acknowledgement, once ---- */
	{ LC_ACKING, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "acknowledging: a notice seen or joined -> the deadline follows" },
	{ LC_ACKING, IN(IN_ACKS_SETTLED), NULL, NULL, LC_DONE,
	  "acknowledging: every acknowledgement sent or moot -> done" },
	{ LC_ACKING, IN(IN_WITHDRAWN), NULL, NULL, LC_CANCELLED,
	  "acknowledging: every notice withdrawn -> cancelled" },
	{ LC_ACKING, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "acknowledging: the VM came back on a new boot -> recovering" },
	{ LC_ACKING, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "acknowledging: a new boot, no hook had run -> closed" },
	/* An ended notice's acknowledgement is moot: acks-settled moves it
	 * to done before ended can come. */
	{ LC_ACKING, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) |
	  IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_ENDED) | IN(IN_GONE) | IN(IN_BACK) | IN(IN_DEADLINE) |
	  IN(IN_CHAIN_END) | IN(IN_DRAINED) | IN(IN_SETTLED), NULL, NULL, SAME,
	  "acknowledging: nothing changes" },

	/* ---- done: in hand until it is over ---- */
	{ LC_DONE, IN(IN_SEEN), NULL, follow_deadline, SAME,
	  "done: a notice seen -> the deadline follows" },
	{ LC_DONE, IN(IN_JOINED), ack_due, follow_deadline, LC_ACKING,
	  "done: a notice joined that waits for its acknowledgement -> acknowledging" },
	{ LC_DONE, IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "done: a notice joined -> the deadline follows" },
	{ LC_DONE, IN(IN_WITHDRAWN), NULL, NULL, LC_CANCELLED,
	  "done: every notice withdrawn -> cancelled" },
	{ LC_DONE, IN(IN_ENDED), chain_ran, recover_ended, LC_RECOVERING,
	  "done: over, the VM lived -> recovering" },
	{ LC_DONE, IN(IN_ENDED), NULL, close_unrun, LC_CLOSED,
	  "done: over, no hook had run -> closed" },
	{ LC_DONE, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "done: the VM came back on a new boot -> recovering" },
	{ LC_DONE, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "done: a new boot, no hook had run -> closed" },
	{ LC_DONE, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) |
	  IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_GONE) | IN(IN_BACK) | IN(IN_DEADLINE) |
	  IN(IN_CHAIN_END) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED), NULL, NULL, SAME,
	  "done: nothing changes" },

	/* ---- cancelled: nothing runs, nothing is acknowledged; a notice back
	 * before its NotBefore resumes the chain ---- */
	{ LC_CANCELLED, IN(IN_SEEN) | IN(IN_JOINED), NULL, follow_deadline, SAME,
	  "cancelled: a notice seen or joined -> the deadline follows" },
	{ LC_CANCELLED, IN(IN_BACK), under_way, uncancel, LC_RUNNING,
	  "cancelled: a notice is back -> the hooks left run" },
	{ LC_CANCELLED, IN(IN_BACK), NULL, uncancel, LC_DETECTED,
	  "cancelled: a notice is back, no hook had started -> detected" },
	{ LC_CANCELLED, IN(IN_SETTLED), chain_ran, recover_cancelled, LC_RECOVERING,
	  "cancelled: past its NotBefore -> recovering" },
	{ LC_CANCELLED, IN(IN_SETTLED), NULL, close_unrun, LC_CLOSED,
	  "cancelled: past its NotBefore, no hook had run -> closed" },
	{ LC_CANCELLED, IN(IN_ENDED), chain_ran, recover_ended, LC_RECOVERING,
	  "cancelled: a notice is over, the VM lived -> recovering" },
	{ LC_CANCELLED, IN(IN_ENDED), NULL, close_unrun, LC_CLOSED,
	  "cancelled: a notice is over, no hook had run -> closed" },
	{ LC_CANCELLED, IN(IN_BOOT), chain_ran, recover_boot, LC_RECOVERING,
	  "cancelled: the VM came back on a new boot -> recovering" },
	{ LC_CANCELLED, IN(IN_BOOT), NULL, close_unrun, LC_CLOSED,
	  "cancelled: a new boot, no hook had run -> closed" },
	{ LC_CANCELLED, IN(IN_DEADLINE), hook_running, at_deadline, SAME,
	  "cancelled: deadline passed while a hook runs -> it ends at the deadline" },
	{ LC_CANCELLED, IN(IN_PLANNED) | IN(IN_UNREADABLE) | IN(IN_HOOK_STARTED) | IN(IN_HOOK_ENDED) |
	  IN(IN_PREEMPTED) | IN(IN_STOP) | IN(IN_WITHDRAWN) | IN(IN_GONE) | IN(IN_DEADLINE) |
	  IN(IN_CHAIN_END) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED), NULL, NULL, SAME,
	  "cancelled: nothing changes" },

	/* ---- recovering: the recover hooks, once, in order ---- */
	{ LC_RECOVERING, IN(IN_UNREADABLE), NULL, scan_later, SAME,
	  "recovering: hook directories unreadable -> read them again shortly" },
	{ LC_RECOVERING, IN(IN_DEADLINE), NULL, recover_deadline, SAME,
	  "recovering: its budget passed -> the running hook ends, the rest are skipped" },
	{ LC_RECOVERING, IN(IN_PREEMPTED), NULL, yield_slot, SAME,
	  "recovering: a new eviction -> the recover hooks left are skipped" },
	{ LC_RECOVERING, IN(IN_CHAIN_END), NULL, recovered, LC_CLOSED,
	  "recovering: the recover hooks are done -> closed" },
	{ LC_RECOVERING, IN(IN_SEEN) | IN(IN_JOINED) | IN(IN_PLANNED) | IN(IN_HOOK_STARTED) |
	  IN(IN_HOOK_ENDED) | IN(IN_BOOT) | IN(IN_STOP) | IN(IN_ENDED) | IN(IN_WITHDRAWN) |
	  IN(IN_GONE) | IN(IN_BACK) | IN(IN_DRAINED) | IN(IN_ACKS_SETTLED) | IN(IN_SETTLED),
	  NULL, NULL, SAME,
	  "recovering: nothing changes (the slot starts the next recover hook)" },

	/* ---- closed: over ---- */
	{ LC_CLOSED, ALL_INPUTS, NULL, NULL, SAME, "closed: nothing changes" },
};

_Static_assert(ELEMENTSOF(rules) <= ENGINE_RULES_MAX, "raise ENGINE_RULES_MAX");

static struct engine_rule_info rule_info[ELEMENTSOF(rules)];
static char rule_inputs[ELEMENTSOF(rules)][256];

const struct engine_rule_info *engine_rules(size_t *ret_n)
{
	/* Built once from the table; the strings are static. */
	if (!rule_info[0].name)
		for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
			size_t k = 0;

			rule_inputs[i][0] = '\0';
			for (int in = 0; in < _IN_MAX; in++)
				if (rules[i].inputs & IN(in)) {
					int w = snprintf(rule_inputs[i] + k, sizeof(rule_inputs[i]) - k, "%s%s",
							 k ? "," : "", input_names[in]);

					if (w > 0 && (size_t)w < sizeof(rule_inputs[i]) - k)
						k += (size_t)w;
				}
			rule_info[i].state = lifecycle_to_string(rules[i].state);
			rule_info[i].input = rule_inputs[i];
			rule_info[i].name = rules[i].name;
		}
	*ret_n = ELEMENTSOF(rules);
	return rule_info;
}

void lifecycle_fire(struct engine *e, struct eviction *r, enum input in)
{
	for (size_t i = 0; i < ELEMENTSOF(rules); i++) {
		const struct rule *row = &rules[i];
		enum lifecycle from = r->state;
		struct engine_action *a;

		if (row->state != r->state || !(row->inputs & IN(in)))
			continue;
		if (row->guard && !row->guard(e, r))
			continue;
		e->rule_hits[i]++;
		if (row->action)
			row->action(e, r);
		if (row->next == SAME || (enum lifecycle)row->next == from)
			return;
		r->state = (enum lifecycle)row->next;
		r->state_since_wall_usec = e->now;
		r->last_alive_wall_usec = e->now;
		a = engine_push(e, ENGINE_TRANSITION, r->id);
		a->from = from;
		a->to = r->state;
		a->rule = (unsigned)i;
		engine_persist(e);
		return;
	}
	/* Every state has a row for every input (test-engine checks it). */
	abort();
}

/* ---- the level inputs ---- */

static bool hook_left(const struct hook_result *hooks, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (hooks[i].outcome == HOOK_PENDING || hooks[i].outcome == HOOK_RUNNING)
			return true;
	return false;
}

/* The chain has nothing left: every hook final, and the plan was taken
 * (or some hook is on record, or the deadline passed before any plan). */
static bool chain_over(struct engine *e, struct eviction *r, enum chain_kind c)
{
	const struct engine_rt *rt = engine_rt_of(e, r);
	size_t n;
	struct hook_result *hooks = engine_chain(r, c, &n);

	if (hook_left(hooks, n) || e->slot.scanning)
		return false;
	if (rt->planned && rt->planned_chain == c)
		return true;
	if (c == CHAIN_EVICT && (n > 0 || r->empty_plan))
		return true;
	return e->now >= engine_chain_deadline(r, c);
}

uint64_t lifecycle_settled_at(const struct eviction *r)
{
	uint64_t nb = 0, gone = 0;

	for (size_t i = 0; i < r->n_notices; i++) {
		if (r->notices[i].ev.not_before_usec > nb)
			nb = r->notices[i].ev.not_before_usec;
		if (r->notices[i].gone_wall_usec > gone)
			gone = r->notices[i].gone_wall_usec;
	}
	if (nb)
		return nb;
	return (gone ? gone : r->state_since_wall_usec) + ENGINE_CANCEL_SETTLE_USEC;
}

void lifecycle_levels(struct engine *e, struct eviction *r)
{
	unsigned live = 0, gone = 0, withdrawn = 0, ended = 0;
	struct hook_result *hooks;
	enum chain_kind c;
	size_t n;

	for (size_t k = 0; k < r->n_notices; k++)
		switch (engine_notice_class(e, r, k)) {
		case NOTICE_LIVE:
			live++;
			break;
		case NOTICE_GONE:
			gone++;
			break;
		case NOTICE_WITHDRAWN:
			withdrawn++;
			break;
		case NOTICE_ENDED:
			ended++;
			break;
		}
	/* Each input is given on the state the one before left; the order is
	 * that of enum input. */
	if (live == 0 && gone == 0 && ended > 0)
		lifecycle_fire(e, r, IN_ENDED);
	if (live == 0 && gone == 0 && ended == 0 && withdrawn > 0)
		lifecycle_fire(e, r, IN_WITHDRAWN);
	if (live == 0 && gone > 0)
		lifecycle_fire(e, r, IN_GONE);
	if (live > 0)
		lifecycle_fire(e, r, IN_BACK);
	c = lifecycle_props(r->state)->chain;
	hooks = engine_chain(r, c, &n);
	if (e->now >= engine_chain_deadline(r, c) && hook_left(hooks, n))
		lifecycle_fire(e, r, IN_DEADLINE);
	c = lifecycle_props(r->state)->chain;
	if (chain_over(e, r, c))
		lifecycle_fire(e, r, IN_CHAIN_END);
	if (e->now >= r->drain_until_wall_usec)
		lifecycle_fire(e, r, IN_DRAINED);
	if (!after_hooks_ack_waiting(r))
		lifecycle_fire(e, r, IN_ACKS_SETTLED);
	if (r->state == LC_CANCELLED && e->now >= lifecycle_settled_at(r))
		lifecycle_fire(e, r, IN_SETTLED);
}
