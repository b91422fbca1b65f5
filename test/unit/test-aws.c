/* test-aws.c - the AWS parsers, driven by test/data/aws, and the state the
 * AWS watcher keeps across rounds (token expiry, first sightings, ids).
 *
 * Each directory holds one item's cases: NAME.json or NAME.txt must parse
 * and yield what NAME.expect says; NAME.bad must be refused with -EBADMSG,
 * leaving the outputs untouched. Adding a case means adding data files.
 *   instance-action/NAME.expect: optional "now SECONDS" (the reading time
 *     given to the parser, default 0), then the event as lines
 *     "id", "type", "status", "source", "not_before SECONDS[.USEC]",
 *     "description TEXT", in this order ('#' lines are comments).
 *   lifecycle/NAME.expect: "terminating yes|no".
 *   token/NAME.expect: "token TOKEN".  instance-id/NAME.expect: "name ID". */
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

#define DATA_DIR "test/data/aws"
#define PLUMB_PROVIDER PROVIDER_AWS
#define PLUMB_FIRST_ITEM "api/token"
#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

#include "watcher-data.h"


static char *render_event(const struct spot_event *ev)
{
	char nb[48];

	if (ev->not_before_usec % USEC_PER_SEC)
		(void)snprintf(nb, sizeof(nb), "%" PRIu64 ".%06" PRIu64, ev->not_before_usec / USEC_PER_SEC,
			       ev->not_before_usec % USEC_PER_SEC);
	else
		(void)snprintf(nb, sizeof(nb), "%" PRIu64, ev->not_before_usec / USEC_PER_SEC);
	return xasprintf("id %s\ntype %s\nstatus %s\nsource %s\nnot_before %s\ndescription %s\n",
			 ev->id, event_type_to_string(ev->type), event_status_to_string(ev->status),
			 ev->source, nb, ev->description);
}

/* One item: parses body and renders what it got, or returns the error after
 * checking that the outputs were left alone. */
struct item {
	const char *dir;
	const char *ext;
	size_t min_cases, min_bad;
	int (*render)(const char *body, size_t len, uint64_t now, char **ret);
};

static int render_action(const char *body, size_t len, uint64_t now, char **ret)
{
	struct spot_event ev, again;
	int r;

	event_init(&ev);
	(void)strscpy(ev.id, sizeof(ev.id), "untouched");
	r = aws_parse_instance_action(body, len, now, &ev);
	if (r < 0) {
		assert_string_equal(ev.id, "untouched");
		assert_int_equal(ev.type, EVENT_TYPE_INVALID);
		event_done(&ev);
		return r;
	}
	assert_int_equal(ev.provider, PROVIDER_AWS);
	assert_int_equal(ev.n_resources, 0);
	assert_int_equal(ev.duration_sec, -1);
	assert_true(event_id_valid(ev.id));
	check_round_trip(&ev);

	/* The same notice read again (later, into a used event) is the same
	 * event: the id does not depend on when it was read. */
	event_init(&again);
	assert_int_equal(event_add_resource(&again, "leftover"), 0);
	assert_int_equal(aws_parse_instance_action(body, len, now + SEC(1), &again), 0);
	assert_string_equal(again.id, ev.id);
	assert_int_equal(again.not_before_usec, ev.not_before_usec);
	assert_int_equal(again.n_resources, 0);
	event_done(&again);

	*ret = render_event(&ev);
	event_done(&ev);
	return 0;
}

static int render_lifecycle(const char *body, size_t len, uint64_t now, char **ret)
{
	bool terminating = true, t2 = false;
	int r;

	r = aws_parse_lifecycle(body, len, &terminating);
	if (r < 0) {
		assert_true(terminating);
		assert_int_equal(aws_parse_lifecycle(body, len, &t2), r);
		assert_false(t2);
		return r;
	}
	*ret = xasprintf("terminating %s\n", terminating ? "yes" : "no");
	return 0;
}

