/* state.h - the agent's one state struct, its JSON form and persistence. */
#ifndef SPOT_STATE_H
#define SPOT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "hooks.h"

#define STATE_FILE_NAME    "state.json"
#define STATE_FILE_MAX     (1024 * 1024)  /* a larger file is treated as corrupt */
#define STATE_RECORDS_MAX  16             /* handled events remembered, oldest dropped */
#define STATE_REASON_MAX   256
/* Hooks one record may hold: the plan's HOOKS_MAX plus finished hooks that
 * have left the plan since (their outcome stays on record). */
#define STATE_RECORD_HOOKS_MAX (2 * HOOKS_MAX)

enum agent_phase {
	PHASE_IDLE,      /* no eviction for this VM */
	PHASE_PENDING,   /* eviction detected, first hook not yet started */
	PHASE_RUNNING,   /* hooks running */
	PHASE_DONE,      /* chain ended (approved or not) */
	_PHASE_MAX,
};

/* One handled event: what was seen and what every hook did. Persisted. */
struct event_record {
	struct spot_event ev;
	uint64_t detected_wall_usec;
	uint64_t deadline_wall_usec;
	bool emergency;                /* deadline is the emergency budget */
	bool drill;
	struct hook_result *hooks;     /* owned, run order */
	size_t n_hooks;
	bool chain_done;               /* every hook final; approval may follow */
	bool approved;                 /* approval answered 200 */
	uint64_t approved_wall_usec;
	unsigned approve_attempts;
	bool gone;                     /* event has left the IMDS document */
	uint64_t gone_wall_usec;       /* when it left, 0 while listed */
	bool no_approve;               /* no approval wanted (--no-approve); set by the caller */
	/* The provider's stable key when the agent made the id up
	 * (spot_event.id_from_first_seen): later sightings match on it. ""
	 * when the id is the provider's own. */
	char key[EVENT_ID_MAX];

	/* The record's rendered state-file form and the signature of what it
	 * was rendered from (owned; state.c's, never part of the value). */
	char *file_text;
	uint64_t file_sig;

	/* The engine's view since this process started; never persisted. */
	struct {
		bool listed;               /* named by a round since start */
		bool matched;              /* named by the round being handled */
		bool gone_seen;            /* gone, as a round of this process saw */
		bool approving;            /* approval in flight */
		unsigned approve_failures; /* in a row, for the backoff */
		uint64_t approve_next_wall_usec; /* no approval before then */
		uint64_t retry_wall_usec;  /* hook start/scan retry due, 0 none */
		bool planned;              /* hook plan merged for this chain */
	} rt;
};

/* Poll statistics; not persisted. */
struct poll_stats {
	uint64_t ok;
	uint64_t failed;
	uint64_t consecutive_failures;
	uint64_t last_ok_wall_usec;
	uint64_t last_ok_mono_usec;
	uint64_t first_failure_mono_usec;   /* start of the current failure streak, 0 if none */
	uint64_t last_latency_usec;
	int64_t incarnation;                /* -1 until known */
	char last_error[STATE_REASON_MAX];  /* "" when the last poll succeeded */
};

struct agent_state {
	char *state_dir;                   /* owned; NULL = never persist (drill) */
	enum agent_phase phase;
	uint64_t started_mono_usec;
	char *provider;                    /* owned, "azure" */
	char *vm_name;                     /* owned, NULL until known */
	struct poll_stats poll;
	bool rebalance_recommended;        /* the provider recommends moving off (AWS) */
	/* Handled events, oldest first; the current one is the newest that is
	 * not done (see state_current). Owned. */
	struct event_record *records;
	size_t n_records;
};

void state_init(struct agent_state *s, const char *state_dir);
void state_done(struct agent_state *s);

void event_record_init(struct event_record *r);
void event_record_done(struct event_record *r);

/* True when the platform should still be told the event may proceed: an
 * Azure event (other providers have no approval call), not a drill, not
 * gone, not approved yet, approval wanted (!no_approve), still Scheduled and
 * its NotBefore (if any) not yet passed. Reads the wall clock. */
