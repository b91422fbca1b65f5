/* aws-lifecycle.c - the AWS provider's side of an Auto Scaling lifecycle
 * hook: CompleteLifecycleAction as the acknowledgement of a hooked
 * termination, RecordLifecycleActionHeartbeat while its chain runs. A call
 * first fetches what it lacks (region, group, role, credentials: the rounds
 * usually have them already), asks DescribeAutoScalingInstances for the
 * group when instance tags are off, and fetches the credentials once more
 * when AWS says they expired. When to call is the engine's decision; this
 * file logs that renewal alone (an info line with AWS's code), and its
 * error lines carry AWS's code and message. */
#include "clouds/aws-internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clouds/autoscaling.h"
#include "log.h"
#include "util.h"

#define OP_METADATA_TIMEOUT_USEC (2 * USEC_PER_SEC)  /* before any round set one */

static const char *op_action(const struct aws_op *op)
{
	return op->kind == AWS_OP_COMPLETE ? "CompleteLifecycleAction" : "RecordLifecycleActionHeartbeat";
}

/* Ends the call in flight; nothing may touch the provider after it. */
static void op_end(struct provider_handle *p, struct aws_state *s, enum imds_result result, const char *line)
{
	enum aws_op_kind kind = s->op.kind;

	s->op = (struct aws_op){ 0 };
	if (kind == AWS_OP_COMPLETE)
		provider_approve_end(p, result, line);
	else
		provider_heartbeat_end(p, result, line);
}

static int op_step(struct provider_handle *p, struct aws_state *s);

static void op_continue(struct provider_handle *p, struct aws_state *s)
{
	char line[IMDS_ERROR_MAX];
	int r = op_step(p, s);

	if (r >= 0)
		return;
	(void)snprintf(line, sizeof(line), "%s: cannot start request: %s", op_action(&s->op), strerror(-r));
	op_end(p, s, IMDS_RESULT_TRANSPORT, line);
}

static void on_item(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	struct aws_state *s = state;
	char line[IMDS_ERROR_MAX];
	const char *item = aws_item_name(s->op.item);

	if (r->result != IMDS_RESULT_OK) {
		if (s->op.item == AWS_ITEM_CREDENTIALS && r->status == 404)
			aws_identity_drop_credentials(&s->id);
		/* The next round takes a fresh token. */
		if (r->status == 401)
			aws_token_drop(s);
		(void)snprintf(line, sizeof(line), "%s: %s: %s", op_action(&s->op), item, r->error);
		op_end(p, s, r->result, line);
		return;
	}
	if (aws_identity_take(&s->id, s->op.item, r) < 0) {
		(void)snprintf(line, sizeof(line), "%s: %s: unreadable answer", op_action(&s->op), item);
		op_end(p, s, IMDS_RESULT_BAD_DOCUMENT, line);
		return;
	}
	op_continue(p, s);
}

/* An answer of the Auto Scaling API (line: its "<Action>: <Code>:
 * <Message>"): true when it was ExpiredToken for the first time, and the
 * credentials are fetched again before the call, which is logged. */
static bool expired_once(struct aws_state *s, bool expired, const char *line)
{
	if (!expired || s->op.retried)
		return false;
	s->op.retried = true;
	s->op.creds_fetched = false;
	s->id.creds_stale = true;
	log_info("aws: %s; fetching the role's credentials again and retrying", line);
	return true;
}

static void on_describe(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	struct aws_state *s = state;
	struct autoscaling_answer ans;
	char line[IMDS_ERROR_MAX], action[80];
	enum imds_result result;
	bool expired;

	(void)snprintf(action, sizeof(action), "%s: DescribeAutoScalingInstances", op_action(&s->op));
	result = autoscaling_outcome(action, r, line, sizeof(line), &expired, &ans);
	if (result == IMDS_RESULT_OK) {
		if (ans.n_instances == 0 || !ans.group[0]) {
			(void)snprintf(line, sizeof(line), "%s: this instance is in no Auto Scaling group", action);
			op_end(p, s, IMDS_RESULT_BAD_DOCUMENT, line);
			return;
		}
		(void)strscpy(s->id.group, sizeof(s->id.group), ans.group);
		op_continue(p, s);
		return;
	}
	if (expired_once(s, expired, line)) {
		op_continue(p, s);
		return;
	}
	op_end(p, s, result, line);
}

static void on_call(struct provider_handle *p, void *state, const struct imds_reply *r)
{
	struct aws_state *s = state;
	char line[IMDS_ERROR_MAX];
	enum imds_result result;
	bool expired;

	result = autoscaling_outcome(op_action(&s->op), r, line, sizeof(line), &expired, NULL);
	if (result != IMDS_RESULT_OK && expired_once(s, expired, line)) {
		op_continue(p, s);
		return;
	}
	op_end(p, s, result, line);
}

/* Sends a form to the Auto Scaling API, signed with the role's
 * credentials. The Query API lives at the endpoint's "/": a configured URL
 * (whose trailing '/' the config drops) gets it back. */
