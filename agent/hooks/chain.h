/* chain.h - carrying out the engine's hook actions: read the hook
 * directories, start a hook with the event's environment and stdin, kill
 * it, and hand its end back to the engine. Shared by the daemon (agent.c)
 * and the drill (drill.c), so both run hooks the same way. */
#ifndef SPOT_CHAIN_H
#define SPOT_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config/config.h"
#include "engine/engine.h"
#include "hooks/hooks.h"
#include "http/metrics.h"
#include "store/state.h"

struct chain {
	sd_event *event;             /* borrowed */
	struct engine *engine;       /* borrowed */
	struct agent_state *state;   /* borrowed */
	const struct config *cfg;    /* borrowed; may be replaced by the owner */
	struct metrics *metrics;     /* borrowed, NULL in a drill */
	bool drill;                  /* SPOT_DRILL=1 */
	/* Called after the engine was given a hook's end: the owner takes the
	 * engine's new actions. */
	void (*after_input)(void *userdata);
	/* Called with a hook's result (its report included) just before the
	 * engine is given it; id is the record's. May be NULL. */
	void (*hook_ended)(void *userdata, const char *id, const struct hook_result *res);
	void *userdata;

	/* The last scan's plan, kept until the next scan: its descriptors are
	 * the files that were checked, and what the chain's hooks run. */
	struct hook_plan plan;
	/* What the hook directories looked like just before that scan; a
	 * chain that begins while they still look so takes the plan as it is
	 * (see chain.c). 0: the next chain scans. */
	uint64_t plan_sig;
	struct hook_run *run;        /* the running hook, NULL none */
	char run_id[EVENT_ID_MAX];
	char *run_stdin;
	char **run_env;
	char *skips_signature;       /* of the skips logged last */
	/* The record detected by this process most recently and when it was
	 * read (for the detection-to-first-hook figure). */
	char detected_id[EVENT_ID_MAX];
	uint64_t detected_mono_usec;
	bool first_hook_noted;
};

void chain_init(struct chain *c);
/* Kills a running hook (and its tree) and frees what the chain holds. */
void chain_done(struct chain *c);

/* Carries out ENGINE_SCAN_HOOKS, ENGINE_START_HOOK and ENGINE_KILL_HOOK,
 * feeding what happened back into the engine; returns false for any other
 * action (the caller's). */
bool chain_carry_out(struct chain *c, const struct engine_action *a);

/* Scans the hook directories ahead of any event (at start, after a
 * reload), logging the skips, so that the next chain need not wait for the
 * scan. *ret borrows the plan until the chain's next scan. -EBUSY while a
 * chain is in hand (the next chain scans), else hooks_scan's result. */
int chain_prescan(struct chain *c, const struct hook_plan **ret);

/* A record was detected by this process at read_mono_usec. */
void chain_note_detected(struct chain *c, const char *id, uint64_t read_mono_usec);

/* Logs each skipped hook file with its reason, but only when the set of
 * skips differs from the one last logged (*signature, owned). */
void chain_log_skips(const struct hook_plan *plan, char **signature);

#endif
