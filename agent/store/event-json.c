/* event-json.c - the event document: the JSON object hooks read on stdin,
 * /v1/status shows as "event" and state.json keeps, written and read back
 * exactly (json.h's conventions). It knows the event's fields, nothing of
 * records, files or the engine's decisions. */
#include "store/event-json.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const doc_keys[] = {
	"id", "type", "status", "source", "not_before", "not_before_usec", "resources",
	"description", "duration_s", "provider", "deadline", "deadline_usec", "drill",
};

cJSON *event_to_json(const struct spot_event *ev, uint64_t deadline_wall_usec, bool drill)
{
	cJSON *o = json_object_new(), *resources = json_array_new();

	for (size_t i = 0; i < ev->n_resources; i++)
		json_append(resources, json_text_new(ev->resources[i], EVENT_RESOURCE_MAX));
	json_add_text(o, "id", ev->id, EVENT_ID_MAX);
	json_add_text(o, "type", event_type_to_string(ev->type), 0);
	json_add_text(o, "status", event_status_to_string(ev->status), 0);
	json_add_text(o, "source", ev->source, EVENT_SOURCE_MAX);
	json_add_instant(o, "not_before", ev->not_before_usec);
	json_add(o, "resources", resources);
	json_add_text(o, "description", ev->description, EVENT_DESCRIPTION_MAX);
	json_add_int_or_null(o, "duration_s", ev->duration_sec, 0, EVENT_DURATION_MAX_SEC, -1);
	json_add_text(o, "provider", provider_to_string(ev->provider), 0);
	json_add_instant(o, "deadline", deadline_wall_usec);
	json_add_bool(o, "drill", drill);
	return o;
}

int event_doc_from_json(const cJSON *o, struct spot_event *ret, uint64_t *ret_deadline_wall_usec,
			bool *ret_drill, struct json_err *err)
{
	char type[16], status[16], provider[16];
	const cJSON *resources, *item;
	struct spot_event ev;
	uint64_t deadline = 0;
	bool drill = false;
	int r = -EINVAL;

	event_init(&ev);
	if (json_check_keys(err, o, doc_keys, ELEMENTSOF(doc_keys)) < 0 ||
	    json_get_text(err, o, "id", false, ev.id, sizeof(ev.id)) < 0 ||
	    json_get_text(err, o, "type", false, type, sizeof(type)) < 0 ||
	    json_get_text(err, o, "status", false, status, sizeof(status)) < 0 ||
	    json_get_text(err, o, "source", true, ev.source, sizeof(ev.source)) < 0 ||
	    json_get_instant(err, o, "not_before", &ev.not_before_usec) < 0 ||
	    json_get_text(err, o, "description", true, ev.description, sizeof(ev.description)) < 0 ||
	    json_get_int_or_null(err, o, "duration_s", 0, EVENT_DURATION_MAX_SEC, -1, &ev.duration_sec) < 0 ||
	    json_get_text(err, o, "provider", false, provider, sizeof(provider)) < 0 ||
	    json_get_instant(err, o, "deadline", &deadline) < 0 ||
	    json_get_bool(err, o, "drill", &drill) < 0)
		goto out;
	if (!event_id_valid(ev.id)) {
		(void)json_fail(err, "'id' has control characters");
		goto out;
	}
	ev.type = event_type_from_string(type);
	ev.status = event_status_from_string(status);
	if (ev.type == EVENT_TYPE_INVALID || ev.status == EVENT_STATUS_INVALID ||
	    provider_from_string(provider, &ev.provider) < 0 || ev.provider == PROVIDER_AUTO) {
		(void)json_fail(err, "unknown type, status or provider '%s', '%s', '%s'", type, status, provider);
		goto out;
	}

	resources = cJSON_GetObjectItemCaseSensitive(o, "resources");
	if (!cJSON_IsArray(resources) || cJSON_GetArraySize(resources) > EVENT_RESOURCES_MAX) {
		(void)json_fail(err, "'resources' is not an array of at most %d names", EVENT_RESOURCES_MAX);
		goto out;
	}
	cJSON_ArrayForEach(item, resources) {
		if (!cJSON_IsString(item) || !item->valuestring || !utf8_valid(item->valuestring) ||
		    event_add_resource(&ev, item->valuestring) < 0) {
			(void)json_fail(err, "'resources' holds something other than a name");
			goto out;
		}
	}

	*ret = ev;
	event_init(&ev);
	if (ret_deadline_wall_usec)
		*ret_deadline_wall_usec = deadline;
	if (ret_drill)
		*ret_drill = drill;
	r = 0;
out:
	event_done(&ev);
	return r;
}

int event_from_json(const cJSON *o, struct spot_event *ret)
{
	return event_doc_from_json(o, ret, NULL, NULL, NULL);
}
