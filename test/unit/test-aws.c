/* test-aws.c - the AWS parsers, driven by test/data/aws, and the AWS
 * provider against a fake metadata service and Auto Scaling API: what a
 * round costs and really sends, the token, its refresh after a 401 and the
 * IMDSv1 fallback, optional items failing beside the essential one, the
 * stable key of a spot notice whose time moves, lifecycle and warm-pool
 * states, scheduled maintenance and its history, the rebalance
 * recommendation, and the Auto Scaling calls (forms, signing, errors,
 * credentials, group name).
 *
 * Each directory holds one item's cases: NAME.json, NAME.txt or NAME.xml
 * must parse and yield what NAME.expect says; NAME.bad must be refused with
 * -EBADMSG, leaving the outputs untouched. Adding a case means adding data
 * files. In .expect files '#' lines are comments and an optional
 * "now SECONDS" line is the reading time given to the parser (default 0).
 *   instance-action/NAME.expect: the event as lines "key", "type",
 *     "status", "source", "not_before SECONDS[.USEC]", "description TEXT",
 *     in this order; the key is the event's id with id_from_first_seen set.
 *   lifecycle/NAME.expect: "state Terminated|Warmed:Terminated|
 *     Warmed:Stopped|Warmed:Hibernated|other".
 *   maintenance/NAME.expect: per event "event ID", "type", "status",
 *     "end none|completed|canceled", "not_before SECONDS", "description
 *     TEXT" and "note TEXT" when there is one; then "drop ID|-: REASON"
 *     for the first drops and "drops N" when any; "events 0" when none.
 *   credentials/NAME.expect: "key_id", "secret", "token_len", "expiration
 *     SECONDS".
 *   autoscaling/NAME.expect: "root", "error yes|no", "code", "message",
 *     "request_id", "instances N", "group", "instance_id",
 *     "lifecycle_state".
 *   region, document: "region R".  role: "role R".  group: "group G".
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

#include "engine/event.h"
#include "engine/poll.h"
#include "store/event-json.h"
#include "clouds/autoscaling.h"
#include "clouds/aws.h"
#include "clouds/provider.h"
#include "util.h"

#define DATA_DIR "test/data/aws"
#define PLUMB_PROVIDER PROVIDER_AWS
#define PLUMB_FIRST_ITEM "api/token"
#define SEC(s) ((uint64_t)(s) * USEC_PER_SEC)

#include "provider-data.h"

static char *render_event(const struct spot_event *ev)
{
	char nb[48];

	if (ev->not_before_usec % USEC_PER_SEC)
		(void)snprintf(nb, sizeof(nb), "%" PRIu64 ".%06" PRIu64, ev->not_before_usec / USEC_PER_SEC,
			       ev->not_before_usec % USEC_PER_SEC);
	else
		(void)snprintf(nb, sizeof(nb), "%" PRIu64, ev->not_before_usec / USEC_PER_SEC);
	assert_true(ev->id_from_first_seen);
	assert_int_equal(ev->notice_usec, 0);
	return xasprintf("key %s\ntype %s\nstatus %s\nsource %s\nnot_before %s\ndescription %s\n",
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
	assert_int_equal(ev.feed, FEED_AWS_SPOT);
	assert_false(ev.needs_ack);
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
	enum aws_target_state state = _AWS_TARGET_MAX;
	int r;

	r = aws_parse_lifecycle(body, len, &state);
	if (r < 0) {
		assert_int_equal(state, _AWS_TARGET_MAX);
		return r;
	}
	*ret = xasprintf("state %s\n", aws_target_state_to_string(state));
	return 0;
}

/* Appends to *out. */
static void append(char **out, const char *fmt, ...) _printf_(2, 3);
static void append(char **out, const char *fmt, ...)
{
	char *add, *joined;
	va_list ap;

	va_start(ap, fmt);
	add = xvasprintf(fmt, ap);
	va_end(ap);
	joined = xasprintf("%s%s", *out ? *out : "", add);
	free(add);
	free(*out);
	*out = joined;
}

static int render_maintenance(const char *body, size_t len, uint64_t now, char **ret)
{
	static const char *const ends[] = { "none", "completed", "canceled" };
	struct aws_maintenance m = { .n_drops = 99 };
	char *out = NULL;
	int r;

	r = aws_parse_maintenance(body, len, now, &m);
	if (r < 0) {
		assert_int_equal(m.n_drops, 99);
		assert_null(m.events.events);
		return r;
	}
	assert_true(m.events.n_events <= AWS_MAINTENANCE_EVENTS_MAX);
	assert_int_equal(m.events.events == NULL, m.events.n_events == 0);
	for (size_t i = 0; i < m.events.n_events; i++) {
		const struct spot_event *ev = &m.events.events[i];

		/* The provider's own id, a platform notice of its feed. */
		assert_false(ev->id_from_first_seen);
		assert_true(event_id_valid(ev->id));
		assert_int_equal(ev->provider, PROVIDER_AWS);
		assert_int_equal(ev->feed, FEED_AWS_MAINTENANCE);
		assert_string_equal(ev->source, "Platform");
		assert_int_equal(ev->n_resources, 0);
		assert_int_equal(ev->notice_usec, 0);
		assert_false(ev->needs_ack);
		assert_int_equal(ev->not_before_usec % USEC_PER_SEC, 0);
		check_round_trip(ev);
		append(&out, "event %s\ntype %s\nstatus %s\nend %s\nnot_before %" PRIu64 "\ndescription %s\n",
		       ev->id, event_type_to_string(ev->type), event_status_to_string(ev->status),
		       ends[ev->end], ev->not_before_usec / USEC_PER_SEC, ev->description);
		if (ev->note[0])
			append(&out, "note %s\n", ev->note);
	}
	for (size_t i = 0; i < m.n_drops && i < PROVIDER_DROPS_MAX; i++)
		append(&out, "drop %s: %s\n", m.drops[i].id[0] ? m.drops[i].id : "-", m.drops[i].reason);
	if (m.n_drops > 0)
		append(&out, "drops %zu\n", m.n_drops);
	if (!out)
		append(&out, "events 0\n");
	aws_maintenance_done(&m);
	aws_maintenance_done(&m);   /* done twice is harmless */
	*ret = out;
	return 0;
}

static int render_credentials(const char *body, size_t len, uint64_t now, char **ret)
{
	struct aws_credentials c;
	int r;

	memset(&c, 'x', sizeof(c));
	r = aws_parse_credentials(body, len, &c);
	if (r < 0) {
		for (size_t i = 0; i < sizeof(c); i++)
			assert_int_equal(((unsigned char *)&c)[i], 'x');
		return r;
	}
	*ret = xasprintf("key_id %s\nsecret %s\ntoken_len %zu\nexpiration %" PRIu64 "\n", c.key_id, c.secret,
			 strlen(c.token), c.expiration_wall_usec / USEC_PER_SEC);
	aws_credentials_wipe(&c);
	for (size_t i = 0; i < sizeof(c); i++)
		assert_int_equal(((unsigned char *)&c)[i], 0);
	return 0;
}

static int render_autoscaling(const char *body, size_t len, uint64_t now, char **ret)
{
	struct autoscaling_answer a;
	int r;

	memset(&a, 'x', sizeof(a));
	r = autoscaling_parse(body, len, &a);
	if (r < 0) {
		assert_int_equal(a.root[0], 'x');
		return r;
	}
	*ret = xasprintf("root %s\nerror %s\ncode %s\nmessage %s\nrequest_id %s\ninstances %zu\ngroup %s\n"
			 "instance_id %s\nlifecycle_state %s\n", a.root, a.error ? "yes" : "no", a.code,
			 a.message, a.request_id, a.n_instances, a.group, a.instance_id, a.lifecycle_state);
	return 0;
}

/* A text field parsed into a buffer: refused leaves it alone. */
#define RENDER_TEXT(fn, parser, label)                                                \
	static int fn(const char *body, size_t len, uint64_t now, char **ret)         \
	{                                                                             \
		char buf[AWS_GROUP_MAX + 8] = "untouched";                            \
		int r = parser(body, len, buf, sizeof(buf));                          \
                                                                                      \
		if (r < 0) {                                                          \
			assert_string_equal(buf, "untouched");                        \
			return r;                                                     \
		}                                                                     \
		*ret = xasprintf(label " %s\n", buf);                                 \
		return 0;                                                             \
	}
RENDER_TEXT(render_region, aws_parse_region, "region")
RENDER_TEXT(render_document, aws_parse_document_region, "region")
RENDER_TEXT(render_role, aws_parse_role, "role")
RENDER_TEXT(render_group, aws_parse_group_name, "group")

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
	char name[PROVIDER_NAME_MAX] = "untouched";
	int r;

	r = provider_parse_name(body, len, name, sizeof(name));
	if (r < 0) {
		assert_string_equal(name, "untouched");
		return r;
	}
	*ret = xasprintf("name %s\n", name);
	return 0;
}

static const struct item items[] = {
	{ "instance-action", ".json", 8, 15, render_action },
	{ "lifecycle", ".txt", 19, 8, render_lifecycle },
	{ "token", ".txt", 3, 4, render_token },
	{ "instance-id", ".txt", 3, 4, render_name },
	{ "maintenance", ".json", 12, 9, render_maintenance },
	{ "credentials", ".json", 3, 19, render_credentials },
	{ "autoscaling", ".xml", 12, 12, render_autoscaling },
	{ "region", ".txt", 3, 5, render_region },
	{ "document", ".json", 2, 5, render_document },
	{ "role", ".txt", 3, 5, render_role },
	{ "group", ".txt", 4, 4, render_group },
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
	char buf[sizeof(doc) + 8], name[PROVIDER_NAME_MAX];
	size_t n = sizeof(doc) - 1;
	enum aws_target_state b = AWS_TARGET_OTHER;

	memcpy(buf, doc, n);
	memcpy(buf + n, "garbage!", 8);   /* no NUL anywhere */
	event_init(&ev);
	assert_int_equal(aws_parse_instance_action(buf, n, 0, &ev), 0);
	assert_string_equal(ev.id, "aws-spot-stop");
	assert_true(ev.id_from_first_seen);
	assert_int_equal(ev.not_before_usec, SEC(1795767720));
	assert_int_equal(aws_parse_instance_action(buf, n - 1, 0, &ev), -EBADMSG);
	assert_int_equal(aws_parse_instance_action(buf, sizeof(buf), 0, &ev), -EBADMSG);
	assert_int_equal(aws_parse_instance_action(NULL, 0, 0, &ev), -EBADMSG);
	event_done(&ev);

	memcpy(buf, "TerminatedXYZ", 13);
	assert_int_equal(aws_parse_lifecycle(buf, 10, &b), 0);
	assert_int_equal(b, AWS_TARGET_TERMINATED);
	assert_int_equal(aws_parse_lifecycle(buf, 9, &b), 0);
	assert_int_equal(b, AWS_TARGET_OTHER);
	assert_int_equal(aws_parse_lifecycle(NULL, 0, &b), -EBADMSG);
	assert_int_equal(aws_parse_maintenance(NULL, 0, 0, &(struct aws_maintenance){ 0 }), -EBADMSG);
	memcpy(buf, "[]]", 3);
	{
		struct aws_maintenance m;

		assert_int_equal(aws_parse_maintenance(buf, 2, 0, &m), 0);
		assert_int_equal(m.events.n_events, 0);
		assert_int_equal(aws_parse_maintenance(buf, 3, 0, &m), -EBADMSG);
	}
	memcpy(buf, "<a/>x", 5);
	{
		struct autoscaling_answer a;

		assert_int_equal(autoscaling_parse(buf, 4, &a), 0);
		assert_string_equal(a.root, "a");
		assert_int_equal(autoscaling_parse(buf, 5, &a), -EBADMSG);
		assert_int_equal(autoscaling_parse(NULL, 0, &a), -EBADMSG);
	}

	memcpy(buf, "i-0abc\ni-0def", 13);
	assert_int_equal(provider_parse_name(buf, 7, name, sizeof(name)), 0);
	assert_string_equal(name, "i-0abc");
	assert_int_equal(provider_parse_name(buf, 13, name, sizeof(name)), -EBADMSG);
	/* A destination too small is a refusal, not a truncation. */
	assert_int_equal(provider_parse_name(buf, 6, name, 6), -EBADMSG);
	assert_int_equal(provider_parse_name(buf, 6, name, 7), 0);
	assert_int_equal(aws_parse_token(buf, 6, name, 6), -EBADMSG);
}

