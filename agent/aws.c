/* aws.c - the AWS side of the wire: the IMDSv2 session token, the instance
 * id, and the items that announce an interruption (spot/instance-action, the
 * Auto Scaling target lifecycle state, the rebalance recommendation) become
 * struct spot_event. Parsers are pure; the round only chains requests through
 * watcher.c. It never logs and never trusts an answer: each is bounded and
 * checked before use. */
#include "provider.h"

#include <errno.h>
#include <inttypes.h>
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

/* Per-watcher state; the round's partial results are reset at its start. */
struct aws_state {
	char token[AWS_TOKEN_MAX + 1];
	uint64_t token_expiry_mono_usec;      /* 0 = no token held */
	struct watcher_sighting lifecycle;    /* "Terminated" while the ASG terminates us */

	/* This round. */
	bool retried;                         /* already redone once after a 401 */
	bool has_action;
	struct spot_event action;             /* valid when has_action */
	bool terminating;
};

/* Parses body[0..len) as one JSON value with nothing but whitespace after it. */
static cJSON *parse_json(const char *body, size_t len)
{
	const char *end = NULL;
	cJSON *root;

	if (!body || len == 0)
		return NULL;
	root = cJSON_ParseWithLengthOpts(body, len, &end, false);
	if (!root)
		return NULL;
	if (!end || end < body || end > body + len)
		goto bad;
	for (; end < body + len; end++)
		if (*end != ' ' && *end != '\t' && *end != '\r' && *end != '\n')
			goto bad;
	return root;
bad:
	cJSON_Delete(root);
	return NULL;
}

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
	root = parse_json(body, len);
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

	(void)snprintf(ev.id, sizeof(ev.id), "aws-spot-%s-%" PRIu64, name, not_before / USEC_PER_SEC);
	ev.type = EVENT_PREEMPT;
	/* The item stays listed while EC2 stops the instance: past its time
	 * the interruption is under way. */
	ev.status = now_wall_usec >= not_before ? EVENT_STARTED : EVENT_SCHEDULED;
	event_set_text(ev.source, sizeof(ev.source), "Platform");
	ev.not_before_usec = not_before;
	(void)snprintf(ev.description, sizeof(ev.description), "spot interruption: %s", name);
	ev.provider = PROVIDER_AWS;

	event_done(ret);
	*ret = ev;
	r = 0;
out:
	cJSON_Delete(root);
	return r;
}

int aws_parse_lifecycle(const char *body, size_t len, bool *ret_terminating)
{
	int k = watcher_parse_text(body, len, WATCHER_TOKEN_MAX);

	if (k < 0)
		return k;
	*ret_terminating = (size_t)k == strlen("Terminated") && memcmp(body, "Terminated", (size_t)k) == 0;
	return 0;
}

