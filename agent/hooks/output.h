/* output.h - a hook's output cut into log lines (output.c). */
#ifndef SPOT_HOOKS_OUTPUT_H
#define SPOT_HOOKS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"

/* One of a hook's two output streams, as far as it has been read. */
struct hook_output_stream {
	int priority;                    /* of its lines: LOG_INFO stdout, LOG_WARNING stderr */
	bool names_fd;                   /* stderr of a script: "/dev/fd/3" names the hook */
	char line[HOOK_LINE_MAX + 1];    /* the line being assembled */
	size_t line_len;
};

/* One hook's output. res, event_id and path are borrowed for as long as
 * it is fed. */
struct hook_output {
	struct hook_result *res;         /* gets the lines and output_bytes */
	const char *event_id;            /* tags the log lines */
	const char *path;                /* the hook's path, for "/dev/fd/3" */
	struct hook_output_stream out, err;
	uint64_t logged_bytes;           /* of HOOK_LOG_BYTES_MAX, both streams */
	bool drop_noted;                 /* "further output is not logged" said */
};

/* Sets up o for a hook at path: stdout at info, stderr at warning; for a
 * script (executed as /dev/fd/3, which its interpreter and so its error
 * messages use for its name), stderr's "/dev/fd/3" becomes path. */
void hook_output_init(struct hook_output *o, struct hook_result *res, const char *event_id,
		      const char *path, bool script);

/* Takes n bytes the hook wrote to stream s (&o->out or &o->err): every
 * complete line (or HOOK_LINE_MAX bytes of one) is logged at the stream's
 * priority and added to the result's ring. */
void hook_output_feed(struct hook_output *o, struct hook_output_stream *s, const char *buf, size_t n);
/* The stream has ended: a last line without its newline is taken. */
void hook_output_flush(struct hook_output *o, struct hook_output_stream *s);

#endif
