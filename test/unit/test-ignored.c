/* test-ignored.c - the events seen and not acted on: a ring of the last
 * few, newest first, an id kept with its first sighting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "store/ignored.h"

static void test_note_and_order(void **state)
{
	struct ignored_events l = { 0 };
	char id[32];

	assert_null(ignored_events_get(&l, 0));
	assert_true(ignored_events_note(&l, "ev-a", EVENT_REBOOT, 100));
	assert_true(ignored_events_note(&l, "ev-b", EVENT_FREEZE, 200));
	/* The same event again (ids compare without case): its first sighting stays. */
	assert_false(ignored_events_note(&l, "EV-A", EVENT_REBOOT, 300));
	assert_int_equal(l.n, 2);
	assert_string_equal(ignored_events_get(&l, 0)->id, "ev-b");
	assert_int_equal(ignored_events_get(&l, 0)->type, EVENT_FREEZE);
	assert_string_equal(ignored_events_get(&l, 1)->id, "ev-a");
	assert_int_equal(ignored_events_get(&l, 1)->first_seen_wall_usec, 100);
	assert_null(ignored_events_get(&l, 2));

	/* Beyond the cap the oldest drop out, newest first still. */
	for (int i = 0; i < IGNORED_EVENTS_MAX; i++) {
		(void)snprintf(id, sizeof(id), "ev-%d", i);
		assert_true(ignored_events_note(&l, id, EVENT_REDEPLOY, 1000 + (uint64_t)i));
	}
	assert_int_equal(l.n, IGNORED_EVENTS_MAX);
	(void)snprintf(id, sizeof(id), "ev-%d", IGNORED_EVENTS_MAX - 1);
	assert_string_equal(ignored_events_get(&l, 0)->id, id);
	assert_string_equal(ignored_events_get(&l, IGNORED_EVENTS_MAX - 1)->id, "ev-0");
	assert_null(ignored_events_get(&l, IGNORED_EVENTS_MAX));
	/* ev-a dropped out: seen again, it counts anew. */
	assert_true(ignored_events_note(&l, "ev-a", EVENT_REBOOT, 5000));
	assert_string_equal(ignored_events_get(&l, 0)->id, "ev-a");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_note_and_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
