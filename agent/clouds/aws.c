/* aws.c - AWS behind provider.h: a round's requests and how their answers
 * become struct spot_event. It holds the session with the metadata service
 * (an IMDSv2 token, or IMDSv1 when tokens are refused and the fallback is
 * on), sends the essential spot/instance-action and, beside it, the
 * optional items (target lifecycle state, rebalance, scheduled maintenance
 * and, when an event left that list, its history, the Auto Scaling
 * identity) whose failures never discard the essential answer. It never
 * logs and never trusts an answer (aws-parse.c and aws-identity.c check
 * each); first sightings are the engine's to keep, what the maintenance
 * list held is the provider's (EC2 moves a completed or canceled event
 * from it to its history, which alone tells which it was). */
#include "clouds/aws-internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "engine/poll.h"
#include "util.h"

#define AWS_TOKEN_PATH       "/latest/api/token"
#define AWS_INSTANCE_ID_PATH "/latest/meta-data/instance-id"
#define AWS_ACTION_PATH      "/latest/meta-data/spot/instance-action"
#define AWS_LIFECYCLE_PATH   "/latest/meta-data/autoscaling/target-lifecycle-state"
#define AWS_REBALANCE_PATH   "/latest/meta-data/events/recommendations/rebalance"
#define AWS_MAINTENANCE_PATH "/latest/meta-data/events/maintenance/scheduled"
#define AWS_HISTORY_PATH     "/latest/meta-data/events/maintenance/history"

#define STR_(x) #x
#define STR(x) STR_(x)

#define AWS_FEEDS ((1u << FEED_AWS_SPOT) | (1u << FEED_AWS_LIFECYCLE) | (1u << FEED_AWS_MAINTENANCE))

/* The round: [token] -> three chains at once, each of requests started
 * from the previous one's reply:
 *   POLL      [instance-id] -> spot/instance-action        essential
 *   SIDE      target-lifecycle-state -> rebalance -> maintenance/scheduled
 *             [-> maintenance/history]                     optional
 *   IDENTITY  [one Auto Scaling identity item]             optional
 * A round sends at most POLL_RATE_MAX requests when nothing fails: the
 * optional items, in the order above, fill what the token, the instance id
 * and the spot notice leave of it, and the rest wait for the next round
 * (the first one leaves events/maintenance/scheduled and the identity out;
 * their feeds are then not among those answered). The history is asked
 * only once a list that answered misses an event an earlier one held
 * live: once, in a later round (its cost is known as the round starts),
 * after the list, in the identity item's place when there is room for one
 * of them only; what it says is handed with a round whose list answered.
 * A chain goes on whatever the others answer, so what a round sends
 * depends on its own answers only: the essential chain stops at its first
 * failure, an optional item that fails is noted and the next one asked, a
 * 401 stops the chain that got it. The round ends once no chain has a
 * request in flight: redone once after a 401 (with a fresh token), failed
 * when the essential chain failed, else handed over with the feeds that
 * answered. */

/* The side chain's items, in their order. */
enum side_item {
	SIDE_LIFECYCLE,
	SIDE_REBALANCE,
	SIDE_MAINTENANCE,
	SIDE_HISTORY,        /* only when due: the last */
	_SIDE_MAX,
};

static int begin(struct provider_handle *p, struct aws_state *s);

void aws_token_headers(const struct aws_state *s, char *buf, size_t n, const char *headers[2])
{
	headers[0] = NULL;
	headers[1] = NULL;
	if (s->v1 || !s->token[0])
		return;
	(void)snprintf(buf, n, AWS_TOKEN_HEADER "%s", s->token);
	headers[0] = buf;
}

void aws_token_drop(struct aws_state *s)
{
	s->token[0] = '\0';
	s->token_expiry_mono_usec = 0;
}

/* When the token is asked again while reading without one. */
static uint64_t v2_retry_at(const struct provider_handle *p, uint64_t now_mono)
{
	uint64_t sec = provider_cfg(p)->aws_token_retry_sec;

	return now_mono + (sec ? sec : AWS_V1_RETRY_SEC) * USEC_PER_SEC;
}

