/* fuzz-event-json.c - libFuzzer target for event_from_json, the reader of
 * events kept in the state file. An accepted event must write back to JSON
 * that reads to an equal event. */
#include <stdint.h>
#include <stdlib.h>

#include "event.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spot_event ev, back;
	cJSON *root, *o;

	root = cJSON_ParseWithLength((const char *)data, size);
	if (!root)
		return 0;
	event_init(&ev);
	if (event_from_json(root, &ev) == 0) {
		o = event_to_json(&ev, 0, false);
		event_init(&back);
		if (!o || event_from_json(o, &back) < 0 || !event_equal(&ev, &back))
			abort();
		event_done(&back);
		cJSON_Delete(o);
	}
	event_done(&ev);
	cJSON_Delete(root);
	return 0;
}
