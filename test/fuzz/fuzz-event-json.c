/* fuzz-event-json.c - libFuzzer target for event_from_json, the reader of
 * events kept in the state file. An accepted event renders as JSON text
 * (what hooks read on stdin) that parses and reads back to an equal event,
 * whose rendering is the same text again. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/event.h"
#include "store/event-json.h"
#include "fuzz-util.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spot_event ev, back;
	cJSON *root, *o, *parsed, *o2;
	char *text, *text2;

	root = cJSON_ParseWithLength((const char *)data, size);
	if (!root)
		return 0;
	event_init(&ev);
	if (event_from_json(root, &ev) == 0) {
		fuzz_assert(event_id_valid(ev.id));
		o = event_to_json(&ev, UINT64_C(1700000000) * USEC_PER_SEC, true);
		fuzz_assert(o);
		text = cJSON_PrintUnformatted(o);
		fuzz_assert(text);
		parsed = cJSON_ParseWithLength(text, strlen(text));
		fuzz_assert(parsed);
		event_init(&back);
		fuzz_assert(event_from_json(parsed, &back) == 0 && event_equal(&ev, &back));
		o2 = event_to_json(&back, UINT64_C(1700000000) * USEC_PER_SEC, true);
		text2 = o2 ? cJSON_PrintUnformatted(o2) : NULL;
		fuzz_assert(text2 && strcmp(text, text2) == 0);
		free(text2);
		cJSON_Delete(o2);
		event_done(&back);
		cJSON_Delete(parsed);
		free(text);
		cJSON_Delete(o);
	}
	event_done(&ev);
	cJSON_Delete(root);
	return 0;
}
