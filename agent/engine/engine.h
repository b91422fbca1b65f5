/* engine.h - the eviction protocol as a pure state machine.
 *
 * Inputs go in (a provider round's notices, the hook plan, a hook's end,
 * an acknowledgement's answer, the time, a stop, a shutdown); actions come
 * out (persist the records, start hook N with budget B, acknowledge notice
 * K, leave the loop), together with reports for logs, metrics and the
 * journal. The engine does no I/O, reads no clock and keeps no timer: every
 * input carries the wall-clock time, and engine_next_wake says when it
 * wants engine_tick. It works on the records it is given (record.h), so
 * /v1/status shows exactly what it decided, and the persisted form is all
 * a restarted engine needs; what only one process knows (a round listed a
 * notice, an acknowledgement is in flight, a retry is due) stays in the
 * engine's own table.
 *
 * Each eviction moves through one lifecycle (enum lifecycle), by one
 * transition table in engine.c: a row per state and input, a guard, an
 * action, the next state. README "Exactly once, across crashes" states
 * its promises; test-engine checks them, word for word, on every path it
 * explores. */
#ifndef SPOT_ENGINE_H
#define SPOT_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base.h"
#include "engine/event.h"
#include "engine/record.h"

/* A hook that could not be started (EAGAIN, ENOMEM, EMFILE, ...) is tried
 * again this soon, until its deadline. */
#define ENGINE_START_RETRY_USEC     (100 * USEC_PER_MSEC)
/* Unreadable hook directories with no hook known yet: scanned again this soon. */
#define ENGINE_SCAN_RETRY_USEC      (200 * USEC_PER_MSEC)
/* Acknowledgement retries: the first after this, doubling up to the cap;
 * for a notice whose NotBefore is far away (an Auto Scaling wait), up to
 * the long cap. */
#define ENGINE_ACK_RETRY_USEC       (250 * USEC_PER_MSEC)
#define ENGINE_ACK_RETRY_MAX_USEC   (2 * USEC_PER_SEC)
#define ENGINE_ACK_RETRY_LONG_USEC  (30 * USEC_PER_SEC)
#define ENGINE_ACK_FAR_USEC         (600 * USEC_PER_SEC)
/* A notice that left its listing pauses the chain; back within this long
 * it goes on. After it, a notice that had not started is withdrawn
 * (cancelled), one that had is over (ended). */
#define ENGINE_GONE_GRACE_USEC      (5 * USEC_PER_SEC)
/* A cancelled eviction waits for its notices' NotBefore before its
 * recover hooks run, so that a notice back in the meantime resumes it; with
 * no NotBefore known, this long after the cancel. */
#define ENGINE_CANCEL_SETTLE_USEC   (60 * USEC_PER_SEC)
/* Moves of a provider's NotBefore smaller than this (AWS's own metadata
 * mock moves the spot time by a second on every answer) are not a change. */
#define ENGINE_NOT_BEFORE_JITTER_USEC (2 * USEC_PER_SEC)
/* The recover hooks' chain gets this long from its start. */
#define ENGINE_RECOVER_BUDGET_USEC  (300 * USEC_PER_SEC)
/* When the OS starts shutting down (logind's PrepareForShutdown) with no
 * eviction in hand, two rounds are awaited (the first may have been asked
 * before the shutdown began), this long at most: a platform notice they
 * show (GCP's preemption comes with the ACPI soft-off, sometimes a moment
 * after it) leads the eviction; the shutdown's own notice joins it. */
#define ENGINE_SHUTDOWN_WAIT_USEC   (3 * USEC_PER_SEC)
#define ENGINE_SHUTDOWN_ROUNDS      2
/* Transition rows the table may hold (engine_rules). */
#define ENGINE_RULES_MAX            160

/* The two chains of an eviction: its hooks, and the recover hooks of
 * recover.d once the danger has passed. */
enum chain_kind {
	CHAIN_EVICT,
	CHAIN_RECOVER,
	_CHAIN_KIND_MAX,
};
const char *chain_kind_to_string(enum chain_kind c);