/* events/maintenance/history: only the events asked for, over, once each;
 * everything else in it is passed over without a drop. */
static void test_history_parse(void **state)
{
	static const char ids[][EVENT_ID_MAX] = { "instance-event-a", "INSTANCE-EVENT-B", "instance-event-c" };
	static const char doc[] =
		"[{\"NotBefore\":\"21 Jan 2030 09:00:43 GMT\",\"Code\":\"system-reboot\",\"Description\":\"reboot\","
		"\"EventId\":\"instance-event-a\",\"State\":\"completed\"},"
		"{\"NotBefore\":\"22 Jan 2030 09:00:00 GMT\",\"Code\":\"instance-stop\",\"EventId\":\"instance-event-b\","
		"\"State\":\"canceled\"},"
		"{\"Code\":\"system-reboot\",\"EventId\":\"instance-event-a\",\"State\":\"canceled\"},"
		"{\"Code\":\"system-reboot\",\"EventId\":\"instance-event-c\",\"State\":\"active\"},"
		"{\"Code\":\"system-reboot\",\"EventId\":\"instance-event-old\",\"State\":\"completed\"},"
		"{\"Code\":\"nonsense\",\"EventId\":\"instance-event-c\",\"State\":\"completed\"},"
		"42]";
	struct event_list l = { 0 };

	assert_int_equal(aws_parse_maintenance_history(doc, sizeof(doc) - 1, SEC(1800000000), ids, ELEMENTSOF(ids),
						       &l), 0);
	assert_int_equal(l.n_events, 2);
	assert_string_equal(l.events[0].id, "instance-event-a");
	assert_int_equal(l.events[0].end, END_COMPLETED);
	assert_int_equal(l.events[0].type, EVENT_REBOOT);
	assert_int_equal(l.events[0].status, EVENT_SCHEDULED);
	assert_int_equal(l.events[0].not_before_usec, SEC(1895216443));
	assert_int_equal(l.events[0].feed, FEED_AWS_MAINTENANCE);
	assert_int_equal(l.events[0].provider, PROVIDER_AWS);
	assert_false(l.events[0].id_from_first_seen);
	assert_string_equal(l.events[0].description, "system-reboot: reboot");
	assert_string_equal(l.events[1].id, "instance-event-b");
	assert_int_equal(l.events[1].end, END_CANCELED);
	assert_int_equal(l.events[1].type, EVENT_TERMINATE);

	/* At most one event an id asked for; nothing asked, nothing kept. */
	assert_int_equal(aws_parse_maintenance_history(doc, sizeof(doc) - 1, 0, ids, 1, &l), 0);
	assert_int_equal(l.n_events, 1);
	assert_string_equal(l.events[0].id, "instance-event-a");
	assert_int_equal(aws_parse_maintenance_history(doc, sizeof(doc) - 1, 0, ids, 0, &l), 0);
	assert_int_equal(l.n_events, 0);
	assert_int_equal(aws_parse_maintenance_history("[]", 2, 0, ids, 3, &l), 0);
	assert_int_equal(l.n_events, 0);
	/* Not an array: refused, *ret untouched. */
	assert_int_equal(aws_parse_maintenance_history(doc, sizeof(doc) - 1, 0, ids, 1, &l), 0);
	assert_int_equal(aws_parse_maintenance_history("{}", 2, 0, ids, 3, &l), -EBADMSG);
	assert_int_equal(aws_parse_maintenance_history("[]]", 3, 0, ids, 3, &l), -EBADMSG);
	assert_int_equal(aws_parse_maintenance_history(NULL, 0, 0, ids, 3, &l), -EBADMSG);
	assert_int_equal(l.n_events, 1);
	event_list_done(&l);
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

#include "provider-harness.h"

/* What the round builds from a target lifecycle state: a key for the
 * engine to make the id from, and a notice it counts from the first
 * sighting: the hook's heartbeat timeout when the agent completes one (and
 * then an acknowledgement is due), else two minutes. */
static void test_lifecycle_event(void **state)
{
	static const struct {
		enum aws_target_state state;
		const char *key;
		const char *in_description;
	} cases[] = {
		{ AWS_TARGET_TERMINATED, "aws-asg-terminate-", "target lifecycle state Terminated" },
		{ AWS_TARGET_WARMED_TERMINATED, "aws-asg-warmed-terminate-", "Warmed:Terminated" },
		{ AWS_TARGET_WARMED_STOPPED, "aws-asg-warmed-stop-", "being stopped into the warm pool" },
		{ AWS_TARGET_WARMED_HIBERNATED, "aws-asg-warmed-hibernate-", "being hibernated into the warm pool" },
	};
	struct spot_event a, b;
	char long_id[PROVIDER_NAME_MAX + 1], key[EVENT_ID_MAX];

	event_init(&a);
	event_init(&b);
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", AWS_TARGET_TERMINATED, AWS_ASG_NOTICE_SEC,
					     false, &a), 0);
	assert_string_equal(a.id, "aws-asg-terminate-i-0123456789abcdef0");
	assert_true(a.id_from_first_seen);
	assert_int_equal(a.type, EVENT_TERMINATE);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_int_equal(a.provider, PROVIDER_AWS);
	assert_int_equal(a.feed, FEED_AWS_LIFECYCLE);
	assert_false(a.needs_ack);
	assert_int_equal(a.end, END_NONE);
	assert_int_equal(a.duration_sec, -1);
	assert_string_equal(a.source, "User");
	assert_int_equal(a.feed, FEED_AWS_LIFECYCLE);
	assert_false(a.needs_ack);
	assert_int_equal(a.not_before_usec, 0);
	assert_int_equal(a.notice_usec, SEC(AWS_ASG_NOTICE_SEC));
	assert_int_equal(AWS_ASG_NOTICE_SEC, 120);
	assert_string_equal(a.description, "auto scaling: target lifecycle state Terminated");
	/* The engine's own-VM filter matches on the instance id. */
	assert_true(event_names_resource(&a, "i-0123456789abcdef0"));
	assert_true(event_names_resource(&a, "I-0123456789ABCDEF0"));
	assert_false(event_names_resource(&a, "i-0123456789abcdef1"));
	check_round_trip(&a);

	/* Every state that is an eviction: Terminate, its own key. With a
	 * hook, the heartbeat timeout and an acknowledgement due. */
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		assert_int_equal(aws_lifecycle_event("i-1", cases[i].state, 3600, true, &b), 0);
		(void)snprintf(key, sizeof(key), "%si-1", cases[i].key);
		assert_string_equal(b.id, key);
		assert_int_equal(b.type, EVENT_TERMINATE);
		assert_true(b.needs_ack);
		assert_int_equal(b.notice_usec, SEC(3600));
		assert_int_equal(b.feed, FEED_AWS_LIFECYCLE);
		if (!strstr(b.description, cases[i].in_description))
			fail_msg("'%s' lacks '%s'", b.description, cases[i].in_description);
		check_round_trip(&b);
	}
	/* Other states are no event. */
	assert_int_equal(aws_lifecycle_event("i-1", AWS_TARGET_OTHER, 120, false, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event("i-1", _AWS_TARGET_MAX, 120, false, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event("i-1", AWS_TARGET_TERMINATED, 0, false, &b), -EINVAL);

	/* Read again: the same event. Overwriting an event that holds
	 * resources releases them (ASan). */
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", AWS_TARGET_TERMINATED, 120, false, &b), 0);
	assert_true(event_equal(&a, &b));
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", AWS_TARGET_TERMINATED, 120, false, &b), 0);
	assert_int_equal(b.n_resources, 1);

	/* Unusable ids leave the output alone. */
	memset(long_id, 'i', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(aws_lifecycle_event(long_id, AWS_TARGET_TERMINATED, 120, false, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event("", AWS_TARGET_TERMINATED, 120, false, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event(NULL, AWS_TARGET_TERMINATED, 120, false, &b), -EINVAL);
	assert_true(event_equal(&a, &b));
	/* The longest id accepted: cut in the key (which leaves the engine
	 * room for its "-<seconds>"), whole in the resource. */
	long_id[PROVIDER_NAME_MAX - 1] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		assert_int_equal(aws_lifecycle_event(long_id, cases[i].state, 120, false, &b), 0);
		assert_true(event_id_valid(b.id));
		assert_true(strlen(b.id) <= PROVIDER_KEY_MAX - 1);
		assert_true(strlen(b.id) + strlen("-4102444800") < EVENT_ID_MAX);
		assert_true(strncmp(b.id, cases[i].key, strlen(cases[i].key)) == 0);
		assert_true(event_names_resource(&b, long_id));
	}
	event_done(&a);
	event_done(&b);
}

/* The heartbeat period: the configured interval, else a third of the
 * heartbeat timeout within 10 s .. 10 min. */
static void test_heartbeat_period(void **state)
{
	assert_int_equal(aws_heartbeat_period_usec(0, 3600), SEC(600));
	assert_int_equal(aws_heartbeat_period_usec(0, 0), SEC(600));      /* the default timeout */
	assert_int_equal(aws_heartbeat_period_usec(0, 1200), SEC(400));
	assert_int_equal(aws_heartbeat_period_usec(0, 300), SEC(100));
	assert_int_equal(aws_heartbeat_period_usec(0, 30), SEC(10));
	assert_int_equal(aws_heartbeat_period_usec(0, 31), SEC(10));
	assert_int_equal(aws_heartbeat_period_usec(0, 45), SEC(15));
	assert_int_equal(aws_heartbeat_period_usec(0, 7200), SEC(600));
	assert_int_equal(aws_heartbeat_period_usec(5, 3600), SEC(5));
	assert_int_equal(aws_heartbeat_period_usec(7200, 30), SEC(7200));
}

/* The identity items: which is asked next, and when credentials are due. */
static void test_identity_next(void **state)
{
	struct aws_identity id = { 0 };
	struct imds_reply r404 = { .result = IMDS_RESULT_OK, .status = 404, .body = "", .error = "" };
	struct imds_reply r = { .result = IMDS_RESULT_OK, .status = 200, .error = "" };
	uint64_t now = SEC(1795767600);
	char path[256];

	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_REGION);
	assert_int_equal(aws_item_path(&id, AWS_ITEM_REGION, path, sizeof(path)), 0);
	assert_string_equal(path, "/latest/meta-data/placement/region");
	assert_true(aws_item_404_is_answer(AWS_ITEM_REGION));
	/* No placement/region: the identity document. */
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_REGION, &r404), 0);
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_DOCUMENT);
	assert_int_equal(aws_item_path(&id, AWS_ITEM_DOCUMENT, path, sizeof(path)), 0);
	assert_string_equal(path, "/latest/dynamic/instance-identity/document");
	r.body = "{\"region\": \"eu-west-1\"}";
	r.len = strlen(r.body);
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_DOCUMENT, &r), 0);
	assert_string_equal(id.region, "eu-west-1");

	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_GROUP);
	assert_int_equal(aws_item_path(&id, AWS_ITEM_GROUP, path, sizeof(path)), 0);
	assert_string_equal(path, "/latest/meta-data/tags/instance/aws:autoscaling:groupName");
	/* Tags off: the group comes from the API, the role is next. */
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_GROUP, &r404), 0);
	assert_true(id.tags_off);
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_ROLE);
	assert_false(aws_item_404_is_answer(AWS_ITEM_ROLE));
	assert_int_equal(aws_item_path(&id, AWS_ITEM_CREDENTIALS, path, sizeof(path)), -EINVAL);
	r.body = "spot-agent-role";
	r.len = strlen(r.body);
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_ROLE, &r), 0);
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_CREDENTIALS);
	assert_int_equal(aws_item_path(&id, AWS_ITEM_CREDENTIALS, path, sizeof(path)), 0);
	assert_string_equal(path, "/latest/meta-data/iam/security-credentials/spot-agent-role");
	r.body = "garbage";
	r.len = strlen(r.body);
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_CREDENTIALS, &r), -EBADMSG);
	assert_string_equal(id.creds.key_id, "");

	/* Credentials expiring in an hour: not due until 5 min before. */
	r.body = "{\"AccessKeyId\":\"ASIAQWERTYUIOPASDFGH\",\"SecretAccessKey\":\"s/k+\","
		 "\"Token\":\"tok\",\"Expiration\":\"2026-11-27T09:20:00Z\"}";
	r.len = strlen(r.body);
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_CREDENTIALS, &r), 0);
	assert_int_equal(id.creds.expiration_wall_usec, now + SEC(3600));
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_NONE);
	assert_int_equal(aws_identity_next(&id, now + SEC(3600 - 301)), AWS_ITEM_NONE);
	assert_int_equal(aws_identity_next(&id, now + SEC(3600 - 300)), AWS_ITEM_CREDENTIALS);
	assert_int_equal(aws_identity_next(&id, now + SEC(4000)), AWS_ITEM_CREDENTIALS);
	/* ExpiredToken from the API: due at once. */
	id.creds_stale = true;
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_CREDENTIALS);
	assert_int_equal(aws_identity_take(&id, AWS_ITEM_CREDENTIALS, &r), 0);
	assert_false(id.creds_stale);
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_NONE);
	/* Dropped (the role's credentials answered 404): the role again. */
	aws_identity_drop_credentials(&id);
	assert_int_equal(aws_identity_next(&id, now), AWS_ITEM_ROLE);
	aws_identity_done(&id);
	assert_string_equal(aws_item_name(AWS_ITEM_ROLE), "iam/security-credentials/");
	assert_string_equal(aws_item_name(_AWS_ITEM_MAX), "");
}

