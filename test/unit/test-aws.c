/* test-aws.c - the AWS parsers, driven by test/data/aws, and the AWS
 * provider's rounds against a fake metadata service: what each costs and
 * really sends, the token and its refresh after a 401, the stable key of a
 * spot notice whose time moves, the Auto Scaling event and the rebalance
 * recommendation.
 *
 * Each directory holds one item's cases: NAME.json or NAME.txt must parse
 * and yield what NAME.expect says; NAME.bad must be refused with -EBADMSG,
 * leaving the outputs untouched. Adding a case means adding data files.
 *   instance-action/NAME.expect: optional "now SECONDS" (the reading time
 *     given to the parser, default 0), then the event as lines
 *     "key", "type", "status", "source", "not_before SECONDS[.USEC]",
 *     "description TEXT", in this order ('#' lines are comments); the key
 *     is the event's id with id_from_first_seen set.
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

#include "engine/event.h"
#include "store/event-json.h"
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
	char buf[sizeof(doc) + 8], name[PROVIDER_NAME_MAX];
	size_t n = sizeof(doc) - 1;
	bool b = false;

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
	assert_true(b);
	assert_int_equal(aws_parse_lifecycle(buf, 9, &b), 0);
	assert_false(b);
	assert_int_equal(aws_parse_lifecycle(NULL, 0, &b), -EBADMSG);

	memcpy(buf, "i-0abc\ni-0def", 13);
	assert_int_equal(provider_parse_name(buf, 7, name, sizeof(name)), 0);
	assert_string_equal(name, "i-0abc");
	assert_int_equal(provider_parse_name(buf, 13, name, sizeof(name)), -EBADMSG);
	/* A destination too small is a refusal, not a truncation. */
	assert_int_equal(provider_parse_name(buf, 6, name, 6), -EBADMSG);
	assert_int_equal(provider_parse_name(buf, 6, name, 7), 0);
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

#include "provider-harness.h"

/* What the round builds from target-lifecycle-state = Terminated: a key
 * for the engine to make the id from, and a notice it counts from the
 * first sighting. */
