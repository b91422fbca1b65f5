/* provider-round.c - one round in flight at a time: its start through
 * the cloud's ops, the requests of a round and their cancellation, and
 * the round's outcome handed to the caller exactly once, everything it
 * points to copied first. Like provider.c it knows no cloud's dialect,
 * never logs and never blocks. */
#include "clouds/provider-handle-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

void cancel_slot(struct provider_handle *p, enum imds_slot slot)
{
	if (!p->slots[slot].busy)
		return;
	imds_cancel(p->imds, slot);
	p->slots[slot].busy = false;
	p->slots[slot].cb = NULL;
}

/* The slots of acknowledgements and heartbeats live beside the rounds. */
static bool round_slot(enum imds_slot slot)
{
	return slot != IMDS_SLOT_APPROVE && slot != IMDS_SLOT_AUTOSCALING;
}

static void cancel_round_requests(struct provider_handle *p)
{
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		if (round_slot((enum imds_slot)i))
			cancel_slot(p, (enum imds_slot)i);
}

void provider_request_cancel(struct provider_handle *p, enum imds_slot slot)
{
	cancel_slot(p, slot);
}

int provider_poll(struct provider_handle *p, uint64_t timeout_usec, uint64_t first_call_timeout_usec,
		  provider_round_cb cb, void *userdata)
{
	int r;

	if (p->busy)
		return -EBUSY;
	p->busy = true;
	p->timeout_usec = timeout_usec;
	p->first_timeout_usec = first_call_timeout_usec > timeout_usec ? first_call_timeout_usec : timeout_usec;
	p->start_mono_usec = now_usec(CLOCK_MONOTONIC);
	p->cb = cb;
	p->userdata = userdata;
	p->identity_error[0] = '\0';
	p->optional_error[0] = '\0';
	r = p->ops->start_round(p, p->state);
	if (r < 0) {
		/* Nothing of a round that could not start may answer later. */
		cancel_round_requests(p);
		p->busy = false;
		p->cb = NULL;
		p->userdata = NULL;
	}
	return r;
}

bool provider_busy(const struct provider_handle *p)
{
	return p->busy;
}

void provider_cancel(struct provider_handle *p)
{
	if (!p->busy)
		return;
	cancel_round_requests(p);
	p->busy = false;
	p->cb = NULL;
	p->userdata = NULL;
}

unsigned provider_round_cost(const struct provider_handle *p)
{
	return p->ops->round_cost(p, p->state);
}

/* ---- what the clouds use ---- */

static void on_reply(const struct imds_reply *r, void *userdata)
{
	struct provider_slot *s = userdata;
	struct provider_handle *p = s->owner;
	provider_reply_cb cb = s->cb;

	s->busy = false;
	s->cb = NULL;
	if (cb)
		cb(p, p->state, r);
}

int provider_call(struct provider_handle *p, enum imds_slot slot, const struct imds_call *call,
		  provider_reply_cb cb)
{
	struct provider_slot *s = &p->slots[slot];
	int r;

	if (s->busy)
		return -EBUSY;
	s->cb = cb;
	r = imds_call(p->imds, slot, call, on_reply, s);
	if (r < 0) {
		s->cb = NULL;
		return r;
	}
	s->busy = true;
	return 0;
}

int provider_request(struct provider_handle *p, enum imds_slot slot, const char *method, const char *path,
		     const char *const *headers, const char *body, uint64_t timeout_usec,
		     unsigned flags, provider_reply_cb cb)
{
	size_t nb = strlen(p->base_url), np = strlen(path);
	char url[PROVIDER_URL_MAX];
	struct imds_call call = {
		.method = method,
		.url = url,
		.headers = headers,
		.body = body,
		.body_len = body ? strlen(body) : 0,
		.timeout_usec = timeout_usec,
		.answer_404 = flags & PROVIDER_ANSWER_404,
	};

	/* Joined by hand: this runs for every poll, and a printf is most of
	 * what building the string would cost. */
	if (nb + np >= sizeof(url))
		return -ENAMETOOLONG;
	memcpy(url, p->base_url, nb);
	memcpy(url + nb, path, np + 1);
	return provider_call(p, slot, &call, cb);
}

bool provider_request_busy(const struct provider_handle *p, enum imds_slot slot)
{
	return p->slots[slot].busy;
}

void provider_outcome_init(struct provider_outcome *o)
{
	*o = (struct provider_outcome){ .incarnation = -1 };
}

void provider_outcome_done(struct provider_outcome *o)
{
	if (!o)
		return;
	event_list_done(&o->events);
	provider_outcome_init(o);
}

