/* provider.c - the provider-neutral half of provider.h: the config, the
 * handle's life, the plumbing of acknowledgements and heartbeats, and what
 * the clouds read and set of the handle; one round in flight at a time,
 * its requests and its outcome are provider-round.c's. It knows no cloud's
 * dialect (those are azure.c, aws.c and gcp.c, reached through struct
 * provider_ops; the 'auto' probe is probe.c); it never logs and never
 * blocks. */
#include "clouds/provider-handle-internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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

unsigned provider_call_cost(const struct provider_handle *p)
{
	return p->ops->call_cost ? p->ops->call_cost(p, p->state) : 1;
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
