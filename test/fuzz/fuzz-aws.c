/* fuzz-aws.c - libFuzzer target for AWS's parsers: spot/instance-action,
 * the Auto Scaling target lifecycle state, scheduled maintenance and its
 * history, the IMDSv2 token, the instance id, the identity items (region, identity
 * document, role, group, credentials), the Auto Scaling API's XML answers
 * and the escaping of its form values. Any answer body is parsed or
 * refused without reading past its length; the plain-text items agree with
 * their contract written out in fuzz-util.h; whatever a parser accepts
 * builds events that are valid, keyed within PROVIDER_KEY_MAX and survive
 * their JSON form, and fields that go into a URL, a header or a log line
 * hold only what may stand there. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fuzz-util.h"
#include "clouds/autoscaling.h"
#include "clouds/aws.h"
#include "clouds/provider.h"
#include "util.h"

/* 2026-11-27T03:20:00Z, between the times the seed corpus uses. */
#define NOW_WALL_USEC UINT64_C(1795764000000000)

/* A key the engine can append "-<Unix seconds>" to. */
static void check_key(const struct spot_event *ev, const char *prefix)
{
	fuzz_assert(ev->id_from_first_seen);
	fuzz_assert(strlen(ev->id) < PROVIDER_KEY_MAX);
	fuzz_assert(strncmp(ev->id, prefix, strlen(prefix)) == 0);
}

static void check_instance_action(const char *body, size_t size)
{
	struct spot_event ev, again;

	event_init(&ev);
	event_init(&again);
	if (aws_parse_instance_action(body, size, NOW_WALL_USEC, &ev) == 0) {
		const char *action = ev.id + strlen("aws-spot-");

		check_event_fields(&ev, PROVIDER_AWS);
		check_key(&ev, "aws-spot-");
		fuzz_assert(strcmp(action, "terminate") == 0 || strcmp(action, "stop") == 0 ||
			    strcmp(action, "hibernate") == 0);
		fuzz_assert(ev.type == EVENT_PREEMPT && ev.n_resources == 0 && ev.feed == FEED_AWS_SPOT);
		fuzz_assert(ev.not_before_usec != 0 && ev.notice_usec == 0);
		fuzz_assert((ev.status == EVENT_STARTED) == (NOW_WALL_USEC >= ev.not_before_usec));
		/* The key names the notice, not its time: the same body read
		 * at another moment is the same event, maybe further along. */
		fuzz_assert(aws_parse_instance_action(body, size, ev.not_before_usec - 1, &again) == 0);
		fuzz_assert(strcmp(again.id, ev.id) == 0 && again.status == EVENT_SCHEDULED);
		fuzz_assert(again.not_before_usec == ev.not_before_usec);
	}
	event_done(&again);
	event_done(&ev);
}

/* The same body as events/maintenance/history, asked for the ids the
 * list holds: the events over among them, each once, as the list has
 * them. */
static void check_history(const char *body, size_t size, const struct event_list *list)
{
	static char ids[AWS_MAINTENANCE_EVENTS_MAX][EVENT_ID_MAX];
	struct event_list h = { 0 };

	for (size_t i = 0; i < list->n_events; i++)
		memcpy(ids[i], list->events[i].id, EVENT_ID_MAX);
	fuzz_assert(aws_parse_maintenance_history(body, size, NOW_WALL_USEC, (const char (*)[EVENT_ID_MAX])ids,
						  list->n_events, &h) == 0);
	fuzz_assert(h.n_events <= list->n_events);
	for (size_t i = 0; i < h.n_events; i++) {
		const struct spot_event *ev = &h.events[i];
		const struct spot_event *same = NULL;

		check_event_fields(ev, PROVIDER_AWS);
		fuzz_assert(ev->end == END_COMPLETED || ev->end == END_CANCELED);
		fuzz_assert(ev->feed == FEED_AWS_MAINTENANCE && ev->n_resources == 0);
		for (size_t j = 0; j < i; j++)
			fuzz_assert(strcasecmp(h.events[j].id, ev->id) != 0);
		for (size_t j = 0; j < list->n_events && !same; j++)
			if (strcasecmp(list->events[j].id, ev->id) == 0 && list->events[j].end != END_NONE)
				same = &list->events[j];
		if (same)
			fuzz_assert(same->end == ev->end && same->type == ev->type &&
				    same->not_before_usec == ev->not_before_usec && same->status == ev->status &&
				    strcmp(same->description, ev->description) == 0);
	}
	event_list_done(&h);
}