static bool session_due(const struct aws_state *s, uint64_t now_mono)
{
	return s->v1 ? now_mono >= s->v2_retry_mono_usec : aws_token_due(s->token_expiry_mono_usec, now_mono);
}

/* The Auto Scaling identity item this round asks, AWS_ITEM_NONE if none:
 * only for a configured lifecycle hook, one at a time, not soon again
 * after a failure. */
static enum aws_item identity_due(const struct provider_handle *p, const struct aws_state *s)
{
	if (!provider_has_lifecycle_hook(p) || now_usec(CLOCK_MONOTONIC) < s->identity_retry_mono_usec)
		return AWS_ITEM_NONE;
	return aws_identity_next(&s->id, now_usec(CLOCK_REALTIME));
}

/* Whether a round starting now asks events/maintenance/history. */
static bool history_due(const struct aws_state *s)
{
	return s->maint.n_missing > 0;
}

/* The optional requests a round starting now sends: the side items (the
 * history when due), then the identity item when one is due, within the
 * round's budget. */
static unsigned optional_budget(const struct provider_handle *p, const struct aws_state *s)
{
	unsigned essential = (session_due(s, now_usec(CLOCK_MONOTONIC)) ? 1 : 0) + (provider_vm_name(p) ? 0 : 1) + 1;
	unsigned want = SIDE_HISTORY + (history_due(s) ? 1 : 0) + (identity_due(p, s) != AWS_ITEM_NONE ? 1 : 0);
	unsigned room = POLL_RATE_MAX > essential ? POLL_RATE_MAX - essential : 0;

	return want < room ? want : room;
}

static void reset_round(struct aws_round *rd)
{
	bool retried = rd->retried;

	event_done(&rd->action);
	aws_maintenance_done(&rd->maintenance);
	*rd = (struct aws_round){ .retried = retried };
	event_init(&rd->action);
}

static void note_done(struct aws_round *rd, const struct imds_reply *r)
{
	if (r->done_mono_usec > rd->done_mono_usec)
		rd->done_mono_usec = r->done_mono_usec;
}

static void fail_later(struct aws_round *rd, enum imds_result result, const char *item, const char *error)
{
	if (rd->failed)
		return;
	rd->failed = true;
	rd->fail_result = result == IMDS_RESULT_OK ? IMDS_RESULT_BAD_DOCUMENT : result;
	(void)snprintf(rd->fail_error, sizeof(rd->fail_error), "%s: %s", item,
		       error && error[0] ? error : "failed");
}

/* A 401 on the round's first try: true, and the round is redone once the
 * chains are idle (the chain that got it stops). A second 401 is a plain
 * failure. */
static bool wants_redo(struct aws_round *rd, const struct imds_reply *r)
{
	if (r->result == IMDS_RESULT_OK || r->status != 401 || rd->retried)
		return false;
	rd->redo = true;
	return true;
}

static int get(struct provider_handle *p, struct aws_state *s, enum imds_slot slot, const char *path,
	       unsigned flags, provider_reply_cb cb)
{
	char header[AWS_TOKEN_HEADER_MAX];
	const char *headers[2];

	aws_token_headers(s, header, sizeof(header), headers);
	return provider_request(p, slot, "GET", path, headers, NULL, provider_timeout(p), flags, cb);
}

/* An item that is absent: a 404 taken for an answer. */
static bool absent(const struct imds_reply *r)
{
	return r->result == IMDS_RESULT_OK && r->status == 404;
}

/* ---- the end of a round ---- */

