/* record.h - what the agent keeps of an eviction: the notices that make
 * it up, what every hook did, and where it stands in its lifecycle. This
 * is the persisted type: state.json holds exactly these fields
 * (store/record-json.c, store/hook-json.c), nothing of one process's run (the engine keeps
 * that in its own table) and no cache.
 *
 * One eviction per machine: from its first notice until it is over, any
 * further notice for this machine (another source, the same notice
 * flapping) joins it as another notice. Its hooks run once; each notice
 * keeps its own acknowledgement. */
#ifndef SPOT_ENGINE_RECORD_H
#define SPOT_ENGINE_RECORD_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/base.h"
#include "engine/event.h"

#define HOOKS_MAX              64      /* further runnable files are skipped ("too many hooks") */
#define HOOK_NAME_MAX          128     /* bytes incl. NUL; longer names are skipped */
#define HOOK_REASON_MAX        64      /* a hook result's skip_reason ("deadline", ...) */
#define HOOK_DETAIL_MAX        256     /* a hook result's error in words */
#define HOOK_OUTPUT_LINES      10      /* last lines kept per hook for /v1/status */
#define HOOK_LINE_MAX          1024    /* longer lines are cut into pieces */
#define HOOK_EXIT_SKIP_REST    77
/* Hooks one chain may hold: the plan's HOOKS_MAX plus finished hooks that
 * have left the plan since (their outcome stays on record). */
#define RECORD_HOOKS_MAX       (2 * HOOKS_MAX)
/* Notices one eviction holds; a further one is logged and not joined. */
#define RECORD_NOTICES_MAX     8
/* Evictions remembered, the oldest closed ones dropped first. */
#define RECORDS_MAX            16
#define RECORD_BOOT_MAX        33      /* a boot tag, hex, incl. NUL */

enum hook_outcome {
	HOOK_PENDING,    /* not yet run (or interrupted by a crash: runs again) */
	HOOK_RUNNING,
	HOOK_OK,
	HOOK_FAILED,     /* non-zero exit, killed by a signal, or could not start */
	HOOK_TIMEOUT,
	HOOK_SKIPPED,    /* see skip_reason */
	_HOOK_OUTCOME_MAX,
};

/* What a hook reported in its SPOT_REPORT file (spot-agent-hooks(7)), or
 * the sum over a chain's hooks. A value counts only when its has_ flag is
 * set: a key no hook wrote is unknown, not 0. */
enum report_key {
	REPORT_LOST_WORK_SECONDS,
	REPORT_CHECKPOINT_BYTES,
	REPORT_JOBS_REQUEUED,
	_REPORT_KEY_MAX,
};

struct hook_report {
	bool has_lost_work;
	uint64_t lost_work_seconds;   /* work since the last checkpoint, lost */
	bool has_checkpoint_bytes;
	uint64_t checkpoint_bytes;    /* written by the checkpoint */
	bool has_jobs_requeued;
	uint64_t jobs_requeued;       /* handed back to a queue */
	/* abandon=1: complete the Auto Scaling lifecycle action with ABANDON
	 * rather than CONTINUE. */
	bool abandon;
};

struct hook_result {
	char name[HOOK_NAME_MAX];
	char path[PATH_MAX];
	enum hook_outcome outcome;
	int exit_status;             /* exit code; -1 when killed by a signal or not started */
	int term_signal;             /* signal that ended it, else 0 */
	bool timed_out;
	uint64_t start_wall_usec;    /* 0 when never started */
	uint64_t duration_usec;
	uint64_t budget_usec;        /* the timeout it was given */
	char skip_reason[HOOK_REASON_MAX]; /* "deadline", "exit 77", "cancelled", ... */
	/* Why it did not get to run or could not be executed, in words, else
	 * "": "cannot execute: No such file or directory (interpreter
	 * '/usr/bin/python9')", "cannot start: Resource temporarily
	 * unavailable", "refused at its start: group-writable". */
	char error[HOOK_DETAIL_MAX];
	struct hook_report report;
	/* Ring of the last output lines (owned strings). */
	char *output[HOOK_OUTPUT_LINES];
	size_t output_next;          /* slot the next line goes to */
	size_t n_output;             /* lines held, <= HOOK_OUTPUT_LINES */
	uint64_t output_bytes;       /* bytes read from the hook in total */
};