static int send_form(struct provider_handle *p, struct aws_state *s, const char *body, provider_reply_cb cb)
{
	const char *cfg_url = provider_cfg(p)->aws_autoscaling_url;
	struct autoscaling_request q;
	char url[AUTOSCALING_URL_MAX];
	int r, k;

	if (!cfg_url || !cfg_url[0]) {
		r = autoscaling_default_url(s->id.region, url, sizeof(url));
		if (r < 0)
			return r;
	} else {
		k = snprintf(url, sizeof(url), "%s%s", cfg_url, str_endswith(cfg_url, "/") ? "" : "/");
		if (k < 0 || (size_t)k >= sizeof(url))
			return -ENAMETOOLONG;
	}
	r = autoscaling_request_init(&q, url, s->id.region, &s->id.creds, body, AUTOSCALING_TIMEOUT_USEC);
	if (r >= 0)
		r = provider_call(p, IMDS_SLOT_AUTOSCALING, &q.call, cb);
	/* The transport has its own copies. */
	autoscaling_request_done(&q);
	return r;
}

/* Starts the next request of the call: a metadata item it lacks, the
 * group from the API, or the call itself. */
static int op_step(struct provider_handle *p, struct aws_state *s)
{
	const char *id = provider_vm_name(p), *hook = provider_cfg(p)->aws_lifecycle_hook;
	char header[AWS_TOKEN_HEADER_MAX], path[256];
	const char *headers[2];
	char *body;
	int r;

	s->op.item = aws_identity_next(&s->id, now_usec(CLOCK_REALTIME));
	/* Credentials the service still hands out within the renewal margin
	 * are good until their Expiration: fetched once per call, no more. */
	if (s->op.item == AWS_ITEM_CREDENTIALS && s->op.creds_fetched) {
		if (!aws_credentials_usable(&s->id, now_usec(CLOCK_REALTIME)))
			return -EKEYEXPIRED;
		s->op.item = AWS_ITEM_NONE;
	}
	if (s->op.item == AWS_ITEM_CREDENTIALS)
		s->op.creds_fetched = true;
	if (s->op.item != AWS_ITEM_NONE) {
		r = aws_item_path(&s->id, s->op.item, path, sizeof(path));
		if (r < 0)
			return r;
		aws_token_headers(s, header, sizeof(header), headers);
		return provider_request(p, IMDS_SLOT_APPROVE, "GET", path, headers, NULL, s->op.timeout_usec,
					aws_item_404_is_answer(s->op.item) ? PROVIDER_ANSWER_404 : 0, on_item);
	}
	if (!s->id.group[0]) {
		const char *const fields[] = { "InstanceIds.member.1", id, NULL };

		body = autoscaling_form("DescribeAutoScalingInstances", fields);
		if (!body)
			return -ENOMEM;
		r = send_form(p, s, body, on_describe);
	} else {
		const char *const fields[] = {
			"AutoScalingGroupName", s->id.group,
			"LifecycleHookName", hook,
			"InstanceId", id,
			s->op.kind == AWS_OP_COMPLETE ? "LifecycleActionResult" : NULL,
			s->op.abandon ? "ABANDON" : "CONTINUE",
			NULL,
		};

		body = autoscaling_form(op_action(&s->op), fields);
		if (!body)
			return -ENOMEM;
		r = send_form(p, s, body, on_call);
	}
	free(body);
	return r;
}

static int op_start(struct provider_handle *p, struct aws_state *s, enum aws_op_kind kind, bool abandon,
		    uint64_t timeout_usec)
{
	int r;

	if (!provider_has_lifecycle_hook(p))
		return -EOPNOTSUPP;
	if (s->op.kind != AWS_OP_NONE)
		return -EBUSY;
	/* The calls name the instance; a round learns its id first. */
	if (!provider_vm_name(p))
		return -ENXIO;
	s->op = (struct aws_op){
		.kind = kind,
		.abandon = abandon,
		.timeout_usec = timeout_usec ? timeout_usec : OP_METADATA_TIMEOUT_USEC,
	};
	r = op_step(p, s);
	if (r < 0)
		s->op = (struct aws_op){ 0 };
	return r;
}

bool aws_can_approve(const struct provider_handle *p, const void *state)
{
	return provider_has_lifecycle_hook(p);
}

int aws_approve(struct provider_handle *p, void *state, const struct provider_ack *ack, uint64_t timeout_usec)
{
	if (ack->feed != FEED_AWS_LIFECYCLE)
		return -EOPNOTSUPP;
	return op_start(p, state, AWS_OP_COMPLETE, ack->abandon, timeout_usec);
}

int aws_heartbeat(struct provider_handle *p, void *state)
{
	return op_start(p, state, AWS_OP_HEARTBEAT, false, provider_timeout(p));
}

uint64_t aws_heartbeat_period(const struct provider_handle *p, const void *state)
{
	const struct provider_config *cfg = provider_cfg(p);

	if (!provider_has_lifecycle_hook(p))
		return 0;
	return aws_heartbeat_period_usec(cfg->aws_heartbeat_interval_sec, cfg->aws_heartbeat_timeout_sec);
}