static void test_lifecycle_event(void **state)
{
	struct spot_event a, b;
	char long_id[PROVIDER_NAME_MAX + 1];

	event_init(&a);
	event_init(&b);
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", &a), 0);
	assert_string_equal(a.id, "aws-asg-terminate-i-0123456789abcdef0");
	assert_true(a.id_from_first_seen);
	assert_int_equal(a.type, EVENT_TERMINATE);
	assert_int_equal(a.status, EVENT_SCHEDULED);
	assert_int_equal(a.provider, PROVIDER_AWS);
	assert_int_equal(a.duration_sec, -1);
	assert_string_equal(a.source, "User");
	assert_int_equal(a.feed, FEED_AWS_LIFECYCLE);
	assert_false(a.needs_ack);
	assert_int_equal(a.not_before_usec, 0);
	assert_int_equal(a.notice_usec, SEC(AWS_ASG_NOTICE_SEC));
	assert_int_equal(AWS_ASG_NOTICE_SEC, 120);
	assert_true(a.description[0] != '\0');
	/* The engine's own-VM filter matches on the instance id. */
	assert_true(event_names_resource(&a, "i-0123456789abcdef0"));
	assert_true(event_names_resource(&a, "I-0123456789ABCDEF0"));
	assert_false(event_names_resource(&a, "i-0123456789abcdef1"));
	check_round_trip(&a);

	/* Read again: the same event. Overwriting an event that holds
	 * resources releases them (ASan). */
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", &b), 0);
	assert_true(event_equal(&a, &b));
	assert_int_equal(aws_lifecycle_event("i-0123456789abcdef0", &b), 0);
	assert_int_equal(b.n_resources, 1);

	/* Unusable ids leave the output alone. */
	memset(long_id, 'i', sizeof(long_id) - 1);
	long_id[sizeof(long_id) - 1] = '\0';
	assert_int_equal(aws_lifecycle_event(long_id, &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event("", &b), -EINVAL);
	assert_int_equal(aws_lifecycle_event(NULL, &b), -EINVAL);
	assert_true(event_equal(&a, &b));
	/* The longest id accepted: cut in the key (which leaves the engine
	 * room for its "-<seconds>"), whole in the resource. */
	long_id[PROVIDER_NAME_MAX - 1] = '\0';
	assert_int_equal(aws_lifecycle_event(long_id, &b), 0);
	assert_true(event_id_valid(b.id));
	assert_true(strlen(b.id) <= PROVIDER_KEY_MAX - 1);
	assert_true(strlen(b.id) + strlen("-4102444800") < EVENT_ID_MAX);
	assert_true(strncmp(b.id, "aws-asg-terminate-iiii", 22) == 0);
	assert_true(event_names_resource(&b, long_id));
	event_done(&a);
	event_done(&b);
}

/* ---- rounds against the fake metadata service ---- */

#define TOKEN_PATH     "/latest/api/token"
#define ID_PATH        "/latest/meta-data/instance-id"
#define ACTION_PATH    "/latest/meta-data/spot/instance-action"
#define LIFECYCLE_PATH "/latest/meta-data/autoscaling/target-lifecycle-state"
#define REBALANCE_PATH "/latest/meta-data/events/recommendations/rebalance"
#define INSTANCE_ID    "i-0123456789abcdef0"
#define T2030          UINT64_C(1893456000)   /* 2030-01-01T00:00:00Z */

/* IMDSv2 as EC2 serves it: items only with the current token. */
static void serve_token(struct fake_imds *f, const char *token)
{
	char require[128];

	fake_set(f, "PUT", TOKEN_PATH, 200, token);
	FAKE_EDIT(f, "PUT", TOKEN_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token-ttl-seconds: 21600");
		  R->reject_status = 400);
	(void)snprintf(require, sizeof(require), "X-aws-ec2-metadata-token: %s", token);
	FAKE_EDIT(f, "GET", ID_PATH, (void)strscpy(R->require, sizeof(R->require), require); R->reject_status = 401);
	FAKE_EDIT(f, "GET", ACTION_PATH, (void)strscpy(R->require, sizeof(R->require), require); R->reject_status = 401);
	FAKE_EDIT(f, "GET", LIFECYCLE_PATH, (void)strscpy(R->require, sizeof(R->require), require); R->reject_status = 401);
	FAKE_EDIT(f, "GET", REBALANCE_PATH, (void)strscpy(R->require, sizeof(R->require), require); R->reject_status = 401);
}

/* An instance with nothing pending. */
static void serve_quiet(struct fake_imds *f, const char *token)
{
	fake_set(f, "GET", ID_PATH, 200, INSTANCE_ID "\n");
	fake_set(f, "GET", ACTION_PATH, 404, "not found");
	fake_set(f, "GET", LIFECYCLE_PATH, 404, "not found");
	fake_set(f, "GET", REBALANCE_PATH, 404, "not found");
	serve_token(f, token);
}

static struct provider_handle *new_aws(struct world *w)
{
	struct provider_handle *p = NULL;

	assert_int_equal(provider_new(PROVIDER_AWS, w->imds, w->fake.url, NULL, &p), 0);
	assert_false(provider_can_approve(p));
	assert_int_equal(provider_approve(p, &(struct provider_ack){ .event_id = "x", .feed = FEED_AWS_SPOT }, SEC(1), NULL, NULL), -EOPNOTSUPP);
	return p;
}

/* A round costs what it sends: the token when due, the instance id while
 * unknown, and the three items. */
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

	/* Token and id due; the id fails, and the round with it. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 5);
	assert_int_equal(sent, 2);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "instance-id: HTTP 500");
	assert_false(c.had_vm_name);

	/* The token is held: 4. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 4);
	assert_int_equal(sent, 4);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_string_equal(c.vm_name, INSTANCE_ID);
	assert_int_equal(c.events.n_events, 0);
	assert_false(c.rebalance);
	assert_int_equal(c.incarnation, -1);
	assert_int_equal(c.n_drops, 0);
	assert_string_equal(c.identity_error, "");

	/* Token and id known: the three items. */
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 3);
	assert_int_equal(sent, 3);
	assert_int_equal(provider_round_cost(p), 3);
	assert_int_equal(w.count.sent[IMDS_SLOT_APPROVE], 0);

	assert_int_equal(fake_hits(&w.fake, "PUT", TOKEN_PATH), 1);
	assert_int_equal(fake_hits(&w.fake, "GET", ID_PATH), 2);
	assert_int_equal(fake_hits(&w.fake, "GET", REBALANCE_PATH), 2);
	assert_true(fake_last_has(&w.fake, "GET", ACTION_PATH, "X-aws-ec2-metadata-token: TOKEN-A"));
	assert_true(fake_last_has(&w.fake, "PUT", TOKEN_PATH,
				  "X-aws-ec2-metadata-token-ttl-seconds: 21600"));
	assert_int_equal(fake_n_log(&w.fake), 9);

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
		assert_true(event_names_resource(ev, INSTANCE_ID));
	}

	/* The Auto Scaling group terminates it as well: two events. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "Terminated\n");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.events.n_events, 2);
	assert_string_equal(c.events.events[0].id, "aws-spot-terminate");
	ev = &c.events.events[1];
	assert_string_equal(ev->id, "aws-asg-terminate-" INSTANCE_ID);
	assert_true(ev->id_from_first_seen);
	assert_int_equal(ev->type, EVENT_TERMINATE);
	assert_int_equal(ev->not_before_usec, 0);
	assert_int_equal(ev->notice_usec, SEC(AWS_ASG_NOTICE_SEC));
	assert_true(event_names_resource(ev, INSTANCE_ID));

	/* A state that is not Terminated, and no spot notice: nothing. */
	fake_set(&w.fake, "GET", LIFECYCLE_PATH, 200, "InService");
	fake_set(&w.fake, "GET", ACTION_PATH, 404, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_true(c.had_events);
	assert_int_equal(c.events.n_events, 0);

	/* An answer that is not a notice fails the round, named. */
	fake_set(&w.fake, "GET", ACTION_PATH, 200, "{\"action\":\"explode\"}");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_BAD_DOCUMENT);
	assert_string_equal(c.error, "spot/instance-action: unreadable answer");

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* The rebalance recommendation is reported with every round. */
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
	fake_set(&w.fake, "GET", REBALANCE_PATH, 404, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_false(c.rebalance);
	fake_set(&w.fake, "GET", REBALANCE_PATH, 500, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "events/recommendations/rebalance: HTTP 500");
	assert_false(c.rebalance);

	provider_free(p);
	capture_done(&c);
	world_done(&w);
}