static void check_maintenance(const char *body, size_t size)
{
	struct aws_maintenance m;

	if (aws_parse_maintenance(body, size, NOW_WALL_USEC, &m) < 0)
		return;
	fuzz_assert(m.events.n_events <= AWS_MAINTENANCE_EVENTS_MAX);
	fuzz_assert((m.events.events == NULL) == (m.events.n_events == 0));
	for (size_t i = 0; i < m.events.n_events; i++) {
		const struct spot_event *ev = &m.events.events[i];

		check_event_fields(ev, PROVIDER_AWS);
		fuzz_assert(!ev->id_from_first_seen && ev->notice_usec == 0 && !ev->needs_ack);
		fuzz_assert(ev->feed == FEED_AWS_MAINTENANCE);
		fuzz_assert(ev->end >= END_NONE && ev->end < _EVENT_END_MAX);
		fuzz_assert(ev->type == EVENT_REBOOT || ev->type == EVENT_FREEZE || ev->type == EVENT_TERMINATE);
		fuzz_assert(ev->n_resources == 0);
		fuzz_assert((ev->status == EVENT_STARTED) ==
			    (ev->not_before_usec != 0 && NOW_WALL_USEC >= ev->not_before_usec));
		fuzz_assert(strnlen(ev->note, sizeof(ev->note)) < sizeof(ev->note));
	}
	for (size_t i = 0; i < m.n_drops && i < PROVIDER_DROPS_MAX; i++) {
		fuzz_assert(m.drops[i].reason[0] != '\0');
		fuzz_assert(!m.drops[i].id[0] || event_id_valid(m.drops[i].id));
	}
	check_history(body, size, &m.events);
	aws_maintenance_done(&m);
}

/* Every byte of s satisfies ok. */
static bool all(const char *s, bool (*ok)(unsigned char c))
{
	for (; *s; s++)
		if (!ok((unsigned char)*s))
			return false;
	return true;
}

static bool region_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

static bool header_char(unsigned char c)
{
	return c > 0x20 && c < 0x7f;
}

static bool text_char(unsigned char c)
{
	return c >= 0x20 && c != 0x7f;
}

static bool key_id_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void check_identity(const char *body, size_t size)
{
	char buf[AWS_GROUP_MAX + 8];
	struct aws_credentials c;

	/* The region goes into a host name and the signing scope. */
	if (aws_parse_region(body, size, buf, sizeof(buf)) == 0)
		fuzz_assert(buf[0] && strlen(buf) < AWS_REGION_MAX && all(buf, region_char));
	if (aws_parse_document_region(body, size, buf, sizeof(buf)) == 0)
		fuzz_assert(buf[0] && strlen(buf) < AWS_REGION_MAX && all(buf, region_char));
	/* The role goes into a URL path. */
	if (aws_parse_role(body, size, buf, sizeof(buf)) == 0)
		fuzz_assert(buf[0] && strlen(buf) < AWS_ROLE_MAX && all(buf, header_char) &&
			    !strpbrk(buf, "/?#%&"));
	if (aws_parse_group_name(body, size, buf, sizeof(buf)) == 0)
		fuzz_assert(buf[0] && strlen(buf) < AWS_GROUP_MAX && all(buf, text_char));
	/* The key and secret go into user:password, the token into a header. */
	if (aws_parse_credentials(body, size, &c) == 0) {
		fuzz_assert(strlen(c.key_id) >= 16 && all(c.key_id, key_id_char));
		fuzz_assert(c.secret[0] && all(c.secret, header_char));
		fuzz_assert(c.token[0] && all(c.token, header_char));
		fuzz_assert(c.expiration_wall_usec != 0);
		aws_credentials_wipe(&c);
	}
}