/* The Query API forms and the endpoint. */
static void test_autoscaling_form(void **state)
{
	const char *const fields[] = {
		"AutoScalingGroupName", "web tier/blue & green",
		"LifecycleHookName", "drain_hook-1",
		"InstanceId", "i-0123456789abcdef0",
		"LifecycleActionResult", "CONTINUE",
		NULL,
	};
	char url[AUTOSCALING_URL_MAX], *body;

	body = autoscaling_form("CompleteLifecycleAction", fields);
	assert_string_equal(body, "Action=CompleteLifecycleAction&Version=2011-01-01"
				  "&AutoScalingGroupName=web%20tier%2Fblue%20%26%20green"
				  "&LifecycleHookName=drain_hook-1&InstanceId=i-0123456789abcdef0"
				  "&LifecycleActionResult=CONTINUE");
	free(body);
	body = autoscaling_form("DescribeAutoScalingInstances", NULL);
	assert_string_equal(body, "Action=DescribeAutoScalingInstances&Version=2011-01-01");
	free(body);
	body = autoscaling_form("X", (const char *const[]){ "K", "sp\xc3\xa4t~._-", NULL });
	assert_string_equal(body, "Action=X&Version=2011-01-01&K=sp%C3%A4t~._-");
	free(body);

	assert_int_equal(autoscaling_default_url("eu-west-1", url, sizeof(url)), 0);
	assert_string_equal(url, "https://autoscaling.eu-west-1.amazonaws.com/");
	assert_int_equal(autoscaling_default_url("cn-north-1", url, sizeof(url)), 0);
	assert_string_equal(url, "https://autoscaling.cn-north-1.amazonaws.com.cn/");
	assert_int_equal(autoscaling_default_url("", url, sizeof(url)), -EINVAL);
	assert_int_equal(autoscaling_default_url("eu-west-1", url, 20), -EINVAL);
}

