/* metrics.h - counters and histograms, rendered as Prometheus text. */
#ifndef SPOT_METRICS_H
#define SPOT_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "clouds/imds.h"
#include "engine/event.h"
#include "engine/record.h"
#include "http/status.h"

#define METRICS_HOOKS_MAX 128   /* distinct hook names tracked; further ones share "_other" */


struct metrics;

struct metrics *metrics_new(void);
void metrics_free(struct metrics *m);

void metrics_imds_request(struct metrics *m, enum imds_result r, uint64_t latency_usec);
/* An eviction for this VM was detected, notice_usec before its NotBefore
 * (0 when unknown or already past). */
void metrics_event_detected(struct metrics *m, enum event_type t, uint64_t notice_usec);
/* An event for this VM whose type is not in 'events' was first seen. */
void metrics_event_ignored(struct metrics *m, enum event_type t);
/* Time from detection to the first hook's exec. */
void metrics_first_hook(struct metrics *m, uint64_t usec);
void metrics_hook_done(struct metrics *m, const char *hook, enum hook_outcome o, uint64_t duration_usec);
/* The chain ended after its deadline. */
void metrics_chain_overran(struct metrics *m);
void metrics_approval(struct metrics *m, bool ok);

/* The Prometheus text exposition (format 0.0.4) of everything above, plus
 * gauges derived from the state (eviction pending, poll health) and
 * build info. Caller frees the returned buffer; *ret_len (may be NULL) gets
 * its length. m must not be NULL; s may be. Families come in a fixed order,
 * hooks in byte order of their names, every result label even at 0.
 * spot_agent_imds_up is the plain "last poll did not fail" signal
 * (poll.consecutive_failures == 0); the windowed /healthz verdict is
 * http_healthy's, and alert rules add their own "for:" to this gauge.
 * Skipped hooks are counted in spot_agent_hook_runs_total but not observed
 * in spot_agent_hook_duration_seconds. */
char *metrics_render(const struct metrics *m, const struct agent_state *s,
		     const char *version, size_t *ret_len);

#endif