int aws_parse_token(const char *body, size_t len, char *ret, size_t n)
{
	int k = watcher_parse_text(body, len, AWS_TOKEN_MAX);

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

int aws_lifecycle_event(const char *instance_id, uint64_t first_seen_wall_usec,
			struct spot_event *ret)
{
	struct spot_event ev;
	int r;

	if (!instance_id || strnlen(instance_id, WATCHER_NAME_MAX) >= WATCHER_NAME_MAX)
		return -EINVAL;
	event_init(&ev);
	(void)snprintf(ev.id, sizeof(ev.id), "aws-asg-terminate-%s", instance_id);
	r = event_add_resource(&ev, instance_id);
	if (r < 0 || !event_id_valid(ev.id)) {
		event_done(&ev);
		return -EINVAL;
	}
	ev.type = EVENT_TERMINATE;
	ev.status = EVENT_SCHEDULED;
	/* The group acts on the account's behalf (scale-in, instance refresh,
	 * health replacement): not an EC2 capacity decision. */
	event_set_text(ev.source, sizeof(ev.source), "User");
	/* The item gives no time; a lifecycle hook holds the instance, and
	 * two minutes matches the Spot notice the hooks are written for. */
	ev.not_before_usec = first_seen_wall_usec + AWS_ASG_NOTICE_SEC * USEC_PER_SEC;
	event_set_text(ev.description, sizeof(ev.description),
		       "auto scaling: target lifecycle state Terminated");
	ev.provider = PROVIDER_AWS;

	event_done(ret);
	*ret = ev;
	return 0;
}

/* The round: [token] -> [instance-id] -> spot/instance-action ->
 * autoscaling/target-lifecycle-state -> events/recommendations/rebalance.
 * Every step is started from the previous step's callback. */

static int step(struct watcher *w, struct aws_state *s);

static bool is_404(const struct imds_reply *r)
{
	return r->result == IMDS_RESULT_HTTP_ERROR && r->status == 404;
}

static void reset_round(struct aws_state *s)
{
	s->has_action = false;
	event_done(&s->action);
	s->terminating = false;
}

/* A step failed to start from inside a callback: the round ends here. */
static void start_failed(struct watcher *w, const char *item, int r)
{
	watcher_fail(w, IMDS_RESULT_TRANSPORT, 0, "%s: cannot start request: %s", item, strerror(-r));
}

static void fail_reply(struct watcher *w, const char *item, const struct imds_reply *reply)
{
	watcher_fail(w, reply->result, reply->done_mono_usec, "%s: %s", item,
		     reply->error && reply->error[0] ? reply->error : "failed");
}

/* Handles an answer that is not a success: true when the round went on
 * (redone after a 401) or ended; false when the caller handles it (404). */
static bool handle_error(struct watcher *w, struct aws_state *s, const char *item,
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
		r = step(w, s);
		if (r < 0)
			start_failed(w, "api/token", r);
		return true;
	}
	fail_reply(w, item, reply);
	return true;
}

static int get(struct watcher *w, struct aws_state *s, enum imds_slot slot, const char *path,
	       imds_callback cb)
{
	char header[sizeof(TOKEN_HEADER) + AWS_TOKEN_MAX];
	const char *const headers[] = { header, NULL };

	(void)snprintf(header, sizeof(header), TOKEN_HEADER "%s", s->token);
	return watcher_request(w, slot, "GET", path, headers, cb);
}

static void on_rebalance(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct aws_state *s = watcher_state(w);
	const char *id = watcher_vm_name(w);
	struct event_list list = { 0 };
	uint64_t now, first_seen;
	int r;

	if (handle_error(w, s, "events/recommendations/rebalance", reply, true))
		return;
	/* Any 200 is a recommendation; its noticeTime is not needed. */
	watcher_set_rebalance(w, reply->result == IMDS_RESULT_OK);

	list.events = xcalloc(2, sizeof(*list.events));
	if (s->has_action) {
		list.events[list.n_events] = s->action;
		event_init(&s->action);
		s->has_action = false;
		r = event_add_resource(&list.events[list.n_events++], id);
		if (r < 0) {
			event_list_done(&list);
			watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
				     "instance-id: unusable as a resource name");
			return;
		}
	}
	/* Whole seconds, rounded down: the state changed before we read it,
	 * and a deadline a fraction early is the safe side. */
	now = now_usec(CLOCK_REALTIME);
	first_seen = watcher_sighting_update(&s->lifecycle, s->terminating ? "Terminated" : NULL,
					     now - now % USEC_PER_SEC);
	if (s->terminating) {
		event_init(&list.events[list.n_events]);
		r = aws_lifecycle_event(id, first_seen, &list.events[list.n_events]);
		if (r < 0) {
			event_list_done(&list);
			watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
				     "instance-id: unusable in an event id");
			return;
		}
		list.n_events++;
	}
	if (list.n_events == 0) {
		free(list.events);
		list.events = NULL;
	}
	watcher_finish(w, &list, reply->done_mono_usec);
}

