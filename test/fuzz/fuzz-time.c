/* fuzz-time.c - libFuzzer target for event_parse_time. Any accepted time
 * must lie in the documented range and format back to RFC 3339 that parses
 * to the very same instant. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/event.h"
#include "fuzz-util.h"
#include "store/json.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char buf[EVENT_TIME_MAX];
	uint64_t usec = 0, back = 0;
	char *s;
	int r;

	if (size > 4096)
		return 0;
	s = xmalloc(size + 1);
	memcpy(s, data, size);
	s[size] = '\0';

	r = event_parse_time(s, &usec);
	fuzz_assert(r == 0 || r == -EINVAL || r == -ERANGE);
	fuzz_assert(r != 0 || usec <= JSON_TIME_MAX_USEC);
	/* Only "" means unknown; any other accepted string is a full date. */
	fuzz_assert(r != 0 || s[0] == '\0' || strlen(s) >= 20);
	if (r == 0 && usec != 0) {
		event_format_time(buf, sizeof(buf), usec);
		fuzz_assert(event_parse_time(buf, &back) == 0 && back == usec);
	}
	free(s);
	return 0;
}
