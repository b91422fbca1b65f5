/* fuzz-util.h - what the fuzz targets share: a failed invariant names
 * itself before aborting, and the checks every provider's events must pass.
 * Header-only, so each target stays one file plus the agent's archive. */
#ifndef SPOT_FUZZ_UTIL_H
#define SPOT_FUZZ_UTIL_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sanitizer/common_interface_defs.h>

#include "engine/event.h"
#include "store/event-json.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the broken invariant in the report: through the sanitizers'
 * report channel, which libFuzzer keeps open when -close_fd_mask closes the
 * target's own stderr. */
#define fuzz_assert(cond) do {                                                   \
		if (!(cond)) {                                                   \
			char msg_[256];                                          \
			(void)snprintf(msg_, sizeof(msg_), "%s:%d: invariant broken: %s", \
				       __FILE__, __LINE__, #cond);               \
			__sanitizer_report_error_summary(msg_);                  \
			abort();                                                 \
		}                                                                \
	} while (0)

/* SPOT_FUZZ_STRICT=1 (set by `make fuzz-crashers`): no known gap is
 * tolerated, so an input of test/fuzz/crashers/ fails until it is fixed. */
static inline bool fuzz_strict(void)
{
	const char *e = getenv("SPOT_FUZZ_STRICT");

	return e && strcmp(e, "1") == 0;
}

/* What provider_parse_text's contract says, written out independently:
 * trailing spaces, tabs, CRs and LFs dropped, then 1..max bytes of
 * printable ASCII other than space. The length, or -1. */
static inline int model_text(const char *body, size_t len, size_t max)
{
	while (len > 0 && (body[len - 1] == ' ' || body[len - 1] == '\t' ||
			   body[len - 1] == '\r' || body[len - 1] == '\n'))
		len--;
	if (len == 0 || len > max)
		return -1;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)body[i] < 0x21 || (unsigned char)body[i] > 0x7e)
			return -1;
	return (int)len;
}

/* The event survives the JSON form hooks and the state file read. */
static inline void check_event_json(const struct spot_event *ev)
{
	struct spot_event back;
	cJSON *o = event_to_json(ev, 0, false), *parsed;
	char *text;

	fuzz_assert(o);
	text = cJSON_PrintUnformatted(o);
	fuzz_assert(text);
	parsed = cJSON_Parse(text);
	event_init(&back);
	fuzz_assert(parsed && event_from_json(parsed, &back) == 0);
	/* Not part of the JSON form. */
	back.id_from_first_seen = ev->id_from_first_seen;
	back.notice_usec = ev->notice_usec;
	fuzz_assert(event_equal(ev, &back));
	event_done(&back);
	cJSON_Delete(parsed);
	free(text);
	cJSON_Delete(o);
}

/* An event a provider built: valid enums and strings within their fields. */
static inline void check_event_fields(const struct spot_event *ev, enum provider p)
{
	fuzz_assert(event_id_valid(ev->id));
	fuzz_assert(ev->type >= 0 && ev->type < _EVENT_TYPE_MAX);
	fuzz_assert(ev->status >= 0 && ev->status < _EVENT_STATUS_MAX);
	fuzz_assert(ev->provider == p);
	fuzz_assert(ev->n_resources <= EVENT_RESOURCES_MAX);
	fuzz_assert(strnlen(ev->source, sizeof(ev->source)) < sizeof(ev->source));
	fuzz_assert(strnlen(ev->description, sizeof(ev->description)) < sizeof(ev->description));
	for (size_t i = 0; i < ev->n_resources; i++) {
		size_t n = strnlen(ev->resources[i], EVENT_RESOURCE_MAX);

		fuzz_assert(n > 0 && n < EVENT_RESOURCE_MAX);
	}
	check_event_json(ev);
}

/* A copy of the input exactly as long as it, so ASan sees any overread
 * (libFuzzer's own buffer may have slack). Caller frees. */
static inline char *fuzz_copy(const uint8_t *data, size_t size)
{
	char *p = malloc(size ? size : 1);

	fuzz_assert(p);
	if (size)
		memcpy(p, data, size);
	return p;
}

#endif