static void on_lifecycle(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct aws_state *s = watcher_state(w);
	int r;

	/* 404: not in an Auto Scaling group, or too new to have a state. */
	if (handle_error(w, s, "autoscaling/target-lifecycle-state", reply, true))
		return;
	s->terminating = false;
	if (reply->result == IMDS_RESULT_OK &&
	    aws_parse_lifecycle(reply->body, reply->len, &s->terminating) < 0) {
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "autoscaling/target-lifecycle-state: unreadable answer");
		return;
	}
	r = get(w, s, IMDS_SLOT_POLL, AWS_REBALANCE_PATH, on_rebalance);
	if (r < 0)
		start_failed(w, "events/recommendations/rebalance", r);
}

static void on_action(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct aws_state *s = watcher_state(w);
	int r;

	/* 404: no interruption is planned. */
	if (handle_error(w, s, "spot/instance-action", reply, true))
		return;
	if (reply->result == IMDS_RESULT_OK) {
		if (aws_parse_instance_action(reply->body, reply->len, now_usec(CLOCK_REALTIME),
					      &s->action) < 0) {
			watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
				     "spot/instance-action: unreadable answer");
			return;
		}
		s->has_action = true;
	}
	r = get(w, s, IMDS_SLOT_POLL, AWS_LIFECYCLE_PATH, on_lifecycle);
	if (r < 0)
		start_failed(w, "autoscaling/target-lifecycle-state", r);
}

static void on_instance_id(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct aws_state *s = watcher_state(w);
	char id[WATCHER_NAME_MAX];
	int r;

	if (handle_error(w, s, "instance-id", reply, false))
		return;
	if (watcher_parse_name(reply->body, reply->len, id, sizeof(id)) < 0) {
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "instance-id: unreadable answer");
		return;
	}
	watcher_set_vm_name(w, id);
	r = step(w, s);
	if (r < 0)
		start_failed(w, "spot/instance-action", r);
}

static void on_token(const struct imds_reply *reply, void *userdata)
{
	struct watcher *w = userdata;
	struct aws_state *s = watcher_state(w);
	int r;

	if (reply->result != IMDS_RESULT_OK) {
		fail_reply(w, "api/token", reply);
		return;
	}
	if (aws_parse_token(reply->body, reply->len, s->token, sizeof(s->token)) < 0) {
		s->token[0] = '\0';
		watcher_fail(w, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec,
			     "api/token: unusable token");
		return;
	}
	/* Counted from when the request started: the token cannot have been
	 * issued earlier than that. */
	s->token_expiry_mono_usec = reply->done_mono_usec - reply->latency_usec +
				    AWS_TOKEN_TTL_SEC * USEC_PER_SEC;
	r = step(w, s);
	if (r < 0)
		start_failed(w, watcher_vm_name(w) ? "spot/instance-action" : "instance-id", r);
}

/* Starts the next request the round needs before the notice items. */
static int step(struct watcher *w, struct aws_state *s)
{
	static const char *const token_headers[] = {
		"X-aws-ec2-metadata-token-ttl-seconds: " STR(AWS_TOKEN_TTL_SEC), NULL,
	};

	if (aws_token_due(s->token_expiry_mono_usec, now_usec(CLOCK_MONOTONIC))) {
		s->token[0] = '\0';
		s->token_expiry_mono_usec = 0;
		return watcher_request(w, IMDS_SLOT_IDENTITY, "PUT", AWS_TOKEN_PATH, token_headers,
				       on_token);
	}
	if (!watcher_vm_name(w))
		return get(w, s, IMDS_SLOT_IDENTITY, AWS_INSTANCE_ID_PATH, on_instance_id);
	return get(w, s, IMDS_SLOT_POLL, AWS_ACTION_PATH, on_action);
}

static int start_round(struct watcher *w, void *state)
{
	struct aws_state *s = state;

	s->retried = false;
	reset_round(s);
	return step(w, s);
}

static void done_state(void *state)
{
	struct aws_state *s = state;

	event_done(&s->action);
}

const struct watcher_ops aws_watcher_ops = {
	.state_size = sizeof(struct aws_state),
	.start_round = start_round,
	.done_state = done_state,
};