const char *hook_outcome_to_string(enum hook_outcome o);
int hook_outcome_from_string(const char *s, enum hook_outcome *ret);
/* A final outcome is never run again for the same eviction. */
bool hook_outcome_is_final(enum hook_outcome o);
/* The hook was started (its process existed): a run, whatever its end. */
bool hook_result_ran(const struct hook_result *h);

const char *report_key_to_string(enum report_key k);
/* The has_ flag and the value of key k of rep. */
bool *hook_report_has(struct hook_report *rep, enum report_key k);
uint64_t *hook_report_value(struct hook_report *rep, enum report_key k);

void hook_result_init(struct hook_result *r, const char *name, const char *path);
void hook_result_done(struct hook_result *r);
/* Appends one line to the ring (copied, cut at HOOK_LINE_MAX). */
void hook_result_add_line(struct hook_result *r, const char *line);
/* Calls fn for the held lines, oldest first. */
void hook_result_foreach_line(const struct hook_result *r,
			      void (*fn)(const char *line, void *userdata), void *userdata);

/* The lifecycle of an eviction (engine.c's transition table moves it). */
enum lifecycle {
	LC_DETECTED,    /* seen, readiness down; no hook started yet */
	LC_RUNNING,     /* the chain is under way: its hooks one after another */
	LC_PAUSED,      /* every notice left its listing: no hook starts until
			 * one is back (the running one runs on) */
	LC_DRAINING,    /* the chain ended; the acknowledgements wait for the
			 * drain (readiness down long enough for the load
			 * balancers to see it) */
	LC_ACKING,      /* acknowledgements are due: sent, retried */
	LC_DONE,        /* nothing left to do; in hand until it is over */
	LC_CANCELLED,   /* every notice left and stayed away without starting:
			 * the hooks left are skipped, nothing is acknowledged;
			 * a notice back before its NotBefore resumes it */
	LC_RECOVERING,  /* the danger has passed (cancelled, ended, or the VM
			 * came back on a new boot): the recover hooks run */
	LC_CLOSED,      /* over; kept for history */
	_LC_MAX,
};

const char *lifecycle_to_string(enum lifecycle s);
int lifecycle_from_string(const char *s, enum lifecycle *ret);

/* When an acknowledgement goes out (per event type, Azure). */
enum ack_policy {
	ACK_AFTER_HOOKS,  /* after the chain and the drain (the default) */
	ACK_AT_ONCE,      /* on sight, while the hooks run */
	ACK_NEVER,
	_ACK_POLICY_MAX,
};

enum ack_state {
	ACK_NONE,         /* nothing to send: the platform waits for nobody,
			   * or acknowledgements are switched off */
	ACK_WAITING,      /* to be sent once the lifecycle allows */
	ACK_SENT,         /* confirmed */
	ACK_DROPPED,      /* not sent and never will be: the chain was
			   * cancelled or no hook ran, or the platform went
			   * ahead (Started, gone, past NotBefore) */
	_ACK_STATE_MAX,
};

const char *ack_policy_to_string(enum ack_policy p);
int ack_policy_from_string(const char *s, enum ack_policy *ret);
const char *ack_state_to_string(enum ack_state s);
int ack_state_from_string(const char *s, enum ack_state *ret);

/* Why the recover hooks run (SPOT_RECOVER_REASON). */
enum recover_reason {
	RECOVER_NONE,
	RECOVER_CANCELLED,  /* the notices were withdrawn */
	RECOVER_ENDED,      /* it happened and is over, and the VM lived */
	RECOVER_BOOT,       /* the VM came back on a new boot */
	_RECOVER_REASON_MAX,
};

const char *recover_reason_to_string(enum recover_reason r);
int recover_reason_from_string(const char *s, enum recover_reason *ret);

