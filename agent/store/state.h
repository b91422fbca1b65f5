/* state.h - the agent's one state struct, its JSON form and persistence. */
#ifndef SPOT_STATE_H
#define SPOT_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/event.h"
#include "hooks/hooks.h"
#include "store/ignored.h"

#define STATE_FILE_NAME    "state.json"
/* The file the next save is written to, then exchanged with state.json:
 * it holds the previous contents in between and is never read. */
#define STATE_SPARE_NAME   ".state.json.spare"
#define STATE_FILE_MAX     (1024 * 1024)  /* a larger file is treated as corrupt */
#define STATE_RECORDS_MAX  16             /* handled events remembered, oldest dropped */
#define STATE_REASON_MAX   256
#define STATE_RELOAD_ERROR_MAX 512        /* a refused reload's first error line */
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
	/* The event's status, NotBefore and deadline as the latest hook started
	 * read them on stdin (event_record_stdin), or as the event was first
	 * seen before that (state_add_record fills them in when !set). The rest
	 * of the event does not change once seen. Persisted as "event". */
	struct {
		bool set;
		enum event_status status;
		uint64_t not_before_usec;
		uint64_t deadline_wall_usec;
	} seen;

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
	/* The first error line of the last reload that was refused (with the
	 * count of the others), "" when the last reload, or the start, was
	 * fine. Not persisted. */
	char reload_error[STATE_RELOAD_ERROR_MAX];
	/* The last few events for this VM not acted on: their type is not in
	 * 'events'. Not persisted. */
	struct ignored_events ignored;
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

/* The event document for a hook's stdin (event_to_json of the record's
 * event and deadline), remembered as what hooks last read (r->seen).
 * Caller frees. */
char *event_record_stdin(struct event_record *r, bool drill);

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
 * that is unreadable, too large, not JSON, not a state file or of another
 * format version is renamed to state.json.corrupt-<unix seconds> and an
 * empty state is used: *ret_moved (may be NULL) is set to the new path
 * (caller frees) so the caller can warn, else to NULL. A record in it that
 * does not read back is left out alone (state_load_report tells). Replaces
 * the records held; keeps the newest STATE_RECORDS_MAX. A hook saved as
 * running (the agent died during it) is loaded as pending, so it runs
 * again. Leftover temp files of crashed saves are removed. Returns 0, or
 * -errno only when the directory itself is unusable. */
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
	char reason[STATE_REASON_MAX]; /* the refused file's defect in words
					* ("not JSON", "format version 1 ..."),
					* "" when error says it all */
	char *moved;             /* where it was moved (owned), NULL when it
				  * was fine or could not be moved */
	unsigned stale_removed;  /* .state.json.XXXXXX temp files of crashed saves removed */
	unsigned dropped;        /* records of the file that did not read back, left out */
	char dropped_reason[STATE_REASON_MAX]; /* the first of them, e.g. "record 2
						* ('<id>'): hooks[0]: 'started_usec' ..." */
	char *kept;              /* a copy of that file as it was, for a human
				  * (owned), NULL when nothing was dropped or
				  * the copy could not be written */
};
/* state_load, reporting everything: rep is always filled (rep->moved and
 * rep->kept to be freed). Stale temp files are removed first. */
int state_load_report(struct agent_state *s, struct state_load_report *rep);

/* Writes the records atomically: the spare file, exchange with state.json,
 * fsync of the file and of the directory; creates state_dir (0700) when
 * missing. Returns 0 or -errno. No-op when state_dir is NULL. Should the
 * file outgrow STATE_FILE_MAX, hook output lines are left out (first of
 * finished records, then of all), and if that is not enough, -EFBIG and the
 * previous file stays. */
int state_save(const struct agent_state *s);
/* The same; !durable skips both fsyncs: the file then survives a crash of
 * the agent (the kernel has it) but not of the machine. */
int state_save_opt(const struct agent_state *s, bool durable);

/* A save whose fsyncs are still owed. */
struct state_sync {
	int fd;    /* the new state.json, -1 when nothing is owed */
	int dfd;   /* its directory */
};
#define STATE_SYNC_INIT { -1, -1 }

/* state_save in two halves. The first writes the file and puts it in
 * place: when it returns, any process that reads the state directory, a
 * restarted agent included, finds the new file. The fsyncs that carry it
 * through a crash of the machine are owed in *sync until
 * state_sync_finish; a later successful state_save_begin replaces them,
 * since its own cover the newer file. */
int state_save_begin(const struct agent_state *s, struct state_sync *sync);
/* Pays what *sync owes (no-op when nothing): 0 or -errno. */
int state_sync_finish(struct state_sync *sync);
/* Forgets it without the fsyncs. */
void state_sync_drop(struct state_sync *sync);

/* /v1/status (spot-agent(8) lists every field, doc/spot-agent.schema.json
 * is its schema): version, provider, vm_name, uptime_s, state,
 * rebalance_recommended, poll{...}, the fields of the current or last
 * record (event, event_status, ..., hooks, approval; all null when there is
 * none), history[]. Caller owns it. */
cJSON *state_to_json(const struct agent_state *s, const char *version);

/* One record in its state.json form. Caller owns it. */
cJSON *event_record_to_json(const struct event_record *r);
/* Reads back exactly what event_record_to_json writes. *ret is written
 * only on success. Returns 0 or -EBADMSG, with the defect in err (may be
 * NULL). */
int event_record_from_json_err(const cJSON *o, struct event_record *ret, struct json_err *err);
int event_record_from_json(const cJSON *o, struct event_record *ret);

const char *agent_phase_to_string(enum agent_phase p);

#endif
