/* provider.c - the provider-neutral half of provider.h: the config, one
 * round in flight at a time, the requests of a round and their
 * cancellation, the round's outcome handed to the caller exactly once, the
 * plumbing of acknowledgements and heartbeats. It knows no cloud's dialect
 * (those are azure.c, aws.c and gcp.c, reached through struct
 * provider_ops; the 'auto' probe is probe.c); it never logs and never
 * blocks. */
#include "clouds/provider-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* One request slot of the provider: what its answer goes to. */
struct provider_slot {
	struct provider_handle *owner;
	provider_reply_cb cb;
	bool busy;
};

struct provider_handle {
	const struct provider_ops *ops;
	void *state;                 /* the cloud's, ops->state_size bytes, owned */
	struct imds *imds;           /* borrowed for the provider's lifetime */
	char *base_url;              /* owned, without trailing '/' */
	char *vm_name;               /* owned, NULL until known */
	bool vm_name_override;       /* vm_name came from provider_new */
	struct provider_slot slots[_IMDS_SLOT_MAX];
	/* The config; its strings point to the owned copies below. */
	struct provider_config cfg;
	char *lifecycle_hook;        /* owned, "" when unset */
	char *autoscaling_url;       /* owned, "" when unset */

	/* The round in flight (the timeouts stay for the next calls). */
	bool busy;
	uint64_t timeout_usec;       /* per request */
	uint64_t first_timeout_usec; /* a service's first call */
	uint64_t start_mono_usec;
	provider_round_cb cb;
	void *userdata;
	char identity_error[IMDS_ERROR_MAX];
	char optional_error[PROVIDER_OPTIONAL_ERROR_MAX];
	/* AWS: the mode, and a change not yet reported with a round. */
	bool imds_v1;
	char imds_v1_change[IMDS_ERROR_MAX];

	/* The acknowledgement in flight. */
	bool approving;
	char approve_id[EVENT_ID_MAX];
	provider_approve_cb approve_cb;
	void *approve_userdata;

	/* The heartbeat in flight. */
	bool heartbeating;
	provider_heartbeat_cb heartbeat_cb;
	void *heartbeat_userdata;
};

static const struct provider_ops *ops_of(enum provider kind)
{
	switch (kind) {
	case PROVIDER_AZURE:
		return &azure_provider_ops;
	case PROVIDER_AWS:
		return &aws_provider_ops;
	case PROVIDER_GCP:
		return &gcp_provider_ops;
	default:
		return NULL;
	}
}

size_t provider_base_len(const char *base_url)
{
	size_t n = strlen(base_url);

	while (n > 0 && base_url[n - 1] == '/')
		n--;
	return n;
}

void provider_config_init(struct provider_config *c)
{
	*c = (struct provider_config){
		.gcp_preempt_notice_sec = GCP_PREEMPT_NOTICE_SEC,
		.aws_imds_fallback = true,
		.aws_heartbeat_timeout_sec = AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC,
	};
}

/* A lifecycle hook name as the Auto Scaling API takes it (1..255 bytes of
 * [A-Za-z0-9_/-]); NULL and "" mean none. */
static bool hook_name_valid(const char *s)
{
	size_t n;

	if (!s || !s[0])
		return true;
	n = strnlen(s, 256);
	if (n > 255)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
		      (s[i] >= '0' && s[i] <= '9') || s[i] == '_' || s[i] == '-' || s[i] == '/'))
			return false;
	return true;
}

static bool config_valid(const struct provider_config *c)
{
	return hook_name_valid(c->aws_lifecycle_hook) &&
	       (!c->aws_autoscaling_url || strnlen(c->aws_autoscaling_url, PROVIDER_URL_MAX) < PROVIDER_URL_MAX) &&
	       c->gcp_preempt_notice_sec <= UINT64_MAX / USEC_PER_SEC &&
	       c->aws_heartbeat_timeout_sec <= UINT64_MAX / USEC_PER_SEC &&
	       c->aws_heartbeat_interval_sec <= UINT64_MAX / USEC_PER_SEC &&
	       c->aws_token_retry_sec <= UINT64_MAX / USEC_PER_SEC;
}