/* An answer of the API as one line, AWS's code and message in it. */
static void test_autoscaling_outcome(void **state)
{
	static const char error_doc[] =
		"<ErrorResponse xmlns=\"http://autoscaling.amazonaws.com/doc/2011-01-01/\"><Error><Type>Sender</Type>"
		"<Code>ValidationError</Code><Message>No active Lifecycle Action found with instance ID "
		"i-0123456789abcdef0</Message></Error><RequestId>r</RequestId></ErrorResponse>";
	struct imds_reply r = { .result = IMDS_RESULT_HTTP_ERROR, .status = 400, .body = error_doc,
				.len = sizeof(error_doc) - 1, .error = "HTTP 400" };
	char line[IMDS_ERROR_MAX];
	bool expired = true;

	assert_int_equal(autoscaling_outcome("CompleteLifecycleAction", &r, line, sizeof(line), &expired, NULL),
			 IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(line, "CompleteLifecycleAction: ValidationError: No active Lifecycle Action found "
				  "with instance ID i-0123456789abcdef0");
	assert_false(expired);

	r.body = "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token included in the "
		 "request is expired</Message></Error></ErrorResponse>";
	r.len = strlen(r.body);
	r.status = 403;
	assert_int_equal(autoscaling_outcome("X", &r, line, sizeof(line), &expired, NULL), IMDS_RESULT_HTTP_ERROR);
	assert_true(expired);
	r.body = "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>";
	r.len = strlen(r.body);
	assert_int_equal(autoscaling_outcome("X", &r, line, sizeof(line), &expired, NULL), IMDS_RESULT_THROTTLED);
	assert_string_equal(line, "X: Throttling: Rate exceeded");
	assert_false(expired);
	/* No document: the transport's line. */
	r.body = "<html>Bad Gateway";
	r.len = strlen(r.body);
	r.status = 502;
	r.error = "HTTP 502";
	assert_int_equal(autoscaling_outcome("X", &r, line, sizeof(line), NULL, NULL), IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(line, "X: HTTP 502");
	r = (struct imds_reply){ .result = IMDS_RESULT_TIMEOUT, .body = "", .error = "timed out after 10.0 s" };
	assert_int_equal(autoscaling_outcome("X", &r, line, sizeof(line), NULL, NULL), IMDS_RESULT_TIMEOUT);
	assert_string_equal(line, "X: timed out after 10.0 s");
	r = (struct imds_reply){ .result = IMDS_RESULT_OK, .status = 200, .body = "", .error = "" };
	assert_int_equal(autoscaling_outcome("X", &r, line, sizeof(line), NULL, NULL), IMDS_RESULT_OK);
	assert_string_equal(line, "");
}

/* ---- rounds against the fake metadata service ---- */

#define TOKEN_PATH       "/latest/api/token"
#define ID_PATH          "/latest/meta-data/instance-id"
#define ACTION_PATH      "/latest/meta-data/spot/instance-action"
#define LIFECYCLE_PATH   "/latest/meta-data/autoscaling/target-lifecycle-state"
#define REBALANCE_PATH   "/latest/meta-data/events/recommendations/rebalance"
#define MAINTENANCE_PATH "/latest/meta-data/events/maintenance/scheduled"
#define HISTORY_PATH     "/latest/meta-data/events/maintenance/history"
#define REGION_PATH      "/latest/meta-data/placement/region"
#define DOCUMENT_PATH    "/latest/dynamic/instance-identity/document"
#define GROUP_PATH       "/latest/meta-data/tags/instance/aws:autoscaling:groupName"
#define ROLE_PATH        "/latest/meta-data/iam/security-credentials/"
#define CREDS_PATH       "/latest/meta-data/iam/security-credentials/spot-agent-role"
#define ASG_PATH         "/autoscaling/"
#define ASG_COMPLETE     ASG_PATH "?Action=CompleteLifecycleAction"
#define ASG_HEARTBEAT    ASG_PATH "?Action=RecordLifecycleActionHeartbeat"
#define ASG_DESCRIBE     ASG_PATH "?Action=DescribeAutoScalingInstances"
#define INSTANCE_ID      "i-0123456789abcdef0"
#define KEY_ID           "ASIAQWERTYUIOPASDFGH"
#define SESSION_TOKEN    "IQoJb3JpZ2luX2VjEJr//////////wEaCWV1LXdlc3QtMSJHMEUCIQD+session+token="
#define T2030            UINT64_C(1893456000)   /* 2030-01-01T00:00:00Z */
#define ASG_NS           "http://autoscaling.amazonaws.com/doc/2011-01-01/"
#define AWS_FEEDS_ALL    ((1u << FEED_AWS_SPOT) | (1u << FEED_AWS_LIFECYCLE) | (1u << FEED_AWS_MAINTENANCE))

static const char *const item_paths[] = {
	ID_PATH, ACTION_PATH, LIFECYCLE_PATH, REBALANCE_PATH, MAINTENANCE_PATH, HISTORY_PATH,
	REGION_PATH, DOCUMENT_PATH, GROUP_PATH, ROLE_PATH, CREDS_PATH,
};

/* IMDSv2 as EC2 serves it: items only with the current token (token NULL:
 * IMDSv1, no token needed). */
static void serve_token(struct fake_imds *f, const char *token)
{
	char require[128] = "";

	fake_set(f, "PUT", TOKEN_PATH, 200, token ? token : "");
	FAKE_EDIT(f, "PUT", TOKEN_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token-ttl-seconds: 21600");
		  R->reject_status = 400);
	if (token)
		(void)snprintf(require, sizeof(require), "X-aws-ec2-metadata-token: %s", token);
	for (size_t i = 0; i < ELEMENTSOF(item_paths); i++) {
		struct fake_route *route;

		pthread_mutex_lock(&f->lock);
		route = fake_find(f, "GET", item_paths[i]);
		if (route) {
			(void)strscpy(route->require, sizeof(route->require), require);
			route->reject_status = 401;
		}
		pthread_mutex_unlock(&f->lock);
	}
}

static char *credentials_doc(uint64_t expiration_wall_usec)
{
	char when[EVENT_TIME_MAX];

	return xasprintf("{\n  \"Code\" : \"Success\",\n  \"LastUpdated\" : \"2026-12-07T10:00:00Z\",\n"
			 "  \"Type\" : \"AWS-HMAC\",\n  \"AccessKeyId\" : \"" KEY_ID "\",\n"
			 "  \"SecretAccessKey\" : \"wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\",\n"
			 "  \"Token\" : \"" SESSION_TOKEN "\",\n  \"Expiration\" : \"%s\"\n}",
			 event_format_time(when, sizeof(when), expiration_wall_usec));
}

/* An instance with nothing pending, in an Auto Scaling group with tags on
 * and a role whose credentials expire in an hour. */
static void serve_quiet(struct fake_imds *f, const char *token)
{
	char *creds = credentials_doc(now_usec(CLOCK_REALTIME) + SEC(3600));

	fake_set(f, "GET", ID_PATH, 200, INSTANCE_ID "\n");
	fake_set(f, "GET", ACTION_PATH, 404, "not found");
	fake_set(f, "GET", LIFECYCLE_PATH, 404, "not found");
	fake_set(f, "GET", REBALANCE_PATH, 404, "not found");
	fake_set(f, "GET", MAINTENANCE_PATH, 200, "[]");
	fake_set(f, "GET", HISTORY_PATH, 200, "[]");
	fake_set(f, "GET", REGION_PATH, 200, "eu-west-1");
	fake_set(f, "GET", DOCUMENT_PATH, 200, "{\"region\" : \"eu-west-2\"}");
	fake_set(f, "GET", GROUP_PATH, 200, "my-asg");
	fake_set(f, "GET", ROLE_PATH, 200, "spot-agent-role");
	fake_set(f, "GET", CREDS_PATH, 200, creds);
	fake_set(f, "POST", ASG_COMPLETE, 200,
		 "<CompleteLifecycleActionResponse xmlns=\"" ASG_NS "\"><CompleteLifecycleActionResult/>"
		 "<ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></CompleteLifecycleActionResponse>");
	fake_set(f, "POST", ASG_HEARTBEAT, 200,
		 "<RecordLifecycleActionHeartbeatResponse xmlns=\"" ASG_NS "\"><RecordLifecycleActionHeartbeatResult/>"
		 "<ResponseMetadata><RequestId>2</RequestId></ResponseMetadata></RecordLifecycleActionHeartbeatResponse>");
	fake_set(f, "POST", ASG_DESCRIBE, 200,
		 "<DescribeAutoScalingInstancesResponse xmlns=\"" ASG_NS "\"><DescribeAutoScalingInstancesResult>"
		 "<AutoScalingInstances><member><AutoScalingGroupName>described-asg</AutoScalingGroupName>"
		 "<InstanceId>" INSTANCE_ID "</InstanceId><LifecycleState>Terminating:Wait</LifecycleState>"
		 "</member></AutoScalingInstances></DescribeAutoScalingInstancesResult>"
		 "</DescribeAutoScalingInstancesResponse>");
	serve_token(f, token);
	free(creds);
}

static struct provider_handle *new_aws_cfg(struct world *w, const struct provider_config *cfg_in)
{
	struct provider_config cfg = *cfg_in;
	struct provider_handle *p = NULL;

	cfg.base_url = w->fake.url;
	assert_int_equal(provider_new(PROVIDER_AWS, w->imds, &cfg, &p), 0);
	return p;
}

static struct provider_handle *new_aws(struct world *w)
{
	struct provider_config cfg;
	struct provider_handle *p;

	provider_config_init(&cfg);
	p = new_aws_cfg(w, &cfg);
	assert_false(provider_can_approve(p));
	assert_int_equal(provider_approve(p, &(struct provider_ack){ .event_id = "x", .feed = FEED_AWS_LIFECYCLE },
					  SEC(1), NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat(p, NULL, NULL), -EOPNOTSUPP);
	assert_int_equal(provider_heartbeat_period_usec(p), 0);
	return p;
}

/* A provider that completes the lifecycle hook "drain-hook" through the
 * fake's Auto Scaling API. */
static struct provider_handle *new_aws_hooked(struct world *w, uint64_t heartbeat_timeout_sec)
{
	struct provider_config cfg;
	char *url = xasprintf("%s/autoscaling", w->fake.url);
	struct provider_handle *p;

	provider_config_init(&cfg);
	cfg.aws_lifecycle_hook = "drain-hook";
	cfg.aws_autoscaling_url = url;
	if (heartbeat_timeout_sec)
		cfg.aws_heartbeat_timeout_sec = heartbeat_timeout_sec;
	p = new_aws_cfg(w, &cfg);
	free(url);
	assert_true(provider_can_approve(p));
	return p;
}

/* A round costs what it sends: the token when due, the instance id while
 * unknown, the spot notice, and as many of the optional items as the
 * budget of 5 leaves room for. */
static void test_round_cost(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	FAKE_EDIT(&w.fake, "GET", ID_PATH, R->first_status = 500; R->first_n = 1);
	p = new_aws(&w);

	/* Token and id due, which leaves room for two optional items; the id
	 * fails, and the round with it: the spot notice is not asked, the
	 * optional items are. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 4);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "instance-id: HTTP 500");
	assert_false(c.had_vm_name);
	assert_int_equal(c.feeds_answered, 0);
	assert_int_equal(fake_hits(&w.fake, "GET", ACTION_PATH), 0);
	assert_int_equal(fake_hits(&w.fake, "GET", MAINTENANCE_PATH), 0);

	/* The token is held: the id, the notice, the three optional items. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.vm_name, INSTANCE_ID);
	assert_int_equal(c.events.n_events, 0);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	assert_string_equal(c.optional_error, "");
	assert_false(c.rebalance);
	assert_false(c.imds_v1);
	assert_string_equal(c.imds_v1_change, "");
	assert_int_equal(c.incarnation, -1);
	assert_int_equal(c.n_drops, 0);
	assert_string_equal(c.identity_error, "");

	/* Token and id known: the four items. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 4);
	assert_int_equal(provider_round_cost(p), 4);
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 0);
	assert_int_equal(w.count.sent[IMDS_SLOT_SIDE], 8);
	/* The 404s that mean "nothing listed" are answers, not errors: the
	 * one HTTP error is the failing instance id. */
	assert_int_equal(w.count.results[IMDS_RESULT_HTTP_ERROR], 1);
	assert_int_equal(w.count.results[IMDS_RESULT_OK], 12);

	assert_int_equal(fake_hits(&w.fake, "PUT", TOKEN_PATH), 1);
	assert_int_equal(fake_hits(&w.fake, "GET", ID_PATH), 2);
	assert_int_equal(fake_hits(&w.fake, "GET", REBALANCE_PATH), 3);
	/* No lifecycle hook: no identity item. */
	assert_int_equal(fake_hits(&w.fake, "GET", REGION_PATH), 0);
	assert_true(fake_last_has(&w.fake, "GET", ACTION_PATH, "X-aws-ec2-metadata-token: TOKEN-A"));
	assert_true(fake_last_has(&w.fake, "GET", MAINTENANCE_PATH, "X-aws-ec2-metadata-token: TOKEN-A"));
	assert_true(fake_last_has(&w.fake, "PUT", TOKEN_PATH,
				  "X-aws-ec2-metadata-token-ttl-seconds: 21600"));
	assert_int_equal(fake_n_log(&w.fake), 13);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A spot notice whose time moves from answer to answer (AWS's own mock
 * does that) is one event: the same key, the time as NotBefore. */
static void test_spot_key_stable(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct spot_event *ev;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	p = new_aws(&w);

	for (unsigned i = 0; i < 3; i++) {
		char doc[128];

		(void)snprintf(doc, sizeof(doc), "{\"action\": \"terminate\", \"time\": \"2030-01-01T00:00:%02uZ\"}", 7 * i);
		fake_set(&w.fake, "GET", ACTION_PATH, 200, doc);
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_int_equal(c.events.n_events, 1);
		ev = &c.events.events[0];
		assert_string_equal(ev->id, "aws-spot-terminate");
		assert_true(ev->id_from_first_seen);
		assert_int_equal(ev->notice_usec, 0);
		assert_int_equal(ev->not_before_usec, SEC(T2030 + 7 * i));
		assert_int_equal(ev->type, EVENT_PREEMPT);
		assert_int_equal(ev->status, EVENT_SCHEDULED);
		assert_int_equal(ev->provider, PROVIDER_AWS);
		assert_int_equal(ev->feed, FEED_AWS_SPOT);
		assert_false(ev->needs_ack);
		assert_true(event_names_resource(ev, INSTANCE_ID));
	}

	/* The Auto Scaling group terminates it as well: two events. Without
	 * a lifecycle hook, two minutes from the first sighting, nothing to
	 * acknowledge. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "Terminated\n");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 2);
	assert_string_equal(c.events.events[0].id, "aws-spot-terminate");
	ev = &c.events.events[1];
	assert_string_equal(ev->id, "aws-asg-terminate-" INSTANCE_ID);
	assert_true(ev->id_from_first_seen);
	assert_int_equal(ev->type, EVENT_TERMINATE);
	assert_int_equal(ev->feed, FEED_AWS_LIFECYCLE);
	assert_false(ev->needs_ack);
	assert_int_equal(ev->not_before_usec, 0);
	assert_int_equal(ev->notice_usec, SEC(AWS_ASG_NOTICE_SEC));
	assert_true(event_names_resource(ev, INSTANCE_ID));

	/* A state that is not an eviction, and no spot notice: nothing. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "InService");
	fake_set(&w.fake, "GET", ACTION_PATH, 404, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(c.had_events);
	assert_int_equal(c.events.n_events, 0);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);

	/* An answer that is not a notice fails the round, named. */
	fake_set(&w.fake, "GET", ACTION_PATH, 200, "{\"action\":\"explode\"}");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(c.error, "spot/instance-action: unreadable answer");

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* Warm pools: stopped, hibernated or terminated out of the group is an
 * eviction; running in the pool, in service and the rest are not. */
static void test_warm_pool(void **state)
{
	static const struct {
		const char *state;
		const char *key;        /* NULL: no event */
		const char *in_description;
	} cases[] = {
		{ "Warmed:Terminated", "aws-asg-warmed-terminate-" INSTANCE_ID, "Warmed:Terminated" },
		{ "Warmed:Stopped", "aws-asg-warmed-stop-" INSTANCE_ID, "being stopped into the warm pool" },
		{ "Warmed:Hibernated", "aws-asg-warmed-hibernate-" INSTANCE_ID, "hibernated into the warm pool" },
		{ "Warmed:Running", NULL, NULL },
		{ "InService", NULL, NULL },
		{ "Standby", NULL, NULL },
		{ "Detached", NULL, NULL },
		{ "Warmed:Pending:Wait", NULL, NULL },
	};
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, cases[i].state);
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_true(c.feeds_answered & (1u << FEED_AWS_LIFECYCLE));
		if (!cases[i].key) {
			assert_int_equal(c.events.n_events, 0);
			continue;
		}
		assert_int_equal(c.events.n_events, 1);
		assert_string_equal(c.events.events[0].id, cases[i].key);
		assert_int_equal(c.events.events[0].type, EVENT_TERMINATE);
		assert_int_equal(c.events.events[0].feed, FEED_AWS_LIFECYCLE);
		if (!strstr(c.events.events[0].description, cases[i].in_description))
			fail_msg("'%s' lacks '%s'", c.events.events[0].description, cases[i].in_description);
	}
	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* The rebalance recommendation is reported with every round; when its
 * request fails, the last answer stands. */
static void test_rebalance(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	p = new_aws(&w);

	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_false(c.rebalance);
	fake_set(&w.fake, "GET", REBALANCE_PATH, 200, "{\"noticeTime\": \"2030-01-01T00:00:00Z\"}");
	for (int i = 0; i < 2; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_true(c.rebalance);
		/* Reported, never an event. */
		assert_int_equal(c.events.n_events, 0);
	}
	fake_set(&w.fake, "GET", REBALANCE_PATH, 500, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.optional_error, "events/recommendations/rebalance: HTTP 500");
	assert_true(c.rebalance);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	fake_set(&w.fake, "GET", REBALANCE_PATH, 404, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_false(c.rebalance);
	assert_string_equal(c.optional_error, "");

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* Each optional item failing (an error status, a stall, garbage) never
 * discards the essential answer: the round succeeds without that feed,
 * names the item, and hands on what the others said. */
static void test_optional_items_fail(void **state)
{
	static const struct {
		const char *path;
		int status;
		const char *body;
		unsigned delay_ms;
		const char *error;             /* the optional_error it gives */
		uint32_t missing;              /* the feed left out */
	} cases[] = {
		{ LIFECYCLE_PATH, 500, "", 0, "autoscaling/target-lifecycle-state: HTTP 500", 1u << FEED_AWS_LIFECYCLE },
		{ LIFECYCLE_PATH, 200, "Terminated", 900, "autoscaling/target-lifecycle-state: timed out after 0.",
		  1u << FEED_AWS_LIFECYCLE },
		{ LIFECYCLE_PATH, 200, "two words", 0, "autoscaling/target-lifecycle-state: unreadable answer",
		  1u << FEED_AWS_LIFECYCLE },
		{ REBALANCE_PATH, 503, "", 0, "events/recommendations/rebalance: HTTP 503", 0 },
		{ REBALANCE_PATH, 200, "{}", 900, "events/recommendations/rebalance: timed out after 0.", 0 },
		{ MAINTENANCE_PATH, 500, "", 0, "events/maintenance/scheduled: HTTP 500", 1u << FEED_AWS_MAINTENANCE },
		{ MAINTENANCE_PATH, 200, "[]", 900, "events/maintenance/scheduled: timed out after 0.",
		  1u << FEED_AWS_MAINTENANCE },
		{ MAINTENANCE_PATH, 200, "{\"not\": \"a list\"}", 0, "events/maintenance/scheduled: unreadable answer",
		  1u << FEED_AWS_MAINTENANCE },
		{ MAINTENANCE_PATH, 429, "", 0, "events/maintenance/scheduled: HTTP 429 (throttled)",
		  1u << FEED_AWS_MAINTENANCE },
	};
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	fake_set(&w.fake, "GET", ACTION_PATH, 200, "{\"action\":\"stop\",\"time\":\"2030-01-01T00:00:00Z\"}");
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "Terminated");
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200,
		 "[{\"NotBefore\":\"1 Feb 2030 10:00:00 GMT\",\"Code\":\"system-reboot\",\"EventId\":\"instance-event-1\","
		 "\"State\":\"active\"}]");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	/* The first round has no room for the maintenance list. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(c.events.n_events, 2);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL & ~(1u << FEED_AWS_MAINTENANCE));
	assert_string_equal(c.optional_error, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 3);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		struct fake_route saved = { 0 };
		uint32_t feeds = AWS_FEEDS_ALL & ~cases[i].missing;
		size_t want = 1 + !!(feeds & (1u << FEED_AWS_LIFECYCLE)) + !!(feeds & (1u << FEED_AWS_MAINTENANCE));

		FAKE_EDIT(&w.fake, "GET", cases[i].path, saved = *R; saved.body = xstrdup(R->body));
		fake_set(&w.fake, "GET", cases[i].path, cases[i].status, cases[i].body);
		FAKE_EDIT(&w.fake, "GET", cases[i].path, R->delay_ms = cases[i].delay_ms);
		/* The long first-call timeout is Azure's alone: offered here,
		 * it changes nothing. */
		one_round_first(&w, p, 400 * USEC_PER_MSEC, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_int_equal(cost, sent);
		if (strncmp(c.optional_error, cases[i].error, strlen(cases[i].error)) != 0)
			fail_msg("case %zu: optional_error '%s', expected '%s'", i, c.optional_error, cases[i].error);
		assert_int_equal(c.feeds_answered, feeds);
		/* The spot notice always; the others when their feed answered. */
		assert_int_equal(c.events.n_events, want);
		assert_int_equal(c.events.events[0].feed, FEED_AWS_SPOT);
		fake_set(&w.fake, "GET", cases[i].path, saved.status, saved.body);
		FAKE_EDIT(&w.fake, "GET", cases[i].path, R->delay_ms = 0);
		free(saved.body);
	}

	/* All three at once: each named. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 500, "");
	fake_set(&w.fake, "GET", REBALANCE_PATH, 502, "");
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 503, "");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.optional_error, "autoscaling/target-lifecycle-state: HTTP 500; "
					      "events/recommendations/rebalance: HTTP 502; "
					      "events/maintenance/scheduled: HTTP 503");
	assert_int_equal(c.feeds_answered, 1u << FEED_AWS_SPOT);
	assert_int_equal(c.events.n_events, 1);

	/* And the other way round: the essential item fails, the optional
	 * ones answer; the round fails once they are in. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "Terminated");
	fake_set(&w.fake, "GET", REBALANCE_PATH, 404, "");
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200, "[]");
	fake_set(&w.fake, "GET", ACTION_PATH, 500, "");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "spot/instance-action: HTTP 500");
	assert_string_equal(c.optional_error, "");
	assert_false(c.had_events);
	assert_int_equal(sent, 4);
	FAKE_EDIT(&w.fake, "GET", ACTION_PATH, R->delay_ms = 900);
	one_round_first(&w, p, 400 * USEC_PER_MSEC, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_TIMEOUT);
	assert_true(strncmp(c.error, "spot/instance-action: timed out after 0.", 40) == 0);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* Scheduled maintenance: EC2's own ids, this instance as the resource,
 * the provider's word that a notice is over. */
static void test_maintenance_round(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 200,
		 "[{\"NotBefore\":\"21 Jan 2030 09:00:43 GMT\",\"Code\":\"system-reboot\",\"Description\":\"scheduled reboot\","
		 "\"EventId\":\"instance-event-0d59937288b749b32\",\"NotAfter\":\"21 Jan 2030 09:17:23 GMT\",\"State\":\"active\"},"
		 "{\"NotBefore\":\"22 Jan 2030 09:00:00 GMT\",\"Code\":\"instance-retirement\",\"EventId\":\"instance-event-2\","
		 "\"State\":\"canceled\"},{\"Code\":\"nonsense\",\"EventId\":\"instance-event-3\",\"State\":\"active\"}]");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);     /* token and id: no room for it */
	assert_int_equal(c.events.n_events, 0);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(c.events.n_events, 2);
	assert_string_equal(c.events.events[0].id, "instance-event-0d59937288b749b32");
	assert_false(c.events.events[0].id_from_first_seen);
	assert_int_equal(c.events.events[0].type, EVENT_REBOOT);
	assert_int_equal(c.events.events[0].end, END_NONE);
	assert_int_equal(c.events.events[0].feed, FEED_AWS_MAINTENANCE);
	assert_int_equal(c.events.events[0].not_before_usec, SEC(1895216443));
	assert_string_equal(c.events.events[0].description, "system-reboot: scheduled reboot");
	assert_true(event_names_resource(&c.events.events[0], INSTANCE_ID));
	assert_string_equal(c.events.events[1].id, "instance-event-2");
	assert_int_equal(c.events.events[1].type, EVENT_TERMINATE);
	assert_int_equal(c.events.events[1].end, END_CANCELED);
	assert_true(event_names_resource(&c.events.events[1], INSTANCE_ID));
	/* The entry it could not use is reported as a drop. */
	assert_int_equal(c.n_drops, 1);
	assert_string_equal(c.drops[0].id, "instance-event-3");
	assert_string_equal(c.drops[0].reason, "unknown Code 'nonsense'");

	/* 404 is "nothing scheduled" too. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 404, "");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(c.events.n_events, 0);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	assert_string_equal(c.optional_error, "");

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

#define MAINT_A "{\"NotBefore\":\"21 Jan 2030 09:00:43 GMT\",\"Code\":\"system-reboot\",\"Description\":" \
	"\"scheduled reboot\",\"EventId\":\"instance-event-0d59937288b749b32\",\"State\":\"%s\"}"
#define MAINT_B "{\"NotBefore\":\"22 Jan 2030 09:00:00 GMT\",\"Code\":\"instance-stop\",\"EventId\":" \
	"\"instance-event-2\",\"State\":\"%s\"}"
#define MAINT_OLD "{\"NotBefore\":\"1 Jan 2029 09:00:00 GMT\",\"Code\":\"system-reboot\",\"EventId\":" \
	"\"instance-event-old\",\"State\":\"completed\"}"

/* Sets events/maintenance/scheduled or .../history to a list. */
static void serve_maintenance(struct fake_imds *f, const char *path, const char *fmt, ...) _printf_(3, 4);
static void serve_maintenance(struct fake_imds *f, const char *path, const char *fmt, ...)
{
	char body[1024];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(body, sizeof(body), fmt, ap);
	va_end(ap);
	fake_set(f, "GET", path, 200, body);
}

/* The maintenance event of a round with id, or NULL. */
static const struct spot_event *find_event(const struct capture *c, const char *id)
{
	for (size_t i = 0; i < c->events.n_events; i++)
		if (strcmp(c->events.events[i].id, id) == 0)
			return &c->events.events[i];
	return NULL;
}

/* An event EC2 completes or cancels leaves events/maintenance/scheduled
 * for .../history: the history is asked once, in the next round, and the
 * event handed once with its end, as the list would have said it. */
static void test_maintenance_history(void **state)
{
	struct capture c = { 0 };
	const struct spot_event *ev;
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "," MAINT_B "]", "active", "active");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_OLD "]");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);     /* token and id: no room for the list */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 2);

	/* Completed: gone from the list, in the history. The round that sees
	 * it gone did not know it would be: no history yet. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_OLD "," MAINT_A "]", "completed");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 4);
	assert_int_equal(c.events.n_events, 1);
	assert_string_equal(c.events.events[0].id, "instance-event-2");
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 0);
	/* The next asks it, after the list: the event, over, once. The old
	 * event of the history is none of this agent's business. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 1);
	assert_true(fake_last_has(&w.fake, "GET", HISTORY_PATH, "X-aws-ec2-metadata-token: TOKEN-A"));
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	assert_string_equal(c.optional_error, "");
	assert_int_equal(c.n_drops, 0);
	assert_int_equal(c.events.n_events, 2);
	assert_string_equal(c.events.events[0].id, "instance-event-2");
	assert_int_equal(c.events.events[0].end, END_NONE);
	ev = &c.events.events[1];
	assert_string_equal(ev->id, "instance-event-0d59937288b749b32");
	assert_false(ev->id_from_first_seen);
	assert_int_equal(ev->end, END_COMPLETED);
	assert_int_equal(ev->type, EVENT_REBOOT);
	assert_int_equal(ev->status, EVENT_SCHEDULED);
	assert_int_equal(ev->not_before_usec, SEC(1895216443));
	assert_int_equal(ev->feed, FEED_AWS_MAINTENANCE);
	assert_int_equal(ev->provider, PROVIDER_AWS);
	assert_string_equal(ev->description, "system-reboot: scheduled reboot");
	assert_true(event_names_resource(ev, INSTANCE_ID));
	for (int i = 0; i < 2; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, 4);
		assert_int_equal(sent, 4);
		assert_int_equal(c.events.n_events, 1);
		assert_string_equal(c.events.events[0].id, "instance-event-2");
	}
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 1);

	/* Canceled: the same, its end canceled. */
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 404, "");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_A "," MAINT_B "]", "completed", "canceled");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 0);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 1);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 2);
	assert_int_equal(c.events.n_events, 1);
	ev = &c.events.events[0];
	assert_string_equal(ev->id, "instance-event-2");
	assert_int_equal(ev->end, END_CANCELED);
	assert_int_equal(ev->type, EVENT_TERMINATE);
	assert_int_equal(ev->not_before_usec, SEC(1895302800));
	assert_int_equal(ev->feed, FEED_AWS_MAINTENANCE);
	assert_true(event_names_resource(ev, INSTANCE_ID));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(c.events.n_events, 0);

	/* Gone from the list and not in the history: nothing to say, the
	 * history is not asked again. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 1);
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[]");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_OLD "]");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(c.events.n_events, 0);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 3);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 3);

	/* Back in the list before the history was asked: not looked up, the
	 * list says. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[]");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_B "]", "canceled");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);     /* counted as the round started */
	assert_int_equal(sent, 5);
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(c.events.events[0].end, END_NONE);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A history that fails or cannot be read is an optional failure: the spot
 * notice and the list are handed as ever, and it is not asked again for
 * the same events. */
