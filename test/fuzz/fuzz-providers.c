/* fuzz-providers.c - libFuzzer target for the AWS and GCP item parsers:
 * any answer body is parsed or refused, never read past its length. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* A copy exactly as long as the input, so ASan sees any overread. */
	char *body = malloc(size ? size : 1);
	struct spot_event ev;
	enum event_type type;
	char name[WATCHER_NAME_MAX];
	bool flag, pending;

	if (!body)
		abort();
	memcpy(body, data, size);
	event_init(&ev);
	if (aws_parse_instance_action(body, size, UINT64_C(1795764000000000), &ev) == 0 &&
	    !event_id_valid(ev.id))
		abort();
	event_done(&ev);
	(void)aws_parse_lifecycle(body, size, &flag);
	(void)gcp_parse_flag(body, size, &flag);
	if (gcp_parse_maintenance(body, size, &type, &pending) == 0 && pending &&
	    type != EVENT_FREEZE && type != EVENT_TERMINATE)
		abort();
	(void)watcher_parse_name(body, size, name, sizeof(name));
	free(body);
	return 0;
}
