/* test-poll.c - the poll scheduler: the rate budget (the n-th oldest of the
 * last POLL_RATE_MAX sends), the request kept free for an approval, the
 * round cadence after success, failure and 429, the request timeouts, and
 * interval changes. Pure, so every time is made up; a seeded random walk
 * checks that no rate window ever holds more than POLL_RATE_MAX sends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "engine/poll.h"
#include "util.h"

#define MSEC(ms) ((uint64_t)(ms) * USEC_PER_MSEC)
#define SEC(s)   ((uint64_t)(s) * USEC_PER_SEC)
#define WINDOW   POLL_RATE_WINDOW_USEC

/* Any monotonic time but 0, which the scheduler reads as "never sent". */
#define T0       SEC(1000)

static void send_at(struct poll_sched *s, const uint64_t *times, size_t n)
{
	for (size_t i = 0; i < n; i++)
		poll_note_sent(s, times[i]);
}

/* Five sends in one window: the sixth waits until the oldest leaves it,
 * and not a microsecond longer. */
static void test_rate_budget(void **state)
{
	const uint64_t t[POLL_RATE_MAX] = { T0, T0 + MSEC(100), T0 + MSEC(200), T0 + MSEC(300), T0 + MSEC(400) };
	struct poll_sched s;

	poll_sched_init(&s, SEC(1));
	assert_int_equal(poll_rate_free_at(&s, T0, 1), T0);
	for (size_t i = 0; i < POLL_RATE_MAX; i++) {
		/* Room for each of the first five as it comes. */
		assert_int_equal(poll_rate_free_at(&s, t[i], 1), t[i]);
		poll_note_sent(&s, t[i]);
	}
	assert_int_equal(poll_rate_free_at(&s, T0 + MSEC(500), 1), T0 + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, T0 + WINDOW - 1, 1), T0 + WINDOW);
	/* The window is half-open: at T0 + WINDOW the first send is out. */
	assert_int_equal(poll_rate_free_at(&s, T0 + WINDOW, 1), T0 + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, T0 + SEC(10), 1), T0 + SEC(10));

	/* The sixth goes; now the second send is the oldest. */
	poll_note_sent(&s, T0 + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, T0 + WINDOW, 1), t[1] + WINDOW);
	/* No request at all needs no room. */
	assert_int_equal(poll_rate_free_at(&s, T0 + WINDOW, 0), T0 + WINDOW);
}

/* n more requests wait for the n-th oldest of the last five sends. */
static void test_rate_nth_oldest(void **state)
{
	const uint64_t t[POLL_RATE_MAX] = { T0, T0 + MSEC(100), T0 + MSEC(200), T0 + MSEC(300), T0 + MSEC(400) };
	uint64_t now = T0 + MSEC(450);
	struct poll_sched s;

	poll_sched_init(&s, SEC(1));
	send_at(&s, t, POLL_RATE_MAX);
	for (unsigned n = 1; n <= POLL_RATE_MAX; n++)
		assert_int_equal(poll_rate_free_at(&s, now, n), t[n - 1] + WINDOW);
	/* More than the whole budget cannot wait for more than all of it. */
	assert_int_equal(poll_rate_free_at(&s, now, POLL_RATE_MAX + 1), t[POLL_RATE_MAX - 1] + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, now, 100), t[POLL_RATE_MAX - 1] + WINDOW);
	/* Once the third has left, three may go at once, not four. */
	now = t[2] + WINDOW;
	assert_int_equal(poll_rate_free_at(&s, now, 3), now);
	assert_int_equal(poll_rate_free_at(&s, now, 4), t[3] + WINDOW);

	/* Three sends leave two free slots: two go now, a third waits. */
	poll_sched_init(&s, SEC(1));
	send_at(&s, t, 3);
	now = T0 + MSEC(250);
	assert_int_equal(poll_rate_free_at(&s, now, 1), now);
	assert_int_equal(poll_rate_free_at(&s, now, 2), now);
	assert_int_equal(poll_rate_free_at(&s, now, 3), t[0] + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, now, 4), t[1] + WINDOW);
	assert_int_equal(poll_rate_free_at(&s, now, 5), t[2] + WINDOW);

	/* The ring wraps: after seven sends only the last five count. */
	poll_sched_init(&s, SEC(1));
	for (unsigned i = 0; i < 7; i++)
		poll_note_sent(&s, T0 + MSEC(100) * i);
	now = T0 + MSEC(650);
	for (unsigned n = 1; n <= POLL_RATE_MAX; n++)
		assert_int_equal(poll_rate_free_at(&s, now, n), T0 + MSEC(100) * (n + 1) + WINDOW);
}

