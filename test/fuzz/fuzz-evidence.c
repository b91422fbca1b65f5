/* fuzz-evidence.c - libFuzzer target for what reaches the evidence from
 * outside: a hook's report file (hook_report_parse) and the remote-write
 * queue read back from a state file (evidence_queue_from_json). A report
 * is accepted or refused with a reason, its values within range; a queue
 * read back stays within its bounds, encodes for the wire, and renders as
 * JSON that reads back to the same text. The first byte picks the parser. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "evidence/queue.h"
#include "evidence/remote-write.h"
#include "hooks/report.h"
#include "fuzz-util.h"

static void report(const uint8_t *data, size_t size)
{
	struct hook_report r = { .lost_work_seconds = 7 };
	char why[HOOK_REPORT_WHY_MAX] = "";
	int k = hook_report_parse((const char *)data, size, &r, why, sizeof(why));

	fuzz_assert(k == 0 || k == -EBADMSG || k == -EFBIG);
	fuzz_assert(k == 0 || (why[0] && r.lost_work_seconds == 7));
	fuzz_assert(k != 0 || size <= HOOK_REPORT_FILE_MAX);
	fuzz_assert(k != 0 || ((!r.has_lost_work || r.lost_work_seconds <= (uint64_t)JSON_INT_MAX) &&
			       (!r.has_checkpoint_bytes || r.checkpoint_bytes <= (uint64_t)JSON_INT_MAX) &&
			       (!r.has_jobs_requeued || r.jobs_requeued <= (uint64_t)JSON_INT_MAX)));
}

static void queue(const uint8_t *data, size_t size)
{
	struct evidence_queue q = { 0 }, back = { 0 };
	struct json_err err = { "" };
	cJSON *o = cJSON_ParseWithLengthOpts((const char *)data, size, NULL, false), *o2, *o3;
	char *t1, *t2;

	if (!o)
		return;
	if (evidence_queue_from_json(&q, o, &err) < 0) {
		fuzz_assert(err.why[0] && q.n == 0);
		goto out;
	}
	fuzz_assert(q.n <= EVIDENCE_QUEUE_MAX && q.n_series <= EVIDENCE_QUEUE_SERIES_MAX);
	for (size_t i = 0; i < q.n; i++) {
		void *body = NULL;
		size_t len = 0;

		fuzz_assert(q.batches[i].n_series > 0);
		fuzz_assert(evidence_rw_encode(&q.batches[i], &body, &len) == 0 && len > 0);
		free(body);
	}
	o2 = evidence_queue_to_json(&q);
	t1 = cJSON_PrintUnformatted(o2);
	fuzz_assert(t1);
	o3 = cJSON_Parse(t1);
	fuzz_assert(o3 && evidence_queue_from_json(&back, o3, &err) == 0);
	cJSON_Delete(o2);
	o2 = evidence_queue_to_json(&back);
	t2 = cJSON_PrintUnformatted(o2);
	fuzz_assert(t2 && strcmp(t1, t2) == 0);
	cJSON_free(t1);
	cJSON_free(t2);
	cJSON_Delete(o2);
	cJSON_Delete(o3);
	evidence_queue_done(&back);
out:
	evidence_queue_done(&q);
	cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size == 0 || size > 2 * HOOK_REPORT_FILE_MAX)
		return 0;
	if (data[0] & 1)
		report(data + 1, size - 1);
	else
		queue(data + 1, size - 1);
	return 0;
}
