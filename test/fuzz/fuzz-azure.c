/* fuzz-azure.c - libFuzzer target for the Azure document parsers. Besides
 * surviving any input, every event they return must satisfy the model's
 * invariants and survive the JSON form the state file keeps. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "azure.h"
#include "event.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_event(const struct spot_event *ev)
{
	struct spot_event back;
	uint64_t now = UINT64_C(1700000000) * USEC_PER_SEC, deadline;
	bool emergency;
	cJSON *o, *parsed;
	char *text;

	if (!event_id_valid(ev->id) || ev->type < 0 || ev->type >= _EVENT_TYPE_MAX ||
	    ev->status < 0 || ev->status >= _EVENT_STATUS_MAX || ev->provider != PROVIDER_AZURE ||
	    ev->n_resources > EVENT_RESOURCES_MAX || ev->duration_sec < -1 ||
	    strnlen(ev->source, sizeof(ev->source)) >= sizeof(ev->source) ||
	    strnlen(ev->description, sizeof(ev->description)) >= sizeof(ev->description))
		abort();
	for (size_t i = 0; i < ev->n_resources; i++) {
		size_t n = strnlen(ev->resources[i], EVENT_RESOURCE_MAX);

		if (n == 0 || n >= EVENT_RESOURCE_MAX || !event_names_resource(ev, ev->resources[i]))
			abort();
	}

	deadline = event_deadline(ev, now, 2 * USEC_PER_SEC, &emergency);
	/* Never past NotBefore when one lies ahead; the emergency budget
	 * otherwise. */
	if (!emergency && (deadline != ev->not_before_usec - 2 * USEC_PER_SEC || deadline <= now))
		abort();
	if (emergency && deadline != now + EVENT_EMERGENCY_BUDGET_SEC * USEC_PER_SEC &&
	    deadline != ev->not_before_usec)
		abort();

	/* Through text and back, as the state file does. */
	o = event_to_json(ev, deadline, false);
	if (!o)
		abort();
	text = cJSON_PrintUnformatted(o);
	parsed = text ? cJSON_Parse(text) : NULL;
	event_init(&back);
	if (!parsed || event_from_json(parsed, &back) < 0 || !event_equal(ev, &back))
		abort();
	event_done(&back);
	cJSON_Delete(parsed);
	free(text);
	cJSON_Delete(o);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	struct event_list list;
	uint64_t incarnation;
	size_t n_ignored;
	char *name;

	if (azure_parse_events(body, size, &incarnation, &list, &n_ignored) == 0) {
		if (list.n_events > EVENTS_MAX || (list.n_events > 0) != (list.events != NULL))
			abort();
		for (size_t i = 0; i < list.n_events; i++)
			check_event(&list.events[i]);
		if (list.n_events > 0) {
			char *approval = azure_approval_body(list.events[0].id);

			if (!approval)
				abort();
			free(approval);
		}
		event_list_done(&list);
	}

	if (azure_parse_compute_name(body, size, &name) == 0) {
		size_t n = strlen(name);

		if (n == 0 || n >= 256)
			abort();
		free(name);
	}
	return 0;
}