/* A round starts only when its requests and one more fit, so that an
 * approval never waits behind polls; a round that needs the whole budget
 * keeps nothing back. */
static void test_round_reserve(void **state)
{
	const uint64_t t[3] = { T0, T0 + MSEC(10), T0 + MSEC(20) };
	uint64_t now = T0 + MSEC(30);
	struct poll_sched s;

	poll_sched_init(&s, SEC(1));
	/* Nothing sent, no round yet: at once, whatever the cost. */
	for (unsigned cost = 0; cost <= POLL_RATE_MAX + 1; cost++)
		assert_int_equal(poll_round_at(&s, T0, cost), T0);

	/* Three sent: two free. One request plus the reserve fit, two plus
	 * the reserve wait for the oldest, though two alone would fit. */
	send_at(&s, t, 3);
	assert_int_equal(poll_round_at(&s, now, 1), now);
	assert_int_equal(poll_rate_free_at(&s, now, 2), now);
	assert_int_equal(poll_round_at(&s, now, 2), t[0] + WINDOW);
	assert_int_equal(poll_round_at(&s, now, 3), t[1] + WINDOW);
	assert_int_equal(poll_round_at(&s, now, 4), t[2] + WINDOW);

	/* One sent: a round of four needs all five; one of five needs all
	 * five too, not six, and a round of three keeps the fifth free. */
	poll_sched_init(&s, SEC(1));
	poll_note_sent(&s, T0);
	now = T0 + MSEC(10);
	assert_int_equal(poll_round_at(&s, now, 3), now);
	assert_int_equal(poll_round_at(&s, now, 4), T0 + WINDOW);
	assert_int_equal(poll_round_at(&s, now, POLL_RATE_MAX), T0 + WINDOW);
	assert_int_equal(poll_round_at(&s, T0 + WINDOW, POLL_RATE_MAX), T0 + WINDOW);
}

/* A round is due one interval after the last one started; when the budget
 * is short at that time, it waits for room from there. */
static void test_round_due(void **state)
{
	struct poll_sched s;

	poll_sched_init(&s, SEC(1));
	poll_round_started(&s, T0);
	poll_note_sent(&s, T0);
	poll_round_ended(&s, T0 + MSEC(50), POLL_OK);
	assert_int_equal(poll_round_at(&s, T0 + MSEC(50), 1), T0 + SEC(1));
	assert_int_equal(poll_round_at(&s, T0 + MSEC(999), 1), T0 + SEC(1));
	/* A timer that fires late: at once. */
	assert_int_equal(poll_round_at(&s, T0 + SEC(3), 1), T0 + SEC(3));

	/* Four approvals and identity calls before the round is due fill
	 * the budget: a round of one and its reserve wait for two slots, the
	 * first send's and then the oldest of those four. */
	for (unsigned i = 0; i < 4; i++)
		poll_note_sent(&s, T0 + MSEC(500) + MSEC(100) * i);
	assert_int_equal(poll_round_at(&s, T0 + MSEC(900), 1), T0 + MSEC(500) + WINDOW);
}

/* Success and failure alike keep the cadence; a round that took longer
 * than the interval is followed by the next one at once. */
static void test_cadence(void **state)
{
	static const enum poll_outcome outcomes[] = { POLL_OK, POLL_FAILED };
	struct poll_sched s;

	for (size_t i = 0; i < ELEMENTSOF(outcomes); i++) {
		poll_sched_init(&s, SEC(1));
		poll_round_started(&s, T0);
		assert_int_equal(s.next_round_mono_usec, T0 + SEC(1));
		poll_round_ended(&s, T0 + MSEC(200), outcomes[i]);
		assert_int_equal(s.next_round_mono_usec, T0 + SEC(1));
		assert_int_equal(poll_round_at(&s, T0 + MSEC(200), 1), T0 + SEC(1));

		/* Ended exactly at the next due time, and later. */
		poll_round_started(&s, T0 + SEC(1));
		poll_round_ended(&s, T0 + SEC(2), outcomes[i]);
		assert_int_equal(s.next_round_mono_usec, T0 + SEC(2));
		poll_round_started(&s, T0 + SEC(2));
		poll_round_ended(&s, T0 + MSEC(3500), outcomes[i]);
		assert_int_equal(s.next_round_mono_usec, T0 + MSEC(3500));
		assert_int_equal(poll_round_at(&s, T0 + MSEC(3500), 1), T0 + MSEC(3500));
	}

	/* Many failures in a row leave no backoff behind. */
	poll_sched_init(&s, MSEC(500));
	for (unsigned i = 0; i < 100; i++) {
		uint64_t start = T0 + MSEC(500) * i;

		assert_int_equal(poll_round_at(&s, start, 1), start);
		poll_round_started(&s, start);
		poll_round_ended(&s, start + MSEC(5), POLL_FAILED);
	}
	assert_int_equal(s.next_round_mono_usec, T0 + MSEC(500) * 100);
}

