/* test-gcp.c - the GCP parsers, driven by test/data/gcp, and the state the
 * GCP watcher keeps across rounds (first sightings, stable ids and
 * deadlines).
 *
 * Each directory holds one item's cases: NAME.txt must parse and yield what
 * NAME.expect says; NAME.bad must be refused with -EBADMSG, leaving the
 * outputs untouched. Adding a case means adding data files.
 *   flag/NAME.expect: "flag TRUE|FALSE".
 *   maintenance/NAME.expect: "maintenance none|Freeze|Terminate".
 *   name/NAME.expect: "name NAME". */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-event.h>

#include "event.h"
#include "provider.h"
#include "util.h"

#define DATA_DIR "test/data/gcp"
#define PLUMB_PROVIDER PROVIDER_GCP
#define PLUMB_FIRST_ITEM "instance/name"
#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

#include "watcher-data.h"
#define T0 UINT64_C(1795767600)   /* 2026-11-27T08:20:00Z */


/* One item: parses body and renders what it got, or returns the error after
 * checking that the outputs were left alone. */
struct item {
	const char *dir;
	size_t min_cases, min_bad;
	int (*render)(const char *body, size_t len, uint64_t now, char **ret);
};

static int render_flag(const char *body, size_t len, uint64_t now, char **ret)
{
	bool a = true, b = false;
	int r;

	r = gcp_parse_flag(body, len, &a);
	if (r < 0) {
		assert_int_equal(gcp_parse_flag(body, len, &b), r);
		assert_true(a);
		assert_false(b);
		return r;
	}
	*ret = xasprintf("flag %s\n", a ? "TRUE" : "FALSE");
	return 0;
}

static int render_maintenance(const char *body, size_t len, uint64_t now, char **ret)
{
	enum event_type type = EVENT_REBOOT;
	bool pending = true, p2 = false;
	int r;

	r = gcp_parse_maintenance(body, len, &type, &pending);
	if (r < 0) {
		assert_int_equal(gcp_parse_maintenance(body, len, &type, &p2), r);
		assert_int_equal(type, EVENT_REBOOT);
		assert_true(pending);
		assert_false(p2);
		return r;
	}
	if (!pending) {
		assert_int_equal(type, EVENT_TYPE_INVALID);
		*ret = xstrdup("maintenance none\n");
	} else {
		assert_true(type == EVENT_FREEZE || type == EVENT_TERMINATE);
		*ret = xasprintf("maintenance %s\n", event_type_to_string(type));
	}
	return 0;
}

static int render_name(const char *body, size_t len, uint64_t now, char **ret)
{
	char name[WATCHER_NAME_MAX] = "untouched";
	int r;

	r = watcher_parse_name(body, len, name, sizeof(name));
	if (r < 0) {
		assert_string_equal(name, "untouched");
		return r;
	}
	*ret = xasprintf("name %s\n", name);
	return 0;
}

static const struct item items[] = {
	{ "flag", 4, 10, render_flag },
	{ "maintenance", 8, 10, render_maintenance },
	{ "name", 3, 4, render_name },
};

struct data_case {
	char *path;
	const struct item *item;
};

static void test_case(void **state)
{
	const struct data_case *c = *state;
	char *body, *want, *got = NULL;
	uint64_t now;
	size_t len;
	int r;

	body = read_data(c->path, &len);
	want = read_expect(c->path, &now);
	r = c->item->render(body, len, now, &got);
	if (r != 0)
		fail_msg("%s: parse failed with %d", c->path, r);
	if (strcmp(got, want) != 0)
		fail_msg("%s: got\n%sexpected\n%s", c->path, got, want);
	free(got);
	free(want);
	free(body);
}

static void test_bad(void **state)
{
	const struct data_case *c = *state;
	char *body, *got = NULL;
	size_t len;
	int r;

	body = read_data(c->path, &len);
	r = c->item->render(body, len, SEC(1795767600), &got);
	if (r != -EBADMSG)
		fail_msg("%s: got %d, expected -EBADMSG%s%s", c->path, r, got ? ":\n" : "", got ? got : "");
	assert_null(got);
	free(body);
}

