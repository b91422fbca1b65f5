/* output.h - a hook's output cut into log lines (output.c). */
#ifndef SPOT_HOOKS_OUTPUT_H
#define SPOT_HOOKS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hooks/hooks.h"

/* One hook's output, as far as it has been read. Zero-initialised, then
 * res and event_id set; both are borrowed for as long as it is fed. */
struct hook_output {
	struct hook_result *res;         /* gets the lines and output_bytes */
	const char *event_id;            /* tags the log lines */
	char line[HOOK_LINE_MAX + 1];    /* the line being assembled */
	size_t line_len;
	uint64_t logged_bytes;           /* of HOOK_LOG_BYTES_MAX */
	bool drop_noted;                 /* "further output is not logged" said */
};

/* Takes n bytes the hook wrote: every complete line (or HOOK_LINE_MAX
 * bytes of one) is logged and added to the result's ring. */
void hook_output_feed(struct hook_output *o, const char *buf, size_t n);
/* The hook's output has ended: a last line without its newline is taken. */
void hook_output_flush(struct hook_output *o);

#endif
