/* poll.h - provider-neutral scheduling of metadata requests: when the next
 * round is due, when a request may go without breaking the rate limit, and
 * how long a request may take. Pure: every time is passed in
 * (CLOCK_MONOTONIC microseconds); the caller arms the timers. */
#ifndef SPOT_POLL_H
#define SPOT_POLL_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/base.h"

/* Azure IMDS answers about 5 requests per second per VM, then 429. Every
 * request sent (polls, identity, tokens, approvals) counts, and no more than
 * POLL_RATE_MAX go out in any POLL_RATE_WINDOW_USEC, 10 % below the limit. */
#define POLL_RATE_MAX              5
#define POLL_RATE_WINDOW_USEC      (1100 * USEC_PER_MSEC)
/* The first Scheduled Events call switches the service on and can take up
 * to two minutes; later answers of a link-local service take milliseconds. */
#define POLL_FIRST_TIMEOUT_USEC    (130 * USEC_PER_SEC)
/* A request is abandoned well before the next round is due: after 3/4 of
 * the interval, but not sooner than this nor later than the cap. */
#define POLL_TIMEOUT_MIN_USEC      (250 * USEC_PER_MSEC)
#define POLL_TIMEOUT_MAX_USEC      (2 * USEC_PER_SEC)

enum poll_outcome {
	POLL_OK,
	POLL_FAILED,      /* any failure: the next round keeps the cadence */
	POLL_THROTTLED,   /* 429: the next round waits out the rate window */
};

struct poll_sched {
	uint64_t interval_usec;
	uint64_t sent_mono_usec[POLL_RATE_MAX];  /* ring of the latest sends */
	unsigned sent_next;
	uint64_t round_started_mono_usec;        /* 0 before the first round */
	uint64_t next_round_mono_usec;           /* when the next round is due */
};

void poll_sched_init(struct poll_sched *s, uint64_t interval_usec);
void poll_sched_set_interval(struct poll_sched *s, uint64_t interval_usec);

/* Every request actually sent, whoever sent it. */
void poll_note_sent(struct poll_sched *s, uint64_t now);

/* The earliest time n more requests may go (now when there is room). */
uint64_t poll_rate_free_at(const struct poll_sched *s, uint64_t now, unsigned n);

/* When a round of cost requests may start: when it is due and the budget
 * has room for it plus one request kept free, so that an approval never
 * waits behind polls (no reserve for a round that needs the whole budget). */
uint64_t poll_round_at(const struct poll_sched *s, uint64_t now, unsigned cost);

void poll_round_started(struct poll_sched *s, uint64_t now);

/* A round ended. Success and failure alike keep the cadence: the next round
 * is due one interval after this one started (at once when it took
 * longer), so a failure costs at most one poll and an outage leaves no
 * backoff behind; a 429 waits out the rate window. */
void poll_round_ended(struct poll_sched *s, uint64_t now, enum poll_outcome o);

/* The timeout of each request of a round; the very first Azure call gets
 * POLL_FIRST_TIMEOUT_USEC. */
uint64_t poll_request_timeout(const struct poll_sched *s, bool first);

#endif
