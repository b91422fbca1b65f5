/* fuzz-azure.c - libFuzzer target for the Azure document parsers. Besides
 * surviving any input, every event they return must satisfy the model's
 * invariants, name the VM the document was parsed for, and survive the
 * JSON form the state file keeps; every drop must be described in one
 * printable line. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clouds/azure.h"
#include "engine/event.h"
#include "store/event-json.h"
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

/* A document parsed for vm (NULL: for no VM in particular). */
static void check_document(const char *body, size_t size, const char *vm)
{
	struct azure_document doc;
	size_t described;

	if (azure_parse_events(body, size, vm, &doc) < 0)
		return;
	if (doc.incarnation < 0 || doc.events.n_events > EVENTS_MAX ||
	    (doc.events.n_events > 0) != (doc.events.events != NULL) || (!vm && doc.n_other != 0))
		abort();
	for (size_t i = 0; i < doc.events.n_events; i++) {
		check_event(&doc.events.events[i]);
		/* The filter held, whatever the Resources cap kept. */
		if (vm && !event_names_resource(&doc.events.events[i], vm))
			abort();
	}
	described = doc.n_drops < PROVIDER_DROPS_MAX ? doc.n_drops : PROVIDER_DROPS_MAX;
	for (size_t i = 0; i < described; i++) {
		const struct provider_drop *d = &doc.drops[i];

		if (strnlen(d->reason, sizeof(d->reason)) == 0 ||
		    strnlen(d->reason, sizeof(d->reason)) >= sizeof(d->reason) ||
		    (d->id[0] && !event_id_valid(d->id)))
			abort();
		for (const char *c = d->reason; *c; c++)
			if ((unsigned char)*c < 0x20 || *c == 0x7f)
				abort();
	}
	if (doc.events.n_events > 0) {
		char *approval = azure_approval_body(doc.events.events[0].id);

		if (!approval)
			abort();
		free(approval);
	}
	azure_document_done(&doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data;
	char *name;

	check_document(body, size, NULL);
	/* Names the seed corpus uses. */
	check_document(body, size, "vm");
	check_document(body, size, "myvmss_3");

	if (azure_parse_compute_name(body, size, &name) == 0) {
		size_t n = strlen(name);

		if (n == 0 || n >= PROVIDER_NAME_MAX)
			abort();
		free(name);
	}
	return 0;
}
