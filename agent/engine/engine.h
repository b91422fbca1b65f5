/* engine.h - the eviction protocol as a pure state machine.
 *
 * Inputs go in (a provider round's events, a hook's end, an approval's
 * answer, the time, a stop request); actions come out (persist the records,
 * start hook N with budget B, send an approval, leave the loop), together
 * with reports for logs and metrics. The engine does no I/O, reads no clock
 * and keeps no timer: every input carries the wall-clock time, and
 * engine_next_wake says when it wants engine_tick. The records it works on
 * are the agent_state's (state.h), so /v1/status shows exactly what the
 * engine decided, and the persisted form is all a restarted engine needs.
 *
 * The promises, each kept by one rule below:
 * - a hook whose outcome was persisted never runs again for its event: the
 *   outcome is persisted (ENGINE_PERSIST) before anything else happens;
 * - hooks run one at a time, in order, each bounded by its budget; no hook
 *   is skipped while time remains; exit 77 and the skips it implies are
 *   persisted together;
 * - a hook that cannot be started for want of resources stays pending and
 *   is retried until its deadline: an unrun chain is never approved early;
 * - an event is approved after its chain, retried with a capped backoff
 *   until confirmed, Started, gone or past NotBefore, and only while a round
 *   since this process started lists it as Scheduled;
 * - ids and deadlines are fixed at the first sighting and persisted with
 *   the record before a hook can see them;
 * - readiness drops (phase pending) the moment an eviction is detected or
 *   resumed, before any hook starts. */
#ifndef SPOT_ENGINE_H
#define SPOT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"
#include "hooks/hooks.h"
#include "store/state.h"

/* A hook that could not be started (EAGAIN, ENOMEM, EMFILE, ...) is tried
 * again this soon, until its deadline. */
#define ENGINE_START_RETRY_USEC     (100 * USEC_PER_MSEC)
/* Unreadable hook directories with no hook known yet: scanned again this soon. */
#define ENGINE_SCAN_RETRY_USEC      (200 * USEC_PER_MSEC)
/* Approval retries: the first after this, doubling up to the cap. */
#define ENGINE_APPROVE_RETRY_USEC   (250 * USEC_PER_MSEC)
#define ENGINE_APPROVE_RETRY_MAX_USEC (2 * USEC_PER_SEC)
/* An event that left the listing pauses its chain (no further hook starts);
 * back within this long it goes on as the same event, after it the rest of
 * its hooks are skipped ("cancelled"), and a provider key seen again is a
 * new notice. */
#define ENGINE_GONE_GRACE_USEC      (5 * USEC_PER_SEC)
/* When the OS starts shutting down (logind's PrepareForShutdown), two
 * rounds are awaited (the first may have been asked before the shutdown
 * began), this long at most: a platform notice they show (GCP's preemption
 * comes with the ACPI soft-off, sometimes a moment after it) is run as
 * itself; without one the hooks run for a synthetic Shutdown event. */
#define ENGINE_SHUTDOWN_WAIT_USEC   (3 * USEC_PER_SEC)
#define ENGINE_SHUTDOWN_ROUNDS      2
#define ENGINE_BOOT_TAG_MAX         33
/* A running hook is killed when the deadline passes with it still running
 * (its budget is set at start; a NotBefore that moves earlier shortens it). */

enum engine_action_kind {
	/* Effects, carried out by the caller in order. */
	ENGINE_PERSIST,        /* write the records now (state_save) */
	ENGINE_SCAN_HOOKS,     /* read the hook directories for record id, then
				* call engine_hooks_scanned */
	ENGINE_START_HOOK,     /* start hook `hook` of record id with budget_usec;
				* on failure call engine_hook_start_failed */
	ENGINE_KILL_HOOK,      /* end the running hook early (hook_run_kill) */
	ENGINE_APPROVE,        /* send the approval of record id; answer with
				* engine_approval_answered */
	ENGINE_EXIT,           /* stopping and nothing left in hand */
	ENGINE_RELEASE_SHUTDOWN, /* the OS may go on shutting down: release the
				  * delay inhibitor lock */
	/* Reports, for logs and metrics; nothing to carry out. */
	ENGINE_DETECTED,       /* a new record (id) */
	ENGINE_RESUMED,        /* an unfinished record loaded at start (id) */
	ENGINE_CHANGED,        /* status or NotBefore of record id changed */
	ENGINE_GONE,           /* record id left the listing */
	ENGINE_BACK,           /* record id is listed again */
	ENGINE_CANCELLED,      /* record id stayed gone: the rest is skipped */
	ENGINE_IGNORED,        /* an event for this VM whose type is not wanted:
				* id, event_type */
	ENGINE_HOOK_SKIPPED,   /* hook `hook` of record id became skipped */
	ENGINE_START_RETRY,    /* hook `hook` could not start (err), retrying */
	ENGINE_CHAIN_DONE,     /* every hook of record id is final */
	ENGINE_APPROVED,       /* record id's approval was confirmed */
	ENGINE_APPROVE_FAILED, /* record id's approval failed; retried while due */
	ENGINE_SHUTDOWN_NOTED, /* the OS is shutting down; id names the record
				* that covers it ("" when none is needed) */
	_ENGINE_ACTION_MAX,
};

struct engine_action {
	enum engine_action_kind kind;
	char id[EVENT_ID_MAX];
	size_t hook;                /* START_HOOK, HOOK_SKIPPED, START_RETRY */
	uint64_t budget_usec;       /* START_HOOK */
	int err;                    /* START_RETRY: the errno */
	enum event_type event_type; /* IGNORED */
	bool fast;                  /* PERSIST: need not reach the disk (no
				     * fsync); surviving a crash of the agent
				     * is enough */
};

