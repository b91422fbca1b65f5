/* aws-maintenance.c - what the scheduled maintenance list held, round to
 * round: AWS moves an event that completes or is cancelled from
 * events/maintenance/scheduled to .../history, so an event the list no
 * longer holds is looked up there once, and what the history says of it
 * is handed with a later round. Bounded: AWS_MAINTENANCE_EVENTS_MAX of
 * each. No requests here: aws.c asks, this remembers. */
#include "clouds/aws-internal.h"

#include <string.h>
#include <strings.h>

#include "util.h"

static bool id_in(const char (*ids)[EVENT_ID_MAX], size_t n, const char *id)
{
	for (size_t i = 0; i < n; i++)
		if (strcasecmp(ids[i], id) == 0)
			return true;
	return false;
}

static bool event_in(const struct event_list *l, const char *id)
{
	for (size_t i = 0; i < l->n_events; i++)
		if (strcasecmp(l->events[i].id, id) == 0)
			return true;
	return false;
}

/* Removes event k of l, keeping the order. */
static void list_remove(struct event_list *l, size_t k)
{
	event_done(&l->events[k]);
	memmove(&l->events[k], &l->events[k + 1], (l->n_events - k - 1) * sizeof(*l->events));
	l->n_events--;
}

/* A list that answered, l its usable events (none for a 404): an event the
 * last one held live that this one misses is to be looked up in the
 * history; one listed again is not (and what the history said of it gives
 * way to the list). */
void aws_maintenance_listed(struct aws_maintenance_memory *m, const struct event_list *l)
{
	size_t k = 0;

	for (size_t i = 0; i < m->n_listed; i++) {
		if (event_in(l, m->listed[i]) || id_in(m->missing, m->n_missing, m->listed[i]))
			continue;
		/* Full: the oldest is forgotten (the engine's own rule then
		 * applies to it). */
		if (m->n_missing == AWS_MAINTENANCE_EVENTS_MAX) {
			memmove(m->missing[0], m->missing[1], (m->n_missing - 1) * sizeof(m->missing[0]));
			m->n_missing--;
		}
		(void)strscpy(m->missing[m->n_missing++], sizeof(m->missing[0]), m->listed[i]);
	}
	for (size_t i = 0; i < m->n_missing; i++) {
		if (event_in(l, m->missing[i]))
			continue;
		if (k != i)
			memcpy(m->missing[k], m->missing[i], sizeof(m->missing[0]));
		k++;
	}
	m->n_missing = k;
	for (size_t i = m->ended.n_events; i > 0; i--)
		if (event_in(l, m->ended.events[i - 1].id))
			list_remove(&m->ended, i - 1);
	m->n_listed = 0;
	for (size_t i = 0; i < l->n_events && m->n_listed < AWS_MAINTENANCE_EVENTS_MAX; i++)
		if (l->events[i].end == END_NONE)
			(void)strscpy(m->listed[m->n_listed++], sizeof(m->listed[0]), l->events[i].id);
}

bool aws_maintenance_take_ended(struct aws_maintenance_memory *m, struct spot_event *ret)
{
	if (m->ended.n_events == 0)
		return false;
	*ret = m->ended.events[0];
	event_init(&m->ended.events[0]);
	list_remove(&m->ended, 0);
	return true;
}

/* The history answered (found: the missing events it says are over, moved
 * out; NULL when it failed): it was asked, the missing are forgotten. */
void aws_maintenance_history(struct aws_maintenance_memory *m, struct event_list *found)
{
	for (size_t i = 0; found && i < found->n_events; i++) {
		if (m->ended.n_events >= AWS_MAINTENANCE_EVENTS_MAX || event_in(&m->ended, found->events[i].id))
			continue;
		if (!m->ended.events)
			m->ended.events = xcalloc(AWS_MAINTENANCE_EVENTS_MAX, sizeof(*m->ended.events));
		m->ended.events[m->ended.n_events++] = found->events[i];
		event_init(&found->events[i]);
	}
	m->n_missing = 0;
}
