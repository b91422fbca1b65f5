/* event-json.h - the event document in JSON (store/json.h's conventions). */
#ifndef SPOT_STORE_EVENT_JSON_H
#define SPOT_STORE_EVENT_JSON_H

#include <stdbool.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "engine/event.h"
#include "store/json.h"

/* The event document: the JSON object hooks read on stdin, /v1/status shows
 * as "event" and state.json keeps (json.h's conventions; spot-agent(8) and
 * spot-agent-hooks(7) list the fields): id, type, status, source,
 * not_before, not_before_usec, resources, description, duration_s,
 * provider, deadline, deadline_usec (null for 0), drill. Text is UTF-8,
 * absent values are null. Caller owns the result (cJSON_Delete); never
 * NULL (out of memory aborts). */
cJSON *event_to_json(const struct spot_event *ev, uint64_t deadline_wall_usec, bool drill);

/* Reads back exactly what event_to_json writes, every field with its type
 * and nothing else; err (may be NULL) then names the first defect. The
 * deadline and drill are not part of struct spot_event: they go to
 * *ret_deadline_wall_usec and *ret_drill (each may be NULL). *ret is
 * overwritten only on success and must not hold resources then
 * (initialised or done). Returns 0 or -EINVAL. */
int event_doc_from_json(const cJSON *o, struct spot_event *ret, uint64_t *ret_deadline_wall_usec,
			bool *ret_drill, struct json_err *err);
/* The same without the deadline, drill and the defect. */
int event_from_json(const cJSON *o, struct spot_event *ret);

#endif