static void test_maintenance_history_fails(void **state)
{
	static const struct {
		int status;
		const char *body;
		const char *error;
	} cases[] = {
		{ 500, "", "events/maintenance/history: HTTP 500" },
		{ 200, "{\"not\": \"a list\"}", "events/maintenance/history: unreadable answer" },
		{ 429, "", "events/maintenance/history: HTTP 429 (throttled)" },
	};
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	fake_set(&w.fake, "GET", ACTION_PATH, 200, "{\"action\":\"terminate\",\"time\":\"2030-01-01T00:00:00Z\"}");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "," MAINT_B "]", "active", "active");
		fake_set(&w.fake, "GET", HISTORY_PATH, cases[i].status, cases[i].body);
		serve_token(&w.fake, "TOKEN-A");
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.events.n_events, 3);
		serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
		serve_token(&w.fake, "TOKEN-A");
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.events.n_events, 2);

		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, 5);
		assert_int_equal(sent, 5);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		if (strcmp(c.optional_error, cases[i].error) != 0)
			fail_msg("case %zu: optional_error '%s', expected '%s'", i, c.optional_error, cases[i].error);
		assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
		assert_int_equal(c.events.n_events, 2);
		assert_string_equal(c.events.events[0].id, "aws-spot-terminate");
		assert_int_equal(c.events.events[0].feed, FEED_AWS_SPOT);
		assert_string_equal(c.events.events[1].id, "instance-event-2");
		assert_int_equal(c.events.events[1].end, END_NONE);
		assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), (unsigned)i + 1);

		/* Asked once: the next round is back to four, without error. */
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, 4);
		assert_int_equal(sent, 4);
		assert_string_equal(c.optional_error, "");
		assert_int_equal(c.events.n_events, 2);
		assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), (unsigned)i + 1);
	}

	/* The list failing in the round that asks the history: the history's
	 * word waits for a round whose list answers. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "," MAINT_B "]", "active", "active");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_A "]", "completed");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	fake_set(&w.fake, "GET", MAINTENANCE_PATH, 503, "");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(sent, 5);
	assert_string_equal(c.optional_error, "events/maintenance/scheduled: HTTP 503");
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL & ~(1u << FEED_AWS_MAINTENANCE));
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 4);
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(c.events.n_events, 3);
	assert_string_equal(c.events.events[2].id, "instance-event-0d59937288b749b32");
	assert_int_equal(c.events.events[2].end, END_COMPLETED);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 2);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 4);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A list that never loses an event never has the history asked: new
 * events, an event the list itself says is over, a list that fails. */