/* Takes cfg's settings other than base_url and vm_name (copied). */
static void take_config(struct provider_handle *p, const struct provider_config *cfg)
{
	free(p->lifecycle_hook);
	free(p->autoscaling_url);
	p->lifecycle_hook = xstrdup(cfg->aws_lifecycle_hook ? cfg->aws_lifecycle_hook : "");
	p->autoscaling_url = xstrdup(cfg->aws_autoscaling_url ? cfg->aws_autoscaling_url : "");
	p->cfg = *cfg;
	p->cfg.base_url = NULL;
	p->cfg.vm_name = NULL;
	p->cfg.aws_lifecycle_hook = p->lifecycle_hook;
	p->cfg.aws_autoscaling_url = p->autoscaling_url;
	if (p->cfg.gcp_preempt_notice_sec == 0)
		p->cfg.gcp_preempt_notice_sec = GCP_PREEMPT_NOTICE_SEC;
	if (p->cfg.aws_heartbeat_timeout_sec == 0)
		p->cfg.aws_heartbeat_timeout_sec = AWS_HEARTBEAT_TIMEOUT_DEFAULT_SEC;
}

int provider_new(enum provider kind, struct imds *m, const struct provider_config *cfg,
		 struct provider_handle **ret)
{
	const struct provider_ops *ops = ops_of(kind);
	struct provider_handle *p;
	const char *vm_name;
	size_t n;

	if (!ops)
		return kind == PROVIDER_AUTO ? -EOPNOTSUPP : -EINVAL;
	if (!m || !cfg || !cfg->base_url || !ret || !config_valid(cfg))
		return -EINVAL;
	n = provider_base_len(cfg->base_url);
	if (n == 0)
		return -EINVAL;
	vm_name = cfg->vm_name;
	if (vm_name && (vm_name[0] == '\0' || strnlen(vm_name, PROVIDER_NAME_MAX) >= PROVIDER_NAME_MAX))
		return -EINVAL;

	p = xcalloc(1, sizeof(*p));
	p->ops = ops;
	p->state = xcalloc(1, ops->state_size > 0 ? ops->state_size : 1);
	p->imds = m;
	p->base_url = xstrndup(cfg->base_url, n);
	if (vm_name) {
		p->vm_name = xstrdup(vm_name);
		p->vm_name_override = true;
	}
	take_config(p, cfg);
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		p->slots[i].owner = p;
	*ret = p;
	return 0;
}

int provider_set_config(struct provider_handle *p, const struct provider_config *cfg)
{
	if (!p || !cfg || !config_valid(cfg))
		return -EINVAL;
	take_config(p, cfg);
	return 0;
}

const struct provider_config *provider_cfg(const struct provider_handle *p)
{
	return &p->cfg;
}

bool provider_has_lifecycle_hook(const struct provider_handle *p)
{
	return p->lifecycle_hook && p->lifecycle_hook[0];
}

static void cancel_slot(struct provider_handle *p, enum imds_slot slot)
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

void provider_free(struct provider_handle *p)
{
	if (!p)
		return;
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		cancel_slot(p, (enum imds_slot)i);
	if (p->ops->done_state)
		p->ops->done_state(p->state);
	free(p->state);
	free(p->base_url);
	free(p->vm_name);
	free(p->lifecycle_hook);
	free(p->autoscaling_url);
	free(p);
}

