/* aws.c - AWS behind provider.h: the IMDSv2 session token, the instance
 * id, and the items that announce an interruption (spot/instance-action, the
 * Auto Scaling target lifecycle state) become struct spot_event; the
 * rebalance recommendation is reported with every round. Parsers are pure;
 * the round chains its requests through provider.c. It never logs and
 * never trusts an answer: each is bounded and checked before use. First
 * sightings are not kept here: the engine fixes and persists them. */
#include "clouds/provider-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "util.h"

#define AWS_TOKEN_PATH       "/latest/api/token"
#define AWS_INSTANCE_ID_PATH "/latest/meta-data/instance-id"
#define AWS_ACTION_PATH      "/latest/meta-data/spot/instance-action"
#define AWS_LIFECYCLE_PATH   "/latest/meta-data/autoscaling/target-lifecycle-state"
#define AWS_REBALANCE_PATH   "/latest/meta-data/events/recommendations/rebalance"

#define TOKEN_HEADER "X-aws-ec2-metadata-token: "
#define STR_(x) #x
#define STR(x) STR_(x)

/* Per-provider state; the round's partial results are reset at its start. */
struct aws_state {
	char token[AWS_TOKEN_MAX + 1];
	uint64_t token_expiry_mono_usec;      /* 0 = no token held */

	/* This round. */
	bool retried;                         /* already redone once after a 401 */
	bool has_action;
	struct spot_event action;             /* valid when has_action */
	bool terminating;
	bool rebalance;
};

int aws_parse_instance_action(const char *body, size_t len, uint64_t now_wall_usec,
			      struct spot_event *ret)
{
	static const char *const actions[] = { "terminate", "stop", "hibernate" };
	struct spot_event ev;
	const cJSON *action, *when;
	const char *name = NULL;
	uint64_t not_before;
	cJSON *root;
	int r = -EBADMSG;

	event_init(&ev);
	root = provider_parse_json(body, len);
	if (!cJSON_IsObject(root))
		goto out;
	action = cJSON_GetObjectItemCaseSensitive(root, "action");
	when = cJSON_GetObjectItemCaseSensitive(root, "time");
	if (!cJSON_IsString(action) || !action->valuestring ||
	    !cJSON_IsString(when) || !when->valuestring)
		goto out;
	for (size_t i = 0; i < ELEMENTSOF(actions); i++)
		if (strcmp(action->valuestring, actions[i]) == 0)
			name = actions[i];
	if (!name)
		goto out;
	if (event_parse_time(when->valuestring, &not_before) < 0 || not_before == 0)
		goto out;

	/* The key names the notice, not its time: EC2 (and its own mock)
	 * may move the time from one answer to the next, and the notice must
	 * stay one event. The engine makes the id unique at first sight. */
	(void)snprintf(ev.id, sizeof(ev.id), "aws-spot-%s", name);
	ev.id_from_first_seen = true;
	ev.type = EVENT_PREEMPT;
	/* The item stays listed while EC2 stops the instance: past its time
	 * the interruption is under way. */
	ev.status = now_wall_usec >= not_before ? EVENT_STARTED : EVENT_SCHEDULED;
	event_set_text(ev.source, sizeof(ev.source), "Platform");
	ev.not_before_usec = not_before;
	(void)snprintf(ev.description, sizeof(ev.description), "spot interruption: %s", name);
	ev.provider = PROVIDER_AWS;
	ev.feed = FEED_AWS_SPOT;

	event_done(ret);
	*ret = ev;
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}

int aws_parse_lifecycle(const char *body, size_t len, bool *ret_terminating)
{
	int k = provider_parse_text(body, len, PROVIDER_TOKEN_MAX);

	if (k < 0)
		return k;
	*ret_terminating = (size_t)k == strlen("Terminated") && memcmp(body, "Terminated", (size_t)k) == 0;
	return 0;
}

int aws_parse_token(const char *body, size_t len, char *ret, size_t n)
{
	int k = provider_parse_text(body, len, AWS_TOKEN_MAX);

	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}

bool aws_token_due(uint64_t expiry_mono_usec, uint64_t now_mono_usec)
{
	uint64_t margin = AWS_TOKEN_MARGIN_SEC * USEC_PER_SEC;

	if (expiry_mono_usec == 0)
		return true;
	return expiry_mono_usec <= margin || now_mono_usec >= expiry_mono_usec - margin;
}