/* One notice of an eviction: one event as its provider lists it. */
struct notice {
	struct spot_event ev;        /* as last seen; the id as the provider gives
				      * it, or made up at first sight */
	/* The provider's stable key when the id was made up
	 * (spot_event.id_from_first_seen): later sightings match on it. ""
	 * when the id is the provider's own. */
	char key[EVENT_ID_MAX];
	uint64_t first_seen_wall_usec;
	uint64_t deadline_wall_usec; /* its own: NotBefore - margin, or the
				      * emergency budget from first sight */
	bool emergency;              /* deadline is the emergency budget */
	bool gone;                   /* its feed answered without it */
	uint64_t gone_wall_usec;     /* since when, 0 while listed */
	bool started;                /* seen Started, or past its NotBefore */
	enum ack_policy policy;
	enum ack_state ack;
	uint64_t acked_wall_usec;
	unsigned ack_attempts;
};

/* The event document hooks last read on stdin: the lead notice's status,
 * NotBefore and the deadline as they were then. */
struct record_seen {
	bool set;
	enum event_status status;
	uint64_t not_before_usec;
	uint64_t deadline_wall_usec;
};

struct eviction {
	/* SPOT_EVENT_ID: the first notice's id (made unique when an earlier
	 * eviction already used it). */
	char id[EVENT_ID_MAX];
	enum lifecycle state;
	uint64_t state_since_wall_usec;
	uint64_t detected_wall_usec;
	/* The chain's deadline: the earliest of its live notices'. */
	uint64_t deadline_wall_usec;
	bool emergency;
	bool drill;
	char boot[RECORD_BOOT_MAX];  /* the boot it was detected in, "" unknown */
	struct notice *notices;      /* owned; [0] is the lead notice */
	size_t n_notices;
	struct hook_result *hooks;   /* owned, run order */
	size_t n_hooks;
	/* The plan was taken with no hook to run: an empty chain is done, and
	 * may be acknowledged. */
	bool empty_plan;
	uint64_t chain_ended_wall_usec;  /* 0 while it runs */
	/* No acknowledgement before this (detection + drain, never past the
	 * deadline). */
	uint64_t drain_until_wall_usec;
	/* The last moment an agent recorded this eviction in its boot: with
	 * the acknowledgement's time, where the time to recover is counted
	 * from. */
	uint64_t last_alive_wall_usec;
	enum recover_reason recover_reason;
	uint64_t recover_started_wall_usec;
	uint64_t downtime_usec;      /* SPOT_DOWNTIME, set when recovery starts */
	struct hook_result *recover_hooks;  /* owned, run order */
	size_t n_recover_hooks;
	struct record_seen seen;
};

void eviction_init(struct eviction *r);
void eviction_done(struct eviction *r);
/* The lead notice (never NULL on a record the engine made or loaded). */
struct notice *eviction_lead(struct eviction *r);
const struct notice *eviction_lead_const(const struct eviction *r);
/* The notice of id (ASCII case-insensitive), or NULL. */
struct notice *eviction_notice(struct eviction *r, const char *id);
/* Some hook of the eviction's chain ran (was started). */
bool eviction_chain_ran(const struct eviction *r);
/* Remembers the lead notice's event, as a hook is about to read it. */
void eviction_note_seen(struct eviction *r);
/* The lead notice's event with the eviction's id, status, NotBefore and
 * deadline as the hooks last read them (or as first seen): the document
 * of a hook's stdin and of /v1/status "event". ret borrows r's resources
 * (do not event_done it). */
void eviction_seen_event(const struct eviction *r, struct spot_event *ret, uint64_t *ret_deadline);

void notice_init(struct notice *n);
void notice_done(struct notice *n);

/* The evictions the agent remembers, oldest first. */
struct records {
	struct eviction *items;      /* owned */
	size_t n;
};

void records_init(struct records *s);
void records_done(struct records *s);
/* By eviction id, newest first (ASCII case-insensitive). Borrowed until
 * the next records_add. */
struct eviction *records_find(struct records *s, const char *id);
/* Appends (taking ownership of *r's contents; *r is zeroed) and drops the
 * oldest closed evictions beyond RECORDS_MAX. Returns the stored one. */
struct eviction *records_add(struct records *s, struct eviction *r);
/* The eviction /v1/status shows: the newest that is not closed, else the
 * newest. Borrowed. */
const struct eviction *records_current(const struct records *s);
/* Replaces the held evictions with items[0..n) (taking ownership). */
void records_replace(struct records *s, struct eviction *items, size_t n);

#endif
