/* ignored.c - the last few events for this VM that were seen and not acted
 * on because their type is not in 'events': an operator who left Shutdown
 * out, or never added Reboot, sees what went by. It only keeps a small
 * ring in memory; counting is metrics.c's, logging the caller's. */
#include "store/ignored.h"

#include <strings.h>

#include "util.h"

bool ignored_events_note(struct ignored_events *l, const char *id, enum event_type type,
			 uint64_t now_wall_usec)
{
	struct ignored_event *e;

	for (size_t i = 0; i < l->n; i++)
		if (strcasecmp(l->v[i].id, id) == 0)
			return false;
	e = &l->v[l->next];
	(void)strscpy(e->id, sizeof(e->id), id);
	e->type = type;
	e->first_seen_wall_usec = now_wall_usec;
	l->next = (l->next + 1) % IGNORED_EVENTS_MAX;
	if (l->n < IGNORED_EVENTS_MAX)
		l->n++;
	return true;
}

const struct ignored_event *ignored_events_get(const struct ignored_events *l, size_t i)
{
	if (i >= l->n)
		return NULL;
	return &l->v[(l->next + IGNORED_EVENTS_MAX - 1 - i) % IGNORED_EVENTS_MAX];
}
