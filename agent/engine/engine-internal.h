/* engine-internal.h - between the engine's files: the transition table
 * (lifecycle.c), the frame and its inputs (engine.c), the rounds
 * (notices.c), the hook slot (slot.c), acknowledgements (acks.c), the OS
 * shutting down (shutdown.c) and the queries (queries.c). Not for other
 * modules: they see engine.h. */
#ifndef SPOT_ENGINE_INTERNAL_H
#define SPOT_ENGINE_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/engine.h"

/* What one process knows of an eviction, beside its record. */
struct engine_rt {
	char id[EVENT_ID_MAX];
	bool planned;                /* the current chain's plan was taken */
	enum chain_kind planned_chain;
	uint64_t retry_wall_usec;    /* a start or scan is retried then, 0 none */
	struct {
		bool listed;             /* named by a round of this process */
		bool matched;            /* named by the round being handled */
		bool gone_confirmed;     /* gone as a round of this process saw */
		unsigned ack_failures;   /* in a row, for the backoff */
		uint64_t ack_next_wall_usec;      /* no acknowledgement before */
		uint64_t heartbeat_next_wall_usec;
	} notice[RECORD_NOTICES_MAX];
};

/* The inputs of the transition table. Edge inputs come once, when the
 * thing happens; level inputs are given after every input for as long as
 * their condition holds, so a restarted engine needs no memory of them. */
enum input {
	/* edge */
	IN_SEEN,         /* a round listed one of its notices */
	IN_JOINED,       /* another notice for this machine joined it */
	IN_PLANNED,      /* the plan of its chain was taken */
	IN_UNREADABLE,   /* the hook directories could not be read, no hook known */
	IN_HOOK_STARTED, /* a hook of its chain started */
	IN_HOOK_ENDED,   /* a hook of its chain ended, or could not start for good */
	IN_BOOT,         /* loaded from an earlier boot: the VM came back */
	IN_PREEMPTED,    /* a newer eviction needs the hook slot */
	IN_STOP,         /* SIGTERM */
	/* level */
	IN_ENDED,        /* no notice live, and one is over: it happened, the VM lived */
	IN_WITHDRAWN,    /* no notice live, every one withdrawn (left without
			  * starting, or cancelled by the provider) */
	IN_GONE,         /* no notice live, one left within the grace */
	IN_BACK,         /* a notice is live */
	IN_DEADLINE,     /* its chain's deadline has passed with a hook left */
	IN_CHAIN_END,    /* its chain has no hook pending or running */
	IN_DRAINED,      /* the drain has passed */
	IN_ACKS_SETTLED, /* no acknowledgement waiting for the chain */
	IN_SETTLED,      /* cancelled long enough: past its notices' NotBefore */
	_IN_MAX,
};

const char *input_to_string(enum input in);

/* What each lifecycle state allows (lifecycle.c's second table). */
struct state_props {
	bool joinable;        /* a further notice for this machine joins it */
	bool starts_hooks;    /* the next hook of `chain` may start */
	enum chain_kind chain;
	bool unready;         /* /readyz answers 503 */
	bool after_hooks_acks;/* acknowledgements sent after the hooks go out */
	bool at_once_acks;    /* acknowledgements sent on sight go out */
	bool heartbeats;      /* Auto Scaling heartbeats go out */
	enum agent_phase phase;
};

const struct state_props *lifecycle_props(enum lifecycle s);

/* Gives input to r; the table's matching row acts and moves r. */
void lifecycle_fire(struct engine *e, struct eviction *r, enum input in);
/* The level inputs whose condition holds for r now, in their order. */
void lifecycle_levels(struct engine *e, struct eviction *r);
/* When a cancelled eviction may recover: its notices' latest NotBefore,
 * or ENGINE_CANCEL_SETTLE_USEC after the last of them left. */
uint64_t lifecycle_settled_at(const struct eviction *r);

/* ---- shared by lifecycle.c and engine.c ---- */

struct engine_action *engine_push(struct engine *e, enum engine_action_kind kind, const char *id);
struct engine_rt *engine_rt_of(struct engine *e, const struct eviction *r);