/* The hooks of chain c of r, and their number. */
struct hook_result *engine_chain(struct eviction *r, enum chain_kind c, size_t *ret_n);
/* When chain c of r must be done: the eviction's deadline, or the recover
 * chain's budget from its start. */
uint64_t engine_chain_deadline(const struct eviction *r, enum chain_kind c);

/* A hook file the plan names: borrowed for the call. */
struct hook_ref {
	const char *name;
	const char *path;
};

enum engine_action_kind {
	/* Effects, carried out by the caller in order. */
	ENGINE_PERSIST,        /* write the records now (fast: need not reach
				* the disk, surviving a crash of the agent
				* is enough) */
	ENGINE_SCAN_HOOKS,     /* read the hook directories of chain for
				* eviction id, then engine_hooks_scanned */
	ENGINE_START_HOOK,     /* start hook `hook` of chain of id with
				* budget_usec; on failure
				* engine_hook_start_failed */
	ENGINE_SHORTEN_HOOK,   /* the running hook now ends at end_wall_usec
				* (SIGTERM a grace before, SIGKILL at it; at
				* once when that has passed) */
	ENGINE_SEND_ACK,       /* acknowledge notice `notice` of id (abandon:
				* a hook asked for ABANDON); answer with
				* engine_ack_answered */
	ENGINE_SEND_HEARTBEAT, /* keep notice `notice`'s lifecycle action
				* alive; answer with engine_heartbeat_answered */
	ENGINE_EXIT,           /* stopping and nothing left in hand */
	ENGINE_RELEASE_SHUTDOWN, /* the OS may go on shutting down */
	/* Reports, for logs, metrics and the journal; nothing to carry out. */
	ENGINE_DETECTED,       /* a new eviction (id) */
	ENGINE_JOINED,         /* notice `notice` joined eviction id */
	ENGINE_RESUMED,        /* an eviction in hand, loaded at start */
	ENGINE_TRANSITION,     /* eviction id moved from `from` by rule `rule` */
	ENGINE_CHANGED,        /* notice `notice`: status, NotBefore or deadline */
	ENGINE_GONE,           /* notice `notice` left its listing */
	ENGINE_BACK,           /* notice `notice` is listed again */
	ENGINE_IGNORED,        /* a notice for this VM whose type is not
				* wanted: id, event_type */
	ENGINE_REFUSED,        /* a notice that would be one too many for the
				* eviction (RECORD_NOTICES_MAX): id of the
				* notice, event_type */
	ENGINE_HOOK_SKIPPED,   /* hook `hook` of chain became skipped */
	ENGINE_START_RETRY,    /* hook `hook` could not start (err), retrying */
	ENGINE_CHAIN_DONE,     /* chain of eviction id ended */
	ENGINE_ACKED,          /* notice `notice` was acknowledged */
	ENGINE_ACK_FAILED,     /* its acknowledgement failed; retried while due */
	ENGINE_ACK_DROPPED,    /* its acknowledgement will not be sent: reason */
	ENGINE_SHUTDOWN_NOTED, /* the OS is shutting down; id names the
				* eviction that covers it ("" when none) */
	_ENGINE_ACTION_MAX,
};

struct engine_action {
	enum engine_action_kind kind;
	char id[EVENT_ID_MAX];      /* the eviction's id, or the notice's (IGNORED, REFUSED) */
	enum chain_kind chain;      /* SCAN_HOOKS, START_HOOK, HOOK_SKIPPED, START_RETRY, CHAIN_DONE */
	size_t hook;                /* START_HOOK, HOOK_SKIPPED, START_RETRY */
	size_t notice;              /* SEND_ACK, SEND_HEARTBEAT, JOINED, CHANGED, GONE, BACK, ACK_* */
	uint64_t budget_usec;       /* START_HOOK */
	uint64_t end_wall_usec;     /* SHORTEN_HOOK */
	int err;                    /* START_RETRY: -errno */
	bool fast;                  /* PERSIST */
	/* CHANGED: only the NotBefore of a notice whose id the agent made up
	 * drifted later (AWS's spot time moves with every answer of its own
	 * mock): worth a debug line, not a log line per answer. */
	bool drift;
	bool abandon;               /* SEND_ACK */
	enum event_type event_type; /* IGNORED, REFUSED */
	enum lifecycle from, to;    /* TRANSITION */
	unsigned rule;              /* TRANSITION: index in engine_rules */
	const char *reason;         /* ACK_DROPPED: static text */
};

