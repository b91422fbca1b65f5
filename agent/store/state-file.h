/* state-file.h - the evictions on disk: <state-dir>/state.json, written so
 * that a crash of the agent never loses a save and a crash of the machine
 * never loses both the new and the previous copy. */
#ifndef SPOT_STORE_STATE_FILE_H
#define SPOT_STORE_STATE_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/record.h"

#define STATE_FILE_NAME    "state.json"
/* The file the next save is written to, then exchanged with state.json:
 * in between it holds the previous save, which a load falls back to when
 * state.json is torn (the machine died before the new one reached the
 * disk). */
#define STATE_SPARE_NAME   ".state.json.spare"
#define STATE_FILE_MAX     (1024 * 1024)  /* a larger file is treated as corrupt */
#define STATE_FILE_VERSION 3
#define STATE_REASON_MAX   256

/* What the file holds besides the records: a JSON value the agent keeps
 * for others (the evidence not yet delivered), or NULL. Borrowed. */
struct state_doc {
	const char *dir;             /* NULL: never persist (drill) */
	const struct records *records;
	const cJSON *extra;          /* written as "extra" (null when NULL) */
};

/* What a load found besides the records, for the caller's log. */
struct state_load_report {
	int error;               /* -errno why state.json was refused, 0 if it was fine */
	char reason[STATE_REASON_MAX]; /* its defect in words ("not JSON", "torn:
					* checksum mismatch", ...), "" when error
					* says it all */
	char *moved;             /* where it was moved (owned), NULL when it
				  * was fine or could not be moved */
	bool from_spare;         /* state.json was refused, the spare held a
				  * good copy and was loaded */
	unsigned stale_removed;  /* .state.json.XXXXXX temp files of crashed saves removed */
	unsigned dropped;        /* records that did not read back, left out */
	char dropped_reason[STATE_REASON_MAX]; /* the first of them */
	char *kept;              /* a copy of the file as it was (owned), NULL
				  * when nothing was dropped or no copy was written */
	cJSON *extra;            /* the file's "extra" value (owned), NULL */
};
void state_load_report_done(struct state_load_report *rep);

/* Loads <dir>/state.json into recs. A missing file is an empty state. A
 * file that is unreadable, too large, torn (its checksum does not match),
 * not JSON, not a state file or of another format version is refused:
 * the spare (the save before the last) is loaded instead when it is
 * good, with a warning naming both files, else the file is renamed to state.json.corrupt-<unix seconds> and the
 * state starts empty. A record in it that does not read back is left out
 * alone. Keeps the newest RECORDS_MAX. rep is always filled. Returns 0, or
 * -errno only when the directory itself is unusable. */
int state_load(const char *dir, struct records *recs, struct state_load_report *rep);

/* The records of a state file's text, checked as state_load checks a file
 * (-EFBIG beyond STATE_FILE_MAX, -EBADMSG for anything the writer would not
 * write), replacing those of recs; on error they are left alone. text need
 * not be NUL-terminated. The fuzz target calls it directly. */
int state_parse_text(struct records *recs, const char *text, size_t len);
/* The text a save writes for doc (caller frees), as a save would shed
 * output lines to stay within STATE_FILE_MAX; NULL when even the bare
 * records do not fit. */
char *state_render(const struct state_doc *doc);

/* The writer's side: a save whose fsyncs are still owed, and the save
 * counter. */
struct state_sync {
	int fd;        /* the new state.json, -1 when nothing is owed */
	int dfd;       /* its directory */
	uint64_t seq;  /* of the last save, 0 before the first */
};
#define STATE_SYNC_INIT { -1, -1, 0 }

/* Writes doc over the spare and exchanges it with state.json: when it
 * returns, any process that reads the directory (a restarted agent)
 * finds the new file. The fsyncs that carry it through a crash of the
 * machine are owed in *sync until state_sync_finish; what an earlier save
 * still owed is paid first, before its copy turns into the spare that is
 * overwritten, so one of the two files is always whole on disk. Creates
 * dir (0700) when missing. Returns 0 or -errno. No-op without a dir. */
int state_save_begin(const struct state_doc *doc, struct state_sync *sync);
/* Pays what *sync owes (no-op when nothing): 0 or -errno. */
int state_sync_finish(struct state_sync *sync);
/* Forgets it without the fsyncs. */
void state_sync_drop(struct state_sync *sync);
/* state_save_begin and, when durable, state_sync_finish. */
int state_save(const struct state_doc *doc, bool durable);

#endif
