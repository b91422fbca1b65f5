/* fuzz-gcp.c - libFuzzer target for the GCP item parsers: instance/
 * preempted (and the other TRUE/FALSE flags), instance/maintenance-event
 * and instance/name. Any answer body is parsed or refused without reading
 * past its length; the parsers agree with their contract written out here;
 * and whatever they accept builds events that are valid, keyed within
 * PROVIDER_KEY_MAX (a long name is cut in the key, never the boot tag) and
 * survive their JSON form. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
#include "clouds/provider.h"
#include "util.h"

static void check_key(const struct spot_event *ev, const char *prefix)
{
	fuzz_assert(ev->id_from_first_seen);
	fuzz_assert(strlen(ev->id) < PROVIDER_KEY_MAX);
	fuzz_assert(strncmp(ev->id, prefix, strlen(prefix)) == 0);
}

static bool model_maintenance(const char *s, int n)
{
	if (n <= 0 || s[0] < 'A' || s[0] > 'Z')
		return false;
	for (int i = 1; i < n; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

static void check_flag(const char *body, size_t size)
{
	int k = model_text(body, size, PROVIDER_TOKEN_MAX);
	bool is_true = k == 4 && memcmp(body, "TRUE", 4) == 0;
	bool is_false = k == 5 && memcmp(body, "FALSE", 5) == 0;
	bool flag = !is_true;

	fuzz_assert((gcp_parse_flag(body, size, &flag) == 0) == (is_true || is_false));
	if (is_true || is_false)
		fuzz_assert(flag == is_true);
}

static void check_maintenance(const char *body, size_t size)
{
	int k = model_text(body, size, PROVIDER_TOKEN_MAX);
	bool valid = k > 0 && model_maintenance(body, k), pending = false;
	enum event_type type = EVENT_TYPE_INVALID;
	char value[PROVIDER_TOKEN_MAX + 1], lower[PROVIDER_TOKEN_MAX + 1];
	struct spot_event ev;

	fuzz_assert((gcp_parse_maintenance(body, size, &type, &pending) == 0) == valid);
	if (!valid)
		return;
	memcpy(value, body, (size_t)k);
	value[k] = '\0';
	fuzz_assert(pending == (strcmp(value, "NONE") != 0));
	if (!pending)
		return;
	fuzz_assert(type == (strcmp(value, "MIGRATE_ON_HOST_MAINTENANCE") == 0 ?
			     EVENT_FREEZE : EVENT_TERMINATE));
	event_init(&ev);
	fuzz_assert(gcp_maintenance_event(value, type, "gce-vm0", &ev) == 0);
	check_event_fields(&ev, PROVIDER_GCP);
	check_key(&ev, "gcp-maintenance-");
	for (int i = 0; i <= k; i++)
		lower[i] = value[i] >= 'A' && value[i] <= 'Z' ? (char)(value[i] - 'A' + 'a') : value[i];
	fuzz_assert(strcmp(ev.id + strlen("gcp-maintenance-"), lower) == 0);
	fuzz_assert(ev.type == type && ev.notice_usec == GCP_MAINTENANCE_NOTICE_SEC * USEC_PER_SEC);
	fuzz_assert(event_names_resource(&ev, "gce-vm0"));
	event_done(&ev);
}

static void check_name(const char *body, size_t size)
{
	static const char *const tags[] = { "", "0", "0123456789abcdef" };
	char name[PROVIDER_NAME_MAX];
	int k = model_text(body, size, PROVIDER_NAME_MAX - 1);
	struct spot_event ev;

	fuzz_assert((provider_parse_name(body, size, name, sizeof(name)) == 0) == (k >= 0));
	if (k < 0)
		return;
	fuzz_assert(strlen(name) == (size_t)k && memcmp(name, body, (size_t)k) == 0);
	for (size_t i = 0; i < sizeof(tags) / sizeof(tags[0]); i++) {
		size_t id_len, tag_len = strlen(tags[i]);

		event_init(&ev);
		fuzz_assert(gcp_preempt_event(name, tags[i], GCP_PREEMPT_NOTICE_SEC, &ev) == 0);
		check_event_fields(&ev, PROVIDER_GCP);
		check_key(&ev, "gcp-preempted-");
		fuzz_assert(ev.type == EVENT_PREEMPT && ev.status == EVENT_SCHEDULED);
		fuzz_assert(ev.notice_usec == GCP_PREEMPT_NOTICE_SEC * USEC_PER_SEC);
		/* The whole name is the resource; the key ends in the tag. */
		fuzz_assert(ev.n_resources == 1 && strcmp(ev.resources[0], name) == 0);
		id_len = strlen(ev.id);
		if (tag_len > 0)
			fuzz_assert(id_len > tag_len + 1 && ev.id[id_len - tag_len - 1] == '-' &&
				    strcmp(ev.id + id_len - tag_len, tags[i]) == 0);
		event_done(&ev);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_copy(data, size);

	check_flag(body, size);
	check_maintenance(body, size);
	check_name(body, size);
	free(body);
	return 0;
}