struct engine_config {
	uint64_t margin_usec;        /* the chain ends this long before NotBefore */
	uint64_t hook_timeout_usec;  /* upper bound per hook, 0 = only the deadline */
	uint64_t drain_usec;         /* no acknowledgement sooner after detection */
	uint32_t events_mask;        /* 1u << enum event_type of the wanted types */
	bool approve;                /* acknowledgements at all (--no-approve) */
	enum ack_policy ack_policy[_EVENT_TYPE_MAX];
	uint64_t heartbeat_period_usec; /* Auto Scaling heartbeats, 0 = none */
	enum provider provider;      /* for the shutdown's notice */
	char boot[RECORD_BOOT_MAX];  /* this boot's tag ("" unknown) */
};

/* One row of the transition table, for tests and the documentation. */
struct engine_rule_info {
	const char *state;           /* lifecycle_to_string, or "*" */
	const char *input;
	const char *name;            /* "running: hook ended, more left -> start the next" */
};

/* What the engine knows of an eviction that no file holds. */
struct engine_rt;

struct engine {
	struct engine_config cfg;
	struct records *records;     /* borrowed: the evictions live there */
	struct engine_rt *rt;        /* owned, one per eviction held */
	size_t n_rt;
	/* The hook slot: one hook process at a time. */
	struct {
		char id[EVENT_ID_MAX];   /* eviction whose hook runs, "" none */
		enum chain_kind chain;
		size_t hook;
		uint64_t end_wall_usec;  /* its budget's end */
		bool shortened;          /* SHORTEN_HOOK sent for the current end */
		bool scanning;           /* SCAN_HOOKS not answered yet */
		char scan_id[EVENT_ID_MAX];
	} slot;
	bool ack_in_flight;
	bool heartbeat_in_flight;
	bool stopping;
	bool exited;
	bool started;
	uint64_t now;                /* the time of the latest input */
	bool persist_now;            /* a durable write is owed this step */
	bool persist_new;            /* a new eviction is not on disk yet */
	/* The OS is shutting down (engine_shutdown) until cancelled. */
	struct {
		bool on;
		unsigned rounds;         /* rounds that came since it began */
		bool decided;            /* joined, led, or not needed */
		bool released;           /* ENGINE_RELEASE_SHUTDOWN sent */
		uint64_t decide_wall_usec;
		uint64_t end_wall_usec;  /* logind's budget runs out */
	} shutdown;
	/* Firings per transition row since engine_init (for the tests). */
	uint64_t rule_hits[ENGINE_RULES_MAX];
	/* FIFO of actions not yet taken by the caller. */
	struct engine_action *actions;
	size_t n_actions, first, cap;
};

/* records holds the evictions (loaded from the state file or empty),
 * borrowed for the engine's lifetime. Nothing happens until engine_start. */
void engine_init(struct engine *e, const struct engine_config *cfg, struct records *records);
void engine_done(struct engine *e);
/* SIGHUP: a new configuration; evictions in hand keep their deadlines. */
void engine_set_config(struct engine *e, const struct engine_config *cfg);

/* Start of the process: evictions loaded in hand resume at once, without
 * waiting for the metadata service; those of an earlier boot recover. */
void engine_start(struct engine *e, uint64_t now_wall_usec);

/* A provider round succeeded: events are the ones naming this machine (all
 * of a document while vm_name is NULL, in which case only notices already
 * held are matched). feeds_answered (1u << enum event_feed) names the
 * requests that answered: a notice of another feed is neither seen nor
 * gone this round. */
void engine_round(struct engine *e, const struct event_list *events, uint32_t feeds_answered,
		  const char *vm_name, uint64_t now_wall_usec);