static int render_token(const char *body, size_t len, uint64_t now, char **ret)
{
	char token[AWS_TOKEN_MAX + 1] = "untouched";
	int r;

	r = aws_parse_token(body, len, token, sizeof(token));
	if (r < 0) {
		assert_string_equal(token, "untouched");
		return r;
	}
	*ret = xasprintf("token %s\n", token);
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
	{ "instance-action", ".json", 8, 15, render_action },
	{ "lifecycle", ".txt", 10, 8, render_lifecycle },
	{ "token", ".txt", 3, 4, render_token },
	{ "instance-id", ".txt", 3, 4, render_name },
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
	static const char doc[] = "{\"action\":\"stop\",\"time\":\"2026-11-27T08:22:00Z\"}";
	struct spot_event ev;
	char buf[sizeof(doc) + 8], name[WATCHER_NAME_MAX];
	size_t n = sizeof(doc) - 1;
	bool b = false;

	memcpy(buf, doc, n);
	memcpy(buf + n, "garbage!", 8);   /* no NUL anywhere */
	event_init(&ev);
	assert_int_equal(aws_parse_instance_action(buf, n, 0, &ev), 0);
	assert_string_equal(ev.id, "aws-spot-stop-1795767720");
	assert_int_equal(aws_parse_instance_action(buf, n - 1, 0, &ev), -EBADMSG);
	assert_int_equal(aws_parse_instance_action(buf, sizeof(buf), 0, &ev), -EBADMSG);
	assert_int_equal(aws_parse_instance_action(NULL, 0, 0, &ev), -EBADMSG);
	event_done(&ev);

	memcpy(buf, "TerminatedXYZ", 13);
	assert_int_equal(aws_parse_lifecycle(buf, 10, &b), 0);
	assert_true(b);
	assert_int_equal(aws_parse_lifecycle(buf, 9, &b), 0);
	assert_false(b);
	assert_int_equal(aws_parse_lifecycle(NULL, 0, &b), -EBADMSG);

	memcpy(buf, "i-0abc\ni-0def", 13);
	assert_int_equal(watcher_parse_name(buf, 7, name, sizeof(name)), 0);
	assert_string_equal(name, "i-0abc");
	assert_int_equal(watcher_parse_name(buf, 13, name, sizeof(name)), -EBADMSG);
	/* A destination too small is a refusal, not a truncation. */
	assert_int_equal(watcher_parse_name(buf, 6, name, 6), -EBADMSG);
	assert_int_equal(watcher_parse_name(buf, 6, name, 7), 0);
	assert_int_equal(aws_parse_token(buf, 6, name, 6), -EBADMSG);
}

static void test_token_due(void **state)
{
	uint64_t now = SEC(1000000), ttl = SEC(AWS_TOKEN_TTL_SEC), margin = SEC(AWS_TOKEN_MARGIN_SEC);

	assert_int_equal(AWS_TOKEN_TTL_SEC, 21600);
	assert_int_equal(AWS_TOKEN_MARGIN_SEC, 60);
	/* None held. */
	assert_true(aws_token_due(0, now));
	assert_true(aws_token_due(0, 0));
	/* Fresh, and anything until the margin. */
	assert_false(aws_token_due(now + ttl, now));
	assert_false(aws_token_due(now + margin + 1, now));
	/* Within the margin of expiry, at it, and after. */
	assert_true(aws_token_due(now + margin, now));
	assert_true(aws_token_due(now + margin - 1, now));
	assert_true(aws_token_due(now + 1, now));
	assert_true(aws_token_due(now, now));
	assert_true(aws_token_due(now - 1, now));
	/* An expiry closer to the clock's start than the margin does not wrap. */
	assert_true(aws_token_due(margin - 1, 0));
	assert_true(aws_token_due(1, 0));
	assert_false(aws_token_due(margin + 2, 1));
	/* A token taken at t lasts until t + ttl - margin. */
	for (uint64_t t = 0; t <= ttl; t += SEC(600))
		assert_int_equal(aws_token_due(now + ttl, now + t), t >= ttl - margin);
}

