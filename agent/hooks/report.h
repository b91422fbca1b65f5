/* report.h - what a hook reports about its own work: the key=value lines
 * it may write to the file named by SPOT_REPORT (lost work, checkpoint
 * size, jobs requeued, an Auto Scaling abandon), parsed strictly, and that
 * file's life around one hook run. */
#ifndef SPOT_HOOK_REPORT_H
#define SPOT_HOOK_REPORT_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/record.h"

#define HOOK_REPORT_FILE_MAX  4096   /* a larger report is refused whole */
#define HOOK_REPORT_LINE_MAX  128    /* bytes of one line without its newline */
#define HOOK_REPORT_WHY_MAX   256    /* why a report was refused, in words */
/* The directory of the report files below the state directory: created
 * 0700, each file 0600, removed once read. */
#define HOOK_REPORT_DIR_NAME  "reports"

/* Parses a report's text of len bytes (need not be NUL-terminated): lines
 * "key=value" with a documented key and no spaces, each key at most once,
 * blank lines and lines starting with '#' ignored, the last line's newline
 * optional. lost_work_seconds, checkpoint_bytes and jobs_requeued take a
 * decimal integer from 0 to 2^53 - 1 (JSON_INT_MAX), abandon takes 0 or 1.
 * Anything else -- an unknown key, a bad value, a key given twice, a line
 * longer than HOOK_REPORT_LINE_MAX, a NUL byte, more than
 * HOOK_REPORT_FILE_MAX bytes -- refuses the whole report: -EBADMSG (or
 * -EFBIG for the size) with why naming the line and the key
 * ("line 2: 'lost_work_seconds': '12s' is not a whole number from 0 to
 * 9007199254740991"). *ret is written only on success. */
int hook_report_parse(const char *text, size_t len, struct hook_report *ret, char *why,
		      size_t why_size);

/* Adds what add reports to sum: the counts add up (saturating at
 * JSON_INT_MAX), abandon holds when any hook asked for it. */
void hook_report_add(struct hook_report *sum, const struct hook_report *add);

/* The report file of one hook run. */
struct hook_report_file {
	char path[PATH_MAX];   /* "" when there is none */
};

/* Creates an empty report file for the hook name below state_dir
 * (<state_dir>/reports/<name>, the name's bytes outside [A-Za-z0-9._-]
 * replaced by '_'): the directory is created 0700 when missing and must
 * be a directory of the agent's user that nobody else may write; the file
 * is created afresh (a file left there is removed first), 0600,
 * O_NOFOLLOW. Returns 0 or -errno, with f->path "" on failure. */
int hook_report_file_create(struct hook_report_file *f, const char *state_dir, const char *name);

/* Reads and parses the report once the hook has ended, and removes the
 * file. An empty or missing file is an empty report (0). The file is
 * opened O_NOFOLLOW, must be a regular file of the agent's user and is
 * read up to HOOK_REPORT_FILE_MAX + 1 bytes. Returns 0, or -errno with the
 * reason in why (a refused report: hook_report_parse's). */
int hook_report_file_read(struct hook_report_file *f, struct hook_report *ret, char *why,
			  size_t why_size);

/* Removes the file if it is still there. */
void hook_report_file_done(struct hook_report_file *f);

/* The runner's two hook points, which log what went wrong with the hook's
 * name and go on: begin creates the file (none when state_dir is NULL or
 * it cannot be created: the hook then gets no SPOT_REPORT); end reads it
 * into *ret, an empty report when it was refused. */
void hook_report_begin(struct hook_report_file *f, const char *state_dir, const char *event_id,
		       const char *name);
void hook_report_end(struct hook_report_file *f, const char *event_id, const char *name,
		     struct hook_report *ret);

#endif