static void check_autoscaling(const char *body, size_t size)
{
	struct autoscaling_answer a;
	char *value, *form;

	if (autoscaling_parse(body, size, &a) == 0) {
		fuzz_assert(a.root[0]);
		fuzz_assert(!a.error || a.code[0]);
		/* What goes into an error line: no control characters. */
		fuzz_assert(all(a.code, text_char) && all(a.message, text_char));
		fuzz_assert(all(a.group, text_char) && all(a.instance_id, text_char));
		fuzz_assert(a.n_instances > 0 || !a.group[0]);
	}
	/* Any value, escaped, is form-safe: unreserved bytes and %XX only. */
	value = malloc(size + 1);
	fuzz_assert(value);
	memcpy(value, body, size);
	value[size] = '\0';
	form = autoscaling_form("X", (const char *const[]){ "V", value, NULL });
	fuzz_assert(form);
	fuzz_assert(strncmp(form, "Action=X&Version=" AUTOSCALING_VERSION "&V=", 30) == 0);
	for (const char *p = form + 30; *p; p++) {
		if (*p == '%') {
			fuzz_assert(p[1] && p[2]);
			p += 2;
			continue;
		}
		fuzz_assert(unreserved((unsigned char)*p));
	}
	free(form);
	free(value);
}

static void check_text_items(const char *body, size_t size)
{
	static const char *const states[] = {
		"Terminated", "Warmed:Terminated", "Warmed:Stopped", "Warmed:Hibernated",
	};
	char token[AWS_TOKEN_MAX + 1], name[PROVIDER_NAME_MAX];
	int lifecycle = model_text(body, size, PROVIDER_TOKEN_MAX);
	int tok = model_text(body, size, AWS_TOKEN_MAX);
	int id = model_text(body, size, PROVIDER_NAME_MAX - 1);
	enum aws_target_state target = _AWS_TARGET_MAX, want = AWS_TARGET_OTHER;
	struct spot_event ev;

	fuzz_assert((aws_parse_lifecycle(body, size, &target) == 0) == (lifecycle >= 0));
	if (lifecycle >= 0) {
		for (size_t i = 0; i < ELEMENTSOF(states); i++)
			if ((size_t)lifecycle == strlen(states[i]) && memcmp(body, states[i], (size_t)lifecycle) == 0)
				want = (enum aws_target_state)(AWS_TARGET_TERMINATED + i);
		fuzz_assert(target == want);
	}

	/* The token goes into a request header: never a CR, LF or space. */
	fuzz_assert((aws_parse_token(body, size, token, sizeof(token)) == 0) == (tok >= 0));
	if (tok >= 0)
		fuzz_assert(strlen(token) == (size_t)tok && memcmp(token, body, (size_t)tok) == 0 &&
			    !strpbrk(token, "\r\n "));
	/* Too small a buffer refuses rather than cuts. */
	if (tok > 1)
		fuzz_assert(aws_parse_token(body, size, token, (size_t)tok) < 0);

	fuzz_assert((provider_parse_name(body, size, name, sizeof(name)) == 0) == (id >= 0));
	if (id < 0)
		return;
	fuzz_assert(strlen(name) == (size_t)id && memcmp(name, body, (size_t)id) == 0);
	/* Any instance id the parser accepts makes the Auto Scaling events,
	 * naming the whole id even when the key had to cut it. */
	for (int s = AWS_TARGET_TERMINATED; s < _AWS_TARGET_MAX; s++) {
		event_init(&ev);
		fuzz_assert(aws_lifecycle_event(name, (enum aws_target_state)s, AWS_ASG_NOTICE_SEC, s % 2, &ev) == 0);
		check_event_fields(&ev, PROVIDER_AWS);
		check_key(&ev, "aws-asg-");
		fuzz_assert(ev.type == EVENT_TERMINATE && ev.status == EVENT_SCHEDULED);
		fuzz_assert(ev.feed == FEED_AWS_LIFECYCLE && ev.needs_ack == (s % 2));
		fuzz_assert(ev.not_before_usec == 0 && ev.notice_usec == AWS_ASG_NOTICE_SEC * USEC_PER_SEC);
		fuzz_assert(ev.n_resources == 1 && strcmp(ev.resources[0], name) == 0);
		fuzz_assert(event_names_resource(&ev, name));
		event_done(&ev);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_copy(data, size);

	check_instance_action(body, size);
	check_maintenance(body, size);
	check_text_items(body, size);
	check_identity(body, size);
	check_autoscaling(body, size);
	free(body);
	return 0;
}