static void test_sighting(void **state)
{
	struct watcher_sighting s = { 0 };
	char long_key[WATCHER_TOKEN_MAX + 10];

	/* Nothing seen. */
	assert_int_equal(watcher_sighting_update(&s, NULL, SEC(10)), 0);
	assert_int_equal(watcher_sighting_update(&s, "", SEC(11)), 0);
	/* First seen at 12, and it stays 12 while it is seen. */
	assert_int_equal(watcher_sighting_update(&s, "Terminated", SEC(12)), SEC(12));
	assert_int_equal(watcher_sighting_update(&s, "Terminated", SEC(13)), SEC(12));
	assert_int_equal(watcher_sighting_update(&s, "Terminated", SEC(99)), SEC(12));
	/* A gap ends the sighting; the next one starts afresh. */
	assert_int_equal(watcher_sighting_update(&s, NULL, SEC(100)), 0);
	assert_int_equal(watcher_sighting_update(&s, "Terminated", SEC(101)), SEC(101));
	/* A different key is a different sighting. */
	assert_int_equal(watcher_sighting_update(&s, "Other", SEC(102)), SEC(102));
	assert_int_equal(watcher_sighting_update(&s, "Other", SEC(103)), SEC(102));
	assert_int_equal(watcher_sighting_update(&s, "Terminated", SEC(104)), SEC(104));
	/* A time of 0 is still a sighting (the key, not the time, says so). */
	assert_int_equal(watcher_sighting_update(&s, NULL, 5), 0);
	assert_int_equal(watcher_sighting_update(&s, "x", 0), 0);
	assert_int_equal(watcher_sighting_update(&s, "x", 7), 0);
	/* Overlong keys are bounded and still compare stably. */
	memset(long_key, 'K', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	assert_int_equal(watcher_sighting_update(&s, long_key, SEC(200)), SEC(200));
	assert_int_equal(watcher_sighting_update(&s, long_key, SEC(201)), SEC(200));
	assert_int_equal(strlen(s.key), WATCHER_TOKEN_MAX);
}

/* What the round builds from target-lifecycle-state = Terminated: the same
 * event, id and deadline, for as long as the state is seen. */
static void test_lifecycle_event(void **state)
{
	struct watcher_sighting s = { 0 };
	struct spot_event a, b;
	char long_id[WATCHER_NAME_MAX + 1];
	uint64_t first;

	event_init(&a);
	event_init(&b);
	first = watcher_sighting_update(&s, "Terminated", SEC(1795767600));
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", first, &a), 0);
	assert_string_equal(a.id, "aws-asg-terminate-i-0123456789abcdef0");
	assert_int_equal(a.type, EVENT_TERMINATE);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_int_equal(a.provider, PROVIDER_AWS);
	assert_int_equal(a.duration_sec, -1);
	assert_string_equal(a.source, "User");
	assert_int_equal(a.not_before_usec, SEC(1795767600 + AWS_ASG_NOTICE_SEC));
	assert_int_equal(AWS_ASG_NOTICE_SEC, 120);
	assert_true(a.description[0] != '\0');
	/* The pipeline's own-VM filter matches on the instance id. */
	assert_true(event_names_resource(&a, "i-0123456789abcdef0"));
	assert_true(event_names_resource(&a, "I-0123456789ABCDEF0"));
	assert_false(event_names_resource(&a, "i-0123456789abcdef1"));
	check_round_trip(&a);

	/* Rounds later: the same event. */
	first = watcher_sighting_update(&s, "Terminated", SEC(1795767645));
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", first, &b), 0);
	assert_true(event_equal(&a, &b));
	/* Overwriting an event that holds resources releases them (ASan). */
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", first, &b), 0);
	assert_int_equal(b.n_resources, 1);

	/* Unusable ids leave the output alone. */
	memset(long_id, 'i', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(aws_lifecycle_event(long_id, first, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event("", first, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event(NULL, first, &b), -EINVAL);
	assert_true(event_equal(&a, &b));
	long_id[WATCHER_NAME_MAX - 1] = '\0';   /* the longest name accepted */
	assert_int_equal(aws_lifecycle_event(long_id, first, &b), 0);
	assert_true(event_id_valid(b.id));
	assert_true(event_names_resource(&b, long_id));
	event_done(&a);
	event_done(&b);
}

/* The notice as the round hands it on: the parsed event plus this
 * machine's id as its resource. */
static void test_action_for_this_vm(void **state)
{
	static const char doc[] = "{\"action\":\"terminate\",\"time\":\"2026-11-27T08:22:00Z\"}";
	struct spot_event ev;
	uint64_t deadline;
	bool emergency = true;

	event_init(&ev);
	assert_int_equal(aws_parse_instance_action(doc, sizeof(doc) - 1, SEC(1795767600), &ev), 0);
	assert_int_equal(event_add_resource(&ev, "i-0123456789abcdef0"), 0);
	assert_true(event_names_resource(&ev, "i-0123456789abcdef0"));
	/* Two minutes of notice, a 2 s margin: the hooks get 118 s. */
	deadline = event_deadline(&ev, SEC(1795767600), SEC(2), &emergency);
	assert_int_equal(deadline, SEC(1795767718));
	assert_false(emergency);
	check_round_trip(&ev);
	event_done(&ev);
}

#include "watcher-harness.h"

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_round_plumbing),
		cmocka_unit_test(test_token_due),
		cmocka_unit_test(test_sighting),
		cmocka_unit_test(test_lifecycle_event),
		cmocka_unit_test(test_action_for_this_vm),
	};
	struct CMUnitTest *tests;
	size_t n = ELEMENTSOF(fixed);
	int failed;

	tests = xmalloc(sizeof(fixed));
	memcpy(tests, fixed, sizeof(fixed));
	/* Guard against a data directory that silently went missing. */
	for (size_t i = 0; i < ELEMENTSOF(items); i++)
		if (add_cases(&tests, &n, &items[i], items[i].ext, test_case) < items[i].min_cases ||
		    add_cases(&tests, &n, &items[i], ".bad", test_bad) < items[i].min_bad) {
			fprintf(stderr, "test data missing under %s/%s\n", DATA_DIR, items[i].dir);
			return EXIT_FAILURE;
		}
	failed = _cmocka_run_group_tests("aws", tests, n, NULL, NULL);
	for (size_t i = ELEMENTSOF(fixed); i < n; i++) {
		struct data_case *c = (void *)tests[i].initial_state;

		free(c->path);
		free(c);
	}
	free(tests);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