/* The answer to ENGINE_SCAN_HOOKS: readable false when the directories
 * could not be listed (hooks then names none). */
void engine_hooks_scanned(struct engine *e, const char *id, enum chain_kind chain,
			  const struct hook_ref *hooks, size_t n_hooks, bool readable,
			  uint64_t now_wall_usec);
/* Whether a hook that could not start with err (-errno) stays pending and
 * is tried again: a shortage that passes (-EAGAIN, -ENOMEM, ...). */
bool engine_start_error_retried(int err);
/* ENGINE_START_HOOK could not be carried out: err is -errno, why (may be
 * NULL) the words for the record. */
void engine_hook_start_failed(struct engine *e, int err, const char *why, uint64_t now_wall_usec);
/* The running hook ended. The outcome fields of res are copied and its
 * output lines moved into the record (res's ring is left empty). */
void engine_hook_ended(struct engine *e, struct hook_result *res, uint64_t now_wall_usec);
void engine_ack_answered(struct engine *e, const char *id, size_t notice, bool ok,
			 uint64_t now_wall_usec);
void engine_heartbeat_answered(struct engine *e, const char *id, size_t notice, bool ok,
			       uint64_t now_wall_usec);
/* Time passed (engine_next_wake was reached, or any other wake-up). */
void engine_tick(struct engine *e, uint64_t now_wall_usec);
/* SIGTERM: no more rounds come; the chain in hand runs to its end within
 * its deadline, the drain and a due acknowledgement follow (one try), then
 * ENGINE_EXIT. With nothing in hand ENGINE_EXIT comes at once. */
void engine_stop(struct engine *e, uint64_t now_wall_usec);

/* The OS began shutting down with budget_usec to go (logind's delay). Its
 * notice (source "OS", id "os-shutdown-<boot>") joins the eviction in hand
 * and binds its deadline; with none in hand, after ENGINE_SHUTDOWN_ROUNDS
 * rounds (or ENGINE_SHUTDOWN_WAIT_USEC) it leads one of its own (when
 * 'events' has Shutdown; once per boot). ENGINE_RELEASE_SHUTDOWN follows
 * when nothing is in hand or the budget is spent. */
void engine_shutdown(struct engine *e, uint64_t budget_usec, uint64_t now_wall_usec);
/* The shutdown was cancelled: chains run on, nothing is released. */
void engine_shutdown_cancelled(struct engine *e, uint64_t now_wall_usec);

/* Takes the oldest action not yet taken: false when there is none. Inputs
 * given while the caller takes actions queue behind them. */
bool engine_next_action(struct engine *e, struct engine_action *ret);
/* When the engine wants engine_tick (wall clock), USEC_INFINITY for never. */
uint64_t engine_next_wake(const struct engine *e);
/* An eviction is in hand (hooks to run, an acknowledgement due): the
 * caller polls at its plain interval, and a stop waits for it. */
bool engine_active(const struct engine *e);

/* /readyz: false from an eviction's detection until it is over (ended,
 * cancelled, or its NotBefore passed with none of its notices listed),
 * also right after a restart without the metadata service. *ret_cause (may
 * be NULL) gets the eviction that holds readiness down. */
bool engine_ready(const struct engine *e, uint64_t now_wall_usec, const struct eviction **ret_cause);

/* The summary /v1/status shows as "state". */
enum agent_phase {
	PHASE_IDLE,      /* no eviction in hand */
	PHASE_PENDING,   /* eviction detected, first hook not yet started */
	PHASE_RUNNING,   /* hooks running */
	PHASE_DONE,      /* chain ended (acknowledged or not), not over yet */
	_PHASE_MAX,
};
const char *agent_phase_to_string(enum agent_phase p);
enum agent_phase engine_phase(const struct engine *e, uint64_t now_wall_usec);

/* The transition table, for tests and `spot-agent check --rules`. */
const struct engine_rule_info *engine_rules(size_t *ret_n);

const char *engine_action_to_string(enum engine_action_kind k);

#endif
