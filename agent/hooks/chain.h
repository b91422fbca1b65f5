/* chain.h - carrying out the engine's hook actions: read the hook
 * directories (recover.d below them for the recover chain), start a hook
 * with the eviction's environment and stdin, end it early, and hand its end
 * back to the engine. Shared by the daemon (agent.c) and the drill
 * (drill.c), so both run hooks the same way. */
#ifndef SPOT_CHAIN_H
#define SPOT_CHAIN_H

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "engine/engine.h"
#include "engine/record.h"
#include "hooks/hooks.h"

#define CHAIN_RECOVER_DIR HOOKS_RECOVER_DIR

struct chain {
	sd_event *event;             /* borrowed */
	struct engine *engine;       /* borrowed */
	struct records *records;     /* borrowed */
	/* The hook directories, borrowed from the owner's configuration (the
	 * owner points them at the new strings after a reload). */
	const char *hooks_dir;
	const char *hooks_lib_dir;   /* NULL or "" none */
	const char *state_dir;       /* where the hooks' report files go, NULL none */
	const char *const *vm_name;  /* borrowed: the owner's current name */
	bool drill;                  /* SPOT_DRILL=1 */
	/* What the owner is told, from the loop (each may be NULL): a hook
	 * started (for the detection-to-first-hook figure), a hook ended
	 * (called before the engine hears of it), and after the engine was
	 * given a hook's end (the owner takes the engine's new actions). */
	void (*hook_started)(void *userdata, const struct eviction *r, enum chain_kind c, size_t hook);
	void (*hook_ended)(void *userdata, const struct eviction *r, enum chain_kind c, const struct hook_result *res);
	void (*after_input)(void *userdata);
	void *userdata;

	/* The last scan's plans, kept until the next scan: their descriptors
	 * are the files that were checked, and what the chain's hooks run. */
	struct hook_plan plan;
	struct hook_plan recover_plan;
	/* What the hook directories looked like just before the evict plan's
	 * scan; a chain that begins while they still look so takes the plan as
	 * it is (see chain.c). 0: the next chain scans. */
	uint64_t plan_sig;
	struct hook_run *run;        /* the running hook, NULL none */
	char run_id[EVENT_ID_MAX];
	enum chain_kind run_chain;
	char *run_stdin;
	char **run_env;
	char *skips_signature;       /* of the skips logged last */
	/* A hook whose start keeps failing is logged once, not at every
	 * retry: which one, and how many tries failed since. */
	struct {
		char id[EVENT_ID_MAX];
		enum chain_kind chain;
		size_t hook;
		unsigned failures;
	} start_failing;
};

void chain_init(struct chain *c);
/* Kills a running hook (and its tree) and frees what the chain holds. */
void chain_done(struct chain *c);

/* Carries out ENGINE_SCAN_HOOKS, ENGINE_START_HOOK and
 * ENGINE_SHORTEN_HOOK, feeding what happened back into the engine;
 * returns false for any other action (the caller's). */
bool chain_carry_out(struct chain *c, const struct engine_action *a);

/* Scans the hook directories ahead of any eviction (at start, after a
 * reload), logging the skips, so that the next chain need not wait for the
 * scan. *ret borrows the plan until the chain's next scan. -EBUSY while an
 * eviction is in hand (the next chain scans), else hooks_scan's result. */
int chain_prescan(struct chain *c, const struct hook_plan **ret);

/* Logs each skipped hook file with its reason, but only when the set of
 * skips differs from the one last logged (*signature, owned). */
void chain_log_skips(const struct hook_plan *plan, char **signature);

/* The recover.d directory below dir (caller frees), NULL for NULL or "". */
char *chain_recover_dir(const char *dir);

#endif