static void finish(struct provider_handle *p, struct aws_state *s)
{
	struct aws_round *rd = &s->round;
	const char *id = provider_vm_name(p);
	const struct provider_config *cfg = provider_cfg(p);
	bool hook = provider_has_lifecycle_hook(p);
	struct provider_outcome o;
	struct event_list *list = &o.events;
	size_t cap;

	provider_outcome_init(&o);
	o.done_mono_usec = rd->done_mono_usec;
	o.rebalance = s->rebalance;
	o.feeds_answered = 1u << FEED_AWS_SPOT;
	cap = 2 + rd->maintenance.events.n_events + s->maint.ended.n_events;
	list->events = xcalloc(cap, sizeof(*list->events));
	if (rd->has_action) {
		list->events[list->n_events] = rd->action;
		event_init(&rd->action);
		rd->has_action = false;
		if (event_add_resource(&list->events[list->n_events++], id) < 0)
			goto bad_id;
	}
	if (rd->lifecycle_answered) {
		o.feeds_answered |= 1u << FEED_AWS_LIFECYCLE;
		if (rd->target != AWS_TARGET_OTHER) {
			event_init(&list->events[list->n_events]);
			if (aws_lifecycle_event(id, rd->target,
						hook ? cfg->aws_heartbeat_timeout_sec : AWS_ASG_NOTICE_SEC, hook,
						&list->events[list->n_events]) < 0)
				goto bad_id;
			list->n_events++;
		}
	}
	if (rd->maintenance_answered) {
		struct aws_maintenance *m = &rd->maintenance;

		o.feeds_answered |= 1u << FEED_AWS_MAINTENANCE;
		for (size_t i = 0; i < m->events.n_events; i++) {
			list->events[list->n_events] = m->events.events[i];
			event_init(&m->events.events[i]);
			if (event_add_resource(&list->events[list->n_events++], id) < 0)
				goto bad_id;
		}
		memcpy(o.drops, m->drops, sizeof(o.drops));
		o.n_drops = m->n_drops;
		/* What the history said is over, each once, as room is left. */
		while (list->n_events < EVENTS_MAX && aws_maintenance_take_ended(&s->maint, &list->events[list->n_events]))
			if (event_add_resource(&list->events[list->n_events++], id) < 0)
				goto bad_id;
	}
	if (list->n_events == 0) {
		free(list->events);
		list->events = NULL;
	}
	reset_round(rd);
	provider_finish(p, &o);
	return;

bad_id:
	provider_outcome_done(&o);
	reset_round(rd);
	provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, 0, "instance-id: unusable as a resource name");
}

/* Ends the round once no chain has a request in flight. */
static void settle(struct provider_handle *p, struct aws_state *s)
{
	struct aws_round *rd = &s->round;
	int r;

	if (provider_request_busy(p, IMDS_SLOT_POLL) || provider_request_busy(p, IMDS_SLOT_SIDE) ||
	    provider_request_busy(p, IMDS_SLOT_IDENTITY))
		return;
	if (rd->redo) {
		/* The token expired or was revoked early, or the service wants
		 * tokens now: one fresh token and one more try, never a loop. */
		reset_round(rd);
		rd->retried = true;
		if (s->v1) {
			s->v1 = false;
			provider_set_imds_v1(p, false, "an item answered 401 without a session token: back to "
						       "IMDSv2 session tokens");
		}
		aws_token_drop(s);
		r = begin(p, s);
		if (r < 0)
			provider_fail_start(p, "api/token", r);
		return;
	}
	if (rd->failed) {
		char error[IMDS_ERROR_MAX];
		enum imds_result result = rd->fail_result;
		uint64_t done = rd->done_mono_usec;

		memcpy(error, rd->fail_error, sizeof(error));
		reset_round(rd);
		provider_fail(p, result, done, "%s", error);
		return;
	}
	finish(p, s);
}

/* ---- the side chain: the optional notice items ---- */

static void on_side(struct provider_handle *p, void *state, const struct imds_reply *reply);

static const struct {
	const char *item;
	const char *path;
} side_items[_SIDE_MAX] = {
	[SIDE_LIFECYCLE] = { "autoscaling/target-lifecycle-state", AWS_LIFECYCLE_PATH },
	[SIDE_REBALANCE] = { "events/recommendations/rebalance", AWS_REBALANCE_PATH },
	[SIDE_MAINTENANCE] = { "events/maintenance/scheduled", AWS_MAINTENANCE_PATH },
	[SIDE_HISTORY] = { "events/maintenance/history", AWS_HISTORY_PATH },
};

/* Starts the next optional item, if any is left. */
static void side_next(struct provider_handle *p, struct aws_state *s)
{
	struct aws_round *rd = &s->round;

	while (rd->side_next < rd->side_n && rd->side_next < rd->optional_n) {
		unsigned i = rd->side_next++;
		int r = get(p, s, IMDS_SLOT_SIDE, side_items[i].path, PROVIDER_ANSWER_404, on_side);
		char error[96];

		if (r >= 0)
			return;
		(void)snprintf(error, sizeof(error), "cannot start request: %s", strerror(-r));
		provider_add_optional_error(p, side_items[i].item, error);
	}
}