static void test_maintenance_no_history(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_A "]", "completed");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	for (int i = 0; i < 6; i++) {
		if (i == 1)
			serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "]", "active");
		else if (i == 2)
			serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "," MAINT_B "]", "active", "active");
		else if (i == 3)
			fake_set(&w.fake, "GET", MAINTENANCE_PATH, 500, "");
		else if (i == 4)
			serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "," MAINT_A "]", "active", "completed");
		serve_token(&w.fake, "TOKEN-A");
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_int_equal(cost, 4);
		assert_int_equal(sent, 4);
		if (i == 4 || i == 5) {
			const struct spot_event *ev = find_event(&c, "instance-event-0d59937288b749b32");

			assert_non_null(ev);
			assert_int_equal(ev->end, END_COMPLETED);
		}
	}
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 0);

	/* Once the list held it over, its leaving asks nothing either. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_B "]", "active");
	serve_token(&w.fake, "TOKEN-A");
	for (int i = 0; i < 2; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(cost, 4);
		assert_int_equal(c.events.n_events, 1);
	}
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 0);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* The history keeps to the round's budget: with an Auto Scaling identity
 * item due as well, it takes that item's place, which waits a round. */
static void test_maintenance_history_budget(void **state)
{
	static const char *const identity[] = { REGION_PATH, GROUP_PATH, ROLE_PATH, CREDS_PATH };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent, asked = 0;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[" MAINT_A "]", "active");
	serve_maintenance(&w.fake, HISTORY_PATH, "[" MAINT_A "]", "completed");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws_hooked(&w, 900);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(sent, 5);
	/* The list and the region. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(fake_hits(&w.fake, "GET", REGION_PATH), 1);
	/* Gone, and the group. */
	serve_maintenance(&w.fake, MAINTENANCE_PATH, "[]");
	serve_token(&w.fake, "TOKEN-A");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(fake_hits(&w.fake, "GET", GROUP_PATH), 1);
	/* The history and the role are due: the history goes. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, POLL_RATE_MAX);
	assert_int_equal(sent, POLL_RATE_MAX);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 1);
	assert_int_equal(fake_hits(&w.fake, "GET", ROLE_PATH), 0);
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(c.events.events[0].end, END_COMPLETED);
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	/* Then the role, the credentials, and nothing more. */
	for (int i = 0; i < 3; i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_true(sent <= POLL_RATE_MAX);
		assert_int_equal(sent, cost);
		assert_int_equal(c.events.n_events, 0);
	}
	assert_int_equal(cost, 4);
	for (size_t i = 0; i < ELEMENTSOF(identity); i++)
		asked += fake_hits(&w.fake, "GET", identity[i]);
	assert_int_equal(asked, 4);
	assert_int_equal(fake_hits(&w.fake, "GET", HISTORY_PATH), 1);
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 0);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A 401 drops the token: one fresh token and the round once more, after
 * every request in flight answered. */
static void test_token_refresh(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);

	/* The service revoked TOKEN-A early: the spot notice and the first
	 * optional item are refused, each chain stops there. */
	serve_token(&w.fake, "TOKEN-B");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 7);   /* the two refused, the token, the four items */
	assert_int_equal(fake_hits(&w.fake, "PUT", TOKEN_PATH), 2);
	assert_true(fake_last_has(&w.fake, "GET", REBALANCE_PATH, "X-aws-ec2-metadata-token: TOKEN-B"));
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 4);

	/* Refused again with the fresh token: no loop, the round fails. */
	FAKE_EDIT(&w.fake, "GET", ACTION_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token: never"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "spot/instance-action: HTTP 401");
	assert_int_equal(sent, 9);   /* the item, the optional three, the token, all four again */

	/* An optional item refused twice is only that item's failure. */
	serve_token(&w.fake, "TOKEN-B");
	FAKE_EDIT(&w.fake, "GET", MAINTENANCE_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token: never"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.optional_error, "events/maintenance/scheduled: HTTP 401");
	assert_int_equal(c.feeds_answered, AWS_FEEDS_ALL & ~(1u << FEED_AWS_MAINTENANCE));

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* The token request refused (403, 404, 405) or not answered within a
 * second: with aws-imds-fallback the items are read without a token, the
 * round says so, and the switch is told once. */
static void test_imds_v1_fallback(void **state)
{
	static const int refusals[] = { 403, 404, 405 };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct provider_config cfg;
	struct world w;
	unsigned cost, sent;
	char header[AWS_TOKEN_MAX + 8];

	world_init(&w);
	serve_quiet(&w.fake, NULL);
	for (size_t i = 0; i < ELEMENTSOF(refusals); i++) {
		char want[64];

		fake_set(&w.fake, "PUT", TOKEN_PATH, refusals[i], "");
		p = new_aws(&w);
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_int_equal(cost, 5);
		assert_int_equal(sent, 5);
		assert_true(c.imds_v1);
		(void)snprintf(want, sizeof(want), "api/token: HTTP %d: reading the metadata service without",
			       refusals[i]);
		if (strncmp(c.imds_v1_change, want, strlen(want)) != 0)
			fail_msg("change '%s'", c.imds_v1_change);
		assert_non_null(strstr(c.imds_v1_change, "(IMDSv1), asking for one again every 300 s"));
		assert_string_equal(c.vm_name, INSTANCE_ID);
		assert_string_equal(fake_last_header(&w.fake, "GET", ACTION_PATH, "X-aws-ec2-metadata-token",
						     header, sizeof(header)), "");
		/* Once: the next rounds are v1 without a word, and without the
		 * token request. */
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_true(c.imds_v1);
		assert_string_equal(c.imds_v1_change, "");
		assert_int_equal(cost, 4);
		assert_int_equal(sent, 4);
		assert_string_equal(fake_last_header(&w.fake, "GET", MAINTENANCE_PATH, "X-aws-ec2-metadata-token",
						     header, sizeof(header)), "");
		provider_free(p);
	}
	assert_int_equal(fake_hits(&w.fake, "PUT", TOKEN_PATH), 3);

	/* Stalled: the token request gets one second, whatever the caller
	 * allows. */
	serve_token(&w.fake, NULL);
	FAKE_EDIT(&w.fake, "PUT", TOKEN_PATH, R->delay_ms = 1500);
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(c.imds_v1);
	assert_true(strncmp(c.imds_v1_change, "api/token: timed out after 1.", 29) == 0);
	assert_non_null(strstr(c.imds_v1_change, " s: reading the metadata service without a session token"));
	assert_true(c.latency_usec >= SEC(1) && c.latency_usec < 1500 * USEC_PER_MSEC);
	provider_free(p);

	/* Any other failure of the token is no reason to go without one. */
	FAKE_EDIT(&w.fake, "PUT", TOKEN_PATH, R->delay_ms = 0);
	fake_set(&w.fake, "PUT", TOKEN_PATH, 500, "");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "api/token: HTTP 500");
	assert_false(c.imds_v1);
	provider_free(p);

	/* Fallback off: refused or stalled, the round fails as before, and
	 * the token request gets the caller's timeout. */
	provider_config_init(&cfg);
	cfg.aws_imds_fallback = false;
	fake_set(&w.fake, "PUT", TOKEN_PATH, 403, "");
	p = new_aws_cfg(&w, &cfg);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "api/token: HTTP 403");
	assert_false(c.imds_v1);
	assert_string_equal(c.imds_v1_change, "");
	assert_int_equal(sent, 1);
	fake_set(&w.fake, "PUT", TOKEN_PATH, 200, "TOKEN-C");
	FAKE_EDIT(&w.fake, "PUT", TOKEN_PATH, R->delay_ms = 1300);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_false(c.imds_v1);
	FAKE_EDIT(&w.fake, "PUT", TOKEN_PATH, R->delay_ms = 900);
	provider_free(p);
	p = new_aws_cfg(&w, &cfg);
	one_round(&w, p, 500 * USEC_PER_MSEC, &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_TIMEOUT);
	assert_true(strncmp(c.error, "api/token: timed out after 0.", 29) == 0);
	provider_free(p);

	capture_done(&c);
	world_done(&w);
}

/* From IMDSv1 back to tokens: when the token is asked again (every
 * aws_token_retry_sec) and answered, or at once when an item answers 401
 * without one. */