/* The transport hands over a length, not a C string. */
static void test_length_bounded(void **state)
{
	enum event_type type = EVENT_TYPE_INVALID;
	bool b = false, pending = false;

	assert_int_equal(gcp_parse_flag("TRUEFALSE", 4, &b), 0);
	assert_true(b);
	assert_int_equal(gcp_parse_flag("FALSETRUE", 5, &b), 0);
	assert_false(b);
	assert_int_equal(gcp_parse_flag("TRUEFALSE", 3, &b), -EBADMSG);
	assert_int_equal(gcp_parse_flag("TRUE\0", 5, &b), -EBADMSG);
	assert_int_equal(gcp_parse_flag(NULL, 0, &b), -EBADMSG);

	assert_int_equal(gcp_parse_maintenance("NONEXYZ", 4, &type, &pending), 0);
	assert_false(pending);
	assert_int_equal(gcp_parse_maintenance("MIGRATE_ON_HOST_MAINTENANCE!", 27, &type, &pending), 0);
	assert_true(pending);
	assert_int_equal(type, EVENT_FREEZE);
	/* A prefix of a known value is just another token. */
	assert_int_equal(gcp_parse_maintenance("MIGRATE_ON_HOST_MAINTENANCE", 7, &type, &pending), 0);
	assert_int_equal(type, EVENT_TERMINATE);
	assert_int_equal(gcp_parse_maintenance(NULL, 0, &type, &pending), -EBADMSG);
}

/* instance/preempted over several rounds, as the watcher sees it: the
 * event keeps its id and deadline while TRUE, and a later preemption of the
 * same machine after FALSE is counted from its own first sighting. */
static void test_preempt_rounds(void **state)
{
	struct watcher_sighting s = { 0 };
	struct spot_event a, b;
	uint64_t first;
	bool emergency = true;

	event_init(&a);
	event_init(&b);
	assert_int_equal(GCP_PREEMPT_NOTICE_SEC, 30);
	assert_int_equal(watcher_sighting_update(&s, NULL, SEC(T0 - 1)), 0);   /* FALSE */

	first = watcher_sighting_update(&s, "TRUE", SEC(T0));
	assert_int_equal(gcp_preempt_event("gce-vm0", first, &a), 0);
	assert_string_equal(a.id, "gcp-preempted-gce-vm0");
	assert_int_equal(a.type, EVENT_PREEMPT);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_string_equal(a.source, "Platform");
	assert_int_equal(a.provider, PROVIDER_GCP);
	assert_int_equal(a.duration_sec, -1);
	assert_int_equal(a.not_before_usec, SEC(T0 + 30));
	assert_true(a.description[0] != '\0');
	assert_true(event_names_resource(&a, "gce-vm0"));
	assert_false(event_names_resource(&a, "gce-vm1"));
	check_round_trip(&a);
	/* 30 s of notice and a 2 s margin leave the hooks 28 s. */
	assert_int_equal(event_deadline(&a, SEC(T0), SEC(2), &emergency), SEC(T0 + 28));
	assert_false(emergency);

	/* Later rounds: exactly the same event. */
	for (uint64_t t = 1; t < 40; t += 3) {
		first = watcher_sighting_update(&s, "TRUE", SEC(T0 + t));
		assert_int_equal(gcp_preempt_event("gce-vm0", first, &b), 0);
		assert_true(event_equal(&a, &b));
	}

	/* Back to FALSE, then TRUE again: a new deadline. */
	assert_int_equal(watcher_sighting_update(&s, NULL, SEC(T0 + 600)), 0);
	first = watcher_sighting_update(&s, "TRUE", SEC(T0 + 700));
	assert_int_equal(gcp_preempt_event("gce-vm0", first, &b), 0);
	assert_string_equal(b.id, a.id);
	assert_int_equal(b.not_before_usec, SEC(T0 + 730));

	/* Unusable names leave the output alone. */
	assert_int_equal(gcp_preempt_event("", first, &b), -EINVAL);
	assert_int_equal(gcp_preempt_event(NULL, first, &b), -EINVAL);
	assert_int_equal(b.not_before_usec, SEC(T0 + 730));
	event_done(&a);
	event_done(&b);
}

/* instance/maintenance-event over several rounds: one event per value and
 * first sighting, stable while the value stays. */
