/* fuzz-aws.c - libFuzzer target for the AWS item parsers: spot/instance-
 * action, the Auto Scaling target lifecycle state, the IMDSv2 token and the
 * instance id. Any answer body is parsed or refused without reading past its
 * length; the plain-text items agree with their contract written out in
 * fuzz-util.h; and whatever a parser accepts builds events that are valid,
 * keyed within PROVIDER_KEY_MAX and survive their JSON form. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz-util.h"
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
		fuzz_assert(ev.type == EVENT_PREEMPT && ev.n_resources == 0);
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

static void check_text_items(const char *body, size_t size)
{
	char token[AWS_TOKEN_MAX + 1], name[PROVIDER_NAME_MAX];
	int lifecycle = model_text(body, size, PROVIDER_TOKEN_MAX);
	int tok = model_text(body, size, AWS_TOKEN_MAX);
	int id = model_text(body, size, PROVIDER_NAME_MAX - 1);
	struct spot_event ev;
	bool terminating = false;

	fuzz_assert((aws_parse_lifecycle(body, size, &terminating) == 0) == (lifecycle >= 0));
	if (lifecycle >= 0)
		fuzz_assert(terminating == (lifecycle == 10 && memcmp(body, "Terminated", 10) == 0));

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
	/* Any instance id the parser accepts makes the Auto Scaling event,
	 * naming the whole id even when the key had to cut it. */
	event_init(&ev);
	fuzz_assert(aws_lifecycle_event(name, &ev) == 0);
	check_event_fields(&ev, PROVIDER_AWS);
	check_key(&ev, "aws-asg-terminate-");
	fuzz_assert(ev.type == EVENT_TERMINATE && ev.status == EVENT_SCHEDULED);
	fuzz_assert(ev.not_before_usec == 0 && ev.notice_usec == AWS_ASG_NOTICE_SEC * USEC_PER_SEC);
	fuzz_assert(ev.n_resources == 1 && strcmp(ev.resources[0], name) == 0);
	fuzz_assert(event_names_resource(&ev, name));
	event_done(&ev);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *body = fuzz_copy(data, size);

	check_instance_action(body, size);
	check_text_items(body, size);
	free(body);
	return 0;
}
