/* provider.c - the provider-neutral half of provider.h: one round in flight
 * at a time, the requests of a round and their cancellation, the round's
 * outcome handed to the caller exactly once, the approval call's plumbing,
 * the 'auto' probe, and the plain-text helpers the clouds share. It knows
 * no cloud's dialect (those are azure.c, aws.c and gcp.c, reached through
 * struct provider_ops); it never logs and never blocks. */
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

	/* The round in flight. */
	bool busy;
	uint64_t timeout_usec;       /* per request */
	uint64_t start_mono_usec;
	provider_round_cb cb;
	void *userdata;
	char identity_error[IMDS_ERROR_MAX];

	/* The approval in flight. */
	bool approving;
	char approve_id[EVENT_ID_MAX];
	provider_approve_cb approve_cb;
	void *approve_userdata;
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

/* The length of base_url without trailing '/'; 0 when nothing is left. */
static size_t base_len(const char *base_url)
{
	size_t n = strlen(base_url);

	while (n > 0 && base_url[n - 1] == '/')
		n--;
	return n;
}

int provider_new(enum provider kind, struct imds *m, const char *base_url, const char *vm_name,
		 struct provider_handle **ret)
{
	const struct provider_ops *ops = ops_of(kind);
	struct provider_handle *p;
	size_t n;

	if (!ops)
		return kind == PROVIDER_AUTO ? -EOPNOTSUPP : -EINVAL;
	if (!m || !base_url || !ret)
		return -EINVAL;
	n = base_len(base_url);
	if (n == 0)
		return -EINVAL;
	if (vm_name && (vm_name[0] == '\0' || strnlen(vm_name, PROVIDER_NAME_MAX) >= PROVIDER_NAME_MAX))
		return -EINVAL;

	p = xcalloc(1, sizeof(*p));
	p->ops = ops;
	p->state = xcalloc(1, ops->state_size > 0 ? ops->state_size : 1);
	p->imds = m;
	p->base_url = xstrndup(base_url, n);
	if (vm_name) {
		p->vm_name = xstrdup(vm_name);
		p->vm_name_override = true;
	}
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		p->slots[i].owner = p;
	*ret = p;
	return 0;
}

static void cancel_slot(struct provider_handle *p, enum imds_slot slot)
{
	if (!p->slots[slot].busy)
		return;
	imds_cancel(p->imds, slot);
	p->slots[slot].busy = false;
	p->slots[slot].cb = NULL;
}

static void cancel_round_requests(struct provider_handle *p)
{
	for (size_t i = 0; i < _IMDS_SLOT_MAX; i++)
		if (i != IMDS_SLOT_APPROVE)
			cancel_slot(p, (enum imds_slot)i);
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
	free(p);
}

enum provider provider_kind(const struct provider_handle *p)
{
	return p->ops->kind;
}

int provider_poll(struct provider_handle *p, uint64_t timeout_usec, provider_round_cb cb, void *userdata)
{
	int r;

	if (p->busy)
		return -EBUSY;
	p->busy = true;
	p->timeout_usec = timeout_usec;
	p->start_mono_usec = now_usec(CLOCK_MONOTONIC);
	p->cb = cb;
	p->userdata = userdata;
	p->identity_error[0] = '\0';
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
	return p->ops->approve != NULL;
}