static void test_maintenance_rounds(void **state)
{
	struct watcher_sighting s = { 0 };
	struct spot_event a, b;
	uint64_t first;

	event_init(&a);
	event_init(&b);
	assert_int_equal(GCP_MAINTENANCE_NOTICE_SEC, 60);
	assert_int_equal(watcher_sighting_update(&s, "", SEC(T0 - 5)), 0);   /* NONE */

	first = watcher_sighting_update(&s, "MIGRATE_ON_HOST_MAINTENANCE", SEC(T0));
	assert_int_equal(gcp_maintenance_event("MIGRATE_ON_HOST_MAINTENANCE", EVENT_FREEZE, "gce-vm0",
					       first, &a), 0);
	assert_string_equal(a.id, "gcp-maintenance-migrate_on_host_maintenance-1795767600");
	assert_int_equal(a.type, EVENT_FREEZE);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_string_equal(a.source, "Platform");
	assert_int_equal(a.provider, PROVIDER_GCP);
	assert_int_equal(a.not_before_usec, SEC(T0 + 60));
	assert_string_equal(a.description, "host maintenance: MIGRATE_ON_HOST_MAINTENANCE");
	assert_true(event_names_resource(&a, "gce-vm0"));
	check_round_trip(&a);

	first = watcher_sighting_update(&s, "MIGRATE_ON_HOST_MAINTENANCE", SEC(T0 + 1));
	assert_int_equal(gcp_maintenance_event("MIGRATE_ON_HOST_MAINTENANCE", EVENT_FREEZE, "gce-vm0",
					       first, &b), 0);
	assert_true(event_equal(&a, &b));

	/* The value turns into a termination: a different event. */
	first = watcher_sighting_update(&s, "TERMINATE_ON_HOST_MAINTENANCE", SEC(T0 + 20));
	assert_int_equal(gcp_maintenance_event("TERMINATE_ON_HOST_MAINTENANCE", EVENT_TERMINATE,
					       "gce-vm0", first, &b), 0);
	assert_string_equal(b.id, "gcp-maintenance-terminate_on_host_maintenance-1795767620");
	assert_int_equal(b.type, EVENT_TERMINATE);
	assert_int_equal(b.not_before_usec, SEC(T0 + 80));

	/* Refused: NONE, a type other than Freeze/Terminate, not a token,
	 * too long, no usable name. The output is left alone. */
	assert_int_equal(gcp_maintenance_event("NONE", EVENT_TERMINATE, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_PREEMPT, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TYPE_INVALID, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("lower", EVENT_TERMINATE, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("", EVENT_TERMINATE, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event(NULL, EVENT_TERMINATE, "gce-vm0", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TERMINATE, "", first, &b), -EINVAL);
	assert_int_equal(gcp_maintenance_event("X", EVENT_TERMINATE, NULL, first, &b), -EINVAL);
	{
		char value[WATCHER_TOKEN_MAX + 2];

		memset(value, 'M', sizeof(value) - 1);
		value[sizeof(value) - 1] = '\0';
		assert_int_equal(gcp_maintenance_event(value, EVENT_TERMINATE, "gce-vm0", first, &b),
				 -EINVAL);
		assert_string_equal(b.id, "gcp-maintenance-terminate_on_host_maintenance-1795767620");
		/* The longest value the parser accepts still makes a valid id. */
		value[WATCHER_TOKEN_MAX] = '\0';
		assert_int_equal(gcp_maintenance_event(value, EVENT_TERMINATE, "gce-vm0", UINT64_MAX / 2,
						       &b), 0);
		assert_true(event_id_valid(b.id));
	}
	event_done(&a);
	event_done(&b);
}

/* The longest name the parser accepts fits every id built from it. */
static void test_longest_name(void **state)
{
	char name[WATCHER_NAME_MAX];
	struct spot_event ev;

	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	event_init(&ev);
	assert_int_equal(gcp_preempt_event(name, SEC(T0), &ev), 0);
	assert_true(event_id_valid(ev.id));
	assert_true(event_names_resource(&ev, name));
	assert_int_equal(gcp_maintenance_event("TERMINATE_ON_HOST_MAINTENANCE", EVENT_TERMINATE, name,
					       SEC(T0), &ev), 0);
	assert_true(event_names_resource(&ev, name));
	event_done(&ev);
}

#include "watcher-harness.h"

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_round_plumbing),
		cmocka_unit_test(test_preempt_rounds),
		cmocka_unit_test(test_maintenance_rounds),
		cmocka_unit_test(test_longest_name),
	};
	struct CMUnitTest *tests;
	size_t n = ELEMENTSOF(fixed);
	int failed;

	tests = xmalloc(sizeof(fixed));
	memcpy(tests, fixed, sizeof(fixed));
	/* Guard against a data directory that silently went missing. */
	for (size_t i = 0; i < ELEMENTSOF(items); i++)
		if (add_cases(&tests, &n, &items[i], ".txt", test_case) < items[i].min_cases ||
		    add_cases(&tests, &n, &items[i], ".bad", test_bad) < items[i].min_bad) {
			fprintf(stderr, "test data missing under %s/%s\n", DATA_DIR, items[i].dir);
			return EXIT_FAILURE;
		}
	failed = _cmocka_run_group_tests("gcp", tests, n, NULL, NULL);
	for (size_t i = ELEMENTSOF(fixed); i < n; i++) {
		struct data_case *c = (void *)tests[i].initial_state;

		free(c->path);
		free(c);
	}
	free(tests);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
