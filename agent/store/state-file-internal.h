/* state-file-internal.h - between state-file.c (the files: the load, the
 * save, the spare) and state-text.c (a file's text: rendered, parsed
 * back). Not for other modules: they see state-file.h. */
#ifndef SPOT_STORE_STATE_FILE_INTERNAL_H
#define SPOT_STORE_STATE_FILE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/record.h"
#include "store/state-file.h"

/* The text of a save with counter seq (caller frees), shedding output
 * lines to stay within STATE_FILE_MAX; NULL when even the bare records do
 * not fit. */
char *render_seq(const struct state_doc *doc, uint64_t seq);
/* Parses a whole file into evictions (oldest first, at most RECORDS_MAX:
 * the newest are kept). A record that does not read back is left out and
 * counted in rep. */
int parse_file(const char *text, size_t len, struct eviction **ret_items, size_t *ret_n,
	       uint64_t *ret_seq, struct state_load_report *rep);

#endif
