/* poll.c - when the metadata service is asked: the round cadence, the rate
 * budget shared by every request, the request timeouts. It knows no
 * provider and no event, does no I/O and reads no clock. */
#include "engine/poll.h"

#include <string.h>

void poll_sched_init(struct poll_sched *s, uint64_t interval_usec)
{
	memset(s, 0, sizeof(*s));
	s->interval_usec = interval_usec;
}

void poll_sched_set_interval(struct poll_sched *s, uint64_t interval_usec)
{
	s->interval_usec = interval_usec;
	if (s->round_started_mono_usec && s->next_round_mono_usec > s->round_started_mono_usec + interval_usec)
		s->next_round_mono_usec = s->round_started_mono_usec + interval_usec;
}

void poll_note_sent(struct poll_sched *s, uint64_t now)
{
	s->sent_mono_usec[s->sent_next] = now;
	s->sent_next = (s->sent_next + 1) % POLL_RATE_MAX;
}

uint64_t poll_rate_free_at(const struct poll_sched *s, uint64_t now, unsigned n)
{
	uint64_t t;

	if (n == 0)
		return now;
	if (n > POLL_RATE_MAX)
		n = POLL_RATE_MAX;
	/* The n-th oldest of the last POLL_RATE_MAX sends must have left the
	 * window before n more may go. */
	t = s->sent_mono_usec[(s->sent_next + n - 1) % POLL_RATE_MAX];
	if (t == 0 || now >= t + POLL_RATE_WINDOW_USEC)
		return now;
	return t + POLL_RATE_WINDOW_USEC;
}

uint64_t poll_round_at(const struct poll_sched *s, uint64_t now, unsigned cost)
{
	uint64_t due = s->next_round_mono_usec > now ? s->next_round_mono_usec : now;
	unsigned need = cost + 1 <= POLL_RATE_MAX ? cost + 1 : cost;
	uint64_t room = poll_rate_free_at(s, due, need);

	return room > due ? room : due;
}

void poll_round_started(struct poll_sched *s, uint64_t now)
{
	s->round_started_mono_usec = now;
	s->next_round_mono_usec = now + s->interval_usec;
}

void poll_round_ended(struct poll_sched *s, uint64_t now, enum poll_outcome o)
{
	uint64_t next = s->round_started_mono_usec + s->interval_usec;

	if (next < now)
		next = now;
	if (o == POLL_THROTTLED && next < now + POLL_RATE_WINDOW_USEC)
		next = now + POLL_RATE_WINDOW_USEC;
	s->next_round_mono_usec = next;
}

uint64_t poll_request_timeout(const struct poll_sched *s, bool first)
{
	uint64_t t = s->interval_usec / 4 * 3;

	if (first)
		return POLL_FIRST_TIMEOUT_USEC;
	if (t < POLL_TIMEOUT_MIN_USEC)
		t = POLL_TIMEOUT_MIN_USEC;
	if (t > POLL_TIMEOUT_MAX_USEC)
		t = POLL_TIMEOUT_MAX_USEC;
	return t;
}