void provider_drop_add(struct provider_drop *drops, size_t *n_drops, const char *id,
		       const char *fmt, ...)
{
	struct provider_drop *d;
	va_list ap;

	if (*n_drops < PROVIDER_DROPS_MAX) {
		d = &drops[*n_drops];
		d->id[0] = '\0';
		if (id && event_id_valid(id))
			(void)strscpy(d->id, sizeof(d->id), id);
		va_start(ap, fmt);
		(void)vsnprintf(d->reason, sizeof(d->reason), fmt, ap);
		va_end(ap);
	}
	(*n_drops)++;
}

/* Hands the outcome to the caller. Everything the result points to is
 * copied to this frame first: the callback may free the provider, or start
 * the next round, and neither may pull the result from under it. */
static void end_round(struct provider_handle *p, struct provider_round *res, struct event_list *events)
{
	char vm_name[PROVIDER_NAME_MAX], identity_error[IMDS_ERROR_MAX];
	char optional_error[PROVIDER_OPTIONAL_ERROR_MAX], v1_change[IMDS_ERROR_MAX];
	provider_round_cb cb = p->cb;
	void *userdata = p->userdata;

	res->latency_usec = res->done_mono_usec > p->start_mono_usec ?
			    res->done_mono_usec - p->start_mono_usec : 0;
	res->vm_name = NULL;
	if (p->vm_name && strscpy(vm_name, sizeof(vm_name), p->vm_name) >= 0)
		res->vm_name = vm_name;
	memcpy(identity_error, p->identity_error, sizeof(identity_error));
	res->identity_error = identity_error;
	/* Only a round that succeeded has optional requests that failed
	 * without failing it. */
	memcpy(optional_error, p->optional_error, sizeof(optional_error));
	if (res->result != IMDS_RESULT_OK)
		optional_error[0] = '\0';
	res->optional_error = optional_error;
	res->imds_v1 = p->imds_v1;
	/* A change of mode is told once, with whichever round ends next. */
	memcpy(v1_change, p->imds_v1_change, sizeof(v1_change));
	p->imds_v1_change[0] = '\0';
	res->imds_v1_change = v1_change;
	p->busy = false;
	p->cb = NULL;
	p->userdata = NULL;
	if (cb)
		cb(res, userdata);
	event_list_done(events);
}

void provider_fail(struct provider_handle *p, enum imds_result result, uint64_t done_mono_usec,
		   const char *fmt, ...)
{
	struct provider_round res = { .result = result, .incarnation = -1 };
	char error[IMDS_ERROR_MAX];
	va_list ap;

	if (!p->busy)
		return;
	/* Whatever else the round had in flight is moot now. */
	cancel_round_requests(p);
	va_start(ap, fmt);
	(void)vsnprintf(error, sizeof(error), fmt, ap);
	va_end(ap);
	/* Not "" on failure, whatever the cloud passed. */
	res.error = error[0] ? error : "failed";
	if (res.result == IMDS_RESULT_OK)
		res.result = IMDS_RESULT_TRANSPORT;
	res.done_mono_usec = done_mono_usec ? done_mono_usec : now_usec(CLOCK_MONOTONIC);
	end_round(p, &res, NULL);
}

void provider_fail_reply(struct provider_handle *p, const char *item, const struct imds_reply *r)
{
	provider_fail(p, r->result, r->done_mono_usec, "%s: %s", item,
		      r->error && r->error[0] ? r->error : "failed");
}

void provider_fail_start(struct provider_handle *p, const char *item, int err)
{
	provider_fail(p, IMDS_RESULT_TRANSPORT, 0, "%s: cannot start request: %s", item,
		      strerror(err < 0 ? -err : err));
}

void provider_finish(struct provider_handle *p, struct provider_outcome *o)
{
	struct provider_round res = { .result = IMDS_RESULT_OK, .error = "" };
	struct provider_drop drops[PROVIDER_DROPS_MAX];
	struct event_list list = o->events;

	o->events = (struct event_list){ 0 };
	if (!p->busy) {
		event_list_done(&list);
		return;
	}
	cancel_round_requests(p);
	memcpy(drops, o->drops, sizeof(drops));
	res.events = &list;
	res.incarnation = o->incarnation;
	res.n_other = o->n_other;
	res.drops = drops;
	res.n_drops = o->n_drops;
	/* A round that ends well answered every feed of the cloud, unless the
	 * cloud says which did not. */
	res.feeds_answered = o->feeds_answered ? o->feeds_answered : p->ops->feeds;
	res.rebalance = o->rebalance;
	res.done_mono_usec = o->done_mono_usec ? o->done_mono_usec : now_usec(CLOCK_MONOTONIC);
	end_round(p, &res, &list);
}
