/* ignored.h - the events seen for this VM and not acted on (ignored.c):
 * their type is not in 'events'. The last few, for /v1/status. */
#ifndef SPOT_STORE_IGNORED_H
#define SPOT_STORE_IGNORED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/event.h"

#define IGNORED_EVENTS_MAX 8   /* listed; older ones drop out (the counter goes on) */

struct ignored_event {
	char id[EVENT_ID_MAX];
	enum event_type type;
	uint64_t first_seen_wall_usec;
};

/* A ring, zero-initialised empty; not persisted. */
struct ignored_events {
	struct ignored_event v[IGNORED_EVENTS_MAX];
	size_t n;          /* held, <= IGNORED_EVENTS_MAX */
	size_t next;       /* slot the next one goes to */
};

/* Notes an ignored event first seen at now_wall_usec. An id already held
 * (ASCII case-insensitive) keeps its first sighting: false. Else it takes
 * the oldest slot when full: true. */
bool ignored_events_note(struct ignored_events *l, const char *id, enum event_type type,
			 uint64_t now_wall_usec);

/* The i-th newest held (0 = the newest), or NULL past the end. Borrowed. */
const struct ignored_event *ignored_events_get(const struct ignored_events *l, size_t i);

#endif