/* A notice's standing now. */
enum notice_class {
	NOTICE_LIVE,       /* listed (or of a feed that cannot withdraw it) */
	NOTICE_GONE,       /* left its listing, within the grace */
	NOTICE_WITHDRAWN,  /* left without starting, or cancelled by the provider */
	NOTICE_ENDED,      /* left after it started or was approved, or completed
			    * by the provider */
};
enum notice_class engine_notice_class(const struct engine *e, const struct eviction *r, size_t k);

/* r's hook is the one running in the slot. */
bool engine_slot_runs(const struct engine *e, const struct eviction *r);
/* Marks every pending hook of chain c from index `from` on as skipped. */
void engine_skip_pending(struct engine *e, struct eviction *r, enum chain_kind c, size_t from,
			 const char *reason);
/* The running hook must not outlive end: SHORTEN_HOOK once per end. */
void engine_clamp_running(struct engine *e, struct eviction *r, uint64_t end);
/* Recomputes r's deadline from its notices'; a running hook follows. */
void engine_update_deadline(struct engine *e, struct eviction *r);
/* Drops every acknowledgement of r still waiting (reason for the log). */
void engine_drop_acks(struct engine *e, struct eviction *r, bool after_hooks_only, const char *reason);
/* A durable save is owed before the next effect. */
void engine_persist(struct engine *e);

/* A done eviction is over: its latest NotBefore has passed and no round
 * lists a notice of it. Readiness is back, and a further notice is a new
 * eviction rather than part of this one. */
bool engine_done_over(const struct engine *e, const struct eviction *r, uint64_t now);

/* ---- the steps of engine_advance(), which every input ends in ---- */

/* Runs the level inputs, the hook slot, the acknowledgements, the
 * shutdown and the exit until nothing changes. */
void engine_advance(struct engine *e, uint64_t now);
/* Forgets what it knew of evictions no longer held. */
void engine_prune_rt(struct engine *e);
/* The eviction a new notice for this machine joins, if any. */
struct eviction *engine_open_eviction(struct engine *e);
/* ---- notices (notices.c), also for the OS's (shutdown.c) ---- */

/* Notice n made from ev as first seen now: its deadline fixed. */
void engine_notice_from_event(const struct engine *e, struct notice *n,
			      const struct spot_event *ev, uint64_t now);
/* n's NotBefore and the deadline it gives, as first seen now. */
void engine_notice_deadline(const struct engine *e, struct notice *n, uint64_t now);
/* An eviction already handled ev: lingering, not a new eviction. */
bool engine_handled_before(struct engine *e, const struct spot_event *ev, uint64_t now);
/* A new eviction led by n (taken over), or n joins the open one r. */
struct eviction *engine_create_eviction(struct engine *e, struct notice *n, uint64_t now);
void engine_join(struct engine *e, struct eviction *r, struct notice *n, uint64_t now);

/* Starts the next hook (or a scan for its plan) when the slot is free;
 * true when something changed and the level inputs are worth another
 * pass. */
bool engine_run_slot(struct engine *e);
/* Hooks left RUNNING by a process that died are PENDING again: they
 * never completed. */
void engine_unrun_interrupted(struct hook_result *hooks, size_t n);
/* Notice k's acknowledgement may go out now, backoff aside. */
bool engine_ack_sendable(const struct engine *e, const struct eviction *r,
			 const struct engine_rt *rt, size_t k);
void engine_drop_moot_acks(struct engine *e, struct eviction *r);
void engine_send_acks(struct engine *e);
void engine_send_heartbeats(struct engine *e);
/* Joins the OS's notice to the open eviction, or opens one, once the
 * platform had its rounds to name the reason. */
void engine_decide_shutdown(struct engine *e);
void engine_maybe_release(struct engine *e);
/* Work is in hand: a hook, a scan, an acknowledgement or a drain that a
 * stop or a shutdown must wait for. */
bool engine_in_hand(const struct engine *e);

#endif