/* A 429 waits out the rate window from its answer, unless the cadence
 * already waits longer. */
static void test_throttled(void **state)
{
	struct poll_sched s;

	poll_sched_init(&s, SEC(1));
	poll_round_started(&s, T0);
	poll_round_ended(&s, T0 + MSEC(100), POLL_THROTTLED);
	assert_int_equal(s.next_round_mono_usec, T0 + MSEC(100) + WINDOW);
	assert_int_equal(poll_round_at(&s, T0 + MSEC(100), 1), T0 + MSEC(100) + WINDOW);

	/* After a round longer than the interval: a window from now. */
	poll_round_started(&s, T0 + SEC(2));
	poll_round_ended(&s, T0 + SEC(5), POLL_THROTTLED);
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(5) + WINDOW);

	/* A long interval already waits out the window. */
	poll_sched_init(&s, SEC(5));
	poll_round_started(&s, T0);
	poll_round_ended(&s, T0 + MSEC(100), POLL_THROTTLED);
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(5));

	/* The one after a 429 that goes well is back on the cadence. */
	poll_sched_init(&s, SEC(1));
	poll_round_started(&s, T0);
	poll_round_ended(&s, T0 + MSEC(100), POLL_THROTTLED);
	poll_round_started(&s, T0 + MSEC(100) + WINDOW);
	poll_round_ended(&s, T0 + MSEC(1300), POLL_OK);
	assert_int_equal(s.next_round_mono_usec, T0 + MSEC(100) + WINDOW + SEC(1));
}

/* 3/4 of the interval, within [250 ms, 2 s]; the very first call 130 s. */
static void test_request_timeout(void **state)
{
	static const struct {
		uint64_t interval_usec, timeout_usec;
	} cases[] = {
		{ MSEC(1), MSEC(250) },
		{ MSEC(200), MSEC(250) },
		{ MSEC(333), MSEC(250) },
		{ MSEC(336), MSEC(252) },
		{ MSEC(400), MSEC(300) },
		{ SEC(1), MSEC(750) },
		{ SEC(2), MSEC(1500) },
		{ MSEC(2664), MSEC(1998) },
		{ MSEC(2668), SEC(2) },
		{ SEC(60), SEC(2) },
	};
	struct poll_sched s;

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		poll_sched_init(&s, cases[i].interval_usec);
		assert_int_equal(poll_request_timeout(&s, false), cases[i].timeout_usec);
		assert_int_equal(poll_request_timeout(&s, true), POLL_FIRST_TIMEOUT_USEC);
	}
	assert_int_equal(POLL_FIRST_TIMEOUT_USEC, SEC(130));
	/* It follows the interval when that changes. */
	poll_sched_init(&s, SEC(1));
	poll_sched_set_interval(&s, MSEC(400));
	assert_int_equal(poll_request_timeout(&s, false), MSEC(300));
}

/* A shorter interval pulls a pending wait in; a longer one leaves the
 * next round where it is, and before the first round nothing moves. */
static void test_set_interval(void **state)
{
	struct poll_sched s;

	poll_sched_init(&s, SEC(10));
	poll_sched_set_interval(&s, SEC(2));
	assert_int_equal(s.next_round_mono_usec, 0);
	assert_int_equal(poll_round_at(&s, T0, 1), T0);

	poll_sched_init(&s, SEC(10));
	poll_round_started(&s, T0);
	poll_round_ended(&s, T0 + MSEC(100), POLL_OK);
	assert_int_equal(poll_round_at(&s, T0 + MSEC(100), 1), T0 + SEC(10));
	poll_sched_set_interval(&s, SEC(2));
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(2));
	assert_int_equal(poll_round_at(&s, T0 + MSEC(100), 1), T0 + SEC(2));
	poll_sched_set_interval(&s, SEC(30));
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(2));
	/* The new interval holds for the rounds after. */
	poll_round_started(&s, T0 + SEC(2));
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(32));

	/* Shortened while the round is still running, too. */
	poll_sched_init(&s, SEC(10));
	poll_round_started(&s, T0);
	poll_sched_set_interval(&s, SEC(1));
	poll_round_ended(&s, T0 + MSEC(100), POLL_OK);
	assert_int_equal(s.next_round_mono_usec, T0 + SEC(1));
}

/* ---- a random walk over the budget ---- */

#define WALK_STEPS   20000
#define WALK_SENDS   (WALK_STEPS * (POLL_RATE_MAX + 1))