static void on_side(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	struct aws_round *rd = &s->round;
	unsigned i = rd->side_next - 1;
	const char *item = side_items[i].item;
	bool unreadable = false;

	note_done(rd, reply);
	if (wants_redo(rd, reply)) {
		settle(p, s);
		return;
	}
	if (reply->result != IMDS_RESULT_OK) {
		provider_add_optional_error(p, item, reply->error);
		if (i == SIDE_HISTORY)
			aws_maintenance_history(&s->maint, NULL);
	} else if (i == SIDE_LIFECYCLE) {
		/* 404: in no Auto Scaling group, or too new to have a state. */
		rd->target = AWS_TARGET_OTHER;
		unreadable = !absent(reply) && aws_parse_lifecycle(reply->body, reply->len, &rd->target) < 0;
		rd->lifecycle_answered = !unreadable;
	} else if (i == SIDE_REBALANCE) {
		/* Any 200 is a recommendation; its noticeTime is not needed. */
		s->rebalance = !absent(reply);
	} else if (i == SIDE_MAINTENANCE) {
		/* 404 (or []): nothing scheduled. */
		unreadable = !absent(reply) &&
			     aws_parse_maintenance(reply->body, reply->len, now_usec(CLOCK_REALTIME),
						   &rd->maintenance) < 0;
		rd->maintenance_answered = !unreadable;
		if (rd->maintenance_answered)
			aws_maintenance_listed(&s->maint, &rd->maintenance.events);
	} else {
		/* 404 (or []): nothing is over. */
		struct event_list found = { 0 };

		unreadable = !absent(reply) &&
			     aws_parse_maintenance_history(reply->body, reply->len, now_usec(CLOCK_REALTIME),
							   (const char (*)[EVENT_ID_MAX])s->maint.missing,
							   s->maint.n_missing, &found) < 0;
		aws_maintenance_history(&s->maint, &found);
		event_list_done(&found);
	}
	if (unreadable)
		provider_add_optional_error(p, item, "unreadable answer");
	side_next(p, s);
	settle(p, s);
}

/* ---- the identity chain: one Auto Scaling identity item ---- */

static void on_identity(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	struct aws_round *rd = &s->round;
	const char *item = aws_item_name(rd->item);
	bool failed = false;

	note_done(rd, reply);
	if (wants_redo(rd, reply)) {
		settle(p, s);
		return;
	}
	if (reply->result != IMDS_RESULT_OK) {
		provider_add_optional_error(p, item, reply->error);
		/* The role was replaced (or removed): ask which it is now. */
		if (rd->item == AWS_ITEM_CREDENTIALS && reply->status == 404)
			aws_identity_drop_credentials(&s->id);
		failed = true;
	} else if (aws_identity_take(&s->id, rd->item, reply) < 0) {
		provider_add_optional_error(p, item, "unreadable answer");
		failed = true;
	} else if (aws_identity_next(&s->id, now_usec(CLOCK_REALTIME)) == rd->item) {
		/* Still due once taken (credentials the service renews late):
		 * not every round. */
		failed = true;
	}
	if (failed)
		s->identity_retry_mono_usec = now_usec(CLOCK_MONOTONIC) + AWS_IDENTITY_RETRY_SEC * USEC_PER_SEC;
	settle(p, s);
}

static void identity_start(struct provider_handle *p, struct aws_state *s)
{
	struct aws_round *rd = &s->round;
	char path[256], error[96];
	int r;

	rd->item = rd->optional_n > rd->side_n ? identity_due(p, s) : AWS_ITEM_NONE;
	if (rd->item == AWS_ITEM_NONE)
		return;
	r = aws_item_path(&s->id, rd->item, path, sizeof(path));
	if (r >= 0)
		r = get(p, s, IMDS_SLOT_IDENTITY, path,
			aws_item_404_is_answer(rd->item) ? PROVIDER_ANSWER_404 : 0, on_identity);
	if (r < 0) {
		(void)snprintf(error, sizeof(error), "cannot start request: %s", strerror(-r));
		provider_add_optional_error(p, aws_item_name(rd->item), error);
	}
}