bool event_record_awaits_approval(const struct event_record *r);
/* The same at a given time, without reading the clock. */
bool event_record_awaits_approval_at(const struct event_record *r, uint64_t now_wall_usec);

/* A finished record needs nothing more: its chain is done and it does not
 * await approval. Only finished records are ever dropped. */
bool event_record_is_finished(const struct event_record *r);

/* Finds a record by event id (ASCII case-insensitive). Borrowed pointer,
 * valid until the next state_add_record/state_load. */
struct event_record *state_find(struct agent_state *s, const char *event_id);

/* Appends a record (taking ownership of its contents; *r is zeroed), dropping
 * the oldest finished records beyond STATE_RECORDS_MAX. Unfinished records
 * (see event_record_is_finished) and the one just added are never dropped,
 * so the cap gives way while more events than that are in progress. Returns
 * the stored record (borrowed, as above). */
struct event_record *state_add_record(struct agent_state *s, struct event_record *r);
/* The same, deciding what is finished at now_wall_usec (no clock read). */
struct event_record *state_add_record_at(struct agent_state *s, struct event_record *r,
					 uint64_t now_wall_usec);

/* The record being handled (not chain_done, or chain_done but awaiting
 * approval), else the newest record, else NULL. Borrowed. */
struct event_record *state_current(struct agent_state *s);

/* Loads <state_dir>/state.json. A missing file is an empty state. A file
 * that is unreadable, too large or not what state_save writes is renamed to
 * state.json.corrupt-<unix seconds> and an empty state is used: *ret_moved
 * (may be NULL) is set to the new path (caller frees) so the caller can warn,
 * else to NULL. Replaces the records held; keeps the newest
 * STATE_RECORDS_MAX. A hook saved as running (the agent died during it) is
 * loaded as pending, so it runs again. Leftover temp files of crashed saves are removed.
 * Returns 0, or -errno only when the directory itself is unusable. */
int state_load(struct agent_state *s, char **ret_moved);

/* The records of a state file's text, checked as state_load checks a file
 * (-EFBIG beyond STATE_FILE_MAX, -EBADMSG for anything state_save would not
 * write), replacing the records held; on error they are left alone. text
 * need not be NUL-terminated. state_load is this plus the file handling;
 * the fuzz target calls it directly. Returns 0 or -errno. */
int state_parse_text(struct agent_state *s, const char *text, size_t len);

/* What state_load_report found besides the records, for the caller's log. */
struct state_load_report {
	int error;               /* -errno why the file was refused, 0 if it was fine */
	char *moved;             /* where it was moved (owned), NULL when it
				  * was fine or could not be moved */
	unsigned stale_removed;  /* .state.json.XXXXXX temp files of crashed saves removed */
};
/* state_load, reporting everything: rep is always filled (rep->moved to be
 * freed). Stale temp files are removed first. */
int state_load_report(struct agent_state *s, struct state_load_report *rep);

/* Writes the records atomically: temp file, fsync, rename, fsync of the
 * directory; creates state_dir (0700) when missing. Returns 0 or -errno.
 * No-op when state_dir is NULL. Should the file outgrow STATE_FILE_MAX, hook
 * output lines are left out (first of finished records, then of all), and
 * if that is not enough, -EFBIG and the previous file stays. */
int state_save(const struct agent_state *s);
/* The same; !durable skips both fsyncs: the file then survives a crash of
 * the agent (the kernel has it) but not of the machine. */
int state_save_opt(const struct agent_state *s, bool durable);

/* /v1/status: version, provider, vm_name, uptime_s, state, poll{...},
 * event (the current/last record or null), history[]. Caller owns it. */
cJSON *state_to_json(const struct agent_state *s, const char *version);

/* One record as JSON (also the persisted form). Caller owns it. */
cJSON *event_record_to_json(const struct event_record *r);
int event_record_from_json(const cJSON *o, struct event_record *ret);

const char *agent_phase_to_string(enum agent_phase p);

#endif