int aws_lifecycle_event(const char *instance_id, struct spot_event *ret)
{
	static const char prefix[] = "aws-asg-terminate-";
	struct spot_event ev;
	size_t n, room = PROVIDER_KEY_MAX - 1 - (sizeof(prefix) - 1);

	if (!instance_id)
		return -EINVAL;
	n = strnlen(instance_id, PROVIDER_NAME_MAX);
	if (n == 0 || n >= PROVIDER_NAME_MAX)
		return -EINVAL;
	event_init(&ev);
	/* An id too long for the key is cut there; the resource keeps it. */
	(void)snprintf(ev.id, sizeof(ev.id), "%s%.*s", prefix, (int)(n < room ? n : room), instance_id);
	if (event_add_resource(&ev, instance_id) < 0 || !event_id_valid(ev.id)) {
		event_done(&ev);
		return -EINVAL;
	}
	ev.id_from_first_seen = true;
	ev.type = EVENT_TERMINATE;
	ev.status = EVENT_SCHEDULED;
	/* The group acts on the account's behalf (scale-in, instance refresh,
	 * health replacement): not an EC2 capacity decision. */
	event_set_text(ev.source, sizeof(ev.source), "User");
	/* The item gives no time; a lifecycle hook holds the instance, and
	 * two minutes matches the Spot notice the hooks are written for. The
	 * engine counts it from the first sighting. */
	ev.not_before_usec = 0;
	ev.notice_usec = AWS_ASG_NOTICE_SEC * USEC_PER_SEC;
	event_set_text(ev.description, sizeof(ev.description),
		       "auto scaling: target lifecycle state Terminated");
	ev.provider = PROVIDER_AWS;
	ev.feed = FEED_AWS_LIFECYCLE;

	event_done(ret);
	*ret = ev;
	return 0;
}

/* The round: [token] -> [instance-id] -> spot/instance-action ->
 * autoscaling/target-lifecycle-state -> events/recommendations/rebalance.
 * Every step is started from the previous step's reply, so the round costs
 * what it sends: 3 requests, plus the token when due, plus the instance id
 * while unknown (a 401 redoes the round once with a fresh token). */

static int step(struct provider_handle *p, struct aws_state *s);

static bool is_404(const struct imds_reply *r)
{
	return r->result == IMDS_RESULT_HTTP_ERROR && r->status == 404;
}

static void reset_round(struct aws_state *s)
{
	s->has_action = false;
	event_done(&s->action);
	s->terminating = false;
	s->rebalance = false;
}

/* Handles an answer that is not a success: true when the round went on
 * (redone after a 401) or ended; false when the caller handles it (a 404
 * where allowed). */
static bool handle_error(struct provider_handle *p, struct aws_state *s, const char *item,
			 const struct imds_reply *reply, bool allow_404)
{
	int r;

	if (reply->result == IMDS_RESULT_OK || (allow_404 && is_404(reply)))
		return false;
	if (reply->result == IMDS_RESULT_HTTP_ERROR && reply->status == 401 && !s->retried) {
		/* The token expired or was revoked early: one fresh token and
		 * one more try, never a loop. */
		s->retried = true;
		s->token[0] = '\0';
		s->token_expiry_mono_usec = 0;
		reset_round(s);
		r = step(p, s);
		if (r < 0)
			provider_fail_start(p, "api/token", r);
		return true;
	}
	provider_fail_reply(p, item, reply);
	return true;
}

static int get(struct provider_handle *p, struct aws_state *s, enum imds_slot slot, const char *path,
	       provider_reply_cb cb)
{
	char header[sizeof(TOKEN_HEADER) + AWS_TOKEN_MAX];
	const char *const headers[] = { header, NULL };

	(void)snprintf(header, sizeof(header), TOKEN_HEADER "%s", s->token);
	return provider_request(p, slot, "GET", path, headers, NULL, provider_timeout(p), cb);
}

static void on_rebalance(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	const char *id = provider_vm_name(p);
	struct provider_outcome o;
	struct event_list *list = &o.events;

	/* 404: no recommendation. */
	if (handle_error(p, s, "events/recommendations/rebalance", reply, true))
		return;
	provider_outcome_init(&o);
	/* Any 200 is a recommendation; its noticeTime is not needed. */
	o.rebalance = reply->result == IMDS_RESULT_OK;
	o.done_mono_usec = reply->done_mono_usec;

	list->events = xcalloc(2, sizeof(*list->events));
	if (s->has_action) {
		list->events[list->n_events] = s->action;
		event_init(&s->action);
		s->has_action = false;
		if (event_add_resource(&list->events[list->n_events++], id) < 0)
			goto bad_id;
	}
	if (s->terminating) {
		event_init(&list->events[list->n_events]);
		if (aws_lifecycle_event(id, &list->events[list->n_events]) < 0)
			goto bad_id;
		list->n_events++;
	}
	if (list->n_events == 0) {
		free(list->events);
		list->events = NULL;
	}
	reset_round(s);
	provider_finish(p, &o);
	return;

bad_id:
	provider_outcome_done(&o);
	reset_round(s);
	provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
		      "instance-id: unusable as a resource name");
}