static void test_imds_v1_back_to_v2(void **state)
{
	struct capture c = { 0 };
	struct provider_handle *p;
	struct provider_config cfg;
	struct world w;
	unsigned cost, sent;
	char header[AWS_TOKEN_MAX + 8];

	world_init(&w);
	serve_quiet(&w.fake, NULL);
	fake_set(&w.fake, "PUT", TOKEN_PATH, 403, "");
	provider_config_init(&cfg);
	cfg.aws_token_retry_sec = 1;
	p = new_aws_cfg(&w, &cfg);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_true(c.imds_v1);
	assert_non_null(strstr(c.imds_v1_change, "asking for one again every 1 s"));

	/* Still refused when asked again: still v1, nothing new to tell. */
	(void)nanosleep(&(struct timespec){ 1, 100 * 1000 * 1000 }, NULL);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(c.imds_v1);
	assert_string_equal(c.imds_v1_change, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);

	/* IMDSv2 switched on (still optional): the next try takes it. */
	serve_token(&w.fake, "TOKEN-V2");
	(void)nanosleep(&(struct timespec){ 1, 100 * 1000 * 1000 }, NULL);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(sent, 5);
	assert_false(c.imds_v1);
	assert_string_equal(c.imds_v1_change, "api/token answered: back to IMDSv2 session tokens");
	assert_string_equal(fake_last_header(&w.fake, "GET", ACTION_PATH, "X-aws-ec2-metadata-token", header,
					     sizeof(header)), "TOKEN-V2");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_false(c.imds_v1);
	assert_string_equal(c.imds_v1_change, "");
	provider_free(p);

	/* Back in v1 (the default retry of 5 min), the service starts to
	 * require tokens: the items answer 401, and the round takes a token
	 * at once. */
	serve_quiet(&w.fake, NULL);
	fake_set(&w.fake, "PUT", TOKEN_PATH, 404, "");
	p = new_aws(&w);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_true(c.imds_v1);
	serve_token(&w.fake, "TOKEN-REQUIRED");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 7);   /* two refused, the token, the four items */
	assert_false(c.imds_v1);
	assert_string_equal(c.imds_v1_change,
			    "an item answered 401 without a session token: back to IMDSv2 session tokens");
	assert_string_equal(fake_last_header(&w.fake, "GET", MAINTENANCE_PATH, "X-aws-ec2-metadata-token", header,
					     sizeof(header)), "TOKEN-REQUIRED");
	provider_free(p);

	capture_done(&c);
	world_done(&w);
}

/* ---- the Auto Scaling lifecycle hook ---- */

struct answer {
	int approvals, heartbeats;
	char id[EVENT_ID_MAX];
	enum imds_result result;
	char error[IMDS_ERROR_MAX];
};

static void on_approved(const char *event_id, enum imds_result result, const char *error, void *userdata)
{
	struct answer *a = userdata;

	a->approvals++;
	(void)strscpy(a->id, sizeof(a->id), event_id);
	a->result = result;
	(void)strscpy(a->error, sizeof(a->error), error);
}

static void on_heartbeat(enum imds_result result, const char *error, void *userdata)
{
	struct answer *a = userdata;

	a->heartbeats++;
	a->result = result;
	(void)strscpy(a->error, sizeof(a->error), error);
}

/* Runs the loop until the answer has seen n calls in all. */
static void run_answers(struct world *w, const struct answer *a, int n)
{
	uint64_t end = now_usec(CLOCK_MONOTONIC) + 10 * USEC_PER_SEC;

	while (a->approvals + a->heartbeats < n) {
		if (now_usec(CLOCK_MONOTONIC) > end)
			fail_msg("no answer within 10 s (%d approvals, %d heartbeats, want %d)", a->approvals, a->heartbeats, n);
		assert_true(sd_event_run(w->event, 100 * USEC_PER_MSEC) >= 0);
	}
}

/* What the agent logs (text lines on stderr) while a test runs, caught. */
static int stderr_saved = -1;
static FILE *stderr_file;

static void stderr_catch(void)
{
	fflush(stderr);
	stderr_file = tmpfile();
	assert_non_null(stderr_file);
	stderr_saved = dup(STDERR_FILENO);
	assert_true(stderr_saved >= 0);
	assert_true(dup2(fileno(stderr_file), STDERR_FILENO) >= 0);
}

/* The lines caught since stderr_catch; the caller frees them. */
static char *stderr_release(void)
{
	char *text;
	long n;

	fflush(stderr);
	assert_true(dup2(stderr_saved, STDERR_FILENO) >= 0);
	close(stderr_saved);
	stderr_saved = -1;
	n = ftell(stderr_file);
	assert_true(n >= 0);
	text = xmalloc((size_t)n + 1);
	rewind(stderr_file);
	assert_int_equal(fread(text, 1, (size_t)n, stderr_file), (size_t)n);
	text[n] = '\0';
	fclose(stderr_file);
	stderr_file = NULL;
	return text;
}

/* Whether text is exactly one line, ending in tail. */
static bool one_line_ending(const char *text, const char *tail)
{
	size_t n = strlen(text), k = strlen(tail);

	return n > k && text[n - 1] == '\n' && strchr(text, '\n') == text + n - 1 &&
	       memcmp(text + n - k, tail, k) == 0;
}

#define LIFECYCLE_ACK(abandon_) \
	(&(struct provider_ack){ .event_id = "aws-asg-terminate-" INSTANCE_ID "-1795767600", \
				 .feed = FEED_AWS_LIFECYCLE, .abandon = (abandon_) })

static const char complete_body[] =
	"Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=my-asg"
	"&LifecycleHookName=drain-hook&InstanceId=" INSTANCE_ID "&LifecycleActionResult=CONTINUE";

/* With a lifecycle hook the termination waits for the agent: its notice is
 * the hook's heartbeat timeout, and it is to be acknowledged. The rounds
 * fetch what the calls will need, one item a round. */
static void test_lifecycle_hook_round(void **state)
{
	static const char *const identity[] = { REGION_PATH, GROUP_PATH, ROLE_PATH, CREDS_PATH };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;

	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "Terminated");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws_hooked(&w, 900);
	assert_int_equal(provider_heartbeat_period_usec(p), SEC(300));

	/* The first round has the token and the id to fetch: no room. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_int_equal(fake_hits(&w.fake, "GET", REGION_PATH), 0);
	for (size_t i = 0; i < ELEMENTSOF(identity); i++) {
		one_round(&w, p, SEC(5), &c, &cost, &sent);
		assert_int_equal(c.result, IMDS_RESULT_OK);
		assert_int_equal(cost, 5);
		assert_int_equal(sent, cost);
		assert_int_equal(fake_hits(&w.fake, "GET", identity[i]), 1);
		assert_true(fake_last_has(&w.fake, "GET", identity[i], "X-aws-ec2-metadata-token: TOKEN-A"));
		assert_int_equal(c.events.n_events, 1);
		assert_string_equal(c.events.events[0].id, "aws-asg-terminate-" INSTANCE_ID);
		assert_true(c.events.events[0].needs_ack);
		assert_int_equal(c.events.events[0].notice_usec, SEC(900));
		assert_int_equal(c.events.events[0].feed, FEED_AWS_LIFECYCLE);
	}
	/* All at hand: no more identity requests. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 4);
	assert_int_equal(w.count.sent[IMDS_SLOT_AUTOSCALING], 0);
	provider_free(p);

	/* An identity item that fails is an optional failure, not asked again
	 * right away. */
	fake_set(&w.fake, "GET", REGION_PATH, 500, "");
	p = new_aws_hooked(&w, 0);
	assert_int_equal(provider_heartbeat_period_usec(p), SEC(600));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 5);
	assert_string_equal(c.optional_error, "placement/region: HTTP 500");
	assert_int_equal(c.events.n_events, 1);
	assert_int_equal(c.events.events[0].notice_usec, SEC(AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_string_equal(c.optional_error, "");
	provider_free(p);

	capture_done(&c);
	world_done(&w);
}

/* CompleteLifecycleAction and RecordLifecycleActionHeartbeat: the forms,
 * signed with the role's credentials, the answers and AWS's errors. */
static void test_lifecycle_calls(void **state)
{
	struct answer a = { 0 };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;
	char buf[2048], want[256], date[16];
	time_t t = time(NULL);
	struct tm tm;

	(void)setenv("no_proxy", "127.0.0.1", 1);
	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	p = new_aws_hooked(&w, 0);

	/* The calls name the instance: not before a round learnt its id. */
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), -ENXIO);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), -ENXIO);
	one_round(&w, p, SEC(5), &c, &cost, &sent);    /* the id; no room for the identity */
	assert_int_equal(c.result, IMDS_RESULT_OK);
	/* Only the lifecycle feed is acknowledged. */
	assert_int_equal(provider_approve(p, &(struct provider_ack){ .event_id = "aws-spot-terminate-1",
								     .feed = FEED_AWS_SPOT },
					  SEC(2), on_approved, &a), -EOPNOTSUPP);

	/* What it needs (region, group, role, credentials) is fetched, then
	 * the call. */
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), -EBUSY);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), -EBUSY);
	run_answers(&w, &a, 1);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(a.error, "");
	assert_string_equal(a.id, "aws-asg-terminate-" INSTANCE_ID "-1795767600");
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 4);
	assert_int_equal(w.count.sent[IMDS_SLOT_AUTOSCALING], 1);
	assert_string_equal(fake_last_body(&w.fake, "POST", ASG_COMPLETE, buf, sizeof(buf)), complete_body);
	/* Signed by libcurl: key, date, region, service. */
	(void)gmtime_r(&t, &tm);
	(void)strftime(date, sizeof(date), "%Y%m%d", &tm);
	(void)snprintf(want, sizeof(want), "AWS4-HMAC-SHA256 Credential=" KEY_ID "/%s/eu-west-1/autoscaling/aws4_request,",
		       date);
	fake_last_header(&w.fake, "POST", ASG_COMPLETE, "Authorization", buf, sizeof(buf));
	if (strncmp(buf, want, strlen(want)) != 0)
		fail_msg("Authorization '%s', expected it to start '%s'", buf, want);
	assert_non_null(strstr(buf, "x-amz-security-token"));   /* a signed header */
	assert_string_equal(fake_last_header(&w.fake, "POST", ASG_COMPLETE, "X-Amz-Security-Token", buf, sizeof(buf)),
			    SESSION_TOKEN);
	assert_string_equal(fake_last_header(&w.fake, "POST", ASG_COMPLETE, "Content-Type", buf, sizeof(buf)),
			    "application/x-www-form-urlencoded; charset=utf-8");
	assert_true(fake_last_has(&w.fake, "GET", CREDS_PATH, "X-aws-ec2-metadata-token: TOKEN-A"));

	/* A hook asked to abandon the instance. */
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(true), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 2);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_non_null(strstr(fake_last_body(&w.fake, "POST", ASG_COMPLETE, buf, sizeof(buf)),
			       "&LifecycleActionResult=ABANDON"));
	/* Everything at hand: the call alone. */
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 4);
	assert_int_equal(w.count.sent[IMDS_SLOT_AUTOSCALING], 2);

	/* The heartbeat. */
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), -EBUSY);
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), -EBUSY);
	run_answers(&w, &a, 3);
	assert_int_equal(a.heartbeats, 1);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_string_equal(fake_last_body(&w.fake, "POST", ASG_HEARTBEAT, buf, sizeof(buf)),
			    "Action=RecordLifecycleActionHeartbeat&Version=2011-01-01&AutoScalingGroupName=my-asg"
			    "&LifecycleHookName=drain-hook&InstanceId=" INSTANCE_ID);

	/* AWS says no: its code and message in the line. */
	fake_set(&w.fake, "POST", ASG_COMPLETE, 400,
		 "<ErrorResponse xmlns=\"" ASG_NS "\"><Error><Type>Sender</Type><Code>ValidationError</Code>"
		 "<Message>No active Lifecycle Action found with instance ID " INSTANCE_ID "</Message></Error>"
		 "<RequestId>3</RequestId></ErrorResponse>");
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 4);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.error, "CompleteLifecycleAction: ValidationError: No active Lifecycle Action found "
				     "with instance ID " INSTANCE_ID);
	fake_set(&w.fake, "POST", ASG_HEARTBEAT, 400,
		 "<ErrorResponse><Error><Code>Throttling</Code><Message>Rate exceeded</Message></Error></ErrorResponse>");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 5);
	assert_int_equal(a.result, IMDS_RESULT_THROTTLED);
	assert_string_equal(a.error, "RecordLifecycleActionHeartbeat: Throttling: Rate exceeded");
	fake_set(&w.fake, "POST", ASG_HEARTBEAT, 503, "<html>unavailable</html>");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 6);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.error, "RecordLifecycleActionHeartbeat: HTTP 503");

	/* Rounds and calls go on side by side; cancelling the round leaves
	 * the call alone, freeing the provider cancels it without a word. */
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	assert_int_equal(provider_poll(p, SEC(5), SEC(5), on_round, &c), 0);
	provider_cancel(p);
	run_answers(&w, &a, 7);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	provider_free(p);
	assert_false(imds_busy(w.imds, IMDS_SLOT_AUTOSCALING));
	assert_true(sd_event_run(w.event, 50 * USEC_PER_MSEC) >= 0);
	assert_int_equal(a.approvals + a.heartbeats, 7);

	capture_done(&c);
	world_done(&w);
}