int provider_approve(struct provider_handle *p, const struct provider_ack *ack, uint64_t timeout_usec,
		     provider_approve_cb cb, void *userdata)
{
	const char *event_id = ack->event_id;
	int r;

	if (!p->ops->approve)
		return -EOPNOTSUPP;
	if (p->approving)
		return -EBUSY;
	if (!event_id_valid(event_id))
		return -EINVAL;
	(void)strscpy(p->approve_id, sizeof(p->approve_id), event_id);
	p->approving = true;
	p->approve_cb = cb;
	p->approve_userdata = userdata;
	r = p->ops->approve(p, p->state, event_id, timeout_usec);
	if (r < 0) {
		cancel_slot(p, IMDS_SLOT_APPROVE);
		p->approving = false;
		p->approve_cb = NULL;
		p->approve_userdata = NULL;
	}
	return r;
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

int provider_heartbeat(struct provider_handle *p, uint64_t timeout_usec, provider_approve_cb cb,
		       void *userdata)
{
	return -EOPNOTSUPP;
}

uint64_t provider_heartbeat_period_usec(const struct provider_handle *p)
{
	return 0;
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

int provider_request(struct provider_handle *p, enum imds_slot slot, const char *method, const char *path,
		     const char *const *headers, const char *body, uint64_t timeout_usec,
		     provider_reply_cb cb)
{
	struct provider_slot *s = &p->slots[slot];
	size_t nb = strlen(p->base_url), np = strlen(path);
	char url[PROVIDER_URL_MAX];
	int r;

	if (s->busy)
		return -EBUSY;
	/* Joined by hand: this runs for every poll, and a printf is most of
	 * what building the string would cost. */
	if (nb + np >= sizeof(url))
		return -ENAMETOOLONG;
	memcpy(url, p->base_url, nb);
	memcpy(url + nb, path, np + 1);
	s->cb = cb;
	r = imds_request(p->imds, slot, method, url, headers, body, timeout_usec, on_reply, s);
	if (r < 0) {
		s->cb = NULL;
		return r;
	}
	s->busy = true;
	return 0;
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
	provider_round_cb cb = p->cb;
	void *userdata = p->userdata;

	res->latency_usec = res->done_mono_usec > p->start_mono_usec ?
			    res->done_mono_usec - p->start_mono_usec : 0;
	res->vm_name = NULL;
	if (p->vm_name && strscpy(vm_name, sizeof(vm_name), p->vm_name) >= 0)
		res->vm_name = vm_name;
	memcpy(identity_error, p->identity_error, sizeof(identity_error));
	res->identity_error = identity_error;
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
	res.optional_error = "";
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
	/* A round that ends well answered every feed, unless the cloud says
	 * which did not. */
	res.feeds_answered = o->feeds_answered ? o->feeds_answered : EVENT_FEEDS_ALL;
	res.optional_error = "";
	res.rebalance = o->rebalance;
	res.done_mono_usec = o->done_mono_usec ? o->done_mono_usec : now_usec(CLOCK_MONOTONIC);
	end_round(p, &res, &list);
}

/* ---- the 'auto' probe ---- */

static const struct provider_ops *const probe_order[] = {
	&azure_provider_ops, &aws_provider_ops, &gcp_provider_ops,
};

struct provider_probe {
	struct imds *imds;           /* borrowed */
	char *base_url;              /* owned, without trailing '/' */
	size_t step;                 /* index into probe_order of the next dialect */
	bool busy;
	provider_probe_cb cb;
	void *userdata;
};

int provider_probe_new(struct imds *m, const char *base_url, struct provider_probe **ret)
{
	struct provider_probe *pr;
	size_t n;

	if (!m || !base_url || !ret)
		return -EINVAL;
	n = base_len(base_url);
	if (n == 0)
		return -EINVAL;
	pr = xcalloc(1, sizeof(*pr));
	pr->imds = m;
	pr->base_url = xstrndup(base_url, n);
	*ret = pr;
	return 0;
}

void provider_probe_free(struct provider_probe *pr)
{
	if (!pr)
		return;
	if (pr->busy)
		imds_cancel(pr->imds, IMDS_SLOT_IDENTITY);
	free(pr->base_url);
	free(pr);
}

static void on_probe_reply(const struct imds_reply *r, void *userdata)
{
	struct provider_probe *pr = userdata;
	const struct provider_ops *ops = probe_order[pr->step];
	const char *name = provider_to_string(ops->kind);
	provider_probe_cb cb = pr->cb;
	void *cb_userdata = pr->userdata;
	char line[IMDS_ERROR_MAX];
	enum imds_result result;
	enum provider found = PROVIDER_AUTO;

	pr->busy = false;
	pr->cb = NULL;
	pr->userdata = NULL;
	if (r->result == IMDS_RESULT_OK && ops->probe_accept(r)) {
		found = ops->kind;
		result = IMDS_RESULT_OK;
		line[0] = '\0';
		pr->step = 0;
	} else if (r->result == IMDS_RESULT_THROTTLED || (r->status >= 500 && r->status <= 599)) {
		/* A throttled or failing service may well be this one: ask it
		 * again later rather than take the next dialect's refusal for
		 * an answer. */
		result = r->result;
		(void)snprintf(line, sizeof(line), "%s: %s", name, r->error);
	} else if (pr->step + 1 < ELEMENTSOF(probe_order)) {
		result = IMDS_RESULT_OK;
		(void)snprintf(line, sizeof(line), "%s: %s", name,
			       r->result == IMDS_RESULT_OK ? "not its dialect" : r->error);
		pr->step++;
	} else {
		result = r->result == IMDS_RESULT_OK ? IMDS_RESULT_BAD_DOCUMENT : r->result;
		(void)snprintf(line, sizeof(line),
			       "no metadata service answered as azure, aws or gcp (%s: %s)", name,
			       r->result == IMDS_RESULT_OK ? "not its dialect" : r->error);
		pr->step = 0;
	}
	if (cb)
		cb(found, result, line, cb_userdata);
}

int provider_probe_step(struct provider_probe *pr, uint64_t timeout_usec, provider_probe_cb cb,
			void *userdata)
{
	const struct provider_ops *ops = probe_order[pr->step];
	bool put = strcmp(ops->probe_method, "PUT") == 0;
	char *url;
	int r;

	if (pr->busy)
		return -EBUSY;
	url = xasprintf("%s%s", pr->base_url, ops->probe_path);
	pr->cb = cb;
	pr->userdata = userdata;
	r = imds_request(pr->imds, IMDS_SLOT_IDENTITY, ops->probe_method, url, ops->probe_headers,
			 put ? "" : NULL, timeout_usec, on_probe_reply, pr);
	free(url);
	if (r < 0) {
		pr->cb = NULL;
		pr->userdata = NULL;
		return r;
	}
	pr->busy = true;
	return 0;
}

/* ---- plain-text answers ---- */

cJSON *provider_parse_json(const char *body, size_t len)
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
		if (!provider_trailing_space(*end))
			goto bad;
	return root;
bad:
	cJSON_Delete(root);
	return NULL;
}

bool provider_trailing_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int provider_parse_text(const char *body, size_t len, size_t max)
{
	if (!body)
		return -EBADMSG;
	while (len > 0 && provider_trailing_space(body[len - 1]))
		len--;
	if (len == 0 || len > max || len > INT32_MAX)
		return -EBADMSG;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)body[i] <= 0x20 || (unsigned char)body[i] >= 0x7f)
			return -EBADMSG;
	return (int)len;
}

int provider_parse_name(const char *body, size_t len, char *ret, size_t n)
{
	int k = provider_parse_text(body, len, PROVIDER_NAME_MAX - 1);

	if (k < 0 || (size_t)k >= n)
		return -EBADMSG;
	memcpy(ret, body, (size_t)k);
	ret[k] = '\0';
	return 0;
}