static void on_lifecycle(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	int r;

	/* 404: not in an Auto Scaling group, or too new to have a state. */
	if (handle_error(p, s, "autoscaling/target-lifecycle-state", reply, true))
		return;
	s->terminating = false;
	if (reply->result == IMDS_RESULT_OK &&
	    aws_parse_lifecycle(reply->body, reply->len, &s->terminating) < 0) {
		reset_round(s);
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			      "autoscaling/target-lifecycle-state: unreadable answer");
		return;
	}
	r = get(p, s, IMDS_SLOT_POLL, AWS_REBALANCE_PATH, on_rebalance);
	if (r < 0) {
		reset_round(s);
		provider_fail_start(p, "events/recommendations/rebalance", r);
	}
}

static void on_action(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	int r;

	/* 404: no interruption is planned. */
	if (handle_error(p, s, "spot/instance-action", reply, true))
		return;
	if (reply->result == IMDS_RESULT_OK) {
		if (aws_parse_instance_action(reply->body, reply->len, now_usec(CLOCK_REALTIME),
					      &s->action) < 0) {
			reset_round(s);
			provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
				      "spot/instance-action: unreadable answer");
			return;
		}
		s->has_action = true;
	}
	r = get(p, s, IMDS_SLOT_POLL, AWS_LIFECYCLE_PATH, on_lifecycle);
	if (r < 0) {
		reset_round(s);
		provider_fail_start(p, "autoscaling/target-lifecycle-state", r);
	}
}

static void on_instance_id(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	char id[PROVIDER_NAME_MAX];
	int r;

	if (handle_error(p, s, "instance-id", reply, false))
		return;
	if (provider_parse_name(reply->body, reply->len, id, sizeof(id)) < 0) {
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			      "instance-id: unreadable answer");
		return;
	}
	provider_set_vm_name(p, id);
	r = step(p, s);
	if (r < 0)
		provider_fail_start(p, "spot/instance-action", r);
}

static void on_token(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		provider_fail_reply(p, "api/token", reply);
		return;
	}
	if (aws_parse_token(reply->body, reply->len, s->token, sizeof(s->token)) < 0) {
		s->token[0] = '\0';
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			      "api/token: unusable token");
		return;
	}
	/* Counted from when the request started: the token cannot have been
	 * issued earlier than that. */
	s->token_expiry_mono_usec = reply->done_mono_usec - reply->latency_usec +
				    AWS_TOKEN_TTL_SEC * USEC_PER_SEC;
	r = step(p, s);
	if (r < 0)
		provider_fail_start(p, provider_vm_name(p) ? "spot/instance-action" : "instance-id", r);
}

/* Starts the next request the round needs before the notice items. */
static int step(struct provider_handle *p, struct aws_state *s)
{
	static const char *const token_headers[] = {
		"X-aws-ec2-metadata-token-ttl-seconds: " STR(AWS_TOKEN_TTL_SEC), NULL,
	};

	if (aws_token_due(s->token_expiry_mono_usec, now_usec(CLOCK_MONOTONIC))) {
		s->token[0] = '\0';
		s->token_expiry_mono_usec = 0;
		return provider_request(p, IMDS_SLOT_IDENTITY, "PUT", AWS_TOKEN_PATH, token_headers, "",
					provider_timeout(p), on_token);
	}
	if (!provider_vm_name(p))
		return get(p, s, IMDS_SLOT_IDENTITY, AWS_INSTANCE_ID_PATH, on_instance_id);
	return get(p, s, IMDS_SLOT_POLL, AWS_ACTION_PATH, on_action);
}

static unsigned round_cost(const struct provider_handle *p, const void *state)
{
	const struct aws_state *s = state;

	return 3 + (aws_token_due(s->token_expiry_mono_usec, now_usec(CLOCK_MONOTONIC)) ? 1 : 0) +
	       (provider_vm_name(p) ? 0 : 1);
}

static int start_round(struct provider_handle *p, void *state)
{
	struct aws_state *s = state;

	s->retried = false;
	reset_round(s);
	return step(p, s);
}

static void done_state(void *state)
{
	struct aws_state *s = state;

	event_done(&s->action);
}

/* The probe asks for a short-lived token: only IMDSv2 answers a PUT to
 * this path with a token. */
static const char *const probe_headers[] = { "X-aws-ec2-metadata-token-ttl-seconds: 60", NULL };

static bool probe_accept(const struct imds_reply *r)
{
	char token[AWS_TOKEN_MAX + 1];

	return aws_parse_token(r->body, r->len, token, sizeof(token)) == 0;
}

const struct provider_ops aws_provider_ops = {
	.kind = PROVIDER_AWS,
	.state_size = sizeof(struct aws_state),
	.round_cost = round_cost,
	.start_round = start_round,
	.approve = NULL,
	.done_state = done_state,
	.probe_method = "PUT",
	.probe_path = AWS_TOKEN_PATH,
	.probe_headers = probe_headers,
	.probe_accept = probe_accept,
};
