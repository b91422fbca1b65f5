/* drill.h - game day: the hook chain on a synthetic event. */
#ifndef SPOT_DRILL_H
#define SPOT_DRILL_H

#include <stdio.h>

#include "config/config.h"

/* Runs every hook against a synthetic event of type t whose NotBefore is
 * notice_sec from now, with SPOT_DRILL=1, no IMDS and no state; prints a
 * per-hook table to out. Returns 0 when every hook succeeded within the
 * budget and no hook file was skipped, 1 when one failed, a file meant as a
 * hook would not run or the chain overran, -errno on setup errors. */
int drill_run(const struct config *c, enum event_type t, uint64_t notice_sec, FILE *out);

#endif