static uint64_t rng_state;

/* xorshift64*: the same sequence on every libc. */
static uint64_t rng_next(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 0x2545F4914F6CDD1DULL;
}

static uint64_t rng_below(uint64_t n)
{
	return rng_next() % n;
}

struct walk {
	struct poll_sched s;
	uint64_t now;
	uint64_t sends[WALK_SENDS];
	size_t n_sends;
	size_t waits;                /* times the budget made the walk wait */
};

/* Sends one request now, which the budget must allow. */
static void walk_send(struct walk *w)
{
	assert_int_equal(poll_rate_free_at(&w->s, w->now, 1), w->now);
	assert_true(w->n_sends < WALK_SENDS);
	poll_note_sent(&w->s, w->now);
	w->sends[w->n_sends++] = w->now;
}

/* The sends in the window that ends at t (inclusive), plus n more there. */
static size_t window_holds(const struct walk *w, uint64_t t, unsigned n)
{
	size_t k = 0;

	for (size_t i = w->n_sends; i > 0 && w->sends[i - 1] + WINDOW > t; i--)
		k++;
	return k + n;
}

/* Waits until n requests may go: never earlier than allowed (checked at
 * the end), and not later than needed either. */
static void walk_wait(struct walk *w, unsigned n)
{
	uint64_t t = poll_rate_free_at(&w->s, w->now, n);

	assert_true(t >= w->now);
	if (t > w->now) {
		assert_true(window_holds(w, t - 1, n) > POLL_RATE_MAX);
		w->waits++;
	}
	w->now = t;
}

static void test_rate_property(void **state)
{
	static const uint64_t intervals[] = { MSEC(200), MSEC(500), SEC(1), SEC(5) };
	static const enum poll_outcome outcomes[] = { POLL_OK, POLL_FAILED, POLL_THROTTLED };
	struct walk *w = xcalloc(1, sizeof(*w));
	size_t rounds = 0;

	rng_state = 0x5eed2024c0ffee01ULL;
	poll_sched_init(&w->s, SEC(1));
	w->now = T0;
	for (unsigned step = 0; step < WALK_STEPS; step++) {
		uint64_t r = rng_below(4);

		/* Bursts, short gaps and pauses. */
		w->now += r == 0 ? 0 : r == 1 ? rng_below(MSEC(50)) : r == 2 ? rng_below(MSEC(400)) :
			  rng_below(SEC(2));
		switch (rng_below(4)) {
		case 0: {
			/* A batch of approvals, identity or token calls. */
			unsigned n = 1 + (unsigned)rng_below(POLL_RATE_MAX);

			walk_wait(w, n);
			for (unsigned i = 0; i < n; i++)
				walk_send(w);
			break;
		}
		case 1:
			walk_wait(w, 1);
			walk_send(w);
			break;
		case 2: {
			/* A round: its requests and the approval kept free all
			 * go at its start, then it ends a little later. */
			unsigned cost = 1 + (unsigned)rng_below(POLL_RATE_MAX);
			uint64_t at = poll_round_at(&w->s, w->now, cost);

			assert_true(at >= w->now);
			w->now = at;
			poll_round_started(&w->s, w->now);
			for (unsigned i = 0; i < (cost < POLL_RATE_MAX ? cost + 1 : cost); i++)
				walk_send(w);
			w->now += rng_below(MSEC(300));
			poll_round_ended(&w->s, w->now, outcomes[rng_below(ELEMENTSOF(outcomes))]);
			rounds++;
			break;
		}
		default:
			if (rng_below(8) == 0)
				poll_sched_set_interval(&w->s, intervals[rng_below(ELEMENTSOF(intervals))]);
			break;
		}
	}

	/* No half-open window of WINDOW holds more than POLL_RATE_MAX. */
	for (size_t i = 0; i + POLL_RATE_MAX < w->n_sends; i++)
		assert_true(w->sends[i + POLL_RATE_MAX] >= w->sends[i] + WINDOW);
	/* The walk did press on the budget. */
	assert_true(w->n_sends > WALK_STEPS);
	assert_true(w->waits > WALK_STEPS / 10);
	assert_true(rounds > WALK_STEPS / 8);
	free(w);
}

int main(void)
{
	static const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_budget),
		cmocka_unit_test(test_rate_nth_oldest),
		cmocka_unit_test(test_round_reserve),
		cmocka_unit_test(test_round_due),
		cmocka_unit_test(test_cadence),
		cmocka_unit_test(test_throttled),
		cmocka_unit_test(test_request_timeout),
		cmocka_unit_test(test_set_interval),
		cmocka_unit_test(test_rate_property),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
