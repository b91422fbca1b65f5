/* queue.h - the batches of the record not yet accepted by the receiver,
 * oldest first, bounded, and their JSON form (store/json.h's
 * conventions), so that a state file can carry them across a restart and
 * a send that failed before the VM died is retried at the next start. */
#ifndef SPOT_EVIDENCE_QUEUE_H
#define SPOT_EVIDENCE_QUEUE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "evidence/samples.h"
#include "store/json.h"

/* Batches kept, and series in all of them: a state file carries at most
 * this much (some 200 KiB). The oldest batches give way. */
#define EVIDENCE_QUEUE_MAX         64
#define EVIDENCE_QUEUE_SERIES_MAX  512

struct evidence_queue {
	struct evidence_batch *batches;  /* owned, oldest first */
	size_t n;
	size_t n_series;                 /* in all batches */
};

void evidence_queue_done(struct evidence_queue *q);

/* Appends b (its contents are taken; b is left empty; an empty batch is
 * not queued), then drops the oldest batches while the queue is over
 * EVIDENCE_QUEUE_MAX batches or EVIDENCE_QUEUE_SERIES_MAX series; the
 * first batch stays when keep_first is set (a send of it is under way),
 * the new one always stays. Returns how many were dropped. */
size_t evidence_queue_push(struct evidence_queue *q, struct evidence_batch *b, bool keep_first);
/* Drops the first batch (no-op when empty). */
void evidence_queue_pop(struct evidence_queue *q);

/* {"batches": [{"series": [{"labels": {"__name__": "...", ...},
 *   "value": 1.5, "timestamp_ms": 1764590000000}, ...]}, ...]}
 * Caller owns it. */
cJSON *evidence_queue_to_json(const struct evidence_queue *q);
/* Reads back what evidence_queue_to_json writes, within the bounds above
 * (labels and values within samples.h's, values finite, timestamps from 0
 * to JSON_INT_MAX); on success the batches read are appended to q (the
 * push's bounds apply), on failure q is unchanged and err says why
 * (-EBADMSG). */
int evidence_queue_from_json(struct evidence_queue *q, const cJSON *o, struct json_err *err);

#endif