/* ---- the essential chain ---- */

static void on_action(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	struct aws_round *rd = &s->round;

	note_done(rd, reply);
	if (wants_redo(rd, reply)) {
		settle(p, s);
		return;
	}
	/* 404: no interruption is planned. */
	if (reply->result != IMDS_RESULT_OK)
		fail_later(rd, reply->result, "spot/instance-action", reply->error);
	else if (!absent(reply)) {
		if (aws_parse_instance_action(reply->body, reply->len, now_usec(CLOCK_REALTIME), &rd->action) < 0)
			fail_later(rd, IMDS_RESULT_BAD_DOCUMENT, "spot/instance-action", "unreadable answer");
		else
			rd->has_action = true;
	}
	settle(p, s);
}

static int action_start(struct provider_handle *p, struct aws_state *s)
{
	return get(p, s, IMDS_SLOT_POLL, AWS_ACTION_PATH, PROVIDER_ANSWER_404, on_action);
}

static void on_instance_id(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	struct aws_round *rd = &s->round;
	char id[PROVIDER_NAME_MAX];
	int r;

	note_done(rd, reply);
	if (wants_redo(rd, reply)) {
		settle(p, s);
		return;
	}
	if (reply->result != IMDS_RESULT_OK) {
		fail_later(rd, reply->result, "instance-id", reply->error);
	} else if (provider_parse_name(reply->body, reply->len, id, sizeof(id)) < 0) {
		fail_later(rd, IMDS_RESULT_BAD_DOCUMENT, "instance-id", "unreadable answer");
	} else {
		provider_set_vm_name(p, id);
		r = action_start(p, s);
		if (r < 0) {
			char error[96];

			(void)snprintf(error, sizeof(error), "cannot start request: %s", strerror(-r));
			fail_later(rd, IMDS_RESULT_TRANSPORT, "spot/instance-action", error);
		}
	}
	settle(p, s);
}

/* Starts the three chains. 0, or -errno when the essential one could not
 * start (nothing of this step is in flight then). */
static int items(struct provider_handle *p, struct aws_state *s)
{
	int r;

	if (!provider_vm_name(p))
		r = get(p, s, IMDS_SLOT_POLL, AWS_INSTANCE_ID_PATH, 0, on_instance_id);
	else
		r = action_start(p, s);
	if (r < 0)
		return r;
	side_next(p, s);
	identity_start(p, s);
	return 0;
}

/* ---- the session ---- */

static void on_token(struct provider_handle *p, void *state, const struct imds_reply *reply)
{
	struct aws_state *s = state;
	struct aws_round *rd = &s->round;
	uint64_t now = now_usec(CLOCK_MONOTONIC);
	bool refused = (reply->result == IMDS_RESULT_HTTP_ERROR &&
			(reply->status == 403 || reply->status == 404 || reply->status == 405)) ||
		       reply->result == IMDS_RESULT_TIMEOUT;
	int r;

	note_done(rd, reply);
	if (reply->result == IMDS_RESULT_OK &&
	    aws_parse_token(reply->body, reply->len, s->token, sizeof(s->token)) == 0) {
		/* Counted from when the request started: the token cannot have
		 * been issued earlier than that. */
		s->token_expiry_mono_usec = reply->done_mono_usec - reply->latency_usec +
					    AWS_TOKEN_TTL_SEC * USEC_PER_SEC;
		if (s->v1) {
			s->v1 = false;
			provider_set_imds_v1(p, false, "api/token answered: back to IMDSv2 session tokens");
		}
	} else if (s->v1) {
		/* Asked again while reading without a token: whatever the
		 * answer, that goes on until the next try. */
		aws_token_drop(s);
		s->v2_retry_mono_usec = v2_retry_at(p, now);
	} else if (refused && provider_cfg(p)->aws_imds_fallback) {
		uint64_t every = (v2_retry_at(p, now) - now) / USEC_PER_SEC;
		char change[IMDS_ERROR_MAX];

		aws_token_drop(s);
		s->v1 = true;
		s->v2_retry_mono_usec = v2_retry_at(p, now);
		(void)snprintf(change, sizeof(change),
			       "api/token: %s: reading the metadata service without a session token "
			       "(IMDSv1), asking for one again every %" PRIu64 " s", reply->error, every);
		provider_set_imds_v1(p, true, change);
	} else if (reply->result != IMDS_RESULT_OK) {
		aws_token_drop(s);
		provider_fail_reply(p, "api/token", reply);
		return;
	} else {
		aws_token_drop(s);
		provider_fail(p, IMDS_RESULT_BAD_DOCUMENT, reply->done_mono_usec, "api/token: unusable token");
		return;
	}
	r = items(p, s);
	if (r < 0)
		provider_fail_start(p, provider_vm_name(p) ? "spot/instance-action" : "instance-id", r);
}