enum provider provider_kind(const struct provider_handle *p)
{
	return p->ops->kind;
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

bool provider_can_approve(const struct provider_handle *p)
{
	if (!p->ops->approve)
		return false;
	return p->ops->can_approve ? p->ops->can_approve(p, p->state) : true;
}

int provider_approve(struct provider_handle *p, const struct provider_ack *ack, uint64_t timeout_usec,
		     provider_approve_cb cb, void *userdata)
{
	int r;

	if (!provider_can_approve(p))
		return -EOPNOTSUPP;
	if (!ack || !event_id_valid(ack->event_id))
		return -EINVAL;
	if (p->approving)
		return -EBUSY;
	(void)strscpy(p->approve_id, sizeof(p->approve_id), ack->event_id);
	p->approving = true;
	p->approve_cb = cb;
	p->approve_userdata = userdata;
	/* A cloud that cannot start leaves nothing in flight (a heartbeat
	 * may be, and stays). */
	r = p->ops->approve(p, p->state, ack, timeout_usec);
	if (r < 0) {
		p->approving = false;
		p->approve_cb = NULL;
		p->approve_userdata = NULL;
	}
	return r;
}

bool provider_approving(const struct provider_handle *p)
{
	return p->approving;
}

int provider_heartbeat(struct provider_handle *p, provider_heartbeat_cb cb, void *userdata)
{
	int r;

	if (!p->ops->heartbeat)
		return -EOPNOTSUPP;
	if (p->heartbeating)
		return -EBUSY;
	p->heartbeating = true;
	p->heartbeat_cb = cb;
	p->heartbeat_userdata = userdata;
	r = p->ops->heartbeat(p, p->state);
	if (r < 0) {
		p->heartbeating = false;
		p->heartbeat_cb = NULL;
		p->heartbeat_userdata = NULL;
	}
	return r;
}

bool provider_heartbeating(const struct provider_handle *p)
{
	return p->heartbeating;
}

uint64_t provider_heartbeat_period_usec(const struct provider_handle *p)
{
	return p->ops->heartbeat_period ? p->ops->heartbeat_period(p, p->state) : 0;
}

void provider_heartbeat_end(struct provider_handle *p, enum imds_result result, const char *error)
{
	char line[IMDS_ERROR_MAX];
	provider_heartbeat_cb cb = p->heartbeat_cb;
	void *userdata = p->heartbeat_userdata;

	if (!p->heartbeating)
		return;
	(void)strscpy(line, sizeof(line), result == IMDS_RESULT_OK ? "" : (error && error[0] ? error : "failed"));
	p->heartbeating = false;
	p->heartbeat_cb = NULL;
	p->heartbeat_userdata = NULL;
	if (cb)
		cb(result, line, userdata);
}

void provider_approve_end(struct provider_handle *p, enum imds_result result, const char *error)
{
	char id[EVENT_ID_MAX], line[IMDS_ERROR_MAX];
	provider_approve_cb cb = p->approve_cb;
	void *userdata = p->approve_userdata;

	if (!p->approving)
		return;
	/* Copied to this frame: the callback may free the provider or send
	 * the next approval. */
	memcpy(id, p->approve_id, sizeof(id));
	(void)strscpy(line, sizeof(line), result == IMDS_RESULT_OK ? "" : (error && error[0] ? error : "failed"));
	p->approving = false;
	p->approve_cb = NULL;
	p->approve_userdata = NULL;
	if (cb)
		cb(id, result, line, userdata);
}

/* ---- what the clouds use ---- */

void *provider_state(struct provider_handle *p)
{
	return p->state;
}

const char *provider_vm_name(const struct provider_handle *p)
{
	return p->vm_name;
}

bool provider_vm_name_overridden(const struct provider_handle *p)
{
	return p->vm_name_override;
}

void provider_set_vm_name(struct provider_handle *p, const char *name)
{
	if (p->vm_name_override)
		return;
	free(p->vm_name);
	p->vm_name = name ? xstrdup(name) : NULL;
}

uint64_t provider_timeout(const struct provider_handle *p)
{
	return p->timeout_usec;
}

uint64_t provider_first_call_timeout(const struct provider_handle *p)
{
	return p->first_timeout_usec > p->timeout_usec ? p->first_timeout_usec : p->timeout_usec;
}

void provider_add_optional_error(struct provider_handle *p, const char *item, const char *error)
{
	size_t used = strlen(p->optional_error);

	(void)snprintf(p->optional_error + used, sizeof(p->optional_error) - used, "%s%s: %s",
		       used ? "; " : "", item, error && error[0] ? error : "failed");
}

void provider_set_imds_v1(struct provider_handle *p, bool v1, const char *change)
{
	p->imds_v1 = v1;
	if (change)
		(void)strscpy(p->imds_v1_change, sizeof(p->imds_v1_change), change);
}

void provider_set_identity_error(struct provider_handle *p, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(p->identity_error, sizeof(p->identity_error), fmt, ap);
	va_end(ap);
}

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