struct engine_config {
	uint64_t margin_usec;        /* the chain ends this long before NotBefore */
	uint64_t hook_timeout_usec;  /* upper bound per hook, 0 = only the deadline */
	uint32_t events_mask;        /* 1u << enum event_type of the wanted types */
	bool approve;                /* approve events after their chain */
	bool provider_approves;      /* the provider has an approval call */
	enum provider provider;      /* for the synthetic Shutdown event */
};

struct engine {
	struct engine_config cfg;
	struct agent_state *state;   /* borrowed: the records live there */
	char chain_id[EVENT_ID_MAX]; /* record whose chain is running, "" none */
	int running;                 /* index of its running hook, -1 none */
	uint64_t running_end_wall_usec; /* when its budget ends */
	bool kill_sent;
	bool stopping;
	bool exited;
	uint64_t now;                /* the time of the latest input */
	bool persist_later;          /* a write that may follow this step's hook start */
	bool persist_new;            /* new records not on disk yet (save_new_records) */
	bool scan_pending;           /* ENGINE_SCAN_HOOKS not answered yet */
	/* The OS is shutting down (engine_shutdown) until cancelled. */
	bool shutdown;
	unsigned shutdown_rounds;    /* rounds that came since it began */
	bool shutdown_decided;       /* notice or synthetic event settled */
	bool shutdown_released;      /* ENGINE_RELEASE_SHUTDOWN sent */
	uint64_t shutdown_decide_wall_usec;
	uint64_t shutdown_end_wall_usec;  /* logind's budget runs out */
	char boot_tag[ENGINE_BOOT_TAG_MAX];
	/* FIFO of actions not yet taken by the caller. */
	struct engine_action *actions;
	size_t n_actions, first, cap;
};

/* st holds the records (loaded from the state file or empty); borrowed for
 * the engine's lifetime. Nothing happens until engine_start. */
void engine_init(struct engine *e, const struct engine_config *cfg, struct agent_state *st);
void engine_done(struct engine *e);
/* SIGHUP: a new configuration; running chains keep their deadlines. */
void engine_set_config(struct engine *e, const struct engine_config *cfg);

/* Start of the process: records loaded unfinished with time left resume at
 * once, without waiting for the metadata service. */
void engine_start(struct engine *e, uint64_t now_wall_usec);

/* A provider round succeeded: events are the ones naming this machine (all
 * of a document while vm_name is NULL, in which case only records already
 * held are matched). */
void engine_round(struct engine *e, const struct event_list *events, const char *vm_name,
		  uint64_t now_wall_usec);

/* The answer to ENGINE_SCAN_HOOKS: plan NULL when the directories could not
 * be read. */
void engine_hooks_scanned(struct engine *e, const char *id, const struct hook_plan *plan,
			  uint64_t now_wall_usec);
/* Whether a hook that could not start with err (a positive errno) stays
 * pending and is tried again: a shortage that passes (EAGAIN, ENOMEM, ...). */
bool engine_start_error_retried(int err);
/* ENGINE_START_HOOK could not be carried out: err is a positive errno. */
void engine_hook_start_failed(struct engine *e, int err, uint64_t now_wall_usec);
/* The running hook ended. The outcome fields of res are copied and its
 * output lines moved into the record (res's ring is left empty). */
void engine_hook_ended(struct engine *e, struct hook_result *res, uint64_t now_wall_usec);
void engine_approval_answered(struct engine *e, const char *id, bool ok, uint64_t now_wall_usec);
/* Time passed (engine_next_wake was reached, or any other wake-up). */
void engine_tick(struct engine *e, uint64_t now_wall_usec);
/* SIGTERM: no more rounds come; every chain in hand still runs to its end
 * within its deadline, a due approval is sent (one try), then ENGINE_EXIT.
 * With nothing in hand ENGINE_EXIT comes at once. */
void engine_stop(struct engine *e, uint64_t now_wall_usec);

/* The OS began shutting down with budget_usec to go (logind's delay).
 * A chain in hand runs on; otherwise, after ENGINE_SHUTDOWN_ROUNDS rounds
 * (or ENGINE_SHUTDOWN_WAIT_USEC), a platform notice for this VM runs as itself,
 * or a synthetic Shutdown event (source "OS", id "os-shutdown-<boot_tag>":
 * once per boot) gets the budget, when 'events' has Shutdown. Then
 * ENGINE_RELEASE_SHUTDOWN when nothing is in hand or the budget is spent. */
void engine_shutdown(struct engine *e, uint64_t budget_usec, const char *boot_tag,
		     uint64_t now_wall_usec);
/* The shutdown was cancelled: chains run on, nothing is released. */
void engine_shutdown_cancelled(struct engine *e, uint64_t now_wall_usec);

/* Takes the oldest action not yet taken: false when there is none. Inputs
 * given while the caller takes actions queue behind them. */
bool engine_next_action(struct engine *e, struct engine_action *ret);
/* When the engine wants engine_tick (wall clock), USEC_INFINITY for never. */
uint64_t engine_next_wake(const struct engine *e);
/* An eviction is in hand (a chain to run or running, an approval due): the
 * caller polls at its plain interval, without backoff. */
bool engine_active(const struct engine *e);
/* The phase /readyz and /v1/status show; also kept in state->phase. */
enum agent_phase engine_phase(const struct engine *e);
/* Whether a record still wants its approval sent (and is allowed to). */
bool engine_wants_approval(const struct engine *e, const struct event_record *r,
			   uint64_t now_wall_usec);

const char *engine_action_to_string(enum engine_action_kind k);

#endif