/* Credentials: fetched again from 5 min before their Expiration, and when
 * a call answers ExpiredToken (then the call is made once more). */
static void test_lifecycle_credentials(void **state)
{
	struct answer a = { 0 };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;
	char *creds, *logged;

	(void)setenv("no_proxy", "127.0.0.1", 1);
	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	creds = credentials_doc(now_usec(CLOCK_REALTIME) + SEC(240));
	fake_set(&w.fake, "GET", CREDS_PATH, 200, creds);
	free(creds);
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws_hooked(&w, 0);
	one_round(&w, p, SEC(5), &c, &cost, &sent);

	/* Four minutes left: every call fetches them first. */
	for (int i = 1; i <= 2; i++) {
		assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
		run_answers(&w, &a, i);
		assert_int_equal(a.result, IMDS_RESULT_OK);
		assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), (unsigned)i);
	}
	/* Fetched by this very call and still refused as expired: fetched
	 * once more, and the call made again. */
	fake_set_first(&w.fake, "POST", ASG_HEARTBEAT, 1, 403,
		       "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>expired</Message></Error></ErrorResponse>");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 3);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), 4);
	assert_int_equal(fake_hits(&w.fake, "POST", ASG_HEARTBEAT), 4);

	/* A fresh set lasts: not fetched again. */
	creds = credentials_doc(now_usec(CLOCK_REALTIME) + SEC(3600));
	fake_set(&w.fake, "GET", CREDS_PATH, 200, creds);
	free(creds);
	serve_token(&w.fake, "TOKEN-A");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 4);
	assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), 5);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 5);
	assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), 5);
	/* Nor by the rounds. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);

	/* Expired early (rotated, revoked): fetched again, called again,
	 * which is logged once with AWS's code. */
	fake_set_first(&w.fake, "POST", ASG_COMPLETE, 1, 403,
		       "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token included in "
		       "the request is expired</Message></Error></ErrorResponse>");
	stderr_catch();
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 6);
	logged = stderr_release();
	if (!one_line_ending(logged, " info: aws: CompleteLifecycleAction: ExpiredToken: The security token "
				     "included in the request is expired; fetching the role's credentials again "
				     "and retrying\n"))
		fail_msg("logged '%s'", logged);
	free(logged);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), 6);
	assert_int_equal(fake_hits(&w.fake, "POST", ASG_COMPLETE), 2);
	/* Expired again with the fresh set: once is enough, the answer is
	 * the call's. */
	fake_set_first(&w.fake, "POST", ASG_COMPLETE, 2, 403,
		       "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>The security token included in "
		       "the request is expired</Message></Error></ErrorResponse>");
	stderr_catch();
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 7);
	logged = stderr_release();
	if (!one_line_ending(logged, "; fetching the role's credentials again and retrying\n"))
		fail_msg("logged '%s'", logged);
	free(logged);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.error, "CompleteLifecycleAction: ExpiredToken: The security token included in the "
				     "request is expired");
	assert_int_equal(fake_hits(&w.fake, "GET", CREDS_PATH), 7);
	assert_int_equal(fake_hits(&w.fake, "POST", ASG_COMPLETE), 4);

	/* The role's credentials gone (404): the role is asked again. */
	fake_set(&w.fake, "GET", CREDS_PATH, 404, "");
	serve_token(&w.fake, "TOKEN-A");
	fake_set_first(&w.fake, "POST", ASG_COMPLETE, 1, 403,
		       "<ErrorResponse><Error><Code>ExpiredToken</Code><Message>expired</Message></Error></ErrorResponse>");
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 8);
	assert_string_equal(a.error, "CompleteLifecycleAction: iam/security-credentials/ROLE: HTTP 404");
	fake_set(&w.fake, "GET", ROLE_PATH, 404, "");
	serve_token(&w.fake, "TOKEN-A");
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 9);
	assert_string_equal(a.error, "CompleteLifecycleAction: iam/security-credentials/: HTTP 404");

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* The group: from the instance tag, or, with tags off, from
 * DescribeAutoScalingInstances (asked once). The region from
 * placement/region, or the identity document. */
static void test_lifecycle_group(void **state)
{
	struct answer a = { 0 };
	struct capture c = { 0 };
	struct provider_handle *p;
	struct world w;
	unsigned cost, sent;
	char buf[2048];

	(void)setenv("no_proxy", "127.0.0.1", 1);
	world_init(&w);
	serve_quiet(&w.fake, "TOKEN-A");
	fake_set(&w.fake, "GET", GROUP_PATH, 404, "");
	fake_set(&w.fake, "GET", REGION_PATH, 404, "");
	serve_token(&w.fake, "TOKEN-A");
	p = new_aws_hooked(&w, 0);
	one_round(&w, p, SEC(5), &c, &cost, &sent);

	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 1);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	assert_int_equal(fake_hits(&w.fake, "GET", DOCUMENT_PATH), 1);
	assert_int_equal(fake_hits(&w.fake, "GET", GROUP_PATH), 1);
	assert_string_equal(fake_last_body(&w.fake, "POST", ASG_DESCRIBE, buf, sizeof(buf)),
			    "Action=DescribeAutoScalingInstances&Version=2011-01-01&InstanceIds.member.1=" INSTANCE_ID);
	assert_true(strstr(fake_last_header(&w.fake, "POST", ASG_DESCRIBE, "Authorization", buf, sizeof(buf)),
			   "/eu-west-2/autoscaling/aws4_request") != NULL);
	assert_string_equal(fake_last_body(&w.fake, "POST", ASG_COMPLETE, buf, sizeof(buf)),
			    "Action=CompleteLifecycleAction&Version=2011-01-01&AutoScalingGroupName=described-asg"
			    "&LifecycleHookName=drain-hook&InstanceId=" INSTANCE_ID "&LifecycleActionResult=CONTINUE");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 2);
	assert_int_equal(fake_hits(&w.fake, "POST", ASG_DESCRIBE), 1);
	provider_free(p);

	/* In no group at all. */
	fake_set(&w.fake, "POST", ASG_DESCRIBE, 200,
		 "<DescribeAutoScalingInstancesResponse xmlns=\"" ASG_NS "\"><DescribeAutoScalingInstancesResult>"
		 "<AutoScalingInstances/></DescribeAutoScalingInstancesResult></DescribeAutoScalingInstancesResponse>");
	p = new_aws_hooked(&w, 0);
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(provider_approve(p, LIFECYCLE_ACK(false), SEC(2), on_approved, &a), 0);
	run_answers(&w, &a, 3);
	assert_int_equal(a.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(a.error, "CompleteLifecycleAction: DescribeAutoScalingInstances: this instance is in no "
				     "Auto Scaling group");
	/* Not allowed to ask. */
	fake_set(&w.fake, "POST", ASG_DESCRIBE, 403,
		 "<ErrorResponse><Error><Code>AccessDenied</Code><Message>User is not authorized to perform: "
		 "autoscaling:DescribeAutoScalingInstances</Message></Error></ErrorResponse>");
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 4);
	assert_int_equal(a.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(a.error, "RecordLifecycleActionHeartbeat: DescribeAutoScalingInstances: AccessDenied: "
				     "User is not authorized to perform: autoscaling:DescribeAutoScalingInstances");
	provider_free(p);

	/* The endpoint as configured, with or without its final '/'. */
	fake_set(&w.fake, "GET", GROUP_PATH, 200, "my-asg");
	serve_token(&w.fake, "TOKEN-A");
	{
		struct provider_config cfg;
		char *url = xasprintf("%s/autoscaling/", w.fake.url);

		provider_config_init(&cfg);
		cfg.aws_lifecycle_hook = "drain-hook";
		cfg.aws_autoscaling_url = url;
		cfg.aws_heartbeat_interval_sec = 45;
		p = new_aws_cfg(&w, &cfg);
		free(url);
	}
	assert_int_equal(provider_heartbeat_period_usec(p), SEC(45));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(provider_heartbeat(p, on_heartbeat, &a), 0);
	run_answers(&w, &a, 5);
	assert_int_equal(a.result, IMDS_RESULT_OK);
	provider_free(p);

	capture_done(&c);
	world_done(&w);
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

int main(void)
{
	static const struct CMUnitTest fixed[] = {
		cmocka_unit_test(test_length_bounded),
		cmocka_unit_test(test_round_plumbing),
		cmocka_unit_test(test_token_due),
		cmocka_unit_test(test_history_parse),
		cmocka_unit_test(test_lifecycle_event),
		cmocka_unit_test(test_heartbeat_period),
		cmocka_unit_test(test_identity_next),
		cmocka_unit_test(test_autoscaling_form),
		cmocka_unit_test(test_autoscaling_outcome),
		cmocka_unit_test(test_action_for_this_vm),
		cmocka_unit_test(test_round_cost),
		cmocka_unit_test(test_spot_key_stable),
		cmocka_unit_test(test_warm_pool),
		cmocka_unit_test(test_rebalance),
		cmocka_unit_test(test_optional_items_fail),
		cmocka_unit_test(test_maintenance_round),
		cmocka_unit_test(test_maintenance_history),
		cmocka_unit_test(test_maintenance_history_fails),
		cmocka_unit_test(test_maintenance_no_history),
		cmocka_unit_test(test_maintenance_history_budget),
		cmocka_unit_test(test_token_refresh),
		cmocka_unit_test(test_imds_v1_fallback),
		cmocka_unit_test(test_imds_v1_back_to_v2),
		cmocka_unit_test(test_lifecycle_hook_round),
		cmocka_unit_test(test_lifecycle_calls),
		cmocka_unit_test(test_lifecycle_credentials),
		cmocka_unit_test(test_lifecycle_group),
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
	free_cases(tests, ELEMENTSOF(fixed), n);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
