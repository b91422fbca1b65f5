/* fuzz-providers.c - libFuzzer target for the AWS and GCP item parsers:
 * any answer body is parsed or refused, never read past its length, and
 * whatever a parser accepts makes a valid event key. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A key the engine can append "-<Unix seconds>" to. */
static void check_key(const struct spot_event *ev)
{
	if (!event_id_valid(ev->id) || strlen(ev->id) >= PROVIDER_KEY_MAX || !ev->id_from_first_seen)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy exactly as long as the input, so ASan sees any overread. */
	char *body = malloc(size ? size : 1);
	struct spot_event ev;
	enum event_type type;
	char name[PROVIDER_NAME_MAX], value[PROVIDER_TOKEN_MAX + 1];
	bool flag, pending;
	int k;

	if (!body)
		abort();
	memcpy(body, data, size);
	event_init(&ev);
	if (aws_parse_instance_action(body, size, UINT64_C(1795764000000000), &ev) == 0) {
		check_key(&ev);
		if (ev.not_before_usec == 0 || ev.notice_usec != 0)
			abort();
	}
	(void)aws_parse_lifecycle(body, size, &flag);
	(void)gcp_parse_flag(body, size, &flag);
	if (gcp_parse_maintenance(body, size, &type, &pending) == 0 && pending) {
		if (type != EVENT_FREEZE && type != EVENT_TERMINATE)
			abort();
		k = provider_parse_text(body, size, PROVIDER_TOKEN_MAX);
		if (k < 0)
			abort();
		memcpy(value, body, (size_t)k);
		value[k] = '\0';
		if (gcp_maintenance_event(value, type, "gce-vm0", &ev) < 0)
			abort();
		check_key(&ev);
	}
	/* Any name the parser accepts makes every event built from it. */
	if (provider_parse_name(body, size, name, sizeof(name)) == 0) {
		if (aws_lifecycle_event(name, &ev) < 0)
			abort();
		check_key(&ev);
		if (!event_names_resource(&ev, name))
			abort();
		if (gcp_preempt_event(name, "0123456789abcdef", GCP_PREEMPT_NOTICE_SEC, &ev) < 0)
			abort();
		check_key(&ev);
		if (!event_names_resource(&ev, name))
			abort();
	}
	event_done(&ev);
	free(body);
	return 0;
}