/* Starts the round's first request: the token when due, else the items. */
static int begin(struct provider_handle *p, struct aws_state *s)
{
	static const char *const token_headers[] = {
		"X-aws-ec2-metadata-token-ttl-seconds: " STR(AWS_TOKEN_TTL_SEC), NULL,
	};
	uint64_t timeout = provider_timeout(p);

	/* Fixed as the round starts, as round_cost counted it. */
	s->round.optional_n = optional_budget(p, s);
	s->round.side_n = history_due(s) ? _SIDE_MAX : SIDE_HISTORY;
	if (!session_due(s, now_usec(CLOCK_MONOTONIC)))
		return items(p, s);
	/* With the fallback, a token that does not come within a second is
	 * taken as IMDSv2 out of reach (a container behind the hop limit). */
	if (provider_cfg(p)->aws_imds_fallback && timeout > AWS_TOKEN_FALLBACK_TIMEOUT_SEC * USEC_PER_SEC)
		timeout = AWS_TOKEN_FALLBACK_TIMEOUT_SEC * USEC_PER_SEC;
	return provider_request(p, IMDS_SLOT_IDENTITY, "PUT", AWS_TOKEN_PATH, token_headers, "", timeout, 0,
				on_token);
}

static unsigned round_cost(const struct provider_handle *p, const void *state)
{
	const struct aws_state *s = state;

	return (session_due(s, now_usec(CLOCK_MONOTONIC)) ? 1 : 0) + (provider_vm_name(p) ? 0 : 1) + 1 +
	       optional_budget(p, s);
}

static int start_round(struct provider_handle *p, void *state)
{
	struct aws_state *s = state;

	reset_round(&s->round);
	s->round.retried = false;
	return begin(p, s);
}

static void done_state(void *state)
{
	struct aws_state *s = state;

	reset_round(&s->round);
	event_done(&s->round.action);
	event_list_done(&s->maint.ended);
	aws_identity_done(&s->id);
}

/* The probe asks for a short-lived token: only IMDSv2 answers a PUT to
 * this path with a token. */
static const char *const probe_headers[] = { "X-aws-ec2-metadata-token-ttl-seconds: 60", NULL };

static bool probe_accept(const struct imds_reply *r)
{
	char token[AWS_TOKEN_MAX + 1];

	return aws_parse_token(r->body, r->len, token, sizeof(token)) == 0;
}

/* An Auto Scaling call sends no metadata request of its own, only those
 * for the identity items it still lacks. */
static unsigned call_cost(const struct provider_handle *p, const void *state)
{
	const struct aws_state *s = state;

	return aws_identity_missing(&s->id, now_usec(CLOCK_REALTIME));
}

const struct provider_ops aws_provider_ops = {
	.kind = PROVIDER_AWS,
	.state_size = sizeof(struct aws_state),
	.feeds = AWS_FEEDS,
	.round_cost = round_cost,
	.start_round = start_round,
	.can_approve = aws_can_approve,
	.approve = aws_approve,
	.heartbeat = aws_heartbeat,
	.call_cost = call_cost,
	.heartbeat_period = aws_heartbeat_period,
	.done_state = done_state,
	.probe_method = "PUT",
	.probe_path = AWS_TOKEN_PATH,
	.probe_headers = probe_headers,
	.probe_accept = probe_accept,
};