/* A 401 drops the token: one fresh token and the round once more. */
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

	/* The service revoked TOKEN-A early. */
	serve_token(&w.fake, "TOKEN-B");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_OK);
	assert_int_equal(cost, 3);
	assert_int_equal(sent, 5);   /* the refused item, the token, the three items */
	assert_int_equal(fake_hits(&w.fake, "PUT", TOKEN_PATH), 2);
	assert_true(fake_last_has(&w.fake, "GET", REBALANCE_PATH, "X-aws-ec2-metadata-token: TOKEN-B"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(cost, 3);
	assert_int_equal(sent, 3);

	/* Refused again with the fresh token: no loop, the round fails. */
	FAKE_EDIT(&w.fake, "GET", ACTION_PATH,
		  (void)strscpy(R->require, sizeof(R->require), "X-aws-ec2-metadata-token: never"));
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "spot/instance-action: HTTP 401");
	assert_int_equal(sent, 3);   /* the item, the token, the item again */

	/* A token the service refuses to give. */
	fake_set(&w.fake, "PUT", TOKEN_PATH, 403, "");
	one_round(&w, p, SEC(5), &c, &cost, &sent);
	assert_int_equal(c.result, IMDS_RESULT_HTTP_ERROR);
	assert_string_equal(c.error, "api/token: HTTP 403");

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
		cmocka_unit_test(test_lifecycle_event),
		cmocka_unit_test(test_action_for_this_vm),
		cmocka_unit_test(test_round_cost),
		cmocka_unit_test(test_spot_key_stable),
		cmocka_unit_test(test_rebalance),
		cmocka_unit_test(test_token_refresh),
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
